"""Tensor-level storage: data files as tensor-aligned pieces, per-tensor digests, readable names.

Adds ``file_pieces`` (dedup units of a data file), ``file_tensors`` (each saved tensor's digest,
for diffs by value), ``file_extents`` (how a file assembled from stored objects is laid out) and
``variable_names`` (the names people know variables by). Nothing existing changes: a data file
without extents is one whole object, as every file saved before this revision is, so old
checkpoints restore, verify and gc as before; ``ckptstore repack`` may convert them later.

Revision ID: 0003
Revises: 0001
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('file_pieces',
    sa.Column('file_digest', sa.String(length=64), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=True),
    sa.Column('crc32c', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['file_digest'], ['blobs.digest'], name=op.f('fk_file_pieces_file_digest_blobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('file_digest', 'offset', name=op.f('pk_file_pieces'))
    )
    op.create_index(op.f('ix_file_pieces_digest'), 'file_pieces', ['digest'], unique=False)
    op.create_index(op.f('ix_file_pieces_crc32c'), 'file_pieces', ['crc32c'], unique=False)
    op.create_table('file_tensors',
    sa.Column('file_digest', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=True),
    sa.Column('crc32c', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['file_digest'], ['blobs.digest'], name=op.f('fk_file_tensors_file_digest_blobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('file_digest', 'name', name=op.f('pk_file_tensors'))
    )
    op.create_table('file_extents',
    sa.Column('file_digest', sa.String(length=64), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('object_digest', sa.String(length=64), nullable=False),
    sa.Column('object_offset', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['file_digest'], ['blobs.digest'], name=op.f('fk_file_extents_file_digest_blobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['object_digest'], ['blobs.digest'], name=op.f('fk_file_extents_object_digest_blobs'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('file_digest', 'offset', name=op.f('pk_file_extents'))
    )
    op.create_index(op.f('ix_file_extents_object_digest'), 'file_extents', ['object_digest'], unique=False)
    op.create_table('variable_names',
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=1024), nullable=False),
    sa.Column('readable', sa.String(length=1024), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_variable_names_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('checkpoint_id', 'key', name=op.f('pk_variable_names'))
    )


def downgrade() -> None:
    op.drop_table('variable_names')
    op.drop_index(op.f('ix_file_extents_object_digest'), table_name='file_extents')
    op.drop_table('file_extents')
    op.drop_table('file_tensors')
    op.drop_index(op.f('ix_file_pieces_crc32c'), table_name='file_pieces')
    op.drop_index(op.f('ix_file_pieces_digest'), table_name='file_pieces')
    op.drop_table('file_pieces')

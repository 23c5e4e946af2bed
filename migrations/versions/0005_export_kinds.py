"""Export kinds for deployment formats: ``saved-model`` and ``keras`` next to frozen GraphDefs.

A ``.keras`` export is one file, stored as frozen graphs are (``exports.digest``). A SavedModel
is a directory: its files become rows of the new ``export_files`` table (path, size, digest,
each a content-addressed blob) and ``exports.digest`` is the digest of its manifest, so equal
directories have equal digests and equal files are stored once. The ``kind`` CHECK constraint
widens. ``downgrade`` drops the table and narrows the constraint (it fails while such exports
exist, as it should: an older ckptstore could not read them).

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_OLD = "kind IN ('tf1-graphdef', 'tf2-function')"
_NEW = "kind IN ('tf1-graphdef', 'tf2-function', 'saved-model', 'keras')"


def upgrade() -> None:
    op.create_table('export_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('export_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['digest'], ['blobs.digest'], name=op.f('fk_export_files_digest_blobs'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['export_id'], ['exports.id'], name=op.f('fk_export_files_export_id_exports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_files')),
    sa.UniqueConstraint('export_id', 'path', name=op.f('uq_export_files_export_id_path'))
    )
    op.create_index(op.f('ix_export_files_digest'), 'export_files', ['digest'], unique=False)
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_exports_kind'), type_='check')
        batch_op.create_check_constraint('kind', _NEW)


def downgrade() -> None:
    op.drop_index(op.f('ix_export_files_digest'), table_name='export_files')
    op.drop_table('export_files')
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_exports_kind'), type_='check')
        batch_op.create_check_constraint('kind', _OLD)

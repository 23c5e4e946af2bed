"""Object storage: store settings (the S3 root, the object-intent lock row) and pending objects.

``store_settings`` keeps the store's object area (``s3://bucket/prefix``) in the database, so that
every host opens the same bucket from the database URL alone; ``pending_objects`` records
uploads in flight and deletions in progress, which is how ``gc`` on one host stays away from an
object that a save on another host is about to reference (docs/architecture.md). Old stores
gain both tables empty (plus the lock row) and keep their local file area.

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    settings = op.create_table('store_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_store_settings'))
    )
    op.bulk_insert(settings, [{'key': 'object_lock', 'value': ''}])
    op.create_table('pending_objects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('upload', 'delete')", name=op.f('ck_pending_objects_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_objects'))
    )
    op.create_index(op.f('ix_pending_objects_digest'), 'pending_objects', ['digest'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_pending_objects_digest'), table_name='pending_objects')
    op.drop_table('pending_objects')
    op.drop_table('store_settings')

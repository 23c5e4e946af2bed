"""Metric rollups: per-metric summaries by bucket of steps, for fast charts and metric names.

Creates ``metric_rollups`` and fills it from the metrics already stored, so an upgraded store
charts its old runs like new ones (see ``ckptstore/metadata/rollups.py``).

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('metric_rollups',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.Column('end_step', sa.BigInteger(), nullable=False),
    sa.Column('first_step', sa.BigInteger(), nullable=True),
    sa.Column('first_value', sa.Float(), nullable=True),
    sa.Column('min_step', sa.BigInteger(), nullable=True),
    sa.Column('min_value', sa.Float(), nullable=True),
    sa.Column('max_step', sa.BigInteger(), nullable=True),
    sa.Column('max_value', sa.Float(), nullable=True),
    sa.Column('last_step', sa.BigInteger(), nullable=True),
    sa.Column('last_value', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_metric_rollups_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'level', 'key', 'bucket', name=op.f('pk_metric_rollups')),
    sqlite_with_rowid=False
    )
    # Summaries of the values already stored, one metric at a time (bounded memory).
    from ckptstore.metadata.rollups import rebuild

    conn = op.get_bind()
    for rid, key in conn.execute(sa.text("SELECT DISTINCT run_id, key FROM metrics ORDER BY run_id, key")).all():
        rebuild(conn, rid, key)


def downgrade() -> None:
    op.drop_table('metric_rollups')

"""Run liveness: a heartbeat per running run, so that readers can tell a dead run from a live one.

Adds ``runs.heartbeat_at`` (seconds since the epoch, the database's clock), ``heartbeat_timeout``
(how long readers wait for the next one) and ``process`` (which process owns the run). All three
are NULL for the runs already stored: a ``running`` run without a heartbeat is shown as stored,
since nothing says its process died (see ``ckptstore/liveness.py``). Nothing is ever stored as
``crashed``, so the status CHECK constraint is unchanged and the downgrade only drops columns.

Batch mode with ``recreate="never"``: SQLite adds and (since 3.35) drops these plain columns in
place. Recreating ``runs`` instead would DROP it with foreign keys on, and that cascades into
every run's metrics, checkpoints and exports.

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_timeout', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('process', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('process')
        batch_op.drop_column('heartbeat_timeout')
        batch_op.drop_column('heartbeat_at')

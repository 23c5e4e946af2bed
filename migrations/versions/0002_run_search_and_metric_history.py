"""Run search and metric history (issue 17).

* ``metric_history``: values that a later ``log`` of the same (run, step, key) replaced, written
  by a trigger on ``metrics`` so that ``Run.log``'s batched upsert is unchanged and costs nothing
  extra when no value is replaced. Logging a step twice therefore never loses the first value.
* ``ix_runs_created_at``, ``ix_runs_status``: ``runs list`` is newest first and often filtered by
  status, on stores of 10,000 runs.

``downgrade`` drops the trigger, the table and the indexes (history is lost).

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_SQLITE_TRIGGER = """
CREATE TRIGGER tr_metrics_keep_history BEFORE UPDATE ON metrics
FOR EACH ROW WHEN OLD.value IS NOT NEW.value OR OLD.wall_time IS NOT NEW.wall_time
BEGIN
    INSERT INTO metric_history (run_id, step, key, value, wall_time, replaced_at)
    VALUES (OLD.run_id, OLD.step, OLD.key, OLD.value, OLD.wall_time, NEW.wall_time);
END
"""

_PG_FUNCTION = """
CREATE FUNCTION ckptstore_keep_metric_history() RETURNS trigger AS $$
BEGIN
    INSERT INTO metric_history (run_id, step, key, value, wall_time, replaced_at)
    VALUES (OLD.run_id, OLD.step, OLD.key, OLD.value, OLD.wall_time, NEW.wall_time);
    RETURN NEW;
END
$$ LANGUAGE plpgsql
"""

_PG_TRIGGER = """
CREATE TRIGGER tr_metrics_keep_history BEFORE UPDATE ON metrics
FOR EACH ROW WHEN (OLD.value IS DISTINCT FROM NEW.value OR OLD.wall_time IS DISTINCT FROM NEW.wall_time)
EXECUTE FUNCTION ckptstore_keep_metric_history()
"""


def upgrade() -> None:
    op.create_table('metric_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('wall_time', sa.Float(), nullable=False),
    sa.Column('replaced_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_metric_history_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_history'))
    )
    op.create_index('ix_metric_history_run_step_key', 'metric_history', ['run_id', 'step', 'key'], unique=False)
    op.create_index('ix_runs_created_at', 'runs', ['created_at'], unique=False)
    op.create_index('ix_runs_status', 'runs', ['status'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS tr_metrics_keep_history ON metrics")
        op.execute("DROP FUNCTION IF EXISTS ckptstore_keep_metric_history()")
    else:
        op.execute("DROP TRIGGER IF EXISTS tr_metrics_keep_history")
    op.drop_index('ix_runs_status', table_name='runs')
    op.drop_index('ix_runs_created_at', table_name='runs')
    op.drop_index('ix_metric_history_run_step_key', table_name='metric_history')
    op.drop_table('metric_history')

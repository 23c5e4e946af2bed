"""Initial schema: runs, tags, metrics, blobs, checkpoints and their files and variables,
frozen exports, aliases and their history.

The whole design of the first release in one revision; ``downgrade`` drops it all.

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 11:08:42.958741
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alias_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alias_name', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('old_target', sa.String(length=512), nullable=True),
    sa.Column('new_target', sa.String(length=512), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('tag', 'move', 'untag')", name=op.f('ck_alias_events_action')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alias_events'))
    )
    op.create_index(op.f('ix_alias_events_alias_name'), 'alias_events', ['alias_name'], unique=False)

    op.create_table('blobs',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('stat_sig', sa.String(length=120), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('size >= 0', name=op.f('ck_blobs_size_nonnegative')),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_blobs'))
    )
    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('retention', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'finished', 'failed')", name=op.f('ck_runs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('name', name=op.f('uq_runs_name'))
    )
    op.create_table('checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('prefix', sa.String(length=255), nullable=False),
    sa.Column('total_bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("format IN ('tf1-saver', 'tf2-checkpoint')", name=op.f('ck_checkpoints_format')),
    sa.CheckConstraint("state IN ('committed', 'kept')", name=op.f('ck_checkpoints_state')),
    sa.CheckConstraint('step >= 0', name=op.f('ck_checkpoints_step_nonnegative')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_checkpoints_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoints')),
    sa.UniqueConstraint('run_id', 'step', name=op.f('uq_checkpoints_run_id_step'))
    )
    op.create_index('ix_checkpoints_step', 'checkpoints', ['step'], unique=False)

    op.create_table('metrics',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('wall_time', sa.Float(), nullable=False),
    sa.CheckConstraint('step >= 0', name=op.f('ck_metrics_step_nonnegative')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_metrics_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'step', 'key', name=op.f('pk_metrics')),
    sqlite_with_rowid=False
    )
    op.create_index('ix_metrics_step_run', 'metrics', ['step', 'run_id'], unique=False)

    op.create_table('run_tags',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_tags_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'key', name=op.f('pk_run_tags'))
    )
    op.create_index('ix_run_tags_key_value', 'run_tags', ['key', 'value'], unique=False)

    op.create_table('checkpoint_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.CheckConstraint("role IN ('index', 'data', 'meta')", name=op.f('ck_checkpoint_files_role')),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_checkpoint_files_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['digest'], ['blobs.digest'], name=op.f('fk_checkpoint_files_digest_blobs'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoint_files')),
    sa.UniqueConstraint('checkpoint_id', 'file_name', name=op.f('uq_checkpoint_files_checkpoint_id_file_name'))
    )
    op.create_index(op.f('ix_checkpoint_files_digest'), 'checkpoint_files', ['digest'], unique=False)

    op.create_table('exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('step', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('outputs', sa.JSON(), nullable=False),
    sa.Column('node_count', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('tf_version', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('tf1-graphdef', 'tf2-function')", name=op.f('ck_exports_kind')),
    sa.CheckConstraint('step IS NULL OR step >= 0', name=op.f('ck_exports_step_nonnegative')),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_exports_checkpoint_id_checkpoints'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['digest'], ['blobs.digest'], name=op.f('fk_exports_digest_blobs'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_exports_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exports'))
    )
    op.create_index(op.f('ix_exports_digest'), 'exports', ['digest'], unique=False)
    op.create_index('ix_exports_run_id', 'exports', ['run_id'], unique=False)

    op.create_table('variables',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('dtype', sa.String(length=32), nullable=False),
    sa.Column('shape', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_variables_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_variables')),
    sa.UniqueConstraint('checkpoint_id', 'name', name=op.f('uq_variables_checkpoint_id_name'))
    )
    op.create_table('aliases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('export_id', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(checkpoint_id IS NULL) <> (export_id IS NULL)', name=op.f('ck_aliases_one_target')),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_aliases_checkpoint_id_checkpoints'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['export_id'], ['exports.id'], name=op.f('fk_aliases_export_id_exports'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aliases')),
    sa.UniqueConstraint('name', name=op.f('uq_aliases_name'))
    )
    op.create_index(op.f('ix_aliases_checkpoint_id'), 'aliases', ['checkpoint_id'], unique=False)
    op.create_index(op.f('ix_aliases_export_id'), 'aliases', ['export_id'], unique=False)



def downgrade() -> None:
    op.drop_index(op.f('ix_aliases_export_id'), table_name='aliases')
    op.drop_index(op.f('ix_aliases_checkpoint_id'), table_name='aliases')

    op.drop_table('aliases')
    op.drop_table('variables')
    op.drop_index('ix_exports_run_id', table_name='exports')
    op.drop_index(op.f('ix_exports_digest'), table_name='exports')

    op.drop_table('exports')
    op.drop_index(op.f('ix_checkpoint_files_digest'), table_name='checkpoint_files')

    op.drop_table('checkpoint_files')
    op.drop_index('ix_run_tags_key_value', table_name='run_tags')

    op.drop_table('run_tags')
    op.drop_index('ix_metrics_step_run', table_name='metrics')

    op.drop_table('metrics')
    op.drop_index('ix_checkpoints_step', table_name='checkpoints')

    op.drop_table('checkpoints')
    op.drop_table('runs')
    op.drop_table('blobs')
    op.drop_index(op.f('ix_alias_events_alias_name'), table_name='alias_events')

    op.drop_table('alias_events')

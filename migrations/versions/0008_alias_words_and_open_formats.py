"""One word for named versions, and checkpoint formats from the registry.

* ``alias_events.action``: an alias's history said ``tag`` / ``move`` / ``untag`` while the
  commands and the API say alias (``alias``, ``unalias``); the stored actions become ``set`` /
  ``move`` / ``remove``, and the CHECK constraint with them.
* ``checkpoints.format``: the CHECK listed the two built-in formats, so a format registered
  with ``tf.formats.register_format`` could not be recorded. Formats are named by the registry
  now; the CHECK only refuses an empty name.

Both tables are rebuilt on SQLite (batch mode). ``versions.run_upgrade`` runs migrations on
SQLite with foreign keys off: rebuilding ``checkpoints`` drops the old table, and with them on
that DROP would cascade into every checkpoint's files and pieces.

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_OLD_ACTIONS = "action IN ('tag', 'move', 'untag')"
_NEW_ACTIONS = "action IN ('set', 'move', 'remove')"
_OLD_FORMATS = "format IN ('tf1-saver', 'tf2-checkpoint')"
_NEW_FORMATS = "format <> ''"


def _actions(check: str, renames: dict[str, str]) -> None:
    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_alias_events_action'), type_='check')
    for old, new in renames.items():
        op.execute(f"UPDATE alias_events SET action = '{new}' WHERE action = '{old}'")
    with op.batch_alter_table('alias_events', schema=None) as batch_op:
        batch_op.create_check_constraint('action', check)


def _formats(check: str) -> None:
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_checkpoints_format'), type_='check')
        batch_op.create_check_constraint('format', check)


def upgrade() -> None:
    _actions(_NEW_ACTIONS, {'tag': 'set', 'untag': 'remove'})
    _formats(_NEW_FORMATS)


def downgrade() -> None:
    # Fails (as it should) while a checkpoint of a registered format exists: 0007 cannot name it.
    _formats(_OLD_FORMATS)
    _actions(_OLD_ACTIONS, {'set': 'tag', 'remove': 'untag'})

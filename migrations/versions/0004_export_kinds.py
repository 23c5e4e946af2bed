"""Export kinds for deployment formats: ``saved-model`` and ``keras`` next to frozen GraphDefs.

A SavedModel (a directory) is stored as one content-addressed object, a deterministic tar of its
files (sorted names, no times or owners), so the same model exported twice is the same digest;
a ``.keras`` file is stored as it is. Both are rows of ``exports`` like frozen graphs, so
aliases, lineage, verify and gc need nothing new: only the ``kind`` CHECK constraint widens.
``downgrade`` narrows it again (and refuses while such exports exist, as the constraint would).

Revision ID: 0004
Revises: 0001
"""
from __future__ import annotations

from alembic import op


revision = '0004'
down_revision = '0001'
branch_labels = None
depends_on = None

_OLD = "kind IN ('tf1-graphdef', 'tf2-function')"
_NEW = "kind IN ('tf1-graphdef', 'tf2-function', 'saved-model', 'keras')"


def upgrade() -> None:
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_exports_kind'), type_='check')
        batch_op.create_check_constraint('kind', _NEW)


def downgrade() -> None:
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_exports_kind'), type_='check')
        batch_op.create_check_constraint('kind', _OLD)

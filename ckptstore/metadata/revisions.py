"""The schema revisions this ckptstore knows, read from its migration scripts (standard library).

``ckptstore db history`` and the "behind or ahead?" of ``db current`` only list revisions;
importing Alembic (and SQLAlchemy with it) for that costs ~0.35 s, past the 0.3 s such a
command may take (issue 26). The migration scripts stay the one source: each declares
``revision``, ``down_revision`` and a docstring, and this module reads those three from the
source text (``ast``, nothing is executed), as Alembic's ``ScriptDirectory`` reads them from the
imported module. ``tests/metadata/test_migrations.py`` checks both give the same history.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

__all__ = ["history", "migrations_dir"]


def migrations_dir() -> Path:
    """Where the Alembic environment lives, in a wheel or in a source checkout."""
    spec = importlib.util.find_spec("ckptstore.migrations")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parent.parent.parent / "migrations"


def _declared(path: Path) -> tuple[str, str | None, str] | None:
    """(revision, down_revision, first paragraph of the docstring) of one script, or None for
    a file that declares no revision (``__init__.py``)."""
    module = ast.parse(path.read_text(encoding="utf-8"), str(path))
    values: dict[str, object] = {}
    for node in module.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value is not None:
                    values[target.id] = ast.literal_eval(node.value)
    revision = values.get("revision")
    if not isinstance(revision, str):
        return None
    down = values.get("down_revision")
    # Alembic's Script.doc: the docstring, stripped, up to its first blank line.
    doc = (ast.get_docstring(module, clean=False) or "").strip().split("\n\n")[0]
    return revision, down if isinstance(down, str) else None, doc


def history() -> list[tuple[str, str | None, str]]:
    """Every revision as (revision, down_revision, message), oldest first."""
    found = [d for d in map(_declared, sorted((migrations_dir() / "versions").glob("*.py"))) if d is not None]
    by_down = {down: (rev, down, doc) for rev, down, doc in found}
    if len(by_down) != len(found):
        raise RuntimeError("the migration scripts branch (two revisions share a down_revision)")
    chain: list[tuple[str, str | None, str]] = []
    down: str | None = None
    while down in by_down or (down is None and None in by_down):
        step = by_down[down]
        chain.append(step)
        down = step[0]
    if len(chain) != len(found):
        raise RuntimeError("the migration scripts do not form one chain from the base")
    return chain

"""Reading a SQLite store without importing SQLAlchemy: the runs, and names for completion.

Importing SQLAlchemy costs ~0.18 s on our 2-core machines, most of the 0.3 s budget for
``ckptstore runs list``. For SQLite stores the CLI therefore reads with the standard library's
``sqlite3``, opened read-only, running the very queries the store runs (``quick_reader``).
Anything unusual (a PostgreSQL URL, a missing file, a schema revision other than the one this
code knows, any database error) returns None, and the caller takes the full path, which also
produces the proper error messages.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from typing import Any

from ..constants import RUN_STATES
from ..records import RunInfo
from .quick_reader import Fallback, QuickReader
from .sqlite_ro import open_current


def list_runs(
    uri: str | os.PathLike[str] | None,
    *,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    name: str | None = None,
    where: str | None = None,
    order_by: str | None = None,
    limit: int | None = None,
) -> list[RunInfo] | None:
    """Same result as ``open_store(uri).runs(...)``, or None when the quick path does not apply."""
    if status is not None and status not in RUN_STATES:
        return None
    reader = QuickReader.open(uri)
    if reader is None:
        return None
    try:
        return reader.runs(status=status, tags=tags, name=name, where=where, order_by=order_by, limit=limit)
    except Fallback:
        return None
    finally:
        reader.close()


def completion_names(uri: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """Run names, alias names, checkpoint steps and metric names (per run) for shell completion."""
    con = open_current(uri)
    if con is None:
        return None
    try:
        runs = [r[0] for r in con.execute("SELECT name FROM runs ORDER BY name")]
        aliases = [r[0] for r in con.execute("SELECT name FROM aliases ORDER BY name")]
        steps: dict[str, list[int]] = {}
        for name, step in con.execute(
            "SELECT r.name, c.step FROM checkpoints c JOIN runs r ON r.id = c.run_id ORDER BY c.step"
        ):
            steps.setdefault(name, []).append(step)
        metrics: dict[str, list[str]] = {}
        for name, key in con.execute(
            "SELECT r.name, k.key FROM runs r JOIN (SELECT DISTINCT run_id, key FROM metrics) k ON k.run_id = r.id ORDER BY k.key"
        ):
            metrics.setdefault(name, []).append(key)
        return {"runs": runs, "aliases": aliases, "steps": steps, "metrics": metrics}
    except sqlite3.Error:
        return None
    finally:
        con.close()

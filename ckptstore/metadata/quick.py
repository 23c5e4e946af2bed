"""A read path for SQLite stores that does not import SQLAlchemy.

Importing SQLAlchemy costs ~0.25 s on our 2-core machines, most of the 0.3 s budget for
``ckptstore runs list``. Listing runs is the one query people type all day, so for SQLite
stores it is answered here with the standard library's ``sqlite3``, opened read-only, with the
very query the store runs (``runs_query``). Anything unusual (a PostgreSQL URL, a missing file,
a schema revision other than the one this code knows, any database error) returns None, and the
caller takes the full path, which also produces the proper error messages.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from typing import Any

from ..constants import HEAD_REVISION, RUN_STATES
from ..location import sqlite_file_of
from ..records import RunInfo
from .runs_query import select_runs
from .sqlite_ro import connect_readonly


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
    path = sqlite_file_of(uri)
    if path is None or not path.is_file():
        return None
    try:
        con = connect_readonly(str(path), 30)  # a query never creates or changes a file
    except sqlite3.Error:
        return None
    try:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        if row is None or row[0] != HEAD_REVISION:
            return None

        def execute(sql: str, args: list[Any]) -> list[Any]:
            return con.execute(sql, args).fetchall()

        con.execute("BEGIN")  # one snapshot for the runs and their tags
        return select_runs(
            execute, "?", status=status, tags=tags, pattern=name, where_expr=where, order_by=order_by, limit=limit
        )
    except sqlite3.Error:
        return None
    finally:
        con.close()


def open_current(uri: str | os.PathLike[str] | None) -> sqlite3.Connection | None:
    """A read-only ``sqlite3`` connection to the store at ``uri`` at the current schema, or None."""
    path = sqlite_file_of(uri)
    if path is None or not path.is_file():
        return None
    try:
        con = connect_readonly(str(path), 30)
    except sqlite3.Error:
        return None
    try:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        con.close()
        return None
    if row is None or row[0] != HEAD_REVISION:
        con.close()
        return None
    return con


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

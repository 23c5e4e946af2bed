"""The store's read methods on a SQLite store through the standard library's ``sqlite3``.

``QuickReader`` answers the CLI's read commands (``runs list/show/compare``, ``steps``, ``at``,
``checkpoints``, ``vars``, ``versions``, ``exports``) of a SQLite store at the current schema
without importing SQLAlchemy (~0.18 s of the 0.3 s such a command may take). It runs the very
queries the :class:`~ckptstore.store.Store` runs (:mod:`.reads`, :mod:`.runs_query`,
:mod:`.summaries`: SQL text for both drivers) and returns the same records, so that the CLI
prints them through the same code. What it would have to refuse (an unknown run or REF, an
export where a checkpoint is expected, any database error) raises :class:`Fallback`: the CLI
then asks the store, which words the error as it always does.
"""

from __future__ import annotations

import os
import sqlite3
from collections import namedtuple
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

from ..errors import CkptstoreError
from ..location import parse_location
from ..names import parse_ref
from ..records import (
    AliasInfo,
    CheckpointInfo,
    ExportInfo,
    MetricSummary,
    RunAtStep,
    RunComparison,
    RunInfo,
    RunsTable,
    SpaceUsage,
    StepMetrics,
    VariableInfo,
)
from . import reads, summaries
from .runs_query import expand_names, select_runs
from .runs_table import runs_table
from .space import space_usage
from .sqlite_ro import open_current


class Fallback(Exception):
    """The quick path does not answer this; take the normal one."""


_ROW_TYPES: dict[tuple[str, ...], Any] = {}


def row_type(names: tuple[str, ...]) -> Any:
    """A named tuple type for these column names (cached: a query's shape repeats)."""
    found = _ROW_TYPES.get(names)
    if found is None:
        # rename=True: 'MAX(step)' and other expressions get positional names.
        found = _ROW_TYPES[names] = namedtuple("Row", names, rename=True)
    return found


class QuickConnection:
    """What the quick reader and the quick writer share: one ``sqlite3`` connection to a store,
    and the store named as the store names it in errors. A directory store is named by its
    resolved path (``engine.store_where``), so its errors (an unknown run, REF or alias) are
    worded here without paying SQLAlchemy's import for an error line (issue 26: error paths in
    0.3 s); a store named by URL leaves its errors to the store (``words_errors`` False)."""

    def __init__(self, con: sqlite3.Connection, uri: str | os.PathLike[str] | None) -> None:
        self.con = con
        loc = parse_location(uri)
        self.directory: Path | None = loc.directory.resolve() if loc.directory is not None else None
        self.words_errors = self.directory is not None
        self.where = f"the store at {self.directory if self.directory is not None else uri}"

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def named_rows(self, text: str, args: list[Any]) -> Sequence[Any]:
        """The rows of a statement, each a named tuple of its columns."""
        cur = self.con.execute(text, args)
        row = row_type(tuple(d[0] for d in cur.description))
        return [row._make(r) for r in cur.fetchall()]


class QuickReader(QuickConnection):
    """Read-only access to a SQLite store, one snapshot for the reader's life; the methods are
    those of :class:`~ckptstore.store.Store` of the same names."""

    def __init__(self, con: sqlite3.Connection, uri: str | os.PathLike[str] | None) -> None:
        super().__init__(con, uri)
        con.execute("BEGIN")  # one snapshot for every query of the command
        self.sql = reads.Sql(self._rows, "?", self.where)

    @classmethod
    def open(cls, uri: str | os.PathLike[str] | None) -> QuickReader | None:
        con = open_current(uri)
        return None if con is None else cls(con, uri)

    def _rows(self, text: str, args: list[Any]) -> Sequence[Any]:
        try:
            return self.named_rows(text, args)
        except sqlite3.Error:
            raise Fallback from None

    @property
    def root(self) -> Path:
        """A directory store's file area when no shared root is recorded (as ``Store.root``);
        anything else is the store's to open."""
        if self.directory is None or reads.setting(self.sql, "root"):
            raise Fallback
        return self.directory

    def _run_id(self, name: str) -> int:
        try:
            return reads.run_id(self.sql, name)
        except CkptstoreError:
            if self.words_errors:
                raise
            raise Fallback from None

    # ------------------------------------------------------------------ runs

    def runs(self, *, name: str | None = None, where: str | None = None, order_by: Any = None, **kw: Any) -> list[RunInfo]:
        return select_runs(self.sql.rows, "?", pattern=name, where_expr=where, order_by=order_by, **kw)

    def runs_table(
        self, *, name: str | None = None, where: str | None = None, order_by: Any = None, **kw: Any
    ) -> RunsTable:
        return runs_table(self.sql.rows, "?", pattern=name, where_expr=where, order_by=order_by, **kw)

    def expand_runs(self, patterns: Sequence[str]) -> list[str]:
        try:
            return expand_names(self.sql.rows, "?", patterns, self.sql.where)
        except CkptstoreError:
            if self.words_errors:
                raise
            raise Fallback from None  # a glob that matches nothing: the store words it

    def get_run(self, name: str) -> RunInfo:
        found = select_runs(self.sql.rows, "?", names=[name])
        if not found:
            self._run_id(name)  # raises (or Fallback: the store words it)
            raise Fallback
        return found[0]

    def metric_keys(self, run: str) -> list[str]:
        return reads.metric_keys(self.sql, self._run_id(run))

    def compare_runs(self, runs: Sequence[str]) -> RunComparison:
        infos = [self.get_run(n) for n in dict.fromkeys(runs)]
        return summaries.compare(infos, [summaries.metric_summaries(self.sql.rows, "?", r.id) for r in infos])

    def metric_summaries(self, run: str) -> dict[str, MetricSummary]:
        return summaries.metric_summaries(self.sql.rows, "?", self._run_id(run))

    def space(self, runs: list[str] | None = None) -> list[SpaceUsage]:
        return space_usage(self.sql, runs)

    # ------------------------------------------------------------------ metrics

    def steps(
        self, run: str, *, start: int | None = None, stop: int | None = None, keys: Iterable[str] | None = None
    ) -> list[StepMetrics]:
        return reads.steps(self.sql, self._run_id(run), start=start, stop=stop, keys=keys)

    def at_step(self, step: int, *, nearest: bool = False, keys: Iterable[str] | None = None) -> list[RunAtStep]:
        return reads.at_step(self.sql, step, nearest=nearest, keys=keys)

    # ------------------------------------------------------------------ checkpoints

    def checkpoints(self, run: str) -> list[CheckpointInfo]:
        return reads.checkpoints(self.sql, self._run_id(run), run)

    def checkpoint_metric(self, run: str, metric: str) -> dict[int, float]:
        return reads.checkpoint_metric(self.sql, self._run_id(run), metric)

    def variables(self, ref: str) -> list[VariableInfo]:
        return reads.variables(self.sql, self._checkpoint_id(ref))

    def checkpoint(self, ref: str) -> CheckpointInfo:
        """The checkpoint ``ref`` names, with its files and aliases (as ``Store.checkpoint``)."""
        return reads.checkpoint(self.sql, self._checkpoint_id(ref), parse_ref(ref))

    def _checkpoint_id(self, ref: str) -> int:
        try:
            kind, target = reads.target_of(self.sql, parse_ref(ref))
        except CkptstoreError:
            if self.words_errors:  # the store resolves a REF with the same read (reads.target_of)
                raise
            raise Fallback from None
        if kind != "checkpoint" or target is None:
            raise Fallback  # an export where a checkpoint is expected: the store words it
        return target

    # ------------------------------------------------------------------ exports and aliases

    def export(self, ref: str) -> ExportInfo:
        """The export ``ref`` names (as ``Store.export``)."""
        try:
            return reads.export_of(self.sql, parse_ref(ref))
        except CkptstoreError:
            if self.words_errors:  # the store resolves it with the same read (reads.export_of)
                raise
            raise Fallback from None

    def exports(self, run: str | None = None) -> list[ExportInfo]:
        return reads.exports(self.sql, self._run_id(run) if run is not None else None)

    def aliases(self, name: str | None = None) -> list[AliasInfo]:
        found = reads.aliases(self.sql, name)
        if name is not None and not found:
            raise Fallback  # a removed alias's history, or an unknown name: the store words it
        return found

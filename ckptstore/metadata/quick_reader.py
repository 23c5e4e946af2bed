"""The store's read methods for the CLI's quick path: standard library ``sqlite3``, read-only.

``QuickReader`` answers the metadata commands (``runs show/compare``, ``steps``, ``at``,
``checkpoints``, ``vars``, ``versions``, ``exports``) of a SQLite store at the current schema
without importing SQLAlchemy, with the same records as the :class:`~ckptstore.store.Store`
methods of the same names, so that the CLI prints them through the same code. It answers only
what it can answer fully: anything it would have to refuse (an unknown run or REF, an export
where a checkpoint is expected, any database error) raises :class:`Fallback`, and the CLI runs
the command the normal way, which gives the proper error message. Tests compare both paths'
output byte for byte.
"""

from __future__ import annotations

import os
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from ..constants import INT_MAX
from ..names import Ref, parse_ref
from ..records import (
    AliasInfo,
    CheckpointInfo,
    ExportInfo,
    FileInfo,
    MetricSummary,
    RunAtStep,
    RunComparison,
    RunInfo,
    StepMetrics,
    VariableInfo,
)
from ..retention import resolve_mode
from . import summaries
from .mappers import alias_event_info, alias_info, checkpoint_info, export_info, file_info, json_value, metric_value
from .quick import open_current as open_readonly
from .runs_query import select_runs


class Fallback(Exception):
    """The quick path does not answer this; take the normal one."""


class QuickReader:
    """Read-only access to a SQLite store, one snapshot for the reader's life."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        con.execute("BEGIN")  # one snapshot for every query of the command

    @classmethod
    def open(cls, uri: str | os.PathLike[str] | None) -> QuickReader | None:
        con = open_readonly(uri)
        return None if con is None else cls(con)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> QuickReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self.con.execute(sql, list(args)).fetchall()
        except sqlite3.Error:
            raise Fallback from None

    def _named(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            cur = self.con.execute(sql, list(args))
            cols = [d[0] for d in cur.description]
            return [SimpleNamespace(**dict(zip(cols, row))) for row in cur.fetchall()]
        except sqlite3.Error:
            raise Fallback from None

    def _execute(self, sql: str, args: list[Any]) -> list[Any]:
        return self._rows(sql, args)

    def _run_id(self, name: str) -> int:
        rows = self._rows("SELECT id FROM runs WHERE name = ?", [name])
        if not rows:
            raise Fallback
        return rows[0][0]

    # ------------------------------------------------------------------ runs

    def runs(self, *, name: str | None = None, **kw: Any) -> list[RunInfo]:
        return select_runs(self._execute, "?", pattern=name, **kw)

    def get_run(self, name: str) -> RunInfo:
        found = select_runs(self._execute, "?", names=[name])
        if not found:
            raise Fallback
        return found[0]

    def metric_keys(self, run: str) -> list[str]:
        rid = self._run_id(run)
        return [r[0] for r in self._rows("SELECT DISTINCT key FROM metrics WHERE run_id = ? ORDER BY key", [rid])]

    def compare_runs(self, runs: Sequence[str]) -> RunComparison:
        names = list(dict.fromkeys(runs))
        infos = [self.get_run(n) for n in names]
        return summaries.compare(infos, [summaries.metric_summaries(self._execute, "?", r.id) for r in infos])

    def metric_summaries(self, run: str) -> dict[str, MetricSummary]:
        return summaries.metric_summaries(self._execute, "?", self._run_id(run))

    # ------------------------------------------------------------------ metrics

    def steps(
        self, run: str, *, start: int | None = None, stop: int | None = None, keys: Iterable[str] | None = None
    ) -> list[StepMetrics]:
        rid = self._run_id(run)
        sql, args = "SELECT step, key, value, wall_time FROM metrics WHERE run_id = ?", [rid]
        if start is not None:
            if start > INT_MAX:
                return []
            sql += " AND step >= ?"
            args.append(start)
        if stop is not None:
            sql += " AND step <= ?"
            args.append(min(stop, INT_MAX))
        if keys is not None:
            keys = list(keys)
            sql += f" AND key IN ({', '.join('?' * len(keys))})"
            args += keys
        out: list[StepMetrics] = []
        cur: StepMetrics | None = None
        for step, key, value, wall in self._rows(sql + " ORDER BY step, key", args):
            if cur is None or cur.step != step:
                cur = StepMetrics(step=step, wall_time=wall, metrics={})
                out.append(cur)
            cur.metrics[key] = metric_value(value)
        return out

    def at_step(self, step: int, *, nearest: bool = False, keys: Iterable[str] | None = None) -> list[RunAtStep]:
        """As ``queries.at_step``, in SQLite's SQL."""
        if step > INT_MAX:
            if not nearest:
                return []
            step = INT_MAX
        key_list = list(keys) if keys is not None else None
        if nearest:
            key_cond, key_args = "", []
            if key_list:
                key_cond = f" AND m.key IN ({', '.join('?' * len(key_list))})"
                key_args = list(key_list)
            found = self._rows(
                "SELECT * FROM (SELECT r.id, r.name, "
                f"(SELECT MAX(m.step) FROM metrics m WHERE m.run_id = r.id AND m.step <= ?{key_cond}) AS step, "
                "(SELECT MAX(c.step) FROM checkpoints c WHERE c.run_id = r.id AND c.step <= ?) AS ckpt "
                "FROM runs r) WHERE step IS NOT NULL OR ckpt IS NOT NULL ORDER BY id",
                [step, *key_args, step],
            )
        else:
            found = self._rows(
                "SELECT r.id, r.name, ?, (SELECT c.step FROM checkpoints c WHERE c.run_id = r.id AND c.step = ?) AS ckpt "
                "FROM runs r WHERE EXISTS (SELECT 1 FROM metrics m WHERE m.run_id = r.id AND m.step = ?) "
                "OR EXISTS (SELECT 1 FROM checkpoints c WHERE c.run_id = r.id AND c.step = ?) ORDER BY r.id",
                [step, step, step, step],
            )
        values: dict[int, dict[str, float]] = defaultdict(dict)
        pairs = [(rid, st) for rid, _, st, _ in found if st is not None] if nearest else [(None, step)]
        for i in range(0, len(pairs), 250):
            chunk = pairs[i : i + 250]
            if nearest:
                where = " OR ".join(["(run_id = ? AND step = ?)"] * len(chunk))
                args: list[Any] = [x for pair in chunk for x in pair]
            else:
                where, args = "step = ?", [step]
            sql = f"SELECT run_id, key, value FROM metrics WHERE ({where})"
            if key_list is not None:
                if not key_list:
                    break
                sql += f" AND key IN ({', '.join('?' * len(key_list))})"
                args += key_list
            for rid, key, value in self._rows(sql, args):
                values[rid][key] = metric_value(value)
        return [
            RunAtStep(run=name, step=st if st is not None else ck, metrics=dict(sorted(values.get(rid, {}).items())), checkpoint_step=ck)
            for rid, name, st, ck in found
        ]

    # ------------------------------------------------------------------ checkpoints

    def checkpoints(self, run: str) -> list[CheckpointInfo]:
        rid = self._run_id(run)
        rows = self._named("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step", [rid])
        files: dict[int, list[FileInfo]] = defaultdict(list)
        aliases: dict[int, list[str]] = defaultdict(list)
        if rows:
            for cid, *f in self._rows(
                "SELECT f.checkpoint_id, f.role, f.file_name, f.size, f.digest FROM checkpoint_files f "
                "JOIN checkpoints c ON c.id = f.checkpoint_id WHERE c.run_id = ? ORDER BY f.file_name", [rid]
            ):
                files[cid].append(file_info(f))
            for cid, name in self._rows(
                "SELECT a.checkpoint_id, a.name FROM aliases a JOIN checkpoints c ON c.id = a.checkpoint_id "
                "WHERE c.run_id = ? ORDER BY a.name", [rid]
            ):
                aliases[cid].append(name)
        return [checkpoint_info(ck, run, files.get(ck.id, []), aliases.get(ck.id, [])) for ck in rows]

    def checkpoint_metric(self, run: str, metric: str) -> dict[int, float]:
        rid = self._run_id(run)
        return {
            st: v for st, v in self._rows(
                "SELECT m.step, m.value FROM metrics m JOIN checkpoints c ON c.run_id = m.run_id AND c.step = m.step "
                "WHERE m.run_id = ? AND m.key = ?", [rid, metric]
            ) if v is not None
        }

    def _checkpoint_id(self, ref: str) -> int:
        """The id of the checkpoint ``ref`` names; anything else (an export, nothing) falls back."""
        try:
            parsed: Ref = parse_ref(ref)
        except Exception:
            raise Fallback from None
        if parsed.kind == "alias":
            rows = self._rows("SELECT checkpoint_id FROM aliases WHERE name = ?", [parsed.alias])
            if not rows or rows[0][0] is None:
                raise Fallback
            return rows[0][0]
        if parsed.kind == "export":
            raise Fallback
        rid = self._run_id(parsed.run or "")
        if parsed.kind == "step":
            rows = self._rows("SELECT id FROM checkpoints WHERE run_id = ? AND step = ?", [rid, parsed.step])
        elif parsed.kind in ("latest", "nearest"):
            below = " AND step <= ?" if parsed.kind == "nearest" else ""
            rows = self._rows(
                f"SELECT id FROM checkpoints WHERE run_id = ?{below} ORDER BY step DESC LIMIT 1",
                [rid] + ([parsed.step] if below else []),
            )
        else:  # best
            mode = resolve_mode(parsed.metric or "", parsed.mode or "auto")
            rows = self._rows(
                "SELECT c.id FROM checkpoints c JOIN metrics m ON m.run_id = c.run_id AND m.step = c.step AND m.key = ? "
                f"WHERE c.run_id = ? AND m.value IS NOT NULL ORDER BY m.value {'ASC' if mode == 'min' else 'DESC'}, c.step DESC LIMIT 1",
                [parsed.metric, rid],
            )
        if not rows:
            raise Fallback
        return rows[0][0]

    def variables(self, ref: str) -> list[VariableInfo]:
        cid = self._checkpoint_id(ref)
        # The readable names recorded at save (``model/dense/kernel``), as flows/tensors.variables
        # gives them: the same rows, in the same order, on both paths.
        found = [
            VariableInfo(name, dtype, list(json_value(shape)), readable)
            for name, dtype, shape, readable in self._rows(
                "SELECT v.name, v.dtype, v.shape, n.readable FROM variables v"
                " LEFT JOIN variable_names n ON n.checkpoint_id = v.checkpoint_id AND n.key = v.name"
                " WHERE v.checkpoint_id = ?",
                [cid],
            )
        ]
        return sorted(found, key=lambda v: v.readable or v.name)

    # ------------------------------------------------------------------ exports and aliases

    def exports(self, run: str | None = None) -> list[ExportInfo]:
        sql = "SELECT e.*, r.name AS run_name FROM exports e JOIN runs r ON r.id = e.run_id"
        asql = "SELECT a.export_id, a.name FROM aliases a WHERE a.export_id IS NOT NULL"
        args: list[Any] = []
        if run is not None:
            rid = self._run_id(run)
            sql += " WHERE e.run_id = ?"
            asql = "SELECT a.export_id, a.name FROM aliases a JOIN exports e ON e.id = a.export_id WHERE e.run_id = ?"
            args = [rid]
        rows = self._named(sql + " ORDER BY e.id", args)
        aliases: dict[int, list[str]] = {}
        for eid, name in self._rows(asql + " ORDER BY a.name", args):
            aliases.setdefault(eid, []).append(name)
        return [export_info(r, r.run_name, aliases.get(r.id, [])) for r in rows]

    def versions(self, name: str | None = None) -> list[AliasInfo]:
        sql = (
            "SELECT a.name, a.checkpoint_id, a.export_id, a.message, a.updated_at, r.name AS run, c.step "
            "FROM aliases a LEFT JOIN checkpoints c ON c.id = a.checkpoint_id LEFT JOIN runs r ON r.id = c.run_id"
        )
        args: list[Any] = []
        if name is not None:
            sql += " WHERE a.name = ?"
            args = [name]
        rows = self._named(sql + " ORDER BY a.name", args)
        if name is not None and not rows:
            raise Fallback  # an untagged alias's history, or an unknown name: the store words it
        hsql = "SELECT alias_name, action, old_target, new_target, message, at FROM alias_events"
        hargs: list[Any] = []
        if name is not None:
            hsql += " WHERE alias_name = ?"
            hargs = [name]
        hist: dict[str, list[Any]] = {}
        for row in self._named(hsql + " ORDER BY id DESC", hargs):
            hist.setdefault(row.alias_name, []).append(alias_event_info(row))
        return [alias_info(row, hist.get(row.name, [])) for row in rows]


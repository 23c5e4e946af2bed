"""The reads the CLI's read commands need, each written once as SQL text, for both drivers.

``Store`` runs them through SQLAlchemy's driver connection (``queries.py`` wraps each one), on
SQLite and PostgreSQL; the CLI runs the very same functions on a SQLite store through the
standard library's ``sqlite3`` (``quick_reader.py``), because importing SQLAlchemy alone costs
~0.18 s of the 0.3 s a read command may take. So there is one definition of each query, and a
fast path is only a cheaper way to run it. No SQLAlchemy here, as in ``runs_query`` and
``summaries``, which follow the same pattern.

A :class:`Sql` carries what differs between drivers: how to run a statement, the placeholder
(``?`` or ``%s``) and how to name the store in an error. Statements use only SQL both databases
speak (no ``%`` in the text: psycopg would read it as a placeholder).
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..constants import INT_MAX
from ..errors import UnknownAliasError, UnknownRefError, UnknownRunError
from ..liveness import RUNNING_PROCESSES_SQL, gone_ids
from ..names import Ref
from ..records import (
    AliasEventInfo,
    AliasInfo,
    CheckpointInfo,
    ExportInfo,
    FileInfo,
    RunAtStep,
    StepMetrics,
    VariableInfo,
)
from ..retention import resolve_mode
from .mappers import alias_event_info, alias_info, checkpoint_info, export_info, file_info, json_value, metric_value
from .runs_query import runs_sql

#: Rows of a statement: ``rows(sql, params)``, each row indexable and with its columns as
#: attributes (SQLAlchemy's ``Row``; a named tuple on ``sqlite3``).
Rows = Callable[[str, list[Any]], Sequence[Any]]

#: Pairs of an IN list or OR chain per statement: far below SQLite's 32,766 parameters and
#: PostgreSQL's 65,535, and short enough for the planner.
CHUNK = 250


@dataclass(frozen=True)
class Sql:
    """One open connection as these reads use it: ``rows`` runs a statement, ``ph`` is the
    driver's placeholder, ``where`` names the store in errors (``the store at ...``).
    ``execute`` runs a statement that returns no rows (the writes of ``alias_writes``; None on
    a connection that only reads); ``dialect`` is ``sqlite`` or ``postgresql``."""

    rows: Rows
    ph: str
    where: str
    execute: Callable[[str, list[Any]], None] | None = None
    dialect: str = "sqlite"

    def marks(self, n: int) -> str:
        """``?, ?, ?`` for an IN list of ``n`` values."""
        return ", ".join([self.ph] * n)


# --------------------------------------------------------------------------- settings


def setting(sql: Sql, key: str) -> str | None:
    """A value of ``store_settings`` (e.g. ``root``: the shared file area recorded), or None."""
    found = sql.rows(f"SELECT value FROM store_settings WHERE key = {sql.ph}", [key])
    return found[0][0] if found else None


# --------------------------------------------------------------------------- runs and metrics


def run_id(sql: Sql, name: str) -> int:
    found = sql.rows(f"SELECT id FROM runs WHERE name = {sql.ph}", [name])
    if not found:
        raise UnknownRunError(f"no run named {name!r} in {sql.where}")
    return int(found[0][0])


def metric_keys(sql: Sql, rid: int) -> list[str]:
    # The whole-series summaries (level 0 of metric_rollups): one row per metric, one short
    # index range, where a DISTINCT over the metrics reads every value of the run.
    return [row[0] for row in sql.rows(
        f"SELECT key FROM metric_rollups WHERE run_id = {sql.ph} AND level = 0 ORDER BY key", [rid]
    )]


def steps(sql: Sql, rid: int, *, start: int | None, stop: int | None, keys: Iterable[str] | None) -> list[StepMetrics]:
    """One run's metrics by step in [start, stop] (both inclusive). Bounds past BIGINT would
    overflow the driver: a start above it selects nothing, a stop above it is no bound."""
    text = f"SELECT step, key, value, wall_time FROM metrics WHERE run_id = {sql.ph}"
    args: list[Any] = [rid]
    if start is not None:
        if start > INT_MAX:
            return []
        text += f" AND step >= {sql.ph}"
        args.append(start)
    if stop is not None:
        text += f" AND step <= {sql.ph}"
        args.append(min(stop, INT_MAX))
    if keys is not None:
        key_list = list(keys)
        if not key_list:
            return []
        text += f" AND key IN ({sql.marks(len(key_list))})"
        args += key_list
    out: list[StepMetrics] = []
    cur: StepMetrics | None = None
    for step, key, value, wall in sql.rows(text + " ORDER BY step, key", args):
        if cur is None or cur.step != step:
            cur = StepMetrics(step=step, wall_time=wall, metrics={})
            out.append(cur)
        cur.metrics[key] = metric_value(value)
    return out


def at_step(sql: Sql, step: int, *, nearest: bool, keys: Iterable[str] | None) -> list[RunAtStep]:
    """Every run's metrics at ``step`` (see ``Store.at_step``)."""
    if step > INT_MAX:  # no step is that large, and the driver would overflow
        if not nearest:
            return []
        step = INT_MAX
    ph = sql.ph
    key_list = list(keys) if keys is not None else None
    if nearest:
        key_cond, key_args = "", []
        if key_list:
            # A metric logged less often than others (val_acc every 100 steps, loss every
            # step) is found at its own last step, not dropped at the run's last step.
            key_cond, key_args = f" AND m.key IN ({sql.marks(len(key_list))})", key_list
        found = [tuple(row) for row in sql.rows(
            "SELECT * FROM (SELECT r.id, r.name, "
            f"(SELECT MAX(m.step) FROM metrics m WHERE m.run_id = r.id AND m.step <= {ph}{key_cond}) AS step, "
            f"(SELECT MAX(c.step) FROM checkpoints c WHERE c.run_id = r.id AND c.step <= {ph}) AS ckpt "
            "FROM runs r) AS base WHERE step IS NOT NULL OR ckpt IS NOT NULL ORDER BY id",
            [step, *key_args, step],
        )]
    else:
        found = [(rid, name, step, ckpt) for rid, name, ckpt in sql.rows(
            f"SELECT r.id, r.name, (SELECT c.step FROM checkpoints c WHERE c.run_id = r.id AND c.step = {ph}) AS ckpt "
            f"FROM runs r WHERE EXISTS (SELECT 1 FROM metrics m WHERE m.run_id = r.id AND m.step = {ph}) "
            f"OR EXISTS (SELECT 1 FROM checkpoints c WHERE c.run_id = r.id AND c.step = {ph}) ORDER BY r.id",
            [step, step, step],
        )]
    # Values are fetched by the (run, step) pairs found above, by primary key. Joining the
    # subquery instead lets SQLite flatten it and re-run the correlated MAX for every metrics
    # row: 0.8 s instead of milliseconds on 100 runs x 1,000 steps.
    values: dict[int, dict[str, float]] = defaultdict(dict)
    pairs = [(rid, st) for rid, _, st, _ in found if st is not None] if nearest else [(None, step)]
    for i in range(0, len(pairs), CHUNK):
        chunk = pairs[i : i + CHUNK]
        if nearest:
            where = " OR ".join([f"(run_id = {ph} AND step = {ph})"] * len(chunk))
            args: list[Any] = [x for pair in chunk for x in pair]
        else:
            where, args = f"step = {ph}", [step]  # the (step, run) index holds exactly these rows
        text = f"SELECT run_id, key, value FROM metrics WHERE ({where})"
        if key_list is not None:
            if not key_list:
                break
            text += f" AND key IN ({sql.marks(len(key_list))})"
            args += key_list
        for rid, key, value in sql.rows(text, args):
            values[rid][key] = metric_value(value)
    return [
        RunAtStep(run=name, step=st if st is not None else ck, metrics=dict(sorted(values.get(rid, {}).items())), checkpoint_step=ck)
        for rid, name, st, ck in found
    ]


# --------------------------------------------------------------------------- checkpoints


CHECKPOINT_COLUMNS = "id, step, format, state, prefix, total_bytes, created_at"


def checkpoints(sql: Sql, rid: int, run: str) -> list[CheckpointInfo]:
    """A run's checkpoints, oldest step first, with their aliases and files."""
    ph = sql.ph
    rows = sql.rows(f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE run_id = {ph} ORDER BY step", [rid])
    files: dict[int, list[FileInfo]] = defaultdict(list)
    aliases: dict[int, list[str]] = defaultdict(list)
    if rows:
        for cid, *f in sql.rows(
            "SELECT f.checkpoint_id, f.role, f.file_name, f.size, f.digest FROM checkpoint_files f "
            f"JOIN checkpoints c ON c.id = f.checkpoint_id WHERE c.run_id = {ph} ORDER BY f.file_name", [rid]
        ):
            files[cid].append(file_info(f))
        for cid, name in sql.rows(
            "SELECT a.checkpoint_id, a.name FROM aliases a JOIN checkpoints c ON c.id = a.checkpoint_id "
            f"WHERE c.run_id = {ph} ORDER BY a.name", [rid]
        ):
            aliases[cid].append(name)
    return [checkpoint_info(ck, run, files.get(ck.id, []), aliases.get(ck.id, [])) for ck in rows]


def checkpoint(sql: Sql, checkpoint_id: int, ref: Ref | None = None) -> CheckpointInfo:
    """One checkpoint with its run's name, files and aliases (``target_of`` resolved ``ref`` to
    it; only a checkpoint deleted since then is missing, and the error says so)."""
    ph = sql.ph
    found = sql.rows(
        f"SELECT {', '.join('c.' + col for col in CHECKPOINT_COLUMNS.split(', '))}, r.name AS run_name "
        f"FROM checkpoints c JOIN runs r ON r.id = c.run_id WHERE c.id = {ph}", [checkpoint_id]
    )
    if not found:
        raise UnknownRefError(f"no checkpoint {ref.text if ref is not None else ''} in {sql.where}")
    row = found[0]
    files = [file_info(f) for f in sql.rows(
        f"SELECT role, file_name, size, digest FROM checkpoint_files WHERE checkpoint_id = {ph} ORDER BY file_name",
        [checkpoint_id],
    )]
    aliases = [a for (a,) in sql.rows(f"SELECT name FROM aliases WHERE checkpoint_id = {ph} ORDER BY name", [checkpoint_id])]
    return checkpoint_info(row, row.run_name, files, aliases)


def checkpoint_metric(sql: Sql, rid: int, key: str) -> dict[int, float]:
    """{checkpoint step: value of ``key`` logged at that step}, NaN left out."""
    return {
        step: value for step, value in sql.rows(
            "SELECT m.step, m.value FROM metrics m JOIN checkpoints c ON c.run_id = m.run_id AND c.step = m.step "
            f"WHERE m.run_id = {sql.ph} AND m.key = {sql.ph} ORDER BY m.step", [rid, key]
        ) if value is not None
    }


def best_checkpoint_step(sql: Sql, rid: int, key: str, mode: str) -> tuple[int, float] | None:
    """(step, value) of the run's checkpoint with the best ``key`` at its step (``mode`` "min" or
    "max"; ties: the newer step), or None if no checkpoint has a (non-NaN) value there."""
    found = sql.rows(
        f"SELECT c.step, m.value FROM checkpoints c JOIN metrics m ON m.run_id = c.run_id AND m.step = c.step AND m.key = {sql.ph} "
        f"WHERE c.run_id = {sql.ph} AND m.value IS NOT NULL "
        f"ORDER BY m.value {'ASC' if mode == 'min' else 'DESC'}, c.step DESC LIMIT 1",
        [key, rid],
    )
    return None if not found else (found[0][0], found[0][1])


def _steps_summary(steps: list[int]) -> str:
    if len(steps) <= 6:
        return ", ".join(map(str, steps))
    return ", ".join(map(str, steps[:3])) + ", ..., " + ", ".join(map(str, steps[-2:]))


def target_of(sql: Sql, ref: Ref) -> tuple[str, int | None]:
    """``("checkpoint", id)`` or ``("export", id)``: what a parsed reference names. A checkpoint
    reference that names nothing raises :class:`UnknownRefError` saying what there is; an export
    id is checked by whoever reads the export."""
    ph = sql.ph
    if ref.kind == "alias":
        found = sql.rows(f"SELECT checkpoint_id, export_id FROM aliases WHERE name = {ph}", [ref.alias])
        if not found:
            raise UnknownAliasError(
                f"no alias named {ref.alias!r} in {sql.where} (see 'ckptstore aliases'; "
                "checkpoints are referred to as run@step)"
            )
        checkpoint, export = found[0][0], found[0][1]
        return ("checkpoint", checkpoint) if checkpoint is not None else ("export", export)
    if ref.kind == "export":
        return "export", ref.export_id
    rid = run_id(sql, ref.run or "")
    if ref.kind == "best":
        best = best_checkpoint_step(sql, rid, ref.metric or "", resolve_mode(ref.metric or "", ref.mode or "auto"))
        if best is None:
            names = metric_keys(sql, rid)
            if ref.metric not in names:
                close = difflib.get_close_matches(ref.metric or "", names, n=1)
                hint = f"did you mean best:{close[0]}? " if close else ""
                raise UnknownRefError(
                    f"run {ref.run!r} never logged a metric {ref.metric!r}: {hint}"
                    f"it has {', '.join(names[:8]) or 'no metrics'}{' ...' if len(names) > 8 else ''}"
                )
            raise UnknownRefError(f"run {ref.run!r} has no checkpoint with {ref.metric!r} logged at its step in {sql.where}")
        step: int | None = best[0]
    elif ref.kind == "step":
        step = ref.step
    else:
        below = f" AND step <= {ph}" if ref.kind == "nearest" else ""
        found = sql.rows(f"SELECT MAX(step) FROM checkpoints WHERE run_id = {ph}{below}", [rid, *([ref.step] if below else [])])
        step = found[0][0] if found else None
        if step is None:
            at = f" at or below step {ref.step}" if ref.kind == "nearest" else ""
            raise UnknownRefError(f"run {ref.run!r} has no checkpoint{at} in {sql.where}")
    found = sql.rows(f"SELECT id FROM checkpoints WHERE run_id = {ph} AND step = {ph}", [rid, step])
    if not found:
        steps = [row[0] for row in sql.rows(f"SELECT step FROM checkpoints WHERE run_id = {ph} ORDER BY step", [rid])]
        hint = f"; its checkpoints are at steps {_steps_summary(steps)}" if steps else "; it has no checkpoints"
        raise UnknownRefError(f"no checkpoint {ref.text} in {sql.where}{hint}")
    return "checkpoint", int(found[0][0])


def variables(sql: Sql, checkpoint_id: int) -> list[VariableInfo]:
    """The checkpoint's variables with the readable names recorded at save (``model/dense/kernel``),
    in readable-name order."""
    found = [
        VariableInfo(name, dtype, list(json_value(shape)), readable)
        for name, dtype, shape, readable in sql.rows(
            "SELECT v.name, v.dtype, v.shape, n.readable FROM variables v"
            " LEFT JOIN variable_names n ON n.checkpoint_id = v.checkpoint_id AND n.key = v.name"
            f" WHERE v.checkpoint_id = {sql.ph} ORDER BY v.name",
            [checkpoint_id],
        )
    ]
    return sorted(found, key=lambda v: v.readable or v.name)


# --------------------------------------------------------------------------- exports and aliases


EXPORT_COLUMNS = (
    "e.id, e.step, e.checkpoint_id, e.kind, e.inputs, e.outputs, e.node_count, e.size, e.digest, "
    "e.tf_version, e.created_at, r.name AS run_name"
)


def exports(sql: Sql, rid: int | None) -> list[ExportInfo]:
    """Exports, oldest first, of one run (or all), with their aliases."""
    ph = sql.ph
    text = f"SELECT {EXPORT_COLUMNS} FROM exports e JOIN runs r ON r.id = e.run_id"
    alias_text = "SELECT a.export_id, a.name FROM aliases a WHERE a.export_id IS NOT NULL"
    args: list[Any] = []
    if rid is not None:
        text += f" WHERE e.run_id = {ph}"
        alias_text = f"SELECT a.export_id, a.name FROM aliases a JOIN exports e ON e.id = a.export_id WHERE e.run_id = {ph}"
        args = [rid]
    rows = sql.rows(text + " ORDER BY e.id", args)
    aliases: dict[int, list[str]] = {}
    for eid, name in sql.rows(alias_text + " ORDER BY a.name", args):
        aliases.setdefault(eid, []).append(name)
    return [export_info(row, row.run_name, aliases.get(row.id, [])) for row in rows]


def export(sql: Sql, export_id: int | None, ref: Ref | None = None) -> ExportInfo:
    """One export with its run's name and aliases; an unknown id is an error naming it."""
    found = sql.rows(f"SELECT {EXPORT_COLUMNS} FROM exports e JOIN runs r ON r.id = e.run_id WHERE e.id = {sql.ph}", [export_id])
    if not found:
        raise UnknownRefError(
            f"no export {export_id} in {sql.where}" + (f" (from {ref.text!r})" if ref and ref.kind == "alias" else "")
        )
    aliases = [a for (a,) in sql.rows(f"SELECT name FROM aliases WHERE export_id = {sql.ph} ORDER BY name", [export_id])]
    return export_info(found[0], found[0].run_name, aliases)


def export_of(sql: Sql, ref: Ref) -> ExportInfo:
    """The export a reference names.

    ``export:ID`` and aliases resolve as everywhere; an alias of a checkpoint names the (newest)
    export made from that checkpoint. For a run, ``run@STEP`` is the (newest) export frozen at
    that step, ``run@latest`` the run's newest export and ``run@~N`` its export at the highest step
    at or below N. A reference to a checkpoint without an export is an error.
    """
    if ref.kind in ("export", "alias"):
        kind, target = target_of(sql, ref)
        if kind == "checkpoint":
            assert target is not None
            # An alias of a checkpoint frozen or exported at its step names that export, as
            # run@STEP does for the same checkpoint (the newest, if there are several).
            at = sql.rows(f"SELECT id FROM exports WHERE checkpoint_id = {sql.ph} ORDER BY id DESC LIMIT 1", [target])
            if at:
                return export(sql, int(at[0][0]), ref)
            raise UnknownRefError(
                f"{ref.text!r} names the checkpoint {checkpoint(sql, target, ref).ref}, not an export; "
                "freeze it first (run.freeze) to load it as a frozen graph"
            )
        return export(sql, target, ref)
    rid = run_id(sql, ref.run or "")
    export_id = export_id_at(sql, rid, ref.kind, ref.step)
    if export_id is None:
        steps = [s for (s,) in sql.rows(
            f"SELECT DISTINCT step FROM exports WHERE run_id = {sql.ph} AND step IS NOT NULL ORDER BY step", [rid]
        )]
        where = {"step": f" at step {ref.step}", "nearest": f" at or below step {ref.step}"}.get(ref.kind, "")
        hint = f" (its exports are at steps {', '.join(map(str, steps))})" if steps else ""
        raise UnknownRefError(
            f"run {ref.run!r} has no export{where}{hint} in {sql.where}; checkpoints load with restore, "
            "frozen graphs come from run.freeze"
        )
    return export(sql, export_id, ref)


def export_id_at(sql: Sql, rid: int, kind: str, step: int | None) -> int | None:
    """The run's export for a step reference: ``kind`` is "step", "nearest" or "latest"."""
    if kind == "best":
        raise UnknownRefError("run@best:METRIC names a checkpoint; name its export by step (run@STEP)")
    ph = sql.ph
    text = f"SELECT id FROM exports WHERE run_id = {ph}"
    args: list[Any] = [rid]
    if kind == "step":
        text, args = text + f" AND step = {ph} ORDER BY id DESC", [*args, step]
    elif kind == "nearest":
        text, args = text + f" AND step <= {ph} ORDER BY step DESC, id DESC", [*args, step]
    else:
        text += " ORDER BY id DESC"
    found = sql.rows(text + " LIMIT 1", args)
    return int(found[0][0]) if found else None


def aliases(sql: Sql, name: str | None = None) -> list[AliasInfo]:
    """Current aliases by name (or the one named), each with its history."""
    text = (
        "SELECT a.name, a.checkpoint_id, a.export_id, a.message, a.updated_at, r.name AS run, c.step "
        "FROM aliases a LEFT JOIN checkpoints c ON c.id = a.checkpoint_id LEFT JOIN runs r ON r.id = c.run_id"
    )
    args: list[Any] = []
    if name is not None:
        text += f" WHERE a.name = {sql.ph}"
        args = [name]
    rows = sql.rows(text + " ORDER BY a.name", args)
    hist = alias_history(sql, [row.name for row in rows] if name is not None else None)
    return [alias_info(row, hist.get(row.name, [])) for row in rows]


def alias_history(sql: Sql, names: list[str] | None) -> dict[str, list[AliasEventInfo]]:
    """{alias: its events, newest first} of the named aliases (or all)."""
    text = "SELECT alias_name, action, old_target, new_target, message, at FROM alias_events"
    args: list[Any] = []
    if names is not None:
        if not names:
            return {}
        text += f" WHERE alias_name IN ({sql.marks(len(names))})"
        args = list(names)
    out: dict[str, list[AliasEventInfo]] = {}
    # Ids grow with each insert, so they order events even when two share a timestamp.
    for row in sql.rows(text + " ORDER BY id DESC", args):
        out.setdefault(row.alias_name, []).append(alias_event_info(row))
    return out


# --------------------------------------------------------------------------- shell completion


def completion_names(sql: Sql) -> dict[str, Any]:
    """Run names, current alias names, and per run its checkpoint steps and metric names: what
    shell completion offers, in four statements whatever the number of runs."""
    steps: dict[str, list[int]] = {}
    for name, step in sql.rows("SELECT r.name, c.step FROM checkpoints c JOIN runs r ON r.id = c.run_id ORDER BY c.step", []):
        steps.setdefault(name, []).append(step)
    metrics: dict[str, list[str]] = {}
    for name, key in sql.rows(
        "SELECT r.name, k.key FROM metric_rollups k JOIN runs r ON r.id = k.run_id WHERE k.level = 0 ORDER BY k.key", []
    ):
        metrics.setdefault(name, []).append(key)
    return {
        "runs": [row[0] for row in sql.rows("SELECT name FROM runs ORDER BY name", [])],
        "aliases": [row[0] for row in sql.rows("SELECT name FROM aliases ORDER BY name", [])],
        "steps": steps,
        "metrics": metrics,
    }


# --------------------------------------------------------------------------- charts on a time axis


def wall_times(sql: Sql, rid: int, key: str, steps: Iterable[int]) -> tuple[dict[int, float], float | None]:
    """({step: wall time} of ``key`` at each of ``steps`` it was logged at, the wall time of its
    first step or None): what a chart on a time axis needs besides the downsampled points.

    Both are read by primary key, so the cost follows the points drawn, not the series' length
    (reading every wall time of a million-step metric to place two thousand points took
    seconds). The first step is found from the metric's summaries: its first bucket of level 1
    (16 steps, ``rollups.BITS``) bounds the search, so a metric first logged late in a run whose
    other metrics fill the earlier steps costs no scan of those."""
    ph = sql.ph
    wanted = sorted(set(steps))
    out: dict[int, float] = {}
    for i in range(0, len(wanted), CHUNK):
        chunk = wanted[i : i + CHUNK]
        for step, wall in sql.rows(
            f"SELECT step, wall_time FROM metrics WHERE run_id = {ph} AND key = {ph} AND step IN ({sql.marks(len(chunk))})",
            [rid, key, *chunk],
        ):
            out[step] = wall
    first = sql.rows(
        f"SELECT wall_time FROM metrics WHERE run_id = {ph} AND key = {ph} AND step >= "
        f"(SELECT MIN(bucket) FROM metric_rollups WHERE run_id = {ph} AND level = 1 AND key = {ph}) * 16 "
        "ORDER BY step LIMIT 1",
        [rid, key, rid, key],
    )
    return out, (first[0][0] if first else None)


# --------------------------------------------------------------------------- the names of a search


def field_names(
    sql: Sql,
    *,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    pattern: str | None = None,
    where_expr: str | None = None,
) -> dict[str, list[str]]:
    """``{"params": [...], "metrics": [...], "tags": [...]}``: every param, metric and tag name
    that a run matching the filters (those of ``runs list``; none: the whole store) has, sorted.

    One statement, whatever the number of runs: the matching runs' ids (the runs query itself,
    as a common table expression) joined to the metrics' summaries (level 0: one row per run
    and metric), the tags, and the distinct params objects (their keys are read here: the two
    databases' JSON functions differ). A status filter first asks which running runs' processes
    are gone, as every runs read does. A glob with a bracket class (``grid-[12]``) is narrowed
    in SQL up to the bracket only (see ``runs_query.runs_sql``): its names may include a few of
    runs the bracket excludes, never miss one."""
    gone = gone_ids(sql.rows(RUNNING_PROCESSES_SQL, [])) if status is not None or where_expr is not None else []
    runs, args = runs_sql(sql.ph, status=status, tags=tags, pattern=pattern, where_expr=where_expr, gone=gone)
    found: dict[str, set[str]] = {"params": set(), "metrics": set(), "tags": set()}
    for kind, name in sql.rows(
        f"WITH matched AS (SELECT id FROM ({runs}) AS m) "
        "SELECT 'metrics', k.key FROM metric_rollups k WHERE k.level = 0 AND k.run_id IN (SELECT id FROM matched) GROUP BY k.key "
        "UNION ALL SELECT 'tags', t.key FROM run_tags t WHERE t.run_id IN (SELECT id FROM matched) GROUP BY t.key "
        "UNION ALL SELECT 'params', CAST(r.params AS TEXT) FROM runs r WHERE r.id IN (SELECT id FROM matched) "
        "GROUP BY CAST(r.params AS TEXT)",
        args,
    ):
        if kind == "params":
            found[kind].update(json_value(name) or {})
        else:
            found[kind].add(name)
    return {kind: sorted(names) for kind, names in found.items()}

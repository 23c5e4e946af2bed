"""Every read of the metadata: functions of an open connection, returning records or plain values.

Callers open the transaction (``Database.read()`` for one consistent snapshot, or inside their
own write transaction) and pass the connection in; nothing here commits or touches files.

The reads that the CLI's read commands also run without SQLAlchemy are written once, as SQL
text, in :mod:`.reads` (and :mod:`.runs_query`, :mod:`.summaries`); the functions here of the
same names run them on ``conn`` (:func:`sql_of`). The rest are SQLAlchemy Core statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, func, or_, select

from ..names import Ref
from ..records import (
    AliasEventInfo,
    AliasInfo,
    CheckpointInfo,
    ExportInfo,
    FileInfo,
    MetricChange,
    MetricSummary,
    RunAtStep,
    RunComparison,
    RunInfo,
    RunsTable,
    StepMetrics,
    VariableInfo,
)
from . import file_reads, reads, summaries
from . import schema as S
from .engine import sql_of
from .mappers import aware, metric_value
from .runs_query import expand_names, select_runs
from .runs_table import runs_table as table_of_runs

Target = CheckpointInfo | ExportInfo


# --------------------------------------------------------------------------- runs


def run_id(conn: Connection, name: str) -> int:
    return reads.run_id(sql_of(conn), name)


def last_step(conn: Connection, rid: int) -> int | None:
    """The highest step the run has logged a metric at or saved a checkpoint at (None: neither)."""
    m, c = S.metrics, S.checkpoints
    steps = [
        conn.execute(select(func.max(m.c.step)).where(m.c.run_id == rid)).scalar(),
        conn.execute(select(func.max(c.c.step)).where(c.c.run_id == rid)).scalar(),
    ]
    found = [s for s in steps if s is not None]
    return max(found) if found else None


def run_exists(conn: Connection, rid: int) -> bool:
    return conn.execute(select(S.runs.c.id).where(S.runs.c.id == rid)).first() is not None


def runs(
    conn: Connection,
    *,
    names: Sequence[str] | None = None,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    pattern: str | None = None,
    where: str | None = None,
    order_by: None | str | Sequence[str] = None,
    limit: int | None = None,
) -> list[RunInfo]:
    """Runs that match, newest first unless ``order_by`` (see ``run_search``) says otherwise."""
    sql = sql_of(conn)
    return select_runs(
        sql.rows, sql.ph, names=names, status=status, tags=tags, pattern=pattern,
        where_expr=where, order_by=order_by, limit=limit,
    )


def runs_table(
    conn: Connection,
    *,
    columns: None | str | Sequence[str] = None,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    pattern: str | None = None,
    where: str | None = None,
    order_by: None | str | Sequence[str] = None,
    limit: int | None = None,
) -> RunsTable:
    """The runs table (see ``runs_table.runs_table``)."""
    sql = sql_of(conn)
    return table_of_runs(
        sql.rows, sql.ph, columns=columns, status=status, tags=tags, pattern=pattern,
        where_expr=where, order_by=order_by, limit=limit,
    )


def field_names(
    conn: Connection,
    *,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    pattern: str | None = None,
    where: str | None = None,
) -> dict[str, list[str]]:
    """The param, metric and tag names of the runs that match (see ``reads.field_names``)."""
    return reads.field_names(sql_of(conn), status=status, tags=tags, pattern=pattern, where_expr=where)


def expand_runs(conn: Connection, patterns: Sequence[str]) -> list[str]:
    """Run names for names and globs (see ``runs_query.expand_names``)."""
    sql = sql_of(conn)
    return expand_names(sql.rows, sql.ph, patterns, sql.where)


def runs_in_order(conn: Connection, names: Sequence[str]) -> list[RunInfo]:
    """The named runs in the order given; an unknown name raises :class:`UnknownRunError`."""
    found = {r.name: r for r in runs(conn, names=list(names))}
    for n in names:
        if n not in found:
            run_id(conn, n)  # raises, naming the store
    return [found[n] for n in names]


def metric_summaries(conn: Connection, rid: int) -> dict[str, MetricSummary]:
    sql = sql_of(conn)
    return summaries.metric_summaries(sql.rows, sql.ph, rid)


def compare_runs(conn: Connection, names: Sequence[str]) -> RunComparison:
    infos = runs_in_order(conn, names)
    return summaries.compare(infos, [metric_summaries(conn, r.id) for r in infos])


def run_retention(conn: Connection, rid: int) -> tuple[dict[str, Any] | None, Any]:
    """(retention JSON, created_at) of a run."""
    data, created = conn.execute(select(S.runs.c.retention, S.runs.c.created_at).where(S.runs.c.id == rid)).one()
    return data, aware(created)


def aliases_on_run(conn: Connection, rid: int) -> list[str]:
    """Names of the aliases pointing at any checkpoint or export of the run."""
    return list(conn.execute(
        select(S.aliases.c.name)
        .outerjoin(S.checkpoints, S.aliases.c.checkpoint_id == S.checkpoints.c.id)
        .outerjoin(S.exports, S.aliases.c.export_id == S.exports.c.id)
        .where(or_(S.checkpoints.c.run_id == rid, S.exports.c.run_id == rid))
    ).scalars())


def checkpoint_count(conn: Connection, rid: int) -> int:
    return conn.execute(select(func.count()).where(S.checkpoints.c.run_id == rid)).scalar_one()


def digests_of_run(conn: Connection, rid: int) -> set[str]:
    d = set(conn.execute(
        select(S.checkpoint_files.c.digest).join(S.checkpoints, S.checkpoints.c.id == S.checkpoint_files.c.checkpoint_id)
        .where(S.checkpoints.c.run_id == rid)
    ).scalars())
    d.update(conn.execute(select(S.exports.c.digest).where(S.exports.c.run_id == rid)).scalars())
    d.update(conn.execute(
        select(S.export_files.c.digest).join(S.exports, S.exports.c.id == S.export_files.c.export_id).where(S.exports.c.run_id == rid)
    ).scalars())
    return d


# --------------------------------------------------------------------------- metrics


def metric_keys(conn: Connection, rid: int) -> list[str]:
    return reads.metric_keys(sql_of(conn), rid)


def steps(
    conn: Connection, rid: int, *, start: int | None, stop: int | None, keys: Iterable[str] | None
) -> list[StepMetrics]:
    return reads.steps(sql_of(conn), rid, start=start, stop=stop, keys=keys)


def at_step(conn: Connection, step: int, *, nearest: bool, keys: Iterable[str] | None) -> list[RunAtStep]:
    """Every run's metrics at ``step`` (see ``Store.at_step``)."""
    return reads.at_step(sql_of(conn), step, nearest=nearest, keys=keys)


def metric_times(conn: Connection, rid: int, key: str, steps: Iterable[int]) -> tuple[dict[int, float], float | None]:
    """When one metric was logged at ``steps``, and at its first step (see ``reads.wall_times``)."""
    return reads.wall_times(sql_of(conn), rid, key, steps)


def metric_values(conn: Connection, rid: int, key: str, steps: Sequence[int]) -> dict[int, float]:
    """The (non-NaN) values of one metric at the given steps."""
    out: dict[int, float] = {}
    for i in range(0, len(steps), 500):
        for st, v in conn.execute(
            select(S.metrics.c.step, S.metrics.c.value).where(
                S.metrics.c.run_id == rid, S.metrics.c.key == key, S.metrics.c.step.in_(list(steps[i : i + 500])),
            )
        ):
            if v is not None:
                out[st] = v
    return out


def best_checkpoint_step(conn: Connection, rid: int, key: str, mode: str) -> tuple[int, float] | None:
    return reads.best_checkpoint_step(sql_of(conn), rid, key, mode)


def checkpoint_metric(conn: Connection, rid: int, key: str) -> dict[int, float]:
    return reads.checkpoint_metric(sql_of(conn), rid, key)


def metric_history(conn: Connection, rid: int, key: str | None = None) -> list[MetricChange]:
    """Values that a later log of the same (step, key) replaced, by step, oldest first."""
    h = S.metric_history
    q = select(h.c.step, h.c.key, h.c.value, h.c.wall_time, h.c.replaced_at).where(h.c.run_id == rid)
    if key is not None:
        q = q.where(h.c.key == key)
    return [
        MetricChange(step=st, key=k, value=metric_value(v), wall_time=w, replaced_at=r)
        for st, k, v, w, r in conn.execute(q.order_by(h.c.step, h.c.key, h.c.id))
    ]


# --------------------------------------------------------------------------- checkpoints





def checkpoint_by_id(conn: Connection, checkpoint_id: int) -> CheckpointInfo:
    return reads.checkpoint(sql_of(conn), checkpoint_id)


def checkpoints(conn: Connection, rid: int, run: str) -> list[CheckpointInfo]:
    """A run's checkpoints, oldest step first, with their aliases and files."""
    return reads.checkpoints(sql_of(conn), rid, run)


def checkpoint_rows(conn: Connection, rid: int) -> list[Any]:
    """(id, step, created_at, state) of every checkpoint of a run, for retention."""
    c = S.checkpoints
    return list(conn.execute(select(c.c.id, c.c.step, c.c.created_at, c.c.state).where(c.c.run_id == rid)).all())


def checkpoint_steps(conn: Connection, rid: int) -> set[int]:
    return set(conn.execute(select(S.checkpoints.c.step).where(S.checkpoints.c.run_id == rid)).scalars())


def checkpoint_id_at(conn: Connection, rid: int, step: int) -> int | None:
    c = S.checkpoints
    return conn.execute(select(c.c.id).where(c.c.run_id == rid, c.c.step == step)).scalar()


def pinned_checkpoints(conn: Connection, ids: Sequence[int] | None = None, *, run_id: int | None = None) -> set[int]:
    """Which checkpoints (among ``ids``, or of run ``run_id``) an alias points at."""
    a, c = S.aliases, S.checkpoints
    q = select(a.c.checkpoint_id).where(a.c.checkpoint_id.is_not(None))
    if ids is not None:
        q = q.where(a.c.checkpoint_id.in_(list(ids)))
    if run_id is not None:
        q = q.join(c, c.c.id == a.c.checkpoint_id).where(c.c.run_id == run_id)
    return set(conn.execute(q).scalars())


def aliases_of_checkpoint(conn: Connection, checkpoint_id: int) -> list[str]:
    return list(conn.execute(select(S.aliases.c.name).where(S.aliases.c.checkpoint_id == checkpoint_id)).scalars())


def variables(conn: Connection, checkpoint_id: int) -> list[VariableInfo]:
    """The checkpoint's variables with their readable names, in readable-name order."""
    return reads.variables(sql_of(conn), checkpoint_id)


def nearest_meta(conn: Connection, checkpoint_id: int, step: int) -> FileInfo | None:
    """The .meta of the run's nearest checkpoint at or below ``step``, else the next above."""
    return file_reads.nearest_meta(sql_of(conn), checkpoint_id, step)


def existing_checkpoints(conn: Connection, ids: Iterable[int]) -> set[int]:
    return file_reads.existing_checkpoints(sql_of(conn), ids)


# --------------------------------------------------------------------------- exports


def export_by_id(conn: Connection, export_id: int | None, ref: Ref | None = None) -> ExportInfo:
    return reads.export(sql_of(conn), export_id, ref)


def exports(conn: Connection, rid: int | None) -> list[ExportInfo]:
    """Exports, oldest first, of one run (or all), with their aliases."""
    return reads.exports(sql_of(conn), rid)


def export_files(conn: Connection, export_id: int) -> list[tuple[str, int, str]]:
    """(path, size, digest) of each file of a directory export, by path."""
    return file_reads.export_files(sql_of(conn), export_id)


def existing_exports(conn: Connection, ids: Iterable[int]) -> set[int]:
    return file_reads.existing_exports(sql_of(conn), ids)


# --------------------------------------------------------------------------- references


def resolve(conn: Connection, ref: Ref) -> Target:
    """The checkpoint or export a parsed reference names."""
    kind, target = reads.target_of(sql_of(conn), ref)
    if kind == "export":
        return export_by_id(conn, target, ref)
    assert target is not None  # target_of names a checkpoint by its id
    return reads.checkpoint(sql_of(conn), target, ref)


# --------------------------------------------------------------------------- aliases


def aliases(conn: Connection, name: str | None = None) -> list[AliasInfo]:
    return reads.aliases(sql_of(conn), name)


def alias_history(conn: Connection, names: list[str] | None) -> dict[str, list[AliasEventInfo]]:
    return reads.alias_history(sql_of(conn), names)


# --------------------------------------------------------------------------- blobs, verify, gc


def blob_signatures(conn: Connection, digests: Sequence[str]) -> dict[str, str | None]:
    return file_reads.blob_signatures(sql_of(conn), digests)


def existing_blobs(conn: Connection, digests: Sequence[str] | None = None) -> set[str]:
    """The digests (among ``digests``, or all) that have a ``blobs`` row."""
    return file_reads.existing_blobs(sql_of(conn), digests)


def referenced_digests(conn: Connection) -> set[str]:
    return file_reads.referenced_digests(sql_of(conn))


def stored_files(conn: Connection, rid: int | None) -> tuple[list[Any], list[Any]]:
    return file_reads.stored_files(sql_of(conn), rid)


def integrity_problems(conn: Connection) -> list[str]:
    return file_reads.integrity_problems(sql_of(conn))

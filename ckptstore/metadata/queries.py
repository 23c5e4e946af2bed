"""Every read of the metadata: functions of an open connection, returning records or plain values.

Callers open the transaction (``Database.read()`` for one consistent snapshot, or inside their
own write transaction) and pass the connection in; nothing here commits or touches files.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

from sqlalchemy import BigInteger, Connection, and_, func, literal, or_, select

from ..constants import INT_MAX
from ..errors import UnknownAliasError, UnknownRefError, UnknownRunError
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
    StepMetrics,
    VariableInfo,
)
from . import schema as S
from . import summaries
from .engine import placeholder, store_where
from .mappers import alias_event_info, alias_info, aware, checkpoint_info, export_info, file_info, metric_value
from .runs_query import select_runs

Target = Union[CheckpointInfo, ExportInfo]


# --------------------------------------------------------------------------- runs


def run_id(conn: Connection, name: str) -> int:
    rid = conn.execute(select(S.runs.c.id).where(S.runs.c.name == name)).scalar()
    if rid is None:
        raise UnknownRunError(f"no run named {name!r} in {store_where(conn.engine)}")
    return rid


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
    def execute(sql: str, args: list[Any]) -> Any:
        return conn.exec_driver_sql(sql, tuple(args)).all()

    return select_runs(
        execute, placeholder(conn.dialect), names=names, status=status, tags=tags, pattern=pattern,
        where_expr=where, order_by=order_by, limit=limit,
    )


def runs_in_order(conn: Connection, names: Sequence[str]) -> list[RunInfo]:
    """The named runs in the order given; an unknown name raises :class:`UnknownRunError`."""
    found = {r.name: r for r in runs(conn, names=list(names))}
    for n in names:
        if n not in found:
            run_id(conn, n)  # raises, naming the store
    return [found[n] for n in names]


def metric_summaries(conn: Connection, rid: int) -> dict[str, MetricSummary]:
    def execute(sql: str, args: list[Any]) -> Any:
        return conn.exec_driver_sql(sql, tuple(args)).all()

    return summaries.metric_summaries(execute, placeholder(conn.dialect), rid)


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
    # The whole-series summaries (level 0 of metric_rollups): one row per metric, one short
    # index range, where a DISTINCT over the metrics reads every value of the run.
    return list(conn.execute(
        select(S.metric_rollups.c.key).where(S.metric_rollups.c.run_id == rid, S.metric_rollups.c.level == 0)
        .order_by(S.metric_rollups.c.key)
    ).scalars())


def steps(
    conn: Connection, rid: int, *, start: int | None, stop: int | None, keys: Iterable[str] | None
) -> list[StepMetrics]:
    m = S.metrics
    q = select(m.c.step, m.c.key, m.c.value, m.c.wall_time).where(m.c.run_id == rid)
    # Bounds past the BIGINT range would overflow the driver; clamped they mean the same.
    if start is not None:
        if start > INT_MAX:
            return []
        q = q.where(m.c.step >= start)
    if stop is not None:
        q = q.where(m.c.step <= min(stop, INT_MAX))
    if keys is not None:
        q = q.where(m.c.key.in_(list(keys)))
    out: list[StepMetrics] = []
    cur: StepMetrics | None = None
    for step, key, value, wall in conn.execute(q.order_by(m.c.step, m.c.key)):
        if cur is None or cur.step != step:
            cur = StepMetrics(step=step, wall_time=wall, metrics={})
            out.append(cur)
        cur.metrics[key] = metric_value(value)
    return out


def at_step(conn: Connection, step: int, *, nearest: bool, keys: Iterable[str] | None) -> list[RunAtStep]:
    """Every run's metrics at ``step`` (see ``Store.at_step``); ``step`` is within BIGINT."""
    m, r, c = S.metrics, S.runs, S.checkpoints
    key_list = list(keys) if keys is not None else None
    if nearest:
        cond = [m.c.run_id == r.c.id, m.c.step <= step]
        if key_list:
            # A metric logged less often than others (val_acc every 100 steps, loss every
            # step) is found at its own last step, not dropped at the run's last step.
            cond.append(m.c.key.in_(key_list))
        last = select(func.max(m.c.step)).where(*cond).scalar_subquery()
        ckpt = select(func.max(c.c.step)).where(c.c.run_id == r.c.id, c.c.step <= step).scalar_subquery()
        base = select(r.c.id.label("run_id"), r.c.name, last.label("step"), ckpt.label("ckpt")).subquery()
    else:
        ckpt = select(c.c.step).where(c.c.run_id == r.c.id, c.c.step == step).scalar_subquery()
        has_metric = select(m.c.run_id).where(m.c.run_id == r.c.id, m.c.step == step).exists()
        base = (
            select(r.c.id.label("run_id"), r.c.name, literal(step, BigInteger).label("step"), ckpt.label("ckpt"))
            .where(or_(has_metric, ckpt.is_not(None)))
            .subquery()
        )
    found = conn.execute(
        select(base).where(or_(base.c.step.is_not(None), base.c.ckpt.is_not(None))).order_by(base.c.run_id)
    ).all()
    # Values are fetched by the (run, step) pairs found above, by primary key. Joining the
    # subquery instead lets SQLite flatten it and re-run the correlated MAX for every metrics
    # row: 0.8 s instead of milliseconds on 100 runs x 1,000 steps. The SQL is written out at
    # the driver level: building ~1,000 SQLAlchemy expressions per call would cost more than
    # the query itself.
    ph = placeholder(conn.dialect)
    if nearest:
        pairs: list[tuple[int | None, int]] = [(row.run_id, row.step) for row in found if row.step is not None]
    else:
        pairs = [(None, step)]  # the (step, run) index holds exactly these rows
    values: dict[int, dict[str, float]] = defaultdict(dict)
    for i in range(0, len(pairs), 250):
        chunk = pairs[i : i + 250]
        if nearest:
            where = " OR ".join([f"(run_id = {ph} AND step = {ph})"] * len(chunk))
            args: list[Any] = [x for pair in chunk for x in pair]
        else:
            where, args = f"step = {ph}", [step]
        sql = f"SELECT run_id, key, value FROM metrics WHERE ({where})"
        if key_list is not None:
            if not key_list:
                break
            sql += f" AND key IN ({', '.join([ph] * len(key_list))})"
            args += key_list
        for rid, key, value in conn.exec_driver_sql(sql, tuple(args)):
            values[rid][key] = metric_value(value)
    out = []
    for row in found:
        st = row.step if row.step is not None else row.ckpt
        out.append(RunAtStep(
            run=row.name, step=st, metrics=dict(sorted(values.get(row.run_id, {}).items())),
            checkpoint_step=row.ckpt,
        ))
    return out


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
    """(step, value) of the run's checkpoint with the best ``key`` at its step (``mode`` "min" or
    "max"; ties: the newer step), or None if no checkpoint has a (non-NaN) value there."""
    c, m = S.checkpoints, S.metrics
    order = m.c.value.asc() if mode == "min" else m.c.value.desc()
    row = conn.execute(
        select(c.c.step, m.c.value)
        .join(m, and_(m.c.run_id == c.c.run_id, m.c.step == c.c.step, m.c.key == key))
        .where(c.c.run_id == rid, m.c.value.is_not(None))
        .order_by(order, c.c.step.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


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


def _steps_summary(steps: list[int]) -> str:
    if len(steps) <= 6:
        return ", ".join(map(str, steps))
    return ", ".join(map(str, steps[:3])) + ", ..., " + ", ".join(map(str, steps[-2:]))


def checkpoint_by_id(conn: Connection, checkpoint_id: int) -> CheckpointInfo:
    return _checkpoint(conn, S.checkpoints.c.id == checkpoint_id, None)


def _checkpoint(conn: Connection, cond: Any, ref: Ref | None) -> CheckpointInfo:
    c = S.checkpoints
    row = conn.execute(
        select(*c.c, S.runs.c.name.label("run_name")).join(S.runs, S.runs.c.id == c.c.run_id).where(cond)
    ).first()
    if row is None:
        what = ref.text if ref is not None else "checkpoint"
        hint = ""
        if ref is not None and ref.kind == "step":
            steps = list(conn.execute(
                select(c.c.step).join(S.runs, S.runs.c.id == c.c.run_id).where(S.runs.c.name == ref.run).order_by(c.c.step)
            ).scalars())
            hint = f"; its checkpoints are at steps {_steps_summary(steps)}" if steps else "; it has no checkpoints"
        raise UnknownRefError(f"no checkpoint {what} in {store_where(conn.engine)}{hint}")
    cf = S.checkpoint_files
    files = conn.execute(
        select(cf.c.role, cf.c.file_name, cf.c.size, cf.c.digest).where(cf.c.checkpoint_id == row.id).order_by(cf.c.file_name)
    ).all()
    aliases = conn.execute(select(S.aliases.c.name).where(S.aliases.c.checkpoint_id == row.id).order_by(S.aliases.c.name)).scalars()
    return checkpoint_info(row, row.run_name, [file_info(f) for f in files], list(aliases))


def checkpoints(conn: Connection, rid: int, run: str) -> list[CheckpointInfo]:
    """A run's checkpoints, oldest step first, with their aliases and files."""
    c, cf = S.checkpoints, S.checkpoint_files
    rows = conn.execute(select(*c.c).where(c.c.run_id == rid).order_by(c.c.step)).all()
    files: dict[int, list[FileInfo]] = defaultdict(list)
    aliases: dict[int, list[str]] = defaultdict(list)
    if rows:
        for f in conn.execute(
            select(cf.c.checkpoint_id, cf.c.role, cf.c.file_name, cf.c.size, cf.c.digest)
            .join(c, c.c.id == cf.c.checkpoint_id).where(c.c.run_id == rid).order_by(cf.c.file_name)
        ):
            files[f[0]].append(file_info(f[1:]))
        for cid, name in conn.execute(
            select(S.aliases.c.checkpoint_id, S.aliases.c.name).join(c, c.c.id == S.aliases.c.checkpoint_id)
            .where(c.c.run_id == rid).order_by(S.aliases.c.name)
        ):
            aliases[cid].append(name)
    return [checkpoint_info(ck, run, files.get(ck.id, []), aliases.get(ck.id, [])) for ck in rows]


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
    v = S.variables
    rows = conn.execute(select(v.c.name, v.c.dtype, v.c.shape).where(v.c.checkpoint_id == checkpoint_id).order_by(v.c.name)).all()
    return [VariableInfo(name, dtype, list(shape)) for name, dtype, shape in rows]


def nearest_meta(conn: Connection, checkpoint_id: int, step: int) -> FileInfo | None:
    """The .meta of the run's nearest checkpoint at or below ``step``, else the next above."""
    c, cf = S.checkpoints, S.checkpoint_files
    rid = conn.execute(select(c.c.run_id).where(c.c.id == checkpoint_id)).scalar()
    if rid is None:
        return None
    for cond, order in ((c.c.step <= step, c.c.step.desc()), (c.c.step > step, c.c.step.asc())):
        row = conn.execute(
            select(cf.c.role, cf.c.file_name, cf.c.size, cf.c.digest).join(c, c.c.id == cf.c.checkpoint_id)
            .where(c.c.run_id == rid, cf.c.role == "meta", cond).order_by(order).limit(1)
        ).first()
        if row is not None:
            return file_info(row)
    return None


def existing_checkpoints(conn: Connection, ids: Iterable[int]) -> set[int]:
    ids = list(ids)
    return set(conn.execute(select(S.checkpoints.c.id).where(S.checkpoints.c.id.in_(ids))).scalars()) if ids else set()


# --------------------------------------------------------------------------- exports


def export_by_id(conn: Connection, export_id: int | None, ref: Ref | None = None) -> ExportInfo:
    e = S.exports
    row = conn.execute(
        select(*e.c, S.runs.c.name.label("run_name")).join(S.runs, S.runs.c.id == e.c.run_id).where(e.c.id == export_id)
    ).first()
    if row is None:
        raise UnknownRefError(
            f"no export {export_id} in {store_where(conn.engine)}" + (f" (from {ref.text!r})" if ref and ref.kind == "alias" else "")
        )
    aliases = conn.execute(select(S.aliases.c.name).where(S.aliases.c.export_id == row.id).order_by(S.aliases.c.name)).scalars()
    return export_info(row, row.run_name, list(aliases))


def exports(conn: Connection, rid: int | None) -> list[ExportInfo]:
    """Exports, oldest first, of one run (or all), with their aliases."""
    e = S.exports
    q = select(*e.c, S.runs.c.name.label("run_name")).join(S.runs, S.runs.c.id == e.c.run_id).order_by(e.c.id)
    aq = select(S.aliases.c.export_id, S.aliases.c.name).where(S.aliases.c.export_id.is_not(None)).order_by(S.aliases.c.name)
    if rid is not None:
        q = q.where(e.c.run_id == rid)
        aq = aq.join(e, e.c.id == S.aliases.c.export_id).where(e.c.run_id == rid)
    rows = conn.execute(q).all()
    aliases: dict[int, list[str]] = {}
    for eid, name in conn.execute(aq):
        aliases.setdefault(eid, []).append(name)
    return [export_info(r, r.run_name, aliases.get(r.id, [])) for r in rows]


def export_id_at(conn: Connection, rid: int, kind: str, step: int | None) -> int | None:
    """The run's export for a step reference: ``kind`` is "step", "nearest" or "latest"."""
    if kind == "best":
        raise UnknownRefError("run@best:METRIC names a checkpoint; name its export by step (run@STEP)")
    e = S.exports
    q = select(e.c.id).where(e.c.run_id == rid)
    if kind == "step":
        q = q.where(e.c.step == step).order_by(e.c.id.desc())
    elif kind == "nearest":
        q = q.where(e.c.step <= step).order_by(e.c.step.desc(), e.c.id.desc())
    else:
        q = q.order_by(e.c.id.desc())
    return conn.execute(q.limit(1)).scalar()


def export_files(conn: Connection, export_id: int) -> list[tuple[str, int, str]]:
    """(path, size, digest) of each file of a directory export, by path."""
    f = S.export_files
    return [tuple(r) for r in conn.execute(select(f.c.path, f.c.size, f.c.digest).where(f.c.export_id == export_id).order_by(f.c.path))]


def export_steps(conn: Connection, rid: int) -> list[int]:
    e = S.exports
    return sorted({s for s in conn.execute(select(e.c.step).where(e.c.run_id == rid)).scalars() if s is not None})


def existing_exports(conn: Connection, ids: Iterable[int]) -> set[int]:
    ids = list(ids)
    return set(conn.execute(select(S.exports.c.id).where(S.exports.c.id.in_(ids))).scalars()) if ids else set()


# --------------------------------------------------------------------------- references


def resolve(conn: Connection, ref: Ref) -> Target:
    """The checkpoint or export a parsed reference names."""
    c = S.checkpoints
    if ref.kind == "alias":
        row = conn.execute(select(S.aliases.c.checkpoint_id, S.aliases.c.export_id).where(S.aliases.c.name == ref.alias)).first()
        if row is None:
            raise UnknownAliasError(
                f"no version named {ref.alias!r} in {store_where(conn.engine)} (see 'ckptstore versions'; "
                "checkpoints are referred to as run@step)"
            )
        if row.checkpoint_id is not None:
            return _checkpoint(conn, c.c.id == row.checkpoint_id, ref)
        return export_by_id(conn, row.export_id, ref)
    if ref.kind == "export":
        return export_by_id(conn, ref.export_id, ref)
    rid = run_id(conn, ref.run)  # type: ignore[arg-type]
    if ref.kind == "best":
        from ..retention import resolve_mode

        found = best_checkpoint_step(conn, rid, ref.metric or "", resolve_mode(ref.metric or "", ref.mode or "auto"))
        if found is None:
            names = metric_keys(conn, rid)
            if ref.metric not in names:
                import difflib

                close = difflib.get_close_matches(ref.metric or "", names, n=1)
                hint = f"did you mean best:{close[0]}? " if close else ""
                raise UnknownRefError(
                    f"run {ref.run!r} never logged a metric {ref.metric!r}: {hint}"
                    f"it has {', '.join(names[:8]) or 'no metrics'}{' ...' if len(names) > 8 else ''}"
                )
            raise UnknownRefError(
                f"run {ref.run!r} has no checkpoint with {ref.metric!r} logged at its step "
                f"in {store_where(conn.engine)}"
            )
        return _checkpoint(conn, and_(c.c.run_id == rid, c.c.step == found[0]), ref)
    if ref.kind == "step":
        cond = and_(c.c.run_id == rid, c.c.step == ref.step)
    else:
        q = select(func.max(c.c.step)).where(c.c.run_id == rid)
        if ref.kind == "nearest":
            q = q.where(c.c.step <= ref.step)
        st = conn.execute(q).scalar()
        if st is None:
            below = f" at or below step {ref.step}" if ref.kind == "nearest" else ""
            raise UnknownRefError(f"run {ref.run!r} has no checkpoint{below} in {store_where(conn.engine)}")
        cond = and_(c.c.run_id == rid, c.c.step == st)
    return _checkpoint(conn, cond, ref)


# --------------------------------------------------------------------------- aliases


def alias_row(conn: Connection, name: str, *, for_update: bool = False) -> Any:
    """(id, checkpoint_id, export_id, message) of an alias, or None; locked with ``for_update``."""
    a = S.aliases
    q = select(a.c.id, a.c.checkpoint_id, a.c.export_id, a.c.message).where(a.c.name == name)
    return conn.execute(q.with_for_update() if for_update else q).first()


def target_text(conn: Connection, checkpoint_id: int | None, export_id: int | None) -> str:
    """``run@step`` or ``export:ID`` of an alias's target, as its history records it."""
    if checkpoint_id is None:
        return f"export:{export_id}"
    row = conn.execute(
        select(S.runs.c.name, S.checkpoints.c.step).join(S.runs, S.runs.c.id == S.checkpoints.c.run_id)
        .where(S.checkpoints.c.id == checkpoint_id)
    ).one()
    return f"{row.name}@{row.step}"


def aliases(conn: Connection, name: str | None = None) -> list[AliasInfo]:
    a, c, r = S.aliases, S.checkpoints, S.runs
    q = (
        select(a.c.name, a.c.checkpoint_id, a.c.export_id, a.c.message, a.c.updated_at, r.c.name.label("run"), c.c.step)
        .outerjoin(c, c.c.id == a.c.checkpoint_id)
        .outerjoin(r, r.c.id == c.c.run_id)
        .order_by(a.c.name)
    )
    if name is not None:
        q = q.where(a.c.name == name)
    rows = conn.execute(q).all()
    hist = alias_history(conn, [row.name for row in rows] if name is not None else None)
    return [alias_info(row, hist.get(row.name, [])) for row in rows]


def alias_history(conn: Connection, names: list[str] | None) -> dict[str, list[AliasEventInfo]]:
    e = S.alias_events
    # Ids grow with each insert, so they order events even when two share a timestamp.
    q = select(e.c.alias_name, e.c.action, e.c.old_target, e.c.new_target, e.c.message, e.c.at).order_by(e.c.id.desc())
    if names is not None:
        q = q.where(e.c.alias_name.in_(names))
    out: dict[str, list[AliasEventInfo]] = {}
    for row in conn.execute(q):
        out.setdefault(row.alias_name, []).append(alias_event_info(row))
    return out


# --------------------------------------------------------------------------- blobs, verify, gc


def blob_signatures(conn: Connection, digests: Sequence[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    digests = list(digests)
    for i in range(0, len(digests), 500):
        out.update(conn.execute(select(S.blobs.c.digest, S.blobs.c.stat_sig).where(S.blobs.c.digest.in_(digests[i : i + 500]))).all())
    return out


def existing_blobs(conn: Connection, digests: Sequence[str] | None = None) -> set[str]:
    """The digests (among ``digests``, or all) that have a ``blobs`` row."""
    if digests is None:
        return set(conn.execute(select(S.blobs.c.digest)).scalars())
    alive: set[str] = set()
    digests = list(digests)
    for i in range(0, len(digests), 500):
        alive.update(conn.execute(select(S.blobs.c.digest).where(S.blobs.c.digest.in_(digests[i : i + 500]))).scalars())
    return alive


def referenced_digests(conn: Connection) -> set[str]:
    """Digests that a checkpoint file, an export, an export's file or an assembled file's extents reference."""
    return (
        set(conn.execute(select(S.checkpoint_files.c.digest)).scalars())
        | set(conn.execute(select(S.exports.c.digest)).scalars())
        | set(conn.execute(select(S.export_files.c.digest)).scalars())
        | set(conn.execute(select(S.file_extents.c.object_digest)).scalars())
    )


def stored_files(conn: Connection, rid: int | None) -> tuple[list[Any], list[Any]]:
    """What ``verify`` checks: (checkpoint file rows, export rows), of one run or all.

    Checkpoint file rows: id, name (run), step, file_name, digest, size; export rows: id, digest, size.
    """
    c, cf, r = S.checkpoints, S.checkpoint_files, S.runs
    q = select(c.c.id, r.c.name, c.c.step, cf.c.file_name, cf.c.digest, cf.c.size).join(c, c.c.id == cf.c.checkpoint_id).join(r, r.c.id == c.c.run_id)
    # The object's own size (the blob's): for a SavedModel the export's size is that of all its
    # files, while its digest names the manifest.
    eq = select(S.exports.c.id, S.exports.c.digest, S.blobs.c.size).join(S.blobs, S.blobs.c.digest == S.exports.c.digest)
    # The files of directory exports (SavedModels) are checked like the export's own object.
    fq = select(S.export_files.c.export_id.label("id"), S.export_files.c.digest, S.export_files.c.size).join(
        S.exports, S.exports.c.id == S.export_files.c.export_id
    )
    if rid is not None:
        q = q.where(c.c.run_id == rid)
        eq = eq.where(S.exports.c.run_id == rid)
        fq = fq.where(S.exports.c.run_id == rid)
    return list(conn.execute(q.order_by(r.c.name, c.c.step, cf.c.file_name)).all()), [*conn.execute(eq).all(), *conn.execute(fq).all()]


def integrity_problems(conn: Connection) -> list[str]:
    """What the database's own consistency check finds (SQLite's ``PRAGMA integrity_check``,
    with foreign keys); empty when all is well. PostgreSQL keeps its own consistency."""
    if conn.dialect.name != "sqlite":
        return []
    found = [str(row[0]) for row in conn.exec_driver_sql("PRAGMA integrity_check")]
    found = [] if found == ["ok"] else found
    for row in conn.exec_driver_sql("PRAGMA foreign_key_check"):
        found.append(f"row {row[1]} of table {row[0]} points at a missing row of {row[2]}")
    return found

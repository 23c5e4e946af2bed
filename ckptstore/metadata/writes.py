"""Every write of the metadata: functions of an open write transaction.

Callers open ``Database.write()`` and decide what belongs in one transaction (the commit point
of a save is one of them: see ``files.commit``); nothing here opens or commits a transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, literal_column, select, update

from ..constants import RUN_STATES, RUN_STATUSES
from ..errors import InvalidOptionError, ParamsChangedError, RunExistsError, UnknownRunError
from ..liveness import CRASHED, gone_here, now_sql, status_sql
from . import deletes
from . import schema as S
from .engine import placeholder, sql_of, store_where


def check_status(status: object) -> str:
    """``status`` if it is a run status, else the one error every caller gives."""
    if status not in RUN_STATUSES:
        raise InvalidOptionError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
    return status


def check_state(status: object) -> str:
    """``status`` if a reader may see it (a stored status, or ``crashed``), else one error."""
    if status not in RUN_STATES:
        raise InvalidOptionError(f"status must be one of {', '.join(RUN_STATES)}, got {status!r}")
    return status


def upsert(conn: Connection, table: Any, values: dict[str, Any], keys: list[str], update_cols: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE the ``update_cols`` (or DO NOTHING)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as ins
    else:
        from sqlalchemy.dialects.sqlite import insert as ins  # type: ignore[assignment]
    stmt = ins(table).values(**values)
    if update_cols:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update_cols})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    return conn.execute(stmt)


# --------------------------------------------------------------------------- runs


def check_params_kept(name: str, old: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Refuse a resume whose ``params`` give another value to a param the run has."""
    changed = sorted(k for k, v in params.items() if k in old and old[k] != v)
    if changed:
        shown = ", ".join(f"{k} {old[k]!r} -> {params[k]!r}" for k in changed[:5])
        raise ParamsChangedError(
            f"resuming run {name!r} would change its params ({shown}); pass update_params=True "
            "to record the new values, or start a new run"
        )


def start_run(
    conn: Connection,
    name: str,
    params: dict[str, Any],
    tags: Mapping[str, str],
    retention: dict[str, Any] | None,
    *,
    resume: str = "allow",
    update_params: bool = False,
    process: str | None = None,
    heartbeat_timeout: float | None = None,
) -> tuple[int, bool]:
    """Create the run, or set an existing one running again with params and tags merged in.

    ``resume``: "never" refuses an existing run, "must" a missing one, "allow" takes either.
    A resume whose ``params`` give another value to a param the run has is refused
    (:class:`ParamsChangedError`) unless ``update_params``. ``process`` and
    ``heartbeat_timeout``: the run's owner and how long readers wait for its next heartbeat
    (see ``ckptstore/liveness.py``); the first heartbeat is written here.
    Returns (run id, whether it was resumed).
    """
    alive = {"heartbeat_at": _now(conn), "heartbeat_timeout": heartbeat_timeout, "process": process}
    row = conn.execute(select(S.runs.c.id, S.runs.c.params, S.runs.c.status, S.runs.c.process).where(S.runs.c.name == name)).first()
    if row is None and resume == "must":
        raise UnknownRunError(f"no run named {name!r} to resume in {store_where(conn.engine)}")
    if row is not None and resume == "never":
        raise RunExistsError(
            f"run {name!r} already exists in {store_where(conn.engine)} ({_shown_status(conn, row)}); "
            "pass resume=True to continue it, or use another name (start_run() without a name "
            "picks a new one)"
        )
    if row is None:
        rid = conn.execute(
            S.runs.insert()
            .values(name=name, status="running", params=params, retention=retention, created_at=S.utcnow(), **alive)
            .returning(S.runs.c.id)
        ).scalar_one()
    else:
        rid = row.id
        if not update_params:
            check_params_kept(name, row.params or {}, params)
        values: dict[str, Any] = {
            "status": "running", "ended_at": None, "params": {**(row.params or {}), **params}, **alive
        }
        if retention is not None:
            values["retention"] = retention
        conn.execute(update(S.runs).where(S.runs.c.id == rid).values(**values))
    for k, v in tags.items():
        upsert(conn, S.run_tags, {"run_id": rid, "key": k, "value": v}, ["run_id", "key"], ["value"])
    return rid, row is not None


def rewind_metrics(conn: Connection, rid: int, step: int) -> int:
    """Move the run's metric values at steps after ``step`` into ``metric_history`` (replaced
    now), so that training resumed from the checkpoint at ``step`` logs those steps afresh and
    nothing logged is lost; returns how many values moved."""
    from . import rollups

    ph = placeholder(conn.dialect)
    keys = [k for (k,) in conn.exec_driver_sql(
        f"SELECT DISTINCT key FROM metrics WHERE run_id = {ph} AND step > {ph}", (rid, step))]
    if not keys:
        return 0
    conn.exec_driver_sql(
        "INSERT INTO metric_history (run_id, step, key, value, wall_time, replaced_at) "
        f"SELECT run_id, step, key, value, wall_time, {ph} FROM metrics WHERE run_id = {ph} AND step > {ph}",
        (time.time(), rid, step),
    )
    moved = conn.exec_driver_sql(f"DELETE FROM metrics WHERE run_id = {ph} AND step > {ph}", (rid, step)).rowcount
    for key in keys:
        rollups.rebuild(conn, rid, key)
    return int(moved)


def _shown_status(conn: Connection, row: Any) -> str:
    """The status readers see for ``row`` (``crashed`` included; see ``ckptstore/liveness.py``)."""
    shown: str = conn.execute(
        select(literal_column(status_sql(conn.dialect.name, ()))).select_from(S.runs).where(S.runs.c.id == row.id)
    ).scalar_one()
    if shown == "running" and row.process and gone_here(row.process):
        return CRASHED
    return shown


def ensure_finished_run(conn: Connection, name: str) -> int:
    """The run's id, creating it as a finished run (for imports) if it does not exist."""
    now = S.utcnow()
    upsert(conn, S.runs, {"name": name, "status": "finished", "params": {}, "created_at": now, "ended_at": now}, ["name"], [])
    return conn.execute(select(S.runs.c.id).where(S.runs.c.name == name)).scalar_one()


def set_status(conn: Connection, rid: int, status: str) -> bool:
    """Set the run's status; False if the run no longer exists."""
    check_status(status)
    values: dict[str, Any] = {"status": status, "ended_at": None if status == "running" else S.utcnow()}
    if status == "running":
        # Set by hand, not by a process that beats: shown as running, as before heartbeats.
        values.update(heartbeat_at=None, heartbeat_timeout=None, process=None)
    result = conn.execute(update(S.runs).where(S.runs.c.id == rid).values(**values))
    return bool(result.rowcount)


def _now(conn: Connection) -> Any:
    # The database's clock, which readers compare against: hosts' clocks never meet.
    return literal_column(now_sql(conn.dialect.name))


def beat(conn: Connection, process: str, run_ids: Sequence[int]) -> None:
    """A heartbeat of the running runs ``run_ids`` that ``process`` still owns."""
    conn.execute(
        update(S.runs)
        .where(S.runs.c.id.in_(run_ids), S.runs.c.status == "running", S.runs.c.process == process)
        .values(heartbeat_at=_now(conn))
    )


def end_runs(conn: Connection, process: str, run_ids: Sequence[int], status: str) -> None:
    """Mark ``run_ids`` ``status`` where they are still running and owned by ``process`` (a run
    another process resumed meanwhile, or one finished by hand, is left alone)."""
    check_status(status)
    conn.execute(
        update(S.runs)
        .where(S.runs.c.id.in_(run_ids), S.runs.c.status == "running", S.runs.c.process == process)
        .values(status=status, ended_at=S.utcnow())
    )


def set_retention(conn: Connection, rid: int, retention: dict[str, Any] | None) -> None:
    conn.execute(update(S.runs).where(S.runs.c.id == rid).values(retention=retention))


def delete_run(conn: Connection, rid: int) -> None:
    """Delete the run; metrics, checkpoints, files, variables and exports cascade."""
    conn.execute(delete(S.runs).where(S.runs.c.id == rid))


def metrics_sql(ph: str) -> str:
    """The driver-level upsert of one metric value; a repeated (run, step, key) keeps the newest.

    Straight to the driver: building a dict per value through SQLAlchemy costs more than the
    insert itself at 100k+ values/s.
    """
    return (
        "INSERT INTO metrics (run_id, step, key, value, wall_time) "
        f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}) "
        "ON CONFLICT (run_id, step, key) DO UPDATE SET value = excluded.value, "
        "wall_time = excluded.wall_time"
    )


def write_metrics(conn: Connection, sql: str, rows: Sequence[tuple[int, int, str, float | None, float]]) -> None:
    from . import rollups  # numpy: imported on the first write, not by every CLI command

    conn.exec_driver_sql(sql, list(rows))
    # The charts' summaries, in the same transaction: they never disagree with the rows.
    rollups.update(conn, rows)


# --------------------------------------------------------------------------- blobs and checkpoints


def record_blob(conn: Connection, digest: str, size: int, stat_sig: str | None) -> None:
    # DO UPDATE, not DO NOTHING: on PostgreSQL it locks an existing row, so a concurrent
    # deletion of that blob waits for this commit and then fails its foreign-key check (and
    # retries) instead of pulling the row from under the rows the caller inserts next.
    upsert(conn, S.blobs, {"digest": digest, "size": size, "stat_sig": stat_sig, "created_at": S.utcnow()}, ["digest"], ["stat_sig"])


def set_blob_signatures(conn: Connection, sigs: Mapping[str, str]) -> None:
    for digest, sig in sigs.items():
        conn.execute(update(S.blobs).where(S.blobs.c.digest == digest).values(stat_sig=sig))


def drop_orphan_blobs(conn: Connection, digests: Iterable[str]) -> list[str]:
    """Delete the ``blobs`` rows among ``digests`` that nothing references any more (see
    :func:`.deletes.drop_orphan_blobs`); returns their digests."""
    return deletes.drop_orphan_blobs(sql_of(conn), digests)


def insert_checkpoint(
    conn: Connection,
    *,
    run_id: int,
    step: int,
    fmt: str,
    prefix: str,
    files: Sequence[tuple[str, str, int, str]],
    variables: Sequence[tuple[str, str, list[int]]],
) -> int:
    """One checkpoint with its files (role, name, size, digest) and variables; returns its id."""
    cid = conn.execute(
        S.checkpoints.insert()
        .values(run_id=run_id, step=step, format=fmt, state="committed", prefix=prefix,
                total_bytes=sum(f[2] for f in files), created_at=S.utcnow())
        .returning(S.checkpoints.c.id)
    ).scalar_one()
    conn.execute(
        S.checkpoint_files.insert(),
        [{"checkpoint_id": cid, "role": role, "file_name": n, "size": size, "digest": d} for role, n, size, d in files],
    )
    if variables:
        conn.execute(
            S.variables.insert(),
            [{"checkpoint_id": cid, "name": n, "dtype": d, "shape": s} for n, d, s in variables],
        )
    return cid


def delete_checkpoints(conn: Connection, ids: Sequence[int], *, drop_blobs: bool = True) -> Any:
    """Delete checkpoint rows (cascading to files and variables).

    Returns the blob digests freed (their rows dropped), or with ``drop_blobs=False`` the set of
    digests the deleted rows referenced, for the caller to drop once it has added its own rows.
    """
    ids = list(ids)
    digests = set(conn.execute(select(S.checkpoint_files.c.digest).where(S.checkpoint_files.c.checkpoint_id.in_(ids))).scalars())
    conn.execute(delete(S.checkpoints).where(S.checkpoints.c.id.in_(ids)))
    return drop_orphan_blobs(conn, digests) if drop_blobs else digests


def mark_kept(conn: Connection, ids: Sequence[int]) -> None:
    conn.execute(update(S.checkpoints).where(S.checkpoints.c.id.in_(list(ids))).values(state="kept"))


def insert_export(conn: Connection, **values: Any) -> int:
    return conn.execute(
        S.exports.insert().values(created_at=S.utcnow(), **values).returning(S.exports.c.id)
    ).scalar_one()


def insert_export_files(conn: Connection, export_id: int, files: Sequence[tuple[str, int, str]]) -> None:
    """The files (path, size, digest) of an export that is a directory."""
    if files:
        conn.execute(
            S.export_files.insert(),
            [{"export_id": export_id, "path": p, "size": n, "digest": d} for p, n, d in files],
        )

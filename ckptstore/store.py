"""The store: one database plus one file area, and every query a user makes of them.

``open_store()`` is the entry point. Everything in this module reads or writes metadata only and
never imports TensorFlow; the operations that need TensorFlow (save, restore, freeze, ...) live
in ``checkpoints``, ``tfio`` and ``exports`` and import it lazily.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from sqlalchemy import BigInteger, Connection, and_, delete, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from . import db as _db
from . import schema as S
from .constants import INT_MAX
from .errors import (
    ConflictError,
    InvalidNameError,
    InvalidOptionError,
    MetricValueError,
    ReadOnlyStoreError,
    StoreConfigError,
    StoreOpenError,
    UnknownAliasError,
    UnknownRefError,
    UnknownRunError,
)
from .files import FileArea
from .names import Ref, check_run_name, parse_ref
from .records import (
    AliasInfo,
    CheckpointInfo,
    ExportInfo,
    FileInfo,
    GcReport,
    RunAtStep,
    RunInfo,
    StepMetrics,
    VariableChange,
    VariableDiff,
    VariableInfo,
    VerifyReport,
)
from .retention import Retention

if TYPE_CHECKING:
    import numpy as np

    from .run import Run

log = logging.getLogger(__name__)

DEFAULT_LOCATION = ".ckptstore"
DB_FILE = "store.db"

Target = Union[CheckpointInfo, ExportInfo]


def open_store(
    uri: Optional[str | os.PathLike[str]] = None,
    *,
    root: Optional[str | os.PathLike[str]] = None,
    create: bool = True,
    fsync: bool = False,
    check_schema: bool = True,
) -> "Store":
    """Open (and, if ``create``, create or upgrade) a store.

    ``uri`` is a directory (SQLite file ``store.db`` and the file area inside it) or a SQLAlchemy
    URL such as ``postgresql+psycopg://user@host/db``, in which case ``root`` (or
    ``$CKPTSTORE_ROOT``) names the file area. Without ``uri``: ``$CKPTSTORE_URI``, else
    ``./.ckptstore``. ``fsync=True`` also flushes checkpoint files to disk before their commit,
    which makes saves survive power loss, not only process crashes, at the cost of disk time.
    ``check_schema=False`` opens the database as it is, neither creating, upgrading nor
    refusing its schema (``store.revision`` tells which it has): for ``ckptstore db``.

    >>> store = open_store("/tmp/mystore")            # doctest: +SKIP
    >>> with store.start_run("mnist") as run:         # doctest: +SKIP
    ...     run.log(1, loss=0.5)
    """
    # A pathlib.Path is as natural a store location as a string.
    uri = os.fspath(uri) if uri else (os.environ.get("CKPTSTORE_URI") or DEFAULT_LOCATION)
    root = root or os.environ.get("CKPTSTORE_ROOT") or None
    if "://" in uri:
        url = uri
        if uri.startswith("sqlite"):
            from sqlalchemy.engine import make_url

            database = make_url(uri).database
            if database and database != ":memory:":
                if not create and not Path(database).exists():
                    raise StoreOpenError(f"no store at {database}")
                root = root or Path(database).resolve().parent
                if create:
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(uri).expanduser()
        if path.exists() and not path.is_dir():
            raise StoreConfigError(f"{path} is a file; a store location is a directory or a database URL")
        if not path.exists():
            if not create:
                raise StoreOpenError(
                    f"no store at {path} (set --store / CKPTSTORE_URI, or create one by starting a run)"
                )
            try:
                path.mkdir(parents=True)
            except OSError as exc:
                raise StoreConfigError(f"cannot create the store directory {path}: {exc.strerror}") from None
        elif create is False and not (path / DB_FILE).exists():
            raise StoreOpenError(f"no store at {path} ({DB_FILE} is missing)")
        url = f"sqlite:///{(path / DB_FILE).resolve()}"
        root = root or path.resolve()
    return Store(url, root=root, create=create, fsync=fsync, check_schema=check_schema)


class Store:
    """A ckptstore store. Create it with :func:`open_store`."""

    def __init__(
        self,
        url: str,
        *,
        root: Optional[str | os.PathLike[str]] = None,
        create: bool = True,
        fsync: bool = False,
        check_schema: bool = True,
    ) -> None:
        self.url = url
        self.engine = _db.make_engine(url)
        self.root: Optional[Path] = Path(root) if root is not None else None
        self._files = FileArea(self.root, fsync=fsync) if self.root is not None else None
        try:
            self.revision: Optional[str] = (
                _db.ensure_schema(self.engine, create=create) if check_schema else _db.current_revision(self.engine)
            )
        except Exception:
            self.engine.dispose()
            raise

    # ------------------------------------------------------------------ plumbing

    @property
    def files(self) -> FileArea:
        if self._files is None:
            raise StoreConfigError(
                "this store has no file root: pass root= to open_store or set CKPTSTORE_ROOT"
            )
        return self._files

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def write(self):  # type: ignore[no-untyped-def]
        """A write transaction (see ``db.write_tx``), turning 'read-only' into a clear error."""
        return _WriteTx(self)

    def read(self):  # type: ignore[no-untyped-def]
        return _db.read_tx(self.engine)

    def close(self) -> None:
        from .run import _flush_runs_of

        _flush_runs_of(self)
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r}, root={str(self.root)!r})"

    # ------------------------------------------------------------------ runs

    def start_run(
        self,
        name: Optional[str] = None,
        *,
        params: Optional[Mapping[str, Any]] = None,
        tags: Optional[Mapping[str, Any]] = None,
        retention: Optional[Retention] = None,
        **logging_options: Any,
    ) -> "Run":
        """Start a run, or resume the run of that name; use it as a context manager.

        On normal exit of the ``with`` block the run is marked finished, on an exception failed;
        logged metrics are flushed either way. ``params`` and ``tags`` are merged into what a
        resumed run already has; ``retention`` replaces its retention rule.
        ``logging_options`` tune :meth:`Run.log` buffering (``flush_every``, ``flush_seconds``,
        ``nonfinite``).
        """
        from .run import Run

        if name is None:
            import secrets
            from datetime import datetime

            name = f"run-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        check_run_name(name)
        params = _jsonable_params(params or {})
        tag_items = {str(k): str(v) for k, v in (tags or {}).items()}
        for k, v in tag_items.items():
            if not k or len(k) > S.NAME_MAX:
                raise InvalidNameError(f"tag keys must be 1 to {S.NAME_MAX} characters, got {k!r:.60}")
            if "\0" in k or "\0" in v:
                # PostgreSQL text cannot hold NUL; refuse on every backend alike.
                raise InvalidNameError(f"tag {k!r:.60} must not contain NUL characters")
        ret_json = retention.to_json() if retention is not None else None
        run_id = self._upsert_run(name, params, tag_items, ret_json)
        return Run(self, run_id, name, **logging_options)

    def _upsert_run(
        self, name: str, params: dict[str, Any], tags: dict[str, str], retention: Optional[dict[str, Any]]
    ) -> int:
        for attempt in range(3):
            try:
                with self.write() as conn:
                    row = conn.execute(
                        select(S.Run.id, S.Run.params).where(S.Run.name == name)
                    ).first()
                    if row is None:
                        run_id = conn.execute(
                            S.Run.__table__.insert()
                            .values(
                                name=name,
                                status="running",
                                params=params,
                                retention=retention,
                                created_at=S.utcnow(),
                            )
                            .returning(S.Run.__table__.c.id)
                        ).scalar_one()
                    else:
                        run_id = row.id
                        values: dict[str, Any] = {
                            "status": "running",
                            "ended_at": None,
                            "params": {**(row.params or {}), **params},
                        }
                        if retention is not None:
                            values["retention"] = retention
                        conn.execute(update(S.Run).where(S.Run.id == run_id).values(**values))
                    for k, v in tags.items():
                        conn.execute(_upsert(self.dialect, S.RunTag.__table__, {"run_id": run_id, "key": k, "value": v}, ["run_id", "key"], ["value"]))
                    return run_id
            except IntegrityError:
                # Another process created the same run between our SELECT and INSERT (PostgreSQL).
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def run(self, name: str) -> "Run":
        """A handle on an existing run (for logging or saving without changing its status)."""
        from .run import Run

        info = self.get_run(name)
        return Run(self, info.id, info.name)

    def _run_id(self, conn: Connection, name: str) -> int:
        rid = conn.execute(select(S.Run.id).where(S.Run.name == name)).scalar()
        if rid is None:
            raise UnknownRunError(f"no run named {name!r}")
        return rid

    def get_run(self, name: str) -> RunInfo:
        """One run with its params, tags, last step and number of checkpoints."""
        runs = self._runs_query(names=[name])
        if not runs:
            raise UnknownRunError(f"no run named {name!r}")
        return runs[0]

    def runs(
        self,
        *,
        status: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        name: Optional[str] = None,
    ) -> list[RunInfo]:
        """Runs, oldest first, filtered by status, tags (all must match) and a name glob.

        >>> store.runs(status="finished", tags={"team": "vision"}, name="resnet-*")  # doctest: +SKIP
        """
        if status is not None and status not in S.RUN_STATUSES:
            raise InvalidOptionError(f"status must be one of {', '.join(S.RUN_STATUSES)}, got {status!r}")
        return self._runs_query(status=status, tags=tags, pattern=name)

    def _runs_query(
        self,
        *,
        names: Optional[list[str]] = None,
        status: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        pattern: Optional[str] = None,
    ) -> list[RunInfo]:
        r = S.Run
        # Correlated subqueries use the (run_id, step, ...) primary key: O(log n) per run,
        # where a GROUP BY over metrics would scan every row of every run.
        last_step = (
            select(func.max(S.Metric.step)).where(S.Metric.run_id == r.id).scalar_subquery()
        )
        last_ckpt = (
            select(func.max(S.Checkpoint.step)).where(S.Checkpoint.run_id == r.id).scalar_subquery()
        )
        n_ckpt = select(func.count()).where(S.Checkpoint.run_id == r.id).scalar_subquery()
        q = select(
            r.id, r.name, r.status, r.params, r.retention, r.created_at, r.ended_at,
            last_step.label("last_step"), last_ckpt.label("last_ckpt"), n_ckpt.label("n_ckpt"),
        ).order_by(r.id)
        if names is not None:
            q = q.where(r.name.in_(names))
        if status is not None:
            q = q.where(r.status == status)
        for k, v in (tags or {}).items():
            q = q.where(
                select(S.RunTag.run_id)
                .where(S.RunTag.run_id == r.id, S.RunTag.key == k, S.RunTag.value == str(v))
                .exists()
            )
        if pattern is not None and any(ch in pattern for ch in "*?["):
            # LIKE narrows the rows in SQL, fnmatch decides exactly below. A bracket class has
            # no LIKE form, so the SQL filter stops at the first '['.
            head, bracket, _ = pattern.partition("[")
            like = head.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            like = like.replace("*", "%").replace("?", "_") + ("%" if bracket else "")
            q = q.where(r.name.like(like, escape="\\"))
        elif pattern is not None:
            q = q.where(r.name == pattern)
        with self.read() as conn:
            rows = conn.execute(q).all()
            ids = [row.id for row in rows]
            tag_map: dict[int, dict[str, str]] = defaultdict(dict)
            if ids:
                tq = select(S.RunTag.run_id, S.RunTag.key, S.RunTag.value)
                if len(ids) < 500:
                    tq = tq.where(S.RunTag.run_id.in_(ids))
                for t in conn.execute(tq):
                    tag_map[t.run_id][t.key] = t.value
        out = []
        for row in rows:
            if pattern is not None and any(ch in pattern for ch in "*?[") and not fnmatch.fnmatchcase(row.name, pattern):
                continue
            last = max((s for s in (row.last_step, row.last_ckpt) if s is not None), default=None)
            out.append(
                RunInfo(
                    id=row.id, name=row.name, status=row.status, params=row.params or {},
                    tags=tag_map.get(row.id, {}), created_at=_aware(row.created_at),
                    ended_at=_aware(row.ended_at), last_step=last, checkpoints=row.n_ckpt,
                    retention=row.retention,
                )
            )
        return out

    def set_status(self, name: str, status: str) -> None:
        if status not in S.RUN_STATUSES:
            raise InvalidOptionError(f"status must be one of {', '.join(S.RUN_STATUSES)}, got {status!r}")
        with self.write() as conn:
            rid = self._run_id(conn, name)
            conn.execute(
                update(S.Run).where(S.Run.id == rid).values(
                    status=status, ended_at=None if status == "running" else S.utcnow()
                )
            )

    def set_retention(self, name: str, retention: Optional[Retention]) -> None:
        """Replace a run's retention rule (applied at its next save, or by ``apply_retention``)."""
        with self.write() as conn:
            rid = self._run_id(conn, name)
            conn.execute(
                update(S.Run).where(S.Run.id == rid).values(
                    retention=retention.to_json() if retention else None
                )
            )

    def delete_run(self, name: str) -> int:
        """Delete a run with its metrics, checkpoints and exports; returns checkpoints deleted.

        Refused while an alias points at one of its checkpoints or exports: untag first.
        """
        from .blobs import release_unreferenced

        with self.write() as conn:
            rid = self._run_id(conn, name)
            pinned = conn.execute(
                select(S.Alias.name)
                .outerjoin(S.Checkpoint, S.Alias.checkpoint_id == S.Checkpoint.id)
                .outerjoin(S.Export, S.Alias.export_id == S.Export.id)
                .where(or_(S.Checkpoint.run_id == rid, S.Export.run_id == rid))
            ).scalars().all()
            if pinned:
                raise ConflictError(
                    f"run {name!r} has versions named {', '.join(sorted(pinned))}; "
                    "untag them before deleting the run"
                )
            n = conn.execute(select(func.count()).where(S.Checkpoint.run_id == rid)).scalar_one()
            digests = _digests_of_run(conn, rid)
            conn.execute(delete(S.Run).where(S.Run.id == rid))
            gone = _drop_orphan_blobs(conn, digests)
        release_unreferenced(self, gone)
        return n

    # ------------------------------------------------------------------ metrics

    def metric_keys(self, run: str) -> list[str]:
        with self.read() as conn:
            rid = self._run_id(conn, run)
            return list(
                conn.execute(
                    select(S.Metric.key).where(S.Metric.run_id == rid).distinct().order_by(S.Metric.key)
                ).scalars()
            )

    def steps(
        self,
        run: str,
        *,
        start: Optional[int] = None,
        stop: Optional[int] = None,
        keys: Optional[Iterable[str]] = None,
    ) -> list[StepMetrics]:
        """One run's metrics step by step, for steps in [start, stop] (both inclusive)."""
        m = S.Metric
        with self.read() as conn:
            rid = self._run_id(conn, run)
            q = select(m.step, m.key, m.value, m.wall_time).where(m.run_id == rid)
            # Bounds past the BIGINT range would overflow the driver; clamped they mean the same.
            if start is not None:
                if start > INT_MAX:
                    return []
                q = q.where(m.step >= start)
            if stop is not None:
                q = q.where(m.step <= min(stop, INT_MAX))
            if keys is not None:
                q = q.where(m.key.in_(list(keys)))
            rows = conn.execute(q.order_by(m.step, m.key)).all()
        out: list[StepMetrics] = []
        cur: Optional[StepMetrics] = None
        for step, key, value, wall in rows:
            if cur is None or cur.step != step:
                cur = StepMetrics(step=step, wall_time=wall, metrics={})
                out.append(cur)
            cur.metrics[key] = _value_out(value)
        return out

    def at_step(
        self, step: int, *, nearest: bool = False, keys: Optional[Iterable[str]] = None
    ) -> list[RunAtStep]:
        """Every run's metrics at ``step``; with ``nearest``, at its last step at or below it.

        Also tells, per run, the checkpoint at that step (exact) or the newest checkpoint at or
        below ``step`` (nearest), so "which runs reached 50k, what was their loss, is there a
        checkpoint?" is one call.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise MetricValueError(f"step must be a whole number >= 0, got {step!r}")
        if step > INT_MAX:
            if not nearest:
                return []  # no step is that large
            step = INT_MAX
        m, r, c = S.Metric, S.Run, S.Checkpoint
        key_list = list(keys) if keys is not None else None
        with self.read() as conn:
            if nearest:
                cond = [m.run_id == r.id, m.step <= step]
                if key_list:
                    # A metric logged less often than others (val_acc every 100 steps, loss every
                    # step) is found at its own last step, not dropped at the run's last step.
                    cond.append(m.key.in_(key_list))
                last = select(func.max(m.step)).where(*cond).scalar_subquery()
                ckpt = select(func.max(c.step)).where(c.run_id == r.id, c.step <= step).scalar_subquery()
                base = select(r.id.label("run_id"), r.name, last.label("step"), ckpt.label("ckpt")).subquery()
            else:
                ckpt = select(c.step).where(c.run_id == r.id, c.step == step).scalar_subquery()
                has_metric = select(m.run_id).where(m.run_id == r.id, m.step == step).exists()
                base = (
                    select(r.id.label("run_id"), r.name, literal(step, BigInteger).label("step"), ckpt.label("ckpt"))
                    .where(or_(has_metric, ckpt.is_not(None)))
                    .subquery()
                )
            runs = conn.execute(select(base).where(or_(base.c.step.is_not(None), base.c.ckpt.is_not(None))).order_by(base.c.run_id)).all()
            # Values are fetched by the (run, step) pairs found above, by primary key. Joining
            # the subquery instead lets SQLite flatten it and re-run the correlated MAX for
            # every metrics row: 0.8 s instead of milliseconds on 100 runs x 1,000 steps.
            # The SQL is written out at the driver level: building ~1,000 SQLAlchemy
            # expressions per call would cost more than the query itself.
            ph = "%s" if self.engine.dialect.paramstyle in ("format", "pyformat") else "?"
            if nearest:
                pairs = [(row.run_id, row.step) for row in runs if row.step is not None]
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
                for run_id, key, value in conn.exec_driver_sql(sql, tuple(args)):
                    values[run_id][key] = _value_out(value)
        out = []
        for row in runs:
            st = row.step if row.step is not None else row.ckpt
            out.append(RunAtStep(run=row.name, step=st, metrics=dict(sorted(values.get(row.run_id, {}).items())), checkpoint_step=row.ckpt))
        return out

    # ------------------------------------------------------------------ references

    def resolve(self, ref: str | Ref) -> Target:
        """The checkpoint or export a reference names (``run@step``, ``run@latest``,
        ``run@~N``, ``export:ID`` or an alias)."""
        parsed = ref if isinstance(ref, Ref) else parse_ref(ref)
        with self.read() as conn:
            return self._resolve(conn, parsed)

    def _resolve(self, conn: Connection, ref: Ref) -> Target:
        c = S.Checkpoint
        if ref.kind == "alias":
            row = conn.execute(
                select(S.Alias.checkpoint_id, S.Alias.export_id).where(S.Alias.name == ref.alias)
            ).first()
            if row is None:
                raise UnknownAliasError(
                    f"no version named {ref.alias!r} (see 'ckptstore versions'; "
                    "checkpoints are referred to as run@step)"
                )
            if row.checkpoint_id is not None:
                return self._checkpoint_info(conn, c.id == row.checkpoint_id, ref)
            return self._export_info(conn, row.export_id, ref)
        if ref.kind == "export":
            return self._export_info(conn, ref.export_id, ref)
        rid = self._run_id(conn, ref.run)  # type: ignore[arg-type]
        if ref.kind == "step":
            cond = and_(c.run_id == rid, c.step == ref.step)
        else:
            q = select(func.max(c.step)).where(c.run_id == rid)
            if ref.kind == "nearest":
                q = q.where(c.step <= ref.step)
            st = conn.execute(q).scalar()
            if st is None:
                below = f" at or below step {ref.step}" if ref.kind == "nearest" else ""
                raise UnknownRefError(f"run {ref.run!r} has no checkpoint{below}")
            cond = and_(c.run_id == rid, c.step == st)
        return self._checkpoint_info(conn, cond, ref)

    def _checkpoint_info(self, conn: Connection, cond: Any, ref: Optional[Ref]) -> CheckpointInfo:
        c = S.Checkpoint
        row = conn.execute(
            select(*c.__table__.c, S.Run.name.label("run_name")).join(S.Run, S.Run.id == c.run_id).where(cond)
        ).first()
        if row is None:
            what = ref.text if ref is not None else "checkpoint"
            hint = ""
            if ref is not None and ref.kind == "step":
                steps = conn.execute(
                    select(c.step).join(S.Run, S.Run.id == c.run_id).where(S.Run.name == ref.run).order_by(c.step)
                ).scalars().all()
                hint = f"; its checkpoints are at steps {_steps_summary(steps)}" if steps else "; it has no checkpoints"
            raise UnknownRefError(f"no checkpoint {what}{hint}")
        ck = row
        files = conn.execute(
            select(S.CheckpointFile.role, S.CheckpointFile.file_name, S.CheckpointFile.size, S.CheckpointFile.digest)
            .where(S.CheckpointFile.checkpoint_id == ck.id)
            .order_by(S.CheckpointFile.file_name)
        ).all()
        aliases = conn.execute(
            select(S.Alias.name).where(S.Alias.checkpoint_id == ck.id).order_by(S.Alias.name)
        ).scalars().all()
        return CheckpointInfo(
            id=ck.id, run=row.run_name, step=ck.step, format=ck.format, state=ck.state,
            prefix=ck.prefix, total_bytes=ck.total_bytes, created_at=_aware(ck.created_at),
            aliases=list(aliases), files=[FileInfo(*f) for f in files],
        )

    def _export_info(self, conn: Connection, export_id: Optional[int], ref: Optional[Ref]) -> ExportInfo:
        e = S.Export
        row = conn.execute(
            select(*e.__table__.c, S.Run.name.label("run_name")).join(S.Run, S.Run.id == e.run_id).where(e.id == export_id)
        ).first()
        if row is None:
            raise UnknownRefError(f"no export {export_id}" + (f" (from {ref.text!r})" if ref and ref.kind == "alias" else ""))
        ex = row
        aliases = conn.execute(select(S.Alias.name).where(S.Alias.export_id == ex.id).order_by(S.Alias.name)).scalars().all()
        return ExportInfo(
            id=ex.id, run=row.run_name, step=ex.step, checkpoint_id=ex.checkpoint_id, kind=ex.kind,
            inputs=ex.inputs, outputs=ex.outputs, node_count=ex.node_count, size=ex.size,
            digest=ex.digest, tf_version=ex.tf_version, created_at=_aware(ex.created_at),
            aliases=list(aliases),
        )

    def checkpoint(self, ref: str | Ref) -> CheckpointInfo:
        """The checkpoint a reference names; an error if it names an export."""
        target = self.resolve(ref)
        if not isinstance(target, CheckpointInfo):
            raise UnknownRefError(f"{_text(ref)!r} names export {target.id}, not a checkpoint")
        return target

    def checkpoints(self, run: str) -> list[CheckpointInfo]:
        """A run's checkpoints, oldest step first, with their aliases and files."""
        c = S.Checkpoint
        with self.read() as conn:
            rid = self._run_id(conn, run)
            rows = conn.execute(select(*c.__table__.c).where(c.run_id == rid).order_by(c.step)).all()
            ids = [ck.id for ck in rows]
            files: dict[int, list[FileInfo]] = defaultdict(list)
            aliases: dict[int, list[str]] = defaultdict(list)
            if ids:
                for f in conn.execute(
                    select(S.CheckpointFile.checkpoint_id, S.CheckpointFile.role, S.CheckpointFile.file_name,
                           S.CheckpointFile.size, S.CheckpointFile.digest)
                    .join(c, c.id == S.CheckpointFile.checkpoint_id).where(c.run_id == rid)
                    .order_by(S.CheckpointFile.file_name)
                ):
                    files[f[0]].append(FileInfo(*f[1:]))
                for cid, name in conn.execute(
                    select(S.Alias.checkpoint_id, S.Alias.name).join(c, c.id == S.Alias.checkpoint_id)
                    .where(c.run_id == rid).order_by(S.Alias.name)
                ):
                    aliases[cid].append(name)
        return [
            CheckpointInfo(
                id=ck.id, run=run, step=ck.step, format=ck.format, state=ck.state, prefix=ck.prefix,
                total_bytes=ck.total_bytes, created_at=_aware(ck.created_at),
                aliases=aliases.get(ck.id, []), files=files.get(ck.id, []),
            )
            for ck in rows
        ]

    def variables(self, ref: str | Ref) -> list[VariableInfo]:
        """The variables (name, dtype, shape) saved in a checkpoint, read from the database."""
        ck = self.checkpoint(ref)
        with self.read() as conn:
            rows = conn.execute(
                select(S.Variable.name, S.Variable.dtype, S.Variable.shape)
                .where(S.Variable.checkpoint_id == ck.id).order_by(S.Variable.name)
            ).all()
        return [VariableInfo(name, dtype, list(shape)) for name, dtype, shape in rows]

    def diff_variables(self, ref: str | Ref, other: str | Ref) -> VariableDiff:
        """What changed in the variables from checkpoint ``ref`` to checkpoint ``other``:
        variables added, removed, and those whose dtype or shape changed (by name).

        >>> store.diff_variables("mnist@1000", "mnist-wide@latest").changed   # doctest: +SKIP
        """
        before = {v.name: v for v in self.variables(ref)}
        after = {v.name: v for v in self.variables(other)}
        changed = [
            VariableChange(name, before[name], after[name])
            for name in sorted(before.keys() & after.keys())
            if (before[name].dtype, before[name].shape) != (after[name].dtype, after[name].shape)
        ]
        return VariableDiff(
            added=[after[n] for n in sorted(after.keys() - before.keys())],
            removed=[before[n] for n in sorted(before.keys() - after.keys())],
            changed=changed,
            unchanged=len(before.keys() & after.keys()) - len(changed),
        )

    # ------------------------------------------------------------------ TensorFlow-backed operations

    def restore(self, ref: str | Ref, target: Any, *, verify: Union[bool, str] = True, **kwargs: Any) -> Any:
        """Restore a checkpoint into a TF1 session or a ``tf.train.Checkpoint`` / trackable.

        See :func:`ckptstore.checkpoints.restore`.
        """
        from .checkpoints import restore

        return restore(self, ref, target, verify=verify, **kwargs)

    def materialize(
        self,
        ref: str | Ref,
        to_dir: str | os.PathLike[str],
        *,
        verify: Union[bool, str] = True,
        link: str = "hard",
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Path:
        """Write a plain TensorFlow checkpoint directory; returns the checkpoint prefix path.

        ``progress(done, total)`` is called with the bytes checked so far.
        """
        from .checkpoints import materialize

        return materialize(self, ref, to_dir, verify=verify, link=link, progress=progress)

    def read_variable(self, ref: str | Ref, name: str, *, verify: Union[bool, str] = True) -> "np.ndarray":
        """One saved variable's value as a numpy array, without building a graph."""
        from .checkpoints import read_variable

        return read_variable(self, ref, name, verify=verify)

    def import_checkpoints(self, directory: str | os.PathLike[str], *, run: str, **kwargs: Any) -> list[CheckpointInfo]:
        """Register checkpoints written by vanilla ``Saver`` / ``CheckpointManager``."""
        from .checkpoints import import_checkpoints

        return import_checkpoints(self, directory, run=run, **kwargs)

    def delete_checkpoint(self, ref: str | Ref) -> None:
        """Delete one checkpoint (refused if an alias points at it)."""
        from .checkpoints import delete_checkpoints

        ck = self.checkpoint(ref)
        if ck.aliases:
            raise ConflictError(f"checkpoint {ck.ref} is the version {', '.join(ck.aliases)}; untag it first")
        delete_checkpoints(self, [ck.id])

    def apply_retention(self, run: str) -> list[int]:
        """Apply the run's retention rule now; returns the steps deleted."""
        from .checkpoints import apply_retention

        with self.read() as conn:
            rid = self._run_id(conn, run)
        return apply_retention(self, rid)

    def verify(self, run: Optional[str] = None, *, full: bool = True, progress: Any = None) -> VerifyReport:
        """Re-digest stored files; report missing, corrupt and unexpected ones."""
        from .checkpoints import verify

        return verify(self, run, full=full, progress=progress)

    def gc(self, *, dry_run: bool = False, progress: Optional[Callable[[int, int], None]] = None) -> GcReport:
        """Remove unreferenced files and stale staging directories.

        ``progress(done, total)`` is called with the number of unreferenced files removed so far.
        """
        from .checkpoints import gc

        return gc(self, dry_run=dry_run, progress=progress)

    # exports and named versions
    def exports(self, run: Optional[str] = None) -> list[ExportInfo]:
        """Frozen exports, oldest first, of one run or of the whole store, with their aliases."""
        from .exports import list_exports

        return list_exports(self, run)

    def load_frozen(self, ref: str | Ref, **kwargs: Any) -> Any:
        """An export as a TF2 callable over its inputs (positional or by name), digest checked
        first. ``ref``: ``export:ID``, an alias, or ``run@step`` / ``run@latest`` / ``run@~N``
        for the run's export at that step. See :func:`ckptstore.exports.load_frozen`."""
        from .exports import load_frozen

        return load_frozen(self, ref, **kwargs)

    def import_frozen(self, ref: str | Ref, graph: Any = None, **kwargs: Any) -> Any:
        """Import an export's GraphDef into a TF1 graph (new by default, ``name=`` prefix); returns it."""
        from .exports import import_frozen

        return import_frozen(self, ref, graph, **kwargs)

    def export_frozen(self, ref: str | Ref, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write an export's ``.pb`` and a JSON sidecar (``path + ".json"``) for deployment."""
        from .exports import export_frozen

        return export_frozen(self, ref, path, **kwargs)

    def tag(self, ref: str | Ref, name: str, *, message: Optional[str] = None) -> AliasInfo:
        """Point the alias ``name`` at what ``ref`` names, keeping the alias's history."""
        from .aliases import tag

        return tag(self, ref, name, message=message)

    def untag(self, name: str, *, message: Optional[str] = None) -> None:
        """Remove an alias (its target is no longer protected); its history is kept."""
        from .aliases import untag

        untag(self, name, message=message)

    def versions(self, name: Optional[str] = None) -> list[AliasInfo]:
        """Aliases (named versions) with their history, newest event first."""
        from .aliases import versions

        return versions(self, name)


class _WriteTx:
    """``with store.write() as conn``: a write transaction with read-only stores reported clearly."""

    def __init__(self, store: Store) -> None:
        self._cm = _db.write_tx(store.engine)
        self._store = store

    def __enter__(self) -> Connection:
        try:
            return self._cm.__enter__()
        except OperationalError as exc:
            raise _translate(self._store, exc) from None

    def __exit__(self, et: Any, ev: Any, tb: Any) -> Optional[bool]:
        try:
            return self._cm.__exit__(et, ev, tb)
        except OperationalError as exc:
            raise _translate(self._store, exc) from None


def _translate(store: Store, exc: OperationalError) -> Exception:
    msg = str(getattr(exc, "orig", exc))
    if "readonly" in msg or "read-only" in msg:
        return ReadOnlyStoreError(f"the store at {store.root or store.url} is read-only ({msg})")
    return exc


def _upsert(dialect: str, table: Any, values: dict[str, Any], keys: list[str], update_cols: list[str]) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as ins
    else:
        from sqlalchemy.dialects.sqlite import insert as ins  # type: ignore[assignment]
    stmt = ins(table).values(**values)
    if update_cols:
        return stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update_cols})
    return stmt.on_conflict_do_nothing(index_elements=keys)


def _digests_of_run(conn: Connection, run_id: int) -> set[str]:
    d = set(conn.execute(
        select(S.CheckpointFile.digest).join(S.Checkpoint, S.Checkpoint.id == S.CheckpointFile.checkpoint_id)
        .where(S.Checkpoint.run_id == run_id)
    ).scalars())
    d.update(conn.execute(select(S.Export.digest).where(S.Export.run_id == run_id)).scalars())
    return d


def _drop_orphan_blobs(conn: Connection, digests: Iterable[str]) -> list[str]:
    """Delete the ``blobs`` rows among ``digests`` that nothing references any more."""
    digests = list(digests)
    if not digests:
        return []
    gone: list[str] = []
    for i in range(0, len(digests), 500):
        chunk = digests[i : i + 500]
        still = set(conn.execute(select(S.CheckpointFile.digest).where(S.CheckpointFile.digest.in_(chunk))).scalars())
        still.update(conn.execute(select(S.Export.digest).where(S.Export.digest.in_(chunk))).scalars())
        orphans = [d for d in chunk if d not in still]
        if orphans:
            conn.execute(delete(S.Blob).where(S.Blob.digest.in_(orphans)))
            gone.extend(orphans)
    return gone


def _jsonable_params(params: Mapping[str, Any]) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    for k, v in params.items():
        try:
            json.dumps(v, allow_nan=False)
            out[str(k)] = v
        except (TypeError, ValueError):
            out[str(k)] = repr(v) if not hasattr(v, "item") else v.item()
    return out


def _value_out(v: Optional[float]) -> float:
    return math.nan if v is None else float(v)


def _aware(dt: Any) -> Any:
    from datetime import timezone

    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)  # SQLite drops the zone; we only ever store UTC
    return dt


def _text(ref: str | Ref) -> str:
    return ref.text if isinstance(ref, Ref) else str(ref)


def _steps_summary(steps: list[int]) -> str:
    if len(steps) <= 6:
        return ", ".join(map(str, steps))
    return ", ".join(map(str, steps[:3])) + ", ..., " + ", ".join(map(str, steps[-2:]))

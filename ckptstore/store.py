"""The store facade: one database plus one object area, and every operation a user asks of them.

``open_store()`` is the entry point. This module holds no SQL and no TensorFlow: it validates
arguments, opens a transaction where a query needs one, and hands the work to the flows
(``ckptstore.flows``) and the metadata queries (``ckptstore.metadata.queries``). Importing it
imports SQLAlchemy, never TensorFlow.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypedDict

from sqlalchemy.engine import URL

from . import distributed
from .errors import (
    ConflictError,
    InvalidOptionError,
    MetricValueError,
    RunExistsError,
    StoreConfigError,
    StoreOpenError,
    TopologyChangedError,
    UnknownRunError,
)
from .flows import aliases as alias_flows
from .flows import async_save, deletion, deploy_exports, imports, maintenance, materialized, recording
from .flows import checkpoints as checkpoint_flows
from .flows import exports as export_flows
from .flows import runs as run_flows
from .flows import tensors as tensor_flows
from .flows.areas import copy_root, select_area
from .flows.backend import Backend
from .flows.heartbeat import Heartbeat
from .flows.resolve import Target, checkpoint_of, resolve
from .location import DB_FILE, check_existing_store, parse_bucket_root, parse_location, redact
from .metadata import queries as Q
from .metadata import versions
from .metadata import writes as W
from .metadata.engine import Database
from .metadata.writes import check_state, check_status
from .names import Ref, check_params, check_run_name, check_tags, new_run_name
from .records import (
    AliasInfo,
    CheckpointInfo,
    ExportInfo,
    GcReport,
    MetricChange,
    MetricSummary,
    RunAtStep,
    RunComparison,
    RunInfo,
    RunsTable,
    SpaceUsage,
    StepMetrics,
    VariableDiff,
    VariableInfo,
    VerifyReport,
)
from .retention import Retention, resolve_mode
from .run import FollowerRun, LiveRuns, Run, start_in_lockstep

Progress = Callable[[int, int], None] | None


def open_store(
    uri: str | os.PathLike[str] | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    create: bool = True,
    fsync: bool = False,
    check_schema: bool = True,
    readonly: bool = False,
) -> Store:
    """Open (and, if ``create``, create or upgrade) a store.

    ``uri`` is a directory (SQLite file ``store.db`` and the object area inside it), taken
    literally, or a SQLAlchemy URL such as ``postgresql+psycopg://user@host/db``, in which case
    ``root`` (or ``$CKPTSTORE_ROOT``) names the object area. Without ``uri``:
    ``$CKPTSTORE_URI``, else ``./.ckptstore``. ``fsync=True`` also flushes checkpoint files to
    disk before their commit, which makes saves survive power loss, not only process crashes, at
    the cost of disk time. ``check_schema=False`` opens the database as it is, neither creating,
    upgrading nor refusing its schema (``store.revision`` tells which it has): for ``ckptstore db``.
    ``readonly=True`` (implies ``create=False``) opens it so that nothing on disk changes: no
    file is created or rewritten and no schema is upgraded; writes then fail with
    :class:`ReadOnlyStoreError`. Any number of processes may create the same new store at once.

    >>> store = open_store("/tmp/mystore")            # doctest: +SKIP
    >>> with store.start_run("mnist") as run:         # doctest: +SKIP
    ...     run.log(1, loss=0.5)
    """
    create = create and not readonly
    loc = parse_location(uri)
    root = root or os.environ.get("CKPTSTORE_ROOT") or None
    # The directory next to a SQLite file is the file root only if the store records no other
    # (an s3:// root recorded in the database wins, see Store).
    default_root: str | os.PathLike[str] | None = None
    url: str | URL
    if loc.url is not None:
        url = loc.url
        if url.startswith("sqlite"):
            from sqlalchemy.engine import make_url

            try:
                database = make_url(url).database
            except Exception:
                raise StoreConfigError(f"not a database URL: {redact(url)!r}") from None
            if database and database != ":memory:":
                if not create and _is_empty(Path(database), check_schema):
                    readonly = True
                default_root = Path(database).resolve().parent
                if create:
                    _make_dir(Path(database).parent)
    else:
        path = loc.directory
        assert path is not None
        if create:
            if path.exists() and not path.is_dir():
                raise StoreConfigError(f"{redact(str(path))} is a file; a store location is a directory or a database URL")
            _make_dir(path)
        else:
            check_existing_store(path)
            if _is_empty(path / DB_FILE, check_schema):
                readonly = True
        # Built from its parts: no character of the path is read as URL syntax.
        url = URL.create("sqlite", database=str((path / DB_FILE).resolve()))
        default_root = path.resolve()
    return Store(
        url, root=root, create=create, fsync=fsync, check_schema=check_schema, readonly=readonly, default_root=default_root
    )


def _resume_mode(resume: bool | str) -> str:
    """``resume`` as "never", "allow" or "must" (True is "allow", False "never")."""
    if resume is True:
        return "allow"
    if resume is False:
        return "never"
    if resume in ("never", "allow", "must"):
        return resume
    raise InvalidOptionError(f"resume must be True, False, 'never', 'allow' or 'must', got {resume!r}")


#: The tag a distributed run's chief records: how many workers trained it.
WORKERS_TAG = "ckptstore.workers"


def _check_topology(run: RunInfo, who: distributed.Role, update_params: bool) -> None:
    """A resume by another number of workers changes the global batch, and so the training:
    refused, before anything is written, unless the caller says it is meant."""
    recorded = run.tags.get(WORKERS_TAG)
    if recorded is None or update_params or recorded == str(who.num_workers):
        return
    raise TopologyChangedError(
        f"run {run.name!r} was trained by {recorded} worker(s) and this job has {who.num_workers}: "
        "the global batch would change; resume with the same cluster, or pass update_params=True"
    )


def _is_empty(database: Path, check_schema: bool) -> bool:
    """Whether an existing SQLite file is empty; refused at once when a schema is expected.

    Connecting normally would write a header into it: an empty file is only ever opened
    read-only (``ckptstore db current`` reports it as an empty database)."""
    try:
        size = database.stat().st_size
    except FileNotFoundError:
        raise StoreOpenError(f"no store at {redact(str(database))}") from None
    except OSError as exc:
        raise StoreOpenError(f"cannot open {redact(str(database))}: {exc.strerror}") from None
    if size == 0 and check_schema:
        raise StoreOpenError(f"{redact(str(database))} is an empty file, not a ckptstore store")
    return size == 0


def _make_dir(path: Path) -> None:
    # exist_ok: another process creating the same store at the same moment is not an error.
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreConfigError(f"{redact(str(path))} is a file; a store location is a directory or a database URL") from None
    except OSError as exc:
        raise StoreConfigError(f"cannot create the store directory {redact(str(path))}: {exc.strerror}") from None


class RunOptions(TypedDict, total=False):
    """The keywords of :meth:`Store.start_run` that helpers opening a run for you pass on
    (``preemption.Checkpointing``, ``keras.BackupAndRestore``): typed, so a misspelt one is
    an error for the type checker as for Python. ``strategy`` is in :class:`StartRunOptions`
    (``Checkpointing`` takes it as its own argument)."""

    params: Mapping[str, Any] | None
    tags: Mapping[str, Any] | None
    retention: Retention | None
    overwrite: bool
    update_params: bool
    flush_every: int
    flush_seconds: float
    nonfinite: Literal["store", "raise", "skip"]
    saves_in_flight: int


class StartRunOptions(RunOptions, total=False):
    """:class:`RunOptions` and the ``tf.distribute`` strategy whose chief records the run."""

    strategy: Any


class Store:
    """A ckptstore store. Create it with :func:`open_store`."""

    def __init__(
        self,
        url: str | URL,
        *,
        root: str | os.PathLike[str] | None = None,
        create: bool = True,
        fsync: bool = False,
        check_schema: bool = True,
        readonly: bool = False,
        default_root: str | os.PathLike[str] | None = None,
    ) -> None:
        create = create and not readonly
        self.db = Database(url, readonly=readonly)
        self.url = self.db.url
        #: Run handles of this store and their unwritten metrics (see ``ckptstore.run``).
        self.live_runs = LiveRuns()
        #: The runs this store started here and nobody finished yet (see ``flows/heartbeat.py``).
        self.heartbeat = Heartbeat(self.db)
        try:
            self.revision: str | None = (
                versions.ensure_schema(self.db.engine, create=create, upgrade=create)
                if check_schema else versions.current_revision(self.db.engine)
            )
            area, where = select_area(self.db, root, default_root, fsync=fsync, record=not readonly and check_schema)
        except Exception:
            self.db.dispose()
            raise
        #: The file root: a local directory (Path) or an ``s3://`` root (BucketRoot), or None.
        self.root: Any = where
        self.backend = Backend(self.db, area)

    @property
    def engine(self) -> Any:
        return self.db.engine

    @property
    def files(self) -> Any:
        """The object area (a :class:`~ckptstore.files.area.ObjectArea`)."""
        return self.backend.files

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def write(self) -> Any:
        """``with store.write() as conn``: a write transaction (see ``metadata.engine.Database``)."""
        return self.db.write()

    def read(self) -> Any:
        """``with store.read() as conn``: one consistent snapshot for several queries."""
        return self.db.read()

    def close(self, *, status: str = "finished") -> None:
        """Wait for background saves, write buffered metrics, mark the runs started here and
        never finished ``status`` (no handle of a closed store can log again), release the area
        and the database."""
        try:
            async_save.wait_all(self.backend)
        finally:
            try:
                self.live_runs.flush_all()
                self.heartbeat.end(status)
            finally:
                if self.backend.area is not None:
                    self.backend.area.close()
                self.db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(status="finished" if exc_type is None else "failed")

    def __repr__(self) -> str:
        return f"Store({self.db.describe()!r}, root={str(self.root)!r})"

    # ------------------------------------------------------------------ runs

    def start_run(
        self,
        name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        retention: Retention | None = None,
        resume: bool | str = "never",
        overwrite: bool = False,
        update_params: bool = False,
        strategy: Any = None,
        flush_every: int = 20_000,
        flush_seconds: float = 5.0,
        nonfinite: Literal["store", "raise", "skip"] = "store",
        saves_in_flight: int = 1,
    ) -> Run:
        """Start a new run (or, with ``resume``, continue one); use it as a context manager.

        A name already used is refused (:class:`~ckptstore.errors.RunExistsError`) unless the
        caller says what it means: ``resume=True`` (or ``"allow"``) continues the run of that
        name, or starts it if there is none; ``resume="must"`` continues it and refuses a name
        that does not exist; ``resume=False`` (or ``"never"``, the default) refuses an existing
        run. Without ``name``, a new unique name such as ``run-20261129-141530-3fa2`` is made.

        On normal exit of the ``with`` block the run is marked finished, on an exception failed;
        logged metrics are flushed either way. A run never finished is marked finished when its
        store closes or the interpreter exits (failed on an uncaught exception); one whose
        process dies reads ``crashed`` to every reader, through its heartbeat (see
        ``ckptstore/flows/heartbeat.py``), and can be resumed. A resumed run is ``running`` again (its
        ``ended_at`` cleared) until then, when ``ended_at`` becomes the time it last ended.
        ``params`` and ``tags`` are merged into what a resumed run already has; a param given
        another value than the run has is refused (:class:`ParamsChangedError`) unless
        ``update_params=True``. ``retention`` replaces its retention rule.

        **A resume continues, never rewrites.** The handle's :attr:`Run.resumed_from` is the
        run's last step (logged or saved); logging or saving at or below it is refused
        (:class:`StepConflictError`) unless ``overwrite=True``, or after :meth:`Run.rewind`
        (training restarted from an older checkpoint). ``StoreCallback`` continues after it by
        itself. ``flush_every`` (values) and ``flush_seconds`` bound what :meth:`Run.log` buffers
        before a write; ``nonfinite`` says what a NaN or infinite value does (``"store"`` it,
        ``"raise"`` :class:`MetricValueError`, ``"skip"`` it); ``saves_in_flight`` bounds the
        background saves (``save(blocking=False)``) pending at once.

        **Distributed training** (``docs/distributed.md``): every worker of a ``tf.distribute``
        job calls ``start_run`` with the same name. The chief (``ckptstore.distributed``: from
        ``strategy`` if given, else ``$TF_CONFIG``) starts or resumes the run and records the
        number of workers (tag ``ckptstore.workers``); every other task gets a
        :class:`~ckptstore.run.FollowerRun`, which writes nothing. A resume with another number
        of workers is refused (:class:`TopologyChangedError`) unless ``update_params=True``.
        With ``strategy`` (``MultiWorkerMirroredStrategy``) the workers then agree (two small
        all-reduces, ``run.start_in_lockstep``): a follower takes the run as its chief started
        it, and a refusal on any worker (a used name without ``resume``) is raised on every worker.
        """
        # The strategy's own role (TF_CONFIG left out): a TF_CONFIG that disagrees with it is then
        # refused inside the lockstep, on every worker, rather than before it on this one only.
        logging_options = {"flush_every": flush_every, "flush_seconds": flush_seconds, "nonfinite": nonfinite,
                           "saves_in_flight": saves_in_flight}
        who = distributed.role(strategy, tf_config="") if strategy is not None else distributed.SINGLE
        if who.lockstep:
            return start_in_lockstep(
                self, who, strategy, name,
                check=lambda: self._check_worker_start(name, params, tags, resume, update_params, strategy),
                start=lambda: self._start_run(
                    name, params, tags, retention, resume, overwrite, update_params, strategy, logging_options),
            )
        return self._start_run(name, params, tags, retention, resume, overwrite, update_params, strategy, logging_options)

    def _check_worker_start(self, name: str | None, params: Mapping[str, Any] | None, tags: Mapping[str, Any] | None,
                            resume: bool | str, update_params: bool, strategy: Any) -> RunInfo | None:
        """What any worker of a multi-worker job checks before the run starts, reading only: a
        name, ``$TF_CONFIG`` against the strategy, the worker count, params and tags, a params
        change on resume. Returns the run of that name when ``resume`` lets it be continued."""
        mode = _resume_mode(resume)
        who = distributed.role(strategy)
        if name is None:
            raise InvalidOptionError(
                f"this process is {who.describe()}: name the run (start_run(name)), so that "
                "every worker of the job follows the same one"
            )
        check_run_name(name)
        existing = self._existing_run(name) if mode != "never" else None
        if existing is not None:
            _check_topology(existing, who, update_params)
        params_checked = check_params(params or {})
        check_tags(tags or {})
        if existing is None and mode == "must":
            self.get_run(name)  # raises UnknownRunError, naming the store
        if existing is not None and not update_params:
            W.check_params_kept(name, existing.params, params_checked)
        return existing

    def _start_run(self, name: str | None, params: Mapping[str, Any] | None, tags: Mapping[str, Any] | None,
                   retention: Retention | None, resume: bool | str, overwrite: bool, update_params: bool,
                   strategy: Any, logging_options: dict[str, Any]) -> Run:
        mode = _resume_mode(resume)
        who = distributed.role(strategy)
        if who.multi_worker:
            # Checked on every worker as the chief checks them: what the chief refuses fails
            # every worker alike, instead of leaving the others waiting in their first collective.
            existing = self._check_worker_start(name, params, tags, resume, update_params, strategy)
            assert name is not None  # _check_worker_start refused a missing one
            if not who.is_chief:
                last = None
                if existing is not None:
                    with self.db.read() as conn:  # what the chief's resume reads: metrics and saves
                        last = Q.last_step(conn, existing.id)
                return FollowerRun(
                    self, name, who, resumed_from=last,
                    overwrite=overwrite, retention=retention if retention is not None else (
                        Retention.from_json(existing.retention) if existing is not None else None),
                )
            tags = {**(tags or {}), WORKERS_TAG: str(who.num_workers)}
        elif mode != "never" and name is not None:
            existing = self._existing_run(name)
            if existing is not None:
                _check_topology(existing, who, update_params)
        process, heartbeat_timeout = self.heartbeat.settings()
        params_json = check_params(params or {})
        tag_items = check_tags(tags or {})
        ret_json = retention.to_json() if retention is not None else None
        if name is None:
            for _ in range(5):  # a clash needs the same second and the same 16 random bits
                try:
                    name = new_run_name()
                    run_id, last = run_flows.start_run(self.backend, name, params_json, tag_items, ret_json, resume="never",
                                                           process=process, heartbeat_timeout=heartbeat_timeout)
                    break
                except RunExistsError:
                    continue
            else:
                raise RunExistsError("could not find an unused run name; pass one")
        else:
            check_run_name(name)
            run_id, last = run_flows.start_run(
                self.backend, name, params_json, tag_items, ret_json, resume=mode, update_params=update_params,
                process=process, heartbeat_timeout=heartbeat_timeout,
            )
        run = Run(self, run_id, name, resumed_from=last, overwrite=overwrite, role=who, **logging_options)
        self.heartbeat.add(run_id, name)
        return run

    def _existing_run(self, name: str) -> RunInfo | None:
        try:
            return self.get_run(name)
        except UnknownRunError:
            return None

    def run(self, name: str) -> Run:
        """A handle on an existing run, e.g. a finished one, to freeze, save, log or tag later.

        Getting it changes nothing: the run keeps its status and times, also when the handle is
        used as a context manager (``with store.run("mnist") as run: run.freeze(...)``); only
        :meth:`Run.finish` called explicitly changes them. To continue training a run, use
        ``start_run(name, resume=True)``. On a non-chief task of a ``tf.distribute`` job (by
        ``$TF_CONFIG``) it is a :class:`~ckptstore.run.FollowerRun`, as from ``start_run``.
        """
        info = self.get_run(name)
        who = distributed.role()
        if not who.is_chief:  # a non-chief task of a tf.distribute job (TF_CONFIG): writes nothing
            return FollowerRun(self, info.name, who, resumed_from=None, overwrite=False,
                               retention=Retention.from_json(info.retention))
        return Run(self, info.id, info.name, manage_status=False)

    def get_run(self, name: str) -> RunInfo:
        """One run with its params, tags, last step and number of checkpoints."""
        with self.db.read() as conn:
            found = Q.runs(conn, names=[name])
            if not found:
                Q.run_id(conn, name)  # raises, naming the store
        return found[0]

    def runs(
        self,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
        where: str | None = None,
        order_by: None | str | Sequence[str] = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs, newest first, filtered by status, tags (all must match), a name glob and a
        ``where`` expression, sorted by ``order_by`` (``-`` or ``desc``: descending), at most
        ``limit`` of them. See :mod:`ckptstore.metadata.run_search` for the language.

        >>> store.runs(where="params.lr = 0.01 and metrics.val_loss.min < 0.2",
        ...            order_by="metrics.val_loss.min", limit=5)  # doctest: +SKIP
        """
        if status is not None:
            check_state(status)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidOptionError(f"limit must be a whole number >= 0, got {limit!r}")
        with self.db.read() as conn:
            return Q.runs(conn, status=status, tags=tags, pattern=name, where=where, order_by=order_by, limit=limit)

    def runs_table(
        self,
        *,
        columns: None | str | Sequence[str] = None,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
        where: str | None = None,
        order_by: None | str | Sequence[str] = None,
        limit: int | None = None,
    ) -> RunsTable:
        """The runs of :meth:`runs` (same filters, same order) with a value per column:
        ``columns`` are fields of the search language (``"params.lr, metrics.val_accuracy.max,
        tags.team"``; a metric's ``.last``, ``.min``, ``.max`` or ``.best``). Without
        ``columns``: the fields sorted and filtered by, the metric each run's ``KeepBest``
        ranks, and the params that differ between the runs. An unknown field word is a
        :class:`QuerySyntaxError` suggesting the store's closest name; a param, tag or metric
        no run has is named in ``notes``.

        >>> t = store.runs_table(columns="params.lr, metrics.val_accuracy.max",
        ...                      order_by="-metrics.val_accuracy.max", limit=3)  # doctest: +SKIP
        >>> [(r.name, v["metrics.val_accuracy.max"]) for r, v in zip(t.runs, t.values)]  # doctest: +SKIP
        """
        if status is not None:
            check_state(status)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidOptionError(f"limit must be a whole number >= 0, got {limit!r}")
        with self.db.read() as conn:
            return Q.runs_table(
                conn, columns=columns, status=status, tags=tags, pattern=name, where=where, order_by=order_by, limit=limit,
            )

    def field_names(
        self,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
        where: str | None = None,
    ) -> dict[str, list[str]]:
        """Every param, metric and tag name that a run matching the filters of :meth:`runs` has
        (no filter: any run of the store), sorted: ``{"params": [...], "metrics": [...],
        "tags": [...]}``. What a column chooser offers, read in one query whatever the number
        of runs.

        >>> store.field_names(where="params.lr < 0.1")["metrics"]  # doctest: +SKIP
        ['accuracy', 'loss', 'val_accuracy', 'val_loss']
        """
        if status is not None:
            check_state(status)
        with self.db.read() as conn:
            return Q.field_names(conn, status=status, tags=tags, pattern=name, where=where)

    def expand_runs(self, patterns: Sequence[str]) -> list[str]:
        """Run names for ``patterns``: a glob (``"lr-*"``, ``"grid-[12]"``) stands for the runs it
        matches, sorted by name, and must match one (else :class:`UnknownRunError`); a plain name
        is kept as given. Each name once, in order. ``runs compare``, ``plot`` and
        ``tensorboard`` take their RUN arguments through it."""
        with self.db.read() as conn:
            return Q.expand_runs(conn, list(patterns))

    def compare_runs(self, runs: Sequence[str]) -> RunComparison:
        """Runs side by side: their params (and which differ) and, per metric, the last value
        and the best (min or max by the metric's name) with their steps."""
        if not runs:
            raise InvalidOptionError("compare needs at least one run")
        with self.db.read() as conn:
            return Q.compare_runs(conn, list(dict.fromkeys(runs)))

    def metric_summaries(self, run: str) -> dict[str, MetricSummary]:
        """Each metric of ``run``: last value and step, best value and step, min and max."""
        with self.db.read() as conn:
            return Q.metric_summaries(conn, Q.run_id(conn, run))

    def set_status(self, name: str, status: str) -> None:
        check_status(status)
        with self.db.write() as conn:
            W.set_status(conn, Q.run_id(conn, name), status)

    def set_retention(self, name: str, retention: Retention | None) -> None:
        """Replace a run's retention rule (applied at its next save, or by ``apply_retention``)."""
        with self.db.write() as conn:
            W.set_retention(conn, Q.run_id(conn, name), retention.to_json() if retention else None)

    def delete_run(self, name: str) -> int:
        """Delete a run with its metrics, checkpoints and exports; returns checkpoints deleted.

        Refused while an alias points at one of its checkpoints or exports: remove it first.
        """
        return run_flows.delete_run(self.backend, name)

    # ------------------------------------------------------------------ metrics

    def metric_keys(self, run: str) -> list[str]:
        with self.db.read() as conn:
            return Q.metric_keys(conn, Q.run_id(conn, run))

    def steps(
        self, run: str, *, start: int | None = None, stop: int | None = None, keys: Iterable[str] | None = None
    ) -> list[StepMetrics]:
        """One run's metrics step by step, for steps in [start, stop] (both inclusive)."""
        with self.db.read() as conn:
            return Q.steps(conn, Q.run_id(conn, run), start=start, stop=stop, keys=keys)

    def metric_history(self, run: str, key: str | None = None) -> list[MetricChange]:
        """Values of ``run`` that a later ``log`` of the same step replaced (a resumed run that
        logged its steps again), oldest step first; ``steps`` shows the newest values."""
        with self.db.read() as conn:
            return Q.metric_history(conn, Q.run_id(conn, run), key)

    def best(self, run: str, metric: str, mode: str = "auto") -> CheckpointInfo:
        """The run's checkpoint with the best ``metric`` logged at its step.

        ``mode``: "min", "max", or "auto" (max for accuracy/auc/precision/recall/f1/iou-like
        names, else min; see :func:`ckptstore.retention.resolve_mode`). Checkpoints without a
        value (or NaN) at their step never count; ties go to the newer step. The same as the
        reference ``run@best:METRIC``.

        >>> store.best("mnist", "val_accuracy").ref      # doctest: +SKIP
        'mnist@1200'
        """
        resolved = resolve_mode(metric, mode)
        return self.checkpoint(Ref("best", f"{run}@best:{resolved}:{metric}", run=run, metric=metric, mode=resolved))

    def metric_series(self, run: str, key: str, *, start: int | None = None) -> tuple[Any, Any]:
        """One metric of one run as numpy arrays ``(steps, values)`` (int64, float64; NaN kept),
        steps >= ``start``: the fast path for charts (read on the driver's cursor, no row objects).
        An unknown run is :class:`UnknownRunError`; a metric the run never logged gives empty arrays."""
        from .metadata.series import metric_series

        with self.db.read() as conn:
            return metric_series(conn, Q.run_id(conn, run), key, start=start)

    def metric_chart(
        self, run: str, key: str, width: int, *, start: int | None = None, stop: int | None = None,
        at: Iterable[int] = (),
    ) -> Any:
        """What a chart ``width`` pixels wide of ``key`` over steps [start, stop] needs, from the
        metric's stored summaries (a few thousand rows, whatever the series' length):
        ``(total, steps, values, at)``, where (steps, values) is a superset of the points a
        min/max downsampling keeps (all of them when the window holds few) and ``at`` the value
        at or last before each step of ``at`` (see ``metadata/rollups.py``)."""
        from .metadata.rollups import chart_points

        with self.db.read() as conn:
            return chart_points(conn, Q.run_id(conn, run), key, width, start=start, stop=stop, at=at)

    def metric_times(self, run: str, key: str, steps: Iterable[int]) -> tuple[dict[int, float], float | None]:
        """When ``key`` was logged at each of ``steps`` ({step: wall time}; steps without a value
        left out) and at its first step (None: never logged): what a chart on a time axis adds
        to :meth:`metric_chart`. Read by primary key, so the cost follows the points drawn, not
        the series' length."""
        with self.db.read() as conn:
            return Q.metric_times(conn, Q.run_id(conn, run), key, steps)

    def at_step(self, step: int, *, nearest: bool = False, keys: Iterable[str] | None = None) -> list[RunAtStep]:
        """Every run's metrics at ``step``; with ``nearest``, at its last step at or below it.

        Also tells, per run, the checkpoint at that step (exact) or the newest checkpoint at or
        below ``step`` (nearest), so "which runs reached 50k, what was their loss, is there a
        checkpoint?" is one call.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise MetricValueError(f"step must be a whole number >= 0, got {step!r}")
        with self.db.read() as conn:
            return Q.at_step(conn, step, nearest=nearest, keys=keys)

    # ------------------------------------------------------------------ references and checkpoints

    def resolve(self, ref: Any) -> Target:
        """The checkpoint or export a reference names (``run@step``, ``run@latest``,
        ``run@~N``, ``export:ID``, an alias, or a record the API returned)."""
        return resolve(self.backend, ref)

    def checkpoint(self, ref: Any) -> CheckpointInfo:
        """The checkpoint a reference names; an error if it names an export."""
        return checkpoint_of(self.backend, ref)

    def checkpoints(self, run: str) -> list[CheckpointInfo]:
        """A run's checkpoints, oldest step first, with their aliases and files."""
        with self.db.read() as conn:
            return Q.checkpoints(conn, Q.run_id(conn, run), run)

    def checkpoint_metric(self, run: str, metric: str) -> dict[int, float]:
        """{checkpoint step: value of ``metric`` logged at that step} for ``run``'s checkpoints
        that have one (NaN left out)."""
        with self.db.read() as conn:
            return Q.checkpoint_metric(conn, Q.run_id(conn, run), metric)

    def variables(self, ref: Any) -> list[VariableInfo]:
        """The variables (name, dtype, shape, and the readable name recorded at save, such as
        ``model/dense/kernel``) saved in a checkpoint, read from the database."""
        return tensor_flows.variables(self.backend, ref)

    def diff_variables(self, ref: Any, other: Any, *, stats: bool = False) -> VariableDiff:
        """What changed in the variables from checkpoint ``ref`` to checkpoint ``other`` (of
        any runs): each variable added, removed, changed in dtype or shape, changed in value,
        or identical, from the digests recorded at save (no TensorFlow, no tensor bytes read).
        ``stats`` adds max |Δ|, mean |Δ| and relative L2 for float tensors whose value changed
        (reading only those, in bounded memory).

        >>> store.diff_variables("base@1000", "finetune@latest").value_changed   # doctest: +SKIP
        """
        return tensor_flows.diff(self.backend, ref, other, stats=stats)

    def repack(self) -> int:
        """Index checkpoints saved before tensor-level storage piece by piece (their bytes stay
        as they are), so later saves re-use their tensors; returns the number of files indexed."""
        return tensor_flows.repack(self.backend)

    def space(self, runs: list[str] | None = None) -> list[SpaceUsage]:
        """Logical against stored bytes per run (all, or ``runs``), then the whole store (run None)."""
        return tensor_flows.space(self.backend, runs)

    def restore(self, ref: Any, target: Any, *, verify: bool | str = True, var_list: Any = None) -> CheckpointInfo:
        """Restore a checkpoint into a TF1 session or a ``tf.train.Checkpoint`` / trackable.

        ``verify``: check the stored files' digests first (``"sample"``: a sample of them);
        ``var_list``: for a TF1 session, the variables to restore, as ``tf.compat.v1.train.Saver``
        takes them. See :func:`ckptstore.flows.checkpoints.restore`.
        """
        return checkpoint_flows.restore(self.backend, ref, target, verify=verify, var_list=var_list)

    def materialize(
        self,
        ref: Any,
        to_dir: str | os.PathLike[str],
        *,
        verify: bool | str = True,
        link: str = "copy",
        force: bool = False,
        progress: Progress = None,
    ) -> Path:
        """Write a plain TensorFlow checkpoint directory; returns the checkpoint prefix path.

        See :func:`ckptstore.flows.checkpoints.materialize` (``link="hard"`` is for read-only
        use; ``force`` replaces existing files). ``progress(done, total)`` is called with the
        bytes checked so far.
        """
        return checkpoint_flows.materialize(self.backend, ref, to_dir, verify=verify, link=link, force=force, progress=progress)

    def cached_checkpoint(self, ref: Any) -> Path:
        """The path prefix of a read-only copy of the checkpoint ``ref`` names, in the store's
        cache (made on first use, made again if changed on disk): for TensorFlow APIs that take
        a path (``tf.train.load_checkpoint``, ``Saver.restore``). See ``flows.materialized``."""
        return materialized.cached_prefix(self.backend, ref)

    def tensorflow_directory(self, run: str) -> Path:
        """A local directory, beside the store's cache, for the files TensorFlow writes for
        ``run`` when a drop-in (``tf2.CheckpointManager(ckpt, run)``) is given a run instead
        of a directory; it is not created here."""
        return Path(self.backend.files.cache_root()).parent / "tf-dirs" / run

    def read_variable(self, ref: Any, name: str, *, verify: bool | str = True) -> Any:
        """One saved variable's value as a numpy array, without building a graph."""
        return checkpoint_flows.read_variable(self.backend, ref, name, verify=verify)

    def import_checkpoints(
        self, directory: str | os.PathLike[str], *, run: str, progress: Progress = None
    ) -> list[CheckpointInfo]:
        """Register checkpoints written by vanilla ``Saver`` / ``CheckpointManager`` in ``run``;
        ``progress(done, total)`` is called with the checkpoints imported so far. See
        :func:`ckptstore.flows.imports.import_checkpoints`."""
        return imports.import_checkpoints(self.backend, directory, run=run, progress=progress)

    def record_checkpoint(
        self, prefix: str | os.PathLike[str], *, run: str, step: int,
        known: dict[str, tuple[str, int]] | None = None,
    ) -> CheckpointInfo:
        """Record the checkpoint TensorFlow wrote at ``prefix`` as ``run@step``, leaving its
        files where they are (hard-linked into the store, ``flows.recording``); the drop-ins
        ``tf1.Saver`` and ``tf2.CheckpointManager`` call this after each save."""
        with self.db.read() as conn:
            rid = Q.run_id(conn, run)
        return recording.record_prefix(self.backend, rid, run, Path(prefix), step, known)

    def stage_checkpoint(self, prefix: str | os.PathLike[str], *, run: str) -> recording.StagedPrefix:
        """Link the checkpoint TensorFlow wrote at ``prefix`` into staging now, to commit later
        (``.commit(run, step, known)``, from any thread) or ``.discard()``: TensorFlow may
        delete its files meanwhile. ``record_checkpoint`` is both at once."""
        with self.db.read() as conn:
            rid = Q.run_id(conn, run)
        return recording.StagedPrefix(self.backend, rid, Path(prefix))

    def forget_checkpoint(self, run: str, step: int, prefix: str) -> bool:
        """Forget ``run@step`` if it is the checkpoint named ``prefix`` (TensorFlow deleted its
        files) and no version names it; returns whether it was forgotten."""
        with self.db.read() as conn:
            rid = Q.run_id(conn, run)
        return recording.forget_prefix(self.backend, rid, step, prefix)

    def delete_checkpoint(self, ref: Any) -> None:
        """Delete one checkpoint (refused if an alias points at it)."""
        ck = self.checkpoint(ref)
        if ck.aliases:
            raise ConflictError(
                f"checkpoint {ck.ref} has the alias {', '.join(ck.aliases)}; remove it first (ckptstore unalias NAME)"
            )
        deletion.delete_checkpoints(self.backend, [ck.id])

    def apply_retention(self, run: str) -> list[int]:
        """Apply the run's retention rule now; returns the steps deleted."""
        with self.db.read() as conn:
            rid = Q.run_id(conn, run)
        return deletion.apply_retention(self.backend, rid)

    def verify(self, run: str | None = None, *, full: bool = True, progress: Progress = None) -> VerifyReport:
        """Re-digest stored files; report every missing, corrupt, unreadable and unexpected one."""
        return maintenance.verify(self.backend, run, full=full, progress=progress)

    def copy_root(self, to: str, *, progress: Progress = None) -> dict[str, int]:
        """Copy this store's local file area into the bucket ``to`` (``s3://bucket/prefix``),
        verify the copies, then switch the store to it; resumable (see ``flows.areas.copy_root``)."""
        target = parse_bucket_root(to)
        if target is None:
            raise StoreConfigError(f"{redact(str(to))!r} is not an s3://BUCKET/PREFIX root")
        return copy_root(self.db, self.files, target, progress)

    def gc(self, *, dry_run: bool = False, progress: Progress = None, grace: timedelta | None = None) -> GcReport:
        """Remove unreferenced files and stale staging directories.

        ``progress(done, total)`` is called with the number of unreferenced files removed so far.
        """
        return maintenance.gc(self.backend, dry_run=dry_run, progress=progress, grace=grace)

    # ------------------------------------------------------------------ exports

    def exports(self, run: str | None = None) -> list[ExportInfo]:
        """Frozen exports, oldest first, of one run or of the whole store, with their aliases."""
        return export_flows.list_exports(self.backend, run)

    def load_frozen(self, ref: Any, *, verify: bool | str = True) -> Any:
        """An export as a TF2 callable over its inputs (positional or by name), digest checked
        first. ``ref``: ``export:ID``, an alias, ``run@step`` / ``run@latest`` / ``run@~N`` for
        the run's export at that step, or an ``ExportInfo``. See
        :func:`ckptstore.flows.exports.load_frozen`."""
        return export_flows.load_frozen(self.backend, ref, verify=verify)

    def import_frozen(self, ref: Any, graph: Any = None, *, name: str = "", verify: bool | str = True) -> Any:
        """Import an export's GraphDef into a TF1 graph (new by default; ``name`` prefixes the
        imported ops); returns the graph. See :func:`ckptstore.flows.exports.import_frozen`."""
        return export_flows.import_frozen(self.backend, ref, graph, name=name, verify=verify)

    def export_frozen(
        self, ref: Any, path: str | os.PathLike[str], *, verify: bool | str = True, force: bool = False
    ) -> Path:
        """Write an export's ``.pb`` and a JSON sidecar (``path + ".json"``) for deployment;
        ``force`` replaces existing files."""
        return export_flows.export_frozen(self.backend, ref, path, verify=verify, force=force)

    def load_saved_model(self, ref: Any, *, verify: bool | str = True) -> Any:
        """``tf.saved_model.load`` of a SavedModel export (``run.export_saved_model``), checked first."""
        return deploy_exports.load_saved_model(self.backend, ref, verify=verify)

    def load_keras(
        self, ref: Any, *, verify: bool | str = True, custom_objects: dict[str, Any] | None = None,
        compile: bool = True, safe_mode: bool = True,
    ) -> Any:
        """``keras.saving.load_model`` of a ``.keras`` export (``run.export_keras``), checked
        first; ``custom_objects``, ``compile`` and ``safe_mode`` are ``load_model``'s."""
        return deploy_exports.load_keras(self.backend, ref, verify=verify, custom_objects=custom_objects,
                                         compile=compile, safe_mode=safe_mode)

    def export_to(
        self, ref: Any, path: str | os.PathLike[str], *, verify: bool | str = True, force: bool = False
    ) -> Path:
        """Write any export out for deployment: a ``.pb`` or ``.keras`` file with a JSON sidecar,
        or a SavedModel directory; ``force`` replaces what is there. See
        :func:`ckptstore.flows.deploy_exports.export_to`."""
        return deploy_exports.export_to(self.backend, ref, path, verify=verify, force=force)

    # ------------------------------------------------------------------ aliases

    def set_alias(self, name: str, ref: Any, *, message: str | None = None) -> AliasInfo:
        """Point the alias ``name`` (``prod``, ``best``) at the checkpoint or export ``ref``
        names, moving it if it exists; returns the alias. Its history keeps every move, with
        ``message``; its target is safe from retention, ``gc`` and deletion while it points there.

        >>> store.set_alias("prod", "mnist@latest", message="beats baseline")   # doctest: +SKIP
        """
        return alias_flows.set_alias(self.backend, name, ref, message=message)

    def remove_alias(self, name: str, *, message: str | None = None) -> str:
        """Remove an alias (its target is no longer protected); its history is kept. Returns
        the target it pointed at (``run@step`` or ``export:ID``)."""
        return alias_flows.remove_alias(self.backend, name, message=message)

    def aliases(self, name: str | None = None) -> list[AliasInfo]:
        """Every alias with its history, newest event first; with ``name``, that alias only
        (a removed one: its history, ``kind="removed"``)."""
        return alias_flows.aliases(self.backend, name)

    # The names before "alias" was the one word (issue 25); scripts still call them.

    def tag(self, ref: Any, name: str, *, message: str | None = None) -> AliasInfo:
        """Deprecated: :meth:`set_alias` (``set_alias(name, ref)``, the other order)."""
        _deprecated("Store.tag(ref, name)", "Store.set_alias(name, ref)")
        return self.set_alias(name, ref, message=message)

    def untag(self, name: str, *, message: str | None = None) -> None:
        """Deprecated: :meth:`remove_alias`."""
        _deprecated("Store.untag", "Store.remove_alias")
        self.remove_alias(name, message=message)

    def versions(self, name: str | None = None) -> list[AliasInfo]:
        """Deprecated: :meth:`aliases`."""
        _deprecated("Store.versions", "Store.aliases")
        return self.aliases(name)


def _deprecated(old: str, new: str) -> None:
    # stacklevel 3: the warning names the caller's line, not the deprecated method's.
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


__all__ = ["open_store", "Store"]

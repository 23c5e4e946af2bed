"""A run handle: log metrics from a training loop, save checkpoints, freeze exports.

``run.log(step, **metrics)`` only appends to an in-memory buffer; rows reach the database in
batches (every ``flush_every`` values, every ``flush_seconds``, before each checkpoint save, when
the run ends, when its store closes and at interpreter exit), one transaction per batch. This is
what makes per-step logging cost an append instead of a database round trip
(``benchmarks/log_metrics.py``).

Metric values policy:

* ints, floats, bools, numpy scalars, 0-d arrays and eager tensors are accepted (``float(v)``);
* anything else (strings, None, lists, ...) raises :class:`MetricValueError` at the ``log`` call,
  naming the metric and step, and nothing of that call is buffered;
* NaN and +/-inf are stored by default (a diverging loss is worth seeing) and read back as such;
  ``nonfinite="raise"`` refuses them, ``nonfinite="skip"`` drops them silently.
* Logging the same (step, key) twice keeps the last value as *the* value (what ``steps``, ``at``,
  search and retention see) and the one it replaced in the ``metric_history`` table, with when
  it was replaced (``store.metric_history(run)``): a resumed run that logs steps again after
  restoring an older checkpoint just works, and nothing logged is ever lost.

**Who keeps buffered values alive.** Each store has one :class:`LiveRuns` registry. It holds
run handles *weakly* (a handle used only to save is not kept alive) and holds strongly only the
buffers that have unwritten values, so a handle dropped without ``finish()`` (a training function
that returns, ``store.run(n).log(...)`` as a one-liner) loses nothing: its buffer is written when
the store closes or the interpreter exits.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

from sqlalchemy.exc import IntegrityError

from .constants import NAME_MAX
from .distributed import SINGLE, Role, sum_over_workers
from .errors import (
    InvalidOptionError,
    MetricValueError,
    NotChiefError,
    RunExistsError,
    StepConflictError,
    UnknownRunError,
)
from .flows import checkpoints as checkpoint_flows
from .flows import deploy_exports, heartbeat
from .flows import exports as export_flows
from .flows import runs as run_flows
from .flows.async_save import PendingSave, SaveQueue
from .flows.backend import Backend
from .metadata import queries as Q
from .metadata import writes as W
from .names import check_step, shown
from .records import CheckpointInfo, ExportInfo
from .retention import Retention

log = logging.getLogger(__name__)

Row = tuple[int, int, str, float | None, float]


class MetricBuffer:
    """Unwritten metric values of one run handle, and how to write them."""

    def __init__(self, backend: Backend, registry: LiveRuns, run_id: int, run_name: str) -> None:
        self.backend = backend
        self.run_id = run_id
        self.run_name = run_name
        self.registry = registry
        self.rows: list[Row] = []
        self.lock = threading.Lock()
        # Serializes writes (not log()): of two flushes of one run, the later rows commit last,
        # so a (step, key) logged twice keeps the newer value.
        self.write_lock = threading.Lock()
        self.last_flush = time.monotonic()
        self.sql = W.metrics_sql(backend.db.placeholder)

    def flush(self) -> int:
        """Write the buffered values now (one transaction); returns how many were written."""
        with self.write_lock:
            return self._flush()

    def _flush(self) -> int:
        with self.lock:
            rows, self.rows = self.rows, []
            self.last_flush = time.monotonic()
        if not rows:
            return 0
        try:
            with self.backend.db.write() as conn:
                W.write_metrics(conn, self.sql, rows)
        except IntegrityError:
            # The only foreign key is the run's: another process deleted the run. Keeping the
            # values would fail every later flush (and the store's close) the same way.
            with self.backend.db.read() as conn:
                if Q.run_exists(conn, self.run_id):
                    with self.lock:
                        self.rows[:0] = rows
                    raise
            with self.lock:
                if not self.rows:
                    self.registry.settled(self)
            raise UnknownRunError(
                f"run {self.run_name!r} was deleted from {self.backend.db.describe_store()} while it was "
                f"logging; {len(rows)} buffered value(s) were dropped"
            ) from None
        except BaseException:
            with self.lock:  # keep them for the next attempt rather than lose them
                self.rows[:0] = rows
            raise
        with self.lock:
            if not self.rows:
                self.registry.settled(self)
        return len(rows)


class LiveRuns:
    """One store's run handles (weakly) and their unwritten buffers (strongly).

    While it has unwritten buffers, the registry itself is held by the module (``_active``), so
    that a store dropped without ``close()`` (a training function that returns) still has its
    values written at interpreter exit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[MetricBuffer] = set()
        self.runs: weakref.WeakSet[Run] = weakref.WeakSet()

    def pending(self, buf: MetricBuffer) -> None:
        with self._lock:
            self._pending.add(buf)
            _active.add(self)

    def settled(self, buf: MetricBuffer) -> None:
        with self._lock:
            self._pending.discard(buf)
            if not self._pending:
                _active.discard(self)

    def flush_all(self) -> None:
        """Write every unwritten buffer (at close or exit); a failure is logged, not raised."""
        with self._lock:
            bufs = list(self._pending)
        for buf in bufs:
            try:
                buf.flush()  # settles the buffer itself, under its lock, once it is empty
            except Exception:
                log.exception("could not write buffered metrics")


#: Registries with unwritten values (strong references; see LiveRuns).
_active: set[LiveRuns] = set()


@atexit.register
def _flush_at_exit() -> None:
    for registry in list(_active):
        registry.flush_all()
    # After the last values are written: a run nobody finished ends finished (or failed).
    heartbeat.end_all_at_exit()


class Run:
    """A run of a store. Get one from :meth:`Store.start_run` (or :meth:`Store.run`)."""

    def __init__(
        self,
        store: Any,
        run_id: int,
        name: str,
        *,
        flush_every: int = 20_000,
        flush_seconds: float = 5.0,
        nonfinite: Literal["store", "raise", "skip"] = "store",
        manage_status: bool = True,
        saves_in_flight: int = 1,
        resumed_from: int | None = None,
        overwrite: bool = False,
        role: Role = SINGLE,
    ) -> None:
        if nonfinite not in ("store", "raise", "skip"):
            raise InvalidOptionError(f"nonfinite must be 'store', 'raise' or 'skip', got {nonfinite!r}")
        if flush_every < 1 or flush_seconds < 0:
            raise InvalidOptionError("flush_every must be >= 1 and flush_seconds >= 0")
        #: The :class:`~ckptstore.store.Store` this run belongs to.
        self.store = store
        self.id = run_id
        self.name = name
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.nonfinite = nonfinite
        # A handle from start_run marks the run finished/failed when its ``with`` block ends; one
        # from ``store.run(name)`` (a later freeze or tag) leaves status and times alone.
        self.manage_status = manage_status
        #: The run's last step (logged or saved) when ``start_run(..., resume=True)`` made this
        #: handle; None for a new run. Training continues after it.
        self.resumed_from = resumed_from
        #: This process's place in a ``tf.distribute`` job (``ckptstore.distributed``).
        self.role = role
        # Steps at or below the floor are refused (a resume continues, never rewrites);
        # -1 lets every step through, at the cost of one comparison per log().
        self._floor = -1 if (resumed_from is None or overwrite) else resumed_from
        # The highest step this handle logged or saved: where a second fit's callback goes on.
        self._high = -1 if resumed_from is None else resumed_from
        self._keep_best_checked = False
        self._backend: Backend = store.backend
        self._registry: LiveRuns = store.live_runs
        self._buffer = MetricBuffer(self._backend, self._registry, run_id, name)
        # Keys already checked: a key PostgreSQL would refuse must fail at log(), not at a later
        # flush where it would block the whole buffer (and SQLite would store it silently).
        self._keys_ok: set[str] = set()
        self._registry.runs.add(self)
        #: Background saves (``save(..., blocking=False)``), at most ``saves_in_flight`` pending.
        self._saves = SaveQueue(self._backend, run_id, name, saves_in_flight)

    def __repr__(self) -> str:
        return f"Run({self.name!r}, id={self.id})"

    # ------------------------------------------------------------------ metrics

    def log(self, step: int, /, **metrics: Any) -> None:
        """Record metrics at ``step``. Cheap: buffered and written in batches.

        >>> run.log(100, loss=0.25, accuracy=0.91)   # doctest: +SKIP
        """
        step = check_step(step)
        if step <= self._floor:
            self._refuse(step, "log")
        if step > self._high:
            self._high = step
        rows = self._rows(step, metrics)
        buf = self._buffer
        with buf.lock:
            if not buf.rows:
                self._registry.pending(buf)
            buf.rows.extend(rows)
            due = len(buf.rows) >= self.flush_every or (time.monotonic() - buf.last_flush >= self.flush_seconds)
        if due:
            buf.flush()

    def _rows(self, step: int, metrics: dict[str, Any]) -> list[Row]:
        """The rows of one ``log`` call, every name and value checked (see the module docstring)."""
        now = time.time()
        rows: list[Row] = []
        run_id = self.id
        for key, value in metrics.items():
            if key not in self._keys_ok:
                _check_key(key, step)
                self._keys_ok.add(key)
            try:
                if type(value) is float:  # the common case, kept cheap
                    v = value
                elif isinstance(value, (str, bytes, bytearray)):
                    # float("0.5") would parse; a string metric is a bug in the caller.
                    raise TypeError
                else:
                    v = float(value)
            except (TypeError, ValueError, OverflowError):
                raise MetricValueError(
                    f"metric {key!r} at step {step}: {shown(value)} is not a number "
                    f"({type(value).__name__})"
                ) from None
            if not math.isfinite(v):
                if self.nonfinite == "raise":
                    raise MetricValueError(f"metric {key!r} at step {step} is {v} (nonfinite='raise')")
                if self.nonfinite == "skip":
                    continue
                if math.isnan(v):
                    rows.append((run_id, step, key, None, now))  # stored as NULL, read back as NaN
                    continue
            rows.append((run_id, step, key, v, now))
        return rows

    def flush(self) -> int:
        """Write buffered metrics now; returns how many values were written."""
        return self._buffer.flush()

    @property
    def next_step(self) -> int:
        """The step after the last one the run has, as far as this handle knows: 0 for a new
        run, after :attr:`resumed_from` for a resumed one, after the highest step this handle
        logged or saved, after a :meth:`rewind`. Where a training loop (or a second ``fit``)
        goes on."""
        return max(self._floor, self._high) + 1

    def accepts(self, step: int) -> bool:
        """Whether :meth:`log` and :meth:`save` take ``step``: a resumed run refuses the steps
        it already has (``StepConflictError``) unless started with ``overwrite=True``."""
        return step > self._floor

    def rewind(self, step: int) -> int:
        """Training restarts from the checkpoint at ``step``: the values logged after it move to
        the run's metric history (``store.metric_history``; nothing is lost) and the steps after
        it may be logged and saved again. Checkpoints after ``step`` are left as they are (a
        save of the same step replaces one; retention counts saves in the order they were
        made). Returns how many values moved."""
        step = check_step(step)
        self.flush()
        moved = run_flows.rewind(self._backend, self.id, step)
        self._floor = self._high = step
        return moved

    def retention_rule(self) -> Retention:
        """The run's retention rule, as the store has it."""
        return Retention.from_json(self.store.get_run(self.name).retention)

    def _check_keep_best(self) -> None:
        """Warn once, at this handle's first save, when the run's ``KeepBest`` metric has no
        value yet: checkpoints saved without it never rank, and a misspelt metric would let
        retention delete the best model."""
        self._keep_best_checked = True
        with self._backend.db.read() as conn:
            if not Q.run_exists(conn, self.id):
                return  # deleted meanwhile: the save itself says so
            data, _ = Q.run_retention(conn, self.id)
            best = Retention.from_json(data).keep_best
            if best is None:
                return
            names = Q.metric_keys(conn, self.id)
        if best.metric not in names:
            log.warning(
                "run %s has no value of %r yet (it has: %s): KeepBest(%r) ranks only checkpoints "
                "saved at a step where it is logged; the others never count as best",
                self.name, best.metric, ", ".join(names[:8]) or "no metrics", best.metric,
            )

    def _refuse(self, step: int, what: str) -> None:
        raise StepConflictError(
            f"run {self.name!r} already has steps up to {self._floor}: cannot {what} step {step} "
            f"(a resumed run continues at step {self._floor + 1}; pass overwrite=True to start_run, "
            "or call run.rewind(step) after restoring an older checkpoint)"
        )

    # ------------------------------------------------------------------ checkpoints and exports

    @overload
    def save(self, target: Any, step: int, *, var_list: Any = ..., write_meta_graph: bool = ...,
             prefix: str = ..., blocking: Literal[True] = ...) -> CheckpointInfo: ...

    @overload
    def save(self, target: Any, step: int, *, var_list: Any = ..., write_meta_graph: bool = ...,
             prefix: str = ..., blocking: Literal[False]) -> PendingSave: ...

    @overload
    def save(self, target: Any, step: int, *, var_list: Any = ..., write_meta_graph: bool = ...,
             prefix: str = ..., blocking: bool) -> CheckpointInfo | PendingSave: ...

    def save(
        self,
        target: Any,
        step: int,
        *,
        var_list: Any = None,
        write_meta_graph: bool = True,
        prefix: str = "model.ckpt",
        blocking: bool = True,
    ) -> CheckpointInfo | PendingSave:
        """Save a checkpoint of ``target`` at ``step``: files and metadata land together.

        ``target`` is a TF1 ``tf.compat.v1.Session`` (saved with ``tf.compat.v1.train.Saver``;
        ``var_list`` as the Saver takes it) or a TF2 ``tf.train.Checkpoint`` or any trackable
        (a Keras model, a ``tf.Module``). Buffered metrics are flushed first, and the run's
        retention rule is applied after the commit.

        ``blocking=False`` returns a :class:`~ckptstore.flows.async_save.PendingSave` (a
        ``concurrent.futures.Future`` of the ``CheckpointInfo``) as soon as the variables'
        values are snapshotted; writing, digesting and the commit happen in the background (see ``ckptstore.flows.async_save``). ``wait()``, ``finish()`` and the
        store's ``close()`` wait for them; a background failure is raised at the next
        ``save``, ``wait`` or ``finish``.
        """
        if isinstance(step, int):
            if step <= self._floor:
                self._refuse(step, "save")
            self._high = max(self._high, step)
        self.flush()
        if not self._keep_best_checked:
            self._check_keep_best()
        if not blocking and not self.role.multi_worker:
            return self._saves.submit(target, step, var_list=var_list, write_meta_graph=write_meta_graph, prefix=prefix)
        self._saves.wait()  # in order, and a background failure surfaces here
        info = checkpoint_flows.save(
            self._backend, self.id, self.name, target, step,
            var_list=var_list, write_meta_graph=write_meta_graph, prefix=prefix,
        )
        if not blocking:
            # Multi-worker: the other workers write while this call runs (their part of the
            # collectives); a background snapshot would read the variables at another moment
            # than they do. So the save is made now, and still returned as the future asked for.
            log.debug("run %s: a multi-worker save is made blocking", self.name)
            return PendingSave.completed(info)
        return info

    def freeze(self, target: Any, output_names: Sequence[str] | None = None, *, step: int | None = None) -> ExportInfo:
        """Freeze a TF1 session's graph (``output_names`` required) or a TF2 ``tf.function``
        into a self-contained GraphDef stored with this run.

        >>> run.freeze(sess, ["op_to_store"], step=1000)      # doctest: +SKIP
        >>> run.freeze(model.serve, step=1000)                # doctest: +SKIP
        """
        self.flush()
        return export_flows.freeze(self._backend, self.id, self.name, target, output_names, step=step)

    def wait(self) -> None:
        """Wait until every background save of this handle has committed; raise a failure."""
        self._saves.wait()

    def export_saved_model(self, obj: Any, *, step: int | None = None, signatures: Any = None) -> ExportInfo:
        """Store ``tf.saved_model.save(obj, signatures=signatures)`` as an export of this run
        (a file set), with lineage to the run's checkpoint at ``step`` if there is one."""
        self.flush()
        return deploy_exports.export_saved_model(self._backend, self.id, self.name, obj, step=step, signatures=signatures)

    def export_keras(self, model: Any, *, step: int | None = None) -> ExportInfo:
        """Store ``model.save("model.keras")`` as an export of this run."""
        self.flush()
        return deploy_exports.export_keras(self._backend, self.id, self.name, model, step=step)

    @property
    def pending_saves(self) -> list[PendingSave]:
        """Background saves of this handle not committed yet."""
        return self._saves.pending

    def set_retention(self, retention: Retention | None) -> None:
        self.store.set_retention(self.name, retention)

    # ------------------------------------------------------------------ lifecycle

    def finish(self, status: str = "finished") -> None:
        """Flush and mark the run ``finished`` (or ``failed``)."""
        W.check_status(status)
        try:
            try:
                self._saves.wait()
            finally:
                self._saves.release_buffers()
                self.flush()
        finally:
            self.store.heartbeat.discard(self.id)
            with self._backend.db.write() as conn:
                found = W.set_status(conn, self.id, status)
            if not found:
                raise UnknownRunError(f"run {self.name!r} was deleted from {self._backend.db.describe_store()}")

    def suspend(self) -> None:
        """This process stops without ending the run (a preemption: the job will be started
        again and resume it). Buffered metrics are written; the run stays ``running`` rather
        than being marked finished at exit, and, its heartbeat stopped, reads ``crashed`` once
        the heartbeat lapses, until a resume makes it ``running`` again."""
        self._saves.wait()
        self.flush()
        self.store.heartbeat.discard(self.id)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.manage_status:
            if exc_type is None:
                self.flush()
                return
            try:
                self.flush()
            except Exception:  # never hide the caller's own exception
                log.exception("could not write the metrics of run %s", self.name)
            return
        if exc_type is None:
            self.finish("finished")
            return
        try:
            self.finish("failed")
        except Exception:  # never hide the training loop's own exception
            log.exception("could not mark run %s failed", self.name)


class FollowerRun(Run):
    """What :meth:`Store.start_run` gives a non-chief task of a ``tf.distribute`` job (worker
    1.., ps; see ``ckptstore.distributed``): the same handle, so one script runs everywhere, that
    never writes to the store.

    * :meth:`log` and :meth:`flush` check the step as the chief does and record nothing (the
      chief logs each step once);
    * :meth:`save` takes part in the collective save: TensorFlow writes into a private
      temporary directory that is deleted at once; returns None; no run, row or object;
    * :meth:`finish` and the ``with`` block change nothing; the run's status is the chief's;
    * :meth:`freeze` and ``export_*`` are chief-only writes with no collective part:
      :class:`NotChiefError`, nothing written; :meth:`set_retention` is kept by the handle only
      (the chief's own call records it).

    :attr:`resumed_from`, :attr:`next_step` and the retention rule are read from the store when
    the run already exists (a resume), so a ``StoreCallback`` on every worker counts the same
    steps and saves at the same ones; a run the chief is only creating now is taken as new.
    """

    def __init__(self, store: Any, name: str, role: Role, *, resumed_from: int | None, overwrite: bool,
                 retention: Retention | None) -> None:
        super().__init__(store, -1, name, resumed_from=resumed_from, overwrite=overwrite, manage_status=False, role=role)
        self._retention = retention
        self._overwrite = overwrite

    def __repr__(self) -> str:
        return f"FollowerRun({self.name!r}, {self.role.describe()})"

    def log(self, step: int, /, **metrics: Any) -> None:
        step = check_step(step)
        if step <= self._floor:
            self._refuse(step, "log")
        if step > self._high:
            self._high = step
        # Checked as the chief checks them: a value the chief refuses fails every worker alike,
        # instead of leaving the others waiting in their next collective.
        self._rows(step, metrics)

    def flush(self) -> int:
        return 0

    # A non-chief has no checkpoint to return (the chief records it): None, not the chief's type.
    def save(self, target: Any, step: int, *, var_list: Any = None, write_meta_graph: bool = True,  # type: ignore[override]
             prefix: str = "model.ckpt", blocking: bool = True) -> None:
        """Take part in the chief's save of ``step`` (see the class docstring); returns None."""
        if isinstance(step, int):
            if step <= self._floor:
                self._refuse(step, "save")
            self._high = max(self._high, step)
        checkpoint_flows.write_and_discard(target, step, var_list=var_list, write_meta_graph=write_meta_graph, prefix=prefix)

    def follow_chief(self, resumed_from: int | None) -> None:
        """Take the run as the chief started it (:func:`start_in_lockstep`): the step it resumed
        from and, unless given to ``start_run``, its retention rule, read now that it exists."""
        self.resumed_from = resumed_from
        self._floor = -1 if (resumed_from is None or self._overwrite) else resumed_from
        self._high = -1 if resumed_from is None else resumed_from
        if self._retention is None:
            self._retention = Retention.from_json(self.store.get_run(self.name).retention)

    def rewind(self, step: int) -> int:
        """The chief moves the values; a follower only goes back to ``step`` with it."""
        step = check_step(step)
        self._floor = self._high = step
        return 0

    def retention_rule(self) -> Retention:
        return self._retention if self._retention is not None else Retention()

    def _not_chief(self, what: str) -> NotChiefError:
        return NotChiefError(
            f"this process is {self.role.describe()}: only the chief writes to run {self.name!r}, "
            f"so it cannot {what} (do it where ckptstore.distributed.role().is_chief)"
        )

    def freeze(self, target: Any, output_names: Sequence[str] | None = None, *, step: int | None = None) -> ExportInfo:
        raise self._not_chief("freeze an export")

    def export_saved_model(self, obj: Any, *, step: int | None = None, signatures: Any = None) -> ExportInfo:
        raise self._not_chief("store a SavedModel")

    def export_keras(self, model: Any, *, step: int | None = None) -> ExportInfo:
        raise self._not_chief("store a .keras file")

    def set_retention(self, retention: Retention | None) -> None:
        """Kept here only (the chief's own call records it): the drop-ins set the rule in
        their constructors, on every worker, and a follower ranks by it as the chief does."""
        self._retention = retention

    def wait(self) -> None:
        return None

    def finish(self, status: str = "finished") -> None:
        W.check_status(status)


def start_in_lockstep(store: Any, who: Role, strategy: Any, name: str | None, *, check: Callable[[], Any],
                      start: Callable[[], Run]) -> Run:
    """``Store.start_run`` on a worker of a job that runs in lockstep, given its strategy. A
    follower cannot tell an old run of that name from the one its chief is creating at this
    moment; the chief can. So the workers agree in two all-reduces, the same on every worker:

    1. every worker runs ``check`` (it only reads: the name, ``$TF_CONFIG`` against the
       strategy, the worker count, params, tags) and a follower ``start`` (which writes
       nothing); a refusal anywhere is raised on every worker, one line each (the same check
       fails on each, with its own message), before the chief writes anything;
    2. the chief runs ``start`` (starts, resumes or refuses the run); its refusal is raised on
       every worker (a name already used without ``resume`` is :class:`RunExistsError`
       everywhere), so none is left waiting in its first collective for a chief that gave up;
       else a follower takes the run as the chief started it (:meth:`FollowerRun.follow_chief`:
       the step it resumed from, its retention rule read once it exists).
    """
    agree = sum_over_workers(strategy)
    mine: Run | None = None
    try:
        check()
        if not who.is_chief:
            mine = start()
    except Exception:
        agree([1.0])
        raise
    if agree([0.0])[0]:
        raise InvalidOptionError(
            f"another worker of this job refused to start run {name!r} (its own error line says why); nothing was written"
        )
    if who.is_chief:
        try:
            mine = start()
        except Exception as exc:
            agree([1.0, 1.0 if isinstance(exc, RunExistsError) else 0.0, 0.0])
            raise
        resumed = mine.resumed_from + 1.0 if mine.resumed_from is not None else 0.0
        agree([0.0, 0.0, resumed])
        return mine
    chief_refused, name_used, chief_resumed = agree([0.0, 0.0, 0.0])
    if name_used:
        raise RunExistsError(
            f"run {name!r} already exists in {store.backend.db.describe_store()}, and this job's chief refused to "
            "start it again; pass resume=True to continue it, or use another name"
        )
    if chief_refused:
        raise InvalidOptionError(f"the chief of this job refused to start run {name!r} (its own error line says why)")
    assert isinstance(mine, FollowerRun)  # start() on a non-chief task of a lockstep job
    mine.follow_chief(int(chief_resumed) - 1 if chief_resumed else None)
    return mine


def _check_key(key: str, step: int) -> None:
    if not isinstance(key, str) or not key or len(key) > NAME_MAX or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise MetricValueError(
            f"metric name {shown(key)} at step {step} must be 1 to {NAME_MAX} characters "
            "without control characters"
        )

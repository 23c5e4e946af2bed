"""Preemption-safe training: run the same script again after a kill and it goes on where it was.

>>> with Checkpointing(store, "mlp", ckpt, save_every=100) as pc:     # doctest: +SKIP
...     for step in pc.steps(1000):
...         loss = train_step(next(iterator))
...         pc.log(loss=loss)

**What a re-run does.** The helper opens its run with ``start_run(name, resume=True)``, restores
the run's latest checkpoint (highest step) into the target and continues at the step after it,
*in the same run*. Values the killed process logged after that checkpoint are moved to the run's
metric history (:meth:`Run.rewind`), so ``store.steps(run)`` shows every step once, with the
values of the training that continued. Checkpoints are saved with :meth:`Run.save` (retention
counts them in save order, so nothing the resumed training saves is lost to an earlier one's).

**SIGKILL** (or a power loss) loses at most the steps since the last checkpoint: the commit point
of a save is its database transaction, so a checkpoint is either complete or absent.

**SIGTERM** (a preemption notice) is answered as TensorFlow's ``PreemptionCheckpointHandler``
answers it: the handler only records the notice; at the next step boundary the current step is
saved (an extra checkpoint unless it was due anyway; retention counts it like any other), the
metrics are flushed, and the process exits with :data:`RESTART_EXIT_CODE` (42, TensorFlow's
default ``exit_fn``: "restart me") by raising :class:`SystemExit`, so ``finally`` blocks and
context managers run. ``exit_code=0`` exits as a success instead; ``exit_code=None`` makes
:meth:`Checkpointing.steps` simply stop (``pc.preempted`` is then True). The run stays
``running``; the re-run continues it. (A run the helper opened by name is marked ``finished``
when the loop completes, ``failed`` when it raises; a :class:`Run` handle is the caller's.) The handler is installed only while the helper is active
and only from the main thread (Python delivers signals there), and the previous one is put back
afterwards.

**Across the workers of a job** (``MultiWorkerMirroredStrategy``; ``docs/distributed.md``): every
worker runs the same loop, and a SIGTERM reaches one of them. As with TensorFlow's
``PreemptionCheckpointHandler``, they must all save the same step and stop together (a worker
that stopped alone leaves the others waiting in their next collective). TensorFlow passes the
preempted worker's step through its coordination service (a key, acknowledged by every worker,
then one more step); here the workers agree at each step boundary with one all-reduce of "did
this worker receive SIGTERM" (:func:`stop_agreement`, a ``tf.function`` traced once): every
worker calls it at the same boundaries (they run the same steps), so all of them see the same
answer after the same step, save it (the chief commits, the others take part in the collective
save and write nothing) and exit with the same code. The cost is one small all-reduce per step
(measured on the 2-worker test job: see ``docs/distributed.md``). The strategy is needed for it:
``strategy=`` (given to ``start_run`` as well); ``BackupAndRestore`` takes the model's own. A
``ParameterServerStrategy`` coordinator runs the loop alone and decides alone.

**What the result depends on** must be in the target: model and optimizer variables, a
``tf.random.Generator`` (dropout RNG state), and the data position, either as a
``tf.data`` iterator in the ``tf.train.Checkpoint`` (TF saves its position) or derived from
:attr:`Checkpointing.step`. Then the re-run ends with the same weights as an uninterrupted run
(with deterministic ops and no unseeded shuffling).

The target may be a ``tf.train.Checkpoint`` (or any trackable) or a TF1 ``tf.compat.v1.Session``
(initialize its variables before entering; the restore then overwrites them). This module imports
no TensorFlow: the store does, when it saves or restores.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import distributed
from .errors import InvalidOptionError, UnknownRunError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Unpack

    from .records import CheckpointInfo
    from .run import Run
    from .store import RunOptions, StartRunOptions, Store

log = logging.getLogger(__name__)

__all__ = ["Checkpointing", "PreemptionNotice", "RESTART_EXIT_CODE", "latest_checkpoint", "resume_training", "rewind_to_latest"]

#: The exit code after a preemption save: TensorFlow's default (``sys.exit(42)`` in
#: ``failure_handling.BorgTerminationConfig``), which schedulers read as "restart me".
RESTART_EXIT_CODE = 42


class PreemptionNotice:
    """Records SIGTERM while installed; the training loop acts on it at a step boundary.

    A signal handler runs between two bytecodes of the main thread, possibly in the middle of
    a save or a database write: it only sets a flag, and the save happens at the next step
    boundary. Installed only from the main thread (``signal.signal`` refuses elsewhere, and
    only the main thread receives signals); elsewhere SIGTERM keeps its previous meaning. A
    second SIGTERM before the first was answered puts the previous handler back and delivers
    the signal to it (by default: the process ends).
    """

    def __init__(self) -> None:
        self.received = False
        self._previous: Any = None
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: SIGTERM is not caught, a preemption will not save first")
            return
        self.received = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        # None means the previous handler was not set from Python; SIG_DFL is what it was.
        signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received:
            # A second notice before the step boundary (a hung step, or a fit that raised and
            # never removed the handler): SIGTERM means what it meant before.
            self.uninstall()
            signal.raise_signal(signum)
            return
        self.received = True


def stop_agreement(strategy: Any, who: distributed.Role) -> Callable[[bool], bool] | None:
    """How the workers of a multi-worker job agree to stop (module docstring): a function from
    "this worker received SIGTERM" to "some worker did", which every worker must call at the
    same step boundaries. None where this process decides alone: one process, or the coordinator
    of a ``ParameterServerStrategy`` job (its workers and parameter servers run no loop). A
    multi-worker job without its ``strategy`` is one error line: the workers could not agree."""
    if not who.lockstep:
        return None
    if strategy is None:
        raise InvalidOptionError(
            f"this process is {who.describe()}: pass strategy= (the job's MultiWorkerMirroredStrategy), so that "
            "a SIGTERM to any worker makes all of them save the same step and stop"
        )
    workers_stopping = distributed.sum_over_workers(strategy)  # traced once: one all-reduce a call

    def agree(received: bool) -> bool:
        return workers_stopping([1.0 if received else 0.0])[0] > 0

    return agree


def resume_training(
    store: Store, run: str | Run, *, resume: bool | str = True, **start_run_options: Unpack[StartRunOptions]
) -> tuple[Run, CheckpointInfo | None, bool]:
    """Open ``run`` for training that continues from its latest checkpoint.

    ``run`` is a name (opened with ``store.start_run(name, resume=resume, ...)``: a run that
    does not exist with ``resume="must"``, or that exists with ``resume=False``, is one error
    line) or a :class:`Run` handle. If the run already has steps, the values logged after its
    latest checkpoint (or all of them, without a checkpoint) move to its metric history, since
    training will compute those steps again. Returns the run, the checkpoint to restore (None
    for a fresh start) and whether the caller owns the run (opened it by name). No TensorFlow.
    """
    from .run import Run

    if isinstance(run, Run):
        if run.store is not store:
            raise InvalidOptionError(f"run {run.name!r} belongs to another store than the one given")
        if start_run_options:
            raise InvalidOptionError(
                f"{', '.join(sorted(start_run_options))}: options of start_run, for a run given by name only"
            )
        handle, owned = run, False
    elif isinstance(run, str):
        handle, owned = store.start_run(run, resume=resume, **start_run_options), True
    else:
        raise InvalidOptionError(f"run must be a run name or a Run, got {type(run).__name__}")
    latest = rewind_to_latest(store, handle) if handle.resumed_from is not None else latest_checkpoint(store, handle)
    return handle, latest, owned


def latest_checkpoint(store: Store, run: Run) -> CheckpointInfo | None:
    """The run's checkpoint of the highest step (training resumes after it), or None."""
    try:
        checkpoints = store.checkpoints(run.name)
    except UnknownRunError:
        if run.role.is_chief:
            raise
        return None  # a follower of a run its chief is creating now: a new run has none
    return max(checkpoints, key=lambda c: c.step) if checkpoints else None


def rewind_to_latest(store: Store, run: Run) -> CheckpointInfo | None:
    """Training restarts from the run's latest checkpoint (or from scratch, without one): the
    values logged after it move to the run's metric history (:meth:`Run.rewind`). Returns it."""
    latest = latest_checkpoint(store, run)
    step = latest.step if latest is not None else 0
    moved = run.rewind(step)
    if moved:
        log.info("run %s: %d value(s) logged after step %d moved to its metric history (training resumes there)",
                 run.name, moved, step)
    return latest


def stop_after_save(run: Any, notice: PreemptionNotice, step: int, exit_code: int | None) -> None:
    """What follows the save a SIGTERM asked for: the run is suspended (not finished at exit:
    the restarted job resumes it), the handler removed, and the process exits with
    ``exit_code`` (None: return, for the caller to stop its loop)."""
    run.suspend()
    notice.uninstall()
    log.warning("run %s: SIGTERM received, saved step %d", run.name, step)
    if exit_code is not None:
        raise SystemExit(exit_code)


def check_exit_code(exit_code: int | None) -> int | None:
    """``exit_code`` if it is None or a whole number 0-255; one error line otherwise."""
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int) or not 0 <= exit_code <= 255):
        raise InvalidOptionError(f"exit_code must be None or a whole number 0-255, got {exit_code!r}")
    return exit_code


class Checkpointing:
    """A custom training loop that survives SIGKILL and SIGTERM (see the module docstring).

    ``target`` is what is saved and restored: a ``tf.train.Checkpoint`` (or trackable) or a TF1
    session. ``save_every`` saves every N steps (step multiples); a step is saved at most once.
    ``resume`` and ``start_run_options`` (``params``, ``retention``, ...) go to
    ``store.start_run`` when ``run`` is a name. In a ``MultiWorkerMirroredStrategy`` job pass
    ``strategy=``: a SIGTERM to any worker then stops every worker at the same step (module
    docstring). Steps are counted from 1: after step ``s``,
    ``s`` steps are done (TF's ``PreemptionCheckpointHandler.total_run_calls``), and the
    checkpoint of step ``s`` holds their result. The run is opened (and a bad name refused) by
    the constructor, before TensorFlow is imported; the restore happens on entering.

    >>> with Checkpointing(store, "tf1", sess, save_every=10) as pc:   # doctest: +SKIP
    ...     for step in pc.steps(100):
    ...         _, loss = sess.run([train_op, loss_t], {x: batch(step)})
    ...         pc.log(loss=loss)
    """

    def __init__(
        self,
        store: Store,
        run: str | Run,
        target: Any,
        *,
        save_every: int | None = None,
        resume: bool | str = True,
        exit_code: int | None = RESTART_EXIT_CODE,
        strategy: Any = None,
        **start_run_options: Unpack[RunOptions],
    ) -> None:
        if save_every is not None and (isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1):
            raise InvalidOptionError(f"save_every must be None or a whole number >= 1, got {save_every!r}")
        if target is None:
            raise InvalidOptionError("target is required: the tf.train.Checkpoint or TF1 session to save and restore")
        self.exit_code = check_exit_code(exit_code)
        options: StartRunOptions = {**start_run_options}
        if strategy is not None and isinstance(run, str):
            options["strategy"] = strategy  # the run's role, and the job's one run name
        who = distributed.role(strategy) if strategy is not None else distributed.role()
        # Checked before the run is opened: a multi-worker job without its strategy is refused.
        self._agree = stop_agreement(strategy, who)
        self.run, self.restore_from, self._owns_run = resume_training(store, run, resume=resume, **options)
        self.store = store
        self.target = target
        self.save_every = save_every
        #: The last step done (0 before the first); the step :meth:`log` logs at.
        self.step = 0
        #: True once a SIGTERM made the loop save and stop.
        self.preempted = False
        self.saved: list[CheckpointInfo] = []
        self._notice = PreemptionNotice()
        self._restored = False
        self._saved_step = 0  # the step the target was last saved (or restored) at

    def __enter__(self) -> Checkpointing:
        if not self._restored:
            self._restored = True
            if self.restore_from is not None:
                self.store.restore(self.restore_from, self.target)
                self.step = self._saved_step = self.restore_from.step
                log.info("run %s: restored step %d, training continues after it", self.run.name, self.step)
        self._notice.install()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._notice.uninstall()
        try:
            self.run.flush()
        except Exception:
            if exc_type is None:
                raise
            log.exception("could not write the metrics of run %s", self.run.name)
            return
        if not self._owns_run or self.preempted or exc_type is SystemExit:
            return  # a run opened by name stays running after a preemption: the re-run resumes it
        if exc_type is None:
            self.run.finish("finished")
            return
        try:
            self.run.finish("failed")
        except Exception:  # never hide the training loop's own exception
            log.exception("could not mark run %s failed", self.run.name)

    def steps(self, total: int) -> Iterator[int]:
        """Yield the steps still to do, ``step + 1`` .. ``total``; between two, save when due
        and answer a SIGTERM (save, then exit or stop)."""
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise InvalidOptionError(f"total must be a whole number >= 0, got {total!r}")
        implicit = not self._restored
        if implicit:
            self.__enter__()  # used without ``with``: restore now, remove the handler at the end
        try:
            while self.step < total:
                if self._stop_requested():
                    self._preempt()
                    return
                self.step += 1
                yield self.step
                # The body of this step has run: its result may be saved as step `self.step`.
                if self.save_every and self.step % self.save_every == 0:
                    self.save()
            if self._stop_requested():
                self._preempt()
        finally:
            if implicit:
                self._notice.uninstall()

    def _stop_requested(self) -> bool:
        """At a step boundary: whether this process (or, in a multi-worker job, any worker)
        received SIGTERM. Every worker gets here at the same boundaries."""
        if self._agree is None:
            return self._notice.received
        return self._agree(self._notice.received)

    def log(self, **metrics: Any) -> None:
        """Log metrics at the current step (:meth:`Run.log`)."""
        self.run.log(self.step, **metrics)

    def save(self) -> CheckpointInfo | None:
        """Save the target at the current step (once per step); returns the checkpoint."""
        if self.step == self._saved_step:
            return None
        info = self.run.save(self.target, self.step)
        self.saved.append(info)
        self._saved_step = self.step
        return info

    def _preempt(self) -> None:
        self.preempted = True
        self.save()
        stop_after_save(self.run, self._notice, self.step, self.exit_code)

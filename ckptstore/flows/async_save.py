"""Asynchronous saves: the training loop pays for a snapshot, a background thread for the rest.

``run.save(target, step, blocking=False)`` takes a snapshot of the variables in the caller's
thread (the format's ``CheckpointFormat.snapshot``: host copies of the variables) and returns a
:class:`PendingSave`. A background thread then writes the checkpoint into the staging directory
the call created, digests it and commits it with the same ``commit_checkpoint`` as a
synchronous save, then applies the run's retention rule.

**Crash safety is the synchronous save's.** The staging directory is created (and locked) by
the caller before the snapshot, and the commit point is still the one database transaction: a
process killed with saves pending leaves staging directories whose lock died with it and
perhaps unreferenced objects, both of which ``gc`` removes; no committed checkpoint is partial.

**Bounded.** At most ``max_in_flight`` saves of one run handle are pending (default 1); a further
save waits for a slot *before* taking its snapshot, so memory holds at most that many snapshots.

**Failures are never lost.** A background failure is logged (``logging``) when it happens and
raised, once, at the run's next ``save``, ``wait`` or ``finish`` (and at ``store.close``).
``wait()`` / ``finish()`` / ``close()`` wait for every pending commit; the worker threads are
not daemons, so interpreter exit waits for them too (Python joins them before ``atexit``), and
an ``atexit`` hook reports failures nobody collected.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..errors import CkptstoreError, InvalidOptionError, from_os_error
from ..files.digest import DigestFollower, digest_file
from ..names import check_step
from ..records import CheckpointInfo
from ..tf import formats, snapshot
from ..tf.varnames import readable_names
from .backend import Backend
from .checkpoints import check_prefix, commit_checkpoint
from .checkpoints import save as save_now
from .deletion import apply_retention

log = logging.getLogger(__name__)


class PendingSave(Future[CheckpointInfo]):
    """A checkpoint being written in the background: a :class:`concurrent.futures.Future` of its
    :class:`~ckptstore.records.CheckpointInfo`, so ``result()``, ``exception()``, ``done()``,
    ``add_done_callback`` and ``concurrent.futures.wait`` / ``as_completed`` work as for any
    executor's future. It is running from the start (the snapshot is taken): ``cancel()`` returns
    False, as for a future an executor has started. A done callback runs on the background save
    thread once the commit (or the failure) is final, or at once if it already is.
    """

    def __init__(self, run_name: str, step: int) -> None:
        super().__init__()
        self.set_running_or_notify_cancel()
        self.run_name = run_name
        self.step = step
        #: What a reference to this checkpoint will be once committed (``run@step``).
        self.ref = f"{run_name}@{step}"

    @classmethod
    def completed(cls, info: CheckpointInfo) -> PendingSave:
        """A save already committed (made synchronously), as a finished future."""
        pending = cls(info.run, info.step)
        pending.set_result(info)
        return pending

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("failed" if self.exception() else "committed")
        return f"PendingSave({self.ref!r}, {state})"


class SaveQueue:
    """The background saves of one run handle (see the module docstring)."""

    def __init__(self, backend: Backend, run_id: int, run_name: str, max_in_flight: int = 1) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise InvalidOptionError(f"saves_in_flight must be a whole number >= 1, got {max_in_flight!r}")
        self.backend = backend
        self.run_id = run_id
        self.run_name = run_name
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self._pending: list[PendingSave] = []
        self._threads: list[threading.Thread] = []
        self._failures: list[BaseException] = []
        # Host buffers lent to snapshots, one set per save in flight (tf.snapshot.HostBuffers):
        # reused so that a snapshot copies into resident memory instead of faulting in new.
        self._buffers: list[snapshot.HostBuffers] = []

    # ------------------------------------------------------------------ the caller's side

    def submit(self, target: Any, step: int, *, var_list: Any = None, write_meta_graph: bool = True,
               prefix: str = "model.ckpt") -> PendingSave:
        """Snapshot ``target`` now and save it in the background; returns at once after the snapshot."""
        step = check_step(step)
        check_prefix(prefix)
        fmt = formats.for_target(target)
        self.raise_failure()
        self._slots.acquire()  # a further save waits here, before its snapshot costs memory
        stack = contextlib.ExitStack()
        buffers = self._lend_buffers()
        try:
            sdir = stack.enter_context(self.backend.files.staging(f"save-{self.run_id}"))
            _trim_before_first_snapshot()
            snap = fmt.snapshot(target, sdir, prefix, step, var_list=var_list,
                                write_meta_graph=write_meta_graph, buffers=buffers)
        except BaseException as exc:
            stack.close()
            self._return_buffers(buffers)
            self._slots.release()
            if isinstance(exc, OSError):
                raise from_os_error(f"cannot save {self.run_name}@{step}", exc) from None
            raise
        if snap is None:
            # Nothing to snapshot cheaply (partitioned variables, lookup tables, graph mode TF2):
            # the save is made now, synchronously, and reported as already committed.
            stack.close()
            self._return_buffers(buffers)
            try:
                info = save_now(self.backend, self.run_id, self.run_name, target, step,
                                var_list=var_list, write_meta_graph=write_meta_graph, prefix=prefix)
            finally:
                self._slots.release()
            return PendingSave.completed(info)
        pending = PendingSave(self.run_name, step)
        # The thread holds the snapshot through a box it empties once written: Thread keeps its
        # args until run() returns, which would keep two snapshots alive across the next call.
        thread = threading.Thread(
            target=self._finish, args=(pending, stack, [snap], buffers, fmt, sdir, prefix, step, target),
            name=f"ckptstore-save-{self.run_name}@{step}",
        )
        with self._lock:
            self._pending.append(pending)
            self._threads.append(thread)
            _queues.add(self)
        thread.start()
        return pending

    def wait(self) -> None:
        """Wait until every pending save has committed (or failed); raise the first failure."""
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join()
        self.raise_failure()

    def raise_failure(self) -> None:
        """Raise a background failure not raised yet (each is raised once)."""
        with self._lock:
            if not self._failures:
                return
            exc, rest = self._failures[0], self._failures[1:]
            self._failures = []
        if rest:
            log.error("%d more background save(s) of run %s failed (logged above)", len(rest), self.run_name)
        raise exc

    @property
    def pending(self) -> list[PendingSave]:
        with self._lock:
            return [p for p in self._pending if not p.done()]

    # ------------------------------------------------------------------ the background thread

    def _lend_buffers(self) -> snapshot.HostBuffers:
        with self._lock:
            return self._buffers.pop() if self._buffers else snapshot.HostBuffers()

    def _return_buffers(self, buffers: snapshot.HostBuffers) -> None:
        with self._lock:
            self._buffers.append(buffers)

    def release_buffers(self) -> None:
        """Let go of the host buffers kept for the next snapshots (a finished run saves no more)."""
        with self._lock:
            self._buffers = []

    def _finish(self, pending: PendingSave, stack: contextlib.ExitStack, box: list[snapshot.Snapshot],
                buffers: snapshot.HostBuffers, fmt: formats.CheckpointFormat, sdir: Path, prefix: str,
                step: int, target: Any) -> None:
        _lower_priority()
        info: CheckpointInfo | None = None
        error: BaseException | None = None
        try:
            try:
                with stack:
                    try:
                        snap = box.pop()
                        # The data file is hashed while it is written: by the write itself
                        # (plain host tensors), else by a thread that follows TensorFlow's
                        # write and inherits this one's priority. Either way the commit
                        # follows the write at once, without reading the file back.
                        follower = None if snap.digests_itself else DigestFollower(sdir, f"{prefix}-{step}")
                        try:
                            path, known = snap.write(sdir, prefix, step)
                        finally:
                            followed = follower.finish() if follower is not None else {}
                        known.update(followed)
                        del snap  # the snapshot is freed once written
                        # The rest (the index, a meta graph) is small. One core, buffered reads:
                        # training keeps the other cores and no file is mapped into this process.
                        for p in fmt.files(path):
                            if p.name not in known:
                                known[p.name] = digest_file(p, mmap=False)
                    except OSError as exc:
                        raise from_os_error(f"cannot save {self.run_name}@{step}", exc) from None
                    # Readable names (model/dense/kernel) as a blocking save records them: they
                    # come from the object graph just written and the live object's attributes
                    # (its structure, not its values, so reading it here, after the call, is right).
                    names = readable_names(target, path)
                    info = commit_checkpoint(
                        self.backend, self.run_id, self.run_name, step, fmt, path, known, readable=names
                    )
            except OSError as exc:  # moving into the object area
                raise from_os_error(f"cannot save {self.run_name}@{step}", exc) from None
            apply_retention(self.backend, self.run_id)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, never dropped
            error = exc
            log.error("background save of %s@%d failed: %s", self.run_name, step, exc,
                      exc_info=not isinstance(exc, CkptstoreError))
            with self._lock:
                self._failures.append(exc)
        finally:
            self._return_buffers(buffers)  # before the slot: the next snapshot reuses them
            self._slots.release()
            # Last: a waiter (or a done callback) sees the slot and the buffers free again.
            if error is not None:
                pending.set_exception(error)
            else:
                assert info is not None  # committed, since nothing raised
                pending.set_result(info)
            with self._lock:
                self._threads = [t for t in self._threads if t is not threading.current_thread()]
                self._pending = [p for p in self._pending if p is not pending]
                if not self._threads and not self._failures:
                    _queues.discard(self)


def _trim_before_first_snapshot() -> None:
    """Once per process, before the first snapshot: hand memory the program has freed (model
    building, data loading) back to the system, so the snapshot is not added on top of it
    (benchmarks/async_save.py: ~90 MB less at the peak). Never again: later snapshots reuse the
    pages the previous one freed, and giving those back would make each snapshot fault the
    model in anew. glibc only; elsewhere nothing to do."""
    global _trimmed
    if _trimmed:
        return
    _trimmed = True
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_trimmed = False


#: Nice value of the background save threads: lower than training, but not so low that a busy
#: machine starves them (a starved save keeps the next one waiting for its slot).
_NICE = 5


def _lower_priority() -> None:
    """Run this background thread at a lower CPU priority (Linux: threads have their own nice
    value), so that writing and digesting a checkpoint takes idle CPU, not the training loop's."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: same priority then
        pass


#: Queues with pending saves or uncollected failures (strong references until settled).
_queues: set[SaveQueue] = set()


def wait_all(backend: Backend | None = None) -> None:
    """Wait for every pending save (of ``backend``'s store, or of all stores); raise the first
    failure not yet raised."""
    first: BaseException | None = None
    for q in list(_queues):
        if backend is not None and q.backend.db is not backend.db:
            continue
        try:
            q.wait()
        except BaseException as exc:  # noqa: BLE001 - every queue is waited for first
            first = first or exc
        finally:
            with q._lock:
                if not q._threads and not q._failures:
                    _queues.discard(q)
    if first is not None:
        raise first


@atexit.register
def _wait_at_exit() -> None:
    # The worker threads are not daemons, so they have finished by now (Python joins them before
    # atexit); what remains is to make uncollected failures visible.
    try:
        wait_all()
    except BaseException as exc:  # noqa: BLE001
        log.error("a background save failed and was never collected: %s", exc)

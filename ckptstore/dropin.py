"""What the drop-ins ``tf1.Saver`` and ``tf2.CheckpointManager`` share: which store and run a
save is recorded in, recording and forgetting, and importing what a directory already holds.

**The contract.** TensorFlow writes, deletes and names the files exactly as it would without
ckptstore (the drop-ins subclass TensorFlow's own classes); after each save that TensorFlow
completed, the checkpoint it wrote is *recorded* in a store run (``Store.record_checkpoint``:
hard links, content-addressed, deduplicated, verified like any save). When TensorFlow's
retention (each Saver's or manager's own ``max_to_keep`` / ``keep_checkpoint_every_n_hours``)
deletes a checkpoint's files, its record is *forgotten* too, unless a version (alias) names it.
The store never deletes what TensorFlow keeps: recording does not apply the run's retention rule.

**Which store and run.** ``run=`` (a :class:`~ckptstore.run.Run`) names both. Else the store is
``store=`` or the default one (:func:`default_store`: ``$CKPTSTORE_URI``, else ``./.ckptstore``,
as ``open_store()`` and the CLI find it), and the run is the one named after the checkpoint
directory (:func:`run_name_for`), resumed if it exists, so a fresh process pointed at the same
directory keeps adding to the same run.

**Steps.** A checkpoint's store step is the number TensorFlow put in its name (``model-1000``,
``ckpt-7``). A save without one (``saver.save(sess, "model.ckpt")``) is recorded at step 0: the
store holds one checkpoint per run and step, so of two such saves, or of two prefixes saved at
the same step (``model-100`` and ``best-100``), the store keeps the newer; TensorFlow's files of
both stay on disk, and reading them back reads those files, as TensorFlow does.

**Distributed training** (``docs/distributed.md``). Under ``MultiWorkerMirroredStrategy`` every
worker calls ``save`` (its collective part needs all of them). On the chief the drop-ins record
as above. A non-chief worker (``Run.role``; from ``$TF_CONFIG`` when the drop-in picks the run)
writes where TensorFlow's own multi-worker code puts it (``failure_handling``'s
``_non_chief_checkpoint_dir``, the multi-worker tutorial's ``write_filepath``):
``<parent>/workertemp_<task id>/<base>`` next to the directory, and removes that directory once
the save is done (:func:`worker_temp_dir`, :func:`remove_worker_temp`). It records, adopts and
forgets nothing, and its handle is a :class:`~ckptstore.run.FollowerRun` (no run is created).

**Migration.** Checkpoints a directory already holds (its ``checkpoint`` state file) that the
run lacks are recorded on first use (:func:`adopt_directory`), so switching an existing training
directory to the drop-in never starts the store side from nothing.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import logging
import os
import queue
import re
import threading
import types
import weakref
from pathlib import Path
from typing import Any

from . import distributed
from .errors import CkptstoreError, UnknownRunError
from .files.digest import DigestFollower
from .run import Run
from .store import Store, open_store

log = logging.getLogger(__name__)

_STEP = re.compile(r"-(\d+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# The most recently used default stores: a process that moves between many (a test suite
# giving each test its own $CKPTSTORE_URI) must not keep every one open. An evicted store is
# not closed: a drop-in built on it keeps it alive through its run.
_stores: collections.OrderedDict[str, Store] = collections.OrderedDict()
_STORES_KEPT = 4
_stores_lock = threading.Lock()


class StandIn(types.ModuleType):
    """The class of ``ckptstore.tf1`` / ``ckptstore.tf2``: a module that stands in for
    TensorFlow's (``training.saver`` / ``checkpoint.checkpoint_management``, in ``_tf_module``).
    Names it does not define are TensorFlow's, for reading and for writing, so code (and tests)
    that patch ``module.time`` reach the module TensorFlow's own classes read it from."""

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self.__dict__["_tf_module"], name)
        except (KeyError, AttributeError):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        # Not "only names TensorFlow's module has": mock.patch restores a name it deleted
        # through here, when the name is on neither module.
        real = self.__dict__.get("_tf_module")
        if name in self.__dict__ or real is None or name.startswith("__"):
            super().__setattr__(name, value)
        else:
            setattr(real, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__ or name.startswith("__"):
            super().__delattr__(name)
        else:
            delattr(self.__dict__["_tf_module"], name)


def default_store() -> Store:
    """The store ``open_store()`` opens here and now (``$CKPTSTORE_URI``, else ``./.ckptstore``),
    opened once per location for the process."""
    key = os.environ.get("CKPTSTORE_URI") or os.path.abspath(".ckptstore")
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = open_store(key)
            while len(_stores) > _STORES_KEPT:
                _stores.popitem(last=False)
        _stores.move_to_end(key)
        return store


def run_name_for(directory: str) -> str:
    """The run a checkpoint directory's saves are recorded in: its base name and a short digest
    of its absolute path (two ``train/`` directories of different projects stay apart)."""
    absolute = directory if "://" in directory else os.path.abspath(directory or ".")
    base = _UNSAFE.sub("_", os.path.basename(absolute.rstrip("/")) or "root").lstrip("-") or "dir"
    return f"{base[:60]}-{hashlib.sha1(absolute.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def run_for(store: Store, name: str) -> Run:
    """A handle on the run ``name``; a run the store lacks is created ``finished``, as
    ``ckptstore import`` creates one: nothing would ever finish it (a drop-in cannot tell when
    training ends), and a run left ``running`` would look alive forever."""
    if not distributed.role().is_chief:
        # A non-chief worker (TF_CONFIG): the chief may be creating the run right now, and a
        # follower creates nothing; it follows the run whether or not it exists yet.
        run: Run = store.start_run(name, resume=True)
        return run
    try:
        return store.run(name)
    except UnknownRunError:
        store.start_run(name, resume=True).finish()
        return store.run(name)


def is_follower(run: Run | None) -> bool:
    """Whether ``run`` is a non-chief worker's handle: its drop-in saves record nothing."""
    return run is not None and not run.role.is_chief


def worker_temp_dir(directory: str, task_id: int) -> str:
    """Where a non-chief worker writes what the chief writes into ``directory``: TensorFlow's
    ``workertemp_<task id>`` next to it (``failure_handling._non_chief_checkpoint_dir``); the
    checkpoint goes to ``<this>/<basename of directory>``."""
    directory = directory.rstrip("/") or directory
    return os.path.join(os.path.dirname(directory), f"workertemp_{task_id}")


def remove_worker_temp(path: str) -> None:
    """Remove a non-chief worker's ``workertemp_*`` directory (TensorFlow's
    ``gfile.DeleteRecursively``; one a killed worker left is removed by the next save)."""
    import tensorflow as tf

    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def step_of(prefix: str) -> int:
    """The store step of a checkpoint prefix (see the module docstring)."""
    m = _STEP.search(os.path.basename(prefix))
    return int(m.group(1)) if m else 0


def is_local(path: str) -> bool:
    return "://" not in path


def follow(directory: str, stem: str) -> Any | None:
    """Hash the data file TensorFlow is about to write for ``directory/stem`` while it writes
    (``files.digest.DigestFollower``: recording then costs ~no digest time); None where that
    cannot apply. Its :meth:`finish` result goes to :func:`record` as ``known``."""
    if not is_local(directory):
        return None

    return DigestFollower(Path(directory or "."), stem)


def _recordable(run: Run, prefix: str) -> bool:
    if not is_local(prefix):
        log.info("not recording %s in run %s: only local checkpoint files are recorded", prefix, run.name)
        return False
    if not os.path.exists(prefix + ".index"):
        # The deprecated V1 format (write_version=SaverDef.V1) writes one file at the prefix;
        # the store holds V2 checkpoints only. TensorFlow's files are there all the same.
        log.warning("not recording %s in run %s: not a V2 checkpoint (no .index)", prefix, run.name)
        return False
    return True


def record(run: Run, prefix: str, known: dict[str, tuple[str, int]] | None = None) -> None:
    """Record the checkpoint TensorFlow just wrote at ``prefix`` in ``run``."""
    if _recordable(run, prefix):
        run.store.record_checkpoint(prefix, run=run.name, step=step_of(prefix), known=known)


def record_with(recorder: Recorder, run: Run, prefix: str, follower: Any | None) -> None:
    """Record ``prefix`` through ``recorder``: inline, or staged now (hard links, so TensorFlow's
    later deletions cannot race it) and committed on the recorder's thread."""
    known = follower.finish() if follower is not None else None
    if recorder.mode == "sync":
        recorder.submit(record, run, prefix, known)
        return
    recorder.raise_failure()
    if not _recordable(run, prefix):
        return
    staged = run.store.stage_checkpoint(prefix, run=run.name)
    try:
        recorder.submit(staged.commit, run.name, step_of(prefix), known)
    except BaseException:
        staged.discard()
        raise


def forget(run: Run, prefix: str) -> None:
    """Forget ``prefix``'s record in ``run`` once TensorFlow deleted its files."""
    if not is_local(prefix) or os.path.exists(prefix + ".index"):
        return  # kept on disk (keep_checkpoint_every_n_hours): the store keeps it too
    run.store.forget_checkpoint(run.name, step_of(prefix), os.path.basename(prefix))


class Recorder:
    """Where a drop-in's records and forgets run: inline (``mode="sync"``, the default: the store
    has the checkpoint when ``save`` returns) or in order on one background thread
    (``mode="background"``: ``save`` returns when TensorFlow's files are complete; the record, a
    database commit, follows; ``benchmarks/dropin.py`` times both modes). A background failure is raised at the next
    ``submit`` or ``wait``; interpreter exit waits for what is queued. A crash before a queued
    record leaves a checkpoint TensorFlow's state file lists, which the next drop-in built on
    that directory records (:func:`adopt_directory`).
    """

    def __init__(self, mode: str = "sync") -> None:
        if mode not in ("sync", "background"):
            raise ValueError(f"record must be 'sync' or 'background', got {mode!r}")
        self.mode = mode
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` now (sync) or after everything submitted before it (background)."""
        self.raise_failure()
        if self.mode == "sync":
            fn(*args)
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="ckptstore-record", daemon=True)
                self._thread.start()
                _recorders.add(self)
        self._queue.put((fn, args))

    def wait(self) -> None:
        """Wait for what was submitted; raise the first background failure, if any."""
        if self._thread is not None:
            self._queue.join()
        self.raise_failure()

    def raise_failure(self) -> None:
        exc, self._failure = self._failure, None
        if exc is not None:
            raise exc

    def _work(self) -> None:
        while True:
            fn, args = self._queue.get()
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - raised in the caller's thread later
                log.error("recording in the background failed: %s", exc)
                if self._failure is None:
                    self._failure = exc
            finally:
                self._queue.task_done()


_recorders: weakref.WeakSet[Recorder] = weakref.WeakSet()


@atexit.register
def _wait_at_exit() -> None:
    for r in list(_recorders):
        try:
            r.wait()
        except Exception as exc:  # noqa: BLE001 - at exit there is no caller left to raise to
            log.error("recording in the background failed: %s", exc)


def adopt_directory(run: Run, directory: str) -> int:
    """Record the checkpoints ``directory``'s state file lists that ``run`` lacks; returns how many.

    A checkpoint that cannot be recorded is left for ``ckptstore import`` with a warning: the
    TensorFlow side keeps working either way.
    """
    if is_follower(run) or not is_local(directory) or not os.path.isfile(os.path.join(directory, "checkpoint")):
        return 0  # a non-chief worker records nothing: the chief adopts them
    # TensorFlow's own reader: a manager's state file has timestamp fields tf.state does not read.
    from tensorflow.python.checkpoint import checkpoint_management

    try:
        state = checkpoint_management.get_checkpoint_state(directory)
    except Exception as exc:  # noqa: BLE001 - TensorFlow raises several kinds for a bad file
        log.warning("cannot read the checkpoint state of %s (%s): its checkpoints are not recorded", directory, exc)
        return 0
    if state is None:
        return 0
    have = {(c.step, c.prefix) for c in run.store.checkpoints(run.name)}
    n = 0
    for p in dict.fromkeys([*state.all_model_checkpoint_paths, state.model_checkpoint_path]):
        if not p:
            continue
        path = p if os.path.isabs(p) else os.path.join(directory, p)
        if (step_of(path), os.path.basename(path)) in have or not os.path.exists(path + ".index"):
            continue
        try:
            record(run, path)
            n += 1
        except CkptstoreError as exc:
            log.warning("checkpoint %s is not in the store (%s); `ckptstore import %s --run %s` adds it",
                        path, exc, directory, run.name)
    if n:
        log.info("recorded %d checkpoint(s) already in %s in run %s", n, directory, run.name)
    return n

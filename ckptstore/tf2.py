"""A drop-in ``tf.train.CheckpointManager`` that also records every checkpoint in a store run.

::

    manager = tf.train.CheckpointManager(ckpt, './tf_ckpts', max_to_keep=3)        # before
    manager = ckptstore.tf2.CheckpointManager(ckpt, './tf_ckpts', max_to_keep=3)   # after
    manager = ckptstore.tf2.CheckpointManager(ckpt, run, max_to_keep=3)            # or: this run

:class:`CheckpointManager` *is* a ``tf.train.CheckpointManager`` (a subclass): files, the
``checkpoint`` state file, numbering, ``max_to_keep`` / ``keep_checkpoint_every_n_hours``,
``checkpoint_interval``, ``restore_or_initialize``, graph mode, async saves, warnings and errors
are TensorFlow's own. Each checkpoint TensorFlow finished writing is recorded in the run (from
TensorFlow's write callback, so an async save is recorded when its files are complete, in
TensorFlow's background thread); each one its retention deleted is forgotten there. See
:mod:`ckptstore.dropin` for which store and run, the steps, and migration: checkpoints the
directory already holds are recorded when the manager is built.

**On a non-chief worker** of a ``MultiWorkerMirroredStrategy`` job (the run is a
:class:`~ckptstore.run.FollowerRun`: ``start_run`` on that worker, or ``$TF_CONFIG`` when the
manager picks the run), ``save`` writes where TensorFlow's own multi-worker code has a non-chief
write (``failure_handling.PreemptionCheckpointHandler``'s write manager):
``<parent>/workertemp_<task id>/<base>``, through a TensorFlow ``CheckpointManager`` with
``max_to_keep=1``, and removes it when the save is done. It returns the path the chief's save
writes (what a plain manager returns; ``latest_checkpoint`` says the same), records and deletes
nothing, and never writes the directory's ``checkpoint`` state file: the chief's manager owns it.
Reads (``latest_checkpoint`` at construction, ``restore_or_initialize``) are TensorFlow's, from
the directory.

With a ``Run`` where TensorFlow takes a directory, the files go to ``directory=`` if given, else
to the run's working directory in the store's cache area (``<cache>/../tf-dirs/<run>``).

This module imports TensorFlow when it is imported (``import ckptstore`` does not import it).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from typing import Any

import tensorflow as tf

from . import dropin
from .run import Run
from .tf1 import latest_checkpoint  # the same function: tf.train.latest_checkpoint, and stored references

log = logging.getLogger(__name__)

__all__ = ["CheckpointManager", "latest_checkpoint"]


def _run_directory(run: Run) -> str:
    return str(run.store.tensorflow_directory(run.name))


def _is_async(options: Any) -> bool:
    return bool(getattr(options, "experimental_enable_async_checkpoint", False) or getattr(options, "enable_async", False))


class CheckpointManager(tf.train.CheckpointManager):
    """``tf.train.CheckpointManager`` recording in a store run (see the module docstring).

    Takes TensorFlow's arguments; ``directory`` may be a ``Run``; keywords ``run=`` and
    ``store=`` choose the run otherwise (default: the default store, the directory's run);
    ``record="background"`` records after ``save`` returns (``sync()`` waits; ``dropin.Recorder``).
    """

    def __init__(self, checkpoint: Any, directory: Any, *args: Any, run: Run | None = None, store: Any = None,
                 record: str = "sync", **kwargs: Any) -> None:
        recorder = dropin.Recorder(record)
        if isinstance(directory, Run):
            run = directory
            directory = kwargs.pop("directory", None) or _run_directory(run)
        super().__init__(checkpoint, directory, *args, **kwargs)
        self._followers: dict[str, Any] = {}  # checkpoint prefix -> its digest follower
        self._held: BaseException | None = None  # a store failure to raise after TF's callback
        self._recorder = recorder
        if run is None:
            store = store if store is not None else dropin.default_store()
            run = dropin.run_for(store, dropin.run_name_for(self.directory))
        self.run = run
        self._writer: tf.train.CheckpointManager | None = None  # a non-chief worker's (see _save_as_follower)
        dropin.adopt_directory(run, self.directory)

    def save(self, checkpoint_number: Any = None, check_interval: bool = True, options: Any = None) -> str | None:
        """TensorFlow's ``save``; when the files are complete the checkpoint is recorded."""
        # TensorFlow appends its own callback (state file, retention) after the caller's, so the
        # new checkpoint is recorded before retention runs. A store failure in either is held
        # until TensorFlow's callback has run (its state file and deletions are then what TF
        # leaves) and raised here, or, for an async save, at the next save or sync().
        self._raise_held()
        if dropin.is_follower(self.run):
            return self._save_as_follower(checkpoint_number, check_interval, options)
        # Background recording digests on its own thread; sync recording while TensorFlow writes.
        stem = self._next_stem(checkpoint_number, check_interval) if self._recorder.mode == "sync" else None
        if stem is not None:
            self._followers[os.path.join(self.directory, stem)] = dropin.follow(self.directory, stem)
        if options is None:
            options = tf.train.CheckpointOptions(experimental_write_callbacks=[self._record])
        else:
            options = copy.copy(options)
            callbacks = list(options.experimental_write_callbacks or [])
            options.experimental_write_callbacks = [*callbacks, self._record]
        try:
            path: str | None = super().save(checkpoint_number=checkpoint_number, check_interval=check_interval,
                                            options=options)
        finally:
            if not _is_async(options):
                self._finish_followers()
        if not _is_async(options):
            self._raise_held()
        return path

    def _save_as_follower(self, checkpoint_number: Any, check_interval: bool, options: Any) -> str | None:
        """A non-chief worker's part of the save (module docstring): TensorFlow writes it into
        ``workertemp_<task id>``, as PreemptionCheckpointHandler's non-chief write manager does;
        the interval check and the checkpoint's number are TensorFlow's, as on the chief."""
        temp = dropin.worker_temp_dir(self.directory, self.run.role.task_id)
        writer = self._writer
        if writer is None:
            writer = self._writer = tf.train.CheckpointManager(
                self._checkpoint, os.path.join(temp, os.path.basename(self.directory.rstrip("/"))), max_to_keep=1,
                checkpoint_name=os.path.basename(self._checkpoint_prefix),
                step_counter=getattr(self, "_step_counter", None), checkpoint_interval=self._checkpoint_interval,
            )
        interval = self._checkpoint_interval is not None
        if interval:  # the writer skips exactly the saves this manager would skip
            writer._last_checkpoint_step = getattr(self, "_last_checkpoint_step", None)  # noqa: SLF001 - TensorFlow's own class
        try:
            path = writer.save(checkpoint_number=checkpoint_number, check_interval=check_interval, options=options)
            writer.sync()  # an async save's files are written before they are removed
        finally:
            if interval:
                self._last_checkpoint_step = writer._last_checkpoint_step  # noqa: SLF001
            dropin.remove_worker_temp(temp)
        if path is None:
            return None
        real: str = os.path.join(self.directory, os.path.basename(path))
        self._latest_checkpoint = real
        log.debug("took part in the save of %s (written to %s, removed)", real, temp)
        return real

    def sync(self) -> None:
        """TensorFlow's ``sync``; then raises a store failure of an async save, if any."""
        super().sync()
        self._recorder.wait()
        self._raise_held()

    def _hold(self, exc: BaseException) -> None:
        log.error("recording in run %s failed: %s", self.run.name, exc)
        if self._held is None:
            self._held = exc

    def _raise_held(self) -> None:
        exc, self._held = self._held, None
        if exc is not None:
            raise exc

    def _next_stem(self, checkpoint_number: Any, check_interval: bool) -> str | None:
        """The name TensorFlow's ``save`` is about to write (eager mode), for the digest follower."""
        if not tf.executing_eagerly():
            return None
        try:
            if checkpoint_number is None:
                number = int(self._checkpoint.save_counter.numpy()) + 1
            else:
                number = int(checkpoint_number.numpy() if hasattr(checkpoint_number, "numpy") else checkpoint_number)
        except (TypeError, ValueError, AttributeError):
            return None
        if self._checkpoint_interval is not None and check_interval and self._last_checkpoint_step is not None:
            return None  # the save may be skipped: following a file that never comes costs a thread
        return f"{os.path.basename(self._prefix)}-{number}"

    def _finish_followers(self) -> None:
        while self._followers:
            _, follower = self._followers.popitem()
            if follower is not None:
                follower.finish()

    def _record(self, save_path: str) -> None:
        follower = self._followers.pop(save_path, None)
        try:
            dropin.record_with(self._recorder, self.run, save_path, follower)
        except Exception as exc:  # noqa: BLE001 - held and raised after TensorFlow's own callback
            self._hold(exc)

    def _sweep(self) -> None:
        before = list(self._maybe_delete)
        super()._sweep()
        for path in before:
            if path not in self._maybe_delete:
                try:
                    self._recorder.submit(dropin.forget, self.run, path)
                except Exception as exc:  # noqa: BLE001 - as in _record
                    self._hold(exc)

    def __repr__(self) -> str:
        return f"ckptstore.tf2.CheckpointManager(run={self.run.name!r}, directory={self.directory!r})"




# Every other name of TensorFlow's ``checkpoint_management`` module is this module's too (read and written
# through: dropin.StandIn), so that ``ckptstore.tf2`` can replace that module wholesale.
from tensorflow.python.checkpoint import checkpoint_management as _tf_module  # noqa: E402,F401 - read through dropin.StandIn

sys.modules[__name__].__class__ = dropin.StandIn

"""A drop-in ``tf.compat.v1.train.Saver`` that also records every checkpoint in a store run.

Adopting the store is a change of the constructor lines only::

    saver = tf.compat.v1.train.Saver([w1, w2], max_to_keep=4)          # before
    saver = ckptstore.tf1.Saver([w1, w2], max_to_keep=4)               # after: default store
    saver = ckptstore.tf1.Saver(run, [w1, w2], max_to_keep=4)          # after: this run

    saver.save(sess, 'my_test_model', global_step=1000)                 # unchanged
    saver = ckptstore.tf1.import_meta_graph('my_test_model-1000.meta')  # unchanged but the module
    saver.restore(sess, ckptstore.tf1.latest_checkpoint('./'))         # unchanged but the module

:class:`Saver` *is* a ``tf.compat.v1.train.Saver`` (a subclass): it writes, names and deletes
files exactly as TensorFlow does (the files at the path ``save`` returns, the ``checkpoint``
state file, its own ``max_to_keep`` and ``keep_checkpoint_every_n_hours``, TensorFlow's
warnings and errors, ``TypeError`` for an unknown keyword). After each save TensorFlow
completed, the checkpoint is recorded in a store run, and a checkpoint TensorFlow's retention
deleted is forgotten there (see :mod:`ckptstore.dropin` for the run, the steps and why).

Extensions, all keyword-only or in places TensorFlow would raise:

* ``Saver(run, ...)`` or ``Saver(..., run=run)`` records in that run; ``Saver(..., store=s,
  run_name="x")`` in run ``x`` of ``s``; else the default store and the directory's run.
* ``record="background"`` commits the record on a thread after ``save`` returns (``sync()``
  waits); see ``dropin.Recorder``.
* On a non-chief worker of a ``tf.distribute`` job (the run is a follower: ``$TF_CONFIG``, or a
  ``FollowerRun`` given), ``save`` writes where TensorFlow's multi-worker code has a non-chief
  write, ``<parent>/workertemp_<task id>/<base>/`` next to the checkpoint's directory, removes it,
  and returns the path the chief's save writes; nothing is recorded (``ckptstore.dropin``).
* ``restore``, ``import_meta_graph`` and ``latest_checkpoint`` also take what names a stored
  checkpoint (``run@1000``, ``run@latest``, an alias, a ``Run``, a ``CheckpointInfo``): it is
  read from a verified read-only copy in the store's cache (``Store.cached_checkpoint``).

This module imports TensorFlow when it is imported (``import ckptstore`` does not import it).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management as _tf_management
from tensorflow.python.eager import context as _context
from tensorflow.python.framework import meta_graph as _meta_graph
from tensorflow.python.ops import variables as _variables
from tensorflow.python.training import training_util as _training_util

from . import dropin
from .errors import CkptstoreError
from .run import Run

log = logging.getLogger(__name__)

__all__ = ["Saver", "latest_checkpoint", "import_meta_graph", "export_meta_graph"]

#: TensorFlow's own, re-exported so the module is a complete stand-in for its ``saver`` module.
export_meta_graph = tf.compat.v1.train.export_meta_graph


def _is_store(obj: Any) -> bool:
    return hasattr(obj, "start_run") and hasattr(obj, "record_checkpoint")


def _stored_prefix(save_path: Any, store: Any) -> str | None:
    """The cached copy's prefix when ``save_path`` names a stored checkpoint rather than files."""
    if isinstance(save_path, Run):
        save_path.wait()
        return str(save_path.store.cached_checkpoint(f"{save_path.name}@latest"))
    if not isinstance(save_path, (str, bytes, os.PathLike)) and hasattr(save_path, "ref"):
        store = store if store is not None else dropin.default_store()
        return str(store.cached_checkpoint(save_path))
    if isinstance(save_path, str) and "@" in save_path and not _tf_management.checkpoint_exists_internal(save_path):
        text = save_path[: -len(".meta")] if save_path.endswith(".meta") else save_path
        if os.path.exists(save_path):
            return None  # a file with an '@' in its name (a .meta): TensorFlow reads it
        try:
            store = store if store is not None else dropin.default_store()
            return str(store.cached_checkpoint(text))
        except CkptstoreError as exc:
            # Not a stored checkpoint either: TensorFlow's own error for a missing path follows.
            log.debug("%r names no stored checkpoint: %s", save_path, exc)
    return None


class Saver(tf.compat.v1.train.Saver):
    """``tf.compat.v1.train.Saver`` that records its checkpoints in a store run (module docstring).

    Takes TensorFlow's arguments unchanged, optionally after a leading ``Run`` or ``Store``, and
    the keywords ``run=``, ``store=``, ``run_name=``, and ``record=``: ``"sync"`` (the store has
    the checkpoint when ``save`` returns) or ``"background"`` (``save`` returns when TensorFlow
    is done; :meth:`sync` waits for the records; see ``dropin.Recorder``).
    """

    def __init__(self, *args: Any, run: Run | None = None, store: Any = None, run_name: str | None = None,
                 record: str = "sync", **kwargs: Any) -> None:
        recorder = dropin.Recorder(record)  # checked before TensorFlow builds anything
        if args and isinstance(args[0], Run):
            run, args = args[0], args[1:]
        elif args and _is_store(args[0]):
            store, args = args[0], args[1:]
        super().__init__(*args, **kwargs)
        if run is None and store is not None and run_name is not None:
            run = dropin.run_for(store, run_name)
        self.run: Run | None = run
        self._store = store
        self._runs: dict[str, Run] = {}  # directory -> run, without an explicit run
        self._adopted: set[str] = set()
        self._recorder = recorder

    def _run_for(self, directory: str) -> Run:
        if self.run is not None:
            run = self.run
        else:
            known = self._runs.get(directory)
            if known is None:
                store = self._store if self._store is not None else dropin.default_store()
                known = self._runs[directory] = dropin.run_for(store, dropin.run_name_for(directory))
            run = known
        if directory not in self._adopted:
            self._adopted.add(directory)
            dropin.adopt_directory(run, directory)
        return run

    def save(self, sess: Any, save_path: Any, global_step: Any = None, latest_filename: str | None = None,
             meta_graph_suffix: str = "meta", write_meta_graph: bool = True, write_state: bool = True,
             strip_default_attrs: bool = False, save_debug_info: bool = False) -> str | None:
        """TensorFlow's ``Saver.save``, then the checkpoint is recorded in the run (and those
        TensorFlow's retention deleted are forgotten)."""
        before = [p for p, _ in self._last_checkpoints]
        text = os.fsdecode(save_path)
        # Checkpoints the directory held before this Saver first wrote there are recorded first.
        run = self._run_for(os.path.dirname(text))
        if global_step is not None and not isinstance(global_step, (int, np.integer)):
            # Read once here, as TensorFlow would read it, to know the file name in advance.
            global_step = _training_util.global_step(sess, global_step)
        if dropin.is_follower(run):
            return self._save_as_follower(run, sess, text, global_step, latest_filename, meta_graph_suffix,
                                          write_meta_graph, write_state, strip_default_attrs, save_debug_info)
        follower = None
        # Background recording digests on its own thread; sync recording while TensorFlow writes.
        if not self._is_empty and self._recorder.mode == "sync":
            stem = os.path.basename(text) if global_step is None else (
                f"{os.path.basename(text)}-{global_step:08d}" if self._pad_step_number
                else f"{os.path.basename(text)}-{int(global_step)}")
            follower = dropin.follow(os.path.dirname(text), stem)
        try:
            path: str | None = super().save(sess, save_path, global_step=global_step, latest_filename=latest_filename,
                                meta_graph_suffix=meta_graph_suffix, write_meta_graph=write_meta_graph,
                                write_state=write_state, strip_default_attrs=strip_default_attrs,
                                save_debug_info=save_debug_info)
        except BaseException:
            if follower is not None:
                follower.finish()
            raise
        if path is None:
            if follower is not None:
                follower.finish()
            return None
        if os.path.dirname(path) != os.path.dirname(text):
            run = self._run_for(os.path.dirname(path))
        dropin.record_with(self._recorder, run, path, follower)
        kept = {p for p, _ in self._last_checkpoints}
        for old in before:
            if old not in kept and old != path:
                self._recorder.submit(dropin.forget, run, old)
        return path

    def _save_as_follower(self, run: Run, sess: Any, save_path: str, global_step: Any, *args: Any) -> str | None:
        """A non-chief worker's part of the save (module docstring): TensorFlow's own ``save``
        into ``workertemp_<task id>`` (created, as TensorFlow's ``_non_chief_checkpoint_dir``
        creates it), removed once written."""
        directory = os.path.dirname(save_path)
        temp = dropin.worker_temp_dir(directory, run.role.task_id)
        written = os.path.join(temp, os.path.basename(directory.rstrip("/")), os.path.basename(save_path))
        tf.io.gfile.makedirs(os.path.dirname(written))
        try:
            path = super().save(sess, written, global_step, *args)
        finally:
            dropin.remove_worker_temp(temp)
        return None if path is None else os.path.join(directory, os.path.basename(path))

    def sync(self) -> None:
        """Wait until every save is recorded in the store (only ``record="background"`` has
        anything to wait for); raise a recording failure, if any."""
        self._recorder.wait()

    def restore(self, sess: Any, save_path: Any) -> None:
        """TensorFlow's ``Saver.restore``; ``save_path`` may also name a stored checkpoint."""
        if not isinstance(save_path, (str, bytes, os.PathLike)) or "@" in os.fsdecode(save_path):
            self._recorder.wait()  # a stored reference: what this Saver saved is in the store first
        stored = _stored_prefix(save_path, self._store if self.run is None else self.run.store)
        super().restore(sess, stored if stored is not None else save_path)

    def __repr__(self) -> str:
        where = self.run.name if self.run is not None else "(by directory)"
        return f"ckptstore.tf1.Saver(run={where!r}, max_to_keep={self._max_to_keep!r})"


def latest_checkpoint(checkpoint_dir: Any, latest_filename: str | None = None, *, store: Any = None) -> str | None:
    """``tf.train.latest_checkpoint``; a ``Run`` or a reference (``run@latest``, an alias) gives
    the prefix of a read-only copy of that stored checkpoint (None for a run without any)."""
    if isinstance(checkpoint_dir, Run):
        checkpoint_dir.wait()
        if not checkpoint_dir.store.checkpoints(checkpoint_dir.name):
            return None
        return _stored_prefix(checkpoint_dir, None)
    if isinstance(checkpoint_dir, str) and "@" in checkpoint_dir and not os.path.isdir(checkpoint_dir):
        stored = _stored_prefix(checkpoint_dir, store)
        if stored is not None:
            return stored
    found: str | None = _tf_management.latest_checkpoint(checkpoint_dir, latest_filename)
    return found


def import_meta_graph(meta_graph_or_file: Any, clear_devices: bool = False, import_scope: str | None = None, *,
                      run: Run | None = None, store: Any = None, **kwargs: Any) -> Saver | None:
    """``tf.compat.v1.train.import_meta_graph`` returning a :class:`Saver` (recording in ``run=``
    or by directory, as ``Saver``); also takes what names a stored checkpoint."""
    if _context.executing_eagerly():
        raise RuntimeError("Exporting/importing meta graphs is not supported when eager execution is enabled. "
                           "No graph exists when eager execution is enabled.")  # TensorFlow's message
    if isinstance(meta_graph_or_file, tf.compat.v1.MetaGraphDef):
        meta_graph_def = meta_graph_or_file
    else:
        stored = _stored_prefix(meta_graph_or_file, store if store is not None else run.store if run is not None else None)
        filename = stored + ".meta" if stored is not None else meta_graph_or_file
        meta_graph_def = _meta_graph.read_meta_graph_file(filename)
    imported_vars, _ = _meta_graph.import_scoped_meta_graph_with_return_elements(
        meta_graph_def, clear_devices=clear_devices, import_scope=import_scope, **kwargs)
    # As TensorFlow's _create_saver_from_imported_meta_graph, with this module's Saver.
    if meta_graph_def.HasField("saver_def"):
        scope = import_scope
        names = list(imported_vars.keys())
        if names:
            scope = imported_vars[names[0]].name[: -len(names[0])]
        return Saver(saver_def=meta_graph_def.saver_def, name=scope, run=run, store=store)
    if _variables._all_saveable_objects(scope=import_scope):  # noqa: SLF001 - TensorFlow's own test
        return Saver(run=run, store=store)
    logging.getLogger("tensorflow").info("Saver not created because there are no variables in the graph to restore")
    return None



# Every other name of TensorFlow's ``saver`` module is this module's too (read and written
# through: dropin.StandIn), so that ``ckptstore.tf1`` can replace that module wholesale.
from tensorflow.python.training import saver as _tf_module  # noqa: E402,F401 - read through dropin.StandIn

sys.modules[__name__].__class__ = dropin.StandIn

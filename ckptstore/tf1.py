"""A drop-in ``tf.compat.v1.train.Saver`` that saves into a store run.

Adopting the store is a change of the constructor lines only::

    saver = tf.compat.v1.train.Saver([w1, w2], max_to_keep=4)          # before
    saver = ckptstore.tf1.Saver(run, [w1, w2], max_to_keep=4)           # after

    saver.save(sess, 'my_test_model', global_step=1000)                 # unchanged
    saver = tf.compat.v1.train.import_meta_graph('my_test_model-1000.meta')     # before
    saver = ckptstore.tf1.import_meta_graph('my_test_model-1000.meta', run=run) # after
    saver.restore(sess, tf.train.latest_checkpoint('./'))               # before
    saver.restore(sess, ckptstore.tf1.latest_checkpoint(run))           # after

What the strings are:

* ``Saver.save`` returns what TensorFlow returns, ``save_path-STEP`` (``'my_test_model-1000'``).
  No file exists at that name: the files are in the store, as the checkpoint ``run@STEP`` with
  the prefix ``basename(save_path)``. Every function of this module accepts that string back.
* ``latest_checkpoint`` returns a real path prefix: a read-only copy of the checkpoint,
  materialized once into the store's cache (``flows.materialized``), so that vanilla
  TensorFlow (``tf.train.load_checkpoint``, a plain ``Saver.restore``) can read it too.
* ``restore`` and ``import_meta_graph`` take any of: such a path (with or without ``.meta``),
  a reference (``run@1000``, ``run@latest``, an alias, a record), a run name, a ``Run``, the
  string ``save`` returned, or the plain ``save_path`` (its newest checkpoint). A path that is
  none of those but holds a vanilla checkpoint on disk is read from disk, as TensorFlow would.

Retention: ``max_to_keep`` and ``keep_checkpoint_every_n_hours`` become the run's retention rule
(a ``keep_best`` rule the run has is kept). ``global_step=None`` saves at step 0, replacing the
previous such save, as TensorFlow overwrites ``save_path``. ``write_state`` is accepted and
ignored: the store is the state. ``sharded`` is accepted; the store keeps one checkpoint either way.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Optional, Union

from .errors import CkptstoreError, InvalidOptionError, UnknownRefError
from .flows import materialized
from .flows.async_save import PendingSave
from .flows.resolve import checkpoint_of
from .records import CheckpointInfo
from .retention import Retention
from .run import Run
from .tf.runtime import tf

log = logging.getLogger(__name__)

__all__ = ["Saver", "latest_checkpoint", "import_meta_graph", "retention_of"]

#: TF's "effectively never" default for keep_checkpoint_every_n_hours.
_TF_NEVER_HOURS = 10000.0
_STEP_SUFFIX = re.compile(r"^(?P<prefix>.+)-(?P<step>\d+)$")
# Saver arguments that change what TensorFlow would write in ways the store does not reproduce.
_REFUSED = ("reshape", "saver_def", "builder")


def retention_of(run: Run, max_to_keep: Optional[int], keep_every_n_hours: Optional[float]) -> Retention:
    """The run's retention rule with TensorFlow's two retention arguments applied (None or 0
    ``max_to_keep``: keep all, as TF; 10000 hours, TF's default, or None: never)."""
    current = Retention.from_json(run.store.get_run(run.name).retention)
    hours = None if keep_every_n_hours is None or keep_every_n_hours >= _TF_NEVER_HOURS else keep_every_n_hours
    return Retention(max_to_keep=max_to_keep or None, keep_every_n_hours=hours, keep_best=current.keep_best)


def _as_run(run_or_store: Any, run_name: Optional[str]) -> Run:
    if isinstance(run_or_store, Run):
        return run_or_store
    if hasattr(run_or_store, "start_run"):
        if run_name is None:
            raise InvalidOptionError("Saver(store, ...) needs run_name=: the run to save into")
        return run_or_store.start_run(run_name)
    raise InvalidOptionError(f"Saver takes a Run (or a Store and run_name=), got {type(run_or_store).__name__}")


class Saver:
    """``tf.compat.v1.train.Saver`` saving into the run ``run`` (see the module docstring).

    ``Saver(run, var_list=None, max_to_keep=5, keep_checkpoint_every_n_hours=10000.0,
    sharded=False)``, or ``Saver(store, ..., run_name="name")`` to start or resume that run.
    """

    def __init__(
        self,
        run_or_store: Any,
        var_list: Any = None,
        max_to_keep: Optional[int] = 5,
        keep_checkpoint_every_n_hours: Optional[float] = _TF_NEVER_HOURS,
        sharded: bool = False,
        *,
        run_name: Optional[str] = None,
        **tf_options: Any,
    ) -> None:
        for key in _REFUSED:
            if tf_options.get(key):
                raise InvalidOptionError(f"ckptstore.tf1.Saver does not support {key}=; use tf.compat.v1.train.Saver for that")
        self.run = _as_run(run_or_store, run_name)
        if isinstance(var_list, (set, frozenset)):
            raise InvalidOptionError("var_list must be a list or a dict (as tf.compat.v1.train.Saver takes it)")
        self.var_list = dict(var_list) if isinstance(var_list, dict) else (list(var_list) if var_list is not None else None)
        self.sharded = sharded
        self.max_to_keep = max_to_keep
        self.keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
        self.run.set_retention(retention_of(self.run, max_to_keep, keep_checkpoint_every_n_hours))
        self._tf_saver: Any = None  # set by import_meta_graph: the graph's own saver_def
        self._returned: dict[int, str] = {}  # step -> the string save() returned

    @property
    def store(self) -> Any:
        return self.run.store

    def save(
        self,
        sess: Any,
        save_path: Union[str, os.PathLike[str]],
        global_step: Any = None,
        latest_filename: Optional[str] = None,
        meta_graph_suffix: str = "meta",
        write_meta_graph: bool = True,
        write_state: bool = True,
        strip_default_attrs: bool = False,
        save_debug_info: bool = False,
        *,
        blocking: bool = True,
    ) -> str:
        """Save ``sess``'s variables as ``run@global_step`` with prefix ``basename(save_path)``;
        returns ``save_path-global_step`` as TensorFlow does (not a file: see the module docstring).

        ``blocking=False`` returns once the values are snapshotted and commits in the
        background (``run.wait()`` waits).
        """
        path = os.fspath(save_path)
        prefix = os.path.basename(path.rstrip("/"))
        if not prefix:
            raise InvalidOptionError(f"save_path {path!r} names a directory; give a file prefix such as 'model.ckpt'")
        step = _step_of(sess, global_step)
        # After import_meta_graph: the imported graph's variables, as TF's restored Saver saves them.
        var_list = self.var_list
        self.run.save(sess, step, var_list=var_list, write_meta_graph=write_meta_graph, prefix=prefix, blocking=blocking)
        returned = path if global_step is None else f"{path}-{step}"
        self._returned[step] = returned
        return returned

    @property
    def last_checkpoints(self) -> list[str]:
        """The strings ``save`` returned, oldest first, for checkpoints retention still keeps
        (and saves still in the background)."""
        steps = {c.step for c in self.store.checkpoints(self.run.name)}
        steps |= {p.step for p in self.run.pending_saves}
        return [s for step, s in sorted(self._returned.items()) if step in steps]

    def restore(self, sess: Any, save_path: Any) -> None:
        """Restore ``sess`` from the checkpoint ``save_path`` names (see the module docstring).

        A path that is not the store's but holds a checkpoint on disk is restored from disk."""
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")  # TensorFlow's own message
        ck = _checkpoint_for(self.run, save_path)
        if ck is None:
            self._disk_saver(sess).restore(sess, os.fspath(save_path))
            return
        if self._tf_saver is not None:
            prefix = materialized.cached_prefix(self.store.backend, ck)
            with sess.graph.as_default():
                self._tf_saver.restore(sess, str(prefix))
            return
        self.store.restore(ck, sess, var_list=self.var_list)

    def _disk_saver(self, sess: Any) -> Any:
        if self._tf_saver is not None:
            return self._tf_saver
        with sess.graph.as_default():
            return tf().compat.v1.train.Saver(var_list=self.var_list)

    def __repr__(self) -> str:
        return f"ckptstore.tf1.Saver(run={self.run.name!r}, max_to_keep={self.max_to_keep!r})"


def _step_of(sess: Any, global_step: Any) -> int:
    if global_step is None:
        return 0
    if isinstance(global_step, bool):
        raise InvalidOptionError(f"global_step must be a whole number, got {global_step!r}")
    if isinstance(global_step, int):
        return global_step
    try:
        import numpy as np

        if isinstance(global_step, np.integer):
            return int(global_step)
    except ImportError:  # pragma: no cover - numpy comes with TensorFlow
        pass
    # A variable or tensor, as tf.train.global_step reads it.
    return int(tf().compat.v1.train.global_step(sess, global_step))


def _checkpoint_for(run: Optional[Run], save_path: Any, store: Any = None) -> Optional[CheckpointInfo]:
    """The checkpoint ``save_path`` names, or None for a vanilla checkpoint on disk."""
    store = store if store is not None else run.store if run is not None else None
    if isinstance(save_path, Run):
        save_path.wait()
        store = save_path.store
        save_path = f"{save_path.name}@latest"
    if isinstance(save_path, PendingSave):
        return save_path.result()
    if store is None:
        raise InvalidOptionError("pass run= or store=: which store holds the checkpoint")
    backend = store.backend
    if isinstance(save_path, CheckpointInfo) or (not isinstance(save_path, (str, os.PathLike)) and hasattr(save_path, "ref")):
        return checkpoint_of(backend, save_path)
    text = os.fspath(save_path)
    if text.endswith(".meta"):
        text = text[: -len(".meta")]
    found = materialized.checkpoint_at(backend, text)
    if found is not None:
        return found
    if run is not None:
        run.wait()  # a save still in the background counts
    # A reference or alias, or a run name (its newest checkpoint).
    if "/" not in text and os.sep not in text:
        for candidate in (text, f"{text}@latest"):
            try:
                return checkpoint_of(backend, candidate)
            except CkptstoreError:
                continue
    # What Saver.save returned, or the save_path itself, within the run.
    if run is not None:
        base = os.path.basename(text)
        cks = store.checkpoints(run.name)
        m = _STEP_SUFFIX.match(base)
        if m is not None:
            step = int(m.group("step"))
            hit = [c for c in cks if c.step == step and c.prefix == m.group("prefix")]
            hit = hit or ([c for c in cks if c.step == step] if not Path(text + ".index").exists() else [])
            if hit:
                return hit[0]
        same = [c for c in cks if c.prefix == base]
        if same and not Path(text + ".index").exists():
            return same[-1]
    if Path(text + ".index").exists():
        return None
    where = f" in run {run.name!r}" if run is not None else ""
    raise UnknownRefError(f"no checkpoint {os.fspath(save_path)!r}{where}: pass a reference (run@step), a run, or a path latest_checkpoint() gave")


def latest_checkpoint(run_or_ref: Any, store: Any = None) -> Optional[str]:
    """A path prefix of a read-only copy of the newest checkpoint of a run (a ``Run``, or a run
    name with ``store=``), or of the checkpoint a reference names; None if the run has none,
    as ``tf.train.latest_checkpoint`` returns None for an empty directory. Background saves of
    the run handle are waited for first."""
    if isinstance(run_or_ref, Run):
        run_or_ref.wait()
        store = run_or_ref.store
        if not store.checkpoints(run_or_ref.name):
            return None
        run_or_ref = f"{run_or_ref.name}@latest"
    if store is None:
        raise InvalidOptionError("latest_checkpoint(name) needs store=: which store holds the run")
    ck = _checkpoint_for(None, run_or_ref, store)
    if ck is None:
        return os.fspath(run_or_ref)
    return str(materialized.cached_prefix(store.backend, ck))


def import_meta_graph(
    meta_graph_or_ref: Any,
    clear_devices: bool = False,
    import_scope: Optional[str] = None,
    *,
    run: Optional[Run] = None,
    store: Any = None,
    **kwargs: Any,
) -> Optional[Saver]:
    """``tf.compat.v1.train.import_meta_graph`` for a stored checkpoint: imports its graph (for a
    save made with ``write_meta_graph=False``, the run's nearest earlier one) into the default
    graph and returns a :class:`Saver` that restores it, or None if the graph has no variables.

    ``meta_graph_or_ref`` is anything :meth:`Saver.restore` takes; ``run=`` resolves the names
    ``Saver.save`` returned (``'my_test_model-1000.meta'``), ``store=`` references elsewhere.
    """
    t = tf()
    if isinstance(meta_graph_or_ref, Run):
        run = meta_graph_or_ref
    store = store if store is not None else run.store if run is not None else None
    ck = _checkpoint_for(run, meta_graph_or_ref, store)
    if ck is None:  # a vanilla .meta on disk
        path = os.fspath(meta_graph_or_ref)
        meta = path if path.endswith(".meta") else path + ".meta"
    else:
        meta = str(materialized.cached_prefix(store.backend, ck)) + ".meta"
        if not Path(meta).exists():
            raise UnknownRefError(f"{ck.ref} has no meta graph (saved with write_meta_graph=False, none earlier in its run)")
    tf_saver = t.compat.v1.train.import_meta_graph(meta, clear_devices=clear_devices, import_scope=import_scope, **kwargs)
    if tf_saver is None:
        return None
    if run is None:
        run = store.run(ck.run) if ck is not None else None
    if run is None:
        raise InvalidOptionError("import_meta_graph of a file on disk needs run=: the run later saves go to")
    saver = Saver.__new__(Saver)
    saver.run = run
    saver.var_list = None
    saver.sharded = False
    saver.max_to_keep = None
    saver.keep_checkpoint_every_n_hours = None
    saver._tf_saver = tf_saver
    saver._returned = {}
    return saver

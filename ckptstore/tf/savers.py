"""The TensorFlow objects both the synchronous save (``tf.formats``) and the async snapshot
(``tf.snapshot``) save through, built once and cached.

TF1 savers are cached per graph and set of variables: building a ``tf.compat.v1.train.Saver``
adds save and restore ops to the graph, so building one per save would grow the graph without
bound in a training loop; a new one is built only when the graph's variables change. TF2
objects are wrapped in one cached ``Checkpoint(model=obj)`` per object for the same reason (each
new Checkpoint traces its save function again). Both caches hold their keys weakly.
"""

from __future__ import annotations

import weakref
from typing import Any

from ..errors import CkptstoreError
from .runtime import tf

_savers: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


def _tf1_var_key(graph: Any, var_list: Any) -> Any:
    if var_list is None:
        # "All saveable variables" changes when the graph grows (a head added after the first
        # save): a Saver built before would silently leave the new variables out.
        keys = tf().compat.v1.GraphKeys
        return ("all",) + tuple(
            id(v) for v in graph.get_collection(keys.GLOBAL_VARIABLES) + graph.get_collection(keys.SAVEABLE_OBJECTS)
        )
    if isinstance(var_list, dict):
        return tuple(sorted((k, id(v)) for k, v in var_list.items()))
    return tuple(id(v) for v in var_list)


def tf1_saver(graph: Any, var_list: Any = None) -> Any:
    """The cached Saver of ``graph`` for ``var_list`` (all saveable variables when None)."""
    t = tf()
    per_graph = _savers.setdefault(graph, {})
    key = _tf1_var_key(graph, var_list)
    saver = per_graph.get(key)
    if saver is None:
        with graph.as_default():
            try:
                # max_to_keep=None: retention is the store's job, the Saver must not delete files.
                saver = t.compat.v1.train.Saver(var_list=var_list, max_to_keep=None, save_relative_paths=True)
            except ValueError as exc:
                raise CkptstoreError(f"cannot save this graph: {exc}") from None
        per_graph[key] = saver
    return saver


def remember_tf1_saver(graph: Any, var_list: Any, saver: Any) -> None:
    """Make ``saver`` (one ``import_meta_graph`` built) the cached Saver of ``graph`` for ``var_list``."""
    _savers.setdefault(graph, {})[_tf1_var_key(graph, var_list)] = saver


_wrappers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def tf2_checkpoint(obj: Any) -> Any:
    """``obj`` itself if it is a tf.train.Checkpoint, else a cached Checkpoint(model=obj)."""
    t = tf()
    if isinstance(obj, t.train.Checkpoint):
        return obj
    ckpt = _wrappers.get(obj)
    if ckpt is None:
        ckpt = t.train.Checkpoint(model=obj)
        _wrappers[obj] = ckpt
    return ckpt



__all__ = ["remember_tf1_saver", "tf1_saver", "tf2_checkpoint"]

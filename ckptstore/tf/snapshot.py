"""Snapshots for asynchronous saves: take the variables' values now, write the checkpoint later.

A :class:`Snapshot` is taken in the caller's thread and holds values that later training steps
cannot change; :meth:`Snapshot.write` then writes an ordinary checkpoint from them in any thread,
byte-for-byte the format the synchronous save writes (``formats.TF1Saver`` /
``formats.TF2Checkpoint``), so restores do not know the difference.

* **TF1** (a ``tf.compat.v1.Session``): one ``sess.run`` reads every variable of the Saver's
  ``var_list`` into host numpy copies (and, if asked, the meta graph is exported then, since
  the graph may grow afterwards). The write feeds them to a ``SaveV2`` op in a private graph
  under the same names ``tf.compat.v1.train.Saver`` gives them. Graphs whose Saver needs more
  than plain variables (partitioned variables, lookup tables, other saveable objects) have no
  snapshot here: :func:`take` returns None and the caller saves synchronously.
* **TF2** (a ``tf.train.Checkpoint`` or trackable): the checkpoint's own serialization is run
  eagerly, which reads each variable into an eager tensor. TensorFlow's variables are
  copy-on-write with respect to such reads (an assignment or optimizer update while a read
  tensor is alive writes a fresh buffer), so the tensors are the values at the time of the call
  and cost no copy until training changes a variable. TensorFlow's own
  ``CheckpointOptions(enable_async=True)`` is not used: with Keras 3 variables it fails
  (its CPU copy creates variables inside a ``tf.function``).

Both lean on TensorFlow internals (``saveable_object_util``, the Checkpoint's saver,
``functional_saver``) that are stable across 2.x releases; they are confined to this module.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Optional

from .formats import tf1_saver, tf2_checkpoint
from .runtime import tf


class Snapshot(abc.ABC):
    """Values taken at save time, written as a checkpoint later (see the module docstring)."""

    #: Bytes of variable data held (for logs and benchmarks).
    nbytes: int = 0

    @abc.abstractmethod
    def write(self, directory: Path, prefix: str, step: int) -> Path:
        """Write the checkpoint ``prefix-step`` under ``directory``; returns the written prefix."""


class TF1Snapshot(Snapshot):
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.nbytes = sum(int(getattr(v, "nbytes", 0)) for v in values.values())

    def write(self, directory: Path, prefix: str, step: int) -> Path:
        t = tf()
        path = directory / f"{prefix}-{step}"
        names = sorted(self.values)
        g = t.Graph()
        with g.as_default():
            feeds = {}
            tensors = []
            for n in names:
                v = self.values[n]
                ph = t.compat.v1.placeholder(t.as_dtype(v.dtype), shape=v.shape)
                feeds[ph] = v
                tensors.append(ph)
            op = t.raw_ops.SaveV2(
                prefix=str(path), tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
            )
        with t.compat.v1.Session(graph=g) as sess:
            sess.run(op, feeds)
        return path


class TF2Snapshot(Snapshot):
    def __init__(self, serialized: Any, registered: Any) -> None:
        self.serialized = serialized
        self.registered = registered
        n = 0
        for tensors in serialized.values():
            for v in tensors.values():
                if hasattr(v, "dtype") and hasattr(v, "shape") and v.shape.is_fully_defined():
                    n += v.shape.num_elements() * getattr(v.dtype, "size", 4)
        self.nbytes = n

    def write(self, directory: Path, prefix: str, step: int) -> Path:
        from tensorflow.python.checkpoint import functional_saver

        path = directory / f"{prefix}-{step}"
        saver = functional_saver.MultiDeviceSaver(self.serialized, self.registered)
        saver.save(str(path))
        return path


def take(target: Any, directory: Path, prefix: str, step: int, *, var_list: Any = None,
         write_meta_graph: bool = True) -> Optional[Snapshot]:
    """A snapshot of ``target``'s variables, or None where only a synchronous save will do.

    For a TF1 session with ``write_meta_graph`` the graph is exported into ``directory`` now, as
    ``prefix-step.meta``, beside where :meth:`Snapshot.write` will put the data."""
    t = tf()
    if isinstance(target, t.compat.v1.Session):
        return _take_tf1(target, directory, prefix, step, var_list, write_meta_graph)
    return _take_tf2(target)


def _take_tf1(sess: Any, directory: Path, prefix: str, step: int, var_list: Any, write_meta_graph: bool) -> Optional[Snapshot]:
    t = tf()
    from tensorflow.python.training.saving import saveable_object_util

    graph = sess.graph
    with graph.as_default():
        if var_list is None:
            keys = t.compat.v1.GraphKeys
            if graph.get_collection(keys.SAVEABLE_OBJECTS):
                return None
            var_list = graph.get_collection(keys.GLOBAL_VARIABLES)
        try:
            # A dict already names its values, as Saver takes it; a list is named by TF's rule.
            named = dict(var_list) if isinstance(var_list, dict) else saveable_object_util.op_list_to_dict(
                list(var_list), convert_variable_to_tensor=False)
        except (TypeError, ValueError):
            return None  # the synchronous save reports it
        # op_list_to_dict names each variable as Saver does, but hands back what Saver reads
        # (a resource variable's handle, a ref variable's tensor): map those back to variables.
        lookup: dict[int, Any] = {}
        for v in var_list if not isinstance(var_list, dict) else var_list.values():
            lookup[id(v)] = v
            for attr in ("handle", "_graph_element", "_variable"):
                inner = getattr(v, attr, None)
                if inner is not None:
                    lookup[id(inner)] = v
        plain: dict[str, Any] = {}
        for name, value in named.items():
            var = lookup.get(id(value)) if not isinstance(value, (list, tuple)) else None
            if var is None or not isinstance(var, t.Variable):
                return None  # partitioned variables and saveables: Saver's own slicing
            plain[name] = var
        if not plain:
            return None
        saver = tf1_saver(graph, var_list)  # the same cached Saver the synchronous path uses
        values = sess.run(plain)
        if write_meta_graph:
            saver.export_meta_graph(str(directory / f"{prefix}-{step}.meta"))
    return TF1Snapshot(values)


def _take_tf2(target: Any) -> Optional[Snapshot]:
    t = tf()
    if not t.executing_eagerly():
        return None
    ckpt = tf2_checkpoint(target)
    saver = getattr(ckpt, "_saver", None)
    gather = getattr(saver, "_gather_serialized_tensors", None)
    if gather is None:  # a TensorFlow without this layout: save synchronously
        return None
    serialized, _feed, registered, _proto = gather(None)
    # Values that are callables are computed when written (Python state); force them now so that
    # they too are those of the call.
    from tensorflow.python.training.saving import saveable_object

    for obj, tensors in serialized.items():
        for key, value in list(tensors.items()):
            if isinstance(value, saveable_object.SaveSpec):  # tensor_callable.Callable among them
                tensors[key] = value.tensor
            elif callable(value):
                tensors[key] = value()
    return TF2Snapshot(serialized, registered)

"""Snapshots for asynchronous saves: take the variables' values now, write the checkpoint later.

A :class:`Snapshot` is taken in the caller's thread and holds values that later training steps
cannot change; :meth:`Snapshot.write` then writes an ordinary checkpoint from them in any thread,
byte-for-byte the format the synchronous save writes (``formats.TF1Saver`` /
``formats.TF2Checkpoint``), so restores do not know the difference. Each format takes its own
snapshot (``CheckpointFormat.snapshot`` calls :func:`take_tf1` / :func:`take_tf2`).

* **TF1** (a ``tf.compat.v1.Session``): one ``sess.run`` reads every variable of the Saver's
  ``var_list`` into host numpy copies (and, if asked, the meta graph is exported then, since
  the graph may grow afterwards). The fetches are ``DeepCopy`` ops (added once to the graph):
  their fresh buffers become the numpy arrays without a copy, under the same names
  ``tf.compat.v1.train.Saver`` gives them. Graphs whose Saver needs more than plain variables
  (partitioned variables, lookup tables, other saveable objects) have no snapshot here:
  :func:`take` returns None and the caller saves synchronously.
* **TF2** (a ``tf.train.Checkpoint`` or trackable): the checkpoint's own serialization is run
  eagerly, which reads each variable into an eager tensor (a view of the variable's buffer),
  and each is copied at once into :class:`HostBuffers`, arrays the run keeps from save to save.
  Keeping the reads instead (TensorFlow's variables are copy-on-write with respect to them)
  would make the next training step copy every variable into freshly allocated memory; and a
  copy into fresh memory each save (``DeepCopy``, the previous design) makes the kernel fault
  the whole model in anew every time, since glibc returns large freed blocks to the system
  (for 256 MB, ~65,000 page faults; measured in one process, 0.16 s more per save than
  copying into the reused buffers). TensorFlow's own ``CheckpointOptions(enable_async=True)`` is not used: with
  Keras 3 variables it fails (its CPU copy creates variables inside a ``tf.function``).
  Values that are not plain host tensors (slices of partitioned variables, variants such as a
  ``tf.data`` iterator's state, tensors on an accelerator, registered savers) are copied with
  ``DeepCopy`` where they are large CPU tensors and kept as reads otherwise.

**Writing.** Where every value is a plain host tensor (numbers, bools, strings; whole, on the
CPU) the snapshot writes the checkpoint itself (``ckptstore.bundle_writer``): the same bytes
TensorFlow writes, digested as they go, so :meth:`Snapshot.write` also returns the files'
digests and nothing is read back. Anything else is written by TensorFlow (TF1: a prebuilt
``SaveV2`` graph fed the arrays without a copy; TF2: the checkpoint's ``MultiDeviceSaver``) and
digested by the caller.

Both lean on TensorFlow internals (``saveable_object_util``, the Checkpoint's saver,
``functional_saver``) that are stable across 2.x releases; they are confined to this module.
"""

from __future__ import annotations

import abc
import threading
import weakref
from pathlib import Path
from typing import Any

from .. import bundle_writer
from .runtime import tf
from .savers import tf1_saver, tf2_checkpoint

#: {file name: (blake3 hex digest, size)} of files a write digested while writing them.
Digests = dict[str, tuple[str, int]]


class Snapshot(abc.ABC):
    """Values taken at save time, written as a checkpoint later (see the module docstring)."""

    #: Bytes of variable data held (for logs and benchmarks).
    nbytes: int = 0
    #: What the write hands to ``bundle_writer`` (None: TensorFlow writes it). Emptied by the
    #: write, which lets go of the snapshot's arrays as soon as they are written.
    items: list[bundle_writer.Item] | None = None

    @property
    def digests_itself(self) -> bool:
        """Whether :meth:`write` returns the digests of the files it writes."""
        return self.items is not None

    def write(self, directory: Path, prefix: str, step: int) -> tuple[Path, Digests]:
        """Write the checkpoint ``prefix-step`` under ``directory``; returns the written prefix
        and the digests of the files it digested while writing (empty if TensorFlow wrote)."""
        path = directory / f"{prefix}-{step}"
        if self.items is None:
            self._tf_write(path)
            return path, {}
        items, self.items = self.items, []
        self._release()
        return path, bundle_writer.write_bundle(path, items)

    @abc.abstractmethod
    def _tf_write(self, path: Path) -> None:
        """Write with TensorFlow (for values ``bundle_writer`` does not write)."""

    def _release(self) -> None:  # noqa: B027 - an optional hook: a snapshot may hold nothing else
        """Drop what the snapshot holds besides ``items``."""


class TF1Snapshot(Snapshot):
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.nbytes = sum(int(getattr(v, "nbytes", 0)) for v in values.values())
        # Sorted, as the TF1 write below feeds them; a Saver's own save uses the same order.
        self.items = _plain_items((n, *_host_item(v)) for n, v in sorted(values.items()))

    def _release(self) -> None:
        self.values = {}

    def _tf_write(self, path: Path) -> None:
        names = sorted(self.values)
        arrays = [self.values[n] for n in names]
        self.values = {}  # the feed below holds the arrays only as long as SaveV2 runs
        writer = _tf1_writer(tuple((n, a.dtype.str, a.shape) for n, a in zip(names, arrays)))
        writer.run(str(path), arrays)


def _host_item(value: Any) -> tuple[int, tuple[int, ...], Any]:
    """(TF dtype enum, shape, value as ``bundle_writer`` takes it) of a fetched numpy value;
    enum 0 where it writes no such value."""
    import numpy as np

    if isinstance(value, bytes):
        return bundle_writer.STRING_ENUM, (), [value]
    arr = np.asarray(value)
    if arr.dtype.kind in "OS":
        flat = arr.reshape(-1)
        if all(isinstance(v, bytes) for v in flat):
            return bundle_writer.STRING_ENUM, arr.shape, list(flat)
        return 0, arr.shape, None
    enum = bundle_writer.NUMERIC_ENUMS.get(arr.dtype.name, 0)
    if enum and not arr.dtype.isnative:
        enum = 0  # the bundle is little-endian, as this host is
    return enum, arr.shape, np.ascontiguousarray(arr) if enum else None


def _plain_items(items: Any) -> list[bundle_writer.Item] | None:
    """``items`` as a list if ``bundle_writer`` writes every one of them, else None."""
    if not bundle_writer.AVAILABLE:
        return None
    out = list(items)
    if not all(bundle_writer.supported_dtype(enum) for _, enum, _, _ in out):
        return None
    return out


class _TF1Writer:
    """A prebuilt private graph ``placeholders -> SaveV2`` and its Session, reused by every
    write with the same names, dtypes and shapes: building a graph and a Session per save cost
    more than the write itself. The snapshot's arrays are TensorFlow's own (64-byte aligned)
    buffers, so feeding them aliases them instead of copying (+0 MB, not +model size)."""

    def __init__(self, signature: tuple[tuple[str, str, tuple[int, ...]], ...]) -> None:
        import numpy as np

        t = tf()
        self.graph = t.Graph()
        with self.graph.as_default():
            self.prefix = t.compat.v1.placeholder(t.string, shape=[])
            self.inputs = [t.compat.v1.placeholder(t.as_dtype(np.dtype(d)), shape=shape) for _, d, shape in signature]
            self.op = t.raw_ops.SaveV2(prefix=self.prefix, tensor_names=[n for n, _, _ in signature],
                                       shape_and_slices=[""] * len(signature), tensors=self.inputs)
        # One thread each: the write is I/O, and the training loop keeps the cores.
        config = t.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
        self.session = t.compat.v1.Session(graph=self.graph, config=config)

    def run(self, path: str, arrays: list[Any]) -> None:
        feeds = {self.prefix: path}
        feeds.update(zip(self.inputs, arrays))
        arrays.clear()
        self.session.run(self.op, feeds)


_writers: dict[tuple[Any, ...], _TF1Writer] = {}
_writers_lock = threading.Lock()
#: Distinct variable sets written by one process (more are rebuilt as needed).
_MAX_WRITERS = 4


def _tf1_writer(signature: tuple[tuple[str, str, tuple[int, ...]], ...]) -> _TF1Writer:
    with _writers_lock:
        w = _writers.pop(signature, None)
        if w is None:
            w = _TF1Writer(signature)
            while len(_writers) >= _MAX_WRITERS:
                old = _writers.pop(next(iter(_writers)))
                old.session.close()
        _writers[signature] = w  # most recently used last
        return w


class TF2Snapshot(Snapshot):
    """Either ``items`` (host copies that ``bundle_writer`` writes) or the checkpoint's own
    ``serialized`` tensors and ``registered`` savers (for TensorFlow to write)."""

    def __init__(self, serialized: Any, registered: Any, items: list[bundle_writer.Item] | None = None) -> None:
        self.serialized = serialized
        self.registered = registered
        self.items = items
        n = 0
        if items is not None:
            n = sum(int(getattr(v, "nbytes", 0)) for _, _, _, v in items)
        for tensors in (serialized or {}).values():
            for v in tensors.values():
                if hasattr(v, "dtype") and hasattr(v, "shape") and v.shape.is_fully_defined():
                    n += v.shape.num_elements() * getattr(v.dtype, "size", 4)
        self.nbytes = n

    def _release(self) -> None:
        self.serialized = {}
        self.registered = {}

    def _tf_write(self, path: Path) -> None:
        from tensorflow.python.checkpoint import functional_saver

        saver = functional_saver.MultiDeviceSaver(self.serialized, self.registered)
        saver.save(str(path))


def _tf2_items(serialized: Any) -> list[bundle_writer.Item] | None:
    """The values in the order ``MultiDeviceSaver`` writes them (objects, then each object's
    keys, as gathered), or None unless each is a whole eager tensor on the host."""
    import numpy as np

    t = tf()
    items = []
    for tensors in serialized.values():
        for key, value in tensors.items():
            if value is None:
                continue  # recorded in the object graph, no value saved (as MultiDeviceSaver)
            if isinstance(value, dict) or not isinstance(value, t.Tensor) or not hasattr(value, "_numpy_internal"):
                return None  # slices, symbolic tensors: TensorFlow's to write
            if "CPU" not in (value.device or "").upper():
                return None
            enum = value.dtype.as_datatype_enum
            if not bundle_writer.supported_dtype(enum):
                return None
            # A view of the tensor's own buffer, no copy (the array keeps the tensor alive).
            host = value._numpy_internal()  # noqa: SLF001 - .numpy() would copy it
            if enum == bundle_writer.STRING_ENUM:
                host = [host] if isinstance(host, bytes) else list(host.reshape(-1))
            else:
                host = np.asarray(host)  # a 0-d tensor may come back as a numpy scalar
            items.append((key, enum, tuple(value.shape.as_list()), host))
    return _plain_items(items)


def take_tf1(sess: Any, directory: Path, prefix: str, step: int, var_list: Any, write_meta_graph: bool) -> Snapshot | None:
    """A snapshot of a session's variables (``formats.TF1Saver.snapshot``), or None where only
    a synchronous save will do. With ``write_meta_graph`` the graph is exported into
    ``directory`` now, as ``prefix-step.meta``, beside where :meth:`Snapshot.write` will put
    the data."""
    t = tf()
    from tensorflow.python.training.saving import saveable_object_util

    if not _COPYABLE:
        _init_copyable()
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
        values = _run_inline(sess, _tf1_fetches(graph, plain))
        if write_meta_graph:
            _export_meta_graph(graph, saver, directory / f"{prefix}-{step}.meta")
    return TF1Snapshot(values)


def _run_inline(sess: Any, fetches: dict[str, Any]) -> dict[str, Any]:
    """``sess.run(fetches)`` with the copies' kernels run in the calling thread (their memcpy is
    still spread over the session's intra-op threads). glibc serves an allocation from the
    calling thread's arena, so the snapshot's buffers then come from one arena, the one the
    writer frees them back into, and the next snapshot reuses those pages; run on the session's
    inter-op threads, they come from several arenas that give most of them back to the system,
    and each snapshot faults ~half the model in anew (~150 ms of CPU for 256 MB). A session
    that cannot run inline (several partitions, a remote master) runs the fetch as usual."""
    t = tf()
    try:
        return sess.run(fetches, options=t.compat.v1.RunOptions(inter_op_thread_pool=-1))
    except (t.errors.InvalidArgumentError, t.errors.UnimplementedError):
        return sess.run(fetches)


def _export_meta_graph(graph: Any, saver: Any, path: Path) -> None:
    """``saver.export_meta_graph(path)``, reusing the bytes of the last export while the graph
    is unchanged: serializing a graph (with shapes) costs as much as the snapshot itself, and a
    training loop's graph stops growing after its first steps. "Unchanged" is the graph's op
    count (``graph.version``) and the size of each collection, which is what the meta graph holds
    besides the saver's definition (the saver is part of the key)."""
    key = (graph.version, id(saver),
           tuple(sorted((str(k), len(graph.get_collection(k))) for k in graph.get_all_collection_keys())))
    cached = _meta_cache.get(graph)
    if cached is not None and cached[0] == key:
        path.write_bytes(cached[1])
        return
    saver.export_meta_graph(str(path))
    _meta_cache[graph] = (key, path.read_bytes())


_meta_cache: weakref.WeakKeyDictionary[Any, tuple[Any, bytes]] = weakref.WeakKeyDictionary()


def _tf1_fetches(graph: Any, plain: dict[str, Any]) -> dict[str, Any]:
    """What to fetch for a snapshot of ``plain`` (name -> variable), built once per graph and
    variable set. For a CPU variable, a ``DeepCopy`` of its value: TensorFlow copies it on its
    own threads into a fresh buffer that the fetch then hands to numpy without another copy
    (fetching the variable itself copies it, single-threaded, holding the GIL, into a numpy
    buffer that the write must copy once more because it is not aligned for TensorFlow)."""
    key = tuple((n, id(v)) for n, v in plain.items())
    per_graph = _fetches.setdefault(graph, {})
    fetches = per_graph.get(key)
    if fetches is None:
        t = tf()
        fetches = {}
        try:
            with graph.as_default(), t.name_scope("ckptstore_snapshot"):
                for name, var in plain.items():
                    value = var.read_value()
                    dev = (var.device or "").upper()
                    if var.dtype.base_dtype in _COPYABLE and (not dev or "CPU" in dev):
                        with t.device(var.device or None):
                            value = t.raw_ops.DeepCopy(x=value)
                    fetches[name] = value
        except RuntimeError:  # a finalized graph (MonitoredSession): fetch the variables
            return dict(plain)
        per_graph[key] = fetches
    return fetches


_fetches: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], dict[str, Any]]] = weakref.WeakKeyDictionary()
_COPYABLE: set[Any] = set()


def _init_copyable() -> None:
    t = tf()
    _COPYABLE.update({t.float16, t.bfloat16, t.float32, t.float64, t.int8, t.int16, t.int32, t.int64,
                      t.uint8, t.uint16, t.uint32, t.uint64, t.bool, t.complex64, t.complex128})


def take_tf2(target: Any, buffers: HostBuffers) -> Snapshot | None:
    """A snapshot of a TF2 checkpoint or trackable (``formats.TF2Checkpoint.snapshot``): plain
    host tensors are copied into ``buffers`` (lent until the snapshot is written)."""
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

    for tensors in serialized.values():
        for key, value in list(tensors.items()):
            if isinstance(value, saveable_object.SaveSpec):  # tensor_callable.Callable among them
                value = value.tensor
            elif callable(value):
                value = value()
            tensors[key] = value
    items = None if registered else _tf2_items(serialized)
    if items is not None:
        # Copied into the run's reused buffers; the reads (views of the variables) are dropped
        # here, before the next training step would copy-on-write them.
        return TF2Snapshot(None, None, buffers.fill(items))
    if not _COPYABLE:
        _init_copyable()
    for tensors in serialized.values():
        for key, value in list(tensors.items()):
            tensors[key] = _own_copy(value)
    return TF2Snapshot(serialized, registered)


class HostBuffers:
    """Host arrays that one run's TF2 snapshots copy the variables into, reused by every save.

    A snapshot in freshly allocated memory (TensorFlow's ``DeepCopy``) is faulted in by the
    kernel page by page, and glibc hands large blocks back to the system when they are freed,
    so every save faulted the whole model in anew: ~65,000 faults per 256 MB, which cost a
    training loop 0.16 s more per save than these buffers (benchmarks: docs/performance.md, saving without stalling training).
    These arrays stay resident, so after the first save a snapshot is a plain ``memcpy`` into
    warm memory. The async save queue holds one set per save in flight (a set is lent to one
    snapshot until it is written) and drops them when the run finishes.
    """

    def __init__(self) -> None:
        self.arrays: dict[str, Any] = {}

    def fill(self, items: list[bundle_writer.Item]) -> list[bundle_writer.Item]:
        """``items`` with each array replaced by a copy in these buffers (strings are already
        copies). Arrays of keys no longer saved are let go."""
        import numpy as np

        kept: dict[str, Any] = {}
        out: list[bundle_writer.Item] = []
        for key, enum, shape, value in items:
            if enum != bundle_writer.STRING_ENUM:
                dst = self.arrays.get(key)
                if dst is None or dst.shape != value.shape or dst.dtype != value.dtype:
                    dst = np.empty(value.shape, value.dtype)
                np.copyto(dst, value)
                kept[key] = value = dst
            out.append((key, enum, shape, value))
        self.arrays = kept
        return out


#: CPU tensors of at least this size are copied at snapshot time; smaller ones stay
#: copy-on-write reads (see the module docstring).
COPY_MIN_BYTES = 64 << 10


def _own_copy(value: Any) -> Any:
    """``value`` with each large CPU tensor in it (a slice dict holds several) replaced by a copy."""
    if isinstance(value, dict):
        return {k: _own_copy(v) for k, v in value.items()}
    t = tf()
    if not isinstance(value, t.Tensor) or value.dtype.base_dtype not in _COPYABLE or not value.shape.is_fully_defined():
        return value
    if value.shape.num_elements() * value.dtype.size < COPY_MIN_BYTES or "CPU" not in (value.device or "").upper():
        return value
    with t.device(value.device):
        return t.raw_ops.DeepCopy(x=value)

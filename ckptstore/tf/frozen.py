"""Frozen graphs: freezing a TF1 session or a TF2 function into one GraphDef, and loading one back.

Two kinds of export:

* ``tf1-graphdef``: a TF1 session's graph with its variables turned into constants
  (``convert_variables_to_constants``), pruned to the given outputs. Its inputs are the
  placeholders the outputs depend on.
* ``tf2-function``: a ``tf.function`` with an ``input_signature`` (or a concrete function),
  frozen with ``convert_variables_to_constants_v2``. Its inputs are the function's arguments;
  its outputs keep the keys (dict) or positions (tuple) the function returned, so
  :class:`FrozenFunction` returns the same structure.

The GraphDef is serialized deterministically, so the same graph always has the same digest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import CkptstoreError, ConflictError, CorruptFileError
from ..records import ExportInfo
from .runtime import tf as _tf

TF1_GRAPHDEF = "tf1-graphdef"
TF2_FUNCTION = "tf2-function"


@dataclass(frozen=True)
class Frozen:
    """A frozen graph ready to store: its bytes and what the database records about it."""

    data: bytes
    kind: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    node_count: int
    tf_version: str


def freeze_target(target: Any, output_names: Sequence[Any] | None = None) -> Frozen:
    """Freeze a TF1 session (``output_names`` required) or a TF2 function into a :class:`Frozen`."""
    tf = _tf()
    if isinstance(target, tf.compat.v1.Session):
        if not output_names:
            raise CkptstoreError(
                "freezing a TF1 session needs output_names, the ops to keep (e.g. ['op_to_store'])"
            )
        if isinstance(output_names, (str, bytes)) or not isinstance(output_names, Sequence):
            output_names = [output_names]
        graph_def, inputs, outputs = _freeze_tf1(tf, target, list(output_names))
        kind = TF1_GRAPHDEF
    else:
        if output_names:
            raise CkptstoreError(
                "output_names is only for TF1 sessions: a TF2 function's outputs are what it returns"
            )
        graph_def, inputs, outputs = _freeze_tf2(tf, _concrete_function(target))
        kind = TF2_FUNCTION
    return Frozen(
        data=graph_def.SerializeToString(deterministic=True), kind=kind, inputs=inputs, outputs=outputs,
        node_count=len(graph_def.node), tf_version=str(tf.__version__)[:32],
    )


def _shape(shape: Any) -> list[int | None] | None:
    """A TensorShape as JSON: None for unknown rank, None for each unknown dimension."""
    if shape.rank is None:
        return None
    return [None if d is None else int(d) for d in shape.as_list()]


def _tensor_name(item: Any) -> str:
    """'op' -> 'op:0'; tensors and operations by their names."""
    name = item if isinstance(item, str) else getattr(item, "name", None)
    if not isinstance(name, str) or not name:
        raise CkptstoreError(f"output_names must hold op or tensor names, got {item!r}")
    return name if ":" in name else name + ":0"


def _freeze_tf1(tf: Any, sess: Any, output_names: list[Any]) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    graph = sess.graph
    tensors = list(dict.fromkeys(_tensor_name(o) for o in output_names))
    outputs = []
    for i, t in enumerate(tensors):
        try:
            tensor = graph.get_tensor_by_name(t)
        except (KeyError, ValueError):
            raise CkptstoreError(f"the session's graph has no tensor {t!r} to freeze") from None
        outputs.append({
            "name": t, "tensor": t, "key": None if len(tensors) == 1 else i,
            "dtype": tensor.dtype.name, "shape": _shape(tensor.shape),
        })
    nodes = list(dict.fromkeys(t.rpartition(":")[0] for t in tensors))
    try:
        # The non-deprecated internal entry point; the public v1 alias only adds a warning.
        from tensorflow.python.framework import convert_to_constants as cc

        convert = getattr(cc, "convert_variables_to_constants_from_session_graph", None)
    except ImportError:  # pragma: no cover - other TF layouts
        convert = None
    if convert is None:  # pragma: no cover
        convert = tf.compat.v1.graph_util.convert_variables_to_constants
    try:
        with _quiet_deprecations():
            graph_def = convert(sess, graph.as_graph_def(), nodes)
    except tf.errors.OpError as exc:
        raise CkptstoreError(f"cannot freeze the session's graph: {exc.message.splitlines()[0]}") from None
    inputs = []
    for node in graph_def.node:
        if node.op == "Placeholder":
            shape_attr = node.attr["shape"].shape
            inputs.append({
                "name": node.name, "tensor": node.name + ":0",
                "dtype": tf.dtypes.as_dtype(node.attr["dtype"].type).name,
                "shape": _shape(tf.TensorShape(shape_attr)),
            })
    return graph_def, inputs, outputs


def _quiet_deprecations() -> Any:
    # TF's own converter calls the deprecated extract_sub_graph and logs a warning users can do
    # nothing about.
    import contextlib

    try:
        from tensorflow.python.util import deprecation

        return deprecation.silence()
    except (ImportError, AttributeError):  # pragma: no cover - other TF layouts
        return contextlib.nullcontext()


def _concrete_function(target: Any) -> Any:
    if hasattr(target, "get_concrete_function"):  # a tf.function
        if getattr(target, "input_signature", None) is None:
            raise CkptstoreError(
                "freeze needs a tf.function with an input_signature (or pass "
                "fn.get_concrete_function(tf.TensorSpec(...)))"
            )
        return target.get_concrete_function()
    if hasattr(target, "structured_input_signature") and hasattr(target, "graph"):
        return target  # already a concrete function
    raise CkptstoreError(
        f"cannot freeze a {type(target).__name__}: pass a tf.compat.v1.Session with output_names, "
        "a tf.function with an input_signature, or a concrete function "
        "(for a Keras model: tf.function(model, input_signature=[tf.TensorSpec(...)]))"
    )


def _freeze_tf2(tf: Any, fn: Any) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        frozen = convert_variables_to_constants_v2(fn)
    except (ValueError, TypeError, tf.errors.OpError) as exc:
        detail = getattr(exc, "message", None) or str(exc)
        raise CkptstoreError(f"cannot freeze the function: {detail.strip().splitlines()[0]}") from None
    graph_def = frozen.graph.as_graph_def()
    inputs = [
        {"name": t.op.name, "tensor": t.name, "dtype": t.dtype.name, "shape": _shape(t.shape)}
        for t in frozen.inputs
    ]
    # The frozen function forgets the output structure; the original's flat outputs are in the
    # same order as the frozen function's, which is how a key finds its frozen tensor.
    position = {t.name: i for i, t in enumerate(fn.outputs)}
    structure = fn.structured_outputs
    if tf.is_tensor(structure):
        keyed: list[tuple[Any, Any]] = [(None, structure)]
    elif isinstance(structure, dict) and all(tf.is_tensor(v) for v in structure.values()):
        keyed = [(str(k), v) for k, v in structure.items()]
    elif isinstance(structure, (list, tuple)) and all(tf.is_tensor(v) for v in structure):
        keyed = list(enumerate(structure))
    else:
        keyed = [(path, v) for path, v in tf.nest.flatten_with_joined_string_paths(structure) if tf.is_tensor(v)]
    if not keyed:
        raise CkptstoreError("the function returns no tensors; there is nothing to freeze")
    outputs = []
    for key, t in keyed:
        ft = frozen.outputs[position[t.name]]
        outputs.append({"name": ft.name, "tensor": ft.name, "key": key, "dtype": ft.dtype.name, "shape": _shape(ft.shape)})
    return graph_def, inputs, outputs


# --------------------------------------------------------------------------- loading


def parse_graph_def(data: bytes, info: ExportInfo) -> Any:
    """The GraphDef in ``data``; :class:`CorruptFileError` naming the export if it is not one."""
    graph_def = _tf().compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:  # google.protobuf.message.DecodeError, without importing protobuf
        raise CorruptFileError(f"export:{info.id} is not a readable GraphDef ({exc})") from None
    return graph_def


class FrozenFunction:
    """A frozen export as a TF2 callable over its declared inputs and outputs.

    Call it with the inputs positionally (in ``inputs`` order) or by name; it returns one
    tensor for a single output, a dict for outputs frozen from a dict, else a tuple.

    >>> f = store.load_frozen("prod")     # doctest: +SKIP
    >>> f(x=5.0, y=5.0)                   # doctest: +SKIP
    <tf.Tensor: shape=(), dtype=float32, numpy=26.0>
    """

    def __init__(self, export: ExportInfo, wrapped: Any, pruned: Any) -> None:
        self.export = export
        self.inputs = export.inputs
        self.outputs = export.outputs
        self._wrapped = wrapped  # keeps the imported graph alive alongside the pruned function
        self._pruned = pruned

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.inputs]

    def __repr__(self) -> str:
        return f"FrozenFunction(export:{self.export.id}, inputs={self.input_names})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import tensorflow as tf

        names = self.input_names
        if len(args) > len(names):
            raise TypeError(f"export:{self.export.id} takes {len(names)} inputs ({', '.join(names)}), got {len(args)}")
        values: dict[str, Any] = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"export:{self.export.id} has no input {k!r}; its inputs are {', '.join(names) or 'none'}")
            if k in values:
                raise TypeError(f"input {k!r} given twice")
            values[k] = v
        missing = [n for n in names if n not in values]
        if missing:
            raise TypeError(f"export:{self.export.id} is missing inputs {', '.join(missing)}")
        feeds = [tf.convert_to_tensor(values[i["name"]], dtype=i["dtype"]) for i in self.inputs]
        results = self._pruned(*feeds)
        if not isinstance(results, (list, tuple)):
            results = [results]
        keys = [o.get("key") for o in self.outputs]
        if len(keys) == 1 and keys[0] is None:
            return results[0]
        if all(isinstance(k, str) for k in keys):
            return dict(zip(keys, results))
        return tuple(results)


def load_graph_def(graph_def: Any, info: ExportInfo) -> FrozenFunction:
    """The GraphDef imported into a ``tf.compat.v1.wrap_function`` and pruned to the recorded
    inputs and outputs, so it runs eagerly in TF2 without a session."""
    tf = _tf()
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    try:
        pruned = wrapped.prune([i["tensor"] for i in info.inputs], [o["tensor"] for o in info.outputs])
    except (KeyError, ValueError) as exc:
        raise CorruptFileError(f"export:{info.id} does not hold its recorded inputs and outputs ({exc})") from None
    return FrozenFunction(info, wrapped, pruned)


def import_into_graph(graph_def: Any, info: ExportInfo, graph: Any = None, *, name: str = "") -> Any:
    """Import the GraphDef into ``graph`` (a new one by default) under the name prefix ``name``,
    refusing (and leaving the graph as it was) where a name is taken; returns the graph."""
    tf = _tf()
    graph = graph if graph is not None else tf.Graph()
    prefix = name.rstrip("/")
    if prefix and not re.fullmatch(r"[A-Za-z0-9.][A-Za-z0-9_./>-]*", prefix):
        raise CkptstoreError(
            f"{name!r} is not a valid name prefix: start with a letter, digit or '.', then use "
            "letters, digits and '_', '.', '-', '/' (e.g. name='frozen')"
        )
    clashes = _name_clashes(graph, graph_def, prefix)
    if clashes:
        shown = ", ".join(clashes[:5]) + (f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else "")
        free = _free_prefix(graph, prefix or "frozen")
        way_out = f"pass another name prefix than {prefix!r}" if prefix else "pass a name prefix"
        raise ConflictError(
            f"cannot import export:{info.id} into that graph: it already has ops named {shown}; "
            f"{way_out} (e.g. name={free!r}) and look its ops up as '{free}/<op>'"
        )
    try:
        with graph.as_default():
            # An absolute scope ("frozen/"): a relative one would be nested in whatever scope is
            # open and renamed to "frozen_1" when the graph has used "frozen" before.
            tf.compat.v1.import_graph_def(graph_def, name=prefix + "/" if prefix else "")
    except ValueError as exc:
        # Name clashes were ruled out above; this is TensorFlow refusing the graph itself (e.g.
        # a function of the same name but another body already in the graph's library).
        raise CkptstoreError(f"cannot import export:{info.id} into that graph: {str(exc).splitlines()[0]}") from None
    return graph


def _names_in_use(graph: Any) -> set[str]:
    """Every op name of ``graph`` and every scope above one ("a/b/c" -> a/b/c, a/b, a)."""
    names: set[str] = set()
    for op in graph.get_operations():
        parts = op.name.split("/")
        names.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return names


def _name_clashes(graph: Any, graph_def: Any, prefix: str) -> list[str]:
    """The names an import under ``prefix`` would create that ``graph`` already uses.

    TensorFlow does not refuse these: ``import_graph_def`` silently renames the new op
    (``op_to_store_1``), and a later ``get_tensor_by_name("op_to_store:0")`` finds the graph's
    old op instead of the imported one. TensorFlow renames a node whose name is taken by an op
    or by a scope above one; so does this check.
    """
    in_use = _names_in_use(graph)
    scope = prefix + "/" if prefix else ""
    return [scope + node.name for node in graph_def.node if scope + node.name in in_use]


def _free_prefix(graph: Any, base: str) -> str:
    in_use = _names_in_use(graph)
    candidate, n = base, 0
    while candidate in in_use:
        n += 1
        candidate = f"{base}_{n}"
    return candidate

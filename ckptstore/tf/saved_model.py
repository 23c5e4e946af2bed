"""SavedModel and ``.keras`` files: writing them, describing them, loading them back.

The flows store what these functions write (``flows.exports``); here is only what TensorFlow
and Keras do. A description is what the ``exports`` row records: the signatures' inputs and
outputs (name, dtype, shape; for a SavedModel also the signature they belong to), a node count
(graph nodes of a SavedModel's meta graph, layers of a Keras model) and the TF version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CkptstoreError
from .runtime import first_line, tf

SAVED_MODEL = "saved-model"
KERAS = "keras"


@dataclass(frozen=True)
class Description:
    kind: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    node_count: int
    tf_version: str


def write_saved_model(obj: Any, directory: Path, signatures: Any = None) -> Description:
    """``tf.saved_model.save(obj, directory, signatures)``, then describe what was written."""
    t = tf()
    try:
        t.saved_model.save(obj, str(directory), signatures=signatures)
    except (ValueError, TypeError, AttributeError) as exc:
        raise CkptstoreError(f"cannot export this object as a SavedModel: {first_line(str(exc))}") from None
    return describe_saved_model(directory)


def describe_saved_model(directory: Path) -> Description:
    t = tf()
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((directory / "saved_model.pb").read_bytes())
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    nodes = 0
    for mg in sm.meta_graphs:
        nodes += len(mg.graph_def.node)
        for key in sorted(mg.signature_def):
            if key.startswith("__"):  # TensorFlow's own (__saved_model_init_op), not a serving signature
                continue
            sig = mg.signature_def[key]
            inputs += [_tensor_info(key, name, info) for name, info in sorted(sig.inputs.items())]
            outputs += [_tensor_info(key, name, info) for name, info in sorted(sig.outputs.items())]
    return Description(SAVED_MODEL, inputs, outputs, nodes, t.__version__)


def _tensor_info(signature: str, name: str, info: Any) -> dict[str, Any]:
    t = tf()
    shape: list[int | None] | None = None
    if not info.tensor_shape.unknown_rank:
        shape = [None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
    return {"signature": signature, "name": name, "tensor": info.name, "dtype": t.as_dtype(info.dtype).name if info.dtype else None, "shape": shape}


def write_keras(model: Any, path: Path) -> Description:
    """``model.save(path)`` (a ``.keras`` file), then describe the model."""
    t = tf()
    if not path.name.endswith(".keras"):
        raise CkptstoreError(f"a Keras export is a .keras file, not {path.name}")
    try:
        model.save(str(path))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CkptstoreError(f"cannot export this model as a .keras file: {first_line(str(exc))}") from None

    def spec(x: Any) -> dict[str, Any]:
        dtype = getattr(x, "dtype", None)
        return {
            "name": getattr(x, "name", None),
            "dtype": getattr(dtype, "name", None if dtype is None else str(dtype)),
            "shape": [None if d is None else int(d) for d in getattr(x, "shape", ())],
        }

    ins = list(getattr(model, "inputs", None) or [])
    outs = list(getattr(model, "outputs", None) or [])
    return Description(KERAS, [spec(x) for x in ins], [spec(x) for x in outs], len(getattr(model, "layers", [])), t.__version__)


def load_saved_model(directory: Path) -> Any:
    return tf().saved_model.load(str(directory))


def load_keras(path: Path, *, custom_objects: dict[str, Any] | None = None, compile: bool = True,
               safe_mode: bool = True) -> Any:
    import keras

    return keras.saving.load_model(str(path), custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)

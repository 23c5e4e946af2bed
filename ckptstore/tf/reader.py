"""Reading saved checkpoints without building a model: variable lists, single tensors, and the
step and role that TensorFlow's file names carry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import CkptstoreError, CorruptFileError
from .runtime import first_line, tf

#: The tensor a TF2 checkpoint keeps its object graph in (not a variable).
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
#: What TF2 appends to a variable's path in the object graph to name its saved value.
TF2_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

_DATA_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
_STEP_RE = re.compile(r"-(\d+)$")


def file_role(name: str) -> str:
    """``index``, ``data`` or ``meta``: what a file of a checkpoint prefix holds."""
    if name.endswith(".index"):
        return "index"
    if name.endswith(".meta"):
        return "meta"
    if _DATA_RE.search(name):
        return "data"
    raise CkptstoreError(f"unexpected file {name!r} in a checkpoint")


def shard_count(name: str) -> int | None:
    """N of a ``.data-XXXXX-of-N`` shard name, else None."""
    m = _DATA_RE.search(name)
    return int(m.group(2)) if m else None


def step_from_prefix(name: str) -> int | None:
    """The global step in a prefix such as ``model.ckpt-1000`` or ``ckpt-7``."""
    m = _STEP_RE.search(name)
    return int(m.group(1)) if m else None


def _reader(prefix: Path) -> Any:
    """A CheckpointReader; a file TensorFlow cannot read is a CorruptFileError naming it."""
    t = tf()
    try:
        return t.train.load_checkpoint(str(prefix))
    except (t.errors.OpError, ValueError) as exc:
        msg = exc.message if isinstance(exc, t.errors.OpError) else str(exc)
        raise CorruptFileError(f"{prefix.name} is not a readable TensorFlow checkpoint: {first_line(msg)}") from None


def list_variables(prefix: Path) -> list[tuple[str, str, list[int]]]:
    """(name, dtype, shape) of every saved tensor, read from the index file only."""
    reader = _reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    out = []
    for name in sorted(shapes):
        if name == OBJECT_GRAPH_KEY:
            continue
        out.append((name, dtypes[name].name, [int(d) for d in shapes[name]]))
    return out


def is_tf2_checkpoint(prefix: Path) -> bool:
    return bool(_reader(prefix).has_tensor(OBJECT_GRAPH_KEY))


def read_tensor(prefix: Path, name: str) -> Any:
    t = tf()
    reader = _reader(prefix)
    try:
        return reader.get_tensor(name)
    except t.errors.OpError as exc:  # a damaged data shard under an intact index
        raise CorruptFileError(f"cannot read {name!r} from {prefix.name}: {first_line(exc.message)}") from None

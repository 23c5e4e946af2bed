"""TensorFlow adapters: the only module that talks to TensorFlow's checkpoint APIs.

TensorFlow is imported inside these functions, never at module import, so that metadata-only use
of ckptstore (CLI queries, listing, aliases) starts in milliseconds.

TF1 savers are cached per graph and set of variables: building a ``tf.compat.v1.train.Saver``
adds save and restore ops to the graph, so building one per save would grow the graph without
bound in a training loop; a new one is built only when the graph's variables change.
TF2 objects are wrapped in one cached ``tf.train.Checkpoint(model=obj)`` per object for the same
reason (each new Checkpoint traces its save function again).
"""

from __future__ import annotations

import logging
import re
import weakref
from pathlib import Path
from typing import Any, Optional

from .errors import CkptstoreError, CorruptFileError, RestoreMismatchError, TensorFlowMissingError

log = logging.getLogger(__name__)

TF1 = "tf1-saver"
TF2 = "tf2-checkpoint"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
TF2_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"

_savers: "weakref.WeakKeyDictionary[Any, dict[Any, Any]]" = weakref.WeakKeyDictionary()
_wrappers: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def tf() -> Any:
    try:
        import tensorflow
    except ImportError as exc:
        raise TensorFlowMissingError(
            "this operation needs TensorFlow: pip install 'ckptstore[tf-cpu]' (or '[tf]')"
        ) from exc
    return tensorflow


def format_of(target: Any) -> str:
    """``tf1-saver`` for a TF1 session, ``tf2-checkpoint`` for a Checkpoint or trackable."""
    t = tf()
    if isinstance(target, t.compat.v1.Session):
        return TF1
    try:
        from tensorflow.python.trackable.base import Trackable
    except ImportError:  # pragma: no cover - older layouts
        Trackable = t.Module  # type: ignore[assignment,misc]
    if isinstance(target, (t.train.Checkpoint, Trackable, t.Module)):
        return TF2
    raise CkptstoreError(
        f"cannot save or restore a {type(target).__name__}: pass a tf.compat.v1.Session, "
        "a tf.train.Checkpoint or a trackable object (Keras model, tf.Module)"
    )


# --------------------------------------------------------------------------- TF1


def _tf1_var_key(graph: Any, var_list: Any) -> Any:
    if var_list is None:
        # "All saveable variables" changes when the graph grows (a head added after the first
        # save): a Saver built before would silently leave the new variables out.
        t = tf()
        keys = t.compat.v1.GraphKeys
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


def save_tf1(sess: Any, directory: Path, prefix: str, step: int, *, var_list: Any, write_meta_graph: bool) -> Path:
    saver = tf1_saver(sess.graph, var_list)
    # Inside the session's graph: with eager execution on (the TF2 default) Saver would
    # otherwise take the eager code path and refuse graph variables.
    with sess.graph.as_default():
        path = saver.save(
            sess,
            str(directory / prefix),
            global_step=step,
            write_meta_graph=write_meta_graph,
            write_state=False,
        )
    return Path(path)


def restore_tf1(
    sess: Any,
    prefix: Path,
    *,
    meta_path: Optional[Path],
    saved: dict[str, tuple[str, list[int]]],
    var_list: Any = None,
) -> None:
    """Restore into ``sess``: import the meta graph first if the graph is empty."""
    t = tf()
    graph = sess.graph
    if not graph.get_operations():
        if meta_path is None:
            raise RestoreMismatchError(
                "the session's graph is empty and no meta graph was stored for this run: "
                "build the model graph first, then restore into it"
            )
        with graph.as_default():
            saver = t.compat.v1.train.import_meta_graph(str(meta_path), clear_devices=True)
        if saver is None:
            raise RestoreMismatchError("the stored meta graph has no variables to restore")
        _savers.setdefault(graph, {})[_tf1_var_key(graph, var_list)] = saver
    else:
        _check_tf1_graph_matches(graph, saved, var_list)
        saver = tf1_saver(graph, var_list)
    try:
        with graph.as_default():
            saver.restore(sess, str(prefix))
    except (t.errors.NotFoundError, t.errors.InvalidArgumentError) as exc:
        raise RestoreMismatchError(f"checkpoint does not fit the graph: {_first_line(exc.message)}") from None


def _check_tf1_graph_matches(graph: Any, saved: dict[str, tuple[str, list[int]]], var_list: Any) -> None:
    """Fail before touching any variable if the graph wants what the checkpoint lacks."""
    if var_list is None:
        with graph.as_default():
            t = tf()
            variables = t.compat.v1.global_variables() + t.compat.v1.get_collection(
                t.compat.v1.GraphKeys.SAVEABLE_OBJECTS
            )
        wanted = {v.op.name: v for v in variables if hasattr(v, "op")}
    elif isinstance(var_list, dict):
        wanted = dict(var_list)
    else:
        wanted = {v.op.name: v for v in var_list}
    if not wanted:
        raise RestoreMismatchError(
            "the session's graph has operations but no variables to restore into: build the "
            "model's variables first, or restore into an empty graph to import the stored meta graph"
        )
    missing, wrong = [], []
    for name, var in wanted.items():
        if name not in saved:
            missing.append(name)
            continue
        shape = getattr(var, "shape", None)
        if shape is not None and shape.is_fully_defined() and list(shape.as_list()) != list(saved[name][1]):
            wrong.append(f"{name} {shape.as_list()} vs saved {saved[name][1]}")
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"not in the checkpoint: {_few(missing)}")
        if wrong:
            parts.append(f"shape differs: {_few(wrong)}")
        raise RestoreMismatchError("checkpoint does not fit the graph; " + "; ".join(parts))


# --------------------------------------------------------------------------- TF2


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


def save_tf2(obj: Any, directory: Path, prefix: str, step: int) -> Path:
    ckpt = tf2_checkpoint(obj)
    # write(), not save(): no save_counter bump and no 'checkpoint' state file; the store keeps state.
    return Path(ckpt.write(str(directory / f"{prefix}-{step}")))


def restore_tf2(obj: Any, prefix: Path) -> Any:
    t = tf()
    ckpt = tf2_checkpoint(obj)
    try:
        status = ckpt.read(str(prefix))
        status.assert_existing_objects_matched()
        # Values the object does not have (a Keras model restored without its optimizer) are
        # fine once every existing object matched; without this TF logs a warning per value.
        status.expect_partial()
    except AssertionError as exc:
        raise RestoreMismatchError(f"checkpoint does not fit the object: {_first_line(str(exc))}") from None
    except (ValueError, t.errors.InvalidArgumentError, t.errors.NotFoundError) as exc:
        raise RestoreMismatchError(f"checkpoint does not fit the object: {_first_line(str(exc))}") from None
    return status


# --------------------------------------------------------------------------- reading


def _reader(prefix: Path) -> Any:
    """A CheckpointReader; a file TensorFlow cannot read is a CorruptFileError naming it."""
    t = tf()
    try:
        return t.train.load_checkpoint(str(prefix))
    except (t.errors.OpError, ValueError) as exc:
        msg = exc.message if isinstance(exc, t.errors.OpError) else str(exc)
        raise CorruptFileError(f"{prefix.name} is not a readable TensorFlow checkpoint: {_first_line(msg)}") from None


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
    return _reader(prefix).has_tensor(OBJECT_GRAPH_KEY)


def read_tensor(prefix: Path, name: str) -> Any:
    t = tf()
    reader = _reader(prefix)
    try:
        return reader.get_tensor(name)
    except t.errors.OpError as exc:  # a damaged data shard under an intact index
        raise CorruptFileError(f"cannot read {name!r} from {prefix.name}: {_first_line(exc.message)}") from None


def _first_line(text: str) -> str:
    text = (text or "").strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 300 else line[:297] + "..."


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


_STEP_RE = re.compile(r"-(\d+)$")


def step_from_prefix(name: str) -> Optional[int]:
    """The global step in a prefix such as ``model.ckpt-1000`` or ``ckpt-7``."""
    m = _STEP_RE.search(name)
    return int(m.group(1)) if m else None

"""The checkpoint-format seam: one small adapter per way TensorFlow saves variables.

A :class:`CheckpointFormat` saves a target into a directory, restores a target from a prefix,
and lists what a saved prefix holds; the flows never branch on the format. Two adapters:

* :class:`TF1Saver` (``tf1-saver``): a ``tf.compat.v1.Session`` through ``train.Saver``, with a
  ``.meta`` graph so that an empty session can be restored.
* :class:`TF2Checkpoint` (``tf2-checkpoint``): a ``tf.train.Checkpoint`` or any trackable (Keras
  model, ``tf.Module``), wrapped as ``Checkpoint(model=obj)``.

Both save through the cached TensorFlow objects of ``tf.savers``. A format also takes the
snapshot of an asynchronous save (:meth:`CheckpointFormat.snapshot`, written by ``tf.snapshot``),
so ``flows.async_save`` never branches on the format either.

Formats are found by name in :data:`FORMATS`, a registry (``ckptstore.registry``): a new format
is a subclass registered with :func:`register_format`, in ckptstore or in another package
(docs/architecture.md, "Adding a checkpoint format").
"""

from __future__ import annotations

import abc
import contextlib
import re
from pathlib import Path
from typing import Any

from ..errors import AccessDeniedError, CkptstoreError, DiskFullError, RestoreMismatchError, from_os_error
from ..registry import Registry
from . import snapshot as snapshots
from .reader import OBJECT_GRAPH_KEY, file_role, is_tf2_checkpoint
from .runtime import few, first_line, tf
from .savers import remember_tf1_saver, tf1_saver, tf2_checkpoint

#: name -> (dtype, shape) of the tensors a checkpoint holds, as the database records them.
SavedVariables = dict[str, tuple[str, list[int]]]


class CheckpointFormat(abc.ABC):
    """How one kind of target is saved and restored (see the module docstring)."""

    #: The name the database records in ``checkpoints.format``.
    name: str
    #: What to pass to restore into this format, for error messages.
    target_kinds: str
    #: Whether a restore may need the graph itself (``.meta``), which a save may leave out.
    uses_meta_graph: bool = False

    @abc.abstractmethod
    def accepts(self, target: Any) -> bool:
        """Whether ``target`` is something this format saves and restores."""

    def save(self, target: Any, directory: Path, prefix: str, step: int, **options: Any) -> Path:
        """Write ``target`` under ``directory`` as ``prefix-step``; returns the written prefix.

        A full disk or a refused write is one :class:`CkptstoreError` naming the checkpoint,
        whatever TensorFlow raised."""
        t = tf()
        try:
            return self._save(target, directory, prefix, step, **options)
        except t.errors.ResourceExhaustedError as exc:
            raise DiskFullError(f"cannot save {prefix}-{step}: no space left on the device ({first_line(exc.message)})") from None
        except t.errors.PermissionDeniedError as exc:
            raise AccessDeniedError(f"cannot save {prefix}-{step}: permission denied ({first_line(exc.message)})") from None
        except OSError as exc:
            raise from_os_error(f"cannot save {prefix}-{step}", exc) from None

    @abc.abstractmethod
    def _save(self, target: Any, directory: Path, prefix: str, step: int, **options: Any) -> Path:
        """The format's own save (see :meth:`save`)."""

    @abc.abstractmethod
    def restore(
        self,
        target: Any,
        prefix: Path,
        *,
        saved: SavedVariables,
        meta_path: Path | None = None,
        var_list: Any = None,
    ) -> Any | None:
        """Load the checkpoint at ``prefix`` into ``target``, checking that everything fits first.

        Returns None when every value has been assigned, or an object that holds the values
        still to be restored later (TF2 restores a variable created after the call when it is
        created): the files at ``prefix`` must stay readable until that object is gone."""

    def needs_meta_graph(self, target: Any) -> bool:
        """Whether restoring into ``target`` needs the stored graph (a TF1 session with an empty graph)."""
        return False

    def snapshot(self, target: Any, directory: Path, prefix: str, step: int, *, var_list: Any = None,
                 write_meta_graph: bool = True, buffers: snapshots.HostBuffers | None = None) -> snapshots.Snapshot | None:
        """The values of ``target`` taken now, in the caller's thread, for an asynchronous save:
        ``Snapshot.write(directory, prefix, step)`` later writes, in any thread, what
        :meth:`save` would have written then (the files :meth:`files` lists). Anything the
        snapshot writes beside the data (a TF1 meta graph) may be written into ``directory``
        now. ``buffers`` are host arrays the run lends from save to save (may be ignored).

        None (the default) where this format or this target has no cheap snapshot: the async
        save then saves synchronously, in the caller, with :meth:`save`."""
        return None

    def recognizes(self, prefix: Path) -> bool:
        """Whether the checkpoint at ``prefix`` (files TensorFlow wrote, for imports and for
        the drop-ins' recording) is this format's. Formats are asked newest registered first."""
        return False

    def files(self, prefix: Path) -> list[Path]:
        """The files a save wrote for ``prefix`` (index, data shards, and a graph if any)."""
        out = []
        for p in sorted(prefix.parent.glob(prefix.name + ".*")):
            if ".tempstate" in p.name or not p.is_file():
                continue
            try:
                file_role(p.name)
            except CkptstoreError:
                continue
            out.append(p)
        return out


# --------------------------------------------------------------------------- TF1

class TF1Saver(CheckpointFormat):
    name = "tf1-saver"
    target_kinds = "tf.compat.v1.Session"
    uses_meta_graph = True

    def accepts(self, target: Any) -> bool:
        return isinstance(target, tf().compat.v1.Session)

    def _save(self, target: Any, directory: Path, prefix: str, step: int, *, var_list: Any = None,
             write_meta_graph: bool = True, **_: Any) -> Path:
        saver = tf1_saver(target.graph, var_list)
        # Inside the session's graph: with eager execution on (the TF2 default) Saver would
        # otherwise take the eager code path and refuse graph variables.
        with target.graph.as_default():
            path = saver.save(
                target, str(directory / prefix), global_step=step,
                write_meta_graph=write_meta_graph, write_state=False,
            )
        return Path(path)

    def needs_meta_graph(self, target: Any) -> bool:
        return not target.graph.get_operations()

    def snapshot(self, target: Any, directory: Path, prefix: str, step: int, *, var_list: Any = None,
                 write_meta_graph: bool = True, buffers: snapshots.HostBuffers | None = None) -> snapshots.Snapshot | None:
        return snapshots.take_tf1(target, directory, prefix, step, var_list, write_meta_graph)

    def recognizes(self, prefix: Path) -> bool:
        # The fallback: any tensor bundle without a TF2 object graph is a Saver's (TF2 is asked first).
        return not is_tf2_checkpoint(prefix)

    def restore(self, target: Any, prefix: Path, *, saved: SavedVariables, meta_path: Path | None = None,
                var_list: Any = None) -> None:
        """Restore into the session: import the meta graph first if the graph is empty."""
        t = tf()
        graph = target.graph
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
            remember_tf1_saver(graph, var_list, saver)
        else:
            _check_graph_matches(graph, saved, var_list)
            saver = tf1_saver(graph, var_list)
        try:
            with graph.as_default():
                saver.restore(target, str(prefix))
        except (t.errors.NotFoundError, t.errors.InvalidArgumentError) as exc:
            raise RestoreMismatchError(f"checkpoint does not fit the graph: {first_line(exc.message)}") from None


def _check_graph_matches(graph: Any, saved: SavedVariables, var_list: Any) -> None:
    """Fail before touching any variable if the graph wants what the checkpoint lacks."""
    t = tf()
    if var_list is None:
        with graph.as_default():
            variables = t.compat.v1.global_variables() + t.compat.v1.get_collection(t.compat.v1.GraphKeys.SAVEABLE_OBJECTS)
        wanted = {_saved_name(v): v for v in variables if hasattr(v, "op")}
    elif isinstance(var_list, dict):
        wanted = dict(var_list)
    else:
        wanted = {_saved_name(v): v for v in var_list}
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
        info = getattr(var, "_save_slice_info", None)
        if info is not None:  # one part of a partitioned variable: the Saver reads its slice of the whole
            if list(info.full_shape) != list(saved[name][1]):
                wrong.append(f"{name} {list(info.full_shape)} vs saved {saved[name][1]}")
            continue
        shape = getattr(var, "shape", None)
        if shape is not None and shape.is_fully_defined() and list(shape.as_list()) != list(saved[name][1]):
            wrong.append(f"{name} {shape.as_list()} vs saved {saved[name][1]}")
    _raise_mismatch("graph", missing, wrong)


def _saved_name(var: Any) -> str:
    """The name the Saver stores ``var`` under: a partitioned variable's parts (``w/part_0``,
    ...) are saved as slices of one tensor named after the whole (``w``), with its full shape,
    so a checkpoint restores into any partitioning, or none."""
    info = getattr(var, "_save_slice_info", None)
    return str(info.full_name if info is not None else var.op.name)


def _raise_mismatch(what: str, missing: list[str], wrong: list[str]) -> None:
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"not in the checkpoint: {few(missing)}")
        if wrong:
            parts.append(f"shape or dtype differs: {few(wrong)}")
        raise RestoreMismatchError(f"checkpoint does not fit the {what}; " + "; ".join(parts))


# --------------------------------------------------------------------------- TF2

class TF2Checkpoint(CheckpointFormat):
    name = "tf2-checkpoint"
    target_kinds = "tf.train.Checkpoint or trackable"

    def accepts(self, target: Any) -> bool:
        t = tf()
        try:
            from tensorflow.python.trackable.base import Trackable
        except ImportError:  # pragma: no cover - older layouts
            Trackable = t.Module
        return isinstance(target, (t.train.Checkpoint, Trackable, t.Module))

    def snapshot(self, target: Any, directory: Path, prefix: str, step: int, *, var_list: Any = None,
                 write_meta_graph: bool = True, buffers: snapshots.HostBuffers | None = None) -> snapshots.Snapshot | None:
        return snapshots.take_tf2(target, buffers if buffers is not None else snapshots.HostBuffers())

    def recognizes(self, prefix: Path) -> bool:
        return is_tf2_checkpoint(prefix)

    def _save(self, target: Any, directory: Path, prefix: str, step: int, **_: Any) -> Path:
        ckpt = tf2_checkpoint(target)
        # write(), not save(): no save_counter bump and no 'checkpoint' state file; the store keeps state.
        return Path(ckpt.write(str(directory / f"{prefix}-{step}")))

    def restore(self, target: Any, prefix: Path, *, saved: SavedVariables, meta_path: Path | None = None,
                var_list: Any = None) -> Any | None:
        t = tf()
        ckpt = tf2_checkpoint(target)
        # TensorFlow assigns each value as it reads it: a mismatch found while reading would
        # leave the object half restored. Everything is compared first, as for TF1.
        _check_object_matches(ckpt, prefix, saved)
        # A compiled Keras model's optimizer makes its slots on the first training step; built
        # now (only once the model fits), they are checked and restored here, not on that step.
        if _build_keras_optimizers(ckpt, saved):
            _check_object_matches(ckpt, prefix, saved)
        try:
            status = ckpt.read(str(prefix))
            status.assert_existing_objects_matched()
            # Values the object does not have (a Keras model restored without its optimizer)
            # are fine once every existing object matched; without this TF logs a warning per value.
            status.expect_partial()
        except AssertionError as exc:
            raise RestoreMismatchError(f"checkpoint does not fit the object: {first_line(str(exc))}") from None
        except (ValueError, t.errors.InvalidArgumentError, t.errors.NotFoundError) as exc:
            raise RestoreMismatchError(f"checkpoint does not fit the object: {first_line(str(exc))}") from None
        # Values whose variables do not exist yet are restored when TF creates them, from the
        # files at `prefix`. The restore coordinator lives exactly as long as such a value is
        # pending (the objects waiting for it hold it); without it, the target bounds the need.
        return getattr(status, "_checkpoint", None) or target


def _build_keras_optimizers(root: Any, saved: SavedVariables) -> bool:
    """Build the optimizer of each compiled, built Keras model directly under ``root`` whose
    checkpoint holds optimizer values, as its first training step would; True if any was."""
    if not any("/optimizer/" in key or key.startswith("optimizer/") for key in saved):
        return False
    t = tf()
    built = False
    for obj in [root, *t.train.TrackableView.children(root).values()]:
        optimizer = getattr(obj, "optimizer", None)
        if optimizer is None or getattr(optimizer, "built", True) or not getattr(obj, "built", False):
            continue
        variables = getattr(obj, "trainable_variables", None)
        build = getattr(optimizer, "build", None)
        if variables and callable(build):
            # Under the strategy the model was compiled in (Keras keeps it on the optimizer):
            # slots made outside its scope would not be mirrored, and a MirroredStrategy
            # refuses to make them at all ("Need to be inside with strategy.scope()").
            strategy = getattr(optimizer, "_distribution_strategy", None)
            with strategy.scope() if strategy is not None else contextlib.nullcontext():
                build(variables)
            built = True
    return built


def _check_object_matches(root: Any, prefix: Path, saved: SavedVariables) -> None:
    """Walk the object's trackable graph beside the checkpoint's object graph and fail before
    anything is assigned if a variable the object has is missing or differs in shape or dtype."""
    t = tf()
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(t.train.load_checkpoint(str(prefix)).get_tensor(OBJECT_GRAPH_KEY))
    except Exception as exc:  # an unreadable index is the reader's error to report, below
        raise RestoreMismatchError(f"cannot read the checkpoint's object graph: {first_line(str(exc))}") from None
    missing: dict[int, str] = {}  # id(variable) -> path, unless matched by another path
    matched: set[int] = set()
    wrong: list[str] = []
    seen: set[int] = set()
    todo: list[tuple[Any, int, str]] = [(root, 0, "")]
    while todo:
        obj, node_id, path = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        node = graph.nodes[node_id]
        if _is_variable(obj):
            key = next((a.checkpoint_key for a in node.attributes if a.name == "VARIABLE_VALUE"), None)
            if key is None or key not in saved:
                missing.setdefault(id(obj), path)
                continue
            matched.add(id(obj))
            dtype, shape = saved[key]
            rank = obj.shape.rank if hasattr(obj.shape, "rank") else len(obj.shape)  # Keras: a tuple
            have_shape = [None] if rank is None else [None if d is None else int(d) for d in obj.shape]
            have_dtype = getattr(obj.dtype, "name", str(obj.dtype))
            if None not in have_shape and have_shape != list(shape):
                wrong.append(f"{path} {have_shape} vs saved {list(shape)}")
            elif have_dtype != dtype:
                wrong.append(f"{path} {have_dtype} vs saved {dtype}")
            continue
        children = {c.local_name: c.node_id for c in node.children}
        for name, child in t.train.TrackableView.children(obj).items():
            child_path = f"{path}/{name}" if path else name
            if name in children:
                todo.append((child, children[name], child_path))
            elif _is_variable(child):
                missing.setdefault(id(child), child_path)
    # A variable reachable by two paths (an alias attribute) is fine once one of them matched.
    _raise_mismatch("object", sorted(p for i, p in missing.items() if i not in matched), sorted(wrong))


def _is_variable(obj: Any) -> bool:
    # tf.Variable, and Keras 3 variables, which wrap one without subclassing it.
    return hasattr(obj, "assign") and hasattr(obj, "shape") and hasattr(obj, "dtype")


# --------------------------------------------------------------------------- choosing a format

#: What a format's name may be: it is stored in ``checkpoints.format`` (32 characters).
_NAME = re.compile(r"[a-z0-9][a-z0-9.+_-]{0,31}")


def _unknown(name: str) -> Exception:
    return CkptstoreError(
        f"unknown checkpoint format {name!r}: written by a newer ckptstore, or by a format "
        "whose package is not installed here?"
    )


def _check(impl: Any) -> CheckpointFormat:
    if isinstance(impl, type) and issubclass(impl, CheckpointFormat):
        impl = impl()  # an entry point may name the class
    if not isinstance(impl, CheckpointFormat):
        raise TypeError(f"a checkpoint format must be a CheckpointFormat, got {impl!r}")
    if not isinstance(getattr(impl, "name", None), str) or not _NAME.fullmatch(impl.name):
        raise ValueError(f"checkpoint format name {getattr(impl, 'name', None)!r}: 1-32 of a-z 0-9 . + _ -, starting with a letter or digit")
    return impl


#: Every format, by the name the database records (``ckptstore.registry``; entry-point group
#: ``ckptstore.formats``).
FORMATS: Registry[CheckpointFormat] = Registry("checkpoint format", "ckptstore.formats", {}, unknown=_unknown, check=_check)


def register_format(fmt: CheckpointFormat | type[CheckpointFormat], *, clobber: bool = False) -> None:
    """Save and restore the targets ``fmt.accepts`` with ``fmt`` (an instance, or a class
    made with no arguments), recorded as ``fmt.name``. Asked before the formats registered
    earlier, so a format for a narrower kind of target (one Keras model class) wins over the
    built-in ones."""
    impl = _check(fmt)
    FORMATS.register(impl.name, impl, clobber=clobber)


register_format(TF1Saver())
register_format(TF2Checkpoint())


def for_target(target: Any) -> CheckpointFormat:
    """The format that saves and restores ``target`` (the newest registered that accepts it)."""
    for fmt in reversed(FORMATS.all()):
        if fmt.accepts(target):
            return fmt
    raise CkptstoreError(
        f"cannot save or restore a {type(target).__name__}: pass a tf.compat.v1.Session, "
        "a tf.train.Checkpoint or a trackable object (Keras model, tf.Module)"
    )


def named(name: str) -> CheckpointFormat:
    """The format a checkpoint was recorded with."""
    fmt = FORMATS.get(name)
    if fmt.name != name:  # an entry point registered under another name than the format's
        raise CkptstoreError(f"checkpoint format {name!r} is registered as a format named {fmt.name!r}")
    return fmt


def of_prefix(prefix: Path) -> CheckpointFormat:
    """The format that wrote the checkpoint at ``prefix`` (for imports)."""
    for fmt in reversed(FORMATS.all()):
        if fmt.recognizes(prefix):
            return fmt
    raise CkptstoreError(f"{prefix.name}: no checkpoint format recognises this checkpoint")


__all__ = [
    "CheckpointFormat", "FORMATS", "OBJECT_GRAPH_KEY", "SavedVariables", "TF1Saver", "TF2Checkpoint",
    "for_target", "named", "of_prefix", "register_format", "tf1_saver", "tf2_checkpoint",
]

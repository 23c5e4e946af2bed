"""Frozen exports: one self-contained GraphDef (``.pb``) per export, for deployment.

**How a freeze becomes visible.** The frozen GraphDef is serialized (deterministically, so the
same graph always has the same digest) into a locked staging directory of the file area,
digested there, moved into the content-addressed object area, and recorded by one database
transaction together with its ``blobs`` row (``blobs.commit_files``). That transaction is the
commit point: a crash before it leaves at most a staging directory or an unreferenced object,
both of which ``gc`` removes; after it the export is complete.

Two kinds of export:

* ``tf1-graphdef``: a TF1 session's graph with its variables turned into constants
  (``convert_variables_to_constants``), pruned to the given outputs. Its inputs are the
  placeholders the outputs depend on.
* ``tf2-function``: a ``tf.function`` with an ``input_signature`` (or a concrete function),
  frozen with ``convert_variables_to_constants_v2``. Its inputs are the function's arguments;
  its outputs keep the keys (dict) or positions (tuple) the function returned, so
  :func:`load_frozen` returns the same structure.

Every export records its inputs and outputs (name, tensor, dtype, shape), node count, size,
digest, TensorFlow version and lineage: the step it was frozen at and the run's checkpoint at
that step, when there is one. TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from sqlalchemy import Connection, select

from . import schema as S
from .blobs import check_files, commit_files, digest_staged
from .errors import CkptstoreError, ConflictError, CorruptFileError, UnknownRefError
from .files import StoredFile
from .names import Ref, parse_ref
from .records import CheckpointInfo, ExportInfo, FileInfo, to_json

if TYPE_CHECKING:
    from .run import Run
    from .store import Store

log = logging.getLogger(__name__)

TF1_GRAPHDEF = "tf1-graphdef"
TF2_FUNCTION = "tf2-function"

__all__ = ["freeze", "list_exports", "load_frozen", "import_frozen", "export_frozen", "FrozenFunction"]


# --------------------------------------------------------------------------- freeze


def freeze(
    run: "Run",
    target: Any,
    output_names: Optional[Sequence[Any]] = None,
    *,
    step: Optional[int] = None,
) -> ExportInfo:
    """Freeze ``target`` into a GraphDef stored with ``run``; see :meth:`ckptstore.run.Run.freeze`.

    ``target`` is a ``tf.compat.v1.Session`` (then ``output_names`` lists the ops or tensors to
    keep, e.g. ``["op_to_store"]``), or a ``tf.function`` with an ``input_signature``, or a
    concrete function. ``step`` records which training step the export comes from; if the run
    has a checkpoint at that step, the export is linked to it.

    >>> run.freeze(sess, ["op_to_store"], step=1000)      # doctest: +SKIP
    >>> run.freeze(model.serve, step=1000)                # doctest: +SKIP
    """
    from .run import _check_step
    from .tfio import tf as _tf

    tf = _tf()
    if step is not None:
        step = _check_step(step)
    if isinstance(target, tf.compat.v1.Session):
        if not output_names:
            raise CkptstoreError(
                "freezing a TF1 session needs output_names, the ops to keep (e.g. ['op_to_store'])"
            )
        if isinstance(output_names, (str, bytes)) or not isinstance(output_names, Sequence):
            output_names = [output_names]  # type: ignore[list-item]
        graph_def, inputs, outputs = _freeze_tf1(tf, target, list(output_names))
        kind = TF1_GRAPHDEF
    else:
        if output_names:
            raise CkptstoreError(
                "output_names is only for TF1 sessions: a TF2 function's outputs are what it returns"
            )
        graph_def, inputs, outputs = _freeze_tf2(tf, _concrete_function(target))
        kind = TF2_FUNCTION
    data = graph_def.SerializeToString(deterministic=True)
    node_count = len(graph_def.node)
    tf_version = str(tf.__version__)[:32]
    store = run.store
    with store.files.staging(f"freeze-{run.id}") as sdir:
        pb = sdir / "frozen.pb"
        pb.write_bytes(data)
        staged = digest_staged([pb])
        _, digest, size = staged[0]

        def rows(conn: Connection, stored: list[StoredFile]) -> int:
            ck_id = None
            if step is not None:
                ck_id = conn.execute(
                    select(S.Checkpoint.id).where(S.Checkpoint.run_id == run.id, S.Checkpoint.step == step)
                ).scalar()
            return conn.execute(
                S.Export.__table__.insert()
                .values(
                    run_id=run.id, checkpoint_id=ck_id, step=step, kind=kind, inputs=inputs,
                    outputs=outputs, node_count=node_count, size=size, digest=digest,
                    tf_version=tf_version, created_at=S.utcnow(),
                )
                .returning(S.Export.__table__.c.id)
            ).scalar_one()

        export_id = commit_files(store, staged, rows)
    log.info("froze export:%d of run %s (%s, %d nodes, %d bytes)", export_id, run.name, kind, node_count, size)
    with store.read() as conn:
        return store._export_info(conn, export_id, None)


def _shape(shape: Any) -> Optional[list[Optional[int]]]:
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


# --------------------------------------------------------------------------- listing and resolving


def list_exports(store: "Store", run: Optional[str] = None) -> list[ExportInfo]:
    """Exports, oldest first, of one run or of the whole store, with their aliases."""
    from .store import _aware

    e = S.Export
    with store.read() as conn:
        q = select(*e.__table__.c, S.Run.name.label("run_name")).join(S.Run, S.Run.id == e.run_id).order_by(e.id)
        aq = select(S.Alias.export_id, S.Alias.name).where(S.Alias.export_id.is_not(None)).order_by(S.Alias.name)
        if run is not None:
            rid = store._run_id(conn, run)
            q = q.where(e.run_id == rid)
            aq = aq.join(e, e.id == S.Alias.export_id).where(e.run_id == rid)
        rows = conn.execute(q).all()
        aliases: dict[int, list[str]] = {}
        for eid, name in conn.execute(aq):
            aliases.setdefault(eid, []).append(name)
    return [
        ExportInfo(
            id=r.id, run=r.run_name, step=r.step, checkpoint_id=r.checkpoint_id, kind=r.kind,
            inputs=r.inputs, outputs=r.outputs, node_count=r.node_count, size=r.size, digest=r.digest,
            tf_version=r.tf_version, created_at=_aware(r.created_at), aliases=aliases.get(r.id, []),
        )
        for r in rows
    ]


def export_of(store: "Store", ref: Union[str, Ref]) -> ExportInfo:
    """The export a reference names.

    ``export:ID`` and aliases resolve as everywhere. For a run, ``run@STEP`` is the (newest)
    export frozen at that step, ``run@latest`` the run's newest export and ``run@~N`` its export
    at the highest step at or below N. A reference to a checkpoint is an error.
    """
    parsed = ref if isinstance(ref, Ref) else parse_ref(ref)
    if parsed.kind in ("export", "alias"):
        target = store.resolve(parsed)
        if isinstance(target, CheckpointInfo):
            raise UnknownRefError(
                f"{parsed.text!r} names the checkpoint {target.ref}, not an export; "
                "freeze it first (run.freeze) to load it as a frozen graph"
            )
        return target
    e = S.Export
    with store.read() as conn:
        rid = store._run_id(conn, parsed.run)  # type: ignore[arg-type]
        q = select(e.id).where(e.run_id == rid)
        if parsed.kind == "step":
            q = q.where(e.step == parsed.step).order_by(e.id.desc())
        elif parsed.kind == "nearest":
            q = q.where(e.step <= parsed.step).order_by(e.step.desc(), e.id.desc())
        else:
            q = q.order_by(e.id.desc())
        export_id = conn.execute(q.limit(1)).scalar()
        if export_id is None:
            steps = sorted({s for s in conn.execute(select(e.step).where(e.run_id == rid)).scalars() if s is not None})
            where = {"step": f" at step {parsed.step}", "nearest": f" at or below step {parsed.step}"}.get(parsed.kind, "")
            hint = f" (its exports are at steps {', '.join(map(str, steps))})" if steps else ""
            raise UnknownRefError(
                f"run {parsed.run!r} has no export{where}{hint}; checkpoints load with restore, "
                "frozen graphs come from run.freeze"
            )
        return store._export_info(conn, export_id, parsed)


def _file_info(info: ExportInfo) -> FileInfo:
    return FileInfo(role="graph", file_name=f"export-{info.id}.pb", size=info.size, digest=info.digest)


def _graph_def(store: "Store", info: ExportInfo, verify: Union[bool, str]) -> Any:
    from .tfio import tf as _tf

    tf = _tf()
    check_files(store, [_file_info(info)], verify)
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(store.files.path_of(info.digest).read_bytes())
    except Exception as exc:  # google.protobuf.message.DecodeError, without importing protobuf
        raise CorruptFileError(f"export:{info.id} is not a readable GraphDef ({exc})") from None
    return graph_def


# --------------------------------------------------------------------------- loading


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


def load_frozen(store: "Store", ref: Union[str, Ref], *, verify: Union[bool, str] = True) -> FrozenFunction:
    """A callable over an export's declared inputs and outputs (see :class:`FrozenFunction`).

    The stored ``.pb`` is checked against its digest first. The GraphDef is imported into a
    ``tf.compat.v1.wrap_function`` and pruned to the recorded inputs and outputs, so it runs
    eagerly in TF2 without a session.
    """
    from .tfio import tf as _tf

    tf = _tf()
    info = export_of(store, ref)
    graph_def = _graph_def(store, info, verify)
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    try:
        pruned = wrapped.prune([i["tensor"] for i in info.inputs], [o["tensor"] for o in info.outputs])
    except (KeyError, ValueError) as exc:
        raise CorruptFileError(f"export:{info.id} does not hold its recorded inputs and outputs ({exc})") from None
    return FrozenFunction(info, wrapped, pruned)


def import_frozen(
    store: "Store",
    ref: Union[str, Ref],
    graph: Any = None,
    *,
    name: str = "",
    verify: Union[bool, str] = True,
) -> Any:
    """Import an export's GraphDef into a TF1 graph (a new ``tf.Graph`` by default); returns it.

    ``name`` prefixes the imported ops: with ``name="frozen"`` the frozen ``op_to_store`` is
    ``frozen/op_to_store`` whatever name scope is open on the graph. With the default ``""`` they
    keep their frozen names, so ``sess.run("op_to_store:0", {"x:0": 5.0, ...})`` works. An import
    that would reuse a name the graph already has raises :class:`ConflictError` and leaves the
    graph as it was; pass a (different) name prefix then.

    >>> graph = store.import_frozen("prod", graph, name="frozen")    # doctest: +SKIP
    """
    from .tfio import tf as _tf

    tf = _tf()
    info = export_of(store, ref)
    graph_def = _graph_def(store, info, verify)
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


def export_frozen(
    store: "Store", ref: Union[str, Ref], path: Union[str, os.PathLike[str]], *, verify: Union[bool, str] = True
) -> Path:
    """Write an export's ``.pb`` to ``path`` plus a JSON sidecar ``path + ".json"``; returns the path.

    A directory as ``path`` (an existing one, or one named with a trailing ``/``, created then)
    receives ``export-ID.pb``. The sidecar holds the inputs,
    outputs, digest, size, TensorFlow version and lineage (run, step, checkpoint), so a
    deployment can check what it serves without the store. Both files are written to a
    temporary name and renamed, so a reader never sees half a file.
    """
    info = export_of(store, ref)
    check_files(store, [_file_info(info)], verify)
    dst = Path(path)
    # Path() drops a trailing slash: 'newdir/' would otherwise become a file named 'newdir'.
    if dst.is_dir() or os.fspath(path).endswith(("/", os.sep)):
        dst = dst / f"export-{info.id}.pb"
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CkptstoreError(f"cannot create {dst.parent}: {exc.strerror}") from None
    sidecar = dst.with_name(dst.name + ".json")
    lineage = {
        "run": info.run,
        "step": info.step,
        "checkpoint": f"{info.run}@{info.step}" if info.checkpoint_id is not None else None,
    }
    meta = {
        "export": info.ref, "kind": info.kind, "inputs": info.inputs, "outputs": info.outputs,
        "digest": info.digest, "digest_algorithm": "blake3", "size": info.size,
        "node_count": info.node_count, "tf_version": info.tf_version,
        "created_at": to_json(info.created_at), "lineage": lineage, "aliases": info.aliases,
    }
    tmp_pb = dst.with_name(f".{dst.name}.ckptstore-tmp")
    tmp_json = dst.with_name(f".{sidecar.name}.ckptstore-tmp")
    try:
        # A copy, not a link: the deployed file must not share an inode with the stored object.
        shutil.copyfile(store.files.path_of(info.digest), tmp_pb)
        tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp_pb, dst)
        os.replace(tmp_json, sidecar)
    except OSError as exc:
        for t in (tmp_pb, tmp_json):
            t.unlink(missing_ok=True)
        raise CkptstoreError(f"cannot write {dst}: {exc.strerror}") from None
    log.info("exported %s to %s", info.ref, dst)
    return dst

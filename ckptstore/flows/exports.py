"""Exports for deployment: frozen GraphDefs (``.pb``), SavedModels (a directory) and ``.keras`` files.

**How a freeze becomes visible.** The frozen GraphDef (``tf.frozen``) is written into a locked
staging directory of the object area, digested there, put into the object area, and recorded
by one database transaction together with its ``blobs`` row (``files.commit.commit_files``).
That transaction is the commit point: a crash before it leaves at most a staging directory or
an unreferenced object, both of which ``gc`` removes; after it the export is complete.

A ``.keras`` export is one object like a ``.pb``. A SavedModel is a directory, stored as a file
set: every file is its own content-addressed object (a row of ``export_files``: path, size,
digest; files equal to earlier exports' are stored once) and the export's ``digest`` is that of
a manifest listing them all (``FILE_SET_FORMAT``), so the directory as a whole is
content-addressed. The files and the manifest are committed in the same one transaction.

Every export records its inputs and outputs (name, tensor, dtype, shape), node count, size,
digest, TensorFlow version and lineage: the step it was frozen at and the run's checkpoint at
that step, when there is one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ..errors import CkptstoreError, ConflictError, UnknownRefError, from_os_error
from ..files.area import StoredFile
from ..files.commit import check_files, commit_files, digest_staged
from ..files.local import STAGING_SUFFIX
from ..metadata import queries as Q
from ..metadata import writes as W
from ..names import check_step
from ..records import CheckpointInfo, ExportInfo, FileInfo, to_json
from ..tf import saved_model as sm
from ..tf.frozen import FrozenFunction, freeze_target, import_into_graph, load_graph_def, parse_graph_def
from .backend import Backend
from .checkpoints import raise_if_run_gone
from .resolve import as_ref, resolve

log = logging.getLogger(__name__)

__all__ = [
    "freeze", "list_exports", "export_of", "load_frozen", "import_frozen", "export_frozen", "FrozenFunction",
]

#: The manifest of a file set: ``{"format": FILE_SET_FORMAT, "files": [[path, size, digest], ...]}``.
FILE_SET_FORMAT = "ckptstore-file-set-1"
#: Written into an exported SavedModel directory beside its files (TensorFlow ignores it).
DIR_SIDECAR = "ckptstore-export.json"
_FILE_KINDS = {sm.KERAS: ".keras"}


def freeze(
    backend: Backend,
    run_id: int,
    run_name: str,
    target: Any,
    output_names: Sequence[Any] | None = None,
    *,
    step: int | None = None,
) -> ExportInfo:
    """Freeze ``target`` into a GraphDef stored with the run; see :meth:`ckptstore.run.Run.freeze`."""
    if step is not None:
        step = check_step(step)
    frozen = freeze_target(target, output_names)
    with backend.files.staging(f"freeze-{run_id}") as sdir:
        pb = sdir / "frozen.pb"
        pb.write_bytes(frozen.data)
        staged = digest_staged([pb])
        _, digest, size = staged[0]

        def rows(conn: Connection, stored: list[StoredFile]) -> int:
            ck_id = Q.checkpoint_id_at(conn, run_id, step) if step is not None else None
            return W.insert_export(
                conn, run_id=run_id, checkpoint_id=ck_id, step=step, kind=frozen.kind, inputs=frozen.inputs,
                outputs=frozen.outputs, node_count=frozen.node_count, size=size, digest=digest,
                tf_version=frozen.tf_version,
            )

        try:
            export_id = commit_files(backend.db, backend.files, staged, rows)
        except IntegrityError:
            raise_if_run_gone(backend, run_id, run_name, [digest])
            raise
    log.info("froze export:%d of run %s (%s, %d nodes, %d bytes)", export_id, run_name, frozen.kind, frozen.node_count, size)
    with backend.db.read() as conn:
        return Q.export_by_id(conn, export_id)


def list_exports(backend: Backend, run: str | None = None) -> list[ExportInfo]:
    """Exports, oldest first, of one run or of the whole store, with their aliases."""
    with backend.db.read() as conn:
        rid = Q.run_id(conn, run) if run is not None else None
        return Q.exports(conn, rid)


def export_of(backend: Backend, ref: Any) -> ExportInfo:
    """The export a reference names.

    ``export:ID`` and aliases resolve as everywhere. For a run, ``run@STEP`` is the (newest)
    export frozen at that step, ``run@latest`` the run's newest export and ``run@~N`` its export
    at the highest step at or below N. A reference to a checkpoint is an error.
    """
    parsed = as_ref(ref)
    if parsed.kind in ("export", "alias"):
        target = resolve(backend, parsed)
        if isinstance(target, CheckpointInfo):
            raise UnknownRefError(
                f"{parsed.text!r} names the checkpoint {target.ref}, not an export; "
                "freeze it first (run.freeze) to load it as a frozen graph"
            )
        return target
    with backend.db.read() as conn:
        rid = Q.run_id(conn, parsed.run)  # type: ignore[arg-type]
        export_id = Q.export_id_at(conn, rid, parsed.kind, parsed.step)
        if export_id is None:
            steps = Q.export_steps(conn, rid)
            where = {"step": f" at step {parsed.step}", "nearest": f" at or below step {parsed.step}"}.get(parsed.kind, "")
            hint = f" (its exports are at steps {', '.join(map(str, steps))})" if steps else ""
            raise UnknownRefError(
                f"run {parsed.run!r} has no export{where}{hint} in {backend.db.describe_store()}; checkpoints load with restore, "
                "frozen graphs come from run.freeze"
            )
        return Q.export_by_id(conn, export_id, parsed)


def _file_info(info: ExportInfo) -> FileInfo:
    return FileInfo(role="graph", file_name=f"export-{info.id}{_FILE_KINDS.get(info.kind, '.pb')}", size=info.size, digest=info.digest)


def _not_a_graph(info: ExportInfo) -> None:
    if info.kind == sm.SAVED_MODEL:
        raise CkptstoreError(f"{info.ref} is a SavedModel, not a frozen graph: load it with load_saved_model, write it out with export")
    if info.kind == sm.KERAS:
        raise CkptstoreError(f"{info.ref} is a .keras model, not a frozen graph: load it with load_keras, write it out with export")


def _graph_def(backend: Backend, info: ExportInfo, verify: bool | str) -> Any:
    _not_a_graph(info)
    check_files(backend.db, backend.files, [_file_info(info)], verify)
    return parse_graph_def(backend.files.read_bytes(info.digest), info)


def load_frozen(backend: Backend, ref: Any, *, verify: bool | str = True) -> FrozenFunction:
    """A callable over an export's declared inputs and outputs (see :class:`FrozenFunction`).

    The stored ``.pb`` is checked against its digest first. The GraphDef is imported into a
    ``tf.compat.v1.wrap_function`` and pruned to the recorded inputs and outputs, so it runs
    eagerly in TF2 without a session.
    """
    info = export_of(backend, ref)
    return load_graph_def(_graph_def(backend, info, verify), info)


def import_frozen(backend: Backend, ref: Any, graph: Any = None, *, name: str = "", verify: bool | str = True) -> Any:
    """Import an export's GraphDef into a TF1 graph (a new ``tf.Graph`` by default); returns it.

    ``name`` prefixes the imported ops: with ``name="frozen"`` the frozen ``op_to_store`` is
    ``frozen/op_to_store`` whatever name scope is open on the graph. With the default ``""`` they
    keep their frozen names, so ``sess.run("op_to_store:0", {"x:0": 5.0, ...})`` works. An import
    that would reuse a name the graph already has raises :class:`ConflictError` and leaves the
    graph as it was; pass a (different) name prefix then.

    >>> graph = store.import_frozen("prod", graph, name="frozen")    # doctest: +SKIP
    """
    info = export_of(backend, ref)
    return import_into_graph(_graph_def(backend, info, verify), info, graph, name=name)


def export_frozen(
    backend: Backend, ref: Any, path: str | os.PathLike[str], *, verify: bool | str = True, force: bool = False
) -> Path:
    """Write an export's ``.pb`` to ``path`` plus a JSON sidecar ``path + ".json"``; returns the path.

    A directory as ``path`` (an existing one, or one named with a trailing ``/``, created then)
    receives ``export-ID.pb``. The sidecar holds the inputs, outputs, digest, size, TensorFlow
    version and lineage (run, step, checkpoint), so a deployment can check what it serves
    without the store. Both files are written to fresh temporary names (created exclusively)
    and renamed, so a reader never sees half a file; an existing file at either name is a
    :class:`ConflictError` unless ``force``, and a symlink there is replaced, never followed.
    """
    info = export_of(backend, ref)
    if info.kind == sm.SAVED_MODEL:
        raise CkptstoreError(f"{info.ref} is a SavedModel, a directory: write it out with export_to")
    check_files(backend.db, backend.files, [_file_info(info)], verify)
    dst = Path(path)
    # Path() drops a trailing slash: 'newdir/' would otherwise become a file named 'newdir'.
    if dst.is_dir() or os.fspath(path).endswith(("/", os.sep)):
        dst = dst / _file_info(info).file_name
    sidecar = dst.with_name(dst.name + ".json")
    if not force:
        for p in (dst, sidecar):
            if p.exists() or p.is_symlink():
                raise ConflictError(f"{p} already exists; choose another name or pass force")
    for p in (dst, sidecar):
        if p.is_dir() and not p.is_symlink():
            raise ConflictError(f"{p} is a directory")
    meta = sidecar_of(info)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise from_os_error(f"cannot create {dst.parent}", exc) from None
    temps: list[Path] = []
    try:
        tmp_pb = _fresh(dst, temps)
        # A copy, not a link: the deployed file must not share an inode with the stored object.
        backend.files.copy_to(info.digest, tmp_pb)
        tmp_json = _fresh(sidecar, temps)
        with open(tmp_json, "x", encoding="utf-8") as fh:  # exclusive: never through a planted link
            fh.write(json.dumps(meta, indent=2) + "\n")
        _place(tmp_pb, dst, force)
        try:
            _place(tmp_json, sidecar, force)
        except ConflictError:
            dst.unlink(missing_ok=True)  # a sidecar appeared meanwhile: place neither file
            raise
    except OSError as exc:
        raise from_os_error(f"cannot write {dst}", exc) from None
    finally:
        for t in temps:
            t.unlink(missing_ok=True)
    log.info("exported %s to %s", info.ref, dst)
    return dst


def sidecar_of(info: ExportInfo) -> dict[str, Any]:
    lineage = {
        "run": info.run,
        "step": info.step,
        "checkpoint": f"{info.run}@{info.step}" if info.checkpoint_id is not None else None,
    }
    return {
        "export": info.ref, "kind": info.kind, "inputs": info.inputs, "outputs": info.outputs,
        "digest": info.digest, "digest_algorithm": "blake3", "size": info.size,
        "node_count": info.node_count, "tf_version": info.tf_version,
        "created_at": to_json(info.created_at), "lineage": lineage, "aliases": info.aliases,
    }


def _fresh(dst: Path, temps: list[Path]) -> Path:
    """A new, empty file next to ``dst``, created exclusively under a recognisable name, then
    removed so that the writer can create it exclusively again (``copy_to`` does)."""
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=STAGING_SUFFIX, dir=dst.parent)
    os.close(fd)
    p = Path(name)
    temps.append(p)
    p.unlink()
    return p


def _place(tmp: Path, dst: Path, force: bool) -> None:
    if force:
        os.replace(tmp, dst)  # replaces a symlink itself, never its target
        return
    try:
        os.link(tmp, dst, follow_symlinks=False)
    except FileExistsError:
        raise ConflictError(f"{dst} appeared while exporting; nothing was replaced") from None
    tmp.unlink()

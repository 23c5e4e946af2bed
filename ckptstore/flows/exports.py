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

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ..errors import CkptstoreError
from ..files.area import StoredFile
from ..files.commit import check_files, commit_files, digest_staged, record_signatures
from ..metadata import queries as Q
from ..metadata import reads
from ..metadata import writes as W
from ..names import check_step
from ..records import ExportInfo
from ..tf import saved_model as sm
from ..tf.frozen import FrozenFunction, freeze_target, import_into_graph, load_graph_def, parse_graph_def
from .backend import Backend
from .checkpoints import raise_if_run_gone
from .export_out import file_info, write_frozen
from .resolve import as_ref

log = logging.getLogger(__name__)

__all__ = [
    "freeze", "list_exports", "export_of", "load_frozen", "import_frozen", "export_frozen", "FrozenFunction",
]

#: The manifest of a file set: ``{"format": FILE_SET_FORMAT, "files": [[path, size, digest], ...]}``.
FILE_SET_FORMAT = "ckptstore-file-set-1"


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
    """The export a reference names (see :func:`~ckptstore.metadata.reads.export_of`)."""
    parsed = as_ref(ref)
    with backend.db.sql_read() as sql:
        return reads.export_of(sql, parsed)


def _not_a_graph(info: ExportInfo) -> None:
    if info.kind == sm.SAVED_MODEL:
        raise CkptstoreError(f"{info.ref} is a SavedModel, not a frozen graph: load it with load_saved_model, write it out with export")
    if info.kind == sm.KERAS:
        raise CkptstoreError(f"{info.ref} is a .keras model, not a frozen graph: load it with load_keras, write it out with export")


def _graph_def(backend: Backend, info: ExportInfo, verify: bool | str) -> Any:
    _not_a_graph(info)
    check_files(backend.db, backend.files, [file_info(info)], verify)
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
    """Write an export's ``.pb`` (or ``.keras``) to ``path`` plus a JSON sidecar; returns the
    path. See :func:`~.export_out.write_frozen` (the CLI's quick path calls it too)."""
    return write_frozen(backend.db.sql_read, backend.files, export_of(backend, ref), path, verify=verify, force=force,
                        record=lambda sigs: record_signatures(backend.db, sigs))

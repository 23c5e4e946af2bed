"""SavedModel and ``.keras`` exports: store, load back, write out (see ``flows.exports`` for the
storage layout and the commit point, which are the frozen graphs' own).

* ``export_saved_model``: ``tf.saved_model.save`` into a locked staging directory, then every
  file digested and the whole set committed in one transaction with its manifest (the export's
  digest). A crash before the commit leaves staging and unreferenced objects, removed by ``gc``.
* ``export_keras``: ``model.save("model.keras")`` in staging, committed as one object.
* ``load_saved_model`` / ``load_keras``: the stored files are checked, written once into the
  store's cache directory (``e<id>-<digest>``, read-only, beside the materialized checkpoints)
  and loaded from there with ``tf.saved_model.load`` / ``keras.saving.load_model``.
* ``export_to``: a frozen graph or ``.keras`` file as ``export_frozen`` writes it; a SavedModel as
  a directory (``--to DIR``) with a ``ckptstore-export.json`` sidecar inside, built in a
  temporary directory beside the target and renamed into place, so a reader never sees half of
  it; an existing non-empty directory is a :class:`ConflictError` unless ``force``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ..errors import CkptstoreError, from_os_error
from ..files.area import StoredFile
from ..files.commit import check_files, commit_files, digest_staged, record_signatures
from ..files.local import STAGING_SUFFIX
from ..metadata import queries as Q
from ..metadata import writes as W
from ..names import check_step
from ..records import ExportInfo, FileInfo
from ..tf import saved_model as sm
from . import export_out
from .backend import Backend
from .checkpoints import raise_if_run_gone
from .exports import FILE_SET_FORMAT, export_of

log = logging.getLogger(__name__)

__all__ = ["export_saved_model", "export_keras", "load_saved_model", "load_keras", "export_to", "export_files"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)


# --------------------------------------------------------------------------- storing


def export_saved_model(
    backend: Backend, run_id: int, run_name: str, obj: Any, *, step: int | None = None, signatures: Any = None
) -> ExportInfo:
    """Store ``tf.saved_model.save(obj, signatures=signatures)`` as an export of the run."""
    if step is not None:
        step = check_step(step)
    with backend.files.staging(f"savedmodel-{run_id}") as sdir:
        model_dir = sdir / "saved_model"
        desc = sm.write_saved_model(obj, model_dir, signatures)
        rel = sorted(p for p in model_dir.rglob("*") if p.is_file() and not p.is_symlink())
        staged = digest_staged(rel)
        files = [(PurePosixPath(p.relative_to(model_dir)).as_posix(), n, d) for p, d, n in staged]
        manifest = sdir / "manifest.json"
        manifest.write_text(json.dumps({"format": FILE_SET_FORMAT, "files": [list(f) for f in files]}, sort_keys=True))
        (m,) = digest_staged([manifest])
        total = sum(n for _, n, _ in files)
        return _commit(backend, run_id, run_name, step, desc, [m, *staged], m[1], total, files)


def export_keras(backend: Backend, run_id: int, run_name: str, model: Any, *, step: int | None = None) -> ExportInfo:
    """Store ``model.save("model.keras")`` as an export of the run."""
    if step is not None:
        step = check_step(step)
    with backend.files.staging(f"keras-{run_id}") as sdir:
        path = sdir / "model.keras"
        desc = sm.write_keras(model, path)
        (m,) = digest_staged([path])
        return _commit(backend, run_id, run_name, step, desc, [m], m[1], m[2], [])


def _commit(backend: Backend, run_id: int, run_name: str, step: int | None, desc: sm.Description,
            staged: list[tuple[Path, str, int]], digest: str, size: int, files: list[tuple[str, int, str]]) -> ExportInfo:
    def rows(conn: Connection, stored: list[StoredFile]) -> int:
        ck_id = Q.checkpoint_id_at(conn, run_id, step) if step is not None else None
        export_id = W.insert_export(
            conn, run_id=run_id, checkpoint_id=ck_id, step=step, kind=desc.kind, inputs=desc.inputs,
            outputs=desc.outputs, node_count=desc.node_count, size=size, digest=digest, tf_version=desc.tf_version,
        )
        W.insert_export_files(conn, export_id, files)
        return export_id

    try:
        export_id = commit_files(backend.db, backend.files, staged, rows)
    except IntegrityError:
        raise_if_run_gone(backend, run_id, run_name, [d for _, d, _ in staged])
        raise
    except OSError as exc:
        raise from_os_error(f"cannot store the {desc.kind} export of {run_name}", exc) from None
    log.info("stored export:%d of run %s (%s, %d files, %d bytes)", export_id, run_name, desc.kind, max(1, len(files)), size)
    with backend.db.read() as conn:
        return Q.export_by_id(conn, export_id)


# --------------------------------------------------------------------------- reading back


def export_files(backend: Backend, info: ExportInfo) -> list[FileInfo]:
    """The files of a SavedModel export as checkable records (``file_name`` is the path)."""
    return export_out.export_files(backend.db.sql_read, info)


def _cached(backend: Backend, info: ExportInfo, verify: bool | str) -> Path:
    """The export written once into the store's cache (a SavedModel directory, or a directory
    holding ``model.keras``); checked before the first write."""
    root = backend.files.cache_root()
    out = root / f"e{info.id}-{info.digest[:16]}"
    if out.is_dir():
        return out
    if info.kind == sm.SAVED_MODEL:
        files = export_files(backend, info)
    else:
        files = [FileInfo(role="file", file_name="model.keras", size=info.size, digest=info.digest)]
    check_files(backend.db, backend.files, files, verify)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=STAGING_SUFFIX, dir=root))
    except OSError as exc:
        raise from_os_error(f"cannot create {root}", exc) from None
    try:
        export_out.write_tree(backend.files, files, tmp)
        for p in tmp.rglob("*"):
            if p.is_file():
                os.chmod(p, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.chmod(tmp, 0o777 & ~_UMASK)
        try:
            os.rename(tmp, out)
        except OSError:
            if not out.is_dir():  # not another process that finished the same copy first
                raise
    except OSError as exc:
        raise from_os_error(f"cannot write {out}", exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_saved_model(backend: Backend, ref: Any, *, verify: bool | str = True) -> Any:
    """``tf.saved_model.load`` of a stored SavedModel export, its files checked first."""
    info = export_of(backend, ref)
    if info.kind != sm.SAVED_MODEL:
        raise CkptstoreError(f"{info.ref} is a {info.kind} export, not a SavedModel")
    return sm.load_saved_model(_cached(backend, info, verify))


def load_keras(backend: Backend, ref: Any, *, verify: bool | str = True, custom_objects: dict[str, Any] | None = None,
               compile: bool = True, safe_mode: bool = True) -> Any:
    """``keras.saving.load_model`` of a stored ``.keras`` export, checked first (the keywords
    after ``verify`` are ``load_model``'s)."""
    info = export_of(backend, ref)
    if info.kind != sm.KERAS:
        raise CkptstoreError(f"{info.ref} is a {info.kind} export, not a .keras model")
    return sm.load_keras(_cached(backend, info, verify) / "model.keras",
                         custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


# --------------------------------------------------------------------------- writing out


def export_to(
    backend: Backend, ref: Any, path: str | os.PathLike[str], *, verify: bool | str = True, force: bool = False
) -> Path:
    """Write an export for deployment; returns what was written (file or directory). See
    :func:`~.export_out.write_export` (the CLI's quick path calls it too)."""
    return export_out.write_export(backend.db.sql_read, backend.files, export_of(backend, ref), path, verify=verify,
                                   force=force, record=lambda sigs: record_signatures(backend.db, sigs))

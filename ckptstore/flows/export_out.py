"""An export written out for deployment (``export REF --to FILE|DIR``), over SQL text.

A frozen graph or a ``.keras`` file becomes a file plus a JSON sidecar; a SavedModel a directory
with ``ckptstore-export.json`` inside. The store runs this through SQLAlchemy
(``Store.export_to``, ``Store.export_frozen``); the CLI's ``export`` runs the very same
functions on a SQLite store through ``sqlite3`` (issue 26: every command that does not load
TensorFlow in 0.3 s, and copying files needs none). Nothing here imports SQLAlchemy or
TensorFlow.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import CkptstoreError, ConflictError, CorruptFileError, from_os_error
from ..files.area import ObjectArea
from ..files.checking import check_stored
from ..files.local import STAGING_SUFFIX
from ..metadata import file_reads as F
from ..metadata.file_reads import Snapshot
from ..records import ExportInfo, FileInfo, to_json
from ..tf.saved_model import KERAS, SAVED_MODEL

log = logging.getLogger(__name__)

__all__ = ["DIR_SIDECAR", "export_files", "file_info", "sidecar_of", "write_export", "write_frozen"]

#: Written into an exported SavedModel directory beside its files (TensorFlow ignores it).
DIR_SIDECAR = "ckptstore-export.json"
_FILE_KINDS = {KERAS: ".keras"}

# Read once: os.umask can only be read by setting it, which would race with other threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

#: Keeps the stat signatures of objects re-hashed intact (the store records them where it may write).
Record = Callable[[dict[str, str]], None] | None


def file_info(info: ExportInfo) -> FileInfo:
    """A single-object export (frozen graph, ``.keras``) as a checkable file record."""
    return FileInfo(role="graph", file_name=f"export-{info.id}{_FILE_KINDS.get(info.kind, '.pb')}", size=info.size, digest=info.digest)


def export_files(snapshot: Snapshot, info: ExportInfo) -> list[FileInfo]:
    """The files of a SavedModel export as checkable records (``file_name`` is the path)."""
    with snapshot() as sql:
        rows = F.export_files(sql, info.id)
    out = []
    for path, size, digest in rows:
        p = PurePosixPath(path)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise CorruptFileError(f"{info.ref} lists an unsafe path {path!r}")
        out.append(FileInfo(role="file", file_name=path, size=size, digest=digest))
    return out


def check(snapshot: Snapshot, area: ObjectArea, files: list[FileInfo], verify: bool | str, record: Record) -> None:
    refreshed = check_stored(snapshot, area, files, verify)
    if refreshed and record is not None:
        record(refreshed)


def write_export(
    snapshot: Snapshot, area: ObjectArea, info: ExportInfo, path: str | os.PathLike[str], *,
    verify: bool | str = True, force: bool = False, record: Record = None,
) -> Path:
    """Write an export for deployment; returns what was written (file or directory).

    A frozen graph or a ``.keras`` file: as :func:`write_frozen`. A SavedModel: the directory
    ``path`` (created; an existing empty one is filled) holding the SavedModel's files and
    ``ckptstore-export.json`` (inputs, outputs, digest, lineage), built in a temporary
    directory beside it and renamed into place, so a reader never sees half of it; an existing
    non-empty directory is a :class:`ConflictError` unless ``force``."""
    if info.kind != SAVED_MODEL:
        return write_frozen(snapshot, area, info, path, verify=verify, force=force, record=record)
    files = export_files(snapshot, info)
    check(snapshot, area, files, verify, record)
    dst = Path(path)
    if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
        raise ConflictError(f"{dst} exists and is not a directory; a SavedModel is written as a directory")
    occupied = dst.is_dir() and any(dst.iterdir())
    if occupied and not force:
        raise ConflictError(f"{dst} is not empty; choose a new directory or pass force (--force)")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=STAGING_SUFFIX, dir=dst.parent))
    except OSError as exc:
        raise from_os_error(f"cannot create {dst}", exc) from None
    old: Path | None = None
    try:
        write_tree(area, files, tmp)
        with open(tmp / DIR_SIDECAR, "x", encoding="utf-8") as fh:
            fh.write(json.dumps({**sidecar_of(info), "files": len(files)}, indent=2) + "\n")
        os.chmod(tmp, 0o777 & ~_UMASK)
        if occupied:
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", suffix=STAGING_SUFFIX, dir=dst.parent))
            os.rename(dst, old / "replaced")
        try:
            os.rename(tmp, dst)  # onto a missing or empty directory: atomic
        except OSError as exc:
            if old is not None:
                os.rename(old / "replaced", dst)
            raise ConflictError(f"{dst} appeared or filled while exporting; nothing was replaced") from exc
    except OSError as exc:
        raise from_os_error(f"cannot write {dst}", exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    log.info("exported %s to %s (%d files)", info.ref, dst, len(files))
    return dst


def write_tree(area: ObjectArea, files: list[FileInfo], into: Path) -> None:
    """Copy each file to its path under ``into`` (paths checked by :func:`export_files`)."""
    for f in files:
        dst = into / f.file_name
        dst.parent.mkdir(parents=True, exist_ok=True)
        area.copy_to(f.digest, dst)


def write_frozen(
    snapshot: Snapshot, area: ObjectArea, info: ExportInfo, path: str | os.PathLike[str], *,
    verify: bool | str = True, force: bool = False, record: Record = None,
) -> Path:
    """Write an export's ``.pb`` to ``path`` plus a JSON sidecar ``path + ".json"``; returns the path.

    A directory as ``path`` (an existing one, or one named with a trailing ``/``, created then)
    receives ``export-ID.pb``. The sidecar holds the inputs, outputs, digest, size, TensorFlow
    version and lineage (run, step, checkpoint), so a deployment can check what it serves
    without the store. Both files are written to fresh temporary names (created exclusively)
    and renamed, so a reader never sees half a file; an existing file at either name is a
    :class:`ConflictError` unless ``force``, and a symlink there is replaced, never followed.
    """
    if info.kind == SAVED_MODEL:
        raise CkptstoreError(f"{info.ref} is a SavedModel, a directory: write it out with export_to")
    check(snapshot, area, [file_info(info)], verify, record)
    dst = Path(path)
    # Path() drops a trailing slash: 'newdir/' would otherwise become a file named 'newdir'.
    if dst.is_dir() or os.fspath(path).endswith(("/", os.sep)):
        dst = dst / file_info(info).file_name
    suffix = Path(file_info(info).file_name).suffix
    if dst.suffix in (".pb", ".keras") and dst.suffix != suffix:
        # A .keras zip named .pb (or a GraphDef named .keras) fails only where it is deployed.
        raise ConflictError(f"{info.ref} is a {suffix} file ({info.kind}); name the target {dst.with_suffix(suffix).name}")
    sidecar = dst.with_name(dst.name + ".json")
    if not force:
        for p in (dst, sidecar):
            if p.exists() or p.is_symlink():
                raise ConflictError(f"{p} already exists; choose another name or pass force (--force)")
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
        area.copy_to(info.digest, tmp_pb)
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

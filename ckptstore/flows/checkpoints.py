"""Checkpoints: save, and read back (restore into a model, materialize a directory, read one tensor).

**How a save becomes visible.** TensorFlow writes the checkpoint into a locked staging directory
of the object area; the files are digested there (the data shard while it is being written),
then put into the content-addressed object area, and one database transaction records the
checkpoint, its files and its variables (``files.commit.commit_files``). That transaction is the
commit point: before it nothing is visible, after it everything is. A crash leaves at most a
staging directory and unreferenced objects, which ``gc`` removes; ``verify`` re-digests what is
committed.

**How a directory is materialized.** Every file is written into a fresh temporary directory
(``.<target>.<random>.ckptstore-tmp``, created exclusively) next to the target, by copies that
share no inode with the stored objects (reflinks where the filesystem has them), and the whole
directory is moved into place at the end: an interrupted restore leaves the target as it was,
plus a temporary directory that is recognisable by its name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ..bundle import NUMPY_DTYPES, crc32c, decode_array
from ..constants import LINK_MODES
from ..errors import (
    CkptstoreError,
    ConflictError,
    CorruptFileError,
    InvalidOptionError,
    UnknownRefError,
    UnknownRunError,
    from_os_error,
)
from ..faults import fault
from ..files import pieces
from ..files.area import StoredFile
from ..files.commit import check_files, commit_files, record_signatures, release_unreferenced
from ..files.digest import DigestFollower, digest_file
from ..files.local import STAGING_SUFFIX
from ..liveness import pid_alive
from ..metadata import file_reads
from ..metadata import pieces as MP
from ..metadata import queries as Q
from ..metadata import writes as W
from ..names import Ref, check_step
from ..records import CheckpointInfo, FileInfo
from ..tf import formats
from ..tf.reader import TF2_SUFFIX, file_role, list_variables, read_tensor
from ..tf.varnames import readable_names
from .backend import Backend
from .deletion import apply_retention
from .resolve import checkpoint_of
from .restore_dir import still_there, with_meta, write_checkpoint_dir

log = logging.getLogger(__name__)


Progress = Callable[[int, int], None] | None



# --------------------------------------------------------------------------- save


def save(
    backend: Backend,
    run_id: int,
    run_name: str,
    target: Any,
    step: int,
    *,
    var_list: Any = None,
    write_meta_graph: bool = True,
    prefix: str = "model.ckpt",
) -> CheckpointInfo:
    """See :meth:`ckptstore.run.Run.save`."""
    step = check_step(step)
    check_prefix(prefix)
    fmt = formats.for_target(target)
    try:
        with backend.files.staging(f"save-{run_id}") as sdir:
            follower = DigestFollower(sdir, f"{prefix}-{step}")
            try:
                path = fmt.save(target, sdir, prefix, step, var_list=var_list, write_meta_graph=write_meta_graph)
            finally:
                known = follower.finish()
            names = readable_names(target, path)
            info = commit_checkpoint(backend, run_id, run_name, step, fmt, path, known, readable=names)
    except OSError as exc:  # staging or moving into the object area: a full disk, a refused write
        raise from_os_error(f"cannot save {run_name}@{step}", exc) from None
    apply_retention(backend, run_id)
    return info


def write_and_discard(target: Any, step: int, *, var_list: Any = None, write_meta_graph: bool = True,
                      prefix: str = "model.ckpt") -> None:
    """A non-chief worker's part of a distributed save: TensorFlow writes ``target`` exactly as
    the chief's save does (collective ops, such as the all-reduce of a ``SyncOnRead`` variable,
    need every worker), into a private temporary directory that is deleted at once. Nothing
    reaches the store. TensorFlow's own ``distributed_file_utils.write_dirpath`` /
    ``remove_temp_dirpath`` do the same with a ``workertemp_<id>`` directory; ours is local,
    since the store's area may be a bucket, and named ``ckptstore-worker-*`` so that what a
    killed worker leaves is recognisable."""
    step = check_step(step)
    check_prefix(prefix)
    fmt = formats.for_target(target)
    _remove_dead_workers_dirs(Path(tempfile.gettempdir()))
    tmp = Path(tempfile.mkdtemp(prefix=f"{WORKER_TMP}{os.getpid()}-", suffix=STAGING_SUFFIX))
    try:
        fmt.save(target, tmp, prefix, step, var_list=var_list, write_meta_graph=write_meta_graph)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.debug("took part in the save of step %d (written to a temporary directory, deleted)", step)


#: What a follower's temporary directory is named after: ``ckptstore-worker-<pid>-<random>.ckptstore-tmp``.
WORKER_TMP = "ckptstore-worker-"


def _remove_dead_workers_dirs(tmp: Path) -> None:
    """Remove what followers killed in the middle of a save left (their pid is gone): the next
    save of a re-run job cleans up after the last one."""
    for path in tmp.glob(f"{WORKER_TMP}*{STAGING_SUFFIX}"):
        pid = path.name[len(WORKER_TMP):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            log.info("removing %s, left by a worker that died while saving", path)
            shutil.rmtree(path, ignore_errors=True)


def commit_checkpoint(
    backend: Backend,
    run_id: int,
    run_name: str,
    step: int,
    fmt: formats.CheckpointFormat,
    path: Path,
    known: dict[str, tuple[str, int]] | None = None,
    *,
    readable: Mapping[str, str] | None = None,
) -> CheckpointInfo:
    """Record the checkpoint whose files are at staging prefix ``path`` (see module docstring).
    ``readable``: readable names of its variables ({key: name}, ``tf.varnames``)."""
    files = fmt.files(path)
    variables = list_variables(path)
    known = known or {}
    staged = [(p, *known[p.name]) if p.name in known else (p, *digest_file(p)) for p in files]
    plans = _plans(path, staged)
    fault("staged")
    names = [p.name for p in files]
    replaced: list[str] = []

    def rows(conn: Connection, stored: list[StoredFile]) -> int:
        old = Q.checkpoint_id_at(conn, run_id, step)
        freed: set[str] = set()
        if old is not None:
            # Saving a step again replaces it, as Saver.save does, unless an alias points at it.
            aliases = Q.aliases_of_checkpoint(conn, old)
            if aliases:
                raise ConflictError(
                    f"{run_name}@{step} already exists and has the alias {', '.join(sorted(aliases))}; "
                    "remove it (ckptstore unalias NAME) before saving that step again"
                )
            freed = W.delete_checkpoints(conn, [old], drop_blobs=False)
        cid = W.insert_checkpoint(
            conn, run_id=run_id, step=step, fmt=fmt.name, prefix=path.name,
            files=[(file_role(n), n, sf.size, sf.digest) for n, sf in zip(names, stored)],
            variables=variables,
        )
        if readable:
            saved_keys = {v[0] for v in variables}
            MP.record_readable_names(conn, cid, {k: v for k, v in readable.items() if k in saved_keys})
        if freed:
            # Only now: the new checkpoint may re-use some of the replaced one's blobs.
            replaced.extend(W.drop_orphan_blobs(conn, freed))
        return cid

    try:
        cid = commit_files(backend.db, backend.files, staged, rows, plans)
    except IntegrityError as exc:
        if not _is_step_conflict(exc):
            raise_if_run_gone(backend, run_id, run_name, [d for _, d, _ in staged])
            raise
        # PostgreSQL: another process committed the same run and step first. Our moved files
        # are unreferenced now; gc reclaims them.
        raise ConflictError(f"{run_name}@{step} was saved by another process at the same time") from None
    if replaced:
        release_unreferenced(backend.db, backend.area, replaced)
    log.info("saved %s@%d (%d files)", run_name, step, len(files))
    with backend.db.read() as conn:
        return Q.checkpoint_by_id(conn, cid)


def _plans(path: Path, staged: Sequence[tuple[Path, str, int]]) -> dict[str, pieces.DataPlan]:
    """Pieces and per-tensor digests of the staged data files (empty if the index cannot be
    read without TensorFlow: the files are then stored whole, as before tensor-level storage)."""
    if not path.with_name(path.name + ".index").exists():
        return {}
    try:
        return pieces.plan_checkpoint(path, staged)
    except CkptstoreError as exc:
        log.warning("storing %s whole: %s", path.name, exc)
        return {}


def raise_if_run_gone(backend: Backend, run_id: int, run_name: str, digests: Sequence[str]) -> None:
    """After a foreign-key failure: if another process deleted the run, remove the objects this
    save put (those no row names) and raise UnknownRunError."""
    with backend.db.read() as conn:
        gone = not Q.run_exists(conn, run_id)
    if gone:
        release_unreferenced(backend.db, backend.area, digests)
        raise UnknownRunError(f"run {run_name!r} was deleted from {backend.db.describe_store()} during the save") from None


def _is_step_conflict(exc: IntegrityError) -> bool:
    """Whether ``exc`` is the (run, step) uniqueness of checkpoints, on either database."""
    text = str(exc.orig)
    return "uq_checkpoints_run_id_step" in text or "checkpoints.run_id, checkpoints.step" in text


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix or "/" in prefix or "\\" in prefix or prefix.startswith(".") or "\0" in prefix:
        raise CkptstoreError(f"checkpoint prefix {prefix!r} must be a plain file name such as 'model.ckpt'")
    return prefix


# --------------------------------------------------------------------------- reading back


class _Placed:
    """A private temporary directory giving stored files their original names, for TensorFlow
    to read (never to write): symlinks to whole objects, files assembled from pieces rebuilt
    (and checked against their whole-file digest).

    It is removed when the ``with`` block ends, unless :meth:`keep_until` handed it to an object
    that still needs it: TF2 restores some values only later (optimizer slots built on the first
    training step, variables created after the restore) and reads them from these files then.
    A directory left by a killed process is named after its pid and removed by a later restore.
    """

    PREFIX = "ckptstore-read-"

    def __init__(self, backend: Backend, ck: CheckpointInfo, files: Sequence[tuple[FileInfo, str]], *, check: bool = True) -> None:
        area = backend.files
        _remove_stale_read_dirs()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{os.getpid()}-"))
        self._kept = False
        # A cached object a symlink points at is held from eviction while TensorFlow reads.
        self._held = contextlib.ExitStack()
        layouts = _layouts(backend, [f for f, _ in files])
        try:
            for f, name in files:
                dst = self.dir / name
                if f.digest in layouts:
                    pieces.assemble(area, layouts[f.digest], f.digest, f.size, dst, check=check)
                else:
                    # A symlink, not a hard link: linking changes the object's ctime, which is
                    # part of the stat signature that spares later checks a re-hash.
                    os.symlink(self._held.enter_context(area.held_path(f.digest)), dst)
        except BaseException:
            self.close()
            raise
        self.prefix = self.dir / ck.prefix

    def keep_until(self, owner: Any) -> None:
        """Keep the files (and the cached objects they point at) until ``owner`` is
        garbage-collected, or the interpreter exits."""
        weakref.finalize(owner, _Placed._release, str(self.dir), self._held)
        self._kept = True

    def close(self) -> None:
        _Placed._release(str(self.dir), self._held)

    @staticmethod
    def _release(directory: str, held: contextlib.ExitStack) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        held.close()

    def __enter__(self) -> _Placed:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._kept or exc[0] is not None:
            self.close()


def _remove_stale_read_dirs() -> None:
    """Remove read directories (``_Placed``) whose process is gone (killed while a deferred
    restore kept its files)."""
    tmp = Path(tempfile.gettempdir())
    try:
        names = [n for n in os.listdir(tmp) if n.startswith(_Placed.PREFIX)]
    except OSError:
        return
    for name in names:
        pid = name[len(_Placed.PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(tmp / name, ignore_errors=True)


def restore(
    backend: Backend,
    ref: str | Ref | Any,
    target: Any,
    *,
    verify: bool | str = True,
    var_list: Any = None,
) -> CheckpointInfo:
    """Restore a checkpoint into ``target``; returns the checkpoint restored.

    * TF1 ``tf.compat.v1.Session``: if its graph is empty, the stored meta graph is imported
      first (as ``import_meta_graph`` would; for a checkpoint saved without one, the run's
      nearest meta graph); otherwise the graph's variables (or ``var_list``) are restored, after
      checking that the checkpoint holds every one of them with the right shape.
    * TF2 ``tf.train.Checkpoint`` or trackable (restored as ``Checkpoint(model=obj)``, the way
      ``run.save`` saved it).

    ``verify``: True checks every file (a file whose stat signature changed since it was hashed
    is re-hashed), ``"full"`` re-hashes all, False only checks presence and sizes.
    """
    ck = checkpoint_of(backend, ref)
    fmt = formats.for_target(target)
    if fmt.name != ck.format:
        raise CkptstoreError(f"{ck.ref} is a {ck.format} checkpoint; restore it into a {formats.named(ck.format).target_kinds}")
    wanted = with_meta(backend.db.sql_read, ck, fmt.uses_meta_graph) if fmt.needs_meta_graph(target) else [
        (f, f.file_name) for f in ck.files if f.role != "meta"]
    with still_there(backend.db.sql_read, ck):
        check_files(backend.db, backend.files, [f for f, _ in wanted], verify)
    with backend.db.read() as conn:
        saved = {v.name: (v.dtype, v.shape) for v in Q.variables(conn, ck.id)}
    with still_there(backend.db.sql_read, ck), _Placed(backend, ck, wanted, check=verify is not False) as placed:
        meta = placed.dir / (ck.prefix + ".meta")
        pending = fmt.restore(target, placed.prefix, saved=saved, meta_path=meta if meta.exists() else None, var_list=var_list)
        if pending is not None:
            placed.keep_until(pending)
    return ck


def read_variable(backend: Backend, ref: str | Ref | Any, name: str, *, verify: bool | str = True) -> Any:
    """One saved tensor as a numpy array. ``name`` is the saved name, or the readable name
    recorded at save (``hidden/kernel``); for TF2 checkpoints the ``/.ATTRIBUTES/VARIABLE_VALUE``
    suffix may be left out.

    A numeric tensor whose digest was recorded is read from its own piece only (its blake3 is
    checked unless ``verify`` is False); anything else (strings, bfloat16, checkpoints saved
    before tensor-level storage) is read through TensorFlow from the checked files.
    """
    ck = checkpoint_of(backend, ref)
    with backend.db.read() as conn:
        saved = {v.name: v for v in Q.variables(conn, ck.id)}
        readable = MP.readable_names(conn, ck.id)
    key = resolve_variable_name(ck.ref, name, saved, readable)
    data_files = [f for f in ck.files if f.role == "data"]
    with backend.db.read() as conn:
        per_file = MP.tensors(conn, [f.digest for f in data_files])
        layouts = MP.extents(conn, [f.digest for f in data_files])
    var = saved[key]
    if var.dtype in NUMPY_DTYPES:
        for f in data_files:
            hit = per_file.get(f.digest, {}).get(key)
            if hit is None:
                continue
            offset, size, digest, crc = hit
            try:
                with still_there(backend.db.sql_read, ck):
                    data = pieces.read_range(backend.files, f.digest, layouts.get(f.digest), offset, size)
            except CorruptFileError as exc:  # MissingFileError too: name the checkpoint's file
                raise type(exc)(f"stored file {f.file_name} of {ck.ref}: {exc}") from None
            intact = (pieces.hash_bytes(data) == digest) if digest is not None else (crc is not None and crc32c(data) == crc)
            if verify is not False and not intact:
                raise CorruptFileError(
                    f"stored file {f.file_name} ({f.digest[:12]}) of {ck.ref}: the bytes of {key!r} do not match "
                    "their digest; the stored file was changed on disk"
                )
            value = decode_array(var.dtype, var.shape, data)
            if value is not None:
                return value.copy()
    files = [(f, f.file_name) for f in ck.files if f.role != "meta"]
    with still_there(backend.db.sql_read, ck):
        check_files(backend.db, backend.files, [f for f, _ in files], verify)
        with _Placed(backend, ck, files, check=verify is not False) as placed:
            return read_tensor(placed.prefix, key)


def resolve_variable_name(ref: str, name: str, saved: Mapping[str, Any], readable: Mapping[str, str]) -> str:
    """The checkpoint key ``name`` means: a key, a key without the TF2 suffix, or a readable name."""
    if name in saved:
        return name
    if name + TF2_SUFFIX in saved:
        return name + TF2_SUFFIX
    by_readable = {v: k for k, v in readable.items()}
    if name in by_readable and by_readable[name] in saved:
        return by_readable[name]
    import difflib

    # A TF2 key is a path (model/w/.ATTRIBUTES/VARIABLE_VALUE): a user who asks for its last
    # part ('w') means it, though difflib finds the two too far apart to suggest it.
    short = sorted(k.removesuffix(TF2_SUFFIX) for k in saved if k.removesuffix(TF2_SUFFIX).rsplit("/", 1)[-1] == name)
    close = short[:3] or difflib.get_close_matches(name, sorted({*saved, *by_readable}), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownRefError(f"{ref} has no variable {name!r}{hint}")


# --------------------------------------------------------------------------- materialize


def materialize(
    backend: Backend,
    ref: str | Ref | Any,
    to_dir: str | os.PathLike[str],
    *,
    verify: bool | str = True,
    link: str = "copy",
    force: bool = False,
    progress: Progress = None,
) -> Path:
    """Write a plain TensorFlow checkpoint directory that vanilla TF reads; returns the prefix.
    See :func:`~.restore_dir.write_checkpoint_dir` (the CLI's quick path calls it too)."""
    if link not in LINK_MODES:
        raise InvalidOptionError(f"link must be one of {', '.join(LINK_MODES)}, got {link!r}")
    ck = checkpoint_of(backend, ref)
    return write_checkpoint_dir(
        backend.db.sql_read, backend.files, ck, to_dir, uses_meta_graph=formats.named(ck.format).uses_meta_graph,
        verify=verify, link=link, force=force, progress=progress, record=lambda sigs: record_signatures(backend.db, sigs),
    )


def _layouts(backend: Backend, files: Sequence[FileInfo]) -> dict[str, list[pieces.Extent]]:
    """The extents of those ``files`` that are assembled from pieces."""
    with backend.db.sql_read() as sql:
        return file_reads.extents(sql, [f.digest for f in files])

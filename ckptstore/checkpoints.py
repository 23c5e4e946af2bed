"""Checkpoints: save, restore, materialize, import, verify, retention and gc.

**How a save becomes visible.** TensorFlow writes the checkpoint into a locked staging directory
of the file area; the files are digested there, then moved into the content-addressed object
area, and one database transaction records the checkpoint, its files and its variables
(``blobs.commit_files``). The transaction is the commit point: before it nothing is visible, after
it everything is. A crash leaves at most a staging directory and unreferenced objects, which
``gc`` removes; ``verify`` re-digests what is committed.

**Deletion goes the other way round:** metadata first (one transaction, which also drops the
``blobs`` rows nothing references any more), then, under the file area's exclusive lock, the
objects whose rows are gone.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from . import schema as S
from ._fault import fault
from .blobs import check_files, commit_files, release_unreferenced
from .errors import (
    CkptstoreError,
    ConflictError,
    CorruptFileError,
    NoCheckpointFoundError,
    UnknownRefError,
)
from .files import DigestFollower, StoredFile, digest_file, place_file
from .names import Ref, check_run_name
from .records import CheckpointInfo, FileInfo, GcReport, Problem, VerifyReport
from .retention import Candidate, Retention, plan
from .run import _check_step
from .store import _drop_orphan_blobs

if TYPE_CHECKING:
    import numpy as np

    from .run import Run
    from .store import Store

log = logging.getLogger(__name__)

Progress = Optional[Callable[[int, int], None]]
_DATA_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})$")


def file_role(name: str) -> str:
    if name.endswith(".index"):
        return "index"
    if name.endswith(".meta"):
        return "meta"
    if _DATA_RE.search(name):
        return "data"
    raise CkptstoreError(f"unexpected file {name!r} in a checkpoint")


# --------------------------------------------------------------------------- save


def save(
    run: "Run",
    target: Any,
    step: int,
    *,
    var_list: Any = None,
    write_meta_graph: bool = True,
    prefix: str = "model.ckpt",
) -> CheckpointInfo:
    """See :meth:`ckptstore.run.Run.save`."""
    from . import tfio

    step = _check_step(step)
    _check_prefix(prefix)
    store = run.store
    fmt = tfio.format_of(target)
    with store.files.staging(f"save-{run.id}") as sdir:
        follower = DigestFollower(sdir, f"{prefix}-{step}")
        try:
            if fmt == tfio.TF1:
                path = tfio.save_tf1(target, sdir, prefix, step, var_list=var_list, write_meta_graph=write_meta_graph)
            else:
                path = tfio.save_tf2(target, sdir, prefix, step)
        finally:
            known = follower.finish()
        info = _commit_checkpoint(store, run.id, run.name, step, fmt, path, known)
    apply_retention(store, run.id)
    return info


def _commit_checkpoint(
    store: "Store",
    run_id: int,
    run_name: str,
    step: int,
    fmt: str,
    path: Path,
    known: Optional[dict[str, tuple[str, int]]] = None,
) -> CheckpointInfo:
    """Record the checkpoint whose files are at staging prefix ``path`` (see module docstring)."""
    from . import tfio

    files = sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name + ".") and p.name != ".lock")
    variables = tfio.list_variables(path)
    known = known or {}
    staged = [(p, *known[p.name]) if p.name in known else (p, *digest_file(p)) for p in files]
    fault("staged")
    names = [p.name for p in files]
    replaced: list[str] = []

    def rows(conn: Connection, stored: list[StoredFile]) -> int:
        old = conn.execute(
            select(S.Checkpoint.id).where(S.Checkpoint.run_id == run_id, S.Checkpoint.step == step)
        ).scalar()
        if old is not None:
            # Saving a step again replaces it, as Saver.save does, unless a version is named after it.
            aliases = conn.execute(select(S.Alias.name).where(S.Alias.checkpoint_id == old)).scalars().all()
            if aliases:
                raise ConflictError(
                    f"{run_name}@{step} already exists and is the version {', '.join(aliases)}; "
                    "untag it before saving that step again"
                )
            freed = _delete_rows(conn, [old], drop_blobs=False)
        else:
            freed = set()
        total = sum(sf.size for sf in stored)
        cid = conn.execute(
            S.Checkpoint.__table__.insert()
            .values(run_id=run_id, step=step, format=fmt, state="committed", prefix=path.name,
                    total_bytes=total, created_at=S.utcnow())
            .returning(S.Checkpoint.__table__.c.id)
        ).scalar_one()
        conn.execute(
            S.CheckpointFile.__table__.insert(),
            [
                {"checkpoint_id": cid, "role": file_role(n), "file_name": n, "size": sf.size, "digest": sf.digest}
                for n, sf in zip(names, stored)
            ],
        )
        if variables:
            conn.execute(
                S.Variable.__table__.insert(),
                [{"checkpoint_id": cid, "name": n, "dtype": d, "shape": s} for n, d, s in variables],
            )
        if freed:
            # Only now: the new checkpoint may re-use some of the replaced one's blobs.
            replaced.extend(_drop_orphan_blobs(conn, freed))
        return cid

    try:
        cid = commit_files(store, staged, rows)
    except IntegrityError as exc:
        if not _is_step_conflict(exc):
            raise
        # PostgreSQL: another process committed the same run and step first. Our moved files
        # are unreferenced now; gc reclaims them.
        raise ConflictError(f"{run_name}@{step} was saved by another process at the same time") from None
    if replaced:
        release_unreferenced(store, replaced)
    log.info("saved %s@%d (%d files)", run_name, step, len(files))
    with store.read() as conn:
        return store._checkpoint_info(conn, S.Checkpoint.id == cid, None)


def _is_step_conflict(exc: IntegrityError) -> bool:
    """Whether ``exc`` is the (run, step) uniqueness of checkpoints, on either database."""
    text = str(exc.orig)
    return "uq_checkpoints_run_id_step" in text or "checkpoints.run_id, checkpoints.step" in text


def _check_prefix(prefix: str) -> None:
    if not prefix or "/" in prefix or "\\" in prefix or prefix.startswith(".") or "\0" in prefix:
        raise CkptstoreError(f"checkpoint prefix {prefix!r} must be a plain file name such as 'model.ckpt'")


# --------------------------------------------------------------------------- delete and retention


def _delete_rows(conn: Connection, ids: Sequence[int], *, drop_blobs: bool = True) -> Any:
    """Delete checkpoint rows (cascading to files and variables).

    Returns the blob digests freed (their rows dropped), or with ``drop_blobs=False`` the set of
    digests the deleted rows referenced, for the caller to drop once it has added its own rows.
    """
    digests = set(
        conn.execute(select(S.CheckpointFile.digest).where(S.CheckpointFile.checkpoint_id.in_(list(ids)))).scalars()
    )
    conn.execute(delete(S.Checkpoint).where(S.Checkpoint.id.in_(list(ids))))
    return _drop_orphan_blobs(conn, digests) if drop_blobs else digests


def delete_checkpoints(store: "Store", ids: Sequence[int]) -> list[int]:
    """Delete checkpoints by id, skipping any an alias points at; returns the ids deleted."""
    if not ids:
        return []
    for attempt in range(5):
        try:
            with store.write() as conn:
                pinned = set(conn.execute(select(S.Alias.checkpoint_id).where(S.Alias.checkpoint_id.in_(list(ids)))).scalars())
                doomed = [i for i in ids if i not in pinned]
                freed = _delete_rows(conn, doomed) if doomed else []
            break
        except IntegrityError:
            # PostgreSQL: a concurrent save started referencing a blob we were dropping. Its
            # commit makes the blob referenced again; recomputing sees that.
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    release_unreferenced(store, freed)
    return doomed


def apply_retention(store: "Store", run_id: int) -> list[int]:
    """Apply the run's retention rule; returns the steps deleted."""
    c = S.Checkpoint
    with store.read() as conn:
        data, run_created = conn.execute(select(S.Run.retention, S.Run.created_at).where(S.Run.id == run_id)).one()
        policy = Retention.from_json(data)
        if not policy.active:
            return []
        rows = conn.execute(select(c.id, c.step, c.created_at, c.state).where(c.run_id == run_id)).all()
        pinned = set(conn.execute(
            select(S.Alias.checkpoint_id).join(c, c.id == S.Alias.checkpoint_id).where(c.run_id == run_id)
        ).scalars())
        metric_at: dict[int, float] = {}
        if policy.keep_best is not None:
            steps = [r.step for r in rows]
            for i in range(0, len(steps), 500):
                for st, v in conn.execute(
                    select(S.Metric.step, S.Metric.value).where(
                        S.Metric.run_id == run_id, S.Metric.key == policy.keep_best.metric,
                        S.Metric.step.in_(steps[i : i + 500]),
                    )
                ):
                    if v is not None:
                        metric_at[st] = v
    from .store import _aware

    cands = [
        Candidate(id=r.id, step=r.step, created=_aware(r.created_at).timestamp(), kept=r.state == "kept", pinned=r.id in pinned)
        for r in rows
    ]
    p = plan(cands, policy, metric_at, since=_aware(run_created).timestamp())
    if p.newly_kept:
        with store.write() as conn:
            conn.execute(update(c).where(c.id.in_(p.newly_kept)).values(state="kept"))
    by_id = {r.id: r.step for r in rows}
    deleted = delete_checkpoints(store, p.delete)
    if deleted:
        log.info("retention deleted %d checkpoints of run %d", len(deleted), run_id)
    return sorted(by_id[i] for i in deleted)


# --------------------------------------------------------------------------- reading back


class _Placed:
    """A temporary directory of symlinks with a checkpoint's original file names."""

    def __init__(self, store: "Store", ck: CheckpointInfo, files: Sequence[FileInfo]) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="ckptstore-read-")
        self.dir = Path(self._tmp.name)
        for f in files:
            place_file(store.files.path_of(f.digest), self.dir / f.file_name, link="symlink")
        self.prefix = self.dir / ck.prefix

    def __enter__(self) -> "_Placed":
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()


def _meta_for(store: "Store", ck: CheckpointInfo) -> Optional[FileInfo]:
    """The checkpoint's own .meta, else that of the run's nearest earlier (then later) checkpoint.

    A ``Saver.save(..., write_meta_graph=False)`` checkpoint has the same graph as the run's
    other checkpoints; this is what users do by hand with ``import_meta_graph``.
    """
    own = [f for f in ck.files if f.role == "meta"]
    if own:
        return own[0]
    c, cf = S.Checkpoint, S.CheckpointFile
    with store.read() as conn:
        run_id = conn.execute(select(c.run_id).where(c.id == ck.id)).scalar_one()
        for cond, order in ((c.step <= ck.step, c.step.desc()), (c.step > ck.step, c.step.asc())):
            row = conn.execute(
                select(cf.role, cf.file_name, cf.size, cf.digest).join(c, c.id == cf.checkpoint_id)
                .where(c.run_id == run_id, cf.role == "meta", cond).order_by(order).limit(1)
            ).first()
            if row is not None:
                return FileInfo(*row)
    return None


def restore(
    store: "Store",
    ref: Union[str, Ref],
    target: Any,
    *,
    verify: Union[bool, str] = True,
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
    from . import tfio

    ck = store.checkpoint(ref)
    fmt = tfio.format_of(target)
    if fmt != ck.format:
        raise CkptstoreError(
            f"{ck.ref} is a {ck.format} checkpoint; restore it into a "
            + ("tf.compat.v1.Session" if ck.format == tfio.TF1 else "tf.train.Checkpoint or trackable")
        )
    files = [f for f in ck.files if f.role != "meta"]
    meta = None
    if fmt == tfio.TF1 and not target.graph.get_operations():
        meta = _meta_for(store, ck)
        if meta is not None:
            files.append(meta)
    check_files(store, files, verify)
    with _Placed(store, ck, [f for f in files if f is not meta]) as placed:
        if fmt == tfio.TF1:
            meta_path = None
            if meta is not None:
                meta_path = placed.dir / (ck.prefix + ".meta")
                place_file(store.files.path_of(meta.digest), meta_path, link="symlink")
            with store.read() as conn:
                saved = {
                    n: (d, s)
                    for n, d, s in conn.execute(
                        select(S.Variable.name, S.Variable.dtype, S.Variable.shape).where(S.Variable.checkpoint_id == ck.id)
                    )
                }
            tfio.restore_tf1(target, placed.prefix, meta_path=meta_path, saved=saved, var_list=var_list)
        else:
            tfio.restore_tf2(target, placed.prefix)
    return ck


def materialize(
    store: "Store",
    ref: Union[str, Ref],
    to_dir: Union[str, os.PathLike[str]],
    *,
    verify: Union[bool, str] = True,
    link: str = "hard",
    progress: Progress = None,
) -> Path:
    """Write a plain TensorFlow checkpoint directory that vanilla TF reads; returns the prefix.

    The files get their original names (hard links where the file system allows, else copies;
    ``link="copy"`` forces copies) next to a ``checkpoint`` state file naming this checkpoint,
    so ``tf.train.latest_checkpoint(to_dir)`` and ``Saver.restore`` accept the directory.
    ``progress(done, total)`` reports the bytes checked.
    """
    from . import tfio

    ck = store.checkpoint(ref)
    # (stored file, name in the directory). A TF1 checkpoint saved with write_meta_graph=False
    # gets the run's nearest meta graph under its own prefix, as restore() uses it, so that
    # import_meta_graph works on the directory too.
    placed = [(f, f.file_name) for f in ck.files]
    if ck.format == tfio.TF1 and not any(f.role == "meta" for f in ck.files):
        meta = _meta_for(store, ck)
        if meta is not None:
            placed.append((meta, ck.prefix + ".meta"))
    check_files(store, [f for f, _ in placed], verify, progress)
    out = Path(to_dir)
    todo = []
    for f, name in placed:  # every conflict before the first file is written
        dst, src = out / name, store.files.path_of(f.digest)
        if dst.exists() or dst.is_symlink():
            if dst.is_file() and os.path.samefile(dst, src):
                continue
            raise ConflictError(f"{dst} already exists; choose an empty directory")
        todo.append((src, dst))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CkptstoreError(f"cannot create {out}: {exc.strerror}") from None
    for src, dst in todo:
        if link == "copy":
            import shutil

            shutil.copyfile(src, dst)
        else:
            place_file(src, dst, link="hard")
    state = out / "checkpoint"
    tmp = out / ".checkpoint.ckptstore-tmp"
    tmp.write_text(
        f'model_checkpoint_path: "{ck.prefix}"\nall_model_checkpoint_paths: "{ck.prefix}"\n'
    )
    os.replace(tmp, state)
    return out / ck.prefix


def read_variable(store: "Store", ref: Union[str, Ref], name: str, *, verify: Union[bool, str] = True) -> "np.ndarray":
    """One saved tensor as a numpy array. ``name`` is the saved name; for TF2 checkpoints the
    ``/.ATTRIBUTES/VARIABLE_VALUE`` suffix may be left out."""
    from . import tfio

    ck = store.checkpoint(ref)
    names = {v.name for v in store.variables(ck.ref)}
    key = name if name in names else name + tfio.TF2_SUFFIX
    if key not in names:
        import difflib

        close = difflib.get_close_matches(name, sorted(names), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownRefError(f"{ck.ref} has no variable {name!r}{hint}")
    files = [f for f in ck.files if f.role != "meta"]
    check_files(store, files, verify)
    with _Placed(store, ck, files) as placed:
        return tfio.read_tensor(placed.prefix, key)


# --------------------------------------------------------------------------- import


def _prefixes_in(directory: Path) -> list[Path]:
    state = directory / "checkpoint"
    named: list[Path] = []
    if state.is_file():
        for line in state.read_text(errors="replace").splitlines():
            m = re.match(r'\s*(all_model_checkpoint_paths|model_checkpoint_path)\s*:\s*"(.*)"\s*$', line)
            if m:
                p = Path(m.group(2))
                p = p if p.is_absolute() else directory / p
                if not _complete(p) and _complete(directory / p.name):
                    # Saver writes absolute paths by default: the directory was moved or copied.
                    p = directory / p.name
                if p not in named:
                    named.append(p)
    named = [p for p in named if _complete(p)]
    candidates = named or [Path(str(p)[: -len(".index")]) for p in sorted(directory.glob("*.index"))]
    return [p for p in candidates if _complete(p)]


def _complete(prefix: Path) -> bool:
    if not Path(str(prefix) + ".index").is_file():
        return False
    shards = list(prefix.parent.glob(prefix.name + ".data-*-of-*"))
    if not shards:
        return False
    m = _DATA_RE.search(shards[0].name)
    return m is not None and len(shards) == int(m.group(2))


def import_checkpoints(
    store: "Store",
    directory: Union[str, os.PathLike[str]],
    *,
    run: str,
    progress: Progress = None,
) -> list[CheckpointInfo]:
    """Register checkpoints written by vanilla ``Saver`` or ``CheckpointManager``.

    Imports every prefix named in the directory's ``checkpoint`` state file, else every complete
    prefix (index plus all data shards) found. Steps come from the names (``model.ckpt-1000``,
    ``ckpt-7``). Files are copied, never moved: the directory is left as it was. Steps the run
    already has are skipped, so importing twice is harmless.
    """
    from . import tfio

    check_run_name(run)
    d = Path(directory)
    if not d.is_dir():
        raise NoCheckpointFoundError(f"{d} is not a directory")
    prefixes = _prefixes_in(d)
    if not prefixes:
        raise NoCheckpointFoundError(
            f"no TensorFlow checkpoint in {d} (no complete prefix: an .index with all its .data shards)"
        )
    steps = []
    for p in prefixes:
        st = tfio.step_from_prefix(p.name)
        if st is None:
            raise NoCheckpointFoundError(f"cannot tell the step of checkpoint {p.name!r} from its name (expected NAME-STEP)")
        try:
            tfio.list_variables(p)  # an unreadable index fails here, before the run exists
        except CorruptFileError as exc:
            raise NoCheckpointFoundError(f"cannot import from {d}: {exc}") from None
        steps.append(st)
    run_id = _ensure_run(store, run)
    with store.read() as conn:
        have = set(conn.execute(select(S.Checkpoint.step).where(S.Checkpoint.run_id == run_id)).scalars())
    out = []
    todo = sorted(((p, st) for p, st in zip(prefixes, steps) if st not in have), key=lambda t: t[1])
    for i, (p, st) in enumerate(todo):
        import shutil

        with store.files.staging(f"import-{run_id}") as sdir:
            for f in sorted(p.parent.glob(p.name + ".*")):
                if f.name.endswith(".tempstate") or not f.is_file():
                    continue
                try:
                    file_role(f.name)
                except CkptstoreError:
                    continue
                shutil.copyfile(f, sdir / f.name)
            staged_prefix = sdir / p.name
            fmt = tfio.TF2 if tfio.is_tf2_checkpoint(staged_prefix) else tfio.TF1
            out.append(_commit_checkpoint(store, run_id, run, st, fmt, staged_prefix))
        if progress:
            progress(i + 1, len(todo))
    return out


def _ensure_run(store: "Store", name: str) -> int:
    from .store import _upsert

    with store.write() as conn:
        conn.execute(
            _upsert(store.dialect, S.Run.__table__,
                    {"name": name, "status": "finished", "params": {}, "created_at": S.utcnow(), "ended_at": S.utcnow()},
                    ["name"], [])
        )
        return conn.execute(select(S.Run.id).where(S.Run.name == name)).scalar_one()


# --------------------------------------------------------------------------- verify and gc


def verify(store: "Store", run: Optional[str] = None, *, full: bool = True, progress: Progress = None) -> VerifyReport:
    """Re-digest stored files; report missing and corrupt ones with the checkpoints affected,
    plus (for the whole store) unexpected files and stale staging directories."""
    c, cf, r = S.Checkpoint, S.CheckpointFile, S.Run
    with store.read() as conn:
        q = select(c.id, r.name, c.step, cf.file_name, cf.digest, cf.size).join(c, c.id == cf.checkpoint_id).join(r, r.id == c.run_id)
        eq = select(S.Export.id, S.Export.digest, S.Export.size)
        if run is not None:
            rid = store._run_id(conn, run)
            q = q.where(c.run_id == rid)
            eq = eq.where(S.Export.run_id == rid)
        refs = conn.execute(q.order_by(r.name, c.step, cf.file_name)).all()
        exports = conn.execute(eq).all()
        known = set(conn.execute(select(S.Blob.digest)).scalars()) if run is None else set()
    by_digest: dict[str, int] = {}
    for row in refs:
        by_digest[row.digest] = row.size
    for row in exports:
        by_digest[row.digest] = row.size
    total = sum(by_digest.values())
    done = 0
    bad: dict[str, tuple[str, str]] = {}
    for digest, size in by_digest.items():
        try:
            store.files.check(digest, size, None, full=full, name=digest[:12])
        except CorruptFileError as exc:
            kind = "missing" if type(exc).__name__ == "MissingFileError" else "corrupt"
            bad[digest] = (kind, str(exc))
        done += size
        if progress:
            progress(done, total)
    if bad:
        # Retention or a delete in another process may have removed a checkpoint (and its
        # files) while we were hashing: that is not damage. Report only what still exists.
        with store.read() as conn:
            ck_ids = list({row.id for row in refs if row.digest in bad})
            alive_ck = set(conn.execute(select(c.id).where(c.id.in_(ck_ids))).scalars()) if ck_ids else set()
            ex_ids = [row.id for row in exports if row.digest in bad]
            alive_ex = set(conn.execute(select(S.Export.id).where(S.Export.id.in_(ex_ids))).scalars()) if ex_ids else set()
        refs = [row for row in refs if row.id in alive_ck or row.digest not in bad]
        exports = [row for row in exports if row.id in alive_ex or row.digest not in bad]
    problems: list[Problem] = []
    for row in refs:
        if row.digest in bad:
            kind, detail = bad[row.digest]
            problems.append(Problem(kind, str(store.files.path_of(row.digest)), f"{row.file_name}: {detail}", checkpoint=f"{row.name}@{row.step}"))
    for row in exports:
        if row.digest in bad:
            kind, detail = bad[row.digest]
            problems.append(Problem(kind, str(store.files.path_of(row.digest)), detail, export=row.id))
    if run is None:
        for digest, path in store.files.object_digests():
            if digest not in known:
                problems.append(Problem("unexpected", str(path), "stored file no checkpoint or export references (gc removes it)"))
        for p in store.files.stale_staging():
            problems.append(Problem("stale-staging", str(p), "left by an interrupted save (gc removes it)"))
    return VerifyReport(checked_files=len(by_digest), checked_bytes=total, problems=problems)


def gc(store: "Store", *, dry_run: bool = False, progress: Progress = None) -> GcReport:
    """Remove stored files nothing references and staging directories of dead processes.

    Runs under the file area's exclusive lock, so a save between its file move and its commit
    (which holds the lock shared) is waited for, never collected. Named versions are safe: their
    checkpoints and exports are referenced.
    """
    from .store import _drop_orphan_blobs

    files = store.files
    with files.deleting():
        removed_rows = 0
        if not dry_run:
            with store.write() as conn:
                all_digests = list(conn.execute(select(S.Blob.digest)).scalars())
                removed_rows = len(_drop_orphan_blobs(conn, all_digests))
        with store.read() as conn:
            referenced = set(conn.execute(select(S.Blob.digest)).scalars())
            if dry_run:
                used = set(conn.execute(select(S.CheckpointFile.digest)).scalars()) | set(
                    conn.execute(select(S.Export.digest)).scalars()
                )
                removed_rows = len(referenced - used)
                referenced = used
        orphans = [(d, p) for d, p in files.object_digests() if d not in referenced]
        nbytes = 0
        for _, p in orphans:
            try:
                nbytes += p.stat().st_size
            except FileNotFoundError:
                pass
        stale = files.stale_staging()
        if not dry_run:
            for i in range(0, len(orphans), 100):
                files.unlink_objects(d for d, _ in orphans[i : i + 100])
                if progress:
                    progress(min(i + 100, len(orphans)), len(orphans))
            files.remove_staging(stale)
    return GcReport(
        removed_objects=len(orphans), removed_bytes=nbytes, removed_staging=len(stale),
        removed_blob_rows=removed_rows, dry_run=dry_run,
    )

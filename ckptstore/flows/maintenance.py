"""Store-wide maintenance: ``verify`` (is everything committed still intact?) and ``gc``
(remove what nothing references).

``verify`` never stops at the first problem: every object is checked and every problem is
reported (missing, corrupt, unreadable, unexpected, stale staging), together with the
database's own integrity check. ``gc`` runs under the object area's exclusive lock, so a save
between its file move and its commit (which holds the lock shared) is waited for, never
collected; named versions are safe, their checkpoints and exports are referenced.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from ..errors import CorruptFileError, MissingFileError
from ..files import pieces
from ..metadata import pieces as MP
from ..metadata import queries as Q
from ..metadata import writes as W
from ..records import GcReport, Problem, VerifyReport
from .backend import Backend
from .object_gc import gc_shared

Progress = Callable[[int, int], None] | None


def verify(backend: Backend, run: str | None = None, *, full: bool = True, progress: Progress = None) -> VerifyReport:
    """Re-digest stored files; report missing, corrupt and unreadable ones with the checkpoints
    affected, plus (for the whole store) unexpected files, stale staging directories and what
    the database's integrity check finds."""
    area = backend.files
    with backend.db.read() as conn:
        rid = Q.run_id(conn, run) if run is not None else None
        refs, exports = Q.stored_files(conn, rid)
        known = Q.existing_blobs(conn) if run is None else set()
    problems: list[Problem] = []
    if run is None:
        with backend.db.read() as conn:
            for detail in Q.integrity_problems(conn):
                problems.append(Problem("database", backend.db.describe(), detail))
    by_digest: dict[str, int] = {}
    for row in refs:
        by_digest[row.digest] = row.size
    for row in exports:
        by_digest[row.digest] = row.size
    # A data file assembled from pieces is checked through the objects holding them, then
    # (full) rebuilt in memory against its whole-file digest.
    with backend.db.read() as conn:
        layouts = MP.extents(conn, list(by_digest))
        object_sizes = MP.blob_sizes(conn, {o for ext in layouts.values() for _, _, o, _ in ext})
    users: dict[str, list[str]] = {}
    for fd, ext in layouts.items():
        del by_digest[fd]
        for _, _, obj, _ in ext:
            users.setdefault(obj, [])
            if fd not in users[obj]:
                users[obj].append(fd)
            by_digest.setdefault(obj, object_sizes.get(obj, (0, None))[0])
    total = sum(by_digest.values())
    done = 0
    bad: dict[str, tuple[str, str]] = {}
    for digest, size in by_digest.items():
        try:
            area.check(digest, size, None, full=full, name=digest[:12])
        except MissingFileError as exc:
            bad[digest] = ("missing", str(exc))
        except CorruptFileError as exc:
            bad[digest] = ("corrupt", str(exc))
        except OSError as exc:  # permission denied, an I/O error: report it and go on
            bad[digest] = ("unreadable", f"stored file {digest[:12]} cannot be read: {exc.strerror or exc}")
        done += size
        if progress:
            progress(done, total)
    # A damaged copy in this host's cache was removed (the next read downloads the object
    # again) but would have been served: report it even though the stored object is intact.
    for digest, detail in area.damaged_copies():
        bad.setdefault(digest, ("corrupt", detail))
    for obj, files in users.items():
        if obj in bad:
            for fd in files:
                kind, detail = bad[obj]
                bad.setdefault(fd, (kind, f"piece {obj[:12]}: {detail}"))
    if full:
        sizes = {row.digest: row.size for row in refs}
        for fd, ext in layouts.items():
            if fd in bad:
                continue
            try:
                pieces.assemble(area, ext, fd, sizes[fd], None)
            except (CorruptFileError, OSError) as exc:
                bad[fd] = ("corrupt", str(exc))
    if bad:
        # Retention or a delete in another process may have removed a checkpoint (and its
        # files) while we were hashing: that is not damage. Report only what still exists.
        with backend.db.read() as conn:
            alive_ck = Q.existing_checkpoints(conn, {row.id for row in refs if row.digest in bad})
            alive_ex = Q.existing_exports(conn, [row.id for row in exports if row.digest in bad])
        refs = [row for row in refs if row.id in alive_ck or row.digest not in bad]
        exports = [row for row in exports if row.id in alive_ex or row.digest not in bad]
    for row in refs:
        if row.digest in bad:
            kind, detail = bad[row.digest]
            problems.append(Problem(kind, area.describe(row.digest), f"{row.file_name}: {detail}", checkpoint=f"{row.name}@{row.step}"))
    for row in exports:
        if row.digest in bad:
            kind, detail = bad[row.digest]
            problems.append(Problem(kind, area.describe(row.digest), detail, export=row.id))
    if run is None:
        for digest in area.digests():
            if digest not in known:
                problems.append(Problem("unexpected", area.describe(digest), "stored file no checkpoint or export references (gc removes it)"))
        for p in area.stale_staging():
            problems.append(Problem("stale-staging", p, "left by an interrupted save (gc removes it)"))
    return VerifyReport(checked_files=len(by_digest), checked_bytes=total, problems=problems)


def gc(backend: Backend, *, dry_run: bool = False, progress: Progress = None, grace: timedelta | None = None) -> GcReport:
    """Remove stored files nothing references and staging directories of dead processes.
    ``grace`` (shared areas only, e.g. S3): leave objects younger than that (default 1 hour)."""
    area = backend.files
    if area.shared_across_hosts:
        return gc_shared(backend, grace=grace, dry_run=dry_run, progress=progress)
    with area.deleting():
        removed_rows = 0
        if not dry_run:
            with backend.db.write() as conn:
                removed_rows = len(W.drop_orphan_blobs(conn, Q.existing_blobs(conn)))
        with backend.db.read() as conn:
            referenced = Q.existing_blobs(conn)
            if dry_run:
                used = Q.referenced_digests(conn)
                removed_rows = len(referenced - used)
                referenced = used
        orphans = [d for d in area.digests() if d not in referenced]
        nbytes = sum(area.size_of(d) or 0 for d in orphans)
        stale = area.stale_staging()
        if not dry_run:
            for i in range(0, len(orphans), 100):
                area.delete(orphans[i : i + 100])
                if progress:
                    progress(min(i + 100, len(orphans)), len(orphans))
            area.remove_staging(stale)
    return GcReport(
        removed_objects=len(orphans), removed_bytes=nbytes, removed_staging=len(stale),
        removed_blob_rows=removed_rows, dry_run=dry_run,
    )

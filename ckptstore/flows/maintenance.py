"""Store-wide maintenance: ``verify`` (is everything committed still intact?) and ``gc``
(remove what nothing references).

``verify`` never stops at the first problem: every object is checked and every problem is
reported (missing, corrupt, unreadable, unexpected, stale staging), together with the
database's own integrity check. ``gc`` runs under the object area's exclusive lock, so a save
between its file move and its commit (which holds the lock shared) is waited for, never
collected; aliases are safe, their checkpoints and exports are referenced.
"""

from __future__ import annotations

from datetime import timedelta

from ..metadata import queries as Q
from ..metadata import writes as W
from ..records import GcReport, VerifyReport
from .backend import Backend
from .checks import Progress, verify_files
from .object_gc import gc_shared


def verify(backend: Backend, run: str | None = None, *, full: bool = True, progress: Progress = None) -> VerifyReport:
    """Re-digest stored files; report missing, corrupt and unreadable ones with the checkpoints
    affected, plus (for the whole store) unexpected files, stale staging directories and what
    the database's integrity check finds (see :func:`.checks.verify_files`)."""
    return verify_files(backend.db.sql_read, backend.files, backend.db.describe(), run, full=full, progress=progress)


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

"""``gc`` for an object area shared across hosts (S3), where no lock spans the hosts.

An object is deleted only if (1) no ``blobs`` row names it, (2) no intent names it (a save on
some host is uploading or reusing it), and (3) it is older than the grace period. (1) and (2)
are read in the same transaction that records a ``delete`` claim on it, serialised with every
save's intent and commit transactions; a save that wants a claimed object waits until the claim
is gone. The argument is in docs/architecture.md ("Sharing one bucket between hosts").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from ..metadata import intents as I
from ..metadata import queries as Q
from ..metadata import writes as W
from ..records import GcReport
from .backend import Backend

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None] | None

#: Objects younger than this are left alone (``ckptstore gc --grace``).
DEFAULT_GRACE = timedelta(hours=1)
_BATCH = 1000


def gc_shared(backend: Backend, *, grace: timedelta | None = None, dry_run: bool = False, progress: Progress = None) -> GcReport:
    """Remove objects nothing references and that are older than ``grace``, and this host's
    stale staging directories."""
    grace = DEFAULT_GRACE if grace is None else grace
    area, db = backend.files, backend.db
    removed_rows = 0
    if not dry_run:
        with db.write() as conn:
            I.take_lock(conn)
            removed_rows = len(W.drop_orphan_blobs(conn, Q.existing_blobs(conn)))
            I.drop_stale(conn, I.now() - max(grace, I.UPLOAD_TTL))
    cutoff = I.now() - grace
    listed = {d: n for d, n, modified in area.listing() if modified < cutoff}
    candidates = list(listed)
    removed: list[str] = []
    for i in range(0, len(candidates), _BATCH):
        chunk = candidates[i : i + _BATCH]
        if dry_run:
            with db.read() as conn:
                # What gc would keep: referenced rows and intents (orphan rows it would drop).
                orphan_rows = Q.existing_blobs(conn, chunk) - Q.referenced_digests(conn)
                used = (I.in_use(conn, chunk) - orphan_rows) | I.pending_digests(conn, chunk)
            removed += [d for d in chunk if d not in used]
            continue
        started = time.monotonic()  # before the claim's own timestamp: the deadline errs early
        with db.write() as conn:
            I.take_lock(conn)
            used = I.in_use(conn, chunk)
            doomed = [d for d in chunk if d not in used]
            ids = I.add(conn, doomed, "delete") if doomed else []
        try:
            if doomed and time.monotonic() - started < I.DELETE_DEADLINE.total_seconds():
                area.delete(doomed)
                removed += doomed
        finally:
            if ids:
                with db.write() as conn:
                    I.remove(conn, ids)
        if progress:
            progress(min(i + _BATCH, len(candidates)), len(candidates))
    stale = area.stale_staging()
    if not dry_run:
        area.remove_staging(stale)
    if removed:
        log.info("gc removed %d objects from %s", len(removed), area.describe())
    return GcReport(
        removed_objects=len(removed), removed_bytes=sum(listed[d] for d in removed), removed_staging=len(stale),
        removed_blob_rows=removed_rows, dry_run=dry_run,
    )

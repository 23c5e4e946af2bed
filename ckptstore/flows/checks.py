"""``verify``'s look at a store and ``gc``'s "is there anything to collect?", over SQL text.

The store runs them on its database through SQLAlchemy (``maintenance.py``); the CLI runs the
very same functions on a SQLite store through ``sqlite3`` (``cli/maintenance.py`` with the quick
reader), so that ``verify`` and ``gc`` with nothing to do answer without importing SQLAlchemy
(issue 26: every command that does not load TensorFlow in 0.3 s). Nothing here imports it: the
reads are :mod:`~ckptstore.metadata.file_reads`, the files an :class:`ObjectArea`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..errors import CorruptFileError, MissingFileError
from ..files import pieces
from ..files.area import ObjectArea
from ..metadata import file_reads as F
from ..metadata import reads
from ..metadata.file_reads import Snapshot
from ..metadata.reads import Sql
from ..records import Problem, VerifyReport

Progress = Callable[[int, int], None] | None

__all__ = ["Collectable", "Progress", "collectable", "verify_files"]


def verify_files(
    snapshot: Snapshot, area: ObjectArea, database: str, run: str | None = None, *, full: bool = True,
    progress: Progress = None,
) -> VerifyReport:
    """Re-digest stored files; report missing, corrupt and unreadable ones with the checkpoints
    affected, plus (for the whole store) unexpected files, stale staging directories and what
    the database's integrity check finds (``database`` names it in the report). ``snapshot()``
    opens one read of the store's database."""
    with snapshot() as sql:
        rid = reads.run_id(sql, run) if run is not None else None
        refs, exports = F.stored_files(sql, rid)
        known = F.existing_blobs(sql) if run is None else set()
    problems: list[Problem] = []
    if run is None:
        with snapshot() as sql:
            for detail in F.integrity_problems(sql):
                problems.append(Problem("database", database, detail))
    by_digest: dict[str, int] = {}
    for row in refs:
        by_digest[row.digest] = row.size
    for row in exports:
        by_digest[row.digest] = row.size
    # A data file assembled from pieces is checked through the objects holding them, then
    # (full) rebuilt in memory against its whole-file digest.
    with snapshot() as sql:
        layouts = F.extents(sql, list(by_digest))
        object_sizes = F.blob_sizes(sql, {o for ext in layouts.values() for _, _, o, _ in ext})
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
        with snapshot() as sql:
            alive_ck = F.existing_checkpoints(sql, {row.id for row in refs if row.digest in bad})
            alive_ex = F.existing_exports(sql, [row.id for row in exports if row.digest in bad])
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


class Collectable(NamedTuple):
    """What ``gc`` would remove from a local area: ``blobs`` rows nothing references (before
    the rows that only they kept alive), stored objects no row records, staging left behind."""

    blob_rows: set[str]
    objects: list[str]
    staging: list[str]
    #: Stored objects looked at.
    scanned: int

    def __bool__(self) -> bool:
        return bool(self.blob_rows or self.objects or self.staging)


def collectable(sql: Sql, area: ObjectArea) -> Collectable:
    """What ``gc`` would remove now (read in one snapshot, without the area's lock: a save
    between its file move and its commit may show here as an object to collect; ``gc`` itself
    decides under the lock)."""
    known = F.existing_blobs(sql)
    used = F.referenced_digests(sql)
    stored = list(area.digests())
    return Collectable(known - used, [d for d in stored if d not in known], area.stale_staging(), len(stored))

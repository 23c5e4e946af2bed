"""The commit protocol: files and metadata land together, or neither does.

* :func:`commit_files` puts digested staging files into the object area and runs the caller's
  inserts in **one** database transaction together with the ``blobs`` rows. That transaction is
  the commit point of a save or a freeze: before it nothing is visible (every read starts from a
  committed row), after it everything is. A crash before it leaves at most a staging directory
  and objects no row names; ``gc`` removes both.
* :func:`release_unreferenced` deletes objects whose ``blobs`` row is gone, under the area's
  exclusive lock, re-checking the database first, so a concurrent save that re-uses the
  content wins. Deletion is the commit protocol run backwards: rows first, then objects.
* :func:`check_files` verifies stored files before they are read.

The ``faults`` points (``staged`` is the caller's, then ``moving``, ``moved``, ``committed``) let
the crash tests kill a save at each step of this protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Optional, TypeVar, Union

from sqlalchemy import Connection

from ..errors import CorruptFileError, MissingFileError, ObjectStoreError
from ..faults import fault
from ..metadata import intents as I
from ..metadata import queries as Q
from ..metadata import writes as W
from ..metadata.engine import Database
from ..records import FileInfo
from .area import ObjectArea, StoredFile
from .digest import digest_file

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Optional[Callable[[int, int], None]]


def digest_staged(paths: Sequence[Path]) -> list[tuple[Path, str, int]]:
    """Digest staging files (before taking any lock: hashing is the slow part)."""
    return [(p, *digest_file(p)) for p in paths]


def commit_files(
    db: Database,
    area: ObjectArea,
    staged: Sequence[tuple[Path, str, int]],
    write_rows: Callable[[Connection, list[StoredFile]], T],
) -> T:
    """Put ``staged`` files into the area and commit them with the caller's rows, atomically."""
    if area.shared_across_hosts:
        return commit_shared(db, area, staged, write_rows)
    with area.writing():
        with db.read() as conn:
            recorded = Q.blob_signatures(conn, [d for _, d, _ in staged])
        stored = []
        for p, d, n in staged:
            stored.append(area.put(p, d, n, recorded.get(d)))
            fault("moving")
        fault("moved")
        with db.write() as conn:
            for sf in {s.digest: s for s in stored}.values():
                W.record_blob(conn, sf.digest, sf.size, sf.stat_sig)
            result = write_rows(conn, stored)
        fault("committed")
        return result


class _Busy(Exception):
    """Rolls back an intent transaction that found a deletion in progress."""


def record_uploads(db: Database, digests: Sequence[str]) -> list[int]:
    """Record that this process is about to upload (or reuse) ``digests``, after waiting for any
    deletion of one of them that is in progress (see docs/architecture.md)."""
    delay = 0.05
    while True:
        try:
            with db.write() as conn:
                I.take_lock(conn)
                if I.deleting_now(conn, digests, I.DELETE_WINDOW):
                    raise _Busy
                return I.add(conn, digests, "upload")
        except _Busy:
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def forget_uploads(db: Database, ids: Sequence[int]) -> None:
    """Best effort after a failed save: gc would drop the intents once their owner is gone."""
    try:
        with db.write() as conn:
            I.remove(conn, ids)
    except Exception as exc:  # noqa: BLE001 - the save's own error is the one to report
        log.debug("could not drop upload intents: %s", exc)


def commit_shared(
    db: Database,
    area: ObjectArea,
    staged: Sequence[tuple[Path, str, int]],
    write_rows: Callable[[Connection, list[StoredFile]], T],
) -> T:
    """:func:`commit_files` for an area shared across hosts (S3): intents instead of a lock.

    1. One transaction records an ``upload`` intent per object (after any ``delete`` claim on
       one of them is over). 2. The objects are uploaded, or found present. 3. The commit
       transaction drops the intents and inserts the rows; if ``gc`` dropped the intents
       meanwhile (their owner looked dead), nothing is committed.
    """
    digests = list(dict.fromkeys(d for _, d, _ in staged))
    ids = record_uploads(db, digests)
    try:
        with db.read() as conn:
            recorded = Q.blob_signatures(conn, digests)
        stored = area.put_many(staged, recorded, after_each=lambda: fault("moving"))
        fault("moved")
        with db.write() as conn:
            I.take_lock(conn)
            if I.remove(conn, ids) != len(ids):
                raise ObjectStoreError(
                    "this save's uploads outlived their record (gc took its process for dead); "
                    "nothing was committed: save again"
                )
            for sf in {s.digest: s for s in stored}.values():
                W.record_blob(conn, sf.digest, sf.size, sf.stat_sig)
            result = write_rows(conn, stored)
    except BaseException:
        forget_uploads(db, ids)
        raise
    fault("committed")
    return result


def release_unreferenced(db: Database, area: Optional[ObjectArea], digests: Iterable[str]) -> int:
    """Delete the objects among ``digests`` that no ``blobs`` row names any more."""
    digests = list(dict.fromkeys(digests))
    # In an area shared across hosts only gc deletes, past its grace period (see commit_shared).
    if not digests or area is None or area.shared_across_hosts:
        return 0
    with area.deleting():
        with db.read() as conn:
            alive = Q.existing_blobs(conn, digests)
        n = area.delete(d for d in digests if d not in alive)
    if n:
        log.info("removed %d stored files no longer referenced", n)
    return n


def check_files(
    db: Database,
    area: ObjectArea,
    files: Sequence[FileInfo],
    verify: Union[bool, str],
    progress: Progress = None,
) -> None:
    """Raise :class:`CorruptFileError` / :class:`MissingFileError` naming the first bad file.

    ``verify``: ``True``/``"auto"`` trusts an unchanged stat signature (see ``schema.Blob``),
    ``"full"`` always re-hashes, ``False`` only checks presence and size. ``progress(done,
    total)`` is called in bytes after each file.
    """
    if verify is False:
        for f in files:
            size = area.size_of(f.digest)
            if size is None:
                raise MissingFileError(f"stored file {f.file_name} ({f.digest[:12]}) is missing")
            if size != f.size:
                raise CorruptFileError(f"stored file {f.file_name} ({f.digest[:12]}) is {size} bytes, expected {f.size}")
        return
    full = verify == "full"
    with db.read() as conn:
        sigs = Q.blob_signatures(conn, [f.digest for f in files])
    refreshed = {}
    total = sum(f.size for f in files)
    done = 0
    for f in files:
        new_sig = area.check(f.digest, f.size, sigs.get(f.digest), full=full, name=f.file_name)
        if new_sig is not None:
            refreshed[f.digest] = new_sig
        done += f.size
        if progress is not None:
            progress(done, total)
    if refreshed:
        _record_sigs(db, refreshed)


def _record_sigs(db: Database, sigs: dict[str, str]) -> None:
    """Remember signatures of files just re-hashed intact; best effort (the store may be read-only)."""
    try:
        with db.write() as conn:
            W.set_blob_signatures(conn, sigs)
    except Exception as exc:  # noqa: BLE001 - an optimisation only
        log.debug("could not record stat signatures: %s", exc)

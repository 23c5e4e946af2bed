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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Optional, TypeVar, Union

from sqlalchemy import Connection

from ..errors import CorruptFileError, MissingFileError
from ..faults import fault
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


def release_unreferenced(db: Database, area: Optional[ObjectArea], digests: Iterable[str]) -> int:
    """Delete the objects among ``digests`` that no ``blobs`` row names any more."""
    digests = list(dict.fromkeys(digests))
    if not digests or area is None:
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

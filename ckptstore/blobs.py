"""Blobs in the database and in the file area, kept in step.

* :func:`commit_files` moves digested staging files into the object area and runs the caller's
  inserts in **one** transaction together with the ``blobs`` rows. That transaction is the
  commit point of a save or a freeze (see ``files``).
* :func:`release_unreferenced` unlinks objects whose ``blobs`` row is gone, under the exclusive
  lock, re-checking the database first, so a concurrent save that re-uses the content wins.
* :func:`check_files` verifies stored files before they are read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Optional, TypeVar, Union

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import OperationalError

from . import schema as S
from ._fault import fault
from .files import StoredFile, digest_file
from .records import FileInfo

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


def digest_staged(paths: Sequence[Path]) -> list[tuple[Path, str, int]]:
    """Digest staging files (before taking any lock: hashing is the slow part)."""
    return [(p, *digest_file(p)) for p in paths]


def commit_files(
    store: "Store",
    staged: Sequence[tuple[Path, str, int]],
    write_rows: Callable[[Connection, list[StoredFile]], T],
) -> T:
    """Move ``staged`` files into place and commit them with the caller's rows, atomically."""
    files = store.files
    with files.writing():
        with store.read() as conn:
            recorded = dict(
                conn.execute(
                    select(S.Blob.digest, S.Blob.stat_sig).where(S.Blob.digest.in_([d for _, d, _ in staged]))
                ).all()
            )
        stored = []
        for p, d, n in staged:
            stored.append(files.ingest(p, d, n, recorded.get(d)))
            fault("moving")
        fault("moved")
        with store.write() as conn:
            if stored:
                from .store import _upsert

                for sf in {s.digest: s for s in stored}.values():
                    # DO UPDATE, not DO NOTHING: on PostgreSQL it locks an existing row, so a
                    # concurrent deletion of that blob waits for this commit and then fails its
                    # foreign-key check (and retries) instead of pulling the row from under the
                    # checkpoint_files rows inserted below. The signature is the one just read.
                    conn.execute(
                        _upsert(
                            store.dialect,
                            S.Blob.__table__,
                            {"digest": sf.digest, "size": sf.size, "stat_sig": sf.stat_sig, "created_at": S.utcnow()},
                            ["digest"],
                            ["stat_sig"],
                        )
                    )
            result = write_rows(conn, stored)
        fault("committed")
        return result


def release_unreferenced(store: "Store", digests: Iterable[str]) -> int:
    """Unlink the objects among ``digests`` that no ``blobs`` row names any more."""
    digests = list(dict.fromkeys(digests))
    if not digests or store.root is None:
        return 0
    files = store.files
    with files.deleting():
        with store.read() as conn:
            alive: set[str] = set()
            for i in range(0, len(digests), 500):
                chunk = digests[i : i + 500]
                alive.update(conn.execute(select(S.Blob.digest).where(S.Blob.digest.in_(chunk))).scalars())
        n = files.unlink_objects(d for d in digests if d not in alive)
    if n:
        log.info("removed %d stored files no longer referenced", n)
    return n


def check_files(
    store: "Store",
    files: Sequence[FileInfo],
    verify: Union[bool, str],
    progress: Optional[Callable[[int, int], None]] = None,
) -> None:
    """Raise :class:`CorruptFileError` / :class:`MissingFileError` naming the first bad file.

    ``verify``: ``True``/``"auto"`` trusts an unchanged stat signature (see ``schema.Blob``),
    ``"full"`` always re-hashes, ``False`` only checks presence and size. ``progress(done,
    total)`` is called in bytes after each file.
    """
    if verify is False:
        for f in files:
            _presence(store, f)
        return
    full = verify == "full"
    digests = [f.digest for f in files]
    with store.read() as conn:
        sigs = dict(conn.execute(select(S.Blob.digest, S.Blob.stat_sig).where(S.Blob.digest.in_(digests))).all())
    refreshed = {}
    total = sum(f.size for f in files)
    done = 0
    for f in files:
        new_sig = store.files.check(f.digest, f.size, sigs.get(f.digest), full=full, name=f.file_name)
        if new_sig is not None:
            refreshed[f.digest] = new_sig
        done += f.size
        if progress is not None:
            progress(done, total)
    if refreshed:
        _record_sigs(store, refreshed)


def _presence(store: "Store", f: FileInfo) -> None:
    import os

    from .errors import CorruptFileError, MissingFileError

    path = store.files.path_of(f.digest)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise MissingFileError(f"stored file {f.file_name} ({f.digest[:12]}) is missing") from None
    if size != f.size:
        raise CorruptFileError(f"stored file {f.file_name} ({f.digest[:12]}) is {size} bytes, expected {f.size}")


def _record_sigs(store: "Store", sigs: dict[str, str]) -> None:
    """Remember signatures of files just re-hashed intact; best effort (the store may be read-only)."""
    try:
        with store.write() as conn:
            for digest, sig in sigs.items():
                conn.execute(update(S.Blob).where(S.Blob.digest == digest).values(stat_sig=sig))
    except (OperationalError, Exception) as exc:  # noqa: BLE001 - an optimisation only
        log.debug("could not record stat signatures: %s", exc)

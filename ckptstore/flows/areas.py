"""Which object area a store uses: a local directory, or a root another backend serves
(``s3://bucket/prefix``, ...), found by its URL scheme in ``files.registry`` and recorded in the
store's database (so that every host finds it from the database URL alone)."""

from __future__ import annotations

import os
from typing import Any

from ..errors import StoreConfigError
from ..files.area import ObjectArea
from ..files.registry import LOCAL, open_area, scheme_of
from ..location import redact
from ..metadata import intents as I
from ..metadata.engine import Database


def recorded_root(db: Database) -> str | None:
    """The root the store's database records, or None (also for a database without the
    settings table: not yet upgraded, or opened as it is by ``ckptstore db``)."""
    try:
        with db.read() as conn:
            return I.get_setting(conn, I.ROOT_KEY) or None
    except Exception:  # noqa: BLE001 - no settings table: nothing recorded
        return None


def record_root(db: Database, url: str | None) -> None:
    """Record ``url`` as the store's root (None: its files are local again)."""
    with db.write() as conn:
        I.set_setting(conn, I.ROOT_KEY, url or "")


def select_area(
    db: Database,
    root: str | os.PathLike[str] | None,
    default_root: str | os.PathLike[str] | None,
    *,
    fsync: bool = False,
    record: bool = True,
) -> tuple[ObjectArea | None, Any]:
    """(area, ``area.location``) for a store: ``root`` given by the user
    (``--root``/``$CKPTSTORE_ROOT``), else the root the database records, else ``default_root``
    (the directory of a SQLite store). A root of a registered scheme other than ``file`` given
    for the first time is recorded when ``record``."""
    recorded = recorded_root(db)
    if root is not None and scheme_of(root) != LOCAL:
        area = open_area(root, fsync=fsync)
        if recorded and recorded != area.url:
            area.close()
            raise StoreConfigError(
                f"this store's files are in {redact(recorded)}, not {redact(area.url)} ('ckptstore root copy' moves them)"
            )
        if not recorded and record:
            record_root(db, area.url)
        return area, area.location
    if recorded:
        if root is not None:
            raise StoreConfigError(f"this store's files are in {redact(recorded)}, not in {redact(os.fspath(root))}")
        area = open_area(recorded, fsync=fsync)
        return area, area.location
    where = root if root is not None else default_root
    if where is None:
        return None, None
    area = open_area(os.fspath(where), fsync=fsync)
    return area, area.location


def copy_root(db: Database, source: ObjectArea, to: object, progress: Any = None) -> dict[str, int]:
    """Copy every stored file of a local area into the root ``to`` (its URL, or anything whose
    ``str`` is one, such as a ``BucketRoot``), check each copy by re-hashing the target's bytes,
    and only then record ``to`` as the store's root.

    Resumable: objects already there with the right size are not sent again (but are checked).
    Saves that commit meanwhile into the local area are picked up by a second pass; the switch
    itself is one transaction. Returns counts: copied, present, bytes."""
    target = open_area(str(to))
    try:
        if source.url == target.url:
            return {"copied": 0, "present": 0, "bytes": 0}  # already done (and switched)
        if scheme_of(source.url) != LOCAL:
            raise StoreConfigError(f"this store's files are already in {redact(source.describe())}; root copy moves a local file area")
        if scheme_of(target.url) == LOCAL:
            raise StoreConfigError(f"{redact(str(to))!r}: root copy moves files to a shared root (s3://...), not a directory")
        done: set[str] = set()
        counts = {"copied": 0, "present": 0, "bytes": 0}
        for _ in range(3):  # until a pass finds nothing new
            with db.read() as conn:
                sizes = _blob_sizes(conn)
            todo = {d: n for d, n in sizes.items() if d not in done}
            if not todo:
                break
            there = {d: n for d, n, _ in target.listing()}
            total, sent = sum(todo.values()), 0
            for d, n in todo.items():
                if there.get(d) != n:
                    if not source.exists(d):
                        raise StoreConfigError(f"stored file {d[:12]} is missing from {source.describe()}: run 'ckptstore verify' first")
                    target.copy_in(source.local_path(d), d)
                    counts["copied"] += 1
                else:
                    counts["present"] += 1
                target.check(d, n, None, full=True, name=d[:12])
                done.add(d)
                counts["bytes"] += n
                sent += n
                if progress:
                    progress(sent, total)
        record_root(db, target.url)
        return counts
    finally:
        target.close()


def _blob_sizes(conn: Any) -> dict[str, int]:
    from sqlalchemy import select

    from ..metadata import schema as S

    return {d: int(n) for d, n in conn.execute(select(S.blobs.c.digest, S.blobs.c.size))}

"""Which object area a store uses: a local directory, or an ``s3://`` bucket recorded in the
store's database (so that every host finds it from the database URL alone)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import StoreConfigError
from ..files.area import ObjectArea
from ..files.local import LocalObjectArea
from ..location import BucketRoot, parse_bucket_root, redact
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


def record_root(db: Database, root: BucketRoot | None) -> None:
    with db.write() as conn:
        I.set_setting(conn, I.ROOT_KEY, str(root) if root is not None else "")


def select_area(
    db: Database,
    root: str | os.PathLike[str] | None,
    default_root: str | os.PathLike[str] | None,
    *,
    fsync: bool = False,
    record: bool = True,
) -> tuple[ObjectArea | None, Any]:
    """(area, where) for a store: ``root`` given by the user (``--root``/``$CKPTSTORE_ROOT``),
    else the ``s3://`` root the database records, else ``default_root`` (the directory of a
    SQLite store). A bucket root given for the first time is recorded when ``record``."""
    from ..files.s3 import S3ObjectArea

    bucket = parse_bucket_root(root)
    recorded = recorded_root(db)
    if bucket is not None:
        if recorded and recorded != str(bucket):
            raise StoreConfigError(
                f"this store's files are in {recorded}, not {bucket} ('ckptstore root copy' moves them)"
            )
        if not recorded and record:
            record_root(db, bucket)
        return S3ObjectArea(bucket), bucket
    if recorded:
        rb = parse_bucket_root(recorded)
        if root is not None and rb is not None:
            raise StoreConfigError(f"this store's files are in {rb}, not in {redact(os.fspath(root))}")
        return S3ObjectArea(rb), rb
    where = root if root is not None else default_root
    if where is None:
        return None, None
    path = Path(where)
    return LocalObjectArea(path, fsync=fsync), path


def copy_root(db: Database, source: ObjectArea, to: BucketRoot, progress: Any = None) -> dict[str, int]:
    """Copy every stored file of a local area into the bucket ``to``, check each copy by
    re-hashing the bucket's bytes, and only then record ``to`` as the store's root.

    Resumable: objects already in the bucket with the right size are not sent again (but are
    checked). Saves that commit meanwhile into the local area are picked up by a second pass;
    the switch itself is one transaction. Returns counts: copied, present, bytes."""
    from ..files.s3 import S3ObjectArea
    if isinstance(source, S3ObjectArea) and source.root == to:
        return {"copied": 0, "present": 0, "bytes": 0}  # already done (and switched)
    if not isinstance(source, LocalObjectArea):
        raise StoreConfigError(f"this store's files are already in {source.describe()}; root copy moves a local file area")
    target = S3ObjectArea(to)
    try:
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
                    path = source.path_of(d)
                    if not path.exists():
                        raise StoreConfigError(f"stored file {d[:12]} is missing from {source.describe()}: run 'ckptstore verify' first")
                    target.upload_existing(path, d)
                    counts["copied"] += 1
                else:
                    counts["present"] += 1
                target.check(d, n, None, full=True, name=d[:12])
                done.add(d)
                counts["bytes"] += n
                sent += n
                if progress:
                    progress(sent, total)
        record_root(db, to)
        return counts
    finally:
        target.close()


def _blob_sizes(conn: Any) -> dict[str, int]:
    from sqlalchemy import select

    from ..metadata import schema as S

    return {d: int(n) for d, n in conn.execute(select(S.blobs.c.digest, S.blobs.c.size))}

"""Which object area a store uses: a local directory, or an ``s3://`` bucket recorded in the
store's database (so that every host finds it from the database URL alone)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..errors import StoreConfigError
from ..files.area import ObjectArea
from ..files.local import LocalObjectArea
from ..location import BucketRoot, parse_bucket_root, redact
from ..metadata import intents as I
from ..metadata.engine import Database


def recorded_root(db: Database) -> Optional[str]:
    """The root the store's database records, or None (also for a database without the
    settings table: not yet upgraded, or opened as it is by ``ckptstore db``)."""
    try:
        with db.read() as conn:
            return I.get_setting(conn, I.ROOT_KEY) or None
    except Exception:  # noqa: BLE001 - no settings table: nothing recorded
        return None


def record_root(db: Database, root: Optional[BucketRoot]) -> None:
    with db.write() as conn:
        I.set_setting(conn, I.ROOT_KEY, str(root) if root is not None else "")


def select_area(
    db: Database,
    root: Optional[str | os.PathLike[str]],
    default_root: Optional[str | os.PathLike[str]],
    *,
    fsync: bool = False,
    record: bool = True,
) -> tuple[Optional[ObjectArea], Any]:
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

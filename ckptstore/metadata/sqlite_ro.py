"""Opening a SQLite store so that nothing on disk changes (standard library only).

``mode=ro`` alone is not enough: on a WAL database whose ``-wal``/``-shm`` files are gone (every
writer closed cleanly), a read-only connection creates them and cannot remove them. Then, and
only then (no ``-wal``, ``-shm`` or ``-journal`` at all), the main file holds the whole
database and is opened ``immutable``, which creates nothing. The read-only engine does not pool
connections, so the choice is made again for every transaction. A writer that starts *and* checkpoints while such a read runs may make it fail;
running it again then reads normally. Used by the read-only engine and by the quick path.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from urllib.parse import quote

from ..constants import HEAD_REVISION
from ..location import sqlite_file_of

#: How every connection of ours decodes SQLite text: as UTF-8, with bytes that are not valid
#: UTF-8 (a name written by another tool) shown as ``\xff`` escapes instead of failing the
#: whole query (sqlite3's default raises, and one such run name broke ``runs list``). C-level,
#: so a query returning many strings pays no Python call per value.
TEXT_FACTORY = functools.partial(str, encoding="utf-8", errors="backslashreplace")


def connect_readonly(path: str, timeout: float) -> sqlite3.Connection:
    # A file: URI, so its path is percent-encoded: '?' or '#' in a name stay part of the name.
    uri = "file:" + quote(os.path.abspath(path))
    if any(os.path.exists(path + suffix) for suffix in ("-wal", "-shm", "-journal")):
        # A writer is (or was, and crashed) at work: its WAL or journal holds committed data
        # that an immutable open would ignore.
        uri += "?mode=ro"
    else:
        uri += "?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    conn.text_factory = TEXT_FACTORY
    return conn


def open_current(uri: str | os.PathLike[str] | None) -> sqlite3.Connection | None:
    """A read-only connection to the SQLite store at ``uri`` at the current schema, or None
    (not a SQLite store, no such file, another schema revision, any database error)."""
    path = sqlite_file_of(uri)
    if path is None or not path.is_file():
        return None
    try:
        con = connect_readonly(str(path), 30)  # a query never creates or changes a file
    except sqlite3.Error:
        return None
    try:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        con.close()
        return None
    if row is None or row[0] != HEAD_REVISION:
        con.close()
        return None
    return con

"""How every writing SQLite connection of a store is set up (standard library only).

The store's engine (``engine.py``) and the CLI's quick writer (``quick_writer.py``) both prepare
their ``sqlite3`` connections here, so that a write made without SQLAlchemy runs under the very
settings of one made with it: WAL, a long busy timeout, foreign keys on, autocommit at the driver
(transactions are opened explicitly, ``BEGIN IMMEDIATE`` for writes).
"""

from __future__ import annotations

import sqlite3

from .sqlite_ro import TEXT_FACTORY

#: How long a writer waits for another's write lock: training processes logging into one file
#: take turns, and a slow commit of a big checkpoint's metadata must not fail the others.
SQLITE_BUSY_TIMEOUT_S = 120.0


def prepare_writer(con: sqlite3.Connection) -> None:
    """Settings of a connection that writes (run once per new connection)."""
    # Autocommit at the driver level: transactions are opened by whoever writes.
    con.isolation_level = None
    con.text_factory = TEXT_FACTORY
    cur = con.cursor()
    cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cur.execute("PRAGMA foreign_keys = ON")
    try:
        mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()
    except sqlite3.OperationalError:
        mode = None  # read-only file or directory: reads still work in the current mode
    if mode and mode[0] == "wal":
        # Durable at each checkpoint of the WAL, and much faster than FULL for many small commits.
        cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()

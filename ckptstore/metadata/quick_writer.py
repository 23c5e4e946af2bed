"""The CLI's writes on a SQLite store through the standard library's ``sqlite3``.

``alias``/``unalias`` and ``runs delete`` must answer in under 0.3 s (issue 26), and importing SQLAlchemy alone
costs ~0.12-0.18 s. ``QuickWriter`` runs the very statements the store runs
(:mod:`.alias_writes`, :mod:`.deletes`: SQL text for both drivers) on a connection set up as the store's engine
sets up its own (:mod:`.sqlite_rw`), in a ``BEGIN IMMEDIATE`` transaction as the store's writes
are. It opens only a SQLite store at this ckptstore's schema head; anything it would have to
refuse or word differently (an unknown REF on a store named by URL, any database error) rolls
back and raises :class:`~.quick_reader.Fallback`: the CLI then asks the store, which words the
error as it always does. Nothing is written unless the whole change commits.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..constants import HEAD_REVISION
from ..errors import CkptstoreError
from ..location import sqlite_file_of
from ..names import check_alias_name, parse_ref
from ..records import AliasInfo
from . import alias_writes, reads
from .quick_reader import Fallback, QuickConnection
from .sqlite_rw import SQLITE_BUSY_TIMEOUT_S, prepare_writer


class QuickWriter(QuickConnection):
    """One writing connection to a SQLite store at the current schema; each method is one
    transaction, as the :class:`~ckptstore.store.Store` method of the same name."""

    def __init__(self, con: sqlite3.Connection, uri: str | os.PathLike[str] | None) -> None:
        super().__init__(con, uri)
        self.sql = reads.Sql(self.named_rows, "?", self.where, self._execute, "sqlite")

    @classmethod
    def open(cls, uri: str | os.PathLike[str] | None) -> QuickWriter | None:
        """A writer for the store at ``uri``, or None (not a SQLite store at this schema head,
        no such file: the store creates, upgrades or refuses it)."""
        path = sqlite_file_of(uri)
        if path is None or not path.is_file():
            return None
        try:
            con = sqlite3.connect(str(path), timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False)
        except sqlite3.Error:
            return None
        try:
            prepare_writer(con)
            if not _at_head(con):
                con.close()
                return None
        except sqlite3.Error:
            con.close()
            return None
        return cls(con, uri)

    def _execute(self, text: str, args: list[Any]) -> None:
        self.con.execute(text, args)

    @property
    def root(self) -> Path:
        """A directory store's file area when no shared root is recorded (as ``Store.root``);
        anything else is the store's to open (``Fallback``)."""
        if self.directory is None:
            raise Fallback
        with self.sql_read() as sql:
            if reads.setting(sql, "root"):
                raise Fallback
        return self.directory

    @contextlib.contextmanager
    def sql_read(self) -> Iterator[reads.Sql]:
        """One read of the database, a snapshot of its own (as ``Database.sql_read``)."""
        try:
            self.con.execute("BEGIN")
        except sqlite3.Error:
            raise Fallback from None
        try:
            yield self.sql
        except sqlite3.Error:
            self.con.execute("ROLLBACK")
            raise Fallback from None
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    @contextlib.contextmanager
    def sql_write(self) -> Iterator[reads.Sql]:
        """One write transaction (as ``Database.sql_write``); on any error nothing of it stays."""
        try:
            self.con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            raise Fallback from None
        try:
            if not _at_head(self.con):  # upgraded or replaced since it was opened
                raise Fallback
            yield self.sql
            self.con.execute("COMMIT")
        except sqlite3.Error:
            self.con.execute("ROLLBACK")
            raise Fallback from None
        except CkptstoreError:
            self.con.execute("ROLLBACK")
            if self.words_errors:
                raise
            raise Fallback from None
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def set_alias(self, name: str, ref: str, *, message: str | None = None) -> AliasInfo:
        check_alias_name(name)
        parsed = parse_ref(ref)
        with self.sql_write() as sql:
            return alias_writes.set_alias(sql, name, parsed, message, datetime.now(timezone.utc))

    def remove_alias(self, name: str, *, message: str | None = None) -> str:
        with self.sql_write() as sql:
            return alias_writes.remove_alias(sql, name, message, datetime.now(timezone.utc))


def _at_head(con: sqlite3.Connection) -> bool:
    row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    return row is not None and row[0] == HEAD_REVISION

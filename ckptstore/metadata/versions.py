"""Schema versions: Alembic revisions, checked cheaply on open and upgraded under a lock.

Opening a store compares the database's revision with :data:`HEAD_REVISION` using one cheap
query; Alembic itself is imported only when a store must be created or upgraded. Upgrades run
under a lock (a file lock beside a SQLite file, an advisory lock on PostgreSQL) so that any
number of processes opening a new store at once create its schema exactly once, and a SQLite
file is copied to a backup beside it before an existing store is upgraded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from ..constants import HEAD_REVISION
from ..errors import SchemaTooNewError, StoreOpenError
from .engine import open_error, where
from .revisions import history, migrations_dir

log = logging.getLogger(__name__)

__all__ = ["HEAD_REVISION", "current_revision", "ensure_schema", "history", "migrations_dir"]

def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    # configparser reads "%" as interpolation; a path may hold one (and the URL escapes "?" as %3F).
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The store's schema revision, or None for an empty database."""
    try:
        with engine.connect() as conn:
            return _revision(conn)
    except DBAPIError as exc:
        raise open_error(engine, exc) from None


def _revision(conn: Connection) -> str | None:
    from sqlalchemy import inspect

    insp = inspect(conn)
    if not insp.has_table("alembic_version"):
        if insp.get_table_names():
            raise StoreOpenError(
                f"{where(conn.engine)} holds tables but is not a ckptstore store "
                "(no schema version)"
            )
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    if row is None and set(insp.get_table_names()) - {"alembic_version"}:
        # An emptied version table over existing tables: upgrading would try to create tables
        # that exist; guessing the revision could corrupt the data. (After `downgrade base`
        # only the empty version table is left, and that is an empty store.)
        raise StoreOpenError(
            f"{where(conn.engine)} holds tables but its schema version is missing "
            "(alembic_version is empty); restore it from a backup"
        )
    return row[0] if row else None


def ensure_schema(engine: Engine, *, create: bool = True, upgrade: bool = True) -> str:
    """Bring the database to :data:`HEAD_REVISION` if needed; refuse a newer one.

    Returns the revision the store is at afterwards.
    """
    rev = current_revision(engine)
    if rev == HEAD_REVISION:
        return rev
    known = [r for r, _, _ in history()]
    if rev is not None and rev not in known:
        raise SchemaTooNewError(
            f"{where(engine)} has schema revision {rev}, newer than this ckptstore knows "
            f"(head {HEAD_REVISION}); upgrade ckptstore to open it"
        )
    if rev is None and not create:
        raise StoreOpenError(
            f"{where(engine)} is not a ckptstore store (empty database; 'ckptstore db upgrade' creates the schema)"
        )
    if rev is not None and not upgrade:
        raise StoreOpenError(
            f"{where(engine)} is at schema revision {rev}; run 'ckptstore db upgrade'"
        )
    with _migration_lock(engine):
        rev = current_revision(engine)  # another process may have done it meanwhile
        if rev == HEAD_REVISION:
            return rev
        if rev is not None:
            _backup_sqlite(engine, rev)
        run_upgrade(engine, "head")
    return HEAD_REVISION


def run_upgrade(engine: Engine, target: str = "head") -> None:
    from alembic import command

    cfg = alembic_config(engine)
    try:
        with engine.connect() as conn, _foreign_keys_off(conn), conn.begin():
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
            _check_references(conn)
    except OperationalError as exc:
        raise open_error(engine, exc) from None
    log.info("upgraded %s to %s", where(engine), target)


def run_downgrade(engine: Engine, target: str = "base") -> None:
    from alembic import command

    cfg = alembic_config(engine)
    with engine.connect() as conn, _foreign_keys_off(conn), conn.begin():
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, target)
        _check_references(conn)


@contextlib.contextmanager
def _foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite: foreign keys off while migrations run, checked before the commit.

    Batch mode alters a SQLite table by copying it and dropping the old one; with foreign keys
    on, that DROP deletes the rows and cascades into every table that references it (a rebuild
    of ``checkpoints`` would delete every checkpoint's files). The pragma is a no-op inside a
    transaction, so it is set before the migration's transaction begins; ``foreign_key_check``
    then refuses to commit a migration that broke a reference (SQLite's own recipe for altering
    a table: https://www.sqlite.org/lang_altertable.html#otheralter).
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    # On the driver's connection: through SQLAlchemy the statement would first BEGIN (the
    # engine's begin hook), and inside a transaction the pragma does nothing.
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def _check_references(conn: Connection) -> None:
    """Refuse (roll back) a SQLite migration that left a row pointing at nothing."""
    if conn.dialect.name == "sqlite":
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreOpenError(
                f"a schema migration of {where(conn.engine)} would leave {len(broken)} broken "
                f"reference(s) (first: table {broken[0][0]}); nothing was changed"
            )


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "sqlite":
        db = engine.url.database
        if not db or db == ":memory:":
            yield
            return
        import fcntl

        try:
            fd = os.open(db + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreOpenError(f"cannot lock {db} for a schema upgrade: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7350125)"))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(7350125)"))
                conn.commit()
    else:
        yield


def _backup_sqlite(engine: Engine, rev: str) -> Path | None:
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    src_path = Path(engine.url.database)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dst_path = src_path.with_name(f"{src_path.name}.backup-{rev}-{stamp}")
    # The backup API copies a consistent snapshot even while other processes hold the WAL.
    src = sqlite3.connect(str(src_path))
    dst = sqlite3.connect(str(dst_path))
    try:
        src.backup(dst)
        # The copy inherits WAL mode; a rollback journal keeps the backup one self-contained
        # file that can be moved or opened without -wal/-shm companions appearing beside it.
        dst.execute("PRAGMA journal_mode = DELETE")
    finally:
        dst.close()
        src.close()
    log.info("backed up %s to %s before upgrading from %s", src_path, dst_path, rev)
    return dst_path



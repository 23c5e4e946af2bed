"""Database connections and schema versions.

One place decides how a store talks to its database:

* **SQLite** runs in WAL mode with a long busy timeout, foreign keys on, and write transactions
  opened with ``BEGIN IMMEDIATE``. A deferred transaction that reads and then writes can fail
  with "database is locked" *without waiting* when another process committed in between (its
  snapshot is stale); taking the write lock up front makes the busy timeout apply instead, which
  is what lets several training processes log into one file.
* **PostgreSQL** (``postgresql+psycopg://``) uses the same schema and the default READ COMMITTED
  transactions; uniqueness races are settled by ``ON CONFLICT`` clauses.

Schema versions are Alembic revisions. Opening a store compares the database's revision with
:data:`HEAD_REVISION` using one cheap query; Alembic itself is imported only when a store must be
created or upgraded. Upgrades run under a lock (a file lock beside a SQLite file, an advisory
lock on PostgreSQL) so two processes opening a new store do not race, and a SQLite file is
copied to a backup beside it before an existing store is upgraded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from .errors import ReadOnlyStoreError, SchemaTooNewError, StoreConfigError, StoreOpenError

log = logging.getLogger(__name__)

from .constants import HEAD_REVISION  # noqa: E402  (re-exported)

SQLITE_BUSY_TIMEOUT_S = 120.0


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the connection settings a store relies on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreConfigError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        try:
            engine = create_engine(
                parsed,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            )
        except NoSuchModuleError:
            raise StoreConfigError(f"unsupported database URL: {url!r}") from None
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        event.listen(engine, "handle_error", _sqlite_on_error)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError:
        raise StoreConfigError(f"unsupported database URL: {url!r}") from None
    except ModuleNotFoundError as exc:
        raise StoreConfigError(
            f"the driver for {parsed.drivername} is not installed ({exc.name}); "
            "for PostgreSQL: pip install 'ckptstore[postgres]'"
        ) from None


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Autocommit at the driver level: transactions are opened by _sqlite_on_begin.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
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


def _sqlite_on_error(context: Any) -> Optional[BaseException]:
    # A damaged file can open fine and fail only when a query reaches a bad page; turn that
    # into the same one-line StoreOpenError wherever it happens, not only in open_store.
    msg = str(context.original_exception).strip()
    if "malformed" in msg or "file is not a database" in msg:
        return StoreOpenError(f"{_where(context.engine)} is not a usable SQLite database ({msg})")
    if "readonly" in msg:
        return _read_only(context.engine, msg)
    return None


def _read_only(engine: Engine, msg: str) -> ReadOnlyStoreError:
    # WAL mode needs its -shm file even to read, so a store in a directory this process may
    # not write cannot even be opened (SQLite's rule, not ours).
    return ReadOnlyStoreError(
        f"{_where(engine)} is read-only for this user ({msg}); SQLite needs write access to "
        "the store directory and its database file, even to read"
    )


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("ckptstore_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


@contextlib.contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction: BEGIN IMMEDIATE on SQLite, a plain transaction elsewhere."""
    with engine.connect() as conn:
        conn = conn.execution_options(ckptstore_write=True)
        with conn.begin():
            yield conn


@contextlib.contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read transaction: one consistent snapshot for several queries."""
    with engine.connect() as conn, conn.begin():
        yield conn


# --------------------------------------------------------------------------- schema versions


def migrations_dir() -> Path:
    """Where the Alembic environment lives, in a wheel or in a source checkout."""
    import importlib.util

    spec = importlib.util.find_spec("ckptstore.migrations")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def current_revision(engine: Engine) -> Optional[str]:
    """The store's schema revision, or None for an empty database."""
    try:
        with engine.connect() as conn:
            return _revision(conn)
    except DBAPIError as exc:
        raise _open_error(engine, exc) from None


def _revision(conn: Connection) -> Optional[str]:
    from sqlalchemy import inspect

    insp = inspect(conn)
    if not insp.has_table("alembic_version"):
        if insp.get_table_names():
            raise StoreOpenError(
                f"{_where(conn.engine)} holds tables but is not a ckptstore store "
                "(no schema version)"
            )
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    if row is None and set(insp.get_table_names()) - {"alembic_version"}:
        # An emptied version table over existing tables: upgrading would try to create tables
        # that exist; guessing the revision could corrupt the data. (After `downgrade base`
        # only the empty version table is left, and that is an empty store.)
        raise StoreOpenError(
            f"{_where(conn.engine)} holds tables but its schema version is missing "
            "(alembic_version is empty); restore it from a backup"
        )
    return row[0] if row else None


def history() -> list[tuple[str, Optional[str], str]]:
    """Every revision as (revision, down_revision, message), oldest first."""
    from alembic.script import ScriptDirectory
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    script = ScriptDirectory.from_config(cfg)
    revs = list(script.walk_revisions())
    revs.reverse()
    return [(r.revision, r.down_revision, (r.doc or "").strip()) for r in revs]  # type: ignore[misc]


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
            f"{_where(engine)} has schema revision {rev}, newer than this ckptstore knows "
            f"(head {HEAD_REVISION}); upgrade ckptstore to open it"
        )
    if rev is None and not create:
        raise StoreOpenError(f"{_where(engine)} is not a ckptstore store (empty database)")
    if rev is not None and not upgrade:
        raise StoreOpenError(
            f"{_where(engine)} is at schema revision {rev}; run 'ckptstore db upgrade'"
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
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
    except OperationalError as exc:
        raise _open_error(engine, exc) from None
    log.info("upgraded %s to %s", _where(engine), target)


def run_downgrade(engine: Engine, target: str = "base") -> None:
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, target)


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


def _backup_sqlite(engine: Engine, rev: str) -> Optional[Path]:
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


def _where(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return engine.url.database or "the in-memory database"
    return engine.url.render_as_string(hide_password=True)


def _open_error(engine: Engine, exc: DBAPIError) -> StoreOpenError:
    orig = getattr(exc, "orig", exc)
    msg = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if "file is not a database" in msg or "malformed" in msg:
        return StoreOpenError(f"{_where(engine)} is not a usable SQLite database ({msg})")
    if engine.dialect.name == "sqlite" and "readonly" in msg:
        return _read_only(engine, msg)
    return StoreOpenError(f"cannot open {_where(engine)}: {msg}")

"""Database connections: engines, transactions, and the errors a database can raise.

One place decides how a store talks to its database:

* **SQLite** runs in WAL mode with a long busy timeout, foreign keys on, and write transactions
  opened with ``BEGIN IMMEDIATE``. A deferred transaction that reads and then writes can fail
  with "database is locked" *without waiting* when another process committed in between (its
  snapshot is stale); taking the write lock up front makes the busy timeout apply instead, which
  is what lets several training processes log into one file.
* **PostgreSQL** (``postgresql+psycopg://``) uses the same schema and the default READ COMMITTED
  transactions; uniqueness races are settled by ``ON CONFLICT`` clauses.

Every transaction of the library goes through :class:`Database` (``read()`` / ``write()``),
which is also the one place where a database refusing a write becomes a
:class:`ReadOnlyStoreError`. Schema versions are in ``versions``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from ..errors import DiskFullError, ReadOnlyStoreError, StoreConfigError, StoreOpenError
from ..location import redact
from .reads import Sql
from .sqlite_ro import TEXT_FACTORY, connect_readonly
from .sqlite_rw import SQLITE_BUSY_TIMEOUT_S, prepare_writer

log = logging.getLogger(__name__)


def make_engine(url: Any, *, readonly: bool = False) -> Engine:
    """Create an engine for ``url`` with the connection settings a store relies on.

    ``readonly`` opens a SQLite file so that nothing on disk changes, not even the files SQLite
    adds beside it (see :func:`_sqlite_readonly_creator`); on PostgreSQL it only marks intent.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        detail = "" if isinstance(exc, ArgumentError) else " (its port is not a number)"
        raise StoreConfigError(f"not a database URL: {redact(str(url))!r}{detail}") from None
    if parsed.get_backend_name() == "sqlite":
        connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        kwargs: dict[str, Any] = {}
        if readonly and parsed.database and parsed.database != ":memory:":
            from sqlalchemy.pool import NullPool

            kwargs["creator"] = _sqlite_readonly_creator(parsed.database)
            # A pooled immutable connection would go on reading a file a writer changes later.
            kwargs["poolclass"] = NullPool
        try:
            engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        except NoSuchModuleError:
            raise StoreConfigError(
                f"unsupported database URL: {redact(str(url))!r} (expected sqlite:///FILE or "
                "postgresql+psycopg://USER@HOST/DB)"
            ) from None
        event.listen(engine, "connect", _sqlite_on_connect_ro if readonly else _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        event.listen(engine, "handle_error", _sqlite_on_error)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError:
        raise StoreConfigError(
            f"unsupported database URL: {redact(str(url))!r} (expected sqlite:///FILE or "
            "postgresql+psycopg://USER@HOST/DB)"
        ) from None
    except ModuleNotFoundError as exc:
        raise StoreConfigError(
            f"the driver for {parsed.drivername} is not installed ({exc.name}); "
            "for PostgreSQL: pip install 'psycopg[binary]' (ckptstore's 'postgres' extra)"
        ) from None


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    prepare_writer(dbapi_conn)


def _sqlite_readonly_creator(path: str) -> Any:
    """Connections that never change the file system (see ``sqlite_ro``)."""

    def connect() -> sqlite3.Connection:
        return connect_readonly(path, SQLITE_BUSY_TIMEOUT_S)

    return connect


def _sqlite_on_connect_ro(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    dbapi_conn.text_factory = TEXT_FACTORY
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cur.close()


def _sqlite_on_error(context: Any) -> BaseException | None:
    # A damaged file can open fine and fail only when a query reaches a bad page; turn that
    # into the same one-line StoreOpenError wherever it happens, not only in open_store.
    msg = str(context.original_exception).strip()
    if "malformed" in msg or "file is not a database" in msg:
        return StoreOpenError(f"{where(context.engine)} is not a usable SQLite database ({msg})")
    if "readonly" in msg:
        return read_only_error(context.engine, msg)
    return None


def read_only_error(engine: Engine, msg: str) -> ReadOnlyStoreError:
    """The one wording of "this database refused a write", wherever it is detected."""
    hint = ""
    first = msg.strip().splitlines()[0] if msg.strip() else "read-only"
    if engine.dialect.name == "sqlite":
        if _on_read_only_filesystem(engine.url.database):
            return ReadOnlyStoreError(f"{where(engine)} is on a read-only filesystem ({first}); only reading works there")
        # A normal SQLite connection in WAL mode needs its -shm file even to read, so writing
        # needs write access to the directory too (SQLite's rule, not ours).
        hint = "; writing needs write access to the store directory and its database file"
    return ReadOnlyStoreError(f"{where(engine)} is read-only for this user ({first}){hint}")


def _on_read_only_filesystem(path: str | None) -> bool:
    try:
        return path is not None and bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _cannot_write(path: str | None) -> bool:
    """The SQLite file exists but this process may not write it or its directory (permissions,
    a read-only mount): SQLite then says only "unable to open database file"."""
    if not path or not os.path.isfile(path):
        return False
    return not (os.access(path, os.W_OK) and os.access(os.path.dirname(os.path.abspath(path)), os.W_OK))


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
    """A read transaction: one consistent snapshot for several queries.

    PostgreSQL's default, READ COMMITTED, takes a new snapshot for every statement: a run
    another process creates between "list it" and "look up its id" would be missing from one
    and present in the other. REPEATABLE READ holds one snapshot for the whole transaction,
    and a transaction that only reads never fails to serialize. SQLite's BEGIN already reads
    one snapshot (WAL).
    """
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def where(engine: Engine) -> str:
    """The database as error messages name it: its file, or its URL without the password."""
    if engine.dialect.name == "sqlite":
        return engine.url.database or "the in-memory database"
    return redact(engine.url.render_as_string(hide_password=True))


def open_error(engine: Engine, exc: DBAPIError) -> StoreOpenError:
    """A failure to reach or read the database, as one line naming it."""
    orig = getattr(exc, "orig", exc)
    msg = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if "file is not a database" in msg or "malformed" in msg:
        return StoreOpenError(f"{where(engine)} is not a usable SQLite database ({msg})")
    if engine.dialect.name == "sqlite" and (
        "readonly" in msg or ("unable to open database file" in msg and _cannot_write(engine.url.database))
    ):
        return read_only_error(engine, msg)
    return StoreOpenError(f"cannot open {where(engine)}: {redact(msg)}")


def placeholder(dialect: Any) -> str:
    """The driver's parameter placeholder for raw SQL: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    return "%s" if dialect.paramstyle in ("format", "pyformat") else "?"


def sql_of(conn: Connection) -> Sql:
    """``conn`` as the SQL-text functions (:mod:`.reads`, :mod:`.file_reads`,
    :mod:`.alias_writes`) run on it: the driver's own statements, inside ``conn``'s transaction."""

    def rows(text: str, args: list[Any]) -> Sequence[Any]:
        return conn.exec_driver_sql(text, tuple(args)).all()

    def execute(text: str, args: list[Any]) -> None:
        conn.exec_driver_sql(text, tuple(args))

    return Sql(rows, placeholder(conn.dialect), store_where(conn.engine), execute, conn.dialect.name)


def store_where(engine: Engine) -> str:
    """"the store at ..." for messages about what a store lacks: a directory store by its
    directory (``./.ckptstore`` depends on the current directory, which surprises people who
    change it), a database URL without its password."""
    if engine.dialect.name == "sqlite":
        db = engine.url.database or ""
        if db.endswith("/store.db"):
            db = db[: -len("/store.db")]
        return f"the store at {db or 'memory'}"
    return f"the store at {where(engine)}"


class Database:
    """One store's database: its engine, and the transactions every layer above opens.

    ``write()`` is a write transaction (``BEGIN IMMEDIATE`` on SQLite) in which a database that
    refuses to be written becomes :class:`ReadOnlyStoreError`; ``read()`` is one consistent
    snapshot for several queries.
    """

    def __init__(self, url: Any, *, readonly: bool = False) -> None:
        self.readonly = readonly
        self.engine = make_engine(url, readonly=readonly)
        self.dialect: str = self.engine.dialect.name
        #: The driver's placeholder for raw SQL (``?`` for sqlite3, ``%s`` for psycopg).
        self.placeholder = placeholder(self.engine.dialect)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    def describe(self) -> str:
        """Where this database is, for messages (never with a password)."""
        return where(self.engine)

    def describe_store(self) -> str:
        return store_where(self.engine)

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        if self.readonly:
            raise ReadOnlyStoreError(f"{store_where(self.engine)} was opened read-only; this operation writes to it")
        try:
            with write_tx(self.engine) as conn:
                yield conn
        except OperationalError as exc:  # at BEGIN, in the body or at COMMIT alike
            raise self._translate(exc) from None

    def read(self) -> contextlib.AbstractContextManager[Connection]:
        return read_tx(self.engine)

    @contextlib.contextmanager
    def sql_read(self) -> Iterator[Sql]:
        """:meth:`read`, as the SQL-text functions run on it (see :func:`sql_of`)."""
        with self.read() as conn:
            yield sql_of(conn)

    @contextlib.contextmanager
    def sql_write(self) -> Iterator[Sql]:
        """:meth:`write`, as the SQL-text functions run on it (see :func:`sql_of`)."""
        with self.write() as conn:
            yield sql_of(conn)

    def dispose(self) -> None:
        self.engine.dispose()

    def _translate(self, exc: OperationalError) -> Exception:
        msg = str(getattr(exc, "orig", exc)).strip()
        first = msg.splitlines()[0] if msg else type(exc).__name__
        if "readonly" in msg or "read-only" in msg:
            return read_only_error(self.engine, msg)
        if "disk is full" in msg or "No space left" in msg or "disk full" in msg:
            return DiskFullError(f"cannot write to {self.describe()}: no space left on the device ({first})")
        return exc

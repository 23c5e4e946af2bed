"""``ckptstore db current | history | upgrade``: the store's schema revision.

These commands open the store without checking its schema, so that they can name a revision
this ckptstore does not know, and upgrade one it does.
"""

import os
from types import ModuleType

import typer

from ..constants import HEAD_REVISION
from .app import JsonOpt, command, group, location, open_store
from .output import print_json, table

db_app = group("db", "Schema version of the store: current, history, upgrade.")


def _versions() -> ModuleType:
    # Alembic and SQLAlchemy come with it: only for these commands.
    from ..metadata import versions

    return versions


def _schema_status(revision: str | None) -> str:
    """A store's revision compared with this ckptstore's head: current, behind, ahead or empty."""
    if revision is None:
        return "empty"
    if revision == HEAD_REVISION:
        return "current"
    from ..metadata.revisions import history

    known = [r for r, _, _ in history()]
    return "behind" if revision in known else "ahead"


def _quick_revision(ctx: typer.Context) -> str | None:
    """HEAD_REVISION when the quick reader opens the store (it opens only a SQLite store at this
    ckptstore's head), without importing SQLAlchemy or Alembic; None: ask the store."""
    if os.environ.get("CKPTSTORE_QUICK") == "0":
        return None
    from ..metadata.quick_reader import QuickReader

    reader = QuickReader.open(location(ctx).store)
    if reader is None:
        return None
    reader.close()
    return HEAD_REVISION


@command(db_app, "current", quick=True)
def db_current(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The store's schema revision (without changing it)."""
    revision = _quick_revision(ctx)
    if revision is None:
        revision = open_store(ctx, check_schema=False, readonly=True).revision
    status, head = _schema_status(revision), HEAD_REVISION
    if as_json:
        print_json({"revision": revision, "head": head, "status": status})
        return
    note = {
        "current": "(head)",
        "behind": f"(head is {head}: run 'ckptstore db upgrade')",
        "ahead": f"(newer than this ckptstore, whose head is {head})",
        "empty": f"(empty database; 'ckptstore db upgrade' creates the schema at {head})",
    }[status]
    typer.echo(f"{revision or 'none'} {note}")


@command(db_app, "history", quick=True)
def db_history(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Every schema revision this ckptstore knows, oldest first."""
    from ..metadata.revisions import history

    revs = history()
    if as_json:
        print_json([{"revision": r, "down_revision": d, "message": m} for r, d, m in revs])
        return
    table(
        ["revision", "down", "message"],
        [[r + (" (head)" if r == HEAD_REVISION else ""), d or "-", " ".join(m.split("\n\n")[0].split())] for r, d, m in revs],
    )


@command(db_app, "upgrade", quick=True)
def db_upgrade(ctx: typer.Context) -> None:
    """Upgrade the store's schema to this ckptstore's head (SQLite: a backup is made first), or
    create it in an empty database."""
    if _quick_revision(ctx) == HEAD_REVISION:  # nothing to do: said without importing Alembic
        typer.echo(f"already at {HEAD_REVISION} (head)")
        return
    # A store directory must be there (a mistyped --store is an error, not a new store with its
    # parent directories); a database URL's schema is created here, as its users expect.
    from ..location import check_existing_store, parse_location, sqlite_file_of

    where = location(ctx).store
    directory = parse_location(where).directory
    if directory is not None:
        check_existing_store(directory)
    else:
        database = sqlite_file_of(where)
        if database is not None and not database.exists():  # sqlite:///typo/store.db
            from ..errors import StoreOpenError

            raise StoreOpenError(f"no store at {database} (create one by starting a run; db upgrade upgrades an existing one)")
    store = open_store(ctx, create=True, check_schema=False)
    before = store.revision
    after = _versions().ensure_schema(store.engine, create=True)
    if before == after:
        typer.echo(f"already at {after} (head)")
    else:
        typer.echo(f"upgraded from {before or 'an empty database'} to {after}")

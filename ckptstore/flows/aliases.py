"""Aliases: names that point at one checkpoint or one export (``prod``, ``best``), with their
history.

An alias row references its target by foreign key with ``ON DELETE RESTRICT``: while a name
points at a checkpoint or export, neither retention, ``gc``, ``delete_checkpoint`` nor
``delete_run`` can remove it. Every change of an alias (set first, moved, removed: the stored
actions ``set``, ``move``, ``remove``) is appended to ``alias_events`` in the same transaction,
with the targets written as text (``mnist@2000``, ``export:3``), so the history outlives the
targets and the alias itself.

Setting an alias to the target it already has records no event (nothing moved); a new
``message`` given then replaces the alias's message. Moving an alias without a message keeps
the one it has.

Concurrency: on SQLite a write transaction holds the database's write lock from its first
statement, so two processes setting the same alias are serialized. On PostgreSQL the alias row
is read ``FOR UPDATE``; two processes creating the *same new* name race on its unique
constraint, and the loser retries (``ckptstore.retry``), then finds the row and moves it (or leaves it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from .. import retry
from ..errors import ConflictError, UnknownAliasError
from ..metadata import alias_writes
from ..metadata import queries as Q
from ..metadata.schema import utcnow
from ..names import check_alias_name
from ..records import AliasInfo
from .backend import Backend
from .resolve import as_ref

__all__ = ["set_alias", "remove_alias", "aliases"]


def set_alias(backend: Backend, name: str, ref: Any, *, message: str | None = None) -> AliasInfo:
    """Point the alias ``name`` at the checkpoint or export ``ref`` names; returns the alias.

    ``ref`` is ``run@step``, ``run@latest``, ``run@~N``, ``export:ID``, another alias (the new
    alias points at that alias's *current* target, not at the alias), or a record the API
    returned. Moving an existing alias records the old and new target in its history.

    >>> store.set_alias("prod", "mnist@latest", message="beats baseline")   # doctest: +SKIP
    """
    check_alias_name(name)
    parsed = as_ref(ref)

    def once() -> AliasInfo:
        with backend.db.write() as conn:
            return alias_writes.set_alias(Q.sql_of(conn), name, parsed, message, utcnow())

    try:
        # PostgreSQL only: another process created the same alias (unique name) or deleted the
        # target (foreign key) between our read and our write. A new transaction sees its commit.
        return retry.call(once, when=retry.is_race, what=f"alias {name!r}")
    except IntegrityError:
        raise ConflictError(f"alias {name!r} was changed by another process at the same time; try again") from None


def remove_alias(backend: Backend, name: str, *, message: str | None = None) -> str:
    """Remove the alias ``name`` (its target is no longer protected); its history is kept.
    Returns the target it had (``run@step`` or ``export:ID``)."""
    with backend.db.write() as conn:
        return alias_writes.remove_alias(Q.sql_of(conn), name, message, utcnow())


def aliases(backend: Backend, name: str | None = None) -> list[AliasInfo]:
    """Aliases by name, each with its history, newest event first.

    Without ``name``: every current alias. With ``name``: that alias; for an alias that was
    removed, its history alone (``kind="removed"``, ``target=""``); for a name never used,
    :class:`UnknownAliasError`.
    """
    with backend.db.read() as conn:
        infos = Q.aliases(conn, name)
        if name is None or infos:
            return infos
        history = Q.alias_history(conn, [name]).get(name, [])
    if not history:
        raise UnknownAliasError(f"no alias named {name!r} in {backend.db.describe_store()} (see 'ckptstore aliases')")
    last = history[0]
    return [AliasInfo(name=name, target="", kind="removed", message=last.message, updated_at=last.at, history=history)]

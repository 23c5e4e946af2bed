"""Aliases: names that point at one checkpoint or one export (``prod``, ``best``), with their
history.

An alias row references its target by foreign key with ``ON DELETE RESTRICT``: while a name
points at a checkpoint or export, neither retention, ``gc``, ``delete_checkpoint`` nor
``delete_run`` can remove it. Every change of an alias (set first, moved, removed: the stored
actions ``tag``, ``move``, ``untag``) is appended to ``alias_events`` in the same transaction,
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

import logging
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from .. import retry
from ..errors import ConflictError, UnknownAliasError
from ..metadata import queries as Q
from ..metadata import writes as W
from ..metadata.schema import utcnow
from ..names import Ref, check_alias_name
from ..records import AliasInfo, CheckpointInfo
from .backend import Backend
from .resolve import as_ref

log = logging.getLogger(__name__)

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
            _tag(conn, parsed, name, message)
            return Q.aliases(conn, name)[0]

    try:
        # PostgreSQL only: another process created the same alias (unique name) or deleted the
        # target (foreign key) between our read and our write. A new transaction sees its commit.
        return retry.call(once, when=retry.is_race, what=f"tag {name!r}")
    except IntegrityError:
        raise ConflictError(f"alias {name!r} was changed by another process at the same time; try again") from None


def _tag(conn: Connection, ref: Ref, name: str, message: str | None) -> None:
    target = Q.resolve(conn, ref)
    new_text = target.ref
    ck_id, ex_id = (target.id, None) if isinstance(target, CheckpointInfo) else (None, target.id)
    row = Q.alias_row(conn, name, for_update=True)
    now = utcnow()
    if row is None:
        W.insert_alias(conn, name, ck_id, ex_id, message, now)
        W.alias_event(conn, name, "set", None, new_text, message, now)
        log.info("set alias %r to %s", name, new_text)
        return
    if (row.checkpoint_id, row.export_id) == (ck_id, ex_id):
        # Same target: nothing moved, so no history event; only a new message is kept.
        if message is not None and message != row.message:
            W.update_alias(conn, row.id, now, message=message)
        return
    old_text = Q.target_text(conn, row.checkpoint_id, row.export_id)
    # A move without a message keeps the alias's message (the reason it exists, e.g. "serving
    # model"); the move's own event records only what this move was given.
    kept = {} if message is None else {"message": message}
    W.update_alias(conn, row.id, now, checkpoint_id=ck_id, export_id=ex_id, **kept)
    W.alias_event(conn, name, "move", old_text, new_text, message, now)
    log.info("moved alias %r from %s to %s", name, old_text, new_text)


def remove_alias(backend: Backend, name: str, *, message: str | None = None) -> None:
    """Remove the alias ``name`` (its target is no longer protected); its history is kept."""
    with backend.db.write() as conn:
        row = Q.alias_row(conn, name, for_update=True)
        if row is None:
            raise UnknownAliasError(f"no alias named {name!r} in {backend.db.describe_store()} (see 'ckptstore aliases')")
        old_text = Q.target_text(conn, row.checkpoint_id, row.export_id)
        W.delete_alias(conn, row.id)
        W.alias_event(conn, name, "remove", old_text, None, message, utcnow())
    log.info("removed alias %r (was %s)", name, old_text)


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

"""Setting and removing an alias, written once as SQL text for both drivers.

``flows/aliases.py`` runs these through SQLAlchemy's driver connection inside the store's write
transaction (SQLite and PostgreSQL); the CLI runs the very same functions on a SQLite store
through the standard library's ``sqlite3`` (``quick_writer.py``), because importing SQLAlchemy
alone costs ~0.12-0.18 s of the 0.3 s a command may take (issue 26). Same pattern as
:mod:`.reads`: no SQLAlchemy here, only SQL both databases speak.

The caller holds the write transaction (SQLite: ``BEGIN IMMEDIATE``, so two writers are
serialized from the first statement; PostgreSQL: the alias row is read ``FOR UPDATE``, and
a race on a new name's unique constraint is retried by the caller).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from ..errors import UnknownAliasError, UnknownRefError
from ..names import Ref
from ..records import AliasInfo
from .reads import Sql, aliases, target_of

log = logging.getLogger(__name__)

__all__ = ["set_alias", "remove_alias", "timestamp"]


def timestamp(sql: Sql, at: datetime) -> Any:
    """``at`` (aware) as a ``DateTime(timezone=True)`` column stores it on this driver: as
    SQLAlchemy writes it on SQLite (naive UTC text, microseconds always present, so that text
    order is time order), as is for psycopg."""
    if sql.dialect != "sqlite":
        return at
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _execute(sql: Sql, text: str, args: list[Any]) -> None:
    if sql.execute is None:
        raise TypeError("alias writes need a connection that writes (Sql.execute)")
    sql.execute(text, args)


def _target(sql: Sql, ref: Ref) -> tuple[int | None, int | None, str]:
    """(checkpoint id, export id, text) of what ``ref`` names; the text is how history records
    a target (``run@step``, ``export:ID``), so that it outlives the target."""
    kind, target = target_of(sql, ref)
    if kind == "export":
        if not sql.rows(f"SELECT id FROM exports WHERE id = {sql.ph}", [target]):
            raise UnknownRefError(f"no export {target} in {sql.where}" + (f" (from {ref.text!r})" if ref.kind == "alias" else ""))
        return None, target, f"export:{target}"
    return target, None, _target_text(sql, target, None)


def _target_text(sql: Sql, checkpoint_id: int | None, export_id: int | None) -> str:
    if checkpoint_id is None:
        return f"export:{export_id}"
    row = sql.rows(
        f"SELECT r.name, c.step FROM checkpoints c JOIN runs r ON r.id = c.run_id WHERE c.id = {sql.ph}", [checkpoint_id]
    )[0]
    return f"{row[0]}@{row[1]}"


def _alias_row(sql: Sql, name: str) -> Any:
    """(id, checkpoint_id, export_id, message) of an alias, or None; locked on PostgreSQL."""
    lock = " FOR UPDATE" if sql.dialect == "postgresql" else ""  # SQLite: the write lock is held already
    found = sql.rows(f"SELECT id, checkpoint_id, export_id, message FROM aliases WHERE name = {sql.ph}{lock}", [name])
    return found[0] if found else None


def _event(sql: Sql, name: str, action: str, old: str | None, new: str | None, message: str | None, now: Any) -> None:
    _execute(sql, "INSERT INTO alias_events (alias_name, action, old_target, new_target, message, at) "
             f"VALUES ({sql.marks(6)})", [name, action, old, new, message, now])


def set_alias(sql: Sql, name: str, ref: Ref, message: str | None, at: datetime) -> AliasInfo:
    """Point ``name`` at what ``ref`` names (created, moved, or left as it is); returns the alias.

    Setting an alias to the target it already has records no event (nothing moved); a new
    ``message`` then replaces the alias's. A move without a message keeps the alias's message
    (the reason it exists, e.g. "serving model"); the move's own event records only what this
    move was given."""
    ck_id, ex_id, new_text = _target(sql, ref)
    row = _alias_row(sql, name)
    now = timestamp(sql, at)
    ph = sql.ph
    if row is None:
        _execute(sql, f"INSERT INTO aliases (name, checkpoint_id, export_id, message, updated_at) VALUES ({sql.marks(5)})",
                 [name, ck_id, ex_id, message, now])
        _event(sql, name, "set", None, new_text, message, now)
        log.info("set alias %r to %s", name, new_text)
    elif (row[1], row[2]) == (ck_id, ex_id):
        if message is not None and message != row[3]:
            _execute(sql, f"UPDATE aliases SET message = {ph}, updated_at = {ph} WHERE id = {ph}", [message, now, row[0]])
    else:
        old_text = _target_text(sql, row[1], row[2])
        kept = row[3] if message is None else message
        _execute(sql, f"UPDATE aliases SET checkpoint_id = {ph}, export_id = {ph}, message = {ph}, updated_at = {ph} "
                 f"WHERE id = {ph}", [ck_id, ex_id, kept, now, row[0]])
        _event(sql, name, "move", old_text, new_text, message, now)
        log.info("moved alias %r from %s to %s", name, old_text, new_text)
    return aliases(sql, name)[0]


def remove_alias(sql: Sql, name: str, message: str | None, at: datetime) -> str:
    """Remove the alias ``name`` (its target is no longer protected; its history is kept);
    returns the target it had, as history records it."""
    row = _alias_row(sql, name)
    if row is None:
        raise UnknownAliasError(f"no alias named {name!r} in {sql.where} (see 'ckptstore aliases')")
    old_text = _target_text(sql, row[1], row[2])
    _execute(sql, f"DELETE FROM aliases WHERE id = {sql.ph}", [row[0]])
    _event(sql, name, "remove", old_text, None, message, timestamp(sql, at))
    log.info("removed alias %r (was %s)", name, old_text)
    return old_text

"""Named versions: aliases that point at one checkpoint or one export, with their history.

An alias row references its target by foreign key with ``ON DELETE RESTRICT``: while a name
points at a checkpoint or export, neither retention, ``gc``, ``delete_checkpoint`` nor
``delete_run`` can remove it. Every change of an alias (first ``tag``, ``move``, ``untag``) is
appended to ``alias_events`` in the same transaction, with the targets written as text
(``mnist@2000``, ``export:3``), so the history outlives the targets and the alias itself.

Re-tagging an alias with the target it already has records no event (nothing moved); a new
``message`` given then replaces the alias's message.

Concurrency: on SQLite a write transaction holds the database's write lock from its first
statement, so two processes tagging the same name are serialized. On PostgreSQL the alias row
is read ``FOR UPDATE``; two processes creating the *same new* name race on its unique
constraint, and the loser retries once, then finds the row and moves it (or leaves it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional, Union

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from . import schema as S
from .errors import ConflictError, UnknownAliasError
from .names import Ref, check_alias_name, parse_ref
from .records import AliasEventInfo, AliasInfo, CheckpointInfo

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

__all__ = ["tag", "untag", "versions"]


def tag(store: "Store", ref: Union[str, Ref], name: str, *, message: Optional[str] = None) -> AliasInfo:
    """Point the alias ``name`` at the checkpoint or export ``ref`` names; returns the alias.

    ``ref`` is ``run@step``, ``run@latest``, ``run@~N``, ``export:ID`` or another alias (the
    new alias points at that alias's *current* target, not at the alias). Moving an existing
    alias records the old and new target in its history.

    >>> store.tag("mnist@latest", "prod", message="beats baseline")   # doctest: +SKIP
    """
    check_alias_name(name)
    parsed = ref if isinstance(ref, Ref) else parse_ref(ref)
    for attempt in range(2):
        try:
            with store.write() as conn:
                _tag(store, conn, parsed, name, message)
                return _alias_infos(conn, name)[0]
        except IntegrityError as exc:
            # PostgreSQL only: another process created the same alias (unique name) or deleted
            # the target (foreign key) between our read and our write. Once more sees its commit.
            log.debug("tag %r lost a race (%s); retrying", name, type(exc.orig).__name__)
            if attempt == 1:
                raise ConflictError(
                    f"alias {name!r} was changed by another process at the same time; try again"
                ) from None
    raise AssertionError("unreachable")


def _tag(store: "Store", conn: Connection, ref: Ref, name: str, message: Optional[str]) -> None:
    target = store._resolve(conn, ref)
    new_text = target.ref
    ck_id, ex_id = (target.id, None) if isinstance(target, CheckpointInfo) else (None, target.id)
    a = S.Alias
    row = conn.execute(
        select(a.id, a.checkpoint_id, a.export_id, a.message).where(a.name == name).with_for_update()
    ).first()
    now = S.utcnow()
    if row is None:
        conn.execute(
            a.__table__.insert().values(
                name=name, checkpoint_id=ck_id, export_id=ex_id, message=message, updated_at=now
            )
        )
        _event(conn, name, "tag", None, new_text, message, now)
        log.info("tagged %s as %r", new_text, name)
        return
    if (row.checkpoint_id, row.export_id) == (ck_id, ex_id):
        # Same target: nothing moved, so no history event; only a new message is kept.
        if message is not None and message != row.message:
            conn.execute(update(a).where(a.id == row.id).values(message=message, updated_at=now))
        return
    old_text = _target_text(conn, row.checkpoint_id, row.export_id)
    conn.execute(
        update(a).where(a.id == row.id).values(
            checkpoint_id=ck_id, export_id=ex_id, message=message, updated_at=now
        )
    )
    _event(conn, name, "move", old_text, new_text, message, now)
    log.info("moved alias %r from %s to %s", name, old_text, new_text)


def untag(store: "Store", name: str, *, message: Optional[str] = None) -> None:
    """Remove the alias ``name`` (its target is no longer protected); its history is kept."""
    a = S.Alias
    with store.write() as conn:
        row = conn.execute(
            select(a.id, a.checkpoint_id, a.export_id).where(a.name == name).with_for_update()
        ).first()
        if row is None:
            raise UnknownAliasError(f"no version named {name!r} (see 'ckptstore versions')")
        old_text = _target_text(conn, row.checkpoint_id, row.export_id)
        conn.execute(delete(a).where(a.id == row.id))
        _event(conn, name, "untag", old_text, None, message, S.utcnow())
    log.info("untagged %r (was %s)", name, old_text)


def versions(store: "Store", name: Optional[str] = None) -> list[AliasInfo]:
    """Aliases by name, each with its history, newest event first.

    Without ``name``: every current alias. With ``name``: that alias; for a name that was
    untagged, its history alone (``kind="untagged"``, ``target=""``); for a name never used,
    :class:`UnknownAliasError`.
    """
    with store.read() as conn:
        infos = _alias_infos(conn, name)
        if name is None or infos:
            return infos
        history = _history(conn, [name]).get(name, [])
    if not history:
        raise UnknownAliasError(f"no version named {name!r} (see 'ckptstore versions')")
    last = history[0]
    return [AliasInfo(name=name, target="", kind="untagged", message=last.message, updated_at=last.at, history=history)]


# --------------------------------------------------------------------------- helpers


def _event(
    conn: Connection, name: str, action: str, old: Optional[str], new: Optional[str], message: Optional[str], at: Any
) -> None:
    conn.execute(
        S.AliasEvent.__table__.insert().values(
            alias_name=name, action=action, old_target=old, new_target=new, message=message, at=at
        )
    )


def _target_text(conn: Connection, checkpoint_id: Optional[int], export_id: Optional[int]) -> str:
    if checkpoint_id is None:
        return f"export:{export_id}"
    row = conn.execute(
        select(S.Run.name, S.Checkpoint.step).join(S.Run, S.Run.id == S.Checkpoint.run_id)
        .where(S.Checkpoint.id == checkpoint_id)
    ).one()
    return f"{row.name}@{row.step}"


def _alias_infos(conn: Connection, name: Optional[str]) -> list[AliasInfo]:
    from .store import _aware

    a, c, r = S.Alias, S.Checkpoint, S.Run
    q = (
        select(a.name, a.checkpoint_id, a.export_id, a.message, a.updated_at, r.name.label("run"), c.step)
        .outerjoin(c, c.id == a.checkpoint_id)
        .outerjoin(r, r.id == c.run_id)
        .order_by(a.name)
    )
    if name is not None:
        q = q.where(a.name == name)
    rows = conn.execute(q).all()
    history = _history(conn, [row.name for row in rows] if name is not None else None)
    out = []
    for row in rows:
        if row.checkpoint_id is not None:
            target, kind = f"{row.run}@{row.step}", "checkpoint"
        else:
            target, kind = f"export:{row.export_id}", "export"
        out.append(
            AliasInfo(
                name=row.name, target=target, kind=kind, message=row.message,
                updated_at=_aware(row.updated_at), history=history.get(row.name, []),
            )
        )
    return out


def _history(conn: Connection, names: Optional[list[str]]) -> dict[str, list[AliasEventInfo]]:
    from .store import _aware

    e = S.AliasEvent
    # Ids grow with each insert, so they order events even when two share a timestamp.
    q = select(e.alias_name, e.action, e.old_target, e.new_target, e.message, e.at).order_by(e.id.desc())
    if names is not None:
        q = q.where(e.alias_name.in_(names))
    out: dict[str, list[AliasEventInfo]] = {}
    for row in conn.execute(q):
        out.setdefault(row.alias_name, []).append(
            AliasEventInfo(action=row.action, old_target=row.old_target, new_target=row.new_target,
                           message=row.message, at=_aware(row.at))
        )
    return out

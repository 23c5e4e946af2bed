"""Object intents: uploads in flight and deletions in progress in a shared object area, and the
store's settings row.

Every transaction of the protocol (a save recording its uploads, a save committing, ``gc``
claiming objects to delete) first updates the ``object_lock`` row of ``store_settings``. On
PostgreSQL that row lock makes them run one after another; SQLite serialises writers anyway.
So each of them sees the others' effects whole, never half (docs/architecture.md, "Sharing one
bucket between hosts").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, delete, insert, select, union, update

from ..liveness import alive_since
from . import reads
from . import schema as S
from .queries import sql_of

LOCK_KEY = "object_lock"
#: A ``delete`` claim older than this belongs to a deleter that has stopped: a deleter sends no
#: request later than DELETE_DEADLINE after its claim, and a request with all its retries ends
#: well within the rest of the window.
DELETE_WINDOW = timedelta(minutes=15)
DELETE_DEADLINE = timedelta(minutes=1)
#: An ``upload`` intent older than this (or of a dead process on this host) is dropped by gc.
UPLOAD_TTL = timedelta(hours=1)
ROOT_KEY = "root"


def now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(t: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC).
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def take_lock(conn: Connection) -> None:
    """Serialise this write transaction with every other intent transaction (see module doc)."""
    n = conn.execute(update(S.store_settings).where(S.store_settings.c.key == LOCK_KEY).values(value="")).rowcount
    if not n:  # a store whose row was lost: put it back (creating it also takes the lock)
        conn.execute(insert(S.store_settings).values(key=LOCK_KEY, value=""))


def get_setting(conn: Connection, key: str) -> str | None:
    return reads.setting(sql_of(conn), key)  # one query, also the quick reader's (root show)


def set_setting(conn: Connection, key: str, value: str) -> None:
    if conn.execute(update(S.store_settings).where(S.store_settings.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(S.store_settings).values(key=key, value=value))


@dataclass(frozen=True)
class Claim:
    """A ``delete`` claim of gc on an object: who made it, when."""

    id: int
    digest: str
    host: str
    pid: int
    started_at: datetime

    @property
    def here(self) -> bool:
        return self.host == socket.gethostname()[:255]

    def dead(self) -> bool:
        """The claimer is known to be gone: a process of this host that no longer runs (or
        whose pid now belongs to a process started after the claim). Other hosts' claims
        cannot be told dead; they lapse after :data:`DELETE_WINDOW`."""
        return self.here and not alive_since(self.pid, self.started_at.timestamp())

    def describe(self) -> str:
        where = "this host" if self.here else f"host {self.host}"
        lapse = (self.started_at + DELETE_WINDOW).strftime("%H:%M:%S UTC")
        return f"gc (pid {self.pid} on {where}, claimed at {self.started_at:%H:%M:%S} UTC; the claim lapses at {lapse} at the latest)"


def delete_claims(conn: Connection, digests: Sequence[str], window: timedelta) -> list[Claim]:
    """The ``delete`` claims on ``digests`` younger than ``window`` (an older claim belongs to
    a deleter that has stopped: it never deletes past :data:`DELETE_DEADLINE` after it)."""
    cutoff = now() - window
    found: list[Claim] = []
    p = S.pending_objects
    for i in range(0, len(digests), 500):
        rows = conn.execute(
            select(p.c.id, p.c.digest, p.c.host, p.c.pid, p.c.started_at).where(p.c.kind == "delete", p.c.digest.in_(digests[i : i + 500]))
        )
        found.extend(Claim(r.id, r.digest, r.host, r.pid, _aware(r.started_at)) for r in rows if _aware(r.started_at) > cutoff)
    return found


def deleting_now(conn: Connection, digests: Sequence[str], window: timedelta) -> set[str]:
    """Digests among ``digests`` that a deleter not known to be dead has claimed."""
    return {c.digest for c in delete_claims(conn, digests, window) if not c.dead()}


def add(conn: Connection, digests: Iterable[str], kind: str) -> list[int]:
    """Record intents for ``digests`` by this process; returns their ids."""
    host, pid, at = socket.gethostname()[:255], os.getpid(), now()
    ids: list[int] = []
    for d in dict.fromkeys(digests):
        key = conn.execute(insert(S.pending_objects).values(digest=d, kind=kind, host=host, pid=pid, started_at=at)).inserted_primary_key
        assert key is not None  # an INSERT of one row always has one
        ids.append(int(key[0]))
    return ids


def remove(conn: Connection, ids: Sequence[int]) -> int:
    """Drop intents by id; returns how many were still there."""
    n = 0
    for i in range(0, len(ids), 500):
        n += conn.execute(delete(S.pending_objects).where(S.pending_objects.c.id.in_(ids[i : i + 500]))).rowcount
    return n


def drop_stale(conn: Connection, older_than: datetime) -> int:
    """Forget intents of processes that died: started before ``older_than``, or owned by a
    process of this host that no longer exists."""
    n = conn.execute(delete(S.pending_objects).where(S.pending_objects.c.started_at < older_than)).rowcount
    host = socket.gethostname()[:255]
    p = S.pending_objects
    rows = conn.execute(select(p.c.id, p.c.pid, p.c.started_at).where(p.c.host == host)).all()
    dead = [i for i, pid, t in rows if not alive_since(pid, _aware(t).timestamp())]
    if dead:
        n += remove(conn, dead)
    return n



def in_use(conn: Connection, digests: Sequence[str]) -> set[str]:
    """Digests among ``digests`` that a ``blobs`` row or an intent names. One statement per
    chunk, so a save committing meanwhile (dropping its intent, adding its row) is seen whole."""
    found: set[str] = set()
    for i in range(0, len(digests), 500):
        chunk = digests[i : i + 500]
        q = union(
            select(S.blobs.c.digest).where(S.blobs.c.digest.in_(chunk)),
            select(S.pending_objects.c.digest).where(S.pending_objects.c.digest.in_(chunk)),
        )
        found.update(conn.execute(q).scalars())
    return found


def pending_count(conn: Connection) -> int:
    return len(conn.execute(select(S.pending_objects.c.id)).all())


def pending_digests(conn: Connection, digests: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(digests), 500):
        found.update(conn.execute(select(S.pending_objects.c.digest).where(S.pending_objects.c.digest.in_(digests[i : i + 500]))).scalars())
    return found

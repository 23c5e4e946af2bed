"""Space accounting (``ckptstore du``): logical bytes against stored, distinct bytes.

Logical bytes are what the runs' checkpoints (and exports) take as plain files; stored bytes are
the distinct objects they use, an assembled data file counting the objects its extents name.
"""

from __future__ import annotations

from ..records import SpaceUsage
from .reads import Sql


def space_usage(sql: Sql, runs: list[str] | None = None) -> list[SpaceUsage]:
    """One row per run (all runs, or those named), then one for the whole store (run None).

    SQL text for both drivers (see ``reads``): the store runs it through SQLAlchemy's driver
    connection, ``ckptstore du`` on a SQLite store through ``sqlite3`` (the quick reader)."""
    files = sql.rows(
        "SELECT r.name, c.id, cf.digest, cf.size FROM checkpoint_files cf"
        " JOIN checkpoints c ON c.id = cf.checkpoint_id JOIN runs r ON r.id = c.run_id", [],
    )
    exports = sql.rows("SELECT r.name, e.digest, e.size FROM exports e JOIN runs r ON r.id = e.run_id", [])
    objects_of: dict[str, set[str]] = {}
    for file_digest, object_digest in sql.rows("SELECT file_digest, object_digest FROM file_extents", []):
        objects_of.setdefault(file_digest, set()).add(object_digest)
    sizes = {digest: size for digest, size in sql.rows("SELECT digest, size FROM blobs", [])}
    names = [row[0] for row in sql.rows("SELECT name FROM runs ORDER BY name", [])]
    if runs is not None:
        from ..errors import UnknownRunError

        unknown = [n for n in runs if n not in names]
        if unknown:
            raise UnknownRunError(f"no run named {unknown[0]!r}")
    logical: dict[str, int] = {n: 0 for n in names}
    cks: dict[str, set[int]] = {n: set() for n in names}
    used: dict[str, set[str]] = {n: set() for n in names}
    for name, cid, digest, size in files:
        logical[name] += size
        cks[name].add(cid)
        used[name].update(objects_of.get(digest, {digest}))
    for name, digest, size in exports:
        logical[name] += size
        used[name].add(digest)
    users: dict[str, int] = {}
    for objs in used.values():
        for o in objs:
            users[o] = users.get(o, 0) + 1
    out = []
    for n in runs if runs is not None else names:
        out.append(SpaceUsage(
            run=n, checkpoints=len(cks[n]), logical_bytes=logical[n],
            stored_bytes=sum(sizes.get(o, 0) for o in used[n]),
            unique_bytes=sum(sizes.get(o, 0) for o in used[n] if users[o] == 1),
        ))
    everything = set().union(*used.values()) if used else set()
    out.append(SpaceUsage(
        run=None, checkpoints=sum(len(v) for v in cks.values()), logical_bytes=sum(logical.values()),
        stored_bytes=sum(sizes.get(o, 0) for o in everything),
    ))
    return out

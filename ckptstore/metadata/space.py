"""Space accounting (``ckptstore du``): logical bytes against stored, distinct bytes.

Logical bytes are what the runs' checkpoints (and exports) take as plain files; stored bytes are
the distinct objects they use, an assembled data file counting the objects its extents name.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from ..records import SpaceUsage
from . import schema as S


def space_usage(conn: Connection, runs: list[str] | None = None) -> list[SpaceUsage]:
    """One row per run (all runs, or those named), then one for the whole store (run None)."""
    c, cf, r, e = S.checkpoints, S.checkpoint_files, S.runs, S.exports
    files = conn.execute(select(r.c.name, c.c.id, cf.c.digest, cf.c.size).join(c, c.c.id == cf.c.checkpoint_id).join(r, r.c.id == c.c.run_id)).all()
    exports = conn.execute(select(r.c.name, e.c.digest, e.c.size).join(r, r.c.id == e.c.run_id)).all()
    objects_of: dict[str, set[str]] = {}
    for row in conn.execute(select(S.file_extents.c.file_digest, S.file_extents.c.object_digest)):
        objects_of.setdefault(row.file_digest, set()).add(row.object_digest)
    sizes = dict(conn.execute(select(S.blobs.c.digest, S.blobs.c.size)).all())
    names = list(conn.execute(select(r.c.name).order_by(r.c.name)).scalars())
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

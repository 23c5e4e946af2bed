"""Checkpoints compared tensor by tensor, repacking, and space accounting, on the store.

``diff`` is :func:`~.tensor_diff.diff_checkpoints` (written once over SQL text, which the CLI
runs through ``sqlite3`` too) with what only the store does: for checkpoints saved before
tensor-level storage the digests are computed once on demand from the stored index and data
files, and recorded for next time, as are the tensor digests the comparison had to take.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from ..bundle import parse_index
from ..errors import CkptstoreError
from ..files import pieces
from ..metadata import pieces as MP
from ..metadata import queries as Q
from ..names import Ref
from ..records import (
    CheckpointInfo,
    SpaceUsage,
    VariableDiff,
    VariableInfo,
)
from . import tensor_diff
from .backend import Backend
from .resolve import checkpoint_of

log = logging.getLogger(__name__)


def _digest_on_demand(backend: Backend, ck: CheckpointInfo, files: list[Any]) -> dict[str, dict[str, MP.TensorRow]]:
    index = next((f for f in ck.files if f.role == "index"), None)
    if index is None:
        raise CkptstoreError(f"{ck.ref} has no index file: its tensors cannot be compared")
    area = backend.files
    bundle = parse_index(area.read_bytes(index.digest), index.file_name)
    n = bundle.header.num_shards
    out: dict[str, dict[str, MP.TensorRow]] = {}
    plans = []
    for f in files:
        shard = next((s for s in range(n) if f.file_name.endswith(f".data-{s:05d}-of-{n:05d}")), None)
        if shard is None:
            continue
        with backend.db.read() as conn:
            layout = MP.extents(conn, [f.digest]).get(f.digest)
        if layout is None:
            # The whole file is checked against its digest (recorded at save) before tensor
            # digests are taken from it: damaged bytes must never become a recorded digest.
            area.check(f.digest, f.size, None, full=True, name=f.file_name)
            with area.held_path(f.digest) as path:
                plan = pieces.plan_file(path, f.digest, f.size, bundle, shard, strong=True)
        else:  # assembled from pieces but its tensor rows are gone: rebuild it privately
            with tempfile.TemporaryDirectory(prefix="ckptstore-diff-") as tmp:
                rebuilt = Path(tmp) / f.file_name
                pieces.assemble(area, layout, f.digest, f.size, rebuilt)
                plan = pieces.plan_file(rebuilt, f.digest, f.size, bundle, shard, strong=True)
        plans.append(plan)
        out[f.digest] = {name: (o, size, d, c) for name, o, size, d, c in plan.tensors}
    try:  # an optimisation only: the store may be read-only, the file deleted meanwhile
        with backend.db.write() as conn:
            alive = Q.existing_blobs(conn, [p.digest for p in plans])
            for p in plans:
                if p.digest in alive:
                    MP.record_layout(conn, p.digest, p.pieces, p.tensors, None)
    except Exception as exc:  # noqa: BLE001
        log.debug("could not record tensor digests of %s: %s", ck.ref, exc)
    return out


def variables(backend: Backend, ref: str | Ref | Any) -> list[VariableInfo]:
    """The checkpoint's variables with their readable names, in readable-name order."""
    ck = checkpoint_of(backend, ref)
    with backend.db.read() as conn:
        return Q.variables(conn, ck.id)


def diff(backend: Backend, a: str | Ref | Any, b: str | Ref | Any, *, stats: bool = False) -> VariableDiff:
    """See :meth:`ckptstore.store.Store.diff_variables` and :func:`~.tensor_diff.diff_checkpoints`."""
    cka, ckb = checkpoint_of(backend, a), checkpoint_of(backend, b)

    def record(fills: list[tuple[str, int, int, str]]) -> None:
        try:  # remembered for next time; an optimisation only (the store may be read-only)
            with backend.db.write() as conn:
                MP.fill_digests(conn, fills)
        except Exception as exc:  # noqa: BLE001
            log.debug("could not record tensor digests: %s", exc)

    return tensor_diff.diff_checkpoints(
        backend.db.sql_read, backend.files, cka, ckb, stats=stats,
        on_demand=lambda ck, files: _digest_on_demand(backend, ck, files), record=record,
    )


# --------------------------------------------------------------------------- space


def space(backend: Backend, runs: list[str] | None = None) -> list[SpaceUsage]:
    """Logical against stored bytes, per run (all runs, or ``runs``) and for the whole store."""
    from ..metadata import space as SQ
    from ..metadata.queries import sql_of

    with backend.db.read() as conn:
        return SQ.space_usage(sql_of(conn), runs)


def repack(backend: Backend) -> int:
    """Record pieces and per-tensor digests for every data file saved before tensor-level
    storage (the bytes stay where they are): later saves then re-use their tensors and diffs
    need no on-demand digests. Returns how many files were indexed."""
    from sqlalchemy import select

    from ..metadata import schema as S

    with backend.db.read() as conn:
        c, cf = S.checkpoints, S.checkpoint_files
        rows = conn.execute(select(c.c.id, cf.c.digest).join(cf, cf.c.checkpoint_id == c.c.id).where(cf.c.role == "data")).all()
        have = set(MP.tensors(conn, [r.digest for r in rows]))
    todo: dict[int, None] = {r.id: None for r in rows if r.digest not in have}
    n = 0
    for cid in todo:
        with backend.db.read() as conn:
            try:
                ck = Q.checkpoint_by_id(conn, cid)
            except CkptstoreError:
                continue  # deleted meanwhile
        missing = [f for f in ck.files if f.role == "data" and f.digest not in have]
        if missing:
            _digest_on_demand(backend, ck, missing)
            have.update(f.digest for f in missing)
            n += len(missing)
    return n

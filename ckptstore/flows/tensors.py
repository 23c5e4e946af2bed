"""Checkpoints compared tensor by tensor, and space accounting, from the digests recorded at save.

``diff`` says for every variable of two checkpoints (of one run or of different runs) whether it
was added, removed, changed in dtype or shape, changed in value, or identical, comparing the
blake3 digests of the tensors' bytes recorded at save (``files.pieces``): no TensorFlow, no
tensor bytes read. For checkpoints saved before tensor-level storage the digests are computed
once on demand from the stored index and data files, and recorded for next time.

``stats`` (``vars --diff --stats``) then reads only the tensors whose value changed, in chunks
of :data:`STATS_CHUNK` bytes from each side, so memory stays bounded whatever the tensor size.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import crc32c, parse_index
from ..errors import CkptstoreError, CorruptFileError
from ..files import pieces
from ..metadata import pieces as MP
from ..metadata import queries as Q
from ..names import Ref
from ..records import (
    CheckpointInfo,
    SpaceUsage,
    TensorStats,
    VariableChange,
    VariableDiff,
    VariableInfo,
    VariableStatus,
)
from .backend import Backend
from .resolve import checkpoint_of

log = logging.getLogger(__name__)

#: Bytes read from each side at a time by ``--stats``.
STATS_CHUNK = 8 << 20
FLOAT_DTYPES = ("float16", "float32", "float64")


@dataclass
class TensorLocation:
    file_digest: str
    extents: list[pieces.Extent] | None
    offset: int
    size: int
    digest: str | None  # blake3, None until needed (see files.pieces.DataPlan)
    crc: int | None
    extents_known: bool = True  # False: ``extents`` not read yet (None may mean "not loaded")


def _slice_prefix(key: str) -> str:
    # How a partitioned variable's slices are named (TF's OrderedCode of the name, NULs escaped).
    return pieces.db_name("\x00" + key + "\x00\x01")


def tensor_locations(backend: Backend, ck: CheckpointInfo, *, with_extents: bool = True,
                     rows: dict[str, dict[str, MP.TensorRow]] | None = None) -> dict[str, TensorLocation]:
    """{tensor name in the bundle: where its bytes are and their digest}, computing (and
    recording) the digests of data files saved before tensor-level storage. ``rows``: the
    ``file_tensors`` rows if the caller read them already."""
    data = [f for f in ck.files if f.role == "data"]
    if rows is None or with_extents:
        with backend.db.read() as conn:
            if rows is None:
                rows = MP.tensors(conn, [f.digest for f in data])
            layouts = MP.extents(conn, [f.digest for f in data]) if with_extents else {}
    else:
        layouts = {}
    rows = dict(rows)
    missing = [f for f in data if f.digest not in rows]
    if missing:
        rows.update(_digest_on_demand(backend, ck, missing))
    out: dict[str, TensorLocation] = {}
    for f in data:
        for name, (offset, size, digest, crc) in rows.get(f.digest, {}).items():
            out[name] = TensorLocation(f.digest, layouts.get(f.digest), offset, size, digest, crc, with_extents)
    return out


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


def _strong(backend: Backend, loc: TensorLocation, fills: list[tuple[str, int, int, str]], dtype: str | None = None) -> str:
    """The tensor's blake3, hashing its stored bytes if it has none yet (remembered in
    ``fills`` only once the bytes matched the index's crc32c). ``dtype``: the variable's; a
    string tensor's crc32c covers its lengths in another encoding, so its digest is used for
    this comparison but not recorded."""
    if loc.digest is None:
        if not loc.extents_known:
            with backend.db.read() as conn:
                loc.extents = MP.extents(conn, [loc.file_digest]).get(loc.file_digest)
            loc.extents_known = True
        import blake3

        # A digest is recorded only from bytes checked against something older than them: here
        # the crc32c TensorFlow wrote into the index at save. Bytes that rotted since would
        # otherwise become the tensor's digest and be served by read_variable as intact.
        checkable = loc.crc is not None and dtype is not None and dtype != "string"
        hasher, crc = blake3.blake3(), 0
        for chunk in pieces.read_chunks(backend.files, loc.file_digest, loc.extents, loc.offset, loc.size, STATS_CHUNK):
            hasher.update(chunk)
            if checkable:
                crc = crc32c(chunk, crc)
        h = hasher.hexdigest()
        if checkable and crc != loc.crc:
            raise CorruptFileError(
                f"stored file {loc.file_digest[:12]}: the bytes of a tensor at offset {loc.offset} do not match "
                "the crc32c recorded at save; the stored file was changed on disk (ckptstore verify)"
            )
        if checkable:
            fills.append((loc.file_digest, loc.offset, loc.size, h))
        loc.digest = h
    return loc.digest


def variable_identity(backend: Backend, locations: Mapping[str, TensorLocation], key: str,
                      fills: list[tuple[str, int, int, str]]) -> list[TensorLocation] | None:
    """The tensors holding variable ``key``'s value: itself, or a partitioned variable's slices."""
    loc = locations.get(key)
    if loc is None:
        return None
    if loc.size == 0:
        prefix = _slice_prefix(key)
        slices = [locations[n] for n in sorted(locations) if n.startswith(prefix)]
        if slices:
            return slices
    return [loc]


def same_value(backend: Backend, a: list[TensorLocation], b: list[TensorLocation], fills: list[tuple[str, int, int, str]],
               dtype: str | None = None) -> bool:
    """Whether two tensors (or slice lists) hold the same bytes: a different size or crc32c
    proves a change without reading anything; equal digests prove identity; a tensor whose
    digest was never needed before is hashed now (only when its crc32c matches)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.size != y.size or (x.crc is not None and y.crc is not None and x.crc != y.crc):
            return False
    for x, y in zip(a, b):
        if _strong(backend, x, fills, dtype) != _strong(backend, y, fills, dtype):
            return False
    return True


def variables(backend: Backend, ref: str | Ref | Any) -> list[VariableInfo]:
    """The checkpoint's variables with their readable names, in readable-name order."""
    ck = checkpoint_of(backend, ref)
    with backend.db.read() as conn:
        return Q.variables(conn, ck.id)


def diff(backend: Backend, a: str | Ref | Any, b: str | Ref | Any, *, stats: bool = False) -> VariableDiff:
    """See :meth:`ckptstore.store.Store.diff_variables`."""
    cka, ckb = checkpoint_of(backend, a), checkpoint_of(backend, b)
    # One read transaction for everything the digests need: every ``vars --diff`` takes this path.
    with backend.db.read() as conn:
        found = MP.variables_of(conn, [cka.id, ckb.id])
        readable = MP.readable_names_of(conn, [cka.id, ckb.id])
        rows = MP.tensors(conn, [f.digest for ck in (cka, ckb) for f in ck.files if f.role == "data"])
    # each side's variables carry their readable names, as ``vars --json`` lists them
    va = {k: VariableInfo(k, dt, sh, readable[cka.id].get(k)) for k, dt, sh in found[cka.id]}
    vb = {k: VariableInfo(k, dt, sh, readable[ckb.id].get(k)) for k, dt, sh in found[ckb.id]}
    # Each variable as the first checkpoint names it (the second's name for one only it has):
    # one name per row, the one `vars REF` shows beside it.
    names = {**readable[ckb.id], **readable[cka.id]}
    loc_a = tensor_locations(backend, cka, with_extents=stats, rows=rows)
    loc_b = tensor_locations(backend, ckb, with_extents=stats, rows=rows)
    fills: list[tuple[str, int, int, str]] = []
    added: list[VariableInfo] = []
    removed: list[VariableInfo] = []
    changed: list[VariableChange] = []
    value_changed: list[VariableInfo] = []
    identical: list[VariableInfo] = []
    statuses: list[VariableStatus] = []
    for key in sorted(va.keys() | vb.keys(), key=lambda k: names.get(k, k)):
        before, after = va.get(key), vb.get(key)
        st: TensorStats | None = None
        ta = variable_identity(backend, loc_a, key, fills) if before is not None else None
        tb = variable_identity(backend, loc_b, key, fills) if after is not None else None
        if before is None:
            assert after is not None  # every key is in one of the two
            status = "added"
            added.append(after)
        elif after is None:
            status = "removed"
            removed.append(before)
        elif (before.dtype, before.shape) != (after.dtype, after.shape):
            status = "dtype/shape changed"
            changed.append(VariableChange(key, before, after))
        elif ta is None or tb is None:
            status = "unknown"
        elif same_value(backend, ta, tb, fills, after.dtype):
            status = "identical"
            identical.append(after)
        else:
            status = "value changed"
            value_changed.append(after)
            if stats and after.dtype in FLOAT_DTYPES and len(ta) == 1 and len(tb) == 1 and ta[0].size:
                st = tensor_stats(backend, ta[0], tb[0], after.dtype)
        statuses.append(VariableStatus(names.get(key, key), key, status, before, after, st))
    if fills:
        try:  # remembered for next time; an optimisation only (the store may be read-only)
            with backend.db.write() as conn:
                MP.fill_digests(conn, fills)
        except Exception as exc:  # noqa: BLE001
            log.debug("could not record tensor digests: %s", exc)
    return VariableDiff(
        added=added, removed=removed, changed=changed,
        unchanged=len(va.keys() & vb.keys()) - len(changed),
        value_changed=value_changed, identical=identical, by_value=True, variables=statuses,
    )


def tensor_stats(backend: Backend, a: TensorLocation, b: TensorLocation, dtype: str) -> TensorStats | None:
    """max |Δ|, mean |Δ| and ‖a-b‖/‖a‖ of two float tensors, read chunk by chunk."""
    import numpy as np

    if a.size != b.size:
        return None
    dt = np.dtype(dtype).newbyteorder("<")
    step = max(dt.itemsize, STATS_CHUNK - STATS_CHUNK % dt.itemsize)
    area = backend.files
    max_abs, sum_abs, sum_d2, sum_a2, count = 0.0, 0.0, 0.0, 0.0, 0
    for off in range(0, a.size, step):
        n = min(step, a.size - off)
        xa = np.frombuffer(pieces.read_range(area, a.file_digest, a.extents, a.offset + off, n), dtype=dt)
        xb = np.frombuffer(pieces.read_range(area, b.file_digest, b.extents, b.offset + off, n), dtype=dt)
        if dt.itemsize < 4:
            xa, xb = xa.astype(np.float32), xb.astype(np.float32)
        d = xb - xa
        np.abs(d, out=d)
        if d.size:
            max_abs = max(max_abs, float(d.max()))
        # Sums per chunk in the tensor's precision (BLAS), accumulated across chunks in float64.
        sum_abs += float(d.sum(dtype=np.float64))
        sum_d2 += float(np.dot(d, d))
        sum_a2 += float(np.dot(xa, xa))
        count += d.size
    if not count:
        return None
    rel = (sum_d2 ** 0.5) / (sum_a2 ** 0.5) if sum_a2 else (0.0 if sum_d2 == 0 else float("inf"))
    return TensorStats(max_abs=max_abs, mean_abs=sum_abs / count, rel_l2=rel)


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

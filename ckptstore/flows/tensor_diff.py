"""Two checkpoints compared tensor by tensor, from the digests recorded at save, over SQL text.

``diff_checkpoints`` says for every variable of two checkpoints (of one run or of different
runs) whether it was added, removed, changed in dtype or shape, changed in value, or identical,
comparing the blake3 digests of the tensors' bytes recorded at save (``files.pieces``): no
TensorFlow, no tensor bytes read but those of a tensor whose digest was never taken. ``stats``
(``vars --diff --stats``) then reads only the tensors whose value changed, in chunks of
:data:`STATS_CHUNK` bytes from each side, so memory stays bounded whatever the tensor size.

The store runs it through SQLAlchemy (``flows/tensors.py``, which also digests and records the
data files of checkpoints saved before tensor-level storage); the CLI's ``vars --diff`` runs the
same function on a SQLite store through ``sqlite3`` (issue 26: 0.3 s). Nothing here imports
SQLAlchemy or TensorFlow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from ..bundle import crc32c
from ..errors import CorruptFileError
from ..files import pieces
from ..files.area import ObjectArea
from ..metadata import file_reads as F
from ..metadata.file_reads import Snapshot, TensorRow
from ..records import (
    CheckpointInfo,
    FileInfo,
    TensorStats,
    VariableChange,
    VariableDiff,
    VariableInfo,
    VariableStatus,
)

__all__ = ["FLOAT_DTYPES", "OnDemand", "STATS_CHUNK", "TensorLocation", "diff_checkpoints", "same_value",
           "tensor_locations", "tensor_stats", "variable_identity"]

#: Bytes read from each side at a time by ``--stats``.
STATS_CHUNK = 8 << 20
FLOAT_DTYPES = ("float16", "float32", "float64")

#: ``on_demand(ck, data_files)``: the ``file_tensors`` rows of data files that have none yet.
OnDemand = Callable[[CheckpointInfo, list[FileInfo]], dict[str, dict[str, TensorRow]]]


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


def tensor_locations(snapshot: Snapshot, ck: CheckpointInfo, on_demand: OnDemand, *, with_extents: bool = True,
                     rows: dict[str, dict[str, TensorRow]] | None = None) -> dict[str, TensorLocation]:
    """{tensor name in the bundle: where its bytes are and their digest}. ``rows``: the
    ``file_tensors`` rows if the caller read them already; ``on_demand(ck, files)`` gives the rows
    of data files saved before tensor-level storage (the store computes and records them)."""
    data = [f for f in ck.files if f.role == "data"]
    if rows is None or with_extents:
        with snapshot() as sql:
            if rows is None:
                rows = F.tensors(sql, [f.digest for f in data])
            layouts = F.extents(sql, [f.digest for f in data]) if with_extents else {}
    else:
        layouts = {}
    rows = dict(rows)
    missing = [f for f in data if f.digest not in rows]
    if missing:
        rows.update(on_demand(ck, missing))
    out: dict[str, TensorLocation] = {}
    for f in data:
        for name, (offset, size, digest, crc) in rows.get(f.digest, {}).items():
            out[name] = TensorLocation(f.digest, layouts.get(f.digest), offset, size, digest, crc, with_extents)
    return out


def _strong(snapshot: Snapshot, area: ObjectArea, loc: TensorLocation, fills: list[tuple[str, int, int, str]], dtype: str | None = None) -> str:
    """The tensor's blake3, hashing its stored bytes if it has none yet (remembered in
    ``fills`` only once the bytes matched the index's crc32c). ``dtype``: the variable's; a
    string tensor's crc32c covers its lengths in another encoding, so its digest is used for
    this comparison but not recorded."""
    if loc.digest is None:
        if not loc.extents_known:
            with snapshot() as sql:
                loc.extents = F.extents(sql, [loc.file_digest]).get(loc.file_digest)
            loc.extents_known = True
        import blake3

        # A digest is recorded only from bytes checked against something older than them: here
        # the crc32c TensorFlow wrote into the index at save. Bytes that rotted since would
        # otherwise become the tensor's digest and be served by read_variable as intact.
        checkable = loc.crc is not None and dtype is not None and dtype != "string"
        hasher, crc = blake3.blake3(), 0
        for chunk in pieces.read_chunks(area, loc.file_digest, loc.extents, loc.offset, loc.size, STATS_CHUNK):
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


def variable_identity(locations: Mapping[str, TensorLocation], key: str) -> list[TensorLocation] | None:
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


def same_value(snapshot: Snapshot, area: ObjectArea, a: list[TensorLocation], b: list[TensorLocation],
               fills: list[tuple[str, int, int, str]], dtype: str | None = None) -> bool:
    """Whether two tensors (or slice lists) hold the same bytes: a different size or crc32c
    proves a change without reading anything; equal digests prove identity; a tensor whose
    digest was never needed before is hashed now (only when its crc32c matches)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.size != y.size or (x.crc is not None and y.crc is not None and x.crc != y.crc):
            return False
    for x, y in zip(a, b):
        if _strong(snapshot, area, x, fills, dtype) != _strong(snapshot, area, y, fills, dtype):
            return False
    return True


def diff_checkpoints(
    snapshot: Snapshot, area: ObjectArea, cka: CheckpointInfo, ckb: CheckpointInfo, *, stats: bool = False,
    on_demand: OnDemand, record: Callable[[list[tuple[str, int, int, str]]], None] | None = None,
) -> VariableDiff:
    """See :meth:`ckptstore.store.Store.diff_variables`: ``cka`` to ``ckb``, their rows read by
    ``snapshot()``, their bytes (where a digest must be taken, or ``stats``) from ``area``.
    ``record(fills)`` may keep the tensor digests taken here (the store does, where it may write)."""
    # One read for everything the digests need: every ``vars --diff`` takes this path.
    with snapshot() as sql:
        found = F.variables_of(sql, [cka.id, ckb.id])
        readable = F.readable_names_of(sql, [cka.id, ckb.id])
        rows = F.tensors(sql, [f.digest for ck in (cka, ckb) for f in ck.files if f.role == "data"])
    # each side's variables carry their readable names, as ``vars --json`` lists them
    va = {k: VariableInfo(k, dt, sh, readable[cka.id].get(k)) for k, dt, sh in found[cka.id]}
    vb = {k: VariableInfo(k, dt, sh, readable[ckb.id].get(k)) for k, dt, sh in found[ckb.id]}
    # Each variable as the first checkpoint names it (the second's name for one only it has):
    # one name per row, the one `vars REF` shows beside it.
    ra, rb = readable[cka.id], readable[ckb.id]
    names = {**rb, **ra}
    # Rows pair a key of one checkpoint with the same key of the other. A TF2 checkpoint's keys
    # for optimizer slots are positions (model/optimizer/_variables/3): under two optimizers the
    # same position holds different variables (an Adam velocity, an SGD momentum), which the
    # names recorded at save tell apart. Such a key is two rows: removed, then added.
    rows_of: list[tuple[str, str | None, str | None]] = []  # (name shown, key in a, key in b)
    for key in va.keys() | vb.keys():
        if key in va and key in vb and key in ra and key in rb and not _same_variable(ra[key], rb[key]):
            rows_of += [(ra[key], key, None), (rb[key], None, key)]
        else:
            rows_of.append((names.get(key, key), key if key in va else None, key if key in vb else None))
    loc_a = tensor_locations(snapshot, cka, on_demand, with_extents=stats, rows=rows)
    loc_b = tensor_locations(snapshot, ckb, on_demand, with_extents=stats, rows=rows)
    fills: list[tuple[str, int, int, str]] = []
    added: list[VariableInfo] = []
    removed: list[VariableInfo] = []
    changed: list[VariableChange] = []
    value_changed: list[VariableInfo] = []
    identical: list[VariableInfo] = []
    statuses: list[VariableStatus] = []
    for name, key_a, key_b in sorted(rows_of, key=lambda r: (r[0], r[1] or "", r[2] or "")):
        before = va[key_a] if key_a is not None else None
        after = vb[key_b] if key_b is not None else None
        vkey = key_a if key_a is not None else key_b
        assert vkey is not None  # every row has a side
        st: TensorStats | None = None
        ta = variable_identity(loc_a, vkey) if before is not None else None
        tb = variable_identity(loc_b, vkey) if after is not None else None
        if before is None:
            assert after is not None
            status = "added"
            added.append(after)
        elif after is None:
            status = "removed"
            removed.append(before)
        elif (before.dtype, before.shape) != (after.dtype, after.shape):
            status = "dtype/shape changed"
            changed.append(VariableChange(vkey, before, after))
        elif ta is None or tb is None:
            status = "unknown"
        elif same_value(snapshot, area, ta, tb, fills, after.dtype):
            status = "identical"
            identical.append(replace(after, readable=name if name != vkey else after.readable))
        else:
            status = "value changed"
            value_changed.append(replace(after, readable=name if name != vkey else after.readable))
            if stats and after.dtype in FLOAT_DTYPES and len(ta) == 1 and len(tb) == 1 and ta[0].size:
                st = tensor_stats(area, ta[0], tb[0], after.dtype)
        statuses.append(VariableStatus(name, vkey, status, before, after, st))
    if fills and record is not None:
        record(fills)
    paired = sum(1 for _, a, b in rows_of if a is not None and b is not None)
    return VariableDiff(
        added=added, removed=removed, changed=changed,
        unchanged=paired - len(changed),
        value_changed=value_changed, identical=identical, by_value=True, variables=statuses,
    )


def tensor_stats(area: ObjectArea, a: TensorLocation, b: TensorLocation, dtype: str) -> TensorStats | None:
    """max |Δ|, mean |Δ| and ‖a-b‖/‖a‖ of two float tensors, read chunk by chunk."""
    import numpy as np

    if a.size != b.size:
        return None
    dt = np.dtype(dtype).newbyteorder("<")
    step = max(dt.itemsize, STATS_CHUNK - STATS_CHUNK % dt.itemsize)
    max_abs, sum_abs, sum_d2, sum_a2, count = 0.0, 0.0, 0.0, 0.0, 0
    checks = [_Check(a), _Check(b)]
    for off in range(0, a.size, step):
        n = min(step, a.size - off)
        raw_a = pieces.read_range(area, a.file_digest, a.extents, a.offset + off, n)
        raw_b = pieces.read_range(area, b.file_digest, b.extents, b.offset + off, n)
        checks[0].update(raw_a)
        checks[1].update(raw_b)
        xa = np.frombuffer(raw_a, dtype=dt)
        xb = np.frombuffer(raw_b, dtype=dt)
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
    for check in checks:
        check.done()
    if not count:
        return None
    rel = (sum_d2 ** 0.5) / (sum_a2 ** 0.5) if sum_a2 else (0.0 if sum_d2 == 0 else float("inf"))
    return TensorStats(max_abs=max_abs, mean_abs=sum_abs / count, rel_l2=rel)


class _Check:
    """The bytes of one tensor as ``stats`` reads them, checked against what was recorded before
    them (its blake3 digest, else the crc32c TensorFlow wrote into the index): numbers computed
    from bytes that rotted since would be shown as the checkpoint's."""

    def __init__(self, loc: TensorLocation) -> None:
        import blake3

        self.loc = loc
        self.hasher = blake3.blake3() if loc.digest is not None else None
        self.crc = 0

    def update(self, data: bytes) -> None:
        if self.hasher is not None:
            self.hasher.update(data)
        elif self.loc.crc is not None:
            self.crc = crc32c(data, self.crc)

    def done(self) -> None:
        loc = self.loc
        if self.hasher is not None:
            intact = self.hasher.hexdigest() == loc.digest
        else:
            intact = loc.crc is None or self.crc == loc.crc
        if not intact:
            raise CorruptFileError(
                f"stored file {loc.file_digest[:12]}: the bytes of a tensor at offset {loc.offset} do not match "
                "the digest recorded at save; the stored file was changed on disk (ckptstore verify)"
            )


_COUNTER = re.compile(r"_\d+$")


def _same_variable(a: str, b: str) -> bool:
    """Whether two readable names recorded for one key name the same variable, up to the
    numbers Keras appends to the names it gives per process (``dense_4`` in one run of a grid,
    ``dense_2`` in another; ``adam_3``, in checkpoints saved before optimizers were named by
    their kind)."""
    def plain(name: str) -> list[str]:
        return [_COUNTER.sub("", part) for part in name.split("/")]

    return plain(a) == plain(b)

"""Tensor-level storage: a data shard stored as tensor-aligned pieces, each kept once.

**Pieces.** The bundle index (``ckptstore.bundle``) says where each tensor's bytes are in its
data shard. A tensor of at least :data:`GROUP_BYTES` is a piece of its own; runs of smaller
tensors are grouped into one piece, so a model with thousands of biases and counters does not
produce thousands of rows and ranges. Every piece and every tensor gets a blake3 digest at save.

**Where the bytes go.** If none of a file's pieces is stored yet (the first save, or a training
step where every tensor changed) the file goes into the object area whole, exactly as before
(no copy, no extra object). Otherwise the bytes of the pieces not stored yet are written into
one new object (a *pack*), and the file is recorded as a list of extents: ranges of earlier
objects plus ranges of the pack. A tensor whose bytes did not change is then stored once
across steps, runs and imports, while the number of objects grows by at most one per file.
Objects are put like any file (``ObjectArea.put``; on a bucket ``put_many`` after an upload
intent, ``files.commit.commit_shared``), so every area backend stores them.

**Reading back.** A file with extents is assembled by copying those ranges in order (in-kernel
``copy_file_range`` where the area is local) while hashing them: the whole-file digest recorded
at save must match, so a rebuilt file is byte-identical or the read fails.

**Threshold.** ``GROUP_BYTES = 64 KiB`` (measured, see docs/architecture.md): below it the
per-range bookkeeping costs more than re-storing the bytes would save.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from ..bundle import Bundle, read_index
from ..errors import CorruptFileError
from .area import ObjectArea, StoredFile

#: Tensors smaller than this are grouped with their neighbours into one piece.
GROUP_BYTES = 64 << 10
#: A file is assembled from stored pieces only if that re-uses at least this share of it;
#: below, storing it whole costs less at restore than it saves in bytes.
MIN_REUSE_FRACTION = 0.02
_THREADED_MIN = 16 << 20

Extent = tuple[int, int, str, int]  # file offset, size, object digest, object offset


@dataclass
class DataPlan:
    """One staged data shard cut into pieces, with each piece's and tensor's identity.

    A piece or tensor of its own (at least :data:`GROUP_BYTES`) starts with its crc32c from the
    bundle index and no digest (None): hashing every byte of every save would cost more than
    TensorFlow's write. Its blake3 digest is computed only when another stored piece has the
    same crc32c and size (a candidate for the same bytes), to confirm the match. Grouped tiny
    tensors are always hashed (they are few bytes)."""

    name: str
    digest: str
    size: int
    pieces: list[list] = field(default_factory=list)  # [offset, size, digest | None, crc | None]
    tensors: list[list] = field(default_factory=list)  # [name, offset, size, digest | None, crc | None]


def db_name(name: str) -> str:
    """A bundle key as stored in the database: a partitioned variable's slice keys hold NUL
    bytes, which PostgreSQL text cannot."""
    return name.replace("\x00", "\\x00")


def _hash(view: memoryview) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO if len(view) >= _THREADED_MIN else 1)
    h.update(view)
    return h.hexdigest()


def cut(entries: Sequence[tuple[int, int]], size: int, group: int = GROUP_BYTES) -> list[tuple[int, int]]:
    """Piece boundaries (offset, size) covering [0, size): each tensor (offset, size) of at
    least ``group`` bytes alone, the others (and any gap) grouped until a group reaches ``group``."""
    out: list[tuple[int, int]] = []
    start = 0
    for off, n in sorted(entries):
        if off < start or off + n > size:
            continue  # overlapping or out of range: left inside the surrounding piece
        if n >= group:
            if off > start:
                out.append((start, off - start))
            out.append((off, n))
            start = off + n
        elif off + n - start >= group:
            out.append((start, off + n - start))
            start = off + n
    if start < size:
        out.append((start, size - start))
    return out


def plan_file(path: Path, digest: str, size: int, bundle: Bundle, shard: int, *, strong: bool = False) -> DataPlan:
    """Cut the data shard at ``path`` into pieces; hash the grouped ones (and, with ``strong``,
    every piece and tensor)."""
    plan = DataPlan(path.name, digest, size)
    entries = [e for e in bundle.shard_entries(shard) if e.offset + e.size <= size]
    if size == 0:
        plan.tensors = [[db_name(e.name), e.offset, 0, _hash(memoryview(b"")), e.crc32c] for e in entries]
        return plan
    own = {(e.offset, e.size): e for e in entries if e.size >= GROUP_BYTES}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            piece_digest: dict[tuple[int, int], str | None] = {}
            for off, n in cut([(e.offset, e.size) for e in entries], size):
                e = own.get((off, n))
                d = _hash(view[off : off + n]) if strong or e is None else None
                piece_digest[(off, n)] = d
                plan.pieces.append([off, n, d, e.crc32c if e is not None else None])
            for e in entries:
                key = (e.offset, e.size)
                d = piece_digest[key] if key in piece_digest else _hash(view[e.offset : e.offset + e.size])
                plan.tensors.append([db_name(e.name), e.offset, e.size, d, e.crc32c])
        finally:
            view.release()
    return plan


def confirm(path: Path, plan: DataPlan, offset: int, size: int) -> str:
    """Hash one piece of the staged file (a crc32c match is only a candidate) and record the
    digest in the plan, for the piece and the tensor it is."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        with memoryview(mm)[offset : offset + size] as view:
            d = _hash(view)
    for p in plan.pieces:
        if p[0] == offset and p[1] == size:
            p[2] = d
    for t in plan.tensors:
        if t[1] == offset and t[2] == size:
            t[3] = d
    return d


def hash_stored(area: ObjectArea, obj: str, offset: int, size: int) -> str:
    """blake3 of ``size`` bytes of object ``obj`` from ``offset``, read in chunks."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO if size >= _THREADED_MIN else 1)
    # Ranged reads: a bucket sends only this piece, not the whole object holding it.
    for start in range(offset, offset + size, 8 << 20):
        want = min(8 << 20, offset + size - start)
        buf = area.read_range(obj, start, want)
        if len(buf) != want:
            raise CorruptFileError(f"stored object {obj[:12]} is shorter than recorded")
        h.update(buf)
    return h.hexdigest()


def plan_checkpoint(prefix: Path, staged: Sequence[tuple[Path, str, int]]) -> dict[str, DataPlan]:
    """{data file name: plan} for the staged files of the checkpoint at ``prefix``."""
    from ..bundle import data_file_name

    bundle = read_index(prefix)
    n = bundle.header.num_shards
    by_name = {p.name: (p, d, size) for p, d, size in staged}
    plans = {}
    for shard in range(n):
        name = data_file_name(prefix.name, shard, n)
        if name in by_name:
            p, d, size = by_name[name]
            plans[name] = plan_file(p, d, size, bundle, shard)
    return plans


def store_assembled(
    area: ObjectArea,
    path: Path,
    plan: DataPlan,
    located: dict[str, tuple[str, int]],
    recorded: dict[str, str | None],
) -> tuple[list[Extent], StoredFile | None] | None:
    """Store the staged file ``path`` as extents over already-stored pieces (``located``:
    piece digest -> (object, offset)) plus one pack of the rest; call inside ``area.writing()``.

    Returns None when too little is re-used (the caller stores the file whole), else the
    extents and the pack put (None when every piece was stored already). The staged file is
    consumed unless None is returned.
    """
    result = pack_assembled(area, path, plan, located)
    if result is None:
        return None
    extents, pack = result
    stored = area.put(pack[0], pack[1], pack[2], recorded.get(pack[1])) if pack is not None else None
    return extents, stored


def pack_assembled(
    area: ObjectArea,
    path: Path,
    plan: DataPlan,
    located: dict[str, tuple[str, int]],
) -> tuple[list[Extent], tuple[Path, str, int] | None] | None:
    """:func:`store_assembled` without the put: the extents, and the pack as a local file
    (path, digest, size) for the caller to put (None when nothing is new). An area shared
    across hosts records an upload intent for the pack's digest first (``files.commit``)."""
    reused = sum(n for _, n, d, _ in plan.pieces if d is not None and d in located)
    if not reused or reused < plan.size * MIN_REUSE_FRACTION:
        return None
    # Objects can vanish only under the exclusive lock, which our shared one excludes; but a
    # row may name an object damaged or lost since: check sizes before relying on them.
    ok_objects = {}
    for obj in {located[d][0] for _, _, d, _ in plan.pieces if d is not None and d in located}:
        ok_objects[obj] = area.size_of(obj)
    extents: list[Extent] = []
    pack_path = path.with_name(path.name + ".pack")
    pack_hash = blake3.blake3()
    pack_size = 0
    in_pack: dict[str, int] = {}
    with open(path, "rb") as f, open(pack_path, "wb") as out:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if plan.size else None
        try:
            view = memoryview(mm) if mm is not None else memoryview(b"")
            for off, n, d, _ in plan.pieces:
                loc = located.get(d) if d is not None else None
                if loc is not None and (ok_objects.get(loc[0]) or -1) >= loc[1] + n:
                    extents.append((off, n, loc[0], loc[1]))
                    continue
                if d is None:
                    d = f"@{off}"  # never confirmed: no other piece is known to hold these bytes
                if d not in in_pack:  # the same bytes twice in one file (zero-initialised slots) once
                    with view[off : off + n] as chunk:
                        out.write(chunk)
                        pack_hash.update(chunk)
                    in_pack[d] = pack_size
                    pack_size += n
                extents.append((off, n, "", in_pack[d]))
            view.release()
        finally:
            if mm is not None:
                mm.close()
    pack: tuple[Path, str, int] | None = None
    if pack_size:
        pd = pack_hash.hexdigest()
        pack = (pack_path, pd, pack_size)
        extents = [(o, n, pd if obj == "" else obj, oo) for o, n, obj, oo in extents]
    else:
        pack_path.unlink()
    path.unlink()
    return _coalesce(extents), pack


def _coalesce(extents: list[Extent]) -> list[Extent]:
    out: list[Extent] = []
    for o, n, obj, oo in extents:
        if out:
            po, pn, pobj, poo = out[-1]
            if pobj == obj and po + pn == o and poo + pn == oo:
                out[-1] = (po, pn + n, obj, poo)
                continue
        out.append((o, n, obj, oo))
    return out


# --------------------------------------------------------------------------- reading back


def assemble(area: ObjectArea, extents: Sequence[Extent], digest: str, size: int, dst: Path | None, *, check: bool = True) -> None:
    """Write the file laid out by ``extents`` to the new file ``dst`` (created exclusively; None
    only checks); with ``check``, its blake3 must be ``digest`` (else :class:`CorruptFileError`)."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO if size >= _THREADED_MIN else 1)
    total = 0
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644) if dst is not None else None
    try:
        out = open(fd, "wb", closefd=False) if fd is not None else None
        try:
            for off, n, obj, oo in extents:
                if off != total:
                    raise CorruptFileError(f"stored layout of {digest[:12]} has a gap at byte {total}")
                with area.open(obj) as src:
                    src.seek(oo)
                    left = n
                    while left:
                        buf = src.read(min(left, 8 << 20))
                        if not buf:
                            raise CorruptFileError(f"stored object {obj[:12]} is shorter than the file {digest[:12]} needs")
                        if out is not None:
                            out.write(buf)
                        if check:
                            h.update(buf)
                        left -= len(buf)
                total += n
        finally:
            if out is not None:
                out.close()
    finally:
        if fd is not None:
            os.close(fd)
    if total != size or (check and h.hexdigest() != digest):
        if dst is not None:
            os.unlink(dst)
        raise CorruptFileError(
            f"stored file {digest[:12]} rebuilt from its pieces does not match its digest: a piece was changed on disk"
        )


def read_range(area: ObjectArea, file_digest: str, extents: Sequence[Extent] | None, offset: int, size: int) -> bytes:
    """Bytes [offset, offset + size) of a stored file, reading only the objects holding them."""
    parts = []
    want_end = offset + size
    layout = extents if extents is not None else [(0, want_end, file_digest, 0)]
    pos = offset
    for off, n, obj, oo in layout:
        if pos >= want_end:
            break
        if off + n <= pos or off >= want_end:
            continue
        take = min(off + n, want_end) - pos
        data = area.read_range(obj, oo + pos - off, take)
        if len(data) != take:
            raise CorruptFileError(f"stored object {obj[:12]} is shorter than recorded")
        parts.append(data)
        pos += take
    out = b"".join(parts)
    if len(out) != size:
        raise CorruptFileError(f"stored file {file_digest[:12]} has no bytes {offset}..{want_end}")
    return out


def read_chunks(area: ObjectArea, file_digest: str, extents: Sequence[Extent] | None, offset: int, size: int, chunk: int):  # noqa: ANN201
    """Bytes [offset, offset + size) of a stored file, ``chunk`` bytes at a time."""
    for off in range(offset, offset + size, chunk):
        yield read_range(area, file_digest, extents, off, min(chunk, offset + size - off))


def hash_stream(chunks) -> str:  # noqa: ANN001
    h = blake3.blake3()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def hash_bytes(data: bytes) -> str:
    return _hash(memoryview(data))


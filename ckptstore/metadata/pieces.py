"""Reads and writes of the tensor-level tables (``file_pieces``, ``file_tensors``,
``file_extents``, ``variable_names``): functions of an open connection, like ``queries`` and
``writes``. See ``files.pieces`` for what they mean."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from . import file_reads
from . import schema as S
from .engine import sql_of
from .file_reads import TensorRow  # offset, size, digest, crc32c (re-exported)

_CHUNK = 500

Extent = file_reads.Extent  # file offset, size, object digest, object offset


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _insert_missing(conn: Connection, table: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, batched: the rows are keyed by content, so another
    save of the same bytes may have written them already."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as ins
    else:
        from sqlalchemy.dialects.sqlite import insert as ins  # type: ignore[assignment]
    for chunk in _chunks(rows):
        conn.execute(ins(table).on_conflict_do_nothing(index_elements=keys), list(chunk))


# --------------------------------------------------------------------------- reads


def extents(conn: Connection, file_digests: Iterable[str]) -> dict[str, list[Extent]]:
    """The layout of every assembled file among ``file_digests`` (files stored whole are absent)."""
    return file_reads.extents(sql_of(conn), file_digests)


def blob_sizes(conn: Connection, digests: Iterable[str]) -> dict[str, tuple[int, str | None]]:
    """(size, stat signature) of each recorded blob among ``digests``."""
    return file_reads.blob_sizes(sql_of(conn), digests)


def _objects_at(conn: Connection, found: dict[Any, tuple[str, int]]) -> dict[Any, tuple[str, int]]:
    """(file digest, offset) -> (object, object offset), through the extents of assembled files."""
    layouts = extents(conn, {f for f, _ in found.values()})
    out: dict[Any, tuple[str, int]] = {}
    for k, (file_digest, offset) in found.items():
        layout = layouts.get(file_digest)
        if layout is None:
            out[k] = (file_digest, offset)  # a file stored whole is its own object
            continue
        for off, size, obj, obj_off in layout:
            if off <= offset < off + size:
                out[k] = (obj, obj_off + offset - off)
                break
    return out


def locate_pieces(conn: Connection, digests: Iterable[str]) -> dict[str, tuple[str, int]]:
    """Where the bytes of each already-stored piece among ``digests`` are: (object, offset)."""
    digests = list(dict.fromkeys(digests))
    found: dict[str, tuple[str, int]] = {}
    for chunk in _chunks(digests):
        for r in conn.execute(select(S.file_pieces.c.digest, S.file_pieces.c.file_digest, S.file_pieces.c.offset).where(S.file_pieces.c.digest.in_(chunk))):
            found.setdefault(r.digest, (r.file_digest, r.offset))
    return _objects_at(conn, found)


Candidate = tuple[str, int, str | None, str, int]  # file digest, offset, digest, object, object offset


def crc_candidates(conn: Connection, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], list[Candidate]]:
    """Stored pieces with the same (crc32c, size) as each of ``keys``: maybe the same bytes."""
    keys = set(keys)
    rows: dict[tuple[str, int], tuple[tuple[int, int], str | None]] = {}
    crcs = sorted({c for c, _ in keys})
    p = S.file_pieces
    for chunk in _chunks(crcs):
        for r in conn.execute(select(p.c.file_digest, p.c.offset, p.c.size, p.c.digest, p.c.crc32c).where(p.c.crc32c.in_(chunk))):
            if (r.crc32c, r.size) in keys:
                rows[(r.file_digest, r.offset)] = ((r.crc32c, r.size), r.digest)
    where = _objects_at(conn, {k: k for k in rows})
    out: dict[tuple[int, int], list[Candidate]] = {}
    for (fd, off), (key, digest) in rows.items():
        if (fd, off) in where:
            obj, oo = where[(fd, off)]
            out.setdefault(key, []).append((fd, off, digest, obj, oo))
    return out



def tensors(conn: Connection, file_digests: Iterable[str]) -> dict[str, dict[str, TensorRow]]:
    """{file digest: {tensor name: (offset, size, digest, crc32c)}} for the files recorded tensor by tensor."""
    return file_reads.tensors(sql_of(conn), file_digests)


def variables_of(conn: Connection, checkpoint_ids: Sequence[int]) -> dict[int, list[tuple[str, str, list[int]]]]:
    """{checkpoint id: [(key, dtype, shape)]} in one query (the diff's hot path)."""
    return file_reads.variables_of(sql_of(conn), checkpoint_ids)


def readable_names_of(conn: Connection, checkpoint_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    return file_reads.readable_names_of(sql_of(conn), checkpoint_ids)


def readable_names(conn: Connection, checkpoint_id: int) -> dict[str, str]:
    """{checkpoint key: readable name} recorded at save."""
    v = S.variable_names
    return dict(conn.execute(select(v.c.key, v.c.readable).where(v.c.checkpoint_id == checkpoint_id)).all())


# --------------------------------------------------------------------------- writes


def record_layout(
    conn: Connection,
    file_digest: str,
    pieces: Sequence[Sequence[Any]],
    tensors_: Sequence[Sequence[Any]],
    extents_: Sequence[Extent] | None,
) -> None:
    """Pieces [offset, size, digest, crc32c], tensors [name, offset, size, digest, crc32c] and,
    for an assembled file, extents of the file ``file_digest`` (whose ``blobs`` row the caller
    has written)."""
    _insert_missing(conn, S.file_pieces, [
        {"file_digest": file_digest, "offset": o, "size": n, "digest": d, "crc32c": c} for o, n, d, c in pieces
    ], ["file_digest", "offset"])
    _insert_missing(conn, S.file_tensors, [
        {"file_digest": file_digest, "name": name, "offset": o, "size": n, "digest": d, "crc32c": c}
        for name, o, n, d, c in tensors_
    ], ["file_digest", "name"])
    fill_digests(conn, [(file_digest, p[0], p[1], p[2]) for p in pieces if p[2] is not None])
    # Another process may have recorded the same bytes (same digest) with another layout first:
    # both are right, but rows of the two must never mix.
    if extents_ and conn.execute(select(S.file_extents.c.offset).where(S.file_extents.c.file_digest == file_digest).limit(1)).first() is None:
        _insert_missing(conn, S.file_extents, [
            {"file_digest": file_digest, "offset": o, "size": n, "object_digest": obj, "object_offset": oo}
            for o, n, obj, oo in extents_
        ], ["file_digest", "offset"])


def fill_digests(conn: Connection, fills: Sequence[tuple[str, int, int, str]]) -> None:
    """Record blake3 digests computed later for pieces and tensors (file, offset, size, digest)
    that had none."""
    from sqlalchemy import and_, update

    for fd, off, n, d in fills:
        p, t = S.file_pieces, S.file_tensors
        conn.execute(update(p).where(and_(p.c.file_digest == fd, p.c.offset == off, p.c.size == n, p.c.digest.is_(None))).values(digest=d))
        conn.execute(update(t).where(and_(t.c.file_digest == fd, t.c.offset == off, t.c.size == n, t.c.digest.is_(None))).values(digest=d))


def record_readable_names(conn: Connection, checkpoint_id: int, names: Mapping[str, str]) -> None:
    rows = [{"checkpoint_id": checkpoint_id, "key": k, "readable": v} for k, v in names.items() if v and v != k]
    _insert_missing(conn, S.variable_names, rows, ["checkpoint_id", "key"])



"""TensorFlow's tensor-bundle ``.index`` read in pure Python: never imports TensorFlow.

A checkpoint's ``.index`` is a LevelDB-format table (``tensorflow/core/lib/io/table``):

* a 48-byte footer: the metaindex and index block handles (varints), padding, and a magic number;
* blocks of prefix-compressed entries (``shared``, ``non_shared``, ``value_len`` varints, the key
  suffix, the value) followed by restart offsets and their count; each block is followed by a
  5-byte trailer, the compression type and the masked crc32c of block + type;
* the index block maps the last key of each data block to that block's handle.

The empty key holds a ``BundleHeaderProto`` (num_shards, endianness, version); every other key
is a tensor name holding a ``BundleEntryProto`` (dtype, shape, shard_id, offset, size, crc32c,
slices). We decode those few protobuf fields with a small, bounded wire-format reader of our own:
the alternative, TensorFlow's generated protos, would import TensorFlow.

Every length and offset is checked against the bytes actually present, every loop is bounded by
them, and each block's crc32c is checked, so a damaged index raises :class:`BundleIndexError`
(never another exception, never a hang; ``tests/test_bundle.py`` fuzzes this).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import google_crc32c

from .errors import BundleIndexError

if TYPE_CHECKING:  # numpy is imported where an array is built, not with the module
    import numpy as np

#: The LevelDB table magic number that ends every ``.index`` footer.
TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5
_MASK_DELTA = 0xA282EAD8
#: Refuse an index larger than this: a real one is a few bytes per tensor.
MAX_INDEX_BYTES = 1 << 30

#: TensorFlow ``DataType`` enum values to numpy dtype names (little-endian); others (string,
#: bfloat16, quantized, resource, variant) have no plain numpy layout.
DTYPES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128",
    19: "float16", 22: "uint32", 23: "uint64",
}
NUMPY_DTYPES = frozenset(DTYPES.values()) - {"string", "bfloat16"}
#: How an entry names TensorFlow's ``DT_VARIANT`` (enum 21), e.g. a ``tf.data`` iterator's state.
_VARIANT = "dtype:21"


# --------------------------------------------------------------------------- crc32c


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``crc``."""
    return int(google_crc32c.extend(crc, bytes(data) if isinstance(data, memoryview) else data))


def unmask(masked: int) -> int:
    """LevelDB/TF store crc32c values masked (so a crc of data containing crcs stays useful)."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class BundleHeader:
    num_shards: int
    little_endian: bool
    version: int


@dataclass(frozen=True)
class BundleEntry:
    """One saved tensor (or, with ``slices``, the parent of a partitioned variable's slices)."""

    name: str
    dtype: str  # numpy-style name ("float32"), "string", or "dtype:<enum>" for the exotic ones
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  # unmasked
    slices: tuple[tuple[tuple[int, int], ...], ...] = field(default=())

    @property
    def has_data(self) -> bool:
        return not self.slices


@dataclass(frozen=True)
class Bundle:
    header: BundleHeader
    entries: dict[str, BundleEntry]

    def shard_entries(self, shard: int) -> list[BundleEntry]:
        """The entries with bytes in data shard ``shard``, in file order."""
        return sorted((e for e in self.entries.values() if e.has_data and e.shard_id == shard), key=lambda e: e.offset)


# --------------------------------------------------------------------------- wire format


def _bad(why: str, name: str) -> BundleIndexError:
    return BundleIndexError(f"{name} is not a readable tensor-bundle index: {why}")


def _varint(buf: bytes, pos: int, end: int, name: str, bits: int = 64) -> tuple[int, int]:
    result = 0
    shift = 0
    limit = (bits + 6) // 7
    for _ in range(limit):
        if pos >= end:
            raise _bad("a number runs past the end of its block", name)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & ((1 << bits) - 1), pos
        shift += 7
    raise _bad("a number is too long", name)


def _fields(buf: bytes, name: str) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message; bytes for length-delimited."""
    out: list[tuple[int, int, object]] = []
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos, end, name)
        num, wt = tag >> 3, tag & 7
        if num == 0:
            raise _bad("a protobuf field number is 0", name)
        if wt == 0:
            v, pos = _varint(buf, pos, end, name)
            out.append((num, wt, v))
        elif wt == 1:
            if pos + 8 > end:
                raise _bad("a protobuf field runs past its message", name)
            out.append((num, wt, struct.unpack_from("<Q", buf, pos)[0]))
            pos += 8
        elif wt == 5:
            if pos + 4 > end:
                raise _bad("a protobuf field runs past its message", name)
            out.append((num, wt, struct.unpack_from("<I", buf, pos)[0]))
            pos += 4
        elif wt == 2:
            n, pos = _varint(buf, pos, end, name)
            if n > end - pos:
                raise _bad("a protobuf field runs past its message", name)
            out.append((num, wt, buf[pos : pos + n]))
            pos += n
        else:
            raise _bad(f"unsupported protobuf wire type {wt}", name)
    return out


def _int(v: object, name: str, bits: int = 64, signed: bool = True) -> int:
    if not isinstance(v, int):
        raise _bad("a protobuf field has the wrong wire type", name)
    v &= (1 << bits) - 1
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


def _msg(v: object, name: str) -> bytes:
    if not isinstance(v, (bytes, bytearray)):
        raise _bad("a protobuf field has the wrong wire type", name)
    return bytes(v)


def _header(value: bytes, name: str) -> BundleHeader:
    shards, endian, version = 1, 0, 0
    for num, _, v in _fields(value, name):
        if num == 1:
            shards = _int(v, name, 32)
        elif num == 2:
            endian = _int(v, name, 32)
        elif num == 3:
            for vn, _, vv in _fields(_msg(v, name), name):
                if vn == 1:
                    version = _int(vv, name, 32)
    if shards < 1 or shards > 1 << 20:
        raise _bad(f"the header names {shards} shards", name)
    return BundleHeader(num_shards=shards, little_endian=endian == 0, version=version)


def _shape(buf: bytes, name: str) -> tuple[int, ...]:
    dims = []
    for num, _, v in _fields(buf, name):
        if num == 2:
            size = 0
            for dn, _, dv in _fields(_msg(v, name), name):
                if dn == 1:
                    size = _int(dv, name)
            dims.append(size)
        elif num == 3 and v:
            raise _bad("a saved tensor has an unknown rank", name)
    return tuple(dims)


def _slice(buf: bytes, name: str) -> tuple[tuple[int, int], ...]:
    extents = []
    for num, _, v in _fields(buf, name):
        if num == 1:
            start, length = 0, -1  # length absent: the whole dimension
            for en, _, ev in _fields(_msg(v, name), name):
                if en == 1:
                    start = _int(ev, name)
                elif en == 2:
                    length = _int(ev, name)
            extents.append((start, length))
    return tuple(extents)


def _entry(key: str, value: bytes, name: str) -> BundleEntry:
    dtype, shard, offset, size, crc = 0, 0, 0, 0, 0
    shape: tuple[int, ...] = ()
    slices = []
    for num, _, v in _fields(value, name):
        if num == 1:
            dtype = _int(v, name, 32)
        elif num == 2:
            shape = _shape(_msg(v, name), name)
        elif num == 3:
            shard = _int(v, name, 32)
        elif num == 4:
            offset = _int(v, name)
        elif num == 5:
            size = _int(v, name)
        elif num == 6:
            crc = _int(v, name, 32, signed=False)
        elif num == 7:
            slices.append(_slice(_msg(v, name), name))
    if offset < 0 or size < 0 or shard < 0 or any(d < 0 for d in shape):
        raise _bad(f"tensor {key!r} has a negative offset, size, shard or dimension", name)
    return BundleEntry(
        name=key, dtype=DTYPES.get(dtype, f"dtype:{dtype}"), shape=shape, shard_id=shard,
        offset=offset, size=size, crc32c=unmask(crc), slices=tuple(slices),
    )


# --------------------------------------------------------------------------- table


def _handle(buf: bytes, pos: int, end: int, name: str) -> tuple[int, int, int]:
    off, pos = _varint(buf, pos, end, name)
    size, pos = _varint(buf, pos, end, name)
    return off, size, pos


def _block(data: bytes, off: int, size: int, name: str) -> bytes:
    """The checked contents of the block at (off, size)."""
    if off + size + _TRAILER > len(data) - _FOOTER:
        raise _bad("a block lies outside the file (truncated?)", name)
    contents = data[off : off + size]
    kind = data[off + size]
    (stored,) = struct.unpack_from("<I", data, off + size + 1)
    if unmask(stored) != crc32c(data[off : off + size + 1]):
        raise _bad(f"block at byte {off} fails its checksum", name)
    if kind != 0:
        what = "snappy-compressed" if kind == 1 else f"compression type {kind}"
        raise _bad(f"block at byte {off} is {what}; TensorFlow writes bundle indexes uncompressed", name)
    return contents


def _entries(block: bytes, name: str) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of one block, undoing the prefix compression."""
    if len(block) < 4:
        raise _bad("a block is shorter than its restart count", name)
    (nrestarts,) = struct.unpack_from("<I", block, len(block) - 4)
    if nrestarts > (len(block) - 4) // 4:
        raise _bad("a block's restart count exceeds its size", name)
    end = len(block) - 4 - 4 * nrestarts
    out: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < end:
        shared, pos = _varint(block, pos, end, name, 32)
        non_shared, pos = _varint(block, pos, end, name, 32)
        vlen, pos = _varint(block, pos, end, name, 32)
        if shared > len(key) or non_shared + vlen > end - pos:
            raise _bad("a block entry runs past its block", name)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        out.append((key, block[pos : pos + vlen]))
        pos += vlen
    return out


def parse_index(data: bytes, name: str = "index") -> Bundle:
    """Parse the bytes of a ``.index`` file; :class:`BundleIndexError` if they are damaged."""
    if len(data) < _FOOTER:
        raise _bad(f"{len(data)} bytes is shorter than a table footer", name)
    foot = len(data) - _FOOTER
    (magic,) = struct.unpack_from("<Q", data, len(data) - 8)
    if magic != TABLE_MAGIC:
        raise _bad("the table magic number is wrong", name)
    _, _, pos = _handle(data, foot, len(data) - 8, name)  # metaindex: TF writes it empty
    ioff, isize, _ = _handle(data, pos, len(data) - 8, name)
    index = _block(data, ioff, isize, name)
    header: BundleHeader | None = None
    entries: dict[str, BundleEntry] = {}
    seen_blocks: set[tuple[int, int]] = set()
    last = b""
    for _, handle in _entries(index, name):
        boff, bsize, _ = _handle(handle, 0, len(handle), name)
        if (boff, bsize) in seen_blocks:
            raise _bad("the index names one block twice", name)
        seen_blocks.add((boff, bsize))
        for key, value in _entries(_block(data, boff, bsize, name), name):
            if entries and key <= last:
                raise _bad("keys are out of order", name)
            last = key
            if key == b"":
                header = _header(value, name)
                continue
            # A partitioned variable's slices are stored under binary keys (TF's OrderedCode of
            # name and extents): shown escaped, never exposed as variables.
            k = key.decode("utf-8", "backslashreplace")
            entries[k] = _entry(k, value, name)
    if header is None:
        raise _bad("the bundle header is missing", name)
    for e in entries.values():
        if e.has_data and e.shard_id >= header.num_shards:
            raise _bad(f"tensor {e.name!r} is in shard {e.shard_id} of {header.num_shards}", name)
    return Bundle(header=header, entries=entries)


def read_index(path: str | os.PathLike[str]) -> Bundle:
    """Parse the ``.index`` file at ``path`` (a prefix is accepted too)."""
    p = Path(path)
    if not p.name.endswith(".index"):
        p = p.with_name(p.name + ".index")
    size = p.stat().st_size
    if size > MAX_INDEX_BYTES:
        raise _bad(f"{size} bytes is too large for an index", p.name)
    return parse_index(p.read_bytes(), p.name)


#: TensorFlow's ``TensorShape`` holds at most this many dimensions (``TensorShapeRep::MaxDimensions``);
#: its reader aborts the process (a CHECK) on more, so we refuse them first.
MAX_RANK = 254
_ITEMSIZE = {
    "float32": 4, "float64": 8, "int32": 4, "uint8": 1, "int16": 2, "int8": 1, "complex64": 8,
    "int64": 8, "bool": 1, "bfloat16": 2, "uint16": 2, "complex128": 16, "float16": 2,
    "uint32": 4, "uint64": 8,
}


def check_consistent(bundle: Bundle, shard_sizes: dict[int, int], name: str = "index") -> None:
    """Refuse (:class:`BundleIndexError`) an index TensorFlow must not be handed, checked
    without reading any tensor: more dimensions than TensorFlow allows, a shape whose element
    count overflows int64 (TensorFlow aborts the process on both), a fixed-size dtype whose byte
    size disagrees with its shape, or bytes past the end of their data shard. ``shard_sizes``:
    {shard number: size in bytes of its data file}, one per shard the header names."""
    if sorted(shard_sizes) != list(range(bundle.header.num_shards)):
        raise _bad(f"the header names {bundle.header.num_shards} data shards, {len(shard_sizes)} are present", name)
    limit = (1 << 63) - 1
    for e in bundle.entries.values():
        shapes = [e.shape, *(tuple(n for _, n in s) for s in e.slices)]
        for shape in shapes:
            if len(shape) > MAX_RANK:
                raise _bad(f"tensor {e.name!r} has {len(shape)} dimensions (TensorFlow allows {MAX_RANK})", name)
        for extents in e.slices:
            if len(extents) != len(e.shape) or any(st < 0 or n < -1 or (n >= 0 and st + n > d) for (st, n), d in zip(extents, e.shape)):
                raise _bad(f"tensor {e.name!r} has a slice outside its shape", name)
        count = 1
        for d in e.shape:
            count *= d
            if count > limit:
                raise _bad(f"tensor {e.name!r} has a shape of more than 2**63 elements", name)
        if not e.has_data:
            continue
        item = _ITEMSIZE.get(e.dtype)
        if e.dtype == "string" and count > e.size:  # each string takes at least its length's byte
            raise _bad(f"tensor {e.name!r} of shape {list(e.shape)} cannot hold its strings in {e.size} bytes", name)
        if item is not None and count * item != e.size:
            raise _bad(f"tensor {e.name!r} of shape {list(e.shape)} and dtype {e.dtype} cannot be {e.size} bytes", name)
        if e.offset + e.size > shard_sizes[e.shard_id]:
            raise _bad(f"tensor {e.name!r} ends at byte {e.offset + e.size} of a data shard of {shard_sizes[e.shard_id]} bytes", name)


def data_file_name(prefix_name: str, shard: int, num_shards: int) -> str:
    return f"{prefix_name}.data-{shard:05d}-of-{num_shards:05d}"


def check_tensor_crc(entry: BundleEntry, data: bytes | memoryview) -> bool:
    """Whether ``data`` (the entry's bytes in its shard) has the crc32c the index recorded.

    String tensors are laid out as varint lengths, a masked crc32c of those lengths, then the
    bytes; TensorFlow's checksum covers each length as a fixed 4- (or 8-) byte integer instead
    of its varint, so it is recomputed that way here.
    """
    if len(data) != entry.size:
        return False
    if entry.dtype == _VARIANT:
        return _variant_crc(entry, bytes(data)) == entry.crc32c
    if entry.dtype != "string":
        return crc32c(data) == entry.crc32c
    buf = bytes(data)
    n = 1
    for d in entry.shape:
        n *= d
    if n > len(buf):
        return False
    crc = 0
    pos = 0
    try:
        for _ in range(n):
            length, pos = _varint(buf, pos, len(buf), entry.name)
            crc = crc32c(struct.pack("<I", length) if length <= 0xFFFFFFFF else struct.pack("<Q", length), crc)
    except BundleIndexError:
        return False
    if pos + 4 > len(buf):
        return False
    crc = crc32c(buf[pos:], crc)
    return crc == entry.crc32c


def _variant_crc(entry: BundleEntry, buf: bytes) -> int | None:
    """The crc32c TensorFlow records for a variant tensor (a ``tf.data`` iterator's state), or
    None when the bytes are not laid out as one: each element is a varint length, the
    serialized ``VariantTensorDataProto`` and a masked crc32c of everything so far. The
    checksum covers each length as a fixed 8-byte integer, not its varint (TensorFlow's
    ``WriteVariantTensor``), and each element's own checksum must match as TensorFlow's reader
    requires."""
    n = 1
    for d in entry.shape:
        n *= d
    if n > len(buf):
        return None
    crc = 0
    pos = 0
    try:
        for _ in range(n):
            length, pos = _varint(buf, pos, len(buf), entry.name)
            if pos + length + 4 > len(buf):
                return None
            crc = crc32c(buf[pos : pos + length], crc32c(struct.pack("<Q", length), crc))
            pos += length
            (stored,) = struct.unpack_from("<I", buf, pos)
            if unmask(stored) != crc:
                return None
            crc = crc32c(buf[pos : pos + 4], crc)
            pos += 4
    except BundleIndexError:
        return None
    return crc if pos == len(buf) else None


def decode(entry: BundleEntry, data: bytes | memoryview) -> np.ndarray | None:
    """The numpy array the entry's bytes hold; None for dtypes without a plain numpy layout
    (strings, bfloat16, ...), which callers read through TensorFlow instead."""
    return decode_array(entry.dtype, entry.shape, data)


def decode_array(dtype: str, shape: tuple[int, ...] | list[int], data: bytes | memoryview) -> np.ndarray | None:
    """``data`` as a numpy array of ``dtype`` (a numpy name) and ``shape``; None if it has no
    plain little-endian numpy layout or the sizes disagree."""
    import numpy as np

    if dtype not in NUMPY_DTYPES:
        return None
    dt = np.dtype(dtype).newbyteorder("<")
    count = 1
    for d in shape:
        count *= int(d)
    if count * dt.itemsize != len(data):
        return None
    return np.frombuffer(data, dtype=dt).reshape(tuple(int(d) for d in shape))

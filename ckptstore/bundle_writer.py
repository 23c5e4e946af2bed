"""Write a tensor bundle (TensorFlow's V2 checkpoint format) from host arrays, digesting as it goes.

An asynchronous save holds its snapshot as host arrays. Handing them back to TensorFlow to
write (``SaveV2``) costs a copy through an 8 MB output buffer, TensorFlow's own crc32c pass,
the kernel's page-cache copy, and then a second read of the whole data file to digest it
(``benchmarks/async_save.py`` measures the difference). Here each tensor is written from its array
in 1 MB pieces, each fed, while in the core's cache, to the crc32c the index records and to the
blake3 digest the store names the file by: nothing is copied twice and nothing is read back.

The files are what TensorFlow's ``BundleWriter`` + ``MergeV2Checkpoints`` write for one shard,
byte for byte (``tests/test_bundle_writer.py`` compares them with ``tf.train.Checkpoint.write``
and ``Saver.save``):

* ``<prefix>.data-00000-of-00001``: the tensors' bytes in the order given, no padding. A string
  tensor is its lengths as varint64s, the masked crc32c of those lengths (each as a 4-byte
  integer, or 8 bytes above 4 GiB), then the strings;
* ``<prefix>.index``: a LevelDB table without compression (block size 256 KiB, restart interval
  16, index keys shortened as ``table_builder.cc`` does), mapping "" to a ``BundleHeaderProto``
  and each tensor name to its ``BundleEntryProto`` (dtype, shape, offset, size, masked crc32c).

Only plain tensors are written here: numbers, bools and strings, whole (no slices), on one
shard. Anything else (variants, resources, partitioned variables) is TensorFlow's to write,
and :func:`supported_dtype` says which is which. The data file is written under a temporary
name and renamed when complete, as TensorFlow does, so a crash never leaves a short file under
the final name. Pure Python and numpy: no TensorFlow import.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import blake3
import google_crc32c as _crc

from .bundle import DTYPES, TABLE_MAGIC, data_file_name, mask

#: Whether google-crc32c has its C extension: its pure-Python fallback would cost seconds per
#: 100 MB, and then TensorFlow writes every snapshot instead of this module.
AVAILABLE = _crc.implementation == "c"

STRING_ENUM = 7
#: TensorFlow ``DataType`` enum value of each numpy dtype name written here as raw bytes (the
#: reader's table, turned around).
NUMERIC_ENUMS = {name: enum for enum, name in DTYPES.items() if enum != STRING_ENUM}
_CHUNK = 1 << 20
_BLOCK_SIZE = 262144
_RESTART_INTERVAL = 16
# BundleHeaderProto{num_shards: 1, endianness: LITTLE (0, omitted), version {producer: 1}}
_HEADER = b"\x08\x01\x1a\x02\x08\x01"

#: One tensor to write: (name, TF DataType enum, shape, value). The value is a C-contiguous
#: numpy array for a numeric enum, and a sequence of bytes (row-major) for ``STRING_ENUM``.
Item = tuple[str, int, tuple[int, ...], Any]


def supported_dtype(enum: int) -> bool:
    return enum == STRING_ENUM or enum in _NUMERIC_SET


_NUMERIC_SET = frozenset(NUMERIC_ENUMS.values())


def write_bundle(prefix: str | os.PathLike[str], items: Sequence[Item]) -> dict[str, tuple[str, int]]:
    """Write the checkpoint ``prefix`` (its ``.data-00000-of-00001`` and ``.index``) holding
    ``items``, in that order in the data file. Returns {file name: (blake3 hex digest, size)}
    of both files. Raises ``ValueError`` for a duplicate name or an item this writer does not
    write (nothing is left under the final names then), ``OSError`` as writing does."""
    if not AVAILABLE:
        raise ValueError("google-crc32c has no C extension here")
    prefix = Path(prefix)
    names = [it[0] for it in items]
    if len(set(names)) != len(names) or "" in names:
        raise ValueError("tensor names must be unique and non-empty")
    data_path = prefix.parent / data_file_name(prefix.name, 0, 1)
    tmp = data_path.with_name(f"{data_path.name}.tempstate{secrets.randbits(63)}")
    entries: dict[bytes, bytes] = {}
    sink = _DataSink(tmp)
    try:
        for name, enum, shape, value in items:
            offset = sink.size
            if enum == STRING_ENUM:
                crc = _write_strings(sink, value)
            elif enum in _NUMERIC_SET:
                crc = sink.write(_raw_bytes(value), 0)
            else:
                raise ValueError(f"{name}: dtype {enum} is not written here")
            entries[name.encode("utf-8")] = _entry(enum, shape, offset, sink.size - offset, mask(crc))
        digest, size = sink.close()
    except BaseException:
        sink.abandon()
        raise
    os.replace(tmp, data_path)
    index = _table([(b"", _HEADER), *sorted(entries.items())])
    index_path = prefix.parent / f"{prefix.name}.index"
    _write_small(index_path, index)
    return {
        data_path.name: (digest, size),
        index_path.name: (blake3.blake3(index).hexdigest(), len(index)),
    }


# --------------------------------------------------------------------------- data file


class _DataSink:
    """The data file, written in order from the source arrays in 1 MB pieces, each fed to the
    digest and the tensor's crc32c right after it is written, while it is in the core's cache.

    Written buffered, as TensorFlow writes. ``O_DIRECT`` was measured too: it skips the
    page-cache copy, but the device write then happens during the save instead of in the
    kernel's writeback, and on the virtual machines here that I/O slowed a training loop on
    the same cores as much as the CPU it saved (``benchmarks/async_save.py``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.hasher = blake3.blake3(max_threads=1)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)

    def write(self, data: Any, crc: int) -> int:
        """Append ``data`` (a uint8 array or bytes); returns ``crc`` extended over it."""
        for start in range(0, len(data), _CHUNK):
            chunk = data[start:start + _CHUNK]
            view = memoryview(chunk)
            done = os.write(self.fd, view)
            while done < len(view):  # a short write (a signal, a nearly full disk) continues
                done += os.write(self.fd, view[done:])
            self.hasher.update(chunk)
            crc = _crc.extend(crc, chunk)
        self.size += len(data)
        return crc

    def close(self) -> tuple[str, int]:
        os.close(self.fd)
        self.fd = -1
        return self.hasher.hexdigest(), self.size

    def abandon(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.path.unlink(missing_ok=True)


def _raw_bytes(array: Any) -> Any:
    import numpy as np

    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise ValueError("a numeric tensor must be a C-contiguous numpy array")
    return array.reshape(-1).view(np.uint8)


def _write_strings(sink: _DataSink, values: Sequence[bytes]) -> int:
    lengths = bytearray()
    crc = 0
    for v in values:
        n = len(v)
        lengths += _varint(n)
        # TensorFlow checksums each length as the integer, not its varint.
        crc = _crc.extend(crc, struct.pack("<I", n) if n <= 0xFFFFFFFF else struct.pack("<Q", n))
    sink.write(bytes(lengths), 0)
    crc = sink.write(struct.pack("<I", mask(crc)), crc)
    for v in values:
        if len(v):
            crc = sink.write(bytes(v), crc)
    return crc


def _write_small(path: Path, data: bytes) -> None:
    """Write a small file under a temporary name and rename it, as TensorFlow does."""
    tmp = path.with_name(f"{path.name}.tempstate{secrets.randbits(63)}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- protobuf


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _entry(enum: int, shape: tuple[int, ...], offset: int, size: int, masked_crc: int) -> bytes:
    """A ``BundleEntryProto`` as TensorFlow serializes it: fields in number order, proto3 zero
    values left out, and the shape always present (``mutable_shape`` marks it set)."""
    dims = b"".join(b"\x12" + _varint(len(d)) + d for d in ((b"\x08" + _varint(n)) if n else b"" for n in shape))
    out = bytearray(b"\x08" + _varint(enum)) if enum else bytearray()
    out += b"\x12" + _varint(len(dims)) + dims
    if offset:
        out += b"\x20" + _varint(offset)
    if size:
        out += b"\x28" + _varint(size)
    if masked_crc:
        out += b"\x35" + struct.pack("<I", masked_crc)
    return bytes(out)


# --------------------------------------------------------------------------- LevelDB table


class _Block:
    """``table::BlockBuilder``: prefix-compressed entries, a restart point every ``interval``."""

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last = b""

    def empty(self) -> bool:
        return not self.buf

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.interval:
            limit = min(len(key), len(self.last))
            while shared < limit and key[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        self.buf += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        self.buf += key[shared:] + value
        self.last = key
        self.counter += 1

    def size_estimate(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        out = bytes(self.buf) + b"".join(struct.pack("<I", r) for r in self.restarts)
        return out + struct.pack("<I", len(self.restarts))


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n and start[i] < 0xFF and start[i] + 1 < limit[i]:
        return start[:i] + bytes([start[i] + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


def _table(items: list[tuple[bytes, bytes]]) -> bytes:
    """``table::TableBuilder`` without compression over sorted ``items``."""
    out = bytearray()

    def write_block(block: _Block) -> bytes:
        contents = block.finish()
        handle = _varint(len(out)) + _varint(len(contents))
        crc = _crc.extend(_crc.value(contents), b"\x00")  # the trailer's crc covers the type byte
        out.extend(contents + b"\x00" + struct.pack("<I", mask(crc)))
        return handle

    data, index = _Block(_RESTART_INTERVAL), _Block(1)
    pending: bytes = b""
    last = b""
    for n, (key, value) in enumerate(items):
        if n and len(key) + len(value) >= 2 * _BLOCK_SIZE and not data.empty():
            pending = write_block(data)
            data = _Block(_RESTART_INTERVAL)
        if pending:
            index.add(_shortest_separator(last, key), pending)
            pending = b""
        last = key
        data.add(key, value)
        if data.size_estimate() >= _BLOCK_SIZE:
            pending = write_block(data)
            data = _Block(_RESTART_INTERVAL)
    if not data.empty():
        pending = write_block(data)
    metaindex = write_block(_Block(_RESTART_INTERVAL))
    if pending:
        index.add(_short_successor(last), pending)
    index_handle = write_block(index)
    footer = (metaindex + index_handle).ljust(40, b"\x00")
    out += footer + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out)

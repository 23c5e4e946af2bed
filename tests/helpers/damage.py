"""Damaging stored files the way bit rot, a stray write or a careless user would.

Stored files are read-only (0444) and the tests may run as any user, so each helper makes the
file writable, changes it in place (same inode) and makes it read-only again.
"""

from __future__ import annotations

import os
from pathlib import Path


def flip_byte(path: Path, offset: int = 0) -> None:
    """Invert one byte: same size, other content."""
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    with open(path, "r+b") as f:
        f.write(raw)
    os.chmod(path, 0o444)


def truncate(path: Path) -> None:
    """Cut the file to half its size."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    os.chmod(path, 0o444)


DAMAGE = {"flipped": flip_byte, "truncated": truncate, "deleted": Path.unlink}

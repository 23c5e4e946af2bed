"""Read-only materialized copies of checkpoints, for APIs that insist on a file path.

``tf.train.Checkpoint.restore(path)``, ``tf.train.load_checkpoint(path)`` and a TF1
``Saver.restore(sess, path)`` take a path prefix, not a reference. :func:`cached_prefix` gives
one: the checkpoint written once (by :func:`checkpoints.materialize`, private copies, with its
``checkpoint`` state file and, for TF1, the run's nearest ``.meta``) into the object area's cache
directory (``<file root>/materialized/`` for a local store), under a name keyed by the
checkpoint's id and the digest of its index file, and reused while that checkpoint exists.

The copies are made read-only (0444): they stand for a committed checkpoint and must not drift
from it. Mode bits do not stop their owner, so each file's stat signature is recorded beside
them (``.ckptstore-signature``) once written, and a copy whose files changed since (written,
replaced, removed) is made again from the verified store before its path is handed out. A copy whose checkpoint was deleted (retention, ``delete``) is removed by the next call;
an interrupted materialization leaves only a ``.ckptstore-tmp`` directory there, removed the same
way. The cache is disposable: deleting the whole directory loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import ConflictError
from ..files.cache import current_signature, settled_signature
from ..files.local import STAGING_SUFFIX
from ..metadata import queries as Q
from ..records import CheckpointInfo
from .backend import Backend
from .checkpoints import materialize
from .resolve import checkpoint_of

log = logging.getLogger(__name__)

_NAME = re.compile(r"^c(\d+)-([0-9a-f]{16})$")
#: Exports loaded back (``flows.deploy_exports``) are cached beside, as ``e<id>-<digest>``.
_EXPORT_NAME = re.compile(r"^e(\d+)-([0-9a-f]{16})$")


def _key(ck: CheckpointInfo) -> str:
    index = next((f for f in ck.files if f.role == "index"), None)
    digest = index.digest if index is not None else min(f.digest for f in ck.files)
    return f"c{ck.id}-{digest[:16]}"


def cached_prefix(backend: Backend, ref: Any) -> Path:
    """A path prefix of a read-only copy of the checkpoint ``ref`` names (made on first use)."""
    ck = checkpoint_of(backend, ref)
    root = backend.files.cache_root()
    out = root / _key(ck)
    prefix = out / ck.prefix
    if (out / "checkpoint").is_file() and _changed(out):
        log.warning("the cached copy %s was changed on disk: writing it again from the store", out)
        # Moved aside, not removed: a reader may have its files open (prune removes it later).
        with contextlib.suppress(OSError):
            os.rename(out, root / f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{STAGING_SUFFIX}")
    if not (out / "checkpoint").is_file():
        prune(backend)
        try:
            materialize(backend, ck, out)
        except ConflictError:
            if not (out / "checkpoint").is_file():  # not another process finishing the same copy
                raise
        else:
            for p in out.iterdir():
                os.chmod(p, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            _record(out)
        log.debug("materialized %s into %s", ck.ref, out)
    return prefix


_SIGNATURE = ".ckptstore-signature"


def _files_of(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.name != _SIGNATURE)


def _record(out: Path) -> None:
    """Record the signature of every file of a fresh copy (nothing if one is not settled yet:
    the copy is then made again on next use, which costs a copy, never a wrong byte)."""
    lines = []
    for p in _files_of(out):
        sig = settled_signature(p)
        if sig is None:
            return
        lines.append(f"{p.name}\0{sig}")
    tmp = out / f"{_SIGNATURE}.{os.getpid()}{STAGING_SUFFIX}"
    try:
        tmp.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")
        os.replace(tmp, out / _SIGNATURE)
    except OSError as exc:
        log.debug("cannot record the signature of %s: %s", out, exc)


def _changed(out: Path) -> bool:
    """Whether a file of the copy is not the one written (other names or stat signatures). A
    copy without a record (made before records existed, or by a process still finishing it)
    gets one now."""
    try:
        text = (out / _SIGNATURE).read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        _record(out)
        return False
    except OSError:
        return False
    try:
        files = _files_of(out)
    except OSError:
        return True
    recorded = dict(line.split("\0", 1) for line in text.split("\n") if "\0" in line)
    return sorted(recorded) != [p.name for p in files] or any(current_signature(p) != recorded[p.name] for p in files)


def prune(backend: Backend) -> int:
    """Remove cached copies of checkpoints (and exports) that no longer exist; returns how many."""
    root = backend.files.cache_root()
    if not root.is_dir():
        return 0
    entries = {e.name: e for e in root.iterdir()}
    ids = {int(m.group(1)): name for name in entries if (m := _NAME.match(name))}
    eids = {int(m.group(1)): name for name in entries if (m := _EXPORT_NAME.match(name))}
    with backend.db.read() as conn:
        alive = Q.existing_checkpoints(conn, list(ids))
        alive_exports = Q.existing_exports(conn, list(eids))
    doomed = [entries[name] for i, name in ids.items() if i not in alive]
    doomed += [entries[name] for i, name in eids.items() if i not in alive_exports]
    doomed += [e for name, e in entries.items() if name.endswith(STAGING_SUFFIX) and _old(e)]
    for e in doomed:
        shutil.rmtree(e, ignore_errors=True)
    return len(doomed)


def _old(path: Path, seconds: float = 3600.0) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False

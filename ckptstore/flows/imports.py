"""Importing checkpoints that vanilla TensorFlow wrote (``Saver``, ``CheckpointManager``).

Everything is validated before anything is written: the prefixes, their steps and their index
files are read first, so a refused import leaves no run and no objects behind. Files are copied
into a staging directory and committed exactly like a save (``checkpoints.commit_checkpoint``);
the source directory is left as it was.

**Only regular files inside the named directory are read.** A ``checkpoint`` state file may name
any path and a shard may be a symlink to anything the importing user can read; both would copy
an outside file into the store, where ``restore`` hands it to whoever asks. So a prefix the
state file places elsewhere is looked for by its name inside the directory, and a symlink (or
anything but a regular file) among a prefix's files refuses the import; files are opened with
``O_NOFOLLOW`` so that a swap after the check is refused too.

**TensorFlow reads nothing unchecked.** Each index is parsed by the TF-free reader
(``bundle.py``) and checked against its data files (ranks, shapes, sizes, offsets) before
TensorFlow opens it: a crafted index makes TensorFlow's reader abort the process. The copied
data files are then checked tensor by tensor against the index's crc32c before anything is
stored, so the digests recorded for them describe bytes that TensorFlow wrote.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from ..bundle import MAX_INDEX_BYTES, Bundle, check_consistent, check_tensor_crc, data_file_name, parse_index
from ..errors import CorruptFileError, MetricValueError, NoCheckpointFoundError, UnknownRunError
from ..metadata import queries as Q
from ..metadata import writes as W
from ..names import check_run_name, check_step
from ..records import CheckpointInfo
from ..tf import formats
from ..tf.reader import list_variables, shard_count, step_from_prefix
from ..tf.state import STATE_FILE, parse
from .backend import Backend
from .checkpoints import commit_checkpoint

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None] | None


def _prefixes_in(directory: Path) -> list[Path]:
    state = directory / STATE_FILE
    named: list[Path] = []
    if state.is_file():
        try:
            st = parse(state.read_text(encoding="utf-8", errors="surrogateescape"))
            paths = [*st.all_model_checkpoint_paths, st.model_checkpoint_path]
        except (ValueError, OSError):
            paths = []  # not a state file we can read: fall back to the prefixes present
        for text in paths:
            # Saver writes absolute paths by default (the directory may have been moved or
            # copied since); whatever the state file says, only the prefix's name is used, in
            # this directory: a path elsewhere would import a checkpoint the user did not name.
            p = directory / Path(text).name
            if p not in named:
                named.append(p)
    named = [p for p in named if _complete(p)]
    candidates = named or [Path(str(p)[: -len(".index")]) for p in sorted(directory.glob("*.index"))]
    return [p for p in candidates if _complete(p)]


def _source_files(directory: Path, prefix: Path) -> list[Path]:
    """The prefix's files (index, data shards, graph), each a regular file in ``directory``;
    :class:`NoCheckpointFoundError` naming the first that is not (a symlink, a device, ...)."""
    out = []
    for p in sorted(directory.glob(prefix.name + ".*")):
        rest = p.name[len(prefix.name):]
        if not (rest in (".index", ".meta") or re.fullmatch(r"\.data-\d{5}-of-\d{5}", rest)):
            continue
        mode = os.lstat(p).st_mode
        if not stat.S_ISREG(mode):
            what = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
            raise NoCheckpointFoundError(f"cannot import {p}: it is {what} (import reads regular files inside {directory} only)")
        out.append(p)
    return out


def _read_regular(path: Path) -> bytes:
    with _open_regular(path) as f:
        return f.read()


def _open_regular(path: Path):  # noqa: ANN202 - a binary file object
    """Open a file for reading, refusing a symlink even if it replaced the file after the check."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NoCheckpointFoundError(f"cannot import {path}: it is a symlink (import reads regular files inside {path.parent} only)") from None
        raise
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise NoCheckpointFoundError(f"cannot import {path}: not a regular file")
    return f


def _validated_index(directory: Path, prefix: Path) -> Bundle:
    """The prefix's index parsed without TensorFlow and checked against its data files' sizes."""
    index = Path(str(prefix) + ".index")
    _source_files(directory, prefix)
    if os.lstat(index).st_size > MAX_INDEX_BYTES:
        raise NoCheckpointFoundError(f"cannot import from {directory}: {index.name} is too large for an index")
    try:
        bundle = parse_index(_read_regular(index), index.name)
        n = bundle.header.num_shards
        sizes = {}
        for shard in range(n):
            f = directory / data_file_name(prefix.name, shard, n)
            if f.is_file():
                sizes[shard] = os.lstat(f).st_size
        check_consistent(bundle, sizes, index.name)
    except CorruptFileError as exc:
        raise NoCheckpointFoundError(f"cannot import from {directory}: {prefix.name} is not a readable TensorFlow checkpoint: {exc}") from None
    return bundle


def _check_data(directory: Path, prefix: Path, bundle: Bundle) -> None:
    """Each data shard of ``prefix`` against the crc32c its index recorded, tensor by tensor."""
    n = bundle.header.num_shards
    for shard in range(n):
        name = data_file_name(prefix.name, shard, n)
        entries = bundle.shard_entries(shard)
        with _open_regular(prefix.parent / name) as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                bad = next((e for e in entries if e.size), None)
            else:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    bad = None
                    with memoryview(mm) as view:
                        for e in entries:
                            if not check_tensor_crc(e, view[e.offset : e.offset + e.size]):
                                bad = e
                                break
            if bad is not None:
                raise NoCheckpointFoundError(
                    f"cannot import from {directory}: {name} does not match its index "
                    f"(tensor {bad.name!r} fails its crc32c): the data file is damaged or from another checkpoint"
                )


def _complete(prefix: Path) -> bool:
    if not Path(str(prefix) + ".index").is_file():
        return False
    shards = list(prefix.parent.glob(prefix.name + ".data-*-of-*"))
    if not shards:
        return False
    n = shard_count(shards[0].name)
    return n is not None and len(shards) == n


def import_checkpoints(
    backend: Backend,
    directory: str | os.PathLike[str],
    *,
    run: str,
    progress: Progress = None,
) -> list[CheckpointInfo]:
    """Register checkpoints written by vanilla ``Saver`` or ``CheckpointManager``.

    Imports every prefix named in the directory's ``checkpoint`` state file, else every complete
    prefix (index plus all data shards) found. Steps come from the names (``model.ckpt-1000``,
    ``ckpt-7``). Files are copied, never moved: the directory is left as it was. Steps the run
    already has are skipped, so importing twice is harmless.
    """
    check_run_name(run)
    d = Path(directory)
    if not d.is_dir():
        raise NoCheckpointFoundError(f"{d} is not a directory")
    prefixes = _prefixes_in(d)
    if not prefixes:
        raise NoCheckpointFoundError(
            f"no TensorFlow checkpoint in {d} (no complete prefix: an .index with all its .data shards)"
        )
    steps = []
    for p in prefixes:
        st = step_from_prefix(p.name)
        if st is None:
            raise NoCheckpointFoundError(f"cannot tell the step of checkpoint {p.name!r} from its name (expected NAME-STEP)")
        try:
            steps.append(check_step(st))
        except MetricValueError as exc:
            raise NoCheckpointFoundError(f"cannot import {p.name!r} from {d}: {exc}") from None
        # Before TensorFlow reads it (a crafted index aborts its reader), and before the run
        # exists: the data files are checked against the index here, and their copies again.
        _check_data(d, p, _validated_index(d, p))
    with backend.db.read() as conn:
        try:
            have = Q.checkpoint_steps(conn, Q.run_id(conn, run))
        except UnknownRunError:
            have = set()
    todo = sorted(((p, st) for p, st in zip(prefixes, steps) if st not in have), key=lambda t: t[1])
    # Only the new prefixes are opened by TensorFlow: importing a directory again, with
    # nothing new, answers without loading it (issue 26: ~8 s of TensorFlow for a no-op).
    for p, _ in todo:
        try:
            list_variables(p)  # an unreadable index fails here, before the run exists
        except CorruptFileError as exc:
            raise NoCheckpointFoundError(f"cannot import from {d}: {exc}") from None
    area = backend.files
    with backend.db.write() as conn:
        run_id = W.ensure_finished_run(conn, run)
    out = []
    for i, (p, st) in enumerate(todo):
        fmt = formats.of_prefix(p)
        with area.staging(f"import-{run_id}") as sdir:
            for f in _source_files(d, p):
                with _open_regular(f) as src, open(sdir / f.name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            staged = sdir / p.name
            # The copies, not the originals, are checked: they are what gets stored.
            bundle = parse_index((sdir / (p.name + ".index")).read_bytes(), p.name + ".index")
            shard_sizes = {}
            for shard in range(bundle.header.num_shards):
                f = sdir / data_file_name(p.name, shard, bundle.header.num_shards)
                if f.is_file():
                    shard_sizes[shard] = f.stat().st_size
            try:
                check_consistent(bundle, shard_sizes, p.name + ".index")
            except CorruptFileError as exc:
                raise NoCheckpointFoundError(f"cannot import from {d}: {exc}") from None
            _check_data(d, staged, bundle)
            out.append(commit_checkpoint(backend, run_id, run, st, fmt, staged))
        if progress:
            progress(i + 1, len(todo))
    return out

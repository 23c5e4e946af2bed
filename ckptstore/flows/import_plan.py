"""What an import of a TensorFlow checkpoint directory would bring in, read and checked without
TensorFlow or the database (the first half of ``imports.import_checkpoints``).

**Only regular files inside the named directory are read.** A ``checkpoint`` state file may name
any path and a shard may be a symlink to anything the importing user can read; both would copy
an outside file into the store, where ``restore`` hands it to whoever asks. So a prefix the
state file places elsewhere is looked for by its name inside the directory, and a symlink (or
anything but a regular file) among a prefix's files refuses the import; files are opened with
``O_NOFOLLOW`` so that a swap after the check is refused too.

**TensorFlow reads nothing unchecked.** Each index is parsed by the TF-free reader
(``bundle.py``) and checked against its data files (ranks, shapes, sizes, offsets) before
TensorFlow opens it: a crafted index makes TensorFlow's reader abort the process.

Nothing here imports SQLAlchemy or TensorFlow: the CLI's quick path answers "nothing new to
import" with it (issue 26), and the store's import starts with the very same steps.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ..bundle import MAX_INDEX_BYTES, Bundle, check_consistent, check_tensor_crc, data_file_name, parse_index
from ..errors import CorruptFileError, MetricValueError, NoCheckpointFoundError, UnknownRunError
from ..metadata.reads import Sql, run_id
from ..names import check_run_name, check_step
from ..tf.reader import shard_count, step_from_prefix
from ..tf.state import STATE_FILE, parse

__all__ = ["ImportPlan", "check_data", "open_regular", "plan_import", "source_files", "steps_of", "validated_index"]


@dataclass(frozen=True)
class ImportPlan:
    """The complete prefixes of a directory and their steps (same order), not yet checked."""

    directory: Path
    prefixes: list[Path]
    steps: list[int]

    def new(self, have: set[int]) -> list[tuple[Path, int]]:
        """(prefix, step) of the steps not in ``have``, by step."""
        return sorted(((p, st) for p, st in zip(self.prefixes, self.steps) if st not in have), key=lambda t: t[1])

    def check(self) -> None:
        """Every prefix's index and data files, checked as an import checks them before
        TensorFlow reads them and before a run exists (:class:`NoCheckpointFoundError`)."""
        for p in self.prefixes:
            check_data(self.directory, p, validated_index(self.directory, p))


def plan_import(directory: str | os.PathLike[str], run: str) -> ImportPlan:
    """The prefixes an import of ``directory`` into ``run`` would consider, with their steps:
    those the ``checkpoint`` state file names, else every complete prefix present."""
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
    return ImportPlan(d, prefixes, steps)


def steps_of(sql: Sql, run: str) -> set[int]:
    """The steps of the run's checkpoints (none: a run that does not exist yet)."""
    try:
        rid = run_id(sql, run)
    except UnknownRunError:
        return set()
    return {row[0] for row in sql.rows(f"SELECT step FROM checkpoints WHERE run_id = {sql.ph}", [rid])}


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


def source_files(directory: Path, prefix: Path) -> list[Path]:
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
    with open_regular(path) as f:
        return f.read()


def open_regular(path: Path):  # noqa: ANN202 - a binary file object
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


def validated_index(directory: Path, prefix: Path) -> Bundle:
    """The prefix's index parsed without TensorFlow and checked against its data files' sizes."""
    index = Path(str(prefix) + ".index")
    source_files(directory, prefix)
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


def check_data(directory: Path, prefix: Path, bundle: Bundle) -> None:
    """Each data shard of ``prefix`` against the crc32c its index recorded, tensor by tensor."""
    n = bundle.header.num_shards
    for shard in range(n):
        name = data_file_name(prefix.name, shard, n)
        entries = bundle.shard_entries(shard)
        with open_regular(prefix.parent / name) as f:
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

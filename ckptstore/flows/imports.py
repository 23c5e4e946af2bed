"""Importing checkpoints that vanilla TensorFlow wrote (``Saver``, ``CheckpointManager``).

Everything is validated before anything is written: the prefixes, their steps and their index
files are read first, so a refused import leaves no run and no objects behind. Files are copied
into a staging directory and committed exactly like a save (``checkpoints.commit_checkpoint``);
the source directory is left as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Optional, Union

from ..errors import CorruptFileError, MetricValueError, NoCheckpointFoundError
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

Progress = Optional[Callable[[int, int], None]]


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
            p = Path(text)
            p = p if p.is_absolute() else directory / p
            if not _complete(p) and _complete(directory / p.name):
                # Saver writes absolute paths by default: the directory was moved or copied.
                p = directory / p.name
            if p not in named:
                named.append(p)
    named = [p for p in named if _complete(p)]
    candidates = named or [Path(str(p)[: -len(".index")]) for p in sorted(directory.glob("*.index"))]
    return [p for p in candidates if _complete(p)]


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
    directory: Union[str, os.PathLike[str]],
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
        try:
            list_variables(p)  # an unreadable index fails here, before the run exists
        except CorruptFileError as exc:
            raise NoCheckpointFoundError(f"cannot import from {d}: {exc}") from None
    area = backend.files
    with backend.db.write() as conn:
        run_id = W.ensure_finished_run(conn, run)
    with backend.db.read() as conn:
        have = Q.checkpoint_steps(conn, run_id)
    out = []
    todo = sorted(((p, st) for p, st in zip(prefixes, steps) if st not in have), key=lambda t: t[1])
    for i, (p, st) in enumerate(todo):
        fmt = formats.of_prefix(p)
        with area.staging(f"import-{run_id}") as sdir:
            for f in fmt.files(p):
                shutil.copyfile(f, sdir / f.name)
            out.append(commit_checkpoint(backend, run_id, run, st, fmt, sdir / p.name))
        if progress:
            progress(i + 1, len(todo))
    return out

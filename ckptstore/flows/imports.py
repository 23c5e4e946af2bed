"""Importing checkpoints that vanilla TensorFlow wrote (``Saver``, ``CheckpointManager``).

Everything is validated before anything is written: the prefixes, their steps and their index
files are read first, so a refused import leaves no run and no objects behind. Files are copied
into a staging directory and committed exactly like a save (``checkpoints.commit_checkpoint``);
the source directory is left as it was.

What is read, and how it is checked before TensorFlow opens anything, is ``import_plan.py``.
The copied data files are checked again, tensor by tensor against the index's crc32c, before
anything is stored, so the digests recorded for them describe bytes that TensorFlow wrote.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable

from ..bundle import check_consistent, data_file_name, parse_index
from ..errors import CorruptFileError, NoCheckpointFoundError
from ..metadata import writes as W
from ..records import CheckpointInfo
from ..tf import formats
from ..tf.reader import list_variables
from .backend import Backend
from .checkpoints import commit_checkpoint
from .import_plan import check_data, open_regular, plan_import, source_files, steps_of

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None] | None


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
    plan = plan_import(directory, run)
    d = plan.directory
    # Before TensorFlow reads it (a crafted index aborts its reader), and before the run
    # exists: the data files are checked against the index here, and their copies again.
    plan.check()
    with backend.db.sql_read() as sql:
        todo = plan.new(steps_of(sql, run))
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
            for f in source_files(d, p):
                with open_regular(f) as src, open(sdir / f.name, "wb") as dst:
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
            check_data(d, staged, bundle)
            out.append(commit_checkpoint(backend, run_id, run, st, fmt, staged))
        if progress:
            progress(i + 1, len(todo))
    return out

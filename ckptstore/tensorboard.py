"""TensorBoard export: a run's metrics as event files, so ``tensorboard --logdir DIR`` shows them.

Each run gets a subdirectory of its own, named after the run, holding one event file written
with TensorBoard's own writer (``EventFileWriter``; it goes through TensorFlow's file API when
TensorFlow is installed). Every logged value becomes a scalar summary at its step, with the
wall time it was logged at, under the metric's name. Scalars are float32 in event files, as
with ``tf.summary.scalar``: values keep about 7 significant digits there.

Writing again into a run's subdirectory would add a second event file and TensorBoard would
show every point twice, so an existing export is refused unless ``force=True``, which removes
only the event files of that subdirectory first. Nothing is written outside ``logdir``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CkptstoreError, ConflictError, from_os_error

if TYPE_CHECKING:
    from .store import Store

__all__ = ["write_event_files", "EVENT_FILE_GLOB"]

#: How TensorBoard names event files (and how ``force`` finds the ones to replace).
EVENT_FILE_GLOB = "events.out.tfevents.*"


def write_event_files(
    store: Store,
    runs: Sequence[str],
    logdir: str | os.PathLike[str],
    *,
    keys: Iterable[str] | None = None,
    force: bool = False,
) -> list[Path]:
    """Write each run's metrics (only ``keys`` when given) under ``logdir/<run>``; returns the
    event files written, one per run, in the order of ``runs``.

    Unknown runs are refused before anything is written. Needs the ``tensorboard`` package.

    >>> write_event_files(store, ["mnist", "mnist-wide"], "tb/")   # doctest: +SKIP
    """
    if not runs:
        raise CkptstoreError("name at least one run to export")
    infos = [store.get_run(name) for name in dict.fromkeys(runs)]  # unknown runs fail here
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise CkptstoreError("TensorBoard export needs the tensorboard package: pip install tensorboard") from None
    root = Path(logdir)
    targets = [root / info.name for info in infos]
    for target in targets:
        old = sorted(target.glob(EVENT_FILE_GLOB)) if target.is_dir() else []
        if old and not force:
            raise ConflictError(
                f"{target} already holds TensorBoard event files (from an earlier export); "
                "replace them with force=True, or --force"
            )
    key_list = list(keys) if keys is not None else None
    written: list[Path] = []
    for info, target in zip(infos, targets):
        try:
            for stale in target.glob(EVENT_FILE_GLOB) if target.is_dir() else []:
                stale.unlink()
            writer = EventFileWriter(str(target))
        except OSError as exc:
            raise from_os_error(f"cannot write TensorBoard files in {target}", exc) from None
        try:
            for row in store.steps(info.name, keys=key_list):
                summary = summary_pb2.Summary(
                    value=[summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in row.metrics.items()]
                )
                writer.add_event(event_pb2.Event(wall_time=row.wall_time, step=row.step, summary=summary))
        finally:
            writer.close()
        # The only event file left there: older ones were refused or removed above.
        written.append(sorted(target.glob(EVENT_FILE_GLOB))[-1])
    return written

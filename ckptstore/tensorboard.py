"""TensorBoard export: runs as event files, so ``tensorboard --logdir DIR`` shows them.

Each run gets a subdirectory of its own, named after the run, holding one event file:

- every logged value as a scalar summary at its step, with the wall time it was logged at, under
  the metric's name. Scalars are float32 in event files, as with ``tf.summary.scalar``: values
  keep about 7 significant digits there;
- the run's params, tags (``tags.NAME``) and status as HParams (TensorBoard's HParams plugin:
  a session-start summary, and a session-end summary with the run's status once it ended), so
  the HPARAMS tab shows the runs as a table with their metrics. The experiment config (every
  hyperparameter with the domain of the values seen, the metrics) is one event file at the
  logdir's root, rewritten by each export to cover every run exported there;
- a text summary ``ckptstore/checkpoints`` at each step with a committed checkpoint (its
  reference ``run@step``, whether an alias pins it and which) or an export.

The files are written the way TensorBoard's ``EventFileWriter`` writes them (same file names,
same TFRecord framing with masked CRC32C, a ``brain.Event:2`` version event first) but through
a plain ``open()``ed file: TensorBoard's writer goes through TensorFlow's file API, and
importing TensorFlow took most of an export's time (docs/cli.md, "TensorBoard export").

Writing again into a run's subdirectory would add a second event file and TensorBoard would
show every point twice, so an existing export is refused unless ``force=True``, which removes
only the event files of that subdirectory first. :func:`follow_event_files` keeps the files
open and appends what running runs log until they end; it never writes a step's value twice.
Nothing is written outside ``logdir``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import CkptstoreError, ConflictError, UnknownRunError, from_os_error

if TYPE_CHECKING:
    from .records import CheckpointInfo, ExportInfo, RunInfo
    from .store import Store

__all__ = ["write_event_files", "follow_event_files", "ExportExistsError", "EVENT_FILE_GLOB", "CHECKPOINTS_TAG"]

log = logging.getLogger(__name__)

#: How TensorBoard names event files (and how ``force`` finds the ones to replace).
EVENT_FILE_GLOB = "events.out.tfevents.*"

#: The text summary that marks checkpoints and exports at their steps.
CHECKPOINTS_TAG = "ckptstore/checkpoints"

#: The suffix of the experiment-config file at the logdir's root: it tells ours from the event
#: files of anything else written there, which an export never removes.
EXPERIMENT_SUFFIX = ".ckptstore-hparams"

#: What a run's status becomes in the HParams session-end summary ("crashed": the process died).
_SESSION_STATUS = {"finished": "STATUS_SUCCESS", "failed": "STATUS_FAILURE", "crashed": "STATUS_FAILURE"}

# TensorBoard's writer numbers its files per process (``_global_uid``), so that two files made
# in the same second get different names; ours do the same.
_file_numbers = itertools.count()
_MASK_DELTA = 0xA282EAD8


def _masked_crc32c(data: bytes) -> int:
    # The TFRecord checksum (tensorflow/core/lib/hash/crc32c.h Mask) at C speed: TensorBoard's
    # RecordWriter, which frames records the same way (a test compares the bytes), computes it in
    # pure Python, 6 times slower (65 ms more per 4,000 events; seconds for a long run).
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class _EventFile:
    """One event file, as TensorBoard's ``EventFileWriter`` makes it, through a plain file."""

    def __init__(self, directory: Path, *, suffix: str = "") -> None:
        from tensorboard.compat.proto import event_pb2

        self._event_pb2 = event_pb2
        directory.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_file_numbers)}"
        self.path = directory / (name + suffix)
        self._file: BinaryIO = open(self.path, "xb")
        self.add(event_pb2.Event(
            wall_time=time.time(), file_version="brain.Event:2",
            source_metadata=event_pb2.SourceMetadata(writer="ckptstore.tensorboard"),
        ))

    def add(self, event: Any) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", _masked_crc32c(header)) + data
                         + struct.pack("<I", _masked_crc32c(data)))

    def summary(self, step: int, wall_time: float, summary: Any) -> None:
        self.add(self._event_pb2.Event(wall_time=wall_time, step=step, summary=summary))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    # An hparam is a number, a text or a boolean: nested params become dotted names
    # (``opt.lr``), lists their JSON text, and None is left out (an hparam value cannot be empty).
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flat_params(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out[prefix + key] = json.dumps(value)
        elif value is not None:
            out[prefix + key] = value
    return out


def _run_hparams(info: RunInfo) -> dict[str, Any]:
    """A run's hyperparameters: its params and its tags as ``tags.NAME`` (its status is in the
    session-end summary: it changes while a followed run goes on, a session's hparams do not)."""
    values: dict[str, Any] = {f"tags.{k}": v for k, v in info.tags.items()}
    values.update(_flat_params(info.params))
    return values


def _hparam_types(runs: Iterable[dict[str, Any]]) -> dict[str, type]:
    # As TensorBoard infers an hparam's type from the sessions' values (hparams/backend_context.py
    # _compute_hparam_info_from_values): one type if all agree, else text.
    types: dict[str, type] = {}
    for values in runs:
        for name, value in values.items():
            kind = bool if isinstance(value, bool) else float if isinstance(value, (int, float)) else str
            types[name] = kind if types.get(name, kind) is kind else str
    return types


def _typed(value: Any, kind: type) -> Any:
    if kind is str:
        return value if isinstance(value, str) else json.dumps(value)
    return kind(value)


@dataclass
class _RunExport:
    """What has been written of one run: the file, the last step and the keys written at it,
    the checkpoints and exports marked. Each poll appends only what is new."""

    info: RunInfo
    file: _EventFile
    keys: list[str] | None
    last_step: int = -1
    keys_at_last: set[str] = field(default_factory=set)
    marked_checkpoints: set[int] = field(default_factory=set)
    marked_exports: set[int] = field(default_factory=set)
    metric_keys: set[str] = field(default_factory=set)
    ended: bool = False

    def start(self, types: dict[str, type]) -> None:
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb

        values = {k: _typed(v, types[k]) for k, v in _run_hparams(self.info).items()}
        start = self.info.created_at.timestamp()
        # trial_id: each run its own row (without it, runs with equal params would be one group).
        self.file.summary(0, start, hparams_pb(values, trial_id=self.info.name, start_time_secs=start))

    def poll(self, store: Store) -> int:
        """Append the steps logged since the last poll and the new markers; end the session
        once the run ended (its status read before its steps, so none logged before the end is
        missed). Returns how many steps were written."""
        from tensorboard.compat.proto import summary_pb2

        info = store.get_run(self.info.name)
        marks = self._markers(store.checkpoints(info.name), store.exports(info.name))
        # From the last step written: a step may get more keys in a later log (Keras logs
        # validation metrics after the training ones), written then; values already written are not.
        rows = store.steps(info.name, start=max(self.last_step, 0), keys=self.keys)
        written = 0
        for row in rows:
            metrics = row.metrics
            if row.step == self.last_step:
                metrics = {k: v for k, v in metrics.items() if k not in self.keys_at_last}
            while marks and marks[0][0] <= row.step:
                self._mark(*marks.pop(0))
            if not metrics:
                continue
            self.file.summary(row.step, row.wall_time, summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in metrics.items()]
            ))
            if row.step != self.last_step:
                self.last_step, self.keys_at_last = row.step, set()
                written += 1
            self.keys_at_last.update(metrics)
            self.metric_keys.update(metrics)
        for mark in marks:
            self._mark(*mark)
        if info.status != "running":
            self.end(info)
        self.file.flush()
        return written

    def _markers(self, checkpoints: list[CheckpointInfo], exports: list[ExportInfo]) -> list[tuple[int, float, str]]:
        lines: dict[int, tuple[float, list[str]]] = {}
        for c in checkpoints:
            if c.state != "committed" or c.id in self.marked_checkpoints:
                continue
            self.marked_checkpoints.add(c.id)
            pin = f"pinned by alias {', '.join(f'`{a}`' for a in c.aliases)}" if c.aliases else "not pinned"
            lines.setdefault(c.step, (c.created_at.timestamp(), []))[1].append(f"checkpoint `{c.ref}`, {pin}")
        for e in exports:
            if e.step is None or e.id in self.marked_exports:
                continue
            self.marked_exports.add(e.id)
            alias = f", alias {', '.join(f'`{a}`' for a in e.aliases)}" if e.aliases else ""
            lines.setdefault(e.step, (e.created_at.timestamp(), []))[1].append(
                f"export `{e.ref}` ({e.kind}) of `{e.run}@{e.step}`{alias}")
        return [(step, wall, "\n\n".join(text)) for step, (wall, text) in sorted(lines.items())]

    def _mark(self, step: int, wall_time: float, text: str) -> None:
        from tensorboard.plugins.text.summary_v2 import text_pb

        self.file.summary(step, wall_time, text_pb(CHECKPOINTS_TAG, text))

    def end(self, info: RunInfo) -> None:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        # hparams.summary.session_end_pb builds TensorFlow's Summary proto (importing
        # TensorFlow); this is the same message in TensorBoard's own protos, built as
        # summary_v2 builds the session start.
        end = info.ended_at.timestamp() if info.ended_at else time.time()
        status = api_pb2.Status.Value(_SESSION_STATUS.get(info.status, "STATUS_UNKNOWN"))
        content = plugin_data_pb2.HParamsPluginData(
            session_end_info=plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=end))
        self.file.summary(max(self.last_step, 0), end, summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(content),
            tensor=metadata.NULL_TENSOR)]))
        self.ended = True
        log.info("run %s ended (%s): its event file is complete", info.name, info.status)


def _write_experiment(
    store: Store, root: Path, runs: Sequence[RunInfo], keys: list[str] | None,
) -> tuple[dict[str, type], set[str]]:
    """(Re)write the experiment config at ``root`` for ``runs`` and every other run of the
    store exported under ``root``; returns each hyperparameter's type and the metrics named."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp

    known = {info.name: info for info in runs}
    for path in root.glob(f"*/{EVENT_FILE_GLOB}") if root.is_dir() else []:
        name = path.parent.name
        if name not in known:
            try:
                known[name] = store.get_run(name)
            except UnknownRunError:  # a directory of something else in the logdir
                pass
    values = [_run_hparams(info) for info in known.values()]
    types = _hparam_types(values)
    hparams, differs = [], set()
    for name in sorted(types):
        seen = sorted({_typed(v[name], types[name]) for v in values if name in v})
        # As TensorBoard's own inference: numbers an interval, text and booleans discrete.
        domain = hp.RealInterval(seen[0], seen[-1]) if types[name] is float else hp.Discrete(seen)
        hparams.append(hp.HParam(name, domain))
        if len(seen) > 1:
            differs.add(name)
    metric_keys = {k for info in known.values() for k in (keys if keys is not None else store.metric_keys(info.name))}
    created = min(info.created_at.timestamp() for info in known.values())
    for old in root.glob(EVENT_FILE_GLOB + EXPERIMENT_SUFFIX) if root.is_dir() else []:
        old.unlink()
    summary = hp.hparams_config_pb(hparams, [hp.Metric(k) for k in sorted(metric_keys)], time_created_secs=created)
    # The HPARAMS tab shows 5 hparams at first, those that differ between the runs first (as
    # TensorBoard marks them when it infers the config itself); hparams_config_pb has no
    # argument for it.
    config = metadata.parse_experiment_plugin_data(summary.value[0].metadata.plugin_data.content)
    for info in config.hparam_infos:
        info.differs = info.name in differs
    summary.value[0].metadata.CopyFrom(metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(experiment=config)))
    experiment = _EventFile(root, suffix=EXPERIMENT_SUFFIX)
    try:
        experiment.summary(0, created, summary)
    finally:
        experiment.close()
    return types, metric_keys


class ExportExistsError(ConflictError):
    """A run's directory already holds event files from an earlier export. ``remedy`` ends the
    message: the library's caller passes ``force=True``; the CLI re-raises with its ``--force``."""

    def __init__(self, directory: Path, remedy: str = "force=True replaces them") -> None:
        self.directory = directory
        super().__init__(f"{directory} already holds TensorBoard event files (from an earlier export); {remedy}")


def _open(
    store: Store, infos: Sequence[RunInfo], root: Path, keys: list[str] | None, force: bool,
    others: Sequence[RunInfo] = (),
) -> tuple[list[_RunExport], set[str]]:
    """Check the runs' directories, then (re)write the experiment config (for ``infos``, the
    ``others`` being followed, and every run exported there before) and start one file per run;
    returns the runs' exports and the metrics the config names."""
    targets = [root / info.name for info in infos]
    for target in targets:
        old = sorted(target.glob(EVENT_FILE_GLOB)) if target.is_dir() else []
        if old and not force:
            raise ExportExistsError(target)
    exports: list[_RunExport] = []
    try:
        for target in targets:
            for stale in target.glob(EVENT_FILE_GLOB) if target.is_dir() else []:
                stale.unlink()
        types, metric_keys = _write_experiment(store, root, [*others, *infos], keys)
        for info, target in zip(infos, targets):
            export = _RunExport(info, _EventFile(target), keys)
            exports.append(export)
            export.start(types)
    except OSError as exc:
        for export in exports:
            export.file.close()
        raise from_os_error(f"cannot write TensorBoard files in {root}", exc) from None
    return exports, metric_keys


def _runs(store: Store, runs: Sequence[str]) -> list[RunInfo]:
    """The runs named (globs expanded, each once), all checked before anything is written."""
    if not runs:
        raise CkptstoreError("name at least one run to export")
    infos = [store.get_run(name) for name in store.expand_runs(runs)]  # unknown runs fail here
    try:
        import tensorboard.plugins.hparams.summary_v2  # noqa: F401
    except ImportError:
        raise CkptstoreError("TensorBoard export needs the tensorboard package: pip install tensorboard") from None
    return infos


def write_event_files(
    store: Store,
    runs: Sequence[str],
    logdir: str | os.PathLike[str],
    *,
    keys: Iterable[str] | None = None,
    force: bool = False,
) -> list[Path]:
    """Write each run's metrics (only ``keys`` when given), hyperparameters and checkpoint
    markers under ``logdir/<run>``, and the HParams experiment config at ``logdir``; returns
    the runs' event files, one per run, in the order of ``runs`` (a glob such as ``"lr-*"``:
    the runs it matches, by name).

    Unknown runs are refused before anything is written. Needs the ``tensorboard`` package
    (not TensorFlow).

    >>> write_event_files(store, ["mnist", "mnist-wide"], "tb/")   # doctest: +SKIP
    """
    infos = _runs(store, runs)
    exports, _ = _open(store, infos, Path(logdir), list(keys) if keys is not None else None, force)
    try:
        for export in exports:
            export.poll(store)
    except OSError as exc:  # a full disk, a directory removed meanwhile
        raise from_os_error(f"cannot write TensorBoard files in {logdir}", exc) from None
    finally:
        for export in exports:
            export.file.close()
    return [export.file.path for export in exports]


def follow_event_files(
    store: Store,
    runs: Sequence[str],
    logdir: str | os.PathLike[str],
    *,
    keys: Iterable[str] | None = None,
    force: bool = False,
    interval: float = 2.0,
    stop: threading.Event | None = None,
    on_new_files: Callable[[list[Path]], None] | None = None,
) -> list[Path]:
    """As :func:`write_event_files`, then keep appending what the runs log (new steps, new
    checkpoint markers) every ``interval`` seconds, each to the same file, until every run has
    ended (status other than ``running``) or ``stop`` is set; the files are flushed after each
    round and closed at the end. A run that starts meanwhile and matches a glob of ``runs`` is
    followed too, in a file of its own. ``on_new_files`` is called with the event files each
    time some start (all at first), once they hold what was logged so far. A step's values are
    written once: values a run logs again for a step already written (a resumed run) are not.
    Returns every event file written, in the order they were started.

    >>> stop = threading.Event()                                              # doctest: +SKIP
    >>> follow_event_files(store, ["lr-*"], "tb/", interval=5, stop=stop)     # doctest: +SKIP
    """
    if not interval > 0:
        raise CkptstoreError(f"interval must be a number of seconds > 0, got {interval!r}")
    stop = stop or threading.Event()
    root, key_list = Path(logdir), list(keys) if keys is not None else None
    exports, metric_keys = _open(store, _runs(store, runs), root, key_list, force)
    try:
        new = exports
        while True:
            for export in exports:
                if not export.ended:
                    export.poll(store)
            if new and on_new_files is not None:
                on_new_files([export.file.path for export in new])
            if keys is None and not metric_keys.issuperset(set().union(*(e.metric_keys for e in exports))):
                # A metric first logged after the start (val_loss after the first epoch): the
                # config names it too (a TensorBoard already running shows it after a restart).
                _, metric_keys = _write_experiment(store, root, [e.info for e in exports], None)
            if all(export.ended for export in exports) or stop.wait(interval):
                break
            followed = {export.info.name for export in exports}
            try:
                names = [name for name in store.expand_runs(runs) if name not in followed]
            except UnknownRunError:  # a glob's runs were deleted meanwhile: follow those left
                names = []
            new, metric_keys = _open(store, [store.get_run(name) for name in names], root, key_list, force,
                                     others=[e.info for e in exports]) if names else ([], metric_keys)
            exports += new
    except OSError as exc:  # a full disk, a directory removed meanwhile
        raise from_os_error(f"cannot write TensorBoard files in {logdir}", exc) from None
    finally:
        for export in exports:
            export.file.close()
    return [export.file.path for export in exports]

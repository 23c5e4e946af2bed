"""Plain, immutable results of store queries.

They are detached from the database session (no lazy loading surprises) and turn into JSON with
stable keys through :func:`to_json`, which is what ``--json`` in the CLI prints.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: The record types (every one importable from ``ckptstore``) and the JSON conversion.
__all__ = [
    "RunInfo",
    "RunsTable",
    "StepMetrics",
    "MetricChange",
    "MetricSummary",
    "RunComparison",
    "RunAtStep",
    "FileInfo",
    "VariableInfo",
    "VariableChange",
    "TensorStats",
    "VariableStatus",
    "VariableDiff",
    "SpaceUsage",
    "CheckpointInfo",
    "ExportInfo",
    "AliasEventInfo",
    "AliasInfo",
    "Problem",
    "VerifyReport",
    "GcReport",
    "to_json",
]


def to_json(obj: Any) -> Any:
    """Convert records (and lists/dicts of them) to JSON-ready values.

    Datetimes become ISO 8601 strings; NaN and infinities become the strings "nan", "inf",
    "-inf" so that the output stays valid JSON.
    """
    # Ordered by how often each kind occurs (``runs list --json`` converts ~20,000 values), and
    # record classes found by a dict look-up: ``dataclasses.fields`` per record is slow.
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:
        return obj
    names = _FIELD_NAMES.get(kind)
    if names is not None:
        return {name: to_json(getattr(obj, name)) for name in names}
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else ("nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf"))
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(obj))
        return to_json(obj)
    return obj


#: A record class's field names, looked up once.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True)
class RunInfo:
    id: int
    name: str
    status: str
    params: dict[str, Any]
    tags: dict[str, str]
    created_at: datetime
    ended_at: datetime | None
    last_step: int | None = None
    checkpoints: int = 0
    retention: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunsTable:
    """The runs table (``Store.runs_table``, ``ckptstore runs list``, the UI's runs page): the
    runs that match, in order, and for each the value of every column (``columns``: fields as
    written, e.g. ``params.lr``, ``metrics.val_accuracy.max``, ``tags.team``; None where a run
    has no such value). ``notes`` say what a user may have misspelt: a param, tag or metric
    that no run of the store has, with the closest name there is."""

    columns: list[str]
    runs: list[RunInfo]
    values: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StepMetrics:
    step: int
    wall_time: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class MetricChange:
    """A metric value that a later ``log`` of the same step replaced (``replaced_at``: unix time)."""

    step: int
    key: str
    value: float
    wall_time: float
    replaced_at: float


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one run: its last value, and its best (``mode``: "min" or "max", from the
    name; see ``retention.resolve_mode``) with the steps they were logged at. NaN never counts
    as best."""

    key: str
    last: float
    last_step: int
    best: float | None
    best_step: int | None
    mode: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class RunComparison:
    """Runs side by side (``Store.compare_runs``): params (``differing``: the names whose values
    are not all equal, a missing param counting as a difference) and metric summaries."""

    runs: list[str]
    params: dict[str, dict[str, Any]]
    differing: list[str]
    metrics: dict[str, dict[str, MetricSummary]]
    info: list[RunInfo] = field(default_factory=list)


@dataclass(frozen=True)
class RunAtStep:
    """One run's metrics at (or, with ``nearest``, at or below) a step."""

    run: str
    step: int
    metrics: dict[str, float]
    checkpoint_step: int | None

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpoint_step is not None


@dataclass(frozen=True)
class FileInfo:
    role: str
    file_name: str
    size: int
    digest: str


@dataclass(frozen=True)
class VariableInfo:
    name: str
    dtype: str
    shape: list[int]
    #: The name recorded at save that people know it by (``model/dense/kernel``), if any.
    readable: str | None = None


@dataclass(frozen=True)
class VariableChange:
    """A variable present in both checkpoints with a different dtype or shape."""

    name: str
    before: VariableInfo
    after: VariableInfo


@dataclass(frozen=True)
class TensorStats:
    """How much a float tensor moved between two checkpoints (``vars --diff --stats``)."""

    max_abs: float
    mean_abs: float
    rel_l2: float  # ||a - b|| / ||a||, inf when a is all zeros and b is not


#: What ``diff_variables`` says about each variable.
DIFF_STATUSES = ("added", "removed", "dtype/shape changed", "value changed", "identical", "unknown")


@dataclass(frozen=True)
class VariableStatus:
    """One variable of a diff: its readable name (the key where none was recorded), its
    checkpoint key, and its status (one of :data:`DIFF_STATUSES`)."""

    name: str
    key: str
    status: str
    before: VariableInfo | None = None
    after: VariableInfo | None = None
    stats: TensorStats | None = None


@dataclass(frozen=True)
class VariableDiff:
    """How one checkpoint's variables differ from another's (``Store.diff_variables``).

    ``added``/``removed``/``changed`` (dtype or shape)/``unchanged`` compare names, dtypes and
    shapes; ``value_changed`` and ``identical`` split the unchanged ones by the digests of
    their bytes (``by_value`` False: no digests, e.g. a diff built from variable lists only).
    ``variables`` lists every variable with its status, in name order.
    """

    added: list[VariableInfo]
    removed: list[VariableInfo]
    changed: list[VariableChange]
    unchanged: int
    value_changed: list[VariableInfo] = field(default_factory=list)
    identical: list[VariableInfo] = field(default_factory=list)
    by_value: bool = False
    variables: list[VariableStatus] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """How many variables have each status (every status named, zeros included)."""
        counts = {k: 0 for k in ("identical", "value changed", "added", "removed", "dtype/shape changed", "unknown")}
        for v in self.variables:
            counts[v.status] = counts.get(v.status, 0) + 1
        return counts


def diff_json(d: VariableDiff) -> dict[str, Any]:
    """The JSON form of a diff, as ``vars --diff --json`` prints it and the web view serves it."""
    data: dict[str, Any] = to_json(d)
    data["summary"] = d.summary()
    return data


@dataclass(frozen=True)
class SpaceUsage:
    """Logical bytes (what plain TensorFlow directories of these checkpoints would take) and
    stored bytes (the distinct objects they use), per run and for the whole store."""

    run: str | None  # None: the whole store
    checkpoints: int
    logical_bytes: int
    stored_bytes: int
    #: Stored bytes no other run uses (None for the whole store).
    unique_bytes: int | None = None


def diff_variables(before: list[VariableInfo], after: list[VariableInfo]) -> VariableDiff:
    """Variables added, removed, and changed in dtype or shape (by name), from ``before`` to ``after``."""
    b = {v.name: v for v in before}
    a = {v.name: v for v in after}
    changed = [
        VariableChange(name, b[name], a[name])
        for name in sorted(b.keys() & a.keys())
        if (b[name].dtype, b[name].shape) != (a[name].dtype, a[name].shape)
    ]
    return VariableDiff(
        added=[a[n] for n in sorted(a.keys() - b.keys())],
        removed=[b[n] for n in sorted(b.keys() - a.keys())],
        changed=changed,
        unchanged=len(b.keys() & a.keys()) - len(changed),
    )


@dataclass(frozen=True)
class CheckpointInfo:
    id: int
    run: str
    step: int
    format: str
    state: str
    prefix: str
    total_bytes: int
    created_at: datetime
    aliases: list[str] = field(default_factory=list)
    files: list[FileInfo] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.run}@{self.step}"

    @property
    def pinned(self) -> bool:
        return bool(self.aliases)


@dataclass(frozen=True)
class ExportInfo:
    id: int
    run: str
    step: int | None
    checkpoint_id: int | None
    kind: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    node_count: int
    size: int
    digest: str
    tf_version: str
    created_at: datetime
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"export:{self.id}"


@dataclass(frozen=True)
class AliasEventInfo:
    action: str
    old_target: str | None
    new_target: str | None
    message: str | None
    at: datetime


@dataclass(frozen=True)
class AliasInfo:
    name: str
    target: str
    kind: str  # "checkpoint", "export", or "removed" (target "") for a removed alias's history
    message: str | None
    updated_at: datetime
    history: list[AliasEventInfo] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """One thing ``verify`` found wrong."""

    kind: str  # "missing", "corrupt", "unreadable", "database", "unexpected", "stale-staging"
    path: str
    detail: str
    checkpoint: str | None = None  # run@step, when a checkpoint is affected
    export: int | None = None


#: The problems that mean stored data is damaged (the others are leftovers ``gc`` removes).
DAMAGE = ("missing", "corrupt", "unreadable", "database")


@dataclass(frozen=True)
class VerifyReport:
    checked_files: int
    checked_bytes: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not any(p.kind in DAMAGE for p in self.problems)


@dataclass(frozen=True)
class GcReport:
    removed_objects: int
    removed_bytes: int
    removed_staging: int
    removed_blob_rows: int
    dry_run: bool

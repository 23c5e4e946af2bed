"""Retention: which checkpoints of a run to delete. Pure functions, no database, no TensorFlow.

Each rule answers one question, "should this checkpoint be kept?"; a checkpoint survives if any
rule keeps it:

* ``max_to_keep=N``: the N most recently saved checkpoints, as ``tf.train.CheckpointManager``
  counts them: in the order they were saved, not by step, so a run resumed from an older
  checkpoint (``Run.rewind``) never loses what it just saved to steps an earlier training wrote.
* ``keep_every_n_hours=H``: as ``tf.train.Saver``, of the checkpoints the other rules let go,
  one at least H hours younger than the last one so kept (at first: than the run's start) is
  kept forever (its state becomes ``kept``).
* ``keep_best=KeepBest("loss", k=3, mode="min")``: the k best by a logged metric at the
  checkpoint's step. Checkpoints without that metric, or with NaN, never count as best.
* Always: a checkpoint an alias points at (pinned), and the most recently saved checkpoint, so
  that training can always resume.

With no rule set nothing is ever deleted. The rules are small classes (``LatestN``, ``BestN``,
``EveryNHours``) combined by union in :func:`plan`; :class:`Retention` is the user-facing,
JSON-serialisable set of options that selects them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InvalidOptionError

#: Words of a metric name that mean "higher is better" (as Keras' ModelCheckpoint(mode="auto"),
#: which looks for "acc", extended to the usual scores). Any other name is a loss or an error.
HIGHER_IS_BETTER = frozenset({
    "acc", "accuracy", "auc", "precision", "recall", "f1", "fmeasure", "fbeta", "iou", "miou",
    "map", "ap", "dice", "r2", "top1", "top5", "bleu", "rouge", "ndcg", "psnr", "ssim", "score",
})


def resolve_mode(metric: str, mode: str = "auto") -> Literal["min", "max"]:
    """``mode`` as "min" or "max"; "auto" is "max" for accuracy/auc/precision/recall/f1/iou/map-like
    names (``val_accuracy``, ``top_5_acc``, ``mean_iou``, ``f1_score``) and "min" otherwise."""
    if mode in ("min", "max"):
        return mode  # type: ignore[return-value]
    if mode != "auto":
        raise InvalidOptionError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    words = [w for w in re.split(r"[^a-z0-9]+", metric.lower()) if w]
    if any(w in HIGHER_IS_BETTER or w.startswith("acc") for w in words):
        return "max"
    return "min"


@dataclass(frozen=True)
class KeepBest:
    """Keep the ``k`` best checkpoints by ``metric``. ``mode="auto"`` (the default) resolves at
    once to "max" for accuracy-like names and "min" otherwise (:func:`resolve_mode`); the
    resolved mode is what ``mode`` holds and what the run's retention JSON records."""

    metric: str
    k: int = 1
    mode: Literal["auto", "min", "max"] = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise InvalidOptionError(f"keep_best metric must be a metric name, got {self.metric!r}")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise InvalidOptionError(f"keep_best k must be a whole number >= 1, got {self.k!r}")
        if self.mode not in ("auto", "min", "max"):
            raise InvalidOptionError(f"keep_best mode must be 'auto', 'min' or 'max', got {self.mode!r}")
        object.__setattr__(self, "mode", resolve_mode(self.metric, self.mode))


@dataclass(frozen=True)
class Retention:
    max_to_keep: int | None = None
    keep_every_n_hours: float | None = None
    keep_best: KeepBest | None = None

    def __post_init__(self) -> None:
        if self.max_to_keep is not None and (
            # bool is an int to Python; max_to_keep=True is a mistake, not "keep 1".
            not isinstance(self.max_to_keep, int) or isinstance(self.max_to_keep, bool) or self.max_to_keep < 1
        ):
            raise InvalidOptionError(
                f"max_to_keep must be a whole number >= 1 (or None for all), got {self.max_to_keep!r}"
            )
        if self.keep_every_n_hours is not None and not (
            isinstance(self.keep_every_n_hours, (int, float))
            and not isinstance(self.keep_every_n_hours, bool)
            and self.keep_every_n_hours > 0
        ):
            raise InvalidOptionError(
                f"keep_every_n_hours must be a positive number of hours, got {self.keep_every_n_hours!r}"
            )
        if isinstance(self.keep_best, Mapping):
            object.__setattr__(self, "keep_best", KeepBest(**self.keep_best))

    @property
    def active(self) -> bool:
        return self.max_to_keep is not None or self.keep_best is not None

    def to_json(self) -> dict[str, Any]:
        best = self.keep_best
        return {
            "max_to_keep": self.max_to_keep,
            "keep_every_n_hours": self.keep_every_n_hours,
            "keep_best": None if best is None else {"metric": best.metric, "k": best.k, "mode": best.mode},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Retention:
        if not data:
            return cls()
        return cls(
            max_to_keep=data.get("max_to_keep"),
            keep_every_n_hours=data.get("keep_every_n_hours"),
            keep_best=KeepBest(**data["keep_best"]) if data.get("keep_best") else None,
        )


@dataclass(frozen=True)
class Candidate:
    """What retention needs to know of one checkpoint."""

    id: int  # increases with every save: the order of saves
    step: int
    created: float  # unix seconds
    kept: bool = False  # already chosen by keep_every_n_hours
    pinned: bool = False  # an alias points at it


@dataclass(frozen=True)
class Plan:
    delete: list[int] = field(default_factory=list)
    newly_kept: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------- the rules
# Each rule answers "which of these checkpoints (ordered by step) do I keep?". A checkpoint is
# deleted only when no rule keeps it.


@dataclass(frozen=True)
class LatestN:
    n: int

    def keep(self, ordered: Sequence[Candidate]) -> set[int]:
        return {c.id for c in ordered[-self.n :]}


@dataclass(frozen=True)
class BestN:
    best: KeepBest

    def keep(self, ordered: Sequence[Candidate], metric_at: Mapping[int, float]) -> set[int]:
        sign = 1.0 if self.best.mode == "min" else -1.0
        scored = []
        for c in ordered:
            v = metric_at.get(c.step)
            if v is not None and not math.isnan(v):
                scored.append((sign * v, -c.step, c.id))  # ties: the newer step wins
        scored.sort()
        return {cid for _, _, cid in scored[: self.best.k]}


@dataclass(frozen=True)
class EveryNHours:
    """As ``tf.train.Saver``'s ``keep_checkpoint_every_n_hours``: of the checkpoints the other
    rules let go, keep one whenever it is at least ``hours`` younger than the last one so kept,
    counting from ``since`` (the run's start) before any is kept."""

    hours: float

    def newly_kept(self, ordered: Sequence[Candidate], keep: set[int], since: float) -> list[int]:
        interval = self.hours * 3600.0
        kept_times = [c.created for c in ordered if c.kept]
        # The anchor must not be "the oldest checkpoint still there": retention runs after every
        # save, so that checkpoint is the one leaving and would be measured against itself.
        last = max(kept_times) if kept_times else since
        out = []
        for c in ordered:
            if c.id in keep or c.kept:
                continue
            if c.created >= last + interval:
                out.append(c.id)
                last = c.created
        return out


def plan(
    checkpoints: Sequence[Candidate],
    policy: Retention,
    metric_at: Mapping[int, float] | None = None,
    *,
    since: float | None = None,
) -> Plan:
    """Decide which checkpoints to delete and which become permanently kept.

    ``metric_at`` maps step -> value of ``policy.keep_best.metric`` (only needed for keep_best).
    ``since`` is when the run started (unix seconds), where ``keep_every_n_hours`` starts
    counting; without it, the oldest checkpoint given.
    """
    if not policy.active or not checkpoints:
        return Plan()
    ordered = sorted(checkpoints, key=lambda c: c.id)  # save order (see the module docstring)
    keep: set[int] = {c.id for c in ordered if c.pinned or c.kept}
    keep.add(ordered[-1].id)
    if policy.max_to_keep is not None:
        keep |= LatestN(policy.max_to_keep).keep(ordered)
    if policy.keep_best is not None:
        keep |= BestN(policy.keep_best).keep(ordered, metric_at or {})
    newly_kept: list[int] = []
    if policy.keep_every_n_hours is not None:
        anchor = since if since is not None else ordered[0].created
        newly_kept = EveryNHours(policy.keep_every_n_hours).newly_kept(ordered, keep, anchor)
        keep.update(newly_kept)
    return Plan(delete=[c.id for c in ordered if c.id not in keep], newly_kept=newly_kept)

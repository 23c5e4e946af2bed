"""Per-run metric summaries (last, min, max, best with their steps) and run comparisons.

Plain SQL text through an ``execute(sql, params)`` callback, like ``runs_query``: the store runs
it through SQLAlchemy's driver connection and the CLI's quick path through ``sqlite3``, so both
give the same answer. One GROUP BY over the run's metrics rows per run (the primary key starts
with run_id), then point look-ups by primary key for the steps of the last and best values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..records import MetricSummary, RunComparison, RunInfo
from ..retention import resolve_mode
from .mappers import metric_value

Execute = Callable[[str, list[Any]], Iterable[Sequence[Any]]]


def metric_summaries(execute: Execute, ph: str, run_id: int) -> dict[str, MetricSummary]:
    """Every metric of run ``run_id``: {key: MetricSummary}, keys sorted."""
    out: dict[str, MetricSummary] = {}
    rows = list(execute(
        f"SELECT key, MAX(step), MIN(value), MAX(value) FROM metrics WHERE run_id = {ph} GROUP BY key ORDER BY key",
        [run_id],
    ))
    for key, last_step, lo, hi in rows:
        last = list(execute(f"SELECT value FROM metrics WHERE run_id = {ph} AND step = {ph} AND key = {ph}", [run_id, last_step, key]))
        mode = resolve_mode(key)
        best = lo if mode == "min" else hi
        best_step = None
        if best is not None:
            found = list(execute(
                f"SELECT MAX(step) FROM metrics WHERE run_id = {ph} AND key = {ph} AND value = {ph}", [run_id, key, best]
            ))
            best_step = found[0][0] if found else None
        out[key] = MetricSummary(
            key=key, last=metric_value(last[0][0] if last else None), last_step=last_step,
            best=best, best_step=best_step, mode=mode, min=lo, max=hi,
        )
    return out


def compare(runs: Sequence[RunInfo], summaries: Sequence[dict[str, MetricSummary]]) -> RunComparison:
    """Side by side: params of every run (a missing one is absent), which differ, metrics."""
    names = [r.name for r in runs]
    keys = sorted({k for r in runs for k in r.params})
    params = {k: {r.name: r.params[k] for r in runs if k in r.params} for k in keys}
    differing = differing_params(runs)
    metric_keys = sorted({k for s in summaries for k in s})
    metrics = {k: {r.name: s[k] for r, s in zip(runs, summaries) if k in s} for k in metric_keys}
    return RunComparison(runs=names, params=params, differing=differing, metrics=metrics, info=list(runs))


def differing_params(runs: Sequence[RunInfo]) -> list[str]:
    """Names of the params whose values are not all equal between ``runs`` (a missing one
    counting as a difference), sorted."""
    keys = sorted({k for r in runs for k in r.params})
    return [
        k for k in keys
        if any(k not in r.params for r in runs) or len({_canonical(r.params[k]) for r in runs}) > 1
    ]


def _canonical(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True)

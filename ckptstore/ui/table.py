"""The runs table of the UI's first screen: runs filtered and sorted by the search language of
``runs list --where/--sort``, with param, metric and tag columns.

Filtering and sorting are the store's (``Store.runs(where=, order_by=)``, one query); the column
values come from ``Store.compare_runs`` (params, and each metric's last/min/max/best). Column
names are the search language's fields, so a column header is also a valid ``--sort`` and
``--where`` field: ``params.lr``, ``metrics.val_loss.min``, ``tags.team``.

Without ``columns`` the table shows what picks a model: the metric each run's ``KeepBest``
ranks by (its best value), else the validation metrics' best, and the params whose values
differ between the listed runs. An unknown column is refused with the nearest known names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError
from ..records import MetricSummary, RunComparison, RunInfo, to_json

if TYPE_CHECKING:
    from ..store import Store

AGGREGATES = ("last", "min", "max", "best")
#: Run fields that are columns of their own in the page (not chosen, always shown).
PLAIN = ("name", "status", "created", "ended", "last_step", "checkpoints")
#: A request's bounds: the table answers for at most this many runs, columns.
MAX_RUNS = 1000
MAX_COLUMNS = 40
_FIELD = re.compile(r"""\b(params|metrics|tags)\.("(?:[^"]|"")*"|'(?:[^']|'')*'|[A-Za-z_][A-Za-z0-9_\-]*)""")


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        return name[1:-1].replace(name[0] * 2, name[0])
    return name


def parse_column(text: str, metrics: Sequence[str] = ()) -> tuple[str, str, str]:
    """``(kind, name, aggregate)`` of a column: ``metrics.loss.min`` is ``("metrics", "loss",
    "min")``; a metric without an aggregate is its last value, as in ``--where``. A metric whose
    own name ends in ``.min`` (one in ``metrics``) keeps it."""
    kind, dot, rest = text.partition(".")
    if not dot or kind not in ("params", "metrics", "tags") or not rest:
        raise InvalidOptionError(
            f"column {text!r} is not params.NAME, metrics.NAME[.last|.min|.max|.best] or tags.NAME"
        )
    if kind != "metrics":
        return kind, _unquote(rest), ""
    base, dot, agg = rest.rpartition(".")
    if dot and agg in AGGREGATES and _unquote(rest) not in metrics:
        return kind, _unquote(base), agg
    return kind, _unquote(rest), "last"


def _choices(cmp: RunComparison) -> dict[str, list[str]]:
    return {
        "params": sorted(cmp.params),
        "metrics": sorted(cmp.metrics),
        "tags": sorted({k for r in cmp.info for k in r.tags}),
    }


def _known(kind: str, name: str, choices: Mapping[str, Sequence[str]]) -> bool:
    return name in choices[kind]


def did_you_mean(kind: str, name: str, choices: Mapping[str, Sequence[str]]) -> str:
    """``"; did you mean metrics.val_accuracy?"`` (the nearest names of any kind), or ``""``."""
    every = {f"{k}.{n}": n for k in ("params", "metrics", "tags") for n in choices[k]}
    near = difflib.get_close_matches(name, list(every.values()), n=3, cutoff=0.6)
    named = [f for f, n in every.items() if n in near]
    named.sort(key=lambda f: (not f.startswith(kind + "."), near.index(every[f])))
    return f"; did you mean {' or '.join(named[:3])}?" if named else ""


def default_columns(cmp: RunComparison) -> list[str]:
    """What picks a model: each run's ``KeepBest`` metric (best value), else the validation
    metrics' best (or, with none, the last value of the two metrics most runs logged), then the
    params that differ between the runs."""
    columns: list[str] = []
    for info in cmp.info:
        best = ((info.retention or {}).get("keep_best") or {}).get("metric")
        if best and best in cmp.metrics:
            columns.append(f"metrics.{best}.best")
    if not columns:
        # The metrics most runs logged first: a metric of one odd run is no default.
        common = sorted(cmp.metrics, key=lambda k: (-len(cmp.metrics[k]), k))
        val = [k for k in common if k.startswith("val_")]
        columns = [f"metrics.{k}.best" for k in val[:4]] or [f"metrics.{k}.last" for k in common[:2]]
    columns += [f"params.{k}" for k in cmp.differing]
    return list(dict.fromkeys(columns))[:MAX_COLUMNS]


def _value(kind: str, name: str, agg: str, info: RunInfo, summary: MetricSummary | None) -> Any:
    if kind == "params":
        return info.params.get(name)
    if kind == "tags":
        return info.tags.get(name)
    if summary is None:
        return None
    return getattr(summary, agg)  # NaN: "nan" in the JSON (to_json), as --json prints it


def where_hint(store: Store, where: str) -> str | None:
    """Why a search found nothing, when it names a field no run in the store has:
    ``no run has metrics.val_acc; did you mean metrics.val_accuracy?``."""
    every = store.runs(limit=MAX_RUNS)
    if not every:
        return None
    choices = _choices(store.compare_runs([r.name for r in every]))
    for m in _FIELD.finditer(where):
        kind, name = m.group(1), _unquote(m.group(2))
        if kind == "metrics":
            base, dot, agg = name.rpartition(".")
            if dot and agg in AGGREGATES and name not in choices["metrics"]:
                name = base
        if not _known(kind, name, choices):
            return f"no run has {kind}.{name}{did_you_mean(kind, name, choices)}"
    return None


def runs_table(
    store: Store,
    *,
    where: str | None = None,
    order_by: str | None = None,
    columns: Sequence[str] | None = None,
    status: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The table as JSON: ``columns`` (asked for, or the defaults), ``choices`` (every param,
    metric and tag name of the listed runs), ``runs`` (each run's record with ``values``: column
    -> value) and ``hint`` (why nothing matched, when a field of ``where`` is unknown)."""
    if columns is not None and len(columns) > MAX_COLUMNS:
        raise InvalidOptionError(f"at most {MAX_COLUMNS} columns, got {len(columns)}")
    found = store.runs(status=status, tags=tags, name=name, where=where, order_by=order_by or None, limit=MAX_RUNS)
    cmp = store.compare_runs([r.name for r in found]) if found else RunComparison([], {}, [], {}, [])
    choices = _choices(cmp)
    chosen = list(dict.fromkeys(columns)) if columns else default_columns(cmp)
    parsed = []
    for text in chosen:
        kind, col, agg = parse_column(text, choices["metrics"])
        # With no run listed there is nothing to check a name against: any is accepted.
        if found and not _known(kind, col, choices):
            what = {"params": "param", "metrics": "metric", "tags": "tag"}[kind]
            raise InvalidOptionError(f"no listed run has a {what} {col!r}{did_you_mean(kind, col, choices)}")
        parsed.append((text, kind, col, agg))
    rows = []
    for info in found:
        values = {
            text: _value(kind, col, agg, info, cmp.metrics.get(col, {}).get(info.name) if kind == "metrics" else None)
            for text, kind, col, agg in parsed
        }
        rows.append({**to_json(info), "values": values})
    hint = where_hint(store, where) if where and not found else None
    return {"columns": chosen, "defaults": not columns, "choices": choices, "runs": rows, "hint": hint}

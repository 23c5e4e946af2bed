"""The runs table, written once: ``Store.runs_table``, ``ckptstore runs list`` (also on the CLI's
quick path) and the UI's ``/api/runs`` all call :func:`runs_table`.

It selects the runs with :func:`.runs_query.select_runs` (the same filter and sort), then reads
each metric column with the very SQL expression ``where`` compares and ``--sort`` orders by
(:func:`.run_search.field_sql`), so a shown value is the value the runs were sorted by. Params,
tags and the plain fields come from the :class:`RunInfo` records already read. Plain SQL text
through an ``execute(sql, params)`` callback, as in ``runs_query``: no SQLAlchemy here.

Names a user may misspell are checked against the store's own: an unknown field word
(``--sort val_accuracy``) becomes an error that suggests ``metrics.val_accuracy.max``, and a
param, tag or metric that no run has becomes a note (``RunsTable.notes``) naming the closest one,
so an empty result says why.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import QuerySyntaxError
from ..records import RunInfo, RunsTable
from ..retention import resolve_mode
from .mappers import json_value, metric_value
from .run_search import (
    Field,
    UnknownFieldError,
    field_label,
    field_sql,
    parse_fields,
    parse_order,
    parse_where,
    where_fields,
)
from .runs_query import select_runs
from .summaries import differing_params

Execute = Callable[[str, list[Any]], Iterable[Sequence[Any]]]

#: Run ids per statement reading the metric columns (see ``reads.CHUNK``).
_CHUNK = 250

_PLAIN_VALUE: dict[str, Callable[[RunInfo], Any]] = {
    "name": lambda r: r.name,
    "status": lambda r: r.status,
    "created": lambda r: r.created_at, "created_at": lambda r: r.created_at, "started": lambda r: r.created_at,
    "ended": lambda r: r.ended_at, "ended_at": lambda r: r.ended_at,
    "last_step": lambda r: r.last_step,
    "checkpoints": lambda r: r.checkpoints,
}


def runs_table(
    execute: Execute,
    ph: str,
    *,
    columns: None | str | Sequence[str] = None,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    pattern: str | None = None,
    where_expr: str | None = None,
    order_by: None | str | Sequence[str] = None,
    limit: int | None = None,
) -> RunsTable:
    """The runs that match (as :func:`select_runs`) with the values of ``columns`` (fields of the
    search language, comma separated or a list). ``columns=None``: the fields of ``order_by`` and
    ``where``, the metric each listed run's ``KeepBest`` ranks, and the params whose values differ
    between the listed runs, in that order."""
    dialect = "sqlite" if ph == "?" else "postgresql"
    try:
        asked = parse_fields(columns) if columns is not None else None
        sort_fields = [k.field for k in parse_order(order_by)] if order_by is not None else []
        filter_fields = where_fields(parse_where(where_expr)) if where_expr is not None and where_expr.strip() else []
    except UnknownFieldError as e:
        close = _did_you_mean(execute, e.word)
        if not close:
            raise
        raise QuerySyntaxError(f"bad {e.what}: unknown field {e.word!r}; did you mean {close}?") from None
    runs = select_runs(
        execute, ph, status=status, tags=tags, pattern=pattern, where_expr=where_expr, order_by=order_by, limit=limit,
    )
    fields = asked if asked is not None else _default_fields(runs, sort_fields, filter_fields)
    fields = [f for f in dict.fromkeys(fields) if not (f.kind == "plain" and f.name == "name") and f.kind != "tag"]
    values = _values(execute, ph, dialect, runs, fields)
    notes = _notes(execute, [*(asked or []), *sort_fields, *filter_fields])
    return RunsTable(columns=[field_label(f) for f in fields], runs=runs, values=values, notes=notes)


def _default_fields(runs: Sequence[RunInfo], sort_fields: list[Field], filter_fields: list[Field]) -> list[Field]:
    out = [f for f in (*sort_fields, *filter_fields) if f.kind != "plain"]
    for r in runs:
        best = (r.retention or {}).get("keep_best")
        if best and best.get("metric"):
            out.append(Field("metric", best["metric"], resolve_mode(best["metric"], best.get("mode") or "auto")))
    if len(runs) > 1:
        out += [Field("param", k) for k in differing_params(runs)]
    return out


def _values(execute: Execute, ph: str, dialect: str, runs: Sequence[RunInfo], fields: list[Field]) -> list[dict[str, Any]]:
    labels = [field_label(f) for f in fields]
    out: list[dict[str, Any]] = [dict.fromkeys(labels) for _ in runs]
    metric_cols = [(i, f) for i, f in enumerate(fields) if f.kind == "metric"]
    for n, r in enumerate(runs):
        for label, f in zip(labels, fields):
            if f.kind == "plain":
                out[n][label] = _PLAIN_VALUE[f.name](r)
            elif f.kind == "param":
                out[n][label] = r.params.get(f.name)
            elif f.kind == "tag_value":
                out[n][label] = r.tags.get(f.name)
    if metric_cols and runs:
        at = {r.id: n for n, r in enumerate(runs)}
        ids = list(at)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            args: list[Any] = []
            exprs = [field_sql(f, args, dialect=dialect, ph=ph) for _, f in metric_cols]
            args += chunk
            text = f"SELECT r.id, {', '.join(exprs)} FROM runs r WHERE r.id IN ({', '.join([ph] * len(chunk))})"
            for row in execute(text, args):
                vals = out[at[row[0]]]
                for (i, _), v in zip(metric_cols, row[1:]):
                    vals[labels[i]] = None if v is None else metric_value(v)
    return out


def _store_names(execute: Execute, kinds: set[str]) -> dict[str, list[str]]:
    """The metric, param and tag names the store's runs have (only the kinds asked for)."""
    names: dict[str, list[str]] = {}
    if "metric" in kinds:
        # Level 0 of the rollups: one row per run and metric, where the metrics table has one per value.
        names["metric"] = sorted(row[0] for row in execute("SELECT DISTINCT key FROM metric_rollups WHERE level = 0", []))
    if "param" in kinds:
        params: set[str] = set()
        for (data,) in execute("SELECT params FROM runs", []):
            params.update(json_value(data) or {})
        names["param"] = sorted(params)
    if "tag_value" in kinds:
        names["tag_value"] = sorted(row[0] for row in execute("SELECT DISTINCT key FROM run_tags", []))
    return names


_KIND_WORD = {"metric": "metric", "param": "param", "tag_value": "tag"}


def _suggest(f: Field, names: dict[str, list[str]]) -> str:
    """``metrics.val_accuracy.max`` for a field whose name is close to one of the store's."""
    for kind in ("metric", "param", "tag_value"):
        for name in (f.name, *difflib.get_close_matches(f.name, names.get(kind, []), n=1)):
            if name in names.get(kind, []) and (kind != f.kind or name != f.name):
                agg = (f.agg if f.kind == "metric" and f.agg != "best" else resolve_mode(name)) if kind == "metric" else "last"
                return field_label(Field(kind, name, agg))
    return ""


def _notes(execute: Execute, fields: Sequence[Field]) -> list[str]:
    wanted = [f for f in dict.fromkeys(fields) if f.kind in _KIND_WORD]
    if not wanted:
        return []
    names = _store_names(execute, {"metric", "param", "tag_value"})
    notes = []
    for f in wanted:
        if f.name in names.get(f.kind, []):
            continue
        close = _suggest(f, names)
        hint = f" (did you mean {close}?)" if close else ""
        notes.append(f"no run has a {_KIND_WORD[f.kind]} {f.name!r}{hint}")
    return list(dict.fromkeys(notes))


def _did_you_mean(execute: Execute, word: str) -> str:
    """``metrics.val_accuracy.max`` for a bare name the store knows (or nearly), else ""."""
    return _suggest(Field("plain", word, "best"), _store_names(execute, {"metric", "param", "tag_value"}))

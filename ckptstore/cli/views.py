"""What the read commands print, from the records of either reader (the store, or the quick
reader of a SQLite store: ``app.read``), so both print the same bytes. No Typer, no SQLAlchemy
here.
"""

import fnmatch
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..records import (
    AliasInfo,
    CheckpointInfo,
    ExportInfo,
    RunAtStep,
    RunComparison,
    RunInfo,
    RunsTable,
    StepMetrics,
    VariableInfo,
    to_json,
)
from .output import (
    echo,
    fields,
    key_values,
    number,
    or_dash,
    param_text,
    print_json,
    shape,
    size,
    table,
    when,
)

if TYPE_CHECKING:
    from ..metadata.quick_reader import QuickReader
    from ..metadata.run_search import SortKey
    from ..store import Store


def print_runs(found: RunsTable, *, filtered: bool, as_json: bool) -> None:
    """The runs table: the name, then the asked-for (or default) columns, then the run's state,
    so that on a narrow terminal the values asked for are the ones kept."""
    for note in found.notes:
        sys.stderr.write(f"note: {note}\n")
    if as_json:
        print_json([{**to_json(r), "values": to_json(v)} for r, v in zip(found.runs, found.values)])
        return
    if not found.runs:
        echo("no runs" + (" match" if filtered else " yet"))
        return
    cols = found.columns
    numeric = [
        i for i, c in enumerate(cols)
        if all(v[c] is None or (isinstance(v[c], (int, float)) and not isinstance(v[c], bool)) for v in found.values)
    ]
    n = len(cols)
    table(
        ["name", *cols, "status", "last step", "checkpoints", "created", "tags"],
        [
            [r.name, *(cell(v[c]) for c in cols), r.status, or_dash(r.last_step), str(r.checkpoints), when(r.created_at), key_values(r.tags)]
            for r, v in zip(found.runs, found.values)
        ],
        right=(*(1 + i for i in numeric), n + 2, n + 3),
        asked=1 + n,  # the name and the value columns; the state columns go first
    )


def cell(v: Any) -> str:
    """A table cell for a value of the runs table: numbers as ``number`` prints them, "-" for none."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return number(v)
    if isinstance(v, datetime):
        return when(v)
    return param_text(v)


def print_run(info: RunInfo, metrics: list[str], *, as_json: bool) -> None:
    if as_json:
        print_json({**to_json(info), "metrics": metrics})
        return
    fields(
        [
            ("name", info.name),
            ("status", info.status),
            ("created", when(info.created_at)),
            ("ended", when(info.ended_at) or "-"),
            ("last step", or_dash(info.last_step)),
            ("checkpoints", str(info.checkpoints)),
            ("metrics", ", ".join(metrics) or "-"),
            ("params", json.dumps(info.params, ensure_ascii=False) if info.params else "-"),
            ("tags", key_values(info.tags) or "-"),
            ("retention", json.dumps(info.retention) if info.retention else "-"),
        ]
    )


def print_comparison(cmp: RunComparison, *, as_json: bool, transpose: bool = False, columns: str | None = None) -> None:
    """Runs side by side: a row per field and a column per run, or with ``transpose`` a row per
    run and a column per field (many runs on few fields). ``columns`` (the ``runs list
    --columns`` grammar) shows only those fields, in that order; ``--json`` has everything."""
    if as_json:
        print_json({
            "runs": cmp.runs, "params": cmp.params, "differing_params": cmp.differing,
            "metrics": {k: {run: to_json(m) for run, m in per_run.items()} for k, per_run in cmp.metrics.items()},
        })
        return
    found = comparison_fields(cmp)
    if columns is not None:
        found = asked_fields(found, columns)
    elif transpose:
        # What tells the runs apart first: on a narrow terminal the columns on the right go.
        # Within a group, validation metrics first, as `at` orders them.
        rank = {"differs": 0, "best": 1, "last": 2, "plain": 3, "param": 4}
        order = {k: i for i, k in enumerate(metric_order(set(cmp.metrics), None))}
        found = sorted(found, key=lambda f: (rank[f.group], order.get(f.metric, -1)))
    if transpose:
        # Asked-for fields (or, by default, the params that differ and each metric's best) are
        # never dropped at any width: they wrap; the other columns go when they do not fit.
        asked = len(found) if columns is not None else sum(f.group in ("differs", "best") for f in found)
        table(
            ["run", *(f.name for f in found)],
            [[run, *(f.cells[i] for f in found)] for i, run in enumerate(cmp.runs)],
            right=[1 + i for i, f in enumerate(found) if f.numeric],
            asked=1 + asked,
        )
    else:
        rows = [["*" if f.group == "differs" else "", f.label, *f.cells] for f in found]
        # Runs are columns; at 80 columns four runs no longer fit beside the labels, so they wrap
        # into blocks of runs (labels repeated) rather than lose a run.
        table(["", "", *cmp.runs], rows, right=range(2, len(cmp.runs) + 2), keep=2, wrap=True)
    differing = [k for k in cmp.differing if columns is None or any(f.label == f"params.{k}" for f in found)]
    if differing:
        echo(f"* differs: {', '.join(differing)}")


@dataclass(frozen=True)
class CompareField:
    """One field of ``runs compare``: ``name`` as the search language writes it (a column's
    header), ``label`` as the untransposed table shows it, a cell per run."""

    name: str
    label: str
    cells: list[str]
    group: str  # plain, param, differs (a param whose values differ), last, best
    numeric: bool = True
    mode: str = ""  # a metric's best: min or max
    metric: str = ""  # a metric's field: the metric's name


#: Metrics that count (the epoch ``keras.StoreCallback`` logs): never "best".
COUNTERS = frozenset({"epoch"})


def comparison_fields(cmp: RunComparison) -> list[CompareField]:
    """The fields of a comparison in the order of the untransposed table: status, last step,
    the params, each metric's last and best. Named as ``runs list`` heads its columns (a name of
    other characters quoted: ``metrics."top-1 acc".last``), labelled as the table always was."""
    from ..metadata.run_search import Field, field_label

    info = {r.name: r for r in cmp.info}
    out = [
        CompareField("status", "status", [info[n].status for n in cmp.runs], "plain", numeric=False),
        CompareField("last_step", "last step", [or_dash(info[n].last_step) for n in cmp.runs], "plain"),
    ]
    for k, per_run in cmp.params.items():
        numeric = all(_is_number(per_run.get(n)) for n in cmp.runs)
        out.append(CompareField(field_label(Field("param", k)), f"params.{k}",
                                [param_text(per_run[n]) if n in per_run else "-" for n in cmp.runs],
                                "differs" if k in cmp.differing else "param", numeric))
    for k, per_run in cmp.metrics.items():
        # Every run's summary of one metric has the same mode: it comes from the name.
        mode = next(iter(per_run.values())).mode
        # A count the loop logs (Keras's epoch) has a last value but no best worth showing.
        for what in ("last",) if k in COUNTERS else ("last", "best"):
            cells = []
            for n in cmp.runs:
                m = per_run.get(n)
                if m is None:
                    cells.append("-")
                elif what == "last":
                    cells.append(f"{number(m.last)} @{m.last_step}")
                else:
                    cells.append("-" if m.best is None else f"{number(m.best)} @{m.best_step}")
            label = f"metrics.{k}.{what}" + (f" ({mode})" if what == "best" else "")
            out.append(CompareField(field_label(Field("metric", k, what)), label, cells, what, mode=mode, metric=k))
    return out


def asked_fields(found: list[CompareField], columns: str) -> list[CompareField]:
    """The fields ``columns`` names, in its order: fields of the ``runs list --columns`` grammar
    (``params.lr``, ``metrics.loss`` for its last value, ``metrics.loss.best``, or ``.min`` /
    ``.max`` when that is the metric's best, ``status``, ``last_step``). A field the comparison
    has not is an error naming the closest it has."""
    import difflib

    from ..errors import InvalidOptionError
    from ..metadata.run_search import UnknownFieldError, field_label, parse_fields

    by_name = {f.name: f for f in found}
    try:
        fields = parse_fields(columns, "columns")
    except UnknownFieldError as e:
        # A bare name (lr, val_loss): the field of that name the comparison has, as runs list says.
        close = next((f.name for f in found if f.name.split(".")[1:2] == [e.word]), None)
        if close is None:
            raise
        raise InvalidOptionError(f"bad columns: unknown field {e.word!r}; did you mean {close}?") from None
    out = []
    for field in fields:
        name = field_label(field)
        if field.kind == "metric" and field.agg in ("min", "max"):
            best = by_name.get(name.rsplit(".", 1)[0] + ".best")
            if best is not None and best.mode != field.agg:
                raise InvalidOptionError(f"runs compare shows the best of {field.name!r}, its {best.mode}: {best.name}")
            if best is not None:  # shown under the name asked
                out.append(replace(best, name=name))
                continue
        if name not in by_name:
            nearest = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f"; did you mean {nearest[0]}?" if nearest else ""
            raise InvalidOptionError(
                f"runs compare has no field {name}{hint} (it shows status, last_step, params.NAME, "
                "metrics.NAME.last and metrics.NAME.best)"
            )
        out.append(by_name[name])
    return list({f.name: f for f in out}.values())


def print_steps(run: str, rows: list[StepMetrics], *, filtered: bool, as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo(f"no metrics logged for run {run}" + (" in that range" if filtered else ""))
        return
    keys = sorted({k for r in rows for k in r.metrics})
    table(
        ["step", *keys],
        [[str(r.step), *(number(r.metrics[k]) if k in r.metrics else "" for k in keys)] for r in rows],
        right=range(len(keys) + 1),
    )


def print_at(
    step: int, rows: list[RunAtStep], *, nearest: bool, params: dict[str, dict[str, object]], param_names: list[str],
    as_json: bool, metric: Sequence[str] | None = None,
) -> None:
    if as_json:
        from ..records import to_json

        out = [to_json(r) for r in rows]
        if param_names:
            for item in out:
                item["params"] = {p: params.get(item["run"], {}).get(p) for p in param_names}
        print_json(out)
        return
    if not rows:
        echo(f"no run has step {step}" + ("" if nearest else " (try --nearest)"))
        return
    keys = metric_order({k for r in rows for k in r.metrics}, metric)
    numeric = [
        i for i, p in enumerate(param_names)
        if all(_is_number(params.get(r.run, {}).get(p)) for r in rows)
    ]
    n = len(param_names)
    table(
        ["run", "step", "checkpoint", *(f"params.{p}" for p in param_names), *keys],
        [
            [
                r.run, str(r.step), or_dash(r.checkpoint_step),
                *(param_text(params[r.run][p]) if p in params.get(r.run, {}) else "-" for p in param_names),
                *(number(r.metrics[k]) if k in r.metrics else "" for k in keys),
            ]
            for r in rows
        ],
        right=[1, 2, *(3 + i for i in numeric), *range(3 + n, 3 + n + len(keys))],
        # The values at the step are what `at` is for: at any width they wrap, none is dropped.
        wrap=True,
    )


def metric_order(keys: set[str], asked: Sequence[str] | None) -> list[str]:
    """Metric columns in the order asked (``-m``), else validation metrics first: on a narrow
    terminal the columns on the right are dropped, and ``val_*`` are the ones people compare."""
    if asked:
        return [k for k in dict.fromkeys(asked) if k in keys]
    return sorted(keys, key=lambda k: (not k.startswith(("val_", "validation", "eval_", "test_")), k))


def _is_number(v: Any) -> bool:
    # A missing param prints "-", which goes with either alignment.
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def at_rows(
    store: "Store | QuickReader", step: int, *, nearest: bool, metric: list[str] | None, run: str | None,
    param: list[str] | None, sort: str | None = None,
) -> tuple[list[RunAtStep], dict[str, dict[str, object]], list[str]]:
    """The rows of ``at`` (runs matching the glob ``run``), by name or by the fields of ``sort``
    (see :func:`sort_at`), the params of their runs, and notes on sort fields no run has."""
    table = None
    keys = metric
    if sort is not None:
        from ..errors import QuerySyntaxError
        from ..metadata.run_search import UnknownFieldError, parse_order

        try:
            parse_order(sort)
        except UnknownFieldError as e:
            # A bare metric name here means its value at STEP (metrics.X), not the run's best
            # over all steps that runs list would suggest.
            import difflib

            logged = sorted({k for r in store.at_step(step, nearest=nearest, keys=None) for k in r.metrics})
            close = [e.word] if e.word in logged else difflib.get_close_matches(e.word, logged, n=1, cutoff=0.8)
            if close:
                sign = "-" if any(part.strip().startswith("-" + e.word) for part in sort.split(",")) else ""
                raise QuerySyntaxError(
                    f"bad sort: unknown field {e.word!r}; did you mean {sign}metrics.{close[0]} (its value at step {step})?"
                ) from None
        # The runs table parses the fields and words a mistake (did you mean
        # metrics.val_accuracy.max?) exactly as for runs list --sort; its values are the
        # params, tags and whole-series aggregates a key may sort by.
        table = store.runs_table(order_by=sort, name=run)
        order = parse_order(sort)
        at_metrics = [k.field.name for k in order if k.field.kind == "metric" and k.field.agg == "last"]
        if metric and at_metrics:
            keys = list(dict.fromkeys([*metric, *at_metrics]))  # read the sort metric too, shown only if asked
    rows = store.at_step(step, nearest=nearest, keys=keys)
    if run is not None:
        rows = [r for r in rows if fnmatch.fnmatchcase(r.run, run)]
    missing = [m for m in dict.fromkeys(metric or ()) if not any(m in r.metrics for r in rows)]
    extra: list[str] = []
    if missing:
        # Only when one is missing: the names there are at that step, for a did-you-mean.
        there = {k for r in store.at_step(step, nearest=nearest, keys=None) for k in r.metrics}
        extra = metric_notes(missing, there, f"at step {step}")
    rows.sort(key=lambda r: r.run)  # by name, as people look a run up (the store gives creation order)
    if table is not None:
        rows = sort_at(rows, table, order)
        if keys is not metric:
            asked = set(metric or ())
            rows = [replace(r, metrics={k: v for k, v in r.metrics.items() if k in asked}) for r in rows]
    params: dict[str, dict[str, object]] = {}
    if param and rows:
        params = {r.name: r.params for r in store.runs(name=run)}
        shown = {r.run for r in rows}
        known = {k for name, p in params.items() if name in shown for k in p}
        for p in dict.fromkeys(param):
            if p not in known:  # a misspelt --param would print a column of '-' and say nothing
                extra.append(_param_note(p, known))
    return rows, params, [*(table.notes if table is not None else []), *extra]


def _param_note(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"no run listed has a param {name!r}" + (f" (did you mean {close[0]}?)" if close else "")


def metric_notes(missing: Sequence[str], known: Iterable[str], where: str) -> list[str]:
    """A note for each asked metric that is not there, with the closest name that is: a
    misspelt ``-m val_acuracy`` otherwise prints nothing for it and says nothing."""
    import difflib

    names = sorted(set(known))
    notes = []
    for m in missing:
        close = difflib.get_close_matches(m, names, n=1)
        notes.append(f"no metric {m!r} {where}" + (f" (did you mean {close[0]}?)" if close else ""))
    return notes


#: A plain sort field's value in a run's record (the words of the search language).
_RUN_FIELD = {"created": "created_at", "started": "created_at", "ended": "ended_at"}


def sort_at(rows: list[RunAtStep], table: RunsTable, order: Sequence["SortKey"]) -> list[RunAtStep]:
    """``rows`` sorted by ``order`` (stable: rows equal on every key keep their order). A metric
    (``metrics.loss`` or ``.last``) sorts by its value at the row's step, the one ``at`` shows;
    a param, tag, plain field or a metric's ``.min``/``.max``/``.best`` by the run's value in
    ``table``. As ``runs list --sort``: numbers before text, and rows without a value (or NaN)
    last in either direction."""
    from ..metadata.run_search import field_label

    values = {r.name: v for r, v in zip(table.runs, table.values)}
    info = {r.name: r for r in table.runs}

    def value(row: RunAtStep, key: "SortKey") -> Any:
        f = key.field
        if f.kind == "metric" and f.agg == "last":
            v: Any = row.metrics.get(f.name)
        elif f.kind == "plain":
            v = row.run if f.name == "name" else getattr(info.get(row.run), _RUN_FIELD.get(f.name, f.name), None)
        else:
            v = values.get(row.run, {}).get(field_label(f))
        return None if v is None or (isinstance(v, float) and v != v) else v

    def as_text(v: Any) -> str:
        return v if isinstance(v, str) else v.isoformat() if isinstance(v, datetime) else json.dumps(v, sort_keys=True)

    for key in reversed(order):  # the last key first: each stable pass keeps the order of the later keys
        found = [(value(r, key), r) for r in rows]
        numbers = [(v, r) for v, r in found if v is not None and _is_number(v)]
        texts = [(as_text(v), r) for v, r in found if v is not None and not _is_number(v)]
        numbers.sort(key=lambda p: p[0], reverse=key.descending)
        texts.sort(key=lambda p: p[0], reverse=key.descending)
        rows = [r for _, r in numbers] + [r for _, r in texts] + [r for v, r in found if v is None]
    return rows


def checkpoint_json(ck: CheckpointInfo) -> dict[str, Any]:
    return {**to_json(ck), "ref": ck.ref, "pinned": ck.pinned}


def print_checkpoints(
    run: str, cks: list[CheckpointInfo], *, metric: str | None, values: dict[int, float], as_json: bool
) -> None:
    best = best_step(metric, values) if metric is not None else None
    if as_json:
        out = []
        for ck in cks:
            item = checkpoint_json(ck)
            if metric is not None:
                item["metric"] = {"name": metric, "value": values.get(ck.step), "best": ck.step == best}
            out.append(item)
        print_json(out)
        return
    if not cks:
        echo(f"run {run} has no checkpoints")
        return
    head = ["ref", "step"] + ([metric, "best"] if metric is not None else [])
    table(
        # What people pick a checkpoint by first (its aliases, pinned or not), what it costs, then
        # how it is stored: at 80 columns the table drops from the right.
        [*head, "size", "state", "aliases", "created", "files", "format"],
        [
            [
                ck.ref, str(ck.step),
                *([number(values[ck.step]) if ck.step in values else "-", "*" if ck.step == best else ""] if metric is not None else []),
                size(ck.total_bytes), f"{ck.state}, pinned" if ck.pinned else ck.state, ", ".join(ck.aliases),
                when(ck.created_at), str(len(ck.files)), ck.format,
            ]
            for ck in cks
        ],
        right=(1, 2, 4, 8) if metric is not None else (1, 2, 6),
    )
    if metric is not None:
        from ..retention import resolve_mode

        mode = resolve_mode(metric)
        echo(
            f"best by {metric} ({mode}): {run}@{best}" if best is not None
            else f"no checkpoint of {run} has {metric} logged at its step"
        )


def best_step(metric: str, values: dict[int, float]) -> int | None:
    """As ``store.best``: the min or max by the metric's name, the newer step on a tie."""
    if not values:
        return None
    from ..retention import resolve_mode

    sign = 1.0 if resolve_mode(metric) == "min" else -1.0
    return min(values, key=lambda step: (sign * values[step], -step))


def print_variables(variables: list[VariableInfo], *, as_json: bool) -> None:
    if as_json:
        print_json(variables)
        return
    table(["name", "dtype", "shape"], [[v.readable or v.name, v.dtype, shape(v.shape)] for v in variables])


def print_aliases(aliases: list[AliasInfo], name: str | None, *, as_json: bool) -> None:
    if as_json:
        print_json(aliases)
        return
    if not aliases:
        echo("no aliases yet (create one with 'ckptstore alias NAME REF')")
        return
    table(
        ["name", "target", "kind", "updated", "message"],
        [[a.name, a.target or "-", a.kind, when(a.updated_at), a.message or ""] for a in aliases],
    )
    if name is not None:
        echo("")
        table(
            ["when", "action", "from", "to", "message"],
            [[when(e.at), e.action, e.old_target or "", e.new_target or "", e.message or ""] for e in aliases[0].history],
            title="history (newest first)",
        )


def export_json(e: ExportInfo) -> dict[str, Any]:
    return {**to_json(e), "ref": e.ref}


def signature(specs: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{s.get('name')}:{s.get('dtype')}{shape(s.get('shape'))}" for s in specs)


def print_exports(items: list[ExportInfo], run: str | None, *, as_json: bool) -> None:
    if as_json:
        print_json([export_json(e) for e in items])
        return
    if not items:
        echo("no exports" + (f" in run {run}" if run else " yet"))
        return
    # Aliases right after the REF (they are how an export is found); the long signatures last,
    # so a narrow terminal drops those first.
    table(
        ["ref", "aliases", "run", "step", "kind", "size", "created", "nodes", "inputs", "outputs"],
        [
            [
                e.ref, ", ".join(e.aliases), e.run, or_dash(e.step), e.kind, size(e.size), when(e.created_at),
                str(e.node_count), signature(e.inputs), signature(e.outputs),
            ]
            for e in items
        ],
        right=(3, 5, 7),
    )

"""``ckptstore runs list | show | compare | delete``.

``runs list`` is the command people type all day, so it answers in under 0.3 s on 1,000 runs:
its usual command lines are taken by :func:`quick_runs_list` before Typer parses anything (see
``app.py``), and a SQLite store is read through the standard library's ``sqlite3``
(``list_runs`` below) without SQLAlchemy.
"""

import sys
from typing import Annotated, Optional

import typer

from ..constants import RUN_STATUSES
from ..metadata.quick import list_runs as quick_list_runs
from ..records import RunComparison, RunInfo, to_json
from .app import (
    JsonOpt,
    StoreLocation,
    command,
    fail,
    group,
    location,
    open_store,
    parse_plain_options,
    quick_command,
)
from .complete import complete_runs
from .quick import parse_command_line, quick_read
from .output import fields, key_values, number, or_dash, param_text, print_json, table, when

runs_app = group("runs", "List, search, show, compare and delete runs.")


def _check_status(value: Optional[str]) -> Optional[str]:
    # A callback, not a Choice type, so that the message names the statuses as it always has.
    if value is not None and value not in RUN_STATUSES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, RUN_STATUSES))}.")
    return value


def _parse_tags(items: Optional[list[str]]) -> Optional[dict[str, str]]:
    if not items:
        return None
    tags = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--tag")
        tags[key] = value
    return tags


def list_runs(
    where: StoreLocation,
    *,
    status: Optional[str],
    tags: Optional[dict[str, str]],
    name: Optional[str],
    search: Optional[str] = None,
    sort: Optional[str] = None,
    limit: Optional[int] = None,
) -> list[RunInfo]:
    """The runs of a store, newest first (or by ``sort``); without SQLAlchemy for a SQLite store."""
    # Anything but a readable SQLite store at the current schema, and every error case but a bad
    # search (worded the same either way), takes the store's own path, which words the errors.
    runs = quick_list_runs(where.store, status=status, tags=tags, name=name, where=search, order_by=sort, limit=limit)
    if runs is None:
        with where.open(readonly=True) as store:
            runs = store.runs(status=status, tags=tags, name=name, where=search, order_by=sort, limit=limit)
    return runs


def print_runs(runs: list[RunInfo], *, filtered: bool, as_json: bool) -> None:
    if as_json:
        print_json(runs)
        return
    if not runs:
        typer.echo("no runs" + (" match" if filtered else " yet"))
        return
    table(
        ["name", "status", "last step", "checkpoints", "created", "tags"],
        [[r.name, r.status, or_dash(r.last_step), str(r.checkpoints), when(r.created_at), key_values(r.tags)] for r in runs],
        right=(2, 3),
    )


def _check_limit(value: Optional[int]) -> Optional[int]:
    if value is not None and value < 0:
        raise typer.BadParameter(f"{value} is below 0.", param_hint="--limit")
    return value


@command(runs_app, "list")
def runs_list(
    ctx: typer.Context,
    status: Annotated[
        Optional[str], typer.Option(metavar="STATUS", callback=_check_status, help="running, finished or failed.")
    ] = None,
    tag: Annotated[
        Optional[list[str]], typer.Option(metavar="KEY=VALUE", help="Only runs with this tag; repeat to require several.")
    ] = None,
    name: Annotated[
        Optional[str], typer.Option(metavar="PATTERN", help="A name or glob, e.g. 'resnet-*'.", autocompletion=complete_runs)
    ] = None,
    search: Annotated[
        Optional[str],
        typer.Option(
            "--where", metavar="EXPR",
            help="Only runs where EXPR holds, e.g. \"params.lr = 0.01 and metrics.val_loss.min < 0.2\". "
            "Fields: name, status, created, ended, last_step, checkpoints, params.X, tags.X, tag, "
            "metrics.X[.last|.min|.max|.best]; = != < <= > >=, and, or, not, parentheses.",
        ),
    ] = None,
    sort: Annotated[
        Optional[str],
        typer.Option(
            "--sort", metavar="FIELDS",
            help="Sort by these fields (comma separated; '-' before one or 'desc' after it: descending), "
            "e.g. metrics.val_loss.min. Default: newest first.",
        ),
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", metavar="N", callback=_check_limit, help="At most N runs.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs, newest first: filtered (--status, --tag, --name, --where), sorted (--sort), limited (--limit)."""
    tags = _parse_tags(tag)
    runs = list_runs(location(ctx), status=status, tags=tags, name=name, search=search, sort=sort, limit=limit)
    print_runs(runs, filtered=bool(status or tags or name or search), as_json=as_json)


@quick_command
def quick_runs_list(where: StoreLocation, args: list[str]) -> bool:
    """``runs list [--status S] [--tag K=V]... [--name P] [--where E] [--sort F] [--limit N] [--json]``,
    parsed without Typer. Any other form, and a value that ``runs_list`` would refuse, is left to Typer.
    """
    if args[:2] != ["runs", "list"]:
        return False
    parsed = parse_plain_options(
        args[2:], values=frozenset({"--status", "--name", "--where", "--sort", "--limit"}),
        repeatable=frozenset({"--tag"}), flags=frozenset({"--json"}),
    )
    if parsed is None or parsed[1]:
        return False
    options = parsed[0]
    status, name = options.get("--status"), options.get("--name")
    if status is not None and status not in RUN_STATUSES:
        return False
    limit = options.get("--limit")
    if limit is not None:
        if not limit.isdigit():
            return False
        limit = int(limit)
    try:
        tags = _parse_tags(options.get("--tag"))
    except typer.BadParameter:
        return False
    search = options.get("--where")
    runs = list_runs(where, status=status, tags=tags, name=name, search=search, sort=options.get("--sort"), limit=limit)
    print_runs(runs, filtered=bool(status or tags or name or search), as_json=options.get("--json", False))
    return True


@command(runs_app, "show")
def runs_show(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.", autocompletion=complete_runs)],
    as_json: JsonOpt = False,
) -> None:
    """One run: status, params, tags, retention, metric names, checkpoints."""
    store = open_store(ctx, readonly=True)
    print_run(store.get_run(run), store.metric_keys(run), as_json=as_json)


def print_run(info: RunInfo, metrics: list[str], *, as_json: bool) -> None:
    if as_json:
        print_json({**to_json(info), "metrics": metrics})
        return
    import json

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


@quick_command
def quick_runs_show_compare(where: StoreLocation, args: list[str]) -> bool:
    """``runs show RUN [--json]`` and ``runs compare RUN... [--json]`` without Typer or SQLAlchemy."""
    if args[:2] not in (["runs", "show"], ["runs", "compare"]):
        return False
    parsed = parse_command_line(args[2:], flags={"--json": "json"})
    if parsed is None or not parsed[1]:
        return False
    options, names = parsed
    if args[1] == "show":
        if len(names) != 1:
            return False
        got = quick_read(where, lambda r: (r.get_run(names[0]), r.metric_keys(names[0])))
        if got is None:
            return False
        print_run(*got[0], as_json=options.get("json", False))
        return True
    got = quick_read(where, lambda r: r.compare_runs(names))
    if got is None:
        return False
    print_comparison(got[0], as_json=options.get("json", False))
    return True


def print_comparison(cmp: RunComparison, *, as_json: bool) -> None:
    if as_json:
        print_json({
            "runs": cmp.runs, "params": cmp.params, "differing_params": cmp.differing,
            "metrics": {k: {run: to_json(m) for run, m in per_run.items()} for k, per_run in cmp.metrics.items()},
        })
        return
    info = {r.name: r for r in cmp.info}
    rows = [["", "status", *(info[n].status for n in cmp.runs)], ["", "last step", *(or_dash(info[n].last_step) for n in cmp.runs)]]
    for k, per_run in cmp.params.items():
        mark = "*" if k in cmp.differing else ""
        rows.append([mark, f"params.{k}", *(param_text(per_run[n]) if n in per_run else "-" for n in cmp.runs)])
    for k, per_run in cmp.metrics.items():
        for what in ("last", "best"):
            cells = []
            for n in cmp.runs:
                m = per_run.get(n)
                if m is None:
                    cells.append("-")
                elif what == "last":
                    cells.append(f"{number(m.last)} @{m.last_step}")
                else:
                    cells.append("-" if m.best is None else f"{number(m.best)} @{m.best_step}")
            label = f"metrics.{k}.{what}" + (f" ({'max' if per_run and next(iter(per_run.values())).mode == 'max' else 'min'})" if what == "best" else "")
            rows.append(["", label, *cells])
    table(["", "", *cmp.runs], rows, right=range(2, len(cmp.runs) + 2))
    if cmp.differing:
        typer.echo(f"* differs: {', '.join(cmp.differing)}")


@command(runs_app, "compare")
def runs_compare(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(metavar="RUN...", help="Two or more runs.", autocompletion=complete_runs)],
    as_json: JsonOpt = False,
) -> None:
    """Runs side by side: params (differences marked with *), and each metric's last and best value with its step."""
    cmp = open_store(ctx, readonly=True).compare_runs(runs)
    print_comparison(cmp, as_json=as_json)


@command(runs_app, "delete")
def runs_delete(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.", autocompletion=complete_runs)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a run with its metrics, checkpoints and exports (refused while an alias points at them)."""
    store = open_store(ctx)
    info = store.get_run(run)
    n_exports = len(store.exports(run))
    what = (
        f"run {run!r} with {_count(info.checkpoints, 'checkpoint')}, {_count(n_exports, 'export')} "
        f"and its metrics"
    )
    if not yes:
        if not sys.stdin.isatty():
            fail(f"deleting {what} needs --yes when not asked on a terminal")
        typer.confirm(f"Delete {what}?", abort=True)
    n = store.delete_run(run)
    typer.echo(f"deleted run {run} ({_count(n, 'checkpoint')}, {_count(n_exports, 'export')}, its metrics)")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"

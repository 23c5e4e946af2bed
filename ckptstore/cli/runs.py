"""``ckptstore runs list | show | delete``.

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
from ..records import RunInfo, to_json
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
from .output import fields, key_values, or_dash, print_json, table, when

runs_app = group("runs", "List, show and delete runs.")


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
    where: StoreLocation, *, status: Optional[str], tags: Optional[dict[str, str]], name: Optional[str]
) -> list[RunInfo]:
    """The runs of a store, oldest first; without SQLAlchemy for a SQLite store."""
    # Anything but a readable SQLite store at the current schema, and every error case, takes
    # the store's own path, which also words the errors.
    runs = quick_list_runs(where.store, status=status, tags=tags, name=name)
    if runs is None:
        with where.open(readonly=True) as store:
            runs = store.runs(status=status, tags=tags, name=name)
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


@command(runs_app, "list")
def runs_list(
    ctx: typer.Context,
    status: Annotated[
        Optional[str], typer.Option(metavar="STATUS", callback=_check_status, help="running, finished or failed.")
    ] = None,
    tag: Annotated[
        Optional[list[str]], typer.Option(metavar="KEY=VALUE", help="Only runs with this tag; repeat to require several.")
    ] = None,
    name: Annotated[Optional[str], typer.Option(metavar="PATTERN", help="A name or glob, e.g. 'resnet-*'.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs, oldest first."""
    tags = _parse_tags(tag)
    runs = list_runs(location(ctx), status=status, tags=tags, name=name)
    print_runs(runs, filtered=bool(status or tags or name), as_json=as_json)


@quick_command
def quick_runs_list(where: StoreLocation, args: list[str]) -> bool:
    """``runs list [--status S] [--tag K=V]... [--name P] [--json]``, parsed without Typer.

    Any other form, and a status or tag that ``runs_list`` would refuse, is left to Typer.
    """
    if args[:2] != ["runs", "list"]:
        return False
    parsed = parse_plain_options(
        args[2:], values=frozenset({"--status", "--name"}), repeatable=frozenset({"--tag"}), flags=frozenset({"--json"})
    )
    if parsed is None or parsed[1]:
        return False
    options = parsed[0]
    status, name = options.get("--status"), options.get("--name")
    if status is not None and status not in RUN_STATUSES:
        return False
    try:
        tags = _parse_tags(options.get("--tag"))
    except typer.BadParameter:
        return False
    runs = list_runs(where, status=status, tags=tags, name=name)
    print_runs(runs, filtered=bool(status or tags or name), as_json=options.get("--json", False))
    return True


@command(runs_app, "show")
def runs_show(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.")],
    as_json: JsonOpt = False,
) -> None:
    """One run: status, params, tags, retention, metric names, checkpoints."""
    store = open_store(ctx, readonly=True)
    info = store.get_run(run)
    metrics = store.metric_keys(run)
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


@command(runs_app, "delete")
def runs_delete(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a run with its metrics, checkpoints and exports (refused while an alias points at them)."""
    store = open_store(ctx)
    info = store.get_run(run)
    if not yes:
        if not sys.stdin.isatty():
            fail(f"deleting run {run!r} needs --yes when not asked on a terminal")
        typer.confirm(f"Delete run {run!r} with {info.checkpoints} checkpoint(s)?", abort=True)
    n = store.delete_run(run)
    typer.echo(f"deleted run {run} ({n} checkpoint{'s' if n != 1 else ''})")

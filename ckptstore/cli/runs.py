"""``ckptstore runs list | show | compare | delete``.

``runs list`` is the command people type all day, so it answers in under 0.3 s on 1,000 runs:
like ``show`` and ``compare`` it reads a SQLite store through the standard library's
``sqlite3``, without SQLAlchemy (``app.read``).
"""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ..constants import RUN_STATES
from .app import JsonOpt, command, fail, group, open_store, quick_write_or, read
from .complete import complete_runs
from .views import print_comparison, print_run, print_runs

if TYPE_CHECKING:
    from ..metadata.quick_writer import QuickWriter

runs_app = group("runs", "List, search, show, compare and delete runs.")


def _check_status(value: str | None) -> str | None:
    # A callback, not a Choice type, so that the message names the statuses as it always has.
    if value is not None and value not in RUN_STATES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, RUN_STATES))}.")
    return value


def _parse_tags(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    tags = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--tag")
        tags[key] = value
    return tags


def _check_limit(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise typer.BadParameter(f"{value} is below 0.", param_hint="--limit")
    return value


@command(runs_app, "list", quick=True)
def runs_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(metavar="STATUS", callback=_check_status, help="running, finished, failed or crashed (running, but its process is gone).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(metavar="KEY=VALUE", help="Only runs with this tag; repeat to require several.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(metavar="PATTERN", help="A name or glob, e.g. 'resnet-*'.", autocompletion=complete_runs)
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--where", metavar="EXPR",
            help="Only runs where EXPR holds, e.g. \"params.lr = 0.01 and metrics.val_loss.min < 0.2\". "
            "Fields: name, status, created, ended, last_step, checkpoints, params.X, tags.X, tag, "
            "metrics.X[.last|.min|.max|.best]; = != < <= > >=, and, or, not, parentheses.",
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort", metavar="FIELDS",
            help="Sort by these fields (comma separated; '-' before one or 'desc' after it: descending), "
            "e.g. metrics.val_loss.min. Default: newest first.",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", callback=_check_limit, help="At most N runs.")
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns", metavar="FIELDS",
            help="Show these fields after the name (comma separated), e.g. params.lr,metrics.val_accuracy.max,tags.team. "
            "Default: the fields sorted and filtered by, the metric KeepBest ranks, the params that differ.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs, newest first: filtered (--status, --tag, --name, --where), sorted (--sort), limited (--limit), with --columns."""
    tags = _parse_tags(tag)
    found = read(ctx, lambda r: r.runs_table(
        columns=columns, status=status, tags=tags, name=name, where=search, order_by=sort, limit=limit,
    ))
    print_runs(found, filtered=bool(status or tags or name or search), as_json=as_json)


@command(runs_app, "show", quick=True)
def runs_show(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.", autocompletion=complete_runs)],
    as_json: JsonOpt = False,
) -> None:
    """One run: status, params, tags, retention, metric names, checkpoints."""
    info, metrics = read(ctx, lambda r: (r.get_run(run), r.metric_keys(run)))
    print_run(info, metrics, as_json=as_json)


@command(runs_app, "compare", quick=True)
def runs_compare(
    ctx: typer.Context,
    runs: Annotated[
        list[str], typer.Argument(metavar="RUN", help="The runs to compare (two or more); a glob such as 'lr-*' for all it matches.", autocompletion=complete_runs)
    ],
    transpose: Annotated[
        bool, typer.Option("--transpose", help="A row per run and a column per field (many runs, few fields).")
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns", metavar="FIELDS",
            help="Only these fields, in this order (comma separated), e.g. params.lr,metrics.val_loss.best; "
            "a metric's last or best (its min or max), status, last_step.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs side by side: params (differences marked with *), and each metric's last and best value with its step."""
    cmp = read(ctx, lambda r: r.compare_runs(r.expand_runs(runs)))
    print_comparison(cmp, as_json=as_json, transpose=transpose, columns=columns)


@command(runs_app, "delete", quick=True)
def runs_delete(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.", autocompletion=complete_runs)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a run with its metrics, checkpoints and exports (refused while an alias points at them)."""
    info, n_exports = read(ctx, lambda r: (r.get_run(run), len(r.exports(run))))
    what = (
        f"run {run!r} with {_count(info.checkpoints, 'checkpoint')}, {_count(n_exports, 'export')} "
        f"and its metrics"
    )
    if not yes:
        if not sys.stdin.isatty():
            fail(f"deleting {what} needs --yes when not asked on a terminal")
        typer.confirm(f"Delete {what}?", abort=True)
    n = quick_write_or(ctx, lambda w: _delete_quickly(w, run), lambda: open_store(ctx).delete_run(run))
    typer.echo(f"deleted run {run} ({_count(n, 'checkpoint')}, {_count(n_exports, 'export')}, its metrics)")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _delete_quickly(writer: "QuickWriter", run: str) -> int:
    """``Store.delete_run``'s steps (``flows/run_deletion.py``) through ``sqlite3``, on a store
    whose files are in its own directory."""
    from ..files.registry import open_area
    from ..flows.run_deletion import delete_run

    area = open_area(writer.root)
    try:
        return delete_run(writer.sql_write, writer.sql_read, area, run)
    finally:
        area.close()

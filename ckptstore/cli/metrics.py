"""``ckptstore steps``, ``at`` and ``plot``: metrics by step, across runs, and as a picture.

Steps are 0 to 2**63-1 (INT_MAX), what the databases' 64-bit integers hold: a larger one is bad
usage here rather than an overflow deep in the driver.
"""

import sys
from typing import Annotated

import typer

from ..constants import INT_MAX
from .app import JsonOpt, check_first, command, open_store, read
from .complete import complete_runs
from .views import at_rows, metric_notes, print_at, print_steps


def check_step(value: int | None) -> int | None:
    """A step option or argument: 0 to 2**63-1. A callback rather than min=/max=, which would
    print the bounds '[0<=x<=9223372036854775807]' in every --help."""
    if value is not None and not 0 <= value <= INT_MAX:
        raise typer.BadParameter(f"a step is a whole number from 0 to 2**63-1, got {value}")
    return value


@command(quick=True)
def steps(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.", autocompletion=complete_runs)],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", metavar="METRIC", help="Only this metric; repeatable.")
    ] = None,
    start: Annotated[
        int | None, typer.Option("--from", metavar="STEP", callback=check_step, help="First step (inclusive).")
    ] = None,
    stop: Annotated[
        int | None, typer.Option("--to", metavar="STEP", callback=check_step, help="Last step (inclusive).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A run's metrics, step by step."""
    rows, known = read(ctx, lambda r: (r.steps(run, start=start, stop=stop, keys=metric), r.metric_keys(run) if metric else []))
    for note in metric_notes([m for m in dict.fromkeys(metric or ()) if m not in known], known, f"in run {run}"):
        sys.stderr.write(f"note: {note}\n")
    print_steps(run, rows, filtered=start is not None or stop is not None or bool(metric), as_json=as_json)


@command(context_settings={"ignore_unknown_options": True}, quick=True)
def at(
    ctx: typer.Context,
    step: Annotated[int, typer.Argument(metavar="STEP", callback=check_step, help="Training step (0 or more).")],
    nearest: Annotated[bool, typer.Option(help="Each run's last step at or below STEP.")] = False,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", metavar="METRIC", help="Only this metric; repeatable.")
    ] = None,
    run: Annotated[
        str | None,
        typer.Option("--run", metavar="GLOB", help="Only runs whose name matches, e.g. 'resnet-*'.", autocompletion=complete_runs),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", metavar="NAME", help="Add a column with this param; repeatable.")
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort", metavar="FIELDS",
            help="Sort by these fields as runs list --sort does ('-' before one: descending), e.g. "
            "-metrics.val_accuracy, params.lr, name; metrics.X is its value at STEP. Runs without the value last. "
            "Default: by name.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every run's metrics at a step, and whether a checkpoint exists there."""
    rows, params, notes = read(ctx, lambda r: at_rows(r, step, nearest=nearest, metric=metric, run=run, param=param, sort=sort))
    for note in notes:
        sys.stderr.write(f"note: {note}\n")
    print_at(step, rows, nearest=nearest, params=params, param_names=list(dict.fromkeys(param or [])), as_json=as_json,
             metric=metric)


@command(quick=True)
def plot(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(metavar="RUN", help="One or more runs (or globs, e.g. 'lr-*').", autocompletion=complete_runs)],
    metric: Annotated[list[str], typer.Option("--metric", "-m", metavar="METRIC", help="Metric to plot; repeatable.")],
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FILE", help="The file to write: .png, .svg or .pdf (by its suffix).")
    ],
    log_y: Annotated[bool, typer.Option("--log-y", help="A logarithmic y axis.")] = False,
    smooth: Annotated[
        float,
        typer.Option(
            "--smooth", metavar="W",
            help="Exponential moving average weight from 0 (none, the default) to below 1, as TensorBoard's "
            "smoothing; the raw values stay as a faint line.",
        ),
    ] = 0.0,
) -> None:
    """Plot metrics against step for one or more runs into a PNG, SVG or PDF (needs matplotlib)."""
    from ..plot import check_options, plot_metrics

    check_options(runs, metric, output, smooth)
    check_first(ctx, lambda r: [r.get_run(name) for name in r.expand_runs(runs)])
    store = open_store(ctx, readonly=True)
    path = plot_metrics(store, store.expand_runs(runs), metric, output, log_y=log_y, smooth=smooth)
    typer.echo(f"wrote {path}")



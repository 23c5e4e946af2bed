"""``ckptstore steps``, ``at`` and ``plot``: metrics by step, across runs, and as a picture.

Steps are 0 to 2**63-1 (INT_MAX), what the databases' 64-bit integers hold: a larger one is bad
usage here rather than an overflow deep in the driver.
"""

from typing import Annotated, Optional

import typer

from ..constants import INT_MAX
from .app import JsonOpt, command, open_store
from .output import number, or_dash, print_json, table


@command()
def steps(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.")],
    metric: Annotated[
        Optional[list[str]], typer.Option("--metric", "-m", metavar="METRIC", help="Only this metric; repeatable.")
    ] = None,
    start: Annotated[
        Optional[int], typer.Option("--from", metavar="STEP", min=0, max=INT_MAX, help="First step (inclusive).")
    ] = None,
    stop: Annotated[
        Optional[int], typer.Option("--to", metavar="STEP", min=0, max=INT_MAX, help="Last step (inclusive).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A run's metrics, step by step."""
    rows = open_store(ctx, readonly=True).steps(run, start=start, stop=stop, keys=metric)
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"no metrics logged for run {run}" + (" in that range" if start is not None or stop is not None or metric else ""))
        return
    keys = sorted({k for r in rows for k in r.metrics})
    table(
        ["step", *keys],
        [[str(r.step), *(number(r.metrics[k]) if k in r.metrics else "" for k in keys)] for r in rows],
        right=range(len(keys) + 1),
    )


@command()
def at(
    ctx: typer.Context,
    step: Annotated[int, typer.Argument(metavar="STEP", min=0, max=INT_MAX, help="Training step.")],
    nearest: Annotated[bool, typer.Option(help="Each run's last step at or below STEP.")] = False,
    metric: Annotated[
        Optional[list[str]], typer.Option("--metric", "-m", metavar="METRIC", help="Only this metric; repeatable.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every run's metrics at a step, and whether a checkpoint exists there."""
    rows = open_store(ctx, readonly=True).at_step(step, nearest=nearest, keys=metric)
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"no run has step {step}" + ("" if nearest else " (try --nearest)"))
        return
    keys = sorted({k for r in rows for k in r.metrics})
    table(
        ["run", "step", "checkpoint", *keys],
        [
            [r.run, str(r.step), or_dash(r.checkpoint_step), *(number(r.metrics[k]) if k in r.metrics else "" for k in keys)]
            for r in rows
        ],
        right=range(1, len(keys) + 3),
    )


@command()
def plot(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(metavar="RUN", help="One or more runs.")],
    metric: Annotated[list[str], typer.Option("--metric", "-m", metavar="METRIC", help="Metric to plot; repeatable.")],
    output: Annotated[str, typer.Option("--output", "-o", metavar="PNG", help="PNG file to write.")],
) -> None:
    """Plot metrics against step for one or more runs into a PNG (needs matplotlib)."""
    from ..plot import plot_metrics

    path = plot_metrics(open_store(ctx, readonly=True), runs, metric, output)
    typer.echo(f"wrote {path}")

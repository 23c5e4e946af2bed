"""``ckptstore steps``, ``at`` and ``plot``: metrics by step, across runs, and as a picture.

Steps are 0 to 2**63-1 (INT_MAX), what the databases' 64-bit integers hold: a larger one is bad
usage here rather than an overflow deep in the driver.
"""

import fnmatch
from typing import Annotated, Optional

import typer

from ..constants import INT_MAX
from ..records import RunAtStep, StepMetrics
from .app import JsonOpt, StoreLocation, command, open_store, quick_command
from .complete import complete_runs
from .quick import parse_command_line, quick_read, step_value
from .output import number, or_dash, param_text, print_json, table


def check_step(value: Optional[int]) -> Optional[int]:
    """A step option or argument: 0 to 2**63-1. A callback rather than min=/max=, which would
    print the bounds '[0<=x<=9223372036854775807]' in every --help."""
    if value is not None and not 0 <= value <= INT_MAX:
        raise typer.BadParameter(f"a step is a whole number from 0 to 2**63-1, got {value}")
    return value


def print_steps(run: str, rows: list[StepMetrics], *, filtered: bool, as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"no metrics logged for run {run}" + (" in that range" if filtered else ""))
        return
    keys = sorted({k for r in rows for k in r.metrics})
    table(
        ["step", *keys],
        [[str(r.step), *(number(r.metrics[k]) if k in r.metrics else "" for k in keys)] for r in rows],
        right=range(len(keys) + 1),
    )


def print_at(
    step: int, rows: list[RunAtStep], *, nearest: bool, params: dict[str, dict[str, object]], param_names: list[str],
    as_json: bool,
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
        typer.echo(f"no run has step {step}" + ("" if nearest else " (try --nearest)"))
        return
    keys = sorted({k for r in rows for k in r.metrics})
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
        right=[1, 2, *range(3 + len(param_names), 3 + len(param_names) + len(keys))],
    )


@command()
def steps(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.", autocompletion=complete_runs)],
    metric: Annotated[
        Optional[list[str]], typer.Option("--metric", "-m", metavar="METRIC", help="Only this metric; repeatable.")
    ] = None,
    start: Annotated[
        Optional[int], typer.Option("--from", metavar="STEP", callback=check_step, help="First step (inclusive).")
    ] = None,
    stop: Annotated[
        Optional[int], typer.Option("--to", metavar="STEP", callback=check_step, help="Last step (inclusive).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A run's metrics, step by step."""
    rows = open_store(ctx, readonly=True).steps(run, start=start, stop=stop, keys=metric)
    print_steps(run, rows, filtered=start is not None or stop is not None or bool(metric), as_json=as_json)


def at_rows(
    store: object, step: int, *, nearest: bool, metric: Optional[list[str]], run: Optional[str], param: Optional[list[str]]
) -> tuple[list[RunAtStep], dict[str, dict[str, object]]]:
    """The rows of ``at`` (runs matching the glob ``run``) and the params of their runs."""
    rows = store.at_step(step, nearest=nearest, keys=metric)  # type: ignore[attr-defined]
    if run is not None:
        rows = [r for r in rows if fnmatch.fnmatchcase(r.run, run)]
    params: dict[str, dict[str, object]] = {}
    if param and rows:
        params = {r.name: r.params for r in store.runs(name=run)}  # type: ignore[attr-defined]
    return rows, params


@command(context_settings={"ignore_unknown_options": True})
def at(
    ctx: typer.Context,
    step: Annotated[int, typer.Argument(metavar="STEP", callback=check_step, help="Training step (0 or more).")],
    nearest: Annotated[bool, typer.Option(help="Each run's last step at or below STEP.")] = False,
    metric: Annotated[
        Optional[list[str]], typer.Option("--metric", "-m", metavar="METRIC", help="Only this metric; repeatable.")
    ] = None,
    run: Annotated[
        Optional[str],
        typer.Option("--run", metavar="GLOB", help="Only runs whose name matches, e.g. 'resnet-*'.", autocompletion=complete_runs),
    ] = None,
    param: Annotated[
        Optional[list[str]], typer.Option("--param", "-p", metavar="NAME", help="Add a column with this param; repeatable.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every run's metrics at a step, and whether a checkpoint exists there."""
    rows, params = at_rows(open_store(ctx, readonly=True), step, nearest=nearest, metric=metric, run=run, param=param)
    print_at(step, rows, nearest=nearest, params=params, param_names=list(dict.fromkeys(param or [])), as_json=as_json)


@command()
def plot(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(metavar="RUN...", help="One or more runs.", autocompletion=complete_runs)],
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
    from ..plot import plot_metrics

    path = plot_metrics(open_store(ctx, readonly=True), runs, metric, output, log_y=log_y, smooth=smooth)
    typer.echo(f"wrote {path}")


@quick_command
def quick_steps_at(where: StoreLocation, args: list[str]) -> bool:
    """``steps RUN [-m M]... [--from N] [--to N] [--json]`` and ``at STEP [--nearest] [-m M]...
    [--run GLOB] [-p NAME]... [--json]`` without Typer or SQLAlchemy."""
    if not args or args[0] not in ("steps", "at"):
        return False
    metric = {"--metric": "metric", "-m": "metric"}
    if args[0] == "steps":
        parsed = parse_command_line(
            args[1:], values={**metric, "--from": "from", "--to": "to"}, repeatable=frozenset({"metric"}),
            flags={"--json": "json"},
        )
        if parsed is None or len(parsed[1]) != 1:
            return False
        options, (run,) = parsed
        try:
            start, stop = step_value(options.get("from")), step_value(options.get("to"))
        except ValueError:
            return False
        keys = options.get("metric")
        got = quick_read(where, lambda r: r.steps(run, start=start, stop=stop, keys=keys))
        if got is None:
            return False
        print_steps(run, got[0], filtered=start is not None or stop is not None or bool(keys), as_json=options.get("json", False))
        return True
    parsed = parse_command_line(
        args[1:], values={**metric, "--run": "run", "--param": "param", "-p": "param"},
        repeatable=frozenset({"metric", "param"}), flags={"--json": "json", "--nearest": "nearest", "--no-nearest": "far"},
    )
    if parsed is None or len(parsed[1]) != 1 or ("nearest" in parsed[0] and "far" in parsed[0]):
        return False
    options, (text,) = parsed
    try:
        step = step_value(text)
    except ValueError:
        return False
    assert step is not None
    nearest, param = options.get("nearest", False), options.get("param")
    got = quick_read(
        where,
        lambda r: at_rows(r, step, nearest=nearest, metric=options.get("metric"), run=options.get("run"), param=param),
    )
    if got is None:
        return False
    rows, params = got[0]
    print_at(step, rows, nearest=nearest, params=params, param_names=list(dict.fromkeys(param or [])), as_json=options.get("json", False))
    return True

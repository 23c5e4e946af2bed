"""``ckptstore checkpoints``, ``vars`` and ``restore``: a run's checkpoints, what they hold, and
getting one back as a plain TensorFlow checkpoint directory."""

from typing import Annotated, Any, Optional

import typer

from ..records import CheckpointInfo, VariableDiff, VariableInfo, diff_variables, to_json
from ..retention import resolve_mode
from .app import JsonOpt, StoreLocation, command, open_store, quick_command
from .complete import complete_refs, complete_runs
from .quick import parse_command_line, quick_read
from .output import number, print_json, progress, shape, size, table, when


def _checkpoint_json(ck: CheckpointInfo) -> dict[str, Any]:
    return {**to_json(ck), "ref": ck.ref, "pinned": ck.pinned}


def print_checkpoints(
    run: str, cks: list[CheckpointInfo], *, metric: Optional[str], values: dict[int, float], as_json: bool
) -> None:
    best = _best_step(metric, values) if metric is not None else None
    if as_json:
        out = []
        for ck in cks:
            item = _checkpoint_json(ck)
            if metric is not None:
                item["metric"] = {"name": metric, "value": values.get(ck.step), "best": ck.step == best}
            out.append(item)
        print_json(out)
        return
    if not cks:
        typer.echo(f"run {run} has no checkpoints")
        return
    head = ["ref", "step"] + ([metric, "best"] if metric is not None else [])
    table(
        [*head, "size", "files", "format", "state", "aliases", "created"],
        [
            [
                ck.ref, str(ck.step),
                *([number(values[ck.step]) if ck.step in values else "-", "*" if ck.step == best else ""] if metric is not None else []),
                size(ck.total_bytes), str(len(ck.files)), ck.format,
                "pinned" if ck.pinned else ck.state, ", ".join(ck.aliases), when(ck.created_at),
            ]
            for ck in cks
        ],
        right=(1, 2, 4, 5) if metric is not None else (1, 2, 3),
    )
    if metric is not None:
        mode = resolve_mode(metric)
        typer.echo(
            f"best by {metric} ({mode}): {run}@{best}" if best is not None
            else f"no checkpoint of {run} has {metric} logged at its step"
        )


def _best_step(metric: str, values: dict[int, float]) -> Optional[int]:
    """As ``store.best``: the min or max by the metric's name, the newer step on a tie."""
    if not values:
        return None
    sign = 1.0 if resolve_mode(metric) == "min" else -1.0
    return min(values, key=lambda step: (sign * values[step], -step))


@command()
def checkpoints(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.", autocompletion=complete_runs)],
    metric: Annotated[
        Optional[str],
        typer.Option(
            "--metric", "-m", metavar="METRIC",
            help="Show this metric's value at each checkpoint and mark the best (max for "
            "accuracy-like names, else min).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A run's checkpoints: refs, steps, sizes, aliases, kept (by keep_every_n_hours) or pinned (by an alias)."""
    store = open_store(ctx, readonly=True)
    cks = store.checkpoints(run)
    values = store.checkpoint_metric(run, metric) if metric is not None else {}
    print_checkpoints(run, cks, metric=metric, values=values, as_json=as_json)


@command(name="vars")
def vars_(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint REF.", autocompletion=complete_refs)],
    diff: Annotated[
        Optional[str], typer.Option("--diff", metavar="REF2", help="Compare with this checkpoint.", autocompletion=complete_refs)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The variables saved in a checkpoint; with --diff, what was added, removed or changed in REF2."""
    store = open_store(ctx, readonly=True)
    if diff is None:
        print_variables(store.variables(ref), as_json=as_json)
        return
    print_diff(ref, diff, store.diff_variables(ref, diff), as_json=as_json)


def print_variables(variables: list[VariableInfo], *, as_json: bool) -> None:
    if as_json:
        print_json(variables)
        return
    table(["name", "dtype", "shape"], [[v.name, v.dtype, shape(v.shape)] for v in variables])


def print_diff(ref: str, diff: str, d: VariableDiff, *, as_json: bool) -> None:
    if as_json:
        print_json(d)
        return
    rows = [["+", v.name, "", f"{v.dtype}{shape(v.shape)}"] for v in d.added]
    rows += [["-", v.name, f"{v.dtype}{shape(v.shape)}", ""] for v in d.removed]
    rows += [
        ["~", c.name, f"{c.before.dtype}{shape(c.before.shape)}", f"{c.after.dtype}{shape(c.after.shape)}"]
        for c in d.changed
    ]
    if rows:
        table(["", "name", ref, diff], rows)
    typer.echo(f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed, {d.unchanged} unchanged")


@command()
def restore(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint REF.", autocompletion=complete_refs)],
    to: Annotated[str, typer.Option("--to", metavar="DIR", help="Directory to write (created if missing).")],
    link: Annotated[
        str,
        typer.Option(
            "--link", metavar="copy|hard",
            help="copy: private copies (reflinks where the filesystem has them), the default; "
            "hard: hard links to the stored files, for read-only use only.",
        ),
    ] = "copy",
    force: Annotated[
        bool, typer.Option("--force", help="Replace files of the same names already in DIR, a 'checkpoint' file included.")
    ] = False,
) -> None:
    """Write a checkpoint as a plain TensorFlow checkpoint directory (tf.train.latest_checkpoint reads it).

    All or nothing: files are written into a temporary directory beside DIR and moved into
    place at the end; existing files are never replaced without --force.
    """
    store = open_store(ctx, readonly=True)
    with progress("restoring") as bar:
        prefix = store.materialize(ref, to, link=link, force=force, progress=bar)
    typer.echo(f"restored {ref} to {prefix}")
    typer.echo(f"  tf.train.latest_checkpoint({str(prefix.parent)!r}) -> {str(prefix)!r}")


@quick_command
def quick_checkpoints_vars(where: StoreLocation, args: list[str]) -> bool:
    """``checkpoints RUN [-m METRIC] [--json]`` and ``vars REF [--diff REF2] [--json]`` without
    Typer or SQLAlchemy."""
    if not args or args[0] not in ("checkpoints", "vars"):
        return False
    if args[0] == "checkpoints":
        parsed = parse_command_line(args[1:], values={"--metric": "metric", "-m": "metric"}, flags={"--json": "json"})
        if parsed is None or len(parsed[1]) != 1:
            return False
        options, (run,) = parsed
        metric = options.get("metric")
        got = quick_read(where, lambda r: (r.checkpoints(run), r.checkpoint_metric(run, metric) if metric is not None else {}))
        if got is None:
            return False
        cks, values = got[0]
        print_checkpoints(run, cks, metric=metric, values=values, as_json=options.get("json", False))
        return True
    parsed = parse_command_line(args[1:], values={"--diff": "diff"}, flags={"--json": "json"})
    if parsed is None or len(parsed[1]) != 1:
        return False
    options, (ref,) = parsed
    other = options.get("diff")
    if other is None:
        got = quick_read(where, lambda r: r.variables(ref))
        if got is None:
            return False
        print_variables(got[0], as_json=options.get("json", False))
        return True
    got = quick_read(where, lambda r: diff_variables(r.variables(ref), r.variables(other)))
    if got is None:
        return False
    print_diff(ref, other, got[0], as_json=options.get("json", False))
    return True

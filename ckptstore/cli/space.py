"""``ckptstore du``: logical bytes (plain TensorFlow directories) against stored, distinct bytes."""

from typing import Annotated

import typer

from .app import JsonOpt, command, open_store, read
from .output import print_json, size, table


@command(quick=True)
def du(
    ctx: typer.Context,
    runs: Annotated[list[str] | None, typer.Argument(metavar="[RUN]...", help="Runs to account for (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Space per run and for the whole store: logical bytes (what plain TF checkpoint
    directories would take) against stored bytes (distinct objects, tensors kept once)."""
    usage = read(ctx, lambda r: r.space(runs or None))  # a SQLite store through sqlite3 (issue 26: 0.3 s)
    if as_json:
        print_json(usage)
        return

    def ratio(logical: int, stored: int) -> str:
        return f"{logical / stored:.1f}x" if stored else "-"

    rows = [
        [u.run if u.run is not None else "(store)", str(u.checkpoints), size(u.logical_bytes), size(u.stored_bytes),
         size(u.unique_bytes) if u.unique_bytes is not None else "", ratio(u.logical_bytes, u.stored_bytes)]
        for u in usage
    ]
    table(["run", "checkpoints", "logical", "stored", "only this run", "saved"], rows, right=(1, 2, 3, 4, 5))


@command()
def repack(ctx: typer.Context) -> None:
    """Index data files saved before tensor-level storage tensor by tensor (bytes unchanged), so
    new saves re-use their tensors and diffs need no on-demand digests."""
    n = open_store(ctx).repack()
    typer.echo(f"indexed {n} data file{'s' if n != 1 else ''} tensor by tensor")

"""``ckptstore du``: logical bytes (plain TensorFlow directories) against stored, distinct bytes."""

from typing import TYPE_CHECKING, Annotated

import typer

from .app import JsonOpt, command, open_store, quick_or, read
from .output import print_json, size, table

if TYPE_CHECKING:
    from ..metadata.quick_reader import QuickReader


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


@command(quick=True)
def repack(ctx: typer.Context) -> None:
    """Index data files saved before tensor-level storage tensor by tensor (bytes unchanged), so
    new saves re-use their tensors and diffs need no on-demand digests."""
    n = quick_or(ctx, _nothing_to_repack, lambda: open_store(ctx).repack())
    typer.echo(f"indexed {n} data file{'s' if n != 1 else ''} tensor by tensor")


def _nothing_to_repack(reader: "QuickReader") -> int:
    """Every data file already indexed tensor by tensor: answered through ``sqlite3`` (issue
    26: maintenance with nothing to do in 0.3 s); anything to index is the store's work."""
    from ..metadata.file_reads import unindexed_data_files
    from ..metadata.quick_reader import Fallback

    if unindexed_data_files(reader.sql):
        raise Fallback
    return 0

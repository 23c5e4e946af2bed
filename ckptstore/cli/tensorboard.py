"""``ckptstore tensorboard``: write runs' metrics as TensorBoard event files."""

from typing import Annotated

import typer

from .app import command, open_store


@command(name="tensorboard")
def tensorboard(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(metavar="RUN", help="Runs to export (or globs, e.g. 'lr-*').")],
    logdir: Annotated[str, typer.Option("--logdir", metavar="DIR", help="Directory for the event files (one subdirectory per run).")],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", metavar="METRIC", help="Only this metric; repeatable.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace event files an earlier export left in a run's subdirectory.")] = False,
) -> None:
    """Write runs' metrics as TensorBoard event files, one subdirectory per run ('tensorboard --logdir DIR' shows them)."""
    from ..tensorboard import write_event_files

    store = open_store(ctx, readonly=True)
    for path in write_event_files(store, store.expand_runs(runs), logdir, keys=metric, force=force):
        typer.echo(str(path))

"""``ckptstore demo``: train a small Keras model into the store and show what the store does with it."""

import sys
from typing import Annotated

import typer

from ..constants import INT_MAX
from .app import command, location


@command()
def demo(
    ctx: typer.Context,
    steps: Annotated[int, typer.Option("--steps", metavar="N", min=20, max=INT_MAX, help="Training steps.")] = 300,
    plot_path: Annotated[str, typer.Option("--plot", metavar="PNG", help="Where to write the loss plot.")] = "demo-loss.png",
) -> None:
    """Train a small Keras model into the store, then alias, freeze, restore and plot it."""
    from ..demo import require_tensorflow, run_demo

    require_tensorflow()  # its one line, not the announcement below and then an ImportError
    where = location(ctx)
    sys.stderr.write(f"training a small Keras model into {where.store} ...\n")
    sys.stderr.flush()
    summary = run_demo(where.store, root=where.root, steps=steps, plot_path=plot_path)
    typer.echo("\n".join(summary.lines()))

"""``ckptstore root``: where the store's files are, and moving them into a bucket."""

from typing import Annotated

import typer

from .app import command, group, location, open_store, read
from .output import progress, size

root_app = group("root", "The store's file area: show it, or copy it into an S3 bucket.")


@command(on=root_app, quick=True)
def show(ctx: typer.Context) -> None:
    """Print the file area in use (a directory or s3://BUCKET/PREFIX)."""
    if location(ctx).root is not None:  # --root given: the store checks it against the recorded one
        found = open_store(ctx, readonly=True).root
    else:
        found = read(ctx, lambda r: r.root)  # a directory store's without SQLAlchemy (issue 26: 0.3 s)
    typer.echo(str(found) if found is not None else "-")


@command(on=root_app)
def copy(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", metavar="s3://BUCKET/PREFIX", help="The bucket (and prefix) to move the files into.")],
) -> None:
    """Copy every stored file into a bucket, verify each copy, then switch the store to it.
    Run it again to resume after an interruption; the local files are left for you to remove."""
    store = open_store(ctx)
    with progress("copying") as bar:
        counts = store.copy_root(to, progress=bar)
    typer.echo(
        f"copied {counts['copied']} file(s), {counts['present']} already there ({size(counts['bytes'])} verified); "
        f"the store now uses {to}"
    )

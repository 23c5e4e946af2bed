"""``ckptstore tag``, ``untag`` and ``versions``: named versions (aliases) and their history."""

from typing import Annotated

import typer

from .app import JsonOpt, command, open_store, read
from .complete import complete_aliases, complete_refs
from .views import print_versions


@command()
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint or export REF.", autocompletion=complete_refs)],
    name: Annotated[str, typer.Argument(metavar="NAME", help="Alias name, e.g. 'prod'.")],
    message: Annotated[
        str | None, typer.Option("--message", "-m", metavar="TEXT", help="Why (kept in the history).")
    ] = None,
) -> None:
    """Point an alias at a checkpoint or export (moving it if it exists; its history is kept)."""
    info = open_store(ctx).tag(ref, name, message=message)
    last = info.history[0] if info.history else None
    moved = last is not None and last.action == "move" and last.new_target == info.target
    typer.echo(f"{info.name} -> {info.target}" + (f" (was {last.old_target})" if moved and last else ""))


@command()
def untag(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Alias name.", autocompletion=complete_aliases)],
    message: Annotated[
        str | None, typer.Option("--message", "-m", metavar="TEXT", help="Why (kept in the history).")
    ] = None,
) -> None:
    """Remove an alias (its target is no longer protected from retention and gc)."""
    store = open_store(ctx)
    store.untag(name, message=message)
    was = store.versions(name)[0].history[0].old_target
    typer.echo(f"untagged {name} (was {was})")


@command(quick=True)
def versions(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="One alias, with its full history.", autocompletion=complete_aliases)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Named versions (aliases): what each points at; with NAME, its history."""
    print_versions(read(ctx, lambda r: r.versions(name)), name, as_json=as_json)



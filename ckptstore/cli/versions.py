"""``ckptstore tag``, ``untag`` and ``versions``: named versions (aliases) and their history."""

from typing import Annotated, Optional

import typer

from ..records import AliasInfo
from .app import JsonOpt, StoreLocation, command, open_store, quick_command
from .complete import complete_aliases, complete_refs
from .quick import parse_command_line, quick_read
from .output import print_json, table, when


@command()
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint or export REF.", autocompletion=complete_refs)],
    name: Annotated[str, typer.Argument(metavar="NAME", help="Alias name, e.g. 'prod'.")],
    message: Annotated[
        Optional[str], typer.Option("--message", "-m", metavar="TEXT", help="Why (kept in the history).")
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
        Optional[str], typer.Option("--message", "-m", metavar="TEXT", help="Why (kept in the history).")
    ] = None,
) -> None:
    """Remove an alias (its target is no longer protected from retention and gc)."""
    store = open_store(ctx)
    store.untag(name, message=message)
    was = store.versions(name)[0].history[0].old_target
    typer.echo(f"untagged {name} (was {was})")


@command()
def versions(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(metavar="NAME", help="One alias, with its full history.", autocompletion=complete_aliases)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Named versions (aliases): what each points at; with NAME, its history."""
    print_versions(open_store(ctx, readonly=True).versions(name), name, as_json=as_json)


def print_versions(aliases: list[AliasInfo], name: Optional[str], *, as_json: bool) -> None:
    if as_json:
        print_json(aliases)
        return
    if not aliases:
        typer.echo("no named versions yet (create one with 'ckptstore tag REF NAME')")
        return
    table(
        ["name", "target", "kind", "updated", "message"],
        [[a.name, a.target or "-", a.kind, when(a.updated_at), a.message or ""] for a in aliases],
    )
    if name is not None:
        typer.echo("")
        table(
            ["when", "action", "from", "to", "message"],
            [[when(e.at), e.action, e.old_target or "", e.new_target or "", e.message or ""] for e in aliases[0].history],
            title="history (newest first)",
        )


@quick_command
def quick_versions(where: StoreLocation, args: list[str]) -> bool:
    """``versions [NAME] [--json]`` without Typer or SQLAlchemy."""
    if args[:1] != ["versions"]:
        return False
    parsed = parse_command_line(args[1:], flags={"--json": "json"})
    if parsed is None or len(parsed[1]) > 1:
        return False
    options, names = parsed
    name = names[0] if names else None
    got = quick_read(where, lambda r: r.versions(name))
    if got is None:
        return False
    print_versions(got[0], name, as_json=options.get("json", False))
    return True

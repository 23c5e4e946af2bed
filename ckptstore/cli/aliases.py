"""``ckptstore alias``, ``unalias`` and ``aliases``: names for checkpoints and exports, with history.

An alias (``prod``, ``best``) points at one checkpoint or export and protects it from retention
and ``gc``. The commands before the one word (``tag REF NAME``, ``untag``, ``versions``) still
run, hidden from ``--help``, with a warning on stderr: scripts use them.
"""

from typing import Annotated

import typer

from .app import JsonOpt, command, read, write
from .complete import complete_aliases, complete_refs
from .output import deprecated
from .views import print_aliases

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Alias name, e.g. 'prod'.")]
RefArg = Annotated[str, typer.Argument(metavar="REF", help="A checkpoint or export REF.", autocompletion=complete_refs)]
AliasArg = Annotated[str, typer.Argument(metavar="NAME", help="Alias name.", autocompletion=complete_aliases)]
ListNameArg = Annotated[
    str | None,
    typer.Argument(metavar="NAME", help="One alias, with its full history.", autocompletion=complete_aliases),
]
MessageOpt = Annotated[str | None, typer.Option("--message", "-m", metavar="TEXT", help="Why (kept in the history).")]


@command(name="alias", quick=True)
def set_alias(ctx: typer.Context, name: NameArg, ref: RefArg, message: MessageOpt = None) -> None:
    """Point the alias NAME at a checkpoint or export (moving it if it exists; its history is kept)."""
    info = write(ctx, lambda store: store.set_alias(name, ref, message=message))
    last = info.history[0] if info.history else None
    moved = last is not None and last.action == "move" and last.new_target == info.target
    typer.echo(f"{info.name} -> {info.target}" + (f" (was {last.old_target})" if moved and last else ""))


def _remove(ctx: typer.Context, name: str, message: str | None) -> str:
    return write(ctx, lambda store: store.remove_alias(name, message=message))


@command(quick=True)
def unalias(ctx: typer.Context, name: AliasArg, message: MessageOpt = None) -> None:
    """Remove an alias (its target is no longer protected from retention and gc)."""
    typer.echo(f"removed alias {name} (was {_remove(ctx, name, message)})")


@command(quick=True)
def aliases(ctx: typer.Context, name: ListNameArg = None, as_json: JsonOpt = False) -> None:
    """Aliases: what each points at; with NAME, its history."""
    print_aliases(read(ctx, lambda r: r.aliases(name)), name, as_json=as_json)


# The old spellings: hidden, each a warning on stderr and then the same work, stdout unchanged.


@command(name="tag", hidden=True)
def tag(ctx: typer.Context, ref: RefArg, name: NameArg, message: MessageOpt = None) -> None:
    """Deprecated: 'ckptstore alias NAME REF' (note the order)."""
    deprecated("tag REF NAME", "alias NAME REF")
    set_alias(ctx, name, ref, message)


@command(name="untag", hidden=True)
def untag(ctx: typer.Context, name: AliasArg, message: MessageOpt = None) -> None:
    """Deprecated: 'ckptstore unalias NAME'."""
    deprecated("untag", "unalias")
    typer.echo(f"untagged {name} (was {_remove(ctx, name, message)})")  # what scripts parse, unchanged


@command(name="versions", quick=True, hidden=True)
def versions(ctx: typer.Context, name: ListNameArg = None, as_json: JsonOpt = False) -> None:
    """Deprecated: 'ckptstore aliases [NAME]'."""
    deprecated("versions", "aliases")
    aliases(ctx, name, as_json)

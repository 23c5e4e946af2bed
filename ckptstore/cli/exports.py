"""``ckptstore exports`` and ``export``: frozen GraphDefs, listed and written out for deployment."""

from collections.abc import Sequence
from typing import Annotated, Any, Optional

import typer

from ..records import ExportInfo, to_json
from .app import JsonOpt, StoreLocation, command, open_store, quick_command
from .complete import complete_refs, complete_runs
from .quick import parse_command_line, quick_read
from .output import or_dash, print_json, shape, size, table, when


def _export_json(e: ExportInfo) -> dict[str, Any]:
    return {**to_json(e), "ref": e.ref}


def _signature(specs: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{s.get('name')}:{s.get('dtype')}{shape(s.get('shape'))}" for s in specs)


@command()
def exports(
    ctx: typer.Context,
    run: Annotated[Optional[str], typer.Argument(metavar="RUN", help="Only this run's exports.", autocompletion=complete_runs)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Frozen exports (self-contained GraphDefs), with lineage and aliases."""
    print_exports(open_store(ctx, readonly=True).exports(run), run, as_json=as_json)


def print_exports(items: list[ExportInfo], run: Optional[str], *, as_json: bool) -> None:
    if as_json:
        print_json([_export_json(e) for e in items])
        return
    if not items:
        typer.echo("no exports" + (f" in run {run}" if run else " yet"))
        return
    table(
        ["ref", "run", "step", "kind", "inputs", "outputs", "nodes", "size", "aliases", "created"],
        [
            [
                e.ref, e.run, or_dash(e.step), e.kind, _signature(e.inputs), _signature(e.outputs),
                str(e.node_count), size(e.size), ", ".join(e.aliases), when(e.created_at),
            ]
            for e in items
        ],
        right=(2, 6, 7),
    )


@command()
def export(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(metavar="REF", help="An export REF (export:ID, an alias, or run@step for the run's export there).",
                      autocompletion=complete_refs),
    ],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="FILE|DIR",
            help="The .pb file to write; or a directory (existing, or named with a trailing '/'), "
            "which receives export-ID.pb.",
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file (and its .json sidecar).")] = False,
) -> None:
    """Write a frozen export's .pb for deployment, with a JSON sidecar (inputs, outputs, digest, lineage)."""
    path = open_store(ctx, readonly=True).export_frozen(ref, to, force=force)
    typer.echo(f"wrote {path} ({size(path.stat().st_size)}) and {path}.json")


@quick_command
def quick_exports(where: StoreLocation, args: list[str]) -> bool:
    """``exports [RUN] [--json]`` without Typer or SQLAlchemy."""
    if args[:1] != ["exports"]:
        return False
    parsed = parse_command_line(args[1:], flags={"--json": "json"})
    if parsed is None or len(parsed[1]) > 1:
        return False
    options, runs = parsed
    run = runs[0] if runs else None
    got = quick_read(where, lambda r: r.exports(run))
    if got is None:
        return False
    print_exports(got[0], run, as_json=options.get("json", False))
    return True

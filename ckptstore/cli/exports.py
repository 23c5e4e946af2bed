"""``ckptstore exports`` and ``export``: frozen GraphDefs, listed and written out for deployment."""

from collections.abc import Sequence
from typing import Annotated, Any, Optional

import typer

from ..records import ExportInfo, to_json
from .app import JsonOpt, command, open_store
from .output import or_dash, print_json, shape, size, table, when


def _export_json(e: ExportInfo) -> dict[str, Any]:
    return {**to_json(e), "ref": e.ref}


def _signature(specs: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{s.get('name')}:{s.get('dtype')}{shape(s.get('shape'))}" for s in specs)


@command()
def exports(
    ctx: typer.Context,
    run: Annotated[Optional[str], typer.Argument(metavar="RUN", help="Only this run's exports.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Exports (frozen GraphDefs, SavedModels, .keras files), with lineage and aliases."""
    items = open_store(ctx, readonly=True).exports(run)
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
        typer.Argument(metavar="REF", help="An export REF (export:ID, an alias, or run@step for the run's export there)."),
    ],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="FILE|DIR",
            help="The .pb / .keras file to write; or a directory (existing, or named with a trailing '/'), "
            "which receives export-ID.pb. A SavedModel export is written as the directory DIR.",
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file (and its .json sidecar).")] = False,
) -> None:
    """Write an export for deployment, with a JSON sidecar (inputs, outputs, digest, lineage):
    a frozen .pb or a .keras file, or a SavedModel directory."""
    path = open_store(ctx, readonly=True).export_to(ref, to, force=force)
    if path.is_dir():
        typer.echo(f"wrote SavedModel directory {path}")
        return
    typer.echo(f"wrote {path} ({size(path.stat().st_size)}) and {path}.json")

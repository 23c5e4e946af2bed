"""``ckptstore exports`` and ``export``: exports (frozen GraphDefs, SavedModels, .keras files), listed and written out for deployment."""

from typing import Annotated

import typer

from .app import JsonOpt, command, open_store, read
from .complete import complete_refs, complete_runs
from .output import size
from .views import print_exports


@command(quick=True)
def exports(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(metavar="RUN", help="Only this run's exports.", autocompletion=complete_runs)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Exports (frozen GraphDefs, SavedModels, .keras files), with lineage and aliases."""
    print_exports(read(ctx, lambda r: r.exports(run)), run, as_json=as_json)


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



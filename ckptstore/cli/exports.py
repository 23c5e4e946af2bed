"""``ckptstore exports`` and ``export``: exports (frozen GraphDefs, SavedModels, .keras files), listed and written out for deployment."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import JsonOpt, command, open_store, quick_or, read, with_stored_files
from .complete import complete_refs, complete_runs
from .output import size
from .views import print_exports

if TYPE_CHECKING:
    from ..metadata.quick_reader import QuickReader


@command(quick=True)
def exports(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(metavar="RUN", help="Only this run's exports.", autocompletion=complete_runs)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Exports (frozen GraphDefs, SavedModels, .keras files), with lineage and aliases."""
    print_exports(read(ctx, lambda r: r.exports(run)), run, as_json=as_json)


@command(quick=True)
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
    path = quick_or(ctx, lambda r: _quick_export(ctx, r, ref, to, force), lambda: open_store(ctx, readonly=True).export_to(ref, to, force=force))
    if path.is_dir():
        typer.echo(f"wrote SavedModel directory {path}")
        return
    typer.echo(f"wrote {path} ({size(path.stat().st_size)}) and {path}.json")




def _quick_export(ctx: typer.Context, reader: "QuickReader", ref: str, to: str, force: bool) -> Path:
    """``export REF --to FILE|DIR`` on a SQLite store through ``sqlite3``: the store's own
    writer (``flows/export_out.py``), fed by the quick reader (issue 26: 0.3 s). An unknown REF
    and a conflict at the target are worded here as the store words them; anything that fails
    while the files are read or written (the writer leaves nothing behind) is done again by the
    store, which words it."""
    from ..flows.export_out import write_export

    info = reader.export(ref)
    return with_stored_files(ctx, reader, lambda snapshot, area: write_export(snapshot, area, info, to, force=force))

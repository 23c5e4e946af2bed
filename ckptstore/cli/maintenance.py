"""``ckptstore import``, ``verify`` and ``gc``: bringing checkpoints in, checking the stored files,
and removing what nothing references."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import CkptstoreError
from ..records import DAMAGE, CheckpointInfo, GcReport, VerifyReport, to_json
from .app import JsonOpt, command, fail, open_store, quick_area, quick_or
from .complete import complete_runs
from .output import print_json, progress, size, table

if TYPE_CHECKING:
    from ..metadata.quick_reader import QuickReader


@command(name="import", quick=True)
def import_(
    ctx: typer.Context,
    directory: Annotated[
        str,
        typer.Argument(
            metavar="DIR", help="A directory written by tf.compat.v1.train.Saver or tf.train.CheckpointManager."
        ),
    ],
    run: Annotated[str, typer.Option("--run", metavar="RUN", help="Run to import into (created if missing).")],
) -> None:
    """Register existing TensorFlow checkpoints (files are copied; the directory is left as it was)."""
    imported = quick_or(ctx, lambda r: _nothing_new(r, directory, run), lambda: _import(ctx, directory, run))
    if not imported:
        typer.echo(f"nothing new to import: run {run} already has every checkpoint in {directory}")
        return
    steps_text = ", ".join(str(ck.step) for ck in imported)
    total = sum(ck.total_bytes for ck in imported)
    n = len(imported)
    typer.echo(f"imported {n} checkpoint{'s' if n != 1 else ''} into run {run} (steps {steps_text}; {size(total)})")


@command(quick=True)
def verify(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(metavar="RUN", help="Only this run's files.", autocompletion=complete_runs)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-digest stored files; exit status 1 if any is missing, corrupt or unreadable, or the
    database fails its integrity check."""
    with progress("verifying") as bar:
        report = quick_or(
            ctx, lambda r: _quick_verify(ctx, r, run, bar), lambda: open_store(ctx, readonly=True).verify(run, progress=bar)
        )
    if as_json:
        print_json({**to_json(report), "ok": report.ok})
    else:
        if report.problems:
            table(
                ["problem", "checkpoint/export", "detail"],
                [
                    [p.kind, p.checkpoint or (f"export:{p.export}" if p.export is not None else "-"), p.detail]
                    for p in report.problems
                ],
            )
        leftovers = any(p.kind in ("unexpected", "stale-staging") for p in report.problems)
        typer.echo(
            f"checked {report.checked_files} files ({size(report.checked_bytes)}): "
            + ("ok" if report.ok else "damaged")
            + ("; 'ckptstore gc' removes the leftovers" if leftovers else "")
        )
    if not report.ok:
        bad = [p for p in report.problems if p.kind in DAMAGE]
        kinds = ", ".join(f"{sum(p.kind == k for p in bad)} {k}" for k in DAMAGE if any(p.kind == k for p in bad))
        what = "problem(s)" if any(p.kind == "database" for p in bad) else "damaged file(s)"
        fail(f"verify found {len(bad)} {what} ({kinds})")


@command(quick=True)
def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be removed.")] = False,
    grace: Annotated[
        str | None,
        typer.Option("--grace", metavar="AGE", help="S3 roots: keep unreferenced objects younger than this (default 1h; e.g. 0s, 30m)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove stored files no checkpoint or export references, and staging left by crashed saves."""
    from ..names import parse_duration

    age = parse_duration(grace) if grace is not None else None
    with progress("collecting") as bar:
        report = quick_or(
            ctx, lambda r: _nothing_to_collect(ctx, r, dry_run, bar), lambda: open_store(ctx).gc(dry_run=dry_run, progress=bar, grace=age)
        )
    if as_json:
        print_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {report.removed_objects} unreferenced file(s) ({size(report.removed_bytes)}) "
        f"and {report.removed_staging} staging director{'y' if report.removed_staging == 1 else 'ies'}"
    )


# The quick paths (a SQLite store at the current schema whose files are in its own directory):
# verify and gc through sqlite3, answering only when all is well / there is nothing to collect;
# anything else raises Fallback and the store does it, with its locks and its wording.


def _quick_verify(ctx: typer.Context, reader: "QuickReader", run: str | None, bar: Callable[[int, int], None] | None) -> VerifyReport:
    import contextlib

    from ..flows.checks import verify_files
    from ..metadata.quick_reader import Fallback

    area = quick_area(ctx, reader)
    try:
        report = verify_files(lambda: contextlib.nullcontext(reader.sql), area, reader.sql.where, run, progress=bar)
    except CkptstoreError:
        if reader.words_errors:
            raise
        raise Fallback from None
    finally:
        area.close()
    if report.problems:
        # The store checks again, each read a fresh one (a checkpoint deleted meanwhile is not
        # damage), and reports what it finds.
        raise Fallback
    return report


def _nothing_new(reader: "QuickReader", directory: str, run: str) -> list[CheckpointInfo]:
    """Importing a directory again with nothing new: checked as the store's import checks it
    (``flows/import_plan.py``), without SQLAlchemy or TensorFlow; anything new is the store's."""
    from ..flows.import_plan import plan_import, steps_of
    from ..metadata.quick_reader import Fallback

    plan = plan_import(directory, run)
    if plan.new(steps_of(reader.sql, run)):
        raise Fallback
    plan.check()  # a damaged file is refused even when nothing is new, as the store refuses it
    return []


def _import(ctx: typer.Context, directory: str, run: str) -> list[CheckpointInfo]:
    from ..flows.import_plan import plan_import

    plan_import(directory, run)  # a directory with nothing to import creates no store either
    store = open_store(ctx, create=True)
    with progress("importing") as bar:
        return store.import_checkpoints(directory, run=run, progress=bar)


def _nothing_to_collect(ctx: typer.Context, reader: "QuickReader", dry_run: bool, bar: Callable[[int, int], None] | None) -> GcReport:
    from ..flows.checks import collectable
    from ..metadata.quick_reader import Fallback

    area = quick_area(ctx, reader)
    try:
        found = collectable(reader.sql, area)
    finally:
        area.close()
    if found:
        raise Fallback  # something to remove: gc does it, under the area's lock
    if bar:
        bar(found.scanned, found.scanned)
    return GcReport(removed_objects=0, removed_bytes=0, removed_staging=0, removed_blob_rows=0, dry_run=dry_run)

"""``ckptstore checkpoints``, ``vars`` and ``restore``: a run's checkpoints, what they hold, and
getting one back as a plain TensorFlow checkpoint directory."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..constants import LINK_MODES
from ..errors import CkptstoreError
from .app import JsonOpt, command, open_store, quick_or, read, with_stored_files
from .complete import complete_refs, complete_runs
from .diffview import show_diff
from .output import progress
from .views import print_checkpoints, print_variables

if TYPE_CHECKING:
    from .. import Store
    from ..metadata.quick_reader import QuickReader
    from ..records import CheckpointInfo, VariableDiff


@command(quick=True)
def checkpoints(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.", autocompletion=complete_runs)],
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric", "-m", metavar="METRIC",
            help="Show this metric's value at each checkpoint and mark the best (max for "
            "accuracy-like names, else min).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A run's checkpoints: refs, steps, sizes, aliases, kept (by keep_every_n_hours) or pinned (by an alias)."""
    cks, values = read(ctx, lambda r: _checkpoints_with(r, run, metric))
    print_checkpoints(run, cks, metric=metric, values=values, as_json=as_json)


def _checkpoints_with(reader: "Store | QuickReader", run: str, metric: str | None) -> "tuple[list[CheckpointInfo], dict[int, float]]":
    """The run's checkpoints and ``metric``'s value at each; a metric the run never logged is
    an error naming the closest it did (as ``run@best:METRIC`` is), not a column of '-'."""
    cks = reader.checkpoints(run)
    if metric is None:
        return cks, {}
    values = reader.checkpoint_metric(run, metric)
    if not values:
        names = reader.metric_keys(run)
        if metric not in names:
            import difflib

            from ..errors import InvalidOptionError

            close = difflib.get_close_matches(metric, names, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise InvalidOptionError(
                f"run {run!r} never logged a metric {metric!r}: {hint}it has {', '.join(names[:8]) or 'no metrics'}"
                + (" ..." if len(names) > 8 else "")
            )
    return cks, values


@command(name="vars", quick=True)
def vars_(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint REF.", autocompletion=complete_refs)],
    diff: Annotated[
        str | None, typer.Option("--diff", metavar="REF2", help="Compare with this checkpoint.", autocompletion=complete_refs)
    ] = None,
    stats: Annotated[bool, typer.Option("--stats", help="With --diff: max|Δ|, mean|Δ|, relative L2 of changed float tensors.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The variables saved in a checkpoint; with --diff, each one's status in REF2 (added, removed,
    dtype/shape changed, value changed, identical), compared by the digests of their bytes."""
    if diff is None:
        print_variables(read(ctx, lambda r: r.variables(ref)), as_json=as_json)
        return
    found = quick_or(
        ctx, lambda r: _quick_diff(ctx, r, ref, diff, stats),
        lambda: open_store(ctx, readonly=True).diff_variables(ref, diff, stats=stats),
    )
    show_diff(found, ref, diff, stats=stats, as_json=as_json)


def _quick_diff(ctx: typer.Context, reader: "QuickReader", ref: str, other: str, stats: bool) -> "VariableDiff":
    """``vars REF --diff REF2`` on a SQLite store through ``sqlite3``: the store's own comparison
    (``flows/tensor_diff.py``) from the digests recorded at save (issue 26: 0.3 s). Checkpoints
    saved before tensor-level storage, whose digests must be computed and recorded, and anything
    that fails while tensor bytes are read (damage) are the store's (``Fallback``)."""
    from ..flows.tensor_diff import diff_checkpoints
    from ..metadata.quick_reader import Fallback

    cka, ckb = reader.checkpoint(ref), reader.checkpoint(other)

    def not_indexed(*_: object) -> dict:
        raise Fallback  # the store digests those data files and records their tensors

    return with_stored_files(
        ctx, reader, lambda snapshot, area: diff_checkpoints(snapshot, area, cka, ckb, stats=stats, on_demand=not_indexed),
        worded=False,
    )


@command(quick=True)
def restore(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint REF.", autocompletion=complete_refs)],
    to: Annotated[str, typer.Option("--to", metavar="DIR", help="Directory to write (created if missing).")],
    link: Annotated[
        str,
        typer.Option(
            "--link", metavar="copy|hard",
            help="copy: private copies (reflinks where the filesystem has them), the default; "
            "hard: hard links to the stored files, for read-only use only.",
        ),
    ] = "copy",
    force: Annotated[
        bool, typer.Option("--force", help="Replace files of the same names already in DIR, a 'checkpoint' file included.")
    ] = False,
) -> None:
    """Write a checkpoint as a plain TensorFlow checkpoint directory (tf.train.latest_checkpoint reads it).

    All or nothing: files are written into a temporary directory beside DIR and moved into
    place at the end; existing files are never replaced without --force.
    """
    with progress("restoring") as bar:
        prefix = quick_or(
            ctx, lambda r: _quick_restore(ctx, r, ref, to, link, force, bar),
            lambda: open_store(ctx, readonly=True).materialize(ref, to, link=link, force=force, progress=bar),
        )
    typer.echo(f"restored {ref} to {prefix}")
    typer.echo(f"  tf.train.latest_checkpoint({str(prefix.parent)!r}) -> {str(prefix)!r}")




def _quick_restore(
    ctx: typer.Context, reader: "QuickReader", ref: str, to: str, link: str, force: bool, bar: "Callable[[int, int], None] | None"
) -> "Path":
    """``restore --to DIR`` on a SQLite store through ``sqlite3``: the store's own writer
    (``flows/restore_dir.py``), fed by the quick reader (issue 26: 0.3 s). An unknown REF and a
    conflict at DIR are worded here as the store words them; anything that goes wrong while
    the files are read or written is done again by the store (``Fallback``: nothing was written),
    which reads afresh and tells a checkpoint deleted meanwhile from damage."""
    from ..flows.restore_dir import write_checkpoint_dir
    from ..metadata.quick_reader import Fallback
    from ..tf.formats import named

    if link not in LINK_MODES:
        raise Fallback  # the library refuses a bad --link first, as always
    ck = reader.checkpoint(ref)
    try:
        uses_meta_graph = named(ck.format).uses_meta_graph
    except CkptstoreError:  # a format this installation does not know: the store words it
        raise Fallback from None
    return with_stored_files(ctx, reader, lambda snapshot, area: write_checkpoint_dir(
        snapshot, area, ck, to, uses_meta_graph=uses_meta_graph, link=link, force=force, progress=bar,
    ))

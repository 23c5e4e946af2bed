"""``ckptstore checkpoints``, ``vars`` and ``restore``: a run's checkpoints, what they hold, and
getting one back as a plain TensorFlow checkpoint directory."""

from typing import Annotated, Any, Optional

import typer

from ..records import CheckpointInfo, to_json
from .app import JsonOpt, command, open_store
from .diffview import show_diff
from .output import print_json, progress, shape, size, table, when


def _checkpoint_json(ck: CheckpointInfo) -> dict[str, Any]:
    return {**to_json(ck), "ref": ck.ref, "pinned": ck.pinned}


@command()
def checkpoints(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.")],
    as_json: JsonOpt = False,
) -> None:
    """A run's checkpoints: steps, sizes, aliases, kept (by keep_every_n_hours) or pinned (by an alias)."""
    cks = open_store(ctx, readonly=True).checkpoints(run)
    if as_json:
        print_json([_checkpoint_json(ck) for ck in cks])
        return
    if not cks:
        typer.echo(f"run {run} has no checkpoints")
        return
    table(
        ["step", "size", "files", "format", "state", "aliases", "created"],
        [
            [
                str(ck.step), size(ck.total_bytes), str(len(ck.files)), ck.format,
                "pinned" if ck.pinned else ck.state, ", ".join(ck.aliases), when(ck.created_at),
            ]
            for ck in cks
        ],
        right=(0, 1, 2),
    )


@command(name="vars")
def vars_(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint REF.")],
    diff: Annotated[Optional[str], typer.Option("--diff", metavar="REF2", help="Compare with this checkpoint.")] = None,
    stats: Annotated[bool, typer.Option("--stats", help="With --diff: max|Δ|, mean|Δ|, relative L2 of changed float tensors.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The variables saved in a checkpoint; with --diff, each one's status in REF2 (added, removed,
    dtype/shape changed, value changed, identical), compared by the digests of their bytes."""
    store = open_store(ctx, readonly=True)
    if diff is None:
        variables = store.variables(ref)
        if as_json:
            print_json(variables)
            return
        table(["name", "dtype", "shape"], [[v.readable or v.name, v.dtype, shape(v.shape)] for v in variables])
        return
    show_diff(store.diff_variables(ref, diff, stats=stats), ref, diff, stats=stats, as_json=as_json)


@command()
def restore(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint REF.")],
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
    store = open_store(ctx, readonly=True)
    with progress("restoring") as bar:
        prefix = store.materialize(ref, to, link=link, force=force, progress=bar)
    typer.echo(f"restored {ref} to {prefix}")
    typer.echo(f"  tf.train.latest_checkpoint({str(prefix.parent)!r}) -> {str(prefix)!r}")

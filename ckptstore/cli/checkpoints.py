"""``ckptstore checkpoints``, ``vars`` and ``restore``: a run's checkpoints, what they hold, and
getting one back as a plain TensorFlow checkpoint directory."""

from typing import Annotated, Any, Optional

import typer

from ..records import CheckpointInfo, to_json
from .app import JsonOpt, command, open_store
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
    as_json: JsonOpt = False,
) -> None:
    """The variables saved in a checkpoint; with --diff, what was added, removed or changed in REF2."""
    store = open_store(ctx, readonly=True)
    if diff is None:
        variables = store.variables(ref)
        if as_json:
            print_json(variables)
            return
        table(["name", "dtype", "shape"], [[v.name, v.dtype, shape(v.shape)] for v in variables])
        return
    d = store.diff_variables(ref, diff)
    if as_json:
        print_json(d)
        return
    rows = [["+", v.name, "", f"{v.dtype}{shape(v.shape)}"] for v in d.added]
    rows += [["-", v.name, f"{v.dtype}{shape(v.shape)}", ""] for v in d.removed]
    rows += [
        ["~", c.name, f"{c.before.dtype}{shape(c.before.shape)}", f"{c.after.dtype}{shape(c.after.shape)}"]
        for c in d.changed
    ]
    if rows:
        table(["", "name", ref, diff], rows)
    typer.echo(f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed, {d.unchanged} unchanged")


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

"""The ``ckptstore`` command line: a thin Typer shell over :mod:`ckptstore.store`.

Every command resolves its arguments, calls one library function and formats the result:
rich tables for people, ``--json`` (the records' fields, via :func:`ckptstore.records.to_json`)
for scripts. Errors the library raises on purpose (:class:`~ckptstore.errors.CkptstoreError`,
and ``ValueError`` from its argument checks) are caught once, in :func:`main`, and printed as
one line ``error: <message>`` on stderr with exit status 1; so is anything else a command raises
(a database connection lost mid-command), named by its type, with the traceback kept for
``CKPTSTORE_DEBUG=1``. Bad usage, including an option value out of range (steps are 0 to
2**63-1, what the database's 64-bit integers hold), is Click's exit status 2.

Start-up time is part of the interface (``ckptstore runs list`` on 1,000 runs answers in under
0.3 s), so this module imports only Typer and the light parts of the package at load time:
SQLAlchemy comes with the store, rich only when a table goes to a terminal, TensorFlow only
with the commands that need it (``import``, ``demo``), matplotlib only with ``plot``.
"""

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

# INT_MAX: the databases store 64-bit signed integers; a larger step would fail deep in the
# driver instead of as bad usage here.
from .constants import INT_MAX
from .errors import CkptstoreError
from .records import to_json

if TYPE_CHECKING:
    from .records import CheckpointInfo, ExportInfo
    from .store import Store

DEFAULT_LOCATION = ".ckptstore"


def _install_plain_coercion() -> None:
    """Let Typer convert plain str / int / bool / list[str] values without pydantic.

    Typer 0.2x converts every parameter through a pydantic ``TypeAdapter``, and importing
    pydantic takes ~0.13 s here: half the 0.3 s that ``ckptstore runs list`` may take. Values
    that are already of their annotated type, or are plain decimal integers within the
    option's ``min``/``max``, are converted here; everything else (choices, files, bad input
    and its error messages, such as a step out of range) still goes to Typer's own conversion.
    Versions of Typer without that hook are left untouched.
    """
    try:
        from typer import core
        from typer._coercion import RuntimeParam
    except ImportError:
        return
    typer_build = getattr(core, "build_runtime_param", None)
    if typer_build is None or getattr(typer_build, "_ckptstore_plain", False):
        return
    import re

    # At most 30 digits: int() refuses strings over 4,300 digits with a ValueError of its own.
    integer = re.compile(r"[+-]?[0-9]{1,30}")

    @dataclass(frozen=True)
    class Plain(RuntimeParam):  # type: ignore[misc]
        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            ann, info = self.annotation, self.parameter_info
            low, high = getattr(info, "min", None), getattr(info, "max", None)
            plain = getattr(info, "parser", None) is None and getattr(info, "click_type", None) is None
            if plain and ann is int:
                number = None
                if isinstance(value, str) and integer.fullmatch(value):
                    number = int(value)
                elif isinstance(value, int) and not isinstance(value, bool):
                    number = value
                if number is not None and (low is None or number >= low) and (high is None or number <= high):
                    return number
            elif plain and low is None and high is None:
                if ann is str and isinstance(value, str):
                    return value
                if ann is bool and isinstance(value, bool):
                    return value
                if ann == list[str] and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                    return list(value)
            return typer_build(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def build(descriptor: Any) -> Any:
        if descriptor.file_annotation is None and descriptor.annotation in (str, int, bool, list[str]):
            return Plain(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, descriptor=descriptor)
        return typer_build(descriptor)

    build._ckptstore_plain = True  # type: ignore[attr-defined]
    core.build_runtime_param = build


_install_plain_coercion()

# Rich lays out about 5,000 table rows a second here; a listing longer than this is printed
# in the same columns without rich, so that 1,000 runs still answer in well under 0.3 s.
_RICH_MAX_ROWS = 200

app = typer.Typer(
    name="ckptstore",
    help="An experiment-tracking checkpoint store for TensorFlow.\n\n"
    "REF names a checkpoint or an export: run@STEP, run@latest, run@~N (newest at or below N), "
    "export:ID, or an alias (see 'ckptstore versions').",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
runs_app = typer.Typer(help="List, show and delete runs.", no_args_is_help=True)
db_app = typer.Typer(help="Schema version of the store: current, history, upgrade.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys, see README) instead of a table.")]



@dataclass
class _Location:
    store: str
    root: Optional[str]


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"ckptstore {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            envvar="CKPTSTORE_URI",
            help="The store: a directory (SQLite) or a database URL such as "
            "postgresql+psycopg://user@host/db.",
        ),
    ] = DEFAULT_LOCATION,
    root: Annotated[
        Optional[str],
        typer.Option("--root", envvar="CKPTSTORE_ROOT", help="File area of a PostgreSQL store (a directory)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = _Location(store, root)


# --------------------------------------------------------------------------- helpers


def _open(ctx: typer.Context, *, create: bool = False, check_schema: bool = True) -> "Store":
    """Open the store named by --store/--root; closed when the command ends.

    Commands that only read pass create=False, so a mistyped --store is an error rather than a
    new empty store.
    """
    from .store import open_store

    loc: _Location = ctx.obj
    store = open_store(loc.store, root=loc.root, create=create, check_schema=check_schema)
    ctx.call_on_close(store.close)
    return store


def _fail(message: str) -> None:
    """Print one error line and end with status 1 (for user errors found by the CLI itself)."""
    _error_line(message)
    raise typer.Exit(1)


def _error_line(message: str) -> None:
    # One line whatever the message holds: scripts read stderr line by line.
    text = " ".join(str(message).split())
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


def _print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(to_json(data), indent=2, ensure_ascii=False) + "\n")


def _console() -> Any:
    from rich.console import Console

    # markup off: run names, tags and messages are user text, "[x]" must print as typed.
    return Console(highlight=False, markup=False, emoji=False)


def _table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[int] = (),
    title: Optional[str] = None,
) -> None:
    """Print rows under column headers: a rich table on a terminal, aligned text otherwise."""
    if sys.stdout.isatty() and len(rows) <= _RICH_MAX_ROWS:
        from rich.table import Table

        t = Table(box=None, pad_edge=False, header_style="bold", title=title, title_justify="left", title_style="bold")
        for i, c in enumerate(columns):
            t.add_column(c, justify="right" if i in right else "left", overflow="fold")
        for r in rows:
            t.add_row(*r)
        _console().print(t)
        return
    widths = [len(c) for c in columns]
    for r in rows:
        for i, cell in enumerate(r):
            if len(cell) > widths[i]:
                widths[i] = len(cell)

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out.append(line(columns))
    out.extend(line(r) for r in rows)
    sys.stdout.write("\n".join(out) + "\n")


def _fields(pairs: Sequence[tuple[str, str]]) -> None:
    """Print 'key  value' lines, keys aligned (the 'show' layout)."""
    w = max(len(k) for k, _ in pairs)
    sys.stdout.write("".join(f"{k.ljust(w)}  {v}\n" for k, v in pairs))


def _when(dt: Optional[datetime]) -> str:
    return "" if dt is None else dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _num(v: float) -> str:
    return f"{v:.6g}"


def _opt(v: Any) -> str:
    return "-" if v is None else str(v)


def _kv(d: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in d.items())


@contextmanager
def _progress(what: str) -> Iterator[Optional[Callable[[int, int], None]]]:
    """A ``progress(done, total)`` callback drawing a rich bar, or None when not on a terminal."""
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _check_status(value: Optional[str]) -> Optional[str]:
    # A callback, not a Choice type: Typer converts choices through pydantic, which
    # 'runs list' cannot afford to import (see _install_plain_coercion).
    from .constants import RUN_STATUSES

    if value is not None and value not in RUN_STATUSES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, RUN_STATUSES))}.")
    return value


def _parse_tags(items: Optional[list[str]]) -> Optional[dict[str, str]]:
    if not items:
        return None
    tags = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--tag")
        tags[key] = value
    return tags


# --------------------------------------------------------------------------- runs


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    status: Annotated[
        Optional[str], typer.Option(metavar="STATUS", callback=_check_status, help="running, finished or failed.")
    ] = None,
    tag: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE; repeat to require several.")] = None,
    name: Annotated[Optional[str], typer.Option(help="A name or glob, e.g. 'resnet-*'.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs, oldest first."""
    from . import quick

    tags = _parse_tags(tag)
    loc: _Location = ctx.obj
    # SQLite stores are listed without SQLAlchemy (see ckptstore.quick); anything else, and
    # every error case, takes the store's own path.
    runs = quick.list_runs(loc.store, status=status, tags=tags, name=name)
    if runs is None:
        runs = _open(ctx).runs(status=status, tags=tags, name=name)
    if as_json:
        _print_json(runs)
        return
    if not runs:
        typer.echo("no runs" + (" match" if (status or tags or name) else " yet"))
        return
    _table(
        ["name", "status", "last step", "checkpoints", "created", "tags"],
        [
            [r.name, r.status, _opt(r.last_step), str(r.checkpoints), _when(r.created_at), _kv(r.tags)]
            for r in runs
        ],
        right=(2, 3),
    )


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.")],
    as_json: JsonOpt = False,
) -> None:
    """One run: status, params, tags, retention, metric names, checkpoints."""
    store = _open(ctx)
    info = store.get_run(run)
    metrics = store.metric_keys(run)
    if as_json:
        _print_json({**to_json(info), "metrics": metrics})
        return
    import json

    _fields(
        [
            ("name", info.name),
            ("status", info.status),
            ("created", _when(info.created_at)),
            ("ended", _when(info.ended_at) or "-"),
            ("last step", _opt(info.last_step)),
            ("checkpoints", str(info.checkpoints)),
            ("metrics", ", ".join(metrics) or "-"),
            ("params", json.dumps(info.params, ensure_ascii=False) if info.params else "-"),
            ("tags", _kv(info.tags) or "-"),
            ("retention", json.dumps(info.retention) if info.retention else "-"),
        ]
    )


@runs_app.command("delete")
def runs_delete(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a run with its metrics, checkpoints and exports (refused while an alias points at them)."""
    store = _open(ctx)
    info = store.get_run(run)
    if not yes:
        if not sys.stdin.isatty():
            _fail(f"deleting run {run!r} needs --yes when not asked on a terminal")
        typer.confirm(f"Delete run {run!r} with {info.checkpoints} checkpoint(s)?", abort=True)
    n = store.delete_run(run)
    typer.echo(f"deleted run {run} ({n} checkpoint{'s' if n != 1 else ''})")


# --------------------------------------------------------------------------- metrics


@app.command()
def steps(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.")],
    metric: Annotated[Optional[list[str]], typer.Option("--metric", "-m", help="Only this metric; repeatable.")] = None,
    start: Annotated[Optional[int], typer.Option("--from", min=0, max=INT_MAX, help="First step (inclusive).")] = None,
    stop: Annotated[Optional[int], typer.Option("--to", min=0, max=INT_MAX, help="Last step (inclusive).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A run's metrics, step by step."""
    rows = _open(ctx).steps(run, start=start, stop=stop, keys=metric)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        typer.echo(f"no metrics logged for run {run}" + (" in that range" if start is not None or stop is not None or metric else ""))
        return
    keys = sorted({k for r in rows for k in r.metrics})
    _table(
        ["step", *keys],
        [[str(r.step), *(_num(r.metrics[k]) if k in r.metrics else "" for k in keys)] for r in rows],
        right=range(len(keys) + 1),
    )


@app.command()
def at(
    ctx: typer.Context,
    step: Annotated[int, typer.Argument(metavar="STEP", min=0, max=INT_MAX, help="Training step.")],
    nearest: Annotated[bool, typer.Option(help="Each run's last step at or below STEP.")] = False,
    metric: Annotated[Optional[list[str]], typer.Option("--metric", "-m", help="Only this metric; repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every run's metrics at a step, and whether a checkpoint exists there."""
    rows = _open(ctx).at_step(step, nearest=nearest, keys=metric)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        typer.echo(f"no run has step {step}" + ("" if nearest else " (try --nearest)"))
        return
    keys = sorted({k for r in rows for k in r.metrics})
    _table(
        ["run", "step", "checkpoint", *keys],
        [
            [r.run, str(r.step), _opt(r.checkpoint_step), *(_num(r.metrics[k]) if k in r.metrics else "" for k in keys)]
            for r in rows
        ],
        right=range(1, len(keys) + 3),
    )


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_json(ck: "CheckpointInfo") -> dict[str, Any]:
    return {**to_json(ck), "ref": ck.ref, "pinned": ck.pinned}


@app.command()
def checkpoints(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run name.")],
    as_json: JsonOpt = False,
) -> None:
    """A run's checkpoints: steps, sizes, aliases, kept (by keep_every_n_hours) or pinned (by an alias)."""
    cks = _open(ctx).checkpoints(run)
    if as_json:
        _print_json([_checkpoint_json(ck) for ck in cks])
        return
    if not cks:
        typer.echo(f"run {run} has no checkpoints")
        return
    _table(
        ["step", "size", "files", "format", "state", "aliases", "created"],
        [
            [
                str(ck.step), _size(ck.total_bytes), str(len(ck.files)), ck.format,
                "pinned" if ck.pinned else ck.state, ", ".join(ck.aliases), _when(ck.created_at),
            ]
            for ck in cks
        ],
        right=(0, 1, 2),
    )


@app.command("vars")
def vars_(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint REF.")],
    diff: Annotated[Optional[str], typer.Option("--diff", metavar="REF2", help="Compare with this checkpoint.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The variables saved in a checkpoint; with --diff, what was added, removed or changed in REF2."""
    store = _open(ctx)
    if diff is None:
        variables = store.variables(ref)
        if as_json:
            _print_json(variables)
            return
        _table(["name", "dtype", "shape"], [[v.name, v.dtype, _shape(v.shape)] for v in variables])
        return
    d = store.diff_variables(ref, diff)
    if as_json:
        _print_json(d)
        return
    rows = [["+", v.name, "", f"{v.dtype}{_shape(v.shape)}"] for v in d.added]
    rows += [["-", v.name, f"{v.dtype}{_shape(v.shape)}", ""] for v in d.removed]
    rows += [
        ["~", c.name, f"{c.before.dtype}{_shape(c.before.shape)}", f"{c.after.dtype}{_shape(c.after.shape)}"]
        for c in d.changed
    ]
    if rows:
        _table(["", "name", ref, diff], rows)
    typer.echo(f"{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed, {d.unchanged} unchanged")


def _shape(shape: Optional[Sequence[Optional[int]]]) -> str:
    if shape is None:
        return "[unknown]"
    return "[" + ",".join("?" if s is None or s < 0 else str(s) for s in shape) + "]"


@app.command()
def restore(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint REF.")],
    to: Annotated[str, typer.Option("--to", help="Directory to write (created if missing).")],
) -> None:
    """Write a checkpoint as a plain TensorFlow checkpoint directory (tf.train.latest_checkpoint reads it)."""
    store = _open(ctx)
    with _progress("restoring") as progress:
        prefix = store.materialize(ref, to, progress=progress)
    typer.echo(f"restored {ref} to {prefix}")
    typer.echo(f"  tf.train.latest_checkpoint({str(prefix.parent)!r}) -> {str(prefix)!r}")


# --------------------------------------------------------------------------- named versions


@app.command()
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="A checkpoint or export REF.")],
    name: Annotated[str, typer.Argument(metavar="NAME", help="Alias name, e.g. 'prod'.")],
    message: Annotated[Optional[str], typer.Option("--message", "-m", help="Why (kept in the history).")] = None,
) -> None:
    """Point an alias at a checkpoint or export (moving it if it exists; its history is kept)."""
    info = _open(ctx).tag(ref, name, message=message)
    last = info.history[0] if info.history else None
    moved = last is not None and last.action == "move" and last.new_target == info.target
    typer.echo(f"{info.name} -> {info.target}" + (f" (was {last.old_target})" if moved and last else ""))


@app.command()
def untag(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Alias name.")],
    message: Annotated[Optional[str], typer.Option("--message", "-m", help="Why (kept in the history).")] = None,
) -> None:
    """Remove an alias (its target is no longer protected from retention and gc)."""
    store = _open(ctx)
    store.untag(name, message=message)
    was = store.versions(name)[0].history[0].old_target
    typer.echo(f"untagged {name} (was {was})")


@app.command()
def versions(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(metavar="[NAME]", help="One alias, with its full history.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Named versions (aliases): what each points at; with NAME, its history."""
    aliases = _open(ctx).versions(name)
    if as_json:
        _print_json(aliases)
        return
    if not aliases:
        typer.echo("no named versions yet (create one with 'ckptstore tag REF NAME')")
        return
    _table(
        ["name", "target", "kind", "updated", "message"],
        [[a.name, a.target or "-", a.kind, _when(a.updated_at), a.message or ""] for a in aliases],
    )
    if name is not None:
        typer.echo("")
        _table(
            ["when", "action", "from", "to", "message"],
            [[_when(e.at), e.action, e.old_target or "", e.new_target or "", e.message or ""] for e in aliases[0].history],
            title="history (newest first)",
        )


# --------------------------------------------------------------------------- exports


def _export_json(e: "ExportInfo") -> dict[str, Any]:
    return {**to_json(e), "ref": e.ref}


def _signature(specs: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{s.get('name')}:{s.get('dtype')}{_shape(s.get('shape'))}" for s in specs)


@app.command()
def exports(
    ctx: typer.Context,
    run: Annotated[Optional[str], typer.Argument(metavar="[RUN]", help="Only this run's exports.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Frozen exports (self-contained GraphDefs), with lineage and aliases."""
    items = _open(ctx).exports(run)
    if as_json:
        _print_json([_export_json(e) for e in items])
        return
    if not items:
        typer.echo("no exports" + (f" in run {run}" if run else " yet"))
        return
    _table(
        ["ref", "run", "step", "kind", "inputs", "outputs", "nodes", "size", "aliases", "created"],
        [
            [
                e.ref, e.run, _opt(e.step), e.kind, _signature(e.inputs), _signature(e.outputs),
                str(e.node_count), _size(e.size), ", ".join(e.aliases), _when(e.created_at),
            ]
            for e in items
        ],
        right=(2, 6, 7),
    )


@app.command()
def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="An export REF (export:ID, an alias, or run@step for the run's export there).")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The .pb file to write; or a directory (existing, or named with a trailing '/'), "
            "which receives export-ID.pb.",
        ),
    ],
) -> None:
    """Write a frozen export's .pb for deployment, with a JSON sidecar (inputs, outputs, digest, lineage)."""
    path = _open(ctx).export_frozen(ref, to)
    typer.echo(f"wrote {path} ({_size(path.stat().st_size)}) and {path}.json")


# --------------------------------------------------------------------------- import, verify, gc


@app.command("import")
def import_(
    ctx: typer.Context,
    directory: Annotated[str, typer.Argument(metavar="DIR", help="A directory written by tf.compat.v1.train.Saver or tf.train.CheckpointManager.")],
    run: Annotated[str, typer.Option("--run", help="Run to import into (created if missing).")],
) -> None:
    """Register existing TensorFlow checkpoints (files are copied; the directory is left as it was)."""
    store = _open(ctx, create=True)
    with _progress("importing") as progress:
        imported = store.import_checkpoints(directory, run=run, progress=progress)
    if not imported:
        typer.echo(f"nothing new to import: run {run} already has every checkpoint in {directory}")
        return
    steps_text = ", ".join(str(ck.step) for ck in imported)
    total = sum(ck.total_bytes for ck in imported)
    n = len(imported)
    typer.echo(f"imported {n} checkpoint{'s' if n != 1 else ''} into run {run} (steps {steps_text}; {_size(total)})")


@app.command()
def verify(
    ctx: typer.Context,
    run: Annotated[Optional[str], typer.Argument(metavar="[RUN]", help="Only this run's files.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-digest stored files; exit status 1 if any is missing or corrupt."""
    store = _open(ctx)
    with _progress("verifying") as progress:
        report = store.verify(run, progress=progress)
    if as_json:
        _print_json({**to_json(report), "ok": report.ok})
    else:
        if report.problems:
            _table(
                ["problem", "checkpoint/export", "detail"],
                [
                    [p.kind, p.checkpoint or (f"export:{p.export}" if p.export is not None else "-"), p.detail]
                    for p in report.problems
                ],
            )
        typer.echo(
            f"checked {report.checked_files} files ({_size(report.checked_bytes)}): "
            + ("ok" if report.ok else "damaged")
            + ("; 'ckptstore gc' removes the leftovers" if any(p.kind in ("unexpected", "stale-staging") for p in report.problems) else "")
        )
    if not report.ok:
        bad = [p for p in report.problems if p.kind in ("missing", "corrupt")]
        kinds = ", ".join(f"{sum(p.kind == k for p in bad)} {k}" for k in ("missing", "corrupt") if any(p.kind == k for p in bad))
        _fail(f"verify found {len(bad)} damaged file(s) ({kinds})")


@app.command()
def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be removed.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove stored files no checkpoint or export references, and staging left by crashed saves."""
    store = _open(ctx)
    with _progress("collecting") as progress:
        report = store.gc(dry_run=dry_run, progress=progress)
    if as_json:
        _print_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {report.removed_objects} unreferenced file(s) ({_size(report.removed_bytes)}) "
        f"and {report.removed_staging} staging director{'y' if report.removed_staging == 1 else 'ies'}"
    )


# --------------------------------------------------------------------------- db


def _schema_status(revision: Optional[str]) -> tuple[str, str]:
    """(status, head) of a store's revision: current, behind, ahead or empty."""
    from .constants import HEAD_REVISION

    if revision is None:
        return "empty", HEAD_REVISION
    if revision == HEAD_REVISION:
        return "current", HEAD_REVISION
    from .db import history

    known = [r for r, _, _ in history()]
    return ("behind" if revision in known else "ahead"), HEAD_REVISION


@db_app.command("current")
def db_current(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The store's schema revision (without changing it)."""
    store = _open(ctx, check_schema=False)
    status, head = _schema_status(store.revision)
    if as_json:
        _print_json({"revision": store.revision, "head": head, "status": status})
        return
    note = {
        "current": "(head)",
        "behind": f"(head is {head}: run 'ckptstore db upgrade')",
        "ahead": f"(newer than this ckptstore, whose head is {head})",
        "empty": f"(empty database; 'ckptstore db upgrade' creates the schema at {head})",
    }[status]
    typer.echo(f"{store.revision or 'none'} {note}")


@db_app.command("history")
def db_history(as_json: JsonOpt = False) -> None:
    """Every schema revision this ckptstore knows, oldest first."""
    from .constants import HEAD_REVISION
    from .db import history

    revs = history()
    if as_json:
        _print_json([{"revision": r, "down_revision": d, "message": m} for r, d, m in revs])
        return
    _table(
        ["revision", "down", "message"],
        [[r + (" (head)" if r == HEAD_REVISION else ""), d or "-", " ".join(m.split("\n\n")[0].split())] for r, d, m in revs],
    )


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create the schema, or upgrade it to this ckptstore's head (SQLite: a backup is made first)."""
    from .db import ensure_schema

    store = _open(ctx, create=True, check_schema=False)
    before = store.revision
    after = ensure_schema(store.engine, create=True)
    if before == after:
        typer.echo(f"already at {after} (head)")
    else:
        typer.echo(f"upgraded from {before or 'an empty database'} to {after}")


# --------------------------------------------------------------------------- demo and plot


@app.command()
def demo(
    ctx: typer.Context,
    steps_: Annotated[int, typer.Option("--steps", min=20, max=INT_MAX, help="Training steps.")] = 300,
    plot_path: Annotated[str, typer.Option("--plot", help="Where to write the loss plot.")] = "demo-loss.png",
) -> None:
    """Train a small Keras model into the store, then tag, freeze, restore and plot it."""
    from .demo import run_demo

    loc: _Location = ctx.obj
    sys.stderr.write(f"training a small Keras model into {loc.store} ...\n")
    sys.stderr.flush()
    summary = run_demo(loc.store, root=loc.root, steps=steps_, plot_path=plot_path)
    typer.echo("\n".join(summary.lines()))


@app.command()
def plot(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(metavar="RUN...", help="One or more runs.")],
    metric: Annotated[list[str], typer.Option("--metric", "-m", help="Metric to plot; repeatable.")],
    output: Annotated[str, typer.Option("--output", "-o", help="PNG file to write.")],
) -> None:
    """Plot metrics against step for one or more runs into a PNG (needs matplotlib)."""
    from .plot import plot_metrics

    path = plot_metrics(_open(ctx), runs, metric, output)
    typer.echo(f"wrote {path}")


# --------------------------------------------------------------------------- entry point


def main() -> None:
    """Entry point of the ``ckptstore`` command (and ``python -m ckptstore``)."""
    # TensorFlow's C++ start-up chatter would bury the one line a command prints.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # CKPTSTORE_DEBUG=1 lets any error end in its traceback, for a bug report.
    debug = os.environ.get("CKPTSTORE_DEBUG", "") not in ("", "0")
    try:
        # standalone_mode=False: Click's usage errors reach us, to be printed as one line like
        # every other error, instead of Click's multi-line box.
        status = app(prog_name="ckptstore", standalone_mode=False)
    except typer.TyperException as exc:  # Click's UsageError, BadParameter, ...
        if type(exc).__name__ == "NoArgsIsHelpError":  # 'ckptstore runs': the help is the answer
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)
        if debug:
            raise
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None and exc.exit_code == 2 else ""
        _error_line(exc.format_message() + hint)
        sys.exit(exc.exit_code)
    except typer.Abort:
        _error_line("aborted")
        sys.exit(1)
    except (CkptstoreError, ValueError) as exc:
        if debug:
            raise
        _error_line(str(exc) or type(exc).__name__)
        sys.exit(1)
    except OSError as exc:
        if debug:
            raise
        # A directory we may not write, a disk that is full: the user's to fix, not a bug.
        where = f": {exc.filename}" if exc.filename else ""
        _error_line(f"{exc.strerror or exc}{where}")
        sys.exit(1)
    except Exception as exc:
        # Not raised on purpose (a PostgreSQL connection dropped mid-command, a bug): still one
        # line, named by its type. Only the first line of the message: SQLAlchemy's go on with
        # the SQL statement, its parameters and a link. Caught as Exception rather than by
        # SQLAlchemy's classes, which 'runs list' must not import.
        if debug:
            raise
        lines = str(exc).strip().splitlines()
        _error_line(f"{type(exc).__name__}: {lines[0] if lines else '(no message)'} (CKPTSTORE_DEBUG=1 shows the traceback)")
        sys.exit(1)
    # The command's return value, or the code of a typer.Exit it raised (Ctrl-C: 130).
    sys.exit(status if isinstance(status, int) else 0)

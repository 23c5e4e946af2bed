"""The Typer app, its global options (--store, --root, --version), how a command reads its store
(:func:`read`), and the error edge (:func:`main`).

The command modules register their commands on :data:`app`; this module never imports them.
Annotations are real ones, not postponed (no ``from __future__ import annotations``): Typer
would otherwise evaluate every one of them at start-up.
"""

import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

from ..errors import CkptstoreError
from ..location import DEFAULT_LOCATION, default_location
from .output import error_line

if TYPE_CHECKING:
    from .. import Store
    from ..files.area import ObjectArea
    from ..metadata.file_reads import Snapshot
    from ..metadata.quick_reader import QuickReader
    from ..metadata.quick_writer import QuickWriter

app = typer.Typer(
    name="ckptstore",
    help="An experiment-tracking checkpoint store for TensorFlow.\n\n"
    "REF names a checkpoint or an export: run@STEP, run@latest, run@~N (newest at or below N), "
    "export:ID, or an alias (see 'ckptstore aliases').",
    pretty_exceptions_enable=False,
    # Plain help, as Click prints it: a flag shows no value placeholder there, where Typer's
    # rich panels print '<bool>' next to every flag, --help included.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class PlainHelpCommand(TyperCommand):
    """Typer's command class (``cls=``, Typer's way to customise a command), whose help names an
    argument by its metavar alone: Typer's plain help prints 'RUN <str>', and our arguments all
    have a metavar that says what they are, so the type is noise there."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((param.metavar, record[1]) if param.metavar else record)
            elif param.param_type_name == "option":
                options.append(record)
        for title, records in (("Arguments", arguments), ("Options", options)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def help_without_command(ctx: typer.Context) -> None:
    """``ckptstore`` or ``ckptstore runs`` alone: the help is the answer, on stdout as --help
    prints it, with Click's usage status 2. (A group callback with ``invoke_without_command``:
    Typer's ``no_args_is_help`` would raise an error that can only be told by its class name.)"""
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)


#: The name of each command group, by its Typer app.
GROUP_NAMES: dict[int, str] = {}

#: The read commands ``cli/quick.py`` may call without Typer's value conversion, by command path
#: (``("runs", "list")``, ``("steps",)``).
QUICK_COMMANDS: dict[tuple[str, ...], Callable[..., Any]] = {}


def group(name: str, help: str) -> typer.Typer:
    """A command group (``ckptstore NAME ...``) registered on :data:`app`."""
    sub = typer.Typer(help=help, invoke_without_command=True, rich_markup_mode=None)
    sub.callback()(help_without_command)
    app.add_typer(sub, name=name)
    GROUP_NAMES[id(sub)] = name
    return sub


Command = TypeVar("Command", bound=Callable[..., Any])


def command(
    on: typer.Typer = app, name: str | None = None, *, context_settings: dict[str, Any] | None = None,
    quick: bool = False, hidden: bool = False,
) -> Callable[[Command], Command]:
    """Register a command on :data:`app` (or on a group), like ``on.command(name)``.

    Its line in the list of commands is the whole first paragraph of its docstring: plain help
    would otherwise cut it at about 60 characters. ``quick``: a command (any that does not load
    TensorFlow: reads, and since issue 26 the small writes and maintenance commands) whose plain
    command lines ``cli/quick.py`` runs without Typer's value conversion (see there). ``hidden``: left
    out of ``--help`` (the deprecated spellings of renamed commands).
    """

    def register(function: Command) -> Command:
        summary = inspect.cleandoc(function.__doc__ or "").split("\n\n")[0]
        on.command(name, cls=PlainHelpCommand, short_help=summary, context_settings=context_settings,
                   hidden=hidden)(function)
        if quick:
            path = (GROUP_NAMES[id(on)],) if on is not app else ()
            QUICK_COMMANDS[(*path, name or function.__name__.replace("_", "-"))] = function
        return function

    return register


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys, see docs/cli.md) instead of a table.")]


@dataclass(frozen=True)
class StoreLocation:
    """The store named by --store/$CKPTSTORE_URI and --root/$CKPTSTORE_ROOT."""

    store: str
    root: str | None

    def open(self, *, create: bool = False, check_schema: bool = True, readonly: bool = False) -> "Store":
        """Open the store (imports SQLAlchemy). Commands that only read pass readonly=True: a
        mistyped --store is an error rather than a new empty store, and nothing on disk changes."""
        if not create:  # a mistyped --store: one line before SQLAlchemy's import (issue 26)
            from ..location import check_existing_store, parse_location

            directory = parse_location(self.store).directory
            if directory is not None:
                check_existing_store(directory)
        from .. import open_store as open_library_store

        return open_library_store(
            self.store, root=self.root, create=create, check_schema=check_schema, readonly=readonly
        )


def location(ctx: typer.Context) -> StoreLocation:
    """The store location given to this command line (set by the global options)."""
    return ctx.obj


def open_store(
    ctx: typer.Context, *, create: bool = False, check_schema: bool = True, readonly: bool = False
) -> "Store":
    """Open the command line's store; it is closed when the command ends. Commands that only read
    the store pass ``readonly=True`` (no file is created or changed, nothing is upgraded)."""
    store = location(ctx).open(create=create, check_schema=check_schema, readonly=readonly)
    ctx.call_on_close(store.close)
    return store


Read = TypeVar("Read")


def read(ctx: typer.Context, fetch: "Callable[[Store | QuickReader], Read]") -> Read:
    """``fetch(reader)`` on the command line's store, read-only.

    Every read command answers in under 0.3 s, and importing SQLAlchemy alone takes ~0.18 s:
    a SQLite store at the current schema is read through ``sqlite3`` (``QuickReader``, the same
    queries as the store's, see ``metadata/reads.py``). Anything it does not answer (another
    database, an older schema, an unknown run or REF: ``Fallback``) is asked of the store,
    which words every error as it always does. ``CKPTSTORE_QUICK=0`` always asks the store, and
    leaves every command line to Typer's parse (tests compare both ways' output).
    """
    return quick_or(ctx, fetch, lambda: fetch(open_store(ctx, readonly=True)))


def check_first(ctx: typer.Context, check: "Callable[[QuickReader], object]") -> None:
    """``check(reader)`` on the quick path before a command opens the store for its work: a REF
    or run it names that does not exist is then one error line in ~0.1 s instead of after
    SQLAlchemy's import (issue 26: error paths too). What the quick reader does not word
    (``Fallback``) is left to the store, which checks again as it always does."""
    quick_or(ctx, check, lambda: None)


def quick_or(ctx: typer.Context, quick: "Callable[[QuickReader], Read]", otherwise: "Callable[[], Read]") -> Read:
    """``quick(reader)`` on the quick path (see :func:`read`); ``otherwise()`` when there is
    none for this store or ``quick`` raises ``Fallback``."""
    if os.environ.get("CKPTSTORE_QUICK") != "0":
        from ..metadata.quick_reader import Fallback, QuickReader

        reader = QuickReader.open(location(ctx).store)
        if reader is not None:
            try:
                return quick(reader)
            except Fallback:
                pass
            finally:
                reader.close()
    return otherwise()


def quick_area(ctx: typer.Context, reader: "QuickReader") -> "ObjectArea":
    """The file area of the quick reader's store, for the quick paths that read or check
    stored files (``verify``, ``gc``, ``repack``, ``restore``, ``export``, ``vars --diff``): a
    directory store's own; a recorded root (S3, a shared directory) or one given with ``--root``
    is the store's to open (``Fallback``)."""
    from ..files.registry import open_area
    from ..metadata.quick_reader import Fallback

    if location(ctx).root is not None:
        raise Fallback
    return open_area(reader.root)


def with_stored_files(
    ctx: typer.Context, reader: "QuickReader", work: "Callable[[Snapshot, ObjectArea], Read]", *, worded: bool = True
) -> Read:
    """``work(snapshot, area)`` for a quick path that reads stored files (``restore``,
    ``export``, ``vars --diff``): the quick reader's one snapshot and its store's file area
    (:func:`quick_area`). A conflict at the target is raised as the store raises it (``worded``,
    on a store the quick reader names as the store does); anything else that fails while files
    are read or written (damage, a checkpoint deleted meanwhile: the writers leave nothing
    behind) is done again by the store (``Fallback``), which reads afresh and words it."""
    import contextlib

    from ..errors import ConflictError
    from ..metadata.quick_reader import Fallback

    area = quick_area(ctx, reader)
    try:
        return work(lambda: contextlib.nullcontext(reader.sql), area)
    except ConflictError:
        if worded and reader.words_errors:
            raise
        raise Fallback from None
    except (CkptstoreError, OSError):
        raise Fallback from None
    finally:
        area.close()


def write(ctx: typer.Context, change: "Callable[[Store | QuickWriter], Read]") -> Read:
    """``change(writer)`` on the command line's store: one write transaction.

    As :func:`read`, for the writes that must answer in under 0.3 s (``alias``, ``unalias``): a
    SQLite store at the current schema is written through ``sqlite3`` (``QuickWriter``, the same
    statements as the store's, see ``metadata/alias_writes.py``); anything it does not do
    (another database, an older schema, ``--root``, an error it leaves to the store to word:
    ``Fallback``, after rolling back) is done by the store. ``CKPTSTORE_QUICK=0``: always the store.
    """
    return quick_write_or(ctx, change, lambda: change(open_store(ctx)))


def quick_write_or(ctx: typer.Context, quick: "Callable[[QuickWriter], Read]", otherwise: "Callable[[], Read]") -> Read:
    """``quick(writer)`` on the quick path (see :func:`write`); ``otherwise()`` when there is
    none for this store or ``quick`` raises ``Fallback`` (having written nothing)."""
    where = location(ctx)
    if os.environ.get("CKPTSTORE_QUICK") != "0" and where.root is None:
        from ..metadata.quick_reader import Fallback
        from ..metadata.quick_writer import QuickWriter

        writer = QuickWriter.open(where.store)
        if writer is not None:
            try:
                return quick(writer)
            except Fallback:
                pass
            finally:
                writer.close()
    return otherwise()


def fail(message: str) -> None:
    """Print one error line and end with status 1 (for user errors found by the CLI itself)."""
    error_line(message)
    raise typer.Exit(1)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"ckptstore {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _global_options(
    ctx: typer.Context,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            envvar="CKPTSTORE_URI",
            metavar="DIR|URL",
            help="The store: a directory (SQLite) or a database URL such as "
            "postgresql+psycopg://user@host/db.",
        ),
    ] = DEFAULT_LOCATION,
    root: Annotated[
        str | None,
        typer.Option(
            "--root", envvar="CKPTSTORE_ROOT", metavar="DIR|s3://BUCKET/PREFIX",
            help="File area: a directory (PostgreSQL stores), or an S3 bucket, recorded in the store "
            "on first use (endpoint and credentials from the AWS environment).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    source = ctx.get_parameter_source("store")
    if source is not None and source.name == "DEFAULT":  # Typer's vendored Click: its enum, by name
        store = default_location()  # the nearest .ckptstore above, as git finds .git
    ctx.obj = StoreLocation(store, root)
    help_without_command(ctx)


# --------------------------------------------------------------------------- the error edge


def main(first: Callable[[list[str]], bool] | None = None) -> None:
    """Entry point of the ``ckptstore`` command (and ``python -m ckptstore``); ``first(args)``
    may answer the command line before Typer parses it (``cli/quick.py``), returning True.

    Errors end here, each as one line on stderr (see the package docstring): a
    :class:`~ckptstore.errors.CkptstoreError` is the user's to fix (exit 1); bad usage is
    Click's (exit 2); anything else is unexpected and named by its type (exit 1), with its
    traceback kept for ``CKPTSTORE_DEBUG=1``.
    """
    # TensorFlow's C++ start-up chatter would bury the one line a command prints.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # CKPTSTORE_DEBUG=1 lets any error end in its traceback, for a bug report.
    debug = os.environ.get("CKPTSTORE_DEBUG", "") not in ("", "0")
    try:
        try:
            answered = first is not None and first(sys.argv[1:])
        except (EOFError, KeyboardInterrupt):
            # As Click turns them into Abort on Typer's path, so that both paths end alike.
            sys.stderr.write("\n")
            raise typer.Abort() from None
        # standalone_mode=False: Click's usage errors reach us, to be printed as one line like
        # every other error, instead of Click's multi-line box.
        status = 0 if answered else app(prog_name="ckptstore", standalone_mode=False)
    except typer.TyperException as exc:  # Click's UsageError, BadParameter, ...
        if debug:
            raise
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None and exc.exit_code == 2 else ""
        error_line(exc.format_message() + hint)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:  # fail() on cli/quick.py's path (Typer's returns the status)
        sys.exit(exc.exit_code)
    except typer.Abort:
        error_line("aborted")
        sys.exit(1)
    except CkptstoreError as exc:
        if debug:
            raise
        error_line(str(exc) or type(exc).__name__)
        sys.exit(1)
    except Exception as exc:
        # Not raised on purpose (a PostgreSQL connection dropped mid-command, a full disk, a
        # bug): still one line, named by its type. Only the first line of the message:
        # SQLAlchemy's go on with the SQL statement, its parameters and a link. Caught as
        # Exception rather than by SQLAlchemy's classes, which 'runs list' must not import.
        if debug:
            raise
        lines = str(exc).strip().splitlines()
        error_line(
            f"{type(exc).__name__}: {lines[0] if lines else '(no message)'} (CKPTSTORE_DEBUG=1 shows the traceback)"
        )
        sys.exit(1)
    # The command's return value, or the code of a typer.Exit it raised (Ctrl-C: 130).
    sys.exit(status if isinstance(status, int) else 0)

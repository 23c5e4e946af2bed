"""The Typer app, its global options (--store, --root, --version), and the error edge (:func:`main`).

The command modules register their commands on :data:`app`; this module never imports them.
Annotations are real ones, not postponed (no ``from __future__ import annotations``): Typer
would otherwise evaluate every one of them at start-up.
"""

import inspect
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from ..errors import CkptstoreError
from ..location import DEFAULT_LOCATION
from .output import error_line

if TYPE_CHECKING:
    from .. import Store

app = typer.Typer(
    name="ckptstore",
    help="An experiment-tracking checkpoint store for TensorFlow.\n\n"
    "REF names a checkpoint or an export: run@STEP, run@latest, run@~N (newest at or below N), "
    "export:ID, or an alias (see 'ckptstore versions').",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help, as Click prints it: a flag shows no value placeholder there, where Typer's
    # rich panels print '<bool>' next to every flag, --help included.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def group(name: str, help: str) -> typer.Typer:
    """A command group (``ckptstore NAME ...``) registered on :data:`app`."""
    sub = typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(sub, name=name)
    return sub


Command = TypeVar("Command", bound=Callable[..., Any])


def command(on: typer.Typer = app, name: Optional[str] = None) -> Callable[[Command], Command]:
    """Register a command on :data:`app` (or on a group), like ``on.command(name)``.

    Its line in the list of commands is the whole first paragraph of its docstring: plain help
    would otherwise cut it at about 60 characters.
    """

    def register(function: Command) -> Command:
        summary = inspect.cleandoc(function.__doc__ or "").split("\n\n")[0]
        on.command(name, short_help=summary)(function)
        return function

    return register


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys, see README) instead of a table.")]


@dataclass(frozen=True)
class StoreLocation:
    """The store named by --store/$CKPTSTORE_URI and --root/$CKPTSTORE_ROOT."""

    store: str
    root: Optional[str]

    def open(self, *, create: bool = False, check_schema: bool = True, readonly: bool = False) -> "Store":
        """Open the store (imports SQLAlchemy). Commands that only read pass readonly=True: a
        mistyped --store is an error rather than a new empty store, and nothing on disk changes."""
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


def fail(message: str) -> None:
    """Print one error line and end with status 1 (for user errors found by the CLI itself)."""
    error_line(message)
    raise typer.Exit(1)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

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
            metavar="DIR|URL",
            help="The store: a directory (SQLite) or a database URL such as "
            "postgresql+psycopg://user@host/db.",
        ),
    ] = DEFAULT_LOCATION,
    root: Annotated[
        Optional[str],
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
    ctx.obj = StoreLocation(store, root)


# --------------------------------------------------------------------------- quick commands
#
# Typer (0.29 here) converts the value of every parameter but a boolean flag through a pydantic
# TypeAdapter, built when the command line is parsed, even for an option left out; it offers no
# public way around it (no click_type= since it vendors Click; parser= builds an adapter too).
# Importing pydantic and building the first adapter take about 0.22 s here, most of the 0.3 s
# that 'ckptstore runs list' may take. So the few command
# lines that must answer at once are recognised here, with the standard library, before Typer
# parses anything; every other command line, and every doubt (an unknown or repeated option,
# '--', --help, a value the command would refuse), is left to Typer, which parses it and
# reports any mistake exactly as it always does.

QuickCommand = Callable[[StoreLocation, list[str]], bool]

#: The quick commands, in the order they are tried.
QUICK_COMMANDS: list[QuickCommand] = []


def quick_command(command: QuickCommand) -> QuickCommand:
    """Register ``command(location, args)``: it runs the command line ``args`` (the arguments after
    the global options) and returns True, or returns False at once if it is not one it knows."""
    QUICK_COMMANDS.append(command)
    return command


def parse_plain_options(
    args: Sequence[str],
    *,
    values: frozenset[str] = frozenset(),
    repeatable: frozenset[str] = frozenset(),
    flags: frozenset[str] = frozenset(),
) -> Optional[tuple[dict[str, Any], list[str]]]:
    """The leading long options of ``args`` as Click reads them, and the arguments after them.

    ``values`` take one value (``--opt V`` or ``--opt=V``; the next argument is the value whatever
    it looks like, as in Click), ``repeatable`` ones collect a list, ``flags`` are True when given.
    Anything else (another option, an option given twice, ``--``, a flag with ``=``, a missing
    value) gives None: that command line is left to Typer.
    """
    found: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return None
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=")
        if name in flags and not eq and name not in found:
            found[name] = True
            i += 1
            continue
        if name not in values and name not in repeatable:
            return None
        if not eq:
            if i + 1 == len(args):
                return None
            value = args[i + 1]
        i += 1 if eq else 2
        if name in repeatable:
            found.setdefault(name, []).append(value)
        elif name in found:
            return None
        else:
            found[name] = value
    return found, list(args[i:])


def run_quick(args: Sequence[str]) -> Optional[int]:
    """Run ``args`` as a quick command and return its exit status, or None if none takes it."""
    parsed = parse_plain_options(args, values=frozenset({"--store", "--root"}))
    if parsed is None:
        return None
    options, rest = parsed
    # As Click reads them: the option, else its environment variable if not empty, else the default.
    where = StoreLocation(
        options["--store"] if "--store" in options else os.environ.get("CKPTSTORE_URI") or DEFAULT_LOCATION,
        options["--root"] if "--root" in options else os.environ.get("CKPTSTORE_ROOT") or None,
    )
    try:
        for command in QUICK_COMMANDS:
            if command(where, rest):
                return 0
    except typer.Exit as exc:
        return exc.exit_code
    except (EOFError, KeyboardInterrupt):
        # What Click does with them, so that both paths end alike.
        sys.stderr.write("\n")
        raise typer.Abort() from None
    return None


# --------------------------------------------------------------------------- the error edge


def main() -> None:
    """Entry point of the ``ckptstore`` command (and ``python -m ckptstore``).

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
        status = run_quick(sys.argv[1:])
        if status is None:
            # standalone_mode=False: Click's usage errors reach us, to be printed as one line like
            # every other error, instead of Click's multi-line box.
            status = app(prog_name="ckptstore", standalone_mode=False)
    except typer.TyperException as exc:  # Click's UsageError, BadParameter, ...
        if type(exc).__name__ == "NoArgsIsHelpError":
            # 'ckptstore runs': the help is the answer, on stdout as --help prints it (Click
            # would print it on stderr); the status stays Click's 2.
            typer.echo(exc.format_message())
            sys.exit(exc.exit_code)
        if debug:
            raise
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None and exc.exit_code == 2 else ""
        error_line(exc.format_message() + hint)
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

"""The quick path: the read commands' usual command lines, parsed with the standard library and
answered before Typer, pydantic or SQLAlchemy are imported.

Start-up time is part of the interface: every metadata command answers in under 0.3 s on a
store of 1,000 runs. Importing Typer costs ~0.07 s on an idle machine (far more on a busy one),
SQLAlchemy ~0.25 s, and Typer (0.29 here) converts the value of every parameter but a boolean
flag through a pydantic TypeAdapter built when the command line is parsed, even for an option
left out (~0.22 s more). So :func:`run_quick`, called by :func:`ckptstore.cli.main` first,
recognises the usual command lines of the read commands and answers them from a SQLite store
through ``metadata.quick_reader`` (``sqlite3``, read-only), printing with the very functions the
Typer commands use (``views.py``). Every other command line, and every doubt (an unknown or
repeated option, ``--``, ``--help``, a value the command would refuse, a PostgreSQL store, an
unknown run, any error at all), is left to Typer and the library, which parse it and word any
mistake exactly as they always do. Nothing here imports Typer or SQLAlchemy.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..constants import RUN_STATES
from ..location import DEFAULT_LOCATION
from ..metadata.quick import list_runs as quick_list_runs
from ..records import RunInfo
from .output import deprecated
from .views import (
    at_rows,
    print_at,
    print_checkpoints,
    print_comparison,
    print_exports,
    print_run,
    print_runs,
    print_steps,
    print_variables,
    print_versions,
)

if TYPE_CHECKING:
    from .. import Store


@dataclass(frozen=True)
class StoreLocation:
    """The store named by --store/$CKPTSTORE_URI and --root/$CKPTSTORE_ROOT."""

    store: str
    root: str | None

    def open(self, *, create: bool = False, check_schema: bool = True, readonly: bool = False) -> "Store":
        """Open the store (imports SQLAlchemy). Commands that only read pass readonly=True: a
        mistyped --store is an error rather than a new empty store, and nothing on disk changes."""
        from .. import open_store as open_library_store

        return open_library_store(
            self.store, root=self.root, create=create, check_schema=check_schema, readonly=readonly
        )


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
) -> tuple[dict[str, Any], list[str]] | None:
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


def parse_command_line(
    args: Sequence[str],
    *,
    values: dict[str, str] = {},  # noqa: B006  (read only) option or alias -> canonical name
    repeatable: frozenset[str] = frozenset(),
    flags: dict[str, str] = {},  # noqa: B006  flag or alias -> canonical name
) -> tuple[dict[str, Any], list[str]] | None:
    """Options (anywhere, as Click allows) and positional arguments of a command line.

    ``values`` and ``flags`` map each spelling (``--metric``, ``-m``) to the canonical name;
    canonical names in ``repeatable`` collect lists. An unknown option, a repeated
    non-repeatable one, ``--``, ``--help``, a missing value or a flag with ``=``: None.
    """
    found: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return None
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            i += 1
            continue
        name, eq, value = arg.partition("=")
        if name in flags and not eq:
            key = flags[name]
            if key in found:
                return None
            found[key] = True
            i += 1
            continue
        if name not in values:
            return None
        key = values[name]
        if not eq:
            if i + 1 == len(args):
                return None
            value = args[i + 1]
        i += 1 if eq else 2
        if key in repeatable:
            found.setdefault(key, []).append(value)
        elif key in found:
            return None
        else:
            found[key] = value
    return found, positional


def step_value(text: str | None) -> int | None:
    """A step given on the command line, or None if the normal path must judge it (raises
    ValueError for the caller to fall back)."""
    if text is None:
        return None
    if not text.isdigit() or int(text) > 2**63 - 1:
        raise ValueError(text)
    return int(text)


def quick_read(where: StoreLocation, fetch: Callable[[Any], Any]) -> tuple[Any] | None:
    """``(fetch(reader),)`` from a quick reader on the store, or None to take the normal path."""
    from ..metadata.quick_reader import Fallback, QuickReader

    reader = QuickReader.open(where.store)
    if reader is None:
        return None
    try:
        return (fetch(reader),)
    except Fallback:
        return None
    finally:
        reader.close()


def plain_tags(items: list[str] | None) -> None | bool | dict[str, str]:
    """``--tag K=V`` values as a dict, None for none, False if one is malformed (Typer words it)."""
    if not items:
        return None
    tags = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            return False
        tags[key] = value
    return tags


def run_quick(args: Sequence[str]) -> int | None:
    """Run ``args`` as a quick command and return its exit status, or None if none takes it.

    ``CKPTSTORE_QUICK=0`` turns the quick path off (tests compare both paths' output). A quick
    command that fails in any way gives the command line to the normal path, which reports the
    error as it always does; nothing is printed before a quick command has all it needs."""
    if os.environ.get("CKPTSTORE_QUICK") == "0":
        return None
    parsed = parse_plain_options(args, values=frozenset({"--store", "--root"}))
    if parsed is None:
        return None
    options, rest = parsed
    # As Click reads them: the option, else its environment variable if not empty, else the default.
    where = StoreLocation(
        options["--store"] if "--store" in options else os.environ.get("CKPTSTORE_URI") or DEFAULT_LOCATION,
        options["--root"] if "--root" in options else os.environ.get("CKPTSTORE_ROOT") or None,
    )
    for command in QUICK_COMMANDS:
        try:
            if command(where, rest):
                return 0
        except Exception:
            return None
    return None


# --------------------------------------------------------------------------- the quick commands


def list_runs(
    where: StoreLocation,
    *,
    status: str | None,
    tags: dict[str, str] | None,
    name: str | None,
    search: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
) -> list[RunInfo]:
    """The runs of a store, newest first (or by ``sort``); without SQLAlchemy for a SQLite store."""
    # Anything but a readable SQLite store at the current schema, and every error case but a bad
    # search (worded the same either way), takes the store's own path, which words the errors.
    runs = quick_list_runs(where.store, status=status, tags=tags, name=name, where=search, order_by=sort, limit=limit)
    if runs is None:
        with where.open(readonly=True) as store:
            runs = store.runs(status=status, tags=tags, name=name, where=search, order_by=sort, limit=limit)
    return runs


@quick_command
def quick_runs_list(where: StoreLocation, args: list[str]) -> bool:
    """``runs list [--status S] [--tag K=V]... [--name P] [--where E] [--sort F] [--limit N] [--json]``,
    parsed without Typer. Any other form, and a value that ``runs_list`` would refuse, is left to Typer.
    """
    if args[:2] != ["runs", "list"]:
        return False
    parsed = parse_plain_options(
        args[2:], values=frozenset({"--status", "--name", "--where", "--sort", "--limit"}),
        repeatable=frozenset({"--tag"}), flags=frozenset({"--json"}),
    )
    if parsed is None or parsed[1]:
        return False
    options = parsed[0]
    status, name = options.get("--status"), options.get("--name")
    if status is not None and status not in RUN_STATES:
        return False
    limit = options.get("--limit")
    if limit is not None:
        if not limit.isdigit():
            return False
        limit = int(limit)
    tags = plain_tags(options.get("--tag"))
    if tags is False:
        return False
    search = options.get("--where")
    runs = list_runs(where, status=status, tags=tags, name=name, search=search, sort=options.get("--sort"), limit=limit)
    print_runs(runs, filtered=bool(status or tags or name or search), as_json=options.get("--json", False))
    return True


@quick_command
def quick_runs_show_compare(where: StoreLocation, args: list[str]) -> bool:
    """``runs show RUN [--json]`` and ``runs compare RUN... [--json]`` without Typer or SQLAlchemy."""
    if args[:2] not in (["runs", "show"], ["runs", "compare"]):
        return False
    parsed = parse_command_line(args[2:], flags={"--json": "json"})
    if parsed is None or not parsed[1]:
        return False
    options, names = parsed
    if args[1] == "show":
        if len(names) != 1:
            return False
        got = quick_read(where, lambda r: (r.get_run(names[0]), r.metric_keys(names[0])))
        if got is None:
            return False
        print_run(*got[0], as_json=options.get("json", False))
        return True
    got = quick_read(where, lambda r: r.compare_runs(names))
    if got is None:
        return False
    print_comparison(got[0], as_json=options.get("json", False))
    return True


@quick_command
def quick_steps_at(where: StoreLocation, args: list[str]) -> bool:
    """``steps RUN [-m M]... [--from N] [--to N] [--json]`` and ``at STEP [--nearest] [-m M]...
    [--run GLOB] [-p NAME]... [--json]`` without Typer or SQLAlchemy."""
    if not args or args[0] not in ("steps", "at"):
        return False
    metric = {"--metric": "metric", "-m": "metric"}
    if args[0] == "steps":
        parsed = parse_command_line(
            args[1:], values={**metric, "--from": "from", "--to": "to"}, repeatable=frozenset({"metric"}),
            flags={"--json": "json"},
        )
        if parsed is None or len(parsed[1]) != 1:
            return False
        options, (run,) = parsed
        try:
            start, stop = step_value(options.get("from")), step_value(options.get("to"))
        except ValueError:
            return False
        keys = options.get("metric")
        got = quick_read(where, lambda r: r.steps(run, start=start, stop=stop, keys=keys))
        if got is None:
            return False
        print_steps(run, got[0], filtered=start is not None or stop is not None or bool(keys), as_json=options.get("json", False))
        return True
    parsed = parse_command_line(
        args[1:], values={**metric, "--run": "run", "--param": "param", "-p": "param"},
        repeatable=frozenset({"metric", "param"}), flags={"--json": "json", "--nearest": "nearest", "--no-nearest": "far"},
    )
    if parsed is None or len(parsed[1]) != 1 or ("nearest" in parsed[0] and "far" in parsed[0]):
        return False
    options, (text,) = parsed
    try:
        step = step_value(text)
    except ValueError:
        return False
    assert step is not None
    nearest, param = options.get("nearest", False), options.get("param")
    got = quick_read(
        where,
        lambda r: at_rows(r, step, nearest=nearest, metric=options.get("metric"), run=options.get("run"), param=param),
    )
    if got is None:
        return False
    rows, params = got[0]
    print_at(step, rows, nearest=nearest, params=params, param_names=list(dict.fromkeys(param or [])), as_json=options.get("json", False))
    return True


@quick_command
def quick_checkpoints_vars(where: StoreLocation, args: list[str]) -> bool:
    """``checkpoints RUN [-m METRIC] [--json]`` and ``vars REF [--json]`` without
    Typer or SQLAlchemy."""
    if not args or args[0] not in ("checkpoints", "vars"):
        return False
    if args[0] == "checkpoints":
        parsed = parse_command_line(args[1:], values={"--metric": "metric", "-m": "metric"}, flags={"--json": "json"})
        if parsed is None or len(parsed[1]) != 1:
            return False
        options, (run,) = parsed
        metric = options.get("metric")
        got = quick_read(where, lambda r: (r.checkpoints(run), r.checkpoint_metric(run, metric) if metric is not None else {}))
        if got is None:
            return False
        cks, values = got[0]
        print_checkpoints(run, cks, metric=metric, values=values, as_json=options.get("json", False))
        return True
    parsed = parse_command_line(args[1:], values={"--diff": "diff"}, flags={"--json": "json"})
    if parsed is None or len(parsed[1]) != 1:
        return False
    options, (ref,) = parsed
    if options.get("diff") is not None:
        # A diff by value may compute and record the digests of checkpoints saved before
        # tensor-level storage, and --stats reads tensors: that is the library's job.
        return False
    got = quick_read(where, lambda r: r.variables(ref))
    if got is None:
        return False
    print_variables(got[0], as_json=options.get("json", False))
    return True


@quick_command
def quick_versions(where: StoreLocation, args: list[str]) -> bool:
    """``aliases [NAME] [--json]`` (or its deprecated spelling ``versions``) without Typer or SQLAlchemy."""
    if args[:1] not in (["aliases"], ["versions"]):
        return False
    parsed = parse_command_line(args[1:], flags={"--json": "json"})
    if parsed is None or len(parsed[1]) > 1:
        return False
    options, names = parsed
    name = names[0] if names else None
    got = quick_read(where, lambda r: r.versions(name))
    if got is None:
        return False
    if args[0] == "versions":
        deprecated("versions", "aliases")
    print_versions(got[0], name, as_json=options.get("json", False))
    return True


@quick_command
def quick_exports(where: StoreLocation, args: list[str]) -> bool:
    """``exports [RUN] [--json]`` without Typer or SQLAlchemy."""
    if args[:1] != ["exports"]:
        return False
    parsed = parse_command_line(args[1:], flags={"--json": "json"})
    if parsed is None or len(parsed[1]) > 1:
        return False
    options, runs = parsed
    run = runs[0] if runs else None
    got = quick_read(where, lambda r: r.exports(run))
    if got is None:
        return False
    print_exports(got[0], run, as_json=options.get("json", False))
    return True

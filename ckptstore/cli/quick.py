"""The quick path of the read commands: their command lines parsed with the standard library
and answered from a SQLite store through ``metadata.quick_reader`` (``sqlite3``, read-only),
before Typer, pydantic or SQLAlchemy are imported (see ``app.py`` for why that matters).

Each command module registers its own quick command with ``@quick_command``; it parses its
command line with :func:`parse_command_line` (anything unusual: None, and Typer takes it), reads
through :func:`quick_read` (a store the quick path cannot answer for: None, and the normal path
runs, which also words every error), and prints with the very function its Typer command uses.
"""

from collections.abc import Sequence
from typing import Any, Callable, Optional

from .app import StoreLocation


def parse_command_line(
    args: Sequence[str],
    *,
    values: dict[str, str] = {},  # noqa: B006  (read only) option or alias -> canonical name
    repeatable: frozenset[str] = frozenset(),
    flags: dict[str, str] = {},  # noqa: B006  flag or alias -> canonical name
) -> Optional[tuple[dict[str, Any], list[str]]]:
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


def step_value(text: Optional[str]) -> Optional[int]:
    """A step given on the command line, or None if the normal path must judge it (raises
    ValueError for the caller to fall back)."""
    if text is None:
        return None
    if not text.isdigit() or int(text) > 2**63 - 1:
        raise ValueError(text)
    return int(text)


def quick_read(where: StoreLocation, fetch: Callable[[Any], Any]) -> Optional[tuple[Any]]:
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

"""How the CLI prints: tables, ``key  value`` blocks, JSON, sizes, dates, progress bars, error lines.

Everything goes to stdout except progress bars and error lines (stderr), so that a script can
read a command's output while a person watches its progress. Tables are plain aligned text,
the same for any number of rows on a terminal or in a pipe (:func:`table`); rich is imported
only for a progress bar on a terminal. Nothing here imports SQLAlchemy: the quick paths print
through these same functions, so both paths print the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ..location import redact
from ..records import to_json


def error_line(message: str) -> None:
    """Print ``error: <message>`` on stderr as one line, whatever the message holds, with any
    password or key masked (a message may quote a store URL the user mistyped)."""
    # One line: scripts read stderr line by line.
    text = redact(" ".join(printable(str(message)).split()))
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


# Every control character (C0, DEL, C1): shown as an escape, so that user text (tags, params,
# alias messages) can neither start a new row nor send a terminal escape sequence.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def deprecated(old: str, new: str) -> None:
    """Say on stderr, as one line, that the command ``old`` is an old spelling of ``new``; the
    command still runs (scripts written for it keep working) and stdout is unchanged."""
    sys.stderr.write(f"warning: 'ckptstore {old}' is deprecated; use 'ckptstore {new}'\n")
    sys.stderr.flush()


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``): how every table
    and ``key  value`` block shows user text. The stored text is unchanged; ``--json`` has it
    exactly, JSON-escaped."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _NAMED.get(m[0], f"\\x{ord(m[0]):02x}"), text)


def print_json(data: Any) -> None:
    """Print records (or lists and dicts of them) as JSON with the records' field names.

    A list prints one element per line (``grep``-able, and a line per record is what a reader
    of 1,000 runs scrolls through); anything else is indented. The one-line elements go through
    the json module's C encoder, which ``indent`` turns off: indenting 1,000 runs in pure
    Python took longer than the rest of ``runs list --json``.
    """
    value = to_json(data)
    if isinstance(value, list) and value:
        encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
        sys.stdout.write("[\n" + ",\n".join("  " + encode(item) for item in value) + "\n]\n")
        return
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[int] = (),
    title: str | None = None,
    keep: int = 1,
    wrap: bool = False,
    asked: int = 0,
) -> None:
    """Print rows under column headers, aligned, two spaces apart: one renderer for any number
    of rows, on a terminal or not.

    ``right`` lists the columns (by index) aligned to the right, numbers mostly. Cells are shown
    through :func:`printable`. A cell is never broken or folded, so identifiers (run names,
    REFs, aliases, variable names) copy and paste whole: when the table is wider than the
    terminal (stdout a terminal, or ``$COLUMNS`` set), whole columns are dropped from the right
    instead, the first ``keep`` always kept, and a note on stderr says which (``--json`` has
    all); callers put the columns asked for first. A column that does not fit is dropped, not
    the ones after it that still do. The first ``asked`` columns (what the user asked for) are
    never dropped: when they do not fit on one line they wrap as with ``wrap``. With ``wrap``,
    nothing is dropped: the columns after the first ``keep`` are printed in blocks that fit, one
    under the other, each block repeating the first ``keep`` columns (as pandas wraps a wide frame).
    """
    rows = [[printable(c) for c in r] for r in rows]
    title = printable(title) if title else title
    widths = [len(c) for c in columns]
    for r in rows:
        for i, cell in enumerate(r):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    limit = terminal_width()
    keep = max(1, min(keep, len(columns)))
    blocks = [list(range(len(columns)))]

    def wrapped(upto: int, limit: int) -> list[list[int]]:
        """Columns ``keep..upto`` in blocks that fit ``limit``, each after the first ``keep``."""
        out: list[list[int]] = []
        head = sum(widths[:keep]) + 2 * keep
        block: list[int] = []
        for i in range(keep, upto):
            if block and head + sum(widths[j] + 2 for j in block) + widths[i] > limit:
                out.append([*range(keep), *block])
                block = []
            block.append(i)
        out.append([*range(keep), *block])
        return out

    if limit is not None and sum(widths) + 2 * (len(columns) - 1) > limit:
        asked = len(columns) if wrap else max(keep, min(asked, len(columns)))
        if sum(widths[:asked]) + 2 * (asked - 1) > limit:
            blocks = wrapped(asked, limit)
            shown = list(range(asked))
        else:
            # Every asked-for column, then each other one that still fits, in order.
            shown = list(range(asked))
            used = sum(widths[:asked]) + 2 * (asked - 1)
            for i in range(asked, len(columns)):
                if used + 2 + widths[i] <= limit:
                    shown.append(i)
                    used += 2 + widths[i]
            blocks = [shown]
        dropped = [c or "?" for i, c in enumerate(columns) if i not in shown]
        if dropped:
            sys.stderr.write(f"(not shown for want of width: {', '.join(dropped)})\n")

    def line(cells: Sequence[str], shown: list[int]) -> str:
        parts = [cells[i].rjust(widths[i]) if i in right else cells[i].ljust(widths[i]) for i in shown]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    for n, shown in enumerate(blocks):
        if n:
            out.append("")
        out.append(line(columns, shown))
        out.extend(line(r, shown) for r in rows)
    sys.stdout.write("\n".join(out) + "\n")


def terminal_width() -> int | None:
    """The width tables must fit: ``$COLUMNS`` if set, else the terminal's when stdout is one;
    None (no limit) for a pipe or a file, so scripts always get every column."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def echo(text: str = "") -> None:
    """Print one line on stdout (as ``typer.echo`` does, without importing Typer)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def fields(pairs: Sequence[tuple[str, str]]) -> None:
    """Print ``key  value`` lines, keys aligned (the layout of ``runs show``)."""
    w = max(len(k) for k, _ in pairs)
    sys.stdout.write("".join(f"{k.ljust(w)}  {printable(v)}\n" for k, v in pairs))


def when(dt: datetime | None) -> str:
    """A timestamp in local time to the second, or "" for none."""
    return "" if dt is None else dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def size(n: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ... up to GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def number(v: float) -> str:
    """A metric value in at most 6 significant digits."""
    return f"{v:.6g}"


def param_text(v: Any) -> str:
    """A param value as a cell: text as is, anything else as JSON (``0.01``, ``true``, ``[1,2]``)."""
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def or_dash(v: Any) -> str:
    """``str(v)``, or ``-`` for None."""
    return "-" if v is None else str(v)


def key_values(d: dict[str, Any]) -> str:
    """``k=v k2=v2``: tags on one line."""
    return " ".join(f"{k}={v}" for k, v in d.items())


def shape(dims: Sequence[int | None] | None) -> str:
    """A tensor shape as ``[3,?]``; ``[unknown]`` when even the rank is unknown."""
    if dims is None:
        return "[unknown]"
    return "[" + ",".join("?" if s is None or s < 0 else str(s) for s in dims) + "]"


@contextmanager
def progress(what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing a rich bar on stderr, or None when stdout or
    stderr is not a terminal (no escape codes in logs and pipes)."""
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

"""Dynamic shell completion of run names, aliases and REFs (Typer ``autocompletion`` callbacks).

Completion runs on every Tab, so for a SQLite store it reads through the standard library's
``sqlite3`` (the quick reader), read-only; other stores go through the library; both run the
same SQL (``metadata.reads.completion_names``). Any error
completes nothing: a completion must never print an error into the user's command line.
Install with ``ckptstore --install-completion``.
"""

import os
from typing import Any

import typer

from ..location import default_location


def _names(ctx: typer.Context) -> dict[str, Any] | None:
    # Completion parses the command line without running callbacks, so --store is read from the
    # root context's parameters (or the environment), not from ctx.obj.
    root = ctx.find_root()
    store = root.params.get("store") or os.environ.get("CKPTSTORE_URI") or default_location()
    files = root.params.get("root") or os.environ.get("CKPTSTORE_ROOT") or None
    try:
        from ..metadata import reads
        from ..metadata.quick_reader import Fallback, QuickReader

        quick = QuickReader.open(store)
        if quick is not None:
            with quick:
                try:
                    return reads.completion_names(quick.sql)
                except Fallback:
                    pass
        # Another database, or a store the quick reader does not read: the same reads, through
        # the library (imports SQLAlchemy).
        from .. import open_store
        from ..metadata.queries import sql_of

        with open_store(store, root=files, readonly=True) as s, s.read() as conn:
            return reads.completion_names(sql_of(conn))
    except Exception:
        return None


def complete_runs(ctx: typer.Context, incomplete: str) -> list[str]:
    """Run names starting with what was typed."""
    found = _names(ctx)
    return [n for n in (found or {}).get("runs", []) if n.startswith(incomplete)]


def complete_aliases(ctx: typer.Context, incomplete: str) -> list[str]:
    """Alias names starting with what was typed."""
    found = _names(ctx)
    return [a for a in (found or {}).get("aliases", []) if a.startswith(incomplete)]


def complete_refs(ctx: typer.Context, incomplete: str) -> list[str]:
    """REFs: ``run@`` + a step, ``latest`` or ``best:METRIC``; aliases; ``export:ID``."""
    found = _names(ctx)
    if not found:
        return []
    if "@" in incomplete:
        run = incomplete.rpartition("@")[0]
        tails = ["latest", *(str(s) for s in found.get("steps", {}).get(run, []))]
        tails += [f"best:{m}" for m in found.get("metrics", {}).get(run, [])]
        return [c for c in (f"{run}@{t}" for t in tails) if c.startswith(incomplete)]
    out = [a for a in found.get("aliases", []) if a.startswith(incomplete)]
    out += [f"{r}@" for r in found.get("runs", []) if r.startswith(incomplete)]
    return out


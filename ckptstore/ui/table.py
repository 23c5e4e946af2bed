"""The runs table of the UI's first screen, as JSON: :meth:`Store.runs_table` (the one runs-table
query, also ``ckptstore runs list --columns``) and what the page's column chooser offers.

Column names are fields of the search language (``params.lr``, ``metrics.val_loss.min``,
``tags.team``), so a header is also a valid ``--sort`` and ``--where`` field. Without asked
columns the store's defaults apply: the fields sorted and searched by, the metric each run's
``KeepBest`` ranks, the params that differ. A name no run has is a note (said on the page, next
to the search box); an unknown field word is an error suggesting the closest name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError
from ..records import RunsTable, to_json

if TYPE_CHECKING:
    from ..store import Store

#: A request's bounds: the table answers for at most this many runs and columns.
MAX_RUNS = 1000
MAX_COLUMNS = 40


def runs_table(
    store: Store,
    *,
    where: str | None = None,
    order_by: str | None = None,
    columns: Sequence[str] | None = None,
    status: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``columns`` (as the store writes them), ``defaults`` (whether they are the defaults),
    ``choices`` (the param, metric and tag names of every run that matches, listed or not, to
    choose from), ``runs`` (each run's record with ``values``: column -> value) and ``notes``
    (names no run has, with the closest)."""
    if columns is not None and len(columns) > MAX_COLUMNS:
        raise InvalidOptionError(f"at most {MAX_COLUMNS} columns, got {len(columns)}")
    table = store.runs_table(
        columns=list(columns) if columns else None, status=status, tags=tags, name=name, where=where,
        order_by=order_by or None, limit=MAX_RUNS,
    )
    # Every name a matching run has, not only the listed runs' (at most MAX_RUNS): one query.
    choices = store.field_names(status=status, tags=tags, name=name, where=where)
    return {"columns": table.columns, "defaults": not columns, "choices": choices, "runs": rows_json(table),
            "notes": table.notes}


def rows_json(table: RunsTable) -> list[dict[str, Any]]:
    """Each run's record with its ``values``, as ``runs list --json`` prints them."""
    return [{**to_json(r), "values": to_json(v)} for r, v in zip(table.runs, table.values)]

"""The runs query, written once: ``Store.runs``/``get_run`` and the CLI's quick path both run it.

It is plain SQL text for the driver (``sqlite3``, or psycopg through SQLAlchemy's
``exec_driver_sql``) because the quick path must answer ``ckptstore runs list`` without importing
SQLAlchemy; only the placeholder differs between drivers. Rows become records through
``mappers.run_info``. Correlated subqueries use the (run_id, step, ...) primary keys: O(log n)
per run, where a GROUP BY over metrics would scan every row of every run.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import UnknownRunError
from ..liveness import RUNNING_PROCESSES_SQL, gone_ids, status_sql
from ..records import RunInfo
from .mappers import run_info

GLOB_CHARS = "*?["

RUN_COLUMNS = (
    "r.id, r.name, r.status, r.params, r.retention, r.created_at, r.ended_at, "
    "(SELECT MAX(m.step) FROM metrics m WHERE m.run_id = r.id), "
    "(SELECT MAX(c.step) FROM checkpoints c WHERE c.run_id = r.id), "
    "(SELECT COUNT(*) FROM checkpoints c WHERE c.run_id = r.id)"
)

#: The runs table as readers see it: ``status`` is ``crashed`` for a running run whose process is
#: gone (``ckptstore/liveness.py``), so listing, ``--status`` and search agree on it. Both databases
#: flatten this subquery into the outer query: the created_at index still serves the listing.
_RUNS_AS_READ = "(SELECT id, name, {status} AS status, params, retention, created_at, ended_at FROM runs)"

#: Beyond this many runs, all tags are read at once instead of by an IN list.
_TAGS_IN_MAX = 500


def is_glob(pattern: str | None) -> bool:
    return pattern is not None and any(ch in pattern for ch in GLOB_CHARS)


def runs_sql(
    ph: str,
    *,
    names: Sequence[str] | None = None,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    pattern: str | None = None,
    where_expr: str | None = None,
    order_by: None | str | Sequence[str] = None,
    limit: int | None = None,
    gone: Sequence[int] = (),
) -> tuple[str, list[Any]]:
    """(SQL, parameters) selecting the runs that match, newest first unless ``order_by`` says
    otherwise; ``ph`` is the placeholder (``?``: SQLite, ``%s``: PostgreSQL). ``gone``: ids of
    running runs whose process this host knows to be gone (shown ``crashed``).

    ``where_expr`` and ``order_by`` are the search language of :mod:`.run_search`. A glob
    ``pattern`` is narrowed with LIKE in SQL and decided exactly in :func:`select_runs`, which
    then applies ``limit`` itself.
    """
    if where_expr is None and order_by is None:
        search_where, search_args, order = "", [], "r.created_at DESC, r.id DESC"  # newest first
    else:
        from .run_search import compile_search  # only a search pays for the parser's import

        search = compile_search(where_expr, order_by, dialect="sqlite" if ph == "?" else "postgresql", ph=ph)
        search_where, search_args, order = search.where, search.where_args + search.order_args, search.order
    where: list[str] = []
    args: list[Any] = []
    if names is not None:
        where.append(f"r.name IN ({', '.join([ph] * len(names))})" if names else "1 = 0")
        args.extend(names)
    if status is not None:
        where.append(f"r.status = {ph}")
        args.append(status)
    for k, v in (tags or {}).items():
        where.append(f"EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.id AND t.key = {ph} AND t.value = {ph})")
        args += [k, str(v)]
    if is_glob(pattern):
        # A bracket class has no LIKE form, so the SQL filter stops at the first '['.
        head, bracket, _ = pattern.partition("[")  # type: ignore[union-attr]
        like = head.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = like.replace("*", "%").replace("?", "_") + ("%" if bracket else "")
        where.append(f"r.name LIKE {ph} ESCAPE '\\'")
        args.append(like)
    elif pattern is not None:
        where.append(f"r.name = {ph}")
        args.append(pattern)
    if search_where:
        where.append(search_where)
    runs = _RUNS_AS_READ.format(status=status_sql("sqlite" if ph == "?" else "postgresql", gone))
    sql = f"SELECT {RUN_COLUMNS} FROM {runs} r" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY " + order
    args.extend(search_args)
    if limit is not None and not is_glob(pattern):
        sql += f" LIMIT {ph}"
        args.append(limit)
    return sql, args


def tags_sql(ph: str, run_ids: Sequence[int]) -> tuple[str, list[Any]]:
    """(SQL, parameters) reading the tags of ``run_ids``."""
    if len(run_ids) < _TAGS_IN_MAX:
        return f"SELECT run_id, key, value FROM run_tags WHERE run_id IN ({', '.join([ph] * len(run_ids))})", list(run_ids)
    return "SELECT run_id, key, value FROM run_tags", []


def select_runs(
    execute: Callable[[str, list[Any]], Iterable[Sequence[Any]]],
    ph: str,
    *,
    names: Sequence[str] | None = None,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    pattern: str | None = None,
    where_expr: str | None = None,
    order_by: None | str | Sequence[str] = None,
    limit: int | None = None,
) -> list[RunInfo]:
    """Run the query through ``execute(sql, params)`` (one snapshot) and map the rows."""
    gone = gone_ids(execute(RUNNING_PROCESSES_SQL, []))
    sql, args = runs_sql(
        ph, names=names, status=status, tags=tags, pattern=pattern, where_expr=where_expr, order_by=order_by,
        limit=limit, gone=gone,
    )
    rows = list(execute(sql, args))
    if is_glob(pattern):
        rows = [row for row in rows if fnmatch.fnmatchcase(row[1], pattern)]
        if limit is not None:
            rows = rows[:limit]
    tag_map: dict[int, dict[str, str]] = defaultdict(dict)
    if rows:
        for run_id, key, value in execute(*tags_sql(ph, [row[0] for row in rows])):
            tag_map[run_id][key] = value
    return [run_info(row, tag_map.get(row[0], {})) for row in rows]


def expand_names(
    execute: Callable[[str, list[Any]], Iterable[Sequence[Any]]], ph: str, patterns: Sequence[str], where: str,
) -> list[str]:
    """Run names for ``patterns``: a glob (``lr-*``) stands for the runs it matches, by name (as
    a shell sorts them), and must match one; a plain name is kept as given (whoever reads the
    run says if it is unknown). Each name once, in the order found."""
    out: list[str] = []
    for pattern in patterns:
        if not is_glob(pattern):
            out.append(pattern)
            continue
        found = sorted(r.name for r in select_runs(execute, ph, pattern=pattern))
        if not found:
            raise UnknownRunError(f"no run matches {pattern!r} in {where}")
        out += found
    return list(dict.fromkeys(out))

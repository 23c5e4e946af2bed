"""Multi-resolution summaries of each metric (table ``metric_rollups``), kept at write time.

Why: a chart of a million-step metric needs its peaks, not its million rows. Reading the rows
takes seconds; grouping them in SQL still scans them all on every first request. So each write
of metric values also updates, per metric, one summary per bucket of 16, 256, 4096, ... steps
(level L: ``bucket = step >> 4L``, up to 2**60 steps) and one for the whole series (level 0):
count, last step, and first / lowest / highest / last finite value with its step. A chart then
reads the few thousand buckets no wider than a pixel, plus the raw rows of the two buckets cut
by the window's edges, and a window holding few values is read raw: exact at full detail.

Writes that only append (every step above the metric's last one: training) merge the batch's
summaries into the stored ones in SQL. A batch that rewrites or back-fills steps recomputes the
buckets it touches: level 1 from the raw rows, each level above from the one below.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import Connection

from .engine import placeholder
from .series import metric_series

BITS = 4  #: each level's buckets are 2**BITS times wider than the level below
LEVELS = 15  #: level 15 buckets are 2**60 steps: past that a level adds nothing

_COLS = (
    "run_id, level, key, bucket, n, end_step, first_step, first_value, "
    "min_step, min_value, max_step, max_value, last_step, last_value"
)
_R = "metric_rollups"


@dataclass
class Summary:
    """Column arrays, one element per bucket in step order; no value is step -1 / value NaN."""

    bucket: np.ndarray
    n: np.ndarray
    end: np.ndarray
    fs: np.ndarray
    fv: np.ndarray
    ms: np.ndarray
    mv: np.ndarray
    xs: np.ndarray
    xv: np.ndarray
    ls: np.ndarray
    lv: np.ndarray

    def __len__(self) -> int:
        return len(self.bucket)


def points(steps: np.ndarray, values: np.ndarray) -> Summary:
    """Each value as a bucket of its own (non-finite values count but are no point to draw)."""
    finite = np.isfinite(values)
    s = np.where(finite, steps, -1)
    v = np.where(finite, values, np.nan)
    return Summary(steps, np.ones(len(steps), np.int64), steps, s, v, s, v, s, v, s, v)


def combine(child: Summary, bucket: np.ndarray) -> Summary:
    """Summaries of the groups of consecutive rows of ``child`` with equal ``bucket``."""
    size = len(bucket)
    if size == 0:
        return child
    if size == 1:  # most upper levels of a write: one bucket, the same summary
        return Summary(bucket, child.n, child.end, child.fs, child.fv, child.ms, child.mv, child.xs, child.xv,
                       child.ls, child.lv)
    change = np.empty(size, bool)
    change[0] = True
    np.not_equal(bucket[1:], bucket[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    counts = np.diff(starts, append=size)
    idx = np.arange(size)

    def pick(i: np.ndarray, steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Index ``size`` (no finite value in the group): step -1, NaN.
        none = i >= size
        at = np.minimum(i, size - 1)
        return np.where(none, -1, steps[at]), np.where(none, np.nan, values[at])

    first = np.minimum.reduceat(np.where(np.isnan(child.fv), size, idx), starts)
    last = np.maximum.reduceat(np.where(np.isnan(child.lv), -1, idx), starts)
    last = np.where(last < 0, size, last)
    low_v = np.where(np.isnan(child.mv), np.inf, child.mv)
    low = np.minimum.reduceat(low_v, starts)
    # The first (earliest) row holding the group's minimum; none when all were NaN (inf).
    at_low = np.minimum.reduceat(np.where(low_v == np.repeat(low, counts), idx, size), starts)
    at_low = np.where(np.isinf(low), size, at_low)
    high_v = np.where(np.isnan(child.xv), -np.inf, child.xv)
    high = np.maximum.reduceat(high_v, starts)
    at_high = np.minimum.reduceat(np.where(high_v == np.repeat(high, counts), idx, size), starts)
    at_high = np.where(np.isinf(high), size, at_high)
    fs, fv = pick(first, child.fs, child.fv)
    ms, mv = pick(at_low, child.ms, child.mv)
    xs, xv = pick(at_high, child.xs, child.xv)
    ls, lv = pick(last, child.ls, child.lv)
    return Summary(
        bucket[starts], np.add.reduceat(child.n, starts), np.maximum.reduceat(child.end, starts),
        fs, fv, ms, mv, xs, xv, ls, lv,
    )


def _rows(rid: int, level: int, key: str, s: Summary) -> list[tuple[Any, ...]]:
    def steps(a: np.ndarray) -> list[int | None]:
        return [None if x < 0 else x for x in a.tolist()]

    def values(a: np.ndarray) -> list[float | None]:
        return [None if x != x else x for x in a.tolist()]

    return list(zip(
        repeat(rid), repeat(level), repeat(key),
        s.bucket.tolist(), s.n.tolist(), s.end.tolist(), steps(s.fs), values(s.fv), steps(s.ms), values(s.mv),
        steps(s.xs), values(s.xv), steps(s.ls), values(s.lv),
    ))


def _levels(rid: int, key: str, s: Summary, bucket: np.ndarray, first_level: int = 1) -> list[tuple[Any, ...]]:
    """Rows of every level from ``first_level`` up, and level 0, from ``s`` (one level below)."""
    out: list[tuple[Any, ...]] = []
    for level in range(first_level, LEVELS + 1):
        bucket = bucket >> BITS
        s = combine(s, bucket)
        bucket = s.bucket
        out += _rows(rid, level, key, s)
    out += _rows(rid, 0, key, combine(s, np.zeros(len(s), np.int64)))
    return out


def _merge_sql(ph: str) -> str:
    """Insert a bucket's summary, or merge it into the stored one (steps after the stored ones)."""
    old, new = _R, "excluded"

    def swap(cond: str, step: str, value: str) -> str:
        return (f"{step} = CASE WHEN {cond} THEN {new}.{step} ELSE {old}.{step} END, "
                f"{value} = CASE WHEN {cond} THEN {new}.{value} ELSE {old}.{value} END")

    return (
        f"INSERT INTO {_R} ({_COLS}) VALUES ({', '.join([ph] * 14)}) "
        "ON CONFLICT (run_id, level, key, bucket) DO UPDATE SET "
        f"n = {old}.n + {new}.n, "
        f"end_step = CASE WHEN {new}.end_step > {old}.end_step THEN {new}.end_step ELSE {old}.end_step END, "
        + swap(f"{old}.first_step IS NULL", "first_step", "first_value") + ", "
        + swap(f"{old}.min_value IS NULL OR {new}.min_value < {old}.min_value", "min_step", "min_value") + ", "
        + swap(f"{old}.max_value IS NULL OR {new}.max_value > {old}.max_value", "max_step", "max_value") + ", "
        + swap(f"{new}.last_step IS NOT NULL", "last_step", "last_value")
    )


def update(conn: Connection, rows: Sequence[tuple[int, int, str, float | None, float]]) -> None:
    """Bring the summaries up to date with ``rows`` (run, step, key, value, wall time), which the
    same transaction has just written to ``metrics`` (a repeated (step, key): the last wins)."""
    if not rows:
        return
    # Column arrays, then one slice per (run, metric): no Python work per value beyond this.
    run_ids = {r[0] for r in rows}
    if len(run_ids) > 1:  # one run handle writes one run's rows: this is for other callers
        for rid in run_ids:
            update(conn, [r for r in rows if r[0] == rid])
        return
    (rid,) = run_ids
    # One list comprehension per column: several times faster than zip(*rows) here.
    key_col, step_col, value_col = [r[2] for r in rows], [r[1] for r in rows], [r[3] for r in rows]
    groups = {k: i for i, k in enumerate(dict.fromkeys(key_col))}
    ids = np.array([groups[k] for k in key_col], dtype=np.int64)
    order = np.argsort(ids, kind="stable")  # stable: within a metric, in the order logged
    all_steps = np.fromiter(step_col, dtype=np.int64, count=len(rows))[order]
    all_values = np.array(value_col, dtype=np.float64)[order]  # None (NaN) -> NaN
    bounds = np.searchsorted(ids[order], np.arange(len(groups) + 1))
    ph = placeholder(conn.dialect)
    ends: dict[str, int] = dict(conn.exec_driver_sql(f"SELECT key, end_step FROM {_R} WHERE run_id = {ph} AND level = 0", (rid,)).all())
    merged: list[tuple[Any, ...]] = []
    for key, g in groups.items():
        steps = all_steps[bounds[g] : bounds[g + 1]]
        values = all_values[bounds[g] : bounds[g + 1]]
        if len(steps) > 1 and not (steps[1:] > steps[:-1]).all():
            order = np.argsort(steps, kind="stable")
            steps, values = steps[order], values[order]
            keep = np.r_[steps[1:] != steps[:-1], True]  # the last of a repeated step wins
            steps, values = steps[keep], values[keep]
        end = ends.get(key)
        if end is not None and int(steps[0]) <= end:
            _recompute(conn, rid, key, int(steps[0]), int(steps[-1]))
        else:
            merged += _levels(rid, key, points(steps, values), steps)
    if merged:
        conn.exec_driver_sql(_merge_sql(ph), merged)


def _read(conn: Connection, rid: int, level: int, key: str, lo: int, hi: int) -> Summary:
    ph = placeholder(conn.dialect)
    cur = conn.connection.cursor()
    try:
        cur.execute(
            f"SELECT bucket, n, end_step, first_step, first_value, min_step, min_value, max_step, max_value, "
            f"last_step, last_value FROM {_R} WHERE run_id = {ph} AND level = {ph} AND key = {ph} "
            f"AND bucket >= {ph} AND bucket <= {ph} ORDER BY bucket",
            (rid, level, key, lo, hi),
        )
        rows = cur.fetchall()
    finally:
        cur.close()
    cols = list(zip(*rows)) if rows else [()] * 11
    ints = [np.array([-1 if x is None else x for x in c], dtype=np.int64) for c in cols]
    floats = [np.array(c, dtype=np.float64) for c in cols]  # None -> NaN
    return Summary(ints[0], ints[1], ints[2], ints[3], floats[4], ints[5], floats[6], ints[7], floats[8],
                   ints[9], floats[10])


def _recompute(conn: Connection, rid: int, key: str, lo: int, hi: int) -> None:
    """Rebuild every bucket of ``key`` that holds a step in [lo, hi] from what is stored."""
    ph = placeholder(conn.dialect)
    base = (lo >> BITS) << BITS
    steps, values = metric_series(conn, rid, key, start=base, stop=((hi >> BITS) << BITS) + (1 << BITS) - 1)
    s, bucket = points(steps, values), steps
    for level in range(1, LEVELS + 1):
        shift = BITS * level
        b_lo, b_hi = lo >> shift, hi >> shift
        if level > 1:  # the children of the touched buckets, as stored (or just rebuilt)
            s = _read(conn, rid, level - 1, key, b_lo << BITS, (b_hi << BITS) + (1 << BITS) - 1)
            bucket = s.bucket
        s = combine(s, bucket >> BITS)
        conn.exec_driver_sql(
            f"DELETE FROM {_R} WHERE run_id = {ph} AND level = {ph} AND key = {ph} AND bucket >= {ph} AND bucket <= {ph}",
            (rid, level, key, b_lo, b_hi),
        )
        if len(s):
            conn.exec_driver_sql(f"INSERT INTO {_R} ({_COLS}) VALUES ({', '.join([ph] * 14)})", _rows(rid, level, key, s))
    top = _read(conn, rid, LEVELS, key, 0, 1 << 62)
    conn.exec_driver_sql(f"DELETE FROM {_R} WHERE run_id = {ph} AND level = 0 AND key = {ph}", (rid, key))
    if len(top):
        conn.exec_driver_sql(f"INSERT INTO {_R} ({_COLS}) VALUES ({', '.join([ph] * 14)})",
                             _rows(rid, 0, key, combine(top, np.zeros(len(top), np.int64))))


def rebuild(conn: Connection, rid: int, key: str) -> None:
    """Summaries of ``key`` from all its stored values (the migration that adds the table; a
    rewound run, whose later values were moved to history)."""
    steps, values = metric_series(conn, rid, key)
    ph = placeholder(conn.dialect)
    conn.exec_driver_sql(f"DELETE FROM {_R} WHERE run_id = {ph} AND key = {ph}", (rid, key))
    if len(steps):
        conn.exec_driver_sql(f"INSERT INTO {_R} ({_COLS}) VALUES ({', '.join([ph] * 14)})",
                             _levels(rid, key, points(steps, values), steps))


# --------------------------------------------------------------------------- reading


def keys(conn: Connection, rid: int) -> list[str]:
    """The run's metric names, sorted: its level-0 rows, one per metric."""
    ph = placeholder(conn.dialect)
    return [k for (k,) in conn.exec_driver_sql(
        f"SELECT key FROM {_R} WHERE run_id = {ph} AND level = 0 ORDER BY key", (rid,)
    )]


class ChartPoints(NamedTuple):
    """What a chart of one metric needs (see :func:`chart_points`)."""

    total: int  #: values the metric has (NaN included), whatever the window
    steps: np.ndarray  #: int64, increasing
    values: np.ndarray  #: float64, finite
    at: list[float | None]  #: the value at or last before each asked step (None: none, or NaN)


def _finite(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(values)
    return (steps, values) if ok.all() else (steps[ok], values[ok])


def chart_points(
    conn: Connection, rid: int, key: str, width: int, *, start: int | None = None,
    stop: int | None = None, at: Iterable[int] = (),
) -> ChartPoints:
    """A superset of the points a min/max downsampling to ``width`` pixels over [start, stop]
    keeps: every value in the window when it holds at most ``2 * width + 2``; otherwise the
    lowest and highest point of each bucket no wider than a pixel, the first and last point of
    those buckets, and every value in the parts of the two edge buckets inside the window.
    ``at``: checkpoint steps."""
    ph = placeholder(conn.dialect)
    values_at = [_value_at(conn, rid, key, step, ph) for step in at]
    empty = np.empty(0, np.int64), np.empty(0, np.float64)
    row = conn.exec_driver_sql(
        f"SELECT n, first_step, last_step FROM {_R} WHERE run_id = {ph} AND level = 0 AND key = {ph}", (rid, key)
    ).first()
    if row is None:
        return ChartPoints(0, *empty, values_at)
    total, first, last = row
    if first is None:
        return ChartPoints(total, *empty, values_at)
    lo = first if start is None else max(start, first)
    hi = last if stop is None else min(stop, last)
    if lo > hi:
        return ChartPoints(total, *empty, values_at)
    per_pixel = (hi - lo + 1) // width
    level = 0
    while level < LEVELS and 1 << (BITS * (level + 1)) <= per_pixel:
        level += 1
    if level == 0:  # buckets of 16 steps would be wider than a pixel: at most 16 values a pixel
        return ChartPoints(total, *_finite(*metric_series(conn, rid, key, start=lo, stop=hi)), values_at)
    shift = BITS * level
    # Buckets entirely inside [lo, hi]; the cut ones at either edge are read raw.
    b_lo, b_hi = -(-lo >> shift), ((hi + 1) >> shift) - 1
    where = f"FROM {_R} WHERE run_id = {ph} AND level = {ph} AND key = {ph} AND bucket >= {ph} AND bucket <= {ph}"
    args = (rid, level, key, b_lo, b_hi)
    if b_lo > b_hi:
        return ChartPoints(total, *_finite(*metric_series(conn, rid, key, start=lo, stop=hi)), values_at)
    # Each bucket's count, lowest and highest point (a bucket with only NaN gives step -1:
    # dropped); then the first and last point of the inner buckets, which a chart keeps.
    # Two statements on the driver's cursor: each round trip counts on PostgreSQL.
    cur = conn.connection.cursor()
    try:
        cur.execute(f"SELECT n, COALESCE(min_step, -1), COALESCE(min_value, 0), COALESCE(max_step, -1), "
                    f"COALESCE(max_value, 0) {where}", args)
        rows = cur.fetchall()
        cur.execute(
            f"SELECT * FROM (SELECT first_step, first_value {where} AND first_step IS NOT NULL ORDER BY bucket LIMIT 1) a "
            f"UNION ALL SELECT * FROM (SELECT last_step, last_value {where} AND last_step IS NOT NULL "
            f"ORDER BY bucket DESC LIMIT 1) b", args + args,
        )
        ends = cur.fetchall()
    finally:
        cur.close()
    if not rows:
        return ChartPoints(total, *_finite(*metric_series(conn, rid, key, start=lo, stop=hi)), values_at)
    head = metric_series(conn, rid, key, start=lo, stop=(b_lo << shift) - 1) if lo < b_lo << shift else empty
    tail = metric_series(conn, rid, key, start=(b_hi + 1) << shift, stop=hi) if (b_hi + 1) << shift <= hi else empty
    if sum(r[0] for r in rows) + len(head[0]) + len(tail[0]) <= 2 * width + 2:
        return ChartPoints(total, *_finite(*metric_series(conn, rid, key, start=lo, stop=hi)), values_at)
    count = len(rows)
    ms = np.fromiter((r[1] for r in rows), np.int64, count)
    xs = np.fromiter((r[3] for r in rows), np.int64, count)
    steps = np.concatenate([head[0], ms, xs, [e[0] for e in ends], tail[0]]).astype(np.int64)
    values = np.concatenate([
        head[1], np.fromiter((r[2] for r in rows), np.float64, count),
        np.fromiter((r[4] for r in rows), np.float64, count), [e[1] for e in ends], tail[1],
    ]).astype(np.float64)
    ok = steps >= 0
    steps, values = _finite(steps[ok], values[ok])
    # Sorted and unique: a bucket's lowest point may also be the first point, say. (Not
    # np.unique: its first call imports numpy.ma, a tenth of a second of a cold request.)
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    first = np.r_[True, steps[1:] != steps[:-1]]
    return ChartPoints(total, steps[first], values[first], values_at)


def _value_at(conn: Connection, rid: int, key: str, step: int, ph: str) -> float | None:
    row = conn.exec_driver_sql(
        f"SELECT value FROM metrics WHERE run_id = {ph} AND key = {ph} AND step <= {ph} ORDER BY step DESC LIMIT 1",
        (rid, key, step),
    ).first()
    if row is None or row[0] is None:
        return None
    v = float(row[0])
    return v if np.isfinite(v) else None

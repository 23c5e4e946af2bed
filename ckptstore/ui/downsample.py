"""Min/max downsampling of a metric series for drawing: pure numpy, no store, no web.

A chart ``width`` pixels wide cannot show more than a couple of points per pixel column. The
steps in view are cut into ``width`` equal buckets and each bucket keeps its lowest and its
highest point (in step order), plus the first and last point of the series. The drawn line
then touches every peak and every trough a full-resolution line would: a spike of one step in
a million stays visible, which averaging or taking every n-th point would lose.
"""

from __future__ import annotations

import numpy as np

__all__ = ["minmax"]


def _distinct(a: np.ndarray) -> np.ndarray:
    """The sorted array ``a`` without repeats. Not ``np.unique``: its first call imports
    ``numpy.ma``, an import that would land on a server's first chart."""
    return a[np.r_[True, a[1:] != a[:-1]]] if len(a) else a


def minmax(
    steps: np.ndarray,
    values: np.ndarray,
    width: int,
    *,
    start: int | None = None,
    stop: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The points of (``steps``, ``values``) within [start, stop] to draw ``width`` pixels wide.

    ``steps`` must be increasing. Non-finite values (NaN, inf) are left out: a chart has no
    place for them. At most ``2 * width + 2`` points come back, in step order; a series that
    already fits comes back whole.

    >>> minmax(np.arange(10), np.arange(10.0) % 3, 2)      # doctest: +NORMALIZE_WHITESPACE
    (array([0, 2, 5, 6, 9]), array([0., 2., 2., 0., 0.]))
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    lo = 0 if start is None else int(np.searchsorted(steps, start, side="left"))
    hi = len(steps) if stop is None else int(np.searchsorted(steps, stop, side="right"))
    x, y = steps[lo:hi], values[lo:hi]
    finite = np.isfinite(y)
    if not finite.all():
        x, y = x[finite], y[finite]
    n = len(x)
    if n <= 2 * width + 2:
        return x, y
    # Buckets by step (not by index): gaps in the steps stay gaps. Their edges are found by
    # binary search, so the cost per point is only the min/max scans below.
    x0, span = int(x[0]), int(x[-1]) - int(x[0]) + 1
    edges = x0 + (np.arange(width, dtype=np.float64) * (span / width)).astype(np.int64)
    starts = _distinct(np.searchsorted(x, edges, side="left"))
    starts = starts[starts < n]
    counts = np.diff(np.r_[starts, n])
    if len(counts) > 1 and (counts[:-1] == counts[0]).all():
        # Evenly filled buckets (the usual dense steps): a 2-D view, one argmin per row.
        length = int(counts[0])
        whole = len(counts) - 1
        grid = y[: whole * length].reshape(whole, length)
        base = np.arange(whole) * length
        tail = slice(whole * length, n)
        at_low = np.r_[base + grid.argmin(axis=1), tail.start + y[tail].argmin()]
        at_high = np.r_[base + grid.argmax(axis=1), tail.start + y[tail].argmax()]
    else:
        index = np.arange(n)
        # First index of each bucket's minimum and maximum, without a Python loop over buckets.
        low = np.repeat(np.minimum.reduceat(y, starts), counts)
        high = np.repeat(np.maximum.reduceat(y, starts), counts)
        at_low = np.minimum.reduceat(np.where(y == low, index, n), starts)
        at_high = np.minimum.reduceat(np.where(y == high, index, n), starts)
    keep = _distinct(np.sort(np.concatenate([at_low, at_high, [0, n - 1]])))
    return x[keep], y[keep]

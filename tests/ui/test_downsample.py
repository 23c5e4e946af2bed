"""Min/max downsampling for charts (ckptstore.ui.downsample): pure numpy, no store."""

from __future__ import annotations

import numpy as np
import pytest

from ckptstore.ui.downsample import minmax


def test_a_million_steps_keep_every_peak_and_trough_in_few_points():
    steps = np.arange(1_000_000, dtype=np.int64)
    values = np.sin(steps / 5000.0)
    values[123_457] = 50.0   # a one-step spike
    values[876_543] = -40.0  # a one-step dip
    xs, ys = minmax(steps, values, 800)
    assert len(xs) <= 2 * 800 + 2
    assert 50.0 in ys and -40.0 in ys
    assert xs[ys.argmax()] == 123_457 and xs[ys.argmin()] == 876_543
    assert xs[0] == 0 and xs[-1] == 999_999
    assert np.all(np.diff(xs) > 0)
    # Every point drawn is a real point of the series.
    assert np.array_equal(values[xs], ys)


def test_each_bucket_keeps_its_own_min_and_max():
    steps = np.arange(1000)
    values = np.random.default_rng(1).normal(size=1000)
    xs, ys = minmax(steps, values, 10)
    for b in range(10):
        bucket = values[b * 100:(b + 1) * 100]
        in_bucket = ys[(xs >= b * 100) & (xs < (b + 1) * 100)]
        assert in_bucket.max() == bucket.max() and in_bucket.min() == bucket.min()


def test_a_short_series_comes_back_whole():
    steps, values = np.arange(5), np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    xs, ys = minmax(steps, values, 100)
    assert xs.tolist() == [0, 1, 2, 3, 4] and ys.tolist() == values.tolist()


def test_start_and_stop_select_the_window_inclusive():
    steps = np.arange(0, 1000, 10)
    xs, ys = minmax(steps, steps * 1.0, 500, start=100, stop=200)
    assert xs.tolist() == list(range(100, 201, 10))
    assert minmax(steps, steps * 1.0, 500, start=2000)[0].tolist() == []


def test_non_finite_values_are_left_out():
    steps = np.arange(6)
    values = np.array([1.0, np.nan, np.inf, -np.inf, 2.0, 3.0])
    xs, ys = minmax(steps, values, 100)
    assert xs.tolist() == [0, 4, 5] and ys.tolist() == [1.0, 2.0, 3.0]


def test_buckets_follow_steps_not_indices():
    # Sparse steps: 1,000 points bunched at the start and one far away; the far one stays.
    steps = np.r_[np.arange(1000), [10**9]]
    values = np.r_[np.zeros(1000), [7.0]]
    xs, ys = minmax(steps, values, 50)
    assert xs[-1] == 10**9 and ys[-1] == 7.0
    assert len(xs) <= 102


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="width"):
        minmax(np.arange(3), np.arange(3.0), 0)


def test_empty_series():
    xs, ys = minmax(np.empty(0, np.int64), np.empty(0), 10)
    assert len(xs) == 0 and len(ys) == 0


def reference(steps: np.ndarray, values: np.ndarray, width: int) -> set[int]:
    """Per bucket (by step, as minmax cuts them), the first index of its min and of its max."""
    x0, span = int(steps[0]), int(steps[-1]) - int(steps[0]) + 1
    edges = x0 + (np.arange(width, dtype=np.float64) * (span / width)).astype(np.int64)
    keep = {0, len(steps) - 1}
    bounds = list(np.searchsorted(steps, edges)) + [len(steps)]
    for lo, hi in zip(bounds, bounds[1:]):
        if hi > lo:
            keep.add(lo + int(np.argmin(values[lo:hi])))
            keep.add(lo + int(np.argmax(values[lo:hi])))
    return keep


@pytest.mark.parametrize("steps", [
    np.arange(10_000),                                   # dense: the 2-D fast path
    np.arange(0, 30_000, 3),                             # even stride
    np.r_[np.arange(5000), np.arange(10**6, 10**6 + 5000)],  # two far-apart blocks
    np.cumsum(np.random.default_rng(3).integers(1, 50, 10_000)),  # irregular
])
def test_matches_a_plain_loop_over_buckets(steps):
    values = np.random.default_rng(7).normal(size=len(steps)).round(1)  # ties: first index wins
    for width in (1, 7, 100, 1000):
        xs, _ = minmax(steps, values, width)
        assert set(np.searchsorted(steps, xs).tolist()) == reference(steps, values, width), width

"""Metric summaries for charts (ckptstore.metadata.rollups), on SQLite and PostgreSQL.

The reference is the pure-numpy downsampling (``ckptstore.ui.downsample.minmax``) over every
stored value: what the server drew before the summaries existed. Where pixel columns fall on
bucket edges the chart must be exactly the reference; elsewhere it keeps every peak, the first
and last point, and only real points. The stored summaries, however written (appends, rewrites,
back-fills, NaN), must equal those rebuilt from scratch.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from ckptstore.metadata import rollups
from ckptstore.metadata import versions as db
from ckptstore.metadata.engine import make_engine
from ckptstore.ui.downsample import minmax

N = 1 << 14


def _values(n: int = N, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).normal(size=n)
    values[n // 3] = 50.0  # a one-step spike
    values[(2 * n) // 3] = -40.0  # a one-step dip
    values[5::997] = np.nan
    return values


def _log(store, name: str, steps, values, *, flush_every: int = 3000) -> None:
    with store.start_run(name, flush_every=flush_every) as run:
        for step, value in zip(steps, values):
            run.log(int(step), loss=float(value), other=1.0)


def _chart(store, run: str, width: int, start=None, stop=None):
    c = store.metric_chart(run, "loss", width, start=start, stop=stop)
    return minmax(c.steps, c.values, width, start=start, stop=stop)


def _reference(store, run: str, width: int, start=None, stop=None):
    steps, values = store.metric_series(run, "loss")
    return minmax(steps, values, width, start=start, stop=stop)


def _stored(store, rid: int) -> list:
    with store.db.read() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT level, key, bucket, n, end_step, first_step, first_value, min_step, min_value, max_step, "
            "max_value, last_step, last_value FROM metric_rollups WHERE run_id = :r ORDER BY level, key, bucket"
        ), {"r": rid})]


def _rebuilt(store, rid: int) -> list:
    with store.db.write() as conn:
        for key in ("loss", "other"):
            rollups.rebuild(conn, rid, key)
    return _stored(store, rid)


def _rid(store, name: str) -> int:
    with store.db.read() as conn:
        return conn.execute(text("SELECT id FROM runs WHERE name = :n"), {"n": name}).scalar_one()


@pytest.mark.parametrize("width,start,stop", [
    (16, None, None),            # pixel columns of 1,024 steps: four buckets of 256 each
    (8, 4096, 4096 + 8192 - 1),  # a zoom whose columns fall on bucket edges as well
    (40, 1000, 1100),            # few values in the window: every one of them, exactly
    (5, 2000, 2014),             # narrower than a bucket of 16 steps: read raw
])
def test_the_chart_equals_the_numpy_reference_on_aligned_pixels(store, width, start, stop):
    _log(store, "r", range(N), _values())
    xs, ys = _chart(store, "r", width, start, stop)
    rx, ry = _reference(store, "r", width, start, stop)
    assert np.array_equal(xs, rx) and np.array_equal(ys, ry)


@pytest.mark.parametrize("width,start,stop", [(1000, None, None), (333, None, None), (77, 123, 15_001), (3, 7, None)])
def test_any_window_keeps_the_peaks_the_ends_and_only_real_points(store, width, start, stop):
    values = _values()
    _log(store, "r", range(N), values)
    xs, ys = _chart(store, "r", width, start, stop)
    rx, ry = _reference(store, "r", width, start, stop)
    assert len(xs) <= 2 * width + 2 and np.all(np.diff(xs) > 0)
    assert np.array_equal(values[xs], ys)  # real points only, none of them NaN
    assert (xs[0], xs[-1]) == (rx[0], rx[-1])
    assert ys.max() == ry.max() and ys.min() == ry.min()
    if start is None:
        assert 50.0 in ys and -40.0 in ys


def test_sparse_steps_and_a_series_that_fits_come_back_whole(store):
    steps = np.arange(0, 50_000 * 37, 37)[:300]
    _log(store, "sparse", steps, np.arange(300.0))
    xs, ys = _chart(store, "sparse", 1000)
    assert np.array_equal(xs, steps) and np.array_equal(ys, np.arange(300.0))
    c = store.metric_chart("sparse", "loss", 10, at=[0, 36, 37, 10**12])
    assert c.total == 300 and c.at == [0.0, 0.0, 1.0, 299.0]
    assert store.metric_chart("sparse", "nope", 10).total == 0


def test_appends_rewrites_and_backfills_keep_the_summaries_exact(store):
    values = _values(5000, seed=3)
    with store.start_run("w") as run:
        for step in range(0, 3000):
            run.log(step, loss=float(values[step]), other=float(step))
            if step % 777 == 0:
                run.flush()  # flushes cut buckets anywhere: merged in SQL
        run.flush()
        rid = _rid(store, "w")
        assert _stored(store, rid) == _rebuilt(store, rid)
        # Rewrite a stretch (the old minimum of its buckets goes away), log a step twice in one
        # batch, back-fill below the first step, go on past the end: recomputed.
        for step in range(1000, 1500):
            run.log(step, loss=0.5)
        run.log(2999, loss=-99.0)
        run.log(2999, loss=7.0)
        run.flush()
        run.log(1234, loss=float("nan"))
        run.log(3500, loss=1.0)
        run.flush()
    assert _stored(store, rid) == _rebuilt(store, rid)
    steps, series = store.metric_series("w", "loss")
    assert series[steps == 2999][0] == 7.0
    xs, ys = _chart(store, "w", 50)
    rx, ry = _reference(store, "w", 50)
    assert -99.0 not in ys and ys.max() == ry.max() and ys.min() == ry.min()


def test_metric_names_come_from_the_summaries_and_go_with_the_run(store):
    with store.start_run("k") as run:
        run.log(0, b=1.0, a=float("nan"))
        run.log(1, c=2.0)
    assert store.metric_keys("k") == ["a", "b", "c"]
    assert store.metric_chart("k", "a", 10).total == 1  # NaN counts, draws nothing
    rid = _rid(store, "k")
    store.delete_run("k")
    assert _stored(store, rid) == []


def test_an_upgraded_store_gets_the_summaries_of_its_old_metrics(tmp_path):
    import ckptstore

    loc = tmp_path / "s"
    with ckptstore.open_store(loc) as s:
        _log(s, "old", range(3000), _values(3000))
        before = _stored(s, _rid(s, "old"))
    engine = make_engine(f"sqlite:///{loc / 'store.db'}")
    try:
        db.run_downgrade(engine, "0001")  # the store as the first release left it
    finally:
        engine.dispose()
    with ckptstore.open_store(loc) as s:
        assert s.revision == db.HEAD_REVISION
        assert _stored(s, _rid(s, "old")) == before
        assert s.metric_keys("old") == ["loss", "other"]

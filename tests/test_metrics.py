"""Step metrics: buffered ``run.log``, the value policy, and the queries that read metrics back.

``store.steps`` / ``store.at_step`` read the database only and never flush a run's buffer, so
they show exactly what has reached the database at that moment.
"""

from __future__ import annotations

import math
import textwrap
import time

import numpy as np
import pytest

import ckptstore
from ckptstore.errors import MetricValueError
from tests.helpers.processes import ROOT, child_env, run_py, with_deadline


def stored(store, run: str) -> int:
    """How many metric values of ``run`` are in the database (not in a buffer)."""
    return sum(len(s.metrics) for s in store.steps(run))


# --------------------------------------------------------------------------- buffering


def test_log_buffers_until_flush_every_values(store):
    run = store.start_run("size", flush_every=10, flush_seconds=3600)
    run.log(1, a=1, b=2, c=3, d=4)
    run.log(2, a=1, b=2, c=3, d=4)
    assert stored(store, "size") == 0
    run.log(3, a=1, b=2, c=3, d=4)  # 12 >= 10: one batch
    assert stored(store, "size") == 12
    run.log(4, a=1)
    assert stored(store, "size") == 12
    run.finish()
    assert stored(store, "size") == 13


def test_log_flushes_on_the_first_call_after_flush_seconds(store):
    run = store.start_run("time", flush_every=1_000_000, flush_seconds=0.3)
    run.log(1, loss=1.0)
    assert stored(store, "time") == 0
    time.sleep(0.35)
    run.log(2, loss=0.5)
    assert stored(store, "time") == 2
    run.finish()


def test_explicit_flush_returns_the_number_written(store):
    run = store.start_run("f", flush_every=1_000_000, flush_seconds=3600)
    for step in range(50):
        run.log(step, x=step, y=-step)
    assert run.flush() == 100
    assert run.flush() == 0
    assert stored(store, "f") == 100
    run.finish()


def test_closing_the_store_flushes_its_runs(store_uri):
    uri, root = store_uri
    s = ckptstore.open_store(uri, root=root)
    run = s.start_run("closing", flush_every=1_000_000, flush_seconds=3600)
    run.log(1, loss=1.0)
    s.close()
    with ckptstore.open_store(uri, root=root) as again:
        assert again.steps("closing")[0].metrics == {"loss": 1.0}
        # Never finished, but nothing lost; no handle of a closed store can log again (issue 22).
        assert again.get_run("closing").status == "finished"


_DROPPED_HANDLES = textwrap.dedent(
    """
    import gc, sys, ckptstore
    store = ckptstore.open_store(sys.argv[1], root=sys.argv[2])

    def train():  # returns without finishing its run: the handle is garbage at once
        run = store.start_run("dropped", flush_every=10**9, flush_seconds=10**9)
        for step in range(100):
            run.log(step, loss=float(step))

    train()
    store.run("dropped").log(100, loss=100.0)  # a one-liner handle
    gc.collect()
    if sys.argv[3] == "close":
        store.close()
    """
)


@pytest.mark.parametrize("how", ["close", pytest.param("exit", marks=pytest.mark.slow)])
def test_a_dropped_run_handle_loses_no_buffered_value(store_uri, how):
    uri, root = store_uri
    out = run_py(_DROPPED_HANDLES, uri, str(root), how)
    assert out.returncode == 0, out.stderr
    with ckptstore.open_store(uri, root=root) as s:
        assert [st.step for st in s.steps("dropped")] == list(range(101))
        assert s.steps("dropped", start=100)[0].metrics == {"loss": 100.0}


def test_an_exception_in_the_with_block_loses_no_buffered_value(store):
    with pytest.raises(ZeroDivisionError):
        with store.start_run("exc", flush_every=1_000_000, flush_seconds=3600) as run:
            for step in range(1000):
                run.log(step, loss=1.0, acc=0.5)
            raise ZeroDivisionError
    assert stored(store, "exc") == 2000
    assert store.get_run("exc").status == "failed"


_EXIT_WITHOUT_CLOSE = textwrap.dedent(
    """
    import sys, ckptstore
    store = ckptstore.open_store(sys.argv[1], root=sys.argv[2])
    run = store.start_run("atexit", flush_every=10**9, flush_seconds=10**9)
    for step in range(5000):
        run.log(step, loss=1.0 / (step + 1), acc=0.1)
    if sys.argv[3] == "raise":
        raise RuntimeError("training crashed outside any with-block")
    if sys.argv[3] == "exit":
        sys.exit(3)
    # "end": the script just ends, run and store left open
    """
)


# One fresh interpreter each (~1.5 s): the fast tier keeps one case of each test.
@pytest.mark.parametrize("how,code", [("end", 0), pytest.param("exit", 3, marks=pytest.mark.slow), pytest.param("raise", 1, marks=pytest.mark.slow)])
def test_buffered_values_reach_the_database_at_interpreter_exit(store_uri, how, code):
    uri, root = store_uri
    out = run_py(_EXIT_WITHOUT_CLOSE, uri, str(root), how)
    assert out.returncode == code, out.stderr
    with ckptstore.open_store(uri, root=root) as s:
        steps = s.steps("atexit")
        assert len(steps) == 5000
        assert steps[-1].metrics == {"acc": 0.1, "loss": 1.0 / 5000}
        # Ended without finish(): failed by an uncaught exception, else finished (issue 22).
        assert s.get_run("atexit").status == ("failed" if how == "raise" else "finished")


# --------------------------------------------------------------------------- value policy


def test_nan_and_infinities_are_stored_and_read_back(store):
    with store.start_run("nonfinite") as run:
        run.log(1, loss=float("nan"), up=float("inf"), down=float("-inf"), ok=1.5, big=1e308)
        run.log(2, loss=np.float32("nan"))
    got = store.steps("nonfinite")
    assert math.isnan(got[0].metrics["loss"])
    assert got[0].metrics["up"] == math.inf
    assert got[0].metrics["down"] == -math.inf
    assert got[0].metrics["ok"] == 1.5
    assert got[0].metrics["big"] == 1e308
    assert math.isnan(got[1].metrics["loss"])
    (at,) = store.at_step(1)
    assert math.isnan(at.metrics["loss"]) and at.metrics["up"] == math.inf


def test_nonfinite_raise_refuses_nan_and_inf_naming_metric_and_step(store):
    with store.start_run("strict", nonfinite="raise") as run:
        with pytest.raises(MetricValueError, match=r"'loss' at step 7.*nan"):
            run.log(7, acc=0.5, loss=float("nan"))
        with pytest.raises(MetricValueError, match=r"'grad' at step 8.*inf"):
            run.log(8, grad=float("inf"))
        run.log(9, loss=0.1)
    # The refused call wrote nothing, not even its finite values.
    assert [s.step for s in store.steps("strict")] == [9]


def test_nonfinite_skip_drops_only_the_nonfinite_values(store):
    with store.start_run("lenient", nonfinite="skip") as run:
        run.log(1, loss=float("nan"), acc=0.5, g=float("-inf"))
    assert store.steps("lenient")[0].metrics == {"acc": 0.5}


def test_unknown_nonfinite_policy_is_refused(store):
    with pytest.raises(ValueError, match="nonfinite"):
        store.start_run("bad-policy", nonfinite="ignore")


@pytest.mark.parametrize("value", ["0.5", "abc", None, [1.0], {"a": 1}, b"1", object(), np.array([1.0, 2.0]), 10**400, 1 + 2j])
def test_non_numeric_values_are_refused_naming_metric_and_step(store, value):
    with store.start_run("types") as run:
        with pytest.raises(MetricValueError) as err:
            run.log(42, fine=1.0, weird=value)
        run.log(43, ok=1.0)  # the buffer is not blocked by the refused call
    msg = str(err.value)
    assert "'weird'" in msg and "step 42" in msg and "\n" not in msg
    # Nothing of the refused call was kept, not even its good value.
    assert [(s.step, s.metrics) for s in store.steps("types")] == [(43, {"ok": 1.0})]


@pytest.mark.parametrize("key", ["a\x00b", "k" * 201, ""], ids=["nul", "201-chars", "empty"])
def test_bad_metric_names_fail_at_the_call_not_at_a_later_flush(store, key):
    run = store.start_run("m")
    with pytest.raises(MetricValueError, match="metric name"):
        run.log(1, **{"good": 1.0, key: 2.0})
    run.log(2, good=2.0)
    run.finish()  # the buffer is not blocked by the refused name
    assert [(s.step, s.metrics) for s in store.steps("m")] == [(2, {"good": 2.0})]


def test_numpy_scalars_ints_bools_and_zero_d_arrays_are_accepted(store):
    with store.start_run("numpy") as run:
        run.log(
            np.int64(3),
            f32=np.float32(0.25), f64=np.float64(0.5), i=np.int32(7), py_int=2,
            flag=True, zero_d=np.array(1.5),
        )
    (s,) = store.steps("numpy")
    assert s.step == 3 and isinstance(s.step, int)
    assert s.metrics == {"f32": 0.25, "f64": 0.5, "i": 7.0, "py_int": 2.0, "flag": 1.0, "zero_d": 1.5}
    assert all(type(v) is float for v in s.metrics.values())


def test_logging_a_step_and_key_twice_keeps_the_last_value(store):
    with store.start_run("dup", flush_every=1_000_000, flush_seconds=3600) as run:
        run.log(5, loss=1.0, acc=0.1)
        run.log(5, loss=2.0)  # same batch
    assert store.steps("dup")[0].metrics == {"acc": 0.1, "loss": 2.0}
    with store.start_run("dup", resume=True) as run:
        with pytest.raises(ckptstore.StepConflictError, match="already has steps up to 5"):
            run.log(5, loss=3.0)  # a resume continues after the run's last step...
    with store.start_run("dup", resume=True, overwrite=True) as run:
        run.log(5, loss=3.0)  # ...unless asked to overwrite
    assert store.steps("dup")[0].metrics == {"acc": 0.1, "loss": 3.0}
    # Nothing is lost: the replaced values are the run's metric history, oldest first.
    assert [(h.step, h.key, h.value) for h in store.metric_history("dup")] == [(5, "loss", 1.0), (5, "loss", 2.0)]


@pytest.mark.parametrize("step", [-1, 1.5, True, False, "10", None, float("nan"), float("inf"), 2**63])
def test_bad_steps_are_refused(store, step):
    with store.start_run("steps") as run:
        with pytest.raises(MetricValueError, match="step"):
            run.log(step, loss=1.0)
    assert store.steps("steps") == []


def test_a_whole_float_step_is_accepted_as_an_int(store):
    with store.start_run("fstep") as run:
        run.log(10.0, loss=1.0)
    assert store.steps("fstep")[0].step == 10


def test_bad_buffer_options_are_refused(store):
    with pytest.raises(ValueError, match="flush_every"):
        store.start_run("opt", flush_every=0)


# --------------------------------------------------------------------------- queries


@pytest.fixture
def logged(store):
    """Three runs: 'a' steps 0..100 by 10, 'b' steps 50..150 by 50, 'c' only step 500."""
    with store.start_run("a") as run:
        for step in range(0, 101, 10):
            run.log(step, loss=1.0 / (step + 1), acc=step / 100)
    with store.start_run("b") as run:
        for step in (50, 100, 150):
            run.log(step, loss=float(step), lr=0.1)
    with store.start_run("c") as run:
        run.log(500, loss=5.0)
    return store


def test_steps_returns_one_runs_metrics_in_step_order(logged):
    steps = logged.steps("a")
    assert [s.step for s in steps] == list(range(0, 101, 10))
    assert steps[3].metrics == {"acc": 0.3, "loss": 1.0 / 31}
    assert steps[0].wall_time > 1e9


def test_steps_range_is_inclusive_on_both_ends_and_keys_select(logged):
    assert [s.step for s in logged.steps("a", start=20, stop=50)] == [20, 30, 40, 50]
    assert [s.step for s in logged.steps("a", start=95)] == [100]
    assert [s.step for s in logged.steps("a", stop=0)] == [0]
    only = logged.steps("a", start=20, stop=30, keys=["acc"])
    assert [s.metrics for s in only] == [{"acc": 0.2}, {"acc": 0.3}]
    assert logged.steps("a", keys=["nope"]) == []
    assert logged.steps("a", start=60, stop=50) == []


def test_metric_keys_lists_each_key_once_sorted(logged):
    assert logged.metric_keys("a") == ["acc", "loss"]
    assert logged.metric_keys("b") == ["loss", "lr"]


def test_at_step_exact_returns_only_runs_that_logged_that_step(logged):
    rows = logged.at_step(100)
    assert [(r.run, r.step) for r in rows] == [("a", 100), ("b", 100)]
    assert rows[0].metrics == {"acc": 1.0, "loss": 1.0 / 101}
    assert rows[1].metrics == {"loss": 100.0, "lr": 0.1}
    assert [r.checkpoint_step for r in rows] == [None, None]
    assert not rows[0].has_checkpoint
    assert logged.at_step(55) == []


def test_at_step_nearest_takes_each_runs_last_step_at_or_below(logged):
    rows = logged.at_step(120, nearest=True)
    assert [(r.run, r.step) for r in rows] == [("a", 100), ("b", 100)]
    rows = logged.at_step(49, nearest=True)
    assert [(r.run, r.step) for r in rows] == [("a", 40)]  # b starts at 50, c at 500
    rows = logged.at_step(10_000, nearest=True)
    assert [(r.run, r.step) for r in rows] == [("a", 100), ("b", 150), ("c", 500)]
    assert rows[2].metrics == {"loss": 5.0}


def test_at_step_key_selection(logged):
    rows = logged.at_step(100, keys=["loss"])
    assert [r.metrics for r in rows] == [{"loss": 1.0 / 101}, {"loss": 100.0}]
    # Nearest with keys: each run's last step at or below S where one of those keys was logged;
    # 'a' never logged lr (and has no checkpoint), so it is not listed.
    rows = logged.at_step(150, nearest=True, keys=["lr"])
    assert [(r.run, r.step, r.metrics) for r in rows] == [("b", 150, {"lr": 0.1})]
    assert [(r.run, r.metrics) for r in logged.at_step(100, keys=[])] == [("a", {}), ("b", {})]


def test_at_step_nearest_finds_a_metric_logged_less_often_at_its_own_step(store):
    with store.start_run("rates") as run:
        for step in range(1, 251):
            run.log(step, loss=1.0 / step)
            if step % 100 == 0:
                run.log(step, val_acc=step / 1000)
    [row] = store.at_step(150, nearest=True, keys=["val_acc"])
    assert (row.run, row.step, row.metrics) == ("rates", 100, {"val_acc": 0.1})
    [row] = store.at_step(150, nearest=True, keys=["val_acc", "loss"])
    assert (row.step, row.metrics) == (150, {"loss": 1.0 / 150})
    [row] = store.at_step(150, nearest=True)
    assert (row.step, row.metrics) == (150, {"loss": 1.0 / 150})


def test_steps_past_the_bigint_range_are_clamped_not_overflowing(logged):
    huge = 2**70
    assert [(r.run, r.step) for r in logged.at_step(huge, nearest=True)] == [("a", 100), ("b", 150), ("c", 500)]
    assert logged.at_step(huge) == []
    assert logged.steps("a", start=huge) == []
    assert len(logged.steps("a", stop=huge)) == 11


def test_at_step_nearest_over_many_runs_at_different_steps(store):
    # More runs than one chunk of (run, step) pairs, each at a step of its own.
    with store.write() as conn:
        from sqlalchemy import insert

        from ckptstore.metadata import schema as S

        conn.execute(insert(S.runs), [{"name": f"r{i:03d}", "status": "finished", "params": {}} for i in range(600)])
    for i in range(600):
        run = store.run(f"r{i:03d}")
        run.log(i, loss=float(i))
        run.log(i + 1000, loss=-1.0)
        run.flush()
    rows = store.at_step(999, nearest=True)
    assert len(rows) == 600
    assert all(r.step == int(r.run[1:]) and r.metrics == {"loss": float(r.step)} for r in rows)


def test_at_step_refuses_a_bad_step(logged):
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="step"):
            logged.at_step(bad)  # type: ignore[arg-type]


def test_runs_last_step_follows_logging(logged):
    assert {r.name: r.last_step for r in logged.runs()} == {"a": 100, "b": 150, "c": 500}


def test_queries_about_an_unknown_run_are_clear_errors(logged):
    with pytest.raises(ckptstore.UnknownRunError):
        logged.steps("zzz")
    with pytest.raises(ckptstore.UnknownRunError):
        logged.metric_keys("zzz")


# --------------------------------------------------------------------------- with checkpoints (real TF)


def test_save_flushes_buffered_metrics_first_and_at_step_reports_checkpoints(store, tiny_model):
    run = store.start_run("ck", flush_every=1_000_000, flush_seconds=3600)
    for step in range(1, 21):
        run.log(step, loss=1.0 / step)
    assert stored(store, "ck") == 0
    run.save(tiny_model(), 10)
    assert stored(store, "ck") == 20  # the save's flush wrote everything logged so far
    run.log(21, loss=0.01)
    run.finish()

    (exact,) = store.at_step(10)
    assert (exact.run, exact.step, exact.checkpoint_step) == ("ck", 10, 10)
    (no_ckpt,) = store.at_step(15)
    assert no_ckpt.checkpoint_step is None
    (near,) = store.at_step(15, nearest=True)
    assert (near.step, near.checkpoint_step, near.metrics) == (15, 10, {"loss": 1.0 / 15})
    assert store.at_step(9, nearest=True)[0].checkpoint_step is None
    assert store.get_run("ck").checkpoints == 1
    assert store.get_run("ck").last_step == 21


# --------------------------------------------------------------------------- the benchmark stays runnable


@pytest.mark.slow
def test_metrics_benchmark_runs_small_and_never_imports_tensorflow(tmp_path):
    import subprocess
    import sys

    code = (
        "import runpy, sys; sys.argv = ['log_metrics.py', '--values', '8000', '--runs', '12', "
        "'--steps', '40', '--reps', '3', '--mlflow-single', '40', '--mlflow-batch', '400']; "
        f"import builtins; real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    assert not name.startswith('tensorflow'), 'benchmark imported ' + name\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        f"runpy.run_path({str(ROOT / 'benchmarks' / 'log_metrics.py')!r}, run_name='__main__')"
    )
    out = subprocess.run([sys.executable, "-c", with_deadline(code, 130)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env=child_env())
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("run.log: ") and "values/s (target >= 100,000)" in line for line in lines), lines
    assert sum(line.startswith("at_step(") and "ms median" in line for line in lines) == 2, lines

"""Metric logging throughput and the "all runs at step S" query, on SQLite in a temp dir.

1. ``run.log()``: one call per step with 4 metrics, 1,000,000 values, default buffering,
   timed from the first call to the run's end (the final flush included).
   Target (issue 2): >= 100,000 values/s.
2. When MLflow is importable (here, in /tmp/mlflow-venv, or the interpreter given with
   ``--mlflow-python``; it runs in that interpreter): MLflow's ``log_metric`` (one call per
   value; a bounded number of values, since it manages a few hundred per second, and the rate
   extrapolated) and ``log_batch`` (1,000 metrics per call) against a SQLite-backed MLflow
   store, with ratios.
3. A store of 1,000 runs x 1,000 steps x 4 metrics, filled through the same batched path
   ``run.log`` uses, then the median time of ``store.at_step(S)`` exact and nearest.
   Target: <= 50 ms.

Never imports TensorFlow.

    python benchmarks/log_metrics.py [--values 1000000] [--runs 1000] [--steps 1000] [--mlflow-python PY]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import find_mlflow_python  # noqa: E402

N_KEYS = 4
LOG_TARGET = 100_000  # values/s
QUERY_TARGET_MS = 50.0


def _verdict(ok: bool) -> str:
    return "OK" if ok else "BELOW TARGET"


def bench_run_log(work: Path, n_values: int) -> float:
    import ckptstore

    steps = n_values // N_KEYS
    with ckptstore.open_store(work / "log") as store:
        t0 = time.perf_counter()
        with store.start_run("bench") as run:
            for step in range(steps):
                x = step * 1e-6
                run.log(step, loss=1.0 - x, acc=x, lr=0.001, grad_norm=2.0 + x)
        elapsed = time.perf_counter() - t0
        # Counted from the database, so a lost value could not inflate the rate.
        with store.read() as conn:
            from sqlalchemy import text

            stored = conn.execute(text("SELECT count(*) FROM metrics")).scalar_one()
    if stored != steps * N_KEYS:
        raise SystemExit(f"run.log lost values: {stored} stored of {steps * N_KEYS}")
    return stored / elapsed


def bench_mlflow(work: Path, n_single: int, n_batch: int) -> tuple[float, float]:
    import logging

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    exp = client.create_experiment("bench", artifact_location=str(work / "mlruns"))

    run = client.create_run(exp)
    steps = n_single // N_KEYS
    t0 = time.perf_counter()
    for step in range(steps):
        x = step * 1e-6
        for key, value in (("loss", 1.0 - x), ("acc", x), ("lr", 0.001), ("grad_norm", 2.0 + x)):
            client.log_metric(run.info.run_id, key, value, step=step)
    single = steps * N_KEYS / (time.perf_counter() - t0)

    run = client.create_run(exp)
    ts = int(time.time() * 1000)
    metrics = []
    for step in range(n_batch // N_KEYS):
        x = step * 1e-6
        metrics += [
            Metric("loss", 1.0 - x, ts, step), Metric("acc", x, ts, step),
            Metric("lr", 0.001, ts, step), Metric("grad_norm", 2.0 + x, ts, step),
        ]
    t0 = time.perf_counter()
    for i in range(0, len(metrics), 1000):  # MLflow's limit per log_batch call
        client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])
    batch = len(metrics) / (time.perf_counter() - t0)
    return single, batch


def build_query_store(work: Path, n_runs: int, n_steps: int) -> object:
    import ckptstore

    store = ckptstore.open_store(work / "query")
    t0 = time.perf_counter()
    for r in range(n_runs):
        # Runs differ in length so that "nearest" has real work: every 10th run stops early.
        last = n_steps if r % 10 else n_steps // 2
        with store.start_run(f"run-{r:04d}", flush_every=200_000) as run:
            for step in range(last):
                x = (r + step) * 1e-6
                run.log(step, loss=1.0 - x, acc=x, lr=0.001, grad_norm=2.0 + x)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")  # what a long-lived store would have; cheap here
    print(f"built {n_runs:,} runs x {n_steps:,} steps x {N_KEYS} metrics in {time.perf_counter() - t0:.1f} s")
    return store


def time_query(fn, reps: int) -> float:
    fn()  # warm the page cache and the statement cache
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--values", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--mlflow-single", type=int, default=2_000, help="values for MLflow log_metric")
    ap.add_argument("--mlflow-batch", type=int, default=100_000, help="values for MLflow log_batch")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--mlflow-python", default=None, help="an interpreter that can import mlflow")
    ap.add_argument("--mlflow-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.mlflow_child:  # inside the MLflow interpreter: measure, print JSON, nothing else
        import mlflow

        single, batch = bench_mlflow(Path(args.mlflow_child), args.mlflow_single, args.mlflow_batch)
        print(json.dumps({"version": mlflow.__version__, "single": single, "batch": batch}))
        return 0

    ok = True
    with tempfile.TemporaryDirectory(prefix="ckptstore-bench-") as tmp:
        work = Path(tmp)
        rate = bench_run_log(work, args.values)
        ok &= rate >= LOG_TARGET
        print(f"run.log: {rate:,.0f} values/s (target >= {LOG_TARGET:,}) {_verdict(rate >= LOG_TARGET)}")

        mlflow_py = find_mlflow_python(args.mlflow_python)
        if mlflow_py is None:
            print("mlflow: not importable (install it in /tmp/mlflow-venv to compare), comparison skipped")
        else:
            (work / "mlflow").mkdir()
            out = subprocess.run(
                [mlflow_py, __file__, "--mlflow-child", str(work / "mlflow"),
                 "--mlflow-single", str(args.mlflow_single), "--mlflow-batch", str(args.mlflow_batch)],
                capture_output=True, text=True, check=True, env={"GIT_PYTHON_REFRESH": "quiet", **__import__("os").environ},
            )
            peer = json.loads(out.stdout.strip().splitlines()[-1])
            version, single, batch = peer["version"], peer["single"], peer["batch"]
            print(
                f"mlflow {version} log_metric: {single:,.0f} values/s "
                f"({args.mlflow_single:,} values, extrapolated); run.log is {rate / single:,.0f}x faster"
            )
            print(
                f"mlflow {version} log_batch: {batch:,.0f} values/s "
                f"({args.mlflow_batch:,} values); run.log is {rate / batch:,.1f}x faster"
            )

        store = build_query_store(work, args.runs, args.steps)
        try:
            s = args.steps // 2 + args.steps // 4  # beyond the early-stopping runs' last step
            probe = store.at_step(s)
            near = store.at_step(s, nearest=True)
            assert len(near) == args.runs and len(probe) == sum(1 for r in range(args.runs) if r % 10)
            assert all(len(r.metrics) == N_KEYS for r in near)
            for label, fn in (
                ("exact", lambda: store.at_step(s)),
                ("nearest", lambda: store.at_step(s, nearest=True)),
            ):
                ms = time_query(fn, args.reps)
                good = ms <= QUERY_TARGET_MS
                ok &= good
                print(
                    f"at_step({s}) {label}, {args.runs:,} runs x {args.steps:,} steps: "
                    f"{ms:.1f} ms median of {args.reps} (target <= {QUERY_TARGET_MS:.0f} ms) {_verdict(good)}"
                )
        finally:
            store.close()
    assert "tensorflow" not in sys.modules, "the metrics benchmark must not import TensorFlow"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of every metadata command of ``ckptstore`` on a store with 1,000 runs, of a run
search on 10,000 runs, and of ``mlflow runs list`` for comparison.

Builds a SQLite store of 1,000 runs (tags, params, 20 steps x 2 metrics each, 1 in 10 failed),
then times the command in fresh processes, as a user would type it, and prints the median wall
time, with the median CPU time (user + system) beside it: on a shared machine other processes
stretch the wall time, while the CPU time stays close to what an idle machine's wall time is.
When MLflow is importable (here, or in /tmp/mlflow-venv, or the interpreter given with
--mlflow-python), an equivalent MLflow store (SQLite backend, same runs, params, tags and
metrics) is built and ``mlflow runs list`` is timed the same way. MLflow is never a project
dependency; it lives in its own virtual environment.

    python benchmarks/cli_latency.py [--runs 1000] [--repeat 7] [--mlflow-python PATH]

Targets: ckptstore runs list <= 0.3 s wall (issue 5); every metadata command (runs
list/show/compare, steps, at, checkpoints, vars, aliases, exports) <= 0.3 s and <= 2 x
``python -c pass`` + 0.15 s (issue 17); every command that does not need TensorFlow <= 0.3 s
(issue 26: writes such as alias/unalias and runs delete, restore --to DIR and export --to FILE,
error paths (restore, vars --diff, tensorboard and plot of what does not exist too),
verify/gc/repack with nothing to do, db, du, root show, import of nothing new:
``OTHER_COMMANDS``, ``--no-others`` skips them);
``runs list --where ... --sort ...`` on 10,000 runs printed beside them (``--search-runs 0``
skips building that store).
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _peers import find_mlflow_python  # noqa: E402

STEPS = 20

#: The metadata commands timed on the 1,000-run store (run-0000 has a checkpoint at step 20,
#: tagged 'prod').
COMMANDS = [
    ["runs", "list"],
    ["runs", "list", "--json"],
    ["runs", "list", "--where", "params.lr = 0.01 and metrics.loss.min < 0.2", "--sort", "metrics.loss.min"],
    ["runs", "show", "run-0001"],
    ["runs", "compare", "run-0001", "run-0002", "run-0003"],
    ["steps", "run-0001"],
    ["at", "10"],
    ["at", "10", "--run", "run-00*", "--param", "lr"],
    ["checkpoints", "run-0000", "--metric", "loss"],
    ["vars", "run-0000@best:loss"],
    ["aliases"],
    ["exports"],
]

#: Commands that write, fail, or maintain (issue 26: each <= 0.3 s too): (command, expected exit
#: status, setup). ``setup`` runs (untimed) before each timed call, so that every call does the
#: same work: an alias to remove, a run to delete.
_NEW_RUN = "import ckptstore; s = ckptstore.open_store(); s.start_run('victim').finish(); s.close()"
_REMOVE = "import glob, os, shutil; [shutil.rmtree(p) if os.path.isdir(p) else os.remove(p) for p in glob.glob({!r})]"
OTHER_COMMANDS: list[tuple[list[str], int, list[str] | None]] = [
    (["alias", "bench", "run-0000@20"], 0, None),
    (["alias", "bench", "run-0000@20", "-m", "again"], 0, None),
    (["unalias", "bench"], 0, ["alias", "bench", "run-0000@20"]),
    (["runs", "delete", "victim", "--yes"], 0, ["python", "-c", _NEW_RUN]),
    (["runs", "show", "nope"], 1, None),
    (["runs", "list", "--sort", "loss"], 1, None),
    (["vars", "nope@1"], 1, None),
    (["alias", "x", "nope@1"], 1, None),
    (["runs", "delete", "nope", "--yes"], 1, None),
    (["steps", "run-0001", "--start", "x"], 2, None),
    (["verify"], 0, None),
    (["gc"], 0, None),
    (["restore", "nope@1", "--to", "{work}/never"], 1, None),
    (["vars", "run-0000@20", "--diff", "nope@1"], 1, None),
    (["tensorboard", "nope*", "--logdir", "{work}/tb"], 1, None),
    (["plot", "nope", "-m", "loss", "-o", "{work}/never.png"], 1, None),
    (["vars", "run-0000@20", "--diff", "prod", "--stats"], 0, None),
    (["--store", "{work}/no-such-store", "runs", "list"], 1, None),
    (["restore", "prod", "--to", "{work}/restored"], 0, ["python", "-c", _REMOVE.format("{work}/restored")]),
    (["restore", "prod", "--to", "{work}/restored-again"], 0, None),  # the same bytes already there
    (["export", "prod-pb", "--to", "{work}/deployed.pb"], 0, ["python", "-c", _REMOVE.format("{work}/deployed.pb*")]),
    (["repack"], 0, None),
    (["db", "current"], 0, None),
    (["db", "history"], 0, None),
    (["db", "upgrade"], 0, None),
    (["du"], 0, None),
    (["root", "show"], 0, None),
    (["import", "{imported}", "--run", "imported"], 0, None),
]

#: Searches timed on the big store.
SEARCHES = [
    ["runs", "list", "--where", "params.lr = 0.01 and metrics.loss.min < 0.2", "--sort", "metrics.loss.min", "--limit", "20"],
    ["runs", "list", "--where", "tags.team = vision and status = finished", "--sort", "-params.layers", "--limit", "20"],
    ["runs", "list", "--limit", "20"],
]


def build_store(path: Path, n_runs: int, *, checkpoint: bool = False) -> None:
    import ckptstore

    store = ckptstore.open_store(path)
    if checkpoint:
        # One real checkpoint (run-0000@20, alias 'prod') for checkpoints / vars / aliases.
        from ckptstore.tf.runtime import tf as tensorflow

        tf = tensorflow()
        net = tf.Module()
        net.w = tf.Variable(tf.ones([8, 4]))
        net.b = tf.Variable(tf.zeros([4]))
    for i in range(n_runs):
        run = store.start_run(
            f"run-{i:04d}",
            params={"lr": 10 ** -(1 + i % 4), "layers": 2 + i % 3},
            tags={"team": ("vision", "nlp", "speech")[i % 3], "seed": str(i % 5)},
            flush_every=10_000,
        )
        for step in range(1, STEPS + 1):
            run.log(step, loss=1.0 / (step + i % 7), accuracy=step / STEPS)
        if checkpoint and i == 0:
            run.save(net, STEPS)
            # One frozen export (export:1, alias 'prod-pb') for exports / export.
            serve = tf.function(lambda x: tf.matmul(x, net.w) + net.b, input_signature=[tf.TensorSpec([None, 8], tf.float32)])
            store.set_alias("prod-pb", run.freeze(serve, step=STEPS))
        run.finish("failed" if i % 10 == 9 else "finished")
    if checkpoint:
        store.set_alias("prod", f"run-0000@{STEPS}")
    store.close()


def build_big_store(path: Path, n_runs: int) -> None:
    """The same runs as :func:`build_store`, written in one bulk transaction through ``sqlite3``
    (the API's one transaction per run would take minutes for 10,000 runs here)."""
    import json
    import sqlite3
    from datetime import datetime, timedelta, timezone

    import ckptstore

    ckptstore.open_store(path).close()  # the schema, at head
    con = sqlite3.connect(str(path / "store.db"))
    t0 = datetime.now(timezone.utc).replace(tzinfo=None)
    with con:
        con.executemany(
            "INSERT INTO runs (id, name, status, params, created_at, ended_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (i + 1, f"run-{i:05d}", "failed" if i % 10 == 9 else "finished",
                 json.dumps({"lr": 10 ** -(1 + i % 4), "layers": 2 + i % 3}),
                 str(t0 + timedelta(seconds=i)), str(t0 + timedelta(seconds=i + 1)))
                for i in range(n_runs)
            ],
        )
        con.executemany(
            "INSERT INTO run_tags (run_id, key, value) VALUES (?, ?, ?)",
            [(i + 1, k, v) for i in range(n_runs) for k, v in (("team", ("vision", "nlp", "speech")[i % 3]), ("seed", str(i % 5)))],
        )
        con.executemany(
            "INSERT INTO metrics (run_id, step, key, value, wall_time) VALUES (?, ?, ?, ?, ?)",
            [
                (i + 1, step, key, value, 0.0)
                for i in range(n_runs) for step in range(1, STEPS + 1)
                for key, value in (("loss", 1.0 / (step + i % 7)), ("accuracy", step / STEPS))
            ],
        )
    con.close()


def big_rows(n_runs: int) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """(runs, run_tags, metrics) rows of :func:`build_big_store`'s runs, for any database."""
    import json
    from datetime import datetime, timedelta, timezone

    t0 = datetime.now(timezone.utc)
    runs = [
        (i + 1, f"run-{i:05d}", "failed" if i % 10 == 9 else "finished",
         json.dumps({"lr": 10 ** -(1 + i % 4), "layers": 2 + i % 3}), t0 + timedelta(seconds=i), t0 + timedelta(seconds=i + 1))
        for i in range(n_runs)
    ]
    tags = [(i + 1, k, v) for i in range(n_runs) for k, v in (("team", ("vision", "nlp", "speech")[i % 3]), ("seed", str(i % 5)))]
    metrics = [
        (i + 1, step, key, value, 0.0)
        for i in range(n_runs) for step in range(1, STEPS + 1)
        for key, value in (("loss", 1.0 / (step + i % 7)), ("accuracy", step / STEPS))
    ]
    return runs, tags, metrics


def time_postgres_search(n_runs: int, repeat: int) -> list[tuple[str, float]]:
    """Median seconds of ``store.runs(where=..., order_by=..., limit=20)`` (the library call the
    CLI makes) on a throwaway PostgreSQL cluster holding ``n_runs`` runs, loaded with COPY."""
    import ckptstore
    from tests.helpers.postgres import PgServer, have_postgres

    if not have_postgres():
        print("PostgreSQL is not installed (initdb not found); skipping the PostgreSQL search")
        return []
    base = Path(tempfile.mkdtemp(prefix="ckptstore-pg-"))
    server = PgServer(base)
    server.start()
    try:
        url = server.new_database()
        store = ckptstore.open_store(url, root=base / "files")
        runs, tags, metrics = big_rows(n_runs)
        raw = store.engine.raw_connection()
        try:
            pg = raw.driver_connection
            with pg.cursor() as cur:
                with cur.copy("COPY runs (id, name, status, params, created_at, ended_at) FROM STDIN") as copy:
                    for row in runs:
                        copy.write_row(row)
                with cur.copy("COPY run_tags (run_id, key, value) FROM STDIN") as copy:
                    for row in tags:
                        copy.write_row(row)
                with cur.copy("COPY metrics (run_id, step, key, value, wall_time) FROM STDIN") as copy:
                    for row in metrics:
                        copy.write_row(row)
                cur.execute("ANALYZE")
            pg.commit()
        finally:
            raw.close()
        out = []
        for cmd in SEARCHES:
            where = cmd[cmd.index("--where") + 1] if "--where" in cmd else None
            sort = cmd[cmd.index("--sort") + 1] if "--sort" in cmd else None
            store.runs(where=where, order_by=sort, limit=20)  # warm-up
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                store.runs(where=where, order_by=sort, limit=20)
                times.append(time.perf_counter() - t)
            out.append((f"[{n_runs} runs, PostgreSQL] store.runs(where={where!r}, order_by={sort!r}, limit=20)", statistics.median(times)))
        store.close()
        return out
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


MLFLOW_BUILD = textwrap.dedent(
    """
    import sys, time
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    n_runs, steps = int(sys.argv[1]), int(sys.argv[2])
    client = MlflowClient()
    now = int(time.time() * 1000)
    for i in range(n_runs):
        run = client.create_run("0", run_name=f"run-{i:04d}",
                                tags={"team": ("vision", "nlp", "speech")[i % 3], "seed": str(i % 5)})
        rid = run.info.run_id
        metrics = [Metric(k, v, now, s) for s in range(1, steps + 1)
                   for k, v in (("loss", 1.0 / (s + i % 7)), ("accuracy", s / steps))]
        client.log_batch(rid, metrics=metrics,
                         params=[Param("lr", str(10 ** -(1 + i % 4))), Param("layers", str(2 + i % 3))])
        client.set_terminated(rid, "FAILED" if i % 10 == 9 else "FINISHED")
    """
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(
    cmd: list[str], env: dict[str, str], repeat: int, *, status: int = 0, setup: list[str] | None = None
) -> tuple[float, float, int]:
    """Median wall seconds and median CPU seconds (user + system) of ``cmd`` over ``repeat`` runs
    (after one warm-up), and its output size. On a shared machine the CPU time is the steadier
    of the two: other processes lengthen the wall time, much less the CPU time. ``status``: the
    exit status expected (an error path's 1 or 2); ``setup``: a command run untimed before each."""

    def prepare() -> None:
        if setup is not None:
            subprocess.run(setup, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    prepare()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != status:
        raise SystemExit(f"{' '.join(cmd)} exited {out.returncode}, not {status}: {out.stderr.strip()[-500:]}")
    times, cpu = [], []
    for _ in range(repeat):
        prepare()
        c, t = _children_cpu(), time.perf_counter()
        done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
        cpu.append(_children_cpu() - c)
        if done.returncode != status:
            raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}, not {status}")
    return statistics.median(times), statistics.median(cpu), len(out.stdout.splitlines())


def imported_directory(path: Path) -> Path:
    """A TF2 CheckpointManager directory of two checkpoints (for ``import`` of nothing new)."""
    from ckptstore.tf.runtime import tf as tensorflow

    tf = tensorflow()
    ckpt = tf.train.Checkpoint(v=tf.Variable(tf.ones([4])))
    manager = tf.train.CheckpointManager(ckpt, str(path), max_to_keep=5)
    manager.save(checkpoint_number=1)
    manager.save(checkpoint_number=2)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--mlflow-python", default=None, help="an interpreter that can import mlflow")
    ap.add_argument("--search-runs", type=int, default=10_000, help="runs in the store searched (0: skip)")
    ap.add_argument("--postgres", action="store_true", help="also time the search on a throwaway PostgreSQL cluster")
    ap.add_argument("--no-others", action="store_true", help="skip the writes, error paths and maintenance commands")
    args = ap.parse_args()

    # Bytecode, as an installed package has it: pip compiles a wheel's modules at install time,
    # an editable install (`make install`) leaves that to the Makefile. Without it, and with
    # PYTHONDONTWRITEBYTECODE set, every call would compile ckptstore's modules from source.
    compileall.compile_dir(str(ROOT / "ckptstore"), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="ckptstore-cli-latency-"))
    try:
        store = work / "store"
        t = time.perf_counter()
        build_store(store, args.runs, checkpoint=True)
        print(f"built a ckptstore store with {args.runs} runs x {STEPS} steps x 2 metrics in {time.perf_counter() - t:.1f} s")
        env = {**os.environ, "CKPTSTORE_URI": str(store)}
        exe = Path(sys.executable).with_name("ckptstore")
        cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "ckptstore"]
        results = []
        for cmd in COMMANDS:
            med, cpu, lines = time_command([*cli, *cmd], env, args.repeat)
            results.append((" ".join(["ckptstore", *cmd]), med, cpu, lines))
        n_metadata = len(results)
        if not args.no_others:
            tf_dir = imported_directory(work / "tf-checkpoints")
            subprocess.run([*cli, "import", str(tf_dir), "--run", "imported"], env=env, check=True, capture_output=True)
            for cmd, status, setup in OTHER_COMMANDS:
                cmd = [c.replace("{imported}", str(tf_dir)).replace("{work}", str(work)) for c in cmd]
                setup = None if setup is None else [c.replace("{work}", str(work)) for c in setup]
                prep = None if setup is None else [sys.executable, *setup[1:]] if setup[0] == "python" else [*cli, *setup]
                med, cpu, lines = time_command([*cli, *cmd], env, args.repeat, status=status, setup=prep)
                results.append((" ".join(["ckptstore", *cmd]).replace(str(tf_dir), "DIR").replace(str(work), "WORK") + ("" if not status else f"  [exit {status}]"), med, cpu, lines))
        n_timed = len(results)
        med, cpu, lines = time_command([sys.executable, "-c", "pass"], env, args.repeat)
        start_up = med
        results.append(("python -c pass (interpreter start-up)", med, cpu, lines))
        if args.search_runs:
            big = work / "big"
            t = time.perf_counter()
            build_big_store(big, args.search_runs)
            print(f"built a ckptstore store with {args.search_runs} runs in {time.perf_counter() - t:.1f} s")
            benv = {**os.environ, "CKPTSTORE_URI": str(big)}
            for cmd in SEARCHES:
                med, cpu, lines = time_command([*cli, *cmd], benv, args.repeat)
                results.append((f"[{args.search_runs} runs] " + " ".join(["ckptstore", *cmd]), med, cpu, lines))

        mlflow_py = find_mlflow_python(args.mlflow_python)
        if mlflow_py is None:
            print("mlflow is not importable (install it in /tmp/mlflow-venv to compare); skipping it")
        else:
            db = work / "mlflow.db"
            menv = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "GIT_PYTHON_REFRESH": "quiet"}
            t = time.perf_counter()
            subprocess.run([mlflow_py, "-c", MLFLOW_BUILD, str(args.runs), str(STEPS)], env=menv, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"built an equivalent MLflow store (SQLite backend) in {time.perf_counter() - t:.1f} s")
            mlflow_cli = [str(Path(mlflow_py).with_name("mlflow")), "runs", "list", "--experiment-id", "0"]
            med, cpu, lines = time_command(mlflow_cli, menv, args.repeat)
            results.append(("mlflow runs list --experiment-id 0", med, cpu, lines))

        print(f"\nmedian wall time (and CPU time) of {args.repeat} runs, {args.runs} runs in the store:")
        for name, med, cpu, lines in results:
            print(f"  {name:<72} {med:6.3f} s  (cpu {cpu:5.3f} s)   ({lines} lines of output)")
        if args.postgres and args.search_runs:
            for name, med in time_postgres_search(args.search_runs, args.repeat):
                print(f"  {name:<72} {med:6.3f} s")
        budget = min(0.3, 2 * start_up + 0.15)
        slow = [(n, m) for n, m, _, _ in results[:n_metadata] if m > budget]
        print(f"\ntarget: every metadata command <= min(0.300, 2 x {start_up:.3f} + 0.150) = {budget:.3f} s: "
              + ("met" if not slow else "NOT met by " + ", ".join(f"{n} ({m:.3f} s)" for n, m in slow)))
        if n_timed > n_metadata:
            slow = [(n, m) for n, m, _, _ in results[n_metadata:n_timed] if m > 0.3]
            print("target: every write, error path and maintenance command without TensorFlow <= 0.300 s: "
                  + ("met" if not slow else "NOT met by " + ", ".join(f"{n} ({m:.3f} s)" for n, m in slow)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

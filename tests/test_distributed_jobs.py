"""Real tf.distribute jobs (issue 27): every example of docs/distributed.md run as written, as
separate processes on 127.0.0.1 (2 workers; for ParameterServerStrategy a chief, a ps and a
worker), each with a deadline of its own and killed by the ``children`` fixture at the end (a
missing worker makes the others wait forever). Checked: one run, one checkpoint per save, each
step logged once, no temporary file left, restores equal to the chief's own weights."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ckptstore
from tests.helpers.processes import ChildProcesses, with_deadline
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

pytestmark = pytest.mark.slow  # each job starts 2-3 interpreters that import TensorFlow

DOC = Path(__file__).resolve().parent.parent / "docs" / "distributed.md"
DEADLINE = 150.0

# Appended to a worker's script: its final weights, to compare restores with.
DUMP = """
import json as _json, os as _os
_task = _json.loads(_os.environ.get("TF_CONFIG") or '{"task": {"index": 0}}')["task"]
_values = [v.numpy() for v in model.weights] if hasattr(model, "layers") else [
    tf.concat(model.w.variables, 0).numpy(), tf.concat(model.b.variables, 0).numpy()]
np.savez(_os.path.join(_os.environ["DUMP_DIR"], f"{_task['type']}-{_task['index']}.npz"), *_values)
"""


def block(name: str) -> str:
    """The python block of docs/distributed.md whose first line is ``# distributed: <name>``."""
    for code in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S):
        if code.startswith(f"# distributed: {name}\n"):
            return code
    raise AssertionError(f"no block {name!r} in {DOC}")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_job(
    children: ChildProcesses, code: str, cluster: dict[str, int], env: dict[str, str], tmp: Path,
    *, wait_for: str | None = None, per_task_env: dict[str, dict[str, str]] | None = None,
) -> dict[str, tuple[int | None, str]]:
    """Start one process per task of ``cluster`` ({job: count}) running ``code`` with its
    ``TF_CONFIG``; wait for all of them (or only the ``wait_for`` task, e.g. a PS job's chief,
    whose ps and worker serve forever) and kill the rest. Each task runs in ``tmp`` (relative paths
    are the job's). Returns {"worker-0": (exit code, stderr)}."""
    ports = iter(free_ports(sum(cluster.values())))
    spec = {job: [f"127.0.0.1:{next(ports)}" for _ in range(n)] for job, n in cluster.items()}
    procs: dict[str, subprocess.Popen] = {}
    for job, n in cluster.items():
        for i in range(n):
            task = f"{job}-{i}"
            (tmp / f"tmp-{task}").mkdir(parents=True, exist_ok=True)
            task_env = {
                **env, "TF_CONFIG": json.dumps({"cluster": spec, "task": {"type": job, "index": i}}),
                "TMPDIR": str(tmp / f"tmp-{task}"), "PYTHONHASHSEED": "0", "DUMP_DIR": str(tmp),
                **(per_task_env or {}).get(task, {}),
            }
            procs[task] = children.popen(
                [sys.executable, "-c", with_deadline(code, DEADLINE + 10)], env=task_env, cwd=tmp,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
    waited = [wait_for] if wait_for else list(procs)
    deadline = time.monotonic() + DEADLINE
    failed_at: float | None = None
    while time.monotonic() < deadline and any(procs[t].poll() is None for t in waited):
        if failed_at is None and any(procs[t].poll() not in (None, 0) for t in waited):
            failed_at = time.monotonic()  # the others now wait in a collective: give them a moment
        if failed_at is not None and time.monotonic() - failed_at > 5:
            break
        time.sleep(0.2)
    results = {}
    for task, proc in procs.items():
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=30)
        results[task] = (proc.returncode, err)
    return results


def assert_ok(results: dict[str, tuple[int | None, str]], *tasks: str) -> None:
    for task in tasks or list(results):
        code, err = results[task]
        assert code == 0, f"{task} exited {code}:\n{err[-3000:]}"


def child_env(**extra: str) -> dict[str, str]:
    import os

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def no_temp_files(tmp: Path) -> list[Path]:
    return [p for d in tmp.glob("tmp-*") for p in d.rglob("*")]


def steps_once(store: ckptstore.Store, run: str, last: int) -> None:
    assert [s.step for s in store.steps(run)] == list(range(1, last + 1))
    assert store.metric_history(run) == []  # nothing was logged twice


# --------------------------------------------------------------------------- MultiWorkerMirroredStrategy


def test_mwms_custom_loop_one_run_one_checkpoint_per_save_and_restores_across_topologies(children: ChildProcesses, tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    env = child_env(CKPTSTORE_URI=uri)
    code = block("mwms-loop") + DUMP
    assert_ok(run_job(children, code, {"worker": 2}, env, tmp_path))
    with ckptstore.open_store(uri) as store:
        assert [r.name for r in store.runs()] == ["mw-job"]
        run = store.get_run("mw-job")
        assert run.status == "finished" and run.tags["ckptstore.workers"] == "2"
        assert [c.step for c in store.checkpoints("mw-job")] == [4, 8]
        steps_once(store, "mw-job", 8)
    assert no_temp_files(tmp_path) == []
    chief, follower = np.load(tmp_path / "worker-0.npz"), np.load(tmp_path / "worker-1.npz")
    assert all(np.array_equal(chief[k], follower[k]) for k in chief.files)

    # Restore into one process and into MirroredStrategy over two devices: the chief's weights.
    check = block("restore") + (
        "\nref = np.load(__import__('os').environ['DUMP_DIR'] + '/worker-0.npz')\n"
        "assert all(np.array_equal(v.numpy(), ref[f'arr_{i}']) for i, v in enumerate(single.weights))\n"
        "print('restored exactly')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", with_deadline(check, 120)], env=child_env(CKPTSTORE_URI=uri, DUMP_DIR=str(tmp_path)),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and "restored exactly" in done.stdout, done.stderr[-3000:]

    # Run the job again: it resumes the run from its latest checkpoint, on both workers.
    assert_ok(run_job(children, code, {"worker": 2}, env, tmp_path))
    with ckptstore.open_store(uri) as store:
        assert [c.step for c in store.checkpoints("mw-job")] == [4, 8, 12, 16]
        steps_once(store, "mw-job", 16)
        assert store.get_run("mw-job").status == "finished"


@pytest.mark.postgres
def test_mwms_chief_killed_mid_save_on_postgres_and_a_bucket_commits_nothing_and_the_rerun_saves(children: ChildProcesses, tmp_path: Path, pg_server, s3_server) -> None:  # noqa: ANN001
    uri = pg_server.new_database()
    ckptstore.open_store(uri, root=f"s3://{s3_server.new_bucket()}/job").close()
    env = child_env(CKPTSTORE_URI=uri)
    caches = {f"worker-{i}": {"CKPTSTORE_CACHE_DIR": str(tmp_path / f"cache-{i}")} for i in range(2)}
    code = block("mwms-loop")
    # The chief dies after its files are uploaded to the bucket, before the commit transaction.
    crash = {task: dict(extra) for task, extra in caches.items()}
    crash["worker-0"]["CKPTSTORE_FAULT"] = "moved"
    results = run_job(children, code, {"worker": 2}, env, tmp_path, per_task_env=crash)
    assert results["worker-0"][0] == -9
    with ckptstore.open_store(uri) as store:
        assert store.checkpoints("mw-job") == []
        assert store.get_run("mw-job").status == "crashed"
        with store.read() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM blobs").scalar() == 0
    assert no_temp_files(tmp_path) == []  # the follower never got to its part of the save
    # Run the job again: the run resumes (no checkpoint yet: from the start) and saves.
    assert_ok(run_job(children, code, {"worker": 2}, env, tmp_path, per_task_env=caches))
    with ckptstore.open_store(uri) as store:
        assert [c.step for c in store.checkpoints("mw-job")] == [4, 8]
        assert [s.step for s in store.steps("mw-job")] == list(range(1, 9))
        assert store.get_run("mw-job").status == "finished"
        prefix = store.materialize("mw-job@latest", tmp_path / "out")  # whole and digest-checked, from the bucket
        recorded = {v.name for v in store.variables("mw-job@latest")}
    assert len(recorded) > 4 and recorded <= {name for name, _ in tf.train.list_variables(str(prefix))}


@pytest.mark.postgres
def test_mwms_keras_fit_with_callback_on_postgres_and_one_bucket(children: ChildProcesses, tmp_path: Path, pg_server, s3_server) -> None:  # noqa: ANN001
    uri = pg_server.new_database()
    root = f"s3://{s3_server.new_bucket()}/job"
    ckptstore.open_store(uri, root=root).close()  # the database records the bucket: workers need only the URL
    env = child_env(CKPTSTORE_URI=uri)
    caches = {f"worker-{i}": {"CKPTSTORE_CACHE_DIR": str(tmp_path / f"cache-{i}")} for i in range(2)}
    assert_ok(run_job(children, block("mwms-fit"), {"worker": 2}, env, tmp_path, per_task_env=caches))
    with ckptstore.open_store(uri) as store:
        assert [r.name for r in store.runs()] == ["fit-job"]
        assert [c.step for c in store.checkpoints("fit-job")] == [8, 16]  # 256 samples / 32 a step
        rows = store.steps("fit-job")
        assert [r.step for r in rows] == list(range(1, 17)) and store.metric_history("fit-job") == []
        assert {r.step: r.metrics["epoch"] for r in rows if "epoch" in r.metrics} == {8: 1.0, 16: 2.0}
        # Every object in the bucket is one the chief's commits name: the follower put none.
        bucket = root[len("s3://"):].split("/")[0]
        keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket, Prefix="job/objects/").get("Contents", [])]
        stored = {k.split("/objects/", 1)[1].replace("/", "") for k in keys}
        with store.read() as conn:
            named = {row[0] for row in conn.exec_driver_sql("SELECT digest FROM blobs")}
        assert stored and stored <= named
    assert not (tmp_path / "cache-1").exists() or not any(p.is_file() for p in (tmp_path / "cache-1").rglob("*"))
    assert no_temp_files(tmp_path) == []


# --------------------------------------------------------------------------- one process, several devices


def test_mirrored_strategy_example_and_restore_then_train_under_it(tmp_path: Path) -> None:
    # The restored model trained one more epoch equals the original trained one more epoch.
    same = (
        "\nmodel.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)\n"
        "assert type(restored.optimizer.variables[1].value).__name__ == 'MirroredVariable'\n"
        "assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.weights, restored.weights))\n"
        "print('trained on exactly')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", with_deadline(block("mirrored") + same, 120)], env=child_env(CKPTSTORE_URI=str(tmp_path / "store")),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and "trained on exactly" in done.stdout, done.stderr[-3000:]
    with ckptstore.open_store(tmp_path / "store") as store:
        assert [c.step for c in store.checkpoints("mirrored")] == [8, 16]
        assert "ckptstore.workers" not in store.get_run("mirrored").tags  # one process: nothing to check on resume


# --------------------------------------------------------------------------- ParameterServerStrategy


def test_ps_job_saves_sharded_variables_whole_and_restores_into_one_process(children: ChildProcesses, tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    results = run_job(children, block("ps") + DUMP, {"chief": 1, "ps": 1, "worker": 1}, child_env(CKPTSTORE_URI=uri), tmp_path, wait_for="chief-0")
    assert_ok(results, "chief-0")
    with ckptstore.open_store(uri) as store:
        assert [r.name for r in store.runs()] == ["ps-job"]
        assert [c.step for c in store.checkpoints("ps-job")] == [4, 8]
        steps_once(store, "ps-job", 8)
        shapes = {v.name: v.shape for v in store.variables("ps-job@latest")}
        assert shapes == {"model/w/.ATTRIBUTES/VARIABLE_VALUE": [8, 4], "model/b/.ATTRIBUTES/VARIABLE_VALUE": [4]}
        model = tf.Module()
        model.w, model.b = tf.Variable(tf.zeros([8, 4])), tf.Variable(tf.zeros([4]))
        store.restore("ps-job@latest", tf.train.Checkpoint(model=model))
    shown = subprocess.run([sys.executable, "-m", "ckptstore", "--store", uri, "vars", "ps-job@latest"],
                           capture_output=True, text=True, timeout=60)
    assert re.search(r"model/w/\S*\s+float32\s+\[8,4\]", shown.stdout), shown.stdout + shown.stderr
    chief = np.load(tmp_path / "chief-0.npz")
    assert np.array_equal(model.w.numpy(), chief["arr_0"]) and np.array_equal(model.b.numpy(), chief["arr_1"])
    assert np.abs(chief["arr_0"]).sum() > 0  # it trained


# --------------------------------------------------------------------------- the drop-ins on every worker


def test_mwms_checkpoint_manager_dropin_chief_records_follower_leaves_nothing(children: ChildProcesses, tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    env = child_env(CKPTSTORE_URI=uri)
    code = block("mwms-manager") + DUMP
    assert_ok(run_job(children, code, {"worker": 2}, env, tmp_path))
    with ckptstore.open_store(uri) as store:
        assert [r.name for r in store.runs()] == ["manager-job"]
        assert [(c.step, c.prefix) for c in store.checkpoints("manager-job")] == [(4, "ckpt-4"), (8, "ckpt-8")]
        steps_once(store, "manager-job", 8)
        assert store.get_run("manager-job").status == "finished"
        single = ckptstore.open_store(uri)  # restore into one process: the chief's weights
    chief, follower = np.load(tmp_path / "worker-0.npz"), np.load(tmp_path / "worker-1.npz")
    assert all(np.array_equal(chief[k], follower[k]) for k in chief.files)
    # Only the chief's directory, as TensorFlow's manager leaves it; no workertemp_1, no temp file.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("ckpts", "workertemp"))) == ["ckpts"]
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpts")) == str(tmp_path / "ckpts" / "ckpt-8")
    assert no_temp_files(tmp_path) == []
    model = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(1)])
    single.restore("manager-job@latest", tf.train.Checkpoint(model=model))
    single.close()
    assert all(np.array_equal(v.numpy(), chief[f"arr_{i}"]) for i, v in enumerate(model.weights))

    # Run the job again: every worker restores the chief's latest and goes on; one run still.
    assert_ok(run_job(children, code, {"worker": 2}, env, tmp_path))
    with ckptstore.open_store(uri) as store:
        assert [c.step for c in store.checkpoints("manager-job")] == [12, 16]  # TF's max_to_keep=2, forgotten too
        steps_once(store, "manager-job", 16)
    assert not (tmp_path / "workertemp_1").exists() and no_temp_files(tmp_path) == []


# --------------------------------------------------------------------------- preemption across workers

# Prepended to a worker's script: the worker named by $SIGTERM_TASK sends itself SIGTERM right
# after it logged step $SIGTERM_AT (a preemption notice that arrives in the middle of training,
# at a step the test knows).
SIGTERM_AT = """
import os as _os, signal as _signal, ckptstore.preemption as _pre
_log = _pre.Checkpointing.log
def _log_then_sigterm(self, **metrics):
    _log(self, **metrics)
    if _os.environ.get("SIGTERM_AT") == str(self.step):
        _os.kill(_os.getpid(), _signal.SIGTERM)
_pre.Checkpointing.log = _log_then_sigterm
"""


def test_mwms_sigterm_to_one_worker_stops_all_at_one_checkpoint_and_the_rerun_ends_as_uninterrupted(children: ChildProcesses, tmp_path: Path) -> None:
    code = SIGTERM_AT + block("mwms-preemption") + DUMP
    # SIGTERM to the non-chief worker after step 13: every worker saves step 13 and exits 42.
    uri = str(tmp_path / "store")
    per_task = {"worker-1": {"SIGTERM_AT": "13"}}
    results = run_job(children, code, {"worker": 2}, child_env(CKPTSTORE_URI=uri), tmp_path, per_task_env=per_task)
    assert {task: code for task, (code, _) in results.items()} == {"worker-0": 42, "worker-1": 42}, results["worker-0"][1][-3000:]
    assert not (tmp_path / "worker-0.npz").exists()  # stopped before the end of the script
    with ckptstore.open_store(uri) as store:
        assert [r.name for r in store.runs()] == ["pre-job"]
        assert [c.step for c in store.checkpoints("pre-job")] == [10, 13]  # one committed checkpoint for the notice
        steps_once(store, "pre-job", 13)
        assert store.get_run("pre-job").status in ("running", "crashed")  # suspended: the re-run resumes it
    assert no_temp_files(tmp_path) == []

    # Run the job again: every worker resumes from step 13 and trains to step 40.
    assert_ok(run_job(children, code, {"worker": 2}, child_env(CKPTSTORE_URI=uri), tmp_path))
    with ckptstore.open_store(uri) as store:
        assert [c.step for c in store.checkpoints("pre-job")] == [10, 13, 20, 30, 40]
        steps_once(store, "pre-job", 40)
        assert store.get_run("pre-job").status == "finished"
    resumed = np.load(tmp_path / "worker-0.npz")

    # The same job never interrupted, in another store: the same final weights, bit for bit.
    other = tmp_path / "uninterrupted"
    other.mkdir()
    assert_ok(run_job(children, code, {"worker": 2}, child_env(CKPTSTORE_URI=str(other / "store")), other))
    uninterrupted = np.load(other / "worker-0.npz")
    assert all(np.array_equal(resumed[k], uninterrupted[k]) for k in resumed.files)


def test_mwms_sigterm_to_the_chief_stops_every_worker_at_the_same_step(children: ChildProcesses, tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    per_task = {"worker-0": {"SIGTERM_AT": "7"}}
    results = run_job(children, SIGTERM_AT + block("mwms-preemption"), {"worker": 2}, child_env(CKPTSTORE_URI=uri), tmp_path, per_task_env=per_task)
    assert {task: code for task, (code, _) in results.items()} == {"worker-0": 42, "worker-1": 42}, results["worker-1"][1][-3000:]
    with ckptstore.open_store(uri) as store:
        assert [c.step for c in store.checkpoints("pre-job")] == [7]
        steps_once(store, "pre-job", 7)
    assert no_temp_files(tmp_path) == []


# Prepended to a Keras worker's script: as SIGTERM_AT, after the callback handled batch step $SIGTERM_AT.
SIGTERM_AT_BATCH = """
import os as _os, signal as _signal, ckptstore.keras as _ck
_end = _ck.BackupAndRestore.on_train_batch_end
def _end_then_sigterm(self, batch, logs=None):
    _end(self, batch, logs)
    if _os.environ.get("SIGTERM_AT") == str(self.step):
        _os.kill(_os.getpid(), _signal.SIGTERM)
_ck.BackupAndRestore.on_train_batch_end = _end_then_sigterm
"""


def test_mwms_keras_backup_and_restore_sigterm_to_one_worker_then_rerun_ends_as_uninterrupted(children: ChildProcesses, tmp_path: Path) -> None:
    code = SIGTERM_AT_BATCH + block("mwms-backup") + DUMP
    uri = str(tmp_path / "store")
    # SIGTERM to the follower after step 10: at the next batch's end every worker saves step 11.
    results = run_job(children, code, {"worker": 2}, child_env(CKPTSTORE_URI=uri), tmp_path, per_task_env={"worker-1": {"SIGTERM_AT": "10"}})
    assert {task: code for task, (code, _) in results.items()} == {"worker-0": 42, "worker-1": 42}, results["worker-0"][1][-3000:]
    with ckptstore.open_store(uri) as store:
        assert [r.name for r in store.runs()] == ["backup-job"]
        assert [c.step for c in store.checkpoints("backup-job")] == [4, 8, 11]
        steps_once(store, "backup-job", 11)
    assert_ok(run_job(children, code, {"worker": 2}, child_env(CKPTSTORE_URI=uri), tmp_path))
    with ckptstore.open_store(uri) as store:
        assert [c.step for c in store.checkpoints("backup-job")] == [4, 8, 11, 12, 16, 20, 24]
        steps_once(store, "backup-job", 24)
        assert store.get_run("backup-job").status == "finished"
    assert no_temp_files(tmp_path) == []
    resumed = np.load(tmp_path / "worker-0.npz")
    other = tmp_path / "uninterrupted"
    other.mkdir()
    assert_ok(run_job(children, code, {"worker": 2}, child_env(CKPTSTORE_URI=str(other / "store")), other))
    uninterrupted = np.load(other / "worker-0.npz")
    assert all(np.array_equal(resumed[k], uninterrupted[k]) for k in resumed.files)


# --------------------------------------------------------------------------- the chief decides, the followers follow

# Appended to the lockstep-start example: what each worker's handle said when the run started.
STARTED = """
import json as _json
with open(os.path.join(os.environ["DUMP_DIR"], f"started-{strategy.cluster_resolver.task_id}.json"), "w") as _f:
    _json.dump({"type": type(run).__name__, "resumed_from": run.resumed_from, "first": first}, _f)
"""
# Put into the example after the strategy is made: this worker was handed another job's TF_CONFIG.
OTHER_TF_CONFIG = """
if os.environ.get("OTHER_TF_CONFIG"):
    os.environ["TF_CONFIG"] = os.environ["OTHER_TF_CONFIG"]
store = ckptstore.open_store()
"""


def test_mwms_reused_name_without_resume_is_refused_on_every_worker_and_followers_follow_the_chief(children: ChildProcesses, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = str(tmp_path / "store")
    script = block("lockstep-start").replace("store = ckptstore.open_store()\n", OTHER_TF_CONFIG) + STARTED
    # Earlier runs of the job (as their chiefs recorded them): steps 0-2, finished; one of 3 workers.
    for name, workers in (("nightly", 2), ("three", 3)):
        cluster = {"worker": [f"127.0.0.1:{i + 1}" for i in range(workers)]}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
        with ckptstore.open_store(uri) as store, store.start_run(name) as run:
            for step in range(3):
                run.log(step, loss=float(step))
    monkeypatch.delenv("TF_CONFIG")

    # The job again without resume=True: the chief refuses the used name, and so does the
    # follower (one line, at once), instead of waiting for a chief that gave up.
    start = time.monotonic()
    results = run_job(children, script, {"worker": 2}, child_env(CKPTSTORE_URI=uri), tmp_path)
    assert {task: code for task, (code, _) in results.items()} == {"worker-0": 1, "worker-1": 1}
    assert time.monotonic() - start < DEADLINE / 2
    for task, (_, err) in results.items():
        last = err.strip().splitlines()[-1]
        assert last.startswith("ckptstore.errors.RunExistsError: run 'nightly' already exists in"), (task, last)
    assert not (tmp_path / "started-0.json").exists() and not (tmp_path / "started-1.json").exists()
    with ckptstore.open_store(uri) as store:
        assert store.get_run("nightly").status == "finished"
        assert [s.step for s in store.steps("nightly")] == [0, 1, 2]

    # A resume by another number of workers than trained the run: refused on every worker too.
    results = run_job(children, script, {"worker": 2}, child_env(CKPTSTORE_URI=uri, RUN="three", RESUME="1"), tmp_path)
    assert {task: code for task, (code, _) in results.items()} == {"worker-0": 1, "worker-1": 1}
    for task, (_, err) in results.items():
        last = err.strip().splitlines()[-1]
        assert last.startswith("ckptstore.errors.TopologyChangedError: run 'three' was trained by 3 worker(s) and this job has 2"), (task, last)
    with ckptstore.open_store(uri) as store:
        assert sorted(r.name for r in store.runs()) == ["nightly", "three"] and store.get_run("three").status == "finished"

    # A follower given another job's TF_CONFIG: its own line, the chief's "another worker refused", no run.
    other = json.dumps({"cluster": {"worker": ["127.0.0.1:1"] * 3}, "task": {"type": "worker", "index": 5}})
    results = run_job(children, script, {"worker": 2}, child_env(CKPTSTORE_URI=uri, RUN="new"), tmp_path,
                      per_task_env={"worker-1": {"OTHER_TF_CONFIG": other}})
    assert {task: code for task, (code, _) in results.items()} == {"worker-0": 1, "worker-1": 1}
    lines = {task: err.strip().splitlines()[-1] for task, (_, err) in results.items()}
    assert lines["worker-1"].startswith("ckptstore.errors.InvalidOptionError: TF_CONFIG names task worker 5, which its cluster"), lines
    assert lines["worker-0"].startswith("ckptstore.errors.InvalidOptionError: another worker of this job refused to start run 'new'"), lines
    with ckptstore.open_store(uri) as store:
        assert sorted(r.name for r in store.runs()) == ["nightly", "three"]

    # With resume=True every worker continues after the step the chief resumed from.
    assert_ok(run_job(children, script, {"worker": 2}, child_env(CKPTSTORE_URI=uri, RESUME="1"), tmp_path))
    started = {i: json.loads((tmp_path / f"started-{i}.json").read_text()) for i in range(2)}
    assert started == {0: {"type": "Run", "resumed_from": 2, "first": 3}, 1: {"type": "FollowerRun", "resumed_from": 2, "first": 3}}
    with ckptstore.open_store(uri) as store:
        assert [s.step for s in store.steps("nightly")] == list(range(6)) and store.metric_history("nightly") == []

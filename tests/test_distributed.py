"""Roles in a tf.distribute job and what each records (issue 27), in one process: ``TF_CONFIG``
read without TensorFlow, a follower run that writes nothing, the bad inputs as one line each.
The real multi-process jobs are in test_distributed_jobs.py."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

import ckptstore
from ckptstore.distributed import role
from ckptstore.errors import InvalidOptionError, NotChiefError, StepConflictError, TopologyChangedError, UnknownRunError

MWMS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
PS = {"chief": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"], "worker": ["127.0.0.1:3"]}


def tf_config(cluster: dict, task_type: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize(
    "cluster, task_type, index, kind, chief",
    [
        (MWMS, "worker", 0, "chief", True),
        (MWMS, "worker", 1, "worker", False),
        (PS, "chief", 0, "chief", True),
        (PS, "worker", 0, "worker", False),
        (PS, "ps", 0, "ps", False),
        (MWMS, "evaluator", 0, "evaluator", True),
    ],
)
def test_role_follows_tensorflows_chief_rule(cluster: dict, task_type: str, index: int, kind: str, chief: bool) -> None:
    r = role(tf_config=tf_config(cluster, task_type, index))
    assert (r.kind, r.is_chief, r.task_id) == (kind, chief, index)
    assert r.num_workers == 2 and r.multi_worker


def test_no_tf_config_is_a_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert role().kind == "single" and role().is_chief and not role().multi_worker
    assert role(tf_config='{"cluster": {}, "task": {}}').kind == "single"


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not valid JSON"),
        (tf_config(MWMS, "worker", 2), "does not have"),
        (tf_config(PS, "master", 0), "not one of"),
        (json.dumps({"cluster": MWMS}), "no task type"),
    ],
)
def test_bad_tf_config_is_one_line(text: str, words: str) -> None:
    with pytest.raises(InvalidOptionError, match=words) as err:
        role(tf_config=text)
    assert "\n" not in str(err.value)


class _Resolver:
    def __init__(self, task_type: str, task_id: int) -> None:
        self.task_type, self.task_id = task_type, task_id

    def cluster_spec(self):  # noqa: ANN201 - what TensorFlow's resolvers return, as far as role() reads it
        class Spec:
            def as_dict(self) -> dict:
                return MWMS

        return Spec()


class _Strategy:
    """The attributes ``role`` reads of a strategy (a real one is used in the job tests)."""

    def __init__(self, task_type: str, task_id: int, should_checkpoint: bool) -> None:
        self.cluster_resolver = _Resolver(task_type, task_id)
        self.extended = type("Extended", (), {"should_checkpoint": should_checkpoint})()


def test_strategy_decides_and_must_agree_with_tf_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 1))
    assert role(_Strategy("worker", 1, False)).kind == "worker"
    with pytest.raises(InvalidOptionError, match="TF_CONFIG names worker 1 but the strategy runs as worker 0"):
        role(_Strategy("worker", 0, True))
    monkeypatch.delenv("TF_CONFIG")
    assert role(_Strategy("worker", 0, True)).is_chief


def _counts(store: ckptstore.Store) -> tuple[int, int]:
    with store.read() as conn:
        runs = conn.exec_driver_sql("SELECT COUNT(*) FROM runs").scalar()
        metrics = conn.exec_driver_sql("SELECT COUNT(*) FROM metrics").scalar()
    return runs, metrics


def test_follower_creates_and_logs_nothing(sqlite_store: ckptstore.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 1))
    with sqlite_store.start_run("job", params={"lr": 0.1}) as run:
        assert type(run).__name__ == "FollowerRun" and run.resumed_from is None and run.next_step == 0
        for step in range(1, 4):
            run.log(step, loss=1.0 / step)
        assert run.flush() == 0 and run.next_step == 4
        with pytest.raises(ckptstore.MetricValueError, match="'loss' at step 5"):  # as on the chief
            run.log(5, loss="high")
        with pytest.raises(NotChiefError, match="worker 1 of a 2-worker job: only the chief writes"):
            run.freeze(object(), ["out"])
        with pytest.raises(NotChiefError, match="store a SavedModel"):
            run.export_saved_model(object())
        run.set_retention(ckptstore.Retention(keep_best=ckptstore.KeepBest("val_loss")))  # the drop-ins do, on every worker
        assert run.retention_rule().keep_best.metric == "val_loss"
    sqlite_store.close()
    with ckptstore.open_store(tmp_path / "store") as again:
        assert _counts(again) == (0, 0)


def test_chief_records_the_worker_count_and_a_follower_follows_a_resume(sqlite_store: ckptstore.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 0))
    with sqlite_store.start_run("job") as run:
        assert type(run) is ckptstore.Run
        for step in range(1, 6):
            run.log(step, loss=1.0)
    assert sqlite_store.get_run("job").tags["ckptstore.workers"] == "2"

    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 1))
    follower = sqlite_store.start_run("job", resume=True)
    assert follower.resumed_from == 5 and follower.next_step == 6
    with pytest.raises(StepConflictError):  # refused on every worker alike
        follower.log(5, loss=2.0)
    assert sqlite_store.get_run("job").status == "finished"  # the follower changed nothing
    handle = sqlite_store.run("job")  # a store given to a non-chief: its handles write nothing either
    handle.log(9, loss=0.0)
    with pytest.raises(NotChiefError, match="store a .keras file"):
        handle.export_keras(object())
    assert sqlite_store.get_run("job").last_step == 5
    with pytest.raises(UnknownRunError):
        sqlite_store.start_run("other", resume="must")
    with pytest.raises(ckptstore.ParamsChangedError, match="would change its params"):  # as on the chief
        monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 0))
        sqlite_store.start_run("job2", params={"lr": 0.1}).finish()
        monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 1))
        sqlite_store.start_run("job2", params={"lr": 0.2}, resume=True)


def test_worker_count_change_on_resume_is_refused(sqlite_store: ckptstore.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 0))
    with sqlite_store.start_run("job") as run:
        run.log(1, loss=1.0)
    three = {"worker": MWMS["worker"] + ["127.0.0.1:3"]}
    before = _counts(sqlite_store)
    for task in (0, 2):  # the chief and a follower alike
        monkeypatch.setenv("TF_CONFIG", tf_config(three, "worker", task))
        with pytest.raises(TopologyChangedError, match="trained by 2 worker.s. and this job has 3") as err:
            sqlite_store.start_run("job", resume=True)
        assert "\n" not in str(err.value)
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(TopologyChangedError, match="this job has 1"):
        sqlite_store.start_run("job", resume=True)
    assert _counts(sqlite_store) == before and sqlite_store.get_run("job").status == "finished"
    monkeypatch.setenv("TF_CONFIG", tf_config(three, "worker", 0))
    with sqlite_store.start_run("job", resume=True, update_params=True):
        pass
    assert sqlite_store.get_run("job").tags["ckptstore.workers"] == "3"


def test_multi_worker_run_needs_a_name_and_a_bad_tf_config_writes_nothing(sqlite_store: ckptstore.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 0))
    with pytest.raises(InvalidOptionError, match="name the run"):
        sqlite_store.start_run()
    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 5))
    with pytest.raises(InvalidOptionError, match="another job's TF_CONFIG"):
        sqlite_store.start_run("job")
    assert _counts(sqlite_store) == (0, 0)


def test_follower_save_writes_a_deleted_temp_copy_only(sqlite_store: ckptstore.Store, tiny_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 1))
    # What a follower killed mid-save left (pid 2**22 + 1 is above any pid_max: never alive).
    dead = tmp_path / "tmp" / f"ckptstore-worker-{2**22 + 1}-x1y2.ckptstore-tmp"
    (dead / "model.ckpt-3.index").parent.mkdir()
    (dead / "model.ckpt-3.index").write_bytes(b"partial")
    run = sqlite_store.start_run("job")
    assert run.save(tiny_model(), 1) is None
    assert run.save(tiny_model(), 2, blocking=False) is None
    assert list((tmp_path / "tmp").iterdir()) == []
    with sqlite_store.read() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM checkpoints").scalar() == 0
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM blobs").scalar() == 0
    assert not any(p.is_file() for p in (tmp_path / "store").rglob("*") if "objects" in p.parts)


def _tf1_graph(partitions: int | None, value: float | None):  # noqa: ANN202 - (session, read op)
    from tests.helpers.skips import require_tensorflow

    tf = require_tensorflow()
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        init = tf1.random_normal_initializer(seed=1) if value is None else tf1.constant_initializer(value)
        kw = {"partitioner": tf1.fixed_size_partitioner(partitions)} if partitions else {}
        w = tf1.get_variable("w", shape=[8, 4], initializer=init, **kw)
        read = tf.convert_to_tensor(w)
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
    return sess, read


def test_tf1_partitioned_variable_is_saved_whole_and_restores_into_any_partitioning(sqlite_store: ckptstore.Store) -> None:
    sess, read = _tf1_graph(2, None)
    full = sess.run(read)
    with sqlite_store.start_run("tf1-parts") as run:
        run.save(sess, 1)
    assert [(v.name, v.shape) for v in sqlite_store.variables("tf1-parts@1")] == [("w", [8, 4])]
    for partitions in (None, 2, 4):
        other, other_read = _tf1_graph(partitions, 0.0)
        sqlite_store.restore("tf1-parts@1", other)
        assert (other.run(other_read) == full).all()
    wrong, _ = _tf1_graph(4, 0.0)
    with wrong.graph.as_default():
        import tensorflow as tf

        tf.compat.v1.get_variable("extra", shape=[2], partitioner=tf.compat.v1.fixed_size_partitioner(2))
    with pytest.raises(ckptstore.RestoreMismatchError, match="not in the checkpoint: extra"):
        sqlite_store.restore("tf1-parts@1", wrong)


def _no_rows(store: ckptstore.Store) -> None:
    with store.read() as conn:
        for table in ("runs", "checkpoints", "blobs", "metrics"):
            assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar() == 0, table


def test_tf2_manager_on_a_non_chief_writes_to_workertemp_and_removes_it(sqlite_store: ckptstore.Store, tiny_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import tensorflow as tf

    import ckptstore.tf2

    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 1))
    monkeypatch.setenv("CKPTSTORE_URI", str(tmp_path / "store"))
    directory = tmp_path / "train" / "ckpts"
    written: list[str] = []
    ckpt = tf.train.Checkpoint(model=tiny_model())
    # No run yet (the chief may be creating it): the manager follows it and creates nothing.
    manager = ckptstore.tf2.CheckpointManager(ckpt, str(directory), max_to_keep=2, store=sqlite_store)
    assert type(manager.run).__name__ == "FollowerRun"
    options = tf.train.CheckpointOptions(experimental_write_callbacks=[written.append])  # TF calls it with the path written
    assert manager.save(options=options) == str(directory / "ckpt-1")  # the path the chief's save writes
    assert manager.save(checkpoint_number=7, options=options) == manager.latest_checkpoint == str(directory / "ckpt-7")
    # Written where TensorFlow's PreemptionCheckpointHandler has a non-chief write, then removed.
    temp = tmp_path / "train" / "workertemp_1" / "ckpts"
    assert written == [str(temp / "ckpt-1"), str(temp / "ckpt-7")]
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == []
    assert int(ckpt.save_counter) == 2  # counted as on the chief: the next save has the same number
    _no_rows(sqlite_store)


def test_tf2_manager_on_a_non_chief_skips_the_saves_the_chief_skips(sqlite_store: ckptstore.Store, tiny_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import tensorflow as tf

    import ckptstore.tf2

    step = tf.Variable(0, dtype=tf.int64)
    managers = {}
    for task in (0, 1):
        monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", task))
        ckpt = tf.train.Checkpoint(model=tiny_model())
        managers[task] = ckptstore.tf2.CheckpointManager(
            ckpt, str(tmp_path / f"dir{task}"), max_to_keep=None, store=sqlite_store, step_counter=step, checkpoint_interval=3)
    saved: dict[int, list[int]] = {0: [], 1: []}
    for s in range(1, 9):
        step.assign(s)
        for task, manager in managers.items():
            monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", task))
            if manager.save() is not None:
                saved[task].append(s)
    assert saved[0] == saved[1] == [1, 4, 7]
    assert [c.step for c in sqlite_store.checkpoints(managers[0].run.name)] == [1, 2, 3]  # the chief's, by number
    assert not (tmp_path / "workertemp_1").exists()


def test_tf1_saver_on_a_non_chief_writes_to_workertemp_and_removes_it(sqlite_store: ckptstore.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    import ckptstore.tf1

    monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", 1))
    prefix = str(tmp_path / "train" / "model.ckpt")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        tf.compat.v1.Variable(1.0, name="w")
        sess.run(tf.compat.v1.global_variables_initializer())
        saver = ckptstore.tf1.Saver(store=sqlite_store, run_name="tf1-job", max_to_keep=2)
        assert type(saver.run).__name__ == "FollowerRun"
        assert saver.save(sess, prefix, global_step=5) == prefix + "-5"  # the path the chief's save writes
        assert saver.save(sess, prefix, global_step=6) == prefix + "-6"
        by_directory = ckptstore.tf1.Saver(store=sqlite_store)  # its run is picked by directory: followed
        assert by_directory.save(sess, prefix, global_step=7) == prefix + "-7"
    assert not (tmp_path / "train").exists() or list((tmp_path / "train").iterdir()) == []
    assert not (tmp_path / "workertemp_1").exists()
    _no_rows(sqlite_store)


def test_multi_worker_checkpointing_without_the_strategy_is_one_line_and_writes_nothing(sqlite_store: ckptstore.Store, tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import tensorflow as tf

    from ckptstore.preemption import Checkpointing

    ckpt = tf.train.Checkpoint(model=tiny_model())
    for task in (0, 1):
        monkeypatch.setenv("TF_CONFIG", tf_config(MWMS, "worker", task))
        with pytest.raises(InvalidOptionError, match=f"worker {task} of a 2-worker job: pass strategy=") as err:
            Checkpointing(sqlite_store, "job", ckpt, save_every=2)
        assert "\n" not in str(err.value)
    _no_rows(sqlite_store)
    # The coordinator of a ParameterServerStrategy job runs the loop alone: nothing to agree on.
    monkeypatch.setenv("TF_CONFIG", tf_config(PS, "chief", 0))
    with Checkpointing(sqlite_store, "ps-job", ckpt, save_every=2) as pc:
        for _ in pc.steps(2):
            pc.log(loss=1.0)
    assert [c.step for c in sqlite_store.checkpoints("ps-job")] == [2]

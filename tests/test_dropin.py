"""The drop-ins ``ckptstore.tf1.Saver`` / ``ckptstore.tf2.CheckpointManager``: TensorFlow's files
and behaviour, and the same checkpoints recorded in a store run (``ckptstore.dropin``)."""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

import ckptstore
from tests.helpers.processes import run_py
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()


def _steps(store, run):
    return [(c.step, c.prefix) for c in store.checkpoints(run)]


def test_manager_leaves_tf_files_and_records_the_kept_ones(sqlite_store, tmp_path):
    v = tf.Variable(1.0)
    ckpt = tf.train.Checkpoint(v=v)
    d = tmp_path / "ckpts"
    m = ckptstore.tf2.CheckpointManager(ckpt, str(d), max_to_keep=2, store=sqlite_store)
    for i in range(4):
        v.assign(float(i))
        path = m.save()
    assert path == str(d / "ckpt-4")
    assert tf.train.latest_checkpoint(str(d)) == path  # the state file is TensorFlow's
    assert sorted(os.listdir(d)) == ["checkpoint", "ckpt-3.data-00000-of-00001", "ckpt-3.index",
                                     "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert _steps(sqlite_store, m.run.name) == [(3, "ckpt-3"), (4, "ckpt-4")]
    assert m.run.name.startswith("ckpts-")  # the directory's run, created finished as an import
    assert sqlite_store.get_run(m.run.name).status == "finished"
    v.assign(-5.0)
    sqlite_store.restore(f"{m.run.name}@4", ckpt)
    assert float(v.numpy()) == 3.0


def test_unknown_keyword_is_a_type_error_as_in_tensorflow(sqlite_store, tmp_path):
    ckpt = tf.train.Checkpoint(v=tf.Variable(1.0))
    with pytest.raises(TypeError):
        ckptstore.tf2.CheckpointManager(ckpt, str(tmp_path), max_to_kep=3, store=sqlite_store)
    with tf.Graph().as_default():
        tf.compat.v1.Variable(1.0, name="w")
        with pytest.raises(TypeError):
            ckptstore.tf1.Saver(max_to_kep=100, store=sqlite_store)


def test_two_savers_keep_their_own_retention_in_one_run(sqlite_store, tmp_path):
    run = sqlite_store.start_run("two")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        w = tf.compat.v1.Variable(1.0, name="w")
        sess.run(tf.compat.v1.global_variables_initializer())
        regular = ckptstore.tf1.Saver(run, max_to_keep=2)
        best = ckptstore.tf1.Saver(run, max_to_keep=1)
        for step in (1, 2, 3):
            regular.save(sess, str(tmp_path / "model"), global_step=step, latest_filename="checkpoint")
        best.save(sess, str(tmp_path / "best"), global_step=10, latest_filename="best_checkpoint")
        regular.save(sess, str(tmp_path / "model"), global_step=4)
    assert regular.last_checkpoints == [str(tmp_path / "model-3"), str(tmp_path / "model-4")]
    assert best.last_checkpoints == [str(tmp_path / "best-10")]
    assert _steps(sqlite_store, "two") == [(3, "model-3"), (4, "model-4"), (10, "best-10")]
    del w


def test_save_without_global_step_restores_by_the_returned_string(sqlite_store, tmp_path):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        w = tf.compat.v1.Variable(7.0, name="w")
        sess.run(tf.compat.v1.global_variables_initializer())
        saver = ckptstore.tf1.Saver(store=sqlite_store, run_name="nostep")
        path = saver.save(sess, str(tmp_path / "model.ckpt"))
        assert path == str(tmp_path / "model.ckpt")
        sess.run(w.assign(0.0))
        saver.restore(sess, path)
        assert sess.run(w) == 7.0
    assert _steps(sqlite_store, "nostep") == [(0, "model.ckpt")]


def test_kept_by_hours_stays_recorded(sqlite_store, tmp_path, monkeypatch):
    from tensorflow.python.checkpoint import checkpoint_management as cm

    clock = [1000.0]
    monkeypatch.setattr(cm.time, "time", lambda: clock[0])
    ckpt = tf.train.Checkpoint(v=tf.Variable(1.0))
    m = ckptstore.tf2.CheckpointManager(ckpt, str(tmp_path), max_to_keep=1, keep_checkpoint_every_n_hours=1,
                                        store=sqlite_store)
    for _ in range(3):
        clock[0] += 3600 * 2
        m.save()
    # TensorFlow keeps all three on disk (two hours apart), so the store keeps them too.
    assert [s for s, _ in _steps(sqlite_store, m.run.name)] == [1, 2, 3]


def test_directory_with_tf_checkpoints_is_recorded_on_first_use(sqlite_store, tmp_path):
    v = tf.Variable(2.0)
    ckpt = tf.train.Checkpoint(v=v)
    vanilla = tf.train.CheckpointManager(ckpt, str(tmp_path), max_to_keep=5)
    vanilla.save()
    vanilla.save()
    m = ckptstore.tf2.CheckpointManager(ckpt, str(tmp_path), max_to_keep=5, store=sqlite_store)
    assert [s for s, _ in _steps(sqlite_store, m.run.name)] == [1, 2]
    v.assign(0.0)
    assert m.restore_or_initialize() == str(tmp_path / "ckpt-2")
    assert float(v.numpy()) == 2.0


def test_stored_reference_restores_through_the_saver(sqlite_store, tmp_path):
    run = sqlite_store.start_run("refs")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        w = tf.compat.v1.Variable(np.arange(4.0), name="w")
        sess.run(tf.compat.v1.global_variables_initializer())
        saver = ckptstore.tf1.Saver(run)
        saver.save(sess, str(tmp_path / "m"), global_step=5)
        sess.run(w.assign(np.zeros(4)))
        saver.restore(sess, "refs@5")
        assert list(sess.run(w)) == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.slow
def test_fresh_process_finds_the_default_store(tmp_path):
    code = textwrap.dedent(
        """
        import os, sys
        import tensorflow as tf
        import ckptstore.tf1
        tf.compat.v1.disable_eager_execution()
        os.chdir(sys.argv[1])
        w = tf.compat.v1.Variable(3.0, name="w")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            ckptstore.tf1.Saver().save(sess, "train/model", global_step=3)
        with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
            saver = ckptstore.tf1.import_meta_graph(ckptstore.tf1.latest_checkpoint("train") + ".meta")
            saver.restore(sess, ckptstore.tf1.latest_checkpoint("train"))
            print("value", sess.run(tf.compat.v1.global_variables()[0]))
        store = ckptstore.open_store()
        print("runs", [r.name.split("-")[0] for r in store.runs()], [c.step for r in store.runs() for c in store.checkpoints(r.name)])
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "CKPTSTORE_URI"}
    out = run_py(code, str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "value 3.0" in out.stdout
    assert "runs ['train'] [3]" in out.stdout
    assert (tmp_path / ".ckptstore").is_dir()


def test_store_failure_is_raised_after_tensorflow_finished_its_save(sqlite_store, tmp_path):
    ckpt = tf.train.Checkpoint(v=tf.Variable(1.0))
    m = ckptstore.tf2.CheckpointManager(ckpt, str(tmp_path), max_to_keep=1, store=sqlite_store)
    m.save()
    sqlite_store.delete_run(m.run.name)
    with pytest.raises(ckptstore.CkptstoreError):
        m.save()
    # TensorFlow's side is complete: state file updated, its retention applied.
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-2")
    assert not (tmp_path / "ckpt-1.index").exists()


@pytest.mark.parametrize("record", ["sync", "background"])
def test_background_recording_lands_in_order(sqlite_store, tmp_path, record):
    ckpt = tf.train.Checkpoint(v=tf.Variable(1.0))
    m = ckptstore.tf2.CheckpointManager(ckpt, str(tmp_path / "m"), max_to_keep=2, store=sqlite_store, record=record)
    for _ in range(4):
        m.save()
    m.sync()
    assert [s for s, _ in _steps(sqlite_store, m.run.name)] == [3, 4]
    run = sqlite_store.start_run(f"bg-{record}")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        tf.compat.v1.Variable(1.0, name="w")
        sess.run(tf.compat.v1.global_variables_initializer())
        saver = ckptstore.tf1.Saver(run, max_to_keep=2, record=record)
        for step in range(1, 5):
            saver.save(sess, str(tmp_path / "s" / "model"), global_step=step)
        saver.sync()
    assert [s for s, _ in _steps(sqlite_store, f"bg-{record}")] == [3, 4]
    with pytest.raises(ValueError):
        ckptstore.tf2.CheckpointManager(ckpt, str(tmp_path / "m"), max_to_keep=2, store=sqlite_store, record="later")


def test_unknown_reference_gets_tensorflows_answers(sqlite_store, tmp_path, monkeypatch):
    monkeypatch.setenv("CKPTSTORE_URI", str(tmp_path / ".ckptstore"))
    assert ckptstore.tf1.latest_checkpoint(str(tmp_path / "no@such")) is None  # as TensorFlow
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        tf.compat.v1.Variable(1.0, name="w")
        saver = ckptstore.tf1.Saver(store=sqlite_store, run_name="x")
        with pytest.raises(ValueError, match="not a valid checkpoint"):
            saver.restore(sess, "nosuchrun@3")


def test_background_record_survives_tensorflow_deleting_the_files(sqlite_store, tmp_path):
    v = tf.Variable(0.0)
    ckpt = tf.train.Checkpoint(v=v)
    m = ckptstore.tf2.CheckpointManager(ckpt, str(tmp_path), max_to_keep=1, store=sqlite_store, record="background")
    for i in range(1, 6):
        v.assign(float(i))
        m.save()  # deletes the previous checkpoint's files, perhaps before its record committed
    m.sync()
    assert _steps(sqlite_store, m.run.name) == [(5, "ckpt-5")]
    v.assign(0.0)
    sqlite_store.restore(f"{m.run.name}@5", ckpt, verify="full")
    assert float(v.numpy()) == 5.0


def test_the_drop_ins_use_the_store_s_public_methods_only():
    import re

    package = os.path.dirname(ckptstore.__file__)
    for module in ("tf1.py", "tf2.py", "dropin.py"):
        with open(os.path.join(package, module), encoding="utf-8") as f:
            source = f.read()
        assert not re.search(r"\.backend\b|flows\.materialized|from \.flows", source), module


def test_cached_checkpoint_is_a_prefix_tensorflow_reads(sqlite_store, tiny_model, tmp_path):
    run = sqlite_store.start_run("a")
    run.save(tiny_model(scale=3.0), 1)
    prefix = sqlite_store.cached_checkpoint("a@latest")
    assert prefix == sqlite_store.cached_checkpoint("a@1")  # one copy, made once
    values = [tf.train.load_checkpoint(str(prefix)).get_tensor(k) for k, _ in tf.train.list_variables(str(prefix)) if "w" in k and "OPTIMIZER" not in k]
    assert values and (values[0] == 3.0).all()
    d = sqlite_store.tensorflow_directory("a")
    assert d.name == "a" and not d.exists()

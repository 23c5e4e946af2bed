"""Asynchronous saves: the values of the call, bounded in flight, failures surfaced, crash-safe."""

from __future__ import annotations

import logging
import signal
import textwrap
import time

import numpy as np
import pytest

import ckptstore
from ckptstore.errors import ConflictError
from ckptstore.files.digest import digest_file
from tests.helpers.processes import run_py
from tests.helpers.skips import require_tensorflow

require_tensorflow()


def test_tf2_async_save_keeps_the_values_of_the_call(sqlite_store, tiny_model):
    run = sqlite_store.start_run("a")
    model = tiny_model(scale=2.0)
    pending = run.save(model, 1, blocking=False)
    model.w.assign(np.zeros((3, 2), np.float32))  # training goes on right after the call
    run.wait()
    assert pending.done() and pending.result().step == 1
    fresh = tiny_model(scale=0.0)
    sqlite_store.restore("a@1", fresh)
    assert (fresh.w.numpy() == 2.0).all()


def test_an_async_save_records_the_readable_names_a_blocking_save_records(sqlite_store):
    import tensorflow as tf

    keras = tf.keras
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(1, name="out")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0, epochs=1)
    run = sqlite_store.start_run("names")
    run.save(model, 1)
    run.save(model, 2, blocking=False)
    run.wait()
    blocking = {(v.name, v.readable) for v in sqlite_store.variables("names@1")}
    assert {(v.name, v.readable) for v in sqlite_store.variables("names@2")} == blocking
    assert "model/dense/kernel/adam/momentum" in {r for _, r in blocking}  # adam_N or not (varnames._stable_name)
    np.testing.assert_array_equal(sqlite_store.read_variable("names@2", "model/dense/kernel"), model.get_layer("dense").kernel.numpy())


def test_tf1_async_save_keeps_the_values_of_the_call(sqlite_store, new_seed_graph):
    from tests.helpers.models import empty_session, run_op

    g, sess, b = new_seed_graph(b=1.0)
    run = sqlite_store.start_run("a")
    run.save(sess, 7, blocking=False)
    with g.as_default():
        sess.run(b.assign(100.0))
    run.finish()  # waits for the commit
    restored = empty_session()
    sqlite_store.restore("a@7", restored)  # through the meta graph written at the call
    assert run_op(restored) == 26.0


def test_at_most_one_save_in_flight_by_default(sqlite_store, tiny_model):
    run = sqlite_store.start_run("a")
    model = tiny_model()
    first = run.save(model, 1, blocking=False)
    second = run.save(model, 2, blocking=False)
    assert first.done()  # the second call waited for a slot
    run.wait()
    assert second.done()
    assert [c.step for c in sqlite_store.checkpoints("a")] == [1, 2]


def test_a_background_failure_is_logged_and_raised_at_the_next_wait(sqlite_store, tiny_model, caplog):
    run = sqlite_store.start_run("a")
    model = tiny_model()
    sqlite_store.set_alias("v1", run.save(model, 1))
    with caplog.at_level(logging.ERROR, logger="ckptstore"):
        pending = run.save(model, 1, blocking=False)  # replacing a tagged step: refused
        while not pending.done():
            time.sleep(0.01)
    assert any("background save of a@1 failed" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConflictError, match="unalias"):
        run.wait()
    run.wait()  # raised once, not forever
    with pytest.raises(ConflictError):
        pending.result()


def test_a_background_failure_is_raised_at_the_next_save(sqlite_store, tiny_model):
    run = sqlite_store.start_run("a")
    model = tiny_model()
    sqlite_store.set_alias("v1", run.save(model, 1))
    pending = run.save(model, 1, blocking=False)
    while not pending.done():
        time.sleep(0.01)
    with pytest.raises(ConflictError):
        run.save(model, 2, blocking=False)
    run.save(model, 2, blocking=False).result()


def test_manager_enable_async_option(sqlite_store):
    import tensorflow as tf

    run = sqlite_store.start_run("m")
    v = tf.Variable(3.0)
    ckpt = tf.train.Checkpoint(v=v)
    manager = ckptstore.tf2.CheckpointManager(ckpt, run, max_to_keep=2)
    ref = manager.save(options=tf.train.CheckpointOptions(enable_async=True))
    v.assign(-1.0)
    assert ref.endswith("ckpt-1")  # TensorFlow's path, as tf.train.CheckpointManager returns
    manager.sync()  # TensorFlow's async save, recorded from its write callback
    assert [c.step for c in sqlite_store.checkpoints("m")] == [1]
    ckpt.restore(manager.latest_checkpoint)
    assert float(v.numpy()) == 3.0
    sqlite_store.restore("m@1", ckpt)
    assert float(v.numpy()) == 3.0


@pytest.mark.slow
def test_interpreter_exit_waits_for_pending_commits(tmp_path):
    code = textwrap.dedent(
        """
        import sys, tensorflow as tf, ckptstore
        store = ckptstore.open_store(sys.argv[1])
        run = store.start_run("exit")
        m = tf.Module(); m.v = tf.Variable(tf.fill([256, 256], 4.0))
        run.save(m, 1, blocking=False)
        # no wait, no finish, no close
        """
    )
    out = run_py(code, str(tmp_path / "store"), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    with ckptstore.open_store(str(tmp_path / "store")) as store:
        assert [c.step for c in store.checkpoints("exit")] == [1]
        assert (store.read_variable("exit@1", "model/v") == 4.0).all()
        assert store.verify().ok


VICTIM = textwrap.dedent(
    """
    import sys, tensorflow as tf, ckptstore
    store = ckptstore.open_store(sys.argv[1], root=sys.argv[2])
    run = store.start_run("victim", saves_in_flight=2)
    m = tf.Module(); m.v = tf.Variable(tf.zeros([1024, 1024, 4]))
    step = 0
    while True:
        step += 1
        m.v.assign_add(tf.ones([1024, 1024, 4]))
        run.save(m, step, blocking=False)
        if step == 3:
            print("pending", flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_with_async_saves_pending_leaves_no_broken_checkpoint(store_uri, children):
    uri, root = store_uri
    proc = children.python(VICTIM, uri, str(root), deadline=120)
    line = proc.stdout.readline()
    assert line.strip() == "pending", proc.stderr.read() if proc.poll() is not None else line
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with ckptstore.open_store(uri, root=root) as store:
        report = store.verify()
        assert report.ok, report.problems
        steps = [c.step for c in store.checkpoints("victim")]
        for ck in store.checkpoints("victim"):
            value = store.read_variable(ck, "model/v")
            assert (value == float(ck.step)).all()  # each committed checkpoint holds its own step's values
        # Whether a save was between commit and its next staging directory at the instant of the
        # kill is a matter of timing; what must hold is that gc reclaims every one the kill left.
        left = [p for p in (root / "staging").iterdir()] if (root / "staging").is_dir() else []
        gc = store.gc()
        assert gc.removed_staging == len(left)
        assert not list((root / "staging").iterdir())
        assert store.verify().ok
        assert steps == [c.step for c in store.checkpoints("victim")]


def test_tf1_snapshots_write_what_saver_writes(new_seed_graph, tmp_path):
    """The async path really snapshots a TF1 session (list, dict and all-variables forms) and
    writes the same names and values as tf.compat.v1.train.Saver."""
    import tensorflow as tf

    from ckptstore.tf import formats

    g, sess, b = new_seed_graph(b=3.0)
    for i, var_list in enumerate([None, [b], {"renamed": b}]):
        snap = formats.for_target(sess).snapshot(sess, tmp_path, f"s{i}", 1, var_list=var_list, write_meta_graph=False)
        assert snap is not None, var_list
        assert snap.digests_itself
        path, digests = snap.write(tmp_path, f"s{i}", 1)
        with g.as_default():
            tf.compat.v1.train.Saver(var_list=var_list).save(sess, str(tmp_path / f"v{i}"), write_meta_graph=False)
        assert tf.train.list_variables(str(path)) == tf.train.list_variables(str(tmp_path / f"v{i}"))
        # The same bytes as Saver's files, and the digests are those of the files written.
        for suffix in (".index", ".data-00000-of-00001"):
            written = (tmp_path / f"s{i}-1{suffix}").read_bytes()
            assert written == (tmp_path / f"v{i}{suffix}").read_bytes()
            assert digests[f"s{i}-1{suffix}"] == digest_file(tmp_path / f"s{i}-1{suffix}")
        name = tf.train.list_variables(str(path))[0][0]
        assert tf.train.load_checkpoint(str(path)).get_tensor(name) == 3.0


def test_tf2_snapshot_is_taken_for_a_trackable(tiny_model, tmp_path):
    from ckptstore.tf import formats

    model = tiny_model()
    assert formats.for_target(model).snapshot(model, tmp_path, "p", 1) is not None


def test_tf1_meta_graph_reused_only_while_the_graph_is_unchanged(new_seed_graph, tmp_path):
    """The cached .meta bytes are those Saver exports, and a graph that grew is exported anew."""
    import tensorflow as tf

    from ckptstore.tf import formats

    g, sess, b = new_seed_graph(b=3.0)
    for i in range(2):
        formats.for_target(sess).snapshot(sess, tmp_path, "m", i).write(tmp_path, "m", i)
    assert (tmp_path / "m-0.meta").read_bytes() == (tmp_path / "m-1.meta").read_bytes()
    with g.as_default():
        tf.constant(1.0, name="grown")
    formats.for_target(sess).snapshot(sess, tmp_path, "m", 2).write(tmp_path, "m", 2)
    with tf.Graph().as_default() as fresh:
        tf.compat.v1.train.import_meta_graph(str(tmp_path / "m-2.meta"))
        assert fresh.get_operation_by_name("grown") is not None


def test_a_diff_lists_variables_under_their_readable_names_as_vars_does(sqlite_store):
    # ``vars --diff --json`` lists added/removed/value_changed/identical variables as records:
    # each carries the readable name ``vars --json`` shows for it (it was None in diffs).
    import tensorflow as tf

    keras = tf.keras
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="dense")])
    model.compile(optimizer="sgd", loss="mse")
    run = sqlite_store.start_run("diffnames")
    run.save(model, 1)
    model.get_layer("dense").bias.assign([1.0])
    run.save(model, 2)
    diff = sqlite_store.diff_variables("diffnames@1", "diffnames@2")
    listed = {(v.name, v.readable) for v in sqlite_store.variables("diffnames@2")}
    assert {(v.name, v.readable) for v in diff.value_changed + diff.identical} == listed
    assert [v.readable for v in diff.value_changed] == ["model/dense/bias"]

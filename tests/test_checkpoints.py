"""The storage layer with real TensorFlow on tiny models: save, restore, materialize, import,
read without a graph, retention, verify and gc, and crashes at every step of a save."""

from __future__ import annotations

import os
import stat
import textwrap
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from .conftest import require_tensorflow

tf = require_tensorflow()

import ckptstore  # noqa: E402
from ckptstore import KeepBest, Retention  # noqa: E402
from ckptstore.errors import (  # noqa: E402
    ConflictError,
    CorruptFileError,
    NoCheckpointFoundError,
    RestoreMismatchError,
    UnknownRefError,
)

from .conftest import run_py  # noqa: E402


def seed_graph():
    """The seed's graph: op_to_store = x * y + b, with b = 1."""
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, name="x")
        y = tf.compat.v1.placeholder(tf.float32, name="y")
        b = tf.Variable(1.0, name="b")
        tf.add(tf.multiply(x, y), b, name="op_to_store")
        init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session(graph=g)
    sess.run(init)
    return g, sess, b


class Tiny(tf.Module):
    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.w = tf.Variable(tf.fill([3, 2], scale), name="w")
        self.b = tf.Variable(tf.zeros([2]), name="b")


def fresh_session() -> "tf.compat.v1.Session":
    return tf.compat.v1.Session(graph=tf.Graph())


def run_op(sess, x: float = 5.0, y: float = 5.0) -> float:
    return float(sess.run("op_to_store:0", {"x:0": x, "y:0": y}))


# --------------------------------------------------------------------------- the seed, end to end


def test_seed_saved_at_two_steps_restores_in_a_fresh_graph(store):
    g, sess, _ = seed_graph()
    with store.start_run("seed") as run:
        first = run.save(sess, 1000)
        second = run.save(sess, 2000, write_meta_graph=False)
    assert [f.role for f in first.files] == ["data", "index", "meta"]
    assert "meta" not in [f.role for f in second.files]
    for ref in ("seed@1000", "seed@2000", "seed@latest", "seed@~1999"):
        s2 = fresh_session()
        restored = store.restore(ref, s2)
        assert run_op(s2) == 26.0, ref
        assert restored.step == (1000 if ref == "seed@~1999" else int(ref.split("@")[1]) if ref[-1].isdigit() else 2000)
    assert float(store.read_variable("seed@2000", "b")) == 1.0
    assert [(v.name, v.dtype, v.shape) for v in store.variables("seed@1000")] == [("b", "float32", [])]


def test_restore_into_an_existing_graph_sets_its_variables(sqlite_store):
    g, sess, b = seed_graph()
    run = sqlite_store.start_run("r")
    run.save(sess, 1)
    with g.as_default():
        sess.run(b.assign(7.0))
    assert run_op(sess) == 32.0
    sqlite_store.restore("r@1", sess)
    assert run_op(sess) == 26.0


def test_restore_refuses_a_graph_whose_variables_do_not_match(sqlite_store):
    _, sess, _ = seed_graph()
    sqlite_store.start_run("r").save(sess, 1)
    g = tf.Graph()
    with g.as_default():
        tf.Variable(tf.zeros([4]), name="other")
    other = tf.compat.v1.Session(graph=g)
    with pytest.raises(RestoreMismatchError, match="other"):
        sqlite_store.restore("r@1", other)
    g2 = tf.Graph()
    with g2.as_default():
        tf.Variable(tf.zeros([4]), name="b")  # right name, wrong shape
    with pytest.raises(RestoreMismatchError, match="shape"):
        sqlite_store.restore("r@1", tf.compat.v1.Session(graph=g2))


def test_saver_is_built_once_per_graph(sqlite_store):
    g, sess, _ = seed_graph()
    run = sqlite_store.start_run("r")
    run.save(sess, 1)
    n_ops = len(g.get_operations())
    for step in (2, 3, 4):
        run.save(sess, step)
    assert len(g.get_operations()) == n_ops


def test_var_list_limits_what_is_saved(sqlite_store):
    g = tf.Graph()
    with g.as_default():
        a = tf.Variable(1.0, name="a")
        tf.Variable(2.0, name="c")
        init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session(graph=g)
    sess.run(init)
    ck = sqlite_store.start_run("r").save(sess, 5, var_list={"renamed_a": a})
    assert [v.name for v in sqlite_store.variables(ck.ref)] == ["renamed_a"]


# --------------------------------------------------------------------------- TF2


def test_tf2_checkpoint_round_trip_and_variable_names(store):
    m = Tiny(2.0)
    run = store.start_run("tf2")
    run.save(tf.train.Checkpoint(model=m), 10)
    m.w.assign(m.w * 3.0)
    run.save(tf.train.Checkpoint(model=m), 20)
    names = [v.name for v in store.variables("tf2@20")]
    assert names == ["model/b/.ATTRIBUTES/VARIABLE_VALUE", "model/w/.ATTRIBUTES/VARIABLE_VALUE"]
    target = Tiny(0.0)
    store.restore("tf2@10", tf.train.Checkpoint(model=target))
    np.testing.assert_array_equal(target.w.numpy(), np.full([3, 2], 2.0))
    np.testing.assert_array_equal(store.read_variable("tf2@20", "model/w"), np.full([3, 2], 6.0))


def test_keras_model_saved_and_restored_directly():
    import keras  # ships with TensorFlow 2.16+
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        store = ckptstore.open_store(d)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        x = np.ones((2, 4), np.float32)
        want = model(x).numpy()
        store.start_run("k").save(model, 1)
        other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        assert not np.allclose(other(x).numpy(), want)
        store.restore("k@1", other)
        np.testing.assert_allclose(other(x).numpy(), want)
        store.close()


def test_tf2_restore_refuses_a_mismatched_object(sqlite_store):
    sqlite_store.start_run("r").save(tf.train.Checkpoint(model=Tiny()), 1)

    class Other(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = tf.Variable(1.0)

    with pytest.raises(RestoreMismatchError):
        sqlite_store.restore("r@1", tf.train.Checkpoint(model=Other()))


def test_restoring_a_tf1_checkpoint_into_a_tf2_object_is_a_clear_error(sqlite_store):
    _, sess, _ = seed_graph()
    sqlite_store.start_run("r").save(sess, 1)
    with pytest.raises(ckptstore.CkptstoreError, match="tf1-saver"):
        sqlite_store.restore("r@1", tf.train.Checkpoint(model=Tiny()))


# --------------------------------------------------------------------------- files


def test_identical_files_are_stored_once_and_read_only(store):
    _, sess, _ = seed_graph()
    run = store.start_run("r")
    for step in (1, 2, 3):
        run.save(sess, step)
    objects = [p for _, p in store.files.object_digests()]
    # data, index and meta are the same bytes at every step: three objects for nine files.
    assert len(objects) == 3
    assert sum(len(c.files) for c in store.checkpoints("r")) == 9
    for p in objects:
        assert stat.S_IMODE(p.stat().st_mode) == 0o444


def test_saving_a_step_again_replaces_it(store):
    _, sess, b = seed_graph()
    run = store.start_run("r")
    run.save(sess, 1)
    with sess.graph.as_default():
        sess.run(b.assign(3.0))
    run.save(sess, 1)
    assert [c.step for c in store.checkpoints("r")] == [1]
    assert float(store.read_variable("r@1", "b")) == 3.0
    run.save(sess, 1)  # the very same bytes again: the blobs must survive their own replacement
    assert store.verify().problems == []
    assert float(store.read_variable("r@1", "b")) == 3.0
    store.gc()
    assert len(list(store.files.object_digests())) == 3


def test_metrics_are_flushed_before_a_save(store, store_uri):
    _, sess, _ = seed_graph()
    run = store.start_run("r", flush_every=10_000, flush_seconds=3600)
    run.log(7, loss=0.5)
    run.save(sess, 7)
    uri, root = store_uri
    other = ckptstore.open_store(uri, root=root)  # another handle, as another process would
    assert other.at_step(7)[0].metrics == {"loss": 0.5}
    assert other.at_step(7)[0].checkpoint_step == 7
    other.close()


def test_unknown_step_names_the_steps_that_exist(store):
    _, sess, _ = seed_graph()
    run = store.start_run("r")
    run.save(sess, 100)
    run.save(sess, 200)
    with pytest.raises(UnknownRefError, match="100, 200"):
        store.restore("r@150", fresh_session())
    with pytest.raises(UnknownRefError, match="at or below step 50"):
        store.checkpoint("r@~50")


def test_metadata_reads_do_not_import_tensorflow(sqlite_store):
    _, sess, _ = seed_graph()
    sqlite_store.start_run("r").save(sess, 1)
    code = textwrap.dedent(
        """
        import sys, ckptstore
        s = ckptstore.open_store(sys.argv[1], create=False)
        assert [v.name for v in s.variables("r@latest")] == ["b"]
        assert [c.step for c in s.checkpoints("r")] == [1]
        s.runs(); s.at_step(1); s.verify()
        print("tensorflow" in sys.modules)
        """
    )
    out = run_py(code, str(sqlite_store.root))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- materialize


def test_materialized_directory_is_read_by_vanilla_tensorflow(store, tmp_path):
    _, sess, _ = seed_graph()
    run = store.start_run("r")
    run.save(sess, 1000)
    prefix = store.materialize("r@1000", tmp_path / "plain")
    assert tf.train.latest_checkpoint(str(tmp_path / "plain")) == str(prefix)
    g = tf.Graph()
    with g.as_default():
        saver = tf.compat.v1.train.import_meta_graph(str(prefix) + ".meta")
        s2 = tf.compat.v1.Session(graph=g)
        saver.restore(s2, tf.train.latest_checkpoint(str(tmp_path / "plain")))
        assert run_op(s2) == 26.0
    # Hard links, not copies: the directory costs no space.
    data = next((tmp_path / "plain").glob("*.data-*"))
    assert data.stat().st_nlink >= 2


def test_materialize_tf2_and_refuse_to_overwrite(sqlite_store, tmp_path):
    m = Tiny(4.0)
    sqlite_store.start_run("r").save(tf.train.Checkpoint(model=m), 3)
    prefix = sqlite_store.materialize("r@3", tmp_path / "out", link="copy")
    target = Tiny(0.0)
    tf.train.Checkpoint(model=target).read(tf.train.latest_checkpoint(str(tmp_path / "out"))).assert_consumed()
    np.testing.assert_array_equal(target.w.numpy(), np.full([3, 2], 4.0))
    assert prefix.name == "model.ckpt-3"
    # Materialising again into the same directory is fine for hard links of the same files...
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.ckpt-3.index").write_text("not mine")
    with pytest.raises(ConflictError, match="already exists"):
        sqlite_store.materialize("r@3", tmp_path / "other")
    assert (tmp_path / "other" / "model.ckpt-3.index").read_text() == "not mine"


# --------------------------------------------------------------------------- verification


def test_restore_refuses_a_corrupt_data_file(sqlite_store):
    _, sess, _ = seed_graph()
    ck = sqlite_store.start_run("r").save(sess, 1)
    data = next(f for f in ck.files if f.role == "data")
    path = sqlite_store.files.path_of(data.digest)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=data.file_name):
        sqlite_store.restore("r@1", fresh_session())
    report = sqlite_store.verify()
    assert not report.ok
    assert [(p.kind, p.checkpoint) for p in report.problems] == [("corrupt", "r@1")]


# --------------------------------------------------------------------------- retention


def test_max_to_keep_and_keep_best(store):
    _, sess, _ = seed_graph()
    run = store.start_run(
        "r", retention=Retention(max_to_keep=2, keep_best=KeepBest("loss", k=1, mode="min"))
    )
    losses = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.7, 5: 0.8}
    for step, loss in losses.items():
        run.log(step, loss=loss)
        run.save(sess, step)
    assert [c.step for c in store.checkpoints("r")] == [2, 4, 5]


def test_keep_best_in_max_mode(store):
    _, sess, _ = seed_graph()
    run = store.start_run("r", retention=Retention(max_to_keep=1, keep_best=KeepBest("acc", k=2, mode="max")))
    for step, acc in {1: 0.3, 2: 0.9, 3: 0.8, 4: 0.1, 5: 0.2}.items():
        run.log(step, acc=acc)
        run.save(sess, step)
    assert [c.step for c in store.checkpoints("r")] == [2, 3, 5]


def test_keep_every_n_hours_marks_checkpoints_kept(store):
    from sqlalchemy import update

    from ckptstore import schema as S

    _, sess, _ = seed_graph()
    run = store.start_run("r")
    for step in range(1, 6):
        run.save(sess, step)
    # Pretend the run started with the first checkpoint and they were written one hour apart.
    with store.write() as conn:
        for c in store.checkpoints("r"):
            conn.execute(update(S.Checkpoint).where(S.Checkpoint.id == c.id).values(
                created_at=c.created_at - timedelta(hours=10 - c.step)))
            if c.step == 1:
                conn.execute(update(S.Run).where(S.Run.name == "r").values(created_at=c.created_at - timedelta(hours=9)))
    store.set_retention("r", Retention(max_to_keep=1, keep_every_n_hours=2))
    # As tf.train.Saver: the clock starts when the run starts; step 3 is the first one 2 h
    # later and is kept for good, step 5 is the newest.
    assert store.apply_retention("r") == [1, 2, 4]
    assert {c.step: c.state for c in store.checkpoints("r")} == {3: "kept", 5: "committed"}


def test_retention_deletes_files_no_longer_referenced(store):
    m = Tiny()
    run = store.start_run("r", retention=Retention(max_to_keep=1))
    ckpt = tf.train.Checkpoint(model=m)
    for step in (1, 2, 3):
        m.w.assign_add(tf.ones([3, 2]))
        run.save(ckpt, step)
    assert [c.step for c in store.checkpoints("r")] == [3]
    referenced = {f.digest for f in store.checkpoints("r")[0].files}
    assert {d for d, _ in store.files.object_digests()} == referenced


# --------------------------------------------------------------------------- import


def test_import_a_vanilla_saver_directory(store, tmp_path):
    g, sess, b = seed_graph()
    with g.as_default():
        saver = tf.compat.v1.train.Saver(max_to_keep=2)
        for step in (10, 20, 30):
            sess.run(b.assign(float(step)))
            saver.save(sess, str(tmp_path / "ck" / "model.ckpt"), global_step=step)
    before = sorted(os.listdir(tmp_path / "ck"))
    imported = store.import_checkpoints(tmp_path / "ck", run="legacy")
    assert [c.step for c in imported] == [20, 30]
    assert sorted(os.listdir(tmp_path / "ck")) == before  # left untouched
    assert float(store.read_variable("legacy@30", "b")) == 30.0
    assert store.import_checkpoints(tmp_path / "ck", run="legacy") == []
    s2 = fresh_session()
    store.restore("legacy@20", s2)
    assert run_op(s2) == 45.0


def test_import_a_checkpoint_manager_directory_without_state_file(store, tmp_path):
    m = Tiny(1.0)
    ckpt = tf.train.Checkpoint(model=m)
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path / "mgr"), max_to_keep=3)
    for _ in range(3):
        m.w.assign_add(tf.ones([3, 2]))
        manager.save()
    (tmp_path / "mgr" / "checkpoint").unlink()
    imported = store.import_checkpoints(tmp_path / "mgr", run="mgr")
    assert [(c.step, c.format) for c in imported] == [(1, "tf2-checkpoint"), (2, "tf2-checkpoint"), (3, "tf2-checkpoint")]
    target = Tiny(0.0)
    store.restore("mgr@latest", tf.train.Checkpoint(model=target))
    np.testing.assert_array_equal(target.w.numpy(), np.full([3, 2], 4.0))


def test_import_refuses_a_directory_without_checkpoints(store, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(NoCheckpointFoundError):
        store.import_checkpoints(tmp_path / "empty", run="x")
    with pytest.raises(NoCheckpointFoundError):
        store.import_checkpoints(tmp_path / "missing", run="x")
    assert store.runs() == []


def test_import_a_saver_directory_that_was_moved(store, tmp_path):
    # Saver writes absolute paths into its 'checkpoint' file; after a move they name nothing.
    g, sess, b = seed_graph()
    with g.as_default():
        saver = tf.compat.v1.train.Saver()
        for step in (10, 20):
            sess.run(b.assign(float(step)))
            saver.save(sess, str(tmp_path / "before" / "model.ckpt"), global_step=step)
    assert str(tmp_path / "before") in (tmp_path / "before" / "checkpoint").read_text()
    (tmp_path / "before").rename(tmp_path / "after")
    imported = store.import_checkpoints(tmp_path / "after", run="moved")
    assert [c.step for c in imported] == [10, 20]
    assert float(store.read_variable("moved@20", "b")) == 20.0


def test_import_refuses_an_unreadable_index_and_creates_no_run(store, tmp_path):
    g, sess, _ = seed_graph()
    with g.as_default():
        tf.compat.v1.train.Saver().save(sess, str(tmp_path / "bad" / "model.ckpt"), global_step=5)
    (tmp_path / "bad" / "model.ckpt-5.index").write_bytes(b"not an sstable at all" * 10)
    with pytest.raises(NoCheckpointFoundError, match="model.ckpt-5 is not a readable TensorFlow checkpoint"):
        store.import_checkpoints(tmp_path / "bad", run="broken")
    assert store.runs() == []


def test_variables_added_after_the_first_save_are_in_later_checkpoints(sqlite_store):
    g, sess, _ = seed_graph()
    run = sqlite_store.start_run("grow")
    run.save(sess, 1)
    with g.as_default():
        head = tf.Variable(3.0, name="head")
        sess.run(head.initializer)
    run.save(sess, 2)
    assert [v.name for v in sqlite_store.variables("grow@1")] == ["b"]
    assert [v.name for v in sqlite_store.variables("grow@2")] == ["b", "head"]
    assert float(sqlite_store.read_variable("grow@2", "head")) == 3.0
    run.save(sess, 3)  # same variables again: the cached Saver, no new save ops
    n_ops = len(g.get_operations())
    run.save(sess, 4)
    assert len(g.get_operations()) == n_ops


def test_restore_into_a_graph_without_variables_says_so(sqlite_store):
    g, sess, _ = seed_graph()
    sqlite_store.start_run("r").save(sess, 1)
    g2 = tf.Graph()
    with g2.as_default():
        tf.constant(1.0, name="c")
    with pytest.raises(RestoreMismatchError, match="no variables to restore into"):
        sqlite_store.restore("r@1", tf.compat.v1.Session(graph=g2))


def test_materialize_without_a_meta_graph_borrows_the_runs_and_vanilla_tf_imports_it(sqlite_store, tmp_path):
    g, sess, b = seed_graph()
    run = sqlite_store.start_run("r")
    run.save(sess, 1)
    with g.as_default():
        sess.run(b.assign(7.0))
    run.save(sess, 2, write_meta_graph=False)
    prefix = sqlite_store.materialize("r@2", tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == [
        "checkpoint", "model.ckpt-2.data-00000-of-00001", "model.ckpt-2.index", "model.ckpt-2.meta"]
    g2 = tf.Graph()
    with g2.as_default():
        saver = tf.compat.v1.train.import_meta_graph(str(prefix) + ".meta")
        s2 = tf.compat.v1.Session(graph=g2)
        saver.restore(s2, tf.train.latest_checkpoint(str(tmp_path / "out")))
    assert run_op(s2) == 32.0


def test_materialize_checks_every_conflict_before_writing(sqlite_store, tmp_path):
    m = Tiny()
    sqlite_store.start_run("r").save(tf.train.Checkpoint(model=m), 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.ckpt-1.index").write_text("mine")
    with pytest.raises(ConflictError, match="already exists"):
        sqlite_store.materialize("r@1", out)
    assert sorted(os.listdir(out)) == ["model.ckpt-1.index"]
    assert (out / "model.ckpt-1.index").read_text() == "mine"


# --------------------------------------------------------------------------- crashes during a save

CRASHING_SAVE = textwrap.dedent(
    """
    import sys, ckptstore, tensorflow as tf
    store = ckptstore.open_store(sys.argv[1])
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, name="x")
        y = tf.compat.v1.placeholder(tf.float32, name="y")
        b = tf.Variable(1.0, name="b")
        tf.add(tf.multiply(x, y), b, name="op_to_store")
        init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session(graph=g); sess.run(init)
    run = store.run("r")
    with g.as_default():
        sess.run(b.assign(2.0))
    run.save(sess, 2)
    print("survived")
    """
)


@pytest.mark.parametrize("point", ["staged", "moving", "moved", "committed"])
def test_sigkill_during_a_save_leaves_committed_checkpoints_intact(tmp_path, point):
    root = tmp_path / "store"
    store = ckptstore.open_store(str(root))
    _, sess, _ = seed_graph()
    store.start_run("r").save(sess, 1)
    store.close()

    out = run_py(CRASHING_SAVE, str(root), env={"CKPTSTORE_FAULT": point})
    assert out.returncode == -9, out.stderr
    assert "survived" not in out.stdout

    store = ckptstore.open_store(str(root))
    steps = [c.step for c in store.checkpoints("r")]
    assert steps == ([1, 2] if point == "committed" else [1])
    assert store.verify().ok
    store.gc()
    report = store.verify()
    assert report.problems == [], report.problems
    assert not any(store.files.staging_root.iterdir())
    for step in steps:
        s2 = fresh_session()
        store.restore(f"r@{step}", s2)
        assert run_op(s2) == (26.0 if step == 1 else 27.0)
    store.close()


def test_saving_content_whose_stored_copy_was_damaged_replaces_the_damaged_copy(store):
    g, sess, _ = seed_graph()
    store.start_run("a").save(sess, 1)
    data = next(f for f in store.checkpoint("a@1").files if f.role == "data")
    path = store.files.path_of(data.digest)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0xFF
    path.write_bytes(bytes(raw))  # bit rot: same size, other bytes
    assert [p.checkpoint for p in store.verify().problems] == ["a@1"]
    # The same values saved again: the fresh, digested copy replaces the damaged one instead of
    # a new checkpoint pointing at bad bytes; a@1, which shares the content, is whole again.
    store.start_run("b").save(sess, 1)
    assert store.verify().ok
    s2 = fresh_session()
    store.restore("a@1", s2, verify="full")
    assert run_op(s2) == 26.0


def test_verify_does_not_call_files_deleted_meanwhile_damage(store):
    # Retention or a delete in another process may remove a checkpoint while verify hashes:
    # its files vanish, which is not damage. Here the deletion happens between two files.
    m = Tiny()
    run = store.start_run("r")
    ckpt = tf.train.Checkpoint(model=m)
    for step in (1, 2):
        m.w.assign_add(tf.ones([3, 2]))  # distinct contents: deleting r@1 frees its files
        run.save(ckpt, step)
    deleted = []

    def delete_once(done: int, total: int) -> None:
        if not deleted:
            store.delete_checkpoint("r@1")
            deleted.append(True)

    report = store.verify(progress=delete_once)
    assert deleted and report.ok, report.problems
    assert [c.step for c in store.checkpoints("r")] == [2]

"""The storage layer with real TensorFlow on tiny models: save, restore, materialize, import,
read without a graph, retention, verify and gc.

Crashes during a save are in ``test_crash.py``, damaged files in ``test_corruption.py`` and
refused input (mismatched restore targets, empty import directories) in ``test_bad_input.py``."""

from __future__ import annotations

import os
import stat
import textwrap
from datetime import timedelta

import numpy as np
import pytest

import ckptstore
from tests.helpers.damage import flip_byte
from tests.helpers.models import empty_session, run_op, vanilla_tf1_restore
from tests.helpers.processes import run_py
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

from ckptstore import KeepBest, Retention  # noqa: E402
from ckptstore.errors import ConflictError, NoCheckpointFoundError, RestoreMismatchError, UnknownRefError  # noqa: E402

# --------------------------------------------------------------------------- the seed, end to end


def test_seed_saved_at_two_steps_restores_in_a_fresh_graph(store, seed_session):
    with store.start_run("seed") as run:
        first = run.save(seed_session, 1000)
        second = run.save(seed_session, 2000, write_meta_graph=False)
    assert [f.role for f in first.files] == ["data", "index", "meta"]
    assert "meta" not in [f.role for f in second.files]
    for ref in ("seed@1000", "seed@2000", "seed@latest", "seed@~1999"):
        s2 = empty_session()
        restored = store.restore(ref, s2)
        assert run_op(s2) == 26.0, ref
        assert restored.step == (1000 if ref == "seed@~1999" else int(ref.split("@")[1]) if ref[-1].isdigit() else 2000)
    assert float(store.read_variable("seed@2000", "b")) == 1.0
    assert [(v.name, v.dtype, v.shape) for v in store.variables("seed@1000")] == [("b", "float32", [])]


def test_restore_into_an_existing_graph_sets_its_variables(sqlite_store, new_seed_graph):
    g, sess, b = new_seed_graph()
    run = sqlite_store.start_run("r")
    run.save(sess, 1)
    with g.as_default():
        sess.run(b.assign(7.0))
    assert run_op(sess) == 32.0
    sqlite_store.restore("r@1", sess)
    assert run_op(sess) == 26.0


def test_saver_is_built_once_per_graph(sqlite_store, seed_session):
    g = seed_session.graph
    run = sqlite_store.start_run("r")
    run.save(seed_session, 1)
    n_ops = len(g.get_operations())
    for step in (2, 3, 4):
        run.save(seed_session, step)
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


def test_tf2_checkpoint_round_trip_and_variable_names(store, tiny_model):
    m = tiny_model(2.0)
    run = store.start_run("tf2")
    run.save(tf.train.Checkpoint(model=m), 10)
    m.w.assign(m.w * 3.0)
    run.save(tf.train.Checkpoint(model=m), 20)
    names = [v.name for v in store.variables("tf2@20")]
    assert names == ["model/b/.ATTRIBUTES/VARIABLE_VALUE", "model/w/.ATTRIBUTES/VARIABLE_VALUE"]
    target = tiny_model(0.0)
    store.restore("tf2@10", tf.train.Checkpoint(model=target))
    np.testing.assert_array_equal(target.w.numpy(), np.full([3, 2], 2.0))
    np.testing.assert_array_equal(store.read_variable("tf2@20", "model/w"), np.full([3, 2], 6.0))
    with pytest.raises(ckptstore.errors.UnknownRefError, match=r"has no variable 'w'; did you mean model/w\?"):
        store.read_variable("tf2@20", "w")


def test_keras_model_saved_and_restored_directly(sqlite_store):
    import keras  # ships with TensorFlow 2.16+

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.ones((2, 4), np.float32)
    want = model(x).numpy()
    sqlite_store.start_run("k").save(model, 1)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert not np.allclose(other(x).numpy(), want)
    sqlite_store.restore("k@1", other)
    np.testing.assert_allclose(other(x).numpy(), want)


# --------------------------------------------------------------------------- files


def test_identical_files_are_stored_once_and_read_only(store, seed_session):
    run = store.start_run("r")
    for step in (1, 2, 3):
        run.save(seed_session, step)
    objects = [p for _, p in store.files.object_digests()]
    # data, index and meta are the same bytes at every step: three objects for nine files.
    assert len(objects) == 3
    assert sum(len(c.files) for c in store.checkpoints("r")) == 9
    for p in objects:
        assert stat.S_IMODE(p.stat().st_mode) == 0o444


def test_saving_a_step_again_replaces_it(store, new_seed_graph):
    _, sess, b = new_seed_graph()
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


def test_metrics_are_flushed_before_a_save(store, store_uri, seed_session):
    run = store.start_run("r", flush_every=10_000, flush_seconds=3600)
    run.log(7, loss=0.5)
    run.save(seed_session, 7)
    uri, root = store_uri
    other = ckptstore.open_store(uri, root=root)  # another handle, as another process would
    assert other.at_step(7)[0].metrics == {"loss": 0.5}
    assert other.at_step(7)[0].checkpoint_step == 7
    other.close()


def test_unknown_step_names_the_steps_that_exist(store, seed_session):
    run = store.start_run("r")
    run.save(seed_session, 100)
    run.save(seed_session, 200)
    with pytest.raises(UnknownRefError, match="100, 200"):
        store.restore("r@150", empty_session())
    with pytest.raises(UnknownRefError, match="at or below step 50"):
        store.checkpoint("r@~50")


def test_metadata_reads_do_not_import_tensorflow(sqlite_store, seed_session):
    sqlite_store.start_run("r").save(seed_session, 1)
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


def test_materialized_directory_is_read_by_vanilla_tensorflow(store, tmp_path, seed_session):
    run = store.start_run("r")
    run.save(seed_session, 1000)
    prefix = store.materialize("r@1000", tmp_path / "plain")
    assert tf.train.latest_checkpoint(str(tmp_path / "plain")) == str(prefix)
    assert run_op(vanilla_tf1_restore(tmp_path / "plain")) == 26.0
    # Private copies by default: editing the restored files cannot damage the store.
    data = next((tmp_path / "plain").glob("*.data-*"))
    assert data.stat().st_nlink == 1
    data.write_bytes(b"\0" * data.stat().st_size)
    assert store.verify("r").ok
    # Hard links only when asked for (read-only use): no space taken.
    linked = store.materialize("r@1000", tmp_path / "linked", link="hard")
    assert next(linked.parent.glob("*.data-*")).stat().st_nlink >= 2


def test_materialize_tf2_and_refuse_to_overwrite(sqlite_store, tmp_path, tiny_model):
    m = tiny_model(4.0)
    sqlite_store.start_run("r").save(tf.train.Checkpoint(model=m), 3)
    prefix = sqlite_store.materialize("r@3", tmp_path / "out", link="copy")
    target = tiny_model(0.0)
    tf.train.Checkpoint(model=target).read(tf.train.latest_checkpoint(str(tmp_path / "out"))).assert_consumed()
    np.testing.assert_array_equal(target.w.numpy(), np.full([3, 2], 4.0))
    assert prefix.name == "model.ckpt-3"
    # Materialising again into the same directory is fine for hard links of the same files...
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.ckpt-3.index").write_text("not mine")
    with pytest.raises(ConflictError, match="already exists"):
        sqlite_store.materialize("r@3", tmp_path / "other")
    assert (tmp_path / "other" / "model.ckpt-3.index").read_text() == "not mine"


# --------------------------------------------------------------------------- retention


def test_max_to_keep_and_keep_best(store, seed_session):
    run = store.start_run(
        "r", retention=Retention(max_to_keep=2, keep_best=KeepBest("loss", k=1, mode="min"))
    )
    losses = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.7, 5: 0.8}
    for step, loss in losses.items():
        run.log(step, loss=loss)
        run.save(seed_session, step)
    assert [c.step for c in store.checkpoints("r")] == [2, 4, 5]


def test_keep_best_in_max_mode(store, seed_session):
    run = store.start_run("r", retention=Retention(max_to_keep=1, keep_best=KeepBest("acc", k=2, mode="max")))
    for step, acc in {1: 0.3, 2: 0.9, 3: 0.8, 4: 0.1, 5: 0.2}.items():
        run.log(step, acc=acc)
        run.save(seed_session, step)
    assert [c.step for c in store.checkpoints("r")] == [2, 3, 5]


def test_keep_every_n_hours_marks_checkpoints_kept(store, seed_session):
    from sqlalchemy import update

    from ckptstore.metadata import schema as S

    run = store.start_run("r")
    for step in range(1, 6):
        run.save(seed_session, step)
    # Pretend the run started with the first checkpoint and they were written one hour apart.
    with store.write() as conn:
        for c in store.checkpoints("r"):
            conn.execute(update(S.checkpoints).where(S.checkpoints.c.id == c.id).values(
                created_at=c.created_at - timedelta(hours=10 - c.step)))
            if c.step == 1:
                conn.execute(update(S.runs).where(S.runs.c.name == "r").values(created_at=c.created_at - timedelta(hours=9)))
    store.set_retention("r", Retention(max_to_keep=1, keep_every_n_hours=2))
    # As tf.train.Saver: the clock starts when the run starts; step 3 is the first one 2 h
    # later and is kept for good, step 5 is the newest.
    assert store.apply_retention("r") == [1, 2, 4]
    assert {c.step: c.state for c in store.checkpoints("r")} == {3: "kept", 5: "committed"}


def test_retention_deletes_files_no_longer_referenced(store, tiny_model):
    m = tiny_model()
    run = store.start_run("r", retention=Retention(max_to_keep=1))
    ckpt = tf.train.Checkpoint(model=m)
    for step in (1, 2, 3):
        m.w.assign_add(tf.ones([3, 2]))
        run.save(ckpt, step)
    assert [c.step for c in store.checkpoints("r")] == [3]
    referenced = {f.digest for f in store.checkpoints("r")[0].files}
    assert {d for d, _ in store.files.object_digests()} == referenced


# --------------------------------------------------------------------------- import


def test_import_a_vanilla_saver_directory(store, tmp_path, new_seed_graph):
    g, sess, b = new_seed_graph()
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
    s2 = empty_session()
    store.restore("legacy@20", s2)
    assert run_op(s2) == 45.0


def test_import_a_checkpoint_manager_directory_without_state_file(store, tmp_path, tiny_model):
    m = tiny_model(1.0)
    ckpt = tf.train.Checkpoint(model=m)
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path / "mgr"), max_to_keep=3)
    for _ in range(3):
        m.w.assign_add(tf.ones([3, 2]))
        manager.save()
    (tmp_path / "mgr" / "checkpoint").unlink()
    imported = store.import_checkpoints(tmp_path / "mgr", run="mgr")
    assert [(c.step, c.format) for c in imported] == [(1, "tf2-checkpoint"), (2, "tf2-checkpoint"), (3, "tf2-checkpoint")]
    target = tiny_model(0.0)
    store.restore("mgr@latest", tf.train.Checkpoint(model=target))
    np.testing.assert_array_equal(target.w.numpy(), np.full([3, 2], 4.0))


def test_import_a_saver_directory_that_was_moved(store, tmp_path, new_seed_graph):
    # Saver writes absolute paths into its 'checkpoint' file; after a move they name nothing.
    g, sess, b = new_seed_graph()
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


def test_import_refuses_an_unreadable_index_and_creates_no_run(store, tmp_path, new_seed_graph):
    g, sess, _ = new_seed_graph()
    with g.as_default():
        tf.compat.v1.train.Saver().save(sess, str(tmp_path / "bad" / "model.ckpt"), global_step=5)
    (tmp_path / "bad" / "model.ckpt-5.index").write_bytes(b"not an sstable at all" * 10)
    with pytest.raises(NoCheckpointFoundError, match="model.ckpt-5 is not a readable TensorFlow checkpoint"):
        store.import_checkpoints(tmp_path / "bad", run="broken")
    assert store.runs() == []


def test_variables_added_after_the_first_save_are_in_later_checkpoints(sqlite_store, new_seed_graph):
    g, sess, _ = new_seed_graph()
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


def test_restore_into_a_graph_without_variables_says_so(sqlite_store, seed_session):
    sqlite_store.start_run("r").save(seed_session, 1)
    g2 = tf.Graph()
    with g2.as_default():
        tf.constant(1.0, name="c")
    with pytest.raises(RestoreMismatchError, match="no variables to restore into"):
        sqlite_store.restore("r@1", tf.compat.v1.Session(graph=g2))


def test_materialize_without_a_meta_graph_borrows_the_runs_and_vanilla_tf_imports_it(sqlite_store, tmp_path, new_seed_graph):
    g, sess, b = new_seed_graph()
    run = sqlite_store.start_run("r")
    run.save(sess, 1)
    with g.as_default():
        sess.run(b.assign(7.0))
    run.save(sess, 2, write_meta_graph=False)
    prefix = sqlite_store.materialize("r@2", tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == [
        "checkpoint", "model.ckpt-2.data-00000-of-00001", "model.ckpt-2.index", "model.ckpt-2.meta"]
    assert tf.train.latest_checkpoint(str(tmp_path / "out")) == str(prefix)
    assert run_op(vanilla_tf1_restore(tmp_path / "out")) == 32.0


def test_materialize_checks_every_conflict_before_writing(sqlite_store, tmp_path, tiny_model):
    m = tiny_model()
    sqlite_store.start_run("r").save(tf.train.Checkpoint(model=m), 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.ckpt-1.index").write_text("mine")
    with pytest.raises(ConflictError, match="already exists"):
        sqlite_store.materialize("r@1", out)
    assert sorted(os.listdir(out)) == ["model.ckpt-1.index"]
    assert (out / "model.ckpt-1.index").read_text() == "mine"


def test_saving_content_whose_stored_copy_was_damaged_replaces_the_damaged_copy(store, seed_session):
    store.start_run("a").save(seed_session, 1)
    data = next(f for f in store.checkpoint("a@1").files if f.role == "data")
    flip_byte(store.files.path_of(data.digest))  # bit rot: same size, other bytes
    assert [p.checkpoint for p in store.verify().problems] == ["a@1"]
    # The same values saved again: the fresh, digested copy replaces the damaged one instead of
    # a new checkpoint pointing at bad bytes; a@1, which shares the content, is whole again.
    store.start_run("b").save(seed_session, 1)
    assert store.verify().ok
    s2 = empty_session()
    store.restore("a@1", s2, verify="full")
    assert run_op(s2) == 26.0


def test_verify_does_not_call_files_deleted_meanwhile_damage(store, tiny_model):
    # Retention or a delete in another process may remove a checkpoint while verify hashes:
    # its files vanish, which is not damage. Here the deletion happens between two files.
    m = tiny_model()
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

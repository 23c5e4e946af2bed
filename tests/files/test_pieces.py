"""Tensor-level storage: unchanged tensors stored once, byte-identical rebuilds, diffs by value,
readable names, space accounting, and old stores upgraded side by side."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sqlalchemy import delete, select

import ckptstore
from ckptstore.errors import CorruptFileError, UnknownRefError
from ckptstore.files.digest import digest_file
from ckptstore.metadata import schema as S
from tests.helpers.cli import as_json, cli, ok
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()

BIG = (256, 256)  # 256 KB: a piece of its own
HEAD = (64, 32)  # 8 KB: grouped with its neighbours


def _model(seed: int = 0):
    rng = np.random.default_rng(seed)
    m = tf.Module()
    m.backbone = tf.Variable(rng.standard_normal(BIG).astype(np.float32), name="backbone")
    m.head = tf.Variable(rng.standard_normal(HEAD).astype(np.float32), name="head")
    m.bias = tf.Variable(np.zeros(4, np.float32), name="bias")
    m.steps = tf.Variable(0, dtype=tf.int64, name="steps")
    m.label = tf.Variable("frozen backbone", name="label")
    return m


def _objects_bytes(store) -> int:
    return sum(p.stat().st_size for _, p in store.files.object_digests())


def _finetune(store, run: str = "ft", n: int = 3):
    m = _model()
    with store.start_run(run) as r:
        for step in range(n):
            m.head.assign_add(tf.ones(HEAD))
            m.steps.assign(step)
            r.save(m, step)
    return m


def test_unchanged_tensors_are_stored_once(store):
    m = _finetune(store, n=4)
    logical = sum(ck.total_bytes for ck in store.checkpoints("ft"))
    stored = _objects_bytes(store)
    assert stored < logical / 2.5  # 4 saves, the 256 KB backbone kept once
    assert stored < 4 * 256 * 1024 / 3
    with store.read() as conn:
        assembled = set(conn.execute(select(S.file_extents.c.file_digest)).scalars())
    data = [f.digest for ck in store.checkpoints("ft") for f in ck.files if f.role == "data"]
    assert data[0] not in assembled and set(data[1:]) <= assembled  # the first save is stored whole
    u = {x.run: x for x in store.space()}
    assert u["ft"].logical_bytes == logical and u["ft"].stored_bytes == stored and u[None].stored_bytes == stored
    # Everything reads back: TF2 restore, read_variable, and a materialized directory plain TF reads.
    fresh = _model(seed=1)
    store.restore("ft@3", fresh)
    np.testing.assert_array_equal(fresh.backbone.numpy(), m.backbone.numpy())
    np.testing.assert_allclose(store.read_variable("ft@2", "model/head"), m.head.numpy() - 1, rtol=1e-6)


def test_materialized_files_are_byte_identical_to_what_tensorflow_wrote(store, tmp_path):
    m = _finetune(store, n=2)
    ck = store.checkpoint("ft@1")
    out = store.materialize(ck.ref, tmp_path / "out")
    for f in ck.files:
        assert digest_file(out.parent / f.file_name) == (f.digest, f.size)
    # And TensorFlow writes the very same bytes for the same state.
    plain = tf.train.Checkpoint(model=m).write(str(tmp_path / "plain" / ck.prefix))
    data = next(f for f in ck.files if f.role == "data")
    assert digest_file(plain + ".data-00000-of-00001")[0] == data.digest
    reader = tf.train.load_checkpoint(str(out))
    np.testing.assert_array_equal(reader.get_tensor("model/head/.ATTRIBUTES/VARIABLE_VALUE"), m.head.numpy())


def test_read_variable_reads_only_its_own_piece(store):
    """Damage the object holding the head: the backbone (in another object) still reads, while
    the head and a full restore refuse by name."""
    m = _finetune(store, n=2)
    with store.read() as conn:
        ck = store.checkpoint("ft@1")
        data = next(f for f in ck.files if f.role == "data")
        extents = conn.execute(select(S.file_extents.c.object_digest, S.file_extents.c.size).where(S.file_extents.c.file_digest == data.digest)).all()
    first = store.checkpoint("ft@0")
    pack = next(d for d, _ in extents if d != next(f.digest for f in first.files if f.role == "data"))
    path = store.files.path_of(pack)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0xFF]))
    np.testing.assert_array_equal(store.read_variable("ft@1", "model/backbone"), m.backbone.numpy())
    with pytest.raises(CorruptFileError, match="model.ckpt-1.data"):
        store.read_variable("ft@1", "model/head")
    with pytest.raises(CorruptFileError):
        store.restore("ft@1", _model(), verify="full")
    report = store.verify()
    assert not report.ok
    assert {p.checkpoint for p in report.problems if p.kind == "corrupt"} == {"ft@1"}


def test_verify_names_every_checkpoint_using_a_damaged_piece(store):
    _finetune(store, n=3)
    base = next(f for f in store.checkpoint("ft@0").files if f.role == "data")
    os.unlink(store.files.path_of(base.digest))
    report = store.verify()
    assert {p.checkpoint for p in report.problems if p.kind == "missing"} == {"ft@0", "ft@1", "ft@2"}
    assert all("piece" in p.detail for p in report.problems if p.checkpoint != "ft@0")


def test_gc_drops_pieces_nothing_uses(store):
    _finetune(store, n=3)
    for step in (0, 1, 2):
        store.delete_checkpoint(f"ft@{step}")
    store.gc()
    assert list(store.files.object_digests()) == []
    with store.read() as conn:
        for table in (S.blobs, S.file_extents, S.file_pieces, S.file_tensors):
            assert conn.execute(select(table)).first() is None, table.__tablename__


def test_deleting_the_base_keeps_the_pieces_later_saves_use(store):
    m = _finetune(store, n=3)
    store.delete_checkpoint("ft@0")
    store.gc()
    assert store.verify().ok
    fresh = _model(seed=2)
    store.restore("ft@2", fresh, verify="full")
    np.testing.assert_array_equal(fresh.backbone.numpy(), m.backbone.numpy())


def test_diff_by_value_within_and_across_runs(store):
    _finetune(store, n=2)
    d = store.diff_variables("ft@0", "ft@1", stats=True)
    status = {v.name: v.status for v in d.variables}
    assert status == {
        "model/backbone/.ATTRIBUTES/VARIABLE_VALUE": "identical",
        "model/head/.ATTRIBUTES/VARIABLE_VALUE": "value changed",
        "model/bias/.ATTRIBUTES/VARIABLE_VALUE": "identical",
        "model/steps/.ATTRIBUTES/VARIABLE_VALUE": "value changed",
        "model/label/.ATTRIBUTES/VARIABLE_VALUE": "identical",
    }
    head = next(v for v in d.variables if "head" in v.key)
    assert head.stats is not None and head.stats.max_abs == pytest.approx(1.0) and head.stats.mean_abs == pytest.approx(1.0)
    steps = next(v for v in d.variables if "steps" in v.key)
    assert steps.stats is None  # not a float tensor
    # A fork of another run: same backbone bytes, different head.
    m = _model()
    m.head.assign(tf.zeros(HEAD))
    m.extra = tf.Variable([1.0, 2.0])
    with store.start_run("fork") as r:
        r.save(m, 7)
    d = store.diff_variables("ft@1", "fork@7")
    status = {v.key.split("/")[1]: v.status for v in d.variables}
    assert status["backbone"] == "identical" and status["head"] == "value changed" and status["extra"] == "added"


def test_diff_computes_digests_of_checkpoints_saved_before_tensor_storage(store):
    _finetune(store, n=2)
    with store.write() as conn:  # as a store upgraded from 0001 has them: no per-tensor rows
        conn.execute(delete(S.file_tensors))
        conn.execute(delete(S.file_pieces))
    d = store.diff_variables("ft@0", "ft@1")
    assert sum(v.status == "identical" for v in d.variables) == 3
    with store.read() as conn:
        assert conn.execute(select(S.file_tensors)).first() is not None  # recorded for next time


def _keras_model(layer: str, optimizer: object = "adam"):
    keras = tf.keras
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name=layer), keras.layers.Dense(1, name="out")])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0, epochs=1)
    return model


def test_a_grid_in_one_process_names_its_optimizers_alike_and_a_diff_by_its_first_checkpoint(sqlite_store):
    """Keras counts the optimizers a process makes (adam, adam_1, ...): a grid search in one
    process must not give each run's slots another name. A diff names each variable as its first
    checkpoint does (as `vars REF` beside it), not as the second."""
    first, second = _keras_model("first"), _keras_model("second")
    assert second.optimizer.name != "adam"  # Keras numbered it
    named = _keras_model("third", tf.keras.optimizers.Adam(name="my_adam"))  # a name given is kept
    for run, model in (("a", first), ("b", second), ("c", named)):
        with sqlite_store.start_run(run) as r:
            r.save(model, 1)
    names_b = {v.readable for v in sqlite_store.variables("b@1")}
    assert {"model/second/kernel/adam/momentum", "model/adam/iteration"} <= names_b
    assert not any("adam_" in n for n in names_b if n), names_b
    assert "model/third/kernel/my_adam/momentum" in {v.readable for v in sqlite_store.variables("c@1")}
    for ref, other, layer in (("a@1", "b@1", "first"), ("b@1", "a@1", "second")):
        shown = {v.name for v in sqlite_store.diff_variables(ref, other).variables}
        assert f"model/{layer}/kernel" in shown and f"model/{layer}/kernel/adam/momentum" in shown, shown


def test_a_diff_across_optimizers_pairs_no_slot_with_another_optimizers(sqlite_store):
    """Optimizer slots are saved under positions (model/optimizer/_variables/N): under Adam and
    SGD the same position holds different variables. The diff tells them apart by the names
    recorded at save (removed Adam slots, added SGD ones), never 'dtype/shape changed' between
    an Adam velocity and an SGD momentum; the layers still pair, and every row of the diff and
    of its lists is named as the first checkpoint names it."""
    adam = _keras_model("hidden")
    sgd = _keras_model("hidden", tf.keras.optimizers.SGD(momentum=0.9))
    for run, model in (("adam", adam), ("sgd", sgd)):
        with sqlite_store.start_run(run) as r:
            r.save(model, 1)
    d = sqlite_store.diff_variables("adam@1", "sgd@1")
    by_status: dict[str, set[str]] = {}
    for v in d.variables:
        by_status.setdefault(v.status, set()).add(v.name)
    assert "dtype/shape changed" not in by_status, by_status
    assert "model/hidden/kernel/adam/momentum" in by_status["removed"]
    assert "model/hidden/kernel/sgd/momentum" in by_status["added"]
    assert {"model/hidden/kernel", "model/out/bias"} <= by_status["value changed"] | by_status.get("identical", set())
    assert all("/sgd/" not in (v.readable or "") for v in [*d.value_changed, *d.identical])
    assert d.unchanged == sum(v.status not in ("added", "removed", "dtype/shape changed") for v in d.variables)


def test_readable_names_for_keras_models_and_their_optimizer_slots(store):
    keras = tf.keras
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(1, name="out")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0, epochs=1)
    with store.start_run("k") as r:
        r.save(model, 1)
        model.get_layer("out").kernel.assign(model.get_layer("out").kernel + 1.0)
        r.save(model, 2)
    store.set_alias("prod", "k@1")
    names = {v.readable for v in store.variables("prod")}
    # "adam" even once another Adam exists in this process (Keras then names this one adam_1)
    assert {"model/dense/kernel", "model/dense/kernel/adam/momentum", "model/out/bias/adam/velocity", "model/adam/iteration"} <= names
    np.testing.assert_array_equal(store.read_variable("prod", "model/dense/kernel"), model.get_layer("dense").kernel.numpy())
    with pytest.raises(UnknownRefError, match="model/dense/kernel"):
        store.read_variable("prod", "model/dense/kernal")
    d = store.diff_variables("k@1", "k@2")
    assert [v.name for v in d.variables if v.status == "value changed"] == ["model/out/kernel"]
    assert sum(v.status == "identical" for v in d.variables) == len(d.variables) - 1


@pytest.mark.slow
def test_cli_vars_diff_and_du(sqlite_store, tmp_path):
    store = sqlite_store
    _finetune(store, n=2)
    uri = str(tmp_path / "store")
    out = ok("vars", "ft@0", "--diff", "ft@1", "--stats", store=uri)
    assert "3 identical, 2 value changed, 0 added, 0 removed, 0 dtype/shape changed" in out
    assert "model/head" in out and "max|Δ|" in out
    # At 80 columns and narrower the statistics stay: columns wrap into blocks, none is dropped (issue 26).
    for width in ("80", "40"):
        r = cli("vars", "ft@0", "--diff", "ft@1", "--stats", store=uri, env={"COLUMNS": width})
        assert r.returncode == 0 and "not shown" not in r.stderr
        assert all(h in r.stdout for h in ("max|Δ|", "mean|Δ|", "rel L2", "ft@0", "ft@1"))
        if width == "80":
            assert all(len(line) <= 80 for line in r.stdout.splitlines()), r.stdout
        else:  # narrower than a name: blocks of one column each, the name (never broken) repeated
            assert r.stdout.count("model/head/.ATTRIBUTES/VARIABLE_VALUE") > 2, r.stdout
    data = as_json("vars", "ft@0", "--diff", "ft@1", store=uri)
    assert data["summary"]["value changed"] == 2
    assert {v["key"] for v in data["variables"] if v["status"] == "identical"} >= {"model/backbone/.ATTRIBUTES/VARIABLE_VALUE"}
    du = as_json("du", store=uri)
    assert du[-1]["run"] is None and du[-1]["stored_bytes"] < du[-1]["logical_bytes"]
    assert "ft" in ok("du", "ft", store=uri)


def test_a_store_written_at_0001_upgrades_and_restores_old_and_new_side_by_side(tmp_path):
    """Downgrading a fresh store to 0001 leaves exactly what the previous release wrote (its one
    checkpoint stored whole); the current code upgrades it, keeps the old checkpoint working for
    restore, verify, diff and gc, and stores new saves by tensor next to it."""
    from ckptstore.metadata import versions

    loc = tmp_path / "old"
    m = _model()
    with ckptstore.open_store(loc) as s:
        with s.start_run("r") as r:
            r.save(m, 1)
        versions.run_downgrade(s.engine, "0001")
    with ckptstore.open_store(loc) as s:
        assert versions.current_revision(s.engine) == ckptstore.metadata.versions.HEAD_REVISION
        assert s.repack() == 1  # the old data file, indexed tensor by tensor in place
        m.head.assign_add(tf.ones(HEAD))
        with s.start_run("r", resume=True) as r:
            r.save(m, 2)
        with s.read() as conn:  # ... so the new save re-uses its backbone
            assert conn.execute(select(S.file_extents)).first() is not None
        old, new = _model(seed=5), _model(seed=6)
        s.restore("r@1", old, verify="full")
        s.restore("r@2", new, verify="full")
        np.testing.assert_allclose(old.head.numpy() + 1, new.head.numpy(), rtol=1e-6)
        np.testing.assert_array_equal(old.backbone.numpy(), new.backbone.numpy())
        statuses = {v.key.split("/")[1]: v.status for v in s.diff_variables("r@1", "r@2").variables}
        assert statuses["backbone"] == "identical" and statuses["head"] == "value changed"
        assert s.verify().ok
        assert s.repack() == 0
        s.delete_checkpoint("r@1")
        s.gc()
        s.restore("r@2", _model(seed=7), verify="full")
        assert s.verify().ok


def test_a_training_step_that_changes_everything_hashes_no_tensor_twice(store):
    """Big tensors are identified by the crc32c the index holds; with no stored piece of the same
    crc and size nothing is hashed at save, and the diff proves the change from the crc alone."""
    m = _model()
    with store.start_run("train") as r:
        r.save(m, 1)
        m.backbone.assign_add(tf.ones(BIG))
        r.save(m, 2)
    with store.read() as conn:
        rows = conn.execute(select(S.file_tensors.c.digest, S.file_tensors.c.crc32c).where(S.file_tensors.c.name.like("model/backbone/%"))).all()
    assert len(rows) == 2 and all(d is None and c is not None for d, c in rows)
    status = {v.key.split("/")[1]: v.status for v in store.diff_variables("train@1", "train@2").variables}
    assert status["backbone"] == "value changed" and status["head"] == "identical"
    with store.read() as conn:
        rows = conn.execute(select(S.file_tensors.c.digest).where(S.file_tensors.c.name.like("model/backbone/%"))).all()
    assert all(d is None for (d,) in rows)  # no tensor bytes were read

"""Training that never loses work (issue 22): restore and keep training exactly where the
checkpoint left off, a resume that continues instead of rewriting, retention that counts saves
in the order they were made, and Keras metrics named once with KeepBest ranking what it names."""

from __future__ import annotations

import gc
import glob
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import ckptstore
from ckptstore import KeepBest, Retention
from ckptstore.errors import ParamsChangedError, RestoreMismatchError, StepConflictError, UnknownRefError
from ckptstore.keras import StoreCallback
from tests.helpers import cli


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    return x, y


def _classifier(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu", name="hidden"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _fit(model: keras.Model, epochs: int, callbacks: list = (), **kw) -> keras.callbacks.History:  # type: ignore[assignment]
    x, y = _data()
    return model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, callbacks=list(callbacks), **kw)


def _state(model: keras.Model) -> list[np.ndarray]:
    """Every value training depends on: weights, optimizer slots and its step counter."""
    return [keras.ops.convert_to_numpy(v) for v in [*model.weights, *model.optimizer.variables]]


def _read_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), f"ckptstore-read-{os.getpid()}-*")))


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def area_store(request: pytest.FixtureRequest, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A store on (local | s3) x (sqlite | postgres)."""
    monkeypatch.setenv("CKPTSTORE_CACHE_DIR", str(tmp_path / "cache"))
    uri = str(tmp_path / "store") if backend == "sqlite" else request.getfixturevalue("pg_server").new_database()
    if request.param == "s3":
        root = f"s3://{request.getfixturevalue('s3_server').new_bucket()}/lifecycle"
    else:
        root = str(tmp_path / "files")
    with ckptstore.open_store(uri, root=root) as s:
        yield s


# --------------------------------------------------------------------------- restore, then train


def test_restore_then_fit_continues_exactly_from_the_checkpoint(area_store) -> None:
    model = _classifier()
    with area_store.start_run("r") as run:
        _fit(model, 2)
        run.save(model, 8)
    _fit(model, 1)  # what training on from the checkpoint gives
    before = _read_dirs()

    fresh = _classifier(seed=1)  # other initial weights, optimizer not built yet
    area_store.restore("r@8", fresh)
    assert int(fresh.optimizer.iterations) == 8  # slots and step counter restored at once
    _fit(fresh, 1)  # used to raise NotFoundError: the slots were read after the files were gone
    for got, want in zip(_state(fresh), _state(model), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    del fresh
    gc.collect()
    assert _read_dirs() <= before  # the read directory went with the restore


@pytest.mark.slow
def test_restore_by_version_and_best_then_fit(sqlite_store) -> None:
    model = _classifier()
    with sqlite_store.start_run("v") as run:
        _fit(model, 1, [StoreCallback(run, save_every_epoch=True)], validation_data=_data())
        _fit(model, 1, [StoreCallback(run, save_every_epoch=True)], validation_data=_data())
    sqlite_store.set_alias("prod", "v@4")
    for ref in ("prod", "v@best:val_accuracy", "v@latest"):
        fresh = _classifier(seed=2)
        sqlite_store.restore(ref, fresh)
        _fit(fresh, 1)
        assert int(fresh.optimizer.iterations) == sqlite_store.checkpoint(ref).step + 4


def test_a_variable_created_after_the_restore_gets_its_value_when_created(sqlite_store) -> None:
    class Lazy(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = None

        def build(self) -> None:
            self.head = tf.Variable(tf.zeros([3]))

    saved = Lazy()
    saved.build()
    saved.head.assign([1.0, 2.0, 3.0])
    with sqlite_store.start_run("lazy") as run:
        run.save(tf.train.Checkpoint(net=saved), 1)
    before = _read_dirs()
    target = Lazy()
    ckpt = tf.train.Checkpoint(net=target)
    sqlite_store.restore("lazy@1", ckpt)
    assert _read_dirs() - before  # kept while a value is pending
    target.build()  # TF restores the value now, from the files the restore left readable
    np.testing.assert_array_equal(target.head.numpy(), [1.0, 2.0, 3.0])
    gc.collect()
    assert not (_read_dirs() - before)  # and removed once nothing is pending


def test_a_checkpoint_that_does_not_fit_changes_nothing_and_names_the_variable(sqlite_store) -> None:
    model = _classifier()
    with sqlite_store.start_run("fit") as run:
        _fit(model, 1)
        run.save(model, 4)
    wider = keras.Sequential([keras.Input((4,)), keras.layers.Dense(9, name="hidden"), keras.layers.Dense(3, name="out")])
    wider.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    weights = [keras.ops.convert_to_numpy(w) for w in wider.weights]
    with pytest.raises(RestoreMismatchError, match=r"hidden|kernel") as err:
        sqlite_store.restore("fit@4", wider)
    assert "\n" not in str(err.value)
    for got, want in zip(wider.weights, weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), want)
    assert not wider.optimizer.built  # the optimizer is built only for a checkpoint that fits


# --------------------------------------------------------------------------- resume


def test_a_resumed_run_continues_after_its_last_step(store) -> None:
    with store.start_run("res", params={"epochs": 5}, retention=Retention(max_to_keep=3)) as run:
        assert run.resumed_from is None and run.next_step == 0
        for step in range(1, 11):
            run.log(step, loss=1.0 / step)
        assert run.next_step == 11
    with store.start_run("res", resume=True) as run:
        assert run.resumed_from == 10 and run.next_step == 11
        with pytest.raises(StepConflictError, match=r"already has steps up to 10: cannot log step 3") as err:
            run.log(3, loss=0.0)
        assert "\n" not in str(err.value)
        with pytest.raises(StepConflictError):
            run.save(object(), 10)  # refused before the target is even looked at
        run.log(11, loss=0.05)
    assert [s.step for s in store.steps("res")] == list(range(1, 12))
    assert store.metric_history("res") == []  # nothing was rewritten
    with pytest.raises(ParamsChangedError, match=r"epochs 5 -> 2"):
        store.start_run("res", params={"epochs": 2}, resume=True)
    assert store.get_run("res").params == {"epochs": 5}


def test_rewind_moves_the_abandoned_steps_to_history_and_retention_keeps_new_saves(store, tiny_model) -> None:
    model = tiny_model()
    with store.start_run("rw", retention=Retention(max_to_keep=3)) as run:
        for step in (10, 20, 30):
            run.log(step, loss=float(step))
            run.save(model, step)
        run.log(31, loss=31.0)
    with store.start_run("rw", resume=True) as run:
        assert run.rewind(10) == 3  # training restarts from the checkpoint at 10
        assert [s.step for s in store.steps("rw")] == [10]
        run.log(11, loss=-11.0)
        run.save(model, 11)
        # Saves are counted in the order they were made, as CheckpointManager does: the one just
        # saved stays although the earlier training saved higher steps.
        assert [c.step for c in store.checkpoints("rw")] == [11, 20, 30]
        run.log(12, loss=-12.0)
        run.save(model, 12)
        assert [c.step for c in store.checkpoints("rw")] == [11, 12, 30]
    assert {(h.step, h.value) for h in store.metric_history("rw")} == {(20, 20.0), (30, 30.0), (31, 31.0)}
    assert [s.metrics["loss"] for s in store.steps("rw")] == [10.0, -11.0, -12.0]


def test_a_resumed_keras_callback_continues_steps_and_epochs(sqlite_store, caplog: pytest.LogCaptureFixture) -> None:
    model = _classifier()
    with sqlite_store.start_run("k", retention=Retention(max_to_keep=2)) as run:
        _fit(model, 2, [StoreCallback(run, save_every_epoch=True)])
    with sqlite_store.start_run("k", resume=True) as run:
        with pytest.raises(StepConflictError, match="initial_step=0"):
            StoreCallback(run, initial_step=0)
        cb = StoreCallback(run, save_every_epoch=True)
        assert cb.initial_epoch == 2
        with caplog.at_level("WARNING", logger="ckptstore.keras"):
            _fit(model, 3, [cb], initial_epoch=cb.initial_epoch)
    assert not [r for r in caplog.records if "initial_epoch" in r.getMessage()]
    rows = sqlite_store.steps("k")
    assert [r.step for r in rows] == list(range(1, 13))  # every step once
    assert {r.step: r.metrics["epoch"] for r in rows if "epoch" in r.metrics} == {4: 1.0, 8: 2.0, 12: 3.0}
    assert sqlite_store.metric_history("k") == []
    # The new training's checkpoint survives retention; the first training's newest is kept beside it.
    assert [c.step for c in sqlite_store.checkpoints("k")] == [8, 12]


# --------------------------------------------------------------------------- metric names and KeepBest


@pytest.mark.slow
def test_keep_best_on_a_validation_metric_keeps_the_best_epoch_without_monitor(sqlite_store) -> None:
    model = _classifier(seed=5)
    retention = Retention(max_to_keep=1, keep_best=KeepBest("val_accuracy", k=1))
    with sqlite_store.start_run("best", retention=retention) as run:
        history = _fit(model, 6, [StoreCallback(run, save_every_epoch=True)], validation_data=_data())
    val = history.history["val_accuracy"]
    best_epoch = max(range(len(val)), key=lambda e: (val[e], e))  # ties: the newer step wins
    best = sqlite_store.best("best", "val_accuracy")
    assert best.step == 4 * (best_epoch + 1)
    assert {c.step for c in sqlite_store.checkpoints("best")} == {best.step, 24}
    keys = set().union(*(s.metrics for s in sqlite_store.steps("best")))
    assert keys == {"loss", "accuracy", "val_loss", "val_accuracy", "epoch"}  # each value under one name


def test_keep_best_of_a_metric_the_run_never_logs_warns_at_the_first_save(sqlite_store, tiny_model, caplog) -> None:
    with sqlite_store.start_run("typo", retention=Retention(keep_best=KeepBest("val_acc"))) as run:
        run.log(1, val_accuracy=0.5)
        with caplog.at_level("WARNING", logger="ckptstore.run"):
            run.save(tiny_model(), 1)
            run.save(tiny_model(), 2)
    warned = [r.getMessage() for r in caplog.records if "'val_acc'" in r.getMessage()]
    assert len(warned) == 1 and "val_accuracy" in warned[0]
    with pytest.raises(UnknownRefError, match=r"never logged a metric 'val_acc': did you mean best:val_accuracy"):
        sqlite_store.best("typo", "val_acc")
    line = cli.fails("vars", "typo@best:val_acc", store=sqlite_store.root)
    assert "never logged a metric 'val_acc'" in line and "val_accuracy" in line


def test_tf1_session_restore_then_train_continues_exactly(sqlite_store) -> None:
    def build() -> tuple:
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.set_random_seed(0)
            x = tf.constant(_data()[0])
            w = tf.compat.v1.get_variable("w", [4, 1], initializer=tf.compat.v1.glorot_uniform_initializer(seed=1))
            loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - 1.0))
            train = tf.compat.v1.train.AdamOptimizer(0.05).minimize(loss, global_step=tf.compat.v1.train.get_or_create_global_step())
            init = tf.compat.v1.global_variables_initializer()
        sess = tf.compat.v1.Session(graph=graph)
        sess.run(init)
        return sess, train, w

    sess, train, w = build()
    for _ in range(3):
        sess.run(train)
    with sqlite_store.start_run("tf1") as run:
        run.save(sess, 3)
    for _ in range(2):
        sess.run(train)
    want = sess.run(w)

    fresh, train2, w2 = build()
    sqlite_store.restore("tf1@3", fresh)  # weights, Adam's slots and the global step
    for _ in range(2):
        fresh.run(train2)
    np.testing.assert_allclose(fresh.run(w2), want, rtol=1e-6)

"""StoreCallback: Keras training logged into a store, checkpoints saved under retention."""

from __future__ import annotations

import numpy as np
import pytest

from ckptstore import KeepBest, Retention

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from ckptstore.keras import StoreCallback  # noqa: E402


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) * 0.5).astype("float32")
    return x, y


def test_logs_batches_and_epochs_and_saves_every_n_steps(sqlite_store, data):
    x, y = data
    keras.utils.set_random_seed(0)
    model = _model()
    run = sqlite_store.start_run("fit")
    cb = StoreCallback(run, save_every_n_steps=3)
    # 64 samples / batch 16 = 4 steps per epoch, 3 epochs = steps 1..12
    model.fit(x, y, batch_size=16, epochs=3, validation_data=(x[:16], y[:16]), callbacks=[cb], verbose=0, shuffle=False)
    run.finish()
    rows = {r.step: r.metrics for r in sqlite_store.steps("fit")}
    assert sorted(rows) == list(range(1, 13))
    assert all("loss" in m for m in rows.values())
    assert {s for s, m in rows.items() if "epoch_val_loss" in m} == {4, 8, 12}
    assert {s for s, m in rows.items() if "epoch_loss" in m} == {4, 8, 12}
    assert [ck.step for ck in sqlite_store.checkpoints("fit")] == [3, 6, 9, 12]
    assert [ck.step for ck in cb.saved] == [3, 6, 9, 12]
    assert cb.step == 12


def test_saved_checkpoint_restores_into_a_fresh_model(sqlite_store, data):
    x, y = data
    keras.utils.set_random_seed(1)
    model = _model()
    with sqlite_store.start_run("restore-me") as run:
        model.fit(x, y, batch_size=32, epochs=2, callbacks=[StoreCallback(run, save_every_epoch=True)], verbose=0)
    assert [ck.step for ck in sqlite_store.checkpoints("restore-me")] == [2, 4]
    fresh = _model()
    sqlite_store.restore("restore-me@latest", fresh)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_retention_and_monitor_keep_the_best_epoch(sqlite_store, data):
    x, y = data
    keras.utils.set_random_seed(2)
    model = _model()
    retention = Retention(max_to_keep=1, keep_best=KeepBest("val_loss", k=1))
    with sqlite_store.start_run("best", retention=retention) as run:
        cb = StoreCallback(run, save_every_epoch=True, monitor="val_loss")
        model.fit(x, y, batch_size=16, epochs=4, validation_data=(x[:16], y[:16]), callbacks=[cb], verbose=0)
    val = {r.step: r.metrics["val_loss"] for r in sqlite_store.steps("best", keys=["val_loss"])}
    assert sorted(val) == [4, 8, 12, 16]  # logged at every save, so keep-best can rank each one
    best = min(val, key=val.get)
    kept = [ck.step for ck in sqlite_store.checkpoints("best")]
    assert kept == sorted({best, 16})


def test_explicit_target_and_initial_step(sqlite_store, data):
    x, y = data
    model = _model()
    run = sqlite_store.start_run("resume")
    target = tf.train.Checkpoint(net=model)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[StoreCallback(run, save_every_n_steps=2, target=target, initial_step=100)], verbose=0)
    run.finish()
    assert [ck.step for ck in sqlite_store.checkpoints("resume")] == [102]
    assert any(v.name.startswith("net/") for v in sqlite_store.variables("resume@102"))


@pytest.mark.parametrize("kwargs", [{"save_every_n_steps": 0}, {"save_every_n_steps": True}, {"initial_step": -1}])
def test_bad_arguments_are_refused(sqlite_store, kwargs):
    with pytest.raises(ValueError):
        StoreCallback(sqlite_store.start_run("x"), **kwargs)


def test_the_package_and_cli_do_not_import_keras():
    from conftest import run_py

    r = run_py("import sys, ckptstore, ckptstore.cli; print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    assert r.stdout.strip() == "False False", r.stderr


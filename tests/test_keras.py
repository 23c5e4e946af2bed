"""StoreCallback: Keras training logged into a store, checkpoints saved under retention."""

from __future__ import annotations

import numpy as np
import pytest

from ckptstore import KeepBest, Retention
from tests.helpers.processes import run_py
from tests.helpers.skips import require_tensorflow

tf = require_tensorflow()
import keras  # noqa: E402  (ships with TensorFlow 2.16+)

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


@pytest.mark.slow
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
    # Keras's own names, once each: validation and the epoch count at each epoch's last step.
    assert {s for s, m in rows.items() if "val_loss" in m} == {4, 8, 12}
    assert {s: m["epoch"] for s, m in rows.items() if "epoch" in m} == {4: 1.0, 8: 2.0, 12: 3.0}
    assert not [k for m in rows.values() for k in m if k.startswith("epoch_")]
    assert [ck.step for ck in sqlite_store.checkpoints("fit")] == [3, 6, 9, 12]
    assert [ck.step for ck in cb.saved] == [3, 6, 9, 12]
    assert cb.step == 12


@pytest.mark.slow
def test_steps_follow_batches_when_keras_runs_several_per_call(sqlite_store, data):
    # steps_per_execution=3: Keras calls on_train_batch_end once per 3 batches.
    x, y = data
    keras.utils.set_random_seed(0)
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", steps_per_execution=3)
    run = sqlite_store.start_run("spe")
    cb = StoreCallback(run, save_every_n_steps=4)
    # 64 / 8 = 8 batches per epoch, 2 epochs: calls after batches 3, 6, 8 of each epoch
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[cb], verbose=0, shuffle=False)
    run.finish()
    assert cb.step == 16
    assert [r.step for r in sqlite_store.steps("spe", keys=["loss"])] == [3, 6, 8, 11, 14, 16]
    # a multiple of 4 reached within a call saves at that call's step
    assert [ck.step for ck in sqlite_store.checkpoints("spe")] == [6, 8, 14, 16]


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


@pytest.mark.slow
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


class _EpochRecorder(keras.callbacks.Callback):
    """What Keras reported at each epoch's end, and the model's weights at that moment."""

    def __init__(self):
        super().__init__()
        self.logs, self.weights = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))
        self.weights.append([w.copy() for w in self.model.get_weights()])


def _monitored(store, run, key="val_loss"):
    return {r.step: r.metrics[key] for r in store.steps(run, keys=[key])}


@pytest.mark.slow
def test_step_saves_on_epoch_ends_carry_that_epochs_val_loss_and_keep_the_best(sqlite_store, data):
    x, y = data
    keras.utils.set_random_seed(3)
    model = _model()
    # Gradient ascent in the last epoch, so the best val_loss is the middle epoch's: a value
    # logged one epoch late would make the last checkpoint look best.
    worse_last = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: model.optimizer.learning_rate.assign(-0.05) if epoch == 2 else None
    )
    recorder = _EpochRecorder()
    retention = Retention(max_to_keep=1, keep_best=KeepBest("val_loss", k=1))
    with sqlite_store.start_run("steps-best", retention=retention) as run:
        cb = StoreCallback(run, save_every_n_steps=4, monitor="val_loss")
        # 64 samples / batch 16 = 4 steps per epoch: every save falls on an epoch's last batch
        model.fit(x, y, batch_size=16, epochs=3, validation_data=(x[:16], y[:16]), shuffle=False,
                  callbacks=[worse_last, cb, recorder], verbose=0)
    reported = {4 * (e + 1): logs["val_loss"] for e, logs in enumerate(recorder.logs)}
    assert _monitored(sqlite_store, "steps-best") == pytest.approx(reported, rel=1e-12, abs=0)
    assert [ck.step for ck in cb.saved] == [4, 8, 12]
    best = min(reported, key=reported.get)
    assert best == 8
    assert [ck.step for ck in sqlite_store.checkpoints("steps-best")] == [8, 12]
    fresh = _model()
    sqlite_store.restore(f"steps-best@{best}", fresh)
    for restored, at_epoch_end in zip(fresh.get_weights(), recorder.weights[best // 4 - 1]):
        np.testing.assert_array_equal(restored, at_epoch_end)


@pytest.mark.slow
def test_mid_epoch_saves_log_no_epoch_metric_and_no_step_is_saved_twice(sqlite_store, data):
    x, y = data
    keras.utils.set_random_seed(4)
    model = _model()
    recorder = _EpochRecorder()
    with sqlite_store.start_run("mid-epoch") as run:
        cb = StoreCallback(run, save_every_n_steps=3, save_every_epoch=True, monitor="val_loss")
        model.fit(x, y, batch_size=16, epochs=3, validation_data=(x[:16], y[:16]), shuffle=False,
                  callbacks=[cb, recorder], verbose=0)
    # 3, 6, 9 are mid-epoch; 4, 8 are epoch ends; 12 is both and saved once
    assert [ck.step for ck in cb.saved] == [3, 4, 6, 8, 9, 12]
    assert [ck.step for ck in sqlite_store.checkpoints("mid-epoch")] == [3, 4, 6, 8, 9, 12]
    reported = {4 * (e + 1): logs["val_loss"] for e, logs in enumerate(recorder.logs)}
    assert _monitored(sqlite_store, "mid-epoch") == pytest.approx(reported, rel=1e-12, abs=0)


def test_a_batch_metric_is_monitored_with_the_saving_batchs_value(sqlite_store, data):
    x, y = data
    model = _model()
    batch_loss = {}
    remember = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batch_loss.update({b: logs["loss"]}))
    with sqlite_store.start_run("batch-monitor") as run:
        cb = StoreCallback(run, save_every_n_steps=3, monitor="loss")
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, callbacks=[remember, cb], verbose=0)
    assert [ck.step for ck in cb.saved] == [3]
    assert _monitored(sqlite_store, "batch-monitor", "loss")[3] == pytest.approx(float(batch_loss[2]), rel=1e-12)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_unknown_epoch_length_saves_at_the_batch_and_ranks_by_that_epochs_value(sqlite_store, data):
    x, y = data
    model = _model()
    # filter() hides the dataset's length from Keras: the last batch is only known afterwards
    ds = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(16)
    with sqlite_store.start_run("unknown-length") as run:
        cb = StoreCallback(run, save_every_n_steps=4, monitor="val_loss")
        history = model.fit(ds, epochs=2, validation_data=(x[:16], y[:16]), shuffle=False, callbacks=[cb], verbose=0)
    assert [ck.step for ck in cb.saved] == [4, 8]
    # Saved at the batch (the epoch's end is only known afterwards); the validation that follows
    # evaluates the same weights and is logged at the same step, so each checkpoint ranks by
    # its own epoch's value, never an earlier one.
    assert _monitored(sqlite_store, "unknown-length") == pytest.approx(
        {4: history.history["val_loss"][0], 8: history.history["val_loss"][1]}, rel=1e-12, abs=0
    )


def test_a_monitor_keras_never_logs_is_warned_about(sqlite_store, data, caplog):
    x, y = data
    model = _model()
    with sqlite_store.start_run("typo") as run, caplog.at_level("WARNING", logger="ckptstore.keras"):
        model.fit(x, y, batch_size=32, epochs=1, callbacks=[StoreCallback(run, save_every_epoch=True, monitor="val_los")], verbose=0)
    assert [r.getMessage() for r in caplog.records if "'val_los'" in r.getMessage()]
    assert _monitored(sqlite_store, "typo", "val_los") == {}


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
    r = run_py("import sys, ckptstore, ckptstore.cli; print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    assert r.stdout.strip() == "False False", r.stderr


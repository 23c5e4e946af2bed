"""Preemption-safe training: the same script, run again after a real SIGKILL or SIGTERM,
continues its run and ends as an uninterrupted run does (issue 22, point 3).

Each kill test runs a training script three times in fresh interpreters: once uninterrupted
(run ``ref``), once paused at a known step and killed there by this process (run ``cut``), and
once more as is. The resumed run must end with the uninterrupted run's weights, log every step
once (and the same values), and keep the same checkpoints.
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptstore.errors import InvalidOptionError, RunExistsError, UnknownRunError
from ckptstore.preemption import RESTART_EXIT_CODE, Checkpointing, PreemptionNotice
from tests.helpers.processes import run_py

# A training script pauses at this step (after flushing its metrics, so that the values it
# logged after its last checkpoint are in the database) and waits there to be killed.
PAUSE = textwrap.dedent(
    """
    import os as _os, time as _time
    def pause_here(run, step, marker):
        if marker != "-" and step == PAUSE_AT:
            run.flush()
            open(marker, "w").close()
            _end = _time.monotonic() + 20
            while _time.monotonic() < _end:  # SIGTERM is answered after this returns
                _time.sleep(0.02)
                if _os.path.exists(marker + ".go"):
                    break
    """
)

KERAS = PAUSE + textwrap.dedent(
    """
    import sys
    import numpy as np
    import ckptstore
    import keras, tensorflow as tf
    from ckptstore.keras import BackupAndRestore
    uri, root, run, save_freq, PAUSE_AT, marker, out = sys.argv[1:8]
    PAUSE_AT = int(PAUSE_AT)
    keras.utils.set_random_seed(7)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]])).astype("float32")
    model = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.3), keras.layers.Dense(1),
    ])
    model.compile(keras.optimizers.Adam(0.01), "mse", metrics=["mae"])
    store = ckptstore.open_store(uri, root=root)
    cb = BackupAndRestore(store, run, save_freq=save_freq if save_freq == "epoch" else int(save_freq))
    class Pause(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pause_here(cb.run, cb.step, marker)
    # 64 samples / 8 = 8 steps per epoch, 4 epochs: steps 1..32
    model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0,
              validation_data=(x[:16], y[:16]), callbacks=[cb, Pause()])
    np.savez(out, *model.get_weights())
    """
)

TF2_LOOP = PAUSE + textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    import ckptstore
    from ckptstore.preemption import Checkpointing
    uri, root, run, save_every, PAUSE_AT, marker, out = sys.argv[1:8]
    PAUSE_AT = int(PAUSE_AT)
    tf.config.experimental.enable_op_determinism()
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    iterator = iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat())
    w = tf.Variable(tf.zeros([4, 1]))
    velocity = tf.Variable(tf.zeros([4, 1]))
    noise = tf.random.Generator.from_seed(1)   # its state is in the checkpoint
    @tf.function
    def train_step(xb, yb):
        keep = tf.cast(noise.uniform([4, 1]) > 0.2, tf.float32)   # dropout-like
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((xb @ (w * keep) - yb) ** 2)
        velocity.assign(0.9 * velocity + tape.gradient(loss, w))
        w.assign_sub(0.01 * velocity)
        return loss
    ckpt = tf.train.Checkpoint(w=w, velocity=velocity, noise=noise, data=iterator)
    store = ckptstore.open_store(uri, root=root)
    with Checkpointing(store, run, ckpt, save_every=int(save_every)) as pc:
        for step in pc.steps(40):
            pc.log(loss=train_step(*next(iterator)))
            pause_here(pc.run, step, marker)
    np.savez(out, w.numpy())
    """
)

TF1_LOOP = PAUSE + textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    import ckptstore
    from ckptstore.preemption import Checkpointing
    uri, root, run, save_every, PAUSE_AT, marker, out = sys.argv[1:8]
    PAUSE_AT = int(PAUSE_AT)
    tf.compat.v1.disable_eager_execution()
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    xs = tf.compat.v1.placeholder(tf.float32, [None, 4])
    ys = tf.compat.v1.placeholder(tf.float32, [None, 1])
    w = tf.compat.v1.get_variable("w", [4, 1], initializer=tf.compat.v1.zeros_initializer())
    loss = tf.reduce_mean((xs @ w - ys) ** 2)
    train_op = tf.compat.v1.train.MomentumOptimizer(0.01, 0.9).minimize(loss)   # slots are saved too
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    store = ckptstore.open_store(uri, root=root)
    with Checkpointing(store, run, sess, save_every=int(save_every)) as pc:
        for step in pc.steps(40):
            i = (step - 1) % 8                         # the data position follows the step
            _, value = sess.run([train_op, loss], {xs: x[i * 8:(i + 1) * 8], ys: y[i * 8:(i + 1) * 8]})
            pc.log(loss=value)
            pause_here(pc.run, step, marker)
    np.savez(out, sess.run(w))
    """
)

DEADLINE = 150.0


def _where(store: Any, tmp_path: Path) -> tuple[str, str]:
    """(uri, root) of the ``sqlite_store`` fixture's store, for a child to open."""
    return str(tmp_path / "store"), str(store.root)


def _train(children: Any, script: str, where: tuple[str, str], run: str, freq: str, out: Path) -> None:
    """Run ``script`` on the store at ``where`` (uri, root) to its end (exit 0)."""
    proc = children.python(script, *where, run, freq, "0", "-", str(out), deadline=DEADLINE)
    _, stderr = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, stderr[-3000:]


def _interrupt(children: Any, script: str, where: tuple[str, str], run: str, freq: str, at: int, sig: int, tmp: Path) -> int:
    """Run ``script`` until it pauses at step ``at``, send it ``sig``, return its exit code."""
    marker = tmp / f"paused-{run}"
    proc = children.python(script, *where, run, freq, str(at), str(marker), str(tmp / "unused.npz"), deadline=DEADLINE)
    end = time.monotonic() + DEADLINE
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, "the training never reached the pause"
        time.sleep(0.05)
    proc.send_signal(sig)
    if sig == signal.SIGTERM:
        (tmp / f"paused-{run}.go").touch()  # end the pause: the handler answers at the next step
    _, stderr = proc.communicate(timeout=DEADLINE)
    if sig == signal.SIGTERM:
        assert "Traceback" not in stderr, stderr[-3000:]  # a clean exit, not a crash
    return proc.returncode


def _check_same_training(store: Any, tmp: Path, extra_checkpoints: set[int] = frozenset()) -> None:
    ref, cut = np.load(tmp / "ref.npz"), np.load(tmp / "cut.npz")
    for key in ref:
        np.testing.assert_allclose(cut[key], ref[key], rtol=1e-6, atol=0)
    ref_steps, cut_steps = store.steps("ref"), store.steps("cut")
    assert [s.step for s in cut_steps] == [s.step for s in ref_steps]  # each step once, none missing
    for a, b in zip(ref_steps, cut_steps):
        assert b.metrics.keys() == a.metrics.keys(), a.step
        np.testing.assert_allclose(list(b.metrics.values()), list(a.metrics.values()), rtol=1e-6, err_msg=str(a.step))
    ref_ckpts = {c.step for c in store.checkpoints("ref")}
    assert {c.step for c in store.checkpoints("cut")} == ref_ckpts | set(extra_checkpoints)


# --------------------------------------------------------------------------- real kills


@pytest.mark.slow
@pytest.mark.parametrize("save_freq, at, last_checkpoint", [("epoch", 13, 8), ("3", 13, 12)])
def test_keras_killed_mid_epoch_resumes_at_the_saved_batch(sqlite_store, children, tmp_path, save_freq, at, last_checkpoint):
    _train(children, KERAS, _where(sqlite_store, tmp_path), "ref", save_freq, tmp_path / "ref.npz")
    code = _interrupt(children, KERAS, _where(sqlite_store, tmp_path), "cut", save_freq, at, signal.SIGKILL, tmp_path)
    assert code == -signal.SIGKILL
    assert max(c.step for c in sqlite_store.checkpoints("cut")) == last_checkpoint
    _train(children, KERAS, _where(sqlite_store, tmp_path), "cut", save_freq, tmp_path / "cut.npz")
    _check_same_training(sqlite_store, tmp_path)
    # What the killed process logged after its checkpoint was computed again, and kept as history.
    moved = {c.step for c in sqlite_store.metric_history("cut")}
    assert moved and min(moved) > last_checkpoint and max(moved) <= at
    assert sqlite_store.get_run("cut").status == "finished"


@pytest.mark.slow
def test_keras_killed_inside_its_first_save_starts_over(sqlite_store, children, tmp_path):
    where = _where(sqlite_store, tmp_path)
    _train(children, KERAS, where, "ref", "3", tmp_path / "ref.npz")
    # SIGKILL after the files of step 3 reached the object area, before the commit.
    proc = children.python(KERAS, *where, "cut", "3", "0", "-", str(tmp_path / "unused.npz"),
                           deadline=DEADLINE, env={"CKPTSTORE_FAULT": "moved"})
    proc.communicate(timeout=DEADLINE)
    assert proc.returncode == -signal.SIGKILL
    assert sqlite_store.checkpoints("cut") == []
    _train(children, KERAS, where, "cut", "3", tmp_path / "cut.npz")
    _check_same_training(sqlite_store, tmp_path)
    assert {c.step for c in sqlite_store.metric_history("cut")} == {1, 2, 3}  # done again from the start


@pytest.mark.slow
def test_keras_sigterm_saves_the_current_step_and_exits_42(sqlite_store, children, tmp_path):
    _train(children, KERAS, _where(sqlite_store, tmp_path), "ref", "3", tmp_path / "ref.npz")
    code = _interrupt(children, KERAS, _where(sqlite_store, tmp_path), "cut", "3", 13, signal.SIGTERM, tmp_path)
    assert code == RESTART_EXIT_CODE
    # Noticed while paused after step 13, answered at the end of step 14: one extra checkpoint.
    assert max(c.step for c in sqlite_store.checkpoints("cut")) == 14
    # Preempted, not finished: the process is gone without ending the run, so readers show it
    # crashed (resumable) until the restarted job resumes it.
    assert sqlite_store.get_run("cut").status == "crashed"
    _train(children, KERAS, _where(sqlite_store, tmp_path), "cut", "3", tmp_path / "cut.npz")
    _check_same_training(sqlite_store, tmp_path, extra_checkpoints={14})
    assert sqlite_store.metric_history("cut") == []  # nothing was logged after the last save


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_custom_tf2_loop_resumes_with_data_position_and_rng(sqlite_store, children, tmp_path, sig):
    _train(children, TF2_LOOP, _where(sqlite_store, tmp_path), "ref", "5", tmp_path / "ref.npz")
    code = _interrupt(children, TF2_LOOP, _where(sqlite_store, tmp_path), "cut", "5", 13, sig, tmp_path)
    assert code == (RESTART_EXIT_CODE if sig == signal.SIGTERM else -signal.SIGKILL)
    _train(children, TF2_LOOP, _where(sqlite_store, tmp_path), "cut", "5", tmp_path / "cut.npz")
    _check_same_training(sqlite_store, tmp_path, extra_checkpoints={13} if sig == signal.SIGTERM else set())


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_tf1_session_loop_resumes(sqlite_store, children, tmp_path, sig):
    _train(children, TF1_LOOP, _where(sqlite_store, tmp_path), "ref", "5", tmp_path / "ref.npz")
    code = _interrupt(children, TF1_LOOP, _where(sqlite_store, tmp_path), "cut", "5", 13, sig, tmp_path)
    assert code == (RESTART_EXIT_CODE if sig == signal.SIGTERM else -signal.SIGKILL)
    _train(children, TF1_LOOP, _where(sqlite_store, tmp_path), "cut", "5", tmp_path / "cut.npz")
    _check_same_training(sqlite_store, tmp_path, extra_checkpoints={13} if sig == signal.SIGTERM else set())


@pytest.mark.slow
@pytest.mark.postgres
def test_keras_killed_mid_epoch_on_postgresql(pg_server, tmp_path, children):
    import ckptstore

    where = (pg_server.new_database(), str(tmp_path / "files"))
    store = ckptstore.open_store(where[0], root=where[1])
    try:
        _train(children, KERAS, where, "ref", "3", tmp_path / "ref.npz")
        assert _interrupt(children, KERAS, where, "cut", "3", 13, signal.SIGKILL, tmp_path) == -signal.SIGKILL
        _train(children, KERAS, where, "cut", "3", tmp_path / "cut.npz")
        _check_same_training(store, tmp_path)
    finally:
        store.close()


# --------------------------------------------------------------------------- the README's examples


def _readme_blocks() -> list[str]:
    """The Python blocks of the "Preemption-safe training" section (docs/python-api.md, moved there from the README)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text()
    section = text.split("\n## Preemption-safe training\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


def test_readme_section_has_the_three_examples():
    blocks = _readme_blocks()
    assert len(blocks) == 3 and "BackupAndRestore" in blocks[0] and "Session" in blocks[2]


@pytest.mark.slow
@pytest.mark.parametrize("index, run, steps", [(0, "keras-preemptible", 40), (1, "loop-preemptible", 500),
                                               (2, "tf1-preemptible", 500)])
def test_readme_example_runs_and_a_rerun_adds_nothing(tmp_path, index, run, steps):
    import ckptstore

    code = _readme_blocks()[index]
    env = {"CKPTSTORE_URI": str(tmp_path / ".ckptstore")}
    for _ in range(2):  # the second run finds the training done
        out = run_py(code, env=env, timeout=DEADLINE)
        assert out.returncode == 0, out.stderr[-3000:]
    with ckptstore.open_store(str(tmp_path / ".ckptstore")) as store:
        assert [s.step for s in store.steps(run)] == list(range(1, steps + 1))
        assert store.metric_history(run) == []
        assert store.get_run(run).status == "finished"
        assert max(c.step for c in store.checkpoints(run)) == steps


# --------------------------------------------------------------------------- in process


def test_bad_runs_are_one_line_before_tensorflow_loads(sqlite_store, tmp_path):
    sqlite_store.start_run("exists").finish()
    with pytest.raises(UnknownRunError, match="nope"):
        Checkpointing(sqlite_store, "nope", object(), resume="must")
    with pytest.raises(RunExistsError, match="exists"):
        Checkpointing(sqlite_store, "exists", object(), resume=False)
    for bad in (dict(save_every=0), dict(exit_code=300), dict(exit_code=True)):
        with pytest.raises(InvalidOptionError):
            Checkpointing(sqlite_store, "fresh", object(), **bad)
    # A fresh interpreter: the helper's checks run without importing TensorFlow.
    code = textwrap.dedent(
        """
        import sys, ckptstore
        from ckptstore.preemption import Checkpointing
        store = ckptstore.open_store(sys.argv[1])
        try:
            Checkpointing(store, "nope", object(), resume="must")
        except ckptstore.UnknownRunError as exc:
            print(str(exc))
        print("tensorflow" in sys.modules)
        """
    )
    out = run_py(code, str(tmp_path / "store"), timeout=60)
    assert out.returncode == 0, out.stderr
    message, loaded = out.stdout.strip().splitlines()
    assert "nope" in message and loaded == "False"


def test_keras_callback_bad_input(sqlite_store):
    pytest.importorskip("tensorflow")
    from ckptstore.keras import BackupAndRestore

    sqlite_store.start_run("exists").finish()
    with pytest.raises(UnknownRunError, match="nope"):
        BackupAndRestore(sqlite_store, "nope", resume="must")
    with pytest.raises(RunExistsError):
        BackupAndRestore(sqlite_store, "exists", resume=False)
    with pytest.raises(InvalidOptionError, match="save_freq"):
        BackupAndRestore(sqlite_store, "fresh", save_freq=0)
    with pytest.raises(InvalidOptionError, match="save_freq"):
        BackupAndRestore(sqlite_store, "fresh", save_freq="batch")
    with pytest.raises(InvalidOptionError, match="run name or a Run"):
        BackupAndRestore(sqlite_store)
    run = sqlite_store.start_run("handle")
    assert BackupAndRestore(run, save_freq=5).run is run


def test_sigterm_handler_only_while_active_and_only_in_the_main_thread():
    before = signal.getsignal(signal.SIGTERM)
    notice = PreemptionNotice()
    notice.install()
    assert signal.getsignal(signal.SIGTERM) != before
    os.kill(os.getpid(), signal.SIGTERM)
    assert notice.received
    notice.uninstall()
    assert signal.getsignal(signal.SIGTERM) == before

    other = PreemptionNotice()
    thread = threading.Thread(target=other.install)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_second_sigterm_before_the_save_ends_the_process():
    code = textwrap.dedent(
        """
        import os, signal, time
        from ckptstore.preemption import PreemptionNotice
        notice = PreemptionNotice()
        notice.install()
        os.kill(os.getpid(), signal.SIGTERM)
        print("noticed", notice.received, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("still alive")
        """
    )
    out = run_py(code, timeout=60)
    assert out.returncode == -signal.SIGTERM
    assert out.stdout.split() == ["noticed", "True"]


def test_loop_saves_every_n_resumes_and_stops_on_sigterm(sqlite_store, tiny_model):
    model = tiny_model()
    with Checkpointing(sqlite_store, "loop", model, save_every=3, exit_code=None) as pc:
        for step in pc.steps(10):
            model.w.assign_add(tf_ones_like(model.w))
            pc.log(loss=float(step))
            if step == 4:
                os.kill(os.getpid(), signal.SIGTERM)  # answered once this step's body is done
    assert pc.preempted and pc.step == 4
    assert [c.step for c in sqlite_store.checkpoints("loop")] == [3, 4]
    assert sqlite_store.get_run("loop").status == "running"

    fresh = tiny_model()
    with Checkpointing(sqlite_store, "loop", fresh, save_every=3) as pc:
        assert pc.step == 4 and float(fresh.w.numpy()[0, 0]) == 1.0 + 4
        done = []
        for step in pc.steps(10):
            done.append(step)
            pc.log(loss=float(step))
    assert done == [5, 6, 7, 8, 9, 10]
    assert [c.step for c in sqlite_store.checkpoints("loop")] == [3, 4, 6, 9]
    assert [s.step for s in sqlite_store.steps("loop")] == list(range(1, 11))
    assert sqlite_store.get_run("loop").status == "finished"


def test_loop_takes_a_run_handle_and_leaves_its_status_alone(sqlite_store, tiny_model, tmp_path):
    import ckptstore

    run = sqlite_store.start_run("given")
    with pytest.raises(InvalidOptionError, match="params"):
        Checkpointing(sqlite_store, run, tiny_model(), params={"lr": 1})
    with ckptstore.open_store(str(tmp_path / "other")) as other:
        with pytest.raises(InvalidOptionError, match="another store"):
            Checkpointing(other, run, tiny_model())
    with Checkpointing(sqlite_store, run, tiny_model(), save_every=2) as pc:
        for step in pc.steps(4):
            pc.log(loss=float(step))
    assert pc.run is run and [c.step for c in sqlite_store.checkpoints("given")] == [2, 4]
    assert sqlite_store.get_run("given").status == "running"  # the caller's to finish


def test_loop_exits_with_the_restart_code_on_sigterm(sqlite_store, tiny_model):
    before = signal.getsignal(signal.SIGTERM)
    model = tiny_model()
    with pytest.raises(SystemExit) as exc:
        with Checkpointing(sqlite_store, "exit", model, save_every=100) as pc:
            for step in pc.steps(10):
                if step == 2:
                    os.kill(os.getpid(), signal.SIGTERM)
    assert exc.value.code == RESTART_EXIT_CODE
    assert [c.step for c in sqlite_store.checkpoints("exit")] == [2]
    assert signal.getsignal(signal.SIGTERM) == before


def test_resume_without_checkpoint_starts_over_and_keeps_the_old_values_as_history(sqlite_store, tiny_model):
    run = sqlite_store.start_run("early")
    run.log(1, loss=9.0)
    run.log(2, loss=8.0)
    run.flush()
    model = tiny_model()
    with Checkpointing(sqlite_store, "early", model) as pc:
        for step in pc.steps(3):
            pc.log(loss=float(step))
    assert [(s.step, s.metrics["loss"]) for s in sqlite_store.steps("early")] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert sorted(c.value for c in sqlite_store.metric_history("early")) == [8.0, 9.0]


@pytest.mark.slow
def test_keras_sigterm_without_exit_stops_fit_and_the_next_fit_resumes(sqlite_store):
    import keras

    from ckptstore.keras import BackupAndRestore

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)

    def build():
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.2), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.05), "mse")
        return model

    class Terminate(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if first.step == 5:
                os.kill(os.getpid(), signal.SIGTERM)  # answered at the end of step 6

    before = signal.getsignal(signal.SIGTERM)
    first = BackupAndRestore(sqlite_store, "inproc", save_freq=4, exit_code=None)
    build().fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=[first, Terminate()])
    assert first.preempted and signal.getsignal(signal.SIGTERM) == before
    assert [c.step for c in sqlite_store.checkpoints("inproc")] == [4, 6]
    assert [s.step for s in sqlite_store.steps("inproc")] == list(range(1, 7))
    assert "epoch" not in sqlite_store.metric_keys("inproc")  # the stopped epoch did not end

    model = build()
    second = BackupAndRestore(sqlite_store, "inproc", save_freq=4)
    model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=[second])
    assert [s.step for s in sqlite_store.steps("inproc")] == list(range(1, 33))
    assert sqlite_store.get_run("inproc").status == "finished"
    # Its checkpoints are ordinary ones: a fresh model restores from them.
    fresh = build()
    sqlite_store.restore("inproc@32", fresh)
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_keras_dataset_of_unknown_length_preempted_on_an_epochs_last_batch(sqlite_store):
    import keras
    import tensorflow as tf

    from ckptstore.keras import BackupAndRestore

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, x.sum(axis=1, keepdims=True))).filter(lambda a, b: True).batch(8)
    assert int(data.cardinality()) == tf.data.UNKNOWN_CARDINALITY

    def build():
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        return model

    ref = build()
    ref.fit(data, epochs=3, verbose=0, callbacks=[BackupAndRestore(sqlite_store, "ref", save_freq=5)])
    first = BackupAndRestore(sqlite_store, "cut", save_freq=5, exit_code=None)

    class Terminate(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if first.step == 7:
                os.kill(os.getpid(), signal.SIGTERM)  # answered at step 8, the epoch's last batch

    build().fit(data, epochs=3, verbose=0, callbacks=[first, Terminate()])
    assert [c.step for c in sqlite_store.checkpoints("cut")] == [5, 8]
    model = build()
    model.fit(data, epochs=3, verbose=0, callbacks=[BackupAndRestore(sqlite_store, "cut", save_freq=5)])
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert [s.step for s in sqlite_store.steps("cut")] == list(range(1, 25))


# --------------------------------------------------------------------------- Keras's own tests
# keras/src/callbacks/backup_and_restore_test.py (Keras 3.15), with the constructor lines
# changed; assertions on Keras's private attributes use ours. Where the expected values differ,
# the comment says why. Not ported: test_backup_corrupted (double_checkpoint: a corrupt stored
# checkpoint is refused by verify, tested in test_corruption.py), test_model_deleted_case_epoch
# (delete_checkpoint: the run keeps its checkpoints by design), the backup_dir errors (no dir).


class _InterruptingCallback:
    """Keras's test callback: raise after `steps_int` batches or `epoch_int` epochs."""

    def __new__(cls, steps_int: Any, epoch_int: Any) -> Any:
        import keras

        class InterruptingCallback(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.batch_count = 0
                self.epoch_count = 0

            def on_epoch_end(self, epoch: int, log: Any = None) -> None:
                self.epoch_count += 1
                if epoch_int is not None and self.epoch_count == epoch_int:
                    raise RuntimeError("EpochInterruption")

            def on_batch_end(self, batch: int, logs: Any = None) -> None:
                self.batch_count += 1
                if steps_int is not None and self.batch_count == steps_int:
                    raise RuntimeError("StepsInterruption")

        return InterruptingCallback()


def _canary_model() -> Any:
    import keras

    class CanaryLayer(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.counter = self.add_weight(shape=(), initializer="zeros", dtype="float32", trainable=False)

        def call(self, x: Any) -> Any:
            self.counter.assign_add(1)
            return x

    model = keras.Sequential([keras.layers.Input((3,)), CanaryLayer(), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd", metrics=["mse"])
    return model


def test_keras_port_save_freq_unknown_error(sqlite_store):
    from ckptstore.keras import BackupAndRestore

    with pytest.raises(ValueError, match="save_freq"):  # Keras: "Invalid value"
        BackupAndRestore(sqlite_store, "r", save_freq="batch")
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore(sqlite_store, "r", save_freq=0.15)


@pytest.mark.slow
def test_keras_port_best_case_step(sqlite_store):
    from ckptstore.keras import BackupAndRestore

    model = _canary_model()
    cbk = BackupAndRestore(sqlite_store, "r", save_freq=1)
    x_train, y_train = np.random.random((10, 3)), np.random.random((10, 1))
    with pytest.raises(RuntimeError):
        model.fit(x_train, y_train, batch_size=4, callbacks=[cbk, _InterruptingCallback(steps_int=2, epoch_int=None)],
                  epochs=2, verbose=0)
    assert [c.step for c in sqlite_store.checkpoints("r")] == [1, 2]  # Keras: _last_batch_seen == 1
    assert int(model.layers[0].counter.value) == 2
    hist = model.fit(x_train, y_train, batch_size=4, callbacks=[cbk], epochs=5, verbose=0)
    assert cbk.step == 15  # Keras: _current_epoch == 5
    assert hist.epoch[-1] == 4
    # Keras: 17, it trains epoch 0's first two batches again; here they are skipped, so the
    # layer ran 5 epochs x 3 batches, as without the interruption.
    assert int(model.layers[0].counter.value) == 5 * 3


@pytest.mark.slow
def test_keras_port_best_case_epoch(sqlite_store):
    from ckptstore.keras import BackupAndRestore

    model = _canary_model()
    assert int(model.layers[0].counter.value) == 0
    cbk = BackupAndRestore(sqlite_store, "r", save_freq="epoch")
    x_train, y_train = np.random.random((10, 3)), np.random.random((10, 1))
    with pytest.raises(RuntimeError):
        model.fit(x_train, y_train, batch_size=4, callbacks=[cbk, _InterruptingCallback(steps_int=None, epoch_int=2)],
                  epochs=6, verbose=0)
    assert [c.step for c in sqlite_store.checkpoints("r")] == [3, 6]  # Keras: _current_epoch == 2
    assert int(model.layers[0].counter.value) == 6
    hist = model.fit(x_train, y_train, batch_size=4, callbacks=[cbk], epochs=5, verbose=0)
    assert cbk.step == 15 and hist.epoch[-1] == 4
    assert int(model.layers[0].counter.value) == 5 * 3
    assert [s.step for s in sqlite_store.steps("r")] == list(range(1, 16))


def tf_ones_like(v: Any) -> Any:
    import tensorflow as tf

    return tf.ones_like(v)

"""``ckptstore demo``: a whole tour of the store in one command (10-20 s, most of it TensorFlow).

Trains a small Keras MLP on synthetic regression data with :class:`ckptstore.keras.StoreCallback`
(metrics every step, a checkpoint every ``save_every`` steps under a retention rule that keeps
the 3 newest and the best by loss), tags the best checkpoint ``best``, restores it into a fresh
model, freezes that model into a stored GraphDef with the alias ``best-frozen``, loads the GraphDef into
a fresh TF1 graph and checks that it computes what the restored model computes, and plots the
loss. Each call makes a new run (``demo-<time>``) and moves ``best``, so it can run again and
again on the same store. Successive calls step through a small grid of learning rates and widths
(:data:`SETTINGS`), so two runs differ as a sweep's would, and the plot draws this run's loss next to
the previous demo run's.

Nothing here prints: :func:`run_demo` returns a :class:`DemoSummary` whose ``lines()`` the CLI
prints.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import CkptstoreError, TensorFlowMissingError, UnknownRunError
from .retention import KeepBest, Retention
from .tf import runtime

__all__ = ["DemoSummary", "require_tensorflow", "run_demo"]

FEATURES = 8
HIDDEN = 32
BATCH = 32
# (learning rate, hidden units) of the 1st, 2nd, ... demo run in a store, cycling: a second run
# that repeated the first would leave nothing to compare (its curves would lie on the first's).
# The first two differ in the learning rate only, so their variables can be diffed by value.
SETTINGS = [(0.01, HIDDEN), (0.003, HIDDEN), (0.01, 16), (0.003, 16)]
# The frozen graph and the restored model run the same float32 kernels; anything above this
# means the wrong weights were frozen or restored.
TOLERANCE = 1e-5


@dataclass(frozen=True)
class DemoSummary:
    """What the demo did, with the commands to explore it."""

    store: str
    run: str
    steps: int
    lr: float
    hidden: int
    seconds: float
    values_logged: int
    checkpoints_saved: list[int]
    checkpoints_kept: list[int]
    best_step: int
    best_loss: float
    best_was: str | None
    export: str
    max_abs_diff: float
    plot: Path
    commands: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report ``ckptstore demo`` prints."""
        deleted = sorted(set(self.checkpoints_saved) - set(self.checkpoints_kept))
        moved = f" (moved from {self.best_was})" if self.best_was else ""
        return [
            f"ckptstore demo: run {self.run} in {self.store} ({self.seconds:.1f} s)",
            f"  trained a {FEATURES}-{self.hidden}-1 Keras MLP (learning rate {self.lr:g}) for {self.steps} steps; logged {self.values_logged} metric values",
            f"  saved {len(self.checkpoints_saved)} checkpoints (every {self.checkpoints_saved[0]} steps); "
            f"retention (3 newest + best loss) kept steps {_steps(self.checkpoints_kept)}, deleted {len(deleted)}",
            f"  set the alias 'best' to {self.run}@{self.best_step} (loss {self.best_loss:.4g}){moved}",
            "  restored 'best' into a fresh model (checked against plain TF reading a materialized copy)",
            f"  froze the restored model as {self.export}, alias 'best-frozen'",
            f"  loaded the frozen graph into a fresh TF1 graph: outputs match the restored model "
            f"(max |diff| {self.max_abs_diff:.1e})",
            f"  wrote the loss plot to {self.plot}",
            "",
            "Explore it:",
            *(f"  {c}" for c in self.commands),
        ]


def _steps(steps: list[int]) -> str:
    return ", ".join(map(str, steps))


_NO_KERAS = "the demo needs Keras, which comes with TensorFlow ({}): pip install tensorflow-cpu"


def require_tensorflow() -> None:
    """Raise :class:`TensorFlowMissingError` at once if TensorFlow or Keras cannot be imported,
    without importing them (seconds): the CLI checks before it announces the training."""
    for name in ("tensorflow", "keras"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a blocked import, or sys.modules[name] = None
            found = False
        if not found:
            if name == "tensorflow":
                runtime.tf()  # raises its one line on what to install (returns if TF imports after all)
                continue
            raise TensorFlowMissingError(_NO_KERAS.format(f"no module named {name!r}"))


def run_demo(
    uri: str | None = None,
    *,
    root: str | None = None,
    steps: int = 300,
    save_every: int = 25,
    plot_path: str | os.PathLike[str] = "demo-loss.png",
    seed: int = 0,
) -> DemoSummary:
    """Run the demo against the store at ``uri`` (created if missing); see the module docstring.

    ``steps`` is rounded down to a multiple of ``save_every`` (at least one epoch of it).
    """
    if steps < save_every:
        raise ValueError(f"steps must be at least save_every ({save_every}), got {steps}")
    started = time.perf_counter()
    # TensorFlow first: without it ``import keras`` fails with a bare ModuleNotFoundError,
    # where the user needs the one line saying what to install.
    tf = runtime.tf()
    try:
        import keras
    except ImportError as exc:
        raise TensorFlowMissingError(_NO_KERAS.format(exc)) from exc
    import numpy as np

    from .keras import StoreCallback
    from .plot import plot_metrics
    from .store import open_store

    store = open_store(uri, root=root)
    try:
        name = _fresh_run_name(store)
        earlier = [r.name for r in store.runs(tags={"source": "ckptstore demo"})]  # newest first
        lr, hidden = SETTINGS[len(earlier) % len(SETTINGS)]
        keras.utils.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(2048, FEATURES)).astype("float32")
        w = rng.normal(size=(FEATURES, 1)).astype("float32")
        y = (np.tanh(x @ w) + 0.3 * x[:, :1] ** 2 + 0.1 * rng.normal(size=(2048, 1))).astype("float32")
        x_train, y_train, x_val, y_val = x[:1536], y[:1536], x[1536:], y[1536:]
        train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(1536, seed=seed).batch(BATCH).repeat()
        epochs = steps // save_every

        retention = Retention(max_to_keep=3, keep_best=KeepBest("loss", k=1))
        params = {"features": FEATURES, "hidden": hidden, "batch": BATCH, "lr": lr, "steps": epochs * save_every}
        with store.start_run(name, params=params, tags={"source": "ckptstore demo"}, retention=retention) as run:
            model = _model(keras, hidden)
            model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
            # An "epoch" is save_every steps, so each epoch ends with a checkpoint and val_loss.
            callback = StoreCallback(run, save_every_epoch=True)
            model.fit(
                train, epochs=epochs, steps_per_epoch=save_every, validation_data=(x_val, y_val),
                callbacks=[callback], shuffle=False, verbose=0,
            )
            saved = [ck.step for ck in callback.saved]
            kept = [ck.step for ck in store.checkpoints(name)]
            loss_at = {r.step: r.metrics["loss"] for r in store.steps(name, keys=["loss"]) if "loss" in r.metrics}
            best_step = min((s for s in kept if s in loss_at), key=lambda s: loss_at[s])
            alias = store.set_alias("best", f"{name}@{best_step}", message=f"lowest loss of run {name}")
            last = alias.history[0] if alias.history else None
            best_was = last.old_target if last is not None and last.action == "move" else None

            fresh = _model(keras, hidden)  # new random weights: only the restore can make it match
            before = fresh(x_val, training=False).numpy()
            store.restore("best", fresh)
            restored_out = fresh(x_val, training=False).numpy()
            # The same checkpoint read by plain TensorFlow from a materialized directory.
            with tempfile.TemporaryDirectory() as tmp:
                prefix = store.materialize("best", tmp)
                plain = _model(keras, hidden)
                tf.train.Checkpoint(model=plain).read(str(prefix)).assert_existing_objects_matched().expect_partial()
                plain_out = plain(x_val, training=False).numpy()
            if np.allclose(before, restored_out) or not np.array_equal(restored_out, plain_out):
                raise CkptstoreError("restoring 'best' did not give the checkpoint's weights")
            if best_step == saved[-1]:
                live_diff = float(np.max(np.abs(model(x_val, training=False).numpy() - restored_out)))
                if not live_diff <= TOLERANCE:
                    raise CkptstoreError(f"the restored model differs from the trained one by {live_diff:g}")
            serve = tf.function(
                lambda inputs: fresh(inputs, training=False),
                input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")],
            )
            export = run.freeze(serve, step=best_step)
            store.set_alias("best-frozen", export.ref, message=f"frozen from {name}@{best_step}")

            graph = store.import_frozen("best-frozen")
            with tf.compat.v1.Session(graph=graph) as sess:
                frozen_out = sess.run(export.outputs[0]["tensor"], {export.inputs[0]["tensor"]: x_val})
            diff = float(np.max(np.abs(frozen_out - restored_out)))
            if not diff <= TOLERANCE:
                raise CkptstoreError(f"the frozen graph differs from the restored model by {diff:g}")
            values = sum(len(r.metrics) for r in store.steps(name))
        plotted = [*earlier[:1], name]
        plot = plot_metrics(store, plotted, ["loss", "val_loss"], plot_path, title="demo runs: loss by step")
    finally:
        store.close()

    opt = "" if uri in (None, "", ".ckptstore") else f" --store {shlex.quote(str(uri))}"
    commands = [
        f"ckptstore{opt} runs list",
        f"ckptstore{opt} steps {name} --metric loss --from {epochs * save_every - 5}",
        f"ckptstore{opt} checkpoints {name}",
        f"ckptstore{opt} vars best",
        f"ckptstore{opt} aliases best",
        f"ckptstore{opt} exports {name}",
        f"ckptstore{opt} restore best --to demo-restore",
        f"ckptstore{opt} export best-frozen --to demo-restore/frozen.pb",
        f"ckptstore{opt} verify",
    ]
    return DemoSummary(
        store=str(uri or ".ckptstore"), run=name, steps=epochs * save_every, lr=lr, hidden=hidden,
        seconds=time.perf_counter() - started, values_logged=values, checkpoints_saved=saved,
        checkpoints_kept=kept, best_step=best_step, best_loss=loss_at[best_step], best_was=best_was,
        export=export.ref, max_abs_diff=diff, plot=plot, commands=commands,
    )


def _model(keras: Any, hidden: int) -> Any:
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(1),
        ]
    )


def _fresh_run_name(store: Any) -> str:
    base = f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    for i in range(1, 1000):
        name = base if i == 1 else f"{base}-{i}"
        try:
            store.get_run(name)
        except UnknownRunError:
            return name
    raise CkptstoreError(f"too many demo runs named {base}-*")

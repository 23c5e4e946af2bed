"""A store for the web-view tests, and the view served from a thread on a free loopback port.

The store: two comparable runs with checkpoints whose variables differ (one added, one with a
new dtype), a failed run whose name and tags are HTML, a run still running, and two named
aliases, one moved (so it has a history). Built once per test module (TensorFlow saves).
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run names cannot hold "/", so the run is an <img> whose onerror would run if parsed as HTML;
# the metric and the tag carry the <script> elements.
XSS_RUN = "<img src=x onerror=alert(1)>"
XSS_METRIC = "<script>alert(2)</script>"
XSS_TAG = ("<i>team</i>", "<script>alert(3)</script>")


def build_store(path: Path) -> None:
    """Fill a new store at ``path`` (see the module docstring)."""
    import ckptstore
    from tests.helpers.hardening import ab_module

    store = ckptstore.open_store(str(path))
    try:
        with store.start_run("mnist-a", params={"lr": 0.001, "layers": [64, 32]}, tags={"team": "vision"},
                             retention=ckptstore.Retention(max_to_keep=10)) as run:
            for step in range(0, 201):
                run.log(step, loss=2.0 * math.exp(-step / 60) + 0.05, accuracy=1 - math.exp(-step / 50))
                if step and step % 50 == 0:
                    run.save(ab_module(a=(step, 1.0)), step)
        with store.start_run("mnist-b", params={"lr": 0.01}, tags={"team": "vision", "size": "wide"}) as run:
            for step in range(0, 301):
                run.log(step, loss=1.5 * math.exp(-step / 90) + 0.1)
                if step and step % 100 == 0:
                    run.save(ab_module(b=(1.0, 2.0, 3.0), b_dtype="float64", extra=True), step)
        run = store.start_run(XSS_RUN, tags=dict([XSS_TAG]))
        run.log(1, **{XSS_METRIC: 1.0})
        run.log(2, **{XSS_METRIC: 0.5})
        run.finish("failed")
        live = store.start_run("live")
        live.log(0, loss=3.0)
        live.flush()  # left running on purpose: the table shows a running run
        store.set_alias("best", "mnist-a@100", message="first good one")
        store.set_alias("best", "mnist-b@300", message="wider is better")
        store.set_alias("prod", "mnist-a@200")
    finally:
        store.close()
    # Closing its store ended "live" (issue 22). Set running by hand, a run has no heartbeat and
    # reads running for as long as the tests need it, as a live training's run does.
    with ckptstore.open_store(str(path)) as again:
        again.set_status("live", "running")


@dataclass
class Served:
    url: str
    server: Any
    thread: threading.Thread


def serve_in_thread(store_path: Path) -> Iterator[Served]:
    """Serve ``ckptstore ui``'s app over the store (opened read-only) until the generator ends."""
    import uvicorn

    import ckptstore
    from ckptstore.ui.app import create_app
    from ckptstore.ui.server import LOOPBACK_NAMES, bind, url_of

    store = ckptstore.open_store(str(store_path), readonly=True)
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(create_app(store, allowed_hosts=LOOPBACK_NAMES), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the ui server did not start")
        time.sleep(0.02)
    try:
        yield Served(url_of(sock).rstrip("/"), server, thread)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        store.close()


def shared_store(tmp_path_factory: Any) -> Path:
    """The store of :func:`build_store`, built once per test session and shared by the web-view
    test modules: they only read it (the server opens it read-only)."""
    path = Path(tmp_path_factory.getbasetemp()) / "ui-store" / "store"
    done = path.parent / "built"
    if not done.exists():
        shutil.rmtree(path, ignore_errors=True)
        build_store(path)
        done.touch()  # written last: a build cut short is not taken for a store
    return path


# --------------------------------------------------------------------------- a Keras grid

#: The grid of the Keras store: (learning rate, hidden units), one run each.
GRID = [(0.003, 8), (0.03, 8), (0.003, 32), (0.03, 32)]
GRID_EPOCHS = 4
GRID_STEPS_PER_EPOCH = 8


def grid_run_name(lr: float, hidden: int) -> str:
    return f"grid-lr{lr}-h{hidden}"


def build_keras_store(path: Path) -> None:
    """What a new user has after a small sweep: four Keras runs over learning rate x width
    (layers ``hidden`` and ``out``, Adam, MSE with MAE, validation each epoch, a checkpoint per
    epoch kept by ``KeepBest("val_loss")``), the alias ``best`` on the best checkpoint, one
    frozen export with the alias ``prod``."""
    import keras
    import numpy as np
    import tensorflow as tf

    import ckptstore
    from ckptstore.keras import StoreCallback

    rng = np.random.default_rng(0)
    x = rng.normal(size=(640, 8)).astype("float32")
    y = (np.tanh(x @ rng.normal(size=(8, 1))) + 0.1 * rng.normal(size=(640, 1))).astype("float32")
    store = ckptstore.open_store(str(path))
    try:
        for lr, hidden in GRID:
            keras.utils.set_random_seed(1)
            model = keras.Sequential([
                keras.Input((8,)), keras.layers.Dense(hidden, activation="relu", name="hidden"), keras.layers.Dense(1, name="out"),
            ])
            model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse", metrics=["mae"])
            retention = ckptstore.Retention(max_to_keep=5, keep_best=ckptstore.KeepBest("val_loss", k=1))
            name = grid_run_name(lr, hidden)
            with store.start_run(name, params={"lr": lr, "hidden": hidden, "batch": 64}, tags={"sweep": "grid"},
                                 retention=retention) as run:
                model.fit(x[:512], y[:512], batch_size=64, epochs=GRID_EPOCHS, validation_data=(x[512:], y[512:]),
                          callbacks=[StoreCallback(run, save_every_epoch=True)], verbose=0)
                if (lr, hidden) == GRID[-1]:
                    export = run.freeze(_serving(tf, model), step=run.next_step - 1)
        best = min(store.runs(), key=lambda r: store.metric_summaries(r.name)["val_loss"].best)
        store.set_alias("best", store.best(best.name, "val_loss").ref, message="lowest val_loss of the sweep")
        store.set_alias("prod", export.ref, message="serving")
    finally:
        store.close()


def _serving(tf: Any, model: Any) -> Any:
    return tf.function(lambda inputs: model(inputs, training=False),
                       input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])


def shared_keras_store(tmp_path_factory: Any) -> Path:
    """The store of :func:`build_keras_store`, built once per test session (per xdist worker)."""
    path = Path(tmp_path_factory.getbasetemp()) / "ui-keras-store" / "store"
    done = path.parent / "built"
    if not done.exists():
        shutil.rmtree(path, ignore_errors=True)
        build_keras_store(path)
        done.touch()
    return path

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

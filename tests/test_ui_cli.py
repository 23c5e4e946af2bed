"""``ckptstore ui`` as a user starts it: a real process, its URL, loopback by default, a warning
for any other address, Ctrl-C to stop, one error line for a store or port it cannot use."""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.cli import fails

pytest.importorskip("starlette", reason="ckptstore ui needs starlette (the 'ui' extra)")
pytest.importorskip("uvicorn", reason="ckptstore ui needs uvicorn (the 'ui' extra)")

# Each starts a Python process that imports SQLAlchemy, Starlette and uvicorn: seconds each here.
pytestmark = pytest.mark.slow

UI = "import sys; from ckptstore.cli import main; sys.argv = ['ckptstore', *sys.argv[1:]]; main()"


def start_ui(children, *args: str):
    proc = children.python(UI, *args, deadline=60)
    line = proc.stdout.readline()
    assert line.startswith("ckptstore ui: http://"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.split()[2]


def stop(proc) -> str:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) in (0, 130)  # 130: the shell's code for Ctrl-C
    err = proc.stderr.read()
    assert "Traceback" not in err
    return err


def test_ui_serves_the_store_on_loopback_and_stops_on_ctrl_c(children, sqlite_store, tmp_path: Path):
    with sqlite_store.start_run("seen") as run:
        run.log(1, loss=0.5)
    proc, url = start_ui(children, "--store", str(tmp_path / "store"), "ui", "--port", "0")
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url + "api/runs", timeout=10) as r:
        assert [x["name"] for x in json.load(r)] == ["seen"]
    with urllib.request.urlopen(url, timeout=10) as r:
        assert b"<title>Runs" in r.read()
    assert "warning" not in stop(proc)


def test_another_host_must_be_asked_for_and_prints_a_warning(children, sqlite_store, tmp_path: Path):
    proc, url = start_ui(children, "--store", str(tmp_path / "store"), "ui", "--host", "0.0.0.0", "--port", "0")
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=10) as r:
        assert json.load(r) == []
    err = stop(proc)
    assert err.startswith("warning: listening on 0.0.0.0") and "can read the store" in err


def test_ui_refuses_a_missing_store_and_a_busy_port(tmp_path: Path, sqlite_store):
    assert "no store at" in fails("ui", "--port", "0", store=tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}" in fails("ui", "--port", str(port), store=tmp_path / "store")

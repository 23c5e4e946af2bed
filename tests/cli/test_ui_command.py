"""``ckptstore ui`` as a user starts it: a real process, its URL, loopback by default, a warning
for any other address, Ctrl-C to stop, one error line for a store or port it cannot use."""

from __future__ import annotations

import json
import os
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
    line = fails("ui", "--host", "0.0.0.0", "--port", "0", store=tmp_path / "store")
    assert "not a loopback address" in line and "--expose" in line
    proc, url = start_ui(children, "--store", str(tmp_path / "store"), "ui", "--host", "0.0.0.0", "--port", "0", "--expose")
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
        line = fails("ui", "--port", str(port), store=tmp_path / "store")
        assert f"cannot listen on 127.0.0.1:{port}" in line and line.endswith("choose another with --port N (0: any free one)")


def test_a_non_editable_install_serves_the_pages_and_the_chart_library(tmp_path: Path, sqlite_store):
    """The static files ship in the wheel (package data), and the installed app serves them."""
    import shutil
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[2]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for pkg in ("ckptstore", "migrations"):
        shutil.copytree(root / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "-w", str(tmp_path / "dist"), "--no-deps", "--no-build-isolation", "-q"],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("ckptstore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("index.html", "runs.js", "chart.js", "uPlot.iife.min.js", "LICENSE-uPlot.txt"):
        assert f"ckptstore/ui/static/{name}" in names
    site = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    code = (
        "import sys, warnings; warnings.simplefilter('ignore')\n"
        "import ckptstore; from ckptstore.ui import create_app\n"
        "from starlette.testclient import TestClient\n"
        "assert ckptstore.__file__.startswith(sys.argv[2]), ckptstore.__file__\n"
        "c = TestClient(create_app(ckptstore.open_store(sys.argv[1], readonly=True)))\n"
        "print(*(c.get(p).status_code for p in ('/', '/aliases', '/static/uPlot.iife.min.js', '/static/chart.js', '/api/runs')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "store"), str(site)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["200"] * 5

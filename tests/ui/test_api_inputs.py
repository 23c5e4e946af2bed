"""The UI API's inputs are bounded; names that are not UTF-8 are shown escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptstore
from tests.helpers.hardening import ckpt, shown

# =========================================================================== notes: the UI's inputs, undecodable names


def test_api_inputs_are_bounded(sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    pytest.importorskip("starlette")
    import time

    from starlette.testclient import TestClient

    from ckptstore.ui.app import create_app

    with sqlite_store.start_run("a") as run:
        run.log(1, loss=1.0)
    ro = ckptstore.open_store(str(tmp_path / "store"), readonly=True)
    with ro, TestClient(create_app(ro)) as client:
        for path in ("/api/checkpoints", "/api/keys"):
            started = time.perf_counter()
            r = client.get(path + "?" + "&".join(f"run=r{i}" for i in range(3000)))
            assert r.status_code == 400 and "at most" in r.json()["error"], r.text
            assert time.perf_counter() - started < 2.0
            assert client.get(path + "?run=a&run=a").status_code == 200
        r = client.get("/api/runs?name=" + "x" * 10_000)
        assert r.status_code == 400 and "too long" in r.json()["error"]
        r = client.get("/api/runs?" + "&".join(f"tag=k{i}=v" for i in range(50)))
        assert r.status_code == 400


def test_a_run_name_that_is_not_utf8_is_shown_escaped_and_the_rest_listed(sqlite_store, tmp_path: Path) -> None:  # noqa: ANN001
    import json
    import sqlite3

    for name in ("good", "bad"):
        with sqlite_store.start_run(name) as run:
            run.log(1, loss=1.0)
    db = next(p for p in (tmp_path / "store").rglob("*") if p.is_file() and p.suffix in (".db", ".sqlite", ".sqlite3"))
    with sqlite3.connect(db) as raw:  # another tool writes bytes that are not UTF-8
        raw.execute("UPDATE runs SET name = CAST(x'6261640aff' AS TEXT) WHERE name = 'bad'")
    names = sorted(r.name for r in sqlite_store.runs())
    assert names == ["bad\n\\xff", "good"]
    r = ckpt("runs", "list", store=tmp_path / "store")
    assert r.returncode == 0 and "good" in r.stdout and "\\xff" in r.stdout, shown(r)
    r = ckpt("runs", "list", "--json", store=tmp_path / "store")
    assert r.returncode == 0, shown(r)
    assert sorted(x["name"] for x in json.loads(r.stdout)) == ["bad\n\\xff", "good"]
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from ckptstore.ui.app import create_app

    with ckptstore.open_store(str(tmp_path / "store"), readonly=True) as ro, TestClient(create_app(ro)) as client:
        r = client.get("/api/runs")
        assert r.status_code == 200 and sorted(x["name"] for x in r.json()) == ["bad\n\\xff", "good"]

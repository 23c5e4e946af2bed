"""The JSON API of ``ckptstore ui``: the records ``--json`` prints, bad input as 400, unknown
names as 404, nothing written, static files confined to their directory.

Most tests use Starlette's TestClient on the app; the traversal and Host-header tests talk
raw HTTP to the real server (uvicorn in a thread), since an HTTP client would clean up the
paths it is asked to send.
"""

from __future__ import annotations

import hashlib
import json
import socket
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.ui import XSS_METRIC, XSS_RUN, XSS_TAG, serve_in_thread

pytest.importorskip("starlette", reason="ckptstore ui needs starlette (the 'ui' extra)")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

with warnings.catch_warnings():
    # Starlette 1.x would rather have httpx2 under its TestClient; httpx still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def client(store_path: Path):
    import ckptstore
    from ckptstore.ui import create_app

    store = ckptstore.open_store(str(store_path), readonly=True)
    with TestClient(create_app(store)) as c:
        yield c
    store.close()


@pytest.fixture(scope="module")
def served(store_path: Path):
    yield from serve_in_thread(store_path)


def cli_json(store_path: Path, *args: str) -> Any:
    from typer.testing import CliRunner

    from ckptstore.cli import app

    result = CliRunner().invoke(app, ["--store", str(store_path), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def get(client: TestClient, path: str, expect: int = 200, **params: Any) -> Any:
    r = client.get(path, params=params)
    assert r.status_code == expect, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


# --------------------------------------------------------------------------- same records as --json


def test_runs_are_the_records_runs_list_json_prints(client, store_path):
    assert get(client, "/api/runs", sort="name") == sorted(cli_json(store_path, "runs", "list"), key=lambda r: r["name"])


def test_run_checkpoints_aliases_and_diff_match_their_cli_json(client, store_path):
    run = get(client, "/api/run", name="mnist-a")
    assert run["run"] == cli_json(store_path, "runs", "show", "mnist-a")
    assert run["checkpoints"] == cli_json(store_path, "checkpoints", "mnist-a")
    assert run["exports"] == cli_json(store_path, "exports", "mnist-a")
    assert get(client, "/api/checkpoints", run="mnist-a") == run["checkpoints"]
    assert get(client, "/api/aliases") == cli_json(store_path, "aliases")
    assert get(client, "/api/aliases", name="best") == cli_json(store_path, "aliases", "best")
    assert get(client, "/api/versions", name="best") == get(client, "/api/aliases", name="best")  # the old address
    assert get(client, "/api/diff", ref="mnist-a@100", other="best") == cli_json(
        store_path, "vars", "mnist-a@100", "--diff", "best"
    )
    with_stats = get(client, "/api/diff", ref="mnist-a@100", other="mnist-a@200", stats="1")
    assert with_stats == cli_json(store_path, "vars", "mnist-a@100", "--diff", "mnist-a@200", "--stats")
    assert any(v.get("stats") for v in with_stats["variables"])
    ck = get(client, "/api/checkpoint", ref="prod")
    assert ck["variables"] == cli_json(store_path, "vars", "prod")


# --------------------------------------------------------------------------- what the pages show


def test_runs_filter_by_status_tag_and_name_and_sort(client):
    names = lambda rows: [r["name"] for r in rows]  # noqa: E731
    assert names(get(client, "/api/runs", status="running")) == ["live"]
    assert names(get(client, "/api/runs", status="failed")) == [XSS_RUN]
    assert sorted(names(get(client, "/api/runs", tag="team=vision"))) == ["mnist-a", "mnist-b"]
    assert names(client.get("/api/runs", params=[("tag", "team=vision"), ("tag", "size=wide")]).json()) == ["mnist-b"]
    assert sorted(names(get(client, "/api/runs", name="mnist-*"))) == ["mnist-a", "mnist-b"]
    assert names(get(client, "/api/runs", sort="-last_step"))[:2] == ["mnist-b", "mnist-a"]
    by_name = names(get(client, "/api/runs", sort="name"))
    assert by_name == sorted(by_name)
    assert names(get(client, "/api/runs", sort="-name")) == by_name[::-1]
    # The search language of runs list --where/--sort.
    assert names(get(client, "/api/runs", where="params.lr < 0.005")) == ["mnist-a"]
    assert names(get(client, "/api/runs", sort="metrics.loss.min"))[:2] == ["mnist-a", "mnist-b"]
    assert names(get(client, "/api/runs", tag=f"{XSS_TAG[0]}={XSS_TAG[1]}")) == [XSS_RUN]


def test_run_detail_has_params_tags_retention_checkpoints_with_sizes(client):
    body = get(client, "/api/run", name="mnist-a")
    run = body["run"]
    assert run["params"] == {"lr": 0.001, "layers": [64, 32]}
    assert run["tags"] == {"team": "vision"}
    assert run["retention"]["max_to_keep"] == 10
    assert run["metrics"] == ["accuracy", "loss"]
    assert [c["step"] for c in body["checkpoints"]] == [50, 100, 150, 200]
    assert all(c["total_bytes"] > 0 and c["files"] for c in body["checkpoints"])
    assert [c["aliases"] for c in body["checkpoints"]] == [[], [], [], ["prod"]]
    assert body["exports"] == []


def test_metrics_of_two_runs_with_checkpoint_markers_and_version_labels(client):
    body = get(client, "/api/metrics", run=["mnist-a", "mnist-b"], key="loss", width=1000)
    a, b = body["series"]
    assert (a["run"], a["points"], b["run"], b["points"]) == ("mnist-a", 201, "mnist-b", 301)
    assert a["steps"] == list(range(201))  # fits the width: not downsampled
    assert [(m["ref"], m["aliases"]) for m in b["checkpoints"]] == [("mnist-b@100", []), ("mnist-b@200", []), ("mnist-b@300", ["best"])]
    i = a["steps"].index(100)
    assert a["checkpoints"][1]["value"] == a["values"][i]
    narrow = get(client, "/api/metrics", run="mnist-a", key="loss", width=10)["series"][0]
    assert narrow["drawn"] == len(narrow["steps"]) <= 22 and narrow["points"] == 201
    window = get(client, "/api/metrics", run="mnist-a", key="loss", start=60, stop=120)["series"][0]
    assert window["steps"] == list(range(60, 121))
    assert [m["step"] for m in window["checkpoints"]] == [100]


def test_keys_of_runs_and_names_kept_verbatim(client):
    assert get(client, "/api/keys", run=["mnist-a", "mnist-b"]) == ["accuracy", "loss"]
    assert get(client, "/api/keys", run=XSS_RUN) == [XSS_METRIC]
    s = get(client, "/api/metrics", run=XSS_RUN, key=XSS_METRIC)["series"][0]
    assert (s["run"], s["values"]) == (XSS_RUN, [1.0, 0.5])


def test_checkpoint_with_variables(client):
    body = get(client, "/api/checkpoint", ref="mnist-b@300")
    assert body["checkpoint"]["ref"] == "mnist-b@300" and body["checkpoint"]["aliases"] == ["best"]
    assert {v["name"].split("/")[1] for v in body["variables"]} >= {"a", "b", "c"}


def test_aliases_keep_each_alias_history(client):
    best = get(client, "/api/aliases", name="best")[0]
    assert best["target"] == "mnist-b@300"
    assert [(h["action"], h["old_target"], h["new_target"]) for h in best["history"]] == [
        ("move", "mnist-a@100", "mnist-b@300"), ("set", None, "mnist-a@100"),
    ]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("path, params, needle", [
    ("/api/runs", {"status": "done"}, "status must be one of"),
    ("/api/runs", {"sort": "size"}, "bad sort"),
    ("/api/runs", {"where": "params.lr <"}, "bad where"),
    ("/api/runs", {"tag": "team"}, "KEY=VALUE"),
    ("/api/runs", {"colour": "red"}, "unknown query parameter 'colour'"),
    ("/api/run", {}, "name is required"),
    ("/api/metrics", {"key": "loss"}, "run is required"),
    ("/api/metrics", {"run": "mnist-a"}, "key is required"),
    ("/api/metrics", {"run": "mnist-a", "key": "loss", "width": "wide"}, "width must be a whole number"),
    ("/api/metrics", {"run": "mnist-a", "key": "loss", "width": "0"}, "width must be between"),
    ("/api/metrics", {"run": "mnist-a", "key": "loss", "start": "-1"}, "start must be between"),
    ("/api/metrics", {"run": "mnist-a", "key": "loss", "start": "9", "stop": "3"}, "after stop"),
    ("/api/metrics", {"run": "mnist-a", "key": "loss", "stop": str(2**64)}, "stop must be between"),
    ("/api/checkpoint", {"ref": "mnist-a@x1"}, ""),
    ("/api/diff", {"ref": "mnist-a@100"}, "other is required"),
    ("/api/checkpoints", {}, "run is required"),
])
def test_bad_query_parameters_are_400_with_a_message(client, path, params, needle):
    body = get(client, path, 400, **params)
    assert needle in body["error"] and body["error"]


def test_a_parameter_given_twice_is_400(client):
    r = client.get("/api/run", params=[("name", "mnist-a"), ("name", "mnist-b")])
    assert r.status_code == 400 and "once" in r.json()["error"]


@pytest.mark.parametrize("path, params", [
    ("/api/run", {"name": "nope"}),
    ("/api/metrics", {"run": "nope", "key": "loss"}),
    ("/api/checkpoints", {"run": "nope"}),
    ("/api/checkpoint", {"ref": "mnist-a@7"}),
    ("/api/checkpoint", {"ref": "no-such-version"}),
    ("/api/checkpoint", {"ref": "live@latest"}),
    ("/api/diff", {"ref": "mnist-a@100", "other": "nope@1"}),
    ("/api/aliases", {"name": "nope"}),
    ("/api/exports", {"run": "nope"}),
    ("/api/nothing", {}),
    ("/nothing", {}),
])
def test_unknown_names_are_404(client, path, params):
    body = get(client, path, 404, **params)
    assert body["error"]


def test_a_metric_the_run_never_logged_is_an_empty_series(client):
    s = get(client, "/api/metrics", run="mnist-b", key="accuracy")["series"][0]
    assert (s["points"], s["steps"]) == (0, [])


# --------------------------------------------------------------------------- read-only, headers, static


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_no_endpoint_changes_the_store(client, store_path):
    before = _digests(store_path)
    for path in ("/api/runs", "/api/run", "/api/metrics", "/api/checkpoint", "/api/diff", "/api/aliases", "/"):
        for method in ("post", "put", "delete", "patch"):
            assert getattr(client, method)(path).status_code == 405, (method, path)
    get(client, "/api/metrics", run=["mnist-a", "mnist-b", "live"], key="loss")
    get(client, "/api/diff", ref="mnist-a@50", other="mnist-b@100")
    assert _digests(store_path) == before


def test_pages_and_static_files_are_served_with_a_strict_policy(client):
    for page in ("/", "/run", "/checkpoint", "/aliases", "/versions"):
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    for name in ("uPlot.iife.min.js", "chart.js", "common.js", "style.css", "LICENSE-uPlot.txt"):
        assert client.get(f"/static/{name}").status_code == 200
    # The pages carry no store data at all: it comes through the API and is set as text.
    assert "mnist" not in client.get("/").text


def test_an_unknown_page_is_html_for_a_browser_and_json_for_the_rest(client):
    html = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    r = client.get("/no/<b>page</b>", headers=html)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert '<meta name="viewport"' in r.text and "<b>" not in r.text and "&lt;b&gt;page" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    # The API and static files answer JSON even to a browser; anything else without text/html.
    for path, headers in (("/api/nope", html), ("/static/nope.js", html), ("/nope", {})):
        r = client.get(path, headers=headers)
        assert r.status_code == 404 and r.json() == {"error": f"no such page or endpoint: {path}"}, path


def raw_get(url: str, target: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    """Send ``GET target`` exactly as written (no client normalises the path); (status, body)."""
    hostport = url.split("//")[1]
    h, p = hostport.rsplit(":", 1)
    with socket.create_connection((h, int(p)), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("target", [
    "/static/../app.py",
    "/static/../../ui/app.py",
    "/static/%2e%2e/app.py",
    "/static/%2e%2e%2fapp.py",
    "/static/..%2fapp.py",
    "/static/..%5capp.py",
    "/static/....//app.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/../../../../../../etc/passwd",
    "/static/%252e%252e/app.py",
    "/static/.%00./app.py",
])
def test_static_files_cannot_reach_outside_their_directory(served, target):
    status, body = raw_get(served.url, target)
    assert status in (400, 404), (target, status)
    assert b"create_app" not in body and b"root:" not in body


def test_a_foreign_host_header_is_refused(served):
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the store.
    assert raw_get(served.url, "/api/runs", host="evil.example")[0] == 400
    assert raw_get(served.url, "/api/runs", host="localhost")[0] == 200


# --------------------------------------------------------------------------- live runs, both databases


def test_a_running_run_is_served_as_it_grows_on_either_database(store):
    """A running run is drawn with the steps logged since the last request; PostgreSQL serves like SQLite."""
    from ckptstore.ui import create_app

    run = store.start_run("growing")
    for step in range(100):
        run.log(step, loss=1.0 / (step + 1))
    run.flush()
    with TestClient(create_app(store)) as client:
        first = get(client, "/api/metrics", run="growing", key="loss")["series"][0]
        assert (first["points"], first["status"], first["steps"][-1]) == (100, "running", 99)
        for step in range(100, 150):
            run.log(step, loss=-1.0 if step == 120 else 0.001)
        run.flush()
        second = get(client, "/api/metrics", run="growing", key="loss", width=5)["series"][0]
        assert second["points"] == 150 and -1.0 in second["values"]
        assert get(client, "/api/runs", status="running")[0]["last_step"] == 149
        run.finish()
        assert get(client, "/api/metrics", run="growing", key="loss")["series"][0]["status"] == "finished"


def test_a_run_deleted_and_recreated_under_its_name_is_read_afresh(sqlite_store):
    from ckptstore.ui import create_app

    with sqlite_store.start_run("again") as run:
        for step in range(10):
            run.log(step, loss=5.0)
    with TestClient(create_app(sqlite_store)) as client:
        assert get(client, "/api/metrics", run="again", key="loss")["series"][0]["values"][0] == 5.0
        sqlite_store.delete_run("again")
        assert get(client, "/api/metrics", 404, run="again", key="loss")["error"]
        with sqlite_store.start_run("again") as run:
            for step in range(3):
                run.log(step, loss=1.0)
        assert get(client, "/api/metrics", run="again", key="loss")["series"][0]["values"] == [1.0, 1.0, 1.0]

"""``/api/table``, the runs table behind the UI's first screen, and ``/api/metrics?x=``: the
same runs and order as ``Store.runs(where=, order_by=)``, columns valued from the store's metric
summaries, unknown names refused with the nearest, time axes from the logged wall times."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.ui import XSS_METRIC, XSS_RUN, XSS_TAG

pytest.importorskip("starlette", reason="ckptstore ui needs starlette (the 'ui' extra)")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def store(store_path: Path) -> Any:
    import ckptstore

    s = ckptstore.open_store(str(store_path), readonly=True)
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(store):
    from ckptstore.ui import create_app

    with TestClient(create_app(store)) as c:
        yield c


def get(client: TestClient, expect: int = 200, **params: Any) -> Any:
    r = client.get("/api/table", params=params)
    assert r.status_code == expect, r.text
    return r.json()


def test_the_table_is_the_stores_runs_table_with_names_to_choose_from(client, store):
    import ckptstore

    body = get(client)
    table = store.runs_table(limit=1000)
    assert body["columns"] == table.columns == ["params.layers", "params.lr"]  # no KeepBest: the params that differ
    assert body["defaults"] is True
    assert [r["name"] for r in body["runs"]] == [r.name for r in store.runs()]
    assert [r["values"] for r in body["runs"]] == ckptstore.to_json(table.values)
    assert {k: v for k, v in body["runs"][0].items() if k != "values"} == ckptstore.to_json(table.runs[0])
    # What the column chooser offers: every param and tag of the listed runs, and their metrics.
    assert body["choices"] == {"params": ["layers", "lr"], "metrics": sorted(["accuracy", "loss", XSS_METRIC]),
                               "tags": sorted(["size", "team", XSS_TAG[0]])}


def test_where_sort_and_chosen_columns_are_the_stores(client, store):
    columns = ["metrics.loss.min", "metrics.loss.best", "tags.size"]
    body = get(client, where="params.lr < 0.1", sort="-metrics.loss.min", column=columns)
    assert [r["name"] for r in body["runs"]] == [r.name for r in store.runs(where="params.lr < 0.1", order_by="-metrics.loss.min")]
    assert body["columns"] == columns and body["defaults"] is False
    b = next(r for r in body["runs"] if r["name"] == "mnist-b")
    s = store.metric_summaries("mnist-b")["loss"]
    assert b["values"] == {"metrics.loss.min": s.min, "metrics.loss.best": s.best, "tags.size": "wide"}
    # A name of other characters is quoted, as in --sort; so is the column the store writes.
    quoted = f'metrics."{XSS_METRIC}".last'
    body = get(client, sort=f"-{quoted}")
    assert body["runs"][0]["name"] == XSS_RUN and body["columns"][0] == quoted
    # Filters of the old table still apply.
    assert [r["name"] for r in get(client, status="failed")["runs"]] == [XSS_RUN]
    assert [r["name"] for r in get(client, tag="size=wide")["runs"]] == ["mnist-b"]


def test_names_no_run_has_are_noted_with_the_nearest(client):
    body = get(client, column="metrics.los.min")
    assert body["notes"] == ["no run has a metric 'los' (did you mean metrics.loss.min?)"]
    assert {r["values"]["metrics.los.min"] for r in body["runs"]} == {None}
    assert get(client, column="params.lrr")["notes"] == ["no run has a param 'lrr' (did you mean params.lr?)"]
    # A search naming a metric no run has: nothing matches, and the answer says why.
    body = get(client, where="metrics.acuracy > 0.5")
    assert body["runs"] == [] and body["notes"] == ["no run has a metric 'acuracy' (did you mean metrics.accuracy.last?)"]
    assert get(client, where="metrics.accuracy > 2")["notes"] == []  # known names: nothing to say
    # Errors: a bare word that is no field (with the store's closest), a bad expression.
    assert get(client, 400, sort="acuracy")["error"] == "bad sort: unknown field 'acuracy'; did you mean metrics.accuracy.max?"
    assert "bad where" in get(client, 400, where="params.lr <")["error"]
    assert "unknown query parameter" in get(client, 400, bogus="1")["error"]
    assert "at most 40 columns" in get(client, 400, column=[f"params.p{i}" for i in range(41)])["error"]


def test_metrics_on_a_time_axis_carry_the_logged_wall_times(client, store):
    r = client.get("/api/metrics", params={"run": "mnist-a", "key": "loss", "x": "relative"})
    assert r.status_code == 200, r.text
    s = r.json()["series"][0]
    logged = {m.step: m.wall_time for m in store.steps("mnist-a", keys=["loss"])}
    assert s["times"] == [logged[step] for step in s["steps"]]
    assert s["t0"] == min(logged.values())
    assert [ck["time"] for ck in s["checkpoints"]] == [logged[ck["step"]] for ck in s["checkpoints"]]
    plain = client.get("/api/metrics", params={"run": "mnist-a", "key": "loss"}).json()["series"][0]
    assert "times" not in plain and plain["steps"] == s["steps"]
    bad = client.get("/api/metrics", params={"run": "mnist-a", "key": "loss", "x": "epoch"})
    assert bad.status_code == 400 and "x must be one of step, relative, wall" in bad.json()["error"]


def test_the_run_answer_has_each_metrics_summary(client, store):
    r = client.get("/api/run", params={"name": "mnist-a"})
    assert r.status_code == 200
    from ckptstore import to_json

    assert r.json()["summaries"] == to_json(list(store.metric_summaries("mnist-a").values()))


def test_the_exports_page_is_html(client):
    r = client.get("/exports")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/static/exports.js" in r.text


def test_api_runs_is_runs_list_json_with_its_columns(client, store_path):
    import json

    from typer.testing import CliRunner

    from ckptstore.cli import app

    args = ["--where", "params.lr < 0.1", "--sort", "-metrics.loss.min", "--columns", "metrics.loss.min,tags.team"]
    result = CliRunner().invoke(app, ["--store", str(store_path), "runs", "list", *args, "--json"])
    assert result.exit_code == 0, result.output
    r = client.get("/api/runs", params={"where": "params.lr < 0.1", "sort": "-metrics.loss.min",
                                        "column": ["metrics.loss.min", "tags.team"]})
    assert r.status_code == 200 and r.json() == json.loads(result.stdout)
    assert [set(row["values"]) for row in r.json()] == [{"metrics.loss.min", "tags.team"}] * 2

"""The runs page's column chooser offers every param, metric and tag name that a run matching
the search has, listed first or sixtieth (``Store.field_names``: one query), on either database
and in chromium."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

pytest.importorskip("starlette", reason="ckptstore ui needs starlette (the 'ui' extra)")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

RUNS = 60


def fill(store: Any) -> None:
    """60 runs of one sweep, newest first in the table; the oldest (row 60) alone has the metric
    ``rare``, the param ``seed`` and the tag ``note``."""
    with store.start_run("oldest", params={"lr": 0.5, "seed": 7}, tags={"note": "first try"}) as run:
        run.log(0, loss=3.0, rare=0.25)
    for i in range(1, RUNS):
        with store.start_run(f"sweep-{i:02d}", params={"lr": 0.001 * i}, tags={"team": "vision"}) as run:
            run.log(0, loss=1.0 / i)


@pytest.fixture
def client(store: Any) -> Iterator[TestClient]:
    from ckptstore.ui import create_app

    fill(store)
    with TestClient(create_app(store)) as c:
        yield c


def choices(client: TestClient, **params: Any) -> dict[str, list[str]]:
    r = client.get("/api/table", params=params)
    assert r.status_code == 200, r.text
    return r.json()["choices"]


def test_the_chooser_offers_the_names_of_every_matching_run(client, store):
    assert [r["name"] for r in client.get("/api/table").json()["runs"]][-1] == "oldest"  # row 60
    assert choices(client) == {"params": ["lr", "seed"], "metrics": ["loss", "rare"], "tags": ["note", "team"]}
    assert choices(client) == store.field_names()
    # Only the runs the search matches: without the oldest, its names are not offered ...
    assert choices(client, where="name != 'oldest'") == {"params": ["lr"], "metrics": ["loss"], "tags": ["team"]}
    assert choices(client, tag="team=vision") == {"params": ["lr"], "metrics": ["loss"], "tags": ["team"]}
    assert choices(client, name="sweep-*") == {"params": ["lr"], "metrics": ["loss"], "tags": ["team"]}
    # ... and with it alone, only its own.
    assert choices(client, where="params.seed = 7") == {"params": ["lr", "seed"], "metrics": ["loss", "rare"], "tags": ["note"]}
    assert choices(client, status="running") == {"params": [], "metrics": [], "tags": []}


# --------------------------------------------------------------------------- in chromium


@pytest.fixture(scope="module")
def sixty_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import ckptstore
    from tests.helpers.ui import serve_in_thread

    path = Path(tmp_path_factory.mktemp("sixty")) / "store"
    with ckptstore.open_store(str(path)) as store:
        fill(store)
    yield from serve_in_thread(path)


@pytest.mark.slow
def test_a_metric_only_the_sixtieth_run_has_can_be_chosen_as_a_column(page, sixty_served):
    from playwright.sync_api import expect

    page.goto(sixty_served.url + "/")
    expect(page.locator("#runs-table tbody tr")).to_have_count(RUNS)
    expect(page.locator("#runs-table tbody tr").last).to_have_attribute("data-run", "oldest")
    page.click("#columns-chooser summary")
    for col in ("metrics.rare.max", "params.seed", "tags.note"):
        expect(page.locator(f'.column-pick[data-col="{col}"]')).to_have_count(1)
    page.check('.column-pick[data-col="metrics.rare.max"]')
    expect(page.locator('#runs-table th[data-col="metrics.rare.max"]')).to_have_count(1)
    expect(page.locator('#runs-table tr[data-run="oldest"] td[data-col="metrics.rare.max"]')).to_have_text("0.25")
    expect(page.locator('#runs-table tr[data-run="sweep-01"] td[data-col="metrics.rare.max"]')).to_have_text("")
    assert "metrics.rare.max" in parse_qs(urlparse(page.url).query)["col"]
    # A search without the oldest run: its names leave the chooser.
    page.fill("#search", "name != 'oldest'")
    page.press("#search", "Enter")
    expect(page.locator("#runs-table tbody tr")).to_have_count(RUNS - 1)
    expect(page.locator('.column-pick[data-col="params.seed"]')).to_have_count(0)
    assert page.problems == []

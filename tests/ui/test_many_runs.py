"""The runs page over a store of many runs (issue 26 review: a thousand rows were drawn and the
charts sat below them all): a page of rows with "show more" kept in the URL, the charted runs
said, each in a colour of its own, and numbers written as the command line writes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.slow  # a browser and a store of 250 runs: seconds

RUNS = 250


@pytest.fixture(scope="module")
def many_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import ckptstore
    from tests.helpers.ui import serve_in_thread

    path = Path(tmp_path_factory.mktemp("many")) / "store"
    with ckptstore.open_store(str(path)) as store:
        for i in range(RUNS):
            # lr 0.0001 and 1e-05 among them: the command line writes them so ("{:.6g}").
            lr = 1e-4 if i == 0 else 1e-5 if i == 1 else 0.001 * i
            with store.start_run(f"sweep-{i:03d}", params={"lr": lr}) as run:
                run.log(0, loss=1.0 / (i + 1))
                run.log(1, loss=0.5 / (i + 1))
    yield from serve_in_thread(path)


def test_a_page_of_rows_then_more_and_the_charts_within_reach(page, many_served):
    from playwright.sync_api import expect

    page.goto(many_served.url + "/")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(100)
    expect(page.locator("#runs-count")).to_have_text(f"{RUNS} runs")
    expect(page.locator("#runs-more")).to_contain_text(f"the first 100 of {RUNS} runs")
    # Nothing ticked: the first ten rows are charted (one colour each), and the page says so.
    expect(page.locator('.chart[data-key="loss"]')).to_have_attribute("data-series", "10")
    expect(page.locator("#charts-limit")).to_have_text(f"charting the first 10 of the {RUNS} runs (tick runs to chart others)")
    import json

    colours = json.loads(page.locator('.chart[data-key="loss"]').get_attribute("data-colors"))
    assert len(colours) == 10 and len(set(colours.values())) == 10
    # The charts are a screen or two down, not under a thousand rows.
    assert page.locator("#charts").bounding_box()["y"] < 6000
    # Show more: the next hundred, kept in the URL (a reload shows as many).
    page.click("#more-runs")
    expect(rows).to_have_count(200)
    assert parse_qs(urlparse(page.url).query)["rows"] == ["200"]
    page.reload()
    expect(rows).to_have_count(200)
    page.click("#more-runs")
    expect(rows).to_have_count(RUNS)
    expect(page.locator("#runs-more")).to_have_count(0)
    # Params as the command line prints them: 0.0001 and 1e-05, not 1.000e-4.
    assert page.locator('#runs-table tr[data-run="sweep-000"] td[data-col="params.lr"]').text_content() == "0.0001"
    assert page.locator('#runs-table tr[data-run="sweep-001"] td[data-col="params.lr"]').text_content() == "1e-05"
    assert page.locator('#runs-table tr[data-run="sweep-003"] td[data-col="params.lr"]').text_content() == "0.003"
    assert page.problems == []


def test_numbers_are_formatted_as_pythons_6g(page, many_served):
    """``num`` in common.js is ``format(v, ".6g")`` (ckptstore/cli/output.py ``number``)."""
    page.goto(many_served.url + "/aliases")
    # (A whole float is an integer once in JSON: 64.0 reads 64, as an int param would.)
    values = [1e-4, 1e-5, 0.1234567, 123456.7, 1234567.5, -2.5e-7, 1.5, 0.30000000000000004, 1e21, 64, 3.0e-3]
    got = page.evaluate("async (vs) => { const { num } = await import('/static/common.js'); return vs.map(num); }", values)
    assert page.evaluate("async (vs) => { const { g } = await import('/static/common.js'); return vs.map((v) => g(v, 3)); }", [0.000123456, 1234.5, 0.5, 2.0]) == [
        format(v, ".3g") for v in (0.000123456, 1234.5, 0.5, 2.0)]
    expected = [str(v) if isinstance(v, int) else format(v, ".6g") for v in values]
    assert got == expected
    assert page.evaluate("async () => { const { num } = await import('/static/common.js'); return [num(NaN), num(Infinity), num([1, 2]), num('x')]; }") == ["nan", "inf", "[1,2]", "x"]

"""``ckptstore ui`` in a real browser: Debian's chromium driven by Playwright for Python.

Playwright's own browser download needs the internet, so the system binary is used
(``executable_path``); see ``tests/helpers/browser.py``. Each page is photographed into the
test's tmp dir; ``CKPTSTORE_SCREENSHOTS=1`` keeps them in ``docs/images/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import browser as chromium
from tests.helpers.browser import drag_across
from tests.helpers.browser import shoot as _shoot
from tests.helpers.skips import require_tensorflow
from tests.helpers.ui import XSS_METRIC, XSS_RUN, XSS_TAG, serve_in_thread, shared_store

# A browser start and a page or three: seconds each on these machines.
pytestmark = pytest.mark.slow
# The README's images are those of tests/ui (a Keras sweep), not of this small store.
shoot = partial(_shoot, keep=False)


@pytest.fixture(scope="module")
def served(browser, tmp_path_factory: pytest.TempPathFactory):
    require_tensorflow()
    yield from serve_in_thread(shared_store(tmp_path_factory))


@pytest.fixture
def page(browser) -> Iterator[Any]:
    p = chromium.new_page(browser)
    try:
        yield p
    finally:
        p.context.close()


def chart_ready(page: Any, series: int, key: str = "loss") -> None:
    # Playwright's expect() polls without evaluating strings: the pages' Content-Security-Policy
    # (no 'unsafe-eval') stays on in these tests, as it is for users.
    from playwright.sync_api import expect

    chart = page.locator(f'.chart[data-key="{key}"]')
    expect(chart).to_have_attribute("data-series", str(series))
    expect(chart).to_have_attribute("data-ready", "1")


def test_click_through_runs_chart_checkpoint_diff_aliases(page, served, tmp_path: Path):
    page.goto(served.url + "/")
    page.wait_for_selector("#runs-table tbody tr")
    assert page.locator("#runs-table tbody tr").count() == 4
    shoot(page, tmp_path, "runs-list")

    # Select two runs: the chart draws two series, with a marker per checkpoint.
    page.check('input.select-run[data-run="mnist-a"]')
    page.check('input.select-run[data-run="mnist-b"]')
    chart_ready(page, 2)
    loss = page.locator('.chart[data-key="loss"]')
    assert loss.locator(".u-legend .u-series").count() == 3  # step + two runs
    assert loss.locator('.ck-marker[data-run="mnist-a"]').count() == 4
    assert loss.locator('.ck-marker[data-run="mnist-b"]').count() == 3
    assert sorted(loss.locator(".alias-label").all_text_contents()) == ["best", "prod"]
    assert page.locator('.metric-pick[data-key="loss"]').is_checked()
    assert "run=mnist-a" in page.url and "run=mnist-b" in page.url
    shoot(page, tmp_path, "runs-chart")

    # A click on a marker opens that checkpoint.
    loss.locator('.ck-marker[data-ref="mnist-a@100"]').click()
    page.wait_for_selector("#checkpoint-ref")
    assert page.locator("#checkpoint-ref").text_content() == "mnist-a@100"
    # Variables a and b, under the names the CLI takes ("model/a"), grouped under "model".
    assert page.locator("#variables tbody tr:not(.group)").count() == 2
    assert page.locator("#variables tr.group").all_text_contents() == ["model"]
    shoot(page, tmp_path, "checkpoint")

    # Diff it against another checkpoint, chosen on the page.
    # (The checkpoint's own aliases are not offered: a diff with itself says nothing.)
    own = page.locator("#checkpoint-ref").evaluate("() => [...document.querySelectorAll('#diff-pick option')].map((o) => o.value)")
    assert "mnist-a@100" not in own and "best" in own
    page.select_option("#diff-pick", "best")  # diffs at once
    page.wait_for_selector(".diff-kind")
    # The summary the command line prints (vars --diff), then one section per status.
    assert page.locator(".diff-summary").text_content() == "0 identical, 1 value changed, 1 added, 0 removed, 1 dtype/shape changed"
    changed = page.locator('.diff-kind[data-kind="dtype/shape changed"]').inner_text()
    assert "float32 [3]" in changed and "float64 [3]" in changed
    assert "diff=best" in page.url
    shoot(page, tmp_path, "checkpoint-diff")

    # The run page, from the checkpoint's run link.
    page.click("a.run-link")
    page.wait_for_selector("#run-name")
    # Params as a table of names and values (a list as JSON), not one line of JSON.
    params = page.locator("#params > tbody > tr")
    assert [(r.locator("th").text_content(), r.locator("td").text_content()) for r in params.all()] == [
        ("lr", "0.001"), ("layers", "[64,32]")]
    assert page.locator(".checkpoint-link").all_text_contents() == ["50", "100", "150", "200"]
    shoot(page, tmp_path, "run")

    # Aliases: each with its history.
    page.click("header >> text=Aliases")
    page.wait_for_selector(".alias")
    best = page.locator('.alias[data-alias="best"]')
    assert best.locator("tbody tr").count() == 2
    assert "mnist-a@100" in best.inner_text() and "wider is better" in best.inner_text()
    shoot(page, tmp_path, "aliases")
    assert page.problems == []


def test_log_scale_zoom_and_filters(page, served):
    from playwright.sync_api import expect

    page.goto(served.url + "/?run=mnist-a&run=mnist-b&key=accuracy")
    chart_ready(page, 2, "accuracy")
    chart = page.locator('.chart[data-key="accuracy"]')
    assert page.locator("#charts .chart").count() == 1
    assert page.locator('.metric-pick[data-key="accuracy"]').is_checked()
    page.check("#log")
    expect(chart).to_have_attribute("data-log", "1")
    chart_ready(page, 2, "accuracy")
    assert "log=1" in page.url
    page.uncheck("#log")
    expect(chart).to_have_attribute("data-log", "0")
    # Drag across the middle of the plot: the server is asked for that window only.
    drag_across(page, page.locator(".u-over"), 0.3, 0.6)
    expect(chart).not_to_have_attribute("data-range", "")
    start, stop = map(int, chart.get_attribute("data-range").split(","))
    assert 30 <= start < stop <= 200 and stop - start < 150
    page.click("#reset-zoom")
    expect(chart).to_have_attribute("data-range", "")
    # Filters and sorting.
    page.select_option("#f-status", "running")
    page.click("#filters button")
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    assert page.locator("#runs-table tbody tr").get_attribute("data-run") == "live"
    page.select_option("#f-status", "")
    page.fill("#f-tag", "size=wide")
    page.click("#filters button")
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    page.fill("#f-tag", "")
    page.click("#filters button")
    expect(page.locator("#runs-table tbody tr")).to_have_count(4)
    page.click('th[data-sort="last_step"]')
    expect(page.locator("#runs-table tbody tr").first).to_have_attribute("data-run", "live")
    page.click('th[data-sort="last_step"]')
    expect(page.locator("#runs-table tbody tr").first).to_have_attribute("data-run", "mnist-b")
    assert page.problems == []


def test_a_metric_header_sorts_best_first_at_the_first_click(page, served):
    """Issue 26 review: accuracy sorted lowest first; the first click sorts as ``.best`` ranks
    (highest first for accuracy-like names, lowest for the rest), the second the other way."""
    from playwright.sync_api import expect

    page.goto(served.url + "/?col=metrics.accuracy.max&col=metrics.loss.max&col=params.lr")
    sorted_th = page.locator("#runs-table th.sorted")
    for field, first in (("metrics.accuracy.max", "descending"), ("metrics.loss.max", "ascending"), ("params.lr", "ascending")):
        page.click(f'th[data-sort="{field}"]')
        expect(sorted_th).to_have_attribute("data-sort", field)
        expect(sorted_th).to_have_attribute("aria-sort", first)
        page.click(f'th[data-sort="{field}"]')
        expect(sorted_th).to_have_attribute("aria-sort", "ascending" if first == "descending" else "descending")
    page.click('th[data-sort="metrics.accuracy.max"]')
    expect(page.locator("#runs-table tbody tr").first).to_have_attribute("data-run", "mnist-a")
    assert "sort=-metrics.accuracy.max" in page.url
    assert page.problems == []


def test_names_stay_text_everywhere(page, served, tmp_path: Path):
    page.goto(served.url + "/")
    page.wait_for_selector("#runs-table tbody tr")
    row = page.locator("#runs-table tbody tr", has=page.locator(f'input[data-run="{XSS_RUN}"]'))
    assert row.locator("a.run-link").text_content() == XSS_RUN
    assert row.locator(".tag").text_content() == f"{XSS_TAG[0]}={XSS_TAG[1]}"
    # Nothing the names spell was parsed as markup.
    assert page.locator("main img, main script, main i").count() == 0
    # The metric named like markup, chosen as a column, is text and sorts: its name quoted as
    # the search language wants.
    from playwright.sync_api import expect

    page.click("#columns-chooser summary")
    page.check(f'.column-pick[data-col=\'metrics."{XSS_METRIC}".last\']')
    column = page.locator(f'th[data-col=\'metrics."{XSS_METRIC}".last\']')
    expect(column).to_have_count(1)
    assert column.locator(".col-title span").text_content() == XSS_METRIC
    column.click()
    expect(page.locator("#runs-table th.sorted")).to_have_attribute("data-col", f'metrics."{XSS_METRIC}".last')
    expect(page.locator("#runs-table tbody tr").first).to_have_attribute("data-run", XSS_RUN)
    assert page.locator("#runs-error").text_content() == ""
    assert page.locator("main img, main script, main i").count() == 0
    page.check(f'input.select-run[data-run="{XSS_RUN}"]')
    chart_ready(page, 1, XSS_METRIC)
    assert page.locator("#metric-picks label").all_text_contents() == [XSS_METRIC]
    assert page.locator(".u-legend .u-series").nth(1).text_content().startswith(XSS_RUN)
    shoot(page, tmp_path, "odd-names")
    row.locator("a.run-link").click()
    page.wait_for_selector("#run-name")
    assert page.locator("#run-name").text_content() == XSS_RUN
    assert page.title() == f"{XSS_RUN} · ckptstore"
    # An unknown checkpoint named like markup: a 404 message, as text.
    page.goto(served.url + "/checkpoint?ref=" + "%3Cimg%20src%3Dx%20onerror%3Dalert(9)%3E%40latest")
    page.wait_for_selector(".error")
    assert "<img src=x onerror=alert(9)>" in page.locator(".error").text_content()
    assert page.locator("main img, main script").count() == 0
    # The 404 answer itself counts as a console error in chromium; no script ran and no dialog.
    assert [p for p in page.problems if "404" not in p] == []


def test_the_runs_table_and_chart_follow_a_running_run(browser, tmp_path: Path, new_sqlite_store_files: Path):
    from playwright.sync_api import expect

    import ckptstore

    path = tmp_path / "store"
    shutil.copytree(new_sqlite_store_files, path)
    store = ckptstore.open_store(str(path))
    try:
        run = store.start_run("training")
        run.log(0, loss=1.0)
        run.flush()
        for served in serve_in_thread(path):
            page = browser.new_page()
            try:
                page.goto(served.url + "/?run=training")
                chart_ready(page, 1)
                assert page.locator('.chart[data-key="loss"]').get_attribute("data-points") == "1"
                for step in range(1, 50):
                    run.log(step, loss=1.0 / (step + 1))
                run.flush()
                # No reload: the page polls while the run is running.
                expect(page.locator('.chart[data-key="loss"]')).to_have_attribute("data-points", "50", timeout=20_000)
                expect(page.locator('#runs-table tbody tr td[data-col="last_step"]')).to_have_text("49")
                run.finish()
                expect(page.locator("#runs-table .status")).to_have_text("finished")
            finally:
                page.close()
    finally:
        store.close()


def test_the_runs_page_stops_polling_once_its_run_crashed(browser, tmp_path: Path, new_sqlite_store_files: Path):
    """A run whose process was killed reads ``crashed`` (issue 22): the page shows it and polls
    only at the idle pace (every 10 s), not every 2 s as for a running run."""
    import signal

    from playwright.sync_api import expect

    from tests.helpers.processes import run_py

    path = tmp_path / "store"
    shutil.copytree(new_sqlite_store_files, path)
    out = run_py(
        "import os, signal, sys, ckptstore\n"
        "run = ckptstore.open_store(sys.argv[1]).start_run('killed')\n"
        "run.log(1, loss=1.0)\nrun.flush()\nos.kill(os.getpid(), signal.SIGKILL)\n",
        str(path),
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    for served in serve_in_thread(path):
        page = browser.new_page()
        try:
            polls: list[str] = []
            page.on("request", lambda r, polls=polls: polls.append(r.url) if "/api/runs" in r.url else None)
            page.goto(served.url + "/?run=killed")
            expect(page.locator("#runs-table .status")).to_have_text("crashed")
            chart_ready(page, 1)
            seen = len(polls)
            page.wait_for_timeout(4500)  # two fast polls would have happened by now
            assert len(polls) == seen, polls
        finally:
            page.close()

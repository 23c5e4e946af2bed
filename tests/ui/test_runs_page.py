"""The runs page in chromium, over a Keras sweep (four runs, lr x width): the table's param and
metric columns and their sort, the search box (the ``--where`` language, kept in the URL, its
mistakes explained where they were typed), charts that follow the table, several metrics at
once with smoothing, time axes and a log scale."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.helpers.browser import drag_across, shoot
from tests.helpers.ui import GRID, GRID_EPOCHS, GRID_STEPS_PER_EPOCH, grid_run_name

pytestmark = pytest.mark.slow  # a browser, a Keras sweep: seconds each


def rows(page: Any) -> list[str]:
    return [r.get_attribute("data-run") for r in page.locator("#runs-table tbody tr").all()]


def store_order(keras_store: Path, order_by: str, where: str | None = None) -> list[str]:
    import ckptstore

    with ckptstore.open_store(str(keras_store), readonly=True) as store:
        return [r.name for r in store.runs(order_by=order_by, where=where)]


def charts_ready(page: Any, keys: list[str], series: int) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#charts")).to_have_attribute("data-ready", "1")
    expect(page.locator("#charts .chart")).to_have_count(len(keys))
    for key in keys:
        chart = page.locator(f'.chart[data-key="{key}"]')
        expect(chart).to_have_attribute("data-ready", "1")
        expect(chart).to_have_attribute("data-series", str(series))


def test_runs_table_shows_the_params_that_differ_and_keepbest_metric_and_sorts_by_any(page, keras_served, keras_store, tmp_path):
    from playwright.sync_api import expect

    page.goto(keras_served.url + "/")
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(GRID))
    # The defaults: the metric KeepBest ranks by (val_loss, at its min), and the params that
    # differ (not batch).
    headers = [h.get_attribute("data-col") for h in page.locator("#runs-table th[data-col]").all()]
    assert headers == ["metrics.val_loss.min", "params.hidden", "params.lr"]
    # The values are the store's.
    import ckptstore

    with ckptstore.open_store(str(keras_store), readonly=True) as store:
        best = {r.name: store.metric_summaries(r.name)["val_loss"].best for r in store.runs()}
    for name, value in best.items():
        cell = page.locator(f'#runs-table tr[data-run="{name}"] td[data-col="metrics.val_loss.min"]').text_content()
        assert float(cell) == pytest.approx(value, rel=1e-3)
    # Newest first until sorted; the charts draw the table's first runs (nothing selected).
    assert rows(page) == store_order(keras_store, "-created")
    charts_ready(page, ["loss", "val_loss"], len(GRID))
    shoot(page, tmp_path, "runs")

    # Sort by the metric column: ascending, then descending, as the store sorts; kept in the URL.
    page.click('th[data-sort="metrics.val_loss.min"]')
    expect(page.locator("#runs-table tbody tr").first).to_have_attribute(
        "data-run", store_order(keras_store, "metrics.val_loss.min")[0])
    assert rows(page) == store_order(keras_store, "metrics.val_loss.min")
    page.click('th[data-sort="metrics.val_loss.min"]')
    expect(page.locator("#runs-table tbody tr").first).to_have_attribute(
        "data-run", store_order(keras_store, "-metrics.val_loss.min")[0])
    assert rows(page) == store_order(keras_store, "-metrics.val_loss.min")
    assert parse_qs(urlparse(page.url).query)["sort"] == ["-metrics.val_loss.min"]
    # And by a param, from the keyboard.
    page.focus('th[data-sort="params.lr"]')
    page.keyboard.press("Enter")
    expect(page.locator("#runs-table th.sorted")).to_have_attribute("data-sort", "params.lr")
    expect(page.locator("#runs-table th.sorted")).to_have_attribute("aria-sort", "ascending")
    assert rows(page) == store_order(keras_store, "params.lr")

    # The column chooser adds any metric aggregate, param or tag; the URL keeps the choice.
    page.click("#columns-chooser summary")
    page.check('.column-pick[data-col="metrics.val_mae.min"]')
    expect(page.locator('#runs-table th[data-col="metrics.val_mae.min"]')).to_have_count(1)
    page.check('.column-pick[data-col="params.batch"]')
    expect(page.locator('#runs-table td[data-col="params.batch"]')).to_have_text(["64"] * len(GRID))
    page.uncheck('.column-pick[data-col="params.hidden"]')
    expect(page.locator('#runs-table th[data-col="params.hidden"]')).to_have_count(0)
    # (Sorted by params.lr, the defaults had it first: the fields sorted by lead.)
    assert parse_qs(urlparse(page.url).query)["col"] == ["params.lr", "metrics.val_loss.min", "metrics.val_mae.min", "params.batch"]
    page.reload()
    expect(page.locator("#runs-table th[data-col]")).to_have_count(4)
    assert rows(page) == store_order(keras_store, "params.lr")
    assert page.problems == []


def test_search_box_filters_the_table_and_the_charts_and_explains_its_mistakes(page, keras_served, keras_store, tmp_path):
    from playwright.sync_api import expect

    page.goto(keras_served.url + "/")
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(GRID))
    where = "params.lr < 0.01 and metrics.val_loss.min < 10"
    page.fill("#search", where)
    page.press("#search", "Enter")
    small_lr = [grid_run_name(lr, h) for lr, h in GRID if lr < 0.01]
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(small_lr))
    assert sorted(rows(page)) == sorted(small_lr) == sorted(store_order(keras_store, "name", where))
    assert parse_qs(urlparse(page.url).query)["where"] == [where]
    # The curves follow the table: the runs the search hides are not drawn.
    charts_ready(page, ["loss", "val_loss"], len(small_lr))
    shoot(page, tmp_path, "runs-search")
    # The search is in the URL: a reload (or a shared link) shows the same.
    page.reload()
    expect(page.locator("#search")).to_have_value(where)
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(small_lr))

    # A misspelt metric matches nothing: the page says which name no run has, and the nearest.
    page.fill("#search", "metrics.val_los.min < 1")
    page.press("#search", "Enter")
    expect(page.locator(".search-note")).to_have_text(["no run has a metric 'val_los' (did you mean metrics.val_loss.min?)"])
    expect(page.locator("#runs-table tbody tr")).to_have_count(0)
    # A syntax error: the parser's message, where the search is.
    page.fill("#search", "params.lr <")
    page.press("#search", "Enter")
    expect(page.locator("#search-error")).to_contain_text("bad where")
    # A column no run has: did you mean; a word that is no field: an error that says the closest.
    page.goto(keras_served.url + "/?col=metrics.vall_loss.best")
    expect(page.locator(".search-note")).to_have_text(["no run has a metric 'vall_loss' (did you mean metrics.val_loss.min?)"])
    # A misspelt metric in the sort: the note, and the table's own columns (none for the name).
    page.goto(keras_served.url + "/?sort=-metrics.val_los.min")
    expect(page.locator(".search-note")).to_have_text(["no run has a metric 'val_los' (did you mean metrics.val_loss.min?)"])
    expect(page.locator('#runs-table th[data-col="metrics.val_los.min"]')).to_have_count(0)
    expect(page.locator('#runs-table th[data-col^="params."]').first).to_be_visible()
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(GRID))
    page.goto(keras_served.url + "/?sort=val_mea")
    expect(page.locator("#search-error")).to_contain_text("unknown field 'val_mea'; did you mean metrics.val_mae.min?")
    assert [p for p in page.problems if "400" not in p] == []  # the 400 answers count as console errors


def test_several_metrics_smoothing_time_axes_and_log_scale(page, keras_served, keras_store, tmp_path):
    from playwright.sync_api import expect

    runs = [grid_run_name(*GRID[0]), grid_run_name(*GRID[3])]
    page.goto(keras_served.url + "/?" + "&".join(f"run={r}" for r in runs) + "&key=loss&key=mae&key=val_loss")
    charts_ready(page, ["loss", "mae", "val_loss"], 2)
    # One more metric: a fourth chart; one less: three again.
    page.check('.metric-pick[data-key="val_mae"]')
    charts_ready(page, ["loss", "mae", "val_loss", "val_mae"], 2)
    page.uncheck('.metric-pick[data-key="mae"]')
    charts_ready(page, ["loss", "val_loss", "val_mae"], 2)
    assert parse_qs(urlparse(page.url).query)["key"] == ["loss", "val_loss", "val_mae"]

    # Smoothing: each run's smoothed line, its raw line faint behind it and out of the legend.
    loss = page.locator('.chart[data-key="loss"]')
    page.locator("#smoothing").fill("0.6")
    expect(loss).to_have_attribute("data-smoothing", "0.6")
    assert loss.locator(".u-legend .u-series:not(.raw-series)").count() == 3  # x + two runs
    assert loss.locator(".u-legend .u-series.raw-series").count() == 2
    assert parse_qs(urlparse(page.url).query)["smooth"] == ["0.6"]

    # The x axis: relative time (seconds since the metric's first value), then wall time.
    page.select_option("#x-axis", "relative")
    expect(loss).to_have_attribute("data-x", "relative")
    charts_ready(page, ["loss", "val_loss", "val_mae"], 2)
    assert "time since the first value" in loss.inner_text()
    assert int(loss.get_attribute("data-markers")) == 8  # every checkpoint placed on the time axis
    page.select_option("#x-axis", "wall")
    expect(loss).to_have_attribute("data-x", "wall")

    # Log scale: the positive values' own range, not whole decades.
    page.select_option("#x-axis", "step")
    page.check("#log")
    expect(loss).to_have_attribute("data-log", "1")
    low, high = map(float, loss.get_attribute("data-y-range").split(","))
    import ckptstore

    with ckptstore.open_store(str(keras_store), readonly=True) as store:
        values = [r.metrics["loss"] for run in runs for r in store.steps(run, keys=["loss"])]
    assert min(values) / 1.5 < low <= min(values) and max(values) <= high < max(values) * 1.5
    # Not widened to whole decades (uPlot's default, which can leave most of the chart empty).
    assert 10 ** math.floor(math.log10(min(values))) < low and high < 10 ** math.ceil(math.log10(max(values)))
    shoot(page, tmp_path, "charts")
    assert page.problems == []



def tensorboard_smoothing(values: list[float], weight: float) -> list[float]:
    """TensorBoard's classicSmoothing (tensorboard/webapp/widgets/line_chart_v2), in Python."""
    if all(v == values[0] for v in values):
        return values
    last, n, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last if weight == 1 else last / (1 - weight**n))
    return out


def test_smoothing_is_tensorboards(page, keras_served):
    page.goto(keras_served.url + "/aliases")  # any page of the app: the module is imported in it
    values = [1.0, 0.5, 0.8, 0.3, 0.4, 0.1, 0.25]
    for weight in (0.0, 0.6, 0.95):
        got = page.evaluate("async ([v, w]) => (await import('/static/chart.js')).smooth(v, w)", [values, weight])
        assert got == pytest.approx(tensorboard_smoothing(values, weight), rel=1e-12)
    # A gap stays a gap and does not enter the average; a constant series is left as it is.
    got = page.evaluate("async ([v, w]) => (await import('/static/chart.js')).smooth(v, w)", [[1.0, None, 3.0], 0.5])
    assert got == pytest.approx([1.0, None, tensorboard_smoothing([1.0, 3.0], 0.5)[1]])
    assert page.evaluate("async () => (await import('/static/chart.js')).smooth([2, 2, 2], 0.9)") == [2, 2, 2]
    assert page.problems == []


def test_log_scale_says_what_it_leaves_out(page, tmp_path):
    """A log scale draws the positive values only, says how many it left out, and labels tiny
    values readably (uPlot's own labels print 1e-6 as "0")."""
    from playwright.sync_api import expect

    import ckptstore
    from tests.helpers.ui import serve_in_thread

    path = tmp_path / "store"
    with ckptstore.open_store(str(path)) as store, store.start_run("signs") as run:
        for i in range(50):
            run.log(i, negative=-1.0 - i, mixed=(i - 10) * 0.1, tiny=1e-6 * (i + 1))
    for served in serve_in_thread(path):
        page.goto(served.url + "/?run=signs&key=negative&key=mixed&key=tiny&log=1")
        charts_ready(page, ["negative", "mixed", "tiny"], 1)
        note = lambda key: page.locator(f'.chart[data-key="{key}"]').locator("xpath=..").locator(".chart-note")  # noqa: E731
        expect(note("negative")).to_have_text("no value above 0: nothing to show on a log scale")
        expect(note("mixed")).to_have_text("log scale: 11 values at or below 0 not shown")
        expect(note("tiny")).to_have_text("")
        # The axis labels are drawn on a canvas: their formatter is checked directly.
        ticks = page.evaluate("async (v) => { const m = await import('/static/chart.js'); return v.map(m.tick); }",
                              [1e-6, 2.5e-5, 0.123456, 1, 3e7, None, 0])
        assert ticks == ["1.0e-6", "2.5e-5", "0.123", "1", "3.0e7", "", "0"]
        page.uncheck("#log")
        expect(note("mixed")).to_have_text("")
        assert page.problems == []


def test_back_undoes_a_search_a_sort_and_a_column_and_a_bad_search_leaves_no_stale_column(page, keras_served):
    """Issue 26: a search, a sort, a column are steps of the browser's history (Back undoes
    them, within the app); a search the parser refuses shows no column of the search before."""
    from playwright.sync_api import expect

    page.goto(keras_served.url + "/")
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(GRID))
    start = urlparse(page.url).netloc
    # A misspelt metric: the note, the columns of before (none for the misspelt name)...
    page.fill("#search", "metrics.val_los.min < 1")
    page.press("#search", "Enter")
    expect(page.locator(".search-note")).to_have_count(1)
    expect(page.locator('#runs-table th[data-col="metrics.val_loss.min"]')).to_have_count(1)
    expect(page.locator('#runs-table th[data-col="metrics.val_los.min"]')).to_have_count(0)
    # ...and gone once a search fails to parse: the table says nothing of the search before.
    page.fill("#search", "params.lr <")
    page.press("#search", "Enter")
    expect(page.locator("#search-error")).to_contain_text("bad where")
    expect(page.locator("#runs-table th[data-col]")).to_have_count(0)
    # Back: the search before, its column, its note.
    page.go_back()
    expect(page.locator("#search")).to_have_value("metrics.val_los.min < 1")
    expect(page.locator(".search-note")).to_have_count(1)
    expect(page.locator("#search-error")).to_have_count(0)
    page.go_back()
    expect(page.locator("#search")).to_have_value("")
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(GRID))
    assert urlparse(page.url).netloc == start and "where" not in parse_qs(urlparse(page.url).query)

    # A sort, then a column: Back undoes the column, then the sort; Forward redoes the sort.
    page.click('th[data-sort="last_step"]')
    expect(page.locator("#runs-table th.sorted")).to_have_attribute("data-sort", "last_step")
    page.click("#columns-chooser summary")
    page.check('.column-pick[data-col="metrics.mae.max"]')
    expect(page.locator('#runs-table th[data-col="metrics.mae.max"]')).to_have_count(1)
    page.go_back()
    expect(page.locator('#runs-table th[data-col="metrics.mae.max"]')).to_have_count(0)
    expect(page.locator('.column-pick[data-col="metrics.mae.max"]')).not_to_be_checked()
    expect(page.locator("#runs-table th.sorted")).to_have_attribute("data-sort", "last_step")
    page.go_back()
    expect(page.locator("#runs-table th.sorted")).to_have_count(0)
    assert urlparse(page.url).netloc == start and "sort" not in parse_qs(urlparse(page.url).query)
    page.go_forward()
    expect(page.locator("#runs-table th.sorted")).to_have_attribute("data-sort", "last_step")
    assert [p for p in page.problems if "400" not in p] == []


def colours(page: Any) -> dict[str, str]:
    """Each charted run's line colour in every chart (one colour per run, or the test fails)."""
    seen: dict[str, str] = {}
    for chart in page.locator("#charts .chart").all():
        for run, colour in json.loads(chart.get_attribute("data-colors")).items():
            assert seen.setdefault(run, colour) == colour, f"{run} drawn in {seen[run]} and {colour}"
    for swatch in page.locator("#runs-table .swatch").all():
        run = swatch.locator("xpath=ancestor::tr").get_attribute("data-run")
        assert run in seen, f"{run} has a swatch and no line"
        assert swatch.evaluate("(e) => getComputedStyle(e).color") == page.evaluate(
            "(c) => { const s = document.createElement('span'); s.style.color = c; document.body.append(s);"
            " const out = getComputedStyle(s).color; s.remove(); return out; }", seen[run])
    return seen


def test_a_run_keeps_its_colour_whatever_the_sort_the_search_or_the_ticks(page, keras_served):
    """Issue 26 review: the colours followed the rows, so a sort, a search or a tick repainted
    the runs; every run shown is charted, each in a colour of its own."""
    from playwright.sync_api import expect

    page.goto(keras_served.url + "/?key=loss&key=val_loss")
    charts_ready(page, ["loss", "val_loss"], len(GRID))
    first = colours(page)
    assert sorted(first) == sorted(grid_run_name(*g) for g in GRID) and len(set(first.values())) == len(GRID)
    # Sorted both ways: the same colours.
    for _ in range(2):
        page.click('th[data-sort="params.lr"]')
        expect(page.locator("#runs-table th.sorted")).to_have_attribute("data-sort", "params.lr")
        charts_ready(page, ["loss", "val_loss"], len(GRID))
        assert colours(page) == first
    # Searched down to the wide runs: theirs.
    page.fill("#search", "params.hidden > 8")
    page.press("#search", "Enter")
    wide = [grid_run_name(lr, h) for lr, h in GRID if h > 8]
    charts_ready(page, ["loss", "val_loss"], len(wide))
    assert colours(page) == {r: first[r] for r in wide}
    # One of them ticked: charted alone, in its colour.
    page.locator(f'.select-run[data-run="{wide[-1]}"]').check()
    charts_ready(page, ["loss", "val_loss"], 1)
    assert colours(page) == {wide[-1]: first[wide[-1]]}
    # Opened with runs in the URL (charted while the table loads): the same colours.
    page.goto(keras_served.url + f"/?run={wide[-1]}&run={grid_run_name(*GRID[1])}&key=loss")
    charts_ready(page, ["loss"], 2)
    expect(page.locator("#runs-table .swatch")).to_have_count(2)
    assert colours(page) == {r: first[r] for r in (wide[-1], grid_run_name(*GRID[1]))}
    assert [p for p in page.problems if "400" not in p] == []


def test_small_multiples_share_one_x_window_before_and_after_a_zoom(page, keras_served):
    """Issue 26 review: ``loss`` spanned steps 1-32 and ``val_loss`` 8-32 side by side, and after
    a drag-zoom each chart fitted its own points."""
    from playwright.sync_api import expect

    page.goto(keras_served.url + "/?key=loss&key=val_loss")
    charts_ready(page, ["loss", "val_loss"], len(GRID))
    loss, val = page.locator('.chart[data-key="loss"]'), page.locator('.chart[data-key="val_loss"]')

    def window(chart: Any) -> list[float]:
        return [float(v) for v in chart.get_attribute("data-x-window").split(",")]

    expect(val).not_to_have_attribute("data-x-window", "")
    steps = GRID_EPOCHS * GRID_STEPS_PER_EPOCH
    assert window(loss) == window(val) and window(loss)[0] <= 1 and window(loss)[1] == steps
    # A drag on one chart: every chart shows the steps dragged across.
    drag_across(page, loss.locator(".u-over"), 0.2, 0.7)
    expect(loss).not_to_have_attribute("data-range", "")
    expect(val).to_have_attribute("data-range", loss.get_attribute("data-range"))
    start, stop = map(int, loss.get_attribute("data-range").split(","))
    expect(val).to_have_attribute("data-x-window", f"{start},{stop}")
    expect(loss).to_have_attribute("data-x-window", f"{start},{stop}")
    # Zoomed out: the union again. On a time axis too.
    page.click("#reset-zoom")
    expect(loss).to_have_attribute("data-range", "")
    expect(val).to_have_attribute("data-x-window", loss.get_attribute("data-x-window"))
    page.select_option("#x-axis", "relative")
    expect(loss).to_have_attribute("data-x", "relative")
    charts_ready(page, ["loss", "val_loss"], len(GRID))
    assert window(loss) == window(val) and window(loss)[0] <= 0.5
    # A drag on a time axis: the other chart follows.
    whole, text = window(loss), loss.get_attribute("data-x-window")
    drag_across(page, loss.locator(".u-over"), 0.4, 0.8)
    expect(loss).not_to_have_attribute("data-x-window", text)
    expect(val).to_have_attribute("data-x-window", loss.get_attribute("data-x-window"))
    zoomed = window(loss)
    assert whole[0] < zoomed[0] < zoomed[1] < whole[1]
    page.click("#reset-zoom")
    expect(loss).to_have_attribute("data-x-window", text)
    expect(val).to_have_attribute("data-x-window", loss.get_attribute("data-x-window"))
    assert page.problems == []


def test_a_misspelt_field_in_the_search_keeps_the_tables_columns(page, keras_served):
    """Issue 26 review: the did-you-mean was right, but the table gained a column for the
    misspelt name and lost its param columns and the metric checkboxes."""
    from playwright.sync_api import expect

    page.goto(keras_served.url + "/")
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(GRID))
    expect(page.locator(".metric-pick")).not_to_have_count(0)
    columns = [h.get_attribute("data-col") for h in page.locator("#runs-table th[data-col]").all()]
    picks = page.locator(".metric-pick").count()
    page.fill("#search", "metrics.val_los.max > 0.9")
    page.press("#search", "Enter")
    expect(page.locator(".search-note")).to_have_text(["no run has a metric 'val_los' (did you mean metrics.val_loss.max?)"])
    expect(page.locator("#runs-table tbody tr")).to_have_count(0)
    assert [h.get_attribute("data-col") for h in page.locator("#runs-table th[data-col]").all()] == columns
    assert page.locator(".metric-pick").count() == picks
    page.click("#columns-chooser summary")
    expect(page.locator('.column-pick[data-col="params.lr"]')).to_be_checked()
    # Opened with the misspelt search (a link): the columns of the table without it.
    page.reload()
    expect(page.locator(".search-note")).to_have_count(1)
    expect(page.locator("#runs-table th[data-col]")).to_have_count(len(columns))
    assert [h.get_attribute("data-col") for h in page.locator("#runs-table th[data-col]").all()] == columns
    assert page.problems == []


def test_status_applies_at_once_and_the_row_limit_says_what_it_charts(page, keras_served):
    from playwright.sync_api import expect

    page.goto(keras_served.url + "/")
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(GRID))
    page.select_option("#f-status", "running")  # no Search button pressed
    expect(page.locator("#runs-table tbody tr")).to_have_count(0)
    assert parse_qs(urlparse(page.url).query)["status"] == ["running"]
    page.select_option("#f-status", "finished")
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(GRID))
    assert parse_qs(urlparse(page.url).query)["status"] == ["finished"]
    expect(page.locator("#charts-limit")).to_have_text("")  # every run is charted
    assert page.problems == []

"""The run, checkpoint, exports and aliases pages in chromium, over a Keras sweep: a run's
metric summary and charts, variables under the names people know them by (grouped by layer,
optimizer slots beside their weight), exports as a table, links between them all, and no page
wider than a phone held upright (390 px)."""

from __future__ import annotations

import pytest

from tests.helpers.browser import shoot
from tests.helpers.ui import GRID, GRID_EPOCHS, grid_run_name

pytestmark = pytest.mark.slow  # a browser, a Keras sweep: seconds each

RUN = grid_run_name(*GRID[-1])  # the run with the export


def test_run_page_summarises_and_charts_every_metric(page, keras_served, keras_store, tmp_path):
    from playwright.sync_api import expect

    import ckptstore

    with ckptstore.open_store(str(keras_store), readonly=True) as store:
        summaries = store.metric_summaries(RUN)
        checkpoints = [ck.step for ck in store.checkpoints(RUN)]
    page.goto(keras_served.url + f"/run?name={RUN}")
    expect(page.locator("#charts")).to_have_attribute("data-ready", "1")
    # One summary row and one chart per metric.
    assert [r.get_attribute("data-key") for r in page.locator("#metric-summary tbody tr").all()] == sorted(summaries)
    assert sorted(c.get_attribute("data-key") for c in page.locator("#charts .chart").all()) == sorted(summaries)
    row = page.locator('#metric-summary tr[data-key="val_loss"] td')
    s = summaries["val_loss"]
    assert [float(row.nth(i).text_content()) for i in (1, 3, 4, 5)] == pytest.approx([s.last, s.min, s.max, s.best], rel=1e-3)
    assert row.nth(6).text_content() == str(s.best_step)
    # The best step is a checkpoint (KeepBest kept it): a link to it.
    row.nth(6).locator("a").click()
    expect(page.locator("#checkpoint-ref")).to_have_text(f"{RUN}@{s.best_step}")
    page.go_back()
    expect(page.locator("#charts")).to_have_attribute("data-ready", "1")
    assert page.locator(".checkpoint-link").all_text_contents() == [str(step) for step in checkpoints]
    assert len(checkpoints) == GRID_EPOCHS
    shoot(page, tmp_path, "run")
    # The export's alias links to the aliases page.
    page.locator("a.alias-link", has_text="prod").click()
    expect(page.locator('.alias[data-alias="prod"]')).to_contain_text("export:")
    shoot(page, tmp_path, "aliases")
    page.locator('.alias[data-alias="prod"] a.export-link').first.click()
    expect(page.locator("#exports-table tbody tr")).to_have_count(1)
    assert page.problems == []


def test_checkpoint_variables_have_readable_names_grouped_by_layer(page, keras_served, tmp_path):
    from playwright.sync_api import expect

    page.goto(keras_served.url + f"/checkpoint?ref={RUN}@latest")
    expect(page.locator("#variables")).to_have_count(1)
    groups = page.locator("#variables tr.group").all_text_contents()
    assert "model/hidden" in groups and "model/out" in groups
    hidden = page.locator('#variables tr[data-name^="model/hidden/"]')
    names = hidden.all_text_contents()
    # The layer's weights, each followed by its optimizer slots.
    assert [n.split("float32")[0] for n in names][:1] == ["bias"]
    assert any(n.startswith("kernel · ") and "momentum" in n for n in names)
    assert page.locator('#variables tr[data-name="model/hidden/kernel"]').count() == 1
    # The keys of the checkpoint file are nowhere in the text (only in the tooltips).
    text = page.locator("#variables").inner_text()
    assert ".ATTRIBUTES" not in text and "_trainable_variables" not in text
    key = page.locator('#variables tr[data-name="model/hidden/kernel"] td.var-name').get_attribute("title")
    assert key.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
    shoot(page, tmp_path, "checkpoint")
    # The diff under it says the same names.
    page.select_option("#diff-pick", "best")
    page.click("#diff-form button")
    expect(page.locator(".diff-summary")).to_have_count(1)
    assert "model/hidden/kernel" in page.locator("#diff").inner_text()
    assert page.problems == []


def test_exports_page_is_a_table_with_links(page, keras_served, tmp_path):
    from playwright.sync_api import expect

    page.goto(keras_served.url + "/exports")
    expect(page.locator("#exports-table tbody tr")).to_have_count(1)
    row = page.locator("#exports-table tbody tr")
    assert row.locator(".export-ref").text_content().startswith("export:")
    assert row.locator("a.run-link").text_content() == RUN
    assert "prod" in row.locator(".alias-link").all_text_contents()
    shoot(page, tmp_path, "exports")
    row.locator('a[href*="checkpoint?ref="]').click()
    expect(page.locator("#checkpoint-ref")).to_contain_text(RUN + "@")
    # A run's own exports, from its page.
    page.goto(keras_served.url + f"/run?name={grid_run_name(*GRID[0])}")
    page.click("text=exports (0)")
    expect(page.locator("#exports-title")).to_have_text(f"Exports of {grid_run_name(*GRID[0])}")
    expect(page.locator("#content")).to_contain_text("no exports yet")
    assert page.problems == []


PAGES = {
    "runs": "/",
    "runs-charted": f"/?run={RUN}&key=loss&key=val_loss&smooth=0.6&col=metrics.val_loss.best&col=params.lr"
                    "&col=params.hidden&col=metrics.val_mae.min&col=tags.sweep",
    "run": f"/run?name={RUN}",
    "checkpoint": f"/checkpoint?ref={RUN}@latest&diff={grid_run_name(*GRID[0])}@latest",
    "exports": "/exports",
    "aliases": "/aliases",
}


@pytest.mark.parametrize("name", list(PAGES))
def test_no_page_scrolls_sideways_on_a_phone(phone, keras_served, tmp_path, name):
    from playwright.sync_api import expect

    phone.goto(keras_served.url + PAGES[name])
    expect(phone.locator("#content .muted", has_text="Loading")).to_have_count(0)
    if name.startswith("runs"):
        expect(phone.locator("#charts")).to_have_attribute("data-ready", "1")
    elif name == "run":
        expect(phone.locator("#charts")).to_have_attribute("data-ready", "1")
    elif name == "checkpoint":
        expect(phone.locator(".diff-summary")).to_have_count(1)
    width = phone.evaluate("document.scrollingElement.scrollWidth")
    inner = phone.evaluate("window.innerWidth")
    assert inner == 390 and width <= inner, f"{name}: the page is {width} px wide on a {inner} px screen"
    if name in ("runs-charted", "checkpoint"):
        shoot(phone, tmp_path, f"phone-{name}")
    assert phone.problems == []



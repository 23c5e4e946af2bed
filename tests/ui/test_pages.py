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
    # A table that fits shows no scroll cue (the indented history once scrolled by its indent).
    expect(page.locator(".table-wrap.more-right, .table-wrap.more-left")).to_have_count(0)
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
    assert page.locator('#diff tr[data-name="model/hidden/kernel"]').count() >= 1
    assert page.problems == []


def test_the_diff_shows_the_variables_tables_names_grouped_by_layer(page, keras_served):
    """Issue 26: the diff lists ``model/hidden`` > ``kernel · adam/momentum`` as the variables
    table does, not the raw paths; the checkpoint file's key is the tooltip."""
    from playwright.sync_api import expect

    other = grid_run_name(*GRID[0])  # 8 units wide, RUN 32: every hidden weight changed shape
    page.goto(keras_served.url + f"/checkpoint?ref={RUN}%40latest&diff={other}%40latest")
    section = page.locator('.diff-kind[data-kind="dtype/shape changed"]')
    expect(section).to_have_count(1)
    assert "model/hidden" in section.locator("tr.group").all_text_contents()
    # Names as in the table above: the layer a heading, the weight, its slots beside it.
    names = section.locator("td.var-name").all_text_contents()
    assert "kernel" in names and any(n.startswith("kernel · ") and n.endswith("/momentum") for n in names)
    assert not any(n.startswith("model/") for n in names)
    kernel = section.locator('tr[data-name="model/hidden/kernel"] td.var-name')
    assert kernel.get_attribute("title").endswith("/.ATTRIBUTES/VARIABLE_VALUE")
    assert ".ATTRIBUTES" not in page.locator("#diff").inner_text()
    # A section with slots but not their weight still groups them under the weight's layer.
    for row in page.locator("#diff tr[data-name]").all():
        assert not row.locator("td.var-name").text_content().startswith(("adam", "momentum", "velocity"))
    assert page.problems == []


def test_links_lead_to_the_export_itself_and_say_none_when_there_is_none(page, keras_served, keras_store):
    """Issue 26: an alias on an export links that export's row; a checkpoint's "exports" row
    lists its own exports (links), or says "none"."""
    from playwright.sync_api import expect

    import ckptstore

    with ckptstore.open_store(str(keras_store), readonly=True) as store:
        export = store.exports(RUN)[0]
    page.goto(keras_served.url + "/aliases")
    prod = page.locator('.alias[data-alias="prod"]')
    expect(prod).to_have_count(1)
    # The target and the history's "to" column, both links to the export's row.
    assert prod.locator("a.export-link").count() == 2
    prod.locator("a.export-link").first.click()
    expect(page.locator("#exports-table tr.target")).to_have_attribute("data-ref", export.ref)
    # The checkpoint the export was frozen from lists it; another says none.
    page.goto(keras_served.url + f"/checkpoint?ref={RUN}%40{export.step}")
    expect(page.locator("#checkpoint-exports a.export-link")).to_have_text([export.ref])
    page.locator("#checkpoint-exports a.export-link").click()
    expect(page.locator("#exports-title")).to_have_text(f"Exports of {RUN}")
    expect(page.locator("#exports-table tr.target")).to_have_attribute("data-ref", export.ref)
    page.goto(keras_served.url + f"/checkpoint?ref={grid_run_name(*GRID[0])}%40latest")
    expect(page.locator("#checkpoint-exports")).to_have_text("none")
    assert page.locator("#checkpoint-exports a").count() == 0
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
    # How exports are made; not "ckptstore export", which writes an existing one out.
    empty = page.locator("#no-exports").text_content()
    assert "ckptstore export" not in empty
    assert all(f"run.{how}" in empty for how in ("freeze", "export_saved_model", "export_keras"))
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
    # Nothing is cut mid-word to fit instead (issue 26): numbers, names in the exports table and
    # field labels keep to one line; a table too wide scrolls in its own box.
    for selector in ("#runs-table td.num", "table.grid td.num", "#exports-table td", "table.fields th"):
        cut = phone.evaluate(f"[...document.querySelectorAll({selector!r})].filter((e) => {LINES_JS}(e) > 1"
                             " || e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent)")
        assert cut == [], f"{name}: {selector} broken or clipped: {cut}"
    # Every link, reference and number of a table on one line ("ex/po/rt:/1" was four), no word
    # of any cell broken ("tf2-/checkpoint"), no header's broken or clipped ("val_accurac");
    # text of several words may wrap between them.
    for selector in ("table.grid td a", "table.grid td.num", ".export-ref", "table.grid th", "table.grid td", "table.fields td"):
        cut = phone.evaluate(f"[...document.querySelectorAll({selector!r})].filter((e) => {WORD_CUT_JS}(e)"
                             " || e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent)")
        assert cut == [], f"{name}: {selector} cut inside a word: {cut}"
    if name in ("run", "exports", "aliases"):
        assert phone.locator("table.grid td a").count() > 0
    if name.startswith("runs"):
        # The runs table is wider than the phone: its right edge is shaded, the cue that it
        # scrolls; scrolled to the end, the left edge is.
        wrap = phone.locator("#runs .table-wrap")
        expect(wrap).to_have_class("table-wrap more-right")
        wrap.evaluate("(e) => { e.scrollLeft = e.scrollWidth; }")
        expect(wrap).to_have_class("table-wrap more-left")
        wrap.evaluate("(e) => { e.scrollLeft = 0; }")
        expect(wrap).to_have_class("table-wrap more-right")
        # Only the table and what is under it: no stray text (a "null" once stood there).
        assert phone.locator("#runs").evaluate("(e) => [...e.childNodes].filter((n) => n.nodeType === 3).length") == 0
    if name in ("runs-charted", "checkpoint"):
        shoot(phone, tmp_path, f"phone-{name}")
    assert phone.problems == []


# The most lines any one piece of an element's text takes (a text broken across lines has a box
# on each).
LINES_JS = ("((e) => { const w = document.createTreeWalker(e, NodeFilter.SHOW_TEXT); let most = 0;"
            " for (let t = w.nextNode(); t; t = w.nextNode()) { const r = document.createRange(); r.selectNodeContents(t);"
            " most = Math.max(most, new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size); }"
            " return most; })")


# Whether a word (a run of characters without white space) of the element's text is drawn on
# more than one line; a link that must stay whole ("export:1", "run@30") is one such word.
WORD_CUT_JS = ("((e) => { const w = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);"
               " for (let t = w.nextNode(); t; t = w.nextNode()) { const re = /\\S+/g; let m;"
               " while ((m = re.exec(t.data))) { const r = document.createRange(); r.setStart(t, m.index);"
               " r.setEnd(t, m.index + m[0].length);"
               " if (new Set([...r.getClientRects()].filter((b) => b.width > 0).map((b) => Math.round(b.top))).size > 1) return true; } }"
               " return false; })")


def test_an_unknown_address_is_a_page_laid_out_for_a_phone(phone, keras_served):
    """Issue 26: a browser gets an HTML 404 page with the viewport line (chromium drew the JSON
    answer 980 px wide); the API's 404s stay JSON."""
    response = phone.goto(keras_served.url + "/no/such/page?x=%3Cb%3E")
    assert response.status == 404 and response.headers["content-type"].startswith("text/html")
    assert phone.locator('meta[name="viewport"]').count() == 1
    assert phone.locator("#not-found").text_content() == "no such page or endpoint: /no/such/page"
    assert phone.evaluate("window.innerWidth") == 390
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390
    assert phone.locator("header nav a").count() == 3
    assert [p for p in phone.problems if "404" not in p] == []




def test_run_page_has_no_best_epoch_and_shows_params_and_retention_as_tables(page, keras_served):
    """Issue 26 review: Keras's ``epoch`` counter had a "best" in the summary (the command line
    follows ``views.COUNTERS``), params and retention were raw JSON."""
    from playwright.sync_api import expect

    page.goto(keras_served.url + f"/run?name={RUN}")
    expect(page.locator("#charts")).to_have_attribute("data-ready", "1")
    epoch = page.locator('#metric-summary tr[data-key="epoch"] td')
    assert epoch.nth(1).text_content() == str(GRID_EPOCHS)
    assert [epoch.nth(i).text_content() for i in (3, 4, 5, 6)] == ["", "", "", ""]
    assert page.locator("#metric-summary td.best").count() == page.locator("#metric-summary tbody tr").count() - 1
    params = {r.locator("th").text_content(): r.locator("td").text_content() for r in page.locator("#params > tbody > tr").all()}
    lr, hidden = GRID[-1]
    assert params == {"lr": f"{lr:g}", "hidden": str(hidden), "batch": "64"}
    retention = page.locator("#retention > tbody > tr")
    assert retention.locator("th").all_text_contents()[0] == "max_to_keep"
    keep_best = page.locator("#retention tr", has=page.locator("th", has_text="keep_best")).last.locator("table.values")
    assert {r.locator("th").text_content(): r.locator("td").text_content() for r in keep_best.locator("tr").all()}["metric"] == "val_loss"
    assert page.problems == []


def test_a_run_or_checkpoint_not_found_has_a_heading_and_a_way_back(page, keras_served):
    from playwright.sync_api import expect

    page.goto(keras_served.url + "/run?name=no-such-run")
    expect(page.locator("h1#missing")).to_have_text("Run not found")
    expect(page.locator("#content .error")).to_contain_text("no-such-run")
    assert page.locator("a.back-link").get_attribute("href") == "/"
    page.goto(keras_served.url + f"/checkpoint?ref={RUN}@99999")
    expect(page.locator("h1#missing")).to_have_text("Checkpoint not found")
    page.locator("a.back-link").click()
    expect(page.locator("#run-name")).to_have_text(RUN)
    assert [p for p in page.problems if "404" not in p] == []


def test_the_diff_shows_max_delta_and_rel_l2_when_asked(page, keras_served):
    """As ``vars --diff --stats`` prints them (three significant digits), for the float tensors
    whose value changed; asked with a tick (they read the tensors), kept in the URL."""
    from playwright.sync_api import expect

    page.goto(keras_served.url + f"/checkpoint?ref={RUN}%40latest&diff={RUN}%408")
    section = page.locator('.diff-kind[data-kind="value changed"]')
    expect(section).to_have_count(1)
    assert "max|Δ|" not in section.locator("th").all_text_contents()
    page.check("#diff-stats")  # applies at once, as a step Back undoes
    expect(section.locator("th", has_text="rel L2")).to_have_count(1)
    assert "stats=1" in page.url
    page.go_back()
    expect(section.locator("th", has_text="rel L2")).to_have_count(0)
    assert "stats=1" not in page.url and "diff=" in page.url
    page.go_forward()
    expect(section.locator("th", has_text="rel L2")).to_have_count(1)
    kernel = section.locator('tr[data-name="model/hidden/kernel"] td')
    max_abs, mean_abs, rel_l2 = (float(kernel.nth(i).text_content()) for i in (3, 4, 5))
    assert max_abs >= mean_abs > 0 and rel_l2 > 0
    assert all((t := kernel.nth(i).text_content()) == format(float(t), ".3g") for i in (3, 4, 5))
    page.reload()
    expect(section.locator("th", has_text="rel L2")).to_have_count(1)
    assert page.problems == []

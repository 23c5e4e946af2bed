// The runs page, the UI's first screen: the runs table with param and metric columns, searched
// and sorted with the language of "runs list --where/--sort", and the charted runs' metrics as
// small multiples. The page state (search, filters, sort, columns, selection, metrics, chart
// options) lives in the URL, so a view can be bookmarked or shared. The charts follow the
// table: a run the search hides is not drawn. While a run is live, table and charts refresh.

import { api, chartHref, el, isLive, link, num, runHref, scroller, showError, when } from "./common.js";
import { COLORS, ChartGrid, rememberRuns, runColor } from "./chart.js";

const POLL_MS = 2000;
const IDLE_POLL_MS = 10000;
// Runs charted when none is selected: the table's first ones (its best, once sorted by a metric),
// as many as there are colours; the page says when the table has more.
const AUTO_CHARTED = COLORS.length;
// Rows drawn at first; "show more" adds as many (kept in the URL as rows=N). A thousand rows
// would push the charts below them all and take the browser a while to lay out.
const PAGE_ROWS = 100;
const AGGS = ["last", "min", "max", "best"];
// [header, sort field or null, cell, numeric]: the run's own fields around the chosen columns.
const LEADING = [
  ["name", "name", (r) => link(runHref(r.name), r.name, "run-link")],
  ["status", "status", (r) => el("span", { className: `status ${r.status}`, text: r.status })],
];
const TRAILING = [
  ["last step", "last_step", (r) => (r.last_step === null ? "" : String(r.last_step)), true],
  ["checkpoints", "checkpoints", (r) => String(r.checkpoints), true],
  ["created", "created", (r) => when(r.created_at)],
  ["tags", null, (r) => el("span", {}, ...Object.entries(r.tags).map(([k, v]) => el("span", { className: "tag", text: `${k}=${v}` })))],
];

// The page state as the URL says it (the address opened, or the one Back returns to).
function readState() {
  const q = new URLSearchParams(location.search);
  return {
    where: q.get("where") || "",
    status: q.get("status") || "",
    tag: q.get("tag") || "",
    name: q.get("name") || "",
    sort: q.get("sort") || "",
    columns: q.getAll("col"),
    selected: q.getAll("run"),
    keys: q.getAll("key"),
    log: q.get("log") === "1",
    smoothing: Math.min(0.99, Math.max(0, Number(q.get("smooth")) || 0)),
    x: ["relative", "wall"].includes(q.get("x")) ? q.get("x") : "step",
    rows: Math.max(PAGE_ROWS, Math.floor(Number(q.get("rows")) || 0)),
  };
}
const state = readState();
let table = { columns: [], choices: { params: [], metrics: [], tags: [] }, runs: [], notes: [] };
const grid = new ChartGrid(document.getElementById("charts"));

// The state into the URL. A user's step (a search, a sort, a column) is a new history entry, so
// that Back undoes it ("popstate" below); the rest (selection, chart options, the metrics picked
// for the runs charted) amends the current one, or Back would replay every click.
function saveState({ push = false } = {}) {
  const out = new URLSearchParams();
  for (const k of ["where", "status", "tag", "name", "sort"]) if (state[k]) out.set(k, state[k]);
  for (const c of state.columns) out.append("col", c);
  for (const r of state.selected) out.append("run", r);
  for (const k of state.keys) out.append("key", k);
  if (state.log) out.set("log", "1");
  if (state.smoothing) out.set("smooth", String(state.smoothing));
  if (state.x !== "step") out.set("x", state.x);
  if (state.rows > PAGE_ROWS) out.set("rows", String(state.rows));
  const next = "/" + (out.toString() ? "?" + out : "");
  if (push && next !== location.pathname + location.search) history.pushState(null, "", next);
  else history.replaceState(null, "", next);
}

// The runs the charts draw: the selected ones the table shows, else the table's first ones.
function charted() {
  const shown = table.runs.map((r) => r.name);
  if (!state.selected.length) return shown.slice(0, Math.min(AUTO_CHARTED, state.rows));
  return state.selected.filter((name) => shown.includes(name));
}

async function loadRuns() {
  const box = document.getElementById("runs-error");
  try {
    const query = { where: state.where, status: state.status, tag: state.tag, name: state.name, sort: state.sort, column: state.columns };
    const before = table;
    table = await api("table", query);
    // A name no run has (a misspelt metric in the search or the sort): the note says so, and
    // the table keeps the columns it had rather than one for the misspelt name (and, for a
    // search, none of the params: no run matched, so none differ).
    if (table.notes.length && !state.columns.length && (state.where || state.sort)) {
      // (Opened with the misspelt search or sort: the columns the table has without them.)
      const columns = before.columns.length ? before.columns : (await api("table", { ...query, where: "", sort: "" })).columns;
      const kept = await api("table", { ...query, column: columns });
      table = { ...kept, defaults: true, choices: kept.runs.length || !before.columns.length ? kept.choices : before.choices };
    }
    // Names no run has (a misspelt metric in the search or a column), with the closest.
    box.replaceChildren(...table.notes.map((note) => el("p", { className: "error hint search-note", text: note })));
  } catch (err) {
    // A bad search or column: said where it was typed; the table empties (nothing matched it),
    // down to its columns: those were the previous search's, not this one's.
    showError(box, err);
    box.firstChild.id = "search-error";
    table = { ...table, runs: [], columns: [] };
  }
  rememberRuns(table.runs);
  renderRuns();
  renderChooser();
}

function header(text, field, numeric, [sortField, desc]) {
  const th = el("th", { className: [field ? "sortable" : "", numeric ? "num" : "", field && field === sortField ? "sorted" : "", field && field === sortField && desc ? "desc" : ""].join(" ").trim() });
  th.append(text);
  if (field) {
    th.dataset.sort = field;
    th.title = `sort by ${field}`;
    th.tabIndex = 0; // sortable from the keyboard too (Enter or Space)
    th.setAttribute("aria-sort", field === sortField ? (desc ? "descending" : "ascending") : "none");
    const sortBy = () => {
      // Again: the other way. First: a metric by its best first (the highest accuracy, the
      // lowest loss, as ".best" ranks it), anything else ascending.
      state.sort = field === sortField ? (desc ? field : `-${field}`) : bestFirst(field) ? `-${field}` : field;
      saveState({ push: true });
      loadRuns().then(() => refreshCharts());
    };
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        sortBy();
      }
    });
  }
  return th;
}

// Words of metric names whose highest value is the best (ckptstore/retention.py HIGHER_IS_BETTER,
// resolve_mode): any column of such a metric (last, min, max, best) sorts highest first at the
// first click, the others lowest first.
const HIGHER_IS_BETTER = new Set(["acc", "accuracy", "auc", "precision", "recall", "f1", "fmeasure", "fbeta", "iou", "miou",
  "map", "ap", "dice", "r2", "top1", "top5", "bleu", "rouge", "ndcg", "psnr", "ssim", "score"]);
function higherIsBetter(metric) {
  return metric.toLowerCase().split(/[^a-z0-9]+/).some((w) => w && (HIGHER_IS_BETTER.has(w) || w.startsWith("acc")));
}
function bestFirst(field) {
  const [kind, name] = parseLabel(field);
  return kind === "metrics" && higherIsBetter(name);
}

// A field of the search language as the store writes it: a name of other characters than
// letters, digits, "_" and "-" quoted ('metrics."top-1 acc".max'), so that it sorts as it is.
function fieldLabel(kind, name, agg = "") {
  const plain = /^([A-Za-z_][A-Za-z0-9_-]*|\d+)$/.test(name);
  return `${kind}.${plain ? name : '"' + name.replace(/"/g, '""') + '"'}${agg ? "." + agg : ""}`;
}

// A column's parts: "metrics.\"a.b\".min" is ["metrics", "a.b", "min"].
function parseLabel(col) {
  const m = /^(\w+)\.(?:"((?:[^"]|"")*)"|([^.]+(?:\.[^.]+)*?))(?:\.(last|min|max|best))?$/.exec(col);
  if (!m) return [col, "", ""];
  return [m[1], m[2] !== undefined ? m[2].replace(/""/g, '"') : m[3], m[4] || ""];
}

// "metrics.val_loss.min" as a header: the name, and what of it in small type.
function columnTitle(col) {
  const [kind, name, agg] = parseLabel(col);
  const what = kind === "params" ? "param" : kind === "tags" ? "tag" : kind === "metrics" ? agg || "last" : "";
  return el("span", { className: "col-title" }, el("span", { text: name || col }), el("small", { text: what }));
}

function renderRuns() {
  const sort = state.sort.startsWith("-") ? [state.sort.slice(1), true] : [state.sort, false];
  const head = el("tr", {}, el("th", { text: "chart" }),
    ...LEADING.map(([h, field]) => header(h, field, false, sort)),
    ...table.columns.map((col) => { const th = header(columnTitle(col), col, !col.startsWith("tags."), sort); th.dataset.col = col; return th; }),
    ...TRAILING.map(([h, field, , numeric]) => header(h, field, numeric, sort)));
  const drawn = charted();
  const rows = table.runs.slice(0, state.rows).map((r) => {
    const box = el("input", { type: "checkbox", className: "select-run", checked: state.selected.includes(r.name), title: `chart ${r.name}` });
    box.dataset.run = r.name;
    box.addEventListener("change", () => toggle(r.name, box.checked));
    const swatch = drawn.includes(r.name) ? el("span", { className: "swatch", text: "■", title: "line colour" }) : null;
    if (swatch) {
      swatch.style.color = runColor(r.name);
      swatch.dataset.color = swatch.style.color;
    }
    const cells = [
      el("td", {}, box, " ", swatch),
      ...LEADING.map(([, field, cell]) => el("td", { dataset: { col: field } }, cell(r))),
      ...table.columns.map((col) => el("td", { className: col.startsWith("tags.") ? "" : "num", dataset: { col } }, num(r.values[col]))),
      ...TRAILING.map(([, field, cell, numeric]) => el("td", { className: numeric ? "num" : "", dataset: { col: field || "tags" } }, cell(r))),
    ];
    const tr = el("tr", {}, ...cells);
    tr.dataset.run = r.name;
    return tr;
  });
  const total = table.runs.length;
  const more = total - rows.length;
  const showMore = more > 0 ? el("button", { type: "button", id: "more-runs", text: `show ${Math.min(more, PAGE_ROWS)} more` }) : null;
  showMore?.addEventListener("click", () => {
    state.rows += PAGE_ROWS;
    saveState();
    renderRuns();
  });
  document.getElementById("runs").replaceChildren(
    scroller(el("table", { className: "grid", id: "runs-table" }, el("thead", {}, head), el("tbody", {}, ...rows))),
    ...(more > 0 ? [el("p", { className: "note", id: "runs-more" }, `the first ${rows.length} of ${total} runs `, showMore)] : []));
  document.getElementById("runs-count").textContent = `${total} run${total === 1 ? "" : "s"}`;
  // Charted without a selection: the first runs; said when the table has more.
  const limit = document.getElementById("charts-limit");
  limit.textContent = !state.selected.length && rows.length > drawn.length
    ? `charting the first ${drawn.length} of the ${total} runs (tick runs to chart others)` : "";
}

// The column chooser: every param, metric (last/min/max/best) and tag that a run matching the
// search has, listed or not (the server reads them in one query).
function renderChooser() {
  const shown = new Set(table.columns);
  const pick = (col, text) => {
    const box = el("input", { type: "checkbox", className: "column-pick", checked: shown.has(col) });
    box.dataset.col = col;
    box.addEventListener("change", () => {
      const now = table.columns.filter((c) => c !== col);
      state.columns = box.checked ? [...now, col] : now;
      saveState({ push: true });
      loadRuns();
    });
    return el("label", { className: "pick", title: col }, box, text);
  };
  const { params, metrics, tags } = table.choices;
  const reset = el("button", { type: "button", id: "columns-default", text: "defaults" });
  reset.addEventListener("click", () => { state.columns = []; saveState({ push: true }); loadRuns(); });
  document.getElementById("columns-choices").replaceChildren(
    metrics.length ? el("div", { className: "pick-group" }, el("b", { text: "metrics" }),
      ...metrics.map((m) => el("span", { className: "pick-row" }, el("span", { text: m }), ...AGGS.map((a) => pick(fieldLabel("metrics", m, a), a))))) : null,
    params.length ? el("div", { className: "pick-group" }, el("b", { text: "params" }), ...params.map((p) => pick(fieldLabel("params", p), p))) : null,
    tags.length ? el("div", { className: "pick-group" }, el("b", { text: "tags" }), ...tags.map((t) => pick(fieldLabel("tags", t), t))) : null,
    el("div", {}, reset, el("span", { className: "muted", text: table.defaults ? " showing the defaults: the fields sorted and searched by, what KeepBest ranks, the params that differ" : "" })),
  );
}

async function toggle(name, on) {
  state.selected = on ? [...new Set([...state.selected, name])] : state.selected.filter((r) => r !== name);
  saveState();
  renderRuns();
  await refreshCharts({ range: null });
}

// The metrics to draw: those in the URL the charted runs have, else the usual suspects.
function defaultKeys(keys) {
  const usual = keys.filter((k) => /^(val_)?(loss|acc|accuracy)$/.test(k));
  return (usual.length ? usual : keys).slice(0, 4);
}

async function loadKeys(runs) {
  // No run (a search that matches none): the metric picks stay as they were, for the next runs.
  if (!runs.length && document.querySelector(".metric-pick")) return;
  const keys = runs.length ? await api("keys", { run: runs }).catch(() => []) : [];
  const kept = state.keys.filter((k) => keys.includes(k));
  if (keys.length) state.keys = kept.length ? kept : defaultKeys(keys);
  const picks = keys.map((k) => {
    const box = el("input", { type: "checkbox", className: "metric-pick", checked: state.keys.includes(k) });
    box.dataset.key = k;
    box.addEventListener("change", () => {
      state.keys = box.checked ? [...state.keys, k] : state.keys.filter((x) => x !== k);
      saveState();
      drawCharts(charted(), { range: null });
    });
    return el("label", { className: "pick" }, box, k);
  });
  document.getElementById("metric-picks").replaceChildren(...(keys.length ? [el("span", { className: "muted", text: "metrics: " }), ...picks] : []));
  const compare = document.getElementById("compare-link");
  compare.textContent = runs.length ? "link to these runs" : "";
  compare.href = chartHref(runs);
  saveState();
}

async function drawCharts(runs, options = {}) {
  const box = document.getElementById("chart-error");
  try {
    const keys = runs.length ? state.keys.filter((k) => [...document.querySelectorAll(".metric-pick")].some((b) => b.dataset.key === k)) : [];
    if (!runs.length) document.getElementById("charts").replaceChildren(el("p", { className: "muted", id: "charts-empty", text: "No run to chart: select runs in the table (or widen the search)." }));
    else document.getElementById("charts-empty")?.remove();
    await grid.show(runs, keys, { log: state.log, smoothing: state.smoothing, x: state.x, ...options });
    box.replaceChildren();
  } catch (err) {
    showError(box, err);
  }
}

let chartedBefore = "";
async function refreshCharts(options = {}, runs = charted()) {
  const same = JSON.stringify(runs) === chartedBefore;
  chartedBefore = JSON.stringify(runs);
  if (!same) await loadKeys(runs);
  await drawCharts(runs, options);
}

document.getElementById("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  state.where = document.getElementById("search").value.trim();
  state.status = document.getElementById("f-status").value;
  state.tag = document.getElementById("f-tag").value.trim();
  state.name = document.getElementById("f-name").value.trim();
  state.rows = PAGE_ROWS;
  saveState({ push: true });
  loadRuns().then(() => refreshCharts());
});
// A status picked applies at once, as a search does on Enter.
document.getElementById("f-status").addEventListener("change", () => document.getElementById("filters").requestSubmit());
document.getElementById("search-help-link").addEventListener("click", (e) => {
  e.preventDefault();
  const help = document.getElementById("search-help");
  help.hidden = !help.hidden;
});
document.getElementById("log").addEventListener("change", (e) => {
  state.log = e.target.checked;
  saveState();
  grid.restyle({ log: state.log });
});
const smoothing = document.getElementById("smoothing");
smoothing.addEventListener("input", () => {
  state.smoothing = Number(smoothing.value);
  document.getElementById("smoothing-value").textContent = smoothing.value;
  saveState();
  grid.restyle({ smoothing: state.smoothing });
});
document.getElementById("x-axis").addEventListener("change", (e) => {
  state.x = e.target.value;
  saveState();
  drawCharts(charted(), { x: state.x, range: null });
});
document.getElementById("reset-zoom").addEventListener("click", () => grid.resetZoom());
document.getElementById("charts").addEventListener("chart-error", (e) => showError(document.getElementById("chart-error"), e.detail));

// Live view: every 2 s while a listed run is live (its row and, if charted, its lines follow
// it), else every 10 s (to notice a run that starts or is resumed). A run that finished, failed
// or crashed (killed: its heartbeat stopped) is not live, so the fast polling stops with it.
// Nothing while the tab is hidden.
const nextPoll = () => (table.runs.some(isLive) ? POLL_MS : IDLE_POLL_MS);

async function poll() {
  if (!document.hidden) {
    const live = () => charted().some((name) => table.runs.find((r) => r.name === name && isLive(r)));
    const wasLive = live();
    await loadRuns();
    if (wasLive || live()) await refreshCharts();
  }
  setTimeout(poll, nextPoll());
}

// The controls as the state says.
function showState() {
  document.getElementById("search").value = state.where;
  document.getElementById("f-status").value = state.status;
  document.getElementById("f-tag").value = state.tag;
  document.getElementById("f-name").value = state.name;
  document.getElementById("log").checked = state.log;
  smoothing.value = String(state.smoothing);
  document.getElementById("smoothing-value").textContent = String(state.smoothing);
  document.getElementById("x-axis").value = state.x;
}

// Back (or Forward) to an earlier search, sort or columns: the view that entry saved.
window.addEventListener("popstate", async () => {
  Object.assign(state, readState());
  showState();
  await loadRuns();
  chartedBefore = ""; // the metric picks too: redrawn from the restored state
  await refreshCharts({ range: null });
});

showState();
// Runs named in the URL are charted at once, while the table loads (sorting a thousand runs by a
// metric takes the database a while); redrawn only if the table hides some of them.
const early = state.selected.length ? refreshCharts({ range: null }, state.selected) : null;
await loadRuns();
if (early) {
  await early;
  grid.recolor();
}
if (!early || JSON.stringify(charted()) !== chartedBefore) await refreshCharts({ range: null });
setTimeout(poll, nextPoll());

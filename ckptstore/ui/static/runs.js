// The runs page: a filterable, sortable table of runs; the selected runs' metric on a chart.
// The page state (filters, sort, selection, metric, log scale) lives in the URL, so a view can
// be bookmarked or shared. While a run is live, the table and the chart refresh themselves.

import { api, chartHref, el, isLive, link, runHref, showError, when } from "./common.js";
import { COLORS, MetricChart } from "./chart.js";

const POLL_MS = 2000;
const IDLE_POLL_MS = 10000;
const COLUMNS = [
  // [header, sort key or null, cell]
  ["name", "name", (r) => link(runHref(r.name), r.name, "run-link")],
  ["status", "status", (r) => el("span", { className: `status ${r.status}`, text: r.status })],
  ["last step", "last_step", (r) => (r.last_step === null ? "" : String(r.last_step))],
  ["checkpoints", "checkpoints", (r) => String(r.checkpoints)],
  ["created", "created_at", (r) => when(r.created_at)],
  ["ended", "ended_at", (r) => when(r.ended_at)],
  ["tags", null, (r) => el("span", {}, ...Object.entries(r.tags).map(([k, v]) => el("span", { className: "tag", text: `${k}=${v}` })))],
];
const NUMERIC = new Set(["last_step", "checkpoints"]);

const url = new URL(location.href);
const state = {
  status: url.searchParams.get("status") || "",
  tag: url.searchParams.get("tag") || "",
  name: url.searchParams.get("name") || "",
  sort: url.searchParams.get("sort") || "-created_at",
  selected: url.searchParams.getAll("run"),
  key: url.searchParams.get("key") || "",
  log: url.searchParams.get("log") === "1",
};
let runs = [];
const chart = new MetricChart(document.getElementById("chart"));

function saveState() {
  const q = new URLSearchParams();
  for (const k of ["status", "tag", "name"]) if (state[k]) q.set(k, state[k]);
  if (state.sort !== "-created_at") q.set("sort", state.sort);
  for (const r of state.selected) q.append("run", r);
  if (state.key) q.set("key", state.key);
  if (state.log) q.set("log", "1");
  history.replaceState(null, "", "/" + (q.toString() ? "?" + q : ""));
}

async function loadRuns() {
  const box = document.getElementById("runs-error");
  try {
    runs = await api("runs", { status: state.status, tag: state.tag, name: state.name, sort: state.sort });
    box.replaceChildren();
  } catch (err) {
    showError(box, err);
    runs = [];
  }
  renderRuns();
}

function renderRuns() {
  const [sortKey, desc] = state.sort.startsWith("-") ? [state.sort.slice(1), true] : [state.sort, false];
  const head = el("tr", {}, el("th", { text: "chart" }), ...COLUMNS.map(([h, key]) => {
    const th = el("th", { text: h, className: [key ? "sortable" : "", NUMERIC.has(key) ? "num" : "", key === sortKey ? "sorted" : "", key === sortKey && desc ? "desc" : ""].join(" ").trim() });
    if (key) {
      th.dataset.sort = key;
      th.addEventListener("click", () => {
        state.sort = key === sortKey && !desc ? `-${key}` : key;
        saveState();
        loadRuns();
      });
    }
    return th;
  }));
  const rows = runs.map((r) => {
    const box = el("input", { type: "checkbox", className: "select-run", checked: state.selected.includes(r.name), title: `chart ${r.name}` });
    box.dataset.run = r.name;
    box.addEventListener("change", () => toggle(r.name, box.checked));
    const i = state.selected.indexOf(r.name);
    const swatch = i >= 0 ? el("span", { text: "■", title: "line colour" }) : null;
    if (swatch) swatch.style.color = COLORS[i % COLORS.length];
    const tr = el("tr", {}, el("td", {}, box, " ", swatch),
      ...COLUMNS.map(([, key, cell]) => el("td", { className: NUMERIC.has(key) ? "num" : "" }, cell(r))));
    tr.dataset.run = r.name;
    return tr;
  });
  document.getElementById("runs").replaceChildren(el("table", { className: "grid", id: "runs-table" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  document.getElementById("runs-count").textContent = `${runs.length} run${runs.length === 1 ? "" : "s"}`;
}

async function toggle(name, on) {
  state.selected = on ? [...new Set([...state.selected, name])] : state.selected.filter((r) => r !== name);
  saveState();
  renderRuns();
  await loadKeys();
  await drawChart({ range: null });
}

async function loadKeys() {
  const select = document.getElementById("metric");
  const keys = state.selected.length ? await api("keys", { run: state.selected }).catch(() => []) : [];
  const before = state.key;
  if (!keys.includes(state.key)) state.key = keys.includes("loss") ? "loss" : keys[0] || "";
  select.replaceChildren(...keys.map((k) => el("option", { value: k, text: k, selected: k === state.key })));
  const compare = document.getElementById("compare-link");
  compare.textContent = state.selected.length ? "link to this comparison" : "";
  compare.href = chartHref(state.selected);
  saveState();
  return state.key !== before;
}

async function drawChart(options = {}) {
  const box = document.getElementById("chart-error");
  try {
    await chart.show(state.selected, state.key, { log: state.log, range: "range" in options ? options.range : chart.range });
    box.replaceChildren();
  } catch (err) {
    showError(box, err);
  }
}

document.getElementById("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  state.status = document.getElementById("f-status").value;
  state.tag = document.getElementById("f-tag").value.trim();
  state.name = document.getElementById("f-name").value.trim();
  saveState();
  loadRuns();
});
document.getElementById("metric").addEventListener("change", (e) => {
  state.key = e.target.value;
  saveState();
  drawChart({ range: null });
});
document.getElementById("log").addEventListener("change", (e) => {
  state.log = e.target.checked;
  saveState();
  drawChart();
});
document.getElementById("reset-zoom").addEventListener("click", () => chart.resetZoom());
document.getElementById("chart").addEventListener("chart-error", (e) => showError(document.getElementById("chart-error"), e.detail));

// Live view: every 2 s while a listed run is live (its row and, if charted, its line follow
// it), else every 10 s (to notice a run that starts or is resumed). A run that finished, failed
// or crashed (killed: its heartbeat stopped) is not live, so the fast polling stops with it.
// Nothing while the tab is hidden.
const nextPoll = () => (runs.some(isLive) ? POLL_MS : IDLE_POLL_MS);

async function poll() {
  if (!document.hidden) {
    const charted = () => state.selected.some((name) => runs.find((r) => r.name === name && isLive(r)));
    const wasCharted = charted();
    await loadRuns();
    if (wasCharted || charted()) await drawChart();
  }
  setTimeout(poll, nextPoll());
}

document.getElementById("f-status").value = state.status;
document.getElementById("f-tag").value = state.tag;
document.getElementById("f-name").value = state.name;
document.getElementById("log").checked = state.log;
// A metric named in the URL is drawn at once, while the metric list loads (listing a long
// run's metric names takes the database a while); it is redrawn only if the run lacks it.
const early = state.key && state.selected.length ? drawChart({ range: null }) : null;
await Promise.all([loadRuns(), loadKeys().then((changed) => (early && !changed ? early : drawChart({ range: null })))]);
setTimeout(poll, nextPoll());

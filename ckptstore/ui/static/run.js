// The run page: its metrics (a summary table and one chart each), params, tags, retention,
// checkpoints with sizes and aliases, exports; links to each checkpoint, export and alias.

import { aliasLinks, api, chartHref, checkpointHref, el, exportHref, exportsHref, fields, link, num, param, showMissing, size, table, when } from "./common.js";
import { ChartGrid, rememberRuns } from "./chart.js";

const content = document.getElementById("content");
const name = param("name");
// More charts than this and the page is a wall of them: the rest are a click away.
const MAX_CHARTS = 12;

// Metrics that count (the epoch keras.StoreCallback logs) have a last value but no best, as
// in the command line's tables (ckptstore/cli/views.py COUNTERS).
const COUNTERS = new Set(["epoch"]);

// A mapping (params, retention) as a table of names and values, a nested one as a table in its
// cell ({"keep_best": {"metric": "val_loss", "k": 1}}); "-" for none.
function valueTable(v, id) {
  if (v === null || v === undefined || (typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length)) {
    return el("span", { id, className: "muted", text: "-" });
  }
  if (typeof v !== "object" || Array.isArray(v)) return el("span", { id, text: num(v) });
  const t = fields(Object.entries(v).map(([k, x]) => [k, x !== null && typeof x === "object" && !Array.isArray(x) ? valueTable(x) : x === null ? "-" : num(x)]));
  t.classList.add("values");
  // A key may break after an underscore (keep_every_n_hours), never inside a word: at 390 px the
  // nested tables then leave their values the room to stay whole.
  t.querySelectorAll(":scope > tbody > tr > th").forEach((th) => {
    const parts = th.textContent.split("_");
    th.replaceChildren(...parts.flatMap((part, i) => (i < parts.length - 1 ? [`${part}_`, el("wbr")] : [part])));
  });
  if (id) t.id = id;
  return t;
}

// Last, min, max and best of each metric, with the steps of the last and best values; each
// step links to the checkpoint saved there, when there is one.
function summaryTable(summaries, checkpoints) {
  const saved = new Map(checkpoints.map((ck) => [ck.step, ck.ref]));
  const at = (step) => (step === null ? "" : saved.has(step) ? link(checkpointHref(saved.get(step)), String(step)) : String(step));
  const t = table(["metric", "last", "at step", "min", "max", "best", "at step", "best is"], summaries.map((s) => (COUNTERS.has(s.key)
    ? [s.key, num(s.last), at(s.last_step), "", "", "", "", "(a counter)"]
    : [s.key, num(s.last), at(s.last_step), num(s.min), num(s.max), num(s.best), at(s.best_step), s.mode])), "grid summary");
  t.querySelector("table").id = "metric-summary";
  t.querySelectorAll("tbody tr").forEach((tr, i) => {
    tr.dataset.key = summaries[i].key;
    if (COUNTERS.has(summaries[i].key)) tr.classList.add("counter");
    else tr.children[5].classList.add("best");
  });
  return t;
}

try {
  if (!name) throw new Error("no run named: open this page from the runs table");
  const { run, summaries, checkpoints, exports } = await api("run", { name });
  rememberRuns([run]); // its colour on the runs page
  document.title = `${run.name} · ckptstore`;
  const charts = el("div", { className: "charts", id: "charts" });
  const keys = run.metrics.slice(0, MAX_CHARTS);
  content.replaceChildren(...[
    el("h1", { id: "run-name", text: run.name }),
    el("p", { className: "links" }, link(chartHref([run.name]), "compare on the runs page"), " · ",
      link(exportsHref(run.name), `exports (${exports.length})`)),
    fields([
      ["status", el("span", { className: `status ${run.status}`, text: run.status })],
      ["created", when(run.created_at)],
      ["ended", when(run.ended_at) || "-"],
      ["last step", run.last_step === null ? "-" : String(run.last_step)],
      ["params", valueTable(run.params, "params")],
      ["tags", el("span", { id: "tags" }, ...Object.entries(run.tags).map(([k, v]) => el("span", { className: "tag", text: `${k}=${v}` })))],
      ["retention", valueTable(run.retention, "retention")],
    ]),
    el("h2", { text: `Metrics (${run.metrics.length})` }),
    summaries.length ? summaryTable(summaries, checkpoints) : el("p", { className: "muted", text: "no metrics logged" }),
    run.metrics.length > MAX_CHARTS ? el("p", { className: "note", text: `charts of the first ${MAX_CHARTS} metrics; the runs page charts any` }) : null,
    charts,
    el("h2", { text: `Checkpoints (${checkpoints.length})` }),
    checkpoints.length
      ? table(["step", "ref", "format", "state", "size", "files", "aliases", "created"], checkpoints.map((ck) => [
          link(checkpointHref(ck.ref), String(ck.step), "checkpoint-link"),
          ck.ref, ck.format, ck.pinned ? `${ck.state}, pinned` : ck.state, size(ck.total_bytes), String(ck.files.length),
          aliasLinks(ck.aliases), when(ck.created_at),
        ]))
      : el("p", { className: "muted", text: "no checkpoints" }),
    el("h2", { text: `Exports (${exports.length})` }),
    exports.length
      ? table(["ref", "step", "kind", "nodes", "size", "inputs", "outputs", "aliases", "created"], exports.map((e) => [
          link(exportHref(e.ref, run.name), e.ref, "export-link"), e.step === null ? "-" : String(e.step), e.kind, String(e.node_count), size(e.size),
          e.inputs.map((i) => i.name).join(", "), e.outputs.map((o) => o.name).join(", "),
          aliasLinks(e.aliases), when(e.created_at),
        ]))
      : el("p", { className: "muted", text: "no exports" }),
  ].filter(Boolean));
  if (keys.length) await new ChartGrid(charts, { height: 220 }).show([run.name], keys);
  else charts.dataset.ready = "1";
} catch (err) {
  showMissing(content, err, "Run");
}

// The run page: params, tags, retention, metrics, checkpoints with sizes and aliases, exports.

import { api, chartHref, checkpointHref, el, fields, link, param, showError, size, table, when } from "./common.js";

const content = document.getElementById("content");
const name = param("name");

function json(v) {
  return v === null || v === undefined || (typeof v === "object" && !Object.keys(v).length) ? "-" : JSON.stringify(v, null, 2);
}

try {
  if (!name) throw new Error("no run named: open this page from the runs table");
  const { run, checkpoints, exports } = await api("run", { name });
  document.title = `${run.name} · ckptstore`;
  content.replaceChildren(
    el("h1", { id: "run-name", text: run.name }),
    el("p", {}, link(chartHref([run.name]), "chart its metrics")),
    fields([
      ["status", el("span", { className: `status ${run.status}`, text: run.status })],
      ["created", when(run.created_at)],
      ["ended", when(run.ended_at) || "-"],
      ["last step", run.last_step === null ? "-" : String(run.last_step)],
      ["metrics", run.metrics.join(", ") || "-"],
      ["params", el("code", { id: "params", text: json(run.params) })],
      ["tags", el("span", { id: "tags" }, ...Object.entries(run.tags).map(([k, v]) => el("span", { className: "tag", text: `${k}=${v}` })))],
      ["retention", el("code", { id: "retention", text: json(run.retention) })],
    ]),
    el("h2", { text: `Checkpoints (${checkpoints.length})` }),
    checkpoints.length
      ? table(["step", "ref", "format", "state", "size", "files", "aliases", "created"], checkpoints.map((ck) => [
          link(checkpointHref(ck.ref), String(ck.step), "checkpoint-link"),
          ck.ref, ck.format, ck.state, size(ck.total_bytes), String(ck.files.length),
          ck.aliases.join(", "), when(ck.created_at),
        ]))
      : el("p", { className: "muted", text: "no checkpoints" }),
    el("h2", { text: `Exports (${exports.length})` }),
    exports.length
      ? table(["ref", "step", "kind", "nodes", "size", "inputs", "outputs", "aliases", "created"], exports.map((e) => [
          e.ref, e.step === null ? "-" : String(e.step), e.kind, String(e.node_count), size(e.size),
          e.inputs.map((i) => i.name).join(", "), e.outputs.map((o) => o.name).join(", "),
          e.aliases.join(", "), when(e.created_at),
        ]))
      : el("p", { className: "muted", text: "no exports" }),
  );
} catch (err) {
  showError(content, err);
}

// The exports page: every frozen graph and SavedModel of the store (or of one run), as
// "exports list" prints them, with links to their run, checkpoint and aliases.

import { aliasLinks, api, checkpointHref, el, link, param, runHref, showError, size, table, when } from "./common.js";

const content = document.getElementById("content");
const run = param("run");

const names = (items) => items.map((i) => i.name).join(", ") || "-";

try {
  if (run) {
    document.getElementById("exports-title").textContent = `Exports of ${run}`;
    document.title = `Exports of ${run} · ckptstore`;
  }
  const exports = await api("exports", { run });
  if (!exports.length) {
    // Exports are made from Python, by the run that trains ("ckptstore export" only writes an
    // existing export out to a directory).
    content.replaceChildren(el("p", { className: "muted", id: "no-exports",
      text: "no exports yet: a run makes one with run.freeze(...) (a frozen graph), run.export_saved_model(...) or run.export_keras(...)" }));
  } else {
    const t = table(["ref", "run", "from checkpoint", "kind", "nodes", "size", "inputs", "outputs", "aliases", "created"], exports.map((e) => [
      el("span", { className: "export-ref", text: e.ref }),
      link(runHref(e.run), e.run, "run-link"),
      e.step === null ? "-" : e.checkpoint_id === null ? `step ${e.step}` : link(checkpointHref(`${e.run}@${e.step}`), `${e.run}@${e.step}`),
      e.kind, String(e.node_count), size(e.size), names(e.inputs), names(e.outputs), aliasLinks(e.aliases), when(e.created_at),
    ]));
    t.querySelector("table").id = "exports-table";
    t.querySelectorAll("tbody tr").forEach((tr, i) => { tr.dataset.ref = exports[i].ref; tr.id = `export-${exports[i].ref}`; });
    content.replaceChildren(t);
    // Opened from a link to one export (an alias, a checkpoint): its row, shown and marked. The
    // rows are drawn after the browser looked for the "#export-..." target, so it is done here.
    const wanted = decodeURIComponent(location.hash.slice(1));
    const row = wanted && document.getElementById(wanted);
    if (row) {
      row.classList.add("target");
      row.scrollIntoView({ block: "center" });
    }
  }
} catch (err) {
  showError(content, err);
}

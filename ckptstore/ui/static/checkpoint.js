// The checkpoint page: what it is, its variables, and a diff against any other checkpoint.
// The diff is drawn from whatever the API returns: each list in it (added, removed, changed,
// and any kind a later version adds) becomes a section, each number a line, so new kinds of
// change show up without a change here.

import { aliasLinks, api, brief, el, exportHref, fields, g, link, param, runHref, scroller, shape, showError, showMissing, size, table, when } from "./common.js";

const content = document.getElementById("content");
const ref = param("ref");

// The statuses of a diff by value, in the order the command line's summary names them.
const STATUSES = ["identical", "value changed", "added", "removed", "dtype/shape changed", "unknown"];

const TF2_SUFFIX = /\/\.ATTRIBUTES\/VARIABLE_VALUE$/;

// Without a recorded name (not saved from a Keras model), the key without TF2's suffix, a
// name the CLI takes too ("model/a" for "model/a/.ATTRIBUTES/VARIABLE_VALUE").
const shownName = (v) => v.readable || v.name.replace(TF2_SUFFIX, "");

// The variables under the names people know them by (recorded at save: "model/hidden/kernel",
// as "vars" prints them), grouped by layer: a weight under its layer, an optimizer slot
// ("model/hidden/kernel/adam/momentum") under its weight's layer, next to the weight. The key
// in the checkpoint file stays at hand as the row's tooltip.
// ``others``: more names a variable may be a slot of (a diff's section lists only some of the
// checkpoint's variables, a changed slot without its unchanged weight).
export function groupVariables(variables, others = []) {
  const named = variables.map((v) => ({ ...v, shown: shownName(v) }));
  const weights = new Set([...named.map((v) => v.shown), ...others]);
  const groups = new Map();
  for (const v of named) {
    const parts = v.shown.split("/");
    // The longest other variable this one's name extends is its weight: a slot of it.
    let owner = null;
    for (let i = parts.length - 1; i > 0 && owner === null; i--) {
      const prefix = parts.slice(0, i).join("/");
      if (weights.has(prefix) && prefix !== v.shown) owner = prefix;
    }
    const base = owner || v.shown;
    const cut = base.lastIndexOf("/");
    const layer = cut > 0 ? base.slice(0, cut) : "";
    const label = owner ? [base.slice(cut + 1), v.shown.slice(owner.length + 1)] : [base.slice(cut + 1), null];
    if (!groups.has(layer)) groups.set(layer, []);
    groups.get(layer).push({ ...v, label, owner });
  }
  // Within a layer: each weight, then its slots.
  for (const rows of groups.values()) rows.sort((a, b) => (a.owner || a.shown).localeCompare(b.owner || b.shown) || (a.owner ? 1 : 0) - (b.owner ? 1 : 0) || a.shown.localeCompare(b.shown));
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
}

// Variables grouped by layer as rows of a table: a heading row per layer, then per variable its
// readable name (weight, and slot in grey) and the cells ``cells(v)`` gives; the key in the
// checkpoint file is the name's tooltip.
function groupedRows(variables, width, cells, others = []) {
  const body = el("tbody");
  const groups = groupVariables(variables, others);
  for (const [layer, rows] of groups) {
    // Variables all at the top (a tf.Module's "a", "b"): no heading to say so.
    const head = el("tr", { className: "group" }, el("th", { colSpan: width, text: layer || "(top level)" }));
    head.dataset.layer = layer;
    if (groups.length > 1 || layer) body.append(head);
    for (const v of rows) {
      const [weight, slot] = v.label;
      const cell = el("td", { className: "var-name", title: v.name }, weight, slot ? el("span", { className: "slot", text: ` · ${slot}` }) : null);
      const tr = el("tr", {}, cell, ...cells(v).map((c) => el("td", {}, c)));
      tr.dataset.name = v.shown;
      tr.dataset.key = v.name;
      body.append(tr);
    }
  }
  return body;
}

function gridOf(columns, body, props) {
  const head = el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { text: c }))));
  return scroller(el("table", { className: "grid variables", ...props }, head, body));
}

function variablesTable(variables) {
  return gridOf(["name", "dtype", "shape"], groupedRows(variables, 3, (v) => [v.dtype, shape(v.shape)]), { id: "variables" });
}

function typeOf(v) {
  return v ? `${v.dtype} ${shape(v.shape)}` : "";
}

// A diff by value (``variables`` with a status each, and ``summary``): the command line's
// summary line, then one section per status but "identical", one row per variable.
// A diff's variable as the variables table takes one: readable name, key as ``name``.
const asVariable = (v) => ({ ...v, readable: v.name === v.key ? null : v.name, name: v.key });

const stat = (v) => (typeof v === "number" ? g(v, 3) : brief(v));

function renderStatuses(box, diff, other) {
  // Every name of the diff: a slot is grouped under its weight in whichever section that is.
  const names = diff.variables.map((v) => shownName(asVariable(v)));
  const parts = [el("h2", { text: `Diff: ${ref} → ${other}` })];
  const s = diff.summary;
  const line = STATUSES.filter((k) => k !== "unknown" || s[k]).map((k) => `${s[k] || 0} ${k}`).join(", ");
  parts.push(el("p", { className: "diff-summary", text: line }));
  for (const status of STATUSES.filter((k) => k !== "identical")) {
    const items = diff.variables.filter((v) => v.status === status);
    if (!items.length) continue;
    const withStats = items.some((v) => v.stats);
    const columns = ["name", ref, other, ...(withStats ? ["max|Δ|", "mean|Δ|", "rel L2"] : [])];
    // The names and grouping of the variables table above: "name" is the readable name (the
    // key where none was recorded), the key goes to the tooltip.
    const cells = (v) => [
      typeOf(v.before), typeOf(v.after),
      // As "vars --diff --stats" prints them: three significant digits.
      ...(withStats ? (v.stats ? [v.stats.max_abs, v.stats.mean_abs, v.stats.rel_l2].map(stat) : ["", "", ""]) : []),
    ];
    const body = groupedRows(items.map(asVariable), columns.length, cells, names);
    const section = el("section", { className: "diff-kind" }, el("h3", { text: `${status} (${items.length})` }), gridOf(columns, body, {}));
    section.dataset.kind = status;
    parts.push(section);
  }
  box.replaceChildren(...parts);
}

function renderDiff(box, diff, other) {
  if (Array.isArray(diff.variables) && diff.summary) return renderStatuses(box, diff, other);
  const parts = [el("h2", { text: `Diff: ${ref} → ${other}` })];
  const counts = [];
  for (const [kind, value] of Object.entries(diff)) {
    if (Array.isArray(value)) counts.push(`${value.length} ${kind}`);
    else if (typeof value !== "object" || value === null) counts.push(`${value} ${kind}`);
  }
  parts.push(el("p", { className: "diff-summary", text: counts.join(", ") }));
  for (const [kind, value] of Object.entries(diff)) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      // A block of facts rather than a list of variables: shown as key / value lines.
      const section = el("section", { className: "diff-kind" }, el("h3", { text: kind }),
        fields(Object.entries(value).map(([k, v]) => [k, brief(v)])));
      section.dataset.kind = kind;
      parts.push(section);
      continue;
    }
    if (!Array.isArray(value) || !value.length) continue;
    const columns = [...new Set(value.flatMap((item) => (item && typeof item === "object" ? Object.keys(item) : ["value"])))];
    const rows = value.map((item) => columns.map((c) => {
      const v = item && typeof item === "object" ? item[c] : item;
      return c === "shape" ? shape(v) : brief(v);
    }));
    const section = el("section", { className: "diff-kind" }, el("h3", { text: `${kind} (${value.length})` }), table(columns, rows));
    section.dataset.kind = kind;
    parts.push(section);
  }
  box.replaceChildren(...parts);
}

// The exports frozen from this checkpoint, each a link to its row of the exports page; "none"
// rather than a link to a list without them.
function exportLinks(exports) {
  if (!exports.length) return el("span", { id: "checkpoint-exports", className: "muted", text: "none" });
  return el("span", { id: "checkpoint-exports" }, ...exports.map((e) => el("a", { className: "export-link tag", href: exportHref(e.ref, e.run), text: e.ref })));
}

async function diffAgainst(other, box, stats = false, push = false) {
  const url = new URL(location.href);
  url.searchParams.set("diff", other);
  if (stats) url.searchParams.set("stats", "1");
  else url.searchParams.delete("stats");
  // A diff the user asks for is a step Back undoes (the page is drawn again from its URL).
  if (push && url.href !== location.href) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  try {
    renderDiff(box, await api("diff", { ref, other, stats: stats ? 1 : null }), other);
  } catch (err) {
    showError(box, err);
  }
}

try {
  if (!ref) throw new Error("no checkpoint named: open this page from a run or the chart");
  const { checkpoint: ck, variables } = await api("checkpoint", { ref });
  document.title = `${ck.ref} · ckptstore`;
  // Choices for the diff: the other checkpoints of this run and every alias; any REF
  // can be typed as well (run@step, run@latest, an alias).
  const [run, aliases] = await Promise.all([api("run", { name: ck.run }), api("aliases").catch(() => [])]);
  const choices = [
    ...run.checkpoints.filter((c) => c.ref !== ck.ref).map((c) => c.ref),
    ...aliases.filter((v) => v.kind === "checkpoint" && !ck.aliases.includes(v.name)).map((v) => v.name),
  ];
  const input = el("input", { id: "diff-ref", name: "other", placeholder: "run@step or an alias", autocomplete: "off" });
  input.setAttribute("list", "diff-choices");
  const datalist = el("datalist", { id: "diff-choices" }, ...choices.map((c) => el("option", { value: c })));
  const pick = el("select", { id: "diff-pick" }, el("option", { value: "", text: "choose…" }), ...choices.map((c) => el("option", { value: c, text: c })));
  // Picking a checkpoint, or ticking the statistics, diffs at once (as the runs page's filters
  // apply at once); a REF typed in the box is diffed on Enter or the button.
  pick.addEventListener("change", () => {
    input.value = pick.value;
    if (pick.value) diffAgainst(pick.value, diffBox, stats.checked, true);
  });
  const diffBox = el("div", { id: "diff" });
  // Statistics read the changed tensors (as "vars --diff --stats"): asked for, not by default.
  const stats = el("input", { type: "checkbox", id: "diff-stats", checked: param("stats") === "1" });
  const form = el("form", { className: "diff-form", id: "diff-form" },
    el("label", { text: "Diff against " }), pick, input,
    el("label", { className: "pick", title: "max|Δ|, mean|Δ| and relative L2 of each changed float tensor (reads them)" }, stats, " with stats"),
    el("button", { type: "submit", text: "Diff" }), datalist);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) diffAgainst(input.value.trim(), diffBox, stats.checked, true);
  });
  stats.addEventListener("change", () => {
    if (input.value.trim()) diffAgainst(input.value.trim(), diffBox, stats.checked, true);
  });
  window.addEventListener("popstate", () => location.reload());
  content.replaceChildren(
    el("h1", { id: "checkpoint-ref", text: ck.ref }),
    fields([
      ["run", link(runHref(ck.run), ck.run, "run-link")],
      ["step", String(ck.step)],
      ["format", ck.format],
      ["size", size(ck.total_bytes)],
      ["aliases", aliasLinks(ck.aliases)],
      ["state", ck.pinned ? `${ck.state}, pinned` : ck.state],
      ["exports", exportLinks(run.exports.filter((e) => e.checkpoint_id === ck.id))],
      ["created", when(ck.created_at)],
      ["files", ck.files.map((f) => `${f.file_name} (${size(f.size)})`).join("\n")],
    ]),
    el("h2", { text: `Variables (${variables.length})` }),
    variablesTable(variables),
    el("h2", { text: "Compare" }),
    form,
    diffBox,
  );
  const preset = param("diff");
  if (preset) {
    input.value = preset;
    await diffAgainst(preset, diffBox, stats.checked);
  }
} catch (err) {
  // Back to the run the REF names, when it names one ("run@step").
  const run = ref && ref.includes("@") ? ref.slice(0, ref.indexOf("@")) : "";
  showMissing(content, err, "Checkpoint", run ? [runHref(run), `back to run ${run}`] : undefined);
}

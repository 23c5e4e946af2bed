// The aliases page: every alias, what it points at, and its history.

import { api, checkpointHref, el, exportHref, link, param, showError, table, when } from "./common.js";

const content = document.getElementById("content");

function target(kind, text) {
  if (!text) return "-";
  return kind === "export" || text.startsWith("export:") ? link(exportHref(text), text, "export-link") : link(checkpointHref(text), text);
}

try {
  const aliases = await api("aliases", { name: param("name") });
  if (!aliases.length) {
    content.replaceChildren(el("p", { className: "muted", text: "no aliases yet (create one with 'ckptstore alias NAME REF')" }));
  } else {
    content.replaceChildren(...aliases.map((v) => {
      const section = el("section", { className: "alias" },
        el("h2", { text: v.name }),
        el("p", {}, "→ ", target(v.kind, v.target), el("span", { className: "muted", text: ` (${v.kind}, ${when(v.updated_at)})` }),
          v.message ? el("span", { text: ` — ${v.message}` }) : null),
        table(["when", "action", "from", "to", "message"], v.history.map((h) => [
          when(h.at), h.action, target("", h.old_target), target("", h.new_target), h.message ? el("span", { className: "wrap", text: h.message }) : "",
        ]), "grid history"));
      section.dataset.alias = v.name;
      return section;
    }));
  }
} catch (err) {
  showError(content, err);
}


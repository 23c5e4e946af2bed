// Shared helpers of the pages. Every piece of store data reaches the page through textContent
// or an attribute set by property, never through innerHTML: a run named "<script>" is text.

export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

// GET /api/<path> with query parameters (arrays repeat the parameter); the parsed JSON.
export async function api(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) query.append(k, String(one));
  }
  const qs = query.toString();
  const res = await fetch(`/api/${path}${qs ? "?" + qs : ""}`, { headers: { Accept: "application/json" } });
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new ApiError(body.error || `HTTP ${res.status}`, res.status);
  return body;
}

// el("a", {href: "/run?...", className: "x", text: name}, child, ...): an element built safely.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "text") node.textContent = String(v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function link(href, text, className) {
  return el("a", { href, text, className });
}

// Whether a run may still grow: only "running". "finished", "failed" and "crashed" (running, but
// its process stopped sending heartbeats: the server derives it when read) are final until someone
// resumes the run, which makes it "running" again.
export const isLive = (run) => run.status === "running";

export const runHref = (name) => `/run?name=${encodeURIComponent(name)}`;
export const checkpointHref = (ref) => `/checkpoint?ref=${encodeURIComponent(ref)}`;
export const chartHref = (runs) => "/?" + runs.map((r) => `run=${encodeURIComponent(r)}`).join("&");

export function size(n) {
  if (n === null || n === undefined) return "";
  let v = n;
  for (const unit of ["B", "KiB", "MiB", "GiB"]) {
    if (v < 1024 || unit === "GiB") return unit === "B" ? `${v} B` : `${v.toFixed(1)} ${unit}`;
    v /= 1024;
  }
  return `${n} B`;
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

export function shape(dims) {
  if (dims === null || dims === undefined) return "[unknown]";
  return "[" + dims.map((s) => (s === null || s < 0 ? "?" : String(s))).join(",") + "]";
}

// A value of unknown form as short text: {dtype, shape} as "float32 [3,2]", others as JSON.
export function brief(v) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "object") return String(v);
  if (Array.isArray(v)) return v.map(brief).join(", ");
  if ("dtype" in v && "shape" in v) return `${v.dtype} ${shape(v.shape)}`;
  return JSON.stringify(v);
}

// A table with a header row; rows are arrays of cells (Nodes or text). It scrolls inside its
// own box when wider than the screen, so the page itself never scrolls sideways (a phone).
export function table(columns, rows, className = "grid") {
  const head = el("tr", {}, ...columns.map((c) => el("th", { text: c })));
  const body = el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c)))));
  return scroller(el("table", { className }, el("thead", {}, head), body));
}

// A table in a box that scrolls sideways when the table is wider than the screen; the edge it
// scrolls towards is marked (classes "more-left", "more-right", shaded by style.css), so a
// phone shows that there is more than the first columns.
export function scroller(node) {
  const box = el("div", { className: "table-wrap" }, node);
  const mark = () => {
    const more = box.scrollWidth - box.clientWidth;
    box.classList.toggle("more-left", more > 1 && box.scrollLeft > 1);
    box.classList.toggle("more-right", more > 1 && box.scrollLeft < more - 1);
  };
  box.addEventListener("scroll", mark, { passive: true });
  new ResizeObserver(mark).observe(box);
  new ResizeObserver(mark).observe(node);
  return box;
}

// A number as the command line prints it: Python's "{:.6g}" (0.0001, 1e-05, 0.123457, 1.5e+06;
// ckptstore/cli/output.py number), integers whole (a param's 64 is JSON's 64); anything else (a
// param's list, text) as JSON or text, as param_text does.
export function num(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
    return g(v, 6);
  }
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

// Python's format(v, f".{digits}g").
export function g(v, digits) {
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const [mantissa, exp] = v.toExponential(digits - 1).split("e");
  const x = Number(exp);
  const strip = (t) => (t.includes(".") ? t.replace(/0+$/, "").replace(/\.$/, "") : t);
  if (x >= -4 && x < digits) return strip(v.toFixed(digits - 1 - x));
  return `${strip(mantissa)}e${x < 0 ? "-" : "+"}${String(Math.abs(x)).padStart(2, "0")}`;
}

export const exportsHref = (run) => (run ? `/exports?run=${encodeURIComponent(run)}` : "/exports");
// One export: its row of the exports page (of its run's exports, when the run is known).
export const exportHref = (ref, run) => `${exportsHref(run)}#${encodeURIComponent(`export-${ref}`)}`;
export const aliasHref = (name) => `/aliases?name=${encodeURIComponent(name)}`;

// Aliases as links to their page (each with its history), or "-".
export function aliasLinks(names) {
  if (!names || !names.length) return "-";
  return el("span", { className: "aliases" }, ...names.map((n) => el("a", { className: "alias-link tag", href: aliasHref(n), text: n })));
}

// key / value rows, as "runs show" prints them.
export function fields(pairs) {
  return el("table", { className: "fields" },
    el("tbody", {}, ...pairs.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", {}, v)))));
}

export function showError(where, err) {
  where.replaceChildren(el("p", { className: "error", text: err instanceof Error ? err.message : String(err) }));
}

// A page whose subject is not there (a run deleted, a REF mistyped): a heading that says so,
// the server's message, and a way back.
export function showMissing(where, err, what, back = ["/", "back to the runs"]) {
  const missing = !(err instanceof ApiError) || err.status === 404;
  const title = missing ? `${what} not found` : `could not show this ${what.toLowerCase()}`;
  document.title = `${title} · ckptstore`;
  where.replaceChildren(
    el("h1", { id: "missing", text: title.charAt(0).toUpperCase() + title.slice(1) }),
    el("p", { className: "error", text: err instanceof Error ? err.message : String(err) }),
    el("p", {}, link(back[0], back[1], "back-link")));
}

export function param(name) {
  return new URLSearchParams(location.search).get(name);
}

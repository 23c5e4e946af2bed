// A metric chart: one metric of several runs, drawn by uPlot (vendored, MIT). Several of them
// side by side make the small multiples of the runs and run pages.
// The server downsamples (min/max per pixel column), so a drag-zoom on the step axis asks it
// again for the steps in view: zooming shows the full detail of that window. Checkpoints are
// links laid over the plot (so a click opens the checkpoint page), aliases are labels above them.
// Options, as TensorBoard has them: smoothing (its debiased exponential moving average, the raw
// line kept faint behind), an x axis of step, relative time or wall time, and a log scale that
// shows the positive values only, over their own range.

import { api, checkpointHref, el } from "./common.js";

export const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f", "#475569", "#a16207"];

// A run's colour is its own, not its row's: chosen by the run's id (its place among the store's
// runs, in the order they were made), so sorting, filtering or ticking runs never repaints one,
// and the run page draws a run in the colour the runs page does. Ten runs made one after the
// other have ten different colours. Runs whose id is not known yet: by their place in the list.
const runIds = new Map();
export function rememberRuns(runs) {
  for (const r of runs) if (Number.isInteger(r.id)) runIds.set(r.name, r.id);
}
export function runColor(name, fallback = 0) {
  const id = runIds.get(name);
  const i = id === undefined ? fallback : id - 1;
  return COLORS[((i % COLORS.length) + COLORS.length) % COLORS.length];
}

// TensorBoard's smoothing (vz_line_chart2/line-chart.ts, resmoothDataset): an exponential moving
// average debiased like Adam's first moment, so the first points are not pulled towards 0; a
// non-finite value (a gap) is passed through and does not enter the average; a constant series
// stays as it is.
export function smooth(values, weight) {
  if (!weight || weight <= 0) return values;
  const finite = values.filter((v) => v !== null && Number.isFinite(v));
  if (finite.length && finite.every((v) => v === finite[0])) return values;
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null || v === undefined || !Number.isFinite(v)) return v;
    last = last * weight + (1 - weight) * v;
    n++;
    return weight === 1 ? last : last / (1 - Math.pow(weight, n));
  });
}

// The y range of a log scale: the positive values' own min and max, a 3 % margin (in log
// terms) around them, rather than uPlot's default of whole decades (which can leave most of the
// chart empty). Null when there is nothing positive to show.
export function logRange(columns) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const col of columns) {
    for (const v of col) {
      if (v !== null && v !== undefined && v > 0 && Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  if (!(lo <= hi)) return null;
  const span = Math.log10(hi) - Math.log10(lo) || 0.2;
  return [lo / Math.pow(10, span * 0.03), hi * Math.pow(10, span * 0.03)];
}

function duration(s) {
  if (s === null || !Number.isFinite(s)) return "";
  const a = Math.abs(s);
  if (a < 60) return `${+s.toFixed(1)}s`;
  if (a < 3600) return `${+(s / 60).toFixed(1)}m`;
  if (a < 86400) return `${+(s / 3600).toFixed(2)}h`;
  return `${+(s / 86400).toFixed(2)}d`;
}

// A tick label: 3 significant digits, tiny and huge values in exponent form (uPlot's default
// prints 1e-6 as "0"); ticks a log axis leaves out are null.
export function tick(v) {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  if (a === 0) return "0";
  return a < 1e-3 || a >= 1e6 ? v.toExponential(1).replace("e+", "e") : String(Number(v.toPrecision(3)));
}

const X_LABELS = { step: "step", relative: "time since the first value", wall: "wall time" };

export class MetricChart {
  constructor(container, { height = 380, note = null } = {}) {
    this.container = container;
    this.height = height;
    this.note = note; // where to say what a log scale leaves out
    this.plot = null;
    this.range = null; // [start, stop] in steps while zoomed, else null
    this.runs = [];
    this.key = null;
    this.log = false;
    this.smoothing = 0;
    this.x = "step";
    this.markers = []; // {ref, step, value, aliases, series, at}
    this.pending = 0;
    this.body = null;
    this.extent = null; // the x values' [min, max] in the points at hand
    this.window = null; // the x window the grid shares (all charts alike), or null: auto
    // Follow the page's width (window resized, table reflowed, a phone turned).
    new ResizeObserver(() => {
      if (this.plot && Math.abs(this.plot.width - container.clientWidth) > 4) {
        this.plot.setSize({ width: Math.max(150, container.clientWidth), height: this.plot.height });
      }
    }).observe(container);
  }

  async show(runs, key, { log = this.log, range = null, smoothing = this.smoothing, x = this.x } = {}) {
    this.runs = runs;
    this.key = key;
    this.log = log;
    this.range = x === "step" ? range : null;
    this.smoothing = smoothing;
    this.x = x;
    await this.reload();
  }

  // Smoothing and the log scale are drawn from the points at hand: no new request.
  restyle({ log = this.log, smoothing = this.smoothing } = {}) {
    this.log = log;
    this.smoothing = smoothing;
    if (this.body) this.draw(this.body, this.plot ? this.plot.width : this.container.clientWidth, true);
  }

  async reload() {
    const ticket = ++this.pending;
    const c = this.container;
    c.dataset.ready = "0";
    c.dataset.key = this.key || "";
    if (!this.runs.length || !this.key) {
      this.destroy();
      this.body = null;
      this.extent = null;
      c.replaceChildren(el("p", { className: "muted", text: "Select runs in the table to chart their metrics." }));
      c.dataset.series = "0";
      c.dataset.ready = "1";
      return;
    }
    const full = Math.max(150, Math.floor(c.clientWidth || 800));
    const width = Math.max(100, full - 70);
    const body = await api("metrics", {
      run: this.runs, key: this.key, width, x: this.x === "step" ? null : this.x,
      start: this.range ? this.range[0] : null, stop: this.range ? this.range[1] : null,
    });
    if (ticket !== this.pending) return; // a newer request is under way
    this.body = body;
    this.draw(body, full);
  }

  // The x of each point and of each checkpoint, in the axis' unit (steps, or seconds).
  xs(s) {
    if (this.x === "step") return { xs: s.steps, at: (ck) => ck.step };
    const origin = this.x === "relative" ? s.t0 : 0;
    const byStep = new Map(s.steps.map((step, i) => [step, s.times[i]]));
    const xs = s.times.map((t) => (t === null ? null : t - origin));
    return { xs, at: (ck) => (byStep.has(ck.step) ? byStep.get(ck.step) - origin : (ck.time ?? null) === null ? null : ck.time - origin) };
  }

  draw(body, width, restyled = false) {
    const series = body.series;
    const smoothed = this.smoothing > 0;
    const tables = series.map((s) => {
      const { xs } = this.xs(s);
      const raw = this.log ? s.values.map((v) => (v !== null && v > 0 ? v : null)) : s.values;
      // Points without an x (a time not recorded) are left out; the x column must be sorted.
      const keep = xs.map((x, i) => (x === null ? -1 : i)).filter((i) => i >= 0).sort((a, b) => xs[a] - xs[b]);
      const pick = (col) => keep.map((i) => col[i]);
      const ys = pick(raw);
      return smoothed ? [pick(xs), smooth(ys, this.smoothing), ys] : [pick(xs), ys];
    });
    let data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    if (!data[0].length) data = [[0], ...data.slice(1).map(() => [null])];
    // Smoothed: each run's smoothed line and, faint behind it, its raw line.
    const lines = [];
    series.forEach((s, i) => {
      const color = runColor(s.run, i);
      lines.push({ label: s.run, stroke: color, width: smoothed ? 2 : 1.5, spanGaps: false, points: { show: false } });
      if (smoothed) lines.push({ label: `${s.run} (raw)`, stroke: color + "40", width: 1, spanGaps: false, points: { show: false } });
    });
    this.markers = [];
    series.forEach((s, i) => {
      const { at } = this.xs(s);
      for (const ck of s.checkpoints) {
        if (ck.value === null || (this.log && ck.value <= 0)) continue;
        const x = at(ck);
        if (x === null || x === undefined) continue;
        this.markers.push({ ...ck, series: i, x });
      }
    });
    const xsAll = data[0].filter((x) => x !== null && Number.isFinite(x));
    this.extent = xsAll.length && series.some((s) => s.values.length) ? [xsAll[0], xsAll[xsAll.length - 1]] : null;
    const shown = data.slice(1);
    const yRange = this.log ? logRange(shown) : null;
    const time = this.x === "wall";
    const opts = {
      width,
      height: this.height,
      scales: {
        x: { time },
        y: this.log ? { distr: 3, log: 10, range: yRange ? () => yRange : undefined } : { distr: 1 },
      },
      series: [{ label: X_LABELS[this.x], value: this.x === "relative" ? (u, v) => duration(v) : undefined }, ...lines],
      axes: [
        { label: X_LABELS[this.x], values: this.x === "relative" ? (u, vals) => vals.map(duration) : undefined },
        { label: body.key, size: 60, values: (u, vals) => vals.map(tick) },
      ],
      // On the step axis a drag asks the server for that window; on a time axis the points at
      // hand are zoomed (their steps are not contiguous in time across runs). Either way every
      // chart of the grid takes the window (zoomToSelection), so uPlot zooms none by itself.
      cursor: { drag: { x: true, y: false, setScale: false }, bind: { dblclick: () => null } },
      hooks: {
        setSelect: [(u) => this.zoomToSelection(u)],
        // The window drawn (uPlot sets scales a moment after being asked).
        setScale: [(u, key) => {
          if (key === "x") this.container.dataset.xWindow = `${u.scales.x.min},${u.scales.x.max}`;
        }],
        draw: [(u) => this.placeMarkers(u)],
      },
    };
    const shape = JSON.stringify([series.map((s) => s.run), body.key, this.log, this.x, smoothed, yRange && this.log ? yRange : null]);
    if (this.plot && this.shape === shape && !restyled) {
      // The same runs and metric, new points (a live run, a zoom): no flicker, legend kept.
      this.plot.setData(data);
    } else {
      this.destroy();
      this.container.replaceChildren();
      this.plot = new uPlot(opts, data, this.container);
      this.plot.over.addEventListener("dblclick", () => this.resetZoom());
      this.shape = shape;
      if (smoothed) {
        // The raw lines stay out of the legend: one entry per run.
        this.plot.root.querySelectorAll(".u-legend .u-series").forEach((row, i) => { if (i > 0 && i % 2 === 0) row.classList.add("raw-series"); });
      }
    }
    this.applyWindow();
    const c = this.container;
    c.dataset.series = String(series.length);
    this.colors = Object.fromEntries(series.map((s, i) => [s.run, runColor(s.run, i)]));
    c.dataset.colors = JSON.stringify(this.colors);
    c.dataset.points = series.map((s) => s.points).join(",");
    c.dataset.range = this.range ? this.range.join(",") : "";
    c.dataset.log = this.log ? "1" : "0";
    c.dataset.x = this.x;
    c.dataset.smoothing = String(this.smoothing);
    c.dataset.yRange = yRange ? yRange.map((v) => v.toPrecision(4)).join(",") : "";
    // Points a log scale cannot show (zero or negative): counted, and said under the chart.
    const hidden = this.log ? series.reduce((n, s) => n + s.values.filter((v) => v !== null && v <= 0).length, 0) : 0;
    c.dataset.hidden = String(hidden);
    if (this.note) {
      const all = series.reduce((n, s) => n + s.values.length, 0);
      this.note.textContent = !hidden ? "" : hidden === all ? "no value above 0: nothing to show on a log scale"
        : `log scale: ${hidden} value${hidden === 1 ? "" : "s"} at or below 0 not shown`;
    }
    // Milliseconds from the page's start to this drawing (benchmarks/ui.py reads it).
    c.dataset.drawnAt = String(Math.round(performance.now()));
    c.dataset.ready = "1";
    c.dispatchEvent(new CustomEvent("chart-drawn", { bubbles: true }));
  }

  placeMarkers(u) {
    const over = u.over;
    for (const old of over.querySelectorAll(".ck-marker, .alias-label")) old.remove();
    const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
    let shown = 0;
    for (const m of this.markers) {
      if (m.x < xmin || m.x > xmax) continue;
      const left = u.valToPos(m.x, "x");
      const top = u.valToPos(m.value, "y");
      if (!isFinite(left) || !isFinite(top)) continue;
      const a = el("a", {
        className: "ck-marker", href: checkpointHref(m.ref), title: m.ref + (m.aliases.length ? ` (${m.aliases.join(", ")})` : ""),
        dataset: { ref: m.ref, run: this.runs[m.series] },
      });
      a.style.left = `${left}px`;
      a.style.top = `${top}px`;
      a.style.background = runColor(this.runs[m.series], m.series);
      // uPlot starts a drag-zoom on mousedown in the plot; a click on a marker is a click.
      a.addEventListener("mousedown", (e) => e.stopPropagation());
      over.append(a);
      shown++;
      if (m.aliases.length) {
        const label = el("span", { className: "alias-label", text: m.aliases.join(", ") });
        label.style.left = `${left}px`;
        label.style.top = `${top}px`;
        over.append(label);
      }
    }
    this.container.dataset.markers = String(shown);
  }

  // The x window this chart shows: a step-axis zoom's steps, else the window the grid shares
  // (the union of every chart's points, or a time-axis zoom), else uPlot's fit to the points.
  applyWindow() {
    const w = this.x === "step" && this.range ? this.range : this.window;
    if (!this.plot || !w) return;
    const [min, max] = w[0] === w[1] ? [w[0] - 0.5, w[1] + 0.5] : w;
    this.plot.setScale("x", { min, max });
  }

  setWindow(window) {
    this.window = window;
    this.applyWindow();
  }

  zoomToSelection(u) {
    const sel = u.select;
    if (sel.width < 3) return;
    if (this.x !== "step") {
      const window = [u.posToVal(sel.left, "x"), u.posToVal(sel.left + sel.width, "x")];
      u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
      this.window = window;
      this.applyWindow();
      this.container.dispatchEvent(new CustomEvent("chart-window", { bubbles: true, detail: window }));
      return;
    }
    const start = Math.max(0, Math.floor(u.posToVal(sel.left, "x")));
    const stop = Math.ceil(u.posToVal(sel.left + sel.width, "x"));
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (stop <= start) return;
    this.range = [start, stop];
    this.container.dispatchEvent(new CustomEvent("chart-zoom", { bubbles: true, detail: this.range }));
    this.reload().catch((err) => this.container.dispatchEvent(new CustomEvent("chart-error", { bubbles: true, detail: err })));
  }

  resetZoom() {
    if (this.x !== "step") {
      this.window = null;
      this.container.dispatchEvent(new CustomEvent("chart-window", { bubbles: true, detail: null }));
      if (this.body) this.draw(this.body, this.plot ? this.plot.width : this.container.clientWidth, true);
      return;
    }
    if (!this.range) return;
    this.range = null;
    this.container.dispatchEvent(new CustomEvent("chart-zoom", { bubbles: true, detail: null }));
    this.reload().catch((err) => this.container.dispatchEvent(new CustomEvent("chart-error", { bubbles: true, detail: err })));
  }

  destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

// Small multiples: one chart per metric, the same runs and options in each, zoomed together.
export class ChartGrid {
  constructor(container, { height = 260 } = {}) {
    this.container = container;
    this.height = height;
    this.charts = new Map(); // key -> MetricChart
    this.options = { log: false, smoothing: 0, x: "step", range: null };
    // Every chart shows the same x window: the union of their points' (the val_ metrics of a
    // Keras run start an epoch later than its loss), or the zoomed one.
    container.addEventListener("chart-drawn", () => this.shareWindow());
    container.addEventListener("chart-window", (e) => {
      this.zoomed = e.detail;
      this.shareWindow();
    });
    container.addEventListener("chart-zoom", (e) => {
      // A zoom in one chart zooms them all (the same steps).
      this.options.range = e.detail;
      if (this.resetting) return;
      for (const chart of this.charts.values()) {
        if (chart.container !== e.target) chart.show(chart.runs, chart.key, { ...this.options }).catch(() => {});
      }
    });
  }

  async show(runs, keys, options = {}) {
    if ((options.x !== undefined && options.x !== this.options.x) || options.range === null) this.zoomed = null;
    Object.assign(this.options, options);
    for (const [key, chart] of this.charts) {
      if (!keys.includes(key)) {
        chart.destroy();
        chart.container.parentElement.remove();
        this.charts.delete(key);
      }
    }
    keys.forEach((key) => {
      if (!this.charts.has(key)) {
        const box = el("div", { className: "chart", dataset: { key, ready: "0" } });
        const note = el("p", { className: "note chart-note" });
        const cell = el("figure", { className: "chart-cell" }, el("figcaption", { text: key }), note, box);
        this.container.append(cell);
        this.charts.set(key, new MetricChart(box, { height: this.height, note }));
      }
    });
    // In the order asked for.
    for (const key of keys) this.container.append(this.charts.get(key).container.parentElement);
    this.container.dataset.charts = String(keys.length);
    if (!keys.length) {
      this.container.dataset.ready = "1";
      return;
    }
    this.container.dataset.ready = "0";
    await Promise.all(keys.map((key) => this.charts.get(key).show(runs, key, { ...this.options })));
    this.shareWindow();
    this.container.dataset.ready = "1";
  }

  // The union of the charts' x ranges, set on each (a zoom on a time axis: that window).
  shareWindow() {
    const charts = [...this.charts.values()];
    let window = this.zoomed && this.options.x !== "step" ? this.zoomed : null;
    if (!window) {
      const extents = charts.map((c) => c.extent).filter(Boolean);
      window = extents.length ? [Math.min(...extents.map((e) => e[0])), Math.max(...extents.map((e) => e[1]))] : null;
    }
    for (const chart of charts) {
      if (!chart.window || !window || chart.window[0] !== window[0] || chart.window[1] !== window[1]) chart.setWindow(window);
    }
    this.container.dataset.xWindow = window ? window.join(",") : "";
  }

  // Drawn before the runs' ids were known (the runs page charts the URL's runs while its table
  // loads): redrawn in the runs' own colours.
  recolor() {
    for (const chart of this.charts.values()) {
      if (chart.body && chart.body.series.some((s, i) => chart.colors?.[s.run] !== runColor(s.run, i))) chart.restyle();
    }
  }

  restyle(options) {
    Object.assign(this.options, options);
    for (const chart of this.charts.values()) chart.restyle(options);
  }

  resetZoom() {
    this.options.range = null;
    this.zoomed = null;
    this.resetting = true;
    try {
      for (const chart of this.charts.values()) chart.resetZoom();
    } finally {
      this.resetting = false;
    }
  }
}

// The metrics chart: one metric of several runs against step, drawn by uPlot (vendored, MIT).
// The server downsamples (min/max per pixel column), so a drag-zoom asks it again for the steps
// in view: zooming shows the full detail of that window. Checkpoints are links laid over the
// plot (so a click opens the checkpoint page), aliases are labels above them.

import { api, checkpointHref, el } from "./common.js";

export const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f", "#475569", "#a16207"];

export class MetricChart {
  constructor(container) {
    this.container = container;
    this.plot = null;
    this.range = null; // [start, stop] while zoomed, else null
    this.runs = [];
    this.key = null;
    this.log = false;
    this.markers = []; // {ref, step, value, aliases, series}
    this.pending = 0;
    // Follow the page's width (window resized, table reflowed).
    new ResizeObserver(() => {
      if (this.plot && Math.abs(this.plot.width - container.clientWidth) > 4) {
        this.plot.setSize({ width: container.clientWidth, height: this.plot.height });
      }
    }).observe(container);
  }

  async show(runs, key, { log = this.log, range = null } = {}) {
    this.runs = runs;
    this.key = key;
    this.log = log;
    this.range = range;
    await this.reload();
  }

  async reload() {
    const ticket = ++this.pending;
    const c = this.container;
    c.dataset.ready = "0";
    if (!this.runs.length || !this.key) {
      this.destroy();
      c.replaceChildren(el("p", { className: "muted", text: "Select runs in the table to chart their metrics." }));
      c.dataset.series = "0";
      c.dataset.ready = "1";
      return;
    }
    const width = Math.max(200, Math.floor(c.clientWidth || 800) - 80);
    const body = await api("metrics", {
      run: this.runs, key: this.key, width,
      start: this.range ? this.range[0] : null, stop: this.range ? this.range[1] : null,
    });
    if (ticket !== this.pending) return; // a newer request is under way
    this.draw(body, width + 80);
  }

  draw(body, width) {
    const series = body.series;
    // Where another run has a point and this one none, uPlot.join leaves undefined, which the
    // line crosses; null (a value a log scale cannot show) leaves a gap.
    const tables = series.map((s) => [s.steps, this.log ? s.values.map((v) => (v !== null && v > 0 ? v : null)) : s.values]);
    let data = tables.length === 1 ? [tables[0][0], tables[0][1]] : uPlot.join(tables);
    if (!data[0].length) data = [[0], ...series.map(() => [null])];
    this.markers = [];
    series.forEach((s, i) => {
      for (const ck of s.checkpoints) {
        if (ck.value === null || (this.log && ck.value <= 0)) continue;
        this.markers.push({ ...ck, series: i });
      }
    });
    const opts = {
      width,
      height: 380,
      scales: { x: { time: false }, y: this.log ? { distr: 3, log: 10 } : { distr: 1 } },
      series: [
        { label: "step" },
        ...series.map((s, i) => ({ label: s.run, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, points: { show: false } })),
      ],
      axes: [{ label: "step" }, { label: body.key, size: 70 }],
      cursor: { drag: { x: true, y: false, setScale: false }, bind: { dblclick: () => null } },
      hooks: {
        setSelect: [(u) => this.zoomToSelection(u)],
        draw: [(u) => this.placeMarkers(u)],
      },
    };
    const shape = JSON.stringify([series.map((s) => s.run), body.key, this.log]);
    if (this.plot && this.shape === shape) {
      // The same runs and metric, new points (a live run, a zoom): no flicker, legend kept.
      this.plot.setData(data);
    } else {
      this.destroy();
      this.container.replaceChildren();
      this.plot = new uPlot(opts, data, this.container);
      this.plot.over.addEventListener("dblclick", () => this.resetZoom());
      this.shape = shape;
    }
    this.container.dataset.series = String(series.length);
    this.container.dataset.points = series.map((s) => s.points).join(",");
    this.container.dataset.range = this.range ? this.range.join(",") : "";
    this.container.dataset.log = this.log ? "1" : "0";
    // Milliseconds from the page's start to this drawing (benchmarks/ui.py reads it).
    this.container.dataset.drawnAt = String(Math.round(performance.now()));
    this.container.dataset.ready = "1";
    this.container.dispatchEvent(new CustomEvent("chart-drawn", { bubbles: true }));
  }

  placeMarkers(u) {
    const over = u.over;
    for (const old of over.querySelectorAll(".ck-marker, .alias-label")) old.remove();
    const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
    let shown = 0;
    for (const m of this.markers) {
      if (m.step < xmin || m.step > xmax) continue;
      const left = u.valToPos(m.step, "x");
      const top = u.valToPos(m.value, "y");
      if (!isFinite(left) || !isFinite(top)) continue;
      const a = el("a", {
        className: "ck-marker", href: checkpointHref(m.ref), title: m.ref + (m.aliases.length ? ` (${m.aliases.join(", ")})` : ""),
        dataset: { ref: m.ref, run: this.runs[m.series] },
      });
      a.style.left = `${left}px`;
      a.style.top = `${top}px`;
      a.style.background = COLORS[m.series % COLORS.length];
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

  zoomToSelection(u) {
    const sel = u.select;
    if (sel.width < 3) return;
    const start = Math.max(0, Math.floor(u.posToVal(sel.left, "x")));
    const stop = Math.ceil(u.posToVal(sel.left + sel.width, "x"));
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (stop <= start) return;
    this.range = [start, stop];
    this.container.dispatchEvent(new CustomEvent("chart-zoom", { bubbles: true, detail: this.range }));
    this.reload().catch((err) => this.container.dispatchEvent(new CustomEvent("chart-error", { bubbles: true, detail: err })));
  }

  resetZoom() {
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

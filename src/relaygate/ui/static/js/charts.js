// SVG charts drawn here from the API's JSON: a multi-line chart and a bar chart, both scaling to their
// container (viewBox), with axis ticks, a <title> per point for hover and an HTML legend. Colours come
// from CSS classes (the CSP allows no style attributes). Each chart carries data-* attributes
// (data-testid, totals) that tests read to see it change.

import { h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 220;
const PAD = { l: 56, r: 12, t: 12, b: 28 };

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "text") el.textContent = String(v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c) el.append(c);
  return el;
}

function niceMax(v, integer) {
  if (integer) return Math.max(4, Math.ceil(v / 4) * 4);
  if (!(v > 0)) return 4;
  // four grid steps of 1, 2 or 5 times a power of ten
  const raw = v / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return 4 * m * p;
  return 40 * p;
}

function shortTime(t, bucket) {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const iso = d.toISOString();
  if (bucket !== "hour") return iso.slice(5, 10);
  return iso.slice(11, 13) === "00" ? iso.slice(5, 10) : iso.slice(11, 16);
}

// x labels near the right edge end there instead of being cut
function anchor(x) {
  return x > W - PAD.r - 24 ? "end" : "middle";
}

function frame(svg, max, fmt, labels, bucket, n) {
  const innerW = W - PAD.l - PAD.r;
  const innerH = H - PAD.t - PAD.b;
  for (let i = 0; i <= 4; i += 1) {
    const v = (max * i) / 4;
    const y = PAD.t + innerH - (innerH * i) / 4;
    svg.append(s("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: PAD.l - 6, y: y + 4, class: "tick", "text-anchor": "end", text: fmt(v) }));
  }
  const step = Math.max(1, Math.ceil(n / 8));
  for (let i = 0; i < n; i += step) {
    const x = PAD.l + (n === 1 ? innerW / 2 : (innerW * i) / (n - 1));
    svg.append(s("text", { x, y: H - 8, class: "tick", "text-anchor": anchor(x), text: shortTime(labels[i], bucket) }));
  }
  return { innerW, innerH };
}

function legend(items) {
  return h("ul", { class: "legend" }, items.map((it) => h("li", {}, h("span", { class: `swatch ${it.cls}`, "aria-hidden": "true" }), it.name)));
}

function empty(title, testid, attrs) {
  return h("figure", { class: "chart", "data-testid": testid, ...attrs },
    h("figcaption", { text: title }), h("p", { class: "muted empty", text: "No traffic in this range." }));
}

// series: [{name, cls, values: number[]}]; labels: ISO times
export function lineChart(title, labels, series, opts) {
  const o = opts || {};
  const fmt = o.format || ((v) => String(Math.round(v * 100) / 100));
  const n = labels.length;
  if (!n) return empty(title, o.testid, o.attrs);
  const max = niceMax(Math.max(0, ...series.flatMap((x) => x.values.map((v) => Number(v) || 0))), o.integer);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart-svg", preserveAspectRatio: "none" });
  const { innerW, innerH } = frame(svg, max, o.tickFormat || fmt, labels, o.bucket, n);
  const xAt = (i) => PAD.l + (n === 1 ? innerW / 2 : (innerW * i) / (n - 1));
  const yAt = (v) => PAD.t + innerH - (innerH * (Number(v) || 0)) / max;
  for (const ser of series) {
    const pts = ser.values.map((v, i) => `${xAt(i).toFixed(1)},${yAt(v).toFixed(1)}`);
    svg.append(s("polyline", { points: pts.join(" "), class: `line ${ser.cls}`, fill: "none" }));
    ser.values.forEach((v, i) => {
      svg.append(s("circle", { cx: xAt(i).toFixed(1), cy: yAt(v).toFixed(1), r: n > 60 ? 1.5 : 3, class: `dot ${ser.cls}` },
        s("title", { text: `${ser.name} ${shortTime(labels[i], o.bucket)}: ${fmt(Number(v) || 0)}` })));
    });
  }
  return h("figure", { class: "chart", "data-testid": o.testid, ...(o.attrs || {}) },
    h("figcaption", { text: title }), svg, legend(series));
}

// A short money label for an axis: $0, $0.25, $1.5e-4.
export function axisUsd(v) {
  if (!v) return "$0";
  if (v >= 0.01) return `$${Number(v.toPrecision(3))}`;
  return `$${v.toExponential(1)}`;
}

export function barChart(title, labels, values, opts) {
  const o = opts || {};
  const fmt = o.format || ((v) => String(v));
  const n = labels.length;
  if (!n) return empty(title, o.testid, o.attrs);
  const max = niceMax(Math.max(0, ...values.map((v) => Number(v) || 0)));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart-svg", preserveAspectRatio: "none" });
  const innerW = W - PAD.l - PAD.r;
  const innerH = H - PAD.t - PAD.b;
  for (let i = 0; i <= 4; i += 1) {
    const y = PAD.t + innerH - (innerH * i) / 4;
    svg.append(s("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: PAD.l - 6, y: y + 4, class: "tick", "text-anchor": "end", text: (o.tickFormat || fmt)((max * i) / 4) }));
  }
  const slot = innerW / n;
  const bw = Math.max(1, slot * 0.7);
  const step = Math.max(1, Math.ceil(n / 8));
  values.forEach((v, i) => {
    const bh = (innerH * (Number(v) || 0)) / max;
    const x = PAD.l + slot * i + (slot - bw) / 2;
    svg.append(s("rect", { x: x.toFixed(1), y: (PAD.t + innerH - bh).toFixed(1), width: bw.toFixed(1), height: bh.toFixed(1), class: `bar ${o.cls || "c-spend"}` },
      s("title", { text: `${shortTime(labels[i], o.bucket)}: ${fmt(Number(v) || 0)}` })));
    if (i % step === 0) {
      const x = PAD.l + slot * i + slot / 2;
      svg.append(s("text", { x: x.toFixed(1), y: H - 8, class: "tick", "text-anchor": anchor(x), text: shortTime(labels[i], o.bucket) }));
    }
  });
  return h("figure", { class: "chart", "data-testid": o.testid, ...(o.attrs || {}) },
    h("figcaption", { text: title }), svg, legend([{ name: o.seriesName || title, cls: o.cls || "c-spend" }]));
}

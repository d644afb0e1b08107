// Overview: /global/activity/overview over a time range (24 h, 7 d, 30 d or custom dates) drawn as SVG
// charts (requests and errors, latency p50/p95/p99, spend), stat cards (spend today and this month,
// requests, error rate) and the top models, keys and teams. The charts carry data-total-* attributes.

import { get } from "../api.js";
import { axisUsd, barChart, lineChart } from "../charts.js";
import { clear, errorBox, h, num, table, usd } from "../dom.js";
import { pageHeader } from "../crud.js";

const RANGES = [
  { id: "24h", label: "24 h", days: 1, bucket: "hour" },
  { id: "7d", label: "7 d", days: 6, bucket: "day" },
  { id: "30d", label: "30 d", days: 29, bucket: "day" },
  { id: "custom", label: "Custom" },
];

function day(offset) {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() - offset);
  return d.toISOString().slice(0, 10);
}

let chosen = "24h";

function stat(label, value, testid, extra) {
  return h("div", { class: "stat", "data-testid": testid, ...(extra || {}) },
    h("span", { class: "stat-label", text: label }), h("span", { class: "stat-value", text: value }));
}

export async function render(container) {
  const body = h("div", { class: "page-body" });
  const startInput = h("input", { id: "ov-start", type: "date", value: day(6) });
  const endInput = h("input", { id: "ov-end", type: "date", value: day(0) });
  const bucketSel = h("select", { id: "ov-bucket" }, h("option", { value: "day", text: "per day" }), h("option", { value: "hour", text: "per hour" }));
  const custom = h("form", { class: "inline-form", hidden: chosen !== "custom", "data-testid": "range-custom" },
    h("label", { for: "ov-start", text: "From" }), startInput,
    h("label", { for: "ov-end", text: "To" }), endInput,
    h("label", { for: "ov-bucket", text: "Bucket" }), bucketSel,
    h("button", { type: "submit", class: "secondary", text: "Show" }));
  const group = h("div", { class: "segmented", role: "group", "aria-label": "Time range" });

  const load = async () => {
    let q;
    if (chosen === "custom") {
      q = { start_date: startInput.value, end_date: endInput.value, bucket: bucketSel.value };
    } else {
      const r = RANGES.find((x) => x.id === chosen);
      q = { start_date: day(r.days), end_date: day(0), bucket: r.bucket };
    }
    let data;
    try {
      data = await get("/global/activity/overview", q);
    } catch (err) {
      clear(body).append(err.status === 404 ? h("p", { class: "muted", text: "Activity overview not available on this gateway." }) : errorBox(err));
      return;
    }
    draw(data);
  };

  const draw = (d) => {
    const now = Date.now();
    const series = (d.series || []).filter((p) => !(Date.parse(p.t) > now)); // buckets not begun yet: no zeros drawn
    const t = d.totals || {};
    const labels = series.map((p) => p.t);
    const requests = Number(t.requests || 0);
    const errors = Number(t.errors || 0);
    const rate = requests ? `${((errors / requests) * 100).toFixed(1)} %` : "—";
    const ms = (v) => (v > 0 && v < 10 ? `${Number(v.toFixed(1))} ms` : `${Math.round(v)} ms`);
    const topTable = (title, rows, cols, testid) => h("section", { class: "card" }, h("h2", { text: title }), table(cols, rows || [], { testid, empty: "No traffic." }));
    clear(body).append(
      h("p", { class: "muted range-note", "data-testid": "range-note", text: `${d.start_date} to ${d.end_date} (UTC days, both included), per ${d.bucket}` }),
      h("div", { class: "stats" },
        stat("Spend today", usd(d.spend_today), "stat-spend-today"),
        stat("Spend this month", usd(d.spend_month), "stat-spend-month"),
        stat("Requests", num(requests), "stat-requests", { "data-value": String(requests) }),
        stat("Error rate", rate, "stat-error-rate"),
        stat("Spend in range", usd(t.spend), "stat-spend-range"),
        stat("Latency p95", t.p95_ms === null || t.p95_ms === undefined ? "—" : ms(t.p95_ms), "stat-p95")),
      h("div", { class: "charts" },
        lineChart("Requests and errors", labels, [
          { name: "Requests", cls: "c-req", values: series.map((p) => p.requests) },
          { name: "Errors", cls: "c-err", values: series.map((p) => p.errors) },
        ], { bucket: d.bucket, testid: "chart-requests", integer: true, format: (v) => num(Math.round(v)), attrs: { "data-total-requests": String(requests), "data-total-errors": String(errors) } }),
        lineChart("Latency", labels, [
          { name: "p50", cls: "c-p50", values: series.map((p) => p.p50_ms || 0) },
          { name: "p95", cls: "c-p95", values: series.map((p) => p.p95_ms || 0) },
          { name: "p99", cls: "c-p99", values: series.map((p) => p.p99_ms || 0) },
        ], { bucket: d.bucket, testid: "chart-latency", format: ms }),
        barChart("Spend", labels, series.map((p) => p.spend), { bucket: d.bucket, testid: "chart-spend", format: usd, tickFormat: axisUsd, seriesName: "Spend (USD)", attrs: { "data-total-spend": String(t.spend || 0) } })),
      h("div", { class: "tops" },
        topTable("Top models", d.top_models, [
          { label: "Model", get: (r) => r.model }, { label: "Requests (errors)", get: (r) => `${num(r.requests)} (${num(r.errors)})` },
          { label: "Spend", get: (r) => usd(r.spend) }], "top-models"),
        topTable("Top keys", d.top_keys, [
          { label: "Key", get: (r) => r.key_alias || (r.token ? `${r.token.slice(0, 10)}…` : "—") },
          { label: "Requests", get: (r) => num(r.requests) }, { label: "Spend", get: (r) => usd(r.spend) }], "top-keys"),
        topTable("Top teams", d.top_teams, [
          { label: "Team", get: (r) => r.team_alias || r.team_id },
          { label: "Requests", get: (r) => num(r.requests) }, { label: "Spend", get: (r) => usd(r.spend) }], "top-teams")));
  };

  const buttons = RANGES.map((r) => {
    const b = h("button", { type: "button", class: "seg", "aria-pressed": r.id === chosen ? "true" : "false", "data-testid": `range-${r.id}`, text: r.label });
    b.addEventListener("click", () => {
      chosen = r.id;
      for (const x of buttons) x.setAttribute("aria-pressed", x === b ? "true" : "false");
      custom.hidden = chosen !== "custom";
      if (chosen !== "custom") load();
    });
    return b;
  });
  group.append(...buttons);
  custom.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  const refresh = h("button", { type: "button", class: "secondary", "data-testid": "overview-refresh", text: "Refresh", onclick: load });
  container.append(pageHeader("Overview", group, refresh), custom, body);
  await load();
}

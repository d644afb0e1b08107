// Spend logs: /spend/logs rows (summarize=false), filtered on the server by key, team, user, model, status,
// request id and date range; a row's detail shows the stored request and response (when kept) and every field
// as pretty JSON.

import { get, keyRef, readsAll } from "../api.js";
import { button, clear, dialog, errorBox, h, jsonView, num, table, usd, when } from "../dom.js";
import { badge, pageHeader, teamNames, teamOptions } from "../crud.js";
import { buildForm } from "../forms.js";

function durationMs(r) {
  const a = Date.parse(r.startTime);
  const b = Date.parse(r.endTime);
  return Number.isFinite(a) && Number.isFinite(b) ? `${b - a} ms` : "—";
}

function detail(r) {
  const summary = h("dl", { class: "kv" });
  for (const [k, v] of [["Request ID", r.request_id], ["Status", r.status], ["Model", r.model], ["Model group", r.model_group],
    ["Provider", r.custom_llm_provider], ["Key", r.key_alias || r.api_key], ["Team", r.team_id], ["User", r.user],
    ["Start", when(r.startTime)], ["End", when(r.endTime)], ["Duration", durationMs(r)], ["Spend", usd(r.spend)],
    ["Tokens", `${num(r.prompt_tokens)} in / ${num(r.completion_tokens)} out`], ["Cache hit", r.cache_hit]]) {
    summary.append(h("dt", { text: k }), h("dd", { text: v === null || v === undefined || v === "" ? "—" : String(v) }));
  }
  // the request body and the answer, stored only with general_settings.store_prompts_in_spend_logs
  const stored = [["Request", r.proxy_server_request], ["Response", r.response]]
    .filter(([, v]) => v && typeof v === "object" && Object.keys(v).length)
    .flatMap(([k, v]) => [h("h3", { text: k }), jsonView(v)]);
  dialog(`Request ${r.request_id}`, [summary, ...stored, h("h3", { text: "All fields" }), jsonView(r)],
    { wide: true, testid: "log-detail" });
}

export async function render(container) {
  const results = h("div", { class: "page-body" });
  const today = new Date().toISOString().slice(0, 10);
  const teams = readsAll() ? await teamOptions() : [];
  const names = teamNames(teams);
  let filters = {};
  const load = async () => {
    clear(results).append(h("p", { class: "muted", text: "Loading…" }));
    let rows;
    try {
      rows = await get("/spend/logs", {
        api_key: await keyRef(filters.api_key), team_id: filters.team_id, user_id: filters.user_id, request_id: filters.request_id,
        model: filters.model, status: filters.status,
        start_date: filters.start_date, end_date: filters.end_date, summarize: "false", limit: filters.limit || 200,
      });
    } catch (err) {
      clear(results).append(errorBox(err));
      return;
    }
    rows = Array.isArray(rows) ? rows : [];
    const cols = [
      { label: "Time", get: (r) => when(r.startTime) },
      { label: "Status", get: (r) => badge(r.status || "—", r.status === "success" ? "ok" : "bad") },
      { label: "Model", get: (r) => r.model_group || r.model },
      { label: "Key", get: (r) => r.key_alias || (r.api_key ? `${r.api_key.slice(0, 10)}…` : "—") },
      { label: "Team", get: (r) => (r.team_id ? names.get(r.team_id) || r.team_id : null) },
      { label: "Tokens", get: (r) => `${num(r.prompt_tokens)} / ${num(r.completion_tokens)}` },
      { label: "Spend", get: (r) => usd(r.spend) },
      { label: "Duration", get: (r) => durationMs(r) },
      { label: "Detail", get: (r) => button("View", () => detail(r), { "data-testid": "log-view", "aria-label": `View request ${r.request_id}` }) },
    ];
    clear(results).append(h("p", { class: "muted", "data-testid": "logs-count", "data-count": String(rows.length), text: `${rows.length} requests` }),
      table(cols, rows, { testid: "logs-table", empty: "No requests match.", rowAttrs: (r) => ({ "data-request-id": r.request_id }) }));
  };
  const form = buildForm([
    { name: "api_key", label: "Key (sk-… or hash)", type: "password" },
    readsAll() ? { name: "team_id", label: "Team", type: "select", options: teams, emptyLabel: "Any team" } : null,
    readsAll() ? { name: "user_id", label: "User ID", type: "text" } : null,
    { name: "model", label: "Model", type: "text" },
    { name: "status", label: "Status", type: "select", options: ["success", "failure"], emptyLabel: "Any status" },
    { name: "start_date", label: "From (UTC date)", type: "text", placeholder: today },
    { name: "end_date", label: "To (UTC date)", type: "text", placeholder: today },
    { name: "request_id", label: "Request ID", type: "text" },
    { name: "limit", label: "Max rows", type: "int", default: 200 },
  ].filter(Boolean), {
    submitText: "Apply filters",
    testid: "logs-filters",
    onSubmit: async (b) => {
      filters = b;
      await load();
    },
  });
  for (const name of ["start_date", "end_date"]) {
    const input = form.querySelector(`[data-field="${name}"]`);
    input.type = "date";
  }
  container.append(pageHeader("Spend logs", button("Refresh", load, { class: "secondary", "data-testid": "logs-refresh" })),
    h("details", { class: "filters", open: true }, h("summary", { text: "Filters" }), form), results);
  await load();
}

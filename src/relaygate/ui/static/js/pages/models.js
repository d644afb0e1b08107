// Models: the deployments of /model/info (config-file and database ones, marked), their health from
// /health/deployments (state, last check, cooldown), a health check of one deployment now (/health?model_id=,
// kept in the history), the stored health check history (/health/history) and a model group's analytics
// (/model/metrics and its companions) for the admin and its viewer,
// and add / edit / block / delete of database models (/model/new, /model/update, /model/block and /unblock,
// /model/delete; a new one's connection tried first with /health/test_connection). An api_key is a password
// field and is never shown back: /model/info does not return it, and an empty field on edit keeps the stored one.

import { canWrite, get, isAdmin, post, readsAll } from "../api.js";
import { actions, append, button, clear, confirm, errorBox, h, notify, table, when } from "../dom.js";
import { badge, formDialog, pageHeader } from "../crud.js";

function fields(mode) {
  return [
    { name: "model_name", label: "Public model name", type: "text", required: mode === "create", help: "What clients send as `model`." },
    { name: "litellm_params.model", label: "Upstream model", type: "text", required: mode === "create", placeholder: "openai/gpt-4o-mini" },
    { name: "litellm_params.api_base", label: "API base", type: "text", placeholder: "https://api.openai.com/v1" },
    { name: "litellm_params.api_key", label: mode === "create" ? "API key" : "API key (empty = unchanged)", type: "password" },
    { name: "litellm_params.api_version", label: "API version", type: "text" },
    { name: "litellm_params.rpm", label: "RPM", type: "int" },
    { name: "litellm_params.tpm", label: "TPM", type: "int" },
    { name: "litellm_params.timeout", label: "Timeout (s)", type: "number" },
    { name: "litellm_params.input_cost_per_token", label: "Input cost per token (USD)", type: "number" },
    { name: "litellm_params.output_cost_per_token", label: "Output cost per token (USD)", type: "number" },
    { name: "model_info.base_model", label: "Base model (for prices and limits)", type: "text" },
    { name: "model_info.extra", label: "More model_info (JSON, merged)", type: "json" },
  ];
}

// POST /health/test_connection with the form's values: one call to the upstream, nothing stored.
async function testConnection(b) {
  const req = body(b);
  const got = await post("/health/test_connection", { litellm_params: req.litellm_params || {}, model_info: req.model_info || {} });
  const r = got.result || {};
  const where = r.api_base || `${r.custom_llm_provider}'s default API base`;
  return got.status === "success"
    ? { ok: true, text: `Connection works: a ${r.mode} call to ${where} was answered.` }
    : { ok: false, text: `Connection failed (${where}): ${r.error}` };
}

function healthBadge(hd) {
  if (!hd) return badge("unknown", "");
  const kind = { healthy: "ok", cooldown: "warn", unhealthy: "bad" }[hd.state] || "";
  return badge(hd.state, kind);
}

function body(b) {
  const out = { ...b };
  if (out.model_info && out.model_info.extra !== undefined) {
    const extra = out.model_info.extra;
    delete out.model_info.extra;
    if (extra && typeof extra === "object") Object.assign(out.model_info, extra);
  }
  return out;
}

async function checkNow(m) {
  // GET /health?model_id= answers 503 with the same body when the deployment is not healthy
  let result;
  try {
    result = await get("/health", { model_id: m.model_info.id }, { quiet401: true });
  } catch (err) {
    if (err.status !== 503 || !err.body || typeof err.body !== "object") {
      notify(err.message, "error");
      return;
    }
    result = err.body;
  }
  const bad = (result.unhealthy_endpoints || [])[0];
  if (bad) notify(`${m.model_name}: unhealthy${bad.error ? ` — ${bad.error}` : ""}`, "error");
  else notify(`${m.model_name}: healthy`, "ok");
}

function historyTable(rows) {
  const cols = [
    { label: "Checked", get: (r) => when(r.checked_at) },
    { label: "Model", get: (r) => r.model_name },
    { label: "Deployment", class: "mono", get: (r) => r.model_id || "—" },
    { label: "Status", get: (r) => badge(r.status, r.status === "healthy" ? "ok" : "bad") },
    { label: "Healthy / unhealthy", get: (r) => `${r.healthy_count} / ${r.unhealthy_count}` },
    { label: "Response time", get: (r) => (r.response_time_ms === null || r.response_time_ms === undefined ? "—" : `${Math.round(r.response_time_ms)} ms`) },
    { label: "Error", get: (r) => r.error_message || "—" },
    { label: "Checked by", get: (r) => r.checked_by || "—" },
  ];
  return table(cols, rows, { testid: "health-history-table", empty: "No health check kept yet." });
}

// Model analytics (LiteLLM's /model/metrics, /model/streaming_metrics, /model/metrics/slow_responses,
// /model/metrics/exceptions): one model group's deployments over the last 30 days (7 for time to first token).
function seconds(v) {
  return typeof v === "number" ? `${v < 0.1 ? (v * 1000).toFixed(1) + " ms" : v.toFixed(3) + " s"}` : "—";
}

function chartTable(got, testid, empty) {
  const names = got.all_api_bases || [];
  const cols = [{ label: "Day", get: (r) => r.date }, ...names.map((n) => ({ label: n, get: (r) => seconds(r[n]) }))];
  return table(cols, got.data || [], { testid, empty });
}

async function analytics(box, group) {
  const q = { _selected_model_group: group };
  try {
    const [lat, ttft, slow, exc] = await Promise.all([
      get("/model/metrics", q), get("/model/streaming_metrics", q), get("/model/metrics/slow_responses", q),
      get("/model/metrics/exceptions", q)]);
    const types = exc.exception_types || [];
    append(clear(box), [
      h("h3", { text: "Seconds per output token" }), chartTable(lat, "metrics-latency", "No answers with output in the last 30 days."),
      h("h3", { text: "Time to first token (streams)" }), chartTable(ttft, "metrics-ttft", "No streamed answers in the last 7 days."),
      h("h3", { text: "Slow responses" }),
      table([{ label: "API base", class: "mono", get: (r) => r.api_base || "(provider default)" },
        { label: "Requests", get: (r) => r.total_count }, { label: "Slow", get: (r) => r.slow_count }],
      slow, { testid: "metrics-slow", empty: "No requests in the last 30 days." }),
      h("h3", { text: "Failures" }),
      table([{ label: "Deployment", class: "mono", get: (r) => r.model }, { label: "Failures", get: (r) => r.total_exceptions },
        ...types.map((t) => ({ label: t, get: (r) => r[t] || 0 }))],
      exc.data || [], { testid: "metrics-failures", empty: "No failures in the last 30 days." }),
    ]);
  } catch (err) {
    clear(box).append(errorBox(err));
  }
}

export async function render(container) {
  const listBox = h("div", { class: "page-body" });
  const historyBox = h("div", { class: "page-body" });
  const analyticsBox = h("div", { class: "page-body" });
  const loadHistory = async () => {
    if (!readsAll()) return;
    try {
      const got = await get("/health/history", { limit: 50 }, { quiet401: true });
      append(clear(historyBox), [h("h2", { text: "Health check history" }), historyTable(got.health_checks || [])]);
    } catch (err) {
      append(clear(historyBox), [h("h2", { text: "Health check history" }),
        h("p", { class: "muted", text: `Not available: ${err.message}` })]);
    }
  };
  const reload = async () => {
    let info;
    let health = null;
    try {
      info = await get("/model/info");
    } catch (err) {
      clear(listBox).append(errorBox(err));
      return;
    }
    let healthNote = null;
    try {
      health = await get("/health/deployments");
    } catch (err) {
      healthNote = h("p", { class: "muted", text: `Health not available: ${err.message}` });
    }
    const byId = new Map(((health && health.deployments) || []).map((d) => [d.model_id, d]));
    const rows = (info.data || []).map((m) => ({ ...m, health: byId.get(m.model_info && m.model_info.id) }));
    const cols = [
      { label: "Model", get: (m) => m.model_name },
      { label: "Upstream", class: "mono", get: (m) => m.litellm_params && m.litellm_params.model },
      { label: "Provider", get: (m) => m.model_info && m.model_info.litellm_provider },
      { label: "Source", get: (m) => (m.model_info && m.model_info.db_model
        ? (m.model_info.blocked ? badge("database, blocked", "warn") : badge("database", "info")) : badge("config", "")) },
      { label: "Health", get: (m) => healthBadge(m.health) },
      { label: "Last check", get: (m) => (m.health && m.health.last_check ? `${when(m.health.last_check.at)}${m.health.last_check.ok ? "" : ` — ${m.health.last_check.error || "failed"}`}` : "—") },
      { label: "Cooldown until", get: (m) => (m.health && m.health.cooldown_until ? when(m.health.cooldown_until) : "—") },
      { label: "In flight", get: (m) => (m.health ? m.health.in_flight : "—") },
      { label: "Latency (EWMA)", get: (m) => (m.health && m.health.ewma_ms !== null && m.health.ewma_ms !== undefined ? `${Math.round(m.health.ewma_ms)} ms` : "—") },
      { label: "Price in / out (per 1M)", get: (m) => `$${((m.model_info.input_cost_per_token || 0) * 1e6).toFixed(2)} / $${((m.model_info.output_cost_per_token || 0) * 1e6).toFixed(2)}` },
    ];
    if (readsAll()) {
      cols.push({
        label: "Check",
        get: (m) => (m.model_info && m.model_info.id ? button("Check", async () => {
          await checkNow(m);
          await reload();
          await loadHistory();
        }, { class: "secondary", "aria-label": `Check ${m.model_name}` }) : "—"),
      });
    }
    if (isAdmin()) {
      cols.push({
        label: "Actions",
        get: (m) => (m.model_info && m.model_info.db_model ? actions(
          button("Edit", () => formDialog(`Edit model ${m.model_name}`, fields("edit"), {
            initial: m,
            submitText: "Save changes",
            onSubmit: async (b) => {
              if (!Object.keys(b).length) return;
              const req = body(b);
              req.model_info = { ...(req.model_info || {}), id: m.model_info.id };
              await post("/model/update", req);
              notify(`Model ${m.model_name} updated.`, "ok");
              await reload();
            },
          }), { "aria-label": `Edit ${m.model_name}` }),
          button(m.model_info.blocked ? "Unblock" : "Block", async () => {
            // a blocked model is kept and listed but routed to by no worker (LiteLLM's /model/block)
            try {
              await post(m.model_info.blocked ? "/model/unblock" : "/model/block", { model_id: m.model_info.id });
              notify(`Model ${m.model_name} ${m.model_info.blocked ? "unblocked" : "blocked"}.`, "ok");
            } catch (err) {
              notify(err.message, "error");
            }
            await reload();
          }, { class: "secondary", "aria-label": `${m.model_info.blocked ? "Unblock" : "Block"} ${m.model_name}` }),
          button("Delete", async () => {
            if (!(await confirm(`Delete model ${m.model_name} (${m.model_info.id})?`, "Delete"))) return;
            try {
              await post("/model/delete", { id: m.model_info.id });
            } catch (err) {
              notify(err.message, "error");
            }
            await reload();
          }, { class: "danger", "aria-label": `Delete ${m.model_name}` })) : h("span", { class: "muted", text: "in config file" })),
      });
    }
    append(clear(listBox), [healthNote, table(cols, rows, { testid: "models-table", empty: "No models configured." })]);
    if (readsAll() && !analyticsBox.childElementCount) {
      const groups = [...new Set(rows.map((m) => m.model_name))].sort();
      const pick = h("select", { id: "metrics-group", "aria-label": "Model group" }, groups.map((g) => h("option", { value: g, text: g })));
      const out = h("div", { "data-testid": "metrics-out" });
      const form = h("form", { class: "inline-form" }, h("label", { for: "metrics-group", text: "Model group" }), pick,
        h("button", { type: "submit", class: "secondary", "data-testid": "metrics-show", text: "Show analytics" }));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        analytics(out, pick.value);
      });
      append(analyticsBox, [h("h2", { text: "Model analytics" }), form, out]);
    }
  };
  const tools = [button("Refresh", async () => {
    await reload();
    await loadHistory();
  }, { class: "secondary", "data-testid": "models-refresh" })];
  if (isAdmin() && canWrite()) {
    tools.push(button("Add model", () => formDialog("Add a database model", fields("create"), {
      submitText: "Add model",
      extra: [{ text: "Test connection", testid: "model-test", run: testConnection }],
      onSubmit: async (b) => {
        await post("/model/new", body(b));
        notify("Model added.", "ok");
        await reload();
      },
    }), { "data-testid": "model-create" }));
  }
  container.append(pageHeader("Models", tools), listBox, analyticsBox, historyBox);
  await reload();
  await loadHistory();
}

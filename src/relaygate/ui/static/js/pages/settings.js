// Settings: the effective config from /config/view (secrets come masked from the server) as a tree of
// <details>, and a reload button (POST /config/reload) for the proxy admin; the logging callbacks and alert
// channels the gateway runs (/callbacks/list, /active/callbacks), each with a Test button for the proxy admin
// (GET /health/services: a mock request to that exporter, or a test alert); the general settings the database may
// set (GET /config/list), each with where its value comes from, and for the proxy admin Edit (POST
// /config/field/update) and Reset (POST /config/field/delete) on those the config file leaves out.

import { get, isAdmin, post } from "../api.js";
import { actions, button, clear, confirm, errorBox, h, notify, table } from "../dom.js";
import { badge, formDialog, pageHeader } from "../crud.js";

function tree(value, depth) {
  if (value === null || typeof value !== "object") {
    return h("span", { class: `leaf ${value === null ? "null" : typeof value}`, text: JSON.stringify(value) });
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  if (!entries.length) return h("span", { class: "leaf", text: Array.isArray(value) ? "[]" : "{}" });
  const list = h("ul", { class: "tree" });
  for (const [k, v] of entries) {
    if (v !== null && typeof v === "object" && Object.keys(v).length) {
      list.append(h("li", {}, h("details", { open: depth < 1 }, h("summary", { text: `${k} ${Array.isArray(v) ? `[${v.length}]` : ""}` }), tree(v, depth + 1))));
    } else {
      list.append(h("li", {}, h("span", { class: "key", text: `${k}: ` }), tree(v, depth + 1)));
    }
  }
  return list;
}

// "['slack', 'webhook']" (LiteLLM's spelling of the alerting list in /active/callbacks) -> its names
function reprNames(text) {
  return typeof text === "string" ? [...text.matchAll(/'([^']*)'/g)].map((m) => m[1]) : [];
}

function callbacksSection() {
  const box = h("div", { "data-testid": "callbacks" });
  const test = async (service) => {
    try {
      const out = await get("/health/services", { service });
      notify(`${service}: ${out.message || out.status}`, "ok");
    } catch (err) {
      notify(`${service}: ${err.message}`, "error");
    }
  };
  const load = async () => {
    try {
      const [lists, active] = await Promise.all([get("/callbacks/list"), get("/active/callbacks")]);
      const rows = [];
      for (const [kind, names] of [["success and failure", lists.success_and_failure], ["success", lists.success], ["failure", lists.failure]]) {
        for (const name of names || []) rows.push({ name, kind, testable: name !== "json_logs" });
      }
      // a PagerDuty test would page whoever is on call: Slack and the webhook only, as LiteLLM tests them
      for (const name of reprNames(active.alerting)) rows.push({ name, kind: "alerting", testable: name === "slack" || name === "webhook" });
      const cols = [{ label: "Name", get: (r) => r.name }, { label: "Runs on", get: (r) => r.kind }];
      if (isAdmin()) {
        cols.push({ label: "", class: "actions", get: (r) => (r.testable ? actions(button("Test", () => test(r.name), { class: "secondary", "aria-label": `Test ${r.name}` })) : "") });
      }
      clear(box).append(table(cols, rows, { testid: "callbacks-table", empty: "No logging callback or alerting configured.", rowAttrs: (r) => ({ "data-row": r.name }) }));
    } catch (err) {
      clear(box).append(errorBox(err));
    }
  };
  return { box, load };
}

// LiteLLM's /config/list field types -> the form's control (lists and mappings are edited as JSON)
const CONTROL = { Boolean: "check", Integer: "int", Float: "number", String: "text" };
const SOURCE = { config: ["config file", ""], db: ["database", "info"], unset: ["default", ""] };

function generalSection() {
  const box = h("div", { "data-testid": "general-settings" });
  const save = async (r, body) => {
    if (!("value" in body)) return false; // nothing changed
    await post("/config/field/update", { field_name: r.field_name, field_value: body.value, config_type: "general_settings" });
    return true;
  };
  const edit = (r) => {
    const type = CONTROL[r.field_type] || "json";
    const current = r.field_value !== null ? r.field_value : type === "check" ? r.field_default_value : null;
    formDialog(`Edit ${r.field_name}`, [{ name: "value", label: r.field_name, type, help: r.field_description }], {
      testid: "general-edit",
      initial: { value: current },
      onSubmit: (body) => save(r, body),
      after: async (changed) => {
        if (changed) notify(`${r.field_name} saved: every worker serves it within a second.`, "ok");
        await load();
      },
    });
  };
  const reset = async (r) => {
    if (!(await confirm(`Remove ${r.field_name} from the database? Its default applies again.`, "Reset"))) return;
    try {
      await post("/config/field/delete", { field_name: r.field_name, config_type: "general_settings" });
      notify(`${r.field_name} reset.`, "ok");
    } catch (err) {
      notify(err.message, "error");
    }
    await load();
  };
  const load = async () => {
    try {
      const rows = await get("/config/list", { config_type: "general_settings" });
      const cols = [
        { label: "Setting", get: (r) => h("span", { title: r.field_description, text: r.field_name }) },
        { label: "Value", get: (r) => (r.field_value === null ? h("span", { class: "muted", text: `default (${JSON.stringify(r.field_default_value)})` }) : JSON.stringify(r.field_value)) },
        { label: "From", get: (r) => badge(...(SOURCE[r.source] || [r.source, ""])) },
      ];
      if (isAdmin()) {
        cols.push({ label: "", class: "actions", get: (r) => (r.editable ? actions(
          button("Edit", () => edit(r), { class: "secondary", "aria-label": `Edit ${r.field_name}` }),
          ...(r.source === "db" ? [button("Reset", () => reset(r), { class: "secondary", "aria-label": `Reset ${r.field_name}` })] : [])) : "") });
      }
      clear(box).append(table(cols, rows, { testid: "general-table", rowAttrs: (r) => ({ "data-row": r.field_name }) }));
    } catch (err) {
      clear(box).append(errorBox(err));
    }
  };
  return { box, load };
}

export async function render(container) {
  const box = h("div", { class: "page-body", "data-testid": "config-tree" });
  const load = async () => {
    try {
      clear(box).append(tree(await get("/config/view"), 0));
    } catch (err) {
      clear(box).append(errorBox(err));
    }
  };
  const tools = [button("Refresh", load, { class: "secondary" })];
  if (isAdmin()) {
    tools.push(button("Reload config", async () => {
      if (!(await confirm("Reload the config file on every worker?", "Reload"))) return;
      try {
        const out = await post("/config/reload");
        notify(`Config reloaded${out && out.generation !== undefined ? ` (generation ${out.generation})` : ""}.`, "ok");
      } catch (err) {
        notify(err.message, "error");
      }
      await load();
    }, { "data-testid": "config-reload" }));
  }
  const callbacks = callbacksSection();
  const general = generalSection();
  container.append(pageHeader("Settings", tools), h("p", { class: "muted", text: "The effective configuration, secrets masked. Edit the config file and reload to change it." }), box,
    h("h2", { text: "General settings" }), h("p", { class: "muted", text: "Settings stored in the database (with store_model_in_db), served over the config file's: a setting the file sets is the file's." }), general.box,
    h("h2", { text: "Logging & alerts" }), h("p", { class: "muted", text: "Test sends a mock request to that callback alone, or a test alert to that channel." }), callbacks.box);
  await Promise.all([load(), callbacks.load(), general.load()]);
}

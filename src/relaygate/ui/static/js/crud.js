// A list page with create / edit / delete dialogs, shared by teams, users, organizations, customers,
// budgets and models: a spec names how to load the rows, the table's columns, the form's fields and the
// API calls; the page reloads its rows after each change. Write buttons appear only for roles that write.

import { canWrite } from "./api.js";
import { actions, append, button, clear, confirm, dialog, errorBox, h, notify, table } from "./dom.js";
import { buildForm } from "./forms.js";

function cap(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function pageHeader(title, ...extra) {
  return h("div", { class: "page-head" }, h("h1", { text: title }), h("div", { class: "page-tools" }, extra));
}

// A form in a dialog; opts.after(result) runs once the dialog has closed after a successful submit.
export function formDialog(title, fields, opts) {
  let dlg = null;
  let done = false;
  let result;
  const form = buildForm(fields, {
    ...opts,
    testid: opts.testid ? `${opts.testid}-form` : undefined,
    onCancel: () => dlg.close(),
    onSubmit: async (body) => {
      result = await opts.onSubmit(body);
      done = true;
      dlg.close();
    },
  });
  dlg = dialog(title, form, { wide: true, testid: opts.testid, onclose: () => { if (done && opts.after) opts.after(result); } });
  return dlg;
}

// spec: {entity, title, load, columns, fields(mode,row), create(body), update(row, body), remove(row),
//        rowActions(row, reload), tools(reload), writable (edit, delete), creatable, describe(row)}
export async function crudPage(container, spec) {
  const writable = spec.writable !== undefined ? spec.writable : canWrite();
  const creatable = spec.creatable !== undefined ? spec.creatable : writable;
  const body = h("div", { class: "page-body" });
  let page = 1;
  const reload = async () => {
    let rows;
    let pages = 1;
    try {
      const got = await spec.load(page);
      // a paged spec answers {rows, pages}; others the rows
      rows = Array.isArray(got) ? got : got.rows;
      pages = Array.isArray(got) ? 1 : Math.max(1, got.pages || 1);
    } catch (err) {
      clear(body).append(errorBox(err));
      return;
    }
    const columns = [...spec.columns];
    columns.push({
      label: "Actions",
      class: "actions-col",
      get: (row) => {
        const btns = [];
        if (spec.rowActions) btns.push(...spec.rowActions(row, reload));
        if (writable && spec.update) {
          btns.push(button("Edit", async () => {
            formDialog(`Edit ${spec.entity} ${spec.describe(row)}`, await spec.fields("edit", row), {
              initial: row,
              submitText: "Save changes",
              testid: `${spec.entity}-edit-dialog`,
              onSubmit: async (b) => {
                if (!Object.keys(b).length) return;
                await spec.update(row, b);
                notify(`${cap(spec.entity)} ${spec.describe(row)} updated.`, "ok");
                await reload();
              },
            });
          }, { "data-testid": `${spec.entity}-edit`, "aria-label": `Edit ${spec.describe(row)}` }));
        }
        if (writable && spec.remove) {
          btns.push(button("Delete", async () => {
            if (!(await confirm(`Delete ${spec.entity} ${spec.describe(row)}? This cannot be undone.`, "Delete"))) return;
            try {
              await spec.remove(row);
              notify(`${cap(spec.entity)} ${spec.describe(row)} deleted.`, "ok");
            } catch (err) {
              notify(err.message, "error");
            }
            await reload();
          }, { class: "danger", "data-testid": `${spec.entity}-delete`, "aria-label": `Delete ${spec.describe(row)}` }));
        }
        return actions(btns);
      },
    });
    clear(body).append(table(columns, rows, {
      testid: `${spec.entity}-table`,
      empty: spec.empty,
      rowAttrs: (r) => ({ "data-row": spec.describe(r) }),
    }));
    if (pages > 1 || page > 1) {
      body.append(h("div", { class: "pager" },
        button("Previous", () => { page -= 1; reload(); }, { disabled: page <= 1 }),
        h("span", { class: "muted", text: `Page ${page} of ${pages}` }),
        button("Next", () => { page += 1; reload(); }, { disabled: page >= pages })));
    }
  };
  const tools = [];
  if (spec.tools) tools.push(...spec.tools(reload));
  if (creatable && spec.create) {
    tools.push(button(`Create ${spec.entity}`, async () => {
      formDialog(`Create ${spec.entity}`, await spec.fields("create", null), {
        submitText: "Create",
        testid: `${spec.entity}-create-dialog`,
        onSubmit: async (b) => {
          const out = await spec.create(b);
          notify(`${cap(spec.entity)} created.`, "ok");
          await reload();
          if (spec.created) spec.created(out);
        },
      });
    }, { "data-testid": `${spec.entity}-create` }));
  }
  append(container, [pageHeader(spec.title, tools), spec.intro ? h("p", { class: "muted", text: spec.intro }) : null, body]);
  await reload();
  return reload;
}

// Budget and limit fields shared by keys, teams, users, organizations, customers and budgets.
export function limitFields(opts) {
  const o = opts || {};
  const out = [
    { name: "max_budget", label: "Max budget (USD)", type: "number" },
    { name: "soft_budget", label: "Soft budget (USD)", type: "number" },
    { name: "budget_duration", label: "Budget duration", type: "text", placeholder: "30d, 1h, 7d...", help: "The budget resets after this period." },
    { name: "tpm_limit", label: "TPM limit", type: "int" },
    { name: "rpm_limit", label: "RPM limit", type: "int" },
    { name: "max_parallel_requests", label: "Max parallel requests", type: "int" },
    { name: "model_max_budget", label: "Per-model budgets (JSON)", type: "json", advanced: true, placeholder: "{\"gpt-4o\": {\"budget_limit\": 10, \"time_period\": \"30d\"}}" },
  ];
  if (o.modelLimits) {  // keys and teams: their budget windows (LiteLLM's budget_limits) and per-model limits
    out.push({ name: "budget_limits", label: "Budget windows (JSON)", type: "json", advanced: true, placeholder: "[{\"budget_duration\": \"1d\", \"max_budget\": 10}, {\"budget_duration\": \"30d\", \"max_budget\": 200}]", help: "Each window refuses on its own once its spend reaches its budget." });
    out.push({ name: "model_tpm_limit", label: "Per-model TPM limits (JSON)", type: "json", advanced: true, placeholder: "{\"gpt-4o\": 10000}" });
    out.push({ name: "model_rpm_limit", label: "Per-model RPM limits (JSON)", type: "json", advanced: true, placeholder: "{\"gpt-4o\": 100}" });
  }
  return out;
}

let modelCache = null;
export async function modelNames() {
  if (modelCache) return modelCache;
  const { get } = await import("./api.js");
  try {
    const info = await get("/model/info");
    modelCache = [...new Set((info.data || []).map((m) => m.model_name))].sort();
  } catch {
    modelCache = [];
  }
  setTimeout(() => { modelCache = null; }, 30000);
  return modelCache;
}

export async function teamOptions() {
  const { get } = await import("./api.js");
  try {
    const teams = await get("/team/list");
    return (Array.isArray(teams) ? teams : []).map((t) => ({ value: t.team_id, alias: t.team_alias || t.team_id, label: t.team_alias ? `${t.team_alias} (${t.team_id})` : t.team_id }));
  } catch {
    return [];
  }
}

// team_id -> its alias, for tables that show a team
export function teamNames(options) {
  return new Map((options || []).map((o) => [o.value, o.alias]));
}

export function budgetText(spend, max) {
  const s = Number(spend || 0);
  const money = (v) => (v < 0.01 && v > 0 ? `$${v.toPrecision(3)}` : `$${v.toFixed(2)}`);
  return max === null || max === undefined ? `${money(s)} / no limit` : `${money(s)} / ${money(Number(max))}`;
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}`, text });
}

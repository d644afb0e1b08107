// Keys: /key/list with search (an alias, or a key / its hash through /key/info) and paging; create with
// every field /key/generate takes; the new key shown once; edit (/key/update), block / unblock,
// reset spend (/key/{key}/reset_spend, to 0), regenerate (with an optional grace period for the current key; the new key
// shown once) and delete with confirmation.

import { canWrite, get, isAdmin, keyRef, post, session } from "../api.js";
import { actions, button, clear, confirm, errorBox, h, notify, showSecretOnce, table, usd, when } from "../dom.js";
import { badge, budgetText, formDialog, limitFields, modelNames, pageHeader, teamNames, teamOptions } from "../crud.js";

async function keyFields(mode) {
  const [models, teams] = await Promise.all([modelNames(), teamOptions()]);
  const fields = [
    { name: "key_alias", label: "Key alias", type: "text" },
  ];
  if (mode === "create") {
    fields.push({ name: "key", label: "Custom key (optional)", type: "password", help: "Leave empty to generate one. Must start with sk-." });
  }
  fields.push(
    { name: "team_id", label: "Team", type: "select", options: teams, emptyLabel: "No team" },
    { name: "user_id", label: "User ID", type: "text", placeholder: mode === "create" ? (session() && session().user_id) || "" : "" },
    { name: "organization_id", label: "Organization ID", type: "text", advanced: true },
    { name: "models", label: "Models (none = all the owner may use)", type: "multi", options: models },
    { name: "duration", label: "Duration", type: "text", placeholder: "30d, 12h... empty = never expires", help: "Expires this long after now." },
    { name: "expires", label: "Or expires at (UTC)", type: "datetime", advanced: true },
    { name: "budget_id", label: "Budget ID", type: "text", advanced: true },
    ...limitFields({ modelLimits: true }),
    { name: "tags", label: "Tags", type: "list", placeholder: "comma, separated" },
    { name: "allowed_routes", label: "Allowed routes", type: "list", placeholder: "/chat/completions, llm_api_routes", advanced: true },
    { name: "allowed_cache_controls", label: "Allowed cache controls", type: "list", placeholder: "no-cache, no-store", advanced: true },
    { name: "metadata", label: "Metadata (JSON)", type: "json", placeholder: "{\"env\": \"prod\"}" },
    { name: "aliases", label: "Model aliases (JSON)", type: "json", placeholder: "{\"gpt-4\": \"gpt-4o\"}", advanced: true },
    { name: "permissions", label: "Permissions (JSON)", type: "json", placeholder: "{\"pii_masking\": true}", advanced: true },
    { name: "config", label: "Config (JSON)", type: "json", advanced: true },
    { name: "router_settings", label: "Router settings (JSON)", type: "json", advanced: true },
  );
  if (isAdmin()) fields.push({ name: "spend", label: "Spend so far (USD)", type: "number", advanced: true });
  fields.push({ name: "blocked", label: "Blocked", type: "check" });
  return fields;
}

function status(k) {
  if (k.blocked) return badge("blocked", "bad");
  if (k.expires && new Date(k.expires) < new Date()) return badge("expired", "warn");
  return badge("active", "ok");
}

export async function render(container) {
  const writable = canWrite();
  let page = 1;
  let search = "";
  const size = 10;
  const body = h("div", { class: "page-body" });

  const load = async () => {
    if (/^[0-9a-f]{64}$/.test(search)) {
      try {
        const info = await get("/key/info", { key: search });
        return { keys: [{ ...info.info, token: info.key }], total_count: 1, total_pages: 1 };
      } catch (err) {
        if (err.status === 404) return { keys: [], total_count: 0, total_pages: 1 };
        throw err;
      }
    }
    return get("/key/list", { return_full_object: "true", page, size, key_alias: search || undefined });
  };

  const reload = async () => {
    let out;
    let names = new Map();
    try {
      [out, names] = await Promise.all([load(), teamOptions().then(teamNames)]);
    } catch (err) {
      clear(body).append(errorBox(err));
      return;
    }
    const keys = (out.keys || []).filter((k) => typeof k === "object");
    const columns = [
      { label: "Alias", get: (k) => k.key_alias || "—" },
      { label: "Key", class: "mono", get: (k) => k.key_name || "—" },
      { label: "Team", get: (k) => (k.team_id ? names.get(k.team_id) || k.team_id : null) },
      { label: "User", get: (k) => k.user_id },
      { label: "Models", get: (k) => (k.models && k.models.length ? k.models : "all") },
      { label: "Spend / budget", get: (k) => budgetText(k.spend, k.max_budget) },
      { label: "TPM / RPM", get: (k) => `${k.tpm_limit ?? "—"} / ${k.rpm_limit ?? "—"}` },
      { label: "Expires", get: (k) => (k.expires ? when(k.expires) : "never") },
      { label: "Status", get: status },
    ];
    if (writable) columns.push({ label: "Actions", class: "actions-col", get: (k) => rowActions(k) });
    const total = out.total_count ?? keys.length;
    const pages = Math.max(1, out.total_pages || 1);
    const prev = button("Previous", () => { page -= 1; reload(); }, { disabled: page <= 1, "data-testid": "keys-prev" });
    const next = button("Next", () => { page += 1; reload(); }, { disabled: page >= pages, "data-testid": "keys-next" });
    clear(body).append(
      table(columns, keys, { testid: "keys-table", rowAttrs: (k) => ({ "data-row": k.key_alias || k.token }) }),
      h("div", { class: "pager" }, prev, h("span", { class: "muted", text: `Page ${page} of ${pages} · ${total} keys` }), next));
  };

  const rowActions = (k) => {
    const name = k.key_alias || k.key_name || "key";
    const ref = k.token;
    return actions(
      button("Edit", async () => {
        formDialog(`Edit key ${name}`, await keyFields("edit"), {
          initial: k,
          submitText: "Save changes",
          testid: "key-edit-dialog",
          onSubmit: async (b) => {
            if (!Object.keys(b).length) return;
            await post("/key/update", { key: ref, ...b });
            notify(`Key ${name} updated.`, "ok");
            await reload();
          },
        });
      }, { "data-testid": "key-edit", "aria-label": `Edit ${name}` }),
      button(k.blocked ? "Unblock" : "Block", async () => {
        try {
          await post(k.blocked ? "/key/unblock" : "/key/block", { key: ref });
          notify(`Key ${name} ${k.blocked ? "unblocked" : "blocked"}.`, "ok");
        } catch (err) {
          notify(err.message, "error");
        }
        await reload();
      }, { "data-testid": k.blocked ? "key-unblock" : "key-block", "aria-label": `${k.blocked ? "Unblock" : "Block"} ${name}` }),
      button("Reset spend", async () => {
        if (!(await confirm(`Reset the spend of ${name} (${usd(k.spend || 0)}) to $0? Its budget counts from 0 again.`, "Reset spend"))) return;
        try {
          const out = await post(`/key/${encodeURIComponent(ref)}/reset_spend`, { reset_to: 0 });
          notify(`Spend of ${name} reset (was ${usd(out.previous_spend)}).`, "ok");
        } catch (err) {
          notify(err.message, "error");
        }
        await reload();
      }, { "data-testid": "key-reset-spend", "aria-label": `Reset the spend of ${name}` }),
      button("Regenerate", () => formDialog(`Regenerate ${name}`, [
        { name: "grace_period", label: "The current key keeps working for", type: "text", placeholder: "empty = stops at once; 24h, 2d...",
          help: "A grace period: clients move to the new key without an outage (it then works as the new key)." },
      ], {
        submitText: "Regenerate",
        testid: "key-regenerate-dialog",
        onSubmit: async (b) => post("/key/regenerate", { key: ref, ...(b.grace_period ? { grace_period: b.grace_period } : {}) }),
        after: async (out) => {
          showSecretOnce(`New key for ${name}`, out.key);
          await reload();
        },
      }), { "data-testid": "key-regenerate", "aria-label": `Regenerate ${name}` }),
      button("Delete", async () => {
        if (!(await confirm(`Delete key ${name}? Requests with it will be refused.`, "Delete"))) return;
        try {
          await post("/key/delete", { keys: [ref] });
          notify(`Key ${name} deleted.`, "ok");
          if (search === ref) {
            search = ""; // it was found by its hash: nothing left to find
            searchInput.value = "";
          }
        } catch (err) {
          notify(err.message, "error");
        }
        await reload();
      }, { class: "danger", "data-testid": "key-delete", "aria-label": `Delete ${name}` }));
  };

  const searchInput = h("input", { id: "key-search", type: "search", placeholder: "alias, sk-... or hash", autocomplete: "off" });
  const searchForm = h("form", { class: "search", role: "search" },
    h("label", { for: "key-search", text: "Search keys" }), searchInput,
    h("button", { type: "submit", class: "secondary", text: "Search" }));
  searchForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    page = 1;
    keyRef(searchInput.value).then((ref) => {
      search = ref; // a key typed in clear is searched by its hash, so it never goes into a URL
      if (ref !== searchInput.value.trim()) searchInput.value = ref;
      reload();
    }, (err) => notify(err.message, "error"));
  });
  const tools = [searchForm];
  if (writable) {
    tools.push(button("Create key", async () => {
      formDialog("Create key", await keyFields("create"), {
        submitText: "Create key",
        testid: "key-create-dialog",
        onSubmit: async (b) => {
          const out = await post("/key/generate", b);
          reload();
          return out;
        },
        after: (out) => showSecretOnce(`Key ${out.key_alias || out.key_name || ""} created`, out.key),
      });
    }, { "data-testid": "key-create" }));
  }
  container.append(pageHeader("Keys", tools), body);
  await reload();
}

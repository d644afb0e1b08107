// Users: /user/list (paged, 25 a page), create (/user/new, with a password for
// the UI's sign-in and a role), edit (/user/update), delete (/user/delete).

import { get, isAdmin, post } from "../api.js";
import { badge, budgetText, crudPage, limitFields, modelNames } from "../crud.js";
import { showSecretOnce } from "../dom.js";

const ROLES = ["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"];

async function fields(mode) {
  const models = await modelNames();
  const out = [];
  if (mode === "create") out.push({ name: "user_id", label: "User ID (optional)", type: "text", help: "Generated when empty." });
  out.push(
    { name: "user_email", label: "Email", type: "text" },
    { name: "user_alias", label: "Display name", type: "text" },
    { name: "user_role", label: "Role", type: "select", options: ROLES, default: "internal_user" },
    { name: "password", label: mode === "create" ? "Password (for UI sign-in)" : "New password (empty = unchanged)", type: "password" },
    { name: "organization_id", label: "Organization ID", type: "text" },
    { name: "models", label: "Models (none = all)", type: "multi", options: models },
    ...limitFields(),
    { name: "allowed_cache_controls", label: "Allowed cache controls", type: "list" },
    { name: "metadata", label: "Metadata (JSON)", type: "json" },
    { name: "blocked", label: "Blocked", type: "check" },
  );
  if (mode === "create") {
    out.push(
      { name: "teams", label: "Teams (IDs)", type: "list" },
      { name: "auto_create_key", label: "Also create a key for the user", type: "check" },
      { name: "key_alias", label: "Alias of that key", type: "text" },
      { name: "duration", label: "Duration of that key", type: "text", placeholder: "30d" },
    );
  }
  return out;
}

export async function render(container) {
  await crudPage(container, {
    entity: "user",
    title: "Users",
    writable: isAdmin(),
    describe: (u) => u.user_email || u.user_id,
    load: async (page) => {
      const out = await get("/user/list", { page, page_size: 25 });
      return { rows: out.users || [], pages: out.total_pages };
    },
    columns: [
      { label: "User ID", class: "mono", get: (u) => u.user_id },
      { label: "Email", get: (u) => u.user_email },
      { label: "Role", get: (u) => u.user_role },
      { label: "Teams", get: (u) => u.teams },
      { label: "Spend / budget", get: (u) => budgetText(u.spend, u.max_budget) },
      { label: "Status", get: (u) => (u.blocked ? badge("blocked", "bad") : badge("active", "ok")) },
    ],
    fields,
    create: async (b) => {
      const body = { auto_create_key: false, ...b };
      return post("/user/new", body);
    },
    created: (out) => {
      if (out && out.key) showSecretOnce(`Key for ${out.user_email || out.user_id}`, out.key);
    },
    update: (u, b) => post("/user/update", { user_id: u.user_id, ...b }),
    remove: (u) => post("/user/delete", { user_ids: [u.user_id] }),
    intro: "Users with a password can sign in here; their role decides what they may see and change.",
  });
}

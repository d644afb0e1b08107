// Organizations: /organization/list, create (/organization/new), edit (/organization/update), delete
// (/organization/delete) and members (/organization/member_add, member_update, member_delete).

import { canWrite, get, isAdmin, post } from "../api.js";
import { actions, button, clear, dialog, h, notify, table } from "../dom.js";
import { budgetText, crudPage, limitFields, modelNames } from "../crud.js";
import { buildForm } from "../forms.js";

const ORG_ROLES = ["org_admin", "internal_user", "internal_user_viewer"];

async function fields(mode) {
  const models = await modelNames();
  const out = [];
  if (mode === "create") out.push({ name: "organization_id", label: "Organization ID (optional)", type: "text" });
  out.push(
    { name: "organization_alias", label: "Name", type: "text", required: mode === "create" },
    { name: "models", label: "Models (none = all)", type: "multi", options: models },
    { name: "budget_id", label: "Budget ID", type: "text" },
    ...limitFields(),
    { name: "metadata", label: "Metadata (JSON)", type: "json" },
  );
  return out;
}

function flat(o) {
  // the budget fields live in the organization's budget row
  return { ...(o.litellm_budget_table || {}), ...o };
}

function membersDialog(org, reload) {
  const box = h("div", {});
  let members = org.members || [];
  const refresh = async () => {
    const info = await get("/organization/info", { organization_id: org.organization_id });
    members = info.members || [];
    draw();
    reload();
  };
  const act = (fn) => async () => {
    try {
      await fn();
      await refresh();
    } catch (err) {
      notify(err.message, "error");
    }
  };
  const draw = () => {
    const cols = [
      { label: "User ID", get: (m) => m.user_id },
      { label: "Email", get: (m) => m.user_email },
      { label: "Role", get: (m) => m.user_role || m.role },
      { label: "Spend", get: (m) => budgetText(m.spend, null).split(" /")[0] },
    ];
    if (canWrite()) {
      cols.push({
        label: "Actions",
        get: (m) => actions(button("Remove", act(() => post("/organization/member_delete", { organization_id: org.organization_id, user_id: m.user_id })), { class: "danger", "aria-label": `Remove ${m.user_id}` })),
      });
    }
    clear(box).append(table(cols, members, { testid: "org-members", empty: "No members." }));
    if (canWrite()) {
      box.append(h("h3", { text: "Add or update a member" }), buildForm([
        { name: "user_id", label: "User ID", type: "text" },
        { name: "user_email", label: "User email", type: "text" },
        { name: "role", label: "Role", type: "select", options: ORG_ROLES, default: "internal_user" },
        { name: "max_budget_in_organization", label: "Budget in organization (USD)", type: "number" },
      ], {
        submitText: "Save member",
        onSubmit: async (b) => {
          if (!b.user_id && !b.user_email) throw new Error("Give a user ID or an email.");
          const known = members.some((m) => (b.user_id && m.user_id === b.user_id) || (b.user_email && m.user_email === b.user_email));
          if (known) {
            await post("/organization/member_update", { organization_id: org.organization_id, ...b });
          } else {
            const member = { role: b.role || "internal_user" };
            if (b.user_id) member.user_id = b.user_id;
            if (b.user_email) member.user_email = b.user_email;
            const req = { organization_id: org.organization_id, member };
            if (b.max_budget_in_organization !== undefined) req.max_budget_in_organization = b.max_budget_in_organization;
            await post("/organization/member_add", req);
          }
          await refresh();
        },
      }));
    }
  };
  draw();
  dialog(`Members of ${org.organization_alias || org.organization_id}`, box, { wide: true, testid: "org-members-dialog" });
}

export async function render(container) {
  await crudPage(container, {
    entity: "organization",
    title: "Organizations",
    creatable: isAdmin(),
    describe: (o) => o.organization_alias || o.organization_id,
    load: async () => {
      const out = await get("/organization/list");
      return (Array.isArray(out) ? out : []).map(flat);
    },
    columns: [
      { label: "Name", get: (o) => o.organization_alias },
      { label: "ID", class: "mono", get: (o) => o.organization_id },
      { label: "Models", get: (o) => (o.models && o.models.length ? o.models : "all") },
      { label: "Spend / budget", get: (o) => budgetText(o.spend, o.max_budget) },
      { label: "Teams", get: (o) => String((o.teams || []).length) },
      { label: "Members", get: (o) => String((o.members || []).length) },
    ],
    fields,
    create: (b) => post("/organization/new", b),
    update: (o, b) => post("/organization/update", { organization_id: o.organization_id, ...b }),
    remove: (o) => post("/organization/delete", { organization_ids: [o.organization_id] }),
    rowActions: (o, reload) => [button("Members", () => membersDialog(o, reload), { "aria-label": `Members of ${o.organization_alias || o.organization_id}` })],
  });
}

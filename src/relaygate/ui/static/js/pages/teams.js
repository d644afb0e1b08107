// Teams: /team/list, create (/team/new), edit (/team/update), block / unblock, delete (/team/delete) and
// members (/team/member_add, /team/member_update, /team/member_delete).

import { canWrite, get, isAdmin, post } from "../api.js";
import { actions, button, clear, dialog, h, notify, table } from "../dom.js";
import { badge, budgetText, crudPage, limitFields, modelNames } from "../crud.js";
import { buildForm } from "../forms.js";

async function fields(mode) {
  const models = await modelNames();
  const out = [];
  if (mode === "create") out.push({ name: "team_id", label: "Team ID (optional)", type: "text", help: "Generated when empty." });
  out.push(
    { name: "team_alias", label: "Team alias", type: "text" },
    { name: "organization_id", label: "Organization ID", type: "text" },
    { name: "models", label: "Models (none = all)", type: "multi", options: models },
    ...limitFields({ modelLimits: true }),
    { name: "team_member_budget", label: "Default budget per member (USD)", type: "number" },
    { name: "team_member_permissions", label: "Member permissions", type: "list", placeholder: "/key/generate, /key/update", advanced: true },
    { name: "model_aliases", label: "Model aliases (JSON)", type: "json", advanced: true },
    { name: "metadata", label: "Metadata (JSON)", type: "json" },
    { name: "router_settings", label: "Router settings (JSON)", type: "json", advanced: true },
    { name: "blocked", label: "Blocked", type: "check" },
  );
  return out;
}

function membersDialog(team, reload) {
  const box = h("div", {});
  let current = team;
  const draw = () => {
    const members = current.members_with_roles || [];
    const cols = [
      { label: "User ID", get: (m) => m.user_id },
      { label: "Email", get: (m) => m.user_email },
      { label: "Role", get: (m) => m.role },
    ];
    if (canWrite()) {
      cols.push({
        label: "Actions",
        get: (m) => actions(
          button(m.role === "admin" ? "Make user" : "Make admin", async () => {
            try {
              await post("/team/member_update", { team_id: team.team_id, user_id: m.user_id, role: m.role === "admin" ? "user" : "admin" });
              await refresh();
            } catch (err) {
              notify(err.message, "error");
            }
          }),
          button("Remove", async () => {
            try {
              await post("/team/member_delete", { team_id: team.team_id, user_id: m.user_id });
              await refresh();
            } catch (err) {
              notify(err.message, "error");
            }
          }, { class: "danger", "aria-label": `Remove ${m.user_id}` })),
      });
    }
    clear(box).append(table(cols, members, { testid: "team-members", empty: "No members." }));
    if (canWrite()) {
      box.append(h("h3", { text: "Add a member" }), buildForm([
        { name: "user_id", label: "User ID", type: "text" },
        { name: "user_email", label: "User email", type: "text" },
        { name: "role", label: "Role", type: "select", options: ["user", "admin"], default: "user" },
        { name: "max_budget_in_team", label: "Budget in team (USD)", type: "number" },
      ], {
        submitText: "Add member",
        onSubmit: async (b) => {
          const member = { role: b.role || "user" };
          if (b.user_id) member.user_id = b.user_id;
          if (b.user_email) member.user_email = b.user_email;
          if (!member.user_id && !member.user_email) throw new Error("Give a user ID or an email.");
          const req = { team_id: team.team_id, member };
          if (b.max_budget_in_team !== undefined) req.max_budget_in_team = b.max_budget_in_team;
          await post("/team/member_add", req);
          await refresh();
        },
      }));
    }
  };
  const refresh = async () => {
    const info = await get("/team/info", { team_id: team.team_id });
    current = info.team_info || current;
    draw();
    reload();
  };
  draw();
  dialog(`Members of ${team.team_alias || team.team_id}`, box, { wide: true, testid: "team-members-dialog" });
}

export async function render(container) {
  await crudPage(container, {
    entity: "team",
    title: "Teams",
    creatable: isAdmin(), // a team admin edits its team; only the proxy admin creates teams
    describe: (t) => t.team_alias || t.team_id,
    load: async () => {
      const out = await get("/team/list");
      return Array.isArray(out) ? out : [];
    },
    columns: [
      { label: "Alias", get: (t) => t.team_alias },
      { label: "Team ID", class: "mono", get: (t) => t.team_id },
      { label: "Organization", get: (t) => t.organization_id },
      { label: "Models", get: (t) => (t.models && t.models.length ? t.models : "all") },
      { label: "Spend / budget", get: (t) => budgetText(t.spend, t.max_budget) },
      { label: "Members", get: (t) => String((t.members_with_roles || []).length) },
      { label: "Status", get: (t) => (t.blocked ? badge("blocked", "bad") : badge("active", "ok")) },
    ],
    fields,
    create: (b) => post("/team/new", b),
    update: (t, b) => post("/team/update", { team_id: t.team_id, ...b }),
    remove: (t) => post("/team/delete", { team_ids: [t.team_id] }),
    rowActions: (t, reload) => {
      const out = [button("Members", () => membersDialog(t, reload), { "data-testid": "team-members-open", "aria-label": `Members of ${t.team_alias || t.team_id}` })];
      if (isAdmin()) {
        out.push(button(t.blocked ? "Unblock" : "Block", async () => {
          try {
            await post(t.blocked ? "/team/unblock" : "/team/block", { team_id: t.team_id });
          } catch (err) {
            notify(err.message, "error");
          }
          await reload();
        }));
      }
      return out;
    },
  });
}

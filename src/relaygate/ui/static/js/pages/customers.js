// Customers (end users): /customer/list, create (/customer/new), edit (/customer/update), block /
// unblock, delete (/customer/delete).

import { get, isAdmin, post } from "../api.js";
import { button, notify } from "../dom.js";
import { badge, budgetText, crudPage, limitFields } from "../crud.js";

async function fields(mode) {
  const out = [];
  if (mode === "create") out.push({ name: "user_id", label: "Customer ID", type: "text", required: true, help: "The `user` your clients send." });
  out.push(
    { name: "alias", label: "Alias", type: "text" },
    { name: "default_model", label: "Default model", type: "text" },
    { name: "allowed_model_region", label: "Allowed model region", type: "select", options: ["eu", "us"] },
    { name: "budget_id", label: "Budget ID", type: "text" },
    ...limitFields(),
    { name: "metadata", label: "Metadata (JSON)", type: "json" },
    { name: "blocked", label: "Blocked", type: "check" },
  );
  return out;
}

function flat(c) {
  return { ...(c.litellm_budget_table || {}), ...c };
}

export async function render(container) {
  await crudPage(container, {
    entity: "customer",
    title: "Customers",
    describe: (c) => c.alias || c.user_id,
    load: async () => {
      const out = await get("/customer/list");
      return (Array.isArray(out) ? out : []).map(flat);
    },
    columns: [
      { label: "Customer ID", class: "mono", get: (c) => c.user_id },
      { label: "Alias", get: (c) => c.alias },
      { label: "Default model", get: (c) => c.default_model },
      { label: "Spend / budget", get: (c) => budgetText(c.spend, c.max_budget) },
      { label: "Status", get: (c) => (c.blocked ? badge("blocked", "bad") : badge("active", "ok")) },
    ],
    fields,
    create: (b) => post("/customer/new", b),
    update: (c, b) => post("/customer/update", { user_id: c.user_id, ...b }),
    remove: (c) => post("/customer/delete", { user_ids: [c.user_id] }),
    writable: isAdmin(),
    rowActions: (c, reload) => (!isAdmin() ? [] : [button(c.blocked ? "Unblock" : "Block", async () => {
      try {
        await post(c.blocked ? "/customer/unblock" : "/customer/block", { user_ids: [c.user_id] });
      } catch (err) {
        notify(err.message, "error");
      }
      await reload();
    })]),
  });
}

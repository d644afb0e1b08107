// Budgets: /budget/list, create (/budget/new), edit (/budget/update), delete (/budget/delete). Keys,
// teams, organizations and customers point at a budget by its ID.

import { get, isAdmin, post } from "../api.js";
import { crudPage, limitFields } from "../crud.js";
import { when } from "../dom.js";

async function fields(mode) {
  const out = [];
  if (mode === "create") out.push({ name: "budget_id", label: "Budget ID (optional)", type: "text" });
  out.push(...limitFields(), { name: "budget_reset_at", label: "Next reset (UTC)", type: "datetime" });
  return out;
}

export async function render(container) {
  await crudPage(container, {
    entity: "budget",
    title: "Budgets",
    writable: isAdmin(),
    describe: (b) => b.budget_id,
    load: async () => {
      const out = await get("/budget/list");
      return Array.isArray(out) ? out : [];
    },
    columns: [
      { label: "Budget ID", class: "mono", get: (b) => b.budget_id },
      { label: "Max budget", get: (b) => (b.max_budget === null || b.max_budget === undefined ? "—" : `$${b.max_budget}`) },
      { label: "Soft budget", get: (b) => (b.soft_budget === null || b.soft_budget === undefined ? "—" : `$${b.soft_budget}`) },
      { label: "Duration", get: (b) => b.budget_duration },
      { label: "TPM / RPM", get: (b) => `${b.tpm_limit ?? "—"} / ${b.rpm_limit ?? "—"}` },
      { label: "Parallel", get: (b) => b.max_parallel_requests },
      { label: "Next reset", get: (b) => when(b.budget_reset_at) },
    ],
    fields,
    create: (b) => post("/budget/new", b),
    update: (x, b) => post("/budget/update", { budget_id: x.budget_id, ...b }),
    remove: (x) => post("/budget/delete", { id: x.budget_id }),
  });
}

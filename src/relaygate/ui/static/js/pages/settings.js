// Settings: the effective config from /config/view (secrets come masked from the server) as a tree of
// <details>, and a reload button (POST /config/reload) for the proxy admin.

import { get, isAdmin, post } from "../api.js";
import { button, clear, confirm, errorBox, h, notify } from "../dom.js";
import { pageHeader } from "../crud.js";

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
  container.append(pageHeader("Settings", tools), h("p", { class: "muted", text: "The effective configuration, secrets masked. Edit the config file and reload to change it." }), box);
  await load();
}

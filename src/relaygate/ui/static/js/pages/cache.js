// Cache: /cache/stats (hit rate, entries), /cache/ping (the backend answers), and flush (/cache/flushall)
// after a confirmation.

import { get, isAdmin, post } from "../api.js";
import { button, clear, confirm, errorBox, h, jsonView, notify } from "../dom.js";
import { pageHeader } from "../crud.js";

function card(label, value, testid) {
  return h("div", { class: "stat", "data-testid": testid }, h("span", { class: "stat-label", text: label }), h("span", { class: "stat-value", text: value }));
}

export async function render(container) {
  const statsBox = h("div", { class: "page-body" });
  const pingBox = h("div", {});
  const load = async () => {
    try {
      const s = await get("/cache/stats");
      const rate = s.hit_rate === null || s.hit_rate === undefined ? "—" : `${(Number(s.hit_rate) * 100).toFixed(1)} %`;
      clear(statsBox).append(h("div", { class: "stats" },
        card("Cache", s.enabled ? `on (${s.type || "?"})` : "off", "cache-enabled"),
        card("Hit rate", rate, "cache-hit-rate"),
        card("Hits", String(s.hits ?? "—"), "cache-hits"),
        card("Misses", String(s.misses ?? "—"), "cache-misses"),
        card("Entries", s.entries === null || s.entries === undefined ? "—" : String(s.entries), "cache-entries")));
    } catch (err) {
      clear(statsBox).append(errorBox(err));
    }
  };
  const ping = async () => {
    try {
      clear(pingBox).append(h("h2", { text: "Ping" }), jsonView(await get("/cache/ping")));
    } catch (err) {
      clear(pingBox).append(h("h2", { text: "Ping" }), errorBox(err));
    }
  };
  const tools = [button("Refresh", load, { class: "secondary" }), button("Ping", ping, { class: "secondary", "data-testid": "cache-ping" })];
  if (isAdmin()) {
    tools.push(button("Flush cache", async () => {
      if (!(await confirm("Flush every cached response?", "Flush"))) return;
      try {
        await post("/cache/flushall");
        notify("Cache flushed.", "ok");
      } catch (err) {
        notify(err.message, "error");
      }
      await load();
    }, { class: "danger", "data-testid": "cache-flush" }));
  }
  container.append(pageHeader("Cache", tools), statsBox, pingBox);
  await load();
}

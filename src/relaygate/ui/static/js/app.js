// The admin UI's shell: finds the session (GET /ui/session), shows the sign-in page or the page the hash
// names (#/overview, #/keys, ...), draws the navigation the role allows, and signs out. The server
// authorises every call anyway; hiding a page here is only so nobody is offered what would be refused.

import { api, onSessionChange, readsAll, session, setSession } from "./api.js";
import { clear, errorBox, h, notify } from "./dom.js";

const PAGES = [
  { id: "overview", label: "Overview", load: () => import("./pages/overview.js") },
  { id: "keys", label: "Keys", load: () => import("./pages/keys.js") },
  { id: "teams", label: "Teams", load: () => import("./pages/teams.js") },
  { id: "users", label: "Users", load: () => import("./pages/users.js"), all: true },
  { id: "organizations", label: "Organizations", load: () => import("./pages/organizations.js") },
  { id: "customers", label: "Customers", load: () => import("./pages/customers.js"), all: true },
  { id: "budgets", label: "Budgets", load: () => import("./pages/budgets.js"), all: true },
  { id: "models", label: "Models", load: () => import("./pages/models.js") },
  { id: "logs", label: "Spend logs", load: () => import("./pages/logs.js") },
  { id: "cache", label: "Cache", load: () => import("./pages/cache.js"), all: true },
  { id: "settings", label: "Settings", load: () => import("./pages/settings.js"), all: true },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signout = document.getElementById("signout");
const toggle = document.getElementById("nav-toggle");
let renderSeq = 0;

function allowed() {
  return PAGES.filter((p) => !p.all || readsAll());
}

function currentId() {
  const m = /^#\/([\w-]+)/.exec(window.location.hash);
  return m ? m[1] : "";
}

function drawNav() {
  clear(nav);
  const s = session();
  nav.hidden = !s;
  signout.hidden = !s;
  toggle.hidden = !s;
  who.textContent = s ? `${s.user_email || s.user_id || "admin"} · ${s.user_role}` : "";
  if (!s) return;
  const id = currentId();
  const list = h("ul", {});
  for (const p of allowed()) {
    list.append(h("li", {}, h("a", { href: `#/${p.id}`, "data-testid": `nav-${p.id}`, "aria-current": p.id === id ? "page" : null, text: p.label })));
  }
  nav.append(list);
}

async function render() {
  const seq = ++renderSeq;
  drawNav();
  clear(main);
  if (!session()) {
    const mod = await import("./pages/signin.js");
    if (seq === renderSeq) await mod.render(main);
    return;
  }
  const pages = allowed();
  let page = pages.find((p) => p.id === currentId());
  if (!page) {
    window.location.replace("#/overview");
    return;
  }
  document.title = `${page.label} · relaygate`;
  const container = h("section", { class: "page", "data-page": page.id, "data-testid": `page-${page.id}` });
  main.append(container);
  try {
    const mod = await page.load();
    if (seq !== renderSeq) return;
    await mod.render(container);
  } catch (err) {
    if (seq === renderSeq && session()) container.append(errorBox(err));
  }
  if (seq === renderSeq) {
    container.setAttribute("data-ready", "true");
  }
}

signout.addEventListener("click", async () => {
  try {
    await api("POST", "/ui/logout");
  } catch (err) {
    notify(`Sign-out: ${err.message}`, "error");
  }
  setSession(null);
  window.location.hash = "#/signin";
});

toggle.addEventListener("click", () => {
  const open = nav.classList.toggle("open");
  toggle.setAttribute("aria-expanded", open ? "true" : "false");
});

nav.addEventListener("click", (ev) => {
  if (ev.target instanceof HTMLAnchorElement) {
    nav.classList.remove("open");
    toggle.setAttribute("aria-expanded", "false");
  }
});

let lastSession = null;
onSessionChange((s) => {
  const changed = Boolean(s) !== Boolean(lastSession);
  lastSession = s;
  if (changed) render();
});

window.addEventListener("hashchange", () => {
  render().then(() => main.focus({ preventScroll: true }));
});

async function start() {
  try {
    const s = await api("GET", "/ui/session");
    lastSession = s;
    setSession(s);
  } catch {
    setSession(null);
  }
  await render();
}

start();

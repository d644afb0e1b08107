// DOM helpers. Every element is built with createElement and every text with textContent: API data never
// reaches innerHTML, so a key alias or a log message cannot inject markup (the CSP forbids inline script too).

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (k === "class") el.className = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "selected" || k === "disabled" || k === "multiple" || k === "required") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix || "f"}-${uid}`;
}

// -- formatting ---------------------------------------------------------------------------------------

export function usd(v) {
  if (v === null || v === undefined || v === "") return "—";
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  if (n !== 0 && Math.abs(n) < 0.01) return `$${n.toPrecision(3)}`;
  return `$${n.toFixed(2)}`;
}

export function num(v) {
  if (v === null || v === undefined || v === "") return "—";
  const n = Number(v);
  return Number.isFinite(n) ? n.toLocaleString("en-US") : String(v);
}

export function when(v) {
  if (!v) return "—";
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function show(v) {
  if (v === null || v === undefined || v === "") return "—";
  if (Array.isArray(v)) return v.length ? v.join(", ") : "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// -- messages -----------------------------------------------------------------------------------------

export function notify(text, kind) {
  const box = document.getElementById("messages");
  const msg = h("div", { class: `msg ${kind || "info"}`, role: kind === "error" ? "alert" : "status", "data-testid": `msg-${kind || "info"}` },
    h("span", { text }),
    h("button", { type: "button", class: "link", "aria-label": "Dismiss", text: "×", onclick: () => msg.remove() }));
  box.append(msg);
  setTimeout(() => msg.remove(), kind === "error" ? 12000 : 5000);
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert", "data-testid": "page-error", text: err && err.message ? err.message : String(err) });
}

// -- tables -------------------------------------------------------------------------------------------

// columns: [{label, get(row) -> string|Node, class}]
export function table(columns, rows, opts) {
  const o = opts || {};
  const thead = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class, text: c.label }))));
  const body = h("tbody");
  if (!rows.length) {
    body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty", text: o.empty || "Nothing here yet." })));
  }
  for (const r of rows) {
    const tr = h("tr", o.rowAttrs ? o.rowAttrs(r) : {});
    for (const c of columns) {
      const v = c.get(r);
      tr.append(h("td", { class: c.class, "data-label": c.label }, v instanceof Node ? v : show(v)));
    }
    body.append(tr);
  }
  return h("div", { class: "table-wrap" }, h("table", { "data-testid": o.testid }, o.caption ? h("caption", { text: o.caption }) : null, thead, body));
}

export function actions(...buttons) {
  return h("div", { class: "row-actions" }, buttons);
}

export function button(text, onclick, attrs) {
  return h("button", { type: "button", ...(attrs || {}), onclick, text });
}

// -- dialogs ------------------------------------------------------------------------------------------

// A modal <dialog>: focus moves into it and returns to the opener when it closes.
export function dialog(title, body, opts) {
  const o = opts || {};
  const opener = document.activeElement;
  const titleId = nextId("dlg");
  const dlg = h("dialog", { class: `dialog ${o.wide ? "wide" : ""}`, "aria-labelledby": titleId, "data-testid": o.testid },
    h("div", { class: "dialog-head" },
      h("h2", { id: titleId, text: title }),
      h("button", { type: "button", class: "link close", "aria-label": "Close", text: "×", onclick: () => dlg.close() })),
    h("div", { class: "dialog-body" }, body));
  dlg.addEventListener("close", () => {
    dlg.remove();
    if (o.onclose) o.onclose();
    if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
  });
  document.body.append(dlg);
  dlg.showModal();
  const first = dlg.querySelector("[autofocus], input:not([type=hidden]):not([readonly]), select, textarea, .dialog-body button");
  if (first) first.focus();
  return dlg;
}

export function confirm(message, confirmText) {
  return new Promise((resolve) => {
    let answer = false;
    const yes = h("button", { type: "button", class: "danger", "data-testid": "confirm-yes", text: confirmText || "Confirm" });
    const no = h("button", { type: "button", class: "secondary", text: "Cancel" });
    const dlg = dialog("Please confirm", [h("p", { text: message }), h("div", { class: "form-actions" }, no, yes)],
      { testid: "confirm-dialog", onclose: () => resolve(answer) });
    yes.addEventListener("click", () => { answer = true; dlg.close(); });
    no.addEventListener("click", () => dlg.close());
    no.focus();
  });
}

// Show a secret (a new key) once: a read-only field and a copy button. It lives only in this dialog's DOM.
export function showSecretOnce(title, secret, note) {
  const id = nextId("secret");
  const field = h("input", { id, type: "text", readonly: true, class: "mono", value: secret, "data-testid": "new-key", autocomplete: "off", spellcheck: "false" });
  const status = h("span", { class: "muted", role: "status" });
  const copy = h("button", { type: "button", "data-testid": "copy-key", text: "Copy" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret);
      status.textContent = "Copied.";
    } catch {
      field.select();
      status.textContent = "Select the text and copy it (clipboard not available).";
    }
  });
  const done = h("button", { type: "button", class: "secondary", text: "Done", "data-testid": "secret-done" });
  const dlg = dialog(title, [
    h("p", { class: "warn", text: note || "Save this key now: it is shown only once and cannot be read again." }),
    h("label", { for: id, text: "Key" }),
    h("div", { class: "copy-row" }, field, copy),
    status,
    h("div", { class: "form-actions" }, done),
  ], { testid: "secret-dialog" });
  done.addEventListener("click", () => dlg.close());
  field.focus();
  field.select();
  return dlg;
}

export function jsonView(value) {
  return h("pre", { class: "json", tabindex: "0" }, JSON.stringify(value, null, 2));
}

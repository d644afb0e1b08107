// Forms from field specs: each field gets a <label for>, keyboard-reachable inputs, and a parser that turns
// what was typed into the API's JSON (numbers, lists, JSON objects). In edit mode only the fields that
// changed are sent, and a cleared field is sent as null.
//
// A spec: {name ("a" or "a.b" for nested), label, type, help, options, required, placeholder, step}
// types: text, password, number, int, select, multi, check, json, list, datetime, textarea;
// advanced: true puts the field under a "More options" disclosure

import { h, nextId } from "./dom.js";

function getPath(obj, name) {
  let v = obj;
  for (const part of name.split(".")) {
    if (v === null || v === undefined || typeof v !== "object") return undefined;
    v = v[part];
  }
  return v;
}

function setPath(obj, name, value) {
  const parts = name.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== "object" || o[p] === null) o[p] = {};
    o = o[p];
  }
  o[parts[parts.length - 1]] = value;
}

function toLocalInput(v) {
  if (!v) return "";
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return "";
  return d.toISOString().slice(0, 16);
}

function initialText(f, v) {
  if (v === undefined || v === null) return "";
  if (f.type === "json") return Object.keys(v).length || Array.isArray(v) ? JSON.stringify(v, null, 2) : "";
  if (f.type === "list") return Array.isArray(v) ? v.join(", ") : String(v);
  if (f.type === "datetime") return toLocalInput(v);
  return String(v);
}

function normalized(f, v) {
  if (v === undefined || v === null || v === "") return null;
  if ((f.type === "json" && typeof v === "object" && !Object.keys(v).length)) return null;
  if ((f.type === "list" || f.type === "multi") && Array.isArray(v) && !v.length) return null;
  if (f.type === "datetime") return new Date(v).toISOString().slice(0, 16);
  if (f.type === "check") return Boolean(v);
  return v;
}

export class FieldError extends Error {}

function parse(f, input) {
  if (f.type === "check") return input.checked;
  if (f.type === "multi") {
    const vals = Array.from(input.selectedOptions).map((o) => o.value);
    return vals.length ? vals : null;
  }
  const raw = input.value.trim();
  if (raw === "") return null;
  switch (f.type) {
    case "number": {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new FieldError(`${f.label}: not a number`);
      return n;
    }
    case "int": {
      const n = Number(raw);
      if (!Number.isInteger(n)) throw new FieldError(`${f.label}: must be a whole number`);
      return n;
    }
    case "json": {
      try {
        return JSON.parse(raw);
      } catch {
        throw new FieldError(`${f.label}: not valid JSON`);
      }
    }
    case "list":
      return raw.split(",").map((s) => s.trim()).filter(Boolean);
    case "datetime":
      if (Number.isNaN(new Date(`${raw}:00Z`).getTime())) throw new FieldError(`${f.label}: not a date`);
      return new Date(`${raw}:00Z`).toISOString();
    default:
      return raw;
  }
}

function control(f, id, value) {
  const common = { id, name: f.name, "data-field": f.name, required: f.required, placeholder: f.placeholder };
  if (f.help) common["aria-describedby"] = `${id}-help`;
  switch (f.type) {
    case "check":
      return h("input", { ...common, type: "checkbox", checked: Boolean(value) });
    case "json":
    case "textarea":
      return h("textarea", { ...common, rows: 2, class: f.type === "json" ? "mono" : null, spellcheck: "false", value: initialText(f, value) });
    case "select": {
      const sel = h("select", common, h("option", { value: "", text: f.emptyLabel || "—" }));
      for (const o of f.options || []) {
        const opt = typeof o === "object" ? o : { value: o, label: o };
        sel.append(h("option", { value: opt.value, text: opt.label, selected: String(value ?? "") === String(opt.value) }));
      }
      return sel;
    }
    case "multi": {
      const chosen = new Set(Array.isArray(value) ? value.map(String) : []);
      const opts = (f.options || []).map((o) => (typeof o === "object" ? o : { value: o, label: o }));
      for (const v of chosen) if (!opts.some((o) => String(o.value) === v)) opts.push({ value: v, label: v });
      const sel = h("select", { ...common, multiple: true, size: Math.min(Math.max(opts.length, 2), 6) });
      for (const o of opts) sel.append(h("option", { value: o.value, text: o.label, selected: chosen.has(String(o.value)) }));
      return sel;
    }
    case "password":
      return h("input", { ...common, type: "password", autocomplete: "new-password", value: "" });
    case "number":
    case "int":
      return h("input", { ...common, type: "number", step: f.type === "int" ? "1" : (f.step || "any"), inputmode: "decimal", value: initialText(f, value) });
    case "datetime":
      return h("input", { ...common, type: "datetime-local", value: initialText(f, value) });
    default:
      return h("input", { ...common, type: "text", autocomplete: "off", value: initialText(f, value) });
  }
}

// Build a form. onSubmit(body) is awaited; its errors are shown in the form.
export function buildForm(fields, opts) {
  const o = opts || {};
  const initial = o.initial || null;
  const inputs = [];
  const error = h("p", { class: "error", role: "alert", hidden: true, "data-testid": "form-error" });
  const form = h("form", { class: "form", novalidate: true, "data-testid": o.testid });
  const grid = h("div", { class: "form-grid" });
  const advanced = h("div", { class: "form-grid" });
  for (const f of fields) {
    const id = nextId(f.name.replace(/\W/g, "-"));
    const value = initial ? getPath(initial, f.name) : f.default;
    const input = control(f, id, value);
    inputs.push([f, input]);
    const wrap = h("div", { class: `field ${f.type === "check" ? "check" : ""} ${f.wide || f.type === "json" ? "wide" : ""}` });
    if (f.type === "check") {
      wrap.append(input, h("label", { for: id, text: f.label }));
    } else {
      wrap.append(h("label", { for: id, text: f.label + (f.required ? " *" : "") }), input);
    }
    if (f.help) wrap.append(h("small", { id: `${id}-help`, class: "help", text: f.help }));
    (f.advanced ? advanced : grid).append(wrap);
  }
  const submit = h("button", { type: "submit", "data-testid": "form-submit", text: o.submitText || "Save" });
  const cancel = o.onCancel ? h("button", { type: "button", class: "secondary", text: "Cancel", onclick: o.onCancel }) : null;
  // o.extra: [{text, testid, run(body)}]: buttons that act on the form's values without submitting it (a connection
  // test); run answers {ok, text}, shown in the form's status line.
  const status = h("p", { role: "status", hidden: true, "data-testid": "form-status" });
  const extras = (o.extra || []).map((x) => {
    const b = h("button", { type: "button", class: "secondary", "data-testid": x.testid, text: x.text });
    b.addEventListener("click", () => act(b, async (body) => {
      const got = await x.run(body);
      status.textContent = got.text;
      status.className = got.ok ? "notice ok" : "error";
      status.hidden = false;
    }));
    return b;
  });
  form.append(grid);
  if (advanced.childElementCount) {
    form.append(h("details", { class: "advanced", open: initial ? Boolean(fields.some((f) => f.advanced && normalized(f, getPath(initial, f.name)) !== null)) : false },
      h("summary", { text: "More options" }), advanced));
  }
  form.append(error, status, h("div", { class: "form-actions" }, ...extras, cancel, submit));

  const read = () => {
    const body = {};
    for (const [f, input] of inputs) {
      const v = parse(f, input);
      if (f.required && (v === null || v === "")) throw new FieldError(`${f.label} is required`);
      if (initial) {
        if (f.type === "password" && v === null) continue; // never echoed back: empty means unchanged
        const before = normalized(f, getPath(initial, f.name));
        if (JSON.stringify(normalized(f, v)) === JSON.stringify(before)) continue;
        setPath(body, f.name, v);
      } else if (v !== null && !(f.type === "check" && v === false)) {
        setPath(body, f.name, v);
      }
    }
    return body;
  };

  // read the form (its error shown, nothing done when it does not read), then `run` it with `button` disabled
  const act = async (button, run) => {
    error.hidden = true;
    status.hidden = true;
    let body;
    try {
      body = read();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      return;
    }
    button.disabled = true;
    try {
      await run(body);
    } catch (err) {
      error.textContent = err && err.message ? err.message : String(err);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  };

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(submit, (body) => o.onSubmit(body));
  });
  return form;
}

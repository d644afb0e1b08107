// The one way the UI talks to the gateway: the public management API with the session cookie
// (credentials "same-origin"), the CSRF token on every non-GET request, and LiteLLM's error shape
// {"error": {"message", "type", "param", "code"}} turned into an ApiError with a readable message.
// The session (and its CSRF token) is kept in memory only: never in localStorage, never in a URL.

let current = null;
const listeners = [];

// The gateway's path prefix (SERVER_ROOT_PATH), which the server writes into the page it serves
// under one; "" at the root. Every API path and link the UI makes starts with it.
const rootMeta = document.querySelector('meta[name="relaygate-root"]');
export const ROOT = rootMeta ? rootMeta.getAttribute("content") || "" : "";

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function session() {
  return current;
}

export function setSession(s) {
  current = s;
  for (const fn of listeners) fn(s);
}

export function onSessionChange(fn) {
  listeners.push(fn);
}

export function role() {
  return current ? current.user_role : null;
}

export function isAdmin() {
  return role() === "proxy_admin";
}

export function readsAll() {
  return role() === "proxy_admin" || role() === "proxy_admin_viewer";
}

export function canWrite() {
  return role() === "proxy_admin" || role() === "internal_user";
}

function messageOf(body, status) {
  if (body && typeof body === "object") {
    const e = body.error !== undefined ? body.error : body.detail;
    if (typeof e === "string") return e;
    if (e && typeof e === "object") {
      if (typeof e.message === "string") return e.message;
      if (typeof e.error === "string") return e.error;
    }
    if (typeof body.message === "string") return body.message;
  }
  return `Request failed (HTTP ${status})`;
}

export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// api("GET", "/key/list", {query: {...}}) or api("POST", "/key/generate", {body: {...}})
export async function api(method, path, opts) {
  const o = opts || {};
  const headers = { accept: "application/json" };
  const init = { method, credentials: "same-origin", headers, cache: "no-store", redirect: "error" };
  if (method !== "GET" && method !== "HEAD") {
    if (current && current.csrf_token) headers["x-csrf-token"] = current.csrf_token;
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(o.body === undefined ? {} : o.body);
  }
  let res;
  try {
    res = await fetch(ROOT + path + qs(o.query), init);
  } catch (err) {
    throw new ApiError(`Network error: ${err && err.message ? err.message : err}`, 0, null);
  }
  const text = await res.text();
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!res.ok) {
    const err = new ApiError(messageOf(body, res.status), res.status, body);
    if (res.status === 401 && !path.startsWith("/ui/") && current && !o.quiet401) {
      setSession(null); // the session expired or was revoked elsewhere: back to sign-in
    }
    throw err;
  }
  return body;
}

export const get = (path, query, opts) => api("GET", path, { ...(opts || {}), query });
export const post = (path, body) => api("POST", path, { body });

// A key typed by the user becomes its SHA-256 hex (what the API stores and accepts) before it goes into a
// query string: a key in clear never appears in a URL.
export async function keyRef(value) {
  const v = (value || "").trim();
  if (!v.startsWith("sk-")) return v;
  if (!window.crypto || !window.crypto.subtle) {
    throw new ApiError("Hashing a key needs a secure context (https or localhost): give the key's hash instead", 0, null);
  }
  const digest = await window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(v));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

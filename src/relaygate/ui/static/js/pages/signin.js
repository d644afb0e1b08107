// Sign-in: username and password (the master key with the UI username, or a user created with a password),
// and "Sign in with SSO" when /ui/config says it is set up. The password is sent once in a POST body and
// dropped; only the HttpOnly cookie the server sets keeps the session.

import { ROOT, api, setSession } from "../api.js";
import { h } from "../dom.js";

export async function render(main) {
  let config = { sso_enabled: false, ui_username: "admin" };
  try {
    config = await api("GET", "/ui/config");
  } catch {
    // the form still works without it
  }
  const error = h("p", { class: "error", role: "alert", hidden: true, "data-testid": "signin-error" });
  const user = h("input", { id: "signin-username", name: "username", type: "text", autocomplete: "username", required: true, value: config.ui_username || "admin" });
  const pass = h("input", { id: "signin-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", "data-testid": "signin-submit", text: "Sign in" });
  const form = h("form", { class: "form signin-form", "data-testid": "signin-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "signin-username", text: "Username" }), user),
    h("div", { class: "field" }, h("label", { for: "signin-password", text: "Password or master key" }), pass),
    error,
    h("div", { class: "form-actions" }, submit));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!user.value.trim() || !pass.value) {
      error.textContent = "Enter a username and a password.";
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      const s = await api("POST", "/ui/login", { body: { username: user.value.trim(), password: pass.value } });
      pass.value = "";
      if (!/^#\/(?!signin)/.test(window.location.hash)) window.history.replaceState(null, "", "#/overview");
      setSession(s);
    } catch (err) {
      pass.value = "";
      error.textContent = err.status === 429 ? `Too many attempts: ${err.message}` : err.message;
      error.hidden = false;
      pass.focus();
    } finally {
      submit.disabled = false;
    }
  });
  const card = h("div", { class: "card signin", "data-testid": "page-signin" },
    h("h1", { text: "Sign in to relaygate" }), form);
  if (config.sso_enabled) {
    const sso = h("button", { type: "button", class: "secondary sso", "data-testid": "signin-sso", text: "Sign in with SSO" });
    sso.addEventListener("click", () => {
      const url = config.sso_url || "/sso/key/generate";
      window.location.assign(url.startsWith("/") ? ROOT + url : url);
    });
    card.append(h("div", { class: "or", text: "or" }), sso);
  }
  main.append(card);
  user.value ? pass.focus() : user.focus();
}

// The sign-in page: any role signs in here and goes on to its own pages (or to where it was sent from).
import { ApiError, HOME, api, el, errorBox, field, header, main, render, signIn, t, token } from "./core.js";

function safeNext() {
  // Only a path on this site: a crafted link must not send a fresh sign-in elsewhere.
  const next = new URLSearchParams(window.location.search).get("next");
  return next && next.startsWith("/app/") && !next.startsWith("//") ? next : null;
}

async function goOn() {
  const me = await api("/api/v1/me");
  window.location.assign(safeNext() || HOME[me.role] || "/app/");
}

function form() {
  header(null, [], show);
  document.title = `${t("sign_in")} · houqin`;
  const username = el("input", { name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
  const password = el("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const problem = el("div", { class: "problem" });
  const submit = el("button", { type: "submit", class: "primary wide" }, t("sign_in"));
  const expired = new URLSearchParams(window.location.search).has("expired");
  const signInForm = el("form", { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    el("h1", { id: "sign-in-title" }, t("sign_in_title")),
    el("p", { class: "muted" }, t("sign_in_lead")),
    expired ? el("p", { class: "notice" }, t("error.expired")) : null,
    field(t("username"), username),
    field(t("password"), password),
    problem,
    submit);
  signInForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    problem.replaceChildren();
    try {
      await signIn(username.value.trim(), password.value);
      await goOn();
    } catch (error) {
      const text = error instanceof ApiError && error.status === 401 ? t("error.bad_login") : error.message;
      problem.replaceChildren(errorBox(text));
      password.select();
      submit.disabled = false;
    }
  });
  render(signInForm);
  username.focus();
}

async function show() {
  if (token()) {
    try {
      await goOn();
      return;
    } catch {
      // An expired or revoked token: sign in again.
    }
  }
  form();
}

main();
show();

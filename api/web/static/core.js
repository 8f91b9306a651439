// The parts every houqin page shares: the API client, the signed-in session, translation, formatting and
// building the DOM. Text from the API is only ever set as text, never parsed as HTML.
import { messages } from "./i18n.js";

const TOKEN_KEY = "houqin.token";
const LANG_KEY = "houqin.lang";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- language -------------------------------------------------------------------------------------

export function lang() {
  return localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
}

export function setLang(value) {
  localStorage.setItem(LANG_KEY, value);
}

export function t(key, vars = {}) {
  const text = messages[lang()][key] ?? messages.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

// A value the API names (a status, a category) in the reader's language, or as it is when unknown.
export function label(group, value) {
  if (value === null || value === undefined || value === "") return "—";
  const key = `${group}.${value}`;
  const text = messages[lang()][key] ?? messages.en[key];
  return text ?? String(value);
}

// ---- DOM --------------------------------------------------------------------------------------------

// el("p", {class: "x", onclick: fn, "aria-label": "..."}, "text", child, ...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "value") node.value = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function main() {
  return document.getElementById("main");
}

export function render(...children) {
  const target = main();
  target.replaceChildren(...children.flat().filter(Boolean));
  return target;
}

let announced;
export function announce(text) {
  const status = document.getElementById("status");
  status.textContent = "";
  window.clearTimeout(announced);
  // A fresh text node each time, so that screen readers read a repeated message again; it goes after a
  // while so that it does not cover the page.
  window.setTimeout(() => (status.textContent = text), 30);
  announced = window.setTimeout(() => (status.textContent = ""), 6000);
}

// A labelled form field: label, control and an optional hint tied to it.
let fieldCount = 0;
export function field(text, control, hint) {
  fieldCount += 1;
  const id = control.id || `field-${fieldCount}`;
  control.id = id;
  const parts = [el("label", { for: id }, text), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(el("small", { id: hintId, class: "hint" }, hint));
  }
  return el("div", { class: "field" }, parts);
}

export function select(options, attrs = {}) {
  return el("select", attrs, options.map(([value, text]) => el("option", { value }, text)));
}

export function badge(kind, text) {
  return el("span", { class: `badge badge-${kind}` }, text);
}

// A message box for what went wrong, read out at once.
export function errorBox(text) {
  return el("p", { class: "form-error", role: "alert" }, text);
}

// A whole-page error: the page shows this and nothing of what was asked for.
export function errorPage(title, detail, links = []) {
  document.title = `${title} · houqin`;
  render(
    el("section", { class: "error-page", role: "alert", "aria-labelledby": "error-title" },
      el("h1", { id: "error-title" }, title),
      el("p", {}, detail),
      links.length ? el("p", { class: "actions" }, links.map(([href, text]) => el("a", { href, class: "button" }, text))) : null),
  );
  main().focus();
}

// A confirmation step in a modal dialog; resolves true when confirmed.
export function confirmDialog(title, body, confirmText) {
  return new Promise((resolve) => {
    const dialog = el("dialog", { class: "dialog", "aria-labelledby": "dialog-title" });
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    dialog.append(
      el("h2", { id: "dialog-title" }, title),
      ...(Array.isArray(body) ? body : [el("p", {}, body)]),
      el("p", { class: "actions" },
        el("button", { type: "button", class: "secondary", onclick: () => finish(false) }, t("cancel")),
        el("button", { type: "button", class: "primary", onclick: () => finish(true) }, confirmText)),
    );
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// ---- API --------------------------------------------------------------------------------------------

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  window.location.assign("/app/");
}

function detailOf(data, status) {
  if (data && typeof data === "object" && "detail" in data) {
    const detail = data.detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => {
        const where = (d.loc || []).slice(1).join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      }).join("; ");
    }
    return String(detail);
  }
  if (typeof data === "string" && data) return data.slice(0, 300);
  return `HTTP ${status}`;
}

export async function api(path, { method = "GET", body, headers = {}, form, raw = false } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  const current = token();
  if (current) init.headers.Authorization = `Bearer ${current}`;
  if (form !== undefined) init.body = form;
  else if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] ??= "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, t("error.network"));
  }
  if (response.status === 401 && current && !path.endsWith("/auth/token")) {
    localStorage.removeItem(TOKEN_KEY);
    const next = encodeURIComponent(window.location.pathname);
    window.location.assign(`/app/?expired=1&next=${next}`);
    throw new ApiError(401, t("error.expired"));
  }
  if (raw && response.ok) return response;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, detailOf(data, response.status));
  return data;
}

export async function signIn(username, password) {
  const form = new URLSearchParams({ username, password });
  const answer = await api("/api/v1/auth/token", { method: "POST", form });
  localStorage.setItem(TOKEN_KEY, answer.access_token);
}

// A fresh key per top-up or adjustment: a retry of the same request reuses it, so it is applied once.
export function idempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- the signed-in page -----------------------------------------------------------------------------

export const HOME = { student: "/app/student/", worker: "/app/worker/", staff: "/app/staff/", admin: "/app/staff/", cashier: "/app/staff/rooms" };

// The user and the campus, or a redirect to the sign-in page. `roles`: who this page is for.
export async function session(roles) {
  if (!token()) {
    window.location.assign(`/app/?next=${encodeURIComponent(window.location.pathname)}`);
    return null;
  }
  const [me, site] = await Promise.all([api("/api/v1/me"), api("/api/v1/site")]);
  if (!roles.includes(me.role)) {
    header(me, []);
    errorPage(t("error.wrong_page"), t("error.wrong_page_detail"), [[HOME[me.role] || "/app/", t("go_home")]]);
    return null;
  }
  return { me, site };
}

// The page header: brand, the page's own links, language switch and sign out.
export function header(me, links, onLanguage) {
  const current = window.location.pathname;
  const nav = links.length
    ? el("nav", { "aria-label": t("nav") },
        el("ul", {}, links.map(([href, text]) => el("li", {},
          el("a", { href, "aria-current": current === href || (href !== links[0][0] && current.startsWith(href)) ? "page" : null }, text)))))
    : null;
  const other = lang() === "zh" ? "en" : "zh";
  const top = document.getElementById("top");
  top.replaceChildren(...[
    el("a", { class: "brand", href: HOME[me?.role] || "/app/" }, el("img", { src: "/app/static/icon.svg", alt: "", width: 24, height: 24 }), "houqin 后勤"),
    nav,
    el("div", { class: "who" },
      me ? el("span", { class: "user" }, me.display_name || me.username) : null,
      el("button", { type: "button", class: "link", lang: other === "en" ? "en" : "zh-CN",
        onclick: () => { setLang(other); onLanguage ? onLanguage() : window.location.reload(); } }, other === "en" ? "English" : "中文"),
      me ? el("button", { type: "button", class: "link", onclick: signOut }, t("sign_out")) : null),
  ].filter(Boolean));
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
}

// Client-side links: a click on a same-page link changes the view without a reload.
export function router(routes, fallback) {
  const show = async () => {
    const path = window.location.pathname.replace(/\/+$/, "");
    for (const [pattern, view] of routes) {
      const match = path.match(pattern);
      if (match) {
        try {
          await view(...match.slice(1).map(decodeURIComponent));
        } catch (error) {
          failed(error);
        }
        return;
      }
    }
    await fallback();
  };
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (!link || link.target || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || !routes.some(([pattern]) => pattern.test(url.pathname.replace(/\/+$/, "")))) return;
    event.preventDefault();
    if (url.pathname + url.search !== window.location.pathname + window.location.search) history.pushState({}, "", url);
    show().then(() => main().focus());
  });
  window.addEventListener("popstate", show);
  return show;
}

// What to show when a view could not load.
export function failed(error) {
  if (error instanceof ApiError && error.status === 401) return;
  if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
    errorPage(t(error.status === 403 ? "error.forbidden" : "error.not_found"), error.message, [["/app/", t("go_home")]]);
  } else {
    errorPage(t("error.failed"), error.message || String(error), [[window.location.pathname, t("retry")]]);
  }
}

// ---- formatting -------------------------------------------------------------------------------------

let siteZone = "Asia/Shanghai";
export function setTimezone(zone) {
  siteZone = zone;
}

export function timezone() {
  return siteZone;
}

export function yuan(fen) {
  const sign = fen < 0 ? "-" : "";
  return `${sign}¥${(Math.abs(fen) / 100).toFixed(2)}`;
}

function locale() {
  return lang() === "zh" ? "zh-CN" : "en-GB";
}

export function dateTime(iso) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(locale(), { timeZone: siteZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }).format(new Date(iso));
}

export function clock(iso) {
  return new Intl.DateTimeFormat(locale(), { timeZone: siteZone, hour: "2-digit", minute: "2-digit" }).format(new Date(iso));
}

// The campus date (YYYY-MM-DD) of a moment.
export function campusDate(when = new Date()) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: siteZone, year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(when);
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get("year")}-${get("month")}-${get("day")}`;
}

// The UTC offset of the campus clock at a moment, as "+08:00".
export function campusOffset(when = new Date()) {
  const name = new Intl.DateTimeFormat("en-US", { timeZone: siteZone, timeZoneName: "longOffset" }).formatToParts(when).find((p) => p.type === "timeZoneName").value;
  const match = name.match(/GMT([+-]\d{2}):?(\d{2})?/);
  return match ? `${match[1]}:${match[2] || "00"}` : "+00:00";
}

// A device's reading as text: numbers to at most three decimals.
export function reading(value) {
  return typeof value === "number" ? String(Math.round(value * 1000) / 1000) : String(value);
}

export function number(value, digits = 1) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

// A room metered and switched by circuit: which have power (a room out of money keeps its lights) and each
// one's month on its own tariff.
export function circuitList(circuits) {
  if (!circuits.length) return [];
  return [
    el("h3", { class: "circuits-title" }, t("wallet.circuits")),
    el("ul", { class: "circuits", "data-testid": "circuits" }, ...circuits.map((circuit) =>
      el("li", { "data-circuit": circuit.id },
        el("span", { class: "circuit-name" }, circuit.name),
        badge(circuit.powered ? "normal" : "cut_off", t(circuit.powered ? "wallet.circuit_on" : "wallet.circuit_off")),
        el("span", { class: "circuit-month" }, circuit.billed
          ? t("wallet.circuit_month", { kwh: number(circuit.month_kwh, 1), spend: yuan(circuit.month_spend_fen) })
          : t("wallet.circuit_free"))))),
  ];
}

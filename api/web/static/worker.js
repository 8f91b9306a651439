// The maintenance worker's page (mobile): my open repair orders by due time, each with where it is and
// what the device reads now; start, add a note or photo, resolve.
import {
  announce, api, badge, dateTime, el, errorBox, field, header, label, reading, render, router, session, setTimezone, t,
} from "./core.js";
import { photoInput, photoList, reportTrail, uploadPhoto } from "./repairs.js";

let me;

const ACTIVE = ["open", "assigned", "in_progress"];

function place(order) {
  return [order.building, order.floor !== null ? t("floor", { floor: order.floor }) : null, order.room].filter(Boolean).join(" · ") || "—";
}

function orderCard(order) {
  return el("li", {},
    el("a", { class: `card link-card${order.overdue ? " overdue" : ""}`, href: `/app/worker/orders/${order.id}` },
      el("span", { class: "line" }, el("strong", {}, order.title), badge(order.priority, label("priority", order.priority))),
      el("span", { class: "line muted" }, `${order.number} · ${label("category", order.category)}`),
      el("span", { class: "line" }, el("span", {}, place(order)),
        order.overdue ? badge("overdue", t("overdue")) : el("span", { class: "muted" }, t("due", { at: dateTime(order.due_at) })))));
}

async function list() {
  document.title = `${t("worker.title")} · houqin`;
  const orders = (await api("/api/v1/repairs?limit=500")).filter((order) => ACTIVE.includes(order.status));
  orders.sort((a, b) => new Date(a.due_at) - new Date(b.due_at));
  const mine = orders.filter((order) => order.assignee === me.username);
  const team = orders.filter((order) => order.assignee === null);
  const section = (id, title, items, empty) => el("section", { "aria-labelledby": id },
    el("h2", { id }, title, " ", el("span", { class: "count" }, String(items.length))),
    items.length ? el("ul", { class: "cards" }, items.map(orderCard)) : el("p", { class: "muted" }, empty));
  render(el("h1", {}, t("worker.title")),
    section("mine-title", t("worker.mine"), mine, t("worker.none")),
    section("team-title", t("worker.team"), team, t("worker.none_team")));
}

async function readings(order) {
  if (!order.device) return null;
  const parts = [];
  try {
    const device = await api(`/api/v1/devices/${encodeURIComponent(order.device)}`);
    parts.push(el("p", {}, el("strong", {}, device.id), " ", badge(device.online ? "normal" : "cut_off", device.online ? t("online") : t("offline")),
      device.last_seen ? el("span", { class: "muted" }, ` · ${t("last_seen", { at: dateTime(device.last_seen) })}`) : null));
    const fields = Object.entries(device.fields);
    if (fields.length) {
      parts.push(el("dl", { class: "readings" }, fields.map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", {}, reading(value))))));
    }
  } catch (error) {
    parts.push(errorBox(error.message));
  }
  if (order.rule_id) {
    const faults = await api(`/api/v1/faults?device=${encodeURIComponent(order.device)}&rule=${encodeURIComponent(order.rule_id)}&limit=1`).catch(() => []);
    if (faults.length) {
      const fault = faults[0];
      parts.unshift(el("p", { class: "notice" }, `${fault.title}`, fault.value !== null ? ` (${reading(fault.value)})` : "", ` · ${label("fault", fault.state)}`));
    }
  }
  return el("section", { class: "card", "aria-labelledby": "readings-title" }, el("h2", { id: "readings-title" }, t("worker.readings")), ...parts);
}

async function detail(orderId) {
  const order = await api(`/api/v1/repairs/${encodeURIComponent(orderId)}`);
  document.title = `${order.number} · houqin`;
  const [events, photos, readingCard] = await Promise.all([api(`/api/v1/repairs/${order.id}/events`), photoList(order.id), readings(order)]);
  const problem = el("div", { class: "problem" });
  const step = async (path, body, done) => {
    problem.replaceChildren();
    try {
      await api(`/api/v1/repairs/${order.id}/${path}`, { method: "POST", body });
      await detail(order.id);
      announce(done);
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  };
  const note = el("textarea", { name: "note", rows: 3, maxlength: 4000 });
  const photo = photoInput();
  const actions = [];
  if (["open", "assigned"].includes(order.status)) {
    actions.push(el("button", { type: "button", class: "primary wide", onclick: () => step("start", undefined, t("worker.started")) }, t("worker.start")));
  }
  const active = ACTIVE.includes(order.status);
  const noteForm = el("form", { class: "card", "aria-labelledby": "work-title" },
    el("h2", { id: "work-title" }, t("worker.work")),
    field(t("worker.note"), note, t("worker.note_hint")),
    field(t("photo"), photo, t("photo_hint")),
    problem,
    el("div", { class: "actions" },
      el("button", { type: "submit", class: "secondary" }, t("worker.add")),
      active ? el("button", { type: "button", class: "primary", onclick: () => step("resolve", { reason: note.value.trim() }, t("worker.resolved")) }, t("worker.resolve")) : null));
  noteForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    if (!note.value.trim() && !photo.files.length) {
      problem.append(errorBox(t("worker.empty_note")));
      return;
    }
    try {
      if (photo.files.length) await uploadPhoto(order.id, photo.files[0]);
      if (note.value.trim()) await api(`/api/v1/repairs/${order.id}/notes`, { method: "POST", body: { text: note.value.trim() } });
      await detail(order.id);
      announce(t("worker.added"));
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  });
  render(
    el("p", {}, el("a", { href: "/app/worker/" }, t("back"))),
    el("section", { class: `card${order.overdue ? " overdue" : ""}`, "aria-labelledby": "order-title" },
      el("h1", { id: "order-title" }, order.title),
      el("p", {}, badge(order.status, label("status", order.status)), " ", badge(order.priority, label("priority", order.priority)),
        order.overdue ? [" ", badge("overdue", t("overdue"))] : null),
      el("dl", { class: "facts" },
        el("div", {}, el("dt", {}, t("number")), el("dd", {}, order.number)),
        el("div", {}, el("dt", {}, t("place")), el("dd", {}, place(order))),
        el("div", {}, el("dt", {}, t("category")), el("dd", {}, label("category", order.category))),
        el("div", {}, el("dt", {}, t("due_at")), el("dd", {}, dateTime(order.due_at))),
        el("div", {}, el("dt", {}, t("reporter")), el("dd", {}, order.reporter || t("system")))),
      order.description ? el("p", { class: "description" }, order.description) : null,
      photos,
      actions),
    readingCard,
    active || order.status === "resolved" ? noteForm : null,
    el("section", { class: "card", "aria-labelledby": "trail-title" }, el("h2", { id: "trail-title" }, t("trail")), reportTrail(events)));
}

async function start() {
  const found = await session(["worker"]);
  if (!found) return;
  me = found.me;
  setTimezone(found.site.timezone);
  header(me, [["/app/worker/", t("worker.title")]]);
  const show = router([
    [/^\/app\/worker$/, list],
    [/^\/app\/worker\/orders\/(\d+)$/, detail],
  ], list);
  await show();
}

start().catch((error) => render(el("section", { class: "error-page", role: "alert" }, el("h1", {}, t("error.failed")), el("p", {}, error.message))));

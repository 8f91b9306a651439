// The facilities staff's pages (desktop): the repair-order board, rooms and their money, devices and
// their commands, zones with schedules, overrides and emergency broadcast, the calendar, and Grafana.
import {
  ApiError, announce, api, badge, campusDate, campusOffset, circuitList, clock, confirmDialog, dateTime, el, errorBox, field,
  header, idempotencyKey, label, lang, number, reading, render, router, select, session, setTimezone, t, timezone, yuan,
} from "./core.js";
import { photoList, reportTrail } from "./repairs.js";
import { enc, frame, page, table } from "./staff_frame.js";
import { energy } from "./energy.js";
import { overview } from "./overview.js";
import { staysSection } from "./stays.js";
import { zoneDetail, zones } from "./zones.js";

let me;
let site;
const STATUSES = ["open", "assigned", "in_progress", "resolved", "closed", "cancelled"];

// Filters kept in the URL's query, so a filtered board can be bookmarked and shared.
function filterForm(fields, apply) {
  const params = new URLSearchParams(window.location.search);
  const controls = fields.map(([name, text, options]) => {
    const control = select([["", t("all")], ...options], { name });
    control.value = params.get(name) || "";
    return [name, text, control];
  });
  const form = el("form", { class: "filters", role: "search" },
    controls.map(([, text, control]) => field(text, control)),
    el("button", { type: "submit", class: "secondary" }, t("filter")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, , control] of controls) if (control.value) query.set(name, control.value);
    history.pushState({}, "", `${window.location.pathname}${query.size ? `?${query}` : ""}`);
    apply();
  });
  return form;
}

// ---- repair-order board -------------------------------------------------------------------------------

async function board() {
  const params = new URLSearchParams(window.location.search);
  const query = new URLSearchParams({ limit: "500" });
  for (const name of ["status", "category", "building"]) if (params.get(name)) query.set(name, params.get(name));
  const [orders, workers, stats] = await Promise.all([
    api(`/api/v1/repairs?${query}`), api("/api/v1/users?role=worker"), api("/api/v1/repairs/stats"),
  ]);
  const rows = orders.map((order) => {
    const assign = select([["", t("board.choose")], ...workers.map((w) => [w.username, `${w.display_name || w.username} (${w.team || "—"})`])], { "aria-label": t("board.assign_to", { number: order.number }) });
    assign.value = order.assignee || "";
    const active = ["open", "assigned", "in_progress"].includes(order.status);
    return el("tr", { class: order.overdue ? "overdue" : null, "data-order": order.number },
      el("td", {}, el("a", { href: `/app/staff/orders/${order.id}` }, order.number)),
      el("td", {}, order.title),
      el("td", {}, label("category", order.category)),
      el("td", {}, [order.building, order.room].filter(Boolean).join(" · ") || "—"),
      el("td", {}, badge(order.status, label("status", order.status)), order.overdue ? [" ", badge("overdue", t("overdue"))] : null),
      el("td", {}, order.assignee || "—"),
      el("td", {}, dateTime(order.due_at)),
      el("td", {}, active ? el("div", { class: "inline" }, assign, el("button", {
        type: "button", class: "secondary small",
        onclick: async () => {
          if (!assign.value) return;
          try {
            await api(`/api/v1/repairs/${order.id}/assign`, { method: "POST", body: { username: assign.value } });
            announce(t("board.assigned", { number: order.number, who: assign.value }));
            await board();
          } catch (error) {
            announce(error.message);
          }
        },
      }, t("board.assign"))) : "—"));
  });
  const statRows = stats.by_category.map((row) => el("tr", {}, el("th", { scope: "row" }, label("category", row.key)), el("td", {}, row.open), el("td", {}, row.resolved), el("td", {}, row.overdue), el("td", {}, number(row.median_hours_to_resolve, 1))));
  page(t("staff.board"),
    filterForm([
      ["status", t("status"), STATUSES.map((s) => [s, label("status", s)])],
      ["category", t("category"), site.repair_categories.map((c) => [c, label("category", c)])],
      ["building", t("building"), site.buildings.map((b) => [b, b])],
    ], board),
    el("p", { class: "muted" }, t("board.count", { count: orders.length })),
    table([t("number"), t("title"), t("category"), t("place"), t("status"), t("assignee"), t("due_at"), t("board.reassign")], rows, t("staff.board")),
    el("section", { "aria-labelledby": "stats-title" }, el("h2", { id: "stats-title" }, t("board.stats")),
      table([t("category"), t("board.open"), t("board.resolved"), t("overdue"), t("board.median_hours")], statRows)));
}

async function orderDetail(orderId) {
  const order = await api(`/api/v1/repairs/${enc(orderId)}`);
  const [events, photos] = await Promise.all([api(`/api/v1/repairs/${order.id}/events`), photoList(order.id)]);
  page(`${order.number} ${order.title}`,
    el("p", {}, el("a", { href: "/app/staff/orders" }, t("back"))),
    el("section", { class: "card" },
      el("p", {}, badge(order.status, label("status", order.status)), " ", badge(order.priority, label("priority", order.priority))),
      el("dl", { class: "facts" },
        ...[[t("category"), label("category", order.category)], [t("place"), [order.building, order.room].filter(Boolean).join(" · ") || "—"],
          [t("device"), order.device || "—"], [t("assignee"), order.assignee || "—"], [t("due_at"), dateTime(order.due_at)],
          [t("reporter"), order.reporter || t("system")]].map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v)))),
      order.description ? el("p", {}, order.description) : null, photos),
    el("section", { class: "card" }, el("h2", {}, t("trail")), reportTrail(events)));
}

// ---- rooms ------------------------------------------------------------------------------------------

async function rooms() {
  const all = await api("/api/v1/rooms?wallets=true");
  const search = el("input", { type: "search", name: "q", value: new URLSearchParams(window.location.search).get("q") || "" });
  const state = select([["", t("all")], ...["normal", "low", "cut_off", "tripped", "locked", "curfew"].map((s) => [s, label("room_state", s)])], { name: "state" });
  const body = el("tbody");
  const count = el("p", { class: "muted", "aria-live": "polite" });
  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    const matches = all.filter((room) => (!needle || room.id.toLowerCase().includes(needle) || room.building.toLowerCase().includes(needle)) && (!state.value || room.state === state.value));
    body.replaceChildren(...matches.slice(0, 200).map((room) => el("tr", {},
      el("td", {}, el("a", { href: `/app/staff/rooms/${enc(room.id)}` }, room.id)),
      el("td", {}, room.building), el("td", {}, room.floor), el("td", { class: "num" }, yuan(room.balance_fen)),
      el("td", {}, badge(room.state, label("room_state", room.state))))));
    count.textContent = t("rooms.count", { shown: Math.min(matches.length, 200), count: matches.length });
  };
  search.addEventListener("input", draw);
  state.addEventListener("change", draw);
  page(t("staff.rooms"),
    el("div", { class: "filters", role: "search" }, field(t("rooms.search"), search), field(t("room_state"), state)),
    count,
    el("div", { class: "table-wrap" }, el("table", { class: "data" },
      el("thead", {}, el("tr", {}, [t("room"), t("building"), t("floor_col"), t("wallet.balance"), t("room_state")].map((h) => el("th", { scope: "col" }, h)))), body)));
  draw();
}

async function roomDetail(roomId) {
  const room = await api(`/api/v1/rooms/${enc(roomId)}`);
  const entries = await api(`/api/v1/rooms/${enc(room.id)}/ledger?limit=50`);
  const events = await api(`/api/v1/rooms/${enc(room.id)}/power-events?limit=20`);
  const wallet = room.wallet;
  const ledgerRows = entries.map((entry) => el("tr", {},
    el("td", {}, dateTime(entry.created_at)), el("td", {}, label("ledger", entry.kind)),
    el("td", { class: "num" }, yuan(entry.amount_fen)), el("td", { class: "num" }, yuan(entry.balance_after_fen)),
    el("td", {}, entry.kwh ? `${number(entry.kwh, 2)} kWh` : ""), el("td", {}, entry.note || entry.cause)));
  page(t("room_title", { room: room.id }),
    el("p", {}, el("a", { href: "/app/staff/rooms" }, t("back"))),
    el("section", { class: "card" },
      el("p", {}, el("span", { class: "balance", "data-testid": "balance" }, yuan(wallet.balance_fen)), " ", badge(wallet.state, label("room_state", wallet.state))),
      el("dl", { class: "facts" },
        ...[[t("wallet.month_kwh"), `${number(wallet.month_kwh, 1)} kWh`], [t("wallet.month_spend"), yuan(wallet.month_spend_fen)],
          [t("wallet.free_left"), `${number(wallet.free_kwh_left, 1)} kWh`], [t("tariff"), wallet.tariff], [t("rooms.trips"), wallet.trips],
          [t("rooms.meter"), room.meter], [t("rooms.relay"), room.relay || "—"]].map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v)))),
      ...circuitList(wallet.circuits || [])),
    lockForm(room, wallet),
    await staysSection(room, wallet, () => roomDetail(room.id)),
    powerEvents(events),
    adjustmentForm(room),
    el("section", { "aria-labelledby": "ledger-title" }, el("h2", { id: "ledger-title" }, t("ledger.title")),
      table([t("time"), t("ledger.kind"), t("amount"), t("ledger.balance_after"), "kWh", t("ledger.cause")], ledgerRows)));
}

// Lock a room's power off (a violation found on inspection) or unlock it, each with a reason for the record.
function lockForm(room, wallet) {
  const unlocking = wallet.locked;
  const reason = el("input", { name: "power-reason", required: true, minlength: 2, maxlength: 500 });
  const problem = el("div", { class: "problem" });
  const title = unlocking ? t("power.unlock") : t("power.lock");
  const form = el("form", { class: "card", "aria-labelledby": "lock-title" },
    el("h2", { id: "lock-title" }, title),
    field(t("reason"), reason, t("power.reason_hint")),
    problem, el("button", { type: "submit", class: unlocking ? "primary" : "danger" }, unlocking ? t("power.unlock_submit") : t("power.lock_submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    try {
      await api(`/api/v1/rooms/${enc(room.id)}/${unlocking ? "unlock" : "lock"}`, { method: "POST", body: { reason: reason.value.trim() } });
      announce(unlocking ? t("power.unlocked") : t("power.locked_done"));
      await roomDetail(room.id);
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
  });
  return form;
}

function powerEvents(events) {
  const detail = (event) => {
    if (event.kind !== "appliance_trip") return event.reason;
    const parts = [t("power.appliance", { watts: number(event.step_w, 0) })];
    if (event.power_factor !== null) parts.push(t("power.pf", { pf: number(event.power_factor, 2) }));
    return parts.join(" · ");
  };
  const rows = events.map((event) => el("tr", {},
    el("td", {}, dateTime(event.at)), el("td", {}, label("power.kind", event.kind)), el("td", {}, detail(event)),
    el("td", {}, event.kind === "appliance_trip" ? (event.restore_at ? dateTime(event.restore_at) : t("power.staff_restore")) : "—"),
    el("td", {}, event.by || t("system"))));
  return el("section", { "aria-labelledby": "power-title" }, el("h2", { id: "power-title" }, t("power.title")),
    rows.length ? table([t("time"), t("power.what"), t("power.detail"), t("power.restore_at"), t("power.by")], rows) : el("p", { class: "muted" }, t("power.empty")));
}

function adjustmentForm(room) {
  if (me.role !== "admin") return el("p", { class: "muted" }, t("rooms.adjust_admin_only"));
  const amount = el("input", { type: "number", step: "0.01", name: "amount", required: true });
  const kind = select(["adjustment", "refund", "topup"].map((k) => [k, label("ledger", k)]), { name: "kind" });
  const reason = el("input", { name: "reason", required: true, minlength: 3, maxlength: 500 });
  const problem = el("div", { class: "problem" });
  let key = idempotencyKey();
  const form = el("form", { class: "card", "aria-labelledby": "adjust-title" },
    el("h2", { id: "adjust-title" }, t("rooms.adjust")),
    el("div", { class: "row" }, field(t("rooms.adjust_amount"), amount, t("rooms.adjust_hint")), field(t("ledger.kind"), kind), field(t("reason"), reason)),
    problem, el("button", { type: "submit", class: "primary" }, t("rooms.adjust_submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fen = Math.round(Number(amount.value) * 100);
    if (!fen) {
      problem.replaceChildren(errorBox(t("rooms.adjust_zero")));
      return;
    }
    if (!(await confirmDialog(t("rooms.adjust"), t("rooms.adjust_confirm", { amount: yuan(fen), room: room.id, reason: reason.value }), t("confirm")))) return;
    try {
      await api(`/api/v1/rooms/${enc(room.id)}/adjustments`, { method: "POST", body: { amount_fen: fen, kind: kind.value, reason: reason.value }, headers: { "Idempotency-Key": key } });
      key = idempotencyKey();
      announce(t("rooms.adjusted"));
      await roomDetail(room.id);
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  });
  return form;
}

// ---- devices ----------------------------------------------------------------------------------------

async function devices() {
  const all = await api("/api/v1/devices");
  const search = el("input", { type: "search", name: "q" });
  const kinds = [...new Set(all.map((d) => d.kind))].sort();
  const kind = select([["", t("all")], ...kinds.map((k) => [k, k])], { name: "kind" });
  const online = select([["", t("all")], ["yes", t("online")], ["no", t("offline")]], { name: "online" });
  const body = el("tbody");
  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    const rows = all.filter((d) => (!needle || d.id.includes(needle) || d.building.toLowerCase().includes(needle)) && (!kind.value || d.kind === kind.value) && (!online.value || (online.value === "yes") === (d.online === true)));
    body.replaceChildren(...rows.map((d) => el("tr", {},
      el("td", {}, el("a", { href: `/app/staff/devices/${enc(d.id)}` }, d.id)), el("td", {}, d.kind), el("td", {}, d.building),
      el("td", {}, d.room || "—"), el("td", {}, d.gateway || d.topic || "—"),
      el("td", {}, d.online === null ? badge("unknown", t("unknown")) : badge(d.online ? "normal" : "cut_off", d.online ? t("online") : t("offline"))),
      el("td", {}, dateTime(d.last_seen)))));
  };
  for (const control of [search, kind, online]) control.addEventListener("input", draw);
  page(t("staff.devices"),
    el("div", { class: "filters", role: "search" }, field(t("devices.search"), search), field(t("devices.kind"), kind), field(t("devices.online"), online)),
    el("div", { class: "table-wrap" }, el("table", { class: "data" },
      el("thead", {}, el("tr", {}, [t("device"), t("devices.kind"), t("building"), t("room"), t("devices.link"), t("devices.online"), t("last_seen_col")].map((h) => el("th", { scope: "col" }, h)))), body)));
  draw();
}

async function deviceDetail(deviceId) {
  const [device, commands] = await Promise.all([api(`/api/v1/devices/${enc(deviceId)}`), api(`/api/v1/devices/${enc(deviceId)}/commands`)]);
  const readings = (values) => Object.keys(values).length
    ? el("dl", { class: "readings" }, Object.entries(values).map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, reading(v)))))
    : el("p", { class: "muted" }, t("devices.no_reading"));
  const commandRows = commands.map((c) => el("tr", {}, el("td", {}, dateTime(c.created_at)), el("td", {}, `${c.command} ${c.action}`),
    el("td", {}, badge(c.state, label("command_state", c.state))), el("td", {}, c.requested_by || c.source), el("td", {}, c.attempts), el("td", {}, c.last_error || "")));
  page(device.id,
    el("p", {}, el("a", { href: "/app/staff/devices" }, t("back"))),
    el("section", { class: "card" },
      el("p", {}, device.online === null ? badge("unknown", t("unknown")) : badge(device.online ? "normal" : "cut_off", device.online ? t("online") : t("offline")),
        ` ${device.kind} · ${device.model} · ${device.building}${device.room ? ` · ${device.room}` : ""} · ${t("last_seen", { at: dateTime(device.last_seen) })}`),
      el("h2", {}, t("devices.latest")), readings(device.fields),
      el("h2", {}, t("devices.health")), readings(device.health)),
    commandForm(device),
    el("section", {}, el("h2", {}, t("devices.commands")), table([t("time"), t("devices.command"), t("status"), t("devices.by"), t("devices.attempts"), t("devices.error")], commandRows)));
}

function commandForm(device) {
  const names = Object.keys(device.commands);
  if (!names.length) return null;
  const command = select(names.map((n) => [n, n]), { name: "command" });
  const action = el("select", { name: "action" });
  const fill = () => action.replaceChildren(...device.commands[command.value].map((a) => el("option", { value: a }, a)));
  command.addEventListener("change", fill);
  fill();
  const reason = el("input", { name: "reason", maxlength: 500 });
  const problem = el("div", { class: "problem" });
  const form = el("form", { class: "card", "aria-labelledby": "command-title" },
    el("h2", { id: "command-title" }, t("devices.send")),
    el("div", { class: "row" }, field(t("devices.command"), command), field(t("devices.action"), action), field(t("reason"), reason)),
    problem, el("button", { type: "submit", class: "primary" }, t("devices.send")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!(await confirmDialog(t("devices.send"), t("devices.confirm", { device: device.id, command: `${command.value} ${action.value}` }), t("confirm")))) return;
    try {
      await api(`/api/v1/devices/${enc(device.id)}/commands`, { method: "POST", body: { command: command.value, action: action.value, reason: reason.value } });
      announce(t("devices.queued"));
      await deviceDetail(device.id);
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  });
  return form;
}

// ---- calendar ---------------------------------------------------------------------------------------

async function calendar() {
  const params = new URLSearchParams(window.location.search);
  const month = /^\d{4}-\d{2}$/.test(params.get("month") || "") ? params.get("month") : campusDate().slice(0, 7);
  const [year, monthNumber] = month.split("-").map(Number);
  const first = `${month}-01`;
  const lastDay = new Date(Date.UTC(year, monthNumber, 0)).getUTCDate();
  const answer = await api(`/api/v1/calendar?from=${first}&to=${month}-${String(lastDay).padStart(2, "0")}`);
  const shift = (delta) => {
    const date = new Date(Date.UTC(year, monthNumber - 1 + delta, 1));
    return `/app/staff/calendar?month=${date.toISOString().slice(0, 7)}`;
  };
  const lead = (new Date(Date.UTC(year, monthNumber - 1, 1)).getUTCDay() + 6) % 7; // weeks start on Monday
  const cells = [...Array(lead).fill(null), ...answer.days];
  const weeks = [];
  for (let i = 0; i < cells.length; i += 7) weeks.push(cells.slice(i, i + 7));
  const today = campusDate();
  const weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
  page(t("staff.calendar"),
    el("p", { class: "actions" }, el("a", { href: shift(-1), class: "button secondary" }, t("calendar.previous")),
      el("strong", { class: "month" }, month), el("a", { href: shift(1), class: "button secondary" }, t("calendar.next"))),
    el("div", { class: "table-wrap" }, el("table", { class: "calendar" },
      el("caption", {}, t("calendar.caption", { month })),
      el("thead", {}, el("tr", {}, weekdays.map((d) => el("th", { scope: "col" }, label("weekday", d))))),
      el("tbody", {}, weeks.map((week) => el("tr", {}, week.map((day) => day === null ? el("td", {}) : el("td", { class: `day day-${day.type}${day.date === today ? " today" : ""}` },
        el("span", { class: "date" }, String(Number(day.date.slice(8)))),
        el("span", { class: "type" }, label("day", day.type)),
        day.timetable && ["school_day", "exam_day"].includes(day.type) && weekdays[(new Date(`${day.date}T12:00:00Z`).getUTCDay() + 6) % 7] !== day.timetable ? el("span", { class: "follows" }, t("calendar.follows", { day: label("weekday", day.timetable) })) : null,
        day.note ? el("span", { class: "note" }, day.note) : null))))))),
    el("section", {}, el("h2", {}, t("calendar.terms")), el("ul", {}, answer.terms.map((term) => el("li", {}, `${term.name}: ${term.start} – ${term.end}`)))));
}

// ---- Grafana ----------------------------------------------------------------------------------------

async function dashboards() {
  page(t("staff.dashboards"), site.dashboards.length
    ? el("ul", { class: "cards" }, site.dashboards.map((d) => el("li", {}, el("a", { class: "card link-card", href: d.url, target: "_blank", rel: "noopener" },
        el("strong", {}, lang() === "zh" ? d.title_zh : d.title), el("span", { class: "muted" }, d.url)))))
    : el("p", {}, t("dashboards.none")));
}

async function start() {
  const found = await session(["staff", "admin", "cashier"]);
  if (!found) return;
  ({ me, site } = found);
  frame.me = me;
  setTimezone(site.timezone);
  const links = frame.links = me.role === "cashier"
    ? [["/app/staff/rooms", t("staff.rooms")]]
    : [["/app/staff/overview", t("staff.overview")], ["/app/staff/energy", t("staff.energy")], ["/app/staff/orders", t("staff.board")], ["/app/staff/rooms", t("staff.rooms")], ["/app/staff/devices", t("staff.devices")],
      ["/app/staff/zones", t("staff.zones")], ["/app/staff/calendar", t("staff.calendar")], ["/app/staff/dashboards", t("staff.dashboards")]];
  header(me, links);
  const show = router([
    [/^\/app\/staff\/overview$/, overview],
    [/^\/app\/staff\/energy$/, energy],
    [/^\/app\/staff\/orders$/, board],
    [/^\/app\/staff\/orders\/(\d+)$/, orderDetail],
    [/^\/app\/staff\/rooms$/, rooms],
    [/^\/app\/staff\/rooms\/([^/]+)$/, roomDetail],
    [/^\/app\/staff\/devices$/, devices],
    [/^\/app\/staff\/devices\/([^/]+)$/, deviceDetail],
    [/^\/app\/staff\/zones$/, zones],
    [/^\/app\/staff\/zones\/([^/]+)$/, zoneDetail],
    [/^\/app\/staff\/calendar$/, calendar],
    [/^\/app\/staff\/dashboards$/, dashboards],
  ], async () => {
    history.replaceState({}, "", links[0][0]);
    await show();
  });
  await show();
}

start().catch((error) => {
  if (error instanceof ApiError && error.status === 401) return;
  render(el("section", { class: "error-page", role: "alert" }, el("h1", {}, t("error.failed")), el("p", {}, error.message)));
});

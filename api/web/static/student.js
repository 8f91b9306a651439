// The student's page (mobile first): my room's balance and state, top up, usage, ledger, and problems I
// reported. Every figure comes from the API as this student: another room's URL gets the API's refusal.
import { barChart } from "./chart.js";
import {
  ApiError, announce, api, badge, campusDate, circuitList, confirmDialog, dateTime, el, errorBox, errorPage, field,
  header, idempotencyKey, label, number, render, router, select, session, setTimezone, t, yuan,
} from "./core.js";
import { photoInput, photoList, reportTrail, uploadPhoto } from "./repairs.js";

let me;
let site;

const enc = encodeURIComponent;
const roomBase = (room) => `/app/student/rooms/${enc(room)}`;

function roomTabs(room, current) {
  const tabs = [["", t("tab.overview")], ["/usage", t("tab.usage")], ["/ledger", t("tab.ledger")], ["/reports", t("tab.reports")]];
  return el("nav", { class: "tabs", "aria-label": t("room_sections") },
    el("ul", {}, tabs.map(([suffix, text]) => el("li", {},
      el("a", { href: roomBase(room) + suffix, "aria-current": suffix === current ? "page" : null }, text)))));
}

// The room as this student may see it, or the error page saying they may not.
async function loadRoom(roomId) {
  try {
    return await api(`/api/v1/rooms/${enc(roomId)}`);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
      errorPage(t("error.not_your_room"), t("error.not_your_room_detail"),
        me.rooms.length ? [[roomBase(me.rooms[0]), t("my_room")]] : []);
      return null;
    }
    throw error;
  }
}

function roomHeading(room) {
  document.title = `${room.id} · houqin`;
  return el("h1", { class: "room-title" }, t("room_title", { room: room.id }));
}

// ---- overview and top-up ---------------------------------------------------------------------------

// Why the room is off, when the power policy switched it: its latest power event (a trip, a lock).
async function lastPowerEvent(roomId, wallet) {
  if (!["tripped", "locked"].includes(wallet.state)) return null;
  const [event] = await api(`/api/v1/rooms/${enc(roomId)}/power-events?limit=1`);
  return event || null;
}

function walletFigures(wallet, event) {
  const state = wallet.state;
  const notes = [];
  if (wallet.cut_pending) notes.push(el("p", { class: "notice" }, t("wallet.cut_pending")));
  if (state === "tripped" && wallet.tripped_until) {
    const appliance = event && event.kind === "appliance_trip";
    notes.push(el("p", { class: "notice", "data-testid": "power-note" }, appliance
      ? t("wallet.appliance_trip", { watts: number(event.step_w, 0), at: dateTime(wallet.tripped_until) })
      : t("wallet.tripped_until", { at: dateTime(wallet.tripped_until) })));
  }
  if (state === "locked") {
    const byStaff = event && event.kind === "locked" && event.by;
    notes.push(el("p", { class: "notice", "data-testid": "power-note" },
      byStaff ? t("wallet.locked_by_staff", { reason: event.reason }) : t("wallet.locked_help")));
  }
  if (state === "cut_off") notes.push(el("p", { class: "notice" }, t("wallet.cut_off_help")));
  if (state === "curfew") notes.push(el("p", { class: "notice", "data-testid": "power-note" }, t("wallet.curfew_help")));
  if (wallet.night_limit_w) notes.push(el("p", { class: "notice" }, t("wallet.night_limit", { watts: number(wallet.night_limit_w, 0) })));
  return [
    el("div", { class: "balance-row" },
      el("p", { class: "balance-label" }, t("wallet.balance")),
      badge(state, label("room_state", state))),
    el("p", { class: "balance", "data-testid": "balance" }, yuan(wallet.balance_fen)),
    ...notes,
    el("dl", { class: "figures-grid" },
      el("div", {}, el("dt", {}, t("wallet.month_kwh")), el("dd", {}, `${number(wallet.month_kwh, 1)} kWh`)),
      el("div", {}, el("dt", {}, t("wallet.month_spend")), el("dd", {}, yuan(wallet.month_spend_fen))),
      el("div", {}, el("dt", {}, t("wallet.free_left")), el("dd", {}, `${number(wallet.free_kwh_left, 1)} kWh`))),
    ...circuitList(wallet.circuits || []),
  ];
}

async function overview(roomId) {
  const room = await loadRoom(roomId);
  if (!room) return;
  const walletCard = el("section", { class: "card wallet", "aria-labelledby": "wallet-title" },
    el("h2", { id: "wallet-title", class: "visually-hidden" }, t("wallet.title")),
    walletFigures(room.wallet, await lastPowerEvent(room.id, room.wallet)));
  const refresh = async () => {
    const wallet = await api(`/api/v1/rooms/${enc(room.id)}/wallet`);
    const event = await lastPowerEvent(room.id, wallet);
    walletCard.replaceChildren(el("h2", { id: "wallet-title", class: "visually-hidden" }, t("wallet.title")), ...walletFigures(wallet, event));
    return wallet;
  };
  render(roomHeading(room), roomTabs(room.id, ""), walletCard, topupCard(room, refresh));
}

function topupCard(room, refresh) {
  const tariff = site.tariffs.find((each) => each.id === room.tariff);
  const methods = site.payment_methods.filter((method) => method !== "campus_card");
  const card = el("section", { class: "card", "aria-labelledby": "topup-title" }, el("h2", { id: "topup-title" }, t("topup.title")));
  if (!methods.length || !tariff) {
    card.append(el("p", {}, t("topup.unavailable")));
    return card;
  }
  const [min, max] = [tariff.min_topup_fen, tariff.max_topup_fen];
  const presets = [1000, 2000, 5000, 10000].filter((fen) => fen >= min && fen <= max);
  let amount = presets.includes(2000) ? 2000 : presets[0] ?? min;
  const custom = el("input", { type: "number", inputmode: "decimal", min: min / 100, max: max / 100, step: "0.01", name: "custom" });
  const problem = el("div", { class: "problem" });
  const payButton = el("button", { type: "submit", class: "primary wide" });
  const method = methods.length > 1 ? select(methods.map((m) => [m, label("method", m)]), { name: "method" }) : null;
  const presetButtons = presets.map((fen) => el("button", {
    type: "button", class: "preset", "aria-pressed": String(fen === amount), "data-fen": fen,
    onclick: () => {
      amount = fen;
      custom.value = "";
      update();
    },
  }, yuan(fen)));
  const update = () => {
    for (const button of presetButtons) button.setAttribute("aria-pressed", String(Number(button.dataset.fen) === amount && !custom.value));
    payButton.textContent = t("topup.pay", { amount: amount ? yuan(amount) : "" });
  };
  custom.addEventListener("input", () => {
    const fen = Math.round(Number(custom.value) * 100);
    amount = custom.value && Number.isFinite(fen) ? fen : presets[0] ?? min;
    update();
  });
  // Our own check, not the browser's bubble: it names the limits and is read out.
  const form = el("form", { class: "topup", novalidate: true },
    el("fieldset", {}, el("legend", {}, t("topup.amount")), el("div", { class: "presets" }, presetButtons)),
    field(t("topup.custom"), custom, t("topup.limits", { min: yuan(min), max: yuan(max) })),
    method ? field(t("topup.method"), method) : null,
    problem,
    payButton);
  update();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    if (!(amount >= min && amount <= max)) {
      problem.append(errorBox(t("topup.out_of_limits", { min: yuan(min), max: yuan(max) })));
      custom.focus();
      return;
    }
    payButton.disabled = true;
    try {
      const paid = await pay(room, amount, method ? method.value : methods[0], problem);
      if (paid) {
        const wallet = await refresh();
        custom.value = "";
        announce(t("topup.done", { amount: yuan(amount), balance: yuan(wallet.balance_fen) }));
        problem.replaceChildren(el("p", { class: "success" }, t("topup.done", { amount: yuan(amount), balance: yuan(wallet.balance_fen) })));
      }
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    } finally {
      payButton.disabled = false;
    }
  });
  card.append(form);
  return card;
}

// One top-up: the order (its key kept until it is paid, so a retry cannot create a second), the
// provider's payment step, then waiting for the provider's notification to credit the room.
async function pay(room, amountFen, provider, problem) {
  const slot = `houqin.topup.${room.id}`;
  let pending = JSON.parse(sessionStorage.getItem(slot) || "null");
  if (!pending || pending.amount !== amountFen || pending.provider !== provider) pending = { key: idempotencyKey(), amount: amountFen, provider };
  sessionStorage.setItem(slot, JSON.stringify(pending));
  const { order, checkout } = await api(`/api/v1/rooms/${enc(room.id)}/topups`, {
    method: "POST", body: { amount_fen: amountFen, provider }, headers: { "Idempotency-Key": pending.key },
  });
  if (order.state !== "paid") {
    if (provider === "sandbox") {
      const confirmed = await confirmDialog(t("sandbox.title"), [
        el("p", {}, t("sandbox.body", { amount: yuan(amountFen), room: room.id })),
        el("p", { class: "muted" }, t("sandbox.note")),
      ], t("sandbox.confirm"));
      if (!confirmed) {
        problem.replaceChildren(el("p", { class: "notice" }, t("topup.cancelled")));
        return false;
      }
      await api(checkout.notify_url, { method: "POST", body: checkout.notification, headers: { "X-Sandbox-Signature": checkout.signature } });
    } else if (checkout.pay_url) {
      problem.replaceChildren(el("p", { class: "notice" }, t("topup.continue_provider"), " ",
        el("a", { href: checkout.pay_url, target: "_blank", rel: "noopener" }, label("method", provider))));
      window.open(checkout.pay_url, "_blank", "noopener");
    } else if (checkout.code_url) {
      problem.replaceChildren(el("p", { class: "notice" }, t("topup.scan", { url: checkout.code_url })));
    }
    announce(t("topup.waiting"));
    await waitPaid(room.id, order.id);
  }
  sessionStorage.removeItem(slot);
  return true;
}

async function waitPaid(roomId, orderId) {
  const deadline = Date.now() + 10 * 60 * 1000;
  while (Date.now() < deadline) {
    const orders = await api(`/api/v1/rooms/${enc(roomId)}/topups`);
    const order = orders.find((each) => each.id === orderId);
    if (order?.state === "paid") return;
    if (order?.state === "rejected") throw new Error(t("topup.rejected"));
    await new Promise((resolve) => window.setTimeout(resolve, 1000));
  }
  throw new Error(t("topup.timeout"));
}

// ---- usage -----------------------------------------------------------------------------------------

async function usage(roomId) {
  const room = await loadRoom(roomId);
  if (!room) return;
  const chartArea = el("div", { class: "chart-area" });
  const buttons = [["days", t("usage.days30")], ["today", t("usage.today")]].map(([kind, text]) =>
    el("button", { type: "button", class: "toggle", "aria-pressed": String(kind === "days"), onclick: () => showKind(kind) }, text));
  const showKind = async (kind) => {
    buttons.forEach((button, index) => button.setAttribute("aria-pressed", String((index === 0) === (kind === "days"))));
    chartArea.replaceChildren(el("p", { class: "loading" }, t("loading")));
    try {
      chartArea.replaceChildren(...(kind === "days" ? await lastThirtyDays(room.id) : await today(room.id)));
    } catch (error) {
      chartArea.replaceChildren(errorBox(error.message));
    }
  };
  render(roomHeading(room), roomTabs(room.id, "/usage"),
    el("section", { class: "card", "aria-labelledby": "usage-title" },
      el("h2", { id: "usage-title" }, t("usage.title")),
      el("div", { class: "toggles", role: "group", "aria-label": t("usage.period") }, buttons),
      chartArea),
    await sharesCard(room.id));
  await showKind("days");
}

// This month's kWh and cost per roommate: by the days each lived here where the dorm office records moves,
// else evenly between the beds.
async function sharesCard(roomId) {
  const split = await api(`/api/v1/rooms/${enc(roomId)}/shares`);
  const byDays = split.split === "bed_days";
  const rows = split.shares.map((share) => el("tr", {},
    el("td", {}, share.bed === null ? t("shares.vacant") : t("shares.bed", { bed: share.bed })),
    el("td", {}, share.student || (share.bed === null ? "—" : t("shares.empty_bed"))),
    byDays ? el("td", { class: "num" }, share.bed_days ?? "—") : null,
    el("td", { class: "num" }, `${number(share.kwh, 2)} kWh`), el("td", { class: "num" }, yuan(share.cost_fen))));
  const heads = [t("shares.bed_col"), t("shares.student"), ...(byDays ? [t("shares.days")] : []), "kWh", t("shares.cost")];
  return el("section", { class: "card", "aria-labelledby": "shares-title" },
    el("h2", { id: "shares-title" }, t("shares.title")),
    el("p", { class: "muted" }, t(byDays ? "shares.lead_days" : "shares.lead", { kwh: number(split.kwh, 1), cost: yuan(split.cost_fen) })),
    el("div", { class: "table-wrap" }, el("table", { class: "data" },
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))));
}

async function lastThirtyDays(roomId) {
  const today = campusDate();
  const first = `${today.slice(0, 8)}01`;
  const lastMonth = campusDate(new Date(new Date(`${first}T12:00:00Z`).getTime() - 86400000));
  const [previous, current] = await Promise.all([lastMonth, today].map((day) => api(`/api/v1/rooms/${enc(roomId)}/usage?period=month&date=${day}`)));
  const cutoff = new Date(Date.now() - 30 * 86400000);
  const windows = [...previous.windows, ...current.windows].filter((w) => new Date(w.end) > cutoff && new Date(w.start) <= new Date());
  const bars = windows.map((w) => ({ label: campusDate(new Date(w.start)).slice(8), value: w.kwh, title: `${campusDate(new Date(w.start))}: ${number(w.kwh, 2)} kWh` }));
  const total = windows.reduce((sum, w) => sum + (w.kwh ?? 0), 0);
  return [el("p", { class: "total" }, t("usage.total30", { kwh: number(total, 1) })),
    barChart({ caption: t("usage.days_caption"), bars, unit: "kWh", tableHeads: [t("usage.day"), "kWh", t("usage.show_figures")] })];
}

async function today(roomId) {
  const answer = await api(`/api/v1/rooms/${enc(roomId)}/usage?period=day`);
  const now = new Date();
  const bars = answer.windows.filter((w) => new Date(w.start) <= now).map((w) => ({ label: new Date(w.start).toLocaleTimeString("en-GB", { hour: "2-digit", timeZone: site.timezone }), value: w.kwh }));
  return [el("p", { class: "total" }, t("usage.total_today", { kwh: number(answer.total_kwh, 2) })),
    barChart({ caption: t("usage.hours_caption"), bars, unit: "kWh", tableHeads: [t("usage.hour"), "kWh", t("usage.show_figures")] })];
}

// ---- ledger ----------------------------------------------------------------------------------------

async function ledger(roomId) {
  const room = await loadRoom(roomId);
  if (!room) return;
  const list = el("ol", { class: "ledger" });
  const more = el("button", { type: "button", class: "secondary wide" }, t("more"));
  let before = null;
  const load = async () => {
    const query = before ? `?limit=30&before=${before}` : "?limit=30";
    const entries = await api(`/api/v1/rooms/${enc(room.id)}/ledger${query}`);
    for (const entry of entries) {
      list.append(el("li", {},
        el("div", { class: "line" },
          el("span", { class: "what" }, label("ledger", entry.kind), entry.kwh ? ` · ${number(entry.kwh, 2)} kWh` : ""),
          el("span", { class: entry.amount_fen < 0 ? "amount debit" : "amount credit" }, (entry.amount_fen > 0 ? "+" : "") + yuan(entry.amount_fen))),
        el("div", { class: "line muted" },
          el("span", {}, dateTime(entry.created_at), entry.paid_by ? ` · ${t("ledger.paid_by", { who: entry.paid_by })}` : "",
            entry.note ? ` · ${entry.note}` : ""),
          el("span", {}, t("ledger.after", { balance: yuan(entry.balance_after_fen) })))));
    }
    before = entries.length ? entries[entries.length - 1].id : before;
    more.hidden = entries.length < 30;
    if (!list.children.length) list.replaceWith(el("p", {}, t("ledger.empty")));
  };
  more.addEventListener("click", () => load().catch((error) => more.replaceWith(errorBox(error.message))));
  render(roomHeading(room), roomTabs(room.id, "/ledger"),
    el("section", { class: "card", "aria-labelledby": "ledger-title" }, el("h2", { id: "ledger-title" }, t("ledger.title")), list, more));
  await load();
}

// ---- problems I reported ---------------------------------------------------------------------------

async function reports(roomId) {
  const room = await loadRoom(roomId);
  if (!room) return;
  const orders = await api("/api/v1/repairs?limit=100");
  const mine = orders.filter((order) => order.room === room.id || order.room === null);
  const list = mine.length
    ? el("ul", { class: "cards" }, mine.map((order) => el("li", {},
        el("a", { class: "card link-card", href: `${roomBase(room.id)}/reports/${order.id}` },
          el("span", { class: "line" }, el("strong", {}, order.title), badge(order.status, label("status", order.status))),
          el("span", { class: "line muted" }, `${order.number} · ${label("category", order.category)} · ${dateTime(order.created_at)}`)))))
    : el("p", {}, t("reports.none"));
  render(roomHeading(room), roomTabs(room.id, "/reports"), reportForm(room),
    el("section", { class: "card", "aria-labelledby": "mine-title" }, el("h2", { id: "mine-title" }, t("reports.mine")), list));
}

function reportForm(room) {
  const category = select(site.repair_categories.map((c) => [c, label("category", c)]), { name: "category", required: true });
  const title = el("input", { name: "title", required: true, minlength: 3, maxlength: 200 });
  const description = el("textarea", { name: "description", rows: 3, maxlength: 4000 });
  const photo = photoInput();
  const problem = el("div", { class: "problem" });
  const submit = el("button", { type: "submit", class: "primary wide" }, t("reports.send"));
  const form = el("form", { class: "card", "aria-labelledby": "report-title" },
    el("h2", { id: "report-title" }, t("reports.new")),
    field(t("reports.category"), category),
    field(t("reports.what"), title, t("reports.what_hint")),
    field(t("reports.description"), description),
    field(t("photo"), photo, t("photo_hint")),
    problem, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    problem.replaceChildren();
    try {
      const order = await api("/api/v1/repairs", { method: "POST", body: { title: title.value.trim(), category: category.value, description: description.value.trim(), room: room.id } });
      if (photo.files.length) await uploadPhoto(order.id, photo.files[0]);
      announce(t("reports.sent", { number: order.number }));
      await reports(room.id);
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
      submit.disabled = false;
    }
  });
  return form;
}

async function report(roomId, orderId) {
  const room = await loadRoom(roomId);
  if (!room) return;
  const order = await api(`/api/v1/repairs/${enc(orderId)}`);
  const [events, photos] = await Promise.all([api(`/api/v1/repairs/${order.id}/events`), photoList(order.id)]);
  render(roomHeading(room), roomTabs(room.id, "/reports"),
    el("section", { class: "card", "aria-labelledby": "order-title" },
      el("h2", { id: "order-title" }, order.title),
      el("p", {}, badge(order.status, label("status", order.status)), " ", el("span", { class: "muted" }, order.number)),
      order.description ? el("p", {}, order.description) : null,
      photos,
      el("h3", {}, t("reports.trail")),
      reportTrail(events)),
    el("p", {}, el("a", { href: `${roomBase(room.id)}/reports` }, t("back"))));
}

// ---- start -----------------------------------------------------------------------------------------

async function home() {
  if (!me.rooms.length) {
    errorPage(t("error.no_room"), t("error.no_room_detail"));
    return;
  }
  history.replaceState({}, "", roomBase(me.rooms[0]));
  await overview(me.rooms[0]);
}

async function start() {
  const found = await session(["student"]);
  if (!found) return;
  ({ me, site } = found);
  setTimezone(site.timezone);
  header(me, []);
  const show = router([
    [/^\/app\/student\/rooms\/([^/]+)$/, overview],
    [/^\/app\/student\/rooms\/([^/]+)\/usage$/, usage],
    [/^\/app\/student\/rooms\/([^/]+)\/ledger$/, ledger],
    [/^\/app\/student\/rooms\/([^/]+)\/reports$/, reports],
    [/^\/app\/student\/rooms\/([^/]+)\/reports\/(\d+)$/, report],
  ], home);
  await show();
}

start().catch((error) => render(el("section", { class: "error-page", role: "alert" }, el("h1", {}, t("error.failed")), el("p", {}, error.message))));

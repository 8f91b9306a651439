// A shared room's residents in the staff room page: who lives on which bed, move-ins, move-outs (with the
// leaving student's statement), and the year-end refund of the balance, each kept in the record.
import { announce, api, campusDate, confirmDialog, el, errorBox, field, idempotencyKey, t, yuan } from "./core.js";
import { enc, frame, table } from "./staff_frame.js";

function statementView(statement) {
  const rows = statement.months.map((m) => el("tr", {}, el("td", {}, m.month), el("td", { class: "num" }, m.bed_days),
    el("td", { class: "num" }, `${m.kwh.toFixed(2)} kWh`), el("td", { class: "num" }, yuan(m.cost_fen))));
  return el("div", { class: "card statement", "data-testid": "stay-statement" },
    el("h3", {}, t("stays.statement_title", { student: statement.stay.student })),
    el("p", {}, t("stays.statement_lead", { used: yuan(statement.used_fen), paid: yuan(statement.paid_fen) })),
    table([t("stays.month"), t("shares.days"), "kWh", t("shares.cost")], rows));
}

export async function staysSection(room, wallet, refresh) {
  const stays = await api(`/api/v1/rooms/${enc(room.id)}/stays`);
  const area = el("div", { "data-testid": "stays-area" });
  const rows = stays.map((stay) => el("tr", { "data-stay": stay.student },
    el("td", {}, t("shares.bed", { bed: stay.bed })), el("td", {}, stay.student), el("td", {}, stay.moved_in), el("td", {}, stay.moved_out || "—"),
    el("td", {}, stay.moved_out
      ? el("button", { type: "button", class: "secondary small", onclick: async () => area.replaceChildren(statementView(await api(`/api/v1/rooms/${enc(room.id)}/stays/${stay.id}/statement`))) }, t("stays.statement"))
      : el("button", { type: "button", class: "secondary small", onclick: () => area.replaceChildren(moveOutForm(room, stay, area, refresh)) }, t("stays.move_out")))));
  return el("section", { class: "card", "aria-labelledby": "stays-title" },
    el("h2", { id: "stays-title" }, t("stays.title")),
    rows.length ? table([t("shares.bed_col"), t("shares.student"), t("stays.moved_in"), t("stays.moved_out"), ""], rows) : el("p", { class: "muted" }, t("stays.none")),
    area, moveInForm(room, refresh), refundForm(room, wallet, refresh));
}

function moveInForm(room, refresh) {
  const username = el("input", { name: "stay-username", required: true, maxlength: 64 });
  const bed = el("input", { type: "number", name: "stay-bed", min: 1, max: room.beds, value: 1, required: true });
  const day = el("input", { type: "date", name: "stay-moved-in", value: campusDate(), required: true });
  const problem = el("div", { class: "problem" });
  const form = el("form", { class: "inline-form", "aria-label": t("stays.move_in") },
    el("div", { class: "row" }, field(t("stays.username"), username), field(t("shares.bed_col"), bed), field(t("stays.moved_in"), day)),
    problem, el("button", { type: "submit", class: "primary" }, t("stays.move_in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`/api/v1/rooms/${enc(room.id)}/stays`, { method: "POST", body: { username: username.value.trim(), bed: Number(bed.value), moved_in: day.value } });
      announce(t("stays.moved_in_done"));
      await refresh();
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  });
  return form;
}

function moveOutForm(room, stay, area, refresh) {
  const day = el("input", { type: "date", name: "stay-moved-out", value: campusDate(), required: true });
  const problem = el("div", { class: "problem" });
  const form = el("form", { class: "inline-form", "aria-label": t("stays.move_out") },
    el("p", {}, t("stays.move_out_of", { student: stay.student, bed: stay.bed })),
    field(t("stays.moved_out"), day, t("stays.moved_out_hint")), problem,
    el("button", { type: "submit", class: "primary" }, t("stays.move_out")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const statement = await api(`/api/v1/rooms/${enc(room.id)}/stays/${stay.id}/move-out`, { method: "POST", body: { moved_out: day.value } });
      announce(t("stays.moved_out_done"));
      await refresh();
      document.querySelector("[data-testid=stays-area]")?.replaceChildren(statementView(statement));
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  });
  return form;
}

function refundForm(room, wallet, refresh) {
  if (!["staff", "admin"].includes(frame.me.role) || wallet.balance_fen <= 0) return null;
  const to = el("input", { name: "refund-to", required: true, maxlength: 200 });
  const reason = el("input", { name: "refund-reason", required: true, minlength: 2, maxlength: 500 });
  const problem = el("div", { class: "problem" });
  const key = idempotencyKey();
  const form = el("form", { class: "inline-form", "aria-labelledby": "refund-title" },
    el("h3", { id: "refund-title" }, t("stays.refund_title", { amount: yuan(wallet.balance_fen) })),
    el("div", { class: "row" }, field(t("stays.refund_to"), to, t("stays.refund_to_hint")), field(t("stays.refund_reason"), reason)),
    problem, el("button", { type: "submit", class: "danger" }, t("stays.refund")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!(await confirmDialog(t("stays.refund_title", { amount: yuan(wallet.balance_fen) }), t("stays.refund_confirm", { to: to.value }), t("stays.refund")))) return;
    try {
      await api(`/api/v1/rooms/${enc(room.id)}/refund-balance`, { method: "POST", body: { to: to.value.trim(), reason: reason.value.trim() }, headers: { "Idempotency-Key": key } });
      announce(t("stays.refunded"));
      await refresh();
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  });
  return form;
}

// A zone's schedules: listed, created, changed, previewed (a day with the draft in place of the schedule it
// edits, before anything is saved) and deleted. The server checks every entry; its messages name them.
import { announce, api, campusDate, campusOffset, confirmDialog, el, errorBox, field, label, select, t } from "./core.js";
import { previewView, stateText } from "./zones.js";

const ACTIONS = { lighting: ["on", "off", "dim"], broadcast: ["play", "stop"], dorm_power: ["off", "on", "limit"] };
const DAY_TYPES = ["school_day", "weekend", "holiday", "exam_day", "vacation"];
const WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

function actionText(kind, action) {
  if (kind === "dorm_power") return label("power_state", action);
  return label("light", action);
}

function entrySummary(kind, entry) {
  const what = entry.action === "play" ? `${label("light", "play")} ${entry.programme} (${entry.duration_s} s)`
    : entry.action === "stop" ? label("light", "stop")
    : stateText(kind, entry.action, entry.action === "dim" ? entry.level : entry.limit_w);
  const when = entry.until ? `${entry.at}–${entry.until}` : entry.at;
  const days = entry.dates ? ` · ${entry.dates.join(", ")}` : entry.weekdays ? ` · ${entry.weekdays.map((d) => label("weekday", d)).join(" ")}` : "";
  return `${when} ${what}${days}${entry.name ? ` · ${entry.name}` : ""}`;
}

export function scheduleList(zone, schedules, refresh) {
  const area = el("div", { class: "schedule-editor-area" });
  const open = (schedule) => {
    area.replaceChildren(scheduleEditor(zone, schedule, refresh, () => area.replaceChildren()));
    area.querySelector("input")?.focus();
  };
  const items = schedules.map((s) => el("li", { class: "schedule", "data-schedule": s.name },
    el("div", {}, el("strong", {}, s.name),
      ` · ${s.day_types.map((d) => label("day", d)).join(", ")}${s.enabled ? "" : ` · ${t("zones.disabled")}`}`,
      el("ul", { class: "entries" }, s.entries.map((entry) => el("li", {}, entrySummary(zone.kind, entry))))),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary small", onclick: () => open(s) }, t("schedule.edit")),
      el("button", { type: "button", class: "secondary small", onclick: async () => {
        if (!(await confirmDialog(t("schedule.delete_title"), t("schedule.delete_confirm", { name: s.name }), t("schedule.delete")))) return;
        try {
          await api(`/api/v1/schedules/${s.id}`, { method: "DELETE" });
          announce(t("schedule.deleted"));
          await refresh();
        } catch (error) {
          area.replaceChildren(errorBox(error.message));
        }
      } }, t("schedule.delete")))));
  return el("section", { class: "card", "aria-labelledby": "schedules-title" },
    el("h2", { id: "schedules-title" }, t("zones.schedules")),
    items.length ? el("ul", { class: "schedules" }, items) : el("p", { class: "muted" }, t("zones.no_schedules")),
    el("p", {}, el("button", { type: "button", class: "primary", onclick: () => open(null) }, t("schedule.new"))),
    area);
}

function checkboxes(name, values, chosen, text) {
  return values.map((value) => el("label", { class: "check" },
    el("input", { type: "checkbox", name, value, checked: chosen.includes(value) }), text(value)));
}

function checked(boxes) {
  return boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
}

function entryRow(kind, entry, remove) {
  const at = el("input", { name: "at", required: true, maxlength: 20, value: entry.at || "", placeholder: "23:30", size: 9 });
  const until = el("input", { name: "until", maxlength: 20, value: entry.until || "", placeholder: kind === "broadcast" ? "" : "06:30", size: 9 });
  const action = select(ACTIONS[kind].map((a) => [a, actionText(kind, a)]), { name: "action" });
  action.value = entry.action || ACTIONS[kind][0];
  const level = el("input", { type: "number", name: "level", min: 1, max: 100, value: entry.level ?? 50 });
  const watts = el("input", { type: "number", name: "limit_w", min: 50, max: 100000, step: 50, value: entry.limit_w ?? 500 });
  const programme = el("input", { name: "programme", maxlength: 64, value: entry.programme || "" });
  const seconds = el("input", { type: "number", name: "duration_s", min: 1, max: 3600, value: entry.duration_s ?? 20 });
  const late = el("input", { type: "checkbox", name: "play_if_missed", checked: Boolean(entry.play_if_missed) });
  const days = checkboxes("weekdays", WEEKDAYS, entry.weekdays || [], (d) => label("weekday", d));
  const dates = el("input", { name: "dates", value: (entry.dates || []).join(", "), placeholder: "2026-12-31" });
  const name = el("input", { name: "entry-name", maxlength: 64, value: entry.name || "" });
  const fields = {
    level: field(t("zones.level"), level), watts: field(t("zones.limit_w"), watts), programme: field(t("schedule.programme"), programme),
    seconds: field(t("schedule.duration_s"), seconds), late: el("label", { class: "check" }, late, t("schedule.play_if_missed")),
    until: field(t("schedule.until"), until, t("schedule.until_hint")),
  };
  const sync = () => {
    fields.level.hidden = action.value !== "dim";
    fields.watts.hidden = action.value !== "limit";
    fields.programme.hidden = fields.seconds.hidden = fields.late.hidden = action.value !== "play";
    fields.until.hidden = kind === "broadcast";
  };
  action.addEventListener("change", sync);
  sync();
  const row = el("fieldset", { class: "entry" },
    el("legend", {}, t("schedule.entry")),
    el("div", { class: "row" }, field(t("schedule.at"), at, t("schedule.at_hint")), fields.until, field(t("zones.action"), action),
      fields.level, fields.watts, fields.programme, fields.seconds, fields.late),
    el("div", { class: "row" }, el("fieldset", { class: "weekdays" }, el("legend", {}, t("schedule.weekdays")), days),
      field(t("schedule.dates"), dates, t("schedule.dates_hint")), field(t("schedule.entry_name"), name)),
    el("button", { type: "button", class: "secondary small", onclick: remove }, t("schedule.remove_entry")));
  row.read = () => {
    const out = { at: at.value.trim(), action: action.value };
    if (until.value.trim() && kind !== "broadcast") out.until = until.value.trim();
    if (action.value === "dim") out.level = Number(level.value);
    if (action.value === "limit") out.limit_w = Number(watts.value);
    if (action.value === "play") Object.assign(out, { programme: programme.value.trim(), duration_s: Number(seconds.value), play_if_missed: late.checked });
    const weekdays = checked(days);
    if (weekdays.length) out.weekdays = weekdays;
    const listed = dates.value.split(/[,，\s]+/).filter(Boolean);
    if (listed.length) out.dates = listed;
    if (name.value.trim()) out.name = name.value.trim();
    return out;
  };
  return row;
}

function scheduleEditor(zone, schedule, refresh, close) {
  const name = el("input", { name: "name", required: true, maxlength: 128, value: schedule ? schedule.name : "" });
  const known = schedule ? schedule.day_types : ["school_day"];
  const dayTypes = checkboxes("day_types", DAY_TYPES, known, (d) => label("day", d));
  const others = el("input", { name: "other_day_types", value: known.filter((d) => !DAY_TYPES.includes(d)).join(", "), placeholder: "sports_day" });
  const enabled = el("input", { type: "checkbox", name: "enabled", checked: schedule ? schedule.enabled : true });
  const entries = el("div", { class: "entries-editor" });
  const add = (entry) => {
    const row = entryRow(zone.kind, entry, () => row.remove());
    entries.append(row);
  };
  for (const entry of schedule ? schedule.entries : [{}]) add(entry);
  const problem = el("div", { class: "problem", role: "alert" });
  const day = el("input", { type: "date", name: "preview-day", value: campusDate() });
  const preview = el("div", { class: "timeline-area" });
  const draft = () => ({
    name: name.value.trim(), zone: zone.id, enabled: enabled.checked,
    day_types: [...checked(dayTypes), ...others.value.split(/[,，\s]+/).filter(Boolean)],
    entries: [...entries.children].map((row) => row.read()),
  });
  const showPreview = async () => {
    problem.replaceChildren();
    const next = new Date(new Date(`${day.value}T12:00:00Z`).getTime() + 86400000).toISOString().slice(0, 10);
    const window = {
      from: `${day.value}T00:00:00${campusOffset(new Date(`${day.value}T12:00:00Z`))}`,
      to: `${next}T00:00:00${campusOffset(new Date(`${next}T12:00:00Z`))}`,
    };
    try {
      const answer = await api("/api/v1/schedules/preview", { method: "POST", body: { schedule: draft(), replaces: schedule ? schedule.id : null, ...window } });
      preview.replaceChildren(...[previewView(answer)].flat());
    } catch (error) {
      preview.replaceChildren();
      problem.replaceChildren(errorBox(error.message));
    }
  };
  const form = el("form", { class: "card schedule-editor", "aria-labelledby": "editor-title" },
    el("h3", { id: "editor-title" }, schedule ? t("schedule.editing", { name: schedule.name }) : t("schedule.new")),
    el("div", { class: "row" }, field(t("schedule.name"), name),
      el("label", { class: "check" }, enabled, t("schedule.enabled"))),
    el("fieldset", {}, el("legend", {}, t("schedule.day_types")), dayTypes, field(t("schedule.other_day_types"), others, t("schedule.other_day_types_hint"))),
    entries,
    el("p", {}, el("button", { type: "button", class: "secondary small", onclick: () => add({}) }, t("schedule.add_entry"))),
    el("div", { class: "row preview-row" }, field(t("zones.day"), day),
      el("button", { type: "button", class: "secondary", onclick: showPreview }, t("schedule.preview"))),
    preview, problem,
    el("p", { class: "actions" }, el("button", { type: "submit", class: "primary" }, t("schedule.save")),
      el("button", { type: "button", class: "secondary", onclick: close }, t("cancel"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    try {
      const path = schedule ? `/api/v1/schedules/${schedule.id}` : "/api/v1/schedules";
      await api(path, { method: schedule ? "PUT" : "POST", body: draft() });
      announce(t("schedule.saved"));
      await refresh();
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  });
  return form;
}

// Zones (lighting, broadcast, dorm power): their state now, overrides by hand, the emergency broadcast,
// the timeline of a day, and their schedules, which staff create, change, preview and delete here.
import {
  announce, api, badge, campusDate, campusOffset, clock, confirmDialog, dateTime, el, errorBox, field, label, select, t,
  timezone,
} from "./core.js";
import { scheduleList } from "./schedule_editor.js";
import { enc, page, table } from "./staff_frame.js";

// ---- zones, overrides, emergency broadcast -------------------------------------------------------

// A state a lighting or dorm-power zone holds, in words: dimmed to 40%, a 300 W night limit, on, off.
export function stateText(kind, state, level) {
  if (state === "dim") return t("zones.dim", { level });
  if (state === "limit") return t("zones.limit", { watts: level });
  return label(kind === "dorm_power" ? "power_state" : "light", state);
}

export const holdsState = (kind) => kind === "lighting" || kind === "dorm_power";

function zoneState(zone) {
  if (holdsState(zone.kind)) {
    if (!zone.state) return t("unknown");
    return stateText(zone.kind, zone.state.state, zone.state.level);
  }
  return zone.playing ? t("zones.playing", { programme: zone.playing.programme || zone.playing.action }) : t("zones.silent");
}

export async function zones() {
  const [all, emergencies] = await Promise.all([api("/api/v1/zones"), api("/api/v1/broadcast/emergency")]);
  const rows = all.map((zone) => el("tr", { "data-zone": zone.id },
    el("td", {}, el("a", { href: `/app/staff/zones/${enc(zone.id)}` }, zone.name)), el("td", {}, label("zone_kind", zone.kind)),
    el("td", { class: "zone-state" }, zoneState(zone)),
    el("td", {}, zone.override ? t("zones.override_until", { state: stateText(zone.kind, zone.override.action, zone.override.level), until: dateTime(zone.override.until) }) : "—"),
    el("td", {}, zone.state ? `${label("layer", zone.state.layer)} · ${zone.state.cause}` : zone.playing ? zone.playing.cause : "—")));
  const active = emergencies.filter((e) => !e.ended_at && new Date(e.until) > new Date());
  page(t("staff.zones"),
    table([t("zones.zone"), t("zones.kind"), t("zones.now"), t("zones.override"), t("zones.why")], rows),
    emergencyForm(all.filter((z) => z.kind === "broadcast")),
    active.length ? el("section", { "aria-labelledby": "active-emergency" }, el("h2", { id: "active-emergency" }, t("emergency.active")),
      el("ul", {}, active.map((e) => el("li", {}, `${e.programme} · ${e.zones.join(", ")} · ${t("until", { at: dateTime(e.until) })} `,
        el("button", { type: "button", class: "secondary small", onclick: async () => {
          await api(`/api/v1/broadcast/emergency/${e.id}`, { method: "DELETE" });
          announce(t("emergency.ended"));
          await zones();
        } }, t("emergency.end")))))) : null);
}

function emergencyForm(broadcastZones) {
  const programme = el("input", { name: "programme", required: true, maxlength: 64 });
  const minutes = el("input", { type: "number", name: "minutes", min: 1, max: 240, value: 5, required: true });
  const reason = el("input", { name: "reason", maxlength: 500 });
  const boxes = broadcastZones.map((zone) => el("label", { class: "check" }, el("input", { type: "checkbox", name: "zones", value: zone.id, checked: true }), zone.name));
  const problem = el("div", { class: "problem" });
  const form = el("form", { class: "card emergency", "aria-labelledby": "emergency-title" },
    el("h2", { id: "emergency-title" }, t("emergency.title")),
    el("p", { class: "muted" }, t("emergency.lead")),
    el("div", { class: "row" }, field(t("emergency.programme"), programme, t("emergency.programme_hint")), field(t("emergency.minutes"), minutes), field(t("reason"), reason)),
    el("fieldset", {}, el("legend", {}, t("emergency.zones")), boxes),
    problem, el("button", { type: "submit", class: "danger" }, t("emergency.start")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    if (!chosen.length) {
      problem.replaceChildren(errorBox(t("emergency.no_zone")));
      return;
    }
    const ok = await confirmDialog(t("emergency.confirm_title"), t("emergency.confirm", { programme: programme.value, zones: chosen.join(", "), minutes: minutes.value }), t("emergency.start"));
    if (!ok) return;
    try {
      await api("/api/v1/broadcast/emergency", { method: "POST", body: { programme: programme.value.trim(), zones: chosen, duration_s: Number(minutes.value) * 60, reason: reason.value } });
      announce(t("emergency.started"));
      await zones();
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  });
  return form;
}

// A campus-local "YYYY-MM-DDTHH:MM" (a datetime-local input's value) as an instant with its offset.
function campusInstant(local) {
  const guess = new Date(`${local}:00Z`);
  return `${local}:00${campusOffset(guess)}`;
}

function localInput(date) {
  return `${campusDate(date)}T${clock(date.toISOString()).padStart(5, "0")}`;
}

export async function zoneDetail(zoneId) {
  const zone = await api(`/api/v1/zones/${enc(zoneId)}`);
  const schedules = await api(`/api/v1/schedules?zone=${enc(zone.id)}`);
  const day = el("input", { type: "date", name: "day", value: campusDate() });
  const timeline = el("div", { class: "timeline-area" });
  const drawTimeline = async () => {
    const from = `${day.value}T00:00:00${campusOffset(new Date(`${day.value}T12:00:00Z`))}`;
    const next = new Date(new Date(`${day.value}T12:00:00Z`).getTime() + 86400000).toISOString().slice(0, 10);
    const to = `${next}T00:00:00${campusOffset(new Date(`${next}T12:00:00Z`))}`;
    try {
      const preview = await api(`/api/v1/schedules/preview?zone=${enc(zone.id)}&from=${enc(from)}&to=${enc(to)}`);
      timeline.replaceChildren(...[previewView(preview)].flat());
    } catch (error) {
      timeline.replaceChildren(errorBox(error.message));
    }
  };
  day.addEventListener("change", drawTimeline);
  const outputs = zone.outputs.map((o) => el("tr", {}, el("td", {}, o.device), el("td", {}, o.command), el("td", {}, o.last_action || "—"),
    el("td", {}, o.last_state ? badge(o.last_state, label("command_state", o.last_state)) : "—"), el("td", {}, dateTime(o.last_at))));
  page(zone.name,
    el("p", {}, el("a", { href: "/app/staff/zones" }, t("back"))),
    el("section", { class: "card" },
      el("p", { class: "zone-now" }, el("strong", {}, t("zones.now"), ": "), el("span", { "data-testid": "zone-state" }, zoneState(zone)),
        zone.state ? el("span", { class: "muted" }, ` · ${label("layer", zone.state.layer)} · ${zone.state.cause}`) : null),
      zone.override ? el("p", {}, t("zones.override_until", { state: stateText(zone.kind, zone.override.action, zone.override.level), until: dateTime(zone.override.until) }), " ",
        el("button", { type: "button", class: "secondary small", onclick: async () => {
          await api(`/api/v1/zones/${enc(zone.id)}/override`, { method: "DELETE" });
          announce(t("zones.override_ended"));
          await zoneDetail(zone.id);
        } }, t("zones.end_override"))) : null,
      zone.kind === "dorm_power"
        ? el("p", { "data-testid": "zone-rooms" }, t("zones.rooms", { count: zone.rooms.length, rooms: roomRange(zone.rooms) }))
        : table([t("device"), t("devices.command"), t("zones.last_action"), t("status"), t("time")], outputs)),
    overrideForm(zone),
    el("section", { class: "card", "aria-labelledby": "preview-title" }, el("h2", { id: "preview-title" }, t("zones.preview")), field(t("zones.day"), day), timeline),
    scheduleList(zone, schedules, () => zoneDetail(zone.id)));
  await drawTimeline();
}

const OVERRIDE_ACTIONS = { lighting: ["on", "off", "dim"], broadcast: ["stop"], dorm_power: ["on", "off", "limit"] };

function overrideForm(zone) {
  const actions = OVERRIDE_ACTIONS[zone.kind] || [];
  const action = select(actions.map((a) => [a, zone.kind === "dorm_power" ? label("power_state", a) : label("light", a)]), { name: "action" });
  const level = el("input", { type: "number", name: "level", min: 1, max: 100, value: 50 });
  const levelField = field(t("zones.level"), level);
  const watts = el("input", { type: "number", name: "limit_w", min: 50, max: 100000, step: 50, value: 500 });
  const wattsField = field(t("zones.limit_w"), watts);
  const until = el("input", { type: "datetime-local", name: "until", required: true, value: localInput(new Date(Date.now() + 3600000)) });
  const reason = el("input", { name: "reason", maxlength: 500 });
  const problem = el("div", { class: "problem" });
  const sync = () => {
    levelField.hidden = action.value !== "dim";
    wattsField.hidden = action.value !== "limit";
  };
  action.addEventListener("change", sync);
  sync();
  const form = el("form", { class: "card", "aria-labelledby": "override-title" },
    el("h2", { id: "override-title" }, t("zones.override_title")),
    el("div", { class: "row" }, field(t("zones.action"), action), levelField, wattsField, field(t("zones.until"), until, t("zones.until_hint", { zone: timezone() })), field(t("reason"), reason)),
    problem, el("button", { type: "submit", class: "primary" }, t("zones.hold")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    const body = { action: action.value, until: campusInstant(until.value), reason: reason.value };
    if (action.value === "dim") body.level = Number(level.value);
    if (action.value === "limit") body.limit_w = Number(watts.value);
    try {
      await api(`/api/v1/zones/${enc(zone.id)}/override`, { method: "POST", body });
      announce(t("zones.held"));
      await zoneDetail(zone.id);
    } catch (error) {
      problem.replaceChildren(errorBox(error.message));
    }
  });
  return form;
}

export function previewView(preview) {
  const start = new Date(preview.start).getTime();
  const span = new Date(preview.end).getTime() - start;
  if (holdsState(preview.kind)) {
    const bar = el("div", { class: "timeline", role: "img", "aria-label": t("zones.preview") },
      preview.segments.map((s) => el("span", {
        class: `segment seg-${s.state}`,
        style: null,
        title: `${clock(s.start)}–${clock(s.end)} ${stateText(preview.kind, s.state, s.level)}`,
        "data-width": ((new Date(s.end) - new Date(s.start)) / span) * 100,
      })));
    // Widths are set as properties, not a style attribute: the page's policy forbids inline styles.
    for (const node of bar.children) node.style.width = `${Number(node.dataset.width).toFixed(3)}%`;
    return [bar, el("ol", { class: "segments" }, preview.segments.map((s) => el("li", {},
      el("strong", {}, `${clock(s.start)}–${clock(s.end)} `), stateText(preview.kind, s.state, s.level),
      el("span", { class: "muted" }, ` · ${label("layer", s.layer)} · ${s.cause}`))))];
  }
  if (!preview.sounds.length) return el("p", { class: "muted" }, t("zones.no_sounds"));
  return el("ol", { class: "segments" }, preview.sounds.map((s) => el("li", { class: s.suppressed_by ? "suppressed" : null },
    el("strong", {}, `${clock(s.start)}–${clock(s.end)} `), s.programme || label("light", s.action),
    el("span", { class: "muted" }, ` · ${label("layer", s.layer)} · ${s.cause}${s.suppressed_by ? ` · ${t("zones.suppressed", { by: s.suppressed_by })}` : ""}`))));
}


// "D1-101 … D1-310" for a long list, the rooms themselves for a short one.
function roomRange(rooms) {
  if (rooms.length <= 6) return rooms.join(", ");
  return `${rooms[0]} … ${rooms[rooms.length - 1]}`;
}

// The staff home: the campus at a glance, from one API call, drawn again every minute while it is open.
import { barChart, lineChart } from "./chart.js";
import { api, clock, dateTime, el, label, number, t } from "./core.js";
import { enc, page, table } from "./staff_frame.js";

const REFRESH_MS = 60_000;
let timer = null;

function tile(name, value, detail, href, tone) {
  const body = [el("span", { class: "tile-value" }, value), el("span", { class: "tile-name" }, name),
    detail ? el("span", { class: "tile-detail" }, detail) : null];
  return el(href ? "a" : "div", { class: `tile${tone ? ` tile-${tone}` : ""}`, href: href || null, "data-testid": `tile-${name}` }, body);
}

function change(today, yesterday) {
  if (!yesterday) return null;
  const percent = ((today - yesterday) / yesterday) * 100;
  return t("overview.vs_yesterday", { change: `${percent >= 0 ? "+" : ""}${number(percent, 0)}%` });
}

function draw(seen) {
  const rooms = seen.rooms_cut_off + seen.rooms_locked + seen.rooms_tripped + seen.rooms_curfew;
  const tiles = el("div", { class: "tiles" },
    tile(t("overview.load"), seen.load_kw === null ? "—" : `${number(seen.load_kw, 1)} kW`,
      seen.load_missing ? t("overview.load_missing", { count: seen.load_missing, of: seen.load_meters }) : null),
    tile(t("overview.today"), `${number(seen.today_total_kwh, 1)} kWh`, change(seen.today_total_kwh, seen.yesterday_same_time_kwh)),
    tile(t("overview.offline"), String(seen.offline.length), t("overview.of_devices", { count: seen.devices }), "/app/staff/devices", seen.offline.length ? "warn" : null),
    tile(t("overview.orders"), String(seen.orders_open), t("overview.overdue", { count: seen.orders_overdue }), "/app/staff/orders", seen.orders_overdue ? "bad" : null),
    tile(t("overview.rooms_off"), String(rooms),
      t("overview.rooms_detail", { cut: seen.rooms_cut_off, locked: seen.rooms_locked, tripped: seen.rooms_tripped, curfew: seen.rooms_curfew, low: seen.rooms_low }),
      "/app/staff/rooms", seen.rooms_locked || seen.rooms_cut_off ? "warn" : null));
  const hours = seen.hours.map((h) => clock(h).slice(0, 2));
  const curve = lineChart({
    caption: t("overview.curve"), labels: hours, unit: "kWh", tableHeads: [t("usage.hour"), t("usage.show_figures")],
    series: [{ name: t("overview.yesterday"), values: seen.yesterday_kwh, className: "previous" },
      { name: t("overview.today_series"), values: seen.today_kwh.map((v, i) => (new Date(seen.hours[i]) <= new Date(seen.at) ? v : null)), className: "current" }],
  });
  const bars = barChart({
    caption: t("overview.buildings"), unit: "kWh", tableHeads: [t("building"), "kWh", t("usage.show_figures")],
    bars: seen.buildings.filter((b) => b.electricity_kwh !== null).map((b) => ({ label: b.name, value: b.electricity_kwh, title: `${b.name}: ${number(b.electricity_kwh, 1)} kWh` })),
  });
  const buildingRows = seen.buildings.map((b) => el("tr", {}, el("td", {}, b.name),
    el("td", { class: "num" }, b.electricity_kwh === null ? "—" : `${number(b.electricity_kwh, 1)} kWh`),
    el("td", { class: "num" }, b.water_m3 === null ? "—" : `${number(b.water_m3, 2)} m³`),
    el("td", { class: "num" }, b.gaps ? t("overview.gaps", { count: b.gaps }) : "—")));
  const topRows = seen.top_rooms.map((r) => el("tr", {}, el("td", {}, el("a", { href: `/app/staff/rooms/${enc(r.room)}` }, r.room)),
    el("td", {}, r.building), el("td", { class: "num" }, `${number(r.kwh, 2)} kWh`)));
  const offlineRows = seen.offline.slice(0, 10).map((d) => el("tr", {}, el("td", {}, el("a", { href: `/app/staff/devices/${enc(d.device)}` }, d.device)),
    el("td", {}, d.kind), el("td", {}, d.building), el("td", {}, d.last_seen ? dateTime(d.last_seen) : "—")));
  page(t("staff.overview"),
    el("p", { class: "muted", "data-testid": "overview-at" }, t("overview.at", { at: dateTime(seen.at) })),
    tiles,
    el("div", { class: "overview-grid" },
      el("section", { class: "card", "aria-labelledby": "curve-title" }, el("h2", { id: "curve-title" }, t("overview.curve")), curve),
      el("section", { class: "card", "aria-labelledby": "buildings-title" }, el("h2", { id: "buildings-title" }, t("overview.buildings")), bars,
        table([t("building"), t("overview.electricity"), t("overview.water"), t("overview.gaps_col")], buildingRows))),
    el("div", { class: "overview-grid" },
      el("section", { class: "card", "aria-labelledby": "top-title" }, el("h2", { id: "top-title" }, t("overview.top")),
        topRows.length ? table([t("room"), t("building"), t("overview.today")], topRows) : el("p", { class: "muted" }, t("overview.nothing_yet"))),
      el("section", { class: "card", "aria-labelledby": "offline-title" }, el("h2", { id: "offline-title" }, t("overview.offline")),
        offlineRows.length ? table([t("device"), t("devices.kind"), t("building"), t("last_seen_col")], offlineRows) : el("p", { class: "muted" }, t("overview.all_online")))));
}

export async function overview() {
  clearTimeout(timer);
  draw(await api("/api/v1/overview"));
  const again = async () => {
    if (!location.pathname.startsWith("/app/staff/overview") && location.pathname !== "/app/staff/") return;
    if (document.visibilityState === "visible") {
      try {
        draw(await api("/api/v1/overview"));
      } catch {
        // kept as it was; the next minute tries again
      }
    }
    timer = setTimeout(again, REFRESH_MS);
  };
  timer = setTimeout(again, REFRESH_MS);
}

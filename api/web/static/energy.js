// Energy for staff without Grafana: a day, month or year by building, category and sub-item, with
// intensities, standard coal, CO2, comparisons, and each main meter against its sub-meters.
import { barChart } from "./chart.js";
import { api, campusDate, el, errorBox, field, number, select, t } from "./core.js";
import { page, table } from "./staff_frame.js";

function amount(value, unit, digits = 1) {
  return value === null || value === undefined ? "—" : `${number(value, digits)} ${unit}`;
}

function changeText(now, before) {
  if (before === null || before === undefined || before === 0) return "—";
  const percent = ((now - before) / before) * 100;
  return `${percent >= 0 ? "+" : ""}${number(percent, 1)}%`;
}

function categoryRows(categories) {
  return categories.map((c) => el("tr", {}, el("td", {}, `${c.code} ${t(`energy.code.${c.code}`)}`),
    el("td", { class: "num" }, amount(c.total, c.unit)), el("td", { class: "num" }, amount(c.per_m2, `${c.unit}/m²`, 2)),
    el("td", { class: "num" }, amount(c.per_occupant, `${c.unit}/${t("energy.person")}`, 2)),
    el("td", { class: "num" }, amount(c.kgce, "kgce")), el("td", { class: "num" }, amount(c.co2_kg, "kg")),
    el("td", { class: "num" }, changeText(c.total, c.previous)), el("td", { class: "num" }, changeText(c.total, c.last_year)),
    el("td", { class: "num" }, c.gaps ? String(c.gaps) : "—")));
}

const CATEGORY_HEADS = () => [t("energy.category"), t("energy.total"), t("energy.per_m2"), t("energy.per_occupant"), t("energy.coal"), "CO₂",
  t("energy.vs_previous"), t("energy.vs_last_year"), t("overview.gaps_col")];

function label(code) {
  const [main, rest] = code.split(":");
  return rest ? t("energy.unaccounted") : `${main} ${t(`energy.code.${main}`)}`;
}

function buildingSection(building, period) {
  const items = building.sub_items.map((s) => el("tr", {}, el("td", {}, label(s.code)), el("td", { class: "num" }, amount(s.total, s.unit))));
  const electricity = building.sub_items.filter((s) => s.code.startsWith("01"));
  return el("section", { class: "card", "aria-labelledby": `b-${building.id}` },
    el("h2", { id: `b-${building.id}` }, building.name,
      building.floor_area_m2 ? el("span", { class: "muted" }, ` · ${number(building.floor_area_m2, 0)} m²`) : null,
      building.occupants ? el("span", { class: "muted" }, ` · ${building.occupants} ${t("energy.person")}`) : null),
    table(CATEGORY_HEADS(), categoryRows(building.categories)),
    electricity.length > 1 ? barChart({ caption: t("energy.sub_items_caption"), unit: "kWh", tableHeads: [t("energy.sub_item"), "kWh", t("usage.show_figures")],
      bars: electricity.map((s) => ({ label: label(s.code), value: s.total })) }) : null,
    items.length ? el("details", {}, el("summary", {}, t("energy.sub_items", { period: t(`energy.period.${period}`) })),
      table([t("energy.sub_item"), t("energy.total")], items)) : null);
}

export async function energy() {
  const params = new URLSearchParams(window.location.search);
  const period = select(["day", "month", "term", "year"].map((p) => [p, t(`energy.period.${p}`)]), { name: "period" });
  period.value = params.get("period") || "month";
  const day = el("input", { type: "date", name: "date", value: params.get("date") || campusDate(), max: campusDate() });
  const building = el("input", { name: "building", value: params.get("building") || "", placeholder: t("all") });
  const area = el("div", {});
  const form = el("form", { class: "filters no-print", role: "search" }, field(t("energy.period"), period), field(t("energy.date"), day),
    field(t("building"), building), el("button", { type: "submit", class: "primary" }, t("filter")));
  const show = async () => {
    const query = new URLSearchParams({ period: period.value, date: day.value });
    if (building.value.trim()) query.set("building", building.value.trim());
    history.replaceState({}, "", `/app/staff/energy?${query}`);
    area.replaceChildren(el("p", { class: "loading" }, t("loading")));
    try {
      const [report, balance] = await Promise.all([api(`/api/v1/energy?${query}`), api(`/api/v1/energy/balance?${query}`)]);
      const balanceRows = balance.map((b) => el("tr", {}, el("td", {}, b.meter), el("td", {}, b.building),
        el("td", { class: "num" }, amount(b.parent_total, "kWh")), el("td", { class: "num" }, amount(b.children_total, "kWh")),
        el("td", { class: "num" }, b.share === null ? "—" : `${number(b.share * 100, 1)}%`), el("td", {}, b.complete ? "" : t("energy.incomplete"))));
      area.replaceChildren(
        el("section", { class: "card", "aria-labelledby": "campus-energy" }, el("h2", { id: "campus-energy" }, t("energy.campus")),
          report.campus.length ? table(CATEGORY_HEADS(), categoryRows(report.campus)) : el("p", { class: "muted" }, t("energy.none"))),
        ...report.buildings.map((b) => buildingSection(b, report.period)),
        el("section", { class: "card", "aria-labelledby": "balance-title" }, el("h2", { id: "balance-title" }, t("energy.balance")),
          el("p", { class: "muted" }, t("energy.balance_lead")),
          balanceRows.length ? table([t("energy.main_meter"), t("building"), t("energy.main"), t("energy.subs"), t("energy.unaccounted"), ""], balanceRows)
            : el("p", { class: "muted" }, t("energy.no_tree"))));
    } catch (error) {
      area.replaceChildren(errorBox(error.message));
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show();
  });
  // The files are fetched with the sign-in token (a plain link would not carry it) and handed over as a blob.
  const download = async (format) => {
    const query = new URLSearchParams({ period: period.value, date: day.value, format });
    if (building.value.trim()) query.set("building", building.value.trim());
    try {
      const response = await api(`/api/v1/energy/report?${query}`, { raw: true });
      const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "")?.[1] || `houqin-energy.${format}`;
      const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (error) {
      area.prepend(errorBox(error.message));
    }
  };
  const actions = el("p", { class: "actions no-print" },
    el("button", { type: "button", class: "secondary", onclick: () => download("xlsx") }, t("energy.download_xlsx")),
    el("button", { type: "button", class: "secondary", onclick: () => download("csv") }, t("energy.download_csv")),
    el("button", { type: "button", class: "secondary", onclick: () => window.print() }, t("energy.print")));
  page(t("staff.energy"), form, actions, area);
  await show();
}

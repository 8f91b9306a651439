// A bar chart drawn as SVG, with the same figures in a table for screen readers and for reading exact
// values: no charting library to download.
import { el } from "./core.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// bars: [{label, value (number or null), title}], shown left to right.
// The drawing area every chart shares: its size, the value scale, the grid and the value axis.
const WIDTH = 360;
const HEIGHT = 200;
const LEFT = 34;
const BOTTOM = 24;
const TOP = 10;

function plot(caption, values) {
  const peak = Math.max(...values.filter((v) => v !== null && v !== undefined), 0);
  const scale = peak > 0 ? niceCeiling(peak) : 1;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img", "aria-label": caption });
  for (let i = 0; i <= 4; i += 1) {
    const y = TOP + plotHeight - (plotHeight * i) / 4;
    chart.append(svg("line", { x1: LEFT, x2: WIDTH - 8, y1: y, y2: y, class: "grid" }));
    chart.append(svg("text", { x: LEFT - 6, y: y + 4, class: "axis", "text-anchor": "end" }, formatTick((scale * i) / 4)));
  }
  return { chart, scale, plotHeight, plotWidth: WIDTH - LEFT - 8, height: HEIGHT, left: LEFT, top: TOP };
}

export function barChart({ caption, bars, unit, tableHeads }) {
  const { chart, scale, plotHeight, plotWidth, height, left, top } = plot(caption, bars.map((bar) => bar.value ?? 0));
  const step = plotWidth / Math.max(bars.length, 1);
  const labelEvery = Math.ceil(bars.length / 12);
  bars.forEach((bar, index) => {
    const value = bar.value ?? 0;
    const barHeight = (plotHeight * value) / scale;
    const x = left + index * step + step * 0.15;
    const rect = svg("rect", { x, y: top + plotHeight - barHeight, width: step * 0.7, height: Math.max(barHeight, 0), class: bar.value === null ? "bar missing" : "bar" });
    rect.append(svg("title", {}, bar.title || `${bar.label}: ${value} ${unit}`));
    chart.append(rect);
    if (index % labelEvery === 0) {
      chart.append(svg("text", { x: x + step * 0.35, y: height - 6, class: "axis", "text-anchor": "middle" }, bar.label));
    }
  });
  const table = el("table", { class: "figures" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, tableHeads[0]), el("th", { scope: "col" }, tableHeads[1]))),
    el("tbody", {}, bars.map((bar) => el("tr", {}, el("th", { scope: "row" }, bar.label), el("td", {}, bar.value === null ? "—" : bar.value.toFixed(2))))));
  return el("figure", { class: "chart-figure" },
    chart,
    el("figcaption", {}, caption),
    el("details", {}, el("summary", {}, tableHeads[2]), table));
}

function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 2.5, 5, 10]) {
    if (value <= factor * power) return factor * power;
  }
  return 10 * power;
}

function formatTick(value) {
  if (value === 0) return "0";
  return value.toFixed(value >= 10 ? 0 : value >= 1 ? 1 : value >= 0.1 ? 2 : 3);
}

// Lines drawn as SVG over shared x labels: series [{name, values (numbers or null), className}]. The
// figures are also in a table. A null breaks the line (a gap, not a zero).
export function lineChart({ caption, labels, series, unit, tableHeads }) {
  const { chart, scale, plotHeight, plotWidth, height, left, top } = plot(caption, series.flatMap((s) => s.values));
  const step = plotWidth / Math.max(labels.length - 1, 1);
  const labelEvery = Math.ceil(labels.length / 8);
  labels.forEach((label, index) => {
    if (index % labelEvery === 0) chart.append(svg("text", { x: left + index * step, y: height - 6, class: "axis", "text-anchor": "middle" }, label));
  });
  for (const line of series) {
    let path = "";
    line.values.forEach((value, index) => {
      if (value === null || value === undefined) return;
      const x = left + index * step;
      const y = top + plotHeight - (plotHeight * value) / scale;
      const joined = index > 0 && line.values[index - 1] !== null && line.values[index - 1] !== undefined;
      path += `${joined ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
    });
    const drawn = svg("path", { d: path.trim(), class: `line ${line.className}`, fill: "none" });
    drawn.append(svg("title", {}, line.name));
    chart.append(drawn);
  }
  const table = el("table", { class: "figures" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, tableHeads[0]), series.map((s) => el("th", { scope: "col" }, `${s.name} (${unit})`)))),
    el("tbody", {}, labels.map((label, index) => el("tr", {}, el("th", { scope: "row" }, label),
      series.map((s) => el("td", {}, s.values[index] === null || s.values[index] === undefined ? "—" : s.values[index].toFixed(2)))))));
  const legend = el("p", { class: "legend" }, series.map((s) => el("span", { class: `key ${s.className}` }, s.name)));
  return el("figure", { class: "chart-figure" }, chart, el("figcaption", {}, caption), legend,
    el("details", {}, el("summary", {}, tableHeads[1]), table));
}

// What every staff page shares: the signed-in user, the navigation, and the page and table frames.
import { el, header, render } from "./core.js";

export const frame = { me: null, links: [] };
export const enc = encodeURIComponent;

export function page(title, ...parts) {
  document.title = `${title} · houqin`;
  header(frame.me, frame.links); // marks the current section in the navigation
  render(el("h1", {}, title), ...parts);
}

export function table(heads, rows, caption) {
  return el("div", { class: "table-wrap" }, el("table", { class: "data" },
    caption ? el("caption", { class: "visually-hidden" }, caption) : null,
    el("thead", {}, el("tr", {}, heads.map((head) => el("th", { scope: "col" }, head)))),
    el("tbody", {}, rows)));
}

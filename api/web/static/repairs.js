// Parts of a repair order every page shows the same way: its trail, its photos, adding a photo.
import { api, dateTime, el, label, t } from "./core.js";

export function photoInput() {
  return el("input", { type: "file", name: "photo", accept: "image/jpeg,image/png,image/webp", capture: "environment" });
}

export async function uploadPhoto(orderId, file) {
  const form = new FormData();
  form.append("photo", file);
  return api(`/api/v1/repairs/${orderId}/photos`, { method: "POST", form });
}

// The order's photos as thumbnails, fetched with the user's token (an <img src> could not send it).
export async function photoList(orderId) {
  const photos = await api(`/api/v1/repairs/${orderId}/photos`);
  if (!photos.length) return null;
  const items = await Promise.all(photos.map(async (photo) => {
    const response = await api(`/api/v1/repairs/${orderId}/photos/${photo.id}`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    return el("li", {}, el("a", { href: url, target: "_blank", rel: "noopener" },
      el("img", { src: url, alt: t("photo_by", { who: photo.uploaded_by, at: dateTime(photo.created_at) }), loading: "lazy" })));
  }));
  return el("ul", { class: "photos", "aria-label": t("photos") }, items);
}

export function reportTrail(events) {
  return el("ol", { class: "trail" }, events.map((event) => el("li", {},
    el("span", { class: "line" }, el("strong", {}, label("event", event.kind)), el("span", { class: "muted" }, dateTime(event.at))),
    el("span", { class: "muted" }, event.actor === "houqin" ? t("system") : event.actor, event.note ? ` · ${event.note}` : ""))));
}

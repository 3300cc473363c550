// What the conversation shows of a file (js/files.js moves it): a card in
// the file's bubble — a preview for pictures, the name and size, a progress
// bar, what happens now, and a link that saves the file once it is here —
// and the composer's "Send file" button and dropping a file on the
// conversation.

import { humanSize, safeFileName } from "./filewire.js";
import { hasFile } from "./files.js";

const pct = (v) => (v.size ? Math.floor((100 * (v.bytes || 0)) / v.size) : 0);
const via = (v) => (v.route === "relay" ? " · relayed" : v.route === "store" ? " · through the server" : "");

// statusText says where a file is.
function statusText(v, peer) {
  if (v.dir === "out") {
    switch (v.status) {
      case "sending": return `Sending… ${pct(v)} %${via(v)}`;
      case "delivered": return "Delivered";
      case "stored": return `Sent: waiting on the server until ${peer} fetches it`;
      case "failed": return `Not sent: ${v.error}`;
    }
    return "";
  }
  switch (v.status) {
    case "offered": return "Offered";
    case "receiving": return `Receiving… ${pct(v)} %${via(v)}`;
    case "done": return "Received";
    case "stopped": return `Stopped at ${pct(v)} % (${v.error}); it goes on when the sender connects again`;
    case "failed": return `Failed: ${v.error}`;
  }
  return "";
}

// fill brings card up to date with view v.
function fill(card, v, peer) {
  const img = card.querySelector("img");
  const picture = v.type?.startsWith("image/") && v.url && (v.dir === "out" || v.status === "done") ? v.url : v.previewUrl;
  if (picture && img.getAttribute("src") !== picture) img.src = picture;
  img.hidden = !picture;
  const bar = card.querySelector("progress");
  bar.max = v.size || 1;
  bar.value = v.bytes || 0;
  bar.hidden = !["offered", "sending", "receiving", "stopped"].includes(v.status);
  card.querySelector(".file-status").textContent = statusText(v, peer);
  const a = card.querySelector("a");
  const ready = !!v.url && (v.dir === "out" || v.status === "done");
  a.hidden = !ready;
  if (ready) {
    a.href = v.url;
    a.download = safeFileName(v.name);
  }
  card.dataset.status = v.status || "";
}

// fileCard adds the card of the file of history record m to its bubble
// (ChatPane's fileCard hook); text is the bubble's text, the file's
// note, left for screen readers.
export function fileCard(files, m, bubble, text) {
  const f = m.file;
  text.classList.add("sr-only");
  const card = document.createElement("div");
  card.className = "file-card";
  card.dataset.file = f.k;
  const img = document.createElement("img");
  img.className = "file-preview";
  img.alt = `Picture ${f.name}`;
  img.hidden = true;
  const info = document.createElement("div");
  info.className = "file-info";
  const name = document.createElement("span");
  name.className = "file-name";
  name.textContent = f.name;
  const size = document.createElement("span");
  size.className = "file-size";
  size.textContent = humanSize(f.size);
  const bar = document.createElement("progress");
  bar.setAttribute("aria-label", `Progress of ${f.name}`);
  const status = document.createElement("span");
  status.className = "file-status";
  const a = document.createElement("a");
  a.className = "file-save";
  a.textContent = "Save";
  a.setAttribute("aria-label", `Save ${f.name}`);
  a.hidden = true;
  info.append(name, " ", size, bar, status, " ", a);
  card.append(img, info);
  bubble.insertBefore(card, text);
  // A file this page sent before a reload: the entry, not the file.
  const v = files?.view(f.k) || { k: f.k, dir: m.dir, name: f.name, size: f.size, type: f.type, status: m.dir === "out" ? "" : "offered" };
  fill(card, v, m.peer);
  files?.ensureURL(f.k);
}

// refresh brings every card of file k on screen up to date.
export function refresh(files, k) {
  const v = files.view(k);
  if (!v) return;
  let shown = false;
  for (const card of document.querySelectorAll(".file-card")) {
    if (card.dataset.file !== k) continue;
    fill(card, v, card.closest("li")?._m?.peer || "");
    shown = true;
  }
  if (shown) files.ensureURL(k);
}

// wireComposer makes the Send file button (and a file dropped on the
// conversation, drop) send to the open conversation: send(peer, file).
export function wireComposer({ button, input, drop, peer, send }) {
  button.addEventListener("click", () => { if (peer()) input.click(); });
  input.addEventListener("change", () => {
    const p = peer();
    const list = [...input.files];
    input.value = "";
    if (p) for (const f of list) send(p, f);
  });
  drop.addEventListener("dragover", (ev) => {
    if (!hasFile(ev) || !peer()) return;
    ev.preventDefault();
    drop.classList.add("dropping");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dropping"));
  drop.addEventListener("drop", (ev) => {
    drop.classList.remove("dropping");
    if (!hasFile(ev) || !peer()) return;
    ev.preventDefault();
    for (const f of ev.dataTransfer.files) send(peer(), f);
  });
}

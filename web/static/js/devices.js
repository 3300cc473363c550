// "Your devices" in Settings and help: the user's devices as the login
// server knows them (GET /api/v1/devices: each browser and each `parley`
// home signed in as the user, by its Ed25519 key), and removing one
// (DELETE /api/v1/devices/{key}: it is revoked, gets no more messages, and
// stays out until a password login on it). This browser itself is removed
// by "Sign out and remove this browser". See docs/web.md ("Your devices")
// and docs/login.md ("Your own devices: list and remove").

import { b64url, unb64Std } from "./util.js";

// SHORT_KEY is how much of a key the list shows (as `parley devices` does).
export const SHORT_KEY = 12;

// keyURL is a device key as the list gives it (standard base64) as the
// DELETE path takes it: base64url without padding (loginapi.DeviceKeyString).
export function keyURL(key) { return b64url(unb64Std(key)); }

// shortKey is the first SHORT_KEY characters of the key in base64url.
export function shortKey(key) {
  try { return keyURL(key).slice(0, SHORT_KEY); } catch { return String(key).slice(0, SHORT_KEY); }
}

// ago says how long ago the Unix time sec was: "just now", "2 min ago",
// "3 hours ago", "yesterday", "5 days ago", "on 4 Mar 2026".
export function ago(sec, now = Date.now()) {
  const s = Math.max(0, Math.floor(now / 1000 - sec));
  if (s < 60) return "just now";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return h === 1 ? "1 hour ago" : `${h} hours ago`;
  const d = Math.floor(h / 24);
  if (d === 1) return "yesterday";
  if (d < 30) return `${d} days ago`;
  return "on " + new Date(sec * 1000).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// button: text shows; label, when set, is the accessible name (it starts
// with the text).
function button(text, label, onClick, cls) {
  const b = el("button", cls, text);
  b.type = "button";
  if (label) b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

// DevicesPanel fills the section of the settings.
export class DevicesPanel {
  // els: {list (a ul), note (a role=status p), error (a role=alert p),
  // heading (focusable: where the focus goes when a row goes)}; hooks:
  // api() (async: the LoginAPI with a current credential), describe(err)
  // (a sentence), unavailable() ("" or why the list cannot be asked for
  // now), removed(key) (another device was removed), removedSelf() (this
  // browser was: sign out).
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.devices = null; // the last list, this browser first; null: none yet
    this.waiting = ""; // what the note says while there is no list
    this.confirming = ""; // the key whose removal waits for a yes
    this.busy = ""; // the key being removed
    this.said = ""; // what the last removal did, before the count
    this.listError = ""; // why the list could not be read
    this.removeError = ""; // why the last removal failed
    this.seq = 0;
  }

  // open shows the list afresh (the settings opened).
  open() {
    this.said = this.removeError = this.listError = "";
    return this.load();
  }

  // load asks for the list again and shows it.
  async load() {
    const seq = ++this.seq;
    const why = this.hooks.unavailable();
    if (why) {
      this.devices = null;
      this.confirming = "";
      this.waiting = why;
      this.show();
      return;
    }
    if (!this.devices) {
      this.waiting = "Looking up your devices…";
      this.show();
    }
    try {
      const r = await (await this.hooks.api()).myDevices();
      if (seq !== this.seq) return;
      const all = r.devices || [];
      this.devices = [...all.filter((d) => d.self), ...all.filter((d) => !d.self)];
      if (this.confirming && !this.devices.some((d) => d.key === this.confirming)) this.confirming = "";
      this.listError = "";
    } catch (e) {
      if (seq !== this.seq) return;
      this.listError = `Your devices could not be listed: ${this.hooks.describe(e)}`;
      if (!this.devices) this.waiting = "";
    }
    this.show();
  }

  // clear forgets the list (signed out).
  clear() {
    this.seq++;
    this.devices = null;
    this.confirming = this.busy = this.said = this.waiting = this.listError = this.removeError = "";
    this.show();
  }

  // show renders the note, the error and the list.
  show() {
    this.els.error.textContent = this.listError || this.removeError;
    let note = this.waiting;
    if (this.devices) {
      const n = this.devices.length;
      note = (this.said ? this.said + " " : "") + (n === 1 ? "This browser is your only device." : `${n} devices.`);
    }
    if (this.els.note.textContent !== note) this.els.note.textContent = note;
    this.render();
  }

  render() {
    const name = (b) => b.getAttribute("aria-label") || b.textContent;
    const focused = this.els.list.contains(document.activeElement) ? name(document.activeElement) : "";
    this.els.list.replaceChildren(...(this.devices || []).map((d) => this.row(d)));
    if (focused) [...this.els.list.querySelectorAll("button")].find((b) => name(b) === focused)?.focus();
  }

  row(d) {
    const short = shortKey(d.key);
    const li = el("li", "device" + (d.self ? " self" : ""));
    const text = el("div", "device-text");
    const name = el("p", "device-name");
    name.append(el("span", "sr-only", "Device "), el("code", "device-key", short));
    if (d.self) name.append(el("span", "badge self", "this browser"));
    text.append(name);
    const meta = el("p", "device-meta", d.self ? "in use now" : `last seen ${ago(d.last_seen)}`);
    if (d.registered) meta.title = `Known since ${new Date(d.registered * 1000).toLocaleString()}`;
    text.append(meta);
    if (!d.encryption) text.append(el("p", "device-note", "No encryption key: no messages are sent to it."));
    li.append(text);
    if (this.confirming === d.key) {
      li.append(this.confirmBox(d, short));
      return li;
    }
    const acts = el("div", "device-actions");
    const b = d.self
      ? button("Sign out and remove this browser", "", () => this.ask(d.key), "small danger")
      : button("Remove", `Remove device ${short}`, () => this.ask(d.key), "small");
    b.disabled = !!this.busy;
    acts.append(b);
    li.append(acts);
    return li;
  }

  confirmBox(d, short) {
    const box = el("div", "device-confirm");
    box.setAttribute("role", "group");
    const q = el("p", "", d.self
      ? "Sign out and remove this browser from your account? It gets no more messages until you sign in here again with your password. The conversations kept in this browser stay."
      : `Remove device ${short}? It is signed out at once, gets no more messages, and cannot sign in again without your password.`);
    q.id = "device-confirm-q";
    box.setAttribute("aria-labelledby", q.id);
    const yes = d.self
      ? button("Yes, sign out and remove", "Yes, sign out and remove this browser", () => this.remove(d), "small stop")
      : button("Yes, remove", `Yes, remove device ${short}`, () => this.remove(d), "small stop");
    const no = button("Keep it", d.self ? "Keep this browser" : `Keep device ${short}`, () => this.cancel(d), "small");
    yes.disabled = no.disabled = this.busy === d.key;
    const row = el("div", "row");
    row.append(yes, no);
    box.append(q, row);
    return box;
  }

  ask(key) {
    this.confirming = key;
    this.said = this.removeError = "";
    this.show();
    // The safe choice has the focus.
    this.els.list.querySelector(".device-confirm button:last-child")?.focus();
  }

  cancel(d) {
    this.confirming = "";
    this.render();
    const short = shortKey(d.key);
    const label = d.self ? "Sign out and remove this browser" : `Remove device ${short}`;
    [...this.els.list.querySelectorAll(".device-actions button")].find((b) => (b.getAttribute("aria-label") || b.textContent) === label)?.focus();
  }

  async remove(d) {
    if (this.busy) return;
    const short = shortKey(d.key);
    this.busy = d.key;
    this.show();
    try {
      await (await this.hooks.api()).removeDevice(keyURL(d.key));
    } catch (e) {
      this.busy = this.confirming = "";
      if (e.status === 404) {
        this.removeError = `Device ${short} is not among your devices any more (removed already, perhaps from another device).`;
        this.devices = this.devices.filter((x) => x.key !== d.key);
        this.els.heading.focus();
        this.load();
      } else if (e.status === 0) {
        this.removeError = `Device ${short} was not removed: the login server cannot be reached. Check your connection and try again.`;
      } else {
        this.removeError = `Device ${short} was not removed: ${this.hooks.describe(e)}`;
      }
      this.show();
      return;
    }
    this.busy = this.confirming = "";
    if (d.self) {
      this.clear();
      this.hooks.removedSelf();
      return;
    }
    this.devices = this.devices.filter((x) => x.key !== d.key);
    this.said = `Removed device ${short}: it gets nothing more.`;
    this.show();
    this.els.heading.focus();
    this.hooks.removed(d.key);
    await this.load();
  }
}

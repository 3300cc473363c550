// What reaches a person who is not looking at the page: the ringtone (made
// here with WebAudio: no sound file), the tab's icon while a call rings, and
// the system's notifications (only once the person allowed them, asked by a
// control of the page, never at load).

const RING_GAIN = 0.12; // about −18 dBFS: heard, not startling
const RING_CYCLE = 3000; // ms: "ring-ring", then a pause (a British ring: 0.4 s on, 0.2 off, 0.4 on, 2 off)
const RING_TONES = [400, 450]; // Hz, together
const RING_BURSTS = [[0, 0.4], [0.6, 1.0]]; // s from the cycle's start: on, off
const RESUME_WAIT = 500; // ms an AudioContext gets to start before the browser is taken to refuse

// Ringtone plays the ring with its own AudioContext, made when a call rings
// and closed when it stops. Browsers let a page play sound only after the
// person has interacted with it (a click, a key): before that start()
// resolves false, and the page says so and tries again at the next click or
// key.
export class Ringtone {
  constructor() {
    this.ctx = null;
    this.last = null; // the last AudioContext (closed once stopped), for tests
    this.timer = null;
    this.ringing = false;
  }

  // state is the AudioContext's: "running" while the ring is heard,
  // "suspended" when the browser holds it, "stopped" when not ringing.
  get state() { return this.ctx ? this.ctx.state : "stopped"; }

  // start rings until stop(); resolves whether the ring is heard.
  async start() {
    this.ringing = true;
    if (this.ctx) return this.ctx.state === "running";
    if (navigator.userActivation && !navigator.userActivation.hasBeenActive) return false;
    let ctx;
    try { ctx = new AudioContext(); } catch { return false; }
    this.ctx = ctx;
    this.last = ctx;
    try {
      await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, RESUME_WAIT))]);
    } catch { /* refused: below */ }
    if (this.ctx !== ctx) return false; // stopped meanwhile
    if (ctx.state !== "running" || !this.ringing) {
      this.stop();
      return false;
    }
    const out = ctx.createGain();
    out.gain.value = RING_GAIN / RING_TONES.length;
    out.connect(ctx.destination);
    const cycle = () => {
      if (ctx.state === "closed") return;
      const t0 = ctx.currentTime + 0.05;
      for (const [on, off] of RING_BURSTS) {
        const env = ctx.createGain();
        env.gain.setValueAtTime(0, t0 + on);
        env.gain.linearRampToValueAtTime(1, t0 + on + 0.015);
        env.gain.setValueAtTime(1, t0 + off - 0.015);
        env.gain.linearRampToValueAtTime(0, t0 + off);
        env.connect(out);
        for (const f of RING_TONES) {
          const osc = ctx.createOscillator();
          osc.frequency.value = f;
          osc.connect(env);
          osc.start(t0 + on);
          osc.stop(t0 + off + 0.02);
        }
      }
    };
    cycle();
    this.timer = setInterval(cycle, RING_CYCLE);
    return true;
  }

  stop() {
    this.ringing = false;
    clearInterval(this.timer);
    this.timer = null;
    const ctx = this.ctx;
    this.ctx = null;
    if (ctx && ctx.state !== "closed") ctx.close().catch(() => {});
  }
}

// setIcon points the tab's icon at href (the page's own icon, or the
// ringing one while a call rings).
export function setIcon(href) {
  const l = document.querySelector('link[rel~="icon"]');
  if (l && l.getAttribute("href") !== href) l.setAttribute("href", href);
}

// notificationState is "granted", "denied", "default" (not asked yet) or
// "unsupported".
export function notificationState() {
  return typeof Notification === "undefined" ? "unsupported" : Notification.permission;
}

// askNotifications asks the browser for permission (from a click: browsers
// ignore requests made without one); resolves with notificationState().
export async function askNotifications() {
  if (notificationState() === "unsupported") return "unsupported";
  try { await Notification.requestPermission(); } catch { /* an old callback-style browser: state below */ }
  return notificationState();
}

// notify shows a system notification when the person allowed them: tag
// names it (a newer one of the same tag replaces it), onClick brings the
// page to the front. Resolves with something to close() it by, or null.
export async function notify(title, body, tag, onClick) {
  if (notificationState() !== "granted") return null;
  const opts = { body, tag, icon: "icons/icon-192.png", badge: "icons/icon-192.png", renotify: true, data: { tag } };
  try {
    const n = new Notification(title, opts);
    n.onclick = () => { window.focus(); n.close(); onClick?.(); };
    return n;
  } catch {
    // Where pages may not make notifications themselves (Chrome on
    // Android), the service worker shows them.
    try {
      const reg = await navigator.serviceWorker?.ready;
      if (!reg) return null;
      await reg.showNotification(title, opts);
      return { close: () => reg.getNotifications({ tag }).then((ns) => ns.forEach((x) => x.close())) };
    } catch {
      return null;
    }
  }
}

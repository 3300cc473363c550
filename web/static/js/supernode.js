// The supernode websocket (supernode/protocol.go): challenge → attach →
// attached; send/ack/error, deliver, lookup/found, renew, presence. The link
// keeps itself attached: when its supernode goes away it moves to the next one
// it knows (the login server's list plus those the supernode listed), with
// backoff and jitter, the first try within 0.3 s.

import { b64, unb64, utf8, concat, randomHex, sleep } from "./util.js";
import { signContext } from "./keys.js";
import {
  SNAPI_ATTACH_CONTEXT as ATTACH_CONTEXT, SNAPI_PRESENCE_REFRESH_MS as PRESENCE_REFRESH,
  SNAPI_PROTOCOL_VERSION as PROTOCOL_VERSION, PRESENCE_ONLINE,
} from "./wire.gen.js";

// PRESENCE_FRAMES: send the C→S presence frame after attaching (and every
// PRESENCE_REFRESH ms). A supernode that does not know the frame closes the
// connection, so this can be turned off.
export const PRESENCE_FRAMES = true;
const REQUEST_TIMEOUT = 10_000;

export class SupernodeError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// serverName is the host:port a ws(s) URL dials, with the default port filled in.
function serverName(url) {
  const u = new URL(url);
  const port = u.port || (u.protocol === "wss:" ? "443" : "80");
  let host = u.hostname;
  return `${host}:${port}`;
}

export class SupernodeLink {
  // cfg: {credential: async () => token, key: CryptoKeyPair, device,
  //       onDeliver(frame), onPresence(frame), onState({online, url, message}),
  //       onAttached(frame), onFatal(message)}
  constructor(cfg) {
    this.cfg = cfg;
    this.urls = [];
    this.ws = null;
    this.url = "";
    this.attached = null; // the attached frame while online
    this.pending = new Map(); // id → {resolve, reject, timer}
    this.waiters = [];
    this.closed = false;
    this.failures = new Map(); // url → time it failed
    this.presence = { status: PRESENCE_ONLINE, watch: [] };
  }

  get online() { return !!this.attached; }
  get iceServers() { return this.attached?.ice_servers || []; }
  get user() { return this.attached?.user || ""; }

  addURLs(urls) {
    for (const u of urls) {
      if (typeof u === "string" && /^wss?:\/\//.test(u) && !this.urls.includes(u)) this.urls.push(u);
    }
  }

  start(urls) {
    this.addURLs(urls);
    this.loop();
  }

  // close ends the link for good (signing out, or the page going away): a
  // clean close, so that the supernode tells our contacts at once that this
  // device is offline.
  close(why = "signed out") {
    this.closed = true;
    try { this.ws?.close(1000, why); } catch { /* already closing */ }
    this.dropAll(new SupernodeError("closed", why));
  }

  // next picks the supernode to try: those that have not failed lately
  // first, in the order known, then the one that failed longest ago.
  next() {
    const now = Date.now();
    const fresh = this.urls.filter((u) => !(now - (this.failures.get(u) || 0) < 30_000));
    if (fresh.length) return fresh[0];
    return [...this.urls].sort((a, b) => (this.failures.get(a) || 0) - (this.failures.get(b) || 0))[0];
  }

  async loop() {
    let delay = 300;
    let refused = 0;
    while (!this.closed) {
      const url = this.next();
      if (!url) {
        this.cfg.onState({ online: false, url: "", message: "no supernode known" });
        await sleep(2000);
        continue;
      }
      let attachedOnce = false;
      try {
        await this.connect(url, () => { attachedOnce = true; delay = 300; refused = 0; });
      } catch (e) {
        if (this.closed) return;
        this.failures.set(url, Date.now());
        if (e instanceof SupernodeError && e.code === "auth") {
          refused++;
          if (refused >= 3) {
            this.cfg.onFatal?.(`supernodes refused this sign-in: ${e.message}`);
            return;
          }
        }
        this.cfg.onState({ online: false, url, message: e.message, lost: attachedOnce });
      }
      if (this.closed) return;
      // Backoff with jitter before the next supernode; the first within 0.3 s.
      await sleep(attachedOnce ? Math.random() * 300 : delay * (0.5 + Math.random()));
      if (!attachedOnce) delay = Math.min(delay * 2, 10_000);
    }
  }

  // connect attaches to url and resolves when the connection ends.
  connect(url, onAttached) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        reject(new SupernodeError("dial", `cannot connect to ${url}: ${e.message}`));
        return;
      }
      this.ws = ws;
      this.url = url;
      let state = "challenge";
      let lastError = null;
      const timer = setTimeout(() => {
        if (state !== "online") { lastError = new SupernodeError("timeout", `${url} did not attach us in time`); ws.close(); }
      }, 10_000);
      ws.onmessage = async (ev) => {
        let f;
        try { f = JSON.parse(ev.data); } catch { return; }
        if (f.v !== PROTOCOL_VERSION) return;
        try {
          if (state === "challenge" && f.type === "challenge") {
            const name = serverName(url);
            if (f.server !== name) throw new SupernodeError("auth", `supernode calls itself ${f.server}, dialled ${name}`);
            const token = await this.cfg.credential();
            const msg = concat(unb64(f.nonce), utf8(f.server));
            const sig = await signContext(this.cfg.key.privateKey, ATTACH_CONTEXT, msg);
            state = "attach";
            ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type: "attach", credential: token, sig: b64(sig) }));
            return;
          }
          this.onFrame(f, url, () => {
            if (state !== "online") {
              state = "online";
              clearTimeout(timer);
              onAttached();
            }
          }, (err) => { lastError = err; });
        } catch (e) {
          lastError = e;
          ws.close();
        }
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        const wasOnline = !!this.attached && this.ws === ws;
        if (this.ws === ws) {
          this.attached = null;
          this.ws = null;
        }
        clearInterval(this.presenceTimer);
        this.dropAll(new SupernodeError("disconnected", "disconnected from supernode"));
        if (this.closed) {
          resolve();
          return;
        }
        if (wasOnline) {
          this.failures.set(url, Date.now());
          resolve();
          this.cfg.onState({ online: false, url, message: lastError?.message || `connection closed (${ev.code})`, lost: true });
          return;
        }
        reject(lastError || new SupernodeError("dial", `cannot attach to ${url} (${ev.code || "closed"})`));
      };
    });
  }

  onFrame(f, url, attached, fatal) {
    switch (f.type) {
      case "attached": {
        const first = !this.attached;
        this.attached = f;
        this.addURLs(f.supernodes || []);
        attached();
        if (first) {
          this.cfg.onAttached?.(f);
          this.cfg.onState({ online: true, url });
          this.flushWaiters();
          if (PRESENCE_FRAMES) {
            this.sendPresence();
            clearInterval(this.presenceTimer);
            this.presenceTimer = setInterval(() => this.sendPresence(), PRESENCE_REFRESH);
          }
        }
        return;
      }
      case "ack": case "found": case "dialback_result": {
        const p = this.pending.get(f.id);
        if (p) { this.pending.delete(f.id); clearTimeout(p.timer); p.resolve(f); }
        return;
      }
      case "error": {
        if (f.id && this.pending.has(f.id)) {
          const p = this.pending.get(f.id);
          this.pending.delete(f.id);
          clearTimeout(p.timer);
          p.reject(new SupernodeError(f.code, f.error || f.code));
          return;
        }
        if (f.id) return; // a late answer to a request we gave up on
        fatal(new SupernodeError(f.code, f.error || f.code));
        return;
      }
      case "deliver":
        this.cfg.onDeliver?.(f);
        return;
      case "presence":
        this.cfg.onPresence?.(f);
        return;
    }
  }

  dropAll(err) {
    for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(err); }
    this.pending.clear();
  }

  flushWaiters() {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }

  // waitOnline resolves once attached (at once when already), or rejects after ms.
  waitOnline(ms = 15_000) {
    if (this.attached) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new SupernodeError("disconnected", "not connected to any supernode")), ms);
      this.waiters.push(() => { clearTimeout(t); resolve(); });
    });
  }

  request(frame) {
    if (!this.ws || !this.attached) return Promise.reject(new SupernodeError("disconnected", "not connected to a supernode"));
    const id = randomHex(8);
    const ws = this.ws;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SupernodeError("timeout", `supernode did not answer ${frame.type}`));
      }, REQUEST_TIMEOUT);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id, ...frame }));
    });
  }

  // send delivers payload (an object) to every device of user to; resolves
  // with the number of devices reached.
  async send(to, payload) {
    const f = await this.request({ type: "send", to, payload });
    return f.delivered || 0;
  }

  lookup(to) { return this.request({ type: "lookup", to }); }

  renew(token) {
    if (this.ws && this.attached) this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type: "renew", credential: token }));
  }

  setPresence(status, watch) {
    this.presence = { status, watch: [...watch] };
    if (PRESENCE_FRAMES) this.sendPresence();
  }

  sendPresence() {
    if (!this.ws || !this.attached) return;
    this.ws.send(JSON.stringify({
      v: PROTOCOL_VERSION, type: "presence", id: randomHex(8), status: this.presence.status,
      device: this.cfg.device, watch: this.presence.watch,
    }));
  }
}

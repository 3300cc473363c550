// Instant messages in the browser: the history (IndexedDB), the messenger
// (client/messenger.go: data channel, supernode, mailbox; receipts), and the
// conversation pane with its delivery marks. Groups: js/groupchat.js; the
// history on every device of the user: js/histsync.js.

import { b64, hex, sleep } from "./util.js";
import * as im from "./im.js";
import * as G from "./group.js";
import { GroupChat } from "./groupchat.js";
import { Files } from "./files.js";
import * as H from "./histsync.js";
import { LoginError } from "./login.js";
import {
  LOGINAPI_MAX_MAILBOX_FETCH as MAILBOX_FETCH, IM_TYPING_INTERVAL_MS as TYPING_INTERVAL, IM_TYPING_MAX_AGE_MS as TYPING_MAX_AGE,
} from "./wire.gen.js";

// ---- IndexedDB: the X25519 device key, the history, the seq counters, the groups' operations ----

const DB = "parley-im";

function openDB() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 3);
    req.onupgradeneeded = (ev) => {
      const db = req.result;
      let m;
      if (ev.oldVersion < 1) {
        db.createObjectStore("x25519");
        m = db.createObjectStore("messages", { keyPath: "k" });
        m.createIndex("conv", ["owner", "peer"]);
        db.createObjectStore("seqs");
      } else {
        m = req.transaction.objectStore("messages");
      }
      // Version 2: outgoing messages by state, to find those still sending.
      if (ev.oldVersion < 2) m.createIndex("state", ["owner", "dir", "state"]);
      // Version 3: the verified operations of every group, by group.
      if (ev.oldVersion < 3) db.createObjectStore("groupops", { keyPath: "k" }).createIndex("grp", ["owner", "group"]);
    };
    req.onsuccess = () => {
      // A newer page (another tab) upgrading the history: let it.
      req.result.onversionchange = () => { req.result.close(); dbp = null; };
      resolve(req.result);
    };
    req.onerror = () => reject(req.error);
  });
}

let dbp = null;
function db() { return (dbp ||= openDB()); }

async function tx(store, mode, f) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(store, mode);
    let out;
    Promise.resolve(f(t.objectStore(store), (v) => { out = v; })).catch(reject);
    t.oncomplete = () => resolve(out);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

const req = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });

// x25519Key is this browser's X25519 key pair for user (private half not
// extractable), made on first use.
export async function x25519Key(user) {
  let kp = await tx("x25519", "readonly", (s, set) => req(s.get(user)).then(set));
  if (kp?.privateKey && kp?.publicKey) return kp;
  kp = await im.generateX25519();
  await tx("x25519", "readwrite", (s) => { s.put({ privateKey: kp.privateKey, publicKey: kp.publicKey }, user); });
  return kp;
}

const msgKey = (owner, peer, dir, id) => `${owner}\n${peer}\n${dir}\n${id}`;

export class History {
  constructor(owner) { this.owner = owner; }

  // add stores m ({peer, dir, id, ...}) unless there; reports whether it is new.
  add(m) {
    const rec = { ...m, owner: this.owner, k: msgKey(this.owner, m.peer, m.dir, m.id) };
    return tx("messages", "readwrite", async (s, set) => {
      const old = await req(s.get(rec.k));
      if (old) { set(false); return; }
      s.put(rec);
      set(true);
    });
  }

  // setState moves outgoing messages ids with peer to state, never back
  // from delivered or read (nor from read to delivered).
  setState(peer, ids, state) {
    return tx("messages", "readwrite", async (s, set) => {
      const done = [];
      for (const id of ids) {
        const k = msgKey(this.owner, peer, "out", id);
        const m = await req(s.get(k));
        if (!m || m.kind || !advances(m.state, state)) continue;
        m.state = state;
        s.put(m);
        done.push(id);
      }
      set(done);
    });
  }

  // unsent lists the outgoing messages still "sending" (in no one's hands
  // yet), oldest first.
  unsent() {
    return tx("messages", "readonly", (s, set) =>
      req(s.index("state").getAll([this.owner, "out", "sending"])).then((ms) => {
        ms.sort((a, b) => a.ts - b.ts || a.seq - b.seq);
        set(ms);
      }));
  }

  conversation(peer) {
    return tx("messages", "readonly", (s, set) =>
      req(s.index("conv").getAll([this.owner, peer])).then((ms) => {
        ms.sort((a, b) => a.ts - b.ts || a.seq - b.seq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        set(ms);
      }));
  }

  // markRead clears the unread mark of peer's messages (and calls) and marks
  // their messages seen; resolves with {n: how many were unread, seen: the
  // ids of peer's messages seen just now, oldest first, for a read receipt}.
  markRead(peer) {
    return tx("messages", "readwrite", async (s, set) => {
      const ms = await req(s.index("conv").getAll([this.owner, peer]));
      ms.sort(order);
      let n = 0;
      const seen = [];
      for (const m of ms) {
        const fresh = m.dir === "in" && !m.kind && !m.seen;
        if (!m.unread && !fresh) continue;
        if (m.unread) n++;
        if (fresh) { m.seen = true; seen.push(m.id); }
        delete m.unread;
        s.put(m);
      }
      set({ n, seen });
    });
  }

  // summaries is, for each peer with messages, the last message and how
  // many are unread: Map(peer → {last, unread}).
  summaries() {
    return tx("messages", "readonly", (s, set) =>
      req(s.index("conv").getAll(IDBKeyRange.bound([this.owner], [this.owner, []]))).then((ms) => {
        const out = new Map();
        for (const m of ms) {
          let e = out.get(m.peer);
          if (!e) { e = { last: m, unread: 0 }; out.set(m.peer, e); }
          if (order(m, e.last) > 0) e.last = m;
          if (m.unread) e.unread++;
        }
        set(out);
      }));
  }

  // all is every message of this user's conversations (not calls), by
  // peer, each conversation in order.
  all() {
    return tx("messages", "readonly", (s, set) =>
      req(s.index("conv").getAll(IDBKeyRange.bound([this.owner], [this.owner, []]))).then((ms) => {
        const out = new Map();
        for (const m of ms) {
          if (m.kind) continue;
          if (!out.has(m.peer)) out.set(m.peer, []);
          out.get(m.peer).push(m);
        }
        for (const c of out.values()) c.sort(order);
        set(out);
      }));
  }

  // newest is, for each conversation, the time of its newest message,
  // newest first (im.History.Conversations): [[peer, ts]].
  async newest() {
    const out = [];
    for (const [peer, ms] of await this.all()) out.push([peer, ms.at(-1).ts]);
    return out.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }

  // forSync is what a history batch carries of this history for a device
  // whose want named since (peer → ms): of each conversation, newest
  // first, the last limit messages dated at or after since[peer] (all for
  // one it did not name), as im.SyncedMessage ({id, peer, from, dir, dev
  // (bytes), seq, ts, text, state}). An incoming message is read once it is
  // no longer unread here; one of mine that failed for good, which no Go
  // history has a state for, and one that would not pass a check, stay
  // out.
  async forSync(since, limit) {
    const convs = [];
    for (const [peer, ms] of await this.all()) convs.push([peer, ms, ms.at(-1).ts]);
    convs.sort((a, b) => b[2] - a[2] || (a[0] < b[0] ? -1 : 1));
    const out = [];
    for (const [peer, ms] of convs) {
      const from = Object.hasOwn(since, peer) ? since[peer] : 0;
      const want = [];
      for (const m of ms) {
        if (m.ts < from || (m.dir === "out" && m.state === "failed")) continue;
        const x = {
          id: m.id, peer, from: m.from || "", dir: m.dir, dev: hexBytes(m.fromDevice || ""), seq: m.seq || 0, ts: m.ts, text: m.text,
          state: m.dir === "in" ? (m.unread ? "received" : "read") : m.state,
        };
        if (!H.checkSynced(x)) want.push(x);
      }
      out.push(...want.slice(-limit));
    }
    return out;
  }

  // merge stores the messages of a history batch another device of this
  // user sent (im.History.Merge; checked already): what is missing is
  // added (an incoming one unread unless read there), and a message held
  // keeps the further of the two states — mine sending < sent < delivered
  // < read, an incoming one read once read on either device. Resolves with
  // {added (the records), states ([{peer, ids, state}] of mine moved on),
  // read ([{peer, ids}] of incoming ones now read)}.
  merge(ms) {
    return tx("messages", "readwrite", async (s, set) => {
      const peers = [...new Set(ms.map((m) => m.peer))];
      const held = new Map();
      await Promise.all(peers.map((p) => req(s.index("conv").getAll([this.owner, p])).then((rs) => {
        for (const r of rs) held.set(r.k, r);
      })));
      const added = [], states = new Map(), read = new Map();
      const note = (map, key, id) => { if (!map.has(key)) map.set(key, []); map.get(key).push(id); };
      for (const m of ms) {
        const k = msgKey(this.owner, m.peer, m.dir, m.id);
        const old = held.get(k);
        if (!old) {
          const rec = { peer: m.peer, dir: m.dir, id: m.id, fromDevice: m.dev, seq: m.seq, ts: m.ts, text: m.text, owner: this.owner, k };
          if (m.from) rec.from = m.from;
          if (m.dir === "in") {
            rec.state = "received";
            if (m.state === "read") rec.seen = true;
            else rec.unread = true;
          } else {
            rec.state = m.state;
          }
          s.put(rec);
          held.set(k, rec);
          added.push(rec);
          continue;
        }
        if (old.kind) continue;
        if (m.dir === "out") {
          // Forward only; one this page gave up on went after all if the
          // other device says so.
          if (old.state === "failed" ? m.state === "sending" : H.rank(m.state) <= H.rank(old.state)) continue;
          old.state = m.state;
          s.put(old);
          note(states, `${m.peer}\n${m.state}`, m.id);
        } else if (m.state === "read" && (old.unread || !old.seen)) {
          delete old.unread;
          old.seen = true;
          s.put(old);
          note(read, m.peer, m.id);
        }
      }
      set({
        added,
        states: [...states].map(([key, ids]) => { const [peer, state] = key.split("\n"); return { peer, ids, state }; }),
        read: [...read].map(([peer, ids]) => ({ peer, ids })),
      });
    });
  }

  // markSeen marks peer's incoming messages ids read, as read on another
  // device (im.History.MarkSeen): no longer unread, and no read receipt to
  // send for them. Resolves with the ids that were not read yet.
  markSeen(peer, ids) {
    return tx("messages", "readwrite", async (s, set) => {
      const rs = await Promise.all(ids.map((id) => req(s.get(msgKey(this.owner, peer, "in", id)))));
      const done = [];
      for (const m of rs) {
        if (!m || m.kind || (!m.unread && m.seen)) continue;
        delete m.unread;
        m.seen = true;
        s.put(m);
        done.push(m.id);
      }
      set(done);
    });
  }

  // addGroupOps stores verified operations of group id and resolves with
  // those that were new (History.AddGroupOps); it stores none and fails
  // ("log-full") when the log would hold more than MAX_OPS.
  addGroupOps(id, ops) {
    if (!ops.length) return Promise.resolve([]);
    return tx("groupops", "readwrite", async (s, set) => {
      let n = await req(s.index("grp").count([this.owner, id]));
      const added = [];
      for (const o of ops) {
        const k = `${this.owner}\n${id}\n${o.id}`;
        if (added.some((a) => a.id === o.id) || (await req(s.getKey(k))) !== undefined) continue;
        added.push(o);
        n++;
      }
      if (n > G.MAX_OPS) throw new G.GroupError("log-full", `The group has ${n} changes, more than a device keeps (${G.MAX_OPS}).`);
      for (const o of added) s.put({ k: `${this.owner}\n${id}\n${o.id}`, owner: this.owner, group: id, id: o.id, clock: o.clock, op: G.opToWire(o) });
      set(added);
    });
  }

  // groupOps is every stored operation of this user's groups: Map(group id →
  // [{id, clock, op (its JSON)}]).
  groupOps() {
    return tx("groupops", "readonly", (s, set) =>
      req(s.index("grp").getAll(IDBKeyRange.bound([this.owner], [this.owner, []]))).then((rs) => {
        const out = new Map();
        for (const r of rs) {
          if (!out.has(r.group)) out.set(r.group, []);
          out.get(r.group).push(r);
        }
        set(out);
      }));
  }

  nextSeq(peer) {
    const k = `${this.owner}\n${peer}`;
    return tx("seqs", "readwrite", async (s, set) => {
      const n = ((await req(s.get(k))) || 0) + 1;
      s.put(n, k);
      set(n);
    });
  }
}

// RANK orders the states of my messages: a receipt never moves one back.
const RANK = { sending: 0, failed: 0, sent: 1, delivered: 2, read: 3 };

// advances reports whether a message of mine in state from may go to state to.
export function advances(from, to) {
  if (from === to) return false;
  if ((RANK[from] ?? 0) >= RANK.delivered) return (RANK[to] ?? 0) > RANK[from];
  return true;
}

// ---- the messenger ----

const DATA_CHANNEL_WAIT = 1000;
const LIVE_WAIT = 3000;
const DEVICE_CACHE_TTL = 10_000;
const RETRY_EVERY = 15_000;

// retryLater reports whether a send failed only for want of a connection
// (the login server unreachable, overloaded, or our credential lapsed while
// it was) or of room in the peer's mailboxes: the message stays "sending" and
// goes again by itself.
export function retryLater(e) {
  if (e?.code === "disconnected" || e?.code === "timeout") return true;
  const st = e?.status;
  return st === 0 || st === 401 || st === 429 || st === 502 || st === 503 || st === 504 || st === 507;
}

// Messenger sends and receives envelopes for the signed-in user. cfg:
// {user, key: Ed25519 CryptoKeyPair, pub: bytes, credential: async () => token,
//  loginKey: () => bytes, api: LoginAPI, link: SupernodeLink,
//  channelTo(user): an open RTCDataChannel of a call with user, or null,
//  onMessage(m), onState(peer, ids, state), onRefused(from, why, quiet): an
//  envelope that failed its checks (quiet: say nothing, as for a history
//  envelope from a device that is not the user's now),
//  onFailed(peer, err): a message that can never go (peer no longer a contact),
//  isReading(peer): whether peer's conversation is open in front (a message
//  that arrives otherwise is stored unread),
//  readReceipts(): whether this user sends and shows read receipts,
//  onTyping(peer, active): peer is typing to us, or stopped,
//  onGroup(state, ops): operations took effect in a group (js/groupchat.js),
//  onHistory({added, states, read}): another device of the user's changed
//  the history (js/histsync.js)}
//
// Read receipts: a message of peer's seen on screen (its conversation open
// in front when it arrives, or opened later: seen()) is acknowledged with a
// receipt of state "read", batched per peer, when readReceipts() allows;
// otherwise none is sent, and a read receipt that comes is taken as a
// delivery (as the big messengers do, a person who does not tell does not
// see either). Typing: typing(peer, active) sends at most one "typing" per
// TYPING_INTERVAL to a peer and one "stopped" after it, to the devices of
// peer that are online (data channel or supernode; never the mailbox).
//
// A message is stored ("sending") before anything is tried, and stays so
// until a device of the peer acknowledges it (then "delivered") or it waits
// in their mailbox ("sent"). One still "sending" (no connection, or the page
// closed) is sent again, sealed anew with the same id, seq and time, when the
// supernode link attaches, every 15 s while any is waiting, and at the next
// sign-in: as the CLI does (client.History.Pending).
export class Messenger {
  constructor(cfg, x) {
    this.cfg = cfg;
    this.user = cfg.user;
    this.x = x;
    this.hist = new History(cfg.user);
    this.devices = new Map();
    this.waits = new Map(); // envelope id → tracker
    this.acks = new Map(); // user → ids to acknowledge
    this.queue = Promise.resolve(); // envelopes are opened one at a time, in order
    this.sending = Promise.resolve(); // one send at a time
    this.xPub = null;
    this.reads = new Map(); // peer → ids to acknowledge as read
    this.typingSent = new Map(); // peer → {at, active} of the last typing envelope sent
    this.typingSeen = new Map(); // peer → {at, active} of the last typing shown
    // What went and came, for the page's tests (and the curious).
    this.counts = { readSent: 0, readReceived: 0, typingSent: 0, typingReceived: 0, refused: 0 };
    this.groups = new GroupChat(this);
    this.history = new H.HistorySync(this);
    this.files = new Files(this); // js/files.js
  }

  readReceipts() { return this.cfg.readReceipts?.() !== false; }

  static async start(cfg) {
    const x = await x25519Key(cfg.user);
    const m = new Messenger(cfg, x);
    m.xPub = await im.x25519Public(x);
    await m.groups.load();
    m.waiting = true; // a page closed before its messages went: look at the first tick
    m.retryTimer = setInterval(() => { if (m.waiting) m.resendPending(); }, RETRY_EVERY);
    return m;
  }

  // stop ends the retries (at sign-out); what is unsent stays stored.
  stop() {
    this.stopped = true;
    clearInterval(this.retryTimer);
    clearTimeout(this.history.readTimer);
    this.files.stop();
  }

  // register publishes this device's X25519 key (PUT /api/v1/devices/self).
  async register() {
    const sig = await im.signDevice(this.cfg.key.privateKey, this.user, this.cfg.pub, this.xPub);
    await this.authed("PUT", "/api/v1/devices/self", { x25519: b64(this.xPub), sig: b64(sig) });
  }

  async authed(method, path, body, headers) {
    this.cfg.api.credential = await this.cfg.credential();
    return this.cfg.api.req(method, path, body, true, headers);
  }

  retryLater(e) { return retryLater(e); }

  // devicesOf is user's verified device records; a user who is not a
  // contact but a member of a group of ours is read with the pass its log
  // carries for them (unless withPass is false).
  async devicesOf(user, fresh = false, withPass = true) {
    const e = this.devices.get(user);
    if (e && !fresh && Date.now() - e.at < DEVICE_CACHE_TTL) return e.recs;
    const path = `/api/v1/users/${encodeURIComponent(user)}/devices`;
    let r;
    try {
      try {
        r = await this.authed("GET", path);
      } catch (err) {
        const pass = err.status === 403 && withPass && user !== this.user ? this.groups.passFor(user) : null;
        if (!pass) throw err;
        r = await this.authed("GET", path, undefined, { [G.PASS_HEADER]: G.encodePass(pass) });
      }
    } catch (err) {
      if (e && retryLater(err)) return e.recs; // the last list known beats none
      throw err;
    }
    const recs = [];
    for (const d of r.devices || []) {
      const v = await im.verifyDevice(user, d);
      if (v) recs.push(v);
    }
    this.devices.set(user, { recs, at: Date.now() });
    return recs;
  }

  async sender() {
    return { user: this.user, device: this.cfg.key, devicePub: this.cfg.pub, credential: await this.cfg.credential() };
  }

  // send sends text to peer; resolves with {id, delivered, stored} once a
  // device of theirs has it or it waits in their mailbox.
  send(peer, text) {
    const p = this.sending.then(() => this.sendNow(peer, text));
    this.sending = p.catch(() => {});
    return p;
  }

  async sendNow(peer, text) {
    im.checkText(text);
    // The message tells peer the typing is over: the next key starts anew.
    this.typingSent.delete(peer);
    const ts = Date.now();
    const id = im.newMessageID();
    let devs;
    try {
      devs = await this.recipients(peer);
    } catch (e) {
      if (!retryLater(e)) throw e;
      // No connection: keep the message; it is sealed when it can go.
      const m = await this.store(peer, { id, ts, text });
      this.waiting = true;
      return { id: m.id, delivered: false, stored: false, queued: true };
    }
    const snd = await this.sender();
    // Seal once before taking a seq: a message that cannot be sealed is refused whole.
    await im.sealMessage(snd, peer, devs.all, { id, seq: 1, ts, text });
    const m = await this.store(peer, { id, ts, text });
    const { env } = await im.sealMessage(snd, peer, devs.all, { id, seq: m.seq, ts, text });
    return this.attempt(m, env, devs);
  }

  // recipients are the devices a message to peer is sealed for: theirs and
  // my own.
  async recipients(peer) {
    let peerDevs = await this.devicesOf(peer);
    if (!peerDevs.length) peerDevs = await this.devicesOf(peer, true);
    const myDevs = await this.devicesOf(this.user);
    return { peerDevs, myDevs, all: [...peerDevs, ...myDevs] };
  }

  // store records an outgoing message as "sending", with the next seq of
  // the conversation, and shows it.
  async store(peer, { id, ts, text }) {
    const seq = await this.hist.nextSeq(peer);
    const m = { peer, dir: "out", id, seq, ts, text, state: "sending", fromDevice: hex(this.cfg.pub) };
    await this.hist.add(m);
    this.cfg.onMessage(m, "");
    return m;
  }

  // attempt delivers a stored message; a failure for want of a connection
  // leaves it "sending" (queued), any other marks it failed.
  async attempt(m, env, devs) {
    try {
      return await this.deliver(env, devs.peerDevs, devs.myDevs);
    } catch (e) {
      if (retryLater(e)) {
        this.waiting = true;
        return { id: m.id, delivered: false, stored: false, queued: true };
      }
      const done = await this.hist.setState(m.peer, [m.id], "failed");
      if (done.length) this.cfg.onState(m.peer, done, "failed");
      throw e;
    }
  }

  // resendPending sends again, oldest first, what this device sent that is
  // still "sending". It stops at the first that finds no connection.
  resendPending() {
    if (this.resending) return this.resending;
    const job = this.sending.then(() => this.resendNow());
    this.sending = job.catch(() => {});
    this.resending = job.catch((e) => console.warn("resending", e.message)).finally(() => { this.resending = null; });
    return this.resending;
  }

  async resendNow() {
    // Without a supernode, the next attach resends: try only once a minute
    // meanwhile (the mailbox may still be reachable), so that new messages
    // do not queue behind retries.
    if (!this.cfg.link?.online) {
      if (Date.now() - (this.offlineTry || 0) < 60_000) { this.waiting = true; return; }
      this.offlineTry = Date.now();
    }
    const mine = hex(this.cfg.pub);
    let waiting = false;
    for (const m of await this.hist.unsent()) {
      if (this.stopped) return;
      if (m.fromDevice !== mine) continue;
      if (G.isGroupPeer(m.peer)) {
        // A group message: to every member again, the same envelope ids.
        try {
          if ((await this.groups.deliverMessage(G.groupOfPeer(m.peer), m)).queued) { waiting = true; break; }
        } catch (e) {
          if (retryLater(e)) { waiting = true; break; }
          this.cfg.onFailed?.(m.peer, e);
        }
        continue;
      }
      try {
        const devs = await this.recipients(m.peer);
        const { env } = await im.sealMessage(await this.sender(), m.peer, devs.all, { id: m.id, seq: m.seq, ts: m.ts, text: m.text });
        if ((await this.attempt(m, env, devs)).queued) { waiting = true; break; }
      } catch (e) {
        if (retryLater(e)) { waiting = true; break; }
        const done = await this.hist.setState(m.peer, [m.id], "failed");
        if (done.length) this.cfg.onState(m.peer, done, "failed");
        this.cfg.onFailed?.(m.peer, e);
      }
    }
    this.waiting = waiting;
  }

  async deliver(env, peerDevs, myDevs) {
    const to = env.to;
    const tr = { want: new Map(), peer: to, peerN: 0, total: 0, wake: null };
    const mine = hex(this.cfg.pub);
    for (const d of [...peerDevs, ...myDevs]) {
      const k = hex(d.key);
      if (k !== mine) tr.want.set(k, d.user);
    }
    const silent = (u) => [...tr.want.values()].filter((x) => x === u).length;
    const wait = async (done, ms) => {
      const until = Date.now() + ms;
      while (!done() && Date.now() < until) {
        await new Promise((r) => { tr.wake = r; setTimeout(r, Math.min(100, until - Date.now())); });
      }
    };
    this.waits.set(env.id, tr);
    try {
      const text = JSON.stringify(env);
      // 1. A call's data channel.
      if (this.sendChannel(to, text)) await wait(() => silent(to) === 0, DATA_CHANNEL_WAIT);
      // 2. The supernode, for the users with devices still silent.
      let expect = 0;
      // A supernode link that is down gets 1.5 s to come back (a failover
      // takes 0.3 s); after that the mailbox, and a resend at the next attach.
      const live = await this.cfg.link.waitOnline(1500).then(() => true, () => false);
      for (const u of new Set([to, this.user])) {
        if (!live || silent(u) === 0) continue;
        try {
          expect += await this.cfg.link.send(u, env);
        } catch (e) {
          if (e.code !== "offline") console.debug("live message send", u, e.message);
        }
      }
      if (expect > 0) {
        const base = tr.total;
        await wait(() => tr.want.size === 0 || tr.total - base >= expect, LIVE_WAIT);
      }
      // 3. The mailbox, for every device still silent.
      const items = [...tr.want].map(([k, u]) => ({ to_user: u, to_device: b64(hexBytes(k)), id: env.id, blob: env }));
      const delivered = tr.peerN > 0;
      let stored = false;
      if (items.length) {
        try {
          const posted = await this.postMailbox(items);
          stored = posted.some((it) => it.to_user === to);
        } catch (e) {
          if (!delivered) throw e;
          console.warn("mailing a copy to my other devices", e.message);
        }
        if (!delivered && !stored && items.some((it) => it.to_user === to)) {
          throw new LoginError(507, `every mailbox of ${to}'s devices is full`);
        }
      }
      if (!delivered) {
        const done = await this.hist.setState(to, [env.id], "sent");
        if (done.length) this.cfg.onState(to, done, "sent");
      }
      return { id: env.id, delivered, stored };
    } finally {
      this.waits.delete(env.id);
    }
  }

  sendChannel(user, text) {
    const dc = this.cfg.channelTo(user);
    if (!dc) return false;
    try { dc.send(text); return true; } catch { return false; }
  }

  // receive queues an envelope (parsed JSON) that arrived via "datachannel",
  // "supernode" or "mailbox".
  receive(p, via) {
    const job = this.queue.then(() => this.openOne(p, via));
    this.queue = job.catch((e) => console.warn("message", e));
    return job;
  }

  async openOne(p, via) {
    let o;
    try {
      o = await im.open(p, this.user, { pub: this.cfg.pub, x: this.x, xPub: this.xPub }, this.cfg.loginKey());
    } catch (e) {
      const from = typeof p?.from === "string" ? p.from : "";
      console.warn("refusing a message from", from, via, e.message);
      // A history envelope sealed before this device was registered (the
      // supernode hands it to every device of the user online) is none of
      // its business: counted, not shown.
      this.refuse(from, e.message, p?.kind === im.KIND_HISTORY && e.code === "no-key");
      return;
    }
    if (o.kind === im.KIND_TYPING) {
      this.typed(o);
      return;
    }
    if (o.kind === im.KIND_GROUP) {
      try {
        o.group = await G.openBody(o.body, this.cfg.loginKey());
      } catch (e) {
        console.warn("refusing a group envelope from", o.from, via, e.message);
        this.refuse(o.from, e.message);
        return;
      }
      await this.groups.opened(o, via);
      return;
    }
    if (o.kind === im.KIND_HISTORY) {
      await this.history.opened(o, via);
      return;
    }
    if (o.kind === im.KIND_FILE) {
      await this.files.opened(o, via);
      return;
    }
    if (o.kind === im.KIND_MESSAGE) {
      const m = { id: o.id, peer: o.from, dir: "in", fromDevice: o.fromDevice, seq: o.seq, ts: o.ts, text: o.text, state: "received" };
      if (o.from === this.user) Object.assign(m, { peer: o.to, dir: "out", state: "sent" });
      else if (!this.cfg.isReading?.(m.peer)) m.unread = true; // counted until its conversation is open
      else m.seen = true; // on screen as it arrives
      const isNew = await this.hist.add(m);
      if (isNew) {
        this.typingSeen.delete(m.peer);
        this.cfg.onMessage(m, via);
        if (m.seen) {
          this.queueRead(m.peer, [m.id]);
          this.history.read(m.peer, [m.id]);
        }
      }
      this.ack(o.from, o.id, via);
      return;
    }
    // A receipt.
    let state = o.state;
    if (state === im.RECEIPT_READ) {
      this.counts.readReceived++;
      if (!this.readReceipts()) state = im.RECEIPT_DELIVERED; // not shown to who does not tell
    }
    for (const id of o.acked) {
      const tr = this.waits.get(id);
      if (tr && tr.want.has(o.fromDevice)) {
        tr.want.delete(o.fromDevice);
        tr.total++;
        if (o.from === tr.peer) tr.peerN++;
        tr.wake?.();
      }
    }
    if (o.from === this.user) return;
    const done = await this.hist.setState(o.from, o.acked, state);
    if (done.length) this.cfg.onState(o.from, done, state);
  }

  // refuse counts an envelope that failed its checks and says so (unless
  // quiet).
  refuse(from, why, quiet = false) {
    this.counts.refused++;
    if (quiet) console.warn("refusing a history envelope from", from, why);
    this.cfg.onRefused(from, why, quiet);
  }

  // ack acknowledges envelope id to its sender (with those that come
  // meanwhile; a mailbox's after the whole batch).
  ack(from, id, via) {
    if (!this.acks.has(from)) this.acks.set(from, []);
    this.acks.get(from).push(id);
    if (via !== "mailbox") this.scheduleAcks();
  }

  // typed shows a typing envelope (o) from a peer, unless it is stale or
  // repeats the last one too soon (im.Session's rule).
  typed(o) {
    const now = Date.now();
    if (o.from === this.user || o.to !== this.user || now - o.ts > TYPING_MAX_AGE) return;
    const active = o.state === im.TYPING_ACTIVE;
    const last = this.typingSeen.get(o.from);
    if (active && last?.active && now - last.at < TYPING_INTERVAL / 2) return;
    this.typingSeen.set(o.from, { at: now, active });
    this.counts.typingReceived++;
    this.cfg.onTyping?.(o.from, active);
  }

  // typing tells peer this user is typing (active) or stopped: online only,
  // at most once per TYPING_INTERVAL while active, a stop only after a start.
  // Resolves whether an envelope went.
  async typing(peer, active) {
    const now = Date.now();
    const last = this.typingSent.get(peer);
    if (active ? last?.active && now - last.at < TYPING_INTERVAL : !last?.active) return false;
    this.typingSent.set(peer, { at: now, active });
    try {
      const devs = await this.devicesOf(peer);
      const { env } = await im.sealTyping(await this.sender(), peer, devs, active);
      if (this.sendChannel(peer, JSON.stringify(env))) { this.counts.typingSent++; return true; }
      if (!this.cfg.link?.online) return false;
      const n = await this.cfg.link.send(peer, env);
      if (n > 0) this.counts.typingSent++;
      return n > 0;
    } catch (e) {
      if (e.code !== "offline") console.debug("typing to", peer, e.message);
      return false;
    }
  }

  // seen marks peer's conversation read: the unread marks go, the
  // messages not seen before are acknowledged as read (when this user
  // tells), and this user's other devices mark them read too (always).
  // Resolves with how many were unread.
  async seen(peer) {
    const r = await this.hist.markRead(peer);
    if (r.seen.length) {
      this.queueRead(peer, r.seen);
      this.history.read(peer, r.seen);
    }
    return r.n;
  }

  // queueRead acknowledges ids of peer's as read, soon, in one receipt with
  // those that come meanwhile; nothing when this user does not tell.
  queueRead(peer, ids) {
    if (!this.readReceipts() || peer === this.user || G.isGroupPeer(peer)) return; // groups have none
    if (!this.reads.has(peer)) this.reads.set(peer, []);
    this.reads.get(peer).push(...ids);
    if (this.readTimer) return;
    this.readTimer = setTimeout(() => {
      this.readTimer = null;
      this.queue = this.queue.then(() => this.flushReads());
    }, 0);
  }

  async flushReads() {
    const reads = this.reads;
    this.reads = new Map();
    if (!this.readReceipts()) return; // turned off meanwhile
    for (const [user, ids] of reads) {
      for (let i = 0; i < ids.length; i += 500) {
        try {
          await this.sendReceipt(user, ids.slice(i, i + 500), im.RECEIPT_READ);
          this.counts.readSent++;
        } catch (e) {
          console.warn("sending a read receipt to", user, e.message);
        }
      }
    }
  }

  // addCall keeps a call in peer's conversation: c {id (the call's), dir,
  // ts, outcome: missed, declined or done, duration (ms)}. A missed call
  // is unread unless its conversation is on screen. Resolves with the
  // record when it is new.
  async addCall(peer, c) {
    const text = c.outcome === "missed" ? "Missed call" : c.outcome === "declined" ? "Declined call"
      : `${c.dir === "out" ? "Outgoing" : "Incoming"} call · ${duration(c.duration || 0)}`;
    const m = { peer, dir: c.dir, id: `call-${c.id}`, kind: "call", outcome: c.outcome, duration: c.duration || 0, ts: c.ts, seq: 0, text, state: "call" };
    if (c.outcome === "missed" && !this.cfg.isReading?.(peer)) m.unread = true;
    return (await this.hist.add(m)) ? m : null;
  }

  scheduleAcks() {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => { this.ackTimer = null; this.queue = this.queue.then(() => this.flushAcks()); }, 0);
  }

  async flushAcks() {
    const acks = this.acks;
    this.acks = new Map();
    for (const [user, ids] of acks) {
      for (let i = 0; i < ids.length; i += 500) {
        try { await this.sendReceipt(user, ids.slice(i, i + 500)); } catch (e) { console.warn("sending a receipt to", user, e.message); }
      }
    }
  }

  async sendReceipt(user, ids, state = im.RECEIPT_DELIVERED) {
    const devs = await this.devicesOf(user);
    const { env } = await im.sealReceipt(await this.sender(), user, devs, ids, state);
    if (this.sendChannel(user, JSON.stringify(env))) return;
    try {
      if (this.cfg.link.online && (await this.cfg.link.send(user, env)) > 0) return;
    } catch (e) {
      if (e.code !== "offline" && e.code !== "disconnected") throw e;
    }
    const mine = hex(this.cfg.pub);
    const items = devs.filter((d) => hex(d.key) !== mine).map((d) => ({ to_user: user, to_device: b64(d.key), id: env.id, blob: env }));
    if (items.length) await this.postMailbox(items);
  }

  // postMailbox posts items, leaving out each device whose mailbox is full
  // (a device gone for good must not keep a message from the others), and
  // resolves with the items stored. An item to a member of a group of ours
  // carries the pass the group's log has for them (the login server reads
  // it only if they are not a contact).
  async postMailbox(items) {
    items = items.map((it) => {
      const p = it.to_user !== this.user ? this.groups.passFor(it.to_user) : null;
      return p ? { ...it, pass: G.passToWire(p) } : it;
    });
    for (;;) {
      try {
        await this.authed("POST", "/api/v1/mailbox", { items });
        return items;
      } catch (e) {
        if (e.status !== 507 || e.item < 0 || e.item >= items.length || items.length === 1) throw e;
        console.warn("a device's mailbox is full; it will miss this message", items[e.item].to_user);
        items = items.filter((_, i) => i !== e.item);
      }
    }
  }

  // fetchMailbox reads this device's mailbox, stores what it holds, sends
  // the receipts and only then empties it.
  fetchMailbox() {
    const job = this.queue.then(() => this.fetchNow());
    this.queue = job.catch((e) => console.warn("mailbox", e.message));
    return job;
  }

  async fetchNow() {
    for (;;) {
      const r = await this.authed("GET", `/api/v1/mailbox?limit=${MAILBOX_FETCH}`);
      const items = r.items || [];
      for (const it of items) await this.openOne(it.blob, "mailbox");
      await this.flushAcks();
      if (items.length) await this.authed("POST", "/api/v1/mailbox/ack", { seqs: items.map((it) => it.seq) });
      if (!r.more || !items.length) return;
    }
  }
}

// duration is m:ss (h:mm:ss from an hour).
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function hexBytes(h) {
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(h.substr(2 * i, 2), 16);
  return b;
}

// ---- the pane ----

const MARK = { sending: "sending…", sent: "sent", delivered: "delivered", read: "read", received: "", failed: "not sent" };
const GROUP_GAP = 5 * 60_000; // messages from one side this close share a group

// dayKey is ts's local calendar day.
export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

function dayStart(d) { return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime(); }

function daysAgo(ts, now) { return Math.round((dayStart(new Date(now)) - dayStart(new Date(ts))) / 86_400_000); }

// dayLabel names ts's day for a separator: Today, Yesterday, a weekday
// this week, else the date.
export function dayLabel(ts, now = Date.now()) {
  const n = daysAgo(ts, now);
  if (n === 0) return "Today";
  if (n === 1) return "Yesterday";
  const d = new Date(ts);
  if (n > 1 && n < 7) return d.toLocaleDateString(undefined, { weekday: "long" });
  const year = d.getFullYear() !== new Date(now).getFullYear() ? { year: "numeric" } : {};
  return d.toLocaleDateString(undefined, { day: "numeric", month: "long", ...year });
}

export function clockTime(ts) {
  return new Date(ts).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

// listTime is the time a conversation list shows for its last message:
// the clock time today, else Yesterday, a weekday or a short date.
export function listTime(ts, now = Date.now()) {
  const n = daysAgo(ts, now);
  if (n <= 0) return clockTime(ts);
  if (n === 1) return "Yesterday";
  const d = new Date(ts);
  if (n < 7) return d.toLocaleDateString(undefined, { weekday: "short" });
  return d.toLocaleDateString(undefined, { day: "numeric", month: "short", ...(d.getFullYear() !== new Date(now).getFullYear() ? { year: "2-digit" } : {}) });
}

function order(a, b) { return a.ts - b.ts || a.seq - b.seq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0); }

// ChatPane is the open conversation: bubbles in time order, a separator
// where the day changes, and the delivery marks of my messages.
export class ChatPane {
  // els: {log (the list), scroll (what scrolls it), input, send, note,
  // empty}; hooks: sendText(peer, text), history(peer), describe(err, peer),
  // showRead() (whether read marks show: else "read" shows as delivered),
  // callBack(peer) (the button of a missed call).
  constructor(els, hooks) {
    this.log = els.log;
    this.scroller = els.scroll;
    this.input = els.input;
    this.note = els.note;
    this.empty = els.empty;
    this.sendBtn = els.send;
    this.hooks = hooks;
    this.peer = "";
    this.items = new Map(); // "dir-id" → {li, m}
    this.drafts = new Map(); // peer → what was typed to them, while another conversation is open
    this.sendBtn.addEventListener("click", () => this.send());
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.send(); }
    });
    this.input.addEventListener("input", () => this.fit());
  }

  // fit grows the message field with what is typed, up to its CSS max-height.
  fit() {
    if (!this.input.value || !this.input.offsetParent) { this.input.style.height = ""; return; }
    this.input.style.height = "auto";
    this.input.style.height = `${this.input.scrollHeight + 2}px`;
  }

  async open(peer) {
    const changed = peer !== this.peer;
    if (changed) {
      // What was typed stays with its conversation.
      if (this.peer) this.drafts.set(this.peer, this.input.value);
      this.input.value = this.drafts.get(peer) || "";
      this.drafts.delete(peer);
      this.fit();
    }
    this.peer = peer;
    if (changed) {
      this.log.replaceChildren();
      this.items.clear();
      this.note.textContent = "";
      this.empty.hidden = true;
    }
    if (!peer) return;
    let ms = [];
    try { ms = await this.hooks.history(peer); } catch (e) { console.warn("history", e); }
    if (this.peer !== peer) return;
    for (const m of ms) this.show(m, false);
    this.empty.hidden = this.items.size > 0;
    this.scrollToEnd();
  }

  scrollToEnd() { this.scroller.scrollTop = this.scroller.scrollHeight; }

  // show adds m to the log if it belongs to the open conversation, once,
  // in time order.
  show(m, scroll = true) {
    if (!this.peer || m.peer !== this.peer) return;
    const key = `${m.dir}-${m.id}`;
    if (this.items.has(key)) return;
    const sc = this.scroller;
    const nearEnd = sc.scrollHeight - sc.scrollTop - sc.clientHeight < 80;
    const li = this.bubble(m);
    this.items.set(key, { li, m });
    this.place(li, m);
    this.empty.hidden = true;
    if (scroll && (nearEnd || m.dir === "out")) this.scrollToEnd();
  }

  // shown is the mark a message of mine shows in state.
  shown(state) {
    return state === "read" && this.hooks.showRead?.() === false ? "delivered" : state;
  }

  // callLine is a call in the conversation: a line across, not a bubble.
  callLine(m) {
    const li = document.createElement("li");
    li.className = `msg call ${m.dir} ${m.outcome}`;
    li.dataset.id = `${m.dir}-${m.id}`;
    li.dataset.day = dayKey(m.ts);
    li._m = m;
    const box = document.createElement("div");
    box.className = "call-line";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    const time = document.createElement("time");
    time.dateTime = new Date(m.ts).toISOString();
    time.textContent = clockTime(m.ts);
    time.title = new Date(m.ts).toLocaleString();
    box.append(text, " · ", time);
    if (m.outcome === "missed" && this.hooks.callBack) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "small";
      b.textContent = "Call back";
      b.setAttribute("aria-label", `Call back ${m.peer}`);
      b.addEventListener("click", () => this.hooks.callBack(m.peer));
      box.append(" ", b);
    }
    li.append(box);
    return li;
  }

  // sysLine is a change of a group (m.kind "sys": who added whom, a new
  // name…): a small line across, as a call's.
  sysLine(m) {
    const li = document.createElement("li");
    li.className = "sys"; // not a "msg": no one wrote it
    li.dataset.id = `${m.dir}-${m.id}`;
    li.dataset.day = dayKey(m.ts);
    li._m = m;
    const box = document.createElement("div");
    box.className = "call-line sys-line";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    const time = document.createElement("time");
    time.dateTime = new Date(m.ts).toISOString();
    time.textContent = clockTime(m.ts);
    time.title = new Date(m.ts).toLocaleString();
    box.append(text, " · ", time);
    li.append(box);
    return li;
  }

  bubble(m) {
    if (m.kind === "call") return this.callLine(m);
    if (m.kind === "sys") return this.sysLine(m);
    const li = document.createElement("li");
    li.className = "msg " + m.dir;
    li.dataset.id = `${m.dir}-${m.id}`;
    li.dataset.day = dayKey(m.ts);
    li._m = m;
    // For screen readers (and the tests): who wrote it (in a group, the
    // member who sent it).
    const sr = document.createElement("span");
    sr.className = "sr-only";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = m.dir === "out" ? "me" : m.from || m.peer;
    sr.append(who, ": ");
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    if (m.from && m.dir === "in") {
      // A group's message says whose it is (the first of a run of theirs).
      const from = document.createElement("span");
      from.className = "sender";
      from.setAttribute("aria-hidden", "true");
      from.textContent = m.from;
      bubble.append(from);
    }
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    const meta = document.createElement("span");
    meta.className = "meta";
    const time = document.createElement("time");
    time.dateTime = new Date(m.ts).toISOString();
    time.textContent = clockTime(m.ts);
    time.title = new Date(m.ts).toLocaleString();
    meta.append(" ", time);
    if (m.dir === "out") {
      const mark = document.createElement("span");
      mark.className = "mark";
      const st = this.shown(m.state);
      mark.dataset.state = st;
      mark.textContent = MARK[st] ?? st;
      meta.append(" ", mark);
    }
    bubble.append(sr, text, meta);
    if (m.file) this.hooks.fileCard?.(m, bubble, text); // js/fileview.js
    li.append(bubble);
    return li;
  }

  // place inserts li in time order, with a day separator before the first
  // message of each day, and groups it with its neighbours.
  place(li, m) {
    let next = null;
    for (let el = this.log.lastElementChild; el; el = el.previousElementSibling) {
      if (!el._m) continue;
      if (order(el._m, m) <= 0) break;
      next = el;
    }
    let ref = next;
    const before = next?.previousElementSibling;
    if (before && before.classList.contains("day") && before.dataset.day !== li.dataset.day) ref = before;
    this.log.insertBefore(li, ref);
    const prev = this.prevMsg(li);
    const at = li.previousElementSibling;
    if ((!prev || prev.dataset.day !== li.dataset.day) && !(at?.classList.contains("day") && at.dataset.day === li.dataset.day)) {
      const sep = document.createElement("li");
      sep.className = "day";
      sep.dataset.day = li.dataset.day;
      const label = document.createElement("span");
      label.textContent = dayLabel(m.ts);
      sep.append(label);
      this.log.insertBefore(sep, li);
    }
    this.group(li);
    let n = li.nextElementSibling;
    while (n && !n._m) n = n.nextElementSibling;
    if (n) this.group(n);
  }

  prevMsg(li) {
    let p = li.previousElementSibling;
    while (p && !p._m) p = p.previousElementSibling;
    return p;
  }

  // group marks li as continuing the group of the message before it (same
  // side, same day, within a few minutes).
  group(li) {
    const prev = this.prevMsg(li);
    const cont = !!prev && !prev._m.kind && !li._m.kind && prev._m.dir === li._m.dir && prev._m.from === li._m.from &&
      prev.dataset.day === li.dataset.day && li._m.ts - prev._m.ts < GROUP_GAP;
    li.classList.toggle("cont", cont);
  }

  mark(peer, ids, state) {
    if (peer !== this.peer) return;
    for (const id of ids) {
      const it = this.items.get(`out-${id}`);
      const el = it?.li.querySelector(".mark");
      if (el && advances(it.m.state, state)) {
        it.m.state = state;
        const st = this.shown(state);
        el.dataset.state = st;
        el.textContent = MARK[st] ?? st;
      }
    }
    if ((state === "sent" || state === "delivered") && this.note.textContent.startsWith("No connection")) this.note.textContent = "";
  }

  // remark shows every mark again (read receipts turned on or off).
  remark() {
    for (const { li, m } of this.items.values()) {
      const el = li.querySelector(".mark");
      if (!el) continue;
      const st = this.shown(m.state);
      el.dataset.state = st;
      el.textContent = MARK[st] ?? st;
    }
  }

  async send() {
    const text = this.input.value;
    const peer = this.peer;
    if (!text.trim() || !peer) return;
    this.note.textContent = "";
    this.input.value = "";
    this.fit();
    try {
      const r = await this.hooks.sendText(peer, text);
      if (r?.queued && this.peer === peer) this.note.textContent = "No connection: the message goes by itself as soon as it is back.";
    } catch (e) {
      if (!this.input.value && this.peer === peer) { this.input.value = text; this.fit(); } // keep what was typed
      if (this.peer === peer) this.note.textContent = this.hooks.describe(e, peer);
    }
  }
}

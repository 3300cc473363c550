// History on every device in the page, as the Go client has it: the body of
// a history envelope — its JSON, read as encoding/json reads it and written
// as it writes it, and its checks — as client/im/histsync.go, and who sends
// what when as client/histsync.go. At each start the page asks the user's
// other devices for what it lacks ("want", naming each conversation's
// newest message); it answers a want of another device with "batch"
// envelopes sealed to that device alone (the last HISTORY_PER_CONVERSATION
// messages of each conversation from the time it named, with their states,
// and each group's log), and asks it back at most once every ASK_EVERY; it
// tells the other devices what it read ("read"). Only the devices the login
// server lists for the user now count. See docs/protocol.md ("History on
// every device") and docs/web.md.

import { b64, hex, utf8, fromUTF8, validUser, unb64Std } from "./util.js";
import * as im from "./im.js";
import * as G from "./group.js";
import { chunkOps } from "./groupchat.js";
import {
  IM_KIND_HISTORY as KIND_HISTORY, IM_HISTORY_WANT as WANT, IM_HISTORY_BATCH as BATCH, IM_HISTORY_READ as READ,
  IM_HISTORY_PER_CONVERSATION as PER_CONVERSATION, IM_MAX_HISTORY_MESSAGES as MAX_MESSAGES,
  IM_MAX_HISTORY_CONVERSATIONS as MAX_CONVERSATIONS, IM_MAX_HISTORY_BODY as MAX_BODY, IM_MAX_RECEIPT_IDS as MAX_RECEIPT_IDS,
  IM_MAX_GROUP_OPS as MAX_GROUP_OPS, IM_DIR_IN as DIR_IN, IM_DIR_OUT as DIR_OUT, IM_STATE_SENDING as SENDING,
  IM_STATE_SENT as SENT, IM_STATE_DELIVERED as DELIVERED, IM_STATE_READ as STATE_READ, IM_STATE_RECEIVED as RECEIVED,
} from "./wire.gen.js";

export { KIND_HISTORY, WANT, BATCH, READ, PER_CONVERSATION, MAX_MESSAGES, MAX_CONVERSATIONS, MAX_BODY };

// BATCH_JSON is the JSON a batch aims at before it is deflated (a batch that
// still does not fit an envelope is halved): client.historyBatchJSON.
export const BATCH_JSON = 192 << 10;
// ASK_EVERY is how often this device asks one other device of its user for
// history unasked: client.historyAskEvery.
export const ASK_EVERY = 60_000;

// RANK orders the states a message goes through (im.stateRank): a merge only
// moves a message forward.
const RANK = { [SENDING]: 0, [SENT]: 1, [DELIVERED]: 2, [STATE_READ]: 3, [RECEIVED]: 0 };
export const rank = (state) => RANK[state] ?? 0;

const bad = (what) => new im.IMError("bad-history", `history ${what}: malformed history batch`);

// validPeer is im.validPeer: a user, or a group's conversation.
export const validPeer = (p) => validUser(p) || G.isGroupPeer(p);

// checkSynced is im.checkSynced: a message of a batch ({id, peer, from, dir,
// dev (bytes), seq, ts, text, state}) as the history checks what it stores,
// its state fitting its direction. It returns why not, or "".
export function checkSynced(m) {
  if (!im.validID(m.id)) return `id ${JSON.stringify(m.id)}`;
  if (!validPeer(m.peer)) return `peer ${JSON.stringify(m.peer)}`;
  if (m.from !== "" && (!G.isGroupPeer(m.peer) || !validUser(m.from))) return `from ${JSON.stringify(m.from)}`;
  if (m.dir !== DIR_IN && m.dir !== DIR_OUT) return `direction ${JSON.stringify(m.dir)}`;
  if (m.dev.length !== 32) return "from device";
  try { im.checkText(m.text); } catch (e) { return e.message; }
  if (m.seq < 0 || m.ts < 0) return "seq or ts";
  const ok = m.dir === DIR_IN ? m.state === RECEIVED || m.state === STATE_READ
    : m.state === SENDING || m.state === SENT || m.state === DELIVERED || m.state === STATE_READ;
  return ok ? "" : `state ${JSON.stringify(m.state)} of a message ${m.dir}`;
}

// check is HistoryBody.check: the body's form ({t, since (object peer →
// ms), msgs, groups (Map id → operations), read}); each group operation is
// checked by the caller (verifyOp, when it is read).
export function check(b) {
  const nSince = Object.keys(b.since).length;
  switch (b.t) {
    case WANT:
      if (nSince > MAX_CONVERSATIONS || b.msgs.length || b.groups.size || b.read.length) throw bad(`${b.t}: fields`);
      for (const [p, ts] of Object.entries(b.since)) if (!validPeer(p) || ts < 0) throw bad(`${b.t}: conversation`);
      break;
    case BATCH:
      if (b.msgs.length > MAX_MESSAGES || nSince || b.read.length || b.groups.size > MAX_CONVERSATIONS) throw bad(`${b.t}: fields`);
      b.msgs.forEach((m, i) => {
        const why = checkSynced(m);
        if (why) throw bad(`batch: message ${i}: ${why}`);
      });
      for (const [id, ops] of b.groups) {
        if (!im.validID(id) || ops.length > MAX_GROUP_OPS) throw bad(`${b.t}: group`);
        for (const o of ops) if (!o || G.groupOf(o) !== id) throw bad(`${b.t}: group operation`);
      }
      break;
    case READ:
      if (!b.read.length || b.read.length > MAX_CONVERSATIONS || nSince || b.msgs.length || b.groups.size) throw bad(`${b.t}: fields`);
      for (const r of b.read) {
        if (!validPeer(r.peer) || !r.ids.length || r.ids.length > MAX_RECEIPT_IDS || !r.ids.every(im.validID)) throw bad(`${b.t}: read mark`);
      }
      break;
    default:
      throw bad("type");
  }
}

// ---- the body's JSON ----

// goJSON is JSON.stringify as encoding/json writes: <, >, & and U+2028,
// U+2029 escaped (they only ever stand inside strings).
export function goJSON(v) {
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

const sortedObject = (entries) => Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

// msgToWire is an im.SyncedMessage's JSON.
export function msgToWire(m) {
  const w = { id: m.id, peer: m.peer };
  if (m.from) w.from = m.from;
  return Object.assign(w, { dir: m.dir, dev: b64(m.dev), seq: m.seq, ts: m.ts, text: m.text, state: m.state });
}

// encode is the body's JSON as Go marshals im.HistoryBody (omitempty fields
// left out, map keys sorted), as bytes.
export function encode(b) {
  const w = { t: b.t };
  if (b.since && Object.keys(b.since).length) w.since = sortedObject(Object.entries(b.since));
  if (b.msgs?.length) w.msgs = b.msgs.map(msgToWire);
  if (b.groups?.size) w.groups = sortedObject([...b.groups].map(([id, ops]) => [id, ops.map(G.opToWire)]));
  if (b.read?.length) w.read = b.read.map((r) => ({ peer: r.peer, ids: r.ids }));
  return utf8(goJSON(w));
}

// decode reads a body's JSON as encoding/json fills an im.HistoryBody
// (field names in any case, null for empty, integers written as integers)
// and parses its operations (not yet verified): {t, since, msgs, groups,
// read}.
export async function decode(bytes) {
  let p;
  try { p = G.parseJSON(fromUTF8(bytes)); } catch { throw bad("body: not JSON"); }
  const badField = (k) => bad(`body: field ${k}`);
  const obj = (v, k) => {
    if (v === undefined || v === null) return {};
    if (typeof v !== "object" || Array.isArray(v)) throw badField(k);
    return v;
  };
  const fields = (v, k) => G.goFields(obj(v, k), k);
  const text = (s) => (s.isWellFormed() ? s : s.toWellFormed()); // a lone surrogate is U+FFFD, as Go reads it
  const top = fields(p, "body");
  const r = G.reader(top, badField);
  const since = Object.create(null); // a user may be called "constructor"
  const sinceObj = obj(top.get("since"), "since");
  const notInt = G.goFields(sinceObj, "since").notInts;
  for (const [k, v] of Object.entries(sinceObj)) {
    if (v !== null && (!Number.isSafeInteger(v) || notInt?.has(k.toLowerCase()))) throw badField("since");
    since[text(k)] = v ?? 0;
  }
  const msgs = r.list("msgs").map((x) => {
    const m = G.reader(fields(x, "msgs"), badField);
    return {
      id: m.str("id"), peer: m.str("peer"), from: m.str("from"), dir: m.str("dir"), dev: m.bytes("dev"),
      seq: m.int("seq"), ts: m.int("ts"), text: text(m.str("text")), state: m.str("state"),
    };
  });
  const groups = new Map();
  for (const [id, ops] of Object.entries(obj(top.get("groups"), "groups"))) {
    if (ops !== null && !Array.isArray(ops)) throw badField("groups");
    groups.set(id, await Promise.all((ops || []).map((o) => (o === null ? null : G.parseOp(o)))));
  }
  const read = r.list("read").map((x) => {
    const m = G.reader(fields(x, "read"), badField);
    const ids = m.list("ids").map((id) => { if (id !== null && typeof id !== "string") throw badField("ids"); return id ?? ""; });
    return { peer: m.str("peer"), ids };
  });
  return { t: r.str("t"), since, msgs, groups, read };
}

// openBody is im.openHistory past the envelope: the body of a history
// envelope that opened (bytes), its form checked and its operations
// verified against the login server's key.
export async function openBody(bytes, loginKey) {
  let b;
  try {
    b = await decode(bytes);
  } catch (e) {
    throw e instanceof im.IMError ? e : bad(`body: ${e.message}`);
  }
  check(b);
  for (const [id, ops] of b.groups) {
    for (const o of ops) {
      try { await G.verifyOp(o, loginKey); } catch (e) { throw new im.IMError("bad-history", `history batch: group ${id}: ${e.message}`); }
    }
  }
  return b;
}

// seal is im.SealHistory: body from sender s to this user's own devices in
// devices (this device is skipped); resolves with {env, recips}.
export async function seal(s, devices, body) {
  check({ since: {}, msgs: [], groups: new Map(), read: [], ...body });
  for (const ops of body.groups?.values() || []) for (const o of ops) await G.checkOp(o);
  const bytes = encode(body);
  if (bytes.length > MAX_BODY) throw new im.IMError("too-long", `history ${body.t}: ${bytes.length} bytes`);
  return im.seal(s, KIND_HISTORY, im.newMessageID(), s.user, 0, Date.now(), bytes, devices);
}

// chunk is client.chunkSynced: runs of messages whose JSON is about
// BATCH_JSON at most, and at most MAX_MESSAGES each.
export function chunk(ms) {
  const out = [];
  let start = 0, size = 0;
  ms.forEach((m, i) => {
    const n = utf8(goJSON(msgToWire(m))).length;
    if (i > start && (size + n > BATCH_JSON || i - start >= MAX_MESSAGES)) {
      out.push(ms.slice(start, i));
      start = i;
      size = 0;
    }
    size += n + 1;
  });
  if (start < ms.length) out.push(ms.slice(start));
  return out;
}

// ---- the page's part (client/histsync.go) ----

// HistorySync is the history half of a Messenger (m): m.hist keeps the
// messages (History.newest, forSync, merge, markSeen), m.groups the groups'
// logs, m.deliver carries envelopes. Hook (m.cfg): onHistory({added, states,
// read}) when a batch or a read changed the history: the messages added,
// the outgoing ones whose state moved ({peer, ids, state}) and the
// incoming ones now read ({peer, ids}).
export class HistorySync {
  constructor(m) {
    this.m = m;
    this.asked = new Map(); // device key (hex) → when this device last asked it
    this.done = new Set(); // ids of history envelopes handled (one may come twice)
    this.reads = new Map(); // peer → ids read here, to tell the other devices
    this.readTimer = null;
    this.sends = Promise.resolve(); // this device's history envelopes go one at a time, apart from what comes
    this.started = false;
    // What went and came, for the page's tests (and the curious).
    this.counts = { wantSent: 0, wantReceived: 0, batchSent: 0, batchReceived: 0, readSent: 0, readReceived: 0, merged: 0, twice: 0, refused: 0, left: 0 };
  }

  get user() { return this.m.user; }

  // later runs f after this device's history envelopes queued before
  // (not once signed out).
  later(f) {
    const p = this.sends.then(() => (this.m.stopped ? undefined : f()));
    this.sends = p.catch((e) => { if (!this.m.stopped) console.warn("history", e.message); });
    return p;
  }

  // ownDevices are this user's other devices, as the login server lists
  // them now (client.ownDevices).
  async ownDevices() {
    const mine = hex(this.m.cfg.pub);
    return (await this.m.devicesOf(this.user, true)).filter((d) => hex(d.key) !== mine);
  }

  // start asks the other devices for what this page lacks, once a page
  // start (at the first attach of the supernode link).
  start() {
    if (this.started) return Promise.resolve();
    this.started = true;
    return this.later(() => this.want(null)).catch(() => {}); // said by later
  }

  // want is client.wantHistory: to the other devices (or one of them), the
  // newest message of each conversation this page holds.
  async want(only) {
    let devs = await this.ownDevices();
    if (only) devs = devs.filter((d) => hex(d.key) === hex(only.key));
    if (!devs.length) return;
    const convs = (await this.m.hist.newest()).filter(([p, ts]) => validPeer(p) && ts >= 0);
    const since = Object.fromEntries(convs.slice(0, MAX_CONVERSATIONS));
    for (const d of devs) this.asked.set(hex(d.key), Date.now());
    await this.send(devs, { t: WANT, since });
    this.counts.wantSent++;
  }

  // send seals body to devs (devices of this user) and delivers it like a
  // message: live, else into their mailboxes.
  async send(devs, body) {
    const { env } = await seal(await this.m.sender(), devs, body);
    return this.m.deliver(env, devs, []);
  }

  // ownDevice is the record of key (hex) if it is one of this user's other
  // devices now, else null.
  async ownDevice(key) {
    return (await this.ownDevices()).find((d) => hex(d.key) === key) || null;
  }

  // opened is client.openedHistory: a history envelope (o, its body's bytes
  // in o.body) that opened. One from a device the login server does not
  // list for this user now is refused without a word (counted).
  async opened(o, via) {
    const m = this.m;
    if (this.done.has(o.id)) {
      this.counts.twice++;
      m.ack(o.from, o.id, via);
      return;
    }
    let d;
    try {
      d = await this.ownDevice(o.fromDevice);
    } catch (e) {
      console.warn("reading this user's devices for a history envelope", e.message);
      return; // not acknowledged: it comes again
    }
    if (!d) {
      this.counts.refused++;
      m.refuse(o.from, `history from device ${o.fromDevice.slice(0, 16)}: history not from one of this user's own devices`, true);
      return;
    }
    let b;
    try {
      b = await openBody(o.body, m.cfg.loginKey());
    } catch (e) {
      this.counts.refused++;
      m.refuse(o.from, e.message);
      return;
    }
    switch (b.t) {
      case WANT:
        this.counts.wantReceived++;
        this.later(async () => {
          await this.answer(d, b.since);
          const last = this.asked.get(hex(d.key));
          if (last === undefined || Date.now() - last > ASK_EVERY) await this.want(d);
        });
        break;
      case BATCH: {
        this.counts.batchReceived++;
        let r;
        try {
          r = await m.hist.merge(b.msgs.map((x) => ({ ...x, dev: hex(x.dev) })));
        } catch (e) {
          this.counts.refused++;
          m.refuse(o.from, e.message);
          return;
        }
        for (const [id, ops] of b.groups) {
          try { await m.groups.merge(id, ops); } catch (e) { console.warn("merging a group's log from another device", id, e.message); }
        }
        this.counts.merged += r.added.length;
        if (r.added.length || r.states.length || r.read.length) m.cfg.onHistory?.(r);
        break;
      }
      case READ: {
        this.counts.readReceived++;
        const read = [];
        for (const x of b.read) {
          const ids = await m.hist.markSeen(x.peer, x.ids);
          if (ids.length) read.push({ peer: x.peer, ids });
        }
        if (read.length) m.cfg.onHistory?.({ added: [], states: [], read });
        break;
      }
    }
    this.done.add(o.id);
    if (this.done.size > 4096) this.done.delete(this.done.values().next().value);
    m.ack(o.from, o.id, via);
  }

  // answer is client.answerHistory: device d gets the messages of each
  // conversation from the time its want named on (all of those it did not
  // name), at most PER_CONVERSATION each, and every group's log.
  async answer(d, since) {
    const all = await this.m.hist.forSync(since, PER_CONVERSATION);
    const batches = chunk(all).map((msgs) => ({ t: BATCH, msgs }));
    await this.m.groups.load();
    for (const [id, log] of this.m.groups.logs) {
      for (const c of chunkOps([...log.values()])) batches.push({ t: BATCH, groups: new Map([[id, c]]) });
    }
    for (const b of batches) await this.sendBatch(d, b);
  }

  // sendBatch sends one batch to d, halving it while it does not fit an
  // envelope. A message that does not fit one alone (a long text that
  // hardly deflates, its JSON longer than it) stays out, and the rest goes
  // (client.sendBatch gives up the rest of the answer there).
  async sendBatch(d, b) {
    try {
      await this.send([d], b);
      this.counts.batchSent++;
    } catch (e) {
      const tooLong = e.code === "too-long" || e.code === "bad";
      if (e.code === "too-long" && b.msgs?.length === 1) {
        console.warn("a message too long for a history batch stays out", b.msgs[0].peer, b.msgs[0].id);
        this.counts.left++;
        return;
      }
      if (!tooLong || !(b.msgs?.length >= 2)) throw e;
      const half = b.msgs.length >> 1;
      await this.sendBatch(d, { t: BATCH, msgs: b.msgs.slice(0, half) });
      await this.sendBatch(d, { t: BATCH, msgs: b.msgs.slice(half) });
    }
  }

  // read tells this user's other devices, soon (with what is read
  // meanwhile), that the messages ids of the conversation with peer were
  // read here: client.syncRead, whether or not read receipts go to
  // contacts.
  read(peer, ids) {
    if (!ids.length) return;
    if (!this.reads.has(peer)) this.reads.set(peer, []);
    this.reads.get(peer).push(...ids);
    if (this.readTimer) return;
    this.readTimer = setTimeout(() => {
      this.readTimer = null;
      const reads = this.reads;
      this.reads = new Map();
      this.later(() => this.sendReads(reads));
    }, 0);
  }

  async sendReads(reads) {
    const devs = await this.ownDevices();
    if (!devs.length) return;
    for (const [peer, ids] of reads) {
      for (let i = 0; i < ids.length; i += MAX_RECEIPT_IDS) {
        await this.send(devs, { t: READ, read: [{ peer, ids: ids.slice(i, i + MAX_RECEIPT_IDS) }] });
        this.counts.readSent++;
      }
    }
  }
}

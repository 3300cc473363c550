// Group chat in the messenger, as client/group.go and client/group_receive.go
// do it: each group's verified operations kept in this browser's history
// (IndexedDB) and replayed into its state; changes signed, stored and sent
// to whom they concern; messages sealed once per member and carried like
// 1:1 messages (a call's data channel, the supernode, else the mailbox, with
// the member's pass when they are not a contact); what comes verified,
// merged, shown once, held while its sender is not a member yet, and logs
// exchanged when digests differ or changes cross. See docs/protocol.md
// ("Groups") and docs/web.md ("Groups").

import { hex, eqBytes } from "./util.js";
import * as im from "./im.js";
import * as G from "./group.js";

import { IM_GROUP_FAN_OUT as FAN_OUT, IM_MAX_OPS_CHUNK as OPS_CHUNK, IM_MAX_HELD_MESSAGES as MAX_HELD } from "./wire.gen.js";

// chunkOps is client.chunkOps: runs of operations whose JSON is at most
// OPS_CHUNK bytes.
export function chunkOps(ops) {
  const out = [];
  let cur = [], size = 0;
  for (const o of ops) {
    const n = G.opSize(o);
    if (cur.length && size + n > OPS_CHUNK) { out.push(cur); cur = []; size = 0; }
    cur.push(o);
    size += n + 1;
  }
  if (cur.length) out.push(cur);
  return out;
}

// fanOut runs send(user) for every user of users, at most FAN_OUT at a
// time, and resolves with the errors by user.
async function fanOut(users, send) {
  const errs = new Map();
  let i = 0;
  const worker = async () => {
    while (i < users.length) {
      const u = users[i++];
      try { await send(u); } catch (e) { errs.set(u, e); }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FAN_OUT, users.length) }, worker));
  return errs;
}

// GroupChat is the group half of a Messenger (m): m.hist keeps the logs and
// messages, m.deliver carries envelopes. Hooks (m.cfg): onGroup(state,
// fresh) when an operation took effect (fresh: those that were new), and
// onMessage for group messages as for 1:1 ones.
export class GroupChat {
  constructor(m) {
    this.m = m;
    this.states = new Map(); // group id → state (group.js replay)
    this.logs = new Map(); // group id → Map(op id → op): the stored operations
    this.held = new Map(); // group id → [{o, via}]: messages from senders not (yet) members
    this.nHeld = 0;
    this.synced = new Map(); // group id, user (, reply) → when this device last sent them its log
    this.lock = Promise.resolve(); // merges, one at a time
    this.loading = null;
    this.counts = { syncSent: 0, syncReceived: 0, held: 0 }; // for the page's tests
  }

  get user() { return this.m.user; }

  // load replays every stored log once.
  load() {
    this.loading ||= (async () => {
      for (const [id, recs] of await this.m.hist.groupOps()) {
        const log = new Map();
        for (const r of recs) {
          try { const o = await G.parseOp(r.op); log.set(o.id, o); } catch (e) { console.warn("a stored group operation", e.message); }
        }
        this.logs.set(id, log);
        try { this.states.set(id, await G.replay(id, [...log.values()])); } catch { /* no create yet */ }
      }
    })();
    return this.loading;
  }

  log(id) { return [...(this.logs.get(id)?.values() || [])]; }

  // list is the groups this browser knows, by name.
  list() {
    return [...this.states.values()].sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()) || (a.id < b.id ? -1 : 1));
  }

  // passFor is client.passFor: a pass that lets this user reach user, from
  // a group both are in, or null.
  passFor(user) {
    for (const g of this.states.values()) {
      if (g.passes.has(user) && G.isMember(g, this.user)) return g.passes.get(user);
    }
    return null;
  }

  // merge stores verified operations of group id and replays its log:
  // resolves with {g (null without a create yet), added (the new ones)}.
  merge(id, ops) {
    const p = this.lock.then(() => this.mergeNow(id, ops));
    this.lock = p.catch(() => {});
    return p;
  }

  async mergeNow(id, ops) {
    await this.load();
    // New is what this page did not hold (not what the history lacked, as
    // in client.merge): another tab of the same user may have stored it
    // already, and this page must still replay it.
    const log = this.logs.get(id) || new Map();
    const fresh = new Map();
    for (const o of G.admit([...log.values()], ops)) if (!log.has(o.id)) fresh.set(o.id, o);
    const added = [...fresh.values()];
    await this.m.hist.addGroupOps(id, added); // stores what the history lacks; refuses a log over MAX_OPS
    for (const o of added) log.set(o.id, o);
    this.logs.set(id, log);
    let g = this.states.get(id);
    if (added.length || !g) {
      try {
        g = await G.replay(id, this.log(id));
      } catch (e) {
        return { g: null, added, err: e }; // no create yet: kept until it comes
      }
      this.states.set(id, g);
    }
    const held = this.held.get(id) || [];
    const ok = (h) => G.isMember(g, h.o.from) && G.isMember(g, this.user);
    const release = held.filter(ok);
    if (release.length) {
      this.held.set(id, held.filter((h) => !ok(h)));
      this.nHeld -= release.length;
    }
    const took = g.applied.filter((o) => fresh.has(o.id));
    if (took.length) this.m.cfg.onGroup?.(g, took);
    for (const h of release) await this.store(h.o, h.via);
    return { g, added };
  }

  // ---- changes ----

  // create is Session.CreateGroup: a group named name with this user (its
  // admin) and members, who must be this user's contacts.
  async create(name, members) {
    G.checkName(name);
    members = [...new Set(members)].filter((u) => u !== this.user).sort();
    if (members.length > G.MAX_MEMBERS - 1) {
      throw new G.GroupError("full", `A group has at most ${G.MAX_MEMBERS} members, you included.`);
    }
    for (const u of members) await this.addable(u);
    const op = await G.signOp(await this.m.sender(), { clock: 1, type: G.OP_CREATE, name, members });
    return this.applyOwn(op, null);
  }

  // change makes one change (add, remove, leave, rename, admin) to group id.
  async change(id, type, target = "", name = "") {
    await this.load();
    const before = this.states.get(id);
    if (!before) throw new G.GroupError("unknown-group", "This browser does not know that group.");
    G.check(before, this.user, type, target);
    if (type === G.OP_RENAME) G.checkName(name);
    if (type === G.OP_ADD) await this.addable(target);
    const op = await G.signOp(await this.m.sender(), { group: id, clock: before.clock + 1, type, target, name });
    return this.applyOwn(op, before);
  }

  // addable is client.checkAddable: a user whose device list this user may
  // read as a contact (the pass it signs for them must admit the others).
  async addable(user) {
    try {
      await this.m.devicesOf(user, true, false);
    } catch (e) {
      if (e.status === 403) throw new G.GroupError("not-contact", `Only your contacts can be added: ${user} is not your contact.`);
      if (e.status === 404) throw new G.GroupError("unknown-user", `There is no user called ${user}.`);
      throw e;
    }
  }

  // applyOwn is client.applyOwn: stores an operation of this device and
  // sends it — the whole log to a user it adds and to this user's other
  // devices, the operation alone to everyone else it concerns.
  async applyOwn(op, before) {
    const id = G.groupOf(op);
    const { g: after } = await this.merge(id, [op]);
    const log = this.log(id);
    const whole = new Set([this.user]);
    if (op.type === G.OP_ADD) whole.add(op.target);
    if (op.type === G.OP_CREATE) op.members.forEach((u) => whole.add(u));
    const to = [...new Set([...after.members, ...(before?.members || []), ...(op.target ? [op.target] : []), this.user])].sort();
    const errs = await fanOut(to, (u) => this.sendOps(u, id, G.BODY_OPS, whole.has(u) ? log : [op], after.digest, false));
    for (const [u, e] of errs) console.warn("sending a group change to", u, e.message);
    return after;
  }

  // sendOps sends ops of group id to user to, in as many envelopes as they need.
  async sendOps(to, id, t, ops, digest, reply) {
    const chunks = chunkOps(ops);
    if (!chunks.length) chunks.push([]); // a sync of an empty log asks for the other's
    for (const c of chunks) await this.sendBody(to, { g: id, t, ops: c, digest, reply });
  }

  // sendBody seals body to user to's devices (to this user's other devices
  // when to is this user) and delivers it like a 1:1 message; with no
  // device to send to (only this one), it does nothing.
  async sendBody(to, body) {
    let devs = await this.m.devicesOf(to);
    if (!devs.length) devs = await this.m.devicesOf(to, true);
    if (to === this.user) {
      devs = devs.filter((d) => !eqBytes(d.key, this.m.cfg.pub));
      if (!devs.length) return { delivered: false, stored: false, none: true };
    }
    const { env } = await G.sealGroup(await this.m.sender(), to, devs, body);
    return this.m.deliver(env, devs, []);
  }

  // ---- messages ----

  // send is Session.SendGroupMessage: text to every member of group id,
  // stored first ("sending"), then "sent" once every member has it on a
  // device or in a mailbox, or could not be reached. One message at a time,
  // with the 1:1 ones (in order).
  send(id, text) {
    const p = this.m.sending.then(() => this.sendNow(id, text));
    this.m.sending = p.catch(() => {});
    return p;
  }

  async sendNow(id, text) {
    await this.load();
    const g = this.states.get(id);
    if (!g) throw new G.GroupError("unknown-group", "This browser does not know that group.");
    if (!G.isMember(g, this.user)) throw new G.GroupError("not-member", `You are not a member of “${g.name}” any more.`);
    im.checkText(text);
    const peer = G.groupPeer(id);
    const seq = await this.m.hist.nextSeq(peer);
    const msg = { peer, dir: "out", id: im.newMessageID(), from: this.user, seq, ts: Date.now(), text, state: "sending", fromDevice: hex(this.m.cfg.pub) };
    await this.m.hist.add(msg);
    this.m.cfg.onMessage(msg, "");
    return this.deliverMessage(id, msg);
  }

  // deliverMessage sends a stored message of this device to the members
  // (again, for one still "sending": the envelope ids are the same).
  async deliverMessage(id, msg) {
    await this.load();
    const g = this.states.get(id);
    const fail = async (e) => {
      const done = await this.m.hist.setState(msg.peer, [msg.id], "failed");
      if (done.length) this.m.cfg.onState(msg.peer, done, "failed");
      throw e;
    };
    if (!G.isMember(g, this.user)) return fail(new G.GroupError("not-member", "You are not a member of this group any more."));
    const to = [...g.members.filter((u) => u !== this.user), this.user];
    const res = { id: msg.id, members: to.length - 1, delivered: 0, stored: 0, failed: new Map(), queued: false };
    const body = { g: id, t: G.BODY_MESSAGE, mid: msg.id, seq: msg.seq, text: msg.text, digest: g.digest };
    const errs = await fanOut(to, async (u) => {
      const r = await this.sendBody(u, body);
      if (u === this.user) return;
      if (r.delivered) res.delivered++;
      else if (r.stored) res.stored++;
    });
    for (const [u, e] of errs) if (u !== this.user) res.failed.set(u, e);
    if (res.members > 0 && res.failed.size === res.members) {
      if ([...res.failed.values()].every((e) => this.m.retryLater(e))) {
        this.m.waiting = true; // stays "sending": it goes again by itself
        res.queued = true;
        return res;
      }
      return fail(res.failed.values().next().value);
    }
    const done = await this.m.hist.setState(msg.peer, [msg.id], "sent");
    if (done.length) this.m.cfg.onState(msg.peer, done, "sent");
    return res;
  }

  // ---- receiving ----

  // opened is client.openedGroup: a group envelope (o, its body verified in
  // o.group) that opened.
  async opened(o, via) {
    const b = o.group;
    const me = this.user;
    // A group's receipts only pace a live send: one read from a mailbox is
    // not acknowledged (nobody waits for it), as client.openedGroup does.
    const ack = () => { if (via !== "mailbox") this.m.ack(o.from, o.id, via); };
    if (b.t === G.BODY_SYNC) this.counts.syncReceived++;
    if (b.t === G.BODY_OPS || b.t === G.BODY_SYNC) {
      const myMax = await this.ownClock(b.g);
      let r;
      try {
        r = await this.merge(b.g, b.ops);
      } catch (e) {
        console.warn("storing a group's operations from", o.from, e.message);
        if (e.code !== "log-full") return; // not acknowledged: it comes again
        r = { g: null, added: [] };
      }
      ack();
      if (o.from === me) return;
      const digest = r.g?.digest || "";
      if (b.t === G.BODY_SYNC && !b.reply && digest !== b.digest) this.syncTo(b.g, o.from, true, false);
      else if (digest !== b.digest) this.syncTo(b.g, o.from, false, false);
      // An operation made without seeing one of mine (the same clock or
      // lower): its author and those it reached may lack mine, so every
      // member gets this device's log.
      if (myMax > 0 && r.g && r.added.some((a) => a.by !== me && a.clock <= myMax)) {
        for (const u of r.g.members) if (u !== me) this.syncTo(b.g, u, false, true);
      }
      return;
    }
    ack();
    await this.load();
    await this.lock; // the state as the merges before it left it
    const g = this.states.get(b.g);
    // From a user this page does not know as a member, or to this user
    // while it knows itself outside the group: held, in case an operation
    // that changes that is on its way.
    if (o.from !== me && (!G.isMember(g, o.from) || !G.isMember(g, me))) {
      this.hold(o, via);
      this.syncTo(b.g, o.from, false, false);
      return;
    }
    await this.store(o, via);
    if (o.from !== me && g.digest !== b.digest) this.syncTo(b.g, o.from, false, false);
  }

  // ownClock is the highest clock of this user's operations in group id (0 if none).
  async ownClock(id) {
    await this.load();
    let c = 0;
    for (const o of this.states.get(id)?.applied || []) if (o.by === this.user) c = Math.max(c, o.clock);
    return c;
  }

  // hold keeps a message whose sender is not a member as this device knows
  // the group, until an operation that makes them one comes.
  hold(o, via) {
    if (this.nHeld >= MAX_HELD) {
      for (const [id, hs] of this.held) {
        if (hs.length) { hs.shift(); this.nHeld--; this.held.set(id, hs); break; }
      }
    }
    const id = o.group.g;
    if (!this.held.has(id)) this.held.set(id, []);
    this.held.get(id).push({ o, via });
    this.nHeld++;
    this.counts.held++;
  }

  // store keeps a group message once and shows it.
  async store(o, via) {
    const b = o.group;
    const m = {
      peer: G.groupPeer(b.g), dir: o.from === this.user ? "out" : "in", id: b.mid, from: o.from, fromDevice: o.fromDevice,
      seq: b.seq, ts: o.ts, text: b.text, state: o.from === this.user ? "sent" : "received",
    };
    if (m.dir === "in") {
      if (!this.m.cfg.isReading?.(m.peer)) m.unread = true;
      else m.seen = true;
    }
    if (await this.m.hist.add(m)) {
      this.m.cfg.onMessage(m, via);
      if (m.seen) this.m.history?.read(m.peer, [m.id]); // read on screen: read on the user's other devices
    }
  }

  // syncTo sends this device's log of group id to user, in the background:
  // at most once every SYNC_INTERVAL per group and user unless now.
  syncTo(id, user, reply, now) {
    const key = `${id}\u0000${user}${reply ? "\u0000reply" : ""}`;
    const last = this.synced.get(key);
    if (!now && last !== undefined && Date.now() - last < G.SYNC_INTERVAL) return;
    this.synced.set(key, Date.now());
    this.counts.syncSent++;
    const ops = this.log(id);
    const digest = this.states.get(id)?.digest || "";
    this.sendOps(user, id, G.BODY_SYNC, ops, digest, reply).catch((e) => console.debug("sending a group's log to", user, e.message));
  }
}

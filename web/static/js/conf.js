// Conference calls in the page (docs/conference.md): a full mesh of ordinary
// calls ("legs", js/phone.js's Call, with the conference's id on the offer),
// one to every other participating device, no host. The page sends its own
// microphone on every leg and mixes what the legs bring with WebAudio. The
// "conf" signals (wire/signal/conf.go) invite, tell who was invited, who
// declined, that one of this user's devices joined, the roster a member
// gives a newcomer, mute and unmute, and that a 1:1 call became a
// conference's first leg.
//
// Who may dial in: a leg's offer (which names the device it calls, in
// answerer) is answered at once, without ringing, when this page is in that
// conference and the caller is a member (from an invitation's or a roster's
// list) or its user was invited (by an "invite" this page sent, or as an
// invitation, a roster or an "invited" from a member says; an offer that
// comes first waits up to 3 s for it). Otherwise "refused: not invited to
// this conference"; with 7 legs already, "refused: conference full (8 of
// 8)". A leg offer for a conference this page is not in, or for another
// device, is ignored (another device of the same user may be the one in
// it), as the Go client does. Only a device this page has a leg with speaks
// for the conference (invited, roster, mute, unmute). Glare: of two legs
// two devices offer each other at once, the one offered by the smaller
// "user/device" stays.

import { randomHex, validUser } from "./util.js";
import { CallError, Incoming } from "./phone.js";
import { SIGNAL_CONF_GLARE as GLARE, SIGNAL_MAX_CONF_MEMBERS as MAX_MEMBERS } from "./wire.gen.js";

const INVITE_RING = 30_000; // an invitation rings this long (ms)
const INVITED_WAIT = 3000; // an offer from a user not known to be invited waits this long for the "invited"
const ALONE_FOR = 35_000; // a conference nobody joined ends after this long
const SPEAKING_DB = -45; // a voice above this (dBFS, RMS) is speaking...
const SPEAKING_HOLD = 300; // ...for this long (ms)
const LEVEL_EVERY = 50; // ms between level readings
const LEFT = "left the conference";
const NOT_INVITED = "refused: not invited to this conference";
const FULL = `refused: conference full (${MAX_MEMBERS} of ${MAX_MEMBERS})`;
const ROSTER_AGAIN = 1000; // a newcomer's roster goes again after this long (ms), in case the first overtook its leg

// groupWord is a group's name as an invitation carries it (one word).
export const groupWord = (name) => (name || "").replace(/[ ,\r\n]/g, "_").slice(0, 256);

export const memberKey = (user, device) => `${user}/${device}`;

export function splitMember(m) {
  const i = typeof m === "string" ? m.indexOf("/") : -1;
  if (i <= 0 || i === m.length - 1) return null;
  return { user: m.slice(0, i), device: m.slice(i + 1) };
}

// dBFS is the RMS level of samples in dB below full scale.
function dBFS(buf) {
  let s = 0;
  for (const v of buf) s += v * v;
  return 10 * Math.log10(s / buf.length + 1e-12);
}

// Level follows one voice: its analyser and when it was last above
// SPEAKING_DB.
class Level {
  constructor(ctx, node) {
    this.an = ctx.createAnalyser();
    this.an.fftSize = 1024; // about 21 ms at 48 kHz
    this.buf = new Float32Array(this.an.fftSize);
    this.loudAt = 0;
    node.connect(this.an);
  }

  read(now) {
    this.an.getFloatTimeDomainData(this.buf);
    if (dBFS(this.buf) > SPEAKING_DB) this.loudAt = now;
  }

  speaking(now) { return now - this.loudAt < SPEAKING_HOLD; }
}

// Invitation is a "conf" invite waiting for Join or Decline.
export class Invitation {
  constructor(confs, sig) {
    this.confs = confs;
    this.id = sig.conf.id;
    this.from = sig.from;
    this.fromDevice = sig.device;
    this.members = (sig.conf.members || []).filter((m) => splitMember(m));
    this.users = sig.conf.users || [];
    this.group = sig.conf.group || "";
    this.at = Date.now();
    this.handled = false;
    this.timer = setTimeout(() => this.gone("missed"), INVITE_RING);
  }

  // who: the other users in the conference, the inviter first.
  get who() {
    const me = this.confs.phone.id.user;
    const users = [this.from];
    for (const m of this.members) {
      const u = splitMember(m).user;
      if (u !== me && !users.includes(u)) users.push(u);
    }
    return users;
  }

  get groupName() { return this.group.replace(/_/g, " "); }

  // text is what the page shows: "Conference with alice, bob (group club)".
  get text() {
    return `Conference with ${this.who.join(", ")}${this.group ? ` (group ${this.groupName})` : ""}`;
  }

  take() {
    if (this.handled) return false;
    this.handled = true;
    clearTimeout(this.timer);
    this.confs.invites.delete(this.id);
    return true;
  }

  gone(why) {
    if (!this.take()) return;
    this.confs.ui.onInviteGone?.(this, why);
  }

  join() { return this.confs.join(this); }

  decline() {
    if (!this.take()) return;
    this.confs.sendAsync(this.from, this.id, "declined");
    this.confs.ui.onInviteGone?.(this, "declined");
  }
}

// Conference is the one this page is in.
export class Conference {
  constructor(confs, id, mic, group = "") {
    this.confs = confs;
    this.id = id;
    this.me = memberKey(confs.phone.id.user, confs.phone.id.device);
    this.group = group;
    this.mic = mic; // the microphone; each leg sends a clone of it
    this.legs = new Map(); // "user/device" → Call
    this.dialing = new Set(); // "user/device" being dialled (before its Call exists)
    this.pending = new Set(); // "user/device" whose offer waits for an "invited"
    this.answering = new Set(); // "user/device" whose offer is being answered (before its leg is adopted)
    this.members = new Set(); // "user/device" learned from the invitation and rosters
    this.invited = new Set(); // users invited (by this page, or "invited" signals)
    this.waiters = []; // offers waiting for an "invited"
    this.mutedBy = new Map(); // "user/device" → muted (mute, unmute)
    this.muted = false;
    this.held = false;
    this.startedAt = Date.now();
    this.ended = false;
    this.everJoined = false; // a leg has connected
    this.audio = new Map(); // Call → {el, src, level}
    const ctx = confs.phone.audioContext();
    this.ctx = ctx;
    this.mix = ctx.createGain(); // every leg's voice, played
    this.mix.connect(ctx.destination);
    try { this.self = new Level(ctx, ctx.createMediaStreamSource(mic)); } catch { this.self = null; }
    this.levelTimer = setInterval(() => this.readLevels(), LEVEL_EVERY);
    this.aloneTimer = setTimeout(() => { if (!this.everJoined && this.live().length === 0) confs.end(this, "Nobody joined the conference."); }, ALONE_FOR);
    this.ui = this.legUI();
  }

  // live is the legs not ended (connected or connecting).
  live() { return [...this.legs.values()].filter((c) => !c.ended); }

  connected() { return this.live().filter((c) => c.started); }

  keyOf(c) { return memberKey(c.peer, c.peerDevice); }

  // users is every other user with a leg.
  users() { return [...new Set(this.live().map((c) => c.peer))]; }

  readLevels() {
    const now = performance.now();
    let changed = false;
    if (this.self && !this.muted) this.self.read(now);
    for (const a of this.audio.values()) {
      const was = a.level.speaking(now);
      a.level.read(now);
      if (a.level.speaking(now) !== was) changed = true;
    }
    if (changed) this.confs.ui.onChange?.(this);
  }

  // legUI is the callbacks of this conference's legs (phone.js's ui).
  legUI() {
    const phoneUI = this.confs.phone.ui;
    return {
      onCallState: (c) => this.onLegState(c),
      onCallEnded: (c) => this.onLegEnded(c),
      onCallStats: () => this.confs.ui.onChange?.(this),
      onRemoteStream: (c, stream) => this.addVoice(c, stream),
      onChannelMessage: (c, data) => phoneUI.onChannelMessage?.(c, data),
      onNotice: (msg) => phoneUI.onNotice?.(msg),
    };
  }

  // adopt makes c (a call in progress, or a leg just made) one of this
  // conference's legs; false when it is not wanted (another leg with that
  // device is already up: glare lost).
  adopt(c) {
    const key = this.keyOf(c);
    const cur = this.legs.get(key);
    if (cur === c) return true;
    if (this.ended || (cur && !cur.ended)) {
      c.glare = true;
      c.hangup(GLARE);
      return false;
    }
    c.ui = this.ui;
    c.conf = this.id;
    this.legs.set(key, c);
    this.members.add(key);
    c.setMuted(this.muted);
    if (c.remoteStream) this.addVoice(c, c.remoteStream);
    return true;
  }

  onLegState(c) {
    if (!this.adopt(c) || c.ended) return;
    if (c.started && !c.confStarted) {
      c.confStarted = true;
      this.everJoined = true;
      if (this.held) c.setHeld(true);
      if (this.muted) this.confs.sendAsync(c.peer, this.id, "mute");
      if (!c.outgoing) { // a newcomer: it dials every member it has no leg with
        this.sendRoster(c);
        setTimeout(() => { if (!c.ended && !this.ended) this.sendRoster(c); }, ROSTER_AGAIN);
      }
    }
    this.confs.ui.onChange?.(this);
  }

  // sendRoster tells the device of leg c who is in (this page and its
  // connected legs) and who was invited.
  sendRoster(c) {
    const key = this.keyOf(c);
    const members = [this.me, ...this.connected().map((l) => this.keyOf(l)).filter((k) => k !== key)].slice(0, MAX_MEMBERS);
    this.confs.sendAsync(c.peer, this.id, "roster", { members, users: this.invitedUsers() });
  }

  // invitedUsers is the users invited so far (at most MAX_MEMBERS).
  invitedUsers() { return [...this.invited].sort().slice(-MAX_MEMBERS); }

  onLegEnded(c) {
    const key = this.keyOf(c);
    if (this.legs.get(key) === c) this.legs.delete(key);
    this.dropVoice(c);
    this.mutedBy.delete(key);
    if (this.ended) return;
    if (c.started && !c.glare && c.reason !== LEFT) {
      this.confs.ui.onNotice?.(c.reason === "remote hangup" ? `${c.peer} left the conference.` : c.error || `The leg with ${c.peer} ended.`, "info");
    }
    if (this.everJoined && this.live().length === 0 && this.dialing.size === 0 && this.pending.size === 0 && this.answering.size === 0) {
      this.confs.end(this, "Everyone else left the conference.");
      return;
    }
    this.confs.ui.onChange?.(this);
  }

  // addVoice mixes a leg's remote stream into the conference's output.
  // Chromium feeds a remote WebRTC stream to WebAudio only while a media
  // element plays it too: a muted one.
  addVoice(c, stream) {
    if (this.ended || c.ended) return;
    this.dropVoice(c);
    const el = new Audio();
    el.muted = true;
    el.srcObject = stream;
    el.play().catch(() => {});
    const src = this.ctx.createMediaStreamSource(stream);
    src.connect(this.mix);
    this.audio.set(c, { el, src, level: new Level(this.ctx, src) });
  }

  dropVoice(c) {
    const a = this.audio.get(c);
    if (!a) return;
    this.audio.delete(c);
    a.src.disconnect();
    a.el.srcObject = null;
  }

  // roster is who is in (this page and every device with a connected leg)
  // as the CLI's --json "conference" event lists them.
  roster() {
    const now = performance.now();
    const out = [{ user: this.confs.phone.id.user, device: this.confs.phone.id.device, self: true, speaking: !this.muted && !this.held && !!this.self?.speaking(now), muted: this.muted }];
    for (const c of this.connected()) {
      const key = this.keyOf(c);
      const a = this.audio.get(c);
      out.push({ user: c.peer, device: c.peerDevice, speaking: !!a?.level.speaking(now), muted: !!this.mutedBy.get(key), path: c.path || "", relay: c.relay || "", held: !!c.peerHeld });
    }
    return out;
  }
}

// Conferences is a signed-in page's conference calls: at most one at a time
// (and none beside a 1:1 call), and the invitations ringing. phone: the
// Phone; ui: {onInvite(inv), onInviteGone(inv, why), onChange(conf),
// onEnded(conf, why), onNotice(msg, kind), releaseCall(call) (a 1:1 call
// becomes a leg: the call bar lets it go)}.
export class Conferences {
  constructor(phone, ui) {
    this.phone = phone;
    this.ui = ui;
    this.current = null;
    this.invites = new Map(); // id → Invitation
    this.capture = null; // the test capture of the mixed output
    this.autoCapture = false; // tests: capture from the moment a conference opens
    this.lastCapture = { startedAt: 0, rate: 0 };
    this.captured = null; // a capture the conference's end stopped, until read
    this.glares = 0; // legs given up to glare (for tests)
    phone.conf = this;
  }

  busy() { return !!this.current; }

  // send sends a "conf" signal (op, and fields) to user.
  send(to, id, op, fields = {}, callID = randomHex(8)) {
    const conf = { id, op };
    for (const k of ["group", "users", "members"]) {
      const v = fields[k];
      if (v && v.length) conf[k] = v;
    }
    const sig = { kind: "conf", call_id: callID, to, conf };
    return this.phone.sendSignal(sig);
  }

  sendAsync(to, id, op, fields, callID) {
    this.send(to, id, op, fields, callID).catch((e) => console.debug("conf signal not delivered", op, to, e.message));
  }

  onSignal(sig) {
    const me = this.phone.id;
    if (sig.from === me.user && sig.device === me.device) return; // my own, back from my user
    const op = sig.conf.op;
    const id = sig.conf.id;
    let c = this.current?.id === id ? this.current : null;
    if (c && ["invited", "roster", "mute", "unmute"].includes(op)) {
      const leg = c.legs.get(memberKey(sig.from, sig.device));
      if (!leg || leg.ended) c = null; // only members speak for the conference
    }
    switch (op) {
      case "invite": {
        if (c || this.invites.has(id) || sig.from === me.user) return;
        if (!(sig.conf.members || []).includes(memberKey(sig.from, sig.device))) return; // the inviter is a member
        if (this.current || this.phone.calls.size > 0 || this.phone.incoming.size > 0) {
          console.info("conference invitation while busy: ignored (another device may take it)");
          return;
        }
        const inv = new Invitation(this, sig);
        this.invites.set(id, inv);
        this.ui.onInvite?.(inv);
        return;
      }
      case "joined":
        if (sig.from === me.user) this.invites.get(id)?.gone("joined on another device");
        return;
      case "declined":
        if (c) {
          c.invited.delete(sig.from);
          this.ui.onNotice?.(`${sig.from} declined the conference.`, "info");
          this.ui.onChange?.(c);
        }
        return;
      case "invited": {
        if (!c) return;
        for (const u of sig.conf.users || []) c.invited.add(u);
        const w = c.waiters;
        c.waiters = [];
        for (const f of w) f();
        this.ui.onChange?.(c);
        return;
      }
      case "roster": {
        if (!c) return;
        for (const u of sig.conf.users || []) c.invited.add(u);
        const dial = [];
        for (const m of sig.conf.members || []) {
          const mm = splitMember(m);
          if (!mm || m === c.me) continue;
          c.members.add(m);
          c.invited.add(mm.user); // a member's member
          dial.push(m);
        }
        const w = c.waiters;
        c.waiters = [];
        for (const f of w) f();
        for (const m of dial) this.dial(c, m);
        return;
      }
      case "mute": case "unmute":
        if (!c) return;
        c.mutedBy.set(memberKey(sig.from, sig.device), op === "mute");
        this.ui.onChange?.(c);
        return;
      case "upgrade": {
        if (this.current) return;
        const call = this.phone.calls.get(sig.call_id);
        if (!call || call.ended || !call.started || call.peer !== sig.from || call.peerDevice !== sig.device) return;
        this.fromCall(id, call);
        return;
      }
    }
  }

  // allowed: may the device key of user dial into c?
  allowed(c, user, key) {
    return c.members.has(key) || c.invited.has(user) || c.connected().some((l) => l.peer === user);
  }

  async onOffer(sig) {
    const c = this.current;
    const id = sig.conf.id;
    const me = this.phone.id;
    if (!c || c.id !== id) { console.info("a leg offer for a conference this page is not in: ignored"); return; }
    if (sig.answerer && sig.answerer !== me.device) return; // for another device of mine
    if (sig.from === me.user && sig.device === me.device) return;
    const key = memberKey(sig.from, sig.device);
    const decline = (reason) => this.phone.sendAsync({ kind: "decline", call_id: sig.call_id, to: sig.from, reason });
    const cur = c.legs.get(key);
    if (c.pending.has(key) || (cur && !cur.ended && !cur.outgoing)) { this.glares++; decline(GLARE); return; }
    if ((cur && !cur.ended && cur.outgoing && !cur.started) || c.dialing.has(key)) {
      this.glares++;
      if (c.me < key) { decline(GLARE); return; } // my offer stays
      if (cur) { cur.glare = true; cur.hangup(GLARE); } // theirs stays; a dial not yet placed is dropped at adopt
    } else if (cur && !cur.ended) {
      cur.glare = true;
      cur.hangup("replaced by a new leg"); // the device dialled again: its old leg is gone
    }
    if (c.live().filter((l) => l !== cur).length >= MAX_MEMBERS - 1) { decline(FULL); return; }
    if (!this.allowed(c, sig.from, key)) {
      c.pending.add(key);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, INVITED_WAIT);
        c.waiters.push(() => { clearTimeout(t); resolve(); });
      });
      c.pending.delete(key);
      if (c.ended || this.current !== c) return;
      if (!this.allowed(c, sig.from, key)) {
        console.warn("refusing a leg from", key, "(not invited)");
        decline(NOT_INVITED);
        return;
      }
      if (c.live().length >= MAX_MEMBERS - 1) { decline(FULL); return; }
    }
    const inc = new Incoming(this.phone, sig);
    this.phone.incoming.set(sig.call_id, inc);
    c.answering.add(key); // a dial to key meanwhile would cross this leg
    try {
      await inc.answer({ conf: c.id, mic: c.mic.clone(), ui: c.ui });
    } catch (e) {
      console.info("conference leg from", key, "did not connect:", e.message);
    } finally {
      c.answering.delete(key);
    }
  }

  // dial offers a leg to the device key of c, unless there is one.
  async dial(c, key) {
    const m = splitMember(key);
    if (!m || key === c.me || c.ended || c.dialing.has(key) || c.pending.has(key) || c.answering.has(key)) return;
    const cur = c.legs.get(key);
    if (cur && !cur.ended) return;
    if (c.live().length >= MAX_MEMBERS - 1) { this.ui.onNotice?.(`The conference is full: ${m.user} cannot be added.`); return; }
    c.dialing.add(key);
    try {
      await this.phone.call(m.user, { conf: c.id, device: m.device, mic: c.mic.clone(), ui: c.ui });
    } catch (e) {
      const glare = e.message?.includes(GLARE);
      if (!glare && !c.ended && e.kind !== "cancelled") this.ui.onNotice?.(e instanceof CallError ? e.message : `Could not reach ${m.user}: ${e.message}`);
    } finally {
      c.dialing.delete(key);
    }
    if (!c.ended && c.everJoined && c.live().length === 0 && c.dialing.size === 0 && c.pending.size === 0 && c.answering.size === 0) {
      this.end(c, "Everyone else left the conference.");
    }
  }

  // open makes the page's conference (the microphone first: a click).
  async open(id, group = "") {
    if (this.current) throw new CallError("busy", "Leave the conference first.");
    if (this.phone.busy()) throw new CallError("busy", "Hang up the call in progress first.");
    this.phone.audioContext();
    const mic = await this.phone.microphone();
    if (this.current || this.phone.busy()) { mic.getTracks().forEach((t) => t.stop()); throw new CallError("busy", "Hang up the call in progress first."); }
    const c = new Conference(this, id, mic, group);
    this.current = c;
    if (this.autoCapture) this.startCapture();
    this.ui.onChange?.(c);
    return c;
  }

  // join takes an invitation: "joined" to this user's other devices, then
  // a leg to every member it names.
  async join(inv) {
    if (!inv.take()) throw new CallError("cancelled", "The invitation is over.");
    this.ui.onInviteGone?.(inv, "joining");
    let c;
    try {
      c = await this.open(inv.id, inv.group);
    } catch (e) {
      this.sendAsync(inv.from, inv.id, "declined");
      throw e;
    }
    this.sendAsync(this.phone.id.user, inv.id, "joined");
    c.invited.add(this.phone.id.user);
    for (const u of inv.users) c.invited.add(u);
    const members = inv.members.length ? inv.members : [memberKey(inv.from, inv.fromDevice)];
    for (const m of members) if (m !== c.me) c.members.add(m);
    await Promise.all(members.map((m) => this.dial(c, m)));
    if (!c.ended && c.live().length === 0 && c.pending.size === 0) this.end(c, "Could not join the conference.");
    return c;
  }

  // invite asks users to the current conference: "invite" to each, with
  // this page's participants, and "invited" to every member. It resolves
  // with how many invitations could not be sent.
  async invite(users, group = "") {
    const c = this.current;
    if (!c) throw new CallError("error", "There is no conference.");
    const me = this.phone.id.user;
    users = [...new Set(users)].filter((u) => u !== me);
    for (const u of users) if (!validUser(u)) throw new CallError("unknown", `"${u}" is not a user name.`);
    if (!users.length) return 0;
    const members = [c.me, ...c.connected().map((l) => c.keyOf(l))];
    if (members.length + users.length > MAX_MEMBERS) throw new CallError("refused", `A conference holds at most ${MAX_MEMBERS}.`);
    for (const u of users) c.invited.add(u);
    for (const u of c.users()) this.sendAsync(u, c.id, "invited", { users });
    const all = c.invitedUsers();
    const failed = [];
    await Promise.all(users.map(async (u) => {
      try {
        await this.send(u, c.id, "invite", { members, group: group || c.group, users: all });
      } catch (e) {
        failed.push(e.code === "offline" ? `${u} is offline.` : `Could not invite ${u}: ${e.message}`);
      }
    }));
    this.ui.onChange?.(c);
    if (failed.length) this.ui.onNotice?.(failed.join(" "));
    return failed.length;
  }

  // callGroup starts a conference with every other member of group g
  // ({id, members}).
  async callGroup(g) {
    const others = g.members.filter((u) => u !== this.phone.id.user);
    if (!others.length) throw new CallError("unknown", "There is nobody else in this group to call.");
    if (others.length > MAX_MEMBERS - 1) throw new CallError("refused", `A conference holds at most ${MAX_MEMBERS}: this group has ${g.members.length} members.`);
    const c = await this.open(randomHex(16), groupWord(g.name));
    if ((await this.invite(others, c.group)) === others.length && c.live().length === 0) this.end(c, "Nobody in the group could be reached.");
  }

  // addToCall turns the 1:1 call c into a conference ("upgrade" to its
  // peer) and invites user.
  async addToCall(call, user) {
    if (this.current) return this.invite([user]);
    if (!call || !call.started || call.ended) throw new CallError("error", "Add someone once the call is connected.");
    if (!validUser(user)) throw new CallError("unknown", `"${user}" is not a user name.`);
    if (user === call.peer || user === this.phone.id.user) throw new CallError("unknown", `${user} is in the call already.`);
    const id = randomHex(16);
    this.fromCall(id, call);
    try {
      await this.send(call.peer, id, "upgrade", {}, call.id);
    } catch (e) {
      console.warn("upgrade not delivered", e.message);
    }
    await this.invite([user]);
  }

  // fromCall makes the 1:1 call the first leg of conference id (its
  // microphone the conference's, its remote voice mixed).
  fromCall(id, call) {
    this.ui.releaseCall?.(call);
    const conf = new Conference(this, id, call.mic.clone());
    this.current = conf;
    if (this.autoCapture) this.startCapture();
    conf.muted = call.muted;
    conf.adopt(call);
    conf.onLegState(call);
    this.ui.onChange?.(conf);
    return conf;
  }

  setMuted(m) {
    const c = this.current;
    if (!c || c.muted === m) return;
    c.muted = m;
    for (const l of c.live()) l.setMuted(m);
    for (const u of c.users()) this.sendAsync(u, c.id, m ? "mute" : "unmute");
    this.ui.onChange?.(c);
  }

  setHeld(on) {
    const c = this.current;
    if (!c || c.held === on) return;
    c.held = on;
    for (const l of c.live()) if (l.started) l.setHeld(on);
    this.ui.onChange?.(c);
  }

  leave() {
    const c = this.current;
    if (!c) return;
    this.end(c, "You left the conference.");
  }

  end(c, why) {
    if (c.ended) return;
    c.ended = true;
    if (this.current === c) this.current = null;
    clearInterval(c.levelTimer);
    clearTimeout(c.aloneTimer);
    for (const l of c.live()) l.hangup(LEFT);
    for (const l of [...c.audio.keys()]) c.dropVoice(l);
    if (this.capture) this.captured = this.stopCapture(); // kept for the test to read
    c.mix.disconnect();
    c.mic.getTracks().forEach((t) => t.stop());
    this.ui.onEnded?.(c, why);
  }

  // startCapture records the conference's mixed output (what the page
  // plays), 48 kHz mono, until stopCapture (for tests).
  startCapture() {
    const c = this.current;
    if (!c) throw new Error("no conference");
    this.stopCapture();
    this.captured = null;
    const proc = c.ctx.createScriptProcessor(4096, 1, 1);
    const sink = c.ctx.createGain();
    sink.gain.value = 0;
    const chunks = [];
    proc.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    c.mix.connect(proc);
    proc.connect(sink);
    sink.connect(c.ctx.destination);
    this.capture = { c, proc, sink, chunks, rate: c.ctx.sampleRate };
    this.lastCapture = { startedAt: Date.now(), rate: c.ctx.sampleRate };
  }

  // stopCapture ends the recording: 16-bit PCM, or null without one.
  stopCapture() {
    const k = this.capture;
    if (!k) return null;
    this.capture = null;
    try { k.c.mix.disconnect(k.proc); } catch { /* the mix is gone */ }
    k.proc.disconnect();
    k.sink.disconnect();
    let n = 0;
    for (const f of k.chunks) n += f.length;
    const out = new Int16Array(n);
    let o = 0;
    for (const f of k.chunks) for (const v of f) out[o++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
    return out;
  }

  // state is the conference for tests and scripts: {id, group, muted,
  // held, roster, connecting, invited, invites, glares}.
  state() {
    const c = this.current;
    const invites = [...this.invites.values()].map((i) => ({ id: i.id, from: i.from, group: i.group, text: i.text }));
    if (!c) return { id: "", roster: [], connecting: [], invited: [], invites, glares: this.glares };
    return {
      id: c.id, group: c.group, muted: c.muted, held: c.held, roster: c.roster(), glares: this.glares,
      connecting: c.live().filter((l) => !l.started).map((l) => c.keyOf(l)),
      invited: [...c.invited], invites,
    };
  }
}

// testHooks are window.parleyTest's conference functions (for the Go
// browser tests; never needed to use the page). confs() is the page's
// Conferences, or null when signed out.
export function testHooks(confs) {
  const b64 = (pcm) => {
    const u8 = new Uint8Array(pcm.buffer);
    let bin = "";
    for (let i = 0; i < u8.length; i += 0x8000) bin += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
    return btoa(bin);
  };
  return {
    // confRoster: {id, group, muted, held, roster: [{user, device, self?,
    // speaking, muted, path, relay, held}], connecting: ["user/device"],
    // invited: [user], invites: [{id, from, group, text}], glares: offers
    // this page gave up or declined to glare so far}.
    confRoster: () => confs()?.state() || null,
    // confCaptureStart records the mixed output; confCaptured stops and
    // returns it: base64 of 16-bit little-endian mono PCM at confRate().
    confCaptureStart: () => { confs().startCapture(); return true; },
    confCaptured: () => {
      const cf = confs();
      const pcm = cf?.stopCapture() || cf?.captured;
      if (cf) cf.captured = null;
      return pcm ? b64(pcm) : "";
    },
    // confCaptureInfo: {capturing, startedAt (Unix ms), rate (Hz), samples
    // so far} of the current (or last) capture.
    confCaptureInfo: () => {
      const cf = confs();
      const k = cf?.capture;
      return { capturing: !!k, ...(cf?.lastCapture || {}), samples: k ? k.chunks.reduce((n, f) => n + f.length, 0) : 0 };
    },
    // confAutoCapture(on): from now on a conference this page opens (starts,
    // joins, or makes of a 1:1 call) is recorded from its first moment.
    confAutoCapture: (on) => { confs().autoCapture = !!on; return true; },
    // confJoinInvite presses Join on the invitation shown; false if none is.
    confJoinInvite: () => {
      const b = document.getElementById("conf-join");
      if (!b || b.closest("[hidden]")) return false;
      b.click();
      return true;
    },
    confHold: (on) => { confs().setHeld(!!on); return true; },
    // confJoin(id, members): join conference id with no invitation (as an
    // uninvited user would try), dialling members ("user/device"); resolves
    // with the page's notices meanwhile are what it shows.
    confJoin: async (id, members) => {
      const cf = confs();
      const first = splitMember(members[0]);
      const inv = new Invitation(cf, { from: first.user, device: first.device, conf: { id, members } });
      cf.invites.set(id, inv);
      const c = await cf.join(inv);
      return c.connected().map((l) => c.keyOf(l));
    },
    // confOpen(id, members) opens conference id with no invitation, taking
    // legs from members ("user/device") but dialling none; confDial(member)
    // dials one into the current conference (resolves once it ends or
    // connects). Tests of glare use them.
    confOpen: async (id, members) => {
      const c = await confs().open(id);
      for (const m of members) c.members.add(m);
      return true;
    },
    confDial: async (member) => {
      const cf = confs();
      await cf.dial(cf.current, member);
      return true;
    },
    confMute: (m) => { confs().setMuted(!!m); return true; },
    confInvite: async (users) => { await confs().invite(users); return true; }, // resolves once the invitations are sent
    confLeave: () => { confs()?.leave(); return true; },
  };
}

// ---- the page's conference panel and invitation banner ----

const PATH_TEXT = { direct: "direct", "udp-relay": "relayed over UDP", "tcp-relay": "relayed over TCP" };

function clock(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// bindConfView wires the conference controls of index.html (#conf-invite,
// #conference, and the 1:1 call bar's Add) once, and returns the ui
// callbacks for each Conferences. confs() is the page's Conferences (null
// when signed out); hooks: {notice(msg, kind), ring(on, invitation),
// releaseCall(call), changed() (a conference began or ended),
// call() → the 1:1 call in progress or null}.
export function bindConfView(confs, hooks) {
  const $ = (id) => document.getElementById(id);
  let invite = null;
  let timer = null;
  const fail = (e) => hooks.notice(e instanceof CallError ? e.message : `The conference failed: ${e.message}`);

  function render(c) {
    const panel = $("conference");
    if (!c || c.ended) { panel.hidden = true; clearInterval(timer); timer = null; return; }
    panel.hidden = false;
    const roster = c.roster();
    const connecting = c.live().filter((l) => !l.started).length;
    const waiting = [...c.invited].filter((u) => !roster.some((m) => m.user === u) && u !== c.confs.phone.id.user);
    $("conf-group").textContent = c.group ? ` · ${c.group.replace(/_/g, " ")}` : "";
    let st = roster.length > 1 ? `${roster.length} in the call` : "Waiting for the others";
    if (connecting) st += ` · ${connecting} connecting`;
    if (waiting.length) st += ` · invited: ${waiting.join(", ")}`;
    if (c.held) st += " · on hold";
    $("conf-state").textContent = st;
    $("conf-timer").textContent = clock(Date.now() - c.startedAt);
    $("conf-roster").replaceChildren(...roster.map((m) => {
      const li = document.createElement("li");
      li.className = "conf-member" + (m.speaking ? " speaking" : "") + (m.muted ? " muted" : "");
      li.dataset.member = memberKey(m.user, m.device);
      const dot = document.createElement("span");
      dot.className = "conf-dot";
      dot.setAttribute("aria-hidden", "true");
      const name = document.createElement("span");
      name.className = "conf-name";
      name.textContent = m.self ? `${m.user} (you)` : m.user;
      const meta = document.createElement("span");
      meta.className = "conf-meta";
      meta.textContent = [m.speaking ? "speaking" : "", m.muted ? "muted" : "", m.held ? "on hold" : "", m.path ? PATH_TEXT[m.path] || m.path : ""].filter(Boolean).join(" · ");
      if (m.relay) meta.title = `through the relay ${m.relay}`;
      li.append(dot, name, meta);
      return li;
    }));
    $("conf-mute").setAttribute("aria-pressed", String(c.muted));
    $("conference").classList.toggle("muted", c.muted);
    $("conf-hold").hidden = c.held;
    $("conf-resume").hidden = !c.held;
    if (!timer) timer = setInterval(() => render(confs()?.current), 1000);
  }

  function hideInvite() {
    invite = null;
    $("conf-invite").hidden = true;
    hooks.ring(false);
  }

  $("conf-join").addEventListener("click", async () => {
    const inv = invite;
    if (!inv) return;
    hideInvite();
    try { await inv.join(); } catch (e) { fail(e); }
  });
  $("conf-decline").addEventListener("click", () => { const inv = invite; hideInvite(); inv?.decline(); });
  $("conf-mute").addEventListener("click", () => { const c = confs()?.current; if (c) confs().setMuted(!c.muted); });
  $("conf-hold").addEventListener("click", () => confs()?.setHeld(true));
  $("conf-resume").addEventListener("click", () => confs()?.setHeld(false));
  $("conf-leave").addEventListener("click", () => confs()?.leave());
  const inviteFrom = (field, run) => async () => {
    const u = $(field).value.trim().toLowerCase();
    if (!u) { hooks.notice("Type the user name to add."); $(field).focus(); return; }
    try {
      await run(u);
      $(field).value = "";
      hooks.notice(`Invited ${u} to the conference.`, "info");
    } catch (e) { fail(e); }
  };
  $("conf-add-go").addEventListener("click", inviteFrom("conf-add-user", (u) => confs().invite([u])));
  $("call-add").addEventListener("click", () => {
    const open = $("call-add-row").hidden;
    $("call-add-row").hidden = !open;
    $("call-add").setAttribute("aria-expanded", String(open));
    if (open) $("call-add-user").focus();
  });
  $("call-add-go").addEventListener("click", inviteFrom("call-add-user", async (u) => {
    await confs().addToCall(hooks.call(), u);
    $("call-add-row").hidden = true;
    $("call-add").setAttribute("aria-expanded", "false");
  }));
  for (const [field, go] of [["conf-add-user", "conf-add-go"], ["call-add-user", "call-add-go"]]) {
    $(field).addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); $(go).click(); } });
  }

  return {
    onInvite(inv) {
      if (invite) { inv.gone("busy"); return; }
      invite = inv;
      $("conf-invite-text").textContent = inv.text;
      $("conf-invite").hidden = false;
      hooks.ring(true, inv);
    },
    onInviteGone(inv, why) {
      if (invite === inv) hideInvite();
      if (why === "missed") hooks.notice(`Missed a conference call from ${inv.from}.`, "info");
      else if (why === "joined on another device") hooks.notice("You joined the conference on another device.", "info");
    },
    onChange(c) {
      const was = !$("conference").hidden;
      render(c);
      if (was !== !$("conference").hidden) hooks.changed?.();
    },
    onEnded(c, why) {
      render(null);
      hooks.changed?.();
      hooks.notice(why, "info");
    },
    onNotice: (msg, kind) => hooks.notice(msg, kind),
    releaseCall: (call) => hooks.releaseCall(call),
  };
}

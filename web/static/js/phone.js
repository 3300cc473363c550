// Calls: the browser's own RTCPeerConnection (ICE, DTLS-SRTP, Opus), signalled
// with signed Signal v2 messages through the supernode, interoperating with the
// Go client (client/session.go, call.go, restart.go). Full ICE gathering before
// an offer or answer (no trickle), capped at 4 s; each end binds the call to
// the peer device that answered (or offered); a re-offer or re-answer must keep
// the peer's first DTLS fingerprints.

import * as signal from "./signal.js";
import { randomHex, validUser } from "./util.js";
// MAX_TRICKLED: candidates kept for a description not applied yet; PROBE_TIMEOUT in ms.
import { SIGNAL_MAX_TRICKLED as MAX_TRICKLED, SIGNAL_PROBE_TIMEOUT_MS as PROBE_TIMEOUT, CODEC_DEFAULT_BITRATE } from "./wire.gen.js";

const GATHER_TIMEOUT = 4000;
const TRICKLE_WAIT = 150; // the longest a first offer or answer waits for a relayed candidate (ms)
const RING_TIMEOUT = 30_000;
const CONNECT_TIMEOUT = 10_000;
const SIGNAL_RETRY_FOR = 5000;
const ICE_DISCONNECTED_GRACE = 1000;
const RESTART_TIMEOUT = 8000;


export class CallError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind; // offline, unknown, declined, busy, refused, no-answer, connect, microphone, cancelled
  }
}

// relayKey names a relay by the host:port of a STUN/TURN URL (client.relayKey).
export function parseICEURL(raw) {
  const m = /^(stuns?|turns?):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(udp|tcp))?$/i.exec(raw);
  if (!m) return null;
  const scheme = m[1].toLowerCase();
  const host = m[2].replace(/^\[|\]$/g, "");
  const port = m[3] || (scheme === "turns" || scheme === "stuns" ? "5349" : "3478");
  const hp = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return { scheme, key: hp, proto: m[4] || (scheme === "turns" ? "tcp" : "udp") };
}

export function relaysOf(servers) {
  const out = new Map();
  for (const s of servers) {
    for (const raw of s.urls || []) {
      const u = parseICEURL(raw);
      if (u) out.set(u.key, [...(out.get(u.key) || []), u]);
    }
  }
  return out;
}

// onlyRelay keeps every STUN URL but only the TURN URLs of relay (all of
// them when relay is "" or not on offer), as client.onlyRelay.
export function onlyRelay(servers, relay) {
  if (!relay || !relaysOf(servers).has(relay)) return servers;
  const out = [];
  for (const s of servers) {
    const urls = (s.urls || []).filter((raw) => {
      const u = parseICEURL(raw);
      return u && (u.scheme === "stun" || u.key === relay);
    });
    if (urls.length) out.push({ ...s, urls });
  }
  return out;
}

// combinePaths is client.combinePaths: tcp-relay when either end reaches its
// relay over TCP or TLS, udp-relay when a relay is on the path, else direct.
export function combinePaths(mine, theirs) {
  const relayed = mine.local === "relay" || theirs.local === "relay" || !!mine.remote_relay || !!theirs.remote_relay;
  const tcp = ["tcp", "tls"].includes(mine.relay_protocol) || ["tcp", "tls"].includes(theirs.relay_protocol);
  const relay = mine.relay || theirs.relay || "";
  if (relayed && tcp) return { path: "tcp-relay", relay };
  if (relayed) return { path: "udp-relay", relay };
  return { path: "direct", relay: "" };
}

function sameView(a, b) {
  return a.local === b.local && (a.relay_protocol || "") === (b.relay_protocol || "") &&
    (a.relay || "") === (b.relay || "") && !!a.remote_relay === !!b.remote_relay;
}

// Relay choice, as client/relays.go: with more than one relay on offer, the
// caller measures its round trip to each and sends the table in a "probe"
// signal; the callee answers with its own in a "probe-reply"; the caller
// picks the relay with the lowest sum among those both reached and names it in
// the offer. A page cannot send a bare STUN binding, so it times what it can:
// a TURN allocation with the relay's credentials (iceTransportPolicy "relay",
// until the relay candidate), two round trips over UDP, three over TCP (the
// connection first), divided accordingly. The time includes the browser's own
// pacing of its gathering phases (Chromium: some 25 ms per round trip on
// loopback), the same for every relay: it shifts the page's table without
// changing its order, so the choice stands. A relay that does not allocate for
// this page (blocked, or refusing its credentials) is left out. PROBE_TIMEOUT
// (ms) is signal.ProbeTimeout, as the Go client's.

// measureRelays is {relay key: round trip in ms} for the relays on offer.
export async function measureRelays(servers, timeout = 2 * PROBE_TIMEOUT) {
  const out = {};
  await Promise.all([...relaysOf(servers).keys()].map(async (key) => {
    for (const [proto, trips] of [["udp", 2], ["tcp", 3]]) {
      const ice = [];
      for (const s of servers) {
        const urls = (s.urls || []).filter((raw) => {
          const u = parseICEURL(raw);
          return u && u.key === key && u.scheme === "turn" && u.proto === proto;
        });
        if (urls.length) ice.push({ ...s, urls });
      }
      if (!ice.length) continue;
      const ms = await allocationTime(ice, timeout);
      if (ms !== null) { out[key] = Math.round((ms / trips) * 100) / 100; return; }
    }
  }));
  return out;
}

// allocationTime is how long a relay candidate takes from iceServers (ms),
// or null when none comes within timeout.
function allocationTime(iceServers, timeout) {
  return new Promise((resolve) => {
    let pc;
    try { pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: "relay" }); } catch { resolve(null); return; }
    let start = 0;
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      pc.close();
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), timeout);
    pc.onicecandidate = (ev) => {
      if (!ev.candidate) finish(null); // gathering ended without a relay candidate
      else if (ev.candidate.type === "relay") finish(performance.now() - start);
    };
    pc.createDataChannel("probe");
    pc.createOffer().then((o) => { start = performance.now(); return pc.setLocalDescription(o); }).catch(() => finish(null));
  });
}

// chooseRelay is client.chooseRelay: the lowest sum of round trips among the
// relays both ends reached; failing that, the one nearest to me; "" when I
// reached none.
export function chooseRelay(mine, theirs) {
  const keys = Object.keys(mine).sort();
  let best = "";
  let cost = Infinity;
  for (const k of keys) {
    if (Object.hasOwn(theirs, k) && mine[k] + theirs[k] < cost) { best = k; cost = mine[k] + theirs[k]; }
  }
  if (best) return best;
  for (const k of keys) if (mine[k] < cost) { best = k; cost = mine[k]; }
  return best;
}

// rttTable reads a probe's round trips (relay key → whole microseconds, as
// signals carry them; signal.decode checked them) as relay key → ms.
function rttTable(rtts) {
  const out = {};
  for (const [k, us] of Object.entries(rtts || {})) out[k] = us / 1000;
  return out;
}

// rttWire is a table of ms as probe signals carry it: whole microseconds.
function rttWire(table) {
  const out = {};
  for (const [k, ms] of Object.entries(table)) out[k] = Math.round(ms * 1000);
  return out;
}

function waitGathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") { resolve(); return; }
    const t = setTimeout(done, GATHER_TIMEOUT);
    function done() {
      clearTimeout(t);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() { if (pc.iceGatheringState === "complete") done(); }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// waitRelayed resolves when pc's local description holds a relayed
// candidate, when gathering is over, or after ms, whichever comes first.
function waitRelayed(pc, ms) {
  return new Promise((resolve) => {
    const has = () => pc.iceGatheringState === "complete" || / typ host /.test(pc.localDescription?.sdp || "");
    if (has()) { resolve(); return; }
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      pc.removeEventListener("icecandidate", check);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() { if (has()) setTimeout(done, 10); }
    pc.addEventListener("icecandidate", check);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// Phone is one signed-in device's calls. identity: {user, device, privateKey,
// credential(): Promise<token>, loginKey: Uint8Array}; link: SupernodeLink;
// ui: callbacks {onIncoming(incoming), onCallState(call), onCallEnded(call),
// onCallStats(call, stats)}.
export class Phone {
  constructor(identity, link, login, ui) {
    this.id = identity;
    this.link = link;
    this.login = login;
    this.ui = ui;
    this.seq = 0;
    this.seen = new Map();
    this.calls = new Map();
    this.incoming = new Map();
    this.answering = new Map(); // incoming calls being answered (the microphone is opening)
    this.audio = null; // AudioContext, made on the first call (a user gesture)
    this.probes = new Map(); // call id → {peer, resolve} of a caller waiting for a probe reply
    this.lastProbe = null; // {mine, theirs, relay} of the last relay choice (for the stats and tests)
    // conf: the conference calls (js/conf.js), set by them: {onOffer(sig),
    // onSignal(sig), busy()}; a leg's offer and the "conf" signals go there.
    this.conf = null;
  }

  // chooseRelay picks the relay for call id to peer when more than one is
  // on offer ("" otherwise, or when the probe finds none).
  async chooseRelay(id, peer) {
    const servers = this.link.iceServers;
    if (relaysOf(servers).size < 2) return "";
    const mine = await measureRelays(servers);
    let theirs = {};
    const reply = new Promise((resolve) => this.probes.set(id, { peer, resolve }));
    try {
      await this.sendSignal({ kind: "probe", call_id: id, to: peer, rtts: rttWire(mine) });
      theirs = await Promise.race([reply, new Promise((r) => setTimeout(() => r({}), 3 * PROBE_TIMEOUT))]);
    } catch (e) {
      console.debug("relay probe", e.message);
    } finally {
      this.probes.delete(id);
    }
    const relay = chooseRelay(mine, theirs);
    this.lastProbe = { mine, theirs, relay };
    return relay;
  }

  audioContext() {
    if (!this.audio) this.audio = new AudioContext({ sampleRate: 48000 });
    if (this.audio.state === "suspended") this.audio.resume();
    return this.audio;
  }

  busy() { return this.calls.size > 0 || !!this.placing || !!this.conf?.busy(); }

  async sendSignal(sig) {
    const token = await this.id.credential();
    await signal.sign(sig, {
      from: this.id.user, device: this.id.device, credential: token, privateKey: this.id.privateKey, seq: ++this.seq,
    });
    const retryOffline = signal.IN_CALL_KINDS.has(sig.kind);
    const until = Date.now() + SIGNAL_RETRY_FOR;
    for (;;) {
      try {
        await this.link.waitOnline(Math.max(100, until - Date.now()));
        return await this.link.send(sig.to, sig);
      } catch (e) {
        const retry = e.code === "disconnected" || (retryOffline && e.code === "offline");
        if (!retry || Date.now() > until) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  // contactsChanged tells the running devices of peer and of this user that
  // their contact entry changed, so they reread their contacts at once.
  contactsChanged(peer) {
    for (const to of [peer, this.id.user]) this.sendAsync({ kind: "contacts", call_id: randomHex(8), to });
  }

  sendAsync(sig) {
    this.sendSignal(sig).catch((e) => console.debug("signal not delivered", sig.kind, e.message));
  }

  // onDeliver handles a supernode deliver frame: a call signal. Signals are
  // handled one at a time, in arrival order (verifying one awaits WebCrypto,
  // and a candidate must not overtake the offer it follows).
  onDeliver(f) {
    this.delivering = (this.delivering || Promise.resolve())
      .then(() => this.handleDeliver(f))
      .catch((e) => console.warn("handling a signal", e));
    return this.delivering;
  }

  async handleDeliver(f) {
    let sig;
    try {
      sig = signal.decode(f.payload);
    } catch {
      return; // not a signal (an IM envelope, say): not ours to handle
    }
    try {
      await signal.verify(sig, { loginKey: this.id.loginKey, from: f.from, me: this.id.user });
    } catch (e) {
      console.warn("refusing signal", sig.kind, "from", f.from, e.message);
      if (sig.kind === "offer") {
        this.sendAsync({ kind: "decline", call_id: sig.call_id, to: f.from, reason: "refused: signature check failed" });
        this.ui.onNotice?.(`Refused a call from ${f.from}: ${e.message}`);
      } else if (sig.kind === "answer") {
        const c = this.calls.get(sig.call_id);
        if (c && c.outgoing && c.peer === f.from && !c.started) c.fail("refused", `Call refused: ${e.message}`, true);
      }
      return;
    }
    const key = `${sig.from}|${sig.device}|${sig.ts}|${sig.seq}`; // each device counts its own seq
    const now = Date.now();
    if (this.seen.has(key)) return; // a replay
    if (this.seen.size > 1024) {
      for (const [k, t] of this.seen) if (now - t > 2 * signal.SIGNAL_WINDOW) this.seen.delete(k);
    }
    this.seen.set(key, now);

    switch (sig.kind) {
      case "offer": this.onOffer(sig); return;
      case "conf": this.conf?.onSignal(sig); return;
      case "contacts": this.ui.onContactsChanged?.(); return;
      case "candidate": { // a Go peer trickles its candidates (docs/protocol.md)
        const cand = sig.candidate;
        if (!cand || !cand.candidate) return;
        const inc = this.incoming.get(sig.call_id) || this.answering.get(sig.call_id);
        if (inc && inc.peer === sig.from && inc.offer.device === sig.device) {
          if (inc.cands.length < MAX_TRICKLED) inc.cands.push(cand);
          return;
        }
        const c = this.calls.get(sig.call_id);
        if (c && c.peer === sig.from && c.fromPeer(sig)) c.addRemoteCandidate(cand);
        return;
      }
      case "probe":
        measureRelays(this.link.iceServers).then((t) =>
          this.sendAsync({ kind: "probe-reply", call_id: sig.call_id, to: sig.from, rtts: rttWire(t) }));
        return;
      case "probe-reply": {
        const p = this.probes.get(sig.call_id);
        if (p && p.peer === sig.from) p.resolve(rttTable(sig.rtts));
        return;
      }
      case "hangup": {
        const inc = this.incoming.get(sig.call_id);
        if (inc && inc.peer === sig.from && inc.offer.device === sig.device) inc.cancelled("caller hung up");
        break;
      }
    }
    const c = this.calls.get(sig.call_id);
    if (!c || c.peer !== sig.from || !c.fromPeer(sig)) return;
    c.onSignal(sig);
  }

  onOffer(sig) {
    if (this.calls.has(sig.call_id) || this.incoming.has(sig.call_id)) return;
    if (sig.conf) { // a conference's leg (js/conf.js): answered at once, refused, or ignored; never rung
      this.conf?.onOffer(sig);
      return;
    }
    if (this.busy() || this.incoming.size > 0) {
      this.sendAsync({ kind: "decline", call_id: sig.call_id, to: sig.from, reason: "busy" });
      return;
    }
    const inc = new Incoming(this, sig);
    this.incoming.set(sig.call_id, inc);
    this.sendAsync({ kind: "ringing", call_id: sig.call_id, to: sig.from });
    this.ui.onIncoming(inc);
  }

  async microphone() {
    if (!navigator.mediaDevices?.getUserMedia) throw new CallError("microphone", "This browser gives no microphone to this page (it needs HTTPS or localhost).");
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true }, video: false });
    } catch (e) {
      if (e.name === "NotAllowedError" || e.name === "SecurityError") throw new CallError("microphone", "Microphone access was denied. Allow the microphone for this page to make calls.");
      if (e.name === "NotFoundError") throw new CallError("microphone", "No microphone was found.");
      throw new CallError("microphone", `The microphone could not be opened: ${e.message}`);
    }
  }

  // call places a call to peer; resolves with the connected Call. leg, for
  // a conference's leg (js/conf.js): {conf: its id, device: the peer's
  // device, mic: the MediaStream to send, ui: the leg's callbacks}.
  async call(peer, leg = null) {
    if (!validUser(peer)) throw new CallError("unknown", `"${peer}" is not a user name (a-z, 0-9, . _ -, starting with a letter).`);
    if (peer === this.id.user && !leg) throw new CallError("unknown", "You cannot call yourself.");
    if (this.busy() && !leg) throw new CallError("busy", "Hang up the call in progress first.");
    const mic = leg ? leg.mic : await this.microphone();
    await this.link.waitOnline(5000).catch(() => { mic.getTracks().forEach((t) => t.stop()); throw new CallError("offline", "Not connected to Parley; reconnecting…"); });
    const id = randomHex(8);
    let relay = "";
    if (!leg) { // a leg chooses no relay by probing: every relay on offer is used (as the Go client's)
      this.placing = true; // busy while the relays are timed
      try {
        relay = await this.chooseRelay(id, peer);
      } finally {
        this.placing = false;
      }
    }
    const c = new Call(this, id, peer, true, relay, mic, leg);
    if (leg) c.peerDevice = leg.device; // only that device's answer (the user's others are not in the conference)
    this.calls.set(c.id, c);
    c.ui.onCallState(c);
    try {
      if (c.ended) throw new CallError("cancelled", c.error || "The call ended."); // a leg its conference gave up at once
      await c.place();
    } catch (e) {
      c.fail(e.kind || "error", e.message, false);
      throw e;
    }
    return c;
  }

  ended(c) {
    this.calls.delete(c.id);
  }

  // channelTo is the open IM data channel of a connected call with user, or null.
  channelTo(user) {
    for (const c of this.calls.values()) {
      if (c.peer === user && c.started && !c.ended && c.channel?.readyState === "open") return c.channel;
    }
    return null;
  }
}

// Incoming is a verified offer waiting for Answer or Decline.
export class Incoming {
  constructor(phone, offer) {
    this.phone = phone;
    this.offer = offer;
    this.id = offer.call_id;
    this.peer = offer.from;
    this.handled = false;
    this.onCancel = null;
    this.cands = []; // the caller's trickled candidates, while ringing
    this.timer = setTimeout(() => this.cancelled("no answer"), RING_TIMEOUT + 5000);
  }

  take() {
    if (this.handled) return false;
    this.handled = true;
    clearTimeout(this.timer);
    this.phone.incoming.delete(this.id);
    return true;
  }

  cancelled(why) {
    if (!this.take()) return;
    this.onCancel?.(why);
  }

  decline(reason = "declined") {
    if (!this.take()) return;
    this.phone.sendAsync({ kind: "decline", call_id: this.id, to: this.peer, reason });
  }

  // answer takes the call; leg, for a conference's leg, as Phone.call's.
  async answer(leg = null) {
    if (!this.take()) throw new CallError("cancelled", "The call is over.");
    const phone = this.phone;
    phone.answering.set(this.id, this); // candidates still land here
    let mic;
    try {
      mic = leg ? leg.mic : await phone.microphone();
    } catch (e) {
      phone.answering.delete(this.id);
      phone.sendAsync({ kind: "decline", call_id: this.id, to: this.peer, reason: "could not answer" });
      throw e;
    }
    let c;
    try {
      c = new Call(phone, this.id, this.peer, false, this.offer.relay || "", mic, leg);
    } finally {
      phone.answering.delete(this.id);
    }
    c.peerDevice = this.offer.device;
    c.peerFP = signal.fingerprints(this.offer.sdp);
    c.remoteCands = this.cands.slice(0, MAX_TRICKLED);
    c.remoteCount = c.remoteCands.length;
    phone.calls.set(c.id, c);
    c.ui.onCallState(c);
    try {
      await c.accept(this.offer);
    } catch (e) {
      if (!c.answered) phone.sendAsync({ kind: "decline", call_id: this.id, to: this.peer, reason: "could not answer" });
      c.fail(e.kind || "error", e.message, c.answered);
      throw e;
    }
    return c;
  }
}

export class Call {
  constructor(phone, id, peer, outgoing, relay, mic, leg = null) {
    this.phone = phone;
    this.ui = leg?.ui || phone.ui; // a conference's leg reports to the conference (js/conf.js)
    this.conf = leg?.conf || ""; // the conference's id, for a leg
    this.id = id;
    this.peer = peer;
    this.outgoing = outgoing;
    this.relayChoice = relay;
    this.mic = mic;
    this.micTrack = mic.getAudioTracks()[0];
    this.state = outgoing ? "calling" : "answering";
    this.reason = "";
    this.error = "";
    this.peerDevice = "";
    this.peerFP = [];
    this.localView = { local: "" };
    this.peerView = { local: "" };
    this.path = "";
    this.relay = "";
    this.muted = false;
    this.held = false;
    this.peerHeld = false;
    this.started = false;
    this.answered = false;
    this.ended = false;
    this.signals = [];
    this.signalWaiters = [];
    this.remoteStream = null;
    this.restarts = 0;
    this.reanswerWaiters = new Map();
    this.remoteSet = false; // the peer's description is applied
    this.remoteCands = []; // its trickled candidates, kept until then
    this.restarting = false;
    this.connectedAt = 0;
    this.prevStats = null;
    this.history = []; // {t, rtt, loss}
    this.makePC();
  }

  iceServers() { return onlyRelay(this.phone.link.iceServers, this.relayChoice); }

  makePC() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers(), bundlePolicy: "max-bundle" });
    this.pc = pc;
    // The negotiated channel the Go client makes too: instant-message
    // envelopes (JSON text) go over it while the call is up.
    this.channel = pc.createDataChannel("parley-im", { negotiated: true, id: 0 });
    this.channel.binaryType = "arraybuffer";
    this.channel.onmessage = (ev) => this.ui.onChannelMessage?.(this, ev.data);
    pc.ontrack = (ev) => {
      if (ev.track.kind !== "audio") return;
      this.remoteStream = ev.streams[0] || new MediaStream([ev.track]);
      this.ui.onRemoteStream?.(this, this.remoteStream);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") this.onConnected();
      if (pc.connectionState === "failed" && !this.ended) this.fail("connect", "The connection failed.", true);
    };
    pc.oniceconnectionstatechange = () => {
      if (!this.started || this.ended) return;
      const st = pc.iceConnectionState;
      if (st === "disconnected") {
        setTimeout(() => {
          if (!this.ended && pc.iceConnectionState === "disconnected") this.requestRestart("ICE disconnected");
        }, ICE_DISCONNECTED_GRACE);
      }
    };
  }

  addRemoteCandidate(cand) {
    // Only for the first negotiation, and only so many: a peer cannot keep
    // adding addresses to check.
    if (this.started || this.remoteCount >= MAX_TRICKLED) return;
    this.remoteCount = (this.remoteCount || 0) + 1;
    if (!this.remoteSet) {
      this.remoteCands.push(cand);
      return;
    }
    this.pc.addIceCandidate(cand).catch((e) => console.debug("a candidate of the peer's", e.message));
  }

  remoteApplied() {
    this.remoteSet = true;
    for (const cand of this.remoteCands) {
      this.pc.addIceCandidate(cand).catch((e) => console.debug("a candidate of the peer's", e.message));
    }
    this.remoteCands = [];
  }

  fromPeer(sig) {
    if (!this.peerDevice) {
      if (sig.kind === "answer") this.peerDevice = sig.device;
      return true;
    }
    return sig.device === this.peerDevice;
  }

  async setLocal(desc) {
    await this.pc.setLocalDescription(desc);
    await waitGathered(this.pc);
    return this.pc.localDescription.sdp;
  }

  // setLocalTrickle is setLocal for the first negotiation: the description
  // goes out once it holds a relayed candidate (or gathering is over, or
  // after TRICKLE_WAIT), and each candidate found after that follows in a
  // "candidate" signal (after trickleReady, once the description is sent),
  // as the Go client's do (docs/protocol.md, "Trickle ICE"). Chromium
  // gathers in steps 50 ms apart, its TCP candidates last; the description
  // no longer waits for those. An ICE restart's descriptions carry all their
  // candidates (setLocal).
  async setLocalTrickle(desc) {
    const t = { ready: false, done: false, queue: [] };
    this.trickle = t;
    this.pc.onicecandidate = (ev) => {
      if (this.trickle !== t) return;
      const cand = ev.candidate?.toJSON();
      if (!cand || !cand.candidate) { t.done = true; return; } // gathering is over
      if (t.ready) this.sendCandidate(cand); else t.queue.push(cand);
    };
    await this.pc.setLocalDescription(desc);
    await waitRelayed(this.pc, TRICKLE_WAIT);
    t.queue = []; // those found so far are in the description
    return this.pc.localDescription.sdp;
  }

  // trickleReady sends the candidates found before the description went out.
  trickleReady() {
    const t = this.trickle;
    if (!t) return;
    t.ready = true;
    for (const cand of t.queue) this.sendCandidate(cand);
    t.queue = [];
  }

  stopTrickle() { this.trickle = null; }

  sendCandidate(cand) {
    const { candidate, sdpMid, sdpMLineIndex, usernameFragment } = cand;
    this.phone.sendAsync({ kind: "candidate", call_id: this.id, to: this.peer, candidate: { candidate, sdpMid, sdpMLineIndex, usernameFragment } });
  }

  addMic() {
    this.sender = this.pc.addTrack(this.micTrack, this.mic);
  }

  nextSignal(ms) {
    if (this.signals.length) return Promise.resolve(this.signals.shift());
    return new Promise((resolve) => {
      const w = (s) => { clearTimeout(t); resolve(s); };
      const t = setTimeout(() => { this.signalWaiters = this.signalWaiters.filter((x) => x !== w); resolve(null); }, ms);
      this.signalWaiters.push(w);
    });
  }

  async place() {
    const phone = this.phone;
    this.addMic();
    const offer = await this.pc.createOffer();
    const sdp = await this.setLocalTrickle(offer);
    try {
      await phone.sendSignal({ kind: "offer", call_id: this.id, to: this.peer, sdp, ...(this.relayChoice ? { relay: this.relayChoice } : {}),
        ...(this.conf ? { conf: { id: this.conf }, answerer: this.peerDevice } : {}) }); // a leg names the device it calls
      this.trickleReady();
    } catch (e) {
      this.stopTrickle();
      if (e.code === "offline") {
        let exists = true;
        try { exists = await phone.login.userExists(this.peer); } catch { /* say offline */ }
        if (!exists) throw new CallError("unknown", `There is no user called ${this.peer}.`);
        throw new CallError("offline", `${this.peer} is offline.`);
      }
      throw new CallError("error", `Could not reach ${this.peer}: ${e.message}`);
    }
    const deadline = Date.now() + RING_TIMEOUT;
    for (;;) {
      if (this.ended) throw new CallError("cancelled", this.error || "The call ended.");
      const sig = await this.nextSignal(Math.max(0, deadline - Date.now()));
      if (this.ended) throw new CallError("cancelled", this.error || "The call ended.");
      if (!sig) {
        this.notifyHangup("no answer");
        throw new CallError("no-answer", `${this.peer} did not answer.`);
      }
      switch (sig.kind) {
        case "ringing":
          this.state = "ringing";
          this.ui.onCallState(this);
          continue;
        case "decline": {
          const reason = sig.reason || "declined";
          if (reason.startsWith("refused:")) throw new CallError("refused", `${this.peer} refused the call (${reason.slice(8).trim()}).`);
          if (reason === "busy") throw new CallError("busy", `${this.peer} is busy.`);
          if (reason === "declined") throw new CallError("declined", `${this.peer} declined the call.`);
          throw new CallError("declined", `${this.peer} declined the call (${reason}).`);
        }
        case "answer":
          this.state = "connecting";
          this.ui.onCallState(this);
          await this.pc.setRemoteDescription({ type: "answer", sdp: sig.sdp });
          this.remoteApplied();
          this.peerFP = signal.fingerprints(sig.sdp);
          this.answered = true;
          await this.waitConnected();
          return;
      }
    }
  }

  async accept(offer) {
    await this.pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    this.remoteApplied();
    this.addMic();
    const answer = await this.pc.createAnswer();
    const sdp = await this.setLocalTrickle(answer);
    this.state = "connecting";
    this.ui.onCallState(this);
    await this.phone.sendSignal({ kind: "answer", call_id: this.id, to: this.peer, sdp });
    this.trickleReady();
    this.answered = true;
    await this.waitConnected();
  }

  waitConnected() {
    return new Promise((resolve, reject) => {
      if (this.started) { resolve(); return; }
      const t = setTimeout(() => {
        this.notifyHangup("could not connect");
        reject(new CallError("connect", `Could not connect to ${this.peer}.`));
      }, CONNECT_TIMEOUT);
      this.onStart = () => { clearTimeout(t); resolve(); };
      this.onEndWait = (msg) => { clearTimeout(t); reject(new CallError("cancelled", msg)); };
    });
  }

  onConnected() {
    if (this.started || this.ended) return;
    this.started = true;
    this.connectedAt = Date.now();
    this.state = "connected";
    this.ui.onCallState(this);
    this.statsTimer = setInterval(() => this.updateStats(), 1000);
    this.updateStats();
    this.capBitrate();
    this.onStart?.();
  }

  // capBitrate keeps the page's Opus at CODEC_DEFAULT_BITRATE (Go's
  // codec.DefaultBitrate, docs/codec.md), as a Go peer asks
  // in its SDP; a browser peer asks nothing (Chrome's default is 32 kbit/s).
  capBitrate() {
    const p = this.sender?.getParameters?.();
    if (!p?.encodings?.length) return;
    p.encodings[0].maxBitrate = CODEC_DEFAULT_BITRATE;
    this.sender.setParameters(p).catch((e) => console.debug("capping the bit rate", e.message));
  }

  onSignal(sig) {
    switch (sig.kind) {
      case "hangup": {
        const why = !sig.reason || sig.reason === "hangup" ? `${this.peer} hung up.` : `${this.peer} ended the call: ${sig.reason}`;
        this.finish("remote hangup", why);
        return;
      }
      case "path": {
        if (!sig.path) return;
        this.peerView = sig.path;
        this.recomputePath();
        return;
      }
      case "hold": case "resume": {
        const on = sig.kind === "hold";
        if (this.peerHeld !== on) {
          this.peerHeld = on;
          this.applyMedia();
          this.ui.onCallState(this);
        }
        return;
      }
      case "re-offer":
        if (!this.outgoing && this.started) this.onReoffer(sig);
        return;
      case "re-answer":
        if (this.outgoing && signal.sameFingerprints(signal.fingerprints(sig.sdp), this.peerFP)) {
          this.reanswerWaiters.get(sig.attempt)?.(sig);
        }
        return;
      case "restart":
        if (this.outgoing && this.started) this.requestRestart("the peer asked: " + (sig.reason || ""));
        return;
      default: { // ringing, answer, decline: for place()
        const w = this.signalWaiters.shift();
        if (w) w(sig); else this.signals.push(sig);
      }
    }
  }

  // Media: mute disables the microphone track (silence frames keep flowing);
  // on hold (either side) the sender carries comfort noise instead of the
  // microphone, so packets keep flowing and NAT bindings stay open, and
  // resuming needs no renegotiation.
  onHold() { return this.held || this.peerHeld; }

  noiseTrack() {
    if (this.noise) return this.noise;
    const ctx = this.phone.audioContext();
    const buf = ctx.createBuffer(1, ctx.sampleRate * 2, ctx.sampleRate);
    const d = buf.getChannelData(0);
    for (let i = 0; i < d.length; i++) d[i] = (Math.random() * 2 - 1) * 0.002; // about -60 dBFS
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.loop = true;
    const dst = ctx.createMediaStreamDestination();
    src.connect(dst);
    src.start();
    this.noiseSrc = src;
    this.noise = dst.stream.getAudioTracks()[0];
    return this.noise;
  }

  applyMedia() {
    if (!this.sender) return;
    this.micTrack.enabled = !this.muted;
    const want = this.onHold() ? this.noiseTrack() : this.micTrack;
    if (this.sender.track !== want) this.sender.replaceTrack(want).catch((e) => console.warn("replaceTrack", e));
  }

  setMuted(m) {
    this.muted = m;
    this.applyMedia();
    this.ui.onCallState(this);
  }

  setHeld(on) {
    if (this.held === on || !this.started) return;
    this.held = on;
    this.applyMedia();
    this.ui.onCallState(this);
    this.phone.sendAsync({ kind: on ? "hold" : "resume", call_id: this.id, to: this.peer });
  }

  hangup(reason = "hangup") {
    this.notifyHangup(reason);
    this.finish(reason, "");
  }

  notifyHangup(reason) {
    if (this.ended || this.notified) return;
    this.notified = true;
    this.phone.sendAsync({ kind: "hangup", call_id: this.id, to: this.peer, reason });
  }

  fail(kind, message, notify) {
    if (notify) this.notifyHangup(kind === "connect" ? "connection failed" : kind);
    this.finish(kind, message);
  }

  finish(reason, message) {
    if (this.ended) return;
    this.ended = true;
    this.reason = reason;
    this.error = message;
    this.state = "ended";
    clearInterval(this.statsTimer);
    try { this.noiseSrc?.stop(); } catch { /* already stopped */ }
    this.noise?.stop();
    this.mic.getTracks().forEach((t) => t.stop());
    this.pc.close();
    for (const w of this.signalWaiters) w(null);
    this.signalWaiters = [];
    this.onEndWait?.(message || "The call ended.");
    this.phone.ended(this);
    this.ui.onCallEnded(this);
  }

  // ICE restart (client/restart.go): the caller re-offers; the callee asks.
  requestRestart(why) {
    if (this.restarting || this.ended) return;
    if (!this.outgoing) {
      this.phone.sendAsync({ kind: "restart", call_id: this.id, to: this.peer, reason: why });
      return;
    }
    this.restartICE(why).catch((e) => console.warn("ICE restart failed", e.message));
  }

  async restartICE(why) {
    this.restarting = true;
    try {
      for (let attempt = 1; attempt <= 3 && !this.ended; attempt++) {
        try {
          await this.phone.link.waitOnline(RESTART_TIMEOUT);
          this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: this.iceServers() });
          let sdp;
          if (this.pc.signalingState === "have-local-offer") {
            sdp = this.pc.localDescription.sdp;
          } else {
            this.stopTrickle();
            sdp = await this.setLocal(await this.pc.createOffer({ iceRestart: true }));
          }
          const tag = String(++this.restarts);
          const answered = new Promise((resolve, reject) => {
            const t = setTimeout(() => { this.reanswerWaiters.delete(tag); reject(new Error("no re-answer")); }, RESTART_TIMEOUT);
            this.reanswerWaiters.set(tag, (s) => { clearTimeout(t); this.reanswerWaiters.delete(tag); resolve(s); });
          });
          await this.phone.sendSignal({ kind: "re-offer", call_id: this.id, to: this.peer, sdp, attempt: tag });
          const ans = await answered;
          await this.pc.setRemoteDescription({ type: "answer", sdp: ans.sdp });
          console.info("ICE restarted", why);
          return;
        } catch (e) {
          if (attempt === 3) throw e;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    } finally {
      this.restarting = false;
    }
  }

  async onReoffer(sig) {
    if (!signal.sameFingerprints(signal.fingerprints(sig.sdp), this.peerFP)) {
      console.warn("refusing a re-offer with other DTLS fingerprints");
      return;
    }
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: this.iceServers() });
      await this.pc.setRemoteDescription({ type: "offer", sdp: sig.sdp });
      this.stopTrickle();
      const sdp = await this.setLocal(await this.pc.createAnswer());
      await this.phone.sendSignal({ kind: "re-answer", call_id: this.id, to: this.peer, sdp, attempt: sig.attempt });
    } catch (e) {
      console.warn("ICE restart: answering", e.message);
    }
  }

  recomputePath() {
    const { path, relay } = combinePaths(this.localView, this.peerView);
    this.path = path;
    this.relay = relay;
  }

  // updateStats reads the selected candidate pair (path, round trip) and the
  // RTP counters, tells the peer when this end's view of the path changes,
  // and hands the figures to the UI.
  async updateStats() {
    if (this.ended) return;
    let report;
    try { report = await this.pc.getStats(); } catch { return; }
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    let pair = null;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
    });
    if (!pair) report.forEach((s) => { if (!pair && s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
    const st = { rtt: null, jitter: null, loss: 0, sendKbps: 0, recvKbps: 0, codec: "", packetsSent: 0, packetsReceived: 0 };
    if (pair) {
      if (typeof pair.currentRoundTripTime === "number") st.rtt = pair.currentRoundTripTime * 1000;
      const local = byId.get(pair.localCandidateId) || {};
      const remote = byId.get(pair.remoteCandidateId) || {};
      const view = { local: local.candidateType || "" };
      if (local.candidateType === "relay") {
        if (local.relayProtocol) view.relay_protocol = local.relayProtocol;
        view.relay = local.address && local.port ? `${local.address}:${local.port}` : (local.url || "");
      }
      if (remote.candidateType === "relay") view.remote_relay = true;
      if (view.local && !sameView(view, this.localView)) {
        this.localView = view;
        this.phone.sendAsync({ kind: "path", call_id: this.id, to: this.peer, path: view });
      }
      this.recomputePath();
    }
    let inbound = null, outbound = null;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s;
      if (s.type === "outbound-rtp" && s.kind === "audio") outbound = s;
    });
    const now = performance.now();
    const prev = this.prevStats;
    if (inbound) {
      st.packetsReceived = inbound.packetsReceived || 0;
      const lost = Math.max(0, inbound.packetsLost || 0);
      st.loss = st.packetsReceived + lost > 0 ? lost / (st.packetsReceived + lost) : 0;
      if (typeof inbound.jitter === "number") st.jitter = inbound.jitter * 1000;
      const codec = byId.get(inbound.codecId);
      if (codec) st.codec = `${codec.mimeType.replace(/^audio\//, "")} ${codec.clockRate / 1000} kHz${codec.channels ? ` ${codec.channels} ch` : ""}`;
      if (prev) st.recvKbps = ((inbound.bytesReceived - prev.recvBytes) * 8) / (now - prev.t);
    }
    if (outbound) {
      st.packetsSent = outbound.packetsSent || 0;
      if (prev) st.sendKbps = ((outbound.bytesSent - prev.sentBytes) * 8) / (now - prev.t);
      if (!st.codec) {
        const codec = byId.get(outbound.codecId);
        if (codec) st.codec = `${codec.mimeType.replace(/^audio\//, "")} ${codec.clockRate / 1000} kHz`;
      }
    }
    this.prevStats = { t: now, recvBytes: inbound?.bytesReceived || 0, sentBytes: outbound?.bytesSent || 0 };
    st.path = this.path;
    st.relay = this.relay;
    // Loss over the last second, for the graph.
    const recvLost = inbound ? { r: inbound.packetsReceived || 0, l: Math.max(0, inbound.packetsLost || 0) } : { r: 0, l: 0 };
    const last = this.lastLoss || { r: 0, l: 0 };
    const dr = recvLost.r - last.r, dl = recvLost.l - last.l;
    this.lastLoss = recvLost;
    st.recentLoss = dr + dl > 0 ? Math.max(0, dl) / (dr + dl) : 0;
    this.history.push({ rtt: st.rtt ?? 0, loss: st.recentLoss });
    if (this.history.length > 60) this.history.shift();
    this.stats = st;
    this.ui.onCallStats?.(this, st);
  }
}


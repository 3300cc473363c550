// Files in the browser (docs/files.md, "The page"): offers that come in
// "file" envelopes, fetched over a data-only WebRTC connection the sender
// offers (client/filep2p.go's protocol: the receiver pulls from its first
// missing chunk) or from the login server's store; files this page sends,
// served the same way to a Go receiver, or left in the store for one that
// is offline. Chunks are sealed and opened with js/filewire.js. A received
// chunk goes to IndexedDB (database "parley-files") as it comes, so a cut
// connection, or a reload of the page, goes on from the first missing
// chunk; a file is shown as received only once the SHA-256 its sender
// signed matches.

import { hex, eqBytes, sleep } from "./util.js";
import * as im from "./im.js";
import * as G from "./group.js";
import * as W from "./filewire.js";
import { LoginError } from "./login.js";
import {
  IM_GROUP_PEER_PREFIX as PEER_PREFIX,
  // The data channel of client/filep2p.go (docs/protocol.md, "Files": over a
  // data channel; client/im/filewire.go).
  IM_FILE_P2P_LABEL as LABEL, IM_FILE_P2P_HEADER as HEADER, IM_FILE_P2P_PIECE as PIECE, IM_FILE_P2P_MAX_CTRL as MAX_CTRL,
  IM_FILE_P2P_WANT as WANT, IM_FILE_P2P_ACK as ACK, IM_FILE_P2P_DONE as DONE, IM_FILE_P2P_ACK_EVERY as ACK_EVERY,
  IM_FILE_P2P_HIGH_WATER as HIGH_WATER, IM_FILE_P2P_LOW_WATER as LOW_WATER, IM_FILE_P2P_GATHER_WAIT_MS as GATHER_WAIT,
  IM_FILE_P2P_ANSWER_WAIT_MS as ANSWER_WAIT, IM_FILE_P2P_CONNECT_WAIT_MS as CONNECT_WAIT, IM_FILE_P2P_STALL_MS as STALL,
  IM_FILE_P2P_ATTEMPTS as ATTEMPTS, IM_FILE_P2P_REDIAL_MS as REDIAL,
  // Through a relay (files.md, "Relays, and voice first"): im.FileRelayRate.
  IM_FILE_RELAY_BUDGET as RELAY_BUDGET, IM_FILE_RELAY_PERCENT as RELAY_PERCENT, IM_FILE_CALL_RELAY_COST as CALL_COST,
  IM_FILE_MIN_RELAY_RATE as MIN_RELAY_RATE,
  // Through the store (client/filerecv.go).
  IM_FILE_UPLOAD_WAIT_MS as UPLOAD_WAIT, IM_FILE_RETRY_MS as RETRY,
} from "./wire.gen.js";

// What a page takes or sends: the whole file is hashed at once (WebCrypto
// has no incremental SHA-256), so it must fit in memory.
export const MAX_PAGE_FILE = 512 << 20;
// Types a received file's Blob may have (shown inline); anything else is
// application/octet-stream, so that no received file can open as a page of
// this origin.
const IMAGE_TYPES = new Set(["image/jpeg", "image/png", "image/gif", "image/webp"]);
const PREVIEW_TYPES = new Set(["image/jpeg", "image/png", "image/gif"]);

// ---- IndexedDB: incoming files and their chunks ----

function openDB() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open("parley-files", 1);
    r.onupgradeneeded = () => {
      r.result.createObjectStore("in", { keyPath: "k" });
      r.result.createObjectStore("chunks");
    };
    r.onsuccess = () => {
      r.result.onversionchange = () => { r.result.close(); dbp = null; }; // a newer page upgrading it: let it
      resolve(r.result);
    };
    r.onerror = () => reject(r.error);
  });
}
let dbp = null;
const db = () => (dbp ||= openDB());
const req = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
async function run(stores, mode, f) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(stores, mode);
    let out;
    Promise.resolve(f(t)).then((v) => { out = v; }, reject);
    t.oncomplete = () => resolve(out);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}
const chunkRange = (k) => IDBKeyRange.bound([k, 0], [k, Infinity]);

class FileError extends Error {
  constructor(message, permanent = false) { super(message); this.permanent = permanent; }
}

// gathered waits until pc has gathered its candidates (at most ms): no
// trickle, one signal each way.
function gathered(pc, ms) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") { resolve(); return; }
    const t = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") { clearTimeout(t); resolve(); } });
  });
}

// relayed reports whether pc's selected candidate pair goes through a relay.
async function relayed(pc) {
  let report;
  try { report = await pc.getStats(); } catch { return false; }
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  let pair = null;
  report.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair; });
  if (!pair) report.forEach((s) => { if (!pair && s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
  if (!pair) return false;
  return byId.get(pair.localCandidateId)?.candidateType === "relay" || byId.get(pair.remoteCandidateId)?.candidateType === "relay";
}

// makePreview is client/filepreview.go's preview in the browser: a JPEG of
// at most 160 pixels a side and MAX_PREVIEW bytes, of a JPEG, PNG or GIF up
// to 32 MB and 50 megapixels; none (empty) otherwise.
async function makePreview(file, type) {
  const none = new Uint8Array(0);
  if (!PREVIEW_TYPES.has(type) || file.size > 32 << 20 || typeof OffscreenCanvas === "undefined") return none;
  try {
    const bmp = await createImageBitmap(file);
    if (bmp.width * bmp.height > 50e6) return none;
    const s = Math.min(1, 160 / Math.max(bmp.width, bmp.height));
    const c = new OffscreenCanvas(Math.max(1, Math.round(bmp.width * s)), Math.max(1, Math.round(bmp.height * s)));
    c.getContext("2d").drawImage(bmp, 0, 0, c.width, c.height);
    for (const quality of [0.8, 0.6, 0.4, 0.2]) {
      const b = await c.convertToBlob({ type: "image/jpeg", quality });
      if (b.size <= W.MAX_PREVIEW) return new Uint8Array(await b.arrayBuffer());
    }
  } catch { /* not a picture the browser can read */ }
  return none;
}

// hashOf is the SHA-256 of a Blob in hex (read whole: WebCrypto's digest
// is not incremental; the buffer goes once this returns).
async function hashOf(blob) {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer())));
}

// Files is the messenger's files part (Messenger.files). ui (set by
// app.js): {changed(k): a file's view changed, notice(text), calls(): how
// many calls this page has in progress}.
export class Files {
  constructor(m) {
    this.m = m;
    this.ui = {};
    this.views = new Map(); // file key → view {k, dir, name, size, type, status, bytes, error, url, previewUrl, route, resent}
    this.ins = new Map(); // file key → incoming transfer in memory
    this.outs = new Map(); // file id → outgoing transfer (this page's session only)
    this.receiving = new Map(); // file key → {stop(), done} of a direct connection receiving now
    this.fetching = new Set(); // file keys fetched from the store now
    this.answers = new Map(); // file id → resolve(sdp) of a sender waiting for an answer
    // For the page's tests: cut a connection once a transfer passes cutAt
    // bytes (or, with reload, reload the page there).
    this.test = { cutAt: 0, cuts: 0, reload: false, wants: [] };
  }

  get user() { return this.m.user; }
  inKey(from, id) { return `${this.user}\n${from}\n${id}`; }

  // ---- views (what the conversation shows of a file) ----

  view(k) { return this.views.get(k); }

  setView(k, patch) {
    const v = { ...(this.views.get(k) || { k }), ...patch };
    this.views.set(k, v);
    this.ui.changed?.(k);
    return v;
  }

  // ---- envelopes ----

  // opened handles a "file" envelope that verified and opened (o from
  // im.open, its body bytes in o.body); via as for messages.
  async opened(o, via) {
    let b;
    try {
      b = W.parseBody(o.body);
    } catch (e) {
      console.warn("refusing a file envelope from", o.from, via, e.message);
      this.m.refuse(o.from, e.message);
      return;
    }
    if (b.t === W.BODY_OFFER) { await this.openedOffer(o, b, via); return; }
    if (o.from === this.user) return;
    if (b.t === W.BODY_DONE) {
      this.m.ack(o.from, o.id, via); // its sender waits for the receipt
      const out = this.outs.get(b.file);
      if (out && (out.group ? out.members.includes(o.from) : out.peer === o.from)) {
        out.delivered = true;
        out.kick?.();
        this.setView(out.k, { status: "delivered", bytes: out.offer.size });
      }
      return;
    }
    if (b.sdpType === "answer") {
      const out = this.outs.get(b.file);
      if (out && out.peer === o.from) this.answers.get(b.file)?.(b.sdp);
      return;
    }
    this.receiveDirect(this.inKey(o.from, b.file), b.sdp).catch((e) => console.warn("a direct file transfer", e.message));
  }

  // openedOffer stores the offer as the file's entry in the history, shows
  // it, records it for fetching, and acknowledges it (client.openedOffer).
  async openedOffer(o, b, via) {
    const f = b.offer;
    const m = { id: W.messageID(b), peer: o.from, dir: "in", fromDevice: o.fromDevice, seq: o.seq, ts: o.ts, text: W.fileNote(f), state: "received" };
    if (b.g) {
      const g = this.m.groups.states.get(b.g);
      if (!g || !G.isMember(g, o.from) || !G.isMember(g, this.user)) {
        console.warn("a file offered to a group this page does not know the sender in", o.from, b.g);
        return;
      }
      Object.assign(m, { peer: PEER_PREFIX + b.g, from: o.from, seq: b.seq });
    }
    const k = this.inKey(o.from, f.id);
    if (o.from === this.user) {
      Object.assign(m, { dir: "out", state: "sent" }); // what another device of mine sent
      if (!b.g) m.peer = o.to;
    } else {
      m.file = { k, name: f.name, size: f.size, type: f.type };
      if (!this.m.cfg.isReading?.(m.peer)) m.unread = true;
      else m.seen = true;
    }
    const isNew = await this.m.hist.add(m);
    if (!b.g || via !== "mailbox") this.m.ack(o.from, o.id, via);
    if (o.from === this.user) { if (isNew) this.m.cfg.onMessage(m, via); return; }
    let st = await run("in", "readonly", (t) => req(t.objectStore("in").get(k)));
    if (!st) {
      st = { k, owner: this.user, offer: f, from: o.from, group: b.g, mid: b.mid, peer: m.peer, fetched: 0, done: false, failed: "" };
      await run("in", "readwrite", (t) => { t.objectStore("in").put(st); });
    } else if (f.stored && !st.offer.stored) {
      st.offer.stored = true; // offered again through the store
      await run("in", "readwrite", (t) => { t.objectStore("in").put(st); });
      if (this.ins.has(k)) this.ins.get(k).st.offer.stored = true;
    }
    if (!this.views.has(k)) this.setView(k, { dir: "in", name: f.name, size: f.size, type: f.type, status: st.done ? "done" : "offered", bytes: 0 });
    if (f.preview.length && !this.views.get(k).previewUrl) {
      this.setView(k, { previewUrl: URL.createObjectURL(new Blob([f.preview], { type: "image/jpeg" })) });
    }
    if (isNew) {
      this.m.cfg.onMessage(m, via);
      if (m.seen) this.m.queueRead(m.peer, [m.id]);
    }
    if (st.offer.stored && !st.done && !st.failed) this.fetchStored(k);
  }

  // sendBody seals body to user to's devices (not this one) and sends it:
  // like a message (mail: data channel, supernode, mailbox), else online only.
  async sendBody(to, body, mail = false) {
    const devs = (await this.m.devicesOf(to)).filter((d) => !eqBytes(d.key, this.m.cfg.pub));
    if (!devs.length) return;
    const { env } = await im.seal(await this.m.sender(), im.KIND_FILE, im.newMessageID(), to, 0, Date.now(), W.bodyBytes(body), devs);
    if (mail) { await this.m.deliver(env, to === this.user ? [] : devs, to === this.user ? devs : []); return; }
    if (this.m.sendChannel(to, JSON.stringify(env))) return;
    if (!this.m.cfg.link?.online) throw new FileError("not connected to the Parley network");
    await this.m.cfg.link.send(to, env);
  }

  // ---- incoming files ----

  // incoming loads file k's state, the chunks held, and its key.
  async incoming(k) {
    let inc = this.ins.get(k);
    if (inc) return inc;
    const [st, keys] = await run(["in", "chunks"], "readonly", async (t) => [
      await req(t.objectStore("in").get(k)), await req(t.objectStore("chunks").getAllKeys(chunkRange(k))),
    ]);
    if (!st) return null;
    inc = this.ins.get(k); // loaded meanwhile
    if (inc) return inc;
    inc = { k, st, have: new Set(keys.map((x) => x[1])), key: await W.fileKey(st.offer.key), n: W.chunksOf(st.offer.size) };
    inc.bytes = [...inc.have].reduce((a, i) => a + W.plainSize(st.offer.size, i), 0);
    this.ins.set(k, inc);
    return inc;
  }

  missing(inc) {
    let i = 0;
    while (i < inc.n && inc.have.has(i)) i++;
    return i;
  }

  async saveState(inc) { await run("in", "readwrite", (t) => { t.objectStore("in").put(inc.st); }); }

  // open opens sealed chunk i of inc (a chunk that does not open fails
  // the file).
  open(inc, i, sealed) {
    return W.openChunk(inc.st.offer, inc.key, i, sealed).catch((e) => { throw new FileError(e.message, true); });
  }

  // keep stores opened chunks [{i, plain}] in one transaction: only then
  // are they held (acknowledged, and not asked for again).
  async keep(inc, items) {
    items = items.filter((it) => !inc.have.has(it.i));
    if (!items.length) return;
    await run("chunks", "readwrite", (t) => { for (const it of items) t.objectStore("chunks").put(it.plain.buffer, [inc.k, it.i]); });
    for (const it of items) {
      if (inc.have.has(it.i)) continue;
      inc.have.add(it.i);
      inc.bytes += it.plain.length;
    }
  }

  async put(inc, i, sealed) { await this.keep(inc, [{ i, plain: await this.open(inc, i, sealed) }]); }

  progress(inc, route) {
    this.setView(inc.k, { status: "receiving", bytes: inc.bytes, route });
  }

  // blob is a received file's contents, from its chunks.
  async blob(inc, type) {
    const parts = await run("chunks", "readonly", (t) => req(t.objectStore("chunks").getAll(chunkRange(inc.k))));
    return new Blob(parts, { type });
  }

  // finish checks the whole file against the hash its sender signed, shows
  // it, tells the sender and frees the store's copy (client sink.finish).
  async finish(inc, route) {
    const o = inc.st.offer;
    if (inc.have.size < inc.n) throw new FileError(`${o.name}: ${inc.bytes} of ${o.size} bytes here`);
    if (inc.st.done) return;
    const type = IMAGE_TYPES.has(o.type) ? o.type : "application/octet-stream";
    const blob = await this.blob(inc, type);
    const sum = await hashOf(blob);
    if (blob.size !== o.size || sum !== o.hash) {
      await run("chunks", "readwrite", (t) => { t.objectStore("chunks").delete(chunkRange(inc.k)); });
      inc.have.clear();
      inc.bytes = 0;
      throw new FileError(`${o.name}: the file does not match the hash its sender signed`, true);
    }
    inc.st.done = true;
    await this.saveState(inc);
    const sealed = o.size + inc.n * W.OVERHEAD;
    const resent = Math.max(0, inc.st.fetched - sealed);
    this.setView(inc.k, { status: "done", bytes: o.size, url: URL.createObjectURL(blob), blob, route, resent, hash: sum });
    if (o.stored) this.api("DELETE", `/api/v1/files/${o.id}`).catch((e) => console.warn("deleting a stored file", e.message));
    this.sendBody(inc.st.from, { t: W.BODY_DONE, file: o.id }, true).catch((e) => console.warn("telling the sender a file arrived", e.message));
  }

  failed(inc, e) {
    if (e.permanent) {
      inc.st.failed = e.message;
      this.saveState(inc).catch(() => {});
    }
    this.setView(inc.k, { status: e.permanent ? "failed" : "stopped", error: e.message, bytes: inc.bytes });
  }

  // receiveDirect answers a sender's offer of a data channel for file k
  // and pulls the chunks it lacks over it (client.receiveDirect).
  async receiveDirect(k, offerSDP) {
    const inc = await this.incoming(k);
    if (!inc || inc.st.failed) return;
    const o = inc.st.offer;
    if (inc.st.done) { // the sender missed the word: say it again
      await this.sendBody(inc.st.from, { t: W.BODY_DONE, file: o.id });
      return;
    }
    if (o.size > MAX_PAGE_FILE) {
      this.setView(k, { status: "failed", error: `too large for the browser (over ${W.humanSize(MAX_PAGE_FILE)}): receive it with parley listen` });
      return;
    }
    const old = this.receiving.get(k);
    if (old) { old.stop(); await Promise.race([old.done, sleep(2000)]); } // the sender connects again: this one takes over
    if (this.receiving.get(k)) return;
    let stop;
    const stopped = new Promise((r) => { stop = r; });
    const r = { stop: () => stop() };
    r.done = this.pull(inc, offerSDP, stopped).finally(() => { if (this.receiving.get(k) === r) this.receiving.delete(k); });
    this.receiving.set(k, r);
    return r.done;
  }

  async pull(inc, offerSDP, stopped) {
    const o = inc.st.offer;
    const pc = new RTCPeerConnection({ iceServers: this.m.cfg.link?.iceServers || [] });
    let ended = false, dc = null, wake = null, fail = null;
    const kick = () => { const w = wake; wake = null; w?.(); };
    const nap = (ms) => new Promise((res) => { wake = res; setTimeout(res, ms); });
    const end = (e) => { if (!fail) fail = e; ended = true; kick(); };
    stopped.then(() => end(new FileError("replaced by a new connection")));
    pc.onconnectionstatechange = () => { if (pc.connectionState === "failed" || pc.connectionState === "closed") end(new FileError("the connection was cut")); };
    let chain = Promise.resolve(), lastData = Date.now();
    let idx = -1, cur = null, curLen = 0, batch = [], route = "direct";
    const flush = async () => {
      const b = batch;
      batch = [];
      await this.keep(inc, b);
      say({ t: ACK, bytes: inc.bytes });
      this.saveState(inc).catch(() => {});
      this.progress(inc, route);
      if (this.test.reload && this.test.cutAt && inc.bytes >= this.test.cutAt) location.reload(); // the page goes away mid-transfer
    };
    const say = (c) => { try { dc.send(JSON.stringify(c)); } catch { /* closing */ } };
    const onPiece = (data) => {
      if (ended) return;
      const p = new Uint8Array(data);
      lastData = Date.now();
      inc.st.fetched += Math.max(0, p.length - HEADER);
      if (p.length <= HEADER) { end(new FileError(`a data channel message of ${p.length} bytes`, true)); return; }
      const dv = new DataView(p.buffer, p.byteOffset, p.length);
      const i = Number(dv.getBigUint64(0)), off = dv.getUint32(8);
      const want = W.sealedSize(o.size, i);
      if (off === 0 && want > 0) { idx = i; cur = new Uint8Array(want); curLen = 0; }
      if (want < 0 || i !== idx || off !== curLen || off + p.length - HEADER > want) {
        end(new FileError(`chunk ${i} at ${off}: out of order or out of range`, true));
        return;
      }
      cur.set(p.subarray(HEADER), off);
      curLen += p.length - HEADER;
      if (this.test.cutAt && !this.test.reload && inc.st.fetched >= this.test.cutAt) {
        this.test.cutAt = 0;
        this.test.cuts++;
        pc.close();
        end(new FileError("cut by the test"));
        return;
      }
      if (curLen < want) return;
      const sealed = cur;
      idx = -1; cur = null;
      // Opened as they come, stored ACK_EVERY at a time (one transaction:
      // a page keeps up with a sender on loopback), and acknowledged.
      chain = chain.then(async () => {
        if (fail?.permanent) return;
        batch.push({ i, plain: await this.open(inc, i, sealed) });
        if (batch.length < ACK_EVERY && inc.have.size + batch.length < inc.n && !ended) return;
        await flush();
        if (inc.have.size === inc.n) kick();
      }).catch((e) => end(e.permanent ? e : new FileError(e.message)));
    };
    try {
      pc.ondatachannel = (ev) => {
        if (ev.channel.label !== LABEL || dc) return;
        dc = ev.channel;
        dc.binaryType = "arraybuffer";
        dc.onopen = kick;
        dc.onclose = () => end(new FileError("the connection was cut"));
        dc.onmessage = (ev2) => { if (typeof ev2.data !== "string") onPiece(ev2.data); };
        kick();
      };
      await pc.setRemoteDescription({ type: "offer", sdp: offerSDP });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc, GATHER_WAIT);
      await this.sendBody(inc.st.from, { t: W.BODY_SIGNAL, file: o.id, sdpType: "answer", sdp: pc.localDescription.sdp });
      const until = Date.now() + CONNECT_WAIT;
      while (!ended && dc?.readyState !== "open") {
        if (Date.now() > until) throw new FileError(`no data channel in ${CONNECT_WAIT / 1000} s`);
        await nap(100);
      }
      if (ended) throw fail;
      route = (await relayed(pc)) ? "relay" : "direct";
      this.progress(inc, route);
      this.test.wants.push(this.missing(inc));
      say({ t: WANT, from: this.missing(inc) });
      lastData = Date.now();
      while (!ended && inc.have.size < inc.n) {
        if (Date.now() - lastData > STALL) throw new FileError(`nothing from the sender for ${STALL / 1000} s`);
        await nap(250);
      }
      await chain;
      if (batch.length && !fail?.permanent) await flush();
      if (fail?.permanent || inc.have.size < inc.n) throw fail || new FileError("the connection was cut");
      await this.finish(inc, route);
      say({ t: DONE });
      // Let "done" leave before the connection closes.
      for (let t = Date.now(); dc.bufferedAmount > 0 && Date.now() - t < 1000;) await sleep(10);
      await sleep(100);
    } catch (e) {
      await chain.catch(() => {});
      if (batch.length && !fail?.permanent) await flush().catch(() => {}); // verified chunks, kept for the next connection
      const err = e instanceof FileError ? e : new FileError(e?.message || String(e));
      this.saveState(inc).catch(() => {});
      if (!(fail && /replaced/.test(fail.message))) this.failed(inc, err);
      if (!err.permanent) console.info("a direct file transfer stopped:", err.message);
    } finally {
      ended = true;
      pc.close();
    }
  }

  // api is one request to the login server's file store.
  async api(method, path, body, type) {
    const headers = { Authorization: "Parley " + (await this.m.cfg.credential()) };
    if (type) headers["Content-Type"] = type;
    let resp;
    try {
      resp = await fetch((this.m.cfg.api.base || "") + path, { method, headers, body, cache: "no-store" });
    } catch {
      throw new LoginError(0, "login server unreachable");
    }
    if (!resp.ok) {
      let data = {};
      try { data = await resp.json(); } catch { /* not JSON */ }
      throw new LoginError(resp.status, data.error || `HTTP ${resp.status}`, data.retry_after);
    }
    return resp;
  }

  // storedChunk fetches sealed chunk i of stored file id, waiting up to
  // UPLOAD_WAIT for one its sender has not uploaded yet.
  async storedChunk(id, i) {
    const until = Date.now() + UPLOAD_WAIT;
    for (;;) {
      try {
        const r = await this.api("GET", `/api/v1/files/${id}/chunks/${i}`);
        return new Uint8Array(await r.arrayBuffer());
      } catch (e) {
        if (e.status === 404 && !e.message.startsWith("chunk not stored")) {
          throw new FileError("the file is no longer in the login server's store (expired, withdrawn, or taken more than a day ago)", true);
        }
        if (e.status !== 404 || Date.now() > until) throw new FileError(e.message);
      }
      await sleep(500);
    }
  }

  // fetchStored fetches file k from the store from its first missing chunk
  // (client.fetch); a failure that may mend is tried again in RETRY.
  async fetchStored(k) {
    if (this.fetching.has(k) || this.receiving.has(k)) return;
    this.fetching.add(k);
    let inc;
    try {
      inc = await this.incoming(k);
      if (!inc || inc.st.done || inc.st.failed) return;
      const o = inc.st.offer;
      if (o.size > MAX_PAGE_FILE) throw new FileError(`too large for the browser (over ${W.humanSize(MAX_PAGE_FILE)}): receive it with parley listen`, true);
      for (let i = this.missing(inc); i < inc.n; i++) {
        if (inc.have.has(i) || this.stopped) continue;
        const sealed = await this.storedChunk(o.id, i);
        inc.st.fetched += sealed.length;
        await this.put(inc, i, sealed);
        this.progress(inc, "store");
        if (i % 16 === 0) await this.saveState(inc);
      }
      if (this.stopped) return;
      await this.finish(inc, "store");
    } catch (e) {
      const err = e instanceof FileError ? e : new FileError(e?.message || String(e));
      if (inc) this.failed(inc, err);
      if (!err.permanent && !this.stopped) setTimeout(() => this.fetchStored(k), RETRY);
    } finally {
      this.fetching.delete(k);
    }
  }

  // resume fetches what an earlier page left half-way from the store, and
  // shows the files received before (a reload).
  async resume() {
    const all = await run("in", "readonly", (t) => req(t.objectStore("in").getAll()));
    for (const st of all) {
      if (st.owner !== this.user) continue;
      const f = st.offer;
      if (!this.views.has(st.k)) {
        this.setView(st.k, { dir: "in", name: f.name, size: f.size, type: f.type, status: st.done ? "done" : st.failed ? "failed" : "offered", error: st.failed, bytes: 0 });
        if (f.preview.length) this.setView(st.k, { previewUrl: URL.createObjectURL(new Blob([f.preview], { type: "image/jpeg" })) });
      }
      if (st.done) {
        this.setView(st.k, { bytes: f.size }); // its Blob is made when a card shows it (ensureURL)
      } else if (!st.failed && f.stored) {
        this.fetchStored(st.k);
      }
    }
  }

  // ensureURL makes the Blob URL of a file received before this page
  // started, from its chunks, when a card shows it.
  async ensureURL(k) {
    const v = this.views.get(k);
    if (!v || v.dir !== "in" || v.status !== "done" || v.url || v.loading) return;
    v.loading = true;
    try {
      const inc = await this.incoming(k);
      const blob = await this.blob(inc, IMAGE_TYPES.has(v.type) ? v.type : "application/octet-stream");
      this.setView(k, { url: URL.createObjectURL(blob), blob, loading: false });
    } catch (e) {
      v.loading = false;
      console.warn("a received file", e.message);
    }
  }

  // ---- sending ----

  // send sends file (a File) to peer (a user, or a group's peer "#id"):
  // directly when the peer is online with a device that takes the
  // connection, else through the login server's store. Resolves once the
  // receiver has it (directly) or it is in the store and offered.
  async send(peer, file) {
    const group = G.groupOfPeer(peer);
    if (file.size === 0) throw new im.IMError("empty", `${file.name} is empty.`);
    if (file.size > MAX_PAGE_FILE) throw new im.IMError("too-big", `${file.name} is too large to send from the browser (over ${W.humanSize(MAX_PAGE_FILE)}); send it with parley send.`);
    W.checkFileName(file.name);
    let members = [];
    if (group) {
      const g = this.m.groups.states.get(group);
      if (!g || !G.isMember(g, this.user)) throw new im.IMError("not-member", "You are not a member of this group.");
      members = g.members.filter((u) => u !== this.user);
      if (!members.length) throw new im.IMError("alone", "The group has no other member.");
    }
    const type = W.validMediaType(file.type) ? file.type : "";
    const offer = {
      id: im.newMessageID(), name: file.name, size: file.size, type, hash: await hashOf(file), // the file is read again chunk by chunk
      key: crypto.getRandomValues(new Uint8Array(32)), preview: await makePreview(file, type), stored: false,
    };
    W.checkOffer(offer);
    const k = `out\n${offer.id}`;
    const out = { k, offer, file, peer, group, members, key: await W.fileKey(offer.key), mid: group ? im.newMessageID() : "", delivered: false, sent: 0 };
    this.outs.set(offer.id, out);
    const url = URL.createObjectURL(file);
    this.setView(k, {
      dir: "out", name: offer.name, size: offer.size, type, status: "sending", bytes: 0, url,
      previewUrl: IMAGE_TYPES.has(type) ? url : "",
    });
    const ts = Date.now();
    const seq = await this.m.hist.nextSeq(peer);
    out.seq = seq;
    const m = { peer, dir: "out", id: group ? out.mid : offer.id, seq, ts, text: W.fileNote(offer), state: "sending", fromDevice: hex(this.m.cfg.pub), file: { k, name: offer.name, size: offer.size, type } };
    if (group) m.from = this.user;
    await this.m.hist.add(m);
    this.m.cfg.onMessage(m, "");
    try {
      let direct = false;
      if (!group) {
        let online = 0;
        try { online = (await this.m.cfg.link.lookup(peer)).delivered || 0; } catch { /* not connected: the store */ }
        if (online > 0) {
          await this.offer(out, ts);
          direct = await this.sendDirect(out);
        }
      }
      if (!direct) await this.sendStored(out, ts);
      return { id: offer.id, route: out.route, resent: out.resent || 0 };
    } catch (e) {
      this.setView(k, { status: "failed", error: e.message });
      const done = await this.m.hist.setState(peer, [m.id], "failed");
      if (done.length) this.m.cfg.onState(peer, done, "failed");
      throw e;
    }
  }

  // offer sends the offer envelope: to the peer's devices and mine, like a
  // message (1:1), or one to each member (a group's, always stored).
  async offer(out, ts) {
    const snd = await this.m.sender();
    if (!out.group) {
      const devs = await this.m.recipients(out.peer);
      const { env } = await im.seal(snd, im.KIND_FILE, out.offer.id, out.peer, out.seq, ts, W.bodyBytes({ t: W.BODY_OFFER, offer: out.offer }), devs.all);
      await this.m.deliver(env, devs.peerDevs, devs.myDevs);
      return;
    }
    const body = W.bodyBytes({ t: W.BODY_OFFER, offer: out.offer, g: out.group, mid: out.mid, seq: out.seq });
    let reached = 0, last = null;
    for (const u of [...out.members, this.user]) {
      try {
        const devs = (await this.m.devicesOf(u)).filter((d) => !eqBytes(d.key, this.m.cfg.pub));
        if (!devs.length) continue;
        const { env } = await im.seal(snd, im.KIND_FILE, await W.envelopeID(out.mid, u), u, 0, ts, body, devs);
        await this.m.deliver(env, u === this.user ? [] : devs, u === this.user ? devs : []);
        if (u !== this.user) reached++;
      } catch (e) {
        last = e;
        console.warn("offering a group's file to", u, e.message);
      }
    }
    if (!reached && last) throw last;
    const done = await this.m.hist.setState(out.peer, [out.mid], "sent");
    if (done.length) this.m.cfg.onState(out.peer, done, "sent");
  }

  // sendDirect serves the file over data channels, connecting again after a
  // cut (client.sendDirect). Resolves true once the receiver has it, false
  // when no device of theirs answered or every attempt failed (the store
  // is the way).
  async sendDirect(out) {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      let r;
      try {
        r = await this.serve(out);
      } catch (e) {
        if (out.delivered) r = "done";
        else if (this.stopped) throw e;
        else {
          console.info("a direct file transfer stopped:", e.message);
          if (e.noAnswer && attempt === 0) return false;
          await sleep(REDIAL);
          continue;
        }
      }
      if (r === "done" || out.delivered) {
        const sealed = out.offer.size + W.chunksOf(out.offer.size) * W.OVERHEAD;
        out.resent = Math.max(0, out.sent - sealed);
        this.setView(out.k, { status: "delivered", bytes: out.offer.size, route: out.route, resent: out.resent });
        return true;
      }
    }
    return false;
  }

  // serve is one connection of sendDirect (client.directAttempt).
  async serve(out) {
    const o = out.offer, n = W.chunksOf(o.size);
    const pc = new RTCPeerConnection({ iceServers: this.m.cfg.link?.iceServers || [] });
    const dc = pc.createDataChannel(LABEL, { ordered: true });
    dc.binaryType = "arraybuffer";
    let closed = false, wake = null;
    const kick = () => { const w = wake; wake = null; w?.(); };
    out.kick = kick;
    const nap = (ms) => new Promise((res) => { wake = res; setTimeout(res, ms); });
    const ctrl = [];
    dc.onopen = kick;
    dc.onclose = () => { closed = true; kick(); };
    pc.onconnectionstatechange = () => { if (pc.connectionState === "failed" || pc.connectionState === "closed") { closed = true; kick(); } };
    dc.bufferedAmountLowThreshold = LOW_WATER;
    dc.onbufferedamountlow = kick;
    dc.onmessage = (ev) => {
      if (typeof ev.data !== "string" || ev.data.length > MAX_CTRL) return;
      try { ctrl.push(JSON.parse(ev.data)); kick(); } catch { /* not ours */ }
    };
    const cut = (why) => Object.assign(new FileError(why), { cut: true });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, GATHER_WAIT);
      const answer = new Promise((res) => this.answers.set(o.id, res));
      await this.sendBody(out.peer, { t: W.BODY_SIGNAL, file: o.id, sdpType: "offer", sdp: pc.localDescription.sdp });
      const sdp = await Promise.race([answer, sleep(ANSWER_WAIT).then(() => null)]);
      this.answers.delete(o.id);
      if (out.delivered) return "done";
      if (!sdp) throw Object.assign(new FileError("no device of the recipient answered for a direct connection"), { noAnswer: true });
      await pc.setRemoteDescription({ type: "answer", sdp });
      for (const until = Date.now() + CONNECT_WAIT; dc.readyState !== "open";) {
        if (closed) throw cut("the connection was cut");
        if (Date.now() > until) throw cut(`no direct connection in ${CONNECT_WAIT / 1000} s`);
        await nap(100);
      }
      out.route = (await relayed(pc)) ? "relay" : "direct";
      let next = -1, lastCtrl = Date.now(), pace = 0;
      const handle = () => {
        while (ctrl.length) {
          const c = ctrl.shift();
          lastCtrl = Date.now();
          // Go leaves a zero out (omitempty): {"t":"want"} is from chunk 0.
          const from = c?.from ?? 0, bytes = c?.bytes ?? 0;
          if (c?.t === WANT && Number.isSafeInteger(from) && from >= 0 && from <= n) next = from;
          else if (c?.t === ACK && Number.isSafeInteger(bytes)) this.setView(out.k, { status: "sending", bytes: Math.min(Math.max(bytes, 0), o.size), route: out.route });
          else if (c?.t === DONE) return true;
        }
        return out.delivered;
      };
      const check = () => {
        if (this.stopped) throw new FileError("signed out");
        if (closed) throw cut("the connection was cut");
        if (Date.now() - lastCtrl > STALL) throw cut(`nothing from the receiver for ${STALL / 1000} s`);
      };
      for (;;) {
        if (handle()) return "done";
        check();
        if (next < 0 || next >= n) { await nap(200); continue; }
        const i = next;
        const from = i * W.CHUNK, plain = new Uint8Array(await out.file.slice(from, from + W.plainSize(o.size, i)).arrayBuffer());
        const sealed = await W.sealChunk(o, out.key, i, plain);
        for (let off = 0; off < sealed.length; off += PIECE) {
          while (dc.bufferedAmount > HIGH_WATER) {
            if (handle()) return "done";
            check();
            await nap(100);
          }
          const part = sealed.subarray(off, Math.min(off + PIECE, sealed.length));
          if (out.route === "relay") pace = await this.pace(pace, part.length + HEADER);
          const piece = new Uint8Array(HEADER + part.length);
          const dv = new DataView(piece.buffer);
          dv.setBigUint64(0, BigInt(i));
          dv.setUint32(8, off);
          piece.set(part, HEADER);
          try { dc.send(piece); } catch (e) { throw cut(`the connection was cut: ${e.message}`); }
        }
        out.sent += sealed.length;
        if (this.test.cutAt && out.sent >= this.test.cutAt) { this.test.cutAt = 0; this.test.cuts++; pc.close(); throw cut("cut by the test"); }
        if (next === i) next++; // else a "want" came meanwhile: from there
      }
    } finally {
      this.answers.delete(o.id);
      out.kick = null;
      pc.close();
    }
  }

  // pace spaces n bytes at the relay's rate for files; next is when the
  // last send was due (ms), the result when this one is.
  async pace(next, n) {
    const rate = Math.max(Math.floor((RELAY_BUDGET * RELAY_PERCENT) / 100) - (this.ui.calls?.() || 0) * CALL_COST, MIN_RELAY_RATE);
    const now = performance.now();
    if (next < now) next = now;
    if (next - now > 1) await sleep(next - now);
    return next + (n / rate) * 1000;
  }

  // sendStored leaves the file in the login server's store for its
  // recipients, from the first chunk the store lacks, then offers it
  // (client.SendFile's store part).
  async sendStored(out, ts) {
    const o = out.offer;
    o.stored = true;
    out.route = "store";
    const recipients = out.group ? out.members : [out.peer];
    try {
      await this.api("POST", "/api/v1/files", JSON.stringify({ id: o.id, size: o.size, recipients }), "application/json");
    } catch (e) {
      if (e.status === 413) throw new im.IMError("too-big", `${o.name} is too large for the login server's store (${e.message}); send it while ${out.peer} is online.`);
      if (e.status === 507) throw new im.IMError("quota", `Your stored files on the login server are over their quota (${e.message}).`);
      throw e;
    }
    const info = await (await this.api("GET", `/api/v1/files/${o.id}`)).json();
    const n = W.chunksOf(o.size);
    for (let i = Math.max(0, info.have || 0); i < n; i++) {
      const from = i * W.CHUNK;
      const plain = new Uint8Array(await out.file.slice(from, from + W.plainSize(o.size, i)).arrayBuffer());
      const sealed = await W.sealChunk(o, out.key, i, plain);
      await this.api("PUT", `/api/v1/files/${o.id}/chunks/${i}`, sealed, "application/octet-stream");
      this.setView(out.k, { status: "sending", bytes: Math.min(from + plain.length, o.size), route: "store" });
    }
    await this.offer(out, ts);
    if (!out.delivered) this.setView(out.k, { status: "stored", bytes: o.size, route: "store" });
  }

  // stop ends every transfer of this page (sign-out); what was received
  // stays in IndexedDB for the next sign-in.
  stop() {
    this.stopped = true;
    for (const r of this.receiving.values()) r.stop();
    for (const out of this.outs.values()) out.kick?.();
  }

  // received lists the files received whole (for the tests): [{name, size,
  // hash, resent, route}].
  received() {
    return [...this.views.values()].filter((v) => v.dir === "in" && v.status === "done")
      .map((v) => ({ name: v.name, size: v.size, hash: v.hash || "", resent: v.resent || 0, route: v.route || "" }));
  }
}

// hasFile reports whether a drag carries files.
export const hasFile = (ev) => [...(ev.dataTransfer?.types || [])].includes("Files");


// The instant-message envelope of client/im.go, byte for byte, with WebCrypto
// only: device records (client/im_keys.go), sealing a message or receipt to a
// set of devices, and verifying and opening one. A group envelope's body is
// js/group.js's, a history envelope's js/histsync.js's. See docs/protocol.md
// ("Instant messages") and docs/web.md.

import { b64, unb64, utf8, fromUTF8, hex, concat, randomHex, validUser, field, u32, u64, eqBytes, blank } from "./util.js";
import { signContext, verifyContext, verifyCredential, parseCredential } from "./keys.js";
import {
  IM_ENVELOPE_VERSION as ENVELOPE_VERSION, IM_ENVELOPE_CONTEXT as ENVELOPE_CONTEXT, IM_DEVICE_CONTEXT as DEVICE_CONTEXT,
  IM_WRAP_INFO as WRAP_INFO, IM_KIND_MESSAGE as KIND_MESSAGE, IM_KIND_RECEIPT as KIND_RECEIPT,
  IM_KIND_TYPING as KIND_TYPING, IM_KIND_GROUP as KIND_GROUP, IM_RECEIPT_READ as RECEIPT_READ, IM_TYPING_ACTIVE as TYPING_ACTIVE,
  IM_TYPING_STOPPED as TYPING_STOPPED, IM_RECEIPT_DELIVERED as RECEIPT_DELIVERED, IM_MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES,
  IM_MAX_ENVELOPE_BYTES as MAX_ENVELOPE_BYTES, IM_MAX_ENVELOPE_DEVICES as MAX_ENVELOPE_DEVICES,
  IM_MAX_RECEIPT_IDS as MAX_RECEIPT_IDS, IM_COMPRESS_OVER as COMPRESS_OVER, IM_PAD_TO as PAD_TO,
  IM_MAX_CONTENT as MAX_CONTENT, IM_AEAD_OVERHEAD as AEAD_OVERHEAD, IM_WRAPPED_KEY_LEN as WRAPPED_KEY_LEN,
  IM_MESSAGE_CLOCK_SKEW_MS as CLOCK_SKEW, IM_X25519_KEY_SIZE as X25519_KEY_SIZE, IDENTITY_MAX_TOKEN_LEN,
  IM_KIND_HISTORY as KIND_HISTORY, IM_MAX_HISTORY_BODY as MAX_HISTORY_BODY, IM_KIND_FILE as KIND_FILE,
} from "./wire.gen.js";

export {
  ENVELOPE_VERSION, ENVELOPE_CONTEXT, DEVICE_CONTEXT, KIND_MESSAGE, KIND_RECEIPT, KIND_TYPING, KIND_GROUP, KIND_HISTORY, KIND_FILE, RECEIPT_DELIVERED,
  RECEIPT_READ, TYPING_ACTIVE, TYPING_STOPPED, MAX_MESSAGE_BYTES, MAX_ENVELOPE_BYTES, MAX_ENVELOPE_DEVICES, MAX_RECEIPT_IDS,
  MAX_CONTENT,
};

const KINDS = new Set([KIND_MESSAGE, KIND_RECEIPT, KIND_TYPING, KIND_GROUP, KIND_HISTORY, KIND_FILE]);
const MAX_TYPING_BODY = 256; // im.maxTypingBody

export class IMError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const zeroNonce = () => new Uint8Array(12);

export function validID(id) { return typeof id === "string" && /^[0-9a-f]{32}$/.test(id); }

// checkText is im.CheckText.
export function checkText(text) {
  const n = utf8(text).length;
  if (n > MAX_MESSAGE_BYTES) throw new IMError("too-long", `The message is too long (${n} bytes; at most ${MAX_MESSAGE_BYTES}).`);
  if (blank(text)) throw new IMError("empty", "The message is empty.");
}

// ---- X25519 device key ----

export async function generateX25519() {
  return crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
}

export async function x25519Public(kp) {
  return new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey));
}

// deviceMessage is user || 0x00 || ed25519 key || x25519 key.
export function deviceMessage(user, key, x) {
  return concat(utf8(user), new Uint8Array([0]), key, x);
}

export function signDevice(edPrivate, user, edPub, xPub) {
  return signContext(edPrivate, DEVICE_CONTEXT, deviceMessage(user, edPub, xPub));
}

// verifyDevice checks one entry of the login server's device list:
// {key, x25519, sig} in base64. Returns {user, key, x25519} or null.
export async function verifyDevice(user, d) {
  try {
    const key = unb64(d.key), x = unb64(d.x25519), sig = unb64(d.sig);
    if (key.length !== 32 || x.length !== X25519_KEY_SIZE || sig.length !== 64) return null;
    if (!(await verifyContext(key, DEVICE_CONTEXT, deviceMessage(user, key, x), sig))) return null;
    return { user, key, x25519: x };
  } catch {
    return null;
  }
}

// ---- wire helpers ----

// headerBytes is Envelope.headerBytes; e holds bytes (fromDevice) and strings.
function headerBytes(e) {
  return concat(
    ...field(utf8("parley-im-header")), ...field(u64(e.v)), ...field(utf8(e.kind)), ...field(utf8(e.id)),
    ...field(utf8(e.from)), ...field(e.fromDevice), ...field(utf8(e.credential)), ...field(utf8(e.to)),
    ...field(u64(e.seq)), ...field(u64(e.ts)),
  );
}

// signedMessage is Envelope.signedMessage.
function signedMessage(e) {
  const parts = [headerBytes(e), ...field(e.epk), u32(e.keys.length)];
  for (const k of e.keys) parts.push(...field(k.d), ...field(k.k));
  parts.push(...field(e.ct));
  return concat(...parts);
}

async function deflateRaw(b, decompress, max) {
  const s = new Blob([b]).stream().pipeThrough(decompress ? new DecompressionStream("deflate-raw") : new CompressionStream("deflate-raw"));
  const chunks = [];
  let n = 0;
  const r = s.getReader();
  for (;;) {
    const { done, value } = await r.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    if (max && n > max) { r.cancel(); throw new IMError("bad", "deflated body too large"); }
  }
  return concat(...chunks);
}

// frameContent: encoding || length (4 bytes BE) || body || zeros to a multiple of 64.
async function frameContent(body) {
  let enc = 0, data = body;
  if (body.length > COMPRESS_OVER && typeof CompressionStream !== "undefined") {
    const z = await deflateRaw(body, false);
    if (z.length < body.length) { enc = 1; data = z; }
  }
  let n = 5 + data.length;
  n += (PAD_TO - (n % PAD_TO)) % PAD_TO;
  const c = new Uint8Array(n);
  c[0] = enc;
  new DataView(c.buffer).setUint32(1, data.length);
  c.set(data, 5);
  return c;
}

async function unframeContent(c, max) {
  if (c.length < 5 || c.length % PAD_TO !== 0) throw new IMError("bad", "content framing");
  const n = new DataView(c.buffer, c.byteOffset).getUint32(1);
  if (n > c.length - 5) throw new IMError("bad", "content length");
  const data = c.subarray(5, 5 + n), pad = c.subarray(5 + n);
  if (pad.length >= PAD_TO || pad.some((z) => z !== 0)) throw new IMError("bad", "content padding");
  if (c[0] === 0) {
    if (data.length > max) throw new IMError("bad", "body too large");
    return data;
  }
  if (c[0] === 1) return deflateRaw(data, true, max);
  throw new IMError("bad", `content encoding ${c[0]}`);
}

async function aesKey(raw, usage) {
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, [usage]);
}

async function wrapKeyMaterial(shared, id, epk, device, x) {
  const info = concat(utf8(WRAP_INFO), utf8(id), epk, x, device);
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info }, ikm, 256));
}

async function x25519Shared(privateKey, pubRaw) {
  const pub = await crypto.subtle.importKey("raw", pubRaw, { name: "X25519" }, false, []);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: pub }, privateKey, 256));
}

// ---- sealing ----

// seal makes an envelope (as its JSON object) from sender s
// {user, device: Ed25519 CryptoKeyPair, devicePub: bytes, credential} to user
// `to`, for the verified device records `devices` (this device is skipped);
// body is the content's bytes (js/group.js seals group bodies with it,
// js/histsync.js history bodies).
export async function seal(s, kind, id, to, seq, ts, body, devices) {
  if (!validID(id)) throw new IMError("bad", "id");
  if (!validUser(to)) throw new IMError("bad", `not a user name: ${to}`);
  const { cred } = parseCredential(s.credential);
  if (cred.user !== s.user || !eqBytes(cred.pub, s.devicePub)) throw new IMError("sender", "own credential is not this device's");
  const recips = [];
  let toDevices = 0;
  for (const d of devices) {
    if (d.user !== to && d.user !== s.user) throw new IMError("bad", `device of ${d.user}`);
    if (eqBytes(d.key, s.devicePub) || recips.some((r) => eqBytes(r.key, d.key))) continue;
    recips.push(d);
    if (d.user === to) toDevices++;
  }
  if (toDevices === 0) throw new IMError("no-devices", `${to} has no device that can receive messages yet.`);
  if (recips.length > MAX_ENVELOPE_DEVICES) throw new IMError("too-many-devices", `${recips.length} devices, at most ${MAX_ENVELOPE_DEVICES}`);

  const content = await frameContent(body);
  if (content.length > MAX_CONTENT) throw new IMError("too-long", `${kind}: a body of ${body.length} bytes does not fit one envelope`);
  const e = { v: ENVELOPE_VERSION, kind, id, from: s.user, fromDevice: s.devicePub, credential: s.credential, to, seq, ts };
  const ck = crypto.getRandomValues(new Uint8Array(32));
  const eph = await generateX25519();
  e.epk = await x25519Public(eph);
  e.keys = [];
  for (const r of recips) {
    const shared = await x25519Shared(eph.privateKey, r.x25519);
    const k = await wrapKeyMaterial(shared, id, e.epk, r.key, r.x25519);
    const w = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: zeroNonce() }, await aesKey(k, "encrypt"), ck));
    e.keys.push({ d: r.key, k: w });
  }
  e.ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: zeroNonce(), additionalData: headerBytes(e) }, await aesKey(ck, "encrypt"), content));
  e.sig = await signContext(s.device.privateKey, ENVELOPE_CONTEXT, signedMessage(e));
  const obj = toWire(e);
  const n = utf8(JSON.stringify(obj)).length;
  if (n > MAX_ENVELOPE_BYTES) {
    throw new IMError("too-long", kind === KIND_MESSAGE || kind === KIND_GROUP ? `The message does not fit one envelope for ${recips.length} devices; shorten it.` : `${kind} too large`);
  }
  return { env: obj, recips };
}

function toWire(e) {
  return {
    v: e.v, kind: e.kind, id: e.id, from: e.from, from_device: b64(e.fromDevice), credential: e.credential,
    to: e.to, seq: e.seq, ts: e.ts, epk: b64(e.epk), keys: e.keys.map((k) => ({ d: b64(k.d), k: b64(k.k) })),
    ct: b64(e.ct), sig: b64(e.sig),
  };
}

export function newMessageID() { return randomHex(16); }

export async function sealMessage(s, to, devices, { id, seq, ts, text }) {
  checkText(text);
  if (!(seq >= 1)) throw new IMError("bad", "seq");
  return seal(s, KIND_MESSAGE, id || newMessageID(), to, seq, ts || Date.now(), utf8(text), devices);
}

// sealReceipt is im.SealReceiptState: state RECEIPT_DELIVERED (the default)
// or RECEIPT_READ.
export async function sealReceipt(s, to, devices, acked, state = RECEIPT_DELIVERED) {
  if (!acked.length || acked.length > MAX_RECEIPT_IDS || !acked.every(validID)) throw new IMError("bad", "receipt ids");
  if (state !== RECEIPT_DELIVERED && state !== RECEIPT_READ) throw new IMError("bad", "receipt state");
  const body = utf8(JSON.stringify({ state, acked }));
  return seal(s, KIND_RECEIPT, newMessageID(), to, 0, Date.now(), body, devices);
}

// sealTyping is im.SealTyping: the sender is typing (active) or stopped.
export async function sealTyping(s, to, devices, active) {
  const body = utf8(JSON.stringify({ state: active ? TYPING_ACTIVE : TYPING_STOPPED }));
  return seal(s, KIND_TYPING, newMessageID(), to, 0, Date.now(), body, devices);
}

// ---- opening ----

// isEnvelope: a deliver payload that is an IM envelope (the others are call signals).
export function isEnvelope(p) {
  return !!p && typeof p === "object" && KINDS.has(p.kind) && typeof p.ct === "string";
}

// decode parses and checks an envelope's form (Envelope.check); p is the
// parsed JSON object.
export function decode(p) {
  const bad = (what) => new IMError("bad", `malformed envelope: ${what}`);
  if (!p || typeof p !== "object") throw bad("not an object");
  if (p.v !== ENVELOPE_VERSION) throw bad(`version ${p.v}`);
  if (!KINDS.has(p.kind)) throw bad("kind");
  if (!validID(p.id)) throw bad("id");
  if (!validUser(p.from)) throw bad("from");
  if (!validUser(p.to)) throw bad("to");
  if (typeof p.credential !== "string" || !p.credential || p.credential.length > IDENTITY_MAX_TOKEN_LEN) throw bad("credential");
  if (!Number.isSafeInteger(p.seq) || !Number.isSafeInteger(p.ts) || p.seq < 0 || p.ts < 0) throw bad("seq or ts");
  let e;
  try {
    e = {
      v: p.v, kind: p.kind, id: p.id, from: p.from, fromDevice: unb64(p.from_device), credential: p.credential,
      to: p.to, seq: p.seq, ts: p.ts, epk: unb64(p.epk), keys: (p.keys || []).map((k) => ({ d: unb64(k.d), k: unb64(k.k) })),
      ct: unb64(p.ct), sig: unb64(p.sig),
    };
  } catch {
    throw bad("base64");
  }
  if (e.fromDevice.length !== 32) throw bad("from device");
  if (e.epk.length !== X25519_KEY_SIZE) throw bad("ephemeral key");
  if (!e.keys.length || e.keys.length > MAX_ENVELOPE_DEVICES) throw bad("number of wrapped keys");
  if (e.ct.length < AEAD_OVERHEAD + PAD_TO || e.ct.length > MAX_CONTENT + AEAD_OVERHEAD) throw bad("ciphertext size");
  if (e.sig.length !== 64) throw bad("signature");
  e.keys.forEach((k, i) => {
    if (k.d.length !== 32 || k.k.length !== WRAPPED_KEY_LEN) throw bad("wrapped key");
    if (e.keys.slice(0, i).some((o) => eqBytes(o.d, k.d))) throw bad("device wrapped twice");
  });
  return e;
}

// open is client.Open: me is the user, device {pub, x: X25519 CryptoKeyPair,
// xPub}, loginKey the login server's Ed25519 key. Returns
// {kind, id, from, fromDevice, to, seq, ts, text | acked, state | state | body}:
// a group envelope's body is its bytes, for js/group.js's openBody (which
// verifies its operations), and so is a history envelope's (js/histsync.js's
// openBody), which only comes from this user to this user (im.openHistory),
// and a file envelope's (js/files.js's parseBody).
export async function open(p, me, device, loginKey, now = Date.now()) {
  const e = decode(p);
  let cred;
  try {
    cred = await verifyCredential(loginKey, e.credential, e.ts / 1000);
  } catch (err) {
    throw new IMError("sender", `sender's credential: ${err.message}`);
  }
  if (cred.user !== e.from || !eqBytes(cred.pub, e.fromDevice)) throw new IMError("sender", `credential of ${cred.user} for another device`);
  if (!(await verifyContext(e.fromDevice, ENVELOPE_CONTEXT, signedMessage(e), e.sig))) throw new IMError("signature", "signature does not verify");
  if (e.ts - now > CLOCK_SKEW) throw new IMError("bad", "dated ahead of this clock");
  if (e.to !== me && e.from !== me) throw new IMError("not-for-me", `addressed to ${e.to}`);
  const mine = e.keys.find((k) => eqBytes(k.d, device.pub));
  if (!mine) throw new IMError("no-key", "no key for this device");
  let content;
  try {
    const shared = await x25519Shared(device.x.privateKey, e.epk);
    const k = await wrapKeyMaterial(shared, e.id, e.epk, device.pub, device.xPub);
    const ck = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: zeroNonce() }, await aesKey(k, "decrypt"), mine.k));
    content = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: zeroNonce(), additionalData: headerBytes(e) }, await aesKey(ck, "decrypt"), e.ct));
  } catch {
    throw new IMError("decrypt", "does not decrypt");
  }
  const o = { kind: e.kind, id: e.id, from: e.from, fromDevice: hex(e.fromDevice), to: e.to, seq: e.seq, ts: e.ts };
  if (e.kind === KIND_HISTORY && (e.from !== me || e.to !== me)) {
    throw new IMError("not-own-device", `history from ${e.from} to ${e.to}: not from one of this user's own devices`);
  }
  const max = e.kind === KIND_TYPING ? MAX_TYPING_BODY : e.kind === KIND_GROUP || e.kind === KIND_FILE ? MAX_CONTENT : e.kind === KIND_HISTORY ? MAX_HISTORY_BODY : MAX_MESSAGE_BYTES;
  const body = await unframeContent(content, max);
  if (e.kind === KIND_GROUP || e.kind === KIND_HISTORY || e.kind === KIND_FILE) {
    o.body = body;
  } else if (e.kind === KIND_TYPING) {
    let r;
    try { r = JSON.parse(fromUTF8(body)); } catch { throw new IMError("bad", "typing"); }
    if (r?.state !== TYPING_ACTIVE && r?.state !== TYPING_STOPPED) throw new IMError("bad", "typing");
    o.state = r.state;
  } else if (e.kind === KIND_MESSAGE) {
    let text;
    try { text = new TextDecoder("utf-8", { fatal: true }).decode(body); } catch { throw new IMError("bad", "not UTF-8"); }
    checkText(text);
    if (e.seq < 1) throw new IMError("bad", "seq");
    o.text = text;
  } else {
    let r;
    try { r = JSON.parse(fromUTF8(body)); } catch { throw new IMError("bad", "receipt"); }
    if ((r?.state !== RECEIPT_DELIVERED && r?.state !== RECEIPT_READ) || !Array.isArray(r.acked) || !r.acked.length || r.acked.length > MAX_RECEIPT_IDS || !r.acked.every(validID)) {
      throw new IMError("bad", "receipt");
    }
    o.acked = r.acked;
    o.state = r.state;
  }
  return o;
}

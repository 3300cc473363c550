// Files on the wire, as package client/im has them (client/im/file.go,
// filebody.go; docs/protocol.md, "Files"): the offer and the bodies of
// "file" envelopes, checked as the Go client checks them; sealing and
// opening a file's chunks (AES-256-GCM with WebCrypto: nonce 4 zero bytes ‖
// the index, associated data "parley-file-v1" ‖ id ‖ index ‖ chunks); the
// name a received file gets (im.SafeFileName) and the text of its history
// entry (im.FileNote). js/files.js moves the chunks.

import { b64, hex, utf8, concat, u64 } from "./util.js";
import { parseJSON, goFields, reader } from "./group.js";
import { IMError, validID } from "./im.js";
import {
  IM_FILE_CHUNK as CHUNK, IM_FILE_CHUNK_CONTEXT as CHUNK_CONTEXT, IM_FILE_KEY_LEN as KEY_LEN, IM_MAX_FILE_NAME as MAX_NAME,
  IM_MAX_FILE_SIZE as MAX_SIZE, IM_MAX_PREVIEW as MAX_PREVIEW, IM_MAX_FILE_SDP as MAX_SDP, IM_FILE_BODY_OFFER as BODY_OFFER,
  IM_FILE_BODY_DONE as BODY_DONE, IM_FILE_BODY_SIGNAL as BODY_SIGNAL, IM_AEAD_OVERHEAD as OVERHEAD,
  IM_MAX_FILE_TYPE as MAX_TYPE, IM_FILE_ENVELOPE_CONTEXT as ENVELOPE_CONTEXT,
} from "./wire.gen.js";

export { CHUNK, MAX_SIZE, MAX_PREVIEW, BODY_OFFER, BODY_DONE, BODY_SIGNAL, OVERHEAD };

const bad = (what) => new IMError("bad", `file body: ${what}`);

// chunksOf is how many chunks a file of size bytes has.
export const chunksOf = (size) => Math.ceil(size / CHUNK);

// plainSize is the plaintext size of chunk i of a file of size bytes
// (-1: out of range); sealedSize adds the tag.
export function plainSize(size, i) {
  const n = chunksOf(size);
  if (!Number.isSafeInteger(i) || i < 0 || i >= n) return -1;
  return i === n - 1 ? size - i * CHUNK : CHUNK;
}
export const sealedSize = (size, i) => { const n = plainSize(size, i); return n < 0 ? -1 : n + OVERHEAD; };

// checkFileName is im.CheckFileName: 1 to 255 bytes of UTF-8, not "." or
// "..", no "/", "\", NUL or control character (Unicode's Cc).
export function checkFileName(name) {
  if (typeof name !== "string" || !name || utf8(name).length > MAX_NAME || !name.isWellFormed()) {
    throw new IMError("bad-name", `The file name must be 1 to ${MAX_NAME} bytes of UTF-8.`);
  }
  if (name === "." || name === "..") throw new IMError("bad-name", `“${name}” is not a file name.`);
  if (/[/\\\p{Cc}]/u.test(name)) throw new IMError("bad-name", `“${name}” is not a file name: a directory or a control character.`);
}

// validMediaType is Go's mime.ParseMediaType(t) == t: one lower-case
// type/subtype of token characters, no parameters.
const TOKEN = "[!#$%&'*+\\-.^_`{|}~0-9a-z]+";
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}$`);
export const validMediaType = (t) => typeof t === "string" && t.length <= MAX_TYPE && MEDIA_TYPE.test(t);

// checkOffer is im.FileOffer.Check on an offer {id, name, size, type, hash,
// key (bytes), preview (bytes), stored}.
export function checkOffer(f) {
  if (!validID(f.id)) throw bad("id");
  checkFileName(f.name);
  if (!Number.isSafeInteger(f.size) || f.size < 1 || f.size > MAX_SIZE) throw new IMError("too-big", `file offer: ${f.size} bytes, 1 to ${MAX_SIZE}`);
  if (f.type !== "" && !validMediaType(f.type)) throw bad("type");
  if (!/^[0-9a-f]{64}$/.test(f.hash)) throw bad("hash");
  if (f.key.length !== KEY_LEN) throw bad("key");
  if (f.preview.length > MAX_PREVIEW) throw bad("preview");
}

// parseBody is im.openFile's parse and check of a file envelope's body
// (its bytes): {t, offer?, g, mid, seq, file, sdpType, sdp}.
export function parseBody(bytes) {
  let p;
  try { p = parseJSON(new TextDecoder("utf-8", { fatal: true }).decode(bytes)); } catch { throw bad("not JSON"); }
  const r = reader(goFields(p, "body"), (k) => bad(k));
  const b = { t: r.str("t"), g: r.str("g"), mid: r.str("mid"), seq: r.int("seq"), file: r.str("file"), sdpType: r.str("sdp_type"), sdp: r.str("sdp"), offer: null };
  const fields = goFields(p, "body");
  const o = fields.get("offer");
  if (o !== undefined && o !== null) {
    const q = reader(goFields(o, "body"), (k) => bad(`offer ${k}`));
    b.offer = { id: q.str("id"), name: q.str("name"), size: q.int("size"), type: q.str("type"), hash: q.str("hash"), key: q.bytes("key"), preview: q.bytes("preview"), stored: q.bool("stored") };
  }
  switch (b.t) {
    case BODY_OFFER:
      if (!b.offer || b.file || b.sdp) throw bad("offer");
      checkOffer(b.offer);
      if (b.g && (!validID(b.g) || !validID(b.mid) || b.seq < 1)) throw bad("group offer");
      if (!b.g && (b.mid || b.seq !== 0)) throw bad("offer");
      break;
    case BODY_DONE:
      if (!validID(b.file) || b.offer || b.g || b.sdp) throw bad("done");
      break;
    case BODY_SIGNAL:
      if (!validID(b.file) || b.offer || b.g || (b.sdpType !== "offer" && b.sdpType !== "answer") || !b.sdp || utf8(b.sdp).length > MAX_SDP) throw bad("signal");
      break;
    default:
      throw bad("type");
  }
  return b;
}

// bodyBytes is a body's JSON as Go's encoding/json writes im.FileBody
// (omitempty fields left out).
export function bodyBytes(b) {
  const j = { t: b.t };
  if (b.offer) {
    const f = b.offer;
    j.offer = { id: f.id, name: f.name, size: f.size };
    if (f.type) j.offer.type = f.type;
    j.offer.hash = f.hash;
    j.offer.key = b64(f.key);
    if (f.preview?.length) j.offer.preview = b64(f.preview);
    if (f.stored) j.offer.stored = true;
  }
  if (b.g) Object.assign(j, { g: b.g, mid: b.mid, seq: b.seq });
  if (b.file) j.file = b.file;
  if (b.sdpType) j.sdp_type = b.sdpType;
  if (b.sdp) j.sdp = b.sdp;
  return utf8(JSON.stringify(j));
}

// envelopeID is im.FileEnvelopeID: the id of the envelope offering a
// group's file (message id mid) to member to.
export async function envelopeID(mid, to) {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", concat(utf8(ENVELOPE_CONTEXT), new Uint8Array([0]), utf8(mid), new Uint8Array([0]), utf8(to))));
  return hex(h.subarray(0, 16));
}

// messageID is im.FileMessageID: the history id of the file's entry.
export const messageID = (b) => (b.g ? b.mid : b.offer.id);

// ---- chunks ----

function chunkAD(id, i, n) { return concat(utf8(CHUNK_CONTEXT), utf8(id), u64(i), u64(n)); }
function chunkNonce(i) { return concat(new Uint8Array(4), u64(i)); }

// fileKey imports an offer's key for AES-256-GCM.
export function fileKey(raw) {
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

// sealChunk is im.FileOffer.SealChunk (key: fileKey(offer.key)).
export async function sealChunk(offer, key, i, plain) {
  if (plain.length !== plainSize(offer.size, i)) throw bad(`chunk ${i}: ${plain.length} bytes`);
  const ad = chunkAD(offer.id, i, chunksOf(offer.size));
  return new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: chunkNonce(i), additionalData: ad }, key, plain));
}

// openChunk is im.FileOffer.OpenChunk: refuses a chunk altered, of
// another file or place, or of the wrong size.
export async function openChunk(offer, key, i, sealed) {
  if (sealed.length !== sealedSize(offer.size, i)) throw new IMError("bad-chunk", `chunk ${i}: ${sealed.length} bytes`);
  const ad = chunkAD(offer.id, i, chunksOf(offer.size));
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: chunkNonce(i), additionalData: ad }, key, sealed));
  } catch {
    throw new IMError("bad-chunk", `file ${offer.id}: chunk ${i} does not decrypt`);
  }
}

// ---- names and sizes ----

const DEVICES = new Set(["CON", "PRN", "AUX", "NUL", ...[1, 2, 3, 4, 5, 6, 7, 8, 9].flatMap((d) => [`COM${d}`, `LPT${d}`])]);

// safeFileName is im.SafeFileName: the name a received file is saved under.
export function safeFileName(name) {
  let s = "";
  for (const r of name) s += /[<>:"|?*/\\\p{Cc}]/u.test(r) ? "_" : r;
  s = s.replace(/[. ]+$/, "").replace(/^\.+/, "");
  let base = s.toUpperCase();
  const dot = base.indexOf(".");
  if (dot >= 0) base = base.slice(0, dot);
  if (DEVICES.has(base)) s = "_" + s;
  return s || "file";
}

// fixed is Go's %.Nf for N 1 or 2: JavaScript's toFixed rounds a tie up,
// Go to even (a tie is exact only at quarters, or eighths for 2 places).
function fixed(v, d) {
  const q = d === 1 ? 4 : 8;
  if (Number.isInteger(v * q) && (v * q) % 2 === 1) {
    const k = Math.floor(v * 10 ** d);
    return ((k % 2 === 0 ? k : k + 1) / 10 ** d).toFixed(d);
  }
  return v.toFixed(d);
}

// humanSize is im.HumanSize: "812 B", "1.5 KB", "10.0 MB", "1.20 GB".
export function humanSize(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${fixed(n / 1e3, 1)} KB`;
  if (n < 1e9) return `${fixed(n / 1e6, 1)} MB`;
  return `${fixed(n / 1e9, 2)} GB`;
}

// fileNote is im.FileNote: the text of a file's history entry.
export const fileNote = (f) => `[file] ${f.name} (${humanSize(f.size)})`;


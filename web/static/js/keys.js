// The device key: an Ed25519 key pair made with WebCrypto, the private half
// non-extractable, kept in IndexedDB (one per user name on this browser, so a
// device keeps its key across sign-ins, as the CLI's home does). Signatures
// with a context follow identity.SignContext: Ed25519(ctx || 0x00 || msg).

import { concat, utf8, unb64, fromUTF8 } from "./util.js";
import { IDENTITY_ALG, IDENTITY_MAX_TOKEN_LEN, IDENTITY_SKEW_SECONDS as SKEW, IDENTITY_VERSION } from "./wire.gen.js";

const DB = "parley";
const STORE = "keys";
const SESSIONS = "sessions";

function openDB() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
      if (!db.objectStoreNames.contains(SESSIONS)) db.createObjectStore(SESSIONS);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(store, mode, f) {
  const db = await openDB();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(store, mode);
      const req = f(t.objectStore(store));
      t.oncomplete = () => resolve(req?.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

export function supported() {
  return !!(window.isSecureContext && crypto?.subtle && window.indexedDB);
}

// deviceKey returns this browser's key pair for user, making it on first use.
export async function deviceKey(user) {
  let kp = await tx(STORE, "readonly", (s) => s.get(user));
  if (kp?.privateKey && kp?.publicKey) return kp;
  kp = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  await tx(STORE, "readwrite", (s) => s.put({ privateKey: kp.privateKey, publicKey: kp.publicKey }, user));
  return kp;
}

export async function publicKeyBytes(kp) {
  return new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey));
}

export async function signContext(privateKey, ctx, msg) {
  const m = concat(utf8(ctx), new Uint8Array([0]), msg);
  return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, privateKey, m));
}

async function importPublic(raw) {
  return crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
}

export async function verifyContext(pubRaw, ctx, msg, sig) {
  if (pubRaw.length !== 32 || sig.length !== 64) return false;
  const key = await importPublic(pubRaw);
  const m = concat(utf8(ctx), new Uint8Array([0]), msg);
  return crypto.subtle.verify({ name: "Ed25519" }, key, sig, m);
}

// parseCredential reads a token without checking it (for one's own).
export function parseCredential(token) {
  const [p, s] = token.split(".");
  if (!p || !s) throw new Error("malformed credential");
  const payload = unb64(p);
  const c = JSON.parse(fromUTF8(payload));
  if (c.v !== IDENTITY_VERSION || c.alg !== IDENTITY_ALG) throw new Error(`credential version ${c.v} alg ${c.alg}`);
  const pub = unb64(c.pub);
  if (pub.length !== 32) throw new Error("credential key is not 32 bytes");
  return { cred: { ...c, pub }, payload, sig: unb64(s) };
}

// verifyCredential is identity.Verify: the login server's signature, the
// format and the validity window (SKEW seconds of skew, identity.Skew).
export async function verifyCredential(loginKey, token, nowSec = Date.now() / 1000) {
  if (token.length > IDENTITY_MAX_TOKEN_LEN) throw new Error("credential too long");
  const { cred, payload, sig } = parseCredential(token);
  if (sig.length !== 64) throw new Error("malformed credential signature");
  const key = await importPublic(loginKey);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, sig, payload))) {
    throw new Error(`credential of ${cred.user} not signed by the login server`);
  }
  if (nowSec + SKEW < cred.nbf) throw new Error(`credential of ${cred.user} not yet valid`);
  if (!(nowSec - SKEW < cred.exp)) throw new Error(`credential of ${cred.user} expired`);
  return cred;
}

// Saved sessions (refresh token and pinned login key) let a reload sign in again.
export function saveSession(origin, sess) { return tx(SESSIONS, "readwrite", (s) => s.put(sess, origin)); }
export function loadSession(origin) { return tx(SESSIONS, "readonly", (s) => s.get(origin)); }
export function dropSession(origin) { return tx(SESSIONS, "readwrite", (s) => s.delete(origin)); }

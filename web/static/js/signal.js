// Call signalling, version 4 (package wire/signal): every signal carries the
// sender's credential and an Ed25519 signature (context "parley-signal-v1")
// over its fields, one a line, and the sorted DTLS fingerprints of its SDP,
// so a supernode can route signals but not forge them or swap certificates.
// Each kind has typed fields (path, rtts, candidate, attempt, ...).

import { b64, unb64, utf8 } from "./util.js";
import { signContext, verifyContext, verifyCredential } from "./keys.js";
import {
  SIGNAL_VERSION, SIGNAL_CONTEXT, SIGNAL_WINDOW_MS as SIGNAL_WINDOW, SIGNAL_MAX_REASON as MAX_REASON,
  SIGNAL_MAX_RTTS as MAX_RTTS, SIGNAL_MAX_CANDIDATE as MAX_CANDIDATE, SIGNAL_KINDS, SIGNAL_SDP_KINDS, SIGNAL_IN_CALL_KINDS,
  SIGNAL_CONF_OPS as CONF_OPS, SIGNAL_MAX_CONF_MEMBERS as CONF_MAX_MEMBERS,
} from "./wire.gen.js";

export { SIGNAL_VERSION, SIGNAL_CONTEXT, SIGNAL_WINDOW }; // SIGNAL_WINDOW in ms

export const KINDS = new Set(SIGNAL_KINDS);
const SDP_KINDS = new Set(SIGNAL_SDP_KINDS);
export const IN_CALL_KINDS = new Set(SIGNAL_IN_CALL_KINDS);

export function hasSDP(kind) { return SDP_KINDS.has(kind); }

// fingerprints is client.Fingerprints: the a=fingerprint values, lower case,
// white space collapsed, sorted, duplicates dropped.
export function fingerprints(sdp = "") {
  const fps = [];
  for (let line of sdp.split("\n")) {
    line = line.trim();
    if (line.startsWith("a=fingerprint:")) {
      fps.push(line.slice("a=fingerprint:".length).trim().split(/\s+/).join(" ").toLowerCase());
    }
  }
  fps.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return fps.filter((fp, i) => i === 0 || fp !== fps[i - 1]);
}

export function sameFingerprints(a, b) {
  return a.length > 0 && a.length === b.length && a.every((x, i) => x === b[i]);
}

// signedMessage is signal.Signal.SignedMessage: the same lines, the same bytes.
function signedMessage(s) {
  let m = "";
  const line = (f) => { m += f + "\n"; };
  for (const f of [s.kind, s.call_id, s.from, s.to, s.device, s.reason || "", s.relay || "", String(s.ts), String(s.seq),
    s.status || "", s.answerer || "", s.attempt || ""]) {
    line(f);
  }
  const p = s.path;
  line(p ? `${p.local || ""} ${p.relay_protocol || ""} ${p.relay || ""} ${p.remote_relay ? 1 : 0}` : "");
  const keys = Object.keys(s.rtts || {}).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  line(keys.map((k) => `${k}=${s.rtts[k]}`).join(","));
  const opt = (v) => (v === undefined || v === null ? "" : "=" + v);
  const c = s.candidate;
  if (c) {
    line("=" + c.candidate);
    line(opt(c.sdpMid));
    line(opt(c.sdpMLineIndex));
    line(opt(c.usernameFragment));
  } else {
    line(""); line(""); line(""); line("");
  }
  const cf = s.conf; // conference (wire/signal/conf.go)
  line(cf ? `=${cf.id} ${cf.op || ""} ${cf.group || ""} ${(cf.users || []).join(",")} ${(cf.members || []).join(",")}` : "");
  for (const fp of fingerprints(s.sdp || "")) line(fp);
  return utf8(m);
}

// cutReason trims a reason to MAX_REASON bytes of UTF-8 on a character boundary.
function cutReason(r) {
  const b = utf8(r);
  if (b.length <= MAX_REASON) return r;
  let cut = MAX_REASON;
  while (cut > 0 && (b[cut] & 0xc0) === 0x80) cut--;
  return new TextDecoder().decode(b.subarray(0, cut));
}

// sign completes sig (kind, call_id, to, and sdp/relay/reason as needed).
export async function sign(sig, { from, device, credential, privateKey, seq }) {
  sig.v = SIGNAL_VERSION;
  sig.from = from;
  sig.device = device;
  sig.credential = credential;
  sig.ts = Date.now();
  sig.seq = seq;
  if (sig.reason) sig.reason = cutReason(sig.reason);
  sig.sig = b64(await signContext(privateKey, SIGNAL_CONTEXT, signedMessage(sig)));
  return sig;
}

// decode checks the shape of an untrusted payload (decodeSignal).
export function decode(payload) {
  const s = payload;
  if (!s || typeof s !== "object") throw new Error("signal is not an object");
  if (!KINDS.has(s.kind)) throw new Error(`signal kind ${s.kind}`);
  if (typeof s.call_id !== "string" || s.call_id.length !== 16) throw new Error("signal call id");
  if (typeof s.device !== "string" || !s.device || s.device.length > 64) throw new Error("signal device");
  for (const k of ["from", "to", "credential"]) if (typeof s[k] !== "string") throw new Error(`signal ${k}`);
  for (const k of ["sdp", "relay", "reason", "status", "answerer", "attempt"]) {
    if (s[k] !== undefined && typeof s[k] !== "string") throw new Error(`signal ${k}`);
  }
  if (s.path !== undefined && (!s.path || typeof s.path !== "object" ||
    !["local", "relay_protocol", "relay"].every((k) => s.path[k] === undefined || (typeof s.path[k] === "string" && !/\s/.test(s.path[k]))))) {
    throw new Error("signal path");
  }
  if (s.rtts !== undefined) {
    if (!s.rtts || typeof s.rtts !== "object" || Array.isArray(s.rtts) || Object.keys(s.rtts).length > MAX_RTTS) throw new Error("signal rtts");
    for (const [k, v] of Object.entries(s.rtts)) {
      if (!Number.isSafeInteger(v) || v < 0 || !k || /[=,\r\n]/.test(k)) throw new Error("signal rtts");
    }
  }
  if (s.candidate !== undefined) {
    const c = s.candidate;
    if (!c || typeof c !== "object" || typeof c.candidate !== "string" || !c.candidate || c.candidate.length > MAX_CANDIDATE ||
      /[\r\n]/.test(c.candidate)) throw new Error("signal candidate");
  }
  if (s.conf !== undefined) {
    const c = s.conf;
    const word = (v) => typeof v === "string" && !/[ ,\r\n]/.test(v);
    const list = (v) => v === undefined || (Array.isArray(v) && v.length <= CONF_MAX_MEMBERS && v.every((x) => x && word(x)));
    if (!c || typeof c !== "object" || typeof c.id !== "string" || !/^[0-9a-f]{32}$/.test(c.id) ||
      !(c.op === undefined || word(c.op)) || !(c.group === undefined || word(c.group)) || !list(c.users) || !list(c.members) ||
      !(s.kind === "offer" ? !c.op : s.kind === "conf" && CONF_OPS.includes(c.op))) throw new Error("signal conf");
  } else if (s.kind === "conf") {
    throw new Error("signal conf");
  }
  if (typeof s.ts !== "number" || typeof s.seq !== "number" || typeof s.sig !== "string") throw new Error("signal ts/seq/sig");
  return s;
}

// verify is Signal.verify: the credential is the login server's and current,
// names the user the supernode says sent it and the signal's from; the signal
// is for me, dated within the window; the signature (and so the DTLS
// fingerprints) is the credential key's.
export async function verify(s, { loginKey, from, me, now = Date.now() }) {
  if (s.v !== SIGNAL_VERSION) throw new Error(`signal version ${s.v}`);
  let cred;
  try {
    cred = await verifyCredential(loginKey, s.credential, now / 1000);
  } catch (e) {
    throw new Error(`signal from ${from}: ${e.message}`);
  }
  if (cred.user !== from || s.from !== from) throw new Error(`signal from ${from} carries ${cred.user}'s credential`);
  if (Math.abs(now - s.ts) > SIGNAL_WINDOW) throw new Error(`signal from ${from} dated ${Math.round((now - s.ts) / 1000)} s away from now`);
  if (s.to !== me) throw new Error(`signal from ${from} addressed to ${s.to}`);
  if (hasSDP(s.kind) && fingerprints(s.sdp).length === 0) throw new Error(`${s.kind} from ${from} has no DTLS fingerprint`);
  let sigBytes;
  try { sigBytes = unb64(s.sig); } catch { sigBytes = new Uint8Array(0); }
  if (!(await verifyContext(cred.pub, SIGNAL_CONTEXT, signedMessage(s), sigBytes))) {
    throw new Error(`${s.kind} from ${from}: DTLS fingerprint or signal not signed by ${from}'s key`);
  }
  return cred;
}

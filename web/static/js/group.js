// Groups, byte for byte as client/im (group.go, groupbody.go) has them, with
// WebCrypto only: an operation's form, signed bytes, id, signature and
// passes; replaying a log into a group's state (im.Replay) and its digest
// (im.Digest); the body of a group envelope and the envelope id of a group
// message. Everything a device keeps or sends goes through here; the
// messenger's part (storing, sending, syncing) is js/groupchat.js. See
// docs/protocol.md ("Groups") and docs/web.md ("Groups").

import { b64, utf8, fromUTF8, hex, concat, validUser, field, u32, u64, eqBytes, sha256, unb64Std, b64url, blank } from "./util.js";
import { signContext, verifyContext, verifyCredential } from "./keys.js";
import { KIND_GROUP, seal, checkText, validID, newMessageID, MAX_CONTENT } from "./im.js";
import {
  IM_GROUP_OP_VERSION as OP_VERSION, IM_GROUP_OP_CONTEXT as OP_CONTEXT, IM_OP_CREATE as OP_CREATE, IM_OP_ADD as OP_ADD,
  IM_OP_REMOVE as OP_REMOVE, IM_OP_LEAVE as OP_LEAVE, IM_OP_RENAME as OP_RENAME, IM_OP_ADMIN as OP_ADMIN,
  IM_MAX_GROUP_MEMBERS as MAX_MEMBERS, IM_MAX_GROUP_OPS as MAX_OPS, IM_MAX_GROUP_NAME as MAX_NAME,
  IM_MAX_GROUP_CLOCK as MAX_CLOCK, IM_GROUP_PEER_PREFIX as PEER_PREFIX, IM_GROUP_MESSAGE as BODY_MESSAGE,
  IM_GROUP_OPS as BODY_OPS, IM_GROUP_SYNC as BODY_SYNC, IM_GROUP_SYNC_INTERVAL_MS as SYNC_INTERVAL,
  LOGINAPI_PASS_CONTEXT as PASS_CONTEXT, LOGINAPI_PASS_HEADER as PASS_HEADER, LOGINAPI_MAX_PASS_BYTES as MAX_PASS_BYTES,
  IDENTITY_MAX_TOKEN_LEN, IM_GROUP_OP_BYTES_PREFIX as OP_BYTES_PREFIX, IM_GROUP_ENVELOPE_PREFIX as ENVELOPE_ID_PREFIX,
  IM_MAX_GROUP_OPS_PER_AUTHOR as MAX_OPS_PER_AUTHOR,
} from "./wire.gen.js";

export {
  OP_CREATE, OP_ADD, OP_REMOVE, OP_LEAVE, OP_RENAME, OP_ADMIN, MAX_MEMBERS, MAX_OPS, MAX_NAME, PEER_PREFIX,
  BODY_MESSAGE, BODY_OPS, BODY_SYNC, SYNC_INTERVAL, PASS_HEADER, KIND_GROUP,
};

const ID_BYTES = 16; // im.idBytes

export class GroupError extends Error {
  // code: bad-op, bad-name, bad-body, unknown-group, not-member, not-admin,
  // full, log-full.
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const badOp = (what) => new GroupError("bad-op", `group operation: ${what}`);

// isGroupPeer reports whether a history peer is a group conversation's ("#"
// and the group id); groupOfPeer returns its group id.
export const isGroupPeer = (peer) => typeof peer === "string" && peer.startsWith(PEER_PREFIX) && validID(peer.slice(PEER_PREFIX.length));
export const groupPeer = (id) => PEER_PREFIX + id;
export const groupOfPeer = (peer) => (isGroupPeer(peer) ? peer.slice(PEER_PREFIX.length) : "");

// ---- decoding as Go's encoding/json does ----

// notInts keeps, for each object parseJSON made, the (lower-cased) names of
// its numbers written as Go's integers are not ("2.0", "1e3"): encoding/json
// refuses those for an int field, which JSON.parse cannot tell by itself.
const notInts = new WeakMap();

// parseJSON is JSON.parse, noting the numbers that are no integer literals
// (where the browser passes the reviver their source text). js/histsync.js
// reads history bodies with it, goFields and reader too.
export function parseJSON(text) {
  return JSON.parse(text, function (k, v, ctx) {
    if (typeof v === "number" && typeof ctx?.source === "string" && /[.eE]/.test(ctx.source)) {
      if (!notInts.has(this)) notInts.set(this, new Set());
      notInts.get(this).add(k.toLowerCase());
    }
    return v;
  });
}

// goFields reads a JSON object's members as encoding/json fills a struct:
// names matched without regard to case, the last one of a name winning.
export function goFields(p, what) {
  if (!p || typeof p !== "object" || Array.isArray(p)) throw new GroupError(what === "body" ? "bad-body" : "bad-op", `${what}: not an object`);
  const m = new Map();
  for (const [k, v] of Object.entries(p)) m.set(k.toLowerCase(), v);
  m.notInts = notInts.get(p);
  return m;
}

// reader returns the typed getters of one object's fields; a field absent
// or null is the zero value, one of the wrong type is an error (bad(name)).
export function reader(m, bad) {
  const get = (k) => m.get(k);
  return {
    str(k) { const v = get(k); if (v === undefined || v === null) return ""; if (typeof v !== "string") throw bad(k); return v; },
    int(k) {
      const v = get(k);
      if (v === undefined || v === null) return 0;
      if (!Number.isSafeInteger(v) || m.notInts?.has(k)) throw bad(k);
      return v;
    },
    bool(k) { const v = get(k); if (v === undefined || v === null) return false; if (typeof v !== "boolean") throw bad(k); return v; },
    bytes(k) {
      const v = get(k);
      if (v === undefined || v === null) return new Uint8Array(0);
      try { return unb64Std(v); } catch { throw bad(k); }
    },
    list(k) { const v = get(k); if (v === undefined || v === null) return []; if (!Array.isArray(v)) throw bad(k); return v; },
  };
}

// ---- passes (wire/loginapi/pass.go) ----

// passMessage is loginapi.PassMessage: user || 0x00 || by.
const passMessage = (user, by) => concat(utf8(user), new Uint8Array([0]), utf8(by));

// makePass is loginapi.NewPass: signed by by's device (key: its CryptoKeyPair,
// pub: its public key's bytes).
export async function makePass(user, by, key, pub) {
  return { user, by, device: pub, sig: await signContext(key.privateKey, PASS_CONTEXT, passMessage(user, by)) };
}

// verifyPass is Pass.Verify: well formed, and its device signed it.
export async function verifyPass(p) {
  return validUser(p.user) && validUser(p.by) && p.device.length === 32 && p.sig.length === 64 &&
    verifyContext(p.device, PASS_CONTEXT, passMessage(p.user, p.by), p.sig);
}

function parsePass(v) {
  const r = reader(goFields(v ?? {}, "pass"), (k) => badOp(`pass: ${k}`));
  return { user: r.str("user"), by: r.str("by"), device: r.bytes("device"), sig: r.bytes("sig") };
}

// passToWire is a pass's JSON (a mailbox item's "pass").
export function passToWire(p) { return { user: p.user, by: p.by, device: b64(p.device), sig: b64(p.sig) }; }

// encodePass is Pass.Encode: the Parley-Pass header's value.
export function encodePass(p) {
  const s = b64url(utf8(JSON.stringify(passToWire(p))));
  if (s.length > MAX_PASS_BYTES) throw new GroupError("bad-op", "pass too long");
  return s;
}

// ---- operations ----

// An operation is kept as {v, group, clock, type, by, device (bytes),
// credential, ts, target, name, members, passes, nonce (bytes), sig (bytes),
// id}: the fields of im.GroupOp, with its id (computed once, async).

// parseOp reads an operation from its JSON (untrusted) and computes its id.
// It does not check it: checkOp and verifyOp do.
export async function parseOp(p) {
  const r = reader(goFields(p, "group operation"), (k) => badOp(k));
  const o = {
    v: r.int("v"), group: r.str("group"), clock: r.int("clock"), type: r.str("type"), by: r.str("by"),
    device: r.bytes("device"), credential: r.str("credential"), ts: r.int("ts"), target: r.str("target"),
    name: r.str("name"), members: r.list("members").map((u) => { if (u !== null && typeof u !== "string") throw badOp("members"); return u ?? ""; }),
    passes: r.list("passes").map(parsePass), nonce: r.bytes("nonce"), sig: r.bytes("sig"),
  };
  o.id = await opID(o);
  return o;
}

// opToWire is the operation's JSON, as Go marshals im.GroupOp (omitempty
// fields left out when empty).
export function opToWire(o) {
  const w = { v: o.v };
  if (o.group) w.group = o.group;
  Object.assign(w, { clock: o.clock, type: o.type, by: o.by, device: b64(o.device), credential: o.credential, ts: o.ts });
  if (o.target) w.target = o.target;
  if (o.name) w.name = o.name;
  if (o.members.length) w.members = [...o.members];
  if (o.passes.length) w.passes = o.passes.map(passToWire);
  if (o.nonce.length) w.nonce = b64(o.nonce);
  w.sig = b64(o.sig);
  return w;
}

// signedBytes is GroupOp.signedBytes: "parley-group-op", then v, group,
// clock, type, by, device, credential, ts, target, name, the number of
// members and each, the number of passes and each pass's user, by, device
// and sig, and nonce; each a length-prefixed field, numbers 8 bytes BE.
export function signedBytes(o) {
  const parts = [
    ...field(utf8(OP_BYTES_PREFIX)), ...field(u64(o.v)), ...field(utf8(o.group)), ...field(u64(o.clock)),
    ...field(utf8(o.type)), ...field(utf8(o.by)), ...field(o.device), ...field(utf8(o.credential)), ...field(u64(o.ts)),
    ...field(utf8(o.target)), ...field(utf8(o.name)), u32(o.members.length),
  ];
  for (const u of o.members) parts.push(...field(utf8(u)));
  parts.push(u32(o.passes.length));
  for (const p of o.passes) parts.push(...field(utf8(p.user)), ...field(utf8(p.by)), ...field(p.device), ...field(p.sig));
  parts.push(...field(o.nonce));
  return concat(...parts);
}

// opID is GroupOp.ID: hex of the first 16 bytes of SHA-256 of the signed bytes.
export async function opID(o) { return hex((await sha256(signedBytes(o))).subarray(0, ID_BYTES)); }

// groupOf is GroupOp.GroupOf: a create's id is its group's.
export const groupOf = (o) => (o.type === OP_CREATE ? o.id : o.group);

// checkName is im.CheckGroupName.
export function checkName(name) {
  if (typeof name !== "string" || !name || utf8(name).length > MAX_NAME || blank(name)) {
    throw new GroupError("bad-name", `A group's name is 1 to ${MAX_NAME} bytes of text.`);
  }
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw new GroupError("bad-name", "A group's name has no control characters.");
}

const nameOK = (name) => { try { checkName(name); return true; } catch { return false; } };

// checkOp is GroupOp.check: the operation's form, and its passes (one for
// each user it adds, signed by its author, and no other).
export async function checkOp(o) {
  if (o.v !== OP_VERSION) throw badOp(`version ${o.v}`);
  if (!validUser(o.by)) throw badOp("by");
  if (o.device.length !== 32) throw badOp("device");
  if (!o.credential || utf8(o.credential).length > IDENTITY_MAX_TOKEN_LEN) throw badOp("credential");
  if (o.ts < 0) throw badOp("ts");
  if (o.sig.length !== 64) throw badOp("signature");
  if (o.members.length > MAX_MEMBERS - 1 || o.passes.length > MAX_MEMBERS) throw badOp("too many members");
  const adds = new Set();
  switch (o.type) {
    case OP_CREATE:
      if (o.group !== "" || o.clock !== 1 || o.nonce.length !== ID_BYTES || o.target !== "") throw badOp("create");
      if (!nameOK(o.name)) throw badOp("name");
      adds.add(o.by);
      for (const u of o.members) {
        if (!validUser(u) || adds.has(u)) throw badOp("member");
        adds.add(u);
      }
      break;
    case OP_ADD: case OP_REMOVE: case OP_ADMIN: case OP_LEAVE: case OP_RENAME:
      if (!validID(o.group) || o.clock < 2 || o.clock > MAX_CLOCK || o.members.length || o.nonce.length) throw badOp(o.type);
      if (o.type === OP_LEAVE) {
        if (o.target || o.name) throw badOp("leave");
      } else if (o.type === OP_RENAME) {
        if (o.target || !nameOK(o.name)) throw badOp("rename");
      } else {
        if (!validUser(o.target) || o.name) throw badOp("target");
        if (o.type === OP_ADD) adds.add(o.target);
      }
      break;
    default:
      throw badOp("type");
  }
  if (o.passes.length !== adds.size) throw badOp("passes");
  for (const p of o.passes) {
    if (!adds.has(p.user) || p.by !== o.by || !(await verifyPass(p))) throw badOp("pass");
    adds.delete(p.user);
  }
}

// verifyOp is im.VerifyGroupOp: the form; the credential is the login
// server's (loginKey), was valid at ts and names by and device; device
// signed it.
export async function verifyOp(o, loginKey) {
  await checkOp(o);
  let cred;
  try {
    cred = await verifyCredential(loginKey, o.credential, o.ts / 1000);
  } catch (e) {
    throw new GroupError("bad-op", `group operation by ${o.by}: ${e.message}`);
  }
  if (cred.user !== o.by || !eqBytes(cred.pub, o.device)) throw new GroupError("bad-op", `group operation by ${o.by}: credential of ${cred.user}`);
  if (!(await verifyContext(o.device, OP_CONTEXT, signedBytes(o), o.sig))) throw new GroupError("bad-op", `group operation by ${o.by}: signature does not verify`);
}

// signOp is im.SignGroupOp: an operation by sender s ({user, device:
// CryptoKeyPair, devicePub, credential}) from draft d ({group, clock, type,
// target, name, members, ts}), with a pass signed by s's device for each
// user it adds.
export async function signOp(s, d) {
  const o = {
    v: OP_VERSION, group: d.group || "", clock: d.clock, type: d.type, by: s.user, device: s.devicePub,
    credential: s.credential, ts: d.ts ?? Date.now(), target: d.target || "", name: d.name || "",
    members: [...(d.members || [])], passes: [], nonce: new Uint8Array(0), sig: new Uint8Array(0),
  };
  if (d.type === OP_CREATE) {
    o.nonce = crypto.getRandomValues(new Uint8Array(ID_BYTES));
    for (const u of [s.user, ...o.members]) o.passes.push(await makePass(u, s.user, s.device, s.devicePub));
  } else if (d.type === OP_ADD) {
    o.passes = [await makePass(d.target, s.user, s.device, s.devicePub)];
  }
  o.sig = await signContext(s.device.privateKey, OP_CONTEXT, signedBytes(o));
  await checkOp(o);
  o.id = await opID(o);
  return o;
}

// ---- replay ----

const byOrder = (a, b) => a.clock - b.clock || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

// sortOps is im.SortOps: by clock, then id.
export function sortOps(ops) { return ops.sort(byOrder); }

// digest is im.Digest: SHA-256 over the sorted ids, the first 16 bytes in hex.
export async function digest(ops) {
  const ids = ops.map((o) => o.id).sort();
  return hex((await sha256(utf8(ids.join("")))).subarray(0, ID_BYTES));
}

// replay is im.Replay: the state of group id from its verified operations
// (in any order; those of other groups are ignored): {id, name, members (in
// the order they joined), admins (in the order they became admins), clock,
// ops, digest, passes (Map user → the pass of the operation that added
// them), applied (the operations that changed the state, in order)}. It
// fails with "unknown-group" when the log lacks the create.
export async function replay(id, ops) {
  const log = sortOps(ops.filter((o) => groupOf(o) === id));
  if (!log.length || log[0].type !== OP_CREATE) throw new GroupError("unknown-group", `group ${id}: no create`);
  const g = { id, name: "", members: [], admins: [], clock: 0, ops: log.length, digest: await digest(log), passes: new Map(), applied: [] };
  const passOf = (o, u) => { for (const p of o.passes) if (p.user === u) g.passes.set(u, p); };
  log.forEach((o, i) => {
    g.clock = Math.max(g.clock, o.clock);
    if (i === 0) {
      g.name = o.name;
      g.members = [o.by, ...o.members];
      g.admins = [o.by];
      for (const u of g.members) passOf(o, u);
      g.applied.push(o);
      return;
    }
    if (!allowed(g, o)) return;
    switch (o.type) {
      case OP_ADD: g.members.push(o.target); passOf(o, o.target); break;
      case OP_REMOVE: drop(g, o.target); break;
      case OP_LEAVE:
        drop(g, o.by);
        if (!g.admins.length && g.members.length) g.admins = [g.members[0]];
        break;
      case OP_RENAME: g.name = o.name; break;
      case OP_ADMIN: g.admins.push(o.target); break;
    }
    g.applied.push(o);
  });
  return g;
}

export const isMember = (g, u) => !!g && g.members.includes(u);
export const isAdmin = (g, u) => !!g && g.admins.includes(u);

// allowed is GroupState.allowed.
function allowed(g, o) {
  switch (o.type) {
    case OP_LEAVE: return isMember(g, o.by);
    case OP_RENAME: return isAdmin(g, o.by);
    case OP_ADD: return isAdmin(g, o.by) && !isMember(g, o.target) && g.members.length < MAX_MEMBERS;
    case OP_REMOVE: return isAdmin(g, o.by) && isMember(g, o.target) && o.target !== o.by;
    case OP_ADMIN: return isAdmin(g, o.by) && isMember(g, o.target) && !isAdmin(g, o.target);
  }
  return false; // a second create
}

function drop(g, u) {
  g.members = g.members.filter((m) => m !== u);
  g.admins = g.admins.filter((m) => m !== u);
}

// check is GroupState.Check: may by make an operation of type typ on
// target now? A GroupError says why not (not-member, not-admin, full, or
// bad-op for one that would change nothing), in words for the page.
export function check(g, by, typ, target = "") {
  const name = `“${g.name}”`;
  if (!isMember(g, by)) throw new GroupError("not-member", `You are not a member of ${name} any more.`);
  if (typ === OP_LEAVE) return;
  if (!isAdmin(g, by)) {
    throw new GroupError("not-admin", `Only an admin of ${name} can do that. Its admin${g.admins.length > 1 ? "s are" : " is"} ${g.admins.join(", ")}.`);
  }
  switch (typ) {
    case OP_ADD:
      if (isMember(g, target)) throw new GroupError("bad-op", `${target} is already a member of ${name}.`);
      if (g.members.length >= MAX_MEMBERS) throw new GroupError("full", `${name} is full: a group has at most ${MAX_MEMBERS} members.`);
      break;
    case OP_REMOVE: case OP_ADMIN:
      if (!isMember(g, target)) throw new GroupError("not-member", `${target} is not a member of ${name}.`);
      if (typ === OP_REMOVE && target === by) throw new GroupError("bad-op", "To take yourself out of the group, leave it.");
      if (typ === OP_ADMIN && isAdmin(g, target)) throw new GroupError("bad-op", `${target} is already an admin of ${name}.`);
      break;
  }
}

// ---- group envelopes (groupbody.go) ----

// envelopeID is im.GroupEnvelopeID: the id of the envelope carrying group
// message mid to user to.
export async function envelopeID(mid, to) {
  return hex((await sha256(utf8(`${ENVELOPE_ID_PREFIX}\u0000${mid}\u0000${to}`))).subarray(0, ID_BYTES));
}

const badBody = (what) => new GroupError("bad-body", `group body: ${what}`);

// checkBody is GroupBody.check; verify(op) checks each operation.
async function checkBody(b, verify) {
  if (!validID(b.g)) throw badBody("group");
  if (b.digest !== "" && !validID(b.digest)) throw badBody("digest");
  switch (b.t) {
    case BODY_MESSAGE:
      if (!validID(b.mid) || b.seq < 1 || b.ops.length || b.reply) throw badBody("message");
      checkText(b.text);
      break;
    case BODY_OPS: case BODY_SYNC:
      if (b.mid !== "" || b.seq !== 0 || b.text !== "" || b.ops.length > MAX_OPS || (b.t === BODY_OPS && !b.ops.length)) throw badBody(b.t);
      for (const o of b.ops) {
        if (!o) throw badBody("null operation");
        await verify(o);
        if (groupOf(o) !== b.g) throw badBody("operation of another group");
      }
      break;
    default:
      throw badBody("type");
  }
}

// openBody is im.openGroup: the body of a group envelope that opened
// (bytes), its operations verified against the login server's key:
// {g, t, mid, seq, text, ops, digest, reply}.
export async function openBody(bytes, loginKey) {
  let p;
  try { p = parseJSON(fromUTF8(bytes)); } catch { throw badBody("not JSON"); }
  const r = reader(goFields(p, "body"), (k) => badBody(k));
  const b = {
    g: r.str("g"), t: r.str("t"), mid: r.str("mid"), seq: r.int("seq"), text: r.str("text"),
    ops: await Promise.all(r.list("ops").map((o) => (o === null ? null : parseOp(o)))),
    digest: r.str("digest"), reply: r.bool("reply"),
  };
  await checkBody(b, (o) => verifyOp(o, loginKey));
  return b;
}

function bodyToWire(b) {
  const w = { g: b.g, t: b.t };
  if (b.mid) w.mid = b.mid;
  if (b.seq) w.seq = b.seq;
  if (b.text) w.text = b.text;
  if (b.ops?.length) w.ops = b.ops.map(opToWire);
  if (b.digest) w.digest = b.digest;
  if (b.reply) w.reply = true;
  return w;
}

// sealGroup is im.SealGroup: body from s to user to, for the devices in
// devices. A message's envelope id is envelopeID(mid, to); others get a
// random one. Its operations were checked when they were made or came.
export async function sealGroup(s, to, devices, body) {
  const b = { mid: "", seq: 0, text: "", ops: [], digest: "", reply: false, ...body };
  await checkBody(b, async () => {});
  const id = b.t === BODY_MESSAGE ? await envelopeID(b.mid, to) : newMessageID();
  const bytes = utf8(JSON.stringify(bodyToWire(b)));
  if (bytes.length > MAX_CONTENT - 5 && b.t === BODY_MESSAGE) throw new GroupError("bad-body", "The message is too long for a group.");
  return seal(s, KIND_GROUP, id, to, 0, Date.now(), bytes, devices);
}

// opSize is the size of an operation's JSON (for cutting a log into
// envelopes).
export const opSize = (o) => utf8(JSON.stringify(opToWire(o))).length;

// admit is im.Admit: the operations of batch a device keeps, given the log
// it holds — those whose author is the group's creator or was added by
// someone who is (transitively), at most MAX_OPS_PER_AUTHOR per author.
export function admit(log, batch) {
  const all = [...log, ...batch];
  const ever = new Set();
  for (const o of all) {
    if (o.type === OP_CREATE) {
      ever.add(o.by);
      for (const u of o.members) ever.add(u);
    }
  }
  for (let grew = true; grew; ) {
    grew = false;
    for (const o of all) {
      if (o.type === OP_ADD && ever.has(o.by) && !ever.has(o.target)) {
        ever.add(o.target);
        grew = true;
      }
    }
  }
  const per = new Map();
  for (const o of log) per.set(o.by, (per.get(o.by) || 0) + 1);
  const out = [];
  for (const o of batch) {
    const n = per.get(o.by) || 0;
    if (ever.has(o.by) && n < MAX_OPS_PER_AUTHOR) {
      per.set(o.by, n + 1);
      out.push(o);
    }
  }
  return out;
}

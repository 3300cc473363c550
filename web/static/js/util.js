// Small helpers shared by the modules: base64, hex, random ids, sleeping.

const enc = new TextEncoder();
const dec = new TextDecoder();

export function utf8(s) { return enc.encode(s); }
export function fromUTF8(b) { return dec.decode(b); }

// b64 encodes bytes in standard base64 with padding (Go's []byte in JSON).
export function b64(bytes) {
  let s = "";
  const b = new Uint8Array(bytes);
  for (let i = 0; i < b.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

// unb64 decodes standard or URL-safe base64, padded or not.
export function unb64(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  while (s.length % 4) s += "=";
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function randomHex(nBytes) {
  return hex(crypto.getRandomValues(new Uint8Array(nBytes)));
}

export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// validUser mirrors identity.CheckUser: 1–32 of a-z 0-9 . _ -, starting with a letter.
export function validUser(name) {
  return /^[a-z][a-z0-9._-]{0,31}$/.test(name);
}

// ---- the wire's building blocks (client/im: appendField and numbers) ----

// field is b with its length (4 bytes, big-endian) before it, as two parts
// for concat.
export function field(b) { return [u32(b.length), b]; }

export function u32(n) {
  const l = new Uint8Array(4);
  new DataView(l.buffer).setUint32(0, n);
  return l;
}

// u64 is n as 8 bytes big-endian, as Go's uint64(int64(n)).
export function u64(n) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(n)));
  return b;
}

export function eqBytes(a, b) { return a.length === b.length && a.every((v, i) => v === b[i]); }

export async function sha256(b) { return new Uint8Array(await crypto.subtle.digest("SHA-256", b)); }

// unb64Std decodes Go's []byte in JSON: standard base64 with padding only.
export function unb64Std(s) {
  if (typeof s !== "string" || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new Error("not standard base64");
  return unb64(s);
}

// b64url is base64url without padding (a Parley-Pass header).
export function b64url(bytes) { return b64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""); }

// blank reports whether s is empty once Go's strings.TrimSpace has trimmed
// it (unicode.White_Space: not quite JavaScript's trim, which also trims
// U+FEFF and leaves U+0085).
export function blank(s) { return !/[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/.test(s); }

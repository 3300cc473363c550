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

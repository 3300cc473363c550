// The login server's HTTP API (docs/login.md): register, login, refresh, the
// supernode list, and the user endpoints (contacts, status, devices) that take
// "Authorization: Parley <credential>".

export class LoginError extends Error {
  // item: the index of the refused item of a mailbox post (-1: none named).
  constructor(status, message, retryAfter, item) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter || 0;
    this.item = Number.isInteger(item) ? item : -1;
  }
}

export class LoginAPI {
  // base is the login server's URL ("" = this page's origin).
  constructor(base = "") {
    this.base = base.replace(/\/$/, "");
    this.credential = "";
  }

  // req makes one request; extra holds more headers (a Parley-Pass).
  async req(method, path, body, auth = false, extra = {}) {
    const headers = { ...extra };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth) headers["Authorization"] = "Parley " + this.credential;
    let resp;
    try {
      resp = await fetch(this.base + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
      });
    } catch (e) {
      throw new LoginError(0, `login server unreachable at ${this.base || location.origin}`);
    }
    let data = {};
    try { data = await resp.json(); } catch { /* an empty or non-JSON answer */ }
    if (!resp.ok) throw new LoginError(resp.status, data.error || `HTTP ${resp.status}`, data.retry_after, data.item);
    return data;
  }

  register(user, password) { return this.req("POST", "/api/v1/register", { user, password }); }
  login(user, password, publicKey) { return this.req("POST", "/api/v1/login", { user, password, public_key: publicKey }); }
  refresh(user, refreshToken, publicKey) {
    return this.req("POST", "/api/v1/refresh", { user, refresh_token: refreshToken, public_key: publicKey });
  }
  key() { return this.req("GET", "/api/v1/key"); }
  async userExists(name) {
    try {
      await this.req("GET", "/api/v1/users/" + encodeURIComponent(name));
      return true;
    } catch (e) {
      if (e.status === 404) return false;
      throw e;
    }
  }
  supernodes() { return this.req("GET", "/api/v1/supernodes"); }

  contacts() { return this.req("GET", "/api/v1/contacts", undefined, true); }
  requestContact(name) { return this.req("POST", `/api/v1/contacts/${encodeURIComponent(name)}`, undefined, true); }
  acceptContact(name) { return this.req("POST", `/api/v1/contacts/${encodeURIComponent(name)}/accept`, undefined, true); }
  declineContact(name) { return this.req("POST", `/api/v1/contacts/${encodeURIComponent(name)}/decline`, undefined, true); }
  // search lists up to limit user names starting with prefix (rate limited).
  search(prefix, limit = 20) {
    return this.req("GET", `/api/v1/users?prefix=${encodeURIComponent(prefix)}&limit=${limit}`, undefined, true);
  }
  // myDevices lists this user's own devices, most recently seen first:
  // {"devices":[{key (standard base64), registered, last_seen (Unix
  // seconds), encryption, self}]}.
  myDevices() { return this.req("GET", "/api/v1/devices", undefined, true); }
  // removeDevice removes and revokes one of them; key in base64url without
  // padding (43 characters).
  removeDevice(key) { return this.req("DELETE", `/api/v1/devices/${encodeURIComponent(key)}`, undefined, true); }
  status() { return this.req("GET", "/api/v1/status", undefined, true); }
  setStatus(status) { return this.req("PUT", "/api/v1/status", { status }, true); }
}

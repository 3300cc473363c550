// The page: sign up / sign in, the supernode link, contacts with presence,
// calls with their stats, and the conversation pane.

import { b64, unb64, randomHex, validUser } from "./util.js";
import * as keys from "./keys.js";
import { LoginAPI, LoginError } from "./login.js";
import { SupernodeLink } from "./supernode.js";
import { Phone, CallError } from "./phone.js";
import { drawGraph, LevelMeter } from "./meter.js";
import { ChatPane, Messenger } from "./chat.js";
import { isEnvelope, IMError } from "./im.js";
import { PRESENCE_ONLINE, PRESENCE_OFFLINE } from "./wire.gen.js";

const $ = (id) => document.getElementById(id);
const ORIGIN = location.origin;

const app = {
  api: new LoginAPI(""),
  user: "",
  kp: null,
  pub: "",
  credential: "",
  expires: 0,
  lifetime: 3600,
  refreshToken: "",
  loginKey: null,
  link: null,
  phone: null,
  device: randomHex(8), // this page's session id in signals, stable across supernodes
  contacts: [],
  presence: new Map(), // user → Map(device → status), from presence pushes
  looked: new Map(), // user → online devices from the last lookup
  myStatus: PRESENCE_ONLINE,
  call: null,
  incoming: null,
  meter: null,
  im: null, // the Messenger while signed in
};

// ---- notices ----

function notice(msg, kind = "error") {
  const el = $("notice");
  if (!msg) { el.hidden = true; el.textContent = ""; return; }
  el.textContent = msg;
  el.className = "notice " + kind;
  el.hidden = false;
}

function connState(text, cls) {
  const el = $("conn");
  el.textContent = text;
  el.className = "conn " + (cls || "");
}

function loginMessage(e, user) {
  if (!(e instanceof LoginError)) return e.message;
  if (e.status === 401 && /wrong (user name or )?password/.test(e.message)) return "Wrong user name or password.";
  if (e.status === 404 && /unknown user/.test(e.message)) return `There is no user called ${user}. Sign up to create it.`;
  if (e.status === 409) return `The user name ${user} is taken. Choose another, or sign in.`;
  if (e.status === 429) return `Too many attempts; try again in ${e.retryAfter || "a few"} seconds.`;
  if (e.status === 0) return "The login server cannot be reached. Check your connection and try again.";
  return e.message.charAt(0).toUpperCase() + e.message.slice(1) + ".";
}

// ---- signing in ----

function readForm() {
  const user = $("username").value.trim();
  const password = $("password").value;
  if (!validUser(user)) throw new Error("A user name is 1 to 32 characters of a–z, 0–9, “.”, “_” and “-”, starting with a letter.");
  if (password.length < 8) throw new Error("A password is at least 8 characters.");
  return { user, password };
}

async function signUp() {
  notice("");
  let f;
  try { f = readForm(); } catch (e) { notice(e.message); return; }
  busyAuth(true);
  try {
    await app.api.register(f.user, f.password);
    await signIn(f);
  } catch (e) {
    notice(loginMessage(e, f.user));
  } finally {
    busyAuth(false);
  }
}

async function signInClicked(ev) {
  ev?.preventDefault();
  notice("");
  let f;
  try { f = readForm(); } catch (e) { notice(e.message); return; }
  busyAuth(true);
  try {
    await signIn(f);
  } catch (e) {
    notice(loginMessage(e, f.user));
  } finally {
    busyAuth(false);
  }
}

function busyAuth(b) {
  $("signin").disabled = b;
  $("signup").disabled = b;
}

async function signIn({ user, password }) {
  if (!keys.supported()) throw new Error("This page needs a secure origin (HTTPS or localhost) for its keys and microphone.");
  const kp = await keys.deviceKey(user);
  const pub = b64(await keys.publicKeyBytes(kp));
  const resp = await app.api.login(user, password, pub);
  await started(user, kp, pub, resp);
}

async function started(user, kp, pub, resp) {
  app.user = user;
  app.kp = kp;
  app.pub = pub;
  const loginKey = unb64(resp.login_key);
  if (app.loginKey && b64(app.loginKey) !== b64(loginKey)) throw new Error("The login server's key changed; sign in again.");
  app.loginKey = loginKey;
  takeCredential(resp);
  await keys.verifyCredential(app.loginKey, app.credential); // the server vouches for our key
  await keys.saveSession(ORIGIN, { user, refresh_token: resp.refresh_token, login_key: resp.login_key });
  $("password").value = "";
  $("auth").hidden = true;
  $("app").hidden = false;
  $("me").hidden = false;
  $("me-name").textContent = user;
  notice("");
  connState("Connecting…");
  await startIM();
  startLink((resp.supernodes || []).map((s) => s.addr));
  loadContacts();
  app.contactTimer = setInterval(loadContacts, 5000);
  app.api.status().then((s) => { app.myStatus = s.status; $("my-status").value = s.status; }).catch(() => {});
}

function takeCredential(resp) {
  app.credential = resp.credential;
  app.api.credential = resp.credential;
  app.refreshToken = resp.refresh_token;
  const { cred } = keys.parseCredential(resp.credential);
  app.expires = cred.exp;
  app.lifetime = Math.max(60, cred.exp - cred.nbf);
  clearTimeout(app.renewTimer);
  const renewAt = (app.expires - app.lifetime / 3) * 1000 - Date.now();
  app.renewTimer = setTimeout(renew, Math.max(1000, renewAt));
}

let refreshing = null;
async function refreshCredential() {
  if (!refreshing) {
    refreshing = app.api.refresh(app.user, app.refreshToken, app.pub)
      .then((resp) => { takeCredential(resp); return app.credential; })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

// credential returns a current token, refreshing it a third of a lifetime
// before it expires.
async function credential() {
  if (Date.now() / 1000 > app.expires - app.lifetime / 3) {
    try { await refreshCredential(); } catch (e) { console.warn("refresh", e.message); }
  }
  return app.credential;
}

async function renew() {
  try {
    const token = await refreshCredential();
    app.link?.renew(token);
  } catch (e) {
    if (e instanceof LoginError && e.status === 401) {
      notice("Your sign-in has expired; sign in again.");
      signOut();
      return;
    }
    app.renewTimer = setTimeout(renew, 10_000);
  }
}

async function resume() {
  // A reload signs in again with the refresh token this browser keeps.
  if (!keys.supported()) {
    notice("This page needs a secure origin (HTTPS or localhost): browsers give keys and microphones only to those.");
    return;
  }
  let sess;
  try { sess = await keys.loadSession(ORIGIN); } catch { return; }
  if (!sess?.user || !sess.refresh_token) return;
  try {
    const kp = await keys.deviceKey(sess.user);
    const pub = b64(await keys.publicKeyBytes(kp));
    app.user = sess.user;
    const resp = await app.api.refresh(sess.user, sess.refresh_token, pub);
    app.loginKey = unb64(sess.login_key);
    await started(sess.user, kp, pub, resp);
  } catch (e) {
    app.loginKey = null;
    if (e instanceof LoginError && e.status === 401) await keys.dropSession(ORIGIN).catch(() => {});
    $("username").value = sess.user;
  }
}

function signOut() {
  app.im?.stop();
  app.im = null;
  chat.open("");
  app.call?.hangup();
  app.incoming?.decline();
  app.link?.close();
  app.link = null;
  app.phone = null;
  clearTimeout(app.renewTimer);
  clearInterval(app.contactTimer);
  keys.dropSession(ORIGIN).catch(() => {});
  app.loginKey = null;
  $("auth").hidden = false;
  $("app").hidden = true;
  $("me").hidden = true;
  connState("Not signed in");
}

// ---- the supernode link ----

function startLink(urls) {
  const link = new SupernodeLink({
    credential,
    key: app.kp,
    device: app.device,
    onDeliver: (f) => {
      if (isEnvelope(f.payload)) app.im?.receive(f.payload, "supernode");
      else app.phone?.onDeliver(f);
    },
    onAttached: () => {
      const m = app.im;
      m?.fetchMailbox().catch((e) => console.warn("mailbox", e.message)).then(() => m.resendPending());
    },
    onPresence: (f) => onPresence(f.from, f.status, f.device, f.from_session),
    onState: (s) => {
      if (app.link !== link) return; // signed out since
      if (s.online) {
        connState(`Online (${new URL(s.url).host})`, "online");
        if (app.lostAt) notice(`Connected again.`, "info");
        app.lostAt = 0;
        sendPresence();
      } else if (s.lost) {
        app.lostAt = Date.now();
        connState("Connection lost; reconnecting…", "offline");
        notice("Lost the connection to the Parley network; reconnecting by itself…");
      } else {
        connState("Connecting…", "offline");
      }
    },
    onFatal: (msg) => { notice(msg); connState("Offline", "offline"); },
  });
  app.link = link;
  app.phone = new Phone(
    { user: app.user, device: app.device, privateKey: app.kp.privateKey, credential, get loginKey() { return app.loginKey; } },
    link, app.api, phoneUI,
  );
  if (!urls.length) connState("No supernode is listed by the login server; waiting…", "offline");
  link.start(urls);
  if (!urls.length) {
    // The list may fill in a moment (a supernode starting with the login server).
    const poll = setInterval(async () => {
      if (!app.link || app.link !== link || link.online) { clearInterval(poll); return; }
      try { link.addURLs(((await app.api.supernodes()).supernodes || []).map((s) => s.addr)); } catch { /* retry */ }
    }, 3000);
  }
}

// ---- contacts and presence ----

// onPresence is the hook for the supernode's presence push
// {"type":"presence","from":USER,"device":D,"status":STATUS}.
export function onPresence(user, status, device = "", session = "") {
  let m = app.presence.get(user);
  if (!m) { m = new Map(); app.presence.set(user, m); }
  // One entry per device and supernode session: a device that moved to
  // another supernode may still be reported by its old, half-open session
  // until that one's late end. The device is offline when all of them are.
  const dev = (device || "_") + "\u0000";
  if (status !== PRESENCE_OFFLINE) {
    m.set(dev + session, status);
  } else {
    for (const k of [...m.keys()]) {
      if (k === dev + session || (k.startsWith(dev) && (!session || k === dev))) m.delete(k);
    }
    if (!m.size) m.set(dev, PRESENCE_OFFLINE); // known offline, not unknown
  }
  renderContacts();
}

function presenceOf(c) {
  if (c.state !== "accepted") return "";
  const m = app.presence.get(c.user);
  if (m && m.size) {
    const live = [...m.values()].filter((s) => s && s !== PRESENCE_OFFLINE);
    if (live.length) return live.includes(PRESENCE_ONLINE) ? PRESENCE_ONLINE : live[0];
    return PRESENCE_OFFLINE;
  }
  const n = app.looked.get(c.user);
  if (n === undefined) return c.status || "unknown";
  return n > 0 ? (c.status && c.status !== PRESENCE_OFFLINE ? c.status : PRESENCE_ONLINE) : PRESENCE_OFFLINE;
}

async function loadContacts() {
  if (!app.credential) return;
  try {
    app.api.credential = await credential();
    const r = await app.api.contacts();
    app.contacts = r.contacts || [];
  } catch (e) {
    return;
  }
  renderContacts();
  sendPresence();
  // Contacts the supernodes have not pushed presence for: look them up.
  if (app.link?.online) {
    for (const c of app.contacts) {
      if (c.state !== "accepted" || app.presence.get(c.user)?.size) continue;
      app.link.lookup(c.user).then((f) => { app.looked.set(c.user, f.delivered || 0); renderContacts(); }).catch(() => {});
    }
  }
}

let lastWatch = "";
function sendPresence() {
  if (!app.link) return;
  const watch = app.contacts.filter((c) => c.state === "accepted").map((c) => c.user);
  const key = app.myStatus + "|" + watch.join(",");
  if (key === lastWatch) return; // the link repeats it by itself, and after every attach
  lastWatch = key;
  app.link.setPresence(app.myStatus, watch);
}

function button(text, label, onClick, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (label) b.setAttribute("aria-label", label);
  if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  return b;
}

function renderContacts() {
  const ul = $("contact-list");
  ul.replaceChildren();
  $("no-contacts").hidden = app.contacts.length > 0;
  for (const c of app.contacts) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.user;
    li.append(name);
    const badge = document.createElement("span");
    if (c.state === "accepted") {
      const p = presenceOf(c);
      badge.className = "badge " + p;
      badge.textContent = p;
      li.append(badge,
        button("Call", `Call ${c.user}`, () => startCall(c.user)),
        button("Chat", `Chat with ${c.user}`, () => chat.open(c.user)),
        button("Remove", `Remove ${c.user}`, () => contactAction("decline", c.user)));
    } else if (c.state === "pending") {
      badge.className = "badge";
      badge.textContent = "wants to be your contact";
      li.append(badge,
        button("Accept", `Accept ${c.user}`, () => contactAction("accept", c.user)),
        button("Decline", `Decline ${c.user}`, () => contactAction("decline", c.user)));
    } else {
      badge.className = "badge";
      badge.textContent = "request sent";
      li.append(badge, button("Cancel", `Cancel request to ${c.user}`, () => contactAction("decline", c.user)));
    }
    ul.append(li);
  }
}

async function contactAction(what, user) {
  notice("");
  try {
    app.api.credential = await credential();
    if (what === "add") {
      const r = await app.api.requestContact(user);
      notice(r.state === "accepted" ? `${user} is now a contact.` : `Contact request sent to ${user}.`, "info");
      app.phone?.contactsChanged(user);
    } else if (what === "accept") {
      await app.api.acceptContact(user);
      notice(`${user} is now a contact.`, "info");
      app.phone?.contactsChanged(user);
    } else {
      await app.api.declineContact(user);
      app.phone?.contactsChanged(user);
    }
  } catch (e) {
    if (e.status === 404) notice(`There is no user called ${user}.`);
    else notice(loginMessage(e, user));
  }
  loadContacts();
}

// ---- calls ----

const phoneUI = {
  // A contact of ours changed (a "contacts" signal, which anyone may send):
  // reread the list soon, once for a burst, at most once a second.
  onContactsChanged() {
    if (app.contactsSoon) return;
    const wait = Math.max(300, 1000 - (Date.now() - (app.contactsAt || 0)));
    app.contactsSoon = setTimeout(() => { app.contactsSoon = null; app.contactsAt = Date.now(); loadContacts(); }, wait);
  },
  onIncoming(inc) {
    if (app.incoming) { inc.decline("busy"); return; }
    app.incoming = inc;
    $("incoming-peer").textContent = inc.peer;
    $("incoming").hidden = false;
    $("idle").hidden = true;
    inc.onCancel = (why) => {
      if (app.incoming === inc) app.incoming = null;
      $("incoming").hidden = true;
      showIdle();
      notice(why === "no answer" ? `Missed call from ${inc.peer}.` : `${inc.peer} hung up before you answered.`, "info");
    };
  },
  onCallState(c) {
    if (c !== app.call) { if (app.call && !app.call.ended) return; app.call = c; }
    renderCall(c);
  },
  onCallEnded(c) {
    if (app.meter) { app.meter.stop(); app.meter = null; }
    if (app.call === c) {
      app.call = null;
      $("incall").hidden = true;
      $("remote-audio").srcObject = null;
      showIdle();
    }
    if (c.error) notice(c.error, c.reason === "remote hangup" ? "info" : "error");
    else notice(`Call with ${c.peer} ended.`, "info");
  },
  onCallStats(c, st) { if (c === app.call) renderStats(st, c); },
  onRemoteStream(c, stream) {
    const a = $("remote-audio");
    a.srcObject = stream;
    a.play().catch(() => {});
  },
  onNotice(msg) { notice(msg); },
  onChannelMessage(c, data) {
    if (typeof data !== "string" || data.length > 256 << 10) return;
    let p;
    try { p = JSON.parse(data); } catch { return; }
    if (isEnvelope(p)) app.im?.receive(p, "datachannel");
  },
};

function showIdle() {
  $("idle").hidden = !!app.call || !!app.incoming;
}

const STATE_TEXT = {
  calling: "Calling…", ringing: "Ringing…", answering: "Answering…", connecting: "Connecting…", connected: "Connected", ended: "Ended",
};

function renderCall(c) {
  $("incall").hidden = false;
  $("idle").hidden = true;
  $("call-peer").textContent = c.peer;
  let s = STATE_TEXT[c.state] || c.state;
  if (c.state === "connected") {
    if (c.held) s = "On hold";
    else if (c.peerHeld) s = `On hold by ${c.peer}`;
    if (c.muted) s += " · muted";
  }
  $("call-state").textContent = s;
  const live = c.state === "connected";
  $("mute").disabled = !live;
  $("mute").setAttribute("aria-pressed", String(c.muted));
  $("hold").hidden = c.held;
  $("resume").hidden = !c.held;
  $("hold").disabled = !live;
  $("resume").disabled = !live;
  if (live && !app.meter && c.mic) {
    try { app.meter = new LevelMeter(app.phone.audioContext(), c.mic, $("mic-level")); } catch (e) { console.warn("meter", e); }
  }
}

function fmt(v, unit, digits = 0) { return v === null || v === undefined || Number.isNaN(v) ? "–" : `${v.toFixed(digits)} ${unit}`; }

function renderStats(st, c) {
  $("st-path").textContent = st.path ? st.path + (st.relay ? ` (${st.relay})` : "") : "–";
  $("st-rtt").textContent = fmt(st.rtt, "ms", 1);
  $("st-jitter").textContent = fmt(st.jitter, "ms", 1);
  $("st-loss").textContent = `${(st.loss * 100).toFixed(1)} %`;
  $("st-bitrate").textContent = `${st.sendKbps.toFixed(0)} kb/s out · ${st.recvKbps.toFixed(0)} kb/s in`;
  $("st-codec").textContent = st.codec || "–";
  drawGraph($("graph"), c.history);
}

function clearStats() {
  for (const id of ["st-path", "st-rtt", "st-jitter", "st-loss", "st-bitrate", "st-codec"]) $(id).textContent = "–";
  drawGraph($("graph"), []);
}

async function startCall(peer) {
  notice("");
  if (!app.phone) return;
  peer = (peer || "").trim();
  if (!peer) { notice("Type the user name to call in Contact."); $("contact").focus(); return; }
  if (app.call) { notice("Hang up the call in progress first."); return; }
  clearStats();
  app.phone.audioContext(); // made in the click, so the browser lets it play
  try {
    await app.phone.call(peer);
  } catch (e) {
    if (e instanceof CallError) notice(e.message);
    else notice(`The call failed: ${e.message}`);
  }
}

async function answer() {
  const inc = app.incoming;
  if (!inc) return;
  app.incoming = null;
  $("incoming").hidden = true;
  clearStats();
  app.phone.audioContext();
  try {
    await inc.answer();
  } catch (e) {
    notice(e.message);
    showIdle();
  }
}

function decline() {
  const inc = app.incoming;
  if (!inc) return;
  app.incoming = null;
  $("incoming").hidden = true;
  inc.decline("declined");
  showIdle();
}

// ---- instant messages ----

// startIM makes (or loads) this browser's X25519 key for the user and
// publishes it at the login server, so that others can write to this device.
async function startIM() {
  const m = await Messenger.start({
    user: app.user,
    key: app.kp,
    pub: unb64(app.pub),
    credential,
    loginKey: () => app.loginKey,
    api: app.api,
    get link() { return app.link; },
    channelTo: (u) => app.phone?.channelTo(u) || null,
    onMessage: (msg, via) => {
      if (app.im !== m) return;
      if (!chat.peer && msg.dir === "in") { chat.open(msg.peer); return; }
      chat.show(msg);
      if (msg.dir === "in" && msg.peer !== chat.peer) notice(`New message from ${msg.peer}.`, "info");
    },
    onState: (peer, ids, state) => { if (app.im === m) chat.mark(peer, ids, state); },
    onFailed: (peer, e) => { if (app.im === m) notice(describeSendError(e, peer)); },
    onRefused: (from, why) => { if (app.im === m) notice(`Dropped a message${from ? ` claiming to be from ${from}` : ""} that failed its checks (${why}).`); },
  });
  try {
    await m.register();
  } catch (e) {
    console.warn("registering this device for messages", e);
    notice("This browser could not register for messages: " + loginMessage(e, app.user));
  }
  app.im = m;
}

function describeSendError(e, peer) {
  if (e instanceof IMError) return e.message;
  if (e instanceof LoginError) {
    if (e.status === 403) return `${peer} is not your contact yet: add ${peer} as a contact (and wait until they accept) to write to them.`;
    if (e.status === 404) return `There is no user called ${peer}.`;
    if (e.status === 0) return "The login server cannot be reached; the message was not sent.";
    return `The message was not sent: ${loginMessage(e, peer)}`;
  }
  return `The message was not sent: ${e.message}`;
}

// ---- wiring ----

const chat = new ChatPane({ log: $("chat-log"), input: $("chat-text"), send: $("send"), title: $("chat-h"), note: $("chat-note") }, {
  history: (peer) => app.im ? app.im.hist.conversation(peer) : Promise.resolve([]),
  pickPeer: () => { const u = $("contact").value.trim(); return validUser(u) ? u : ""; },
  describe: describeSendError,
  sendText: async (peer, text) => {
    if (!app.im) throw new Error("not signed in");
    if (peer === app.user) throw new IMError("self", "Write to a contact, not to yourself.");
    return app.im.send(peer, text);
  },
});

$("auth-form").addEventListener("submit", signInClicked);
$("signup").addEventListener("click", signUp);
$("signout").addEventListener("click", signOut);
$("call").addEventListener("click", () => startCall($("contact").value));
$("contact").addEventListener("keydown", (e) => { if (e.key === "Enter") startCall($("contact").value); });
$("add").addEventListener("click", () => {
  const u = $("contact").value.trim();
  if (!validUser(u)) { notice("Type a user name in Contact to add."); return; }
  contactAction("add", u);
});
$("answer").addEventListener("click", answer);
$("decline").addEventListener("click", decline);
$("hangup").addEventListener("click", () => app.call?.hangup());
$("mute").addEventListener("click", () => app.call && app.call.setMuted(!app.call.muted));
$("hold").addEventListener("click", () => app.call?.setHeld(true));
$("resume").addEventListener("click", () => app.call?.setHeld(false));
$("my-status").addEventListener("change", async (e) => {
  app.myStatus = e.target.value;
  try { app.api.credential = await credential(); await app.api.setStatus(app.myStatus); } catch (err) { notice(loginMessage(err, app.user)); }
  sendPresence();
});

// For scripts and tests that inspect the page (never needed to use it).
window.parley = { app, chat, onPresence, get call() { return app.call; } };

resume();

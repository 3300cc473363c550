// The page: sign up / sign in, the supernode link, the conversation list
// (contacts and presence, last messages, unread counts, typing) with its
// search, the open conversation with its call bar, ringing (the ringtone, the
// tab's title and icon, system notifications), settings and help (with the
// user's devices: js/devices.js), keyboard
// shortcuts, the notices, and the offline start (the service worker keeps
// the page). Groups: their rows in the list, the new-group dialog, and in a
// group's conversation its members panel with the admins' actions.

import { b64, unb64, randomHex, validUser } from "./util.js";
import * as keys from "./keys.js";
import { LoginAPI, LoginError } from "./login.js";
import { SupernodeLink } from "./supernode.js";
import { Phone, CallError } from "./phone.js";
import { Conferences, bindConfView, testHooks as confTestHooks } from "./conf.js";
import { drawGraph, LevelMeter } from "./meter.js";
import { ChatPane, History, Messenger, listTime, duration } from "./chat.js";
import { isEnvelope, IMError } from "./im.js";
import * as G from "./group.js";
import { GroupChat } from "./groupchat.js";
import { DevicesPanel } from "./devices.js";
import { fileCard, refresh as refreshFile, wireComposer } from "./fileview.js";
import { Ringtone, setIcon, notify, notificationState, askNotifications } from "./notify.js";
import { PRESENCE_ONLINE, PRESENCE_OFFLINE, IM_TYPING_INTERVAL_MS as TYPING_INTERVAL, IM_TYPING_TIMEOUT_MS as TYPING_TIMEOUT } from "./wire.gen.js";

const $ = (id) => document.getElementById(id);
const ORIGIN = location.origin;
const TITLE = "Parley";
const NOTICE_MS = 6000; // how long a notice that is not an error stays
const SEARCH_LIMIT = 20; // loginapi.MaxSearchResults
const SEARCH_DELAY = 250;
const SEARCH_CACHE_MS = 30_000;
const ICON = "favicon.svg";
const RINGING_ICON = "icons/ringing.svg";
const OFFLINE_RETRY = [1000, 2000, 3000, 5000, 5000, 10_000, 30_000]; // ms between sign-in tries while the server is away

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
  convs: new Map(), // peer → {last, unread}: the conversations in this browser's history
  search: { text: "", results: [], note: "", cache: new Map(), timer: null, seq: 0 },
  typing: new Map(), // peer → timer: peer is typing to us until it fires
  ringtone: new Ringtone(),
  ringNote: null, // the system notification of the call ringing, or null
  offline: null, // {user, tries, timer} while the page waits for the server to sign in again
};

// ---- small DOM helpers ----

const SVG = "http://www.w3.org/2000/svg";

function icon(name, cls = "") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", ("icon " + cls).trim());
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", "#i-" + name);
  svg.append(use);
  return svg;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// button makes a button showing text (and an icon); label, when set, is its
// accessible name (it starts with the visible text).
function button(text, label, onClick, cls, iconName) {
  const b = document.createElement("button");
  b.type = "button";
  if (iconName) b.append(icon(iconName));
  if (text) b.append(text);
  if (label) b.setAttribute("aria-label", label);
  if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  return b;
}

function initials(name) {
  const parts = name.split(/[._-]+/).filter(Boolean);
  return (parts.length > 1 ? parts[0][0] + parts[1][0] : name.slice(0, 1)).toUpperCase();
}

function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % 8;
}

// avatar fills e with name's initials in name's colour, and a presence dot
// (a group's is square).
function avatar(e, name, presence, group = false) {
  e.className = `avatar av-${hue(name)}${group ? " group" : ""}`;
  e.textContent = initials(name);
  if (presence) e.append(el("span", "dot " + presence));
  return e;
}

const narrow = () => matchMedia("(max-width: 720px)").matches;

// ---- notices ----

// notice shows msg: an error stays until dismissed (or until the action it
// is about is tried again); any other kind leaves by itself after a few
// seconds. A key names a notice that a newer one with the same key replaces
// (the connection's). notice("") clears the notices without a key.
// action, when given ({text, run}), adds a button; such a notice stays
// until used or dismissed.
function notice(msg, kind = "error", key = "", action = null) {
  const box = $("notices");
  if (!msg) {
    for (const n of [...box.children]) if (!n.dataset.key) n.remove();
    return;
  }
  for (const n of [...box.children]) if ((key && n.dataset.key === key) || n.dataset.msg === msg) n.remove();
  const n = el("div", "notice " + kind);
  if (kind === "error") n.setAttribute("role", "alert");
  n.dataset.msg = msg;
  if (key) n.dataset.key = key;
  n.append(el("p", "", msg));
  if (action) n.append(button(action.text, "", () => { n.remove(); action.run(); }, "small"));
  n.append(button("", "Dismiss", () => n.remove(), "icon-only dismiss", "x"));
  box.append(n);
  while (box.children.length > 3) box.firstElementChild.remove();
  if (kind !== "error" && !action) setTimeout(() => n.remove(), NOTICE_MS);
}

// dropNotice removes the notice with key.
function dropNotice(key) {
  for (const n of [...$("notices").children]) if (n.dataset.key === key) n.remove();
}

// connState shows the link's state (title: the longer story).
function connState(text, cls, title = "") {
  const e = $("conn");
  e.textContent = text;
  e.title = title;
  e.className = "conn " + (cls || "");
}

function loginMessage(e, user) {
  if (!(e instanceof LoginError)) return e.message;
  if (deviceRemoved(e)) return "This browser was removed from your account (on another of your devices): sign in with your password to use it again.";
  if (e.status === 401 && /wrong (user name or )?password/.test(e.message)) return "Wrong user name or password.";
  if (e.status === 404 && /unknown user/.test(e.message)) return `There is no user called ${user}. Sign up to create it.`;
  if (e.status === 409) return `The user name ${user} is taken. Choose another, or sign in.`;
  if (e.status === 429) return `Too many attempts; try again in ${e.retryAfter || "a few"} seconds.`;
  if (e.status === 0) return "The login server cannot be reached. Check your connection and try again.";
  return e.message.charAt(0).toUpperCase() + e.message.slice(1) + ".";
}

// deviceRemoved reports whether the login server refused e's request
// because this browser was removed from the user's devices.
function deviceRemoved(e) {
  return e instanceof LoginError && e.status === 401 && e.message.startsWith("device removed");
}

// removedElsewhere signs out a page whose device another device of the
// user removed, and says so (m: the Messenger of the session that found
// out: a page signed out since has nothing to do).
function removedElsewhere(m, e) {
  if (!m || app.im !== m) return;
  signOut();
  notice(loginMessage(e, app.user));
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

function showAuth() {
  $("auth").hidden = false;
  $("app").hidden = true;
}

async function signIn({ user, password }) {
  if (!keys.supported()) throw new Error("This page needs a secure origin (HTTPS or localhost) for its keys and microphone.");
  const kp = await keys.deviceKey(user);
  const pub = b64(await keys.publicKeyBytes(kp));
  const resp = await app.api.login(user, password, pub);
  await started(user, kp, pub, resp);
}

async function started(user, kp, pub, resp) {
  leaveOffline();
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
  $("me-name").textContent = user;
  avatar($("me-avatar"), user);
  notice("");
  connState("Connecting…");
  closeConversation();
  await startIM();
  await loadConversations();
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
      const removed = deviceRemoved(e);
      signOut();
      notice(removed ? loginMessage(e, app.user) : "Your sign-in has expired; sign in again.");
      return;
    }
    app.renewTimer = setTimeout(renew, 10_000);
  }
}

async function resume() {
  // A reload signs in again with the refresh token this browser keeps.
  if (!keys.supported()) {
    showAuth();
    notice("This page needs a secure origin (HTTPS or localhost): browsers give keys and microphones only to those.");
    return;
  }
  let sess;
  try { sess = await keys.loadSession(ORIGIN); } catch { showAuth(); return; }
  if (!sess?.user || !sess.refresh_token) { showAuth(); return; }
  try {
    const kp = await keys.deviceKey(sess.user);
    const pub = b64(await keys.publicKeyBytes(kp));
    app.user = sess.user;
    const resp = await app.api.refresh(sess.user, sess.refresh_token, pub);
    app.loginKey = unb64(sess.login_key);
    await started(sess.user, kp, pub, resp);
  } catch (e) {
    app.loginKey = null;
    if (unreachable(e)) { enterOffline(sess.user); return; }
    leaveOffline();
    if (e instanceof LoginError && e.status === 401) await keys.dropSession(ORIGIN).catch(() => {});
    $("username").value = sess.user;
    showAuth();
    if (deviceRemoved(e)) notice(loginMessage(e, sess.user));
  }
}

// unreachable reports whether e says the server is not there (no answer, or
// a front end's 502, 503, 504), not that it refused.
function unreachable(e) {
  return e instanceof LoginError && (e.status === 0 || e.status === 502 || e.status === 503 || e.status === 504);
}

// enterOffline shows user's conversations from this browser's history when
// the page opened (from the service worker's copy) but the server cannot
// be reached, says so, and signs in by itself when it is back.
async function enterOffline(user) {
  const first = !app.offline;
  if (first) app.offline = { user, tries: 0, timer: null };
  const off = app.offline;
  if (first) {
    $("auth").hidden = true;
    $("app").hidden = false;
    $("app").classList.add("is-offline");
    $("my-status").disabled = true;
    $("me-name").textContent = user;
    avatar($("me-avatar"), user);
    connState("Offline", "offline", "The Parley server cannot be reached");
    notice("You are offline: the Parley server cannot be reached. Your conversations in this browser are here to read; this page signs in by itself when the server is back.", "error", "conn");
    try { app.convs = await new History(user).summaries(); } catch (e) { console.warn("conversations", e); }
    try {
      const gc = new GroupChat({ hist: new History(user), user, cfg: {} });
      await gc.load();
      off.groups = gc.states;
    } catch (e) { console.warn("groups", e); }
    render();
  }
  clearTimeout(off.timer);
  off.timer = setTimeout(() => { if (app.offline === off) resume(); }, OFFLINE_RETRY[Math.min(off.tries++, OFFLINE_RETRY.length - 1)]);
}

function leaveOffline() {
  if (!app.offline) return;
  clearTimeout(app.offline.timer);
  app.offline = null;
  $("app").classList.remove("is-offline");
  $("my-status").disabled = false;
  dropNotice("conn");
}

// The browser says the network is back: try at once.
window.addEventListener("online", () => { if (app.offline) resume(); });

function signOut() {
  leaveOffline();
  stopRinging();
  for (const t of app.typing.values()) clearTimeout(t);
  app.typing.clear();
  app.im?.stop();
  app.im = null;
  closeConversation();
  chat.drafts.clear(); // what was typed stays with its user
  app.call?.hangup();
  app.incoming?.decline();
  app.conf?.leave();
  app.conf = null;
  app.link?.close();
  app.link = null;
  app.phone = null;
  clearTimeout(app.renewTimer);
  clearInterval(app.contactTimer);
  keys.dropSession(ORIGIN).catch(() => {});
  app.loginKey = null;
  app.contacts = [];
  app.convs = new Map();
  app.presence = new Map();
  app.looked = new Map();
  lastWatch = "";
  clearSearch();
  devices.clear();
  $("settings").close();
  $("new-group").close();
  showAuth();
  connState("Not signed in");
  updateTitle();
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
      // Then, once a page start, ask this user's other devices for the
      // history this browser lacks (js/histsync.js).
      m?.fetchMailbox().catch((e) => console.warn("mailbox", e.message)).then(() => m.resendPending()).then(() => m.history.start());
      // What we knew of our contacts' presence may be stale after a loss:
      // ask again now (pushes answer the rest).
      if (app.lostAt) { app.presence.clear(); app.looked.clear(); }
      lookupContacts();
    },
    onPresence: (f) => onPresence(f.from, f.status, f.device, f.from_session),
    onState: (s) => {
      if (app.link !== link) return; // signed out since
      if (s.online) {
        connState("Online", "online", `Online, attached to the supernode ${new URL(s.url).host}`);
        if (app.lostAt) notice("Connected again.", "info", "conn");
        app.lostAt = 0;
        sendPresence(true);
      } else if (s.lost) {
        app.lostAt = Date.now();
        connState("Connection lost; reconnecting…", "offline");
        notice("Lost the connection to the Parley network; reconnecting by itself…", "error", "conn");
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
  app.conf = new Conferences(app.phone, confUI);
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

// A page that goes away (closed, reloaded, navigated from) ends its link
// cleanly, so that the supernode tells our contacts at once that this device
// is offline. A page the browser kept (back-forward cache) and shows again
// starts afresh.
window.addEventListener("pagehide", () => { app.link?.close("page closed"); });
window.addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });

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
  render();
}

// presenceOf is an accepted contact's presence: from the supernode's pushes,
// else from a lookup (with the status they chose), else "" (not known yet:
// the status the login server stores is what they chose, not whether they
// are there).
function presenceOf(c) {
  if (!c || c.state !== "accepted") return "";
  const m = app.presence.get(c.user);
  if (m && m.size) {
    const live = [...m.values()].filter((s) => s && s !== PRESENCE_OFFLINE);
    if (live.length) return live.includes(PRESENCE_ONLINE) ? PRESENCE_ONLINE : live[0];
    return PRESENCE_OFFLINE;
  }
  const n = app.looked.get(c.user);
  if (n === undefined) return "";
  return n > 0 ? (c.status && c.status !== PRESENCE_OFFLINE ? c.status : PRESENCE_ONLINE) : PRESENCE_OFFLINE;
}

async function loadContacts() {
  if (!app.credential) return;
  const m = app.im;
  try {
    app.api.credential = await credential();
    const r = await app.api.contacts();
    app.contacts = r.contacts || [];
  } catch (e) {
    if (deviceRemoved(e)) removedElsewhere(m, e);
    return;
  }
  render();
  sendPresence();
  lookupContacts();
}

// lookupContacts asks the supernode about the accepted contacts it has not
// pushed presence for.
function lookupContacts() {
  if (!app.link?.online) return;
  for (const c of app.contacts) {
    if (c.state !== "accepted" || app.presence.get(c.user)?.size) continue;
    app.link.lookup(c.user).then((f) => { app.looked.set(c.user, f.delivered || 0); render(); }).catch(() => {});
  }
}

let lastWatch = "";
function sendPresence(force = false) {
  if (!app.link) return;
  const watch = app.contacts.filter((c) => c.state === "accepted").map((c) => c.user);
  const key = app.myStatus + "|" + watch.join(",");
  if (key === lastWatch && !force) return; // the link repeats it by itself, and after every attach
  lastWatch = key;
  app.link.setPresence(app.myStatus, watch);
}

function contactOf(user) { return app.contacts.find((c) => c.user === user); }

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

// ---- the conversation list ----

// loadConversations reads the last message and unread count of every
// conversation in this browser's history.
async function loadConversations() {
  if (!app.im) return;
  try { app.convs = await app.im.hist.summaries(); } catch (e) { console.warn("conversations", e); }
  render();
}

// historyLanded shows what another device of this user changed in the
// history (js/histsync.js): the open conversation gets the messages it
// lacked and the marks that moved on; the list's counts and last messages
// are read again, soon (a batch comes in several envelopes).
function historyLanded(r) {
  for (const x of r.states) {
    chat.mark(x.peer, x.ids, x.state);
    const last = app.convs.get(x.peer)?.last;
    if (last && last.dir === "out" && x.ids.includes(last.id)) last.state = x.state;
  }
  for (const m of r.added) chat.show(m, false);
  refreshConversations();
}

let convsTimer = null;
function refreshConversations() {
  if (convsTimer) return;
  convsTimer = setTimeout(async () => {
    convsTimer = null;
    await loadConversations();
    // What came for the conversation on screen is read.
    if (chat.peer && isReading(chat.peer) && app.convs.get(chat.peer)?.unread) markRead(chat.peer);
  }, 100);
}

// noteMessage keeps the list's figures for a message just stored or shown.
function noteMessage(m) {
  let e = app.convs.get(m.peer);
  if (!e) { e = { last: m, unread: 0 }; app.convs.set(m.peer, e); }
  if ((m.ts - e.last.ts || m.seq - e.last.seq) >= 0) e.last = m;
  if (m.unread) e.unread++;
}

function isReading(peer) { return chat.peer === peer && document.visibilityState === "visible"; }

// markRead clears peer's unread count and, when this user tells, sends a
// read receipt for what is now on screen.
async function markRead(peer) {
  const e = app.convs.get(peer);
  if (e?.unread) {
    e.unread = 0;
    render();
  }
  try { await app.im?.seen(peer); } catch (err) { console.warn("marking read", err); }
}

// ---- typing ----

// setTyping shows (or stops showing) that peer is typing to us: for
// TYPING_TIMEOUT after the last sign, until they stop, or a message of
// theirs comes.
function setTyping(peer, active) {
  clearTimeout(app.typing.get(peer));
  if (active) app.typing.set(peer, setTimeout(() => setTyping(peer, false), TYPING_TIMEOUT));
  else if (!app.typing.delete(peer)) return;
  render();
}

const isTyping = (peer) => app.typing.has(peer);

// The composer tells the open conversation's peer (an accepted contact)
// that this user types: at most once per TYPING_INTERVAL, and "stopped"
// when the field empties, a message goes, another conversation opens, or
// nothing was typed for TYPING_INTERVAL.
let typingTo = "", typingIdle = null;
function typingInput() {
  const peer = chat.peer;
  if (!app.im || !peer || contactOf(peer)?.state !== "accepted") return;
  if (typingTo && typingTo !== peer) typingStop();
  clearTimeout(typingIdle);
  if (!$("chat-text").value.trim()) { typingStop(); return; }
  typingTo = peer;
  app.im.typing(peer, true);
  typingIdle = setTimeout(typingStop, TYPING_INTERVAL);
}

// typingDone forgets the typing without a "stopped": the message that goes
// now ends it at the peer's.
function typingDone() {
  clearTimeout(typingIdle);
  typingTo = "";
}

function typingStop() {
  clearTimeout(typingIdle);
  const peer = typingTo;
  typingTo = "";
  if (peer) app.im?.typing(peer, false);
}

// ---- settings ----

const readKey = () => `parley:read-receipts:${app.user}`;

// readReceipts reports whether this user sends (and sees) read receipts: a
// setting of this browser, on unless turned off.
function readReceipts() { return localStorage.getItem(readKey()) !== "off"; }

function setReadReceipts(on) {
  if (on) localStorage.removeItem(readKey());
  else localStorage.setItem(readKey(), "off");
  chat.remark();
}

const NOTIFICATION_TEXT = {
  granted: "Notifications are on: calls and messages are shown while Parley is in the background.",
  default: "Notifications are off. Turn them on to hear about calls and messages while Parley is in the background.",
  denied: "Notifications are blocked for this page: allow them in the browser's site settings.",
  unsupported: "This browser shows no notifications for this page.",
};

function renderSettings() {
  const st = notificationState();
  $("notif-state").textContent = NOTIFICATION_TEXT[st] || NOTIFICATION_TEXT.unsupported;
  $("notif-on").hidden = st !== "default";
  $("read-receipts").checked = readReceipts();
}

function openSettings() {
  renderSettings();
  if (!$("settings").open) {
    $("settings").showModal();
    devices.open();
  }
}

// devices is "Your devices" in the settings (js/devices.js).
const devices = new DevicesPanel({ list: $("device-list"), note: $("devices-note"), error: $("devices-error"), heading: $("devices-h") }, {
  api: async () => { app.api.credential = await credential(); return app.api; },
  describe: (e) => loginMessage(e, app.user),
  unavailable: () => (app.offline ? "You are offline: your devices are listed once Parley is connected." : !app.im ? "Not signed in." : ""),
  // Messages to this user's devices are sealed to the list as it is now.
  removed: () => app.im?.devices.delete(app.user),
  removedSelf: () => {
    signOut();
    notice("This browser was removed from your account and signed out. Sign in here with your password to use it again.", "info");
  },
});

function totalUnread() {
  let n = 0;
  for (const e of app.convs.values()) n += e.unread;
  return n;
}

function updateTitle() {
  const n = app.user && !$("app").hidden ? totalUnread() : 0;
  let t = n ? `(${n}) ${TITLE}` : TITLE;
  if (app.incoming) t = `📞 ${app.incoming.peer} is calling you – ${TITLE}`;
  if (document.title !== t) document.title = t;
  const others = chat.peer ? n - (app.convs.get(chat.peer)?.unread || 0) : n;
  $("back-unread").hidden = others === 0;
  $("back-unread").textContent = others ? String(others) : "";
}

const RANK = { pending: 0 };

// entries are the list's rows: every contact and request, and every peer
// this browser has messages with (or has open), newest conversation first,
// requests to answer on top.
function entries() {
  const m = new Map();
  for (const c of app.contacts) m.set(c.user, { user: c.user, contact: c, sum: null });
  for (const [peer, sum] of app.convs) {
    if (peer === app.user || G.isGroupPeer(peer)) continue;
    const e = m.get(peer) || { user: peer, contact: null };
    e.sum = sum;
    m.set(peer, e);
  }
  // Every group this browser knows (its key: "#" and its id).
  for (const g of groupStates().values()) {
    const peer = G.groupPeer(g.id);
    m.set(peer, { user: peer, group: g, contact: null, sum: app.convs.get(peer) || null });
  }
  if (chat.peer && !m.has(chat.peer) && !G.isGroupPeer(chat.peer)) m.set(chat.peer, { user: chat.peer, contact: null, sum: null });
  return [...m.values()].sort((a, b) =>
    (RANK[a.contact?.state] ?? 1) - (RANK[b.contact?.state] ?? 1) ||
    activity(b) - activity(a) ||
    (a.user < b.user ? -1 : 1));
}

// activity is when a row last changed: its last message, or a group's last
// change.
function activity(e) { return Math.max(e.sum?.last.ts || 0, e.group ? lastOp(e.group).ts : 0); }

function relation(c) {
  if (!c) return "not a contact";
  if (c.state === "pending") return "wants to be your contact";
  if (c.state === "accepted") return "";
  return "request sent";
}

function previewOf(sum, g) {
  // A group's last change, when it is newer than its last message.
  if (g && (!sum || lastOp(g).ts > sum.last.ts)) return describeOp(lastOp(g));
  if (!sum) return "";
  const t = sum.last.text.replace(/\s+/g, " ").trim();
  const who = sum.last.kind ? "" : sum.last.dir === "out" ? "You: " : sum.last.from ? `${sum.last.from}: ` : "";
  return who + (t.length > 90 ? t.slice(0, 90) + "…" : t);
}

function render() {
  renderList();
  renderHeader();
  renderSearch();
  updateTitle();
}

let lastList = "";
function renderList() {
  const ul = $("contact-list");
  const q = app.search.text;
  const all = entries();
  const rows = q ? all.filter((e) => (e.group ? e.group.name.toLowerCase() : e.user).includes(q)) : all;
  // Rebuild only when something shown changed (a rebuild under a keyboard
  // user's focus would move it).
  const sig = JSON.stringify([chat.peer, q, rows.map((e) => [e.user, e.contact?.state, presenceOf(e.contact), e.sum?.last.id, e.sum?.last.ts, e.sum?.unread, e.sum?.last.dir, isTyping(e.user),
    e.group && [e.group.name, e.group.digest, G.isMember(e.group, app.user)]])]);
  $("no-contacts").hidden = all.length > 0 || !!q;
  $("convs-h").hidden = !!q && rows.length === 0;
  if (sig === lastList) return;
  lastList = sig;
  const focused = ul.contains(document.activeElement) ? document.activeElement.dataset.key : "";
  ul.replaceChildren(...rows.map(row));
  if (focused) ul.querySelector(`[data-key="${focused}"]`)?.focus();
}

// row is one conversation of the list: a button that opens it, named "Chat
// with USER" and described by its presence, unread count and last message.
function row(e) {
  if (e.group) return groupRow(e);
  const u = e.user;
  const c = e.contact;
  const p = presenceOf(c);
  const unread = e.sum?.unread || 0;
  const li = el("li", "conv-item");
  li.classList.toggle("is-open", chat.peer === u);
  li.classList.toggle("has-unread", unread > 0);
  const open = button("", `Chat with ${u}`, () => openConversation(u, true), "open");
  open.dataset.key = "open-" + u;
  open.setAttribute("aria-describedby", `ci-${u}`);
  if (chat.peer === u) open.setAttribute("aria-current", "true");
  const main = el("span", "ci-main");
  const top = el("span", "ci-top");
  const bottom = el("span", "ci-bottom");
  top.append(el("span", "name", u));
  const rel = relation(c);
  if (c?.state === "accepted") {
    top.append(el("span", "badge " + (p || "unknown"), p));
  }
  if (e.sum) {
    const t = el("time", "when", listTime(e.sum.last.ts));
    t.dateTime = new Date(e.sum.last.ts).toISOString();
    top.append(t);
  }
  const preview = previewOf(e.sum);
  if (isTyping(u)) bottom.append(el("span", "preview typing", "typing…"));
  else if (rel && (!preview || c?.state === "pending")) bottom.append(el("span", "badge req", rel));
  else bottom.append(el("span", "preview" + (e.sum?.last.outcome === "missed" ? " missed" : ""), preview));
  if (unread) bottom.append(el("span", "unread", String(unread)));
  main.append(top, bottom);
  open.append(avatar(el("span"), u, c?.state === "accepted" ? p || "unknown" : ""), main);
  const desc = [p || rel, isTyping(u) ? "typing" : "", unread ? `${unread} unread message${unread > 1 ? "s" : ""}` : "", preview ? `last message ${listTime(e.sum.last.ts)}: ${preview}` : ""];
  const sr = el("span", "sr-only", desc.filter(Boolean).join(". "));
  sr.id = `ci-${u}`;
  li.append(open, sr);
  if (c?.state === "pending") {
    const acts = el("div", "req-actions");
    acts.append(
      button("Accept", `Accept ${u}`, () => contactAction("accept", u), "small go"),
      button("Decline", `Decline ${u}`, () => contactAction("decline", u), "small"));
    li.append(acts);
  }
  return li;
}

// ---- the open conversation ----

// openConversation brings peer's conversation to the front (the only
// column at 390 px) and marks it read.
function openConversation(peer, byHand = false) {
  if (!peer) return;
  const again = chat.peer === peer;
  if (!again) { typingStop(); chat.open(peer); app.membersOpen = false; }
  $("welcome").hidden = true;
  $("conv").hidden = false;
  $("app").classList.add("conv-open");
  render();
  markRead(peer);
  if (byHand && !narrow()) $("chat-text").focus();
}

function closeConversation() {
  typingStop();
  chat.open("");
  $("conv").hidden = true;
  $("welcome").hidden = false;
  $("app").classList.remove("conv-open");
  render();
}

function renderHeader() {
  const u = chat.peer;
  renderCallReturn();
  if (!u) return;
  if (G.isGroupPeer(u)) { renderGroupHeader(u); return; }
  $("members").hidden = true;
  setComposer(true);
  const c = contactOf(u);
  const p = presenceOf(c);
  avatar($("conv-avatar"), u, c?.state === "accepted" ? p || "unknown" : "");
  $("chat-h").textContent = u;
  $("conv-sub").textContent = app.offline ? "you are offline" : isTyping(u) ? "typing…" : c?.state === "accepted" ? p || " " : relation(c);
  $("conv-sub").classList.toggle("typing", isTyping(u));
  const inCall = !!app.call || !!app.incoming || !!app.conf?.current;
  const sig = JSON.stringify([u, c?.state, inCall, !!app.offline]);
  const box = $("conv-actions");
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  const acts = [];
  if (app.offline) { box.replaceChildren(); return; } // who is a contact is not known offline
  if (u !== app.user) {
    const call = button("Call", `Call ${u}`, () => startCall(u), "primary", "phone");
    call.disabled = inCall;
    acts.push(call);
  }
  if (!c) acts.push(button("Add contact", "", () => contactAction("add", u), "", "user-plus"));
  else if (c.state === "pending") {
    acts.push(button("Accept", `Accept ${u}`, () => contactAction("accept", u), "go"),
      button("Decline", `Decline ${u}`, () => contactAction("decline", u)));
  } else if (c.state === "accepted") acts.push(button("Remove", `Remove ${u}`, () => contactAction("decline", u), "ghost"));
  else acts.push(button("Cancel request", `Cancel request to ${u}`, () => contactAction("decline", u), "ghost"));
  box.replaceChildren(...acts);
}

// ---- groups ----

// groupStates is every group this browser knows: Map(id → state).
function groupStates() { return app.im?.groups.states || app.offline?.groups || new Map(); }

// lastOp is a group's last change that took effect.
function lastOp(g) { return g.applied[g.applied.length - 1]; }

// describeOp says what a change did, for its line in the conversation.
function describeOp(o) {
  switch (o.type) {
    case G.OP_CREATE: return `${o.by} created the group “${o.name}”${o.members.length ? ` with ${listing(o.members)}` : ""}`;
    case G.OP_ADD: return `${o.by} added ${o.target}`;
    case G.OP_REMOVE: return `${o.by} removed ${o.target}`;
    case G.OP_LEAVE: return `${o.by} left`;
    case G.OP_RENAME: return `${o.by} renamed the group to “${o.name}”`;
    case G.OP_ADMIN: return `${o.by} made ${o.target} an admin`;
  }
  return `${o.by} changed the group`;
}

function listing(users) {
  return users.length < 2 ? users.join("") : `${users.slice(0, -1).join(", ")} and ${users[users.length - 1]}`;
}

// sysEntry is a change of group g as a line of its conversation.
function sysEntry(g, o) {
  return { kind: "sys", dir: "sys", id: `op-${o.id}`, peer: G.groupPeer(g.id), ts: o.ts, seq: 0, text: describeOp(o) };
}

// groupRow is a group's row in the list: a button named "Group NAME",
// described by its members, unread count and last message.
function groupRow(e) {
  const g = e.group;
  const peer = e.user;
  const unread = e.sum?.unread || 0;
  const member = G.isMember(g, app.user);
  const li = el("li", "conv-item group");
  li.classList.toggle("is-open", chat.peer === peer);
  li.classList.toggle("has-unread", unread > 0);
  const open = button("", `Group ${g.name}`, () => openConversation(peer, true), "open");
  open.dataset.key = "open-" + peer;
  open.setAttribute("aria-describedby", `ci-${g.id}`);
  if (chat.peer === peer) open.setAttribute("aria-current", "true");
  const main = el("span", "ci-main");
  const top = el("span", "ci-top");
  const bottom = el("span", "ci-bottom");
  top.append(el("span", "name", g.name));
  const size = member ? `${g.members.length} member${g.members.length > 1 ? "s" : ""}` : "not a member";
  top.append(el("span", "badge", size));
  const when = activity(e);
  if (when) {
    const t = el("time", "when", listTime(when));
    t.dateTime = new Date(when).toISOString();
    top.append(t);
  }
  const preview = previewOf(e.sum, g);
  bottom.append(el("span", "preview", preview));
  if (unread) bottom.append(el("span", "unread", String(unread)));
  main.append(top, bottom);
  open.append(avatar(el("span"), g.name, "", true), main);
  const desc = [`group, ${size}`, unread ? `${unread} unread message${unread > 1 ? "s" : ""}` : "", preview ? `last ${listTime(when)}: ${preview}` : ""];
  const sr = el("span", "sr-only", desc.filter(Boolean).join(". "));
  sr.id = `ci-${g.id}`;
  li.append(open, sr);
  return li;
}

// setComposer lets the message field be used, or says why not.
function setComposer(on, why = "") {
  $("chat-text").disabled = !on;
  $("send").disabled = !on;
  $("chat-text").placeholder = on ? "Write a message" : why;
}

// renderGroupHeader is the header of a group's conversation: its name, its
// members, and the Members and Leave buttons.
function renderGroupHeader(peer) {
  const g = groupStates().get(G.groupOfPeer(peer));
  const member = G.isMember(g, app.user);
  avatar($("conv-avatar"), g?.name || "Group", "", true);
  $("chat-h").textContent = g?.name || "Group";
  $("conv-sub").classList.remove("typing");
  $("conv-sub").textContent = app.offline ? "you are offline" : !g ? "" : member
    ? `${g.members.length} member${g.members.length > 1 ? "s" : ""}: ${listing(g.members.map((u) => (u === app.user ? "you" : u)))}`
    : "You are not a member of this group";
  setComposer(member && !app.offline, app.offline ? "You are offline" : "You are not a member of this group");
  const sig = JSON.stringify([peer, !!g, member, !!app.offline, !!app.call || !!app.conf?.current]);
  const box = $("conv-actions");
  if (box.dataset.sig !== sig) {
    box.dataset.sig = sig;
    const acts = [];
    if (g) {
      const toggle = button("Members", "", () => { app.membersOpen = !app.membersOpen; renderHeader(); }, "", "users");
      toggle.id = "members-toggle";
      toggle.setAttribute("aria-controls", "members");
      acts.push(toggle);
    }
    if (member && !app.offline && g.members.length > 1) {
      const call = button("Call group", "", () => { app.phone?.audioContext(); app.conf?.callGroup(g).catch((e) => notice(e.message)); }, "primary", "phone");
      call.disabled = !!app.call || !!app.conf?.current;
      acts.push(call);
    }
    if (member && !app.offline) acts.push(button("Leave group", "", (ev) => groupAction(ev.currentTarget, () => app.im.groups.change(g.id, G.OP_LEAVE)), "ghost"));
    box.replaceChildren(...acts);
  }
  $("members-toggle")?.setAttribute("aria-expanded", String(!!app.membersOpen));
  $("members").hidden = !g || !app.membersOpen;
  if (g && app.membersOpen) renderMembers(g);
}

// memberPresence is what the members panel says of a member: this user's
// status, a contact's presence, or "unknown" (no presence is shared with
// members who are not contacts).
function memberPresence(u) {
  if (u === app.user) return app.myStatus;
  return presenceOf(contactOf(u)) || "unknown";
}

// renderMembers fills the members panel: each member with their admin mark
// and presence, and for admins the buttons that remove them or make them
// admins; below, adding a contact and renaming (which say who may).
function renderMembers(g) {
  const me = app.user;
  const admin = G.isAdmin(g, me);
  const member = G.isMember(g, me);
  const candidates = app.contacts.filter((c) => c.state === "accepted" && !G.isMember(g, c.user)).map((c) => c.user).sort();
  const sig = JSON.stringify([g.id, g.digest, admin, member, candidates, g.members.map(memberPresence), !!app.offline]);
  const ul = $("member-list");
  if (ul.dataset.sig === sig) return;
  ul.dataset.sig = sig;
  $("members-h").textContent = `Members (${g.members.length})`;
  const focused = ul.contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : "";
  ul.replaceChildren(...g.members.map((u) => {
    const li = el("li", "member");
    const p = memberPresence(u);
    li.append(avatar(el("span"), u, p));
    const text = el("span", "member-text");
    text.append(el("span", "name", u === me ? `${u} (you)` : u));
    if (G.isAdmin(g, u)) text.append(el("span", "badge admin", "admin"));
    text.append(el("span", `badge ${p}`, p));
    li.append(text);
    if (admin && u !== me && !app.offline) {
      const acts = el("span", "member-actions");
      if (!G.isAdmin(g, u)) acts.append(button("Make admin", `Make ${u} an admin`, (ev) => groupAction(ev.currentTarget, () => app.im.groups.change(g.id, G.OP_ADMIN, u)), "small"));
      acts.append(button("Remove", `Remove ${u} from the group`, (ev) => groupAction(ev.currentTarget, () => app.im.groups.change(g.id, G.OP_REMOVE, u)), "small"));
      li.append(acts);
    }
    return li;
  }));
  if (focused) ul.querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
  $("group-admin").hidden = !member || !!app.offline;
  const sel = $("add-member");
  const was = sel.value;
  sel.replaceChildren(...candidates.map((u) => { const o = el("option", "", u); o.value = u; return o; }));
  if (candidates.includes(was)) sel.value = was;
  sel.disabled = $("add-member-go").disabled = candidates.length === 0;
  $("members-note").textContent = !member ? "You are not a member of this group." : candidates.length ? "" : "All your contacts are in this group.";
  if (document.activeElement !== $("rename-group")) $("rename-group").value = g.name;
}

// groupAction runs a change from button b (disabled meanwhile), and says
// clearly what went wrong.
async function groupAction(b, fn) {
  notice("");
  if (!app.im) return;
  if (b) b.disabled = true;
  try {
    await fn();
  } catch (e) {
    notice(describeGroupError(e));
  } finally {
    if (b) b.disabled = false;
    render();
  }
}

function describeGroupError(e) {
  if (e instanceof G.GroupError || e instanceof IMError) return e.message;
  if (e instanceof LoginError) return `The group was not changed: ${loginMessage(e, app.user)}`;
  return `The group was not changed: ${e.message}`;
}

// groupChanged: changes took effect in group g (ops, in order): the list,
// the header and the members panel follow, and the open conversation shows
// a line for each.
function groupChanged(g, ops) {
  if (chat.peer === G.groupPeer(g.id)) for (const o of ops) chat.show(sysEntry(g, o));
  render();
}

function currentGroup() { return groupStates().get(G.groupOfPeer(chat.peer)); }

// openNewGroup opens the New group dialog: a name, and the contacts to
// start it with.
function openNewGroup() {
  notice("");
  if (!app.im) { notice("You are offline; make the group once Parley is connected."); return; }
  const contacts = app.contacts.filter((c) => c.state === "accepted").map((c) => c.user).sort();
  $("group-name").value = "";
  $("new-group-error").textContent = "";
  $("group-pick").replaceChildren(...contacts.map((u) => {
    const d = el("div", "check");
    const box = el("input");
    box.type = "checkbox";
    box.id = `pick-${u}`;
    box.value = u;
    const l = el("label", "", u);
    l.htmlFor = box.id;
    d.append(box, l);
    return d;
  }));
  $("group-pick-note").textContent = contacts.length
    ? `Pick up to ${G.MAX_MEMBERS - 1} of your contacts; admins can add more later.`
    : "You have no contacts yet: make the group now and add them later, once they are your contacts.";
  $("new-group").showModal();
  $("group-name").focus();
}

async function createGroup(ev) {
  ev.preventDefault();
  const name = $("group-name").value.trim();
  const picked = [...$("group-pick").querySelectorAll("input:checked")].map((b) => b.value);
  const err = $("new-group-error");
  err.textContent = "";
  const go = $("create-group");
  go.disabled = true;
  try {
    G.checkName(name);
    const g = await app.im.groups.create(name, picked);
    $("new-group").close();
    openConversation(G.groupPeer(g.id), true);
  } catch (e) {
    err.textContent = describeGroupError(e);
  } finally {
    go.disabled = false;
  }
}

// ---- search ----

function clearSearch() {
  $("search").value = "";
  onSearchInput();
}

function onSearchInput() {
  const s = app.search;
  s.text = $("search").value.trim().toLowerCase();
  s.results = [];
  s.note = "";
  clearTimeout(s.timer);
  if (s.text && validUser(s.text)) {
    const local = searchLocally(s.text);
    if (local) s.results = local;
    else {
      s.note = "Searching…";
      s.timer = setTimeout(() => runSearch(s.text), SEARCH_DELAY);
    }
  } else if (s.text && ![...groupStates().values()].some((g) => g.name.toLowerCase().includes(s.text))) {
    s.note = "User names are a–z, 0–9, “.”, “_” and “-”, starting with a letter.";
  }
  render();
}

// searchLocally answers from an earlier search of a shorter prefix that
// listed every match (fewer than the limit), or of the same prefix.
function searchLocally(q) {
  const now = Date.now();
  for (const [prefix, r] of app.search.cache) {
    if (now - r.at > SEARCH_CACHE_MS) { app.search.cache.delete(prefix); continue; }
    if (prefix === q || (q.startsWith(prefix) && r.users.length < SEARCH_LIMIT)) return r.users.filter((u) => u.startsWith(q));
  }
  return null;
}

async function runSearch(q) {
  const s = app.search;
  const seq = ++s.seq;
  try {
    app.api.credential = await credential();
    const r = await app.api.search(q, SEARCH_LIMIT);
    s.cache.set(q, { users: r.users || [], at: Date.now() });
    if (seq !== s.seq || s.text !== q) return;
    s.results = r.users || [];
    s.note = "";
  } catch (e) {
    if (seq !== s.seq || s.text !== q) return;
    s.note = e instanceof LoginError && e.status === 429
      ? `Too many searches; try again in ${e.retryAfter || "a few"} seconds.`
      : `The search failed: ${loginMessage(e, q)}`;
  }
  render();
}

function renderSearch() {
  const s = app.search;
  const q = s.text;
  $("results").hidden = !q;
  if (!q) return;
  const known = new Set(entries().map((e) => e.user));
  // The row for the name as typed: offered until the search shows it is
  // only the start of other users' names.
  const found = searchLocally(q);
  const exists = known.has(q) || !!found?.includes(q);
  const canStart = validUser(q) && q !== app.user && !(found && !exists && found.some((u) => u !== app.user));
  $("start").hidden = !canStart;
  if (canStart) {
    avatar($("start-avatar"), q);
    $("start-name").textContent = q;
    const c = contactOf(q);
    $("start-sub").textContent = c ? relation(c) || "contact" : exists ? "Parley user" : found ? "no user by this name" : "";
    $("add").hidden = !!contactOf(q);
  }
  const others = s.results.filter((u) => u !== app.user && u !== q && !known.has(u));
  const sig = JSON.stringify(others);
  const ul = $("search-results");
  if (ul.dataset.sig !== sig) {
    ul.dataset.sig = sig;
    ul.replaceChildren(...others.map((u) => {
      const li = el("li", "conv-item");
      const b = button("", `Chat with ${u}`, () => { clearSearch(); openConversation(u, true); }, "open");
      const main = el("span", "ci-main");
      const top = el("span", "ci-top");
      top.append(el("span", "name", u));
      const bottom = el("span", "ci-bottom");
      bottom.append(el("span", "preview", "Parley user"));
      main.append(top, bottom);
      b.append(avatar(el("span"), u), main);
      li.append(b);
      return li;
    }));
  }
  $("results-h").hidden = others.length === 0;
  // Nobody by that name, here or at the login server.
  const none = validUser(q) && searchLocally(q)?.length === 0 && ![...known].some((u) => u.includes(q));
  $("search-note").textContent = s.note || (none ? `No user name starts with “${q}”.` : "");
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
    inc.at = Date.now();
    $("incoming-peer").textContent = inc.peer;
    avatar($("incoming-avatar"), inc.peer);
    $("incoming").hidden = false;
    renderHeader();
    startRinging(inc);
    inc.onCancel = (why) => {
      if (app.incoming === inc) app.incoming = null;
      $("incoming").hidden = true;
      stopRinging();
      renderHeader();
      notice(why === "no answer" ? `Missed call from ${inc.peer}.` : `${inc.peer} hung up before you answered.`, "info");
      noteCall(inc.peer, { id: inc.id, dir: "in", ts: inc.at, outcome: "missed" });
      if (document.visibilityState !== "visible") {
        notify(`Missed call from ${inc.peer}`, "Open Parley to call back.", `call-${inc.peer}`, () => openConversation(inc.peer, true));
      }
      offerNotifications();
    };
  },
  onCallState(c) {
    if (c !== app.call) {
      if (app.call && !app.call.ended) return;
      app.call = c;
      // The call comes to the front, in its conversation.
      openConversation(c.peer);
    }
    renderCall(c);
  },
  onCallEnded(c) {
    releaseCall(c);
    const took = c.connectedAt ? ` (${duration(Date.now() - c.connectedAt)})` : "";
    if (c.error) notice(c.error, c.reason === "remote hangup" ? "info" : "error");
    else notice(`Call with ${c.peer} ended${took}.`, "info");
    if (c.connectedAt) {
      noteCall(c.peer, { id: c.id, dir: c.outgoing ? "out" : "in", ts: c.connectedAt, outcome: "done", duration: Date.now() - c.connectedAt });
    }
    offerNotifications();
  },
  onCallStats(c, st) { if (c === app.call) { renderStats(st, c); renderPath(c); } },
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

// releaseCall lets the call bar go of c: it ended, or became a conference's
// first leg (js/conf.js).
function releaseCall(c) {
  if (app.meter) { app.meter.stop(); app.meter = null; }
  if (app.call === c) {
    app.call = null;
    clearInterval(app.callTimer);
    $("incall").hidden = true;
    $("remote-audio").srcObject = null;
    renderHeader();
  }
}

// Conference calls (js/conf.js): their panel, invitation banner and the
// call bar's Add.
const confUI = bindConfView(() => app.conf, {
  notice,
  ring(on, inv) {
    if (!on) { app.ringtone.stop(); setIcon(ICON); return; }
    setIcon(RINGING_ICON);
    app.ringtone.start();
    if (document.visibilityState !== "visible") notify(inv.text, "Join or decline in Parley.", `conf-${inv.id}`, () => {});
  },
  releaseCall,
  changed: () => renderHeader(),
  call: () => app.call,
});

const STATE_TEXT = {
  calling: "Calling…", ringing: "Ringing…", answering: "Answering…", connecting: "Connecting…", connected: "Connected", ended: "Ended",
};

function renderTimer() {
  const c = app.call;
  $("call-timer").textContent = c?.connectedAt ? duration(Date.now() - c.connectedAt) : "";
  renderCallReturn();
}

const PATH_TEXT = { direct: "Direct", "udp-relay": "Relayed over UDP", "tcp-relay": "Relayed over TCP" };

function renderPath(c) {
  const e = $("call-path");
  e.textContent = c.path ? PATH_TEXT[c.path] || c.path : "";
  e.title = c.relay ? `through the relay ${c.relay}` : "";
}

function renderCallReturn() {
  const c = app.call;
  const b = $("call-return");
  b.hidden = !c || chat.peer === c.peer;
  if (c) {
    const label = `Return to the call with ${c.peer}`;
    if (b.getAttribute("aria-label") !== label) {
      b.setAttribute("aria-label", label);
      $("call-return-text").textContent = label;
    }
    $("call-return-timer").textContent = c.connectedAt ? duration(Date.now() - c.connectedAt) : "";
  }
  $("call-open").hidden = !c || chat.peer === c.peer;
}

function renderCall(c) {
  $("incall").hidden = false;
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
  $("incall").classList.toggle("muted", c.muted);
  $("incall").classList.toggle("held", c.held || c.peerHeld);
  $("mic-label").textContent = c.muted ? "Microphone (muted)" : "Microphone";
  $("hold").hidden = c.held;
  $("resume").hidden = !c.held;
  $("hold").disabled = !live;
  $("resume").disabled = !live;
  renderPath(c);
  if (!app.callTimer || app.timerCall !== c) {
    clearInterval(app.callTimer);
    app.timerCall = c;
    app.callTimer = setInterval(renderTimer, 250);
  }
  renderTimer();
  renderHeader();
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
  if (!$("stats").hidden) drawGraph($("graph"), c.history);
}

function clearStats() {
  for (const id of ["st-path", "st-rtt", "st-jitter", "st-loss", "st-bitrate", "st-codec"]) $(id).textContent = "–";
  $("call-timer").textContent = "";
  $("call-path").textContent = "";
  drawGraph($("graph"), []);
}

function toggleStats() {
  const open = $("stats").hidden;
  $("stats").hidden = !open;
  $("stats-toggle").setAttribute("aria-expanded", String(open));
  if (open) drawGraph($("graph"), app.call?.history || []);
}

async function startCall(peer) {
  notice("");
  if (!app.phone) return;
  peer = (peer || "").trim().toLowerCase();
  if (!peer) { notice("Type the user name to call in the search box."); $("search").focus(); return; }
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
  stopRinging();
  clearStats();
  app.phone.audioContext();
  openConversation(inc.peer);
  try {
    await inc.answer();
  } catch (e) {
    notice(e.message);
    renderHeader();
  }
}

function decline() {
  const inc = app.incoming;
  if (!inc) return;
  app.incoming = null;
  $("incoming").hidden = true;
  stopRinging();
  inc.decline("declined");
  renderHeader();
  noteCall(inc.peer, { id: inc.id, dir: "in", ts: inc.at || Date.now(), outcome: "declined" });
  offerNotifications();
}

// ---- ringing ----

// startRinging makes an incoming call heard and seen: the ringtone (where
// the browser allows sound: after a click or a key on the page, else the
// banner says so and it starts at the next one), the tab's title and icon,
// and, while the page is hidden, a system notification (when allowed).
async function startRinging(inc) {
  setIcon(RINGING_ICON);
  updateTitle();
  if (document.visibilityState !== "visible") ringNotification(inc);
  const heard = await app.ringtone.start();
  if (app.incoming !== inc) { app.ringtone.stop(); return; }
  $("ring-note").hidden = heard;
}

function ringNotification(inc) {
  if (app.ringNote || app.incoming !== inc) return;
  app.ringNote = { close() {} }; // once per call
  notify(`${inc.peer} is calling you`, "Answer or decline in Parley.", `call-${inc.peer}`, () => openConversation(inc.peer))
    .then((n) => {
      if (!n) return;
      if (app.incoming === inc && app.ringNote) app.ringNote = n;
      else n.close();
    });
}

function stopRinging() {
  app.ringtone.stop();
  app.ringNote?.close();
  app.ringNote = null;
  $("ring-note").hidden = true;
  setIcon(ICON);
  updateTitle();
}

// A click or a key while a call rings unheard: the browser now allows
// sound (not the click that answers or declines).
function ringOnGesture(e) {
  if (!app.incoming || app.ringtone.state === "running") return;
  if (e.target instanceof Element && e.target.closest("#answer, #decline")) return;
  app.ringtone.start().then((heard) => { if (app.incoming) $("ring-note").hidden = heard; });
}
document.addEventListener("pointerdown", ringOnGesture, true);
document.addEventListener("keydown", ringOnGesture, true);

// noteCall keeps a call in its conversation (a missed one counts as unread).
async function noteCall(peer, c) {
  const m = app.im;
  if (!m) return;
  try {
    const rec = await m.addCall(peer, c);
    if (!rec || app.im !== m) return;
    noteMessage(rec);
    chat.show(rec);
    render();
  } catch (e) {
    console.warn("keeping a call in the conversation", e);
  }
}

// offerNotifications asks once, after a call ended, was missed or declined
// (a moment when it makes sense, not in the middle of one), whether to turn
// notifications on; the settings have the control for later.
function offerNotifications() {
  if (notificationState() !== "default" || localStorage.getItem("parley:notifications-offered")) return;
  localStorage.setItem("parley:notifications-offered", "1");
  notice("Turn on notifications to hear about calls and messages while Parley is in the background.", "info", "notif",
    { text: "Turn on notifications", run: turnOnNotifications });
}

async function turnOnNotifications() {
  const st = await askNotifications();
  renderSettings();
  if (st === "denied") notice("Notifications are blocked for this page: allow them in the browser's site settings.", "info");
  else if (st === "granted") notice("Notifications are on.", "info");
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
    isReading,
    readReceipts,
    onTyping: (peer, active) => { if (app.im === m) setTyping(peer, active); },
    onMessage: (msg) => {
      if (app.im !== m) return;
      if (msg.dir === "in") setTyping(msg.peer, false);
      noteMessage(msg);
      chat.show(msg);
      render();
      if (msg.dir === "in" && document.visibilityState !== "visible") {
        const text = msg.text.length > 200 ? msg.text.slice(0, 200) + "…" : msg.text;
        const g = groupStates().get(G.groupOfPeer(msg.peer));
        notify(g ? g.name : msg.peer, g ? `${msg.from}: ${text}` : text, `msg-${msg.peer}`, () => openConversation(msg.peer, true));
      }
    },
    onGroup: (g, ops) => { if (app.im === m) groupChanged(g, ops); },
    onState: (peer, ids, state) => {
      if (app.im !== m) return;
      chat.mark(peer, ids, state);
      const last = app.convs.get(peer)?.last;
      if (last && last.dir === "out" && ids.includes(last.id)) last.state = state;
    },
    onFailed: (peer, e) => { if (app.im === m) notice(describeSendError(e, peer)); },
    onRefused: (from, why, quiet) => { if (app.im === m && !quiet) notice(`Dropped a message${from ? ` claiming to be from ${from}` : ""} that failed its checks (${why}).`); },
    onHistory: (r) => { if (app.im === m) historyLanded(r); },
  });
  m.files.ui = { changed: (k) => { if (app.im === m) refreshFile(m.files, k); }, calls: () => app.phone?.calls?.size || 0 };
  try {
    await m.register();
  } catch (e) {
    console.warn("registering this device for messages", e);
    notice("This browser could not register for messages: " + loginMessage(e, app.user));
  }
  app.im = m;
  m.files.resume().catch((e) => console.warn("files", e.message)); // js/files.js
}

function describeSendError(e, peer) {
  if (e instanceof IMError || e instanceof G.GroupError) return e.message;
  if (G.isGroupPeer(peer)) return `The message was not sent: ${e instanceof LoginError ? loginMessage(e, app.user) : e.message}`;
  if (e instanceof LoginError) {
    if (e.status === 403) return `${peer} is not your contact yet: add ${peer} as a contact (and wait until they accept) to write to them.`;
    if (e.status === 404) return `There is no user called ${peer}.`;
    if (e.status === 0) return "The login server cannot be reached; the message was not sent.";
    return `The message was not sent: ${loginMessage(e, peer)}`;
  }
  return `The message was not sent: ${e.message}`;
}

// ---- wiring ----

const chat = new ChatPane({ log: $("chat-log"), scroll: $("chat-scroll"), input: $("chat-text"), send: $("send"), note: $("chat-note"), empty: $("chat-empty") }, {
  history: async (peer) => {
    const h = app.im ? app.im.hist : app.offline ? new History(app.offline.user) : null;
    if (!h) return [];
    const ms = await h.conversation(peer);
    const g = groupStates().get(G.groupOfPeer(peer));
    return g ? [...ms, ...g.applied.map((o) => sysEntry(g, o))] : ms; // a group's changes are lines in it
  },
  describe: describeSendError,
  showRead: () => readReceipts(),
  callBack: (peer) => startCall(peer),
  fileCard: (m, bubble, text) => fileCard(app.im?.files, m, bubble, text),
  sendText: async (peer, text) => {
    if (app.offline) throw new Error("You are offline; write again once Parley is connected.");
    if (!app.im) throw new Error("not signed in");
    if (peer === app.user) throw new IMError("self", "Write to a contact, not to yourself.");
    if (G.isGroupPeer(peer)) {
      const r = await app.im.groups.send(G.groupOfPeer(peer), text);
      if (r.failed.size && !r.queued) {
        const [u, e] = r.failed.entries().next().value;
        notice(`The message did not reach ${listing([...r.failed.keys()])} (${u}: ${describeSendError(e, u)})`);
      }
      return r;
    }
    typingDone();
    return app.im.send(peer, text);
  },
});

// Send file, and a file dropped on the conversation (js/fileview.js, js/files.js).
wireComposer({
  button: $("send-file"), input: $("file-input"), drop: $("conv"), peer: () => chat.peer,
  send: (peer, file) => {
    if (app.offline || !app.im) { notice("You are offline; send the file once Parley is connected."); return; }
    if (peer === app.user) { notice("Send files to a contact, not to yourself."); return; }
    app.im.files.send(peer, file).catch((e) => notice(describeSendError(e, peer)));
  },
});

// The name typed in the search box, for the buttons next to it.
function typed() {
  const u = app.search.text;
  return validUser(u) && u !== app.user ? u : "";
}

$("auth-form").addEventListener("submit", signInClicked);
$("signup").addEventListener("click", signUp);
$("signout").addEventListener("click", signOut);
$("search").addEventListener("input", onSearchInput);
$("search").addEventListener("keydown", (e) => {
  if (e.key === "Escape") { clearSearch(); return; }
  if (e.key !== "Enter") return;
  e.preventDefault();
  const first = $("contact-list").querySelector("button.open") || $("search-results").querySelector("button.open");
  const u = typed();
  if (u) { clearSearch(); openConversation(u, true); } else first?.click();
});
$("start-chat").addEventListener("click", () => { const u = typed(); if (u) { clearSearch(); openConversation(u, true); } });
$("call").addEventListener("click", () => { const u = typed(); if (!u) return; clearSearch(); startCall(u); });
$("add").addEventListener("click", () => {
  const u = typed();
  if (!u) { notice("Type a user name in the search box to add."); return; }
  clearSearch();
  contactAction("add", u);
});
$("back").addEventListener("click", closeConversation);
$("new-group-open").addEventListener("click", openNewGroup);
$("new-group-form").addEventListener("submit", createGroup);
$("new-group-cancel").addEventListener("click", () => $("new-group").close());
$("new-group-close").addEventListener("click", () => $("new-group").close());
$("add-member-go").addEventListener("click", (ev) => {
  const g = currentGroup(), u = $("add-member").value;
  if (g && u) groupAction(ev.currentTarget, () => app.im.groups.change(g.id, G.OP_ADD, u));
});
$("rename-go").addEventListener("click", (ev) => {
  const g = currentGroup(), name = $("rename-group").value.trim();
  if (g) groupAction(ev.currentTarget, () => app.im.groups.change(g.id, G.OP_RENAME, "", name));
});
$("rename-group").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); $("rename-go").click(); } });
$("call-return").addEventListener("click", () => app.call && openConversation(app.call.peer, true));
$("call-open").addEventListener("click", () => app.call && openConversation(app.call.peer, true));
$("answer").addEventListener("click", answer);
$("decline").addEventListener("click", decline);
$("chat-text").addEventListener("input", typingInput);
$("settings-open").addEventListener("click", openSettings);
$("settings-close").addEventListener("click", () => $("settings").close());
$("notif-on").addEventListener("click", turnOnNotifications);
$("read-receipts").addEventListener("change", (e) => setReadReceipts(e.target.checked));
$("hangup").addEventListener("click", () => app.call?.hangup());
$("mute").addEventListener("click", () => app.call && app.call.setMuted(!app.call.muted));
$("hold").addEventListener("click", () => app.call?.setHeld(true));
$("resume").addEventListener("click", () => app.call?.setHeld(false));
$("stats-toggle").addEventListener("click", toggleStats);
$("my-status").addEventListener("change", async (e) => {
  app.myStatus = e.target.value;
  try { app.api.credential = await credential(); await app.api.setStatus(app.myStatus); } catch (err) { notice(loginMessage(err, app.user)); }
  sendPresence();
});
// Escape closes the open conversation (outside the search box, which it
// clears, and the menus).
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || e.defaultPrevented || !chat.peer || $("app").hidden || $("settings").open || $("new-group").open) return;
  if (e.target instanceof Element && e.target.closest("#search, select")) return;
  closeConversation();
});
// Coming back to the page reads the open conversation; leaving it while a
// call rings raises a notification.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    if (chat.peer) markRead(chat.peer);
  } else if (app.incoming) {
    ringNotification(app.incoming);
  }
});

// Keyboard shortcuts (the settings list them): Alt+Shift+A answers, D
// declines, M mutes or unmutes, H hangs up — wherever the focus is (also in
// the message field); ? (outside a text field) opens the help.
const SHORTCUTS = {
  KeyA: () => app.incoming && (answer(), true),
  KeyD: () => app.incoming && (decline(), true),
  KeyM: () => (app.call?.state === "connected" && (app.call.setMuted(!app.call.muted), true)) ||
    (app.conf?.current && (app.conf.setMuted(!app.conf.current.muted), true)),
  KeyH: () => (app.call && (app.call.hangup(), true)) || (app.conf?.current && (app.conf.leave(), true)),
};
document.addEventListener("keydown", (e) => {
  if ($("app").hidden) return;
  if (e.altKey && e.shiftKey && !e.ctrlKey && !e.metaKey && SHORTCUTS[e.code]) {
    if (SHORTCUTS[e.code]()) e.preventDefault();
    return;
  }
  if (e.key === "?" && !e.altKey && !e.ctrlKey && !e.metaKey && !(e.target instanceof Element && e.target.closest("input, textarea, select"))) {
    e.preventDefault();
    openSettings();
  }
});

// The service worker keeps the page, so that it opens when the server is
// down (and says so). Only where browsers allow one: a secure origin.
if ("serviceWorker" in navigator && window.isSecureContext) {
  navigator.serviceWorker.register("sw.js").catch((e) => console.info("no service worker:", e.message));
  navigator.serviceWorker.addEventListener("message", (ev) => {
    const tag = ev.data?.tag || "";
    const peer = tag.replace(/^(msg|call)-/, "");
    if (ev.data?.type === "notification" && peer && peer !== tag) openConversation(peer);
  });
}

// For scripts and tests that inspect the page (never needed to use it).
window.parley = { app, chat, onPresence, get files() { return app.im?.files; }, groups: groupStates, get call() { return app.call; }, get ringtone() { return app.ringtone; }, get conf() { return app.conf; } };
window.parleyTest = { ...window.parleyTest, ...confTestHooks(() => app.conf) };

resume();

// The service worker: it keeps the page's shell (the page, its style, its
// modules, its icons) so that the page opens, and says it is offline, when
// the server cannot be reached. Network first: the files change with the
// binary, so a fresh copy is fetched (and kept) whenever the server
// answers; the kept one is used only when it does not, or takes longer than
// NETWORK_WAIT for a page load. The API and the websocket are never kept
// or answered from here. See docs/web.md ("An app").

const CACHE = "parley-shell-v1";
const NETWORK_WAIT = 4000; // ms a page load waits for the server before the kept copy

// SHELL is every file the page needs (a test of package web checks that it
// lists every file under web/static/ but this one).
const SHELL = [
  "./",
  "favicon.svg",
  "icons/apple-touch-icon.png",
  "icons/icon-192.png",
  "icons/icon-512.png",
  "icons/maskable-512.png",
  "icons/ringing.svg",
  "index.html",
  "js/app.js",
  "js/chat.js",
  "js/conf.js",
  "js/devices.js",
  "js/files.js",
  "js/fileview.js",
  "js/filewire.js",
  "js/group.js",
  "js/groupchat.js",
  "js/histsync.js",
  "js/im.js",
  "js/keys.js",
  "js/login.js",
  "js/meter.js",
  "js/notify.js",
  "js/phone.js",
  "js/signal.js",
  "js/supernode.js",
  "js/util.js",
  "js/wire.gen.js",
  "manifest.webmanifest",
  "style.css",
];

self.addEventListener("install", (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL.map((p) => new Request(p, { cache: "no-cache" })))).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

// kept is the cache key of a request: the page itself for every navigation
// (and for "/" and "/index.html"), else the URL without its query.
function kept(req) {
  const url = new URL(req.url);
  if (req.mode === "navigate" || url.pathname === "/" || url.pathname === "/index.html") return new URL("./", self.registration.scope).href;
  return url.origin + url.pathname;
}

self.addEventListener("fetch", (ev) => {
  const req = ev.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/v1/")) return;
  const key = kept(req);
  ev.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const net = fetch(req).then((resp) => {
      if (resp.ok && resp.type === "basic") cache.put(key, resp.clone()).catch(() => {});
      return resp;
    });
    // A page load does not wait forever for a server that does not answer.
    const slow = req.mode === "navigate"
      ? new Promise((resolve) => setTimeout(() => cache.match(key).then((r) => r && resolve(r)), NETWORK_WAIT))
      : new Promise(() => {});
    try {
      return await Promise.race([net, slow]);
    } catch (e) {
      const hit = await cache.match(key);
      if (hit) return hit;
      throw e;
    }
  })());
});

// A notification clicked: bring the page to the front (it opens the
// conversation the notification is about).
self.addEventListener("notificationclick", (ev) => {
  ev.notification.close();
  ev.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((cs) => {
    const c = cs[0];
    if (c) {
      c.postMessage({ type: "notification", tag: ev.notification.tag, data: ev.notification.data });
      return c.focus();
    }
    return self.clients.openWindow("./");
  }));
});

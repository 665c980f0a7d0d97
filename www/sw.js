// @ts-check
// Hush's service worker: keeps the app shell (the page, its scripts and styles, the wasm, the
// icons) in a versioned cache so the app opens while offline or while the mailbox is down.
//
// It answers only same-origin GETs of the shell files listed in pkg/shell-version.js (written
// by `cargo xtask build-web`, see docs/HOSTING.md), and page loads of the site's own address.
// Everything else goes to the network untouched: the mailbox API (`/v1/…`, on this origin or
// another), any other origin, any non-GET, requests that ask for no cache (the app's clock
// check). It never stores a request's URL: an invite in the fragment is never kept here.
//
// Updates are announced, not applied behind the person's back: a new worker installs its
// whole shell, then waits until the page asks it to take over (www/pwa.js, after a click on
// "Reload"). Its activation deletes the caches of older versions.

/** This worker's global scope (`self` is typed as any worker's). */
const worker = /** @type {ServiceWorkerGlobalScope & { hushShell: { version: string, files: Record<string, string> } }} */ (
  /** @type {unknown} */ (self)
);

importScripts("pkg/shell-version.js");

/** { version, files: { "relative URL": "sha256-…" } }, from pkg/shell-version.js. */
const SHELL = worker.hushShell;
const CACHE_PREFIX = "hush-shell-";
const CACHE = CACHE_PREFIX + SHELL.version;
/** The site's folder (the worker's scope), e.g. "https://example.org/hush/". */
const SCOPE = worker.registration.scope;
/** Absolute URLs of the shell files, page included. */
const SHELL_URLS = new Set(Object.keys(SHELL.files).map((path) => new URL(path, SCOPE).href));
/** The page: the site's address, under which index.html is cached. */
const PAGE_URL = new URL("./", SCOPE).href;
const INDEX_URL = new URL("index.html", SCOPE).href;

worker.addEventListener("install", (event) => {
  // Each file is fetched past the HTTP cache and checked against its SHA-256 (fetch's
  // integrity): the cache holds exactly the version its name says, or the install fails and
  // the browser tries again at its next update check.
  const requests = Object.entries(SHELL.files).map(
    ([path, integrity]) => new Request(new URL(path, SCOPE), { cache: "no-cache", integrity, credentials: "omit" }),
  );
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(requests)));
});

worker.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE) await caches.delete(name);
      }
      // The first worker also serves the page that registered it (its later lazy loads).
      await worker.clients.claim();
    })(),
  );
});

worker.addEventListener("message", (event) => {
  if (event.data?.type === "hush-apply-update") worker.skipWaiting();
});

// A notification the page showed through this worker (Chrome on Android allows no other): a
// click brings a Hush window to the front and asks it to open that conversation (its local id,
// never sent anywhere), or opens Hush.
worker.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = event.notification.data?.conversation;
  event.waitUntil(
    (async () => {
      const windows = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
      const mine = windows.find((client) => new URL(client.url).origin === worker.location.origin);
      if (!mine) return worker.clients.openWindow("./");
      await mine.focus();
      if (typeof id === "string") mine.postMessage({ kind: "open-conversation", id });
    })(),
  );
});

worker.addEventListener("fetch", (event) => {
  const key = shellKey(event.request);
  if (key) event.respondWith(fromShell(key, event.request));
});

/**
 * The cache key (an absolute URL without fragment) that answers `request`, or null when the
 * request is not the shell's and must go to the network as if there were no worker.
 * @param {Request} request
 * @returns {string | null}
 */
function shellKey(request) {
  if (request.method !== "GET") return null;
  const url = new URL(request.url);
  if (url.origin !== worker.location.origin || url.search !== "") return null;
  url.hash = "";
  if (request.mode === "navigate") {
    // The site's own address, or its index.html; any other path (an invite whose `#` became
    // `%23`, a mailbox's URL) is the host's to answer.
    return url.href === PAGE_URL || url.href === INDEX_URL ? PAGE_URL : null;
  }
  // A request that asks to bypass caches (the app's check of the server's clock) gets the
  // network; the page itself is only served as a page.
  if (request.cache === "no-store" || request.cache === "reload") return null;
  return url.href !== PAGE_URL && SHELL_URLS.has(url.href) ? url.href : null;
}

/**
 * The shell file from this version's cache; the network if the cache lost it.
 * @param {string} key
 * @param {Request} request
 */
async function fromShell(key, request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(key);
  return cached ?? fetch(request);
}

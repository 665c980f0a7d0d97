// @ts-check
// Hush as an installed web app: the service worker (./sw.js) that keeps the app shell for
// offline use, the banner that announces a new version, and persistent storage for the vault.
//
// A new version never replaces the running one behind the person's back: its worker installs
// and waits; the banner says it is ready, and only a click on "Reload" lets it take over and
// reloads the page (which locks Hush: the passphrase is asked again).

import { h } from "./dom.js";

/** The message sw.js answers by taking over from the worker in use. */
const APPLY_UPDATE = "hush-apply-update";
/**
 * How often a page left open looks for a new version when it comes back into view (browsers
 * look by themselves only when a page loads, and about once a day).
 */
const UPDATE_CHECK_MS = 60 * 60 * 1000;

/**
 * Registers ./sw.js for the site's folder once the page has loaded, and watches for new
 * versions. Resolves when registration was attempted; never rejects: without a worker (an
 * insecure origin, a browser without them, a host serving no shell list) the app works as a
 * plain page, only not offline.
 */
export async function startServiceWorker() {
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return;
  if (document.readyState !== "complete") await new Promise((ok) => window.addEventListener("load", ok, { once: true }));
  /** Whether a worker served this page: a later change of worker is then an update. */
  const hadController = Boolean(navigator.serviceWorker.controller);
  let reloading = false;
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (reloading) {
      location.reload();
    } else if (hadController) {
      // Another tab applied an update: this page's code is now older than the worker's.
      showUpdateBanner("Hush was updated in another tab.", () => location.reload());
    }
  });
  let registration;
  try {
    // "none": the update check fetches sw.js and pkg/shell-version.js past the HTTP cache.
    registration = await navigator.serviceWorker.register("sw.js", { scope: "./", updateViaCache: "none" });
  } catch (err) {
    console.warn("Hush works online only here: its service worker did not register.", err?.message ?? err);
    return;
  }
  const apply = () => {
    const waiting = registration.waiting;
    if (!waiting) return location.reload();
    reloading = true;
    waiting.postMessage({ type: APPLY_UPDATE });
  };
  const offerIfWaiting = () => {
    // With no worker in control yet, the first one activates by itself: nothing to announce.
    if (registration.waiting && navigator.serviceWorker.controller) showUpdateBanner("A new version of Hush is ready.", apply);
  };
  const watch = (installing) =>
    installing?.addEventListener("statechange", () => {
      if (installing.state === "installed") offerIfWaiting();
    });
  registration.addEventListener("updatefound", () => watch(registration.installing));
  watch(registration.installing); // An update found before this listener was added.
  offerIfWaiting();
  let checked = Date.now();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible" || Date.now() - checked < UPDATE_CHECK_MS) return;
    checked = Date.now();
    registration.update().catch(() => {}); // Offline or the host down: the next check will do.
  });
}

/** Shows (once) a calm banner under the top bar: `text` and a "Reload" button. */
function showUpdateBanner(text, onReload) {
  let banner = document.getElementById("update-banner");
  if (!banner) {
    banner = h("div", { id: "update-banner", class: "update-banner", role: "status" });
    document.querySelector(".topbar").after(banner);
  }
  const button = h("button", { type: "button", class: "primary", text: "Reload", onclick: () => {
    button.disabled = true;
    onReload();
  } });
  banner.replaceChildren(h("p", { text: `${text} Reloading locks Hush; you unlock it again with your passphrase.` }), button);
}

/**
 * Asks the browser to keep this site's storage (the vault's keys and history) when space runs
 * short, instead of evicting it with other sites' data. Resolves to whether it is granted now;
 * false where the browser has no such request. Never rejects.
 */
export async function askPersistentStorage() {
  try {
    return (await navigator.storage?.persist?.()) ?? false;
  } catch {
    return false;
  }
}

/** Whether the browser granted persistent storage to this site (false if it cannot say). */
async function persistentStorageGranted() {
  try {
    return (await navigator.storage?.persisted?.()) ?? false;
  } catch {
    return false;
  }
}

/**
 * The Settings section "Storage on this device": whether the browser granted persistent
 * storage, what it means when not, and a button to ask again. Fills in once the browser
 * answers.
 */
export function persistentStorageSection() {
  const state = h("p", { class: "state", id: "storage-state", role: "status", "aria-live": "polite" });
  const explain = h("p", { class: "fine", hidden: true });
  const ask = h("button", { type: "button", text: "Ask to keep storage", hidden: true });
  /** How many times the button asked in this page: "again" only from the second no on. */
  let asks = 0;
  const render = (granted, asked = false) => {
    state.textContent = granted
      ? "Persistent storage: granted. This browser keeps Hush's data until you delete it."
      : "Persistent storage: not granted.";
    state.className = granted ? "state" : "state warn";
    explain.hidden = granted;
    explain.textContent = asked
      ? `The browser said no${asks > 1 ? " again" : ""}. Browsers often grant it to sites you use often, bookmark or install, or that may show notifications; try again later. Until then the browser may delete Hush's keys and history when the device runs short of space, or (Safari) after 7 days without a visit.`
      : "The browser may delete Hush's keys and history when the device runs short of space, or (Safari) after 7 days without a visit. Then your conversations are gone for good.";
    ask.hidden = granted;
  };
  ask.addEventListener("click", async () => {
    ask.disabled = true;
    asks += 1;
    const granted = await askPersistentStorage();
    ask.disabled = false;
    render(granted, true);
  });
  persistentStorageGranted().then((granted) => render(granted));
  return h("div", { class: "storage-persist" }, state, explain, h("div", { class: "actions" }, ask));
}

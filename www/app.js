// @ts-check
// Hush web app: the entry. It starts the sync engine (./engine/sync.js: the client, polls,
// flushes, subscriptions, other tabs; no DOM) and wires its events to the screens
// (./screens/*.js, one module per screen), then shows the first screen. The page loads only
// what the locked screens need; the unlocked app's screens (./screens/unlocked.js) come with
// the first unlock.
//
// The client (./pkg/hush.js) owns every secret and every stored byte; the engine decides when
// to call it, the screens what to show.

import init, { clientVersion } from "./pkg/hush.js";
import { startServiceWorker } from "./pwa.js";
import { startNavigation } from "./navigation.js";
import { SyncEngine } from "./engine/sync.js";
import { announce, els, engine, previews, screens, showCue, showMessageScreen, ui, useEngine, visible } from "./screens/shell.js";
import { showHome } from "./screens/home.js";
import { showSetup } from "./screens/setup.js";
import { showUnlock } from "./screens/unlock.js";
import { autoLock, lock } from "./screens/session.js";
import { updateNetStatus } from "./screens/net-status.js";
import { storageMessage } from "./screens/texts.js";

useEngine(new SyncEngine({ visible, online: () => navigator.onLine, previews }));

// What the engine reports, shown. Events about conversations come only while unlocked, when
// the unlocked app's screens are loaded (`screens`, set by the unlock before the engine starts).
engine.on("conversations", ({ gone }) => {
  if (!screens) return;
  screens.renderList();
  if (gone) updateNetStatus();
  screens.showConnectedWhenDelivered();
  if (ui.chat) screens.renderNotices(ui.chat);
});
engine.on("net-status", () => updateNetStatus());
engine.on("messages", ({ id }) => {
  if (ui.chat && (id === null || ui.chat.id === id)) screens?.refreshChat();
});
engine.on("arrivals", ({ id, messages }) => screens?.notifyArrivals(id, messages));
// An invite was joined: in front of it, the person sees the safety code to compare; elsewhere,
// a cue says who joined and leads there (the list shows them joined already).
engine.on("joined", ({ id, shown }) => {
  const s = screens;
  if (!s) return;
  if (shown) return s.showSafety(id, { justJoined: true });
  const c = engine.byId(id);
  if (!c) return;
  showCue(`${c.name} joined your invite. Compare your safety code with them.`, [
    { label: "Compare safety code", run: () => engine.byId(id) && s.showSafety(id, { justJoined: true }) },
  ], id);
});
engine.on("conflicts", () => {
  const shown = ui.screen.id && engine.byId(ui.screen.id);
  if (shown && shown.inviteTaken) screens?.showInviteTaken(shown.id);
});
engine.on("other-tabs", ({ ids, chat, deleted }) => {
  const s = screens;
  if (!s) return;
  // Said, which also takes the text of a deleted message out of the announcer (the arrivals).
  if (s.removeFromChat(deleted.filter((d) => d.id === ui.chat?.id).map((d) => d.seq))) announce("A message was deleted on this device in another tab.");
  const shown = ui.screen.id;
  if (shown && ids.has(shown)) {
    const c = engine.byId(shown);
    if (!c) return showHome(); // Deleted in another tab.
    if (ui.screen.name === "invite" && c.joined) return s.showSafety(shown, { justJoined: true });
    if (ui.chat?.id === shown) ui.chat.rename(c.name);
  }
  if (chat && ui.chat) s.refreshChat();
});
// Locking is for the whole profile: another tab locked, so this one locks too.
engine.on("locked-elsewhere", () => {
  if (engine.isUnlocked) lock(null, { elsewhere: true });
});
engine.on("active-elsewhere", () => autoLock.touch());

async function boot() {
  // An invite link opened directly: keep it in memory and take it out of the address bar and
  // the history right away, so the invite secret does not linger there.
  takeInviteFromUrl();
  startServiceWorker();
  startNavigation(showFromHistory, closeLayer);
  try {
    await init();
    await engine.open();
    els.status.textContent = `Client ready (v${clientVersion()}). Messages are encrypted on this device.`;
    document.body.dataset.state = "ready";
  } catch (err) {
    document.body.dataset.state = "error";
    els.status.textContent = "This browser could not start the Hush client.";
    showMessageScreen(
      "Hush can't start here",
      "This browser could not start the Hush client. It needs WebAssembly and IndexedDB (private windows in some browsers turn IndexedDB off).",
    );
    console.error(err);
    return;
  }
  // The top bar's and the list's buttons show only while unlocked.
  els.lock.addEventListener("click", () => lock());
  els.settings.addEventListener("click", () => screens?.showSettings());
  els.newConv.addEventListener("click", () => screens?.showNewConversation());
  els.join.addEventListener("click", () => screens?.showJoin());
  document.addEventListener("keydown", (event) => {
    // Ctrl+F (Cmd+F) in a chat searches the conversation, not the page.
    if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "f" && ui.chat?.search) {
      event.preventDefault();
      ui.chat.search.open();
    }
  });
  window.addEventListener("online", () => engine.networkChanged());
  window.addEventListener("offline", () => engine.networkChanged());
  document.addEventListener("visibilitychange", () => engine.visibilityChanged());
  // Leaving the page (a reload, a closed tab): the open chat's draft is sealed.
  window.addEventListener("pagehide", () => {
    if (engine.isUnlocked) screens?.saveDraft();
  });
  // An invite link pasted into the address bar of an open Hush tab only changes the fragment.
  // Taken from the event's URL: the history may have gone back over that entry already (the
  // navigation does, and a busy page may see it land before this event), leaving the address
  // bar without the fragment.
  window.addEventListener("hashchange", (event) => {
    if (!takeInviteFromUrl(event.newURL)) return;
    if (engine.isUnlocked && screens) {
      const link = ui.incomingInvite ?? "";
      ui.incomingInvite = null;
      screens.showJoin(link);
    } else if (ui.screen.name === "unlock") {
      showUnlock();
    } else if (ui.screen.name === "setup") {
      showSetup();
    }
  });
  updateNetStatus();

  let hasVault = false;
  try {
    hasVault = await engine.api.hasVault();
  } catch (err) {
    showMessageScreen("Storage is unavailable", storageMessage(err));
    return;
  }
  if (hasVault) showUnlock();
  else showSetup();
}

/**
 * `#` written as `%23` (or `%2523`) by a chat app or mail client, followed by invite
 * characters: the invite arrived in the path or query instead of the fragment (the host
 * serves the app for such paths, docs/HOSTING.md).
 */
const ENCODED_HASH = /%(?:25)*23(?=[A-Za-z0-9_-])/i;

/**
 * Moves an invite in `href` (the address bar's URL by default) into memory, and out of the
 * address bar and history while that entry is still the one in use.
 * @param {string} [href]
 */
function takeInviteFromUrl(href = location.href) {
  const url = new URL(href);
  const inUse = url.href === location.href;
  if (url.hash.length > 1) {
    ui.incomingInvite = url.href;
    if (inUse) history.replaceState(null, "", url.pathname + url.search);
    return true;
  }
  const where = url.pathname + url.search;
  const encoded = ENCODED_HASH.exec(where);
  if (!encoded) return false;
  ui.incomingInvite = url.href;
  // Back to the site's own address: what came before the `%23`.
  if (inUse) history.replaceState(null, "", where.slice(0, encoded.index).replace(/\?$/, "") || "/");
  return true;
}

/** Closes the dialog or the message menu open, if any (Back closes only that); whether one was. */
function closeLayer() {
  if (els.dialog.open) {
    els.dialog.close();
    return true;
  }
  return screens?.closeMenu(true) ?? false;
}

/**
 * Shows the screen of a history entry (Back, Forward): the list if its conversation is gone.
 * @param {{ name: string, id?: string | null }} entry
 */
function showFromHistory({ name, id }) {
  if (els.dialog.open) els.dialog.close();
  const s = screens; // Loaded: Back and Forward move within an unlocked session only.
  if (!s) return showHome();
  /** @type {Record<string, (id: string) => void>} */
  const shows = {
    chat: s.openConversation,
    invite: s.openConversation,
    "invite-taken": s.openConversation,
    safety: (id) => s.showSafety(id),
    new: () => s.showNewConversation(),
    join: () => s.showJoin(),
    settings: () => s.showSettings(),
  };
  if (shows[name] && (!id || engine.byId(id))) shows[name](/** @type {string} */ (id));
  else showHome();
}

boot();

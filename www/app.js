// @ts-check
// Hush web app: the entry. It starts the sync engine (./engine/sync.js: the client, polls,
// flushes, subscriptions, other tabs; no DOM) and wires its events to the screens
// (./screens/*.js, one module per screen), then shows the first screen.
//
// The client (./pkg/hush.js) owns every secret and every stored byte; the engine decides when
// to call it, the screens what to show.

import init, { clientVersion } from "./pkg/hush.js";
import { startServiceWorker } from "./pwa.js";
import { startNavigation } from "./navigation.js";
import { SyncEngine } from "./engine/sync.js";
import { announce, els, engine, previews, showCue, showMessageScreen, ui, useEngine, visible } from "./screens/shell.js";
import { showHome } from "./screens/home.js";
import { openConversation, renderList } from "./screens/list.js";
import { showSetup } from "./screens/setup.js";
import { showUnlock } from "./screens/unlock.js";
import { autoLock, lock } from "./screens/session.js";
import { showNewConversation } from "./screens/new.js";
import { showInviteTaken } from "./screens/invite.js";
import { showJoin } from "./screens/join.js";
import { showSafety } from "./screens/safety.js";
import { showConnectedWhenDelivered } from "./screens/connecting.js";
import { refreshChat, removeFromChat } from "./screens/chat.js";
import { renderNotices } from "./screens/notices.js";
import { showSettings } from "./screens/settings.js";
import { updateNetStatus } from "./screens/net-status.js";
import { storageMessage } from "./screens/texts.js";
import { notifyArrivals, openFromServiceWorker } from "./notify.js";

useEngine(new SyncEngine({ visible, online: () => navigator.onLine, previews }));

// What the engine reports, shown.
engine.on("conversations", ({ gone }) => {
  renderList();
  if (gone) updateNetStatus();
  showConnectedWhenDelivered();
  if (ui.chat) renderNotices(ui.chat);
});
engine.on("net-status", () => updateNetStatus());
engine.on("messages", ({ id }) => {
  if (ui.chat && (id === null || ui.chat.id === id)) refreshChat();
});
engine.on("arrivals", ({ id, messages }) => notifyArrivals(id, messages));
// An invite was joined: in front of it, the person sees the safety code to compare; elsewhere,
// a cue says who joined and leads there (the list shows them joined already).
engine.on("joined", ({ id, shown }) => {
  if (shown) return showSafety(id, { justJoined: true });
  const c = engine.byId(id);
  if (!c) return;
  showCue(`${c.name} joined your invite. Compare your safety code with them.`, [
    { label: "Compare safety code", run: () => engine.byId(id) && showSafety(id, { justJoined: true }) },
  ], id);
});
engine.on("conflicts", () => {
  const shown = ui.screen.id && engine.byId(ui.screen.id);
  if (shown && shown.inviteTaken) showInviteTaken(shown.id);
});
engine.on("other-tabs", ({ ids, chat, deleted }) => {
  // Said, which also takes the text of a deleted message out of the announcer (the arrivals).
  if (removeFromChat(deleted.filter((d) => d.id === ui.chat?.id).map((d) => d.seq))) announce("A message was deleted on this device in another tab.");
  const shown = ui.screen.id;
  if (shown && ids.has(shown)) {
    const c = engine.byId(shown);
    if (!c) return showHome(); // Deleted in another tab.
    if (ui.screen.name === "invite" && c.joined) return showSafety(shown, { justJoined: true });
    if (ui.chat?.id === shown) ui.chat.rename(c.name);
  }
  if (chat && ui.chat) refreshChat();
});
// Locking is for the whole profile: another tab locked, so this one locks too.
engine.on("locked-elsewhere", () => {
  if (engine.isUnlocked) lock(null, { elsewhere: true });
});
engine.on("active-elsewhere", () => autoLock.touch());
openFromServiceWorker();

async function boot() {
  // An invite link opened directly: keep it in memory and take it out of the address bar and
  // the history right away, so the invite secret does not linger there.
  takeInviteFromUrl();
  startServiceWorker();
  startNavigation(showFromHistory);
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
  els.lock.addEventListener("click", () => lock());
  els.settings.addEventListener("click", () => showSettings());
  els.newConv.addEventListener("click", () => showNewConversation());
  els.join.addEventListener("click", () => showJoin());
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
  // An invite link pasted into the address bar of an open Hush tab only changes the fragment.
  window.addEventListener("hashchange", () => {
    if (!takeInviteFromUrl()) return;
    if (engine.isUnlocked) {
      const link = ui.incomingInvite ?? "";
      ui.incomingInvite = null;
      showJoin(link);
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

/** Moves an invite in the URL into memory and out of the address bar and history. */
function takeInviteFromUrl() {
  if (location.hash.length > 1) {
    ui.incomingInvite = location.href;
    history.replaceState(null, "", location.pathname + location.search);
    return true;
  }
  const where = location.pathname + location.search;
  const encoded = ENCODED_HASH.exec(where);
  if (!encoded) return false;
  ui.incomingInvite = location.href;
  // Back to the site's own address: what came before the `%23`.
  history.replaceState(null, "", where.slice(0, encoded.index).replace(/\?$/, "") || "/");
  return true;
}

/**
 * Shows the screen of a history entry (Back, Forward): the list if its conversation is gone.
 * @param {{ name: string, id?: string | null }} entry
 */
function showFromHistory({ name, id }) {
  if (els.dialog.open) els.dialog.close();
  /** @type {Record<string, (id: string) => void>} */
  const shows = {
    chat: openConversation,
    invite: openConversation,
    "invite-taken": openConversation,
    safety: (id) => showSafety(id),
    new: () => showNewConversation(),
    join: () => showJoin(),
    settings: () => showSettings(),
  };
  if (shows[name] && (!id || engine.byId(id))) shows[name](/** @type {string} */ (id));
  else showHome();
}

boot();

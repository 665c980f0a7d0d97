// @ts-check
// Unlocked and locked: what follows an unlock (the engine starts, the screen to show) and a
// lock (by hand or by the auto-lock), which leaves no name or message in the page.

import { choice } from "../settings.js";
import { chatInUse, lastChat } from "../navigation.js";
import { AutoLock } from "../autolock.js";
import { announce, clearCue, els, engine, loadScreens, screens, setUnlockedChrome, ui } from "./shell.js";
import { showHome } from "./home.js";
import { showUnlock } from "./unlock.js";

/** After the vault opened (unlock or set-up): the unlocked app's screens, the engine, a screen. */
export async function afterUnlock() {
  // The chat open before a reload or a browser restart (its history entry says which), or
  // else the one open when Hush was last used in this browser (a tab closed and opened again).
  const inUse = chatInUse() ?? lastChat();
  let loaded;
  try {
    loaded = await loadScreens(); // Started with the key's derivation: usually here already.
  } catch (err) {
    console.warn("Could not load the screens", err);
    engine.api.lock(); // This tab only: the engine did not start.
    throw new Error("Hush could not load its screens (is the connection down?). Try again.");
  }
  const { showChat, showJoin } = loaded;
  setUnlockedChrome(true);
  // A setting of this browser, not of the vault: the client forgets it when locked.
  await engine.start(choice("deleteAfterRead"));
  autoLock.start();
  const reopen = ui.reopen ?? inUse;
  ui.reopen = null;
  // A screen opened while the list was read (an invite link pasted meanwhile) stays.
  if (ui.screen.name !== "unlock" && ui.screen.name !== "setup") return;
  if (ui.incomingInvite) {
    const link = ui.incomingInvite;
    ui.incomingInvite = null;
    showJoin(link);
  } else if (reopen && engine.byId(reopen)?.joined) {
    // Locked with a chat open (by hand, after the idle time, or by a reload): back to it.
    showChat(reopen);
  } else {
    showHome();
  }
}

/**
 * Locks this tab and every other tab of this profile. `idleMinutes`: locked by the auto-lock
 * after that long without activity in any tab; `elsewhere`: another tab locked (by hand or by
 * its auto-lock).
 * @param {number | null} [idleMinutes]
 * @param {{ elsewhere?: boolean }} [options]
 */
export function lock(idleMinutes = null, { elsewhere = false } = {}) {
  // The open chat is reopened after unlocking in this tab (kept in memory only).
  ui.reopen = ui.screen.name === "chat" ? ui.screen.id : null;
  autoLock.stop();
  screens?.closeMenu(false);
  // The open chat's draft is sealed before the key goes: the engine locks the client once it
  // is saved, while the page forgets the text and everything else right now.
  const draft = engine.isUnlocked ? screens?.saveDraft() : undefined;
  engine.lock({ elsewhere, after: draft });
  if (els.dialog.open) els.dialog.close();
  els.dialog.replaceChildren(); // A closed dialog keeps its content: a name, a message.
  clearCue();
  document.title = "Hush";
  els.list.replaceChildren();
  showUnlock();
  if (typeof idleMinutes === "number") {
    announce(`Hush locked itself after ${idleMinutes === 60 ? "1 hour" : `${idleMinutes} minutes`} without activity.`);
  } else if (elsewhere) {
    announce("Hush was locked in another tab.");
  }
}

/**
 * Locks after the idle time chosen in Settings without activity in any tab of this profile:
 * activity here is told to the other tabs, theirs counts here (the engine's other-tab channel).
 */
export const autoLock = new AutoLock(
  (/** @type {number} */ minutes) => {
    if (engine.isUnlocked) lock(minutes);
  },
  () => engine.active(),
);

// @ts-check
// Notifications
//
// A system notification for messages a poll stored while the page is hidden, or while
// another conversation's chat is open (a page in view showing the conversation list, or that
// conversation's chat, already shows them: its preview, badge and the title's count): "Hush" / "New message" unless the person chose, in Settings,
// to show names and text. The browser's permission is asked only when the person asks for
// notifications (the offer under the conversation list, or Settings), never on load.

import { shownText } from "./dom.js";
import { choice, setChoice } from "./settings.js";
import { shownInSomeTab } from "./engine/presence.js";
import { engine, ui, visible } from "./screens/shell.js";
import { openConversation } from "./screens/list.js";

/** @typedef {import("./engine/types.js").HistoryEntry} HistoryEntry */

export const notificationsExist = () => typeof Notification === "function";
export const mayNotify = () => notificationsExist() && Notification.permission === "granted" && choice("notify");

export const NOTIFY_BLOCKED = "Notifications are blocked for this site. You can allow them in the browser's site settings, then turn them on in Hush's Settings.";

/**
 * Notifies of `messages` (just stored in conversation `id`) unless they are in plain view.
 * @param {string} id
 * @param {HistoryEntry[]} messages
 */
export async function notifyArrivals(id, messages) {
  if (!messages.length || !mayNotify()) return;
  if (inPlainView(id)) return;
  // Shown in front in another tab of this profile (presence.js).
  if (await shownInSomeTab(id)) return;
  if (!mayNotify()) return;
  const c = engine.byId(id);
  const detailed = choice("notifyText") && c;
  const count = messages.length;
  const title = detailed ? c.name : "Hush";
  const body = detailed
    ? messages.map((m) => shownText(m.text)).join("\n").slice(0, 500)
    : count === 1
      ? "New message"
      : `${count} new messages`;
  try {
    // The tag replaces this conversation's earlier notification instead of piling up.
    const notification = new Notification(title, { body, tag: id });
    notification.onclick = () => {
      notification.close();
      window.focus();
      if (engine.isUnlocked && engine.byId(id)) openConversation(id);
    };
  } catch (err) {
    // Chrome on Android shows notifications only from a service worker ("Illegal
    // constructor"): through ours (sw.js opens the conversation on a click). Without one, the
    // title's count still tells.
    showFromServiceWorker(title, body, id).catch(() => console.warn("Could not show a notification", /** @type {Error} */ (err).message));
  }
}

/**
 * Whether conversation `id`'s new messages are in view: the page is visible and shows their
 * chat, or the conversation list's own screen (other screens, such as Settings, notify: the
 * person is busy with something else there).
 * @param {string} id
 */
function inPlainView(id) {
  if (!visible()) return false;
  return ui.screen.name === "home" || (ui.screen.name === "chat" && ui.screen.id === id);
}

/**
 * Shows a notification through this page's service worker; rejects when there is none.
 * @param {string} title
 * @param {string} body
 * @param {string} id
 */
async function showFromServiceWorker(title, body, id) {
  const registration = await navigator.serviceWorker?.getRegistration();
  if (!registration) throw new Error("no service worker");
  await registration.showNotification(title, { body, tag: id, data: { conversation: id } });
}

/** A click on a notification shown by the service worker opens its conversation (sw.js). */
export function openFromServiceWorker() {
  navigator.serviceWorker?.addEventListener("message", (event) => {
    const { kind, id } = event.data ?? {};
    if (kind === "open-conversation" && typeof id === "string" && engine.isUnlocked && engine.byId(id)) openConversation(id);
  });
}

/**
 * Asks the browser for permission to notify; returns "granted", "denied" or "default".
 * @returns {Promise<NotificationPermission>}
 */
export async function askToNotify() {
  if (!notificationsExist()) return "denied";
  let answer = Notification.permission;
  if (answer === "default") {
    try {
      answer = await Notification.requestPermission();
    } catch {
      answer = Notification.permission;
    }
  }
  setChoice("notifyOffered", true);
  if (answer === "granted") setChoice("notify", true);
  return answer;
}

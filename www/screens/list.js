// @ts-check
// The conversation list beside every screen (all a phone shows of home): each conversation's
// name, state and last message, its unread count, and the offer to notify.

import { h, replace, formatTime } from "../dom.js";
import { choice, setChoice } from "../settings.js";
import { announce, els, engine, markCurrentInList } from "./shell.js";
import { previews } from "../previews.js";
import { showInviteTaken, showInvite } from "./invite.js";
import { showChat } from "./chat.js";
import { askToNotify, notificationsExist, NOTIFY_BLOCKED } from "../notify.js";

/** @typedef {import("../engine/types.js").ConversationSummary} ConversationSummary */

/**
 * Opens conversation `id` on the screen its state calls for.
 * @param {string} id
 */
export function openConversation(id) {
  const c = engine.byId(id);
  if (!c) return;
  if (c.inviteTaken) showInviteTaken(id);
  else if (c.joined) showChat(id);
  else showInvite(id);
}

/**
 * The line under a conversation's name: its state, or what is wrong with it.
 * @param {ConversationSummary} c
 */
function describe(c) {
  if (c.inviteTaken) return "Invite already used by someone else";
  const wrong = engine.wrongMailbox.has(c.mailbox) ? "Wrong mailbox address" : "";
  if (!c.joined) {
    return c.expiresAt && c.expiresAt < Date.now() ? "Invite expired" : wrong || "Waiting for them to join";
  }
  if (c.ended === "peerRestored") return "Ended: their device was restored from an older copy";
  if (c.ended === "diverged") return "Ended: a device went back to an older copy";
  if (c.ended) return "Ended: made with an older version of Hush";
  if (wrong) return wrong;
  if (engine.storageFull.has(c.id)) return "New messages can't be saved: storage full";
  if (c.interference) return "Someone is interfering with this conversation";
  if (c.unreadable) return c.unreadable.lostReads ? "Some of their messages are missing: asking their device" : "Their messages can't be read on this device";
  if (c.rollback) return "This device was restored from an older copy";
  if (c.connecting) return engine.unreachable.has(c.mailbox) ? "Connecting… (mailbox unreachable, retrying)" : "Connecting…";
  if (engine.unreachable.has(c.mailbox)) return "Mailbox unreachable, retrying";
  if (previews.has(c.id)) return ""; // The last message says it.
  return c.lastActivity ? `Last activity ${formatTime(c.lastActivity)}` : "";
}

export function renderList() {
  const items = engine.conversations.map((c) => {
    const badge = c.unread > 0 ? h("span", { class: "badge" }, String(c.unread), h("span", { class: "sr-only", text: " unread" })) : null;
    const button = h(
      "button",
      { type: "button", class: "conv", "data-id": c.id, onclick: () => openConversation(c.id) },
      h("span", { class: "avatar", "aria-hidden": "true", text: initial(c.name) }),
      h("span", { class: "conv-main" }, h("span", { class: "conv-name", dir: "auto", text: c.name }), h("span", { class: "conv-sub", text: describe(c) }), previews.render(c.id)),
      badge,
    );
    return h("li", { class: c.joined ? "" : "waiting" }, button);
  });
  // Redrawing must not take the keyboard focus away from the list.
  const active = document.activeElement;
  const focused = active instanceof HTMLElement && els.list.contains(active) ? active.dataset.id : null;
  replace(els.list, items);
  if (focused) /** @type {HTMLElement | null} */ (els.list.querySelector(`button.conv[data-id="${CSS.escape(focused)}"]`))?.focus();
  els.listEmpty.hidden = engine.conversations.length > 0;
  markCurrentInList();
  const unread = engine.conversations.reduce((n, c) => n + c.unread, 0);
  document.title = unread > 0 ? `(${unread}) Hush` : "Hush";
  renderNotifyOffer();
}

/** Redraws the line under each name (a mailbox's health changed). */
export function renderListSubtitles() {
  for (const button of els.list.querySelectorAll("button.conv")) {
    const c = engine.byId(/** @type {HTMLElement} */ (button).dataset.id);
    const sub = button.querySelector(".conv-sub");
    if (c && sub && sub.textContent !== describe(c)) sub.textContent = describe(c);
  }
}

const graphemes = typeof Intl.Segmenter === "function" ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

/**
 * The avatar letter: the name's first user-perceived character (a whole emoji with its
 * modifiers and joiners, a flag, a letter with its accents), capitalised when that keeps it
 * one character ("ß" stays "ß", not "SS").
 * @param {string} name
 */
export function initial(name) {
  // Leading white space and invisible format characters (zero-width space, direction marks)
  // are not what a reader sees first.
  const trimmed = name.replace(/^[\s\p{Cf}]+/u, "").trim();
  if (!trimmed) return "?";
  const first = graphemes
    ? graphemes.segment(trimmed)[Symbol.iterator]().next().value.segment
    : String.fromCodePoint(/** @type {number} */ (trimmed.codePointAt(0)));
  const upper = first.toUpperCase();
  return [...upper].length === [...first].length ? upper : first;
}

/**
 * Under the conversation list, once a conversation is joined and while the browser has not
 * been asked: a quiet offer to notify of new messages, which the person can take or dismiss.
 */
export function renderNotifyOffer() {
  const offer = els.notifyOffer;
  const show =
    notificationsExist() &&
    Notification.permission !== "denied" &&
    !choice("notify") &&
    !choice("notifyOffered") &&
    engine.conversations.some((c) => c.joined);
  if (!show) {
    if (!offer.hidden && offer.contains(document.activeElement)) /** @type {HTMLElement | null} */ (els.list.querySelector("button.conv"))?.focus();
    offer.hidden = true;
    return;
  }
  if (!offer.hidden) return;
  replace(
    offer,
    h("p", { class: "fine", text: "Hush can tell you when a message arrives while it is in the background." }),
    h(
      "div",
      { class: "actions" },
      h("button", {
        type: "button",
        text: "Get notified of new messages",
        onclick: async () => {
          const answer = await askToNotify();
          renderNotifyOffer();
          announce(answer === "granted" ? "Notifications are on. Settings can turn them off." : NOTIFY_BLOCKED);
        },
      }),
      h("button", {
        type: "button",
        class: "ghost",
        text: "Not now",
        onclick: () => {
          setChoice("notifyOffered", true);
          renderNotifyOffer();
          announce("Notifications can be turned on in Settings.");
        },
      }),
    ),
  );
  offer.hidden = false;
}

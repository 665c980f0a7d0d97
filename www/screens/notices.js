// @ts-check
// Notices: what happened to a conversation that the person must know, in plain words, with
// what they can do. They stay until dismissed (interference, a restored device) or for good
// (a conversation that ended); a new event raises them again. Shown at the top of its chat.

import { ErrorCode } from "../pkg/hush.js";
import { formatTime, h, replace } from "../dom.js";
import { codeOf, messageOf } from "../engine/errors.js";
import { announce, client, engine, ui } from "./shell.js";
import { showNewConversation } from "./new.js";
import { showSafety } from "./safety.js";

/** @typedef {import("../engine/types.js").ConversationSummary} ConversationSummary */
/**
 * @typedef {{ text: string, onclick?: () => void, dismiss?: "interference" | "rollback" }} NoticeAction
 * @typedef {{ kind: string, title: string, text: string, actions: NoticeAction[] }} Notice
 */

/**
 * The notices of conversation `c`.
 * @param {ConversationSummary} c
 * @returns {Notice[]}
 */
function noticesOf(c) {
  /** @type {Notice[]} */
  const out = [];
  if (c.ended === "peerRestored") {
    out.push({
      kind: "ended",
      title: "This conversation has ended",
      text:
        `${c.name}'s device went back to an older copy of its data (a restored backup or profile, or a save undone by a power loss) after your last reply, so neither of you can read what the other sends now. ` +
        `Your messages stay readable here. Meet ${c.name} and start a new conversation; then you can delete this one.`,
      actions: [{ text: "New conversation", onclick: () => showNewConversation() }],
    });
  } else if (c.ended === "diverged") {
    out.push({
      kind: "ended",
      title: "This conversation has ended",
      text:
        `One of your two devices went back to an older copy of this conversation (a restored backup or profile, or a save undone by a power loss), or the mailbox kept altering messages, so neither of you can read what the other sends now. ` +
        `Your messages stay readable here. Meet ${c.name} and start a new conversation; then you can delete this one.`,
      actions: [{ text: "New conversation", onclick: () => showNewConversation() }],
    });
  } else if (c.ended) {
    out.push({
      kind: "ended",
      title: "This conversation has ended",
      text:
        `It was made with an older version of Hush, which the current one can't continue. Your messages stay readable here, but nothing more can be sent or received. ` +
        `To keep talking with ${c.name}, start a new conversation and invite them again; then you can delete this one.`,
      actions: [{ text: "New conversation", onclick: () => showNewConversation() }],
    });
  }
  if (c.interference) {
    const { undelivered = 0 } = c.interference;
    const lost =
      undelivered > 0
        ? `${undelivered === 1 ? "One of your messages" : `${undelivered} of your messages`} could not be delivered: someone else's data was put where ${undelivered === 1 ? "it" : "they"} should go. `
        : `Data that is not from ${c.name} was put where their messages should go. `;
    out.push({
      kind: "interference",
      title: "Someone is interfering with this conversation",
      text:
        lost +
        `Compare your safety code with ${c.name}'s in person or on a call you trust. If they differ, or this keeps happening, meet ${c.name} and start a new conversation.`,
      actions: [
        { text: "Show safety code", onclick: () => showSafety(c.id) },
        { text: "Dismiss", dismiss: "interference" },
      ],
    });
  }
  if (c.unreadable) {
    out.push({
      kind: "unreadable",
      title: `${c.name}'s messages can't be read on this device`,
      text:
        `This device or ${c.name}'s was probably restored from an older copy of its data (a restored backup or profile, or a save undone by a power loss), so what ${c.name} sends now can't be read here, and what you send can't be read there. ` +
        `If it was this device, messages sent or received after that copy was made are missing here. ` +
        // The other device is told only once this has lasted a while (a single altered
        // message looks the same and must not end the conversation): say when, not "has told".
        `Unless a later message from ${c.name} can be read here, Hush tells ${c.name}'s device at ${formatTime(c.unreadable.signalAt)} and the conversation ends. Meet ${c.name} and start a new conversation; your messages stay readable here.`,
      actions: [{ text: "New conversation", onclick: () => showNewConversation() }],
    });
  }
  if (c.rollback) {
    // lostBlobs counts blobs (acknowledgements too) and is a lower bound: no number is said.
    out.push({
      kind: "rollback",
      title: "This device was restored from an older copy",
      text:
        `Hush found that this device went back to an older copy of its data (a restored backup or profile, or a save undone by a power loss). ` +
        `Messages you sent after that copy was made may be missing here; ${c.name} may have them. ` +
        `The conversation goes on safely: Hush skipped every key the older copy may have used, and sends again what ${c.name} may not have.`,
      actions: [{ text: "Dismiss", dismiss: "rollback" }],
    });
  }
  return out;
}

/**
 * Shows the open chat's notices; a notice that appears while it is open is announced once.
 * @param {import("./shell.js").OpenChat} chat
 */
export function renderNotices(chat) {
  const c = engine.byId(chat.id);
  if (!c) return;
  const list = noticesOf(c);
  const key = JSON.stringify(list.map((n) => [n.kind, n.text]));
  const ended = Boolean(c.ended);
  for (const control of chat.composer.elements) /** @type {HTMLButtonElement | HTMLTextAreaElement} */ (control).disabled = ended;
  chat.composer.hidden = ended;
  chat.limit.update();
  if (chat.shownNotices === key) return;
  const before = chat.shownNotices === null ? null : new Set(JSON.parse(chat.shownNotices).map((/** @type {[string, string]} */ [kind]) => kind));
  chat.shownNotices = key;
  replace(
    chat.notices,
    list.map((n) => {
      const titleId = `notice-${n.kind}`;
      return h(
        "section",
        { class: `notice notice-${n.kind}`, "aria-labelledby": titleId },
        h("h2", { id: titleId, text: n.title }),
        h("p", { text: n.text }),
        h(
          "div",
          { class: "actions" },
          n.actions.map((a) => {
            const dismiss = a.dismiss;
            return h("button", {
              type: "button",
              class: dismiss ? "ghost" : "",
              text: a.text,
              "aria-describedby": titleId,
              onclick: dismiss ? () => dismissNotice(c.id, dismiss) : a.onclick,
            });
          }),
        ),
      );
    }),
  );
  // Announced when it appears while the chat is open (not on opening the chat).
  const fresh = before ? list.filter((n) => !before.has(n.kind)) : [];
  if (fresh.length) announce(fresh.map((n) => `${n.title}. ${n.text}`).join("\n"));
}

/**
 * @param {string} id
 * @param {"interference" | "rollback"} kind
 */
async function dismissNotice(id, kind) {
  try {
    await client().clearNotice(id, kind);
  } catch (err) {
    if (codeOf(err) !== ErrorCode.Locked) console.warn("Could not dismiss the notice", messageOf(err));
    return;
  }
  await engine.refreshList();
  ui.chat?.composer.querySelector("textarea")?.focus();
}

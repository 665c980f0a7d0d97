// @ts-check
// What each notice of a conversation says, and what its buttons do, from the conversation's
// summary alone: no DOM, no client (tests/site-notices.test.mjs runs it in Node). Rendered by
// ./notices.js.

import { formatTime } from "../dom.js";

/** @typedef {import("../engine/types.js").ConversationSummary} ConversationSummary */

/**
 * What a button of a notice can do besides dismissing it, with the text its button shows:
 * ./notices.js maps each name to its handler.
 */
export const NOTICE_ACTIONS = Object.freeze({ newConversation: "New conversation", showSafety: "Show safety code" });

/**
 * A button of a notice: it does one of NOTICE_ACTIONS, or dismisses the notice (only
 * interference and rollback notices can be dismissed; the others stand while what they say
 * holds).
 * @typedef {{ text: string, does?: keyof typeof NOTICE_ACTIONS, dismiss?: "interference" | "rollback" }} NoticeAction
 * @typedef {{ kind: "ended" | "interference" | "unreadable" | "rollback", title: string, text: string, actions: NoticeAction[] }} Notice
 */

/**
 * The notices of conversation `c`.
 * @param {ConversationSummary} c
 * @returns {Notice[]}
 */
export function noticesOf(c) {
  /** @type {Notice[]} */
  const out = [];
  if (c.ended === "peerRestored") {
    out.push({
      kind: "ended",
      title: "This conversation has ended",
      text:
        `${c.name}'s device went back to an older copy of its data (a restored backup or profile, or a save undone by a power loss) after your last reply, so neither of you can read what the other sends now. ` +
        `Your messages stay readable here. Meet ${c.name} and start a new conversation; then you can delete this one.`,
      actions: [{ text: NOTICE_ACTIONS.newConversation, does: "newConversation" }],
    });
  } else if (c.ended === "diverged") {
    out.push({
      kind: "ended",
      title: "This conversation has ended",
      text:
        `One of your two devices went back to an older copy of this conversation (a restored backup or profile, or a save undone by a power loss), or the mailbox kept altering messages, so neither of you can read what the other sends now. ` +
        `Your messages stay readable here. Meet ${c.name} and start a new conversation; then you can delete this one.`,
      actions: [{ text: NOTICE_ACTIONS.newConversation, does: "newConversation" }],
    });
  } else if (c.ended) {
    out.push({
      kind: "ended",
      title: "This conversation has ended",
      text:
        `It was made with an older version of Hush, which the current one can't continue. Your messages stay readable here, but nothing more can be sent or received. ` +
        `To keep talking with ${c.name}, start a new conversation and invite them again; then you can delete this one.`,
      actions: [{ text: NOTICE_ACTIONS.newConversation, does: "newConversation" }],
    });
  }
  if (c.interference) {
    const { undelivered = 0 } = c.interference;
    // A device that went back to an older copy writes where its lost copy wrote: the same
    // evidence as interference. When another notice names a restore, this one says it may
    // explain it, so that the two tell one story; but the title and the advice stay, since
    // a mailbox that alters blobs can raise the unreadable notice (and end a conversation as
    // "diverged") itself, and must not be able to soften this warning that way.
    const restoreNotice =
      c.ended === "peerRestored" || c.ended === "diverged" ? "above" : c.unreadable || c.rollback ? "below" : null;
    const lost =
      undelivered > 0
        ? `${undelivered === 1 ? "One of your messages" : `${undelivered} of your messages`} could not be delivered: someone else's data was put where ${undelivered === 1 ? "it" : "they"} should go. `
        : restoreNotice
          ? `Data that ${c.name}'s device cannot have written now was put where their messages should go. `
          : `Data that is not from ${c.name} was put where their messages should go. `;
    const restore = restoreNotice
      ? `If one of your two devices went back to an older copy (the notice ${restoreNotice}), that most likely explains it: its older and its current copy wrote to the same places. Otherwise, or if you are not sure: `
      : "";
    out.push({
      kind: "interference",
      title: "Someone is interfering with this conversation",
      text:
        lost +
        restore +
        `Compare your safety code with ${c.name}'s in person or on a call you trust. If they differ, or this keeps happening, meet ${c.name} and start a new conversation.`,
      actions: [
        { text: NOTICE_ACTIONS.showSafety, does: "showSafety" },
        { text: "Dismiss", dismiss: "interference" },
      ],
    });
  }
  // Once the conversation has ended, its notice says what happened: an unreadable notice
  // announcing the end, or a rollback notice saying the conversation goes on, would
  // contradict it (a fresh outside trial saw all three at once).
  if (c.unreadable && !c.ended && c.unreadable.lostReads) {
    // Only evidence that a lost copy of this device read (and deleted) messages of theirs:
    // messages may well flow both ways meanwhile (a fresh outside trial read "can't be read"
    // while they did), and the other device puts the missing ones back when it next reads.
    out.push({
      kind: "unreadable",
      title: `Some of ${c.name}'s messages are missing on this device`,
      text:
        `This device went back to an older copy of its data (a restored backup or profile, or a save undone by a power loss), and messages from ${c.name} that it had read since were deleted from the mailbox. ` +
        `Hush asks ${c.name}'s device to put them back, which it does as soon as it has Hush open: the conversation waits for it, also while ${c.name} is away. ` +
        // signalAt moves earlier (never before 5 minutes) once that device read the request
        // and they still did not come back; otherwise it is a day after the notice.
        `If they have not come back by ${formatTime(c.unreadable.signalAt)}, Hush tells ${c.name}'s device and the conversation ends: you would meet ${c.name} to start a new one. Your messages stay readable here.`,
      // Nothing to do but wait: offering a new conversation here contradicted the text (a
      // fresh outside trial); once the conversation ends, its notice offers one.
      actions: [],
    });
  } else if (c.unreadable && !c.ended) {
    out.push({
      kind: "unreadable",
      title: `${c.name}'s messages can't be read on this device`,
      text:
        `This device or ${c.name}'s was probably restored from an older copy of its data (a restored backup or profile, or a save undone by a power loss), so what ${c.name} sends now can't be read here, and what you send can't be read there. ` +
        `If it was this device, messages sent or received after that copy was made are missing here. ` +
        // The other device is told only once this has lasted a while (a single altered
        // message looks the same and must not end the conversation): say when, not "has told".
        `Unless a later message from ${c.name} can be read here, Hush tells ${c.name}'s device at ${formatTime(c.unreadable.signalAt)} and the conversation ends. Meet ${c.name} and start a new conversation; your messages stay readable here.`,
      actions: [{ text: NOTICE_ACTIONS.newConversation, does: "newConversation" }],
    });
  }
  if (c.rollback) {
    // lostBlobs counts blobs (acknowledgements too) and is a lower bound: no number is said.
    out.push({
      kind: "rollback",
      title: "This device was restored from an older copy",
      text:
        `Hush found that this device went back to an older copy of its data (a restored backup or profile, or a save undone by a power loss). ` +
        `If you sent messages after that copy was made, they may be missing here; ${c.name} may have them.` +
        // Not while another notice says the conversation ends or will end.
        (c.ended || c.unreadable
          ? ""
          : ` The conversation goes on safely: Hush skipped every key the older copy may have used, and sends again what ${c.name} may not have.`),
      actions: [{ text: "Dismiss", dismiss: "rollback" }],
    });
  }
  return out;
}

/**
 * What identifies the notices shown: their kinds and texts (a JSON string).
 * @param {Notice[]} list
 * @returns {string}
 */
export function noticesKey(list) {
  return JSON.stringify(list.map((n) => [n.kind, n.text]));
}

/**
 * The notices of `list` to announce, given the key of those shown before ({@link noticesKey}):
 * each that is new, or whose text changed (another notice beside it now explains it, or
 * its count grew), so that a screen reader hears what the screen now says.
 * @param {string} before
 * @param {Notice[]} list
 * @returns {Notice[]}
 */
export function freshNotices(before, list) {
  const shown = new Set(JSON.parse(before).map((/** @type {[string, string]} */ [kind, text]) => `${kind}\n${text}`));
  return list.filter((n) => !shown.has(`${n.kind}\n${n.text}`));
}

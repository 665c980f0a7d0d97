// @ts-check
// What went wrong, in words for the person, with what they can do.

import { ErrorCode } from "../pkg/hush.js";
import { codeOf } from "../engine/errors.js";
import { CLOCK_WRONG_MS, clockError } from "../clock.js";

/** What to do when this browser's storage for the site is full. */
export const STORAGE_FULL =
  "This browser's storage for Hush is full. Free some space: delete files or apps you don't need, or clear other sites' data in the browser's settings (not Hush's: that would erase your conversations).";

/** The banner while polls can't store what they read. */
export const STORAGE_FULL_NEW =
  "this browser's storage for Hush is full. Free some space on this device (delete files or apps you don't need, or clear other sites' data in the browser's settings). They wait on the mailbox and appear here once there is room, but the mailbox keeps them only for a few days.";

/** Opening an invite made on this device. */
export const OWN_INVITE =
  "This is your own invite: it was made on this device, for the other person. Show them its QR code or send them the link; they open it on their device. Nothing was joined.";

/** @param {unknown} err */
export function storageMessage(err) {
  if (codeOf(err) === ErrorCode.StorageFull) return STORAGE_FULL;
  return codeOf(err) === ErrorCode.Storage
    ? "This browser refused to let Hush store data (IndexedDB). Private windows and some privacy settings do that. Hush needs it to keep your keys."
    : "Something went wrong while opening Hush's storage. Reload the page to try again.";
}

/**
 * A mailbox address that answered 404, said plainly.
 * @param {string} url
 */
export function wrongMailboxText(url) {
  return `Wrong mailbox address: there is no Hush mailbox at ${url} (it answered "not found").`;
}

/**
 * A rejected call, said for the person.
 * @param {unknown} err
 * @returns {string}
 */
export function errorText(err) {
  switch (codeOf(err)) {
    case ErrorCode.Locked:
      return "Hush is locked. Unlock it first.";
    case ErrorCode.InvalidInvite:
      return inviteRefusal(err);
    case ErrorCode.InviteExpired:
      return expiredInvite();
    case ErrorCode.MailboxUnreachable:
      return "The mailbox can't be reached right now. Try again in a moment.";
    case ErrorCode.MailboxRejected:
      return "The mailbox refused the request.";
    case ErrorCode.NotJoined:
      return "The other person has not joined yet.";
    case ErrorCode.Storage:
      return "This browser's storage failed (it may be full).";
    case ErrorCode.StorageFull:
      return STORAGE_FULL;
    case ErrorCode.MailboxNotFound:
      return "Wrong mailbox address: there is no Hush mailbox there (it answered \"not found\"). Check the address in Settings.";
    case ErrorCode.OwnInvite:
      return OWN_INVITE;
    case ErrorCode.AlreadyJoined:
      return "You already joined this invite.";
    case ErrorCode.UnknownConversation:
      return "This conversation no longer exists.";
    case ErrorCode.ConversationEnded:
      return "This conversation has ended (see the notice at its top). Start a new conversation to keep talking.";
    case ErrorCode.BadQr:
      return "That is not a readable QR code.";
    default:
      return /** @type {{ message?: string } | null | undefined} */ (err)?.message ?? "Something went wrong.";
  }
}

/**
 * Why an invite link was refused, and what to do. The client's message names the problem in
 * words meant for people (protocol/src/error.rs, `InviteError`): incomplete, extra
 * characters, unclear where it ends, no invite, a newer version, damaged.
 * @param {unknown} err
 */
function inviteRefusal(err) {
  const detail = String(/** @type {{ message?: string } | null | undefined} */ (err)?.message ?? "")
    .replace(/^invalid invite:\s*/i, "")
    .trim();
  let advice = "Check that the whole link was copied.";
  if (/incomplete/.test(detail)) advice = "Copy the whole link again, up to its last character.";
  else if (/extra characters/.test(detail)) advice = "Something was added to its end: copy the link again, on its own.";
  else if (/where the invite ends/.test(detail)) advice = "Copy only the link, without the text after it, and if it was broken across lines, put it back together.";
  else if (/no Hush invite/.test(detail)) advice = "Paste the invite link they sent you (it has a # followed by a long code), or scan their QR code.";
  else if (/newer version/.test(detail)) advice = "Reload this page to update Hush, or ask them for a new invite.";
  else if (/older version/.test(detail)) advice = "Ask them to reload Hush (which updates it) and make a new invite.";
  else if (/damaged/.test(detail)) advice = "Copy the link again, or ask them to send it again.";
  return detail ? `This invite link can't be used: ${detail}. ${advice}` : `This is not a valid Hush invite. ${advice}`;
}

/**
 * An invite refused as expired. The client allows for clocks up to two days apart
 * (INVITE_CLOCK_TOLERANCE), so either the invite is old or a clock is wrong by days. With
 * `offsetMs` (this device's clock against the site's, see clockOffsetFromSite) it says which
 * clock is likely wrong; without, it shows this device's time so the person can tell.
 * @param {number | null} [offsetMs]
 */
export function expiredInvite(offsetMs = null) {
  const now = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" }).format(Date.now());
  const says = `This invite has expired by this device's clock, which says it is ${now}.`;
  if (offsetMs !== null && Math.abs(offsetMs) >= CLOCK_WRONG_MS) {
    return (
      `${says} That is ${clockError(offsetMs)} the time at ${location.host}: this device's clock is wrong. ` +
      "Correct its date, time and time zone, then open the invite again."
    );
  }
  if (offsetMs !== null) {
    return (
      `${says} That agrees with the time at ${location.host}, so this device's clock is right: the invite is old, or their device's clock was wrong when they made it. ` +
      "Ask them to check their clock and make a new invite."
    );
  }
  return (
    `${says} If they made the invite recently, this device's clock or theirs is wrong by days: check the date, time and time zone on both, then try again. ` +
    "Otherwise, ask them for a new invite."
  );
}

// @ts-check
// The top bar's line about the network and the mailboxes, and everything else that says it:
// the open chat's banner, the connecting screen, the list's lines under each name.

import { ErrorCode } from "../pkg/hush.js";
import { els, engine, screens } from "./shell.js";
import { STORAGE_FULL_NEW, wrongMailboxText } from "./texts.js";

export function updateNetStatus() {
  let text = "";
  let kind = "";
  if (engine.storageFull.size > 0) {
    text = `New messages can't be saved: ${STORAGE_FULL_NEW}`;
    kind = "storage";
  } else if (!navigator.onLine) {
    text = "Offline. Messages wait on this device and go out when you're back online.";
    kind = "offline";
  } else if (engine.wrongMailbox.size > 0) {
    text = `${wrongMailboxText([...engine.wrongMailbox][0])} Check the address in Settings, or ask for a new invite.`;
    kind = "wrong";
  } else if (engine.flushError && engine.flushErrorCode === ErrorCode.MailboxNotFound) {
    text = "Wrong mailbox address: a mailbox answered \"not found\", so messages can't be delivered. Check the address in Settings, or ask for a new invite.";
    kind = "wrong";
  } else if (engine.flushError && engine.flushErrorCode === ErrorCode.MailboxRejected) {
    // It answered (a full disk's 507, a 403, …): saying "can't reach" would send people to
    // check their connection.
    text = "The mailbox answers but refuses to store messages right now. Retrying; nothing is lost.";
    kind = "refused";
  } else if (engine.unreachable.size > 0 || engine.flushError) {
    text = "Can't reach the mailbox. Retrying; nothing is lost.";
    kind = "unreachable";
  }
  if (els.netstatus.textContent !== text) els.netstatus.textContent = text;
  els.netstatus.dataset.kind = kind;
  // The unlocked app's parts that say it too (not loaded before the first unlock).
  screens?.updateChatBanner();
  screens?.updateConnectingState();
  screens?.renderListSubtitles();
}

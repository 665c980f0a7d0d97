// @ts-check
// Settings: the mailbox for new conversations, notifications and reading, the auto-lock, and
// this device's storage.

import { h, field, checkbox, setFieldError } from "../dom.js";
import { mailboxUrl, setMailboxUrl, normaliseMailboxUrl, hostOf, choice, setChoice, mailboxUrlTooLong, MAX_MAILBOX_URL_BYTES } from "../settings.js";
import { persistentStorageSection } from "../pwa.js";
import { autoLockSetting } from "../autolock.js";
import { askToNotify, mayNotify, notificationsExist, NOTIFY_BLOCKED } from "../notify.js";
import { backButton, engine, setScreen } from "./shell.js";
import { autoLock } from "./session.js";

export function showSettings() {
  const url = field({
    label: "Mailbox URL",
    type: "url",
    value: mailboxUrl(),
    autocomplete: "off",
    spellcheck: "false",
    hint: "The server that stores encrypted messages until they are read. Used for new conversations; each conversation keeps the mailbox it started with, and an invite tells the other person which one to use.",
  });
  const result = h("p", { class: "state", role: "status", "aria-live": "polite" });
  const save = h("button", { type: "submit", class: "primary", text: "Save" });
  /** @param {SubmitEvent} event */
  async function onSubmit(event) {
    event.preventDefault();
    const normalised = normaliseMailboxUrl(url.input.value);
    if (!normalised) {
      setFieldError(url, "Enter a full address starting with https:// (or http:// for a local test).");
      return;
    }
    const { tooLong, bytes } = mailboxUrlTooLong(normalised);
    if (tooLong) {
      setFieldError(url, `This address is ${bytes} bytes long; an invite can carry at most ${MAX_MAILBOX_URL_BYTES}. Use a shorter address. Nothing was saved.`);
      return;
    }
    setFieldError(url, null);
    setMailboxUrl(normalised);
    url.input.value = normalised;
    result.textContent = "Saved. Checking the mailbox…";
    const answer = await checkMailbox(normalised);
    result.textContent =
      answer === "ok"
        ? `Saved. The mailbox at ${hostOf(normalised)} answered.`
        : answer === "not found"
          ? `Saved, but there is no Hush mailbox at ${normalised}: the server there answered "not found". Check the address, with its path if the mailbox has one (such as https://example.org/mailbox).`
          : `Saved, but the mailbox at ${hostOf(normalised)} did not answer. Check the address; the mailbox must allow this site (CORS) and this site's Content-Security-Policy must allow connecting to it.`;
  }
  const reset = h("button", {
    type: "button",
    class: "ghost",
    text: "Use the default mailbox",
    onclick: () => {
      setMailboxUrl(null);
      url.input.value = mailboxUrl();
      setFieldError(url, null);
      result.textContent = `Using the default mailbox, ${hostOf(mailboxUrl())}.`;
    },
  });
  setScreen(
    "settings",
    h(
      "section",
      { class: "card" },
      backButton(),
      h("h1", { text: "Settings" }),
      h("form", { class: "stack", novalidate: true, onsubmit: onSubmit }, url.wrap, h("div", { class: "actions" }, save, reset), result),
      messageChoices(),
      autoLockSetting(() => autoLock.rearm()),
      h("h2", { class: "section-title", text: "This device" }),
      h("p", {
        class: "fine",
        text: "Everything Hush keeps (keys, history, unsent messages) is encrypted with your passphrase in this browser's storage. Lock when you step away; clearing this site's data erases it all.",
      }),
      persistentStorageSection(),
    ),
    { focus: url.input },
  );
}

/** Settings' switches for notifications and for deleting what was read; each applies at once. */
function messageChoices() {
  const said = h("p", { class: "state", role: "status", "aria-live": "polite" });
  const notify = checkbox({
    label: "Notify me of new messages",
    hint: "A system notification when a message arrives while Hush is in the background or another conversation's chat is open.",
    checked: mayNotify(),
    onchange: async () => {
      if (!notify.input.checked) {
        setChoice("notify", false);
        said.textContent = "Notifications are off.";
        return;
      }
      const answer = notificationsExist() ? await askToNotify() : "unsupported";
      notify.input.checked = answer === "granted";
      said.textContent =
        answer === "granted" ? "Notifications are on." : answer === "unsupported" ? "This browser can't show notifications." : NOTIFY_BLOCKED;
    },
  });
  const detail = checkbox({
    label: "Show names and message text in notifications",
    hint: "Off: a notification says only \"New message\". On: it shows who wrote and what, to anyone who can see this screen or its list of notifications.",
    checked: choice("notifyText"),
    onchange: () => {
      setChoice("notifyText", detail.input.checked);
      said.textContent = detail.input.checked ? "Notifications show names and message text." : "Notifications say only \"New message\".";
    },
  });
  const erase = checkbox({
    label: "Delete messages from the mailbox once read",
    hint: "The mailbox then keeps a message only until this device has it. The cost: if this device is ever restored from a backup, the messages it read after that backup come back only from the other person's device, which puts them back when it next has Hush open; the conversation waits for it, for up to a day. If it cannot put them back, or the backup is older than the last change of keys, the conversation ends (you would meet again to start a new one).",
    checked: choice("deleteAfterRead"),
    onchange: () => {
      const on = erase.input.checked;
      setChoice("deleteAfterRead", on);
      if (engine.isUnlocked) engine.api.setDeleteAfterRead(on);
      said.textContent = on
        ? "Messages this device reads from now on are deleted from the mailbox."
        : "Messages stay on the mailbox until they expire.";
    },
  });
  return h("div", { class: "stack choices" }, h("h2", { class: "section-title", text: "Notifications and reading" }), notify.wrap, detail.wrap, erase.wrap, said);
}

/**
 * Asks the mailbox at `base` for its health: "ok", "not found" (a wrong address) or "failed".
 * @param {string} base
 */
async function checkMailbox(base) {
  try {
    const res = await fetch(`${base}/v1/health`, { cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
    return res.ok ? "ok" : res.status === 404 ? "not found" : "failed";
  } catch {
    return "failed";
  }
}

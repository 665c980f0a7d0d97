// @ts-check
// New conversation: a name for the other person, then an invite (screens/invite.js).

import { h, field, refuseTooLong, setFieldError } from "../dom.js";
import { mailboxUrl, siteUrl, hostOf, mailboxUrlTooLong, MAX_MAILBOX_URL_BYTES } from "../settings.js";
import { backButton, client, engine, setScreen } from "./shell.js";
import { errorText } from "./texts.js";
import { showInvite } from "./invite.js";
import { showSettings } from "./settings.js";

export function showNewConversation() {
  const name = field({ label: "Their name", hint: "Only you see this name.", autocomplete: "off", required: true, maxlength: 60, dir: "auto" });
  const submit = h("button", { type: "submit", class: "primary", text: "Create invite" });
  const mailbox = mailboxUrl();
  /** @param {SubmitEvent} event */
  async function onSubmit(event) {
    event.preventDefault();
    const value = name.input.value.trim();
    if (!value) {
      setFieldError(name, "Give this conversation a name.");
      name.input.focus();
      return;
    }
    if (refuseTooLong(name)) return;
    // Saved before Settings checked the length: said about the setting, not as a bad link.
    const { tooLong, bytes } = mailboxUrlTooLong(mailbox);
    if (tooLong) {
      setFieldError(name, `The mailbox address in Settings is ${bytes} bytes long, too long for an invite (at most ${MAX_MAILBOX_URL_BYTES}). Choose a shorter one in Settings.`);
      return;
    }
    submit.disabled = true;
    try {
      const { id } = await client().createInvite(siteUrl(), mailbox, value);
      await engine.refreshList();
      engine.schedulePoll(id, 0);
      showInvite(id);
    } catch (err) {
      submit.disabled = false;
      setFieldError(name, errorText(err));
    }
  }
  setScreen(
    "new",
    h(
      "section",
      { class: "card" },
      backButton(),
      h("h1", { text: "New conversation" }),
      h("p", {
        text: "Hush makes a one-time invite: a QR code and a link. The other person scans the code or opens the link; it works once and expires in 24 hours.",
      }),
      h("form", { class: "stack", novalidate: true, onsubmit: onSubmit }, name.wrap, submit),
      h("p", { class: "fine" }, `Messages go through the mailbox at ${hostOf(mailbox)}. `, settingsLink()),
    ),
    { focus: name.input },
  );
}

function settingsLink() {
  return h("button", { type: "button", class: "link", text: "Change mailbox", onclick: () => showSettings() });
}

// @ts-check
// Set-up: the first visit on this device chooses the passphrase that encrypts the vault.

import { ErrorCode } from "../pkg/hush.js";
import { h, field, setFieldError } from "../dom.js";
import { createVaultInWorker, NOT_ENOUGH_MEMORY } from "../unlock.js";
import { askPersistentStorage } from "../pwa.js";
import { codeOf, isStorageError } from "../engine/errors.js";
import { client, loadScreens, setScreen, setUnlockedChrome, ui } from "./shell.js";
import { usernameForManagers, passwordWithToggle } from "./passphrase.js";
import { storageMessage } from "./texts.js";
import { showUnlock } from "./unlock.js";
import { afterUnlock } from "./session.js";

/** Minimum passphrase length we accept when creating a vault. */
const MIN_PASSPHRASE = 8;

function intro() {
  return h(
    "ul",
    { class: "points" },
    h("li", { text: "No account, no phone number, no email." }),
    h("li", { text: "Messages are encrypted here and sent to fresh addresses only the two of you can compute." }),
    h("li", { text: "Meet once: show a QR code or share a link, then compare a short safety code." }),
  );
}

export function showSetup() {
  setUnlockedChrome(false);
  const pass = field({
    label: "Passphrase",
    type: "password",
    autocomplete: "new-password",
    hint: `At least ${MIN_PASSPHRASE} characters. It encrypts everything Hush keeps on this device.`,
    required: true,
    minlength: MIN_PASSPHRASE,
  });
  const again = field({ label: "Confirm passphrase", type: "password", autocomplete: "new-password", required: true });
  const noReset = h("p", {
    class: "note",
    text: "There is no reset. If you forget this passphrase, the conversations on this device cannot be recovered: nobody can open them, not even the people who run Hush.",
  });
  const submit = h("button", { type: "submit", class: "primary wide", text: "Create" });
  const busy = h("p", { class: "busy", role: "status", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "stack", novalidate: true, onsubmit: onSubmit },
    usernameForManagers(),
    passwordWithToggle(pass),
    passwordWithToggle(again),
    noReset,
    submit,
    busy,
  );
  /** @param {SubmitEvent} event */
  async function onSubmit(event) {
    event.preventDefault();
    const value = pass.input.value;
    setFieldError(again, null); // Whatever an earlier attempt said of it is checked anew below.
    if (value.length < MIN_PASSPHRASE) {
      setFieldError(pass, `Use at least ${MIN_PASSPHRASE} characters.`);
      pass.input.focus();
      return;
    }
    setFieldError(pass, null);
    if (again.input.value !== value) {
      setFieldError(again, "The two passphrases are different. Type the same passphrase in both fields.");
      again.input.focus();
      return;
    }
    setFieldError(again, null);
    submit.disabled = true;
    busy.textContent = "Creating your encrypted storage…";
    loadScreens().catch(() => {}); // Fetched while the key is derived (afterUnlock says if it failed).
    try {
      await createVaultInWorker(client(), value);
      pass.input.value = "";
      askPersistentStorage(); // Keys and history should survive the browser's clean-ups.
      await afterUnlock();
    } catch (err) {
      submit.disabled = false;
      busy.textContent = "";
      if (codeOf(err) === ErrorCode.VaultExists) {
        showUnlock();
        return;
      }
      if (codeOf(err) === ErrorCode.OutOfMemory) setFieldError(pass, NOT_ENOUGH_MEMORY);
      else setFieldError(pass, isStorageError(err) ? storageMessage(err) : `Could not create it: ${/** @type {Error} */ (err).message}`);
    }
  }
  setScreen(
    "setup",
    h(
      "section",
      { class: "card center narrow" },
      h("h1", { text: "Welcome to Hush" }),
      h("p", { class: "lead", text: "Private messaging between two people." }),
      intro(),
      ui.incomingInvite ? h("p", { class: "note", text: "You opened an invite link. Choose a passphrase first; then you can accept the invite." }) : null,
      h("h2", { class: "small-title", text: "Choose a passphrase for this device" }),
      form,
    ),
    { pane: "detail", focus: pass.input },
  );
}

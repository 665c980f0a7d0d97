// @ts-check
// Unlock: the passphrase opens the vault (the key is derived in a Web Worker, ../unlock.js).

import { ErrorCode } from "../pkg/hush.js";
import { h, field, setFieldError } from "../dom.js";
import { unlockInWorker, NOT_ENOUGH_MEMORY } from "../unlock.js";
import { codeOf, isStorageError } from "../engine/errors.js";
import { client, loadScreens, setScreen, setUnlockedChrome, ui } from "./shell.js";
import { usernameForManagers, passwordWithToggle } from "./passphrase.js";
import { storageMessage } from "./texts.js";
import { afterUnlock } from "./session.js";

export function showUnlock() {
  setUnlockedChrome(false);
  const pass = field({ label: "Passphrase", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary wide", text: "Unlock" });
  const busy = h("p", { class: "busy", role: "status", "aria-live": "polite" });
  /** @param {SubmitEvent} event */
  async function onSubmit(event) {
    event.preventDefault();
    if (!pass.input.value) {
      setFieldError(pass, "Enter your passphrase.");
      pass.input.focus();
      return;
    }
    setFieldError(pass, null);
    submit.disabled = true;
    busy.textContent = "Unlocking…";
    loadScreens().catch(() => {}); // Fetched while the key is derived (afterUnlock says if it failed).
    try {
      await unlockInWorker(client(), pass.input.value);
      pass.input.value = "";
      await afterUnlock();
    } catch (err) {
      submit.disabled = false;
      busy.textContent = "";
      const code = codeOf(err);
      if (code === ErrorCode.WrongPassphrase) {
        setFieldError(pass, "That passphrase does not unlock Hush on this device. Check it and try again.");
      } else if (code === ErrorCode.Tampered) {
        setFieldError(pass, "Hush's stored data on this device was altered and cannot be opened.");
      } else if (code === ErrorCode.OutOfMemory) {
        setFieldError(pass, NOT_ENOUGH_MEMORY);
      } else {
        setFieldError(pass, isStorageError(err) ? storageMessage(err) : `Could not unlock: ${/** @type {Error} */ (err).message}`);
      }
      pass.input.select();
      pass.input.focus();
    }
  }
  setScreen(
    "unlock",
    h(
      "section",
      { class: "card center narrow" },
      h("h1", { text: "Welcome back" }),
      h("p", { class: "lead", text: "Your conversations are locked on this device." }),
      h("form", { class: "stack", novalidate: true, onsubmit: onSubmit }, usernameForManagers(), passwordWithToggle(pass), submit, busy),
      ui.incomingInvite ? h("p", { class: "note", text: "You opened an invite link. Unlock first; then you can accept it." }) : null,
    ),
    { pane: "detail", focus: pass.input },
  );
}

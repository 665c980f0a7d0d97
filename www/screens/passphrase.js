// @ts-check
// What the set-up and unlock screens share: the passphrase field with its "Show" toggle, and
// the hidden user name password managers file a passphrase under.

import { h } from "../dom.js";

/** @typedef {{ wrap: HTMLElement, input: HTMLInputElement, error: HTMLElement }} Field */

/** Password managers file a passphrase under a user name; Hush has none, so it is "Hush". */
export function usernameForManagers() {
  return h("input", { type: "text", name: "username", autocomplete: "username", value: "Hush", hidden: true, tabindex: "-1" });
}

/**
 * A password field with a "Show" toggle, so a passphrase can be checked before it is used.
 * @param {Field} f
 */
export function passwordWithToggle(f) {
  const toggle = h("button", {
    type: "button",
    class: "ghost reveal",
    "aria-pressed": "false",
    "aria-controls": f.input.id,
    text: "Show",
    onclick: () => {
      const show = f.input.type === "password";
      f.input.type = show ? "text" : "password";
      toggle.setAttribute("aria-pressed", String(show));
    },
  });
  const row = h("div", { class: "with-action" });
  f.input.replaceWith(row);
  row.append(f.input, toggle);
  return f.wrap;
}

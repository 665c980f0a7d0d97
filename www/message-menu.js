// @ts-check
// Each message's text (a quote it starts with shown as a quote block) and its menu: Copy,
// Reply with quote, and Delete on this device. The menu opens from a button on the bubble (shown on hover and focus,
// always in the keyboard order), or by right-click or long-press on the bubble. Everything is
// built with textContent: a message's text is never parsed as markup.

import { h, shownText } from "./dom.js";

/** Longest quote (characters, before the "> " marks) that Reply with quote puts in the composer. */
export const QUOTE_MAX = 200;
/** Most lines of the message that a quote takes. */
const QUOTE_LINES = 3;

/** The text of each message item, as stored (the DOM shows a quote without its "> " marks). */
const texts = new WeakMap();

/**
 * Splits `text` into the quote it starts with (its leading lines that begin with ">", without
 * that mark and one space after it) and the rest; `quote` is null when it starts with none.
 */
export function splitQuote(text) {
  const lines = text.split("\n");
  let n = 0;
  while (n < lines.length && lines[n].startsWith(">")) n++;
  if (n === 0 || n === lines.length) return { quote: null, rest: text };
  const quote = lines.slice(0, n).map((line) => line.replace(/^> ?/, "")).join("\n");
  return { quote, rest: lines.slice(n).join("\n") };
}

/** The quote of `text` for a reply: its first lines (its own quote left out), capped, each after "> ". */
export function quoteFor(text) {
  const { rest } = splitQuote(text);
  let lines = rest.trim().split("\n").slice(0, QUOTE_LINES);
  let quoted = lines.join("\n");
  const chars = [...quoted];
  if (chars.length > QUOTE_MAX) quoted = `${chars.slice(0, QUOTE_MAX - 1).join("").trimEnd()}…`;
  else if (rest.trim().split("\n").length > QUOTE_LINES) quoted += "…";
  lines = quoted.split("\n");
  return `${lines.map((line) => `> ${line}`).join("\n")}\n`;
}

/** The paragraph showing a message's `text`: a leading quote as a quote block, then the rest. */
export function messageText(text) {
  const { quote, rest } = splitQuote(text);
  const p = h("p", { class: "text", dir: "auto" });
  if (quote !== null) p.append(h("span", { class: "quote", role: "blockquote", dir: "auto", text: shownText(quote) }));
  p.append(shownText(rest));
  return p;
}

/**
 * Adds the menu button to message item `li` of `text`. `actions`: { copy(text) → Promise,
 * reply(text) }.
 */
export function addMessageMenu(li, text, actions) {
  texts.set(li, text);
  const button = h("button", {
    type: "button",
    class: "msg-menu-button",
    "aria-label": "Message actions",
    "aria-haspopup": "menu",
    "aria-expanded": "false",
    // Not a tab stop of its own: the message is (the chat's history list has one tab stop,
    // arrow keys move between messages, Enter opens this menu; screens/chat.js).
    tabindex: "-1",
    text: "⋯",
    onclick: () => (menu.owner === li ? closeMenu(true) : openMenu(li, button, actions)),
  });
  li.append(button);
  li.addEventListener("contextmenu", (event) => {
    // Right-click, or a long press on touch screens: the same menu, where the text is.
    if (window.getSelection()?.toString()) return; // Selecting text: the browser's own menu.
    event.preventDefault();
    openMenu(li, button, actions);
  });
}

const menu = { el: null, owner: null, button: null, onOutside: null };

function openMenu(li, button, actions) {
  closeMenu(false);
  const text = texts.get(li) ?? "";
  const item = (label, run) =>
    h("button", {
      type: "button",
      role: "menuitem",
      tabindex: "-1",
      text: label,
      onclick: () => {
        closeMenu(false);
        run();
      },
    });
  const items = [
    item("Copy", () => {
      button.focus();
      actions.copy(text);
    }),
    item("Reply with quote", () => actions.reply(text)),
    actions.remove ? item("Delete on this device", () => actions.remove(li, button)) : null,
  ].filter(Boolean);
  const el = h("div", { class: "msg-menu", role: "menu", "aria-label": "Message actions" }, items);
  el.addEventListener("keydown", (event) => {
    const at = items.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      items[(at + step + items.length) % items.length].focus();
    } else if (event.key === "Home" || event.key === "End") {
      event.preventDefault();
      items[event.key === "Home" ? 0 : items.length - 1].focus();
    } else if (event.key === "Escape" || event.key === "Tab") {
      if (event.key === "Escape") event.preventDefault();
      closeMenu(event.key === "Escape");
    }
  });
  li.append(el);
  el.scrollIntoView({ block: "nearest" }); // The last message's menu: scrolled into view.
  button.setAttribute("aria-expanded", "true");
  menu.el = el;
  menu.owner = li;
  menu.button = button;
  menu.onOutside = (event) => {
    if (!el.contains(event.target) && event.target !== button) closeMenu(false);
  };
  document.addEventListener("pointerdown", menu.onOutside, true);
  items[0].focus();
}

/** Closes the open menu; `refocus`: back to its button (Escape). Whether one was open. */
export function closeMenu(refocus) {
  if (!menu.el) return false;
  document.removeEventListener("pointerdown", menu.onOutside, true);
  menu.el.remove();
  menu.button.setAttribute("aria-expanded", "false");
  // Back to the message (the tab stop), else its button.
  const back = menu.owner.isConnected && menu.owner.hasAttribute("tabindex") ? menu.owner : menu.button;
  if (refocus && back.isConnected) back.focus();
  Object.assign(menu, { el: null, owner: null, button: null, onOutside: null });
  return true;
}

/** The timer that clears copyText's status line. @type {ReturnType<typeof setTimeout> | undefined} */
let copyTimer;

/** Copies `text`; says "Copied" (or why not) in `status`, a live region, for a few seconds. */
export async function copyText(text, status) {
  let said = "Copied";
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    said = "Could not copy: this browser did not allow it.";
  }
  status.textContent = said;
  clearTimeout(copyTimer);
  copyTimer = setTimeout(() => {
    if (status.textContent === said) status.textContent = "";
  }, 2500);
}

/** Puts the quote of `text` at the start of `composer` (a textarea) and focuses it, cursor at the end. */
export function replyWithQuote(text, composer) {
  composer.value = quoteFor(text) + composer.value;
  composer.dispatchEvent(new Event("input", { bubbles: true }));
  composer.focus();
  composer.setSelectionRange(composer.value.length, composer.value.length);
}

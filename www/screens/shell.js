// @ts-check
// What every screen shares: the page's fixed elements, the UI's state (the screen shown, the
// open chat, an invite waiting to be used), the sync engine the screens read, the helpers
// that put a screen in the main view, and the loading of the unlocked app's screens
// (./unlocked.js), which the locked page does not fetch.

import { h, replace } from "../dom.js";
import { screenShown, goBack } from "../navigation.js";
import { showHome } from "./home.js";

/** @typedef {import("../engine/sync.js").SyncEngine} SyncEngine */
/** @typedef {import("../engine/types.js").ConversationSummary} ConversationSummary */
/** @typedef {import("../engine/types.js").Client} Client */

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

export const els = {
  view: $("view"),
  sidebar: $("sidebar"),
  sidebarTitle: $("sidebar-title"),
  list: $("conversations"),
  listEmpty: $("conversations-empty"),
  notifyOffer: $("notify-offer"),
  netstatus: $("netstatus"),
  actions: $("topbar-actions"),
  lock: $("lock-button"),
  settings: $("settings-button"),
  newConv: $("new-button"),
  join: $("join-button"),
  dialog: /** @type {HTMLDialogElement} */ ($("dialog")),
  status: $("status"),
  announcer: $("announcer"),
  cueText: $("cue-text"),
  cueActions: $("cue-actions"),
};

/**
 * The open chat (screens/chat.js).
 * @typedef {Object} OpenChat
 * @property {string} id
 * @property {HTMLOListElement} list
 * @property {HTMLElement} scroller
 * @property {HTMLButtonElement} earlier
 * @property {HTMLElement} banner
 * @property {HTMLElement} notices
 * @property {HTMLFormElement} composer
 * @property {HTMLElement} sendError Where the chat says why a message (or its draft) was not kept
 * @property {{ fits: () => boolean, update: () => void }} limit
 * @property {string | null} shownNotices
 * @property {HTMLElement} title
 * @property {(name: string) => void} rename Shows the conversation's new name (title, placeholder).
 * @property {Map<number, HTMLLIElement>} items
 * @property {number} oldest Oldest seq shown.
 * @property {number} newest Newest seq shown.
 * @property {boolean} complete The oldest entry is shown.
 * @property {boolean} loadingOlder
 * @property {Set<number>} unsentSeqs
 * @property {Set<number>} awaitingSeqs
 * @property {number} token
 * @property {boolean} first
 * @property {boolean} unsent
 * @property {string | null} draft The draft as last saved or read back (null until read).
 * @property {boolean} atNewest The history was last seen scrolled to its newest end.
 * @property {HTMLButtonElement} latest "New messages ↓": shown while new ones are out of view.
 * @property {import("../chat-search.js").ChatSearch} search
 * @property {HTMLElement} copied
 * @property {() => void} stopDays
 */

/**
 * The screen shown: its name and conversation; the connecting screen also says whether it
 * followed a join.
 * @typedef {{ name: string, id: string | null, connecting?: boolean, justJoined?: boolean }} Screen
 */

export const ui = {
  /** @type {Screen} */
  screen: { name: "loading", id: null },
  /** An invite link that arrived in the URL fragment, until it is used. @type {string | null} */
  incomingInvite: null,
  /** The chat reopened after unlocking in this tab (kept in memory only). @type {string | null} */
  reopen: null,
  /** @type {OpenChat | null} */
  chat: null,
  /** Stops the camera when the join screen goes away. @type {(() => void) | null} */
  stopCamera: null,
  /** Object URL of the QR image shown, revoked when the screen changes. @type {string | null} */
  qrUrl: null,
};

/** The conversation the cue (showCue) is about, if any. @type {string | null} */
let cueAbout = null;

/**
 * The screens of the unlocked app (./unlocked.js) once loaded, null before: what runs only
 * while unlocked calls them through this (the first unlock awaits loadScreens).
 * @type {typeof import("./unlocked.js") | null}
 */
export let screens = null;
/** @type {Promise<typeof import("./unlocked.js")> | null} */
let loadingScreens = null;

/**
 * Loads the unlocked app's screens (once; again after a failure). Set-up and unlock start it
 * with the key's derivation, which takes longer, so the list is not kept waiting.
 */
export function loadScreens() {
  loadingScreens ??= import("./unlocked.js").then(
    (loaded) => (screens = loaded),
    (err) => {
      loadingScreens = null;
      throw err;
    },
  );
  return loadingScreens;
}

/**
 * The last message of each conversation, for the engine: the list's previews (../previews.js),
 * which come with the unlocked app's screens (the engine reads them only while unlocked).
 */
export const previews = {
  /** @type {(client: Client, list: ConversationSummary[], force: string | null) => Promise<void>} */
  refresh: async (client, list, force) => (await loadScreens()).previews.refresh(client, list, force),
  /** @param {string} id */
  forget: (id) => screens?.previews.forget(id),
  clear: () => screens?.previews.clear(),
};

/** @type {SyncEngine} */
export let engine;
/** @param {SyncEngine} e */
export function useEngine(e) {
  engine = e;
}

/** The client (open once the page started). */
export const client = () => engine.api;
/** @param {string | null | undefined} id */
export const byId = (id) => engine.byId(id);
export const visible = () => document.visibilityState === "visible";

/**
 * Puts `content` in the main view and records the screen. `pane` is what phones show.
 * @param {string} name
 * @param {Node} content
 * @param {{ id?: string | null, pane?: string, focus?: HTMLElement | null }} [options]
 */
export function setScreen(name, content, { id = null, pane = "detail", focus = null } = {}) {
  leaveScreen();
  if (cueAbout && cueAbout === id) clearCue(); // Followed another way.
  const previous = ui.screen;
  ui.screen = { name, id };
  engine.setShown(name, id);
  screenShown(ui.screen, previous, engine.isUnlocked);
  document.body.dataset.screen = name;
  document.body.dataset.pane = pane;
  replace(els.view, content);
  markCurrentInList();
  const target = focus ?? els.view.querySelector("h1, h2");
  if (target instanceof HTMLElement) {
    if (!target.hasAttribute("tabindex") && /^H[12]$/.test(target.tagName)) target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
}

function leaveScreen() {
  if (ui.stopCamera) {
    ui.stopCamera();
    ui.stopCamera = null;
  }
  if (ui.qrUrl) {
    URL.revokeObjectURL(ui.qrUrl);
    ui.qrUrl = null;
  }
  ui.chat?.stopDays();
  if (ui.chat && engine.isUnlocked) screens?.saveDraft(); // Leaving the chat keeps its draft.
  ui.chat = null;
  engine.updateReading(null);
  els.sidebarTitle.removeAttribute("aria-level");
  els.announcer.textContent = "";
  document.body.dataset.banner = "no";
}

/** Marks the shown conversation in the list. */
export function markCurrentInList() {
  for (const button of els.list.querySelectorAll("button.conv")) {
    if (button instanceof HTMLElement && button.dataset.id === ui.screen.id) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

/** @param {boolean} unlocked */
export function setUnlockedChrome(unlocked) {
  els.actions.hidden = !unlocked;
  els.sidebar.hidden = !unlocked;
  document.body.dataset.unlocked = unlocked ? "yes" : "no";
}

/**
 * A screen that only says something (Hush cannot start, storage is unavailable).
 * @param {string} title
 * @param {string} text
 */
export function showMessageScreen(title, text) {
  setUnlockedChrome(false);
  setScreen("message", h("section", { class: "card center" }, h("h1", { text: title }), h("p", { text })));
}

/**
 * A conversation's name inside a sentence, isolated so a right-to-left name keeps its order.
 * @param {string} name
 */
export function named(name) {
  return h("bdi", { text: name });
}

/**
 * A Back button: to where the person came from (`onclick` for somewhere else).
 * @param {() => void} [onclick]
 */
export function backButton(onclick = () => goBack(showHome)) {
  // The arrow is decoration: the button's accessible name is "Back".
  return h("button", { type: "button", class: "ghost back", onclick }, h("span", { class: "back-arrow", "aria-hidden": "true", text: "‹" }), "Back");
}

/**
 * Shows the modal dialog with `title`, `body` and the `actions` buttons.
 * @param {string} title
 * @param {Node} body
 * @param {Node[]} actions
 */
export function dialog(title, body, actions) {
  const d = els.dialog;
  replace(d, h("h2", { id: "dialog-title", text: title }), body, h("div", { class: "actions end" }, actions));
  d.showModal();
  return d;
}

/**
 * Shows a cue over the content (a status message, said to screen readers as it appears) about
 * something that happened away from the screen shown, with `actions` (buttons; each also
 * dismisses it) and "Dismiss". It stays until followed, dismissed, replaced, the lock, or a
 * screen of conversation `about` shown.
 * @param {string} text
 * @param {{ label: string, run: () => void }[]} [actions]
 * @param {string | null} [about]
 */
export function showCue(text, actions = [], about = null) {
  cueAbout = about;
  const buttons = actions.map(({ label, run }) =>
    h("button", {
      type: "button",
      class: "primary",
      text: label,
      onclick: () => {
        clearCue();
        run();
      },
    }),
  );
  replace(els.cueActions, buttons, h("button", { type: "button", class: "ghost", text: "Dismiss", onclick: () => clearCue() }));
  els.cueText.textContent = text;
}

/** Takes the cue away (it may name someone: also on lock). */
export function clearCue() {
  cueAbout = null;
  els.cueText.textContent = "";
  els.cueActions.replaceChildren();
}

/**
 * Says `text` to screen readers (the page's polite live region).
 * @param {string} text
 */
export function announce(text) {
  els.announcer.textContent = text;
}

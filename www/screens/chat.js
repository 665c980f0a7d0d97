// @ts-check
// The chat: the history, the composer, search, and each message's delivery state.
//
// History is the source of truth: the chat shows what client.historyPage() read back from
// storage, never what a poll or a send returned. It reads a page at a time: the newest page on
// opening, the page before as the person scrolls up, and after a poll, a send or a flush only
// the newest end (new entries are appended, shown ones get their status), so a long history
// costs what one screen of it costs.

import { ErrorCode } from "../pkg/hush.js";
import { h, formatTime } from "../dom.js";
import { hostOf } from "../settings.js";
import { limitComposer } from "../composer.js";
import { placeDaySeparators, atEachMidnight } from "../days.js";
import { messageText, addMessageMenu, copyText, replyWithQuote } from "../message-menu.js";
import { ChatSearch } from "../chat-search.js";
import { codeOf } from "../engine/errors.js";
import { announce, backButton, client, engine, setScreen, ui, visible } from "./shell.js";
import { showHome } from "./home.js";
import { showInvite } from "./invite.js";
import { showSafety } from "./safety.js";
import { initial, renderList } from "./list.js";
import { renderNotices } from "./notices.js";
import { confirmDelete, confirmDeleteMessage, renameDialog } from "./dialogs.js";
import { errorText, STORAGE_FULL_NEW, wrongMailboxText } from "./texts.js";

/** @typedef {import("../engine/types.js").HistoryEntry} HistoryEntry */
/** @typedef {import("./shell.js").OpenChat} OpenChat */

/** Entries read when a chat opens, and per older page as it scrolls up. */
const PAGE = 60;
/** Entries first read from the newest end to catch up after a poll, a send or a flush. */
const TAIL = 20;
/** How far back (entries) a refresh re-reads messages waiting for their delivery. */
const AWAITING_REACH = 200;
/** How near its top (px) the history must be scrolled for the page before it to load. */
const LOAD_OLDER_PX = 400;

/** @param {string} id */
export function showChat(id) {
  const c = engine.byId(id);
  if (!c) return showHome();
  if (!c.joined) return showInvite(id);
  const list = h("ol", { class: "messages", "aria-label": "Conversation history" });
  list.addEventListener("keydown", (event) => moveInHistory(event, list));
  list.addEventListener("focusin", (event) => {
    const li = event.target instanceof Element ? event.target.closest("li.msg") : null;
    if (li instanceof HTMLLIElement) makeTabStop(list, li);
  });
  // Older pages load as the history scrolls near its top, or with this button (keyboards,
  // screen readers).
  const earlier = h("button", { type: "button", class: "ghost earlier", text: "Show earlier messages", hidden: true, onclick: () => loadOlder() });
  const scroller = h("div", { class: "scroller" }, earlier, list);
  // Shown when a message arrives while the history is scrolled up: jumps to the newest.
  const latest = h("button", {
    type: "button",
    class: "jump-latest",
    text: "New messages ↓",
    "aria-label": "New messages: jump to the latest",
    hidden: true,
    onclick: () => {
      scroller.scrollTop = scroller.scrollHeight;
      latest.hidden = true;
      const shown = list.querySelectorAll("li.msg");
      const last = shown[shown.length - 1];
      if (last instanceof HTMLElement) {
        makeTabStop(list, last);
        last.focus({ preventScroll: true });
      }
    },
  });
  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop < LOAD_OLDER_PX) loadOlder();
    if (ui.chat) ui.chat.atNewest = atNewest(scroller);
    if (!latest.hidden && atNewest(scroller)) latest.hidden = true;
  }, { passive: true });
  // A window made narrower (desktop to phone size) or a taller composer: the newest message
  // stays in view if it was.
  const keepNewest = new ResizeObserver(() => {
    if (ui.chat?.scroller === scroller && ui.chat.atNewest) scroller.scrollTop = scroller.scrollHeight;
  });
  keepNewest.observe(scroller);
  keepNewest.observe(list);
  // Not a live region: the top bar's line (#netstatus, then for screen readers only) says the
  // same state, once.
  const banner = h("p", { class: "banner" });
  const notices = h("div", { class: "notices" });
  // Its direction follows its text (set by limitComposer: `dir="auto"` is slow on a long paste).
  const message = h("textarea", { id: "composer", rows: 1, "aria-label": "Message", autocomplete: "off" });
  const placeholder = fitPlaceholder(message);
  placeholder(`Message ${c.name}`);
  const sendError = h("p", { class: "field-error", role: "alert" });
  const send = h("button", { type: "submit", class: "primary", text: "Send" });
  const count = h("p", { class: "composer-count", hidden: true });
  const limit = limitComposer(message, { counter: count, send, announce: (/** @type {string} */ text) => announce(text) });
  const form = h(
    "form",
    {
      class: "composer",
      novalidate: true,
      onsubmit: (/** @type {SubmitEvent} */ event) => {
        event.preventDefault();
        const text = message.value;
        if (!/\S/.test(text) || !limit.fits()) return;
        message.value = "";
        autosize(message);
        limit.update();
        sendError.textContent = "";
        sendMessage(id, text, message, sendError); // Its draft goes once it is stored.
        message.focus();
      },
    },
    message,
    send,
  );
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  message.addEventListener("input", () => {
    autosize(message);
    saveDraftSoon();
  });
  const titleName = document.createTextNode(c.name);
  const title = h("h1", { class: "chat-title", dir: "auto" }, titleName);
  if (c.verifiedAt) title.append(h("span", { class: "verified-mark", title: "Safety code verified", "aria-label": ", safety code verified", text: " ✓" }));
  const searchToggle = h("button", { type: "button", class: "ghost", text: "Search", "aria-expanded": "false", onclick: () => (search.isOpen ? search.close() : search.open()) });
  const search = new ChatSearch({ client: client(), id, showEntry, toggle: searchToggle });
  const copied = h("p", { class: "copied-status", role: "status", "aria-live": "polite" });
  setScreen(
    "chat",
    h(
      "section",
      { class: "chat" },
      h(
        "header",
        { class: "chat-head" },
        backButton(),
        h("span", { class: "avatar", "aria-hidden": "true", text: initial(c.name) }),
        title,
        h(
          "div",
          { class: "chat-actions" },
          searchToggle,
          h("button", { type: "button", class: "ghost", text: "Safety code", onclick: () => showSafety(id) }),
          h("button", { type: "button", class: "ghost", text: "Rename", onclick: () => renameDialog(id) }),
          h("button", { type: "button", class: "ghost danger", text: "Delete", onclick: () => confirmDelete(id) }),
        ),
      ),
      search.el,
      banner,
      notices,
      scroller,
      latest,
      copied,
      sendError,
      count,
      form,
    ),
    { id, focus: message },
  );
  ui.chat = {
    id,
    list,
    scroller,
    earlier,
    banner,
    notices,
    composer: form,
    sendError,
    limit,
    shownNotices: null,
    title,
    rename: (/** @type {string} */ name) => {
      if (titleName.nodeValue !== name) titleName.nodeValue = name;
      placeholder(`Message ${name}`);
    },
    items: new Map(),
    oldest: Infinity,
    newest: -1,
    complete: false,
    loadingOlder: false,
    unsentSeqs: new Set(),
    awaitingSeqs: new Set(),
    token: 0,
    first: true,
    unsent: false,
    draft: null,
    atNewest: true,
    latest,
    search,
    copied,
    stopDays: atEachMidnight(() => placeDaySeparators(list)),
  };
  restoreDraft(ui.chat, message);
  engine.updateReading(id);
  updateChatBanner();
  renderNotices(ui.chat);
  refreshChat();
  engine.schedulePoll(id, 0);
}

// Drafts: the composer's unsent text is kept sealed in the vault (client.saveDraft), never in
// localStorage or anywhere in the clear: saved DRAFT_DELAY_MS after typing stops, at once on
// leaving the chat, before any lock (which waits for it) and on `pagehide`; put back when the
// chat opens. Saves and reads go one after another, so an older text never lands last.

// A message being sent stays its conversation's draft until the send has committed: the
// text is sealed as the draft marked as being sent (client.keepDraftForSend) before `send`,
// and the composer's text is saved in its place (empty: deleted) only once `send` settled.
// Torn down in between (a reload, a closed tab), the chat opening again gets the text back
// if the send never committed, and nothing if it did (client.draft checks the history): a
// sent message is neither lost nor offered twice. Meanwhile no other save of that draft runs.

// Sealing the text as the draft takes a storage transaction, which a reload in the first
// milliseconds after Send aborts. So Send first seals the text synchronously in wasm
// (client.sealPendingSend: vault key, bound to the conversation) and keeps those bytes in the
// tab's session storage, which a reload keeps; they are dropped once the send has settled.
// The chat opening again after a reload gives the text back unless the history shows it was
// stored (an own message with that text written since). Nothing is kept in the clear.

/** Session storage key of the sealed copies of texts being sent. */
const PENDING_SENDS = "hush.pendingSends";

/** @typedef {{ id: string, at: number, sealed: string, tag: string }} PendingSend */

/** @returns {PendingSend[]} */
function readPendingSends() {
  try {
    const list = JSON.parse(sessionStorage.getItem(PENDING_SENDS) ?? "[]");
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

/** @param {PendingSend[]} list */
function writePendingSends(list) {
  try {
    if (list.length) sessionStorage.setItem(PENDING_SENDS, JSON.stringify(list));
    else sessionStorage.removeItem(PENDING_SENDS);
  } catch {
    // Session storage off or full: the sealed draft still covers all but the first milliseconds.
  }
}

/** @param {Uint8Array} bytes */
function toBase64(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

/** @param {string} text */
function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/**
 * Keeps a sealed copy of `text`, sent now in conversation `id`, in session storage
 * (synchronously). Returns its tag, or null if it could not be kept.
 * @param {string} id
 * @param {string} text
 */
function keepPendingSend(id, text) {
  try {
    const sealed = client().sealPendingSend(id, text);
    const tag = crypto.randomUUID();
    writePendingSends([...readPendingSends(), { id, at: Date.now(), sealed: toBase64(sealed), tag }]);
    return tag;
  } catch {
    return null;
  }
}

/** @param {string[]} tags */
function dropPendingSends(tags) {
  if (tags.length) writePendingSends(readPendingSends().filter((p) => !tags.includes(p.tag)));
}

/**
 * The texts of conversation `id` whose send a reload cut short before they were stored
 * (oldest first), with the tags of every copy looked at.
 * @param {string} id
 * @returns {Promise<{ texts: string[], tags: string[] }>}
 */
async function unsentPendingSends(id) {
  const pending = readPendingSends().filter((p) => p.id === id);
  if (!pending.length) return { texts: [], tags: [] };
  const api = client();
  /** @type {import("../engine/types.js").HistoryEntry[]} */
  let recent = [];
  try {
    recent = await api.historyPage(id, null, 60);
  } catch {
    return { texts: [], tags: [] }; // Locked meanwhile: looked at again next time.
  }
  /** @type {string[]} */
  const texts = [];
  for (const p of pending) {
    let text;
    try {
      text = api.openPendingSend(id, fromBase64(p.sealed));
    } catch {
      continue; // Not this vault's: nothing to give back.
    }
    const stored = recent.some((e) => e.outgoing && e.text === text && e.time >= p.at);
    if (!stored && !texts.includes(text)) texts.push(text);
  }
  return { texts, tags: pending.map((p) => p.tag) };
}

/** Quiet time after typing before the draft is saved. */
const DRAFT_DELAY_MS = 500;
/**
 * Conversations with sends under way: how many, the end of the last one, and the composer's
 * text to keep once they are done (asked for while they ran).
 * @type {Map<string, { count: number, done: Promise<void>, text: string }>}
 */
const sending = new Map();
/** Sends whose text is not sealed as the draft yet: leaving the page now would lose them. */
let unsealed = 0;
// Leaving while a sent text is sealed nowhere yet (a few milliseconds): the browser asks first.
window.addEventListener("beforeunload", (event) => {
  if (unsealed > 0) event.preventDefault();
});
/** @type {ReturnType<typeof setTimeout> | undefined} */
let draftTimer;
/** The saves and reads of drafts, in order. @type {Promise<unknown>} */
let drafts = Promise.resolve();

/**
 * Runs `step` after the draft work before it; its result (failures are its caller's to see).
 * @template T
 * @param {() => Promise<T>} step
 * @returns {Promise<T>}
 */
function inOrder(step) {
  const next = drafts.then(step);
  drafts = next.catch(() => {});
  return next;
}

/** Saves the open chat's draft DRAFT_DELAY_MS from now (again from now at each key). */
function saveDraftSoon() {
  clearTimeout(draftTimer);
  draftTimer = setTimeout(saveDraft, DRAFT_DELAY_MS);
}

/**
 * Saves the open chat's composer text as its draft now (an empty one deletes it), unless it
 * is what was saved last or the draft was not read back yet. Resolves once it is stored
 * (never rejects: a locked or deleted conversation keeps nothing). Called before a lock
 * (session.js), on leaving the chat (shell.js) and on `pagehide` (app.js).
 * @returns {Promise<void>}
 */
export function saveDraft() {
  clearTimeout(draftTimer);
  const chat = ui.chat;
  const textarea = chat?.composer.querySelector("textarea");
  if (!chat || !textarea || chat.draft === null || textarea.disabled) return drafts.then(() => {});
  const text = textarea.value;
  const under = sending.get(chat.id);
  if (under) {
    // The draft holds the text being sent until it is stored: this text is kept after it.
    under.text = text;
    return under.done;
  }
  if (text === chat.draft) return drafts.then(() => {});
  chat.draft = text;
  return storeDraft(chat.id, text);
}

/**
 * Seals `text` as conversation `id`'s draft (empty: deletes it), after the draft work before
 * it; never rejects. A text too long even for a draft is not kept: the chat says so.
 * @param {string} id
 * @param {string} text
 */
function storeDraft(id, text) {
  const api = client();
  return inOrder(() => api.saveDraft(id, text)).catch((err) => {
    const code = codeOf(err);
    if (code === ErrorCode.MessageTooLong) {
      if (ui.chat?.id === id) ui.chat.sendError.textContent = DRAFT_TOO_LONG;
    } else if (code !== ErrorCode.Locked && code !== ErrorCode.UnknownConversation) console.warn("Could not save the draft", err);
  });
}

const DRAFT_TOO_LONG = "This text is too long to keep as a draft: shorten it, or it is lost if Hush reloads or locks.";

/**
 * Cancels the draft save waiting for a pause in typing and resolves once the saves under way
 * are stored: before a conversation is deleted, so that no save of its draft lands after.
 */
export function settleDrafts() {
  clearTimeout(draftTimer);
  return drafts.then(() => {});
}

/**
 * Puts conversation `chat`'s saved draft in its composer (unless something was typed first).
 * @param {OpenChat} chat
 * @param {HTMLTextAreaElement} textarea
 */
async function restoreDraft(chat, textarea) {
  let text = null;
  // A send of this conversation under way: its end saves the draft first.
  await sending.get(chat.id)?.done;
  try {
    text = await inOrder(() => client().draft(chat.id));
  } catch {
    // Locked or deleted meanwhile: nothing to show.
  }
  if (ui.chat !== chat) return;
  // Texts whose send a reload cut short before even the draft held them: back in the
  // composer (after the draft, unless it is the same text), and kept as the draft.
  const cut = await unsentPendingSends(chat.id);
  if (ui.chat !== chat) return;
  const back = cut.texts.filter((t) => t !== text);
  if (back.length) {
    text = [text, ...back].filter(Boolean).join("\n\n");
    await storeDraft(chat.id, text);
  }
  dropPendingSends(cut.tags);
  if (ui.chat !== chat) return;
  chat.draft = text ?? "";
  if (text && !textarea.value) {
    textarea.value = text;
    textarea.setSelectionRange(text.length, text.length);
    autosize(textarea);
    chat.limit.update();
  } else if (textarea.value !== chat.draft) {
    saveDraftSoon(); // Typed while it was read.
  }
}

const graphemes = typeof Intl.Segmenter === "function" ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;
/** @type {CanvasRenderingContext2D | null} */
let measurer = null;

/**
 * Where each user-perceived character of `text` ends (each code point's end without
 * Intl.Segmenter).
 * @param {string} text
 */
function characterEnds(text) {
  if (graphemes) return [...graphemes.segment(text)].map((g) => g.index + g.segment.length);
  /** @type {number[]} */
  const ends = [];
  let end = 0;
  for (const ch of text) ends.push((end += ch.length));
  return ends;
}

/**
 * Keeps the placeholder of `textarea` cut with an ellipsis to the box's one line (a textarea
 * wraps its placeholder, and CSS cannot cut it), again whenever the box's width changes. Cut
 * between user-perceived characters, never inside an emoji. Returns the function that sets
 * its text.
 * @param {HTMLTextAreaElement} textarea
 * @returns {(text: string) => void}
 */
function fitPlaceholder(textarea) {
  let text = "";
  const fit = () => {
    const style = getComputedStyle(textarea);
    const room = textarea.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    measurer ??= document.createElement("canvas").getContext("2d");
    if (!measurer || room <= 0) return;
    measurer.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const width = (/** @type {string} */ t) => /** @type {CanvasRenderingContext2D} */ (measurer).measureText(t).width;
    let shown = text;
    if (width(text) > room) {
      const ends = characterEnds(text);
      // The most characters that fit with "…" after them (binary search over their ends).
      let lo = 0;
      let hi = ends.length - 1;
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (width(`${text.slice(0, ends[mid - 1]).trimEnd()}…`) <= room) lo = mid;
        else hi = mid - 1;
      }
      shown = `${text.slice(0, lo > 0 ? ends[lo - 1] : 0).trimEnd()}…`;
    }
    if (textarea.placeholder !== shown) textarea.placeholder = shown;
  };
  new ResizeObserver(fit).observe(textarea);
  return (full) => {
    text = full;
    textarea.placeholder = full;
    if (textarea.isConnected) fit();
  };
}

/**
 * One row per line of the text, up to 6 (it stops counting lines there, however long the text).
 * @param {HTMLTextAreaElement} textarea
 */
function autosize(textarea) {
  const text = textarea.value;
  let rows = 1;
  for (let at = text.indexOf("\n"); at >= 0 && rows < 6; at = text.indexOf("\n", at + 1)) rows += 1;
  if (textarea.rows !== rows) textarea.rows = rows;
}

/**
 * Delivery states of one's own messages, in words (never colour or a tick alone): the text
 * shown after the time, a mark beside it (hidden from screen readers, which read the words),
 * and a longer explanation as the tooltip.
 *   sending    on this device, not on the mailbox yet
 *   sent       on the mailbox, not known to be on their device yet
 *   delivered  their device acknowledged it
 *   failed     the mailbox refused or could not be reached: retried
 *   conflict   never delivered: the reason is said in the chat's notices
 * @type {Record<import("../engine/types.js").DeliveryStatus, { mark: string, text: string, title: string } | null>}
 */
const STATUS = {
  sending: { mark: "○", text: "Sending…", title: "Still on this device: it goes to the mailbox as soon as it can." },
  sent: { mark: "✓", text: "Sent", title: "Given to the mailbox, not on their device yet. The mailbox keeps a message for a limited time: Hush checks every few minutes that it is still there, and puts it back if not." },
  delivered: { mark: "✓✓", text: "Delivered", title: "On their device: their Hush received it." },
  failed: { mark: "!", text: "Not delivered yet, retrying", title: "The mailbox could not take it yet. Hush keeps trying; it stays on this device until then." },
  conflict: {
    mark: "!",
    text: "Not delivered: someone else's data was at its address",
    title: "This message could not be delivered. See the notice at the top of the chat.",
  },
  received: null,
};

/**
 * The status of a message of ours not confirmed while the conversation waits for `name`'s
 * device to put back what is missing here (the notice "Some of …'s messages are missing").
 * @param {string} name
 */
const WAITING = (name) => ({
  mark: "○",
  text: `Not confirmed yet: waiting for ${name}'s device`,
  title: `On the mailbox. ${name}'s device confirms it once it has put back the messages missing here; see the notice at the top of the chat.`,
});

/**
 * One message of the chat, with its status set by setStatus.
 * @param {HistoryEntry} entry
 * @param {string} name
 */
function messageItem(entry, name) {
  const li = h(
    "li",
    { class: entry.outgoing ? "msg out" : "msg in" },
    h("span", { class: "sr-only", text: entry.outgoing ? "You: " : `${name}: ` }),
    messageText(entry.text),
    h("p", { class: "meta" }, h("time", { datetime: new Date(entry.time).toISOString(), text: formatTime(entry.time) }), h("span", { class: "delivery" })),
  );
  li.dataset.seq = String(entry.seq);
  li.tabIndex = -1; // One message is the history's tab stop (makeTabStop).
  addMessageMenu(li, entry.text, messageActions);
  return li;
}

/** What a message's menu does (message-menu.js). */
const messageActions = {
  /** @param {string} text */
  copy: (text) => ui.chat && copyText(text, ui.chat.copied),
  /** @param {string} text */
  reply: (text) => {
    const composer = ui.chat?.composer.querySelector("textarea");
    if (composer && ui.chat && !ui.chat.composer.hidden) replyWithQuote(text, composer);
  },
  /**
   * @param {HTMLLIElement} li
   * @param {HTMLButtonElement} button
   */
  remove: (li, button) => confirmDeleteMessage(li, button),
};

// The history is one tab stop (a roving tabindex): the message last focused, else the newest.
// Up and Down move between messages (Up past the oldest shown loads the page before), Home
// and End to the first and last shown, Enter (or the context-menu key, Shift+F10) opens the
// message's menu.

/**
 * Makes message `li` the history's one tab stop.
 * @param {HTMLElement} list
 * @param {HTMLElement} li
 */
function makeTabStop(list, li) {
  for (const other of list.querySelectorAll('li.msg[tabindex="0"]')) if (other !== li) /** @type {HTMLElement} */ (other).tabIndex = -1;
  li.tabIndex = 0;
}

/**
 * Keeps a tab stop in the history: the newest message when none is (or it was removed), or
 * when `newest` (messages arrived) and the stop is not where the focus is.
 * @param {HTMLElement} list
 * @param {boolean} [newest]
 */
function keepTabStop(list, newest = false) {
  const stop = list.querySelector('li.msg[tabindex="0"]');
  if (stop && !(newest && stop !== document.activeElement)) return;
  const messages = list.querySelectorAll("li.msg");
  const last = messages[messages.length - 1];
  if (last instanceof HTMLElement) makeTabStop(list, last);
}

/**
 * The message `step` messages from `li` (skipping day separators), or null.
 * @param {Element} li
 * @param {1 | -1} step
 */
function neighbour(li, step) {
  let at = step > 0 ? li.nextElementSibling : li.previousElementSibling;
  while (at && !at.classList.contains("msg")) at = step > 0 ? at.nextElementSibling : at.previousElementSibling;
  return at instanceof HTMLElement ? at : null;
}

/**
 * Arrow keys, Home, End and Enter on a message of the history.
 * @param {KeyboardEvent} event
 * @param {HTMLElement} list
 */
function moveInHistory(event, list) {
  const li = event.target;
  if (!(li instanceof HTMLLIElement) || !li.classList.contains("msg") || event.altKey || event.ctrlKey || event.metaKey) return;
  /** @type {HTMLElement | null} */
  let to = null;
  if (event.key === "ArrowUp" || event.key === "ArrowDown") {
    to = neighbour(li, event.key === "ArrowUp" ? -1 : 1);
    if (!to && event.key === "ArrowUp") loadOlder();
  } else if (event.key === "Home" || event.key === "End") {
    const messages = list.querySelectorAll("li.msg");
    const end = messages[event.key === "Home" ? 0 : messages.length - 1];
    to = end instanceof HTMLElement ? end : null;
  } else if (event.key === "Enter" || event.key === "ContextMenu" || (event.key === "F10" && event.shiftKey)) {
    event.preventDefault();
    /** @type {HTMLButtonElement | null} */ (li.querySelector(".msg-menu-button"))?.click();
    return;
  } else {
    return;
  }
  event.preventDefault();
  if (!to) return;
  makeTabStop(list, to);
  to.focus();
  to.scrollIntoView({ block: "nearest" });
}

/**
 * Where the focus goes when message `li` is deleted: the message after it, else the one
 * before, else the composer.
 * @param {HTMLElement} li
 * @returns {HTMLElement | null}
 */
export function focusAfterDeleting(li) {
  return neighbour(li, 1) ?? neighbour(li, -1) ?? ui.chat?.composer.querySelector("textarea") ?? null;
}

/**
 * Whether `scroller` shows the newest end of the history.
 * @param {HTMLElement} scroller
 */
function atNewest(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
}

/**
 * Loads older pages until entry `seq` is shown (search); its item, or null.
 * @param {number} seq
 * @returns {Promise<HTMLLIElement | null>}
 */
async function showEntry(seq) {
  const chat = ui.chat;
  while (chat && ui.chat === chat && !chat.items.has(seq) && !chat.complete && seq < chat.oldest) {
    if (chat.loadingOlder || chat.first) await new Promise((r) => setTimeout(r, 50));
    else await loadOlder();
  }
  return chat && ui.chat === chat ? (chat.items.get(seq) ?? null) : null;
}

/**
 * @param {OpenChat} chat
 * @param {HTMLLIElement} li
 * @param {HistoryEntry} entry
 */
function setStatus(chat, li, entry) {
  // While the other person's answers can't be read here (this device went back to an older
  // copy), a message waiting for them is not delivered, and the notice above says why;
  // while the notice stands only on their messages missing here, it is waiting.
  const c = engine.byId(chat.id);
  // Once the conversation has ended because a device went back to an older copy, a message
  // of ours not confirmed by then never will be: it is not delivered, and the notice above
  // says why (it said "Sent" for good). (Protocol version 1 had no confirmations: its
  // messages stay as they were.)
  const unconfirmed = entry.outgoing && (entry.status === "sent" || entry.status === "sending" || entry.status === "failed");
  const reason =
    entry.reason ??
    (unconfirmed && (c?.ended === "peerRestored" || c?.ended === "diverged")
      ? `the conversation ended before ${c.name}'s device confirmed it (see above)`
      : entry.outgoing && entry.status === "failed" && c?.unreadable && !c.unreadable.lostReads
        ? `${c.name}'s device can't read this device's messages any more (see above)`
        : null);
  entry = reason ? { ...entry, reason } : entry;
  // While the notice stands only on messages of theirs missing here, the conversation waits
  // for their device, which reads what this one sends meanwhile: not "Not delivered" (a fresh
  // outside trial found that beside a notice saying to wait), but not confirmed yet either.
  const waiting = !entry.reason && entry.outgoing && entry.status === "failed" && Boolean(c?.unreadable?.lostReads) && !c?.ended;
  const key = `${entry.status}\u0000${entry.reason ?? ""}\u0000${waiting}`;
  if (li.dataset.statusKey !== key) {
    li.dataset.statusKey = key;
    li.dataset.status = entry.status;
    const slot = /** @type {HTMLElement} */ (li.querySelector(".delivery"));
    const status = waiting ? WAITING(c?.name ?? "") : STATUS[entry.status];
    if (!status) {
      slot.replaceChildren();
      slot.removeAttribute("title");
    } else {
      const text = entry.reason ? `Not delivered: ${entry.reason}` : status.text;
      // Never a "Sent" tick beside "Not delivered".
      const mark = entry.reason ? "!" : status.mark;
      slot.replaceChildren(" · ", h("span", { class: "mark", "aria-hidden": "true", text: mark }), " ", text);
      slot.title = entry.reason ? "This message was not delivered. See the notice at the top of the chat." : status.title;
    }
  }
  // Entries a flush may still change (they also decide the chat's banner), and entries an
  // acknowledgement may still change: both are re-read on the next refresh.
  if (entry.status === "sending" || entry.status === "failed") chat.unsentSeqs.add(entry.seq);
  else chat.unsentSeqs.delete(entry.seq);
  if (entry.status === "sent") chat.awaitingSeqs.add(entry.seq);
  else chat.awaitingSeqs.delete(entry.seq);
}

/**
 * What changed at the newest end of the history: on opening, the newest page; later, every
 * entry after the newest one shown, and back to the oldest shown entry still unsent (a flush
 * changes those statuses). Reads TAIL entries, and pages further back only when they do not
 * reach that far.
 * @param {OpenChat} chat
 */
async function readNewest(chat) {
  // One more than a page: whether there is anything before it.
  if (chat.first) return client().historyPage(chat.id, null, PAGE + 1);
  // Messages on the mailbox that their device has not acknowledged yet are followed back
  // AWAITING_REACH entries at most (acknowledgements arrive in order, so the newest ones are
  // what changes; older ones show their new state when the chat is opened again).
  const awaiting = [...chat.awaitingSeqs].filter((seq) => seq >= chat.newest - AWAITING_REACH);
  const reach = Math.min(chat.newest, ...chat.unsentSeqs, ...awaiting);
  let entries = await client().historyPage(chat.id, null, TAIL);
  let more = entries.length === TAIL;
  while (more && entries[0].seq > reach) {
    const page = await client().historyPage(chat.id, entries[0].seq, PAGE);
    entries = page.concat(entries);
    more = page.length === PAGE;
  }
  return entries;
}

/**
 * Brings the open chat up to date with storage: appends new entries, updates the status of
 * shown ones, and leaves every other node alone.
 */
export async function refreshChat() {
  const chat = ui.chat;
  if (!chat) return;
  const token = ++chat.token;
  let entries;
  try {
    entries = await readNewest(chat);
  } catch (err) {
    if (codeOf(err) === ErrorCode.UnknownConversation) showHome();
    return;
  }
  if (ui.chat !== chat || token !== chat.token) return;
  if (chat.first) {
    chat.complete = entries.length <= PAGE;
    if (!chat.complete) entries = entries.slice(1);
  }
  const scroller = chat.scroller;
  const nearBottom = atNewest(scroller);
  let addedOwn = false;
  /** @type {string[]} */
  const incoming = [];
  const name = engine.byId(chat.id)?.name ?? "Them";
  const added = document.createDocumentFragment();
  for (const entry of entries) {
    let li = chat.items.get(entry.seq);
    if (!li) {
      // Older than the newest shown but not shown: on a page not loaded yet.
      if (entry.seq <= chat.newest) continue;
      li = messageItem(entry, name);
      chat.items.set(entry.seq, li);
      added.append(li);
      chat.newest = entry.seq;
      chat.oldest = Math.min(chat.oldest, entry.seq);
      if (entry.outgoing) addedOwn = true;
      else if (!chat.first) incoming.push(entry.text);
    }
    setStatus(chat, li, entry);
  }
  if (added.childNodes.length) {
    chat.list.querySelector(".empty")?.remove();
    chat.list.append(added);
    placeDaySeparators(chat.list);
    keepTabStop(chat.list, true);
  } else if (!chat.items.size && !chat.list.querySelector(".empty")) {
    chat.list.append(h("li", { class: "empty", text: `No messages yet. Say hello to ${name}.` }));
  }
  if (chat.first || nearBottom || addedOwn) {
    scroller.scrollTop = scroller.scrollHeight;
    chat.atNewest = true;
    chat.latest.hidden = true;
  } else if (incoming.length) {
    chat.latest.hidden = false; // Below, out of view: say so.
  }
  // New messages are announced once each (the list itself is not a live region, so opening a
  // chat does not read out its history).
  if (incoming.length) announce(incoming.map((t) => `${name}: ${t}`).join("\n"));
  const unsent = chat.unsentSeqs.size > 0;
  if (unsent !== chat.unsent) {
    chat.unsent = unsent;
    updateChatBanner();
  }
  if (chat.first) {
    chat.first = false;
    showEarlier(chat);
    // A page that does not fill the screen: the one before it, too.
    if (scroller.scrollTop < LOAD_OLDER_PX) loadOlder();
  }
  const c = engine.byId(chat.id);
  if (c && c.unread > 0 && visible()) {
    try {
      await client().markRead(chat.id);
      c.unread = 0;
      renderList();
    } catch {
      // Locked or deleted meanwhile: nothing to mark.
    }
  }
}

/**
 * Takes messages `seqs` out of the open chat (deleted on this device, here or in another tab);
 * returns whether any was shown.
 * @param {number[]} seqs
 */
export function removeFromChat(seqs) {
  const chat = ui.chat;
  if (!chat) return false;
  let removed = false;
  for (const seq of seqs) {
    const li = chat.items.get(seq);
    if (!li) continue;
    chat.items.delete(seq);
    chat.unsentSeqs.delete(seq);
    chat.awaitingSeqs.delete(seq);
    li.remove();
    removed = true;
  }
  if (removed) {
    placeDaySeparators(chat.list);
    keepTabStop(chat.list);
  }
  return removed;
}

/** @param {OpenChat} chat */
function showEarlier(chat) {
  chat.earlier.hidden = chat.complete;
  chat.earlier.disabled = chat.loadingOlder;
}

/** Reads the page before the oldest entry shown and puts it above, keeping the view still. */
async function loadOlder() {
  const chat = ui.chat;
  if (!chat || chat.first || chat.complete || chat.loadingOlder) return;
  chat.loadingOlder = true;
  showEarlier(chat);
  let page;
  try {
    page = await client().historyPage(chat.id, chat.oldest, PAGE + 1);
  } catch (err) {
    chat.loadingOlder = false;
    showEarlier(chat);
    if (codeOf(err) === ErrorCode.UnknownConversation && ui.chat === chat) showHome();
    return;
  }
  chat.loadingOlder = false;
  if (ui.chat !== chat) return;
  chat.complete = page.length <= PAGE;
  if (!chat.complete) page = page.slice(1);
  const name = engine.byId(chat.id)?.name ?? "Them";
  const older = document.createDocumentFragment();
  for (const entry of page) {
    if (entry.seq >= chat.oldest || chat.items.has(entry.seq)) continue;
    const li = messageItem(entry, name);
    chat.items.set(entry.seq, li);
    setStatus(chat, li, entry);
    older.append(li);
  }
  if (page.length) chat.oldest = Math.min(chat.oldest, page[0].seq);
  const scroller = chat.scroller;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  chat.list.prepend(older);
  placeDaySeparators(chat.list);
  keepTabStop(chat.list);
  scroller.scrollTop = scroller.scrollHeight - fromBottom;
  showEarlier(chat);
  if (!chat.complete && scroller.scrollTop < LOAD_OLDER_PX) loadOlder();
}

/**
 * Sends `text` (after the sends before it); if the client refuses it, says why in
 * `errorSlot` and puts it back in the composer if that is still empty.
 * @param {string} id
 * @param {string} text
 * @param {HTMLTextAreaElement} textarea
 * @param {HTMLElement} errorSlot
 */
function sendMessage(id, text, textarea, errorSlot) {
  clearTimeout(draftTimer);
  const api = client();
  const under = sending.get(id) ?? { count: 0, done: Promise.resolve(), text: "" };
  under.count += 1;
  under.text = "";
  sending.set(id, under);
  if (ui.chat?.id === id) ui.chat.draft = text; // What the draft holds now.
  const pendingTag = keepPendingSend(id, text);
  unsealed += 1;
  const sealed = inOrder(() => api.keepDraftForSend(id, text))
    .catch((err) => {
      if (codeOf(err) !== ErrorCode.Locked && codeOf(err) !== ErrorCode.UnknownConversation) console.warn("Could not keep the message as a draft while it is sent", err);
    })
    .finally(() => (unsealed -= 1));
  // Sent once its text is sealed, so that the draft's mark comes before the message.
  const stored = sealed.then(() =>
    engine.send(id, text, (err) => {
      const code = codeOf(err);
      errorSlot.textContent =
        code === ErrorCode.MessageTooLong ? "This message is too long. Split it into shorter ones." : `Not sent: ${errorText(err)}`;
      if (textarea.isConnected && !textarea.value) {
        textarea.value = text;
        autosize(textarea);
        ui.chat?.limit.update();
      }
    }),
  );
  stored.finally(() => dropPendingSends(pendingTag ? [pendingTag] : []));
  under.done = stored.then(() => {
    under.count -= 1;
    if (under.count > 0) return;
    sending.delete(id);
    // Stored (or refused): the draft becomes the composer's text (empty: it goes).
    const chat = ui.chat;
    const textareaNow = chat?.id === id ? chat.composer.querySelector("textarea") : null;
    const keep = textareaNow && !textareaNow.disabled ? textareaNow.value : under.text;
    if (chat?.id === id) chat.draft = keep;
    return storeDraft(id, keep);
  });
}

/** The chat's banner: why its messages are not going out (it replaces the top bar's notice). */
export function updateChatBanner() {
  const chat = ui.chat;
  if (!chat) return;
  const c = engine.byId(chat.id);
  let text = "";
  const problem = c ? engine.mailboxProblem(c, c.connecting || chat.unsent) : null;
  if (engine.storageFull.size > 0) text = `New messages can't be saved: ${STORAGE_FULL_NEW}`;
  else if (!navigator.onLine) text = "Offline. Your messages wait on this device and go out when you're back online.";
  else if (c && problem === "wrong") text = `${wrongMailboxText(c.mailbox)} Messages can't be delivered: ask ${c.name} for a new invite.`;
  else if (c && problem === "refused")
    text = `The mailbox at ${hostOf(c.mailbox)} answers but refuses to store messages right now. Hush keeps trying; your messages are kept and sent when it takes them.`;
  else if (c && problem === "unreachable")
    text = `Can't reach the mailbox at ${hostOf(c.mailbox)}. Hush keeps trying; your messages are kept and sent when it answers.`;
  else if (c?.connecting) text = `Connecting to ${c.name}… Your answer to the invite is on its way to the mailbox; messages you write are sent after it.`;
  if (chat.banner.textContent !== text) chat.banner.textContent = text;
  chat.banner.hidden = !text;
  // The chat's own notice replaces the one in the top bar.
  document.body.dataset.banner = text ? "yes" : "no";
}

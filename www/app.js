// Hush web app: screens, conversation list, chat, and the poll/flush loop over the wasm client.
//
// The client (./pkg/hush.js) owns every secret and every stored byte; this file only decides
// what to show and when to call it. History is the source of truth: the chat shows what
// client.historyPage() read back from storage, never what a poll or a send returned. It reads
// a page at a time: the newest page on opening, the page before as the person scrolls up, and
// after a poll, a send or a flush only the newest end (new entries are appended, shown ones
// get their status), so a long history costs what one screen of it costs.
//
// Several tabs of one profile share its database: each tab posts a notice to the others after
// it commits something (see "Other tabs"), and they re-read what changed.
//
// Each conversation also has a subscription (./subscriptions.js): a WebSocket to its mailbox
// that says "poll now" when something is stored at the addresses its next poll fetches. While
// it is live, polls slow to a safety pace; without it, polling alone delivers (see "Polling
// and the outbox").

import init, { HushClient, ErrorCode, qrSvg, clientVersion } from "./pkg/hush.js";
import { h, replace, field, checkbox, setFieldError, formatTime } from "./dom.js";
import { startScanner, canScan } from "./scanner.js";
import { mailboxUrl, setMailboxUrl, normaliseMailboxUrl, siteUrl, hostOf, choice, setChoice } from "./settings.js";
import { Subscriptions } from "./subscriptions.js";
import { showing, shownInSomeTab } from "./presence.js";
import { unlockInWorker, createVaultInWorker, NOT_ENOUGH_MEMORY } from "./unlock.js";
import { limitComposer } from "./composer.js";
import { startServiceWorker, askPersistentStorage, persistentStorageSection } from "./pwa.js";
import { startNavigation, screenShown, goBack } from "./navigation.js";
import { Previews } from "./previews.js";
import { placeDaySeparators, atEachMidnight } from "./days.js";
import { messageText, addMessageMenu, closeMenu, copyText, replyWithQuote } from "./message-menu.js";
import { ChatSearch } from "./chat-search.js";
import { AutoLock, autoLockSetting } from "./autolock.js";

const $ = (id) => document.getElementById(id);
const els = {
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
  dialog: $("dialog"),
  status: $("status"),
  announcer: $("announcer"),
};

/** The IndexedDB database of this profile's vault (also names the channel to other tabs). */
const DB_NAME = "hush";
/** Minimum passphrase length we accept when creating a vault. */
const MIN_PASSPHRASE = 8;
/** Retry delays for the outbox while something is pending (ms), then the last one repeats. */
const FLUSH_BACKOFF = [1_500, 3_000, 5_000, 8_000];
/** Longest a flush timer sleeps before comparing its due time with the clock again. */
const FLUSH_RECHECK_MS = 5_000;

const app = {
  /** @type {HushClient | null} */
  client: null,
  /** Conversation summaries, most recent first. */
  conversations: [],
  /** The current screen: { name, id? }. */
  screen: { name: "loading" },
  /** An invite link that arrived in the URL fragment, until it is used. */
  incomingInvite: null,
  /** Bumped on every lock: timers and callbacks of an older generation do nothing. */
  generation: 0,
  pollTimers: new Map(),
  polling: new Set(),
  /** Conversations pushed to while their poll ran: polled again right after it. */
  pollAgain: new Set(),
  /** Conversations subscribed since unlocking (their watch set asked for at least once). */
  subscribed: new Set(),
  /** Per conversation, the latest watch-set request: an older answer arriving later is dropped. */
  watchTurns: new Map(),
  /** Mailboxes (base URLs) whose last request failed. */
  unreachable: new Set(),
  /** Mailboxes (base URLs) that answered 404: no Hush mailbox at that address. */
  wrongMailbox: new Set(),
  /** Conversations whose last poll could not store what it read: this browser's storage is full. */
  storageFull: new Set(),
  /** Blobs waiting in the outbox after the last flush. */
  pending: 0,
  flushError: false,
  /** The ErrorCode of the last flush's failure (MailboxNotFound: a wrong mailbox address). */
  flushErrorCode: null,
  flushing: null,
  flushAgain: false,
  flushTimer: 0,
  /** When (ms since the epoch, this device's clock) the scheduled flush is due; Infinity: none. */
  flushDue: Infinity,
  flushFailures: 0,
  /** Sends run one after another, in the order they were typed. */
  sendQueue: Promise.resolve(),
  /**
   * The open chat: { id, list, scroller, items: Map<seq, li>, oldest and newest seq shown,
   * complete (the oldest entry is shown), unsentSeqs, token }.
   */
  chat: null,
  /** Stops the camera when the join screen goes away. */
  stopCamera: null,
  /** Object URL of the QR image shown, revoked when the screen changes. */
  qrUrl: null,
  qrUrlPending: null,
};

const codeOf = (err) => (err && typeof err.code === "number" ? err.code : ErrorCode.Internal);
const visible = () => document.visibilityState === "visible";
const byId = (id) => app.conversations.find((c) => c.id === id);

// ---------------------------------------------------------------------------------------------
// Boot

async function boot() {
  // An invite link opened directly: keep it in memory and take it out of the address bar and
  // the history right away, so the invite secret does not linger there.
  takeInviteFromUrl();
  startServiceWorker();
  startNavigation(showFromHistory);
  try {
    await init();
    app.client = withNotices(await HushClient.open(DB_NAME));
    listenToOtherTabs();
    els.status.textContent = `Client ready (v${clientVersion()}). Messages are encrypted on this device.`;
    document.body.dataset.state = "ready";
  } catch (err) {
    document.body.dataset.state = "error";
    els.status.textContent = "This browser could not start the Hush client.";
    showMessageScreen(
      "Hush can't start here",
      "This browser could not start the Hush client. It needs WebAssembly and IndexedDB (private windows in some browsers turn IndexedDB off).",
    );
    console.error(err);
    return;
  }
  els.lock.addEventListener("click", () => lock());
  els.settings.addEventListener("click", () => showSettings());
  els.newConv.addEventListener("click", () => showNewConversation());
  els.join.addEventListener("click", () => showJoin());
  document.addEventListener("keydown", (event) => {
    // Ctrl+F (Cmd+F) in a chat searches the conversation, not the page.
    if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "f" && app.chat?.search) {
      event.preventDefault();
      app.chat.search.open();
    }
  });
  window.addEventListener("online", onNetworkChange);
  window.addEventListener("offline", onNetworkChange);
  document.addEventListener("visibilitychange", onVisibilityChange);
  // An invite link pasted into the address bar of an open Hush tab only changes the fragment.
  window.addEventListener("hashchange", () => {
    if (!takeInviteFromUrl()) return;
    if (app.client.isUnlocked) {
      const link = app.incomingInvite;
      app.incomingInvite = null;
      showJoin(link);
    } else if (app.screen.name === "unlock") {
      showUnlock();
    } else if (app.screen.name === "setup") {
      showSetup();
    }
  });
  updateNetStatus();

  let hasVault = false;
  try {
    hasVault = await app.client.hasVault();
  } catch (err) {
    showMessageScreen("Storage is unavailable", storageMessage(err));
    return;
  }
  if (hasVault) showUnlock();
  else showSetup();
}

/**
 * `#` written as `%23` (or `%2523`) by a chat app or mail client, followed by invite
 * characters: the invite arrived in the path or query instead of the fragment (the host
 * serves the app for such paths, docs/HOSTING.md).
 */
const ENCODED_HASH = /%(?:25)*23(?=[A-Za-z0-9_-])/i;

/** Moves an invite in the URL into memory and out of the address bar and history. */
function takeInviteFromUrl() {
  if (location.hash.length > 1) {
    app.incomingInvite = location.href;
    history.replaceState(null, "", location.pathname + location.search);
    return true;
  }
  const where = location.pathname + location.search;
  const encoded = ENCODED_HASH.exec(where);
  if (!encoded) return false;
  app.incomingInvite = location.href;
  // Back to the site's own address: what came before the `%23`.
  history.replaceState(null, "", where.slice(0, encoded.index).replace(/\?$/, "") || "/");
  return true;
}

function storageMessage(err) {
  if (codeOf(err) === ErrorCode.StorageFull) return STORAGE_FULL;
  return codeOf(err) === ErrorCode.Storage
    ? "This browser refused to let Hush store data (IndexedDB). Private windows and some privacy settings do that. Hush needs it to keep your keys."
    : "Something went wrong while opening Hush's storage. Reload the page to try again.";
}

const isStorageError = (err) => codeOf(err) === ErrorCode.Storage || codeOf(err) === ErrorCode.StorageFull;

/** What to do when this browser's storage for the site is full. */
/** The banner while polls can't store what they read. */
const STORAGE_FULL_NEW =
  "this browser's storage for Hush is full. Free some space on this device (delete files or apps you don't need, or clear other sites' data in the browser's settings). They wait on the mailbox and appear here once there is room, but the mailbox keeps them only for a few days.";

const STORAGE_FULL =
  "This browser's storage for Hush is full. Free some space: delete files or apps you don't need, or clear other sites' data in the browser's settings (not Hush's: that would erase your conversations).";

// ---------------------------------------------------------------------------------------------
// Screens

/** Puts `content` in the main view and records the screen. `pane` is what phones show. */
function setScreen(name, content, { id = null, pane = "detail", focus = null } = {}) {
  leaveScreen();
  const previous = app.screen;
  app.screen = { name, id };
  screenShown(app.screen, previous, Boolean(app.client?.isUnlocked));
  document.body.dataset.screen = name;
  document.body.dataset.pane = pane;
  replace(els.view, content);
  markCurrentInList();
  const target = focus ?? els.view.querySelector("h1, h2");
  if (target) {
    if (!target.hasAttribute("tabindex") && /^H[12]$/.test(target.tagName)) target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
}

/** Shows the screen of a history entry (Back, Forward): the list if its conversation is gone. */
function showFromHistory({ name, id }) {
  if (els.dialog.open) els.dialog.close();
  const shows = {
    chat: openConversation,
    invite: openConversation,
    "invite-taken": openConversation,
    safety: showSafety,
    new: showNewConversation,
    join: () => showJoin(),
    settings: showSettings,
  };
  if (shows[name] && (!id || byId(id))) shows[name](id);
  else showHome();
}

function leaveScreen() {
  if (app.stopCamera) {
    app.stopCamera();
    app.stopCamera = null;
  }
  if (app.qrUrl) {
    URL.revokeObjectURL(app.qrUrl);
    app.qrUrl = null;
  }
  app.chat?.stopDays();
  app.chat = null;
  updateReading();
  els.sidebarTitle.removeAttribute("aria-level");
  els.announcer.textContent = "";
  document.body.dataset.banner = "no";
}

/**
 * Tells the client which conversation is open in front (none when the page is hidden): its
 * acknowledgements wait for a reply to carry them (20–40 s instead of 2–8 s).
 */
function updateReading() {
  const front = app.client?.isUnlocked && visible() && app.chat ? app.chat.id : null;
  showing(front);
  if (!app.client?.isUnlocked) return;
  app.client.setReading(front);
}

function setUnlockedChrome(unlocked) {
  els.actions.hidden = !unlocked;
  els.sidebar.hidden = !unlocked;
  document.body.dataset.unlocked = unlocked ? "yes" : "no";
}

function showMessageScreen(title, text) {
  setUnlockedChrome(false);
  setScreen("message", h("section", { class: "card center" }, h("h1", { text: title }), h("p", { text })));
}

function intro() {
  return h(
    "ul",
    { class: "points" },
    h("li", { text: "No account, no phone number, no email." }),
    h("li", { text: "Messages are encrypted here and sent to fresh addresses only the two of you can compute." }),
    h("li", { text: "Meet once: show a QR code or share a link, then compare a short safety code." }),
  );
}

function showSetup() {
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
    try {
      await createVaultInWorker(app.client, value);
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
      else setFieldError(pass, isStorageError(err) ? storageMessage(err) : `Could not create it: ${err.message}`);
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
      app.incomingInvite ? h("p", { class: "note", text: "You opened an invite link. Choose a passphrase first; then you can accept the invite." }) : null,
      h("h2", { class: "small-title", text: "Choose a passphrase for this device" }),
      form,
    ),
    { pane: "detail", focus: pass.input },
  );
}

/** Password managers file a passphrase under a user name; Hush has none, so it is "Hush". */
function usernameForManagers() {
  return h("input", { type: "text", name: "username", autocomplete: "username", value: "Hush", hidden: true, tabindex: "-1" });
}

/** A password field with a "Show" toggle, so a passphrase can be checked before it is used. */
function passwordWithToggle(f) {
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

function showUnlock() {
  setUnlockedChrome(false);
  const pass = field({ label: "Passphrase", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary wide", text: "Unlock" });
  const busy = h("p", { class: "busy", role: "status", "aria-live": "polite" });
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
    try {
      await unlockInWorker(app.client, pass.input.value);
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
        setFieldError(pass, isStorageError(err) ? storageMessage(err) : `Could not unlock: ${err.message}`);
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
      app.incomingInvite ? h("p", { class: "note", text: "You opened an invite link. Unlock first; then you can accept it." }) : null,
    ),
    { pane: "detail", focus: pass.input },
  );
}

async function afterUnlock() {
  app.generation += 1;
  // A setting of this browser, not of the vault: the client forgets it when locked.
  app.client.setDeleteAfterRead(choice("deleteAfterRead"));
  setUnlockedChrome(true);
  await refreshList(); // Subscribes each conversation.
  for (const c of app.conversations) schedulePoll(c.id, 0);
  flushSoon(0);
  flushAtFromClient();
  autoLock.start();
  const reopen = app.reopen;
  app.reopen = null;
  if (app.incomingInvite) {
    const link = app.incomingInvite;
    app.incomingInvite = null;
    showJoin(link);
  } else if (reopen && byId(reopen)?.joined) {
    // Locked with a chat open (by hand or after the idle time): back to it.
    showChat(reopen);
  } else {
    showHome();
  }
}

/** Locks; `idleMinutes`: locked by the auto-lock after that long without activity. */
function lock(idleMinutes = null) {
  // The open chat is reopened after unlocking in this tab (kept in memory only).
  app.reopen = app.screen.name === "chat" ? app.screen.id : null;
  autoLock.stop();
  closeMenu(false);
  previews.clear();
  app.generation += 1;
  for (const timer of app.pollTimers.values()) clearTimeout(timer);
  app.pollTimers.clear();
  app.pollAgain.clear();
  clearTimeout(app.flushTimer);
  app.flushDue = Infinity;
  app.client.lock();
  subs.closeAll();
  app.subscribed.clear();
  app.watchTurns.clear();
  if (els.dialog.open) els.dialog.close();
  els.dialog.replaceChildren(); // A closed dialog keeps its content: a name, a message.
  document.title = "Hush";
  app.conversations = [];
  els.list.replaceChildren();
  app.unreachable.clear();
  app.wrongMailbox.clear();
  app.storageFull.clear();
  app.flushError = false;
  app.flushErrorCode = null;
  updateNetStatus();
  showUnlock();
  if (typeof idleMinutes === "number") {
    els.announcer.textContent = `Hush locked itself after ${idleMinutes === 60 ? "1 hour" : `${idleMinutes} minutes`} without activity.`;
  }
}

/** Locks after the idle time chosen in Settings. */
const autoLock = new AutoLock((minutes) => {
  if (app.client?.isUnlocked) lock(minutes);
});

function showHome() {
  setScreen(
    "home",
    h(
      "section",
      { class: "card center empty-state" },
      h("h2", { text: app.conversations.length ? "Pick a conversation" : "Start your first conversation" }),
      h("p", {
        text: app.conversations.length
          ? "Choose one from the list, start a new one, or join someone else's."
          : "Use New conversation to invite someone in person, or Join if someone showed you their code or sent you a link.",
      }),
    ),
    { pane: "list" },
  );
  // Home is the conversation list (all a phone shows of it): its title is the screen's h1.
  els.sidebarTitle.setAttribute("aria-level", "1");
}

// ---------------------------------------------------------------------------------------------
// Conversation list

/** The last message of each conversation, shown in the list. */
const previews = new Previews();

/** Reads the list again (`sentIn`: a conversation just written to, whose preview is read again). */
async function refreshList(sentIn = null) {
  const generation = app.generation;
  let list;
  try {
    list = await app.client.listConversations();
    await previews.refresh(app.client, list, sentIn);
  } catch (err) {
    if (codeOf(err) !== ErrorCode.Locked) console.warn("Could not list conversations", err.message);
    return;
  }
  if (generation !== app.generation) return;
  app.conversations = list;
  // Problems of deleted conversations, or of mailboxes none uses any more, are gone with them.
  const mailboxes = new Set(list.map((c) => c.mailbox));
  const ids = new Set(list.map((c) => c.id));
  let gone = false;
  for (const set of [app.wrongMailbox, app.unreachable]) for (const m of set) if (!mailboxes.has(m)) gone = set.delete(m);
  for (const id of app.storageFull) if (!ids.has(id)) gone = app.storageFull.delete(id);
  // Deleted conversations (here or in another tab) lose their socket; new ones get one.
  for (const id of app.subscribed) {
    if (ids.has(id)) continue;
    app.subscribed.delete(id);
    subs.close(id);
  }
  for (const c of list) if (!app.subscribed.has(c.id)) subscribe(c.id);
  renderList();
  if (gone) updateNetStatus();
  showConnectedWhenDelivered();
  if (app.chat) renderNotices(app.chat);
}

function describe(c) {
  if (c.inviteTaken) return "Invite already used by someone else";
  const wrong = app.wrongMailbox.has(c.mailbox) ? "Wrong mailbox address" : "";
  if (!c.joined) {
    return c.expiresAt && c.expiresAt < Date.now() ? "Invite expired" : wrong || "Waiting for them to join";
  }
  if (c.ended === "peerRestored") return "Ended: their device was restored from an older copy";
  if (c.ended === "diverged") return "Ended: a device went back to an older copy";
  if (c.ended) return "Ended: made with an older version of Hush";
  if (wrong) return wrong;
  if (app.storageFull.has(c.id)) return "New messages can't be saved: storage full";
  if (c.interference) return "Someone may be interfering with this conversation";
  if (c.unreadable) return "Their messages can't be read on this device";
  if (c.rollback) return "This device was restored from an older copy";
  if (c.connecting) return app.unreachable.has(c.mailbox) ? "Connecting… (mailbox unreachable, retrying)" : "Connecting…";
  if (app.unreachable.has(c.mailbox)) return "Mailbox unreachable, retrying";
  if (previews.has(c.id)) return ""; // The last message says it.
  return c.lastActivity ? `Last activity ${formatTime(c.lastActivity)}` : "";
}

function renderList() {
  const items = app.conversations.map((c) => {
    const badge = c.unread > 0 ? h("span", { class: "badge" }, String(c.unread), h("span", { class: "sr-only", text: " unread" })) : null;
    const button = h(
      "button",
      { type: "button", class: "conv", "data-id": c.id, onclick: () => openConversation(c.id) },
      h("span", { class: "avatar", "aria-hidden": "true", text: initial(c.name) }),
      h("span", { class: "conv-main" }, h("span", { class: "conv-name", dir: "auto", text: c.name }), h("span", { class: "conv-sub", text: describe(c) }), previews.render(c.id)),
      badge,
    );
    return h("li", { class: c.joined ? "" : "waiting" }, button);
  });
  // Redrawing must not take the keyboard focus away from the list.
  const focused = els.list.contains(document.activeElement) ? document.activeElement.dataset.id : null;
  replace(els.list, items);
  if (focused) els.list.querySelector(`button.conv[data-id="${CSS.escape(focused)}"]`)?.focus();
  els.listEmpty.hidden = app.conversations.length > 0;
  markCurrentInList();
  const unread = app.conversations.reduce((n, c) => n + c.unread, 0);
  document.title = unread > 0 ? `(${unread}) Hush` : "Hush";
  renderNotifyOffer();
}

const graphemes = typeof Intl.Segmenter === "function" ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

/**
 * The avatar letter: the name's first user-perceived character (a whole emoji with its
 * modifiers and joiners, a flag, a letter with its accents), capitalised when that keeps it
 * one character ("ß" stays "ß", not "SS").
 */
function initial(name) {
  // Leading white space and invisible format characters (zero-width space, direction marks)
  // are not what a reader sees first.
  const trimmed = name.replace(/^[\s\p{Cf}]+/u, "").trim();
  if (!trimmed) return "?";
  const first = graphemes
    ? graphemes.segment(trimmed)[Symbol.iterator]().next().value.segment
    : String.fromCodePoint(trimmed.codePointAt(0));
  const upper = first.toUpperCase();
  return [...upper].length === [...first].length ? upper : first;
}

function markCurrentInList() {
  for (const button of els.list.querySelectorAll("button.conv")) {
    if (button.dataset.id === app.screen.id) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

function openConversation(id) {
  const c = byId(id);
  if (!c) return;
  if (c.inviteTaken) showInviteTaken(id);
  else if (c.joined) showChat(id);
  else showInvite(id);
}

/** We joined, but someone else had already joined with the same invite. */
function showInviteTaken(id) {
  const c = byId(id);
  if (!c) return showHome();
  setScreen(
    "invite-taken",
    h(
      "section",
      { class: "card" },
      backButton(),
      h("h1", { text: `This invite was already used` }),
      h("p", {
        role: "alert",
        class: "state warn",
        text: `Someone joined with ${c.name}'s invite before you, so you are not connected to ${c.name}. Whoever joined first may have copied the invite.`,
      }),
      h("p", { text: `Meet ${c.name} again and ask for a new invite in person. Nothing you write here can reach them.` }),
      h("div", { class: "actions" }, h("button", { type: "button", class: "danger", text: "Delete conversation", onclick: () => confirmDelete(id) })),
    ),
    { id },
  );
}

// ---------------------------------------------------------------------------------------------
// New conversation and invite

function showNewConversation() {
  const name = field({ label: "Their name", hint: "Only you see this name.", autocomplete: "off", required: true, maxlength: 60, dir: "auto" });
  const submit = h("button", { type: "submit", class: "primary", text: "Create invite" });
  const mailbox = mailboxUrl();
  async function onSubmit(event) {
    event.preventDefault();
    const value = name.input.value.trim();
    if (!value) {
      setFieldError(name, "Give this conversation a name.");
      name.input.focus();
      return;
    }
    submit.disabled = true;
    try {
      const { id } = await app.client.createInvite(siteUrl(), mailbox, value);
      await refreshList();
      schedulePoll(id, 0);
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

/** A conversation's name inside a sentence, isolated so a right-to-left name keeps its order. */
function named(name) {
  return h("bdi", { text: name });
}

function backButton() {
  return h("button", { type: "button", class: "ghost back", text: "Back", onclick: () => goBack(showHome) });
}

function showInvite(id) {
  const c = byId(id);
  if (!c || !c.inviteLink) return showHome();
  let img = null;
  try {
    const svg = qrSvg(c.inviteLink);
    app.qrUrlPending = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
    img = h("img", { class: "qr", src: app.qrUrlPending, alt: "QR code of the invite link", width: 256, height: 256 });
  } catch (err) {
    img = h("p", { class: "field-error", text: "This link is too long for a QR code; share the link instead." });
  }
  const linkId = "invite-link";
  const link = h("input", { id: linkId, class: "mono", type: "text", readonly: true, value: c.inviteLink });
  const copied = h("span", { class: "copied", role: "status", "aria-live": "polite" });
  const copy = h("button", {
    type: "button",
    text: "Copy",
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(link.value);
      } catch {
        link.select();
        document.execCommand("copy");
      }
      copied.textContent = "Link copied";
      setTimeout(() => (copied.textContent = ""), 3000);
    },
  });
  link.addEventListener("focus", () => link.select());
  const expired = c.expiresAt && c.expiresAt < Date.now();
  const waiting = h(
    "p",
    { class: expired ? "state warn" : "state waiting", role: "status", "aria-live": "polite", id: "invite-state" },
    expired
      ? "This invite has expired. Delete it and create a new one."
      : `Waiting for ${c.name} to join… This invite works once and expires ${c.expiresAt ? formatTime(c.expiresAt) : "in 24 hours"}.`,
  );
  setScreen(
    "invite",
    h(
      "section",
      { class: "card invite" },
      backButton(),
      h("h1", {}, "Invite ", named(c.name)),
      h("p", { text: `Let ${c.name} scan this code with Hush (Join, then Scan QR code), or send them the link through a channel you trust.` }),
      h("div", { class: "qr-frame" }, img),
      h("label", { class: "label", for: linkId, text: "Invite link" }),
      h("div", { class: "with-action" }, link, copy),
      copied,
      waiting,
      h("p", { class: "fine", text: "Anyone who gets this link before them could join in their place: the safety code you compare next shows if that happened." }),
      h("div", { class: "actions" }, h("button", { type: "button", class: "danger ghost", text: "Delete invite", onclick: () => confirmDelete(id) })),
    ),
    { id },
  );
  app.qrUrl = app.qrUrlPending ?? null;
  app.qrUrlPending = null;
  if (!expired) {
    schedulePoll(id, 0); // Waiting in front of this screen: poll at the open pace.
    warnIfClockWrong(waiting);
  }
}

/**
 * The invite's expiry comes from this device's clock: when that clock is off, say so under
 * the waiting notice (the other person may be told the invite expired, or it lasts longer).
 */
async function warnIfClockWrong(after) {
  const offset = await clockOffsetFromSite();
  if (offset === null || Math.abs(offset) < CLOCK_WRONG_MS || !after.isConnected) return;
  after.after(
    h("p", {
      class: "state warn",
      role: "alert",
      text:
        `This device's clock is ${clockError(offset)} the time at ${location.host}. The invite's expiry is set by it, so the other person may be told it has expired. ` +
        "Correct the date, time and time zone, then delete this invite and make a new one.",
    }),
  );
}

/** "about 5 hours ahead of" / "about 3 days behind" for a clock offset in ms. */
function clockError(offsetMs) {
  const hours = Math.abs(offsetMs) / 3_600_000;
  const amount = hours < 72 ? `about ${Math.round(hours)} hours` : `about ${Math.round(hours / 24)} days`;
  return `${amount} ${offsetMs > 0 ? "ahead of" : "behind"}`;
}

function showSafety(id, { justJoined = false } = {}) {
  const c = byId(id);
  if (c?.inviteTaken) return showInviteTaken(id);
  if (!c || !c.safetyCode) return showHome();
  if (c.connecting) return showConnecting(id, { justJoined });
  setScreen(
    "safety",
    h(
      "section",
      { class: "card safety" },
      justJoined ? null : h("button", { type: "button", class: "ghost back", text: "Back", onclick: () => showChat(id) }),
      h("h1", {}, justJoined ? "Connected with " : "Safety code with ", named(c.name)),
      h("p", { text: `Compare this code with the one ${c.name} sees, face to face or on a call you trust.` }),
      h("output", { class: "code", "aria-label": "Safety code", text: c.safetyCode }),
      h("p", {
        class: "fine",
        text: "If the codes match, nobody sits between you. If they differ, someone else used the invite: delete this conversation and make a new invite in person.",
      }),
      verification(c, justJoined),
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", text: justJoined ? "Start chatting" : "Back to chat", onclick: () => showChat(id) })),
    ),
    { id },
  );
}

/**
 * The safety screen's verified mark: "Mark as verified" once the codes were compared and
 * match, or when it was marked and a way to remove the mark. Kept in the vault only.
 */
function verification(c, justJoined) {
  const status = h("p", { class: "verified-state", role: "status" });
  const button = h("button", { type: "button", class: c.verifiedAt ? "ghost" : "" });
  if (c.verifiedAt) {
    status.append(h("span", { class: "verified-mark", "aria-hidden": "true", text: "✓ " }), `You marked this code as verified on ${new Intl.DateTimeFormat(undefined, { dateStyle: "medium" }).format(c.verifiedAt)}.`);
    button.textContent = "Remove the mark";
  } else {
    status.textContent = "Not marked as verified yet.";
    button.textContent = "The codes match: mark as verified";
  }
  button.onclick = async () => {
    button.disabled = true;
    try {
      await app.client.setVerified(c.id, !c.verifiedAt);
      await refreshList();
      showSafety(c.id, { justJoined });
      document.querySelector(".verification button")?.focus();
    } catch (err) {
      button.disabled = false;
      status.textContent = `Could not save the mark: ${err.message}`;
    }
  };
  return h("div", { class: "verification" }, status, button);
}

/**
 * We joined, but our answer to the invite (the hello) is not on the mailbox yet: the other
 * person cannot see us, so nothing says "Connected" and no safety code is shown (one compared
 * now could not match theirs: they have none yet). Redrawn as "Connected" once a flush stores
 * the hello (showConnectedWhenDelivered).
 */
function showConnecting(id, { justJoined = false } = {}) {
  const c = byId(id);
  if (!c) return showHome();
  const state = h("p", { class: "state waiting", role: "status", "aria-live": "polite", id: "connect-state" });
  setScreen(
    "safety",
    h(
      "section",
      { class: "card safety" },
      justJoined ? null : h("button", { type: "button", class: "ghost back", text: "Back", onclick: () => showChat(id) }),
      h("h1", {}, "Connecting to ", named(c.name), "…"),
      state,
      h("p", { class: "fine", text: `Once it is there, you both see a safety code to compare. Messages you write now are sent after it.` }),
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", text: justJoined ? "Start chatting" : "Back to chat", onclick: () => showChat(id) })),
    ),
    { id },
  );
  app.screen.connecting = true;
  app.screen.justJoined = justJoined;
  updateConnectingState();
}

/** The connecting screen's line: on its way, or why it is not getting there. */
function updateConnectingState() {
  const state = app.screen.connecting ? document.getElementById("connect-state") : null;
  const c = state && byId(app.screen.id);
  if (!c) return;
  let text = `Your answer to ${c.name}'s invite is on its way to the mailbox at ${hostOf(c.mailbox)}. ${c.name} can't see you until it is there.`;
  if (connectProblem(c) === "wrong") text = `${wrongMailboxText(c.mailbox)} Your answer to ${c.name}'s invite can't be delivered: ask ${c.name} for a new invite.`;
  else if (connectProblem(c) === "unreachable") text = `Can't reach the mailbox at ${hostOf(c.mailbox)} to deliver your answer to ${c.name}'s invite. Hush keeps trying.`;
  if (state.textContent !== text) state.textContent = text;
  state.className = connectProblem(c) ? "state warn" : "state waiting";
}

/**
 * Why a conversation's mailbox is failing it, if it is: "wrong" (it answered 404) or
 * "unreachable". `outgoing`: the conversation has blobs waiting (the hello, unsent messages),
 * so the last flush's failure may be its own (a flush's error names no mailbox).
 */
function connectProblem(c, outgoing = c.connecting) {
  if (app.wrongMailbox.has(c.mailbox)) return "wrong";
  if (outgoing && app.flushError && app.flushErrorCode === ErrorCode.MailboxNotFound) return "wrong";
  if (app.unreachable.has(c.mailbox) || (outgoing && app.flushError)) return "unreachable";
  return null;
}

/**
 * The connecting screen becomes the "Connected" one once the hello is on the mailbox (checked
 * whenever the list is read again: after this tab's flush, or another tab's).
 */
function showConnectedWhenDelivered() {
  if (!app.screen.connecting) return;
  const c = byId(app.screen.id);
  if (c && !c.connecting) showSafety(c.id, { justJoined: app.screen.justJoined });
}

/** A mailbox address that answered 404, said plainly. */
function wrongMailboxText(url) {
  return `Wrong mailbox address: there is no Hush mailbox at ${url} (it answered "not found").`;
}

// ---------------------------------------------------------------------------------------------
// Join

function showJoin(prefill = "") {
  const name = field({ label: "Their name", hint: "Only you see this name.", autocomplete: "off", required: true, maxlength: 60, dir: "auto" });
  const link = field({
    label: "Invite link",
    hint: "Paste the link they sent you, or scan their QR code.",
    autocomplete: "off",
    spellcheck: "false",
    class: "mono",
    value: prefill,
  });
  const submit = h("button", { type: "submit", class: "primary", text: "Accept invite" });
  const camState = h("p", { class: "state", role: "status", "aria-live": "polite" });
  const video = h("video", { class: "camera", muted: true, playsinline: true, "aria-label": "Camera preview", hidden: true });
  video.muted = true;
  const scan = h("button", { type: "button", text: "Scan QR code", onclick: startCamera });
  const stopCam = h("button", { type: "button", class: "ghost", text: "Stop camera", hidden: true, onclick: stopCamera });
  if (!canScan()) scan.hidden = true;

  async function startCamera() {
    scan.disabled = true;
    camState.textContent = "Opening the camera…";
    video.hidden = false;
    let read = false;
    const onRead = (text) => {
      read = true;
      app.stopCamera = null;
      video.hidden = true;
      stopCam.hidden = true;
      scan.disabled = false;
      link.input.value = text;
      setFieldError(link, null);
      camState.textContent = "Invite read from the QR code.";
      if (name.input.value.trim()) submit.focus();
      else name.input.focus();
    };
    try {
      const stop = await startScanner(video, onRead);
      if (read) return;
      if (!video.isConnected) return stop(); // The screen changed while the camera opened.
      app.stopCamera = stop;
      stopCam.hidden = false;
      camState.textContent = "Point the camera at the QR code on their screen.";
    } catch (err) {
      scan.disabled = false;
      video.hidden = true;
      camState.textContent =
        err && err.name === "NotAllowedError"
          ? "Hush may not use the camera. Allow it in the browser's site settings, or paste the link instead."
          : "The camera could not be opened. Paste the link instead.";
    }
  }
  function stopCamera() {
    if (app.stopCamera) app.stopCamera();
    app.stopCamera = null;
    video.hidden = true;
    stopCam.hidden = true;
    scan.disabled = false;
    camState.textContent = "Camera stopped.";
  }

  /** The way to the conversation an invite already started (see alreadyJoined). */
  let openExisting = null;

  async function onSubmit(event) {
    event.preventDefault();
    const who = name.input.value.trim();
    const invite = link.input.value.trim();
    setFieldError(name, who ? null : "Give this conversation a name.");
    setFieldError(link, invite ? null : "Paste the invite link or scan the QR code.");
    openExisting?.remove();
    openExisting = null;
    if (!who) return name.input.focus();
    if (!invite) return link.input.focus();
    submit.disabled = true;
    try {
      const id = await app.client.join(invite, joinDefaultMailbox(invite), who);
      await refreshList();
      flushSoon(0);
      schedulePoll(id, 0);
      showSafety(id, { justJoined: true });
    } catch (err) {
      submit.disabled = false;
      const code = codeOf(err);
      if (code === ErrorCode.AlreadyJoined) return alreadyJoined(err.conversationId ?? null);
      const expired = code === ErrorCode.InviteExpired;
      setFieldError(link, expired ? expiredInvite(await clockOffsetFromSite()) : code === ErrorCode.OwnInvite ? OWN_INVITE : errorText(err));
      link.input.focus();
    }
  }

  /** This vault joined the invite before: say so, and lead to that conversation. */
  async function alreadyJoined(id) {
    await refreshList();
    const c = id && byId(id);
    if (!c) {
      setFieldError(link, "You already joined this invite, and the conversation it started was deleted. An invite works only once: ask them for a new one.");
      link.input.focus();
      return;
    }
    setFieldError(link, `You already joined this invite: it started your conversation with ${c.name}.`);
    openExisting = h("button", { type: "button", class: "primary", text: `Open the conversation with ${c.name}`, onclick: () => openConversation(c.id) });
    link.error.after(openExisting);
    openExisting.focus();
  }

  setScreen(
    "join",
    h(
      "section",
      { class: "card" },
      backButton(),
      h("h1", { text: prefill ? "You've been invited" : "Join a conversation" }),
      h("p", {
        text: prefill
          ? "Give this conversation a name, then accept the invite. You will both see a safety code to compare."
          : "Scan the QR code on the other person's screen, or paste the link they sent you.",
      }),
      h(
        "form",
        { class: "stack", novalidate: true, onsubmit: onSubmit },
        name.wrap,
        link.wrap,
        h("div", { class: "scan" }, h("div", { class: "actions" }, scan, stopCam), video, camState),
        submit,
      ),
    ),
    { focus: name.input },
  );
}

/** Opening an invite made on this device. */
const OWN_INVITE =
  "This is your own invite: it was made on this device, for the other person. Show them its QR code or send them the link; they open it on their device. Nothing was joined.";

/**
 * The mailbox for an invite that names none: the mailbox of the site the link points to. The
 * pasted text may be damaged the ways the client's parser undoes (protocol/src/invite.rs,
 * `Invite::from_link_fragment`): percent-encoded, wrapped in brackets or quotes, inside a
 * sentence. The site is the last http(s) URL before the invite's `#`.
 */
function joinDefaultMailbox(invite) {
  let text = invite;
  for (let round = 0; round < 3 && /%[0-9a-f]{2}/i.test(text); round++) {
    text = text.replace(/%([0-9a-f]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  }
  const hash = text.lastIndexOf("#");
  const before = hash >= 0 ? text.slice(0, hash) : text;
  // The last "http(s)://" starts the site's URL (a redirect's own URL comes before it).
  const start = [...before.matchAll(/https?:\/\//gi)].at(-1);
  // A URL holds no white space: a line break or space inside it (a mail client wrapping a
  // long line, even inside the host name) is dropped, never taken as its end.
  const joined = start && before.slice(start.index).replace(/[\s\u200b-\u200d\u2060\ufeff]+/g, "");
  const site = joined && /^[^"'<>()[\]{}“”‘’«»]+/.exec(joined);
  try {
    if (site) return new URL(site[0]).origin;
  } catch {
    // Not a URL after all.
  }
  return mailboxUrl(); // Only the fragment was pasted.
}

// ---------------------------------------------------------------------------------------------
// Chat

function showChat(id) {
  const c = byId(id);
  if (!c) return showHome();
  if (!c.joined) return showInvite(id);
  const list = h("ol", { class: "messages", "aria-label": "Conversation history" });
  // Older pages load as the history scrolls near its top, or with this button (keyboards,
  // screen readers).
  const earlier = h("button", { type: "button", class: "ghost earlier", text: "Show earlier messages", hidden: true, onclick: () => loadOlder() });
  const scroller = h("div", { class: "scroller" }, earlier, list);
  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop < LOAD_OLDER_PX) loadOlder();
  }, { passive: true });
  const banner = h("p", { class: "banner", role: "status", "aria-live": "polite" });
  const notices = h("div", { class: "notices" });
  const message = h("textarea", { id: "composer", rows: 1, "aria-label": "Message", placeholder: `Message ${c.name}`, dir: "auto", autocomplete: "off" });
  const sendError = h("p", { class: "field-error", role: "alert" });
  const send = h("button", { type: "submit", class: "primary", text: "Send" });
  const count = h("p", { class: "composer-count", hidden: true });
  const limit = limitComposer(message, { counter: count, send, announce: (text) => (els.announcer.textContent = text) });
  const form = h(
    "form",
    {
      class: "composer",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const text = message.value;
        if (!text.trim() || !limit.fits()) return;
        message.value = "";
        autosize(message);
        limit.update();
        sendError.textContent = "";
        sendMessage(id, text, message, sendError);
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
  message.addEventListener("input", () => autosize(message));
  const title = h("h1", { class: "chat-title", dir: "auto", text: c.name });
  if (c.verifiedAt) title.append(h("span", { class: "verified-mark", title: "Safety code verified", "aria-label": ", safety code verified", text: " ✓" }));
  const searchToggle = h("button", { type: "button", class: "ghost", text: "Search", "aria-expanded": "false", onclick: () => (search.isOpen ? search.close() : search.open()) });
  const search = new ChatSearch({ client: app.client, id, showEntry, toggle: searchToggle });
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
      copied,
      sendError,
      count,
      form,
    ),
    { id, focus: message },
  );
  app.chat = {
    id,
    list,
    scroller,
    earlier,
    banner,
    notices,
    composer: form,
    limit,
    shownNotices: null,
    title,
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
    search,
    copied,
    stopDays: atEachMidnight(() => placeDaySeparators(list)),
  };
  updateReading();
  updateChatBanner();
  renderNotices(app.chat);
  refreshChat();
  schedulePoll(id, 0);
}

// ---------------------------------------------------------------------------------------------
// Notices: what happened to a conversation that the person must know, in plain words, with
// what they can do. They stay until dismissed (interference, a restored device) or for good
// (a conversation that ended); a new event raises them again.

/** The notices of conversation `c`: [{ kind, title, text, actions: [{ text, onclick }] }]. */
function noticesOf(c) {
  const out = [];
  if (c.ended === "peerRestored") {
    out.push({
      kind: "ended",
      title: "This conversation has ended",
      text:
        `${c.name}'s device went back to an older copy of its data (a restored backup or profile, or a save undone by a power loss) after your last reply, so neither of you can read what the other sends now. ` +
        `Your messages stay readable here. Meet ${c.name} and start a new conversation; then you can delete this one.`,
      actions: [{ text: "New conversation", onclick: () => showNewConversation() }],
    });
  } else if (c.ended === "diverged") {
    out.push({
      kind: "ended",
      title: "This conversation has ended",
      text:
        `One of your two devices went back to an older copy of this conversation (a restored backup or profile, or a save undone by a power loss), or the mailbox kept altering messages, so neither of you can read what the other sends now. ` +
        `Your messages stay readable here. Meet ${c.name} and start a new conversation; then you can delete this one.`,
      actions: [{ text: "New conversation", onclick: () => showNewConversation() }],
    });
  } else if (c.ended) {
    out.push({
      kind: "ended",
      title: "This conversation has ended",
      text:
        `It was made with an older version of Hush, which the current one can't continue. Your messages stay readable here, but nothing more can be sent or received. ` +
        `To keep talking with ${c.name}, start a new conversation and invite them again; then you can delete this one.`,
      actions: [{ text: "New conversation", onclick: () => showNewConversation() }],
    });
  }
  if (c.interference) {
    const { undelivered = 0 } = c.interference;
    const lost =
      undelivered > 0
        ? `${undelivered === 1 ? "One of your messages" : `${undelivered} of your messages`} could not be delivered: someone else's data was put where ${undelivered === 1 ? "it" : "they"} should go. `
        : `Data that is not from ${c.name} was put where their messages should go. `;
    out.push({
      kind: "interference",
      title: "Someone is interfering with this conversation",
      text:
        lost +
        `Compare your safety code with ${c.name}'s in person or on a call you trust. If they differ, or this keeps happening, meet ${c.name} and start a new conversation.`,
      actions: [
        { text: "Show safety code", onclick: () => showSafety(c.id) },
        { text: "Dismiss", dismiss: "interference" },
      ],
    });
  }
  if (c.unreadable) {
    out.push({
      kind: "unreadable",
      title: `${c.name}'s messages can't be read on this device`,
      text:
        `This device was probably restored from an older copy of its data (a restored backup or profile, or a save undone by a power loss) after ${c.name} replied, so what ${c.name} sends now can't be read here, and what you send can't be read there. ` +
        `Hush has told ${c.name}'s device. Meet ${c.name} and start a new conversation; your messages stay readable here.`,
      actions: [{ text: "New conversation", onclick: () => showNewConversation() }],
    });
  }
  if (c.rollback) {
    // lostBlobs counts blobs (acknowledgements too) and is a lower bound: no number is said.
    out.push({
      kind: "rollback",
      title: "This device was restored from an older copy",
      text:
        `Hush found that this device went back to an older copy of its data (a restored backup or profile, or a save undone by a power loss). ` +
        `Messages you sent after that copy was made may be missing here; ${c.name} may have them. ` +
        `The conversation goes on safely: Hush skipped every key the older copy may have used, and sends again what ${c.name} may not have.`,
      actions: [{ text: "Dismiss", dismiss: "rollback" }],
    });
  }
  return out;
}

/** Shows the open chat's notices; a notice that appears while it is open is announced once. */
function renderNotices(chat) {
  const c = byId(chat.id);
  if (!c) return;
  const list = noticesOf(c);
  const key = JSON.stringify(list.map((n) => [n.kind, n.text]));
  const ended = Boolean(c.ended);
  for (const control of chat.composer.elements) control.disabled = ended;
  chat.composer.hidden = ended;
  chat.limit.update();
  if (chat.shownNotices === key) return;
  const before = chat.shownNotices === null ? null : new Set(JSON.parse(chat.shownNotices).map(([kind]) => kind));
  chat.shownNotices = key;
  replace(
    chat.notices,
    list.map((n) => {
      const titleId = `notice-${n.kind}`;
      return h(
        "section",
        { class: `notice notice-${n.kind}`, "aria-labelledby": titleId },
        h("h2", { id: titleId, text: n.title }),
        h("p", { text: n.text }),
        h(
          "div",
          { class: "actions" },
          n.actions.map((a) =>
            h("button", {
              type: "button",
              class: a.dismiss ? "ghost" : "",
              text: a.text,
              "aria-describedby": titleId,
              onclick: a.dismiss ? () => dismissNotice(c.id, a.dismiss) : a.onclick,
            }),
          ),
        ),
      );
    }),
  );
  // Announced when it appears while the chat is open (not on opening the chat).
  const fresh = before ? list.filter((n) => !before.has(n.kind)) : [];
  if (fresh.length) els.announcer.textContent = fresh.map((n) => `${n.title}. ${n.text}`).join("\n");
}

async function dismissNotice(id, kind) {
  try {
    await app.client.clearNotice(id, kind);
  } catch (err) {
    if (codeOf(err) !== ErrorCode.Locked) console.warn("Could not dismiss the notice", err.message);
    return;
  }
  await refreshList();
  app.chat?.composer.querySelector("textarea")?.focus();
}

function autosize(textarea) {
  textarea.rows = Math.min(6, Math.max(1, textarea.value.split("\n").length));
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
 */
const STATUS = {
  sending: { mark: "○", text: "Sending…", title: "Still on this device: it goes to the mailbox as soon as it can." },
  sent: { mark: "✓", text: "Sent", title: "On the mailbox. Not on their device yet: it arrives when they next open Hush." },
  delivered: { mark: "✓✓", text: "Delivered", title: "On their device: their Hush received it." },
  failed: { mark: "!", text: "Not delivered yet, retrying", title: "The mailbox could not take it yet. Hush keeps trying; it stays on this device until then." },
  conflict: {
    mark: "!",
    text: "Not delivered: someone else's data was at its address",
    title: "This message could not be delivered. See the notice at the top of the chat.",
  },
  received: null,
};

/** Entries read when a chat opens, and per older page as it scrolls up. */
const PAGE = 60;
/** Entries first read from the newest end to catch up after a poll, a send or a flush. */
const TAIL = 20;
/** How far back (entries) a refresh re-reads messages waiting for their delivery. */
const AWAITING_REACH = 200;
/** How near its top (px) the history must be scrolled for the page before it to load. */
const LOAD_OLDER_PX = 400;

/** One message of the chat, with its status set by setStatus. */
function messageItem(entry, name) {
  const li = h(
    "li",
    { class: entry.outgoing ? "msg out" : "msg in" },
    h("span", { class: "sr-only", text: entry.outgoing ? "You: " : `${name}: ` }),
    messageText(entry.text),
    h("p", { class: "meta" }, h("time", { datetime: new Date(entry.time).toISOString(), text: formatTime(entry.time) }), h("span", { class: "delivery" })),
  );
  li.dataset.seq = String(entry.seq);
  addMessageMenu(li, entry.text, messageActions);
  return li;
}

/** What a message's menu does (message-menu.js). */
const messageActions = {
  copy: (text) => app.chat && copyText(text, app.chat.copied),
  reply: (text) => {
    const composer = app.chat?.composer.querySelector("textarea");
    if (composer && !app.chat.composer.hidden) replyWithQuote(text, composer);
  },
  remove: (li, button) => confirmDeleteMessage(li, button),
};

/**
 * Asks, then deletes message item `li` of the open chat from this device only
 * (`deleteMessage`): the other person keeps theirs and is not told. Focus goes back to the
 * menu's `button` on Cancel, to the message list after deleting.
 */
function confirmDeleteMessage(li, button) {
  const chat = app.chat;
  const seq = Number(li.dataset.seq);
  const c = chat && byId(chat.id);
  if (!c || !Number.isSafeInteger(seq)) return;
  const own = li.classList.contains("out");
  const body = h(
    "div",
    {},
    h("p", { text: `The message disappears from this device only. ${c.name} keeps their copy and is not told.` }),
    own && !li.querySelector(".delivery")?.textContent.includes("Delivered")
      ? h("p", { class: "fine", text: "It is already on its way: it will still reach them." })
      : null,
  );
  const cancel = h("button", {
    type: "button",
    class: "ghost",
    text: "Cancel",
    onclick: () => {
      els.dialog.close();
      button.focus();
    },
  });
  const remove = h("button", {
    type: "button",
    class: "danger",
    text: "Delete message",
    onclick: async () => {
      remove.disabled = true;
      try {
        await app.client.deleteMessage(chat.id, seq);
      } catch (err) {
        if (codeOf(err) !== ErrorCode.NoSuchMessage) {
          remove.disabled = false;
          const text = codeOf(err) === ErrorCode.StillSending ? "This message is still being sent. You can delete it once it is sent." : errorText(err);
          body.append(h("p", { class: "field-error", role: "alert", text }));
          return;
        }
      }
      els.dialog.close();
      if (app.chat === chat) {
        chat.items.delete(seq);
        li.remove();
        placeDaySeparators(chat.list);
        chat.list.focus?.();
      }
      els.announcer.textContent = "Message deleted on this device.";
      await refreshList(chat.id);
    },
  });
  dialog("Delete this message on this device?", body, [cancel, remove]);
}

/** Loads older pages until entry `seq` is shown (search); its item, or null. */
async function showEntry(seq) {
  const chat = app.chat;
  while (chat && app.chat === chat && !chat.items.has(seq) && !chat.complete && seq < chat.oldest) {
    if (chat.loadingOlder || chat.first) await new Promise((r) => setTimeout(r, 50));
    else await loadOlder();
  }
  return app.chat === chat ? (chat.items.get(seq) ?? null) : null;
}

function setStatus(chat, li, entry) {
  // While the other person's answers can't be read here (this device went back to an older
  // copy), a message waiting for them is not delivered, and the notice above says why.
  const c = byId(chat.id);
  const reason =
    entry.reason ??
    (entry.outgoing && entry.status === "failed" && c?.unreadable
      ? `${c.name}'s device can't read this device's messages any more (see above)`
      : null);
  entry = reason ? { ...entry, reason } : entry;
  const key = `${entry.status}\u0000${entry.reason ?? ""}`;
  if (li.dataset.statusKey !== key) {
    li.dataset.statusKey = key;
    li.dataset.status = entry.status;
    const slot = li.querySelector(".delivery");
    const status = STATUS[entry.status];
    if (!status) {
      slot.replaceChildren();
      slot.removeAttribute("title");
    } else {
      const text = entry.reason ? `Not delivered: ${entry.reason}` : status.text;
      slot.replaceChildren(" · ", h("span", { class: "mark", "aria-hidden": "true", text: status.mark }), " ", text);
      slot.title = status.title;
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
 */
async function readNewest(chat) {
  // One more than a page: whether there is anything before it.
  if (chat.first) return app.client.historyPage(chat.id, null, PAGE + 1);
  // Messages on the mailbox that their device has not acknowledged yet are followed back
  // AWAITING_REACH entries at most (acknowledgements arrive in order, so the newest ones are
  // what changes; older ones show their new state when the chat is opened again).
  const awaiting = [...chat.awaitingSeqs].filter((seq) => seq >= chat.newest - AWAITING_REACH);
  const reach = Math.min(chat.newest, ...chat.unsentSeqs, ...awaiting);
  let entries = await app.client.historyPage(chat.id, null, TAIL);
  let more = entries.length === TAIL;
  while (more && entries[0].seq > reach) {
    const page = await app.client.historyPage(chat.id, entries[0].seq, PAGE);
    entries = page.concat(entries);
    more = page.length === PAGE;
  }
  return entries;
}

/**
 * Brings the open chat up to date with storage: appends new entries, updates the status of
 * shown ones, and leaves every other node alone.
 */
async function refreshChat() {
  const chat = app.chat;
  if (!chat) return;
  const token = ++chat.token;
  let entries;
  try {
    entries = await readNewest(chat);
  } catch (err) {
    if (codeOf(err) === ErrorCode.UnknownConversation) showHome();
    return;
  }
  if (app.chat !== chat || token !== chat.token) return;
  if (chat.first) {
    chat.complete = entries.length <= PAGE;
    if (!chat.complete) entries = entries.slice(1);
  }
  const scroller = chat.scroller;
  const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  let addedOwn = false;
  const incoming = [];
  const name = byId(chat.id)?.name ?? "Them";
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
  } else if (!chat.items.size && !chat.list.querySelector(".empty")) {
    chat.list.append(h("li", { class: "empty", text: `No messages yet. Say hello to ${name}.` }));
  }
  if (chat.first || nearBottom || addedOwn) scroller.scrollTop = scroller.scrollHeight;
  // New messages are announced once each (the list itself is not a live region, so opening a
  // chat does not read out its history).
  if (incoming.length) els.announcer.textContent = incoming.map((t) => `${name}: ${t}`).join("\n");
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
  const c = byId(chat.id);
  if (c && c.unread > 0 && visible()) {
    try {
      await app.client.markRead(chat.id);
      c.unread = 0;
      renderList();
    } catch {
      // Locked or deleted meanwhile: nothing to mark.
    }
  }
}

function showEarlier(chat) {
  chat.earlier.hidden = chat.complete;
  chat.earlier.disabled = chat.loadingOlder;
}

/** Reads the page before the oldest entry shown and puts it above, keeping the view still. */
async function loadOlder() {
  const chat = app.chat;
  if (!chat || chat.first || chat.complete || chat.loadingOlder) return;
  chat.loadingOlder = true;
  showEarlier(chat);
  let page;
  try {
    page = await app.client.historyPage(chat.id, chat.oldest, PAGE + 1);
  } catch (err) {
    chat.loadingOlder = false;
    showEarlier(chat);
    if (codeOf(err) === ErrorCode.UnknownConversation && app.chat === chat) showHome();
    return;
  }
  chat.loadingOlder = false;
  if (app.chat !== chat) return;
  chat.complete = page.length <= PAGE;
  if (!chat.complete) page = page.slice(1);
  const name = byId(chat.id)?.name ?? "Them";
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
  scroller.scrollTop = scroller.scrollHeight - fromBottom;
  showEarlier(chat);
  if (!chat.complete && scroller.scrollTop < LOAD_OLDER_PX) loadOlder();
}

function sendMessage(id, text, textarea, errorSlot) {
  app.sendQueue = app.sendQueue.then(async () => {
    try {
      await app.client.send(id, text);
    } catch (err) {
      const code = codeOf(err);
      errorSlot.textContent =
        code === ErrorCode.MessageTooLong ? "This message is too long. Split it into shorter ones." : `Not sent: ${errorText(err)}`;
      if (textarea.isConnected && !textarea.value) {
        textarea.value = text;
        autosize(textarea);
        app.chat?.limit.update();
      }
      return;
    }
    if (app.chat?.id === id) refreshChat();
    refreshList(id);
    await flush();
  });
}

// ---------------------------------------------------------------------------------------------
// Rename and delete

function dialog(title, body, actions) {
  const d = els.dialog;
  replace(d, h("h2", { id: "dialog-title", text: title }), body, h("div", { class: "actions end" }, actions));
  d.showModal();
  return d;
}

function renameDialog(id) {
  const c = byId(id);
  if (!c) return;
  const name = field({ label: "Name", value: c.name, autocomplete: "off", maxlength: 60, dir: "auto" });
  const form = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const value = name.input.value.trim();
        if (!value) {
          setFieldError(name, "A name cannot be empty.");
          return;
        }
        try {
          await app.client.rename(id, value);
        } catch (err) {
          setFieldError(name, errorText(err));
          return;
        }
        els.dialog.close();
        await refreshList();
        if (app.chat?.id === id) app.chat.title.textContent = value;
      },
    },
    name.wrap,
    h(
      "div",
      { class: "actions end" },
      h("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => els.dialog.close() }),
      h("button", { type: "submit", class: "primary", text: "Save name" }),
    ),
  );
  const d = els.dialog;
  replace(d, h("h2", { id: "dialog-title", text: `Rename ${c.name}` }), h("p", { class: "fine", text: "Only you see this name." }), form);
  d.showModal();
  name.input.select();
}

function confirmDelete(id) {
  const c = byId(id);
  if (!c) return;
  const body = h(
    "div",
    {},
    h("p", { text: "This erases, on this device:" }),
    h(
      "ul",
      {},
      h("li", { text: "the keys of this conversation, so its messages can never be read here again;" }),
      h("li", { text: "the whole message history;" }),
      h("li", { text: "any messages not sent yet." }),
    ),
    h("p", { text: `${c.name} is not notified. Messages they send afterwards are never read. This cannot be undone.` }),
  );
  const erase = h("button", {
    type: "button",
    class: "danger",
    text: "Erase conversation",
    onclick: async () => {
      erase.disabled = true;
      try {
        await app.client.deleteConversation(id);
      } catch (err) {
        erase.disabled = false;
        body.append(h("p", { class: "field-error", role: "alert", text: errorText(err) }));
        return;
      }
      els.dialog.close();
      clearTimeout(app.pollTimers.get(id));
      app.pollTimers.delete(id);
      app.subscribed.delete(id);
      subs.close(id);
      await refreshList();
      showHome();
    },
  });
  dialog(`Delete the conversation with ${c.name}?`, body, [
    h("button", { type: "button", class: "ghost", text: "Cancel", onclick: () => els.dialog.close() }),
    erase,
  ]);
}

// ---------------------------------------------------------------------------------------------
// Settings

function showSettings() {
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
  async function onSubmit(event) {
    event.preventDefault();
    const normalised = normaliseMailboxUrl(url.input.value);
    if (!normalised) {
      setFieldError(url, "Enter a full address starting with https:// (or http:// for a local test).");
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
    hint: "A system notification when a message arrives while Hush is in the background or another conversation is open.",
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
    hint: "The mailbox then keeps a message only until this device has it. The cost: if this device is ever restored from a backup, messages read after that backup can't be fetched again.",
    checked: choice("deleteAfterRead"),
    onchange: () => {
      const on = erase.input.checked;
      setChoice("deleteAfterRead", on);
      if (app.client?.isUnlocked) app.client.setDeleteAfterRead(on);
      said.textContent = on
        ? "Messages this device reads from now on are deleted from the mailbox."
        : "Messages stay on the mailbox until they expire.";
    },
  });
  return h("div", { class: "stack choices" }, h("h2", { class: "section-title", text: "Notifications and reading" }), notify.wrap, detail.wrap, erase.wrap, said);
}

/** Asks the mailbox at `base` for its health: "ok", "not found" (a wrong address) or "failed". */
async function checkMailbox(base) {
  try {
    const res = await fetch(`${base}/v1/health`, { cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
    return res.ok ? "ok" : res.status === 404 ? "not found" : "failed";
  } catch {
    return "failed";
  }
}

// ---------------------------------------------------------------------------------------------
// Other tabs
//
// Every tab of this profile works on the same database. After a call that commits something
// another tab shows (a poll that stored messages or a join, a send, a flush that changed
// statuses, a new invite, a join, a rename, a delete, a read mark), the tab posts a notice on a
// BroadcastChannel named after the database: { kind, id } only, never a message's text or
// anything secret. The other tabs then re-read what changed: the conversation list, and the
// newest end of the open chat. Every tab keeps polling on its own (docs/CLIENT.md, "Several
// tabs"): the per-conversation locks keep the ratchet safe, and a tab's poll that finds the
// messages already taken by another tab changes nothing.

/** Which calls commit what other tabs show, and the notice each posts when it resolves. */
const NOTICES = {
  poll: (out, id) => (out.messages.length > 0 || out.joined || out.delivered.length > 0 || out.notice ? { kind: "messages", id } : null),
  send: (_, id) => ({ kind: "messages", id }),
  flush: (out) => (out.delivered > 0 || out.conflicts > 0 || out.lastError ? { kind: "status", id: null } : null),
  createInvite: (out) => ({ kind: "list", id: out.id }),
  join: (id) => ({ kind: "list", id }),
  rename: (_, id) => ({ kind: "list", id }),
  deleteConversation: (_, id) => ({ kind: "list", id }),
  // Other tabs update their list; a chat open there shows the message until it is opened again.
  deleteMessage: (_, id) => ({ kind: "list", id }),
  markRead: (_, id) => ({ kind: "list", id }),
  clearNotice: (_, id) => ({ kind: "list", id }),
};

const tabs = { channel: null, timer: 0, chat: false, ids: new Set() };

/** The client, posting a notice to the other tabs after each call in NOTICES resolves. */
function withNotices(client) {
  return new Proxy(client, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      const notice = Object.hasOwn(NOTICES, prop) ? NOTICES[prop] : null;
      if (!notice) return value.bind(target);
      return async (...args) => {
        const out = await value.apply(target, args);
        const message = notice(out, args[0]);
        if (message) tabs.channel?.postMessage(message);
        return out;
      };
    },
  });
}

function listenToOtherTabs() {
  if (typeof BroadcastChannel !== "function") return;
  tabs.channel = new BroadcastChannel(`hush:${DB_NAME}:changes`);
  tabs.channel.onmessage = (event) => {
    const { kind, id } = event.data ?? {};
    if (typeof kind !== "string" || !app.client?.isUnlocked) return;
    if (typeof id === "string") tabs.ids.add(id);
    if (kind !== "list" && (!id || id === app.chat?.id)) tabs.chat = true;
    // Notices in a burst (a poll, then its flush) are applied once.
    clearTimeout(tabs.timer);
    tabs.timer = setTimeout(applyOtherTabs, 30);
  };
}

async function applyOtherTabs() {
  const { chat, ids } = tabs;
  tabs.chat = false;
  tabs.ids = new Set();
  const generation = app.generation;
  await refreshList();
  if (generation !== app.generation || !app.client.isUnlocked) return;
  // A conversation made in another tab is polled here too.
  for (const c of app.conversations) if (!app.pollTimers.has(c.id) && !app.polling.has(c.id)) schedulePoll(c.id);
  const shown = app.screen.id;
  if (shown && ids.has(shown)) {
    const c = byId(shown);
    if (!c) return showHome(); // Deleted in another tab.
    if (app.screen.name === "invite" && c.joined) return showSafety(shown, { justJoined: true });
    if (app.chat?.title && app.chat.title.textContent !== c.name) app.chat.title.textContent = c.name;
  }
  if (chat && app.chat) refreshChat();
}

// ---------------------------------------------------------------------------------------------
// Notifications
//
// A system notification for messages a poll stored while the page is hidden or their
// conversation is not the one open: "Hush" / "New message" unless the person chose, in Settings,
// to show names and text. The browser's permission is asked only when the person asks for
// notifications (the offer under the conversation list, or Settings), never on load.

const notificationsExist = () => typeof Notification === "function";
const mayNotify = () => notificationsExist() && Notification.permission === "granted" && choice("notify");

/** Notifies of `messages` (just stored in conversation `id`) unless they are in plain view. */
async function notifyArrivals(id, messages) {
  if (!messages.length || !mayNotify()) return;
  if (visible() && app.screen.name === "chat" && app.screen.id === id) return;
  // Shown in front in another tab of this profile (presence.js).
  if (await shownInSomeTab(id)) return;
  if (!mayNotify()) return;
  const c = byId(id);
  const detailed = choice("notifyText") && c;
  const count = messages.length;
  const title = detailed ? c.name : "Hush";
  const body = detailed
    ? messages.map((m) => m.text).join("\n").slice(0, 500)
    : count === 1
      ? "New message"
      : `${count} new messages`;
  try {
    // The tag replaces this conversation's earlier notification instead of piling up.
    const notification = new Notification(title, { body, tag: id });
    notification.onclick = () => {
      notification.close();
      window.focus();
      if (app.client?.isUnlocked && byId(id)) openConversation(id);
    };
  } catch (err) {
    // Chrome on Android shows notifications only from a service worker ("Illegal
    // constructor"): through ours (sw.js opens the conversation on a click). Without one, the
    // title's count still tells.
    showFromServiceWorker(title, body, id).catch(() => console.warn("Could not show a notification", err.message));
  }
}

/** Shows a notification through this page's service worker; rejects when there is none. */
async function showFromServiceWorker(title, body, id) {
  const registration = await navigator.serviceWorker?.getRegistration();
  if (!registration) throw new Error("no service worker");
  await registration.showNotification(title, { body, tag: id, data: { conversation: id } });
}

/** A click on a notification shown by the service worker opens its conversation (sw.js). */
navigator.serviceWorker?.addEventListener("message", (event) => {
  const { kind, id } = event.data ?? {};
  if (kind === "open-conversation" && typeof id === "string" && app.client?.isUnlocked && byId(id)) openConversation(id);
});

/** Asks the browser for permission to notify; returns "granted", "denied" or "default". */
async function askToNotify() {
  if (!notificationsExist()) return "denied";
  let answer = Notification.permission;
  if (answer === "default") {
    try {
      answer = await Notification.requestPermission();
    } catch {
      answer = Notification.permission;
    }
  }
  setChoice("notifyOffered", true);
  if (answer === "granted") setChoice("notify", true);
  return answer;
}

const NOTIFY_BLOCKED = "Notifications are blocked for this site. You can allow them in the browser's site settings, then turn them on in Hush's Settings.";

/**
 * Under the conversation list, once a conversation is joined and while the browser has not
 * been asked: a quiet offer to notify of new messages, which the person can take or dismiss.
 */
function renderNotifyOffer() {
  const offer = els.notifyOffer;
  const show =
    notificationsExist() &&
    Notification.permission !== "denied" &&
    !choice("notify") &&
    !choice("notifyOffered") &&
    app.conversations.some((c) => c.joined);
  if (!show) {
    if (!offer.hidden && offer.contains(document.activeElement)) els.list.querySelector("button.conv")?.focus();
    offer.hidden = true;
    return;
  }
  if (!offer.hidden) return;
  replace(
    offer,
    h("p", { class: "fine", text: "Hush can tell you when a message arrives while it is in the background." }),
    h(
      "div",
      { class: "actions" },
      h("button", {
        type: "button",
        text: "Get notified of new messages",
        onclick: async () => {
          const answer = await askToNotify();
          renderNotifyOffer();
          els.announcer.textContent = answer === "granted" ? "Notifications are on. Settings can turn them off." : NOTIFY_BLOCKED;
        },
      }),
      h("button", {
        type: "button",
        class: "ghost",
        text: "Not now",
        onclick: () => {
          setChoice("notifyOffered", true);
          renderNotifyOffer();
          els.announcer.textContent = "Notifications can be turned on in Settings.";
        },
      }),
    ),
  );
  offer.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Polling and the outbox

function schedulePoll(id, delay) {
  if (!app.client?.isUnlocked) return;
  clearTimeout(app.pollTimers.get(id));
  if (app.polling.has(id)) return; // The running poll schedules the next one.
  const open = app.screen.id === id;
  // With the subscription live, the mailbox says when to poll: only a slow safety poll.
  const wait = delay ?? (subs.live(id) ? HushClient.safetyPollDelayMs() : HushClient.pollDelayMs(visible(), open));
  const generation = app.generation;
  app.pollTimers.set(
    id,
    setTimeout(() => {
      if (generation === app.generation) pollOnce(id);
    }, wait),
  );
}

/** Polls `id` at once (the mailbox pushed to it); during its poll, again right after it. */
function pollNow(id) {
  if (!app.client?.isUnlocked || !byId(id)) return;
  if (app.polling.has(id)) {
    app.pollAgain.add(id);
    return;
  }
  clearTimeout(app.pollTimers.get(id));
  pollOnce(id);
}

/**
 * Watches the addresses of conversation `id`'s next poll on its own socket (opened if needed;
 * the watch set is sent only when it changed). No WebSocket here: nothing, polling delivers.
 */
async function subscribe(id) {
  const c = byId(id);
  if (!c || !Subscriptions.supported) return;
  app.subscribed.add(id);
  const generation = app.generation;
  const turn = (app.watchTurns.get(id) ?? 0) + 1;
  app.watchTurns.set(id, turn);
  let bytes;
  try {
    bytes = await app.client.watchSet(id);
  } catch (err) {
    const code = codeOf(err);
    if (code === ErrorCode.UnknownConversation) subs.close(id);
    else if (code !== ErrorCode.Locked) console.warn("Could not read the addresses to watch", err.message);
    return;
  }
  if (generation !== app.generation || app.watchTurns.get(id) !== turn || !byId(id)) return;
  subs.watch(id, c.mailbox, bytes);
}

/** The conversations' sockets: a push polls at once; a socket lost brings back the usual pace. */
const subs = new Subscriptions({
  onPush: pollNow,
  refreshDelayMs: () => HushClient.watchRefreshDelayMs(),
  onLive: (id, live) => {
    if (!live && byId(id)) schedulePoll(id);
  },
});

async function pollOnce(id) {
  app.pollTimers.delete(id);
  const c = byId(id);
  if (!c || !app.client.isUnlocked) return;
  const generation = app.generation;
  app.polling.add(id);
  let changed = false;
  let recovered = false;
  try {
    const out = await app.client.poll(id);
    recovered = app.unreachable.delete(c.mailbox);
    // The mailbox answers: sockets to it waiting out their back-off reconnect now, so push
    // is back at once rather than up to a minute after polling found it again.
    if (!subs.live(id)) subs.retryNow(c.mailbox);
    // The mailbox answered, and what it had is stored.
    if (app.wrongMailbox.delete(c.mailbox)) changed = true;
    if (app.storageFull.delete(id)) changed = true;
    // New messages, a join, messages of ours that their device acknowledged (now
    // "Delivered"), or a notice raised (interference, a restored device): show it.
    changed = changed || out.joined || out.messages.length > 0 || out.delivered.length > 0 || out.notice;
    // An acknowledgement is owed (it goes out with a flush after a short random delay), or a
    // message was re-encrypted for a later address (flush now).
    flushAt(out.flushAt);
    notifyArrivals(id, out.messages);
    if (out.joined && app.screen.name === "invite" && app.screen.id === id) {
      await refreshList();
      showSafety(id, { justJoined: true });
    }
  } catch (err) {
    const code = codeOf(err);
    if (code === ErrorCode.Locked || code === ErrorCode.UnknownConversation) {
      app.polling.delete(id);
      return;
    }
    if (code === ErrorCode.MailboxNotFound) {
      if (!app.wrongMailbox.has(c.mailbox)) changed = true;
      app.wrongMailbox.add(c.mailbox);
      app.unreachable.delete(c.mailbox);
    } else if (code === ErrorCode.MailboxUnreachable || code === ErrorCode.MailboxRejected) {
      if (!app.unreachable.has(c.mailbox)) changed = true;
      app.unreachable.add(c.mailbox);
      app.wrongMailbox.delete(c.mailbox);
    } else if (code === ErrorCode.StorageFull) {
      // What the poll read stays on the mailbox; it is read again once there is room.
      if (!app.storageFull.has(id)) changed = true;
      app.storageFull.add(id);
      console.warn("Poll could not store new messages: storage is full; retrying");
    } else {
      console.warn("Poll failed; retrying", err.message);
    }
  }
  app.polling.delete(id);
  if (generation !== app.generation) return;
  // The poll moved the addresses to watch on (messages read, a join): watch the new ones.
  subscribe(id);
  if (changed || recovered) {
    updateNetStatus();
    await refreshList();
    if (app.chat?.id === id) refreshChat();
  }
  if (recovered || app.pending > 0) flushSoon(0);
  if (app.pollAgain.delete(id) && !app.polling.has(id)) pollNow(id);
  else schedulePoll(id);
}

/** Flushes in `delay` ms, unless a flush is already due earlier. */
function flushSoon(delay) {
  flushAt(Date.now() + Math.max(0, delay));
}

/**
 * Flushes at `at` (ms since the epoch, the clock the client uses), unless a flush is already
 * due earlier; `null` asks for nothing. The client's periodic work (acknowledgements owed,
 * checks that stored blobs are still on the mailbox) runs inside flush, at the times it names.
 * The timer wakes at least every FLUSH_RECHECK_MS to compare `at` with the clock: a device
 * that slept, or a clock that was set forward, does not leave that work waiting.
 */
function flushAt(at) {
  if (at === null || at === undefined || !Number.isFinite(at)) return;
  if (at >= app.flushDue) return;
  app.flushDue = at;
  armFlushTimer();
}

function armFlushTimer() {
  clearTimeout(app.flushTimer);
  const generation = app.generation;
  const wait = Math.min(FLUSH_RECHECK_MS, Math.max(0, app.flushDue - Date.now()));
  app.flushTimer = setTimeout(() => {
    if (generation !== app.generation) return;
    if (Date.now() < app.flushDue) return armFlushTimer();
    app.flushDue = Infinity;
    flush();
  }, wait);
}

/** Schedules the client's next periodic work (after unlocking): when it says it is due. */
async function flushAtFromClient() {
  const generation = app.generation;
  try {
    const at = await app.client.nextFlushAt();
    if (generation === app.generation) flushAt(at);
  } catch (err) {
    if (codeOf(err) !== ErrorCode.Locked) console.warn("Could not read when to flush next", err.message);
  }
}

/** Delivers the outbox; one flush at a time (a request during a flush runs another after it). */
async function flush() {
  if (!app.client?.isUnlocked) return;
  if (app.flushing) {
    app.flushAgain = true;
    return app.flushing;
  }
  const generation = app.generation;
  app.flushing = (async () => {
    let delivered = 0;
    let conflicts = 0;
    let ended = 0;
    let next = null;
    do {
      app.flushAgain = false;
      try {
        const out = await app.client.flush();
        delivered += out.delivered;
        conflicts += out.conflicts;
        ended += out.ended;
        next = out.flushAt;
        app.pending = out.pending;
        app.flushError = out.pending > 0 && Boolean(out.lastError);
        app.flushErrorCode = app.flushError ? out.lastErrorCode : null;
      } catch (err) {
        if (codeOf(err) === ErrorCode.Locked) return;
        // Storage failing is not the mailbox's fault: the blobs wait in the outbox.
        app.flushError = !isStorageError(err);
        app.flushErrorCode = app.flushError ? codeOf(err) : null;
        console.warn("Flush failed; retrying", err.message);
      }
    } while (app.flushAgain && generation === app.generation);
    if (generation !== app.generation) return;
    // A joiner's hello delivered: "Connecting…" becomes "Connected" (refreshList).
    if (delivered > 0 && app.conversations.some((c) => c.connecting)) {
      await refreshList();
      if (generation !== app.generation) return;
    }
    updateNetStatus();
    if (conflicts > 0 || ended > 0) {
      // An invite someone else joined first, a message the mailbox could not take, or a
      // conversation the other person's restored device can no longer follow.
      await refreshList();
      const shown = app.screen.id && byId(app.screen.id);
      if (shown?.inviteTaken) showInviteTaken(shown.id);
    }
    // Statuses change (sending → sent, or failed) on every flush with work: redraw.
    if (app.chat && (delivered > 0 || conflicts > 0 || app.pending > 0)) refreshChat();
    if (app.pending > 0) {
      const wait = FLUSH_BACKOFF[Math.min(app.flushFailures, FLUSH_BACKOFF.length - 1)];
      app.flushFailures += 1;
      flushSoon(wait);
    } else {
      app.flushFailures = 0;
    }
    // The client's next periodic work: an acknowledgement owed, a retransmission check.
    flushAt(next);
  })();
  try {
    await app.flushing;
  } finally {
    app.flushing = null;
  }
}

function onNetworkChange() {
  updateNetStatus();
  if (navigator.onLine && app.client?.isUnlocked) {
    for (const c of app.conversations) schedulePoll(c.id, 0);
    flushSoon(0);
    subs.retryNow();
  }
}

function onVisibilityChange() {
  if (!app.client?.isUnlocked) return;
  updateReading();
  // Polls slow down in the background and speed up again in front.
  for (const c of app.conversations) schedulePoll(c.id, visible() ? 300 : undefined);
  if (visible() && app.chat) refreshChat();
}

function updateNetStatus() {
  let text = "";
  let kind = "";
  if (app.storageFull.size > 0) {
    text = `New messages can't be saved: ${STORAGE_FULL_NEW}`;
    kind = "storage";
  } else if (!navigator.onLine) {
    text = "Offline. Messages wait on this device and go out when you're back online.";
    kind = "offline";
  } else if (app.wrongMailbox.size > 0) {
    text = `${wrongMailboxText([...app.wrongMailbox][0])} Check the address in Settings, or ask for a new invite.`;
    kind = "wrong";
  } else if (app.flushError && app.flushErrorCode === ErrorCode.MailboxNotFound) {
    text = "Wrong mailbox address: a mailbox answered \"not found\", so messages can't be delivered. Check the address in Settings, or ask for a new invite.";
    kind = "wrong";
  } else if (app.unreachable.size > 0 || app.flushError) {
    text = "Can't reach the mailbox. Retrying; nothing is lost.";
    kind = "unreachable";
  }
  if (els.netstatus.textContent !== text) els.netstatus.textContent = text;
  els.netstatus.dataset.kind = kind;
  updateChatBanner();
  updateConnectingState();
  renderListSubtitles();
}

function renderListSubtitles() {
  for (const button of els.list.querySelectorAll("button.conv")) {
    const c = byId(button.dataset.id);
    const sub = button.querySelector(".conv-sub");
    if (c && sub && sub.textContent !== describe(c)) sub.textContent = describe(c);
  }
}

function updateChatBanner() {
  const chat = app.chat;
  if (!chat) return;
  const c = byId(chat.id);
  let text = "";
  const problem = c ? connectProblem(c, c.connecting || chat.unsent) : null;
  if (app.storageFull.size > 0) text = `New messages can't be saved: ${STORAGE_FULL_NEW}`;
  else if (!navigator.onLine) text = "Offline. Your messages wait on this device and go out when you're back online.";
  else if (problem === "wrong") text = `${wrongMailboxText(c.mailbox)} Messages can't be delivered: ask ${c.name} for a new invite.`;
  else if (problem === "unreachable")
    text = `Can't reach the mailbox at ${hostOf(c.mailbox)}. Hush keeps trying; your messages are kept and sent when it answers.`;
  else if (c?.connecting) text = `Connecting to ${c.name}… Your answer to the invite is on its way to the mailbox; messages you write are sent after it.`;
  if (chat.banner.textContent !== text) chat.banner.textContent = text;
  chat.banner.hidden = !text;
  // The chat's own notice replaces the one in the top bar.
  document.body.dataset.banner = text ? "yes" : "no";
}

function errorText(err) {
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
      return err?.message ?? "Something went wrong.";
  }
}

/**
 * Why an invite link was refused, and what to do. The client's message names the problem in
 * words meant for people (protocol/src/error.rs, `InviteError`): incomplete, extra
 * characters, unclear where it ends, no invite, a newer version, damaged.
 */
function inviteRefusal(err) {
  const detail = String(err?.message ?? "")
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
 */
function expiredInvite(offsetMs = null) {
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

/** How far this device's clock may be off before it is called wrong. */
const CLOCK_WRONG_MS = 3_600_000;

/**
 * How far this device's clock is from the site's (ms, positive: this device is ahead), from
 * the Date header of a fresh request to the site's own origin (any web server sends one, and
 * same-origin it is readable); null when unknown. Good to a second or two: enough to tell a
 * clock days off.
 */
async function clockOffsetFromSite() {
  try {
    const sent = Date.now();
    const res = await fetch(location.pathname, { cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
    const received = Date.now();
    const date = Date.parse(res.headers.get("Date") ?? "");
    return Number.isFinite(date) ? (sent + received) / 2 - date : null;
  } catch {
    return null;
  }
}

boot();

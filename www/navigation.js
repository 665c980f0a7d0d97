// @ts-check
// The browser's history drives Hush's screens, so the phone's or browser's Back button moves
// within Hush: from a chat back to the list, from a chat's safety code back to the chat.
//
// Entries hold only { hush, session, screen name, conversation's local id, depth }: nothing
// secret, and the address stays as it is (no fragment: a fragment is where invites arrive).
//
// The entries of one unlocked session form a short stack above a root entry, the
// conversation list (depth 0):
//   - the list is depth 0; screens reached from the list or the top bar (a chat, an invite,
//     New conversation, Join, Settings) are depth 1, and one replaces another there (so Back
//     never walks through screens of other conversations, or through the steps of a form
//     already sent); a chat's safety code, and Settings opened from a chat, are depth 2 (Back
//     returns to the chat);
//   - Back while a dialog or a menu is open only closes it: the entry Back left is written
//     again, and the screen stays;
//   - going to a shallower screen goes back in history to that depth (the app's own Back
//     buttons and going to the list do that), so the browser's Back and the app's agree;
//   - the locked screens (setup, unlock) get no entry of their own: unlocking makes the entry
//     in use the list, and locking goes back to the root entry. An entry of an earlier session
//     (before a lock or a reload) shows the list, never a stale screen, and never the unlock
//     screen while unlocked. Back from the list leaves Hush, as on Android;
//   - an invite link pasted into the address bar of an open Hush tab is a fragment navigation,
//     which adds an entry: the app takes the invite from it, and the history goes back over it
//     (to the list when unlocked), so the Join screen sits above the list as usual and no entry
//     is left that Back would only show the same screen again from.

/** Where the open chat is kept across tabs (see rememberChat). */
const LAST_CHAT = "hush.lastChat";

/**
 * Keeps which chat is open in this browser's localStorage, so that it reopens after unlocking
 * in a new tab or after the browser restarts (the history entry says it only for a reload or a
 * restored tab). Only the conversation's local id: random, not secret (the names of the
 * vault's IndexedDB records hold it too), never a name, a text or a key. Any other screen
 * shown while unlocked takes it away, as a reload there would show the list.
 * @param {string | null} id
 */
function rememberChat(id) {
  try {
    if (id) localStorage.setItem(LAST_CHAT, id);
    else localStorage.removeItem(LAST_CHAT);
  } catch {
    // Storage refused (private mode, full): the list is shown after the next unlock.
  }
}

/**
 * The chat open when Hush was last used in this browser (see rememberChat), or null.
 * @returns {string | null}
 */
export function lastChat() {
  try {
    return localStorage.getItem(LAST_CHAT);
  } catch {
    return null;
  }
}

/** Marks history states written by this module. */
const MARK = "hush-screen";

/** How deep `screen` sits, coming from `previous` (both { name, id }). */
function levelOf(screen, previous) {
  if (screen.name === "home") return 0;
  if (screen.name === "safety" && previous.name === "chat" && previous.id === screen.id) return 2;
  if (screen.name === "settings" && previous.name === "chat") return 2;
  return 1;
}

/** This unlocked session's mark (random per page load and unlock, not a secret); null: locked. */
let session = null;
let sessions = 0;
/** The screen shown last, while unlocked: { name, id }. */
let shown = null;
/** Depth the history moves to by a `history.go` not yet finished; null when none. */
let travelling = null;
/** Depth of the entry in use, as this module last wrote or reached it (0: not ours). */
let inUse = 0;
/** Called with { name, id } when Back or Forward lands on an entry of this session. */
/** @type {(screen: { name: string, id: string | null }) => void} */
let restoreScreen = () => {};
/** Closes an open dialog or menu; whether there was one. */
let closeLayer = () => false;

function isOurs(state) {
  return state?.[MARK] === true && state.session === session;
}

function currentDepth() {
  if (travelling !== null) return travelling;
  return isOurs(history.state) ? history.state.depth : 0;
}

function stateFor(screen, depth) {
  return { [MARK]: true, session, name: screen.name, id: screen.id ?? null, depth };
}

/** Writes `screen` at `depth` in a new entry (`push`) or in the entry in use. */
function write(screen, depth, push = false) {
  if (push) history.pushState(stateFor(screen, depth), "");
  else history.replaceState(stateFor(screen, depth), "");
  inUse = depth;
}

/**
 * Starts listening to Back and Forward. `restore({ name, id })` must show that screen (or the
 * list if it is gone) through the app's usual screen functions; `close()` closes an open
 * dialog or menu and says whether there was one (Back then only closes it).
 */
export function startNavigation(restore, close) {
  restoreScreen = restore;
  closeLayer = close;
  window.addEventListener("popstate", onPopState);
  // The "Hush, home" link in the top bar loads the page again, which locks Hush: while
  // unlocked, a plain click shows the list instead (a click with a modifier still opens a tab).
  document.querySelector("a.brand")?.addEventListener("click", (/** @type {MouseEvent} */ event) => {
    if (session === null || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    restoreScreen({ name: "home", id: null });
  });
}

/**
 * Records a screen change (called by the app for every screen it shows). `screen` and
 * `previous` are { name, id }; `unlocked` whether a vault is open. Guarantees: while unlocked,
 * the entry in use holds `screen` at its depth (pushed, replaced, or after going back to it);
 * locked screens get no entry.
 */
export function screenShown(screen, previous, unlocked) {
  if (!unlocked) {
    if (session !== null) endSession();
    return;
  }
  rememberChat(screen.name === "chat" ? screen.id : null);
  if (session === null) {
    sessions += 1;
    session = `${crypto.randomUUID()}.${sessions}`;
    // The lock's way back to the root is still under way: its landing writes this screen.
    if (travelling !== null) {
      shown = screen;
      return;
    }
    // The entry in use (where the unlock screen was) becomes this session's root.
    const stale = history.state?.[MARK] === true ? history.state.depth : 0;
    shown = { name: "home", id: null };
    if (stale > 0) return travel(-stale, 0, screen);
    write({ name: "home" }, 0);
  }
  if (shown && screen.name === shown.name && screen.id === shown.id && travelling === null && isOurs(history.state)) return;
  const target = levelOf(screen, previous ?? {});
  const depth = currentDepth();
  shown = screen;
  if (travelling !== null) return; // Written when the travel lands (see onPopState).
  if (target > depth) write(screen, depth + 1, true);
  else if (target === depth) write(screen, depth);
  else travel(target - depth, target, screen);
}

/**
 * The conversation whose chat the entry in use showed, from any session (the page was
 * reloaded or its tab restored with a chat open: locked screens write no entry, so until the
 * first screen after unlocking it is still there), or null.
 * @returns {string | null}
 */
export function chatInUse() {
  const state = history.state;
  return state?.[MARK] === true && state.name === "chat" && typeof state.id === "string" ? state.id : null;
}

/**
 * The app's own Back button: the browser's Back when an entry of this session is below,
 * otherwise `fallback()` (the list).
 */
export function goBack(fallback) {
  if (session !== null && travelling === null && isOurs(history.state) && history.state.depth > 0) history.back();
  else fallback();
}

/** Moves `delta` entries (negative: back) to depth `depth`, then writes `screen` there. */
function travel(delta, depth, screen) {
  travelling = depth;
  shown = screen;
  history.go(delta);
}

/** After a lock: back to the root entry, so the next unlock starts from a clean stack. */
function endSession() {
  const depth = isOurs(history.state) ? history.state.depth : 0;
  session = null;
  shown = null;
  travelling = null;
  inUse = 0;
  if (depth > 0) {
    travelling = 0;
    history.go(-depth);
  }
}

function onPopState(event) {
  if (travelling !== null) {
    // The landing of our own history.go: write what is shown now.
    const depth = travelling;
    travelling = null;
    inUse = depth;
    if (session === null) return; // Locked meanwhile: the entry is left as it was.
    if (depth === 0 && shown.name !== "home") {
      // A screen was opened while going back to the list: the list below it, as usual.
      write({ name: "home" }, 0);
      write(shown, 1, true);
    } else {
      write(shown, depth);
    }
    return;
  }
  if (location.hash.length > 1 && !event.state) {
    // An invite pasted into the address bar: a new entry above the one in use. The app takes
    // the invite from it (its hashchange); the history goes back over it, and below the screen
    // in use to the list when unlocked, where the Join screen is then written above the list.
    travelling = 0;
    history.go(-1 - (session === null ? 0 : inUse));
    return;
  }
  if (session === null) return; // Locked: Back and Forward do not change the unlock screen.
  const state = event.state;
  if (closeLayer()) {
    // Back (or Forward) over a dialog or a menu closes it and stays: the entry left is
    // written again (Back), or the history goes back to it (Forward).
    if (!isOurs(state) || state.depth < inUse) write(shown, inUse, true);
    else travel(inUse - state.depth, inUse, shown);
    return;
  }
  if (isOurs(state)) {
    shown = { name: state.name, id: state.id };
    inUse = state.depth;
    restoreScreen(shown);
    return;
  }
  // An entry of an earlier session, or one that is not Hush's screen: the list, as this
  // session's root.
  shown = { name: "home", id: null };
  write(shown, 0);
  restoreScreen(shown);
}

// @ts-check
// Where the site and the mailbox are. The mailbox for new conversations is, in order: the one
// chosen in Settings (kept in this browser's localStorage: it is not secret, every request
// goes there anyway), the one the host put in <meta name="hush-mailbox">, or this site's own
// origin (as with `mailbox-server --www`).

const KEY = "hush.mailbox";

/** This site's address without fragment or query: where invite links point. */
export function siteUrl() {
  return location.origin + location.pathname;
}

/** The mailbox the site's host configured, or this site's origin. */
export function defaultMailboxUrl() {
  const meta = document.querySelector('meta[name="hush-mailbox"]')?.getAttribute("content")?.trim();
  // A relative value ("/mb") names a mailbox on the page's own origin.
  let resolved = null;
  try {
    resolved = meta ? new URL(meta, location.href).href : null;
  } catch {
    resolved = null;
  }
  return (resolved && normaliseMailboxUrl(resolved)) || location.origin;
}

/** The mailbox for new conversations. */
export function mailboxUrl() {
  let chosen = null;
  try {
    chosen = localStorage.getItem(KEY);
  } catch {
    chosen = null; // Storage blocked: fall back to the default.
  }
  return (chosen && normaliseMailboxUrl(chosen)) || defaultMailboxUrl();
}

/** Stores the chosen mailbox (null: back to the default). */
export function setMailboxUrl(url) {
  try {
    if (url && url !== defaultMailboxUrl()) localStorage.setItem(KEY, url);
    else localStorage.removeItem(KEY);
  } catch {
    // Storage blocked: the choice lasts for this page only.
  }
}

/** An http(s) base URL without trailing slash, query or fragment; null if not one. */
export function normaliseMailboxUrl(text) {
  let url;
  try {
    url = new URL(text.trim());
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  if (url.username || url.password) return null;
  return (url.origin + url.pathname).replace(/\/+$/, "");
}

/**
 * Longest mailbox URL an invite carries, in UTF-8 bytes (protocol/src/invite.rs
 * `MAX_MAILBOX_URL_LEN`): a longer one could be saved but no invite could be made with it.
 */
export const MAX_MAILBOX_URL_BYTES = 200;

/** Whether mailbox URL `url` is too long for an invite; its length in UTF-8 bytes. */
export function mailboxUrlTooLong(url) {
  const bytes = new TextEncoder().encode(url).length;
  return { tooLong: bytes > MAX_MAILBOX_URL_BYTES, bytes };
}

/** The host part of a URL, for display. */
export function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

// Choices about notifications and the mailbox, kept like the mailbox URL in this browser's
// localStorage (not secret: no key, no name, no text). Each is "on" or "off"; absent means
// its default.
const CHOICES = {
  /**
   * System notifications of new messages (also needs the browser's permission). Default off:
   * on once the user says so (the offer after a join, or Settings), even where the browser
   * had granted the permission before.
   */
  notify: { key: "hush.notify", default: false },
  /** The conversation's name and the message text in notifications. Default off. */
  notifyText: { key: "hush.notifyText", default: false },
  /**
   * Polls delete what they read from the mailbox, so that it keeps a message only until it is
   * read (issue #11: a seized mailbox then holds unread messages only). Default on. The cost
   * is under restores: a device restored from a backup gets what its lost copy read back
   * only from the other person's device, which puts it back (Mailbox API 1.3) when it next
   * has Hush open; the conversation waits for it up to a day, and the notice lifts when what
   * was missing is back. Under the simulator's restores a conversation still ends 1.2 times
   * as often as without deletes (docs/SIMULATION.md, "The notice lifts when what was missing
   * is back"); off keeps read messages until they expire, so a restored device fetches them
   * again.
   */
  deleteAfterRead: { key: "hush.deleteAfterRead", default: true },
  /** The "Get notified of new messages" offer was answered or dismissed. */
  notifyOffered: { key: "hush.notifyOffered", default: false },
};

/** Choices made in this page, for when storage is blocked. */
const chosen = new Map();

/** Whether choice `name` (a key of CHOICES) is on. */
export function choice(name) {
  const { key, default: fallback } = CHOICES[name];
  let stored = null;
  try {
    stored = localStorage.getItem(key);
  } catch {
    return chosen.get(name) ?? fallback; // Storage blocked.
  }
  return stored === "on" ? true : stored === "off" ? false : fallback;
}

/** Stores choice `name` (the default is stored as absent). */
export function setChoice(name, on) {
  const { key, default: fallback } = CHOICES[name];
  chosen.set(name, on);
  try {
    if (on === fallback) localStorage.removeItem(key);
    else localStorage.setItem(key, on ? "on" : "off");
  } catch {
    // Storage blocked: the choice lasts for this page only.
  }
}

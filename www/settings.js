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

/** The host part of a URL, for display. */
export function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

// @ts-check
// Which conversation each tab of this profile shows in front, so that a message shown in one
// tab does not raise a notification from another (every tab polls on its own: whichever reads
// a message first is the one that would notify).
//
// A visible tab with a chat open holds a shared Web Lock named after that conversation's local
// id (never sent anywhere; gone with the tab, since the browser releases a closed tab's locks).
// Without the Web Locks API a tab knows only what it shows itself.

const PREFIX = "hush:shown:";

/** The lock held now: { id, release }, or null. @type {{ id: string, release: () => void } | null} */
let held = null;

/**
 * Records that this tab shows conversation `id` in front (`null`: none, or the page is hidden).
 * Releases the previous conversation's lock first; safe to call on every screen or visibility
 * change.
 * @param {string | null} id
 */
export function showing(id) {
  if (held?.id === id) return;
  held?.release();
  held = null;
  if (!id || !navigator.locks) return;
  /** @type {() => void} */
  let release = () => {};
  const done = new Promise((resolve) => (release = () => resolve(undefined)));
  held = { id, release };
  navigator.locks.request(`${PREFIX}${id}`, { mode: "shared" }, () => done).catch(() => {});
}

/**
 * Whether some tab of this profile (this one included) shows conversation `id` in front now.
 * @param {string} id
 */
export async function shownInSomeTab(id) {
  if (held?.id === id) return true;
  if (!navigator.locks?.query) return false;
  try {
    const { held: locks = [] } = await navigator.locks.query();
    return locks.some((lock) => lock.name === `${PREFIX}${id}`);
  } catch {
    return false;
  }
}

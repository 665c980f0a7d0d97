// @ts-check
// This device's clock against the site's: an invite's expiry comes from the clock of the device
// that made it, and is checked by the clock of the one that opens it.

/** How far this device's clock may be off before it is called wrong. */
export const CLOCK_WRONG_MS = 3_600_000;

/**
 * How far this device's clock is from the site's (ms, positive: this device is ahead), from
 * the Date header of a fresh request to the site's own origin (any web server sends one, and
 * same-origin it is readable); null when unknown. Good to a second or two: enough to tell a
 * clock days off.
 * @returns {Promise<number | null>}
 */
export async function clockOffsetFromSite() {
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

/**
 * "about 5 hours ahead of" / "about 3 days behind" for a clock offset in ms.
 * @param {number} offsetMs
 */
export function clockError(offsetMs) {
  const hours = Math.abs(offsetMs) / 3_600_000;
  const amount = hours < 72 ? `about ${Math.round(hours)} hours` : `about ${Math.round(hours / 24)} days`;
  return `${amount} ${offsetMs > 0 ? "ahead of" : "behind"}`;
}

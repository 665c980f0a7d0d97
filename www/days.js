// @ts-check
// Calendar days in the chat: a separator above the first message of each day ("Today",
// "Yesterday", a weekday within the last week, else the date), and the short day or time
// the conversation list shows beside a preview. Days are this device's local calendar days.

/** How many calendar days (local time) lie between `ms` and `now`: 0 today, 1 yesterday. */
export function daysAgo(ms, now = Date.now()) {
  const day = (t) => {
    const d = new Date(t);
    // The local calendar date as a UTC date: differences are whole days across DST changes.
    return Date.UTC(d.getFullYear(), d.getMonth(), d.getDate());
  };
  return Math.round((day(now) - day(ms)) / 86_400_000);
}

const weekday = new Intl.DateTimeFormat(undefined, { weekday: "long" });
const fullDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "long", year: "numeric" });
const shortDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

/** The separator's label for the day of `ms`. */
export function dayLabel(ms, now = Date.now()) {
  const ago = daysAgo(ms, now);
  if (ago === 0) return "Today";
  if (ago === 1) return "Yesterday";
  if (ago > 1 && ago < 7) return weekday.format(ms);
  return fullDate.format(ms);
}

/** Short "when" for the conversation list: the time today, else the day as in dayLabel. */
export function shortWhen(ms, now = Date.now()) {
  const ago = daysAgo(ms, now);
  if (ago === 0) return clock.format(ms);
  if (ago === 1) return "Yesterday";
  if (ago > 1 && ago < 7) return weekday.format(ms);
  return shortDate.format(ms);
}

/** A local calendar day as "YYYY-M-D", to tell days apart. */
function dayKey(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** When a message item was written: its <time datetime>. */
function timeOf(li) {
  const at = Date.parse(li.querySelector("time")?.dateTime ?? "");
  return Number.isFinite(at) ? at : null;
}

/**
 * Puts exactly one separator above the first message of each day in `list` (the chat's <ol>
 * of `li.msg`), removes any other, and labels each for `now`. Idempotent: call it after every
 * change to the list (a page loaded above, messages appended below, a new day begun), so a
 * day split over two pages of history gets one separator, at its first message.
 */
export function placeDaySeparators(list, now = Date.now()) {
  let previous = null;
  for (const el of [...list.children]) {
    if (el.classList.contains("day")) {
      // Kept only when a message of its day follows it directly (checked at that message).
      const next = el.nextElementSibling;
      if (!next || !next.classList.contains("msg")) el.remove();
      continue;
    }
    if (!el.classList.contains("msg")) continue;
    const at = timeOf(el);
    if (at === null) continue;
    const key = dayKey(at);
    const before = el.previousElementSibling;
    const separator = before && before.classList.contains("day") ? before : null;
    if (key === previous) {
      separator?.remove();
    } else {
      const label = dayLabel(at, now);
      if (separator) {
        if (separator.textContent !== label) separator.textContent = label;
      } else {
        const li = document.createElement("li");
        li.className = "day";
        li.textContent = label;
        el.before(li);
      }
    }
    previous = key;
  }
}

/**
 * Calls `onNewDay` just after each local midnight (and when the page comes back into view),
 * so "Today" becomes "Yesterday" in an open chat. Returns a function that stops it.
 */
export function atEachMidnight(onNewDay) {
  let timer = 0;
  const arm = () => {
    clearTimeout(timer);
    const next = new Date();
    next.setHours(24, 0, 1, 0);
    // Re-checked at least hourly: a sleeping device or a changed clock does not miss a day.
    timer = setTimeout(() => {
      onNewDay();
      arm();
    }, Math.min(next.getTime() - Date.now(), 3_600_000));
  };
  const onVisible = () => {
    if (document.visibilityState === "visible") onNewDay();
  };
  document.addEventListener("visibilitychange", onVisible);
  arm();
  return () => {
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisible);
  };
}

// @ts-check
// Auto-lock: Hush locks itself after a chosen time without activity (no pointer, keyboard,
// touch or wheel input, and the page not brought back into view). The choice is kept in this
// browser's localStorage: it is not secret. Default 15 minutes: long enough not to interrupt a
// conversation, short enough that a device left open does not stay open for the day.

import { h, uid } from "./dom.js";

const KEY = "hush.autoLock";
/** The choices, in minutes (0: never). */
export const AUTO_LOCK_MINUTES = [0, 5, 15, 60];
export const AUTO_LOCK_DEFAULT = 15;

const label = (m) => (m === 0 ? "Never" : m === 60 ? "After 1 hour" : `After ${m} minutes`);

let inPage = null; // The choice made in this page, for when storage is blocked.

/** The chosen idle time in minutes (0: never). */
export function autoLockMinutes() {
  let stored = null;
  try {
    stored = localStorage.getItem(KEY);
  } catch {
    return inPage ?? AUTO_LOCK_DEFAULT;
  }
  const m = stored === null ? AUTO_LOCK_DEFAULT : Number(stored);
  return AUTO_LOCK_MINUTES.includes(m) ? m : AUTO_LOCK_DEFAULT;
}

function setAutoLockMinutes(m) {
  inPage = m;
  try {
    if (m === AUTO_LOCK_DEFAULT) localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, String(m));
  } catch {
    // Storage blocked: the choice lasts for this page only.
  }
}

const ACTIVITY = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart"];

/**
 * Watches for activity while Hush is unlocked and calls `onIdle` once the chosen time passes
 * without any. `start()` on unlock, `stop()` on lock, `rearm()` when the choice changes,
 * `touch()` for activity seen elsewhere (another tab); `onActive()` is called on activity here.
 */
export class AutoLock {
  constructor(onIdle, onActive = () => {}) {
    this.onIdle = onIdle;
    this.onActive = onActive;
    this.running = false;
    this.last = 0;
    this.timer = 0;
    this.onActivity = () => {
      this.last = Date.now();
      this.onActive();
    };
    this.onVisibility = () => {
      // Back in view after the idle time: lock before anything is seen; else it is activity.
      if (document.visibilityState !== "visible") return;
      if (!this.check()) this.onActivity();
    };
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.last = Date.now();
    for (const type of ACTIVITY) document.addEventListener(type, this.onActivity, { capture: true, passive: true });
    document.addEventListener("visibilitychange", this.onVisibility);
    this.arm();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    for (const type of ACTIVITY) document.removeEventListener(type, this.onActivity, { capture: true });
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  /** Activity elsewhere (another tab of this profile): the idle time counts from now. */
  touch() {
    if (this.running) this.last = Date.now();
  }

  /** The choice changed: counts from now with the new time. */
  rearm() {
    if (!this.running) return;
    this.last = Date.now();
    this.arm();
  }

  arm() {
    clearTimeout(this.timer);
    const limit = autoLockMinutes() * 60_000;
    if (!this.running || limit === 0) return;
    // Wakes when the idle time could be over, at least every minute (a device that slept).
    const wait = Math.max(1_000, Math.min(60_000, this.last + limit - Date.now()));
    this.timer = setTimeout(() => {
      if (!this.check()) this.arm();
    }, wait);
  }

  /** Locks if the idle time is over; returns whether it did. */
  check() {
    const limit = autoLockMinutes() * 60_000;
    if (!this.running || limit === 0 || Date.now() - this.last < limit) return false;
    this.stop();
    this.onIdle(autoLockMinutes());
    return true;
  }
}

/** Settings' choice of idle time; `onChange` after it is stored. */
export function autoLockSetting(onChange) {
  const id = uid("autolock");
  const select = h(
    "select",
    { id, "aria-describedby": `${id}-hint` },
    AUTO_LOCK_MINUTES.map((m) => h("option", { value: String(m), text: label(m) })),
  );
  select.value = String(autoLockMinutes());
  const said = h("p", { class: "state", role: "status", "aria-live": "polite" });
  select.addEventListener("change", () => {
    const m = Number(select.value);
    setAutoLockMinutes(m);
    onChange();
    said.textContent = m === 0 ? "Hush locks only when you choose Lock." : `Hush locks itself ${label(m).toLowerCase()} without activity.`;
  });
  return h(
    "div",
    { class: "stack choices" },
    h("h2", { class: "section-title", text: "Locking" }),
    h(
      "div",
      { class: "field" },
      h("label", { for: id, text: "Lock automatically" }),
      h("p", {
        class: "hint",
        id: `${id}-hint`,
        text: "When nobody has used Hush in this tab for this long, it locks: your passphrase is needed again to read or send.",
      }),
      select,
    ),
    said,
  );
}

// @ts-check
// Other tabs of this profile.
//
// Every tab works on the same database. After a call that commits something another tab shows
// (a poll that stored messages or a join, a send, a flush that changed statuses, a new invite,
// a join, a rename, a delete, a read mark), the tab posts a notice on a BroadcastChannel named
// after the database: { kind, id } only, never a message's text or anything secret. The other
// tabs then re-read what changed: the conversation list, and the newest end of the open chat;
// a message deleted on this device ({ kind: "deleted", id, seq }: its number, not its text)
// goes from a chat open there at once.
// Every tab keeps polling on its own (docs/CLIENT.md, "Several tabs"): the per-conversation
// locks keep the ratchet safe, and a tab's poll that finds the messages already taken by
// another tab changes nothing.
//
// Locking is for the whole profile: a tab that locks (by hand or after the idle time) posts
// { kind: "lock" }, and every other tab locks too. So that the idle time is the profile's and
// not one tab's, a tab in use posts { kind: "active" } now and then (at most every
// ACTIVE_EVERY_MS); the others count it as activity of their own.

/** @typedef {import("./types.js").Client} Client */
/**
 * @typedef {{ kind: "messages" | "status" | "list", id: string | null }
 *   | { kind: "deleted", id: string, seq: number }
 *   | { kind: "lock" | "active", id: null }} TabNotice
 */

/** How often at most a tab in use tells the others so (ms). */
export const ACTIVE_EVERY_MS = 15_000;

/** A poll's notice (from a fetch or from what a subscription pushed). @type {(out: any, id: string) => TabNotice | null} */
const polled = (out, id) => (out.messages.length > 0 || out.joined || out.delivered.length > 0 || out.notice ? { kind: "messages", id } : null);

/**
 * Which calls commit what other tabs show, and the notice each posts when it resolves (from
 * what it resolved to and its arguments).
 * @type {Record<string, (out: any, id: string, ...args: any[]) => TabNotice | null>}
 */
const NOTICES = {
  poll: polled,
  // What a subscription pushed, read: without this notice the other tabs showed it only
  // with the acknowledgement's flush, 20-40 s later (found by an outside trial).
  pollPushed: polled,
  send: (_, id) => ({ kind: "messages", id }),
  flush: (out) => (out.delivered > 0 || out.conflicts > 0 || out.lastError ? { kind: "status", id: null } : null),
  createInvite: (out) => ({ kind: "list", id: out.id }),
  join: (id) => ({ kind: "list", id }),
  rename: (_, id) => ({ kind: "list", id }),
  deleteConversation: (_, id) => ({ kind: "list", id }),
  deleteMessage: (_, id, seq) => ({ kind: "deleted", id, seq }),
  markRead: (_, id) => ({ kind: "list", id }),
  clearNotice: (_, id) => ({ kind: "list", id }),
};

/**
 * What the other tabs did, as the engine hears it.
 * @typedef {Object} TabHooks
 * @property {(ids: Set<string>, chat: boolean, deleted: { id: string, seq: number }[]) => void} onChange
 *   Conversations `ids` changed (a burst of notices is applied once); `chat`: the open chat's
 *   history (or every chat's statuses) changed too; `deleted`: messages deleted there.
 * @property {() => string | null} openChat The conversation open in front here, or null.
 * @property {() => void} onLock Another tab locked.
 * @property {() => void} onActive Another tab is in use.
 */

export class OtherTabs {
  /**
   * @param {string} dbName
   * @param {TabHooks} hooks
   */
  constructor(dbName, hooks) {
    this.name = `hush:${dbName}:changes`;
    this.hooks = hooks;
    /** @type {BroadcastChannel | null} */
    this.channel = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.chat = false;
    /** @type {Set<string>} */
    this.ids = new Set();
    /** @type {{ id: string, seq: number }[]} */
    this.deleted = [];
    /** When this tab last said it is in use (ms since the epoch). */
    this.activeSaid = 0;
  }

  /** Tells the other tabs that this one locked: they lock too. */
  locked() {
    this.#post({ kind: "lock", id: null });
  }

  /** This tab is in use: tells the other tabs, at most every ACTIVE_EVERY_MS. */
  active() {
    const now = Date.now();
    if (now - this.activeSaid < ACTIVE_EVERY_MS && now >= this.activeSaid) return;
    this.activeSaid = now;
    this.#post({ kind: "active", id: null });
  }

  /** @param {TabNotice} notice */
  #post(notice) {
    this.channel?.postMessage(notice);
  }

  /**
   * `client`, posting a notice to the other tabs after each call in NOTICES resolves.
   * @param {object} client The wasm HushClient.
   * @returns {Client}
   */
  wrap(client) {
    return /** @type {Client} */ (
      new Proxy(client, {
        get: (target, prop) => {
          const value = Reflect.get(target, prop);
          if (typeof value !== "function") return value;
          const notice = typeof prop === "string" && Object.hasOwn(NOTICES, prop) ? NOTICES[prop] : null;
          if (!notice) return value.bind(target);
          return async (/** @type {any[]} */ ...args) => {
            const out = await value.apply(target, args);
            const message = notice(out, args[0], ...args.slice(1));
            if (message) this.#post(message);
            return out;
          };
        },
      })
    );
  }

  /**
   * Listens to the other tabs' notices; `unlocked()` says whether to take any notice.
   * @param {() => boolean} unlocked
   */
  listen(unlocked) {
    if (typeof BroadcastChannel !== "function") return;
    this.channel = new BroadcastChannel(this.name);
    this.channel.onmessage = (event) => {
      const { kind, id, seq } = event.data ?? {};
      if (typeof kind !== "string" || !unlocked()) return;
      if (kind === "lock") return this.hooks.onLock();
      if (kind === "active") return this.hooks.onActive();
      if (typeof id === "string") this.ids.add(id);
      if (kind === "deleted") {
        if (typeof id === "string" && Number.isSafeInteger(seq)) this.deleted.push({ id, seq });
      } else if (kind !== "list" && (!id || id === this.hooks.openChat())) {
        this.chat = true;
      }
      // Notices in a burst (a poll, then its flush) are applied once.
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        const { chat, ids, deleted } = this;
        this.chat = false;
        this.ids = new Set();
        this.deleted = [];
        this.hooks.onChange(ids, chat, deleted);
      }, 30);
    };
  }
}

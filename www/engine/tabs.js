// @ts-check
// Other tabs of this profile.
//
// Every tab works on the same database. After a call that commits something another tab shows
// (a poll that stored messages or a join, a send, a flush that changed statuses, a new invite,
// a join, a rename, a delete, a read mark), the tab posts a notice on a BroadcastChannel named
// after the database: { kind, id } only, never a message's text or anything secret. The other
// tabs then re-read what changed: the conversation list, and the newest end of the open chat.
// Every tab keeps polling on its own (docs/CLIENT.md, "Several tabs"): the per-conversation
// locks keep the ratchet safe, and a tab's poll that finds the messages already taken by
// another tab changes nothing.

/** @typedef {import("./types.js").Client} Client */
/** @typedef {{ kind: "messages" | "status" | "list", id: string | null }} TabNotice */

/**
 * Which calls commit what other tabs show, and the notice each posts when it resolves.
 * @type {Record<string, (out: any, id: string) => TabNotice | null>}
 */
const NOTICES = {
  poll: (out, id) => (out.messages.length > 0 || out.joined || out.delivered.length > 0 || out.notice ? { kind: "messages", id } : null),
  // A poll from a subscription's frame stores as a poll does: the tab that read it says so (the
  // others' own frames then find the messages taken, and change nothing to show).
  pollPushed: (out, id) => NOTICES.poll(out, id),
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

export class OtherTabs {
  /**
   * `onChange(ids, chat)`: other tabs changed conversations `ids` (a burst of notices is
   * applied once); `chat`: the open chat's history (or every chat's statuses) changed too.
   * `openChat()`: the conversation open in front here, or null.
   * @param {string} dbName
   * @param {{ onChange: (ids: Set<string>, chat: boolean) => void, openChat: () => string | null }} hooks
   */
  constructor(dbName, { onChange, openChat }) {
    this.name = `hush:${dbName}:changes`;
    this.onChange = onChange;
    this.openChat = openChat;
    /** @type {BroadcastChannel | null} */
    this.channel = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.chat = false;
    /** @type {Set<string>} */
    this.ids = new Set();
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
            const message = notice(out, args[0]);
            if (message) this.channel?.postMessage(message);
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
      const { kind, id } = event.data ?? {};
      if (typeof kind !== "string" || !unlocked()) return;
      if (typeof id === "string") this.ids.add(id);
      if (kind !== "list" && (!id || id === this.openChat())) this.chat = true;
      // Notices in a burst (a poll, then its flush) are applied once.
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        const { chat, ids } = this;
        this.chat = false;
        this.ids = new Set();
        this.onChange(ids, chat);
      }, 30);
    };
  }
}

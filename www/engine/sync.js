// @ts-check
// The sync engine: the unlocked client, the conversation list as last read, and the loop that
// keeps them current: polls (on a timer, or at once when a subscription says the mailbox has
// something), the outbox's flushes with their back-off, the subscriptions' sockets, the other
// tabs' notices, and the mailboxes' health. It touches no DOM: the screens listen to its events
// and read its state (www/app.js wires them).
//
// Each conversation has a subscription (../subscriptions.js): a WebSocket to its mailbox that
// says "poll now" when something is stored at the addresses its next poll fetches. While it is
// live, polls slow to a safety pace; without it, polling alone delivers.
//
// Events (`engine.on(type, listener)`; the listener gets the detail):
//   conversations  { gone }      the list was read again (`gone`: a mailbox or storage problem
//                                went away with its conversation: the net status changed too)
//   net-status     {}            a mailbox's or the outbox's health, or the network, changed
//   messages       { id }        conversation `id`'s history changed (null: any chat's
//                                statuses): the open chat reads its newest end again
//   arrivals       { id, messages }  a poll stored new messages (for notifications)
//   joined         { id, shown } an invite made here was joined (list already read; `shown`:
//                                its invite screen is in front), seen here or in another tab
//   conflicts      {}            a flush met someone else's bytes or ended a conversation
//                                (list already read)
//   other-tabs     { ids, chat, deleted }  another tab changed conversations `ids` (list
//                                already read); `deleted`: messages it deleted ({ id, seq })
//   locked-elsewhere {}          another tab of this profile locked: lock here too
//   active-elsewhere {}          another tab of this profile is in use (for the auto-lock)

import { HushClient, ErrorCode } from "../pkg/hush.js";
import { Subscriptions } from "./subscriptions.js";
import { showing } from "./presence.js";
import { codeOf, isStorageError, messageOf } from "./errors.js";
import { OtherTabs } from "./tabs.js";

/** @typedef {import("./types.js").Client} Client */
/** @typedef {import("./types.js").ConversationSummary} ConversationSummary */
/** @typedef {import("./types.js").HistoryEntry} HistoryEntry */

/**
 * What each event carries.
 * @typedef {{
 *   conversations: { gone: boolean },
 *   "net-status": {},
 *   messages: { id: string | null },
 *   arrivals: { id: string, messages: HistoryEntry[] },
 *   joined: { id: string, shown: boolean },
 *   conflicts: {},
 *   "other-tabs": { ids: Set<string>, chat: boolean, deleted: { id: string, seq: number }[] },
 *   "locked-elsewhere": {},
 *   "active-elsewhere": {},
 * }} EngineEvents
 */

/**
 * The last message of each conversation (../previews.js), read with the list.
 * @typedef {Object} PreviewCache
 * @property {(client: Client, list: ConversationSummary[], force: string | null) => Promise<void>} refresh
 * @property {(id: string) => void} forget
 * @property {() => void} clear
 */

/**
 * How the engine sees the page, read when needed (so it needs no DOM).
 * @typedef {Object} EngineOptions
 * @property {() => boolean} visible Whether the page is in front.
 * @property {() => boolean} online Whether the browser thinks it is online.
 * @property {PreviewCache} previews
 */

/** The IndexedDB database of this profile's vault (also names the channel to other tabs). */
export const DB_NAME = "hush";
/** Retry delays for the outbox while something is pending (ms), then the last one repeats. */
const FLUSH_BACKOFF = [1_500, 3_000, 5_000, 8_000];
/** Longest a flush timer sleeps before comparing its due time with the clock again. */
const FLUSH_RECHECK_MS = 5_000;
/** Longest a lock waits for work that still needs the key (a draft being sealed). */
const LOCK_WAIT_MS = 3_000;

export class SyncEngine extends EventTarget {
  /** @param {EngineOptions} options */
  constructor({ visible, online, previews }) {
    super();
    this.visible = visible;
    this.online = online;
    this.previews = previews;
    /** @type {Client | null} */
    this.client = null;
    /** Conversation summaries, most recent first. @type {ConversationSummary[]} */
    this.conversations = [];
    /** The screen shown: polls of the conversation on it run at the open pace. */
    this.shown = { name: "loading", id: /** @type {string | null} */ (null) };
    /** The conversation whose chat is open, or null. @type {string | null} */
    this.openChat = null;
    /** Bumped on every lock: timers and callbacks of an older generation do nothing. */
    this.generation = 0;
    /** A lock waits for work that still needs the key (lock's `after`). */
    this.locking = false;
    /** @type {Map<string, ReturnType<typeof setTimeout>>} */
    this.pollTimers = new Map();
    /**
     * When each conversation must be polled by (ms since the epoch): its last poll's `pollAt`,
     * a message set aside due then. Every schedule keeps to it. @type {Map<string, number>}
     */
    this.pollDue = new Map();
    /** @type {Set<string>} */
    this.polling = new Set();
    /**
     * Conversations pushed to while their poll ran: polled again right after it, by the end of
     * a poll with no other poll of the conversation running. @type {Set<string>}
     */
    this.pollAgain = new Set();
    /** Conversations subscribed since unlocking (their watch set asked for at least once). @type {Set<string>} */
    this.subscribed = new Set();
    /** Per conversation, the latest watch-set request: an older answer arriving later is dropped. @type {Map<string, number>} */
    this.watchTurns = new Map();
    /** Mailboxes (base URLs) whose last request failed. @type {Set<string>} */
    this.unreachable = new Set();
    /** Mailboxes (base URLs) that answered 404: no Hush mailbox at that address. @type {Set<string>} */
    this.wrongMailbox = new Set();
    /** Conversations whose last poll could not store what it read: this browser's storage is full. @type {Set<string>} */
    this.storageFull = new Set();
    /** Blobs waiting in the outbox after the last flush. */
    this.pending = 0;
    this.flushError = false;
    /** The ErrorCode of the last flush's failure (MailboxNotFound: a wrong mailbox address). @type {number | null} */
    this.flushErrorCode = null;
    /** @type {Promise<void> | null} */
    this.flushing = null;
    this.flushAgain = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.flushTimer = undefined;
    /** When (ms since the epoch, this device's clock) the scheduled flush is due; Infinity: none. */
    this.flushDue = Infinity;
    this.flushFailures = 0;
    /** Sends run one after another, in the order they were typed. @type {Promise<void>} */
    this.sendQueue = Promise.resolve();
    /** The conversations' sockets: a push polls at once; a socket lost brings back the usual pace. */
    this.subs = new Subscriptions({
      onPush: (/** @type {string} */ id, /** @type {Uint8Array} */ message) => this.pollNow(id, message),
      refreshDelayMs: () => HushClient.watchRefreshDelayMs(),
      onLive: (/** @type {string} */ id, /** @type {boolean} */ live) => {
        if (!live && this.byId(id)) this.schedulePoll(id);
      },
    });
    this.tabs = new OtherTabs(DB_NAME, {
      onChange: (ids, chat, deleted) => this.#applyOtherTabs(ids, chat, deleted),
      openChat: () => this.openChat,
      onLock: () => this.emit("locked-elsewhere", {}),
      onActive: () => this.emit("active-elsewhere", {}),
    });
  }

  /**
   * Listens to event `type` (see the top of this file); the listener gets its detail.
   * @template {keyof EngineEvents} K
   * @param {K} type
   * @param {(detail: EngineEvents[K]) => void} listener
   */
  on(type, listener) {
    this.addEventListener(type, (event) => listener(/** @type {CustomEvent<EngineEvents[K]>} */ (event).detail));
  }

  /**
   * @template {keyof EngineEvents} K
   * @param {K} type
   * @param {EngineEvents[K]} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Opens the client over this profile's database and listens to the other tabs. */
  async open() {
    this.client = this.tabs.wrap(await HushClient.open(DB_NAME));
    this.tabs.listen(() => this.isUnlocked);
    return this.client;
  }

  /** The client, once opened (every caller runs after `open`). */
  get api() {
    if (!this.client) throw new Error("the client is not open");
    return this.client;
  }

  get isUnlocked() {
    return !this.locking && Boolean(this.client?.isUnlocked);
  }

  /** @param {string | null | undefined} id */
  byId(id) {
    return this.conversations.find((c) => c.id === id);
  }

  /**
   * Records the screen shown (`id`: its conversation, polled at the open pace; an invite shown
   * reports its join with a `joined` event).
   * @param {string} name
   * @param {string | null} id
   */
  setShown(name, id) {
    this.shown = { name, id };
  }

  /**
   * Tells the client which conversation is open in front (none when the page is hidden): its
   * acknowledgements wait for a reply to carry them (20–40 s instead of 2–8 s).
   * @param {string | null} [chat] The chat now open (undefined: unchanged).
   */
  updateReading(chat) {
    if (chat !== undefined) this.openChat = chat;
    const front = this.isUnlocked && this.visible() && this.openChat ? this.openChat : null;
    showing(front);
    if (!this.client?.isUnlocked) return;
    this.client.setReading(front);
  }

  /**
   * After unlocking: reads the list (which subscribes each conversation), polls each
   * conversation, flushes, and schedules the client's periodic work.
   * @param {boolean} deleteAfterRead A setting of this browser: the client forgets it when locked.
   */
  async start(deleteAfterRead) {
    this.generation += 1;
    this.api.setDeleteAfterRead(deleteAfterRead);
    await this.refreshList(); // Subscribes each conversation.
    for (const c of this.conversations) this.schedulePoll(c.id, 0);
    this.flushSoon(0);
    this.#flushAtFromClient();
  }

  /**
   * Locks the client and forgets everything read since unlocking; stops every timer and socket.
   * The other tabs of this profile lock too (told unless `elsewhere`: the lock came from one).
   * `after`: work that still needs the key (the open chat's draft being sealed): the client
   * locks once it settles (LOCK_WAIT_MS at most), the rest at once; meanwhile `isUnlocked` is
   * already false.
   * @param {{ elsewhere?: boolean, after?: Promise<unknown> }} [options]
   */
  lock({ elsewhere = false, after } = {}) {
    if (!elsewhere) this.tabs.locked();
    this.previews.clear();
    this.generation += 1;
    for (const timer of this.pollTimers.values()) clearTimeout(timer);
    this.pollTimers.clear();
    this.pollDue.clear();
    this.pollAgain.clear();
    clearTimeout(this.flushTimer);
    this.flushDue = Infinity;
    if (after) {
      this.locking = true;
      const generation = this.generation;
      const api = this.api;
      Promise.race([after, new Promise((r) => setTimeout(r, LOCK_WAIT_MS))]).finally(() => {
        // Unlocked again meanwhile (not possible that fast, but then the key stays).
        if (generation === this.generation) api.lock();
        this.locking = false;
      });
    } else {
      this.api.lock();
    }
    this.subs.closeAll();
    this.subscribed.clear();
    this.watchTurns.clear();
    this.conversations = [];
    this.unreachable.clear();
    this.wrongMailbox.clear();
    this.storageFull.clear();
    this.flushError = false;
    this.flushErrorCode = null;
    this.emit("net-status", {});
  }

  /**
   * Reads the list again (`sentIn`: a conversation just written to, whose preview is read again).
   * @param {string | null} [sentIn]
   */
  async refreshList(sentIn = null) {
    const generation = this.generation;
    let list;
    try {
      list = await this.api.listConversations();
      await this.previews.refresh(this.api, list, sentIn);
    } catch (err) {
      if (codeOf(err) !== ErrorCode.Locked) console.warn("Could not list conversations", messageOf(err));
      return;
    }
    if (generation !== this.generation) return;
    this.conversations = list;
    // Problems of deleted conversations, or of mailboxes none uses any more, are gone with them.
    const mailboxes = new Set(list.map((c) => c.mailbox));
    const ids = new Set(list.map((c) => c.id));
    let gone = false;
    for (const set of [this.wrongMailbox, this.unreachable]) for (const m of set) if (!mailboxes.has(m)) gone = set.delete(m);
    for (const id of this.storageFull) if (!ids.has(id)) gone = this.storageFull.delete(id);
    // Deleted conversations (here or in another tab) lose their socket; new ones get one.
    for (const id of this.subscribed) {
      if (ids.has(id)) continue;
      this.subscribed.delete(id);
      this.subs.close(id);
    }
    for (const c of list) if (!this.subscribed.has(c.id)) this.#subscribe(c.id);
    this.emit("conversations", { gone });
  }

  /**
   * Forgets conversation `id`'s timer and socket (it was deleted here).
   * @param {string} id
   */
  forget(id) {
    clearTimeout(this.pollTimers.get(id));
    this.pollTimers.delete(id);
    this.subscribed.delete(id);
    this.subs.close(id);
  }

  /**
   * Why a conversation's mailbox is failing it, if it is: "wrong" (it answered 404),
   * "refused" (it answered, but would not store: a full disk's 507, say) or "unreachable".
   * `outgoing`: the conversation has blobs waiting (the hello, unsent messages),
   * so the last flush's failure may be its own (a flush's error names no mailbox).
   * @param {ConversationSummary} c
   * @param {boolean} [outgoing]
   * @returns {"wrong" | "refused" | "unreachable" | null}
   */
  mailboxProblem(c, outgoing = c.connecting) {
    if (this.wrongMailbox.has(c.mailbox)) return "wrong";
    if (outgoing && this.flushError && this.flushErrorCode === ErrorCode.MailboxNotFound) return "wrong";
    if (this.unreachable.has(c.mailbox)) return "unreachable";
    if (outgoing && this.flushError) return this.flushErrorCode === ErrorCode.MailboxRejected ? "refused" : "unreachable";
    return null;
  }

  /**
   * Sends `text` in conversation `id` after the sends before it; `onFailed(err)` if the client
   * refused it. Then the chat and the list are read again and the outbox flushed. Resolves
   * once the client stored the message (or refused it), before the flush.
   * @param {string} id
   * @param {string} text
   * @param {(err: unknown) => void} onFailed
   * @returns {Promise<void>}
   */
  send(id, text, onFailed) {
    /** @type {(value?: void) => void} */
    let settled = () => {};
    const stored = new Promise((resolve) => (settled = resolve));
    this.sendQueue = this.sendQueue.then(async () => {
      try {
        await this.api.send(id, text);
      } catch (err) {
        onFailed(err);
        return;
      } finally {
        settled();
      }
      this.emit("messages", { id });
      this.refreshList(id);
      await this.flush();
    });
    return stored;
  }

  // -------------------------------------------------------------------------------------------
  // Polling

  /**
   * Polls `id` after `delay` ms (default: the client's randomised pace for it), and by the
   * time its last poll's `pollAt` named at the latest (a message set aside is due then).
   * @param {string} id
   * @param {number} [delay]
   */
  schedulePoll(id, delay) {
    if (!this.client?.isUnlocked) return;
    clearTimeout(this.pollTimers.get(id));
    if (this.polling.has(id)) return; // The running poll schedules the next one.
    const open = this.shown.id === id;
    // With the subscription live, the mailbox says when to poll: only a slow safety poll.
    const pace = delay ?? (this.subs.live(id) ? HushClient.safetyPollDelayMs() : HushClient.pollDelayMs(this.visible(), open));
    // (A due time past already was missed by a poll that failed: the pace goes on.)
    const due = (this.pollDue.get(id) ?? Infinity) - Date.now();
    const wait = due > 0 && due < pace ? Math.max(1_000, due) : pace;
    const generation = this.generation;
    this.pollTimers.set(
      id,
      setTimeout(() => {
        if (generation === this.generation) this.pollOnce(id);
      }, wait),
    );
  }

  /**
   * Polls `id` at once (the mailbox pushed to it), reading `pushed` (a subscription message)
   * in place of a fetch when given (`pollPushed`: no request when the pushed blobs are next in
   * the peer's order); during its poll, a full poll right after it (which reads them too).
   * @param {string} id
   * @param {Uint8Array | null} [pushed]
   */
  pollNow(id, pushed = null) {
    if (!this.client?.isUnlocked || !this.byId(id)) return;
    if (this.polling.has(id)) {
      this.pollAgain.add(id);
      return;
    }
    clearTimeout(this.pollTimers.get(id));
    this.pollOnce(id, pushed);
  }

  /**
   * Watches the addresses of conversation `id`'s next poll on its own socket (opened if needed;
   * the watch set is sent only when it changed). No WebSocket here: nothing, polling delivers.
   * @param {string} id
   */
  async #subscribe(id) {
    const c = this.byId(id);
    if (!c || !Subscriptions.supported) return;
    this.subscribed.add(id);
    const generation = this.generation;
    const turn = (this.watchTurns.get(id) ?? 0) + 1;
    this.watchTurns.set(id, turn);
    let bytes;
    try {
      bytes = await this.api.watchSet(id);
    } catch (err) {
      const code = codeOf(err);
      if (code === ErrorCode.UnknownConversation) this.subs.close(id);
      else if (code !== ErrorCode.Locked) console.warn("Could not read the addresses to watch", messageOf(err));
      return;
    }
    if (generation !== this.generation || this.watchTurns.get(id) !== turn || !this.byId(id)) return;
    this.subs.watch(id, c.mailbox, bytes);
  }

  /**
   * @param {string} id
   * @param {Uint8Array | null} [pushed] a subscription message to read instead of fetching
   */
  async pollOnce(id, pushed = null) {
    this.pollTimers.delete(id);
    const c = this.byId(id);
    if (!c || !this.client?.isUnlocked) return;
    const client = this.client;
    const generation = this.generation;
    this.polling.add(id);
    let changed = false;
    let recovered = false;
    try {
      const out = pushed ? await client.pollPushed(id, pushed) : await client.poll(id);
      if (out.pollAt == null) this.pollDue.delete(id);
      else this.pollDue.set(id, out.pollAt);
      // What it read from the subscription is deleted over it (delete after read on).
      if (out.deleteMessages.length > 0) this.subs.sendDeletes(id, out.deleteMessages);
      recovered = this.unreachable.delete(c.mailbox);
      // The mailbox answers: sockets to it waiting out their back-off reconnect now, so push
      // is back at once rather than up to a minute after polling found it again.
      if (!this.subs.live(id)) this.subs.retryNow(c.mailbox);
      // The mailbox answered, and what it had is stored.
      if (this.wrongMailbox.delete(c.mailbox)) changed = true;
      if (this.storageFull.delete(id)) changed = true;
      // New messages, a join, messages of ours that their device acknowledged (now
      // "Delivered"), or a notice raised (interference, a restored device): show it.
      changed = changed || out.joined || out.messages.length > 0 || out.delivered.length > 0 || out.notice;
      // An acknowledgement is owed (it goes out with a flush after a short random delay), or a
      // message was re-encrypted for a later address (flush now).
      this.flushAt(out.flushAt);
      this.emit("arrivals", { id, messages: out.messages });
      // Shown: what the poll read leaves the mailbox now (delete after read on).
      if (out.deletesOwed > 0) await client.deleteRead(id);
      if (out.joined) {
        await this.refreshList();
        this.emit("joined", { id, shown: this.shown.name === "invite" && this.shown.id === id });
      }
    } catch (err) {
      const code = codeOf(err);
      if (code === ErrorCode.Locked || code === ErrorCode.UnknownConversation) {
        this.polling.delete(id);
        return;
      }
      if (pushed && code === ErrorCode.MailboxRejected) {
        // A subscription message that does not parse: read the poll set instead, at once.
        console.warn("A pushed message did not parse; polling");
        this.pollAgain.add(id);
      } else if (code === ErrorCode.MailboxNotFound) {
        if (!this.wrongMailbox.has(c.mailbox)) changed = true;
        this.wrongMailbox.add(c.mailbox);
        this.unreachable.delete(c.mailbox);
      } else if (code === ErrorCode.MailboxUnreachable || code === ErrorCode.MailboxRejected) {
        if (!this.unreachable.has(c.mailbox)) changed = true;
        this.unreachable.add(c.mailbox);
        this.wrongMailbox.delete(c.mailbox);
      } else if (code === ErrorCode.StorageFull) {
        // What the poll read stays on the mailbox; it is read again once there is room.
        if (!this.storageFull.has(id)) changed = true;
        this.storageFull.add(id);
        console.warn("Poll could not store new messages: storage is full; retrying");
      } else {
        console.warn("Poll failed; retrying", messageOf(err));
      }
    }
    this.polling.delete(id);
    if (generation !== this.generation) return;
    // The poll moved the addresses to watch on (messages read, a join): watch the new ones.
    this.#subscribe(id);
    if (changed || recovered) {
      this.emit("net-status", {});
      await this.refreshList();
      this.emit("messages", { id });
    }
    // The mailbox answers again after failing: deliver what waits now. Otherwise blobs still
    // pending wait for the flush back-off (FLUSH_BACKOFF), so that a mailbox that is down,
    // overloaded or full is not sent a flush after every poll.
    if (recovered) this.flushSoon(0);
    // Pushed to during the poll: a full poll now. A poll of this conversation may have started
    // meanwhile (a push read while the list was read again above): then the request is left
    // for it to take when it ends, as it ends later than this one. Taken here, it would be
    // lost, and what was pushed would wait for the next snapshot (minutes).
    if (!this.polling.has(id) && this.pollAgain.delete(id)) this.pollNow(id);
    else this.schedulePoll(id);
  }

  // -------------------------------------------------------------------------------------------
  // The outbox

  /**
   * Flushes in `delay` ms, unless a flush is already due earlier.
   * @param {number} delay
   */
  flushSoon(delay) {
    this.flushAt(Date.now() + Math.max(0, delay));
  }

  /**
   * Flushes at `at` (ms since the epoch, the clock the client uses), unless a flush is already
   * due earlier; `null` asks for nothing. The client's periodic work (acknowledgements owed,
   * checks that stored blobs are still on the mailbox) runs inside flush, at the times it names.
   * The timer wakes at least every FLUSH_RECHECK_MS to compare `at` with the clock: a device
   * that slept, or a clock that was set forward, does not leave that work waiting.
   * @param {number | null | undefined} at
   */
  flushAt(at) {
    if (at === null || at === undefined || !Number.isFinite(at)) return;
    if (at >= this.flushDue) return;
    this.flushDue = at;
    this.#armFlushTimer();
  }

  #armFlushTimer() {
    clearTimeout(this.flushTimer);
    const generation = this.generation;
    const wait = Math.min(FLUSH_RECHECK_MS, Math.max(0, this.flushDue - Date.now()));
    this.flushTimer = setTimeout(() => {
      if (generation !== this.generation) return;
      if (Date.now() < this.flushDue) return this.#armFlushTimer();
      this.flushDue = Infinity;
      this.flush();
    }, wait);
  }

  /** Schedules the client's next periodic work (after unlocking): when it says it is due. */
  async #flushAtFromClient() {
    const generation = this.generation;
    try {
      const at = await this.api.nextFlushAt();
      if (generation === this.generation) this.flushAt(at);
    } catch (err) {
      if (codeOf(err) !== ErrorCode.Locked) console.warn("Could not read when to flush next", messageOf(err));
    }
  }

  /**
   * Delivers the outbox; one flush at a time (a request during a flush runs another after it).
   * @returns {Promise<void>}
   */
  async flush() {
    if (!this.client?.isUnlocked) return;
    const client = this.client;
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    const generation = this.generation;
    this.flushing = (async () => {
      let delivered = 0;
      let conflicts = 0;
      let ended = 0;
      /** @type {number | null} */
      let next = null;
      do {
        this.flushAgain = false;
        try {
          const out = await client.flush();
          delivered += out.delivered;
          conflicts += out.conflicts;
          ended += out.ended;
          next = out.flushAt;
          this.pending = out.pending;
          // Messages held back while blobs waited for the mailbox: the poll seals them.
          for (const id of out.pollNow ?? []) this.pollNow(id);
          this.flushError = out.pending > 0 && Boolean(out.lastError);
          this.flushErrorCode = this.flushError ? out.lastErrorCode : null;
        } catch (err) {
          if (codeOf(err) === ErrorCode.Locked) return;
          // Storage failing is not the mailbox's fault: the blobs wait in the outbox.
          this.flushError = !isStorageError(err);
          this.flushErrorCode = this.flushError ? codeOf(err) : null;
          console.warn("Flush failed; retrying", messageOf(err));
        }
      } while (this.flushAgain && generation === this.generation);
      if (generation !== this.generation) return;
      // A joiner's hello delivered: "Connecting…" becomes "Connected" (refreshList).
      if (delivered > 0 && this.conversations.some((c) => c.connecting)) {
        await this.refreshList();
        if (generation !== this.generation) return;
      }
      this.emit("net-status", {});
      if (conflicts > 0 || ended > 0) {
        // An invite someone else joined first, a message the mailbox could not take, or a
        // conversation the other person's restored device can no longer follow.
        await this.refreshList();
        this.emit("conflicts", {});
      }
      // Statuses change (sending → sent, or failed) on every flush with work: redraw.
      if (delivered > 0 || conflicts > 0 || this.pending > 0) this.emit("messages", { id: null });
      if (this.pending > 0) {
        const wait = FLUSH_BACKOFF[Math.min(this.flushFailures, FLUSH_BACKOFF.length - 1)];
        this.flushFailures += 1;
        this.flushSoon(wait);
      } else {
        this.flushFailures = 0;
      }
      // The client's next periodic work: an acknowledgement owed, a retransmission check.
      this.flushAt(next);
    })();
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  // -------------------------------------------------------------------------------------------
  // The page's state

  /** The network came back or went away. */
  networkChanged() {
    this.emit("net-status", {});
    if (this.online() && this.client?.isUnlocked) {
      for (const c of this.conversations) this.schedulePoll(c.id, 0);
      this.flushSoon(0);
      this.subs.retryNow();
    }
  }

  /** The page was hidden or came back in front. */
  visibilityChanged() {
    if (!this.client?.isUnlocked) return;
    this.updateReading();
    // Polls slow down in the background and speed up again in front.
    for (const c of this.conversations) this.schedulePoll(c.id, this.visible() ? 300 : undefined);
    if (this.visible()) this.emit("messages", { id: null });
  }

  /** This tab is in use (for the other tabs' auto-lock). */
  active() {
    if (this.isUnlocked) this.tabs.active();
  }

  /**
   * Another tab changed conversations `ids` (and the open chat's history, `chat`; deleted
   * messages `deleted`): the list is read again, and a conversation made there is polled here too.
   * @param {Set<string>} ids
   * @param {boolean} chat
   * @param {{ id: string, seq: number }[]} deleted
   */
  async #applyOtherTabs(ids, chat, deleted) {
    const generation = this.generation;
    for (const { id } of deleted) this.previews.forget(id); // It may have been the last message.
    const waiting = new Set(this.conversations.filter((c) => !c.joined && ids.has(c.id)).map((c) => c.id));
    await this.refreshList();
    if (generation !== this.generation || !this.client?.isUnlocked) return;
    // An invite of this profile joined, as another tab's poll found.
    for (const c of this.conversations) if (waiting.has(c.id) && c.joined) this.emit("joined", { id: c.id, shown: this.shown.name === "invite" && this.shown.id === c.id });
    for (const c of this.conversations) if (!this.pollTimers.has(c.id) && !this.polling.has(c.id)) this.schedulePoll(c.id);
    this.emit("other-tabs", { ids, chat, deleted });
  }
}

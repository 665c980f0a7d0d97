// @ts-check
// Subscriptions: one WebSocket per conversation to its mailbox's `GET /v1/subscribe`
// (docs/MAILBOX-API.md, revision 1.1), over which the mailbox pushes what is stored at the
// addresses the conversation watches. This module only owns the sockets: it sends the watch
// sets the client computes (HushClient.watchSet, exactly the addresses of the next poll, decoys
// included) and says "poll this conversation now" when the mailbox sends anything. It reads
// nothing of what arrives: the poll fetches, decrypts and commits, as without a socket.
//
// One socket per conversation, and never two conversations' addresses in one watch set: a
// connection links its watch sets as a series of fetches from one client would, so sharing one
// would link the conversations (docs/THREAT-MODEL.md).
//
// Polling stays the fallback: while a conversation's socket is not live (no WebSocket in this
// browser, a mailbox without subscriptions, a socket closed and waiting to reconnect) the app
// polls at its usual pace; while it is live, only a slow safety poll runs.

/** First reconnect delay after a socket closed (ms); doubles per failure up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 60_000;
/**
 * Reconnect delay when the mailbox closed us for a bug of ours (1008 bad or missing watch set,
 * 1003, 1009), or when no socket to this mailbox ever opened (a mailbox without
 * subscriptions, or one not reachable now): polling carries on meanwhile.
 */
const RETRY_LONG_MS = 5 * 60_000;
/**
 * How long a refreshed watch set may wait for its snapshot before the socket is taken for dead
 * (a connection that died without a close: a network change, a NAT that forgot it) and opened
 * again.
 */
const SNAPSHOT_WAIT_MS = 15_000;
/** Close codes that mean the client did something wrong: retrying at once would repeat it. */
const BUG_CODES = new Set([1003, 1008, 1009]);

/**
 * One conversation's socket: the mailbox, the watch set wanted and the one sent, whether it is
 * live, failures in a row, and its timers (reconnect, refresh, wait for a snapshot; 0: none).
 * @typedef {{ mailbox: string, want: Uint8Array<ArrayBuffer> | null, sent: Uint8Array<ArrayBuffer> | null, socket: WebSocket | null, live: boolean, failures: number, timer: number, refresh: number, waiting: number, longWait?: boolean, deletesSent?: boolean }} Entry
 */

/**
 * The subscription URL of a mailbox base URL: http→ws, https→wss, plus /v1/subscribe.
 * @param {string} mailbox
 */
export function subscribeUrl(mailbox) {
  return `${mailbox.replace(/^http/i, "ws")}/v1/subscribe`;
}

/** @type {(a: Uint8Array<ArrayBuffer> | null, b: Uint8Array<ArrayBuffer> | null) => boolean} */
const sameBytes = (a, b) => a !== null && b !== null && a.length === b.length && a.every((byte, i) => byte === b[i]);

/** 50–100 % of `ms`, so that sockets closed together do not come back together. */
/** @param {number} ms */
const jitter = (ms) => Math.round(ms * (0.5 + Math.random() / 2));

/** A reconnect delay after `failures` failures in a row: exponential, with jitter. */
/** @param {number} failures */
const backoff = (failures) => jitter(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(failures, 16)));

export class Subscriptions {
  /**
   * onPush(id, message): the mailbox sent something for conversation `id` (a non-empty
   * snapshot or a push, `message` its bytes in the fetch response framing): read it
   * (HushClient.pollPushed). onLive(id, live): its subscription came into force (the first
   * snapshot) or ended. refreshDelayMs(): how long a live subscription waits before sending
   * its watch set again; the snapshot that answers it shows the connection still works
   * (cheaper than a poll: one WebSocket message instead of a request) and brings anything a
   * push missed.
   */
  /**
   * @param {{ onPush: (id: string, message: Uint8Array) => void, onLive?: (id: string, live: boolean) => void, refreshDelayMs?: () => number }} hooks
   */
  constructor({ onPush, onLive = () => {}, refreshDelayMs = () => 180_000 }) {
    this.onPush = onPush;
    this.onLive = onLive;
    /** ms until a live subscription sends its watch set again (HushClient.watchRefreshDelayMs). */
    this.refreshDelayMs = refreshDelayMs;
    /** id → its socket's state. @type {Map<string, Entry>} */
    this.entries = new Map();
    /** Mailboxes on which a socket opened in this page: they have subscriptions. @type {Set<string>} */
    this.opened = new Set();
    /**
     * Mailboxes that closed a socket for a delete message ("bad watch set": older than
     * Mailbox API revision 1.2): no more delete messages to them in this page.
     * @type {Set<string>}
     */
    this.noDeletes = new Set();
  }

  /** Whether WebSockets exist here at all. */
  static get supported() {
    return typeof WebSocket === "function";
  }

  /**
   * Watches `bytes` (concatenated 32-byte addresses) for conversation `id` on `mailbox`:
   * opens its socket if none is open or waiting, and sends the watch set if it differs from
   * the one in force. `bytes` null: nothing to watch, the socket is closed.
   * @param {string} id
   * @param {string} mailbox
   * @param {Uint8Array<ArrayBuffer> | null} bytes
   */
  watch(id, mailbox, bytes) {
    if (!Subscriptions.supported) return;
    if (!bytes || bytes.length === 0) return this.close(id);
    let entry = this.entries.get(id);
    if (entry && entry.mailbox !== mailbox) {
      this.close(id);
      entry = undefined;
    }
    if (!entry) {
      entry = { mailbox, want: null, sent: null, socket: null, live: false, failures: 0, timer: 0, refresh: 0, waiting: 0 };
      this.entries.set(id, entry);
    }
    entry.want = bytes;
    if (entry.socket?.readyState === WebSocket.OPEN) this.#sendWanted(entry);
    else if (!entry.socket && !entry.timer) this.#connect(id, entry);
  }

  /**
   * Whether conversation `id`'s watch set is in force (a snapshot arrived on an open socket).
   * @param {string} id
   */
  live(id) {
    const entry = this.entries.get(id);
    return Boolean(entry?.live && entry.socket?.readyState === WebSocket.OPEN);
  }

  /**
   * Sends delete messages (HushClient.pollPushed's `deleteMessages`: what it read, for the
   * mailbox to delete, Mailbox API revision 1.2) on conversation `id`'s socket, which was
   * pushed those blobs, so they link nothing more. Best effort, as deletes are: with the
   * socket closed they are dropped and the blobs expire. Returns whether they were sent.
   * @param {string} id
   * @param {Uint8Array[]} messages
   */
  sendDeletes(id, messages) {
    const entry = this.entries.get(id);
    const socket = entry?.socket;
    if (!entry || socket?.readyState !== WebSocket.OPEN || this.noDeletes.has(entry.mailbox)) return false;
    for (const message of messages) socket.send(/** @type {Uint8Array<ArrayBuffer>} */ (message));
    entry.deletesSent = true;
    return true;
  }

  /** The ids with a socket open or waiting to reconnect. */
  ids() {
    return [...this.entries.keys()];
  }

  /**
   * Closes conversation `id`'s socket and forgets it (deleted, ended, or nothing to watch).
   * @param {string} id
   */
  close(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    clearTimeout(entry.timer);
    this.#stopRefresh(entry);
    const socket = entry.socket;
    entry.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      if (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN) socket.close(1000);
    }
    if (entry.live) {
      entry.live = false;
      this.onLive(id, false);
    }
  }

  /** Closes every socket (on lock). */
  closeAll() {
    for (const id of this.ids()) this.close(id);
  }

  /**
   * Reconnects at once whatever waits to reconnect (the network came back), or only what
   * waits for `mailbox` (a request to it just succeeded).
   * @param {string | null} [mailbox]
   */
  retryNow(mailbox = null) {
    for (const [id, entry] of this.entries) {
      if (entry.socket || !entry.timer) continue;
      // Only a mailbox where a socket has opened before (one with subscriptions), and not
      // after a close for a bug of ours, which retrying at once would repeat.
      if (mailbox !== null && (entry.mailbox !== mailbox || entry.longWait || !this.opened.has(mailbox))) continue;
      clearTimeout(entry.timer);
      entry.timer = 0;
      this.#connect(id, entry);
    }
  }

  /** @param {Entry} entry */
  #sendWanted(entry) {
    if (sameBytes(entry.want, entry.sent)) return;
    /** @type {WebSocket} */ (entry.socket).send(/** @type {Uint8Array<ArrayBuffer>} */ (entry.want));
    entry.sent = entry.want;
  }

  /**
   * @param {string} id
   * @param {Entry} entry
   */
  #connect(id, entry) {
    entry.timer = 0;
    entry.sent = null;
    let socket;
    try {
      socket = new WebSocket(subscribeUrl(entry.mailbox));
    } catch {
      // A URL the browser refuses (a page's CSP, a malformed address): polling only.
      return this.#retry(id, entry, jitter(RETRY_LONG_MS));
    }
    socket.binaryType = "arraybuffer";
    entry.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.opened.add(entry.mailbox);
      this.#sendWanted(entry);
    };
    socket.onmessage = (event) => {
      // Text is not part of the API; binary messages are fetch response bodies.
      if (!(event.data instanceof ArrayBuffer)) return;
      // Any message shows the connection works: the next refresh is a full interval away.
      this.#scheduleRefresh(id, entry, socket);
      if (!entry.live) {
        // The first snapshot: the watch set is in force, the connection works.
        entry.live = true;
        entry.failures = 0;
        this.onLive(id, true);
      }
      // An empty snapshot: nothing stored at the watched addresses. Anything else is read.
      if (event.data.byteLength > 0) this.onPush(id, new Uint8Array(event.data));
    };
    socket.onclose = (event) => {
      if (entry.socket !== socket) return;
      // A mailbox older than revision 1.2 takes a delete message for a bad watch set.
      if (entry.deletesSent && event.code === 1008 && event.reason === "bad watch set") this.noDeletes.add(entry.mailbox);
      entry.deletesSent = false;
      this.#stopRefresh(entry);
      entry.socket = null;
      entry.sent = null;
      const wasLive = entry.live;
      entry.live = false;
      if (wasLive) this.onLive(id, false);
      entry.failures += 1;
      const long = BUG_CODES.has(event.code) || (!opened && !this.opened.has(entry.mailbox));
      entry.longWait = long;
      this.#retry(id, entry, long ? jitter(RETRY_LONG_MS) : backoff(entry.failures - 1));
    };
    socket.onerror = () => {}; // A close event follows, with the code.
  }

  /** (Re)arms the refresh of a live subscription; any wait for a snapshot is over. */
  /**
   * @param {string} id
   * @param {Entry} entry
   * @param {WebSocket} socket
   */
  #scheduleRefresh(id, entry, socket) {
    this.#stopRefresh(entry);
    entry.refresh = setTimeout(() => {
      if (this.entries.get(id) !== entry || entry.socket !== socket) return;
      if (socket.readyState !== WebSocket.OPEN || !entry.want) return;
      socket.send(entry.want);
      entry.sent = entry.want;
      // No snapshot in time: the connection is dead without having said so. Its close
      // handshake could take minutes on a dead connection: end it here, as a close would.
      entry.waiting = setTimeout(() => {
        if (entry.socket !== socket) return;
        const onclose = socket.onclose;
        socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
        socket.close();
        /** @type {((event: { code: number }) => void) | null} */ (onclose)?.({ code: 1006 });
      }, SNAPSHOT_WAIT_MS);
    }, this.refreshDelayMs());
  }

  /** @param {Entry} entry */
  #stopRefresh(entry) {
    clearTimeout(entry.refresh);
    clearTimeout(entry.waiting);
    entry.refresh = 0;
    entry.waiting = 0;
  }

  /**
   * @param {string} id
   * @param {Entry} entry
   * @param {number} delay
   */
  #retry(id, entry, delay) {
    if (this.entries.get(id) !== entry) return;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      if (this.entries.get(id) === entry) this.#connect(id, entry);
    }, delay);
  }
}

// @ts-check
// The shapes of what the wasm client (../pkg/hush.js, wasm-client/src/api.rs) resolves to,
// for the type check (`tsc -p tsconfig.json`): its generated declarations say only
// `Promise<any>`. Nothing here runs; modules refer to these types with
// `import("./engine/types.js").Name`.

/**
 * A message's delivery state: "sending" (on this device), "sent" (on the mailbox),
 * "delivered" (the other device acknowledged it), "failed" (refused, retried), "conflict"
 * (never delivered: someone else's bytes took its addresses), "received".
 * @typedef {"sending" | "sent" | "delivered" | "failed" | "conflict" | "received"} DeliveryStatus
 */

/**
 * One history entry (`history`, `historyPage`, a poll's `messages`).
 * @typedef {Object} HistoryEntry
 * @property {number} seq Its number in the conversation, from 1.
 * @property {boolean} outgoing Written on this device.
 * @property {string} text
 * @property {number} time ms since the epoch.
 * @property {DeliveryStatus} status
 * @property {string} [reason] Set by the chat screen only: why it is not delivered.
 */

/**
 * Why a conversation ended: made with protocol version 1, the other device restored from an
 * older copy after our last reply, or the two devices' states diverged.
 * @typedef {"protocolV1" | "peerRestored" | "diverged"} EndReason
 */

/**
 * One conversation (`listConversations`, `conversation`).
 * @typedef {Object} ConversationSummary
 * @property {string} id Local id (never sent anywhere).
 * @property {string} name The name only this person sees.
 * @property {string} mailbox Base URL of its mailbox.
 * @property {boolean} joined The other person joined (or this device joined their invite).
 * @property {string | null} safetyCode Digits in groups, once joined.
 * @property {string | null} inviteLink The invite made here, while nobody joined.
 * @property {number} unread
 * @property {number} lastActivity ms since the epoch.
 * @property {number | null} expiresAt When the invite expires (ms since the epoch).
 * @property {boolean} inviteTaken Someone else joined the invite first.
 * @property {number | null} verifiedAt When the safety code was marked verified.
 * @property {boolean} connecting Joined here, but the hello is not on the mailbox yet.
 * @property {EndReason | null} ended
 * @property {{ since: number, undelivered: number, rejected: number } | null} interference
 * @property {{ detected: number, lostBlobs: number } | null} rollback
 * @property {{ since: number, signalAt: number, lostReads: boolean } | null} unreadable
 *   `signalAt`: when this device tells the other person's device and the conversation ends,
 *   unless a later message of theirs can be read here first; `lostReads`: it stands only
 *   because a lost copy of this device read messages of theirs that were then deleted from
 *   the mailbox (their device puts them back when it next reads this one); `signalAt` is
 *   then a day after `since`, or 5 minutes after their device read the request and the
 *   messages still did not come back.
 */

/**
 * What `poll(id)` resolves to; the messages are stored when it resolves.
 * @typedef {Object} PollOutcome
 * @property {HistoryEntry[]} messages
 * @property {boolean} joined The other person joined in this poll.
 * @property {number} rejected Blobs found at our addresses that were not theirs.
 * @property {number[]} delivered `seq`s of ours the other device acknowledged.
 * @property {boolean} notice A notice was raised (read the conversation again).
 * @property {number | null} flushAt When to flush (ms since the epoch), or null.
 * @property {Uint8Array[]} deleteMessages After `pollPushed` with delete after read on: the
 *   delete messages for what it read, to send on the conversation's subscription socket
 *   (empty otherwise).
 * @property {number} deletesOwed After `poll` with delete after read on: how many blobs it read
 *   wait to be deleted; call `deleteRead(id)` once they are shown.
 * @property {number | null} pollAt Poll this conversation again by then (ms since the epoch)
 *   even if nothing is pushed: a message waits set aside and shows then at the latest, or the
 *   other person's device is told then that this one can't read it; null: nothing waits.
 */

/**
 * What `flush()` resolves to.
 * @typedef {Object} FlushOutcome
 * @property {number} delivered Blobs the mailbox stored.
 * @property {number} pending Blobs still waiting.
 * @property {string | null} lastError
 * @property {number | null} lastErrorCode The `ErrorCode` of `lastError`.
 * @property {number} conflicts 409s over someone else's bytes.
 * @property {number} acksSent
 * @property {number} retransmitted
 * @property {number} ended Conversations that ended in this flush.
 * @property {number | null} flushAt When to flush next (ms since the epoch), or null.
 * @property {string[]} pollNow Conversations to poll at once: their messages held back while
 *   blobs waited for the mailbox are sealed by that poll.
 */

/**
 * What every rejected call rejects with (`name` "HushError").
 * @typedef {Error & { code?: number, conversationId?: string | null }} HushError
 */

/**
 * The wasm `HushClient` as the app calls it, with what each call resolves to.
 * @typedef {Object} Client
 * @property {boolean} isUnlocked
 * @property {() => Promise<boolean>} hasVault
 * @property {(passphrase: string) => Promise<void>} unlock
 * @property {(key: Uint8Array) => Promise<void>} unlockWithKey
 * @property {() => Promise<Uint8Array>} vaultKdfInput
 * @property {(fastKdf?: boolean | null) => Uint8Array} newVaultKdfInput
 * @property {(passphrase: string, fastKdf?: boolean | null) => Promise<void>} createVault
 * @property {(kdfInput: Uint8Array, key: Uint8Array) => Promise<void>} createVaultWithKey
 * @property {() => void} lock
 * @property {(siteUrl: string, mailboxUrl: string, name: string) => Promise<{ id: string, link: string }>} createInvite
 * @property {(link: string, defaultMailboxUrl: string, name: string) => Promise<string>} join
 * @property {() => Promise<ConversationSummary[]>} listConversations
 * @property {(id: string) => Promise<ConversationSummary>} conversation
 * @property {(id: string, text: string) => Promise<number>} send
 * @property {() => Promise<FlushOutcome>} flush
 * @property {(id: string) => Promise<PollOutcome>} poll
 * @property {(id: string, message: Uint8Array) => Promise<PollOutcome>} pollPushed
 * @property {(id: string) => Promise<HistoryEntry[]>} history
 * @property {(id: string, before: number | null, limit: number) => Promise<HistoryEntry[]>} historyPage
 * @property {() => Promise<number | null>} nextFlushAt
 * @property {(id: string, notice: "interference" | "rollback") => Promise<void>} clearNotice
 * @property {(id: string) => Promise<void>} markRead
 * @property {(id: string, name: string) => Promise<void>} rename
 * @property {(id: string, verified: boolean) => Promise<void>} setVerified
 * @property {(id: string, seq: number) => Promise<void>} deleteMessage
 * @property {(id: string, text: string) => Promise<void>} saveDraft The composer's unsent text, sealed (empty: deleted).
 * @property {(id: string, text: string) => Promise<void>} keepDraftForSend The text about to be sent, sealed as the draft until the send settled.
 * @property {(id: string, text: string) => Uint8Array} sealPendingSend The text being sent, sealed synchronously for the tab's session storage (throws when locked).
 * @property {(id: string, sealed: Uint8Array) => string} openPendingSend What sealPendingSend sealed for this conversation (throws if not this vault's or altered).
 * @property {(id: string) => Promise<string | null>} draft
 * @property {(link: string) => Promise<void>} checkInvite Rejects with OwnInvite or AlreadyJoined for an invite this vault made or joined.
 * @property {(id: string) => Promise<void>} deleteConversation
 * @property {(id: string) => Promise<string | null>} safetyCode
 * @property {(id: string) => Promise<Uint8Array<ArrayBuffer> | null>} watchSet
 * @property {(on: boolean) => void} setDeleteAfterRead
 * @property {(id: string) => Promise<void>} deleteRead
 * @property {(id: string | null) => void} setReading
 */

export {};

//! The Hush client's logic, pure: no wasm-bindgen, no browser API, no runtime, no I/O.
//!
//! * [`Client`] holds a vault ([`vault`]) and its conversations ([`records`]): invites, joins,
//!   history, the outbox ([`outbox`]) and the receive/drain state machine ([`receive`]), decoy
//!   padding of fetches ([`decoys`]) and poll scheduling ([`schedule`]).
//! * Every effect goes through the small traits of [`platform`]: a record store with atomic
//!   transactions, the Mailbox API v1, exclusive locks, a clock, a random source. The browser
//!   adapter (`wasm-client`) implements them over IndexedDB, `fetch`, Web Locks and
//!   `crypto.getRandomValues`; the deterministic simulator (`simulator/`) implements them in
//!   memory under one seed and injects every fault between them.
//!
//! The orderings that make a crash at any await point lose nothing are documented on
//! [`client`], [`outbox`] and [`receive`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod decoys;
pub mod drafts;
pub mod error;
pub mod hello_contest;
mod join;
mod local;
mod lost_reads;
pub mod outbox;
pub mod platform;
mod put_back;
pub mod receive;
pub mod records;
pub mod schedule;
pub mod subscription;
pub mod vault;

pub use client::{Client, ConversationSummary, HistoryEntry, INVITE_LIFETIME_SECONDS, Notice};
pub use decoys::{FETCH_BATCH, padded_batches};
pub use error::ClientError;
pub use hello_contest::{CONTEST_POLL_GAP_MS, HELLO_CONTEST_MS};
pub use lost_reads::{LOST_EVIDENCE_WAIT_MS, LOST_READ_AFTER_MS};
pub use outbox::{
    ACK_DELAY_MAX_MS, ACK_DELAY_MIN_MS, ACK_DELAY_READING_MAX_MS, ACK_DELAY_READING_MIN_MS,
    FlushOutcome, MAX_ABANDONED_RUN, MAX_RESENDS, MAX_RETRANSMIT_CHECK, MAX_SEALED_AHEAD,
    RETRANSMIT_ACK_MAX_MS, RETRANSMIT_AFTER_MS, RETRANSMIT_RECHECK_MS,
};
pub use platform::{
    Deposit, Durability, LockError, Locks, NetError, Platform, PlatformRng, REQUEST_TIMEOUT_MS,
    RecordStore, StorageError, Transport, Write,
};
pub use receive::{
    ACTIVE_HOLD_MS, INTERFERENCE_THRESHOLD, MAX_HOLD_MS, MAX_REFETCHES, MAX_WATCH_BATCHES,
    PollOutcome,
};
pub use records::{EndReason, Interference, RollbackNotice, Status, UnreadableNotice};
pub use vault::{KdfParams, VaultError};

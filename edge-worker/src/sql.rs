//! One shard's messages in its Durable Object's SQLite database, in expiry-bucket tables.
//!
//! # Schema
//! One table per expiry bucket ([`buckets`]: `[end - width, end)`, width `ceil(TTL / 7)`
//! within 1 s..=1 day, and at least `ceil(TTL / 31)`), created by the first `PUT` whose
//! expiry falls in it:
//! ```sql
//! CREATE TABLE "messages_until_<end>" (
//!   address    BLOB PRIMARY KEY,   -- 32 bytes
//!   body       BLOB NOT NULL,      -- 1..=MAILBOX_MAX_BODY bytes; empty: deleted (spent)
//!   expires_at INTEGER NOT NULL,   -- ms since the Unix epoch (Date.now() + TTL), < end
//!   digest     BLOB                -- spent: SHA-256 of the deleted body; else NULL
//! ) WITHOUT ROWID;
//! ```
//! and, in an object written by a release before buckets, the *legacy* table `messages` of
//! the same columns, which no `PUT` writes any more ([`messages`]).
//!
//! A table created before digests were recorded lacks `digest`: the object adds it
//! (`ALTER TABLE … ADD COLUMN digest BLOB`, once per table, in the statements that list the
//! tables when an instance loads them). Its rows spent before that keep `digest` `NULL`: an
//! empty body alone still means spent, and such a row answers `410` to any `PUT` ([`spent`]).
//!
//! # Invariants
//! - **At most one live row per address** (`expires_at > now`) across all tables: a `PUT`
//!   stores only after finding no live row in any table that can hold one. So first write
//!   wins across buckets, and a spent address (its body emptied and its digest recorded by a
//!   `DELETE`) stays spent in whichever bucket holds it, until its own expiry, unless a
//!   put-back (API revision 1.3) gives that row its deleted bytes again: in place, with its
//!   expiry (so its bucket) unchanged and its digest cleared.
//! - **Reads see only live rows**, exactly as with one table: every look-up is
//!   `address = ? AND expires_at > now` in each table that can hold a live row (scalar
//!   subqueries, one primary-key probe per table, in one statement unless the shard has more
//!   tables than [`lookup::MAX_PROBES_PER_STATEMENT`]; a probe that finds nothing reads no
//!   row). A bucket whose range has ended is skipped: it holds expired rows only.
//! - **Expiry writes no rows**: the alarm drops a bucket table whole once its range has
//!   ended ([`buckets::bucket_expired`]); an expired row is invisible meanwhile. Only the
//!   legacy table is still purged row by row, and dropped once empty.
//!
//! # Atomicity
//! An operation may run several statements (look-up in every live table, then an insert;
//! a look-up, then an update). workers-rs 0.8.7's `SqlStorage` has no synchronous
//! transaction (`transactionSync`), so atomicity comes from the Durable Object itself: the
//! statements of one operation run synchronously, in one JavaScript event with no `await`
//! between them, so no other request or alarm of the (single-threaded) object can run in
//! between, and its writes are coalesced into one atomic commit. Keep it so: never put an
//! `await` inside a method of [`Messages`].
//!
//! Every statement's `rowsRead` and `rowsWritten` are added to the caller's `Ops`.

pub mod buckets;
pub mod lookup;
pub mod spent;

#[cfg(target_arch = "wasm32")]
mod messages;

#[cfg(target_arch = "wasm32")]
pub use messages::{Expired, Messages, SqlError};
pub use spent::{Put, PutBack};

//! One shard's messages in its Durable Object's SQLite database.
//!
//! # Schema
//! ```sql
//! CREATE TABLE messages (
//!   address    BLOB PRIMARY KEY,   -- 32 bytes
//!   body       BLOB NOT NULL,      -- 1..=MAILBOX_MAX_BODY bytes; empty: deleted (spent)
//!   expires_at INTEGER NOT NULL    -- ms since the Unix epoch (Date.now() + TTL)
//! ) WITHOUT ROWID;
//! ```
//!
//! A `DELETE` empties the row's body (messages are never empty) and keeps its expiry: until
//! then the address is *spent* (a `PUT` there answers `410`, reads see nothing), as the API
//! requires, at the cost of one row written, as deleting the row would.
//!
//! Reads treat a row with `expires_at <= now` as absent; the shard's alarm deletes such rows
//! with a scan of the table. There is deliberately no index on `expires_at`: it would make
//! every `PUT` write two rows instead of one (rows written cost 1,000 times what rows read
//! do, and the free plan allows 100,000 a day against 5 million read), while the scan reads
//! each stored row twice per alarm, at most once an hour. A write is one `INSERT … ON CONFLICT DO UPDATE … WHERE expired`
//! statement: SQLite runs it atomically, and a Durable Object runs one statement at a time, so
//! of any number of concurrent `PUT`s exactly one stores (first write wins).
//!
//! Every statement's `rowsRead` and `rowsWritten` are added to the caller's [`Ops`].

use std::cell::Cell;
use std::collections::HashMap;

use worker::{SqlCursor, SqlStorage, SqlStorageValue};

use crate::ops::Ops;

/// Statements creating the schema (idempotent; run once per object instance). Deleted bodies
/// are not overwritten on disk: the Durable Object SQL API refuses `PRAGMA secure_delete`
/// (`docs/EDGE-DEPLOY.md`, "What a delete leaves").
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS messages (\
        address BLOB PRIMARY KEY, body BLOB NOT NULL, expires_at INTEGER NOT NULL\
    ) WITHOUT ROWID;";

/// Why a statement failed. Only the class is kept: never a statement's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// `exec` threw (bad statement, storage failure, over a platform limit).
    #[error("sql exec failed")]
    Exec,
    /// A row did not have the expected columns or types.
    #[error("sql row malformed")]
    Row,
}

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored.
    Stored,
    /// A live message is there.
    Exists,
    /// The address was deleted and is spent until its message's expiry.
    Spent,
}

/// One shard's message table.
pub struct Messages<'a> {
    sql: SqlStorage,
    ops: &'a Cell<Ops>,
}

impl<'a> Messages<'a> {
    /// The table in `sql`, counting into `ops`. Does not touch the schema: call
    /// [`Messages::create_schema`] once per object instance first.
    pub fn new(sql: SqlStorage, ops: &'a Cell<Ops>) -> Self {
        Self { sql, ops }
    }

    /// Creates the table and its index if missing.
    pub fn create_schema(&self) -> Result<(), SqlError> {
        self.run(SCHEMA, Vec::new()).map(drop)
    }

    fn exec(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<SqlCursor, SqlError> {
        self.sql.exec(query, bindings).map_err(|_| SqlError::Exec)
    }

    /// Runs a statement to its end, returning its rows, and counts what it read and wrote.
    fn run(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<Vec<SqlStorageValue>>, SqlError> {
        let cursor = self.exec(query, bindings)?;
        let rows: Result<Vec<_>, _> = cursor.raw().collect();
        let mut ops = self.ops.get();
        ops.rows_read += cursor.rows_read() as u64;
        ops.rows_written += cursor.rows_written() as u64;
        self.ops.set(ops);
        rows.map_err(|_| SqlError::Row)
    }

    /// Stores `body` at `address` until `expires_at` unless a live message is there, or the
    /// address is spent (its live row was deleted).
    pub fn put_if_absent(
        &self,
        address: &[u8; 32],
        body: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<Put, SqlError> {
        let rows = self.run(
            "INSERT INTO messages (address, body, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (address) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at \
             WHERE messages.expires_at <= ? \
             RETURNING 1",
            vec![
                address.to_vec().into(),
                body.to_vec().into(),
                expires_at.into(),
                now.into(),
            ],
        )?;
        if !rows.is_empty() {
            return Ok(Put::Stored);
        }
        // Refused (rare): a live message, or a spent address? One more row read.
        let rows = self.run(
            "SELECT length(body) FROM messages WHERE address = ?",
            vec![address.to_vec().into()],
        )?;
        match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(SqlStorageValue::Integer(0)) => Ok(Put::Spent),
            Some(SqlStorageValue::Integer(_)) => Ok(Put::Exists),
            _ => Err(SqlError::Row),
        }
    }

    /// Deletes the live message at `address`, if any: its body is emptied and its expiry
    /// kept, so the address stays spent until then.
    pub fn delete(&self, address: &[u8; 32], now: i64) -> Result<(), SqlError> {
        self.run(
            "UPDATE messages SET body = X'' WHERE address = ? AND expires_at > ? \
             AND length(body) > 0",
            vec![address.to_vec().into(), now.into()],
        )
        .map(drop)
    }

    /// The live messages at `addresses` (each distinct address once); a spent address (its
    /// message deleted) has an empty body, which fetches report as a record of length 0 and
    /// `GET` as `404` (`mailbox::Store::get_many`). One primary-key
    /// look-up per address: SQLite counts a row read only for an address that holds one, so a
    /// poll of empty addresses reads no rows (an `IN (…)` list of 48 read 49).
    pub fn get_many(
        &self,
        addresses: &[[u8; 32]],
        now: i64,
    ) -> Result<HashMap<[u8; 32], Vec<u8>>, SqlError> {
        let mut distinct: Vec<[u8; 32]> = addresses.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut found = HashMap::new();
        for address in distinct {
            let rows = self.run(
                "SELECT body FROM messages WHERE address = ? AND expires_at > ?",
                vec![address.to_vec().into(), now.into()],
            )?;
            match rows.into_iter().next().map(|r| r.into_iter().next()) {
                None => {}
                Some(Some(SqlStorageValue::Blob(body))) => {
                    found.insert(address, body);
                }
                Some(_) => return Err(SqlError::Row),
            }
        }
        Ok(found)
    }

    /// Deletes every expired message and returns the earliest expiry left, if any.
    pub fn purge(&self, now: i64) -> Result<Option<i64>, SqlError> {
        self.run(
            "DELETE FROM messages WHERE expires_at <= ?",
            vec![now.into()],
        )?;
        self.earliest_expiry()
    }

    /// The earliest expiry of a stored message (a scan: one row read per stored message).
    pub fn earliest_expiry(&self) -> Result<Option<i64>, SqlError> {
        let rows = self.run("SELECT MIN(expires_at) FROM messages", Vec::new())?;
        match rows.first().map(|r| r.as_slice()) {
            None | Some([SqlStorageValue::Null]) => Ok(None),
            Some([SqlStorageValue::Integer(at)]) => Ok(Some(*at)),
            Some([SqlStorageValue::Float(at)]) => Ok(Some(*at as i64)),
            Some(_) => Err(SqlError::Row),
        }
    }
}

//! The statements: look-ups, the first-write-wins insert, the delete that leaves an address
//! spent (recording the deleted message's digest, [`super::spent`]), the put-back that gives
//! a spent row its deleted bytes again, and the alarm's drops, over the tables of
//! [`super::buckets::Tables`].
//!
//! Every method runs its statements synchronously (no `await`): see the parent module's
//! "Atomicity".

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use worker::{SqlCursor, SqlStorage, SqlStorageValue};

use super::buckets::{Table, Tables, bucket_end};
use super::lookup::{Column, live_lookups};
use super::spent::{Put, PutBack, digest, put_at_spent, put_back_at_spent};
use crate::ops::Ops;

/// Columns of every message table. Deleted bodies are not overwritten on disk: the Durable
/// Object SQL API refuses `PRAGMA secure_delete` (`docs/EDGE-DEPLOY.md`, "What a delete
/// leaves").
const COLUMNS: &str = "(address BLOB PRIMARY KEY, body BLOB NOT NULL, \
     expires_at INTEGER NOT NULL, digest BLOB) WITHOUT ROWID";

/// The column a table created before digests lacks, as `ALTER TABLE … ADD COLUMN` adds it.
const DIGEST_COLUMN: &str = "digest BLOB";

/// Lists the message tables and whether each has the `digest` column (one row read per table
/// of the database). `ADD COLUMN` appends the column's definition to the table's `sql` in
/// `sqlite_master`, as `CREATE TABLE` with [`COLUMNS`] has it.
const LIST_TABLES: &str = "SELECT name, instr(sql, 'digest BLOB') > 0 FROM sqlite_master \
     WHERE type = 'table' AND (name = 'messages' OR name GLOB 'messages_until_*')";

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
    /// The tables were used before [`Messages::load_tables`] (a bug of the caller).
    #[error("sql tables not loaded")]
    NotLoaded,
}

/// What the alarm's [`Messages::expire`] did and what it leaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Bucket tables dropped.
    pub buckets_dropped: u64,
    /// Whether the legacy table was dropped (found empty).
    pub legacy_dropped: bool,
    /// When the next bucket is due to be dropped ([`super::buckets::drop_at`]), if any.
    pub next_drop: Option<i64>,
    /// The earliest expiry left in the legacy table, if it is still there and not empty.
    pub legacy_earliest: Option<i64>,
}

/// One shard's message tables.
pub struct Messages<'a> {
    sql: SqlStorage,
    ops: &'a Cell<Ops>,
    /// The tables as this instance knows them; `None` until [`Messages::load_tables`].
    tables: &'a RefCell<Option<Tables>>,
    /// Width of the buckets new messages go to ([`super::buckets::bucket_width_ms`]).
    width_ms: i64,
}

/// The first column of the first row, if any.
fn first_value(rows: Vec<Vec<SqlStorageValue>>) -> Option<SqlStorageValue> {
    rows.into_iter().next().and_then(|r| r.into_iter().next())
}

/// An integer column (SQLite may hand back a whole number as a float).
fn integer(value: &SqlStorageValue) -> Option<i64> {
    match value {
        SqlStorageValue::Integer(n) => Some(*n),
        SqlStorageValue::Float(f) => Some(*f as i64),
        _ => None,
    }
}

impl<'a> Messages<'a> {
    /// The tables in `sql`, known to this instance through `tables`, counting into `ops`;
    /// new messages go to buckets `width_ms` wide. Call [`Messages::load_tables`] once per
    /// object instance (while `tables` is `None`) before anything else.
    pub fn new(
        sql: SqlStorage,
        ops: &'a Cell<Ops>,
        tables: &'a RefCell<Option<Tables>>,
        width_ms: i64,
    ) -> Self {
        Self {
            sql,
            ops,
            tables,
            width_ms,
        }
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
        self.run_counted(query, bindings).map(|(rows, _)| rows)
    }

    /// Runs a statement for what it writes (no `RETURNING`, which costs a row read per row
    /// returned): [`Messages::run`] that returns the rows it wrote instead.
    fn write(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<u64, SqlError> {
        self.run_counted(query, bindings)
            .map(|(_, written)| written)
    }

    /// [`Messages::run`], also returning the rows the statement wrote.
    fn run_counted(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<(Vec<Vec<SqlStorageValue>>, u64), SqlError> {
        let cursor = self.exec(query, bindings)?;
        let rows: Result<Vec<_>, _> = cursor.raw().collect();
        let written = cursor.rows_written() as u64;
        let mut ops = self.ops.get();
        ops.rows_read += cursor.rows_read() as u64;
        ops.rows_written += written;
        self.ops.set(ops);
        Ok((rows.map_err(|_| SqlError::Row)?, written))
    }

    /// Reads which message tables exist (once per object instance; one row read per table),
    /// adds the `digest` column to those created before it (once per table: one statement
    /// each, in the same synchronous event), and returns whether the legacy table is among
    /// them. A failure leaves the tables unloaded; the next operation loads them again (a
    /// table altered already is not altered twice).
    pub fn load_tables(&self) -> Result<bool, SqlError> {
        let rows = self.run(LIST_TABLES, Vec::new())?;
        let mut names = Vec::with_capacity(rows.len());
        for row in rows {
            let mut columns = row.into_iter();
            match (columns.next(), columns.next().as_ref().and_then(integer)) {
                (Some(SqlStorageValue::String(name)), Some(has_digest)) => {
                    names.push((name, has_digest != 0));
                }
                _ => return Err(SqlError::Row),
            }
        }
        let tables = Tables::from_names(names.iter().map(|(name, _)| name.as_str()));
        for (name, _) in names.iter().filter(|(_, has_digest)| !has_digest) {
            if let Some(table) = Table::parse(name) {
                self.run(
                    &format!(
                        "ALTER TABLE {} ADD COLUMN {DIGEST_COLUMN}",
                        table.sql_name()
                    ),
                    Vec::new(),
                )?;
            }
        }
        let legacy = tables.has_legacy();
        *self.tables.borrow_mut() = Some(tables);
        Ok(legacy)
    }

    /// `f` of the tables as this instance knows them.
    fn with_tables<R>(&self, f: impl FnOnce(&Tables) -> R) -> Result<R, SqlError> {
        self.tables
            .borrow()
            .as_ref()
            .map(f)
            .ok_or(SqlError::NotLoaded)
    }

    /// Records, after the statement that did it succeeded, that `table` was created
    /// (`created`) or dropped.
    fn record(&self, table: Table, created: bool) {
        if let Some(tables) = self.tables.borrow_mut().as_mut() {
            if created {
                tables.insert(table);
            } else {
                tables.remove(table);
            }
        }
    }

    /// The tables that may hold a live message at `now` (newest bucket first, legacy last).
    fn live(&self, now: i64) -> Result<Vec<Table>, SqlError> {
        self.with_tables(|t| t.live(now))
    }

    /// Why a `PUT` of `body` is refused, from the [`Column::Refusal`] of the live row it
    /// found: a live message, or a spent address answered by [`put_at_spent`] (`body` is
    /// hashed only then).
    fn refusal(found: &SqlStorageValue, body: &[u8]) -> Result<Put, SqlError> {
        match found {
            SqlStorageValue::Blob(recorded) => {
                put_at_spent(Some(recorded), body).ok_or(SqlError::Row)
            }
            other if integer(other).is_some() => Ok(Put::Exists),
            _ => Err(SqlError::Row),
        }
    }

    /// The live row at `address` in `tables`, if any: its table and `column`'s value (never
    /// `NULL`: the columns are `NOT NULL`). One primary-key probe per table, in one statement
    /// per [`super::lookup::MAX_PROBES_PER_STATEMENT`] tables (one for the tables of one TTL),
    /// stopping at the statement that finds it; a probe that finds nothing reads no row; at
    /// most one row can match (invariant).
    fn find_live(
        &self,
        tables: &[Table],
        address: &[u8; 32],
        now: i64,
        column: Column,
    ) -> Result<Option<(Table, SqlStorageValue)>, SqlError> {
        for (query, covered) in live_lookups(tables, column) {
            let rows = self.run(&query, vec![address.to_vec().into(), now.into()])?;
            let row = rows.into_iter().next().ok_or(SqlError::Row)?;
            if row.len() != covered.len() {
                return Err(SqlError::Row);
            }
            let found = covered
                .iter()
                .zip(row)
                .find(|(_, value)| !matches!(value, SqlStorageValue::Null))
                .map(|(table, value)| (*table, value));
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Stores `body` at `address` until `expires_at`, in the bucket of `expires_at` (created
    /// if missing), unless a live message is there or the address is spent, in any table
    /// ([`Put::Exists`], or for a spent address [`put_at_spent`]'s answer). Upholds "at most
    /// one live row per address": the look-up covers every table that can hold a live row,
    /// and the insert runs in the same synchronous event. The look-up reads the recorded
    /// digest with the row it finds anyway: a refusal costs no further statement, and a
    /// `PUT` to a free address none at all.
    pub fn put_if_absent(
        &self,
        address: &[u8; 32],
        body: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<Put, SqlError> {
        let live = self.live(now)?;
        if let Some((_, found)) = self.find_live(&live, address, now, Column::Refusal)? {
            return Self::refusal(&found, body);
        }
        self.insert_free(address, body, now, expires_at)
    }

    /// Puts back at the spent `address` the very bytes a `DELETE` removed there (API revision
    /// 1.3, `mailbox::Store::put_back`): if the look-up finds the spent row and `body` hashes
    /// to its recorded digest ([`put_back_at_spent`], constant time), the row gets `body`
    /// back and its digest cleared, in the table that holds it, keeping its own expiry (and
    /// so its bucket, whose drop the alarm already awaits): [`PutBack::Restore`]. Anything
    /// else is [`Messages::put_if_absent`]'s answer, from the same look-up
    /// ([`PutBack::AsPut`]): a live message or other bytes [`Put::Exists`], a spent row
    /// without a digest [`Put::Spent`], a free address stored until `expires_at`
    /// ([`Put::Stored`]). One look-up as for a `PUT`, then one `UPDATE` or `INSERT`, in the
    /// same synchronous event: first write still wins.
    pub fn put_back(
        &self,
        address: &[u8; 32],
        body: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<PutBack, SqlError> {
        let live = self.live(now)?;
        let Some((table, found)) = self.find_live(&live, address, now, Column::Refusal)? else {
            return self
                .insert_free(address, body, now, expires_at)
                .map(PutBack::AsPut);
        };
        let recorded = match found {
            SqlStorageValue::Blob(recorded) => recorded,
            other => return Self::refusal(&other, body).map(PutBack::AsPut),
        };
        match put_back_at_spent(Some(recorded.as_slice()), body).ok_or(SqlError::Row)? {
            PutBack::AsPut(put) => Ok(PutBack::AsPut(put)),
            PutBack::Restore => {
                // Guarded as the delete is: only the spent row, still live, is given its
                // bytes back (always so in this synchronous event). No `RETURNING`
                // ([`Messages::write`]): the row written tells.
                let written = self.write(
                    &format!(
                        "UPDATE {} SET body = ?, digest = NULL WHERE address = ? \
                         AND expires_at > ? AND length(body) = 0",
                        table.sql_name()
                    ),
                    vec![body.to_vec().into(), address.to_vec().into(), now.into()],
                )?;
                if written != 1 {
                    return Err(SqlError::Row);
                }
                Ok(PutBack::Restore)
            }
        }
    }

    /// Inserts `body` at `address`, which the look-up found free in every live table, until
    /// `expires_at`, in the bucket of `expires_at` (created if missing).
    fn insert_free(
        &self,
        address: &[u8; 32],
        body: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<Put, SqlError> {
        let target = Table::Bucket {
            end: bucket_end(expires_at, self.width_ms),
        };
        if !self.with_tables(|t| t.contains(target))? {
            self.run(
                &format!("CREATE TABLE IF NOT EXISTS {} {COLUMNS}", target.sql_name()),
                Vec::new(),
            )?;
            self.record(target, true);
        }
        // An expired row of the same address in the target bucket is replaced, its digest
        // cleared (it can only be there if the clock went back; the look-up above found
        // nothing live).
        let name = target.sql_name();
        let rows = self.run(
            &format!(
                "INSERT INTO {name} (address, body, expires_at) VALUES (?, ?, ?) \
                 ON CONFLICT (address) DO UPDATE SET body = excluded.body, \
                 expires_at = excluded.expires_at, digest = NULL \
                 WHERE {name}.expires_at <= ? RETURNING 1"
            ),
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
        // Refused: a live row in the target after all (unreachable while `now` is the same
        // for both statements); tell 409 from 410 as for any other table.
        match self.find_live(&[target], address, now, Column::Refusal)? {
            Some((_, found)) => Self::refusal(&found, body),
            None => Err(SqlError::Row),
        }
    }

    /// Deletes the live message at `address`, if any, in whichever table holds it: its body
    /// is emptied, the SHA-256 of the body recorded in its place ([`super::spent`]) and its
    /// expiry kept, so the address stays spent until then. A spent or absent address is left
    /// as it is (nothing written). The same statements and rows as before digests: the
    /// look-up reads the body (the row it read for its length), the update writes the row.
    pub fn delete(&self, address: &[u8; 32], now: i64) -> Result<(), SqlError> {
        let live = self.live(now)?;
        let Some((table, found)) = self.find_live(&live, address, now, Column::Body)? else {
            return Ok(());
        };
        let SqlStorageValue::Blob(body) = found else {
            return Err(SqlError::Row);
        };
        if !body.is_empty() {
            let recorded = digest(&body);
            drop(body);
            self.run(
                &format!(
                    "UPDATE {} SET body = X'', digest = ? WHERE address = ? AND expires_at > ? \
                     AND length(body) > 0",
                    table.sql_name()
                ),
                vec![
                    recorded.to_vec().into(),
                    address.to_vec().into(),
                    now.into(),
                ],
            )?;
        }
        Ok(())
    }

    /// The live messages at `addresses` (each distinct address once); a spent address (its
    /// message deleted) has an empty body, which fetches report as a record of length 0
    /// (`mailbox::Store::get_many`), and `get` as `Some` of an empty body. One look-up per address probing every
    /// live table by primary key ([`super::lookup`]): SQLite counts a row read only where a
    /// probe finds a row, so a poll of empty addresses reads no rows, whatever the number of
    /// buckets (an `IN (…)` list of 48 read 49 per table).
    pub fn get_many(
        &self,
        addresses: &[[u8; 32]],
        now: i64,
    ) -> Result<HashMap<[u8; 32], Vec<u8>>, SqlError> {
        let live = self.live(now)?;
        let mut distinct: Vec<[u8; 32]> = addresses.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut found = HashMap::new();
        for address in distinct {
            match self.find_live(&live, &address, now, Column::Body)? {
                None => {}
                Some((_, SqlStorageValue::Blob(body))) => {
                    found.insert(address, body);
                }
                Some(_) => return Err(SqlError::Row),
            }
        }
        Ok(found)
    }

    /// The alarm's work: drops every bucket whose range has ended (no row written per
    /// message), purges the legacy table's expired rows as the releases before buckets did
    /// and drops it once empty; returns what it did and when it is next needed. Each drop
    /// is one statement and the in-memory table list follows only a drop that succeeded, so
    /// a failure leaves both consistent (the alarm is retried).
    pub fn expire(&self, now: i64) -> Result<Expired, SqlError> {
        let expired = self.with_tables(|t| t.expired(now))?;
        let mut done = Expired::default();
        for table in expired {
            self.run(
                &format!("DROP TABLE IF EXISTS {}", table.sql_name()),
                Vec::new(),
            )?;
            self.record(table, false);
            done.buckets_dropped += 1;
        }
        if self.with_tables(Tables::has_legacy)? {
            let legacy = Table::Legacy.sql_name();
            self.run(
                &format!("DELETE FROM {legacy} WHERE expires_at <= ?"),
                vec![now.into()],
            )?;
            // A scan (one row read per row left), as before buckets; only until it is empty.
            let earliest = first_value(
                self.run(&format!("SELECT MIN(expires_at) FROM {legacy}"), Vec::new())?,
            );
            match earliest {
                None | Some(SqlStorageValue::Null) => {
                    self.run(&format!("DROP TABLE IF EXISTS {legacy}"), Vec::new())?;
                    self.record(Table::Legacy, false);
                    done.legacy_dropped = true;
                }
                Some(value) => done.legacy_earliest = Some(integer(&value).ok_or(SqlError::Row)?),
            }
        }
        done.next_drop = self.with_tables(Tables::next_drop)?;
        Ok(done)
    }
}

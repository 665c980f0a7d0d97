//! The embedded store: message bodies in append-only segment files (`segment`), a small
//! index in redb (copy-on-write B-trees, checksummed).
//!
//! Reads open their own MVCC read transaction on the index, then read the body from its
//! segment with one `pread`; they never wait for the writer. Every write goes to one writer
//! thread, which drains whatever is queued into a single batch (group commit): inside one
//! redb transaction it checks each address, stages the stored messages as records of the
//! active segment and indexes them; then it appends the records and `fdatasync`s the
//! segment, and only then commits the index transaction (without redb's own fsync) and
//! answers. **A 201 is durable on disk**, and because one thread owns all writes, "is the
//! address free?" and "store it" happen in one transaction: first write wins, atomically.
//!
//! The segments are the write-ahead log: redb commits durably (a *checkpoint*) when writes
//! pause for a second, at the latest `--checkpoint-secs` after the oldest write it does not
//! hold durably yet, and on shutdown; each index commit also records how far into the
//! segments it reaches, so after a crash the records written since the last durable commit
//! are re-applied from the segments before the server listens (a torn last batch, never acknowledged, fails its checksum and is
//! ignored). redb's per-PUT work is a ~28-byte index entry instead of a 1 KiB body, which is
//! what makes durable PUTs cheap.
//!
//! **Deletes** go through the same writer, so they serialize with PUTs (first write wins stays
//! atomic). In the batch's transaction a *tombstone* record naming the address, with the
//! deleted message's expiry and the SHA-256 digest of its body (read back to be hashed, never
//! kept), is staged in the active segment, and the index entry is replaced by a *spent* one:
//! length 0, pointing at the tombstone, expiring with the message (the message's bytes leave
//! the quota; the spent entry holds none). Until then the address is spent: a PUT there writes
//! nothing and answers `Spent` if its body has the tombstone's digest (a retry of the blob
//! that was read) or `AlreadyExists` if not (someone else's blob stood there; a tombstone
//! written before digests answers `Spent` for any body), and `get` and `get_many` report an
//! empty body (read from the entry alone, never from a segment; the digest stays in the
//! tombstone, the index format is unchanged); afterwards the entry is dead like an expired
//! message's, and purge removes it with the tombstone's segment (whose expiry range covers
//! it). After the batch's segment flush, the deleted record's body and
//! checksum are overwritten with zeros in its segment file (a record stored and deleted in the
//! same batch is wiped before it is ever written) and that file is `fdatasync`ed; only then is
//! the index committed and the delete answered. A crash before the next durable commit cannot
//! bring the message back nor free the address early: the wiped record no longer verifies, so
//! a recovery never re-applies it (scans step over it by the length in its head), and the
//! tombstone, written before the wipe, is re-applied like a stored record, spending the
//! address again (until its expiry) in place of an entry that the last durable commit still
//! held, and wiping that record again; reads from the segments alone (the in-memory fallback
//! index) do the same. A delete of a message that has expired already wipes it without a
//! tombstone (its entry is dead either way); a delete of a spent address, or of nothing,
//! changes nothing.
//!
//! **Put-backs** (`PUT` with `Mailbox-Put-Back: ?1`) go through the same writer. At a spent
//! address whose tombstone records the digest of the body (compared in constant time), the
//! body is staged again as an ordinary record of the active segment, with the deleted
//! message's own expiry (the spent entry's, never a fresh TTL), and the index entry points at
//! it, live again, its bytes in the quota, all in the batch's transaction and flushed before
//! the `Stored`, like any write. Anything else answers as a first write and writes nothing at
//! a spent address. No refused body ever reaches a segment, so the only message record that
//! can follow a live tombstone of its address is a put-back: recovery and the segments' view
//! replay it as one (live again until its expiry). A later delete wipes it and spends the
//! address again (a new tombstone with the same digest); purge removes its entry with its
//! own segment, whose expiry range covers that (possibly earlier) expiry.
//!
//! Modules, one job each: [`index`] (the redb schema and its transactions), [`segment`]
//! (segment files: the bodies and the write-ahead log), [`writer`] (the single writer
//! thread), [`recovery`] (re-applying the segments after a crash), [`readers`] (what reads
//! look up, with the in-memory fallback), [`trickle`] (flushing the index file between
//! checkpoints), [`error_log`] (error classes, rate-limited); this file is the front,
//! [`DiskStore`].

mod error_log;
mod index;
mod readers;
mod recovery;
mod segment;
#[cfg(test)]
mod testing;
mod trickle;
mod writer;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailbox::{PutOutcome, Store, StoreError};
use protocol::Address;
use redb::{Database, ReadableDatabase};
use tokio::sync::{mpsc, oneshot};

use self::error_log::log_error;
use self::index::{Entry, INDEX};
use self::readers::{MemIndex, SharedDb};
use self::recovery::{Recovered, recover};
use self::segment::{ActiveSegment, Files};
use self::trickle::{Trickle, spawn_trickle_flush};
use self::writer::{Job, Start};
use crate::disk::{Disk, FreeSpace, WriteHealth};

/// Store limits.
#[derive(Clone)]
pub struct StoreConfig {
    /// Message lifetime.
    pub ttl: Duration,
    /// Most body bytes stored at once.
    pub quota_bytes: u64,
    /// redb page cache size in bytes (the index only: bodies are read from segment files).
    pub cache_bytes: usize,
    /// Longest time index commits stay non-durable under sustained load before redb
    /// commits durably (a checkpoint, which briefly stalls writes). It bounds how much of
    /// the segments a restart after a crash re-applies.
    pub checkpoint_every: Duration,
    /// Bytes of the disk left free: PUTs that would go below it are refused (`507 disk
    /// full`) and segments are zero-filled ahead of use only above it (see [`crate::disk`]).
    pub reserve_bytes: u64,
    /// How free space is read ([`crate::disk::statvfs_free`]; tests inject a fake).
    pub free_space: FreeSpace,
    /// Largest message body in bytes: writes are accepted only while one more fits above
    /// the reserve.
    pub max_body: u64,
}

/// The mailbox store on disk.
pub struct DiskStore {
    db: SharedDb,
    files: Files,
    jobs: mpsc::Sender<Job>,
    ttl_ms: u64,
    health: WriteHealth,
}

/// Handle on the writer thread, to stop it after the last request.
pub struct WriterHandle {
    jobs: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
    trickle: Option<Trickle>,
}

impl WriterHandle {
    /// Lets the writer finish what is queued and checkpoint, then waits for it to exit.
    pub fn shutdown(self) {
        if self.jobs.blocking_send(Job::Shutdown).is_ok() {
            let _ = self.thread.join();
        }
        if let Some(trickle) = self.trickle {
            trickle.stop();
        }
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Files of the store format before segments; refused rather than silently ignored.
const OLD_FORMAT: [&str; 2] = ["mailbox.redb", "mailbox.wal"];

impl DiskStore {
    /// Opens (creating or, after a crash, recovering) the store in `dir` and starts its
    /// writer. Recovery re-applies every record the segments hold beyond the index's last
    /// durable commit (stopping at a torn tail) and commits the result durably, so every
    /// message that was acknowledged before the crash is readable when this returns.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<(Self, WriterHandle), redb::Error> {
        std::fs::create_dir_all(dir)?;
        if OLD_FORMAT.iter().any(|name| dir.join(name).exists()) {
            return Err(io::Error::other(
                "the data folder holds the previous store format (mailbox.redb/mailbox.wal); \
                 start with an empty folder",
            )
            .into());
        }
        let seg_dir = dir.join("segments");
        std::fs::create_dir_all(&seg_dir)?;
        let disk = Disk::new(dir, config.reserve_bytes, Arc::clone(&config.free_space));
        // Opening after a crash and recovering both write the index: give it room.
        disk.release_ballast_if_tight();
        let files = Files::default();
        let shared = SharedDb::default();
        let health = WriteHealth::default();
        let opened = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(dir.join("index.redb"))
            .map_err(redb::Error::from)
            .and_then(|db| recover(&db, &seg_dir, &files, &disk).map(|r| (db, r)));
        let (db, recovered) = match opened {
            Ok((db, recovered)) => {
                if recovered.replayed > 0 {
                    eprintln!(
                        "mailbox-server: recovered {} messages from the write-ahead log",
                        recovered.replayed
                    );
                }
                let db = Arc::new(db);
                shared.set(Some(Arc::clone(&db)));
                (Some(db), recovered)
            }
            Err(err) => {
                // Typically a full disk: the index cannot be repaired or brought up to date
                // now. Start anyway, serving reads from the segments alone; writes answer 503
                // and the writer retries the index once a second.
                log_error(&err);
                eprintln!(
                    "mailbox-server: the index cannot be written; serving reads from the \
                     segments, writes refused until it can"
                );
                health.set_failing();
                shared.set_fallback(Some(Arc::new(MemIndex::build(&seg_dir, &files)?)));
                let next = segment::list(&seg_dir)?
                    .last()
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1);
                let active =
                    ActiveSegment::create(&seg_dir, next, Arc::clone(&files), disk.clone())?;
                let recovered = Recovered {
                    replayed: 0,
                    active,
                    segments: BTreeMap::new(),
                };
                (None, recovered)
            }
        };
        disk.restore_ballast();
        let trickle = spawn_trickle_flush(&dir.join("index.redb")).ok();
        let (jobs, thread) = writer::start(
            Start {
                db,
                shared: shared.clone(),
                dir: dir.to_path_buf(),
                files: Arc::clone(&files),
                recovered,
                disk,
                health: health.clone(),
            },
            &config,
        )?;
        let ttl_ms = u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX);
        Ok((
            Self {
                db: shared,
                files,
                jobs: jobs.clone(),
                ttl_ms,
                health,
            },
            WriterHandle {
                jobs,
                thread,
                trickle,
            },
        ))
    }

    /// Makes everything stored so far durable in redb (and deletes purged segments) if
    /// writes have paused for a moment; under load the writer checkpoints on its own.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.send(Job::Checkpoint).await
    }

    /// Removes every expired message (and spent address whose message would have expired)
    /// from the index, closing the segments that hold them; returns how many entries. Their
    /// files are deleted after the next durable commit.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let (reply, answer) = oneshot::channel();
            self.send(Job::Purge { reply }).await?;
            let step = answer
                .await
                .map_err(|_| StoreError::Unavailable("writer stopped"))??;
            total += step.removed;
            if !step.more {
                return Ok(total);
            }
        }
    }

    /// A PUT of `body` at `address` through the writer: a first write (live for the TTL from
    /// now), or with `put_back` the deleted message's bytes again (see [`Store::put_back`]).
    async fn put(
        &self,
        address: &Address,
        body: &[u8],
        put_back: bool,
    ) -> Result<PutOutcome, StoreError> {
        if body.is_empty() {
            // An empty record is a tombstone; the API never stores an empty body.
            return Err(StoreError::Unavailable("empty body"));
        }
        let (reply, answer) = oneshot::channel();
        self.send(Job::Put {
            address: address.0,
            expires: now_ms().saturating_add(self.ttl_ms),
            body: body.to_vec(),
            put_back,
            reply,
        })
        .await?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped"))?
    }

    async fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped"))
    }

    /// Live messages at `addresses`: index entries from one read transaction, then the
    /// bodies from their segments (which only hold records flushed before they were indexed).
    /// A spent address is an empty body, read from the entry alone: nothing in a segment is
    /// ever taken for it (a wiped record does not verify, so it is never read as a message).
    fn read(&self, addresses: &[Address]) -> Result<Vec<Option<Vec<u8>>>, redb::Error> {
        let now = now_ms();
        let from_db = || -> Result<Vec<Option<Entry>>, redb::Error> {
            let txn = self.db.get()?.begin_read()?;
            let table = txn.open_table(INDEX)?;
            let mut entries = Vec::with_capacity(addresses.len());
            for address in addresses {
                let entry = table.get(&address.0)?.map(|g| Entry::decode(&g.value()));
                entries.push(entry.filter(|e| e.expires > now));
            }
            Ok(entries)
        };
        let entries = match (from_db(), self.db.fallback()) {
            (Ok(entries), _) => entries,
            // The index failed or is being reopened: the segments' view.
            (Err(_), Some(mem)) => addresses
                .iter()
                .map(|a| mem.0.get(&a.0).copied().filter(|e| e.expires > now))
                .collect(),
            (Err(err), None) => return Err(err),
        };
        let mut out = Vec::with_capacity(addresses.len());
        for (address, entry) in addresses.iter().zip(entries) {
            out.push(match entry {
                Some(entry) if entry.is_spent() => Some(Vec::new()),
                Some(entry) => segment::read_body(&self.files, entry.at, &address.0)?,
                None => None,
            });
        }
        Ok(out)
    }
}

impl Store for DiskStore {
    /// Answers `Stored` only once the message is flushed to its segment (durable) and
    /// indexed; `AlreadyExists` if a live message holds the address; if its message was
    /// deleted and would not have expired yet, `Spent` when `body` is that message (same
    /// SHA-256 as its tombstone records) and `AlreadyExists` when it is not (decided in the
    /// single writer's transaction, so exactly one of concurrent writers wins). A refused
    /// body is never written.
    async fn put_if_absent(
        &self,
        address: &Address,
        body: &[u8],
    ) -> Result<PutOutcome, StoreError> {
        self.put(address, body, false).await
    }

    /// At a spent address whose tombstone's digest is that of `body`: `Stored` only once
    /// `body` is flushed again to the active segment (durable), with the deleted message's
    /// own expiry, and the index entry points at it, live (quota and free space checked as
    /// for any write); decided in the single writer's transaction. Anything else answers as
    /// `put_if_absent` (a free address stores `body` as a first write).
    async fn put_back(&self, address: &Address, body: &[u8]) -> Result<PutOutcome, StoreError> {
        self.put(address, body, true).await
    }

    /// Answers `Ok` only once a tombstone (with the deleted body's digest) is durable in the
    /// active segment, the index entry points at it (spent, until the message's expiry) and
    /// the message's body is overwritten with zeros and flushed in its own segment (decided
    /// in the single writer's transaction, so it serializes with PUTs). A spent address, or
    /// one without a message, is left as it is.
    async fn delete(&self, address: &Address) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Delete {
            address: address.0,
            reply,
        })
        .await?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped"))?
    }

    /// The message at `address`; a spent address is an empty body, as in `get_many`.
    async fn get(&self, address: &Address) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(std::slice::from_ref(address))
            .map(|mut v| v.pop().flatten())
            .map_err(|e| log_error(&e))
    }

    /// The messages at `addresses`; a spent address is an empty body.
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.read(addresses).map_err(|e| log_error(&e))
    }

    /// The state the writer's last batch (or free-space check) left: disk full, failing, ok.
    fn write_health(&self) -> Result<(), StoreError> {
        self.health.get()
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use super::DiskStore;
    use super::testing::*;

    #[test]
    fn the_previous_store_format_is_refused() -> io::Result<()> {
        let dir = temp_dir("old");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("mailbox.wal"), b"")?;
        assert!(DiskStore::open(&dir, config(Duration::from_secs(60), 10)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}

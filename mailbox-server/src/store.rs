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
//! atomic, and the address is writable again at once). In the batch's transaction the index
//! entry is removed (its bytes leave the quota) and a *tombstone* record naming the address is
//! staged in the active segment; after the batch's segment flush, the deleted record's body and
//! checksum are overwritten with zeros in its segment file (a record stored and deleted in the
//! same batch is wiped before it is ever written) and that file is `fdatasync`ed; only then is
//! the index committed and the delete answered. A crash before the next durable commit cannot
//! bring the message back: the wiped record no longer verifies, so a recovery never re-applies
//! it (scans step over it by the length in its head), and the tombstone, written before the
//! wipe, is re-applied like a stored record, removing an entry that the last durable commit
//! still held and wiping its record again. A delete of a message that has expired already
//! wipes it without a tombstone (its entry is dead either way).
//!
//! Tables:
//! - `index`: address (32 bytes) → expiry (u64 ms since the Unix epoch, big-endian) ‖
//!   segment (u64 LE) ‖ record offset (u64 LE) ‖ body length (u32 LE).
//! - `segments`: segment id → (earliest expiry, latest expiry) of its records: what purge
//!   walks, oldest first. A segment whose latest expiry has passed is purged (its index
//!   entries removed) and its file deleted after the next durable commit.
//! - `meta`: `"stored_bytes"` → total body bytes indexed (for the quota); `"applied_segment"`
//!   and `"applied_offset"` → how far the segments are reflected in the index.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailbox::{PutOutcome, Store, StoreError};
use protocol::Address;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::disk::{Disk, FreeSpace, WriteHealth};
use crate::segment::{self, ActiveSegment, Files, Location};

const INDEX: TableDefinition<[u8; 32], [u8; ENTRY_LEN]> = TableDefinition::new("index");
const SEGMENTS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("segments");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const STORED_BYTES: &str = "stored_bytes";
const APPLIED_SEGMENT: &str = "applied_segment";
const APPLIED_OFFSET: &str = "applied_offset";
const ENTRY_LEN: usize = 8 + 8 + 8 + 4;

/// Most writes folded into one commit.
const MAX_BATCH: usize = 4096;
/// Most records one purge step examines (one step is one writer transaction, so this bounds
/// how long a purge holds up PUTs).
const PURGE_CHUNK: usize = 2_000;
/// Queue of writes waiting for the writer thread. When it is full, request handlers wait
/// for room (backpressure): memory for pending writes is bounded by it.
const QUEUE_DEPTH: usize = 16_384;

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

/// One index entry: when the message expires and where its body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    expires: u64,
    at: Location,
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes
        .get(at..at.saturating_add(N))
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .unwrap_or([0; N])
}

impl Entry {
    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        let (expires, rest) = out.split_at_mut(8);
        expires.copy_from_slice(&self.expires.to_be_bytes());
        let (segment, rest) = rest.split_at_mut(8);
        segment.copy_from_slice(&self.at.segment.to_le_bytes());
        let (offset, len) = rest.split_at_mut(8);
        offset.copy_from_slice(&self.at.offset.to_le_bytes());
        len.copy_from_slice(&self.at.len.to_le_bytes());
        out
    }

    fn decode(value: &[u8; ENTRY_LEN]) -> Self {
        Self {
            expires: u64::from_be_bytes(array_at(value, 0)),
            at: Location {
                segment: u64::from_le_bytes(array_at(value, 8)),
                offset: u64::from_le_bytes(array_at(value, 16)),
                len: u32::from_le_bytes(array_at(value, 24)),
            },
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What one purge step did: index entries removed, and whether expired segments remain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PurgeStep {
    removed: u64,
    more: bool,
}

enum Job {
    Put {
        address: [u8; 32],
        expires: u64,
        body: Vec<u8>,
        reply: Reply<PutOutcome>,
    },
    Delete {
        address: [u8; 32],
        reply: Reply<()>,
    },
    Purge {
        reply: Reply<PurgeStep>,
    },
    /// Make everything committed so far durable in redb (if writes have paused).
    Checkpoint,
    Shutdown,
    /// Treat the index as failed, as after a write error (tests the reopen path).
    #[cfg(test)]
    BreakIndex,
}

/// The index database, shared by readers and the writer. After a failed index write redb
/// refuses every later operation until it is reopened, so the writer can take it out, reopen
/// it and put the new one in (readers use the segments' view meanwhile, see [`MemIndex`]).
///
/// While the index cannot be used (it failed and cannot be reopened yet, typically on a full
/// disk), readers use a [`MemIndex`] built from the segments instead: reads never depend on
/// the index being writable.
#[derive(Clone, Default)]
struct SharedDb {
    db: Arc<RwLock<Option<Arc<Database>>>>,
    fallback: Arc<RwLock<Option<Arc<MemIndex>>>>,
}

impl SharedDb {
    fn get(&self) -> Result<Arc<Database>, redb::Error> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| io::Error::other("index reopening").into())
    }

    fn set(&self, db: Option<Arc<Database>>) {
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = db;
    }

    fn fallback(&self) -> Option<Arc<MemIndex>> {
        self.fallback
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_fallback(&self, index: Option<Arc<MemIndex>>) {
        *self
            .fallback
            .write()
            .unwrap_or_else(PoisonError::into_inner) = index;
    }
}

/// The index rebuilt in memory from the segments alone (every verified record, in write
/// order; the first live record of an address wins, as in the writer), for reads while the
/// on-disk index cannot be used. Costs about 100 bytes of memory per stored message and one
/// read of every segment to build; it is dropped once the index is back.
struct MemIndex(std::collections::HashMap<[u8; 32], Entry>);

impl MemIndex {
    /// Scans every segment in `dir` (registering its file in `files` for reads).
    fn build(dir: &Path, files: &Files) -> io::Result<Self> {
        let now = now_ms();
        let mut map = std::collections::HashMap::new();
        for id in segment::list(dir)? {
            let known = files
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&id)
                .cloned();
            let file = match known {
                Some(file) => file,
                None => {
                    let file = Arc::new(segment::open(dir, id)?);
                    files
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(id, Arc::clone(&file));
                    file
                }
            };
            for (offset, record) in segment::scan(&file, id, 0)? {
                if record.is_tombstone() {
                    map.remove(&record.address);
                    continue;
                }
                if record.expires_ms <= now {
                    continue;
                }
                let at = Location {
                    segment: id,
                    offset,
                    len: u32::try_from(record.body.len()).unwrap_or(u32::MAX),
                };
                map.entry(record.address).or_insert(Entry {
                    expires: record.expires_ms,
                    at,
                });
            }
        }
        Ok(Self(map))
    }
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
            trickle.stop.store(true, Ordering::Relaxed);
            let _ = trickle.thread.join();
        }
    }
}

/// How often the trickle thread flushes redb's file.
const TRICKLE_EVERY: Duration = Duration::from_millis(200);

/// A thread that flushes redb's file to the device every [`TRICKLE_EVERY`].
///
/// Between checkpoints redb writes the pages it evicts from its (small) cache into the file
/// without flushing them; left alone, the kernel would hold them until the checkpoint's
/// fsync, which then stalls writes for as long as it takes to write them all. Flushing in
/// small steps keeps that final flush short. It changes nothing about correctness: it only
/// makes bytes durable earlier; redb's own commit protocol still decides what is valid.
struct Trickle {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn spawn_trickle_flush(db_file: &Path) -> std::io::Result<Trickle> {
    let file = std::fs::File::open(db_file)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("mailbox-trickle".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TRICKLE_EVERY);
                let _ = file.sync_data();
            }
        })?;
    Ok(Trickle { stop, thread })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Error class for logs and 503s: the kind of failure, never data.
fn class(err: &redb::Error) -> &'static str {
    match err {
        redb::Error::Io(e) if e.kind() == io::ErrorKind::InvalidData => "corrupted",
        redb::Error::Io(_) => "io",
        redb::Error::Corrupted(_) => "corrupted",
        redb::Error::ValueTooLarge(_) => "value too large",
        redb::Error::TransactionPoisoned => "poisoned",
        _ => "storage",
    }
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
        let disk = Disk::new(dir, config.reserve_bytes, config.free_space);
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
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let mut writer = Writer {
            index_failed: db.is_none(),
            db,
            shared: shared.clone(),
            db_path: dir.join("index.redb"),
            cache_bytes: config.cache_bytes,
            segment_failed: false,
            last_reopen: None,
            dir: seg_dir,
            files: Arc::clone(&files),
            active: recovered.active,
            segments: recovered.segments,
            purge_cursor: None,
            doomed: Vec::new(),
            quota: config.quota_bytes,
            dirty_since: None,
            unsaved_writes: 0,
            checkpoint_every: config.checkpoint_every,
            last_write: Instant::now(),
            disk,
            headroom: config.max_body.saturating_add(segment::RECORD_FIXED as u64),
            health: health.clone(),
        };
        if !writer.index_failed {
            // Health from the first moment: a start below the reserve refuses writes.
            writer.check_room(&mut Vec::new());
        }
        let thread = std::thread::Builder::new()
            .name("mailbox-writer".into())
            .spawn(move || write_loop(writer, queue))?;
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

    /// Removes every expired message from the index, closing the segments that hold them;
    /// returns how many. Their files are deleted after the next durable commit.
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

    async fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped"))
    }

    /// Live messages at `addresses`: index entries from one read transaction, then the
    /// bodies from their segments (which only hold records flushed before they were indexed).
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
                Some(entry) => segment::read_body(&self.files, entry.at, &address.0)?,
                None => None,
            });
        }
        Ok(out)
    }
}

impl Store for DiskStore {
    /// Answers `Stored` only once the message is flushed to its segment (durable) and
    /// indexed; `AlreadyExists` if a live message holds the address (decided in the single
    /// writer's transaction, so exactly one of concurrent writers wins).
    async fn put_if_absent(
        &self,
        address: &Address,
        body: &[u8],
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
            reply,
        })
        .await?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped"))?
    }

    /// Answers `Ok` only once the index entry is removed, a tombstone is durable in the
    /// active segment and the message's body is overwritten with zeros and flushed in its own
    /// segment (decided in the single writer's transaction, so it serializes with PUTs).
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

    async fn get(&self, address: &Address) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(std::slice::from_ref(address))
            .map(|mut v| v.pop().flatten())
            .map_err(|e| log_error(&e))
    }

    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.read(addresses).map_err(|e| log_error(&e))
    }

    /// The state the writer's last batch (or free-space check) left: disk full, failing, ok.
    fn write_health(&self) -> Result<(), StoreError> {
        self.health.get()
    }
}

fn log_error(err: &redb::Error) -> StoreError {
    let class = class(err);
    if let Some(suppressed) = ERROR_LOG.note(now_ms() / 1000) {
        if suppressed > 0 {
            eprintln!(
                "mailbox-server: store error: {class} ({suppressed} more since the last line)"
            );
        } else {
            eprintln!("mailbox-server: store error: {class}");
        }
    }
    StoreError::Unavailable(class)
}

/// Store errors are logged at most once a second (one failing disk can fail every request):
/// the first of each second is printed with the count of those left out since.
static ERROR_LOG: RateLimitedLog = RateLimitedLog::new();

/// At most one line a second, counting the ones left out.
struct RateLimitedLog {
    /// Second of the last printed line, plus one (0: never).
    last: std::sync::atomic::AtomicU64,
    /// Lines left out since the last printed one.
    suppressed: std::sync::atomic::AtomicU64,
}

impl RateLimitedLog {
    const fn new() -> Self {
        Self {
            last: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// One more event at second `now_s`: `Some(left out since the last line)` if a line is
    /// to be printed now, None if it is to be counted only.
    fn note(&self, now_s: u64) -> Option<u64> {
        let stamp = now_s.saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        if last != stamp
            && self
                .last
                .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// What recovery hands the writer.
struct Recovered {
    /// Records re-applied from the segments.
    replayed: usize,
    /// The new active segment (a fresh file: nothing is appended after a possibly torn tail).
    active: ActiveSegment,
    /// Segments holding records, with their (earliest, latest) expiry.
    segments: BTreeMap<u64, (u64, u64)>,
}

/// Brings the index up to date with the segments and commits it durably.
///
/// Segments at or after the index's applied position are scanned (verified record by
/// record, stopping at a torn tail) and their live records indexed first-write-wins, in the
/// order they were written, which reproduces the writer's decisions. Segment files before
/// the applied position that the index no longer lists are leftovers of a purge whose file
/// deletion did not happen, and are deleted.
fn recover(
    db: &Database,
    dir: &Path,
    files: &Files,
    disk: &Disk,
) -> Result<Recovered, redb::Error> {
    let txn = db.begin_write()?;
    let now = now_ms();
    let mut replayed = 0;
    let mut segments = BTreeMap::new();
    let mut wiped = BTreeMap::new();
    let on_disk = segment::list(dir)?;
    let next = {
        let mut tables = Tables::open(&txn)?;
        let applied_segment = tables.meta.get(APPLIED_SEGMENT)?.map_or(0, |g| g.value());
        let applied_offset = tables.meta.get(APPLIED_OFFSET)?.map_or(0, |g| g.value());
        for row in tables.segments.iter()? {
            let (id, expiry) = row?;
            segments.insert(id.value(), expiry.value());
        }
        for &id in &on_disk {
            if id < applied_segment && !segments.contains_key(&id) {
                segment::remove(dir, files, id)?;
                continue;
            }
            let file = Arc::new(segment::open(dir, id)?);
            files
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id, Arc::clone(&file));
            if id >= applied_segment {
                let from = if id == applied_segment {
                    applied_offset
                } else {
                    0
                };
                let mut range = segments.get(&id).copied();
                let records = segment::scan(&file, id, from)?;
                if records.is_empty() && range.is_none() && from == 0 {
                    // Not one record and not listed: the active segment and spare of a
                    // start that wrote nothing (or a torn first batch). Nothing points into
                    // it; ids are not reused (the next one is past every listed file).
                    drop(file);
                    segment::remove(dir, files, id)?;
                    continue;
                }
                for (offset, record) in records {
                    range = Some(
                        range.map_or((record.expires_ms, record.expires_ms), |(lo, hi)| {
                            (lo.min(record.expires_ms), hi.max(record.expires_ms))
                        }),
                    );
                    if record.is_tombstone() {
                        // Redo the delete: its index removal may not have been durable.
                        if let Some(entry) = tables.remove(&record.address)?
                            && let Some(file) = segment::wipe(files, entry.at)?
                        {
                            wiped.insert(entry.at.segment, file);
                        }
                        continue;
                    }
                    if record.expires_ms <= now {
                        continue;
                    }
                    let len = u32::try_from(record.body.len()).unwrap_or(u32::MAX);
                    let at = Location {
                        segment: id,
                        offset,
                        len,
                    };
                    // Already indexed (a non-durable commit that survived) or not: either
                    // way the index now points at the first live record for the address.
                    let _ = tables.put(
                        &record.address,
                        record.expires_ms,
                        now,
                        None,
                        || Ok(at),
                        |_| {},
                    )?;
                    replayed += 1;
                }
                if let Some(range) = range {
                    tables.segments.insert(id, range)?;
                    segments.insert(id, range);
                }
            }
        }
        for file in wiped.values() {
            file.sync_data()?;
        }
        let next = on_disk
            .last()
            .copied()
            .unwrap_or(0)
            .max(applied_segment)
            .saturating_add(1);
        tables.meta.insert(APPLIED_SEGMENT, next)?;
        tables.meta.insert(APPLIED_OFFSET, 0)?;
        tables.finish()?;
        next
    };
    txn.commit()?;
    // Created only once the index is committed, and removed again if creating it fails: a
    // failed start leaves no file behind.
    let active = ActiveSegment::create(dir, next, Arc::clone(files), disk.clone())?;
    Ok(Recovered {
        replayed,
        active,
        segments,
    })
}

/// Free space beyond one blob's worth that must return before refused writes resume.
const RESUME_MARGIN: u64 = 1 << 20;

/// Quiet time after which pending commits are made durable in redb.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// The writer thread's state.
struct Writer {
    /// The index (None only while it is being reopened).
    db: Option<Arc<Database>>,
    /// The same, as readers see it.
    shared: SharedDb,
    db_path: PathBuf,
    cache_bytes: usize,
    /// An index operation failed: redb refuses everything until reopened.
    index_failed: bool,
    /// The last failure was a segment's (a flush or a new segment), not the index's.
    segment_failed: bool,
    last_reopen: Option<Instant>,
    /// The segments folder.
    dir: PathBuf,
    files: Files,
    active: ActiveSegment,
    /// Segments holding records, with their (earliest, latest) expiry; mirrors `segments`.
    segments: BTreeMap<u64, (u64, u64)>,
    /// Where the purge of a partly purged segment resumes: (segment, record offset).
    purge_cursor: Option<(u64, u64)>,
    /// Purged segments, deleted after the next durable commit.
    doomed: Vec<u64>,
    quota: u64,
    /// When the oldest index commit not yet made durable happened (None: all durable).
    /// A checkpoint is due `checkpoint_every` after it, which bounds how much of the
    /// segments a crash recovery re-applies.
    dirty_since: Option<Instant>,
    /// Messages indexed since the last durable commit: what a restart would re-apply in
    /// one transaction. Kept below [`Writer::max_unsaved`] (a checkpoint is due there).
    unsaved_writes: usize,
    checkpoint_every: Duration,
    last_write: Instant,
    /// The disk and its reserve: checked before every batch of PUTs.
    disk: Disk,
    /// One largest blob and its record overhead: what must fit above the reserve for the
    /// store to accept writes (and for health to say so).
    headroom: u64,
    /// What the last batch left, for `GET /v1/health`.
    health: WriteHealth,
}

/// The writer thread: take one job, drain the queue behind it, commit them together.
fn write_loop(mut writer: Writer, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let stop = batch.iter().any(|j| matches!(j, Job::Shutdown));
        let asked = batch.iter().any(|j| matches!(j, Job::Checkpoint));
        let idle = writer.last_write.elapsed() >= CHECKPOINT_IDLE;
        if batch
            .iter()
            .any(|j| matches!(j, Job::Put { .. } | Job::Delete { .. }))
        {
            writer.last_write = Instant::now();
        }
        writer.commit_batch(&mut batch);
        let overdue = writer
            .dirty_since
            .is_some_and(|since| since.elapsed() >= writer.checkpoint_every)
            || writer.unsaved_writes >= writer.max_unsaved();
        if stop || (asked && idle) || overdue {
            writer.checkpoint();
        }
        if stop {
            return;
        }
    }
    writer.checkpoint();
}

/// The outcome of each job in a batch, before the flush and commit decide whether they stand.
enum Pending {
    Put(Reply<PutOutcome>, Result<PutOutcome, StoreError>),
    Delete(Reply<()>),
    Purge(Reply<PurgeStep>, PurgeStep),
}

impl Writer {
    /// Most messages indexed between durable commits. Re-applying them after a crash (or
    /// saving them at a checkpoint) rewrites at most one 4 KiB index page each; half the
    /// ballast per page bounds that by the ballast with room to spare, so the index always
    /// has the space to save its backlog, even on a disk something else filled up.
    fn max_unsaved(&self) -> usize {
        if self.disk.ballast_bytes() == 0 {
            // No reserve, no ballast: only the checkpoint interval bounds the backlog.
            return usize::MAX;
        }
        usize::try_from(self.disk.ballast_bytes() / 8192)
            .unwrap_or(usize::MAX)
            .clamp(16, MAX_BATCH)
    }

    /// Commits redb durably; then deletes the segments purged before it.
    fn checkpoint(&mut self) {
        if self.dirty_since.is_none() && self.doomed.is_empty() {
            return;
        }
        self.disk.release_ballast_if_tight();
        let result = self
            .db()
            .and_then(|db| db.begin_write().map_err(redb::Error::from))
            .and_then(|txn| txn.commit().map_err(redb::Error::from));
        match result {
            Ok(()) => {
                self.dirty_since = None;
                self.unsaved_writes = 0;
                for id in std::mem::take(&mut self.doomed) {
                    if let Err(err) = segment::remove(&self.dir, &self.files, id) {
                        // Left behind; deleted as an orphan on the next start.
                        log_error(&err.into());
                    }
                }
            }
            Err(err) => {
                self.index_down();
                self.failing(&err);
            }
        }
    }

    /// The index failed: readers switch to the segments' view (built once) for as long as
    /// it is down, so that reads never wait for the index to be writable again.
    fn index_down(&mut self) {
        self.index_failed = true;
        if self.shared.fallback().is_none() {
            match MemIndex::build(&self.dir, &self.files) {
                Ok(mem) => self.shared.set_fallback(Some(Arc::new(mem))),
                Err(err) => {
                    log_error(&err.into());
                }
            }
        }
    }

    /// Notes that the failure at hand is a segment's, then converts it.
    fn segment_error(&mut self, err: io::Error) -> redb::Error {
        self.segment_failed = true;
        err.into()
    }

    fn db(&self) -> Result<Arc<Database>, redb::Error> {
        self.db
            .clone()
            .ok_or_else(|| io::Error::other("index reopening").into())
    }

    /// After a failed index operation: closes the index, reopens it (redb repairs it from
    /// its last durable commit) and re-applies the segments written since, exactly as a
    /// restart after a crash would, then carries on with a new active segment. At most once
    /// a second; until it succeeds, writes answer 503 and reads are served from the
    /// segments' view.
    fn reopen(&mut self) {
        if self
            .last_reopen
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_reopen = Some(Instant::now());
        self.index_down();
        self.shared.set(None);
        if let Some(db) = self.db.take() {
            // Readers hold the old one for the length of one read; wait for them (bounded).
            let mut db = db;
            for _ in 0..5_000 {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still_shared) => {
                        db = still_shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        self.disk.release_ballast_if_tight();
        let reopened = Database::builder()
            .set_cache_size(self.cache_bytes)
            .create(&self.db_path)
            .map_err(redb::Error::from)
            .and_then(|db| {
                recover(&db, &self.dir, &self.files, &self.disk).map(|recovered| (db, recovered))
            });
        match reopened {
            Ok((db, recovered)) => {
                let db = Arc::new(db);
                self.shared.set(Some(Arc::clone(&db)));
                self.shared.set_fallback(None);
                self.db = Some(db);
                self.active = recovered.active;
                self.segments = recovered.segments;
                self.purge_cursor = None;
                // Purges not yet durable were lost with the failed index: its segments
                // table lists those segments again, and a later purge removes them.
                self.doomed.clear();
                self.dirty_since = None;
                self.unsaved_writes = 0;
                self.index_failed = false;
                eprintln!(
                    "mailbox-server: index reopened; re-applied {} messages from the segments",
                    recovered.replayed
                );
                self.resumed();
            }
            Err(err) => {
                log_error(&err);
                self.failing(&err);
            }
        }
    }

    /// A write failed: logged once (the class only), then reported by `/v1/health` until a
    /// write succeeds. Nothing is refused for good: the next batch tries again (in a new
    /// segment if the failure was a segment flush).
    fn failing(&mut self, err: &redb::Error) {
        if !self.health.is_failing() {
            log_error(err);
            eprintln!("mailbox-server: writes failing; each new write retries");
        }
        self.health.set_failing();
    }

    fn resumed(&mut self) {
        if self.health.is_failing() {
            eprintln!("mailbox-server: writes resumed");
        }
        self.health.set_ok();
    }

    /// Refuses every PUT in `batch` with `DiskFull` when their records would leave less
    /// than the reserve free; other jobs stay. Without PUTs, re-checks a failing state so
    /// that health recovers once space returns, even before the next write.
    fn check_room(&mut self, batch: &mut Vec<Job>) {
        // Back first, once space is back (a stat when it exists).
        self.disk.restore_ballast();
        let put_bytes: u64 = batch
            .iter()
            .map(|job| match job {
                Job::Put { body, .. } => (body.len() + segment::RECORD_FIXED) as u64,
                _ => 0,
            })
            .sum();
        if self.room_for_writes(put_bytes) {
            match self.health.get() {
                Err(StoreError::DiskFull) => self.resumed(),
                // A failed flush closed the active segment: start the next one now.
                Err(StoreError::Unavailable(_))
                    if put_bytes == 0 && self.active.is_broken() && self.active.roll().is_ok() =>
                {
                    self.resumed();
                }
                _ => {}
            }
            return;
        }
        if self.health.get() != Err(StoreError::DiskFull) {
            eprintln!(
                "mailbox-server: disk below its reserve; writes refused (507) until space returns"
            );
        }
        self.health.set_disk_full();
        let jobs = std::mem::take(batch);
        for job in jobs {
            match job {
                Job::Put { reply, .. } => {
                    let _ = reply.send(Err(StoreError::DiskFull));
                }
                other => batch.push(other),
            }
        }
    }

    /// The one predicate behind both the admission of PUTs and what `/v1/health` says:
    /// `put_bytes` (at least one largest blob with its record overhead) fit above the
    /// reserve. Once writes are refused, they resume only when [`RESUME_MARGIN`] more is
    /// free, so the state does not flap at the boundary.
    fn room_for_writes(&self, put_bytes: u64) -> bool {
        let needed = put_bytes.max(self.headroom);
        if self.health.get() == Err(StoreError::DiskFull) {
            self.disk.has_room_for(needed.saturating_add(RESUME_MARGIN))
        } else {
            self.disk.has_room_for(needed)
        }
    }

    fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        #[cfg(test)]
        if batch.iter().any(|j| matches!(j, Job::BreakIndex)) {
            self.index_failed = true;
        }
        if self.index_failed {
            self.reopen();
        }
        if self.index_failed {
            let err = StoreError::Unavailable("index");
            for job in batch.drain(..) {
                match job {
                    Job::Put { reply, .. } => {
                        let _ = reply.send(Err(err.clone()));
                    }
                    Job::Delete { reply, .. } => {
                        let _ = reply.send(Err(err.clone()));
                    }
                    Job::Purge { reply } => {
                        let _ = reply.send(Err(err.clone()));
                    }
                    _ => {}
                }
            }
            return;
        }
        self.check_room(batch);
        if !batch
            .iter()
            .any(|j| matches!(j, Job::Put { .. } | Job::Delete { .. } | Job::Purge { .. }))
        {
            // Nothing to write (an idle tick, or PUTs all refused): no index transaction, so an
            // idle server, or one on a full disk, does not write at all.
            batch.clear();
            return;
        }
        self.disk.release_ballast_if_tight();
        let has_puts = batch.iter().any(|j| matches!(j, Job::Put { .. }));
        let mut pending = Vec::with_capacity(batch.len());
        let result = self.apply(batch.drain(..), &mut pending);
        batch.clear();
        let err = match result {
            Ok(()) => {
                if has_puts {
                    self.resumed();
                }
                None
            }
            Err(err) => {
                self.active.discard();
                // A segment failure is retried in a new segment; anything else came from
                // the index, which must be reopened first.
                if !std::mem::take(&mut self.segment_failed) {
                    self.index_down();
                }
                self.failing(&err);
                Some(StoreError::Unavailable(class(&err)))
            }
        };
        for p in pending {
            match (p, &err) {
                (Pending::Put(reply, outcome), None) => {
                    let _ = reply.send(outcome);
                }
                (Pending::Purge(reply, step), None) => {
                    let _ = reply.send(Ok(step));
                }
                (Pending::Delete(reply), None) => {
                    let _ = reply.send(Ok(()));
                }
                (Pending::Put(reply, _), Some(e)) => {
                    let _ = reply.send(Err(e.clone()));
                }
                (Pending::Delete(reply), Some(e)) => {
                    let _ = reply.send(Err(e.clone()));
                }
                (Pending::Purge(reply, _), Some(e)) => {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Applies the jobs in one index transaction, flushes the staged records to their
    /// segment (durable), wipes the records of deleted messages (durable), then commits the
    /// index. Nothing is answered before this returns `Ok`, so no 201 precedes the flush and
    /// no 204 of a delete precedes the wipe.
    fn apply(
        &mut self,
        jobs: impl Iterator<Item = Job>,
        pending: &mut Vec<Pending>,
    ) -> Result<(), redb::Error> {
        if self.active.is_full() {
            self.active.roll().map_err(|e| self.segment_error(e))?;
        }
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(Durability::None)?;
        let now = now_ms();
        let mut staged = false;
        let mut changed = 0;
        let mut wipes = Vec::new();
        {
            let mut tables = Tables::open(&txn)?;
            for job in jobs {
                match job {
                    Job::Put {
                        address,
                        expires,
                        body,
                        reply,
                    } => {
                        let active = std::cell::RefCell::new(&mut self.active);
                        let outcome = tables.put(
                            &address,
                            expires,
                            now,
                            Some(self.quota),
                            || active.borrow_mut().stage(&address, expires, &body),
                            |at| active.borrow_mut().unstage(at),
                        )?;
                        if outcome == Ok(PutOutcome::Stored) {
                            staged = true;
                            changed += 1;
                        }
                        pending.push(Pending::Put(reply, outcome));
                    }
                    Job::Delete { address, reply } => {
                        if let Some(entry) = tables.remove(&address)? {
                            if entry.expires > now {
                                self.active
                                    .stage_tombstone(&address, entry.expires)
                                    .map_err(|e| self.segment_error(e))?;
                                staged = true;
                            }
                            if !self.active.wipe_staged(entry.at) {
                                wipes.push(entry.at);
                            }
                            changed += 1;
                        }
                        pending.push(Pending::Delete(reply));
                    }
                    Job::Purge { reply } => {
                        let step = self.purge_step(&mut tables, now)?;
                        pending.push(Pending::Purge(reply, step));
                    }
                    Job::Checkpoint | Job::Shutdown => {}
                    #[cfg(test)]
                    Job::BreakIndex => {}
                }
            }
            if staged && let Some(range) = self.active.expiry() {
                tables.segments.insert(self.active.id(), range)?;
                self.segments.insert(self.active.id(), range);
            }
            tables.meta.insert(APPLIED_SEGMENT, self.active.id())?;
            tables.meta.insert(APPLIED_OFFSET, self.active.end())?;
            tables.finish()?;
        }
        // Durable in the segment first; only then visible to readers and acknowledged.
        self.active.flush().map_err(|e| self.segment_error(e))?;
        // Tombstones are durable: wipe the deleted bodies, durably, before the index commits.
        self.wipe(&wipes).map_err(|e| self.segment_error(e))?;
        txn.commit()?;
        self.dirty_since.get_or_insert_with(Instant::now);
        self.unsaved_writes += changed;
        Ok(())
    }

    /// Overwrites the flushed records at `wipes` with zeros and `fdatasync`s each segment
    /// file touched, once.
    fn wipe(&self, wipes: &[Location]) -> io::Result<()> {
        let mut touched = BTreeMap::new();
        for &at in wipes {
            if let Some(file) = segment::wipe(&self.files, at)? {
                touched.insert(at.segment, file);
            }
        }
        for file in touched.values() {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Removes up to [`PURGE_CHUNK`] records' index entries of the oldest fully expired
    /// segment (closing the active segment first if it holds expired messages). A segment
    /// whose records are all examined is dropped from `segments` and doomed: its file is
    /// deleted only after a durable commit, so a crash can never leave the index pointing
    /// at a deleted file with a live message.
    fn purge_step(&mut self, tables: &mut Tables<'_>, now: u64) -> Result<PurgeStep, redb::Error> {
        if self
            .active
            .expiry()
            .is_some_and(|(earliest, _)| earliest <= now)
        {
            self.active.roll().map_err(|e| self.segment_error(e))?;
        }
        let active = self.active.id();
        let expired = |segments: &BTreeMap<u64, (u64, u64)>| {
            segments
                .iter()
                .find(|&(&id, &(_, latest))| latest <= now && id != active)
                .map(|(&id, _)| id)
        };
        let Some(id) = expired(&self.segments) else {
            return Ok(PurgeStep {
                removed: 0,
                more: false,
            });
        };
        let from = match self.purge_cursor {
            Some((segment, offset)) if segment == id => offset,
            _ => 0,
        };
        let file = self
            .files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned();
        let (heads, next) = match file {
            Some(file) => segment::scan_heads(&file, id, from, PURGE_CHUNK)?,
            None => (Vec::new(), None),
        };
        let mut removed = 0;
        for (at, address) in heads {
            let current = tables
                .index
                .get(&address)?
                .map(|g| Entry::decode(&g.value()));
            if current.is_some_and(|entry| entry.at == at) {
                tables.index.remove(&address)?;
                tables.stored = tables.stored.saturating_sub(u64::from(at.len));
                removed += 1;
            }
        }
        match next {
            Some(offset) => self.purge_cursor = Some((id, offset)),
            None => {
                tables.segments.remove(id)?;
                self.segments.remove(&id);
                self.doomed.push(id);
                self.purge_cursor = None;
            }
        }
        Ok(PurgeStep {
            removed,
            more: next.is_some() || expired(&self.segments).is_some(),
        })
    }
}

/// The tables of one write transaction.
struct Tables<'t> {
    index: redb::Table<'t, [u8; 32], [u8; ENTRY_LEN]>,
    segments: redb::Table<'t, u64, (u64, u64)>,
    meta: redb::Table<'t, &'static str, u64>,
    stored: u64,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Self, redb::Error> {
        let index = txn.open_table(INDEX)?;
        let segments = txn.open_table(SEGMENTS)?;
        let meta = txn.open_table(META)?;
        let stored = meta.get(STORED_BYTES)?.map_or(0, |g| g.value());
        Ok(Self {
            index,
            segments,
            meta,
            stored,
        })
    }

    /// First-write-wins insert of a `len`-byte body at `address`: unless a live message
    /// holds the address, and only within `quota` (None skips it), the index points at the
    /// body that `place` put somewhere (staged in the active segment, or where recovery found
    /// it). The common case, a fresh address, costs one B-tree insert: the entry is written
    /// first and, if the old one turns out to be live (409) or the quota is exceeded (507),
    /// the old entry is put back and `unplace` withdraws the staged body, all inside the
    /// same uncommitted transaction, so nobody ever sees the intermediate state and no
    /// refused body is ever flushed.
    fn put(
        &mut self,
        address: &[u8; 32],
        expires: u64,
        now: u64,
        quota: Option<u64>,
        place: impl FnOnce() -> io::Result<Location>,
        unplace: impl FnOnce(Location),
    ) -> Result<Result<PutOutcome, StoreError>, redb::Error> {
        let at = place()?;
        let previous = self
            .index
            .insert(address, Entry { expires, at }.encode())?
            .map(|g| Entry::decode(&g.value()));
        let refusal = match previous {
            Some(entry) if entry.expires > now => Some(PutOutcome::AlreadyExists),
            _ => None,
        };
        let freed = previous.map_or(0, |e| u64::from(e.at.len));
        let after = self
            .stored
            .saturating_sub(freed)
            .saturating_add(u64::from(at.len));
        let over_quota = refusal.is_none() && quota.is_some_and(|q| after > q);
        if refusal.is_some() || over_quota {
            match previous {
                Some(entry) => self.index.insert(address, entry.encode())?,
                None => self.index.remove(address)?,
            };
            unplace(at);
            return Ok(match refusal {
                Some(outcome) => Ok(outcome),
                None => Err(StoreError::QuotaReached),
            });
        }
        self.stored = after;
        Ok(Ok(PutOutcome::Stored))
    }

    /// Removes the entry at `address`, if any, and its bytes from the quota count.
    fn remove(&mut self, address: &[u8; 32]) -> Result<Option<Entry>, redb::Error> {
        let removed = self
            .index
            .remove(address)?
            .map(|g| Entry::decode(&g.value()));
        if let Some(entry) = removed {
            self.stored = self.stored.saturating_sub(u64::from(entry.at.len));
        }
        Ok(removed)
    }

    fn finish(mut self) -> Result<(), redb::Error> {
        self.meta.insert(STORED_BYTES, self.stored)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mailbox-server-test-{}-{name}-{}",
            std::process::id(),
            now_ms()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn config(ttl: Duration, quota: u64) -> StoreConfig {
        StoreConfig {
            reserve_bytes: 0,
            free_space: crate::disk::statvfs_free(),
            ttl,
            quota_bytes: quota,
            cache_bytes: 1 << 20,
            checkpoint_every: Duration::from_secs(10),
            max_body: 1024,
        }
    }

    async fn close(store: DiskStore, writer: WriterHandle) {
        drop(store);
        tokio::task::spawn_blocking(move || writer.shutdown())
            .await
            .ok();
    }

    /// What `kill -9` leaves: the files as the kernel holds them, without a checkpoint.
    fn copy_as_crashed(from: &Path, to: &Path) -> io::Result<()> {
        std::fs::create_dir_all(to.join("segments"))?;
        std::fs::copy(from.join("index.redb"), to.join("index.redb"))?;
        for id in segment::list(&from.join("segments"))? {
            std::fs::copy(
                segment::path_of(&from.join("segments"), id),
                segment::path_of(&to.join("segments"), id),
            )?;
        }
        Ok(())
    }

    fn body(i: u32) -> Vec<u8> {
        let len = 1 + (i as usize * 37) % 1024;
        (0..len).map(|j| (i as usize + j) as u8).collect()
    }

    fn address(i: u32) -> Address {
        let mut a = [0xaa; 32];
        let (head, _) = a.split_at_mut(4);
        head.copy_from_slice(&i.to_le_bytes());
        Address(a)
    }

    /// Every index entry points at a record of its own address and length.
    fn assert_index_consistent(store: &DiskStore) -> Result<u64, redb::Error> {
        let txn = store.db.get()?.begin_read()?;
        let table = txn.open_table(INDEX)?;
        let mut bytes = 0;
        for row in table.iter()? {
            let (address, value) = row?;
            let entry = Entry::decode(&value.value());
            let found = segment::read_body(&store.files, entry.at, &address.value())?;
            assert_eq!(found.map(|b| b.len()), Some(entry.at.len as usize));
            bytes += u64::from(entry.at.len);
        }
        let stored = txn
            .open_table(META)?
            .get(STORED_BYTES)?
            .map_or(0, |g| g.value());
        assert_eq!(stored, bytes, "the quota counter matches the index");
        Ok(bytes)
    }

    #[test]
    fn store_errors_are_logged_at_most_once_a_second_with_a_count() {
        let log = RateLimitedLog::new();
        assert_eq!(log.note(100), Some(0));
        for _ in 0..14_730 {
            assert_eq!(log.note(100), None);
        }
        assert_eq!(log.note(101), Some(14_730));
        assert_eq!(log.note(101), None);
        assert_eq!(log.note(105), Some(1));
    }

    #[test]
    fn index_entries_round_trip() {
        let entry = Entry {
            expires: 0x0102_0304_0506_0708,
            at: Location {
                segment: 9,
                offset: 1 << 40,
                len: 1024,
            },
        };
        assert_eq!(Entry::decode(&entry.encode()), entry);
        assert_eq!(entry.encode()[..8], 0x0102_0304_0506_0708u64.to_be_bytes());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_write_wins_under_concurrency_and_survives_reopen() -> Result<(), redb::Error> {
        let dir = temp_dir("fww");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
        let store = Arc::new(store);
        let address = Address([5; 32]);
        let mut tasks = Vec::new();
        for i in 0..100u8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store.put_if_absent(&address, &[i; 10]).await
            }));
        }
        let mut stored = 0;
        for task in tasks {
            if task.await.ok() == Some(Ok(PutOutcome::Stored)) {
                stored += 1;
            }
        }
        assert_eq!(stored, 1);
        let first = store.get(&address).await.ok().flatten();
        assert_eq!(first.as_ref().map(Vec::len), Some(10));
        let store = Arc::try_unwrap(store).map_err(|_| io::Error::other("store still shared"))?;
        close(store, writer).await;

        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
        assert_eq!(store.get(&address).await.ok().flatten(), first);
        assert_eq!(
            store.get_many(&[Address([6; 32]), address]).await.ok(),
            Some(vec![None, first])
        );
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_loses_no_acknowledged_write_and_ignores_a_torn_tail() -> Result<(), redb::Error>
    {
        let dir = temp_dir("crash");
        let crashed = temp_dir("crashed");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for i in 0..500u32 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store.put_if_absent(&address(i), &body(i)).await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.ok(), Some(Ok(PutOutcome::Stored)));
        }
        // kill -9 now: nothing was checkpointed since the open.
        copy_as_crashed(&dir, &crashed)?;
        let store = Arc::try_unwrap(store).map_err(|_| io::Error::other("store still shared"))?;
        close(store, writer).await;

        // A torn, never acknowledged last batch: half a record after the last one.
        use std::os::unix::fs::FileExt;
        let seg_dir = crashed.join("segments");
        let mut last = 0;
        let mut end = 0;
        for id in segment::list(&seg_dir)? {
            let records = segment::scan(&segment::open(&seg_dir, id)?, id, 0)?;
            if let Some((offset, record)) = records.last() {
                last = id;
                end = offset + (segment::RECORD_FIXED + record.body.len()) as u64;
            }
        }
        let file = segment::open(&seg_dir, last)?;
        let mut torn = last.to_le_bytes().to_vec();
        torn.extend_from_slice(&100u32.to_le_bytes());
        torn.extend_from_slice(&[0xbb; 40]);
        file.write_all_at(&torn, end)?;
        drop(file);

        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        for i in 0..500u32 {
            assert_eq!(
                store.get(&address(i)).await,
                Ok(Some(body(i))),
                "message {i}"
            );
        }
        assert_eq!(
            store.put_if_absent(&address(7), b"other").await,
            Ok(PutOutcome::AlreadyExists),
            "first write still wins after recovery"
        );
        let bytes = assert_index_consistent(&store)?;
        assert_eq!(bytes, (0..500).map(|i| body(i).len() as u64).sum::<u64>());
        // Recovery started a new segment rather than appending after the torn tail.
        assert!(segment::list(&seg_dir)?.last().copied().unwrap_or(0) > last);
        assert_eq!(
            store.put_if_absent(&address(1000), &body(1000)).await,
            Ok(PutOutcome::Stored)
        );
        close(store, writer).await;

        // A second crash-free reopen has nothing left to re-apply and still reads everything.
        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&address(1000)).await, Ok(Some(body(1000))));
        assert_eq!(store.get(&address(499)).await, Ok(Some(body(499))));
        assert_index_consistent(&store)?;
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }

    /// The index entry of `address`, if any.
    fn entry_of(store: &DiskStore, address: &Address) -> Result<Option<Entry>, redb::Error> {
        let txn = store.db.get()?.begin_read()?;
        let table = txn.open_table(INDEX)?;
        Ok(table.get(&address.0)?.map(|g| Entry::decode(&g.value())))
    }

    /// The bytes of the record at `at`, from the segment files in `seg_dir`.
    fn record_bytes(seg_dir: &Path, at: Location) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; segment::RECORD_FIXED + at.len as usize];
        segment::open(seg_dir, at.segment)?.read_exact_at(&mut bytes, at.offset)?;
        Ok(bytes)
    }

    /// Whether any segment file in `seg_dir` holds `needle`.
    fn segments_hold(seg_dir: &Path, needle: &[u8]) -> io::Result<bool> {
        for id in segment::list(seg_dir)? {
            let bytes = std::fs::read(segment::path_of(seg_dir, id))?;
            if bytes.windows(needle.len()).any(|w| w == needle) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A body no other test body contains by chance.
    fn secret(i: u8) -> Vec<u8> {
        (0..700u32)
            .map(|j| (j.wrapping_mul(131) as u8) ^ i ^ 0x5a)
            .collect()
    }

    /// Stores `body` at `address` in the store in `dir` and closes it: the message is then
    /// held by the last durable index commit.
    async fn store_durably(dir: &Path, address: &Address, body: &[u8]) -> Result<(), redb::Error> {
        let (store, writer) = DiskStore::open(dir, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(
            store.put_if_absent(address, body).await,
            Ok(PutOutcome::Stored)
        );
        close(store, writer).await;
        Ok(())
    }

    #[tokio::test]
    async fn a_delete_zeroes_the_body_frees_the_quota_and_the_address_can_be_written_again()
    -> Result<(), redb::Error> {
        let dir = temp_dir("delete");
        let seg_dir = dir.join("segments");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 2_000))?;
        let a = Address([0x11; 32]);
        assert_eq!(store.delete(&a).await, Ok(()), "a delete of nothing is Ok");
        assert_eq!(
            store.put_if_absent(&a, &secret(1)).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(
            store.put_if_absent(&Address([0x22; 32]), &[7; 1_000]).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(
            store.put_if_absent(&Address([0x33; 32]), &[8; 500]).await,
            Err(StoreError::QuotaReached)
        );
        let at = entry_of(&store, &a)?.map(|e| e.at);
        assert!(segments_hold(&seg_dir, &secret(1))?);

        assert_eq!(store.delete(&a).await, Ok(()));
        assert_eq!(store.get(&a).await, Ok(None));
        assert_eq!(store.get_many(&[a]).await, Ok(vec![None]));
        assert_eq!(entry_of(&store, &a)?, None);
        assert_eq!(
            assert_index_consistent(&store)?,
            1_000,
            "its bytes left the quota"
        );
        // Body and checksum are zeros in the segment file; the head stays.
        let at = at.ok_or_else(|| io::Error::other("no entry"))?;
        let record = record_bytes(&seg_dir, at)?;
        assert!(
            record
                .get(segment::RECORD_HEAD..)
                .is_some_and(|r| r.iter().all(|&b| b == 0))
        );
        assert!(!segments_hold(&seg_dir, &secret(1))?);
        assert_eq!(store.delete(&a).await, Ok(()), "deleting again is Ok");

        // The freed quota takes a new write, and the address is writable again.
        assert_eq!(
            store.put_if_absent(&Address([0x33; 32]), &[8; 500]).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(
            store.put_if_absent(&a, b"again").await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(
            store.put_if_absent(&a, b"third").await,
            Ok(PutOutcome::AlreadyExists)
        );
        close(store, writer).await;

        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 2_000))?;
        assert_eq!(store.get(&a).await, Ok(Some(b"again".to_vec())));
        assert_eq!(assert_index_consistent(&store)?, 1_505);
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_after_a_delete_does_not_bring_the_message_back() -> Result<(), redb::Error> {
        let dir = temp_dir("delete-crash");
        let crashed = temp_dir("delete-crashed");
        let checkpointed = Address([0x44; 32]);
        store_durably(&dir, &checkpointed, &secret(4)).await?;

        // Messages only in the write-ahead log, some deleted between others: recovery steps
        // over the wiped records and re-applies the ones after them.
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        for i in 0..60u32 {
            assert_eq!(
                store.put_if_absent(&address(i), &body(i)).await,
                Ok(PutOutcome::Stored)
            );
            if (10..20).contains(&i) {
                assert_eq!(store.delete(&address(i)).await, Ok(()));
            }
        }
        assert_eq!(store.delete(&checkpointed).await, Ok(()));
        // kill -9 now: the deletes' index commits were not durable.
        copy_as_crashed(&dir, &crashed)?;
        close(store, writer).await;

        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&checkpointed).await, Ok(None));
        for i in 0..60u32 {
            let expected = (!(10..20).contains(&i)).then(|| body(i));
            assert_eq!(store.get(&address(i)).await, Ok(expected), "message {i}");
        }
        assert!(!segments_hold(&crashed.join("segments"), &secret(4))?);
        let kept = (0..60).filter(|i| !(10..20).contains(i));
        assert_eq!(
            assert_index_consistent(&store)?,
            kept.map(|i| body(i).len() as u64).sum::<u64>()
        );
        // Writable again, and that survives a restart too.
        assert_eq!(
            store.put_if_absent(&checkpointed, b"new").await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(
            store.put_if_absent(&address(12), b"new").await,
            Ok(PutOutcome::Stored)
        );
        close(store, writer).await;
        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&checkpointed).await, Ok(Some(b"new".to_vec())));
        assert_eq!(store.get(&address(12)).await, Ok(Some(b"new".to_vec())));
        assert_eq!(store.get(&address(13)).await, Ok(None));
        close(store, writer).await;

        // Reads from the segments alone (the index unusable) do not bring them back either.
        let aside = break_index_file(&crashed)?;
        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert!(store.write_health().is_err());
        assert_eq!(
            store
                .get_many(&[address(13), address(12), address(30)])
                .await,
            Ok(vec![None, Some(b"new".to_vec()), Some(body(30))])
        );
        close(store, writer).await;
        mend_index_file(&crashed, &aside)?;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }

    #[tokio::test]
    async fn recovery_redoes_a_delete_whose_wipe_did_not_reach_the_disk() -> Result<(), redb::Error>
    {
        use std::os::unix::fs::FileExt;
        let dir = temp_dir("delete-redo");
        let crashed = temp_dir("delete-redone");
        let a = Address([0x55; 32]);
        store_durably(&dir, &a, &secret(5)).await?;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        let at = entry_of(&store, &a)?.map(|e| e.at);
        let at = at.ok_or_else(|| io::Error::other("no entry"))?;
        let before = record_bytes(&dir.join("segments"), at)?;
        assert_eq!(store.delete(&a).await, Ok(()));
        copy_as_crashed(&dir, &crashed)?;
        close(store, writer).await;
        // The crash came after the tombstone was flushed, before the wipe was: the record is
        // whole again in the copy (and the durable index still points at it).
        segment::open(&crashed.join("segments"), at.segment)?.write_all_at(&before, at.offset)?;
        assert!(segments_hold(&crashed.join("segments"), &secret(5))?);

        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&a).await, Ok(None));
        assert!(!segments_hold(&crashed.join("segments"), &secret(5))?);
        assert_eq!(assert_index_consistent(&store)?, 0);
        assert_eq!(
            store.put_if_absent(&a, b"again").await,
            Ok(PutOutcome::Stored)
        );
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn puts_and_deletes_queued_together_serialize_in_order() -> Result<(), redb::Error> {
        let dir = temp_dir("delete-batch");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        for round in 0..20u8 {
            // Queued back to back, so that they mostly share a batch: stored and deleted
            // before anything reaches the file, then stored again.
            let a = Address([round; 32]);
            let mut answers = Vec::new();
            for (i, delete) in [false, true, false, true, false].into_iter().enumerate() {
                let (reply, answer) = oneshot::channel();
                let (done, outcome) = oneshot::channel();
                let job = if delete {
                    Job::Delete {
                        address: a.0,
                        reply: done,
                    }
                } else {
                    Job::Put {
                        address: a.0,
                        expires: now_ms() + 60_000,
                        body: vec![round; 10 + i],
                        reply,
                    }
                };
                assert_eq!(store.send(job).await, Ok(()));
                answers.push((answer, outcome));
            }
            for (i, (answer, outcome)) in answers.into_iter().enumerate() {
                if i % 2 == 1 {
                    assert_eq!(outcome.await.ok(), Some(Ok(())));
                } else {
                    assert_eq!(answer.await.ok(), Some(Ok(PutOutcome::Stored)));
                }
            }
            assert_eq!(store.get(&a).await, Ok(Some(vec![round; 14])));
        }
        assert_eq!(assert_index_consistent(&store)?, 20 * 14);
        close(store, writer).await;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&Address([3; 32])).await, Ok(Some(vec![3; 14])));
        assert_eq!(assert_index_consistent(&store)?, 20 * 14);
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test]
    async fn quota_counts_body_bytes_and_refused_bodies_are_never_logged() -> Result<(), redb::Error>
    {
        let dir = temp_dir("quota");
        let crashed = temp_dir("quota-crashed");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 10))?;
        assert_eq!(
            store.put_if_absent(&Address([1; 32]), &[0; 6]).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(
            store.put_if_absent(&Address([2; 32]), &[0; 5]).await,
            Err(StoreError::QuotaReached)
        );
        assert_eq!(
            store.put_if_absent(&Address([3; 32]), &[0; 4]).await,
            Ok(PutOutcome::Stored)
        );
        copy_as_crashed(&dir, &crashed)?;
        close(store, writer).await;
        let (store, writer) = DiskStore::open(&crashed, config(Duration::from_secs(60), 10))?;
        assert_eq!(store.get(&Address([2; 32])).await, Ok(None));
        assert_eq!(assert_index_consistent(&store)?, 10);
        assert_eq!(
            store.put_if_absent(&Address([4; 32]), &[0; 1]).await,
            Err(StoreError::QuotaReached)
        );
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }

    #[tokio::test]
    async fn expired_messages_are_hidden_then_purged_and_free_their_quota()
    -> Result<(), redb::Error> {
        let dir = temp_dir("expiry");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_millis(200), 10))?;
        let a = Address([7; 32]);
        assert_eq!(
            store.put_if_absent(&a, &[1; 10]).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(store.purge_expired().await, Ok(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(store.get(&a).await, Ok(None));
        assert_eq!(store.purge_expired().await, Ok(1));
        assert_eq!(
            store.put_if_absent(&a, &[2; 10]).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(store.get(&a).await, Ok(Some(vec![2; 10])));
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test]
    async fn purged_segments_are_deleted_after_a_durable_commit() -> Result<(), redb::Error> {
        let dir = temp_dir("segments");
        let seg_dir = dir.join("segments");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_millis(300), 1 << 20))?;
        for i in 0..20 {
            assert_eq!(
                store.put_if_absent(&address(i), &body(i)).await,
                Ok(PutOutcome::Stored)
            );
        }
        let first = segment::list(&seg_dir)?;
        tokio::time::sleep(Duration::from_millis(350)).await;
        // Written after the others expired, replacing one of them in the same segment: the
        // segment is not purged while it holds this live message.
        assert_eq!(
            store.put_if_absent(&address(3), b"again").await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(store.purge_expired().await, Ok(0));
        assert_eq!(store.get(&address(3)).await, Ok(Some(b"again".to_vec())));
        assert_eq!(store.get(&address(4)).await, Ok(None));
        assert_eq!(
            assert_index_consistent(&store)?,
            5 + (0..20)
                .filter(|&i| i != 3)
                .map(|i| body(i).len() as u64)
                .sum::<u64>()
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        // 19 originals and the replacement; the replaced record no longer owns its entry.
        assert_eq!(store.purge_expired().await, Ok(20));
        assert_eq!(assert_index_consistent(&store)?, 0);
        // Still on disk until redb has committed the purge durably (here: at shutdown).
        assert_eq!(segment::list(&seg_dir)?.first(), first.first());
        close(store, writer).await;
        assert!(!segment::list(&seg_dir)?.contains(first.first().unwrap_or(&0)));
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
        assert_eq!(store.get(&address(3)).await, Ok(None));
        assert_eq!(assert_index_consistent(&store)?, 0);
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_writers_than_the_queue_holds_wait_for_room_and_all_succeed()
    -> Result<(), redb::Error> {
        let dir = temp_dir("backpressure");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        let store = Arc::new(store);
        let n = QUEUE_DEPTH as u32 + 2_000;
        let mut tasks = Vec::new();
        for i in 0..n {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store.put_if_absent(&address(i), &i.to_le_bytes()).await
            }));
        }
        let mut stored = 0;
        for task in tasks {
            if task.await.ok() == Some(Ok(PutOutcome::Stored)) {
                stored += 1;
            }
        }
        assert_eq!(stored, n);
        assert_eq!(
            store.get(&address(n - 1)).await,
            Ok(Some((n - 1).to_le_bytes().to_vec()))
        );
        assert_eq!(assert_index_consistent(&store)?, 4 * u64::from(n));
        let store = Arc::try_unwrap(store).map_err(|_| io::Error::other("store still shared"))?;
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_without_restart()
    -> Result<(), redb::Error> {
        use std::sync::atomic::AtomicU64;
        let dir = temp_dir("diskfull");
        let free = Arc::new(AtomicU64::new(1 << 40));
        let probe = Arc::clone(&free);
        let config = StoreConfig {
            reserve_bytes: 1 << 20,
            free_space: Arc::new(move |_: &Path| Ok(probe.load(Ordering::Relaxed))),
            ..config(Duration::from_secs(60), 1 << 30)
        };
        let (store, writer) = DiskStore::open(&dir, config.clone())?;
        assert_eq!(
            store.put_if_absent(&address(1), &body(1)).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(store.write_health(), Ok(()));
        assert!(
            dir.join("ballast").exists(),
            "ballast made while there is room"
        );

        // Less than the reserve (plus the records) is free: refused, reads go on.
        free.store((1 << 20) + 100, Ordering::Relaxed);
        assert_eq!(
            store.put_if_absent(&address(2), &body(2)).await,
            Err(StoreError::DiskFull)
        );
        assert_eq!(store.write_health(), Err(StoreError::DiskFull));
        assert_eq!(store.get(&address(1)).await, Ok(Some(body(1))));
        // Nearly nothing free: refused PUTs write nothing at all, and the ballast goes before
        // the index next writes (here a purge), so the index has room.
        free.store(0, Ordering::Relaxed);
        assert_eq!(
            store.put_if_absent(&address(2), &body(2)).await,
            Err(StoreError::DiskFull)
        );
        assert!(
            dir.join("ballast").exists(),
            "no index write, nothing released"
        );
        assert_eq!(store.purge_expired().await, Ok(0));
        assert!(
            !dir.join("ballast").exists(),
            "ballast released on a full disk"
        );

        // Space returns: health recovers on the writer's next tick, writes work again.
        free.store(1 << 40, Ordering::Relaxed);
        assert_eq!(store.checkpoint().await, Ok(()));
        assert_eq!(store.purge_expired().await, Ok(0));
        assert_eq!(store.write_health(), Ok(()));
        assert_eq!(
            store.put_if_absent(&address(2), &body(2)).await,
            Ok(PutOutcome::Stored)
        );
        assert!(dir.join("ballast").exists(), "ballast back");
        close(store, writer).await;

        // A start on a full disk works and serves reads.
        free.store(0, Ordering::Relaxed);
        let (store, writer) = DiskStore::open(&dir, config)?;
        assert_eq!(store.get(&address(2)).await, Ok(Some(body(2))));
        assert_eq!(
            store.put_if_absent(&address(3), &body(3)).await,
            Err(StoreError::DiskFull)
        );
        assert_index_consistent(&store)?;
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_index_is_reopened_and_recovered_without_a_restart() -> Result<(), redb::Error>
    {
        let dir = temp_dir("reopen");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        for i in 0..200u32 {
            assert_eq!(
                store.put_if_absent(&address(i), &body(i)).await,
                Ok(PutOutcome::Stored)
            );
        }
        // An index write failed: redb would refuse everything until reopened.
        assert_eq!(store.send(Job::BreakIndex).await, Ok(()));
        // The next write reopens it, re-applies the segments, and succeeds.
        assert_eq!(
            store.put_if_absent(&address(500), &body(500)).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(store.write_health(), Ok(()));
        for i in 0..200u32 {
            assert_eq!(
                store.get(&address(i)).await,
                Ok(Some(body(i))),
                "message {i}"
            );
        }
        assert_eq!(
            store.put_if_absent(&address(7), b"other").await,
            Ok(PutOutcome::AlreadyExists),
            "first write still wins"
        );
        assert_eq!(
            assert_index_consistent(&store)?,
            (0..200)
                .chain([500])
                .map(|i| body(i).len() as u64)
                .sum::<u64>()
        );
        close(store, writer).await;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        assert_eq!(store.get(&address(500)).await, Ok(Some(body(500))));
        assert_eq!(store.get(&address(199)).await, Ok(Some(body(199))));
        assert_index_consistent(&store)?;
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test]
    async fn starts_that_write_nothing_leave_no_segment_files_behind() -> Result<(), redb::Error> {
        let dir = temp_dir("empty-segments");
        let seg_dir = dir.join("segments");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
        assert_eq!(
            store.put_if_absent(&address(1), &body(1)).await,
            Ok(PutOutcome::Stored)
        );
        close(store, writer).await;
        for _ in 0..4 {
            let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
            assert_eq!(store.get(&address(1)).await, Ok(Some(body(1))));
            close(store, writer).await;
        }
        // The segment with the message, the last start's active segment and its spare.
        let left = segment::list(&seg_dir)?;
        assert!(left.len() <= 3, "segment files left: {left:?}");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
        assert_eq!(store.get(&address(1)).await, Ok(Some(body(1))));
        assert_index_consistent(&store)?;
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// Puts an unusable thing (a directory) where the index file is, so that opening the
    /// index fails as it does on a full disk; returns where the real file went.
    fn break_index_file(dir: &Path) -> io::Result<PathBuf> {
        let aside = dir.join("index.redb.aside");
        std::fs::rename(dir.join("index.redb"), &aside)?;
        std::fs::create_dir(dir.join("index.redb"))?;
        Ok(aside)
    }

    fn mend_index_file(dir: &Path, aside: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir.join("index.redb"))?;
        std::fs::rename(aside, dir.join("index.redb"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_never_depend_on_the_index_being_writable() -> Result<(), redb::Error> {
        let dir = temp_dir("index-down");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        for i in 0..300u32 {
            assert_eq!(
                store.put_if_absent(&address(i), &body(i)).await,
                Ok(PutOutcome::Stored)
            );
        }
        // The index fails while running and cannot be reopened (as on a full disk).
        let aside = break_index_file(&dir)?;
        assert_eq!(store.send(Job::BreakIndex).await, Ok(()));
        assert!(
            store
                .put_if_absent(&address(900), &body(900))
                .await
                .is_err()
        );
        assert!(store.write_health().is_err());
        for i in 0..300u32 {
            assert_eq!(
                store.get(&address(i)).await,
                Ok(Some(body(i))),
                "message {i}"
            );
        }
        assert_eq!(store.get(&address(900)).await, Ok(None));
        close(store, writer).await;

        // A start while the index cannot be opened serves reads from the segments.
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        assert!(store.write_health().is_err(), "health says writes fail");
        assert_eq!(
            store
                .get_many(&[address(0), address(299), address(900)])
                .await,
            Ok(vec![Some(body(0)), Some(body(299)), None])
        );
        assert!(
            store
                .put_if_absent(&address(901), &body(901))
                .await
                .is_err()
        );
        // The index becomes usable again: the writer reopens it (at most once a second)
        // and writes resume, without a restart.
        mend_index_file(&dir, &aside)?;
        let mut resumed = false;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if store.put_if_absent(&address(901), &body(901)).await == Ok(PutOutcome::Stored) {
                resumed = true;
                break;
            }
        }
        assert!(resumed, "writes resume once the index can be written");
        assert_eq!(store.write_health(), Ok(()));
        assert_eq!(store.get(&address(901)).await, Ok(Some(body(901))));
        assert_eq!(store.get(&address(7)).await, Ok(Some(body(7))));
        assert_index_consistent(&store)?;
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test]
    async fn health_and_admission_agree_from_the_start_and_do_not_flap() -> Result<(), redb::Error>
    {
        use std::sync::atomic::AtomicU64;
        let dir = temp_dir("health-agrees");
        let reserve = 1 << 20;
        let free = Arc::new(AtomicU64::new(reserve + 100));
        let probe = Arc::clone(&free);
        let config = StoreConfig {
            reserve_bytes: reserve,
            free_space: Arc::new(move |_: &Path| Ok(probe.load(Ordering::Relaxed))),
            ..config(Duration::from_secs(60), 1 << 30)
        };
        // A start below the reserve: health says so before any write is tried.
        let (store, writer) = DiskStore::open(&dir, config.clone())?;
        assert_eq!(store.write_health(), Err(StoreError::DiskFull));
        // Room for a 10-byte body but not for a largest one: health stays "full" on the
        // writer's tick, and a PUT is refused, whatever its size.
        free.store(reserve + 600, Ordering::Relaxed);
        assert_eq!(store.checkpoint().await, Ok(()));
        assert_eq!(store.purge_expired().await, Ok(0));
        assert_eq!(store.write_health(), Err(StoreError::DiskFull));
        assert_eq!(
            store.put_if_absent(&address(1), &[1; 10]).await,
            Err(StoreError::DiskFull)
        );
        // Just past one blob: still refused (resuming needs the margin), no flapping.
        free.store(reserve + 4096, Ordering::Relaxed);
        assert_eq!(store.purge_expired().await, Ok(0));
        assert_eq!(store.write_health(), Err(StoreError::DiskFull));
        assert_eq!(
            store.put_if_absent(&address(1), &[1; 10]).await,
            Err(StoreError::DiskFull)
        );
        // The margin is back: health and writes both resume.
        free.store(reserve + RESUME_MARGIN + 4096, Ordering::Relaxed);
        assert_eq!(store.purge_expired().await, Ok(0));
        assert_eq!(store.write_health(), Ok(()));
        assert_eq!(
            store.put_if_absent(&address(1), &[1; 10]).await,
            Ok(PutOutcome::Stored)
        );
        // Below one blob again: refused, and health says so.
        free.store(reserve + 600, Ordering::Relaxed);
        assert_eq!(
            store.put_if_absent(&address(2), &[1; 10]).await,
            Err(StoreError::DiskFull)
        );
        assert_eq!(store.write_health(), Err(StoreError::DiskFull));
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

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

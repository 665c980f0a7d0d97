//! The single writer thread: every PUT, delete, purge and checkpoint, in batches (group
//! commit), each batch one index transaction whose records are durable in their segments
//! before it commits and anyone is answered.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mailbox::{PutOutcome, StoreError};
use redb::{Database, Durability, ReadableTable};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use super::StoreConfig;
use super::error_log::{class, log_error};
use super::index::{APPLIED_OFFSET, APPLIED_SEGMENT, Entry, Tables};
use super::now_ms;
use super::readers::{MemIndex, SharedDb};
use super::recovery::{Recovered, recover};
use super::segment::{self, ActiveSegment, Files, Location};
use crate::disk::{Disk, WriteHealth};

/// Most writes folded into one commit.
pub(super) const MAX_BATCH: usize = 4096;
/// Most records one purge step examines (one step is one writer transaction, so this bounds
/// how long a purge holds up PUTs).
pub(super) const PURGE_CHUNK: usize = 2_000;
/// Queue of writes waiting for the writer thread. When it is full, request handlers wait
/// for room (backpressure): memory for pending writes is bounded by it.
pub(super) const QUEUE_DEPTH: usize = 16_384;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What one purge step did: index entries removed, and whether expired segments remain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PurgeStep {
    pub(super) removed: u64,
    pub(super) more: bool,
}

pub(super) enum Job {
    Put {
        address: [u8; 32],
        /// A first write's expiry (a put-back that stores keeps the deleted message's).
        expires: u64,
        body: Vec<u8>,
        /// `Mailbox-Put-Back: ?1`: the deleted message's bytes, to be stored again.
        put_back: bool,
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

/// What the writer thread starts from.
pub(super) struct Start {
    /// The index, if it could be opened and recovered.
    pub(super) db: Option<Arc<Database>>,
    /// The index as readers see it.
    pub(super) shared: SharedDb,
    /// The data folder.
    pub(super) dir: PathBuf,
    pub(super) files: Files,
    pub(super) recovered: Recovered,
    pub(super) disk: Disk,
    pub(super) health: WriteHealth,
}

/// Starts the writer thread; returns where to send it jobs.
pub(super) fn start(
    start: Start,
    config: &StoreConfig,
) -> io::Result<(mpsc::Sender<Job>, JoinHandle<()>)> {
    let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
    let mut writer = Writer {
        index_failed: start.db.is_none(),
        db: start.db,
        shared: start.shared,
        db_path: start.dir.join("index.redb"),
        cache_bytes: config.cache_bytes,
        segment_failed: false,
        last_reopen: None,
        dir: start.dir.join("segments"),
        files: start.files,
        active: start.recovered.active,
        segments: start.recovered.segments,
        purge_cursor: None,
        doomed: Vec::new(),
        quota: config.quota_bytes,
        dirty_since: None,
        unsaved_writes: 0,
        checkpoint_every: config.checkpoint_every,
        last_write: Instant::now(),
        disk: start.disk,
        headroom: config.max_body.saturating_add(segment::RECORD_FIXED as u64),
        health: start.health,
    };
    if !writer.index_failed {
        // Health from the first moment: a start below the reserve refuses writes.
        writer.check_room(&mut Vec::new());
    }
    let thread = std::thread::Builder::new()
        .name("mailbox-writer".into())
        .spawn(move || write_loop(writer, queue))?;
    Ok((jobs, thread))
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
                        put_back,
                        reply,
                    } => {
                        let spent = if put_back {
                            self.live_spent_entry(&tables, &address, now)?
                        } else {
                            None
                        };
                        let outcome = match spent {
                            Some(spent) => self.put_back(&mut tables, &address, spent, &body)?,
                            None => self.put(&mut tables, &address, expires, now, &body)?,
                        };
                        if outcome == Ok(PutOutcome::Stored) {
                            staged = true;
                            changed += 1;
                        }
                        pending.push(Pending::Put(reply, outcome));
                    }
                    Job::Delete { address, reply } => {
                        if let Some(spent) = self.delete(&mut tables, &address, now, &mut wipes)? {
                            staged |= spent;
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

    /// A first write of `body` at `address` (an ordinary PUT, or a put-back at an address
    /// that is not spent): first write wins, within the quota, live until `expires`.
    fn put(
        &mut self,
        tables: &mut Tables<'_>,
        address: &[u8; 32],
        expires: u64,
        now: u64,
        body: &[u8],
    ) -> Result<Result<PutOutcome, StoreError>, redb::Error> {
        let active = std::cell::RefCell::new(&mut self.active);
        let outcome = tables.put(
            address,
            expires,
            now,
            Some(self.quota),
            || active.borrow_mut().stage(address, expires, body),
            |at| active.borrow_mut().unstage(at),
        )?;
        Ok(match outcome {
            Ok(PutOutcome::Spent) => Ok(self.spent_answer(tables, address, body)?),
            other => other,
        })
    }

    /// A put-back of `body` at `address`, whose entry is the live spent one `spent`: if
    /// `body` is the deleted message (see [`Writer::is_deleted_body`]), it is staged again in
    /// the active segment with the deleted message's own expiry (never a fresh one) and the
    /// entry points at it, live, within the quota (`Stored`); the staged record is flushed
    /// with the batch before anyone is answered, as for any stored write. Otherwise the
    /// answer is a first write's at a spent address, and nothing is written: other bytes are
    /// `AlreadyExists`, a tombstone without a digest (or unreadable) `Spent`.
    fn put_back(
        &mut self,
        tables: &mut Tables<'_>,
        address: &[u8; 32],
        spent: Entry,
        body: &[u8],
    ) -> Result<Result<PutOutcome, StoreError>, redb::Error> {
        match self.is_deleted_body(spent, address, body) {
            Some(true) => {
                let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
                let active = &mut self.active;
                tables.put_back(address, spent.expires, len, Some(self.quota), || {
                    active.stage(address, spent.expires, body)
                })
            }
            Some(false) => Ok(Ok(PutOutcome::AlreadyExists)),
            None => Ok(Ok(PutOutcome::Spent)),
        }
    }

    /// The entry at `address` if it is spent and its deleted message's expiry is still ahead
    /// (a put-back may bring that message back); None if the address is free or live.
    fn live_spent_entry(
        &self,
        tables: &Tables<'_>,
        address: &[u8; 32],
        now: u64,
    ) -> Result<Option<Entry>, redb::Error> {
        Ok(tables
            .index
            .get(address)?
            .map(|g| Entry::decode(&g.value()))
            .filter(|entry| entry.is_spent() && entry.expires > now))
    }

    /// What a PUT of `body` at the spent `address` answers: `Spent` if `body` is the deleted
    /// message (a retry of a blob that was read, see [`Writer::is_deleted_body`]),
    /// `AlreadyExists` if it differs (someone else's blob stood there). A tombstone without a
    /// digest (written before digests were) answers `Spent` for any body, and so does one
    /// that cannot be read. Nothing is written either way.
    fn spent_answer(
        &self,
        tables: &Tables<'_>,
        address: &[u8; 32],
        body: &[u8],
    ) -> Result<PutOutcome, redb::Error> {
        let Some(entry) = tables
            .index
            .get(address)?
            .map(|g| Entry::decode(&g.value()))
        else {
            return Ok(PutOutcome::Spent);
        };
        Ok(match self.is_deleted_body(entry, address, body) {
            Some(false) => PutOutcome::AlreadyExists,
            _ => PutOutcome::Spent,
        })
    }

    /// Whether `body` is the message deleted at `address`, whose spent entry is `spent`: its
    /// digest, compared in constant time, is the one the tombstone records. None if the
    /// tombstone records no digest (written before digests were) or cannot be read (the
    /// error's class is logged): the digest only refines the answer, so a read failure never
    /// fails the batch (it refuses the PUT as spent).
    fn is_deleted_body(&self, spent: Entry, address: &[u8; 32], body: &[u8]) -> Option<bool> {
        let recorded = self
            .active
            .tombstone_digest(spent.at, address)
            .unwrap_or_else(|err| {
                log_error(&err.into());
                None
            })?;
        Some(bool::from(segment::digest(body).ct_eq(&recorded)))
    }

    /// Deletes the message at `address` inside the batch's transaction: a live one leaves a
    /// tombstone (staged here, with its body's digest) and a spent entry pointing at it until
    /// the message's expiry; an expired one is just unindexed. Either way its record is wiped
    /// (here if it is still staged, else pushed to `wipes`). A spent address, or no entry, is
    /// left as it is: a delete spends nothing more. Returns None if nothing changed, else
    /// whether a tombstone was staged.
    fn delete(
        &mut self,
        tables: &mut Tables<'_>,
        address: &[u8; 32],
        now: u64,
        wipes: &mut Vec<Location>,
    ) -> Result<Option<bool>, redb::Error> {
        let current = tables
            .index
            .get(address)?
            .map(|g| Entry::decode(&g.value()));
        let Some(entry) = current.filter(|e| !e.is_spent()) else {
            return Ok(None);
        };
        let live = entry.expires > now;
        if live {
            // The body is read back (from this batch's staged records or its segment) only
            // to be hashed. If it cannot be read (the error's class is logged) or no longer
            // verifies, the tombstone records no digest: the address is then spent for any
            // body, as before digests, and the delete goes on.
            let deleted = self
                .active
                .read_body(entry.at, address)
                .unwrap_or_else(|err| {
                    log_error(&err.into());
                    None
                })
                .map(|body| segment::digest(&body));
            let tombstone = self
                .active
                .stage_tombstone(address, entry.expires, deleted.as_ref());
            tables.spend(address, entry.expires, tombstone)?;
        } else {
            tables.remove(address)?;
        }
        if !self.active.wipe_staged(entry.at) {
            wipes.push(entry.at);
        }
        Ok(Some(live))
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use mailbox::Store;
    use protocol::Address;

    use super::super::testing::*;
    use super::super::{DiskStore, StoreConfig};
    use super::*;

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
    #[tokio::test]
    async fn a_delete_zeroes_the_body_frees_the_quota_and_spends_the_address()
    -> Result<(), redb::Error> {
        let dir = temp_dir("delete");
        let seg_dir = dir.join("segments");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 2_000))?;
        let a = Address([0x11; 32]);
        assert_eq!(store.delete(&a).await, Ok(()), "a delete of nothing is Ok");
        assert_eq!(entry_of(&store, &a)?, None, "and spends nothing");
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
        let stored = entry_of(&store, &a)?.ok_or_else(|| io::Error::other("no entry"))?;
        assert!(segments_hold(&seg_dir, &secret(1))?);

        assert_eq!(store.delete(&a).await, Ok(()));
        assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
        assert_eq!(store.get_many(&[a]).await, Ok(vec![Some(Vec::new())]));
        // Spent until the message's own expiry: a zero-length entry at the tombstone.
        let spent = entry_of(&store, &a)?.ok_or_else(|| io::Error::other("no entry"))?;
        assert!(spent.is_spent() && spent.expires == stored.expires);
        assert_ne!(spent.at.offset, stored.at.offset);
        assert_eq!(
            assert_index_consistent(&store)?,
            1_000,
            "its bytes left the quota"
        );
        // Body and checksum are zeros in the segment file; the head stays.
        let record = record_bytes(&seg_dir, stored.at)?;
        assert!(
            record
                .get(segment::RECORD_HEAD..)
                .is_some_and(|r| r.iter().all(|&b| b == 0))
        );
        assert!(!segments_hold(&seg_dir, &secret(1))?);
        assert_eq!(store.delete(&a).await, Ok(()), "deleting again is Ok");
        assert_eq!(entry_of(&store, &a)?, Some(spent), "and changes nothing");

        // A PUT at the spent address is refused and writes nothing, not even to a segment
        // (another body than the deleted one: taken).
        assert_eq!(
            store.put_if_absent(&a, &secret(2)).await,
            Ok(PutOutcome::AlreadyExists)
        );
        assert!(!segments_hold(&seg_dir, &secret(2))?);
        assert_eq!(store.get_many(&[a]).await, Ok(vec![Some(Vec::new())]));
        // The freed quota takes a new write; the spent entry charges nothing.
        assert_eq!(
            store.put_if_absent(&Address([0x33; 32]), &[8; 500]).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(assert_index_consistent(&store)?, 1_500);
        assert_eq!(
            store.put_if_absent(&a, &secret(1)).await,
            Ok(PutOutcome::Spent)
        );
        close(store, writer).await;

        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 2_000))?;
        assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
        assert_eq!(store.get_many(&[a]).await, Ok(vec![Some(Vec::new())]));
        assert_eq!(
            store.put_if_absent(&a, &secret(1)).await,
            Ok(PutOutcome::Spent)
        );
        assert_eq!(assert_index_consistent(&store)?, 1_500);
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
    #[tokio::test]
    async fn a_put_at_a_spent_address_is_spent_for_the_deleted_body_and_taken_for_another()
    -> Result<(), redb::Error> {
        let dir = temp_dir("spent-digest");
        let crashed = temp_dir("spent-digest-crashed");
        let seg_dir = dir.join("segments");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        let (a, b) = (Address([0x61; 32]), Address([0x62; 32]));
        for (address, body) in [(a, secret(1)), (b, secret(3))] {
            assert_eq!(
                store.put_if_absent(&address, &body).await,
                Ok(PutOutcome::Stored)
            );
        }
        assert_eq!(store.delete(&a).await, Ok(()));
        let spent = entry_of(&store, &a)?;
        // A retry of the blob that was read: spent (410). Another blob: taken (409).
        assert_eq!(
            store.put_if_absent(&a, &secret(1)).await,
            Ok(PutOutcome::Spent)
        );
        assert_eq!(
            store.put_if_absent(&a, &secret(2)).await,
            Ok(PutOutcome::AlreadyExists)
        );
        // Neither wrote anything: the entry is the same spent one, no body is in a segment
        // (the deleted one was wiped, the refused ones never written), no byte is charged.
        assert_eq!(entry_of(&store, &a)?, spent);
        assert!(!segments_hold(&seg_dir, &secret(1))?);
        assert!(!segments_hold(&seg_dir, &secret(2))?);
        assert_eq!(assert_index_consistent(&store)?, secret(3).len() as u64);
        assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
        assert_eq!(store.get(&b).await, Ok(Some(secret(3))));
        // kill -9 now: the delete is in the write-ahead log only.
        copy_as_crashed(&dir, &crashed)?;
        close(store, writer).await;

        for folder in [&dir, &crashed] {
            let (store, writer) =
                DiskStore::open(folder, config(Duration::from_secs(60), 1 << 30))?;
            assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
            assert_eq!(
                store.put_if_absent(&a, &secret(2)).await,
                Ok(PutOutcome::AlreadyExists)
            );
            assert_eq!(
                store.put_if_absent(&a, &secret(1)).await,
                Ok(PutOutcome::Spent)
            );
            assert_eq!(assert_index_consistent(&store)?, secret(3).len() as u64);
            assert!(!segments_hold(&folder.join("segments"), &secret(1))?);
            close(store, writer).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }
    #[tokio::test]
    async fn a_put_back_stores_the_deleted_bytes_again_until_their_own_expiry()
    -> Result<(), redb::Error> {
        let dir = temp_dir("put-back");
        let crashed = temp_dir("put-back-crashed");
        let seg_dir = dir.join("segments");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        let (a, free) = (Address([0x91; 32]), Address([0x92; 32]));
        assert_eq!(
            store.put_if_absent(&a, &secret(1)).await,
            Ok(PutOutcome::Stored)
        );
        let original = entry_of(&store, &a)?.ok_or_else(|| io::Error::other("no entry"))?;
        // On a live message a put-back is a first write: taken, whatever the bytes.
        for body in [secret(1), secret(2)] {
            assert_eq!(
                store.put_back(&a, &body).await,
                Ok(PutOutcome::AlreadyExists)
            );
        }
        assert_eq!(store.delete(&a).await, Ok(()));
        let spent = entry_of(&store, &a)?;
        // Other bytes at the spent address: taken, and nothing is written.
        assert_eq!(
            store.put_back(&a, &secret(2)).await,
            Ok(PutOutcome::AlreadyExists)
        );
        assert!(!segments_hold(&seg_dir, &secret(2))?);
        assert_eq!(entry_of(&store, &a)?, spent);
        assert_eq!(assert_index_consistent(&store)?, 0);
        // Time passes, so that a fresh lifetime would end later than the original one.
        tokio::time::sleep(Duration::from_millis(20)).await;
        for round in 0..2 {
            // The very bytes: stored again, live until the deleted message's own expiry,
            // in a new record (the deleted one stays wiped), counted in the quota.
            assert_eq!(store.put_back(&a, &secret(1)).await, Ok(PutOutcome::Stored));
            let back = entry_of(&store, &a)?.ok_or_else(|| io::Error::other("no entry"))?;
            assert!(!back.is_spent(), "round {round}");
            assert_eq!(back.expires, original.expires, "round {round}");
            assert_ne!(back.at, original.at);
            assert_eq!(store.get(&a).await, Ok(Some(secret(1))));
            assert_eq!(store.get_many(&[a]).await, Ok(vec![Some(secret(1))]));
            assert_eq!(
                assert_index_consistent(&store)?,
                secret(1).len() as u64,
                "round {round}"
            );
            assert!(segments_hold(&seg_dir, &secret(1))?);
            // Live again: first write wins, for a put-back too.
            for body in [secret(1), secret(2)] {
                assert_eq!(
                    store.put_if_absent(&a, &body).await,
                    Ok(PutOutcome::AlreadyExists)
                );
                assert_eq!(
                    store.put_back(&a, &body).await,
                    Ok(PutOutcome::AlreadyExists)
                );
            }
            // Deleted again: spent again (a new tombstone with the same digest), and the
            // put-back record is wiped like any deleted message.
            assert_eq!(store.delete(&a).await, Ok(()));
            let again = entry_of(&store, &a)?.ok_or_else(|| io::Error::other("no entry"))?;
            assert!(again.is_spent() && again.expires == original.expires);
            assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
            assert!(!segments_hold(&seg_dir, &secret(1))?, "round {round}");
            assert_eq!(assert_index_consistent(&store)?, 0);
            assert_eq!(
                store.put_if_absent(&a, &secret(1)).await,
                Ok(PutOutcome::Spent)
            );
            assert_eq!(
                store.put_back(&a, &secret(2)).await,
                Ok(PutOutcome::AlreadyExists)
            );
        }
        // Put back a last time, then kill -9: the put-back is in the write-ahead log only.
        assert_eq!(store.put_back(&a, &secret(1)).await, Ok(PutOutcome::Stored));
        // A free address takes a put-back as a first write, with a fresh lifetime.
        let before = now_ms();
        assert_eq!(
            store.put_back(&free, &secret(3)).await,
            Ok(PutOutcome::Stored)
        );
        let fresh = entry_of(&store, &free)?.ok_or_else(|| io::Error::other("no entry"))?;
        assert!(fresh.expires >= before + 60_000);
        copy_as_crashed(&dir, &crashed)?;
        close(store, writer).await;

        for folder in [&dir, &crashed] {
            let (store, writer) =
                DiskStore::open(folder, config(Duration::from_secs(60), 1 << 30))?;
            assert_eq!(store.get(&a).await, Ok(Some(secret(1))));
            assert_eq!(store.get(&free).await, Ok(Some(secret(3))));
            let back = entry_of(&store, &a)?.ok_or_else(|| io::Error::other("no entry"))?;
            assert_eq!((back.is_spent(), back.expires), (false, original.expires));
            assert_eq!(
                store.put_back(&a, &secret(1)).await,
                Ok(PutOutcome::AlreadyExists)
            );
            assert_eq!(
                assert_index_consistent(&store)?,
                (secret(1).len() + secret(3).len()) as u64
            );
            // And the cycle goes on after a restart: delete, put back.
            assert_eq!(store.delete(&a).await, Ok(()));
            assert_eq!(
                store.put_back(&a, &secret(2)).await,
                Ok(PutOutcome::AlreadyExists)
            );
            assert_eq!(store.put_back(&a, &secret(1)).await, Ok(PutOutcome::Stored));
            assert_eq!(store.get(&a).await, Ok(Some(secret(1))));
            close(store, writer).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }
    #[tokio::test]
    async fn a_put_back_is_counted_in_the_quota_and_refused_beyond_it() -> Result<(), redb::Error> {
        let dir = temp_dir("put-back-quota");
        let seg_dir = dir.join("segments");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1_000))?;
        let (a, b, c) = (
            Address([0xa1; 32]),
            Address([0xa2; 32]),
            Address([0xa3; 32]),
        );
        assert_eq!(
            store.put_if_absent(&a, &secret(1)).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(store.delete(&a).await, Ok(()));
        assert_eq!(
            store.put_if_absent(&b, &[5; 500]).await,
            Ok(PutOutcome::Stored)
        );
        // 500 + 700 > 1000: refused, nothing written, still spent.
        assert_eq!(
            store.put_back(&a, &secret(1)).await,
            Err(StoreError::QuotaReached)
        );
        assert!(!segments_hold(&seg_dir, &secret(1))?);
        assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
        assert_eq!(assert_index_consistent(&store)?, 500);
        assert_eq!(store.delete(&b).await, Ok(()));
        assert_eq!(store.put_back(&a, &secret(1)).await, Ok(PutOutcome::Stored));
        assert_eq!(assert_index_consistent(&store)?, 700);
        // The put-back's bytes hold their share of the quota.
        assert_eq!(
            store.put_if_absent(&c, &[6; 400]).await,
            Err(StoreError::QuotaReached)
        );
        assert_eq!(
            store.put_if_absent(&c, &[6; 300]).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(assert_index_consistent(&store)?, 1_000);
        close(store, writer).await;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1_000))?;
        assert_eq!(assert_index_consistent(&store)?, 1_000);
        assert_eq!(store.get(&a).await, Ok(Some(secret(1))));
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
    #[tokio::test]
    async fn a_put_back_expires_with_the_deleted_message_and_is_purged() -> Result<(), redb::Error>
    {
        let dir = temp_dir("put-back-expiry");
        let crashed = temp_dir("put-back-expiry-crashed");
        let ttl = Duration::from_millis(1_000);
        let (store, writer) = DiskStore::open(&dir, config(ttl, 1 << 30))?;
        let a = Address([0xb1; 32]);
        assert_eq!(
            store.put_if_absent(&a, &secret(1)).await,
            Ok(PutOutcome::Stored)
        );
        let original = entry_of(&store, &a)?.ok_or_else(|| io::Error::other("no entry"))?;
        assert_eq!(store.delete(&a).await, Ok(()));
        close(store, writer).await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        // After a restart the put-back is the only record of the new active segment: the
        // segments table must list it, with the deleted message's expiry, for purge.
        let (store, writer) = DiskStore::open(&dir, config(ttl, 1 << 30))?;
        assert_eq!(store.put_back(&a, &secret(1)).await, Ok(PutOutcome::Stored));
        let back = entry_of(&store, &a)?.ok_or_else(|| io::Error::other("no entry"))?;
        assert_eq!(back.expires, original.expires);
        assert!(back.at.segment > original.at.segment);
        copy_as_crashed(&dir, &crashed)?;
        let left = Duration::from_millis(original.expires.saturating_sub(now_ms()));
        tokio::time::sleep(left + Duration::from_millis(100)).await;

        // Past the deleted message's own expiry (a fresh lifetime would run 300 ms more):
        // gone, and purge removes its entry with its segment.
        assert_eq!(store.get(&a).await, Ok(None));
        assert_eq!(store.get_many(&[a]).await, Ok(vec![None]));
        assert_eq!(store.purge_expired().await, Ok(1));
        assert_eq!(entry_of(&store, &a)?, None);
        assert_eq!(assert_index_consistent(&store)?, 0);
        // Free: a put-back is a first write now, with a fresh lifetime.
        assert_eq!(store.put_back(&a, &secret(2)).await, Ok(PutOutcome::Stored));
        let fresh = entry_of(&store, &a)?.ok_or_else(|| io::Error::other("no entry"))?;
        assert!(fresh.expires > original.expires + 500);
        close(store, writer).await;

        // A crash while it was back, recovered after its expiry: free too.
        let (store, writer) = DiskStore::open(&crashed, config(ttl, 1 << 30))?;
        assert_eq!(store.get(&a).await, Ok(None));
        assert_eq!(
            store.put_if_absent(&a, &secret(3)).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(assert_index_consistent(&store)?, secret(3).len() as u64);
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
        Ok(())
    }
    #[tokio::test]
    async fn a_spent_address_is_free_again_once_its_message_would_have_expired()
    -> Result<(), redb::Error> {
        let dir = temp_dir("spent-expiry");
        let crashed = temp_dir("spent-expiry-crashed");
        let seg_dir = dir.join("segments");
        let ttl = Duration::from_millis(1_000);
        let (store, writer) = DiskStore::open(&dir, config(ttl, 2_000))?;
        let (a, b, c) = (Address([1; 32]), Address([2; 32]), Address([3; 32]));
        for address in [a, c] {
            assert_eq!(
                store.put_if_absent(&address, &[9; 100]).await,
                Ok(PutOutcome::Stored)
            );
        }
        let first = segment::list(&seg_dir)?;
        assert_eq!(store.delete(&a).await, Ok(()));
        assert_eq!(
            store.put_if_absent(&a, &[9; 100]).await,
            Ok(PutOutcome::Spent)
        );
        assert_eq!(
            store.get_many(&[a, b, c]).await,
            Ok(vec![Some(Vec::new()), None, Some(vec![9; 100])])
        );
        copy_as_crashed(&dir, &crashed)?;
        tokio::time::sleep(ttl + Duration::from_millis(100)).await;

        // Past the deleted message's expiry: free, as after any expiry.
        assert_eq!(store.get_many(&[a]).await, Ok(vec![None]));
        // A delete of an expired message spends nothing.
        assert_eq!(store.delete(&c).await, Ok(()));
        assert_eq!(entry_of(&store, &c)?, None);
        // Purge removes the dead spent entry with the tombstone's segment (the only entry
        // left there: the delete of `c` removed its entry already).
        assert_eq!(store.purge_expired().await, Ok(1));
        assert_eq!(entry_of(&store, &a)?, None);
        assert_eq!(assert_index_consistent(&store)?, 0);
        for address in [a, b, c] {
            assert_eq!(
                store.put_if_absent(&address, &[2; 10]).await,
                Ok(PutOutcome::Stored)
            );
        }
        assert_eq!(store.get(&a).await, Ok(Some(vec![2; 10])));
        assert_eq!(assert_index_consistent(&store)?, 30);
        close(store, writer).await;
        // The purged segment went at the durable commit.
        assert!(!segment::list(&seg_dir)?.contains(first.first().unwrap_or(&0)));

        // A crash while it was spent, recovered after the expiry: free too.
        let (store, writer) = DiskStore::open(&crashed, config(ttl, 2_000))?;
        assert_eq!(store.get_many(&[a]).await, Ok(vec![None]));
        assert_eq!(
            store.put_if_absent(&a, &[3; 10]).await,
            Ok(PutOutcome::Stored)
        );
        assert_eq!(assert_index_consistent(&store)?, 10);
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
            // before anything reaches the file, then refused, as spent for the same body
            // again (its digest read from the staged tombstone) and as taken for another
            // (the second delete changes nothing).
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
                        body: vec![round; if i == 4 { 14 } else { 10 }],
                        put_back: false,
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
                    let expected = match i {
                        0 => PutOutcome::Stored,
                        2 => PutOutcome::Spent,
                        _ => PutOutcome::AlreadyExists,
                    };
                    assert_eq!(answer.await.ok(), Some(Ok(expected)));
                }
            }
            assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
            assert_eq!(store.get_many(&[a]).await, Ok(vec![Some(Vec::new())]));
        }
        assert_eq!(assert_index_consistent(&store)?, 0);
        close(store, writer).await;
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        let a = Address([3; 32]);
        assert_eq!(store.get_many(&[a]).await, Ok(vec![Some(Vec::new())]));
        assert_eq!(
            store.put_if_absent(&a, &[3; 10]).await,
            Ok(PutOutcome::Spent)
        );
        assert_eq!(
            store.put_if_absent(&a, b"x").await,
            Ok(PutOutcome::AlreadyExists)
        );
        assert_eq!(assert_index_consistent(&store)?, 0);
        close(store, writer).await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_backs_queued_with_deletes_serialize_in_order() -> Result<(), redb::Error> {
        let dir = temp_dir("put-back-batch");
        let crashed = temp_dir("put-back-batch-crashed");
        let seg_dir = dir.join("segments");
        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 30))?;
        let a = Address([0xd1; 32]);
        // Queued back to back, so that they mostly share a batch: each put-back reads the
        // digest of a tombstone staged in the same batch, and each delete after it wipes
        // the put-back's record before it reaches the file.
        enum Step {
            /// A PUT of `secret(i)` (a put-back if so), and what it answers.
            Put(bool, u8, PutOutcome),
            Delete,
        }
        let steps = [
            Step::Put(false, 1, PutOutcome::Stored),
            Step::Delete,
            Step::Put(true, 1, PutOutcome::Stored),
            Step::Delete,
            Step::Put(true, 2, PutOutcome::AlreadyExists),
            Step::Put(true, 1, PutOutcome::Stored),
            Step::Delete,
        ];
        let mut answers = Vec::new();
        for step in &steps {
            let (reply, answer) = oneshot::channel();
            let (done, deleted) = oneshot::channel();
            let job = match *step {
                Step::Put(put_back, i, _) => Job::Put {
                    address: a.0,
                    expires: now_ms() + 60_000,
                    body: secret(i),
                    put_back,
                    reply,
                },
                Step::Delete => Job::Delete {
                    address: a.0,
                    reply: done,
                },
            };
            assert_eq!(store.send(job).await, Ok(()));
            answers.push((answer, deleted));
        }
        for ((answer, deleted), step) in answers.into_iter().zip(steps) {
            match step {
                Step::Put(_, _, outcome) => assert_eq!(answer.await.ok(), Some(Ok(outcome))),
                Step::Delete => assert_eq!(deleted.await.ok(), Some(Ok(()))),
            }
        }
        assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
        assert!(!segments_hold(&seg_dir, &secret(1))?);
        assert!(!segments_hold(&seg_dir, &secret(2))?);
        assert_eq!(assert_index_consistent(&store)?, 0);
        copy_as_crashed(&dir, &crashed)?;
        close(store, writer).await;
        for folder in [&dir, &crashed] {
            let (store, writer) =
                DiskStore::open(folder, config(Duration::from_secs(60), 1 << 30))?;
            assert_eq!(store.get(&a).await, Ok(Some(Vec::new())));
            assert_eq!(
                store.put_back(&a, &secret(2)).await,
                Ok(PutOutcome::AlreadyExists)
            );
            assert_eq!(store.put_back(&a, &secret(1)).await, Ok(PutOutcome::Stored));
            assert_eq!(store.get(&a).await, Ok(Some(secret(1))));
            close(store, writer).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&crashed);
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
}

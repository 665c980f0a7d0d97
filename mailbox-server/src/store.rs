//! The embedded store: redb (copy-on-write B-trees, checksummed) behind a write-ahead log.
//!
//! Reads open their own MVCC read transaction and never wait for writers. Every write goes to
//! one writer thread, which drains whatever is queued into a single transaction (group
//! commit), appends the stored messages to the write-ahead log (`wal`) and flushes it, and
//! only then commits the transaction (without its own fsync) and answers: a 201 is durable on
//! disk. When writes pause, every `--checkpoint-secs` under load, or when the log fills, redb
//! commits durably and the log is emptied; after a crash the log is replayed on start. Because one thread owns all writes,
//! "is the address free?" and "store it" happen in one transaction: first write wins,
//! atomically.
//!
//! Tables:
//! - `messages`: address (32 bytes) → expiry (u64 ms since the Unix epoch, big-endian) ‖ body.
//! - `expiry`: expiry (8 bytes, big-endian) ‖ address → (): the purge index, in time order.
//! - `meta`: `"stored_bytes"` → total body bytes stored (for the quota).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailbox::{PutOutcome, Store, StoreError};
use protocol::Address;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use crate::wal::{self, Wal};

const MESSAGES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("messages");
const EXPIRY: TableDefinition<[u8; 40], ()> = TableDefinition::new("expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const STORED_BYTES: &str = "stored_bytes";

/// Most writes folded into one commit.
const MAX_BATCH: usize = 4096;
/// Most expired messages deleted by one purge transaction.
const PURGE_CHUNK: usize = 10_000;
/// Queue of writes waiting for the writer thread.
const QUEUE_DEPTH: usize = 16_384;

/// Store limits.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// Message lifetime.
    pub ttl: Duration,
    /// Most body bytes stored at once.
    pub quota_bytes: u64,
    /// redb page cache size in bytes.
    pub cache_bytes: usize,
    /// Longest time writes stay only in the log under sustained load before redb commits
    /// them durably (a checkpoint, which stalls writes while redb flushes).
    pub checkpoint_every: Duration,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Job {
    Put {
        address: [u8; 32],
        body: Vec<u8>,
        reply: Reply<PutOutcome>,
    },
    Purge {
        reply: Reply<u64>,
    },
    /// Make everything committed so far durable in redb and empty the log.
    Checkpoint,
    Shutdown,
}

/// The mailbox store on disk.
pub struct DiskStore {
    db: Arc<Database>,
    jobs: mpsc::Sender<Job>,
    ttl_ms: u64,
}

/// Handle on the writer thread, to stop it after the last request.
pub struct WriterHandle {
    jobs: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
    trickle: Trickle,
}

impl WriterHandle {
    /// Lets the writer finish what is queued, then waits for it to exit.
    pub fn shutdown(self) {
        if self.jobs.blocking_send(Job::Shutdown).is_ok() {
            let _ = self.thread.join();
        }
        self.trickle.stop.store(true, Ordering::Relaxed);
        let _ = self.trickle.thread.join();
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

fn expiry_of(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

fn index_key(expires: u64, address: &[u8; 32]) -> [u8; 40] {
    let mut key = [0u8; 40];
    let (time, addr) = key.split_at_mut(8);
    time.copy_from_slice(&expires.to_be_bytes());
    addr.copy_from_slice(address);
    key
}

/// Error class for logs and 503s: the kind of failure, never data.
fn class(err: &redb::Error) -> &'static str {
    match err {
        redb::Error::Io(_) => "io",
        redb::Error::Corrupted(_) => "corrupted",
        redb::Error::ValueTooLarge(_) => "value too large",
        redb::Error::TransactionPoisoned => "poisoned",
        _ => "storage",
    }
}

impl DiskStore {
    /// Opens (creating or, after a crash, repairing) the store in `dir` and starts its writer.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<(Self, WriterHandle), redb::Error> {
        std::fs::create_dir_all(dir)?;
        let db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(dir.join("mailbox.redb"))?;
        let init = db.begin_write()?;
        {
            init.open_table(MESSAGES)?;
            init.open_table(EXPIRY)?;
            init.open_table(META)?;
        }
        init.commit()?;
        let trickle = spawn_trickle_flush(&dir.join("mailbox.redb"))?;
        let (mut wal, records) = Wal::open(&dir.join("mailbox.wal"))?;
        if !records.is_empty() {
            let replayed = replay(&db, records)?;
            eprintln!("mailbox-server: recovered {replayed} messages from the write-ahead log");
        }
        wal.new_epoch()?;
        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            db: Arc::clone(&db),
            wal,
            quota: config.quota_bytes,
            dirty: false,
            checkpoint_every: config.checkpoint_every,
            last_checkpoint: Instant::now(),
            last_write: Instant::now(),
            failed: false,
        };
        let thread = std::thread::Builder::new()
            .name("mailbox-writer".into())
            .spawn(move || write_loop(writer, queue))?;
        let ttl_ms = u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX);
        Ok((
            Self {
                db,
                jobs: jobs.clone(),
                ttl_ms,
            },
            WriterHandle {
                jobs,
                thread,
                trickle,
            },
        ))
    }

    /// Makes everything stored so far durable in redb (the log is emptied) if writes have
    /// paused for a moment; under load the writer checkpoints on its own.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.send(Job::Checkpoint).await
    }

    /// Deletes every expired message; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let (reply, answer) = oneshot::channel();
            self.send(Job::Purge { reply }).await?;
            let n = answer
                .await
                .map_err(|_| StoreError::Unavailable("writer stopped"))??;
            total += n;
            if n < PURGE_CHUNK as u64 {
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

    fn read(&self, addresses: &[Address]) -> Result<Vec<Option<Vec<u8>>>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MESSAGES)?;
        let now = now_ms();
        let mut out = Vec::with_capacity(addresses.len());
        for address in addresses {
            let found = table.get(&address.0)?.and_then(|guard| {
                let value = guard.value();
                (expiry_of(value) > now).then(|| value.get(8..).unwrap_or_default().to_vec())
            });
            out.push(found);
        }
        Ok(out)
    }
}

impl Store for DiskStore {
    async fn put_if_absent(
        &self,
        address: &Address,
        body: &[u8],
    ) -> Result<PutOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let mut value = Vec::with_capacity(8 + body.len());
        value.extend_from_slice(&now_ms().saturating_add(self.ttl_ms).to_be_bytes());
        value.extend_from_slice(body);
        self.send(Job::Put {
            address: address.0,
            body: value,
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
}

fn log_error(err: &redb::Error) -> StoreError {
    let class = class(err);
    eprintln!("mailbox-server: store error: {class}");
    StoreError::Unavailable(class)
}

/// Quiet time after which pending commits are made durable in redb.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// The writer thread's state.
struct Writer {
    db: Arc<Database>,
    wal: Wal,
    quota: u64,
    /// Non-durable commits since the last checkpoint.
    dirty: bool,
    checkpoint_every: Duration,
    last_checkpoint: Instant,
    last_write: Instant,
    /// Set after a failed commit: redb and the log may disagree, so refuse writes until a
    /// restart replays the log.
    failed: bool,
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
        if batch.iter().any(|j| matches!(j, Job::Put { .. })) {
            writer.last_write = Instant::now();
        }
        writer.commit_batch(&mut batch);
        if stop || (asked && idle) || writer.last_checkpoint.elapsed() >= writer.checkpoint_every {
            writer.checkpoint();
        }
        if stop {
            return;
        }
    }
    writer.checkpoint();
}

/// The outcome of each job in a batch, before the commit decides whether they stand.
enum Pending {
    Put(Reply<PutOutcome>, Result<PutOutcome, StoreError>),
    Purge(Reply<u64>, u64),
}

impl Writer {
    fn checkpoint(&mut self) {
        if !self.dirty || self.failed {
            return;
        }
        let result = self
            .db
            .begin_write()
            .map_err(redb::Error::from)
            .and_then(|txn| txn.commit().map_err(redb::Error::from))
            .and_then(|()| self.wal.new_epoch().map_err(redb::Error::from));
        match result {
            Ok(()) => {
                self.dirty = false;
                self.last_checkpoint = Instant::now();
            }
            Err(err) => self.fail(&err),
        }
    }

    fn fail(&mut self, err: &redb::Error) {
        log_error(err);
        if !self.failed {
            eprintln!("mailbox-server: store failed; writes refused until restart");
        }
        self.failed = true;
    }

    fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        let mut pending = Vec::with_capacity(batch.len());
        let mut stored = Vec::new();
        let result = if self.failed {
            Err(redb::Error::TransactionPoisoned)
        } else {
            self.apply(batch.drain(..), &mut pending, &mut stored)
        };
        batch.clear();
        let err = match result {
            Ok(()) => None,
            Err(err) => {
                if !self.failed {
                    self.fail(&err);
                }
                Some(StoreError::Unavailable(class(&err)))
            }
        };
        for p in pending {
            match (p, &err) {
                (Pending::Put(reply, outcome), None) => {
                    let _ = reply.send(outcome);
                }
                (Pending::Purge(reply, n), None) => {
                    let _ = reply.send(Ok(n));
                }
                (Pending::Put(reply, _), Some(e)) => {
                    let _ = reply.send(Err(e.clone()));
                }
                (Pending::Purge(reply, _), Some(e)) => {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Applies the jobs in one redb transaction, logs the stored messages durably, commits.
    fn apply(
        &mut self,
        jobs: impl Iterator<Item = Job>,
        pending: &mut Vec<Pending>,
        logged: &mut Vec<([u8; 32], Vec<u8>)>,
    ) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        let now = now_ms();
        {
            let mut tables = Tables::open(&txn)?;
            for job in jobs {
                match job {
                    Job::Put {
                        address,
                        body,
                        reply,
                    } => {
                        let outcome = tables.put(&address, &body, now, Some(self.quota))?;
                        if outcome == Ok(PutOutcome::Stored) {
                            logged.push((address, body));
                        }
                        pending.push(Pending::Put(reply, outcome));
                    }
                    Job::Purge { reply } => {
                        let n = tables.purge(now)?;
                        pending.push(Pending::Purge(reply, n));
                    }
                    Job::Checkpoint | Job::Shutdown => {}
                }
            }
            tables.finish()?;
        }
        let bytes = Wal::encoded_len(logged.iter().map(|(_, v)| v.len().saturating_sub(8)));
        if logged.is_empty() {
            txn.commit()?;
        } else if self.wal.fits(bytes) {
            // Durable in the log first; only then visible to readers and acknowledged.
            self.wal
                .append(logged.iter().map(|(a, v)| (a, v.as_slice())))?;
            txn.commit()?;
        } else {
            // The log is full: commit this batch durably in redb and start a new epoch.
            txn.set_durability(Durability::Immediate)?;
            txn.commit()?;
            self.wal.new_epoch()?;
            self.dirty = false;
            self.last_checkpoint = Instant::now();
            return Ok(());
        }
        self.dirty = true;
        Ok(())
    }
}

/// The three tables of one write transaction.
struct Tables<'t> {
    messages: redb::Table<'t, [u8; 32], &'static [u8]>,
    expiry: redb::Table<'t, [u8; 40], ()>,
    meta: redb::Table<'t, &'static str, u64>,
    stored: u64,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Self, redb::Error> {
        let messages = txn.open_table(MESSAGES)?;
        let expiry = txn.open_table(EXPIRY)?;
        let meta = txn.open_table(META)?;
        let stored = meta.get(STORED_BYTES)?.map_or(0, |g| g.value());
        Ok(Self {
            messages,
            expiry,
            meta,
            stored,
        })
    }

    /// First-write-wins insert of `value` (expiry ‖ body); `quota` None skips the quota.
    fn put(
        &mut self,
        address: &[u8; 32],
        value: &[u8],
        now: u64,
        quota: Option<u64>,
    ) -> Result<Result<PutOutcome, StoreError>, redb::Error> {
        let previous = self
            .messages
            .get(address)?
            .map(|g| (expiry_of(g.value()), g.value().len().saturating_sub(8)));
        if let Some((expires, _)) = previous
            && expires > now
        {
            return Ok(Ok(PutOutcome::AlreadyExists));
        }
        let freed = previous.map_or(0, |(_, len)| len as u64);
        let len = value.len().saturating_sub(8) as u64;
        let after = self.stored.saturating_sub(freed).saturating_add(len);
        if quota.is_some_and(|q| after > q) {
            return Ok(Err(StoreError::QuotaReached));
        }
        if let Some((old_expiry, _)) = previous {
            self.expiry.remove(&index_key(old_expiry, address))?;
        }
        self.messages.insert(address, value)?;
        self.expiry
            .insert(&index_key(expiry_of(value), address), ())?;
        self.stored = after;
        Ok(Ok(PutOutcome::Stored))
    }

    /// Deletes up to [`PURGE_CHUNK`] expired messages; returns how many.
    fn purge(&mut self, now: u64) -> Result<u64, redb::Error> {
        let due: Vec<[u8; 40]> = self
            .expiry
            .range(..=index_key(now, &[0xff; 32]))?
            .take(PURGE_CHUNK)
            .map(|entry| entry.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        for key in &due {
            self.expiry.remove(key)?;
            let mut address = [0u8; 32];
            address.copy_from_slice(key.get(8..).unwrap_or(&[0u8; 32]));
            let live = self
                .messages
                .get(&address)?
                .map(|g| (expiry_of(g.value()), g.value().len().saturating_sub(8)));
            if let Some((expires, len)) = live
                && expires <= now
            {
                self.messages.remove(&address)?;
                self.stored = self.stored.saturating_sub(len as u64);
            }
        }
        Ok(due.len() as u64)
    }

    fn finish(mut self) -> Result<(), redb::Error> {
        self.meta.insert(STORED_BYTES, self.stored)?;
        Ok(())
    }
}

/// Replays the log's records into redb (durably), skipping any already there or expired.
fn replay(db: &Database, records: Vec<wal::Record>) -> Result<usize, redb::Error> {
    let txn = db.begin_write()?;
    let now = now_ms();
    let mut replayed = 0;
    {
        let mut tables = Tables::open(&txn)?;
        for record in records {
            if record.expires_ms <= now {
                continue;
            }
            let mut value = Vec::with_capacity(8 + record.body.len());
            value.extend_from_slice(&record.expires_ms.to_be_bytes());
            value.extend_from_slice(&record.body);
            if tables.put(&record.address, &value, now, None)? == Ok(PutOutcome::Stored) {
                replayed += 1;
            }
        }
        tables.finish()?;
    }
    txn.commit()?;
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
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
            ttl,
            quota_bytes: quota,
            cache_bytes: 1 << 20,
            checkpoint_every: Duration::from_secs(10),
        }
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
        drop(store);
        tokio::task::spawn_blocking(move || writer.shutdown())
            .await
            .ok();

        let (store, writer) = DiskStore::open(&dir, config(Duration::from_secs(60), 1 << 20))?;
        assert_eq!(store.get(&address).await.ok().flatten(), first);
        assert_eq!(
            store.get_many(&[Address([6; 32]), address]).await.ok(),
            Some(vec![None, first])
        );
        drop(store);
        tokio::task::spawn_blocking(move || writer.shutdown())
            .await
            .ok();
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[tokio::test]
    async fn quota_counts_body_bytes() -> Result<(), redb::Error> {
        let dir = temp_dir("quota");
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
        drop(store);
        tokio::task::spawn_blocking(move || writer.shutdown())
            .await
            .ok();
        let _ = std::fs::remove_dir_all(&dir);
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
        drop(store);
        tokio::task::spawn_blocking(move || writer.shutdown())
            .await
            .ok();
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}

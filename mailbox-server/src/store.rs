//! The embedded store: redb (copy-on-write B-trees, checksummed, fsync on commit).
//!
//! Reads open their own MVCC read transaction and never wait for writers. Every write goes to
//! one writer thread, which drains whatever is queued into a single transaction and commits it
//! with `Durability::Immediate` (group commit): one fsync answers many PUTs, and a 201 is only
//! sent after that commit returned. Because one thread owns all writes, "is the address free?"
//! and "store it" happen in one transaction: first write wins, atomically.
//!
//! Tables:
//! - `messages`: address (32 bytes) → expiry (u64 ms since the Unix epoch, big-endian) ‖ body.
//! - `expiry`: expiry (8 bytes, big-endian) ‖ address → (): the purge index, in time order.
//! - `meta`: `"stored_bytes"` → total body bytes stored (for the quota).

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailbox::{PutOutcome, Store, StoreError};
use protocol::Address;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

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
    Shutdown,
}

/// The mailbox store on disk.
pub struct DiskStore {
    db: Arc<Database>,
    jobs: mpsc::Sender<Job>,
    ttl_ms: u64,
}

/// Handle on the writer thread, to stop it after the last request.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Lets the writer finish what is queued, then waits for it to exit.
    pub fn shutdown(self) {
        if self.jobs.blocking_send(Job::Shutdown).is_ok() {
            let _ = self.thread.join();
        }
    }
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
    pub fn open(dir: &Path, config: StoreConfig) -> Result<(Self, Writer), redb::Error> {
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
        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let writer_db = Arc::clone(&db);
        let quota = config.quota_bytes;
        let thread = std::thread::Builder::new()
            .name("mailbox-writer".into())
            .spawn(move || write_loop(&writer_db, queue, quota))?;
        let ttl_ms = u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX);
        Ok((
            Self {
                db,
                jobs: jobs.clone(),
                ttl_ms,
            },
            Writer { jobs, thread },
        ))
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

/// The writer thread: take one job, drain the queue behind it, commit them together.
fn write_loop(db: &Database, mut queue: mpsc::Receiver<Job>, quota: u64) {
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
        commit_batch(db, &mut batch, quota);
        if stop {
            return;
        }
    }
}

/// The outcome of each job in a batch, before the commit decides whether they stand.
enum Pending {
    Put(Reply<PutOutcome>, Result<PutOutcome, StoreError>),
    Purge(Reply<u64>, u64),
}

fn commit_batch(db: &Database, batch: &mut Vec<Job>, quota: u64) {
    let mut pending = Vec::with_capacity(batch.len());
    let result = apply(db, batch.drain(..), quota, &mut pending);
    match result {
        Ok(()) => {
            for p in pending {
                match p {
                    Pending::Put(reply, outcome) => {
                        let _ = reply.send(outcome);
                    }
                    Pending::Purge(reply, n) => {
                        let _ = reply.send(Ok(n));
                    }
                }
            }
        }
        Err(err) => {
            let err = log_error(&err);
            for p in pending {
                match p {
                    Pending::Put(reply, _) => {
                        let _ = reply.send(Err(err.clone()));
                    }
                    Pending::Purge(reply, _) => {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        }
    }
}

fn apply(
    db: &Database,
    jobs: impl Iterator<Item = Job>,
    quota: u64,
    pending: &mut Vec<Pending>,
) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    let now = now_ms();
    {
        let mut messages = txn.open_table(MESSAGES)?;
        let mut expiry = txn.open_table(EXPIRY)?;
        let mut meta = txn.open_table(META)?;
        let mut stored = meta.get(STORED_BYTES)?.map_or(0, |g| g.value());
        for job in jobs {
            match job {
                Job::Put {
                    address,
                    body,
                    reply,
                } => {
                    let previous = messages
                        .get(&address)?
                        .map(|g| (expiry_of(g.value()), g.value().len().saturating_sub(8)));
                    if let Some((expires, _)) = previous
                        && expires > now
                    {
                        pending.push(Pending::Put(reply, Ok(PutOutcome::AlreadyExists)));
                        continue;
                    }
                    let freed = previous.map_or(0, |(_, len)| len as u64);
                    let len = body.len().saturating_sub(8) as u64;
                    if stored.saturating_sub(freed).saturating_add(len) > quota {
                        pending.push(Pending::Put(reply, Err(StoreError::QuotaReached)));
                        continue;
                    }
                    if let Some((old_expiry, _)) = previous {
                        expiry.remove(&index_key(old_expiry, &address))?;
                    }
                    messages.insert(&address, body.as_slice())?;
                    expiry.insert(&index_key(expiry_of(&body), &address), ())?;
                    stored = stored.saturating_sub(freed).saturating_add(len);
                    pending.push(Pending::Put(reply, Ok(PutOutcome::Stored)));
                }
                Job::Purge { reply } => {
                    let due: Vec<[u8; 40]> = expiry
                        .range(..=index_key(now, &[0xff; 32]))?
                        .take(PURGE_CHUNK)
                        .map(|entry| entry.map(|(k, _)| k.value()))
                        .collect::<Result<_, _>>()?;
                    for key in &due {
                        expiry.remove(key)?;
                        let mut address = [0u8; 32];
                        address.copy_from_slice(key.get(8..).unwrap_or(&[0u8; 32]));
                        let live = messages
                            .get(&address)?
                            .map(|g| (expiry_of(g.value()), g.value().len().saturating_sub(8)));
                        if let Some((expires, len)) = live
                            && expires <= now
                        {
                            messages.remove(&address)?;
                            stored = stored.saturating_sub(len as u64);
                        }
                    }
                    pending.push(Pending::Purge(reply, due.len() as u64));
                }
                Job::Shutdown => {}
            }
        }
        meta.insert(STORED_BYTES, stored)?;
    }
    txn.commit()?;
    Ok(())
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

//! The effects the client needs, as small traits: a record store with atomic transactions,
//! the mailbox API, exclusive locks, a clock and a random source.
//!
//! The browser adapter (`wasm-client`: IndexedDB, `fetch`, Web Locks, `Date.now`,
//! `crypto.getRandomValues`) and the deterministic simulator (`simulator/`: everything in
//! memory, driven by one seed) implement them; both are thin. Every method is `async` where
//! the browser's is, and no method is ever called with a lock held across a network call
//! (see [`crate::Client`]).

use core::future::Future;

use protocol::{Address, WriteKey};
use thiserror::Error;

/// How long any one mailbox request may take, in milliseconds, before the adapter aborts it
/// and answers [`NetError::Timeout`]. A request that never answers must not hold anything up.
pub const REQUEST_TIMEOUT_MS: u32 = 15_000;

/// One write of an atomic [`RecordStore::commit`].
#[derive(Clone, PartialEq, Eq)]
pub enum Write {
    /// Store the bytes under the name, replacing what was there.
    Put(String, Vec<u8>),
    /// Store the bytes under the name only if nothing is there; otherwise the whole
    /// transaction fails with [`StorageError::Exists`] and nothing of it lands.
    Insert(String, Vec<u8>),
    /// Remove the name.
    Delete(String),
}

impl core::fmt::Debug for Write {
    /// Names only: record bytes are sealed, but there is no reason to print them.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Write::Put(name, bytes) => write!(f, "Put({name}, {} B)", bytes.len()),
            Write::Insert(name, bytes) => write!(f, "Insert({name}, {} B)", bytes.len()),
            Write::Delete(name) => write!(f, "Delete({name})"),
        }
    }
}

/// How durable a commit must be before it resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage: survives a power loss. Required for every commit that precedes a
    /// network effect (an outgoing blob is PUT, an invite is shown), so that a power loss can
    /// never roll back a session whose keys the mailbox has already seen used
    /// (IndexedDB `durability: "strict"`).
    Strict,
    /// Visible to every later read and atomic, but a power loss may undo it (IndexedDB's
    /// default `"relaxed"`). For local bookkeeping only: names, unread counts, statuses.
    Relaxed,
}

/// Why a storage operation failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// No storage in this context (a private window that disables it, say).
    #[error("storage is not available in this browser context")]
    Unavailable,
    /// The storage is full (the browser's quota for this site is used up).
    #[error("storage is full")]
    QuotaExceeded,
    /// An [`Write::Insert`] found its name taken: nothing of the transaction landed.
    #[error("a record already exists")]
    Exists,
    /// The store failed or aborted the operation; the text is the browser's reason.
    #[error("storage failed: {0}")]
    Failed(String),
    /// A stored value is not what this client writes (another program wrote it).
    #[error("a stored record has an unexpected type")]
    Corrupt,
}

/// A durable store of byte records by string name, with atomic multi-record transactions.
///
/// Names sort as strings; a commit is all-or-nothing, also across a crash.
pub trait RecordStore {
    /// The bytes stored under `name`, if any.
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>>;

    /// Every record whose name starts with `prefix`, in name order.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StorageError>>;

    /// The last `limit` records (in name order) whose names start with `prefix` and sort
    /// before `before` (every name of the prefix when `None`), returned in name order: one
    /// page of a long history, read from its newest end.
    ///
    /// The default reads the whole prefix; a store with cursors (IndexedDB) reads only the
    /// page.
    fn list_last(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StorageError>> {
        async move {
            let mut all = self.list(prefix).await?;
            if let Some(before) = before {
                all.retain(|(name, _)| name.as_str() < before);
            }
            let skip = all.len().saturating_sub(limit);
            Ok(all.split_off(skip))
        }
    }

    /// Applies every write in one transaction: after a crash, either all of them are visible
    /// or none is. Resolves once the transaction is committed with the given durability.
    fn commit(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> impl Future<Output = Result<(), StorageError>>;
}

/// Why a mailbox request failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetError {
    /// The mailbox could not be reached (offline, DNS, refused, CORS): retry later.
    #[error("mailbox unreachable: {0}")]
    Unreachable(String),
    /// No answer within [`REQUEST_TIMEOUT_MS`]: the request was aborted. It may or may not
    /// have reached the mailbox.
    #[error("the mailbox did not answer in time")]
    Timeout,
    /// The mailbox answered with an unexpected status.
    #[error("mailbox answered {status}: {reason}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The mailbox's short reason, if any (at most 200 characters).
        reason: String,
    },
    /// The mailbox's answer is not validly framed or is too long.
    #[error("malformed mailbox response")]
    Malformed,
}

impl NetError {
    /// Whether retrying the same request later may succeed (network trouble or a server-side
    /// condition), as opposed to a request the mailbox will always refuse.
    pub fn is_transient(&self) -> bool {
        match self {
            NetError::Unreachable(_) | NetError::Timeout | NetError::Malformed => true,
            NetError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
        }
    }
}

/// What the mailbox did with a deposit (`PUT /v1/m/{address}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deposit {
    /// 201: stored now.
    Stored,
    /// 409: a message already sits there (ours from an earlier attempt, or someone else's).
    AlreadyStored,
    /// 410: a message was stored there and deleted since (read by its recipient); the
    /// address stays spent until that message would have expired (Mailbox API revision 1.1).
    Spent,
}

/// The Mailbox API v1 (`docs/MAILBOX-API.md`) at a base URL given per call.
///
/// Every call must resolve within [`REQUEST_TIMEOUT_MS`] (the adapter aborts it and answers
/// [`NetError::Timeout`]) and must send nothing that identifies the user (no cookies, no
/// referrer).
pub trait Transport {
    /// `PUT /v1/m/{address}` of `blob`, authorised by `write_key`.
    fn put(
        &self,
        mailbox: &str,
        write_key: &WriteKey,
        blob: &[u8],
    ) -> impl Future<Output = Result<Deposit, NetError>>;

    /// `PUT /v1/m/{address}` of `blob` with `Mailbox-Put-Back: ?1` (Mailbox API revision
    /// 1.3): where the reader's `DELETE` removed these very bytes, the mailbox stores them
    /// again ([`Deposit::Stored`]) until their own expiry; everything else is answered as by
    /// [`Transport::put`]. A mailbox before revision 1.3 ignores the header and answers as
    /// `put` does ([`Deposit::Spent`] where the blob was read); in a browser its CORS
    /// preflight does not allow the header, so the request fails as unreachable
    /// (`crate::put_back` gives a round up after a few such flushes).
    fn put_back(
        &self,
        mailbox: &str,
        write_key: &WriteKey,
        blob: &[u8],
    ) -> impl Future<Output = Result<Deposit, NetError>>;

    /// `GET /v1/m/{address}`: the blob stored there, if any (`None`: `404`, never written or
    /// expired). A spent address (`410`: its blob was read and deleted, Mailbox API revision
    /// 1.1) is `Some` of an empty body (blobs are never empty).
    fn get(
        &self,
        mailbox: &str,
        address: &Address,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, NetError>>;

    /// `DELETE /v1/m/{address}` of the address `write_key` authorises (Mailbox API revision
    /// 1.1): `Ok` on `204`, whether or not a blob was there. A mailbox without revision 1.1
    /// answers `405` ([`NetError::Status`]).
    fn delete(
        &self,
        mailbox: &str,
        write_key: &WriteKey,
    ) -> impl Future<Output = Result<(), NetError>>;

    /// `POST /v1/fetch`: the blobs held at any of `addresses` (at most 256), in request order.
    fn fetch(
        &self,
        mailbox: &str,
        addresses: &[Address],
    ) -> impl Future<Output = Result<Vec<(Address, Vec<u8>)>, NetError>>;
}

/// Why a lock could not be taken.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("could not take the lock: {0}")]
pub struct LockError(pub String);

/// Exclusive named locks shared by every tab of this profile (Web Locks in the browser).
///
/// The client holds a lock only around reading, advancing and committing a conversation's
/// state: never across a network call.
pub trait Locks {
    /// Proof that the lock is held; dropping it releases the lock (also when the future
    /// holding it is dropped half-way, as in a crash).
    type Guard;

    /// Waits for the exclusive lock `name`.
    fn lock(&self, name: &str) -> impl Future<Output = Result<Self::Guard, LockError>>;
}

/// Everything the client needs from its host.
pub trait Platform {
    /// The record store.
    type Store: RecordStore;
    /// The mailbox transport.
    type Net: Transport;
    /// The lock manager.
    type Locks: Locks;

    /// The record store.
    fn store(&self) -> &Self::Store;
    /// The mailbox transport.
    fn net(&self) -> &Self::Net;
    /// The lock manager.
    fn locks(&self) -> &Self::Locks;
    /// Milliseconds since the Unix epoch (wall clock; may jump).
    fn now_ms(&self) -> u64;
    /// Fills `dest` with cryptographically secure random bytes.
    fn fill_random(&self, dest: &mut [u8]);
    /// `text` in Unicode Normalization Form C (UAX #15). Hosts use their own normaliser: the
    /// browser's `String.prototype.normalize("NFC")` is built in, and shipping the tables in
    /// the wasm would cost about 63 KB gzip on every first load.
    fn nfc(&self, text: &str) -> String;
}

/// A `rand_core::CryptoRng` over [`Platform::fill_random`].
pub struct PlatformRng<'a, P: ?Sized>(pub &'a P);

impl<P: Platform + ?Sized> rand_core::TryRng for PlatformRng<'_, P> {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.0.fill_random(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.0.fill_random(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_random(dest);
        Ok(())
    }
}

impl<P: Platform + ?Sized> rand_core::TryCryptoRng for PlatformRng<'_, P> {}

//! The storage trait both hosts implement.

use core::future::Future;

use protocol::Address;

/// What happened to a first write at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The blob was stored, durably as far as the host's store promises.
    Stored,
    /// A message already sits at this address; it was left unchanged.
    AlreadyExists,
    /// The address was written and its message deleted since (`DELETE`), and `body` is that
    /// very message: it stays *spent* until the message would have expired, and nothing is
    /// stored (`410`). So a sender that finds its blob gone learns that it was read, instead
    /// of storing it again. (Other bytes at a spent address are [`PutOutcome::AlreadyExists`]:
    /// someone else's blob stood there.)
    Spent,
}

/// Why a store could not serve an operation. Storage faults, never the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Accepting the blob would take the store past its configured quota.
    #[error("store quota reached")]
    QuotaReached,
    /// The disk holding the store has less free space than the host keeps in reserve;
    /// writes are refused until space returns (reads go on).
    #[error("disk full")]
    DiskFull,
    /// The backing store failed; the text is an error class, never data.
    #[error("store unavailable ({0})")]
    Unavailable(&'static str),
}

/// A store of opaque blobs keyed by exact 32-byte address, each with a host-defined lifetime.
///
/// Implementations must make [`Store::put_if_absent`] first-write-wins as far as their
/// backend allows, and must treat expired messages as absent.
pub trait Store {
    /// Stores `body` at `address` unless a (live) message is already there
    /// ([`PutOutcome::AlreadyExists`]) or the address is spent. At a spent address: the
    /// deleted message's bytes again (`SHA-256(body)` equals the digest [`Store::delete`]
    /// recorded, compared in constant time) are [`PutOutcome::Spent`]; other bytes are
    /// [`PutOutcome::AlreadyExists`], as if the message were still there (first write wins,
    /// read or not). A spent address whose digest is unknown (recorded before digests were
    /// kept) answers `Spent` for any bytes.
    fn put_if_absent(
        &self,
        address: &Address,
        body: &[u8],
    ) -> impl Future<Output = Result<PutOutcome, StoreError>>;

    /// Puts back at the spent `address` the very message a [`Store::delete`] removed there
    /// (`PUT` with `Mailbox-Put-Back: ?1`, revision 1.3): if `SHA-256(body)` equals the
    /// digest the delete recorded (compared in constant time), `body` is stored again, live
    /// until the deleted message's **own** expiry (putting back never lengthens a message's
    /// life), and is [`PutOutcome::Stored`] (pushed to subscribers like any stored blob).
    /// Everything else answers exactly as [`Store::put_if_absent`]: a live message is
    /// [`PutOutcome::AlreadyExists`], other bytes at a spent address too, a spent address
    /// without a digest [`PutOutcome::Spent`], and a free address (never written, or past the
    /// deleted message's expiry) stores `body` as a first write. So the only bytes that can
    /// come back are those that were there: no key or nonce of the writer's meets other
    /// bytes, and the first write still wins.
    fn put_back(
        &self,
        address: &Address,
        body: &[u8],
    ) -> impl Future<Output = Result<PutOutcome, StoreError>>;

    /// Removes the message at `address`, if any (`DELETE /v1/m/{address}`, after the caller
    /// checked the write key). Afterwards reads treat the address as empty, and until the
    /// deleted message's own expiry the address is *spent*, with the SHA-256 digest of the
    /// deleted message (32 bytes; never the message): [`Store::put_if_absent`] stores nothing
    /// there and tells its bytes from others by that digest. Deleting an address without a
    /// live message changes nothing. Hosts make the removal as durable as a stored write: once this
    /// returns `Ok`, no restart brings the message back (nor frees the address early).
    fn delete(&self, address: &Address) -> impl Future<Output = Result<(), StoreError>>;

    /// The live message at `address`, if any. A spent address (its message deleted, until
    /// that message's expiry) is `Some` of an empty body: the API answers `410 address spent`
    /// for it, so that a sender whose `PUT` met a `409` learns that the blob there was read.
    fn get(&self, address: &Address) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>>;

    /// The live messages at `addresses`, one entry per address in the same order. A spent
    /// address (its message deleted, until that message's expiry) is `Some` of an empty body
    /// (messages are never empty): fetches and snapshots report it as a record of length 0,
    /// so a sender's retransmission check sees the address taken and read.
    fn get_many(
        &self,
        addresses: &[Address],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, StoreError>>;

    /// Whether writes are currently failing, and why (answered by `GET /v1/health` as a
    /// `503` while reads go on). Cheap and synchronous: a store reports the state its last
    /// writes left, it does not probe. The default: never failing.
    fn write_health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

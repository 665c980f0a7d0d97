//! The mailbox under simulation: the real `mailbox::Mailbox` (API v1 semantics, first write
//! wins, status codes, fetch framing) over an in-memory store whose lifetime runs on virtual
//! time, and the ledger of every blob each client ever deposited.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use mailbox::{Body, Config, Mailbox, PutOutcome, Request, Store, StoreError};
use protocol::Address;

use crate::world::{World, ready};

/// A stored blob, its expiry (virtual ms), whether anyone other than its depositor has read
/// it, and who deposited it.
type Stored = (Vec<u8>, u64, Cell<bool>, Option<usize>);

/// One distinct blob that left a client for one address.
struct Deposited {
    bytes: Vec<u8>,
    /// Whether the mailbox has stored these bytes (answered 201) at least once.
    stored: bool,
}

/// Every distinct blob each client sent, by `(device, address)`.
type Ledger = BTreeMap<(usize, [u8; 32]), Vec<Deposited>>;

/// The hedge `r` of a blob: its first [`protocol::HEDGE_LEN`] bytes, from which the
/// effective header and body keys are derived (`docs/PROTOCOL.md`, hedged encryption).
pub fn hedge(blob: &[u8]) -> &[u8] {
    blob.get(..protocol::HEDGE_LEN).unwrap_or(blob)
}

/// Blobs by address, each with its expiry (virtual ms).
pub struct MemStore {
    world: Rc<World>,
    ttl_ms: u64,
    blobs: RefCell<BTreeMap<[u8; 32], Stored>>,
    /// Blobs that expired unread and were replaced since.
    expired_unread: Cell<u64>,
    /// Addresses whose blob was deleted, until the blob would have expired (spent), each with
    /// the deleted blob (the hosts keep its digest; here the bytes stand for it).
    spent: RefCell<BTreeMap<[u8; 32], Spent>>,
    /// Who makes the request being served (`None`: a third party).
    who: Cell<Option<usize>>,
}

impl MemStore {
    fn live(&self, address: &Address) -> Option<Vec<u8>> {
        let blobs = self.blobs.borrow();
        let (blob, expires, _, _) = blobs.get(&address.0)?;
        (*expires > self.world.now()).then(|| blob.clone())
    }

    /// A read: the blob, if live, is marked as read unless its depositor reads it back.
    fn read(&self, address: &Address) -> Option<Vec<u8>> {
        let blobs = self.blobs.borrow();
        let (blob, expires, read, depositor) = blobs.get(&address.0)?;
        (*expires > self.world.now()).then(|| {
            if *depositor != self.who.get() {
                read.set(true);
            }
            blob.clone()
        })
    }

    /// Blobs that expired before anyone read them (so far).
    pub fn expired_unread(&self) -> u64 {
        let now = self.world.now();
        self.expired_unread.get()
            + self
                .blobs
                .borrow()
                .values()
                .filter(|(_, expires, read, _)| *expires <= now && !read.get())
                .count() as u64
    }
}

/// A spent address: until when (ms), and the blob that was deleted there.
type Spent = (u64, Vec<u8>);

impl Store for MemStore {
    async fn put_if_absent(
        &self,
        address: &Address,
        body: &[u8],
    ) -> Result<PutOutcome, StoreError> {
        if self.live(address).is_some() {
            return Ok(PutOutcome::AlreadyExists);
        }
        if let Some((expires, deleted)) = self.spent.borrow().get(&address.0)
            && *expires > self.world.now()
        {
            // The blob that was read, or another one at its address.
            return Ok(if deleted.as_slice() == body {
                PutOutcome::Spent
            } else {
                PutOutcome::AlreadyExists
            });
        }
        let expires = self.world.now() + self.ttl_ms;
        let old = self.blobs.borrow_mut().insert(
            address.0,
            (body.to_vec(), expires, Cell::new(false), self.who.get()),
        );
        if old.is_some_and(|(_, _, read, _)| !read.get()) {
            self.expired_unread.set(self.expired_unread.get() + 1);
        }
        Ok(PutOutcome::Stored)
    }

    async fn put_back(&self, address: &Address, body: &[u8]) -> Result<PutOutcome, StoreError> {
        let now = self.world.now();
        let back = self
            .spent
            .borrow()
            .get(&address.0)
            .filter(|(expires, deleted)| *expires > now && deleted.as_slice() == body)
            .map(|(expires, _)| *expires);
        match back {
            // The very bytes that were deleted: live again until their own expiry.
            Some(expires) if self.live(address).is_none() => {
                self.spent.borrow_mut().remove(&address.0);
                self.blobs.borrow_mut().insert(
                    address.0,
                    (body.to_vec(), expires, Cell::new(false), self.who.get()),
                );
                Ok(PutOutcome::Stored)
            }
            _ => self.put_if_absent(address, body).await,
        }
    }

    async fn delete(&self, address: &Address) -> Result<(), StoreError> {
        let now = self.world.now();
        let removed = self.blobs.borrow_mut().remove(&address.0);
        if let Some((body, expires, _, _)) = removed.filter(|(_, expires, _, _)| *expires > now) {
            let mut spent = self.spent.borrow_mut();
            spent.retain(|_, (e, _)| *e > now);
            spent.insert(address.0, (expires, body));
        }
        Ok(())
    }

    async fn get(&self, address: &Address) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .get_many(core::slice::from_ref(address))
            .await?
            .pop()
            .flatten())
    }

    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let now = self.world.now();
        let spent = self.spent.borrow();
        Ok(addresses
            .iter()
            .map(|a| {
                self.read(a).or_else(|| {
                    spent
                        .get(&a.0)
                        .is_some_and(|(expires, _)| *expires > now)
                        .then(Vec::new)
                })
            })
            .collect())
    }
}

/// An HTTP answer as the client's `fetch` would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The connection failed (the mailbox is down).
    Unreachable,
    /// The mailbox answered.
    Http {
        /// Status code.
        status: u16,
        /// Body.
        body: Vec<u8>,
    },
}

/// A request as it travels: method, path, write-key header, body.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `PUT`, `GET` or `POST`.
    pub method: &'static str,
    /// `/v1/m/{address}` or `/v1/fetch`.
    pub path: String,
    /// The `Mailbox-Write-Key` header, hex.
    pub write_key: Option<String>,
    /// Whether the `PUT` carries `Mailbox-Put-Back: ?1`.
    pub put_back: bool,
    /// The body.
    pub body: Vec<u8>,
}

/// Two different blobs deposited at one address by the same client *with the same hedge*:
/// one effective key and nonce used for two plaintexts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reuse {
    /// The client.
    pub device: usize,
    /// The address.
    pub address: [u8; 32],
    /// Byte positions in which the two blobs agree (chance: about 4 of 1,024).
    pub equal_bytes: usize,
}

/// What crossed the simulated wire in one run (requests as they left a client, answers as
/// they reached it; the squatter's requests are not counted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    /// PUT requests (first attempts, retries and retransmissions).
    pub puts: u64,
    /// PUTs of bytes this client had already sent to that address (a retry after a lost or
    /// late answer, or a retransmission).
    pub repeat_puts: u64,
    /// Distinct blobs deposited (distinct bytes per address).
    pub blobs: u64,
    /// Blobs stored again (201) after the mailbox had already stored the identical bytes once
    /// and they expired: retransmissions that reached the mailbox.
    pub restored_blobs: u64,
    /// Blobs different from an earlier one of the same client at the same address (a
    /// restored or rolled-back client reusing a slot). Harmless with hedging as long as the
    /// hedges differ; counted, not a violation.
    pub second_blobs_at_address: u64,
    /// Fetch requests (`POST /v1/fetch`).
    pub fetches: u64,
    /// Single reads (`GET /v1/m/…`).
    pub gets: u64,
    /// Deletes after read (`DELETE /v1/m/…`).
    pub deletes: u64,
    /// Bytes of request bodies sent.
    pub request_bytes: u64,
    /// Bytes of answer bodies received.
    pub answer_bytes: u64,
}

impl Wire {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Wire) {
        self.puts += other.puts;
        self.repeat_puts += other.repeat_puts;
        self.blobs += other.blobs;
        self.restored_blobs += other.restored_blobs;
        self.second_blobs_at_address += other.second_blobs_at_address;
        self.fetches += other.fetches;
        self.gets += other.gets;
        self.deletes += other.deletes;
        self.request_bytes += other.request_bytes;
        self.answer_bytes += other.answer_bytes;
    }
}

/// The simulated mailbox host.
pub struct MailboxHost {
    mailbox: Mailbox<MemStore>,
    /// Whether the host is down (connections refused).
    pub down: Cell<bool>,
    /// Every distinct blob each client sent, by `(device, address)`.
    ledger: RefCell<Ledger>,
    /// Key reuses seen so far.
    pub reuses: RefCell<Vec<Reuse>>,
    /// What crossed the wire.
    pub wire: Cell<Wire>,
}

impl MailboxHost {
    /// A mailbox whose messages live `ttl_ms` of virtual time.
    pub fn new(world: &Rc<World>, ttl_ms: u64) -> MailboxHost {
        let store = MemStore {
            world: world.clone(),
            ttl_ms,
            blobs: RefCell::new(BTreeMap::new()),
            expired_unread: Cell::new(0),
            spent: RefCell::new(BTreeMap::new()),
            who: Cell::new(None),
        };
        MailboxHost {
            mailbox: Mailbox::new(store, Config::default()),
            down: Cell::new(false),
            ledger: RefCell::new(BTreeMap::new()),
            reuses: RefCell::new(Vec::new()),
            wire: Cell::new(Wire::default()),
        }
    }

    /// Serves one request that reached the host; `device` is who sent it (`None`: a third
    /// party).
    pub fn serve(&self, request: &HttpRequest, device: Option<usize>) -> Answer {
        if self.down.get() {
            return Answer::Unreachable;
        }
        let http = Request {
            method: request.method,
            path: &request.path,
            write_key: request.write_key.as_deref().map(str::as_bytes),
            put_back: request.put_back.then_some(&b"?1"[..]),
            body: Body::Complete(&request.body),
        };
        self.mailbox.store().who.set(device);
        match ready(self.mailbox.handle(&http)) {
            Some(response) => {
                if response.status == 201
                    && let Some(device) = device
                {
                    self.stored(device, request);
                }
                Answer::Http {
                    status: response.status,
                    body: response.body,
                }
            }
            None => Answer::Http {
                status: 500,
                body: b"store did not answer".to_vec(),
            },
        }
    }

    /// Blobs that expired on the mailbox before anyone read them.
    pub fn expired_unread(&self) -> u64 {
        self.mailbox.store().expired_unread()
    }

    /// Whether `address` holds a live blob now.
    pub fn holds(&self, address: &Address) -> bool {
        self.mailbox.store().live(address).is_some()
    }

    fn count(&self, change: impl FnOnce(&mut Wire)) {
        let mut wire = self.wire.get();
        change(&mut wire);
        self.wire.set(wire);
    }

    /// Counts an answer body that reached a client.
    pub fn answered(&self, answer: &Answer) {
        if let Answer::Http { body, .. } = answer {
            let n = body.len() as u64;
            self.count(|w| w.answer_bytes += n);
        }
    }

    /// A PUT of `device` was stored (201): a retransmission if these bytes were stored before.
    fn stored(&self, device: usize, request: &HttpRequest) {
        let Some(address) = put_address(request) else {
            return;
        };
        let mut ledger = self.ledger.borrow_mut();
        let Some(blob) = ledger
            .get_mut(&(device, address.0))
            .and_then(|blobs| blobs.iter_mut().find(|b| b.bytes == request.body))
        else {
            return;
        };
        if blob.stored {
            self.count(|w| w.restored_blobs += 1);
        }
        blob.stored = true;
    }

    /// Records a request as it leaves `device` (whatever then happens to it on the way:
    /// whoever watches the wire has seen it). A PUT of bytes different from an earlier one of
    /// this client at the same address is a key reuse if their hedges are equal (the same
    /// effective key and nonce over different plaintexts); with different hedges it is only
    /// counted.
    pub fn record(&self, device: usize, request: &HttpRequest) {
        let n = request.body.len() as u64;
        match request.method {
            "PUT" => self.count(|w| {
                w.puts += 1;
                w.request_bytes += n;
            }),
            "POST" => self.count(|w| {
                w.fetches += 1;
                w.request_bytes += n;
            }),
            "DELETE" => self.count(|w| w.deletes += 1),
            _ => self.count(|w| {
                w.gets += 1;
                w.request_bytes += n;
            }),
        }
        let Some(address) = put_address(request) else {
            return;
        };
        let mut ledger = self.ledger.borrow_mut();
        let blobs = ledger.entry((device, address.0)).or_default();
        if blobs.iter().any(|b| b.bytes == request.body) {
            self.count(|w| w.repeat_puts += 1);
            return;
        }
        self.count(|w| w.blobs += 1);
        if !blobs.is_empty() {
            self.count(|w| w.second_blobs_at_address += 1);
        }
        for earlier in blobs.iter() {
            if hedge(&earlier.bytes) == hedge(&request.body) {
                let equal_bytes = earlier
                    .bytes
                    .iter()
                    .zip(&request.body)
                    .filter(|(a, b)| a == b)
                    .count();
                self.reuses.borrow_mut().push(Reuse {
                    device,
                    address: address.0,
                    equal_bytes,
                });
            }
        }
        blobs.push(Deposited {
            bytes: request.body.clone(),
            stored: false,
        });
    }
}

/// The address a PUT writes to.
fn put_address(request: &HttpRequest) -> Option<Address> {
    if request.method != "PUT" {
        return None;
    }
    mailbox::parse_address(request.path.strip_prefix("/v1/m/")?).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn put(address: &[u8; 32], body: Vec<u8>) -> HttpRequest {
        HttpRequest {
            method: "PUT",
            path: format!("/v1/m/{}", mailbox::hex::encode_32(address)),
            write_key: Some(mailbox::hex::encode_32(&[7; 32])),
            put_back: false,
            body,
        }
    }

    #[test]
    fn two_blobs_at_one_address_are_key_reuse_only_with_one_hedge() {
        let world = World::new(false);
        let host = MailboxHost::new(&world, 60_000);
        let address = [1u8; 32];
        let first = vec![0xaa; protocol::BLOB_LEN];
        host.record(0, &put(&address, first.clone()));
        // The identical bytes again: a retry, not a second blob.
        host.record(0, &put(&address, first.clone()));
        // Different bytes, different hedge: counted, not a reuse.
        let mut other_hedge = first.clone();
        other_hedge[0] ^= 1;
        other_hedge[500] ^= 1;
        host.record(0, &put(&address, other_hedge));
        assert!(host.reuses.borrow().is_empty());
        // Different bytes under the first blob's hedge: the same key and nonce.
        let mut same_hedge = first;
        same_hedge[protocol::HEDGE_LEN] ^= 1;
        host.record(0, &put(&address, same_hedge));
        let wire = host.wire.get();
        assert_eq!(
            (
                wire.puts,
                wire.repeat_puts,
                wire.blobs,
                wire.second_blobs_at_address
            ),
            (4, 1, 3, 2)
        );
        assert_eq!(host.reuses.borrow().len(), 1);
        assert_eq!(host.reuses.borrow()[0].equal_bytes, protocol::BLOB_LEN - 1);
        // Another client's blob at the same address is not this client's key.
        host.record(1, &put(&address, vec![0xaa; protocol::BLOB_LEN - 1]));
        assert_eq!(host.reuses.borrow().len(), 1);
    }
}

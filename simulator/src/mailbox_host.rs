//! The mailbox under simulation: the real `mailbox::Mailbox` (API v1 semantics, first write
//! wins, status codes, fetch framing) over an in-memory store whose lifetime runs on virtual
//! time, and the ledger of every blob each client ever deposited.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use mailbox::{Body, Config, Mailbox, PutOutcome, Request, Store, StoreError};
use protocol::Address;

use crate::world::{World, ready};

/// A stored blob and its expiry (virtual ms).
type Stored = (Vec<u8>, u64);
/// The first blob a client deposited at an address: `(device, bytes)`.
type FirstDeposit = (usize, Vec<u8>);

/// Blobs by address, each with its expiry (virtual ms).
pub struct MemStore {
    world: Rc<World>,
    ttl_ms: u64,
    blobs: RefCell<BTreeMap<[u8; 32], Stored>>,
}

impl MemStore {
    fn live(&self, address: &Address) -> Option<Vec<u8>> {
        let blobs = self.blobs.borrow();
        let (blob, expires) = blobs.get(&address.0)?;
        (*expires > self.world.now()).then(|| blob.clone())
    }
}

impl Store for MemStore {
    async fn put_if_absent(
        &self,
        address: &Address,
        body: &[u8],
    ) -> Result<PutOutcome, StoreError> {
        if self.live(address).is_some() {
            return Ok(PutOutcome::AlreadyExists);
        }
        let expires = self.world.now() + self.ttl_ms;
        self.blobs
            .borrow_mut()
            .insert(address.0, (body.to_vec(), expires));
        Ok(PutOutcome::Stored)
    }

    async fn get(&self, address: &Address) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.live(address))
    }

    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        Ok(addresses.iter().map(|a| self.live(a)).collect())
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
    /// The body.
    pub body: Vec<u8>,
}

/// Two different blobs deposited at one address by the same client: one key and nonce used
/// for two plaintexts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reuse {
    /// The client.
    pub device: usize,
    /// The address.
    pub address: [u8; 32],
    /// Byte positions in which the two blobs agree (chance: about 4 of 1,024).
    pub equal_bytes: usize,
}

/// The simulated mailbox host.
pub struct MailboxHost {
    mailbox: Mailbox<MemStore>,
    /// Whether the host is down (connections refused).
    pub down: Cell<bool>,
    /// Every blob each client deposited, by address: `(device, first bytes seen)`.
    ledger: RefCell<BTreeMap<[u8; 32], FirstDeposit>>,
    /// Key reuses seen so far.
    pub reuses: RefCell<Vec<Reuse>>,
}

impl MailboxHost {
    /// A mailbox whose messages live `ttl_ms` of virtual time.
    pub fn new(world: &Rc<World>, ttl_ms: u64) -> MailboxHost {
        let store = MemStore {
            world: world.clone(),
            ttl_ms,
            blobs: RefCell::new(BTreeMap::new()),
        };
        MailboxHost {
            mailbox: Mailbox::new(store, Config::default()),
            down: Cell::new(false),
            ledger: RefCell::new(BTreeMap::new()),
            reuses: RefCell::new(Vec::new()),
        }
    }

    /// Serves one request that reached the host; `device` is who sent it (`None`: a third
    /// party).
    pub fn serve(&self, request: &HttpRequest, device: Option<usize>) -> Answer {
        let _ = device;
        if self.down.get() {
            return Answer::Unreachable;
        }
        let http = Request {
            method: request.method,
            path: &request.path,
            write_key: request.write_key.as_deref().map(str::as_bytes),
            body: Body::Complete(&request.body),
        };
        match ready(self.mailbox.handle(&http)) {
            Some(response) => Answer::Http {
                status: response.status,
                body: response.body,
            },
            None => Answer::Http {
                status: 500,
                body: b"store did not answer".to_vec(),
            },
        }
    }

    /// Records a PUT as it leaves `device` (whatever then happens to it on the way: whoever
    /// watches the wire has seen it).
    pub fn record(&self, device: usize, request: &HttpRequest) {
        let Some(hex) = request.path.strip_prefix("/v1/m/") else {
            return;
        };
        let Ok(address) = mailbox::parse_address(hex) else {
            return;
        };
        let mut ledger = self.ledger.borrow_mut();
        match ledger.get(&address.0) {
            None => {
                ledger.insert(address.0, (device, request.body.clone()));
            }
            Some((first, bytes)) if *first == device && *bytes != request.body => {
                let equal_bytes = bytes
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
            Some(_) => {}
        }
    }
}

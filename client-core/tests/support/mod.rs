//! A thin in-memory platform for the client's own tests: every effect is ready at once, the
//! mailbox is whatever the test wires in (none: unreachable), randomness is seeded.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll};

use client_core::platform::{
    Deposit, Durability, LockError, Locks, NetError, Platform, RecordStore, StorageError,
    Transport, Write,
};
use client_core::{Client, KdfParams};
use protocol::testing::SeededRng;
use protocol::{Address, WriteKey};
use rand_core::Rng;

/// Cheapest Argon2id parameters.
pub const FAST: KdfParams = KdfParams {
    m_kib: 8,
    t: 1,
    p: 1,
};

/// Records shared by clients over one store (two tabs of one profile).
pub type Records = Rc<RefCell<BTreeMap<String, Vec<u8>>>>;

/// Records in a map; a commit applies all or nothing.
#[derive(Default)]
pub struct MemoryStore(pub Records);

impl RecordStore for MemoryStore {
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.borrow().get(name).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        Ok(self
            .0
            .borrow()
            .range(prefix.to_owned()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect())
    }

    async fn commit(&self, writes: Vec<Write>, _: Durability) -> Result<(), StorageError> {
        let mut map = self.0.borrow_mut();
        if writes
            .iter()
            .any(|w| matches!(w, Write::Insert(n, _) if map.contains_key(n)))
        {
            return Err(StorageError::Exists);
        }
        for write in writes {
            match write {
                Write::Put(n, b) | Write::Insert(n, b) => {
                    map.insert(n, b);
                }
                Write::Delete(n) => {
                    map.remove(&n);
                }
            }
        }
        Ok(())
    }
}

/// A mailbox that cannot be reached.
pub struct Offline;

impl Transport for Offline {
    async fn put(&self, _: &str, _: &WriteKey, _: &[u8]) -> Result<Deposit, NetError> {
        Err(NetError::Unreachable("offline".into()))
    }
    async fn get(&self, _: &str, _: &Address) -> Result<Option<Vec<u8>>, NetError> {
        Err(NetError::Unreachable("offline".into()))
    }
    async fn fetch(&self, _: &str, _: &[Address]) -> Result<Vec<(Address, Vec<u8>)>, NetError> {
        Err(NetError::Unreachable("offline".into()))
    }
}

/// Locks that are always free (tests run one operation at a time).
#[derive(Default)]
pub struct FreeLocks(RefCell<BTreeSet<String>>);

impl Locks for FreeLocks {
    type Guard = ();
    async fn lock(&self, _: &str) -> Result<(), LockError> {
        Ok(())
    }
}

/// The platform.
pub struct Memory {
    pub store: MemoryStore,
    pub net: Offline,
    pub locks: FreeLocks,
    pub now_ms: Cell<u64>,
    pub rng: RefCell<SeededRng>,
}

impl Platform for Memory {
    type Store = MemoryStore;
    type Net = Offline;
    type Locks = FreeLocks;
    fn store(&self) -> &MemoryStore {
        &self.store
    }
    fn net(&self) -> &Offline {
        &self.net
    }
    fn locks(&self) -> &FreeLocks {
        &self.locks
    }
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }
    fn fill_random(&self, dest: &mut [u8]) {
        self.rng.borrow_mut().fill_bytes(dest);
    }
    fn nfc(&self, text: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        text.nfc().collect()
    }
}

/// A client over fresh (or the given) records.
pub fn client(seed: u64, records: Option<Records>) -> Client<Memory> {
    Client::new(Memory {
        store: MemoryStore(records.unwrap_or_default()),
        net: Offline,
        locks: FreeLocks::default(),
        now_ms: Cell::new(1_795_996_800_000),
        rng: RefCell::new(SeededRng::new(seed)),
    })
}

/// Runs a future whose effects are all ready at once.
pub fn run<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an in-memory effect was not ready"),
    }
}

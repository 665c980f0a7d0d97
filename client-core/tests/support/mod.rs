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

/// What the test mailbox holds and how it misbehaves next.
#[derive(Default)]
pub struct MailboxState {
    /// Blobs by address (first write wins).
    pub blobs: RefCell<BTreeMap<[u8; 32], Vec<u8>>>,
    /// Whether it answers at all.
    pub online: Cell<bool>,
    /// The next PUT finds someone else's bytes already there (a squatter got there first).
    pub squat_next_put: Cell<bool>,
    /// The n-th PUT from now (1: the next) finds someone else's bytes there; 0: none.
    pub squat_put_in: Cell<u32>,
    /// The next PUT is stored but its answer is lost (the client sees a timeout).
    pub lose_next_answer: Cell<bool>,
    /// PUT requests answered (201 or 409).
    pub puts: Cell<u32>,
    /// Bytes of blobs in those PUTs.
    pub put_bytes: Cell<u64>,
    /// 409s over different bytes: two different blobs offered for one address.
    pub foreign_409s: Cell<u32>,
    /// Fetch requests answered.
    pub fetches: Cell<u32>,
    /// DELETE requests answered.
    pub deletes: Cell<u32>,
    /// Addresses deleted, each with the deleted blob (spent: a PUT of those bytes there
    /// answers 410, of other bytes 409; this mailbox has no TTL).
    pub spent: RefCell<BTreeMap<[u8; 32], Vec<u8>>>,
    /// PUTs answered 410 (the address was written, read and deleted).
    pub spent_410s: Cell<u32>,
    /// Put-backs that stored the deleted bytes again (Mailbox API revision 1.3).
    pub put_backs: Cell<u32>,
    /// `PUT`s with `Mailbox-Put-Back: ?1`, whatever they answered.
    pub put_back_calls: Cell<u32>,
    /// `PUT`s with `Mailbox-Put-Back: ?1` fail as a browser's would against a mailbox before
    /// revision 1.3 (its CORS preflight refuses the header): unreachable.
    pub refuse_put_back: Cell<bool>,
    /// Addresses stored (`201`), in order: what a subscription watching them is pushed.
    pub stored: RefCell<Vec<[u8; 32]>>,
}

impl MailboxState {
    /// What a subscription watching every address would have been pushed since the
    /// `from`-th store (one record per `201`, the blob as stored now; gone ones left out).
    pub fn pushed_since(&self, from: usize) -> Vec<(Address, Vec<u8>)> {
        let blobs = self.blobs.borrow();
        self.stored
            .borrow()
            .iter()
            .skip(from)
            .filter_map(|a| blobs.get(a).map(|b| (Address(*a), b.clone())))
            .collect()
    }

    /// Takes delete messages sent on a subscription socket (`0x44 ‖ write keys`,
    /// `client_core::subscription`) as the mailbox does: each key's address is deleted and
    /// spent, as `DELETE` does; nothing is answered.
    pub fn receive_delete_messages(&self, messages: &[zeroize::Zeroizing<Vec<u8>>]) {
        for message in messages {
            assert_eq!(
                message.first(),
                Some(&client_core::subscription::DELETE_TAG)
            );
            assert_eq!(message.len() % 32, 1);
            for key in message[1..].chunks(32) {
                let address = WriteKey(key.try_into().unwrap()).address().0;
                if let Some(blob) = self.blobs.borrow_mut().remove(&address) {
                    self.spent.borrow_mut().insert(address, blob);
                }
            }
        }
    }

    /// Every blob expires (the TTL passed while nobody read them).
    pub fn expire_all(&self) {
        self.blobs.borrow_mut().clear();
        self.spent.borrow_mut().clear();
    }
}

/// A first-write-wins mailbox in memory (or an unreachable one).
#[derive(Default)]
pub struct TestMailbox(pub Rc<MailboxState>);

fn offline() -> NetError {
    NetError::Unreachable("offline".into())
}

impl Transport for TestMailbox {
    async fn put(&self, _: &str, key: &WriteKey, blob: &[u8]) -> Result<Deposit, NetError> {
        let state = &self.0;
        if !state.online.get() {
            return Err(offline());
        }
        let address = key.address().0;
        let mut blobs = state.blobs.borrow_mut();
        let squat_now = match state.squat_put_in.get() {
            0 => false,
            n => {
                state.squat_put_in.set(n - 1);
                n == 1
            }
        };
        if state.squat_next_put.replace(false) || squat_now {
            blobs
                .entry(address)
                .or_insert_with(|| vec![0xAA; blob.len()]);
        }
        state.puts.set(state.puts.get() + 1);
        state
            .put_bytes
            .set(state.put_bytes.get() + blob.len() as u64);
        if let Some(there) = blobs.get(&address) {
            if there.as_slice() != blob {
                state.foreign_409s.set(state.foreign_409s.get() + 1);
            }
            return Ok(Deposit::AlreadyStored);
        }
        if let Some(read) = state.spent.borrow().get(&address) {
            if read.as_slice() != blob {
                // Someone else's blob stood here and was read (Mailbox API: 409).
                state.foreign_409s.set(state.foreign_409s.get() + 1);
                return Ok(Deposit::AlreadyStored);
            }
            state.spent_410s.set(state.spent_410s.get() + 1);
            return Ok(Deposit::Spent);
        }
        blobs.insert(address, blob.to_vec());
        state.stored.borrow_mut().push(address);
        if state.lose_next_answer.replace(false) {
            return Err(NetError::Timeout);
        }
        Ok(Deposit::Stored)
    }
    async fn put_back(&self, m: &str, key: &WriteKey, blob: &[u8]) -> Result<Deposit, NetError> {
        if !self.0.online.get() {
            return Err(offline());
        }
        self.0.put_back_calls.set(self.0.put_back_calls.get() + 1);
        if self.0.refuse_put_back.get() {
            return Err(offline());
        }
        let address = key.address().0;
        let read = self.0.spent.borrow().get(&address).cloned();
        if read.as_deref() == Some(blob) && !self.0.blobs.borrow().contains_key(&address) {
            // The very bytes that were read and deleted: stored again (revision 1.3).
            self.0.spent.borrow_mut().remove(&address);
            self.0.blobs.borrow_mut().insert(address, blob.to_vec());
            self.0.put_backs.set(self.0.put_backs.get() + 1);
            self.0.puts.set(self.0.puts.get() + 1);
            return Ok(Deposit::Stored);
        }
        self.put(m, key, blob).await
    }
    async fn get(&self, _: &str, address: &Address) -> Result<Option<Vec<u8>>, NetError> {
        if !self.0.online.get() {
            return Err(offline());
        }
        // A spent address answers 410: an empty body here.
        let spent = self.0.spent.borrow().contains_key(&address.0);
        Ok(self
            .0
            .blobs
            .borrow()
            .get(&address.0)
            .cloned()
            .or_else(|| spent.then(Vec::new)))
    }
    async fn delete(&self, _: &str, key: &WriteKey) -> Result<(), NetError> {
        if !self.0.online.get() {
            return Err(offline());
        }
        self.0.deletes.set(self.0.deletes.get() + 1);
        let address = key.address().0;
        if let Some(blob) = self.0.blobs.borrow_mut().remove(&address) {
            self.0.spent.borrow_mut().insert(address, blob);
        }
        Ok(())
    }
    async fn fetch(
        &self,
        _: &str,
        addresses: &[Address],
    ) -> Result<Vec<(Address, Vec<u8>)>, NetError> {
        if !self.0.online.get() {
            return Err(offline());
        }
        self.0.fetches.set(self.0.fetches.get() + 1);
        let blobs = self.0.blobs.borrow();
        let spent = self.0.spent.borrow();
        // A spent address is a record of length 0 (Mailbox API revision 1.1).
        Ok(addresses
            .iter()
            .filter_map(|a| match blobs.get(&a.0) {
                Some(b) => Some((*a, b.clone())),
                None => spent.contains_key(&a.0).then(|| (*a, Vec::new())),
            })
            .collect())
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
    pub net: TestMailbox,
    pub locks: FreeLocks,
    pub now_ms: Cell<u64>,
    pub rng: RefCell<SeededRng>,
}

impl Platform for Memory {
    type Store = MemoryStore;
    type Net = TestMailbox;
    type Locks = FreeLocks;
    fn store(&self) -> &MemoryStore {
        &self.store
    }
    fn net(&self) -> &TestMailbox {
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

/// A client over fresh (or the given) records, with no mailbox reachable.
pub fn client(seed: u64, records: Option<Records>) -> Client<Memory> {
    client_on(seed, records, Rc::default())
}

/// A client over fresh (or the given) records and the given mailbox.
pub fn client_on(seed: u64, records: Option<Records>, mailbox: Rc<MailboxState>) -> Client<Memory> {
    Client::new(Memory {
        store: MemoryStore(records.unwrap_or_default()),
        net: TestMailbox(mailbox),
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

/// Moves a client's clock forward.
pub fn advance(client: &Client<Memory>, ms: u64) {
    let now = &client.platform().now_ms;
    now.set(now.get() + ms);
}

/// A copy of a client's whole store (a backup, a profile copy).
pub fn snapshot(client: &Client<Memory>) -> BTreeMap<String, Vec<u8>> {
    client.platform().store.0.borrow().clone()
}

/// Puts a copy taken by [`snapshot`] back (the device restored from an older copy), and
/// restarts the app on it: what the client kept in memory is gone, the vault is unlocked
/// again with `passphrase`.
pub fn restore(client: &Client<Memory>, copy: BTreeMap<String, Vec<u8>>, passphrase: &str) {
    *client.platform().store.0.borrow_mut() = copy;
    client.lock();
    run(client.unlock(passphrase)).expect("the restored vault unlocks");
}

/// Two clients in one conversation on one test mailbox: (alice, her id, bob, his id, mailbox).
pub type Pair = (
    Client<Memory>,
    String,
    Client<Memory>,
    String,
    Rc<MailboxState>,
);

/// Alice invites and Bob joins on one test mailbox; his hello is in his outbox, not yet sent.
pub fn invited_and_joining(seed: u64) -> Pair {
    let mailbox = Rc::new(MailboxState::default());
    mailbox.online.set(true);
    let alice = client_on(seed, None, mailbox.clone());
    let bob = client_on(seed + 1, None, mailbox.clone());
    run(alice.create_vault("a", FAST)).unwrap();
    run(bob.create_vault("b", FAST)).unwrap();
    let (a_id, link) =
        run(alice.create_invite("https://hush.example/", "https://mailbox.example", "Bob"))
            .unwrap();
    let b_id = run(bob.join(&link, "https://mailbox.example", "Alice")).unwrap();
    (alice, a_id, bob, b_id, mailbox)
}

/// A joined pair on one test mailbox, the hello acknowledged.
pub fn joined(seed: u64) -> Pair {
    let (alice, a_id, bob, b_id, mailbox) = invited_and_joining(seed);
    assert_eq!(run(bob.flush()).unwrap().delivered, 1);
    let polled = run(alice.poll(&a_id)).unwrap();
    assert!(polled.joined);
    // Accepting the hello owes the joiner an acknowledgement.
    let due = polled.flush_at_ms.unwrap();
    advance(&alice, due - alice.platform().now_ms.get());
    assert_eq!(run(alice.flush()).unwrap().acks_sent, 1);
    run(bob.poll(&b_id)).unwrap();
    (alice, a_id, bob, b_id, mailbox)
}

/// The texts of history entries, in order.
pub fn texts(entries: &[client_core::HistoryEntry]) -> Vec<String> {
    entries.iter().map(|e| e.text.clone()).collect()
}

/// The status of history entry `seq` of conversation `id`.
pub fn status_of(client: &Client<Memory>, id: &str, seq: u64) -> client_core::Status {
    run(client.history(id))
        .unwrap()
        .into_iter()
        .find(|e| e.seq == seq)
        .unwrap()
        .status
}

/// Lets `client`'s owed acknowledgement fall due and flushes it; returns the blobs it stored.
pub fn flush_when_due(client: &Client<Memory>) -> u32 {
    if let Some(at) = run(client.next_flush_ms()).unwrap() {
        let now = client.platform().now_ms.get();
        advance(client, at.saturating_sub(now));
    }
    run(client.flush()).unwrap().acks_sent
}

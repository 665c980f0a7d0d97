//! `client_core::Platform` in memory, under the simulator's control: a record store that
//! models commits (not writes) and durability, a network that loses, delays, duplicates and
//! reorders, locks, the virtual clock and seeded randomness.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use client_core::platform::{
    Deposit, Durability, LockError, Locks, NetError, Platform, REQUEST_TIMEOUT_MS, RecordStore,
    StorageError, Transport, Write,
};
use mailbox::WRITE_KEY_HEADER;
use mailbox::fetch::decode_response;
use mailbox::hex::encode_32;
use protocol::{Address, WriteKey};

use crate::events::Event;
use crate::faults::{Faults, Mutant};
use crate::mailbox_host::{Answer, HttpRequest, MailboxHost};
use crate::rng::Stream;
use crate::trace::short;
use crate::world::{EPOCH_MS, Sleep, World};

type Records = BTreeMap<String, Vec<u8>>;

/// A device's records: what a reader sees now, and what would survive a power loss.
///
/// A commit is applied atomically when its future completes (a crash before that loses all
/// of it). A strict commit makes everything committed so far durable; a relaxed one becomes
/// durable at the next strict commit or after a second, and a power loss before then
/// undoes it, as IndexedDB's relaxed durability allows.
pub struct SimStore {
    world: Rc<World>,
    faults: Rc<Faults>,
    device: usize,
    rng: RefCell<Stream>,
    visible: RefCell<Records>,
    durable: RefCell<Records>,
    /// Relaxed commits not yet durable: (commit time, writes).
    journal: RefCell<Vec<(u64, Vec<Write>)>>,
}

/// How long a relaxed commit may stay volatile, ms.
const RELAXED_FLUSH_MS: u64 = 1_000;

impl SimStore {
    /// An empty store of `device`.
    pub fn new(world: &Rc<World>, faults: &Rc<Faults>, device: usize, rng: Stream) -> SimStore {
        SimStore {
            world: world.clone(),
            faults: faults.clone(),
            device,
            rng: RefCell::new(rng),
            visible: RefCell::new(BTreeMap::new()),
            durable: RefCell::new(BTreeMap::new()),
            journal: RefCell::new(Vec::new()),
        }
    }

    fn latency(&self) -> Sleep {
        let ms = self.rng.borrow_mut().range(0, 4);
        Sleep::new(&self.world, ms)
    }

    /// Whether the client crashes at this await point (`site`): if so, the crash is
    /// requested and the caller never resumes (the executor drops it).
    async fn maybe_crash(&self, site: &'static str) {
        if self.faults.on() && self.rng.borrow_mut().chance(self.faults.crash_at_await) {
            self.world.crash_here(self.device, site);
            std::future::pending::<()>().await;
        }
    }

    /// A power loss: everything not durable is gone.
    pub fn power_loss(&self) {
        self.journal.borrow_mut().clear();
        *self.visible.borrow_mut() = self.durable.borrow().clone();
    }

    /// The durable records (a backup, a synced profile, a VM snapshot).
    pub fn snapshot(&self) -> Records {
        self.durable.borrow().clone()
    }

    /// Replaces everything with an older snapshot.
    pub fn restore(&self, records: &Records) {
        self.journal.borrow_mut().clear();
        *self.durable.borrow_mut() = records.clone();
        *self.visible.borrow_mut() = records.clone();
    }

    /// Every record, as a reader sees it now.
    pub fn visible(&self) -> Records {
        self.visible.borrow().clone()
    }

    fn apply(records: &mut Records, writes: &[Write]) {
        for write in writes {
            match write {
                Write::Put(name, bytes) | Write::Insert(name, bytes) => {
                    records.insert(name.clone(), bytes.clone());
                }
                Write::Delete(name) => {
                    records.remove(name);
                }
            }
        }
    }

    fn make_durable(&self, upto: u64) {
        let mut journal = self.journal.borrow_mut();
        let mut durable = self.durable.borrow_mut();
        while journal.first().is_some_and(|(t, _)| *t <= upto) {
            let (_, writes) = journal.remove(0);
            Self::apply(&mut durable, &writes);
        }
    }
}

impl RecordStore for SimStore {
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.latency().await;
        self.maybe_crash("read").await;
        Ok(self.visible.borrow().get(name).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.latency().await;
        self.maybe_crash("read").await;
        Ok(self
            .visible
            .borrow()
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, bytes)| (name.clone(), bytes.clone()))
            .collect())
    }

    async fn commit(&self, writes: Vec<Write>, durability: Durability) -> Result<(), StorageError> {
        self.latency().await;
        self.maybe_crash("before a commit lands").await;
        let now = self.world.now();
        if self.faults.on() && self.rng.borrow_mut().chance(self.faults.storage_failure) {
            self.faults.strike(|s| s.storage_failures += 1);
            return Err(StorageError::QuotaExceeded);
        }
        {
            let visible = self.visible.borrow();
            for write in &writes {
                if let Write::Insert(name, _) = write
                    && visible.contains_key(name)
                {
                    return Err(StorageError::Exists);
                }
            }
        }
        let writes = if self.faults.mutant == Mutant::TornCommit && writes.len() > 1 {
            // The planted bug: a commit that lands in two steps, 1 ms apart, with an await
            // point (and so a possible crash) between them.
            let mut rest = writes;
            let first = rest.remove(0);
            Self::apply(&mut self.visible.borrow_mut(), std::slice::from_ref(&first));
            self.journal.borrow_mut().push((now, vec![first]));
            self.make_durable(now);
            Sleep::new(&self.world, 1).await;
            self.maybe_crash("inside a torn commit (mutant)").await;
            rest
        } else {
            writes
        };
        Self::apply(&mut self.visible.borrow_mut(), &writes);
        self.journal.borrow_mut().push((now, writes));
        let strict =
            durability == Durability::Strict && self.faults.mutant != Mutant::RelaxedStrict;
        if strict {
            self.make_durable(now);
        } else {
            self.make_durable(now.saturating_sub(RELAXED_FLUSH_MS));
        }
        self.maybe_crash("after a commit landed, before the caller saw it")
            .await;
        Ok(())
    }
}

/// A request on the simulated network.
pub struct InFlight {
    /// Who sent it.
    pub device: usize,
    /// What it asks.
    pub request: HttpRequest,
    /// The answer and when it reaches the client, once the mailbox acted and unless lost.
    pub reply: RefCell<Option<(u64, Answer)>>,
    /// Lose the answer after the mailbox acted.
    pub lose_answer: bool,
    /// How long the answer travels, ms.
    pub answer_latency: u64,
}

/// The device's network: each request's fate is drawn when it is sent.
pub struct SimNet {
    world: Rc<World>,
    host: Rc<MailboxHost>,
    faults: Rc<Faults>,
    device: usize,
    name: &'static str,
    rng: Rc<RefCell<Stream>>,
    /// Requests in flight (so a mailbox restart can lose their answers).
    pub in_flight: Rc<RefCell<Vec<Rc<InFlight>>>>,
}

impl SimNet {
    /// The network of device `device`, to `host`.
    pub fn new(
        world: &Rc<World>,
        host: &Rc<MailboxHost>,
        faults: &Rc<Faults>,
        device: usize,
        name: &'static str,
        rng: Rc<RefCell<Stream>>,
        in_flight: Rc<RefCell<Vec<Rc<InFlight>>>>,
    ) -> SimNet {
        SimNet {
            world: world.clone(),
            host: host.clone(),
            faults: faults.clone(),
            device,
            name,
            rng,
            in_flight,
        }
    }

    fn latency(&self, rng: &mut Stream) -> u64 {
        let base = self.faults.latency_ms;
        let mut ms = rng.range(base / 2, base * 2 + 1);
        if self.faults.on() && rng.chance(self.faults.slow) {
            ms += rng.range(5_000, 40_000);
            self.faults.strike(|s| s.slow += 1);
        }
        ms
    }

    /// Sends `request`; resolves with the answer, or `Timeout` at the deadline.
    fn send(&self, request: HttpRequest) -> NetCall {
        self.host.record(self.device, &request);
        let mut rng = self.rng.borrow_mut();
        let on = self.faults.on();
        let lost = on && rng.chance(self.faults.request_loss);
        let lose_answer = on && rng.chance(self.faults.answer_loss);
        let duplicate = on && rng.chance(self.faults.duplicate);
        let there = self.latency(&mut rng);
        let answer_latency = self.latency(&mut rng);
        self.faults.strike(|s| {
            s.requests_lost += u64::from(lost);
            s.answers_lost += u64::from(!lost && lose_answer);
            s.duplicated += u64::from(duplicate);
        });
        let now = self.world.now();
        let what = describe(&request);
        let name = self.name;
        self.world.trace.log(now, || {
            let mut fate = String::new();
            if lost {
                fate.push_str(" (request lost)");
            } else if lose_answer {
                fate.push_str(" (answer will be lost)");
            }
            if duplicate {
                fate.push_str(" (duplicated)");
            }
            format!("{name} sends {what}, arrives in {there} ms{fate}")
        });
        let flight = Rc::new(InFlight {
            device: self.device,
            request,
            reply: RefCell::new(None),
            lose_answer,
            answer_latency,
        });
        if !lost {
            self.world
                .schedule(now + there, Event::Arrive(flight.clone()));
            self.in_flight.borrow_mut().push(flight.clone());
        }
        if duplicate {
            let again = there + rng.range(0, 30_000);
            let copy = Rc::new(InFlight {
                device: self.device,
                request: flight.request.clone(),
                reply: RefCell::new(None),
                lose_answer: true,
                answer_latency,
            });
            self.world.schedule(now + again, Event::Arrive(copy));
        }
        NetCall {
            world: self.world.clone(),
            flight,
            deadline: now + u64::from(REQUEST_TIMEOUT_MS),
        }
    }
}

/// What a request is, for the trace.
pub fn describe(request: &HttpRequest) -> String {
    match request.method {
        "POST" => format!("POST /v1/fetch ({} addresses)", request.body.len() / 32),
        method => {
            let hex = request.path.strip_prefix("/v1/m/").unwrap_or("");
            format!("{method} {}…", hex.get(..8).unwrap_or(hex))
        }
    }
}

/// A request awaiting its answer.
pub struct NetCall {
    world: Rc<World>,
    flight: Rc<InFlight>,
    deadline: u64,
}

impl Future for NetCall {
    type Output = Result<Answer, NetError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let now = self.world.now();
        if let Some((when, answer)) = self.flight.reply.borrow().as_ref() {
            if now >= *when && *when < self.deadline {
                return Poll::Ready(Ok(answer.clone()));
            }
            self.world.wake_at(*when);
        }
        if now >= self.deadline {
            return Poll::Ready(Err(NetError::Timeout));
        }
        self.world.wake_at(self.deadline);
        Poll::Pending
    }
}

fn status_error(status: u16, body: &[u8]) -> NetError {
    NetError::Status {
        status,
        reason: String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

fn unreachable() -> NetError {
    NetError::Unreachable("connection refused".to_owned())
}

impl SimNet {
    /// `PUT`, with `Mailbox-Put-Back: ?1` if `put_back`.
    async fn deposit(
        &self,
        write_key: &WriteKey,
        blob: &[u8],
        put_back: bool,
    ) -> Result<Deposit, NetError> {
        let request = HttpRequest {
            method: "PUT",
            path: format!("/v1/m/{}", encode_32(&write_key.address().0)),
            write_key: Some(encode_32(&write_key.0)),
            put_back,
            body: blob.to_vec(),
        };
        debug_assert_eq!(WRITE_KEY_HEADER, "mailbox-write-key");
        match self.send(request).await? {
            Answer::Unreachable => Err(unreachable()),
            Answer::Http { status: 201, .. } => Ok(Deposit::Stored),
            Answer::Http { status: 409, .. } => Ok(Deposit::AlreadyStored),
            Answer::Http { status: 410, .. } => Ok(Deposit::Spent),
            Answer::Http { status, body } => Err(status_error(status, &body)),
        }
    }
}

impl Transport for SimNet {
    async fn put(
        &self,
        _mailbox: &str,
        write_key: &WriteKey,
        blob: &[u8],
    ) -> Result<Deposit, NetError> {
        self.deposit(write_key, blob, false).await
    }

    async fn put_back(
        &self,
        _mailbox: &str,
        write_key: &WriteKey,
        blob: &[u8],
    ) -> Result<Deposit, NetError> {
        self.deposit(write_key, blob, true).await
    }

    async fn get(&self, _mailbox: &str, address: &Address) -> Result<Option<Vec<u8>>, NetError> {
        let request = HttpRequest {
            method: "GET",
            path: format!("/v1/m/{}", encode_32(&address.0)),
            write_key: None,
            put_back: false,
            body: Vec::new(),
        };
        match self.send(request).await? {
            Answer::Unreachable => Err(unreachable()),
            Answer::Http { status: 200, body } => Ok(Some(body)),
            Answer::Http { status: 404, .. } => Ok(None),
            // Spent: a blob stood here and was read (an empty body: never a message).
            Answer::Http { status: 410, .. } => Ok(Some(Vec::new())),
            Answer::Http { status, body } => Err(status_error(status, &body)),
        }
    }

    async fn delete(&self, _mailbox: &str, write_key: &WriteKey) -> Result<(), NetError> {
        let request = HttpRequest {
            method: "DELETE",
            path: format!("/v1/m/{}", encode_32(&write_key.address().0)),
            write_key: Some(encode_32(&write_key.0)),
            put_back: false,
            body: Vec::new(),
        };
        match self.send(request).await? {
            Answer::Unreachable => Err(unreachable()),
            Answer::Http { status: 204, .. } => Ok(()),
            Answer::Http { status, body } => Err(status_error(status, &body)),
        }
    }

    async fn fetch(
        &self,
        _mailbox: &str,
        addresses: &[Address],
    ) -> Result<Vec<(Address, Vec<u8>)>, NetError> {
        let body = addresses.iter().flat_map(|a| a.0).collect();
        let request = HttpRequest {
            method: "POST",
            path: "/v1/fetch".to_owned(),
            write_key: None,
            put_back: false,
            body,
        };
        match self.send(request).await? {
            Answer::Unreachable => Err(unreachable()),
            Answer::Http { status: 200, body } => Ok(decode_response(&body)
                .map_err(|_| NetError::Malformed)?
                .into_iter()
                .map(|(address, blob)| (address, blob.to_vec()))
                .collect()),
            Answer::Http { status, body } => Err(status_error(status, &body)),
        }
    }
}

/// One tab's view of the profile's locks (a crash of the tab releases all it held).
pub struct SimLocks {
    world: Rc<World>,
    held: Rc<RefCell<BTreeSet<String>>>,
}

/// A held lock; dropping it releases the lock.
pub struct SimGuard {
    world: Rc<World>,
    held: Rc<RefCell<BTreeSet<String>>>,
    name: String,
}

impl Drop for SimGuard {
    fn drop(&mut self) {
        self.held.borrow_mut().remove(&self.name);
        self.world.bump();
    }
}

impl SimLocks {
    /// Locks shared through `held`.
    pub fn new(world: &Rc<World>, held: Rc<RefCell<BTreeSet<String>>>) -> SimLocks {
        SimLocks {
            world: world.clone(),
            held,
        }
    }
}

/// Waits for a lock.
pub struct LockWait {
    world: Rc<World>,
    held: Rc<RefCell<BTreeSet<String>>>,
    name: String,
}

impl Future for LockWait {
    type Output = Result<SimGuard, LockError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.held.borrow_mut().insert(self.name.clone()) {
            Poll::Ready(Ok(SimGuard {
                world: self.world.clone(),
                held: self.held.clone(),
                name: self.name.clone(),
            }))
        } else {
            Poll::Pending
        }
    }
}

impl Locks for SimLocks {
    type Guard = SimGuard;

    fn lock(&self, name: &str) -> impl Future<Output = Result<SimGuard, LockError>> {
        LockWait {
            world: self.world.clone(),
            held: self.held.clone(),
            name: name.to_owned(),
        }
    }
}

/// One device's platform.
pub struct SimPlatform {
    /// Virtual clock.
    pub world: Rc<World>,
    /// The records.
    pub store: Rc<SimStore>,
    /// The network.
    pub net: SimNet,
    /// The locks.
    pub locks: SimLocks,
    /// Randomness for keys, nonces and ids.
    pub rng: RefCell<Stream>,
    /// How far this device's clock is off, ms (signed).
    pub skew_ms: Cell<i64>,
}

impl Platform for SimPlatform {
    type Store = SimStore;
    type Net = SimNet;
    type Locks = SimLocks;

    fn store(&self) -> &SimStore {
        &self.store
    }

    fn net(&self) -> &SimNet {
        &self.net
    }

    fn locks(&self) -> &SimLocks {
        &self.locks
    }

    fn now_ms(&self) -> u64 {
        (EPOCH_MS + self.world.now()).saturating_add_signed(self.skew_ms.get())
    }

    fn fill_random(&self, dest: &mut [u8]) {
        self.rng.borrow_mut().fill(dest);
    }

    fn nfc(&self, text: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        text.nfc().collect()
    }
}

/// For the trace: a blob's address.
pub fn address_of(write_key: &WriteKey) -> String {
    short(&write_key.address().0)
}

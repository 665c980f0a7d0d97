//! Who watches what, and what waits to be sent to each subscription.
//!
//! One [`Hub`] per server: a registry (the [`WatchIndex`] and each connection's [`Outbox`])
//! behind one lock, the count of open subscriptions against the cap, the shutdown signal, and
//! the counts logged. Every semantic decision (framing, budget, close codes) is the `mailbox`
//! crate's; this module only holds the state.
//!
//! Ordering. A watch set is registered and its outbox put on *hold* under the registry lock;
//! a push looks up its watchers and queues its frame under the same lock. So a push that saw
//! the previous watch set is queued before the new snapshot, and a push that sees the new one
//! is held until the snapshot is queued and goes out after it: blobs of a replaced watch set
//! may arrive before the new snapshot, none after it, and nothing stored after the watch set
//! is registered is missed (it is in the snapshot, pushed after it, or both).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hyper::body::Bytes;
use mailbox::subscribe::{Close, SendBudget, WatchIndex};
use protocol::Address;
use tokio::sync::{Notify, watch};

/// A connection's id in the registry.
pub type ConnId = u64;

/// Something the connection's writer sends, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A binary message (a snapshot or a push), counted against the send budget.
    Frame(Bytes),
    /// A WebSocket ping (not counted: control frames are tiny).
    Ping,
}

#[derive(Debug)]
struct OutboxState {
    queue: VecDeque<Out>,
    /// Pushes that arrived while a snapshot was being read: sent right after it.
    held: Vec<Bytes>,
    holding: bool,
    budget: SendBudget,
    /// Set when the connection must close (its reader is too slow); nothing more is queued.
    closing: Option<Close>,
}

/// What waits to be sent to one connection, within its send budget.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<OutboxState>,
    /// Signalled when something is queued.
    pub ready: Notify,
    /// Signalled when the connection must close.
    pub close: Notify,
}

impl Outbox {
    fn new(budget: usize) -> Self {
        Self {
            state: Mutex::new(OutboxState {
                queue: VecDeque::new(),
                held: Vec::new(),
                holding: false,
                budget: SendBudget::new(budget),
                closing: None,
            }),
            ready: Notify::new(),
            close: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutboxState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `frame` (after the pending snapshot, if one is being read). Past the budget the
    /// connection is marked to close with [`Close::ReaderTooSlow`] and its queue is dropped,
    /// so a reader that stops reading costs at most its budget. Returns whether it was queued.
    fn push(&self, frame: &Bytes) -> bool {
        let mut state = self.lock();
        if state.closing.is_some() {
            return false;
        }
        if let Err(close) = state.budget.queue(frame.len()) {
            Self::give_up(&mut state, close);
            drop(state);
            self.close.notify_one();
            return false;
        }
        if state.holding {
            state.held.push(frame.clone());
        } else {
            state.queue.push_back(Out::Frame(frame.clone()));
        }
        drop(state);
        self.ready.notify_one();
        true
    }

    fn give_up(state: &mut OutboxState, close: Close) {
        state.closing = Some(close);
        state.queue = VecDeque::new();
        state.held = Vec::new();
    }

    /// Queues the snapshot of the watch set registered last, then what was held meanwhile.
    pub fn snapshot(&self, frame: Bytes) {
        let mut state = self.lock();
        state.holding = false;
        if state.closing.is_some() {
            return;
        }
        if let Err(close) = state.budget.queue(frame.len()) {
            Self::give_up(&mut state, close);
            drop(state);
            self.close.notify_one();
            return;
        }
        state.queue.push_back(Out::Frame(frame));
        let held = std::mem::take(&mut state.held);
        state.queue.extend(held.into_iter().map(Out::Frame));
        drop(state);
        self.ready.notify_one();
    }

    /// Queues a ping.
    pub fn ping(&self) {
        self.lock().queue.push_back(Out::Ping);
        self.ready.notify_one();
    }

    /// The next thing to send, if any.
    pub fn next(&self) -> Option<Out> {
        self.lock().queue.pop_front()
    }

    /// Accounts a frame of `len` bytes handed to the socket.
    pub fn sent(&self, len: usize) {
        self.lock().budget.sent(len);
    }

    /// Why the connection must close, if it must.
    pub fn closing(&self) -> Option<Close> {
        self.lock().closing
    }

    /// Bytes queued and not yet sent (for tests and the budget).
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.lock().budget.queued()
    }
}

#[derive(Default)]
struct Registry {
    index: WatchIndex<ConnId>,
    outboxes: HashMap<ConnId, Arc<Outbox>>,
    next_id: ConnId,
}

/// Counts of what subscriptions did since start (counts only, never an address).
#[derive(Debug, Default)]
pub struct Stats {
    /// Subscriptions accepted (under the cap).
    pub opened: AtomicU64,
    /// Push frames queued.
    pub pushed: AtomicU64,
    /// Snapshots queued.
    pub snapshots: AtomicU64,
    /// Addresses handled by delete messages (one per write key sent, whether or not a
    /// message was there).
    pub deleted: AtomicU64,
    /// Closed because the client closed or the connection failed.
    pub closed_by_client: AtomicU64,
    /// Dropped because the client answered no ping.
    pub unresponsive: AtomicU64,
    /// Closed by the mailbox, by reason ([`Close`] in the order of [`CLOSE_REASONS`]).
    pub closed: [AtomicU64; CLOSE_REASONS.len()],
}

/// The close reasons counted, with their log names.
pub const CLOSE_REASONS: [(Close, &str); 9] = [
    (Close::NoWatchSet, "no_watch_set"),
    (Close::BadWatchSet, "bad_watch_set"),
    (Close::BadDelete, "bad_delete"),
    (Close::BinaryOnly, "binary_only"),
    (Close::MessageTooBig, "too_big"),
    (Close::TooManySubscriptions, "too_many"),
    (Close::ReaderTooSlow, "too_slow"),
    (Close::GoingAway, "going_away"),
    (Close::StoreUnavailable, "store_unavailable"),
];

/// The subscriptions of one server.
pub struct Hub {
    registry: Mutex<Registry>,
    open: AtomicUsize,
    max: usize,
    budget: usize,
    /// Counts for the log.
    pub stats: Stats,
    shutdown: watch::Sender<bool>,
    /// Signalled whenever a subscription ends.
    ended: Notify,
}

/// An open subscription's place under the cap; ends it when dropped.
pub struct Ticket {
    hub: Arc<Hub>,
    id: ConnId,
    /// Its outbox.
    pub outbox: Arc<Outbox>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut registry = self.hub.lock();
        registry.index.remove(self.id);
        registry.outboxes.remove(&self.id);
        drop(registry);
        self.hub.open.fetch_sub(1, Ordering::Relaxed);
        self.hub.ended.notify_waiters();
    }
}

impl Ticket {
    /// Makes `watch` this connection's whole watch set and holds pushes until its snapshot
    /// is queued ([`Outbox::snapshot`]).
    pub fn watch(&self, watch: &[Address]) {
        let mut registry = self.hub.lock();
        registry.index.replace(self.id, watch);
        self.outbox.lock().holding = true;
    }
}

impl Hub {
    /// A hub for at most `max` subscriptions, each allowed `budget` bytes waiting to be sent.
    pub fn new(max: usize, budget: usize) -> Arc<Self> {
        Arc::new(Self {
            registry: Mutex::new(Registry::default()),
            open: AtomicUsize::new(0),
            max,
            budget,
            stats: Stats::default(),
            shutdown: watch::channel(false).0,
            ended: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more subscription, or None at the cap.
    pub fn open(self: &Arc<Self>) -> Option<Ticket> {
        let taken = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            });
        if taken.is_err() {
            return None;
        }
        self.stats.opened.fetch_add(1, Ordering::Relaxed);
        let outbox = Arc::new(Outbox::new(self.budget));
        let mut registry = self.lock();
        let id = registry.next_id;
        registry.next_id += 1;
        registry.outboxes.insert(id, Arc::clone(&outbox));
        drop(registry);
        Some(Ticket {
            hub: Arc::clone(self),
            id,
            outbox,
        })
    }

    /// Queues `frame` (a push of a blob just stored at `address`) to every connection
    /// watching it; returns to how many.
    pub fn publish(&self, address: &Address, frame: impl FnOnce() -> Vec<u8>) -> usize {
        let registry = self.lock();
        let watchers = registry.index.watchers(address);
        if watchers.is_empty() {
            return 0;
        }
        let frame = Bytes::from(frame());
        let mut queued = 0;
        for id in watchers {
            if let Some(outbox) = registry.outboxes.get(id)
                && outbox.push(&frame)
            {
                queued += 1;
            }
        }
        drop(registry);
        self.stats
            .pushed
            .fetch_add(queued as u64, Ordering::Relaxed);
        queued
    }

    /// Subscriptions open now.
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Counts a subscription closed by the mailbox with `close`.
    pub fn count_close(&self, close: Close) {
        if let Some(i) = CLOSE_REASONS.iter().position(|(c, _)| *c == close)
            && let Some(counter) = self.stats.closed.get(i)
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tells every subscription to close with [`Close::GoingAway`].
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once [`Hub::shut_down`] was called.
    pub fn shutting_down(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Waits until no subscription is open (or `grace` passed).
    pub async fn closed(&self, grace: std::time::Duration) {
        let wait = async {
            loop {
                let ended = self.ended.notified();
                if self.open_count() == 0 {
                    return;
                }
                ended.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
    }

    /// The counts as one log line (counts only).
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut line = format!(
            "subscriptions: open={} cap={} opened={} snapshots={} deleted={} pushed={} closed: client={} unresponsive={}",
            self.open_count(),
            self.max,
            get(&self.stats.opened),
            get(&self.stats.snapshots),
            get(&self.stats.deleted),
            get(&self.stats.pushed),
            get(&self.stats.closed_by_client),
            get(&self.stats.unresponsive),
        );
        for ((_, name), counter) in CLOSE_REASONS.iter().zip(&self.stats.closed) {
            line.push_str(&format!(" {name}={}", get(counter)));
        }
        line
    }

    /// A number that changes whenever a count does (to log only on change).
    pub fn activity(&self) -> u64 {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        get(&self.stats.opened)
            .wrapping_add(get(&self.stats.pushed))
            .wrapping_add(get(&self.stats.snapshots))
            .wrapping_add(get(&self.stats.deleted))
            .wrapping_add(get(&self.stats.closed_by_client))
            .wrapping_add(get(&self.stats.unresponsive))
            .wrapping_add(self.stats.closed.iter().map(get).sum::<u64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> Address {
        Address([i; 32])
    }

    fn frames(outbox: &Outbox) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| outbox.next())
            .filter_map(|out| match out {
                Out::Frame(f) => Some(f.to_vec()),
                Out::Ping => None,
            })
            .collect()
    }

    #[test]
    fn pushes_reach_exactly_the_watchers_and_the_cap_holds() -> Result<(), &'static str> {
        let hub = Hub::new(2, 1 << 10);
        let one = hub.open().ok_or("room for one")?;
        let two = hub.open().ok_or("room for two")?;
        assert!(hub.open().is_none(), "a third is refused");
        one.watch(&[addr(1), addr(2)]);
        one.outbox.snapshot(Bytes::new());
        two.watch(&[addr(2)]);
        two.outbox.snapshot(Bytes::new());
        assert_eq!(hub.publish(&addr(2), || b"two".to_vec()), 2);
        assert_eq!(hub.publish(&addr(1), || b"one".to_vec()), 1);
        assert_eq!(hub.publish(&addr(3), Vec::new), 0, "nobody watches");
        assert_eq!(
            frames(&one.outbox),
            vec![vec![], b"two".to_vec(), b"one".to_vec()]
        );
        assert_eq!(frames(&two.outbox), vec![vec![], b"two".to_vec()]);
        drop(one);
        assert_eq!(hub.open_count(), 1);
        assert_eq!(hub.publish(&addr(1), || b"gone".to_vec()), 0);
        assert!(hub.open().is_some(), "room again");
        Ok(())
    }

    #[test]
    fn pushes_during_a_snapshot_follow_it_and_a_replaced_set_is_not_pushed_after_it()
    -> Result<(), &'static str> {
        let hub = Hub::new(4, 1 << 10);
        let sub = hub.open().ok_or("room for one")?;
        sub.watch(&[addr(1)]);
        sub.outbox.snapshot(b"snap1".as_slice().into());
        hub.publish(&addr(1), || b"old".to_vec());
        // A new watch set: a push to it while its snapshot is read waits for the snapshot.
        sub.watch(&[addr(2)]);
        assert_eq!(hub.publish(&addr(1), || b"replaced".to_vec()), 0);
        hub.publish(&addr(2), || b"new".to_vec());
        sub.outbox.snapshot(b"snap2".as_slice().into());
        hub.publish(&addr(2), || b"later".to_vec());
        assert_eq!(
            frames(&sub.outbox),
            [&b"snap1"[..], b"old", b"snap2", b"new", b"later"].map(<[u8]>::to_vec)
        );
        Ok(())
    }

    #[test]
    fn a_reader_past_its_budget_is_closed_and_its_queue_dropped() -> Result<(), &'static str> {
        let hub = Hub::new(4, 100);
        let sub = hub.open().ok_or("room for one")?;
        sub.watch(&[addr(1)]);
        sub.outbox.snapshot(Bytes::new());
        for _ in 0..2 {
            hub.publish(&addr(1), || vec![0; 40]);
        }
        assert_eq!(sub.outbox.queued(), 80);
        assert_eq!(sub.outbox.closing(), None);
        assert_eq!(hub.publish(&addr(1), || vec![0; 40]), 0);
        assert_eq!(sub.outbox.closing(), Some(Close::ReaderTooSlow));
        assert!(sub.outbox.next().is_none(), "what was queued is dropped");
        assert_eq!(
            hub.publish(&addr(1), || vec![0; 1]),
            0,
            "nothing more queued"
        );
        Ok(())
    }

    #[tokio::test]
    async fn shutdown_reaches_subscriptions_and_closed_waits_for_them() {
        let hub = Hub::new(4, 100);
        let mut signal = hub.shutting_down();
        let ticket = hub.open();
        let waiter = {
            let hub = Arc::clone(&hub);
            tokio::spawn(async move { hub.closed(std::time::Duration::from_secs(5)).await })
        };
        hub.shut_down();
        assert!(signal.wait_for(|s| *s).await.is_ok());
        drop(ticket);
        assert!(waiter.await.is_ok());
        assert_eq!(hub.open_count(), 0);
        hub.count_close(Close::GoingAway);
        assert!(hub.summary().contains("going_away=1"));
    }

    #[test]
    fn delete_messages_and_bad_deletes_are_counted() {
        let hub = Hub::new(4, 100);
        let before = hub.activity();
        hub.stats.deleted.fetch_add(3, Ordering::Relaxed);
        hub.count_close(Close::BadDelete);
        assert_ne!(hub.activity(), before, "the log line is written again");
        let line = hub.summary();
        assert!(line.contains(" deleted=3 "), "{line}");
        assert!(line.contains(" bad_delete=1 "), "{line}");
    }
}

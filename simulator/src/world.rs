//! The simulated world's shared state: a virtual clock that moves only when the simulator
//! moves it, the timers pending futures wait for, the event queue, and the trace.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::events::Event;
use crate::trace::Trace;

/// Shared by every simulated component of one seed.
pub struct World {
    /// Virtual time, milliseconds since the start of the run.
    now: Cell<u64>,
    /// Times at which some pending future wants to be polled again.
    timers: RefCell<BTreeSet<u64>>,
    /// Bumped whenever something a pending future may wait for changes (a reply arrives, a
    /// lock is released): the executor polls again until it stops moving.
    progress: Cell<u64>,
    events: RefCell<BTreeMap<(u64, u64), Event>>,
    next_event: Cell<u64>,
    /// Devices that crashed at an await point (with the site), for the executor to take
    /// down before it polls anything else.
    crashes: RefCell<Vec<(usize, &'static str)>>,
    /// The run's story, for a failing seed.
    pub trace: Trace,
}

/// What the devices' clocks read at virtual time 0 (2026-11-30T00:00:00Z).
pub const EPOCH_MS: u64 = 1_795_996_800_000;

impl World {
    /// A world at time 0; `tracing` records the story as it goes.
    pub fn new(tracing: bool) -> Rc<World> {
        Rc::new(World {
            now: Cell::new(0),
            timers: RefCell::new(BTreeSet::new()),
            progress: Cell::new(0),
            events: RefCell::new(BTreeMap::new()),
            next_event: Cell::new(0),
            crashes: RefCell::new(Vec::new()),
            trace: Trace::new(tracing),
        })
    }

    /// Virtual milliseconds since the start.
    pub fn now(&self) -> u64 {
        self.now.get()
    }

    /// Something changed that a pending future may be waiting for.
    pub fn bump(&self) {
        self.progress.set(self.progress.get().wrapping_add(1));
    }

    /// The progress counter (see [`World::bump`]).
    pub fn progress(&self) -> u64 {
        self.progress.get()
    }

    /// Asks to be polled again at `at`.
    pub fn wake_at(&self, at: u64) {
        if at > self.now() {
            self.timers.borrow_mut().insert(at);
        }
    }

    /// Schedules `event` at `at` (events at one time run in the order scheduled).
    pub fn schedule(&self, at: u64, event: Event) {
        let n = self.next_event.get();
        self.next_event.set(n + 1);
        self.events
            .borrow_mut()
            .insert((at.max(self.now()), n), event);
    }

    /// The next event due at or before now, if any.
    pub fn due_event(&self) -> Option<Event> {
        let mut events = self.events.borrow_mut();
        let first = *events.keys().next()?;
        if first.0 <= self.now() {
            events.remove(&first)
        } else {
            None
        }
    }

    /// `device` crashes right now, at the await point `site`.
    pub fn crash_here(&self, device: usize, site: &'static str) {
        self.crashes.borrow_mut().push((device, site));
        self.bump();
    }

    /// Crashes requested since the last call.
    pub fn take_crashes(&self) -> Vec<(usize, &'static str)> {
        std::mem::take(&mut *self.crashes.borrow_mut())
    }

    /// Moves the clock to the next timer or event, whichever comes first. False if nothing
    /// is pending at all.
    pub fn advance(&self) -> bool {
        let now = self.now();
        let mut timers = self.timers.borrow_mut();
        while timers.first().is_some_and(|t| *t <= now) {
            timers.pop_first();
        }
        let timer = timers.first().copied();
        let event = self.events.borrow().keys().next().map(|(t, _)| *t);
        let next = match (timer, event) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return false,
        };
        self.now.set(next.max(now));
        true
    }
}

/// A future that is ready once virtual time reaches `until`.
pub struct Sleep {
    world: Rc<World>,
    until: u64,
}

impl Sleep {
    /// Sleeps `ms` virtual milliseconds from now.
    pub fn new(world: &Rc<World>, ms: u64) -> Sleep {
        Sleep {
            world: world.clone(),
            until: world.now() + ms,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.world.now() >= self.until {
            Poll::Ready(())
        } else {
            self.world.wake_at(self.until);
            Poll::Pending
        }
    }
}

/// Polls a future that must be ready at once (the mailbox over its in-memory store).
pub fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

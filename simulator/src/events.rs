//! What can happen next in the simulated world.

use std::rc::Rc;

use crate::platform::InFlight;

/// One scheduled event.
pub enum Event {
    /// A request reaches the mailbox.
    Arrive(Rc<InFlight>),
    /// The user of `device` writes a message.
    Send {
        /// Who.
        device: usize,
    },
    /// Time for `device`'s next poll (ignored if from an earlier run of the app).
    PollTick {
        /// Who.
        device: usize,
        /// Which run of the app scheduled it.
        epoch: u64,
    },
    /// Time for `device` to deliver its outbox.
    FlushTick {
        /// Who.
        device: usize,
        /// Which run of the app scheduled it.
        epoch: u64,
    },
    /// The app of `device` dies at whatever await point it is in.
    Crash {
        /// Who.
        device: usize,
    },
    /// The user closes the app for a while.
    Leave {
        /// Who.
        device: usize,
        /// For how long, ms.
        for_ms: u64,
    },
    /// The app of `device` starts (after a crash or an absence).
    Start {
        /// Who.
        device: usize,
    },
    /// The page goes to the background or comes to the front.
    Visibility {
        /// Who.
        device: usize,
        /// In front?
        foreground: bool,
    },
    /// The mailbox goes down.
    OutageStart,
    /// The mailbox comes back.
    OutageEnd,
    /// The mailbox restarts: answers in flight are lost, it is down for a moment.
    MailboxRestart,
    /// A backup of `device`'s records is taken.
    Snapshot {
        /// Who.
        device: usize,
    },
    /// `device` is restored from its oldest backup.
    Restore {
        /// Who.
        device: usize,
    },
    /// A squatter who photographed the invite fills the addresses it can derive.
    Squat,
    /// During the heal phase: read both histories; if every message is on the other
    /// person's screen and *delivered* on its sender's, nothing is left to heal: end early.
    SettleCheck,
    /// Faults stop; every absent app comes back.
    Heal,
    /// The run ends.
    End,
}

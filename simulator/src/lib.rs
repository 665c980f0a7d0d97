//! A deterministic simulation of Hush: two clients (`client_core`) and a mailbox
//! (`mailbox::Mailbox` over an in-memory store) in one thread, driven by one seed, with every
//! fault injected at the boundaries between them. See `docs/SIMULATION.md`.
//!
//! * [`world`]: the virtual clock, timers and event queue; nothing reads real time.
//! * [`platform`]: `client_core::Platform` in memory — a record store that models commits and
//!   durability (crashes lose exactly the uncommitted), a network that loses, delays,
//!   duplicates and reorders, locks, seeded randomness.
//! * [`mailbox_host`]: the real mailbox semantics, lifetimes on virtual time, and the ledger
//!   of every blob each client deposited.
//! * [`faults`]: the fault rates of a seed, drawn per seed (swarm testing).
//! * [`scenario`]: the two people, their messages, and the faults striking at random points.
//! * [`invariants`]: what must hold.
//!
//! A seed replays byte for byte: `cargo xtask simulate --seed S --trace`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod events;
pub mod faults;
pub mod invariants;
pub mod mailbox_host;
pub mod platform;
pub mod rng;
pub mod scenario;
pub mod trace;
pub mod world;

pub use faults::{FaultSet, Mutant, Struck};
pub use invariants::Violation;
pub use mailbox_host::Wire;
pub use scenario::Outcome;

/// How the messages of a run ended, beyond the invariants.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Messages whose sender's screen reached *delivered* (the peer acknowledged every blob).
    pub delivered_status: u64,
    /// Messages shown to the other person whose sender's screen is not *delivered* at the end.
    pub shown_not_acknowledged: u64,
    /// Messages not delivered, marked so on the sender's screen with a reason.
    pub marked_undelivered: u64,
    /// Messages not delivered because the invite was taken (the joiner's conversation says so).
    pub invite_taken_messages: u64,
    /// Messages not delivered because their conversation ended: the other person's device
    /// went back to an older copy after our last reply (`EndReason::PeerRestored`).
    pub ended_messages: u64,
    /// Conversations ended that way.
    pub ended_peer_restored: u64,
    /// Runs in which the joiner was told that someone else took the invite.
    pub invite_taken: u64,
    /// Rollbacks detected and told to the user.
    pub rollback_notices: u64,
    /// Acknowledgement-only blobs sent (as flushes report them).
    pub ack_blobs: u64,
    /// Blobs re-deposited because their address read empty (as flushes report them).
    pub retransmitted: u64,
    /// Messages sent again because their blobs were read but never acknowledged (as
    /// flushes report them: client-core `lost_reads`).
    pub resent_lost_reads: u64,
    /// Conversations showing that someone interferes with them.
    pub interference_notices: u64,
    /// Messages the other person received that their sender's device no longer has (sent
    /// from a copy that a restore replaced).
    pub lost_copy_messages: u64,
    /// Messages shown to their recipient and then lost from its history by its own restore.
    pub lost_by_receiver_restore: u64,
    /// Messages acknowledged by a copy of the recipient's device that a restore then
    /// discarded before they were shown, in a conversation that ended for that reason.
    pub delivered_to_lost_copy: u64,
}

impl Figures {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Figures) {
        self.delivered_status += other.delivered_status;
        self.shown_not_acknowledged += other.shown_not_acknowledged;
        self.marked_undelivered += other.marked_undelivered;
        self.invite_taken_messages += other.invite_taken_messages;
        self.invite_taken += other.invite_taken;
        self.ended_messages += other.ended_messages;
        self.ended_peer_restored += other.ended_peer_restored;
        self.rollback_notices += other.rollback_notices;
        self.ack_blobs += other.ack_blobs;
        self.retransmitted += other.retransmitted;
        self.resent_lost_reads += other.resent_lost_reads;
        self.interference_notices += other.interference_notices;
        self.lost_copy_messages += other.lost_copy_messages;
        self.lost_by_receiver_restore += other.lost_by_receiver_restore;
        self.delivered_to_lost_copy += other.delivered_to_lost_copy;
    }
}

/// How the clients run, beyond the drawn faults (command-line flags: not drawn, so that a
/// seed without them replays as before).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `--pushes`: half the clients' polls read a subscription snapshot instead.
    pub pushes: bool,
    /// `--delete-after-read`: the clients delete what they read in every seed, also in seeds
    /// with restored snapshots (by default only in seeds without them).
    pub delete_after_read: bool,
}

impl Options {
    /// The flags, as the replay line writes them.
    pub fn flags(self) -> String {
        let mut flags = String::new();
        if self.pushes {
            flags.push_str(" --pushes");
        }
        if self.delete_after_read {
            flags.push_str(" --delete-after-read");
        }
        flags
    }
}

/// Runs seed `seed` with the faults of `set` (and the planted bug `mutant`); `tracing`
/// records the story.
pub fn run_seed(
    seed: u64,
    set: FaultSet,
    mutant: Mutant,
    options: Options,
    tracing: bool,
) -> Outcome {
    scenario::Simulation::new(seed, set, mutant, options, tracing).run()
}

/// Totals over many seeds.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Messages written.
    pub messages: u64,
    /// Messages shown to the other person.
    pub delivered: u64,
    /// Virtual time simulated, ms.
    pub simulated_ms: u64,
    /// Failing seeds with their first violation, in seed order.
    pub failures: Vec<(u64, Violation)>,
    /// Violations by kind.
    pub kinds: Vec<(&'static str, u64)>,
    /// Crashes at await points, by site.
    pub crash_sites: Vec<(&'static str, u64)>,
    /// Faults that struck.
    pub struck: Struck,
    /// What crossed the wire.
    pub wire: Wire,
    /// How messages ended.
    pub figures: Figures,
    /// Per seed that had a heal phase: from the end of the faults to the last message shown
    /// or marked *delivered*, ms (sorted once all seeds ran).
    pub recovery_ms: Vec<u64>,
}

fn tally(into: &mut Vec<(&'static str, u64)>, key: &'static str, n: u64) {
    match into.iter_mut().find(|(k, _)| *k == key) {
        Some((_, m)) => *m += n,
        None => into.push((key, n)),
    }
}

impl Summary {
    fn add(&mut self, seed: u64, outcome: &Outcome) {
        self.seeds += 1;
        self.messages += outcome.messages;
        self.delivered += outcome.delivered;
        self.simulated_ms += outcome.simulated_ms;
        if let Some(first) = outcome.violations.first() {
            self.failures.push((seed, first.clone()));
        }
        for v in &outcome.violations {
            tally(&mut self.kinds, v.kind(), 1);
        }
        for site in &outcome.crash_sites {
            tally(&mut self.crash_sites, site, 1);
        }
        self.struck.add(&outcome.struck);
        self.wire.add(&outcome.wire);
        self.figures.add(&outcome.figures);
        self.recovery_ms.push(outcome.recovery_ms);
    }

    fn merge(&mut self, other: Summary) {
        self.seeds += other.seeds;
        self.messages += other.messages;
        self.delivered += other.delivered;
        self.simulated_ms += other.simulated_ms;
        self.failures.extend(other.failures);
        for (kind, n) in other.kinds {
            tally(&mut self.kinds, kind, n);
        }
        for (site, n) in other.crash_sites {
            tally(&mut self.crash_sites, site, n);
        }
        self.struck.add(&other.struck);
        self.wire.add(&other.wire);
        self.figures.add(&other.figures);
        self.recovery_ms.extend(other.recovery_ms);
    }
}

/// Runs seeds `first .. first + count` on `threads` threads (each seed in one thread, so
/// results do not depend on the thread count).
pub fn run_seeds(
    first: u64,
    count: u64,
    threads: usize,
    set: FaultSet,
    mutant: Mutant,
    options: Options,
) -> Summary {
    let threads = threads.max(1) as u64;
    let mut summary = Summary::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut part = Summary::default();
                    let mut seed = first + t;
                    while seed < first + count {
                        part.add(seed, &run_seed(seed, set, mutant, options, false));
                        seed += threads;
                    }
                    part
                })
            })
            .collect();
        for worker in workers {
            if let Ok(part) = worker.join() {
                summary.merge(part);
            }
        }
    });
    summary.failures.sort_by_key(|(seed, _)| *seed);
    summary.crash_sites.sort();
    summary.recovery_ms.sort_unstable();
    summary
}

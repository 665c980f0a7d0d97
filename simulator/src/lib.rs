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

pub use faults::{FaultSet, Mutant};
pub use invariants::Violation;
pub use scenario::Outcome;

/// Runs seed `seed` with the faults of `set` (and the planted bug `mutant`); `tracing`
/// records the story.
pub fn run_seed(seed: u64, set: FaultSet, mutant: Mutant, tracing: bool) -> Outcome {
    scenario::Simulation::new(seed, set, mutant, tracing).run()
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
    }
}

/// Runs seeds `first .. first + count` on `threads` threads (each seed in one thread, so
/// results do not depend on the thread count).
pub fn run_seeds(first: u64, count: u64, threads: usize, set: FaultSet, mutant: Mutant) -> Summary {
    let threads = threads.max(1) as u64;
    let mut summary = Summary::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut part = Summary::default();
                    let mut seed = first + t;
                    while seed < first + count {
                        part.add(seed, &run_seed(seed, set, mutant, false));
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
    summary
}

//! Which faults a seed injects, and how often: drawn per seed (swarm testing), so that some
//! seeds have much loss and no crashes, others the reverse, and every mix in between.

use std::cell::Cell;

use crate::rng::Stream;

/// Which kinds of fault a run may draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSet {
    /// Every fault the current protocol (v1) is built to survive: lost, delayed, duplicated
    /// and reordered requests and answers; answers lost after the mailbox acted; 503s,
    /// outages and restarts of the mailbox; crashes and power losses of either client at any
    /// await point; storage failures; absences shorter than the mailbox's lifetime.
    Survivable,
    /// Everything: the above, plus a recipient away longer than the mailbox's lifetime, a
    /// client restored from an older snapshot of its records, and a squatter who photographed
    /// the invite. Protocol v1 cannot survive these (`docs/SIMULATION.md`).
    All,
    /// Only the restored-snapshot fault (with light network faults), to show the key reuse.
    Restore,
    /// Only the squatter, to show the silent stall.
    Squatter,
    /// Only absences longer than the mailbox's lifetime, to show the silent loss.
    Expiry,
}

impl FaultSet {
    /// Parses a `--faults` value.
    pub fn parse(text: &str) -> Option<FaultSet> {
        Some(match text {
            "survivable" => FaultSet::Survivable,
            "all" => FaultSet::All,
            "restore" => FaultSet::Restore,
            "squatter" => FaultSet::Squatter,
            "expiry" => FaultSet::Expiry,
            _ => return None,
        })
    }
}

/// A deliberately planted bug, to prove that the simulator catches what it claims to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// None: the code as it is.
    None,
    /// The store treats `Durability::Strict` as relaxed, so a power loss can roll a session
    /// back after its keys were used on the wire.
    RelaxedStrict,
    /// The store applies only the first write of a transaction that a crash interrupts.
    TornCommit,
}

/// The fault rates of one seed.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Whether faults are being injected now (false during set-up and the heal phase).
    pub active: Cell<bool>,
    /// A request is lost before it reaches the mailbox.
    pub request_loss: f64,
    /// The answer is lost after the mailbox acted.
    pub answer_loss: f64,
    /// The request reaches the mailbox twice.
    pub duplicate: f64,
    /// The request or its answer is slow (5–40 s, past the client's deadline at times).
    pub slow: f64,
    /// The mailbox answers 503 without acting.
    pub unavailable: f64,
    /// Base one-way latency, ms.
    pub latency_ms: u64,
    /// Number of mailbox outages (unreachable), each 5 s–20 min.
    pub outages: u64,
    /// Number of mailbox restarts (answers in flight lost, a few seconds down).
    pub restarts: u64,
    /// Mean time between crashes of each client, ms (0: none).
    pub crash_every_ms: u64,
    /// A crash is a power loss (relaxed commits lost) with this probability.
    pub power_loss: f64,
    /// At each storage await (a read, or a commit just before or just after it lands), the
    /// client crashes right there with this probability.
    pub crash_at_await: f64,
    /// A commit fails (storage full) with this probability.
    pub storage_failure: f64,
    /// Absences (app closed) per client.
    pub absences: u64,
    /// Longest absence, ms.
    pub absence_max_ms: u64,
    /// The mailbox's message lifetime, ms.
    pub ttl_ms: u64,
    /// Restores of a client from an older snapshot.
    pub restores: u64,
    /// Whether a squatter fills the addresses an invite photographer can derive.
    pub squatter: bool,
    /// The planted bug, if any.
    pub mutant: Mutant,
}

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

impl Faults {
    /// Draws the rates of one seed from `set`.
    pub fn draw(rng: &mut Stream, set: FaultSet, mutant: Mutant) -> Faults {
        let mut level = |rates: &[f64]| rng.pick(rates).unwrap_or(0.0);
        let survivable = matches!(set, FaultSet::Survivable | FaultSet::All);
        let mut faults = Faults {
            active: Cell::new(false),
            request_loss: level(&[0.0, 0.02, 0.2]),
            answer_loss: level(&[0.0, 0.02, 0.2]),
            duplicate: level(&[0.0, 0.05, 0.3]),
            slow: level(&[0.0, 0.02, 0.2]),
            unavailable: level(&[0.0, 0.05, 0.3]),
            latency_ms: 0,
            outages: 0,
            restarts: 0,
            crash_every_ms: 0,
            power_loss: level(&[0.0, 0.5, 1.0]),
            crash_at_await: 0.0,
            storage_failure: level(&[0.0, 0.01, 0.1]),
            absences: 0,
            absence_max_ms: 0,
            ttl_ms: 7 * 24 * HOUR,
            restores: 0,
            squatter: false,
            mutant,
        };
        faults.latency_ms = rng.range(2, 400);
        if survivable {
            faults.outages = rng.range(0, 4);
            faults.restarts = rng.range(0, 3);
            faults.crash_every_ms = match rng.range(0, 3) {
                0 => 0,
                1 => 30 * MINUTE,
                _ => 2 * MINUTE,
            };
            faults.crash_at_await = rng.pick(&[0.0, 0.005, 0.03]).unwrap_or(0.0);
            faults.absences = rng.range(0, 4);
            faults.absence_max_ms = 20 * MINUTE;
        } else {
            // The single-fault sets keep the network mildly faulty and nothing else.
            faults.unavailable = 0.0;
            faults.storage_failure = 0.0;
        }
        match set {
            FaultSet::Survivable => {}
            FaultSet::All => {
                faults.ttl_ms = rng.pick(&[10 * MINUTE, 7 * 24 * HOUR]).unwrap_or(HOUR);
                faults.absence_max_ms = 40 * MINUTE;
                faults.restores = rng.range(0, 3);
                faults.squatter = rng.chance(0.3);
            }
            FaultSet::Restore => faults.restores = rng.range(1, 3),
            FaultSet::Squatter => faults.squatter = true,
            FaultSet::Expiry => {
                faults.ttl_ms = 5 * MINUTE;
                faults.absences = rng.range(1, 3);
                faults.absence_max_ms = 40 * MINUTE;
            }
        }
        faults
    }

    /// Whether faults are being injected now.
    pub fn on(&self) -> bool {
        self.active.get()
    }
}

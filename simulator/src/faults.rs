//! Which faults a seed injects, and how often: drawn per seed (swarm testing), so that some
//! seeds have much loss and no crashes, others the reverse, and every mix in between.

use std::cell::Cell;

use crate::rng::Stream;

/// Which kinds of fault a run may draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSet {
    /// Every fault protocol v1 was already built to survive: lost, delayed, duplicated and
    /// reordered requests and answers; answers lost after the mailbox acted; 503s, outages
    /// and restarts of the mailbox; crashes and power losses of either client at any await
    /// point; storage failures; absences shorter than the mailbox's lifetime.
    Survivable,
    /// Everything (the fault mix of issue #10): the above, plus a recipient away longer than
    /// the mailbox's lifetime, clients restored from older snapshots of their records, and a
    /// squatter who photographed the invite.
    All,
    /// Only restores from an older snapshot (with light network faults).
    Restore,
    /// Only the squatter (with light network faults).
    Squatter,
    /// Only absences longer than the mailbox's lifetime (with light network faults).
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

    /// Its `--faults` name.
    pub fn name(self) -> &'static str {
        match self {
            FaultSet::Survivable => "survivable",
            FaultSet::All => "all",
            FaultSet::Restore => "restore",
            FaultSet::Squatter => "squatter",
            FaultSet::Expiry => "expiry",
        }
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

/// How often each fault actually struck in a run (or over many runs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Struck {
    /// Requests lost before the mailbox.
    pub requests_lost: u64,
    /// Answers lost after the mailbox acted.
    pub answers_lost: u64,
    /// Requests that reached the mailbox twice.
    pub duplicated: u64,
    /// Slow requests or answers (+5–40 s).
    pub slow: u64,
    /// 503 answers.
    pub unavailable: u64,
    /// Mailbox outages.
    pub outages: u64,
    /// Mailbox restarts.
    pub restarts: u64,
    /// Client crashes at a random time (at whatever await point the tasks were in).
    pub crashes: u64,
    /// Client crashes placed at a storage await.
    pub crashes_at_awaits: u64,
    /// Crashes that were power losses.
    pub power_losses: u64,
    /// Commits that failed (storage full).
    pub storage_failures: u64,
    /// Absences (the app closed).
    pub absences: u64,
    /// Absences longer than the mailbox's lifetime.
    pub absences_past_ttl: u64,
    /// Blobs that expired on the mailbox before anyone fetched them.
    pub expired_unread: u64,
    /// Clients restored from an older backup.
    pub restores: u64,
    /// Of those, restores that also rewound the client's random generator (a VM snapshot).
    pub rewound_rngs: u64,
    /// Squatters who stored junk at the hello address before the joiner's hello.
    pub squats_won: u64,
    /// Squatters who came too late (the hello was there first).
    pub squats_lost: u64,
}

impl Struck {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Struck) {
        self.requests_lost += other.requests_lost;
        self.answers_lost += other.answers_lost;
        self.duplicated += other.duplicated;
        self.slow += other.slow;
        self.unavailable += other.unavailable;
        self.outages += other.outages;
        self.restarts += other.restarts;
        self.crashes += other.crashes;
        self.crashes_at_awaits += other.crashes_at_awaits;
        self.power_losses += other.power_losses;
        self.storage_failures += other.storage_failures;
        self.absences += other.absences;
        self.absences_past_ttl += other.absences_past_ttl;
        self.expired_unread += other.expired_unread;
        self.restores += other.restores;
        self.rewound_rngs += other.rewound_rngs;
        self.squats_won += other.squats_won;
        self.squats_lost += other.squats_lost;
    }

    /// The tally as `name count` pairs, for reports.
    pub fn pairs(&self) -> [(&'static str, u64); 18] {
        [
            ("requests lost", self.requests_lost),
            ("answers lost", self.answers_lost),
            ("requests duplicated", self.duplicated),
            ("slow requests or answers", self.slow),
            ("503 answers", self.unavailable),
            ("mailbox outages", self.outages),
            ("mailbox restarts", self.restarts),
            ("client crashes", self.crashes),
            ("crashes at storage awaits", self.crashes_at_awaits),
            ("power losses", self.power_losses),
            ("failed commits", self.storage_failures),
            ("absences", self.absences),
            ("absences longer than the TTL", self.absences_past_ttl),
            ("blobs expired unread", self.expired_unread),
            ("restores from a backup", self.restores),
            ("restores that rewound the RNG", self.rewound_rngs),
            ("squatters first at the hello", self.squats_won),
            ("squatters too late", self.squats_lost),
        ]
    }
}

/// The fault rates of one seed.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Whether faults are being injected now (false during set-up and the heal phase).
    pub active: Cell<bool>,
    /// What struck so far.
    pub struck: Cell<Struck>,
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
    /// Restores of a client (either) from an older snapshot.
    pub restores: u64,
    /// Whether a squatter writes junk at the addresses an invite photographer can derive
    /// (with protocol v2: the hello's only).
    pub squatter: bool,
    /// The planted bug, if any.
    pub mutant: Mutant,
    /// Whether the clients delete what they read (`Client::set_delete_after_read`): in every
    /// seed without restored snapshots (a restored reader cannot fetch again what its lost
    /// copy read and deleted: the documented cost of the option).
    pub delete_after_read: bool,
    /// Whether the clients read part of their polls from subscription snapshots
    /// (`Client::poll_pushed`; `--pushes`): not drawn, so that a seed without it replays as
    /// before.
    pub pushes: bool,
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
            struck: Cell::new(Struck::default()),
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
            delete_after_read: false,
            pushes: false,
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
        faults.delete_after_read = faults.restores == 0;
        faults
    }

    /// Whether faults are being injected now.
    pub fn on(&self) -> bool {
        self.active.get()
    }

    /// Counts a fault that struck.
    pub fn strike(&self, which: impl FnOnce(&mut Struck)) {
        let mut struck = self.struck.get();
        which(&mut struck);
        self.struck.set(struck);
    }
}

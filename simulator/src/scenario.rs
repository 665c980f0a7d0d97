//! One seed's run: two people, a mailbox and the faults, in one thread.
//!
//! Alice invites, Bob joins; both write bursts of messages (some long enough for several
//! blobs) in both directions, go quiet, leave and come back, while the faults drawn for the
//! seed strike at random points. Then the faults stop (the heal phase) and the world runs on
//! for [`HEAL_MS`]; at the end every message must have reached the other person or be marked
//! as not delivered.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Context;

use client_core::{
    Client, ClientError, ConversationSummary, EndReason, HistoryEntry, KdfParams, Status,
};
use protocol::Invite;

use crate::events::Event;
use crate::faults::{FaultSet, Faults, Mutant};
use crate::invariants::{Violation, parse_text};
use crate::mailbox_host::{HttpRequest, MailboxHost};
use crate::platform::{InFlight, SimLocks, SimNet, SimPlatform, SimStore, describe};
use crate::rng::Stream;
use crate::world::World;

/// How long the world runs on after the faults stop, ms of virtual time: the recovery bound
/// of `docs/PROTOCOL.md` §8 ("Bounds"), 25 minutes. A sender checks an unacknowledged blob's
/// address at most every [`client_core::RETRANSMIT_AFTER_MS`], so a blob that expired while its
/// recipient was away is deposited again within that time. After a restore, a reader may
/// hold a blob behind numbers its restored sender abandoned for up to
/// [`client_core::ACTIVE_HOLD_MS`] while that sender deposits behind it, and a device that
/// cannot read the other's answers deposits its restore signal once that has stood
/// [`client_core::RETRANSMIT_AFTER_MS`]; then reading, the owed acknowledgement (2–40 s) and a
/// poll of the sender, within 5 more minutes. Runs that settle earlier end early.
pub const HEAL_MS: u64 =
    2 * client_core::RETRANSMIT_AFTER_MS + client_core::ACTIVE_HOLD_MS + 5 * 60_000;

/// How often the heal phase checks whether the run has settled, ms.
const SETTLE_EVERY_MS: u64 = 30_000;

/// The cheapest Argon2id parameters (RFC 9106 minimum): the vault is not what is simulated.
const FAST_KDF: KdfParams = KdfParams {
    m_kib: 8,
    t: 1,
    p: 1,
};

type Task = Pin<Box<dyn Future<Output = ()>>>;
/// A backup of a device: its durable records, its random generator then (if the app ran),
/// when it was taken, and the messages stored on the device then (`Device::stored`).
type Backup = (
    std::collections::BTreeMap<String, Vec<u8>>,
    Option<Stream>,
    u64,
    Vec<(u64, String)>,
);
/// A device's history and conversation summary at the end.
type Final = (Vec<HistoryEntry>, ConversationSummary);
type SimClient = Client<SimPlatform>;

/// What the app of one device shows and is doing; shared with its tasks.
#[derive(Default)]
struct Screen {
    /// Messages shown, received from the peer, in display order.
    shown: RefCell<Vec<String>>,
    /// The app has unlocked and loaded its history.
    ready: Cell<bool>,
    poll_running: Cell<bool>,
    flush_running: Cell<bool>,
    flush_again: Cell<bool>,
    flush_failures: Cell<u32>,
    foreground: Cell<bool>,
    /// The flush the client asked for (`flush_at_ms`), in virtual ms; 0: none pending.
    flush_timer: Cell<u64>,
    /// The last poll failed (the app flushes once the mailbox answers again).
    poll_failed: Cell<bool>,
}

/// What the run's tasks report as they go, for the figures.
#[derive(Default)]
struct Tally {
    /// Acknowledgement-only blobs deposited (flush outcomes).
    acks_sent: Cell<u64>,
    /// Blobs re-deposited because their address read empty (flush outcomes).
    retransmitted: Cell<u64>,
    /// Messages sent again after a lost read (flush outcomes).
    resent: Cell<u64>,
    /// Virtual time of the last message shown to its recipient.
    last_shown_ms: Cell<u64>,
    /// Virtual time at which the last message became *delivered* for its sender.
    last_delivered_ms: Cell<u64>,
}

/// The app's timer contract (`/work/v2-client-api.md`, "UI loop contract"): after a poll or a
/// flush that returned `flush_at_ms`, flush then (keeping an earlier timer if one is set).
fn flush_at(world: &World, screen: &Screen, device: usize, epoch: u64, at_epoch_ms: u64) {
    let at = at_epoch_ms
        .saturating_sub(crate::world::EPOCH_MS)
        .max(world.now());
    let pending = screen.flush_timer.get();
    if pending != 0 && pending >= world.now() && pending <= at {
        return;
    }
    screen.flush_timer.set(at);
    world.schedule(at, Event::FlushTick { device, epoch });
}

struct Device {
    name: &'static str,
    passphrase: &'static str,
    store: Rc<SimStore>,
    net_rng: Rc<RefCell<Stream>>,
    /// Which polls read a subscription snapshot instead, and which of its records arrive
    /// (`--pushes` only).
    push_rng: Stream,
    key_rng_seed: u64,
    client: Option<Rc<SimClient>>,
    epoch: u64,
    conversation: String,
    tasks: Vec<Task>,
    screen: Rc<Screen>,
    /// Messages this user has written so far (the next text's index).
    written: u64,
    /// Backups taken (oldest first), each with the state of the app's random generator at
    /// that moment (if it was running) and the time it was taken.
    snapshots: Vec<Backup>,
    /// Messages whose `send` returned `Ok` (stored on this device), with the time: each must
    /// be in this device's history at the end, unless a restore to an older backup undid it.
    stored: Rc<RefCell<Vec<(u64, String)>>>,
    /// The random generator the next run of the app starts from, if a restore rewound it (a
    /// VM snapshot: the generator gives again the bytes it gave after the backup).
    rewound_rng: Option<Stream>,
    /// Whether the app is running.
    running: bool,
    /// Restarts so far (a fresh random stream each time).
    starts: u64,
    /// Every message this device ever showed, in any run of the app (a restore may later
    /// lose some from its history: they were delivered all the same).
    ever_shown: Rc<RefCell<BTreeSet<String>>>,
    /// Messages this device showed and then lost from its history (a restore to an older
    /// backup, a power loss): their sender sends them again once it finds them read and never
    /// acknowledged (client-core `lost_reads`), after later ones, so they come back out of
    /// order. Filled at each start of the app, and with every message its sender sends
    /// again after finding it read (spent) and never acknowledged: a lost copy of this device
    /// read it, shown or (a part of it) not, so it too comes back after later ones.
    lost_shown: Rc<RefCell<BTreeSet<String>>>,
    /// Of those, the messages its sender reported putting back after a lost read (client-core
    /// `put_back`): reported when the flush that put them back ends, which the reader may
    /// already have read; an order violation seen during the run for one of them is judged at
    /// the end of the run.
    put_back: Rc<RefCell<BTreeSet<String>>>,
    /// Whether this device was restored from a backup.
    restored: bool,
    /// When it was last restored (ms of virtual time; 0 if never).
    restored_ms: u64,
    /// This user's messages that this device stored and then lost with a restore to an
    /// older backup (and that no later restore brought back): what its next messages are
    /// written without knowing ([`crate::invariants::Concurrent`]).
    forgotten: BTreeSet<u64>,
    /// Whether this device lost power (relaxed commits lost).
    lost_power: bool,
}

/// The outcome of one seed.
pub struct Outcome {
    /// Every invariant violated.
    pub violations: Vec<Violation>,
    /// Messages written.
    pub messages: u64,
    /// Messages shown to the other person.
    pub delivered: u64,
    /// Virtual time simulated, ms.
    pub simulated_ms: u64,
    /// The trace (empty unless tracing).
    pub trace: Vec<String>,
    /// Where crashes at await points struck.
    pub crash_sites: Vec<&'static str>,
    /// Faults that struck.
    pub struck: crate::Struck,
    /// What crossed the wire.
    pub wire: crate::Wire,
    /// How the messages ended.
    pub figures: crate::Figures,
    /// From the end of the faults to the last message shown or marked *delivered*, ms.
    pub recovery_ms: u64,
}

/// The simulation of one seed.
pub struct Simulation {
    seed: u64,
    world: Rc<World>,
    faults: Rc<Faults>,
    host: Rc<MailboxHost>,
    devices: Vec<Device>,
    user: Stream,
    in_flight: Rc<RefCell<Vec<Rc<InFlight>>>>,
    locks: Vec<Rc<RefCell<BTreeSet<String>>>>,
    invite: Option<Invite>,
    /// Violations seen so far by any task.
    violations: Rc<RefCell<Vec<Violation>>>,
    /// Which messages of each sender were written without knowing which earlier ones.
    concurrent: Rc<RefCell<crate::invariants::Concurrent>>,
    /// Where crashes at await points struck.
    crash_sites: Vec<&'static str>,
    /// Draws of the restores (whether one rewinds the random generator).
    restore_rng: Stream,
    /// What the tasks report.
    tally: Rc<Tally>,
    /// When the faults stopped (virtual ms; 0: not yet).
    healed_at: u64,
    /// Whether a squatter's junk was stored at the hello address.
    squatted: bool,
    /// When the user writes the last message.
    last_send_at: u64,
    /// The histories and conversations read by the current settle check.
    settle: Rc<RefCell<[Option<Final>; 2]>>,
}

const SITE: &str = "https://hush.example/";
const MAILBOX: &str = "https://mailbox.example";

impl Simulation {
    /// Sets up the world for `seed`.
    pub fn new(
        seed: u64,
        set: FaultSet,
        mutant: Mutant,
        options: crate::Options,
        tracing: bool,
    ) -> Simulation {
        let world = World::new(tracing);
        let mut fault_rng = Stream::new(seed, "faults");
        let mut faults = Faults::draw(&mut fault_rng, set, mutant);
        faults.pushes = options.pushes;
        faults.delete_after_read |= options.delete_after_read;
        let faults = Rc::new(faults);
        let host = Rc::new(MailboxHost::new(&world, faults.ttl_ms));
        let devices = ["alice", "bob"]
            .iter()
            .enumerate()
            .map(|(i, name)| Device {
                name,
                passphrase: if i == 0 {
                    "alice's passphrase"
                } else {
                    "bob's passphrase"
                },
                store: Rc::new(SimStore::new(
                    &world,
                    &faults,
                    i,
                    Stream::new(seed, &format!("{name}/store")),
                )),
                net_rng: Rc::new(RefCell::new(Stream::new(seed, &format!("{name}/net")))),
                push_rng: Stream::new(seed, &format!("{name}/push")),
                key_rng_seed: seed,
                client: None,
                epoch: 0,
                conversation: String::new(),
                tasks: Vec::new(),
                screen: Rc::new(Screen::default()),
                written: 0,
                snapshots: Vec::new(),
                rewound_rng: None,
                stored: Rc::default(),
                running: false,
                starts: 0,
                ever_shown: Rc::default(),
                lost_shown: Rc::default(),
                put_back: Rc::default(),
                forgotten: BTreeSet::new(),
                restored_ms: 0,
                restored: false,
                lost_power: false,
            })
            .collect();
        Simulation {
            seed,
            world,
            faults,
            host,
            devices,
            user: Stream::new(seed, "user"),
            in_flight: Rc::new(RefCell::new(Vec::new())),
            locks: vec![
                Rc::new(RefCell::new(BTreeSet::new())),
                Rc::new(RefCell::new(BTreeSet::new())),
            ],
            invite: None,
            violations: Rc::default(),
            concurrent: Rc::default(),
            crash_sites: Vec::new(),
            restore_rng: Stream::new(seed, "restores"),
            tally: Rc::default(),
            healed_at: 0,
            squatted: false,
            last_send_at: 0,
            settle: Rc::default(),
        }
    }

    fn log(&self, line: impl FnOnce() -> String) {
        self.world.trace.log(self.world.now(), line);
    }

    /// A fresh client for `device` over its records (a new run of the app).
    /// The page of `device` comes to the front or goes to the background, as the app tells
    /// its client: the one conversation is open, so it is the one being read while in front.
    fn set_foreground(&self, device: usize, foreground: bool) {
        let d = self.device(device);
        d.screen.foreground.set(foreground);
        if let Some(client) = &d.client {
            client.set_reading(foreground.then_some(d.conversation.as_str()));
        }
    }

    fn open_client(&mut self, device: usize) -> Rc<SimClient> {
        let world = self.world.clone();
        let faults = self.faults.clone();
        let in_flight = self.in_flight.clone();
        let host = self.host.clone();
        let locks = self.locks.get(device).cloned().unwrap_or_default();
        // Locks held by the previous run died with it.
        locks.borrow_mut().clear();
        let Some(d) = self.devices.get_mut(device) else {
            unreachable!("two devices")
        };
        d.starts += 1;
        let rng = d.rewound_rng.take().unwrap_or_else(|| {
            Stream::new(d.key_rng_seed, &format!("{}/keys/{}", d.name, d.starts))
        });
        let platform = SimPlatform {
            world: world.clone(),
            store: d.store.clone(),
            net: SimNet::new(
                &world,
                &host,
                &faults,
                device,
                d.name,
                d.net_rng.clone(),
                in_flight,
            ),
            locks: SimLocks::new(&world, locks),
            rng: RefCell::new(rng),
            skew_ms: Cell::new(0),
        };
        let client = Rc::new(Client::new(platform));
        client.set_delete_after_read(self.faults.delete_after_read);
        d.client = Some(client.clone());
        d.epoch += 1;
        d.running = true;
        client
    }

    fn device(&self, device: usize) -> &Device {
        match self.devices.get(device) {
            Some(d) => d,
            None => unreachable!("two devices"),
        }
    }

    fn device_mut(&mut self, device: usize) -> &mut Device {
        match self.devices.get_mut(device) {
            Some(d) => d,
            None => unreachable!("two devices"),
        }
    }

    fn spawn(&mut self, device: usize, task: impl Future<Output = ()> + 'static) {
        self.device_mut(device).tasks.push(Box::pin(task));
    }

    /// Polls every task until nothing moves any more.
    fn run_tasks(&mut self) {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        loop {
            let before = self.world.progress();
            for device in &mut self.devices {
                let mut i = 0;
                while i < device.tasks.len() {
                    let done = match device.tasks.get_mut(i) {
                        Some(task) => task.as_mut().poll(&mut cx).is_ready(),
                        None => false,
                    };
                    if done {
                        drop(device.tasks.swap_remove(i));
                        self.world.bump();
                    } else {
                        i += 1;
                    }
                }
            }
            for (device, site) in self.world.take_crashes() {
                if self.device(device).running {
                    let power = self.user.chance(self.faults.power_loss);
                    self.log(|| {
                        format!(
                            "{} crashes at an await point: {site}",
                            self.device(device).name
                        )
                    });
                    self.crash_sites.push(site);
                    self.faults.strike(|s| {
                        s.crashes_at_awaits += 1;
                        s.power_losses += u64::from(power);
                    });
                    self.crash(device, power);
                    let back = self.user.range(500, 60_000);
                    self.world
                        .schedule(self.world.now() + back, Event::Start { device });
                }
            }
            if self.world.progress() == before {
                break;
            }
        }
    }

    /// Runs the whole seed.
    pub fn run(mut self) -> Outcome {
        self.set_up();
        self.schedule_story();
        loop {
            self.run_tasks();
            let Some(event) = self.next_event() else {
                break;
            };
            if matches!(event, Event::End) {
                break;
            }
            self.handle(event);
        }
        self.finish()
    }

    fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.world.due_event() {
                return Some(event);
            }
            if !self.world.advance() {
                return None;
            }
            // Time moved: let tasks whose timers are due run before the next event.
            self.run_tasks();
        }
    }

    /// Vaults, the invite and the join, with no faults and no network.
    fn set_up(&mut self) {
        let alice = self.open_client(0);
        let bob = self.open_client(1);
        let link: Rc<RefCell<Option<(String, String)>>> = Rc::default();
        let out = link.clone();
        let a = alice.clone();
        self.spawn(0, async move {
            if a.create_vault("alice's passphrase", FAST_KDF).await.is_ok()
                && let Ok(made) = a.create_invite(SITE, MAILBOX, "Bob").await
            {
                *out.borrow_mut() = Some(made);
            }
        });
        self.run_tasks();
        let mut guard = 0;
        while link.borrow().is_none() && guard < 1000 {
            self.world.advance();
            self.run_tasks();
            guard += 1;
        }
        let Some((alice_conv, link_text)) = link.borrow().clone() else {
            unreachable!("set-up has no faults")
        };
        self.invite = Invite::from_link_fragment(link_text.rsplit('#').next().unwrap_or("")).ok();
        let joined: Rc<RefCell<Option<String>>> = Rc::default();
        let out = joined.clone();
        self.spawn(1, async move {
            if bob.create_vault("bob's passphrase", FAST_KDF).await.is_ok()
                && let Ok(id) = bob.join(&link_text, MAILBOX, "Alice").await
            {
                *out.borrow_mut() = Some(id);
            }
        });
        self.run_tasks();
        while joined.borrow().is_none() && guard < 2000 {
            self.world.advance();
            self.run_tasks();
            guard += 1;
        }
        let bob_conv = joined.borrow().clone().unwrap_or_default();
        self.device_mut(0).conversation = alice_conv;
        self.device_mut(1).conversation = bob_conv;
        for device in 0..2 {
            self.device(device).screen.ready.set(true);
            self.set_foreground(device, true);
            let epoch = self.device(device).epoch;
            self.world
                .schedule(self.world.now(), Event::PollTick { device, epoch });
            self.world
                .schedule(self.world.now(), Event::FlushTick { device, epoch });
        }
        self.faults.active.set(true);
        self.log(|| "set-up done: alice invited, bob joined".to_owned());
    }

    /// Schedules the user's messages and every fault of this seed.
    fn schedule_story(&mut self) {
        let start = self.world.now();
        let active = self.user.range(5, 26) * 60_000;
        let heal = start + active;
        for device in 0..2 {
            // Bursts of messages at random times.
            let bursts = self.user.range(1, 6);
            for _ in 0..bursts {
                let at = start + self.user.range(0, active);
                let count = self.user.range(1, 12);
                for k in 0..count {
                    let gap = self.user.range(200, 20_000);
                    self.world.schedule(at + k * gap, Event::Send { device });
                    self.last_send_at = self.last_send_at.max(at + k * gap);
                }
            }
            // Page visibility changes.
            for _ in 0..self.user.range(0, 4) {
                let at = start + self.user.range(0, active);
                let foreground = self.user.chance(0.5);
                self.world
                    .schedule(at, Event::Visibility { device, foreground });
            }
        }
        let mut fault_rng = Stream::new(self.seed, "fault-times");
        for device in 0..2 {
            if self.faults.crash_every_ms > 0 {
                let mut at = start + fault_rng.range(0, self.faults.crash_every_ms * 2);
                while at < heal {
                    self.world.schedule(at, Event::Crash { device });
                    at += fault_rng.range(1, self.faults.crash_every_ms * 2);
                }
            }
            for _ in 0..self.faults.absences {
                let at = start + fault_rng.range(0, active);
                let for_ms = fault_rng.range(10_000, self.faults.absence_max_ms.max(10_001));
                self.world.schedule(at, Event::Leave { device, for_ms });
            }
        }
        // Restores strike one client or the other (or one of them twice).
        let mut restore_times = Stream::new(self.seed, "restore-times");
        for _ in 0..self.faults.restores {
            let device = restore_times.range(0, 2) as usize;
            let taken = start + restore_times.range(0, active / 2);
            let restored = taken + restore_times.range(1_000, active / 2);
            self.world.schedule(taken, Event::Snapshot { device });
            self.world.schedule(restored, Event::Restore { device });
        }
        for _ in 0..self.faults.outages {
            let at = start + fault_rng.range(0, active);
            let for_ms = fault_rng.range(5_000, 20 * 60_000);
            self.world.schedule(at, Event::OutageStart);
            self.world
                .schedule((at + for_ms).min(heal), Event::OutageEnd);
        }
        for _ in 0..self.faults.restarts {
            let at = start + fault_rng.range(0, active);
            self.world.schedule(at, Event::MailboxRestart);
        }
        if self.faults.squatter {
            // Half the squatters are there before the joiner's hello lands; the others come
            // later. Each keeps trying every 1–10 minutes (a hello that expired unread and
            // is deposited again is another chance).
            let mut squat_rng = Stream::new(self.seed, "squatter-times");
            let mut at = if squat_rng.chance(0.5) {
                start
            } else {
                start + squat_rng.range(0, active)
            };
            while at < heal {
                self.world.schedule(at, Event::Squat);
                at += squat_rng.range(60_000, 10 * 60_000);
            }
        }
        self.world.schedule(heal, Event::Heal);
        self.world.schedule(heal + HEAL_MS, Event::End);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrive(flight) => self.arrive(&flight),
            Event::Send { device } => self.user_sends(device),
            Event::PollTick { device, epoch } => self.poll_tick(device, epoch),
            Event::FlushTick { device, epoch } => self.flush_tick(device, epoch),
            Event::Crash { device } => {
                if self.faults.on() && self.device(device).running {
                    let power = self.user.chance(self.faults.power_loss);
                    self.faults.strike(|s| {
                        s.crashes += 1;
                        s.power_losses += u64::from(power);
                    });
                    self.crash(device, power);
                    let back = self.user.range(500, 60_000);
                    self.world
                        .schedule(self.world.now() + back, Event::Start { device });
                }
            }
            Event::Leave { device, for_ms } => {
                if self.faults.on() && self.device(device).running {
                    self.log(|| {
                        format!(
                            "{} leaves for {} s",
                            self.device(device).name,
                            for_ms / 1000
                        )
                    });
                    let past_ttl = for_ms > self.faults.ttl_ms;
                    self.faults.strike(|s| {
                        s.absences += 1;
                        s.absences_past_ttl += u64::from(past_ttl);
                    });
                    self.crash(device, false);
                    self.world
                        .schedule(self.world.now() + for_ms, Event::Start { device });
                }
            }
            Event::Start { device } => self.start(device),
            Event::Visibility { device, foreground } => self.set_foreground(device, foreground),
            Event::OutageStart => {
                self.faults.strike(|s| s.outages += 1);
                self.log(|| "mailbox down".to_owned());
                self.host.down.set(true);
            }
            Event::OutageEnd => {
                self.log(|| "mailbox up".to_owned());
                self.host.down.set(false);
            }
            Event::MailboxRestart => self.mailbox_restart(),
            Event::Snapshot { device } => {
                let d = self.device(device);
                let snapshot = d.store.snapshot();
                let rng = d
                    .client
                    .as_ref()
                    .filter(|_| d.running)
                    .map(|c| c.platform().rng.borrow().clone());
                let stored = d.stored.borrow().clone();
                self.log(|| format!("backup of {} taken", self.device(device).name));
                let now = self.world.now();
                self.device_mut(device)
                    .snapshots
                    .push((snapshot, rng, now, stored));
            }
            Event::Restore { device } => {
                if self.faults.on() && !self.device(device).snapshots.is_empty() {
                    let (snapshot, rng, _, stored) = self.device_mut(device).snapshots.remove(0);
                    // What was stored after the backup is gone with the restore; what the
                    // backup holds is back (also what an earlier restore had lost).
                    let index = |text: &String| crate::invariants::parse_text(text).map(|(_, i)| i);
                    let d = self.device_mut(device);
                    let lost: Vec<u64> = d
                        .stored
                        .borrow()
                        .iter()
                        .filter(|(_, t)| !stored.iter().any(|(_, b)| b == t))
                        .filter_map(|(_, t)| index(t))
                        .collect();
                    d.forgotten.extend(lost);
                    for (_, text) in &stored {
                        if let Some(i) = index(text) {
                            d.forgotten.remove(&i);
                        }
                    }
                    *d.stored.borrow_mut() = stored;
                    // Half the restores are of a whole machine (a VM snapshot): the random
                    // generator gives again the bytes it gave after the backup.
                    let rewind = rng.is_some() && self.restore_rng.chance(0.5);
                    self.faults.strike(|s| {
                        s.restores += 1;
                        s.rewound_rngs += u64::from(rewind);
                    });
                    self.log(|| {
                        format!(
                            "{} restored from an older backup{}",
                            self.device(device).name,
                            if rewind {
                                ", its random generator rewound"
                            } else {
                                ""
                            }
                        )
                    });
                    self.crash(device, false);
                    self.device_mut(device).rewound_rng = if rewind { rng } else { None };
                    self.device_mut(device).restored = true;
                    self.device_mut(device).restored_ms = self.world.now();
                    self.device(device).store.restore(&snapshot);
                    self.world
                        .schedule(self.world.now() + 1_000, Event::Start { device });
                }
            }
            Event::Squat => self.squat(),
            Event::Heal => self.heal(),
            Event::SettleCheck => self.settle_check(),
            Event::End => {}
        }
    }

    fn arrive(&mut self, flight: &Rc<InFlight>) {
        let unavailable = self.faults.on()
            && self
                .device(flight.device)
                .net_rng
                .borrow_mut()
                .chance(self.faults.unavailable);
        let answer = if unavailable && !self.host.down.get() {
            self.faults.strike(|s| s.unavailable += 1);
            crate::mailbox_host::Answer::Http {
                status: 503,
                body: b"overloaded".to_vec(),
            }
        } else {
            self.host.serve(&flight.request, Some(flight.device))
        };
        let name = self.device(flight.device).name;
        self.log(|| {
            let what = describe(&flight.request);
            let status = match &answer {
                crate::mailbox_host::Answer::Unreachable => "unreachable".to_owned(),
                crate::mailbox_host::Answer::Http { status, .. } => status.to_string(),
            };
            let lost = if flight.lose_answer {
                " (answer lost)"
            } else {
                ""
            };
            format!("mailbox: {name} {what} → {status}{lost}")
        });
        if !flight.lose_answer {
            self.host.answered(&answer);
            let when = self.world.now() + flight.answer_latency;
            *flight.reply.borrow_mut() = Some((when, answer));
            self.world.wake_at(when);
            self.world.bump();
        }
    }

    fn mailbox_restart(&mut self) {
        self.log(|| "mailbox restarts: answers in flight lost".to_owned());
        self.faults.strike(|s| s.restarts += 1);
        let now = self.world.now();
        let mut flights = self.in_flight.borrow_mut();
        for flight in flights.iter() {
            let mut reply = flight.reply.borrow_mut();
            if reply.as_ref().is_some_and(|(when, _)| *when > now) {
                *reply = None;
            }
        }
        flights.retain(|f| f.reply.borrow().is_none());
        drop(flights);
        self.host.down.set(true);
        let back = now + self.user.range(500, 10_000);
        self.world.schedule(back, Event::OutageEnd);
    }

    /// The squatter who photographed the invite writes junk wherever it can. With protocol
    /// v2 that is only the hello's address (message 0 of the joiner's first chain, keyed by
    /// the invite alone); every later address needs `DH(a1, B0)`. Junk there first means the
    /// joiner's hello is refused: the joiner must be told that the invite was taken.
    fn squat(&mut self) {
        let Some(invite) = &self.invite else {
            return;
        };
        let keys = protocol::testing::invite_photographer_write_keys(invite);
        let mut junk = Stream::new(self.seed, &format!("squatter/{}", self.world.now()));
        let mut stored = 0;
        let count = keys.len();
        for key in keys {
            let mut blob = vec![0u8; protocol::BLOB_LEN];
            junk.fill(&mut blob);
            let request = HttpRequest {
                method: "PUT",
                path: format!("/v1/m/{}", mailbox::hex::encode_32(&key.address().0)),
                write_key: Some(mailbox::hex::encode_32(&key.0)),
                put_back: false,
                body: blob,
            };
            if matches!(
                self.host.serve(&request, None),
                crate::mailbox_host::Answer::Http { status: 201, .. }
            ) {
                stored += 1;
            }
        }
        if stored > 0 && !self.squatted {
            self.squatted = true;
            self.faults.strike(|s| s.squats_won += 1);
        }
        self.log(|| {
            format!(
                "squatter writes junk at the {count} addresses the invite gives: {stored} stored"
            )
        });
    }

    fn heal(&mut self) {
        self.log(|| "faults stop: heal phase".to_owned());
        self.healed_at = self.world.now();
        let first_check = (self.world.now() + SETTLE_EVERY_MS).max(self.last_send_at + 60_000);
        self.world.schedule(first_check, Event::SettleCheck);
        self.faults.active.set(false);
        self.host.down.set(false);
        for device in 0..2 {
            self.set_foreground(device, true);
            if !self.device(device).running {
                self.world
                    .schedule(self.world.now(), Event::Start { device });
            }
        }
    }

    /// Ends the run early if it has settled (see [`Event::SettleCheck`]): both apps running,
    /// both conversations joined, every message in either history on the other person's
    /// screen and *delivered* on its sender's. From there a fault-free world only polls empty addresses, so the rest of the
    /// heal phase could change nothing the final checks look at.
    fn settle_check(&mut self) {
        let settled = {
            let histories = self.settle.borrow();
            (0..2).all(|device| {
                let peer_saw = self.device(1 - device).ever_shown.borrow();
                histories
                    .get(device)
                    .and_then(Option::as_ref)
                    .is_some_and(|(h, summary)| {
                        summary.joined
                            && !summary.connecting
                            && h.iter().filter(|e| e.outgoing).all(|e| {
                                e.status == Status::Delivered && peer_saw.contains(&e.text)
                            })
                    })
            })
        };
        if settled {
            self.log(|| "settled: every message delivered, the heal phase ends early".to_owned());
            self.world.schedule(self.world.now(), Event::End);
            return;
        }
        *self.settle.borrow_mut() = [None, None];
        for device in 0..2 {
            let d = self.device(device);
            if !d.running || !d.screen.ready.get() {
                continue;
            }
            let Some(client) = d.client.clone() else {
                continue;
            };
            let conversation = d.conversation.clone();
            let out = self.settle.clone();
            self.spawn(device, async move {
                if let Ok(history) = client.history(&conversation).await
                    && let Ok(summary) = client.conversation_summary(&conversation).await
                    && let Some(slot) = out.borrow_mut().get_mut(device)
                {
                    *slot = Some((history, summary));
                }
            });
        }
        // The verdict on what was read comes with the next check.
        self.world
            .schedule(self.world.now() + SETTLE_EVERY_MS, Event::SettleCheck);
    }

    /// The app dies at whatever await point each of its tasks is in.
    fn crash(&mut self, device: usize, power_loss: bool) {
        let d = self.device_mut(device);
        if !d.running {
            return;
        }
        let tasks = std::mem::take(&mut d.tasks);
        let pending = tasks.len();
        drop(tasks);
        d.client = None;
        d.running = false;
        d.screen = Rc::new(Screen::default());
        if power_loss {
            d.store.power_loss();
            d.lost_power = true;
        }
        let name = d.name;
        self.world.bump();
        self.log(|| {
            format!(
                "{name} {} ({pending} operations in flight dropped)",
                if power_loss { "loses power" } else { "crashes" }
            )
        });
    }

    /// The app starts: unlock, load the history, then poll and flush.
    fn start(&mut self, device: usize) {
        if self.device(device).running {
            return;
        }
        let client = self.open_client(device);
        let d = self.device(device);
        let (name, passphrase, conversation, epoch) =
            (d.name, d.passphrase, d.conversation.clone(), d.epoch);
        let screen = d.screen.clone();
        let ever_shown = d.ever_shown.clone();
        let lost_shown = d.lost_shown.clone();
        let concurrent = self.concurrent.clone();
        self.set_foreground(device, true);
        let world = self.world.clone();
        let violations = self.violations.clone();
        self.log(|| format!("{name} opens the app"));
        self.spawn(device, async move {
            let loaded = async {
                client.unlock(passphrase).await?;
                client.history(&conversation).await
            }
            .await;
            match loaded {
                Ok(history) => {
                    let mut shown = Vec::new();
                    for entry in history.iter().filter(|e| !e.outgoing) {
                        shown.push(entry.text.clone());
                    }
                    lost_shown.borrow_mut().extend(
                        ever_shown
                            .borrow()
                            .iter()
                            .filter(|t| !shown.contains(t))
                            .cloned(),
                    );
                    if let Some(v) = crate::invariants::check_order(
                        name,
                        &shown,
                        &lost_shown.borrow(),
                        &concurrent.borrow(),
                    ) {
                        violations.borrow_mut().push(v);
                    }
                    ever_shown.borrow_mut().extend(shown.iter().cloned());
                    *screen.shown.borrow_mut() = shown;
                    screen.ready.set(true);
                    world.schedule(world.now(), Event::PollTick { device, epoch });
                    world.schedule(world.now(), Event::FlushTick { device, epoch });
                    // The app asks once when the client wants its next flush (an owed
                    // acknowledgement, a retransmission check).
                    if let Ok(Some(at)) = client.next_flush_ms().await {
                        flush_at(&world, &screen, device, epoch, at);
                    }
                }
                Err(ClientError::Storage(_)) => {
                    // A transient read failure: the app offers to retry.
                    world.schedule(world.now() + 1_000, Event::Start { device });
                }
                Err(err) => violations.borrow_mut().push(Violation::StateFailedToLoad {
                    device: name,
                    error: err.to_string(),
                }),
            }
        });
    }

    fn user_sends(&mut self, device: usize) {
        let d = self.device(device);
        if !d.running || !d.screen.ready.get() {
            return;
        }
        let Some(client) = d.client.clone() else {
            return;
        };
        let (index, name) = (d.written, d.name);
        let long = self.user.chance(0.1);
        let len = if long {
            self.user.range(900, 4_000)
        } else {
            self.user.range(0, 200)
        } as usize;
        let mut text = format!("{name}{index:05}|");
        while text.len() < len {
            text.push(char::from(b'a' + (self.user.range(0, 26) as u8)));
        }
        self.device_mut(device).written += 1;
        let d = self.device(device);
        if !d.forgotten.is_empty() {
            self.concurrent
                .borrow_mut()
                .insert((name.to_owned(), index), d.forgotten.clone());
        }
        let (name, conversation, epoch) = (d.name, d.conversation.clone(), d.epoch);
        let world = self.world.clone();
        let stored = d.stored.clone();
        self.log(|| format!("{name} writes message {index} ({} bytes)", text.len()));
        self.spawn(device, async move {
            match client.send(&conversation, &text).await {
                Ok(seq) => {
                    stored.borrow_mut().push((world.now(), text.clone()));
                    world.trace.log(world.now(), || {
                        format!("{name}: message {index} encrypted and stored as entry {seq}")
                    });
                    world.schedule(world.now(), Event::FlushTick { device, epoch });
                }
                Err(err) => world.trace.log(world.now(), || {
                    format!("{name}: message {index} not sent: {err} (the user is told)")
                }),
            }
        });
    }

    /// A poll tick: the app's timed poll (or, with `--pushes`, at times a subscription's
    /// snapshot read with [`Client::poll_pushed`]).
    fn poll_tick(&mut self, device: usize, epoch: u64) {
        let d = self.device(device);
        if d.epoch != epoch || !d.running || d.screen.poll_running.get() {
            return;
        }
        let Some(client) = d.client.clone() else {
            return;
        };
        let screen = d.screen.clone();
        let ever_shown = d.ever_shown.clone();
        let lost_shown = d.lost_shown.clone();
        let concurrent = self.concurrent.clone();
        let (name, conversation) = (d.name, d.conversation.clone());
        let world = self.world.clone();
        let violations = self.violations.clone();
        let tally = self.tally.clone();
        // With `--pushes`, half the polls read what a subscription would push instead: the
        // snapshot of the watch set, of which each record arrives with probability 3/4 (the
        // rest were pushed to another tab, or lost with a socket), in a shuffled order.
        let push = if self.faults.pushes {
            let rng = &mut self.device_mut(device).push_rng;
            rng.chance(0.5).then(|| rng.u64())
        } else {
            None
        };
        screen.poll_running.set(true);
        self.spawn(device, async move {
            let result = match push {
                Some(seed) => {
                    world.trace.log(world.now(), || {
                        format!("{name} reads a subscription snapshot")
                    });
                    poll_snapshot(&client, &conversation, seed).await
                }
                None => client.poll(&conversation).await,
            };
            match result {
                Ok(outcome) => {
                    if let Some(at) = outcome.flush_at_ms {
                        flush_at(&world, &screen, device, epoch, at);
                    }
                    if !outcome.delivered.is_empty() {
                        tally.last_delivered_ms.set(world.now());
                        world.trace.log(world.now(), || {
                            format!(
                                "{name} sees entries {:?} delivered to the other person",
                                outcome.delivered
                            )
                        });
                    }
                    if outcome.notice {
                        world
                            .trace
                            .log(world.now(), || format!("{name} is shown a notice"));
                    }
                    if !outcome.messages.is_empty() {
                        world.trace.log(world.now(), || {
                            let which: Vec<String> = outcome
                                .messages
                                .iter()
                                .map(|m| {
                                    crate::invariants::parse_text(&m.text)
                                        .map_or_else(|| "?".to_owned(), |(s, i)| format!("{s}#{i}"))
                                })
                                .collect();
                            format!("{name} shows {}", which.join(" "))
                        });
                        tally.last_shown_ms.set(world.now());
                        ever_shown
                            .borrow_mut()
                            .extend(outcome.messages.iter().map(|m| m.text.clone()));
                        let mut shown = screen.shown.borrow_mut();
                        shown.extend(outcome.messages.iter().map(|m| m.text.clone()));
                        if let Some(v) = crate::invariants::check_order(
                            name,
                            &shown,
                            &lost_shown.borrow(),
                            &concurrent.borrow(),
                        ) {
                            violations.borrow_mut().push(v);
                        }
                    }
                    // Shown: the app deletes what the poll read (delete after read on).
                    if outcome.deletes_owed > 0 {
                        client.delete_read(&conversation).await;
                    }
                    // The app flushes at once when the mailbox answers again after failing
                    // (and after a join, to show "connected"); blobs still pending otherwise
                    // wait for the flush back-off, also after a poll that failed.
                    if outcome.joined || screen.poll_failed.get() {
                        world.schedule(world.now(), Event::FlushTick { device, epoch });
                    }
                    screen.poll_failed.set(false);
                }
                Err(err) => {
                    screen.poll_failed.set(true);
                    world
                        .trace
                        .log(world.now(), || format!("{name}: poll failed: {err}"));
                }
            }
            screen.poll_running.set(false);
            let delay = client.poll_delay_ms(screen.foreground.get(), true);
            world.schedule(
                world.now() + u64::from(delay),
                Event::PollTick { device, epoch },
            );
        });
    }

    fn flush_tick(&mut self, device: usize, epoch: u64) {
        let d = self.device(device);
        if d.epoch != epoch || !d.running {
            return;
        }
        if d.screen.flush_running.get() {
            d.screen.flush_again.set(true);
            return;
        }
        let Some(client) = d.client.clone() else {
            return;
        };
        let screen = d.screen.clone();
        let name = d.name;
        let world = self.world.clone();
        let tally = self.tally.clone();
        let peer_lost = self.device(1 - device).lost_shown.clone();
        let peer_put_back = self.device(1 - device).put_back.clone();
        if screen.flush_timer.get() <= world.now() {
            screen.flush_timer.set(0);
        }
        screen.flush_running.set(true);
        self.spawn(device, async move {
            loop {
                screen.flush_again.set(false);
                let pending = match client.flush().await {
                    Ok(outcome) => {
                        world.trace.log(world.now(), || {
                            format!(
                                "{name} flush: {} stored, {} pending, {} conflicts, {} acknowledgements, {} retransmitted, {} sent again after a lost read, {} put back",
                                outcome.delivered,
                                outcome.pending,
                                outcome.conflicts,
                                outcome.acks_sent,
                                outcome.retransmitted,
                                outcome.resent.len(),
                                outcome.put_back
                            )
                        });
                        tally
                            .acks_sent
                            .set(tally.acks_sent.get() + u64::from(outcome.acks_sent));
                        tally
                            .retransmitted
                            .set(tally.retransmitted.get() + u64::from(outcome.retransmitted));
                        tally
                            .resent
                            .set(tally.resent.get() + outcome.resent.len() as u64);
                        peer_lost.borrow_mut().extend(
                            outcome
                                .resent
                                .iter()
                                .chain(&outcome.put_back_messages)
                                .map(|e| e.text.clone()),
                        );
                        peer_put_back
                            .borrow_mut()
                            .extend(outcome.put_back_messages.iter().map(|e| e.text.clone()));
                        if let Some(at) = outcome.flush_at_ms {
                            flush_at(&world, &screen, device, epoch, at);
                        }
                        // The app polls at once a conversation whose held-back messages can
                        // now be sealed (`FlushOutcome::poll_now`).
                        if !outcome.poll_now.is_empty() {
                            world.schedule(world.now(), Event::PollTick { device, epoch });
                        }
                        outcome.pending > 0
                    }
                    Err(_) => true,
                };
                if pending {
                    // The app's back-off (`FLUSH_BACKOFF` in www/app.js): 1.5, 3, 5, 8 s.
                    let failures = screen.flush_failures.get();
                    let wait = [1_500, 3_000, 5_000, 8_000]
                        .get(failures as usize)
                        .copied()
                        .unwrap_or(8_000);
                    screen.flush_failures.set(failures + 1);
                    world.schedule(world.now() + wait, Event::FlushTick { device, epoch });
                } else {
                    screen.flush_failures.set(0);
                }
                if !screen.flush_again.get() {
                    break;
                }
            }
            screen.flush_running.set(false);
        });
    }

    /// After the heal phase: read both histories and conversations, and check every
    /// invariant.
    fn finish(mut self) -> Outcome {
        let mut violations: Vec<Violation> = Vec::new();
        for reuse in self.host.reuses.borrow().iter() {
            violations.push(Violation::KeyReuse {
                device: self.device(reuse.device).name,
                address: reuse.address,
                equal_bytes: reuse.equal_bytes,
            });
        }
        // Final histories and conversation summaries, read by each running app.
        let finals: Rc<RefCell<[Option<Final>; 2]>> = Rc::default();
        for device in 0..2 {
            if !self.device(device).running || !self.device(device).screen.ready.get() {
                violations.push(Violation::NotRunningAtEnd {
                    device: self.device(device).name,
                });
                continue;
            }
            let Some(client) = self.device(device).client.clone() else {
                continue;
            };
            let conversation = self.device(device).conversation.clone();
            let out = finals.clone();
            let violations = self.violations.clone();
            let name = self.device(device).name;
            self.spawn(device, async move {
                let read = async {
                    let history = client.history(&conversation).await?;
                    let summary = client.conversation_summary(&conversation).await?;
                    Ok::<_, ClientError>((history, summary))
                }
                .await;
                match read {
                    Ok(read) => {
                        if let Some(slot) = out.borrow_mut().get_mut(device) {
                            *slot = Some(read);
                        }
                    }
                    Err(err) => violations.borrow_mut().push(Violation::StateFailedToLoad {
                        device: name,
                        error: err.to_string(),
                    }),
                }
            });
        }
        let end = self.world.now() + 60_000;
        while self.world.now() < end
            && finals.borrow().iter().filter(|h| h.is_some()).count()
                < self.devices.iter().filter(|d| d.running).count()
        {
            self.run_tasks();
            if let Some(event) = self.world.due_event() {
                if !matches!(event, Event::End) {
                    self.handle(event);
                }
                continue;
            }
            if !self.world.advance() {
                break;
            }
        }
        // An order violation seen as the run went on, of a message its sender reported putting
        // back after a lost read only later (the report comes with the end of the flush whose
        // PUTs the reader may already have read): judged by what the run knows at its end, as
        // a message sent again is (`docs/PROTOCOL.md` §8, "Read and lost"). The whole history
        // is checked again below with that knowledge, so no later violation hides behind it.
        violations.extend(
            self.violations
                .borrow()
                .iter()
                .filter(|v| match v {
                    Violation::Order { device, text } => !(0..2).any(|d| {
                        self.device(d).name == *device
                            && self.device(d).put_back.borrow().contains(text)
                    }),
                    _ => true,
                })
                .cloned(),
        );
        for device in 0..2 {
            let running = self.device(device).running;
            if running && finals.borrow().get(device).is_none_or(Option::is_none) {
                violations.push(Violation::StateFailedToLoad {
                    device: self.device(device).name,
                    error: "the final history was not read within a minute".to_owned(),
                });
            }
        }
        let finals = finals.borrow();
        let mut figures = crate::Figures {
            ack_blobs: self.tally.acks_sent.get(),
            retransmitted: self.tally.retransmitted.get(),
            resent_lost_reads: self.tally.resent.get(),
            ..crate::Figures::default()
        };
        let mut messages = 0;
        let mut delivered = 0;
        for sender in 0..2 {
            let receiver = 1 - sender;
            let (Some(Some((sent, summary))), Some(Some((got, _)))) =
                (finals.get(sender), finals.get(receiver))
            else {
                continue;
            };
            let name = self.device(sender).name;
            let received: BTreeSet<&str> = got
                .iter()
                .filter(|e| !e.outgoing)
                .map(|e| e.text.as_str())
                .collect();
            let own: BTreeSet<&str> = sent
                .iter()
                .filter(|e| e.outgoing)
                .map(|e| e.text.as_str())
                .collect();
            // Durability: a message the app was told is stored stays in the history.
            for (_, text) in self.device(sender).stored.borrow().iter() {
                if !own.contains(text.as_str()) {
                    violations.push(Violation::Vanished {
                        sender: name,
                        index: parse_text(text).map_or(0, |(_, i)| i),
                    });
                }
            }
            let restored_ms = self.device(receiver).restored_ms;
            let written_before_restore = |text: &str| {
                restored_ms > 0
                    && self
                        .device(sender)
                        .stored
                        .borrow()
                        .iter()
                        .any(|(at, t)| t == text && *at < restored_ms)
            };
            // Messages the other person has that their sender's device lost (a restore).
            figures.lost_copy_messages += received.difference(&own).count() as u64;
            let ever_shown = self.device(receiver).ever_shown.borrow();
            for entry in sent.iter().filter(|e| e.outgoing) {
                messages += 1;
                let index = parse_text(&entry.text).map_or(0, |(_, i)| i);
                if !received.contains(entry.text.as_str()) && ever_shown.contains(&entry.text) {
                    // Shown on the receiver, then lost with its own restore to an older backup:
                    // delivered all the same.
                    delivered += 1;
                    figures.lost_by_receiver_restore += 1;
                    if entry.status == Status::Delivered {
                        figures.delivered_status += 1;
                    } else {
                        figures.shown_not_acknowledged += 1;
                    }
                } else if received.contains(entry.text.as_str()) {
                    delivered += 1;
                    if entry.status == Status::Delivered {
                        figures.delivered_status += 1;
                    } else {
                        figures.shown_not_acknowledged += 1;
                    }
                } else if entry.status == Status::Delivered
                    && matches!(
                        summary.ended,
                        Some(EndReason::PeerRestored | EndReason::Diverged)
                    )
                    && written_before_restore(entry.text.as_str())
                {
                    // Delivered to a copy of the receiver's device that a later restore
                    // discarded (it acknowledged the message, then went back to a backup from
                    // before it), and the conversation says it ended because that device went
                    // back to an older copy: *delivered* was true, and the sender is told why
                    // the other device may no longer have it.
                    figures.delivered_to_lost_copy += 1;
                } else if entry.status == Status::Delivered {
                    // Safety: *delivered* must never be said of a message the other person
                    // does not have.
                    violations.push(Violation::FalseDelivered {
                        sender: name,
                        index,
                    });
                } else if matches!(entry.status, Status::Conflict | Status::Failed) {
                    figures.marked_undelivered += 1;
                } else if summary.invite_taken {
                    // The joiner's conversation says that someone else took the invite.
                    figures.invite_taken_messages += 1;
                } else if matches!(
                    summary.ended,
                    Some(EndReason::PeerRestored | EndReason::Diverged)
                ) {
                    // The conversation says it ended because the other person's device went
                    // back to an older copy (checked below: only if it did).
                    figures.ended_messages += 1;
                } else {
                    violations.push(Violation::Undelivered {
                        sender: name,
                        index,
                        status: entry.status,
                        notice: if summary.rollback.is_some() {
                            Some("rollback")
                        } else if summary.interference.is_some() {
                            Some("interference")
                        } else {
                            None
                        },
                    });
                }
            }
            // What the receiver's screen shows is what its history holds.
            let screen: Vec<String> = self.device(receiver).screen.shown.borrow().clone();
            let stored: Vec<String> = got
                .iter()
                .filter(|e| !e.outgoing)
                .map(|e| e.text.clone())
                .collect();
            if screen != stored {
                violations.push(Violation::ScreenDisagrees {
                    device: self.device(receiver).name,
                    shown: screen.len(),
                    stored: stored.len(),
                });
            }
            let lost_shown = self.device(receiver).lost_shown.borrow();
            if let Some(v) = crate::invariants::check_order(
                self.device(receiver).name,
                &stored,
                &lost_shown,
                &self.concurrent.borrow(),
            ) {
                violations.push(v);
            }
        }
        self.check_conversations(&finals, &mut figures, &mut violations);
        violations.dedup();
        let expired = self.host.expired_unread();
        let squat_lost = self.faults.squatter && !self.squatted;
        self.faults.strike(|s| {
            s.expired_unread = expired;
            s.squats_lost += u64::from(squat_lost);
        });
        let recovered = self
            .tally
            .last_shown_ms
            .get()
            .max(self.tally.last_delivered_ms.get());
        Outcome {
            violations,
            messages,
            delivered,
            simulated_ms: self.world.now(),
            trace: self.world.trace.lines(),
            crash_sites: self.crash_sites.clone(),
            struck: self.faults.struck.get(),
            wire: self.host.wire.get(),
            figures,
            recovery_ms: if self.healed_at > 0 {
                recovered.saturating_sub(self.healed_at)
            } else {
                0
            },
        }
    }

    /// The conversations at the end: the join completed or the joiner was told that the
    /// invite was taken; no conversation ended; no notice raised without its cause.
    fn check_conversations(
        &self,
        finals: &[Option<Final>; 2],
        figures: &mut crate::Figures,
        violations: &mut Vec<Violation>,
    ) {
        let summary = |device: usize| finals.get(device).and_then(Option::as_ref).map(|f| &f.1);
        let (Some(inviter), Some(joiner)) = (summary(0), summary(1)) else {
            return;
        };
        if joiner.invite_taken {
            figures.invite_taken += 1;
            if !self.squatted {
                violations.push(Violation::FalseNotice {
                    device: self.device(1).name,
                    notice: "someone else joined with this invite",
                });
            }
        } else {
            if joiner.connecting || !joiner.joined {
                violations.push(Violation::JoinIncomplete {
                    device: self.device(1).name,
                });
            }
            // An inviter restored to a backup from before it accepted the join waits for a
            // hello that its lost copy confirmed (and that may have expired): it can only say
            // "waiting for them to join", which is what its device now knows, while the joiner
            // is told the conversation ended because the inviter's device went back.
            let inviter_went_back = self.device(0).restored
                && matches!(
                    joiner.ended,
                    Some(EndReason::PeerRestored | EndReason::Diverged)
                );
            if !inviter.joined && !inviter_went_back {
                violations.push(Violation::JoinIncomplete {
                    device: self.device(0).name,
                });
            }
        }
        for (device, summary) in [(0, inviter), (1, joiner)] {
            let d = self.device(device);
            match summary.ended {
                None => {}
                // Ended because the peer's device went back to an older copy after our last
                // reply: a reason the user is told, if the peer was restored or lost power.
                Some(EndReason::PeerRestored) => {
                    figures.ended_peer_restored += 1;
                    let peer = self.device(1 - device);
                    if !peer.restored && !peer.lost_power {
                        violations.push(Violation::FalseNotice {
                            device: d.name,
                            notice: "the other person's device was restored from an older copy",
                        });
                    }
                }
                // Ended by the peer's restore signal: one of the two devices went back.
                Some(EndReason::Diverged) => {
                    figures.ended_peer_restored += 1;
                    let peer = self.device(1 - device);
                    if !peer.restored && !peer.lost_power && !d.restored && !d.lost_power {
                        violations.push(Violation::FalseNotice {
                            device: d.name,
                            notice: "one of the two devices went back to an older copy",
                        });
                    }
                }
                Some(reason) => violations.push(Violation::Ended {
                    device: d.name,
                    reason: reason.to_string(),
                }),
            }
            if summary.rollback.is_some() {
                figures.rollback_notices += 1;
                // A rollback is this device's state going back: a restore, or a power loss
                // undoing relaxed commits.
                if !d.restored && !d.lost_power {
                    violations.push(Violation::FalseNotice {
                        device: d.name,
                        notice: "this device was restored from an older copy",
                    });
                }
            }
            if summary.interference.is_some() {
                figures.interference_notices += 1;
                // Interference needs someone who writes where the peer would: a squatter, or
                // this conversation's own lost state after a restore.
                if !self.faults.squatter && self.faults.restores == 0 {
                    violations.push(Violation::FalseNotice {
                        device: d.name,
                        notice: "someone is interfering with this conversation",
                    });
                }
            }
        }
    }
}

/// Reads conversation `id` as a subscription delivers it: the mailbox's answer for the watch
/// set ([`Client::watch_set`]; fetched through the same faulty network), of which each record
/// arrives with probability 3/4, shuffled, then [`Client::poll_pushed`]. Nothing to watch: a
/// poll.
async fn poll_snapshot(
    client: &Client<SimPlatform>,
    id: &str,
    seed: u64,
) -> Result<client_core::PollOutcome, client_core::ClientError> {
    use client_core::platform::{Platform, Transport};
    let Some(watch) = client.watch_set(id).await? else {
        return client.poll(id).await;
    };
    let addresses: Vec<protocol::Address> = watch
        .chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok().map(protocol::Address))
        .collect();
    let found = client.platform().net().fetch(MAILBOX, &addresses).await?;
    let mut rng = Stream::new(seed, "snapshot");
    let mut arrived: Vec<_> = found.into_iter().filter(|_| rng.chance(0.75)).collect();
    for i in (1..arrived.len()).rev() {
        arrived.swap(i, rng.range(0, i as u64 + 1) as usize);
    }
    let outcome = client.poll_pushed(id, arrived).await?;
    // The app sends the delete messages on the conversation's socket; each stands for the
    // `DELETE`s of its keys, which go through the same faulty network (a lost socket loses
    // them: best effort, as in the app).
    'messages: for message in &outcome.delete_messages {
        for key in message.get(1..).unwrap_or_default().chunks_exact(32) {
            let Ok(key) = <[u8; 32]>::try_from(key) else {
                continue;
            };
            let net = client.platform().net();
            if net.delete(MAILBOX, &protocol::WriteKey(key)).await.is_err() {
                break 'messages;
            }
        }
    }
    Ok(outcome)
}

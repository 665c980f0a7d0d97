//! Property tests over random schedules of send / deliver / drop / duplicate / tamper /
//! foreign blobs between two parties.
//!
//! Invariants checked after every step:
//! * a blob at a polled address decrypts, to exactly what was sent; a message is read at most
//!   once; `retired` is exactly what left the poll set;
//! * a blob at an unpolled address, a duplicate, a tampered or a foreign blob is rejected and
//!   the session (its whole pickle) is unchanged;
//! * with fewer than `WINDOW` losses and at most `MAX_SKIP` blobs per direction, draining the
//!   mailbox delivers every message whose blobs were not dropped, exactly once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use proptest::prelude::*;
use protocol::testing::SeededRng;
use protocol::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
enum Op {
    Send {
        joiner: bool,
        len: usize,
    },
    Deliver {
        to_joiner: bool,
        pick: usize,
    },
    Drop {
        to_joiner: bool,
        pick: usize,
    },
    Duplicate {
        to_joiner: bool,
        pick: usize,
    },
    Tamper {
        to_joiner: bool,
        pick: usize,
        byte: usize,
        bit: u8,
    },
    Foreign {
        to_joiner: bool,
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![8 => 8usize..60, 1 => 900usize..2000];
    prop_oneof![
        6 => (any::<bool>(), len).prop_map(|(joiner, len)| Op::Send { joiner, len }),
        8 => (any::<bool>(), any::<usize>()).prop_map(|(to_joiner, pick)| Op::Deliver { to_joiner, pick }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(to_joiner, pick)| Op::Drop { to_joiner, pick }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(to_joiner, pick)| Op::Duplicate { to_joiner, pick }),
        1 => (any::<bool>(), any::<usize>(), 0..BLOB_LEN, 0u8..8)
            .prop_map(|(to_joiner, pick, byte, bit)| Op::Tamper { to_joiner, pick, byte, bit }),
        1 => (any::<bool>(), any::<usize>()).prop_map(|(to_joiner, pick)| Op::Foreign { to_joiner, pick }),
    ]
}

struct Flight {
    blob: OutgoingBlob,
    message: u64,
}

struct World {
    joiner: Session,
    inviter: Session,
    rng: SeededRng,
    /// In flight towards the joiner (index 0) / the inviter (index 1).
    in_flight: [Vec<Flight>; 2],
    delivered: [Vec<OutgoingBlob>; 2],
    sent: BTreeMap<u64, Vec<u8>>,
    read: BTreeSet<u64>,
    dropped_messages: BTreeSet<u64>,
    drops: usize,
    blobs_sent: [usize; 2],
    next_message: u64,
    foreign: Vec<OutgoingBlob>,
    /// Per direction, the multi-blob messages of which some blobs and not all were delivered.
    partial: [BTreeSet<u64>; 2],
    /// Whether more partial messages than a receiver keeps (`MAX_PENDING_MESSAGES`, §6.7)
    /// were ever pending at once: the oldest was dropped, and with it that message (a
    /// delivery order the Hush client's in-order drain does not produce).
    overflowed: bool,
}

fn plaintext(id: u64, len: usize) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend((0..len).map(|i| (i as u64 ^ id) as u8));
    p
}

impl World {
    fn new(seed: u64) -> World {
        let (joiner, inviter, rng) = pair(seed);
        let (mut c, _d, mut rng2) = pair(seed ^ 0xdead_beef);
        let foreign = (0..3)
            .map(|i| c.encrypt(&mut rng2, &[i], 0).unwrap().remove(0))
            .collect();
        World {
            joiner,
            inviter,
            rng,
            in_flight: [Vec::new(), Vec::new()],
            delivered: [Vec::new(), Vec::new()],
            sent: BTreeMap::new(),
            read: BTreeSet::new(),
            dropped_messages: BTreeSet::new(),
            drops: 0,
            blobs_sent: [0, 0],
            next_message: 0,
            foreign,
            partial: [BTreeSet::new(), BTreeSet::new()],
            overflowed: false,
        }
    }

    fn receiver(&mut self, to_joiner: bool) -> &mut Session {
        if to_joiner {
            &mut self.joiner
        } else {
            &mut self.inviter
        }
    }

    fn expect_rejected(&mut self, to_joiner: bool, address: &Address, blob: &[u8]) -> DecryptError {
        let session = self.receiver(to_joiner);
        let before = snapshot(session);
        let err = session
            .decrypt(address, blob)
            .expect_err("must be rejected");
        assert_eq!(
            snapshot(session),
            before,
            "rejected blob changed the state: {err:?}"
        );
        err
    }

    fn deliver_index(&mut self, to_joiner: bool, index: usize) -> bool {
        let dir = usize::from(!to_joiner);
        let address = self.in_flight[dir][index].blob.address;
        if !self.receiver(to_joiner).poll_addresses().contains(&address) {
            let blob = self.in_flight[dir][index].blob.blob.clone();
            assert_eq!(
                self.expect_rejected(to_joiner, &address, &blob),
                DecryptError::UnknownAddress
            );
            return false;
        }
        let flight = self.in_flight[dir].remove(index);
        let got = deliver(self.receiver(to_joiner), &flight.blob);
        if got.is_some() {
            self.partial[dir].remove(&flight.message);
        } else if self.in_flight[dir]
            .iter()
            .any(|f| f.message == flight.message)
        {
            self.partial[dir].insert(flight.message);
            self.overflowed |= self.partial[dir].len() > MAX_PENDING_MESSAGES;
        }
        if let Some(p) = got {
            let id = u64::from_be_bytes(p[..8].try_into().unwrap());
            assert_eq!(
                id, flight.message,
                "completed a different message than the blob carried"
            );
            assert_eq!(
                self.sent.get(&id),
                Some(&p),
                "plaintext differs from what was sent"
            );
            assert!(self.read.insert(id), "message {id} read twice");
        }
        self.delivered[dir].push(flight.blob);
        true
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Send { joiner, len } => {
                let id = self.next_message;
                self.next_message += 1;
                let text = plaintext(id, len);
                let rng = &mut self.rng;
                let sender = if joiner {
                    &mut self.joiner
                } else {
                    &mut self.inviter
                };
                let blobs = sender.encrypt(rng, &text, 0).unwrap();
                // Towards the other party: joiner sends to the inviter (index 1).
                let dir = usize::from(joiner);
                self.blobs_sent[dir] += blobs.len();
                self.sent.insert(id, text);
                self.in_flight[dir]
                    .extend(blobs.into_iter().map(|blob| Flight { blob, message: id }));
            }
            Op::Deliver { to_joiner, pick } => {
                let dir = usize::from(!to_joiner);
                if !self.in_flight[dir].is_empty() {
                    let index = pick % self.in_flight[dir].len();
                    self.deliver_index(to_joiner, index);
                }
            }
            Op::Drop { to_joiner, pick } => {
                let dir = usize::from(!to_joiner);
                if !self.in_flight[dir].is_empty() {
                    let flight = self.in_flight[dir].remove(pick % self.in_flight[dir].len());
                    self.dropped_messages.insert(flight.message);
                    self.drops += 1;
                }
            }
            Op::Duplicate { to_joiner, pick } => {
                let dir = usize::from(!to_joiner);
                if !self.delivered[dir].is_empty() {
                    let blob = self.delivered[dir][pick % self.delivered[dir].len()].clone();
                    let err = self.expect_rejected(to_joiner, &blob.address, &blob.blob);
                    assert!(
                        matches!(err, DecryptError::Duplicate | DecryptError::UnknownAddress),
                        "{err:?}"
                    );
                }
            }
            Op::Tamper {
                to_joiner,
                pick,
                byte,
                bit,
            } => {
                let dir = usize::from(!to_joiner);
                if !self.in_flight[dir].is_empty() {
                    let flight = &self.in_flight[dir][pick % self.in_flight[dir].len()];
                    let address = flight.blob.address;
                    let mut blob = flight.blob.blob.clone();
                    blob[byte] ^= 1 << bit;
                    self.expect_rejected(to_joiner, &address, &blob);
                }
            }
            Op::Foreign { to_joiner, pick } => {
                let blob = self.foreign[pick % self.foreign.len()].blob.clone();
                let polls = self.receiver(to_joiner).poll_addresses();
                let address = polls[pick % polls.len()];
                self.expect_rejected(to_joiner, &address, &blob);
            }
        }
    }

    /// Fetches every polled address that holds a blob, until nothing more arrives.
    fn drain(&mut self) {
        loop {
            let mut progress = false;
            for to_joiner in [true, false] {
                let dir = usize::from(!to_joiner);
                let polled: BTreeSet<Address> = self
                    .receiver(to_joiner)
                    .poll_addresses()
                    .into_iter()
                    .collect();
                if let Some(index) = self.in_flight[dir]
                    .iter()
                    .position(|f| polled.contains(&f.blob.address))
                {
                    assert!(self.deliver_index(to_joiner, index));
                    progress = true;
                }
            }
            if !progress {
                return;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_schedules_keep_both_parties_in_sync(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..40)) {
        let mut world = World::new(seed);
        for op in &ops {
            world.apply(op);
        }
        world.drain();
        if world.drops < WINDOW as usize
            && world.blobs_sent.iter().all(|&n| n <= MAX_SKIP as usize)
            && !world.overflowed
        {
            prop_assert!(world.in_flight.iter().all(Vec::is_empty), "undeliverable blobs remain");
            let expected: BTreeSet<u64> =
                world.sent.keys().copied().filter(|id| !world.dropped_messages.contains(id)).collect();
            prop_assert_eq!(&world.read, &expected);
            // And the conversation goes on both ways.
            for to_joiner in [true, false] {
                world.apply(&Op::Send { joiner: !to_joiner, len: 5 });
                world.drain();
            }
            prop_assert!(world.in_flight.iter().all(Vec::is_empty));
        }
        // Reads are always a subset of what was sent.
        prop_assert!(world.read.iter().all(|id| world.sent.contains_key(id)));
    }

    #[test]
    fn random_blobs_at_polled_addresses_are_rejected(seed in any::<u64>(), pick in any::<usize>(), blob in prop::collection::vec(any::<u8>(), BLOB_LEN)) {
        let (mut a, _b, _rng) = pair(seed);
        let polls = a.poll_addresses();
        let address = polls[pick % polls.len()];
        let before = snapshot(&a);
        prop_assert!(a.decrypt(&address, &blob).is_err());
        prop_assert_eq!(snapshot(&a), before);
    }

    #[test]
    fn invite_parsing_never_panics_and_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(invite) = Invite::from_bytes(&bytes) {
            prop_assert_eq!(invite.to_bytes().to_vec(), bytes);
        }
    }

    #[test]
    fn base64url_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = protocol::base64url::encode(&bytes);
        prop_assert_eq!(protocol::base64url::decode(&text), Some(bytes));
    }
}

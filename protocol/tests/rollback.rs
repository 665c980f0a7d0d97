//! Issue #15: a session state replayed after a restore never encrypts two different plaintexts
//! under one key and nonce (`docs/PROTOCOL.md` §3.7).
//!
//! Random conversations in which one party's state is snapshotted, used, restored and used
//! again with different plaintexts, many times. Across every blob ever produced, two different
//! blobs at one address must look independent: they agree in about 4 of 1,024 byte positions
//! (chance), never more than a generous bound; their hedges differ; and, derived here from the
//! spec with raw primitives, their header and body keys and Poly1305 one-time keys differ.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use common::*;
use hmac::{KeyInit, Mac};
use proptest::prelude::*;
use protocol::testing::{SeededRng, sending_keys};
use protocol::{Address, HEDGE_LEN, Session};
use std::collections::{BTreeMap, BTreeSet};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The Poly1305 one-time key ChaCha20-Poly1305 (RFC 8439 §2.6) uses under `key` and the
/// all-zero nonce: the first 32 bytes of keystream block 0.
fn poly1305_key(key: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 32];
    let mut cipher = ChaCha20::new(key.into(), &[0u8; 12].into());
    cipher.apply_keystream(&mut block);
    block
}

/// One blob as the mailbox would see it, with the effective keys when they are known.
struct Sent {
    blob: Vec<u8>,
    /// `(HKr, MKr)` derived from the spec, when the sending chain's keys were known.
    keys: Option<([u8; 32], [u8; 32])>,
}

/// Sends `text` from `session`, recording each blob at its address with its effective keys.
fn send_recorded(
    session: &mut Session,
    rng: &mut SeededRng,
    text: &[u8],
    seen: &mut BTreeMap<Address, Vec<Sent>>,
) {
    let known = sending_keys(session, 64);
    let floor = session.next_seq();
    for (i, out) in session
        .encrypt(rng, text, floor)
        .unwrap()
        .into_iter()
        .enumerate()
    {
        let r: [u8; HEDGE_LEN] = out.blob[..HEDGE_LEN].try_into().unwrap();
        let keys = known.as_ref().map(|(hk, mks)| {
            (
                hmac(hk, &[b"hush/v2/header-key", &r]),
                hmac(&mks[i], &[b"hush/v2/body-key", &r]),
            )
        });
        seen.entry(out.address).or_default().push(Sent {
            blob: out.blob,
            keys,
        });
    }
}

fn equal_positions(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn restored_states_never_reuse_a_keystream(
        seed in any::<u64>(),
        script in prop::collection::vec((0u8..4, 0usize..3000), 4..24),
    ) {
        let (mut joiner, mut inviter, mut rng) = pair(seed);
        let mut seen: BTreeMap<Address, Vec<Sent>> = BTreeMap::new();
        let mut snapshot: Option<(Vec<u8>, SeededRng)> = None;
        let mut joiner_rng = SeededRng::new(seed ^ 0x5eed);
        for (step, (op, len)) in script.into_iter().enumerate() {
            let text: Vec<u8> = (0..len).map(|i| (i as u8) ^ (step as u8).wrapping_mul(31)).collect();
            match op {
                // The joiner takes a snapshot of its state (a backup, a copied profile).
                0 => snapshot = Some((joiner.pickle(&KEY), joiner_rng.clone())),
                // The joiner is restored from its snapshot, then keeps going.
                1 => if let Some((s, g)) = &snapshot {
                    joiner = Session::from_pickle(&KEY, s).unwrap();
                    joiner_rng = g.clone(); // a VM snapshot: the generator comes back too
                },
                // The joiner sends (different text every step).
                2 => send_recorded(&mut joiner, &mut joiner_rng, &text, &mut seen),
                // The inviter replies and the joiner reads what it can (a DH step each way).
                _ => {
                    let floor = inviter.next_seq();
                    for out in inviter.encrypt(&mut rng, &text, floor).unwrap() {
                        let _ = joiner.decrypt(&out.address, &out.blob);
                    }
                }
            }
        }
        for (address, blobs) in &seen {
            for (i, a) in blobs.iter().enumerate() {
                for b in &blobs[i + 1..] {
                    if a.blob == b.blob {
                        continue;
                    }
                    // Chance is 1,024 / 256 = 4 equal positions; 32 is far outside chance
                    // (the same keystream over two padded plaintexts agreed in ~870-998).
                    let equal = equal_positions(&a.blob, &b.blob);
                    prop_assert!(equal < 32, "{equal} equal bytes at {address:?}");
                    prop_assert_ne!(&a.blob[..HEDGE_LEN], &b.blob[..HEDGE_LEN]);
                    if let (Some((ha, ma)), Some((hb, mb))) = (a.keys, b.keys) {
                        prop_assert_ne!(ha, hb);
                        prop_assert_ne!(ma, mb);
                        prop_assert_ne!(poly1305_key(&ha), poly1305_key(&hb));
                        prop_assert_ne!(poly1305_key(&ma), poly1305_key(&mb));
                    }
                }
            }
        }
    }
}

/// The derivation checked from outside: the body decrypts under `MKr` derived as the spec
/// says, and two blobs from one restored state differ in their hedges and one-time keys.
#[test]
fn two_blobs_from_one_state_have_independent_keys() {
    let (mut joiner, _inviter, mut rng) = pair(77);
    let state = joiner.pickle(&KEY);
    let (_hk, mks) = sending_keys(&joiner, 1).unwrap();
    let first = joiner
        .encrypt(&mut rng, b"first text", 1)
        .unwrap()
        .remove(0);
    let mut restored = Session::from_pickle(&KEY, &state).unwrap();
    let second = restored
        .encrypt(&mut rng, b"other text", 1)
        .unwrap()
        .remove(0);
    assert_eq!(first.address, second.address, "same state, same slot");
    assert_eq!(first.seq, second.seq);
    assert_ne!(first.blob[..HEDGE_LEN], second.blob[..HEDGE_LEN]);
    assert!(equal_positions(&first.blob, &second.blob) < 32);
    let mut one_time_keys = Vec::new();
    for (blob, text) in [
        (&first.blob, &b"first text"[..]),
        (&second.blob, b"other text"),
    ] {
        let r = &blob[..HEDGE_LEN];
        let mkr = hmac(&mks[0], &[b"hush/v2/body-key", r]);
        one_time_keys.push(poly1305_key(&mkr));
        // ChaCha20-Poly1305 (RFC 8439 §2.8) encrypts from keystream block 1 (block 0 is the
        // Poly1305 key): under the spec's MKr the body reads as a data payload carrying `text`.
        let header_end = HEDGE_LEN + protocol::ENCRYPTED_HEADER_LEN;
        let mut body = blob[header_end..blob.len() - 16].to_vec();
        let mut cipher = ChaCha20::new((&mkr).into(), &[0u8; 12].into());
        let mut block0 = [0u8; 64];
        cipher.apply_keystream(&mut block0);
        cipher.apply_keystream(&mut body);
        assert_eq!(body[0], 0x82, "payload kind: data, with prev");
        let data_at = protocol::FRAGMENT_HEADER_LEN;
        assert_eq!(&body[data_at..data_at + text.len()], text);
    }
    assert_ne!(one_time_keys[0], one_time_keys[1]);
}

/// Issue #10: the peer's acknowledgement tells a restored device that it lost state; it moves
/// past every sequence number and sending position the lost state used, tells the caller, and
/// the conversation goes on (its next message lands inside the peer's window).
#[test]
fn acknowledgements_reveal_a_rollback_and_the_conversation_goes_on() {
    let (mut a, mut b, mut rng) = pair(91);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    deliver(&mut b, &send(&mut a, &mut rng, b"three")[0]);
    let backup = a.pickle(&KEY);
    for text in [&b"lost 1"[..], b"lost 2", b"lost 3"] {
        deliver(&mut b, &send(&mut a, &mut rng, text)[0]);
    }
    let sent_before_restore = a.next_seq();
    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    assert_eq!(a.next_seq(), sent_before_restore - 3);
    // The peer's next blob (here an acknowledgement only) carries what it received.
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert_eq!(received.kind, protocol::PayloadKind::Acknowledgement);
    assert_eq!(received.plaintext, None);
    assert_eq!(
        received.rollback,
        Some(protocol::Rollback {
            lost_blobs: 3,
            // "three" (seq 2) was sent but not yet confirmed when the backup was taken.
            unconfirmed_from: 2
        })
    );
    assert_eq!(a.next_seq(), sent_before_restore);
    assert!(received.acknowledged.contains(sent_before_restore - 1));
    // The next message does not reuse a lost slot: the peer reads it at once.
    let after = send(&mut a, &mut rng, b"after the restore");
    assert_eq!(
        deliver(&mut b, &after[0]),
        Some(b"after the restore".to_vec())
    );
    assert_eq!(after[0].seq, sent_before_restore);
    // A second acknowledgement reports nothing new.
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    assert_eq!(a.decrypt(&ack.address, &ack.blob).unwrap().rollback, None);
}

/// Acknowledgements are carried by every blob: after a round trip each side knows exactly
/// which of its blobs arrived, including gaps.
#[test]
fn acknowledgements_report_gaps_and_the_floor_closes_them() {
    let (mut a, mut b, mut rng) = pair(92);
    // All three stay awaiting acknowledgement: the floor stays at the first.
    let floor = a.next_seq();
    let m1 = a.encrypt(&mut rng, b"1", floor).unwrap().remove(0);
    let m2 = a.encrypt(&mut rng, b"2", floor).unwrap().remove(0);
    let m3 = a.encrypt(&mut rng, b"3", floor).unwrap().remove(0);
    deliver(&mut b, &m1);
    deliver(&mut b, &m3);
    let seen = b.acknowledgement();
    assert!(seen.contains(m1.seq) && !seen.contains(m2.seq) && seen.contains(m3.seq));
    let reply = send(&mut b, &mut rng, b"ok").remove(0);
    // Confirmed (checked by digest) is the contiguous prefix only.
    let confirmed = a.decrypt(&reply.address, &reply.blob).unwrap().acknowledged;
    assert!(confirmed.contains(m1.seq) && !confirmed.contains(m2.seq));
    // The sender gives up on m2 (it never reached the mailbox; its floor passes it): the peer
    // counts it as settled, and the digests still agree.
    a.abandon(m2.seq);
    let m4 = a.encrypt(&mut rng, b"4", m3.seq).unwrap().remove(0);
    deliver(&mut b, &m4);
    assert!(b.acknowledgement().contains(m2.seq));
    assert_eq!(b.acknowledgement().next, m4.seq + 1);
    let reply = send(&mut b, &mut rng, b"ok").remove(0);
    let received = a.decrypt(&reply.address, &reply.blob).unwrap();
    assert_eq!(received.rollback, None);
    assert!(received.acknowledged.contains(m4.seq));
}

/// A rollback hidden by more sends (as many sent again as lost) is caught by the digest; the
/// restored copy's second message, which follows its first (written where the peer read the
/// lost blob, so never seen), is refused, not shown before it (`docs/PROTOCOL.md` §6.4), and
/// once both go again they arrive in their order; a copy of one already shown is dropped.
#[test]
fn a_rollback_hidden_by_more_sends_is_caught_by_the_digest_and_resends_are_idempotent() {
    let (mut a, mut b, mut rng) = pair(93);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    deliver(&mut b, &send(&mut a, &mut rng, b"three")[0]);
    // The backup is taken in the middle of a's sending chain.
    let backup = a.pickle(&KEY);
    deliver(&mut b, &send(&mut a, &mut rng, b"lost")[0]);
    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    // Two new messages; the first lands on the slot the peer has read (never seen again), the
    // second is read but refused: it follows the first, which the peer never received.
    let floor = a.next_seq();
    let first = a.encrypt(&mut rng, b"new 1", floor).unwrap().remove(0);
    let second = a.encrypt(&mut rng, b"new 2", floor).unwrap().remove(0);
    assert_eq!(
        b.decrypt(&first.address, &first.blob).unwrap_err(),
        protocol::DecryptError::Duplicate
    );
    let refused = b.decrypt(&second.address, &second.blob).unwrap();
    assert!(refused.peer_rolled_back && refused.plaintext.is_none());
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    let rollback = received.rollback.expect("the digest reveals the rollback");
    assert_eq!(
        rollback.lost_blobs, 0,
        "as many sent as lost: only the digest can tell"
    );
    assert!(rollback.unconfirmed_from <= first.seq);
    // Re-send both unconfirmed messages under their ids: they arrive in their order, and a
    // third copy of "new 2" is not shown again.
    let floor = a.next_seq();
    for (text, id) in [
        (&b"new 1"[..], first.message_id),
        (b"new 2", second.message_id),
    ] {
        let again = a
            .encrypt_resend(&mut rng, text, floor, id)
            .unwrap()
            .remove(0);
        assert_eq!(deliver(&mut b, &again), Some(text.to_vec()));
    }
    let again_2 = a
        .encrypt_resend(&mut rng, b"new 2", floor, second.message_id)
        .unwrap()
        .remove(0);
    let dup = b.decrypt(&again_2.address, &again_2.blob).unwrap();
    assert!(dup.duplicate && dup.plaintext.is_none());
    // From here on the digests agree again.
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert_eq!(received.rollback, None);
    assert!(received.acknowledged.contains(again_2.seq));
}

/// Restored to before its own ratchet step (the backup was taken after reading the peer's new
/// key and before answering it): the restored device answers with a *fresh* key on the same
/// header key. The peer, which has only acknowledged since, follows the fork; the lost
/// chain's key is refused afterwards; the conversation goes on both ways.
#[test]
fn a_peer_restored_across_its_own_ratchet_step_is_followed_while_we_only_acknowledged() {
    let (mut a, mut b, mut rng) = pair(94);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    // a has read b's new key and not answered yet: a new chain starts at its next send.
    let backup = a.pickle(&KEY);
    let lost = send(&mut a, &mut rng, b"lost, on a new chain");
    deliver(&mut b, &lost[0]);
    // b only acknowledges (on its current chain: no new ratchet step).
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert!(
        received.rollback.is_some(),
        "the acknowledgement reveals the rollback"
    );
    // a's next message: a fresh ratchet key, past the lost slot; b follows it.
    let after = send(&mut a, &mut rng, b"after the restore");
    assert_ne!(after[0].address, lost[0].address);
    assert_eq!(
        deliver(&mut b, &after[0]),
        Some(b"after the restore".to_vec())
    );
    // Both directions work from here, and neither, not behind, ever finds a behind signal
    // of the other's (b keeps the root key the fork replaced among its own: while its
    // reply is unread, a's root key before its send step is b's third newest, not its
    // second).
    let neither =
        |a: &Session, b: &Session| !finds_behind_signal(a, b) && !finds_behind_signal(b, a);
    assert!(neither(&a, &b), "after the fork is followed");
    let reply = send(&mut b, &mut rng, b"reply");
    assert!(neither(&a, &b), "while b's reply is unread");
    assert_eq!(deliver(&mut a, &reply[0]), Some(b"reply".to_vec()));
    assert!(neither(&a, &b), "once a read it");
    let again = send(&mut a, &mut rng, b"again");
    assert!(neither(&a, &b), "while a's answer is unread");
    assert_eq!(deliver(&mut b, &again[0]), Some(b"again".to_vec()));
    assert!(neither(&a, &b), "once b read it");
}

/// The same fork, with the inviter restored across its own send step right after the
/// conversation began: the joiner follows it, answers, and the inviter, not behind, finds
/// no behind signal while that answer is unread.
#[test]
fn an_inviter_whose_fork_was_followed_finds_no_behind_signal() {
    let (mut a, mut b, mut rng) = pair(95);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    let backup = b.pickle(&KEY);
    let lost = send(&mut b, &mut rng, b"lost");
    deliver(&mut a, &lost[0]);
    let ack = a.encrypt_acknowledgement(&mut rng, a.next_seq()).unwrap();
    let mut b = Session::from_pickle(&KEY, &backup).unwrap();
    assert!(
        b.decrypt(&ack.address, &ack.blob)
            .unwrap()
            .rollback
            .is_some()
    );
    let after = send(&mut b, &mut rng, b"after");
    assert_eq!(deliver(&mut a, &after[0]), Some(b"after".to_vec()));
    let reply = send(&mut a, &mut rng, b"reply");
    assert!(!finds_behind_signal(&b, &a), "b is not behind");
    assert_eq!(deliver(&mut b, &reply[0]), Some(b"reply".to_vec()));
    assert!(!finds_behind_signal(&b, &a) && !finds_behind_signal(&a, &b));
}

/// The same rollback after the peer already answered the lost key with a message: nothing
/// either side holds can bridge it, and the peer is told so (`PeerRestored`), state unchanged.
#[test]
fn a_fork_after_we_answered_is_refused_as_peer_restored() {
    let (mut a, mut b, mut rng) = pair(95);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    let backup = a.pickle(&KEY);
    deliver(&mut b, &send(&mut a, &mut rng, b"lost")[0]);
    let _answer = send(&mut b, &mut rng, b"answer to the lost chain");
    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    let floor = a.next_seq();
    let forks = a.encrypt(&mut rng, b"after", floor).unwrap();
    let window = b.poll_addresses();
    let before = b.pickle(&KEY);
    let mut refused = 0;
    for fork in &forks {
        // The first slot is spent (Duplicate); later ones name the fork.
        if window.contains(&fork.address) {
            assert_eq!(
                b.decrypt(&fork.address, &fork.blob).unwrap_err(),
                protocol::DecryptError::PeerRestored
            );
            refused += 1;
        }
    }
    let more = a.encrypt(&mut rng, b"more", floor).unwrap();
    assert!(window.contains(&more[0].address));
    assert_eq!(
        b.decrypt(&more[0].address, &more[0].blob).unwrap_err(),
        protocol::DecryptError::PeerRestored
    );
    assert_eq!(b.pickle(&KEY), before);
    let _ = refused;
    // The restored side learns it too: once it has sent (its next window is polled), the
    // peer's answer to the lost key authenticates its header but not its body.
    let answer = &_answer[0];
    assert!(a.poll_addresses().contains(&answer.address));
    let state = a.pickle(&KEY);
    assert_eq!(
        a.decrypt(&answer.address, &answer.blob).unwrap_err(),
        protocol::DecryptError::UnreadableAnswer
    );
    assert_eq!(a.pickle(&KEY), state, "state unchanged");
}

/// Following forks costs forward secrecy for what was read on the current chain, so it is
/// bounded: past `FORK_WINDOW` messages read without answering, the previous root is deleted
/// and a fork is refused as `PeerRestored`.
#[test]
fn forks_are_followed_only_within_the_fork_window() {
    let (mut a, mut b, mut rng) = pair(96);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    let backup = a.pickle(&KEY);
    for i in 0..=protocol::FORK_WINDOW {
        let text = format!("lost {i}");
        assert_eq!(
            deliver(&mut b, &send(&mut a, &mut rng, text.as_bytes())[0]),
            Some(text.into_bytes())
        );
    }
    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    // Without any acknowledgement the restored device starts its fork at position 0; move it
    // into the peer's window as its acknowledgement would.
    let floor = a.next_seq();
    let mut refused = false;
    for _ in 0..(protocol::FORK_WINDOW + 2) {
        let fork = a.encrypt(&mut rng, b"after", floor).unwrap().remove(0);
        if b.poll_addresses().contains(&fork.address) {
            assert_eq!(
                b.decrypt(&fork.address, &fork.blob).unwrap_err(),
                protocol::DecryptError::PeerRestored
            );
            refused = true;
            break;
        }
    }
    assert!(refused, "a fork reached the peer's window and was refused");
}

/// A reader restored to before its own answer, whose peer already answered the lost key:
/// the peer's answer is found at once in the next window (polled while our answer is
/// pending) and reported as `UnreadableAnswer`; a stepping acknowledgement then tells the
/// peer (`PeerRestored`), so neither side waits for the other for ever.
#[test]
fn a_restored_reader_learns_and_tells_that_the_conversation_cannot_go_on() {
    let (mut a, mut b, mut rng) = pair(97);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    let backup = a.pickle(&KEY);
    deliver(&mut b, &send(&mut a, &mut rng, b"lost, on a new chain")[0]);
    let answer = send(&mut b, &mut rng, b"answer to the lost chain").remove(0);
    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    assert!(
        a.poll_addresses().contains(&answer.address),
        "polled although a's answer is pending"
    );
    assert_eq!(
        a.decrypt(&answer.address, &answer.blob).unwrap_err(),
        protocol::DecryptError::UnreadableAnswer
    );
    let signals = a.encrypt_fork_signal(&mut rng, a.next_seq()).unwrap();
    let window = b.poll_addresses();
    let seen: Vec<_> = signals
        .iter()
        .filter(|s| window.contains(&s.address))
        .collect();
    assert_eq!(seen.len(), 1, "exactly one lands in the peer's window");
    assert_eq!(
        b.decrypt(&seen[0].address, &seen[0].blob).unwrap_err(),
        protocol::DecryptError::PeerRestored
    );
}

/// A conversation in which `a` is snapshotted after three messages, its copy then sends
/// `lost` messages that `b` reads, and `a` is restored from the snapshot: returns the restored
/// `a`, `b`, the generator, and the addresses the lost copy wrote.
fn restored_after_lost_sends(
    seed: u64,
    lost: usize,
) -> (Session, Session, SeededRng, BTreeSet<Address>) {
    let (mut a, mut b, mut rng) = pair(seed);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    deliver(&mut b, &send(&mut a, &mut rng, b"three")[0]);
    let backup = a.pickle(&KEY);
    let mut mailbox = BTreeSet::new();
    for i in 0..lost {
        let blob = send(&mut a, &mut rng, format!("lost {i}").as_bytes()).remove(0);
        mailbox.insert(blob.address);
        deliver(&mut b, &blob);
    }
    let a = Session::from_pickle(&KEY, &backup).unwrap();
    (a, b, rng, mailbox)
}

/// How many of `a`'s next sending positions hold a blob (what a client's probe finds).
fn taken_positions(a: &Session, mailbox: &BTreeSet<Address>) -> usize {
    a.upcoming_addresses(48)
        .iter()
        .take_while(|address| mailbox.contains(address))
        .count()
}

/// A restored device can find its used positions on the mailbox before it sends: the upcoming
/// addresses that hold blobs are skipped, and its next message lands in the peer's window
/// without ever writing where the lost state wrote.
#[test]
fn upcoming_addresses_let_a_restored_device_skip_what_its_lost_state_used() {
    let (mut a, mut b, mut rng, mailbox) = restored_after_lost_sends(98, 20);
    let taken = taken_positions(&a, &mailbox);
    assert_eq!(taken, 20);
    a.skip_positions(taken as u32);
    let after = send(&mut a, &mut rng, b"after the restore").remove(0);
    assert!(!mailbox.contains(&after.address));
    assert_eq!(deliver(&mut b, &after), Some(b"after the restore".to_vec()));
    // The peer's acknowledgement then reveals the rollback (19 seqs the restored state never
    // used): the positions the probe skipped were those very blobs, so the chain is not moved
    // again, and the next blob still lands in the peer's window (its 22nd position read).
    let next = a.upcoming_addresses(1);
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert!(received.rollback.is_some(), "rollback detected");
    assert_eq!(
        a.upcoming_addresses(1),
        next,
        "no second skip for the same blobs"
    );
    let later = send(&mut a, &mut rng, b"later").remove(0);
    assert_eq!(deliver(&mut b, &later), Some(b"later".to_vec()));
}

/// A state restored together with its random generator (a VM snapshot) gives a different
/// message another id: the peer never drops it as a copy of the lost state's message.
#[test]
fn message_ids_differ_for_different_text_under_a_replayed_generator() {
    let (mut joiner, mut inviter, _rng) = pair(99);
    let state = joiner.pickle(&KEY);
    let generator = SeededRng::new(4242);
    let mut rng = generator.clone();
    let lost = joiner
        .encrypt(&mut rng, b"sent by the lost copy", 1)
        .unwrap()
        .remove(0);
    assert_eq!(
        deliver(&mut inviter, &lost),
        Some(b"sent by the lost copy".to_vec())
    );
    let mut restored = Session::from_pickle(&KEY, &state).unwrap();
    let mut restored_rng = generator;
    let new = restored
        .encrypt(&mut restored_rng, b"a new message", 1)
        .unwrap()
        .remove(0);
    assert_ne!(new.message_id, lost.message_id);
    assert_ne!(new.blob[..HEDGE_LEN], lost.blob[..HEDGE_LEN]);
}

/// A conversation where `a` is backed up after one round trip, and the copy of `a` that
/// will be lost goes on for `round_trips` more with `b`. Returns `b`, the backup, the rng.
fn lost_copy_goes_on(seed: u64, round_trips: usize) -> (Session, Vec<u8>, SeededRng) {
    let (mut a, mut b, mut rng) = pair(seed);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    let backup = a.pickle(&KEY);
    for i in 0..round_trips {
        deliver(
            &mut b,
            &send(&mut a, &mut rng, format!("lost {i}").as_bytes())[0],
        );
        deliver(
            &mut a,
            &send(&mut b, &mut rng, format!("answer {i}").as_bytes())[0],
        );
    }
    (b, backup, rng)
}

/// A device restored to a copy several ratchet steps behind the peer: none of its chains is
/// one the peer still reads, so no fork signal can reach it. It finds the peer's answer
/// unreadable, deposits its restore signal, and the peer, which polls the signal addresses of
/// its last root keys, recognises it; anything else there is refused. Both pickles keep what
/// the check needs.
#[test]
fn a_device_restored_several_steps_back_is_heard_through_its_restore_signal() {
    // The lost copy goes on for three round trips (six DH steps).
    let (b, backup, mut rng) = lost_copy_goes_on(99, 3);
    // Through a pickle: the restore-signal keys are kept.
    let b = Session::from_pickle(&KEY, &b.pickle(&KEY)).unwrap();
    let mut restored = Session::from_pickle(&KEY, &backup).unwrap();
    // What the restored copy can derive no longer reaches b's poll set.
    let polled = b.poll_addresses();
    let forks = restored
        .encrypt_fork_signal(&mut rng, restored.next_seq())
        .unwrap();
    assert!(forks.iter().all(|f| !polled.contains(&f.address)));
    let restored = Session::from_pickle(&KEY, &backup).unwrap();
    let signals = restored.restore_signals();
    assert!(!signals.is_empty());
    let watched = b.restore_signal_addresses();
    assert!(watched.len() <= protocol::RESTORE_MEMORY + 1);
    let heard: Vec<_> = signals
        .iter()
        .filter(|s| watched.contains(&s.address))
        .collect();
    // Both root keys the restored state holds (`RK` and the one before its last receiving
    // step) are among the peer's last ones.
    assert_eq!(
        heard.len(),
        signals.len(),
        "the signals land where the peer looks"
    );
    assert!(heard[0].write_key.authorizes(&heard[0].address));
    assert_eq!(heard[0].blob.len(), protocol::BLOB_LEN);
    assert!(b.is_restore_signal(&heard[0].address, &heard[0].blob));
    // Deterministic: another restored copy of the same state gives the same bytes.
    assert_eq!(
        Session::from_pickle(&KEY, &backup)
            .unwrap()
            .restore_signals(),
        signals
    );
    // Anything else at the address is not the signal.
    let mut junk = heard[0].blob.clone();
    junk[7] ^= 0x80;
    assert!(!b.is_restore_signal(&heard[0].address, &junk));
    assert!(!b.is_restore_signal(&heard[0].address, &junk[..100]));
    // Our own signal is not mistaken for the peer's.
    for own in b.restore_signals() {
        assert!(!b.is_restore_signal(&own.address, &own.blob));
    }
}

/// The other direction: the side that ended the conversation (it refused the restored
/// peer's fork, or heard its signal) tells the restored copy. That copy shares with it only a
/// root key several of its steps back, which the four signals of `restore_signals` miss; the
/// signals after the end cover every root key remembered, and the restored copy hears one.
#[test]
fn the_side_that_ended_reaches_a_peer_restored_several_steps_back() {
    let (b, backup, _) = lost_copy_goes_on(101, 2);
    let restored = Session::from_pickle(&KEY, &backup).unwrap();
    let watched = restored.restore_signal_addresses();
    let reaches = |signals: &[protocol::RestoreSignal]| {
        signals.iter().any(|s| {
            watched.contains(&s.address) && restored.is_restore_signal(&s.address, &s.blob)
        })
    };
    assert!(
        !reaches(&b.restore_signals()),
        "four steps on: the narrow set misses"
    );
    let after_end = b.restore_signals_after_end();
    assert!(reaches(&after_end), "every remembered root key: heard");
    assert!(after_end.len() <= protocol::RESTORE_MEMORY + 2);
    let narrow = b.restore_signals();
    assert!(narrow.iter().all(|s| after_end.contains(s)), "a superset");
    let mut addresses: Vec<_> = after_end.iter().map(|s| s.address).collect();
    addresses.sort_unstable_by_key(|a| a.0);
    addresses.dedup();
    assert_eq!(addresses.len(), after_end.len(), "distinct addresses");
}

/// The peer forgets a root key's signal after `RESTORE_MEMORY` further DH steps: the bound
/// PROTOCOL.md §6.9 states.
#[test]
fn restore_signals_are_heard_for_restore_memory_steps() {
    let (mut a, mut b, mut rng) = pair(100);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    let backup = a.pickle(&KEY);
    let signals = Session::from_pickle(&KEY, &backup)
        .unwrap()
        .restore_signals();
    let heard = |b: &Session| {
        let watched = b.restore_signal_addresses();
        signals
            .iter()
            .any(|s| watched.contains(&s.address) && b.is_restore_signal(&s.address, &s.blob))
    };
    let mut steps = 0;
    while heard(&b) {
        deliver(&mut a, &send(&mut b, &mut rng, b"ping")[0]);
        deliver(&mut b, &send(&mut a, &mut rng, b"pong")[0]);
        steps += 2;
        assert!(steps <= protocol::RESTORE_MEMORY + 4, "forgotten in time");
    }
    assert!(steps >= protocol::RESTORE_MEMORY, "heard for {steps} steps");
}

/// A probe's skip is spent by the blobs the restored device sends afterwards: a second
/// rollback on the same chain, whose lost blobs no probe saw, still skips every position the
/// second lost state used (no credit left over from the first).
#[test]
fn skipped_positions_are_credited_once_across_two_rollbacks() {
    let (mut a, mut b, mut rng, mailbox) = restored_after_lost_sends(7, 5);
    let taken = taken_positions(&a, &mailbox);
    assert_eq!(taken, 5);
    a.skip_positions(taken as u32);
    for i in 0..2 {
        let blob = send(&mut a, &mut rng, format!("restored {i}").as_bytes()).remove(0);
        deliver(&mut b, &blob);
    }
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    assert!(
        a.decrypt(&ack.address, &ack.blob)
            .unwrap()
            .rollback
            .is_some()
    );
    let backup2 = a.pickle(&KEY);
    let mut lost2 = Vec::new();
    for i in 0..4 {
        let blob = send(&mut a, &mut rng, format!("lost2 {i}").as_bytes()).remove(0);
        deliver(&mut b, &blob);
        lost2.push(blob.address);
    }
    let mut a = Session::from_pickle(&KEY, &backup2).unwrap();
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    assert!(
        a.decrypt(&ack.address, &ack.blob)
            .unwrap()
            .rollback
            .is_some()
    );
    let next = a.upcoming_addresses(1)[0];
    assert!(
        !lost2.contains(&next),
        "a position the lost state used is used again"
    );
    let later = send(&mut a, &mut rng, b"later").remove(0);
    assert_eq!(deliver(&mut b, &later), Some(b"later".to_vec()));
}

/// A copy of the sender restored from an older backup answers our new chain with a chain of
/// its own whose `PN` is below what we read of its old chain (our acknowledgement that told
/// it of the rollback was sealed before we read more). A newer copy of the same device (the
/// lost state's blobs still in flight, or a restore from a later backup) can still deposit on
/// that old chain, where we read up to `Nr` a moment ago: those blobs must stay readable, not
/// be given up unread with the old chain (the simulator's `all` seed 2954, whose sender saw
/// its messages stay *sent* for good).
#[test]
fn an_old_chain_stays_readable_after_a_restored_copy_starts_a_new_one_below_it() {
    let (mut b, mut a, mut rng) = pair(2954);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    let backup = a.pickle(&KEY);
    deliver(&mut b, &send(&mut a, &mut rng, b"two")[0]);
    // Our reply (a new chain of ours) acknowledges "one" and "two" only.
    let reply = send(&mut b, &mut rng, b"reply").remove(0);
    deliver(&mut b, &send(&mut a, &mut rng, b"three")[0]);
    // The newer copy has "four" sealed on its old chain, not yet deposited.
    let four = send(&mut a, &mut rng, b"four").remove(0);

    let mut restored = Session::from_pickle(&KEY, &backup).unwrap();
    let received = restored.decrypt(&reply.address, &reply.blob).unwrap();
    assert!(received.rollback.is_some());
    // Its answer starts its next chain with a `PN` below our `Nr` of the old one.
    let answer = send(&mut restored, &mut rng, b"after the restore").remove(0);
    assert_eq!(
        deliver(&mut b, &answer),
        Some(b"after the restore".to_vec())
    );

    // The newer copy's blob on the old chain is still read.
    assert!(
        poll_set(&b).contains(&four.address),
        "the old chain's window was given up"
    );
    assert_eq!(deliver(&mut b, &four), Some(b"four".to_vec()));
}

/// A device restored to a copy that had not yet read the peer's new chain, whose lost state
/// then sent more than a window of blobs on its old chain (all `all` seed 2665: 18). The
/// restored copy reads the peer's chain (its send step is pending), learns of the rollback
/// and starts its next chain: the lost state may have started that chain too, under the same
/// header key, so the chain skips positions, but never so many that it starts beyond the
/// peer's window on it (`W` addresses from message 0): there the peer would never look, and
/// each side would wait for the other for ever. A lost state that did write `W` or more
/// blobs on the new chain is met by `409`s, which move the sender on; the hedge (§3.7) keeps
/// keys apart whatever the positions.
#[test]
fn a_restored_chain_starts_within_the_peers_window_after_a_long_lost_run() {
    let (mut a, mut b, mut rng) = pair(97);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    // Bob answers: his new chain, which Alice's backup has not read.
    let two = send(&mut b, &mut rng, b"two").remove(0);
    let backup = a.pickle(&KEY);
    let lost = protocol::WINDOW + 4;
    for i in 0..lost {
        let blob = send(&mut a, &mut rng, format!("lost {i}").as_bytes()).remove(0);
        assert!(deliver(&mut b, &blob).is_some());
    }
    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    assert_eq!(deliver(&mut a, &two), Some(b"two".to_vec()));
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert_eq!(received.rollback.map(|r| r.lost_blobs), Some(lost));
    let after = send(&mut a, &mut rng, b"after the restore").remove(0);
    assert!(
        poll_set(&b).contains(&after.address),
        "the restored chain starts where the peer looks"
    );
    assert_eq!(deliver(&mut b, &after), Some(b"after the restore".to_vec()));
}

/// A device restored to a copy whose send step was pending (it had read the peer's new
/// chain, not answered it), with its random generator, whose lost state then answered with a
/// chain of 20 blobs the peer read. The restored copy's probe finds those 20 positions of its next chain taken and
/// starts past them; the peer's acknowledgement then shows the same 20 blobs as seqs it
/// never sent. They were skipped once already: the chain must not move 19 positions more,
/// past the peer's window, where its next message would never be read (the simulator's
/// `restore` seed 1550, whose message stayed *sent*).
#[test]
fn positions_found_taken_on_a_new_chain_are_not_skipped_again_by_the_rollback() {
    let (mut a, mut b, mut rng) = pair(1550);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    assert_eq!(
        deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]),
        Some(b"two".to_vec())
    );
    // The backup holds the random generator too (a VM snapshot): the restored copy starts the
    // very chain its lost state started (the same ratchet key), not a fork the peer refuses.
    let backup = a.pickle(&KEY);
    let generator = SeededRng::new(15_500);
    let mut lost_rng = generator.clone();
    let mut mailbox = BTreeSet::new();
    for i in 0..20 {
        let blob = send(&mut a, &mut lost_rng, format!("lost {i}").as_bytes()).remove(0);
        mailbox.insert(blob.address);
        assert!(deliver(&mut b, &blob).is_some());
    }
    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    let mut a_rng = generator;
    let taken = taken_positions(&a, &mailbox);
    assert_eq!(taken, 20);
    a.skip_positions(taken as u32);
    let after = send(&mut a, &mut a_rng, b"after the restore").remove(0);
    assert!(!mailbox.contains(&after.address));
    assert_eq!(deliver(&mut b, &after), Some(b"after the restore".to_vec()));
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert!(received.rollback.is_some(), "rollback detected");
    let later = send(&mut a, &mut a_rng, b"later").remove(0);
    assert!(!mailbox.contains(&later.address));
    assert!(
        poll_set(&b).contains(&later.address),
        "the chain moved past the peer's window"
    );
    assert_eq!(deliver(&mut b, &later), Some(b"later".to_vec()));
}

/// A peer restored to before it read our blobs acknowledges less of our stream than its lost
/// copy confirmed: its next blob says so (`peer_behind`), so that we answer with a blob that
/// carries our floor (past the numbers it will never get again) and our digest of its stream
/// (which shows it its own rollback). A blob of its read late, or one that acknowledges as
/// much as before, does not (the simulator's `all` seed 2946: neither side learnt of the
/// restore, and messages stayed *sent*).
#[test]
fn a_peer_that_acknowledges_less_than_before_is_behind() {
    let (mut a, mut b, mut rng) = pair(2946);
    let backup = b.pickle(&KEY);
    for text in [&b"one"[..], b"two"] {
        assert!(deliver(&mut b, &send(&mut a, &mut rng, text)[0]).is_some());
    }
    let late = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert!(!received.peer_behind, "a consistent peer");
    assert_eq!(a.peer_acknowledgement().next, 3);
    let received = a.decrypt(&late.address, &late.blob).unwrap();
    assert!(!received.peer_behind, "an older blob read late");

    // The restored copy moves past the positions its lost copy used (as its probe would) and
    // sends more than it did: its blobs under the lost copy's numbers are not the newest, but
    // where we remember another blob under the number (`ack`'s, 1; not `late`'s, 0, read
    // after a later one) it shows the copy behind too (a restored reader that writes a
    // message first, under the number of its lost copy's acknowledgement, is answered at
    // once: a client-core test found nothing put back for it), and so does the one past them.
    let mut restored = Session::from_pickle(&KEY, &backup).unwrap();
    restored.skip_positions(2);
    for (seq, behind) in [(0, false), (1, true), (2, true)] {
        let blob = restored
            .encrypt_acknowledgement(&mut rng, restored.next_seq())
            .unwrap();
        let received = a.decrypt(&blob.address, &blob.blob).unwrap();
        assert_eq!(received.seq, seq);
        assert_eq!(received.peer_behind, behind, "the restored peer is behind");
    }
}

/// Whether `reader` finds `writer`'s behind signal (`docs/PROTOCOL.md` §6.9) where it looks.
fn finds_behind_signal(reader: &Session, writer: &Session) -> bool {
    let addresses = reader.behind_signal_addresses();
    writer
        .behind_signals()
        .iter()
        .any(|s| addresses.contains(&s.address) && reader.is_behind_signal(&s.address, &s.blob))
}

/// The behind signal reaches only a copy restored to before a root key its peer moved past:
/// never a party that is not behind, whatever the point of the conversation (also while an
/// answer is pending, and right after a DH step); and a copy restored to before the peer's
/// last two DH steps, which can read nothing the peer writes now, finds it (the simulator's `all` seeds 1694 and
/// 9112, where neither side ever saw an unreadable blob and messages stayed *sent*).
#[test]
fn only_a_party_restored_past_a_root_key_its_peer_moved_on_from_finds_the_behind_signal() {
    let (mut a, mut b, mut rng) = pair(9112);
    let mut backup = None;
    for round in 0..6 {
        for _ in 0..=round % 2 {
            assert!(deliver(&mut b, &send(&mut a, &mut rng, b"a to b")[0]).is_some());
            assert!(!finds_behind_signal(&a, &b) && !finds_behind_signal(&b, &a));
        }
        if round == 4 {
            backup = Some(a.pickle(&KEY));
        }
        // Also while b's answer is on its way: b looks under the root key before its own send
        // step too, which a has not moved past.
        let answer = send(&mut b, &mut rng, b"b to a");
        assert!(!finds_behind_signal(&a, &b) && !finds_behind_signal(&b, &a));
        assert!(deliver(&mut a, &answer[0]).is_some());
        assert!(!finds_behind_signal(&a, &b) && !finds_behind_signal(&b, &a));
    }
    let restored = Session::from_pickle(&KEY, &backup.unwrap()).unwrap();
    assert!(
        finds_behind_signal(&restored, &b),
        "the restored copy is told"
    );
    assert!(!finds_behind_signal(&b, &restored), "never the other way");
}

/// A copy restored to the very start of the conversation, many of the peer's root keys back,
/// is told too: every root key the peer remembers but the newest has its behind signal. With
/// three signals (the two to four root keys of about one round trip), the simulator's `all`
/// seed 13301 was lost without a word: Bob, restored to his state right after joining, wrote
/// where Alice no longer looked and could read nothing of hers, five of her root keys on.
#[test]
fn a_copy_restored_to_the_start_of_the_conversation_finds_the_behind_signal() {
    let (mut a, mut b, mut rng) = pair(13301);
    let backup = a.pickle(&KEY);
    for _ in 0..7 {
        assert!(deliver(&mut b, &send(&mut a, &mut rng, b"a to b")[0]).is_some());
        assert!(deliver(&mut a, &send(&mut b, &mut rng, b"b to a")[0]).is_some());
        assert!(!finds_behind_signal(&a, &b) && !finds_behind_signal(&b, &a));
    }
    let restored = Session::from_pickle(&KEY, &backup).unwrap();
    assert!(
        finds_behind_signal(&restored, &b),
        "the copy restored to the start is told"
    );
    assert!(!finds_behind_signal(&b, &restored), "never the other way");
}

/// A restored copy answers before it finds it can read nothing: its first send takes a DH
/// step of its own, to a root key the peer never saw. It looks for the behind signal under
/// the root key before that step too, which the peer moved past, and finds it (the
/// simulator's `all` seed 23815: Bob, restored to a copy five of Alice's root keys back,
/// wrote ten messages after his restore; looking only under his new root key, he was never
/// told, and both sides' messages stayed *sent*).
#[test]
fn a_restored_copy_that_answered_before_it_learnt_it_is_behind_still_finds_the_behind_signal() {
    let (mut a, mut b, mut rng) = pair(23815);
    assert!(deliver(&mut b, &send(&mut a, &mut rng, b"a to b")[0]).is_some());
    // b has read a's chain and not answered yet: its next send steps.
    let backup = b.pickle(&KEY);
    for _ in 0..3 {
        assert!(deliver(&mut a, &send(&mut b, &mut rng, b"b to a")[0]).is_some());
        assert!(deliver(&mut b, &send(&mut a, &mut rng, b"a to b")[0]).is_some());
    }
    let mut restored = Session::from_pickle(&KEY, &backup).unwrap();
    assert!(finds_behind_signal(&restored, &a), "told before it answers");
    let answer = send(&mut restored, &mut rng, b"restored b to a");
    assert!(
        a.decrypt(&answer[0].address, &answer[0].blob).is_err(),
        "a cannot read the restored copy's answer"
    );
    assert!(
        finds_behind_signal(&restored, &a),
        "told after its answer's DH step too"
    );
    assert!(!finds_behind_signal(&a, &restored), "never the other way");
}

/// A copy of the peer's device restored to before messages we read writes again under the
/// numbers its lost copy used, at positions we read past (the lost copy's blobs expired, so
/// the mailbox took the new ones), and its next messages land where we read. Shown at once,
/// they would come before the messages they follow, which reach us only once the restored
/// copy learns of its rollback and sends them again (the simulator's `all` seed 341). Each
/// blob names its predecessor's hedge (`prev`, `docs/PROTOCOL.md` §6.4), which here is not
/// the blob we received under that number: the first is refused, and so is the one that
/// follows it (also after a pickle round trip); our acknowledgement shows the writer its
/// rollback, and its messages, sent again, arrive in their order.
#[test]
fn a_restored_writers_messages_that_follow_blobs_we_never_received_wait_for_them() {
    let (mut a, mut b, mut rng) = pair(341);
    deliver(&mut b, &send(&mut a, &mut rng, b"zero")[0]);
    let backup = a.pickle(&KEY);
    let floor = a.next_seq();
    for text in [&b"lost 1"[..], b"lost 2"] {
        let blobs = a.encrypt(&mut rng, text, floor).unwrap();
        assert_eq!(deliver(&mut b, &blobs[0]), Some(text.to_vec()));
    }
    let mut restored = Session::from_pickle(&KEY, &backup).unwrap();
    let floor = restored.next_seq();
    let mut sent = Vec::new();
    for text in [&b"one"[..], b"two", b"three", b"four"] {
        let mut blobs = restored.encrypt(&mut rng, text, floor).unwrap();
        sent.push((text, blobs.remove(0)));
    }
    for (_, blob) in &sent[..2] {
        assert!(!poll_set(&b).contains(&blob.address), "read past");
    }
    for (i, (_, blob)) in sent[2..].iter().enumerate() {
        if i == 1 {
            b = Session::from_pickle(&KEY, &b.pickle(&KEY)).unwrap();
        }
        let received = b.decrypt(&blob.address, &blob.blob).unwrap();
        assert!(received.peer_rolled_back, "blob {i} overtakes");
        assert_eq!(received.plaintext, None);
        assert!(!received.duplicate);
    }
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let rollback = restored
        .decrypt(&ack.address, &ack.blob)
        .unwrap()
        .rollback
        .expect("our acknowledgement shows the writer its rollback");
    assert!(rollback.unconfirmed_from <= sent[0].1.seq);
    let floor = restored.next_seq();
    for (text, first) in &sent {
        let blobs = restored
            .encrypt_resend(&mut rng, text, floor, first.message_id)
            .unwrap();
        let received = b.decrypt(&blobs[0].address, &blobs[0].blob).unwrap();
        assert!(!received.peer_rolled_back);
        assert_eq!(
            received.plaintext.as_deref().map(|p| p.to_vec()),
            Some(text.to_vec())
        );
    }
}

/// The same with the lost copy's blob an acknowledgement-only one (the simulator's `all` seed
/// 2928): the reader read it under a number where the restored writer then put a message
/// (the reader read past that address), and the writer's next message names that message.
/// Our digest does not cover acknowledgement-only blobs, and the restored writer's own blob
/// under that number may be acknowledgement-only too, so the refusal goes into our digest:
/// either way our acknowledgement shows the writer its rollback, and what it sends again
/// arrives in order.
#[test]
fn a_restored_writers_message_that_follows_another_blob_than_an_acknowledgement_we_read_waits() {
    for restored_acks_first in [false, true] {
        let (mut a, mut b, mut rng) = pair(2928);
        deliver(&mut b, &send(&mut a, &mut rng, b"zero")[0]);
        let backup = a.pickle(&KEY);
        let lost = a.encrypt_acknowledgement(&mut rng, a.next_seq()).unwrap();
        assert!(
            !b.decrypt(&lost.address, &lost.blob)
                .unwrap()
                .peer_rolled_back
        );
        let mut restored = Session::from_pickle(&KEY, &backup).unwrap();
        let floor = restored.next_seq();
        let mut sent = Vec::new();
        if restored_acks_first {
            let ack = restored.encrypt_acknowledgement(&mut rng, floor).unwrap();
            assert_eq!(ack.address, lost.address, "read past");
        }
        for text in [&b"one"[..], b"two"] {
            let mut blobs = restored.encrypt(&mut rng, text, floor).unwrap();
            sent.push((text, blobs.remove(0)));
        }
        let overtaking = if restored_acks_first {
            &sent[0].1
        } else {
            assert_eq!(sent[0].1.address, lost.address, "read past");
            &sent[1].1
        };
        let received = b.decrypt(&overtaking.address, &overtaking.blob).unwrap();
        assert!(
            received.peer_rolled_back,
            "it follows a blob we never received"
        );
        assert_eq!(received.plaintext, None);
        let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
        let rollback = restored
            .decrypt(&ack.address, &ack.blob)
            .unwrap()
            .rollback
            .expect("our acknowledgement shows the writer its rollback");
        assert!(rollback.unconfirmed_from <= sent[0].1.seq);
        let floor = restored.next_seq();
        for (text, first) in &sent {
            let blobs = restored
                .encrypt_resend(&mut rng, text, floor, first.message_id)
                .unwrap();
            let received = b.decrypt(&blobs[0].address, &blobs[0].blob).unwrap();
            assert!(!received.peer_rolled_back);
            assert_eq!(
                received.plaintext.as_deref().map(|p| p.to_vec()),
                Some(text.to_vec())
            );
        }
    }
}

/// A writer whose blob found another copy's blob at its address abandons it (and the blobs
/// sealed after it that never reached the mailbox) and sends those messages again; the
/// re-sent blob still names the abandoned one as its predecessor (the simulator's `all` seed
/// 4222). Here the writer went back to a copy that had sealed `one`, `two`, `three`, of which
/// only `one` reached the mailbox (at an address the reader had read past: it expired unread);
/// an earlier lost copy of the device wrote three messages at the next positions, which the
/// reader read under the same numbers. `two` meets one of them, so `two` and `three` are
/// abandoned and go again. Had the abandoned blob's hedge been forgotten (the re-sent blob
/// naming none), the reader, holding the lost copy's counted blob under that number, would
/// have shown `two` before `one`; it refuses it instead, its acknowledgement shows the
/// writer its rollback, and `one`, `two`, `three` arrive in order.
#[test]
fn a_message_sent_again_after_an_abandoned_blob_still_names_it() {
    let (mut a, mut b, mut rng) = pair(4222);
    deliver(&mut b, &send(&mut a, &mut rng, b"zero")[0]);
    let backup = a.pickle(&KEY);
    // The copy the device goes back to: three messages, positions 0, 1, 2.
    let floor = a.next_seq();
    let mut sealed = Vec::new();
    for text in [&b"one"[..], b"two", b"three"] {
        let mut blobs = a.encrypt(&mut rng, text, floor).unwrap();
        sealed.push((text, blobs.remove(0)));
    }
    // A lost copy (restored from the same backup) found position 0 taken and wrote three
    // messages at positions 1, 2, 3 under the same numbers; the reader shows them (they are
    // concurrent with the others) and reads past position 0, whose blob expired unread.
    let mut lost = Session::from_pickle(&KEY, &backup).unwrap();
    lost.skip_positions(1);
    let lost_floor = lost.next_seq();
    let mut lost_addresses = Vec::new();
    for (i, text) in [&b"lost 1"[..], b"lost 2", b"lost 3"]
        .into_iter()
        .enumerate()
    {
        let blobs = lost.encrypt(&mut rng, text, lost_floor).unwrap();
        assert_eq!(blobs[0].seq, sealed[0].1.seq + i as u32, "the same numbers");
        assert_eq!(deliver(&mut b, &blobs[0]), Some(text.to_vec()));
        lost_addresses.push(blobs[0].address);
    }
    assert_eq!(
        sealed[1].1.address, lost_addresses[0],
        "`two` meets `lost 1`"
    );
    // `two` finds foreign bytes at its address: it and `three` (not on the mailbox yet) are
    // abandoned, the positions found taken skipped, and both sent again behind `one`, which
    // is still unconfirmed (the floor stays at it).
    for (_, blob) in &sealed[1..] {
        a.abandon(blob.seq);
    }
    a.skip_positions(1);
    let mut again = Vec::new();
    for (text, first) in &sealed[1..] {
        let blobs = a
            .encrypt_resend(&mut rng, text, floor, first.message_id)
            .unwrap();
        again.push(blobs);
    }
    for blobs in &again {
        let received = b.decrypt(&blobs[0].address, &blobs[0].blob).unwrap();
        assert!(
            received.peer_rolled_back,
            "it follows blobs we never received (`one`, and the abandoned `three`)"
        );
        assert_eq!(received.plaintext, None);
    }
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let rollback = a
        .decrypt(&ack.address, &ack.blob)
        .unwrap()
        .rollback
        .expect("our acknowledgement shows the writer its rollback");
    assert!(rollback.unconfirmed_from <= sealed[0].1.seq);
    let floor = a.next_seq();
    for (text, first) in &sealed {
        let blobs = a
            .encrypt_resend(&mut rng, text, floor, first.message_id)
            .unwrap();
        let received = b.decrypt(&blobs[0].address, &blobs[0].blob).unwrap();
        assert!(!received.peer_rolled_back);
        assert_eq!(
            received.plaintext.as_deref().map(|p| p.to_vec()),
            Some(text.to_vec()),
            "in order"
        );
    }
}

/// A consistent writer is never refused: every blob names the one before it, also across
/// acknowledgement-only blobs, multi-blob messages, crossing ratchet steps and a pickle round
/// trip of either side.
#[test]
fn a_consistent_writer_is_never_taken_for_a_restored_one() {
    let (mut a, mut b, mut rng) = pair(7);
    let long = vec![b'x'; 3 * protocol::FRAGMENT_CAPACITY + 1];
    for round in 0..6 {
        let floor = a.next_seq().saturating_sub(3);
        let text: &[u8] = if round % 2 == 0 { &long } else { b"short" };
        for blob in a.encrypt(&mut rng, text, floor).unwrap() {
            let received = b.decrypt(&blob.address, &blob.blob).unwrap();
            assert!(!received.peer_rolled_back, "round {round}");
        }
        let ack = a.encrypt_acknowledgement(&mut rng, floor).unwrap();
        assert!(!b.decrypt(&ack.address, &ack.blob).unwrap().peer_rolled_back);
        let reply = send(&mut b, &mut rng, b"reply");
        assert_eq!(deliver(&mut a, &reply[0]), Some(b"reply".to_vec()));
        a = Session::from_pickle(&KEY, &a.pickle(&KEY)).unwrap();
        b = Session::from_pickle(&KEY, &b.pickle(&KEY)).unwrap();
    }
}

/// A device restored to a copy that had not yet answered the peer's chain learns of its lost
/// copy twice: first of one blob, while its send step is pending (its next chain starts one
/// position on, §6.5), then, once that chain is read, of many more, all written by the lost
/// copy on the *old* chain. The new chain was started by this state after the first
/// detection: the lost copy never held its keys, so moving it by that count would only take
/// it past the peer's window, where its next message would never be read (the simulator's
/// `all` seed 6949, whose messages stayed *sent*). It moves at most to position `W − 1`.
#[test]
fn a_chain_started_after_a_rollback_stays_in_the_peers_window_when_more_is_found_lost() {
    let (mut a, mut b, mut rng) = pair(6949);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    let two = send(&mut b, &mut rng, b"two").remove(0);
    let backup = a.pickle(&KEY);
    let lost = protocol::WINDOW + 4;
    let mut first_ack = None;
    for i in 0..lost {
        let blob = send(&mut a, &mut rng, format!("lost {i}").as_bytes()).remove(0);
        assert!(deliver(&mut b, &blob).is_some());
        if i == 0 {
            first_ack = Some(b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap());
        }
    }
    let second_ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let first_ack = first_ack.unwrap();

    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    assert_eq!(deliver(&mut a, &two), Some(b"two".to_vec()));
    let received = a.decrypt(&first_ack.address, &first_ack.blob).unwrap();
    assert_eq!(received.rollback.map(|r| r.lost_blobs), Some(1));
    let after = send(&mut a, &mut rng, b"after the restore").remove(0);
    assert_eq!(deliver(&mut b, &after), Some(b"after the restore".to_vec()));
    // The flag survives a reload, as the simulator's client reloads between the two.
    a = Session::from_pickle(&KEY, &a.pickle(&KEY)).unwrap();
    let received = a.decrypt(&second_ack.address, &second_ack.blob).unwrap();
    // All but the one found first and the number "after the restore" took.
    assert_eq!(received.rollback.map(|r| r.lost_blobs), Some(lost - 2));
    let later = send(&mut a, &mut rng, b"later").remove(0);
    assert!(
        poll_set(&b).contains(&later.address),
        "the chain moved past the peer's window"
    );
    assert_eq!(deliver(&mut b, &later), Some(b"later".to_vec()));
}

/// A device restored to before it read the peer's chain learns of its lost copy twice, one
/// blob each time, while its send step is pending, and between the two it acknowledges on its
/// old chain under a number the lost copy used. The lost copy had answered that chain with
/// two messages at the first two positions of the next chain, which the peer read. Each
/// acknowledgement's count is new, but the lost copy's blobs on the next chain are all those
/// numbered from what the peer's chain acknowledged at its first blob (the lost copy answered
/// it only after reading it): the next chain starts past them, where the peer still looks
/// (the simulator's `all` seed 7266, whose message went to position 1 and stayed *sent*).
#[test]
fn a_next_chain_skips_every_number_a_lost_copy_may_have_used_on_it() {
    let (mut a, mut b, mut rng) = pair(7266);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    let two = send(&mut b, &mut rng, b"two").remove(0);
    let backup = a.pickle(&KEY);

    // The lost copy: acknowledges on its old chain, then answers on a new one.
    assert_eq!(deliver(&mut a, &two), Some(b"two".to_vec()));
    let ack = a.encrypt_acknowledgement(&mut rng, a.next_seq()).unwrap();
    b.decrypt(&ack.address, &ack.blob).unwrap();
    let first_ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    for text in [&b"lost 0"[..], b"lost 1"] {
        let blob = send(&mut a, &mut rng, text).remove(0);
        assert_eq!(deliver(&mut b, &blob), Some(text.to_vec()));
    }
    let second_ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();

    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    assert_eq!(deliver(&mut a, &two), Some(b"two".to_vec()));
    let received = a.decrypt(&first_ack.address, &first_ack.blob).unwrap();
    assert_eq!(received.rollback.map(|r| r.lost_blobs), Some(1));
    let _ = a.encrypt_acknowledgement(&mut rng, a.next_seq()).unwrap();
    a = Session::from_pickle(&KEY, &a.pickle(&KEY)).unwrap();
    let received = a.decrypt(&second_ack.address, &second_ack.blob).unwrap();
    assert_eq!(received.rollback.map(|r| r.lost_blobs), Some(1));
    let later = send(&mut a, &mut rng, b"later").remove(0);
    assert!(
        poll_set(&b).contains(&later.address),
        "the next chain started where the peer had read"
    );
    assert_eq!(deliver(&mut b, &later), Some(b"later".to_vec()));
}

/// A chain started after a rollback skips at most `NEXT_CHAIN_SKIP_MAX` positions, so the
/// blobs a client seals there and abandons later (at most 8 while they wait for the mailbox)
/// still leave its next blob in the peer's window for a new chain (the simulator's `restore`
/// seed 1341: a skip of `W − 1` left no room, a second rollback abandoned the 4 blobs sealed
/// there, and every later message landed where the peer never looks).
#[test]
fn a_next_chain_started_after_a_rollback_leaves_room_for_abandoned_blobs() {
    let (mut a, mut b, mut rng) = pair(1341);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    let two = send(&mut b, &mut rng, b"two").remove(0);
    let backup = a.pickle(&KEY);

    // The lost copy: ten more messages on its old chain, all read by the peer.
    for i in 0..10 {
        let text = format!("lost {i}");
        let blob = send(&mut a, &mut rng, text.as_bytes()).remove(0);
        assert_eq!(deliver(&mut b, &blob), Some(text.into_bytes()));
    }
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();

    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    assert_eq!(deliver(&mut a, &two), Some(b"two".to_vec()));
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert_eq!(received.rollback.map(|r| r.lost_blobs), Some(10));
    assert_eq!(
        a.upcoming_chain_lead(),
        Some(protocol::NEXT_CHAIN_SKIP_MAX),
        "ten numbers may be on the next chain; it skips at most NEXT_CHAIN_SKIP_MAX"
    );
    // Eight messages sealed there never reach the mailbox (a second rollback pulled them).
    for i in 0..8 {
        for blob in send(&mut a, &mut rng, format!("abandoned {i}").as_bytes()) {
            a.abandon(blob.seq);
        }
    }
    let kept = send(&mut a, &mut rng, b"kept").remove(0);
    assert!(
        poll_set(&b).contains(&kept.address),
        "the peer still finds the next chain"
    );
    assert_eq!(deliver(&mut b, &kept), Some(b"kept".to_vec()));
}

/// Two restored copies of the peer (`a`) on one new chain: the first skipped positions 0–2
/// and wrote at 3–5, which `b` read, keeping skipped keys for 0–2; the second, restored from
/// the same backup, wrote from position 0 under another ratchet key: `early` at 0–2, then
/// (its blob at 3 met the first copy's, a 409) `later` at 6. Returns `(a, b, rng, early,
/// later)`, with nothing of the second copy's delivered yet.
fn two_copies_on_one_chain(
    seed: u64,
) -> (
    Session,
    Session,
    SeededRng,
    Vec<protocol::OutgoingBlob>,
    protocol::OutgoingBlob,
) {
    let (mut a, mut b, mut rng) = pair(seed);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    let backup = a.pickle(&KEY);

    // The first copy starts the chain at position 3.
    a.skip_positions(3);
    for i in 0..3 {
        let text = format!("first copy {i}");
        let blob = send(&mut a, &mut rng, text.as_bytes()).remove(0);
        assert_eq!(deliver(&mut b, &blob), Some(text.into_bytes()));
    }

    // The second copy starts it at 0 with another ratchet key.
    let mut second = Session::from_pickle(&KEY, &backup).unwrap();
    let early: Vec<_> = (0..3)
        .map(|i| send(&mut second, &mut rng, format!("second copy {i}").as_bytes()).remove(0))
        .collect();
    second.skip_positions(3);
    let later = send(&mut second, &mut rng, b"second copy, later").remove(0);
    (a, b, rng, early, later)
}

/// Two restored copies of the peer start one new chain (same header key, two ratchet keys):
/// the first skipped positions 0–2 (a rollback it knew of) and wrote at 3–5, which we read,
/// keeping skipped keys for 0–2; the second knew nothing of it and wrote from position 0.
/// Following the second copy's fork, we also derive its keys at the positions we keep as
/// skipped keys of the first, so its blobs there are read, not refused as `InconsistentHeader`
/// (the simulator's `all` seed 4655: refused, they arrived only when sent again, after a later
/// message).
#[test]
fn a_fork_is_read_at_positions_the_chain_it_replaces_skipped() {
    // The second copy's blob at 6 is read first.
    let (_, mut b, _, early, later) = two_copies_on_one_chain(4655);
    b.decrypt(&later.address, &later.blob)
        .expect("the fork is followed");
    // The two keys at each of those addresses survive a pickle.
    let mut b = Session::from_pickle(&KEY, &b.pickle(&KEY)).unwrap();

    for blob in &early {
        assert!(
            poll_set(&b).contains(&blob.address),
            "its address stays polled"
        );
        b.decrypt(&blob.address, &blob.blob)
            .expect("a blob of the fork where the first copy skipped is read");
    }
    assert!(
        early
            .iter()
            .all(|blob| !poll_set(&b).contains(&blob.address)),
        "read, the addresses leave the poll set"
    );
}

/// As above, but the second copy's blob at a position the first copy skipped is the first we
/// read of it: the fork is followed there, from a position below the window, and its later
/// blob (past the window's start) is read after it, in the order the copy wrote them (the
/// simulator's `all` seed 4655: refused as `InconsistentHeader` until the later blob was
/// read, the early ones came after it).
#[test]
fn a_fork_is_followed_from_a_position_the_chain_it_replaces_skipped() {
    let (mut a, mut b, mut rng, early, later) = two_copies_on_one_chain(46550);
    for (i, blob) in early.iter().enumerate() {
        b.decrypt(&blob.address, &blob.blob)
            .unwrap_or_else(|err| panic!("early blob {i} is read first: {err:?}"));
        // The state survives a pickle between reads.
        b = Session::from_pickle(&KEY, &b.pickle(&KEY)).unwrap();
    }
    assert!(
        poll_set(&b).contains(&later.address),
        "the window stays where the first copy left it"
    );
    b.decrypt(&later.address, &later.blob)
        .expect("the later blob of the fork is read after them");
    assert!(
        early
            .iter()
            .chain([&later])
            .all(|blob| !poll_set(&b).contains(&blob.address)),
        "read, the addresses leave the poll set"
    );
    // The first copy's chain is given up: a late blob of it is refused.
    let late = send(&mut a, &mut rng, b"first copy, late").remove(0);
    assert!(b.decrypt(&late.address, &late.blob).is_err());
}

/// A hidden rollback (the restored state has sent as many numbers as its lost copy, so
/// `lost_blobs` = 0 and the old chain skips nothing) found while a send step is pending: the
/// lost copy may have started that chain, and the peer read its first blobs there, so the
/// chain skips them too (the simulator's `all` seed 14748: it started at position 0, where the
/// peer had read the lost copy's blobs, and its messages were never read).
#[test]
fn a_hidden_rollback_still_moves_the_next_chain_past_what_the_peer_read_there() {
    let (mut a, mut b, mut rng) = pair(14748);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    let two = send(&mut b, &mut rng, b"two").remove(0);
    let backup = a.pickle(&KEY);

    // The lost copy answers on a new chain; the peer reads positions 0 and 1 of it.
    assert_eq!(deliver(&mut a, &two), Some(b"two".to_vec()));
    for text in [&b"lost 0"[..], b"lost 1"] {
        let blob = send(&mut a, &mut rng, text).remove(0);
        assert_eq!(deliver(&mut b, &blob), Some(text.to_vec()));
    }
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();

    // Restored, it sends three messages on its old chain (never read) before it reads the
    // peer's new key: as many numbers as the lost copy used, and more.
    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    for text in [&b"h1"[..], b"h2", b"h3"] {
        let _ = send(&mut a, &mut rng, text);
    }
    assert_eq!(deliver(&mut a, &two), Some(b"two".to_vec()));
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert_eq!(
        received.rollback.map(|r| r.lost_blobs),
        Some(0),
        "a hidden rollback, seen by the digest only"
    );
    assert_eq!(
        a.upcoming_chain_lead(),
        Some(2),
        "past the two the peer read"
    );
    let after = send(&mut a, &mut rng, b"after").remove(0);
    assert!(
        poll_set(&b).contains(&after.address),
        "the next chain starts where the peer reads"
    );
    assert_eq!(deliver(&mut b, &after), Some(b"after".to_vec()));
}

/// A restored state recognises the blobs its lost copy sealed at its next positions (their
/// headers open under its header key and name those positions and its ratchet key), each with
/// its write key, and nothing else: the run stops at junk, and a blob of ours moved to
/// another of our addresses does not open there (`docs/PROTOCOL.md` §6.1, §8 "Positions a
/// lost copy used").
#[test]
fn own_upcoming_blobs_are_the_lost_copys_and_nothing_else() {
    let (mut a, mut b, mut rng) = pair(99);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
    deliver(&mut b, &send(&mut a, &mut rng, b"three")[0]);
    let backup = a.pickle(&KEY);
    let lost: Vec<_> = (0..5)
        .map(|i| send(&mut a, &mut rng, format!("lost {i}").as_bytes()).remove(0))
        .collect();
    let a = Session::from_pickle(&KEY, &backup).unwrap();
    let found: Vec<(Address, Vec<u8>)> = lost.iter().map(|o| (o.address, o.blob.clone())).collect();
    let own = a.own_upcoming_blobs(&found);
    assert_eq!(own.len(), 5);
    for ((write_key, blob), sent) in own.iter().zip(&lost) {
        assert_eq!(write_key.address(), sent.address);
        assert_eq!(blob, &sent.blob);
    }
    let mut junk = found.clone();
    junk[2].1 = vec![0u8; junk[2].1.len()];
    assert_eq!(
        a.own_upcoming_blobs(&junk).len(),
        2,
        "the run stops at junk"
    );
    let mut swapped = found.clone();
    let first = swapped[0].1.clone();
    swapped[0].1 = swapped[1].1.clone();
    swapped[1].1 = first;
    assert!(a.own_upcoming_blobs(&swapped).is_empty());
    // The peer's blobs are sealed under its own header key: never ours.
    let theirs = send(&mut b, &mut rng, b"four").remove(0);
    let mut peer = found;
    peer[0] = (peer[0].0, theirs.blob);
    assert!(a.own_upcoming_blobs(&peer).is_empty());
}

/// A device restored to before it answered the peer's chain learns of its lost copy, which
/// had answered with more blobs on the next chain than a new chain may skip
/// (`NEXT_CHAIN_SKIP_MAX`). Its next message lands at a position where the peer read the lost
/// copy's blob and no longer polls (that blob expired, so the mailbox took the new one). The
/// peer finds it in the padding of its polls (PROTOCOL.md §8, "Rewritten addresses"); its
/// header opens as the peer's at that position, so the acknowledgement the peer owes carries a
/// marked digest, which shows the restored copy a rollback again, and its message goes again
/// until it lands where the peer reads (the simulator's `all` seed 14338, where the restored
/// copy knew of its rollback already, the acknowledgement showed it nothing new, and the
/// message stayed *sent*). Blobs whose header does not open there mark nothing.
#[test]
fn a_message_written_where_the_peer_read_a_lost_copys_blob_goes_again_once_the_peer_finds_it() {
    let (mut a, mut b, mut rng) = pair(14338);
    deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
    let two = send(&mut b, &mut rng, b"two").remove(0);
    let backup = a.pickle(&KEY);
    assert_eq!(deliver(&mut a, &two), Some(b"two".to_vec()));
    let lost = 11;
    for i in 0..lost {
        let text = format!("lost {i}");
        let blob = send(&mut a, &mut rng, text.as_bytes()).remove(0);
        assert_eq!(deliver(&mut b, &blob), Some(text.into_bytes()));
    }
    let ack = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();

    let mut a = Session::from_pickle(&KEY, &backup).unwrap();
    assert_eq!(deliver(&mut a, &two), Some(b"two".to_vec()));
    let received = a.decrypt(&ack.address, &ack.blob).unwrap();
    assert!(
        received.rollback.is_some(),
        "the restored copy knows it went back"
    );
    let text = b"after the restore";
    let mut message = send(&mut a, &mut rng, text).remove(0);
    let id = message.message_id;
    assert!(
        !poll_set(&b).contains(&message.address),
        "a new chain skips at most NEXT_CHAIN_SKIP_MAX positions: this one lies where the peer read"
    );

    // Junk at a read address (only the mailbox's operator could put it there) marks nothing.
    let junk_at = b.read_addresses()[0].0;
    assert!(b.take_rewrite(&junk_at, &[0x42; protocol::BLOB_LEN]));
    let plain = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
    let mut a_copy = Session::from_pickle(&KEY, &a.pickle(&KEY)).unwrap();
    assert!(
        a_copy
            .decrypt(&plain.address, &plain.blob)
            .unwrap()
            .rollback
            .is_none(),
        "junk shows the writer nothing"
    );

    let mut rounds = 0;
    let shown = loop {
        rounds += 1;
        assert!(
            rounds <= lost,
            "the message never reached the peer's window"
        );
        if poll_set(&b).contains(&message.address) {
            break deliver(&mut b, &message);
        }
        assert!(
            b.read_addresses()
                .iter()
                .any(|(x, _)| *x == message.address),
            "the peer fetches it again in its padding"
        );
        // Reloaded first: the header keys of the read addresses survive a pickle.
        b = Session::from_pickle(&KEY, &b.pickle(&KEY)).unwrap();
        assert!(b.take_rewrite(&message.address, &message.blob));
        let owed = b.encrypt_acknowledgement(&mut rng, b.next_seq()).unwrap();
        let received = a.decrypt(&owed.address, &owed.blob).unwrap();
        assert!(
            received.rollback.is_some(),
            "round {rounds}: the marked digest shows the restored copy a rollback again"
        );
        message = a
            .encrypt_resend(&mut rng, text, a.next_seq(), id)
            .unwrap()
            .remove(0);
    };
    assert_eq!(shown, Some(text.to_vec()));
}

/// Two restored copies of the sender answer one reply of ours, each with a chain of its own
/// (same header key: a fork). We read positions 0 and 1 of the sender's chain before; the
/// first copy's `PN` = 3 sets our reach there to 3 (position 2 kept as a skipped key); the
/// second copy, restored from a later backup, had sealed position 3 too, and its fork's
/// `PN` = 4 says so: the fork is reported past our reach while a number of the sender's
/// stream below its first blob is missing (`docs/PROTOCOL.md` §6.6, "A fork past our reach";
/// the simulator's `all` seed 16769). A fork from the first backup (`PN` = 3, within reach,
/// though past the 2 positions we read) is not. The report survives a pickle and ends at the
/// sender's next chain.
#[test]
fn a_fork_whose_pn_passes_our_reach_on_the_chain_before_is_reported() {
    for (later_backup, past_reach) in [(true, true), (false, false)] {
        let (mut a, mut b, mut rng) = pair(16769);
        deliver(&mut b, &send(&mut a, &mut rng, b"one")[0]);
        deliver(&mut a, &send(&mut b, &mut rng, b"two")[0]);
        // a's chain X: positions 0 and 1 read by b; 2 sealed in both backups, 3 in the later.
        deliver(&mut b, &send(&mut a, &mut rng, b"x0")[0]);
        deliver(&mut b, &send(&mut a, &mut rng, b"x1")[0]);
        let x2 = send(&mut a, &mut rng, b"x2").remove(0);
        let backup1 = a.pickle(&KEY);
        let _unread = send(&mut a, &mut rng, b"x3");
        let backup2 = a.pickle(&KEY);
        let reply = send(&mut b, &mut rng, b"reply").remove(0);

        // Copy 1 answers from the older backup: `PN` = 3.
        let mut copy1 = Session::from_pickle(&KEY, &backup1).unwrap();
        copy1.decrypt(&reply.address, &reply.blob).unwrap();
        // Sealed as the client seals: the floor stays at the first number not confirmed.
        let floor = copy1.peer_acknowledgement().next;
        let first = copy1.encrypt(&mut rng, b"copy 1", floor).unwrap().remove(0);
        let received = b.decrypt(&first.address, &first.blob).unwrap();
        assert!(!b.fork_past_reach(&received.chain), "not a fork");
        // The reach survives a pickle.
        let mut b = Session::from_pickle(&KEY, &b.pickle(&KEY)).unwrap();

        // Copy 2 answers too; its first position was read on copy 1's chain, so b reads its
        // second.
        let backup = if later_backup { &backup2 } else { &backup1 };
        let mut copy2 = Session::from_pickle(&KEY, backup).unwrap();
        copy2.decrypt(&reply.address, &reply.blob).unwrap();
        let floor = copy2.peer_acknowledgement().next;
        let _ = copy2.encrypt(&mut rng, b"copy 2, first", floor).unwrap();
        let fork = copy2
            .encrypt(&mut rng, b"copy 2, second", floor)
            .unwrap()
            .remove(0);
        let fork_chain = b
            .decrypt(&fork.address, &fork.blob)
            .expect("the fork is followed")
            .chain;
        assert_eq!(b.fork_past_reach(&fork_chain), past_reach);
        // It survives a pickle, names that fork only, and stays while a number below the
        // fork's first blob is missing (x2 arrives, x3 does not).
        let mut b = Session::from_pickle(&KEY, &b.pickle(&KEY)).unwrap();
        assert_eq!(b.fork_past_reach(&fork_chain), past_reach);
        assert!(!b.fork_past_reach(&[0; 32]));
        deliver(&mut b, &x2);
        assert_eq!(b.fork_past_reach(&fork_chain), past_reach);

        // The sender's next chain ends it.
        let answer = send(&mut b, &mut rng, b"answer").remove(0);
        copy2.decrypt(&answer.address, &answer.blob).unwrap();
        let next = send(&mut copy2, &mut rng, b"next chain").remove(0);
        let next_chain = b.decrypt(&next.address, &next.blob).unwrap().chain;
        assert_ne!(next_chain, fork_chain);
        assert!(!b.fork_past_reach(&fork_chain) && !b.fork_past_reach(&next_chain));
    }
}

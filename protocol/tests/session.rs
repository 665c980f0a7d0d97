//! Scenario tests of the session: ordering, loss, duplicates, tampering, bounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use protocol::testing::SeededRng;
use protocol::*;

#[test]
fn ping_pong_with_dh_steps_both_ways() {
    let (mut a, mut b, mut rng) = pair(1);
    assert_eq!(a.safety_code(), b.safety_code());
    assert_eq!(a.role(), Role::Joiner);
    assert_eq!(b.role(), Role::Inviter);
    for round in 0..6u8 {
        let m = send(&mut b, &mut rng, &[round; 10]);
        assert_eq!(deliver(&mut a, &m[0]), Some(vec![round; 10]));
        let m = send(&mut a, &mut rng, &[round + 100; 3]);
        assert_eq!(deliver(&mut b, &m[0]), Some(vec![round + 100; 3]));
    }
}

#[test]
fn out_of_order_within_window_and_late_skipped_delivery() {
    let (mut a, mut b, mut rng) = pair(2);
    let msgs: Vec<_> = (0..WINDOW as u8)
        .map(|i| send(&mut a, &mut rng, &[i]).remove(0))
        .collect();
    // Deliver the last one first: every earlier one becomes a skipped key, still polled.
    assert_eq!(
        deliver(&mut b, &msgs[msgs.len() - 1]),
        Some(vec![WINDOW as u8 - 1])
    );
    for (i, m) in msgs.iter().enumerate().take(msgs.len() - 1).rev() {
        assert_eq!(deliver(&mut b, m), Some(vec![i as u8]));
    }
    // A reply after a DH step, then a late message of the old chain still decrypts.
    let late = send(&mut a, &mut rng, b"late").remove(0);
    let r = send(&mut b, &mut rng, b"reply").remove(0);
    assert_eq!(deliver(&mut a, &r), Some(b"reply".to_vec()));
    let next = send(&mut a, &mut rng, b"new chain").remove(0);
    assert_eq!(deliver(&mut b, &next), Some(b"new chain".to_vec()));
    assert_eq!(deliver(&mut b, &late), Some(b"late".to_vec()));
}

#[test]
fn beyond_window_is_rejected_without_state_change() {
    let (mut a, mut b, mut rng) = pair(3);
    let msgs: Vec<_> = (0..=WINDOW)
        .map(|_| send(&mut a, &mut rng, b"x").remove(0))
        .collect();
    let too_far = &msgs[WINDOW as usize];
    assert!(!b.poll_addresses().contains(&too_far.address));
    let before = snapshot(&b);
    assert_eq!(
        b.decrypt(&too_far.address, &too_far.blob),
        Err(DecryptError::UnknownAddress)
    );
    assert_eq!(snapshot(&b), before);
    // Once the first arrives the window slides and the far one becomes reachable.
    deliver(&mut b, &msgs[0]);
    assert_eq!(deliver(&mut b, too_far), Some(b"x".to_vec()));
}

#[test]
fn duplicate_is_a_typed_error_and_changes_nothing() {
    let (mut a, mut b, mut rng) = pair(4);
    let m = send(&mut a, &mut rng, b"once").remove(0);
    assert_eq!(deliver(&mut b, &m), Some(b"once".to_vec()));
    let before = snapshot(&b);
    assert_eq!(b.decrypt(&m.address, &m.blob), Err(DecryptError::Duplicate));
    assert_eq!(snapshot(&b), before);
}

#[test]
fn tampered_blobs_are_rejected_without_state_change() {
    let (mut a, mut b, mut rng) = pair(5);
    // One on the current chain and one that would start a new chain (a DH step).
    let m1 = send(&mut a, &mut rng, b"current").remove(0);
    deliver(&mut b, &m1);
    let reply = send(&mut b, &mut rng, b"r").remove(0);
    let before_a = snapshot(&a);
    // The hedge (bytes 0..16) keys the header, so a flip there fails the header too.
    let header_end = HEDGE_LEN + ENCRYPTED_HEADER_LEN;
    for position in [
        0,
        15,
        16,
        20,
        header_end - 1,
        header_end,
        500,
        BLOB_LEN - 17,
        BLOB_LEN - 1,
    ] {
        let mut bad = reply.blob.clone();
        bad[position] ^= 0x01;
        let err = a.decrypt(&reply.address, &bad).unwrap_err();
        let expected = if position < header_end {
            DecryptError::HeaderAuthentication
        } else {
            DecryptError::BodyAuthentication
        };
        assert_eq!(err, expected, "flip at {position}");
        assert_eq!(snapshot(&a), before_a);
    }
    assert_eq!(
        a.decrypt(&reply.address, &reply.blob[..BLOB_LEN - 1]),
        Err(DecryptError::WrongLength {
            expected: BLOB_LEN,
            got: BLOB_LEN - 1
        })
    );
    // A blob moved to another polled address fails too.
    let other = a
        .poll_addresses()
        .into_iter()
        .find(|x| *x != reply.address)
        .unwrap();
    assert!(a.decrypt(&other, &reply.blob).is_err());
    assert_eq!(snapshot(&a), before_a);
    assert_eq!(deliver(&mut a, &reply), Some(b"r".to_vec()));
}

#[test]
fn foreign_blobs_are_rejected() {
    let (mut a, mut b, mut rng) = pair(6);
    let (mut c, _d, mut rng2) = pair(7);
    let foreign = send(&mut c, &mut rng2, b"other conversation").remove(0);
    let before = snapshot(&b);
    assert_eq!(
        b.decrypt(&foreign.address, &foreign.blob),
        Err(DecryptError::UnknownAddress)
    );
    // The foreign blob at one of our polled addresses fails authentication.
    let ours = b.poll_addresses()[0];
    assert_eq!(
        b.decrypt(&ours, &foreign.blob),
        Err(DecryptError::HeaderAuthentication)
    );
    assert_eq!(snapshot(&b), before);
    let m = send(&mut a, &mut rng, b"ok").remove(0);
    assert_eq!(deliver(&mut b, &m), Some(b"ok".to_vec()));
}

#[test]
fn lost_message_stays_polled_then_expires_deterministically() {
    let (mut a, mut b, mut rng) = pair(8);
    let lost = send(&mut a, &mut rng, b"lost").remove(0);
    let next = send(&mut a, &mut rng, b"next").remove(0);
    deliver(&mut b, &next);
    assert!(b.poll_addresses().contains(&lost.address));
    // SKIPPED_KEY_RETENTION - 1 more receive events keep it; the next one deletes it.
    for i in 1..SKIPPED_KEY_RETENTION {
        let m = send(&mut a, &mut rng, b"").remove(0);
        let r = b.decrypt(&m.address, &m.blob).unwrap();
        assert!(
            !r.retired.contains(&lost.address),
            "deleted early at event {i}"
        );
    }
    let m = send(&mut a, &mut rng, b"").remove(0);
    let r = b.decrypt(&m.address, &m.blob).unwrap();
    assert!(r.retired.contains(&lost.address));
    assert_eq!(
        b.decrypt(&lost.address, &lost.blob),
        Err(DecryptError::UnknownAddress)
    );
}

#[test]
fn skipped_keys_are_bounded_oldest_deleted_first() {
    let (mut a, mut b, mut rng) = pair(9);
    let mut lost = Vec::new();
    // Each round: W-1 lost, one delivered -> W-1 skipped keys per round.
    while lost.len() < MAX_SKIPPED_KEYS + 20 {
        for _ in 0..WINDOW - 1 {
            lost.push(send(&mut a, &mut rng, b"l").remove(0));
        }
        deliver(&mut b, &send(&mut a, &mut rng, b"d")[0]);
    }
    let polled = poll_set(&b);
    let kept: Vec<bool> = lost.iter().map(|m| polled.contains(&m.address)).collect();
    assert_eq!(kept.iter().filter(|k| **k).count(), MAX_SKIPPED_KEYS);
    // Exactly the newest MAX_SKIPPED_KEYS survive.
    assert!(kept[lost.len() - MAX_SKIPPED_KEYS..].iter().all(|k| *k));
    assert!(kept[..lost.len() - MAX_SKIPPED_KEYS].iter().all(|k| !*k));
}

#[test]
fn gap_on_dh_step_is_capped_at_max_skip() {
    let (mut a, mut b, mut rng) = pair(10);
    deliver(&mut b, &send(&mut a, &mut rng, b"first")[0]);
    // A sends MAX_SKIP + 10 messages B never gets, B replies, A starts a new chain.
    let unseen: Vec<_> = (0..MAX_SKIP + 10)
        .map(|_| send(&mut a, &mut rng, b"u").remove(0))
        .collect();
    deliver(&mut a, &send(&mut b, &mut rng, b"reply")[0]);
    deliver(&mut b, &send(&mut a, &mut rng, b"new chain")[0]);
    let polled = poll_set(&b);
    let reachable = unseen
        .iter()
        .filter(|m| polled.contains(&m.address))
        .count();
    assert_eq!(reachable, MAX_SKIP as usize);
    for m in unseen.iter().take(MAX_SKIP as usize) {
        assert_eq!(deliver(&mut b, m), Some(b"u".to_vec()));
    }
}

#[test]
fn multi_blob_messages_reassemble_in_any_order() {
    let (mut a, mut b, mut rng) = pair(11);
    let text: Vec<u8> = (0..3 * FRAGMENT_CAPACITY + 5)
        .map(|i| (i * 7) as u8)
        .collect();
    let blobs = send(&mut a, &mut rng, &text);
    assert_eq!(blobs.len(), 4);
    for i in [2, 0, 3] {
        assert_eq!(deliver(&mut b, &blobs[i]), None);
    }
    assert_eq!(deliver(&mut b, &blobs[1]), Some(text.clone()));
    let max = vec![9u8; MAX_MESSAGE_LEN];
    let blobs = send(&mut a, &mut rng, &max);
    assert_eq!(blobs.len(), MAX_FRAGMENTS);
    let mut got = None;
    for m in &blobs {
        if b.poll_addresses().contains(&m.address) {
            got = deliver(&mut b, m).or(got);
        }
    }
    assert_eq!(got, Some(max));
    assert_eq!(
        a.encrypt(&mut rng, &vec![0u8; MAX_MESSAGE_LEN + 1], 0)
            .unwrap_err(),
        EncryptError::MessageTooLong {
            len: MAX_MESSAGE_LEN + 1,
            max: MAX_MESSAGE_LEN
        }
    );
}

#[test]
fn addresses_never_repeat_and_streams_are_separate() {
    let (mut a, mut b, mut rng) = pair(12);
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..20 {
        for _ in 0..(round % 3 + 1) {
            let m = send(&mut a, &mut rng, b"a").remove(0);
            assert!(seen.insert(m.address));
            deliver(&mut b, &m);
        }
        for _ in 0..(round % 2 + 1) {
            let m = send(&mut b, &mut rng, b"b").remove(0);
            assert!(seen.insert(m.address));
            deliver(&mut a, &m);
        }
    }
}

#[test]
fn blobs_share_no_structure() {
    let (mut a, _b, mut rng) = pair(13);
    let blobs: Vec<_> = (0..64)
        .map(|_| send(&mut a, &mut rng, b"same text").remove(0))
        .collect();
    // Identical plaintexts: no byte position is constant across all blobs (a version byte, a
    // counter prefix, a key would be).
    for position in 0..BLOB_LEN {
        let first = blobs[0].blob[position];
        assert!(
            blobs.iter().any(|m| m.blob[position] != first),
            "byte {position} is constant"
        );
    }
}

#[test]
fn debug_output_holds_no_secrets() {
    let mut rng = SeededRng::new(14);
    let (pending, invite) = Invite::create(&mut rng, NOW, NOW + 60, None).unwrap();
    let bytes = invite.to_bytes();
    let secret_hex: String = bytes[1..33].iter().map(|b| format!("{b:02x}")).collect();
    let secret_dec = format!("{:?}", &bytes[1..9]);
    let (session, hello) = invite.join(&mut rng, NOW).unwrap();
    for text in [
        format!("{invite:?}"),
        format!("{pending:?}"),
        format!("{session:?}"),
        format!("{:?}", hello[0]),
    ] {
        assert!(
            !text.contains(&secret_hex) && !text.contains(&secret_dec[1..secret_dec.len() - 1]),
            "{text}"
        );
    }
    assert!(format!("{:?}", hello[0].write_key) == "WriteKey(..)");
}

#[test]
fn poll_set_segments_follow_send_order() {
    let (mut a, mut b, mut rng) = pair(15);
    // B has read nothing of A's chain yet beyond the hello; A sends three, B reads the third.
    let msgs: Vec<_> = (0..3u8)
        .map(|i| send(&mut a, &mut rng, &[i]).remove(0))
        .collect();
    deliver(&mut b, &msgs[2]);
    let set = b.poll_set();
    assert_eq!(set.skipped, vec![msgs[0].address, msgs[1].address]);
    assert_eq!(set.current.len(), WINDOW as usize);
    // B's answering ratchet step is unsent: A cannot start its next chain yet, but B polls it
    // anyway (a blob there would mean A answered a key B lost to a restore, §6.6).
    assert_eq!(set.next.len(), WINDOW as usize);
    assert_eq!(set.all(), b.poll_addresses());
    send(&mut b, &mut rng, b"reply");
    assert_eq!(
        b.poll_set().next,
        set.next,
        "the same chain, now answerable"
    );
}

/// Every received blob names the write key of the address it was read from, whichever part
/// of the poll set held it (the current chain, the next chain after a DH step, a skipped key):
/// the reader can delete what it read, and only where it read it.
#[test]
fn a_received_blob_carries_the_write_key_of_its_address() {
    let (mut a, mut b, mut rng) = pair(7);
    let check = |session: &mut Session, blob: &protocol::OutgoingBlob| {
        let received = session.decrypt(&blob.address, &blob.blob).unwrap();
        assert_eq!(received.write_key.address(), blob.address);
        assert_eq!(received.write_key.0, blob.write_key.0, "the sender's key");
    };
    // Next chain (the first blob after a DH step), then the current chain.
    let first = send(&mut a, &mut rng, b"one").remove(0);
    let second = send(&mut a, &mut rng, b"two").remove(0);
    let third = send(&mut a, &mut rng, b"three").remove(0);
    check(&mut b, &first);
    // The third before the second: the second's key is skipped, then read from there.
    check(&mut b, &third);
    check(&mut b, &second);
    // The other direction, across a step.
    let reply = send(&mut b, &mut rng, b"reply").remove(0);
    check(&mut a, &reply);
}

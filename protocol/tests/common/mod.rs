//! Shared helpers: a two-party conversation over an in-memory mailbox.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use protocol::testing::SeededRng;
use protocol::{Address, Invite, OutgoingBlob, Session};
use std::collections::BTreeSet;

pub const NOW: u64 = 1_750_000_000;
pub const KEY: [u8; 32] = [0x5a; 32];

/// A joiner and an inviter right after the join.
pub fn pair(seed: u64) -> (Session, Session, SeededRng) {
    let mut rng = SeededRng::new(seed);
    let (pending, invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    let (joiner, hello) = invite.join(&mut rng, NOW + 1).unwrap();
    assert_eq!(hello.len(), 1);
    let inviter = pending
        .accept(NOW + 2, &hello[0].address, &hello[0].blob)
        .unwrap();
    (joiner, inviter, rng)
}

/// A snapshot of the whole state: the (deterministic) pickle.
pub fn snapshot(session: &Session) -> Vec<u8> {
    session.pickle(&KEY)
}

pub fn poll_set(session: &Session) -> BTreeSet<Address> {
    session.poll_addresses().into_iter().collect()
}

/// Sends `text` and returns the blobs.
pub fn send(session: &mut Session, rng: &mut SeededRng, text: &[u8]) -> Vec<OutgoingBlob> {
    let floor = session.next_seq();
    let blobs = session.encrypt(rng, text, floor).unwrap();
    for b in &blobs {
        assert_eq!(b.blob.len(), protocol::BLOB_LEN);
        assert!(b.write_key.authorizes(&b.address));
    }
    blobs
}

/// Delivers one blob and checks that `retired` is exactly what left the poll set.
pub fn deliver(session: &mut Session, blob: &OutgoingBlob) -> Option<Vec<u8>> {
    let before = poll_set(session);
    assert!(before.contains(&blob.address), "address not polled");
    let received = session.decrypt(&blob.address, &blob.blob).unwrap();
    let after = poll_set(session);
    let left: BTreeSet<Address> = before.difference(&after).copied().collect();
    let retired: BTreeSet<Address> = received.retired.iter().copied().collect();
    assert_eq!(
        retired.len(),
        received.retired.len(),
        "retired has duplicates"
    );
    assert_eq!(
        left, retired,
        "retired must be exactly the addresses that left the poll set"
    );
    received.plaintext.map(|p| p.to_vec())
}

//! Pickles: round trips, wrong keys, corruption, and a committed v1 fixture.
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn session_pickle_round_trip_mid_conversation() {
    let (mut a, mut b, mut rng) = pair(30);
    let lost = send(&mut a, &mut rng, b"lost");
    let multi = send(&mut a, &mut rng, &vec![1u8; 2 * FRAGMENT_CAPACITY]);
    deliver(&mut b, &multi[1]);
    let pickle = b.pickle(&KEY);
    assert_eq!(pickle[0], PICKLE_VERSION);
    let mut restored = Session::from_pickle(&KEY, &pickle).unwrap();
    assert_eq!(restored.poll_addresses(), b.poll_addresses());
    assert_eq!(restored.safety_code(), b.safety_code());
    assert_eq!(restored.pickle(&KEY), pickle);
    assert_eq!(
        deliver(&mut restored, &multi[0]),
        Some(vec![1u8; 2 * FRAGMENT_CAPACITY])
    );
    assert_eq!(deliver(&mut restored, &lost[0]), Some(b"lost".to_vec()));
    let reply = send(&mut restored, &mut rng, b"after restore");
    assert_eq!(deliver(&mut a, &reply[0]), Some(b"after restore".to_vec()));
}

/// A session whose blobs were confirmed keeps the most recently confirmed ones (to check a
/// digest a restored peer restarted below them) through a pickle, byte for byte.
#[test]
fn session_pickle_round_trip_after_confirmations() {
    let (mut a, mut b, mut rng) = pair(32);
    for text in [b"one".as_slice(), b"two", b"three"] {
        deliver(&mut b, &send(&mut a, &mut rng, text)[0]);
    }
    deliver(&mut a, &send(&mut b, &mut rng, b"confirms them")[0]);
    let pickle = a.pickle(&KEY);
    let restored = Session::from_pickle(&KEY, &pickle).unwrap();
    assert_eq!(restored.pickle(&KEY), pickle);
}

#[test]
fn pending_invite_pickle_round_trip() {
    let mut rng = SeededRng::new(31);
    let (pending, invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    let pickle = pending.pickle(&KEY);
    let restored = PendingInvite::from_pickle(&KEY, &pickle).unwrap();
    assert_eq!(restored.poll_addresses(), pending.poll_addresses());
    assert_eq!(
        Session::from_pickle(&KEY, &pickle).unwrap_err(),
        PickleError::WrongKind
    );
    let (joiner, hello) = invite.join(&mut rng, NOW).unwrap();
    let inviter = restored
        .accept(NOW, &hello[0].address, &hello[0].blob)
        .unwrap();
    assert_eq!(inviter.safety_code(), joiner.safety_code());
    assert_eq!(
        PendingInvite::from_pickle(&KEY, &inviter.pickle(&KEY)).unwrap_err(),
        PickleError::WrongKind
    );
}

#[test]
fn bad_pickles_are_rejected() {
    let (a, _b, _rng) = pair(32);
    let pickle = a.pickle(&KEY);
    assert_eq!(
        Session::from_pickle(&[0u8; 32], &pickle).unwrap_err(),
        PickleError::Authentication
    );
    assert_eq!(
        Session::from_pickle(&KEY, &[]).unwrap_err(),
        PickleError::Truncated
    );
    assert_eq!(
        Session::from_pickle(&KEY, &pickle[..20]).unwrap_err(),
        PickleError::Truncated
    );
    let mut v9 = pickle.clone();
    v9[0] = 9;
    assert_eq!(
        Session::from_pickle(&KEY, &v9).unwrap_err(),
        PickleError::UnsupportedVersion(9)
    );
    for position in [1, 30, pickle.len() / 2, pickle.len() - 1] {
        let mut bad = pickle.clone();
        bad[position] ^= 0x80;
        assert_eq!(
            Session::from_pickle(&KEY, &bad).unwrap_err(),
            PickleError::Authentication
        );
    }
}

/// A v1 pickle written by the first release: refused with a clear error, never misread.
#[test]
fn v1_pickle_fixture_is_refused_as_protocol_v1() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/session-v1.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let s = |k: &str| fixture[k].as_str().unwrap().to_owned();
    let key: [u8; 32] = unhex(&s("pickle_key")).try_into().unwrap();
    let pickle = unhex(&s("pickle"));
    assert_eq!(pickle[0], 1, "the fixture is a version-1 pickle");
    assert_eq!(
        Session::from_pickle(&key, &pickle).unwrap_err(),
        PickleError::ProtocolV1
    );
    assert_eq!(
        PendingInvite::from_pickle(&key, &pickle).unwrap_err(),
        PickleError::ProtocolV1
    );
}

/// A v2 pickle written by the first protocol-v2 release, committed with what it must still
/// do: every later pickle format keeps loading it. Regenerate only when adding a *new*
/// fixture: `HUSH_WRITE_FIXTURES=1 cargo test -p protocol`.
#[test]
fn v2_pickle_fixture_still_loads_and_works() {
    check_v2_fixture(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/session-v2.json"
    ));
}

/// A v2 pickle with the received hedges as first released (`SessionWithReceivedHedges`
/// without `next_chain_from`, written by commit c3e8cd5 with the generator below): later
/// formats must keep loading it too.
#[test]
fn v2_pickle_with_the_first_received_hedges_still_loads_and_works() {
    check_v2_fixture(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/session-v2-hedges.json"
    ));
}

/// A v2 pickle of the layout before the fork's reach (`SessionWithReadKeys`, written by
/// commit 7a97232 with the generator below): it loads with the reach unknown, and keeps
/// working.
#[test]
fn v2_pickle_with_read_keys_still_loads_and_works() {
    check_v2_fixture(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/session-v2-read-keys.json"
    ));
}

fn check_v2_fixture(path: &str) {
    if std::env::var_os("HUSH_WRITE_FIXTURES").is_some() && !std::path::Path::new(path).exists() {
        let (mut a, mut b, mut rng) = pair(33);
        deliver(&mut b, &send(&mut a, &mut rng, b"before the pickle")[0]);
        deliver(&mut a, &send(&mut b, &mut rng, b"reply")[0]);
        let lost = send(&mut a, &mut rng, b"arrives after loading");
        deliver(&mut b, &send(&mut a, &mut rng, b"overtakes")[0]);
        let fixture = serde_json::json!({
            "pickle_key": hex(&KEY),
            "pickle": hex(&b.pickle(&KEY)),
            "safety_code": b.safety_code().digits(),
            "next_seq": b.next_seq(),
            "acknowledgement_next": b.acknowledgement().next,
            "acknowledgement_bits": b.acknowledgement().bits.to_string(),
            "poll_addresses": b.poll_addresses().iter().map(|a| hex(&a.0)).collect::<Vec<_>>(),
            "pending_address": hex(&lost[0].address.0),
            "pending_blob": hex(&lost[0].blob),
            "pending_plaintext": hex(b"arrives after loading"),
        });
        std::fs::write(path, serde_json::to_string_pretty(&fixture).unwrap()).unwrap();
    }
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let s = |k: &str| fixture[k].as_str().unwrap().to_owned();
    let key: [u8; 32] = unhex(&s("pickle_key")).try_into().unwrap();
    let pickle = unhex(&s("pickle"));
    assert_eq!(pickle[0], 2, "the fixture is a version-2 pickle");
    let mut session = Session::from_pickle(&key, &pickle).unwrap();
    assert_eq!(session.safety_code().digits(), s("safety_code"));
    assert_eq!(
        u64::from(session.next_seq()),
        fixture["next_seq"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(session.acknowledgement().next),
        fixture["acknowledgement_next"].as_u64().unwrap()
    );
    assert_eq!(
        session.acknowledgement().bits.to_string(),
        s("acknowledgement_bits")
    );
    // The same poll set survives the pickle (its order is an API property, not pickle state).
    let mut polls: Vec<String> = session.poll_addresses().iter().map(|a| hex(&a.0)).collect();
    let mut expected: Vec<String> = fixture["poll_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    polls.sort();
    expected.sort();
    assert_eq!(polls, expected);
    let address = Address(unhex(&s("pending_address")).try_into().unwrap());
    let received = session
        .decrypt(&address, &unhex(&s("pending_blob")))
        .unwrap();
    assert_eq!(
        received.plaintext.unwrap().to_vec(),
        unhex(&s("pending_plaintext"))
    );
}

/// The addresses of the peer's blobs read last survive a pickle, newest first, at most
/// `READ_ADDRESS_MEMORY` of them (PROTOCOL.md §8, "Rewritten addresses").
#[test]
fn read_addresses_survive_a_pickle() {
    let (mut a, mut b, mut rng) = pair(36);
    let mut read = Vec::new();
    for i in 0..10u8 {
        let blob = send(&mut a, &mut rng, &[i; 3]).remove(0);
        deliver(&mut b, &blob);
        read.push(blob.address);
    }
    let kept: Vec<Address> = b.read_addresses().iter().map(|(a, _)| *a).collect();
    let newest: Vec<Address> = read
        .iter()
        .rev()
        .take(READ_ADDRESS_MEMORY)
        .copied()
        .collect();
    assert_eq!(kept, newest);
    let loaded = Session::from_pickle(&KEY, &b.pickle(&KEY)).unwrap();
    assert_eq!(loaded.read_addresses(), b.read_addresses());
}

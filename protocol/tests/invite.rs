//! Invite creation, encoding, expiry, joining, racing and tampering.
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
fn invite_is_small_and_round_trips() {
    let mut rng = SeededRng::new(20);
    let (_pending, invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    let bytes = invite.to_bytes();
    assert_eq!(bytes.len(), INVITE_BASE_LEN);
    assert!(bytes.len() <= 100);
    assert_eq!(Invite::from_bytes(&bytes).unwrap(), invite);
    let link = invite.to_link_fragment();
    assert_eq!(link.len(), 98);
    assert!(
        link.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(Invite::from_link_fragment(&link).unwrap(), invite);
    assert_eq!(invite.expires_at(), NOW + 600);
    assert_eq!(invite.mailbox_url(), None);

    let (_p, with_url) =
        Invite::create(&mut rng, NOW, NOW + 600, Some("https://mb.example")).unwrap();
    assert_eq!(with_url.to_bytes().len(), INVITE_BASE_LEN + 18);
    assert_eq!(
        Invite::from_bytes(&with_url.to_bytes())
            .unwrap()
            .mailbox_url(),
        Some("https://mb.example")
    );
}

#[test]
fn invite_parsing_rejects_garbage() {
    let mut rng = SeededRng::new(21);
    let (_p, invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    let bytes = invite.to_bytes();
    assert_eq!(Invite::from_bytes(&[]), Err(InviteError::Malformed));
    assert_eq!(
        Invite::from_bytes(&bytes[..INVITE_BASE_LEN - 1]),
        Err(InviteError::Malformed)
    );
    let mut v3 = bytes.to_vec();
    v3[0] = 3;
    assert_eq!(
        Invite::from_bytes(&v3),
        Err(InviteError::UnsupportedVersion(3))
    );
    let mut v1 = bytes.to_vec();
    v1[0] = 1;
    assert_eq!(Invite::from_bytes(&v1), Err(InviteError::OlderVersion(1)));
    let mut bad_url = bytes.to_vec();
    bad_url.push(0xff);
    assert_eq!(Invite::from_bytes(&bad_url), Err(InviteError::Malformed));
    let mut long = bytes.to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_MAILBOX_URL_LEN + 1));
    assert_eq!(Invite::from_bytes(&long), Err(InviteError::UrlTooLong));
    assert_eq!(
        Invite::from_link_fragment("not base64!"),
        Err(InviteError::NotAnInvite)
    );
    let mut control_url = bytes.to_vec();
    control_url.extend_from_slice(b"https://mb.example/\n");
    assert_eq!(
        Invite::from_bytes(&control_url),
        Err(InviteError::Malformed)
    );
    for url in [
        "https://mb.example/ x",
        "https://mb.example/\u{0}",
        "\u{a0}",
    ] {
        assert_eq!(
            Invite::create(&mut rng, NOW, NOW + 1, Some(url)).unwrap_err(),
            InviteError::InvalidUrl,
            "{url:?}"
        );
    }
    assert_eq!(
        Invite::create(&mut rng, NOW, NOW, None).unwrap_err(),
        InviteError::InvalidExpiry
    );
    let url = "x".repeat(MAX_MAILBOX_URL_LEN + 1);
    assert_eq!(
        Invite::create(&mut rng, NOW, NOW + 1, Some(&url)).unwrap_err(),
        InviteError::UrlTooLong
    );
}

#[test]
fn expired_invites_cannot_be_joined_or_accepted() {
    let mut rng = SeededRng::new(22);
    let (pending, invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    let refused_from = NOW + 600 + INVITE_CLOCK_TOLERANCE;
    assert_eq!(
        invite.join(&mut rng, refused_from).unwrap_err(),
        InviteError::Expired
    );
    let (_s, hello) = invite.join(&mut rng, refused_from - 1).unwrap();
    let late = NOW + 600 + INVITE_ACCEPT_GRACE;
    assert_eq!(
        pending
            .accept(late, &hello[0].address, &hello[0].blob)
            .unwrap_err(),
        DecryptError::InviteExpired
    );
    assert!(
        pending
            .accept(late - 1, &hello[0].address, &hello[0].blob)
            .is_ok()
    );
}

/// Issue 16 item 7: the joiner's clock a day (or a wrong time zone and a day) ahead of the
/// inviter's still joins a fresh 24-hour invite, and the inviter, on its own clock, accepts.
#[test]
fn a_joiner_clock_ahead_still_joins_a_fresh_invite() {
    const DAY: u64 = 24 * 60 * 60;
    for ahead_hours in [1, 12, 25, 26 + 24, 71] {
        let mut rng = SeededRng::new(28 + ahead_hours);
        let (pending, invite) = Invite::create(&mut rng, NOW, NOW + DAY, None).unwrap();
        let joiner_now = NOW + ahead_hours * 3600;
        let (joiner, hello) = invite
            .join(&mut rng, joiner_now)
            .unwrap_or_else(|e| panic!("{ahead_hours} h ahead: {e}"));
        let inviter = pending
            .accept(NOW + 60, &hello[0].address, &hello[0].blob)
            .unwrap();
        assert_eq!(inviter.safety_code(), joiner.safety_code());
    }
    // 72 hours ahead of a fresh invite is past the tolerance: refused.
    let mut rng = SeededRng::new(29);
    let (_p, invite) = Invite::create(&mut rng, NOW, NOW + DAY, None).unwrap();
    assert_eq!(INVITE_CLOCK_TOLERANCE, 2 * DAY);
    assert_eq!(
        invite.join(&mut rng, NOW + 3 * DAY).unwrap_err(),
        InviteError::Expired
    );
    // A joiner clock behind the inviter's never matters.
    assert!(invite.join(&mut rng, 0).is_ok());
}

#[test]
fn small_order_invite_key_is_rejected() {
    let mut rng = SeededRng::new(23);
    let (_p, invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    let mut bytes = invite.to_bytes().to_vec();
    bytes[33..65].copy_from_slice(&[0u8; 32]);
    let zero = Invite::from_bytes(&bytes).unwrap();
    assert_eq!(
        zero.join(&mut rng, NOW).unwrap_err(),
        InviteError::InvalidPublicKey
    );
}

#[test]
fn pending_invite_polls_one_address_and_accepts_only_the_hello() {
    let mut rng = SeededRng::new(24);
    let (pending, invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    let (mut joiner, hello) = invite.join(&mut rng, NOW).unwrap();
    assert_eq!(pending.poll_addresses(), vec![hello[0].address]);
    // A second message of the joiner's first chain is not polled by the pending invite.
    let second = send(&mut joiner, &mut rng, b"hi");
    assert_eq!(
        pending
            .accept(NOW, &second[0].address, &second[0].blob)
            .unwrap_err(),
        DecryptError::UnknownAddress
    );
    let mut bad = hello[0].blob.clone();
    bad[100] ^= 1;
    assert_eq!(
        pending.accept(NOW, &hello[0].address, &bad).unwrap_err(),
        DecryptError::BodyAuthentication
    );
    let mut inviter = pending
        .accept(NOW, &hello[0].address, &hello[0].blob)
        .unwrap();
    assert_eq!(deliver(&mut inviter, &second[0]), Some(b"hi".to_vec()));
    assert_eq!(inviter.safety_code(), joiner.safety_code());
}

#[test]
fn raced_invite_gives_different_safety_codes() {
    let mut rng = SeededRng::new(25);
    let (pending, invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    // An eavesdropper photographs the invite and joins first.
    let (attacker, attacker_hello) = invite.join(&mut SeededRng::new(666), NOW).unwrap();
    let (victim, victim_hello) = invite.join(&mut rng, NOW).unwrap();
    // Both hellos target the same address: the mailbox keeps the first write only.
    assert_eq!(attacker_hello[0].address, victim_hello[0].address);
    let inviter = pending
        .accept(NOW, &attacker_hello[0].address, &attacker_hello[0].blob)
        .unwrap();
    assert_eq!(inviter.safety_code(), attacker.safety_code());
    assert_ne!(inviter.safety_code(), victim.safety_code());
}

#[test]
fn tampered_invite_never_reaches_the_inviter() {
    let mut rng = SeededRng::new(26);
    let (pending, invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    for position in [1, 40, INVITE_BASE_LEN - 1] {
        let mut bytes = invite.to_bytes().to_vec();
        bytes[position] ^= 1;
        let tampered = Invite::from_bytes(&bytes).unwrap();
        let (_s, hello) = tampered.join(&mut rng, NOW).unwrap();
        assert_ne!(
            hello[0].address,
            pending.poll_addresses()[0],
            "position {position}"
        );
        assert!(
            pending
                .accept(NOW, &pending.poll_addresses()[0], &hello[0].blob)
                .is_err()
        );
    }
}

#[test]
fn substituted_invite_with_relay_gives_different_safety_codes() {
    let mut rng = SeededRng::new(27);
    let (real_pending, real_invite) = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    // An attacker shows the joiner its own invite and joins the real one itself.
    let mut attacker_rng = SeededRng::new(667);
    let (fake_pending, fake_invite) =
        Invite::create(&mut attacker_rng, NOW, NOW + 600, None).unwrap();
    let (joiner, joiner_hello) = fake_invite.join(&mut rng, NOW).unwrap();
    let attacker_as_inviter = fake_pending
        .accept(NOW, &joiner_hello[0].address, &joiner_hello[0].blob)
        .unwrap();
    let (attacker_as_joiner, hello) = real_invite.join(&mut attacker_rng, NOW).unwrap();
    let inviter = real_pending
        .accept(NOW, &hello[0].address, &hello[0].blob)
        .unwrap();
    assert_eq!(joiner.safety_code(), attacker_as_inviter.safety_code());
    assert_eq!(inviter.safety_code(), attacker_as_joiner.safety_code());
    assert_ne!(joiner.safety_code(), inviter.safety_code());
}

fn mutual_pair(seed: u64) -> ((PendingInvite, Invite), (PendingInvite, Invite), SeededRng) {
    let mut rng = SeededRng::new(seed);
    let x = Invite::create(&mut rng, NOW, NOW + 600, None).unwrap();
    let y = Invite::create(&mut rng, NOW, NOW + 300, None).unwrap();
    (x, y, rng)
}

#[test]
fn mutual_mode_both_sides_agree_on_roles_and_talk() {
    for seed in 40..46 {
        let ((px, ix), (py, iy), mut rng) = mutual_pair(seed);
        let from_x = px.start_mutual(&mut rng, NOW + 1, &iy).unwrap();
        let from_y = py.start_mutual(&mut rng, NOW + 1, &ix).unwrap();
        let (pending, (mut joiner, hello)) = match (from_x, from_y) {
            (MutualStart::Inviter(p), MutualStart::Joiner(s, h)) => (p, (s, h)),
            (MutualStart::Joiner(s, h), MutualStart::Inviter(p)) => (p, (s, h)),
            other => panic!("both sides took the same role: {other:?}"),
        };
        // The pending mutual invite survives a pickle.
        let pending = PendingInvite::from_pickle(&KEY, &pending.pickle(&KEY)).unwrap();
        assert_eq!(pending.poll_addresses(), vec![hello[0].address]);
        let mut inviter = pending
            .accept(NOW + 2, &hello[0].address, &hello[0].blob)
            .unwrap();
        assert_eq!(inviter.safety_code(), joiner.safety_code());
        assert_eq!(
            deliver(&mut joiner, &send(&mut inviter, &mut rng, b"mutual")[0]),
            Some(b"mutual".to_vec())
        );
        assert_eq!(
            deliver(&mut inviter, &send(&mut joiner, &mut rng, b"ok")[0]),
            Some(b"ok".to_vec())
        );
    }
}

#[test]
fn mutual_mode_rejects_misuse() {
    let ((pa, ia), (_pb, ib), mut rng) = mutual_pair(51);
    // Our own invite (pa) expires at NOW + 600, on our own clock: strict.
    assert_eq!(
        pa.start_mutual(&mut rng, NOW + 600, &ib).unwrap_err(),
        InviteError::Expired
    );
    assert_eq!(
        pa.start_mutual(&mut rng, NOW, &ia).unwrap_err(),
        InviteError::OwnInvite
    );
}

#[test]
fn mutual_mode_tolerates_their_clock() {
    let mut rng = SeededRng::new(52);
    let (own, _) = Invite::create(&mut rng, NOW, NOW + 10 * INVITE_CLOCK_TOLERANCE, None).unwrap();
    // Theirs expires at NOW + 300 on their clock.
    let (_theirs_pending, theirs) = Invite::create(&mut rng, NOW, NOW + 300, None).unwrap();
    assert!(
        own.start_mutual(&mut rng, NOW + 300 + INVITE_CLOCK_TOLERANCE - 1, &theirs)
            .is_ok()
    );
    assert_eq!(
        own.start_mutual(&mut rng, NOW + 300 + INVITE_CLOCK_TOLERANCE, &theirs)
            .unwrap_err(),
        InviteError::Expired
    );
}

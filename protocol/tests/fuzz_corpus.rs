//! Replays the committed fuzz corpora (`tests/fuzz-corpus/<target>/`) through the same
//! harnesses the `cargo fuzz` targets call. Seed files are written once with
//! `HUSH_WRITE_FUZZ_SEEDS=1 cargo test -p protocol --test fuzz_corpus`; inputs found by fuzzing
//! are added next to them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use protocol::testing::SeededRng;
use protocol::{Invite, fuzzing};
use std::path::PathBuf;

fn dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target)
}

fn write_seeds() {
    let mut rng = SeededRng::new(77);
    let (pending, invite) =
        Invite::create(&mut rng, 10, 1000, Some("https://mailbox.example/")).unwrap();
    let (_p2, plain) = Invite::create(&mut rng, 10, 1000, None).unwrap();
    let seeds = [
        ("invite", "valid-with-url", invite.to_bytes().to_vec()),
        ("invite", "valid-without-url", plain.to_bytes().to_vec()),
        (
            "invite",
            "valid-link-fragment",
            invite.to_link_fragment().as_bytes().to_vec(),
        ),
        (
            "invite",
            "wrong-version",
            [&[2u8][..], &plain.to_bytes()[1..]].concat(),
        ),
        ("invite", "truncated", plain.to_bytes()[..40].to_vec()),
    ];
    // Links as people paste them (issue 16, item 8).
    let plain_link = format!(
        "https://hush.example/#{}",
        plain.to_link_fragment().as_str()
    );
    let url_link = format!(
        "https://hush.example/#{}",
        invite.to_link_fragment().as_str()
    );
    let (head, frag) = plain_link.split_once('#').unwrap();
    let links = [
        ("link-full-stop", format!("{plain_link}.")),
        ("link-angle-brackets", format!("<{url_link}>")),
        ("link-quotes", format!("“{plain_link}”,")),
        ("link-percent-23", plain_link.replace('#', "%23")),
        ("link-percent-2523", url_link.replace('#', "%2523")),
        (
            "link-mail-wrapped",
            format!(
                "{head}#{}\r\n> {}=\r\n{}",
                &frag[..30],
                &frag[30..70],
                &frag[70..]
            ),
        ),
        ("link-message-after", format!("{url_link} see you")),
        ("link-extra-glued", format!("{plain_link}x")),
        ("link-incomplete", format!("{head}#{}", &frag[..60])),
        ("link-not-an-invite", "hello there".to_owned()),
    ];
    let seeds = seeds
        .into_iter()
        .chain(links.map(|(name, text)| ("invite", name, text.into_bytes())));
    let key = [0x42u8; 32];
    let (joiner, inviter) = fuzzing::session_pair();
    let pickles = [
        ("pickle", "valid-session-joiner", joiner.pickle(&key)),
        ("pickle", "valid-session-inviter", inviter.pickle(&key)),
        ("pickle", "valid-pending-invite", pending.pickle(&key)),
        ("pickle", "wrong-key", joiner.pickle(&[0u8; 32])),
        ("pickle", "truncated", joiner.pickle(&key)[..30].to_vec()),
    ];
    let (mut j, mut i) = fuzzing::session_pair();
    let mut rng = SeededRng::new(78);
    let to_joiner = i.encrypt(&mut rng, b"fuzz seed", 0).unwrap().remove(0);
    let to_inviter = j.encrypt(&mut rng, b"fuzz seed", 0).unwrap().remove(0);
    let polls = fuzzing::session_pair().0.poll_addresses();
    let index = polls.iter().position(|a| *a == to_joiner.address).unwrap() as u8;
    let flip = |mut blob: Vec<u8>, at: usize| {
        blob[at] ^= 1;
        blob
    };
    let decrypts = [
        (
            "decrypt",
            "header-bit-flip",
            [vec![index], flip(to_joiner.blob.clone(), 3)].concat(),
        ),
        (
            "decrypt",
            "body-bit-flip",
            [vec![index], flip(to_joiner.blob.clone(), 600)].concat(),
        ),
        (
            "decrypt",
            "wrong-direction",
            [vec![index], to_inviter.blob.clone()].concat(),
        ),
        (
            "decrypt",
            "short-blob",
            [vec![index | 0x80], to_joiner.blob[..100].to_vec()].concat(),
        ),
        ("decrypt", "zeros", vec![0u8; 1025]),
    ];
    for (target, name, bytes) in seeds.into_iter().chain(pickles).chain(decrypts) {
        std::fs::write(dir(target).join(name), bytes).unwrap();
    }
}

fn replay(target: &str, harness: fn(&[u8])) {
    if std::env::var_os("HUSH_WRITE_FUZZ_SEEDS").is_some() {
        write_seeds();
    }
    let mut count = 0;
    for entry in std::fs::read_dir(dir(target)).unwrap() {
        let path = entry.unwrap().path();
        harness(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count >= 5, "{target}: corpus too small ({count})");
}

#[test]
fn invite_corpus() {
    replay("invite", fuzzing::invite);
}

#[test]
fn pickle_corpus() {
    replay("pickle", fuzzing::pickle);
}

#[test]
fn decrypt_corpus() {
    replay("decrypt", fuzzing::decrypt);
}

//! A conversation's draft is sealed in the vault, survives a lock, and goes with the
//! conversation.

#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use client_core::ClientError;
use support::{FAST, client, run, snapshot};

#[test]
fn a_draft_is_sealed_survives_a_lock_and_goes_with_its_conversation() {
    let alice = client(30, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let (id, _) = run(alice.create_invite("https://s.example/", "https://m.example", "B")).unwrap();
    let draft = || run(alice.draft(&id)).unwrap().map(|text| text.to_string());
    assert_eq!(draft(), None);

    run(alice.save_draft(&id, "half a secret thought")).unwrap();
    assert_eq!(draft().as_deref(), Some("half a secret thought"));
    // Sealed: the text is nowhere in the store's bytes.
    let needle = b"secret thought";
    assert!(
        snapshot(&alice)
            .values()
            .all(|v| !v.windows(needle.len()).any(|w| w == needle))
    );

    // Kept across a lock; unreadable while locked.
    alice.lock();
    assert!(matches!(run(alice.draft(&id)), Err(ClientError::Locked)));
    run(alice.unlock("pw")).unwrap();
    assert_eq!(draft().as_deref(), Some("half a secret thought"));

    // Bounded like a message: a longer text is refused and the draft before stays.
    let long = "x".repeat(protocol::MAX_MESSAGE_LEN + 1);
    assert!(matches!(
        run(alice.save_draft(&id, &long)),
        Err(ClientError::Encrypt(_))
    ));
    run(alice.save_draft(&id, &long[1..])).unwrap();
    assert_eq!(
        draft().map(|text| text.len()),
        Some(protocol::MAX_MESSAGE_LEN)
    );

    // Empty text deletes it.
    run(alice.save_draft(&id, "")).unwrap();
    assert_eq!(draft(), None);
    assert!(!snapshot(&alice).keys().any(|k| k.starts_with("draft/")));

    // Deleting the conversation deletes its draft; an unknown conversation has none to save.
    run(alice.save_draft(&id, "again")).unwrap();
    run(alice.delete(&id)).unwrap();
    assert!(!snapshot(&alice).keys().any(|k| k.starts_with("draft/")));
    assert!(matches!(
        run(alice.save_draft(&id, "x")),
        Err(ClientError::UnknownConversation)
    ));
}

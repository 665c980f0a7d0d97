//! A conversation's draft is sealed in the vault, survives a lock, and goes with the
//! conversation.

#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use client_core::ClientError;
use client_core::drafts::MAX_DRAFT_LEN;
use support::{FAST, client, joined, run, snapshot, texts};

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

    // Longer than a message may be: kept (the person cuts it into messages), up to four
    // messages' worth; a longer text is refused and the draft before stays.
    let over_a_message = "x".repeat(protocol::MAX_MESSAGE_LEN + 1);
    run(alice.save_draft(&id, &over_a_message)).unwrap();
    assert_eq!(
        draft().map(|text| text.len()),
        Some(protocol::MAX_MESSAGE_LEN + 1)
    );
    let long = "y".repeat(MAX_DRAFT_LEN + 1);
    assert!(matches!(
        run(alice.save_draft(&id, &long)),
        Err(ClientError::DraftTooLong { len, max }) if len == MAX_DRAFT_LEN + 1 && max == MAX_DRAFT_LEN
    ));
    assert_eq!(
        draft().map(|text| text.len()),
        Some(protocol::MAX_MESSAGE_LEN + 1)
    );
    run(alice.save_draft(&id, &long[1..])).unwrap();
    assert_eq!(draft().map(|text| text.len()), Some(MAX_DRAFT_LEN));

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

/// A message being sent stays the draft until its send committed: torn down before the
/// commit, the text comes back; after it (before the draft was cleared), nothing comes back,
/// so it is neither lost nor sent twice.
#[test]
fn a_message_being_sent_stays_the_draft_until_it_committed() {
    let (alice, id, _bob, _, _) = joined(40);
    let draft = || run(alice.draft(&id)).unwrap().map(|text| text.to_string());

    // Marked, then the page was gone before `send` committed: the text is handed back.
    run(alice.keep_draft_for_send(&id, "not sent yet")).unwrap();
    assert_eq!(draft().as_deref(), Some("not sent yet"));

    // Marked, sent (committed), then gone before the draft was cleared: nothing comes back.
    run(alice.keep_draft_for_send(&id, "sent once")).unwrap();
    run(alice.send(&id, "sent once")).unwrap();
    assert_eq!(draft(), None);
    assert!(!snapshot(&alice).keys().any(|k| k.starts_with("draft/")));
    let history = texts(&run(alice.history(&id)).unwrap());
    assert_eq!(history.iter().filter(|t| *t == "sent once").count(), 1);

    // The same text sent before the mark does not count as this send's commit.
    run(alice.keep_draft_for_send(&id, "sent once")).unwrap();
    assert_eq!(draft().as_deref(), Some("sent once"));

    // A plain save clears the mark: the same text sent afterwards leaves the draft alone.
    run(alice.save_draft(&id, "plain")).unwrap();
    run(alice.send(&id, "plain")).unwrap();
    assert_eq!(draft().as_deref(), Some("plain"));
}

/// The page's synchronous copy of a text being sent: sealed (the text is not in its bytes),
/// bound to its conversation and vault, opened again after an unlock.
#[test]
fn a_pending_send_is_sealed_for_its_conversation_and_opens_after_an_unlock() {
    let alice = client(33, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let (id, _) = run(alice.create_invite("https://s.example/", "https://m.example", "B")).unwrap();
    let (other, _) =
        run(alice.create_invite("https://s.example/", "https://m.example", "C")).unwrap();
    let sealed = alice
        .seal_pending_send(&id, "sent at the last moment")
        .unwrap();
    let needle = b"last moment";
    assert!(!sealed.windows(needle.len()).any(|w| w == needle));
    assert_eq!(
        alice.open_pending_send(&id, &sealed).unwrap().as_str(),
        "sent at the last moment"
    );
    // Not for another conversation, not altered, not while locked.
    assert!(matches!(
        alice.open_pending_send(&other, &sealed),
        Err(ClientError::Vault(_))
    ));
    let mut altered = sealed.clone();
    *altered.last_mut().unwrap() ^= 1;
    assert!(alice.open_pending_send(&id, &altered).is_err());
    alice.lock();
    assert!(matches!(
        alice.open_pending_send(&id, &sealed),
        Err(ClientError::Locked)
    ));
    assert!(matches!(
        alice.seal_pending_send(&id, "x"),
        Err(ClientError::Locked)
    ));
    run(alice.unlock("pw")).unwrap();
    assert_eq!(
        alice.open_pending_send(&id, &sealed).unwrap().as_str(),
        "sent at the last moment"
    );
    // Another vault's key cannot open it.
    let bob = client(34, None);
    run(bob.create_vault("pw", FAST)).unwrap();
    assert!(bob.open_pending_send(&id, &sealed).is_err());
    assert!(matches!(
        alice.seal_pending_send(&id, &"x".repeat(MAX_DRAFT_LEN + 1)),
        Err(ClientError::DraftTooLong { .. })
    ));
}

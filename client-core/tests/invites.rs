//! Opening an invite this vault created, or one it already joined, is recognised and explained
//! without joining (issue: "everyday failures", items 3 and 4).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use client_core::ClientError;
use support::{FAST, client, run};

const SITE: &str = "https://hush.example/";
const MAILBOX: &str = "https://mailbox.example";

#[test]
fn ones_own_invite_is_refused_without_joining() {
    let alice = client(1, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let (_, link) = run(alice.create_invite(SITE, MAILBOX, "Bob")).unwrap();
    let before = run(alice.conversations()).unwrap().len();
    // The whole link, the bare fragment, and the link with another site in front.
    for text in [
        link.clone(),
        link.rsplit('#').next().unwrap().to_owned(),
        format!(
            "https://elsewhere.example/#{}",
            link.rsplit('#').next().unwrap()
        ),
    ] {
        // Told before joining (the join screen says it at once), and by the join itself.
        let err = run(alice.check_invite(&text)).unwrap_err();
        assert!(matches!(err, ClientError::OwnInvite), "{err:?}");
        let err = run(alice.join(&text, MAILBOX, "Me")).unwrap_err();
        assert!(matches!(err, ClientError::OwnInvite), "{err:?}");
    }
    assert_eq!(
        run(alice.conversations()).unwrap().len(),
        before,
        "nothing joined"
    );
}

#[test]
fn joining_the_same_invite_twice_leads_to_the_first_conversation() {
    let alice = client(2, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let (_, link) = run(alice.create_invite(SITE, MAILBOX, "Bob")).unwrap();
    let bob = client(3, None);
    run(bob.create_vault("pw", FAST)).unwrap();
    run(bob.check_invite(&link)).unwrap();
    let first = run(bob.join(&link, MAILBOX, "Alice")).unwrap();
    assert!(matches!(
        run(bob.check_invite(&link)),
        Err(ClientError::AlreadyJoined { conversation: Some(ref c) }) if *c == first
    ));
    match run(bob.join(&link, MAILBOX, "Alice again")).unwrap_err() {
        ClientError::AlreadyJoined { conversation } => {
            assert_eq!(conversation, Some(first.clone()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run(bob.conversations()).unwrap().len(),
        1,
        "no second conversation"
    );
    // After deleting the conversation the invite is still known as used (its hello address
    // is ours), without pointing at a conversation.
    run(bob.delete(&first)).unwrap();
    match run(bob.join(&link, MAILBOX, "Alice")).unwrap_err() {
        ClientError::AlreadyJoined { conversation } => assert_eq!(conversation, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_different_invite_still_joins() {
    let alice = client(4, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let (_, one) = run(alice.create_invite(SITE, MAILBOX, "Bob")).unwrap();
    let (_, two) = run(alice.create_invite(SITE, MAILBOX, "Carol")).unwrap();
    let bob = client(5, None);
    run(bob.create_vault("pw", FAST)).unwrap();
    run(bob.join(&one, MAILBOX, "Alice")).unwrap();
    run(bob.join(&two, MAILBOX, "Alice 2")).unwrap();
    assert_eq!(run(bob.conversations()).unwrap().len(), 2);
}

#[test]
fn two_vault_creations_on_one_store_make_one_vault() {
    let records = std::rc::Rc::default();
    let a = client(6, Some(std::rc::Rc::clone(&records)));
    let b = client(7, Some(records));
    run(a.create_vault("first", FAST)).unwrap();
    assert!(matches!(
        run(b.create_vault("second", FAST)).unwrap_err(),
        ClientError::VaultExists
    ));
    run(b.unlock("first")).unwrap();
}

#[test]
fn a_passphrase_unlocks_whichever_normal_form_it_is_typed_in() {
    let a = client(8, None);
    run(a.create_vault("caf\u{e9} cr\u{e8}me", FAST)).unwrap();
    a.lock();
    run(a.unlock("cafe\u{301} cre\u{300}me")).unwrap();
}

#[test]
fn an_invite_carries_its_mailbox_unless_it_is_the_sites_own_origin() {
    let alice = client(9, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let mailbox_of = |link: &str| {
        protocol::Invite::from_link_fragment(link.rsplit('#').next().unwrap())
            .unwrap()
            .mailbox_url()
            .map(str::to_owned)
    };
    let cases = [
        // (site, mailbox, carried)
        ("https://hush.example/", "https://hush.example", None),
        ("https://hush.example/app/", "https://HUSH.example", None),
        (
            "https://hush.example/app/",
            "https://hush.example/mb",
            Some("https://hush.example/mb"),
        ),
        (
            "https://hush.example/",
            "https://hush.example:8443",
            Some("https://hush.example:8443"),
        ),
        (
            "https://hush.example/",
            "https://mailbox.example",
            Some("https://mailbox.example"),
        ),
    ];
    for (site, mailbox, carried) in cases {
        let (_, link) = run(alice.create_invite(site, mailbox, "x")).unwrap();
        assert_eq!(mailbox_of(&link).as_deref(), carried, "{site} {mailbox}");
    }
}

#[test]
fn a_joiner_is_connecting_until_its_hello_is_on_the_mailbox() {
    let alice = client(10, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let (a_id, link) = run(alice.create_invite(SITE, MAILBOX, "Bob")).unwrap();
    let bob = client(11, None);
    run(bob.create_vault("pw", FAST)).unwrap();
    let b_id = run(bob.join(&link, MAILBOX, "Alice")).unwrap();
    // The mailbox cannot be reached: the hello stays in the outbox.
    let flushed = run(bob.flush()).unwrap();
    assert_eq!((flushed.delivered, flushed.pending), (0, 1));
    let summary = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(summary.joined && summary.connecting, "{summary:?}");
    assert!(run(bob.conversations()).unwrap()[0].connecting);
    assert!(!run(alice.conversation_summary(&a_id)).unwrap().connecting);
}

#[test]
fn a_link_with_a_hashtag_after_it_still_joins() {
    let alice = client(12, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let (_, link) = run(alice.create_invite(SITE, MAILBOX, "Bob")).unwrap();
    let bob = client(13, None);
    run(bob.create_vault("pw", FAST)).unwrap();
    let pasted = format!("Join me: {link} #hush");
    run(bob.join(&pasted, MAILBOX, "Alice")).unwrap();
}

//! The outbox's answers to what the mailbox says: a 409 is delivered only over our own bytes.

#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::rc::Rc;

use client_core::Status;
use support::{FAST, MailboxState, client_on, run};

const SITE: &str = "https://hush.example/";
const MAILBOX: &str = "https://mailbox.example";

/// A joined pair on one test mailbox: (alice, her conversation, bob, his, mailbox).
#[allow(clippy::type_complexity)]
fn joined() -> (
    client_core::Client<support::Memory>,
    String,
    client_core::Client<support::Memory>,
    String,
    Rc<MailboxState>,
) {
    let mailbox = Rc::new(MailboxState::default());
    mailbox.online.set(true);
    let alice = client_on(30, None, mailbox.clone());
    let bob = client_on(31, None, mailbox.clone());
    run(alice.create_vault("a", FAST)).unwrap();
    run(bob.create_vault("b", FAST)).unwrap();
    let (a_id, link) = run(alice.create_invite(SITE, MAILBOX, "Bob")).unwrap();
    let b_id = run(bob.join(&link, MAILBOX, "Alice")).unwrap();
    assert_eq!(run(bob.flush()).unwrap().delivered, 1);
    assert!(run(alice.poll(&a_id)).unwrap().joined);
    (alice, a_id, bob, b_id, mailbox)
}

#[test]
fn a_409_over_our_own_bytes_after_a_lost_answer_is_delivered() {
    let (alice, a_id, bob, b_id, mailbox) = joined();
    run(bob.send(&b_id, "hello")).unwrap();
    mailbox.lose_next_answer.set(true);
    let first = run(bob.flush()).unwrap();
    assert_eq!((first.delivered, first.pending), (0, 1));
    let retry = run(bob.flush()).unwrap();
    assert_eq!((retry.delivered, retry.conflicts), (1, 0));
    assert_eq!(run(bob.history(&b_id)).unwrap()[0].status, Status::Sent);
    let got = run(alice.poll(&a_id)).unwrap();
    assert_eq!(got.messages.len(), 1);
}

#[test]
fn a_409_over_someone_elses_bytes_is_sent_again_at_a_later_address() {
    let (alice, a_id, bob, b_id, mailbox) = joined();
    run(bob.send(&b_id, "hello")).unwrap();
    mailbox.squat_next_put.set(true);
    let out = run(bob.flush()).unwrap();
    assert_eq!((out.delivered, out.conflicts, out.pending), (0, 1, 0));
    // Not final: encrypted again (after the next poll) and delivered.
    assert_eq!(run(bob.history(&b_id)).unwrap()[0].status, Status::Sending);
    let polled = run(bob.poll(&b_id)).unwrap();
    assert!(polled.flush_at_ms.is_some());
    let out = run(bob.flush()).unwrap();
    assert_eq!((out.delivered, out.conflicts), (1, 0));
    assert_eq!(run(bob.history(&b_id)).unwrap()[0].status, Status::Sent);
    let got = run(alice.poll(&a_id)).unwrap();
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].text, "hello");
}

#[test]
fn messages_reach_the_mailbox_in_the_order_they_were_written() {
    let (alice, a_id, bob, b_id, mailbox) = joined();
    run(bob.send(&b_id, "one")).unwrap();
    run(bob.send(&b_id, "two")).unwrap();
    // The first PUT's answer is lost: the second message must wait for it.
    mailbox.lose_next_answer.set(true);
    let out = run(bob.flush()).unwrap();
    assert_eq!(
        (out.delivered, out.pending),
        (0, 2),
        "the second waits for the first"
    );
    assert_eq!(run(bob.flush()).unwrap().delivered, 2);
    let texts: Vec<String> = run(alice.poll(&a_id))
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["one", "two"]);
}

/// A message longer than the maximum is refused at `send` also while earlier blobs wait for
/// the mailbox (more than `MAX_SEALED_AHEAD`), when a shorter one would wait to be sealed:
/// the refusal comes when the person sends it, never later.
#[test]
fn a_message_too_long_is_refused_also_while_blobs_wait_for_the_mailbox() {
    let (_alice, _a_id, bob, b_id, _mailbox) = joined();
    let at_limit = "x".repeat(protocol::MAX_MESSAGE_LEN);
    run(bob.send(&b_id, &at_limit)).unwrap();
    let err = run(bob.send(&b_id, &format!("{at_limit}x"))).unwrap_err();
    assert!(
        matches!(
            err,
            client_core::ClientError::Encrypt(protocol::EncryptError::MessageTooLong { .. })
        ),
        "{err:?}"
    );
    // A short one waits to be sealed, and is taken.
    run(bob.send(&b_id, "short")).unwrap();
}

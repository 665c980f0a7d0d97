//! Reading what a subscription pushed (`Client::poll_pushed`, Mailbox API revision 1.1):
//! the same messages, in the same order, as a poll would read, with fewer requests.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::type_complexity
)]

mod support;

use std::rc::Rc;

use client_core::RETRANSMIT_AFTER_MS;
use protocol::Address;
use support::{FAST, MailboxState, Pair, advance, client_on, run, texts};

const SITE: &str = "https://hush.example/";
const MAILBOX: &str = "https://mailbox.example";

/// A joined pair ([`support::joined`]) with Alice polled once more (her probe after the
/// join is behind her): (alice, her id, bob, his id, mailbox).
fn joined(seed: u64) -> Pair {
    let (alice, a_id, bob, b_id, mailbox) = support::joined(seed);
    run(alice.poll(&a_id)).unwrap();
    (alice, a_id, bob, b_id, mailbox)
}

/// The number of stores so far: pushes from here on are `pushed_since` it.
fn mark(mailbox: &MailboxState) -> usize {
    mailbox.stored.borrow().len()
}

/// Messages pushed as they are stored are read with no request at all (the poll and its
/// refetch they replace were two).
#[test]
fn a_pushed_message_is_read_with_no_request() {
    let (alice, a_id, bob, b_id, mailbox) = joined(300);
    for i in 0..5 {
        let from = mark(&mailbox);
        run(bob.send(&b_id, &format!("m{i}"))).unwrap();
        run(bob.flush()).unwrap();
        let fetches = mailbox.fetches.get();
        let got = run(alice.poll_pushed(&a_id, mailbox.pushed_since(from))).unwrap();
        assert_eq!(texts(&got.messages), [format!("m{i}")]);
        assert_eq!(got.rejected, 0);
        assert_eq!(mailbox.fetches.get() - fetches, 0, "fetches for m{i}");
        assert!(got.flush_at_ms.is_some(), "an acknowledgement is owed");
    }
}

/// A reply starts the peer's next chain. Its header's `PN` says how many messages the chain
/// it ends holds: when all of them were read, nothing can come before the reply, and it is
/// read with no request, as an alternating chat does at every message.
#[test]
fn a_reply_after_a_chain_read_to_its_end_needs_no_request() {
    let (alice, a_id, bob, b_id, mailbox) = joined(310);
    for round in 0..3 {
        run(alice.send(&a_id, &format!("question {round}"))).unwrap();
        run(alice.flush()).unwrap();
        let asked = run(bob.poll(&b_id)).unwrap();
        assert_eq!(texts(&asked.messages), [format!("question {round}")]);
        let from = mark(&mailbox);
        run(bob.send(&b_id, &format!("answer {round}"))).unwrap();
        run(bob.flush()).unwrap();
        let fetches = mailbox.fetches.get();
        let got = run(alice.poll_pushed(&a_id, mailbox.pushed_since(from))).unwrap();
        assert_eq!(texts(&got.messages), [format!("answer {round}")]);
        assert_eq!(mailbox.fetches.get() - fetches, 0, "round {round}");
    }
}

/// A reply that ends a chain with a message not read yet (its push went to another socket,
/// or was lost): the reply's `PN` counts it, so its address is fetched once and it shows
/// first: a reply never overtakes an earlier message.
#[test]
fn a_reply_after_an_unread_message_fetches_it_first() {
    let (alice, a_id, bob, b_id, mailbox) = joined(315);
    let from = mark(&mailbox);
    run(bob.send(&b_id, "x1")).unwrap();
    run(bob.send(&b_id, "x2")).unwrap();
    run(bob.flush()).unwrap();
    let pushed = mailbox.pushed_since(from);
    assert_eq!(pushed.len(), 2);
    let first = run(alice.poll_pushed(&a_id, vec![pushed[0].clone()])).unwrap();
    assert_eq!(texts(&first.messages), ["x1"]);
    run(alice.send(&a_id, "question")).unwrap();
    run(alice.flush()).unwrap();
    let asked = run(bob.poll(&b_id)).unwrap();
    assert!(texts(&asked.messages).contains(&"question".to_owned()));
    let from = mark(&mailbox);
    run(bob.send(&b_id, "answer")).unwrap();
    run(bob.flush()).unwrap();
    let fetches = mailbox.fetches.get();
    let got = run(alice.poll_pushed(&a_id, mailbox.pushed_since(from))).unwrap();
    assert_eq!(texts(&got.messages), ["x2", "answer"]);
    assert_eq!(mailbox.fetches.get() - fetches, 1);
}

/// A push that overtakes an earlier blob (pushed to another socket, or lost) never shows
/// first: the earlier address is fetched and read before it.
#[test]
fn a_push_never_overtakes_an_earlier_blob() {
    let (alice, a_id, bob, b_id, mailbox) = joined(320);
    let from = mark(&mailbox);
    run(bob.send(&b_id, "first")).unwrap();
    run(bob.send(&b_id, "second")).unwrap();
    run(bob.flush()).unwrap();
    let pushed = mailbox.pushed_since(from);
    assert_eq!(pushed.len(), 2);
    let fetches = mailbox.fetches.get();
    let got = run(alice.poll_pushed(&a_id, vec![pushed[1].clone()])).unwrap();
    assert_eq!(texts(&got.messages), ["first", "second"]);
    assert_eq!(mailbox.fetches.get() - fetches, 1);
}

/// Behind a gap (earlier blobs expired, their sender will deposit them again) a pushed blob
/// is held exactly as a poll holds it, and all show in order once the gap is filled.
#[test]
fn a_push_behind_a_gap_is_held_as_a_poll_holds_it() {
    let (alice, a_id, bob, b_id, mailbox) = joined(330);
    for i in 0..3 {
        run(bob.send(&b_id, &format!("m{i}"))).unwrap();
    }
    run(bob.flush()).unwrap();
    mailbox.expire_all();
    let from = mark(&mailbox);
    for i in 3..5 {
        run(bob.send(&b_id, &format!("m{i}"))).unwrap();
    }
    run(bob.flush()).unwrap();
    let early = run(alice.poll_pushed(&a_id, mailbox.pushed_since(from))).unwrap();
    assert!(early.messages.is_empty(), "m3 and m4 wait for m0-m2");
    assert_eq!(early.rejected, 0, "held, not rejected");
    let from = mark(&mailbox);
    advance(&bob, RETRANSMIT_AFTER_MS);
    assert_eq!(run(bob.flush()).unwrap().retransmitted, 3);
    let got = run(alice.poll_pushed(&a_id, mailbox.pushed_since(from))).unwrap();
    assert_eq!(texts(&got.messages), ["m0", "m1", "m2", "m3", "m4"]);
}

/// A blob pushed again after it was read (a new watch set's snapshot, another tab's push) is
/// known as the very blob read there and left alone; bytes at an address that is no longer
/// ours are rejected. Neither costs a request.
#[test]
fn a_blob_read_before_and_foreign_bytes_are_rejected_without_a_request() {
    let (alice, a_id, bob, b_id, mailbox) = joined(340);
    let from = mark(&mailbox);
    run(bob.send(&b_id, "once")).unwrap();
    run(bob.flush()).unwrap();
    let pushed = mailbox.pushed_since(from);
    assert_eq!(
        texts(
            &run(alice.poll_pushed(&a_id, pushed.clone()))
                .unwrap()
                .messages
        ),
        ["once"]
    );
    let fetches = mailbox.fetches.get();
    let mut again = pushed;
    again.push((Address([7; 32]), vec![0xAA; 1024]));
    let got = run(alice.poll_pushed(&a_id, again)).unwrap();
    assert!(got.messages.is_empty());
    assert_eq!(got.rejected, 1, "only the foreign bytes");
    assert_eq!(got.flush_at_ms, None, "the blob read there is no rewrite");
    assert_eq!(mailbox.fetches.get(), fetches);
}

/// The joiner's hello, pushed to the inviter's subscription, completes the invite with no
/// fetch.
#[test]
fn a_pushed_hello_completes_the_invite() {
    let mailbox = Rc::new(MailboxState::default());
    mailbox.online.set(true);
    let alice = client_on(350, None, mailbox.clone());
    let bob = client_on(351, None, mailbox.clone());
    run(alice.create_vault("a", FAST)).unwrap();
    run(bob.create_vault("b", FAST)).unwrap();
    let (a_id, link) = run(alice.create_invite(SITE, MAILBOX, "Bob")).unwrap();
    let from = mark(&mailbox);
    run(bob.join(&link, MAILBOX, "Alice")).unwrap();
    run(bob.flush()).unwrap();
    let fetches = mailbox.fetches.get();
    let got = run(alice.poll_pushed(&a_id, mailbox.pushed_since(from))).unwrap();
    assert!(got.joined);
    assert_eq!(mailbox.fetches.get(), fetches);
}

/// With delete after read on, what a push read is deleted over the subscription: the poll
/// returns one delete message for its blobs and makes no `DELETE` request; a poll of the
/// poll set returns none, and its blobs are deleted over HTTP once the app has shown them.
#[test]
fn a_pushed_read_is_deleted_over_the_subscription() {
    let (alice, a_id, bob, b_id, mailbox) = joined(350);
    alice.set_delete_after_read(true);
    let from = mark(&mailbox);
    run(bob.send(&b_id, "one")).unwrap();
    run(bob.send(&b_id, "two")).unwrap();
    run(bob.flush()).unwrap();
    let deletes = mailbox.deletes.get();
    let got = run(alice.poll_pushed(&a_id, mailbox.pushed_since(from))).unwrap();
    assert_eq!(texts(&got.messages), ["one", "two"]);
    assert_eq!(mailbox.deletes.get(), deletes, "no DELETE request");
    assert_eq!(got.delete_messages.len(), 1);
    assert_eq!(got.delete_messages[0].len(), 1 + 32 * 2);
    let spent = mailbox.spent.borrow().len();
    mailbox.receive_delete_messages(&got.delete_messages);
    assert_eq!(mailbox.spent.borrow().len(), spent + 2);
    run(bob.send(&b_id, "three")).unwrap();
    run(bob.flush()).unwrap();
    let polled = run(alice.poll(&a_id)).unwrap();
    assert_eq!(texts(&polled.messages), ["three"]);
    assert!(polled.delete_messages.is_empty());
    assert_eq!(polled.deletes_owed, 1);
    run(alice.delete_read(&a_id));
    assert_eq!(mailbox.deletes.get(), deletes + 1);
}

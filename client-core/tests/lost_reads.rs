//! Messages read by a copy of the reader's device that was then lost (`docs/PROTOCOL.md` §8,
//! "Read and lost"): with delete after read, their addresses are spent and nothing is left to
//! read again, so the sender, finding them spent and never acknowledged, sends them again.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use client_core::{ACK_DELAY_MAX_MS, Client, RETRANSMIT_AFTER_MS, Status};
use support::{Memory, advance, joined, restore, run, snapshot, status_of, texts};

/// Two retransmission checks of Alice's, one interval apart: the first finds her blob spent,
/// the second still unacknowledged. Returns the texts of the messages the second sent again.
fn two_checks(alice: &Client<Memory>) -> Vec<String> {
    advance(alice, RETRANSMIT_AFTER_MS);
    assert!(
        run(alice.flush()).unwrap().resent.is_empty(),
        "not at the first sight"
    );
    advance(alice, RETRANSMIT_AFTER_MS);
    let check = run(alice.flush()).unwrap();
    if !check.resent.is_empty() {
        assert!(
            check.flush_at_ms.is_some(),
            "the new blobs are flushed at once"
        );
        run(alice.flush()).unwrap();
    }
    check.resent.into_iter().map(|e| e.text).collect()
}

/// Bob reads and deletes Alice's message, then his device goes back to a copy from before:
/// nothing is left on the mailbox for it. Alice sends the message again (new blobs, same
/// message id) and Bob shows it. It reaches *delivered* once Alice's floor passes the spent
/// blob (until then Bob acknowledges the re-sent blob in his bits only, and *delivered*
/// needs the confirmed prefix): her acknowledgement of Bob's hello, unconfirmed until Bob
/// writes again, pins the floor below it for one more blob.
#[test]
fn a_message_read_by_a_lost_copy_is_sent_again() {
    let (alice, a_id, bob, b_id, _mailbox) = joined(400);
    alice.set_delete_after_read(true);
    bob.set_delete_after_read(true);
    let seq = run(alice.send(&a_id, "hello")).unwrap();
    run(alice.flush()).unwrap();
    let copy = snapshot(&bob);
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), ["hello"]);
    // Its next poll deletes what that one read.
    assert!(run(bob.poll(&b_id)).unwrap().messages.is_empty());
    // Lost before its acknowledgement went out.
    restore(&bob, copy, "b");
    bob.set_delete_after_read(true);
    let spent = run(bob.poll(&b_id)).unwrap();
    assert!(spent.messages.is_empty(), "spent: nothing to read again");
    assert_eq!(spent.rejected, 0, "a spent address is not junk");
    assert_eq!(two_checks(&alice), ["hello"]);
    assert_eq!(status_of(&alice, &a_id, seq), Status::Sent);
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), ["hello"]);
    assert_eq!(texts(&run(bob.history(&b_id)).unwrap()), ["hello"]);
    // Two more messages: the first carries a floor still pinned by Alice's acknowledgement of
    // Bob's hello (confirmed by Bob's answer to it), the second one past the spent blob.
    let mut later = 0;
    for text in ["later", "and later"] {
        later = run(alice.send(&a_id, text)).unwrap();
        run(alice.flush()).unwrap();
        assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), [text]);
        advance(&bob, ACK_DELAY_MAX_MS);
        run(bob.flush()).unwrap();
        run(alice.poll(&a_id)).unwrap();
    }
    assert_eq!(status_of(&alice, &a_id, seq), Status::Delivered);
    assert_eq!(status_of(&alice, &a_id, later), Status::Delivered);
}

/// A reader that kept the message but acknowledges late (its app closed right after
/// reading): the message is sent again all the same, and shown once.
#[test]
fn a_late_acknowledgement_costs_one_blob_and_the_message_shows_once() {
    let (alice, a_id, bob, b_id, _mailbox) = joined(410);
    alice.set_delete_after_read(true);
    bob.set_delete_after_read(true);
    let seq = run(alice.send(&a_id, "hello")).unwrap();
    run(alice.flush()).unwrap();
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), ["hello"]);
    // Its next poll deletes what that one read.
    assert!(run(bob.poll(&b_id)).unwrap().messages.is_empty());
    assert_eq!(two_checks(&alice), ["hello"]);
    let again = run(bob.poll(&b_id)).unwrap();
    assert!(again.messages.is_empty(), "shown once");
    advance(&bob, ACK_DELAY_MAX_MS);
    run(bob.flush()).unwrap();
    run(alice.poll(&a_id)).unwrap();
    assert_eq!(status_of(&alice, &a_id, seq), Status::Delivered);
    let history = run(bob.history(&b_id)).unwrap();
    assert_eq!(texts(&history), ["hello"]);
}

/// A blob acknowledged between the two checks is never sent again.
#[test]
fn an_acknowledged_blob_is_not_sent_again() {
    let (alice, a_id, bob, b_id, _mailbox) = joined(420);
    alice.set_delete_after_read(true);
    bob.set_delete_after_read(true);
    let seq = run(alice.send(&a_id, "hello")).unwrap();
    run(alice.flush()).unwrap();
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), ["hello"]);
    advance(&alice, RETRANSMIT_AFTER_MS);
    assert!(run(alice.flush()).unwrap().resent.is_empty());
    advance(&bob, ACK_DELAY_MAX_MS);
    run(bob.flush()).unwrap();
    run(alice.poll(&a_id)).unwrap();
    assert_eq!(status_of(&alice, &a_id, seq), Status::Delivered);
    advance(&alice, RETRANSMIT_AFTER_MS);
    assert!(run(alice.flush()).unwrap().resent.is_empty());
}

/// Bob reads and deletes Alice's message, answers it (a new chain of his), and Alice reads
/// the answer; then Bob's device goes back to a copy from before he read it. His next poll
/// finds the address he still expects spent: a copy of his device read it and is lost. Alice's
/// later messages answer that copy, so nothing of hers may be readable here again: the
/// conversation says one of the two devices went back (the unreadable notice, whose restore
/// signal tells Alice), and Bob's message sent meanwhile is not shown as on its way for ever.
#[test]
fn a_spent_address_the_restored_reader_still_expects_raises_the_notice() {
    let (alice, a_id, bob, b_id, _mailbox) = joined(430);
    alice.set_delete_after_read(true);
    bob.set_delete_after_read(true);
    run(alice.send(&a_id, "hello")).unwrap();
    run(alice.flush()).unwrap();
    let copy = snapshot(&bob);
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), ["hello"]);
    // Its next poll deletes what that one read.
    assert!(run(bob.poll(&b_id)).unwrap().messages.is_empty());
    run(bob.send(&b_id, "hi")).unwrap();
    run(bob.flush()).unwrap();
    assert_eq!(texts(&run(alice.poll(&a_id)).unwrap().messages), ["hi"]);
    restore(&bob, copy, "b");
    bob.set_delete_after_read(true);
    let before = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(before.unreadable.is_none());
    let polled = run(bob.poll(&b_id)).unwrap();
    assert!(polled.messages.is_empty(), "spent: nothing to read again");
    assert_eq!(polled.rejected, 0, "a spent address is not junk");
    assert!(polled.notice, "the restore is told");
    let summary = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(summary.unreadable.is_some(), "the conversation says it");
}

/// The address this state read and deleted itself reads spent afterwards: it has left the poll
/// set, nothing was lost, so no notice.
#[test]
fn a_spent_address_read_by_this_state_raises_nothing() {
    let (alice, a_id, bob, b_id, _mailbox) = joined(440);
    alice.set_delete_after_read(true);
    bob.set_delete_after_read(true);
    run(alice.send(&a_id, "hello")).unwrap();
    run(alice.flush()).unwrap();
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), ["hello"]);
    // The next poll finds the address spent (deleted by the first) and no longer polled.
    let again = run(bob.poll(&b_id)).unwrap();
    assert!(!again.notice);
    let summary = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(summary.unreadable.is_none());
}

/// A fragment of a two-blob message stays on the mailbox until the blob that completes the
/// message is read: Bob reads the first fragment alone (the second is not there yet), and a
/// copy of his device restored after that poll still completes the message, in order, from
/// the mailbox. Once the message is shown, both blobs are deleted. (Deleting the fragment at
/// read left the restored copy unable to complete it until Alice sent it again, after later
/// messages: the simulator's `all --delete-after-read` seed 3893.)
#[test]
fn a_fragment_is_deleted_only_with_its_message() {
    let (alice, a_id, bob, b_id, mailbox) = joined(401);
    alice.set_delete_after_read(true);
    bob.set_delete_after_read(true);
    let long = "x".repeat(1_500);
    let stored_before = mailbox.stored.borrow().len();
    run(alice.send(&a_id, &long)).unwrap();
    run(alice.flush()).unwrap();
    let stored: Vec<[u8; 32]> = mailbox.stored.borrow()[stored_before..].to_vec();
    assert_eq!(stored.len(), 2, "two fragments");
    // The second fragment is late: Bob reads the first alone.
    let second = mailbox.blobs.borrow_mut().remove(&stored[1]).unwrap();
    let copy = snapshot(&bob);
    assert!(run(bob.poll(&b_id)).unwrap().messages.is_empty());
    // The next poll deletes what the first read and committed: not the fragment.
    assert!(run(bob.poll(&b_id)).unwrap().messages.is_empty());
    assert!(mailbox.blobs.borrow().contains_key(&stored[0]), "kept");
    assert!(mailbox.spent.borrow().is_empty());
    // Bob's device goes back to before the first poll; the second fragment arrives.
    restore(&bob, copy, "b");
    bob.set_delete_after_read(true);
    mailbox.blobs.borrow_mut().insert(stored[1], second);
    assert_eq!(
        texts(&run(bob.poll(&b_id)).unwrap().messages),
        [long.as_str()]
    );
    run(bob.poll(&b_id)).unwrap();
    let spent = mailbox.spent.borrow();
    assert!(spent.contains_key(&stored[0]) && spent.contains_key(&stored[1]));
}

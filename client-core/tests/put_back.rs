//! Putting back what a lost copy of the reader's device read (`docs/CLIENT.md`, "Putting back
//! what a lost copy read"; Mailbox API revision 1.3): with delete after read, the blobs the
//! lost copy read are gone from the mailbox, so the restored copy finds their addresses
//! spent; the writer, seeing the reader's acknowledgements go back, puts those very bytes
//! back, and the conversation goes on with nothing missing.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use client_core::{ACK_DELAY_MAX_MS, Client, RETRANSMIT_AFTER_MS, Status};
use support::{Memory, advance, joined, restore, run, snapshot, status_of, texts};

/// Bob's acknowledgement goes out and Alice reads it.
fn acknowledge(bob: &Client<Memory>, alice: &Client<Memory>, a_id: &str) {
    advance(bob, ACK_DELAY_MAX_MS);
    run(bob.flush()).unwrap();
    run(alice.poll(a_id)).unwrap();
}

/// Alice writes "three" and Bob reads it, then Bob writes "back" and Alice reads it.
fn answer_both_ways(alice: &Client<Memory>, a_id: &str, bob: &Client<Memory>, b_id: &str) {
    run(alice.send(a_id, "three")).unwrap();
    run(alice.flush()).unwrap();
    assert_eq!(texts(&run(bob.poll(b_id)).unwrap().messages), ["three"]);
    run(bob.send(b_id, "back")).unwrap();
    run(bob.flush()).unwrap();
    assert_eq!(texts(&run(alice.poll(a_id)).unwrap().messages), ["back"]);
}

/// Both apps run for `intervals` retransmission intervals, flushing and polling once in each.
fn both_run(alice: &Client<Memory>, a_id: &str, bob: &Client<Memory>, b_id: &str, intervals: u32) {
    for _ in 0..intervals {
        advance(alice, RETRANSMIT_AFTER_MS);
        advance(bob, RETRANSMIT_AFTER_MS);
        run(alice.flush()).unwrap();
        run(bob.flush()).unwrap();
        run(alice.poll(a_id)).unwrap();
        run(bob.poll(b_id)).unwrap();
    }
}

/// Both delete what they read; Alice sends `sent`, Bob reads, deletes and acknowledges it,
/// then Bob's device goes back to a copy from before he read it.
fn restored_after_reading(seed: u64, sent: &[&str]) -> support::Pair {
    let (alice, a_id, bob, b_id, mailbox) = joined(seed);
    alice.set_delete_after_read(true);
    bob.set_delete_after_read(true);
    for text in sent {
        run(alice.send(&a_id, text)).unwrap();
    }
    run(alice.flush()).unwrap();
    let copy = snapshot(&bob);
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), sent);
    run(bob.delete_read(&b_id));
    acknowledge(&bob, &alice, &a_id);
    restore(&bob, copy, "b");
    bob.set_delete_after_read(true);
    (alice, a_id, bob, b_id, mailbox)
}

/// Bob reads Alice's two messages, deletes them and acknowledges them; Alice confirms them.
/// Then Bob's device goes back to a copy from before he read them. The restored copy finds
/// the addresses spent and says so; its acknowledgement goes back below what Alice had
/// confirmed, so Alice puts the two blobs back, byte for byte, where they stood. Bob reads
/// them there, the notice lifts once Alice confirms a blob of the restored copy, and well past
/// the 5 minutes after which the restore signal would end it, the conversation goes on.
#[test]
fn what_a_lost_copy_read_and_deleted_is_put_back_and_the_conversation_goes_on() {
    let (alice, a_id, bob, b_id, mailbox) = joined(450);
    alice.set_delete_after_read(true);
    bob.set_delete_after_read(true);
    let first = run(alice.send(&a_id, "one")).unwrap();
    run(alice.send(&a_id, "two")).unwrap();
    run(alice.flush()).unwrap();
    let copy = snapshot(&bob);
    assert_eq!(
        texts(&run(bob.poll(&b_id)).unwrap().messages),
        ["one", "two"]
    );
    run(bob.delete_read(&b_id));
    acknowledge(&bob, &alice, &a_id);
    assert_eq!(status_of(&alice, &a_id, first), Status::Delivered);
    assert_eq!(
        mailbox.put_backs.get(),
        0,
        "nothing went back while nobody went back"
    );

    restore(&bob, copy, "b");
    bob.set_delete_after_read(true);
    let polled = run(bob.poll(&b_id)).unwrap();
    assert!(polled.messages.is_empty(), "spent: nothing to read yet");
    assert!(polled.notice, "the restore is told");
    assert!(
        run(bob.conversation_summary(&b_id))
            .unwrap()
            .unreadable
            .is_some()
    );
    // The restored copy's acknowledgement (owed at once) shows Alice it is behind; her next
    // flush puts the two blobs back, and only those.
    acknowledge(&bob, &alice, &a_id);
    let flushed = run(alice.flush()).unwrap();
    assert_eq!(flushed.put_back, 2);
    assert_eq!(mailbox.put_backs.get(), 2);
    assert_eq!(
        texts(&run(bob.poll(&b_id)).unwrap().messages),
        ["one", "two"]
    );
    // Alice answers; her answer confirms the restored copy's acknowledgement: the notice
    // lifts, and nothing ends, also after the restore signal's 5 minutes.
    answer_both_ways(&alice, &a_id, &bob, &b_id);
    both_run(&alice, &a_id, &bob, &b_id, 3);
    let bob_view = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(bob_view.ended.is_none(), "{:?}", bob_view.ended);
    assert!(bob_view.unreadable.is_none(), "the notice lifted");
    assert!(
        run(alice.conversation_summary(&a_id))
            .unwrap()
            .ended
            .is_none()
    );
    assert_eq!(
        texts(&run(bob.history(&b_id)).unwrap()),
        ["one", "two", "three", "back"]
    );
    // Putting back twice stores nothing twice: the blobs are read and deleted again, and no
    // new round starts while the first is recent.
    assert_eq!(mailbox.put_backs.get(), 2);
}

/// Without deletes nothing is spent: the restored reader reads the blobs where they stand,
/// and the writer sends no put-back at all (a round, if one starts, finds nothing spent).
#[test]
fn nothing_is_put_back_where_nothing_was_deleted() {
    let (alice, a_id, bob, b_id, mailbox) = joined(460);
    run(alice.send(&a_id, "one")).unwrap();
    run(alice.flush()).unwrap();
    let copy = snapshot(&bob);
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), ["one"]);
    acknowledge(&bob, &alice, &a_id);
    restore(&bob, copy, "b");
    // The restored copy writes before it reads: its blob acknowledges less than the lost
    // copy's did, so Alice finds it behind and starts a round.
    run(bob.send(&b_id, "hi")).unwrap();
    run(bob.flush()).unwrap();
    assert_eq!(texts(&run(alice.poll(&a_id)).unwrap().messages), ["hi"]);
    assert_eq!(run(alice.flush()).unwrap().put_back, 0);
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), ["one"]);
    acknowledge(&bob, &alice, &a_id);
    assert_eq!(run(alice.flush()).unwrap().put_back, 0);
    assert_eq!(mailbox.put_back_calls.get(), 0, "nothing to put back");
}

/// Against a mailbox that refuses the header (a browser's request to a mailbox before
/// revision 1.3 fails at the CORS preflight), the round gives up after three flushes, and the
/// outbox is never held back meanwhile.
#[test]
fn a_round_the_mailbox_refuses_gives_up_and_holds_nothing_back() {
    let (alice, a_id, bob, b_id, mailbox) = restored_after_reading(480, &["one"]);
    run(bob.poll(&b_id)).unwrap();
    mailbox.refuse_put_back.set(true);
    acknowledge(&bob, &alice, &a_id);
    for (i, text) in ["two", "three", "four", "five"].into_iter().enumerate() {
        run(alice.send(&a_id, text)).unwrap();
        let flushed = run(alice.flush()).unwrap();
        assert_eq!(flushed.put_back, 0);
        assert!(
            flushed.last_error.is_none(),
            "the round's failure is not the flush's"
        );
        assert_eq!(flushed.pending, 0, "{text} reached the mailbox");
        assert_eq!(
            mailbox.put_back_calls.get(),
            u32::try_from(i + 1).unwrap().min(3)
        );
    }
    assert_eq!(mailbox.put_backs.get(), 0);
}

/// Bob's restored copy finds what its lost copy read spent while Alice is away: it says some
/// of her messages are missing and waits for her device, for an hour and more, where it
/// ended the conversation on both sides after 5 minutes before (a fresh outside trial in
/// Chromium). When Alice's device next reads Bob's, it puts them back and the conversation
/// goes on, with nothing missing.
#[test]
fn the_restored_reader_waits_for_an_absent_writer() {
    let (alice, a_id, bob, b_id, mailbox) = restored_after_reading(452, &["one", "two"]);
    assert!(run(bob.poll(&b_id)).unwrap().notice, "the restore is told");
    let raised = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(raised.lost_reads);
    let since = raised.unreadable.unwrap().since_ms;
    assert_eq!(
        raised.signal_at_ms,
        Some(since + client_core::LOST_EVIDENCE_WAIT_MS),
        "a day: Alice's device has not read the request"
    );
    // Alice is away for an hour; Bob's app runs.
    for _ in 0..12 {
        advance(&bob, RETRANSMIT_AFTER_MS);
        run(bob.flush()).unwrap();
        run(bob.poll(&b_id)).unwrap();
    }
    let waiting = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(waiting.ended.is_none(), "{:?}", waiting.ended);
    assert!(waiting.lost_reads, "still asking");
    assert!(
        run(alice.conversation_summary(&a_id))
            .unwrap()
            .ended
            .is_none()
    );

    // Alice comes back: her device reads Bob's request and puts the two blobs back.
    run(alice.poll(&a_id)).unwrap();
    assert_eq!(run(alice.flush()).unwrap().put_back, 2);
    assert_eq!(mailbox.put_backs.get(), 2);
    assert_eq!(
        texts(&run(bob.poll(&b_id)).unwrap().messages),
        ["one", "two"]
    );
    answer_both_ways(&alice, &a_id, &bob, &b_id);
    acknowledge(&alice, &bob, &b_id);
    let bob_view = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(bob_view.unreadable.is_none(), "the notice lifted");
    assert!(bob_view.ended.is_none());
    assert_eq!(
        texts(&run(bob.history(&b_id)).unwrap()),
        ["one", "two", "three", "back"]
    );
}

/// Where Alice's device reads Bob's request but cannot put anything back (its mailbox
/// refuses), the notice does not wait a day: Bob's next retransmission check finds the
/// request read (its address spent), and 5 minutes later Bob's restore signal ends the
/// conversation on both sides, saying why.
#[test]
fn a_writer_that_read_the_request_and_put_nothing_back_ends_it_five_minutes_later() {
    let (alice, a_id, bob, b_id, mailbox) = restored_after_reading(453, &["one"]);
    run(bob.poll(&b_id)).unwrap();
    mailbox.refuse_put_back.set(true);
    // Alice reads (and deletes) Bob's request; her put-back cannot reach the mailbox.
    acknowledge(&bob, &alice, &a_id);
    run(alice.delete_read(&a_id));
    assert_eq!(run(alice.flush()).unwrap().put_back, 0);
    let waiting = run(bob.conversation_summary(&b_id)).unwrap();
    let since = waiting.unreadable.unwrap().since_ms;
    assert_eq!(
        waiting.signal_at_ms,
        Some(since + client_core::LOST_EVIDENCE_WAIT_MS),
        "not known yet to be read"
    );
    advance(&bob, RETRANSMIT_AFTER_MS);
    run(bob.flush()).unwrap();
    let summary = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(summary.lost_reads, "\"one\" is still missing");
    let now = bob.platform().now_ms.get();
    assert_eq!(
        summary.signal_at_ms,
        Some(now + RETRANSMIT_AFTER_MS),
        "5 minutes after the request was found read"
    );
    advance(&bob, RETRANSMIT_AFTER_MS);
    run(bob.poll(&b_id)).unwrap();
    run(alice.poll(&a_id)).unwrap();
    assert_eq!(
        run(alice.conversation_summary(&a_id)).unwrap().ended,
        Some(client_core::EndReason::Diverged),
        "told, and the conversation says why"
    );
}

/// Bob's restored copy asked, Alice's device put back what the lost copy read, and Alice has
/// nothing to say: the notice lifts all the same, within a few acknowledgement delays, and
/// the conversation does not end. Before, only Alice's next message lifted it: the lost
/// copy's acknowledgement, which Alice had read, made her refuse the restored copy's blobs
/// until it sent again under a later floor, and she never confirmed that, so Bob's check
/// later found his blobs read and ended the conversation on both sides, about 30 minutes
/// after everything had come back (a fresh outside trial in Chromium). Alice now owes an
/// acknowledgement when hers passes numbers she refused.
#[test]
fn the_notice_lifts_when_what_was_missing_comes_back_and_the_writer_says_nothing() {
    let (alice, a_id, bob, b_id, mailbox) = restored_after_reading(454, &["one", "two"]);
    assert!(run(bob.poll(&b_id)).unwrap().notice);
    acknowledge(&bob, &alice, &a_id);
    assert_eq!(run(alice.flush()).unwrap().put_back, 2);
    assert_eq!(mailbox.put_backs.get(), 2);
    assert_eq!(
        texts(&run(bob.poll(&b_id)).unwrap().messages),
        ["one", "two"]
    );
    // Only acknowledgements go between them now.
    let mut lifted_after = None;
    for exchange in 1..=3 {
        advance(&alice, ACK_DELAY_MAX_MS);
        advance(&bob, ACK_DELAY_MAX_MS);
        run(bob.flush()).unwrap();
        run(alice.poll(&a_id)).unwrap();
        run(alice.flush()).unwrap();
        run(bob.poll(&b_id)).unwrap();
        if run(bob.conversation_summary(&b_id))
            .unwrap()
            .unreadable
            .is_none()
        {
            lifted_after = Some(exchange);
            break;
        }
    }
    assert!(lifted_after.is_some(), "the notice still stands");
    // An hour on, nothing has ended and nothing was sent by anyone.
    both_run(&alice, &a_id, &bob, &b_id, 12);
    let bob_view = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(bob_view.ended.is_none(), "{:?}", bob_view.ended);
    assert!(bob_view.unreadable.is_none());
    assert!(
        run(alice.conversation_summary(&a_id))
            .unwrap()
            .ended
            .is_none()
    );
    assert_eq!(texts(&run(bob.history(&b_id)).unwrap()), ["one", "two"]);
}

/// Bob's restored copy writes a message before anything else, under the number its lost copy
/// used for the acknowledgement Alice read: its acknowledgement is not above every number
/// Alice holds, but Alice holds another blob under that number, so she finds Bob behind all
/// the same and puts back what the lost copy read (before, nothing went back and "one" stayed
/// missing). While Alice is away, the message is not confirmed, and says so under the notice;
/// once she is back it is delivered and the notice lifts. (Before, the poll that lifted the
/// notice also wrote the message's old status over *delivered*: it stayed *sent* for good, as
/// a fresh outside trial in Chromium saw.)
#[test]
fn a_restored_reader_that_writes_first_gets_what_was_missing_back() {
    let (alice, a_id, bob, b_id, mailbox) = restored_after_reading(455, &["one"]);
    assert!(run(bob.poll(&b_id)).unwrap().notice);
    let asked = run(bob.send(&b_id, "are you there?")).unwrap();
    run(bob.flush()).unwrap();
    for _ in 0..3 {
        advance(&bob, RETRANSMIT_AFTER_MS);
        run(bob.flush()).unwrap();
        run(bob.poll(&b_id)).unwrap();
        assert!(run(bob.conversation_summary(&b_id)).unwrap().lost_reads);
        assert_eq!(status_of(&bob, &b_id, asked), Status::Failed);
    }
    // Alice comes back: she reads it, puts back "one" and confirms.
    assert_eq!(
        texts(&run(alice.poll(&a_id)).unwrap().messages),
        ["are you there?"]
    );
    let mut shown = Vec::new();
    for _ in 0..3 {
        run(alice.flush()).unwrap();
        shown.extend(texts(&run(bob.poll(&b_id)).unwrap().messages));
        advance(&alice, ACK_DELAY_MAX_MS);
        advance(&bob, ACK_DELAY_MAX_MS);
        run(bob.flush()).unwrap();
        run(alice.poll(&a_id)).unwrap();
    }
    assert_eq!(mailbox.put_backs.get(), 1);
    assert_eq!(shown, ["one"]);
    assert_eq!(status_of(&bob, &b_id, asked), Status::Delivered);
    let bob_view = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(bob_view.unreadable.is_none());
    assert!(bob_view.ended.is_none());
}

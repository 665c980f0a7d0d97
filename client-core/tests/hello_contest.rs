//! A hello that finds foreign bytes at its address is not final at once
//! (`docs/PROTOCOL.md` §8, "A contested hello"): when its `201` was lost, the inviter may have
//! read it and answered before it expired and someone wrote at the freed address (`all` seeds
//! 4176, 5879, 6229 and 8699: the joiner was told the invite was taken while the inviter's
//! messages stayed *sent* for ever). The joiner's polls watch for the answer for
//! `HELLO_CONTEST_MS`; only then is the invite taken.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use client_core::{HELLO_CONTEST_MS, RETRANSMIT_RECHECK_MS, Status};
use support::{MailboxState, Pair, advance, invited_and_joining, run, status_of};

/// Alice invites and Bob joins; Bob's hello is stored but its answer lost, so his outbox
/// still holds it.
fn joined_with_the_hellos_answer_lost() -> Pair {
    let (alice, a_id, bob, b_id, mailbox) = invited_and_joining(50);
    mailbox.lose_next_answer.set(true);
    assert_eq!(run(bob.flush()).unwrap().delivered, 0);
    assert_eq!(mailbox.stored.borrow().len(), 1, "the hello is stored");
    (alice, a_id, bob, b_id, mailbox)
}

/// Everything on the mailbox expires, and an invite photographer writes junk at the freed
/// hello address.
fn squat_the_expired_hello(mailbox: &MailboxState) {
    let hello_address = mailbox.stored.borrow()[0];
    mailbox.expire_all();
    mailbox
        .blobs
        .borrow_mut()
        .insert(hello_address, vec![0xAA; 1024]);
}

/// Lets `bob` poll `id` every minute for `minutes` minutes, flushing after each poll.
fn watch(bob: &client_core::Client<support::Memory>, id: &str, minutes: u64) {
    for _ in 0..minutes {
        advance(bob, 60_000);
        run(bob.poll(id)).unwrap();
        run(bob.flush()).unwrap();
    }
}

#[test]
fn a_hello_read_and_answered_then_squatted_after_it_expired_keeps_the_conversation() {
    let (alice, a_id, bob, b_id, mailbox) = joined_with_the_hellos_answer_lost();
    // Alice accepts the hello and writes; then everything expires (Bob was away longer than
    // the mailbox lifetime) and an invite photographer writes junk at the freed hello address.
    assert!(run(alice.poll(&a_id)).unwrap().joined);
    let seq = run(alice.send(&a_id, "are you there?")).unwrap();
    run(alice.flush()).unwrap();
    squat_the_expired_hello(&mailbox);
    // Bob is back: his hello meets the junk. Not final: he keeps watching.
    let flushed = run(bob.flush()).unwrap();
    assert_eq!(flushed.conflicts, 1, "{flushed:?}");
    assert!(!run(bob.conversation_summary(&b_id)).unwrap().invite_taken);
    // A flush is asked for within a minute, and a flush meanwhile does not touch the hello.
    let asked = flushed.flush_at_ms.expect("a flush is asked for");
    assert!(asked <= bob.platform().now_ms.get() + RETRANSMIT_RECHECK_MS);
    let puts = mailbox.puts.get();
    assert_eq!(run(bob.flush()).unwrap().conflicts, 0);
    assert_eq!(mailbox.puts.get(), puts, "tried a moment ago: left alone");
    watch(&bob, &b_id, 3);
    assert!(!run(bob.conversation_summary(&b_id)).unwrap().invite_taken);
    // Alice's retransmission check deposits her expired message again; Bob's poll reads it,
    // which confirms his hello.
    advance(&alice, client_core::RETRANSMIT_AFTER_MS);
    assert!(run(alice.flush()).unwrap().retransmitted >= 1);
    let polled = run(bob.poll(&b_id)).unwrap();
    assert_eq!(polled.messages.len(), 1);
    let summary = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(summary.joined && !summary.invite_taken, "{summary:?}");
    // Long after the contest time, nothing takes the invite from him, and both directions
    // work: Bob's answer reaches Alice, and Alice's message reaches *delivered*.
    watch(&bob, &b_id, HELLO_CONTEST_MS / 60_000 + 2);
    assert!(!run(bob.conversation_summary(&b_id)).unwrap().invite_taken);
    let reply = run(bob.send(&b_id, "yes")).unwrap();
    run(bob.flush()).unwrap();
    let polled = run(alice.poll(&a_id)).unwrap();
    assert_eq!(polled.messages.len(), 1);
    assert_eq!(status_of(&alice, &a_id, seq), Status::Delivered);
    assert_eq!(status_of(&bob, &b_id, reply), Status::Sent);
}

#[test]
fn a_hello_never_answered_is_taken_only_after_the_polls_watched_for_the_contest_time() {
    let (_, _, bob, b_id, mailbox) = joined_with_the_hellos_answer_lost();
    // Someone else's bytes at the hello address, and an inviter that never answers.
    squat_the_expired_hello(&mailbox);
    let seq = run(bob.send(&b_id, "hello?")).unwrap();
    let flushed = run(bob.flush()).unwrap();
    assert_eq!((flushed.conflicts, flushed.pending), (1, 1), "{flushed:?}");
    let asked = flushed.flush_at_ms.expect("a flush is asked for");
    assert!(asked <= bob.platform().now_ms.get() + RETRANSMIT_RECHECK_MS);
    // Away for an hour without a poll: the watch has not run, nothing is decided.
    advance(&bob, 60 * 60_000);
    run(bob.flush()).unwrap();
    assert!(!run(bob.conversation_summary(&b_id)).unwrap().invite_taken);
    // Polls every minute: the message waits behind the hello, then once the polls watched
    // for the contest time, the invite is taken and the message says why.
    watch(&bob, &b_id, HELLO_CONTEST_MS / 60_000 - 1);
    assert!(!run(bob.conversation_summary(&b_id)).unwrap().invite_taken);
    assert_eq!(status_of(&bob, &b_id, seq), Status::Sending);
    watch(&bob, &b_id, 2);
    assert!(run(bob.conversation_summary(&b_id)).unwrap().invite_taken);
}

#[test]
fn foreign_bytes_found_at_the_first_try_take_the_invite_at_once() {
    // Someone wrote at the hello address before our hello was ever sent (another joiner with
    // the same invite): nothing of ours can have been there, so there is nothing to watch for.
    let (_, _, bob, b_id, mailbox) = invited_and_joining(52);
    mailbox.squat_next_put.set(true);
    let flushed = run(bob.flush()).unwrap();
    assert_eq!(flushed.conflicts, 1, "{flushed:?}");
    assert!(run(bob.conversation_summary(&b_id)).unwrap().invite_taken);
}

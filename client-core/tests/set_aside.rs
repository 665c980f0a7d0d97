//! Messages a later floor passes (`docs/CLIENT.md`, "Messages a later floor passes"): a
//! message read behind a gap whose own number a later blob's floor passes is set aside for its
//! copy sent again, and shown once that copy completes or after `SET_ASIDE_MS`.

#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use client_core::receive::SET_ASIDE_MS;
use support::{advance, flush_when_due, joined, restore, run, snapshot, texts};

/// A message set aside that nothing sends again (a lost copy of this device confirmed it)
/// shows once its wait is over, at a poll that finds nothing new: the peer may stay quiet
/// for days, and it must not stay hidden until they write.
#[test]
fn a_message_set_aside_shows_after_the_wait_while_the_peer_is_quiet() {
    let (alice, a_id, bob, b_id, mailbox) = joined(71);
    let backup = snapshot(&alice);
    let at = mailbox.stored.borrow().len();
    run(bob.send(&b_id, "one")).unwrap();
    run(bob.send(&b_id, "two")).unwrap();
    run(bob.flush()).unwrap();
    let one = mailbox.stored.borrow()[at];
    // Alice's device reads both and acknowledges them; Bob learns it and writes on, his
    // floor past both.
    assert_eq!(
        texts(&run(alice.poll(&a_id)).unwrap().messages),
        ["one", "two"]
    );
    assert_eq!(flush_when_due(&alice), 1);
    run(bob.poll(&b_id)).unwrap();
    run(bob.send(&b_id, "three")).unwrap();
    run(bob.flush()).unwrap();
    // Alice's device goes back to the copy taken before; "one" has expired meanwhile.
    mailbox.blobs.borrow_mut().remove(&one);
    restore(&alice, backup, "a");
    // "two" is read behind the gap "one" left, and "three"'s floor passes it: it waits
    // for a copy sent again, which never comes (Bob had it confirmed).
    let read_ms = alice.platform().now_ms.get();
    let polled = run(alice.poll(&a_id)).unwrap();
    assert_eq!(texts(&polled.messages), ["three"]);
    assert_eq!(polled.poll_at_ms, Some(read_ms + SET_ASIDE_MS));
    // Bob says nothing more. Polls before the wait is over find nothing and show nothing.
    advance(&alice, SET_ASIDE_MS - 1);
    let polled = run(alice.poll(&a_id)).unwrap();
    assert!(polled.messages.is_empty());
    assert_eq!(polled.poll_at_ms, Some(read_ms + SET_ASIDE_MS));
    // The poll at the end of the wait finds nothing either, and shows it, once.
    advance(&alice, 1);
    let polled = run(alice.poll(&a_id)).unwrap();
    assert_eq!(texts(&polled.messages), ["two"]);
    assert_eq!(polled.poll_at_ms, None);
    advance(&alice, SET_ASIDE_MS);
    assert!(run(alice.poll(&a_id)).unwrap().messages.is_empty());
    let history = texts(&run(alice.history(&a_id)).unwrap());
    assert_eq!(history, ["three", "two"]);
    // A restart reads no record left behind.
    restore(&alice, snapshot(&alice), "a");
    assert!(run(alice.poll(&a_id)).unwrap().messages.is_empty());
}

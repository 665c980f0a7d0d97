//! The floor reaches the reader (`docs/PROTOCOL.md` §8, "Floor"): when a confirmation moves
//! the sender's floor past numbers the reader never got while the sender's data waits above
//! them, the sender owes the reader an acknowledgement-only blob carrying the new floor.
//! Without it a restored sender whose message went again higher up, with nothing more to say,
//! left the reader holding that message for `MAX_HOLD_MS`, 24 hours (`all` seed 7870).

#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use support::{advance, joined, restore, run, snapshot, texts};

/// Lets `client`'s owed acknowledgement fall due and flushes it; returns the blobs it stored.
fn flush_when_due(client: &client_core::Client<support::Memory>) -> u32 {
    if let Some(at) = run(client.next_flush_ms()).unwrap() {
        let now = client.platform().now_ms.get();
        advance(client, at.saturating_sub(now));
    }
    run(client.flush()).unwrap().acks_sent
}

#[test]
fn a_restored_senders_message_sent_again_past_an_abandoned_number_is_not_held_for_a_day() {
    let (alice, a_id, bob, b_id, mailbox) = joined(70);
    // Bob writes; Alice, who has not read it yet, writes too (her message does not confirm
    // his), and a backup of her device is taken.
    run(bob.send(&b_id, "hello")).unwrap();
    run(bob.flush()).unwrap();
    run(alice.send(&a_id, "before")).unwrap();
    run(alice.flush()).unwrap();
    let backup = snapshot(&alice);
    // Alice reads Bob's message and acknowledges it; Bob reads both of her blobs (his
    // acknowledgement is owed, not sent yet).
    assert_eq!(texts(&run(alice.poll(&a_id)).unwrap().messages), ["hello"]);
    assert_eq!(flush_when_due(&alice), 1);
    assert_eq!(texts(&run(bob.poll(&b_id)).unwrap().messages), ["before"]);
    // Alice's device goes back to the copy taken before. It writes two messages before any
    // poll: the first finds its lost copy's acknowledgement at its address (squatted, as far
    // as it can tell), the second never reached the mailbox; both go again, higher up.
    restore(&alice, backup, "a");
    run(alice.send(&a_id, "again one")).unwrap();
    run(alice.send(&a_id, "again two")).unwrap();
    let flushed = run(alice.flush()).unwrap();
    assert_eq!(flushed.conflicts, 1, "{flushed:?}");
    run(alice.poll(&a_id)).unwrap();
    run(alice.flush()).unwrap();
    let foreign = mailbox.foreign_409s.get();
    // Bob holds them: a number below them is missing, and nothing says it was abandoned.
    let held = run(bob.poll(&b_id)).unwrap();
    assert!(held.messages.is_empty(), "{:?}", texts(&held.messages));
    // Bob's acknowledgement (of "before" and the lost acknowledgement) goes out; Alice reads
    // it, and her floor moves past the abandoned number: she owes Bob the news.
    assert_eq!(flush_when_due(&bob), 1);
    run(alice.poll(&a_id)).unwrap();
    assert_eq!(
        flush_when_due(&alice),
        1,
        "an acknowledgement carries the new floor"
    );
    // Bob reads it and shows both, in order.
    let polled = run(bob.poll(&b_id)).unwrap();
    assert_eq!(texts(&polled.messages), ["again one", "again two"]);
    assert_eq!(mailbox.foreign_409s.get(), foreign);
}

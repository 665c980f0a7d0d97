//! The floor reaches the reader (`docs/PROTOCOL.md` §8, "Floor"): when a confirmation moves
//! the sender's floor past numbers the reader never got while the sender's data waits above
//! them, the sender owes the reader an acknowledgement-only blob carrying the new floor.
//! Without it a restored sender whose message went again higher up, with nothing more to say,
//! left the reader holding that message for `MAX_HOLD_MS`, 24 hours (`all` seed 7870).

#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use support::{flush_when_due, joined, restore, run, snapshot, texts};

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

/// A restored sender's message whose first fragment took a number the reader had from the
/// lost copy (the rollback shows it) goes again whole: that fragment, never deposited, leaves
/// the outbox with its message. Kept, it held the floor below the numbers its later fragments
/// left, and the reader held the message sent again behind them for good (`all` seed 906).
#[test]
fn a_fragment_under_a_number_the_lost_copy_used_does_not_pin_the_floor() {
    let (alice, a_id, bob, b_id, mailbox) = joined(906);
    let backup = snapshot(&bob);
    // Bob's device writes; Alice reads it; the blob expires; she acknowledges it.
    run(bob.send(&b_id, "lost one")).unwrap();
    run(bob.flush()).unwrap();
    assert_eq!(
        texts(&run(alice.poll(&a_id)).unwrap().messages),
        ["lost one"]
    );
    mailbox.expire_all();
    assert_eq!(flush_when_due(&alice), 1);
    // Bob's device goes back to the copy taken before and writes a message of three blobs
    // before it deposits anything; its poll then meets Alice's acknowledgement of the lost
    // copy's blob under the number of the message's first fragment.
    restore(&bob, backup, "b");
    let long = "x".repeat(2 * protocol::FRAGMENT_CAPACITY + 10);
    run(bob.send(&b_id, &long)).unwrap();
    run(bob.poll(&b_id)).unwrap();
    run(bob.flush()).unwrap();
    // Alice shows the message once it went again: nothing holds it.
    let polled = run(alice.poll(&a_id)).unwrap();
    assert_eq!(texts(&polled.messages), [long]);
}

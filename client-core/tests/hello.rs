//! The joiner keeps its hello on the mailbox until the invite can no longer be accepted, also
//! after the inviter confirmed it (`docs/PROTOCOL.md` §8, "The hello after acceptance"): a
//! copy of the inviter's device restored to before it accepted polls the hello address and
//! nothing else (`all` seeds 801, 1268, 2724: the hello had expired, the restored inviter
//! waited for it for ever and the joiner's messages stayed *sent*).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::rc::Rc;

use client_core::outbox::RETRANSMIT_AFTER_MS;
use client_core::{INVITE_LIFETIME_SECONDS, Status};
use support::{FAST, MailboxState, advance, client_on, restore, run, snapshot, status_of};

const SITE: &str = "https://hush.example/";
const MAILBOX: &str = "https://mailbox.example";

/// Alice invites (and a backup of her device is taken before anyone joined), Bob joins, his
/// hello is accepted and confirmed, and his first message is delivered. Returns the two
/// clients, their conversation ids, the backup, the mailbox and the hello (address, bytes).
#[allow(clippy::type_complexity)]
fn joined_with_backup_before_accepting() -> (
    client_core::Client<support::Memory>,
    String,
    client_core::Client<support::Memory>,
    String,
    std::collections::BTreeMap<String, Vec<u8>>,
    Rc<MailboxState>,
    ([u8; 32], Vec<u8>),
) {
    let mailbox = Rc::new(MailboxState::default());
    mailbox.online.set(true);
    let alice = client_on(40, None, mailbox.clone());
    let bob = client_on(41, None, mailbox.clone());
    run(alice.create_vault("a", FAST)).unwrap();
    run(bob.create_vault("b", FAST)).unwrap();
    let (a_id, link) = run(alice.create_invite(SITE, MAILBOX, "Bob")).unwrap();
    let backup = snapshot(&alice);
    let b_id = run(bob.join(&link, MAILBOX, "Alice")).unwrap();
    assert_eq!(run(bob.flush()).unwrap().delivered, 1);
    let hello_address = mailbox.stored.borrow()[0];
    let hello = mailbox.blobs.borrow()[&hello_address].clone();
    assert!(run(alice.poll(&a_id)).unwrap().joined);
    let seq = run(bob.send(&b_id, "hi")).unwrap();
    run(bob.flush()).unwrap();
    run(alice.poll(&a_id)).unwrap();
    let due = run(alice.next_flush_ms()).unwrap().unwrap();
    advance(&alice, due - alice.platform().now_ms.get());
    run(alice.flush()).unwrap();
    run(bob.poll(&b_id)).unwrap();
    assert_eq!(status_of(&bob, &b_id, seq), Status::Delivered);
    // The hello is confirmed: it has left Bob's outbox.
    assert!(!run(bob.conversation_summary(&b_id)).unwrap().connecting);
    (
        alice,
        a_id,
        bob,
        b_id,
        backup,
        mailbox,
        (hello_address, hello),
    )
}

#[test]
fn an_inviter_restored_to_before_it_accepted_finds_the_hello_again() {
    let (alice, a_id, bob, _, backup, mailbox, (address, hello)) =
        joined_with_backup_before_accepting();
    // Everything on the mailbox expires; then Alice's device goes back to the copy taken
    // before Bob joined: it waits for a hello, and polls the hello address alone.
    mailbox.expire_all();
    restore(&alice, backup, "a");
    assert!(!run(alice.conversation_summary(&a_id)).unwrap().joined);
    assert!(!run(alice.poll(&a_id)).unwrap().joined);
    // Bob has nothing unconfirmed; his next flush (the one his app schedules) checks the
    // hello and deposits it again, the very bytes at the very address.
    let at = run(bob.next_flush_ms())
        .unwrap()
        .expect("the hello's check is scheduled");
    assert!(at <= bob.platform().now_ms.get() + RETRANSMIT_AFTER_MS);
    advance(&bob, at - bob.platform().now_ms.get());
    let foreign_before = mailbox.foreign_409s.get();
    let flushed = run(bob.flush()).unwrap();
    assert_eq!(
        (flushed.hellos_kept, flushed.retransmitted),
        (1, 0),
        "{flushed:?}"
    );
    assert_eq!(mailbox.blobs.borrow().get(&address), Some(&hello));
    assert_eq!(mailbox.foreign_409s.get(), foreign_before);
    // The restored inviter accepts it: the join completes.
    assert!(run(alice.poll(&a_id)).unwrap().joined);
    assert!(run(alice.conversation_summary(&a_id)).unwrap().joined);
}

#[test]
fn the_hello_is_checked_at_a_slowing_pace_while_it_stays() {
    let (_, _, bob, _, _, mailbox, _) = joined_with_backup_before_accepting();
    let puts = mailbox.puts.get();
    let mut intervals = Vec::new();
    let mut last = bob.platform().now_ms.get();
    for _ in 0..6 {
        let at = run(bob.next_flush_ms()).unwrap().unwrap();
        advance(&bob, at.saturating_sub(bob.platform().now_ms.get()));
        let fetches = mailbox.fetches.get();
        let flushed = run(bob.flush()).unwrap();
        assert_eq!(flushed.hellos_kept, 0);
        assert_eq!(
            mailbox.fetches.get(),
            fetches + 1,
            "one padded fetch per check"
        );
        intervals.push(at - last);
        last = at;
    }
    // Found there each time: nothing deposited, and the checks thin out to hourly.
    assert_eq!(mailbox.puts.get(), puts);
    assert!(intervals.windows(2).all(|w| w[0] <= w[1]), "{intervals:?}");
    assert_eq!(*intervals.last().unwrap(), 60 * 60 * 1_000);
}

#[test]
fn the_hello_is_no_longer_kept_once_no_inviter_accepts_it() {
    let (_, _, bob, b_id, _, mailbox, (address, _)) = joined_with_backup_before_accepting();
    // Past the invite's expiry plus the joiner's clock tolerance, no inviter accepts it.
    advance(&bob, (INVITE_LIFETIME_SECONDS + 48 * 60 * 60) * 1_000);
    mailbox.expire_all();
    run(bob.flush()).unwrap();
    assert!(!mailbox.blobs.borrow().contains_key(&address));
    assert_eq!(run(bob.next_flush_ms()).unwrap(), None);
    assert!(run(bob.conversation_summary(&b_id)).unwrap().joined);
}

#[test]
fn junk_written_after_the_hello_expired_ends_its_keeping_not_the_conversation() {
    let (alice, a_id, bob, b_id, _, mailbox, (address, hello)) =
        joined_with_backup_before_accepting();
    mailbox.expire_all();
    // An invite photographer writes junk at the hello address once it is free.
    mailbox
        .blobs
        .borrow_mut()
        .insert(address, vec![0xAA; hello.len()]);
    let at = run(bob.next_flush_ms()).unwrap().unwrap();
    advance(&bob, at - bob.platform().now_ms.get());
    // Found there (the check cannot tell junk from ours by fetching): nothing deposited.
    assert_eq!(run(bob.flush()).unwrap().hellos_kept, 0);
    // Once the junk is gone and someone else's bytes stand there when Bob deposits, the
    // keeping ends; the conversation goes on.
    mailbox.blobs.borrow_mut().remove(&address);
    mailbox.squat_next_put.set(true);
    let at = run(bob.next_flush_ms()).unwrap().unwrap();
    advance(&bob, at - bob.platform().now_ms.get());
    let flushed = run(bob.flush()).unwrap();
    assert_eq!(flushed.hellos_kept, 0);
    let summary = run(bob.conversation_summary(&b_id)).unwrap();
    assert!(summary.joined && !summary.invite_taken, "{summary:?}");
    assert_eq!(run(bob.next_flush_ms()).unwrap(), None);
    // Messages still flow.
    let seq = run(bob.send(&b_id, "still here")).unwrap();
    run(bob.flush()).unwrap();
    let polled = run(alice.poll(&a_id)).unwrap();
    assert_eq!(polled.messages.len(), 1);
    assert_eq!(status_of(&bob, &b_id, seq), Status::Sent);
}

//! A long history is read one page at a time, from its newest end.

#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use support::{FAST, client, run};

#[test]
fn pages_walk_back_from_the_newest_entry_without_gaps_or_overlaps() {
    // A joined pair is not needed: the joiner's own messages make a history offline.
    let alice = client(20, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let (_, link) =
        run(alice.create_invite("https://s.example/", "https://m.example", "B")).unwrap();
    let bob = client(21, None);
    run(bob.create_vault("pw", FAST)).unwrap();
    let id = run(bob.join(&link, "https://m.example", "A")).unwrap();
    for i in 0..23 {
        run(bob.send(&id, &format!("m{i}"))).unwrap();
    }
    let whole = run(bob.history(&id)).unwrap();
    assert_eq!(whole.len(), 23);
    let mut before = None;
    let mut walked = Vec::new();
    loop {
        let page = run(bob.history_page(&id, before, 10)).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        assert!(page.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");
        before = Some(page[0].seq);
        walked.splice(0..0, page);
    }
    assert_eq!(walked, whole);
    assert_eq!(run(bob.history_page(&id, None, 3)).unwrap(), whole[20..]);
}

/// "Delete on this device": the entry leaves this device's history (whole and paged) and
/// nothing is sent; an entry still on its way to the mailbox is refused, not half deleted.
#[test]
fn a_message_deleted_on_this_device_leaves_its_history_only() {
    use client_core::ClientError;
    let mailbox = std::rc::Rc::new(support::MailboxState::default());
    mailbox.online.set(true);
    let alice = support::client_on(22, None, mailbox.clone());
    let bob = support::client_on(23, None, mailbox.clone());
    run(alice.create_vault("a", FAST)).unwrap();
    run(bob.create_vault("b", FAST)).unwrap();
    let (a_id, link) =
        run(alice.create_invite("https://s.example/", "https://m.example", "B")).unwrap();
    let b_id = run(bob.join(&link, "https://m.example", "A")).unwrap();
    run(bob.flush()).unwrap();
    run(alice.poll(&a_id)).unwrap();
    let kept = run(bob.send(&b_id, "keep")).unwrap();
    let gone = run(bob.send(&b_id, "delete me")).unwrap();
    // Not on the mailbox yet: refused.
    assert!(matches!(
        run(bob.delete_message(&b_id, gone)),
        Err(ClientError::StillSending)
    ));
    run(bob.flush()).unwrap();
    let puts = mailbox.puts.get();
    run(bob.delete_message(&b_id, gone)).unwrap();
    assert_eq!(mailbox.puts.get(), puts, "nothing sent");
    let texts = |entries: Vec<client_core::HistoryEntry>| -> Vec<String> {
        entries.into_iter().map(|e| e.text).collect()
    };
    assert_eq!(texts(run(bob.history(&b_id)).unwrap()), ["keep"]);
    assert_eq!(
        texts(run(bob.history_page(&b_id, None, 10)).unwrap()),
        ["keep"]
    );
    assert!(matches!(
        run(bob.delete_message(&b_id, gone)),
        Err(ClientError::NoSuchMessage)
    ));
    // The other person still has both, and a received message can be deleted too.
    let got = run(alice.poll(&a_id)).unwrap();
    assert_eq!(got.messages.len(), 2);
    let theirs = run(alice.history(&a_id)).unwrap()[0].seq;
    run(alice.delete_message(&a_id, theirs)).unwrap();
    assert_eq!(texts(run(alice.history(&a_id)).unwrap()), ["delete me"]);
    let _ = kept;
}

/// The safety code's verified mark: set, kept, removed; refused before there is a code.
#[test]
fn the_safety_code_is_marked_verified_and_unmarked() {
    use client_core::ClientError;
    let alice = client(24, None);
    run(alice.create_vault("pw", FAST)).unwrap();
    let (waiting, link) =
        run(alice.create_invite("https://s.example/", "https://m.example", "B")).unwrap();
    assert!(matches!(
        run(alice.set_verified(&waiting, true)),
        Err(ClientError::NotJoined)
    ));
    let bob = client(25, None);
    run(bob.create_vault("pw", FAST)).unwrap();
    let id = run(bob.join(&link, "https://m.example", "A")).unwrap();
    assert_eq!(
        run(bob.conversation_summary(&id)).unwrap().verified_ms,
        None
    );
    run(bob.set_verified(&id, true)).unwrap();
    let first = run(bob.conversation_summary(&id)).unwrap().verified_ms;
    assert!(first.is_some());
    // Marking again keeps the first time; the list shows it too.
    run(bob.set_verified(&id, true)).unwrap();
    assert_eq!(run(bob.conversations()).unwrap()[0].verified_ms, first);
    run(bob.set_verified(&id, false)).unwrap();
    assert_eq!(
        run(bob.conversation_summary(&id)).unwrap().verified_ms,
        None
    );
}

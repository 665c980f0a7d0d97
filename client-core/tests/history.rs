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

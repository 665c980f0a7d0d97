//! The client in a real browser (headless Chromium, run by `cargo xtask test`), against a real
//! local mailbox whose URL `cargo xtask test` passes in `HUSH_TEST_MAILBOX` at build time.
//! A "reload" is a fresh `Client` over the same IndexedDB database, as after a page reload.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(target_arch = "wasm32")]

mod support;

use std::rc::Rc;

use client_core::Platform;
use support::upgrade_from_another_tab;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wasm_client::RecordStore;
use wasm_client::client::{Client, ClientError};
use wasm_client::records::Status;
use wasm_client::vault::{KdfParams, VaultError};

wasm_bindgen_test_configure!(run_in_browser);

const FAST: KdfParams = KdfParams {
    m_kib: 8,
    t: 1,
    p: 1,
};
const SITE: &str = "http://site.invalid/";

fn mailbox() -> &'static str {
    match option_env!("HUSH_TEST_MAILBOX") {
        Some(url) => url,
        None => panic!("build with HUSH_TEST_MAILBOX (cargo xtask test does)"),
    }
}

/// A database name no other test (or earlier run) uses.
fn fresh_db(tag: &str) -> String {
    format!("test-{tag}-{}", js_sys::Math::random().to_bits())
}

async fn new_client(db: &str, passphrase: &str) -> Rc<Client> {
    let client = Client::open(db).await.unwrap();
    client.create_vault(passphrase, FAST).await.unwrap();
    client
}

async fn reopen(db: &str, passphrase: &str) -> Rc<Client> {
    let client = Client::open(db).await.unwrap();
    client.unlock(passphrase).await.unwrap();
    client
}

/// Inviter and joiner, joined through the mailbox. Returns (inviter, its conv id, joiner, its conv id).
async fn joined_pair(tag: &str) -> (Rc<Client>, String, Rc<Client>, String, String, String) {
    let (db_a, db_b) = (fresh_db(&format!("{tag}-a")), fresh_db(&format!("{tag}-b")));
    let alice = new_client(&db_a, "alice pw").await;
    let bob = new_client(&db_b, "bob pw").await;
    let (a_id, link) = alice.create_invite(SITE, mailbox(), "Bob").await.unwrap();
    let b_id = bob.join(&link, mailbox(), "Alice").await.unwrap();
    let flushed = bob.flush().await.unwrap();
    assert_eq!(
        (flushed.delivered, flushed.pending),
        (1, 0),
        "hello delivered"
    );
    let polled = alice.poll(&a_id).await.unwrap();
    assert!(polled.joined, "inviter sees the join");
    let a = alice.conversation_summary(&a_id).await.unwrap();
    let b = bob.conversation_summary(&b_id).await.unwrap();
    assert!(a.safety_code.is_some());
    assert_eq!(
        a.safety_code, b.safety_code,
        "both sides show the same safety code"
    );
    (alice, a_id, bob, b_id, db_a, db_b)
}

/// Flushes as the app does: a conversation the flush names in `poll_now` (messages held back
/// while 8 data blobs waited for the mailbox, client-core `MAX_SEALED_AHEAD`) is polled at
/// once, which seals them, and flushed again.
async fn flush_all(client: &Rc<Client>, id: &str) {
    loop {
        let out = client.flush().await.unwrap();
        if !out.poll_now.iter().any(|c| c == id) {
            return;
        }
        client.poll(id).await.unwrap();
    }
}

async fn poll_until(client: &Rc<Client>, id: &str, want: usize) -> Vec<String> {
    let mut texts = Vec::new();
    for _ in 0..50 {
        let out = client.poll(id).await.unwrap();
        texts.extend(out.messages.into_iter().map(|m| m.text));
        if texts.len() >= want {
            break;
        }
    }
    texts
}

#[wasm_bindgen_test]
async fn vault_survives_reload_and_reads_back() {
    let db = fresh_db("reload");
    let client = new_client(&db, "pass phrase").await;
    let (id, link) = client.create_invite(SITE, mailbox(), "Sam").await.unwrap();
    client.rename(&id, "Samantha").await.unwrap();
    drop(client);

    let reloaded = Client::open(&db).await.unwrap();
    assert!(reloaded.has_vault().await.unwrap());
    assert!(matches!(
        reloaded.conversations().await,
        Err(ClientError::Locked)
    ));
    reloaded.unlock("pass phrase").await.unwrap();
    let list = reloaded.conversations().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].name, "Samantha");
    assert_eq!(list[0].invite_link.as_deref(), Some(link.as_str()));
    reloaded.lock();
    assert!(matches!(
        reloaded.conversations().await,
        Err(ClientError::Locked)
    ));
}

#[wasm_bindgen_test]
async fn wrong_passphrase_is_rejected_and_changes_nothing() {
    let db = fresh_db("wrongpw");
    let client = new_client(&db, "right").await;
    client.create_invite(SITE, mailbox(), "x").await.unwrap();
    let store = RecordStore::open_native(&db).await.unwrap();
    let before = store.list_prefix("").await.unwrap();

    let other = Client::open(&db).await.unwrap();
    assert!(matches!(
        other.unlock("wrong").await,
        Err(ClientError::Vault(VaultError::WrongPassphrase))
    ));
    assert!(!other.is_unlocked());
    assert_eq!(
        store.list_prefix("").await.unwrap(),
        before,
        "nothing touched"
    );
    other.unlock("right").await.unwrap();
}

#[wasm_bindgen_test]
async fn tampered_record_is_rejected_as_a_whole() {
    let db = fresh_db("tamper");
    let client = new_client(&db, "pw").await;
    let (id, _) = client.create_invite(SITE, mailbox(), "x").await.unwrap();
    let store = RecordStore::open_native(&db).await.unwrap();
    let name = format!("conv/{id}");
    let mut sealed = store.get_native(&name).await.unwrap().unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x01;
    store.put_native(&name, &sealed).await.unwrap();
    assert!(matches!(
        client.conversations().await,
        Err(ClientError::Vault(VaultError::Tampered))
    ));
    // A record copied under another name is rejected too (the name is authenticated).
    let (id2, _) = client.create_invite(SITE, mailbox(), "y").await.unwrap();
    let good = store
        .get_native(&format!("conv/{id2}"))
        .await
        .unwrap()
        .unwrap();
    store.put_native(&name, &good).await.unwrap();
    assert!(matches!(
        client.conversation_summary(&id).await,
        Err(ClientError::Vault(VaultError::Tampered))
    ));
}

#[wasm_bindgen_test]
async fn interrupted_send_completes_after_reload() {
    let (_alice, a_id, bob, b_id, _db_a, db_b) = joined_pair("interrupted").await;
    // Bob commits a message but the tab "dies" before any PUT.
    let seq = bob.send(&b_id, "sent just before the crash").await.unwrap();
    let history = bob.history(&b_id).await.unwrap();
    assert_eq!(
        history.last().map(|m| (m.seq, m.status)),
        Some((seq, Status::Sending))
    );
    drop(bob);

    let bob = reopen(&db_b, "bob pw").await;
    let flushed = bob.flush().await.unwrap();
    assert_eq!((flushed.delivered, flushed.pending), (1, 0));
    assert_eq!(
        bob.history(&b_id).await.unwrap().last().map(|m| m.status),
        Some(Status::Sent)
    );
    // A second flush has nothing left to send: the blob is not re-encrypted or re-sent.
    assert_eq!(bob.flush().await.unwrap().delivered, 0);
    assert_eq!(
        poll_until(&_alice, &a_id, 1).await,
        ["sent just before the crash"]
    );
}

#[wasm_bindgen_test]
async fn two_instances_racing_never_both_advance_the_ratchet() {
    let (alice, a_id, bob, b_id, _db_a, db_b) = joined_pair("race").await;
    // A second "tab" over Bob's database.
    let bob2 = reopen(&db_b, "bob pw").await;
    let mut sends = Vec::new();
    for i in 0..8 {
        let (client, tag) = if i % 2 == 0 {
            (bob.clone(), "tab1")
        } else {
            (bob2.clone(), "tab2")
        };
        let id = b_id.clone();
        sends.push(async move {
            client
                .send(&id, &format!("{tag} message {i}"))
                .await
                .unwrap()
        });
    }
    let mut seqs = futures_join_all(sends).await;
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 8, "every send got its own history slot");
    let flushed = bob.flush().await.unwrap();
    assert_eq!(
        (flushed.delivered, flushed.pending),
        (8, 0),
        "no two blobs shared an address"
    );
    let mut got = poll_until(&alice, &a_id, 8).await;
    got.sort();
    let mut want: Vec<String> = (0..8)
        .map(|i| format!("{} message {i}", if i % 2 == 0 { "tab1" } else { "tab2" }))
        .collect();
    want.sort();
    assert_eq!(got, want, "each message arrives exactly once");
    // And the ratchet still works both ways after the race.
    alice.send(&a_id, "still in sync").await.unwrap();
    alice.flush().await.unwrap();
    assert_eq!(poll_until(&bob2, &b_id, 1).await, ["still in sync"]);
}

/// Polls every future concurrently on the browser's event loop; results in input order.
async fn futures_join_all<T: 'static, F: std::future::Future<Output = T> + 'static>(
    futures: Vec<F>,
) -> Vec<T> {
    use std::cell::RefCell;
    let results: Rc<RefCell<Vec<Option<T>>>> =
        Rc::new(RefCell::new(futures.iter().map(|_| None).collect()));
    let mut promises = Vec::new();
    for (i, fut) in futures.into_iter().enumerate() {
        let results = results.clone();
        promises.push(wasm_bindgen_futures::future_to_promise(async move {
            let value = fut.await;
            results.borrow_mut()[i] = Some(value);
            Ok(wasm_bindgen::JsValue::UNDEFINED)
        }));
    }
    let all = js_sys::Promise::all(&promises.into_iter().collect::<js_sys::Array>());
    wasm_bindgen_futures::JsFuture::from(all).await.unwrap();
    results.borrow_mut().drain(..).map(|r| r.unwrap()).collect()
}

#[wasm_bindgen_test]
async fn a_burst_longer_than_the_window_then_a_ratchet_step_arrives_in_order() {
    let (alice, a_id, bob, b_id, _db_a, _db_b) = joined_pair("burst").await;
    // 20 messages on Bob's current chain: more than the 16-address receive window.
    for i in 0..20 {
        bob.send(&b_id, &format!("b{i}")).await.unwrap();
    }
    flush_all(&bob, &b_id).await;
    // Alice answers; Bob reads it, so his next messages start a new chain (a DH step).
    alice.send(&a_id, "ping").await.unwrap();
    alice.flush().await.unwrap();
    assert_eq!(poll_until(&bob, &b_id, 1).await, ["ping"]);
    for i in 20..25 {
        bob.send(&b_id, &format!("b{i}")).await.unwrap();
    }
    bob.flush().await.unwrap();
    // Alice's poll sees the first window of the old chain and the new chain at once; the
    // old chain's last four are outside her window until it slides.
    let want: Vec<String> = (0..25).map(|i| format!("b{i}")).collect();
    assert_eq!(poll_until(&alice, &a_id, 25).await, want);
    let history: Vec<String> = alice
        .history(&a_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| !m.outgoing)
        .map(|m| m.text)
        .collect();
    assert_eq!(history, want);
}

#[wasm_bindgen_test]
async fn a_raced_join_is_detected_by_the_late_joiner_and_the_codes_differ() {
    let alice = new_client(&fresh_db("race-a"), "a").await;
    let eve = new_client(&fresh_db("race-e"), "e").await;
    let bob = new_client(&fresh_db("race-b"), "b").await;
    let (a_id, link) = alice.create_invite(SITE, mailbox(), "Bob").await.unwrap();
    // Eve photographed the invite and joins first.
    let e_id = eve.join(&link, mailbox(), "Alice").await.unwrap();
    assert_eq!(eve.flush().await.unwrap().delivered, 1);
    // Bob joins with the real invite: his hello finds Eve's blob at its address.
    let b_id = bob.join(&link, mailbox(), "Alice").await.unwrap();
    let flushed = bob.flush().await.unwrap();
    assert_eq!(
        (flushed.delivered, flushed.conflicts, flushed.pending),
        (0, 1, 0)
    );
    let b = bob.conversation_summary(&b_id).await.unwrap();
    assert!(
        b.invite_taken && !b.joined && b.safety_code.is_none(),
        "Bob is told"
    );
    assert!(matches!(
        bob.send(&b_id, "hello?").await,
        Err(ClientError::NotJoined)
    ));
    // Alice is connected to Eve, and the codes she compares with Bob differ.
    assert!(alice.poll(&a_id).await.unwrap().joined);
    let a_code = alice.conversation_summary(&a_id).await.unwrap().safety_code;
    assert_eq!(
        a_code,
        eve.conversation_summary(&e_id).await.unwrap().safety_code
    );
    assert_ne!(a_code, b.safety_code);
}

#[wasm_bindgen_test]
async fn a_retried_blob_that_is_already_stored_counts_as_delivered() {
    let (_alice, _a_id, bob, b_id, _db_a, db_b) = joined_pair("retry").await;
    bob.send(&b_id, "once").await.unwrap();
    // Deliver the blob behind the client's back, as a first attempt whose answer was lost.
    let store = RecordStore::open_native(&db_b).await.unwrap();
    // Protocol v2 keeps every blob until the peer confirms it (the hello too): the message's
    // blob is the newest.
    let pending = store.list_prefix("out/").await.unwrap();
    let message = pending.last().cloned().expect("the message's blob");
    drop(store);
    let first = bob.flush().await.unwrap();
    assert_eq!((first.delivered, first.conflicts), (1, 0));
    // Re-queue the very same sealed record: the retry meets 409 with identical bytes.
    let store = RecordStore::open_native(&db_b).await.unwrap();
    store.put_native(&message.0, &message.1).await.unwrap();
    let retry = bob.flush().await.unwrap();
    assert_eq!((retry.delivered, retry.conflicts), (1, 0));
    let history = bob.history(&b_id).await.unwrap();
    assert_eq!(history.last().map(|m| m.status), Some(Status::Sent));
}

#[wasm_bindgen_test]
async fn two_tabs_creating_a_vault_at_once_exactly_one_wins() {
    let db = fresh_db("vault-race");
    let tab1 = Client::open(&db).await.unwrap();
    let tab2 = Client::open(&db).await.unwrap();
    let attempts = [
        (tab1.clone(), "first passphrase"),
        (tab2.clone(), "second passphrase"),
    ]
    .map(|(client, passphrase)| async move { client.create_vault(passphrase, FAST).await });
    let results = futures_join_all(attempts.into_iter().collect()).await;
    let winners: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one tab creates the vault");
    let (winner, loser) = if winners[0] == 0 {
        ("first passphrase", 1)
    } else {
        ("second passphrase", 0)
    };
    assert!(
        matches!(results[loser], Err(ClientError::VaultExists)),
        "the other is told a vault exists"
    );
    let reloaded = Client::open(&db).await.unwrap();
    reloaded.unlock(winner).await.unwrap();
    let other = if loser == 0 {
        "first passphrase"
    } else {
        "second passphrase"
    };
    assert!(matches!(
        Client::open(&db).await.unwrap().unlock(other).await,
        Err(ClientError::Vault(VaultError::WrongPassphrase))
    ));
}

#[wasm_bindgen_test]
async fn commits_that_precede_a_network_effect_are_strictly_durable() {
    let db = fresh_db("strict");
    let client = new_client(&db, "pw").await;
    let store = client.platform().store();
    assert_eq!(store.last_write_durability().as_deref(), Some("strict"));
    let (id, _) = client.create_invite(SITE, mailbox(), "x").await.unwrap();
    assert_eq!(
        store.last_write_durability().as_deref(),
        Some("strict"),
        "an invite is committed strictly before it is shown"
    );
    client.rename(&id, "y").await.unwrap();
    assert_eq!(
        store.last_write_durability().as_deref(),
        Some("relaxed"),
        "local bookkeeping may be relaxed"
    );
    let (_alice, _a_id, bob, b_id, _db_a, _db_b) = joined_pair("strict-send").await;
    bob.send(&b_id, "keys about to be used").await.unwrap();
    assert_eq!(
        bob.platform().store().last_write_durability().as_deref(),
        Some("strict")
    );
}

#[wasm_bindgen_test]
async fn the_client_keeps_working_after_the_browser_closes_its_database() {
    let (alice, a_id, bob, b_id, db_a, _db_b) = joined_pair("reopen").await;
    // Another tab upgrades Alice's database: her connection must step aside, then reopen.
    upgrade_from_another_tab(&db_a, 2).await.unwrap();
    alice.send(&a_id, "after a versionchange").await.unwrap();
    assert_eq!(alice.flush().await.unwrap().delivered, 1);
    // The browser closes Bob's connection without a word (as iOS Safari does).
    bob.platform().store().close();
    assert_eq!(poll_until(&bob, &b_id, 1).await, ["after a versionchange"]);
    bob.platform().store().close();
    bob.send(&b_id, "after a close").await.unwrap();
    bob.flush().await.unwrap();
    assert_eq!(poll_until(&alice, &a_id, 1).await, ["after a close"]);
}

#[wasm_bindgen_test]
async fn a_passphrase_unlocks_whichever_unicode_form_the_keyboard_typed() {
    // "café crème" composed (U+00E9, U+00E8) and decomposed (e + U+0301, e + U+0300): the
    // browser's NFC makes them one passphrase.
    let db = fresh_db("nfc");
    let client = new_client(&db, "caf\u{e9} cr\u{e8}me").await;
    client.lock();
    let again = reopen(&db, "cafe\u{301} cre\u{300}me").await;
    assert!(again.is_unlocked());
}

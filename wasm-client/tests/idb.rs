//! IndexedDB round trips in a real browser (`cargo xtask test` runs these in headless Chromium).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
#![cfg(target_arch = "wasm32")]

mod support;

use client_core::StorageError;
use support::upgrade_from_another_tab;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wasm_client::RecordStore;
use wasm_client::idb::{Durability, Write};

wasm_bindgen_test_configure!(run_in_browser);

/// A database name no other test (or earlier run) uses.
fn fresh_db(tag: &str) -> String {
    format!("idb-test-{tag}-{}", js_sys::Math::random().to_bits())
}

#[wasm_bindgen_test]
async fn record_survives_closing_and_reopening_the_database() {
    let store = RecordStore::open_native("idb-test-reopen").await.unwrap();
    store
        .put_native("greeting", b"hello\x00\xff")
        .await
        .unwrap();
    store.close();

    let reopened = RecordStore::open_native("idb-test-reopen").await.unwrap();
    assert_eq!(
        reopened.get_native("greeting").await.unwrap().as_deref(),
        Some(&b"hello\x00\xff"[..])
    );
    reopened.delete_native("greeting").await.unwrap();
    assert_eq!(reopened.get_native("greeting").await.unwrap(), None);
}

#[wasm_bindgen_test]
async fn missing_key_is_none_not_an_error() {
    let store = RecordStore::open_native("idb-test-missing").await.unwrap();
    assert_eq!(store.get_native("never-written").await.unwrap(), None);
}

#[wasm_bindgen_test]
async fn commit_is_atomic_and_prefix_listing_is_ordered() {
    let store = RecordStore::open_native("idb-test-commit").await.unwrap();
    store
        .commit(
            vec![
                Write::Put("conv/b".into(), vec![2]),
                Write::Put("conv/a".into(), vec![1]),
                Write::Put("other".into(), vec![9]),
            ],
            Durability::Relaxed,
        )
        .await
        .unwrap();
    let listed = store.list_prefix("conv/").await.unwrap();
    assert_eq!(
        listed,
        vec![
            ("conv/a".to_owned(), vec![1]),
            ("conv/b".to_owned(), vec![2])
        ]
    );

    store
        .commit(
            vec![
                Write::Delete("conv/a".into()),
                Write::Put("conv/c".into(), vec![3]),
            ],
            Durability::Relaxed,
        )
        .await
        .unwrap();
    let keys: Vec<String> = store
        .list_prefix("conv/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["conv/b", "conv/c"]);
}

#[wasm_bindgen_test]
async fn an_insert_over_an_existing_name_fails_and_lands_nothing() {
    let store = RecordStore::open_native(&fresh_db("insert")).await.unwrap();
    store
        .commit(
            vec![Write::Insert("vault".into(), vec![1])],
            Durability::Strict,
        )
        .await
        .unwrap();
    let second = store
        .commit(
            vec![
                Write::Put("conv/x".into(), vec![7]),
                Write::Insert("vault".into(), vec![2]),
            ],
            Durability::Strict,
        )
        .await;
    assert_eq!(second, Err(StorageError::Exists));
    assert_eq!(store.get_native("vault").await.unwrap(), Some(vec![1]));
    assert_eq!(
        store.get_native("conv/x").await.unwrap(),
        None,
        "the whole transaction aborted"
    );
}

#[wasm_bindgen_test]
async fn commits_ask_the_browser_for_the_durability_given() {
    let store = RecordStore::open_native(&fresh_db("durability"))
        .await
        .unwrap();
    store
        .commit(vec![Write::Put("a".into(), vec![1])], Durability::Strict)
        .await
        .unwrap();
    assert_eq!(store.last_write_durability().as_deref(), Some("strict"));
    store
        .commit(vec![Write::Put("a".into(), vec![2])], Durability::Relaxed)
        .await
        .unwrap();
    assert_eq!(store.last_write_durability().as_deref(), Some("relaxed"));
}

#[wasm_bindgen_test]
async fn a_connection_closed_under_the_store_is_reopened() {
    let store = RecordStore::open_native(&fresh_db("closed")).await.unwrap();
    store.put_native("k", b"v").await.unwrap();
    // As the browser may do to a background tab: the next operation finds it closed.
    store.close();
    assert_eq!(
        store.get_native("k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    store.close();
    store.put_native("k", b"w").await.unwrap();
    assert_eq!(
        store.get_native("k").await.unwrap().as_deref(),
        Some(&b"w"[..])
    );
}

#[wasm_bindgen_test]
async fn another_tab_upgrading_the_database_is_not_blocked_and_the_store_reopens() {
    let name = fresh_db("versionchange");
    let store = RecordStore::open_native(&name).await.unwrap();
    store.put_native("k", b"v").await.unwrap();
    upgrade_from_another_tab(&name, 2).await.unwrap();
    assert_eq!(
        store.get_native("k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    store.put_native("k2", b"w").await.unwrap();
    assert_eq!(store.list_prefix("k").await.unwrap().len(), 2);
}

#[wasm_bindgen_test]
async fn the_last_records_before_a_name_are_read_a_page_at_a_time() {
    let store = RecordStore::open_native(&fresh_db("list-last"))
        .await
        .unwrap();
    let name = |i: usize| format!("msg/c/{i:04}");
    let mut writes: Vec<Write> = (0..25)
        .map(|i| Write::Put(name(i), vec![i as u8]))
        .collect();
    // Neighbours on both sides of the prefix's range stay out of every page.
    writes.push(Write::Put("msg/b/9999".into(), vec![0xb]));
    writes.push(Write::Put("msg/d/0000".into(), vec![0xd]));
    writes.push(Write::Put("msg/c".into(), vec![0xc]));
    store.commit(writes, Durability::Relaxed).await.unwrap();
    let names =
        |page: &[(String, Vec<u8>)]| page.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();

    let newest = store.list_last_native("msg/c/", None, 10).await.unwrap();
    assert_eq!(names(&newest), (15..25).map(name).collect::<Vec<_>>());
    assert_eq!(newest[0].1, vec![15]);

    // Walking back from the newest page visits every record once, in order.
    let mut before: Option<String> = None;
    let mut walked = Vec::new();
    loop {
        let page = store
            .list_last_native("msg/c/", before.as_deref(), 10)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = Some(page[0].0.clone());
        walked.splice(0..0, names(&page));
    }
    assert_eq!(walked, (0..25).map(name).collect::<Vec<_>>());

    // A `before` between two names, before the first, or past the range; a zero limit.
    let page = store
        .list_last_native("msg/c/", Some("msg/c/0003x"), 10)
        .await
        .unwrap();
    assert_eq!(names(&page), (0..4).map(name).collect::<Vec<_>>());
    assert!(
        store
            .list_last_native("msg/c/", Some("msg/c/"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_last_native("msg/c/", Some("a"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let page = store
        .list_last_native("msg/c/", Some("zzz"), 2)
        .await
        .unwrap();
    assert_eq!(names(&page), vec![name(23), name(24)]);
    assert!(
        store
            .list_last_native("msg/c/", None, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_last_native("none/", None, 5)
            .await
            .unwrap()
            .is_empty()
    );

    // The store's trait method is the cursor, and it reopens a connection closed under it.
    store.close();
    let page = client_core::RecordStore::list_last(&store, "msg/c/", Some(&name(5)), 3)
        .await
        .unwrap();
    assert_eq!(names(&page), vec![name(2), name(3), name(4)]);
}

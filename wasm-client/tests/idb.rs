//! IndexedDB round trips in a real browser (`cargo xtask test` runs these in headless Chromium).

#![allow(missing_docs, clippy::unwrap_used)]
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wasm_client::RecordStore;

wasm_bindgen_test_configure!(run_in_browser);

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
    use wasm_client::idb::Write;
    let store = RecordStore::open_native("idb-test-commit").await.unwrap();
    store
        .commit(vec![
            Write::Put("conv/b".into(), vec![2]),
            Write::Put("conv/a".into(), vec![1]),
            Write::Put("other".into(), vec![9]),
        ])
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
        .commit(vec![
            Write::Delete("conv/a".into()),
            Write::Put("conv/c".into(), vec![3]),
        ])
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

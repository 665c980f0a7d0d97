//! IndexedDB round trips in a real browser (`cargo xtask test` runs these in headless Chromium).

#![allow(missing_docs)]
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

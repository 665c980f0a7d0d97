//! Web Locks guards in a real browser (`cargo xtask test` runs these in headless Chromium).

#![allow(missing_docs, clippy::unwrap_used)]
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use wasm_bindgen_futures::{JsFuture, spawn_local};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use wasm_client::locks::lock;

wasm_bindgen_test_configure!(run_in_browser);

fn fresh_name(tag: &str) -> String {
    format!("lock-test-{tag}-{}", js_sys::Math::random().to_bits())
}

/// Lets the browser run its tasks for `ms` milliseconds.
async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    JsFuture::from(promise).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_lock_is_exclusive_until_its_guard_is_dropped() {
    let name = fresh_name("exclusive");
    let first = lock(&name).await.unwrap();
    let second_held = Rc::new(Cell::new(false));
    {
        let (name, held) = (name.clone(), second_held.clone());
        spawn_local(async move {
            let _guard = lock(&name).await.unwrap();
            held.set(true);
        });
    }
    sleep(50).await;
    assert!(
        !second_held.get(),
        "the second waits while the first is held"
    );
    drop(first);
    sleep(50).await;
    assert!(second_held.get(), "dropping the guard released the lock");
}

#[wasm_bindgen_test]
async fn dropping_a_waiting_request_withdraws_it() {
    let name = fresh_name("withdraw");
    let first = lock(&name).await.unwrap();
    {
        // Start waiting, then give up (as a future dropped half-way does).
        let mut waiting = pin!(lock(&name));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(waiting.as_mut().poll(&mut cx), Poll::Pending));
    }
    drop(first);
    // Had the dropped request been granted and kept, this would wait forever.
    let again = lock(&name).await.unwrap();
    drop(again);
    let _last = lock(&name).await.unwrap();
}

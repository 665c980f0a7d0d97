//! One writer per conversation across tabs, through the Web Locks API.
//!
//! Every operation that advances a ratchet (sending, receiving) runs inside an exclusive
//! `navigator.locks` lock named after the conversation, and re-reads the session from
//! IndexedDB inside it. Two tabs therefore never advance the same ratchet at once, and each
//! always starts from the other's last committed state; both tabs keep working.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks.request(name, callback)` (web-sys gates LockManager behind an unstable
    /// cfg; the API itself is stable in every current browser).
    #[wasm_bindgen(js_namespace = ["navigator", "locks"], js_name = request, catch)]
    fn lock_request(
        name: &str,
        callback: &Closure<dyn FnMut(JsValue) -> Promise>,
    ) -> Result<Promise, JsValue>;
}

/// Runs `work` while holding the exclusive Web Lock `name`, and returns its output.
///
/// The lock is released when `work` finishes (or fails), also if the tab is closed meanwhile.
pub async fn with_lock<F, T>(name: &str, work: F) -> Result<T, JsValue>
where
    F: Future<Output = T> + 'static,
    T: 'static,
{
    let slot: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
    let mut work = Some(work);
    let out = slot.clone();
    let callback = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |_lock: JsValue| {
        let out = out.clone();
        match work.take() {
            Some(work) => future_to_promise(async move {
                let value = work.await;
                *out.borrow_mut() = Some(value);
                Ok(JsValue::UNDEFINED)
            }),
            None => Promise::resolve(&JsValue::UNDEFINED),
        }
    });
    let held = lock_request(name, &callback)?;
    JsFuture::from(held).await?;
    drop(callback);
    slot.borrow_mut()
        .take()
        .ok_or_else(|| JsValue::from_str("lock callback did not run"))
}

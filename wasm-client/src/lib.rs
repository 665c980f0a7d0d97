//! Hush in the browser: [`client_core`] over IndexedDB, `fetch` and Web Locks, with its
//! JavaScript API.
//!
//! This crate is an adapter and holds no client logic: the vault, conversations, the outbox,
//! the receive/drain state machine, decoys and poll scheduling live in `client-core`. Here are
//! only the browser's implementations of [`client_core::Platform`] ([`platform`]: an IndexedDB
//! record store in [`idb`], the mailbox over `fetch` in [`net`], Web Locks in [`locks`]) and
//! the JS API ([`api`]: camelCase names, typed error codes).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod client;
pub mod idb;
pub mod locks;
pub mod net;
pub mod platform;
pub mod qr;

/// The records the client stores (re-exported from `client-core`).
pub use client_core::records;
/// The vault (re-exported from `client-core`).
pub use client_core::vault;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

pub use api::{ErrorCode, HushClient};
pub use idb::RecordStore;
pub use platform::BrowserPlatform;

/// The message of a thrown JS value (an `Error`, a `DOMException` or a string), if it has one.
pub(crate) fn js_error_message(value: &JsValue) -> Option<String> {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| {
            value
                .dyn_ref::<web_sys::DomException>()
                .map(|e| e.message())
        })
        .or_else(|| value.as_string())
}

/// The `name` of a thrown `DOMException` (`"ConstraintError"`, `"InvalidStateError"`, …).
pub(crate) fn dom_exception_name(value: &JsValue) -> Option<String> {
    value.dyn_ref::<web_sys::DomException>().map(|e| e.name())
}

/// Runs a closure when dropped: on every path out of a scope, also when the future holding
/// it is dropped half-way.
pub(crate) struct OnDrop<F: FnMut()>(pub(crate) F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Version of this client build (the crate version), for the UI's "about" line.
#[wasm_bindgen(js_name = clientVersion)]
pub fn client_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

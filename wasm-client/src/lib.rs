//! Hush in the browser: the protocol core compiled to WebAssembly, with its state in
//! IndexedDB and its network through `fetch`.
//!
//! This layer holds no protocol logic: it adapts the `protocol` crate's types to JavaScript
//! (camelCase names, typed errors) and to the browser's storage and network.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod client;
pub mod idb;
pub mod locks;
pub mod net;
pub mod qr;
pub mod records;
pub mod vault;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

pub use api::{ErrorCode, HushClient};
pub use idb::RecordStore;

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

/// Version of this client build (the crate version), for the UI's "about" line.
#[wasm_bindgen(js_name = clientVersion)]
pub fn client_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

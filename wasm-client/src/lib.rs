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

use wasm_bindgen::prelude::*;

pub use api::{ErrorCode, HushClient};
pub use idb::RecordStore;

/// Version of this client build (the crate version), for the UI's "about" line.
#[wasm_bindgen(js_name = clientVersion)]
pub fn client_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

//! [`client_core::Platform`] in the browser: IndexedDB ([`crate::idb`]), `fetch`
//! ([`crate::net`]), Web Locks ([`crate::locks`]), `Date.now()` and
//! `crypto.getRandomValues` (through `getrandom`).

use client_core::{Platform, StorageError};
use getrandom::SysRng;
use rand_core::{Rng, UnwrapErr};

use crate::idb::RecordStore;
use crate::locks::WebLocks;
use crate::net::FetchTransport;

/// The browser's storage, network, locks, clock and randomness.
pub struct BrowserPlatform {
    store: RecordStore,
    net: FetchTransport,
    locks: WebLocks,
}

impl BrowserPlatform {
    /// Opens the IndexedDB database `db_name`; mailbox requests time out after `net`'s
    /// deadline.
    pub async fn open(db_name: &str, net: FetchTransport) -> Result<Self, StorageError> {
        Ok(BrowserPlatform {
            store: RecordStore::open_native(db_name).await?,
            net,
            locks: WebLocks::for_database(db_name),
        })
    }
}

/// `crypto.getRandomValues` (the browser's CSPRNG, which does not fail once available).
pub(crate) fn system_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// `text` in Unicode NFC by the browser's own normaliser (`String.prototype.normalize("NFC")`),
/// in a window or a worker.
pub(crate) fn nfc(text: &str) -> String {
    js_sys::JsString::from(text).normalize("NFC").into()
}

impl Platform for BrowserPlatform {
    type Store = RecordStore;
    type Net = FetchTransport;
    type Locks = WebLocks;

    fn store(&self) -> &RecordStore {
        &self.store
    }

    fn net(&self) -> &FetchTransport {
        &self.net
    }

    fn locks(&self) -> &WebLocks {
        &self.locks
    }

    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }

    fn fill_random(&self, dest: &mut [u8]) {
        system_rng().fill_bytes(dest);
    }

    /// The browser's own normaliser ([`nfc`]).
    fn nfc(&self, text: &str) -> String {
        nfc(text)
    }
}

//! A minimal durable key → bytes store over IndexedDB.
//!
//! Every write resolves only when its transaction has *completed* (IndexedDB's durability
//! point), never on the request's success event alone, so a caller that awaited `put` may
//! assume the record survives a reload or a crash of the tab.

use js_sys::{Promise, Reflect, Uint8Array};
use thiserror::Error;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    IdbDatabase, IdbFactory, IdbKeyRange, IdbOpenDbRequest, IdbRequest, IdbTransaction,
    IdbTransactionMode,
};

/// Name of the one object store each database holds.
const RECORDS: &str = "records";
/// Schema version of the database.
const SCHEMA_VERSION: u32 = 1;

/// Why a storage operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// This context has no IndexedDB (for example a private window that disables it).
    #[error("IndexedDB is not available in this browser context")]
    Unavailable,
    /// The browser refused or aborted the operation (quota, blocked upgrade, I/O).
    #[error("IndexedDB error: {0}")]
    Browser(String),
    /// A stored record is not a byte array: the database was written by something else.
    #[error("a stored record has an unexpected type")]
    Corrupt,
}

impl From<JsValue> for StoreError {
    fn from(value: JsValue) -> Self {
        let msg = crate::js_error_message(&value).unwrap_or_else(|| "unknown".to_owned());
        StoreError::Browser(msg)
    }
}

/// An IndexedDB database holding byte records by string key.
#[wasm_bindgen]
pub struct RecordStore {
    db: IdbDatabase,
}

#[wasm_bindgen]
impl RecordStore {
    /// Opens (creating if needed) the database `name`.
    pub async fn open(name: String) -> Result<RecordStore, JsError> {
        Ok(Self::open_native(&name).await?)
    }

    /// Stores `value` under `key`, resolving once the write is durable.
    pub async fn put(&self, key: String, value: Vec<u8>) -> Result<(), JsError> {
        Ok(self.put_native(&key, &value).await?)
    }

    /// The bytes stored under `key`, or `undefined`.
    pub async fn get(&self, key: String) -> Result<Option<Vec<u8>>, JsError> {
        Ok(self.get_native(&key).await?)
    }

    /// Removes `key`, resolving once the deletion is durable.
    pub async fn delete(&self, key: String) -> Result<(), JsError> {
        Ok(self.delete_native(&key).await?)
    }

    /// Closes the connection; later calls fail.
    pub fn close(&self) {
        self.db.close();
    }
}

impl RecordStore {
    /// Opens (creating if needed) the database `name`.
    pub async fn open_native(name: &str) -> Result<RecordStore, StoreError> {
        let factory: IdbFactory = Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or(StoreError::Unavailable)?;
        let open: IdbOpenDbRequest = factory.open_with_u32(name, SCHEMA_VERSION)?;
        let upgrade_req = open.clone();
        let on_upgrade = Closure::once_into_js(move |_event: web_sys::Event| {
            if let Ok(result) = upgrade_req.result() {
                let db: IdbDatabase = result.unchecked_into();
                if !db.object_store_names().contains(RECORDS) {
                    // An error here aborts the upgrade, which fails the open request below.
                    let _ = db.create_object_store(RECORDS);
                }
            }
        });
        open.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
        let db = request(&open).await?;
        open.set_onupgradeneeded(None);
        Ok(RecordStore {
            db: db.unchecked_into(),
        })
    }

    fn transaction(&self, mode: IdbTransactionMode) -> Result<IdbTransaction, StoreError> {
        Ok(self.db.transaction_with_str_and_mode(RECORDS, mode)?)
    }

    /// Stores `value` under `key`, resolving once the transaction has completed.
    pub async fn put_native(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self.transaction(IdbTransactionMode::Readwrite)?;
        let done = completion(&tx);
        tx.object_store(RECORDS)?
            .put_with_key(&Uint8Array::from(value), &JsValue::from_str(key))?;
        done.await
    }

    /// The bytes under `key`, if any.
    pub async fn get_native(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.transaction(IdbTransactionMode::Readonly)?;
        let req = tx.object_store(RECORDS)?.get(&JsValue::from_str(key))?;
        let value = request(&req).await?;
        if value.is_undefined() {
            return Ok(None);
        }
        let bytes: Uint8Array = value.dyn_into().map_err(|_| StoreError::Corrupt)?;
        Ok(Some(bytes.to_vec()))
    }

    /// Removes `key`, resolving once the transaction has completed.
    pub async fn delete_native(&self, key: &str) -> Result<(), StoreError> {
        self.commit(vec![Write::Delete(key.to_owned())]).await
    }

    /// Applies every write in one IndexedDB transaction: after a crash either all of them are
    /// visible or none is. Resolves once the transaction has completed.
    pub async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let tx = self.transaction(IdbTransactionMode::Readwrite)?;
        let done = completion(&tx);
        let store = tx.object_store(RECORDS)?;
        for write in &writes {
            let queued = match write {
                Write::Put(key, value) => {
                    store.put_with_key(&Uint8Array::from(value.as_slice()), &JsValue::from_str(key))
                }
                Write::Delete(key) => store.delete(&JsValue::from_str(key)),
            };
            if let Err(err) = queued {
                // Nothing of this batch may land: abort, then report the first failure.
                let _ = tx.abort();
                let _ = done.await;
                return Err(err.into());
            }
        }
        done.await
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub async fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        // Keys are strings; every key with the prefix sorts in [prefix, prefix + U+FFFF].
        let range = IdbKeyRange::bound(
            &JsValue::from_str(prefix),
            &JsValue::from_str(&format!("{prefix}\u{ffff}")),
        )?;
        let tx = self.transaction(IdbTransactionMode::Readonly)?;
        let store = tx.object_store(RECORDS)?;
        let keys_req = store.get_all_keys_with_key(&range)?;
        let values_req = store.get_all_with_key(&range)?;
        let keys: js_sys::Array = request(&keys_req).await?.unchecked_into();
        let values: js_sys::Array = request(&values_req).await?.unchecked_into();
        let mut out = Vec::with_capacity(keys.length() as usize);
        for (key, value) in keys.iter().zip(values.iter()) {
            let key = key.as_string().ok_or(StoreError::Corrupt)?;
            let bytes: Uint8Array = value.dyn_into().map_err(|_| StoreError::Corrupt)?;
            out.push((key, bytes.to_vec()));
        }
        Ok(out)
    }
}

/// One write of an atomic [`RecordStore::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Store the bytes under the key.
    Put(String, Vec<u8>),
    /// Remove the key.
    Delete(String),
}

/// Resolves with a request's result, or fails with its error.
async fn request(req: &IdbRequest) -> Result<JsValue, StoreError> {
    let promise = Promise::new(&mut |resolve, reject| {
        let ok_req = req.clone();
        let err_req = req.clone();
        let on_success = Closure::once_into_js(move |_event: web_sys::Event| {
            let result = ok_req.result().unwrap_or(JsValue::UNDEFINED);
            let _ = resolve.call1(&JsValue::UNDEFINED, &result);
        });
        let on_error = Closure::once_into_js(move |_event: web_sys::Event| {
            let error = err_req
                .error()
                .ok()
                .flatten()
                .map(JsValue::from)
                .unwrap_or_else(|| JsValue::from_str("request failed"));
            let _ = reject.call1(&JsValue::UNDEFINED, &error);
        });
        req.set_onsuccess(Some(on_success.unchecked_ref()));
        req.set_onerror(Some(on_error.unchecked_ref()));
    });
    Ok(JsFuture::from(promise).await?)
}

/// A future that resolves when `tx` commits, or fails when it errors or aborts.
fn completion(tx: &IdbTransaction) -> impl Future<Output = Result<(), StoreError>> + use<> {
    let promise = Promise::new(&mut |resolve, reject| {
        let on_complete = Closure::once_into_js(move |_event: web_sys::Event| {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        });
        let err_tx = tx.clone();
        let on_fail = Closure::once_into_js(move |_event: web_sys::Event| {
            let error = err_tx
                .error()
                .map(JsValue::from)
                .unwrap_or_else(|| JsValue::from_str("transaction aborted"));
            let _ = reject.call1(&JsValue::UNDEFINED, &error);
        });
        tx.set_oncomplete(Some(on_complete.unchecked_ref()));
        tx.set_onerror(Some(on_fail.unchecked_ref()));
        tx.set_onabort(Some(on_fail.unchecked_ref()));
    });
    async move {
        JsFuture::from(promise).await?;
        Ok(())
    }
}

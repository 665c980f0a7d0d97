//! The client's [`client_core::RecordStore`] over IndexedDB: one object store of byte records
//! by string name.
//!
//! * A commit is one `readwrite` transaction and resolves only when it has *completed*, with
//!   the durability the core asks for (`durability: "strict"` before a network effect).
//!   [`Write::Insert`] is an `add()`, whose `ConstraintError` aborts the whole transaction and
//!   is reported as [`StorageError::Exists`].
//! * The future awaiting a request or a transaction owns both of its event handlers and
//!   unsets and frees them when it ends, so nothing of a finished request (its result, its
//!   handlers) stays reachable from JS. A cursor's request (a page of history, read newest
//!   first) is stepped from inside its success handler, which the same future owns.
//! * The connection is reopened lazily after the browser closed it (`close`, as iOS Safari
//!   does to background tabs) or another tab asked for a new version (`versionchange`); an
//!   operation that finds it closed anyway (`InvalidStateError`) reopens it and retries once.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use client_core::StorageError;
pub use client_core::{Durability, Write};
use js_sys::{Function, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::{
    Event, IdbCursorDirection, IdbCursorWithValue, IdbDatabase, IdbFactory, IdbKeyRange,
    IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction,
};

use crate::{OnDrop, dom_exception_name, js_error_message};

/// Name of the one object store each database holds.
const RECORDS: &str = "records";
/// Schema version of the database.
const SCHEMA_VERSION: u32 = 1;

#[wasm_bindgen]
extern "C" {
    /// `IDBDatabase` with what web-sys gates behind an unstable cfg (`IdbTransactionOptions`;
    /// the option is stable in Chromium, Firefox and Safari).
    #[wasm_bindgen(extends = IdbDatabase, js_name = IDBDatabase)]
    type DatabaseWithOptions;

    /// `IDBDatabase.transaction(names, mode, options)`.
    #[wasm_bindgen(method, js_name = transaction, catch)]
    fn transaction_with_options(
        this: &DatabaseWithOptions,
        names: &str,
        mode: &str,
        options: &JsValue,
    ) -> Result<IdbTransaction, JsValue>;

    /// `IDBTransaction` with its `durability` (unstable in web-sys).
    #[wasm_bindgen(extends = IdbTransaction, js_name = IDBTransaction)]
    type TransactionWithDurability;

    /// `IDBTransaction.durability`: what the browser grants (`"strict"`, `"relaxed"`,
    /// `"default"`), `undefined` where unsupported.
    #[wasm_bindgen(method, getter)]
    fn durability(this: &TransactionWithDurability) -> JsValue;
}

/// A JS error value as a [`StorageError`], by the `DOMException`'s name.
fn storage_error(value: &JsValue) -> StorageError {
    match dom_exception_name(value).as_deref() {
        Some("ConstraintError") => StorageError::Exists,
        Some("QuotaExceededError") => StorageError::QuotaExceeded,
        _ => StorageError::Failed(js_error_message(value).unwrap_or_else(|| "unknown".to_owned())),
    }
}

/// Which of an object's two outcome events fired first, and who to wake then.
#[derive(Default)]
struct Fired {
    ok: Cell<Option<bool>>,
    waker: Cell<Option<Waker>>,
}

/// An IndexedDB object's pair of outcome events (a request's `success`/`error`, a
/// transaction's `complete`/`abort`), awaited by the Rust future that owns both handlers.
///
/// Dropping it (when the outcome is read, or when the future awaiting it is dropped) unsets
/// both handlers and frees them: no `once` closure is left behind for the event that never
/// fires, holding the request and its result alive.
struct Outcome<T> {
    target: T,
    set: fn(&T, Option<&Function>, Option<&Function>),
    fired: Rc<Fired>,
    _ok: Closure<dyn FnMut(Event)>,
    _err: Closure<dyn FnMut(Event)>,
}

impl<T> Outcome<T> {
    /// Installs the handlers now (before the caller yields, so no event is missed).
    fn watch(target: T, set: fn(&T, Option<&Function>, Option<&Function>)) -> Self {
        Self::watch_until(target, set, || true)
    }

    /// Like [`Outcome::watch`] for an object whose success event fires more than once (a
    /// cursor's request, once per step): `finished` runs inside each success event, while
    /// the transaction is active (so it may `continue()` the cursor), and says whether that
    /// was the last one.
    fn watch_until(
        target: T,
        set: fn(&T, Option<&Function>, Option<&Function>),
        mut finished: impl FnMut() -> bool + 'static,
    ) -> Self {
        let fired = Rc::new(Fired::default());
        let wake = |fired: &Fired, ok: bool| {
            if fired.ok.get().is_none() {
                fired.ok.set(Some(ok));
            }
            if let Some(waker) = fired.waker.take() {
                waker.wake();
            }
        };
        let on_ok = {
            let fired = fired.clone();
            Closure::<dyn FnMut(Event)>::new(move |_event: Event| {
                if fired.ok.get().is_none() && finished() {
                    wake(&fired, true);
                }
            })
        };
        let on_err = {
            let fired = fired.clone();
            Closure::<dyn FnMut(Event)>::new(move |_event: Event| wake(&fired, false))
        };
        set(
            &target,
            Some(on_ok.as_ref().unchecked_ref()),
            Some(on_err.as_ref().unchecked_ref()),
        );
        Outcome {
            target,
            set,
            fired,
            _ok: on_ok,
            _err: on_err,
        }
    }

    /// Whether the success event (not the failure event) fired first.
    async fn succeeded(&self) -> bool {
        poll_fn(|cx| match self.fired.ok.get() {
            Some(ok) => Poll::Ready(ok),
            None => {
                self.fired.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

impl<T> Drop for Outcome<T> {
    fn drop(&mut self) {
        // Unset before the closures are freed (fields drop after this), so the browser can
        // never call a freed closure.
        (self.set)(&self.target, None, None);
    }
}

/// Sets (or unsets) a request's `success` and `error` handlers.
fn set_request_handlers(req: &IdbRequest, ok: Option<&Function>, err: Option<&Function>) {
    req.set_onsuccess(ok);
    req.set_onerror(err);
}

/// Watches a request's `success` and `error`.
fn request(req: &IdbRequest) -> Outcome<IdbRequest> {
    Outcome::watch(req.clone(), set_request_handlers)
}

impl Outcome<IdbRequest> {
    /// The request's result, or its error.
    async fn result(self) -> Result<JsValue, JsValue> {
        if self.succeeded().await {
            self.target.result()
        } else {
            Err(self
                .target
                .error()
                .ok()
                .flatten()
                .map_or_else(|| JsValue::from_str("request failed"), JsValue::from))
        }
    }
}

/// Watches a transaction's `complete` and `abort` (a failed request aborts its transaction;
/// `error` events only precede the abort).
fn completion(tx: &IdbTransaction) -> Outcome<IdbTransaction> {
    Outcome::watch(tx.clone(), |tx, ok, err| {
        tx.set_oncomplete(ok);
        tx.set_onabort(err);
    })
}

impl Outcome<IdbTransaction> {
    /// Resolves when the transaction has committed, or fails with why it aborted.
    async fn committed(self) -> Result<(), StorageError> {
        if self.succeeded().await {
            Ok(())
        } else {
            Err(self.target.error().map_or_else(
                || StorageError::Failed("the transaction was aborted".to_owned()),
                |e| storage_error(&e.into()),
            ))
        }
    }
}

/// One open connection, with the handlers that notice the browser closing it.
struct Connection {
    db: IdbDatabase,
    /// Set once the browser closed the connection or another tab asked for a new version.
    closed: Rc<Cell<bool>>,
    _on_close: Closure<dyn FnMut(Event)>,
    _on_versionchange: Closure<dyn FnMut(Event)>,
}

impl Connection {
    fn new(db: IdbDatabase) -> Self {
        let closed = Rc::new(Cell::new(false));
        let on_close = {
            let closed = closed.clone();
            Closure::<dyn FnMut(Event)>::new(move |_event: Event| closed.set(true))
        };
        // Another tab wants to upgrade or delete the database: step aside (an open
        // connection would block it) and reopen on next use.
        let on_versionchange = {
            let closed = closed.clone();
            Closure::<dyn FnMut(Event)>::new(move |event: Event| {
                closed.set(true);
                if let Some(db) = event
                    .target()
                    .and_then(|t| t.dyn_into::<IdbDatabase>().ok())
                {
                    db.close();
                }
            })
        };
        db.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        db.set_onversionchange(Some(on_versionchange.as_ref().unchecked_ref()));
        Connection {
            db,
            closed,
            _on_close: on_close,
            _on_versionchange: on_versionchange,
        }
    }

    fn usable(&self) -> Option<IdbDatabase> {
        (!self.closed.get()).then(|| self.db.clone())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.db.set_onclose(None);
        self.db.set_onversionchange(None);
        // Transactions in flight still complete; new ones on this connection fail.
        self.db.close();
    }
}

/// The `indexedDB` factory of this context (window or worker).
fn factory() -> Result<IdbFactory, StorageError> {
    Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or(StorageError::Unavailable)
}

/// Opens `name` at `version` (the current one if `None`), creating the object store if the
/// database is new.
async fn open_version(
    factory: &IdbFactory,
    name: &str,
    version: Option<u32>,
) -> Result<IdbDatabase, JsValue> {
    let open: IdbOpenDbRequest = match version {
        Some(version) => factory.open_with_u32(name, version)?,
        None => factory.open(name)?,
    };
    let on_upgrade = {
        let open = open.clone();
        Closure::<dyn FnMut(Event)>::new(move |_event: Event| {
            if let Ok(result) = open.result() {
                let db: IdbDatabase = result.unchecked_into();
                if !db.object_store_names().contains(RECORDS) {
                    // An error here aborts the upgrade, which fails the open request.
                    let _ = db.create_object_store(RECORDS);
                }
            }
        })
    };
    open.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let _unset = OnDrop(|| open.set_onupgradeneeded(None));
    Ok(request(&open).result().await?.unchecked_into())
}

/// Opens (creating if needed) the database `name`. A database another tab already upgraded
/// to a newer schema is opened at its version if it still holds the record store.
async fn open_database(name: &str) -> Result<IdbDatabase, StorageError> {
    let factory = factory()?;
    match open_version(&factory, name, Some(SCHEMA_VERSION)).await {
        Ok(db) => Ok(db),
        Err(err) if dom_exception_name(&err).as_deref() == Some("VersionError") => {
            let db = open_version(&factory, name, None)
                .await
                .map_err(|e| storage_error(&e))?;
            if db.object_store_names().contains(RECORDS) {
                Ok(db)
            } else {
                db.close();
                Err(StorageError::Failed(
                    "the database has an unknown schema".to_owned(),
                ))
            }
        }
        Err(err) => Err(storage_error(&err)),
    }
}

/// What a transaction is for.
#[derive(Clone, Copy)]
enum Mode {
    Read,
    Write(Durability),
}

/// An IndexedDB database holding byte records by string name.
#[wasm_bindgen]
pub struct RecordStore {
    name: String,
    connection: RefCell<Option<Connection>>,
    /// The durability the browser reported for the last read-write transaction (tests).
    last_write_durability: RefCell<Option<String>>,
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

    /// Closes the connection, as the browser may do at any time: the next call finds it
    /// closed and reopens it.
    pub fn close(&self) {
        if let Some(connection) = self.connection.borrow().as_ref() {
            connection.db.close();
        }
    }
}

impl RecordStore {
    /// Opens (creating if needed) the database `name`.
    pub async fn open_native(name: &str) -> Result<RecordStore, StorageError> {
        let db = open_database(name).await?;
        Ok(RecordStore {
            name: name.to_owned(),
            connection: RefCell::new(Some(Connection::new(db))),
            last_write_durability: RefCell::new(None),
        })
    }

    /// The open connection, reopened if the browser or another tab closed it.
    async fn database(&self) -> Result<IdbDatabase, StorageError> {
        if let Some(db) = self
            .connection
            .borrow()
            .as_ref()
            .and_then(Connection::usable)
        {
            return Ok(db);
        }
        let fresh = Connection::new(open_database(&self.name).await?);
        let mut slot = self.connection.borrow_mut();
        // A concurrent call may have reopened it meanwhile: keep that one (`fresh` closes).
        if let Some(db) = slot.as_ref().and_then(Connection::usable) {
            return Ok(db);
        }
        let db = fresh.db.clone();
        *slot = Some(fresh);
        Ok(db)
    }

    /// Marks `db` closed if it is still the current connection.
    fn forget(&self, db: &IdbDatabase) {
        if let Some(connection) = self.connection.borrow().as_ref()
            && connection.db == *db
        {
            connection.closed.set(true);
        }
    }

    /// A transaction on the record store; if the connection turns out closed
    /// (`InvalidStateError`), reopens it and tries once more.
    async fn transaction(&self, mode: Mode) -> Result<IdbTransaction, StorageError> {
        let mut retried = false;
        loop {
            let db = self.database().await?;
            match self.begin(&db, mode) {
                Ok(tx) => return Ok(tx),
                Err(err)
                    if !retried
                        && dom_exception_name(&err).as_deref() == Some("InvalidStateError") =>
                {
                    retried = true;
                    self.forget(&db);
                }
                Err(err) => return Err(storage_error(&err)),
            }
        }
    }

    fn begin(&self, db: &IdbDatabase, mode: Mode) -> Result<IdbTransaction, JsValue> {
        match mode {
            Mode::Read => db.transaction_with_str(RECORDS),
            Mode::Write(durability) => {
                let options = Object::new();
                let durability = match durability {
                    Durability::Strict => "strict",
                    Durability::Relaxed => "relaxed",
                };
                Reflect::set(&options, &"durability".into(), &durability.into())?;
                let tx = db
                    .unchecked_ref::<DatabaseWithOptions>()
                    .transaction_with_options(RECORDS, "readwrite", &options)?;
                *self.last_write_durability.borrow_mut() = tx
                    .unchecked_ref::<TransactionWithDurability>()
                    .durability()
                    .as_string();
                Ok(tx)
            }
        }
    }

    /// The durability the browser reported for the last read-write transaction this store
    /// opened (`"strict"`, `"relaxed"`, …), for tests.
    #[doc(hidden)]
    pub fn last_write_durability(&self) -> Option<String> {
        self.last_write_durability.borrow().clone()
    }

    /// Stores `value` under `key`, strictly durable once this resolves.
    pub async fn put_native(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.commit(
            vec![Write::Put(key.to_owned(), value.to_vec())],
            Durability::Strict,
        )
        .await
    }

    /// The bytes under `key`, if any.
    pub async fn get_native(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self.transaction(Mode::Read).await?;
        let store = object_store(&tx)?;
        let req = store
            .get(&JsValue::from_str(key))
            .map_err(|e| storage_error(&e))?;
        let value = request(&req)
            .result()
            .await
            .map_err(|e| storage_error(&e))?;
        if value.is_undefined() {
            return Ok(None);
        }
        let bytes: Uint8Array = value.dyn_into().map_err(|_| StorageError::Corrupt)?;
        Ok(Some(bytes.to_vec()))
    }

    /// Removes `key`, strictly durable once this resolves.
    pub async fn delete_native(&self, key: &str) -> Result<(), StorageError> {
        self.commit(vec![Write::Delete(key.to_owned())], Durability::Strict)
            .await
    }

    /// Applies every write in one IndexedDB transaction with `durability`: after a crash
    /// either all of them are visible or none is. Resolves once the transaction has
    /// completed; an [`Write::Insert`] over an existing name aborts it with
    /// [`StorageError::Exists`].
    pub async fn commit(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> Result<(), StorageError> {
        let tx = self.transaction(Mode::Write(durability)).await?;
        let done = completion(&tx);
        let store = object_store(&tx)?;
        for write in &writes {
            let queued = match write {
                Write::Put(name, bytes) => store.put_with_key(
                    &Uint8Array::from(bytes.as_slice()),
                    &JsValue::from_str(name),
                ),
                Write::Insert(name, bytes) => store.add_with_key(
                    &Uint8Array::from(bytes.as_slice()),
                    &JsValue::from_str(name),
                ),
                Write::Delete(name) => store.delete(&JsValue::from_str(name)),
            };
            if let Err(err) = queued {
                // Nothing of this batch may land: abort, then report the first failure.
                let _ = tx.abort();
                let _ = done.committed().await;
                return Err(storage_error(&err));
            }
        }
        done.committed().await
    }

    /// Every record whose name starts with `prefix`, in name order.
    pub async fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        // Names are strings; every name with the prefix sorts in [prefix, prefix + U+FFFF].
        let range = IdbKeyRange::bound(
            &JsValue::from_str(prefix),
            &JsValue::from_str(&format!("{prefix}\u{ffff}")),
        )
        .map_err(|e| storage_error(&e))?;
        let tx = self.transaction(Mode::Read).await?;
        let store = object_store(&tx)?;
        let keys = request(
            &store
                .get_all_keys_with_key(&range)
                .map_err(|e| storage_error(&e))?,
        );
        let values = request(
            &store
                .get_all_with_key(&range)
                .map_err(|e| storage_error(&e))?,
        );
        let keys: js_sys::Array = keys
            .result()
            .await
            .map_err(|e| storage_error(&e))?
            .unchecked_into();
        let values: js_sys::Array = values
            .result()
            .await
            .map_err(|e| storage_error(&e))?
            .unchecked_into();
        let mut out = Vec::with_capacity(keys.length() as usize);
        for (key, value) in keys.iter().zip(values.iter()) {
            let key = key.as_string().ok_or(StorageError::Corrupt)?;
            let bytes: Uint8Array = value.dyn_into().map_err(|_| StorageError::Corrupt)?;
            out.push((key, bytes.to_vec()));
        }
        Ok(out)
    }

    /// The last `limit` records whose names start with `prefix` and sort before `before`, in
    /// name order: a `prev` cursor over the range that stops after `limit` records, so a page
    /// costs a page, however many records the prefix holds.
    pub async fn list_last_native(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let end = format!("{prefix}\u{ffff}");
        // [prefix, before) when `before` falls inside the prefix's range, else all of it.
        let (upper, upper_open) = match before {
            Some(before) if before <= prefix => return Ok(Vec::new()),
            Some(before) if before <= end.as_str() => (before, true),
            _ => (end.as_str(), false),
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let range = IdbKeyRange::bound_with_lower_open_and_upper_open(
            &JsValue::from_str(prefix),
            &JsValue::from_str(upper),
            false,
            upper_open,
        )
        .map_err(|e| storage_error(&e))?;
        let tx = self.transaction(Mode::Read).await?;
        let store = object_store(&tx)?;
        let req = store
            .open_cursor_with_range_and_direction(&range, IdbCursorDirection::Prev)
            .map_err(|e| storage_error(&e))?;
        let page = Rc::new(RefCell::new(CursorPage {
            request: req.clone(),
            limit,
            records: Vec::new(),
            failure: None,
        }));
        let done = Outcome::watch_until(req, set_request_handlers, {
            let page = page.clone();
            move || page.borrow_mut().step()
        });
        let succeeded = done.succeeded().await;
        let error = (!succeeded).then(|| done.target.error().ok().flatten());
        // Unsets and frees the handlers, and with them the closure's share of the page.
        drop(done);
        if let Some(error) = error {
            return Err(error.map_or_else(
                || StorageError::Failed("request failed".to_owned()),
                |e| storage_error(&e.into()),
            ));
        }
        let CursorPage {
            mut records,
            failure,
            ..
        } = Rc::try_unwrap(page)
            .map_err(|_| StorageError::Failed("cursor still referenced".to_owned()))?
            .into_inner();
        if let Some(failure) = failure {
            return Err(failure);
        }
        records.reverse();
        Ok(records)
    }
}

/// Collects one page from a `prev` cursor, one record per success event: stops at the end
/// of the range, after `limit` records, or at the first failure.
struct CursorPage {
    request: IdbRequest,
    limit: usize,
    /// Newest first, as the cursor walks.
    records: Vec<(String, Vec<u8>)>,
    failure: Option<StorageError>,
}

impl CursorPage {
    /// Takes the cursor's current record and continues it; whether the page is complete.
    fn step(&mut self) -> bool {
        let cursor = match self.request.result() {
            Ok(cursor) if !cursor.is_null() && !cursor.is_undefined() => cursor,
            Ok(_) => return true,
            Err(err) => {
                self.failure = Some(storage_error(&err));
                return true;
            }
        };
        let cursor: IdbCursorWithValue = cursor.unchecked_into();
        let key = cursor.key().ok().and_then(|k| k.as_string());
        let value = cursor
            .value()
            .ok()
            .and_then(|v| v.dyn_into::<Uint8Array>().ok());
        let (Some(key), Some(value)) = (key, value) else {
            self.failure = Some(StorageError::Corrupt);
            return true;
        };
        self.records.push((key, value.to_vec()));
        if self.records.len() >= self.limit {
            return true;
        }
        if let Err(err) = cursor.continue_() {
            self.failure = Some(storage_error(&err));
            return true;
        }
        false
    }
}

fn object_store(tx: &IdbTransaction) -> Result<IdbObjectStore, StorageError> {
    tx.object_store(RECORDS).map_err(|e| storage_error(&e))
}

impl client_core::RecordStore for RecordStore {
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_native(name).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.list_prefix(prefix).await
    }

    async fn list_last(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.list_last_native(prefix, before, limit).await
    }

    async fn commit(&self, writes: Vec<Write>, durability: Durability) -> Result<(), StorageError> {
        RecordStore::commit(self, writes, durability).await
    }
}

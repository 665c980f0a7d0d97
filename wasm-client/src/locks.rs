//! The client's [`client_core::Locks`] over the Web Locks API: one writer per conversation
//! across every tab of the profile.
//!
//! [`lock`] asks `navigator.locks` for an exclusive lock with a callback that resolves an
//! "acquired" promise and returns a "release" promise; the browser holds the lock until that
//! promise settles, and only the [`LockGuard`] resolves it, when dropped. Dropping the future
//! before the lock is granted aborts the request (and, should the grant have raced the drop,
//! releases the lock at once), so neither a guard nor a half-finished wait can hold a lock
//! forever. The browser also releases every lock of a tab that closes.

use client_core::LockError;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::AbortController;

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks.request(name, options, callback)` (web-sys gates LockManager behind an
    /// unstable cfg; the API itself is stable in every current browser).
    #[wasm_bindgen(js_namespace = ["navigator", "locks"], js_name = request, catch)]
    fn lock_request(
        name: &str,
        options: &JsValue,
        callback: &Closure<dyn FnMut(JsValue) -> Promise>,
    ) -> Result<Promise, JsValue>;

    /// A promise, to call `then` with plain JS functions.
    #[wasm_bindgen(extends = Promise, js_name = Promise)]
    type Thenable;

    /// `promise.then(onFulfilled, onRejected)`.
    #[wasm_bindgen(method, js_name = then)]
    fn then_either(this: &Thenable, on_fulfilled: &JsValue, on_rejected: &JsValue) -> Promise;
}

/// Proof that a Web Lock is held; dropping it releases the lock.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    release: Option<Function>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
    }
}

/// A lock request not granted yet: dropped before then, it withdraws the request.
struct Withdraw(Option<AbortController>);

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let Some(controller) = self.0.take() {
            controller.abort();
        }
    }
}

fn lock_error(err: JsValue) -> LockError {
    LockError(crate::js_error_message(&err).unwrap_or_else(|| "Web Locks failed".to_owned()))
}

/// Waits for the exclusive Web Lock `name` (shared by every tab of this profile).
pub async fn lock(name: &str) -> Result<LockGuard, LockError> {
    // The promise the callback returns: the browser holds the lock until it settles.
    let mut resolve_release = None;
    let release = Promise::new(&mut |resolve, _reject| resolve_release = Some(resolve));
    // From here on, every way out of this function (an error, a drop) releases.
    let mut guard = LockGuard {
        release: resolve_release,
    };
    let mut settle_acquired = None;
    let acquired = Promise::new(&mut |resolve, reject| settle_acquired = Some((resolve, reject)));
    let (granted, failed) =
        settle_acquired.ok_or_else(|| LockError("Promise executor did not run".to_owned()))?;

    let controller = AbortController::new().map_err(lock_error)?;
    let mut withdraw = Withdraw(Some(controller.clone()));
    let callback = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |_lock: JsValue| {
        let _ = granted.call0(&JsValue::UNDEFINED);
        release.clone()
    });
    let options = Object::new();
    Reflect::set(&options, &"signal".into(), &controller.signal()).map_err(lock_error)?;
    let requested = lock_request(name, &options, &callback).map_err(lock_error)?;
    // The callback must outlive this future (the browser may call it after we are gone): the
    // request's settlement frees it. That comes once the lock is released, or at once if the
    // request fails or is withdrawn, which also fails `acquired` (no-op once granted).
    let on_settled = Closure::once_into_js(move |outcome: JsValue| {
        let _ = failed.call1(&JsValue::UNDEFINED, &outcome);
        drop(callback);
    });
    let _ = requested
        .unchecked_ref::<Thenable>()
        .then_either(&on_settled, &on_settled);

    JsFuture::from(acquired).await.map_err(lock_error)?;
    withdraw.0 = None;
    Ok(LockGuard {
        release: guard.release.take(),
    })
}

/// Web Locks as the client's lock manager, named per database (`hush:{db}:{name}`), so two
/// databases of one origin never wait on each other's locks.
#[derive(Debug, Clone)]
pub struct WebLocks {
    prefix: String,
}

impl WebLocks {
    /// Locks for the database `db_name`.
    pub fn for_database(db_name: &str) -> WebLocks {
        WebLocks {
            prefix: format!("hush:{db_name}:"),
        }
    }
}

impl client_core::Locks for WebLocks {
    type Guard = LockGuard;

    async fn lock(&self, name: &str) -> Result<LockGuard, LockError> {
        lock(&format!("{}{name}", self.prefix)).await
    }
}

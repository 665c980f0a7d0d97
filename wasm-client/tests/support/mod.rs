//! Helpers shared by the browser test suites.

#![allow(dead_code)]

use js_sys::Promise;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Event, IdbDatabase};

/// Opens `name` at `version` from a second connection, as another tab upgrading the schema
/// would, and closes it again. Fails if an open connection blocks the upgrade.
pub async fn upgrade_from_another_tab(name: &str, version: u32) -> Result<(), String> {
    let factory = web_sys::window().unwrap().indexed_db().unwrap().unwrap();
    let open = factory.open_with_u32(name, version).unwrap();
    let promise = Promise::new(&mut |resolve, reject| {
        let req = open.clone();
        let on_success = Closure::once_into_js(move |_: Event| {
            let db: IdbDatabase = req.result().unwrap().unchecked_into();
            db.close();
            resolve.call0(&JsValue::NULL).unwrap();
        });
        let on_blocked = Closure::once_into_js(move |_: Event| {
            reject
                .call1(&JsValue::NULL, &"blocked by an open connection".into())
                .unwrap();
        });
        open.set_onsuccess(Some(on_success.unchecked_ref()));
        open.set_onblocked(Some(on_blocked.unchecked_ref()));
    });
    JsFuture::from(promise)
        .await
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}

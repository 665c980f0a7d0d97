//! The mailbox API (v1, `docs/MAILBOX-API.md`) over the browser's `fetch`: the client's
//! [`client_core::Transport`].
//!
//! Requests carry nothing that identifies the user: no credentials or cookies
//! (`credentials: "omit"`), no referrer, no cache; only the addresses, write keys and blobs the
//! protocol produced for this one request. Every request, its body included, has a deadline
//! ([`client_core::REQUEST_TIMEOUT_MS`]): an `AbortController` aborts it then and it fails
//! with [`NetError::Timeout`]; dropping the future aborts it too.

use client_core::{Deposit, NetError, REQUEST_TIMEOUT_MS};
use js_sys::{Promise, Uint8Array};
use mailbox::WRITE_KEY_HEADER;
use mailbox::fetch::{FRAME_HEADER_LEN, decode_response};
use mailbox::hex::encode_32;
use protocol::{Address, BLOB_LEN, WriteKey};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, Headers, ReferrerPolicy, Request, RequestCache, RequestCredentials,
    RequestInit, RequestMode, Response,
};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (window or worker).
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &Request) -> Promise;

    /// The global `setTimeout` (window or worker).
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;

    /// The global `clearTimeout`.
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// Longest error reason read from a mailbox answer (its reasons are a few words).
const MAX_REASON_LEN: usize = 1024;

/// One request's deadline: an `AbortController` that a timer aborts after the deadline.
/// Dropping it clears the timer and aborts whatever is still in flight.
struct Deadline {
    controller: AbortController,
    timer: JsValue,
    _on_expiry: Closure<dyn FnMut()>,
}

impl Deadline {
    fn start(ms: u32) -> Result<Self, NetError> {
        let controller = AbortController::new().map_err(js_unreachable)?;
        let on_expiry = {
            let controller = controller.clone();
            Closure::<dyn FnMut()>::new(move || controller.abort())
        };
        let timer = set_timeout(
            on_expiry.as_ref().unchecked_ref(),
            i32::try_from(ms).unwrap_or(i32::MAX),
        );
        Ok(Deadline {
            controller,
            timer,
            _on_expiry: on_expiry,
        })
    }

    /// The error for a failed step: `Timeout` once the deadline has aborted the request.
    fn error(&self, err: JsValue) -> NetError {
        if self.controller.signal().aborted() {
            NetError::Timeout
        } else {
            js_unreachable(err)
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        clear_timeout(&self.timer);
        self.controller.abort();
    }
}

/// The mailbox API over `fetch`, each request aborted after its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTransport {
    timeout_ms: u32,
}

impl Default for FetchTransport {
    fn default() -> Self {
        FetchTransport {
            timeout_ms: REQUEST_TIMEOUT_MS,
        }
    }
}

impl FetchTransport {
    /// A transport whose requests are aborted after `timeout_ms` (production:
    /// [`REQUEST_TIMEOUT_MS`]; tests shorten it).
    pub fn with_timeout(timeout_ms: u32) -> Self {
        FetchTransport { timeout_ms }
    }

    /// The deadline of every request, in milliseconds.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms
    }

    /// `PUT /v1/m/{address}`: deposits `blob`, authorised by `write_key`; with `put_back`,
    /// under `Mailbox-Put-Back: ?1` (Mailbox API revision 1.3: the very bytes a `DELETE`
    /// removed are stored again).
    pub async fn put(
        &self,
        mailbox: &str,
        write_key: &WriteKey,
        blob: &[u8],
        put_back: bool,
    ) -> Result<Deposit, NetError> {
        let (url, headers) = keyed(mailbox, write_key)?;
        headers
            .set("content-type", "application/octet-stream")
            .map_err(js_unreachable)?;
        if put_back {
            headers
                .set("mailbox-put-back", "?1")
                .map_err(js_unreachable)?;
        }
        let deadline = Deadline::start(self.timeout_ms)?;
        let response = send(&deadline, "PUT", &url, Some(headers), blob).await?;
        match response.status() {
            201 => Ok(Deposit::Stored),
            409 => Ok(Deposit::AlreadyStored),
            410 => Ok(Deposit::Spent),
            _ => Err(status_error(&deadline, &response).await),
        }
    }

    /// `DELETE /v1/m/{address}` (Mailbox API revision 1.1), authorised by `write_key`:
    /// `Ok` on `204`.
    pub async fn delete(&self, mailbox: &str, write_key: &WriteKey) -> Result<(), NetError> {
        let (url, headers) = keyed(mailbox, write_key)?;
        let deadline = Deadline::start(self.timeout_ms)?;
        let response = send(&deadline, "DELETE", &url, Some(headers), &[]).await?;
        match response.status() {
            204 => Ok(()),
            _ => Err(status_error(&deadline, &response).await),
        }
    }

    /// `GET /v1/m/{address}`: the blob stored there, if any; a spent address (`410`: its blob
    /// was read and deleted) is an empty body.
    pub async fn get(&self, mailbox: &str, address: &Address) -> Result<Option<Vec<u8>>, NetError> {
        let url = format!("{}/v1/m/{}", base(mailbox), encode_32(&address.0));
        let deadline = Deadline::start(self.timeout_ms)?;
        let response = send(&deadline, "GET", &url, None, &[]).await?;
        match response.status() {
            200 => Ok(Some(body_bytes(&deadline, &response, BLOB_LEN).await?)),
            404 => Ok(None),
            410 => Ok(Some(Vec::new())),
            _ => Err(status_error(&deadline, &response).await),
        }
    }

    /// `POST /v1/fetch`: the messages held at any of `addresses` (at most 256), in request
    /// order. One request links the addresses in it: the core batches one conversation at a
    /// time.
    pub async fn fetch(
        &self,
        mailbox: &str,
        addresses: &[Address],
    ) -> Result<Vec<(Address, Vec<u8>)>, NetError> {
        let mut body = Vec::with_capacity(addresses.len() * 32);
        for address in addresses {
            body.extend_from_slice(&address.0);
        }
        let url = format!("{}/v1/fetch", base(mailbox));
        let headers = Headers::new().map_err(js_unreachable)?;
        headers
            .set("content-type", "application/octet-stream")
            .map_err(js_unreachable)?;
        let deadline = Deadline::start(self.timeout_ms)?;
        let response = send(&deadline, "POST", &url, Some(headers), &body).await?;
        if response.status() != 200 {
            return Err(status_error(&deadline, &response).await);
        }
        let limit = addresses.len() * (FRAME_HEADER_LEN + BLOB_LEN);
        let bytes = body_bytes(&deadline, &response, limit).await?;
        Ok(decode_response(&bytes)
            .map_err(|_| NetError::Malformed)?
            .into_iter()
            .map(|(address, blob)| (address, blob.to_vec()))
            .collect())
    }
}

impl client_core::Transport for FetchTransport {
    async fn put(
        &self,
        mailbox: &str,
        write_key: &WriteKey,
        blob: &[u8],
    ) -> Result<Deposit, NetError> {
        FetchTransport::put(self, mailbox, write_key, blob, false).await
    }

    async fn put_back(
        &self,
        mailbox: &str,
        write_key: &WriteKey,
        blob: &[u8],
    ) -> Result<Deposit, NetError> {
        FetchTransport::put(self, mailbox, write_key, blob, true).await
    }

    async fn get(&self, mailbox: &str, address: &Address) -> Result<Option<Vec<u8>>, NetError> {
        FetchTransport::get(self, mailbox, address).await
    }

    async fn delete(&self, mailbox: &str, write_key: &WriteKey) -> Result<(), NetError> {
        FetchTransport::delete(self, mailbox, write_key).await
    }

    async fn fetch(
        &self,
        mailbox: &str,
        addresses: &[Address],
    ) -> Result<Vec<(Address, Vec<u8>)>, NetError> {
        FetchTransport::fetch(self, mailbox, addresses).await
    }
}

/// The URL of the address `write_key` authorises, and headers carrying the key.
fn keyed(mailbox: &str, write_key: &WriteKey) -> Result<(String, Headers), NetError> {
    let url = format!(
        "{}/v1/m/{}",
        base(mailbox),
        encode_32(&write_key.address().0)
    );
    let headers = Headers::new().map_err(js_unreachable)?;
    headers
        .set(WRITE_KEY_HEADER, &encode_32(&write_key.0))
        .map_err(js_unreachable)?;
    Ok((url, headers))
}

/// The mailbox's base URL without a trailing slash.
fn base(mailbox: &str) -> &str {
    mailbox.trim_end_matches('/')
}

/// Starts one request under `deadline` and waits for its response head.
async fn send(
    deadline: &Deadline,
    method: &str,
    url: &str,
    headers: Option<Headers>,
    body: &[u8],
) -> Result<Response, NetError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_mode(RequestMode::Cors);
    init.set_credentials(RequestCredentials::Omit);
    init.set_cache(RequestCache::NoStore);
    init.set_referrer_policy(ReferrerPolicy::NoReferrer);
    init.set_signal(Some(&deadline.controller.signal()));
    if let Some(headers) = &headers {
        init.set_headers(headers);
    }
    if !body.is_empty() {
        init.set_body(&Uint8Array::from(body));
    }
    let request = Request::new_with_str_and_init(url, &init).map_err(js_unreachable)?;
    let response = JsFuture::from(global_fetch(&request))
        .await
        .map_err(|e| deadline.error(e))?;
    response.dyn_into::<Response>().map_err(js_unreachable)
}

/// The response body, refused (`Malformed`) when longer than `limit` bytes, so a hostile
/// mailbox cannot make the client copy an unbounded answer into wasm memory.
async fn body_bytes(
    deadline: &Deadline,
    response: &Response,
    limit: usize,
) -> Result<Vec<u8>, NetError> {
    let buffer = JsFuture::from(response.array_buffer().map_err(js_unreachable)?)
        .await
        .map_err(|e| deadline.error(e))?;
    let bytes = Uint8Array::new(&buffer);
    if bytes.length() as usize > limit {
        return Err(NetError::Malformed);
    }
    Ok(bytes.to_vec())
}

async fn status_error(deadline: &Deadline, response: &Response) -> NetError {
    let reason = match body_bytes(deadline, response, MAX_REASON_LEN).await {
        // Mailbox reasons are short ASCII; keep at most 200 characters of anything else.
        Ok(bytes) => String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        Err(_) => String::new(),
    };
    NetError::Status {
        status: response.status(),
        reason,
    }
}

fn js_unreachable(err: JsValue) -> NetError {
    NetError::Unreachable(
        crate::js_error_message(&err).unwrap_or_else(|| "network error".to_owned()),
    )
}

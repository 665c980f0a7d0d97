//! The mailbox API (v1, `docs/MAILBOX-API.md`) over the browser's `fetch`.
//!
//! Requests carry nothing that identifies the user: no credentials or cookies
//! (`credentials: "omit"`), no referrer, no cache; only the addresses, write keys and blobs the
//! protocol produced for this one request.

use js_sys::{Promise, Uint8Array};
use mailbox::WRITE_KEY_HEADER;
use mailbox::fetch::{FRAME_HEADER_LEN, FramingError, decode_response};
use mailbox::hex::encode_32;
use protocol::{Address, BLOB_LEN, WriteKey};
use thiserror::Error;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Headers, ReferrerPolicy, Request, RequestCache, RequestCredentials, RequestInit, RequestMode,
    Response,
};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (window or worker).
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &Request) -> Promise;
}

/// Longest error reason read from a mailbox answer (its reasons are a few words).
const MAX_REASON_LEN: usize = 1024;

/// Why a mailbox request failed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetError {
    /// The mailbox could not be reached (offline, DNS, refused, CORS): retry later.
    #[error("mailbox unreachable: {0}")]
    Unreachable(String),
    /// The mailbox answered with an unexpected status.
    #[error("mailbox answered {status}: {reason}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The mailbox's short reason, if any.
        reason: String,
    },
    /// The mailbox's fetch answer is not validly framed.
    #[error("malformed mailbox response")]
    Malformed,
}

impl NetError {
    /// Whether retrying the same request later may succeed (network trouble or a server-side
    /// condition), as opposed to a request the mailbox will always refuse.
    pub fn is_transient(&self) -> bool {
        match self {
            NetError::Unreachable(_) | NetError::Malformed => true,
            NetError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
        }
    }
}

impl From<FramingError> for NetError {
    fn from(_: FramingError) -> Self {
        NetError::Malformed
    }
}

/// What the mailbox did with a deposit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deposit {
    /// 201: stored now.
    Stored,
    /// 409: a message already sits there — for a retried blob, our own earlier attempt.
    AlreadyStored,
}

/// A mailbox at one base URL (e.g. `https://mailbox.example` or the site's own origin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxClient {
    base: String,
}

impl MailboxClient {
    /// A client for the mailbox at `base` (a trailing slash is ignored).
    pub fn new(base: &str) -> Self {
        MailboxClient {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `PUT /v1/m/{address}`: deposits `blob`, authorised by `write_key`.
    pub async fn put(&self, write_key: &WriteKey, blob: &[u8]) -> Result<Deposit, NetError> {
        let url = format!("{}/v1/m/{}", self.base, encode_32(&write_key.address().0));
        let headers = Headers::new().map_err(js_unreachable)?;
        headers
            .set(WRITE_KEY_HEADER, &encode_32(&write_key.0))
            .map_err(js_unreachable)?;
        headers
            .set("content-type", "application/octet-stream")
            .map_err(js_unreachable)?;
        let response = self.send("PUT", &url, Some(headers), blob).await?;
        match response.status() {
            201 => Ok(Deposit::Stored),
            409 => Ok(Deposit::AlreadyStored),
            _ => Err(status_error(&response).await),
        }
    }

    /// `GET /v1/m/{address}`: the blob stored there, if any.
    pub async fn get(&self, address: &Address) -> Result<Option<Vec<u8>>, NetError> {
        let url = format!("{}/v1/m/{}", self.base, encode_32(&address.0));
        let response = self.send("GET", &url, None, &[]).await?;
        match response.status() {
            200 => Ok(Some(body_bytes(&response, BLOB_LEN).await?)),
            404 => Ok(None),
            _ => Err(status_error(&response).await),
        }
    }

    /// `POST /v1/fetch`: the messages held at any of `addresses` (at most 256), in request
    /// order. One request links the addresses in it: callers batch one conversation at a time.
    pub async fn fetch(&self, addresses: &[Address]) -> Result<Vec<(Address, Vec<u8>)>, NetError> {
        let mut body = Vec::with_capacity(addresses.len() * 32);
        for address in addresses {
            body.extend_from_slice(&address.0);
        }
        let url = format!("{}/v1/fetch", self.base);
        let headers = Headers::new().map_err(js_unreachable)?;
        headers
            .set("content-type", "application/octet-stream")
            .map_err(js_unreachable)?;
        let response = self.send("POST", &url, Some(headers), &body).await?;
        if response.status() != 200 {
            return Err(status_error(&response).await);
        }
        let bytes = body_bytes(&response, addresses.len() * (FRAME_HEADER_LEN + BLOB_LEN)).await?;
        Ok(decode_response(&bytes)?
            .into_iter()
            .map(|(address, blob)| (address, blob.to_vec()))
            .collect())
    }

    async fn send(
        &self,
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
        if let Some(headers) = &headers {
            init.set_headers(headers);
        }
        if !body.is_empty() {
            init.set_body(&Uint8Array::from(body));
        }
        let request = Request::new_with_str_and_init(url, &init).map_err(js_unreachable)?;
        let response = JsFuture::from(global_fetch(&request))
            .await
            .map_err(js_unreachable)?;
        response.dyn_into::<Response>().map_err(js_unreachable)
    }
}

/// The response body, refused (`Malformed`) when longer than `limit` bytes, so a hostile
/// mailbox cannot make the client copy an unbounded answer into wasm memory.
async fn body_bytes(response: &Response, limit: usize) -> Result<Vec<u8>, NetError> {
    let buffer = JsFuture::from(response.array_buffer().map_err(js_unreachable)?)
        .await
        .map_err(js_unreachable)?;
    let bytes = Uint8Array::new(&buffer);
    if bytes.length() as usize > limit {
        return Err(NetError::Malformed);
    }
    Ok(bytes.to_vec())
}

async fn status_error(response: &Response) -> NetError {
    let reason = match body_bytes(response, MAX_REASON_LEN).await {
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

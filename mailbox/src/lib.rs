//! Hush mailbox: stores opaque blobs by exact 32-byte address, nothing more.
//!
//! The HTTP semantics of API v1 (see `docs/MAILBOX-API.md`) live here once, over the small
//! async [`Store`] trait; `mailbox-server` (native, embedded store) and `edge-worker`
//! (Cloudflare Workers KV) are thin hosts that translate their HTTP types to and from
//! [`Request`] and [`Response`] and implement [`Store`]. This crate does no I/O, reads no
//! clock and depends on no runtime.
//!
//! ```
//! use mailbox::{Body, Config, Request, Response};
//!
//! // A host turns its HTTP request into a `Request`, awaits `Mailbox::handle`, and writes
//! // the `Response` back: status, `headers` as given, and `body`.
//! let request = Request { method: "GET", path: "/v1/health", write_key: None, put_back: None, body: Body::Complete(b"") };
//! assert_eq!(request.path, "/v1/health");
//! assert!(Config::default().body_read_limit() >= mailbox::fetch::MAX_FETCH_BODY);
//! let _: Option<Response> = None;
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod counters;
mod error;
pub mod fetch;
pub mod hex;
mod http;
pub mod limits;
mod store;
pub mod subscribe;

pub use counters::{Counters, Outcome};
pub use error::ApiError;
pub use http::{
    Body, COMMON_HEADERS, PREFLIGHT_HEADERS, PUT_BACK_HEADER, Request, Response, WRITE_KEY_HEADER,
};
pub use store::{PutOutcome, Store, StoreError};

use protocol::address::ADDRESS_LEN;
use protocol::{Address, WriteKey};

/// The API version prefix every mailbox route lives under.
pub const API_PREFIX: &str = "/v1";

/// Body of `GET /v1/health`.
pub const HEALTH_BODY: &str = "ok";

/// Default largest message body in bytes: one protocol blob ([`protocol::BLOB_LEN`]).
pub const DEFAULT_MAX_BODY: usize = protocol::BLOB_LEN;

/// Default message lifetime: seven days.
pub const DEFAULT_TTL_SECONDS: u64 = 7 * 24 * 60 * 60;

const HEALTH_PATH: &str = "/v1/health";
const FETCH_PATH: &str = "/v1/fetch";
const MESSAGE_PREFIX: &str = "/v1/m/";
/// Path of the subscription WebSocket (`docs/MAILBOX-API.md`, `GET /v1/subscribe`).
pub const SUBSCRIBE_PATH: &str = "/v1/subscribe";

/// Limits of one mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Largest accepted message body in bytes.
    pub max_body: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

impl Config {
    /// How many body bytes a host must read before it may give up with [`Body::TooLarge`]:
    /// enough for the largest message and the largest fetch batch.
    pub fn body_read_limit(&self) -> usize {
        self.max_body.max(fetch::MAX_FETCH_BODY)
    }
}

/// The routes of API v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Health,
    Fetch,
    Subscribe,
    /// `/v1/m/{address}`, address text not yet validated.
    Message(&'a str),
}

impl<'a> Route<'a> {
    fn parse(path: &'a str) -> Option<Self> {
        match path {
            HEALTH_PATH => Some(Self::Health),
            FETCH_PATH => Some(Self::Fetch),
            SUBSCRIBE_PATH => Some(Self::Subscribe),
            _ => path.strip_prefix(MESSAGE_PREFIX).map(Self::Message),
        }
    }
}

/// The mailbox API over one store.
#[derive(Debug)]
pub struct Mailbox<S> {
    store: S,
    config: Config,
    counters: Counters,
}

impl<S: Store> Mailbox<S> {
    /// A mailbox serving `store` with `config`.
    pub fn new(store: S, config: Config) -> Self {
        Self {
            store,
            config,
            counters: Counters::default(),
        }
    }

    /// The store behind this mailbox.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Outcome counters since start.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Serves one request. Never fails: every error becomes its status response.
    pub async fn handle(&self, request: &Request<'_>) -> Response {
        let result = self.dispatch(request).await;
        let outcome = match &result {
            Ok((_, outcome)) => *outcome,
            Err(err) => error_outcome(err),
        };
        self.counters.record(outcome);
        match result {
            Ok((response, _)) => response,
            Err(err) => error_response(&err),
        }
    }

    async fn dispatch(&self, request: &Request<'_>) -> Result<(Response, Outcome), ApiError> {
        let route = Route::parse(request.path).ok_or(ApiError::NoRoute)?;
        if request.method == "OPTIONS" {
            return Ok((Response::preflight(), Outcome::Other));
        }
        // HEAD is answered wherever GET is, with GET's status and headers; the hosts' HTTP
        // layers send no body for it (hyper and workerd both drop it).
        match (route, request.method) {
            (Route::Health, "GET" | "HEAD") => match self.store.write_health() {
                Ok(()) => Ok((
                    Response::new(200, "text/plain; charset=utf-8", HEALTH_BODY.into()),
                    Outcome::Other,
                )),
                Err(err) => Ok((
                    error_response(&ApiError::WritesFailing(err)),
                    Outcome::Other,
                )),
            },
            (Route::Health, _) => Err(ApiError::MethodNotAllowed {
                allow: "GET, HEAD, OPTIONS",
            }),
            (Route::Message(text), "GET" | "HEAD") => {
                let address = parse_address(text)?;
                match self.store.get(&address).await? {
                    // An empty body is a spent address: its message was read and deleted
                    // (410, so that a sender whose PUT met a 409 can tell; counted as a miss,
                    // the `spent` count being the PUTs refused there).
                    Some(body) if body.is_empty() => {
                        Ok((error_response(&ApiError::Spent), Outcome::Miss))
                    }
                    Some(body) => Ok((Response::octets(200, body), Outcome::Hit)),
                    None => Err(ApiError::NoMessage),
                }
            }
            (Route::Message(text), "PUT") => self.put(text, request).await,
            (Route::Message(text), "DELETE") => self.delete(text, request).await,
            (Route::Message(_), _) => Err(ApiError::MethodNotAllowed {
                allow: "GET, HEAD, PUT, DELETE, OPTIONS",
            }),
            // Hosts answer a WebSocket upgrade themselves (see [`subscribe`]); what reaches
            // here is a plain request.
            (Route::Subscribe, "GET") => Err(ApiError::UpgradeRequired),
            (Route::Subscribe, _) => Err(ApiError::MethodNotAllowed {
                allow: "GET, OPTIONS",
            }),
            (Route::Fetch, "POST") => self.fetch(request.body).await,
            (Route::Fetch, _) => Err(ApiError::MethodNotAllowed {
                allow: "POST, OPTIONS",
            }),
        }
    }

    async fn put(
        &self,
        address_text: &str,
        request: &Request<'_>,
    ) -> Result<(Response, Outcome), ApiError> {
        let (address, key) = keyed_address(address_text, request)?;
        let put_back = match request.put_back {
            None | Some(b"?0") => false,
            Some(b"?1") => true,
            Some(_) => return Err(ApiError::BadPutBack),
        };
        let body = match request.body {
            Body::Complete([]) => return Err(ApiError::EmptyBody),
            Body::Complete(body) if body.len() <= self.config.max_body => body,
            Body::Complete(_) | Body::TooLarge => return Err(ApiError::BodyTooLarge),
            Body::Malformed => return Err(ApiError::MalformedBody),
            Body::TimedOut => return Err(ApiError::BodyTimeout),
        };
        if !key.authorizes(&address) {
            return Err(ApiError::WrongWriteKey);
        }
        let outcome = if put_back {
            self.store.put_back(&address, body).await?
        } else {
            self.store.put_if_absent(&address, body).await?
        };
        match outcome {
            PutOutcome::Stored => Ok((Response::text(201, "stored"), Outcome::Created)),
            PutOutcome::AlreadyExists => Err(ApiError::AlreadyExists),
            PutOutcome::Spent => Err(ApiError::Spent),
        }
    }

    /// `DELETE /v1/m/{address}`: `204` whether or not a message was there, so the answer
    /// says nothing about occupancy that the key holder could not learn by `GET`; a wrong
    /// key is `403` before the store is touched.
    async fn delete(
        &self,
        address_text: &str,
        request: &Request<'_>,
    ) -> Result<(Response, Outcome), ApiError> {
        let (address, key) = keyed_address(address_text, request)?;
        if !key.authorizes(&address) {
            return Err(ApiError::WrongWriteKey);
        }
        self.store.delete(&address).await?;
        Ok((Response::empty(204), Outcome::Deleted))
    }

    async fn fetch(&self, body: Body<'_>) -> Result<(Response, Outcome), ApiError> {
        let body = match body {
            Body::Complete(body) => body,
            Body::TooLarge => return Err(ApiError::BadBatch),
            Body::Malformed => return Err(ApiError::MalformedBody),
            Body::TimedOut => return Err(ApiError::BodyTimeout),
        };
        let addresses = fetch::parse_batch(body).ok_or(ApiError::BadBatch)?;
        let found = self.store.get_many(&addresses).await?;
        let hits = addresses
            .iter()
            .zip(&found)
            .filter_map(|(a, m)| m.as_deref().map(|m| (a, m)));
        let framed = fetch::encode_response(hits);
        self.counters
            .record_fetch(addresses.len(), found.iter().flatten().count());
        Ok((Response::octets(200, framed), Outcome::Fetched))
    }
}

/// The address in a path and the request's `Mailbox-Write-Key`, parsed (checks 1 to 3 of a
/// `PUT` or `DELETE`); whether the key authorizes the address is left to the caller, which
/// for a `PUT` reads the body first.
fn keyed_address(
    address_text: &str,
    request: &Request<'_>,
) -> Result<(Address, WriteKey), ApiError> {
    let address = parse_address(address_text)?;
    let key_text = request.write_key.ok_or(ApiError::MissingWriteKey)?;
    Ok((address, parse_write_key(key_text)?))
}

/// Parses the address in a path: exactly 64 lowercase hex characters.
pub fn parse_address(text: &str) -> Result<Address, ApiError> {
    let mut bytes = [0u8; ADDRESS_LEN];
    if hex::decode_32(text.as_bytes(), &mut bytes) {
        Ok(Address(bytes))
    } else {
        Err(ApiError::BadAddress)
    }
}

/// Parses a `Mailbox-Write-Key` header value: exactly 64 lowercase hex characters, decoded
/// straight into a zeroize-on-drop [`WriteKey`].
pub fn parse_write_key(text: &[u8]) -> Result<WriteKey, ApiError> {
    let mut key = WriteKey([0u8; ADDRESS_LEN]);
    if hex::decode_32(text, &mut key.0) {
        Ok(key)
    } else {
        Err(ApiError::BadWriteKey)
    }
}

fn error_outcome(err: &ApiError) -> Outcome {
    match err {
        ApiError::MalformedBody => return Outcome::BadBody,
        ApiError::BodyTimeout => return Outcome::BodyTimeout,
        ApiError::DiskFull => return Outcome::DiskFull,
        _ => {}
    }
    match err.status_and_reason().0 {
        400 => Outcome::BadRequest,
        403 => Outcome::Forbidden,
        404 if *err == ApiError::NoMessage => Outcome::Miss,
        409 => Outcome::Conflict,
        410 => Outcome::Spent,
        413 => Outcome::TooLarge,
        503 => Outcome::StoreError,
        507 => Outcome::Quota,
        _ => Outcome::Other,
    }
}

/// The response for an error: its status, its short reason, and `Allow` for 405.
pub fn error_response(err: &ApiError) -> Response {
    let (status, reason) = err.status_and_reason();
    let mut response = Response::text(status, reason);
    match err {
        ApiError::MethodNotAllowed { allow } => response.headers.push(("allow", allow)),
        ApiError::UpgradeRequired => response.headers.push(("upgrade", "websocket")),
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests;

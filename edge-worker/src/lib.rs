//! The Hush mailbox as a Cloudflare Worker on Workers KV.
//!
//! Only compiled for `wasm32-unknown-unknown` (built by `cargo xtask build-worker`); natively it
//! is empty. The API semantics come from the `mailbox` crate; this crate only adapts the
//! Workers request and response types and implements [`mailbox::Store`] over the KV binding
//! `MAILBOX`.
//!
//! # Storage layout
//! One KV key per message: the 64 lowercase hex characters of its address. The value is the
//! message, base64-encoded (standard alphabet, padded), because KV's bulk read returns values
//! only as text or JSON. Each value is written with `expiration_ttl` = `MAILBOX_TTL_SECONDS`
//! (at least 60, KV's minimum), so KV itself deletes expired messages.
//!
//! # First write wins, as far as KV allows
//! KV has no put-if-absent. A PUT reads the key and writes only if the read found nothing.
//! Two writers can race in the window between that read and the write becoming visible where
//! the other reads: a few milliseconds in one location, and up to KV's cache TTL (about 60 s)
//! across locations, since KV is eventually consistent. Both writers then get 201 and the
//! last write stays. This is harmless here: a writer must hold the 32-byte write key whose
//! domain-separated SHA-256 is the address, so only the sender of that message can race
//! itself (a retry of the same blob, which changes nothing a reader can tell apart), and a
//! stranger cannot find a live address by guessing (2^256 of them) nor write one they saw.
//!
//! # Keeping misses off KV
//! Clients poll addresses that are mostly empty, and KV bills every read, misses included. A
//! miss is remembered in this location's Cache API for `MAILBOX_MISS_CACHE_SECONDS` (default
//! 60; 0 turns it off), and answered from there without a KV read; a PUT to the address deletes
//! that entry. The Cache API is per location and works on a custom domain (on `workers.dev`
//! its writes are ignored, so every poll reads KV there).
//!
//! # Bounded bodies
//! Request bodies are read from the request's stream chunk by chunk into a
//! [`mailbox::limits::BoundedBody`]: at the limit plus one byte the stream is cancelled and the
//! request answered, whether the client sent `Content-Length` or a chunked body of any size;
//! so a worker never holds more than [`mailbox::Config::body_read_limit`] bytes of a body. A
//! stream that fails (aborted, malformed) or ends short of its `Content-Length` is a `400`.
//!
//! # Configuration (`[vars]` in `wrangler.toml`)
//! - `MAILBOX_TTL_SECONDS`: message lifetime (default 7 days, raised to 60 if lower).
//! - `MAILBOX_MAX_BODY`: largest message in bytes (default [`mailbox::DEFAULT_MAX_BODY`]).
//! - `MAILBOX_MISS_CACHE_SECONDS`: how long a miss is remembered (default 60, 0 = off).
//! - `MAILBOX_LOG_KV_READS`: `"true"` logs one line per request with the number of KV keys
//!   read and KV calls made (counts only), for tests and cost checks.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(target_arch = "wasm32")]
mod worker_entry {
    use std::cell::Cell;
    use std::collections::HashMap;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use futures_util::future::join_all;
    use mailbox::limits::BoundedBody;
    use mailbox::{Body, Config, Mailbox, PutOutcome, Store, StoreError};
    use protocol::Address;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    use worker::{Cache, Context, Env, KvStore, Request, Response, Result, console_log, event};

    /// Name of the KV namespace binding.
    const BINDING: &str = "MAILBOX";
    /// KV refuses shorter lifetimes.
    const MIN_TTL_SECONDS: u64 = 60;
    /// Keys per KV bulk read (the platform's limit).
    const BULK_LIMIT: usize = 100;
    /// Header marking a cached miss.
    const MISS_MARK: &str = "x-mailbox-miss";

    /// Settings read from the environment.
    struct Settings {
        ttl_seconds: u64,
        max_body: usize,
        miss_cache_seconds: u64,
        log_kv_reads: bool,
    }

    impl Settings {
        fn from_env(env: &Env) -> Self {
            let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
            let number = |name: &str| var(name).and_then(|v| v.trim().parse::<u64>().ok());
            Self {
                ttl_seconds: number("MAILBOX_TTL_SECONDS")
                    .unwrap_or(mailbox::DEFAULT_TTL_SECONDS)
                    .max(MIN_TTL_SECONDS),
                max_body: number("MAILBOX_MAX_BODY")
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(mailbox::DEFAULT_MAX_BODY),
                miss_cache_seconds: number("MAILBOX_MISS_CACHE_SECONDS").unwrap_or(60),
                log_kv_reads: var("MAILBOX_LOG_KV_READS").is_some_and(|v| v == "true"),
            }
        }
    }

    /// [`Store`] over Workers KV, with recent misses remembered in the Cache API.
    struct KvMailStore {
        kv: KvStore,
        ttl_seconds: u64,
        /// Origin of the request (`https://host`), the namespace of miss-cache keys.
        origin: String,
        miss_cache_seconds: u64,
        /// KV keys read by this request (what KV bills).
        keys_read: Cell<usize>,
        /// KV read calls made by this request (a bulk read is one call).
        read_calls: Cell<usize>,
    }

    fn kv_key(address: &Address) -> String {
        mailbox::hex::encode_32(&address.0)
    }

    fn kv_failed(_: worker::kv::KvError) -> StoreError {
        console_log!("mailbox: store error: kv");
        StoreError::Unavailable("kv")
    }

    impl KvMailStore {
        fn count_read(&self, keys: usize) {
            self.keys_read.set(self.keys_read.get() + keys);
            self.read_calls.set(self.read_calls.get() + 1);
        }

        fn cache_key(&self, key: &str) -> String {
            format!("{}/v1/m/{key}", self.origin)
        }

        /// Whether a recent miss of `key` is remembered. Cache failures count as "no".
        async fn cached_miss(&self, key: &str) -> bool {
            if self.miss_cache_seconds == 0 {
                return false;
            }
            matches!(
                Cache::default().get(self.cache_key(key), true).await,
                Ok(Some(response)) if response.headers().has(MISS_MARK).unwrap_or(false)
            )
        }

        /// Remembers a miss of `key` for `miss_cache_seconds`. Best effort.
        async fn remember_miss(&self, key: &str) {
            if self.miss_cache_seconds == 0 {
                return;
            }
            let Ok(mut marker) = Response::empty() else {
                return;
            };
            let headers = marker.headers_mut();
            let max_age = format!("max-age={}", self.miss_cache_seconds);
            if headers.set("cache-control", &max_age).is_err()
                || headers.set(MISS_MARK, "1").is_err()
            {
                return;
            }
            let _ = Cache::default().put(self.cache_key(key), marker).await;
        }

        /// Forgets a remembered miss of `key`. Best effort.
        async fn forget_miss(&self, key: &str) {
            if self.miss_cache_seconds > 0 {
                let _ = Cache::default().delete(self.cache_key(key), true).await;
            }
        }

        fn decode(text: &str) -> Result<Vec<u8>, StoreError> {
            BASE64
                .decode(text)
                .map_err(|_| StoreError::Unavailable("kv value"))
        }
    }

    impl Store for KvMailStore {
        async fn put_if_absent(
            &self,
            address: &Address,
            body: &[u8],
        ) -> Result<PutOutcome, StoreError> {
            let key = kv_key(address);
            // Read-then-write: see the crate docs for the race window and why it is harmless.
            self.count_read(1);
            if self.kv.get(&key).text().await.map_err(kv_failed)?.is_some() {
                return Ok(PutOutcome::AlreadyExists);
            }
            self.kv
                .put(&key, BASE64.encode(body))
                .map_err(kv_failed)?
                .expiration_ttl(self.ttl_seconds)
                .execute()
                .await
                .map_err(kv_failed)?;
            self.forget_miss(&key).await;
            Ok(PutOutcome::Stored)
        }

        async fn delete(&self, address: &Address) -> Result<(), StoreError> {
            let key = kv_key(address);
            self.kv.delete(&key).await.map_err(kv_failed)?;
            Ok(())
        }

        async fn get(&self, address: &Address) -> Result<Option<Vec<u8>>, StoreError> {
            let key = kv_key(address);
            if self.cached_miss(&key).await {
                return Ok(None);
            }
            self.count_read(1);
            match self.kv.get(&key).text().await.map_err(kv_failed)? {
                Some(text) => Self::decode(&text).map(Some),
                None => {
                    self.remember_miss(&key).await;
                    Ok(None)
                }
            }
        }

        async fn get_many(
            &self,
            addresses: &[Address],
        ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
            let keys: Vec<String> = addresses.iter().map(kv_key).collect();
            let cached = join_all(keys.iter().map(|k| self.cached_miss(k))).await;
            let mut wanted: Vec<&str> = keys
                .iter()
                .zip(&cached)
                .filter(|(_, miss)| !**miss)
                .map(|(k, _)| k.as_str())
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            let mut found: HashMap<String, Option<String>> = HashMap::new();
            for chunk in wanted.chunks(BULK_LIMIT) {
                self.count_read(chunk.len());
                let values = self.kv.get_bulk(chunk).text().await.map_err(kv_failed)?;
                found.extend(values);
            }
            let misses: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|k| !matches!(found.get(*k), Some(Some(_))))
                .collect();
            join_all(misses.iter().map(|k| self.remember_miss(k))).await;
            keys.iter()
                .map(|k| match found.get(k) {
                    Some(Some(text)) => Self::decode(text).map(Some),
                    _ => Ok(None),
                })
                .collect()
        }
    }

    /// How reading a request body ended.
    enum ReadBody {
        Complete(Vec<u8>),
        TooLarge,
        Malformed,
    }

    /// Reads the request's body stream into a [`BoundedBody`], cancelling the stream at the
    /// limit plus one byte.
    async fn read_body(req: &Request, limit: usize, declared: Option<u64>) -> ReadBody {
        let Ok(mut body) = BoundedBody::new(limit, declared) else {
            return ReadBody::TooLarge;
        };
        let Some(stream) = req.inner().body() else {
            return ReadBody::Complete(Vec::new());
        };
        let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
        loop {
            let Ok(step) = JsFuture::from(reader.read()).await else {
                return ReadBody::Malformed;
            };
            let field = |name: &str| js_sys::Reflect::get(&step, &name.into()).ok();
            if field("done").and_then(|d| d.as_bool()).unwrap_or(true) {
                break;
            }
            let Some(chunk) = field("value").and_then(|v| v.dyn_into::<js_sys::Uint8Array>().ok())
            else {
                return ReadBody::Malformed;
            };
            let room = limit.saturating_sub(body.len());
            if chunk.length() as usize > room {
                // Tell the runtime to stop receiving; nothing more is read or kept.
                let _ = JsFuture::from(reader.cancel()).await;
                return ReadBody::TooLarge;
            }
            if body.push(&chunk.to_vec()).is_err() {
                return ReadBody::TooLarge;
            }
        }
        match declared {
            Some(n) if n != body.len() as u64 => ReadBody::Malformed,
            _ => ReadBody::Complete(body.into_bytes()),
        }
    }

    /// Adapts the Workers request to the mailbox and its answer back.
    #[event(fetch)]
    pub async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
        let settings = Settings::from_env(&env);
        let config = Config {
            max_body: settings.max_body,
        };
        let method = req.method().to_string();
        let path = req.path();
        let write_key = req.headers().get(mailbox::WRITE_KEY_HEADER)?;
        let declared = req
            .headers()
            .get("content-length")?
            .and_then(|v| v.trim().parse::<u64>().ok());
        let read = read_body(&req, config.body_read_limit(), declared).await;
        let body = match &read {
            ReadBody::Complete(b) => Body::Complete(b),
            ReadBody::TooLarge => Body::TooLarge,
            ReadBody::Malformed => Body::Malformed,
        };
        let request = mailbox::Request {
            method: &method,
            path: &path,
            write_key: write_key.as_deref().map(str::as_bytes),
            body,
        };
        let answer = match env.kv(BINDING) {
            Ok(kv) => {
                let origin = req
                    .url()
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default();
                let store = KvMailStore {
                    kv,
                    ttl_seconds: settings.ttl_seconds,
                    origin,
                    miss_cache_seconds: settings.miss_cache_seconds,
                    keys_read: Cell::new(0),
                    read_calls: Cell::new(0),
                };
                let mailbox = Mailbox::new(store, config);
                let answer = mailbox.handle(&request).await;
                if settings.log_kv_reads {
                    let store = mailbox.store();
                    console_log!(
                        "mailbox: kv_keys_read={} kv_read_calls={}",
                        store.keys_read.get(),
                        store.read_calls.get()
                    );
                }
                answer
            }
            Err(_) => {
                console_log!("mailbox: store error: binding {BINDING} missing");
                mailbox::error_response(&mailbox::ApiError::StoreUnavailable("binding"))
            }
        };
        to_worker(answer)
    }

    fn to_worker(answer: mailbox::Response) -> Result<Response> {
        let response = if answer.body.is_empty() {
            Response::empty()?
        } else {
            Response::from_bytes(answer.body)?
        };
        let mut response = response.with_status(answer.status);
        let headers = response.headers_mut();
        for (name, value) in answer.headers {
            headers.set(name, value)?;
        }
        Ok(response)
    }
}

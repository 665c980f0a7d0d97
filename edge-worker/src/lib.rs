//! The Hush mailbox as a Cloudflare Worker over SQLite-backed Durable Objects.
//!
//! Only the Worker parts are compiled for `wasm32-unknown-unknown` (built by `cargo xtask
//! build-worker`); natively the crate holds its pure helpers ([`sharding`], [`ops`],
//! [`alarm`], [`sql::buckets`], [`sql::lookup`]) and their tests. The API semantics come from
//! the `mailbox` crate; this crate adapts the Workers types and implements [`mailbox::Store`]
//! over the shard objects. `docs/EDGE-DEPLOY.md` explains the design and its costs.
//!
//! # Layout
//! - The **front Worker** (`#[event(fetch)]` here) reads each request body into a
//!   [`mailbox::limits::BoundedBody`] (cancelling the stream one byte past
//!   [`mailbox::Config::body_read_limit`], whether the client sent `Content-Length` or a
//!   chunked body of any size), hands the request to [`mailbox::Mailbox`] over the sharded
//!   store, and forwards a `GET /v1/subscribe` WebSocket upgrade to the hub.
//! - The **shards**: `MAILBOX_SHARDS` objects of the Durable Object class `MailboxShard`
//!   (binding `MAILBOX_SHARD`), each holding one range of address prefixes in its SQLite
//!   database, in one table per expiry bucket ([`sql`]), so that expiry drops whole tables
//!   instead of deleting rows. A `PUT` is a look-up in every live bucket and an insert, run
//!   synchronously in the owning shard: exactly one of any number of concurrent writers
//!   gets `201`. A put-back (`Mailbox-Put-Back: ?1`) is the same look-up, then either the
//!   same insert or an update giving a spent row its deleted bytes back. A fetch batch is one
//!   request per shard it touches, all in flight at once, answered in request order.
//! - The **hub** (shard 0) holds every subscription WebSocket with the hibernation API; a
//!   socket's watch set travels in its attachment, so a woken hub knows who watches what.
//!   A `201` in shard 0 is pushed by the hub itself; a `201` in another shard is sent on to
//!   the hub (`notify`) before the client's `201` leaves.
//!
//! # Configuration (`[vars]` in `wrangler.toml`)
//! - `MAILBOX_TTL_SECONDS`: message lifetime (default 7 days, at least 1).
//! - `MAILBOX_MAX_BODY`: largest message in bytes (default [`mailbox::DEFAULT_MAX_BODY`]).
//! - `MAILBOX_SHARDS`: number of shard objects (default 1, at most 256).
//! - `MAILBOX_LOG_OPS`: `"true"` logs one line per request and per WebSocket event with the
//!   billable operations it spent ([`ops::Ops::log_line`]; counts only).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod alarm;
pub mod ops;
pub mod sharding;
pub mod sql;

#[cfg(target_arch = "wasm32")]
mod body;
#[cfg(target_arch = "wasm32")]
mod hub;
#[cfg(target_arch = "wasm32")]
mod settings;
#[cfg(target_arch = "wasm32")]
mod shard;
#[cfg(target_arch = "wasm32")]
mod store;

#[cfg(target_arch = "wasm32")]
mod worker_entry {
    use mailbox::{Body, Config, Mailbox};
    use worker::{Context, Env, Request, Response, Result, console_log, event};

    use crate::body::{ReadBody, read_body};
    use crate::ops::Ops;
    use crate::settings::{SHARD_BINDING, Settings};
    use crate::sharding::{HUB, shard_name};
    use crate::store::{ShardedStore, op, op_url};

    /// Whether `req` asks to open the subscription WebSocket.
    fn is_subscribe_upgrade(req: &Request) -> bool {
        req.path() == mailbox::SUBSCRIBE_PATH
            && req.method() == worker::Method::Get
            && req
                .headers()
                .get("upgrade")
                .ok()
                .flatten()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    }

    /// Hands a WebSocket upgrade to the hub, which accepts it.
    async fn subscribe(req: Request, env: &Env, settings: &Settings) -> Result<Response> {
        let answer = async {
            let namespace = env.durable_object(SHARD_BINDING)?;
            let stub = namespace.get_by_name(&shard_name(HUB, settings.shards))?;
            let forwarded = Request::new_with_init(&op_url(op::SUBSCRIBE), &{
                let mut init = worker::RequestInit::new();
                init.with_headers(req.headers().clone());
                init
            })?;
            stub.fetch_with_request(forwarded).await
        }
        .await;
        if settings.log_ops {
            let ops = Ops {
                do_requests: 1,
                ..Ops::default()
            };
            console_log!("{}", ops.log_line("request"));
        }
        match answer {
            Ok(response) => Ok(response),
            Err(_) => {
                console_log!("mailbox: store error: hub");
                to_worker(mailbox::error_response(
                    &mailbox::ApiError::StoreUnavailable("hub"),
                ))
            }
        }
    }

    /// Adapts the Workers request to the mailbox and its answer back.
    #[event(fetch)]
    pub async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
        let settings = Settings::from_env(&env);
        if is_subscribe_upgrade(&req) {
            return subscribe(req, &env, &settings).await;
        }
        let config = Config {
            max_body: settings.max_body,
        };
        let method = req.method().to_string();
        let path = req.path();
        let write_key = req.headers().get(mailbox::WRITE_KEY_HEADER)?;
        let put_back = req.headers().get(mailbox::PUT_BACK_HEADER)?;
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
            put_back: put_back.as_deref().map(str::as_bytes),
            body,
        };
        let answer = match env.durable_object(SHARD_BINDING) {
            Ok(namespace) => {
                let mailbox =
                    Mailbox::new(ShardedStore::new(namespace, settings.shards, None), config);
                let answer = mailbox.handle(&request).await;
                if settings.log_ops {
                    console_log!("{}", mailbox.store().ops().log_line("request"));
                }
                answer
            }
            Err(_) => {
                console_log!("mailbox: store error: binding {SHARD_BINDING} missing");
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

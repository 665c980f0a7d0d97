//! Hush mailbox: stores opaque blobs by exact 32-byte address, nothing more.
//!
//! The HTTP semantics of API v1 live here once; `mailbox-server` (native, embedded store)
//! and `edge-worker` (Cloudflare Workers KV) are thin hosts around them.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The API version prefix every mailbox route lives under.
pub const API_PREFIX: &str = "/v1";

/// Body of `GET /v1/health`.
pub const HEALTH_BODY: &str = "ok";

//! Settings read from the Worker's environment (`[vars]` in `wrangler.toml`).

use worker::Env;

use crate::sharding::{DEFAULT_SHARDS, MAX_SHARDS, MIN_SHARDS};

/// Name of the Durable Object namespace binding of the store's shards.
pub const SHARD_BINDING: &str = "MAILBOX_SHARD";

/// Shortest message lifetime `MAILBOX_TTL_SECONDS` may set: 1 s (Durable Objects have no
/// minimum; 0 would store messages already expired).
pub const MIN_TTL_SECONDS: u64 = 1;

/// What one Worker or shard object runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Message lifetime in seconds (`MAILBOX_TTL_SECONDS`, default 7 days, at least
    /// [`MIN_TTL_SECONDS`]).
    pub ttl_seconds: u64,
    /// Largest message body in bytes (`MAILBOX_MAX_BODY`, default
    /// [`mailbox::DEFAULT_MAX_BODY`]).
    pub max_body: usize,
    /// Number of shard objects (`MAILBOX_SHARDS`, default 1, clamped to 1..=256).
    pub shards: u32,
    /// Whether each request and WebSocket event logs its billable operations
    /// (`MAILBOX_LOG_OPS = "true"`; counts only).
    pub log_ops: bool,
}

impl Settings {
    /// Reads the settings; a missing or unparsable var takes its default.
    pub fn from_env(env: &Env) -> Self {
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let number = |name: &str| var(name).and_then(|v| v.trim().parse::<u64>().ok());
        Self {
            ttl_seconds: number("MAILBOX_TTL_SECONDS")
                .unwrap_or(mailbox::DEFAULT_TTL_SECONDS)
                .max(MIN_TTL_SECONDS),
            max_body: number("MAILBOX_MAX_BODY")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(mailbox::DEFAULT_MAX_BODY),
            shards: number("MAILBOX_SHARDS")
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(DEFAULT_SHARDS)
                .clamp(MIN_SHARDS, MAX_SHARDS),
            log_ops: var("MAILBOX_LOG_OPS").is_some_and(|v| v == "true"),
        }
    }

    /// Message lifetime in milliseconds.
    pub fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

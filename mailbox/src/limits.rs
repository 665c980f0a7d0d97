//! Every limit a mailbox host enforces on what a client may send or hold, in one place.
//!
//! The API limits (message size, fetch batch) are in [`crate::Config`] and [`crate::fetch`];
//! this module holds the connection-level ones (how long a client may take, how many
//! connections may be open, how many header bytes one may send) and the bounded body reader
//! that both hosts use, so that a later feature holding connections open (subscriptions) takes
//! its caps from here too. Values are plain data: this crate reads no clock and does no I/O;
//! the hosts apply them (`mailbox-server` with hyper's timer and tokio, the edge worker by
//! reading its request stream).

use core::time::Duration;

/// Default for [`ConnectionLimits::header_read_timeout`]: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ConnectionLimits::body_read_timeout`]: 10 s.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ConnectionLimits::idle_timeout`]: 5 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`ConnectionLimits::max_connections`]: 4096 (each costs a file descriptor and
/// roughly 20 KiB of memory while open).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default for [`ConnectionLimits::max_header_bytes`]: 8 KiB. The API's own requests need a
/// few hundred bytes of headers (a browser's CORS request about 600); 8 KiB leaves room for
/// what proxies in front add.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 << 10;

/// How much of a server one client connection may take, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest wait for a complete request head (request line and headers), counted from the
    /// moment the server waits for one: a new connection, or the end of the previous response
    /// on a kept-alive connection. Past it the connection is closed.
    pub header_read_timeout: Duration,
    /// Longest time to receive a whole request body, from the end of its head. Past it the
    /// request is answered `408` and the connection closed.
    pub body_read_timeout: Duration,
    /// A connection with no request being handled on which no byte moved either way for this
    /// long is closed: an idle keep-alive connection, or a client that stopped reading its
    /// response.
    pub idle_timeout: Duration,
    /// Most connections open at once. At the cap, the oldest connection without a request
    /// being handled (idle, or still sending a request head or body) that was accepted at
    /// least a grace ago (500 ms on the native server) is closed to make room; if there is none,
    /// new ones wait in the listen queue.
    pub max_connections: usize,
    /// Most bytes of a request head (request line and headers) the server buffers; a longer
    /// head is answered `431` (`414` if the request line alone is that long) and the
    /// connection closed.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Default for [`SubscriptionLimits::max_subscriptions`]: 16,384 open subscription WebSockets.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 16_384;
/// Default for [`SubscriptionLimits::send_budget`]: 512 KiB queued per connection (about two
/// full snapshots of 256 one-blob records).
pub const DEFAULT_SEND_BUDGET: usize = 512 << 10;
/// Default for [`SubscriptionLimits::unmeasured_send_budget`]: 4 MiB sent per connection
/// between two moments nothing can be waiting (about 3,900 pushes of 1 KiB blobs: an hour or
/// more of the busiest conversation; a snapshot is usually a few records).
pub const DEFAULT_UNMEASURED_SEND_BUDGET: usize = 4 << 20;
/// Default for [`SubscriptionLimits::watch_set_timeout`]: 10 s.
pub const DEFAULT_WATCH_SET_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`SubscriptionLimits::ping_interval`]: 30 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);

/// How much of a host the subscriptions (`GET /v1/subscribe`) may hold. The WebSocket
/// connections they ride on are counted here, not in [`ConnectionLimits::max_connections`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionLimits {
    /// Most subscriptions open at once; one more is accepted and closed at once with
    /// [`crate::subscribe::Close::TooManySubscriptions`].
    pub max_subscriptions: usize,
    /// Most bytes queued to one connection and not yet sent; past it the connection is closed
    /// with [`crate::subscribe::Close::ReaderTooSlow`]
    /// ([`crate::subscribe::SendBudget`]).
    pub send_budget: usize,
    /// For a host that cannot see how much waits to be sent (the edge worker: Workers expose
    /// no `bufferedAmount`): the most bytes of snapshots and pushes it sends one connection
    /// between two moments it knows nothing waits (on the edge, a wake from hibernation);
    /// past it the connection is closed with [`crate::subscribe::Close::ReaderTooSlow`] (the
    /// client reconnects and its snapshot brings back what it missed). A single snapshot
    /// larger than this is still sent on an empty count ([`crate::subscribe::SendBudget`]
    /// without `sent`).
    pub unmeasured_send_budget: usize,
    /// Longest wait for the first watch set after opening, then
    /// [`crate::subscribe::Close::NoWatchSet`].
    pub watch_set_timeout: Duration,
    /// A ping is sent on a connection quiet this long; a connection that does not answer
    /// (no pong, no message) within another interval is dropped.
    pub ping_interval: Duration,
}

impl Default for SubscriptionLimits {
    fn default() -> Self {
        Self {
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            send_budget: DEFAULT_SEND_BUDGET,
            unmeasured_send_budget: DEFAULT_UNMEASURED_SEND_BUDGET,
            watch_set_timeout: DEFAULT_WATCH_SET_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
        }
    }
}

/// The body grew past the limit: the host stops reading and answers with
/// [`crate::Body::TooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("body longer than {limit} bytes")]
pub struct BodyTooLong {
    /// The limit that was passed, in bytes.
    pub limit: usize,
}

/// Collects a request body chunk by chunk and stops at `limit + 1` bytes, so no host ever
/// holds more than `limit` bytes of a body, however it is sent (`Content-Length` or chunked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedBody {
    bytes: Vec<u8>,
    limit: usize,
}

impl BoundedBody {
    /// An empty body that accepts up to `limit` bytes (use
    /// [`crate::Config::body_read_limit`]). `declared` is the `Content-Length`, if any: a
    /// declared length past the limit fails at once, without reading a byte.
    pub fn new(limit: usize, declared: Option<u64>) -> Result<Self, BodyTooLong> {
        match declared {
            Some(n) if n > limit as u64 => Err(BodyTooLong { limit }),
            // Never reserve more than the limit, whatever the client declared.
            Some(n) => Ok(Self {
                bytes: Vec::with_capacity(usize::try_from(n).unwrap_or(limit).min(limit)),
                limit,
            }),
            None => Ok(Self {
                bytes: Vec::new(),
                limit,
            }),
        }
    }

    /// Appends one chunk; fails (keeping nothing of it) once the body would pass the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyTooLong> {
        if chunk.len() > self.limit.saturating_sub(self.bytes.len()) {
            return Err(BodyTooLong { limit: self.limit });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// Bytes collected so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing was collected yet.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The whole body.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_body_stops_at_the_limit_whatever_the_chunking() -> Result<(), BodyTooLong> {
        assert_eq!(
            BoundedBody::new(10, Some(11)).err(),
            Some(BodyTooLong { limit: 10 })
        );
        let mut body = BoundedBody::new(10, None)?;
        assert!(body.push(b"12345").is_ok());
        assert!(body.push(b"12345").is_ok());
        assert_eq!(body.len(), 10);
        assert_eq!(body.push(b"x"), Err(BodyTooLong { limit: 10 }));
        assert_eq!(body.len(), 10, "nothing of a refused chunk is kept");
        let mut big = BoundedBody::new(4, Some(u64::MAX >> 1)).err();
        assert_eq!(big.take(), Some(BodyTooLong { limit: 4 }));
        let declared = BoundedBody::new(1 << 20, Some(3)).map(|b| b.into_bytes().capacity());
        assert_eq!(declared, Ok(3));
        Ok(())
    }

    #[test]
    fn defaults_are_the_documented_values() {
        let l = ConnectionLimits::default();
        assert_eq!(l.header_read_timeout, Duration::from_secs(10));
        assert_eq!(l.body_read_timeout, Duration::from_secs(10));
        assert_eq!(l.idle_timeout, Duration::from_secs(5));
        assert_eq!((l.max_connections, l.max_header_bytes), (4096, 8192));
        let s = SubscriptionLimits::default();
        assert_eq!((s.max_subscriptions, s.send_budget), (16_384, 512 << 10));
        assert_eq!(s.unmeasured_send_budget, 4 << 20);
        assert_eq!(s.watch_set_timeout, Duration::from_secs(10));
        assert_eq!(s.ping_interval, Duration::from_secs(30));
    }
}

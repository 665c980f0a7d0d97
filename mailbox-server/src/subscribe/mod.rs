//! `GET /v1/subscribe`: the subscription WebSocket on the same hyper server as the API
//! (`docs/MAILBOX-API.md`).
//!
//! hyper answers the upgrade (`hyper-tungstenite` builds the `101`), tungstenite does the
//! WebSocket framing, and every semantic decision is the `mailbox` crate's
//! (`mailbox::subscribe`: parsing a watch set, the snapshot, the push frame, the close codes,
//! the watch index and the send budget; `mailbox::limits::SubscriptionLimits`: every cap).
//! What this module adds is the plumbing: [`hub`] (who watches what, each connection's
//! outbox, the cap, shutdown, counts), [`connection`] (one WebSocket's life) and
//! [`Publishing`] (the store wrapper that pushes each stored blob once its `PUT` is durable,
//! before the `201` leaves).
//!
//! An upgraded connection leaves the HTTP connection table (its cap and idle timeout): hyper
//! hands the socket over and the HTTP connection's task ends. It counts against
//! `--max-subscriptions` instead, and its own timeouts apply (watch set, ping, send budget).
//!
//! Privacy: watch sets live in memory only, in the hub, and go with the connection; nothing
//! here logs an address, a body or a client IP: the log line holds counts only.

pub mod connection;
pub mod hub;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper_tungstenite::tungstenite::protocol::WebSocketConfig;
use mailbox::limits::SubscriptionLimits;
use mailbox::subscribe::{MAX_CLIENT_MESSAGE, push_frame};
use mailbox::{Mailbox, PutOutcome, Store, StoreError};
use protocol::Address;

use self::hub::Hub;
use crate::store::DiskStore;

/// The mailbox this server runs: the disk store, publishing what it stores.
pub type HostMailbox = Mailbox<Publishing<DiskStore>>;

/// Bytes tungstenite allocates up front to read one connection's messages (it grows to one
/// client message, [`MAX_CLIENT_MESSAGE`], when a watch set is that large). Small, since many
/// subscriptions are open at once and mostly idle.
const READ_BUFFER: usize = 4 << 10;

/// The WebSocket settings of a subscription for messages of at most `max_body` bytes: client
/// messages and frames capped at [`MAX_CLIENT_MESSAGE`] (a longer one is refused from its
/// frame header, never buffered), small buffers, each message written out at once, and a
/// write buffer that holds at most the largest frame we send (a snapshot of
/// [`mailbox::subscribe::MAX_WATCH_ADDRESSES`] records) plus one control frame. Without that
/// cap, a client that sends pings and reads nothing makes tungstenite queue a pong per ping
/// for ever (an outside review grew the server by 270 MiB in 24 s); with it, tungstenite keeps
/// one pending pong and replaces it.
pub fn websocket_config(max_body: usize) -> WebSocketConfig {
    let largest_frame = mailbox::subscribe::MAX_WATCH_ADDRESSES
        .saturating_mul(mailbox::fetch::FRAME_HEADER_LEN.saturating_add(max_body));
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(largest_frame.saturating_add(CONTROL_FRAME_ROOM))
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
}

/// Room for one control frame (at most 125 bytes of payload, RFC 6455 §5.5) and its header.
const CONTROL_FRAME_ROOM: usize = 256;

/// The subscriptions of this server: the hub and the limits they live by.
#[derive(Clone)]
pub struct Subscriptions {
    /// Who watches what.
    pub hub: Arc<Hub>,
    /// The caps and timeouts.
    pub limits: SubscriptionLimits,
}

impl Subscriptions {
    /// Subscriptions within `limits`.
    pub fn new(limits: SubscriptionLimits) -> Self {
        Self {
            hub: Hub::new(limits.max_subscriptions, limits.send_budget),
            limits,
        }
    }

    /// Accepts `request` as a subscription if it asks for a WebSocket upgrade: answers `101`
    /// and serves the connection once hyper hands it over. `None` for a request without the
    /// upgrade headers (the mailbox answers it `426`).
    pub fn accept(&self, request: &mut Request, mailbox: &Arc<HostMailbox>) -> Option<Response> {
        if !hyper_tungstenite::is_upgrade_request(request) {
            return None;
        }
        let (response, websocket) =
            hyper_tungstenite::upgrade(request, Some(websocket_config(mailbox.config().max_body)))
                .ok()?;
        let hub = Arc::clone(&self.hub);
        let mailbox = Arc::clone(mailbox);
        let limits = self.limits;
        tokio::spawn(async move {
            if let Ok(ws) = websocket.await {
                connection::run(ws, hub, mailbox, limits).await;
            }
        });
        Some(response.map(Body::new))
    }
}

/// A store that pushes every blob it stores to the subscriptions watching its address, once
/// the store has answered `Stored` (on the disk store: durable) and before the caller answers
/// `201`, whether a first write or a put-back stored it; never for a refused PUT
/// (`AlreadyExists`, `Spent`: nothing was stored).
pub struct Publishing<S> {
    inner: S,
    hub: Arc<Hub>,
}

impl<S> Publishing<S> {
    /// `inner`, publishing to `hub`.
    pub fn new(inner: S, hub: Arc<Hub>) -> Self {
        Self { inner, hub }
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Store> Store for Publishing<S> {
    async fn put_if_absent(
        &self,
        address: &Address,
        body: &[u8],
    ) -> Result<PutOutcome, StoreError> {
        let outcome = self.inner.put_if_absent(address, body).await?;
        if outcome == PutOutcome::Stored {
            self.hub.publish(address, || push_frame(address, body));
        }
        Ok(outcome)
    }

    /// Pushes a put-back blob exactly as a first write: once `Stored` (the very bytes that
    /// were deleted are there again), never when refused.
    async fn put_back(&self, address: &Address, body: &[u8]) -> Result<PutOutcome, StoreError> {
        let outcome = self.inner.put_back(address, body).await?;
        if outcome == PutOutcome::Stored {
            self.hub.publish(address, || push_frame(address, body));
        }
        Ok(outcome)
    }

    async fn delete(&self, address: &Address) -> Result<(), StoreError> {
        self.inner.delete(address).await
    }

    async fn get(&self, address: &Address) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(address).await
    }

    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.get_many(addresses).await
    }

    fn write_health(&self) -> Result<(), StoreError> {
        self.inner.write_health()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use hyper::body::Bytes;

    use super::hub::Out;
    use super::*;

    /// A store that answers every PUT with the outcome it is given.
    struct Answers(Cell<PutOutcome>);

    impl Store for Answers {
        async fn put_if_absent(&self, _: &Address, _: &[u8]) -> Result<PutOutcome, StoreError> {
            Ok(self.0.get())
        }
        async fn put_back(&self, _: &Address, _: &[u8]) -> Result<PutOutcome, StoreError> {
            Ok(self.0.get())
        }
        async fn delete(&self, _: &Address) -> Result<(), StoreError> {
            Ok(())
        }
        async fn get(&self, _: &Address) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        async fn get_many(&self, a: &[Address]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
            Ok(vec![None; a.len()])
        }
    }

    #[tokio::test]
    async fn only_a_stored_blob_is_pushed_never_a_refused_or_spent_one() -> Result<(), String> {
        let hub = Hub::new(1, 1 << 10);
        let sub = hub.open().ok_or("room for one")?;
        let address = Address([9; 32]);
        sub.watch(&[address]);
        sub.outbox.snapshot(Bytes::new());
        let store = Publishing::new(Answers(Cell::new(PutOutcome::Spent)), Arc::clone(&hub));
        for outcome in [
            PutOutcome::Spent,
            PutOutcome::AlreadyExists,
            PutOutcome::Stored,
        ] {
            store.inner().0.set(outcome);
            assert_eq!(store.put_if_absent(&address, b"blob").await, Ok(outcome));
        }
        // A put-back (`Mailbox-Put-Back: ?1`) is pushed the same way: only once stored.
        for (outcome, body) in [
            (PutOutcome::Spent, &b"spent"[..]),
            (PutOutcome::AlreadyExists, b"taken"),
            (PutOutcome::Stored, b"back"),
        ] {
            store.inner().0.set(outcome);
            assert_eq!(store.put_back(&address, body).await, Ok(outcome));
        }
        let frames: Vec<_> = std::iter::from_fn(|| sub.outbox.next())
            .filter_map(|out| match out {
                Out::Frame(f) => Some(f.to_vec()),
                Out::Ping => None,
            })
            .collect();
        assert_eq!(
            frames,
            vec![
                Vec::new(),
                push_frame(&address, b"blob"),
                push_frame(&address, b"back")
            ]
        );
        Ok(())
    }
}

//! `GET /v1/subscribe`: the semantics of a subscription WebSocket, written once for both hosts
//! (`docs/MAILBOX-API.md`, "GET /v1/subscribe").
//!
//! A host accepts the WebSocket upgrade with its own machinery (hyper and tungstenite natively,
//! the Durable Object hibernation API on the edge) and then only moves bytes: each client
//! message goes through [`read_client_message`]; each watch set is answered with
//! [`snapshot`]; each stored blob reaches the connections that [`WatchIndex::watchers`] names
//! as [`push_frame`]; a connection that would queue more than its [`SendBudget`] is closed.
//! Every way a subscription ends is a [`Close`] with the code and reason the API documents.
//!
//! Privacy: a watch set links its addresses exactly as one `POST /v1/fetch` of them does. Hosts
//! keep watch sets in memory only (the edge in the socket's attachment and the shard's
//! memory), never log them, and drop them with the connection.

use core::hash::Hash;
use std::collections::HashMap;

use protocol::Address;

use crate::Store;
use crate::fetch;

/// Most addresses in one watch set: the same as one fetch batch.
pub const MAX_WATCH_ADDRESSES: usize = fetch::MAX_FETCH_ADDRESSES;

/// Largest client message in bytes: one watch set of [`MAX_WATCH_ADDRESSES`] addresses.
/// Hosts configure their WebSocket reader with it, so a longer message is never buffered.
pub const MAX_CLIENT_MESSAGE: usize = fetch::MAX_FETCH_BODY;

/// Why a subscription ends: each maps to one WebSocket close code (RFC 6455 §7.4) and the
/// short reason the API documents. Clients branch on the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Close {
    /// A watch set that is empty, not a multiple of 32 bytes, or over 256 addresses (1008).
    #[error("bad watch set")]
    BadWatchSet,
    /// No watch set arrived within [`crate::limits::SubscriptionLimits::watch_set_timeout`]
    /// of opening (1008).
    #[error("no watch set")]
    NoWatchSet,
    /// A text message; the API speaks binary only (1003).
    #[error("binary only")]
    BinaryOnly,
    /// A client message over [`MAX_CLIENT_MESSAGE`] bytes (1009).
    #[error("message too big")]
    MessageTooBig,
    /// The host holds its maximum of open subscriptions (1013).
    #[error("too many subscriptions")]
    TooManySubscriptions,
    /// More than the connection's send budget waited to be sent (1013).
    #[error("reader too slow")]
    ReaderTooSlow,
    /// The host shuts down (1001).
    #[error("going away")]
    GoingAway,
    /// The store failed while reading a snapshot (1011).
    #[error("store unavailable")]
    StoreUnavailable,
}

impl Close {
    /// The WebSocket close code (RFC 6455 §7.4.1; 1013 is IANA's "Try Again Later").
    pub fn code(self) -> u16 {
        match self {
            Self::BadWatchSet | Self::NoWatchSet => 1008,
            Self::BinaryOnly => 1003,
            Self::MessageTooBig => 1009,
            Self::TooManySubscriptions | Self::ReaderTooSlow => 1013,
            Self::GoingAway => 1001,
            Self::StoreUnavailable => 1011,
        }
    }

    /// The close reason sent with the code (ASCII, well under the 123-byte limit).
    pub fn reason(self) -> &'static str {
        match self {
            Self::BadWatchSet => "bad watch set",
            Self::NoWatchSet => "no watch set",
            Self::BinaryOnly => "binary only",
            Self::MessageTooBig => "message too big",
            Self::TooManySubscriptions => "too many subscriptions",
            Self::ReaderTooSlow => "reader too slow",
            Self::GoingAway => "going away",
            Self::StoreUnavailable => "store unavailable",
        }
    }
}

/// One data message from the client, as the host's WebSocket layer delivered it (control
/// frames are the host's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage<'a> {
    /// A binary message: a watch set.
    Binary(&'a [u8]),
    /// A text message of this many bytes: not part of the API.
    Text(usize),
}

/// The watch set in a client message, which replaces the connection's previous one.
///
/// # Errors
/// [`Close::MessageTooBig`] past [`MAX_CLIENT_MESSAGE`] bytes (hosts should also cap their
/// reader there), [`Close::BinaryOnly`] for text, [`Close::BadWatchSet`] for a body that
/// `POST /v1/fetch` would answer `400 bad batch`.
pub fn read_client_message(message: ClientMessage<'_>) -> Result<Vec<Address>, Close> {
    match message {
        ClientMessage::Text(len) if len > MAX_CLIENT_MESSAGE => Err(Close::MessageTooBig),
        ClientMessage::Text(_) => Err(Close::BinaryOnly),
        ClientMessage::Binary(bytes) if bytes.len() > MAX_CLIENT_MESSAGE => {
            Err(Close::MessageTooBig)
        }
        ClientMessage::Binary(bytes) => fetch::parse_batch(bytes).ok_or(Close::BadWatchSet),
    }
}

/// The first message after a watch set: every blob stored at its addresses now, in the
/// framing of a fetch response (empty when there is none). A host registers the watch set
/// in its [`WatchIndex`] *before* reading the snapshot, so a blob stored in between is
/// pushed, snapshotted, or both, never neither.
///
/// # Errors
/// [`Close::StoreUnavailable`] when the store fails.
pub async fn snapshot<S: Store>(store: &S, watch: &[Address]) -> Result<Vec<u8>, Close> {
    let found = store
        .get_many(watch)
        .await
        .map_err(|_| Close::StoreUnavailable)?;
    let hits = watch
        .iter()
        .zip(&found)
        .filter_map(|(a, m)| m.as_deref().map(|m| (a, m)));
    Ok(fetch::encode_response(hits))
}

/// The message pushing one blob just stored at `address`: one fetch-response record.
pub fn push_frame(address: &Address, body: &[u8]) -> Vec<u8> {
    fetch::encode_response([(address, body)])
}

/// Which connections watch which addresses: the in-memory index a host consults after each
/// stored blob. `Id` names a connection. Memory: one entry per watched address and one per
/// connection, so at most [`MAX_WATCH_ADDRESSES`] entries per connection.
#[derive(Debug)]
pub struct WatchIndex<Id> {
    by_address: HashMap<[u8; 32], Vec<Id>>,
    by_connection: HashMap<Id, Vec<Address>>,
}

impl<Id> Default for WatchIndex<Id> {
    fn default() -> Self {
        Self {
            by_address: HashMap::new(),
            by_connection: HashMap::new(),
        }
    }
}

impl<Id: Copy + Eq + Hash> WatchIndex<Id> {
    /// Makes `watch` the whole watch set of `connection`, replacing what it watched before.
    /// Duplicate addresses in `watch` are watched once.
    pub fn replace(&mut self, connection: Id, watch: &[Address]) {
        self.remove(connection);
        let mut kept: Vec<Address> = Vec::with_capacity(watch.len());
        for address in watch {
            if kept.iter().any(|a| a.0 == address.0) {
                continue;
            }
            self.by_address
                .entry(address.0)
                .or_default()
                .push(connection);
            kept.push(*address);
        }
        self.by_connection.insert(connection, kept);
    }

    /// Forgets `connection` and everything it watched.
    pub fn remove(&mut self, connection: Id) {
        let Some(old) = self.by_connection.remove(&connection) else {
            return;
        };
        for address in old {
            if let Some(ids) = self.by_address.get_mut(&address.0) {
                ids.retain(|id| *id != connection);
                if ids.is_empty() {
                    self.by_address.remove(&address.0);
                }
            }
        }
    }

    /// The connections watching `address` (each once).
    pub fn watchers(&self, address: &Address) -> &[Id] {
        self.by_address
            .get(&address.0)
            .map_or(&[], |ids| ids.as_slice())
    }

    /// How many connections have a watch set.
    pub fn connections(&self) -> usize {
        self.by_connection.len()
    }

    /// How many distinct addresses are watched.
    pub fn addresses(&self) -> usize {
        self.by_address.len()
    }
}

/// Bytes queued to one connection and not yet sent, against
/// [`crate::limits::SubscriptionLimits::send_budget`]: a reader that stops reading is closed
/// with [`Close::ReaderTooSlow`] instead of growing the host's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBudget {
    queued: usize,
    budget: usize,
}

impl SendBudget {
    /// An empty queue allowed `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self { queued: 0, budget }
    }

    /// Accounts a message of `len` bytes about to be queued.
    ///
    /// # Errors
    /// [`Close::ReaderTooSlow`] if the queue would pass the budget; nothing is accounted then.
    /// A single message larger than the whole budget is still allowed on an empty queue (a
    /// snapshot can be up to 256 records).
    pub fn queue(&mut self, len: usize) -> Result<(), Close> {
        if self.queued > 0 && self.queued.saturating_add(len) > self.budget {
            return Err(Close::ReaderTooSlow);
        }
        self.queued = self.queued.saturating_add(len);
        Ok(())
    }

    /// Accounts a message of `len` bytes handed to the socket.
    pub fn sent(&mut self, len: usize) {
        self.queued = self.queued.saturating_sub(len);
    }

    /// Bytes queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> Address {
        Address([i; 32])
    }

    #[test]
    fn close_codes_are_the_documented_ones() {
        let all = [
            (Close::BadWatchSet, 1008, "bad watch set"),
            (Close::NoWatchSet, 1008, "no watch set"),
            (Close::BinaryOnly, 1003, "binary only"),
            (Close::MessageTooBig, 1009, "message too big"),
            (Close::TooManySubscriptions, 1013, "too many subscriptions"),
            (Close::ReaderTooSlow, 1013, "reader too slow"),
            (Close::GoingAway, 1001, "going away"),
            (Close::StoreUnavailable, 1011, "store unavailable"),
        ];
        for (close, code, reason) in all {
            assert_eq!((close.code(), close.reason()), (code, reason));
            assert_eq!(close.to_string(), reason);
        }
    }

    #[test]
    fn client_messages_parse_like_a_fetch_body() {
        let two: Vec<u8> = [[1u8; 32], [2u8; 32]].concat();
        assert_eq!(
            read_client_message(ClientMessage::Binary(&two)),
            Ok(vec![addr(1), addr(2)])
        );
        assert_eq!(
            read_client_message(ClientMessage::Binary(&[])),
            Err(Close::BadWatchSet)
        );
        assert_eq!(
            read_client_message(ClientMessage::Binary(&[0; 33])),
            Err(Close::BadWatchSet)
        );
        let max = vec![7u8; MAX_CLIENT_MESSAGE];
        assert_eq!(
            read_client_message(ClientMessage::Binary(&max)).map(|w| w.len()),
            Ok(MAX_WATCH_ADDRESSES)
        );
        let over = vec![7u8; MAX_CLIENT_MESSAGE + 32];
        assert_eq!(
            read_client_message(ClientMessage::Binary(&over)),
            Err(Close::MessageTooBig)
        );
        assert_eq!(
            read_client_message(ClientMessage::Text(5)),
            Err(Close::BinaryOnly)
        );
        assert_eq!(
            read_client_message(ClientMessage::Text(MAX_CLIENT_MESSAGE + 1)),
            Err(Close::MessageTooBig)
        );
    }

    #[test]
    fn watch_sets_replace_and_forget() {
        let mut index = WatchIndex::default();
        index.replace(1u32, &[addr(1), addr(2), addr(2)]);
        index.replace(2u32, &[addr(2), addr(3)]);
        assert_eq!(index.watchers(&addr(1)), &[1]);
        assert_eq!(
            index.watchers(&addr(2)),
            &[1, 2],
            "a duplicate is watched once"
        );
        index.replace(1, &[addr(3)]);
        assert_eq!(index.watchers(&addr(1)), &[] as &[u32]);
        assert_eq!(index.watchers(&addr(2)), &[2]);
        assert_eq!(index.watchers(&addr(3)), &[2, 1]);
        index.remove(2);
        index.remove(2);
        assert_eq!(index.watchers(&addr(2)), &[] as &[u32]);
        assert_eq!((index.connections(), index.addresses()), (1, 1));
        index.remove(1);
        assert_eq!((index.connections(), index.addresses()), (0, 0));
    }

    #[test]
    fn the_send_budget_closes_a_reader_that_stops_reading() {
        let mut budget = SendBudget::new(100);
        assert_eq!(
            budget.queue(300),
            Ok(()),
            "one big snapshot on an empty queue"
        );
        assert_eq!(budget.queue(1), Err(Close::ReaderTooSlow));
        budget.sent(300);
        assert_eq!(budget.queue(60), Ok(()));
        assert_eq!(budget.queue(40), Ok(()));
        assert_eq!(budget.queue(1), Err(Close::ReaderTooSlow));
        assert_eq!(budget.queued(), 100);
    }

    #[test]
    fn a_push_is_one_fetch_record() {
        let frame = push_frame(&addr(9), b"blob");
        assert_eq!(
            fetch::decode_response(&frame),
            Ok(vec![(addr(9), &b"blob"[..])])
        );
    }
}

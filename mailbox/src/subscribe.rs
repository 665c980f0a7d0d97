//! `GET /v1/subscribe`: the semantics of a subscription WebSocket, written once for both hosts
//! (`docs/MAILBOX-API.md`, "GET /v1/subscribe").
//!
//! A host accepts the WebSocket upgrade with its own machinery (hyper and tungstenite natively,
//! the Durable Object hibernation API on the edge) and then only moves bytes: each client
//! message goes through [`read_client_message`], which tells a watch set from a delete
//! message ([`FromClient`]); each watch set is answered with [`snapshot`]; each delete
//! message is carried out by [`delete`] and answered with nothing; each stored blob reaches
//! the connections that [`WatchIndex::watchers`] names as [`push_frame`]; a connection that
//! would queue more than its [`SendBudget`] is closed. Every way a subscription ends is a
//! [`Close`] with the code and reason the API documents.
//!
//! Privacy: a watch set links its addresses exactly as one `POST /v1/fetch` of them does. Hosts
//! keep watch sets in memory only (the edge in the socket's attachment and the shard's
//! memory), never log them, and drop them with the connection. A delete message's write keys
//! are hashed into their addresses as it is parsed and never kept; hosts count deletions,
//! never log a key or an address.

use core::hash::Hash;
use std::collections::HashMap;

use protocol::address::ADDRESS_LEN;
use protocol::{Address, WriteKey};

use crate::Store;
use crate::fetch;

/// Most addresses in one watch set: the same as one fetch batch.
pub const MAX_WATCH_ADDRESSES: usize = fetch::MAX_FETCH_ADDRESSES;

/// Largest client message in bytes: one watch set of [`MAX_WATCH_ADDRESSES`] addresses.
/// Hosts configure their WebSocket reader with it, so a longer message is never buffered.
pub const MAX_CLIENT_MESSAGE: usize = fetch::MAX_FETCH_BODY;

/// First byte of a delete message: ASCII `D`.
pub const DELETE_TAG: u8 = 0x44;

/// Most write keys in one delete message.
pub const MAX_DELETE_KEYS: usize = 64;

/// Largest delete message in bytes: the tag and [`MAX_DELETE_KEYS`] keys (2,049).
pub const MAX_DELETE_MESSAGE: usize = 1 + MAX_DELETE_KEYS * ADDRESS_LEN;

/// Why a subscription ends: each maps to one WebSocket close code (RFC 6455 §7.4) and the
/// short reason the API documents. Clients branch on the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Close {
    /// A watch set that is empty, not a multiple of 32 bytes, or over 256 addresses (1008).
    #[error("bad watch set")]
    BadWatchSet,
    /// A message of `1 + 32·k` bytes that is not a delete message: its first byte is not
    /// [`DELETE_TAG`], or `k` is 0 or over [`MAX_DELETE_KEYS`] (1008).
    #[error("bad delete")]
    BadDelete,
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
    /// The store failed while reading a snapshot or carrying out a delete message (1011).
    #[error("store unavailable")]
    StoreUnavailable,
}

impl Close {
    /// The WebSocket close code (RFC 6455 §7.4.1; 1013 is IANA's "Try Again Later").
    pub fn code(self) -> u16 {
        match self {
            Self::BadWatchSet | Self::BadDelete | Self::NoWatchSet => 1008,
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
            Self::BadDelete => "bad delete",
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
    /// A binary message: a watch set or a delete message.
    Binary(&'a [u8]),
    /// A text message of this many bytes: not part of the API.
    Text(usize),
}

/// What a valid client message asks for. Hosts handle them one at a time, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromClient {
    /// A watch set (a length that is a multiple of 32), which replaces the connection's
    /// previous one and is answered with its [`snapshot`].
    Watch(Vec<Address>),
    /// A delete message (a length of `1 + 32·k`), carried out by [`delete`] and answered
    /// with nothing.
    Delete(Deletes),
}

/// The addresses of a delete message's write keys, in the order sent: each is
/// `SHA-256("hush/v1/address" ‖ key)`, so the key authorizes it by construction and a
/// delete here is what `DELETE /v1/m/{address}` with that key does. Only
/// [`read_client_message`] makes one; the keys themselves are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletes {
    addresses: Vec<Address>,
}

impl Deletes {
    /// The addresses to delete, in the order their keys were sent (1 to
    /// [`MAX_DELETE_KEYS`]).
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// Parses a message whose length is `1 + 32·k`: [`DELETE_TAG`], then `k` keys with
    /// `1 <= k <= MAX_DELETE_KEYS`.
    fn parse(bytes: &[u8]) -> Result<Self, Close> {
        let Some((&DELETE_TAG, keys)) = bytes.split_first() else {
            return Err(Close::BadDelete);
        };
        let count = keys.len() / ADDRESS_LEN;
        if count == 0 || count > MAX_DELETE_KEYS || !keys.len().is_multiple_of(ADDRESS_LEN) {
            return Err(Close::BadDelete);
        }
        let addresses = keys
            .chunks_exact(ADDRESS_LEN)
            .map(|chunk| {
                let mut key = WriteKey([0u8; ADDRESS_LEN]);
                key.0.copy_from_slice(chunk);
                key.address()
            })
            .collect();
        Ok(Self { addresses })
    }
}

/// What a client message asks for. Binary messages are told apart by length: a multiple of
/// 32 is a watch set (in the body format of `POST /v1/fetch`), `1 + 32·k` a delete message.
///
/// # Errors
/// [`Close::MessageTooBig`] past [`MAX_CLIENT_MESSAGE`] bytes (hosts should also cap their
/// reader there), [`Close::BinaryOnly`] for text, [`Close::BadDelete`] for a length of
/// `1 + 32·k` that is no delete message (see [`Close::BadDelete`]), [`Close::BadWatchSet`]
/// for any other length that `POST /v1/fetch` would answer `400 bad batch`.
pub fn read_client_message(message: ClientMessage<'_>) -> Result<FromClient, Close> {
    match message {
        ClientMessage::Text(len) if len > MAX_CLIENT_MESSAGE => Err(Close::MessageTooBig),
        ClientMessage::Text(_) => Err(Close::BinaryOnly),
        ClientMessage::Binary(bytes) if bytes.len() > MAX_CLIENT_MESSAGE => {
            Err(Close::MessageTooBig)
        }
        ClientMessage::Binary(bytes) if bytes.len() % ADDRESS_LEN == 1 => {
            Deletes::parse(bytes).map(FromClient::Delete)
        }
        ClientMessage::Binary(bytes) => fetch::parse_batch(bytes)
            .map(FromClient::Watch)
            .ok_or(Close::BadWatchSet),
    }
}

/// Carries out a delete message: for each address in order, what `DELETE /v1/m/{address}`
/// with its key does ([`Store::delete`]: a live message is deleted and its address stays
/// spent until the message's own expiry; an address without one is left as it is). Nothing
/// is sent back, whatever was stored. Returns how many addresses were handled (for counts).
///
/// # Errors
/// [`Close::StoreUnavailable`] when the store fails; the addresses before the failing one
/// are deleted, the ones after it are not tried.
pub async fn delete<S: Store>(store: &S, deletes: &Deletes) -> Result<usize, Close> {
    for address in deletes.addresses() {
        store
            .delete(address)
            .await
            .map_err(|_| Close::StoreUnavailable)?;
    }
    Ok(deletes.addresses().len())
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
            (Close::BadDelete, 1008, "bad delete"),
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
            Ok(FromClient::Watch(vec![addr(1), addr(2)]))
        );
        assert_eq!(
            read_client_message(ClientMessage::Binary(&[])),
            Err(Close::BadWatchSet)
        );
        assert_eq!(
            read_client_message(ClientMessage::Binary(&[0; 34])),
            Err(Close::BadWatchSet)
        );
        let max = vec![7u8; MAX_CLIENT_MESSAGE];
        assert!(matches!(
            read_client_message(ClientMessage::Binary(&max)),
            Ok(FromClient::Watch(w)) if w.len() == MAX_WATCH_ADDRESSES
        ));
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

    /// A delete message of these keys.
    fn delete_message(keys: &[[u8; 32]]) -> Vec<u8> {
        let mut message = vec![DELETE_TAG];
        for key in keys {
            message.extend_from_slice(key);
        }
        message
    }

    fn deletes_of(bytes: &[u8]) -> Result<Vec<Address>, Close> {
        match read_client_message(ClientMessage::Binary(bytes))? {
            FromClient::Delete(deletes) => Ok(deletes.addresses().to_vec()),
            FromClient::Watch(_) => Err(Close::BadWatchSet),
        }
    }

    #[test]
    fn a_delete_message_is_the_tag_then_1_to_64_keys_each_read_as_its_address() {
        assert_eq!(DELETE_TAG, b'D');
        assert_eq!(MAX_DELETE_MESSAGE, 2_049);
        let one = [5u8; 32];
        assert_eq!(
            deletes_of(&delete_message(&[one])),
            Ok(vec![WriteKey(one).address()]),
            "the address of the key, not the key"
        );
        let keys: Vec<[u8; 32]> = (0..MAX_DELETE_KEYS as u8).map(|i| [i; 32]).collect();
        let most = delete_message(&keys);
        assert_eq!(most.len(), MAX_DELETE_MESSAGE);
        let want: Vec<Address> = keys.iter().map(|k| WriteKey(*k).address()).collect();
        assert_eq!(deletes_of(&most), Ok(want), "64 keys, in the order sent");
        let twice = delete_message(&[one, [6; 32], one]);
        assert_eq!(
            deletes_of(&twice).map(|a| a.len()),
            Ok(3),
            "a key sent twice is deleted twice (the second changes nothing)"
        );
    }

    #[test]
    fn a_bad_delete_message_closes_bad_delete() {
        let bad_tag = [&b"d"[..], &[1; 32]].concat();
        assert_eq!(deletes_of(&bad_tag), Err(Close::BadDelete), "bad tag");
        assert_eq!(
            deletes_of(&[0x01; 33]),
            Err(Close::BadDelete),
            "33 bytes is a delete message's length, not a watch set's"
        );
        assert_eq!(deletes_of(&[DELETE_TAG]), Err(Close::BadDelete), "k = 0");
        assert_eq!(deletes_of(&[0]), Err(Close::BadDelete), "1 byte, bad tag");
        let keys: Vec<[u8; 32]> = vec![[9; 32]; MAX_DELETE_KEYS + 1];
        let too_many = delete_message(&keys);
        assert_eq!(too_many.len(), 2_081);
        assert_eq!(deletes_of(&too_many), Err(Close::BadDelete), "k = 65");
        let longest_1_mod_32 = vec![DELETE_TAG; MAX_CLIENT_MESSAGE - 31];
        assert_eq!(
            deletes_of(&longest_1_mod_32),
            Err(Close::BadDelete),
            "k = 255"
        );
        assert_eq!(Close::BadDelete.code(), 1008);
        assert_eq!(Close::BadDelete.reason(), "bad delete");
    }

    #[test]
    fn only_lengths_of_1_mod_32_are_read_as_delete_messages() {
        for len in 1..=MAX_CLIENT_MESSAGE {
            let message = [&[DELETE_TAG][..], &vec![3; len - 1]].concat();
            let read = read_client_message(ClientMessage::Binary(&message));
            let want = match (len % 32, len / 32) {
                (1, k) if (1..=MAX_DELETE_KEYS).contains(&k) => "delete",
                (1, _) => "bad delete",
                (0, _) => "watch",
                _ => "bad watch set",
            };
            let got = match read {
                Ok(FromClient::Delete(d)) if d.addresses().len() == len / 32 => "delete",
                Ok(FromClient::Watch(w)) if w.len() == len / 32 => "watch",
                Err(Close::BadDelete) => "bad delete",
                Err(Close::BadWatchSet) => "bad watch set",
                _ => "other",
            };
            assert_eq!(got, want, "{len} bytes");
        }
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

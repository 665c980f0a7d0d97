//! The subscriptions held by the hub object (shard [`crate::sharding::HUB`]): which
//! WebSocket watches what, in memory, rebuilt from the sockets' attachments whenever the
//! object wakes from hibernation.
//!
//! Each accepted WebSocket carries an attachment (kept by the runtime across hibernation, in
//! memory only, never on disk) that is a JS object
//! `{ id: number, opened: number /* ms since the epoch */, watch?: Uint8Array }`: `watch` is
//! the current watch set's bytes (the body of the client's last valid message, 32..=8192
//! bytes; workerd takes attachments that large). Watch sets are never written to storage.

use std::collections::{HashMap, VecDeque};

use mailbox::limits::SubscriptionLimits;
use mailbox::subscribe::{Close, FromClient, SendBudget, WatchIndex};
use protocol::Address;
use wasm_bindgen::JsValue;
use worker::WebSocket;
use worker::worker_sys::ext::WebSocketExt;

/// Most watch sets of one connection waiting while an earlier message of it is handled with
/// requests to other shards (only with `MAILBOX_SHARDS` > 1; a single shard handles each at
/// once). One more closes the connection with `1013 reader too slow`: the client sends
/// faster than it is answered.
pub const MAX_QUEUED_WATCH_SETS: usize = 4;

/// Most delete messages of one connection waiting likewise (each holds at most
/// [`mailbox::subscribe::MAX_DELETE_KEYS`] addresses, 2 KiB); one more closes the connection
/// with `1013 reader too slow`. More than watch sets, since a client that read many blobs
/// sends several delete messages at once.
pub const MAX_QUEUED_DELETES: usize = 16;

/// One subscription WebSocket.
pub struct Conn {
    /// The server end.
    pub ws: WebSocket,
    /// When it was accepted, ms since the Unix epoch.
    pub opened: f64,
    /// Whether a watch set arrived.
    pub watching: bool,
    /// Bytes of snapshots and pushes sent since this instance woke, against
    /// [`SubscriptionLimits::unmeasured_send_budget`]. Workers cannot tell how much of it
    /// still waits to be sent; after a wake from hibernation nothing does, so the count
    /// starts again with the hub.
    sent: SendBudget,
    /// While a snapshot of this connection is being read: the pushes that arrived meanwhile,
    /// sent right after the snapshot (the API orders pushes after their watch set's
    /// snapshot). `None` when no snapshot is in flight.
    held: Option<Vec<Vec<u8>>>,
}

impl Conn {
    fn new(ws: WebSocket, opened: f64, watching: bool) -> Conn {
        Conn {
            ws,
            opened,
            watching,
            sent: SendBudget::new(SubscriptionLimits::default().unmeasured_send_budget),
            held: None,
        }
    }
}

/// What became of a push to one connection.
pub enum Delivery {
    /// Handed to the socket.
    Sent,
    /// Held until the connection's snapshot in flight is sent.
    Held,
    /// Not sent: the connection is gone, or the socket refused it.
    Dropped,
    /// Not sent: it would pass the connection's send budget; the caller closes the socket
    /// with [`Close::ReaderTooSlow`].
    OverBudget(WebSocket),
}

/// What a socket's attachment holds (see the module docs).
pub struct Attachment {
    /// The hub's id of the socket.
    pub id: u32,
    /// When it was accepted, ms since the Unix epoch.
    pub opened: f64,
    /// The watch set's bytes, once one arrived.
    pub watch: Option<Vec<u8>>,
}

fn set(object: &js_sys::Object, key: &str, value: &JsValue) -> Result<(), JsValue> {
    js_sys::Reflect::set(object, &key.into(), value).map(drop)
}

fn get(object: &JsValue, key: &str) -> Option<JsValue> {
    js_sys::Reflect::get(object, &key.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

impl Attachment {
    /// Stores this attachment on `ws`. Fails if the runtime refuses it (too large).
    pub fn write(&self, ws: &WebSocket) -> Result<(), JsValue> {
        let object = js_sys::Object::new();
        set(&object, "id", &JsValue::from(self.id))?;
        set(&object, "opened", &JsValue::from(self.opened))?;
        if let Some(watch) = &self.watch {
            set(
                &object,
                "watch",
                &js_sys::Uint8Array::from(watch.as_slice()).into(),
            )?;
        }
        ws.as_ref().serialize_attachment(object.into())
    }

    /// The attachment of `ws`, if it has a well-formed one.
    pub fn read(ws: &WebSocket) -> Option<Attachment> {
        let value = ws.as_ref().deserialize_attachment().ok()?;
        let id = get(&value, "id")?.as_f64()?;
        if !(0.0..=f64::from(u32::MAX)).contains(&id) || id.fract() != 0.0 {
            return None;
        }
        Some(Attachment {
            id: id as u32,
            opened: get(&value, "opened")?.as_f64()?,
            watch: get(&value, "watch").map(|w| js_sys::Uint8Array::new(&w).to_vec()),
        })
    }
}

/// How a new client message (a watch set or a delete message) is taken in.
pub enum Enqueued {
    /// Nothing is being handled for this connection: handle this one now.
    Start(FromClient),
    /// Another is being handled; this one waits its turn.
    Queued,
    /// Too many of its kind wait already ([`MAX_QUEUED_WATCH_SETS`],
    /// [`MAX_QUEUED_DELETES`]).
    Overflow,
}

/// The hub's subscriptions. Memory: per connection one [`Conn`] and at most 256 index entries,
/// plus what it was sent and the runtime may still hold: at most
/// [`SubscriptionLimits::unmeasured_send_budget`] (or one larger snapshot) since the wake.
#[derive(Default)]
pub struct Hub {
    /// Which connection watches which address.
    pub index: WatchIndex<u32>,
    /// The connections by id.
    pub conns: HashMap<u32, Conn>,
    /// Client messages waiting behind the one being handled, by connection, in the order
    /// sent; a connection is a key while one of its messages is being handled.
    busy: HashMap<u32, VecDeque<FromClient>>,
    next_id: u32,
}

impl Hub {
    /// The hub as the runtime's accepted `sockets` describe it (after a wake from
    /// hibernation): watch sets from the attachments. Sockets without a readable attachment
    /// are left out (and closed by their next event).
    pub fn rebuild(sockets: Vec<WebSocket>) -> Hub {
        let mut hub = Hub::default();
        for ws in sockets {
            let Some(attachment) = Attachment::read(&ws) else {
                continue;
            };
            let watch = attachment
                .watch
                .as_deref()
                .and_then(mailbox::fetch::parse_batch);
            if let Some(watch) = &watch {
                hub.index.replace(attachment.id, watch);
            }
            hub.next_id = hub.next_id.max(attachment.id.wrapping_add(1));
            hub.conns.insert(
                attachment.id,
                Conn::new(ws, attachment.opened, watch.is_some()),
            );
        }
        hub
    }

    /// Registers a newly accepted socket and writes its attachment; returns its id.
    pub fn add(&mut self, ws: WebSocket, opened: f64) -> Result<u32, JsValue> {
        let mut id = self.next_id;
        while self.conns.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        Attachment {
            id,
            opened,
            watch: None,
        }
        .write(&ws)?;
        self.conns.insert(id, Conn::new(ws, opened, false));
        Ok(id)
    }

    /// Takes in a client message of connection `id` (see [`Enqueued`]): messages of one
    /// connection are handled one at a time, in the order sent.
    pub fn enqueue(&mut self, id: u32, message: FromClient) -> Enqueued {
        match self.busy.get_mut(&id) {
            None => {
                self.busy.insert(id, VecDeque::new());
                Enqueued::Start(message)
            }
            Some(queue) => {
                let limit = match &message {
                    FromClient::Watch(_) => MAX_QUEUED_WATCH_SETS,
                    FromClient::Delete(_) => MAX_QUEUED_DELETES,
                };
                let kind = core::mem::discriminant(&message);
                let waiting = queue
                    .iter()
                    .filter(|m| core::mem::discriminant(*m) == kind)
                    .count();
                if waiting >= limit {
                    return Enqueued::Overflow;
                }
                queue.push_back(message);
                Enqueued::Queued
            }
        }
    }

    /// The next waiting message of connection `id`, or `None` (and the connection is no
    /// longer busy).
    pub fn next_queued(&mut self, id: u32) -> Option<FromClient> {
        let next = self.busy.get_mut(&id).and_then(VecDeque::pop_front);
        if next.is_none() {
            self.busy.remove(&id);
        }
        next
    }

    /// Makes `watch` connection `id`'s watch set; its pushes are held from now until
    /// [`Hub::finish_snapshot`].
    pub fn begin_snapshot(&mut self, id: u32, watch: &[Address]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.watching = true;
        conn.held.get_or_insert_with(Vec::new);
        self.index.replace(id, watch);
    }

    /// Sends connection `id` the snapshot `frame`, then the pushes held while it was read;
    /// returns how many messages were handed to the socket.
    ///
    /// # Errors
    /// [`Close::ReaderTooSlow`] if the snapshot passes the send budget (the held pushes are
    /// dropped; the caller closes the socket).
    pub fn finish_snapshot(&mut self, id: u32, frame: &[u8]) -> Result<u64, Close> {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(0);
        };
        let held = conn.held.take().unwrap_or_default();
        conn.sent.queue(frame.len())?;
        let mut sent = 0;
        for message in std::iter::once(frame).chain(held.iter().map(Vec::as_slice)) {
            if conn.ws.send_with_bytes(message).is_ok() {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Pushes `frame` to connection `id`: now, or after its snapshot in flight.
    pub fn deliver(&mut self, id: u32, frame: &[u8]) -> Delivery {
        let Some(conn) = self.conns.get_mut(&id) else {
            return Delivery::Dropped;
        };
        if conn.sent.queue(frame.len()).is_err() {
            return Delivery::OverBudget(conn.ws.clone());
        }
        if let Some(held) = &mut conn.held {
            held.push(frame.to_vec());
            return Delivery::Held;
        }
        if conn.ws.send_with_bytes(frame).is_ok() {
            Delivery::Sent
        } else {
            Delivery::Dropped
        }
    }

    /// Forgets connection `id`; returns it if it was known.
    pub fn remove(&mut self, id: u32) -> Option<Conn> {
        self.index.remove(id);
        self.busy.remove(&id);
        self.conns.remove(&id)
    }
}

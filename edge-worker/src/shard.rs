//! `MailboxShard`: the SQLite-backed Durable Object class that stores one range of addresses
//! ([`crate::sharding`]) and, as shard [`HUB`], holds every subscription WebSocket with the
//! hibernation API.
//!
//! It serves the internal operations of [`crate::store`] (`put`, `put-back`, `get`, `delete`,
//! `notify`, `subscribe`), its alarm (dropping expired buckets, purging a legacy table, and the 10 s
//! watch-set timeout), and the WebSocket
//! events of its subscriptions. The semantics are the `mailbox` crate's: client messages are
//! read with [`read_client_message`], watch sets answered with [`snapshot`], delete messages
//! carried out with [`delete`] (each address in its shard, the hub's own locally), blobs
//! pushed with [`push_frame`], subscriptions ended with a [`Close`].

use std::cell::{Cell, RefCell};

use mailbox::limits::SubscriptionLimits;
use mailbox::subscribe::{
    ClientMessage, Close, Deletes, FromClient, delete, push_frame, read_client_message, snapshot,
};
use protocol::Address;
use wasm_bindgen::JsValue;
use worker::{
    Date, DurableObject, Env, Request, Response, Result, ScheduledTime, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, console_log, durable_object,
};

use crate::alarm::alarm_time;
use crate::hub::{Attachment, Delivery, Enqueued, Hub};
use crate::ops::{OPS_HEADER, Ops};
use crate::settings::{SHARD_BINDING, Settings};
use crate::sharding::HUB;
use crate::sql::buckets::{Tables, bucket_end, bucket_width_ms, drop_at};
use crate::sql::{Messages, Put, PutBack};
use crate::store::{LocalShard, ShardedStore, op};

/// Most hibernatable WebSockets one Durable Object may hold (Cloudflare's limit); the hub
/// accepts at most this many subscriptions, or `SubscriptionLimits::max_subscriptions` if
/// lower.
pub const MAX_SOCKETS_PER_OBJECT: usize = 32_768;

/// Shortest and longest wait between a row's expiry in the *legacy* table (`messages`, from
/// the releases before buckets) and its purge: the alarm purges it at its earliest expiry
/// plus half the TTL within these bounds, as those releases did, until the table is empty
/// and dropped. Bucket tables are dropped whole instead ([`crate::sql::buckets`]).
const LEGACY_PURGE_SLACK_MS: (i64, i64) = (1_000, 86_400_000);

/// Now, in ms since the Unix epoch.
fn now_ms() -> i64 {
    i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// The store's Durable Object class. One instance per shard name
/// ([`crate::sharding::shard_name`]).
#[durable_object]
pub struct MailboxShard {
    state: State,
    env: Env,
    settings: Settings,
    /// The message tables, loaded once per instance ([`Messages::load_tables`]).
    tables: RefCell<Option<Tables>>,
    /// Set when loading found a legacy table: the next operation makes sure an alarm will
    /// purge it (the release that wrote it scheduled one; this does not rely on it).
    legacy_found: Cell<bool>,
    /// The alarm as this instance knows it: `None` until read, then the scheduled time (ms).
    alarm_at: Cell<Option<Option<i64>>>,
    /// The subscriptions, rebuilt from the sockets after each wake.
    hub: RefCell<Option<Hub>>,
}

/// The address and the message of a `put`, `put-back` or `notify` body (address (32) ‖ message); `None`
/// unless the message has at least 1 byte.
fn split_put(body: &[u8]) -> Option<(Address, &[u8])> {
    let (address, message) = body.split_first_chunk::<32>()?;
    (!message.is_empty()).then_some((Address(*address), message))
}

/// Adds `more` to the operations counted in `ops`.
fn add_ops(ops: &Cell<Ops>, more: Ops) {
    let mut spent = ops.get();
    spent.add(more);
    ops.set(spent);
}

/// Ends a subscription with `close`'s code and reason (a socket already closed is left so).
fn close_with(ws: &WebSocket, close: Close) {
    let _ = ws.close(Some(close.code()), Some(close.reason()));
}

impl MailboxShard {
    fn messages<'a>(&'a self, ops: &'a Cell<Ops>) -> Result<Messages<'a>> {
        let messages = Messages::new(
            self.state.storage().sql(),
            ops,
            &self.tables,
            self.bucket_width_ms(),
        );
        if self.tables.borrow().is_none() {
            let legacy = messages
                .load_tables()
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            self.legacy_found.set(legacy);
        }
        Ok(messages)
    }

    fn bucket_width_ms(&self) -> i64 {
        bucket_width_ms(self.settings.ttl_ms())
    }

    /// Runs `f` on the subscriptions, rebuilding them first if this instance just woke.
    fn with_hub<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> Result<R> {
        let mut slot = self.hub.borrow_mut();
        if slot.is_none() {
            let hub = Hub::rebuild(self.state.get_websockets());
            if self.settings.log_ops && !hub.conns.is_empty() {
                // A new instance found sockets: it woke from hibernation (counts only).
                console_log!("mailbox: hub woke sockets={}", hub.conns.len());
            }
            *slot = Some(hub);
        }
        match slot.as_mut() {
            Some(hub) => Ok(f(hub)),
            None => Err(worker::Error::RustError("hub missing".into())),
        }
    }

    /// Makes sure the alarm runs no later than `at` (ms since the epoch), or than
    /// [`MAX_ALARM_DELAY_MS`](crate::alarm::MAX_ALARM_DELAY_MS) from now if that is sooner.
    async fn schedule(&self, at: i64, ops: &Cell<Ops>) -> Result<()> {
        let at = alarm_time(at, now_ms());
        let storage = self.state.storage();
        let known = match self.alarm_at.get() {
            Some(known) => known,
            None => {
                let known = storage.get_alarm().await?;
                self.alarm_at.set(Some(known));
                known
            }
        };
        if known.is_some_and(|k| k <= at) {
            return Ok(());
        }
        let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
        storage.set_alarm(ScheduledTime::new(date)).await?;
        self.alarm_at.set(Some(Some(at)));
        let mut spent = ops.get();
        spent.alarms_set += 1;
        ops.set(spent);
        Ok(())
    }

    fn legacy_purge_slack_ms(&self) -> i64 {
        (self.settings.ttl_ms() / 2).clamp(LEGACY_PURGE_SLACK_MS.0, LEGACY_PURGE_SLACK_MS.1)
    }

    fn watch_set_timeout_ms() -> i64 {
        let timeout = SubscriptionLimits::default().watch_set_timeout;
        i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
    }

    /// Pushes a blob just stored at `address` to every connection watching it (after the
    /// snapshot of a connection whose snapshot is in flight); closes `1013 reader too slow`
    /// a connection it would push past its send budget.
    fn push(&self, address: &Address, body: &[u8], ops: &Cell<Ops>) -> Result<()> {
        let frame = push_frame(address, body);
        let (sent, over) = self.with_hub(|hub| {
            let mut sent = 0;
            let mut over = Vec::new();
            let watchers = hub.index.watchers(address).to_vec();
            for id in watchers {
                match hub.deliver(id, &frame) {
                    Delivery::Sent => sent += 1,
                    Delivery::OverBudget(ws) => over.push((id, ws)),
                    Delivery::Held | Delivery::Dropped => {}
                }
            }
            (sent, over)
        })?;
        for (id, ws) in over {
            self.end(&ws, id, Close::ReaderTooSlow)?;
        }
        let mut spent = ops.get();
        spent.ws_out += sent;
        ops.set(spent);
        Ok(())
    }

    /// Serves one internal operation ([`crate::store`]'s table); `Ok(status, body)`. A body
    /// of the wrong shape is `400`: for `put`, `put-back` and `notify` an address and a
    /// message of at least 1 byte (an empty body in storage means a spent address).
    async fn serve(&self, op: &str, body: &[u8], ops: &Cell<Ops>) -> Result<(u16, Vec<u8>)> {
        if op == op::NOTIFY {
            let Some((address, message)) = split_put(body) else {
                return Ok((400, Vec::new()));
            };
            self.push(&address, message, ops)?;
            return Ok((204, Vec::new()));
        }
        let messages = self.messages(ops)?;
        if self.legacy_found.replace(false) {
            self.schedule(now_ms().saturating_add(self.legacy_purge_slack_ms()), ops)
                .await?;
        }
        // Read after the await above: time moves on across I/O, and a `now` from before it
        // could serve a message that has expired since.
        let now = now_ms();
        let sql_failed = |e: crate::sql::SqlError| worker::Error::RustError(e.to_string());
        match op {
            op::PUT => {
                let Some((address, message)) = split_put(body) else {
                    return Ok((400, Vec::new()));
                };
                let expires_at = now.saturating_add(self.settings.ttl_ms());
                match messages
                    .put_if_absent(&address.0, message, now, expires_at)
                    .map_err(sql_failed)?
                {
                    Put::Stored => {}
                    Put::Exists => return Ok((409, Vec::new())),
                    Put::Spent => return Ok((410, Vec::new())),
                }
                self.push(&address, message, ops)?;
                // Invariant: while a bucket table exists, an alarm is due no later than its
                // drop time (a no-op when the alarm is known to be earlier).
                self.schedule(drop_at(bucket_end(expires_at, self.bucket_width_ms())), ops)
                    .await?;
                Ok((201, Vec::new()))
            }
            op::PUT_BACK => {
                let Some((address, message)) = split_put(body) else {
                    return Ok((400, Vec::new()));
                };
                let expires_at = now.saturating_add(self.settings.ttl_ms());
                let inserted = match messages
                    .put_back(&address.0, message, now, expires_at)
                    .map_err(sql_failed)?
                {
                    // Back in its own row and bucket, whose drop the alarm already awaits.
                    PutBack::Restore => false,
                    PutBack::AsPut(Put::Stored) => true,
                    PutBack::AsPut(Put::Exists) => return Ok((409, Vec::new())),
                    PutBack::AsPut(Put::Spent) => return Ok((410, Vec::new())),
                };
                self.push(&address, message, ops)?;
                if inserted {
                    self.schedule(drop_at(bucket_end(expires_at, self.bucket_width_ms())), ops)
                        .await?;
                }
                Ok((201, Vec::new()))
            }
            op::GET => {
                let Some(addresses) = mailbox::fetch::parse_batch(body) else {
                    return Ok((400, Vec::new()));
                };
                let raw: Vec<[u8; 32]> = addresses.iter().map(|a| a.0).collect();
                let found = messages.get_many(&raw, now).map_err(sql_failed)?;
                let records = addresses
                    .iter()
                    .filter_map(|a| found.get(&a.0).map(|m| (a, m.as_slice())));
                Ok((200, mailbox::fetch::encode_response(records)))
            }
            op::DELETE => {
                let Ok(address) = <[u8; 32]>::try_from(body) else {
                    return Ok((400, Vec::new()));
                };
                messages.delete(&address, now).map_err(sql_failed)?;
                Ok((204, Vec::new()))
            }
            _ => Ok((404, Vec::new())),
        }
    }

    /// Accepts a subscription WebSocket (hibernatable) and answers the upgrade.
    async fn open_subscription(&self, ops: &Cell<Ops>) -> Result<Response> {
        // Rebuild from the sockets accepted so far before this one joins them.
        let open = self.with_hub(|hub| hub.conns.len())?;
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let limit = SubscriptionLimits::default()
            .max_subscriptions
            .min(MAX_SOCKETS_PER_OBJECT);
        if open >= limit {
            close_with(&pair.server, Close::TooManySubscriptions);
            return Response::from_websocket(pair.client);
        }
        let now = now_ms();
        let added = self.with_hub(|hub| hub.add(pair.server.clone(), now as f64))?;
        if added.is_err() {
            close_with(&pair.server, Close::StoreUnavailable);
            return Response::from_websocket(pair.client);
        }
        self.schedule(now + Self::watch_set_timeout_ms(), ops)
            .await?;
        Response::from_websocket(pair.client)
    }

    /// Ends connection `id` with `close` and forgets it.
    fn end(&self, ws: &WebSocket, id: u32, close: Close) -> Result<()> {
        close_with(ws, close);
        self.forget(id)
    }

    /// Forgets connection `id` and its watch set.
    fn forget(&self, id: u32) -> Result<()> {
        self.with_hub(|hub| hub.remove(id)).map(drop)
    }

    /// The store as the hub reaches it for its subscriptions: shard [`HUB`]'s rows in this
    /// object's own SQLite (their rows counted in `ops`), every other shard by a request
    /// (counted in the store's own [`ShardedStore::ops`], which the caller adds to `ops`).
    fn hub_store<'a>(&'a self, ops: &'a Cell<Ops>) -> Result<ShardedStore<'a>> {
        let local = LocalShard {
            index: HUB,
            messages: self.messages(ops)?,
            now: now_ms(),
        };
        let namespace = self.env.durable_object(SHARD_BINDING)?;
        Ok(ShardedStore::new(
            namespace,
            self.settings.shards,
            Some(local),
        ))
    }

    /// Makes `watch` connection `id`'s watch set and sends its snapshot.
    async fn apply_watch(
        &self,
        ws: &WebSocket,
        id: u32,
        watch: &[Address],
        ops: &Cell<Ops>,
    ) -> Result<()> {
        let bytes: Vec<u8> = watch.iter().flat_map(|a| a.0).collect();
        let opened = self
            .with_hub(|hub| hub.conns.get(&id).map(|c| c.opened))?
            .unwrap_or(0.0);
        // Kept for hibernation in the attachment (memory only, never storage); a runtime
        // that refuses one this large ends the subscription rather than forget it unseen.
        let attachment = Attachment {
            id,
            opened,
            watch: Some(bytes),
        };
        if attachment.write(ws).is_err() {
            return self.end(ws, id, Close::StoreUnavailable);
        }
        self.with_hub(|hub| {
            // Registered before the snapshot is read: a blob stored meanwhile is pushed
            // (held until the snapshot is sent), in the snapshot, or both.
            hub.begin_snapshot(id, watch);
        })?;
        let store = self.hub_store(ops)?;
        let answer = snapshot(&store, watch).await;
        add_ops(ops, store.ops());
        let frame = match answer {
            Ok(frame) => frame,
            Err(close) => return self.end(ws, id, close),
        };
        match self.with_hub(|hub| hub.finish_snapshot(id, &frame))? {
            Ok(sent) => {
                let mut spent = ops.get();
                spent.ws_out += sent;
                ops.set(spent);
                Ok(())
            }
            Err(close) => self.end(ws, id, close),
        }
    }

    /// Carries out a delete message of connection `id`: each address in order, in its shard
    /// (the hub's own rows locally, without a request); nothing is sent back.
    async fn apply_delete(
        &self,
        ws: &WebSocket,
        id: u32,
        deletes: &Deletes,
        ops: &Cell<Ops>,
    ) -> Result<()> {
        let store = self.hub_store(ops)?;
        let done = delete(&store, deletes).await;
        add_ops(ops, store.ops());
        match done {
            Ok(_) => Ok(()),
            Err(close) => self.end(ws, id, close),
        }
    }

    async fn on_message(
        &self,
        ws: &WebSocket,
        message: &WebSocketIncomingMessage,
        ops: &Cell<Ops>,
    ) -> Result<()> {
        let Some(id) = Attachment::read(ws).map(|a| a.id) else {
            close_with(ws, Close::StoreUnavailable);
            return Ok(());
        };
        if !self.with_hub(|hub| hub.conns.contains_key(&id))? {
            // Ended by the hub (closed, not yet acknowledged by the client): nothing to read.
            return Ok(());
        }
        let read = match message {
            WebSocketIncomingMessage::Binary(bytes) => {
                read_client_message(ClientMessage::Binary(bytes))
            }
            WebSocketIncomingMessage::String(text) => {
                read_client_message(ClientMessage::Text(text.len()))
            }
        };
        let message = match read {
            Ok(message) => message,
            Err(close) => return self.end(ws, id, close),
        };
        let mut next = match self.with_hub(|hub| hub.enqueue(id, message))? {
            Enqueued::Start(message) => Some(message),
            Enqueued::Queued => None,
            Enqueued::Overflow => return self.end(ws, id, Close::ReaderTooSlow),
        };
        // Messages of one connection (watch sets and delete messages) are handled one at a
        // time, in the order sent.
        while let Some(message) = next {
            let handled = match &message {
                FromClient::Watch(watch) => self.apply_watch(ws, id, watch, ops).await,
                FromClient::Delete(deletes) => self.apply_delete(ws, id, deletes, ops).await,
            };
            if handled.is_err() {
                // Never leave the connection busy (its later messages would queue for ever):
                // end it, which also forgets its queue.
                console_log!("mailbox: store error: client message");
                return self.end(ws, id, Close::StoreUnavailable);
            }
            next = self.with_hub(|hub| hub.next_queued(id))?;
        }
        Ok(())
    }

    /// Closes the connections that sent no watch set within the timeout; returns the time
    /// (ms) the next waiting one is due.
    fn close_idle_connections(&self, now: i64) -> Result<Option<i64>> {
        let timeout = Self::watch_set_timeout_ms();
        let (due, next) = self.with_hub(|hub| {
            let mut due = Vec::new();
            let mut next: Option<i64> = None;
            for (id, conn) in &hub.conns {
                if conn.watching {
                    continue;
                }
                let deadline = (conn.opened as i64).saturating_add(timeout);
                if deadline <= now {
                    due.push((*id, conn.ws.clone()));
                } else {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                }
            }
            (due, next)
        })?;
        for (id, ws) in due {
            self.end(&ws, id, Close::NoWatchSet)?;
        }
        Ok(next)
    }

    fn log(&self, ops: &Cell<Ops>, event: &str) {
        if self.settings.log_ops {
            console_log!("{}", ops.get().log_line(event));
        }
    }
}

impl DurableObject for MailboxShard {
    fn new(state: State, env: Env) -> Self {
        let settings = Settings::from_env(&env);
        Self {
            state,
            env,
            settings,
            tables: RefCell::new(None),
            legacy_found: Cell::new(false),
            alarm_at: Cell::new(None),
            hub: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let ops = Cell::new(Ops::default());
        let path = req.path();
        let op = path.trim_start_matches('/');
        let answer = if op == op::SUBSCRIBE {
            self.open_subscription(&ops).await
        } else {
            match req.bytes().await {
                Ok(body) => self
                    .serve(op, &body, &ops)
                    .await
                    .and_then(|(status, body)| {
                        let response = if body.is_empty() {
                            Response::empty()?
                        } else {
                            Response::from_bytes(body)?
                        };
                        Ok(response.with_status(status))
                    }),
                Err(e) => Err(e),
            }
        };
        let mut response = match answer {
            Ok(response) => response,
            Err(_) => {
                console_log!("mailbox: store error: shard");
                Response::empty()?.with_status(503)
            }
        };
        if response.status_code() == 101 {
            // A 101's headers cannot be changed: the hub logs what the opening spent itself.
            self.log(&ops, "ws_open");
        } else {
            response
                .headers_mut()
                .set(OPS_HEADER, &ops.get().header())?;
        }
        Ok(response)
    }

    async fn alarm(&self) -> Result<Response> {
        let ops = Cell::new(Ops::default());
        self.alarm_at.set(Some(None));
        let now = now_ms();
        let expired = self
            .messages(&ops)?
            .expire(now)
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        // This alarm purged the legacy table, if any, and schedules the next purge below.
        self.legacy_found.set(false);
        let next_legacy = expired
            .legacy_earliest
            .map(|at| at.max(now).saturating_add(self.legacy_purge_slack_ms()));
        let next_timeout = self.close_idle_connections(now)?;
        let next = [expired.next_drop, next_legacy, next_timeout]
            .into_iter()
            .flatten()
            .min();
        if self.settings.log_ops {
            // Counts only.
            console_log!(
                "mailbox: expiry buckets_dropped={} legacy_dropped={}",
                expired.buckets_dropped,
                expired.legacy_dropped
            );
        }
        if let Some(at) = next {
            self.schedule(at, &ops).await?;
        }
        self.log(&ops, "alarm");
        Response::empty()
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let ops = Cell::new(Ops {
            ws_in: 1,
            ..Ops::default()
        });
        let result = self.on_message(&ws, &message, &ops).await;
        self.log(&ops, "ws_message");
        result
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        let ops = Cell::new(Ops::default());
        if let Some(attachment) = Attachment::read(&ws) {
            self.forget(attachment.id)?;
        }
        // Completes the closing handshake where the runtime has not already.
        let _ = ws.close(Some(1000), Some(""));
        self.log(&ops, "ws_close");
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        let ops = Cell::new(Ops::default());
        if let Some(attachment) = Attachment::read(&ws) {
            self.forget(attachment.id)?;
        }
        self.log(&ops, "ws_close");
        Ok(())
    }
}

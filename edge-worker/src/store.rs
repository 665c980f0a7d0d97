//! [`mailbox::Store`] over the shard objects: what the front Worker (and the hub, for the
//! snapshots of cross-shard watch sets and the delete messages of its subscriptions) uses.
//!
//! # Internal requests (front Worker or hub → shard object)
//! `POST https://shard/{op}` to the shard's stub; these never leave Cloudflare and only this
//! Worker's code can send them (a Durable Object has no public URL).
//!
//! | op | body | answer |
//! |---|---|---|
//! | `put` | address (32) ‖ message (≥ 1 byte) | `201` stored, `409` a live message is there or the address is spent by a message of other bytes, `410` the address is spent (deleted) by a message of these bytes (or of bytes not recorded: deleted before digests) |
//! | `put-back` | address (32) ‖ message (≥ 1 byte) | `201` the address was spent by a message of these very bytes, now live again until that message's own expiry, or the address was free and the message is stored as by `put`; otherwise `put`'s answer (`409`, `410`) and nothing stored |
//! | `get` | 1..=256 addresses (32 each) | `200`, fetch-response framing of the live ones, a spent one as a record of length 0 |
//! | `delete` | address (32) | `204`; the address is spent, with the SHA-256 of the deleted message (never the message) |
//! | `notify` (hub only) | address (32) ‖ message (≥ 1 byte) | `204`, after pushing it to watchers |
//!
//! and `GET https://shard/subscribe` with the client's WebSocket upgrade (hub only). A body
//! of another shape is `400`; a storage failure is `503`. Every answer carries [`OPS_HEADER`] with the SQL rows and alarms
//! the object spent, added to this store's [`Ops`] with one Durable Object request per call.

use std::cell::Cell;
use std::collections::HashMap;

use futures_util::future::join_all;
use mailbox::{PutOutcome, Store, StoreError};
use protocol::Address;
use worker::{Method, ObjectNamespace, Request, RequestInit, Response, console_log};

use crate::ops::{OPS_HEADER, Ops};
use crate::sharding::{HUB, group_by_shard, shard_name, shard_of};
use crate::sql::Messages;

/// Internal operation names (the path of an internal request).
pub mod op {
    /// Store if absent.
    pub const PUT: &str = "put";
    /// Put back a deleted message's very bytes (API revision 1.3), else as [`PUT`].
    pub const PUT_BACK: &str = "put-back";
    /// Read live messages.
    pub const GET: &str = "get";
    /// Delete.
    pub const DELETE: &str = "delete";
    /// Push a stored message to the hub's watchers.
    pub const NOTIFY: &str = "notify";
    /// Open a subscription WebSocket at the hub.
    pub const SUBSCRIBE: &str = "subscribe";
}

/// The URL of internal operation `op` (the host is never resolved: a stub routes by object).
pub fn op_url(op: &str) -> String {
    format!("https://shard/{op}")
}

/// A shard answered in this object itself, without a request: the hub's own rows.
pub struct LocalShard<'a> {
    /// Index of this object's shard.
    pub index: u32,
    /// Its table.
    pub messages: Messages<'a>,
    /// Now, in ms since the Unix epoch.
    pub now: i64,
}

/// The store as `MAILBOX_SHARDS` shard objects.
pub struct ShardedStore<'a> {
    namespace: ObjectNamespace,
    shards: u32,
    local: Option<LocalShard<'a>>,
    ops: Cell<Ops>,
}

fn unavailable(class: &'static str) -> StoreError {
    console_log!("mailbox: store error: {class}");
    StoreError::Unavailable(class)
}

impl<'a> ShardedStore<'a> {
    /// The store over `namespace` split into `shards` shards; `local`, if given, is answered
    /// from this object's own table instead of by a request.
    pub fn new(namespace: ObjectNamespace, shards: u32, local: Option<LocalShard<'a>>) -> Self {
        Self {
            namespace,
            shards,
            local,
            ops: Cell::new(Ops::default()),
        }
    }

    /// What this store spent so far.
    pub fn ops(&self) -> Ops {
        self.ops.get()
    }

    /// Sends internal operation `op` with `body` to shard `shard`; returns the status and
    /// the answer's body. `503` and transport failures are errors.
    async fn call(&self, shard: u32, op: &str, body: &[u8]) -> Result<(u16, Vec<u8>), StoreError> {
        let stub = self
            .namespace
            .get_by_name(&shard_name(shard, self.shards))
            .map_err(|_| unavailable("shard stub"))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(js_sys::Uint8Array::from(body).into()));
        let request =
            Request::new_with_init(&op_url(op), &init).map_err(|_| unavailable("shard request"))?;
        let mut ops = self.ops.get();
        ops.do_requests += 1;
        self.ops.set(ops);
        let mut response: Response = stub
            .fetch_with_request(request)
            .await
            .map_err(|_| unavailable("shard call"))?;
        if let Ok(Some(text)) = response.headers().get(OPS_HEADER)
            && let Some(spent) = Ops::parse_header(&text)
        {
            let mut ops = self.ops.get();
            ops.add(spent);
            self.ops.set(ops);
        }
        let status = response.status_code();
        if status == 503 {
            return Err(StoreError::Unavailable("shard"));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|_| unavailable("shard answer"))?;
        Ok((status, bytes))
    }

    fn local_for(&self, shard: u32) -> Option<&LocalShard<'a>> {
        self.local.as_ref().filter(|l| l.index == shard)
    }

    /// The live messages of one shard at `addresses`.
    async fn get_from(
        &self,
        shard: u32,
        addresses: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>, StoreError> {
        if let Some(local) = self.local_for(shard) {
            return local
                .messages
                .get_many(addresses, local.now)
                .map_err(|_| unavailable("sql"));
        }
        let (status, body) = self.call(shard, op::GET, &addresses.concat()).await?;
        if status != 200 {
            return Err(unavailable("shard status"));
        }
        let records =
            mailbox::fetch::decode_response(&body).map_err(|_| unavailable("shard framing"))?;
        Ok(records
            .into_iter()
            .map(|(address, message)| (address.0, message.to_vec()))
            .collect())
    }
}

impl ShardedStore<'_> {
    /// Sends `put` or `put-back` (`op`) of `body` at `address` to its shard; on `201`, has
    /// the hub push it.
    async fn store(
        &self,
        op: &str,
        address: &Address,
        body: &[u8],
    ) -> Result<PutOutcome, StoreError> {
        let shard = shard_of(&address.0, self.shards);
        let request = [&address.0[..], body].concat();
        let (status, _) = self.call(shard, op, &request).await?;
        match status {
            201 => {
                // The hub pushes what its own shard stores; other shards' 201s reach it here,
                // before the client's 201 leaves.
                // If the notify fails the push is lost (the blob is stored: the watchers'
                // next snapshot or poll finds it); counted in `pushes_lost`.
                if shard != HUB
                    && !matches!(self.call(HUB, op::NOTIFY, &request).await, Ok((204, _)))
                {
                    console_log!("mailbox: push error: notify");
                    let mut ops = self.ops.get();
                    ops.pushes_lost += 1;
                    self.ops.set(ops);
                }
                Ok(PutOutcome::Stored)
            }
            409 => Ok(PutOutcome::AlreadyExists),
            410 => Ok(PutOutcome::Spent),
            _ => Err(unavailable("shard status")),
        }
    }
}

impl Store for ShardedStore<'_> {
    async fn put_if_absent(
        &self,
        address: &Address,
        body: &[u8],
    ) -> Result<PutOutcome, StoreError> {
        self.store(op::PUT, address, body).await
    }

    /// The very bytes a `DELETE` removed, back until their own expiry, pushed like any
    /// stored blob; otherwise as [`Store::put_if_absent`] (one shard operation either way).
    async fn put_back(&self, address: &Address, body: &[u8]) -> Result<PutOutcome, StoreError> {
        self.store(op::PUT_BACK, address, body).await
    }

    async fn delete(&self, address: &Address) -> Result<(), StoreError> {
        let shard = shard_of(&address.0, self.shards);
        if let Some(local) = self.local_for(shard) {
            return local
                .messages
                .delete(&address.0, local.now)
                .map_err(|_| unavailable("sql"));
        }
        match self.call(shard, op::DELETE, &address.0).await?.0 {
            204 => Ok(()),
            _ => Err(unavailable("shard status")),
        }
    }

    /// The live message at `address`, if any; a spent address is `Some` of an empty body.
    async fn get(&self, address: &Address) -> Result<Option<Vec<u8>>, StoreError> {
        let mut found = self.get_many(std::slice::from_ref(address)).await?;
        Ok(found.pop().flatten())
    }

    /// One request per shard touched, all in flight at once; answered in request order.
    async fn get_many(&self, addresses: &[Address]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let raw: Vec<[u8; 32]> = addresses.iter().map(|a| a.0).collect();
        let groups = group_by_shard(&raw, self.shards);
        let wanted: Vec<(u32, Vec<[u8; 32]>)> = groups
            .iter()
            .map(|(shard, positions)| {
                (
                    *shard,
                    positions
                        .iter()
                        .filter_map(|&p| raw.get(p).copied())
                        .collect(),
                )
            })
            .collect();
        let answers = join_all(
            wanted
                .iter()
                .map(|(shard, addresses)| self.get_from(*shard, addresses)),
        )
        .await;
        let mut found: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
        for answer in answers {
            found.extend(answer?);
        }
        Ok(raw.iter().map(|a| found.get(a).cloned()).collect())
    }
}

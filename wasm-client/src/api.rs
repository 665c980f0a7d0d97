//! The JavaScript API: `HushClient` and `ErrorCode`. Thin wrappers over
//! [`client_core::Client`] (through [`crate::client`]): no client logic lives here, only the
//! translation of arguments, results and errors between Rust and JavaScript.
//!
//! Every async method returns a `Promise` and holds no borrow of the JS object while it runs,
//! so the UI may call `poll`, `send` and `flush` concurrently. Failures reject with an `Error`
//! whose `code` property is an [`ErrorCode`].

use std::rc::Rc;

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use zeroize::Zeroizing;

use client_core::records::Status;
use client_core::schedule;
use client_core::vault::{KdfInput, KdfParams, VaultError, VaultKey};
use client_core::{EndReason, Notice};
use client_core::{NetError, StorageError};
use rand_core::Rng;

use crate::client::{Client, ClientError, ConversationSummary, HistoryEntry};
use crate::net::FetchTransport;

/// What went wrong, for the UI to branch on (`err.code === ErrorCode.WrongPassphrase`).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The vault is locked.
    Locked = 1,
    /// No vault on this device yet.
    NoVault = 2,
    /// A vault already exists on this device.
    VaultExists = 3,
    /// The passphrase does not open the vault.
    WrongPassphrase = 4,
    /// The passphrase is empty.
    EmptyPassphrase = 5,
    /// A stored record was altered: it is rejected as a whole.
    Tampered = 6,
    /// IndexedDB failed (quota, private mode, …).
    Storage = 7,
    /// The mailbox could not be reached: retried later.
    MailboxUnreachable = 8,
    /// The mailbox refused the request.
    MailboxRejected = 9,
    /// No such conversation.
    UnknownConversation = 10,
    /// The other person has not joined yet.
    NotJoined = 11,
    /// The invite is malformed.
    InvalidInvite = 12,
    /// The invite has expired.
    InviteExpired = 13,
    /// The message is too long.
    MessageTooLong = 14,
    /// The text is too long for a QR code.
    BadQr = 15,
    /// Anything else (a bug or a browser failure).
    Internal = 16,
    /// This browser's storage for the site is full (`QuotaExceededError`): nothing was saved.
    /// A poll that fails so leaves the messages on the mailbox, to be read once space is freed.
    StorageFull = 17,
    /// The mailbox address answers, but with 404: no Hush mailbox there (a wrong address,
    /// such as the site's origin for a mailbox under a path).
    MailboxNotFound = 18,
    /// The invite was created on this device: it is for the other person's device.
    OwnInvite = 19,
    /// This device already joined that invite; `err.conversationId` is the conversation it
    /// started (`null` if that was deleted).
    AlreadyJoined = 20,
    /// The conversation has ended (made with protocol version 1, which this version cannot
    /// continue; or the other device was restored from an older copy after our last reply):
    /// its history stays readable, nothing more is sent.
    ConversationEnded = 21,
    /// Deriving the vault key needs more memory (about 130 MB with the default Argon2id
    /// parameters) than this device or tab could allocate. Nothing was derived or changed.
    OutOfMemory = 22,
    /// No message with that number in this conversation (deleted already, perhaps in
    /// another tab).
    NoSuchMessage = 23,
    /// The message is still being sent (not on the mailbox yet): it can be deleted once sent.
    StillSending = 24,
}

impl From<&ClientError> for ErrorCode {
    fn from(err: &ClientError) -> Self {
        match err {
            ClientError::Locked => ErrorCode::Locked,
            ClientError::NoVault => ErrorCode::NoVault,
            ClientError::VaultExists => ErrorCode::VaultExists,
            ClientError::Vault(VaultError::WrongPassphrase) => ErrorCode::WrongPassphrase,
            ClientError::Vault(VaultError::EmptyPassphrase) => ErrorCode::EmptyPassphrase,
            ClientError::Vault(VaultError::OutOfMemory) => ErrorCode::OutOfMemory,
            ClientError::Vault(VaultError::BadKeyLength) => ErrorCode::Internal,
            ClientError::Vault(_) | ClientError::CorruptRecord | ClientError::Pickle(_) => {
                ErrorCode::Tampered
            }
            ClientError::Storage(StorageError::QuotaExceeded) => ErrorCode::StorageFull,
            ClientError::Storage(_) => ErrorCode::Storage,
            ClientError::Network(NetError::Status { status: 404, .. }) => {
                ErrorCode::MailboxNotFound
            }
            ClientError::Network(NetError::Status { .. }) => ErrorCode::MailboxRejected,
            // Unreachable, timed out (aborted after its deadline) or garbled: retried later.
            ClientError::Network(_) => ErrorCode::MailboxUnreachable,
            ClientError::UnknownConversation => ErrorCode::UnknownConversation,
            ClientError::NotJoined => ErrorCode::NotJoined,
            ClientError::OwnInvite => ErrorCode::OwnInvite,
            ClientError::AlreadyJoined { .. } => ErrorCode::AlreadyJoined,
            ClientError::ConversationEnded { .. } => ErrorCode::ConversationEnded,
            ClientError::NoSuchMessage => ErrorCode::NoSuchMessage,
            ClientError::StillSending => ErrorCode::StillSending,
            ClientError::InvalidInvite(protocol::InviteError::Expired) => ErrorCode::InviteExpired,
            ClientError::InvalidInvite(_) => ErrorCode::InvalidInvite,
            ClientError::Encrypt(protocol::EncryptError::MessageTooLong { .. })
            | ClientError::DraftTooLong { .. } => ErrorCode::MessageTooLong,
            _ => ErrorCode::Internal,
        }
    }
}

/// A history entry's `seq` from JS: a finite whole number ≥ 0 (history entries number from 1,
/// below 2^53); `None` for anything else.
fn whole_seq(value: f64) -> Option<u64> {
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0).then_some(value as u64)
}

/// A JS `Error` with `name = "HushError"` and `code = ErrorCode`.
fn js_error(code: ErrorCode, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("HushError");
    let _ = Reflect::set(&err, &"code".into(), &JsValue::from(code as u32));
    err.into()
}

/// A client failure as a JS `HushError`; `AlreadyJoined` also carries `conversationId`.
fn client_error(err: ClientError) -> JsValue {
    let js = js_error(ErrorCode::from(&err), &err.to_string());
    if let ClientError::AlreadyJoined { conversation } = &err {
        let _ = Reflect::set(&js, &"conversationId".into(), &opt_str(conversation));
    }
    js
}

/// The [`ErrorCode`] of a flush's `lastError`: a wrong mailbox address (404) is told apart
/// from one that refuses or cannot be reached, exactly as for a rejected call.
fn flush_error_code(err: &NetError) -> ErrorCode {
    ErrorCode::from(&ClientError::Network(err.clone()))
}

/// A plain JS object from `(name, value)` pairs.
fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let obj = Object::new();
    for (name, value) in fields {
        let _ = Reflect::set(&obj, &JsValue::from_str(name), value);
    }
    obj.into()
}

fn opt_str(value: &Option<String>) -> JsValue {
    value.as_deref().map_or(JsValue::NULL, JsValue::from_str)
}

fn summary_js(s: &ConversationSummary) -> JsValue {
    object(&[
        ("id", s.id.as_str().into()),
        ("name", s.name.as_str().into()),
        ("mailbox", s.mailbox.as_str().into()),
        ("joined", s.joined.into()),
        ("safetyCode", opt_str(&s.safety_code)),
        ("inviteLink", opt_str(&s.invite_link)),
        ("unread", s.unread.into()),
        ("lastActivity", (s.last_activity_ms as f64).into()),
        (
            "expiresAt",
            s.expires_at
                .map_or(JsValue::NULL, |t| (t as f64 * 1000.0).into()),
        ),
        ("inviteTaken", s.invite_taken.into()),
        (
            "verifiedAt",
            s.verified_ms.map_or(JsValue::NULL, |t| (t as f64).into()),
        ),
        ("connecting", s.connecting.into()),
        (
            "ended",
            s.ended.map_or(JsValue::NULL, |r| end_reason_str(r).into()),
        ),
        (
            "interference",
            s.interference.as_ref().map_or(JsValue::NULL, |i| {
                object(&[
                    ("since", (i.since_ms as f64).into()),
                    ("undelivered", i.undelivered.into()),
                    ("rejected", i.rejected.into()),
                ])
            }),
        ),
        (
            "rollback",
            s.rollback.as_ref().map_or(JsValue::NULL, |r| {
                object(&[
                    ("detected", (r.detected_ms as f64).into()),
                    ("lostBlobs", r.lost_blobs.into()),
                ])
            }),
        ),
        (
            "unreadable",
            s.unreadable.as_ref().map_or(JsValue::NULL, |u| {
                object(&[
                    ("since", (u.since_ms as f64).into()),
                    (
                        "signalAt",
                        (s.signal_at_ms.unwrap_or_else(|| u.signal_at_ms()) as f64).into(),
                    ),
                    ("lostReads", s.lost_reads.into()),
                ])
            }),
        ),
    ])
}

fn end_reason_str(reason: EndReason) -> &'static str {
    match reason {
        EndReason::ProtocolV1 => "protocolV1",
        EndReason::PeerRestored => "peerRestored",
        EndReason::Diverged => "diverged",
    }
}

/// A notice's JS name (`"interference"`, `"rollback"`) as the core's [`Notice`].
fn notice_from_str(name: &str) -> Option<Notice> {
    match name {
        "interference" => Some(Notice::Interference),
        "rollback" => Some(Notice::Rollback),
        _ => None,
    }
}

/// A time in ms since the epoch, or `null`.
fn opt_ms(at: Option<u64>) -> JsValue {
    at.map_or(JsValue::NULL, |t| (t as f64).into())
}

fn status_str(status: Status) -> &'static str {
    match status {
        Status::Sending => "sending",
        Status::Sent => "sent",
        Status::Delivered => "delivered",
        Status::Failed => "failed",
        Status::Received => "received",
        Status::Conflict => "conflict",
    }
}

fn entry_js(e: &HistoryEntry) -> JsValue {
    object(&[
        ("seq", (e.seq as f64).into()),
        ("outgoing", e.outgoing.into()),
        ("text", e.text.as_str().into()),
        ("time", (e.time_ms as f64).into()),
        ("status", status_str(e.status).into()),
    ])
}

/// A poll's outcome as `{ messages, joined, rejected, delivered, notice, flushAt,
/// deleteMessages, deletesOwed, pollAt }`.
fn poll_outcome_js(out: &client_core::PollOutcome) -> JsValue {
    object(&[
        ("messages", array(&out.messages, entry_js)),
        ("joined", out.joined.into()),
        ("rejected", out.rejected.into()),
        (
            "delivered",
            out.delivered
                .iter()
                .map(|seq| JsValue::from(*seq as f64))
                .collect::<Array>()
                .into(),
        ),
        ("notice", out.notice.into()),
        ("flushAt", opt_ms(out.flush_at_ms)),
        (
            "deleteMessages",
            array(&out.delete_messages, |m| {
                js_sys::Uint8Array::from(m.as_slice()).into()
            }),
        ),
        ("deletesOwed", out.deletes_owed.into()),
        ("pollAt", opt_ms(out.poll_at_ms)),
    ])
}

/// The records of one subscription message (fetch response framing), at most a full watch
/// set's worth of bytes; `Malformed` otherwise (before anything is parsed).
fn pushed_records(message: &[u8]) -> Result<Vec<(protocol::Address, Vec<u8>)>, ClientError> {
    let limit = mailbox::fetch::MAX_FETCH_ADDRESSES
        * (mailbox::fetch::FRAME_HEADER_LEN + protocol::BLOB_LEN);
    if message.len() > limit {
        return Err(ClientError::Network(NetError::Malformed));
    }
    Ok(mailbox::fetch::decode_response(message)
        .map_err(|_| ClientError::Network(NetError::Malformed))?
        .into_iter()
        .map(|(address, blob)| (address, blob.to_vec()))
        .collect())
}

fn array<T>(items: &[T], f: impl Fn(&T) -> JsValue) -> JsValue {
    items.iter().map(f).collect::<Array>().into()
}

/// Takes a passphrase from JS into memory that is wiped after use (the core normalises it
/// to NFC).
fn wiped(passphrase: String) -> Zeroizing<String> {
    Zeroizing::new(passphrase)
}

/// The Argon2id parameters of a new vault: the default, or (`fastKdf`, tests only) the
/// cheapest RFC 9106 allows.
fn kdf_params(fast_kdf: Option<bool>) -> KdfParams {
    if fast_kdf.unwrap_or(false) {
        KdfParams {
            m_kib: 8,
            t: 1,
            p: 1,
        }
    } else {
        KdfParams::DEFAULT
    }
}

/// Derives the vault key from `passphrase` and a vault's `kdfInput` (the 29 bytes from
/// `vaultKdfInput` or `newVaultKdfInput`): Unicode NFC, then Argon2id, exactly as `unlock`
/// and `createVault` do. Synchronous and slow (~1 s, ~130 MB of WebAssembly memory with the
/// default parameters): meant for a Web Worker (`www/unlock-worker.js`), which then ends,
/// releasing that memory. Returns the key as a new 32-byte `Uint8Array`, the only copy
/// outside zeroized memory: hand it to `unlockWithKey` or `createVaultWithKey`, which wipe
/// it. Throws a `HushError` with `code` `ErrorCode.OutOfMemory` when the memory cannot be
/// allocated, `EmptyPassphrase`, or `Tampered` for malformed input.
#[wasm_bindgen(js_name = deriveVaultKey)]
pub fn derive_vault_key(kdf_input: &[u8], passphrase: String) -> Result<Uint8Array, JsValue> {
    let passphrase = wiped(passphrase);
    let input = KdfInput::parse(kdf_input).map_err(|e| client_error(e.into()))?;
    let key = client_core::client::derive_vault_key(&input, &passphrase, crate::platform::nfc)
        .map_err(client_error)?;
    Ok(Uint8Array::from(&key.expose_bytes()[..]))
}

/// The Hush client for one browser profile: a vault, its conversations, and the mailbox.
#[wasm_bindgen]
pub struct HushClient {
    inner: Rc<Client>,
}

#[wasm_bindgen]
impl HushClient {
    /// Opens the client over the IndexedDB database `dbName` (default `"hush"`).
    /// Resolves to a `HushClient`. `requestTimeoutMs` (tests only) shortens the deadline of
    /// every mailbox request from its default of 15 s.
    pub fn open(db_name: Option<String>, request_timeout_ms: Option<u32>) -> Promise {
        future_to_promise(async move {
            let name = db_name.unwrap_or_else(|| "hush".to_owned());
            let net = request_timeout_ms.map_or_else(FetchTransport::default, |ms| {
                FetchTransport::with_timeout(ms)
            });
            let inner = Client::open_with(&name, net).await.map_err(client_error)?;
            Ok(HushClient { inner }.into())
        })
    }

    /// Whether a vault exists on this device. Resolves to a boolean.
    #[wasm_bindgen(js_name = hasVault)]
    pub fn has_vault(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { Ok(inner.has_vault().await.map_err(client_error)?.into()) })
    }

    /// Creates the vault with `passphrase` and unlocks it, deriving the key on this thread
    /// (~1 s of blocked page with the default parameters: the app derives in a worker with
    /// `newVaultKdfInput`, `deriveVaultKey` and `createVaultWithKey` instead). `fastKdf`
    /// (tests only) uses the cheapest Argon2id parameters instead of the ~1 s default.
    #[wasm_bindgen(js_name = createVault)]
    pub fn create_vault(&self, passphrase: String, fast_kdf: Option<bool>) -> Promise {
        let inner = self.inner.clone();
        let passphrase = wiped(passphrase);
        let params = kdf_params(fast_kdf);
        future_to_promise(async move {
            inner
                .create_vault(&passphrase, params)
                .await
                .map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Unlocks the vault, deriving the key on this thread (the app derives in a worker with
    /// `vaultKdfInput`, `deriveVaultKey` and `unlockWithKey` instead). Rejects with
    /// `ErrorCode.WrongPassphrase` and changes nothing if the passphrase is wrong.
    pub fn unlock(&self, passphrase: String) -> Promise {
        let inner = self.inner.clone();
        let passphrase = wiped(passphrase);
        future_to_promise(async move {
            inner.unlock(&passphrase).await.map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Fresh key-derivation input for a new vault: a `Uint8Array` of 29 bytes (version,
    /// Argon2id parameters, random 16-byte salt; nothing secret) to pass to `deriveVaultKey`
    /// and then, with the key, to `createVaultWithKey`. `fastKdf` as for `createVault`.
    #[wasm_bindgen(js_name = newVaultKdfInput)]
    pub fn new_vault_kdf_input(&self, fast_kdf: Option<bool>) -> js_sys::Uint8Array {
        let input = self.inner.new_vault_kdf_input(kdf_params(fast_kdf));
        js_sys::Uint8Array::from(&input.to_bytes()[..])
    }

    /// The stored vault's key-derivation input: resolves to a `Uint8Array` of 29 bytes
    /// (nothing secret) to pass to `deriveVaultKey`. Rejects with `ErrorCode.NoVault` when
    /// there is no vault.
    #[wasm_bindgen(js_name = vaultKdfInput)]
    pub fn vault_kdf_input(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let input = inner.vault_kdf_input().await.map_err(client_error)?;
            Ok(js_sys::Uint8Array::from(&input.to_bytes()[..]).into())
        })
    }

    /// Creates the vault with `key` (a 32-byte `Uint8Array` from `deriveVaultKey`) derived
    /// from `kdfInput` (the 29 bytes from `newVaultKdfInput`), and unlocks it. `key` is
    /// copied once into zeroized memory and wiped (all zero) before this returns, whatever
    /// the outcome. Rejects with `ErrorCode.VaultExists` if a vault exists (another tab may
    /// have made one first).
    #[wasm_bindgen(js_name = createVaultWithKey)]
    pub fn create_vault_with_key(&self, kdf_input: &[u8], key: &mut [u8]) -> Promise {
        let inner = self.inner.clone();
        let taken = VaultKey::take_from(key);
        let input = KdfInput::parse(kdf_input);
        future_to_promise(async move {
            let key = taken.map_err(|e| client_error(e.into()))?;
            let input = input.map_err(|e| client_error(e.into()))?;
            inner
                .create_vault_with_key(&input, key)
                .await
                .map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Unlocks the vault with `key` (a 32-byte `Uint8Array` from `deriveVaultKey`). `key` is
    /// copied once into zeroized memory and wiped (all zero) before this returns, whatever
    /// the outcome. Rejects with `ErrorCode.WrongPassphrase` and changes nothing if the key
    /// does not open the vault (the same constant-time check as `unlock`).
    #[wasm_bindgen(js_name = unlockWithKey)]
    pub fn unlock_with_key(&self, key: &mut [u8]) -> Promise {
        let inner = self.inner.clone();
        let taken = VaultKey::take_from(key);
        future_to_promise(async move {
            let key = taken.map_err(|e| client_error(e.into()))?;
            inner.unlock_with_key(key).await.map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Locks the vault: the key is forgotten; every later call rejects with `Locked`.
    pub fn lock(&self) {
        self.inner.lock();
    }

    /// Whether the vault is unlocked.
    #[wasm_bindgen(getter, js_name = isUnlocked)]
    pub fn is_unlocked(&self) -> bool {
        self.inner.is_unlocked()
    }

    /// Creates an invite. Resolves to `{ id, link }`; `link` is `siteUrl#<invite>`.
    #[wasm_bindgen(js_name = createInvite)]
    pub fn create_invite(&self, site_url: String, mailbox_url: String, name: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let (id, link) = inner
                .create_invite(&site_url, &mailbox_url, &name)
                .await
                .map_err(client_error)?;
            Ok(object(&[("id", id.into()), ("link", link.into())]))
        })
    }

    /// Checks an invite link before joining it, sending and storing nothing: resolves if
    /// `join` may go ahead; rejects with `OwnInvite` (this vault created it), `AlreadyJoined`
    /// (with `conversationId`, as `join`) or `InvalidInvite`.
    #[wasm_bindgen(js_name = checkInvite)]
    pub fn check_invite(&self, link: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            inner.check_invite(&link).await.map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Joins from an invite link or its fragment. Resolves to the new conversation's id.
    /// Call `flush()` to deliver the hello.
    pub fn join(&self, link: String, default_mailbox_url: String, name: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok(inner
                .join(&link, &default_mailbox_url, &name)
                .await
                .map_err(client_error)?
                .into())
        })
    }

    /// Every conversation, most recent first: `[{ id, name, mailbox, joined, safetyCode,
    /// inviteLink, unread, lastActivity, expiresAt, inviteTaken, connecting, ended,
    /// interference, rollback, unreadable }]`; `connecting`: joined here, but the hello is not on the
    /// mailbox yet (the other person cannot see us); `ended`: `null`, `"protocolV1"` (made
    /// with protocol version 1: readable, but it cannot continue) or `"peerRestored"` (the
    /// other device was restored from an older copy after our last reply: neither side can
    /// read the other any more); `interference`: `null`, or
    /// `{ since, undelivered, rejected }` (someone wrote where this conversation's messages
    /// go); `rollback`: `null`, or `{ detected, lostBlobs }` (this device was found restored
    /// from an older copy). The last two stay until `clearNotice`.
    #[wasm_bindgen(js_name = listConversations)]
    pub fn list_conversations(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok(array(
                &inner.conversations().await.map_err(client_error)?,
                summary_js,
            ))
        })
    }

    /// One conversation, as in `listConversations`.
    pub fn conversation(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok(summary_js(
                &inner
                    .conversation_summary(&id)
                    .await
                    .map_err(client_error)?,
            ))
        })
    }

    /// Encrypts and stores `text` for sending; resolves to its sequence number. Call `flush()`.
    pub fn send(&self, id: String, text: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok((inner.send(&id, &text).await.map_err(client_error)? as f64).into())
        })
    }

    /// Delivers every blob not yet on the mailbox, deposits the acknowledgements that are due,
    /// and re-deposits stored blobs the other device has not acknowledged whose address
    /// reads empty again (expired or lost). Resolves to `{ delivered, pending, lastError,
    /// lastErrorCode, conflicts, acksSent, retransmitted, ended, flushAt }`: `delivered` counts blobs
    /// the mailbox stored; `lastErrorCode` is the `ErrorCode` of `lastError`, or `null`;
    /// `conflicts` counts 409s over someone else's bytes (a message is re-sent at a later
    /// address, and becomes `"conflict"` once that fails too; a joined conversation becomes
    /// `inviteTaken`); `acksSent`, the acknowledgement-only blobs deposited; `retransmitted`,
    /// the blobs re-deposited; `ended`, conversations that ended because the other person's
    /// device went back to an older copy (read them again); `flushAt`, when to flush next (ms
    /// since the epoch) or `null`; `pollNow`, the ids of conversations to poll at once (their
    /// messages held back while blobs waited for the mailbox are sealed by that poll).
    pub fn flush(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let out = inner.flush().await.map_err(client_error)?;
            Ok(object(&[
                ("delivered", out.delivered.into()),
                ("pending", out.pending.into()),
                (
                    "lastError",
                    opt_str(&out.last_error.as_ref().map(ToString::to_string)),
                ),
                (
                    "lastErrorCode",
                    out.last_error
                        .as_ref()
                        .map_or(JsValue::NULL, |e| JsValue::from(flush_error_code(e) as u32)),
                ),
                ("conflicts", out.conflicts.into()),
                ("acksSent", out.acks_sent.into()),
                ("retransmitted", out.retransmitted.into()),
                ("ended", out.ended.into()),
                ("flushAt", opt_ms(out.flush_at_ms)),
                (
                    "pollNow",
                    out.poll_now
                        .iter()
                        .map(|id| JsValue::from(id.as_str()))
                        .collect::<js_sys::Array>()
                        .into(),
                ),
            ]))
        })
    }

    /// Polls one conversation. Resolves to `{ messages, joined, rejected, delivered, notice,
    /// flushAt }`; the messages are already stored when this resolves. `delivered`: the
    /// `seq`s of our messages the other device acknowledged in this poll (now
    /// `"delivered"`); `notice`: a notice was raised (read the conversation again);
    /// `flushAt`: when to flush (ms since the epoch: an acknowledgement is owed, or now for a
    /// message re-encrypted for a later address), or `null`; `pollAt`: poll again by then
    /// (ms since the epoch) even if nothing is pushed, a message set aside is due, or `null`.
    pub fn poll(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let out = inner.poll(&id).await.map_err(client_error)?;
            Ok(poll_outcome_js(&out))
        })
    }

    /// Reads one binary message of conversation `id`'s subscription (`GET /v1/subscribe`,
    /// Mailbox API revision 1.1: a snapshot or a push, in the fetch response framing
    /// `address (32) ‖ length (u32 BE) ‖ blob`, repeated) as a poll reads a fetch's answer,
    /// with no request when the pushed blobs are next in the peer's order (client-core
    /// `Client::poll_pushed`). Resolves like `poll`; send the conversation's `watchSet` again
    /// afterwards (its snapshot brings what follows). Rejects with `MailboxRejected` when the
    /// message is not framed so or is longer than a watch set's records can be
    /// (256 × (36 + 1,024) bytes); an empty message is an empty snapshot (nothing to read).
    #[wasm_bindgen(js_name = pollPushed)]
    pub fn poll_pushed(&self, id: String, message: Vec<u8>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let blobs = pushed_records(&message).map_err(client_error)?;
            let out = inner.poll_pushed(&id, blobs).await.map_err(client_error)?;
            Ok(poll_outcome_js(&out))
        })
    }

    /// The history, oldest first: `[{ seq, outgoing, text, time, status }]` with status one of
    /// `"sending"` (on this device), `"sent"` (on the mailbox), `"delivered"` (the other
    /// device acknowledged it), `"failed"` (refused, retried), `"conflict"` (never delivered:
    /// its addresses were taken by someone else's bytes; the conversation's `interference`
    /// says so), `"received"`.
    pub fn history(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok(array(
                &inner.history(&id).await.map_err(client_error)?,
                entry_js,
            ))
        })
    }

    /// One page of the history, oldest first, as in `history`: the `limit` entries just
    /// before entry `before` (a `seq`), or the newest `limit` when `before` is `null`. Reads
    /// only that page from storage, however long the history: open a chat with the newest
    /// page, then page back with the first entry's `seq` as `before`; an empty page is the
    /// beginning.
    #[wasm_bindgen(js_name = historyPage)]
    pub fn history_page(&self, id: String, before: Option<f64>, limit: u32) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            // Anything but a whole number reads from the newest end.
            let before = before.and_then(whole_seq);
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            Ok(array(
                &inner
                    .history_page(&id, before, limit)
                    .await
                    .map_err(client_error)?,
                entry_js,
            ))
        })
    }

    /// When the client's next periodic work is due (ms since the epoch), or `null`: an
    /// acknowledgement owed, a check that stored blobs are still on the mailbox. Call
    /// `flush()` then. Resolves to a number or `null`.
    #[wasm_bindgen(js_name = nextFlushAt)]
    pub fn next_flush_at(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(
            async move { Ok(opt_ms(inner.next_flush_ms().await.map_err(client_error)?)) },
        )
    }

    /// Dismisses a conversation's notice, `"interference"` or `"rollback"` (a new event
    /// raises it again).
    #[wasm_bindgen(js_name = clearNotice)]
    pub fn clear_notice(&self, id: String, notice: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let notice = notice_from_str(&notice).ok_or_else(|| {
                js_error(
                    ErrorCode::Internal,
                    &format!("unknown notice {notice:?} (\"interference\" or \"rollback\")"),
                )
            })?;
            inner
                .clear_notice(&id, notice)
                .await
                .map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Marks a conversation as read.
    #[wasm_bindgen(js_name = markRead)]
    pub fn mark_read(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            inner.mark_read(&id).await.map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Renames a conversation.
    pub fn rename(&self, id: String, name: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            inner.rename(&id, &name).await.map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Keeps `text` as conversation `id`'s draft, sealed in the vault; an empty `text`
    /// deletes it. A draft may be longer than a message: rejects with `MessageTooLong` only
    /// past four messages' worth (`MAX_DRAFT_LEN`; the draft kept before stays).
    #[wasm_bindgen(js_name = saveDraft)]
    pub fn save_draft(&self, id: String, text: String) -> Promise {
        let inner = self.inner.clone();
        let text = Zeroizing::new(text);
        future_to_promise(async move {
            inner.save_draft(&id, &text).await.map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Keeps `text`, about to be sent with `send`, as conversation `id`'s draft, marked as
    /// being sent: call it before `send` and `saveDraft` (the composer's text, empty to
    /// delete) once `send` settled. Torn down in between, `draft` hands the text back if the
    /// send never committed and nothing if it did: a sent message is neither lost nor
    /// offered twice.
    #[wasm_bindgen(js_name = keepDraftForSend)]
    pub fn keep_draft_for_send(&self, id: String, text: String) -> Promise {
        let inner = self.inner.clone();
        let text = Zeroizing::new(text);
        future_to_promise(async move {
            inner
                .keep_draft_for_send(&id, &text)
                .await
                .map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Seals `text`, about to be sent in conversation `id`, synchronously (no storage
    /// transaction): the page keeps the bytes in its session storage from the moment Send is
    /// pressed until `keepDraftForSend` has stored the text, so that a reload in between
    /// loses nothing. Returns the sealed bytes (nothing of the text in the clear). Throws
    /// `Locked`, or `MessageTooLong` past four messages' worth.
    #[wasm_bindgen(js_name = sealPendingSend)]
    pub fn seal_pending_send(&self, id: String, text: String) -> Result<Vec<u8>, JsValue> {
        let text = Zeroizing::new(text);
        self.inner
            .seal_pending_send(&id, &text)
            .map_err(client_error)
    }

    /// Opens bytes from `sealPendingSend` for conversation `id`: the text. Throws `Locked`, or
    /// a vault error if they were not sealed for this conversation by this vault.
    #[wasm_bindgen(js_name = openPendingSend)]
    pub fn open_pending_send(&self, id: String, sealed: Vec<u8>) -> Result<String, JsValue> {
        let text = self
            .inner
            .open_pending_send(&id, &sealed)
            .map_err(client_error)?;
        Ok(text.as_str().to_owned())
    }

    /// Conversation `id`'s draft (its composer's unsent text), or `null`.
    pub fn draft(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok(match inner.draft(&id).await.map_err(client_error)? {
                Some(text) => JsValue::from_str(&text),
                None => JsValue::NULL,
            })
        })
    }

    /// Marks conversation `id`'s safety code as compared with the other person's and matching
    /// (`verified`), or removes the mark; the summary's `verifiedAt` (ms since the epoch, or
    /// `null`) shows it. Local only: nothing is sent. Rejects with `NotJoined` while there is
    /// no safety code yet.
    #[wasm_bindgen(js_name = setVerified)]
    pub fn set_verified(&self, id: String, verified: bool) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            inner
                .set_verified(&id, verified)
                .await
                .map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Deletes history entry `seq` (a history entry's `seq`) of conversation `id` from this
    /// device only: the other person keeps theirs and nothing is sent. Rejects with
    /// `StillSending` for a message of ours not on the mailbox yet, `NoSuchMessage` if there
    /// is no such entry.
    #[wasm_bindgen(js_name = deleteMessage)]
    pub fn delete_message(&self, id: String, seq: f64) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            // Not a whole number: no entry has it.
            let seq = whole_seq(seq).ok_or_else(|| client_error(ClientError::NoSuchMessage))?;
            inner.delete_message(&id, seq).await.map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Deletes a conversation with its keys, history and unsent messages.
    #[wasm_bindgen(js_name = deleteConversation)]
    pub fn delete_conversation(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            inner.delete(&id).await.map_err(client_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The safety code of a joined conversation (digits in groups), or `null` while waiting.
    #[wasm_bindgen(js_name = safetyCode)]
    pub fn safety_code(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok(opt_str(
                &inner
                    .conversation_summary(&id)
                    .await
                    .map_err(client_error)?
                    .safety_code,
            ))
        })
    }

    /// The watch set of conversation `id` for a subscription WebSocket (`GET /v1/subscribe`,
    /// Mailbox API revision 1.1): the concatenated 32-byte addresses, decoys included, that
    /// its next poll fetches (at most 240). Resolves to a `Uint8Array`, or `null` when there
    /// is nothing to watch. Send it on the conversation's own socket after opening it and
    /// whenever it changes (after a poll); any message from the mailbox means "poll now".
    #[wasm_bindgen(js_name = watchSet)]
    pub fn watch_set(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok(match inner.watch_set(&id).await.map_err(client_error)? {
                Some(bytes) => js_sys::Uint8Array::from(bytes.as_slice()).into(),
                None => JsValue::NULL,
            })
        })
    }

    /// Deletes what conversation `id`'s polls read and left to delete (`deletesOwed` of a
    /// poll's outcome; client-core `Client::delete_read`): call it once what the poll
    /// reported is shown. Resolves to `undefined`; best effort (a delete that fails leaves
    /// the blob to expire), and the conversation's next poll deletes what is still left.
    #[wasm_bindgen(js_name = deleteRead)]
    pub fn delete_read(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            inner.delete_read(&id).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Whether polls delete what they read from the mailbox (`DELETE /v1/m/{address}`), so
    /// that it keeps a message only until it is read. Off until set; the cost: a device
    /// restored from a backup cannot fetch again what its lost copy read. Set after unlock.
    #[wasm_bindgen(js_name = setDeleteAfterRead)]
    pub fn set_delete_after_read(&self, on: bool) {
        self.inner.set_delete_after_read(on);
    }

    /// Which conversation is open in front: its id, or `null` when none is (the list, another
    /// screen, or the page hidden). Its acknowledgements wait 20–40 s instead of 2–8 s, so a
    /// reply carries them at no extra blob. Call it whenever the open chat or the page's
    /// visibility changes.
    #[wasm_bindgen(js_name = setReading)]
    pub fn set_reading(&self, id: Option<String>) {
        self.inner.set_reading(id.as_deref());
    }

    /// Milliseconds to wait before the next poll of a conversation whose subscription is
    /// live: a slow, randomised safety poll (60–90 min), since the mailbox pushes what
    /// arrives, the watch set is refreshed meanwhile, and both are read with `pollPushed`.
    #[wasm_bindgen(js_name = safetyPollDelayMs)]
    pub fn safety_poll_delay_ms() -> u32 {
        schedule::safety_poll_delay_ms(crate::platform::system_rng().next_u32())
    }

    /// Milliseconds before a live subscription sends its watch set again (2–4 min): its
    /// snapshot shows the socket still works and brings what a lost push missed.
    #[wasm_bindgen(js_name = watchRefreshDelayMs)]
    pub fn watch_refresh_delay_ms() -> u32 {
        schedule::watch_refresh_delay_ms(crate::platform::system_rng().next_u32())
    }

    /// Milliseconds to wait before the next poll: randomised, quicker when the page is in front
    /// (`foreground`) and the conversation `open`.
    #[wasm_bindgen(js_name = pollDelayMs)]
    pub fn poll_delay_ms(foreground: bool, open: bool) -> u32 {
        schedule::poll_delay_ms(foreground, open, crate::platform::system_rng().next_u32())
    }
}

/// The QR code of `text` as an SVG document.
#[wasm_bindgen(js_name = qrSvg)]
pub fn qr_svg(text: &str) -> Result<String, JsValue> {
    crate::qr::to_svg(text).map_err(|e| js_error(ErrorCode::BadQr, &e.to_string()))
}

//! The client: conversations, history and the outbox over the vault, IndexedDB, Web Locks and
//! the mailbox API. Protocol decisions are the core's; this module only orders storage and
//! network around them so that a crash or a reload at any point loses nothing:
//!
//! * **Send:** encrypt → commit the advanced session, the history entry and every outgoing
//!   blob in one IndexedDB transaction → PUT. An unacknowledged blob is retried byte for byte
//!   at the same address until the mailbox answers 201 or 409 (also after a reload).
//! * **Receive:** fetch (outside the lock) → inside the conversation's lock, re-read the session,
//!   decrypt, commit the advanced session and the new history entries in one transaction →
//!   only then report them.
//! * **One writer:** every ratchet-advancing step runs under the conversation's Web Lock and
//!   starts from the last committed session, so two tabs never both advance it.

use std::cell::RefCell;
use std::rc::Rc;

use getrandom::SysRng;
use hmac::{Hmac, KeyInit, Mac};
use protocol::{Address, Invite, PendingInvite, Session, WriteKey};
use rand_core::{Rng, UnwrapErr};
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::idb::{RecordStore, StoreError, Write};
use crate::locks::with_lock;
use crate::net::{Deposit, MailboxClient, NetError};
use crate::records::{
    self, CONVERSATION_PREFIX, Conversation, ConversationState, HELLO_SEQ, Message,
    OUTGOING_PREFIX, Outgoing, Status, VAULT_KEY,
};
use crate::vault::{self, KdfParams, VaultError, VaultKey};

/// Every fetch asks for exactly this many addresses: the conversation's poll set in random
/// order, padded with random decoys, so the mailbox cannot tell how many a conversation awaits.
/// A poll set larger than this is split into several requests of the same size.
pub const FETCH_BATCH: usize = 48;

/// Extra fetches one poll may make while draining a burst in send order (each covers the
/// addresses a slid receive window newly holds).
pub const MAX_REFETCHES: u32 = 8;

/// How long an invite stays joinable.
pub const INVITE_LIFETIME_SECONDS: u64 = 24 * 60 * 60;

/// Label of the subkey that encrypts protocol pickles (separate from record sealing).
const PICKLE_KEY_LABEL: &str = "pickle-key";
/// Label of the subkey that derives fetch decoys.
const DECOY_KEY_LABEL: &str = "decoy-key";

/// Why a client operation failed. [`ClientError::code`] gives the UI a stable code.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The vault is locked: unlock it first.
    #[error("the vault is locked")]
    Locked,
    /// No vault exists yet on this device.
    #[error("no vault exists yet")]
    NoVault,
    /// A vault already exists on this device.
    #[error("a vault already exists")]
    VaultExists,
    /// Vault errors (wrong passphrase, tampered record, …).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// IndexedDB failed.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The mailbox could not be reached or refused the request.
    #[error(transparent)]
    Network(#[from] NetError),
    /// No conversation with that id.
    #[error("no such conversation")]
    UnknownConversation,
    /// The conversation is still waiting for the other person.
    #[error("the other person has not joined yet")]
    NotJoined,
    /// The invite link or code is not valid.
    #[error("invalid invite: {0}")]
    InvalidInvite(#[from] protocol::InviteError),
    /// The message is too long, or the protocol refused to encrypt it now.
    #[error("cannot send: {0}")]
    Encrypt(#[from] protocol::EncryptError),
    /// A protocol pickle did not load (corrupted or from an unknown version).
    #[error("stored session is unreadable: {0}")]
    Pickle(#[from] protocol::PickleError),
    /// A stored record is malformed.
    #[error("a stored record is malformed")]
    CorruptRecord,
    /// The Web Locks API failed.
    #[error("could not take the conversation lock")]
    Lock,
}

/// What a conversation looks like to the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// Local id.
    pub id: String,
    /// The name given.
    pub name: String,
    /// Mailbox base URL.
    pub mailbox: String,
    /// Whether the other person has joined.
    pub joined: bool,
    /// Safety code (once joined).
    pub safety_code: Option<String>,
    /// Invite link (while waiting).
    pub invite_link: Option<String>,
    /// Unread messages.
    pub unread: u32,
    /// Last activity, ms since the epoch.
    pub last_activity_ms: u64,
    /// Invite expiry, seconds since the epoch (while waiting).
    pub expires_at: Option<u64>,
    /// We joined, but someone else had joined with the same invite first.
    pub invite_taken: bool,
}

/// One history entry as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Position in the history.
    pub seq: u64,
    /// Ours or theirs.
    pub outgoing: bool,
    /// Text.
    pub text: String,
    /// ms since the epoch.
    pub time_ms: u64,
    /// Delivery state.
    pub status: Status,
}

impl From<&Message> for HistoryEntry {
    fn from(m: &Message) -> Self {
        HistoryEntry {
            seq: m.seq,
            outgoing: m.outgoing,
            text: m.text.clone(),
            time_ms: m.time_ms,
            status: m.status,
        }
    }
}

/// What a poll found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    /// New messages, committed before being reported.
    pub messages: Vec<HistoryEntry>,
    /// The other person joined (our invite completed) during this poll.
    pub joined: bool,
    /// Blobs found that did not decrypt (foreign, tampered or already read): ignored.
    pub rejected: u32,
}

/// What a flush of the outbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Blobs acknowledged (201 or 409) in this flush.
    pub delivered: u32,
    /// Blobs still waiting for a later flush.
    pub pending: u32,
    /// The last error seen, if any blob failed.
    pub last_error: Option<String>,
    /// Blobs the mailbox refused because a different blob already sat at their address
    /// (an invite someone else joined first; a message marked `Conflict`). Not retried.
    pub conflicts: u32,
}

/// An unacknowledged blob with its record name.
type OutgoingRecord = (String, Outgoing);

/// The client state behind the JS `HushClient`.
pub struct Client {
    store: RecordStore,
    db_name: String,
    key: RefCell<Option<Rc<VaultKey>>>,
}

fn rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn now_s() -> u64 {
    now_ms() / 1000
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Client {
    /// Opens the client's database (`hush` unless named otherwise).
    pub async fn open(db_name: &str) -> Result<Rc<Client>, ClientError> {
        let store = RecordStore::open_native(db_name).await?;
        Ok(Rc::new(Client {
            store,
            db_name: db_name.to_owned(),
            key: RefCell::new(None),
        }))
    }

    /// Whether a vault exists on this device.
    pub async fn has_vault(&self) -> Result<bool, ClientError> {
        Ok(self.store.get_native(VAULT_KEY).await?.is_some())
    }

    /// Creates the vault and leaves it unlocked.
    pub async fn create_vault(
        &self,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<(), ClientError> {
        if self.has_vault().await? {
            return Err(ClientError::VaultExists);
        }
        let (header, key) = vault::create(&mut rng(), passphrase, params)?;
        self.store.put_native(VAULT_KEY, &header).await?;
        *self.key.borrow_mut() = Some(Rc::new(key));
        Ok(())
    }

    /// Unlocks the vault. A wrong passphrase changes nothing.
    pub async fn unlock(&self, passphrase: &[u8]) -> Result<(), ClientError> {
        let header = self
            .store
            .get_native(VAULT_KEY)
            .await?
            .ok_or(ClientError::NoVault)?;
        let key = vault::unlock(&header, passphrase)?;
        *self.key.borrow_mut() = Some(Rc::new(key));
        Ok(())
    }

    /// Forgets the vault key (it is zeroized once no operation in flight holds it).
    pub fn lock(&self) {
        self.key.borrow_mut().take();
    }

    /// Whether the vault is unlocked.
    pub fn is_unlocked(&self) -> bool {
        self.key.borrow().is_some()
    }

    fn key(&self) -> Result<Rc<VaultKey>, ClientError> {
        self.key.borrow().clone().ok_or(ClientError::Locked)
    }

    async fn read<T: for<'de> serde::Deserialize<'de>>(
        &self,
        key: &VaultKey,
        name: &str,
    ) -> Result<Option<T>, ClientError> {
        match self.store.get_native(name).await? {
            None => Ok(None),
            Some(sealed) => {
                let plain = key.open(name, &sealed)?;
                records::decode(&plain)
                    .map(Some)
                    .ok_or(ClientError::CorruptRecord)
            }
        }
    }

    async fn read_prefix<T: for<'de> serde::Deserialize<'de>>(
        &self,
        key: &VaultKey,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, ClientError> {
        let mut out = Vec::new();
        for (name, sealed) in self.store.list_prefix(prefix).await? {
            let plain = key.open(&name, &sealed)?;
            out.push((
                name,
                records::decode(&plain).ok_or(ClientError::CorruptRecord)?,
            ));
        }
        Ok(out)
    }

    fn put<T: serde::Serialize>(key: &VaultKey, name: String, record: &T) -> Write {
        let plain = Zeroizing::new(records::encode(record));
        let sealed = key.seal(&mut rng(), &name, &plain);
        Write::Put(name, sealed)
    }

    fn lock_name(&self, id: &str) -> String {
        format!("hush:{}:conv:{id}", self.db_name)
    }

    async fn conversation(&self, key: &VaultKey, id: &str) -> Result<Conversation, ClientError> {
        self.read(key, &records::conversation_key(id))
            .await?
            .ok_or(ClientError::UnknownConversation)
    }

    /// Creates an invite for a new conversation named `name` on the mailbox at `mailbox`.
    /// `site_url` is where the link points (its fragment carries the invite, which browsers
    /// never send to a server). Returns the new conversation id and the link.
    pub async fn create_invite(
        &self,
        site_url: &str,
        mailbox: &str,
        name: &str,
    ) -> Result<(String, String), ClientError> {
        let key = self.key()?;
        let mailbox = mailbox.trim_end_matches('/');
        let site = site_url.split('#').next().unwrap_or(site_url);
        // The invite carries the mailbox URL only when it is not the site's own origin.
        let embedded = (!same_origin(site, mailbox)).then_some(mailbox);
        let expires_at = now_s() + INVITE_LIFETIME_SECONDS;
        let (pending, invite) = Invite::create(&mut rng(), now_s(), expires_at, embedded)?;
        let link = format!("{site}#{}", invite.to_link_fragment().as_str());
        let id = random_id();
        let conversation = Conversation {
            id: id.clone(),
            name: name.to_owned(),
            mailbox: mailbox.to_owned(),
            last_activity_ms: now_ms(),
            unread: 0,
            next_seq: HELLO_SEQ + 1,
            state: ConversationState::Waiting {
                pending: pending.pickle(&pickle_key(&key)),
                link: link.clone(),
                expires_at,
            },
        };
        self.store
            .commit(vec![Self::put(
                &key,
                records::conversation_key(&id),
                &conversation,
            )])
            .await?;
        Ok((id, link))
    }

    /// Joins from an invite link (or its fragment). The session and the hello blob are
    /// committed before anything is sent; call [`Client::flush`] to deliver the hello.
    /// `default_mailbox` is used when the invite names none (the site's own origin).
    pub async fn join(
        &self,
        link: &str,
        default_mailbox: &str,
        name: &str,
    ) -> Result<String, ClientError> {
        let key = self.key()?;
        let fragment = link.rsplit('#').next().unwrap_or(link).trim();
        let invite = Invite::from_link_fragment(fragment)?;
        let mailbox = invite
            .mailbox_url()
            .unwrap_or(default_mailbox)
            .trim_end_matches('/')
            .to_owned();
        let (session, hello) = invite.join(&mut rng(), now_s())?;
        let id = random_id();
        let conversation = Conversation {
            id: id.clone(),
            name: name.to_owned(),
            mailbox,
            last_activity_ms: now_ms(),
            unread: 0,
            next_seq: HELLO_SEQ + 1,
            state: ConversationState::Active {
                session: session.pickle(&pickle_key(&key)),
                safety_code: session.safety_code().grouped(),
            },
        };
        let mut writes = vec![Self::put(
            &key,
            records::conversation_key(&id),
            &conversation,
        )];
        for (part, blob) in hello.into_iter().enumerate() {
            let outgoing = Outgoing {
                write_key: blob.write_key.0,
                blob: blob.blob,
            };
            writes.push(Self::put(
                &key,
                records::outgoing_key(&id, HELLO_SEQ, part),
                &outgoing,
            ));
        }
        self.store.commit(writes).await?;
        Ok(id)
    }

    /// Every conversation, most recently active first.
    pub async fn conversations(&self) -> Result<Vec<ConversationSummary>, ClientError> {
        let key = self.key()?;
        let mut list: Vec<ConversationSummary> = self
            .read_prefix::<Conversation>(&key, CONVERSATION_PREFIX)
            .await?
            .iter()
            .map(|(_, c)| summary(c))
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
        Ok(list)
    }

    /// One conversation.
    pub async fn conversation_summary(&self, id: &str) -> Result<ConversationSummary, ClientError> {
        let key = self.key()?;
        Ok(summary(&self.conversation(&key, id).await?))
    }

    /// Encrypts `text` and commits it with the advanced session and its outgoing blobs in one
    /// transaction. Returns the history entry's sequence number. Nothing is sent yet: call
    /// [`Client::flush`] (the UI does so right away).
    pub async fn send(self: &Rc<Self>, id: &str, text: &str) -> Result<u64, ClientError> {
        let this = self.clone();
        let id_owned = id.to_owned();
        let text = Zeroizing::new(text.to_owned());
        with_lock(&self.lock_name(id), async move {
            let key = this.key()?;
            let mut conversation = this.conversation(&key, &id_owned).await?;
            let ConversationState::Active { session, .. } = &conversation.state else {
                return Err(ClientError::NotJoined);
            };
            let mut live = Session::from_pickle(&pickle_key(&key), session)?;
            let blobs = live.encrypt(&mut rng(), text.as_bytes())?;
            let seq = conversation.next_seq;
            let now = now_ms();
            conversation.next_seq += 1;
            conversation.last_activity_ms = now;
            if let ConversationState::Active { session, .. } = &mut conversation.state {
                *session = live.pickle(&pickle_key(&key));
            }
            let message = Message {
                seq,
                outgoing: true,
                text: text.to_string(),
                time_ms: now,
                status: Status::Sending,
            };
            let mut writes = vec![
                Self::put(&key, records::conversation_key(&id_owned), &conversation),
                Self::put(&key, records::message_key(&id_owned, seq), &message),
            ];
            for (part, blob) in blobs.into_iter().enumerate() {
                let outgoing = Outgoing {
                    write_key: blob.write_key.0,
                    blob: blob.blob,
                };
                writes.push(Self::put(
                    &key,
                    records::outgoing_key(&id_owned, seq, part),
                    &outgoing,
                ));
            }
            this.store.commit(writes).await?;
            Ok(seq)
        })
        .await
        .map_err(|_| ClientError::Lock)?
    }

    /// Delivers every unacknowledged blob (of every conversation), each with its original
    /// bytes to its original address. Acknowledged blobs are removed, and a message whose
    /// blobs are all acknowledged becomes `Sent`; a message whose blob failed is shown as
    /// `Failed` and retried by the next flush.
    pub async fn flush(self: &Rc<Self>) -> Result<FlushOutcome, ClientError> {
        let key = self.key()?;
        let pending: Vec<(String, Outgoing)> = self.read_prefix(&key, OUTGOING_PREFIX).await?;
        let mut outcome = FlushOutcome::default();
        // Group by message: `out/{id}/{seq}-{part}` → (`id`, `seq`).
        let mut groups: Vec<(String, u64, Vec<OutgoingRecord>)> = Vec::new();
        for (name, outgoing) in pending {
            let Some((id, seq)) = parse_outgoing_key(&name) else {
                continue;
            };
            match groups.last_mut() {
                Some((gid, gseq, items)) if *gid == id && *gseq == seq => {
                    items.push((name, outgoing))
                }
                _ => groups.push((id, seq, vec![(name, outgoing)])),
            }
        }
        for (id, seq, items) in groups {
            let Some(conversation) = self
                .read::<Conversation>(&key, &records::conversation_key(&id))
                .await?
            else {
                // The conversation was deleted: its blobs go with it.
                let deletes = items
                    .into_iter()
                    .map(|(name, _)| Write::Delete(name))
                    .collect();
                self.store.commit(deletes).await?;
                continue;
            };
            let mailbox = MailboxClient::new(&conversation.mailbox);
            drop(conversation);
            let mut writes = Vec::new();
            let mut failed = false;
            let mut conflict = false;
            for (name, outgoing) in &items {
                let write_key = WriteKey(outgoing.write_key);
                let delivered = match mailbox.put(&write_key, &outgoing.blob).await {
                    Ok(Deposit::Stored) => Ok(true),
                    // 409: our own earlier attempt, or someone else's blob. Only identical
                    // bytes are ours (an address that has expired since cannot be told apart).
                    Ok(Deposit::AlreadyStored) => mailbox
                        .get(&write_key.address())
                        .await
                        .map(|stored| stored.is_none_or(|stored| stored == outgoing.blob)),
                    Err(err) => Err(err),
                };
                match delivered {
                    Ok(true) => {
                        outcome.delivered += 1;
                        writes.push(Write::Delete(name.clone()));
                    }
                    Ok(false) => {
                        // Retrying can never succeed: the mailbox keeps the first write.
                        conflict = true;
                        outcome.conflicts += 1;
                        writes.push(Write::Delete(name.clone()));
                    }
                    Err(err) => {
                        // Unreachable or overloaded: still pending. Refused: shown as failed.
                        failed |= !err.is_transient();
                        outcome.pending += 1;
                        outcome.last_error = Some(err.to_string());
                    }
                }
            }
            let remaining = items.len() - writes.len();
            if seq == HELLO_SEQ && conflict {
                // Someone joined with this invite before us: the inviter is talking to them.
                self.store.commit(writes).await?;
                self.update(&id, |c| c.state = ConversationState::InviteTaken)
                    .await?;
                continue;
            }
            if seq != HELLO_SEQ {
                let name = records::message_key(&id, seq);
                if let Some(mut message) = self.read::<Message>(&key, &name).await? {
                    let status = match (conflict, remaining, failed) {
                        (true, _, _) => Status::Conflict,
                        (false, 0, _) => Status::Sent,
                        (false, _, true) => Status::Failed,
                        (false, _, false) => Status::Sending,
                    };
                    if message.status != status {
                        message.status = status;
                        writes.push(Self::put(&key, name, &message));
                    }
                }
            }
            if !writes.is_empty() {
                self.store.commit(writes).await?;
            }
        }
        Ok(outcome)
    }

    /// Polls one conversation: fetches its poll set (padded with decoys to [`FETCH_BATCH`]),
    /// then, under the conversation's lock, decrypts what arrived on the latest committed
    /// session, in the peer's send order, and commits session and history together before
    /// reporting anything.
    pub async fn poll(self: &Rc<Self>, id: &str) -> Result<PollOutcome, ClientError> {
        let key = self.key()?;
        let conversation = self.conversation(&key, id).await?;
        let addresses = match &conversation.state {
            ConversationState::Waiting { pending, .. } => {
                PendingInvite::from_pickle(&pickle_key(&key), pending)?.poll_addresses()
            }
            ConversationState::Active { session, .. } => {
                Session::from_pickle(&pickle_key(&key), session)?.poll_addresses()
            }
            ConversationState::InviteTaken => return Ok(PollOutcome::default()),
        };
        let mailbox = MailboxClient::new(&conversation.mailbox);
        drop(conversation);
        let found = fetch_padded(&mailbox, &key.subkey(DECOY_KEY_LABEL), &addresses).await?;
        if found.is_empty() {
            return Ok(PollOutcome::default());
        }
        let this = self.clone();
        let id_owned = id.to_owned();
        with_lock(&self.lock_name(id), async move {
            this.receive(&id_owned, &mailbox, addresses, found).await
        })
        .await
        .map_err(|_| ClientError::Lock)?
    }

    async fn receive(
        &self,
        id: &str,
        mailbox: &MailboxClient,
        mut queried: Vec<Address>,
        mut found: Vec<(Address, Vec<u8>)>,
    ) -> Result<PollOutcome, ClientError> {
        let key = self.key()?;
        let mut conversation = self.conversation(&key, id).await?;
        let mut outcome = PollOutcome::default();
        // A waiting invite first needs the joiner's hello.
        if let ConversationState::Waiting { pending, .. } = &conversation.state {
            let pending = PendingInvite::from_pickle(&pickle_key(&key), pending)?;
            let mut session = None;
            while let Some((address, blob)) = found.pop() {
                match pending.accept(now_s(), &address, &blob) {
                    Ok(accepted) => {
                        session = Some(accepted);
                        break;
                    }
                    Err(_) => outcome.rejected += 1,
                }
            }
            let Some(session) = session else {
                return Ok(outcome);
            };
            conversation.state = ConversationState::Active {
                session: session.pickle(&pickle_key(&key)),
                safety_code: session.safety_code().grouped(),
            };
            conversation.last_activity_ms = now_ms();
            outcome.joined = true;
        }
        let ConversationState::Active { session, .. } = &conversation.state else {
            return Ok(outcome);
        };
        let mut live = Session::from_pickle(&pickle_key(&key), session)?;
        let mut writes = Vec::new();
        // Drain in the peer's send order (docs/PROTOCOL.md §6.2): everything of the current
        // chain (and skipped messages) first; when that runs dry, fetch what the slid window
        // newly covers; only then step to the next chain.
        let mut refetches = 0;
        let mut read_since_fetch = false;
        loop {
            let set = live.poll_set();
            let earliest = |segment: &[Address], found: &[(Address, Vec<u8>)]| {
                segment
                    .iter()
                    .find_map(|a| found.iter().position(|(f, _)| f == a))
            };
            let mut pick =
                earliest(&set.skipped, &found).or_else(|| earliest(&set.current, &found));
            if pick.is_none() && read_since_fetch && refetches < MAX_REFETCHES {
                read_since_fetch = false;
                let fresh: Vec<Address> = set
                    .all()
                    .into_iter()
                    .filter(|a| !queried.contains(a))
                    .collect();
                if !fresh.is_empty() {
                    refetches += 1;
                    queried.extend_from_slice(&fresh);
                    // A network error here only delays those messages to the next poll.
                    if let Ok(more) =
                        fetch_padded(mailbox, &key.subkey(DECOY_KEY_LABEL), &fresh).await
                    {
                        found.extend(more);
                    }
                    continue;
                }
            }
            if pick.is_none() {
                pick = earliest(&set.next, &found);
            }
            let Some(index) = pick else {
                break;
            };
            let (address, blob) = found.swap_remove(index);
            match live.decrypt(&address, &blob) {
                Ok(received) => {
                    read_since_fetch = true;
                    let Some(plaintext) = received.plaintext else {
                        continue;
                    };
                    let message = Message {
                        seq: conversation.next_seq,
                        outgoing: false,
                        text: String::from_utf8_lossy(&plaintext).into_owned(),
                        time_ms: now_ms(),
                        status: Status::Received,
                    };
                    conversation.next_seq += 1;
                    conversation.unread = conversation.unread.saturating_add(1);
                    conversation.last_activity_ms = message.time_ms;
                    writes.push(Self::put(
                        &key,
                        records::message_key(id, message.seq),
                        &message,
                    ));
                    outcome.messages.push(HistoryEntry::from(&message));
                }
                // Foreign or tampered: a failed decrypt leaves the session unchanged.
                Err(_) => outcome.rejected += 1,
            }
        }
        // Whatever is left is no longer in the poll set: read already (by another tab or an
        // earlier poll) or never ours.
        outcome.rejected += u32::try_from(found.len()).unwrap_or(u32::MAX);
        if writes.is_empty() && !outcome.joined {
            return Ok(outcome);
        }
        if let ConversationState::Active { session, .. } = &mut conversation.state {
            *session = live.pickle(&pickle_key(&key));
        }
        writes.push(Self::put(
            &key,
            records::conversation_key(id),
            &conversation,
        ));
        self.store.commit(writes).await?;
        Ok(outcome)
    }

    /// The whole history of a conversation, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, ClientError> {
        let key = self.key()?;
        self.conversation(&key, id).await?;
        Ok(self
            .read_prefix::<Message>(&key, &records::message_prefix(id))
            .await?
            .iter()
            .map(|(_, m)| HistoryEntry::from(m))
            .collect())
    }

    /// Marks a conversation's messages as read.
    pub async fn mark_read(self: &Rc<Self>, id: &str) -> Result<(), ClientError> {
        self.update(id, |c| c.unread = 0).await
    }

    /// Renames a conversation.
    pub async fn rename(self: &Rc<Self>, id: &str, name: &str) -> Result<(), ClientError> {
        let name = name.to_owned();
        self.update(id, move |c| c.name = name).await
    }

    async fn update(
        self: &Rc<Self>,
        id: &str,
        change: impl FnOnce(&mut Conversation) + 'static,
    ) -> Result<(), ClientError> {
        let this = self.clone();
        let id_owned = id.to_owned();
        with_lock(&self.lock_name(id), async move {
            let key = this.key()?;
            let mut conversation = this.conversation(&key, &id_owned).await?;
            change(&mut conversation);
            this.store
                .commit(vec![Self::put(
                    &key,
                    records::conversation_key(&id_owned),
                    &conversation,
                )])
                .await?;
            Ok(())
        })
        .await
        .map_err(|_| ClientError::Lock)?
    }

    /// Deletes a conversation: its session (and with it every key that could read or address
    /// its messages), its history and its unsent blobs, in one transaction.
    pub async fn delete(self: &Rc<Self>, id: &str) -> Result<(), ClientError> {
        let this = self.clone();
        let id_owned = id.to_owned();
        with_lock(&self.lock_name(id), async move {
            this.key()?;
            let mut writes = vec![Write::Delete(records::conversation_key(&id_owned))];
            for prefix in [
                records::message_prefix(&id_owned),
                records::outgoing_prefix(&id_owned),
            ] {
                for (name, _) in this.store.list_prefix(&prefix).await? {
                    writes.push(Write::Delete(name));
                }
            }
            this.store.commit(writes).await?;
            Ok(())
        })
        .await
        .map_err(|_| ClientError::Lock)?
    }
}

/// The key that encrypts protocol pickles: HMAC-SHA256(vault key, label), so pickles and
/// records never share a key.
fn pickle_key(key: &VaultKey) -> Zeroizing<[u8; 32]> {
    key.subkey(PICKLE_KEY_LABEL)
}

fn summary(c: &Conversation) -> ConversationSummary {
    let (joined, safety_code, invite_link, expires_at) = match &c.state {
        ConversationState::InviteTaken => (false, None, None, None),
        ConversationState::Waiting {
            link, expires_at, ..
        } => (false, None, Some(link.clone()), Some(*expires_at)),
        ConversationState::Active { safety_code, .. } => {
            (true, Some(safety_code.clone()), None, None)
        }
    };
    ConversationSummary {
        invite_taken: matches!(c.state, ConversationState::InviteTaken),
        id: c.id.clone(),
        name: c.name.clone(),
        mailbox: c.mailbox.clone(),
        joined,
        safety_code,
        invite_link,
        unread: c.unread,
        last_activity_ms: c.last_activity_ms,
        expires_at,
    }
}

/// `out/{id}/{seq:016x}-{part:04x}` → (`id`, `seq`).
fn parse_outgoing_key(name: &str) -> Option<(String, u64)> {
    let rest = name.strip_prefix(OUTGOING_PREFIX)?;
    let (id, tail) = rest.split_once('/')?;
    let (seq, _part) = tail.split_once('-')?;
    Some((id.to_owned(), u64::from_str_radix(seq, 16).ok()?))
}

/// Fetches `addresses` in padded batches of [`FETCH_BATCH`]; returns only what was found.
async fn fetch_padded(
    mailbox: &MailboxClient,
    decoy_key: &[u8; 32],
    addresses: &[Address],
) -> Result<Vec<(Address, Vec<u8>)>, ClientError> {
    let mut found = Vec::new();
    for batch in padded_batches(decoy_key, addresses) {
        found.extend(mailbox.fetch(&batch).await?);
    }
    Ok(found)
}

/// Splits `addresses` into requests of exactly [`FETCH_BATCH`] addresses each, padded with
/// decoys and shuffled, so every fetch has the same size and the mailbox cannot tell how many
/// addresses a conversation awaits.
///
/// Decoys and order are a pseudorandom function of the batch's real addresses under
/// `decoy_key` (a vault subkey): `seed = HMAC(decoy_key, "hush/v1/decoys" ‖ addresses)`,
/// decoy `j` = `HMAC(seed, "decoy" ‖ u32be(j))`, and a Fisher–Yates shuffle drawing
/// `HMAC(seed, "shuffle" ‖ u32be(i))`. Without the key they are indistinguishable from real
/// addresses; and a poll set that has not changed is fetched with byte-identical requests,
/// so repeating it reveals nothing new and a mailbox's miss cache can answer the decoys too.
pub fn padded_batches(decoy_key: &[u8; 32], addresses: &[Address]) -> Vec<Vec<Address>> {
    addresses
        .chunks(FETCH_BATCH)
        .map(|chunk| {
            let mut mac = hmac_sha256(decoy_key);
            mac.update(b"hush/v1/decoys");
            for address in chunk {
                mac.update(&address.0);
            }
            let seed: [u8; 32] = mac.finalize().into_bytes().into();
            let prf = |label: &[u8], i: usize| -> [u8; 32] {
                let mut mac = hmac_sha256(&seed);
                mac.update(label);
                mac.update(&u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes());
                mac.finalize().into_bytes().into()
            };
            let mut batch = chunk.to_vec();
            for j in batch.len()..FETCH_BATCH {
                batch.push(Address(prf(b"decoy", j)));
            }
            for i in (1..batch.len()).rev() {
                let draw = prf(b"shuffle", i);
                let r = u64::from_be_bytes([
                    draw[0], draw[1], draw[2], draw[3], draw[4], draw[5], draw[6], draw[7],
                ]);
                // The modulo bias (< 2^-57) is irrelevant for a shuffle of 48.
                let j = (r % (i as u64 + 1)) as usize;
                batch.swap(i, j);
            }
            batch
        })
        .collect()
}

fn hmac_sha256(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Whether `a` and `b` share scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    fn origin(url: &str) -> &str {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        url.get(..scheme.len() + 3 + host.len()).unwrap_or(url)
    }
    origin(a).eq_ignore_ascii_case(origin(b))
}

/// A randomised delay before the next poll, in milliseconds: quick while the conversation is
/// open and in front, slower in the background. Jitter keeps polls from forming a fingerprint.
pub fn poll_delay_ms(foreground: bool, open: bool) -> u32 {
    let (low, high) = match (foreground, open) {
        (true, true) => (1_500, 3_500),
        (true, false) => (5_000, 10_000),
        (false, _) => (20_000, 40_000),
    };
    low + (rng().next_u32() % (high - low))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn addresses(n: u8) -> Vec<Address> {
        (0..n).map(|i| Address([i; 32])).collect()
    }

    #[test]
    fn batches_are_full_size_and_hold_every_real_address_once() {
        for n in [1u8, 5, 47, 48, 49, 160] {
            let real = addresses(n);
            let batches = padded_batches(&[7; 32], &real);
            assert_eq!(batches.len(), usize::from(n).div_ceil(FETCH_BATCH));
            assert!(batches.iter().all(|b| b.len() == FETCH_BATCH));
            let flat: Vec<Address> = batches.concat();
            for a in &real {
                assert_eq!(flat.iter().filter(|x| *x == a).count(), 1);
            }
        }
    }

    #[test]
    fn an_unchanged_poll_set_gives_identical_requests_and_keys_separate_decoys() {
        let real = addresses(20);
        assert_eq!(
            padded_batches(&[7; 32], &real),
            padded_batches(&[7; 32], &real)
        );
        let other_key = padded_batches(&[8; 32], &real);
        let decoys = |b: &Vec<Address>| {
            b.iter()
                .filter(|a| !real.contains(a))
                .copied()
                .collect::<Vec<_>>()
        };
        assert_ne!(
            decoys(&padded_batches(&[7; 32], &real)[0]),
            decoys(&other_key[0])
        );
        let mut changed = real.clone();
        changed[0] = Address([99; 32]);
        assert_ne!(
            decoys(&padded_batches(&[7; 32], &real)[0]),
            decoys(&padded_batches(&[7; 32], &changed)[0])
        );
    }

    #[test]
    fn real_addresses_do_not_stay_in_front() {
        let real = addresses(8);
        let batch = &padded_batches(&[7; 32], &real)[0];
        assert_ne!(&batch[..8], &real[..], "shuffled");
    }
}

//! The client: a vault, its conversations and their history, over a [`Platform`].
//!
//! Protocol decisions are the `protocol` crate's; the client orders storage and network
//! around them so that a crash or a reload at any await point loses nothing:
//!
//! * **Send** ([`crate::outbox`]): encrypt → commit the advanced session, the history entry
//!   and every outgoing blob in one strict transaction → PUT. An unacknowledged blob is
//!   retried byte for byte at the same address until the mailbox answers.
//! * **Receive** ([`crate::receive`]): fetch (no lock held) → under the conversation's lock,
//!   re-read the session, decrypt, commit the advanced session and the new history entries in
//!   one transaction → only then report them.
//! * **One writer:** every ratchet-advancing step runs under the conversation's lock and
//!   starts from the last committed session, so two tabs never both advance it; no lock is
//!   ever held across a network call.

use std::cell::RefCell;
use std::rc::Rc;

use protocol::{INVITE_CLOCK_TOLERANCE, Invite};
use rand_core::Rng;
use zeroize::Zeroizing;

use crate::error::ClientError;
use crate::platform::{Durability, Locks, Platform, PlatformRng, RecordStore, StorageError, Write};
use crate::records::{
    self, ACK_PREFIX, AckDue, BlobKind, CONVERSATION_PREFIX, Conversation, ConversationState,
    EndReason, Interference, InviteRecord, KeptHello, Message, OUTGOING_PREFIX, Outgoing, Record,
    RollbackNotice, Status, UnreadableNotice, VAULT_KEY,
};
use crate::schedule;
use crate::vault::{self, KdfParams, VaultKey};

/// How long an invite stays joinable, in seconds.
pub const INVITE_LIFETIME_SECONDS: u64 = 24 * 60 * 60;

/// Label of the vault subkey that encrypts protocol pickles (separate from record sealing).
const PICKLE_KEY_LABEL: &str = "pickle-key";
/// Label of the vault subkey that tags invites this vault created or joined.
const INVITE_TAG_LABEL: &str = "invite-tag";
/// Label of the vault subkey that derives fetch decoys.
pub(crate) const DECOY_KEY_LABEL: &str = "decoy-key";

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
    /// We joined, and our hello is not on the mailbox yet: the other person cannot see us
    /// (show "connecting", not "connected"). Never set once the conversation has ended.
    pub connecting: bool,
    /// The conversation cannot go on (history readable; sending refused with
    /// [`ClientError::ConversationEnded`]).
    pub ended: Option<EndReason>,
    /// Notice: someone is interfering with this conversation ([`Client::clear_notice`]).
    pub interference: Option<Interference>,
    /// Notice: this device was restored from an older copy ([`Client::clear_notice`]).
    pub rollback: Option<RollbackNotice>,
    /// Notice: the other person's messages cannot be read on this device (it was probably
    /// restored from an older copy after they replied). Not cleared by the user: lifted when a
    /// later blob of theirs decrypts. Its `Display` is the text to show.
    pub unreadable: Option<UnreadableNotice>,
    /// With [`ConversationSummary::unreadable`]: the notice stands only because a lost copy of
    /// this device (a restore, a power loss) read blobs of the peer's that were then deleted
    /// from the mailbox ([`crate::records::LostEvidence`]); nothing of the peer's was found that this
    /// state cannot read. The peer's device puts them back when it next reads us
    /// (`docs/CLIENT.md`, "Putting back what a lost copy read"); the restore signal still
    /// follows if the notice still stands at [`ConversationSummary::signal_at_ms`].
    pub lost_reads: bool,
    /// With [`ConversationSummary::unreadable`]: when this device tells the peer's and the
    /// conversation ends if the notice still stands (ms since the epoch; `Client::signal_at`):
    /// 5 minutes after the notice, or, with [`ConversationSummary::lost_reads`], 5 minutes
    /// after the peer read our request to put back what is missing and at most a day after the
    /// notice. It can move earlier (the peer read the request) but never before 5 minutes.
    pub signal_at_ms: Option<u64>,
    /// When the user marked the safety code as compared and matching (ms since the epoch;
    /// [`Client::set_verified`]), or `None`.
    pub verified_ms: Option<u64>,
}

/// A notice the user can dismiss ([`Client::clear_notice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// [`ConversationSummary::interference`].
    Interference,
    /// [`ConversationSummary::rollback`].
    Rollback,
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

/// The Hush client for one profile: a vault, its conversations, and the mailbox.
///
/// Methods take `&self` and may run concurrently (the UI polls, sends and flushes at once);
/// the vault key is shared by the operations in flight and zeroized once the last one ends
/// after [`Client::lock`].
pub struct Client<P: Platform> {
    platform: P,
    key: RefCell<Option<Rc<VaultKey>>>,
    /// The last poll plan of each conversation, with the sealed state it was computed from:
    /// an unchanged session is polled with the same requests without unpickling it again.
    /// Cleared on [`Client::lock`].
    polls: RefCell<Vec<PollMemo>>,
    /// Conversations whose upcoming sending positions were probed since unlock
    /// ([`Client::poll`]). Cleared on [`Client::lock`].
    pub(crate) probed: RefCell<Vec<String>>,
    /// Conversations whose probe found positions taken (a copy of this device lost to a
    /// restore wrote them): the start of the sending chain our next send step opens is probed
    /// again once that step is pending ([`Client::reprobe_next_chain`]). Cleared on
    /// [`Client::lock`].
    pub(crate) reprobe: RefCell<Vec<String>>,
    /// Conversations that keep blobs of a lost copy of this device (`lost/{id}`,
    /// [`records::KeptLostBlobs`]): listed after unlock and again every
    /// [`LISTING_MAX_AGE_MS`] (`None` until then), so that the receive path reads that record
    /// only where it exists. Cleared on [`Client::lock`].
    pub(crate) kept_lost: RefCell<Option<Listing>>,
    /// Conversations that keep messages set aside (`aside/{id}`, [`records::SetAside`]),
    /// listed the same way. Cleared on [`Client::lock`].
    pub(crate) set_aside: RefCell<Option<Listing>>,
    /// Blobs read and committed whose DELETE waits for their conversation's next poll
    /// (conversation id, mailbox, write key; `crate::receive`). Cleared on [`Client::lock`]:
    /// those blobs then expire.
    pub(crate) pending_deletes: RefCell<Vec<(String, String, protocol::WriteKey)>>,
    /// Fragments read that complete no message yet (conversation id, message id, write key;
    /// `crate::receive`): their DELETE waits for the blob that completes the message. At most
    /// [`crate::receive::MAX_HELD_FRAGMENTS`]; cleared on [`Client::lock`]: those blobs then
    /// expire.
    pub(crate) held_fragments: RefCell<Vec<(String, [u8; 8], protocol::WriteKey)>>,
    /// When this device last deposited each conversation's restore signals (ms since the
    /// epoch; `crate::outbox`). Not persisted: after a restart they are deposited once more,
    /// which stores nothing new.
    pub(crate) signalled: RefCell<Vec<(String, u64)>>,
    /// Conversations in which this app session found an answer of the peer's it cannot read
    /// (`UnreadableAnswer`) or the peer's behind signal (`docs/PROTOCOL.md` §6.9): an
    /// unreadable notice that also stands on lost evidence then says that the peer's messages
    /// cannot be read, not only that some are missing ([`ConversationSummary::lost_reads`]).
    /// Not persisted: those causes stay on the mailbox, and the first poll after a restart
    /// finds them again.
    pub(crate) unreadable_answers: RefCell<Vec<String>>,
    /// When this app session first learnt that the peer read a blob of ours sealed since the
    /// conversation's lost evidence was found (a retransmission check found it spent), per
    /// conversation (`crate::lost_reads`).
    /// Not persisted: after a restart the next check or poll learns it again. Cleared on
    /// [`Client::lock`].
    pub(crate) evidence_read: RefCell<Vec<(String, u64)>>,
    /// Blobs held by this app session, with when and how much lay behind them
    /// (`crate::receive`). At most 64; cleared on [`Client::lock`].
    pub(crate) hold_watch: RefCell<Vec<crate::receive::HoldWatch>>,
    /// Per conversation, the sequence number of the peer's last blob read past a hold
    /// ([`crate::receive`]): every sequence number below it still missing then was found
    /// abandoned, so later blobs are not held for those again. Cleared on [`Client::lock`].
    pub(crate) abandoned_below: RefCell<Vec<(String, u32)>>,
    /// Whether polls delete what they read from the mailbox ([`Client::set_delete_after_read`]).
    pub(crate) delete_after_read: core::cell::Cell<bool>,
    /// The conversation open in front, if any ([`Client::set_reading`]).
    pub(crate) reading: RefCell<Option<String>>,
    /// Per conversation whose unconfirmed blobs are all acknowledgement-only: the newest
    /// such blob's sequence number and how many retransmission checks in a row found them
    /// all still on the mailbox (`crate::outbox`, [`crate::RETRANSMIT_ACK_MAX_MS`]). Not
    /// persisted: after a restart the checks start at the usual pace again. Cleared on
    /// [`Client::lock`].
    pub(crate) quiet_checks: RefCell<Vec<(String, u32, u32)>>,
    /// Our unacknowledged blobs whose address a retransmission check found spent (read and
    /// deleted): conversation id, sequence number, when first seen so (ms since the epoch)
    /// (`crate::lost_reads`). Not persisted: after a restart the wait starts again. Cleared on
    /// [`Client::lock`].
    pub(crate) spent_seen: RefCell<Vec<(String, u32, u64)>>,
    /// Our hellos that found foreign bytes at their address, watched for the inviter's
    /// answer (`crate::hello_contest`). Not persisted: after a restart the watch starts
    /// again. Cleared on [`Client::lock`].
    pub(crate) hello_contests: RefCell<Vec<crate::hello_contest::HelloContest>>,
    /// Our blobs a flush is depositing (conversation id, sequence number), from just before
    /// their PUT until the flush has recorded the answer (`crate::outbox`): possibly on the
    /// mailbox although their record does not say so yet, so a rollback must not take them
    /// for blobs that never left (`crate::receive`, `resend_unverified`).
    pub(crate) depositing: RefCell<Vec<(String, u32)>>,
}

/// A remembered poll plan: conversation id, the sealed state it was computed from, the plan.
type PollMemo = (String, Vec<u8>, Rc<PollPlan>);

/// What a poll fetches: the padded batches of its poll set.
pub(crate) struct PollPlan {
    /// The requests that fetch them ([`crate::decoys::padded_batches`]).
    pub(crate) batches: Vec<Vec<protocol::Address>>,
    /// The peer's blobs the session read most recently, fetched again in the padding
    /// ([`protocol::Session::read_addresses`]): address and first 8 bytes of the blob read.
    pub(crate) read: Vec<(protocol::Address, [u8; protocol::RECEIVED_HEDGE_LEN])>,
}

impl PollPlan {
    /// Whether `blob` at `address` is nothing to read: the very blob read there before
    /// (the same first 8 bytes: deposited again, or not yet expired), or the address spent
    /// (an empty record: this device read it and deleted it). Anything else at a read
    /// address is another blob there, for [`protocol::Session::take_rewrite`].
    pub(crate) fn read_before(&self, address: &protocol::Address, blob: &[u8]) -> bool {
        self.read
            .iter()
            .any(|(a, prefix)| a == address && (blob.is_empty() || blob.starts_with(prefix)))
    }
}

impl<P: Platform> Client<P> {
    /// A client over `platform`, locked.
    pub fn new(platform: P) -> Self {
        Client {
            platform,
            key: RefCell::new(None),
            polls: RefCell::new(Vec::new()),
            probed: RefCell::new(Vec::new()),
            reprobe: RefCell::new(Vec::new()),
            kept_lost: RefCell::new(None),
            set_aside: RefCell::new(None),
            pending_deletes: RefCell::new(Vec::new()),
            held_fragments: RefCell::new(Vec::new()),
            signalled: RefCell::new(Vec::new()),
            unreadable_answers: RefCell::new(Vec::new()),
            evidence_read: RefCell::new(Vec::new()),
            hold_watch: RefCell::new(Vec::new()),
            abandoned_below: RefCell::new(Vec::new()),
            delete_after_read: core::cell::Cell::new(false),
            reading: RefCell::new(None),
            quiet_checks: RefCell::default(),
            spent_seen: RefCell::default(),
            hello_contests: RefCell::default(),
            depositing: RefCell::default(),
        }
    }

    /// Whether each poll deletes the blobs it read and committed from the mailbox
    /// (`DELETE /v1/m/{address}`, Mailbox API revision 1.1), so that the mailbox keeps a
    /// message only until it is read instead of for its whole lifetime (7 days by default).
    /// Off by default, because of what it costs: a device restored from a backup gets what
    /// its lost copy read back only if the peer's device puts it back (`crate::put_back`),
    /// and its conversations end more often than without deletes (`docs/CLIENT.md`, "Putting
    /// back what a lost copy read").
    /// The app keeps the choice in its settings and sets it after every unlock.
    pub fn set_delete_after_read(&self, on: bool) {
        self.delete_after_read.set(on);
    }

    /// Which conversation is open in front (`None`: none, or the page is hidden). Its
    /// acknowledgements wait longer ([`crate::outbox::ACK_DELAY_READING_MIN_MS`] to
    /// [`crate::outbox::ACK_DELAY_READING_MAX_MS`] instead of 2 to 8 s), because the person
    /// reading it is likely to reply, and a reply carries the acknowledgement at no extra
    /// blob. The app sets it whenever the open conversation or the page's visibility changes.
    pub fn set_reading(&self, id: Option<&str>) {
        *self.reading.borrow_mut() = id.map(str::to_owned);
    }

    /// The platform this client runs on.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    pub(crate) fn rng(&self) -> PlatformRng<'_, P> {
        PlatformRng(&self.platform)
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.platform.now_ms()
    }

    pub(crate) fn now_s(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Whether conversation `id` has a record `{prefix}{id}`, as far as this app run knows:
    /// the ids under `prefix` are listed into `listed` after unlock, and again once the
    /// listing is [`LISTING_MAX_AGE_MS`] old (another tab of the profile may have written
    /// such a record since), so that a path that needs such a rare record reads it only where
    /// it exists: one listing per prefix every 5 minutes, not a read per poll.
    pub(crate) async fn listed_has(
        &self,
        listed: &RefCell<Option<Listing>>,
        prefix: &str,
        id: &str,
    ) -> Result<bool, ClientError> {
        let now = self.now_ms();
        let stale = listed
            .borrow()
            .as_ref()
            .is_none_or(|l| now.saturating_sub(l.listed_ms) >= LISTING_MAX_AGE_MS);
        if stale {
            let ids = self
                .store()
                .list(prefix)
                .await?
                .into_iter()
                .filter_map(|(name, _)| name.strip_prefix(prefix).map(str::to_owned))
                .collect();
            *listed.borrow_mut() = Some(Listing {
                ids,
                listed_ms: now,
            });
        }
        Ok(listed
            .borrow()
            .as_ref()
            .is_some_and(|l| l.ids.iter().any(|i| i == id)))
    }

    /// Notes in `listed` that conversation `id` now has (`true`) or no longer has its record
    /// under `prefix` ([`Client::listed_has`]).
    pub(crate) async fn listed_mark(
        &self,
        listed: &RefCell<Option<Listing>>,
        prefix: &str,
        id: &str,
        has: bool,
    ) -> Result<(), ClientError> {
        if self.listed_has(listed, prefix, id).await? == has {
            return Ok(());
        }
        if let Some(listing) = listed.borrow_mut().as_mut() {
            if has {
                listing.ids.push(id.to_owned());
            } else {
                listing.ids.retain(|i| i != id);
            }
        }
        Ok(())
    }

    pub(crate) fn store(&self) -> &P::Store {
        self.platform.store()
    }

    /// A random 128-bit local id, in hex.
    fn random_id(&self) -> String {
        let mut bytes = [0u8; 16];
        self.rng().fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether a vault exists on this device.
    pub async fn has_vault(&self) -> Result<bool, ClientError> {
        Ok(self.store().get(VAULT_KEY).await?.is_some())
    }

    /// Creates the vault and leaves it unlocked. The passphrase is normalised to Unicode NFC
    /// first, so the same-looking passphrase typed on another keyboard unlocks it.
    ///
    /// Derives the key on the caller's thread (~1 s and 128 MiB with [`KdfParams::DEFAULT`]);
    /// a browser derives in a worker instead: [`Client::new_vault_kdf_input`],
    /// [`derive_vault_key`] there, then [`Client::create_vault_with_key`].
    ///
    /// Atomic across tabs: the header is inserted only if no vault exists, in one
    /// transaction, so of two tabs creating a vault at once exactly one succeeds and the
    /// other gets [`ClientError::VaultExists`].
    pub async fn create_vault(
        &self,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<(), ClientError> {
        if self.has_vault().await? {
            return Err(ClientError::VaultExists);
        }
        let input = self.new_vault_kdf_input(params);
        let key = derive_vault_key(&input, passphrase, |text| self.platform.nfc(text))?;
        self.create_vault_with_key(&input, key).await
    }

    /// Fresh key-derivation input (a random salt and `params`) for a vault about to be
    /// created with [`Client::create_vault_with_key`].
    pub fn new_vault_kdf_input(&self, params: KdfParams) -> vault::KdfInput {
        vault::KdfInput::generate(&mut self.rng(), params)
    }

    /// Creates the vault with a `key` derived from `input` ([`derive_vault_key`]) and leaves
    /// it unlocked. The caller must pass the `input` the key was derived from, or no
    /// passphrase will open the vault. Atomic across tabs like [`Client::create_vault`]
    /// ([`ClientError::VaultExists`]); on any error the key is dropped and zeroized.
    pub async fn create_vault_with_key(
        &self,
        input: &vault::KdfInput,
        key: VaultKey,
    ) -> Result<(), ClientError> {
        if self.has_vault().await? {
            return Err(ClientError::VaultExists);
        }
        let header = vault::create_with_key(&mut self.rng(), input, &key);
        match self
            .store()
            .commit(
                vec![Write::Insert(VAULT_KEY.to_owned(), header)],
                Durability::Strict,
            )
            .await
        {
            Ok(()) => {}
            Err(StorageError::Exists) => return Err(ClientError::VaultExists),
            Err(err) => return Err(err.into()),
        }
        *self.key.borrow_mut() = Some(Rc::new(key));
        Ok(())
    }

    /// Unlocks the vault (passphrase normalised to NFC). A wrong passphrase changes nothing.
    ///
    /// Derives the key on the caller's thread; a browser derives in a worker instead:
    /// [`Client::vault_kdf_input`], [`derive_vault_key`] there, then
    /// [`Client::unlock_with_key`]. Both ways check the key the same way.
    pub async fn unlock(&self, passphrase: &str) -> Result<(), ClientError> {
        let input = self.vault_kdf_input().await?;
        let key = derive_vault_key(&input, passphrase, |text| self.platform.nfc(text))?;
        self.unlock_with_key(key).await
    }

    /// The stored vault's key-derivation input (its salt and parameters; nothing secret),
    /// for [`derive_vault_key`]. Errors: [`ClientError::NoVault`], storage errors, and
    /// [`vault::VaultError::BadHeader`] for a malformed header.
    pub async fn vault_kdf_input(&self) -> Result<vault::KdfInput, ClientError> {
        let header = self
            .store()
            .get(VAULT_KEY)
            .await?
            .ok_or(ClientError::NoVault)?;
        Ok(vault::KdfInput::parse(&header)?)
    }

    /// Unlocks the vault with a `key` derived by [`derive_vault_key`]: the key must open the
    /// header's check record ([`vault::open_with_key`], constant-time), else
    /// [`vault::VaultError::WrongPassphrase`] and nothing changes (the key is dropped and
    /// zeroized).
    pub async fn unlock_with_key(&self, key: VaultKey) -> Result<(), ClientError> {
        let header = self
            .store()
            .get(VAULT_KEY)
            .await?
            .ok_or(ClientError::NoVault)?;
        let key = vault::open_with_key(&header, key)?;
        *self.key.borrow_mut() = Some(Rc::new(key));
        Ok(())
    }

    /// Forgets the vault key (it is zeroized once no operation in flight holds it).
    pub fn lock(&self) {
        self.key.borrow_mut().take();
        self.polls.borrow_mut().clear();
        self.probed.borrow_mut().clear();
        self.unreadable_answers.borrow_mut().clear();
        self.evidence_read.borrow_mut().clear();
        self.reprobe.borrow_mut().clear();
        self.kept_lost.borrow_mut().take();
        self.set_aside.borrow_mut().take();
        self.pending_deletes.borrow_mut().clear();
        self.held_fragments.borrow_mut().clear();
        self.hold_watch.borrow_mut().clear();
        self.abandoned_below.borrow_mut().clear();
        self.quiet_checks.borrow_mut().clear();
        self.spent_seen.borrow_mut().clear();
        self.hello_contests.borrow_mut().clear();
    }

    /// The remembered poll plan of conversation `id`, if its sealed state is still `state`.
    pub(crate) fn poll_memo(&self, id: &str, state: &[u8]) -> Option<Rc<PollPlan>> {
        self.polls
            .borrow()
            .iter()
            .find(|(i, s, _)| i == id && s == state)
            .map(|(_, _, plan)| plan.clone())
    }

    /// Remembers the poll plan computed from `state` for conversation `id`.
    pub(crate) fn remember_poll(&self, id: &str, state: &[u8], plan: Rc<PollPlan>) {
        let mut polls = self.polls.borrow_mut();
        polls.retain(|(i, _, _)| i != id);
        polls.push((id.to_owned(), state.to_vec(), plan));
    }

    /// Whether the vault is unlocked.
    pub fn is_unlocked(&self) -> bool {
        self.key.borrow().is_some()
    }

    pub(crate) fn key(&self) -> Result<Rc<VaultKey>, ClientError> {
        self.key.borrow().clone().ok_or(ClientError::Locked)
    }

    /// Reads and opens one sealed record.
    pub(crate) async fn read<T: Record>(
        &self,
        key: &VaultKey,
        name: &str,
    ) -> Result<Option<T>, ClientError> {
        match self.store().get(name).await? {
            None => Ok(None),
            Some(sealed) => {
                let plain = key.open(name, &sealed)?;
                records::decode(&plain)
                    .map(Some)
                    .ok_or(ClientError::CorruptRecord)
            }
        }
    }

    /// Reads and opens every sealed record under `prefix`, in name order.
    pub(crate) async fn read_prefix<T: Record>(
        &self,
        key: &VaultKey,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, ClientError> {
        let mut out = Vec::new();
        for (name, sealed) in self.store().list(prefix).await? {
            let plain = key.open(&name, &sealed)?;
            out.push((
                name,
                records::decode(&plain).ok_or(ClientError::CorruptRecord)?,
            ));
        }
        Ok(out)
    }

    /// Like [`Client::read`], but a record that opens and does not decode (a format this
    /// version dropped) reads as absent.
    pub(crate) async fn read_lenient<T: Record>(
        &self,
        key: &VaultKey,
        name: &str,
    ) -> Result<Option<T>, ClientError> {
        match self.store().get(name).await? {
            None => Ok(None),
            Some(sealed) => Ok(records::decode(&key.open(name, &sealed)?)),
        }
    }

    /// Every record under `prefix` that opens and decodes, in name order; the names of
    /// those that open but do not decode (a format this version dropped) come second.
    pub(crate) async fn read_prefix_split<T: Record>(
        &self,
        key: &VaultKey,
        prefix: &str,
    ) -> Result<(Vec<(String, T)>, Vec<String>), ClientError> {
        let mut good = Vec::new();
        let mut dropped = Vec::new();
        for (name, sealed) in self.store().list(prefix).await? {
            let plain = key.open(&name, &sealed)?;
            match records::decode(&plain) {
                Some(record) => good.push((name, record)),
                None => dropped.push(name),
            }
        }
        Ok((good, dropped))
    }

    /// Every record under `prefix` that opens and decodes, in name order.
    pub(crate) async fn read_prefix_lenient<T: Record>(
        &self,
        key: &VaultKey,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, ClientError> {
        Ok(self.read_prefix_split(key, prefix).await?.0)
    }

    /// The live session of an active conversation. A protocol-v1 pickle (or a conversation
    /// already marked ended for that reason) is [`ClientError::ConversationEnded`]; one still
    /// waiting is [`ClientError::NotJoined`]. (A conversation ended by
    /// [`EndReason::PeerRestored`] still loads, to be polled; sending checks `ended` itself.)
    pub(crate) fn load_session(
        key: &VaultKey,
        conversation: &Conversation,
    ) -> Result<protocol::Session, ClientError> {
        if let Some(reason @ EndReason::ProtocolV1) = conversation.ended {
            return Err(ClientError::ConversationEnded { reason });
        }
        let ConversationState::Active { session, .. } = &conversation.state else {
            return Err(ClientError::NotJoined);
        };
        match protocol::Session::from_pickle(&pickle_key(key), session) {
            Ok(live) => Ok(live),
            Err(protocol::PickleError::ProtocolV1) => Err(ClientError::ConversationEnded {
                reason: EndReason::ProtocolV1,
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Seals `record` under its name as a [`Write::Put`].
    pub(crate) fn put<T: Record>(&self, key: &VaultKey, name: String, record: &T) -> Write {
        let plain = Zeroizing::new(records::encode(record));
        let sealed = key.seal(&mut self.rng(), &name, &plain);
        Write::Put(name, sealed)
    }

    /// Takes the conversation's lock (shared by every tab of this profile).
    pub(crate) async fn lock_conversation(
        &self,
        id: &str,
    ) -> Result<<P::Locks as Locks>::Guard, ClientError> {
        Ok(self.platform.locks().lock(&format!("conv:{id}")).await?)
    }

    pub(crate) async fn conversation(
        &self,
        key: &VaultKey,
        id: &str,
    ) -> Result<Conversation, ClientError> {
        self.read(key, &records::conversation_key(id))
            .await?
            .ok_or(ClientError::UnknownConversation)
    }

    /// Creates an invite for a new conversation named `name` on the mailbox at `mailbox`.
    /// `site_url` is where the link points (its fragment carries the invite, which browsers
    /// never send to a server). Returns the new conversation id and the link.
    ///
    /// The pending invite is committed strictly before the link is returned: a link the user
    /// has shown can always be answered.
    pub async fn create_invite(
        &self,
        site_url: &str,
        mailbox: &str,
        name: &str,
    ) -> Result<(String, String), ClientError> {
        let key = self.key()?;
        let mailbox = mailbox.trim_end_matches('/');
        let site = site_url.split('#').next().unwrap_or(site_url);
        // The invite carries the mailbox URL unless it is exactly what a joiner falls back to:
        // the origin of the site the link points to. A mailbox under a path of that origin
        // (`https://site/mb`) is carried like any other.
        let embedded = (!mailbox.eq_ignore_ascii_case(origin(site))).then_some(mailbox);
        let now_s = self.now_s();
        let expires_at = now_s + INVITE_LIFETIME_SECONDS;
        let (pending, invite) = Invite::create(&mut self.rng(), now_s, expires_at, embedded)?;
        let link = format!("{site}#{}", invite.to_link_fragment().as_str());
        let id = self.random_id();
        let conversation = Conversation {
            id: id.clone(),
            name: name.to_owned(),
            mailbox: mailbox.to_owned(),
            last_activity_ms: self.now_ms(),
            unread: 0,
            next_seq: records::HELLO_SEQ + 1,
            state: ConversationState::Waiting {
                pending: pending.pickle(&pickle_key(&key)),
                link: link.clone(),
                expires_at,
            },
            ended: None,
            interference: None,
            rollback: None,
            recovery: Default::default(),
            unreadable: None,
            held: Vec::new(),
            verified_ms: None,
            put_back: None,
            lost_evidence: None,
        };
        let remembered = InviteRecord {
            conversation: id.clone(),
            created: true,
        };
        let writes = vec![
            self.put(&key, records::conversation_key(&id), &conversation),
            self.put(&key, invite_record_name(&key, &invite), &remembered),
        ];
        self.store().commit(writes, Durability::Strict).await?;
        Ok((id, link))
    }

    /// Checks an invite link (or its fragment) before joining it, without sending or storing
    /// anything: `Ok` if [`Client::join`] may go ahead; [`ClientError::OwnInvite`] if this
    /// vault created it; [`ClientError::AlreadyJoined`] if this vault joined it;
    /// [`ClientError::InvalidInvite`] if it does not parse (an expired one is told at join).
    pub async fn check_invite(&self, link: &str) -> Result<(), ClientError> {
        let key = self.key()?;
        let invite = Invite::from_link_fragment(link)?;
        self.refuse_known_invite(&key, &invite).await
    }

    /// [`ClientError::OwnInvite`] if this vault created `invite`, [`ClientError::AlreadyJoined`]
    /// if it joined it (with the conversation, if it still exists); `Ok` otherwise.
    async fn refuse_known_invite(
        &self,
        key: &VaultKey,
        invite: &Invite,
    ) -> Result<(), ClientError> {
        let Some(seen) = self
            .read::<InviteRecord>(key, &invite_record_name(key, invite))
            .await?
        else {
            return Ok(());
        };
        if seen.created {
            return Err(ClientError::OwnInvite);
        }
        let exists = self
            .read::<Conversation>(key, &records::conversation_key(&seen.conversation))
            .await?
            .is_some();
        Err(ClientError::AlreadyJoined {
            conversation: exists.then_some(seen.conversation),
        })
    }

    /// Joins from an invite link (or its fragment). The session and the hello blob are
    /// committed (strictly) before anything is sent; call [`Client::flush`] to deliver the
    /// hello. `default_mailbox` is used when the invite names none (the site's own origin).
    pub async fn join(
        &self,
        link: &str,
        default_mailbox: &str,
        name: &str,
    ) -> Result<String, ClientError> {
        let key = self.key()?;
        // The whole pasted text: the protocol's parser finds the invite in a link, a bare
        // fragment, or text damaged in transit (`#` as `%23`, punctuation, a `#` after it).
        let invite = Invite::from_link_fragment(link)?;
        // An invite this vault created or joined is recognised before anything is sent: its
        // hello address is taken (by us), so joining again could only fail.
        self.refuse_known_invite(&key, &invite).await?;
        let mailbox = invite
            .mailbox_url()
            .unwrap_or(default_mailbox)
            .trim_end_matches('/')
            .to_owned();
        let (session, hello) = invite.join(&mut self.rng(), self.now_s())?;
        let id = self.random_id();
        let conversation = Conversation {
            id: id.clone(),
            name: name.to_owned(),
            mailbox,
            last_activity_ms: self.now_ms(),
            unread: 0,
            next_seq: records::HELLO_SEQ + 1,
            state: ConversationState::Active {
                session: session.pickle(&pickle_key(&key)),
                safety_code: session.safety_code().grouped(),
            },
            ended: None,
            interference: None,
            rollback: None,
            recovery: Default::default(),
            unreadable: None,
            held: Vec::new(),
            verified_ms: None,
            put_back: None,
            lost_evidence: None,
        };
        let remembered = InviteRecord {
            conversation: id.clone(),
            created: false,
        };
        let mut writes = vec![
            self.put(&key, records::conversation_key(&id), &conversation),
            self.put(&key, invite_record_name(&key, &invite), &remembered),
        ];
        // The hello stays on the mailbox until no inviter accepts it any more, also once the
        // inviter confirmed it: a copy of the inviter restored to before it accepted looks
        // for it there and nowhere else (`crate::outbox`, kept hellos).
        let until_ms = invite
            .expires_at()
            .saturating_add(INVITE_CLOCK_TOLERANCE)
            .saturating_mul(1_000);
        for blob in hello {
            let kept = KeptHello {
                write_key: blob.write_key.0,
                blob: blob.blob.clone(),
                until_ms,
                checked_ms: self.now_ms(),
                quiet: 0,
            };
            writes.push(self.put(&key, records::kept_hello_key(&id), &kept));
            writes.push(self.put_outgoing(&key, &id, blob, BlobKind::Hello));
        }
        self.store().commit(writes, Durability::Strict).await?;
        Ok(id)
    }

    /// Every conversation, most recently active first.
    pub async fn conversations(&self) -> Result<Vec<ConversationSummary>, ClientError> {
        let key = self.key()?;
        let mut list = Vec::new();
        for (_, c) in self
            .read_prefix::<Conversation>(&key, CONVERSATION_PREFIX)
            .await?
        {
            let connecting = self.hello_pending(&c.id).await?;
            let signal_at = self.signal_at(&c.id, &c);
            list.push(summary(
                &c,
                connecting,
                self.answer_unreadable(&c.id),
                signal_at,
            ));
        }
        list.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
        Ok(list)
    }

    /// Whether this app session found an answer of the peer's in conversation `id` that this
    /// state cannot read, or the peer's behind signal (`Client::unreadable_answers`).
    pub(crate) fn answer_unreadable(&self, id: &str) -> bool {
        self.unreadable_answers.borrow().iter().any(|c| c == id)
    }

    /// One conversation.
    pub async fn conversation_summary(&self, id: &str) -> Result<ConversationSummary, ClientError> {
        let key = self.key()?;
        let conversation = self.conversation(&key, id).await?;
        Ok(summary(
            &conversation,
            self.hello_pending(id).await?,
            self.answer_unreadable(id),
            self.signal_at(id, &conversation),
        ))
    }

    /// Whether our hello for conversation `id` waits in the outbox, not yet on the mailbox.
    async fn hello_pending(&self, id: &str) -> Result<bool, ClientError> {
        let key = self.key()?;
        let name = records::outgoing_key(id, 0);
        Ok(match self.read_lenient::<Outgoing>(&key, &name).await? {
            Some(hello) => hello.kind == BlobKind::Hello && !hello.stored,
            None => false,
        })
    }

    /// Dismisses a notice of conversation `id` (a new event raises it again).
    pub async fn clear_notice(&self, id: &str, notice: Notice) -> Result<(), ClientError> {
        self.update(id, |c| match notice {
            Notice::Interference => c.interference = None,
            Notice::Rollback => c.rollback = None,
        })
        .await
    }

    /// When [`Client::flush`] should run next (ms since the epoch), for an owed
    /// acknowledgement or a retransmission check; `None` if nothing waits for a time. (Blobs
    /// not yet on the mailbox are the caller's retry loop's business, as before.)
    pub async fn next_flush_ms(&self) -> Result<Option<u64>, ClientError> {
        let key = self.key()?;
        let mut next: Option<u64> = None;
        for (_, due) in self.read_prefix_lenient::<AckDue>(&key, ACK_PREFIX).await? {
            next = Some(next.map_or(due.due_ms, |n| n.min(due.due_ms)));
        }
        // Retransmission checks, per conversation (an ended one is not flushed: it waits for
        // nothing), at the pace `crate::outbox` checks them.
        let mut outboxes: Vec<(String, Vec<(u32, Outgoing)>)> = Vec::new();
        for (name, out) in self
            .read_prefix_lenient::<Outgoing>(&key, OUTGOING_PREFIX)
            .await?
        {
            let Some((id, seq)) = records::parse_outgoing_key(&name) else {
                continue;
            };
            match outboxes.iter_mut().find(|(c, _)| *c == id) {
                Some((_, items)) => items.push((seq, out)),
                None => outboxes.push((id, vec![(seq, out)])),
            }
        }
        let mut checks: Vec<(String, u64)> = Vec::new();
        for (id, items) in outboxes {
            let interval = self.check_interval(&id, items.iter().map(|(seq, o)| (*seq, o)));
            let at = items
                .iter()
                .filter(|(_, o)| o.stored)
                .map(|(_, o)| o.checked_ms.saturating_add(interval))
                .min();
            if let Some(at) = at {
                checks.push((id, at));
            }
        }
        for (id, at) in checks {
            let ended = self
                .read_lenient::<Conversation>(&key, &records::conversation_key(&id))
                .await?
                .is_none_or(|c| c.ended.is_some());
            if !ended {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        // Kept hellos (`crate::outbox`), once they have left the outbox.
        let (kept, _) = self.kept_hellos(&key).await?;
        for (_, hello, _) in kept {
            let at = hello
                .checked_ms
                .saturating_add(crate::outbox::kept_hello_interval(hello.quiet));
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        Ok(next)
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

    /// One page of a conversation's history, oldest first: the `limit` entries just before
    /// entry `before` (the newest `limit` when `None`). Opening a chat reads one page, and
    /// scrolling up reads the page before it, so the cost is one screen's, not the history's.
    pub async fn history_page(
        &self,
        id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, ClientError> {
        let key = self.key()?;
        self.conversation(&key, id).await?;
        let before = before.map(|seq| records::message_key(id, seq));
        let mut out = Vec::new();
        for (name, sealed) in self
            .store()
            .list_last(&records::message_prefix(id), before.as_deref(), limit)
            .await?
        {
            let plain = key.open(&name, &sealed)?;
            let message: Message = records::decode(&plain).ok_or(ClientError::CorruptRecord)?;
            out.push(HistoryEntry::from(&message));
        }
        Ok(out)
    }

    /// Marks a conversation's messages as read.
    pub async fn mark_read(&self, id: &str) -> Result<(), ClientError> {
        self.update(id, |c| c.unread = 0).await
    }

    /// Renames a conversation.
    pub async fn rename(&self, id: &str, name: &str) -> Result<(), ClientError> {
        self.update(id, |c| c.name = name.to_owned()).await
    }

    /// Changes a conversation's record under its lock (no network inside).
    pub(crate) async fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Conversation),
    ) -> Result<(), ClientError> {
        let key = self.key()?;
        let _guard = self.lock_conversation(id).await?;
        let mut conversation = self.conversation(&key, id).await?;
        change(&mut conversation);
        let write = self.put(&key, records::conversation_key(id), &conversation);
        self.store()
            .commit(vec![write], Durability::Relaxed)
            .await?;
        Ok(())
    }

    /// Deletes a conversation: its session (and with it every key that could read or address
    /// its messages), its history, its draft and its unsent blobs, in one transaction. The sealed record
    /// that its invite was used stays (it holds no key), so that opening the invite again
    /// says "already joined" rather than raising a false "someone else joined first".
    pub async fn delete(&self, id: &str) -> Result<(), ClientError> {
        self.key()?;
        let _guard = self.lock_conversation(id).await?;
        let mut writes = vec![
            Write::Delete(records::conversation_key(id)),
            Write::Delete(records::ack_key(id)),
            Write::Delete(records::draft_key(id)),
            Write::Delete(records::kept_hello_key(id)),
            Write::Delete(records::kept_lost_key(id)),
            Write::Delete(records::set_aside_key(id)),
        ];
        for prefix in [
            records::message_prefix(id),
            records::outgoing_prefix(id),
            records::kept_sent_prefix(id),
        ] {
            for (name, _) in self.store().list(&prefix).await? {
                writes.push(Write::Delete(name));
            }
        }

        self.store().commit(writes, Durability::Strict).await?;
        self.listed_mark(&self.set_aside, records::SET_ASIDE_PREFIX, id, false)
            .await?;
        self.listed_mark(&self.kept_lost, records::KEPT_LOST_PREFIX, id, false)
            .await?;
        Ok(())
    }

    /// Milliseconds to wait before the next poll: randomised, quicker when the page is in
    /// front (`foreground`) and the conversation `open` ([`schedule::poll_delay_ms`]).
    pub fn poll_delay_ms(&self, foreground: bool, open: bool) -> u32 {
        schedule::poll_delay_ms(foreground, open, self.rng().next_u32())
    }

    /// The key that encrypts protocol pickles.
    pub(crate) fn pickle_key(key: &VaultKey) -> Zeroizing<[u8; 32]> {
        pickle_key(key)
    }
}

/// The conversations that have a rare record under one prefix, as the store listed them at
/// `listed_ms` (ms since the epoch; [`Client::listed_has`]).
pub(crate) struct Listing {
    ids: Vec<String>,
    listed_ms: u64,
}

/// How long a listing of rare records ([`Client::listed_has`]) is trusted, in ms: 5 minutes.
/// A record another tab of the profile wrote is seen by this tab within that time (a message
/// it set aside is shown here too, at most this late past its wait).
pub const LISTING_MAX_AGE_MS: u64 = 5 * 60 * 1_000;

/// Derives the vault key from `passphrase` and a vault's `input` (salt and parameters): the
/// passphrase in Unicode Normalization Form C (UAX #15; `nfc`: the platform's normaliser,
/// [`Platform::nfc`]), so that "é" typed as one code point or as "e" + combining accent
/// derives the same key, then
/// Argon2id ([`vault::KdfInput::derive_key`]). The slow step of [`Client::unlock`] and
/// [`Client::create_vault`], as a function of its inputs alone, to run off the UI thread;
/// the normalised passphrase is zeroized once used.
///
/// Errors: [`vault::VaultError::EmptyPassphrase`], [`vault::VaultError::OutOfMemory`] (the
/// `m_kib` KiB could not be allocated), [`vault::VaultError::BadParams`].
pub fn derive_vault_key(
    input: &vault::KdfInput,
    passphrase: &str,
    nfc: impl FnOnce(&str) -> String,
) -> Result<VaultKey, ClientError> {
    let passphrase = Zeroizing::new(nfc(passphrase));
    Ok(input.derive_key(passphrase.as_bytes())?)
}

/// The key that encrypts protocol pickles: HMAC-SHA256(vault key, label), so pickles and
/// records never share a key.
fn pickle_key(key: &VaultKey) -> Zeroizing<[u8; 32]> {
    key.subkey(PICKLE_KEY_LABEL)
}

/// The record name remembering `invite`: `inv/{hex(HMAC(vault subkey, invite bytes without
/// the mailbox URL))}`, so the same invite is recognised whichever mailbox URL its link
/// carries, and the name says nothing without the vault key.
fn invite_record_name(key: &VaultKey, invite: &Invite) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let bytes = invite.to_bytes();
    let without_url = bytes.get(..protocol::INVITE_BASE_LEN).unwrap_or(&bytes);
    let subkey = key.subkey(INVITE_TAG_LABEL);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(subkey.as_slice())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(without_url);
    let tag: [u8; 32] = mac.finalize().into_bytes().into();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    records::invite_key(&hex)
}

/// `answers`: this app session found an answer of the peer's that this state cannot read, or
/// the peer's behind signal (`Client::answer_unreadable`); `signal_at`: when the unreadable
/// notice ends the conversation (`Client::signal_at`).
pub(crate) fn summary(
    c: &Conversation,
    connecting: bool,
    answers: bool,
    signal_at: Option<u64>,
) -> ConversationSummary {
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
        ended: c.ended,
        interference: c.interference,
        rollback: c.rollback,
        unreadable: c.unreadable,
        lost_reads: c.unreadable.is_some() && c.lost_evidence.is_some() && !answers,
        signal_at_ms: signal_at,
        invite_taken: matches!(c.state, ConversationState::InviteTaken),
        // An ended conversation deposits nothing more: its hello stays where it is, and the
        // end (with its reason) is what the UI says, not "connecting".
        connecting: connecting
            && c.ended.is_none()
            && matches!(c.state, ConversationState::Active { .. }),
        id: c.id.clone(),
        name: c.name.clone(),
        mailbox: c.mailbox.clone(),
        joined,
        safety_code,
        invite_link,
        unread: c.unread,
        last_activity_ms: c.last_activity_ms,
        expires_at,
        verified_ms: c.verified_ms,
    }
}

/// The origin of `url` (`scheme://host[:port]`), as a prefix of it.
fn origin(url: &str) -> &str {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    url.get(..scheme.len() + 3 + host.len()).unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(origin("http://a.test:8080/app/#x"), "http://a.test:8080");
        assert_eq!(origin("https://a.test"), "https://a.test");
        assert_eq!(origin("https://a.test?q"), "https://a.test");
    }

    /// A joiner's conversation whose hello is not on the mailbox yet.
    fn joined(ended: Option<EndReason>) -> Conversation {
        Conversation {
            id: "ab".into(),
            name: "Bob".into(),
            mailbox: "https://m".into(),
            last_activity_ms: 5,
            unread: 0,
            next_seq: 1,
            state: ConversationState::Active {
                session: vec![1, 2, 3],
                safety_code: "1234".into(),
            },
            ended,
            interference: None,
            rollback: None,
            recovery: records::Recovery::default(),
            unreadable: None,
            held: Vec::new(),
            verified_ms: None,
            put_back: None,
            lost_evidence: None,
        }
    }

    #[test]
    fn a_pending_hello_shows_connecting_until_the_conversation_ends() {
        assert!(summary(&joined(None), true, false, None).connecting);
        assert!(!summary(&joined(None), false, false, None).connecting);
        // Ended (a restored copy of this device found its lost copy's join read and deleted):
        // nothing more is deposited, and the end is what the list says.
        let ended = summary(&joined(Some(EndReason::Diverged)), true, false, None);
        assert!(!ended.connecting);
        assert_eq!(ended.ended, Some(EndReason::Diverged));
    }

    #[test]
    fn an_unreadable_notice_on_lost_evidence_alone_says_messages_are_missing() {
        let mut c = joined(None);
        c.unreadable = Some(UnreadableNotice { since_ms: 7 });
        // Raised by an answer that cannot be read: not lost reads.
        assert!(!summary(&c, false, false, None).lost_reads);
        c.lost_evidence = Some(records::LostEvidence {
            since_ms: 7,
            after_seq: 3,
        });
        assert!(summary(&c, false, false, None).lost_reads);
        // This session also found an answer it cannot read (or the behind signal).
        assert!(!summary(&c, false, true, None).lost_reads);
        // Evidence without a notice (lifted by a later answer) says nothing.
        c.unreadable = None;
        assert!(!summary(&c, false, false, None).lost_reads);
    }
}

//! What the client keeps in IndexedDB, and under which keys.
//!
//! Every record but the vault header is sealed by the vault ([`crate::vault`]) under its own
//! key name, so a record cannot be altered, truncated or moved to another name unnoticed.
//! Records are postcard-encoded; each starts with a format version so later clients can keep
//! reading what earlier ones wrote.
//!
//! | key | record |
//! |---|---|
//! | `vault` | the vault header (clear: salt, Argon2id parameters, sealed check value) |
//! | `conv/{id}` | [`Conversation`]: name, mailbox, state (pending invite or session pickle), counters |
//! | `msg/{id}/{seq:016x}` | [`Message`]: one message of the history |
//! | `out/{id}/{seq:08x}` | [`Outgoing`]: one encrypted blob of ours (protocol sequence number `seq`) not yet acknowledged by the peer |
//! | `ack/{id}` | [`AckDue`]: the conversation owes the peer an acknowledgement |
//! | `hello/{id}` | [`KeptHello`]: our hello as joiner, kept on the mailbox until the invite can no longer be accepted |
//! | `sent/{id}/{seq:08x}` | [`Outgoing`], sealed under `out/{id}/{seq:08x}`: one blob of ours the peer confirmed, kept so that it can be put back where the peer's lost copy deleted it (at most [`MAX_KEPT_SENT`] sequence numbers back; `crate::put_back`) |
//! | `lost/{id}` | [`KeptLostBlobs`]: blobs a copy of this device lost to a restore left at our sending positions, kept on the mailbox until the peer reads past them |
//! | `inv/{tag}` | [`InviteRecord`]: an invite this vault created or joined (see [`invite_key`]) |
//! | `draft/{id}` | [`crate::drafts::Draft`]: the unsent text of a conversation's composer |
//!
//! Record formats: every record starts with its format version ([`Record::VERSION`]).
//! Conversations are at version 5 (protocol v2: notices, recovery state, held blobs, the
//! safety code's verified mark, a put-back under way; a version-4 record loads with none, a version-3 record loads unverified, a version-2 one also
//! with no unreadable notice and nothing held); a version-1
//! conversation (written by a protocol-v1 client) still loads, as *ended*
//! ([`EndReason::ProtocolV1`]): its history stays readable. Outbox records are at version 2
//! (protocol sequence numbers); version-1 outbox records no longer decode and are dropped.
//! Messages are at version 2 (the protocol message id); version-1 messages load with none.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Key of the vault header.
pub const VAULT_KEY: &str = "vault";
/// Version of the record formats that did not change with protocol v2 (invites,
/// acknowledgement due times).
pub const RECORD_VERSION: u8 = 1;

/// A record the client stores: its format version and how older versions load.
pub trait Record: Serialize + for<'de> Deserialize<'de> {
    /// The format version written by [`encode`].
    const VERSION: u8 = RECORD_VERSION;
    /// Loads a record written at an older `version`; `None` if it cannot be read any more.
    fn upgrade(_version: u8, _body: &[u8]) -> Option<Self> {
        None
    }
}

/// Key of a conversation record.
pub fn conversation_key(id: &str) -> String {
    format!("conv/{id}")
}

/// Prefix of every conversation record.
pub const CONVERSATION_PREFIX: &str = "conv/";

/// Key of one message of a conversation's history.
pub fn message_key(id: &str, seq: u64) -> String {
    format!("msg/{id}/{seq:016x}")
}

/// Prefix of a conversation's history.
pub fn message_prefix(id: &str) -> String {
    format!("msg/{id}/")
}

/// Key of our blob with protocol sequence number `seq` (names sort in send order).
pub fn outgoing_key(id: &str, seq: u32) -> String {
    format!("out/{id}/{seq:08x}")
}

/// Prefix of every unacknowledged blob of a conversation.
pub fn outgoing_prefix(id: &str) -> String {
    format!("out/{id}/")
}

/// Prefix of every unacknowledged blob of every conversation.
pub const OUTGOING_PREFIX: &str = "out/";

/// `out/{id}/{seq:08x}` → (`id`, `seq`); `None` for any other name (also the names of
/// protocol-v1 outbox records, `out/{id}/{016x}-{04x}`).
pub fn parse_outgoing_key(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix(OUTGOING_PREFIX)?;
    let (id, seq) = rest.split_once('/')?;
    if seq.len() != 8 || !seq.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((id.to_owned(), u32::from_str_radix(seq, 16).ok()?))
}

/// Key of the record saying that conversation `id` owes the peer an acknowledgement.
pub fn ack_key(id: &str) -> String {
    format!("{ACK_PREFIX}{id}")
}

/// Prefix of every owed acknowledgement.
pub const ACK_PREFIX: &str = "ack/";

/// Key of our confirmed blob `seq` of conversation `id`, kept to be put back: its outbox
/// record, sealed as it was under [`outgoing_key`] (moved without opening it, so it is
/// opened under that name).
pub fn kept_sent_key(id: &str, seq: u32) -> String {
    format!("sent/{id}/{seq:08x}")
}

/// Prefix of conversation `id`'s kept confirmed blobs.
pub fn kept_sent_prefix(id: &str) -> String {
    format!("sent/{id}/")
}

/// The sequence number of a name under [`kept_sent_prefix`].
pub fn parse_kept_sent_seq(prefix: &str, name: &str) -> Option<u32> {
    let seq = name.strip_prefix(prefix)?;
    if seq.len() != 8 {
        return None;
    }
    u32::from_str_radix(seq, 16).ok()
}

/// Key of the record that keeps conversation `id`'s hello (we joined) on the mailbox.
pub fn kept_hello_key(id: &str) -> String {
    format!("{KEPT_HELLO_PREFIX}{id}")
}

/// Prefix of every kept hello.
pub const KEPT_HELLO_PREFIX: &str = "hello/";

/// Key of conversation `id`'s kept blobs of a lost copy ([`KeptLostBlobs`]).
pub fn kept_lost_key(id: &str) -> String {
    format!("{KEPT_LOST_PREFIX}{id}")
}

/// Prefix of every record of kept blobs of a lost copy.
pub const KEPT_LOST_PREFIX: &str = "lost/";

/// Key of conversation `id`'s messages set aside ([`SetAside`]).
pub fn set_aside_key(id: &str) -> String {
    format!("{SET_ASIDE_PREFIX}{id}")
}

/// Prefix of every record of messages set aside.
pub const SET_ASIDE_PREFIX: &str = "aside/";

/// Key of conversation `id`'s draft (the unsent text of its composer).
pub fn draft_key(id: &str) -> String {
    format!("draft/{id}")
}

/// The name a pending send of conversation `id` is sealed under (never stored in the vault:
/// it binds a copy kept by the page, [`crate::Client::seal_pending_send`], to its
/// conversation).
pub fn pending_send_name(id: &str) -> String {
    format!("pending-send/{id}")
}

/// Prefix of the records that remember the invites this vault created or joined.
pub const INVITE_PREFIX: &str = "inv/";

/// Key of the record that remembers one invite: `inv/{tag}`, where `tag` is the hex of
/// `HMAC-SHA256(vault subkey "invite-tag", invite without its mailbox URL)`. The name reveals
/// nothing without the vault key.
pub fn invite_key(tag_hex: &str) -> String {
    format!("{INVITE_PREFIX}{tag_hex}")
}

/// Sequence number reserved for the joiner's hello (it has no history entry).
pub const HELLO_SEQ: u64 = 0;

/// One conversation (record format 2).
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Conversation {
    /// Random identifier (hex), local to this device.
    pub id: String,
    /// The name the user gave.
    pub name: String,
    /// Base URL of the mailbox both sides use.
    pub mailbox: String,
    /// Milliseconds since the epoch of the last message or state change.
    pub last_activity_ms: u64,
    /// Messages received since the history was last read.
    pub unread: u32,
    /// Sequence number the next history entry gets (starts at 1; 0 is the hello).
    pub next_seq: u64,
    /// Where the conversation stands.
    pub state: ConversationState,
    /// Set when the conversation cannot go on (its history stays readable).
    #[zeroize(skip)]
    pub ended: Option<EndReason>,
    /// Notice: someone is interfering with this conversation (until the user clears it).
    #[zeroize(skip)]
    pub interference: Option<Interference>,
    /// Notice: this device was found restored from an older copy (until the user clears it).
    #[zeroize(skip)]
    pub rollback: Option<RollbackNotice>,
    /// Where recovery from squatted addresses and junk stands.
    #[zeroize(skip)]
    pub recovery: Recovery,
    /// Notice: the other person's answers cannot be read on this device (most likely it was
    /// restored from an older copy after they replied). Lifted when a later blob of theirs
    /// decrypts. (Record format 3.)
    #[zeroize(skip)]
    pub unreadable: Option<UnreadableNotice>,
    /// The peer's blobs left on the mailbox because an earlier blob of theirs, which they
    /// still send again, has not arrived yet (`crate::receive`): by address, with when each
    /// was first held. (Record format 3.)
    #[zeroize(skip)]
    pub held: Vec<Held>,
    /// When the user marked the safety code as compared and matching (ms since the epoch),
    /// or `None`. A conversation's safety code never changes once joined, so the mark stays
    /// true until the user removes it. Local only. (Record format 4.)
    #[zeroize(skip)]
    pub verified_ms: Option<u64>,
    /// Putting back our blobs that the peer's lost copy read and deleted: `Some` from the
    /// receive step that found the peer's device behind ([`PutBack`]). (Record format 5.)
    #[zeroize(skip)]
    pub put_back: Option<PutBack>,
    /// Evidence that a copy of this device lost to a restore read what the peer then deleted,
    /// or wrote what the peer read and deleted ([`LostEvidence`]): the unreadable notice
    /// stands, and the restore signal follows, until the peer confirms a blob of ours sealed
    /// since. (Record format 5.)
    #[zeroize(skip)]
    pub lost_evidence: Option<LostEvidence>,
}

impl Record for Conversation {
    const VERSION: u8 = 5;
    fn upgrade(version: u8, body: &[u8]) -> Option<Self> {
        if version == 4 {
            let mut old: ConversationV4 = postcard::from_bytes(body).ok()?;
            return Some(Conversation {
                id: core::mem::take(&mut old.id),
                name: core::mem::take(&mut old.name),
                mailbox: core::mem::take(&mut old.mailbox),
                last_activity_ms: old.last_activity_ms,
                unread: old.unread,
                next_seq: old.next_seq,
                state: core::mem::replace(&mut old.state, ConversationState::InviteTaken),
                ended: old.ended,
                interference: old.interference,
                rollback: old.rollback,
                recovery: core::mem::take(&mut old.recovery),
                unreadable: old.unreadable.take(),
                held: core::mem::take(&mut old.held),
                verified_ms: old.verified_ms,
                put_back: None,
                lost_evidence: None,
            });
        }
        if version == 3 {
            let mut old: ConversationV3 = postcard::from_bytes(body).ok()?;
            return Some(Conversation {
                id: core::mem::take(&mut old.id),
                name: core::mem::take(&mut old.name),
                mailbox: core::mem::take(&mut old.mailbox),
                last_activity_ms: old.last_activity_ms,
                unread: old.unread,
                next_seq: old.next_seq,
                state: core::mem::replace(&mut old.state, ConversationState::InviteTaken),
                ended: old.ended,
                interference: old.interference,
                rollback: old.rollback,
                recovery: core::mem::take(&mut old.recovery),
                unreadable: old.unreadable.take(),
                held: core::mem::take(&mut old.held),
                verified_ms: None,
                put_back: None,
                lost_evidence: None,
            });
        }
        if version == 2 {
            let mut old: ConversationV2 = postcard::from_bytes(body).ok()?;
            return Some(Conversation {
                id: core::mem::take(&mut old.id),
                name: core::mem::take(&mut old.name),
                mailbox: core::mem::take(&mut old.mailbox),
                last_activity_ms: old.last_activity_ms,
                unread: old.unread,
                next_seq: old.next_seq,
                state: core::mem::replace(&mut old.state, ConversationState::InviteTaken),
                ended: old.ended,
                interference: old.interference,
                rollback: old.rollback,
                recovery: core::mem::take(&mut old.recovery),
                unreadable: None,
                held: Vec::new(),
                verified_ms: None,
                put_back: None,
                lost_evidence: None,
            });
        }
        if version != 1 {
            return None;
        }
        let mut old: ConversationV1 = postcard::from_bytes(body).ok()?;
        // A version-1 record was written by a protocol-v1 client: its pickle (session or
        // pending invite) is a v1 pickle, which protocol v2 refuses.
        let ended = match old.state {
            ConversationState::InviteTaken => None,
            _ => Some(EndReason::ProtocolV1),
        };
        Some(Conversation {
            id: core::mem::take(&mut old.id),
            name: core::mem::take(&mut old.name),
            mailbox: core::mem::take(&mut old.mailbox),
            last_activity_ms: old.last_activity_ms,
            unread: old.unread,
            next_seq: old.next_seq,
            state: core::mem::replace(&mut old.state, ConversationState::InviteTaken),
            ended,
            interference: None,
            rollback: None,
            recovery: Recovery::default(),
            unreadable: None,
            held: Vec::new(),
            verified_ms: None,
            put_back: None,
            lost_evidence: None,
        })
    }
}

/// A conversation as record format 4 stored it (before putting back).
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct ConversationV4 {
    id: String,
    name: String,
    mailbox: String,
    last_activity_ms: u64,
    unread: u32,
    next_seq: u64,
    state: ConversationState,
    #[zeroize(skip)]
    ended: Option<EndReason>,
    #[zeroize(skip)]
    interference: Option<Interference>,
    #[zeroize(skip)]
    rollback: Option<RollbackNotice>,
    #[zeroize(skip)]
    recovery: Recovery,
    #[zeroize(skip)]
    unreadable: Option<UnreadableNotice>,
    #[zeroize(skip)]
    held: Vec<Held>,
    #[zeroize(skip)]
    verified_ms: Option<u64>,
}

/// A conversation as record format 3 stored it (before the safety code's verified mark).
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct ConversationV3 {
    id: String,
    name: String,
    mailbox: String,
    last_activity_ms: u64,
    unread: u32,
    next_seq: u64,
    state: ConversationState,
    #[zeroize(skip)]
    ended: Option<EndReason>,
    #[zeroize(skip)]
    interference: Option<Interference>,
    #[zeroize(skip)]
    rollback: Option<RollbackNotice>,
    #[zeroize(skip)]
    recovery: Recovery,
    #[zeroize(skip)]
    unreadable: Option<UnreadableNotice>,
    #[zeroize(skip)]
    held: Vec<Held>,
}

/// A conversation as record format 2 stored it (protocol v2, before the unreadable notice
/// and held blobs).
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct ConversationV2 {
    id: String,
    name: String,
    mailbox: String,
    last_activity_ms: u64,
    unread: u32,
    next_seq: u64,
    state: ConversationState,
    #[zeroize(skip)]
    ended: Option<EndReason>,
    #[zeroize(skip)]
    interference: Option<Interference>,
    #[zeroize(skip)]
    rollback: Option<RollbackNotice>,
    #[zeroize(skip)]
    recovery: Recovery,
}

/// A conversation as protocol-v1 clients stored it (record format 1).
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct ConversationV1 {
    id: String,
    name: String,
    mailbox: String,
    last_activity_ms: u64,
    unread: u32,
    next_seq: u64,
    state: ConversationState,
}

/// Why a conversation cannot go on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Made with protocol version 1: its session cannot continue under version 2 (the wire
    /// format and keys differ). Start a new conversation.
    ProtocolV1,
    /// The other person's device was restored from an older copy after our last reply
    /// (`protocol::DecryptError::PeerRestored`): what it sends now can never be read here, and
    /// what we send cannot be read there. Meet again and start a new conversation. (Appended:
    /// records written before keep their meaning.) Lifted again if a later blob of theirs
    /// decrypts after all.
    PeerRestored,
    /// The other person's device deposited its restore signal (`docs/PROTOCOL.md` §6.9): one
    /// of the two devices went back to an older copy of the conversation (a restored backup,
    /// a profile copy, a save undone by a power loss), or the mailbox kept altering their
    /// blobs, and the two can no longer read each other. Final. (Appended.)
    Diverged,
}

impl core::fmt::Display for EndReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EndReason::ProtocolV1 => f.write_str(
                "it was made with an older version of Hush (protocol version 1) and cannot \
                 continue; start a new conversation",
            ),
            EndReason::PeerRestored => f.write_str(
                "the other person's device was restored from an older copy after your last \
                 reply; this conversation cannot continue: meet again and start a new one",
            ),
            EndReason::Diverged => f.write_str(
                "one of your two devices went back to an older copy of this conversation (or \
                 the mailbox altered messages) and the two can no longer read each other; meet \
                 again and start a new one",
            ),
        }
    }
}

/// Someone is interfering with this conversation: addresses only the two people (and the
/// mailbox operator) can write held bytes that are not theirs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interference {
    /// When it was first noticed (ms since the epoch).
    pub since_ms: u64,
    /// Our messages given up on ([`Status::Conflict`]): every address tried was taken.
    pub undelivered: u32,
    /// Distinct blobs found at addresses the peer would write that did not authenticate.
    pub rejected: u32,
}

/// This device runs on state older than what it once used (a restored backup or profile, or
/// a power loss that undid a save): the peer acknowledged blobs this session never sent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollbackNotice {
    /// When it was detected (ms since the epoch).
    pub detected_ms: u64,
    /// At least this many blobs were sent from the lost copy (messages, parts of messages or
    /// acknowledgements): what they said is not in this device's history.
    pub lost_blobs: u32,
}

/// The other person's answers cannot be read on this device: a blob that starts their next
/// chain authenticated its header (a key only the two people hold) but not its body
/// (`protocol::DecryptError::UnreadableAnswer`). Most likely this device was restored from an
/// older copy after they replied to the lost copy; a tampered body looks the same, so it is
/// not final: it is lifted when a later blob of theirs decrypts. Meanwhile our messages that
/// are not delivered are marked [`Status::Failed`] (they cannot be confirmed).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreadableNotice {
    /// When it was first seen (ms since the epoch).
    pub since_ms: u64,
}

impl UnreadableNotice {
    /// When this device tells the other person's device, if the notice still stands (ms since
    /// the epoch): [`crate::RETRANSMIT_AFTER_MS`] (5 minutes) after it was first seen, so that
    /// one altered blob does not end the conversation. It goes out with the first poll or
    /// flush from then on (restore signals, `docs/PROTOCOL.md` §6.9), and the conversation ends.
    pub fn signal_at_ms(&self) -> u64 {
        self.since_ms.saturating_add(crate::RETRANSMIT_AFTER_MS)
    }
}

impl core::fmt::Display for UnreadableNotice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(
            "The other person's messages can't be read on this device: one of the two \
             devices was probably restored from an older copy. Meet again and start a new \
             conversation.",
        )
    }
}

/// A blob of the peer's left on the mailbox for now (see `crate::receive`, "held blobs").
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// Its address.
    pub address: [u8; 32],
    /// When it was first held (ms since the epoch).
    pub since_ms: u64,
}

/// Recovery bookkeeping of one conversation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Our sequence numbers abandoned in a row since the mailbox last stored one of our blobs
    /// (squatted, or queued behind a squatted one). Kept below the receive window so the peer
    /// still finds the next one.
    pub abandoned_run: u32,
    /// Re-encryptions since the mailbox last stored one of our blobs.
    pub resends: u32,
    /// History entries to encrypt again (at later addresses), in order.
    pub resend: Vec<u64>,
    /// Distinct addresses of the peer's poll set whose blob did not authenticate (at most
    /// [`MAX_JUNK_REMEMBERED`]).
    pub junk: Vec<[u8; 32]>,
}

/// Most junk addresses remembered per conversation.
pub const MAX_JUNK_REMEMBERED: usize = 32;

/// Where a conversation stands.
#[derive(Serialize, Deserialize, Zeroize)]
pub enum ConversationState {
    /// We created an invite and wait for the other person to join.
    Waiting {
        /// The protocol's `PendingInvite` pickle (encrypted by the protocol core).
        #[serde(with = "serde_bytes")]
        pending: Vec<u8>,
        /// The invite link, to show again (a secret: shared only in person).
        link: String,
        /// When the invite stops being joinable (seconds since the epoch).
        expires_at: u64,
    },
    /// A live session.
    Active {
        /// The protocol's `Session` pickle (encrypted by the protocol core).
        #[serde(with = "serde_bytes")]
        session: Vec<u8>,
        /// The safety code to compare in person, grouped for reading.
        safety_code: String,
    },
    /// We joined, but someone else had already joined with the same invite (our hello found
    /// a different blob at its address). The session's keys are erased; only a new invite,
    /// exchanged in person, can start this conversation.
    InviteTaken,
}

/// An invite this vault created or joined, so that opening it again is recognised.
#[derive(Serialize, Deserialize)]
pub struct InviteRecord {
    /// The conversation the invite started.
    pub conversation: String,
    /// Whether this vault created the invite (else it joined it).
    pub created: bool,
}

/// Delivery state of a history entry.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Zeroize)]
pub enum Status {
    /// Ours, encrypted and stored locally; not yet acknowledged by the mailbox.
    Sending,
    /// Ours, every blob acknowledged by the mailbox.
    Sent,
    /// Ours, the last attempt failed; it is retried (same bytes, same address) later.
    Failed,
    /// Theirs.
    Received,
    /// Ours, never delivered: a different blob already sat at its address, and at each later
    /// address it was sent to again (at most [`crate::outbox::MAX_RESENDS`] times). Final.
    Conflict,
    /// Ours, on the other person's device: their acknowledgements cover every blob of it.
    /// (Appended: records written before keep their meaning.)
    Delivered,
}

/// One history entry.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Message {
    /// Position in the history.
    pub seq: u64,
    /// Whether we sent it.
    pub outgoing: bool,
    /// The text.
    pub text: String,
    /// Milliseconds since the epoch: when we sent it, or when it arrived.
    pub time_ms: u64,
    /// Delivery state.
    #[zeroize(skip)]
    pub status: Status,
    /// Ours: the protocol's message id of its first sending (`OutgoingBlob::message_id`),
    /// passed to `Session::encrypt_resend` when it is sent again, so that the other person
    /// shows it once. Zero: none yet (theirs, or written before record format 2).
    pub message_id: [u8; 8],
}

impl Record for Message {
    // Version 1 had no message id.
    const VERSION: u8 = 2;
    fn upgrade(version: u8, body: &[u8]) -> Option<Self> {
        if version != 1 {
            return None;
        }
        let mut old: MessageV1 = postcard::from_bytes(body).ok()?;
        Some(Message {
            seq: old.seq,
            outgoing: old.outgoing,
            text: core::mem::take(&mut old.text),
            time_ms: old.time_ms,
            status: old.status,
            message_id: [0; 8],
        })
    }
}

/// A history entry as record format 1 stored it.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct MessageV1 {
    seq: u64,
    outgoing: bool,
    text: String,
    time_ms: u64,
    #[zeroize(skip)]
    status: Status,
}

/// One encrypted blob of ours, kept (sealed) until the peer acknowledges it. Deposited and
/// deposited again byte for byte at its one address: a key and nonce never see other bytes.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Outgoing {
    /// The write key (the address is derived from it).
    pub write_key: [u8; 32],
    /// The blob, exactly as first encrypted.
    #[serde(with = "serde_bytes")]
    pub blob: Vec<u8>,
    /// What it carries.
    #[zeroize(skip)]
    pub kind: BlobKind,
    /// Whether the mailbox has stored it (201, or 409 over these very bytes).
    pub stored: bool,
    /// When the mailbox was last seen holding it (ms since the epoch): a retransmission check
    /// looks at it again [`crate::outbox::RETRANSMIT_AFTER_MS`] later.
    pub checked_ms: u64,
}

impl Record for Outgoing {
    // Version 1 (no sequence number, kept until the mailbox stored it) is dropped.
    const VERSION: u8 = 2;
}

/// Our hello as joiner, kept on the mailbox (deposited again, byte for byte, where its address
/// reads empty) until the invite can no longer be accepted, also after the inviter confirmed
/// it: a copy of the inviter's device restored to before it accepted polls the hello address
/// and nothing else, so without the hello it would wait for ever and the join never complete
/// (`docs/PROTOCOL.md` §8, "The hello after acceptance"). Written at join with the outbox's
/// hello; looked at only once that has left the outbox.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct KeptHello {
    /// The hello's write key (the hello address is derived from it).
    pub write_key: [u8; 32],
    /// The hello, exactly as first encrypted.
    #[serde(with = "serde_bytes")]
    pub blob: Vec<u8>,
    /// Until when it is kept (ms since the epoch, our clock): the invite's expiry plus
    /// `protocol::INVITE_CLOCK_TOLERANCE`, past which no inviter accepts it.
    pub until_ms: u64,
    /// When the mailbox was last seen holding it, or it was deposited again (ms since the
    /// epoch).
    pub checked_ms: u64,
    /// Checks in a row that found it still there (the interval doubles with each, as for
    /// acknowledgement-only blobs).
    pub quiet: u32,
}

impl Record for KeptHello {}

/// Blobs that a copy of this device, lost to a restore, sealed at the next positions of our
/// current sending chain, found there by the probe that skipped those positions
/// (`docs/PROTOCOL.md` §8, "Positions a lost copy used"). The peer reads a chain only
/// [`protocol::WINDOW`] positions past its first unread one: once these expired unread, it
/// could never reach our blobs behind them, and the lost copy is not there to deposit them
/// again. So this copy keeps them on the mailbox, byte for byte (their header authenticated
/// under our header key: never a stranger's bytes), with the retransmission check
/// (`crate::outbox`), until the peer confirms a blob of ours sealed after them.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct KeptLostBlobs {
    /// `(write key, blob)` in position order (at most `crate::PROBE_POSITIONS`).
    pub blobs: Vec<KeptLostBlob>,
    /// Our next sequence number when they were found: once the peer confirms it, the peer has
    /// read a blob of ours past them, and they are dropped.
    pub until_seq: u32,
}

impl Record for KeptLostBlobs {}

/// The peer's messages read and not shown yet, in the order they were read: each was read
/// behind a gap that a later floor passed, and the floor passed its own number too, so its
/// sender gave its blobs up and sends it again after the messages it overtook. Shown where
/// that copy completes, or after [`crate::receive::SET_ASIDE_MS`] (`docs/CLIENT.md`,
/// "Messages a later floor passes"). Written in the commit that read them: never read and
/// lost.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
pub struct SetAside {
    /// At most [`crate::receive::MAX_SET_ASIDE`].
    pub messages: Vec<SetAsideMessage>,
}

impl Record for SetAside {}

/// One message of [`SetAside`].
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct SetAsideMessage {
    /// Its protocol message id (16 hex digits' worth: 8 bytes).
    pub message_id: [u8; 8],
    /// The peer's sequence number of the blob that completed it.
    pub seq: u32,
    /// The peer's ratchet key of the chain it was read on.
    pub chain: [u8; 32],
    /// The plaintext.
    #[serde(with = "serde_bytes")]
    pub text: Vec<u8>,
    /// When it was read (ms since the epoch).
    pub read_ms: u64,
}

/// How many sequence numbers back a confirmed blob of ours is kept (`sent/{id}/{seq}`): as far
/// as the protocol remembers confirmed blobs to check a restarted digest
/// ([`protocol::MAX_RECENT_CONFIRMED`]), about 256 KiB per conversation.
pub const MAX_KEPT_SENT: u32 = protocol::MAX_RECENT_CONFIRMED as u32;

/// How long a confirmed blob is kept after the mailbox was last seen holding it (ms): the
/// mailbox's default lifetime, 7 days. Past it the blob has expired wherever it was not
/// deleted.
pub const KEPT_SENT_MS: u64 = 7 * 24 * 60 * 60 * 1_000;

/// Evidence that this device is a copy restored from an older backup whose lost copy read what
/// the peer deleted (a spent address this state still polls) or wrote what the peer read and
/// deleted (a spent address at our own next sending positions), with the peer deleting what
/// it reads (`Conversation::lost_evidence`; `docs/CLIENT.md`, "Putting back what a lost copy
/// read"). The peer puts back what it kept of ours, which makes the reads good again, but a
/// restored *writer* may write where the peer no longer reads, and without deletes the
/// peer's blobs left on the mailbox would have shown it. So the evidence is answered only by
/// the peer: once it confirms a blob of ours sealed after the evidence was found (our
/// sequence number `after_seq` or later), with no spent address polled any more. Until then
/// the conversation says one of the two devices went back (the unreadable notice), and the
/// restore signal ends it with its reason if that stands (`docs/PROTOCOL.md` §6.9).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LostEvidence {
    /// When it was first found (ms since the epoch).
    pub since_ms: u64,
    /// Our next sequence number then: the peer's confirmation of it answers the evidence.
    pub after_seq: u32,
}

/// Putting back our confirmed blobs (`Conversation::put_back`; `crate::put_back`): the
/// peer's acknowledgements went back, so its device is a restored copy, which never read
/// what its lost copy read. If the peer deletes what it reads, those blobs are gone from the
/// mailbox; we put the very bytes back where the mailbox reports the address spent. Which
/// ones the restored copy lacks its acknowledgement does not tell (it counts as settled
/// every number below the floor we sent since, including blobs it skipped and still awaits),
/// so every kept one is looked at.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutBack {
    /// When the peer was found behind (ms since the epoch).
    pub found_ms: u64,
    /// Kept blobs from this sequence number on are still to be looked at (a flush that
    /// failed part-way resumes here).
    pub resume_seq: u32,
    /// When every kept blob was looked at (ms since the epoch), `None` while some wait. The
    /// restored peer's blobs sealed before it read them still acknowledge too little: a new
    /// round starts only [`crate::RETRANSMIT_AFTER_MS`] after this.
    pub done_ms: Option<u64>,
    /// Flushes of this round that a network error stopped (`crate::put_back::MAX_PUT_BACK_TRIES`).
    pub tries: u32,
}

/// One blob of [`KeptLostBlobs`].
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct KeptLostBlob {
    /// The write key of its address (the address is derived from it).
    pub write_key: [u8; 32],
    /// The blob, exactly as the lost copy deposited it.
    #[serde(with = "serde_bytes")]
    pub blob: Vec<u8>,
}

/// What an outgoing blob carries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobKind {
    /// The joiner's hello (seq 0).
    Hello,
    /// A fragment of history entry `message`.
    Data {
        /// The history entry's sequence number.
        message: u64,
    },
    /// An acknowledgement only: kept until the peer confirms it (its next blob does; it is
    /// never acknowledged for its own sake), deposited again like the others meanwhile.
    Ack,
}

impl BlobKind {
    /// Whether a blob of this kind holds our floor while unconfirmed (`docs/PROTOCOL.md` §8,
    /// "Floor"): the hello and data do; an acknowledgement-only blob shows nothing, so the
    /// peer has no reason to wait for it.
    pub fn holds_floor(self) -> bool {
        self != BlobKind::Ack
    }
}

/// The conversation owes the peer an acknowledgement, due at `due_ms`.
#[derive(Serialize, Deserialize)]
pub struct AckDue {
    /// When to send it (ms since the epoch).
    pub due_ms: u64,
}

impl Record for AckDue {}
impl Record for InviteRecord {}

/// Encodes a record: version byte, then postcard.
pub fn encode<T: Record>(record: &T) -> Vec<u8> {
    let mut out = vec![T::VERSION];
    // Serializing these plain structs into a Vec cannot fail.
    if let Ok(body) = postcard::to_allocvec(record) {
        out.extend_from_slice(&body);
    }
    out
}

/// Decodes a record written by [`encode`] (or by an older version [`Record::upgrade`] reads);
/// `None` if it is malformed or of a version that cannot be read.
pub fn decode<T: Record>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&version, body)) if version == T::VERSION => postcard::from_bytes(body).ok(),
        Some((&version, body)) => T::upgrade(version, body),
        None => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn byte_fields_keep_the_format_a_plain_vec_had() {
        // `serde_bytes` is only faster: postcard writes a byte string and a sequence of `u8`
        // alike (varint length, then the bytes).
        #[derive(Serialize, Deserialize)]
        struct Before {
            write_key: [u8; 32],
            blob: Vec<u8>,
            kind: BlobKind,
            stored: bool,
            checked_ms: u64,
        }
        impl Record for Before {
            const VERSION: u8 = 2;
        }
        let before = encode(&Before {
            write_key: [3; 32],
            blob: vec![0, 1, 255, 7],
            kind: BlobKind::Data { message: 4 },
            stored: true,
            checked_ms: 9,
        });
        let now: Outgoing = decode(&before).unwrap();
        assert_eq!(now.blob, vec![0, 1, 255, 7]);
        assert_eq!(encode(&now), before);
    }

    #[test]
    fn protocol_v1_outbox_records_do_not_load() {
        #[derive(Serialize, Deserialize)]
        struct V1 {
            write_key: [u8; 32],
            blob: Vec<u8>,
        }
        impl Record for V1 {}
        let old = encode(&V1 {
            write_key: [3; 32],
            blob: vec![1; 1024],
        });
        assert!(decode::<Outgoing>(&old).is_none());
        assert_eq!(parse_outgoing_key("out/ab/0000000000000001-0000"), None);
    }

    #[test]
    fn a_protocol_v1_conversation_loads_as_ended() {
        #[derive(Serialize, Deserialize)]
        struct V1 {
            id: String,
            name: String,
            mailbox: String,
            last_activity_ms: u64,
            unread: u32,
            next_seq: u64,
            state: ConversationState,
        }
        impl Record for V1 {}
        let old = encode(&V1 {
            id: "ab".into(),
            name: "Bob".into(),
            mailbox: "https://m".into(),
            last_activity_ms: 5,
            unread: 2,
            next_seq: 7,
            state: ConversationState::Active {
                session: vec![1, 2, 3],
                safety_code: "1234".into(),
            },
        });
        let now: Conversation = decode(&old).unwrap();
        assert_eq!(now.ended, Some(EndReason::ProtocolV1));
        assert_eq!((now.name.as_str(), now.next_seq, now.unread), ("Bob", 7, 2));
        let back: Conversation = decode(&encode(&now)).unwrap();
        assert_eq!(back.ended, Some(EndReason::ProtocolV1));
    }

    #[test]
    fn a_conversation_of_record_format_3_loads_unverified_with_everything_else_kept() {
        #[derive(Serialize, Deserialize)]
        struct V3 {
            id: String,
            name: String,
            mailbox: String,
            last_activity_ms: u64,
            unread: u32,
            next_seq: u64,
            state: ConversationState,
            ended: Option<EndReason>,
            interference: Option<Interference>,
            rollback: Option<RollbackNotice>,
            recovery: Recovery,
            unreadable: Option<UnreadableNotice>,
            held: Vec<Held>,
        }
        impl Record for V3 {
            const VERSION: u8 = 3;
        }
        let old = encode(&V3 {
            id: "cd".into(),
            name: "Ann".into(),
            mailbox: "https://m".into(),
            last_activity_ms: 9,
            unread: 1,
            next_seq: 4,
            state: ConversationState::Active {
                session: vec![7; 5],
                safety_code: "5678".into(),
            },
            ended: None,
            interference: None,
            rollback: None,
            recovery: Recovery::default(),
            unreadable: None,
            held: Vec::new(),
        });
        let now: Conversation = decode(&old).unwrap();
        assert_eq!((now.name.as_str(), now.next_seq, now.unread), ("Ann", 4, 1));
        assert_eq!(now.verified_ms, None);
        let mut marked = now;
        marked.verified_ms = Some(11);
        let back: Conversation = decode(&encode(&marked)).unwrap();
        assert_eq!(back.verified_ms, Some(11));
        assert!(matches!(back.state, ConversationState::Active { .. }));
    }

    #[test]
    fn a_conversation_of_record_format_4_loads_with_no_put_back_and_no_evidence() {
        #[derive(Serialize, Deserialize)]
        struct V4 {
            id: String,
            name: String,
            mailbox: String,
            last_activity_ms: u64,
            unread: u32,
            next_seq: u64,
            state: ConversationState,
            ended: Option<EndReason>,
            interference: Option<Interference>,
            rollback: Option<RollbackNotice>,
            recovery: Recovery,
            unreadable: Option<UnreadableNotice>,
            held: Vec<Held>,
            verified_ms: Option<u64>,
        }
        impl Record for V4 {
            const VERSION: u8 = 4;
        }
        let old = encode(&V4 {
            id: "ef".into(),
            name: "Bo".into(),
            mailbox: "https://m".into(),
            last_activity_ms: 9,
            unread: 2,
            next_seq: 6,
            state: ConversationState::Active {
                session: vec![7; 5],
                safety_code: "1234".into(),
            },
            ended: None,
            interference: None,
            rollback: None,
            recovery: Recovery::default(),
            unreadable: Some(UnreadableNotice { since_ms: 3 }),
            held: Vec::new(),
            verified_ms: Some(5),
        });
        let now: Conversation = decode(&old).unwrap();
        assert_eq!((now.name.as_str(), now.next_seq, now.unread), ("Bo", 6, 2));
        assert_eq!(now.verified_ms, Some(5));
        assert!(now.unreadable.is_some());
        assert_eq!((now.put_back, now.lost_evidence), (None, None));
        let mut marked = now;
        marked.put_back = Some(PutBack {
            found_ms: 1,
            resume_seq: 2,
            done_ms: None,
            tries: 1,
        });
        marked.lost_evidence = Some(LostEvidence {
            since_ms: 3,
            after_seq: 4,
        });
        let back: Conversation = decode(&encode(&marked)).unwrap();
        assert_eq!(back.put_back, marked.put_back);
        assert_eq!(back.lost_evidence, marked.lost_evidence);
    }

    #[test]
    fn a_message_of_record_format_1_loads_without_an_id() {
        #[derive(Serialize)]
        struct V1 {
            seq: u64,
            outgoing: bool,
            text: String,
            time_ms: u64,
            status: Status,
        }
        let mut old = vec![1];
        old.extend(
            postcard::to_allocvec(&V1 {
                seq: 4,
                outgoing: true,
                text: "old".into(),
                time_ms: 9,
                status: Status::Sent,
            })
            .unwrap(),
        );
        let now: Message = decode(&old).unwrap();
        assert_eq!(
            (now.seq, now.text.as_str(), now.status, now.message_id),
            (4, "old", Status::Sent, [0; 8])
        );
    }

    #[test]
    fn keys_sort_in_sequence_order() {
        assert!(message_key("a", 2) < message_key("a", 10));
        assert!(message_key("a", 0xff) < message_key("a", 0x100));
        assert!(outgoing_key("a", 2) < outgoing_key("a", 10));
        assert!(outgoing_key("a", 0xffff) < outgoing_key("a", 0x10000));
        assert_eq!(
            parse_outgoing_key(&outgoing_key("ab", 0x1f)),
            Some(("ab".into(), 0x1f))
        );
        assert_eq!(parse_outgoing_key("msg/ab/01"), None);
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let msg = Message {
            seq: 3,
            outgoing: true,
            text: "hi".into(),
            time_ms: 5,
            status: Status::Delivered,
            message_id: [7; 8],
        };
        let back: Message = decode(&encode(&msg)).unwrap();
        assert_eq!(
            (back.seq, back.text.as_str(), back.status, back.message_id),
            (3, "hi", Status::Delivered, [7; 8])
        );
        assert!(decode::<Message>(&[]).is_none());
        assert!(decode::<Message>(&[9, 1, 2]).is_none());
        assert!(decode::<Conversation>(&encode(&msg)).is_none());
    }
}

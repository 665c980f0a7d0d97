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
//! | `out/{id}/{seq:016x}-{part:04x}` | [`Outgoing`]: one encrypted blob not yet acknowledged by the mailbox |
//! | `inv/{tag}` | [`InviteRecord`]: an invite this vault created or joined (see [`invite_key`]) |

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Key of the vault header.
pub const VAULT_KEY: &str = "vault";
/// Current version of the record formats below.
pub const RECORD_VERSION: u8 = 1;

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

/// Key of one unacknowledged blob of message `seq`.
pub fn outgoing_key(id: &str, seq: u64, part: usize) -> String {
    format!("out/{id}/{seq:016x}-{part:04x}")
}

/// Prefix of every unacknowledged blob of a conversation.
pub fn outgoing_prefix(id: &str) -> String {
    format!("out/{id}/")
}

/// Prefix of every unacknowledged blob of one message.
pub fn outgoing_message_prefix(id: &str, seq: u64) -> String {
    format!("out/{id}/{seq:016x}-")
}

/// Prefix of every unacknowledged blob of every conversation.
pub const OUTGOING_PREFIX: &str = "out/";

/// `out/{id}/{seq:016x}-{part:04x}` → (`id`, `seq`); `None` for any other name.
pub fn parse_outgoing_key(name: &str) -> Option<(String, u64)> {
    let rest = name.strip_prefix(OUTGOING_PREFIX)?;
    let (id, tail) = rest.split_once('/')?;
    let (seq, _part) = tail.split_once('-')?;
    Some((id.to_owned(), u64::from_str_radix(seq, 16).ok()?))
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

/// One conversation.
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
}

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
    /// Ours, never delivered: a different blob already sat at its address, so the mailbox
    /// kept that one. Not retried (it cannot succeed).
    Conflict,
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
}

/// One encrypted blob awaiting the mailbox's acknowledgement. Retried byte for byte.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Outgoing {
    /// The write key (the address is derived from it).
    pub write_key: [u8; 32],
    /// The blob, exactly as first encrypted.
    #[serde(with = "serde_bytes")]
    pub blob: Vec<u8>,
}

/// Encodes a record: version byte, then postcard.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    // Serializing these plain structs into a Vec cannot fail.
    if let Ok(body) = postcard::to_allocvec(record) {
        out.extend_from_slice(&body);
    }
    out
}

/// Decodes a record written by [`encode`]; `None` if it is malformed or of an unknown version.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => postcard::from_bytes(body).ok(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn byte_fields_keep_the_format_a_plain_vec_had() {
        // `serde_bytes` is only faster: postcard writes a byte string and a sequence of `u8`
        // alike (varint length, then the bytes), so records written before still load.
        #[derive(Serialize)]
        struct Before {
            write_key: [u8; 32],
            blob: Vec<u8>,
        }
        let before = encode(&Before {
            write_key: [3; 32],
            blob: vec![0, 1, 255, 7],
        });
        let now: Outgoing = decode(&before).unwrap();
        assert_eq!(now.blob, vec![0, 1, 255, 7]);
        assert_eq!(encode(&now), before);
    }

    #[test]
    fn keys_sort_in_sequence_order() {
        assert!(message_key("a", 2) < message_key("a", 10));
        assert!(message_key("a", 0xff) < message_key("a", 0x100));
        assert!(outgoing_key("a", 1, 2).starts_with(&outgoing_message_prefix("a", 1)));
        assert!(!outgoing_key("a", 11, 0).starts_with(&outgoing_message_prefix("a", 1)));
        assert_eq!(
            parse_outgoing_key(&outgoing_key("ab", 0x1f, 3)),
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
            status: Status::Sending,
        };
        let back: Message = decode(&encode(&msg)).unwrap();
        assert_eq!(
            (back.seq, back.text.as_str(), back.status),
            (3, "hi", Status::Sending)
        );
        assert!(decode::<Message>(&[]).is_none());
        assert!(decode::<Message>(&[9, 1, 2]).is_none());
        assert!(decode::<Conversation>(&encode(&msg)).is_none());
    }
}

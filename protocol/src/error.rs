//! Errors, one enum per operation. Every variant says whose fault it is: the peer or the
//! network (a blob that does not authenticate), the caller (an API misuse), or stored data.

use thiserror::Error;

/// Why [`Session::decrypt`](crate::Session::decrypt) or
/// [`PendingInvite::accept`](crate::PendingInvite::accept) rejected a blob. The session is
/// unchanged after every one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// Caller: the blob is not exactly [`BLOB_LEN`](crate::BLOB_LEN) bytes.
    #[error("blob must be exactly {expected} bytes, got {got}")]
    WrongLength {
        /// The required length.
        expected: usize,
        /// The length passed in.
        got: usize,
    },
    /// Caller or network: the address is not one this session polls (outside the look-ahead
    /// window, a skipped key already deleted, or never ours).
    #[error("address is not in this session's poll set")]
    UnknownAddress,
    /// Network: a message at this address was already decrypted (a duplicate or a replay).
    #[error("message at this address was already received")]
    Duplicate,
    /// Peer or network: the header does not authenticate under the key the address selects.
    #[error("header failed authentication")]
    HeaderAuthentication,
    /// Peer or network: the body does not authenticate under its message key.
    #[error("message failed authentication")]
    BodyAuthentication,
    /// Peer: the header authenticated but is inconsistent (ratchet key of the wrong chain).
    #[error("authenticated header is inconsistent with its address")]
    InconsistentHeader,
    /// Peer: the new ratchet public key is of small order.
    #[error("peer ratchet key is invalid")]
    InvalidRatchetKey,
    /// Peer: the decrypted payload is malformed (bad kind, counts, length or padding).
    #[error("decrypted payload is malformed")]
    MalformedPayload,
    /// Caller: the invite has expired (checked by `PendingInvite::accept`).
    #[error("the invite has expired")]
    InviteExpired,
    /// Peer: in mutual mode the hello came from another key than the one scanned in person.
    #[error("the join came from another key than the scanned invite")]
    UnexpectedJoiner,
    /// Peer: the other device was restored from an older copy of itself and went on from a
    /// ratchet step we already answered: nothing this session holds can read it again, and
    /// the conversation cannot continue (`docs/PROTOCOL.md` §6.6). Start a new one.
    #[error(
        "the other device was restored from an older copy after our last reply; this conversation cannot continue"
    )]
    PeerRestored,
    /// Peer or network: a blob that starts the peer's next chain authenticated its header (a
    /// key only the two people hold) but not its body: the peer answered a ratchet key this
    /// state does not have, so this device was most likely restored from an older copy after
    /// the other person replied (`docs/PROTOCOL.md` §6.6), or the body was tampered with.
    /// Nothing from the peer can be read until it is resolved; not final by itself.
    #[error(
        "the other person answered a state this device no longer has (restored from an older copy?)"
    )]
    UnreadableAnswer,
}

/// Why [`Session::encrypt`](crate::Session::encrypt) refused a plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncryptError {
    /// Caller: the plaintext is longer than [`MAX_MESSAGE_LEN`](crate::MAX_MESSAGE_LEN).
    #[error("plaintext of {len} bytes exceeds the maximum of {max}")]
    MessageTooLong {
        /// The plaintext length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Caller: the sending chain would exceed 2³² − 1 messages; the peer must reply first.
    #[error("sending chain exhausted; wait for a reply")]
    ChainExhausted,
    /// Peer: the stored peer ratchet key is of small order (cannot happen for a session built
    /// by this crate).
    #[error("peer ratchet key is invalid")]
    InvalidRatchetKey,
}

/// Why an invite could not be created, parsed or joined.
///
/// The messages of the link variants (`NotAnInvite`, `Incomplete`, `ExtraCharacters`,
/// `Ambiguous`, `InvalidBase64`, `UnsupportedVersion`) are worded for the person who pasted the
/// link: the web app shows them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InviteError {
    /// Caller: the expiry time is not after `now`.
    #[error("expiry must be later than now")]
    InvalidExpiry,
    /// Caller: the mailbox URL is longer than [`MAX_MAILBOX_URL_LEN`](crate::MAX_MAILBOX_URL_LEN).
    #[error("mailbox URL too long")]
    UrlTooLong,
    /// Caller: the mailbox URL contains a space or a control character (no URL does).
    #[error("mailbox URL contains a space or a control character")]
    InvalidUrl,
    /// Data: the invite bytes are too short, or the mailbox URL is not UTF-8 or contains a space
    /// or a control character.
    #[error("invite is malformed")]
    Malformed,
    /// Data: the invite's version byte is not one this crate reads (a newer format).
    #[error("the invite was made by a newer version of Hush (invite format {0})")]
    UnsupportedVersion(u8),
    /// Data: the invite was made by an older version of Hush (invite format 1), whose
    /// conversations this version cannot hold: ask for a new invite.
    #[error("the invite was made by an older version of Hush: ask for a new invite")]
    OlderVersion(u8),
    /// Data: the link text holds no invite at all (nothing that starts like one).
    #[error("this text holds no Hush invite")]
    NotAnInvite,
    /// Data: the link holds the start of an invite but too few characters: cut short, or
    /// characters lost in the middle.
    #[error("the invite is incomplete ({found} of at least {needed} characters)")]
    Incomplete {
        /// Invite characters found.
        found: usize,
        /// The fewest an invite has.
        needed: usize,
    },
    /// Data: a complete invite followed, without a break, by characters that cannot belong
    /// to it.
    #[error("the invite has extra characters joined to its end")]
    ExtraCharacters,
    /// Data: the invite could end at more than one place (an invite with a mailbox URL
    /// followed by other text, or broken inside its URL): refused rather than guessed.
    #[error("it is unclear where the invite ends (text after it, or a break inside it)")]
    Ambiguous,
    /// Data: the link's invite characters do not decode: some are missing or were changed.
    #[error("the invite is damaged (characters are missing or were changed)")]
    InvalidBase64,
    /// Data: the invite's public key is of small order.
    #[error("invite public key is invalid")]
    InvalidPublicKey,
    /// Caller: the invite expired, by the caller's clock, longer ago than
    /// [`INVITE_CLOCK_TOLERANCE`](crate::INVITE_CLOCK_TOLERANCE) before `join` was called.
    #[error("the invite has expired")]
    Expired,
    /// Caller: in mutual mode, the scanned invite is this side's own.
    #[error("this is our own invite")]
    OwnInvite,
}

/// Why a pickle could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PickleError {
    /// Data: too short to be a pickle.
    #[error("pickle is truncated")]
    Truncated,
    /// Data: written by a pickle format this crate does not read.
    #[error("unsupported pickle version {0}")]
    UnsupportedVersion(u8),
    /// Caller or data: wrong pickle key, or the pickle was modified.
    #[error("pickle failed authentication (wrong key or corrupted)")]
    Authentication,
    /// Data: authenticated but its contents do not decode (a bug in the writer).
    #[error("pickle contents are malformed")]
    Malformed,
    /// Caller: a pickle of a different kind (session versus pending invite).
    #[error("pickle holds a different kind of object")]
    WrongKind,
    /// Data: a conversation of protocol version 1. Version 2 changed the wire format, the
    /// invite's key schedule and the first chains' keys, so such a conversation cannot
    /// continue (the peer speaks version 2 too): start a new conversation.
    #[error(
        "this conversation was made with protocol version 1 and cannot continue; start a new conversation"
    )]
    ProtocolV1,
}

//! Why a client operation failed.

use thiserror::Error;

use crate::platform::{LockError, NetError, StorageError};
use crate::records::EndReason;
use crate::vault::VaultError;

/// Why a client operation failed, grouped by fault: the caller (locked, unknown id), the
/// device (storage, lock), the mailbox (network), the peer or the user's input (invite,
/// message length). The browser adapter maps these to stable JS error codes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The vault is locked: unlock it first.
    #[error("the vault is locked")]
    Locked,
    /// No vault exists yet on this device.
    #[error("no vault exists yet")]
    NoVault,
    /// A vault already exists on this device (also when another tab created one first).
    #[error("a vault already exists")]
    VaultExists,
    /// Vault errors (wrong passphrase, tampered record, …).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The record store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The mailbox could not be reached or refused the request.
    #[error(transparent)]
    Network(#[from] NetError),
    /// No conversation with that id.
    #[error("no such conversation")]
    UnknownConversation,
    /// The conversation has ended and cannot send (its history stays readable): for
    /// [`EndReason::ProtocolV1`], it was made with protocol version 1, whose sessions protocol
    /// version 2 cannot continue. Start a new conversation.
    #[error("this conversation has ended: {reason}")]
    ConversationEnded {
        /// Why.
        reason: EndReason,
    },
    /// The conversation is still waiting for the other person.
    #[error("the other person has not joined yet")]
    NotJoined,
    /// The invite was created in this vault: it is for the other person's device.
    #[error("this is your own invite: the other person opens it on their device")]
    OwnInvite,
    /// This vault already joined that invite.
    #[error("you already joined this invite")]
    AlreadyJoined {
        /// The conversation it started, if it still exists.
        conversation: Option<String>,
    },
    /// The invite link or code is not valid.
    #[error("invalid invite: {0}")]
    InvalidInvite(#[from] protocol::InviteError),
    /// The message is too long, or the protocol refused to encrypt it now.
    #[error("cannot send: {0}")]
    Encrypt(#[from] protocol::EncryptError),
    /// A draft longer than [`crate::drafts::MAX_DRAFT_LEN`]: not kept (the one before stays).
    #[error("the draft is too long to keep: {len} bytes, at most {max}")]
    DraftTooLong {
        /// Its length in bytes.
        len: usize,
        /// The longest draft kept, in bytes.
        max: usize,
    },
    /// A protocol pickle did not load (corrupted or from an unknown version).
    #[error("stored session is unreadable: {0}")]
    Pickle(#[from] protocol::PickleError),
    /// A stored record is malformed.
    #[error("a stored record is malformed")]
    CorruptRecord,
    /// No history entry with that sequence number in this conversation.
    #[error("no such message")]
    NoSuchMessage,
    /// The message is still being sent (not on the mailbox yet): it can be deleted from this
    /// device once it is sent.
    #[error("this message is still being sent; delete it once it is sent")]
    StillSending,
    /// The conversation lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
}

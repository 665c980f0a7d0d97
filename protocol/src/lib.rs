//! Hush protocol core.
//!
//! A two-party Double Ratchet (Signal, revision 1, with header encryption) in which every
//! message is deposited at a fresh 32-byte mailbox address that only the two participants can
//! compute. This crate is pure: it performs no I/O and reads no clock; randomness and time are
//! passed in by the caller. See `docs/PROTOCOL.md` for the specification.
//!
//! * Every blob is exactly [`BLOB_LEN`] bytes of ciphertext: no version byte, no cleartext
//!   header, nothing that links two blobs. Each blob's keys are hedged with fresh randomness
//!   and its own plaintext ([`HEDGE_LEN`] bytes of it travel in the blob), so a session state
//!   replayed after a restore never encrypts two plaintexts under one key and nonce.
//! * Every blob carries a sequence number and an [`Acknowledgement`] of what its sender has
//!   received: the caller learns which of its blobs reached the other device
//!   ([`Received::acknowledged`]) and whether this device was rolled back ([`Rollback`]).
//! * Every blob lives at its own [`Address`] = `SHA-256("hush/v1/address" ‖ write_key)`; the
//!   [`WriteKey`] is derived from the chain's header key and the message number, so the
//!   receiver can compute the next [`WINDOW`] addresses of the current and the next chain.
//! * [`Session::decrypt`] works on copies and changes the session only after every check
//!   passed; it reports which addresses no longer need polling.
//! * Invites ([`Invite`], [`PendingInvite`]) start a conversation from one in-person scan,
//!   checked with a [`SafetyCode`]; in mutual mode ([`PendingInvite::start_mutual`]) both
//!   people scan each other and nothing can race.
//! * Only the encrypted, versioned pickle ([`Session::pickle`]) leaves the crate.
//!
//! # A whole round trip
//!
//! ```
//! use protocol::{Invite, Session};
//! # use protocol::testing::SeededRng;
//! # let mut rng = SeededRng::new(1);
//! // `rng` is any `rand_core::CryptoRng`, e.g. `getrandom::SysRng` wrapped in `UnwrapErr`.
//! let now = 1_700_000_000;
//!
//! // Inviter: create an invite and show it as a QR code or a link fragment.
//! let (pending, invite) = Invite::create(&mut rng, now, now + 600, None)?;
//! let link = invite.to_link_fragment();
//!
//! // Joiner: parse the link and join; deposit the hello blob.
//! let invite = Invite::from_link_fragment(&link)?;
//! let (mut joiner, hello) = invite.join(&mut rng, now + 5)?;
//! let mut mailbox = std::collections::HashMap::new();
//! for out in hello {
//!     assert!(out.write_key.authorizes(&out.address));
//!     mailbox.insert(out.address, out.blob);
//! }
//!
//! // Inviter: poll the one address of the pending invite, accept the hello.
//! let address = pending.poll_addresses()[0];
//! let mut inviter = pending.accept(now + 10, &address, &mailbox[&address])?;
//! assert_eq!(inviter.safety_code(), joiner.safety_code()); // compared in person
//!
//! // Both sides now send; each polls its own set of addresses.
//! let floor = inviter.next_seq(); // nothing of ours is awaiting retransmission
//! for out in inviter.encrypt(&mut rng, b"hello from the inviter", floor)? {
//!     mailbox.insert(out.address, out.blob);
//! }
//! for address in joiner.poll_addresses() {
//!     if let Some(blob) = mailbox.remove(&address) {
//!         let received = joiner.decrypt(&address, &blob)?;
//!         assert_eq!(received.plaintext.as_deref().map(|p| &p[..]), Some(&b"hello from the inviter"[..]));
//!         assert!(received.retired.contains(&address));
//!     }
//! }
//!
//! // Persist: only the encrypted pickle leaves the crate.
//! let pickle = joiner.pickle(&[7u8; 32]);
//! let joiner = Session::from_pickle(&[7u8; 32], &pickle)?;
//! # let _ = joiner;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod acknowledgement;
pub mod address;
pub mod base64url;
mod chain_key;
mod crypto;
mod double_ratchet;
mod error;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
mod header_key;
mod hedge;
mod invite;
mod message;
mod pickle;
mod ratchet_key;
mod read_addresses;
mod receiving_chain;
mod restore_signal;
mod root_key;
mod safety_code;
mod secret;
mod sending_chain;
mod session;
mod skipped_keys;
mod stream;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use acknowledgement::{ACK_WINDOW, Acknowledgement};
pub use address::{ADDRESS_LABEL, ADDRESS_LEN, Address, WriteKey};
pub use double_ratchet::{
    BEHIND_ANSWERED_SIGNALS, BEHIND_SIGNALS, DUPLICATE_MEMORY, FORK_WINDOW, MAX_ABANDONED_KEYS,
    MAX_SKIP, NEXT_CHAIN_SKIP_MAX, OutgoingBlob, PollSet,
};
pub use error::{DecryptError, EncryptError, InviteError, PickleError};
pub use header_key::{ENCRYPTED_HEADER_LEN, HEADER_LEN, Role, WRITE_KEY_LABEL};
pub use hedge::HEDGE_LEN;
pub use invite::{
    FIRST_HEADER_KEYS_LABEL, INVITE_ACCEPT_GRACE, INVITE_BASE_LEN, INVITE_CLOCK_TOLERANCE,
    INVITE_KDF_LABEL, INVITE_LINK_MIN_LEN, INVITE_VERSION, Invite, MAX_MAILBOX_URL_LEN,
    MUTUAL_KDF_LABEL, MutualStart, PendingInvite,
};
pub use message::{
    BLOB_LEN, FRAGMENT_CAPACITY, FRAGMENT_HEADER_LEN, MAX_FRAGMENTS, MAX_MESSAGE_LEN,
    MAX_PENDING_MESSAGES, PAYLOAD_LEN, PayloadKind,
};
pub use pickle::PICKLE_VERSION;
pub use read_addresses::READ_ADDRESS_MEMORY;
pub use receiving_chain::WINDOW;
pub use restore_signal::{
    BEHIND_ANSWERED_SIGNAL_KEY_LABEL, BEHIND_SIGNAL_KEY_LABEL, RESTORE_MEMORY,
    RESTORE_SIGNAL_BLOB_LABEL, RESTORE_SIGNAL_KEY_LABEL, RESTORE_SIGNAL_WRITE_KEY_LABEL,
    RestoreSignal,
};
pub use safety_code::{SAFETY_CODE_DIGITS, SAFETY_CODE_LABEL, SafetyCode};
pub use session::{
    FORK_SIGNAL_REACH, MAX_ROLLBACK_SKIP, MESSAGE_ID_LABEL, Received, Session, check_length,
};
pub use skipped_keys::{MAX_SKIPPED_KEYS, SKIPPED_KEY_RETENTION};
pub use stream::{
    MAX_AHEAD, MAX_RECEIVED_HEDGES, MAX_RECENT_CONFIRMED, MAX_UNCONFIRMED, MESSAGE_ID_LEN,
    MESSAGE_ID_MEMORY, RECEIVED_HEDGE_LEN, Rollback, STREAM_DIGEST_LEN,
};

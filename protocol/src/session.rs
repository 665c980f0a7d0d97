//! A live conversation: the ratchet plus multi-blob reassembly and the safety code.

use crate::address::Address;
use crate::double_ratchet::{OutgoingBlob, PollSet, Ratchet};
use crate::error::{DecryptError, EncryptError};
use crate::header_key::Role;
use crate::message::{KIND_DATA, MAX_MESSAGE_LEN, Reassembly, split};
use crate::safety_code::SafetyCode;
use crate::skipped_keys::SKIPPED_KEY_RETENTION;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// One party's end of a conversation. Not `Serialize`: persist it with [`Session::pickle`].
pub struct Session {
    pub(crate) ratchet: Ratchet,
    pub(crate) reassembly: Reassembly,
    pub(crate) safety_code: SafetyCode,
}

/// What one successful [`Session::decrypt`] yields.
#[derive(Clone, PartialEq, Eq)]
pub struct Received {
    /// The whole plaintext when this blob completed a message (immediately for a one-blob
    /// message; at the last missing fragment for a multi-blob one); otherwise `None`.
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    /// Addresses that left the poll set because of this receive (the one just read, window
    /// slots of messages that were never sent, skipped keys deleted by the bounds). The caller
    /// may stop polling them and delete any stored blob.
    pub retired: Vec<Address>,
}

impl core::fmt::Debug for Received {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Received")
            .field("plaintext_len", &self.plaintext.as_ref().map(|p| p.len()))
            .field("retired", &self.retired)
            .finish()
    }
}

impl Session {
    /// Encrypts `plaintext` (at most [`MAX_MESSAGE_LEN`] bytes) into one or more blobs, in
    /// order. Each must be deposited at its address with its write key.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Result<Vec<OutgoingBlob>, EncryptError> {
        if plaintext.len() > MAX_MESSAGE_LEN {
            return Err(EncryptError::MessageTooLong {
                len: plaintext.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        self.ratchet.encrypt(rng, &split(plaintext))
    }

    /// The addresses to fetch now, in the order the peer sent them: the addresses of skipped
    /// messages still awaited, [`WINDOW`](crate::WINDOW) upcoming addresses of the peer's
    /// current chain, and `WINDOW` of its next chain (once our latest ratchet key has been
    /// sent).
    pub fn poll_addresses(&self) -> Vec<Address> {
        self.ratchet.poll_set().all()
    }

    /// The same addresses by segment, for a caller that wants to read everything of the
    /// current chain before stepping to the next (so messages keep their send order).
    pub fn poll_set(&self) -> PollSet {
        self.ratchet.poll_set()
    }

    /// Decrypts the blob fetched from `address`. On any error the session is unchanged.
    pub fn decrypt(&mut self, address: &Address, blob: &[u8]) -> Result<Received, DecryptError> {
        let decrypted = self.ratchet.decrypt(address, blob)?;
        let event = self.ratchet.receive_events;
        let plaintext = if decrypted.fragment.kind == KIND_DATA {
            self.reassembly
                .add(&decrypted.chain, decrypted.n, decrypted.fragment, event)
        } else {
            None
        };
        self.reassembly.expire(event, SKIPPED_KEY_RETENTION);
        Ok(Received {
            plaintext,
            retired: decrypted.retired,
        })
    }

    /// The code both people compare in person.
    pub fn safety_code(&self) -> &SafetyCode {
        &self.safety_code
    }

    /// Whether this side created the invite or joined it.
    pub fn role(&self) -> Role {
        self.ratchet.role
    }
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.ratchet.role)
            .field("ratchet_public_key", &self.ratchet.ratchet_key)
            .field("skipped_keys", &self.ratchet.skipped.entries.len())
            .finish_non_exhaustive()
    }
}

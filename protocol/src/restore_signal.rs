//! The restore signal (`docs/PROTOCOL.md` §6.9): how a device restored from a copy older than
//! the other person's last ratchet steps tells them so, when no chain it can still derive is
//! one they read.
//!
//! A restored state holds some root key `RK` the other person also held, perhaps many steps
//! ago. Both derive from every root key a restore-signal key
//! `RS = HMAC(RK, "hush/v2/restore-signal-key")`, and from it, per writer role, one write
//! key, one address and one 1,024-byte blob, all deterministic. Each party polls the
//! addresses of the peer's signal for its current root key and its last
//! [`RESTORE_MEMORY`] earlier ones. A restored device that finds it cannot read the peer's
//! answers (`DecryptError::UnreadableAnswer`) deposits its signal; the peer, finding the
//! exact expected bytes there, learns that the conversation cannot continue.
//!
//! Security properties:
//! * only holders of `RK` (the two people, or whoever stole a state holding it) can compute
//!   the address's write key or the blob; the check compares in constant time;
//! * `RS` is a one-way function of `RK` under its own label: keeping it for past roots
//!   exposes no message key, chain key or root key;
//! * the blob is deterministic, so two restored copies of one device deposit the same bytes
//!   (no second blob at an address), and it looks like any other blob: 1,024 bytes of HKDF
//!   output at a fresh address.

use crate::address::{Address, WriteKey};
use crate::crypto::{hkdf_sha256, hmac_sha256};
use crate::header_key::Role;
use crate::message::BLOB_LEN;
use crate::root_key::RootKey;
use crate::secret::secret_key;
use subtle::ConstantTimeEq;

/// HMAC label deriving `RS` from a root key.
pub const RESTORE_SIGNAL_KEY_LABEL: &[u8] = b"hush/v2/restore-signal-key";
/// HMAC label deriving the signal's write key from `RS` (followed by the writer's role byte).
pub const RESTORE_SIGNAL_WRITE_KEY_LABEL: &[u8] = b"hush/v2/restore-signal-write-key";
/// HKDF info of the signal's blob (salt `RS`, input the writer's role byte).
pub const RESTORE_SIGNAL_BLOB_LABEL: &[u8] = b"hush/v2/restore-signal-blob";

/// HMAC label deriving, from `RS`, the key of the "behind" signal: written by a party whose
/// blobs expired unconfirmed, under root keys older than the newest the peer provably reached;
/// a peer that finds it under its *current* root key is a restored copy that cannot follow.
pub const BEHIND_SIGNAL_KEY_LABEL: &[u8] = b"hush/v2/behind-signal-key";
/// HMAC label deriving, from `RS`, the key of the "behind, answered" signal: written with the
/// behind signals under root keys older than the *three* newest we remember; a
/// peer that finds it under the root key *before* its own latest send step is a restored
/// copy that answered before it found it cannot follow.
pub const BEHIND_ANSWERED_SIGNAL_KEY_LABEL: &[u8] = b"hush/v2/behind-answered-signal-key";

/// How many earlier root keys' restore-signal keys a session keeps (besides its current
/// root key's): a device restored to a copy at most this many DH ratchet steps behind the
/// other person can still tell them. 16 steps are 8 round trips of the conversation.
pub const RESTORE_MEMORY: usize = 16;

/// Blocks of HKDF output in one blob.
const BLOB_BLOCKS: usize = BLOB_LEN / 32;

secret_key! {
    /// `RS`, the restore-signal key of one root key.
    pub(crate) struct RestoreKey;
}

/// One restore signal to deposit: PUT `blob` at `address`, authorised by `write_key`. The
/// same state always gives the same signal, so depositing it again is harmless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSignal {
    /// The write capability the mailbox checks: `address == write_key.address()`.
    pub write_key: WriteKey,
    /// Where to store the blob.
    pub address: Address,
    /// Exactly [`BLOB_LEN`] random-looking bytes.
    pub blob: Vec<u8>,
}

impl RootKey {
    /// `RS = HMAC(RK, "hush/v2/restore-signal-key")`.
    pub(crate) fn restore_key(&self) -> RestoreKey {
        RestoreKey::from_bytes(&hmac_sha256(self.as_bytes(), &[RESTORE_SIGNAL_KEY_LABEL]))
    }
}

impl RestoreKey {
    /// `write_key = HMAC(RS, "hush/v2/restore-signal-write-key" ‖ role)`.
    fn write_key(&self, writer: Role) -> WriteKey {
        WriteKey(*hmac_sha256(
            self.as_bytes(),
            &[RESTORE_SIGNAL_WRITE_KEY_LABEL, &[writer.byte()]],
        ))
    }

    /// The address of `writer`'s signal under this key.
    pub(crate) fn address(&self, writer: Role) -> Address {
        self.write_key(writer).address()
    }

    /// `blob = HKDF-SHA256(salt = RS, ikm = role, info = "hush/v2/restore-signal-blob",
    /// L = 1024)`.
    fn blob(&self, writer: Role) -> Vec<u8> {
        let blocks = hkdf_sha256::<BLOB_BLOCKS>(
            self.as_bytes(),
            &[writer.byte()],
            &[RESTORE_SIGNAL_BLOB_LABEL],
        );
        blocks.iter().flatten().copied().collect()
    }

    /// `writer`'s whole signal under this key.
    pub(crate) fn signal(&self, writer: Role) -> RestoreSignal {
        RestoreSignal {
            write_key: self.write_key(writer),
            address: self.address(writer),
            blob: self.blob(writer),
        }
    }

    /// The key of the "behind" signal under this root key: its address and blob are derived
    /// from it as a restore signal's are from `RS`.
    pub(crate) fn behind_key(&self) -> RestoreKey {
        self.derive(BEHIND_SIGNAL_KEY_LABEL)
    }

    /// The key of the "behind, answered" signal under this root key, derived as
    /// [`Self::behind_key`] under its own label.
    pub(crate) fn behind_answered_key(&self) -> RestoreKey {
        self.derive(BEHIND_ANSWERED_SIGNAL_KEY_LABEL)
    }

    /// `HMAC(RS, label)`: a signal key one-way from this one.
    fn derive(&self, label: &[u8]) -> RestoreKey {
        RestoreKey::from_bytes(&hmac_sha256(self.as_bytes(), &[label]))
    }

    /// Whether `blob` is exactly `writer`'s signal under this key (constant time).
    pub(crate) fn is_signal(&self, writer: Role, blob: &[u8]) -> bool {
        blob.len() == BLOB_LEN && bool::from(self.blob(writer).as_slice().ct_eq(blob))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn signal_is_deterministic_role_separated_and_checked() {
        let rs = RootKey::from_bytes(&[3u8; 32]).restore_key();
        let joiner = rs.signal(Role::Joiner);
        assert_eq!(joiner, rs.signal(Role::Joiner));
        assert_eq!(joiner.blob.len(), BLOB_LEN);
        assert!(joiner.write_key.authorizes(&joiner.address));
        let inviter = rs.signal(Role::Inviter);
        assert_ne!(joiner.address, inviter.address);
        assert_ne!(joiner.blob, inviter.blob);
        assert!(rs.is_signal(Role::Joiner, &joiner.blob));
        assert!(!rs.is_signal(Role::Inviter, &joiner.blob));
        let mut flipped = joiner.blob.clone();
        flipped[1023] ^= 1;
        assert!(!rs.is_signal(Role::Joiner, &flipped));
        assert!(!rs.is_signal(Role::Joiner, &joiner.blob[..1023]));
        let other = RootKey::from_bytes(&[4u8; 32]).restore_key();
        assert!(!other.is_signal(Role::Joiner, &joiner.blob));
    }

    /// Whoever photographed the invite knows `SK` (it comes from the invite alone): the
    /// inviter must not watch the signal of `SK`, or they could end the conversation.
    #[test]
    fn the_invite_photographer_cannot_write_a_watched_signal() {
        use crate::invite::{Invite, invite_keys};
        use crate::testing::SeededRng;
        let mut rng = SeededRng::new(5);
        let (pending, invite) = Invite::create(&mut rng, 1_000, 2_000, None).unwrap();
        let (mut joiner, hello) = invite.join(&mut rng, 1_001).unwrap();
        let mut inviter = pending
            .accept(1_002, &hello[0].address, &hello[0].blob)
            .unwrap();
        let keys = invite_keys(
            &invite.secret,
            &invite.inviter_public,
            invite.expires_at,
            None,
        );
        let forged = keys.sk.restore_key().signal(Role::Joiner);
        for i in 0..4 {
            assert!(!inviter.restore_signal_addresses().contains(&forged.address));
            assert!(!inviter.is_restore_signal(&forged.address, &forged.blob));
            let b = inviter
                .encrypt(&mut rng, format!("i{i}").as_bytes(), inviter.next_seq())
                .unwrap();
            joiner.decrypt(&b[0].address, &b[0].blob).unwrap();
            let b = joiner
                .encrypt(&mut rng, format!("j{i}").as_bytes(), joiner.next_seq())
                .unwrap();
            inviter.decrypt(&b[0].address, &b[0].blob).unwrap();
        }
    }
}

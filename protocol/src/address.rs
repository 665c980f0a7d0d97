//! Mailbox addresses and the write capability that guards them.
//!
//! Every message is stored at a 32-byte [`Address`]. Whoever deposits it must present the
//! matching 32-byte [`WriteKey`], where `address = SHA-256("hush/v1/address" ‖ write_key)`.
//! Seeing an address (for example, watching it being polled) therefore does not let anyone
//! write to it: the mailbox checks the preimage before it accepts a deposit.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Domain-separation label hashed in front of the write key to form the address.
pub const ADDRESS_LABEL: &[u8] = b"hush/v1/address";

/// Length in bytes of an address and of a write key.
pub const ADDRESS_LEN: usize = 32;

/// A 32-byte mailbox address. Public: it is what the mailbox stores a blob under.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; ADDRESS_LEN]);

/// The 32-byte secret that authorises a deposit at one [`Address`].
///
/// Zeroized on drop, compared in constant time, and never printed by `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct WriteKey(pub [u8; ADDRESS_LEN]);

impl WriteKey {
    /// The address this key may write: `SHA-256(ADDRESS_LABEL ‖ write_key)`.
    ///
    /// Preimage resistance of SHA-256 means the address reveals nothing that lets anyone
    /// compute the write key.
    pub fn address(&self) -> Address {
        let mut hasher = Sha256::new();
        hasher.update(ADDRESS_LABEL);
        hasher.update(self.0);
        Address(hasher.finalize().into())
    }

    /// Whether this key authorises writing `address`, compared in constant time.
    pub fn authorizes(&self, address: &Address) -> bool {
        self.address().0.ct_eq(&address.0).into()
    }
}

impl PartialEq for WriteKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for WriteKey {}

impl core::fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("WriteKey(..)")
    }
}

impl core::fmt::Debug for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Addresses are public, but logs must not carry them: print only a short prefix.
        write!(f, "Address({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn address_is_domain_separated_sha256_of_write_key() {
        let key = WriteKey([7u8; 32]);
        let mut plain = Sha256::new();
        plain.update([7u8; 32]);
        let undomained: [u8; 32] = plain.finalize().into();
        assert_ne!(key.address().0, undomained);
        assert!(key.authorizes(&key.address()));
        assert!(!WriteKey([8u8; 32]).authorizes(&key.address()));
    }

    #[test]
    fn debug_hides_secrets() {
        assert_eq!(format!("{:?}", WriteKey([9u8; 32])), "WriteKey(..)");
    }
}

//! Chain keys and message keys: `KDF_CK` (Signal Double Ratchet §5.2).

use crate::crypto::HmacSha256;
use crate::secret::secret_key;
use hkdf::HmacImpl;

/// HMAC input that derives the message key from a chain key.
pub(crate) const MESSAGE_KEY_INPUT: u8 = 0x01;
/// HMAC input that derives the next chain key.
pub(crate) const CHAIN_KEY_INPUT: u8 = 0x02;

secret_key! {
    /// A sending or receiving chain key `CK`.
    pub(crate) struct ChainKey;
}

secret_key! {
    /// A message key `MK`: the ChaCha20-Poly1305 key of exactly one message body.
    pub(crate) struct MessageKey;
}

impl ChainKey {
    /// `KDF_CK(CK)`: `MK = HMAC-SHA256(CK, 0x01)`, `CK' = HMAC-SHA256(CK, 0x02)`.
    /// Replaces `self` with `CK'` and returns `MK`.
    pub(crate) fn step(&mut self) -> MessageKey {
        let keyed = <HmacSha256 as HmacImpl>::new_from_slice(self.as_bytes());
        let mut mk_mac = keyed.clone();
        HmacImpl::update(&mut mk_mac, &[MESSAGE_KEY_INPUT]);
        let mut ck_mac = keyed;
        HmacImpl::update(&mut ck_mac, &[CHAIN_KEY_INPUT]);
        let mk = zeroize::Zeroizing::new(<[u8; 32]>::from(HmacImpl::finalize(mk_mac)));
        let ck = zeroize::Zeroizing::new(<[u8; 32]>::from(HmacImpl::finalize(ck_mac)));
        self.0.copy_from_slice(&ck[..]);
        MessageKey::from_bytes(&mk)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;

    #[test]
    fn step_is_hmac_with_one_and_two() {
        let mut ck = ChainKey::from_bytes(&[5u8; 32]);
        let mk = ck.step();
        assert_eq!(mk.as_bytes(), &*hmac_sha256(&[5u8; 32], &[&[1]]));
        assert_eq!(ck.as_bytes(), &*hmac_sha256(&[5u8; 32], &[&[2]]));
        assert_eq!(format!("{ck:?} {mk:?}"), "ChainKey(..) MessageKey(..)");
    }
}

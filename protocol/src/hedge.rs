//! Hedged per-blob encryption (`docs/PROTOCOL.md` §3.7): every blob draws fresh randomness
//! and derives its own header and body keys, so that a session state replayed after a crash,
//! a restored backup or a VM snapshot never encrypts two different plaintexts under one key
//! and nonce.
//!
//! ```text
//! z   = 32 fresh bytes from the CSPRNG
//! r   = HMAC-SHA256(MK, "hush/v2/hedge" ‖ z ‖ header ‖ payload)[0..16]   (on the wire)
//! HKr = HMAC-SHA256(HK, "hush/v2/header-key" ‖ r)
//! MKr = HMAC-SHA256(MK, "hush/v2/body-key" ‖ r)
//! ```
//! `r` depends on the randomness *and* on the plaintext, keyed by the message key: two
//! different (header, payload) pairs under one replayed `MK` give different `r` even if the
//! randomness repeats too (a VM snapshot restores the generator's state), except with
//! probability 2⁻¹²⁸ per pair; different `r` give independent ChaCha20 keys, hence unrelated
//! keystreams and Poly1305 one-time keys. `r` is a PRF output under a secret key, so blobs
//! stay indistinguishable from random bytes. A retransmission sends the stored blob: the same
//! bytes, so nothing new is revealed.

use crate::crypto::hmac_sha256;
use zeroize::Zeroizing;

/// Length of the hedge `r` at the start of every blob.
pub const HEDGE_LEN: usize = 16;

/// Length of the fresh randomness `z` drawn per blob.
pub(crate) const HEDGE_RANDOM_LEN: usize = 32;

/// HMAC label of the hedge.
pub(crate) const HEDGE_LABEL: &[u8] = b"hush/v2/hedge";
/// HMAC label of the per-blob header key.
pub(crate) const HEADER_KEY_LABEL: &[u8] = b"hush/v2/header-key";
/// HMAC label of the per-blob body key.
pub(crate) const BODY_KEY_LABEL: &[u8] = b"hush/v2/body-key";

/// `r = HMAC(MK, "hush/v2/hedge" ‖ z ‖ header ‖ payload)[0..16]`.
pub(crate) fn hedge(
    message_key: &[u8; 32],
    random: &[u8; HEDGE_RANDOM_LEN],
    header: &[u8],
    payload: &[u8],
) -> [u8; HEDGE_LEN] {
    let full = hmac_sha256(message_key, &[HEDGE_LABEL, random, header, payload]);
    full.first_chunk::<HEDGE_LEN>().copied().unwrap_or_default()
}

/// `HKr = HMAC(HK, "hush/v2/header-key" ‖ r)`: the header's AEAD key for this blob only.
pub(crate) fn header_key(header_key: &[u8; 32], r: &[u8; HEDGE_LEN]) -> Zeroizing<[u8; 32]> {
    hmac_sha256(header_key, &[HEADER_KEY_LABEL, r])
}

/// `MKr = HMAC(MK, "hush/v2/body-key" ‖ r)`: the body's AEAD key for this blob only.
pub(crate) fn body_key(message_key: &[u8; 32], r: &[u8; HEDGE_LEN]) -> Zeroizing<[u8; 32]> {
    hmac_sha256(message_key, &[BODY_KEY_LABEL, r])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hedge_depends_on_randomness_and_plaintext() {
        let mk = [1u8; 32];
        let a = hedge(&mk, &[2; 32], b"header", b"payload");
        assert_ne!(a, hedge(&mk, &[3; 32], b"header", b"payload"));
        assert_ne!(a, hedge(&mk, &[2; 32], b"header", b"payloae"));
        assert_ne!(a, hedge(&mk, &[2; 32], b"headeq", b"payload"));
        assert_eq!(a, hedge(&mk, &[2; 32], b"header", b"payload"));
        assert_ne!(*header_key(&mk, &a), *body_key(&mk, &a));
    }
}

//! The primitives every ratchet file builds on: HMAC-SHA256, HKDF-SHA256 (RFC 5869) with
//! fixed-size outputs, and ChaCha20-Poly1305 with detached tags.
//!
//! HKDF is written out here on top of HMAC so that the fixed-size outputs the protocol needs
//! cannot fail at run time (the `hkdf` crate's `expand` returns a `Result` for lengths that we
//! never request). A unit test checks it against RFC 5869 test case 1 and the `hkdf` crate.

use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::HmacImpl;
use hmac::Hmac;
use sha2::Sha256;
use zeroize::Zeroizing;

/// HMAC-SHA256 keyed state.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Length of a Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;

/// HMAC-SHA256(key, part₀ ‖ part₁ ‖ …).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut mac = <HmacSha256 as HmacImpl>::new_from_slice(key);
    for part in parts {
        HmacImpl::update(&mut mac, part);
    }
    Zeroizing::new(HmacImpl::finalize(mac).into())
}

/// HKDF-SHA256 (RFC 5869) producing `N` consecutive 32-byte blocks:
/// `PRK = HMAC(salt, ikm)`, `T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i)`, output `T(1) ‖ … ‖ T(N)`.
///
/// `N` is at most 32 in this crate (the 1,024-byte restore signal), far below RFC 5869's
/// limit of 255.
pub(crate) fn hkdf_sha256<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    info: &[&[u8]],
) -> Zeroizing<[[u8; 32]; N]> {
    let prk = hmac_sha256(salt, &[ikm]);
    let keyed = <HmacSha256 as HmacImpl>::new_from_slice(&prk[..]);
    let mut out = Zeroizing::new([[0u8; 32]; N]);
    let mut previous: Option<Zeroizing<[u8; 32]>> = None;
    for (counter, block) in (1u8..).zip(out.iter_mut()) {
        let mut mac = keyed.clone();
        if let Some(prev) = &previous {
            HmacImpl::update(&mut mac, &prev[..]);
        }
        for part in info {
            HmacImpl::update(&mut mac, part);
        }
        HmacImpl::update(&mut mac, &[counter]);
        let t = Zeroizing::new(<[u8; 32]>::from(HmacImpl::finalize(mac)));
        block.copy_from_slice(&t[..]);
        previous = Some(t);
    }
    out
}

/// SHA-256 over the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// ChaCha20-Poly1305 encryption in place; returns the 16-byte tag.
pub(crate) fn seal(key: &[u8; 32], nonce: [u8; 12], ad: &[u8], buffer: &mut [u8]) -> [u8; TAG_LEN] {
    let cipher = ChaCha20Poly1305::new(&(*key).into());
    match cipher.encrypt_inout_detached(&Nonce::from(nonce), ad, buffer.into()) {
        Ok(tag) => tag.into(),
        // Only possible for inputs longer than 256 GiB, which this crate never builds. Return a
        // tag that cannot verify rather than panic; the buffer is wiped so nothing leaks.
        Err(_) => {
            buffer.iter_mut().for_each(|b| *b = 0);
            [0u8; TAG_LEN]
        }
    }
}

/// ChaCha20-Poly1305 decryption in place. On failure the buffer is wiped and `false` returned.
#[must_use]
pub(crate) fn open(
    key: &[u8; 32],
    nonce: [u8; 12],
    ad: &[u8],
    buffer: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> bool {
    let cipher = ChaCha20Poly1305::new(&(*key).into());
    let tag = Tag::from(*tag);
    match cipher.decrypt_inout_detached(&Nonce::from(nonce), ad, buffer.into(), &tag) {
        Ok(()) => true,
        Err(_) => {
            buffer.iter_mut().for_each(|b| *b = 0);
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_case_1_prefix() {
        // RFC 5869 A.1: IKM = 0x0b * 22, salt = 0x00..0x0c, info = 0xf0..0xf9, L = 42.
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let okm = hkdf_sha256::<2>(&salt, &ikm, &[&info]);
        let expected =
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
        let got: String = okm
            .as_flattened()
            .iter()
            .take(42)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn hkdf_matches_hkdf_crate_for_split_info() {
        let okm = hkdf_sha256::<3>(b"salt", b"ikm", &[b"in", b"fo"]);
        let reference = hkdf::Hkdf::<Sha256>::new(Some(b"salt"), b"ikm");
        let mut expected = [0u8; 96];
        assert!(reference.expand(b"info", &mut expected).is_ok());
        assert_eq!(okm.as_flattened(), &expected[..]);
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = [3u8; 32];
        let mut buf = *b"hello world";
        let tag = seal(&key, [0; 12], b"ad", &mut buf);
        let mut copy = buf;
        assert!(open(&key, [0; 12], b"ad", &mut copy, &tag));
        assert_eq!(&copy, b"hello world");
        let mut bad = buf;
        assert!(!open(&key, [0; 12], b"ae", &mut bad, &tag));
        assert_eq!(bad, [0u8; 11]);
    }
}

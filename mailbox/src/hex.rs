//! Strict lowercase hexadecimal for 32-byte values (addresses and write keys).

use protocol::address::ADDRESS_LEN;

/// Number of hex characters that encode a 32-byte value.
pub const HEX_LEN: usize = ADDRESS_LEN * 2;

/// Decodes exactly 64 lowercase hex characters into `out`.
///
/// Returns `false` (leaving `out` partly written) on any other length or character,
/// uppercase included: one spelling per address keeps store keys and caches canonical.
pub fn decode_32(text: &[u8], out: &mut [u8; ADDRESS_LEN]) -> bool {
    if text.len() != HEX_LEN {
        return false;
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (Some(&hi), Some(&lo)) = (pair.first(), pair.get(1)) else {
            return false;
        };
        let (Some(hi), Some(lo)) = (nibble(hi), nibble(lo)) else {
            return false;
        };
        *byte = (hi << 4) | lo;
    }
    true
}

/// Encodes 32 bytes as 64 lowercase hex characters.
pub fn encode_32(bytes: &[u8; ADDRESS_LEN]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(HEX_LEN);
    for &b in bytes {
        for n in [b >> 4, b & 0x0f] {
            text.push(char::from(
                DIGITS.get(usize::from(n)).copied().unwrap_or(b'0'),
            ));
        }
    }
    text
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37);
        }
        let text = encode_32(&bytes);
        assert_eq!(text.len(), 64);
        let mut back = [0u8; 32];
        assert!(decode_32(text.as_bytes(), &mut back));
        assert_eq!(back, bytes);
    }

    #[test]
    fn rejects_uppercase_wrong_length_and_non_hex() {
        let mut out = [0u8; 32];
        let good = "ab".repeat(32);
        assert!(decode_32(good.as_bytes(), &mut out));
        assert!(!decode_32("AB".repeat(32).as_bytes(), &mut out));
        assert!(!decode_32("ab".repeat(31).as_bytes(), &mut out));
        assert!(!decode_32(format!("{good}0").as_bytes(), &mut out));
        assert!(!decode_32("zz".repeat(32).as_bytes(), &mut out));
        assert!(!decode_32(b"", &mut out));
        let mut with_space = good.clone().into_bytes();
        if let Some(c) = with_space.get_mut(10) {
            *c = b' ';
        }
        assert!(!decode_32(&with_space, &mut out));
    }
}

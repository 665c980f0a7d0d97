//! A small, strict, unpadded base64url codec (RFC 4648 §5) for invite links.
//!
//! Decoding rejects padding, characters outside the URL-safe alphabet, impossible lengths and
//! non-zero trailing bits, so every string decodes to at most one byte string and
//! `encode(decode(s)) == s` whenever decoding succeeds.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn symbol(value: u32) -> char {
    ALPHABET
        .get((value & 63) as usize)
        .map_or('A', |&b| char::from(b))
}

pub(crate) fn value(symbol: u8) -> Option<u32> {
    let v = match symbol {
        b'A'..=b'Z' => symbol - b'A',
        b'a'..=b'z' => symbol - b'a' + 26,
        b'0'..=b'9' => symbol - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Whether `byte` is one of the 64 symbols of the URL-safe alphabet.
pub fn is_symbol(byte: u8) -> bool {
    value(byte).is_some()
}

/// The length of the unpadded encoding of `len` bytes.
pub const fn encoded_len(len: usize) -> usize {
    (len * 4).div_ceil(3)
}

/// Encodes without padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut buf = [0u8; 3];
        for (dst, src) in buf.iter_mut().zip(chunk) {
            *dst = *src;
        }
        let [a, b, c] = buf;
        let n = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
        let symbols = chunk.len() + 1;
        for i in 0..symbols {
            out.push(symbol(n >> (18 - 6 * i)));
        }
    }
    out
}

/// Decodes strict unpadded base64url. `None` on any deviation.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &s) in chunk.iter().enumerate() {
            n |= value(s)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        let [_, a, b, c] = n.to_be_bytes();
        let decoded = [a, b, c];
        // Bits below the last produced byte must be zero (canonical encoding).
        let unused_mask = match produced {
            1 => 0xffff,
            2 => 0xff,
            _ => 0,
        };
        if n & unused_mask != 0 {
            return None;
        }
        out.extend(decoded.iter().take(produced));
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_unpadded() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn rejects_non_canonical_and_invalid() {
        assert_eq!(decode("Zh"), None); // trailing bits set
        assert_eq!(decode("Zg=="), None); // padding
        assert_eq!(decode("Z"), None); // impossible length
        assert_eq!(decode("Zm+v"), None); // standard alphabet
        assert_eq!(decode("Zm9v\n"), None);
    }

    #[test]
    fn symbols_and_lengths() {
        assert!(ALPHABET.iter().all(|&b| is_symbol(b)));
        assert_eq!((0..=255u8).filter(|&b| is_symbol(b)).count(), 64);
        for len in 0..40 {
            assert_eq!(encoded_len(len), encode(&vec![0; len]).len());
        }
    }

    #[test]
    fn round_trips_all_lengths() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let text = encode(&data[..len]);
            assert_eq!(decode(&text).as_deref(), Some(&data[..len]));
        }
    }
}

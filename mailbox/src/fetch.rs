//! `POST /v1/fetch`: the batch request body and the framed response.
//!
//! Request: 1 to [`MAX_FETCH_ADDRESSES`] concatenated 32-byte addresses.
//! Response: for each address that holds a message, in request order,
//! `address (32 bytes) ‖ length (u32 big-endian) ‖ bytes`.

use protocol::Address;
use protocol::address::ADDRESS_LEN;

/// Most addresses one fetch may ask for.
pub const MAX_FETCH_ADDRESSES: usize = 256;

/// Largest valid fetch body in bytes.
pub const MAX_FETCH_BODY: usize = MAX_FETCH_ADDRESSES * ADDRESS_LEN;

/// Bytes in front of each returned message: address and big-endian u32 length.
pub const FRAME_HEADER_LEN: usize = ADDRESS_LEN + 4;

/// Splits a fetch body into addresses; `None` if it is empty, ragged or too long.
pub fn parse_batch(body: &[u8]) -> Option<Vec<Address>> {
    if body.is_empty() || !body.len().is_multiple_of(ADDRESS_LEN) || body.len() > MAX_FETCH_BODY {
        return None;
    }
    body.chunks_exact(ADDRESS_LEN)
        .map(|chunk| <[u8; ADDRESS_LEN]>::try_from(chunk).ok().map(Address))
        .collect()
}

/// Frames the found messages, in the order given.
///
/// Messages longer than `u32::MAX` bytes cannot be framed and are left out; no host stores
/// anything near that size.
pub fn encode_response<'a>(found: impl IntoIterator<Item = (&'a Address, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (address, bytes) in found {
        let Ok(len) = u32::try_from(bytes.len()) else {
            continue;
        };
        out.reserve(FRAME_HEADER_LEN + bytes.len());
        out.extend_from_slice(&address.0);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// A fetch response body that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The body ends inside a frame header or inside a message.
    #[error("fetch response truncated")]
    Truncated,
}

/// Parses a fetch response body into `(address, message)` pairs (for clients and tests).
pub fn decode_response(mut body: &[u8]) -> Result<Vec<(Address, &[u8])>, FramingError> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        let (Some(addr), Some(len)) = (
            body.get(..ADDRESS_LEN)
                .and_then(|s| <[u8; ADDRESS_LEN]>::try_from(s).ok()),
            body.get(ADDRESS_LEN..FRAME_HEADER_LEN)
                .and_then(|s| <[u8; 4]>::try_from(s).ok()),
        ) else {
            return Err(FramingError::Truncated);
        };
        let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| FramingError::Truncated)?;
        let end = FRAME_HEADER_LEN
            .checked_add(len)
            .ok_or(FramingError::Truncated)?;
        let message = body
            .get(FRAME_HEADER_LEN..end)
            .ok_or(FramingError::Truncated)?;
        frames.push((Address(addr), message));
        body = body.get(end..).ok_or(FramingError::Truncated)?;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_limits() {
        assert!(parse_batch(&[]).is_none());
        assert!(parse_batch(&[1u8; 31]).is_none());
        assert!(parse_batch(&[1u8; 33]).is_none());
        assert_eq!(parse_batch(&[1u8; 32]).map(|v| v.len()), Some(1));
        assert_eq!(
            parse_batch(&[1u8; MAX_FETCH_BODY]).map(|v| v.len()),
            Some(256)
        );
        assert!(parse_batch(&[1u8; MAX_FETCH_BODY + 32]).is_none());
    }

    #[test]
    fn frames_round_trip_in_order() {
        let a = Address([1; 32]);
        let b = Address([2; 32]);
        let body = encode_response([(&b, &b"second"[..]), (&a, &b"x"[..])]);
        assert_eq!(body.len(), 2 * FRAME_HEADER_LEN + 7);
        assert_eq!(body.get(32..36), Some(&[0u8, 0, 0, 6][..]));
        let frames = decode_response(&body).unwrap_or_default();
        assert_eq!(frames, vec![(b, &b"second"[..]), (a, &b"x"[..])]);
        assert_eq!(decode_response(&[]), Ok(vec![]));
        assert_eq!(
            decode_response(body.get(..body.len() - 1).unwrap_or_default()),
            Err(FramingError::Truncated)
        );
        assert_eq!(decode_response(&[0u8; 35]), Err(FramingError::Truncated));
    }
}

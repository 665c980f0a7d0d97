//! What the client sends on a subscription socket besides watch sets (`GET /v1/subscribe`,
//! `docs/MAILBOX-API.md`, revision 1.2): delete messages.

use protocol::WriteKey;
use zeroize::Zeroizing;

/// First byte of a delete message: ASCII `D`.
pub const DELETE_TAG: u8 = 0x44;

/// Most write keys in one delete message (the mailbox closes the socket with `1008 bad
/// delete` past it).
pub const MAX_DELETE_KEYS: usize = 64;

/// The delete messages for `read`: each `0x44 ‖ k write keys (32 bytes each)`, `1 <= k <=`
/// [`MAX_DELETE_KEYS`], so `1 + 32·k` bytes (never a multiple of 32: a watch set is). The
/// mailbox deletes the blob at each key's address as `DELETE /v1/m/{address}` does, and
/// answers nothing. Sent on the subscription socket of the conversation the blobs were read
/// from, which watched and was pushed those addresses already, so it links nothing more; on
/// the edge such a message costs 1/20 of a Durable Object request and no Worker request,
/// where each `DELETE` was one of each. Empty when `read` is. The keys are write capabilities
/// of addresses already read: zeroized when dropped all the same.
pub fn delete_messages(read: &[WriteKey]) -> Vec<Zeroizing<Vec<u8>>> {
    read.chunks(MAX_DELETE_KEYS)
        .map(|keys| {
            let mut message = Zeroizing::new(Vec::with_capacity(1 + 32 * keys.len()));
            message.push(DELETE_TAG);
            for key in keys {
                message.extend_from_slice(&key.0);
            }
            message
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_in_tagged_messages_of_at_most_64() {
        let keys: Vec<WriteKey> = (0..130u8).map(|i| WriteKey([i; 32])).collect();
        let messages = delete_messages(&keys);
        let lengths: Vec<usize> = messages.iter().map(|m| m.len()).collect();
        assert_eq!(lengths, [1 + 32 * 64, 1 + 32 * 64, 1 + 32 * 2]);
        assert!(
            messages
                .iter()
                .all(|m| m[0] == DELETE_TAG && m.len() % 32 == 1)
        );
        assert_eq!(&messages[2][1..33], &[128u8; 32]);
        assert!(delete_messages(&[]).is_empty());
    }
}

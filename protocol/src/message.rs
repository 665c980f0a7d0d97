//! The one-size wire blob, the padded payload inside it, and splitting / reassembling
//! plaintexts longer than one blob.
//!
//! ```text
//! blob (BLOB_LEN = 1024 bytes)    = hedge r (16) ‖ encrypted_header (56)
//!                                   ‖ encrypted_payload (936) ‖ tag (16)
//! payload (PAYLOAD_LEN = 936)     = kind (1) ‖ index (u16 BE) ‖ count (u16 BE) ‖ len (u16 BE)
//!                                   ‖ seq (u32 BE) ‖ floor (u32 BE) ‖ ack (u32 BE) ‖ ack_bits (u64 BE)
//!                                   ‖ ack_digest (8) ‖ message_id (8) ‖ prev (8) ‖ data (len)
//!                                   ‖ zero padding
//! ```

use crate::acknowledgement::Acknowledgement;
use crate::crypto::TAG_LEN;
use crate::header_key::ENCRYPTED_HEADER_LEN;
use crate::hedge::HEDGE_LEN;
use crate::stream::{Digest, MESSAGE_ID_LEN, RECEIVED_HEDGE_LEN};
use zeroize::Zeroizing;

/// Size in bytes of every blob stored in the mailbox.
pub const BLOB_LEN: usize = 1024;

/// Length of the padded payload encrypted under the message key.
pub const PAYLOAD_LEN: usize = BLOB_LEN - HEDGE_LEN - ENCRYPTED_HEADER_LEN - TAG_LEN;

/// Length of the fragment header at the start of every payload sent: kind, index, count, len
/// (7 bytes), then seq, floor, ack (4 bytes each), ack_bits (8 bytes), ack_digest (8 bytes),
/// message_id (8 bytes) and prev (8 bytes).
pub const FRAGMENT_HEADER_LEN: usize = 51;

/// Length of the fragment header of a payload without `prev` (kinds `0x01`, `0x02`, `0x03`,
/// `docs/PROTOCOL.md` §3.6): the hello, and data and acknowledgement blobs sealed before
/// `prev` was added, which are still read.
pub(crate) const FRAGMENT_HEADER_WITHOUT_PREV_LEN: usize = 43;

/// Set in `kind` when the payload carries `prev` (`docs/PROTOCOL.md` §3.6): every data and
/// acknowledgement blob sent. A reader that predates it refuses such a payload as malformed
/// rather than misreading it.
pub(crate) const KIND_WITH_PREV: u8 = 0x80;

/// Plaintext bytes carried by one blob.
pub const FRAGMENT_CAPACITY: usize = PAYLOAD_LEN - FRAGMENT_HEADER_LEN;

/// Most blobs one plaintext may be split into.
pub const MAX_FRAGMENTS: usize = 64;

/// Longest plaintext [`Session::encrypt`](crate::Session::encrypt) accepts.
pub const MAX_MESSAGE_LEN: usize = MAX_FRAGMENTS * FRAGMENT_CAPACITY;

/// Most partially received multi-blob messages kept at once; the oldest is dropped first.
pub const MAX_PENDING_MESSAGES: usize = 4;

/// Payload kind of the joiner's first message, which completes an invite. Empty.
pub(crate) const KIND_HELLO: u8 = 0x01;
/// Payload kind of a fragment of user plaintext.
pub(crate) const KIND_DATA: u8 = 0x02;
/// Payload kind of an acknowledgement-only blob: carries the stream fields, no data, never
/// shown and never acknowledged for its own sake.
pub(crate) const KIND_ACKNOWLEDGEMENT: u8 = 0x03;

/// What a received blob carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    /// The joiner's first message, which completes an invite (`0x01`).
    Hello,
    /// A fragment of a message (`0x02`).
    Data,
    /// An acknowledgement and nothing else (`0x03`).
    Acknowledgement,
}

/// The stream fields every payload carries (`docs/PROTOCOL.md` §6.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StreamFields {
    /// This blob's sequence number in its sender's stream.
    pub(crate) seq: u32,
    /// Every sender seq below this is acknowledged or abandoned (`floor ≤ seq`).
    pub(crate) floor: u32,
    /// What the sender has received of the other party's stream.
    pub(crate) ack: Acknowledgement,
    /// Digest of exactly which blobs `ack` covers below `ack.next` (`crate::stream`).
    pub(crate) ack_digest: Digest,
    /// The message this fragment belongs to (random; zero for hello and ack-only blobs).
    pub(crate) message_id: [u8; MESSAGE_ID_LEN],
    /// The first 8 bytes of the hedge of the sender's blob `seq − index − 1`, the last one it
    /// sealed before this message; zero when it has none (`docs/PROTOCOL.md` §6.4).
    pub(crate) prev: [u8; RECEIVED_HEDGE_LEN],
}

/// A parsed, validated payload.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Fragment {
    pub(crate) kind: u8,
    pub(crate) index: u16,
    pub(crate) count: u16,
    pub(crate) stream: StreamFields,
    pub(crate) data: Zeroizing<Vec<u8>>,
}

/// A payload before its stream fields are known: kind, index, count and data.
pub(crate) struct Unsealed<'a> {
    pub(crate) kind: u8,
    pub(crate) index: u16,
    pub(crate) count: u16,
    pub(crate) data: &'a [u8],
}

impl Unsealed<'_> {
    /// Pads the fragment with its stream fields into the fixed-size payload.
    pub(crate) fn encode(&self, stream: StreamFields) -> Zeroizing<[u8; PAYLOAD_LEN]> {
        let mut out = Zeroizing::new([0u8; PAYLOAD_LEN]);
        let (head, rest) = out.split_at_mut(FRAGMENT_HEADER_LEN);
        let len = u16::try_from(self.data.len()).unwrap_or(u16::MAX);
        let mut header = [0u8; FRAGMENT_HEADER_LEN];
        // The hello (seq 0) names no predecessor: its payload is the same in both layouts.
        header[0] = if self.kind == KIND_HELLO {
            self.kind
        } else {
            self.kind | KIND_WITH_PREV
        };
        header[1..3].copy_from_slice(&self.index.to_be_bytes());
        header[3..5].copy_from_slice(&self.count.to_be_bytes());
        header[5..7].copy_from_slice(&len.to_be_bytes());
        header[7..11].copy_from_slice(&stream.seq.to_be_bytes());
        header[11..15].copy_from_slice(&stream.floor.to_be_bytes());
        header[15..19].copy_from_slice(&stream.ack.next.to_be_bytes());
        header[19..27].copy_from_slice(&stream.ack.bits.to_be_bytes());
        header[27..35].copy_from_slice(&stream.ack_digest);
        header[35..43].copy_from_slice(&stream.message_id);
        header[43..51].copy_from_slice(&stream.prev);
        head.copy_from_slice(&header);
        if let Some(dst) = rest.get_mut(..self.data.len()) {
            dst.copy_from_slice(self.data);
        }
        out
    }
}

impl Fragment {
    /// Parses and validates a decrypted payload. `None` for any malformed field or non-zero
    /// padding.
    pub(crate) fn parse(payload: &[u8; PAYLOAD_LEN]) -> Option<Fragment> {
        let (head, _) = payload.split_first_chunk::<FRAGMENT_HEADER_LEN>()?;
        let (fixed, stream) = head.split_first_chunk::<7>()?;
        let [kind, i0, i1, c0, c1, l0, l1] = *fixed;
        let with_prev = kind & KIND_WITH_PREV != 0;
        let kind = kind & !KIND_WITH_PREV;
        let header_len = if with_prev {
            FRAGMENT_HEADER_LEN
        } else {
            FRAGMENT_HEADER_WITHOUT_PREV_LEN
        };
        let rest = payload.get(header_len..)?;
        let (seq, stream) = stream.split_first_chunk::<4>()?;
        let (floor, stream) = stream.split_first_chunk::<4>()?;
        let (ack, stream) = stream.split_first_chunk::<4>()?;
        let (bits, stream) = stream.split_first_chunk::<8>()?;
        let (ack_digest, stream) = stream.split_first_chunk::<8>()?;
        let (message_id, prev) = stream.split_first_chunk::<MESSAGE_ID_LEN>()?;
        let prev: [u8; RECEIVED_HEDGE_LEN] = if with_prev {
            prev.try_into().ok()?
        } else {
            [0u8; RECEIVED_HEDGE_LEN]
        };
        let index = u16::from_be_bytes([i0, i1]);
        let count = u16::from_be_bytes([c0, c1]);
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let stream = StreamFields {
            seq: u32::from_be_bytes(*seq),
            floor: u32::from_be_bytes(*floor),
            ack: Acknowledgement {
                next: u32::from_be_bytes(*ack),
                bits: u64::from_be_bytes(*bits),
            },
            ack_digest: *ack_digest,
            message_id: *message_id,
            prev,
        };
        let (data, padding) = rest.split_at_checked(len)?;
        if padding.iter().any(|&b| b != 0) || stream.floor > stream.seq {
            return None;
        }
        let no_id = stream.message_id == [0u8; MESSAGE_ID_LEN];
        let valid = match kind {
            KIND_HELLO => !with_prev && index == 0 && count == 1 && len == 0 && no_id,
            KIND_ACKNOWLEDGEMENT => index == 0 && count == 1 && len == 0 && no_id,
            KIND_DATA => count >= 1 && usize::from(count) <= MAX_FRAGMENTS && index < count,
            _ => false,
        };
        valid.then(|| Fragment {
            kind,
            index,
            count,
            stream,
            data: Zeroizing::new(data.to_vec()),
        })
    }

    /// The public name of this payload's kind.
    pub(crate) fn payload_kind(&self) -> PayloadKind {
        match self.kind {
            KIND_HELLO => PayloadKind::Hello,
            KIND_ACKNOWLEDGEMENT => PayloadKind::Acknowledgement,
            _ => PayloadKind::Data,
        }
    }
}

/// Splits a plaintext into fragments. An empty plaintext is one empty fragment.
pub(crate) fn split(plaintext: &[u8]) -> Vec<Unsealed<'_>> {
    let count = plaintext.len().div_ceil(FRAGMENT_CAPACITY).max(1);
    let count16 = u16::try_from(count).unwrap_or(u16::MAX);
    if plaintext.is_empty() {
        return vec![Unsealed {
            kind: KIND_DATA,
            index: 0,
            count: 1,
            data: &[],
        }];
    }
    plaintext
        .chunks(FRAGMENT_CAPACITY)
        .zip(0u16..)
        .map(|(data, index)| Unsealed {
            kind: KIND_DATA,
            index,
            count: count16,
            data,
        })
        .collect()
}

/// A multi-blob message being reassembled.
#[derive(Clone)]
pub(crate) struct PartialMessage {
    /// Ratchet public key of the sender's chain the fragments travel on.
    pub(crate) chain: [u8; 32],
    /// Message number of fragment 0.
    pub(crate) start: u32,
    /// Receive-event counter when the first fragment arrived.
    pub(crate) started_at: u64,
    /// One slot per fragment.
    pub(crate) parts: Vec<Option<Zeroizing<Vec<u8>>>>,
}

/// Reassembly buffers for multi-blob messages, bounded by [`MAX_PENDING_MESSAGES`].
#[derive(Clone, Default)]
pub(crate) struct Reassembly {
    pub(crate) pending: Vec<PartialMessage>,
}

impl Reassembly {
    /// Adds fragment `fragment` received as message `n` of chain `chain`; returns the whole
    /// plaintext when it is complete. Never fails: a fragment inconsistent with a buffered
    /// message replaces it.
    pub(crate) fn add(
        &mut self,
        chain: &[u8; 32],
        n: u32,
        fragment: Fragment,
        event: u64,
    ) -> Option<Zeroizing<Vec<u8>>> {
        if fragment.count == 1 {
            return Some(fragment.data);
        }
        let start = n.checked_sub(u32::from(fragment.index))?;
        let count = usize::from(fragment.count);
        let position = self
            .pending
            .iter()
            .position(|p| &p.chain == chain && p.start == start);
        let position = match position {
            Some(i) if self.pending.get(i).is_some_and(|p| p.parts.len() == count) => i,
            other => {
                if let Some(i) = other {
                    self.pending.remove(i);
                }
                if self.pending.len() >= MAX_PENDING_MESSAGES {
                    self.pending.remove(0);
                }
                self.pending.push(PartialMessage {
                    chain: *chain,
                    start,
                    started_at: event,
                    parts: vec![None; count],
                });
                self.pending.len() - 1
            }
        };
        let partial = self.pending.get_mut(position)?;
        if let Some(slot) = partial.parts.get_mut(usize::from(fragment.index)) {
            *slot = Some(fragment.data);
        }
        if partial.parts.iter().all(Option::is_some) {
            let done = self.pending.remove(position);
            let total = done.parts.iter().flatten().map(|p| p.len()).sum();
            let mut out = Zeroizing::new(Vec::with_capacity(total));
            for part in done.parts.iter().flatten() {
                out.extend_from_slice(part);
            }
            return Some(out);
        }
        None
    }

    /// Drops buffers started `retention` or more receive events ago.
    pub(crate) fn expire(&mut self, now_event: u64, retention: u64) {
        self.pending
            .retain(|p| p.started_at.saturating_add(retention) > now_event);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn layout_constants() {
        assert_eq!(PAYLOAD_LEN, 936);
        assert_eq!(FRAGMENT_CAPACITY, 885);
        assert_eq!(MAX_MESSAGE_LEN, 56_640);
        assert_eq!(
            HEDGE_LEN + ENCRYPTED_HEADER_LEN + PAYLOAD_LEN + TAG_LEN,
            BLOB_LEN
        );
    }

    #[test]
    fn split_and_parse_round_trip() {
        let text: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        let parts = split(&text);
        assert_eq!(parts.len(), 3);
        let mut r = Reassembly::default();
        let frags: Vec<Fragment> = parts
            .iter()
            .map(|p| Fragment::parse(&p.encode(StreamFields::default())).unwrap())
            .collect();
        assert!(r.add(&[1; 32], 11, frags[2].clone(), 0).is_none());
        assert!(r.add(&[1; 32], 9, frags[0].clone(), 0).is_none());
        assert_eq!(
            r.add(&[1; 32], 10, frags[1].clone(), 0).unwrap().as_slice(),
            &text[..]
        );
        assert!(r.pending.is_empty());
    }

    #[test]
    fn parse_rejects_bad_padding_kind_and_counts() {
        let encode = |kind, index, count, data: &[u8]| {
            Unsealed {
                kind,
                index,
                count,
                data,
            }
            .encode(StreamFields {
                seq: 5,
                floor: 5,
                ..Default::default()
            })
        };
        let mut p = *encode(KIND_DATA, 0, 1, b"hi");
        let parsed = Fragment::parse(&p).unwrap();
        assert_eq!((parsed.stream.seq, parsed.stream.floor), (5, 5));
        p[PAYLOAD_LEN - 1] = 1;
        assert!(Fragment::parse(&p).is_none());
        assert!(Fragment::parse(&encode(9, 0, 1, b"")).is_none());
        assert!(Fragment::parse(&encode(KIND_DATA, 1, 1, b"")).is_none());
        assert!(Fragment::parse(&encode(KIND_DATA, 0, 0, b"")).is_none());
        assert!(Fragment::parse(&encode(KIND_DATA, 0, 65, b"")).is_none());
        assert!(Fragment::parse(&encode(KIND_HELLO, 0, 1, b"x")).is_none());
        assert!(Fragment::parse(&encode(KIND_ACKNOWLEDGEMENT, 0, 1, b"x")).is_none());
        assert!(Fragment::parse(&encode(KIND_ACKNOWLEDGEMENT, 0, 1, b"")).is_some());
        let mut long = *encode(KIND_DATA, 0, 1, b"");
        long[5..7].copy_from_slice(&1000u16.to_be_bytes());
        assert!(Fragment::parse(&long).is_none());
        let above = Unsealed {
            kind: KIND_DATA,
            index: 0,
            count: 1,
            data: b"",
        }
        .encode(StreamFields {
            seq: 5,
            floor: 6,
            ..Default::default()
        });
        assert!(Fragment::parse(&above).is_none(), "floor above seq");
    }

    /// Data and acknowledgement payloads sealed before `prev` existed (kinds `0x02`, `0x03`,
    /// data at byte 43) are still read, naming no predecessor; a hello never carries `prev`.
    #[test]
    fn payloads_without_prev_are_read_and_a_hello_with_prev_is_refused() {
        let mut legacy = [0u8; PAYLOAD_LEN];
        legacy[0] = KIND_DATA;
        legacy[3..5].copy_from_slice(&1u16.to_be_bytes());
        legacy[5..7].copy_from_slice(&2u16.to_be_bytes());
        legacy[7..11].copy_from_slice(&4u32.to_be_bytes());
        legacy[35..43].copy_from_slice(&[7; MESSAGE_ID_LEN]);
        legacy[43..45].copy_from_slice(b"hi");
        let parsed = Fragment::parse(&legacy).unwrap();
        assert_eq!(parsed.kind, KIND_DATA);
        assert_eq!(parsed.data.as_slice(), b"hi");
        assert_eq!(parsed.stream.prev, [0; RECEIVED_HEDGE_LEN]);
        assert_eq!(parsed.stream.message_id, [7; MESSAGE_ID_LEN]);

        let stream = StreamFields {
            seq: 4,
            prev: [9; RECEIVED_HEDGE_LEN],
            message_id: [7; MESSAGE_ID_LEN],
            ..Default::default()
        };
        let sent = split(b"hi")[0].encode(stream);
        assert_eq!(sent[0], KIND_DATA | KIND_WITH_PREV);
        assert_eq!(&sent[43..51], &[9; RECEIVED_HEDGE_LEN]);
        assert_eq!(&sent[51..53], b"hi");
        let parsed = Fragment::parse(&sent).unwrap();
        assert_eq!((parsed.kind, parsed.stream.prev), (KIND_DATA, [9; 8]));
        assert_eq!(parsed.data.as_slice(), b"hi");

        let mut hello = *Unsealed {
            kind: KIND_HELLO,
            index: 0,
            count: 1,
            data: &[],
        }
        .encode(StreamFields::default());
        assert_eq!(hello[0], KIND_HELLO);
        assert!(Fragment::parse(&hello).is_some());
        hello[0] |= KIND_WITH_PREV;
        assert!(Fragment::parse(&hello).is_none());
    }

    #[test]
    fn empty_plaintext_is_one_fragment() {
        let parts = split(b"");
        assert_eq!(parts.len(), 1);
        let payload = parts[0].encode(StreamFields::default());
        assert_eq!(Fragment::parse(&payload).unwrap().data.len(), 0);
    }
}

//! Each party's blob stream (`docs/PROTOCOL.md` §6.4-6.5): sequence numbers, what was received
//! of the peer, what the peer confirmed of ours, rollback detection, and message ids.
//!
//! An acknowledgement says "I received your blobs below `ack` (and these bits past it)" and
//! carries a digest of exactly which blobs those were: `D' = SHA-256("hush/v2/stream-digest"
//! ‖ D ‖ u32be(seq) ‖ r)[0..8]` over the counted blobs below `ack` in order, from eight zero
//! bytes, where `r` is each blob's hedge (its first 16 bytes, unique per blob). The sender
//! recomputes it over its own blobs: equal means everything below `ack` is *confirmed* (on the
//! peer's device, ours); different means the peer received other blobs under our sequence
//! numbers, which only a rolled-back copy of this device can have sent.

use crate::acknowledgement::{ACK_WINDOW, Acknowledgement};
use crate::crypto::sha256;
use crate::hedge::HEDGE_LEN;
use std::collections::VecDeque;

/// Length of a stream digest.
pub const STREAM_DIGEST_LEN: usize = 8;

/// Length of a message id.
pub const MESSAGE_ID_LEN: usize = 8;

/// How many of our blobs awaiting confirmation are remembered (their hedges, to check the
/// peer's digests). Beyond it the oldest are forgotten and the range they covered is accepted
/// unverified.
pub const MAX_UNCONFIRMED: usize = 4096;

/// How many completed message ids are remembered to drop a re-sent message already shown.
pub const MESSAGE_ID_MEMORY: usize = 256;

/// How many of the peer's blobs past the contiguous prefix are remembered.
pub const MAX_AHEAD: usize = 512;

/// Label of the stream digest.
pub(crate) const STREAM_DIGEST_LABEL: &[u8] = b"hush/v2/stream-digest";

/// A digest of a stream prefix.
pub(crate) type Digest = [u8; STREAM_DIGEST_LEN];

/// `D' = SHA-256("hush/v2/stream-digest" ‖ D ‖ u32be(seq) ‖ r)[0..8]`.
pub(crate) fn extend_digest(digest: &Digest, seq: u32, r: &[u8; HEDGE_LEN]) -> Digest {
    let full = sha256(&[STREAM_DIGEST_LABEL, digest, &seq.to_be_bytes(), r]);
    full.first_chunk::<STREAM_DIGEST_LEN>()
        .copied()
        .unwrap_or_default()
}

/// One blob of ours not yet confirmed by the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SentBlob {
    pub(crate) seq: u32,
    pub(crate) r: [u8; HEDGE_LEN],
    /// Hello and data blobs count; acknowledgement-only and abandoned blobs do not.
    pub(crate) counted: bool,
}

/// One blob of the peer's received past the contiguous prefix, waiting for the gap to close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReceivedBlob {
    pub(crate) seq: u32,
    pub(crate) r: [u8; HEDGE_LEN],
    pub(crate) counted: bool,
}

/// This device sent less than the peer acknowledges, or other blobs under the same sequence
/// numbers: it runs on state older than what it once used (a restored backup, a copied
/// profile, a power loss). The session has moved past every sequence number and sending
/// position the lost state may have used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rollback {
    /// Blobs the lost state sent that this session does not remember (at least this many;
    /// 0 when the lost state sent no more than this one did since).
    pub lost_blobs: u32,
    /// Our blobs from this sequence number on are not confirmed: those the peer seemed to
    /// acknowledge may be the lost state's. Re-send their messages
    /// ([`Session::encrypt_resend`](crate::Session::encrypt_resend), same message id).
    pub unconfirmed_from: u32,
}

/// What an incoming blob told us about our own stream.
#[derive(Debug, Default)]
pub(crate) struct AckOutcome {
    pub(crate) rollback: Option<Rollback>,
    /// Positions the sending chain must skip (the lost state's extra blobs).
    pub(crate) skip: u32,
}

/// Sequence numbers, acknowledgements and message ids of one session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stream {
    /// The sequence number our next blob gets.
    pub(crate) next_seq: u32,
    /// Our blobs with seq `< confirmed` are confirmed on the peer's device.
    pub(crate) confirmed: u32,
    /// Digest of our counted blobs below `confirmed`, as the peer computed it.
    pub(crate) confirmed_digest: Digest,
    /// Our blobs from `confirmed` on (at most [`MAX_UNCONFIRMED`]), in seq order.
    pub(crate) sent: VecDeque<SentBlob>,
    /// What we have received of the peer's stream (raised to the peer's floor).
    pub(crate) received: Acknowledgement,
    /// Digest of the peer's counted blobs below `received.next`.
    pub(crate) received_digest: Digest,
    /// Peer blobs received past `received.next`, in seq order (at most [`MAX_AHEAD`]).
    pub(crate) ahead: Vec<ReceivedBlob>,
    /// Ids of the messages completed most recently, oldest first.
    pub(crate) message_ids: VecDeque<[u8; MESSAGE_ID_LEN]>,
}

impl Stream {
    /// Records a blob we sent (its seq is `next_seq`, which advances).
    pub(crate) fn sent(&mut self, seq: u32, r: &[u8; HEDGE_LEN], counted: bool) {
        if self.sent.len() >= MAX_UNCONFIRMED {
            self.sent.pop_front();
        }
        self.sent.push_back(SentBlob {
            seq,
            r: *r,
            counted,
        });
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
    }

    /// The caller gave up a blob that never reached the mailbox (a different blob sat at its
    /// address): the peer cannot have received it, so it leaves our digest.
    pub(crate) fn abandon(&mut self, seq: u32) {
        if let Some(blob) = self.sent.iter_mut().find(|b| b.seq == seq) {
            blob.counted = false;
        }
    }

    /// Records a received peer blob: raises the prefix to the sender's `floor`, adds the blob,
    /// and folds whatever became contiguous into the digest. Blobs past the prefix are kept
    /// (at most [`MAX_AHEAD`]) whether or not the acknowledgement's bits can report them yet,
    /// so that a blob read once is never waited for again.
    pub(crate) fn received(&mut self, floor: u32, seq: u32, r: &[u8; HEDGE_LEN], counted: bool) {
        let next = self.received.next;
        if seq >= next && !self.ahead.iter().any(|b| b.seq == seq) {
            let at = self.ahead.partition_point(|b| b.seq < seq);
            self.ahead.insert(
                at,
                ReceivedBlob {
                    seq,
                    r: *r,
                    counted,
                },
            );
            if self.ahead.len() > MAX_AHEAD {
                // The farthest is dropped: its sender deposits it again, and it is read again.
                self.ahead.pop();
            }
        }
        let mut next = next.max(floor);
        // Fold, in order, every kept blob below the prefix and every blob that extends it;
        // numbers the floor passed without a blob (abandoned by the sender) do not count.
        let mut folded = 0;
        for blob in &self.ahead {
            if blob.seq > next {
                break;
            }
            if blob.counted {
                self.received_digest = extend_digest(&self.received_digest, blob.seq, &blob.r);
            }
            next = next.max(blob.seq.saturating_add(1));
            folded += 1;
        }
        self.ahead.drain(..folded);
        self.received.next = next;
        self.refresh_bits();
    }

    /// Recomputes the acknowledgement's bits from the blobs kept past the prefix.
    pub(crate) fn refresh_bits(&mut self) {
        let next = self.received.next;
        let mut bits = 0u64;
        for blob in &self.ahead {
            if let Some(offset) = blob.seq.checked_sub(next).and_then(|d| d.checked_sub(1))
                && offset < ACK_WINDOW
            {
                bits |= 1 << offset;
            }
        }
        self.received.bits = bits;
    }

    /// Checks the peer's acknowledgement of our stream against what we sent. Confirms the
    /// prefix when the digests agree; reports a rollback when the peer acknowledges blobs we
    /// never sent or other blobs than ours.
    pub(crate) fn acknowledged(&mut self, ack: &Acknowledgement, digest: &Digest) -> AckOutcome {
        let mut outcome = AckOutcome::default();
        let highest = ack.highest();
        let beyond = highest
            .and_then(|h| h.checked_add(1))
            .and_then(|end| end.checked_sub(self.next_seq))
            .filter(|lost| *lost > 0);
        if ack.next <= self.confirmed && beyond.is_none() {
            return outcome;
        }
        let unconfirmed_from = self.confirmed;
        let mut ours = self.confirmed_digest;
        let verifiable = self
            .sent
            .front()
            .is_none_or(|first| first.seq <= self.confirmed);
        for blob in self.sent.iter().take_while(|b| b.seq < ack.next) {
            if blob.counted {
                ours = extend_digest(&ours, blob.seq, &blob.r);
            }
        }
        let diverged = ack.next > self.confirmed && verifiable && ours != *digest;
        if ack.next > self.confirmed {
            self.confirmed = ack.next;
            self.confirmed_digest = *digest;
            let done = self.sent.partition_point(|b| b.seq < ack.next);
            self.sent.drain(..done);
        }
        if let Some(lost) = beyond {
            self.next_seq = self.next_seq.saturating_add(lost);
            outcome.skip = lost;
        }
        if diverged || beyond.is_some() {
            outcome.rollback = Some(Rollback {
                lost_blobs: beyond.unwrap_or(0),
                unconfirmed_from,
            });
        }
        outcome
    }

    /// What the peer has confirmed of our stream: every seq below the confirmed prefix.
    pub(crate) fn confirmed(&self) -> Acknowledgement {
        Acknowledgement {
            next: self.confirmed,
            bits: 0,
        }
    }

    /// Remembers a completed message's id; false if it was seen already (a re-send).
    pub(crate) fn first_time(&mut self, id: &[u8; MESSAGE_ID_LEN]) -> bool {
        if *id == [0u8; MESSAGE_ID_LEN] {
            return true;
        }
        if self.message_ids.contains(id) {
            return false;
        }
        if self.message_ids.len() >= MESSAGE_ID_MEMORY {
            self.message_ids.pop_front();
        }
        self.message_ids.push_back(*id);
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn r(i: u8) -> [u8; HEDGE_LEN] {
        [i; HEDGE_LEN]
    }

    /// The receiver's digest equals the sender's over the same counted blobs, whatever the
    /// arrival order and whatever the floor skipped.
    #[test]
    fn digests_agree_across_orders_and_floors() {
        let mut sender = Stream::default();
        for seq in 0..6u32 {
            sender.sent(seq, &r(seq as u8), seq != 3);
        }
        sender.abandon(4);
        let mut receiver = Stream::default();
        receiver.received(0, 2, &r(2), true);
        receiver.received(0, 0, &r(0), true);
        receiver.received(0, 1, &r(1), true);
        receiver.received(5, 5, &r(5), true); // floor 5: 3 (ack-only, lost) and 4 abandoned
        assert_eq!(receiver.received.next, 6);
        let out = sender.acknowledged(&receiver.received, &receiver.received_digest);
        assert!(out.rollback.is_none());
        assert_eq!(sender.confirmed, 6);
        assert!(sender.sent.is_empty());
    }

    /// A peer that received other blobs under our sequence numbers is a rollback, even when
    /// we have sent as many blobs as it acknowledges.
    #[test]
    fn other_blobs_under_our_numbers_are_a_rollback() {
        let mut sender = Stream::default();
        let mut receiver = Stream::default();
        for seq in 0..2u32 {
            sender.sent(seq, &r(seq as u8), true);
            receiver.received(0, seq, &r(seq as u8), true);
        }
        let out = sender.acknowledged(&receiver.received, &receiver.received_digest);
        assert!(out.rollback.is_none());
        let backup = sender.clone();
        for seq in 2..5u32 {
            sender.sent(seq, &r(10 + seq as u8), true);
            receiver.received(0, seq, &r(10 + seq as u8), true);
        }
        // Restored, the device sends four blobs: more than it lost, none of them received.
        let mut restored = backup;
        for seq in 2..6u32 {
            restored.sent(seq, &r(20 + seq as u8), true);
        }
        let out = restored.acknowledged(&receiver.received, &receiver.received_digest);
        assert_eq!(
            out.rollback,
            Some(Rollback {
                lost_blobs: 0,
                unconfirmed_from: 2
            })
        );
        assert_eq!(restored.confirmed(), Acknowledgement { next: 5, bits: 0 });
    }

    proptest::proptest! {
        /// Against a plain set: whatever the arrival order, duplicates and floors, the prefix
        /// and bits say exactly what arrived (within the window), and the receiver's digest
        /// equals the sender's over the same blobs.
        #[test]
        fn matches_a_set_and_the_senders_digest(
            arrivals in proptest::collection::vec((0u32..120, proptest::bool::ANY), 0..150),
            floor_at in 0usize..150,
            floor in 0u32..60,
        ) {
            let mut sender = Stream::default();
            for seq in 0..120u32 {
                sender.sent(seq, &r(seq as u8), seq % 7 != 3);
            }
            let mut receiver = Stream::default();
            let mut got = std::collections::BTreeSet::new();
            let mut floor_now = 0;
            let mut floor_seen = 0; // the floor the receiver learnt (carried by a blob)
            for (i, (seq, _dup)) in arrivals.iter().enumerate() {
                if i == floor_at {
                    // The sender abandons what its floor passes and the peer never got: such a
                    // blob never reached the mailbox, so it cannot arrive later either.
                    floor_now = floor;
                    for s in 0..floor_now {
                        if !got.contains(&s) { sender.abandon(s); }
                    }
                }
                if *seq < floor_now && !got.contains(seq) {
                    continue;
                }
                receiver.received(floor_now, *seq, &r(*seq as u8), seq % 7 != 3);
                floor_seen = floor_now;
                got.insert(*seq);
            }
            let floor_set: std::collections::BTreeSet<u32> = (0..floor_seen).collect();
            let mut next = 0;
            while got.contains(&next) || floor_set.contains(&next) { next += 1; }
            proptest::prop_assert_eq!(receiver.received.next, next);
            for s in 0..next + ACK_WINDOW + 1 {
                proptest::prop_assert_eq!(receiver.received.contains(s), s < next || got.contains(&s));
            }
            let out = sender.acknowledged(&receiver.received, &receiver.received_digest);
            proptest::prop_assert!(out.rollback.is_none(), "{:?}", out.rollback);
            proptest::prop_assert_eq!(sender.confirmed, next);
        }
    }

    #[test]
    fn message_ids_drop_repeats() {
        let mut s = Stream::default();
        assert!(s.first_time(&[1; 8]));
        assert!(!s.first_time(&[1; 8]));
        assert!(
            s.first_time(&[0; 8]) && s.first_time(&[0; 8]),
            "zero is no id"
        );
    }
}

//! Sequence numbers and acknowledgements (`docs/PROTOCOL.md` §6.4): every blob a party sends
//! carries its own sequence number, the lowest number it may still deposit again (`floor`),
//! and what it has received of the other party's blobs.
//!
//! ```text
//! ack      : u32  every peer seq < ack was received (or abandoned by the peer's floor)
//! ack_bits : u64  bit i (least significant first) set ⇔ peer seq ack + 1 + i was received
//! ```
//! The sender of a blob learns from the acknowledgements it receives which of its blobs reached
//! the other device: the basis of the *delivered* state, of retransmission, and of rollback
//! detection (an acknowledgement of a blob this session never sent).

/// Number of sequence numbers past `next` that an [`Acknowledgement`] can report (`ack_bits`).
pub const ACK_WINDOW: u32 = 64;

/// What one party has received of the other party's blob stream.
///
/// Invariant: `next` itself is not contained (else `next` would be higher). A sequence number
/// more than [`ACK_WINDOW`] past `next` cannot be reported; the sender deposits it again later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acknowledgement {
    /// Every sequence number below this one was received (or abandoned by its sender).
    pub next: u32,
    /// Bit `i` (least significant first) set: sequence number `next + 1 + i` was received.
    pub bits: u64,
}

impl Acknowledgement {
    /// Whether `seq` was received.
    pub fn contains(&self, seq: u32) -> bool {
        if seq < self.next {
            return true;
        }
        let Some(offset) = seq.checked_sub(self.next).and_then(|d| d.checked_sub(1)) else {
            return false;
        };
        offset < ACK_WINDOW && (self.bits >> offset) & 1 == 1
    }

    /// The highest sequence number contained, if any.
    pub fn highest(&self) -> Option<u32> {
        if self.bits != 0 {
            let top = 63 - self.bits.leading_zeros();
            return Some(self.next.saturating_add(1).saturating_add(top));
        }
        self.next.checked_sub(1)
    }

    /// Counts everything below `target` as received (the sender's floor).
    pub(crate) fn advance_to(&mut self, target: u32) {
        let Some(shift) = target.checked_sub(self.next).filter(|s| *s > 0) else {
            return;
        };
        // Bit `shift − 1` stands for `target` itself.
        let target_received = shift <= ACK_WINDOW && (self.bits >> (shift - 1)) & 1 == 1;
        self.bits = if shift >= ACK_WINDOW {
            0
        } else {
            self.bits >> shift
        };
        self.next = target;
        if target_received {
            self.next_received();
        }
    }

    /// Records that `seq` was received.
    pub(crate) fn insert(&mut self, seq: u32) {
        if seq == self.next {
            self.next_received();
        } else if let Some(offset) = seq.checked_sub(self.next).and_then(|d| d.checked_sub(1))
            && offset < ACK_WINDOW
        {
            self.bits |= 1 << offset;
        }
    }

    /// Adds everything `other` contains (acknowledgements only ever grow).
    pub(crate) fn merge(&mut self, other: &Acknowledgement) {
        self.advance_to(other.next);
        for offset in 0..ACK_WINDOW {
            if (other.bits >> offset) & 1 == 1 {
                self.insert(other.next.saturating_add(1).saturating_add(offset));
            }
        }
    }

    /// `next` was received: move past it and past every received number that follows.
    fn next_received(&mut self) {
        loop {
            if self.next == u32::MAX {
                return;
            }
            let following = self.bits & 1 == 1;
            self.bits >>= 1;
            self.next += 1;
            if !following {
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_and_gaps() {
        let mut a = Acknowledgement::default();
        assert_eq!(a.highest(), None);
        a.insert(0);
        a.insert(1);
        assert_eq!(a, Acknowledgement { next: 2, bits: 0 });
        a.insert(4);
        assert!(a.contains(4) && !a.contains(2) && !a.contains(3));
        assert_eq!(a.highest(), Some(4));
        a.insert(2);
        a.insert(3);
        assert_eq!(a, Acknowledgement { next: 5, bits: 0 });
        a.advance_to(9);
        assert!(a.contains(8) && !a.contains(9));
        a.insert(9 + 1 + 64);
        assert!(!a.contains(9 + 1 + 64), "beyond the window is not reported");
    }

    proptest! {
        /// Against a plain set: `contains` agrees for every number the window can report, and
        /// merging two acknowledgements contains the union.
        #[test]
        fn matches_a_set(seqs in proptest::collection::vec(0u32..150, 0..80),
                         floor in 0u32..100, other in proptest::collection::vec(0u32..150, 0..40)) {
            let mut a = Acknowledgement::default();
            let mut set = std::collections::BTreeSet::new();
            for s in &seqs {
                // A number beyond the window when it arrives is not recorded (its sender
                // deposits it again later).
                if *s <= a.next.saturating_add(ACK_WINDOW) { set.insert(*s); }
                a.insert(*s);
            }
            a.advance_to(floor);
            set.extend(0..floor);
            let mut next = 0;
            while set.contains(&next) { next += 1; }
            prop_assert_eq!(a.next, next);
            for s in 0..next + 65 {
                prop_assert_eq!(a.contains(s), set.contains(&s), "seq {}", s);
            }
            let mut b = Acknowledgement::default();
            for s in &other { b.insert(*s); }
            let mut merged = a;
            merged.merge(&b);
            for s in 0..200 {
                if a.contains(s) || b.contains(s) { prop_assert!(merged.contains(s), "seq {}", s); }
            }
        }
    }
}

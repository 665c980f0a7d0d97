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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_and_highest() {
        let a = Acknowledgement {
            next: 5,
            bits: 0b101,
        };
        assert!(a.contains(4) && !a.contains(5) && a.contains(6) && !a.contains(7));
        assert!(a.contains(8) && !a.contains(9));
        assert_eq!(a.highest(), Some(8));
        assert_eq!(Acknowledgement::default().highest(), None);
        assert_eq!(Acknowledgement { next: 3, bits: 0 }.highest(), Some(2));
        let top = Acknowledgement {
            next: 0,
            bits: 1 << 63,
        };
        assert!(top.contains(64) && !top.contains(65));
    }
}

//! The addresses of the peer's blobs read most recently, with the hedge read at each
//! (`docs/PROTOCOL.md` §8, "Rewritten addresses").
//!
//! A sender whose device went back to an older copy writes again at positions its lost copy
//! used. Where the lost copy's blob there was read and then expired, the mailbox takes the new
//! one (`201`) at an address the reader has read past and no longer polls: neither side learns
//! of the rollback when the reader has nothing to say. A reader that fetches its last read
//! addresses again, in the padding its poll requests carry anyway, finds the new blob there;
//! it differs from the one read, so it owes the sender an acknowledgement, which shows the
//! sender its rollback (§6.5).

use std::collections::VecDeque;

use crate::{Address, HEDGE_LEN, RECEIVED_HEDGE_LEN};

/// How many read addresses a session remembers ([`ReadAddresses`]): 8, a sixth of a poll
/// request's 48 addresses, of which the poll set and the peer's signals leave most as padding.
pub const READ_ADDRESS_MEMORY: usize = 8;

/// The last [`READ_ADDRESS_MEMORY`] addresses at which a blob of the peer's decrypted, each
/// with the first [`RECEIVED_HEDGE_LEN`] bytes of that blob's hedge, newest last.
#[derive(Default)]
pub(crate) struct ReadAddresses {
    pub(crate) entries: VecDeque<(Address, [u8; RECEIVED_HEDGE_LEN])>,
}

impl ReadAddresses {
    /// Remembers that the blob with hedge `r` was read at `address`; forgets the oldest entry
    /// past [`READ_ADDRESS_MEMORY`].
    pub(crate) fn note(&mut self, address: &Address, r: &[u8; HEDGE_LEN]) {
        self.entries.retain(|(a, _)| a != address);
        self.entries.push_back((*address, prefix(r)));
        while self.entries.len() > READ_ADDRESS_MEMORY {
            self.entries.pop_front();
        }
    }

    /// Whether `blob` at `address` is another blob than the one read there: `address` is
    /// remembered and the first [`RECEIVED_HEDGE_LEN`] bytes differ (a blob deposited again
    /// byte for byte, a retransmission, is the same). A rewrite is reported once: the entry
    /// then holds the new blob's prefix.
    pub(crate) fn take_rewrite(&mut self, address: &Address, blob: &[u8]) -> bool {
        let Some(entry) = self.entries.iter_mut().find(|(a, _)| a == address) else {
            return false;
        };
        let mut found = [0u8; RECEIVED_HEDGE_LEN];
        for (f, b) in found.iter_mut().zip(blob) {
            *f = *b;
        }
        if found == entry.1 {
            return false;
        }
        entry.1 = found;
        true
    }
}

fn prefix(r: &[u8; HEDGE_LEN]) -> [u8; RECEIVED_HEDGE_LEN] {
    let mut out = [0u8; RECEIVED_HEDGE_LEN];
    for (o, b) in out.iter_mut().zip(r) {
        *o = *b;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn only_other_bytes_at_a_read_address_are_a_rewrite_and_only_once() {
        let mut read = ReadAddresses::default();
        let a = Address([1; 32]);
        let r = [7u8; HEDGE_LEN];
        read.note(&a, &r);
        let same = [[7u8; HEDGE_LEN].as_slice(), &[0u8; 100]].concat();
        assert!(
            !read.take_rewrite(&a, &same),
            "the blob read, deposited again"
        );
        assert!(
            !read.take_rewrite(&Address([2; 32]), &[9u8; 64]),
            "not a read address"
        );
        let other = [9u8; 1024];
        assert!(read.take_rewrite(&a, &other));
        assert!(!read.take_rewrite(&a, &other), "reported once");
    }

    #[test]
    fn the_newest_addresses_are_kept() {
        let mut read = ReadAddresses::default();
        for i in 0..20u8 {
            read.note(&Address([i; 32]), &[i; HEDGE_LEN]);
        }
        let kept: Vec<Address> = read.entries.iter().map(|(a, _)| *a).collect();
        assert_eq!(kept.len(), READ_ADDRESS_MEMORY);
        assert_eq!(kept[0], Address([12; 32]), "oldest kept first");
        assert_eq!(kept[READ_ADDRESS_MEMORY - 1], Address([19; 32]));
    }
}

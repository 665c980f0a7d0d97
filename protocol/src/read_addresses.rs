//! The addresses of the peer's blobs read most recently, with the hedge read at each
//! (`docs/PROTOCOL.md` §8, "Rewritten addresses").
//!
//! A sender whose device went back to an older copy writes again at positions its lost copy
//! used. Where the lost copy's blob there was read and then expired, the mailbox takes the new
//! one (`201`) at an address the reader has read past and no longer polls: neither side learns
//! of the rollback when the reader has nothing to say. A reader that fetches its last read
//! addresses again, in the padding its poll requests carry anyway, finds the new blob there;
//! it differs from the one read, so it owes the sender an acknowledgement, which shows the
//! sender its rollback (§6.5). A sender that knew of its rollback already learns nothing from
//! that acknowledgement alone, so when the new blob's header opens under the header key and
//! position of the blob read there (kept with the address), the reader also marks its digest
//! ([`Rewrite::Peer`]), which shows the sender a rollback whatever it knew.

use std::collections::VecDeque;

use crate::header_key::HeaderKey;
use crate::{Address, HEDGE_LEN, RECEIVED_HEDGE_LEN};

/// How many read addresses a session remembers ([`ReadAddresses`]): 8, a sixth of a poll
/// request's 48 addresses, of which the poll set and the peer's signals leave most as padding.
pub const READ_ADDRESS_MEMORY: usize = 8;

/// One address at which a blob of the peer's decrypted.
pub(crate) struct ReadAddress {
    pub(crate) address: Address,
    /// The first [`RECEIVED_HEDGE_LEN`] bytes of the blob read there (of its hedge).
    pub(crate) prefix: [u8; RECEIVED_HEDGE_LEN],
    /// The first bytes of the other blob reported there last, if any: each is reported once.
    pub(crate) reported: Option<[u8; RECEIVED_HEDGE_LEN]>,
    /// The header key the blob read there opened under, and its position `n` in its chain:
    /// another blob there is the peer's only if its header opens under them too. Dropped once
    /// such a blob is found (one [`Rewrite::Peer`] per address), and `None` for an address
    /// remembered by a session pickled before they were kept.
    pub(crate) opener: Option<(HeaderKey, u32)>,
}

/// What [`ReadAddresses::take_rewrite`] found at a read address.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rewrite {
    /// Not a read address, the blob read there (deposited again byte for byte, by its sender
    /// or by anyone who kept it), or the other blob reported there last.
    None,
    /// Another blob, whose header does not open as the peer's at that position (or cannot
    /// be checked: no header key kept).
    Unverified,
    /// Another blob whose header opens under the key and position of the blob read there:
    /// only a copy of the peer's device can have sealed it. Carries its hedge `r`. At most
    /// once per address.
    Peer([u8; HEDGE_LEN]),
}

/// The last [`READ_ADDRESS_MEMORY`] addresses at which a blob of the peer's decrypted, newest
/// last.
#[derive(Default)]
pub(crate) struct ReadAddresses {
    pub(crate) entries: VecDeque<ReadAddress>,
}

impl ReadAddresses {
    /// Remembers that the blob with hedge `r` was read at `address`, its header opening under
    /// `header_key` at position `n`; forgets the oldest entry past [`READ_ADDRESS_MEMORY`].
    pub(crate) fn note(
        &mut self,
        address: &Address,
        r: &[u8; HEDGE_LEN],
        header_key: HeaderKey,
        n: u32,
    ) {
        self.entries.retain(|e| e.address != *address);
        self.entries.push_back(ReadAddress {
            address: *address,
            prefix: prefix(r),
            reported: None,
            opener: Some((header_key, n)),
        });
        while self.entries.len() > READ_ADDRESS_MEMORY {
            self.entries.pop_front();
        }
    }

    /// Whether `blob` at `address` is another blob than the one read there: `address` is
    /// remembered and the first [`RECEIVED_HEDGE_LEN`] bytes differ from those of the blob
    /// read (a blob deposited again byte for byte is the same, whoever deposits it) and from
    /// those of the other blob reported there last (each is reported once).
    /// [`Rewrite::Peer`] when its header authenticates under the header key and position of
    /// the blob read there (`HDECRYPT` of `docs/PROTOCOL.md` §3.5 with the hedged key of §3.7,
    /// associated data `ad ‖ address`, and `N = n`), once per address: the key is then
    /// dropped. Else [`Rewrite::Unverified`]. No body is opened.
    pub(crate) fn take_rewrite(
        &mut self,
        address: &Address,
        blob: &[u8],
        ad: &[u8; 32],
    ) -> Rewrite {
        let Some(entry) = self.entries.iter_mut().find(|e| e.address == *address) else {
            return Rewrite::None;
        };
        let mut found = [0u8; RECEIVED_HEDGE_LEN];
        for (f, b) in found.iter_mut().zip(blob) {
            *f = *b;
        }
        if found == entry.prefix || entry.reported == Some(found) {
            return Rewrite::None;
        }
        entry.reported = Some(found);
        let opens = |(header_key, n): &(HeaderKey, u32)| {
            crate::double_ratchet::split_blob(blob)
                .ok()
                .and_then(|parts| {
                    header_key
                        .decrypt_header(parts.header, parts.r, *n, ad, address)
                        .map(|_| *parts.r)
                })
        };
        match entry.opener.as_ref().and_then(opens) {
            Some(r) => {
                entry.opener = None;
                Rewrite::Peer(r)
            }
            None => Rewrite::Unverified,
        }
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
    use crate::header_key::Header;
    use crate::message::BLOB_LEN;

    const AD: [u8; 32] = [3; 32];

    fn key(byte: u8) -> HeaderKey {
        HeaderKey::from_bytes(&[byte; 32])
    }

    /// A memory that read the blob with hedge `[7; 16]` at `a`, under `key(1)` at position 4.
    fn read_at(a: &Address) -> ReadAddresses {
        let mut read = ReadAddresses::default();
        read.note(a, &[7u8; HEDGE_LEN], key(1), 4);
        read
    }

    /// A blob of the full length whose header is sealed under `key` for position `n` at
    /// `address`, with hedge `[r; 16]` (the body is not checked here).
    fn blob(key: &HeaderKey, n: u32, address: &Address, r: u8) -> Vec<u8> {
        let r = [r; HEDGE_LEN];
        let header = Header {
            ratchet_key: [5; 32],
            pn: 0,
            n,
        };
        let mut out = r.to_vec();
        out.extend_from_slice(&key.encrypt_header(&header, &r, &AD, address));
        out.resize(BLOB_LEN, 0);
        out
    }

    #[test]
    fn only_other_bytes_at_a_read_address_are_a_rewrite_and_only_once() {
        let mut read = ReadAddresses::default();
        let a = Address([1; 32]);
        read.note(&a, &[7u8; HEDGE_LEN], key(1), 4);
        let same = [[7u8; HEDGE_LEN].as_slice(), &[0u8; 100]].concat();
        assert_eq!(
            read.take_rewrite(&a, &same, &AD),
            Rewrite::None,
            "the blob read, deposited again"
        );
        assert_eq!(
            read.take_rewrite(&Address([2; 32]), &[9u8; 64], &AD),
            Rewrite::None,
            "not a read address"
        );
        let other = [9u8; BLOB_LEN];
        assert_eq!(read.take_rewrite(&a, &other, &AD), Rewrite::Unverified);
        assert_eq!(
            read.take_rewrite(&a, &other, &AD),
            Rewrite::None,
            "reported once"
        );
    }

    #[test]
    fn a_rewrite_is_the_peers_only_if_its_header_opens_at_that_key_and_position() {
        let a = Address([1; 32]);
        assert_eq!(
            read_at(&a).take_rewrite(&a, &blob(&key(1), 4, &a, 8), &AD),
            Rewrite::Peer([8; HEDGE_LEN])
        );
        // Each in a fresh memory: after a mark the key is gone, and everything is unverified.
        for (other, why) in [
            (blob(&key(2), 4, &a, 9), "another header key"),
            (blob(&key(1), 5, &a, 10), "another position"),
            (
                blob(&key(1), 4, &Address([2; 32]), 11),
                "sealed for another address",
            ),
            (
                blob(&key(1), 4, &a, 12)[..BLOB_LEN - 1].to_vec(),
                "a short blob",
            ),
        ] {
            assert_eq!(
                read_at(&a).take_rewrite(&a, &other, &AD),
                Rewrite::Unverified,
                "{why}"
            );
        }
        let mut old = ReadAddresses::default();
        old.entries.push_back(ReadAddress {
            address: a,
            prefix: [7; RECEIVED_HEDGE_LEN],
            reported: None,
            opener: None,
        });
        assert_eq!(
            old.take_rewrite(&a, &blob(&key(1), 4, &a, 8), &AD),
            Rewrite::Unverified,
            "no key kept (an older pickle): never taken for the peer's"
        );
    }

    /// The operator holds the blob read there: putting junk at the address and then that
    /// blob back is no rewrite of the peer's (it would mark the digest and show the peer a
    /// false rollback, as often as the operator liked).
    #[test]
    fn the_blob_read_put_back_after_junk_is_no_rewrite() {
        let a = Address([1; 32]);
        let read_blob = blob(&key(1), 4, &a, 7);
        let mut read = ReadAddresses::default();
        read.note(&a, &[7u8; HEDGE_LEN], key(1), 4);
        for _ in 0..3 {
            assert_eq!(
                read.take_rewrite(&a, &[0x42; BLOB_LEN], &AD),
                Rewrite::Unverified
            );
            assert_eq!(read.take_rewrite(&a, &read_blob, &AD), Rewrite::None);
            assert_eq!(
                read.take_rewrite(&a, &[0x43; BLOB_LEN], &AD),
                Rewrite::Unverified
            );
        }
    }

    /// One blob of the peer's per address marks: a second one whose header opens there is
    /// only reported, and the header key is no longer kept.
    #[test]
    fn the_peer_is_found_once_per_address() {
        let a = Address([1; 32]);
        let mut read = read_at(&a);
        assert_eq!(
            read.take_rewrite(&a, &blob(&key(1), 4, &a, 8), &AD),
            Rewrite::Peer([8; HEDGE_LEN])
        );
        assert!(read.entries[0].opener.is_none(), "the key goes");
        assert_eq!(
            read.take_rewrite(&a, &blob(&key(1), 4, &a, 9), &AD),
            Rewrite::Unverified
        );
    }

    #[test]
    fn the_newest_addresses_are_kept() {
        let mut read = ReadAddresses::default();
        for i in 0..20u8 {
            read.note(&Address([i; 32]), &[i; HEDGE_LEN], key(i), u32::from(i));
        }
        let kept: Vec<Address> = read.entries.iter().map(|e| e.address).collect();
        assert_eq!(kept.len(), READ_ADDRESS_MEMORY);
        assert_eq!(kept[0], Address([12; 32]), "oldest kept first");
        assert_eq!(kept[READ_ADDRESS_MEMORY - 1], Address([19; 32]));
    }
}

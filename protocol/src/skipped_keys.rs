//! Message keys of skipped messages (Signal's `MKSKIPPED`), each with the address to poll.
//!
//! Bounded two ways, both deterministic: at most [`MAX_SKIPPED_KEYS`] entries (the oldest is
//! deleted first), and an entry is deleted [`SKIPPED_KEY_RETENTION`] receive events after it
//! was stored.

use crate::address::Address;
use crate::chain_key::MessageKey;
use crate::header_key::HeaderKey;
use crate::ratchet_key::RemoteRatchetKey;

/// Most skipped message keys stored at once. Adding more deletes the oldest first.
pub const MAX_SKIPPED_KEYS: usize = 128;

/// Receive events (successful decryptions) after which a skipped key is deleted.
pub const SKIPPED_KEY_RETENTION: u64 = 512;

/// One skipped message: where it will arrive and the keys to read it.
#[derive(Clone, Debug)]
pub(crate) struct SkippedKey {
    pub(crate) address: Address,
    pub(crate) header_key: HeaderKey,
    pub(crate) message_key: MessageKey,
    pub(crate) ratchet_key: RemoteRatchetKey,
    pub(crate) n: u32,
    pub(crate) stored_at: u64,
}

/// The skipped-key store, oldest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct SkippedKeys {
    pub(crate) entries: Vec<SkippedKey>,
}

impl SkippedKeys {
    /// The first entry at `address`.
    pub(crate) fn position(&self, address: &Address) -> Option<usize> {
        self.entries.iter().position(|e| &e.address == address)
    }

    /// The entry at `address` of the peer chain with ratchet key `ratchet_key`. One address
    /// holds at most two entries: a lost chain's and the fork's that replaced it under the
    /// same header key (`docs/PROTOCOL.md` §6.6).
    pub(crate) fn position_of(&self, address: &Address, ratchet_key: &[u8; 32]) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| &e.address == address && &e.ratchet_key.0 == ratchet_key)
    }

    /// The address of message `n` of the peer chain with ratchet key `ratchet_key`, when its
    /// key is kept here.
    pub(crate) fn address_of(&self, ratchet_key: &RemoteRatchetKey, n: u32) -> Option<Address> {
        self.entries
            .iter()
            .find(|e| e.n == n && e.ratchet_key.0 == ratchet_key.0)
            .map(|e| e.address)
    }

    /// The addresses to poll, oldest first, each once.
    pub(crate) fn addresses(&self) -> Vec<Address> {
        let mut out: Vec<Address> = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            if !out.contains(&e.address) {
                out.push(e.address);
            }
        }
        out
    }

    /// Appends entries, then deletes from the front until at most [`MAX_SKIPPED_KEYS`] remain.
    /// Addresses that no entry holds any more are pushed to `retired`.
    pub(crate) fn extend(&mut self, new: Vec<SkippedKey>, retired: &mut Vec<Address>) {
        self.entries.extend(new);
        let excess = self.entries.len().saturating_sub(MAX_SKIPPED_KEYS);
        let dropped: Vec<Address> = self.entries.drain(..excess).map(|e| e.address).collect();
        self.retire(dropped, retired);
    }

    /// Deletes entries stored [`SKIPPED_KEY_RETENTION`] or more events before `now_event`.
    pub(crate) fn expire(&mut self, now_event: u64, retired: &mut Vec<Address>) {
        let mut dropped = Vec::new();
        self.entries.retain(|e| {
            let keep = e.stored_at.saturating_add(SKIPPED_KEY_RETENTION) > now_event;
            if !keep {
                dropped.push(e.address);
            }
            keep
        });
        self.retire(dropped, retired);
    }

    /// Pushes each of `dropped` to `retired` once, unless an entry still holds it.
    fn retire(&self, dropped: Vec<Address>, retired: &mut Vec<Address>) {
        for address in dropped {
            if self.position(&address).is_none() && !retired.contains(&address) {
                retired.push(address);
            }
        }
    }
}

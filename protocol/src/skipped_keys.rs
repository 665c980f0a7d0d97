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
    pub(crate) fn position(&self, address: &Address) -> Option<usize> {
        self.entries.iter().position(|e| &e.address == address)
    }

    /// Appends entries, then deletes from the front until at most [`MAX_SKIPPED_KEYS`] remain.
    /// Deleted addresses are pushed to `retired`.
    pub(crate) fn extend(&mut self, new: Vec<SkippedKey>, retired: &mut Vec<Address>) {
        self.entries.extend(new);
        let excess = self.entries.len().saturating_sub(MAX_SKIPPED_KEYS);
        retired.extend(self.entries.drain(..excess).map(|e| e.address));
    }

    /// Deletes entries stored [`SKIPPED_KEY_RETENTION`] or more events before `now_event`.
    pub(crate) fn expire(&mut self, now_event: u64, retired: &mut Vec<Address>) {
        self.entries.retain(|e| {
            let keep = e.stored_at.saturating_add(SKIPPED_KEY_RETENTION) > now_event;
            if !keep {
                retired.push(e.address);
            }
            keep
        });
    }
}

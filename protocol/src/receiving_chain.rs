//! The receiving chain (`CKr`, `HKr`, `DHr`, `Nr`) and its look-ahead window of addresses.

use crate::address::Address;
use crate::chain_key::ChainKey;
use crate::header_key::{ChainAddresses, HeaderKey, Role};
use crate::ratchet_key::RemoteRatchetKey;
use std::collections::VecDeque;

/// Number of upcoming addresses polled on the current receiving chain, and on the next one.
pub const WINDOW: u32 = 16;

/// The chain the other party is currently sending on.
#[derive(Clone, Debug)]
pub(crate) struct ReceivingChain {
    pub(crate) chain_key: ChainKey,
    pub(crate) header_key: HeaderKey,
    pub(crate) ratchet_key: RemoteRatchetKey,
    /// `Nr`: the next message number not yet received or skipped.
    pub(crate) next: u32,
    /// Addresses of messages `Nr .. Nr + WINDOW`, in order.
    pub(crate) window: VecDeque<Address>,
    /// Address derivation of this chain (from `HKr` and the peer's role).
    pub(crate) addresses: ChainAddresses,
}

impl ReceivingChain {
    /// A chain at `Nr = next` whose window starts with `window` (completed to `WINDOW`).
    pub(crate) fn new(
        chain_key: ChainKey,
        header_key: HeaderKey,
        ratchet_key: RemoteRatchetKey,
        next: u32,
        window: VecDeque<Address>,
        sender: Role,
    ) -> Self {
        let addresses = header_key.chain_addresses(sender);
        let mut chain = ReceivingChain {
            chain_key,
            header_key,
            ratchet_key,
            next,
            window,
            addresses,
        };
        chain.window.truncate(WINDOW as usize);
        chain.slide_to(next);
        chain
    }

    /// Index `n` of `address` if it is in the window.
    pub(crate) fn find(&self, address: &Address) -> Option<u32> {
        let i = self.window.iter().position(|a| a == address)?;
        self.next.checked_add(u32::try_from(i).ok()?)
    }

    /// Moves `Nr` to `new_next`, sliding the window and computing its new addresses.
    pub(crate) fn slide_to(&mut self, new_next: u32) {
        let shift = new_next.saturating_sub(self.next);
        let drop = (shift as usize).min(self.window.len());
        self.window.drain(..drop);
        let have = u32::try_from(self.window.len()).unwrap_or(WINDOW);
        let first_missing = new_next.saturating_add(have);
        let missing = WINDOW.saturating_sub(have);
        self.window
            .extend(self.addresses.addresses(first_missing, missing));
        self.next = new_next;
    }
}

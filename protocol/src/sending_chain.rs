//! The sending chain (`CKs`, `HKs`, `Ns`).

use crate::chain_key::ChainKey;
use crate::header_key::{ChainAddresses, HeaderKey, Role};

/// The chain we are currently sending on.
#[derive(Clone, Debug)]
pub(crate) struct SendingChain {
    pub(crate) chain_key: ChainKey,
    pub(crate) header_key: HeaderKey,
    /// `Ns`: number of the next message to send.
    pub(crate) next: u32,
    /// Write keys of this chain (derived from `HKs` and our role).
    pub(crate) addresses: ChainAddresses,
}

impl SendingChain {
    pub(crate) fn new(chain_key: ChainKey, header_key: HeaderKey, next: u32, role: Role) -> Self {
        let addresses = header_key.chain_addresses(role);
        SendingChain {
            chain_key,
            header_key,
            next,
            addresses,
        }
    }
}

//! The sending chain (`CKs`, `HKs`, `Ns`).

use crate::chain_key::ChainKey;
use crate::header_key::HeaderKey;

/// The chain we are currently sending on.
#[derive(Clone, Debug)]
pub(crate) struct SendingChain {
    pub(crate) chain_key: ChainKey,
    pub(crate) header_key: HeaderKey,
    /// `Ns`: number of the next message to send.
    pub(crate) next: u32,
}

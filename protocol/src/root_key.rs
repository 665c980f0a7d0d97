//! The root key and `KDF_RK_HE` (Signal Double Ratchet §4.2 with header encryption).

use crate::chain_key::ChainKey;
use crate::crypto::hkdf_sha256;
use crate::header_key::HeaderKey;
use crate::secret::secret_key;

/// HKDF info string of `KDF_RK_HE`.
pub(crate) const ROOT_KDF_INFO: &[u8] = b"hush/v2/ratchet";

secret_key! {
    /// The root key `RK`, shared by both parties and advanced at every DH ratchet step.
    pub(crate) struct RootKey;
}

impl RootKey {
    /// `KDF_RK_HE(RK, dh_out)`: HKDF-SHA256 with `salt = RK`, `ikm = dh_out`,
    /// `info = "hush/v2/ratchet"`, 96 bytes of output split into `RK' ‖ CK ‖ NHK`.
    pub(crate) fn advance(&self, dh_out: &[u8; 32]) -> (RootKey, ChainKey, HeaderKey) {
        let okm = hkdf_sha256::<3>(self.as_bytes(), dh_out, &[ROOT_KDF_INFO]);
        let [rk, ck, nhk] = &*okm;
        (
            RootKey::from_bytes(rk),
            ChainKey::from_bytes(ck),
            HeaderKey::from_bytes(nhk),
        )
    }
}

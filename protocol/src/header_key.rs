//! Header keys (`HK`, `NHK`), the encrypted message header, and the per-message write keys
//! and addresses derived from a chain's header key (Signal Double Ratchet §4, plus Hush's
//! address derivation).

use crate::address::{Address, WriteKey};
use crate::crypto::{HmacSha256, TAG_LEN, open, seal};
use crate::hedge::{self, HEDGE_LEN};
use crate::secret::secret_key;
use hkdf::HmacImpl;

/// HMAC label of the write-key derivation.
pub const WRITE_KEY_LABEL: &[u8] = b"hush/v2/write-key";

/// Length of the plaintext header: `ratchet_public_key (32) ‖ PN (u32 BE) ‖ N (u32 BE)`.
pub const HEADER_LEN: usize = 40;

/// Length of the encrypted header: the plaintext header plus a 16-byte Poly1305 tag.
pub const ENCRYPTED_HEADER_LEN: usize = HEADER_LEN + TAG_LEN;

/// Which side of the conversation a party is. Signal's "Alice" is the joiner (who sends first),
/// "Bob" the inviter. The role byte separates the two parties' address streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The party that scanned the invite and sent first (Signal's Alice). Byte `0x00`.
    Joiner,
    /// The party that created the invite (Signal's Bob). Byte `0x01`.
    Inviter,
}

impl Role {
    /// The role byte that enters the write-key derivation.
    pub fn byte(self) -> u8 {
        match self {
            Role::Joiner => 0x00,
            Role::Inviter => 0x01,
        }
    }

    /// The other party's role.
    pub fn peer(self) -> Role {
        match self {
            Role::Joiner => Role::Inviter,
            Role::Inviter => Role::Joiner,
        }
    }
}

secret_key! {
    /// A header key `HK` / `NHK`. It encrypts the headers of one chain and, in Hush, also
    /// derives that chain's write keys and addresses.
    pub(crate) struct HeaderKey;
}

/// A decrypted message header (Signal's `HEADER(dh_pair, pn, n)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The sender's current ratchet public key.
    pub(crate) ratchet_key: [u8; 32],
    /// Number of messages in the sender's previous sending chain.
    pub(crate) pn: u32,
    /// Message number in the current sending chain.
    pub(crate) n: u32,
}

impl Header {
    pub(crate) fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (key, rest) = out.split_at_mut(32);
        key.copy_from_slice(&self.ratchet_key);
        let (pn, n) = rest.split_at_mut(4);
        pn.copy_from_slice(&self.pn.to_be_bytes());
        n.copy_from_slice(&self.n.to_be_bytes());
        out
    }

    fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Header {
        let (key, rest) = bytes.split_at(32);
        let (pn, n) = rest.split_at(4);
        let mut ratchet_key = [0u8; 32];
        ratchet_key.copy_from_slice(key);
        let mut pn_bytes = [0u8; 4];
        pn_bytes.copy_from_slice(pn);
        let mut n_bytes = [0u8; 4];
        n_bytes.copy_from_slice(n);
        Header {
            ratchet_key,
            pn: u32::from_be_bytes(pn_bytes),
            n: u32::from_be_bytes(n_bytes),
        }
    }
}

/// The header's associated data: `AD ‖ address` (64 bytes).
fn header_ad(ad: &[u8; 32], address: &Address) -> [u8; 64] {
    let mut out = [0u8; 64];
    let (a, b) = out.split_at_mut(32);
    a.copy_from_slice(ad);
    b.copy_from_slice(&address.0);
    out
}

impl HeaderKey {
    /// `HENCRYPT` with hedging (`docs/PROTOCOL.md` §3.5, §3.7): ChaCha20-Poly1305 under the
    /// per-blob key `HKr = HMAC(HK, "hush/v2/header-key" ‖ r)`, the all-zero nonce (`HKr` is
    /// used for this one header only) and associated data `AD ‖ address`; output
    /// `ciphertext (40) ‖ tag (16)`.
    pub(crate) fn encrypt_header(
        &self,
        header: &Header,
        r: &[u8; HEDGE_LEN],
        ad: &[u8; 32],
        address: &Address,
    ) -> [u8; ENCRYPTED_HEADER_LEN] {
        let mut out = [0u8; ENCRYPTED_HEADER_LEN];
        let (body, tag_out) = out.split_at_mut(HEADER_LEN);
        body.copy_from_slice(&header.to_bytes());
        let key = hedge::header_key(self.as_bytes(), r);
        let tag = seal(&key, [0u8; 12], &header_ad(ad, address), body);
        tag_out.copy_from_slice(&tag);
        out
    }

    /// `HDECRYPT` for the blob with hedge `r` found at `address`, which the poll set says is
    /// message `n`. Returns `None` when the tag does not verify or the decrypted `N` is not `n`.
    pub(crate) fn decrypt_header(
        &self,
        encrypted: &[u8; ENCRYPTED_HEADER_LEN],
        r: &[u8; HEDGE_LEN],
        n: u32,
        ad: &[u8; 32],
        address: &Address,
    ) -> Option<Header> {
        let (ct, tag_bytes) = encrypted.split_at(HEADER_LEN);
        let mut body = zeroize::Zeroizing::new([0u8; HEADER_LEN]);
        body.copy_from_slice(ct);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_bytes);
        let key = hedge::header_key(self.as_bytes(), r);
        if !open(
            &key,
            [0u8; 12],
            &header_ad(ad, address),
            &mut body[..],
            &tag,
        ) {
            return None;
        }
        let header = Header::from_bytes(&body);
        (header.n == n).then_some(header)
    }

    /// The chain's address derivation, keyed once.
    pub(crate) fn chain_addresses(&self, sender: Role) -> ChainAddresses {
        let mut mac = <HmacSha256 as HmacImpl>::new_from_slice(self.as_bytes());
        HmacImpl::update(&mut mac, WRITE_KEY_LABEL);
        ChainAddresses { mac, sender }
    }

    /// The write key of message `n` sent by `sender` on the chain whose header key is `self`:
    /// `HMAC-SHA256(HK, "hush/v2/write-key" ‖ role_byte ‖ u32be(n))`.
    pub(crate) fn write_key(&self, sender: Role, n: u32) -> WriteKey {
        self.chain_addresses(sender).write_key(n)
    }

    /// Addresses of messages `start .. start + count` (saturating at `u32::MAX`).
    pub(crate) fn addresses(&self, sender: Role, start: u32, count: u32) -> Vec<Address> {
        self.chain_addresses(sender).addresses(start, count)
    }
}

/// Write keys and addresses of one chain: HMAC-SHA256 keyed with the chain's header key, with
/// the label already absorbed (so each message costs two SHA-256 blocks for the write key and
/// one for the address). The HMAC state is secret and zeroized on drop.
#[derive(Clone)]
pub(crate) struct ChainAddresses {
    mac: HmacSha256,
    sender: Role,
}

impl ChainAddresses {
    /// `HMAC-SHA256(HK, "hush/v2/write-key" ‖ role_byte ‖ u32be(n))`.
    pub(crate) fn write_key(&self, n: u32) -> WriteKey {
        write_key_from(self.mac.clone(), self.sender, n)
    }

    /// Addresses of messages `start .. start + count` (saturating at `u32::MAX`).
    pub(crate) fn addresses(&self, start: u32, count: u32) -> Vec<Address> {
        (start..start.saturating_add(count))
            .map(|n| self.write_key(n).address())
            .collect()
    }
}

impl core::fmt::Debug for ChainAddresses {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChainAddresses(..)")
    }
}

fn write_key_from(mut mac: HmacSha256, sender: Role, n: u32) -> WriteKey {
    HmacImpl::update(&mut mac, &[sender.byte()]);
    HmacImpl::update(&mut mac, &n.to_be_bytes());
    WriteKey(HmacImpl::finalize(mac).into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;

    #[test]
    fn write_key_is_documented_hmac() {
        let hk = HeaderKey::from_bytes(&[1u8; 32]);
        let expected = hmac_sha256(&[1u8; 32], &[WRITE_KEY_LABEL, &[0x01], &7u32.to_be_bytes()]);
        assert_eq!(hk.write_key(Role::Inviter, 7).0, *expected);
        assert_eq!(
            hk.addresses(Role::Inviter, 7, 1),
            vec![hk.write_key(Role::Inviter, 7).address()]
        );
    }

    #[test]
    fn roles_separate_streams() {
        let hk = HeaderKey::from_bytes(&[1u8; 32]);
        assert_ne!(
            hk.write_key(Role::Joiner, 0),
            hk.write_key(Role::Inviter, 0)
        );
    }

    #[test]
    fn header_round_trip_checks_n_and_ad() {
        let hk = HeaderKey::from_bytes(&[2u8; 32]);
        let header = Header {
            ratchet_key: [9u8; 32],
            pn: 3,
            n: 4,
        };
        let (ad, other_ad, at, elsewhere) =
            ([4u8; 32], [5u8; 32], Address([6; 32]), Address([7; 32]));
        let r = [8u8; HEDGE_LEN];
        let ct = hk.encrypt_header(&header, &r, &ad, &at);
        assert_eq!(
            hk.decrypt_header(&ct, &r, 4, &ad, &at),
            Some(header.clone())
        );
        assert_eq!(hk.decrypt_header(&ct, &r, 5, &ad, &at), None);
        assert_eq!(hk.decrypt_header(&ct, &r, 4, &other_ad, &at), None);
        assert_eq!(hk.decrypt_header(&ct, &r, 4, &ad, &elsewhere), None);
        assert_eq!(hk.decrypt_header(&ct, &[9u8; HEDGE_LEN], 4, &ad, &at), None);
        assert_eq!(
            HeaderKey::from_bytes(&[3u8; 32]).decrypt_header(&ct, &r, 4, &ad, &at),
            None
        );
        // A different hedge gives an unrelated ciphertext of the same header.
        let other = hk.encrypt_header(&header, &[9u8; HEDGE_LEN], &ad, &at);
        let equal = ct.iter().zip(other.iter()).filter(|(a, b)| a == b).count();
        assert!(equal < 8, "{equal} equal bytes");
    }
}

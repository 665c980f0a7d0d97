//! X25519 ratchet key pairs: ours (`DHs`) and the other party's public key (`DHr`).

use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Our ratchet key pair `DHs`. The public key is cached: recomputing it costs a base-point
/// multiplication.
#[derive(Clone)]
pub(crate) struct RatchetKeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

/// The other party's ratchet public key `DHr`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RemoteRatchetKey(pub(crate) [u8; 32]);

impl RatchetKeyPair {
    /// `GENERATE_DH()`: a fresh X25519 key pair from the caller's CSPRNG.
    pub(crate) fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let secret = StaticSecret::random_from_rng(rng);
        let public = PublicKey::from(&secret);
        RatchetKeyPair { secret, public }
    }

    /// Rebuilds a key pair from its secret scalar bytes (pickles, test vectors).
    pub(crate) fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        let secret = StaticSecret::from(*bytes);
        let public = PublicKey::from(&secret);
        RatchetKeyPair { secret, public }
    }

    /// The secret scalar bytes (for the encrypted pickle only).
    pub(crate) fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public key bytes.
    pub(crate) fn public_bytes(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// `DH(DHs, DHr)`. Returns `None` when the peer's key is of small order (the output would
    /// be all zeros and contribute nothing).
    pub(crate) fn diffie_hellman(&self, remote: &RemoteRatchetKey) -> Option<Zeroizing<[u8; 32]>> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(remote.0));
        if shared.was_contributory() {
            Some(Zeroizing::new(shared.to_bytes()))
        } else {
            None
        }
    }
}

impl core::fmt::Debug for RatchetKeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RatchetKeyPair")
            .field("public", &self.public_bytes())
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for RemoteRatchetKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RemoteRatchetKey({:02x?})", self.0)
    }
}

//! The vault: everything the client stores is sealed under a key derived from the passphrase.
//!
//! * **Key derivation.** Argon2id (RFC 9106) over the passphrase with a random 16-byte salt and
//!   the parameters in [`KdfParams`], giving the 32-byte [`VaultKey`]. The key lives only in
//!   memory (zeroized on drop, wiped on lock); it is never written anywhere.
//! * **Split derivation.** The slow step (~1 s, 128 MiB) is [`KdfInput::derive_key`] alone,
//!   from the header's clear [`KdfInput`] (salt and parameters), so it can run off the UI
//!   thread (the browser client derives in a Web Worker); [`create_with_key`] and
//!   [`open_with_key`] then create or open the vault with the derived key. [`create`] and
//!   [`unlock`] are the same steps in one call; the stored format is the same either way.
//! * **Records.** Each record is sealed with XChaCha20-Poly1305 under the vault key, with a
//!   hedged 24-byte nonce, `HMAC(subkey "record-nonce", z ‖ name ‖ plaintext)[0..24]` for 32
//!   fresh random bytes `z` (random nonces alone are safe at this size, but a restored VM
//!   snapshot can replay the generator; hedged with the plaintext, two different records never
//!   share a nonce even then: `docs/PROTOCOL.md` §3.8), and the record's *name* as associated
//!   data, so a record moved to another name, truncated or altered in any bit fails as a
//!   whole: nothing is ever half-loaded. Opening does not depend on how the nonce was chosen.
//! * **Wrong passphrase.** The vault header carries a sealed check record; a wrong passphrase
//!   fails its AEAD check and is reported before anything else is read or written.
//!
//! Layout of a sealed record: `nonce (24) ‖ ciphertext ‖ tag (16)`.
//! Layout of the vault header (stored in clear; nothing in it is secret):
//! `version (1) = 1 ‖ m_kib (u32 BE) ‖ t (u32 BE) ‖ p (u32 BE) ‖ salt (16) ‖ sealed check`.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Version byte of the vault header layout.
pub const VAULT_VERSION: u8 = 1;
/// Salt length for Argon2id.
pub const SALT_LEN: usize = 16;
/// XChaCha20-Poly1305 nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Associated-data prefix of every sealed record (followed by the record's name).
const RECORD_AD: &[u8] = b"hush/v1/record/";
/// Name of the check record sealed into the header.
const CHECK_NAME: &str = "vault-check";
/// Plaintext of the check record.
const CHECK_PLAINTEXT: &[u8] = b"hush vault v1";
const HEADER_FIXED_LEN: usize = 1 + 4 + 4 + 4 + SALT_LEN;

/// Argon2id cost parameters, stored in the vault header so they can be raised later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// The parameters new vaults use: 128 MiB, 8 passes, 1 lane — about one second in
    /// Chromium's WebAssembly on a laptop-class core (measured figures in the README).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 128 * 1024,
        t: 8,
        p: 1,
    };

    /// Cheapest parameters RFC 9106 allows, for tests only.
    #[cfg(test)]
    pub const TEST: KdfParams = KdfParams {
        m_kib: 8,
        t: 1,
        p: 1,
    };

    /// Upper bounds accepted from a stored header, so a tampered header cannot make unlocking
    /// allocate gigabytes or spin for hours.
    const MAX_M_KIB: u32 = 1024 * 1024;
    const MAX_T: u32 = 64;
    const MAX_P: u32 = 16;
}

/// Why a vault operation failed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultError {
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// The passphrase does not open this vault.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The vault header is malformed or from an unknown version.
    #[error("the vault header is malformed")]
    BadHeader,
    /// A sealed record failed authentication: it was altered, truncated or moved.
    #[error("a stored record failed its integrity check")]
    Tampered,
    /// Argon2 rejected the parameters.
    #[error("invalid key-derivation parameters")]
    BadParams,
    /// The memory Argon2id needs (`m_kib` KiB, 128 MiB by default) could not be allocated:
    /// the device (or the browser tab) has too little free memory. Nothing was derived.
    #[error("not enough free memory to derive the vault key")]
    OutOfMemory,
    /// A vault key handed in from outside ([`VaultKey::take_from`]) is not 32 bytes long.
    #[error("a vault key must be 32 bytes")]
    BadKeyLength,
}

/// The 32-byte key that seals every record. Zeroized on drop; never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct VaultKey([u8; 32]);

impl core::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("VaultKey(..)")
    }
}

/// The clear part of a vault header that key derivation needs: the header layout's version,
/// the Argon2id parameters and the salt. Nothing in it is secret.
///
/// It is split from the rest of the header so that the slow, memory-hard derivation
/// ([`KdfInput::derive_key`], ~1 s and 128 MiB with [`KdfParams::DEFAULT`]) can run where the
/// vault is not (a browser's Web Worker), and the vault is then created
/// ([`create_with_key`]) or opened ([`open_with_key`]) with the derived key. Encoded as the
/// first [`KDF_INPUT_LEN`] bytes of the header: `version (1) ‖ m_kib (u32 BE) ‖ t (u32 BE) ‖
/// p (u32 BE) ‖ salt (16)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfInput {
    params: KdfParams,
    salt: [u8; SALT_LEN],
}

/// Length of an encoded [`KdfInput`], in bytes: the vault header's fixed prefix.
pub const KDF_INPUT_LEN: usize = HEADER_FIXED_LEN;

impl KdfInput {
    /// Fresh input for a new vault: a random 16-byte salt from `rng` and `params`.
    pub fn generate(rng: &mut impl CryptoRng, params: KdfParams) -> KdfInput {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        KdfInput { params, salt }
    }

    /// Reads the input from a vault header, or from its first [`KDF_INPUT_LEN`] bytes alone
    /// (what [`KdfInput::to_bytes`] gives); anything after them is ignored here.
    ///
    /// Errors: [`VaultError::BadHeader`] if `bytes` is shorter than [`KDF_INPUT_LEN`], has
    /// an unknown version, or asks for more than the bounds on memory (1 GiB), passes (64)
    /// or lanes (16), so a tampered header cannot make derivation allocate gigabytes or spin
    /// for hours.
    pub fn parse(bytes: &[u8]) -> Result<KdfInput, VaultError> {
        parse_header(bytes).map(|(params, salt, _)| KdfInput { params, salt })
    }

    /// The [`KDF_INPUT_LEN`]-byte encoding, as it starts the vault header.
    pub fn to_bytes(&self) -> [u8; KDF_INPUT_LEN] {
        let mut out = [0u8; KDF_INPUT_LEN];
        let fields = [
            &[VAULT_VERSION][..],
            &self.params.m_kib.to_be_bytes(),
            &self.params.t.to_be_bytes(),
            &self.params.p.to_be_bytes(),
            &self.salt,
        ];
        let mut at = 0;
        for field in fields {
            if let Some(dst) = out.get_mut(at..at + field.len()) {
                dst.copy_from_slice(field);
            }
            at += field.len();
        }
        out
    }

    /// The Argon2id parameters.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Derives the 32-byte vault key: Argon2id v1.3 (RFC 9106) over `passphrase` (the bytes
    /// as given: callers normalise text first) with this salt and these parameters. Takes
    /// `m_kib` KiB of memory and `t` passes over it; the memory is allocated fallibly and
    /// zeroized before it is freed, and the key is zeroized on drop ([`VaultKey`]).
    ///
    /// Errors: [`VaultError::EmptyPassphrase`]; [`VaultError::OutOfMemory`] if the
    /// `m_kib` KiB cannot be allocated (nothing else is then allocated and no key exists);
    /// [`VaultError::BadParams`] if Argon2 refuses the parameters.
    pub fn derive_key(&self, passphrase: &[u8]) -> Result<VaultKey, VaultError> {
        if passphrase.is_empty() {
            return Err(VaultError::EmptyPassphrase);
        }
        let params = self.params;
        let argon_params = Params::new(params.m_kib, params.t, params.p, Some(32))
            .map_err(|_| VaultError::BadParams)?;
        let blocks = argon_params.block_count();
        // Argon2's own allocation frees its blocks without wiping them; ours wipes them, and
        // reports a failed allocation (a browser tab's WebAssembly memory that cannot grow)
        // as an error rather than an abort.
        let mut memory: Zeroizing<Vec<Block>> = Zeroizing::new(Vec::new());
        memory
            .try_reserve_exact(blocks)
            .map_err(|_| VaultError::OutOfMemory)?;
        memory.resize(blocks, Block::default());
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
        let mut key = VaultKey([0u8; 32]);
        argon
            .hash_password_into_with_memory(passphrase, &self.salt, &mut key.0, &mut memory[..])
            .map_err(|err| match err {
                argon2::Error::OutOfMemory => VaultError::OutOfMemory,
                _ => VaultError::BadParams,
            })?;
        Ok(key)
    }
}

/// A new vault: its header (to store) and its key (to keep in memory). The same as
/// [`KdfInput::generate`], [`KdfInput::derive_key`] and [`create_with_key`] in one step, on
/// the caller's thread.
///
/// Errors: those of [`KdfInput::derive_key`].
pub fn create(
    rng: &mut impl CryptoRng,
    passphrase: &[u8],
    params: KdfParams,
) -> Result<(Vec<u8>, VaultKey), VaultError> {
    let input = KdfInput::generate(rng, params);
    let key = input.derive_key(passphrase)?;
    let header = create_with_key(rng, &input, &key);
    Ok((header, key))
}

/// The header of a new vault whose key `key` was derived from `input`
/// ([`KdfInput::derive_key`]): `input`'s bytes, then the check record sealed under `key`.
///
/// The caller must pass the `input` the key was derived from: a key derived from other
/// input seals a header that no passphrase opens (nothing here can tell without the
/// passphrase).
pub fn create_with_key(rng: &mut impl CryptoRng, input: &KdfInput, key: &VaultKey) -> Vec<u8> {
    let mut header =
        Vec::with_capacity(HEADER_FIXED_LEN + NONCE_LEN + CHECK_PLAINTEXT.len() + TAG_LEN);
    header.extend_from_slice(&input.to_bytes());
    header.extend_from_slice(&key.seal(rng, CHECK_NAME, CHECK_PLAINTEXT));
    header
}

/// Derives the key from `passphrase` and checks it against `header`: [`KdfInput::parse`],
/// [`KdfInput::derive_key`] and [`open_with_key`] in one step, on the caller's thread.
///
/// A wrong passphrase is reported as [`VaultError::WrongPassphrase`]; nothing else is touched.
/// Errors: also those of the three steps.
pub fn unlock(header: &[u8], passphrase: &[u8]) -> Result<VaultKey, VaultError> {
    let key = KdfInput::parse(header)?.derive_key(passphrase)?;
    open_with_key(header, key)
}

/// Checks a derived `key` against `header`: the header's check record must open under it
/// (XChaCha20-Poly1305, whose tag is checked in constant time) to the expected plaintext
/// (compared in constant time). Returns the key when it opens this vault; otherwise the
/// key is dropped, and so zeroized.
///
/// Errors: [`VaultError::BadHeader`] for a malformed header; [`VaultError::WrongPassphrase`]
/// when the key does not open it (derived from another passphrase or another header's input).
pub fn open_with_key(header: &[u8], key: VaultKey) -> Result<VaultKey, VaultError> {
    let (_, _, check) = parse_header(header)?;
    match key.open(CHECK_NAME, check) {
        Ok(plain) if bool::from(plain.as_slice().ct_eq(CHECK_PLAINTEXT)) => Ok(key),
        _ => Err(VaultError::WrongPassphrase),
    }
}

/// The Argon2id parameters recorded in a header.
pub fn header_params(header: &[u8]) -> Result<KdfParams, VaultError> {
    parse_header(header).map(|(params, _, _)| params)
}

fn parse_header(header: &[u8]) -> Result<(KdfParams, [u8; SALT_LEN], &[u8]), VaultError> {
    let (fixed, check) = header
        .split_at_checked(HEADER_FIXED_LEN)
        .ok_or(VaultError::BadHeader)?;
    let (&version, rest) = fixed.split_first().ok_or(VaultError::BadHeader)?;
    if version != VAULT_VERSION {
        return Err(VaultError::BadHeader);
    }
    let word = |i: usize| -> Result<u32, VaultError> {
        rest.get(i * 4..i * 4 + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or(VaultError::BadHeader)
    };
    let params = KdfParams {
        m_kib: word(0)?,
        t: word(1)?,
        p: word(2)?,
    };
    if params.m_kib > KdfParams::MAX_M_KIB
        || params.t > KdfParams::MAX_T
        || params.p > KdfParams::MAX_P
    {
        return Err(VaultError::BadHeader);
    }
    let salt = rest
        .get(12..12 + SALT_LEN)
        .and_then(|b| <[u8; SALT_LEN]>::try_from(b).ok())
        .ok_or(VaultError::BadHeader)?;
    Ok((params, salt, check))
}

impl VaultKey {
    /// Length of a vault key, in bytes.
    pub const LEN: usize = 32;

    /// The key's 32 bytes, for handing a key derived in one place (a browser's Web Worker)
    /// to the vault in another. Whoever copies them out must wipe the copy once it is handed
    /// over ([`VaultKey::take_from`] does, on the receiving side).
    pub fn expose_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// Takes a key out of `bytes`, which must be exactly [`VaultKey::LEN`] long, and wipes
    /// `bytes` (set to zero) in every case, so the caller's buffer never keeps the key.
    ///
    /// Errors: [`VaultError::BadKeyLength`] if `bytes` is not 32 bytes long.
    pub fn take_from(bytes: &mut [u8]) -> Result<VaultKey, VaultError> {
        let key = <[u8; Self::LEN]>::try_from(&*bytes)
            .map(VaultKey)
            .map_err(|_| VaultError::BadKeyLength);
        bytes.zeroize();
        key
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// An independent 32-byte key for `label`: HMAC-SHA256(vault key, "hush/v1/subkey/" ‖ label).
    pub fn subkey(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"hush/v1/subkey/");
        mac.update(label.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// Seals `plaintext` as the record `name`: `nonce ‖ ciphertext ‖ tag`. The nonce is
    /// hedged: fresh randomness and the record itself, so a replayed generator never gives two
    /// different records one nonce.
    pub fn seal(&self, rng: &mut impl CryptoRng, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut z = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut z[..]);
        let nonce_key = self.subkey("record-nonce");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&nonce_key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&z[..]);
        mac.update(&(name.len() as u64).to_be_bytes());
        mac.update(name.as_bytes());
        mac.update(plaintext);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let nonce: [u8; NONCE_LEN] = full.first_chunk().copied().unwrap_or_default();
        let ad = record_ad(name);
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        // Encryption cannot fail for in-memory buffers under the AEAD's length limit (2^38 B).
        if let Ok(ct) = self.cipher().encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &ad,
            },
        ) {
            out.extend_from_slice(&ct);
        }
        out
    }

    /// Opens the record `name`; any change to its bytes or its name fails as a whole.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let (nonce, ct) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(VaultError::Tampered)?;
        if ct.len() < TAG_LEN {
            return Err(VaultError::Tampered);
        }
        let nonce = XNonce::try_from(nonce).map_err(|_| VaultError::Tampered)?;
        let ad = record_ad(name);
        self.cipher()
            .decrypt(&nonce, Payload { msg: ct, aad: &ad })
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Tampered)
    }
}

fn record_ad(name: &str) -> Vec<u8> {
    [RECORD_AD, name.as_bytes()].concat()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    struct TestRng(u64);
    impl rand_core::TryRng for TestRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            // splitmix64: deterministic test randomness only.
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            Ok(z ^ (z >> 31))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dst.chunks_mut(8) {
                let v = self.try_next_u64()?.to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for TestRng {}

    #[test]
    fn create_then_unlock_opens_records() {
        let mut rng = TestRng(1);
        let (header, key) = create(&mut rng, b"correct horse", KdfParams::TEST).unwrap();
        let sealed = key.seal(&mut rng, "conv/1", b"session pickle");
        let again = unlock(&header, b"correct horse").unwrap();
        assert_eq!(
            again.open("conv/1", &sealed).unwrap().as_slice(),
            b"session pickle"
        );
        assert_eq!(header_params(&header).unwrap(), KdfParams::TEST);
    }

    #[test]
    fn wrong_or_empty_passphrase_is_rejected() {
        let mut rng = TestRng(2);
        let (header, _) = create(&mut rng, b"right", KdfParams::TEST).unwrap();
        assert_eq!(
            unlock(&header, b"wrong").unwrap_err(),
            VaultError::WrongPassphrase
        );
        assert_eq!(
            unlock(&header, b"").unwrap_err(),
            VaultError::EmptyPassphrase
        );
    }

    #[test]
    fn altered_moved_or_truncated_records_fail_whole() {
        let mut rng = TestRng(3);
        let (_, key) = create(&mut rng, b"pw", KdfParams::TEST).unwrap();
        let sealed = key.seal(&mut rng, "msg/1", b"hello");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(key.open("msg/1", &bad).unwrap_err(), VaultError::Tampered);
        }
        assert_eq!(
            key.open("msg/2", &sealed).unwrap_err(),
            VaultError::Tampered
        );
        for len in 0..sealed.len() {
            assert!(key.open("msg/1", &sealed[..len]).is_err());
        }
    }

    #[test]
    fn malformed_headers_are_rejected_without_panic() {
        let mut rng = TestRng(4);
        let (header, _) = create(&mut rng, b"pw", KdfParams::TEST).unwrap();
        for len in 0..HEADER_FIXED_LEN {
            assert_eq!(
                unlock(&header[..len], b"pw").unwrap_err(),
                VaultError::BadHeader
            );
        }
        let mut huge = header.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(unlock(&huge, b"pw").unwrap_err(), VaultError::BadHeader);
        let mut version = header;
        version[0] = 9;
        assert_eq!(unlock(&version, b"pw").unwrap_err(), VaultError::BadHeader);
    }

    #[test]
    fn a_replayed_generator_never_repeats_a_nonce_for_different_records() {
        let key = VaultKey([7u8; 32]);
        let a = key.seal(&mut TestRng(5), "msg/a", b"first");
        let b = key.seal(&mut TestRng(5), "msg/a", b"other");
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_eq!(key.open("msg/a", &b).unwrap().as_slice(), b"other");
        // The same record from the same generator state seals to the same bytes.
        assert_eq!(key.seal(&mut TestRng(5), "msg/a", b"first"), a);
    }

    #[test]
    fn nonces_differ_between_seals() {
        let mut rng = TestRng(5);
        let (_, key) = create(&mut rng, b"pw", KdfParams::TEST).unwrap();
        let a = key.seal(&mut rng, "x", b"same");
        let b = key.seal(&mut rng, "x", b"same");
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    /// What key derivation computed before it was split out (Argon2's own allocation).
    fn argon2_reference(passphrase: &[u8], salt: &[u8; SALT_LEN], p: KdfParams) -> [u8; 32] {
        let params = Params::new(p.m_kib, p.t, p.p, Some(32)).unwrap();
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, salt, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn derive_then_open_is_unlock() {
        let mut rng = TestRng(6);
        let (header, created) = create(&mut rng, b"correct horse", KdfParams::TEST).unwrap();
        let input = KdfInput::parse(&header).unwrap();
        // The worker receives only the header's clear prefix.
        assert_eq!(KdfInput::parse(&input.to_bytes()).unwrap(), input);
        assert_eq!(header[..KDF_INPUT_LEN], input.to_bytes());
        let derived = input.derive_key(b"correct horse").unwrap();
        let opened = open_with_key(&header, derived).unwrap();
        let unlocked = unlock(&header, b"correct horse").unwrap();
        assert_eq!(opened.expose_bytes(), unlocked.expose_bytes());
        assert_eq!(opened.expose_bytes(), created.expose_bytes());
        let sealed = created.seal(&mut rng, "conv/1", b"pickle");
        assert_eq!(
            opened.open("conv/1", &sealed).unwrap().as_slice(),
            b"pickle"
        );
    }

    #[test]
    fn derived_keys_are_argon2id_as_before_including_lanes() {
        let salt = [0x5a; SALT_LEN];
        for params in [
            KdfParams::TEST,
            KdfParams {
                m_kib: 256,
                t: 3,
                p: 2,
            },
        ] {
            let input = KdfInput { params, salt };
            assert_eq!(
                input.derive_key(b"passphrase").unwrap().expose_bytes(),
                &argon2_reference(b"passphrase", &salt, params)
            );
        }
    }

    #[test]
    fn create_with_key_writes_the_version_1_header_layout() {
        let mut rng = TestRng(7);
        let params = KdfParams {
            m_kib: 16,
            t: 2,
            p: 1,
        };
        let input = KdfInput::generate(&mut rng, params);
        let key = input.derive_key(b"pw").unwrap();
        let header = create_with_key(&mut rng, &input, &key);
        assert_eq!(header[0], VAULT_VERSION);
        assert_eq!(header[1..5], 16u32.to_be_bytes());
        assert_eq!(header[5..9], 2u32.to_be_bytes());
        assert_eq!(header[9..13], 1u32.to_be_bytes());
        assert_eq!(header[13..29], input.salt);
        assert_eq!(
            header.len(),
            29 + NONCE_LEN + CHECK_PLAINTEXT.len() + TAG_LEN
        );
        assert_eq!(
            key.expose_bytes(),
            &argon2_reference(b"pw", &input.salt, params)
        );
        assert!(unlock(&header, b"pw").is_ok());
    }

    #[test]
    fn a_key_from_another_passphrase_or_salt_is_refused() {
        let mut rng = TestRng(8);
        let (header, _) = create(&mut rng, b"right", KdfParams::TEST).unwrap();
        let input = KdfInput::parse(&header).unwrap();
        let wrong = input.derive_key(b"wrong").unwrap();
        assert_eq!(
            open_with_key(&header, wrong).unwrap_err(),
            VaultError::WrongPassphrase
        );
        let other_salt = KdfInput::generate(&mut rng, KdfParams::TEST)
            .derive_key(b"right")
            .unwrap();
        assert_eq!(
            open_with_key(&header, other_salt).unwrap_err(),
            VaultError::WrongPassphrase
        );
        assert_eq!(
            open_with_key(&header[..KDF_INPUT_LEN - 1], VaultKey([0; 32])).unwrap_err(),
            VaultError::BadHeader
        );
        assert_eq!(
            input.derive_key(b"").unwrap_err(),
            VaultError::EmptyPassphrase
        );
    }

    #[test]
    fn kdf_input_refuses_short_or_unbounded_bytes() {
        let input = KdfInput::generate(&mut TestRng(9), KdfParams::DEFAULT);
        let bytes = input.to_bytes();
        assert_eq!(
            KdfInput::parse(&bytes).unwrap().params(),
            KdfParams::DEFAULT
        );
        for len in 0..KDF_INPUT_LEN {
            assert_eq!(
                KdfInput::parse(&bytes[..len]).unwrap_err(),
                VaultError::BadHeader
            );
        }
        for (at, bound) in [
            (1, KdfParams::MAX_M_KIB),
            (5, KdfParams::MAX_T),
            (9, KdfParams::MAX_P),
        ] {
            let mut big = bytes;
            big[at..at + 4].copy_from_slice(&(bound + 1).to_be_bytes());
            assert_eq!(KdfInput::parse(&big).unwrap_err(), VaultError::BadHeader);
        }
    }

    #[test]
    fn take_from_wipes_the_buffer_on_every_path() {
        let mut bytes = [9u8; 32];
        let key = VaultKey::take_from(&mut bytes).unwrap();
        assert_eq!(key.expose_bytes(), &[9u8; 32]);
        assert_eq!(bytes, [0u8; 32]);
        for len in [0, 31, 33] {
            let mut short = vec![9u8; len];
            assert_eq!(
                VaultKey::take_from(&mut short).unwrap_err(),
                VaultError::BadKeyLength
            );
            assert!(short.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", VaultKey([1; 32])), "VaultKey(..)");
    }
}

//! Deterministic randomness for tests, test vectors, benchmarks and fuzzing.
//!
//! **Never use this for real keys**: it is a seeded, predictable generator. It exists so that
//! test vectors are reproducible by an independent implementation:
//! block `i` (32 bytes) = `SHA-256("hush/test-rng" ‖ u64be(seed) ‖ u64be(i))`, and output is
//! the concatenation of blocks, consumed in order.

use crate::crypto::sha256;
use crate::{Invite, Session};
use core::convert::Infallible;
use rand_core::{TryCryptoRng, TryRng};

/// A predictable, seeded byte stream that satisfies `rand_core::CryptoRng`. Tests only.
#[derive(Clone, Debug)]
pub struct SeededRng {
    seed: u64,
    block: u64,
    buffer: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng {
            seed,
            block: 0,
            buffer: [0; 32],
            used: 32,
        }
    }

    fn next_byte(&mut self) -> u8 {
        if self.used >= 32 {
            self.buffer = sha256(&[
                b"hush/test-rng",
                &self.seed.to_be_bytes(),
                &self.block.to_be_bytes(),
            ]);
            self.block = self.block.wrapping_add(1);
            self.used = 0;
        }
        let byte = self.buffer.get(self.used).copied().unwrap_or(0);
        self.used += 1;
        byte
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for byte in dst {
            *byte = self.next_byte();
        }
        Ok(())
    }
}

impl TryCryptoRng for SeededRng {}

/// An inviter and a joiner that completed the invite from `seed` (times 0..2), and the
/// generator to keep using: `(joiner, inviter, rng)`. For benchmarks and tests.
///
/// # Panics
/// Never for a fresh seed; this is test support, not an input path.
#[allow(clippy::expect_used)]
pub fn joined_pair(seed: u64) -> (Session, Session, SeededRng) {
    let mut rng = SeededRng::new(seed);
    let (pending, invite) = Invite::create(&mut rng, 0, 100, None).expect("valid expiry");
    let (joiner, hello) = invite.join(&mut rng, 1).expect("fresh invite");
    let first = hello.first().expect("join yields the hello");
    let inviter = pending
        .accept(2, &first.address, &first.blob)
        .expect("own hello");
    (joiner, inviter, rng)
}

/// Encrypts `text` on `from` and decrypts every blob on `to`: one message's whole cost.
///
/// # Panics
/// If either side fails, which a joined pair in lock step never does.
#[allow(clippy::expect_used)]
pub fn transfer(from: &mut Session, to: &mut Session, rng: &mut SeededRng, text: &[u8]) {
    let floor = from.next_seq();
    let blobs = from.encrypt(rng, text, floor).expect("encrypt");
    for blob in &blobs {
        core::hint::black_box(to.decrypt(&blob.address, &blob.blob).expect("decrypt"));
    }
}

/// What whoever photographed `invite` can derive without any private key: the write key of
/// the joiner's hello (message 0 of its first chain, under the invite's hello key), and
/// nothing else: from message 1 on, the first two chains use header keys derived from
/// `DH(a1, B0)` (`docs/PROTOCOL.md` §5.2, §7). With it a third party can take the hello's
/// address before the joiner (a raced join, which the joiner sees as "invite taken" and the
/// safety codes expose). For the simulator's squatter and for tests of what an invite
/// exposes (`docs/THREAT-MODEL.md`).
pub fn invite_photographer_write_keys(invite: &Invite) -> Vec<crate::WriteKey> {
    use crate::header_key::Role;
    let keys = crate::invite::invite_keys(
        &invite.secret,
        &invite.inviter_public,
        invite.expires_at,
        invite.mailbox_url.as_deref(),
    );
    vec![keys.hello_key.chain_addresses(Role::Joiner).write_key(0)]
}

/// The header key and message keys of the next `count` blobs `session` would send on its
/// current sending chain, without changing it: `(HK, [MK_Ns, MK_Ns+1, …])`. `None` while the
/// next send starts a new chain (its keys depend on randomness not drawn yet). For tests that
/// check the hedged derivation (`docs/PROTOCOL.md` §3.7) from outside the crate.
pub fn sending_keys(session: &Session, count: u32) -> Option<([u8; 32], Vec<[u8; 32]>)> {
    let ratchet = &session.ratchet;
    if ratchet.send_step_pending {
        return None;
    }
    let chain = ratchet.sending.as_ref()?;
    let mut chain_key = chain.chain_key.clone();
    let keys = (0..count).map(|_| *chain_key.step().as_bytes()).collect();
    Some((*chain.header_key.as_bytes(), keys))
}

//! Seeded randomness, split into named streams.
//!
//! Each stream is a ChaCha8 generator keyed by `SHA-256("hush/sim" ‖ u64be(seed) ‖ name)`, so
//! adding draws to one stream (a new fault, say) never shifts the draws of another, and a seed
//! replays byte for byte.

use chacha20::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// One named stream of a seed.
pub struct Stream(ChaCha8Rng);

impl Clone for Stream {
    /// The same stream at the same position: it gives again the bytes the original gives.
    fn clone(&self) -> Self {
        Stream(ChaCha8Rng::deserialize_state(&self.0.serialize_state()))
    }
}

impl Stream {
    /// The stream `name` of `seed`.
    pub fn new(seed: u64, name: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"hush/sim");
        hash.update(seed.to_be_bytes());
        hash.update(name.as_bytes());
        Stream(ChaCha8Rng::from_seed(hash.finalize().into()))
    }

    /// A uniform `u64`.
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `low..high` (`low` if the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.u64() % (high - low)
    }

    /// True with probability `p` (0 ≤ p ≤ 1).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// One of `items`, uniformly.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        let len = items.len() as u64;
        if len == 0 {
            return None;
        }
        items.get(self.range(0, len) as usize).copied()
    }

    /// Fills `dest` with random bytes.
    pub fn fill(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
}

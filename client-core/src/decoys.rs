//! Fixed-size, decoy-padded fetch batches (`docs/PROTOCOL.md` §6.1).

use hmac::{Hmac, KeyInit, Mac};
use protocol::Address;
use sha2::Sha256;

/// Every fetch asks for exactly this many addresses: the conversation's poll set in random
/// order, padded with decoys, so the mailbox cannot tell how many a conversation awaits.
/// A poll set larger than this is split into several requests of the same size.
pub const FETCH_BATCH: usize = 48;

/// Splits `addresses` into requests of exactly [`FETCH_BATCH`] addresses each, padded with
/// decoys and shuffled, so every fetch has the same size and the mailbox cannot tell how many
/// addresses a conversation awaits.
///
/// Decoys and order are a pseudorandom function of the batch's real addresses under
/// `decoy_key` (a vault subkey): `seed = HMAC(decoy_key, "hush/v1/decoys" ‖ addresses)`,
/// decoy `j` = `HMAC(seed, "decoy" ‖ u32be(j))`, and a Fisher–Yates shuffle drawing
/// `HMAC(seed, "shuffle" ‖ u32be(i))`. Without the key they are indistinguishable from real
/// addresses; and a poll set that has not changed is fetched with byte-identical requests,
/// so repeating it reveals nothing new and a mailbox's miss cache can answer the decoys too.
pub fn padded_batches(decoy_key: &[u8; 32], addresses: &[Address]) -> Vec<Vec<Address>> {
    addresses
        .chunks(FETCH_BATCH)
        .map(|chunk| {
            let mut mac = hmac_sha256(decoy_key);
            mac.update(b"hush/v1/decoys");
            for address in chunk {
                mac.update(&address.0);
            }
            let seed: [u8; 32] = mac.finalize().into_bytes().into();
            // Keyed once; each draw continues a clone of the keyed state.
            let keyed = hmac_sha256(&seed);
            let prf = |label: &[u8], i: usize| -> [u8; 32] {
                let mut mac = keyed.clone();
                mac.update(label);
                mac.update(&u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes());
                mac.finalize().into_bytes().into()
            };
            let mut batch = chunk.to_vec();
            for j in batch.len()..FETCH_BATCH {
                batch.push(Address(prf(b"decoy", j)));
            }
            for i in (1..batch.len()).rev() {
                let draw = prf(b"shuffle", i);
                let r = u64::from_be_bytes([
                    draw[0], draw[1], draw[2], draw[3], draw[4], draw[5], draw[6], draw[7],
                ]);
                // The modulo bias (< 2^-57) is irrelevant for a shuffle of 48.
                let j = (r % (i as u64 + 1)) as usize;
                batch.swap(i, j);
            }
            batch
        })
        .collect()
}

fn hmac_sha256(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn addresses(n: u8) -> Vec<Address> {
        (0..n).map(|i| Address([i; 32])).collect()
    }

    #[test]
    fn batches_are_full_size_and_hold_every_real_address_once() {
        for n in [1u8, 5, 47, 48, 49, 160] {
            let real = addresses(n);
            let batches = padded_batches(&[7; 32], &real);
            assert_eq!(batches.len(), usize::from(n).div_ceil(FETCH_BATCH));
            assert!(batches.iter().all(|b| b.len() == FETCH_BATCH));
            let flat: Vec<Address> = batches.concat();
            for a in &real {
                assert_eq!(flat.iter().filter(|x| *x == a).count(), 1);
            }
        }
    }

    #[test]
    fn an_unchanged_poll_set_gives_identical_requests_and_keys_separate_decoys() {
        let real = addresses(20);
        assert_eq!(
            padded_batches(&[7; 32], &real),
            padded_batches(&[7; 32], &real)
        );
        let other_key = padded_batches(&[8; 32], &real);
        let decoys = |b: &Vec<Address>| {
            b.iter()
                .filter(|a| !real.contains(a))
                .copied()
                .collect::<Vec<_>>()
        };
        assert_ne!(
            decoys(&padded_batches(&[7; 32], &real)[0]),
            decoys(&other_key[0])
        );
        let mut changed = real.clone();
        changed[0] = Address([99; 32]);
        assert_ne!(
            decoys(&padded_batches(&[7; 32], &real)[0]),
            decoys(&padded_batches(&[7; 32], &changed)[0])
        );
    }

    #[test]
    fn real_addresses_do_not_stay_in_front() {
        let real = addresses(8);
        let batch = &padded_batches(&[7; 32], &real)[0];
        assert_ne!(&batch[..8], &real[..], "shuffled");
    }
}

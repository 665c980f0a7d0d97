//! Which Durable Object holds which address: the store is split into `MAILBOX_SHARDS`
//! contiguous ranges of the address space, chosen by the address's first four bytes.
//!
//! Pure functions, compiled and unit-tested natively too.

/// Fewest shards: one object holds every address (and every subscription).
pub const MIN_SHARDS: u32 = 1;

/// Most shards `MAILBOX_SHARDS` may ask for. A fetch of 256 addresses then still touches at
/// most 256 objects in parallel; Workers allow 1,000 subrequests per request.
pub const MAX_SHARDS: u32 = 256;

/// Default `MAILBOX_SHARDS`: one object (see `docs/EDGE-DEPLOY.md`, "Choosing the number of
/// shards": one object carries far more than the free plan's daily limits allow).
pub const DEFAULT_SHARDS: u32 = 1;

/// Index of the shard that also holds every subscription WebSocket (the "hub"). With one
/// shard it is the only object, so a `PUT` and its pushes are one Durable Object request.
pub const HUB: u32 = 0;

/// The shard of an address when the store has `shards` shards (clamped to
/// [`MIN_SHARDS`]`..=`[`MAX_SHARDS`]): the big-endian `u32` of its first four bytes, scaled
/// onto `0..shards`, so shard `i` holds the `i`-th of `shards` equal ranges of prefixes.
pub fn shard_of(address: &[u8; 32], shards: u32) -> u32 {
    let shards = shards.clamp(MIN_SHARDS, MAX_SHARDS);
    let prefix = u32::from_be_bytes([address[0], address[1], address[2], address[3]]);
    // prefix < 2^32, so prefix * shards >> 32 < shards.
    ((u64::from(prefix) * u64::from(shards)) >> 32) as u32
}

/// The Durable Object name of shard `index` of `shards`: `"shard-{index}-of-{shards}"`.
///
/// The count is part of the name, so changing `MAILBOX_SHARDS` starts a fresh set of objects
/// instead of moving addresses between existing ones: no address can ever be found in two
/// objects of one set (first write wins stays true), and the old objects purge their own
/// messages at expiry (`docs/EDGE-DEPLOY.md`, "Changing the number of shards").
pub fn shard_name(index: u32, shards: u32) -> String {
    format!("shard-{index}-of-{}", shards.clamp(MIN_SHARDS, MAX_SHARDS))
}

/// Groups the positions of `addresses` by shard: one `(shard, positions)` entry per shard
/// touched, shards in ascending order, positions in request order (duplicates kept).
pub fn group_by_shard(addresses: &[[u8; 32]], shards: u32) -> Vec<(u32, Vec<usize>)> {
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    for (position, address) in addresses.iter().enumerate() {
        let shard = shard_of(address, shards);
        match groups.binary_search_by_key(&shard, |(s, _)| *s) {
            Ok(at) => {
                if let Some((_, positions)) = groups.get_mut(at) {
                    positions.push(position);
                }
            }
            Err(at) => groups.insert(at, (shard, vec![position])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_prefix(prefix: u32) -> [u8; 32] {
        let mut a = [0x5a; 32];
        a[..4].copy_from_slice(&prefix.to_be_bytes());
        a
    }

    #[test]
    fn shards_are_equal_prefix_ranges() {
        assert_eq!(shard_of(&with_prefix(0), 4), 0);
        assert_eq!(shard_of(&with_prefix(0x3fff_ffff), 4), 0);
        assert_eq!(shard_of(&with_prefix(0x4000_0000), 4), 1);
        assert_eq!(shard_of(&with_prefix(0xbfff_ffff), 4), 2);
        assert_eq!(shard_of(&with_prefix(u32::MAX), 4), 3);
        assert_eq!(shard_of(&with_prefix(u32::MAX), 1), 0);
        assert_eq!(shard_of(&with_prefix(u32::MAX), 0), 0, "0 is read as 1");
        assert_eq!(shard_of(&with_prefix(u32::MAX), 10_000), MAX_SHARDS - 1);
    }

    #[test]
    fn names_carry_the_count() {
        assert_eq!(shard_name(0, 1), "shard-0-of-1");
        assert_eq!(shard_name(3, 4), "shard-3-of-4");
        assert_eq!(shard_name(0, 0), "shard-0-of-1");
    }

    #[test]
    fn grouping_keeps_request_order_within_each_shard() {
        let a = with_prefix(0xf000_0000);
        let b = with_prefix(0x0000_0001);
        let c = with_prefix(0x8000_0000);
        let groups = group_by_shard(&[a, b, a, c, b], 2);
        assert_eq!(groups, vec![(0, vec![1, 4]), (1, vec![0, 2, 3])]);
        assert_eq!(group_by_shard(&[a, b, c], 1), vec![(0, vec![0, 1, 2])]);
        assert!(group_by_shard(&[], 4).is_empty());
    }
}

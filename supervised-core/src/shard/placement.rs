//! Where a child runs: its bucket (a stable hash of its name), and each
//! bucket's replica by rendezvous hashing; and a round's moves, bounded.
//!
//! Pure functions of names, bucket numbers and replica ids: every replica
//! computes the same answers from the same membership, with no
//! coordinator.

use std::collections::BTreeSet;

/// 64-bit FNV-1a of `bytes`.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// splitmix64's finalizer: every input bit moves every output bit, so the
/// low bits a modulo reads are as good as the high ones.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The bucket of the child `name` among `buckets` (see
/// [`Shards::bucket_of`](crate::Shards::bucket_of) for the formula).
pub(crate) fn bucket_of(name: &str, buckets: u32) -> u32 {
    // The remainder is below `buckets`, a `u32`.
    (mix(fnv1a(name.as_bytes())) % u64::from(buckets.max(1))) as u32
}

/// The weight of `replica` for `bucket`: the highest wins the bucket.
fn weight(replica: &str, bucket: u32) -> u64 {
    mix(fnv1a(replica.as_bytes()) ^ mix(u64::from(bucket).wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// The replica `bucket` belongs on among `replicas`: the highest weight,
/// ties to the smaller id. `None` without replicas.
pub(crate) fn preferred<'a>(
    bucket: u32,
    replicas: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    replicas
        .into_iter()
        .map(|r| (weight(r, bucket), std::cmp::Reverse(r)))
        .max()
        .map(|(_, std::cmp::Reverse(r))| r)
}

/// The buckets of `0..buckets` that belong on `me` among `replicas`.
pub(crate) fn mine(buckets: u32, replicas: &BTreeSet<String>, me: &str) -> BTreeSet<u32> {
    (0..buckets)
        .filter(|&b| preferred(b, replicas.iter().map(String::as_str)) == Some(me))
        .collect()
}

/// At most how many buckets a replica gives up in one round (every ttl/3):
/// one sixteenth of the buckets, at least one. A join moves about
/// `buckets / replicas` buckets, spread over the old replicas, so with 64
/// buckets each gives up 4 a round and the handoff spreads over a few
/// rounds instead of stopping every moving child at once. A loss or a
/// shutdown is not bounded: what cannot be held is let go at once.
pub(crate) fn releases_per_round(buckets: u32) -> usize {
    (buckets as usize / 16).max(1)
}

/// One round's moves for a replica holding `held`: the buckets to give up
/// (held but belonging elsewhere now, the first `limit` of them), and the
/// buckets to ask for (belonging here, not held).
pub(crate) fn round(
    held: &BTreeSet<u32>,
    wanted: &BTreeSet<u32>,
    limit: usize,
) -> (Vec<u32>, Vec<u32>) {
    let release = held.difference(wanted).take(limit).copied().collect();
    let acquire = wanted.difference(held).copied().collect();
    (release, acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// The hash is part of the contract (operators compute it in scripts):
    /// these values must never change.
    #[test]
    fn the_bucket_hash_is_pinned() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let pinned: Vec<u32> = ["tenant/0001", "tenant/0002", "tenant/42", "é"]
            .iter()
            .map(|n| bucket_of(n, 64))
            .collect();
        assert_eq!(pinned, PINNED);
        assert_eq!(bucket_of("anything", 1), 0);
        assert_eq!(bucket_of("anything", 0), 0, "no division by zero");
    }

    // As the formula in `Shards::bucket_of`'s docs gives them in Python.
    const PINNED: [u32; 4] = [37, 36, 13, 30];

    #[test]
    fn names_spread_evenly_over_buckets() {
        let mut counts = [0u32; 64];
        for i in 0..64_000 {
            counts[bucket_of(&format!("tenant/{i:05}"), 64) as usize] += 1;
        }
        // 1,000 expected each; a binomial's sd is about 31.
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 850 && *max < 1150, "{min}..{max}");
    }

    /// A join moves only the buckets the new replica wins; a leave moves
    /// only the leaver's.
    #[test]
    fn a_join_or_a_leave_moves_only_the_buckets_whose_replica_changed() {
        let three = replicas(&["a", "b", "c"]);
        let four = replicas(&["a", "b", "c", "d"]);
        let mut moved = 0;
        for b in 0..64 {
            let before = preferred(b, three.iter().map(String::as_str));
            let after = preferred(b, four.iter().map(String::as_str));
            if before != after {
                assert_eq!(after, Some("d"), "bucket {b}");
                moved += 1;
            }
            let without_b = replicas(&["a", "c"]);
            if preferred(b, three.iter().map(String::as_str)) != Some("b") {
                assert_eq!(
                    preferred(b, without_b.iter().map(String::as_str)),
                    preferred(b, three.iter().map(String::as_str))
                );
            }
        }
        assert!((8..=24).contains(&moved), "{moved} of 64 moved to the 4th");
        assert_eq!(preferred(0, []), None);
    }

    #[test]
    fn a_round_gives_up_at_most_the_limit_and_asks_for_all_it_lacks() {
        let held: BTreeSet<u32> = (0..10).collect();
        let wanted: BTreeSet<u32> = (5..20).collect();
        let (release, acquire) = round(&held, &wanted, 3);
        assert_eq!(release, vec![0, 1, 2]);
        assert_eq!(acquire, (10..20).collect::<Vec<_>>());
        assert_eq!(releases_per_round(64), 4);
        assert_eq!(releases_per_round(8), 1);
    }
}

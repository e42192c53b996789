//! Choosing a record's partition: Kafka's murmur2 and the default partitioner.

use std::fmt;

/// Kafka's murmur2 hash (seed `0x9747b28c`), as its default partitioner
/// computes it. Returns Java's signed result.
///
/// ```
/// assert_eq!(embedlog::murmur2(b"foobar"), -790332482);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives `key` among
/// `partitions`: `(murmur2(key) & 0x7fffffff) % partitions`.
///
/// ```
/// assert_eq!(embedlog::partition_for_key(b"foobar", 50), 16);
/// ```
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) as u32) & 0x7fff_ffff) % partitions.max(1)
}

/// Chooses a record's partition.
///
/// Return `Some(partition)` (below `partitions`) to place the record, or
/// `None` to let the producer use sticky partitioning (fill one partition's
/// batch, then move on), as Kafka does for records without a key.
pub trait Partitioner: Send + Sync + fmt::Debug {
    /// The partition for a record with `key` in `topic`.
    fn partition(&self, topic: &str, key: Option<&[u8]>, partitions: u32) -> Option<u32>;
}

/// Kafka's default: keyed records by murmur2 of the key, keyless records
/// sticky.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultPartitioner;

impl Partitioner for DefaultPartitioner {
    fn partition(&self, _topic: &str, key: Option<&[u8]>, partitions: u32) -> Option<u32> {
        key.map(|k| partition_for_key(k, partitions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_published_vectors() {
        // org.apache.kafka.common.utils.UtilsTest#testMurmur2
        for (input, want) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(murmur2(input), want, "{}", String::from_utf8_lossy(input));
        }
    }
}

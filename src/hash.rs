//! A fast hasher for hash maps on hot paths: the Fx hash of rustc, a
//! multiply and a rotate per word. Not resistant to chosen keys, so only
//! for maps whose keys an attacker does not pick freely or whose size is
//! bounded: the Streams record caches (one task's keys, drained at every
//! commit) and the record positions of a segment's batches (keyed by byte
//! position, bounded).

use std::hash::{BuildHasherDefault, Hasher};

/// The Fx hash.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with the Fx hash.
pub(crate) type FxHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_lengths_matter() {
        let h = |b: &[u8]| {
            let mut s = FxHasher::default();
            std::hash::Hash::hash(b, &mut s);
            s.finish()
        };
        assert_eq!(h(b"word"), h(b"word"));
        assert_ne!(h(b"word"), h(b"word\0"));
        let mut m: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
        m.insert(b"a".to_vec(), 1);
        assert_eq!(m.get(&b"a"[..]), Some(&1));
    }
}

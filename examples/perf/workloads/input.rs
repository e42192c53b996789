//! What a workload writes or asks for, built before its timer starts:
//! payloads already in memory (read as `&[u8]`) and the offsets a random
//! reader looks up.

/// `count` payloads of `size` bytes in one buffer: `x`s, the first 8 bytes
/// the record's index (little-endian), so no two records are equal.
pub struct Payloads {
    bytes: Vec<u8>,
    size: usize,
}

impl Payloads {
    pub fn new(count: u64, size: usize) -> Payloads {
        let mut bytes = vec![b'x'; count as usize * size];
        for (i, p) in bytes.chunks_exact_mut(size).enumerate() {
            let stamp = (i as u64).to_le_bytes();
            let n = stamp.len().min(size);
            p[..n].copy_from_slice(&stamp[..n]);
        }
        Payloads { bytes, size }
    }

    /// Payload `i`.
    pub fn get(&self, i: u64) -> &[u8] {
        let at = i as usize * self.size;
        &self.bytes[at..at + self.size]
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.chunks_exact(self.size)
    }

    /// The payloads in groups of `n` (the last may be shorter).
    pub fn batches(&self, n: usize) -> impl Iterator<Item = std::slice::ChunksExact<'_, u8>> {
        self.bytes
            .chunks(n * self.size)
            .map(|b| b.chunks_exact(self.size))
    }

    /// How many there are.
    pub fn len(&self) -> u64 {
        (self.bytes.len() / self.size) as u64
    }
}

/// `reads` offsets below `records`, the same sequence for every contender
/// (xorshift64 from a fixed seed).
pub fn random_offsets(records: u64, reads: u64) -> Vec<u64> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..reads)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % records
        })
        .collect()
}

/// A text payload of about `size` bytes (a JSON line, as application events
/// are), record `i`: what the compression workloads write.
pub fn text_payload(size: usize, i: u64) -> Vec<u8> {
    let mut s = format!(
        "{{\"id\":{i},\"user\":\"user-{:05}\",\"event\":\"{}\",\"path\":\"/api/v1/items/{}\",\"status\":{}",
        i % 10_007,
        ["view", "click", "purchase", "search"][(i % 4) as usize],
        i % 997,
        [200, 200, 200, 404, 500][(i % 5) as usize]
    );
    let words = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    ];
    s.push_str(",\"note\":\"");
    let mut w = i as usize;
    while s.len() + 2 < size {
        s.push_str(words[w % words.len()]);
        s.push(' ');
        w = w.wrapping_mul(31).wrapping_add(7);
    }
    s.push_str("\"}");
    s.into_bytes()
}

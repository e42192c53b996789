//! [`CrcChecked`]: which batches of one segment this process has already
//! checked the CRC of, so that readers check each batch once per process
//! instead of on every read by every consumer (issue 14).
//!
//! A batch counts as checked when
//!
//! - it lies wholly below the *watermark*: readers that check the batch at
//!   the watermark move it past that batch, so sequential readers advance it
//!   batch by batch;
//! - it starts at or past the length the segment had when this process
//!   opened it: this process appended it, and every append checks (or
//!   computes) the CRC of the bytes it writes;
//! - it is at least [`GRANULE`] bytes long and a reader checked it before,
//!   out of order (a random read): one bit per `GRANULE` bytes of the
//!   segment, allocated on the first such check. Batches that long cannot
//!   share a granule's start, so a bit names one batch; a shorter batch
//!   costs little to check again and is not recorded.
//!
//! What this trades: a batch's bytes that change underneath the process
//! after it checked them (another program writing into the segment file,
//! which embedlog's directory lock does not stop) are returned without a
//! second check. Bytes this process never checked are always checked, and
//! [`Batch::verify`](super::Batch::verify) and the segment verification
//! always recompute the CRC.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Batches at least this long are remembered when checked out of order.
pub(crate) const GRANULE: u64 = 4096;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct CrcChecked {
    /// Every batch wholly below this byte position was checked.
    below: AtomicU64,
    /// Batches from this position on were appended by this process.
    appended_from: u64,
    /// Bytes the segment can hold (its mapping): sizes the bit set.
    capacity: u64,
    /// One bit per `GRANULE`: the batch of at least `GRANULE` bytes
    /// starting in it was checked.
    granules: OnceLock<Box<[AtomicU64]>>,
}

impl CrcChecked {
    /// For a segment of `capacity` bytes whose first `loaded` bytes came
    /// from disk (unchecked), of which the first `checked` were checked
    /// (by recovery's scan, say).
    pub(crate) fn new(capacity: u64, loaded: u64, checked: u64) -> CrcChecked {
        CrcChecked {
            below: AtomicU64::new(checked.min(loaded)),
            appended_from: loaded,
            capacity,
            granules: OnceLock::new(),
        }
    }

    /// Whether the batch of `len` bytes at `pos` was checked.
    #[inline]
    pub(crate) fn contains(&self, pos: u64, len: u64) -> bool {
        if pos >= self.appended_from || pos + len <= self.below.load(Ordering::Acquire) {
            return true;
        }
        if len < GRANULE {
            return false;
        }
        let Some(bits) = self.granules.get() else {
            return false;
        };
        let g = pos / GRANULE;
        bits.get((g / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (g % 64)) != 0)
    }

    /// Whether the CRC of the whole batch `buf` at `pos` holds: computed
    /// only if this process has not checked that batch yet, and recorded
    /// when it passes.
    pub(crate) fn holds(&self, pos: u64, buf: &[u8]) -> bool {
        let len = buf.len() as u64;
        if self.contains(pos, len) {
            return true;
        }
        let holds = super::crc_matches(buf);
        if holds {
            self.insert(pos, len);
        }
        holds
    }

    /// Records that the batch of `len` bytes at `pos` passed its check.
    pub(crate) fn insert(&self, pos: u64, len: u64) {
        if self
            .below
            .compare_exchange(pos, pos + len, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || len < GRANULE
        {
            return;
        }
        let bits = self.granules.get_or_init(|| {
            let words = self.capacity.div_ceil(GRANULE).div_ceil(64);
            (0..words).map(|_| AtomicU64::new(0)).collect()
        });
        let g = pos / GRANULE;
        if let Some(w) = bits.get((g / 64) as usize) {
            w.fetch_or(1 << (g % 64), Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_checks_move_the_watermark() {
        let c = CrcChecked::new(1 << 20, 1000, 0);
        assert!(!c.contains(0, 100));
        c.insert(0, 100);
        assert!(c.contains(0, 100));
        // Out of order and short: not remembered.
        c.insert(200, 100);
        assert!(!c.contains(200, 100));
        c.insert(100, 100);
        assert!(c.contains(100, 100));
        assert!(!c.contains(200, 100));
        // Appended by this process: checked on append.
        assert!(c.contains(1000, 50));
        assert!(!c.contains(900, 100));
    }

    #[test]
    fn long_batches_are_remembered_out_of_order() {
        let c = CrcChecked::new(1 << 20, 1 << 20, 0);
        let (a, b) = (10 * GRANULE + 7, 12 * GRANULE);
        c.insert(a, GRANULE + 1);
        assert!(c.contains(a, GRANULE + 1));
        assert!(!c.contains(b, GRANULE));
        // A short batch never reads the bit of the granule it starts in.
        assert!(!c.contains(10 * GRANULE, 7));
        c.insert(b, GRANULE);
        assert!(c.contains(b, GRANULE));
    }

    #[test]
    fn recovery_checked_bytes_count() {
        let c = CrcChecked::new(1 << 20, 5000, 5000);
        assert!(c.contains(4000, 1000));
        assert!(c.contains(5000, 10));
        let c = CrcChecked::new(1 << 20, 5000, 3000);
        assert!(!c.contains(3000, 100));
    }
}

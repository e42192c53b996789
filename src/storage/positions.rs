//! Where the records of a segment's batches start, as random reads
//! learned it: a read that lands inside a batch (one record by offset)
//! jumps to its record instead of stepping over every record before it.
//! The first such read of a batch walks all of it once.
//!
//! Only batches whose CRC holds are walked, so the positions come from
//! bytes known good; a segment's batches never change while its `Segment`
//! lives (truncation and compaction write new segments), so the positions
//! need no invalidation. One position is kept per *stride* of records:
//! about [`SPAN`] bytes of records, at most [`MAX_STRIDE`] records. The
//! memory is bounded: past [`MAX_HELD`] positions in a segment, they are
//! all dropped.

use crate::hash::FxHashMap;
use crate::record::{BATCH_HEADER_SIZE, skip_records};
use std::collections::hash_map::Entry;

/// The most positions one segment keeps (4 bytes each).
pub(crate) const MAX_HELD: usize = 1 << 18;

/// A batch keeps one position per this many bytes of records, about: a
/// read steps over at most that many bytes (eight cache lines).
pub(crate) const SPAN: usize = 512;

/// The most records between two kept positions (small records).
pub(crate) const MAX_STRIDE: usize = 8;

/// Where one batch's records start.
#[derive(Debug)]
struct Starts {
    /// Records between two kept positions.
    stride: usize,
    /// The starts of records 0, `stride`, 2 × `stride`, …
    at: Vec<u32>,
}

/// Record starts by batch position, for one segment.
#[derive(Debug, Default)]
pub(crate) struct RecordPositions {
    batches: FxHashMap<u64, Starts>,
    held: usize,
}

impl RecordPositions {
    /// Where record `n` starts in the uncompressed batch `buf` (at `batch`
    /// in its segment, with no offset gaps, holding `count` records);
    /// `None` if `n` is not below `count` or the bytes do not hold the
    /// records (the reader's own decoding then reports why).
    ///
    /// The first call for a batch learns all of its kept positions at once,
    /// walking the batch while it is still in the cache from its CRC check;
    /// later calls step over less than a stride.
    pub(crate) fn find(&mut self, batch: u64, buf: &[u8], count: usize, n: usize) -> Option<usize> {
        if n >= count {
            return None;
        }
        if self.held > MAX_HELD {
            self.batches.clear();
            self.held = 0;
        }
        let starts = match self.batches.entry(batch) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let record = buf.len().saturating_sub(BATCH_HEADER_SIZE) / count;
                let stride = (SPAN / record.max(1)).clamp(1, MAX_STRIDE);
                let kept = count.div_ceil(stride);
                let mut at = Vec::with_capacity(kept);
                let mut pos = BATCH_HEADER_SIZE;
                at.push(u32::try_from(pos).ok()?);
                for _ in 1..kept {
                    pos = skip_records(buf, pos, stride).ok()?;
                    at.push(u32::try_from(pos).ok()?);
                }
                self.held += kept;
                e.insert(Starts { stride, at })
            }
        };
        let k = n / starts.stride;
        let pos = *starts.at.get(k)? as usize;
        let rest = n - k * starts.stride;
        if rest > 0 {
            // The records from `pos` to the next kept position are likely
            // not in the cache. Stepping over them is a chain of dependent
            // loads, one miss after another; touching each cache line first
            // lets the misses overlap.
            let end = starts.at.get(k + 1).map_or(buf.len(), |&e| e as usize);
            touch(buf.get(pos..end)?);
        }
        skip_records(buf, pos, rest).ok()
    }

    /// How many positions it holds.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }
}

/// Loads one byte of every 64-byte line of `bytes`, independently of each
/// other, so that the lines are fetched in parallel.
#[inline]
fn touch(bytes: &[u8]) {
    let mut x = 0u8;
    for line in bytes.chunks(64) {
        x ^= line[0];
    }
    std::hint::black_box(x);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, Batches, Record};
    use std::path::Path;
    use std::sync::Arc;

    /// A batch of 40 records of growing sizes, keyed `k<offset>`.
    fn batch() -> bytes::Bytes {
        batch_of(3)
    }

    /// A batch of 40 records whose values grow by `step` bytes.
    fn batch_of(step: usize) -> bytes::Bytes {
        let mut b = BatchBuilder::new();
        for i in 0..40 {
            b.push(&Record::new(vec![7u8; i * step]).key(format!("k{i}")));
        }
        b.finish().unwrap().into()
    }

    #[test]
    fn the_stride_follows_the_record_size() {
        for (step, stride) in [(3, 7), (30, 1), (0, MAX_STRIDE)] {
            let data = batch_of(step);
            let mut p = RecordPositions::default();
            for n in (0..40).rev() {
                let at = p.find(0, &data, 40, n).unwrap();
                assert_eq!(read_at(&data, n, at).0, n as u64, "step {step}");
            }
            assert_eq!(p.batches[&0].stride, stride, "step {step}");
            assert_eq!(p.held(), 40usize.div_ceil(stride));
        }
    }

    /// The record a read from offset `n` returns when told it starts at
    /// `at`.
    fn read_at(data: &bytes::Bytes, n: usize, at: usize) -> (u64, Vec<u8>) {
        let path: Arc<Path> = Arc::from(Path::new("test"));
        let mut read = Batches::from_log(data.clone(), path, 0, n as u64, 1, None);
        read.set_first_record(0, at, n as i32);
        let r = read.records_ref().next().unwrap().unwrap();
        (r.offset, r.key.unwrap().to_vec())
    }

    #[test]
    fn positions_found_in_any_order_start_their_records() {
        let data = batch();
        let mut p = RecordPositions::default();
        for n in [17, 3, 39, 0, 18, 25, 39, 1, 2, 38] {
            let at = p.find(0, &data, 40, n).unwrap();
            assert_eq!(
                read_at(&data, n, at),
                (n as u64, format!("k{n}").into_bytes())
            );
        }
        assert_eq!(p.find(0, &data, 40, 0), Some(BATCH_HEADER_SIZE));
        let stride = p.batches[&0].stride;
        assert_eq!(p.held(), 40usize.div_ceil(stride), "learned once");
        // Only records the batch has.
        assert_eq!(p.find(0, &data, 40, 40), None);
        // A count the bytes do not hold finds nothing and keeps nothing.
        let mut q = RecordPositions::default();
        assert_eq!(q.find(0, &data, 400, 3), None);
        assert_eq!(q.held(), 0);
    }

    #[test]
    fn a_wrong_position_is_not_used_silently() {
        // The reader checks what it finds: a start off by one record reads
        // the next record, whose offset is not the one asked for.
        let data = batch();
        let mut p = RecordPositions::default();
        let next = p.find(0, &data, 40, 6).unwrap();
        let (offset, _) = read_at(&data, 5, next);
        assert_ne!(offset, 5);
    }

    #[test]
    fn the_positions_are_bounded() {
        let data = batch();
        let mut q = RecordPositions::default();
        for b in 0..(MAX_HELD + 2) as u64 {
            q.find(b, &data, 40, 39).unwrap();
        }
        assert!(q.held() <= MAX_HELD + 40);
    }
}

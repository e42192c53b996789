//! Where the records of a segment's batches start, as random reads
//! learned it: a read that lands inside a batch (one record by offset)
//! jumps to its record instead of stepping over every record before it,
//! once an earlier read of that batch stepped that far.
//!
//! Only batches this process checked (CRC) are walked, so the positions
//! come from bytes known good; a segment's batches never change while its
//! `Segment` lives (truncation and compaction write new segments), so the
//! positions need no invalidation. One position is kept per [`STRIDE`]
//! records, and the memory is bounded: past [`MAX_HELD`] positions in a
//! segment, they are all dropped.

use crate::record::{BATCH_HEADER_SIZE, skip_records};
use std::collections::HashMap;

/// The most positions one segment keeps (4 bytes each, one per
/// [`STRIDE`] records: 2 Mi records).
pub(crate) const MAX_HELD: usize = 1 << 18;

/// One position is kept per this many records; a read steps over fewer.
pub(crate) const STRIDE: usize = 8;

/// Record starts by batch position, for one segment.
#[derive(Debug, Default)]
pub(crate) struct RecordPositions {
    /// Batch position → the start of its records 0, `STRIDE`,
    /// 2 × `STRIDE`, … as far as known.
    batches: HashMap<u64, Vec<u32>>,
    held: usize,
}

impl RecordPositions {
    /// Where record `n` starts in the uncompressed batch `buf` (at `batch`
    /// in its segment, with no offset gaps), from what earlier calls
    /// learned, stepping over the records not known yet; `None` if the
    /// bytes do not hold `n` records before it (the reader's own decoding
    /// then reports why).
    pub(crate) fn find(&mut self, batch: u64, buf: &[u8], n: usize) -> Option<usize> {
        if self.held > MAX_HELD {
            self.batches.clear();
            self.held = 0;
        }
        let starts = self
            .batches
            .entry(batch)
            .or_insert_with(|| vec![BATCH_HEADER_SIZE as u32]);
        // Learn the kept positions up to the one at or before `n`.
        let before = starts.len();
        while (starts.len() - 1) * STRIDE + STRIDE <= n {
            let last = *starts.last()? as usize;
            let next = skip_records(buf, last, STRIDE).ok()?;
            starts.push(u32::try_from(next).ok()?);
        }
        self.held += starts.len() - before;
        let k = n / STRIDE;
        let at = *starts.get(k)? as usize;
        skip_records(buf, at, n - k * STRIDE).ok()
    }

    /// How many positions it holds.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, Batches, Record};
    use std::path::Path;
    use std::sync::Arc;

    /// A batch of 40 records of growing sizes, keyed `k<offset>`.
    fn batch() -> bytes::Bytes {
        let mut b = BatchBuilder::new();
        for i in 0..40 {
            b.push(&Record::new(vec![7u8; i * 3]).key(format!("k{i}")));
        }
        b.finish().unwrap().into()
    }

    /// The record a read from offset `n` returns when told it starts at
    /// `at`.
    fn read_at(data: &bytes::Bytes, n: usize, at: usize) -> (u64, Vec<u8>) {
        let path: Arc<Path> = Arc::from(Path::new("test"));
        let read = Batches::from_log(data.clone(), path, 0, n as u64, 1, None)
            .with_first_record(0, at, n as i32);
        let r = read.records_ref().next().unwrap().unwrap();
        (r.offset, r.key.unwrap().to_vec())
    }

    #[test]
    fn positions_found_in_any_order_start_their_records() {
        let data = batch();
        let mut p = RecordPositions::default();
        for n in [17, 3, 39, 0, 18, 25, 39, 1, 2, 38] {
            let at = p.find(0, &data, n).unwrap();
            assert_eq!(
                read_at(&data, n, at),
                (n as u64, format!("k{n}").into_bytes())
            );
        }
        assert_eq!(p.find(0, &data, 0), Some(BATCH_HEADER_SIZE));
        assert_eq!(
            p.held(),
            39 / STRIDE,
            "one position per stride, learned once"
        );
        // Where a 41st record would start is the batch's end; past it
        // there is none (callers ask only for records the batch has).
        assert_eq!(p.find(0, &data, 40), Some(data.len()));
        assert_eq!(p.find(0, &data, 41), None);
    }

    #[test]
    fn a_wrong_position_is_not_used_silently() {
        // The reader checks what it finds: a start off by one record reads
        // the next record, whose offset is not the one asked for.
        let data = batch();
        let mut p = RecordPositions::default();
        let next = p.find(0, &data, 6).unwrap();
        let (offset, _) = read_at(&data, 5, next);
        assert_ne!(offset, 5);
    }

    #[test]
    fn the_positions_are_bounded() {
        let data = batch();
        let mut q = RecordPositions::default();
        for b in 0..(MAX_HELD * STRIDE / 39 + 2) as u64 {
            q.find(b, &data, 39).unwrap();
        }
        assert!(q.held() <= MAX_HELD + 39 / STRIDE);
    }
}

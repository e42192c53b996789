//! Reads: whole batches from an offset (below a bound), and the first
//! offset at or after a timestamp.

use super::{Inner, ReadLimit};
use crate::error::{Error, Result};
use crate::record::{Batches, Offset};
use std::sync::atomic::Ordering;

impl Inner {
    pub(super) fn read(&self, from: Offset, limit: ReadLimit) -> Result<Batches> {
        self.read_below(from, Offset::MAX, limit)
    }

    /// As `read`, but nothing at or past `bound` (a high watermark; a
    /// batch boundary).
    pub(crate) fn read_below(
        &self,
        from: Offset,
        bound: Offset,
        limit: ReadLimit,
    ) -> Result<Batches> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        // Order matters: the end before the segment list (a roll after it
        // only hides new data), the start after it (deletion moves the start
        // before it removes segments, so a missing segment is caught here).
        let log_end = self.next_offset.load(Ordering::SeqCst);
        let segs = self.snapshot();
        let start = self.log_start.load(Ordering::SeqCst);
        if from < start || from > log_end {
            return Err(Error::OffsetOutOfRange {
                requested: from,
                start,
                end: log_end,
            });
        }
        // At or past the bound there is nothing to return, not even the
        // rest of a batch that straddles `from`.
        if from >= bound {
            return Ok(Batches::empty());
        }
        let end = log_end.min(bound);
        let first = segs.partition_point(|s| s.base <= from).saturating_sub(1);
        for s in &segs[first..] {
            if s.base >= end {
                break;
            }
            if let Some(b) = s.read(from, end, limit.max_bytes, limit.max_records)? {
                return Ok(b.decompression_limit(self.decompression_limit()));
            }
        }
        Ok(Batches::empty())
    }

    /// How far one compressed batch may inflate when read: the batch limit
    /// (appends check a compressed batch's records against it), but never
    /// less than [`DEFAULT_DECOMPRESSION_LIMIT`], so that lowering
    /// `max_batch_bytes` does not make stored batches unreadable.
    pub(crate) fn decompression_limit(&self) -> usize {
        self.max_batch_bytes
            .load(Ordering::Relaxed)
            .max(crate::record::DEFAULT_DECOMPRESSION_LIMIT)
    }

    pub(super) fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let end = self.next_offset.load(Ordering::SeqCst);
        let segs = self.snapshot();
        let start = self.log_start.load(Ordering::SeqCst);
        for s in segs.iter() {
            if s.next_offset() <= start {
                continue;
            }
            if let Some(o) =
                s.offset_for_timestamp(timestamp, start, end, self.decompression_limit())?
            {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }
}

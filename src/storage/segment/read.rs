//! Finding and reading batches in a segment: the offset index lookup
//! and the walk from it (`position_of`), whole batches for a read (the
//! first parsed and checked, the rest placed by three header fields), the
//! record a read lands on inside a batch (`record_in`, through the learned
//! positions), the first offset at a time, verification and the
//! truncation point.

use super::{Segment, scan};
use crate::error::{Error, Result};
use crate::record::{
    BATCH_HEADER_SIZE, Batch, BatchHeader, Batches, Compression, LOG_OVERHEAD, Offset,
};
use crate::storage::index::Entry;

impl Segment {
    /// The header of the batch at `pos`, checked to fit below `size`, to
    /// start at `expected` (batches are contiguous) and to end before
    /// `next` (the segment's end offset, loaded after `size`).
    fn header_at(
        &self,
        pos: u64,
        size: u64,
        expected: Offset,
        next: Offset,
    ) -> Result<BatchHeader> {
        let rest = &self.data[pos as usize..size as usize];
        let h = BatchHeader::parse(rest).map_err(|e| e.in_file(&self.path, pos))?;
        self.check_header(&h, pos, size, expected, next)?;
        Ok(h)
    }

    /// The first and last offsets and the size of the batch at `pos`, from
    /// the three header fields that place it, with the checks of
    /// [`header_at`](Self::header_at) on where it lies: a length that
    /// covers a header and fits below `size`, a start at `expected`, an
    /// end before `next`. What the other fields hold is not checked.
    fn span_at(
        &self,
        pos: u64,
        size: u64,
        expected: Offset,
        next: Offset,
    ) -> Result<(Offset, Offset, u64)> {
        let full = |h: BatchHeader| (h.first_offset(), h.last_offset(), h.size() as u64);
        let fields = self
            .data
            .get(pos as usize..size as usize)
            .and_then(BatchHeader::placement);
        let Some((base, length, delta)) = fields else {
            return self.header_at(pos, size, expected, next).map(full);
        };
        let base = base as u64;
        let len = i64::from(length) + LOG_OVERHEAD as i64;
        let placed = length >= (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32
            && len as u64 <= size - pos
            && base == expected
            && delta >= 0
            && base
                .checked_add(delta as u64)
                .is_some_and(|last| last < next);
        if !placed {
            // The full parse and checks say what is wrong.
            return self.header_at(pos, size, expected, next).map(full);
        }
        Ok((base, base + delta as u64, len as u64))
    }

    /// The checks of [`header_at`](Self::header_at) on a header already
    /// parsed from `pos`.
    fn check_header(
        &self,
        h: &BatchHeader,
        pos: u64,
        size: u64,
        expected: Offset,
        next: Offset,
    ) -> Result<()> {
        let rest = size - pos;
        let problem = if h.size() as u64 > rest {
            Some(format!(
                "batch of {} bytes runs past the segment's end ({rest} bytes remain)",
                h.size(),
            ))
        } else if h.first_offset() != expected {
            Some(format!(
                "batch starts at offset {} where {expected} was expected",
                h.first_offset()
            ))
        } else if h.last_offset() >= next {
            Some(format!(
                "batch ends at offset {} past the segment's end offset {next}",
                h.last_offset()
            ))
        } else {
            None
        };
        match problem {
            Some(reason) => Err(Error::corrupt(&self.path, pos, reason)),
            None => Ok(()),
        }
    }

    /// The header of the batch an offset index entry points to, if the
    /// entry is to be trusted: the batch is published (below `size`) and
    /// its last offset is the entry's key. An entry written for a batch
    /// that is not published yet (or a bad index) is not.
    fn indexed_batch(&self, e: Entry, size: u64) -> Option<BatchHeader> {
        let p = u64::from(e.value);
        if p >= size {
            return None;
        }
        let h = BatchHeader::parse(&self.data[p as usize..size as usize]).ok()?;
        (h.last_offset() == self.base + e.key as u64 && h.first_offset() >= self.base).then_some(h)
    }

    /// Position, first offset and header of the first batch whose last
    /// offset is `>= target`, looking only at the first `size` bytes;
    /// `None` if there is none.
    fn position_of(
        &self,
        target: Offset,
        size: u64,
        next: Offset,
    ) -> Result<Option<(u64, Offset, BatchHeader)>> {
        let rel = target.saturating_sub(self.base).min(u64::from(u32::MAX)) as i64;
        let (mut pos, mut expected) = (0, self.base);
        // The header at `pos`, when the index lookup already parsed it.
        let mut parsed = None;
        let (floor, after) = self.offset_index.floor_and_next(rel, false);
        if let Some(e) = floor {
            // The target is past the floor entry's batch (its key is that
            // batch's last offset). If the next entry's batch starts right
            // after that offset, it is the next batch and holds the target:
            // go there directly, without reading the floor entry's batch.
            if e.key < rel
                && let Some(a) = after
                && let Some(h) = self.indexed_batch(a, size)
                && h.first_offset() == self.base + e.key as u64 + 1
            {
                self.check_header(&h, u64::from(a.value), size, h.first_offset(), next)?;
                return Ok(Some((u64::from(a.value), h.first_offset(), h)));
            }
            if let Some(h) = self.indexed_batch(e, size) {
                (pos, expected) = (u64::from(e.value), h.first_offset());
                parsed = Some(h);
            }
        }
        while pos < size {
            let h = match parsed.take() {
                Some(h) => {
                    self.check_header(&h, pos, size, expected, next)?;
                    h
                }
                None => self.header_at(pos, size, expected, next)?,
            };
            if h.last_offset() >= target {
                return Ok(Some((pos, expected, h)));
            }
            pos += h.size() as u64;
            expected = h.last_offset() + 1;
        }
        Ok(None)
    }

    /// Whole batches from the one holding `from` on, below `end`, up to
    /// `max_bytes` (but always one batch) and about `max_records`; their
    /// compressed batches inflate to at most `decompression_limit` bytes.
    pub(crate) fn read(
        &self,
        from: Offset,
        end: Offset,
        max_bytes: usize,
        max_records: usize,
        decompression_limit: usize,
    ) -> Result<Option<Batches>> {
        let size = self.size();
        let next = self.next_offset();
        if max_records == 0 {
            return Ok(None);
        }
        let Some((start, _, first)) = self.position_of(from, size, next)? else {
            return Ok(None);
        };
        if first.first_offset() >= end {
            return Ok(None);
        }
        // The first batch is always taken (it was checked by position_of).
        let mut pos = start + first.size() as u64;
        let mut records = (first.last_offset().min(end - 1) + 1)
            .saturating_sub(from.max(first.first_offset())) as usize;
        let mut expected = first.last_offset() + 1;
        while pos < size && records < max_records {
            // The rest of each header is parsed, and checked, by whoever
            // decodes the batches.
            let (first, last, len) = self.span_at(pos, size, expected, next)?;
            if first >= end {
                break;
            }
            if (pos + len - start) as usize > max_bytes {
                break;
            }
            records += (last.min(end - 1) + 1).saturating_sub(from.max(first)) as usize;
            pos += len;
            expected = last + 1;
        }
        let data = self.data.slice(start as usize..pos as usize);
        let mut read = Batches::from_log(
            data,
            self.path.clone(),
            start,
            from,
            max_records,
            Some(self.checked.clone()),
        );
        read.set_decompression_limit(decompression_limit);
        read.set_first_header(first);
        if let Some((at, n)) = self.record_in(start, &first, from) {
            read.set_first_record(first.first_offset(), at, n);
        }
        Ok(Some(read))
    }

    /// Where record `from` starts in the batch `h` at `start`, when the
    /// read lands inside it and that batch is one whose records can be
    /// found by position: uncompressed, without offset gaps, and whose CRC
    /// holds (checked here unless this process checked it before), so its
    /// bytes are known good.
    fn record_in(&self, start: u64, h: &BatchHeader, from: Offset) -> Option<(usize, i32)> {
        let n = from.checked_sub(h.first_offset()).filter(|&n| n > 0)?;
        let plain = h.compression() == Compression::None
            && !h.is_control()
            && i64::from(h.record_count) == i64::from(h.last_offset_delta) + 1
            && n < u64::from(h.record_count.unsigned_abs());
        if !plain {
            return None;
        }
        // Positions come only from bytes known good: the batch's CRC is
        // checked here if this process has not checked it yet (the reader
        // then does not check it again; if it fails, the reader checks it
        // and reports it).
        let buf = self.data.get(start as usize..start as usize + h.size())?;
        if !self.checked.holds(start, buf) {
            return None;
        }
        let n = usize::try_from(n).ok()?;
        let count = usize::try_from(h.record_count).ok()?;
        let at = self.positions.lock().find(start, buf, count, n)?;
        Some((at, i32::try_from(n).ok()?))
    }

    /// The first offset `>= min_offset` whose record has a timestamp
    /// `>= timestamp`, if this segment has one.
    pub(crate) fn offset_for_timestamp(
        &self,
        timestamp: i64,
        min_offset: Offset,
        end: Offset,
        decompression_limit: usize,
    ) -> Result<Option<Offset>> {
        if self.max_timestamp() < timestamp {
            return Ok(None);
        }
        // Every record up to the entry's offset is older than `timestamp`.
        let start = match self.time_index.floor(timestamp, true) {
            Some(e) => min_offset.max(self.base + u64::from(e.value) + 1),
            None => min_offset,
        };
        let size = self.size();
        let next = self.next_offset();
        let Some((mut pos, mut expected, _)) = self.position_of(start, size, next)? else {
            return Ok(None);
        };
        while pos < size {
            let h = self.header_at(pos, size, expected, next)?;
            expected = h.last_offset() + 1;
            if h.first_offset() >= end {
                break;
            }
            if h.max_timestamp >= timestamp {
                let batch = Batch::from_log(
                    self.data.slice(pos as usize..pos as usize + h.size()),
                    h,
                    self.path.clone(),
                    pos,
                    decompression_limit,
                );
                for r in batch.records()? {
                    let r = r?;
                    if r.offset >= start && r.offset < end && r.timestamp >= timestamp {
                        return Ok(Some(r.offset));
                    }
                }
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// Verifies every batch: header, order, CRC and record encoding.
    pub(crate) fn verify(&self, decompression_limit: usize) -> Result<u64> {
        let size = self.size();
        let data = self.data.slice(..size as usize);
        let end = scan(&data, 0, self.base, self.base, true, |_, _| Ok(()))?;
        if let Some(e) = end.invalid {
            return Err(e.in_file(&self.path, 0));
        }
        let mut records = 0;
        // Every record, transaction markers included (`Batches::records`
        // skips those).
        let batches = Batches::from_log(data, self.path.clone(), 0, 0, usize::MAX, None)
            .decompression_limit(decompression_limit);
        for b in batches.iter() {
            for r in b?.records()? {
                r?;
                records += 1;
            }
        }
        Ok(records)
    }

    /// Where to cut for truncation to `offset`: the position of the first
    /// batch whose last offset is `>= offset` (or the end if none),
    /// and the offset that batch starts at (the new end offset).
    pub(crate) fn truncation_point(&self, offset: Offset) -> Result<(u64, Offset)> {
        let size = self.size();
        let next = self.next_offset();
        Ok(self
            .position_of(offset, size, next)?
            .map_or((size, next), |(pos, first, _)| (pos, first)))
    }
}

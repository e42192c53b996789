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
            let inflate = self.decompression_limit();
            if let Some(b) = s.read(from, end, limit.max_bytes, limit.max_records, inflate)? {
                return Ok(b);
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

/// What a reader sees of a batch whose bytes change on disk (another
/// program writing into the segment) before or after this process checked
/// its CRC: see `record/batch/checked.rs`.
#[cfg(test)]
mod tests {
    use crate::storage::segment::log_file_name;
    use crate::{Error, Log, LogConfig, ReadLimit, Record};
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    /// Appends `batches` batches of `per` records of 100 bytes.
    fn fill(log: &Log, batches: u64, per: u64) {
        for b in 0..batches {
            let recs: Vec<_> = (0..per)
                .map(|i| Record::new(vec![b as u8; 100]).key(format!("k{}", b * per + i)))
                .collect();
            log.append(&recs).unwrap();
        }
    }

    /// Flips the last byte of the last record's value in the batch holding
    /// `offset` (the record ends with its header count, one byte). Finding
    /// the batch checks no CRC.
    fn corrupt(dir: &Path, log: &Log, offset: u64) {
        let (start, pos) = position_of(log, offset);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .open(dir.join(log_file_name(0)))
            .unwrap();
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, start + pos - 2).unwrap();
        f.write_all_at(&[byte[0] ^ 0xff], start + pos - 2).unwrap();
    }

    /// The byte position and the length of the batch holding `offset`
    /// (summing the sizes of the batches before it; a read from the start
    /// of the log, which checks no CRC until records are decoded).
    fn position_of(log: &Log, offset: u64) -> (u64, u64) {
        let all = log.read(0, ReadLimit::bytes(usize::MAX)).unwrap();
        let mut pos = 0;
        for b in all.iter() {
            let b = b.unwrap();
            let len = b.as_bytes().len() as u64;
            if b.last_offset() >= offset {
                return (pos, len);
            }
            pos += len;
        }
        panic!("no batch holds offset {offset}")
    }

    /// Reads every record from `from` with `records_ref`; the first error.
    fn scan(log: &Log, from: u64) -> Result<u64, Error> {
        let mut n = 0;
        for r in log.read(from, ReadLimit::bytes(usize::MAX))?.records_ref() {
            r?;
            n += 1;
        }
        Ok(n)
    }

    fn reopen(dir: &Path, log: Log) -> Log {
        log.close().unwrap();
        Log::open(dir, LogConfig::default()).unwrap()
    }

    #[test]
    fn a_batch_changed_before_this_process_checked_it_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        fill(&log, 10, 3);
        let log = reopen(dir.path(), log);
        // The first half is read (and checked) before the damage.
        assert_eq!(scan(&log, 0).unwrap(), 30);
        let log = reopen(dir.path(), log);
        for r in log.read(0, ReadLimit::bytes(1)).unwrap().records_ref() {
            r.unwrap();
        }
        corrupt(dir.path(), &log, 25);
        let e = scan(&log, 0).unwrap_err();
        let Error::Corrupt { reason, .. } = &e else {
            panic!("{e}");
        };
        assert!(reason.contains("CRC-32C mismatch"), "{e}");
        // Every reader that reaches it, every time.
        assert!(scan(&log, 24).is_err());
        assert!(scan(&log, 25).is_err());
        // Owned records and the consumer's batch path check too.
        let b = log.read(24, ReadLimit::bytes(usize::MAX)).unwrap();
        assert!(b.records().any(|r| r.is_err()));
        assert!(log.verify().is_err());
    }

    #[test]
    fn a_batch_changed_after_this_process_checked_it_is_not_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        fill(&log, 10, 3);
        let log = reopen(dir.path(), log);
        assert_eq!(scan(&log, 0).unwrap(), 30);
        corrupt(dir.path(), &log, 25);
        // Documented trade: checked once per process, so the changed bytes
        // come back without a second check...
        assert_eq!(scan(&log, 0).unwrap(), 30);
        let b = log.read(26, ReadLimit::bytes(1)).unwrap();
        let r = b.records_ref().last().unwrap().unwrap();
        assert_eq!((r.offset, r.value.unwrap()[99]), (26, 8 ^ 0xff));
        // ... but an explicit verification recomputes every CRC,
        assert!(log.verify().is_err());
        // and a new process (here: a reopen) checks again.
        let log = reopen(dir.path(), log);
        assert!(scan(&log, 0).is_err());
    }

    #[test]
    fn batches_this_process_appended_count_as_checked() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        fill(&log, 10, 3);
        corrupt(dir.path(), &log, 25);
        // The append computed the CRC of exactly the bytes it wrote.
        assert_eq!(scan(&log, 0).unwrap(), 30);
        assert!(log.verify().is_err());
    }

    /// Every record, read one by one in a scattered order, twice (the
    /// first pass checks the batches, the second finds the records by the
    /// positions the first learned); then again after a truncation and new
    /// appends (a new segment, whose positions start afresh).
    #[test]
    fn random_reads_inside_batches_find_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        fill(&log, 20, 50);
        let log = reopen(dir.path(), log);
        let one = |log: &Log, o: u64| -> (u64, Vec<u8>) {
            let b = log.read(o, ReadLimit::bytes(1).records(1)).unwrap();
            let r = b.records_ref().next().unwrap().unwrap();
            (r.offset, r.key.unwrap().to_vec())
        };
        // 1000 offsets in the order 0, 389, 778, 167, … (389 is prime to
        // 1000), so reads land all over the batches.
        let order: Vec<u64> = (0..1000u64).map(|i| i * 389 % 1000).collect();
        for _ in 0..2 {
            for &o in &order {
                assert_eq!(one(&log, o), (o, format!("k{o}").into_bytes()));
            }
        }
        log.truncate_to(500).unwrap();
        let recs: Vec<_> = (500..1000u64)
            .map(|o| Record::new(vec![1u8; 30]).key(format!("new{o}")))
            .collect();
        for chunk in recs.chunks(50) {
            log.append(chunk).unwrap();
        }
        for _ in 0..2 {
            for &o in &order {
                let key = if o < 500 {
                    format!("k{o}")
                } else {
                    format!("new{o}")
                };
                assert_eq!(one(&log, o), (o, key.into_bytes()));
            }
        }
    }

    #[test]
    fn random_reads_remember_long_batches_only_once_checked() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        // Batches of 50 records of 100 bytes: longer than a granule.
        fill(&log, 6, 50);
        let log = reopen(dir.path(), log);
        let one = |o: u64| -> Result<u64, Error> {
            let b = log.read(o, ReadLimit::bytes(1).records(1))?;
            let r = b.records_ref().next().unwrap()?;
            Ok(r.offset)
        };
        // Batch 4 is read out of order (nothing before it was checked).
        assert_eq!(one(210).unwrap(), 210);
        corrupt(dir.path(), &log, 210);
        corrupt(dir.path(), &log, 110);
        // Batch 4 was checked: its bytes come back; batch 2 was not.
        assert_eq!(one(230).unwrap(), 230);
        let e = one(110).unwrap_err();
        assert!(e.to_string().contains("CRC-32C mismatch"), "{e}");
        assert!(one(120).is_err());
    }
}

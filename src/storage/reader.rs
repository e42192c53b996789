//! Reading a log from an offset to its end, stepping over the gaps that
//! compaction and transaction markers leave in its offsets.

use super::{Log, ReadLimit};
use crate::error::Result;
use crate::record::{Batches, Offset, RecordIter, StoredRecord};

/// Reads a [`Log`] from an offset to its end, one read of whole batches
/// at a time; made by [`Log::reader`].
///
/// Each read starts past the last batch of the one before: offsets have
/// gaps where compaction removed records (also at the end of a batch, so
/// the next record's offset is not the last one's plus one) and where
/// transaction markers sit, and the reader steps over them so that its
/// callers never do. It ends when it reaches the log's end as it stands at
/// that read (records appended meanwhile are read too), and after the
/// first error, which it yields.
///
/// ```
/// use embedlog::{Log, LogConfig, ReadLimit, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// for i in 0..10 {
///     log.append(&[Record::new(format!("v{i}"))])?;
/// }
/// let values: Vec<_> = log
///     .reader(3, ReadLimit::bytes(100))
///     .records()
///     .map(|r| r.map(|r| r.offset))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(values, (3..10).collect::<Vec<_>>());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LogReader<'a> {
    log: &'a Log,
    at: Offset,
    limit: ReadLimit,
    done: bool,
}

impl Log {
    /// A reader of this log from `from` to its end, reading up to `limit`
    /// at a time (see [`LogReader`]). Nothing is read until it is iterated.
    pub fn reader(&self, from: Offset, limit: ReadLimit) -> LogReader<'_> {
        LogReader {
            log: self,
            at: from,
            limit,
            done: false,
        }
    }
}

impl<'a> LogReader<'a> {
    /// Where the next read starts: past the last batch read so far.
    pub fn position(&self) -> Offset {
        self.at
    }

    /// The records from the reader's start on, one by one: those of a
    /// first batch that begins before the start are skipped, and control
    /// batches are, as by [`Batches::records`].
    pub fn records(self) -> LogRecords<'a> {
        LogRecords {
            from: self.at,
            reader: self,
            current: None,
        }
    }
}

impl Iterator for LogReader<'_> {
    type Item = Result<Batches>;

    fn next(&mut self) -> Option<Result<Batches>> {
        if self.done || self.at >= self.log.end_offset() {
            self.done = true;
            return None;
        }
        let batches = match self.log.read(self.at, self.limit) {
            Ok(b) => b,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        match batches.iter().last() {
            Some(Ok(last)) => match last.last_offset().checked_add(1) {
                Some(next) if next > self.at => self.at = next,
                // No progress (only a damaged log could say so): these
                // batches are the last, rather than read forever.
                _ => self.done = true,
            },
            Some(Err(e)) => {
                self.done = true;
                return Some(Err(e));
            }
            None => {
                self.done = true;
                return None;
            }
        }
        Some(Ok(batches))
    }
}

impl std::iter::FusedIterator for LogReader<'_> {}

/// The records of a [`LogReader`], from its start on; made by
/// [`LogReader::records`]. Ends after the first error, which it yields.
#[derive(Debug)]
pub struct LogRecords<'a> {
    reader: LogReader<'a>,
    from: Offset,
    current: Option<RecordIter>,
}

impl Iterator for LogRecords<'_> {
    type Item = Result<StoredRecord>;

    fn next(&mut self) -> Option<Result<StoredRecord>> {
        loop {
            if let Some(records) = &mut self.current {
                match records.next() {
                    Some(Ok(r)) if r.offset < self.from => continue,
                    Some(Ok(r)) => return Some(Ok(r)),
                    Some(Err(e)) => {
                        self.reader.done = true;
                        self.current = None;
                        return Some(Err(e));
                    }
                    None => self.current = None,
                }
            }
            match self.reader.next()? {
                Ok(batches) => self.current = Some(batches.records()),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl std::iter::FusedIterator for LogRecords<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::storage::{Compaction, LogConfig};

    fn log_with(records: u64, dir: &std::path::Path) -> Log {
        let log = Log::open(dir, LogConfig::default().segment_bytes(1024)).unwrap();
        for i in 0..records {
            log.append(&[Record::new(format!("v{i}")).key(format!("k{}", i % 3))])
                .unwrap();
        }
        log
    }

    #[test]
    fn reads_every_record_from_the_start_in_small_reads() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(100, dir.path());
        let offsets: Vec<u64> = log
            .reader(7, ReadLimit::bytes(1))
            .records()
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(offsets, (7..100).collect::<Vec<_>>());
        let mut reader = log.reader(100, ReadLimit::default());
        assert!(reader.next().is_none(), "at the end: nothing");
        assert_eq!(reader.position(), 100);
    }

    #[test]
    fn steps_over_the_gaps_compaction_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(300, dir.path());
        log.roll().unwrap();
        let report = log.compact(Compaction::default()).unwrap();
        assert!(report.records_removed > 0, "{report:?}");
        // Each key's latest record is all that is left: offsets 297..300.
        for limit in [ReadLimit::bytes(1), ReadLimit::default()] {
            let offsets: Vec<u64> = log
                .reader(0, limit)
                .records()
                .map(|r| r.unwrap().offset)
                .collect();
            assert_eq!(offsets, [297, 298, 299]);
        }
    }

    #[test]
    fn a_read_error_is_yielded_once_and_ends_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(10, dir.path());
        log.delete_records_before(5).unwrap();
        let mut reader = log.reader(0, ReadLimit::default());
        assert!(matches!(
            reader.next(),
            Some(Err(crate::Error::OffsetOutOfRange { .. }))
        ));
        assert!(reader.next().is_none());
    }
}

//! Read-only inspection of one segment (`.log`) or index (`.index`,
//! `.timeindex`) file: what `embedlog dump-log` prints and what
//! [`verify_dir`](crate::inspect::verify_dir) checks per file.
//!
//! Files are read whole with [`std::fs::read`]: nothing is opened for
//! writing, no lock is taken and nothing is memory-mapped, so inspecting a
//! directory another process owns is safe (a file the owner shrinks meanwhile
//! reads short; it cannot fault). The parsers are the ones the log itself
//! uses on open: [`BatchHeader`] and the CRC-32C check, the segment scan
//! (offset order, lengths), the record decoder, the index entry checks.

use super::checkpoint::{self, Checkpoint};
use super::index::{self, Entry, IndexKind};
pub(crate) use super::segment::parse_log_file_name;
use super::segment::scan;
use crate::error::{Error, Result};
use crate::record::{
    Batch, BatchHeader, Compression, DEFAULT_DECOMPRESSION_LIMIT, Header, Offset, TimestampType,
    ValidateError, crc_matches, validate_records,
};
use bytes::Bytes;
use std::path::{Path, PathBuf};

/// The name of a partition's checkpoint file.
pub(crate) const CHECKPOINT_FILE: &str = checkpoint::FILE_NAME;

/// The recovery point a checkpoint file's bytes record (every offset below
/// it was fsync'd); the error says what is wrong with the file.
pub(crate) fn checkpoint_recovery_point(bytes: &[u8]) -> std::result::Result<Offset, String> {
    Checkpoint::decode(bytes).map(|c| c.recovery_point)
}

/// How much of each batch [`dump_segment`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Batch headers only. Every record is still decoded and checked.
    Batches,
    /// Batch headers and every record ([`BatchInfo::records`]).
    Records,
}

/// The batches of one segment file, up to the first invalid one.
#[derive(Debug, Clone)]
pub struct SegmentDump {
    /// The base offset the file name gives (`00000000000000000042.log`:
    /// 42); `None` for a file not named like a segment.
    pub base_offset: Option<Offset>,
    /// The file's length in bytes.
    pub size: u64,
    /// The valid batches in file order; then, if the scan stopped at a batch
    /// whose header could be read, that batch too (`crc_valid` says whether
    /// its CRC matched).
    pub batches: Vec<BatchInfo>,
    /// Bytes from the start of the file up to the first invalid batch (the
    /// file's size when every batch is valid, but for a zero tail).
    pub valid_bytes: u64,
    /// Bytes of zeros after the last valid batch: space an active segment
    /// preallocates (a live log's, or one a crash left; a roll and a clean
    /// close cut it). Not data and not damage.
    pub zero_tail: u64,
    /// The offset after the last valid batch.
    pub next_offset: Offset,
    /// Why the scan stopped before the end of the file, if it did.
    pub invalid: Option<Invalid>,
}

impl SegmentDump {
    /// Records in the valid batches, as their headers count them.
    pub fn valid_records(&self) -> u64 {
        self.valid_batches()
            .map(|b| u64::from(b.record_count.max(0).unsigned_abs()))
            .sum()
    }

    /// The batches before the first invalid one.
    pub fn valid_batches(&self) -> impl Iterator<Item = &BatchInfo> {
        self.batches
            .iter()
            .take_while(move |b| b.position < self.valid_bytes)
    }
}

/// Where and why a segment stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The first byte found wrong (a header field, a record, or the batch's
    /// start for a CRC mismatch or a batch running past the end).
    pub position: u64,
    /// Where the invalid batch starts.
    pub batch_position: u64,
    /// What is wrong.
    pub reason: String,
    /// The invalid batch is whole and its CRC matches: it was written like
    /// that (a wrong offset, a record that does not decode), which a torn
    /// write cannot produce.
    pub complete: bool,
}

/// One batch's header, decoded, and where it sits in the file.
#[derive(Debug, Clone)]
pub struct BatchInfo {
    /// Byte position of the batch in the file.
    pub position: u64,
    /// Size in bytes, header included.
    pub size: u64,
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Offset of the last record.
    pub last_offset: Offset,
    /// Records, as the header counts them.
    pub record_count: i32,
    /// Timestamp of the first record (the header's base timestamp).
    pub first_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Create time or log-append time.
    pub timestamp_type: TimestampType,
    /// Idempotent producer id, −1 without one.
    pub producer_id: i64,
    /// Idempotent producer epoch, −1 without one.
    pub producer_epoch: i16,
    /// Sequence number of the first record, −1 without one.
    pub base_sequence: i32,
    /// The partition leader epoch stored in the batch.
    pub partition_leader_epoch: i32,
    /// The batch belongs to a transaction.
    pub transactional: bool,
    /// For a control batch, its transaction marker; `None` for data.
    pub control: Option<ControlRecord>,
    /// Whether the control bit is set (also when the marker did not decode).
    pub is_control: bool,
    /// The payload's compression.
    pub compression: Compression,
    /// The CRC-32C stored in the header.
    pub crc: u32,
    /// Whether the stored CRC matches the batch's bytes.
    pub crc_valid: bool,
    /// The records, with [`Detail::Records`] (empty otherwise, for an
    /// invalid batch, and for a compressed one whose codec this build
    /// lacks).
    pub records: Vec<RecordInfo>,
}

impl BatchInfo {
    /// The sequence number of the last record, as Kafka computes it (−1
    /// without idempotence).
    pub fn last_sequence(&self) -> i32 {
        sequence_at(self.base_sequence, self.last_offset - self.base_offset)
    }

    fn new(position: usize, h: &BatchHeader, crc_valid: bool) -> BatchInfo {
        BatchInfo {
            position: position as u64,
            size: h.size() as u64,
            base_offset: h.first_offset(),
            last_offset: h.last_offset(),
            record_count: h.record_count,
            first_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            timestamp_type: h.timestamp_type(),
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            partition_leader_epoch: h.partition_leader_epoch,
            transactional: h.is_transactional(),
            control: None,
            is_control: h.is_control(),
            compression: h.compression(),
            crc: h.crc,
            crc_valid,
            records: Vec::new(),
        }
    }
}

/// Kafka's sequence arithmetic: `base + delta`, wrapping from `i32::MAX` to 0.
fn sequence_at(base: i32, delta: u64) -> i32 {
    if base < 0 {
        return -1;
    }
    let wrapped = (i64::from(base) + (delta % (1 << 31)) as i64) % (i64::from(i32::MAX) + 1);
    wrapped as i32
}

pub use crate::record::{ControlRecord, ControlType};

/// One record of a dumped batch.
#[derive(Debug, Clone)]
pub struct RecordInfo {
    /// The record's offset.
    pub offset: Offset,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The sequence number (−1 without idempotence).
    pub sequence: i32,
    /// The key.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// The headers, in order.
    pub headers: Vec<Header>,
}

fn read(path: &Path) -> Result<Bytes> {
    std::fs::read(path)
        .map(Bytes::from)
        .map_err(|e| Error::io("read", path, e))
}

/// The base offset a file's name gives: `00000000000000000042.log`,
/// `.index` or `.timeindex` → 42.
/// The base offset a segment file's name gives (`00000000000000000042.log`
/// → 42), if it is named as a segment (or one of its indexes).
pub fn base_offset_of(path: &Path) -> Option<Offset> {
    base_from_name(path)
}

fn base_from_name(path: &Path) -> Option<Offset> {
    let stem = path.file_stem()?.to_str()?;
    parse_log_file_name(&format!("{stem}.log"))
}

/// Reads a segment file and decodes its batches (see [`parse_segment`]).
///
/// # Errors
/// Only an I/O error reading the file: damage is reported in
/// [`SegmentDump::invalid`].
///
/// # Examples
///
/// ```
/// use embedlog::inspect::{Detail, dump_segment};
/// use embedlog::{Log, LogConfig, Record};
///
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// log.append(&[Record::new("a").key("k"), Record::new("b")])?;
/// log.close()?;
///
/// let dump = dump_segment(&dir.path().join("00000000000000000000.log"), Detail::Records)?;
/// assert!(dump.invalid.is_none());
/// assert_eq!(dump.batches[0].last_offset, 1);
/// assert_eq!(dump.batches[0].records[0].key.as_deref(), Some(&b"k"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn dump_segment(path: &Path, detail: Detail) -> Result<SegmentDump> {
    dump_segment_with_progress(path, detail, |_| {})
}

/// [`dump_segment`], calling `on_progress` with the bytes checked so far
/// after each batch.
///
/// # Errors
/// As [`dump_segment`].
pub fn dump_segment_with_progress(
    path: &Path,
    detail: Detail,
    on_progress: impl FnMut(u64),
) -> Result<SegmentDump> {
    let data = read(path)?;
    Ok(parse_segment(
        data,
        base_from_name(path),
        detail,
        on_progress,
    ))
}

/// Decodes the batches of a segment's bytes, checking as the log does on
/// recovery (header, length, contiguous offsets starting at `base_offset`,
/// CRC-32C) and also that every record decodes. Stops at the first invalid
/// batch. Without `base_offset`, the first batch's offset is the base.
///
/// Pure: works on any bytes (fuzzers feed it arbitrary input).
pub fn parse_segment(
    data: impl Into<Bytes>,
    base_offset: Option<Offset>,
    detail: Detail,
    on_progress: impl FnMut(u64),
) -> SegmentDump {
    let mut batches = Vec::new();
    let mut dump = walk_segment(data.into(), base_offset, detail, on_progress, |b| {
        batches.push(b)
    });
    dump.batches = batches;
    dump
}

/// [`dump_segment_with_progress`] that hands each batch to `on_batch` as it
/// is decoded instead of keeping them: the returned dump's `batches` is
/// empty, so a large segment is printed without holding a description of
/// every record in memory.
///
/// # Errors
/// As [`dump_segment`].
pub fn dump_segment_each(
    path: &Path,
    detail: Detail,
    on_progress: impl FnMut(u64),
    on_batch: impl FnMut(BatchInfo),
) -> Result<SegmentDump> {
    let data = read(path)?;
    Ok(walk_segment(
        data,
        base_from_name(path),
        detail,
        on_progress,
        on_batch,
    ))
}

/// The body of [`parse_segment`], handing batches to `on_batch`.
fn walk_segment(
    data: Bytes,
    base_offset: Option<Offset>,
    detail: Detail,
    mut on_progress: impl FnMut(u64),
    mut on_batch: impl FnMut(BatchInfo),
) -> SegmentDump {
    let base = base_offset.unwrap_or_else(|| {
        BatchHeader::parse(&data)
            .map(|h| h.first_offset())
            .unwrap_or(0)
    });
    let mut stop: Option<(Invalid, Offset)> = None;
    // `visit` sees only batches the scan found valid (CRC included); a batch
    // whose records fail to decode ends the scan through the error path.
    let scanned = scan(&data, 0, base, base, true, |pos, h| {
        let bytes = data.slice(pos..pos + h.size());
        let (info, bad) = describe(&bytes, pos, h, detail);
        on_batch(info);
        on_progress((pos + h.size()) as u64);
        match bad {
            None => Ok(()),
            Some(invalid) => {
                stop = Some((invalid, h.first_offset()));
                Err(Error::InvalidBatch {
                    position: pos as u64,
                    reason: String::new(),
                })
            }
        }
    });
    let (valid_bytes, next_offset, invalid) = match (scanned, stop) {
        (_, Some((invalid, next))) => (invalid.batch_position, next, Some(invalid)),
        (Ok(end), None)
            if end.invalid.is_some()
                && crate::storage::prealloc::is_zero_tail(&data[end.valid_len as usize..]) =>
        {
            (end.valid_len, end.next_offset, None)
        }
        (Ok(end), None) => {
            let invalid = end.invalid.map(|e| {
                let at = end.valid_len as usize;
                let rest = &data[at..];
                let mut complete = false;
                if let Ok(h) = BatchHeader::parse(rest)
                    && h.size() <= rest.len()
                {
                    let crc_valid = crc_matches(&rest[..h.size()]);
                    complete = crc_valid;
                    on_batch(BatchInfo::new(at, &h, crc_valid));
                }
                Invalid {
                    position: e.position as u64,
                    batch_position: at as u64,
                    reason: e.reason,
                    complete,
                }
            });
            (end.valid_len, end.next_offset, invalid)
        }
        // `visit` fails only after setting `stop`, and the scan has no other
        // error: report it as invalid at the start rather than panic.
        (Err(e), None) => (
            0,
            base,
            Some(Invalid {
                position: 0,
                batch_position: 0,
                reason: e.to_string(),
                complete: false,
            }),
        ),
    };
    let zero_tail = if invalid.is_none() {
        data.len() as u64 - valid_bytes
    } else {
        0
    };
    SegmentDump {
        base_offset,
        size: data.len() as u64,
        batches: Vec::new(),
        valid_bytes,
        zero_tail,
        next_offset,
        invalid,
    }
}

/// Describes a batch the scan found valid, decoding its records: the
/// records (with [`Detail::Records`]), its marker if it is a control batch,
/// or why its records do not decode.
fn describe(
    bytes: &Bytes,
    pos: usize,
    h: &BatchHeader,
    detail: Detail,
) -> (BatchInfo, Option<Invalid>) {
    let mut info = BatchInfo::new(pos, h, true);
    match validate_records(bytes, h, DEFAULT_DECOMPRESSION_LIMIT) {
        Ok(()) => {}
        // A codec this build lacks: the CRC (checked) covers the batch; its
        // records stay unread.
        Err(ValidateError::Unsupported(_)) => return (info, None),
        Err(ValidateError::Format(e)) => {
            let invalid = Invalid {
                position: (pos + e.position) as u64,
                batch_position: pos as u64,
                reason: e.reason,
                complete: true,
            };
            return (info, Some(invalid));
        }
    }
    if detail == Detail::Batches && !h.is_control() {
        return (info, None);
    }
    // validate_records accepted every record, so decoding cannot fail; a
    // failure is reported all the same rather than unwrapped.
    let records = Batch::new(bytes.clone()).and_then(|b| b.records());
    let mut decoded = Vec::new();
    match records {
        Ok(iter) => {
            for r in iter {
                match r {
                    Ok(r) => decoded.push(r),
                    Err(e) => {
                        let invalid = Invalid {
                            position: pos as u64,
                            batch_position: pos as u64,
                            reason: e.to_string(),
                            complete: true,
                        };
                        return (info, Some(invalid));
                    }
                }
            }
        }
        Err(e) => {
            let invalid = Invalid {
                position: pos as u64,
                batch_position: pos as u64,
                reason: e.to_string(),
                complete: true,
            };
            return (info, Some(invalid));
        }
    }
    if h.is_control() {
        info.control = decoded
            .first()
            .map(|r| ControlRecord::decode(r.key.as_deref(), r.value.as_deref()));
    }
    if detail == Detail::Records {
        info.records = decoded
            .into_iter()
            .map(|r| RecordInfo {
                sequence: sequence_at(h.base_sequence, r.offset - h.first_offset()),
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r.headers,
            })
            .collect();
    }
    (info, None)
}

/// Which of the two index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexType {
    /// `.index`: offset → position of its batch.
    Offset,
    /// `.timeindex`: timestamp → offset.
    Time,
}

impl IndexType {
    /// The kind a file's extension names (`.index`, `.timeindex`).
    pub fn from_path(path: &Path) -> Option<IndexType> {
        match path.extension()?.to_str()? {
            "index" => Some(IndexType::Offset),
            "timeindex" => Some(IndexType::Time),
            _ => None,
        }
    }

    fn kind(self) -> IndexKind {
        match self {
            IndexType::Offset => IndexKind::Offset,
            IndexType::Time => IndexKind::Time,
        }
    }
}

/// One index entry, with absolute offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexEntry {
    /// The batch at `position` ends at `offset`.
    Offset {
        /// Last offset of the batch.
        offset: Offset,
        /// Byte position of the batch in the log.
        position: u32,
    },
    /// The segment's records reached `timestamp` first in the batch ending
    /// at `offset`.
    Time {
        /// Largest timestamp so far in the segment.
        timestamp: i64,
        /// Last offset of the batch that first reached it.
        offset: Offset,
    },
}

/// An index file's entries and what checking them found.
#[derive(Debug, Clone)]
pub struct IndexDump {
    /// Offset or time index.
    pub kind: IndexType,
    /// The base offset the file name gives (entries are stored relative to
    /// it); `None` for a file not named like a segment (0 is used).
    pub base_offset: Option<Offset>,
    /// The entries before any unused slots.
    pub entries: Vec<IndexEntry>,
    /// Zero-filled entries at the end: the unused, preallocated part of an
    /// active segment's index (not damage).
    pub unused_slots: usize,
    /// The segment file the entries were checked against, when it exists
    /// beside the index.
    pub log: Option<PathBuf>,
    /// What is wrong, in file order; empty when the index is sound.
    pub problems: Vec<IndexProblem>,
}

/// Something wrong with an index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexProblem {
    /// Byte position in the index file (of the entry, or of the trailing
    /// partial entry).
    pub position: u64,
    /// What is wrong.
    pub reason: String,
}

/// At most this many wrong entries are listed one by one.
const MAX_ENTRY_PROBLEMS: usize = 20;

/// Reads an index file (its kind from the extension) and checks it: whole
/// entries, in order; and, when the segment's `.log` sits beside it,
/// positions at batch boundaries of batches ending at the entry's offset,
/// time entries naming the last offset of a batch whose max timestamp they
/// hold (as `kafka-dump-log.sh --verify-index-only` checks).
///
/// # Errors
/// [`Error::InvalidArgument`] when the extension is neither `.index` nor
/// `.timeindex`; an I/O error reading either file. Damage is reported in
/// [`IndexDump::problems`].
pub fn dump_index(path: &Path) -> Result<IndexDump> {
    let Some(kind) = IndexType::from_path(path) else {
        return Err(Error::InvalidArgument(format!(
            "{} is not an index file (.index or .timeindex)",
            path.display()
        )));
    };
    let bytes = read(path)?;
    let log_path = path.with_extension("log");
    let log = match std::fs::read(&log_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("read", &log_path, e)),
    };
    let mut dump = parse_index(kind, &bytes, base_from_name(path), log.as_deref());
    if log.is_some() {
        dump.log = Some(log_path);
    }
    Ok(dump)
}

/// The batches of a log as an index check needs them.
struct LogBatches {
    /// (position, last offset, max timestamp), in file order.
    batches: Vec<(u64, Offset, i64)>,
    valid_len: u64,
    next_offset: Offset,
}

fn log_batches(log: &[u8], base: Offset) -> LogBatches {
    let mut batches = Vec::new();
    // The CRC is not needed to check the indexes' framing; the segment's
    // own check reports a mismatch.
    let end = scan(log, 0, base, base, false, |pos, h| {
        batches.push((pos as u64, h.last_offset(), h.max_timestamp));
        Ok(())
    });
    let (valid_len, next_offset) = end.map_or((0, base), |e| (e.valid_len, e.next_offset));
    LogBatches {
        batches,
        valid_len,
        next_offset,
    }
}

/// Checks an index's bytes (see [`dump_index`]); `log` is the segment's
/// bytes if it should be checked against them. Pure: works on any bytes.
pub fn parse_index(
    kind: IndexType,
    bytes: &[u8],
    base_offset: Option<Offset>,
    log: Option<&[u8]>,
) -> IndexDump {
    let ik = kind.kind();
    let size = ik.entry_size();
    let base = base_offset.unwrap_or(0);
    let mut problems = Vec::new();
    let whole = bytes.len() / size;
    if !bytes.len().is_multiple_of(size) {
        problems.push(IndexProblem {
            position: (whole * size) as u64,
            reason: format!(
                "{} trailing bytes are not a whole entry of {size} bytes",
                bytes.len() % size
            ),
        });
    }
    let mut used = whole;
    while used > 0
        && bytes[(used - 1) * size..used * size]
            .iter()
            .all(|&b| b == 0)
    {
        used -= 1;
    }
    let body = &bytes[..used * size];
    if let Err((i, reason)) = index::check_entries_at(ik, body) {
        problems.push(IndexProblem {
            position: (i * size) as u64,
            reason,
        });
    }
    let raw: Vec<Entry> = (0..used).map(|i| index::decode(ik, body, i)).collect();
    let entries: Vec<IndexEntry> = raw
        .iter()
        .map(|e| match kind {
            IndexType::Offset => IndexEntry::Offset {
                offset: base.saturating_add(e.key as u64),
                position: e.value,
            },
            IndexType::Time => IndexEntry::Time {
                timestamp: e.key,
                offset: base.saturating_add(u64::from(e.value)),
            },
        })
        .collect();
    if let Some(log) = log {
        let lb = log_batches(log, base);
        let mut wrong = 0usize;
        for (i, e) in entries.iter().enumerate() {
            let Some(reason) = check_against_log(e, &lb) else {
                continue;
            };
            wrong += 1;
            if wrong <= MAX_ENTRY_PROBLEMS {
                problems.push(IndexProblem {
                    position: (i * size) as u64,
                    reason: format!("entry {i}: {reason}"),
                });
            }
        }
        if wrong > MAX_ENTRY_PROBLEMS {
            problems.push(IndexProblem {
                position: 0,
                reason: format!(
                    "{} more entries disagree with the log",
                    wrong - MAX_ENTRY_PROBLEMS
                ),
            });
        }
    }
    IndexDump {
        kind,
        base_offset,
        entries,
        unused_slots: whole - used,
        log: None,
        problems,
    }
}

/// What is wrong with one entry given the log's batches, if anything.
fn check_against_log(e: &IndexEntry, lb: &LogBatches) -> Option<String> {
    match *e {
        IndexEntry::Offset { offset, position } => {
            let position = u64::from(position);
            if position >= lb.valid_len {
                return Some(format!(
                    "offset {offset} at position {position}, past the log's last valid batch \
                     (valid bytes end at {})",
                    lb.valid_len
                ));
            }
            match lb.batches.binary_search_by_key(&position, |b| b.0) {
                Err(_) => Some(format!(
                    "offset {offset} at position {position}, which is not the start of a batch"
                )),
                Ok(i) if lb.batches[i].1 != offset => Some(format!(
                    "offset {offset} at position {position}, but the batch there ends at offset {}",
                    lb.batches[i].1
                )),
                Ok(_) => None,
            }
        }
        IndexEntry::Time { timestamp, offset } => {
            if offset >= lb.next_offset {
                return Some(format!(
                    "timestamp {timestamp} at offset {offset}, past the log's last valid offset \
                     ({})",
                    lb.next_offset.saturating_sub(1)
                ));
            }
            match lb.batches.binary_search_by_key(&offset, |b| b.1) {
                Err(_) => Some(format!(
                    "timestamp {timestamp} at offset {offset}, which is not the last offset of a batch"
                )),
                Ok(i) if lb.batches[i].2 != timestamp => Some(format!(
                    "timestamp {timestamp} at offset {offset}, but that batch's max timestamp is {}",
                    lb.batches[i].2
                )),
                Ok(_) => None,
            }
        }
    }
}

pub use crate::storage::producer_state::ProducerSnapshotEntry;

/// Reads a producer-state snapshot (`<offset>.snapshot`, Kafka's layout):
/// the producers it lists, by id.
///
/// # Errors
/// [`Error::Corrupt`] for bytes that do not decode (version, CRC,
/// lengths); I/O errors.
pub fn dump_producer_snapshot(path: &Path) -> Result<Vec<ProducerSnapshotEntry>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    crate::storage::producer_state::ProducerStates::decode_snapshot(&bytes)
        .map(|s| s.entries())
        .map_err(|reason| Error::corrupt(path, 0, reason))
}

/// Reads an aborted-transaction index (`<base>.txnindex`, Kafka's 34-byte
/// entries).
///
/// # Errors
/// [`Error::Corrupt`] for bytes that are not whole, ordered entries; I/O
/// errors.
pub fn dump_txn_index(path: &Path) -> Result<Vec<crate::AbortedTransaction>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    crate::storage::producer_state::decode_txn_index(&bytes)
        .map_err(|reason| Error::corrupt(path, 0, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::storage::{Log, LogConfig};

    fn log_with_batches(dir: &Path, batches: u64, per_batch: u64) -> PathBuf {
        let log = Log::open(dir, LogConfig::default().index_interval_bytes(100)).unwrap();
        for b in 0..batches {
            let records: Vec<Record> = (0..per_batch)
                .map(|i| {
                    Record::new(format!("value-{b}-{i}"))
                        .key(format!("k{i}"))
                        .timestamp(1_700_000_000_000 + (b * per_batch + i) as i64)
                })
                .collect();
            log.append(&records).unwrap();
        }
        log.close().unwrap();
        dir.join("00000000000000000000.log")
    }

    /// A crash leaves the active segment's preallocated zeros after its
    /// batches: the dump counts them apart, and nothing is invalid.
    #[test]
    fn a_crashed_segments_zero_tail_is_not_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        for i in 0..10 {
            log.append(&[Record::new(format!("v{i}")).timestamp(1)])
                .unwrap();
        }
        log.simulate_crash();
        let path = dir.path().join("00000000000000000000.log");
        let dump = dump_segment(&path, Detail::Records).unwrap();
        assert!(dump.invalid.is_none(), "{:?}", dump.invalid);
        assert_eq!(dump.next_offset, 10);
        assert!(dump.zero_tail > 0);
        assert_eq!(dump.valid_bytes + dump.zero_tail, dump.size);
    }

    #[test]
    fn a_written_segment_dumps_with_its_offsets_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with_batches(dir.path(), 5, 4);
        let dump = dump_segment(&path, Detail::Records).unwrap();
        assert!(dump.invalid.is_none(), "{:?}", dump.invalid);
        assert_eq!(dump.base_offset, Some(0));
        assert_eq!(dump.batches.len(), 5);
        assert_eq!(dump.valid_bytes, dump.size);
        assert_eq!(dump.next_offset, 20);
        assert_eq!(dump.valid_records(), 20);
        let mut pos = 0;
        for (i, b) in dump.batches.iter().enumerate() {
            assert_eq!(b.position, pos);
            assert_eq!(b.base_offset, i as u64 * 4);
            assert_eq!(b.last_offset, i as u64 * 4 + 3);
            assert_eq!(b.record_count, 4);
            assert!(b.crc_valid);
            assert_eq!(b.producer_id, -1);
            assert_eq!(b.last_sequence(), -1);
            assert_eq!(b.records.len(), 4);
            assert_eq!(b.records[2].offset, b.base_offset + 2);
            assert_eq!(b.records[2].key.as_deref(), Some(&b"k2"[..]));
            pos += b.size;
        }
        assert_eq!(
            dump.batches[1].records[0].value.as_deref(),
            Some(&b"value-1-0"[..])
        );
        let plain = dump_segment(&path, Detail::Batches).unwrap();
        assert!(plain.batches.iter().all(|b| b.records.is_empty()));
    }

    #[test]
    fn a_flipped_byte_is_a_crc_mismatch_at_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with_batches(dir.path(), 3, 2);
        let good = dump_segment(&path, Detail::Batches).unwrap();
        let second = good.batches[1].position;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second as usize + 70] ^= 0x40; // inside a record
        std::fs::write(&path, &bytes).unwrap();
        let dump = dump_segment(&path, Detail::Batches).unwrap();
        let invalid = dump.invalid.clone().expect("damage found");
        assert_eq!(invalid.batch_position, second);
        assert_eq!(invalid.position, second);
        assert!(invalid.reason.contains("CRC"), "{}", invalid.reason);
        assert!(!invalid.complete);
        assert_eq!(dump.valid_bytes, second);
        assert_eq!(dump.next_offset, 2);
        assert_eq!(dump.batches.len(), 2);
        assert!(!dump.batches[1].crc_valid);
        assert_eq!(dump.valid_batches().count(), 1);
    }

    #[test]
    fn a_torn_tail_stops_the_dump_where_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with_batches(dir.path(), 3, 2);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        let dump = dump_segment(&path, Detail::Batches).unwrap();
        let invalid = dump.invalid.unwrap();
        assert_eq!(dump.batches.len(), 2);
        assert_eq!(
            invalid.batch_position,
            dump.batches[1].position + dump.batches[1].size
        );
        assert!(
            invalid.reason.contains("past the end"),
            "{}",
            invalid.reason
        );
    }

    #[test]
    fn indexes_check_clean_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with_batches(dir.path(), 20, 3);
        let index_path = path.with_extension("index");
        let oi = dump_index(&index_path).unwrap();
        assert_eq!(oi.kind, IndexType::Offset);
        assert!(oi.entries.len() > 2, "{oi:?}");
        assert!(oi.problems.is_empty(), "{:?}", oi.problems);
        assert_eq!(oi.log.as_deref(), Some(path.as_path()));
        let seg = dump_segment(&path, Detail::Batches).unwrap();
        for e in &oi.entries {
            let IndexEntry::Offset { offset, position } = *e else {
                panic!("{e:?}")
            };
            let b = seg
                .batches
                .iter()
                .find(|b| b.position == u64::from(position))
                .unwrap();
            assert_eq!(b.last_offset, offset);
        }
        let ti = dump_index(&path.with_extension("timeindex")).unwrap();
        assert!(!ti.entries.is_empty());
        assert!(ti.problems.is_empty(), "{:?}", ti.problems);

        // Zero-filled slots after the entries are the unused part of a
        // preallocated index, not damage.
        let mut bytes = std::fs::read(&index_path).unwrap();
        bytes.extend_from_slice(&[0u8; 80]);
        let padded = parse_index(
            IndexType::Offset,
            &bytes,
            Some(0),
            Some(&std::fs::read(&path).unwrap()),
        );
        assert_eq!(padded.unused_slots, 10);
        assert!(padded.problems.is_empty(), "{:?}", padded.problems);

        // A position moved off its batch boundary.
        let mut bytes = std::fs::read(&index_path).unwrap();
        bytes[8 + 7] ^= 1;
        std::fs::write(&index_path, &bytes).unwrap();
        let bad = dump_index(&index_path).unwrap();
        assert_eq!(bad.problems.len(), 1, "{:?}", bad.problems);
        assert_eq!(bad.problems[0].position, 8);
        assert!(bad.problems[0].reason.contains("not the start of a batch"));

        // A partial entry at the end.
        bytes.truncate(bytes.len() - 3);
        let partial = parse_index(IndexType::Offset, &bytes, Some(0), None);
        assert!(
            partial
                .problems
                .iter()
                .any(|p| p.reason.contains("trailing bytes"))
        );
    }
}

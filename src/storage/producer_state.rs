//! What one log knows of the producers that write to it: for each producer
//! id its epoch, the sequence numbers of its last batches (to acknowledge a
//! retried batch with its first offsets, and to refuse a gap) and the first
//! offset of its open transaction; the aborted transactions (the
//! `.txnindex` files) and the last stable offset.
//!
//! On disk, as Kafka lays them out:
//!
//! - `<offset>.snapshot`: the producer table as of `offset` (version 1:
//!   version `i16`, CRC-32C `u32` of what follows, then an `i32` count of
//!   46-byte entries: producer id `i64`, epoch `i16`, last sequence `i32`,
//!   last offset `i64`, offset delta `i32`, timestamp `i64`, coordinator
//!   epoch `i32`, first offset of the open transaction `i64`, −1 if none).
//!   Written at each roll (for the new segment's base) and at a clean
//!   close; recovery starts from the newest one not past the log end and
//!   replays the batches after it.
//! - `<base>.txnindex`: the transactions aborted by a marker in that
//!   segment, 34 bytes each (version `i16` 0, producer id `i64`, first
//!   offset `i64`, last offset `i64` (the marker's), last stable offset
//!   `i64`). Read-committed readers skip those transactions' batches
//!   without scanning for their markers.

use crate::error::{Error, Result};
use crate::record::{BatchHeader, Offset};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

/// Suffix of producer-state snapshot files.
pub(crate) const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Suffix of aborted-transaction index files.
pub(crate) const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Bytes of one `.txnindex` entry.
pub(crate) const TXN_ENTRY_SIZE: usize = 34;
/// Bytes of one snapshot entry.
const SNAPSHOT_ENTRY_SIZE: usize = 46;
/// Version of the snapshot layout written.
const SNAPSHOT_VERSION: i16 = 1;
/// Batches remembered per producer to acknowledge a retry (Kafka's limit of
/// in-flight requests per connection).
const REMEMBERED_BATCHES: usize = 5;

/// A transaction that a marker aborted: its batches (from `first_offset`
/// to the marker at `last_offset`) are not to be read by a
/// read-committed consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    /// The producer whose transaction it was.
    pub producer_id: i64,
    /// Offset of its first batch in this partition.
    pub first_offset: Offset,
    /// Offset of the ABORT marker.
    pub last_offset: Offset,
    /// The last stable offset once the marker was written.
    pub last_stable_offset: Offset,
}

impl AbortedTransaction {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&(self.first_offset as i64).to_be_bytes());
        out.extend_from_slice(&(self.last_offset as i64).to_be_bytes());
        out.extend_from_slice(&(self.last_stable_offset as i64).to_be_bytes());
    }
}

/// Which batches of a run belong to aborted transactions (Kafka's
/// fetcher and cleaner): a producer's transactional batches from its
/// aborted transaction's first offset until its ABORT marker. Fed the
/// batches in offset order.
#[derive(Debug, Default)]
pub(crate) struct AbortedFilter {
    /// By first offset, the oldest last (popped as batches pass them).
    pending: Vec<AbortedTransaction>,
    /// Producers whose aborted transaction the run is inside.
    active: std::collections::HashSet<i64>,
}

impl AbortedFilter {
    /// A filter over `aborted` (any order).
    pub(crate) fn new(mut aborted: Vec<AbortedTransaction>) -> Self {
        aborted.sort_by_key(|t| std::cmp::Reverse(t.first_offset));
        AbortedFilter {
            pending: aborted,
            active: Default::default(),
        }
    }

    /// Whether no batch can be skipped.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.active.is_empty()
    }

    /// Whether the batch with header `h` is aborted data. `is_abort` tells
    /// whether a control batch is an ABORT marker (asked only for those).
    ///
    /// # Errors
    /// `is_abort`'s.
    pub(crate) fn skips(
        &mut self,
        h: &BatchHeader,
        is_abort: impl FnOnce() -> Result<bool>,
    ) -> Result<bool> {
        if self.is_empty() {
            return Ok(false);
        }
        while self
            .pending
            .last()
            .is_some_and(|t| t.first_offset <= h.last_offset())
        {
            if let Some(t) = self.pending.pop() {
                self.active.insert(t.producer_id);
            }
        }
        if h.is_control() {
            if self.active.contains(&h.producer_id) && is_abort()? {
                self.active.remove(&h.producer_id);
            }
            return Ok(false);
        }
        Ok(h.is_transactional() && self.active.contains(&h.producer_id))
    }
}

/// Decodes a `.txnindex` file's bytes.
///
/// # Errors
/// A description of the first bad entry (a length that is not a whole
/// number of entries, an unknown version, negative or unordered offsets).
pub(crate) fn decode_txn_index(
    bytes: &[u8],
) -> std::result::Result<Vec<AbortedTransaction>, String> {
    if !bytes.len().is_multiple_of(TXN_ENTRY_SIZE) {
        return Err(format!(
            "{} bytes is not a whole number of {TXN_ENTRY_SIZE}-byte entries",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / TXN_ENTRY_SIZE);
    for (i, e) in bytes.chunks_exact(TXN_ENTRY_SIZE).enumerate() {
        let version = be_i16(e, 0);
        if version != 0 {
            return Err(format!("entry {i}: unknown version {version}"));
        }
        let (first, last, lso) = (be_i64(e, 10), be_i64(e, 18), be_i64(e, 26));
        if first < 0 || last < first || lso < 0 {
            return Err(format!(
                "entry {i}: offsets first {first}, last {last}, stable {lso} are not valid"
            ));
        }
        let t = AbortedTransaction {
            producer_id: be_i64(e, 2),
            first_offset: first as u64,
            last_offset: last as u64,
            last_stable_offset: lso as u64,
        };
        if out
            .last()
            .is_some_and(|p: &AbortedTransaction| p.last_offset >= t.last_offset)
        {
            return Err(format!("entry {i}: markers out of order"));
        }
        out.push(t);
    }
    Ok(out)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The sequence after `seq` (sequences wrap from `i32::MAX` to 0, as
/// Kafka's).
pub(crate) fn next_sequence(seq: i32, count: i32) -> i32 {
    ((i64::from(seq) + i64::from(count)) % (i64::from(i32::MAX) + 1)) as i32
}

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    first_offset: Offset,
    last_offset: Offset,
    max_timestamp: i64,
}

/// One producer's state in one log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Newest last. Empty after an epoch bump by a marker (the next batch
    /// starts at sequence 0).
    batches: VecDeque<BatchMeta>,
    /// Newest timestamp of its batches or markers (expiry).
    last_timestamp: i64,
    coordinator_epoch: i32,
    /// First offset of its open transaction in this log.
    txn_first_offset: Option<Offset>,
}

impl ProducerEntry {
    fn new(epoch: i16) -> Self {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_timestamp: i64::MIN,
            coordinator_epoch: -1,
            txn_first_offset: None,
        }
    }
}

/// What an append of a producer's batch is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// A batch not seen before: append it.
    Append,
    /// A retry of a batch already stored at these offsets: acknowledge it
    /// with them, write nothing.
    Duplicate {
        first_offset: Offset,
        last_offset: Offset,
        max_timestamp: i64,
    },
}

/// The producer table of one log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: their first offset → producer id.
    ongoing: BTreeMap<Offset, i64>,
}

impl ProducerStates {
    /// The first offset a read-committed reader may not read yet: the first
    /// offset of the oldest open transaction, or `end`.
    pub(crate) fn last_stable_offset(&self, end: Offset) -> Offset {
        self.ongoing.keys().next().map_or(end, |&o| o.min(end))
    }

    /// Open transactions, as (producer id, first offset), oldest first.
    pub(crate) fn open_transactions(&self) -> Vec<(i64, i16, Offset)> {
        self.ongoing
            .iter()
            .map(|(&first, &pid)| {
                let epoch = self.producers.get(&pid).map_or(-1, |e| e.epoch);
                (pid, epoch, first)
            })
            .collect()
    }

    /// Checks a data batch of an idempotent or transactional producer
    /// against the table (`h.producer_id >= 0`), naming `dir` in errors.
    ///
    /// # Errors
    /// [`Error::ProducerFenced`] for an epoch older than the producer's;
    /// [`Error::OutOfOrderSequence`] for a batch that does not follow the
    /// producer's last one; [`Error::InvalidTxnState`] for a plain batch of
    /// a producer whose transaction is open here.
    pub(crate) fn check(&self, h: &BatchHeader, dir: &Path) -> Result<SequenceCheck> {
        let pid = h.producer_id;
        let Some(e) = self.producers.get(&pid) else {
            // Unknown (new, or expired): nothing to compare with.
            return Ok(SequenceCheck::Append);
        };
        if h.producer_epoch < e.epoch {
            return Err(Error::ProducerFenced {
                producer_id: pid,
                epoch: h.producer_epoch,
                current_epoch: e.epoch,
            });
        }
        if !h.is_transactional() && e.txn_first_offset.is_some() && h.producer_epoch == e.epoch {
            return Err(Error::InvalidTxnState(format!(
                "producer {pid} sent a non-transactional batch to {} while its transaction is open there",
                dir.display()
            )));
        }
        let last_seq = next_sequence(h.base_sequence, h.last_offset_delta);
        if h.producer_epoch > e.epoch {
            if h.base_sequence != 0 {
                return Err(Error::OutOfOrderSequence {
                    producer_id: pid,
                    expected: 0,
                    got: h.base_sequence,
                    log: dir.to_path_buf(),
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
                max_timestamp: b.max_timestamp,
            });
        }
        let expected = e.batches.back().map_or(0, |b| next_sequence(b.last_seq, 1));
        if h.base_sequence != expected {
            return Err(Error::OutOfOrderSequence {
                producer_id: pid,
                expected,
                got: h.base_sequence,
                log: dir.to_path_buf(),
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Checks a marker of producer `pid` at `epoch`.
    ///
    /// # Errors
    /// [`Error::ProducerFenced`] if the producer's epoch here is newer.
    pub(crate) fn check_marker(&self, pid: i64, epoch: i16) -> Result<()> {
        match self.producers.get(&pid) {
            Some(e) if epoch < e.epoch => Err(Error::ProducerFenced {
                producer_id: pid,
                epoch,
                current_epoch: e.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records a stored data batch (`h` with its final offsets), appended
    /// at `now` (expiry counts from appends, not from the records'
    /// timestamps, which may be old).
    pub(crate) fn record_batch(&mut self, h: &BatchHeader, now: i64) {
        let pid = h.producer_id;
        if pid < 0 {
            return;
        }
        let e = self
            .producers
            .entry(pid)
            .or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if h.base_sequence >= 0 {
            e.batches.push_back(BatchMeta {
                first_seq: h.base_sequence,
                last_seq: next_sequence(h.base_sequence, h.last_offset_delta),
                first_offset: h.first_offset(),
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
            });
            while e.batches.len() > REMEMBERED_BATCHES {
                e.batches.pop_front();
            }
        }
        e.last_timestamp = e.last_timestamp.max(now);
        if h.is_transactional() && e.txn_first_offset.is_none() {
            e.txn_first_offset = Some(h.first_offset());
            self.ongoing.insert(h.first_offset(), pid);
        }
    }

    /// Records a stored marker of `pid` at `offset`; returns the aborted
    /// transaction it ends, if it aborts one (its `last_stable_offset`
    /// computed against `end`, the log end after the marker).
    #[allow(clippy::too_many_arguments)] // a marker's fields, its place and time
    pub(crate) fn record_marker(
        &mut self,
        pid: i64,
        epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        offset: Offset,
        timestamp: i64,
        end: Offset,
    ) -> Option<AbortedTransaction> {
        let e = self
            .producers
            .entry(pid)
            .or_insert_with(|| ProducerEntry::new(epoch));
        if epoch > e.epoch {
            e.epoch = epoch;
            e.batches.clear();
        }
        e.coordinator_epoch = coordinator_epoch;
        e.last_timestamp = e.last_timestamp.max(timestamp);
        let first = e.txn_first_offset.take()?;
        self.ongoing.remove(&first);
        (!commit).then(|| AbortedTransaction {
            producer_id: pid,
            first_offset: first,
            last_offset: offset,
            last_stable_offset: self.last_stable_offset(end),
        })
    }

    /// Producers whose open transaction began below `start`.
    pub(crate) fn open_below(&self, start: Offset) -> Vec<i64> {
        self.ongoing.range(..start).map(|(_, &p)| p).collect()
    }

    /// The log start moved to `start`: open transactions that began below
    /// it begin, as far as this log can tell, at their first batch from
    /// `start` on (the next one recorded), as a replay from `start` sees
    /// them; without one they hold nothing back.
    /// The caller re-records their first batch at or after it
    /// ([`reopen_transaction`](Self::reopen_transaction)).
    pub(crate) fn truncate_head(&mut self, start: Offset) {
        let below: Vec<(Offset, i64)> =
            self.ongoing.range(..start).map(|(&o, &p)| (o, p)).collect();
        for &(first, pid) in &below {
            self.ongoing.remove(&first);
            if let Some(e) = self.producers.get_mut(&pid) {
                e.txn_first_offset = None;
            }
        }
    }

    /// Records `offset` as the first offset of `pid`'s open transaction
    /// (after [`truncate_head`](Self::truncate_head)).
    pub(crate) fn reopen_transaction(&mut self, pid: i64, offset: Offset) {
        if let Some(e) = self.producers.get_mut(&pid)
            && e.txn_first_offset.is_none()
        {
            e.txn_first_offset = Some(offset);
            self.ongoing.insert(offset, pid);
        }
    }

    /// Forgets producers with no open transaction whose last write is older
    /// than `now - max_age_ms` (Kafka's `producer.id.expiration.ms`).
    pub(crate) fn expire(&mut self, now: i64, max_age_ms: i64) {
        let horizon = now.saturating_sub(max_age_ms);
        self.producers
            .retain(|_, e| e.txn_first_offset.is_some() || e.last_timestamp >= horizon);
    }

    /// Encodes the table as a snapshot file's bytes.
    pub(crate) fn encode_snapshot(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(4 + self.producers.len() * SNAPSHOT_ENTRY_SIZE);
        let mut pids: Vec<&i64> = self.producers.keys().collect();
        pids.sort_unstable();
        body.extend_from_slice(&(pids.len() as i32).to_be_bytes());
        for pid in pids {
            let e = &self.producers[pid];
            let last = e.batches.back();
            body.extend_from_slice(&pid.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&last.map_or(-1, |b| b.last_seq).to_be_bytes());
            body.extend_from_slice(&last.map_or(-1, |b| b.last_offset as i64).to_be_bytes());
            let delta = last.map_or(0, |b| (b.last_offset - b.first_offset) as i32);
            body.extend_from_slice(&delta.to_be_bytes());
            let ts = e.last_timestamp;
            body.extend_from_slice(&ts.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            let txn = e.txn_first_offset.map_or(-1, |o| o as i64);
            body.extend_from_slice(&txn.to_be_bytes());
        }
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot file's bytes.
    ///
    /// # Errors
    /// What is wrong with them (version, CRC, length, a negative offset).
    pub(crate) fn decode_snapshot(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < 10 {
            return Err(format!("{} bytes is too short for a snapshot", bytes.len()));
        }
        let version = be_i16(bytes, 0);
        if version != SNAPSHOT_VERSION {
            return Err(format!("unknown snapshot version {version}"));
        }
        let crc = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        let body = &bytes[6..];
        if crc32c::crc32c(body) != crc {
            return Err("snapshot CRC-32C mismatch".into());
        }
        let count = be_i32(body, 0);
        let entries = &body[4..];
        if count < 0 || entries.len() != count as usize * SNAPSHOT_ENTRY_SIZE {
            return Err(format!(
                "snapshot says {count} entries but holds {} bytes of them",
                entries.len()
            ));
        }
        let mut s = ProducerStates::default();
        for (i, b) in entries.chunks_exact(SNAPSHOT_ENTRY_SIZE).enumerate() {
            let pid = be_i64(b, 0);
            let epoch = be_i16(b, 8);
            let last_seq = be_i32(b, 10);
            let last_offset = be_i64(b, 14);
            let delta = be_i32(b, 22);
            let timestamp = be_i64(b, 26);
            let coordinator_epoch = be_i32(b, 34);
            let txn = be_i64(b, 38);
            if delta < 0 || (last_offset >= 0 && i64::from(delta) > last_offset) {
                return Err(format!("snapshot entry {i}: bad offset delta {delta}"));
            }
            let mut e = ProducerEntry::new(epoch);
            e.last_timestamp = timestamp;
            e.coordinator_epoch = coordinator_epoch;
            if last_seq >= 0 && last_offset >= 0 {
                let first_seq = ((i64::from(last_seq) - i64::from(delta))
                    .rem_euclid(i64::from(i32::MAX) + 1)) as i32;
                e.batches.push_back(BatchMeta {
                    first_seq,
                    last_seq,
                    first_offset: (last_offset - i64::from(delta)) as u64,
                    last_offset: last_offset as u64,
                    max_timestamp: timestamp,
                });
            }
            if txn >= 0 {
                e.txn_first_offset = Some(txn as u64);
                s.ongoing.insert(txn as u64, pid);
            }
            if s.producers.insert(pid, e).is_some() {
                return Err(format!("snapshot entry {i}: producer {pid} listed twice"));
            }
        }
        Ok(s)
    }
}

/// One producer of a snapshot file, as [`inspect::dump_producer_snapshot`](crate::inspect::dump_producer_snapshot)
/// shows it (Kafka's snapshot entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSnapshotEntry {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// Sequence of its last batch's last record (−1: none since its epoch).
    pub last_sequence: i32,
    /// Offset of its last batch's last record.
    pub last_offset: Option<Offset>,
    /// Records in that batch − 1.
    pub offset_delta: i32,
    /// When it last wrote (ms since the epoch).
    pub timestamp: i64,
    /// The coordinator epoch of its last marker (−1: none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction.
    pub current_txn_first_offset: Option<Offset>,
}

impl ProducerStates {
    /// The table's entries, by producer id (what a snapshot holds).
    pub(crate) fn entries(&self) -> Vec<ProducerSnapshotEntry> {
        let mut out: Vec<ProducerSnapshotEntry> = self
            .producers
            .iter()
            .map(|(&pid, e)| {
                let last = e.batches.back();
                ProducerSnapshotEntry {
                    producer_id: pid,
                    producer_epoch: e.epoch,
                    last_sequence: last.map_or(-1, |b| b.last_seq),
                    last_offset: last.map(|b| b.last_offset),
                    offset_delta: last.map_or(0, |b| (b.last_offset - b.first_offset) as i32),
                    timestamp: e.last_timestamp,
                    coordinator_epoch: e.coordinator_epoch,
                    current_txn_first_offset: e.txn_first_offset,
                }
            })
            .collect();
        out.sort_by_key(|e| e.producer_id);
        out
    }
}

/// The file name of the snapshot at `offset`.
pub(crate) fn snapshot_file_name(offset: Offset) -> String {
    format!("{offset:020}{SNAPSHOT_SUFFIX}")
}

/// The offset of a snapshot file's name.
pub(crate) fn parse_snapshot_file_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::BatchBuilder;
    use crate::record::Record;

    fn header(pid: i64, epoch: i16, seq: i32, count: usize, base: i64, txn: bool) -> BatchHeader {
        let mut b = BatchBuilder::new()
            .base_offset(base)
            .producer(pid, epoch, seq)
            .transactional(txn);
        for _ in 0..count {
            b.push(&Record::new("v").timestamp(5));
        }
        BatchHeader::parse(&b.finish().unwrap()).unwrap()
    }

    #[test]
    fn duplicates_gaps_and_old_epochs() {
        let dir = Path::new("/x");
        let mut s = ProducerStates::default();
        let first = header(7, 0, 0, 3, 10, false);
        assert_eq!(s.check(&first, dir).unwrap(), SequenceCheck::Append);
        s.record_batch(&first, 5);
        // The same batch again: acknowledged with its offsets.
        assert_eq!(
            s.check(&header(7, 0, 0, 3, 99, false), dir).unwrap(),
            SequenceCheck::Duplicate {
                first_offset: 10,
                last_offset: 12,
                max_timestamp: 5
            }
        );
        // A gap.
        let gap = s.check(&header(7, 0, 4, 1, 13, false), dir).unwrap_err();
        assert!(
            matches!(
                gap,
                Error::OutOfOrderSequence {
                    expected: 3,
                    got: 4,
                    ..
                }
            ),
            "{gap}"
        );
        // The next one.
        assert_eq!(
            s.check(&header(7, 0, 3, 1, 13, false), dir).unwrap(),
            SequenceCheck::Append
        );
        // A newer epoch starts at 0; an older one is fenced.
        s.record_batch(&header(7, 2, 0, 1, 14, false), 5);
        let fenced = s.check(&header(7, 1, 1, 1, 15, false), dir).unwrap_err();
        assert!(matches!(
            fenced,
            Error::ProducerFenced {
                current_epoch: 2,
                ..
            }
        ));
        assert!(matches!(
            s.check(&header(7, 3, 5, 1, 15, false), dir),
            Err(Error::OutOfOrderSequence { expected: 0, .. })
        ));
    }

    #[test]
    fn transactions_hold_the_stable_offset_and_aborts_are_reported() {
        let mut s = ProducerStates::default();
        s.record_batch(&header(1, 0, 0, 2, 0, true), 5);
        s.record_batch(&header(2, 0, 0, 1, 2, true), 5);
        assert_eq!(s.last_stable_offset(3), 0);
        assert_eq!(s.record_marker(1, 0, 0, true, 3, 0, 4), None);
        assert_eq!(s.last_stable_offset(4), 2);
        let aborted = s.record_marker(2, 0, 0, false, 4, 0, 5).unwrap();
        assert_eq!(
            aborted,
            AbortedTransaction {
                producer_id: 2,
                first_offset: 2,
                last_offset: 4,
                last_stable_offset: 5
            }
        );
        let mut bytes = Vec::new();
        aborted.encode(&mut bytes);
        assert_eq!(bytes.len(), TXN_ENTRY_SIZE);
        assert_eq!(decode_txn_index(&bytes).unwrap(), [aborted]);
        assert!(decode_txn_index(&bytes[1..]).is_err());
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let mut s = ProducerStates::default();
        s.record_batch(&header(5, 1, 10, 4, 100, false), 5);
        s.record_batch(&header(6, 0, 0, 2, 104, true), 5);
        let bytes = s.encode_snapshot();
        assert_eq!(bytes.len(), 10 + 2 * SNAPSHOT_ENTRY_SIZE);
        let back = ProducerStates::decode_snapshot(&bytes).unwrap();
        assert_eq!(back.last_stable_offset(200), 104);
        // The last batch is remembered: its retry is a duplicate.
        assert!(matches!(
            back.check(&header(5, 1, 10, 4, 0, false), Path::new("/x")),
            Ok(SequenceCheck::Duplicate {
                first_offset: 100,
                last_offset: 103,
                ..
            })
        ));
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(ProducerStates::decode_snapshot(&bad).is_err());
        assert!(ProducerStates::decode_snapshot(&bytes[..9]).is_err());
        assert_eq!(parse_snapshot_file_name(&snapshot_file_name(42)), Some(42));
        assert_eq!(parse_snapshot_file_name("42.snapshot"), None);
    }

    #[test]
    fn sequences_wrap() {
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn idle_producers_expire_but_not_open_transactions() {
        let mut s = ProducerStates::default();
        s.record_batch(&header(1, 0, 0, 1, 0, false), 5);
        s.record_batch(&header(2, 0, 0, 1, 1, true), 5);
        s.expire(1_000, 10);
        assert_eq!(s.producers.len(), 1);
        assert!(s.producers.contains_key(&2));
    }
}

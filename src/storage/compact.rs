//! Log compaction: keep only the latest record of each key.
//!
//! A pass of the cleaner works as Kafka's does:
//!
//! 1. **Map.** The dirty part of the log (from the first offset the last pass
//!    did not cover to the end of the last complete segment old enough for
//!    `min.compaction.lag.ms`) is read once into a [`KeyMap`] of key hash →
//!    latest offset. The map has a fixed memory budget; when it fills, the
//!    pass covers only the offsets mapped so far and the next pass goes on.
//! 2. **Rewrite.** Every complete segment from the log start to the mapped
//!    end is rewritten, in groups of consecutive segments whose total size
//!    fits one segment, into `<base>.log.cleaned`. A record goes when a
//!    later record has its key, or when it is a tombstone older than
//!    `delete.retention.ms`. Kept records keep their offsets and bytes.
//! 3. **Swap.** The fsync'd `.cleaned` file is renamed to `<base>.log.swap`
//!    (the commit point), the group's old files are removed, and the swap
//!    file is renamed to `<base>.log`. Opening a log finishes a swap that a
//!    crash interrupted and removes a `.cleaned` file.
//!
//! Batches stay contiguous, so that reads and recovery can keep checking
//! that each batch starts where the previous one ended: a batch whose
//! records all go is absorbed into the batch before it in the group (its
//! last offset delta is raised), or, when it opens the group, is kept as an
//! empty batch (record count 0, as Kafka keeps some) that the dropped
//! batches after it extend.

use super::Inner;
use crate::error::{Error, Result};
use crate::record::{BatchHeader, Compression, Offset, RecordRef, extend_batch, filter_batch};
use crate::record::{CodecError, crc_matches, deflate, inflate, seal_batch};
use crate::storage::AbortedFilter;
use crate::storage::segment::{self, Mode, Segment};
use crate::storage::vfs::{Vfs, VfsFile};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Suffix of a cleaned segment being written (removed on open).
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment ready to replace its group (finished on
/// open).
pub(crate) const SWAP_SUFFIX: &str = ".swap";

/// Bytes of one [`KeyMap`] slot.
pub(crate) const SLOT_BYTES: usize = 24;
/// Smallest key-map budget accepted (room for one key).
pub const MIN_KEY_MAP_BYTES: usize = 3 * SLOT_BYTES;
/// Written to the cleaned file in chunks of about this size.
const WRITE_CHUNK: usize = 1 << 20;

/// How [`Log::compact`](super::Log::compact) cleans: Kafka's
/// `delete.retention.ms`, `min.compaction.lag.ms` and
/// `log.cleaner.dedupe.buffer.size`.
///
/// ```
/// use embedlog::Compaction;
/// use std::time::Duration;
/// let c = Compaction::default()
///     .delete_retention(Duration::from_secs(3600))
///     .min_compaction_lag(Duration::from_secs(60))
///     .key_map_bytes(8 << 20);
/// assert_eq!(c.get_key_map_bytes(), 8 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    pub(crate) delete_retention_ms: u64,
    pub(crate) min_lag_ms: u64,
    pub(crate) key_map_bytes: usize,
}

impl Default for Compaction {
    fn default() -> Self {
        Compaction {
            delete_retention_ms: 24 * 3600 * 1000,
            min_lag_ms: 0,
            key_map_bytes: 32 << 20,
        }
    }
}

impl Compaction {
    /// How long a tombstone (a record with a key and no value) stays after
    /// its timestamp before the cleaner may remove it, so that consumers
    /// reading behind see the deletion (`delete.retention.ms`). Default: 1
    /// day.
    pub fn delete_retention(mut self, d: Duration) -> Self {
        self.delete_retention_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Records younger than this (by their segment's newest timestamp) are
    /// not compacted (`min.compaction.lag.ms`). Default: 0.
    pub fn min_compaction_lag(mut self, d: Duration) -> Self {
        self.min_lag_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Memory for the cleaner's key map, in bytes: 24 bytes a distinct
    /// key, filled to 90 % (`log.cleaner.dedupe.buffer.size`). A pass
    /// covers as many dirty records as the map holds; the next pass goes
    /// on. Default: 32 MiB (about 1.3 million keys a pass). At least
    /// [`MIN_KEY_MAP_BYTES`].
    pub fn key_map_bytes(mut self, bytes: usize) -> Self {
        self.key_map_bytes = bytes;
        self
    }

    /// The key-map budget.
    pub fn get_key_map_bytes(&self) -> usize {
        self.key_map_bytes
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.key_map_bytes < MIN_KEY_MAP_BYTES {
            return Err(Error::InvalidConfig(format!(
                "key map of {} bytes is below the minimum of {MIN_KEY_MAP_BYTES}",
                self.key_map_bytes
            )));
        }
        Ok(())
    }
}

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Segments rewritten (before grouping).
    pub segments_cleaned: usize,
    /// Segments they became.
    pub segments_written: usize,
    /// Bytes of the rewritten segments before the pass.
    pub bytes_before: u64,
    /// Their bytes after it.
    pub bytes_after: u64,
    /// Dirty records read into the key map.
    pub records_mapped: u64,
    /// Records removed because a later record has their key.
    pub records_removed: u64,
    /// Tombstones removed because they are older than the delete retention.
    pub tombstones_removed: u64,
    /// Every offset below this one is now compacted (the next pass starts
    /// mapping here).
    pub cleaned_to: Offset,
    /// Memory the key map allocated, in bytes.
    pub key_map_bytes: usize,
    /// The key map filled before the dirty range ended: run another pass.
    pub key_map_full: bool,
}

/// A fixed-size open-addressing map from a key's 128-bit hash to its latest
/// offset (Kafka's `SkimpyOffsetMap`). Memory is `slots × 24` bytes,
/// allocated once.
#[derive(Debug)]
pub(crate) struct KeyMap {
    /// `(hash high, hash low, offset)`; `offset == EMPTY` is a free slot.
    slots: Vec<(u64, u64, u64)>,
    len: usize,
    max_len: usize,
}

const EMPTY: u64 = u64::MAX;

impl KeyMap {
    /// A map within `budget` bytes, no larger than `expected` keys need.
    pub(crate) fn new(budget: usize, expected: usize) -> KeyMap {
        let want = expected.saturating_mul(10) / 9 + 1;
        let n = (budget / SLOT_BYTES).min(want).max(1);
        KeyMap {
            slots: vec![(0, 0, EMPTY); n],
            len: 0,
            // Kafka's dedupe buffer load factor: 0.9.
            max_len: (n * 9 / 10).max(1).min(n),
        }
    }

    fn hash(key: &[u8]) -> (u64, u64) {
        // Two independent 64-bit SipHashes: a 128-bit hash, so that two
        // keys colliding (and one record wrongly removed) is as unlikely
        // as with Kafka's MD5.
        let mut a = DefaultHasher::new();
        0xa5u8.hash(&mut a);
        key.hash(&mut a);
        let mut b = DefaultHasher::new();
        0x5au8.hash(&mut b);
        key.hash(&mut b);
        (a.finish(), b.finish())
    }

    /// The slot holding `h`, or the free slot where it would go.
    fn slot(&self, h: (u64, u64)) -> usize {
        let n = self.slots.len();
        let mut i = (h.1 % n as u64) as usize;
        // Terminates: the map never fills all its slots (len < n).
        loop {
            let s = self.slots[i];
            if s.2 == EMPTY || (s.0, s.1) == h {
                return i;
            }
            i = (i + 1) % n;
        }
    }

    /// Records `offset` as the latest for `key`. `false` (nothing changed)
    /// when the key is new and the map is full.
    pub(crate) fn insert(&mut self, key: &[u8], offset: Offset) -> bool {
        let h = Self::hash(key);
        let i = self.slot(h);
        if self.slots[i].2 == EMPTY {
            if self.len >= self.max_len || self.len + 1 >= self.slots.len() {
                return false;
            }
            self.len += 1;
        }
        self.slots[i] = (h.0, h.1, offset);
        true
    }

    /// The latest offset of `key`, if mapped.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Offset> {
        let s = self.slots[self.slot(Self::hash(key))];
        (s.2 != EMPTY).then_some(s.2)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }
}

/// Writes one cleaned segment: filtered batches, with the contiguity rules
/// of the module docs.
struct Rewriter {
    file: Box<dyn VfsFile>,
    path: PathBuf,
    written: u64,
    out: Vec<u8>,
    /// The last batch, still open to absorb the next dropped batches.
    pending: Vec<u8>,
    /// `pending` holds a compressed batch's own bytes (it kept all its
    /// records), to be sealed as it is rather than compressed again.
    pending_raw: bool,
    next: Vec<u8>,
}

impl Rewriter {
    /// Pushes `batch` (decompressed if `original`, its stored bytes, are
    /// compressed) through `keep`.
    fn push(
        &mut self,
        batch: &[u8],
        original: &[u8],
        h: &BatchHeader,
        keep: impl FnMut(&RecordRef<'_>) -> bool,
        source: &Path,
        position: u64,
    ) -> Result<()> {
        self.next.clear();
        let kept = filter_batch(batch, h, &mut self.next, keep)
            .map_err(|e| e.in_file(source, position))?;
        // An emptied batch is absorbed by the previous one (which then
        // spans its offsets), unless either belongs to a producer: a
        // producer batch's offset span is its sequence span, and a
        // transactional one opens its transaction where it starts, so an
        // emptied producer batch stays, empty, with its header (as Kafka's
        // cleaner keeps it).
        let producer_of = |b: &[u8]| i64::from_be_bytes(b[43..51].try_into().unwrap_or([0xFF; 8]));
        if kept == 0
            && !self.pending.is_empty()
            && h.producer_id < 0
            && producer_of(&self.pending) < 0
        {
            extend_batch(&mut self.pending, h.last_offset());
            return Ok(());
        }
        self.close_pending()?;
        // A compressed batch that keeps every record is copied as it is
        // (as Kafka's cleaner does), not compressed again.
        let unchanged = h.compression() != Compression::None && kept == h.record_count as usize;
        if unchanged {
            self.next.clear();
            self.next.extend_from_slice(original);
        }
        std::mem::swap(&mut self.pending, &mut self.next);
        self.pending_raw = unchanged;
        Ok(())
    }

    fn close_pending(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            let codec = BatchHeader::compression_of(i16::from_be_bytes([
                self.pending[21],
                self.pending[22],
            ]));
            if codec == Compression::None || self.pending_raw {
                // (A batch kept as it was may have absorbed emptied ones
                // since: its header changed, so its CRC is sealed again.)
                seal_batch(&mut self.pending);
                self.out.extend_from_slice(&self.pending);
            } else {
                // Its records were copied decompressed; `deflate` compresses
                // them (or clears the codec of an emptied batch) and seals.
                let sealed = deflate(&self.pending, codec)?;
                self.out.extend_from_slice(&sealed);
            }
            self.pending.clear();
        }
        if self.out.len() >= WRITE_CHUNK {
            self.write_out()?;
        }
        Ok(())
    }

    /// Bytes written so far, the open batch included.
    fn len(&self) -> u64 {
        self.written + (self.out.len() + self.pending.len()) as u64
    }

    /// Goes back to when `len()` was `len` and the open batch `pending`.
    fn rollback(&mut self, len: u64, (pending, pending_raw): (Vec<u8>, bool)) -> Result<()> {
        let closed = len - pending.len() as u64;
        if closed >= self.written {
            self.out.truncate((closed - self.written) as usize);
        } else {
            self.file
                .set_len(closed)
                .map_err(|e| Error::io("truncate", &self.path, e))?;
            self.written = closed;
            self.out.clear();
        }
        self.pending = pending;
        self.pending_raw = pending_raw;
        Ok(())
    }

    fn write_out(&mut self) -> Result<()> {
        self.file
            .write_at(&self.out, self.written)
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.written += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }

    /// Writes the rest and fsyncs; returns the file's length.
    fn finish(mut self) -> Result<u64> {
        self.close_pending()?;
        self.write_out()?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.path, e))?;
        Ok(self.written)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Why a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Superseded,
    ExpiredTombstone,
}

/// What a pass removes.
struct Rules<'a> {
    map: &'a KeyMap,
    map_end: Offset,
    tombstone_horizon: i64,
    /// Base offsets of batches of aborted transactions (all their records
    /// go).
    aborted: &'a std::collections::HashSet<Offset>,
}

/// Kafka's rules: a record goes when a later one (in the mapped range) has
/// its key, or when it is a tombstone older than the delete horizon.
/// Keyless records stay; records at or after the mapped end are not mapped
/// and stay (a later pass maps them). `None`: the record stays.
fn fate(r: &RecordRef<'_>, rules: &Rules<'_>) -> Option<Fate> {
    let key = r.key?;
    if r.offset >= rules.map_end {
        return None;
    }
    if rules.map.get(key).is_some_and(|latest| latest > r.offset) {
        return Some(Fate::Superseded);
    }
    // Only a tombstone below the mapped end may go: its key was mapped, in
    // this pass or an earlier one, so no older value of the key survives.
    if r.value.is_none() && r.timestamp < rules.tombstone_horizon {
        return Some(Fate::ExpiredTombstone);
    }
    None
}

/// The share of the bytes of the complete segments of `segs` (all but the
/// last, the active one) that lie past `cleaned_to`.
fn dirty_ratio_of(segs: &[Arc<Segment>], cleaned_to: Offset) -> f64 {
    let (mut clean, mut dirty) = (0u64, 0u64);
    for s in segs.iter().take(segs.len().saturating_sub(1)) {
        if s.next_offset() <= cleaned_to {
            clean += s.size();
        } else {
            dirty += s.size();
        }
    }
    if clean + dirty == 0 {
        0.0
    } else {
        dirty as f64 / (clean + dirty) as f64
    }
}

impl Inner {
    /// The share of the complete segments' bytes not compacted yet. A
    /// moment's view: a pass may change it right after.
    pub(crate) fn dirty_ratio(&self) -> f64 {
        dirty_ratio_of(&self.snapshot(), self.cleaned_to.load(Ordering::SeqCst))
    }

    fn check_cleaning(&self) -> Result<()> {
        if self.abandoned.load(Ordering::SeqCst) || self.stopping.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        self.check_writable()
    }

    /// One compaction pass; see the module docs.
    pub(crate) fn compact(&self, opts: &Compaction) -> Result<CompactionReport> {
        // Without a threshold the pass always runs.
        Ok(self.compact_if_dirty(opts, None)?.unwrap_or_default())
    }

    /// One compaction pass, but only if the dirty ratio is above 0 and at
    /// least `min_ratio` (Kafka's `min.cleanable.dirty.ratio`); `None`
    /// (nothing done) otherwise. The ratio is taken from the segments the
    /// pass works on, under the lock the pass holds: no other pass,
    /// retention or truncation can change it between the check and the
    /// pass. (The background cleaner chooses partitions by a ratio read
    /// earlier; by the time it runs, another pass may have cleaned most of
    /// what it saw.) Without `min_ratio` the pass always runs.
    pub(crate) fn compact_if_dirty(
        &self,
        opts: &Compaction,
        min_ratio: Option<f64>,
    ) -> Result<Option<CompactionReport>> {
        opts.check()?;
        let _rewrite = self.rewrite.lock();
        self.check_cleaning()?;
        let segs = self.snapshot();
        if let Some(min) = min_ratio {
            let ratio = dirty_ratio_of(&segs, self.cleaned_to.load(Ordering::SeqCst));
            if ratio <= 0.0 || ratio < min {
                return Ok(None);
            }
        }
        let report = self.compact_locked(opts, &segs)?;
        tracing::info!(
            dir = %self.dir.display(),
            segments_cleaned = report.segments_cleaned,
            bytes_before = report.bytes_before,
            bytes_after = report.bytes_after,
            records_removed = report.records_removed,
            tombstones_removed = report.tombstones_removed,
            cleaned_to = report.cleaned_to,
            key_map_full = report.key_map_full,
            "compaction pass"
        );
        crate::telemetry::cleaner_run(report.records_removed + report.tombstones_removed);
        Ok(Some(report))
    }

    /// The pass itself, on `segs` (the current segment list), with the
    /// rewrite lock held.
    fn compact_locked(&self, opts: &Compaction, segs: &[Arc<Segment>]) -> Result<CompactionReport> {
        let now = self.clock.now_ms();
        let lag_horizon = now.saturating_sub(i64::try_from(opts.min_lag_ms).unwrap_or(i64::MAX));
        // Complete segments whose newest record is old enough (all of
        // them without a lag, whatever their timestamps).
        // Nor past the last stable offset: an open transaction may still
        // abort, and its records must not supersede committed ones.
        let lso = self.lso.load(Ordering::SeqCst);
        let cleanable = segs[..segs.len() - 1]
            .iter()
            .take_while(|s| opts.min_lag_ms == 0 || s.max_timestamp() <= lag_horizon)
            .take_while(|s| s.next_offset() <= lso)
            .count();
        let start = self.log_start.load(Ordering::SeqCst);
        let dirty_from = self.cleaned_to.load(Ordering::SeqCst).max(start);
        let mut report = CompactionReport {
            cleaned_to: dirty_from,
            ..CompactionReport::default()
        };
        if cleanable == 0 {
            return Ok(report);
        }
        let end = segs[cleanable].base;
        if dirty_from >= end {
            return Ok(report);
        }
        // The sources are durable before their replacement is: a crash
        // cannot leave a cleaned segment above a torn one. So are the ABORT
        // markers of the transactions whose records this pass removes
        // (they may lie past the cleaned range): a crash must not bring
        // back such a transaction as open, its records gone.
        let aborted = self.aborted_transactions(dirty_from, end);
        let markers_end = aborted.iter().map(|t| t.last_offset + 1).max().unwrap_or(0);
        self.sync_to(end.max(markers_end))?;
        self.mark_dirty()?;

        // 1. Map the dirty range.
        let expected = usize::try_from(end - dirty_from).unwrap_or(usize::MAX);
        let mut map = KeyMap::new(opts.key_map_bytes, expected);
        report.key_map_bytes = map.memory_bytes();
        let mut map_end = end;
        // Records of aborted transactions are not data: never mapped, and
        // removed by the rewrite (Kafka's cleaner does the same).
        let mut filter = AbortedFilter::new(aborted);
        let mut aborted_batches = std::collections::HashSet::new();
        'map: for s in &segs[..cleanable] {
            if s.next_offset() <= dirty_from {
                continue;
            }
            self.check_cleaning()?;
            let inflate = self.decompression_limit();
            let Some(batches) = s.read(dirty_from, end, usize::MAX, usize::MAX, inflate)? else {
                continue;
            };
            for b in batches.iter() {
                let b = b?;
                let is_abort = || {
                    Ok(b.control_record()?
                        .is_some_and(|m| m.kind == crate::record::ControlType::Abort))
                };
                if filter.skips(b.header(), is_abort)? {
                    aborted_batches.insert(b.base_offset());
                    continue;
                }
                // Transaction markers are not keyed data: never mapped (nor
                // removed).
                if b.header().is_control() {
                    continue;
                }
                // Alone, with its file and position for errors.
                let one = b.to_batches();
                for r in one.records_ref() {
                    let r = r?;
                    if r.offset < dirty_from {
                        continue;
                    }
                    report.records_mapped += 1;
                    if let Some(key) = r.key
                        && !map.insert(key, r.offset)
                    {
                        report.records_mapped -= 1;
                        map_end = r.offset;
                        report.key_map_full = true;
                        break 'map;
                    }
                }
            }
        }
        if map_end <= dirty_from {
            return Err(Error::InvalidConfig(format!(
                "the compaction key map ({} bytes) cannot hold one key",
                report.key_map_bytes
            )));
        }

        // 2 and 3. Rewrite and swap each group of segments below the
        // mapped end.
        let tombstone_horizon =
            now.saturating_sub(i64::try_from(opts.delete_retention_ms).unwrap_or(i64::MAX));
        let segment_bytes = self.writer.lock().config.get_segment_bytes();
        let todo = segs[..cleanable]
            .iter()
            .take_while(|s| s.base < map_end)
            .count();
        let rules = Rules {
            map: &map,
            map_end,
            tombstone_horizon,
            aborted: &aborted_batches,
        };
        let mut i = 0;
        while i < todo {
            let (j, len) =
                self.rewrite_group(&segs[i..todo], segment_bytes, &rules, &mut report)?;
            let group = &segs[i..i + j];
            i += j;
            let size: u64 = group.iter().map(|s| s.size()).sum();
            report.bytes_before += size;
            let cleaned = with_suffix(group[0].path(), CLEANED_SUFFIX);
            if group.len() == 1 && len == size {
                // Nothing removed: no gain from swapping in a copy.
                segment::remove_file_if_exists(&*self.vfs, &cleaned)?;
                report.bytes_after += size;
                continue;
            }
            // Before the commit point a failure (or a close) leaves the old
            // segments in place: the cleaned file just goes.
            let swap = with_suffix(group[0].path(), SWAP_SUFFIX);
            let committed = self.check_cleaning().and_then(|()| {
                self.vfs
                    .rename(&cleaned, &swap)
                    .map_err(|e| Error::io("rename", &cleaned, e))
            });
            if let Err(e) = committed {
                let _ = segment::remove_file_if_exists(&*self.vfs, &cleaned);
                return Err(e);
            }
            if let Err(e) = self.swap_in(group, &swap) {
                // Files may be half swapped: only a reopen (which finishes
                // the swap) can tell.
                self.poison(&e);
                return Err(e);
            }
            report.segments_cleaned += group.len();
            report.segments_written += 1;
            report.bytes_after += len;
        }
        self.cleaned_to.fetch_max(map_end, Ordering::SeqCst);
        report.cleaned_to = map_end;
        self.store_checkpoint(None)?;
        Ok(report)
    }

    /// Writes `<first base>.log.cleaned` from the first of `segs` and as
    /// many after it as fit one segment once cleaned (a segment that
    /// overflows is rolled back and starts the next group). Returns how
    /// many segments it took and the file's length.
    fn rewrite_group(
        &self,
        segs: &[Arc<Segment>],
        segment_bytes: u64,
        rules: &Rules<'_>,
        report: &mut CompactionReport,
    ) -> Result<(usize, u64)> {
        let vfs = &*self.vfs;
        let first = &segs[0];
        let path = with_suffix(first.path(), CLEANED_SUFFIX);
        let file = vfs
            .create(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let mut w = Rewriter {
            file,
            path: path.clone(),
            written: 0,
            out: Vec::new(),
            pending: Vec::new(),
            pending_raw: false,
            next: Vec::new(),
        };
        let result = (|| {
            let mut taken = 0;
            for s in segs {
                // Offsets in a segment are within `i32` of its base (the
                // first segment's own are).
                let last = s.next_offset().saturating_sub(1);
                if taken > 0 && last.saturating_sub(first.base) > i32::MAX as u64 {
                    break;
                }
                self.check_cleaning()?;
                let mark = (w.len(), (w.pending.clone(), w.pending_raw), report.clone());
                self.rewrite_segment(&mut w, s, rules, report)?;
                if taken > 0 && w.len() > segment_bytes {
                    w.rollback(mark.0, mark.1)?;
                    *report = mark.2;
                    break;
                }
                taken += 1;
            }
            Ok((taken, w.finish()?))
        })();
        if result.is_err() {
            let _ = segment::remove_file_if_exists(vfs, &path);
        }
        result
    }

    /// Pushes every batch of `s` through the rules into `w`.
    fn rewrite_segment(
        &self,
        w: &mut Rewriter,
        s: &Segment,
        rules: &Rules<'_>,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let data = s.bytes(s.size());
        let mut pos = 0usize;
        while pos < data.len() {
            let h =
                BatchHeader::parse(&data[pos..]).map_err(|e| e.in_file(s.path(), pos as u64))?;
            let batch = data.get(pos..pos + h.size()).ok_or_else(|| {
                Error::corrupt(s.path(), pos as u64, "batch runs past the segment's end")
            })?;
            if !crc_matches(batch) {
                return Err(Error::corrupt(s.path(), pos as u64, "CRC-32C mismatch"));
            }
            // A compressed batch is filtered in its decompressed form and,
            // unless it keeps every record (then it is copied as it is),
            // compressed again with its codec when sealed (as Kafka's
            // cleaner does).
            let original = batch;
            let inflated;
            let batch = if h.compression() == Compression::None {
                batch
            } else {
                inflated = inflate(batch, &h, self.decompression_limit()).map_err(|e| match e {
                    CodecError::Unsupported(why) => Error::Unsupported(why),
                    CodecError::Invalid(why) => Error::corrupt(s.path(), pos as u64, why),
                })?;
                &inflated[..]
            };
            let control = h.is_control();
            let aborted = rules.aborted.contains(&h.first_offset());
            w.push(
                batch,
                original,
                &h,
                // Transaction markers are not keyed data: kept. Records of
                // aborted transactions go.
                |r| match fate(r, rules).filter(|_| !control) {
                    _ if aborted => {
                        report.records_removed += 1;
                        false
                    }
                    None => true,
                    Some(Fate::Superseded) => {
                        report.records_removed += 1;
                        false
                    }
                    Some(Fate::ExpiredTombstone) => {
                        report.tombstones_removed += 1;
                        false
                    }
                },
                s.path(),
                pos as u64,
            )?;
            pos += h.size();
        }
        Ok(())
    }

    /// Replaces `group` with the fsync'd cleaned file just renamed to
    /// `swap`, on disk and in the segment list.
    fn swap_in(&self, group: &[Arc<Segment>], swap: &Path) -> Result<()> {
        let vfs = &*self.vfs;
        let dir = &self.dir;
        let first = &group[0];
        let sync_dir = || {
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))
        };
        // The commit point: once durable, a reopen finishes the swap.
        sync_dir()?;
        finish_swap(
            vfs,
            first.base,
            group.iter().map(|s| s.base),
            swap,
            first.path(),
        )?;
        sync_dir()?;
        let limits = self.writer.lock().limits;
        let loaded = Segment::load(
            vfs,
            dir,
            first.base,
            &limits,
            false,
            Mode::Trust(None),
            self.clock.now_ms(),
        )?;
        loaded.segment.release_handles();
        let new = Arc::new(loaded.segment);
        self.replace_segments(|list| {
            let at = list
                .iter()
                .position(|s| Arc::ptr_eq(s, first))
                .ok_or(Error::Closed)?;
            let mut v: Vec<_> = list[..at].to_vec();
            v.push(new);
            v.extend(list[at + group.len()..].iter().cloned());
            Ok(v)
        })?;
        self.writer
            .lock()
            .unflushed
            .retain(|s| !group.iter().any(|g| Arc::ptr_eq(s, g)));
        Ok(())
    }
}

/// The second half of a swap: removes the indexes of the replaced segments
/// (`bases`, the first being `base`) and their logs but the first, newest
/// first, then renames `swap` over the first one's log. Idempotent: files
/// already gone are fine, so a reopen can run it again.
pub(crate) fn finish_swap(
    vfs: &dyn Vfs,
    base: Offset,
    bases: impl DoubleEndedIterator<Item = Offset>,
    swap: &Path,
    log_path: &Path,
) -> Result<()> {
    let dir = log_path.parent().unwrap_or(Path::new("."));
    let bases: Vec<Offset> = bases.collect();
    // The aborted transactions of the replaced segments move to the new
    // one's `.txnindex` first (idempotent: a crash after it merges again).
    let mut aborted = Vec::new();
    let mut damaged = false;
    for &b in &bases {
        let p = segment::txn_index_path(&Segment::log_path(dir, b));
        match vfs.read(&p) {
            Ok(bytes) => match crate::storage::producer_state::decode_txn_index(&bytes) {
                Ok(entries) => aborted.extend(entries),
                // Rebuilt from the log by the next open that replays it.
                Err(reason) => {
                    tracing::warn!(
                        path = %p.display(),
                        reason,
                        "embedlog: a damaged aborted-transaction index; the compacted segment's is marked damaged too"
                    );
                    damaged = true;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &p, e)),
        }
    }
    aborted.sort_by_key(|t| t.last_offset);
    aborted.dedup_by_key(|t| t.last_offset);
    if !aborted.is_empty() || damaged {
        let mut bytes =
            Vec::with_capacity(aborted.len() * crate::storage::producer_state::TXN_ENTRY_SIZE);
        for t in &aborted {
            t.encode(&mut bytes);
        }
        if damaged {
            // Not a whole number of entries: the next open replays the
            // segment to rebuild it rather than trust a partial list.
            bytes.push(0xFF);
        }
        crate::storage::vfs::write_atomic(vfs, &segment::txn_index_path(log_path), &bytes)?;
    }
    for &b in bases.iter().rev() {
        let p = Segment::log_path(dir, b);
        segment::remove_indexes(vfs, &p)?;
        if b != base {
            segment::remove_file_if_exists(vfs, &segment::txn_index_path(&p))?;
            segment::remove_file_if_exists(vfs, &p)?;
        }
    }
    segment::remove_indexes(vfs, log_path)?;
    // The removals are durable before the rename: a crash must not keep
    // the renamed segment and an old one it covers.
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    vfs.rename(swap, log_path)
        .map_err(|e| Error::io("rename", swap, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_keeps_the_latest_offset_and_its_budget() {
        let mut m = KeyMap::new(1024, usize::MAX);
        assert_eq!(m.memory_bytes(), 1024 / SLOT_BYTES * SLOT_BYTES);
        assert!(m.insert(b"a", 1));
        assert!(m.insert(b"b", 2));
        assert!(m.insert(b"a", 7));
        assert_eq!(m.get(b"a"), Some(7));
        assert_eq!(m.get(b"b"), Some(2));
        assert_eq!(m.get(b"c"), None);
        // Fill to the load factor: new keys are refused, known ones update.
        let cap = (1024 / SLOT_BYTES) * 9 / 10;
        let mut n = 2;
        while m.insert(format!("k{n}").as_bytes(), n as u64) {
            n += 1;
        }
        assert_eq!(n, cap);
        assert!(m.insert(b"a", 99));
        assert_eq!(m.get(b"a"), Some(99));
        assert_eq!(m.get(format!("k{}", n - 1).as_bytes()), Some(n as u64 - 1));
    }

    /// The check of `compact_if_dirty` is of the segments the pass would
    /// clean, as they are under the pass's lock.
    #[test]
    fn compact_if_dirty_runs_only_at_the_minimum_ratio() {
        use crate::Record;
        let dir = tempfile::tempdir().unwrap();
        let config = super::super::LogConfig::default().segment_bytes(1024);
        let log = super::super::Log::open(dir.path(), config).unwrap();
        let fill = |tag: &str| {
            for i in 0..100u64 {
                log.append(&[Record::new(format!("{tag}{i}")).key(format!("k{}", i % 5))])
                    .unwrap();
            }
            log.roll().unwrap();
        };
        let opts = Compaction::default();
        // Nothing complete, nothing dirty: no pass, even at a minimum of 0.
        assert_eq!(log.compact_if_dirty(opts, 0.0).unwrap(), None);
        fill("v");
        assert_eq!(log.dirty_ratio(), 1.0);
        let r = log.compact_if_dirty(opts, 1.0).unwrap().unwrap();
        assert_eq!(r.cleaned_to, 100);
        assert_eq!(log.compact_if_dirty(opts, 0.0).unwrap(), None, "all clean");
        fill("w");
        let ratio = log.dirty_ratio();
        assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
        assert_eq!(log.compact_if_dirty(opts, 1.0).unwrap(), None);
        assert_eq!(log.cleaned_to(), 100, "a refused pass changes nothing");
        // Bad options are refused before the ratio is looked at.
        let bad = opts.key_map_bytes(1);
        assert!(matches!(
            log.compact_if_dirty(bad, 1.0),
            Err(Error::InvalidConfig(_))
        ));
        let r = log.compact_if_dirty(opts, ratio).unwrap().unwrap();
        assert_eq!((r.cleaned_to, log.cleaned_to()), (200, 200));
    }

    #[test]
    fn key_map_is_sized_by_the_expected_keys() {
        let m = KeyMap::new(1 << 30, 100);
        assert!(m.memory_bytes() <= 112 * SLOT_BYTES);
        // Room for the expected keys, never for none at all.
        let mut m = KeyMap::new(1 << 30, 0);
        assert!(!m.insert(b"x", 0));
        let mut m = KeyMap::new(1 << 30, 1);
        assert!(m.insert(b"x", 0));
    }
}

#[cfg(test)]
mod txn_index_tests {
    use super::*;
    use crate::storage::producer_state::{AbortedTransaction, decode_txn_index};
    use crate::storage::vfs::RealFs;

    fn entry(pid: i64, first: u64, last: u64) -> AbortedTransaction {
        AbortedTransaction {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    /// A swap carries the aborted transactions of every replaced segment
    /// into the new one's `.txnindex` (read-committed readers of the
    /// compacted segment still skip them), and a repeated swap (after a
    /// crash) merges them again without duplicates.
    #[test]
    fn a_swap_merges_the_replaced_segments_txn_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = RealFs;
        let write = |base: u64, entries: &[AbortedTransaction]| {
            let mut bytes = Vec::new();
            for e in entries {
                e.encode(&mut bytes);
            }
            let p = segment::txn_index_path(&Segment::log_path(dir.path(), base));
            std::fs::write(p, bytes).unwrap();
        };
        for base in [0u64, 10] {
            std::fs::write(Segment::log_path(dir.path(), base), b"").unwrap();
        }
        write(0, &[entry(1, 0, 4)]);
        write(10, &[entry(2, 3, 12)]);
        let swap = dir.path().join("00000000000000000000.log.swap");
        std::fs::write(&swap, b"").unwrap();
        let log0 = Segment::log_path(dir.path(), 0);
        finish_swap(&vfs, 0, [0u64, 10].into_iter(), &swap, &log0).unwrap();
        let merged = std::fs::read(segment::txn_index_path(&log0)).unwrap();
        assert_eq!(
            decode_txn_index(&merged).unwrap(),
            [entry(1, 0, 4), entry(2, 3, 12)]
        );
        assert!(!segment::txn_index_path(&Segment::log_path(dir.path(), 10)).exists());
        // Again, as recovery would after a crash in the middle.
        write(10, &[entry(2, 3, 12)]);
        std::fs::write(&swap, b"").unwrap();
        finish_swap(&vfs, 0, [0u64, 10].into_iter(), &swap, &log0).unwrap();
        let merged = std::fs::read(segment::txn_index_path(&log0)).unwrap();
        assert_eq!(decode_txn_index(&merged).unwrap().len(), 2);
    }
}

//! One segment: a `.log` file of record batches named by its base offset
//! (20 digits, as Kafka names them) and its two indexes.
//!
//! The log file holds whole batches back to back, nothing else. It is
//! written through the `vfs` seam (a copy into the preallocated, mapped
//! tail; see `prealloc.rs`) and read through a read-only memory map; the
//! active segment is mapped at its maximum size up front so it never needs
//! remapping. `size` is the published length: readers never look past it,
//! and the writer never changes a byte below it.

mod read;

use super::checkpoint::SegmentSummary;
use super::index::{Entry, Index, IndexKind};
use super::positions::RecordPositions;
use super::prealloc::{self, LOG_CHUNK, Preallocated};
use super::vfs::{Handle, Vfs};
use crate::error::{Error, Result};
use crate::record::{BatchHeader, CrcChecked, FormatError, Offset};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// No timestamp seen yet.
pub(crate) const NO_TIMESTAMP: i64 = i64::MIN;

/// The file name of the segment log with `base` offset.
pub(crate) fn log_file_name(base: Offset) -> String {
    format!("{base:020}.log")
}

/// Parses a segment log file name; `None` if `name` is not one.
pub(crate) fn parse_log_file_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Kafka offsets are signed 64-bit: larger names are not segments.
    stem.parse().ok().filter(|&b: &u64| b <= i64::MAX as u64)
}

/// Removes the indexes of the segment whose log is `log_path`, then the log
/// (a crash in between leaves a log without indexes, which open rebuilds).
/// Files already gone are fine.
pub(crate) fn remove_files(vfs: &dyn Vfs, log_path: &Path) -> Result<()> {
    remove_indexes(vfs, log_path)?;
    remove_file_if_exists(vfs, &txn_index_path(log_path))?;
    remove_file_if_exists(vfs, log_path)
}

/// The aborted-transaction index of the segment whose log is `log_path`.
/// Not an index [`remove_indexes`] removes: it is not rebuilt from its
/// segment alone.
pub(crate) fn txn_index_path(log_path: &Path) -> std::path::PathBuf {
    log_path
        .with_extension(crate::storage::producer_state::TXN_INDEX_SUFFIX.trim_start_matches('.'))
}

/// Removes the two index files of the segment whose log is `log_path`.
pub(crate) fn remove_indexes(vfs: &dyn Vfs, log_path: &Path) -> Result<()> {
    remove_file_if_exists(vfs, &Index::path_for(log_path, IndexKind::Offset))?;
    remove_file_if_exists(vfs, &Index::path_for(log_path, IndexKind::Time))
}

/// Removes a file; one already gone is fine.
pub(crate) fn remove_file_if_exists(vfs: &dyn Vfs, path: &Path) -> Result<()> {
    match vfs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Sizes that bound one segment, derived from the log's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Roll when the next batch would take the segment past this.
    pub(crate) segment_bytes: u64,
    /// The active segment's mapping (≥ segment_bytes and the largest batch).
    pub(crate) map_len: u64,
    /// Offset index entries a segment can hold.
    pub(crate) index_capacity: usize,
    /// Bytes between offset index entries.
    pub(crate) index_interval: u64,
}

/// The writer's indexing state for the active segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexState {
    /// Bytes appended since the batch of the last offset index entry began.
    bytes_since_entry: u64,
    /// Timestamp of the last time index entry.
    last_time_entry: i64,
}

impl IndexState {
    pub(crate) fn fresh() -> Self {
        IndexState {
            bytes_since_entry: 0,
            last_time_entry: NO_TIMESTAMP,
        }
    }
}

/// How a scan of a segment ended.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// Position after the last valid batch.
    pub(crate) valid_len: u64,
    /// Offset after the last valid batch (the segment base if none).
    pub(crate) next_offset: Offset,
    /// Why the scan stopped before the end, and where.
    pub(crate) invalid: Option<FormatError>,
    /// The batch that stopped the scan was whole and CRC-valid, only at the
    /// wrong offset: not something a torn write produces.
    pub(crate) misplaced: bool,
}

/// Walks the batches of `buf` from `pos`, checking each header, its length,
/// offset order (each batch starts after the previous one ends, and at or
/// after `base`) and, with `verify_crc`, its CRC. Calls `visit` for every
/// valid batch. Pure: works on any bytes.
pub(crate) fn scan(
    buf: &[u8],
    mut pos: usize,
    base: Offset,
    mut next_offset: Offset,
    verify_crc: bool,
    mut visit: impl FnMut(usize, &BatchHeader) -> Result<()>,
) -> Result<ScanEnd> {
    let mut invalid = None;
    let mut misplaced = false;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let h = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                invalid = Some(FormatError {
                    position: pos + e.position,
                    reason: e.reason,
                });
                break;
            }
        };
        let problem = if h.size() > rest.len() {
            Some(format!(
                "batch of {} bytes runs past the end of the segment ({} bytes remain)",
                h.size(),
                rest.len()
            ))
        } else if h.first_offset() != next_offset.max(base) {
            misplaced = crate::record::crc_matches(&rest[..h.size()]);
            Some(format!(
                "batch base offset {} where {} was expected (batches are contiguous)",
                h.first_offset(),
                next_offset.max(base)
            ))
        } else if h.last_offset() - base > i32::MAX as u64 {
            Some(format!(
                "offset {} is too far from the segment base {base}",
                h.last_offset()
            ))
        } else if verify_crc && !crate::record::crc_matches(&rest[..h.size()]) {
            Some("CRC-32C mismatch".to_string())
        } else {
            None
        };
        if let Some(reason) = problem {
            invalid = Some(FormatError {
                position: pos,
                reason,
            });
            break;
        }
        visit(pos, &h)?;
        next_offset = h.last_offset() + 1;
        pos += h.size();
    }
    Ok(ScanEnd {
        valid_len: pos as u64,
        next_offset,
        invalid,
        misplaced,
    })
}

/// One segment of a partition log.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base: Offset,
    path: Arc<Path>,
    file: Handle,
    /// The mapping: the file's length, or `map_len` for the active segment.
    data: Bytes,
    /// Published length in bytes.
    size: AtomicU64,
    /// How far the writer preallocated the file (past `size`).
    allocated: Preallocated,
    /// Offset after the last record (the base if empty).
    next_offset: AtomicU64,
    max_timestamp: AtomicI64,
    offset_of_max: AtomicU64,
    /// The time the segment's age is measured from, for time-based rolls:
    /// its first batch's max timestamp, or its creation time if empty.
    roll_basis: AtomicI64,
    offset_index: Index,
    time_index: Index,
    /// CRC-32C of both index files once the segment is complete.
    index_crcs: parking_lot::Mutex<Option<(u32, u32)>>,
    /// The batches whose CRC this process checked (readers skip them).
    checked: Arc<CrcChecked>,
    /// Where the records of checked batches start, as random reads found
    /// them.
    positions: parking_lot::Mutex<RecordPositions>,
}

/// Indexes rebuilt from a scan of the log, and what the scan found.
struct Rebuilt {
    offset_index: Index,
    time_index: Index,
    state: IndexState,
    end: ScanEnd,
    /// The max timestamp of the valid batches and its offset.
    max: (i64, Offset),
}

/// A segment opened from disk, with what its writer needs to continue.
pub(crate) struct Loaded {
    pub(crate) segment: Segment,
    pub(crate) state: IndexState,
    /// Recovery cut the file short (a torn or corrupt tail).
    pub(crate) truncated: bool,
}

/// How to open an existing segment.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// It was complete and fsync'd: check the indexes cheaply; rebuild them
    /// if they fail; any invalid batch is corruption.
    Trust(Option<&'a SegmentSummary>),
    /// It may hold a torn tail: scan every batch, rebuild the indexes, and
    /// cut the file at the first invalid batch unless that batch starts
    /// below `recovery_point` (then it is corruption).
    Recover { recovery_point: Offset },
}

impl Segment {
    pub(crate) fn log_path(dir: &Path, base: Offset) -> PathBuf {
        dir.join(log_file_name(base))
    }

    /// Creates a new, empty active segment.
    pub(crate) fn create(
        vfs: &dyn Vfs,
        dir: &Path,
        base: Offset,
        limits: &Limits,
        now: i64,
    ) -> Result<Segment> {
        let path = Self::log_path(dir, base);
        let file = vfs
            .create(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let data = file
            .map(limits.map_len)
            .map_err(|e| Error::io("map", &path, e))?;
        let offset_index = Index::create(
            vfs,
            Index::path_for(&path, IndexKind::Offset),
            IndexKind::Offset,
            limits.index_capacity,
        )?;
        let time_index = Index::create(
            vfs,
            Index::path_for(&path, IndexKind::Time),
            IndexKind::Time,
            limits.index_capacity + 1,
        )?;
        Ok(Segment {
            base,
            path: path.into(),
            file: Handle::new(file),
            data,
            size: AtomicU64::new(0),
            allocated: Preallocated::default(),
            next_offset: AtomicU64::new(base),
            max_timestamp: AtomicI64::new(NO_TIMESTAMP),
            offset_of_max: AtomicU64::new(base),
            roll_basis: AtomicI64::new(now),
            offset_index,
            time_index,
            index_crcs: parking_lot::Mutex::new(None),
            positions: parking_lot::Mutex::new(RecordPositions::default()),
            checked: Arc::new(CrcChecked::new(limits.map_len, 0, 0)),
        })
    }

    /// Opens an existing segment. `active` gets the preallocated indexes
    /// and the full-size mapping of the last segment.
    pub(crate) fn load(
        vfs: &dyn Vfs,
        dir: &Path,
        base: Offset,
        limits: &Limits,
        active: bool,
        mode: Mode<'_>,
        now: i64,
    ) -> Result<Loaded> {
        let path = Self::log_path(dir, base);
        let file = vfs.open(&path).map_err(|e| Error::io("open", &path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        if len > u64::from(u32::MAX) {
            return Err(Error::corrupt(
                &path,
                0,
                format!("segment of {len} bytes exceeds 4 GiB"),
            ));
        }
        let map_len = if active { len.max(limits.map_len) } else { len };
        let data = file.map(map_len).map_err(|e| Error::io("map", &path, e))?;
        let mut truncated = false;
        // `max` is the segment's max timestamp and its offset when a scan
        // computed it; otherwise the last time index entry holds it.
        let checked = match mode {
            Mode::Trust(summary) => {
                Self::check_indexes(vfs, &path, &data[..len as usize], base, limits, summary)?
            }
            Mode::Recover { .. } => None,
        };
        // A rebuild's scan checked every CRC of the bytes it kept.
        let rebuilt = checked.is_none();
        let (offset_index, time_index, state, size, next, max) = match checked {
            Some((o, t, st, size, next)) => (o, t, st, size, next, None),
            None => {
                let r = Self::rebuild(vfs, &path, &data[..len as usize], base, limits)?;
                if r.end.invalid.is_some()
                    && prealloc::is_zero_tail(&data[r.end.valid_len as usize..len as usize])
                {
                    // Preallocated and never written (a crash before the
                    // roll or close that cuts it): no data, nothing torn.
                    prealloc::cut_zero_tail(&*file, &path, len, r.end.valid_len)?;
                } else if let Some(e) = r.end.invalid {
                    let Mode::Recover { recovery_point } = mode else {
                        // A trusted segment was fsync'd: damage is corruption.
                        return Err(e.in_file(&path, 0));
                    };
                    if r.end.misplaced && r.end.valid_len == 0 {
                        // A whole, CRC-valid first batch at another offset
                        // than the file's name: a misnamed or foreign file,
                        // not a torn write. Cutting it would drop good data.
                        return Err(Error::corrupt(
                            &path,
                            0,
                            format!("segment named for offset {base}: {}", e.reason),
                        ));
                    }
                    if r.end.next_offset < recovery_point {
                        return Err(Error::corrupt(
                            &path,
                            e.position as u64,
                            format!(
                                "{} (offset {} is below the recovery point {recovery_point}, so this is \
                                 not a torn write; to accept losing the rest of the log, delete \
                                 embedlog.checkpoint and reopen)",
                                e.reason, r.end.next_offset
                            ),
                        ));
                    }
                    file.set_len(r.end.valid_len)
                        .map_err(|e| Error::io("truncate", &path, e))?;
                    tracing::warn!(
                        path = %path.display(),
                        position = e.position,
                        bytes_cut = len - r.end.valid_len,
                        next_offset = r.end.next_offset,
                        reason = %e.reason,
                        "recovery cut a torn tail: the bytes from this position on were never \
                         acknowledged as durable"
                    );
                    truncated = true;
                }
                (
                    r.offset_index,
                    r.time_index,
                    r.state,
                    r.end.valid_len,
                    r.end.next_offset,
                    Some(r.max),
                )
            }
        };
        let mut seg = Segment {
            base,
            path: path.into(),
            file: Handle::new(file),
            data,
            size: AtomicU64::new(size),
            allocated: Preallocated::default(),
            next_offset: AtomicU64::new(next),
            max_timestamp: AtomicI64::new(NO_TIMESTAMP),
            offset_of_max: AtomicU64::new(base),
            roll_basis: AtomicI64::new(now),
            offset_index,
            time_index,
            index_crcs: parking_lot::Mutex::new(None),
            positions: parking_lot::Mutex::new(RecordPositions::default()),
            checked: Arc::new(CrcChecked::new(
                map_len,
                size,
                if rebuilt { size } else { 0 },
            )),
        };
        let max = max.or_else(|| {
            seg.time_index
                .last()
                .map(|e| (e.key, base + u64::from(e.value)))
        });
        if let Some((ts, offset)) = max {
            seg.max_timestamp.store(ts, Ordering::Relaxed);
            seg.offset_of_max.store(offset, Ordering::Relaxed);
        }
        if size > 0 {
            // Age counts from the first batch's timestamp, as Kafka's does,
            // but never from the future.
            let h = BatchHeader::parse(&seg.data[..]).map_err(|e| e.in_file(&seg.path, 0))?;
            seg.roll_basis
                .store(h.max_timestamp.min(now), Ordering::Relaxed);
        }
        let mut state = state;
        if active {
            seg.offset_index.reserve(limits.index_capacity)?;
            seg.time_index.reserve(limits.index_capacity + 1)?;
        } else {
            seg.finish_indexes(&mut state)?;
        }
        Ok(Loaded {
            segment: seg,
            state,
            truncated,
        })
    }

    /// Opens and checks the indexes of a complete segment without reading
    /// more of the log than the tail after the last index entry. `None`
    /// means they must be rebuilt.
    #[allow(clippy::type_complexity)]
    fn check_indexes(
        vfs: &dyn Vfs,
        path: &Path,
        log: &[u8],
        base: Offset,
        limits: &Limits,
        summary: Option<&SegmentSummary>,
    ) -> Result<Option<(Index, Index, IndexState, u64, Offset)>> {
        let Some(oi) = Index::open(
            vfs,
            Index::path_for(path, IndexKind::Offset),
            IndexKind::Offset,
        )?
        else {
            return Ok(None);
        };
        let Some(ti) = Index::open(vfs, Index::path_for(path, IndexKind::Time), IndexKind::Time)?
        else {
            return Ok(None);
        };
        if oi.check().is_err() || ti.check().is_err() {
            return Ok(None);
        }
        // Only a segment the checkpoint describes, unchanged, is trusted:
        // its indexes must match the recorded lengths and CRCs (an index
        // cut at an entry boundary or with a flipped entry fails here).
        let Some(s) = summary.filter(|s| s.base == base && s.log_len == log.len() as u64) else {
            return Ok(None);
        };
        if s.index_len != oi.file_len()
            || s.time_index_len != ti.file_len()
            || s.index_crc != oi.crc()
            || s.time_index_crc != ti.crc()
        {
            return Ok(None);
        }
        // The first batch must start at or after the base the name gives.
        if !log.is_empty() {
            let h = BatchHeader::parse(log).map_err(|e| e.in_file(path, 0))?;
            if h.first_offset() < base {
                return Err(Error::corrupt(
                    path,
                    0,
                    format!(
                        "segment named for offset {base} starts with offset {}",
                        h.first_offset()
                    ),
                ));
            }
        }
        // The last offset entry must point at the batch it names, and no
        // entry may be missing after it: walk the tail.
        let (from_pos, from_next) = match oi.last() {
            Some(e) => {
                let pos = e.value as usize;
                let Ok(h) = BatchHeader::parse(log.get(pos..).unwrap_or_default()) else {
                    return Ok(None);
                };
                if Some(h.last_offset()) != base.checked_add(e.key as u64) {
                    return Ok(None);
                }
                (pos, h.first_offset())
            }
            None => (0, base),
        };
        let mut short = false;
        let end = scan(log, from_pos, base, from_next, false, |pos, _| {
            if (pos - from_pos) as u64 > limits.index_interval {
                short = true;
            }
            Ok(())
        })?;
        if short || end.invalid.is_some() {
            return Ok(None);
        }
        // The last time entry is the segment's max timestamp.
        let Some(rel_of_max) = s.offset_of_max.checked_sub(base) else {
            return Ok(None);
        };
        let want = (s.max_timestamp != NO_TIMESTAMP).then_some(Entry {
            key: s.max_timestamp,
            value: rel_of_max as u32,
        });
        if ti.last() != want {
            return Ok(None);
        }
        if let Some(t) = ti.last()
            && base.saturating_add(u64::from(t.value)) >= end.next_offset
        {
            return Ok(None);
        }
        let state = IndexState {
            bytes_since_entry: (log.len() - from_pos) as u64,
            last_time_entry: ti.last().map_or(NO_TIMESTAMP, |e| e.key),
        };
        Ok(Some((oi, ti, state, log.len() as u64, end.next_offset)))
    }

    /// Rebuilds both indexes from the log, verifying every CRC. Stops at the
    /// first invalid batch (reported in the `ScanEnd`).
    fn rebuild(
        vfs: &dyn Vfs,
        path: &Path,
        log: &[u8],
        base: Offset,
        limits: &Limits,
    ) -> Result<Rebuilt> {
        let oi = Index::create(
            vfs,
            Index::path_for(path, IndexKind::Offset),
            IndexKind::Offset,
            limits.index_capacity,
        )?;
        let ti = Index::create(
            vfs,
            Index::path_for(path, IndexKind::Time),
            IndexKind::Time,
            limits.index_capacity + 1,
        )?;
        let mut st = IndexState::fresh();
        let mut max_ts = NO_TIMESTAMP;
        let mut offset_of_max = base;
        let end = scan(log, 0, base, base, true, |pos, h| {
            index_batch(
                &oi,
                &ti,
                &mut st,
                &mut max_ts,
                &mut offset_of_max,
                base,
                pos as u64,
                h,
                limits.index_interval,
            )
        })?;
        Ok(Rebuilt {
            offset_index: oi,
            time_index: ti,
            state: st,
            end,
            max: (max_ts, offset_of_max),
        })
    }

    pub(crate) fn path(&self) -> &Arc<Path> {
        &self.path
    }

    /// Published size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> Offset {
        self.next_offset.load(Ordering::Acquire)
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn roll_basis(&self) -> i64 {
        self.roll_basis.load(Ordering::Relaxed)
    }

    /// Whether a batch of `len` bytes ending at `last_offset` can go into
    /// this segment, or the log must roll first.
    pub(crate) fn fits(&self, len: u64, last_offset: Offset, limits: &Limits) -> bool {
        let size = self.size();
        let room = if size == 0 {
            len <= self.data.len() as u64
        } else {
            size + len <= limits.segment_bytes && size + len <= self.data.len() as u64
        };
        room && last_offset - self.base <= i32::MAX as u64
            && !self.offset_index.is_full()
            && !self.time_index.is_full()
    }

    /// Appends one batch (whose header is `h`) and publishes it. Nothing is
    /// published if an error is returned. `now` is asked for the first
    /// batch only (the segment's age counts from it). `before_sync`: an
    /// fsync of the log follows at once (`VfsFile::write_at_before_sync`).
    pub(crate) fn append(
        &self,
        batch: &[u8],
        h: &BatchHeader,
        st: &mut IndexState,
        limits: &Limits,
        now: impl FnOnce() -> i64,
        before_sync: bool,
    ) -> Result<()> {
        let pos = self.size.load(Ordering::Relaxed);
        let end = pos + batch.len() as u64;
        // Never allocated past the segment's budget (a roll comes first),
        // except for a batch larger than it.
        self.allocated.ensure(
            &self.file,
            &self.path,
            end,
            LOG_CHUNK,
            limits.segment_bytes.min(self.data.len() as u64),
            self.data.len() as u64,
        )?;
        self.file
            .with(|f| {
                if before_sync {
                    f.write_at_before_sync(batch, pos)
                } else {
                    f.write_at(batch, pos)
                }
            })
            .map_err(|e| Error::io("write", &self.path, e))?;
        let mut max_ts = self.max_timestamp.load(Ordering::Relaxed);
        let mut offset_of_max = self.offset_of_max.load(Ordering::Relaxed);
        index_batch(
            &self.offset_index,
            &self.time_index,
            st,
            &mut max_ts,
            &mut offset_of_max,
            self.base,
            pos,
            h,
            limits.index_interval,
        )?;
        if pos == 0 {
            self.roll_basis.store(now(), Ordering::Relaxed);
        }
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.offset_of_max.store(offset_of_max, Ordering::Release);
        self.next_offset
            .store(h.last_offset() + 1, Ordering::Release);
        self.size.store(pos + batch.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Adds the final time index entry and trims both index files: done when
    /// the segment stops being active (roll, close).
    pub(crate) fn finish_indexes(&self, st: &mut IndexState) -> Result<()> {
        let max_ts = self.max_timestamp();
        if max_ts != NO_TIMESTAMP && max_ts > st.last_time_entry {
            let rel = (self.offset_of_max.load(Ordering::Acquire) - self.base) as u32;
            if self.time_index.append(Entry {
                key: max_ts,
                value: rel,
            })? {
                st.last_time_entry = max_ts;
            }
        }
        self.offset_index.trim()?;
        self.time_index.trim()?;
        *self.index_crcs.lock() = Some((self.offset_index.crc(), self.time_index.crc()));
        Ok(())
    }

    /// The summary a checkpoint keeps for a complete segment.
    pub(crate) fn summary(&self) -> SegmentSummary {
        let (index_crc, time_index_crc) = self
            .index_crcs
            .lock()
            .unwrap_or_else(|| (self.offset_index.crc(), self.time_index.crc()));
        SegmentSummary {
            base: self.base,
            log_len: self.size(),
            index_len: (self.offset_index.len() * IndexKind::Offset.entry_size()) as u64,
            time_index_len: (self.time_index.len() * IndexKind::Time.entry_size()) as u64,
            max_timestamp: self.max_timestamp(),
            offset_of_max: self.offset_of_max.load(Ordering::Acquire),
            index_crc,
            time_index_crc,
        }
    }

    /// `fdatasync` of the log file.
    pub(crate) fn sync_log(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.path, e))
    }

    /// `fdatasync` of the log and both indexes.
    pub(crate) fn sync_all(&self) -> Result<()> {
        self.sync_log()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Closes the segment's file descriptors: it is complete and fsync'd,
    /// and its bytes stay reachable through the memory maps.
    pub(crate) fn release_handles(&self) {
        self.file.release();
        self.offset_index.release();
        self.time_index.release();
    }

    /// Trims the log file to its published size: its preallocated tail on
    /// roll and close, or bytes a failed write left past it.
    pub(crate) fn trim_log(&self) -> Result<()> {
        let size = self.size();
        self.allocated.cut(size);
        self.file
            .with(|f| f.set_len(size))
            .map_err(|e| Error::io("truncate", &self.path, e))
    }

    /// Removes the segment's files. Readers holding its data keep it.
    pub(crate) fn delete_files(&self, vfs: &dyn Vfs) -> Result<()> {
        remove_files(vfs, &self.path)
    }

    /// The published bytes (whole batches).
    pub(crate) fn bytes(&self, size: u64) -> &[u8] {
        &self.data[..size as usize]
    }
}

/// Applies Kafka's indexing rule to one batch at `pos`. Both entries are
/// written before either is published, and nothing (neither the entries nor
/// `st`) changes if a write fails.
#[allow(clippy::too_many_arguments)]
fn index_batch(
    oi: &Index,
    ti: &Index,
    st: &mut IndexState,
    max_ts: &mut i64,
    offset_of_max: &mut Offset,
    base: Offset,
    pos: u64,
    h: &BatchHeader,
    interval: u64,
) -> Result<()> {
    let (mut new_max, mut new_offset_of_max) = (*max_ts, *offset_of_max);
    if h.max_timestamp > new_max {
        new_max = h.max_timestamp;
        new_offset_of_max = h.last_offset();
    }
    let mut next = *st;
    if st.bytes_since_entry > interval {
        // Capacity is sized for the segment and a full index makes the log
        // roll before the next append, so a full index here only costs a
        // longer scan for lookups, never a wrong answer.
        let offset_staged = oi.stage(Entry {
            key: (h.last_offset() - base) as i64,
            value: pos as u32,
        })?;
        let time_staged = new_max > st.last_time_entry
            && ti.stage(Entry {
                key: new_max,
                value: (new_offset_of_max - base) as u32,
            })?;
        if offset_staged {
            oi.commit();
        }
        if time_staged {
            ti.commit();
            next.last_time_entry = new_max;
        }
        next.bytes_since_entry = 0;
    }
    next.bytes_since_entry += h.size() as u64;
    *st = next;
    *max_ts = new_max;
    *offset_of_max = new_offset_of_max;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_twenty_digits() {
        assert_eq!(log_file_name(42), "00000000000000000042.log");
        assert_eq!(parse_log_file_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_file_name("42.log"), None);
        assert_eq!(parse_log_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
        assert_eq!(
            parse_log_file_name("99999999999999999999.log"),
            None,
            "overflows u64"
        );
    }

    #[test]
    fn scan_stops_at_garbage_and_reports_where() {
        let mut buf = Vec::new();
        let mut all = Vec::new();
        for base in [0i64, 1] {
            let p = crate::record::BatchParams {
                base_offset: base,
                ..Default::default()
            };
            crate::record::encode_batch(&mut buf, &p, &[crate::Record::new("x").timestamp(1)])
                .unwrap();
            all.extend_from_slice(&buf);
        }
        let one = all.len() / 2;
        all.extend_from_slice(&[0u8; 10]);
        let mut seen = Vec::new();
        let end = scan(&all, 0, 0, 0, true, |pos, h| {
            seen.push((pos, h.first_offset()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0, 0), (one, 1)]);
        assert_eq!(end.valid_len, 2 * one as u64);
        assert_eq!(end.next_offset, 2);
        assert!(end.invalid.is_some());
        // Out-of-order offsets stop the scan too.
        let mut swapped = all[one..2 * one].to_vec();
        swapped.extend_from_slice(&all[..one]);
        let end = scan(&swapped, 0, 0, 0, true, |_, _| Ok(())).unwrap();
        assert_eq!(end.valid_len, 0, "the first batch must start at the base");
        assert!(end.invalid.unwrap().reason.contains("was expected"));
    }
}

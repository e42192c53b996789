//! Preallocation of the files the writer appends to: the active segment's
//! log and its two indexes.
//!
//! Appends land in bytes allocated ahead of them with `fallocate`, a chunk
//! at a time, so that the file system can serve them from the page cache
//! through the writable map of the `vfs` seam (a copy, no system call) and
//! so that a full disk is an error of the `fallocate`, naming the file,
//! never a `SIGBUS` of a copy into the map.
//!
//! The allocated tail past the published end reads as zeros. A roll and a
//! clean close cut it, so that sealed segments have their exact lengths
//! (`Mode::Trust` and the checkpoint's summaries compare them). After a
//! crash, opening a segment cuts a tail of zeros after its last valid batch
//! whatever the mode: it is no data, so not damage even below the recovery
//! point (a power loss can undo a roll's cut that no fsync covered yet,
//! leaving a sealed, fsync'd segment with its tail), and not a torn write
//! after which newer segments must go. Whether data went missing is the
//! next segment's business: the load checks that it starts where this one
//! ends. The check reads the tail once, which for an unwritten tail is page
//! cache zero-fill, not disk reads.

use super::vfs::{Handle, VfsFile};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A segment log grows by this much at a time: one `fallocate` per 8 MiB
/// appended (about 80 000 appends of 100 B records).
pub(crate) const LOG_CHUNK: u64 = 8 << 20;

/// An index grows by this much at a time (8 192 offset entries, one per
/// 4 KiB of log by default).
pub(crate) const INDEX_CHUNK: u64 = 64 << 10;

/// How far the writer preallocated one file. Only the log's writer (under
/// its lock) changes it.
#[derive(Debug, Default)]
pub(crate) struct Preallocated {
    allocated: AtomicU64,
}

impl Preallocated {
    /// Makes sure bytes `[0, end)` of `file` are allocated, extending by
    /// `chunk` past `end` but not past `cap` (the segment's size budget, or
    /// the index's capacity), in a file mapped `map_len` bytes long.
    ///
    /// # Errors
    /// The `fallocate`'s error, as [`Error::DiskFull`] for `ENOSPC`, naming
    /// `path`; nothing was written then.
    pub(crate) fn ensure(
        &self,
        file: &Handle,
        path: &Path,
        end: u64,
        chunk: u64,
        cap: u64,
        map_len: u64,
    ) -> Result<()> {
        if end <= self.allocated.load(Ordering::Relaxed) {
            return Ok(());
        }
        let target = end.saturating_add(chunk).min(cap).max(end);
        file.with(|f| f.preallocate(target, map_len))
            .map_err(|e| Error::io("preallocate", path, e))?;
        self.allocated.store(target, Ordering::Relaxed);
        Ok(())
    }

    /// The file was cut to `len`: bytes past it must be allocated again.
    pub(crate) fn cut(&self, len: u64) {
        self.allocated.fetch_min(len, Ordering::Relaxed);
    }
}

/// Whether `tail` (the bytes after a segment's last valid batch) is all
/// zeros: a preallocated tail never written, not a torn batch.
pub(crate) fn is_zero_tail(tail: &[u8]) -> bool {
    !tail.is_empty() && tail.iter().all(|&b| b == 0)
}

/// Cuts a segment file of `len` bytes whose bytes from `valid_len` on are a
/// zero tail ([`is_zero_tail`]).
pub(crate) fn cut_zero_tail(
    file: &dyn VfsFile,
    path: &Path,
    len: u64,
    valid_len: u64,
) -> Result<()> {
    file.set_len(valid_len)
        .map_err(|e| Error::io("truncate", path, e))?;
    tracing::debug!(
        path = %path.display(),
        position = valid_len,
        bytes_cut = len - valid_len,
        "cut a preallocated tail of zeros left by a crash"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::storage::faulty::{CrashMode, FaultyFs, Op};
    use crate::storage::segment::log_file_name;
    use crate::storage::{Durability, Log, LogConfig, ReadLimit};
    use crate::{Error, Record};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    fn seg(dir: &Path, base: u64) -> PathBuf {
        dir.join(log_file_name(base))
    }

    /// (bytes of whole batches, file length) of a segment file.
    fn lengths(dir: &Path, base: u64) -> (u64, u64) {
        let path = seg(dir, base);
        let bytes = std::fs::read(&path).unwrap();
        let valid = crate::storage::parse::scan_segment(&bytes, base).0;
        assert!(
            bytes[valid as usize..].iter().all(|&b| b == 0),
            "only zeros follow the batches of {}",
            path.display()
        );
        (valid, bytes.len() as u64)
    }

    fn values(log: &Log) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = log.start_offset();
        while at < log.end_offset() {
            for r in log.read(at, ReadLimit::bytes(1 << 16)).unwrap().records() {
                let r = r.unwrap();
                at = r.offset + 1;
                out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
        out
    }

    fn rec(i: usize) -> Record {
        Record::new(format!("v{i}")).timestamp(i as i64)
    }

    fn want(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("v{i}")).collect()
    }

    #[test]
    fn the_active_segment_is_preallocated_and_cut_at_roll_and_close() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        for i in 0..10 {
            log.append(&[rec(i)]).unwrap();
        }
        let (valid, len) = lengths(dir.path(), 0);
        assert!(valid > 0);
        assert!(len > valid, "allocated ahead: {len} bytes for {valid}");
        log.roll().unwrap();
        let (valid, len) = lengths(dir.path(), 0);
        assert_eq!(len, valid, "a sealed segment has its exact length");
        for i in 10..15 {
            log.append(&[rec(i)]).unwrap();
        }
        assert!(lengths(dir.path(), 10).1 > lengths(dir.path(), 10).0);
        log.close().unwrap();
        let (valid, len) = lengths(dir.path(), 10);
        assert_eq!(len, valid, "a clean close cuts the tail");
        // The clean close is trusted: nothing to cut, everything there.
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(values(&log), want(15));
        log.close().unwrap();
    }

    #[test]
    fn a_crash_leaves_a_zero_tail_that_reopening_cuts() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        for i in 0..100 {
            log.append(&[rec(i)]).unwrap();
        }
        log.simulate_crash();
        let (valid, len) = lengths(dir.path(), 0);
        assert!(len > valid);
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(values(&log), want(100));
        assert_eq!(lengths(dir.path(), 0), (valid, valid), "cut on open");
        // Appends continue right after the last batch.
        log.append(&[rec(100)]).unwrap();
        log.close().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(values(&log), want(101));
        log.close().unwrap();
    }

    #[test]
    fn a_zero_tail_below_the_recovery_point_is_cut_not_corruption() {
        // A power loss undoes a roll's cut (not fsync'd yet) of a segment
        // whose data and preallocation were fsync'd: the segment is below
        // the recovery point and ends in zeros.
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::default();
        let open = || Log::open_with(Arc::new(fs.clone()), dir.path(), LogConfig::default());
        let log = open().unwrap();
        for i in 0..20 {
            log.append_with(&[rec(i)], Durability::Sync).unwrap();
        }
        log.roll().unwrap();
        log.simulate_crash();
        fs.faults.crash(CrashMode::DropAll);
        let (valid, len) = lengths(dir.path(), 0);
        assert!(len > valid, "the roll's cut was lost");
        let log = open().unwrap();
        assert_eq!(values(&log), want(20));
        assert_eq!(lengths(dir.path(), 0), (valid, valid));
        log.append(&[rec(20)]).unwrap();
        log.close().unwrap();
        assert_eq!(values(&open().unwrap()), want(21));
    }

    #[test]
    fn enospc_from_preallocate_is_an_error_naming_the_file_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::default();
        let open = || Log::open_with(Arc::new(fs.clone()), dir.path(), LogConfig::default());
        let log = open().unwrap();
        for i in 0..5 {
            log.append(&[rec(i)]).unwrap();
        }
        assert!(fs.faults.seen(Op::Preallocate) > 0);
        // The next segment's first append allocates its log.
        log.roll().unwrap();
        fs.faults
            .fail(Op::Preallocate, 0, std::io::ErrorKind::StorageFull, true);
        match log.append(&[rec(5)]) {
            Err(Error::DiskFull { op, path, .. }) => {
                assert_eq!(op, "preallocate");
                assert_eq!(path, seg(dir.path(), 5));
            }
            other => panic!("{other:?}"),
        }
        assert!(fs.faults.tripped());
        assert_eq!(log.end_offset(), 5, "nothing appended");
        assert!(!log.is_poisoned(), "nothing was written: not poisoned");
        fs.faults.clear();
        // Space freed: appends continue at the same offset.
        assert_eq!(log.append(&[rec(5)]).unwrap().base_offset, 5);
        assert_eq!(values(&log), want(6));
        // Every acknowledged record survives a kill.
        log.simulate_crash();
        fs.faults.crash(CrashMode::KeepAll);
        let log = open().unwrap();
        assert_eq!(values(&log), want(6));
        log.close().unwrap();
    }

    #[test]
    fn index_entries_go_through_the_map_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::default().index_interval_bytes(0);
        let log = Log::open(dir.path(), config.clone()).unwrap();
        for i in 0..300 {
            log.append(&[rec(i)]).unwrap();
        }
        // Every batch but the first has an offset index entry: lookups
        // from each offset find it.
        for from in [1u64, 150, 299] {
            let b = log.read(from, ReadLimit::bytes(1)).unwrap();
            assert_eq!(b.records().next().unwrap().unwrap().offset, from);
        }
        log.close().unwrap();
        let index = std::fs::read(dir.path().join("00000000000000000000.index")).unwrap();
        assert_eq!(
            crate::storage::parse::check_index(false, &index),
            Ok(299),
            "the index is trimmed to its entries"
        );
        let log = Log::open(dir.path(), config).unwrap();
        assert_eq!(values(&log), want(300));
        log.close().unwrap();
    }
}

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
    /// `chunk` past `end` but not past `limit` (the file's mapping).
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
        limit: u64,
    ) -> Result<()> {
        if end <= self.allocated.load(Ordering::Relaxed) {
            return Ok(());
        }
        let target = end.saturating_add(chunk).min(limit).max(end);
        file.with(|f| f.preallocate(target, limit))
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

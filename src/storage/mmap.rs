//! Memory maps: the crate's only `unsafe` code. Readers get read-only
//! maps ([`map`]); the writer of a log or index file copies appends into a
//! writable shared map of the file's preallocated prefix ([`WriteMap`]).
//!
//! # Safety argument
//!
//! A mapping is sound to read as long as no byte a reader looks at changes
//! underneath it and no page it touches lies past the end of the file.
//! A writable mapping is sound to write as long as one thread writes at a
//! time, no reader looks at the bytes being written, and no written page
//! lies past the end of the file or lacks disk blocks. embedlog upholds that
//! as follows:
//!
//! - Log and index files are append-only while mapped: a writer only writes
//!   (with `pwrite`, or by copying into its [`WriteMap`]) past the
//!   *published* end, and readers only read below it. Bytes below the
//!   published end never change again.
//! - A [`WriteMap`] copies only into bytes its file has *backed*: allocated
//!   on disk by `fallocate` (so the copy cannot need space the disk lacks,
//!   which would be a `SIGBUS` instead of `ENOSPC`) and inside the file's
//!   length. Its writes and its shrinking (`set_len`) run under one mutex, so
//!   a shrink never races a copy, and two copies never race each other.
//!   Every other truncation of a file with a [`WriteMap`] goes through that
//!   file's handle (`VfsFile::set_len`), which shrinks the backed prefix
//!   first; a file replaced by a new one (`Vfs::create` on its path, a
//!   rename over it) is never written through its old handle again (the
//!   log's writer lock orders both).
//! - Only filesystems whose `fallocate` reserves the blocks an overwrite
//!   needs get a [`WriteMap`] (ext4, XFS, tmpfs on Linux); copy-on-write
//!   filesystems (btrfs, ZFS) and other systems keep writing with `pwrite`,
//!   whose `ENOSPC` is an error.
//! - A file is never shrunk below its published end while this process maps
//!   it. Trimming a preallocated tail (of a log on roll and close, of an
//!   index on roll) only cuts bytes that were never published. Truncating a
//!   log (replication) writes a new file and renames it over the old one;
//!   the old inode, and every mapping of it, stays intact until the last
//!   reader drops it. Deleted segments are unlinked, which likewise leaves
//!   existing mappings valid.
//! - Ahead of its copies, a [`WriteMap`] fills the window of pages it
//!   faults in with zeros by `pwrite` (`fill_zeros`): only bytes at or past
//!   the position being written, inside the backed prefix, which hold no
//!   data (the writer appends; bytes a failed write left past the published
//!   end are cut before the next write) and read as zeros already. It
//!   changes no byte anybody can read.
//! - A mapping may be longer than its file (an active segment is mapped at
//!   its maximum size up front). Pages past the end of the file are never
//!   touched, because they are past the published end.
//! - One process at a time owns a log directory (an OS file lock), so no
//!   other embedlog instance writes these files. A foreign program that
//!   truncates them while we run is outside what any mmap-based store can
//!   defend against; it can make a read fault, not return wrong data silently.
//! - A read-only view (`read_only.rs`) of a directory another process owns
//!   maps only sealed segments, which that owner never shrinks in place
//!   (compaction and truncation rename a new file over them, retention
//!   unlinks them). It reads the last segment, whose torn tail a new
//!   owner's recovery cuts, with `pread`, never through a mapping. One
//!   case remains: recovery also cuts a sealed segment past the recovery
//!   point that fails its checks, which takes a lost page cache (power
//!   loss) or a disk fault; a kill leaves sealed segments whole.
//!
//! # Durability of mapped writes
//!
//! A copy into a shared mapping lands in the same page cache a `pwrite`
//! fills: it survives the process being killed once the copy is done. On
//! Linux, `fdatasync` on the file's descriptor writes back pages dirtied
//! through shared mappings too (the first write to a page faults and marks
//! it dirty in the page cache, which writeback walks; `msync(MS_SYNC)` is
//! itself implemented as `vfs_fsync_range` on the mapped file, see
//! `mm/msync.c`), so `Durability::Sync` needs no `msync`.
#![allow(unsafe_code)]

use bytes::Bytes;
use std::fs::File;
use std::io;

/// Maps `len` bytes of `file` read-only and returns them as shared `Bytes`
/// that keep the mapping alive (zero-copy reads).
pub(crate) fn map(file: &File, len: u64) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    let len = usize::try_from(len)
        .map_err(|_| io::Error::other("mapping larger than the address space"))?;
    // SAFETY: see the module documentation: mapped bytes that readers access
    // are never modified or truncated while the mapping exists.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
    Ok(Bytes::from_owner(map))
}

const PAGE: u64 = 4096;
/// Copies of the current size one populated window holds (see `write`).
const POPULATE_COPIES: u64 = 2048;
const POPULATE_MIN: u64 = 256 << 10;
const POPULATE_MAX: u64 = 4 << 20;

/// The writer's writable shared mapping of one file (see the module's
/// safety argument). Empty until the first [`extend`](Self::extend).
#[derive(Debug, Default)]
pub(crate) struct WriteMap {
    state: parking_lot::Mutex<WriteState>,
}

#[derive(Debug, Default)]
struct WriteState {
    map: Option<memmap2::MmapRaw>,
    /// Bytes `[0, backed)` are allocated on disk and inside the file.
    backed: u64,
    /// Bytes `[0, populated)` were faulted in writable ahead of the copies
    /// (pages dirty with zeros until filled; a roll or close cuts them).
    populated: u64,
    /// Bytes `[0, zeroed)` were written (with data or zeros) ahead of
    /// `pwrite`s an fsync follows (`zero_ahead_of_sync`).
    zeroed: u64,
}

impl WriteMap {
    /// Records that `[0, len)` is now allocated and inside the file (the
    /// caller's `fallocate` succeeded), mapping `map_len` bytes (at least
    /// `len`) of `file` at the first call.
    pub(crate) fn extend(&self, file: &File, len: u64, map_len: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        if st.map.is_none() {
            let map_len = usize::try_from(map_len.max(len))
                .map_err(|_| io::Error::other("mapping larger than the address space"))?;
            st.map = Some(memmap2::MmapOptions::new().len(map_len).map_raw(file)?);
        }
        st.backed = st.backed.max(len);
        Ok(())
    }

    /// Bytes from `len` on stop being backed: called before the file is cut
    /// to `len`.
    pub(crate) fn shrink(&self, len: u64) {
        let mut st = self.state.lock();
        st.backed = st.backed.min(len);
        st.populated = st.populated.min(len);
        st.zeroed = st.zeroed.min(len);
    }

    /// Before a `pwrite` of `[pos, end)` that an fsync follows at once:
    /// writes zeros from `pos` to [`SYNC_ZERO_CHUNK`] past `end` (within
    /// the preallocated prefix), unless done already. `fallocate` leaves
    /// its blocks *unwritten*: the fsync after each write into them must
    /// commit the file system's journal to mark them written, which costs
    /// as much as the data's own write. Written once with zeros (whose
    /// fsync pays that commit once for the chunk), later fsyncs write only
    /// the data: measured on ext4, 11 KB writes each followed by
    /// `fdatasync`, 4 600 syncs/s into fallocated blocks, 6 800/s with the
    /// zeros written 1 MiB ahead (their cost included). Bytes at and past
    /// `pos` hold no data (the writer appends at the end), so the zeros
    /// change no byte. Best effort, like `fill_zeros`.
    pub(crate) fn zero_ahead_of_sync(&self, file: &File, pos: u64, end: u64) {
        #[cfg(target_os = "linux")]
        {
            let mut st = self.state.lock();
            if st.map.is_none() || end <= st.zeroed || end > st.backed {
                return;
            }
            let to = end.saturating_add(SYNC_ZERO_CHUNK).min(st.backed);
            fill_zeros(file, st.zeroed.max(pos), to);
            st.zeroed = to;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (file, pos, end);
    }

    /// Copies `buf` to `pos` if the whole range is backed and mapped;
    /// `false` (nothing written) otherwise, for the caller to `pwrite`.
    /// `file` is the mapped file. Its writer appends: no byte at or past
    /// `pos` holds data (`pos` is at or past the published end, and bytes
    /// a failed write left there were cut), so the window faulted in
    /// ahead is filled with zeros first if `zero_fill` says so (not for a
    /// write an fsync follows, which would write the zeros back).
    pub(crate) fn write(&self, file: &File, buf: &[u8], pos: u64, zero_fill: bool) -> bool {
        let mut st = self.state.lock();
        let st = &mut *st;
        let Some(map) = &st.map else {
            return false;
        };
        let Some(end) = pos.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > st.backed || end > map.len() as u64 {
            return false;
        }
        if end > st.populated {
            // Fault the pages ahead in, writable, in one call: otherwise
            // the first copy into each 4 KiB page takes a page fault of a
            // few microseconds (2.5 % of 100 B appends: the p99). A window
            // of about 2 000 copies of this size makes the one append that
            // pays for it rarer than one in a thousand (the p99.9).
            // Linux 5.14+; where refused, the copies fault as they go.
            let window = (buf.len() as u64 * POPULATE_COPIES).clamp(POPULATE_MIN, POPULATE_MAX);
            let from = st.populated.max(pos) & !(PAGE - 1);
            let to = end
                .saturating_add(window)
                .min(st.backed)
                .min(map.len() as u64);
            #[cfg(target_os = "linux")]
            {
                if zero_fill {
                    fill_zeros(file, st.populated.max(pos), to);
                }
                let _ = map.advise_range(
                    memmap2::Advice::PopulateWrite,
                    from as usize,
                    (to - from) as usize,
                );
            }
            #[cfg(not(target_os = "linux"))]
            let _ = (file, zero_fill);
            st.populated = to;
        }
        // SAFETY: `[pos, end)` lies inside the mapping and inside the file's
        // backed prefix (allocated on disk, below its length), so the copy
        // touches no page past the end of the file and needs no block the
        // disk could lack. The mutex held here excludes other copies and
        // shrinks of this file; readers never look at bytes past the
        // published end, which is where the writer writes (module docs).
        // `buf` is caller memory, not the mapping, so they do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                buf.as_ptr(),
                map.as_mut_ptr().add(pos as usize),
                buf.len(),
            );
        }
        true
    }
}

/// How far ahead of a write an fsync follows the file is written with
/// zeros: one fsync in this many bytes writes the zeros, and the fsyncs of
/// the writes after it, into blocks already written, commit no metadata.
#[cfg(target_os = "linux")]
const SYNC_ZERO_CHUNK: u64 = 1 << 20;

/// Zeros `pwrite`s fill a window with (read from the zero page: this
/// takes address space, not memory).
#[cfg(target_os = "linux")]
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// Writes zeros over `[from, to)` of `file`, bytes that read as zeros
/// already (allocated by `fallocate`, never written, or written with zeros)
/// and hold no data: it changes no byte of the file. It makes the kernel
/// create their page-cache pages the way a write does, in large folios
/// and without reading them, where faulting them in through the map
/// (`MADV_POPULATE_WRITE` alone) reads each around the fault, past every
/// old end of the file in single pages that each take their own
/// allocation, zero-fill and bookkeeping: measured on Linux 6.18, ext4,
/// 108 B copies, the window's kernel time per copy fell from 88 to 59 ns
/// (medians of 12). Best effort: on any error the populate reads the
/// pages as before (zeros either way).
#[cfg(target_os = "linux")]
fn fill_zeros(file: &File, from: u64, to: u64) {
    use std::os::unix::fs::FileExt;
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        if file.write_all_at(&ZEROS[..n], at).is_err() {
            return;
        }
        at += n as u64;
    }
}

//! Read-only memory maps: the crate's only `unsafe` code.
//!
//! # Safety argument
//!
//! A mapping is sound to read as long as no byte a reader looks at changes
//! underneath it and no page it touches lies past the end of the file.
//! embedlog upholds that as follows:
//!
//! - Log and index files are append-only while mapped: a writer only writes
//!   (with `pwrite`) past the *published* end, and readers only read below it.
//!   Bytes below the published end never change again.
//! - A file is never shrunk below its published end while this process maps
//!   it. Trimming an index's preallocated tail on roll only cuts bytes that
//!   were never published. Truncating a log (replication) writes a new file
//!   and renames it over the old one; the old inode, and every mapping of it,
//!   stays intact until the last reader drops it. Deleted segments are
//!   unlinked, which likewise leaves existing mappings valid.
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

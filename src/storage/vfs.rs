//! The file-system seam: every file operation that must survive faults goes
//! through these traits, so tests can inject I/O errors, full disks and
//! failed fsyncs. Production uses [`RealFs`].

use bytes::Bytes;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A directory tree of files.
pub(crate) trait Vfs: Send + Sync + Debug {
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;
    /// Creates a file (truncating any existing one) for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;
    /// Reads a whole (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Atomically renames `from` over `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes the directory's entries (creates, renames, deletes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// One open file.
pub(crate) trait VfsFile: Send + Sync + Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Writes all of `buf` at `pos`.
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// [`write_at`](Self::write_at) of an append an fsync of this file
    /// follows at once (`Durability::Sync`). The real file then writes as
    /// before the write map served batches and filled pages with zeros:
    /// batches of 4 KiB or more with `pwrite`, pages faulted in ahead
    /// without the zeros, since that fsync would write back every page
    /// dirtied ahead (the zeros) and write-protect every mapped page it
    /// cleans (the next copy into it faults).
    fn write_at_before_sync(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.write_at(buf, pos)
    }
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: makes written data (and the length) durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Maps `len` bytes read-only (may exceed the current length; bytes past
    /// the end must not be read).
    fn map(&self, len: u64) -> io::Result<Bytes>;
    /// Allocates disk blocks for bytes `[0, len)`, extending the file with
    /// zeros to `len` if it is shorter, so that a later write below `len`
    /// cannot run out of space: `ENOSPC` surfaces here, as an error. Writes
    /// below `len` may then be served by copying into a writable shared
    /// mapping of `map_len` bytes (made at the first call) instead of a
    /// `pwrite` each. Where the filesystem cannot promise that (copy-on-write
    /// ones, other systems) this does nothing and writes stay `pwrite`s.
    fn preallocate(&self, len: u64, map_len: u64) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: File,
    /// Serves writes inside the preallocated prefix (Linux, on filesystems
    /// where `fallocate` reserves what an overwrite needs).
    writes: super::mmap::WriteMap,
}

impl RealFile {
    fn new(file: File) -> Self {
        RealFile {
            file,
            writes: super::mmap::WriteMap::default(),
        }
    }
}

/// Writes shorter than this go through the write map; longer ones are
/// `pwrite`s even inside it. The map's pages are made ahead, in windows of
/// up to 4 MiB (`WriteMap::write`: filled with zeros, then faulted in), so
/// a copy into them takes no fault: a write of a few pages is then cheaper
/// as a copy than as a `pwrite`, which looks up, locks and dirties each
/// page-cache folio it fills (measured: 100-record batches of 100 B, about
/// 11 KB, 16.5 M records/s through the map, 9.5 M/s with this limit at
/// 4 KiB; medians of 7 runs). From about 64 KiB on, a `pwrite` fills large
/// folios and costs no more than the copy.
const MAP_WRITE_MAX: usize = 64 << 10;

/// [`MAP_WRITE_MAX`] of a write an fsync follows at once
/// (`write_at_before_sync`): after the fsync the pages it cleaned are
/// write-protected, so a copy of several pages takes a fault per page
/// (measured: `sync-100`, 100-record batches of 100 B each followed by an
/// fsync, 550 k records/s with `pwrite`s, 340 k/s with copies).
const SYNC_MAP_WRITE_MAX: usize = 4096;

/// Whether `file`'s filesystem allocates, on `fallocate`, every block a
/// later write through a mapping needs (so that write cannot fault for
/// space): ext4, XFS and tmpfs. Copy-on-write filesystems (btrfs, ZFS, ...)
/// may need new blocks for each overwrite, so they keep `pwrite`.
#[cfg(target_os = "linux")]
fn fallocate_reserves(file: &File) -> bool {
    const EXT4: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    const TMPFS: u64 = 0x0102_1994;
    rustix::fs::fstatfs(file).is_ok_and(|s| matches!(s.f_type as u64, EXT4 | XFS | TMPFS))
}

impl Vfs for RealFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealFile::new(f)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile::new(f)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            // Names that are not UTF-8 cannot be ours; they are skipped.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            // Windows has no directory fsync; renames are journaled by NTFS.
            let _ = dir;
            Ok(())
        }
    }
}

impl RealFile {
    /// `write_at`; `before_sync`: `write_at_before_sync`.
    fn write(&self, buf: &[u8], pos: u64, before_sync: bool) -> io::Result<()> {
        let max = if before_sync {
            SYNC_MAP_WRITE_MAX
        } else {
            MAP_WRITE_MAX
        };
        if buf.len() < max && self.writes.write(&self.file, buf, pos, !before_sync) {
            return Ok(());
        }
        if before_sync {
            self.writes
                .zero_ahead_of_sync(&self.file, pos, pos + buf.len() as u64);
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::write_all_at(&self.file, buf, pos)
        }
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                let n = std::os::windows::fs::FileExt::seek_write(
                    &self.file,
                    &buf[done..],
                    pos + done as u64,
                )?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                done += n;
            }
            Ok(())
        }
    }
}

impl VfsFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.write(buf, pos, false)
    }

    fn write_at_before_sync(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.write(buf, pos, true)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        // Mapped writes stop below the new length before the file shrinks.
        self.writes.shrink(len);
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        // On Linux this also writes back pages dirtied through the write
        // map (see `mmap.rs`, "Durability of mapped writes").
        self.file.sync_data()
    }

    fn map(&self, len: u64) -> io::Result<Bytes> {
        super::mmap::map(&self.file, len)
    }

    fn preallocate(&self, len: u64, map_len: u64) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            if !fallocate_reserves(&self.file) {
                return Ok(());
            }
            // Mode 0: allocates the range and extends the length to cover
            // it; blocks already there stay as they are.
            rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len)?;
            self.writes.extend(&self.file, len, map_len)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (len, map_len);
            Ok(())
        }
    }
}

/// Writes `data` to `path` atomically: a temporary file is written and
/// fsync'd, renamed over `path`, and the directory fsync'd. After a crash the
/// file holds either the old or the new contents, never a mix.
pub(crate) fn write_atomic(vfs: &dyn Vfs, path: &Path, data: &[u8]) -> crate::Result<()> {
    let tmp = tmp_path(path);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let f = vfs
        .create(&tmp)
        .map_err(|e| crate::Error::io("create", &tmp, e))?;
    f.write_at(data, 0)
        .map_err(|e| crate::Error::io("write", &tmp, e))?;
    f.sync_data()
        .map_err(|e| crate::Error::io("fsync", &tmp, e))?;
    drop(f);
    vfs.rename(&tmp, path)
        .map_err(|e| crate::Error::io("rename", path, e))?;
    vfs.sync_dir(dir)
        .map_err(|e| crate::Error::io("fsync directory", dir, e))?;
    Ok(())
}

/// The temporary name `write_atomic` uses for `path`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// A file handle that can be released once the file will not be written or
/// fsync'd again: its bytes stay reachable through the memory map, and a log
/// of many segments does not hold three descriptors per segment.
///
/// I/O runs under a shared (read) lock, so an fsync never blocks a
/// concurrent write (group commit depends on that); only `release` takes it
/// exclusively.
#[derive(Debug)]
pub(crate) struct Handle {
    file: parking_lot::RwLock<Option<Box<dyn VfsFile>>>,
}

impl Handle {
    pub(crate) fn new(file: Box<dyn VfsFile>) -> Self {
        Handle {
            file: parking_lot::RwLock::new(Some(file)),
        }
    }

    /// Runs `f` on the open file.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&dyn VfsFile) -> io::Result<T>) -> io::Result<T> {
        match &*self.file.read() {
            Some(file) => f(&**file),
            None => Err(io::Error::other(
                "the segment's file handle was released (the segment is complete)",
            )),
        }
    }

    /// `fdatasync`; a released file was fsync'd before it was released.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        match &*self.file.read() {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// Closes the descriptor. Only for files that are complete and fsync'd.
    pub(crate) fn release(&self) {
        self.file.write().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes of every size at the end of a preallocated file, copies into
    /// its map and `pwrite`s mixed, some followed by an fsync: every byte
    /// lands, and the zeros a copy fills its window ahead with, or a write
    /// an fsync follows writes ahead of itself, never cover one. (The `pwrite` of
    /// 200 000 bytes ends past the window the first copies faulted in; the
    /// copy after it must fill from its own start, not the window's end.)
    #[test]
    fn copies_and_pwrites_at_the_end_keep_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = RealFs.create(&path).unwrap();
        f.preallocate(8 << 20, 16 << 20).unwrap();
        let mut model = Vec::new();
        let sizes = [
            100,
            3000,
            MAP_WRITE_MAX + 1000,
            200_000,
            50,
            70_000,
            10,
            MAP_WRITE_MAX - 1,
            5000,
        ];
        // Twice: buffered writes, then writes an fsync follows (4 KiB and
        // more with `pwrite`, no zeros) mixed with buffered ones.
        for round in 0..2 {
            for (i, len) in sizes.into_iter().enumerate() {
                let data = vec![i as u8 + 1; len];
                if round == 1 && i % 2 == 0 {
                    f.write_at_before_sync(&data, model.len() as u64).unwrap();
                    f.sync_data().unwrap();
                } else {
                    f.write_at(&data, model.len() as u64).unwrap();
                }
                model.extend_from_slice(&data);
            }
        }
        // Writes an fsync follows write zeros 1 MiB ahead of themselves;
        // buffered writes past that, then more synced ones: the zeros start
        // at the end of the data, never below it.
        for (i, (len, synced)) in [
            (5000, true),
            (1_500_000, false),
            (6000, true),
            (100, false),
            (70_000, true),
            (900_000, false),
            (4096, true),
        ]
        .into_iter()
        .enumerate()
        {
            let data = vec![0x40 + i as u8; len];
            if synced {
                f.write_at_before_sync(&data, model.len() as u64).unwrap();
                f.sync_data().unwrap();
            } else {
                f.write_at(&data, model.len() as u64).unwrap();
            }
            model.extend_from_slice(&data);
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 8 << 20);
        assert!(bytes[..model.len()] == model[..], "a written byte changed");
        assert!(bytes[model.len()..].iter().all(|&b| b == 0));
    }
}

//! A fault-injecting file system for tests and fuzzing: wraps [`RealFs`],
//! fails chosen operations with a chosen error, and simulates crashes that
//! keep, drop or tear each write made since the file's last fsync.
//!
//! Compiled for tests and with the `fault-injection` feature (the fuzz
//! targets use it); not part of the public API.

use super::vfs::{RealFs, Vfs, VfsFile};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Which operation to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `pwrite` to any file.
    Write,
    /// `fdatasync` of a file or fsync of a directory.
    Sync,
    /// `ftruncate` (set_len).
    SetLen,
    /// `rename`.
    Rename,
    /// `unlink` of a file.
    Remove,
    /// `fallocate` (preallocate), e.g. with `ENOSPC`.
    Preallocate,
}

/// A write or resize made since the file's last fsync.
#[derive(Debug, Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
    /// Extends the file with zeros to at least this length.
    Preallocate(u64),
}

#[derive(Debug, Default)]
struct History {
    /// The contents an fsync made durable (`None`: never synced; the file
    /// had these contents when first seen).
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

/// What a crash does to each unsynced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write survives (a process crash: the OS has them).
    KeepAll,
    /// Every unsynced write is lost.
    DropAll,
    /// Each unsynced write is kept, dropped, or torn (a prefix kept), at
    /// random from the seed (a power loss).
    Random(u64),
}

/// Fault and crash control shared by every file of a [`FaultyFs`].
#[derive(Debug, Default)]
pub struct Faults {
    countdown: AtomicI64,
    op: Mutex<Option<(Op, io::ErrorKind, bool)>>,
    tripped: AtomicBool,
    /// Operations seen, per kind (to count distinct fault points).
    seen: Mutex<HashMap<Op, u64>>,
    histories: Mutex<HashMap<PathBuf, History>>,
    crashes: AtomicU64,
    /// The most bytes one whole-file read returned.
    largest_read: AtomicU64,
}

impl Faults {
    /// Fails the `nth` (0-based) next `op` with `kind`; with `persistent`,
    /// every one after it too.
    pub fn fail(&self, op: Op, nth: i64, kind: io::ErrorKind, persistent: bool) {
        *self.op.lock() = Some((op, kind, persistent));
        self.countdown.store(nth, Ordering::SeqCst);
        self.tripped.store(false, Ordering::SeqCst);
    }

    /// Stops failing.
    pub fn clear(&self) {
        *self.op.lock() = None;
    }

    /// Whether the armed fault fired.
    #[cfg_attr(not(test), allow(dead_code))] // used by the tests
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// The most bytes one whole-file read ([`Vfs::read`], which reads
    /// into memory, unlike a memory map) returned so far.
    #[cfg_attr(not(test), allow(dead_code))] // used by the tests
    pub fn largest_read(&self) -> u64 {
        self.largest_read.load(Ordering::SeqCst)
    }

    /// How many operations of `op` were attempted so far.
    #[cfg_attr(not(test), allow(dead_code))] // used by the tests
    pub fn seen(&self, op: Op) -> u64 {
        self.seen.lock().get(&op).copied().unwrap_or(0)
    }

    fn check(&self, op: Op) -> io::Result<()> {
        *self.seen.lock().entry(op).or_default() += 1;
        let g = self.op.lock();
        let Some((fop, kind, persistent)) = *g else {
            return Ok(());
        };
        if fop != op {
            return Ok(());
        }
        let left = self.countdown.fetch_sub(1, Ordering::SeqCst);
        if left <= 0 && (persistent || left == 0) {
            self.tripped.store(true, Ordering::SeqCst);
            return Err(io::Error::from(kind));
        }
        Ok(())
    }

    fn track(&self, path: &Path) {
        let mut h = self.histories.lock();
        if !h.contains_key(path) {
            let durable = std::fs::read(path).unwrap_or_default();
            h.insert(
                path.to_path_buf(),
                History {
                    durable,
                    pending: Vec::new(),
                },
            );
        }
    }

    fn record(&self, path: &Path, p: Pending) {
        if let Some(h) = self.histories.lock().get_mut(path) {
            h.pending.push(p);
        }
    }

    fn synced(&self, path: &Path) {
        if let Some(h) = self.histories.lock().get_mut(path) {
            h.durable = std::fs::read(path).unwrap_or_default();
            h.pending.clear();
        }
    }

    /// Rewrites every tracked file as a crash would leave it. The handles
    /// using these files must be gone (dropped without closing) first.
    pub fn crash(&self, mode: CrashMode) {
        self.crashes.fetch_add(1, Ordering::SeqCst);
        let mut rng = match mode {
            CrashMode::Random(seed) => seed | 1,
            _ => 1,
        };
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut h = self.histories.lock();
        for (path, hist) in h.iter_mut() {
            if !path.exists() {
                continue;
            }
            let mut image = hist.durable.clone();
            for p in hist.pending.drain(..) {
                let choice = match mode {
                    CrashMode::KeepAll => 0,
                    CrashMode::DropAll => 1,
                    CrashMode::Random(_) => next() % 3,
                };
                match (p, choice) {
                    (_, 1) => {}
                    (Pending::SetLen(n), _) => image.resize(n as usize, 0),
                    // A torn preallocation extends the file part of the way.
                    (Pending::Preallocate(n), c) => {
                        let n = n as usize;
                        let to = if c == 2 && n > image.len() {
                            image.len() + (next() as usize) % (n - image.len() + 1)
                        } else {
                            n
                        };
                        if image.len() < to {
                            image.resize(to, 0);
                        }
                    }
                    (Pending::Write(pos, data), c) => {
                        let keep = if c == 2 {
                            (next() as usize) % (data.len() + 1)
                        } else {
                            data.len()
                        };
                        let end = pos as usize + keep;
                        if image.len() < end {
                            image.resize(end, 0);
                        }
                        image[pos as usize..end].copy_from_slice(&data[..keep]);
                    }
                }
            }
            let _ = std::fs::write(path, &image);
            hist.durable = image;
        }
    }
}

/// The fault-injecting file system.
#[derive(Debug, Clone, Default)]
pub struct FaultyFs {
    /// Shared control.
    pub faults: Arc<Faults>,
}

#[derive(Debug)]
struct FaultyFile {
    path: PathBuf,
    inner: Box<dyn VfsFile>,
    faults: Arc<Faults>,
}

impl Vfs for FaultyFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        self.faults.track(path);
        Ok(Box::new(FaultyFile {
            path: path.to_path_buf(),
            inner: RealFs.open(path)?,
            faults: self.faults.clone(),
        }))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        self.faults.track(path);
        self.faults.record(path, Pending::SetLen(0));
        Ok(Box::new(FaultyFile {
            path: path.to_path_buf(),
            inner: RealFs.create(path)?,
            faults: self.faults.clone(),
        }))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let data = RealFs.read(path)?;
        self.faults
            .largest_read
            .fetch_max(data.len() as u64, Ordering::SeqCst);
        Ok(data)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.faults.check(Op::Rename)?;
        RealFs.rename(from, to)?;
        let mut h = self.faults.histories.lock();
        if let Some(hist) = h.remove(from) {
            h.insert(to.to_path_buf(), hist);
        } else {
            h.remove(to);
        }
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.faults.check(Op::Remove)?;
        RealFs.remove_file(path)?;
        self.faults.histories.lock().remove(path);
        Ok(())
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        RealFs.create_dir_all(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        RealFs.list(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.faults.check(Op::Sync)?;
        RealFs.sync_dir(dir)
    }
}

impl VfsFile for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.faults.check(Op::Write)?;
        self.inner.write_at(buf, pos)?;
        self.faults
            .record(&self.path, Pending::Write(pos, buf.to_vec()));
        Ok(())
    }
    fn write_at_before_sync(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.faults.check(Op::Write)?;
        self.inner.write_at_before_sync(buf, pos)?;
        self.faults
            .record(&self.path, Pending::Write(pos, buf.to_vec()));
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.check(Op::SetLen)?;
        self.inner.set_len(len)?;
        self.faults.record(&self.path, Pending::SetLen(len));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.check(Op::Sync)?;
        self.inner.sync_data()?;
        self.faults.synced(&self.path);
        Ok(())
    }
    fn map(&self, len: u64) -> io::Result<Bytes> {
        self.inner.map(len)
    }
    fn preallocate(&self, len: u64, map_len: u64) -> io::Result<()> {
        self.faults.check(Op::Preallocate)?;
        self.inner.preallocate(len, map_len)?;
        self.faults.record(&self.path, Pending::Preallocate(len));
        Ok(())
    }
}

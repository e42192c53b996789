//! The lock that makes one handle in one process the owner of a directory.
//!
//! It is a POSIX record lock (`fcntl(F_SETLK)`) on the whole lock file,
//! plus a registry of the lock files this process holds. Record locks
//! belong to the process: a child does not inherit them. A `flock` lock
//! (what `File::try_lock` takes) belongs to the open file description,
//! which every child shares from its `fork` until its `exec` closes the
//! descriptor; a directory its owner has just closed then still looks held
//! to the next opener, for as long as some child of the old owner takes to
//! start. Kafka's `FileChannel.tryLock` is a record lock for the same
//! reason.
//!
//! Record locks do not exclude other handles in the same process, so the
//! registry does; and closing *any* descriptor of a locked file releases
//! the process's lock on it, so nothing else in this crate opens a lock
//! file, and a second opener in this process is turned away by the
//! registry before it opens one.

use parking_lot::Mutex;
use rustix::fs::FlockOperation;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Lock files this process holds, by device and inode.
static HELD: Mutex<Option<HashSet<(u64, u64)>>> = Mutex::new(None);

/// A held directory lock; dropping it releases it.
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
    key: (u64, u64),
}

impl DirLock {
    /// Takes the lock on the file at `path` (created if missing) without
    /// waiting; `Ok(None)` if another handle, in this process or another,
    /// holds it.
    pub(crate) fn acquire(path: &Path) -> io::Result<Option<DirLock>> {
        let mut held = HELD.lock();
        let held = held.get_or_insert_with(HashSet::new);
        // Checked before opening: opening and closing the file would drop
        // the lock this process already holds on it.
        match std::fs::metadata(path) {
            Ok(m) if held.contains(&(m.dev(), m.ino())) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        let m = file.metadata()?;
        let key = (m.dev(), m.ino());
        if held.contains(&key) {
            // Created under another name meanwhile (a rename): ours after
            // all. Dropping `file` would release it; keep it open instead.
            std::mem::forget(file);
            return Ok(None);
        }
        match rustix::fs::fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        held.insert(key);
        Ok(Some(DirLock { file, key }))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Unlocked before the registry forgets it, so no other handle of
        // this process can take it while it is still ours; closing the
        // descriptor (after this) releases it too.
        let _ = rustix::fs::fcntl_lock(&self.file, FlockOperation::NonBlockingUnlock);
        if let Some(held) = HELD.lock().as_mut() {
            held.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_process_and_free_again_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let a = DirLock::acquire(&path).unwrap().expect("free");
        assert!(
            DirLock::acquire(&path).unwrap().is_none(),
            "held in this process"
        );
        // The refused attempt did not release the holder's lock: still held.
        assert!(DirLock::acquire(&path).unwrap().is_none());
        drop(a);
        let b = DirLock::acquire(&path).unwrap().expect("free after drop");
        drop(b);
    }
}

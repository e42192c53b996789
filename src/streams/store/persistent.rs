//! [`PersistentStore`]: a [`BytesStore`] on disk (feature
//! `streams-persistent`), for state larger than memory that outlives the
//! process; and the [`Stores`] constructors that use it.
//!
//! The data lives in one redb file, `<dir>/store.redb` (a copy-on-write
//! B-tree with checksummed pages, one table of key bytes → value bytes).
//! Writes do not each pay a transaction: they go to a sorted buffer in
//! memory, which reads and ranges merge with the file, and which
//! [`flush`](BytesStore::flush) writes in one durable transaction (the
//! runtime flushes before it checkpoints a commit). A buffer grown past
//! [`PersistentStoreConfig::buffer_bytes`] is written early in a
//! non-durable transaction (no fsync), so memory stays bounded whatever
//! the commit interval.
//!
//! What survives a crash or a drop: see [`PersistentStore`].

use super::{BytesStore, StoreSpec, Stores};
use crate::storage::vfs::{RealFs, Vfs};
use crate::streams::serde::SerdeRef;
use crate::{Error, Result};
use bytes::Bytes;
use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError,
};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::iter::Peekable;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The store's file in its directory.
pub(crate) const FILE_NAME: &str = "store.redb";

/// The one table: key bytes → value bytes.
const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("entries");

/// What a buffered entry costs besides its bytes (map node share, `Bytes`
/// headers), for the buffer's budget.
const ENTRY_OVERHEAD: usize = 48;

type Reader = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// How a [`PersistentStore`] uses memory.
///
/// ```
/// use embedlog::streams::PersistentStoreConfig;
///
/// let config = PersistentStoreConfig::default()
///     .cache_bytes(64 << 20)
///     .buffer_bytes(8 << 20);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistentStoreConfig {
    cache_bytes: usize,
    buffer_bytes: usize,
}

impl Default for PersistentStoreConfig {
    fn default() -> Self {
        PersistentStoreConfig {
            cache_bytes: 16 << 20,
            buffer_bytes: 4 << 20,
        }
    }
}

impl PersistentStoreConfig {
    /// The most memory the file's page cache takes (redb's cache size).
    /// Default: 16 MiB (each store of each task has its own).
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The most memory writes take between flushes, counting each entry's
    /// key and value plus 48 bytes; past it, the buffered writes go to
    /// the file in a non-durable transaction (no fsync; a crash loses
    /// them, as it loses the buffer). 0 writes every put and delete at
    /// once. Default: 4 MiB.
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }
}

/// A store on disk, sorted by key bytes: state larger than memory that
/// outlives the process. One handle at a time: a second open of the same
/// directory (in this or another process) fails with [`Error::Locked`].
///
/// The data lives in one redb file, `<dir>/store.redb`. Writes go to a
/// sorted buffer in memory, which reads and ranges merge with the file,
/// and which [`flush`](BytesStore::flush) writes in one durable
/// transaction; a buffer grown past
/// [`PersistentStoreConfig::buffer_bytes`] is written early, in a
/// non-durable transaction (no fsync).
///
/// # What survives
///
/// - After `flush` returns, every write made before it survives a crash
///   (`kill -9`) and a power loss.
/// - A crash loses every write made since the last `flush`.
/// - Dropping (or [`close`](PersistentStore::close)-ing) the store without
///   `flush` loses the writes still in the buffer and keeps those written
///   early: reopened, the store holds its state as of the last `flush` or
///   of the last early write of the buffer, whichever came later.
///
/// That is what a store restored from a changelog checkpoint needs, as
/// with Kafka's RocksDB stores (whose memtables also reach disk between
/// commits): the runtime flushes before it writes the checkpoint, so the
/// store holds at least what the checkpoint says, and replaying the
/// changelog from there brings it to the changelog's end. Under
/// exactly-once the runtime deletes the checkpoint while a task runs and
/// wipes a store it finds without one.
///
/// Topologies get one per task through
/// [`Stores::persistent_key_value`] (and `_window`, `_session`) or
/// [`Materialized::persistent`](crate::streams::Materialized::persistent).
///
/// ```
/// use embedlog::streams::{BytesStore, PersistentStore};
/// use bytes::Bytes;
///
/// let dir = tempfile::tempdir()?;
/// let mut store = PersistentStore::open(dir.path())?;
/// store.put(Bytes::from("k"), Bytes::from("v"))?;
/// store.flush()?; // durable from here on
/// drop(store);
/// let store = PersistentStore::open(dir.path())?;
/// assert_eq!(store.get(b"k")?, Some(Bytes::from("v")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PersistentStore {
    /// The redb file.
    path: PathBuf,
    /// A snapshot of the file as of the last commit (None while a write
    /// transaction runs, or after one failed to reopen it). Declared before
    /// `db`, so that it is dropped first and the database closes with no
    /// read in progress.
    reader: Option<Reader>,
    db: Database,
    /// Writes since the last commit: a value, or None for a delete.
    buffer: BTreeMap<Bytes, Option<Bytes>>,
    buffer_bytes: usize,
    max_buffer_bytes: usize,
    /// Whether a non-durable commit was made since the last durable one.
    unsynced: bool,
}

impl fmt::Debug for PersistentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistentStore")
            .field("path", &self.path)
            .field("buffered", &self.buffer.len())
            .field("buffer_bytes", &self.buffer_bytes)
            .finish_non_exhaustive()
    }
}

impl PersistentStore {
    /// Opens the store in `dir` (created if missing) with the default
    /// [`PersistentStoreConfig`].
    ///
    /// # Errors
    /// [`Error::Locked`] if another handle (in this or another process)
    /// has it open; [`Error::Corrupt`] if its file is damaged or is not a
    /// store (delete the directory: the store is then restored from its
    /// changelog); [`Error::Io`] naming the path and operation otherwise.
    pub fn open(dir: &Path) -> Result<PersistentStore> {
        PersistentStore::open_with(dir, PersistentStoreConfig::default())
    }

    /// Opens the store in `dir` (created if missing) with `config`.
    ///
    /// Every open verifies the checksums of the whole file (reading it
    /// once: the price of opening a large store), so a file damaged
    /// outside the store is reported as [`Error::Corrupt`], not used.
    /// After a crash the open returns to the last durable commit.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(dir: &Path, config: PersistentStoreConfig) -> Result<PersistentStore> {
        let created = create_dirs(dir)?;
        let path = dir.join(FILE_NAME);
        let db = redb::Builder::new()
            .set_cache_size(config.cache_bytes)
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| redb_error("open", &path, e))?;
        let mut store = PersistentStore {
            path,
            reader: None,
            db,
            buffer: BTreeMap::new(),
            buffer_bytes: 0,
            max_buffer_bytes: config.buffer_bytes,
            unsynced: false,
        };
        store.reader = Some(match store.open_reader()? {
            Some(r) => r,
            None => {
                // A new file: its table exists from the first commit on.
                store.write(Durability::Immediate, |txn| {
                    txn.open_table(TABLE)?;
                    Ok(())
                })?;
                store.open_reader()?.ok_or_else(|| {
                    Error::corrupt(
                        &store.path,
                        0,
                        "the store's table is missing after its creation",
                    )
                })?
            }
        });
        // The file's (and new directories') names are durable too.
        let fs = RealFs;
        for d in created.iter().chain(std::iter::once(&dir.to_path_buf())) {
            fs.sync_dir(d)
                .map_err(|e| Error::io("fsync directory", d, e))?;
        }
        Ok(store)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the store, reporting what dropping it would ignore. Writes
    /// not flushed are lost as on a drop (see [What
    /// survives](PersistentStore#what-survives)): call
    /// [`flush`](BytesStore::flush) first to keep them.
    ///
    /// # Errors
    /// [`Error::Io`] if the file could not be closed cleanly (the next open
    /// then recovers it to its last durable commit).
    pub fn close(mut self) -> Result<()> {
        self.reader = None;
        let path = self.path.clone();
        self.db.close().map_err(|e| redb_error("close", &path, e))
    }

    /// A snapshot of the table as of the last commit; None if the table
    /// was never created.
    fn open_reader(&self) -> Result<Option<Reader>> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| redb_error("begin a read of", &self.path, e))?;
        match txn.open_table(TABLE) {
            Ok(t) => Ok(Some(t)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(redb_error("open the table of", &self.path, e)),
        }
    }

    /// Runs `f` on the snapshot of the last commit.
    fn read<T>(&self, f: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        match &self.reader {
            Some(r) => f(r),
            None => match self.open_reader()? {
                Some(r) => f(&r),
                None => Err(Error::corrupt(
                    &self.path,
                    0,
                    "the store's table is missing",
                )),
            },
        }
    }

    /// Runs `f` in a write transaction of `durability` and commits it,
    /// then takes a new snapshot. The snapshot is dropped first, so the
    /// pages the commit frees can be reused by the next one.
    fn write(
        &mut self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> std::result::Result<(), redb::Error>,
    ) -> Result<()> {
        self.reader = None;
        let path = &self.path;
        let result = (|| {
            let mut txn = self
                .db
                .begin_write()
                .map_err(|e| redb_error("begin a write of", path, e))?;
            txn.set_durability(durability)
                .map_err(|e| redb_error("write", path, e))?;
            if matches!(durability, Durability::Immediate) {
                // The file's primary commit is then always whole after a
                // crash, so an open that finds it damaged reports it
                // (Corrupt) instead of falling back to the commit before.
                txn.set_two_phase_commit(true);
            }
            f(&txn).map_err(|e| redb_error("write", path, e))?;
            txn.commit().map_err(|e| redb_error("commit", path, e))
        })();
        match (result, self.open_reader()) {
            (Ok(()), reopened) => {
                self.reader = reopened?;
                Ok(())
            }
            (Err(e), reopened) => {
                self.reader = reopened.ok().flatten();
                Err(e)
            }
        }
    }

    /// Writes the buffer to the file in one transaction.
    fn write_buffer(&mut self, durability: Durability) -> Result<()> {
        let buffer = std::mem::take(&mut self.buffer);
        let result = self.write(durability, |txn| {
            let mut table = txn.open_table(TABLE)?;
            for (k, v) in &buffer {
                match v {
                    Some(v) => {
                        table.insert(k.as_ref(), v.as_ref())?;
                    }
                    None => {
                        table.remove(k.as_ref())?;
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.buffer_bytes = 0;
                Ok(())
            }
            Err(e) => {
                // The writes stay buffered (and if the commit went
                // through before the error, writing them again is
                // harmless).
                self.buffer = buffer;
                Err(e)
            }
        }
    }

    fn buffer_write(&mut self, key: Bytes, value: Option<Bytes>) -> Result<()> {
        let size = |k: &Bytes, v: &Option<Bytes>| k.len() + v.as_ref().map_or(0, Bytes::len);
        self.buffer_bytes += size(&key, &value) + ENTRY_OVERHEAD;
        let key_len = key.len();
        if let Some(old) = self.buffer.insert(key, value) {
            let old = key_len + old.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD;
            self.buffer_bytes = self.buffer_bytes.saturating_sub(old);
        }
        if self.buffer_bytes > self.max_buffer_bytes {
            self.write_buffer(Durability::None)?;
            self.unsynced = true;
        }
        Ok(())
    }
}

impl BytesStore for PersistentStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(v) = self.buffer.get(key) {
            return Ok(v.clone());
        }
        self.read(|r| {
            let v = r.get(key).map_err(|e| redb_error("read", &self.path, e))?;
            Ok(v.map(|g| Bytes::copy_from_slice(g.value())))
        })
    }

    fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        self.buffer_write(key, Some(value))
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.buffer_write(Bytes::copy_from_slice(key), None)
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(Bytes, Bytes)>> {
        if empty_range(from, to) {
            return Ok(Vec::new());
        }
        let buffered = self.buffer.range::<[u8], _>((from, to));
        self.read(|r| {
            let on_disk = r
                .range((from, to))
                .map_err(|e| redb_error("read", &self.path, e))?
                .map(|row| {
                    let (k, v) = row.map_err(|e| redb_error("read", &self.path, e))?;
                    Ok((
                        Bytes::copy_from_slice(k.value()),
                        Bytes::copy_from_slice(v.value()),
                    ))
                });
            merge(on_disk.peekable(), buffered.peekable())
        })
    }

    fn len(&self) -> usize {
        let counted = self.read(|r| {
            let mut n = r.len().map_err(|e| redb_error("read", &self.path, e))?;
            for (k, v) in &self.buffer {
                let on_disk = r
                    .get(k.as_ref())
                    .map_err(|e| redb_error("read", &self.path, e))?
                    .is_some();
                match (v.is_some(), on_disk) {
                    (true, false) => n += 1,
                    (false, true) => n = n.saturating_sub(1),
                    _ => {}
                }
            }
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        });
        counted.unwrap_or_else(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "could not count a persistent store's entries");
            self.buffer.values().filter(|v| v.is_some()).count()
        })
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() && !self.unsynced {
            return Ok(());
        }
        // With an empty buffer, an empty durable commit makes the
        // non-durable ones before it durable.
        self.write_buffer(Durability::Immediate)?;
        self.unsynced = false;
        Ok(())
    }

    fn persistent(&self) -> bool {
        true
    }

    fn clear(&mut self) -> Result<()> {
        self.buffer.clear();
        self.buffer_bytes = 0;
        self.write(Durability::Immediate, |txn| {
            txn.delete_table(TABLE)?;
            txn.open_table(TABLE)?;
            Ok(())
        })?;
        self.unsynced = false;
        Ok(())
    }
}

/// Whether the bounds hold no key (`BTreeMap::range` panics on some such).
fn empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

/// Merges rows of the file with buffered writes, both in key order: a
/// buffered value replaces the file's, a buffered delete hides it.
fn merge<'a>(
    mut disk: Peekable<impl Iterator<Item = Result<(Bytes, Bytes)>>>,
    mut buffered: Peekable<impl Iterator<Item = (&'a Bytes, &'a Option<Bytes>)>>,
) -> Result<Vec<(Bytes, Bytes)>> {
    enum Next {
        Disk,
        Buffered,
        /// The same key in both: the buffered write wins.
        Both,
    }
    let mut out = Vec::new();
    loop {
        let next = match (disk.peek(), buffered.peek()) {
            (None, None) => break,
            (Some(Err(_)) | Some(Ok(_)), None) | (Some(Err(_)), Some(_)) => Next::Disk,
            (None, Some(_)) => Next::Buffered,
            (Some(Ok((dk, _))), Some((bk, _))) => match dk.cmp(*bk) {
                Ordering::Less => Next::Disk,
                Ordering::Equal => Next::Both,
                Ordering::Greater => Next::Buffered,
            },
        };
        match next {
            Next::Disk => {
                if let Some(row) = disk.next() {
                    out.push(row?);
                }
                continue;
            }
            Next::Both => {
                disk.next().transpose()?;
            }
            Next::Buffered => {}
        }
        if let Some((k, Some(v))) = buffered.next() {
            out.push((k.clone(), v.clone()));
        }
    }
    Ok(out)
}

/// Creates `dir` and its missing parents; returns the parents of those it
/// created (whose entries must be fsync'd), nearest last.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p);
        d = p.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    Ok(missing
        .iter()
        .rev()
        .filter_map(|p| p.parent())
        .map(|q| {
            if q.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                q.to_path_buf()
            }
        })
        .collect())
}

/// A redb error as the crate's: a lock held elsewhere is
/// [`Error::Locked`], damage [`Error::Corrupt`] (saying what to do), the
/// rest [`Error::Io`] naming `op` and `path`.
fn redb_error(op: &'static str, path: &Path, e: impl Into<redb::Error>) -> Error {
    let dir = path.parent().unwrap_or(path);
    let corrupt = |reason: String| {
        Error::corrupt(
            path,
            0,
            format!(
                "{reason}; delete {} to rebuild the store from its changelog",
                dir.display()
            ),
        )
    };
    match e.into() {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => Error::Locked {
            path: dir.to_path_buf(),
        },
        redb::Error::Corrupted(reason) => corrupt(reason),
        redb::Error::UpgradeRequired(version) => corrupt(format!(
            "the file has redb's format {version}, which this version does not read"
        )),
        // redb reports a file that is not a database this way.
        redb::Error::Io(e) if e.kind() == io::ErrorKind::InvalidData => corrupt(e.to_string()),
        redb::Error::Io(e) => Error::io(op, path, e),
        redb::Error::ValueTooLarge(n) => Error::InvalidArgument(format!(
            "a value of {n} bytes is larger than a persistent store takes (3 GiB)"
        )),
        other => Error::io(op, path, io::Error::other(other)),
    }
}

/// Opens a [`PersistentStore`] with the defaults, as a store supplier.
pub(crate) fn supplier(dir: &Path) -> Result<Box<dyn BytesStore>> {
    Ok(Box::new(PersistentStore::open(dir)?))
}

impl Stores {
    /// A key-value store on disk ([`PersistentStore`], default
    /// configuration), with a changelog: for state larger than memory, and
    /// restored after a restart from its checkpoint rather than from the
    /// changelog's beginning. (For another configuration:
    /// [`StoreSpec::with_storage`] with
    /// [`PersistentStore::open_with`].)
    ///
    /// ```
    /// use embedlog::streams::{Serdes, Stores};
    ///
    /// let spec = Stores::persistent_key_value("totals", Serdes::string(), Serdes::i64());
    /// assert_eq!(spec.name(), "totals");
    /// ```
    pub fn persistent_key_value<K: 'static, V: 'static>(
        name: impl Into<String>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreSpec {
        Stores::key_value(name, key_serde, value_serde).with_storage(true, supplier)
    }

    /// A window store on disk, as [`Stores::window`] otherwise (see
    /// [`persistent_key_value`](Self::persistent_key_value)).
    pub fn persistent_window<K: 'static, V: 'static>(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
        retain_duplicates: bool,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreSpec {
        Stores::window(
            name,
            retention,
            window_size,
            retain_duplicates,
            key_serde,
            value_serde,
        )
        .with_storage(true, supplier)
    }

    /// A session store on disk, as [`Stores::session`] otherwise (see
    /// [`persistent_key_value`](Self::persistent_key_value)).
    pub fn persistent_session<K: 'static, V: 'static>(
        name: impl Into<String>,
        retention: Duration,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreSpec {
        Stores::session(name, retention, key_serde, value_serde).with_storage(true, supplier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn all(s: &PersistentStore) -> Vec<(Bytes, Bytes)> {
        s.range(Bound::Unbounded, Bound::Unbounded).unwrap()
    }

    fn rows(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
        pairs.iter().map(|(k, v)| (b(k), b(v))).collect()
    }

    #[test]
    fn flushed_writes_outlive_the_handle_and_buffered_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PersistentStore::open(dir.path()).unwrap();
        assert!(s.persistent() && s.is_empty());
        s.put(b("a"), b("1")).unwrap();
        s.put(b("b"), b("2")).unwrap();
        s.flush().unwrap();
        s.put(b("c"), b("3")).unwrap();
        s.delete(b"a").unwrap();
        assert_eq!(all(&s), rows(&[("b", "2"), ("c", "3")]));
        assert_eq!(s.len(), 2);
        drop(s);
        let s = PersistentStore::open(dir.path()).unwrap();
        assert_eq!(all(&s), rows(&[("a", "1"), ("b", "2")]), "as of the flush");
        assert_eq!(s.get(b"a").unwrap(), Some(b("1")));
        assert_eq!(s.get(b"c").unwrap(), None);
        s.close().unwrap();
    }

    #[test]
    fn ranges_merge_the_buffer_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PersistentStore::open(dir.path()).unwrap();
        for k in ["b", "d", "f", "h"] {
            s.put(b(k), b("disk")).unwrap();
        }
        s.flush().unwrap();
        s.put(b("a"), b("new")).unwrap(); // before every file key
        s.delete(b"d").unwrap(); // hides a file key
        s.put(b("f"), b("new")).unwrap(); // replaces one
        s.put(b("g"), b("new")).unwrap(); // between two
        s.delete(b"x").unwrap(); // deletes nothing
        s.put(b("z"), b("new")).unwrap(); // after every file key
        assert_eq!(
            all(&s),
            rows(&[
                ("a", "new"),
                ("b", "disk"),
                ("f", "new"),
                ("g", "new"),
                ("h", "disk"),
                ("z", "new"),
            ])
        );
        assert_eq!(s.len(), 6);
        let r = |from, to| s.range(from, to).unwrap();
        use Bound::{Excluded, Included, Unbounded};
        assert_eq!(
            r(Excluded(&b"b"[..]), Included(&b"h"[..])),
            rows(&[("f", "new"), ("g", "new"), ("h", "disk")])
        );
        assert_eq!(
            r(Included(&b"c"[..]), Excluded(&b"g"[..])),
            rows(&[("f", "new")])
        );
        assert_eq!(r(Included(&b"d"[..]), Included(&b"d"[..])), vec![]);
        assert_eq!(r(Unbounded, Excluded(&b"b"[..])), rows(&[("a", "new")]));
        // Empty and reversed bounds hold nothing (and do not panic).
        assert_eq!(r(Excluded(&b"f"[..]), Excluded(&b"f"[..])), vec![]);
        assert_eq!(r(Included(&b"z"[..]), Included(&b"a"[..])), vec![]);
        // The same after the buffer reached the file.
        let before = all(&s);
        s.flush().unwrap();
        assert_eq!(all(&s), before);
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn a_small_buffer_is_written_early_and_kept_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let config = PersistentStoreConfig::default().buffer_bytes(200);
        let mut s = PersistentStore::open_with(dir.path(), config).unwrap();
        for i in 0..100 {
            s.put(Bytes::from(format!("k{i:03}")), Bytes::from(vec![b'v'; 10]))
                .unwrap();
            assert!(s.buffer_bytes <= 200, "{}", s.buffer_bytes);
        }
        assert!(s.unsynced);
        assert_eq!(s.len(), 100);
        s.close().unwrap();
        // Written early (non-durable) then made durable by the clean close;
        // only the writes still buffered are lost.
        let s = PersistentStore::open_with(dir.path(), config).unwrap();
        let n = s.len();
        assert!((95..=100).contains(&n), "{n}");
        assert_eq!(
            all(&s)[..n],
            (0..n)
                .map(|i| (Bytes::from(format!("k{i:03}")), Bytes::from(vec![b'v'; 10])))
                .collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn clear_empties_file_and_buffer_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PersistentStore::open(dir.path()).unwrap();
        s.put(b("a"), b("1")).unwrap();
        s.flush().unwrap();
        s.put(b("b"), b("2")).unwrap();
        s.clear().unwrap();
        assert!(s.is_empty() && all(&s).is_empty());
        s.put(b("c"), b("3")).unwrap();
        drop(s);
        let mut s = PersistentStore::open(dir.path()).unwrap();
        assert!(s.is_empty(), "the clear was durable");
        s.put(b("d"), b("4")).unwrap();
        s.flush().unwrap();
        assert_eq!(all(&s), rows(&[("d", "4")]));
    }

    #[test]
    fn a_second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let s = PersistentStore::open(dir.path()).unwrap();
        let e = PersistentStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(&e, Error::Locked { path } if path == dir.path()),
            "{e:?}"
        );
        drop(s);
        PersistentStore::open(dir.path()).unwrap();
    }

    #[test]
    fn missing_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("0_1").join("counts");
        let mut s = PersistentStore::open(&deep).unwrap();
        s.put(b("k"), b("v")).unwrap();
        s.flush().unwrap();
        assert!(deep.join(FILE_NAME).exists());
        assert_eq!(s.path(), deep.join(FILE_NAME));
    }

    #[test]
    fn a_file_that_is_no_store_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for junk in [
            &b"not a database at all"[..],
            &[0u8; 5000][..],
            &[0xffu8; 70_000][..],
        ] {
            std::fs::write(&path, junk).unwrap();
            let e = PersistentStore::open(dir.path()).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(
                msg.contains("rebuild the store from its changelog"),
                "{msg}"
            );
        }
    }

    #[test]
    fn an_unreadable_directory_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let e = PersistentStore::open(&file.join("store")).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Io {
                    op: "create directory",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("plain-file"), "{e}");
    }

    /// A damaged file opens as one of the states it committed, or fails
    /// with an error: never a panic, never other data.
    #[test]
    fn damage_is_an_error_or_a_committed_state() {
        let dir = tempfile::tempdir().unwrap();
        let first = rows(&[("a", "1"), ("b", "2")]);
        let second = rows(&[("a", "1"), ("b", "20"), ("c", "3")]);
        {
            let mut s = PersistentStore::open(dir.path()).unwrap();
            s.put(b("a"), b("1")).unwrap();
            s.put(b("b"), b("2")).unwrap();
            s.flush().unwrap();
            s.put(b("b"), b("20")).unwrap();
            s.put(b("c"), b("3")).unwrap();
            s.flush().unwrap();
            s.close().unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        let (mut errors, mut latest, mut earlier) = (0, 0, 0);
        // Every byte of the header's start (magic, god byte, lengths), then
        // samples of the commit slots and of the pages (each open fsyncs:
        // a few hundred opens, not thousands).
        let positions: Vec<usize> = (0..64)
            .chain((64..4096.min(good.len())).step_by(61))
            .chain((4096..good.len()).step_by(1021))
            .collect();
        for &i in &positions {
            let mut d = good.clone();
            d[i] ^= 0x10;
            std::fs::write(&path, &d).unwrap();
            match PersistentStore::open(dir.path()) {
                Err(Error::Corrupt { .. } | Error::Io { .. }) => errors += 1,
                Err(e) => panic!("flip at {i}: {e:?}"),
                Ok(s) => match s.range(Bound::Unbounded, Bound::Unbounded) {
                    Err(_) => errors += 1,
                    Ok(r) if r == second => latest += 1,
                    Ok(r) if r == first || r.is_empty() => earlier += 1,
                    Ok(r) => panic!("flip at {i} read {r:?}"),
                },
            }
        }
        assert!(errors > 0 && latest > 0, "{errors} {latest} {earlier}");
        // A cut file too.
        for len in [0, 100, 4096, good.len() / 2, good.len() - 1] {
            std::fs::write(&path, &good[..len]).unwrap();
            match PersistentStore::open(dir.path()) {
                Ok(s) => {
                    let r = s.range(Bound::Unbounded, Bound::Unbounded);
                    assert!(
                        r.is_err()
                            || r.as_ref()
                                .is_ok_and(|r| r.is_empty() || *r == first || *r == second),
                        "cut at {len}: {r:?}"
                    );
                }
                Err(e) => assert!(
                    matches!(e, Error::Corrupt { .. } | Error::Io { .. }),
                    "{e:?}"
                ),
            }
        }
        eprintln!(
            "{} flips: {errors} errors, {latest} latest, {earlier} earlier",
            positions.len()
        );
    }
}

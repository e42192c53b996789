//! Sparse, memory-mapped segment indexes, in Kafka's layouts.
//!
//! Format version 1 (identical to Kafka's `.index` and `.timeindex`):
//!
//! | file         | entry size | fields (big-endian)                                   |
//! |--------------|------------|-------------------------------------------------------|
//! | `.index`     | 8 bytes    | relative offset (u32: last offset of a batch − segment base), file position of that batch (u32) |
//! | `.timeindex` | 12 bytes   | timestamp (i64: largest timestamp so far in the segment), relative offset (u32: last offset of the batch that first reached it) |
//!
//! An offset index entry is added before a batch when more than
//! `index_interval_bytes` were appended since the previous entry, so the
//! first batch of a segment never has one. A time index entry is added with
//! each offset index entry if the segment's max timestamp grew, and once more
//! when the segment stops being active. Entries are strictly increasing.
//!
//! The files of the active segment are preallocated to their maximum size
//! (so unwritten entries read as zeros) and trimmed to their entries when the
//! segment rolls or the log closes. Indexes are derived data: a missing or
//! inconsistent index is rebuilt from the log.

use super::prealloc::{INDEX_CHUNK, Preallocated};
use super::vfs::{Handle, Vfs};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which of the two index kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    /// relative offset → position.
    Offset,
    /// timestamp → relative offset.
    Time,
}

impl IndexKind {
    pub(crate) fn entry_size(self) -> usize {
        match self {
            IndexKind::Offset => 8,
            IndexKind::Time => 12,
        }
    }

    pub(crate) fn extension(self) -> &'static str {
        match self {
            IndexKind::Offset => "index",
            IndexKind::Time => "timeindex",
        }
    }
}

/// One entry: `key` is the relative offset (offset index) or the timestamp
/// (time index); `value` the position or the relative offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: i64,
    pub(crate) value: u32,
}

/// A memory-mapped index file. One writer (the log's writer lock) appends;
/// readers search the published entries concurrently.
#[derive(Debug)]
pub(crate) struct Index {
    kind: IndexKind,
    path: PathBuf,
    file: Handle,
    /// Mapping of the whole preallocated capacity (or the file, if inactive).
    map: Bytes,
    /// Published entry count: entries below it are complete and immutable.
    entries: AtomicUsize,
    /// Entries the mapping can hold.
    capacity: usize,
    /// How far the writer allocated the file's blocks (its length is the
    /// capacity, sparse past this).
    allocated: Preallocated,
}

/// The first of `entries` whose key (ascending) is past `limit`, or their
/// count.
#[inline(always)]
fn first_past<const N: usize>(
    entries: &[[u8; N]],
    limit: i64,
    key: impl Fn(&[u8; N]) -> i64,
) -> usize {
    let (mut lo, mut len) = (0usize, entries.len());
    while len > 1 {
        let half = len / 2;
        if entries.get(lo + half - 1).is_some_and(|e| key(e) <= limit) {
            lo += half;
        }
        len -= half;
    }
    if entries.get(lo).is_some_and(|e| key(e) <= limit) {
        lo += 1;
    }
    lo
}

/// Decodes entry `i` of `kind` from `buf`, which must hold it.
pub(crate) fn decode(kind: IndexKind, buf: &[u8], i: usize) -> Entry {
    let size = kind.entry_size();
    let e = &buf[i * size..(i + 1) * size];
    match kind {
        IndexKind::Offset => Entry {
            key: i64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]])),
            value: u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
        },
        IndexKind::Time => Entry {
            key: i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]),
            value: u32::from_be_bytes([e[8], e[9], e[10], e[11]]),
        },
    }
}

fn encode(kind: IndexKind, e: Entry, out: &mut [u8; 12]) -> usize {
    match kind {
        IndexKind::Offset => {
            // Relative offsets are checked to fit u32 before indexing.
            out[..4].copy_from_slice(&(e.key as u32).to_be_bytes());
            out[4..8].copy_from_slice(&e.value.to_be_bytes());
            8
        }
        IndexKind::Time => {
            out[..8].copy_from_slice(&e.key.to_be_bytes());
            out[8..12].copy_from_slice(&e.value.to_be_bytes());
            12
        }
    }
}

/// Checks that `buf` is a well-formed index: whole entries, strictly
/// increasing keys and values (non-decreasing values for the time index),
/// and for the offset index no entry at position 0. Works on any bytes, so
/// tests and fuzzers feed it directly.
pub(crate) fn check_entries(kind: IndexKind, buf: &[u8]) -> std::result::Result<usize, String> {
    check_entries_at(kind, buf).map_err(|(_, reason)| reason)
}

/// [`check_entries`], saying which entry is wrong: `Err((i, reason))`, `i`
/// being the entry count for a length that is not a whole number of
/// entries. For `embedlog::inspect`, which reports byte positions.
pub(crate) fn check_entries_at(
    kind: IndexKind,
    buf: &[u8],
) -> std::result::Result<usize, (usize, String)> {
    let size = kind.entry_size();
    if !buf.len().is_multiple_of(size) {
        return Err((
            buf.len() / size,
            format!(
                "length {} is not a multiple of the entry size {size}",
                buf.len()
            ),
        ));
    }
    let n = buf.len() / size;
    let mut prev: Option<Entry> = None;
    for i in 0..n {
        let e = decode(kind, buf, i);
        if kind == IndexKind::Offset && e.value == 0 {
            return Err((i, format!("entry {i} points at position 0")));
        }
        if let Some(p) = prev {
            let ordered = match kind {
                IndexKind::Offset => e.key > p.key && e.value > p.value,
                IndexKind::Time => e.key > p.key && e.value >= p.value,
            };
            if !ordered {
                return Err((
                    i,
                    format!("entry {i} ({e:?}) does not follow entry {} ({p:?})", i - 1),
                ));
            }
        }
        prev = Some(e);
    }
    Ok(n)
}

impl Index {
    /// Path of the index of `kind` for the segment whose log is `log_path`.
    pub(crate) fn path_for(log_path: &Path, kind: IndexKind) -> PathBuf {
        log_path.with_extension(kind.extension())
    }

    /// Creates an empty index file (truncating any old one) preallocated for
    /// `capacity` entries.
    pub(crate) fn create(
        vfs: &dyn Vfs,
        path: PathBuf,
        kind: IndexKind,
        capacity: usize,
    ) -> Result<Index> {
        let file = vfs
            .create(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let bytes = (capacity * kind.entry_size()) as u64;
        file.set_len(bytes)
            .map_err(|e| Error::io("preallocate", &path, e))?;
        let map = file.map(bytes).map_err(|e| Error::io("map", &path, e))?;
        Ok(Index {
            kind,
            path,
            file: Handle::new(file),
            map,
            entries: AtomicUsize::new(0),
            capacity,
            allocated: Preallocated::default(),
        })
    }

    /// Opens an existing index file, mapping its whole length. Returns
    /// `None` if the file does not exist. The entries are not checked: call
    /// [`check`](Self::check).
    pub(crate) fn open(vfs: &dyn Vfs, path: PathBuf, kind: IndexKind) -> Result<Option<Index>> {
        let file = match vfs.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
        let n = usize::try_from(len).unwrap_or(usize::MAX) / kind.entry_size();
        let map = file.map(len).map_err(|e| Error::io("map", &path, e))?;
        Ok(Some(Index {
            kind,
            path,
            file: Handle::new(file),
            map,
            entries: AtomicUsize::new(n),
            capacity: n,
            allocated: Preallocated::default(),
        }))
    }

    /// Checks the file is well formed (see [`check_entries`]).
    pub(crate) fn check(&self) -> std::result::Result<usize, String> {
        check_entries(self.kind, &self.map)
    }

    /// Length of the file as mapped.
    pub(crate) fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Preallocates room for `capacity` entries and maps it (before the
    /// segment is shared with readers).
    pub(crate) fn reserve(&mut self, capacity: usize) -> Result<()> {
        let n = self.len();
        let capacity = capacity.max(n);
        let bytes = (capacity * self.kind.entry_size()) as u64;
        self.map = self
            .file
            .with(|f| {
                f.set_len(bytes)?;
                f.map(bytes)
            })
            .map_err(|e| Error::io("preallocate", &self.path, e))?;
        self.allocated.cut(bytes);
        self.capacity = capacity;
        Ok(())
    }

    /// CRC-32C of the published entries' bytes.
    pub(crate) fn crc(&self) -> u32 {
        crc32c::crc32c(&self.map[..self.len() * self.kind.entry_size()])
    }

    /// Published entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.load(Ordering::Acquire)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    pub(crate) fn entry(&self, i: usize) -> Entry {
        decode(self.kind, &self.map, i)
    }

    pub(crate) fn last(&self) -> Option<Entry> {
        let n = self.len();
        (n > 0).then(|| self.entry(n - 1))
    }

    /// The last entry whose key is `<= target` (or `< target` if `strict`).
    pub(crate) fn floor(&self, target: i64, strict: bool) -> Option<Entry> {
        self.floor_and_next(target, strict).0
    }

    /// [`floor`](Self::floor), and the entry after it (the first whose key
    /// is past `target`), if there is one.
    pub(crate) fn floor_and_next(
        &self,
        target: i64,
        strict: bool,
    ) -> (Option<Entry>, Option<Entry>) {
        let n = self.len();
        // Binary search over the published entries: the first entry whose
        // key is past the target. The key is read for each kind by its own
        // loop, which the compiler makes branch-free.
        // Keys are integers: `< target` is `<= target - 1`.
        let limit = if strict {
            target.checked_sub(1)
        } else {
            Some(target)
        };
        let buf = &self.map[..n * self.kind.entry_size()];
        let lo = match self.kind {
            _ if limit.is_none() => 0,
            IndexKind::Offset => {
                let (entries, _) = buf.as_chunks::<8>();
                first_past(entries, limit.unwrap_or(i64::MIN), |e| {
                    i64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
                })
            }
            IndexKind::Time => {
                let (entries, _) = buf.as_chunks::<12>();
                first_past(entries, limit.unwrap_or(i64::MIN), |e| {
                    i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]])
                })
            }
        };
        (
            (lo > 0).then(|| self.entry(lo - 1)),
            (lo < n).then(|| self.entry(lo)),
        )
    }

    /// Appends an entry. Only the log's writer calls this. Returns `false`
    /// (and writes nothing) when the index is full.
    pub(crate) fn append(&self, e: Entry) -> Result<bool> {
        let staged = self.stage(e)?;
        if staged {
            self.commit();
        }
        Ok(staged)
    }

    /// Writes an entry in the slot after the published ones without
    /// publishing it (no reader looks there yet). `false` if full.
    pub(crate) fn stage(&self, e: Entry) -> Result<bool> {
        let n = self.entries.load(Ordering::Relaxed);
        if n >= self.capacity {
            return Ok(false);
        }
        let mut buf = [0u8; 12];
        let len = encode(self.kind, e, &mut buf);
        let pos = (n * self.kind.entry_size()) as u64;
        // Allocated ahead, so entries are copied into the mapped file (no
        // system call per entry) and a full disk fails here, not in a copy.
        self.allocated.ensure(
            &self.file,
            &self.path,
            pos + len as u64,
            INDEX_CHUNK,
            self.map.len() as u64,
            self.map.len() as u64,
        )?;
        self.file
            .with(|f| f.write_at(&buf[..len], pos))
            .map_err(|err| Error::io("write", &self.path, err))?;
        Ok(true)
    }

    /// Publishes the staged entry.
    pub(crate) fn commit(&self) {
        let n = self.entries.load(Ordering::Relaxed);
        self.entries.store(n + 1, Ordering::Release);
    }

    /// Cuts the file to its entries (on roll and close). The mapping stays
    /// as it is: readers never look past the published entries.
    pub(crate) fn trim(&self) -> Result<()> {
        let len = (self.len() * self.kind.entry_size()) as u64;
        self.allocated.cut(len);
        self.file
            .with(|f| f.set_len(len))
            .map_err(|e| Error::io("trim", &self.path, e))
    }

    /// Closes the file descriptor (the segment is complete and fsync'd).
    pub(crate) fn release(&self) {
        self.file.release();
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::vfs::RealFs;

    #[test]
    fn append_lookup_trim_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        let idx = Index::create(&RealFs, path.clone(), IndexKind::Offset, 100).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 800, "preallocated");
        for i in 1..=10u32 {
            assert!(
                idx.append(Entry {
                    key: i64::from(i * 10),
                    value: i * 1000
                })
                .unwrap()
            );
        }
        assert_eq!(idx.floor(5, false), None);
        assert_eq!(
            idx.floor(10, false),
            Some(Entry {
                key: 10,
                value: 1000
            })
        );
        assert_eq!(idx.floor(10, true), None);
        assert_eq!(
            idx.floor(55, false),
            Some(Entry {
                key: 50,
                value: 5000
            })
        );
        assert_eq!(
            idx.floor(1000, false),
            Some(Entry {
                key: 100,
                value: 10000
            })
        );
        idx.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
        drop(idx);
        let buf = std::fs::read(&path).unwrap();
        assert_eq!(check_entries(IndexKind::Offset, &buf), Ok(10));
        let mut idx = Index::open(&RealFs, path.clone(), IndexKind::Offset)
            .unwrap()
            .unwrap();
        assert_eq!(idx.check(), Ok(10));
        assert_eq!(
            idx.last(),
            Some(Entry {
                key: 100,
                value: 10000
            })
        );
        assert!(idx.is_full());
        assert!(!idx.append(Entry { key: 200, value: 1 }).unwrap());
        idx.reserve(20).unwrap();
        assert!(
            idx.append(Entry {
                key: 200,
                value: 20000
            })
            .unwrap()
        );
        assert_eq!(
            idx.floor(300, false),
            Some(Entry {
                key: 200,
                value: 20000
            })
        );
        assert!(
            Index::open(&RealFs, dir.path().join("missing.index"), IndexKind::Offset)
                .unwrap()
                .is_none()
        );
    }

    proptest::proptest! {
        /// `floor_and_next` against a linear scan, for both kinds, every
        /// count of entries (none too), strict or not, and targets below,
        /// between, on and past the keys.
        #[test]
        fn floor_and_next_agrees_with_a_scan(
            gaps in proptest::collection::vec(1i64..5, 0..40),
            targets in proptest::collection::vec(-3i64..130, 1..20),
            time in proptest::bool::ANY,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let kind = if time { IndexKind::Time } else { IndexKind::Offset };
            let idx = Index::create(&RealFs, dir.path().join("i"), kind, 64).unwrap();
            let mut entries = Vec::new();
            let mut key = 0;
            for (i, g) in gaps.iter().enumerate() {
                key += g;
                let e = Entry { key, value: i as u32 + 1 };
                idx.append(e).unwrap();
                entries.push(e);
            }
            for &t in &targets {
                for strict in [false, true] {
                    let below = |e: &&Entry| if strict { e.key < t } else { e.key <= t };
                    let floor = entries.iter().rev().find(below).copied();
                    let next = entries.iter().find(|e| !below(e)).copied();
                    proptest::prop_assert_eq!(idx.floor_and_next(t, strict), (floor, next));
                }
            }
        }
    }

    #[test]
    fn layout_is_kafkas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.timeindex");
        let idx = Index::create(&RealFs, path.clone(), IndexKind::Time, 1).unwrap();
        idx.append(Entry {
            key: 0x0102030405060708,
            value: 0x0a0b0c0d,
        })
        .unwrap();
        drop(idx);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d]
        );
    }

    #[test]
    fn check_entries_rejects_disorder_and_zeros() {
        let mut buf = Vec::new();
        for (k, v) in [(1u32, 100u32), (2, 200)] {
            buf.extend_from_slice(&k.to_be_bytes());
            buf.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(check_entries(IndexKind::Offset, &buf), Ok(2));
        assert!(check_entries(IndexKind::Offset, &buf[..7]).is_err());
        assert!(check_entries(IndexKind::Offset, &[0u8; 16]).is_err());
        let mut swapped = buf[8..].to_vec();
        swapped.extend_from_slice(&buf[..8]);
        assert!(check_entries(IndexKind::Offset, &swapped).is_err());
        assert!(check_entries(IndexKind::Time, &[0u8; 24]).is_err());
    }
}

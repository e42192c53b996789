//! Entry points for the fuzz targets in `fuzz/` and their regression tests.
//! Each takes arbitrary bytes and must never panic, abort or allocate without
//! bound, whatever the bytes are. Not part of the public API.

use crate::storage::{Log, LogConfig, ReadLimit};
use crate::{Batch, Batches, Record};
use bytes::Bytes;

/// Decodes `data` as one batch and as a run of batches, decoding every
/// record; checks what decodes is self-consistent.
pub fn batch_decode(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(batch) = Batch::new(bytes.clone())
        && let Ok(records) = batch.records()
    {
        let mut prev = None;
        for r in records {
            let Ok(r) = r else { break };
            // Offsets strictly increase within the batch's range.
            assert!(r.offset >= batch.base_offset() && r.offset <= batch.last_offset());
            assert!(prev.is_none_or(|p| r.offset > p));
            prev = Some(r.offset);
        }
    }
    for b in Batches::from_bytes(bytes).records() {
        if b.is_err() {
            break;
        }
    }
}

/// Checks `data` as an offset index and as a time index.
pub fn index_check(data: &[u8]) {
    let _ = crate::storage::parse::check_index(false, data);
    let _ = crate::storage::parse::check_index(true, data);
}

/// Decodes `data` as a checkpoint file and scans it as a segment.
pub fn checkpoint_and_scan(data: &[u8]) {
    let _ = crate::storage::parse::checkpoint(data);
    let (valid, _) = crate::storage::parse::scan_segment(data, 0);
    assert!(valid as usize <= data.len());
}

/// Builds a partition directory from `data` and opens it: the bytes are
/// split into files (segment logs with base offsets taken from the input,
/// their indexes and a checkpoint). Opening must succeed or fail with an
/// error; if it succeeds, every read, a verify, an append and a reopen must
/// work or fail cleanly.
pub fn open_dir(data: &[u8]) {
    let Ok(dir) = tempdir() else { return };
    let mut rest = data;
    let mut take = |n: usize| {
        let n = n.min(rest.len());
        let (a, b) = rest.split_at(n);
        rest = b;
        a
    };
    // Up to 4 files, each: kind (1 byte), base offset selector (1 byte),
    // length (2 bytes), contents.
    for _ in 0..4 {
        let head = take(4);
        if head.len() < 4 {
            break;
        }
        let base = u64::from(head[1] % 4) * 3;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let contents = take(len);
        let name = match head[0] % 5 {
            0 | 1 => format!("{base:020}.log"),
            2 => format!("{base:020}.index"),
            3 => format!("{base:020}.timeindex"),
            _ => "embedlog.checkpoint".to_string(),
        };
        if std::fs::write(dir.path().join(name), contents).is_err() {
            return;
        }
    }
    let config = LogConfig::default()
        .segment_bytes(4096)
        .index_interval_bytes(64);
    let Ok(log) = Log::open(dir.path(), config.clone()) else {
        return;
    };
    let (start, end) = (log.start_offset(), log.end_offset());
    assert!(start <= end);
    let mut at = start;
    while at < end {
        let Ok(batches) = log.read(at, ReadLimit::bytes(512)) else {
            break;
        };
        let mut moved = false;
        for r in batches.records() {
            let Ok(r) = r else { break };
            assert!(r.offset >= at);
            at = r.offset + 1;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    let _ = log.offset_for_timestamp(0);
    let _ = log.verify();
    if let Ok(info) = log.append(&[Record::new("fuzz").timestamp(1)]) {
        assert_eq!(info.base_offset, end);
    }
    let _ = log.close();
    if let Ok(log) = Log::open(dir.path(), config) {
        let _ = log.verify();
    }
}

fn tempdir() -> std::io::Result<tempfile_lite::TempDir> {
    tempfile_lite::TempDir::new()
}

/// A minimal temporary directory (the crate does not depend on `tempfile`).
mod tempfile_lite {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> std::io::Result<TempDir> {
            static N: AtomicU64 = AtomicU64::new(0);
            let base = if Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            };
            let p = base.join(format!(
                "embedlog-fuzz-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p)?;
            Ok(TempDir(p))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

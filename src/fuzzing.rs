//! Entry points for the fuzz targets in `fuzz/` and their regression tests.
//! Each takes arbitrary bytes and must never panic, abort or allocate without
//! bound, whatever the bytes are. Not part of the public API.

// Fuzz bodies report a broken invariant by panicking: that is their job.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use crate::storage::{Log, LogConfig, ReadLimit};
use crate::{Batch, Batches, Record};
use bytes::Bytes;

/// Decodes `data` as one batch and as a run of batches, decoding every
/// record; checks what decodes is self-consistent.
pub fn batch_decode(data: &[u8]) {
    // As given, and with the CRC sealed again, so that mutations reach the
    // record decoder and the codecs instead of stopping at the checksum.
    decode_batches(Bytes::copy_from_slice(data));
    if data.len() >= crate::BATCH_HEADER_SIZE {
        let mut sealed = data.to_vec();
        let crc = crate::record::batch_crc(&sealed);
        sealed[17..21].copy_from_slice(&crc.to_be_bytes());
        decode_batches(Bytes::from(sealed));
    }
}

fn decode_batches(bytes: Bytes) {
    // A small decompression limit: a fuzzed batch must not allocate more.
    const LIMIT: usize = 1 << 20;
    if let Ok(batch) = Batch::new(bytes.clone())
        && let Ok(records) = batch.clone().decompression_limit(LIMIT).records()
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
    let batches = Batches::from_bytes(bytes).decompression_limit(LIMIT);
    let owned: Vec<_> = batches.records().take_while(|r| r.is_ok()).collect();
    let borrowed: Vec<_> = batches.records_ref().take_while(|r| r.is_ok()).collect();
    // The two decoders agree on every record they both decode.
    for (o, b) in owned.iter().zip(&borrowed) {
        let (Ok(o), Ok(b)) = (o, b) else { break };
        assert_eq!(
            (o.offset, o.key.as_deref(), o.value.as_deref()),
            (b.offset, b.key, b.value)
        );
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

/// Decodes bytes as replication's files (`leader-epoch-checkpoint`,
/// `replication.checkpoint`) and messages (fetch request and response):
/// errors, never panics, and what decodes re-encodes to something that
/// decodes the same.
pub fn replication_decode(data: &[u8]) {
    use crate::replication::{EpochCache, decode_state};
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = EpochCache::decode(text) {
            assert_eq!(EpochCache::decode(&c.encode()), Ok(c));
        }
        let _ = decode_state(text);
    }
    if let Ok(r) = crate::FetchRequest::decode(data) {
        assert_eq!(r.encode(), data);
    }
    if let Ok(r) = crate::FetchResponse::decode(data) {
        assert_eq!(r.encode(), data);
    }
}

/// Decodes bytes as a committed-offset key and value of
/// `__consumer_offsets` (the first byte splits the input): any input gives
/// a value or an error, and what decodes re-encodes to the same bytes.
pub fn offset_record(data: &[u8]) {
    use crate::group::offsets;
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (k, v) = rest.split_at(usize::from(split).min(rest.len()));
    if let Ok((group, tp)) = offsets::decode_key(k) {
        assert_eq!(offsets::encode_key(&group, &tp), k);
    }
    if let Ok(o) = offsets::decode_value(v) {
        assert_eq!(offsets::encode_value(&o), v);
    }
}

/// Decodes bytes as each transaction file and record: a producer snapshot,
/// a `.txnindex`, and a `__transaction_state` key and value (the first byte
/// splits key from value). Any input gives a value or an error; what
/// decodes survives an encode and a decode unchanged.
pub fn txn_state_decode(data: &[u8]) {
    use crate::storage::producer_state::{ProducerStates, decode_txn_index};
    use crate::txn::records;
    if let Ok(s) = ProducerStates::decode_snapshot(data) {
        let again = ProducerStates::decode_snapshot(&s.encode_snapshot());
        assert_eq!(again.map(|a| a.entries()), Ok(s.entries()));
    }
    if let Ok(entries) = decode_txn_index(data) {
        let mut bytes = Vec::new();
        for t in &entries {
            t.encode(&mut bytes);
        }
        assert_eq!(bytes, data);
    }
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (k, v) = rest.split_at(usize::from(split).min(rest.len()));
    if let Ok((kind, id)) = records::decode_key(k) {
        assert_eq!(records::encode_key(kind, &id), k);
    }
    if let Ok(s) = records::decode_state(v) {
        assert_eq!(records::decode_state(&records::encode_state(&s)), Ok(s));
    }
    if let Ok(o) = records::decode_offsets(v) {
        assert_eq!(records::encode_offsets(&o), v);
    }
    if let Ok(n) = records::decode_id_block(v) {
        assert_eq!(records::encode_id_block(n), v);
    }
}

/// Builds a partition directory from `data` and opens it: the bytes are
/// split into files (segment logs with base offsets taken from the input,
/// their indexes and a checkpoint). Opening must succeed or fail with an
/// error; if it succeeds, every read, a verify, an append and a reopen must
/// work or fail cleanly.
pub fn open_dir(data: &[u8]) {
    let Some(dir) = build_dir(data) else { return };
    let config = LogConfig::default()
        .segment_bytes(4096)
        .index_interval_bytes(64);
    let Ok(log) = Log::open(dir.path(), config.clone()) else {
        return;
    };
    let (start, end) = (log.start_offset(), log.end_offset());
    assert!(start <= end);
    let mut at = start;
    for r in log.reader(start, ReadLimit::bytes(512)).records() {
        let Ok(r) = r else { break };
        assert!(r.offset >= at, "offsets go forward");
        at = r.offset + 1;
    }
    let _ = log.offset_for_timestamp(0);
    let _ = log.verify();
    // Compacting whatever opened must keep the log readable and consistent.
    if log.roll().is_ok() && log.compact(crate::Compaction::default()).is_ok() {
        assert_eq!(log.end_offset(), end.max(log.start_offset()));
        log.verify().ok();
    }
    if let Ok(info) = log.append(&[Record::new("fuzz").timestamp(1)]) {
        assert_eq!(info.base_offset, end);
    }
    let _ = log.close();
    if let Ok(log) = Log::open(dir.path(), config) {
        let _ = log.verify();
    }
}

/// Builds a partition directory from `data`: the bytes are split into
/// files (segment logs with base offsets taken from the input, their
/// indexes and a checkpoint).
fn build_dir(data: &[u8]) -> Option<tempfile_lite::TempDir> {
    let dir = tempdir().ok()?;
    let mut rest = data;
    let mut take = |n: usize| {
        let n = n.min(rest.len());
        let (a, b) = rest.split_at(n);
        rest = b;
        a
    };
    // Up to 4 files, each: kind (1 byte; 0xF0 and up: producer state),
    // base offset selector (1 byte),
    // length (2 bytes), contents.
    for _ in 0..4 {
        let head = take(4);
        if head.len() < 4 {
            break;
        }
        let base = u64::from(head[1] % 4) * 3;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let contents = take(len);
        let name = match head[0] {
            // Producer state: a snapshot, an aborted-transaction index.
            0xF0..=0xF7 => format!("{base:020}.snapshot"),
            0xF8..=0xFF => format!("{base:020}.txnindex"),
            k => match k % 7 {
                0 | 1 => format!("{base:020}.log"),
                2 => format!("{base:020}.index"),
                3 => format!("{base:020}.timeindex"),
                4 => "embedlog.checkpoint".to_string(),
                // A compaction that a crash interrupted.
                5 => format!("{base:020}.log.swap"),
                _ => format!("{base:020}.log.cleaned"),
            },
        };
        if std::fs::write(dir.path().join(name), contents).is_err() {
            return None;
        }
    }
    Some(dir)
}

/// Builds a partition directory from `data` as [`open_dir`] does and reads
/// it through a [`ReadOnlyLog`](crate::ReadOnlyLog) (what `embedlog
/// consume` and the other tools use): it must open or fail cleanly, return
/// only whole CRC-valid batches in offset order, and keep working after an
/// owner opens (and recovers) the directory under it.
pub fn read_only_dir(data: &[u8]) {
    let Some(dir) = build_dir(data) else { return };
    let Ok(view) = crate::ReadOnlyLog::open(dir.path()) else {
        return;
    };
    read_only_all(&view);
    if let Ok(log) = Log::open(dir.path(), LogConfig::default().segment_bytes(4096)) {
        let _ = log.append(&[Record::new("more").timestamp(2)]);
        read_only_all(&view);
        let _ = log.close();
    }
    let _ = view.offset_for_timestamp(0);
}

fn read_only_all(view: &crate::ReadOnlyLog) {
    let Ok(()) = view.refresh() else { return };
    let (start, end) = (view.start_offset(), view.end_offset());
    assert!(start <= end);
    let mut from = start;
    let mut last = None;
    loop {
        let Ok(batches) = view.read(from, ReadLimit::bytes(300)) else {
            return;
        };
        if batches.is_empty() {
            return;
        }
        for b in batches.iter() {
            let Ok(b) = b else { return };
            assert!(
                crate::record::crc_matches(b.as_bytes()),
                "only CRC-valid batches"
            );
            assert!(
                last.is_none_or(|l| b.base_offset() > l),
                "batches go forward"
            );
            last = Some(b.last_offset());
            from = b.last_offset() + 1;
        }
        for r in batches.records() {
            let Ok(_) = r else { return };
        }
    }
}

/// `embedlog::inspect` (what `embedlog dump-log` and `verify` use) on
/// arbitrary bytes: the segment dump with records decoded, and both index
/// checks with and without a log beside them, never panic.
pub fn inspect_segment(data: &[u8]) {
    use crate::inspect::{Detail, IndexType, parse_index, parse_segment};
    let dump = parse_segment(data.to_vec(), Some(0), Detail::Records, |_| {});
    assert!(dump.valid_bytes <= dump.size);
    // The first byte splits the rest into an index and its log.
    if let Some((&split, rest)) = data.split_first() {
        let (index, log) = rest.split_at((split as usize).min(rest.len()));
        for kind in [IndexType::Offset, IndexType::Time] {
            let _ = parse_index(kind, index, Some(0), Some(log));
            let _ = parse_index(kind, index, None, None);
        }
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

/// Runs a sequence of operations decoded from `data` against a log on the
/// fault-injecting file system (appends, flushes, rolls, armed faults,
/// simulated power-loss crashes, reopens) and checks every read against a
/// model: acknowledged data is never missing or different, fsync'd data
/// survives crashes, and what survives is a clean prefix.
#[cfg(feature = "fault-injection")]
pub fn ops(data: &[u8]) {
    use crate::storage::faulty::{CrashMode, FaultyFs, Op};
    use crate::{Durability, Error};
    use std::sync::Arc;

    let Ok(dir) = tempdir() else { return };
    let fs = FaultyFs::default();
    let config = LogConfig::default()
        .segment_bytes(1024)
        .index_interval_bytes(80);
    let open = |fs: &FaultyFs| Log::open_with(Arc::new(fs.clone()), dir.path(), config.clone());
    let Ok(mut log) = open(&fs) else { return };
    let mut model: Vec<Vec<u8>> = Vec::new();
    let check = |log: &Log, model: &[Vec<u8>]| {
        assert_eq!(log.end_offset(), model.len() as u64);
        let mut at = log.start_offset();
        while at < log.end_offset() {
            let Ok(b) = log.read(at, ReadLimit::bytes(512)) else {
                panic!("read failed at {at}")
            };
            for r in b.records() {
                let r = r.expect("a stored record decodes");
                assert_eq!(r.offset, at);
                assert_eq!(r.value.as_deref(), Some(&model[at as usize][..]));
                at += 1;
            }
        }
    };
    for (i, c) in data.chunks_exact(3).enumerate().take(200) {
        match c[0] % 8 {
            0..=2 => {
                let values: Vec<Vec<u8>> = (0..c[1] % 4 + 1)
                    .map(|k| vec![(i as u8).wrapping_add(k); c[2] as usize])
                    .collect();
                let recs: Vec<Record> = values
                    .iter()
                    .map(|v| Record::new(v.clone()).timestamp(i as i64))
                    .collect();
                let d = if c[0] & 8 != 0 {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                let before = log.end_offset();
                match log.append_with(&recs, d) {
                    Ok(_) => model.extend(values),
                    Err(Error::Poisoned { .. } | Error::Io { .. } | Error::DiskFull { .. }) => {
                        if log.end_offset() != before {
                            assert!(log.is_poisoned());
                            model.extend(values);
                        }
                    }
                    Err(e) => panic!("unexpected error {e:?}"),
                }
            }
            3 => {
                if log.flush().is_err() {
                    assert!(log.is_poisoned());
                }
            }
            4 => {
                let _ = log.roll();
            }
            5 => {
                let op = [Op::Write, Op::Sync, Op::SetLen, Op::Rename, Op::Preallocate]
                    [usize::from(c[1] % 5)];
                let kind = if c[1] & 4 != 0 {
                    std::io::ErrorKind::StorageFull
                } else {
                    std::io::ErrorKind::Other
                };
                fs.faults
                    .fail(op, i64::from(c[2] % 16), kind, c[1] & 8 != 0);
            }
            6 => {
                let flushed = log.flushed_offset();
                log.simulate_crash();
                fs.faults.clear();
                fs.faults.crash(match c[1] % 4 {
                    0 => CrashMode::KeepAll,
                    1 => CrashMode::DropAll,
                    _ => CrashMode::Random(u64::from(c[1]) << 8 | u64::from(c[2])),
                });
                let Ok(l) = open(&fs) else {
                    panic!("reopen after a crash failed")
                };
                log = l;
                let end = log.end_offset();
                assert!(end >= flushed, "lost fsync'd records");
                assert!(end as usize <= model.len());
                model.truncate(end as usize);
            }
            _ => {
                fs.faults.clear();
                let _ = log.close();
                let Ok(l) = open(&fs) else {
                    panic!("reopen failed")
                };
                log = l;
            }
        }
        check(&log, &model);
    }
}

/// Wraps `data` in a valid batch header (count and deltas taken from the
/// first bytes, CRC computed) so that the fuzzer exercises the record
/// decoder itself rather than the CRC check.
pub fn record_decode(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let count = i32::from(data[0] % 8);
    let body = &data[2..];
    let mut batch = vec![0u8; crate::BATCH_HEADER_SIZE];
    batch.extend_from_slice(body);
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    batch[16] = 2;
    batch[21..23].copy_from_slice(&i16::from(data[1] & 0x08).to_be_bytes());
    batch[23..27].copy_from_slice(&(count + i32::from(data[1] >> 4)).to_be_bytes());
    batch[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crate::record::batch_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    if let Ok(h) = crate::BatchHeader::parse(&batch) {
        let _ = crate::record::validate_records(&batch, &h, 1 << 20);
    }
    batch_decode(&batch);
}

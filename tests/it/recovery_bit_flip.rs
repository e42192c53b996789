//! Flipping any byte of a segment never makes embedlog panic or return a
//! wrong record: fsync'd data that fails a check is reported as `Corrupt`
//! (at open or at read), and an unsynced tail is cut at the damaged batch
//! (except a first batch that is whole but at the wrong offset: reported).

use crate::common::*;
use embedlog::{Durability, Error, Log, LogConfig, Record, StoredRecord};

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(64 << 10)
        .index_interval_bytes(100)
}

fn build(sync: bool) -> (tempfile::TempDir, Vec<(u64, Record)>) {
    let dir = tempdir();
    let log = Log::open(dir.path(), config()).unwrap();
    let mut all = Vec::new();
    let mut i = 0;
    for batch in 0..6u64 {
        let recs: Vec<_> = (i..i + 1 + batch % 2).map(record).collect();
        let d = if sync {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        let info = log.append_with(&recs, d).unwrap();
        for (k, r) in recs.into_iter().enumerate() {
            all.push((info.base_offset + k as u64, r));
        }
        i += 1 + batch % 2;
    }
    if sync {
        log.close().unwrap();
    } else {
        log.simulate_crash();
    }
    (dir, all)
}

fn flip(dir: &std::path::Path, at: usize) {
    let seg = segment_logs(dir)[0].clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(&seg, bytes).unwrap();
}

/// Reads everything, stopping at the first error; returns what was read and
/// whether an error stopped it.
fn read_until_error(log: &Log) -> (Vec<StoredRecord>, Option<Error>) {
    let mut got = Vec::new();
    let mut at = log.start_offset();
    while at < log.end_offset() {
        let b = match log.read(at, embedlog::ReadLimit::bytes(1)) {
            Ok(b) => b,
            Err(e) => return (got, Some(e)),
        };
        for r in b.records() {
            match r {
                Ok(r) => {
                    at = r.offset + 1;
                    got.push(r);
                }
                Err(e) => return (got, Some(e)),
            }
        }
    }
    (got, None)
}

/// Bytes 12..16 of a batch (the partition leader epoch) are outside the CRC
/// by Kafka's design and carry no record data.
fn in_leader_epoch(bounds: &[(usize, usize, u64, u64)], at: usize) -> bool {
    bounds.iter().any(|b| (b.0 + 12..b.0 + 16).contains(&at))
}

#[test]
fn fsynced_segment_any_flip_is_reported_never_returned() {
    let (dir, all) = build(true);
    let seg = segment_logs(dir.path())[0].clone();
    let bytes = std::fs::read(&seg).unwrap();
    let bounds = batch_bounds(&bytes);
    for at in 0..bytes.len() {
        let copy = copy_dir(dir.path());
        flip(copy.path(), at);
        let log = match Log::open(copy.path(), config()) {
            Ok(log) => log,
            Err(Error::Corrupt { .. }) => continue,
            Err(e) => panic!("flip at {at}: unexpected error {e:?}"),
        };
        let (got, err) = read_until_error(&log);
        // Whatever was returned is exactly what was written.
        assert_records_eq(&got, &all[..got.len()]);
        match err {
            Some(Error::Corrupt { path, .. }) => assert_eq!(path.file_name(), seg.file_name()),
            Some(e) => panic!("flip at {at}: unexpected error {e:?}"),
            None => {
                assert!(
                    in_leader_epoch(&bounds, at),
                    "flip at byte {at} went unnoticed"
                );
                assert_eq!(got.len(), all.len());
            }
        }
        assert!(
            log.verify().is_err() || in_leader_epoch(&bounds, at),
            "verify missed byte {at}"
        );
    }
}

#[test]
fn unsynced_segment_any_flip_cuts_the_tail_at_the_damaged_batch() {
    let (dir, all) = build(false);
    let seg = segment_logs(dir.path())[0].clone();
    let bytes = std::fs::read(&seg).unwrap();
    let bounds = batch_bounds(&bytes);
    // Every byte of the batches; past them the crashed file holds the zeros
    // of its preallocated tail, where a few flips suffice (garbage after the
    // last batch: a torn tail).
    let end = bounds.last().unwrap().1;
    let in_zeros = [end, end + 1, end + 4096, bytes.len() - 1];
    for at in (0..end).chain(in_zeros.into_iter().filter(|&a| a < bytes.len())) {
        let copy = copy_dir(dir.path());
        flip(copy.path(), at);
        if at < 8 {
            // The first batch's base offset is outside the CRC: flipped, the
            // batch is whole and valid but at another offset than the file's
            // name, which no torn write produces. Cutting it would drop good
            // data, so open reports it instead.
            match Log::open(copy.path(), config()) {
                Err(Error::Corrupt {
                    position: 0,
                    reason,
                    ..
                }) => assert!(reason.contains("named for offset")),
                other => panic!("flip at {at}: {other:?}"),
            }
            continue;
        }
        let log = Log::open(copy.path(), config()).unwrap();
        let want = match bounds.iter().find(|b| (b.0..b.1).contains(&at)) {
            // In the zeros after the last batch: garbage cut, nothing lost.
            None => all.len(),
            Some(_) if in_leader_epoch(&bounds, at) => all.len(),
            Some(damaged) => damaged.2 as usize,
        };
        let got = read_all(&log).unwrap();
        assert_records_eq(&got, &all[..want]);
        assert_eq!(log.end_offset(), want as u64, "flip at {at}");
        log.verify().unwrap();
    }
}

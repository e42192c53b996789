//! A crash can tear the unsynced tail of the last segment at any byte:
//! reopening keeps exactly the whole batches before the cut, appends continue
//! at the next offset, and a cut in fsync'd data is reported, not hidden.

use crate::common::*;
use embedlog::{Durability, Error, Log, LogConfig, Record};

/// Builds a log whose last segment holds several batches that were never
/// fsync'd, and "crashes" it. Returns the directory and the records.
fn crashed_log(config: LogConfig) -> (tempfile::TempDir, Vec<(u64, Record)>) {
    let dir = tempdir();
    let log = Log::open(dir.path(), config).unwrap();
    let mut all = Vec::new();
    let mut i = 0;
    let mut batch = 0u64;
    let last_segment_batches = |dir: &std::path::Path| {
        let last = segment_logs(dir).pop().unwrap();
        batch_bounds(&std::fs::read(last).unwrap()).len()
    };
    while batch < 12 || last_segment_batches(dir.path()) < 3 {
        batch += 1;
        let n = 1 + batch % 3;
        let recs: Vec<_> = (i..i + n).map(record).collect();
        let info = log.append(&recs).unwrap();
        for (k, r) in recs.into_iter().enumerate() {
            all.push((info.base_offset + k as u64, r));
        }
        i += n;
    }
    log.simulate_crash();
    (dir, all)
}

fn check_every_cut(config: LogConfig) {
    let (dir, all) = crashed_log(config.clone());
    let logs = segment_logs(dir.path());
    let last = logs.last().unwrap().clone();
    let bytes = std::fs::read(&last).unwrap();
    let bounds = batch_bounds(&bytes);
    assert!(bounds.len() >= 2, "the last segment needs two batches");
    let from = bounds[bounds.len() - 2].0;
    // Every byte of the last two batches; past them the file holds the
    // zeros of its preallocated tail, of which a few cuts suffice.
    let end = bounds[bounds.len() - 1].1;
    let in_zeros = [end + 1, end + 4096, bytes.len()];
    for cut in (from..=end).chain(in_zeros.into_iter().filter(|&c| c <= bytes.len())) {
        let copy = copy_dir(dir.path());
        let seg = copy.path().join(last.file_name().unwrap());
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(cut as u64).unwrap();
        drop(f);

        let log = Log::open(copy.path(), config.clone()).unwrap();
        // Whole batches that end at or before the cut survive.
        let kept_end = bounds
            .iter()
            .filter(|b| b.1 <= cut)
            .map(|b| b.3 + 1)
            .max()
            .unwrap_or(bounds[0].2);
        assert_eq!(log.end_offset(), kept_end, "cut at byte {cut}");
        let got = read_all(&log).unwrap();
        assert_records_eq(&got, &all[..kept_end as usize]);
        // Appends continue at the right offset, and survive a reopen.
        let info = log.append(&[Record::new("after").timestamp(5)]).unwrap();
        assert_eq!(info.base_offset, kept_end);
        log.close().unwrap();
        let log = Log::open(copy.path(), config.clone()).unwrap();
        assert_eq!(log.end_offset(), kept_end + 1);
        log.verify().unwrap();
    }
}

#[test]
fn every_cut_in_the_last_two_batches_of_a_single_segment() {
    check_every_cut(
        LogConfig::default()
            .segment_bytes(64 << 10)
            .index_interval_bytes(64),
    );
}

#[test]
fn every_cut_in_the_last_two_batches_of_the_last_of_several_segments() {
    let config = LogConfig::default()
        .segment_bytes(700)
        .index_interval_bytes(64);
    let (dir, _) = crashed_log(config.clone());
    assert!(segment_logs(dir.path()).len() >= 3);
    check_every_cut(config);
}

#[test]
fn a_cut_in_fsynced_data_is_reported_as_corrupt() {
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for i in 0..5 {
        log.append_with(&[record(i)], Durability::Sync).unwrap();
    }
    log.close().unwrap();
    let seg = segment_logs(dir.path())[0].clone();
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    match Log::open(dir.path(), LogConfig::default()) {
        Err(Error::Corrupt {
            path,
            position,
            reason,
        }) => {
            assert_eq!(path, seg);
            assert!(position < len, "{position}");
            assert!(reason.contains("recovery point"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The error says how to accept the loss: without the checkpoint the
    // whole log is recovered and the torn batch dropped.
    std::fs::remove_file(dir.path().join("embedlog.checkpoint")).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), 4);
}

#[test]
fn recovery_is_idempotent() {
    let (dir, all) = crashed_log(LogConfig::default());
    let seg = segment_logs(dir.path())[0].clone();
    // 10 bytes off the last batch (the zeros of the preallocated tail
    // follow it).
    let end = batch_bounds(&std::fs::read(&seg).unwrap())
        .last()
        .unwrap()
        .1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(end as u64 - 10)
        .unwrap();
    let first = {
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let got = read_all(&log).unwrap();
        log.simulate_crash();
        got
    };
    // Crash again right after recovery, and once more after a clean close.
    for _ in 0..2 {
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(read_all(&log).unwrap(), first);
        log.close().unwrap();
    }
    assert!(first.len() < all.len());
    assert_records_eq(&first, &all[..first.len()]);
}

#[test]
fn a_hole_between_segments_after_power_loss_cuts_the_log_there() {
    // Three segments, none fsync'd; the middle one loses its last batch (as
    // if its writeback never happened) while the newer one kept its data.
    let config = LogConfig::default()
        .segment_bytes(700)
        .index_interval_bytes(64);
    let (dir, all) = crashed_log(config.clone());
    let logs = segment_logs(dir.path());
    assert!(logs.len() >= 3);
    let middle = logs[logs.len() - 2].clone();
    let bytes = std::fs::read(&middle).unwrap();
    let bounds = batch_bounds(&bytes);
    let last = bounds.last().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&middle)
        .unwrap()
        .set_len(last.0 as u64)
        .unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.end_offset(), last.2, "the log ends at the hole");
    assert_eq!(
        segment_logs(dir.path()).len(),
        logs.len() - 1,
        "newer segments are gone"
    );
    assert_records_eq(&read_all(&log).unwrap(), &all[..last.2 as usize]);
    log.append(&[Record::new("next").timestamp(1)]).unwrap();
    assert_eq!(log.end_offset(), last.2 + 1);
}

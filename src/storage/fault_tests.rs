//! The log against a `Vec` model under injected I/O faults and simulated
//! crashes (the fault-injecting file system of `faulty.rs`):
//!
//! - after every injected fault, the call that hit it failed (and the log is
//!   poisoned exactly when an fsync failed), or the data is there; nothing
//!   acknowledged is ever missing or different;
//! - after every simulated crash, which keeps, drops or tears each write
//!   made since the last fsync, reopening yields every fsync'd record and a
//!   clean prefix of the rest.

use super::faulty::{CrashMode, Faults, FaultyFs, Op};
use super::{Durability, Log, LogConfig, ReadLimit};
use crate::{Error, Offset, Record};
use proptest::prelude::*;
use std::io;
use std::path::Path;
use std::sync::Arc;

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1200)
        .index_interval_bytes(100)
}

fn open(fs: &FaultyFs, dir: &Path) -> crate::Result<Log> {
    Log::open_with(Arc::new(fs.clone()), dir, config())
}

fn record(n: u64, len: usize) -> Record {
    Record::new(vec![(n % 251) as u8; len])
        .key(n.to_string())
        .timestamp(n as i64)
}

/// Everything readable, in order, checked against the model's records.
fn check(log: &Log, model: &[Record]) {
    assert_eq!(log.end_offset(), model.len() as Offset, "end offset");
    let mut at = log.start_offset();
    while at < log.end_offset() {
        let b = log.read(at, ReadLimit::bytes(700)).unwrap();
        assert!(!b.is_empty());
        for r in b.records() {
            let r = r.unwrap();
            assert_eq!(r.offset, at);
            assert_eq!(r.clone().into_record(), model[at as usize], "record {at}");
            at += 1;
        }
    }
}

#[derive(Debug, Clone)]
enum CrashOp {
    Append { n: u8, len: u16, sync: bool },
    Flush,
    Roll,
    Truncate(f64),
    Reopen,
    Crash { seed: u64, mode: u8 },
}

fn crash_op() -> impl Strategy<Value = CrashOp> {
    prop_oneof![
        8 => (1u8..4, 1u16..200, prop::bool::weighted(0.25)).prop_map(|(n, len, sync)| CrashOp::Append { n, len, sync }),
        1 => Just(CrashOp::Flush),
        1 => Just(CrashOp::Roll),
        1 => (0.0..1.0f64).prop_map(CrashOp::Truncate),
        1 => Just(CrashOp::Reopen),
        3 => (any::<u64>(), 0u8..3).prop_map(|(seed, mode)| CrashOp::Crash { seed, mode }),
    ]
}

fn run_crashes(ops: Vec<CrashOp>) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::default();
    let mut log = open(&fs, dir.path()).unwrap();
    let mut model: Vec<Record> = Vec::new();
    let mut batches: Vec<(Offset, Offset)> = Vec::new();
    let mut counter = 0;
    for op in ops {
        match op {
            CrashOp::Append { n, len, sync } => {
                let recs: Vec<_> = (0..n)
                    .map(|_| {
                        counter += 1;
                        record(counter, len as usize)
                    })
                    .collect();
                let d = if sync {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                let info = log.append_with(&recs, d).unwrap();
                batches.push((info.base_offset, info.last_offset));
                model.extend(recs);
            }
            CrashOp::Flush => log.flush().unwrap(),
            CrashOp::Roll => log.roll().unwrap(),
            CrashOp::Truncate(f) => {
                let at = (model.len() as f64 * f) as Offset;
                let end = log.truncate_to(at).unwrap();
                model.truncate(end as usize);
                batches.retain(|b| b.1 < end);
            }
            CrashOp::Reopen => {
                log.close().unwrap();
                log = open(&fs, dir.path()).unwrap();
            }
            CrashOp::Crash { seed, mode } => {
                let flushed = log.flushed_offset();
                log.simulate_crash();
                let mode = match mode {
                    0 => CrashMode::KeepAll,
                    1 => CrashMode::DropAll,
                    _ => CrashMode::Random(seed),
                };
                fs.faults.crash(mode);
                log = open(&fs, dir.path()).unwrap();
                let end = log.end_offset();
                assert!(
                    end >= flushed,
                    "{mode:?}: lost fsync'd records ({end} < {flushed})"
                );
                assert!(end <= model.len() as Offset);
                if mode == CrashMode::KeepAll {
                    assert_eq!(
                        end,
                        model.len() as Offset,
                        "a process crash loses nothing appended"
                    );
                }
                assert!(
                    end == 0 || batches.iter().any(|b| b.1 + 1 == end),
                    "{end} is not a batch boundary"
                );
                model.truncate(end as usize);
                batches.retain(|b| b.1 < end);
            }
        }
        check(&log, &model);
    }
    log.close().unwrap();
    let log = open(&fs, dir.path()).unwrap();
    check(&log, &model);
    log.verify().unwrap();
}

#[derive(Debug, Clone)]
enum FaultOp {
    Append {
        n: u8,
        sync: bool,
    },
    Flush,
    Roll,
    Arm {
        op: u8,
        nth: u8,
        enospc: bool,
        persistent: bool,
    },
    Reopen,
}

fn fault_op() -> impl Strategy<Value = FaultOp> {
    prop_oneof![
        8 => (1u8..4, prop::bool::weighted(0.3)).prop_map(|(n, sync)| FaultOp::Append { n, sync }),
        1 => Just(FaultOp::Flush),
        1 => Just(FaultOp::Roll),
        3 => (0u8..5, 0u8..12, any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(op, nth, enospc, persistent)| FaultOp::Arm { op, nth, enospc, persistent }),
        1 => Just(FaultOp::Reopen),
    ]
}

fn arm(faults: &Faults, op: u8, nth: u8, enospc: bool, persistent: bool) -> Op {
    let op = [Op::Write, Op::Sync, Op::SetLen, Op::Rename, Op::Preallocate][op as usize % 5];
    let kind = if enospc {
        io::ErrorKind::StorageFull
    } else {
        io::ErrorKind::Other
    };
    faults.fail(op, i64::from(nth), kind, persistent);
    op
}

fn run_faults(ops: Vec<FaultOp>) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::default();
    let mut log = open(&fs, dir.path()).unwrap();
    let mut model: Vec<Record> = Vec::new();
    let mut counter = 0;
    let mut poisoned = false;
    let mut tripped = 0;
    for op in ops {
        match op {
            FaultOp::Append { n, sync } => {
                let recs: Vec<_> = (0..n)
                    .map(|_| {
                        counter += 1;
                        record(counter, 50)
                    })
                    .collect();
                let d = if sync {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                let before = log.end_offset();
                let was_poisoned = log.is_poisoned();
                match log.append_with(&recs, d) {
                    Ok(info) => {
                        assert!(!was_poisoned, "a poisoned log accepted an append");
                        assert_eq!(info.base_offset, before);
                        model.extend(recs);
                    }
                    Err(e) => {
                        assert!(
                            matches!(
                                e,
                                Error::Io { .. } | Error::DiskFull { .. } | Error::Poisoned { .. }
                            ),
                            "{e:?}"
                        );
                        if was_poisoned {
                            assert!(matches!(e, Error::Poisoned { .. }), "{e:?}");
                        }
                        if log.end_offset() != before {
                            // The batch went in and its fsync failed: the
                            // log must refuse writes from now on.
                            assert_eq!(log.end_offset(), before + u64::from(n));
                            assert!(log.is_poisoned(), "a failed fsync must poison");
                            model.extend(recs);
                        }
                    }
                }
                if log.is_poisoned() {
                    assert!(matches!(
                        log.append(&[record(0, 1)]),
                        Err(Error::Poisoned { .. })
                    ));
                    poisoned = true;
                }
            }
            FaultOp::Flush => match log.flush() {
                Ok(()) => assert!(!log.is_poisoned()),
                Err(_) => {
                    assert!(log.is_poisoned(), "a failed fsync must poison");
                    poisoned = true;
                }
            },
            FaultOp::Roll => {
                let _ = log.roll();
                poisoned |= log.is_poisoned();
            }
            FaultOp::Arm {
                op,
                nth,
                enospc,
                persistent,
            } => {
                arm(&fs.faults, op, nth, enospc, persistent);
            }
            FaultOp::Reopen => {
                if fs.faults.tripped() {
                    tripped += 1;
                }
                fs.faults.clear();
                let _ = log.close();
                log = open(&fs, dir.path()).unwrap();
                poisoned = false;
                assert!(!log.is_poisoned());
            }
        }
        // Poison lasts until the log is reopened.
        assert_eq!(
            log.is_poisoned(),
            poisoned,
            "poisoned state changed by itself"
        );
        // Whatever failed, what is readable is exactly what was appended.
        check(&log, &model);
    }
    if fs.faults.tripped() {
        tripped += 1;
    }
    fs.faults.clear();
    let _ = log.close();
    let log = open(&fs, dir.path()).unwrap();
    check(&log, &model);
    log.verify().unwrap();
    tripped
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("EMBEDLOG_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        .. ProptestConfig::default()
    })]

    #[test]
    fn crashes_keep_every_fsynced_record_and_a_clean_prefix(ops in prop::collection::vec(crash_op(), 1..50)) {
        run_crashes(ops);
    }

    #[test]
    fn injected_faults_fail_the_call_or_keep_the_data(ops in prop::collection::vec(fault_op(), 1..50)) {
        run_faults(ops);
    }
}

/// Every fault point of a fixed workload, one at a time: each kind of
/// operation, each occurrence, EIO and ENOSPC, once and persistently.
#[test]
fn every_fault_point_of_a_workload() {
    let workload = |fs: &FaultyFs, dir: &Path| -> Vec<Record> {
        let mut model = Vec::new();
        let Ok(log) = open(fs, dir) else { return model };
        for i in 0..12u64 {
            let recs = vec![record(i, 90)];
            let d = if i % 3 == 0 {
                Durability::Sync
            } else {
                Durability::Buffered
            };
            let before = log.end_offset();
            let r = log.append_with(&recs, d);
            if r.is_ok() || log.end_offset() > before {
                model.extend(recs);
            }
        }
        let _ = log.close();
        model
    };
    // Count the operations of a clean run.
    let clean = FaultyFs::default();
    let dir = tempfile::tempdir().unwrap();
    let want = workload(&clean, dir.path());
    assert_eq!(want.len(), 12);
    let mut points = 0;
    for op in [Op::Write, Op::Sync, Op::SetLen, Op::Rename, Op::Preallocate] {
        assert!(clean.faults.seen(op) > 0, "{op:?} never happens");
        for nth in 0..clean.faults.seen(op) {
            for kind in [io::ErrorKind::Other, io::ErrorKind::StorageFull] {
                for persistent in [false, true] {
                    let fs = FaultyFs::default();
                    let dir = tempfile::tempdir().unwrap();
                    fs.faults.fail(op, nth as i64, kind, persistent);
                    let model = workload(&fs, dir.path());
                    assert!(fs.faults.tripped(), "{op:?} #{nth} never happened");
                    fs.faults.clear();
                    // Reopen without faults: exactly what was acknowledged
                    // (or appended before a failed fsync) is there.
                    let log = open(&fs, dir.path()).unwrap();
                    check(&log, &model);
                    points += 1;
                }
            }
        }
    }
    assert!(points >= 100, "only {points} fault points");
    eprintln!("exercised {points} distinct fault points");
}

/// Everything readable as `(offset, record)`, going past gaps.
fn contents(log: &Log) -> Vec<(Offset, Record)> {
    let mut out = Vec::new();
    let mut at = log.start_offset();
    while at < log.end_offset() {
        let b = log.read(at, ReadLimit::bytes(700)).unwrap();
        assert!(!b.is_empty());
        for batch in b.iter() {
            let batch = batch.unwrap();
            for r in batch.records().unwrap() {
                let r = r.unwrap();
                if r.offset >= at {
                    out.push((r.offset, r.into_record()));
                }
            }
            at = at.max(batch.last_offset() + 1);
        }
    }
    out
}

/// A log of several segments with keys written over and over.
fn keyed_workload(fs: &FaultyFs, dir: &Path) -> Log {
    let log = open(fs, dir).unwrap();
    for i in 0..40u64 {
        let recs: Vec<_> = (0..1 + i % 3)
            .map(|j| {
                let n = i * 3 + j;
                let r = record(n, 30 + (n % 50) as usize).key(format!("k{}", n % 6));
                if n % 11 == 0 {
                    Record::tombstone(format!("k{}", n % 6)).timestamp(0)
                } else {
                    r
                }
            })
            .collect();
        log.append_with(&recs, Durability::Sync).unwrap();
    }
    log
}

/// Crashes at every I/O step of `step` (every write, fsync, rename, unlink
/// and resize it makes, failing that one and every later one, then a crash
/// that keeps or drops what was not fsync'd): reopening yields exactly the
/// log before or after the step, never a mix, and the step can then run to
/// the same result.
fn crash_at_every_step(name: &str, step: impl Fn(&Log) -> crate::Result<()>) {
    let clean = FaultyFs::default();
    let dir = tempfile::tempdir().unwrap();
    let log = keyed_workload(&clean, dir.path());
    let before = contents(&log);
    let ops = [Op::Write, Op::Sync, Op::SetLen, Op::Rename, Op::Remove];
    let seen: Vec<u64> = ops.iter().map(|&op| clean.faults.seen(op)).collect();
    step(&log).unwrap();
    let after = contents(&log);
    assert_ne!(before, after, "{name}: the step changes nothing");
    let counts: Vec<u64> = ops
        .iter()
        .zip(&seen)
        .map(|(&op, s)| clean.faults.seen(op) - s)
        .collect();
    log.close().unwrap();
    let mut points = 0;
    for (&op, &count) in ops.iter().zip(&counts) {
        for nth in 0..count {
            for mode in [CrashMode::KeepAll, CrashMode::DropAll] {
                let fs = FaultyFs::default();
                let dir = tempfile::tempdir().unwrap();
                let log = keyed_workload(&fs, dir.path());
                fs.faults.fail(op, nth as i64, io::ErrorKind::Other, true);
                assert!(step(&log).is_err(), "{name}: {op:?} #{nth} did not fail");
                assert!(fs.faults.tripped());
                log.simulate_crash();
                fs.faults.clear();
                fs.faults.crash(mode);
                let log = open(&fs, dir.path()).unwrap();
                let got = contents(&log);
                assert!(
                    got == before || got == after,
                    "{name}: crash at {op:?} #{nth} ({mode:?}) left neither state: {:?}",
                    got.iter().map(|r| r.0).collect::<Vec<_>>()
                );
                log.verify().unwrap();
                step(&log).unwrap();
                assert_eq!(
                    contents(&log),
                    after,
                    "{name}: {op:?} #{nth} ({mode:?}), rerun"
                );
                log.close().unwrap();
                points += 1;
            }
        }
    }
    assert!(points >= 10, "{name}: only {points} crash points");
    eprintln!("{name}: {points} crash points");
}

#[test]
fn a_crash_at_any_step_of_compaction_leaves_the_log_before_or_after() {
    crash_at_every_step("compaction", |log| {
        log.roll()?;
        log.compact(super::Compaction::default()).map(|_| ())
    });
}

#[test]
fn a_crash_at_any_step_of_retention_leaves_the_log_before_or_after() {
    crash_at_every_step("retention", |log| {
        log.enforce_retention(super::Retention::default().max_bytes(2000))
            .map(|_| ())
    });
}

/// Opening a log whose compaction was interrupted at its commit point (the
/// `.swap` file renamed and durable, the old segments still there) finishes
/// the swap in bounded memory: the swap file, here several MiB, is scanned
/// through a memory map; no whole-file read is larger than a small file.
#[test]
fn finishing_an_interrupted_swap_reads_no_segment_into_memory() {
    const BOUND: u64 = 64 << 10;
    let config = || LogConfig::default().segment_bytes(16 << 20);
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    // About 4.5 MiB in one segment; a quarter of the records superseded.
    for b in 0..400u64 {
        let recs: Vec<_> = (0..100u64)
            .map(|j| {
                let n = b * 100 + j;
                Record::new(vec![(n % 251) as u8; 100])
                    .key(format!("k{}", n % 30_000))
                    .timestamp(n as i64)
            })
            .collect();
        log.append(&recs).unwrap();
    }
    log.roll().unwrap();
    log.close().unwrap();
    // The commit point of a pass: its output under the `.swap` name beside
    // the segments it replaces. Made by compacting a copy.
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let compacted = Log::open(copy.path(), config()).unwrap();
    let r = compacted.compact(super::Compaction::default()).unwrap();
    assert_eq!((r.records_removed, r.segments_written), (10_000, 1));
    let want = contents(&compacted);
    compacted.close().unwrap();
    let name = dir.path().join("00000000000000000000.log");
    let swap = dir.path().join("00000000000000000000.log.swap");
    std::fs::copy(copy.path().join("00000000000000000000.log"), &swap).unwrap();
    let swap_len = std::fs::metadata(&swap).unwrap().len();
    assert!(swap_len > 3 << 20, "{swap_len} bytes");
    assert!(std::fs::metadata(&name).unwrap().len() > swap_len);

    let fs = FaultyFs::default();
    let log = Log::open_with(Arc::new(fs.clone()), dir.path(), config()).unwrap();
    assert!(!swap.exists(), "the swap was finished");
    assert!(
        fs.faults.largest_read() <= BOUND,
        "opening read {} bytes at once (the swap file has {swap_len})",
        fs.faults.largest_read()
    );
    assert_eq!(contents(&log), want);
    log.verify().unwrap();
}

/// A failed fsync on the log's background flush thread (`flush_interval`)
/// poisons the log and is reported through `tracing` at once, naming the
/// log's directory: nobody may append for a while to find out.
#[test]
fn a_failed_background_fsync_is_reported() {
    let events = crate::test_support::global_events();
    let fs = FaultyFs::default();
    let dir = tempfile::tempdir().unwrap();
    let config = config().flush_interval(Some(std::time::Duration::from_millis(1)));
    let log = Log::open_with(Arc::new(fs.clone()), dir.path(), config).unwrap();
    fs.faults.fail(Op::Sync, 0, io::ErrorKind::Other, true);
    log.append(&[record(1, 10)]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let path = format!("path={} ", dir.path().display());
    let reported = || {
        events
            .lock()
            .iter()
            .any(|e| e.starts_with("ERROR ") && e.contains(&path))
    };
    while !(log.is_poisoned() && reported()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no report of the failed background fsync (poisoned: {}, tripped: {}): {:?}",
            log.is_poisoned(),
            fs.faults.tripped(),
            events.lock()
        );
        std::thread::yield_now();
    }
    assert!(matches!(
        log.append(&[record(2, 10)]),
        Err(Error::Poisoned { .. })
    ));
}

//! Producer state against crashes: after random transactional appends,
//! markers, rolls, truncations, clean reopens and simulated crashes (the
//! fault seam keeping, dropping or tearing each unsynced write), the state
//! a log opens with (from its `.snapshot` and `.txnindex` files plus the
//! batches after the snapshot) is the state a replay of the whole
//! surviving log gives: the same open transactions, last stable offset and
//! aborted transactions. The live log agrees with that replay at every
//! step too.

use super::faulty::{CrashMode, FaultyFs};
use super::log::Marker;
use super::{Durability, Log, LogConfig};
use crate::record::{BatchBuilder, Record};
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(600)
        .index_interval_bytes(100)
}

#[derive(Debug, Clone)]
enum TxnOp {
    /// A transactional batch of producer `pid`.
    Data {
        pid: u8,
        n: u8,
        sync: bool,
    },
    /// A plain batch.
    Plain,
    /// A COMMIT or ABORT marker of producer `pid`.
    Marker {
        pid: u8,
        commit: bool,
    },
    Roll,
    Flush,
    Truncate(f64),
    /// Compaction (removes aborted records; keyless ones stay).
    Compact,
    /// Deletion of the records before a fraction of the log.
    DeleteBefore(f64),
    Reopen,
    Crash {
        seed: u64,
        mode: u8,
    },
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        6 => (0u8..3, 1u8..4, prop::bool::weighted(0.3)).prop_map(|(pid, n, sync)| TxnOp::Data { pid, n, sync }),
        2 => Just(TxnOp::Plain),
        4 => (0u8..3, any::<bool>()).prop_map(|(pid, commit)| TxnOp::Marker { pid, commit }),
        1 => Just(TxnOp::Roll),
        1 => Just(TxnOp::Flush),
        1 => (0.0..1.0f64).prop_map(TxnOp::Truncate),
        1 => Just(TxnOp::Compact),
        1 => (0.0..1.0f64).prop_map(TxnOp::DeleteBefore),
        1 => Just(TxnOp::Reopen),
        2 => (any::<u64>(), 0u8..3).prop_map(|(seed, mode)| TxnOp::Crash { seed, mode }),
    ]
}

/// (open transactions, last stable offset, the offsets a read-committed
/// reader returns, aborted transactions) of `log`.
type State = (
    Vec<(i64, i16, u64)>,
    u64,
    Vec<u64>,
    Vec<crate::storage::AbortedTransaction>,
);

fn state(log: &Log) -> State {
    let lso = log.last_stable_offset();
    let start = log.start_offset();
    let mut filter = crate::storage::AbortedFilter::new(log.aborted_transactions(start, u64::MAX));
    let mut visible = Vec::new();
    for batches in log.reader(start, crate::storage::ReadLimit::bytes(4096)) {
        for b in batches.unwrap().iter() {
            let b = b.unwrap();
            let is_abort = || {
                Ok(b.control_record()?
                    .is_some_and(|m| m.kind == crate::record::ControlType::Abort))
            };
            if filter.skips(b.header(), is_abort).unwrap() || b.header().is_control() {
                continue;
            }
            for r in b.records().unwrap() {
                let r = r.unwrap();
                if r.offset >= start && r.offset < lso {
                    visible.push(r.offset);
                }
            }
        }
    }
    (
        log.open_transactions(),
        lso,
        visible,
        log.aborted_transactions(start, u64::MAX),
    )
}

/// `state` without the aborted list, which may keep entries whose
/// records compaction removed (harmless, and not rebuilt by a replay).
fn visible_state(s: State) -> State {
    (s.0, s.1, s.2, Vec::new())
}

/// The state of a copy of `dir` without its snapshots and `.txnindex`
/// files: a replay of the whole log.
fn replayed(dir: &Path) -> State {
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".snapshot") || name.ends_with(".txnindex") || name == ".lock" {
            continue;
        }
        std::fs::copy(e.path(), copy.path().join(&name)).unwrap();
    }
    let log = Log::open(copy.path(), config()).unwrap();
    let s = state(&log);
    log.simulate_crash();
    s
}

fn run(ops: Vec<TxnOp>) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::default();
    let open = || Log::open_with(Arc::new(fs.clone()), dir.path(), config()).unwrap();
    let mut log = open();
    // Each producer's epoch and next sequence; a new epoch after every
    // event that may cut batches (its sequence then starts at 0).
    let mut epoch: i16 = 0;
    let mut seqs: HashMap<u8, i32> = HashMap::new();
    // Compaction or deletion ran: the aborted lists may differ from a
    // replay's (see `visible_state`).
    let mut compacted = false;
    for op in ops {
        match op {
            TxnOp::Data { pid, n, sync } => {
                let seq = seqs.entry(pid).or_insert(0);
                let mut b = BatchBuilder::new()
                    .producer(i64::from(pid), epoch, *seq)
                    .transactional(true);
                for i in 0..n {
                    b.push(&Record::new(vec![i; 20]).timestamp(1));
                }
                let d = if sync {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                log.append_batch(&mut b.finish().unwrap(), d).unwrap();
                *seq += i32::from(n);
            }
            TxnOp::Plain => {
                log.append(&[Record::new("plain")]).unwrap();
            }
            TxnOp::Marker { pid, commit } => {
                let m = Marker {
                    producer_id: i64::from(pid),
                    epoch,
                    commit,
                    coordinator_epoch: 0,
                };
                log.append_marker(m, Durability::Buffered).unwrap();
            }
            TxnOp::Roll => log.roll().unwrap(),
            TxnOp::Flush => log.flush().unwrap(),
            TxnOp::Truncate(f) => {
                let at = (log.end_offset() as f64 * f) as u64;
                log.truncate_to(at.max(log.start_offset())).unwrap();
                epoch += 1;
                seqs.clear();
            }
            TxnOp::Compact => {
                if log.roll().is_ok() {
                    log.compact(crate::Compaction::default()).unwrap();
                    compacted = true;
                }
            }
            TxnOp::DeleteBefore(f) => {
                let at = log.start_offset()
                    + ((log.end_offset() - log.start_offset()) as f64 * f) as u64;
                log.delete_records_before(at).unwrap();
                compacted = true;
            }
            TxnOp::Reopen => {
                log.close().unwrap();
                log = open();
            }
            TxnOp::Crash { seed, mode } => {
                log.simulate_crash();
                fs.faults.crash(match mode {
                    0 => CrashMode::KeepAll,
                    1 => CrashMode::DropAll,
                    _ => CrashMode::Random(seed),
                });
                log = open();
                epoch += 1;
                seqs.clear();
            }
        }
        check(&log, dir.path(), compacted);
    }
    log.close().unwrap();
    let log = open();
    check(&log, dir.path(), compacted);
}

fn check(log: &Log, dir: &Path, compacted: bool) {
    let (live, replay) = (state(log), replayed(dir));
    if compacted {
        assert_eq!(visible_state(live), visible_state(replay));
    } else {
        assert_eq!(live, replay);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("EMBEDLOG_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        .. ProptestConfig::default()
    })]
    #[test]
    fn producer_state_after_crashes_is_a_replay_of_the_log(ops in proptest::collection::vec(txn_op(), 1..60)) {
        run(ops);
    }
}

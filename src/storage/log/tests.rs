//! Unit tests of the log: fault injection, group commit, flush policies,
//! configuration.

use super::*;
use crate::record::{Record, TimestampType};
use crate::storage::faulty::{FaultyFs, Op};
use std::io;
use std::time::Instant;

fn rec(i: u64) -> Record {
    Record::new(format!("value-{i}"))
        .key(format!("k{i}"))
        .timestamp(1000 + i as i64)
}

fn values(log: &Log, from: Offset) -> Vec<(Offset, String)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.end_offset() {
        let b = log.read(at, ReadLimit::bytes(1 << 16)).unwrap();
        for r in b.records() {
            let r = r.unwrap();
            at = r.offset + 1;
            out.push((
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn failed_fsync_poisons_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::default();
    let log = Log::open_with(Arc::new(fs.clone()), dir.path(), LogConfig::default()).unwrap();
    log.append(&[rec(0)]).unwrap();
    fs.faults.fail(Op::Sync, 0, io::ErrorKind::Other, false);
    let e = log.append_with(&[rec(1)], Durability::Sync).unwrap_err();
    assert!(matches!(e, Error::Io { op: "fsync", .. }), "{e:?}");
    fs.faults.clear();
    // Even though the fault is gone, the log refuses writes and syncs.
    assert!(matches!(log.append(&[rec(2)]), Err(Error::Poisoned { .. })));
    assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));
    // Reads still work.
    assert_eq!(values(&log, 0).len(), 2);
    assert!(log.close().is_err());
    let log = Log::open_with(Arc::new(fs), dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        log.end_offset(),
        2,
        "the unsynced record is still in the OS"
    );
    log.append(&[rec(2)]).unwrap();
    log.close().unwrap();
}

#[test]
fn failed_write_appends_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::default();
    let log = Log::open_with(Arc::new(fs.clone()), dir.path(), LogConfig::default()).unwrap();
    log.append(&[rec(0)]).unwrap();
    fs.faults
        .fail(Op::Write, 0, io::ErrorKind::StorageFull, false);
    let e = log.append(&[rec(1)]).unwrap_err();
    assert!(matches!(e, Error::DiskFull { .. }), "{e:?}");
    assert_eq!(log.end_offset(), 1);
    // The next append takes the offset the failed one would have had.
    assert_eq!(log.append(&[rec(2)]).unwrap().base_offset, 1);
    assert_eq!(
        values(&log, 0),
        vec![(0, "value-0".into()), (1, "value-2".into())]
    );
    log.close().unwrap();
    let log = Log::open_with(Arc::new(fs), dir.path(), LogConfig::default()).unwrap();
    assert_eq!(values(&log, 0).len(), 2);
}

#[test]
fn failed_index_write_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::default();
    let config = LogConfig::default().index_interval_bytes(0);
    let log = Log::open_with(Arc::new(fs.clone()), dir.path(), config.clone()).unwrap();
    log.append(&[rec(0)]).unwrap();
    // Second write of the next append is its offset index entry.
    fs.faults.fail(Op::Write, 1, io::ErrorKind::Other, false);
    assert!(log.append(&[rec(1)]).is_err());
    assert!(fs.faults.tripped());
    fs.faults.clear();
    for i in 1..20 {
        log.append(&[rec(i)]).unwrap();
    }
    for from in 0..20 {
        assert_eq!(values(&log, from).len(), 20 - from as usize);
    }
    log.close().unwrap();
    let log = Log::open_with(Arc::new(fs), dir.path(), config).unwrap();
    assert_eq!(values(&log, 0).len(), 20);
}

#[test]
fn an_fsync_that_straddles_a_truncation_does_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for i in 0..10 {
        log.append(&[rec(i)]).unwrap();
    }
    // An fsync starts (records its end and epoch)...
    let (upto, epoch) = log.inner.flush_once().unwrap();
    assert_eq!(upto, 10);
    // ...a truncation replaces files meanwhile, and new records arrive.
    assert_eq!(log.truncate_to(5).unwrap(), 5);
    for i in 0..5 {
        log.append(&[rec(100 + i)]).unwrap();
    }
    let mut st = log.inner.sync.lock();
    st.advance(upto, epoch, log.inner.truncations.load(Ordering::SeqCst));
    assert!(
        st.synced <= 5,
        "the old fsync must not vouch for the new files: {}",
        st.synced
    );
    drop(st);
    log.flush().unwrap();
    assert_eq!(log.flushed_offset(), 10);
}

#[test]
fn log_append_time_and_set_config() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(crate::ManualClock::new(42));
    let log = Log::open(dir.path(), LogConfig::default().clock(clock.clone())).unwrap();
    log.append(&[rec(0)]).unwrap();
    log.set_config(
        log.config()
            .timestamp_type(TimestampType::LogAppendTime)
            .segment_bytes(4096),
    )
    .unwrap();
    clock.set(77);
    let info = log.append(&[rec(1), rec(2)]).unwrap();
    assert_eq!(info.max_timestamp, 77);
    let got: Vec<_> = log
        .read(0, ReadLimit::default())
        .unwrap()
        .records()
        .map(|r| r.unwrap().timestamp)
        .collect();
    assert_eq!(got, [1000, 77, 77]);
    assert!(log.verify().is_ok(), "the CRC was recomputed");
    assert!(matches!(
        log.set_config(LogConfig::default().segment_bytes(1)),
        Err(Error::InvalidConfig(_))
    ));
    assert_eq!(log.config().get_segment_bytes(), 4096);
}

#[test]
fn a_batch_larger_than_the_empty_active_segment_after_limits_grew() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogConfig::default()
        .segment_bytes(4096)
        .max_batch_bytes(4096);
    let log = Log::open(dir.path(), small.clone()).unwrap();
    log.append(&[rec(0)]).unwrap();
    log.roll().unwrap(); // the new, empty active segment is mapped at 4 KiB
    log.set_config(small.max_batch_bytes(64 << 10)).unwrap();
    let big = Record::new(vec![7u8; 20_000]).timestamp(1);
    let info = log.append(std::slice::from_ref(&big)).unwrap();
    assert_eq!(info.base_offset, 1);
    let got: Vec<_> = log
        .read(1, ReadLimit::default())
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(got[0].value, big.value);
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), 2);
    log.verify().unwrap();
}

#[test]
fn an_abandoned_log_writes_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default().segment_bytes(200)).unwrap();
    for i in 0..10 {
        log.append(&[rec(i)]).unwrap();
    }
    log.abandon();
    let cp = dir.path().join("embedlog.checkpoint");
    let before = std::fs::read(&cp).unwrap();
    assert!(matches!(log.flush(), Err(Error::Closed)));
    assert!(matches!(log.append(&[rec(11)]), Err(Error::Closed)));
    drop(log);
    assert_eq!(
        std::fs::read(&cp).unwrap(),
        before,
        "the checkpoint was rewritten"
    );
}

#[test]
fn sync_to_an_offset_a_truncation_removed_returns() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for i in 0..10 {
        log.append(&[rec(i)]).unwrap();
    }
    log.truncate_to(5).unwrap();
    log.flush_to(10).unwrap(); // would loop forever waiting for 10
    log.inner.sync_to(10).unwrap();
}

#[test]
fn group_commit_shares_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Log::open(
            dir.path(),
            LogConfig::default().durability(Durability::Sync),
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    log.append(&[rec(t * 1000 + i)]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.end_offset(), 400);
    assert_eq!(log.flushed_offset(), 400);
}

#[test]
fn flush_policy_by_messages() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default().flush_messages(Some(3))).unwrap();
    log.append(&[rec(0)]).unwrap();
    log.append(&[rec(1)]).unwrap();
    assert_eq!(log.flushed_offset(), 0);
    log.append(&[rec(2)]).unwrap();
    assert_eq!(log.flushed_offset(), 3);
}

#[test]
fn flush_policy_by_interval_runs_in_background() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig::default().flush_interval(Some(Duration::from_millis(5))),
    )
    .unwrap();
    log.append(&[rec(0)]).unwrap();
    // Waits on the flusher's effect, not on a timing: it must get there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.flushed_offset() < 1 {
        assert!(Instant::now() < deadline, "background flush never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
    log.close().unwrap();
}

#[test]
fn age_roll_uses_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(crate::ManualClock::new(0));
    let config = LogConfig::default()
        .segment_age(Some(Duration::from_secs(60)))
        .clock(clock.clone());
    let log = Log::open(dir.path(), config).unwrap();
    log.append(&[rec(0)]).unwrap();
    clock.advance(59_999);
    log.append(&[rec(1)]).unwrap();
    assert_eq!(log.segment_count(), 1);
    clock.advance(1);
    log.append(&[rec(2)]).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(values(&log, 0).len(), 3);
}

#[test]
fn invalid_configs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for c in [
        LogConfig::default().segment_bytes(10),
        LogConfig::default().segment_bytes(1 << 31),
        LogConfig::default().max_batch_bytes(0),
        LogConfig::default().flush_messages(Some(0)),
        LogConfig::default().flush_interval(Some(Duration::ZERO)),
    ] {
        assert!(matches!(
            Log::open(dir.path(), c),
            Err(Error::InvalidConfig(_))
        ));
    }
}

#[test]
fn recovery_reports_what_it_scanned_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&[rec(0), rec(1)]).unwrap();
    log.append(&[rec(2)]).unwrap();
    log.close().unwrap();
    // A torn write after the clean close: half a batch of garbage.
    let seg = dir.path().join("00000000000000000000.log");
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 40]).unwrap();
    drop(f);
    let (log, events) =
        crate::test_support::capture_events(|| Log::open(dir.path(), LogConfig::default()));
    let log = log.unwrap();
    assert_eq!(log.end_offset(), 3);
    let cut: Vec<&String> = events
        .iter()
        .filter(|e| e.contains("cut a torn tail"))
        .collect();
    assert_eq!(cut.len(), 1, "{events:#?}");
    assert!(
        cut[0].starts_with("WARN ")
            && cut[0].contains(&format!("path={} ", seg.display()))
            && cut[0].contains(&format!("position={len} "))
            && cut[0].contains("bytes_cut=40 ")
            && cut[0].contains("next_offset=3 "),
        "{}",
        cut[0]
    );
    let opened: Vec<&String> = events.iter().filter(|e| e.contains("log opened")).collect();
    assert_eq!(opened.len(), 1, "{events:#?}");
    assert!(
        opened[0].starts_with("INFO ")
            && opened[0].contains("segments=1 ")
            && opened[0].contains("next_offset=3 ")
            && opened[0].contains("recovered=true "),
        "{}",
        opened[0]
    );
    log.close().unwrap();
    // A clean open scans nothing and says so.
    let (log, events) =
        crate::test_support::capture_events(|| Log::open(dir.path(), LogConfig::default()));
    let opened: Vec<&String> = events.iter().filter(|e| e.contains("log opened")).collect();
    assert!(opened[0].contains("recovered=false "), "{}", opened[0]);
    assert!(!events.iter().any(|e| e.contains("torn tail")));
    log.unwrap().close().unwrap();
}

#[test]
fn appends_wake_the_watchers_registered_and_only_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    log.append(&[rec(0)]).unwrap();
    assert_eq!((a.generation(), b.generation()), (0, 0), "none registered");
    log.watch(a.clone());
    log.watch(b.clone());
    log.append(&[rec(1)]).unwrap();
    assert_eq!((a.generation(), b.generation()), (1, 1));
    log.unwatch(&a);
    log.append(&[rec(2)]).unwrap();
    assert_eq!((a.generation(), b.generation()), (1, 2));
    log.unwatch(&b);
    log.append(&[rec(3)]).unwrap();
    assert_eq!((a.generation(), b.generation()), (1, 2), "none left");
    log.watch(a.clone());
    log.append(&[rec(4)]).unwrap();
    assert_eq!((a.generation(), b.generation()), (2, 2));
    log.close().unwrap();
}

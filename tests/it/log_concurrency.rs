//! One writer and many readers: readers never see a partial batch or a wrong
//! record, waiting readers are woken by appends, and bytes a reader holds
//! stay valid after their segment rolls, is truncated away or deleted.

use crate::common::*;
use embedlog::{Error, Log, LogConfig, Offset, ReadLimit, Record};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The value written at `offset`: its length and bytes derive from it.
fn value_for(offset: Offset) -> Vec<u8> {
    let len = (offset * 37 % 500) as usize;
    (0..len).map(|i| (offset as usize + i) as u8).collect()
}

#[test]
fn concurrent_readers_see_whole_correct_batches() {
    let dir = tempdir();
    let log = Arc::new(
        Log::open(
            dir.path(),
            LogConfig::default()
                .segment_bytes(32 << 10)
                .index_interval_bytes(512),
        )
        .unwrap(),
    );
    let total: Offset = 20_000;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let log = log.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut next = 0;
                let mut checked = 0u64;
                // Tail the log: wait for each new record, check every byte.
                while next < total {
                    if !log.wait_for(next, Duration::from_secs(30)) {
                        panic!("reader {t} starved at {next}");
                    }
                    let b = log.read(next, ReadLimit::bytes(8 << 10)).unwrap();
                    for r in b.records() {
                        let r = r.unwrap();
                        assert_eq!(r.offset, next, "reader {t}");
                        assert_eq!(&r.value.unwrap()[..], &value_for(r.offset)[..]);
                        next += 1;
                        checked += 1;
                    }
                    // And a random-offset read now and then.
                    let probe = (next * 7919) % next.max(1);
                    let b = log.read(probe, ReadLimit::bytes(1)).unwrap();
                    let r = b.records().next().unwrap().unwrap();
                    assert_eq!(r.offset, probe);
                    assert_eq!(&r.value.unwrap()[..], &value_for(probe)[..]);
                }
                assert!(done.load(Ordering::SeqCst) || next == total);
                checked
            })
        })
        .collect();
    let mut offset = 0;
    while offset < total {
        let n = 1 + offset % 5;
        let recs: Vec<_> = (offset..(offset + n).min(total))
            .map(|o| Record::new(value_for(o)).timestamp(o as i64))
            .collect();
        let info = log.append(&recs).unwrap();
        assert_eq!(info.base_offset, offset);
        offset = info.last_offset + 1;
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        assert_eq!(r.join().unwrap(), total);
    }
    assert!(log.segment_count() > 10);
}

#[test]
fn wait_for_returns_when_data_arrives_or_times_out() {
    let dir = tempdir();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    assert!(
        !log.wait_for(0, Duration::from_millis(20)),
        "nothing there yet"
    );
    let waiter = {
        let log = log.clone();
        std::thread::spawn(move || log.wait_for(0, Duration::from_secs(60)))
    };
    std::thread::sleep(Duration::from_millis(20));
    log.append(&[Record::new("x")]).unwrap();
    assert!(waiter.join().unwrap());
    assert!(log.wait_for(0, Duration::ZERO));
}

#[test]
fn held_batches_survive_roll_truncation_and_deletion() {
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default().segment_bytes(4096)).unwrap();
    for o in 0..200u64 {
        log.append(&[Record::new(value_for(o)).timestamp(1)])
            .unwrap();
    }
    let held: Vec<_> = (0..200u64)
        .step_by(13)
        .map(|o| (o, log.read(o, ReadLimit::bytes(1)).unwrap()))
        .collect();
    log.truncate_to(150).unwrap();
    log.delete_records_before(120).unwrap();
    log.roll().unwrap();
    for o in 150..170u64 {
        log.append(&[Record::new("new").timestamp(2)]).unwrap();
        assert_eq!(log.end_offset(), o + 1);
    }
    assert!(matches!(
        log.read(0, ReadLimit::default()),
        Err(Error::OffsetOutOfRange { start: 120, .. })
    ));
    // Everything read before still decodes to what was written.
    for (o, b) in held {
        let r = b.records().next().unwrap().unwrap();
        assert_eq!(r.offset, o);
        assert_eq!(&r.value.unwrap()[..], &value_for(o)[..]);
    }
    let after: Vec<_> = read_all(&log).unwrap();
    assert_eq!(after.len(), 50);
    assert_eq!(after[0].offset, 120);
    assert_eq!(&after[29].value.as_ref().unwrap()[..], &value_for(149)[..]);
    assert_eq!(&after[30].value.as_ref().unwrap()[..], b"new");
}

#[test]
fn a_second_open_is_refused_until_the_first_closes() {
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    match Log::open(dir.path(), LogConfig::default()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    log.close().unwrap();
    Log::open(dir.path(), LogConfig::default()).unwrap();
}

#[test]
fn closed_log_refuses_work_and_waiters_wake() {
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&[Record::new("x")]).unwrap();
    log.close().unwrap();
    // Reopen after close keeps data; segment files follow Kafka's naming.
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), 1);
    assert!(dir.path().join("00000000000000000000.log").exists());
    assert!(dir.path().join("00000000000000000000.index").exists());
    assert!(dir.path().join("00000000000000000000.timeindex").exists());
}

#[test]
fn rolls_by_size_name_segments_by_base_offset() {
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default().segment_bytes(1000)).unwrap();
    let mut bases = vec![0];
    let mut last_count = 1;
    for o in 0..100u64 {
        log.append(&[Record::new(vec![1u8; 100]).timestamp(o as i64)])
            .unwrap();
        if log.segment_count() > last_count {
            last_count = log.segment_count();
            bases.push(o);
        }
    }
    let files: Vec<_> = segment_logs(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let want: Vec<_> = bases.iter().map(|b| format!("{b:020}.log")).collect();
    assert_eq!(files, want);
    // No segment exceeds its size budget.
    for p in segment_logs(dir.path()) {
        assert!(std::fs::metadata(p).unwrap().len() <= 1000);
    }
    assert_eq!(log.verify().unwrap().records, 100);
}

#[test]
fn offsets_out_of_range_say_what_is_valid() {
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&[Record::new("a"), Record::new("b")]).unwrap();
    assert!(log.read(2, ReadLimit::default()).unwrap().is_empty());
    match log.read(3, ReadLimit::default()) {
        Err(
            e @ Error::OffsetOutOfRange {
                requested: 3,
                start: 0,
                end: 2,
            },
        ) => {
            assert!(e.to_string().contains("0..2"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        log.delete_records_before(5),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.append::<Record>(&[]),
        Err(Error::InvalidArgument(_))
    ));
    let big = Record::new(vec![0u8; 2 << 20]);
    assert!(matches!(
        log.append(&[big]),
        Err(Error::BatchTooLarge { .. })
    ));
}

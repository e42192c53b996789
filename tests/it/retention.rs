//! Delete retention: segments whose newest record is older than
//! `retention.ms` (by the broker's clock) or that push a partition past
//! `retention.bytes` are removed, oldest first and never the active one; the
//! start offset moves durably; readers keep the bytes they hold; a crash
//! between the start-offset update and the file deletion is finished by the
//! next open. Triggered explicitly (`Admin::run_retention`), so nothing here
//! sleeps to wait for it.

use crate::common;
use embedlog::{
    Broker, ConsumerConfig, Log, LogConfig, ManualClock, OffsetReset, Record, Retention,
    TopicConfig,
};
use std::sync::Arc;
use std::time::Duration;

const HOUR: i64 = 3_600_000;

/// A topic of one partition with small segments; record `i` has timestamp
/// `i` hours. Returns the segment bases.
fn setup(clock: Arc<ManualClock>, config: TopicConfig) -> (tempfile::TempDir, Broker, Vec<u64>) {
    setup_with(clock, config, Duration::from_secs(3600))
}

fn setup_with(
    clock: Arc<ManualClock>,
    config: TopicConfig,
    check: Duration,
) -> (tempfile::TempDir, Broker, Vec<u64>) {
    let dir = common::tempdir();
    let broker = Broker::builder(dir.path())
        .clock(clock)
        .housekeeping_interval(Duration::from_millis(5))
        .retention_check_interval(check)
        .open()
        .unwrap();
    let t = broker
        .admin()
        .create_topic("t", config.segment_bytes(400))
        .unwrap();
    let p = t.partition(0).unwrap();
    let mut bases = vec![0];
    let mut segments = 1;
    for i in 0..60i64 {
        p.append(&[Record::new(vec![b'x'; 60]).timestamp(i * HOUR)])
            .unwrap();
        if p.log().segment_count() > segments {
            segments = p.log().segment_count();
            bases.push(i as u64);
        }
    }
    (dir, broker, bases)
}

#[test]
fn time_retention_removes_exactly_the_expired_segments() {
    let clock = Arc::new(ManualClock::new(0));
    let ten_hours = TopicConfig::default().retention(Some(Duration::from_secs(10 * 3600)));
    let (_dir, broker, bases) = setup(clock.clone(), ten_hours);
    assert!(bases.len() >= 8, "{bases:?}");
    let p = broker.partition("t", 0).unwrap();
    for now in [59 * HOUR, 65 * HOUR, 75 * HOUR, 1000 * HOUR] {
        clock.set(now);
        broker.admin().run_retention().unwrap();
        // A segment goes when its newest record (the one before the next
        // segment's base) is more than 10 hours old, oldest first.
        let mut expected_start = 0;
        for w in bases.windows(2) {
            let newest = (w[1] as i64 - 1) * HOUR;
            if now - newest > 10 * HOUR {
                expected_start = w[1];
            } else {
                break;
            }
        }
        assert_eq!(p.start_offset(), expected_start, "at {}h", now / HOUR);
        assert_eq!(p.end_offset(), 60);
    }
    // The active segment survives even when everything is expired.
    assert_eq!(p.log().segment_count(), 1);
    assert_eq!(p.start_offset(), *bases.last().unwrap());
}

#[test]
fn size_retention_keeps_a_partition_within_budget_plus_one_segment() {
    let clock = Arc::new(ManualClock::new(0));
    let budget = 1000;
    let (_dir, broker, _) = setup(
        clock,
        TopicConfig::default()
            .retention(None)
            .retention_bytes(Some(budget)),
    );
    let p = broker.partition("t", 0).unwrap();
    let before = p.log().size_bytes();
    assert!(before > 3 * budget);
    let report = broker.admin().run_retention().unwrap();
    let after = p.log().size_bytes();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].1.bytes_deleted, before - after);
    assert!(after >= budget, "never below the budget: {after}");
    assert!(
        after < budget + 400,
        "within the budget plus one segment: {after}"
    );
    // Reads start at the new start; earlier offsets are out of range.
    let start = p.start_offset();
    assert!(
        p.read(start, Default::default())
            .unwrap()
            .records()
            .next()
            .is_some()
    );
    assert!(p.read(start - 1, Default::default()).is_err());
}

#[test]
fn retention_changes_at_run_time_and_consumers_reset() {
    let clock = Arc::new(ManualClock::new(100 * HOUR));
    let (dir, broker, _) = setup(clock, TopicConfig::default().retention(None));
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Earliest)
            .max_poll_records(5),
    );
    c.assign([("t", 0)]).unwrap();
    let held = c.poll(Duration::ZERO).unwrap();
    assert_eq!(held[0].offset, 0);
    assert!(
        broker.admin().run_retention().unwrap().is_empty(),
        "no retention: nothing goes"
    );
    let config = broker
        .topic("t")
        .unwrap()
        .config()
        .retention(Some(Duration::from_secs(3600)));
    broker.admin().alter_config("t", config).unwrap();
    broker.admin().run_retention().unwrap();
    let start = broker.partition("t", 0).unwrap().start_offset();
    assert!(start > 5);
    // The consumer's position fell below the start: the reset policy applies.
    assert_eq!(c.poll(Duration::ZERO).unwrap()[0].offset, start);
    // Records it held from deleted segments are still intact.
    assert_eq!(held[0].value(), Some(&[b'x'; 60][..]));
    // The new start offset and the configuration survive a reopen.
    broker.close().unwrap();
    drop((broker, c));
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.partition("t", 0).unwrap().start_offset(), start);
    assert_eq!(
        broker
            .topic("t")
            .unwrap()
            .config()
            .get_retention()
            .max_age_ms,
        Some(3_600_000)
    );
}

#[test]
fn a_deletion_interrupted_after_the_start_moved_is_finished_on_open() {
    let dir = common::tempdir();
    let config = LogConfig::default().segment_bytes(400);
    let log = Log::open(dir.path(), config.clone()).unwrap();
    for i in 0..60 {
        log.append(&[Record::new(vec![b'x'; 60]).timestamp(i)])
            .unwrap();
    }
    let segments = common::segment_logs(dir.path());
    let backup = common::copy_dir(dir.path());
    let report = log
        .enforce_retention(Retention::default().max_bytes(1000))
        .unwrap();
    assert!(report.segments_deleted > 0);
    let start = log.start_offset();
    log.close().unwrap();
    // Put the deleted segments' files back: as if the process died after the
    // new start offset was recorded but before the files were unlinked.
    for s in &segments {
        let name = s.file_name().unwrap();
        if !dir.path().join(name).exists() {
            for ext in ["log", "index", "timeindex"] {
                let n = std::path::Path::new(name).with_extension(ext);
                std::fs::copy(backup.path().join(&n), dir.path().join(&n)).unwrap();
            }
        }
    }
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.start_offset(), start);
    assert_eq!(
        log.segment_count(),
        segments.len() - report.segments_deleted
    );
    assert_eq!(common::read_all(&log).unwrap().len() as u64, 60 - start);
    assert_eq!(
        common::segment_logs(dir.path()).len(),
        segments.len() - report.segments_deleted
    );
}

#[test]
fn the_background_thread_applies_retention() {
    // Retention is checked every hour of the broker's clock: moving the
    // manual clock makes the background thread (awake every 5 ms of real
    // time) apply it; real time passing never would. The test waits (with
    // a generous bound) for the effect, not for a time.
    let clock = Arc::new(ManualClock::new(0));
    let hour = TopicConfig::default().retention(Some(Duration::from_secs(3600)));
    let (_dir, broker, bases) = setup_with(clock.clone(), hour, Duration::from_secs(3600));
    clock.set(1000 * HOUR);
    let p = broker.partition("t", 0).unwrap();
    // A deletion moves the start offset (durably) before it drops the
    // segments, so a reader can see the new start with the old segments
    // still listed: wait for the whole effect, the segments gone.
    common::wait_until("retention runs in the background", || {
        p.log().segment_count() == 1
    });
    assert_eq!(p.start_offset(), *bases.last().unwrap());
}

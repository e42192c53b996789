//! Compacted topics through the broker: the cleanup settings persist and
//! change at run time, `Admin::compact_now` and the background cleaner
//! compact, the producer refuses keyless records, consumers read across the
//! gaps, and delete retention leaves `compact`-only topics alone.

use crate::common;
use embedlog::{
    Broker, CleanupPolicy, ConsumerConfig, Error, ManualClock, OffsetReset, ProducerConfig, Record,
    TopicConfig,
};
use std::sync::Arc;
use std::time::Duration;

fn compacted() -> TopicConfig {
    TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .segment_bytes(1024)
}

fn no_cleaner(dir: &std::path::Path) -> Broker {
    Broker::builder(dir).cleaner(false).open().unwrap()
}

#[test]
fn cleanup_settings_persist_and_change_at_run_time() {
    let dir = common::tempdir();
    let broker = no_cleaner(dir.path());
    let config = compacted()
        .delete_retention(Duration::from_secs(60))
        .min_compaction_lag(Duration::from_secs(5))
        .min_cleanable_dirty_ratio(0.25);
    broker.admin().create_topic("t", config.clone()).unwrap();
    broker.close().unwrap();
    let broker = no_cleaner(dir.path());
    let got = broker.admin().describe_topic("t").unwrap().config;
    assert_eq!(got, config);
    let both = config.clone().cleanup_policy(CleanupPolicy::CompactDelete);
    broker.admin().alter_config("t", both.clone()).unwrap();
    assert_eq!(
        broker.topic("t").unwrap().config().get_cleanup_policy(),
        CleanupPolicy::CompactDelete
    );
    broker.close().unwrap();
    let broker = no_cleaner(dir.path());
    assert_eq!(broker.admin().describe_topic("t").unwrap().config, both);
    for bad in [-0.1, 1.5, f64::NAN] {
        let e = broker
            .admin()
            .create_topic("u", compacted().min_cleanable_dirty_ratio(bad))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)), "{bad}: {e}");
    }
}

#[test]
fn compacted_topics_refuse_keyless_records_and_compact_now_checks_the_policy() {
    let dir = common::tempdir();
    let broker = no_cleaner(dir.path());
    broker.admin().create_topic("table", compacted()).unwrap();
    broker
        .admin()
        .create_topic("events", TopicConfig::default())
        .unwrap();
    let producer = broker.producer(ProducerConfig::default());
    let e = producer.send("table", Record::new("no key")).unwrap_err();
    assert!(
        matches!(&e, Error::KeyRequired { topic } if topic == "table"),
        "{e}"
    );
    producer.send("events", Record::new("no key")).unwrap();
    producer.send("table", Record::new("v").key("k")).unwrap();
    producer.flush().unwrap();
    let e = broker.admin().compact_now("events").unwrap_err();
    assert!(matches!(e, Error::TopicNotCompacted { .. }), "{e}");
    let e = broker.admin().compact_now("nope").unwrap_err();
    assert!(matches!(e, Error::UnknownTopic { .. }), "{e}");
}

/// A consumer polling a compacted partition, one record at a time (so
/// polls stop inside batches), gets exactly the latest value of each key at
/// its original offset, and its position moves past the gaps.
#[test]
fn consumers_read_the_latest_value_of_each_key_across_gaps() {
    let dir = common::tempdir();
    let broker = no_cleaner(dir.path());
    let t = broker.admin().create_topic("table", compacted()).unwrap();
    let p = t.partition(0).unwrap();
    let mut latest = std::collections::BTreeMap::new();
    for i in 0..300u64 {
        let key = format!("user-{}", (i * 7) % 13);
        // Several records a batch, so that batches keep some and lose some.
        p.append(&[Record::new(format!("v{i}")).key(key.clone())])
            .unwrap();
        latest.insert(key, i);
    }
    // The last batch has two records of one key: a gap at the batch's end.
    p.append(&[Record::new("a").key("z"), Record::new("b").key("z")])
        .unwrap();
    latest.insert("z".into(), 301);
    p.roll().unwrap();
    let reports = broker.admin().compact_now("table").unwrap();
    let removed: u64 = reports.iter().map(|r| r.1.records_removed).sum();
    assert_eq!(removed, 302 - 14);
    let mut want: Vec<(u64, String)> = latest.iter().map(|(k, &o)| (o, k.clone())).collect();
    want.sort();
    let config = ConsumerConfig::default()
        .offset_reset(OffsetReset::Earliest)
        .max_poll_records(1);
    let mut consumer = broker.consumer(config);
    consumer.assign(&[("table", 0)]).unwrap();
    let mut got = Vec::new();
    for _ in 0..100 {
        let records = consumer.poll(Duration::from_millis(1)).unwrap();
        if records.is_empty() {
            break;
        }
        for r in records {
            got.push((
                r.offset,
                String::from_utf8(r.key().unwrap().to_vec()).unwrap(),
            ));
        }
    }
    assert_eq!(got, want);
    assert_eq!(consumer.position(("table", 0)).unwrap(), 302);
    // The batch API moves past gaps too.
    let mut consumer =
        broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    consumer.assign(&[("table", 0)]).unwrap();
    let mut n = 0;
    while let Ok(batches) = consumer.poll_batches(Duration::from_millis(1)) {
        if batches.is_empty() {
            break;
        }
        for (_, b) in batches {
            n += b.records().count();
        }
    }
    assert_eq!(n, want.len());
}

#[test]
fn the_background_cleaner_compacts_dirty_partitions() {
    let dir = common::tempdir();
    let broker = Broker::builder(dir.path())
        .cleaner_backoff(Duration::from_millis(5))
        .open()
        .unwrap();
    let t = broker
        .admin()
        .create_topic("table", compacted().partitions(2))
        .unwrap();
    for p in t.partitions() {
        for i in 0..200u64 {
            p.append(&[Record::new(format!("v{i}")).key(format!("k{}", i % 5))])
                .unwrap();
        }
        p.roll().unwrap();
    }
    common::wait_until("the cleaner cleans both partitions", || {
        t.partitions().iter().all(|p| p.log().cleaned_to() >= 200)
    });
    for p in t.partitions() {
        assert_eq!(common::read_all(&p.log()).unwrap().len(), 5);
        assert_eq!(p.log().dirty_ratio(), 0.0);
    }
    // Close stops it (and returns).
    broker.close().unwrap();
}

/// The background cleaner leaves a partition whose dirty ratio is below its
/// topic's `min.cleanable.dirty.ratio` alone, round after round, and cleans
/// it once the minimum is lowered. That rounds went by is observed, not
/// timed: a witness topic, made a little dirty again and again, is cleaned
/// each time, and each of those rounds also looked at the table. (Exactly
/// when a round looks is the thread's business; a pass below the ratio is
/// never allowed, also not by a round that chose the table earlier: the
/// check is atomic with the pass, see `src/cleaner_tests.rs`.)
#[test]
fn a_min_dirty_ratio_holds_the_cleaner_back() {
    let dir = common::tempdir();
    let broker = Broker::builder(dir.path())
        .cleaner_backoff(Duration::from_millis(1))
        .open()
        .unwrap();
    let t = broker
        .admin()
        .create_topic("table", compacted().min_cleanable_dirty_ratio(1.0))
        .unwrap();
    let p = t.partition(0).unwrap();
    for i in 0..100u64 {
        p.append(&[Record::new(format!("v{i}")).key(format!("k{}", i % 5))])
            .unwrap();
    }
    p.roll().unwrap();
    broker.admin().compact_now("table").unwrap();
    // Half clean, half dirty: below a ratio of 1, the cleaner leaves it.
    for i in 0..100u64 {
        p.append(&[Record::new(format!("w{i}")).key(format!("k{}", i % 5))])
            .unwrap();
    }
    p.roll().unwrap();
    let ratio = p.log().dirty_ratio();
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    let cleaned = p.log().cleaned_to();
    assert_eq!(cleaned, 100);
    // The witness: 200 distinct keys stay clean; a few new records make
    // it dirty enough for its minimum, and less dirty than the table.
    let w = broker
        .admin()
        .create_topic("witness", compacted().min_cleanable_dirty_ratio(0.001))
        .unwrap()
        .partition(0)
        .unwrap();
    for i in 0..200u64 {
        w.append(&[Record::new(format!("x{i}")).key(format!("w{i}"))])
            .unwrap();
    }
    for round in 0..10u64 {
        w.roll().unwrap();
        let end = w.end_offset();
        common::wait_until("the cleaner cleans the witness", || {
            w.log().cleaned_to() >= end
        });
        assert_eq!(p.log().cleaned_to(), cleaned, "after witness round {round}");
        for i in 0..5 {
            w.append(&[Record::new(format!("y{round}")).key(format!("w{i}"))])
                .unwrap();
        }
    }
    // A lower ratio lets it run.
    broker
        .admin()
        .alter_config("table", compacted().min_cleanable_dirty_ratio(0.1))
        .unwrap();
    common::wait_until("the cleaner cleans the table", || {
        p.log().cleaned_to() > cleaned
    });
    assert_eq!(p.log().cleaned_to(), 200);
    assert_eq!(common::read_all(&p.log()).unwrap().len(), 5);
}

#[test]
fn delete_retention_applies_to_delete_policies_only() {
    let hour = Duration::from_secs(3600);
    for (policy, deletes) in [
        (CleanupPolicy::Compact, false),
        (CleanupPolicy::CompactDelete, true),
        (CleanupPolicy::Delete, true),
    ] {
        let dir = common::tempdir();
        let clock = Arc::new(ManualClock::new(0));
        let broker = Broker::builder(dir.path())
            .clock(clock.clone())
            .cleaner(false)
            .open()
            .unwrap();
        let config = compacted().cleanup_policy(policy).retention(Some(hour));
        let t = broker.admin().create_topic("t", config).unwrap();
        let p = t.partition(0).unwrap();
        for i in 0..50u64 {
            p.append(&[Record::new(vec![b'x'; 100])
                .key(format!("k{i}"))
                .timestamp(0)])
                .unwrap();
        }
        clock.set(3 * 3_600_000);
        let went = broker.admin().run_retention().unwrap();
        assert_eq!(!went.is_empty(), deletes, "{policy:?}");
        assert_eq!(p.log().start_offset() > 0, deletes, "{policy:?}");
    }
}

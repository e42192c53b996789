//! Topic lifecycle through the Admin API: create, describe, add partitions,
//! alter config, list offsets, delete records, delete — all persisted across
//! a reopen, with invalid names and configs rejected by precise errors.

use crate::common;
use crate::common::tempdir;
use embedlog::{Broker, Error, OffsetSpec, Record, TimestampType, TopicConfig};

#[test]
fn topic_lifecycle_survives_reopen() {
    let dir = tempdir();
    {
        let broker = Broker::open(dir.path()).unwrap();
        let admin = broker.admin();
        admin
            .create_topic(
                "orders",
                TopicConfig::default().partitions(3).segment_bytes(4096),
            )
            .unwrap();
        admin
            .create_topic("audit.log_v2-x", TopicConfig::default())
            .unwrap();
        assert_eq!(admin.list_topics().unwrap(), ["audit.log_v2-x", "orders"]);
        let t = broker.topic("orders").unwrap();
        for p in 0..3 {
            t.partition(p)
                .unwrap()
                .append(&[Record::new(format!("p{p}")).timestamp(100 + p as i64)])
                .unwrap();
        }
        admin.add_partitions("orders", 5).unwrap();
        assert_eq!(t.partition_count(), 5);
        t.partition(4)
            .unwrap()
            .append(&[Record::new("p4")])
            .unwrap();
        admin
            .alter_config(
                "orders",
                t.config()
                    .segment_bytes(8192)
                    .timestamp_type(TimestampType::LogAppendTime),
            )
            .unwrap();
        broker.close().unwrap();
        assert!(matches!(broker.topic("orders"), Err(Error::Closed)));
    }
    let broker = Broker::open(dir.path()).unwrap();
    let admin = broker.admin();
    assert_eq!(admin.list_topics().unwrap(), ["audit.log_v2-x", "orders"]);
    let d = admin.describe_topic("orders").unwrap();
    assert_eq!(d.partitions.len(), 5);
    assert_eq!(d.config.get_segment_bytes(), 8192);
    assert_eq!(d.config.get_timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(d.record_count(), 4);
    assert_eq!(d.partitions[3].end_offset, 0);
    assert!(d.size_bytes() > 0);
    let t = broker.topic("orders").unwrap();
    let r = t.partition(1).unwrap().read(0, Default::default()).unwrap();
    assert_eq!(r.records().next().unwrap().unwrap().value.unwrap(), "p1");

    admin.delete_topic("audit.log_v2-x").unwrap();
    assert!(matches!(
        admin.delete_topic("audit.log_v2-x"),
        Err(Error::UnknownTopic { .. })
    ));
    broker.close().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(broker.admin().list_topics().unwrap(), ["orders"]);
    assert!(!dir.path().join("topics/audit.log_v2-x").exists());
}

#[test]
fn invalid_names_and_configs_are_rejected() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let admin = broker.admin();
    for bad in [
        "",
        ".",
        "..",
        "has space",
        "slash/",
        &"x".repeat(250),
        "ümlaut",
    ] {
        match admin.create_topic(bad, TopicConfig::default()) {
            Err(Error::InvalidTopicName { name, .. }) => assert_eq!(name, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    admin
        .create_topic(&"x".repeat(249), TopicConfig::default())
        .unwrap();
    assert!(matches!(
        admin.create_topic("t", TopicConfig::default().partitions(0)),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        admin.create_topic("t", TopicConfig::default().segment_bytes(3)),
        Err(Error::InvalidConfig(_))
    ));
    admin.create_topic("t", TopicConfig::default()).unwrap();
    assert!(matches!(
        admin.create_topic("t", TopicConfig::default()),
        Err(Error::TopicExists { .. })
    ));
    assert!(matches!(
        admin.add_partitions("t", 1),
        Err(Error::InvalidPartitionCount {
            current: 1,
            requested: 1,
            ..
        })
    ));
    assert!(matches!(
        admin.alter_config("t", TopicConfig::default().partitions(2)),
        Err(Error::InvalidPartitionCount { requested: 2, .. })
    ));
    assert!(matches!(
        admin.describe_topic("nope"),
        Err(Error::UnknownTopic { .. })
    ));
    match broker.partition("t", 1) {
        Err(Error::UnknownPartition {
            partition: 1,
            count: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn list_offsets_and_delete_records() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let admin = broker.admin();
    let t = admin
        .create_topic("t", TopicConfig::default().segment_bytes(200))
        .unwrap();
    let p = t.partition(0).unwrap();
    for i in 0..20 {
        p.append(&[Record::new(vec![b'x'; 40]).timestamp(1000 + i * 10)])
            .unwrap();
    }
    assert_eq!(
        admin.list_offsets("t", 0, OffsetSpec::Earliest).unwrap(),
        Some(0)
    );
    assert_eq!(
        admin.list_offsets("t", 0, OffsetSpec::Latest).unwrap(),
        Some(20)
    );
    assert_eq!(
        admin
            .list_offsets("t", 0, OffsetSpec::Timestamp(1055))
            .unwrap(),
        Some(6)
    );
    assert_eq!(
        admin
            .list_offsets("t", 0, OffsetSpec::Timestamp(5000))
            .unwrap(),
        None
    );
    let before = admin.describe_topic("t").unwrap().partitions[0].segments;
    admin.delete_records("t", 0, 12).unwrap();
    assert_eq!(
        admin.list_offsets("t", 0, OffsetSpec::Earliest).unwrap(),
        Some(12)
    );
    assert!(admin.describe_topic("t").unwrap().partitions[0].segments < before);
    assert!(matches!(
        admin.delete_records("t", 0, 99),
        Err(Error::OffsetOutOfRange { .. })
    ));
    // An admin handle keeps the broker alive; close releases the directory.
    broker.close().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    assert_eq!(
        broker
            .admin()
            .list_offsets("t", 0, OffsetSpec::Earliest)
            .unwrap(),
        Some(12)
    );
}

#[test]
fn log_append_time_topics_stamp_records_on_append() {
    let dir = tempdir();
    let clock = std::sync::Arc::new(embedlog::ManualClock::new(5_000));
    let broker = Broker::builder(dir.path())
        .clock(clock.clone())
        .open()
        .unwrap();
    let t = broker
        .admin()
        .create_topic(
            "t",
            TopicConfig::default().timestamp_type(TimestampType::LogAppendTime),
        )
        .unwrap();
    t.partition(0)
        .unwrap()
        .append(&[Record::new("a").timestamp(1)])
        .unwrap();
    clock.set(7_000);
    t.partition(0)
        .unwrap()
        .append(&[Record::new("b").timestamp(2)])
        .unwrap();
    let got: Vec<_> = t
        .partition(0)
        .unwrap()
        .read(0, Default::default())
        .unwrap()
        .records()
        .map(|r| r.unwrap().timestamp)
        .collect();
    assert_eq!(got, [5_000, 7_000]);
}

#[test]
fn damaged_topic_metadata_is_a_precise_error() {
    let dir = tempdir();
    Broker::open(dir.path())
        .unwrap()
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    let conf = dir.path().join("topics/t/topic.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("partitions=1", "partitions=2")).unwrap();
    match Broker::open(dir.path()) {
        Err(Error::Metadata { path, reason }) => {
            assert_eq!(path, conf);
            assert!(reason.contains("CRC"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&conf, &text[..text.len() / 2]).unwrap();
    assert!(matches!(
        Broker::open(dir.path()),
        Err(Error::Metadata { .. })
    ));
    std::fs::remove_file(&conf).unwrap();
    assert!(matches!(
        Broker::open(dir.path()),
        Err(Error::Metadata { .. })
    ));
}

#[test]
fn interrupted_creates_and_foreign_entries_are_handled() {
    let dir = tempdir();
    drop(Broker::open(dir.path()).unwrap());
    let topics = dir.path().join("topics");
    std::fs::create_dir_all(topics.join("~creating-half")).unwrap();
    std::fs::create_dir_all(topics.join("~deleting-gone-1")).unwrap();
    std::fs::create_dir_all(topics.join("not a topic")).unwrap();
    std::fs::write(topics.join("README"), "foreign file").unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    assert!(broker.admin().list_topics().unwrap().is_empty());
    assert!(!topics.join("~creating-half").exists());
    assert!(!topics.join("~deleting-gone-1").exists());
    assert!(
        topics.join("not a topic").exists(),
        "foreign directories are left alone"
    );
    broker
        .admin()
        .create_topic("half", TopicConfig::default())
        .unwrap();
}

#[test]
fn broker_handles_are_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Broker>();
    check::<embedlog::Admin>();
    check::<embedlog::Topic>();
    check::<embedlog::Partition>();
    check::<embedlog::Producer>();
    fn send<T: Send + 'static>() {}
    send::<embedlog::Consumer>();
}

#[test]
fn the_background_flush_follows_the_brokers_clock() {
    // A topic flushed every hour of the broker's clock: the background
    // thread (awake every millisecond of real time) flushes once the
    // manual clock has moved an hour, and not because real time passed.
    let dir = tempdir();
    let clock = std::sync::Arc::new(embedlog::ManualClock::new(1_000));
    let broker = Broker::builder(dir.path())
        .clock(clock.clone())
        .housekeeping_interval(std::time::Duration::from_millis(1))
        .open()
        .unwrap();
    let hourly = TopicConfig::default().flush_interval(Some(std::time::Duration::from_secs(3600)));
    let p = broker
        .admin()
        .create_topic("t", hourly)
        .unwrap()
        .partition(0)
        .unwrap();
    p.append(&[Record::new("a"), Record::new("b")]).unwrap();
    assert_eq!(p.log().flushed_offset(), 0);
    clock.advance(3_600_000);
    common::wait_until("the background thread flushes", || {
        p.log().flushed_offset() == 2
    });
}

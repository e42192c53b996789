//! Consumers long-poll (wake on append, sleep otherwise), seek by offset and
//! time, apply their reset policy to missing or out-of-range positions, and
//! keep valid bytes for records whose segment was deleted.

use crate::common;
use crate::common::tempdir;
use embedlog::{Broker, ConsumerConfig, Error, OffsetReset, ProducerConfig, Record, TopicConfig};
use std::time::{Duration, Instant};

/// CPU time this thread has used, in nanoseconds (Linux schedstat).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

#[test]
fn a_consumer_started_first_receives_everything_by_long_poll() {
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default().partitions(3));
    let consumer_broker = broker.clone();
    let reader = std::thread::spawn(move || {
        let mut c =
            consumer_broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
        c.assign((0..3).map(|p| ("t", p))).unwrap();
        let mut got = Vec::new();
        while got.len() < 3000 {
            let batch = c.poll(Duration::from_secs(30)).unwrap();
            assert!(
                !batch.is_empty(),
                "poll timed out with records still to come"
            );
            got.extend(
                batch
                    .into_iter()
                    .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap()),
            );
        }
        got
    });
    std::thread::sleep(Duration::from_millis(50));
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_millis(1)));
    for i in 0..3000 {
        producer
            .send("t", Record::new(format!("{i}")).key(format!("{}", i % 10)))
            .unwrap();
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    producer.flush().unwrap();
    let mut got = reader.join().unwrap();
    got.sort_by_key(|v| v.parse::<u32>().unwrap());
    let want: Vec<_> = (0..3000).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
}

#[test]
fn an_idle_poll_sleeps_instead_of_spinning() {
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default().partitions(4));
    let mut c = broker.consumer(ConsumerConfig::default());
    c.assign((0..4).map(|p| ("t", p))).unwrap();
    let Some(before) = thread_cpu_ns() else {
        eprintln!("no /proc/thread-self/schedstat here; skipping the CPU measurement");
        return;
    };
    let started = Instant::now();
    let got = c.poll(Duration::from_millis(400)).unwrap();
    let waited = started.elapsed();
    let cpu = thread_cpu_ns().unwrap() - before;
    assert!(got.is_empty());
    assert!(waited >= Duration::from_millis(400));
    // A spinning poll would burn ~400 ms of CPU; a sleeping one a few µs.
    assert!(
        cpu < 40_000_000,
        "idle poll used {} µs of CPU in {waited:?}",
        cpu / 1000
    );

    // And it wakes promptly when data arrives.
    let b2 = broker.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        b2.partition("t", 2)
            .unwrap()
            .append(&[Record::new("wake")])
            .unwrap();
    });
    let got = c.poll(Duration::from_secs(60)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].partition, 2);
    writer.join().unwrap();
}

fn filled(broker: &Broker) {
    let t = broker
        .admin()
        .create_topic("t", TopicConfig::default().segment_bytes(300))
        .unwrap();
    let p = t.partition(0).unwrap();
    for i in 0..30 {
        p.append(&[Record::new(format!("v{i:03}-{}", "x".repeat(40))).timestamp(10_000 + i * 100)])
            .unwrap();
    }
}

#[test]
fn seek_by_offset_and_timestamp() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    filled(&broker);
    let mut c = broker.consumer(ConsumerConfig::default().max_poll_records(5));
    c.assign([("t", 0)]).unwrap();
    assert_eq!(c.position(("t", 0)).unwrap(), 30, "Latest by default");
    c.seek(("t", 0), 7).unwrap();
    let got = c.poll(Duration::ZERO).unwrap();
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [7, 8, 9, 10, 11]
    );
    assert_eq!(c.position(("t", 0)).unwrap(), 12);
    assert_eq!(
        c.seek_to_timestamp([("t", 0)], 10_450).unwrap(),
        [(("t", 0).into(), 5)]
    );
    assert_eq!(c.poll(Duration::ZERO).unwrap()[0].offset, 5);
    assert_eq!(
        c.seek_to_timestamp([("t", 0)], 99_999).unwrap()[0].1,
        30,
        "past every record: the end"
    );
    // All or nothing: an unassigned partition in the list moves none.
    assert!(matches!(
        c.seek_to_timestamp([("t", 0), ("u", 0)], 0),
        Err(Error::PartitionNotAssigned { .. })
    ));
    assert_eq!(c.position(("t", 0)).unwrap(), 30);
    c.seek_to_beginning([("t", 0)]).unwrap();
    assert_eq!(c.poll(Duration::ZERO).unwrap()[0].offset, 0);
    c.seek_to_end([("t", 0)]).unwrap();
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
    assert!(matches!(
        c.seek(("u", 0), 1),
        Err(Error::PartitionNotAssigned { partition: 0, .. })
    ));
}

#[test]
fn out_of_range_positions_follow_the_reset_policy() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    filled(&broker);
    broker.admin().delete_records("t", 0, 20).unwrap();
    for (policy, want) in [
        (OffsetReset::Earliest, Ok(20)),
        (OffsetReset::Latest, Ok(30)),
        (OffsetReset::Error, Err(())),
    ] {
        let mut c = broker.consumer(ConsumerConfig::default().offset_reset(policy));
        c.assign([("t", 0)]).unwrap();
        c.seek(("t", 0), 3).unwrap();
        match (c.poll(Duration::ZERO), want) {
            (Ok(v), Ok(first)) => {
                assert_eq!(
                    c.position(("t", 0)).unwrap(),
                    if first == 30 {
                        30
                    } else {
                        30.min(first + v.len() as u64)
                    }
                );
                if first == 20 {
                    assert_eq!(v[0].offset, 20);
                } else {
                    assert!(v.is_empty());
                }
            }
            (
                Err(Error::OffsetOutOfRange {
                    requested: 3,
                    start: 20,
                    end: 30,
                }),
                Err(()),
            ) => {}
            (got, _) => panic!("{policy:?}: {got:?}"),
        }
    }
    let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Error));
    c.assign([("t", 0)]).unwrap();
    assert!(matches!(
        c.poll(Duration::ZERO),
        Err(Error::NoOffset { .. })
    ));
}

#[test]
fn held_records_stay_valid_after_their_segment_is_deleted() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    filled(&broker);
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Earliest)
            .max_poll_records(1000),
    );
    c.assign([("t", 0)]).unwrap();
    let held = c.poll(Duration::ZERO).unwrap();
    assert_eq!(held.len(), 30);
    let segments_before = broker.admin().describe_topic("t").unwrap().partitions[0].segments;
    broker.admin().delete_records("t", 0, 30).unwrap();
    assert!(broker.admin().describe_topic("t").unwrap().partitions[0].segments < segments_before);
    broker.admin().delete_topic("t").unwrap();
    for (i, r) in held.iter().enumerate() {
        assert_eq!(
            r.value().unwrap(),
            format!("v{i:03}-{}", "x".repeat(40)).as_bytes()
        );
    }
    assert!(matches!(
        c.poll(Duration::ZERO),
        Err(Error::UnknownTopic { .. })
    ));
    // A topic of the same name created again is read from the reset
    // position (here the beginning), not from the old topic's offsets.
    let t = broker
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    t.partition(0)
        .unwrap()
        .append(&[Record::new("new 0"), Record::new("new 1")])
        .unwrap();
    let got = c.poll(Duration::from_millis(100)).unwrap();
    let values: Vec<_> = got.iter().map(|r| r.value_bytes().unwrap()).collect();
    assert_eq!(values, ["new 0", "new 1"]);
    assert_eq!(got[0].offset, 0);
}

#[test]
fn poll_batches_returns_whole_batches_and_moves_the_position() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    filled(&broker);
    let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    c.assign([("t", 0)]).unwrap();
    c.seek(("t", 0), 7).unwrap();
    let mut seen = Vec::new();
    loop {
        let got = c.poll_batches(Duration::from_millis(20)).unwrap();
        if got.is_empty() {
            break;
        }
        for (tp, batches) in got {
            assert_eq!(tp, embedlog::TopicPartition::new("t", 0));
            for r in batches.records_ref() {
                let r = r.unwrap();
                assert_eq!(
                    r.value.unwrap(),
                    format!("v{:03}-{}", r.offset, "x".repeat(40)).as_bytes()
                );
                seen.push(r.offset);
            }
        }
    }
    assert_eq!(
        seen,
        (7..30).collect::<Vec<_>>(),
        "from the position on, once each"
    );
    assert_eq!(c.position(("t", 0)).unwrap(), 30);
}

#[test]
fn records_read_before_an_error_are_returned_and_the_error_follows() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    filled(&broker);
    broker
        .admin()
        .create_topic("u", TopicConfig::default())
        .unwrap();
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Error)
            .max_poll_records(1000),
    );
    c.assign([("t", 0), ("u", 0)]).unwrap();
    c.seek(("t", 0), 25).unwrap(); // u-0 has no position: an error under Error
    let got = c.poll(Duration::ZERO).unwrap();
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [25, 26, 27, 28, 29]
    );
    assert!(matches!(
        c.poll(Duration::ZERO),
        Err(Error::NoOffset { .. })
    ));
    assert_eq!(c.position(("t", 0)).unwrap(), 30, "nothing is read twice");
}

#[test]
fn a_position_past_the_end_follows_the_reset_policy() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    filled(&broker);
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Earliest)
            .max_poll_records(3),
    );
    c.assign([("t", 0)]).unwrap();
    c.seek(("t", 0), 1000).unwrap(); // e.g. from before the topic was re-created
    let got = c.poll(Duration::ZERO).unwrap();
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
    let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Error));
    c.assign([("t", 0)]).unwrap();
    c.seek(("t", 0), 1000).unwrap();
    assert!(matches!(
        c.poll(Duration::ZERO),
        Err(Error::OffsetOutOfRange {
            requested: 1000,
            ..
        })
    ));
}

#[test]
fn an_enormous_timeout_does_not_panic() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    filled(&broker);
    let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    c.assign([("t", 0)]).unwrap();
    assert!(!c.poll(Duration::MAX).unwrap().is_empty());
    let p = broker.partition("t", 0).unwrap();
    assert!(p.log().wait_for(0, Duration::MAX));
}

/// A wakeup from another thread ends a poll that would otherwise wait two
/// minutes; one given before a poll makes that poll skip its wait once.
#[test]
fn a_wakeup_ends_a_long_poll_once() {
    const LONG: Duration = Duration::from_secs(120);
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "quiet", TopicConfig::default());
    let mut consumer = broker.consumer(ConsumerConfig::default());
    consumer.assign(&[("quiet", 0)]).unwrap();
    let wakeup = consumer.wakeup_handle();

    // Before the poll: it returns at once, and the wakeup is used up.
    wakeup.wakeup();
    let started = Instant::now();
    assert!(consumer.poll(LONG).unwrap().is_empty());
    assert!(started.elapsed() < LONG);
    let started = Instant::now();
    assert!(
        consumer.poll(Duration::from_millis(20)).unwrap().is_empty(),
        "nothing was written"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(20),
        "a used-up wakeup must not end the next poll's wait"
    );

    // During the poll, from another thread.
    let poller = std::thread::spawn(move || {
        let started = Instant::now();
        let n = consumer.poll(LONG).unwrap().len();
        (n, started.elapsed())
    });
    wakeup.wakeup();
    let (n, waited) = poller.join().unwrap();
    assert_eq!(n, 0);
    assert!(waited < LONG, "the wakeup did not end the poll");
}

/// A poll that stops inside a batch (its record limit) keeps the batch's
/// records iterator; the next poll goes on from it. Every record comes
/// once, in order, and a seek into the batch (back or forth, or to where
/// the iterator stopped) reads from there.
#[test]
fn polls_stopping_inside_an_uncompressed_batch_go_on_from_there() {
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default());
    let p = broker.topic("t").unwrap().partition(0).unwrap();
    let records: Vec<_> = (0..300)
        .map(|i| Record::new(format!("v{i}")).key(format!("k{i}")))
        .collect();
    p.append(&records).unwrap();
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Earliest)
            .max_poll_records(7),
    );
    c.assign([("t", 0)]).unwrap();
    let mut got = Vec::new();
    while got.len() < 300 {
        let polled = c.poll(Duration::from_secs(5)).unwrap();
        assert!(polled.len() <= 7);
        for r in polled {
            assert_eq!(r.offset, got.len() as u64, "in order, none twice");
            assert_eq!(r.key(), Some(format!("k{}", r.offset).as_bytes()));
            got.push(r.value_bytes());
        }
    }
    for at in [123u64, 5, 290, 297, 12] {
        c.seek(("t", 0), at).unwrap();
        let r = c.poll(Duration::from_secs(5)).unwrap();
        assert_eq!(r[0].offset, at);
        assert_eq!(r[0].value(), Some(format!("v{at}").as_bytes()));
        // Where the last poll stopped: the kept iterator goes on.
        let stop = r.last().unwrap().offset + 1;
        if stop < 300 {
            c.seek(("t", 0), stop).unwrap();
            let r = c.poll(Duration::from_secs(5)).unwrap();
            assert_eq!(r[0].offset, stop);
            assert_eq!(r[0].value(), Some(format!("v{stop}").as_bytes()));
        }
    }
}

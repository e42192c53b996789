//! What a producer sends is stored as sent, whatever form the record has
//! (owned, borrowed, or read from another log), with the batch's time for
//! records without their own; a producer's cached view of a topic
//! follows every change to it (configuration, partitions, deletion); and
//! batches handed to the sender thread are appended in order, their
//! failures reported, before a flush, a drop or a close returns.

use crate::common::{consume_all, tempdir};
use embedlog::{
    BorrowedRecord, Broker, CleanupPolicy, Error, IsolationLevel, Log, LogConfig, ProducerConfig,
    ReadLimit, Record, TopicConfig,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn broker() -> (tempfile::TempDir, Broker) {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    (dir, broker)
}

/// A broker with topic `t` (one partition, default settings).
fn broker_with_t() -> (tempfile::TempDir, Broker) {
    let (dir, broker) = broker();
    broker
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    (dir, broker)
}

/// A producer that lingers for an hour: batches go out when full or
/// flushed.
fn lingering(broker: &Broker, batch_size: usize) -> embedlog::Producer {
    broker.producer(
        ProducerConfig::default()
            .linger(Duration::from_secs(3600))
            .batch_size(batch_size),
    )
}

/// (key, value, headers) of every record of `topic`, in partition then
/// offset order.
type Stored = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn stored(broker: &Broker, topic: &str) -> Vec<(u32, Stored)> {
    let mut all: Vec<_> = consume_all(broker, topic, IsolationLevel::ReadUncommitted)
        .into_iter()
        .map(|r| {
            let headers = r
                .headers()
                .iter()
                .map(|h| (h.key().to_string(), h.value().map(|v| v.to_vec())))
                .collect();
            let fields = (
                r.key().map(<[u8]>::to_vec),
                r.value().map(<[u8]>::to_vec),
                headers,
            );
            ((r.partition, r.offset), fields)
        })
        .collect();
    all.sort_by_key(|(at, _)| *at);
    all.into_iter().map(|((p, _), f)| (p, f)).collect()
}

#[test]
fn borrowed_owned_and_read_records_are_stored_alike() {
    let (_dir, broker) = broker();
    let admin = broker.admin();
    admin.create_topic("a", TopicConfig::default()).unwrap();
    admin.create_topic("b", TopicConfig::default()).unwrap();
    let producer = broker.producer(ProducerConfig::default());
    let headers = [
        ("h1", Some(&b"x"[..])),
        ("h1", None),
        ("h2", Some(&b""[..])),
    ];
    producer
        .send_to(
            "a",
            0,
            BorrowedRecord::new(b"v1").key(b"k1").headers(&headers),
        )
        .unwrap();
    producer
        .send_to("a", 0, BorrowedRecord::tombstone(b"k2"))
        .unwrap();
    producer
        .send_to(
            "a",
            0,
            Record::new("v3").key("k3").header("h1", "x").timestamp(42),
        )
        .unwrap();
    let owned = Record::new("v4");
    producer.send_to("a", 0, &owned).unwrap();
    producer.flush().unwrap();
    let a = stored(&broker, "a");
    let h = |k: &str, v: Option<&[u8]>| (k.to_string(), v.map(<[u8]>::to_vec));
    assert_eq!(
        a,
        vec![
            (
                0,
                (
                    Some(b"k1".to_vec()),
                    Some(b"v1".to_vec()),
                    vec![h("h1", Some(b"x")), h("h1", None), h("h2", Some(b""))]
                )
            ),
            (0, (Some(b"k2".to_vec()), None, vec![])),
            (
                0,
                (
                    Some(b"k3".to_vec()),
                    Some(b"v3".to_vec()),
                    vec![h("h1", Some(b"x"))]
                )
            ),
            (0, (None, Some(b"v4".to_vec()), vec![])),
        ]
    );
    // Copied record for record from `a` as `RecordRef`s: headers and all.
    let part = broker.topic("a").unwrap().partition(0).unwrap();
    let batches = part.read(0, ReadLimit::bytes(1 << 20)).unwrap();
    let mut timestamps = Vec::new();
    for r in batches.records_ref() {
        let r = r.unwrap();
        timestamps.push(r.timestamp);
        producer.send_to("b", 0, r).unwrap();
    }
    producer.flush().unwrap();
    assert_eq!(stored(&broker, "b"), a);
    let copied: Vec<i64> = consume_all(&broker, "b", IsolationLevel::ReadUncommitted)
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(copied, timestamps, "a copy keeps the timestamps");
    assert_eq!(timestamps[2], 42);
}

/// A record without a timestamp gets its batch's: one clock reading,
/// between the first send and the flush, shared by the batch's records
/// and reported by their deliveries. Explicit timestamps are kept.
#[test]
fn records_without_a_timestamp_get_their_batchs() {
    let (_dir, broker) = broker_with_t();
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_secs(3600)));
    let before = embedlog::now_ms();
    let deliveries: Vec<_> = (0..10)
        .map(|i| {
            let r = if i == 5 {
                Record::new("explicit").timestamp(7)
            } else {
                Record::new(format!("v{i}"))
            };
            assert_eq!(i == 5, r.timestamp == 7);
            producer.send("t", r).unwrap()
        })
        .collect();
    producer.flush().unwrap();
    let after = embedlog::now_ms();
    let got = consume_all(&broker, "t", IsolationLevel::ReadUncommitted);
    assert_eq!(got.len(), 10);
    let batch_time = got[0].timestamp;
    assert!(
        (before..=after).contains(&batch_time),
        "{before} <= {batch_time} <= {after}"
    );
    for (i, (r, d)) in got.iter().zip(&deliveries).enumerate() {
        let want = if i == 5 { 7 } else { batch_time };
        assert_eq!(r.timestamp, want, "record {i}");
        assert_eq!(d.wait().unwrap().timestamp, want, "delivery {i}");
    }
}

#[test]
fn log_append_stamps_records_without_a_timestamp_once_per_batch() {
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let before = embedlog::now_ms();
    let payloads: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 10]).collect();
    let records: Vec<BorrowedRecord<'_>> =
        payloads.iter().map(|p| BorrowedRecord::new(p)).collect();
    let info = log.append(&records).unwrap();
    let after = embedlog::now_ms();
    assert_eq!((info.base_offset, info.last_offset), (0, 49));
    let batches = log.read(0, ReadLimit::bytes(1 << 20)).unwrap();
    let got: Vec<_> = batches.records_ref().map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), 50);
    let t = got[0].timestamp;
    assert!((before..=after).contains(&t));
    assert!(got.iter().all(|r| r.timestamp == t));
    assert_eq!(info.max_timestamp, t);
    for (r, p) in got.iter().zip(&payloads) {
        assert_eq!(r.value, Some(&p[..]));
    }
}

/// The producer caches what it needs of a topic; every change is seen by
/// the next send: a lower `max.message.bytes`, compaction (which needs
/// keys), more partitions, deletion and re-creation.
#[test]
fn the_cached_topic_view_follows_changes() {
    let (_dir, broker) = broker_with_t();
    let admin = broker.admin();
    let producer = broker.producer(ProducerConfig::default());
    producer.send("t", Record::new(vec![1u8; 500])).unwrap();
    let config = broker.topic("t").unwrap().config();
    admin
        .alter_config("t", config.clone().max_message_bytes(300))
        .unwrap();
    assert!(matches!(
        producer.send("t", Record::new(vec![1u8; 500])),
        Err(Error::BatchTooLarge { .. })
    ));
    admin
        .alter_config("t", config.cleanup_policy(CleanupPolicy::Compact))
        .unwrap();
    assert!(matches!(
        producer.send("t", Record::new("no key")),
        Err(Error::KeyRequired { .. })
    ));
    producer.send("t", Record::new("keyed").key("k")).unwrap();
    assert!(matches!(
        producer.send_to("t", 3, Record::new("x").key("k")),
        Err(Error::UnknownPartition { .. })
    ));
    admin.add_partitions("t", 4).unwrap();
    let d = producer.send_to("t", 3, Record::new("x").key("k")).unwrap();
    producer.flush().unwrap();
    assert_eq!(d.wait().unwrap().partition, 3);
    admin.delete_topic("t").unwrap();
    assert!(matches!(
        producer.send("t", Record::new("gone")),
        Err(Error::UnknownTopic { .. })
    ));
    admin.create_topic("t", TopicConfig::default()).unwrap();
    let d = producer.send("t", Record::new("again")).unwrap();
    producer.flush().unwrap();
    assert_eq!(d.wait().unwrap().offset, 0);
}

/// More threads than the producer's per-thread cache has slots, on
/// several topics at once: every record is stored once, in each
/// thread's send order per partition.
#[test]
fn many_threads_on_many_topics_lose_nothing() {
    let (_dir, broker) = broker();
    let topics = ["x", "y", "z"];
    for t in topics {
        broker
            .admin()
            .create_topic(t, TopicConfig::default().partitions(2))
            .unwrap();
    }
    let producer = broker.producer(ProducerConfig::default().batch_size(512));
    let threads = 20u32;
    let per_thread = 300u32;
    std::thread::scope(|s| {
        for th in 0..threads {
            let producer = &producer;
            s.spawn(move || {
                for i in 0..per_thread {
                    let topic = topics[((th + i) % 3) as usize];
                    let value = format!("{th}:{i}");
                    producer
                        .send_to(topic, th % 2, BorrowedRecord::new(value.as_bytes()))
                        .unwrap();
                }
            });
        }
    });
    producer.flush().unwrap();
    let mut seen: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut total = 0;
    for t in topics {
        for r in consume_all(&broker, t, IsolationLevel::ReadUncommitted) {
            let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
            let (th, i) = v.split_once(':').unwrap();
            let (th, i): (u32, u32) = (th.parse().unwrap(), i.parse().unwrap());
            assert_eq!(r.partition, th % 2);
            assert_eq!(t, topics[((th + i) % 3) as usize]);
            seen.entry(th * 3 + (th + i) % 3).or_default().push(i);
            total += 1;
        }
    }
    assert_eq!(total, threads * per_thread);
    for (_, is) in seen {
        assert!(is.windows(2).all(|w| w[0] < w[1]), "send order kept");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Send {
        topic: usize,
        partition: Option<u8>,
        key: Option<u8>,
        len: u16,
    },
    Flush,
    AddPartition(usize),
    Compact(usize),
    MaxMessage(usize, u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..2usize, proptest::option::of(0..4u8), proptest::option::of(any::<u8>()), 0..600u16)
            .prop_map(|(topic, partition, key, len)| Op::Send { topic, partition, key, len }),
        2 => Just(Op::Flush),
        1 => (0..2usize).prop_map(Op::AddPartition),
        1 => (0..2usize).prop_map(Op::Compact),
        1 => (0..2usize, 200..800u16).prop_map(|(t, m)| Op::MaxMessage(t, m)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("EMBEDLOG_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32)
    ))]

    /// Sends through the producer's cached topic views against a model
    /// that reads the topic's settings at every send: the same sends are
    /// refused (and for the same reason), and what is stored per
    /// partition is exactly the accepted values in order.
    #[test]
    fn sends_match_a_model_that_reads_settings_every_time(ops in proptest::collection::vec(op(), 1..60)) {
        let (_dir, broker) = broker();
        let admin = broker.admin();
        let names = ["p", "q"];
        // The model: per topic, partitions, compacted, max message.
        let mut model: Vec<(u32, bool, u64)> = Vec::new();
        for n in names {
            admin.create_topic(n, TopicConfig::default()).unwrap();
            model.push((1, false, 1 << 20)); // the default max.message.bytes
        }
        let producer = broker.producer(ProducerConfig::default().batch_size(1024));
        let mut want: BTreeMap<(usize, u32), Vec<Vec<u8>>> = BTreeMap::new();
        let mut counter = 0u32;
        // A batch appended after `max.message.bytes` went down may fail
        // (its records were accepted under the old limit).
        let mut failed = false;
        for op in ops {
            match op {
                Op::Send { topic, partition, key, len } => {
                    counter += 1;
                    let mut value = counter.to_be_bytes().to_vec();
                    value.resize(usize::from(len).max(4), 7);
                    let key_bytes = key.map(|k| vec![k]);
                    let mut r = BorrowedRecord::new(&value);
                    if let Some(k) = &key_bytes {
                        r = r.key(k);
                    }
                    let (parts, compacted, max) = model[topic];
                    let sent = match partition {
                        Some(p) => producer.send_to(names[topic], u32::from(p), r),
                        None => producer.send(names[topic], r),
                    };
                    // Record size bound: value + key + 20 (deltas, length)
                    // + a few varints, plus the batch header.
                    let size = value.len() + key_bytes.as_ref().map_or(0, Vec::len);
                    match sent {
                        Err(Error::UnknownPartition { .. }) => {
                            prop_assert!(partition.is_some_and(|p| u32::from(p) >= parts));
                        }
                        Err(Error::KeyRequired { .. }) => {
                            prop_assert!(compacted && key.is_none());
                        }
                        Err(Error::BatchTooLarge { .. }) => {
                            prop_assert!(size as u64 + 61 + 20 > max - 10, "{size} vs {max}");
                        }
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                        Ok(d) => {
                            prop_assert!(partition.is_none_or(|p| u32::from(p) < parts));
                            prop_assert!(!(compacted && key.is_none()));
                            prop_assert!((size as u64) + 61 <= max);
                            want.entry((topic, d.partition())).or_default().push(value);
                        }
                    }
                }
                Op::Flush => failed |= producer.flush().is_err(),
                Op::AddPartition(t) => {
                    model[t].0 += 1;
                    admin.add_partitions(names[t], model[t].0).unwrap();
                }
                Op::Compact(t) => {
                    model[t].1 = true;
                    let c = broker.topic(names[t]).unwrap().config();
                    admin.alter_config(names[t], c.cleanup_policy(CleanupPolicy::Compact)).unwrap();
                }
                Op::MaxMessage(t, m) => {
                    model[t].2 = u64::from(m);
                    let c = broker.topic(names[t]).unwrap().config();
                    admin.alter_config(names[t], c.max_message_bytes(u64::from(m))).unwrap();
                }
            }
        }
        failed |= producer.flush().is_err();
        let mut got: BTreeMap<(usize, u32), Vec<Vec<u8>>> = BTreeMap::new();
        for (t, n) in names.iter().enumerate() {
            for r in consume_all(&broker, n, IsolationLevel::ReadUncommitted) {
                got.entry((t, r.partition)).or_default().push(r.value().unwrap().to_vec());
            }
        }
        if !failed {
            prop_assert_eq!(got, want);
        } else {
            // Every stored value was accepted, in order.
            for (k, vs) in got {
                let w = want.get(&k).cloned().unwrap_or_default();
                let mut it = w.iter();
                for v in vs {
                    prop_assert!(it.any(|x| *x == v));
                }
            }
        }
    }
}

/// A lingering, buffered producer hands full batches to its sender
/// thread. A batch that fails there fails its deliveries and the next
/// flush, and does not take the partition's next sequence number: the
/// batch after it is stored.
#[test]
fn a_batch_failing_on_the_sender_thread_is_reported_and_skipped() {
    let (_dir, broker) = broker_with_t();
    let admin = broker.admin();
    let producer = lingering(&broker, 1000);
    let big = producer.send("t", Record::new(vec![0u8; 550])).unwrap();
    let config = broker.topic("t").unwrap().config();
    admin
        .alter_config("t", config.max_message_bytes(300))
        .unwrap();
    // Fills the batch: it goes to the sender thread, where the log refuses it.
    let small = producer.send("t", Record::new(vec![1u8; 100])).unwrap();
    assert!(matches!(big.wait(), Err(Error::DeliveryFailed { .. })));
    assert!(matches!(
        producer.flush(),
        Err(Error::BatchesFailed { batches: 1, .. })
    ));
    assert_eq!(small.wait().unwrap().offset, 0);
    producer.flush().unwrap();
    let got = consume_all(&broker, "t", IsolationLevel::ReadUncommitted);
    assert_eq!(got.len(), 1);
}

/// With room for one batch at a time, senders wait for the sender thread
/// instead of queueing without bound; nothing is lost or reordered.
#[test]
fn a_full_buffer_holds_senders_back_and_loses_nothing() {
    let (_dir, broker) = broker_with_t();
    let producer = broker.producer(ProducerConfig::default().batch_size(256).buffer_memory(1));
    let n = 5_000u32;
    for i in 0..n {
        producer
            .send("t", BorrowedRecord::new(&i.to_be_bytes()))
            .unwrap();
    }
    producer.flush().unwrap();
    let got: Vec<u32> = consume_all(&broker, "t", IsolationLevel::ReadUncommitted)
        .into_iter()
        .map(|r| u32::from_be_bytes(r.value().unwrap().try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

/// Dropping the last handle closes the producer: every batch, the ones
/// waiting for the sender thread included, is appended first.
#[test]
fn dropping_the_producer_appends_what_it_holds() {
    let (_dir, broker) = broker_with_t();
    let producer = lingering(&broker, 200);
    let deliveries: Vec<_> = (0..1000u32)
        .map(|i| producer.send("t", Record::new(i.to_string())).unwrap())
        .collect();
    drop(producer);
    for (i, d) in deliveries.iter().enumerate() {
        assert_eq!(d.wait().unwrap().offset, i as u64);
    }
    assert_eq!(broker.partition("t", 0).unwrap().end_offset(), 1000);
}

/// `flush_async` resolves once the sender thread has appended every batch
/// handed to it before the flush.
#[cfg(feature = "async")]
#[test]
fn flush_async_waits_for_the_sender_thread() {
    let (_dir, broker) = broker_with_t();
    let producer = lingering(&broker, 300);
    for i in 0..2000u32 {
        producer
            .send("t", BorrowedRecord::new(&i.to_be_bytes()))
            .unwrap();
    }
    pollster::block_on(producer.flush_async()).unwrap();
    assert_eq!(broker.partition("t", 0).unwrap().end_offset(), 2000);
}

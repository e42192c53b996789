//! The producer places keyed records on the partition Kafka's default
//! partitioner would (murmur2 vectors from Kafka and from kafka-python),
//! keeps per-partition order across threads, batches keyless records
//! stickily, honours explicit partitions and custom partitioners, and
//! carries headers end to end.

use crate::common;
use crate::common::tempdir;
use embedlog::{
    Broker, ConsumerConfig, Delivery, Durability, Error, OffsetReset, Partitioner, ProducerConfig,
    Record, TopicConfig, partition_for_key,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn kafka_python_table() -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kafka_python/partitions.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn keys_map_to_the_partitions_kafka_uses() {
    let table = kafka_python_table();
    for row in table["rows"].as_array().unwrap() {
        let key = row["key"].as_str().unwrap().as_bytes();
        assert_eq!(
            i64::from(embedlog::murmur2(key)),
            row["murmur2"].as_i64().unwrap(),
            "{row}"
        );
        for (n, p) in row["partitions"].as_object().unwrap() {
            let n: u32 = n.parse().unwrap();
            assert_eq!(
                u64::from(partition_for_key(key, n)),
                p.as_u64().unwrap(),
                "{row} over {n}"
            );
        }
    }
    // And the producer really sends them there.
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default().partitions(12));
    let producer = broker.producer(ProducerConfig::default());
    let mut sent = Vec::new();
    for row in table["rows"].as_array().unwrap() {
        let key = row["key"].as_str().unwrap();
        let d = producer
            .send("t", Record::new("v").key(key.to_string()))
            .unwrap();
        sent.push((d, row["partitions"]["12"].as_u64().unwrap() as u32));
    }
    producer.flush().unwrap();
    for (d, want) in sent {
        assert_eq!(d.wait().unwrap().partition, want);
    }
}

#[test]
fn order_per_partition_holds_with_several_producer_threads() {
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default().partitions(4));
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_millis(1)));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let producer = producer.clone();
            std::thread::spawn(move || {
                let mut ds: Vec<Delivery> = Vec::new();
                for i in 0..2000u32 {
                    let key = format!("key-{t}-{}", i % 8);
                    ds.push(
                        producer
                            .send("t", Record::new(format!("{t}:{i}")).key(key))
                            .unwrap(),
                    );
                }
                ds
            })
        })
        .collect();
    let deliveries: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    producer.flush().unwrap();
    let metas: Vec<_> = deliveries.iter().map(|d| d.wait().unwrap()).collect();
    // Every offset of every partition was handed out exactly once.
    let mut per_partition: HashMap<u32, Vec<u64>> = HashMap::new();
    for m in &metas {
        per_partition.entry(m.partition).or_default().push(m.offset);
    }
    for offsets in per_partition.values_mut() {
        offsets.sort_unstable();
        assert!(offsets.iter().enumerate().all(|(i, &o)| o == i as u64));
    }
    // Per key (one sending thread each), the log holds values in send order.
    let mut consumer =
        broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    consumer.assign((0..4).map(|p| ("t", p))).unwrap();
    let mut last_seq: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut n = 0;
    for r in consumer.iter_timeout(Duration::from_millis(100)) {
        let r = r.unwrap();
        let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
        let seq: u32 = v.split(':').nth(1).unwrap().parse().unwrap();
        let k = r.key().unwrap().to_vec();
        assert_eq!(r.partition, partition_for_key(&k, 4));
        if let Some(prev) = last_seq.insert(k, seq) {
            assert!(seq > prev, "out of order: {seq} after {prev}");
        }
        n += 1;
    }
    assert_eq!(n, 8000);
}

#[test]
fn keyless_records_stick_to_a_partition_per_batch() {
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default().partitions(3));
    let producer = broker.producer(
        ProducerConfig::default()
            .batch_size(1024)
            .linger(Duration::from_secs(60)),
    );
    let ds: Vec<_> = (0..200)
        .map(|i| producer.send("t", Record::new(format!("{i:050}"))).unwrap())
        .collect();
    producer.flush().unwrap();
    let parts: Vec<u32> = ds.iter().map(|d| d.wait().unwrap().partition).collect();
    // Long runs on one partition (a batch each), and every partition used.
    let switches = parts.windows(2).filter(|w| w[0] != w[1]).count();
    assert!((3..=200 / 10).contains(&switches), "{switches} switches");
    for p in 0..3 {
        assert!(parts.contains(&p));
    }
}

#[derive(Debug)]
struct Everything(u32);
impl Partitioner for Everything {
    fn partition(&self, _: &str, _: Option<&[u8]>, _: u32) -> Option<u32> {
        Some(self.0)
    }
}

#[test]
fn explicit_and_custom_partitioners_override() {
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default().partitions(3));
    let producer = broker.producer(
        ProducerConfig::default()
            .linger(Duration::ZERO)
            .partitioner(Arc::new(Everything(2))),
    );
    assert_eq!(
        producer
            .send("t", Record::new("a").key("k"))
            .unwrap()
            .wait()
            .unwrap()
            .partition,
        2
    );
    assert_eq!(
        producer
            .send_to("t", 1, Record::new("b").key("k"))
            .unwrap()
            .wait()
            .unwrap()
            .partition,
        1
    );
    assert!(matches!(
        producer.send_to("t", 3, Record::new("c")),
        Err(Error::UnknownPartition { .. })
    ));
    let bad = broker.producer(ProducerConfig::default().partitioner(Arc::new(Everything(9))));
    assert!(matches!(
        bad.send("t", Record::new("d")),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        producer.send("nope", Record::new("e")),
        Err(Error::UnknownTopic { .. })
    ));
}

#[test]
fn records_and_headers_round_trip_byte_exact() {
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default());
    let producer = broker.producer(ProducerConfig::default());
    let binary: Vec<u8> = (0..=255).collect();
    let sent = vec![
        Record::new(binary.clone())
            .key(vec![0u8, 255, 1])
            .timestamp(-5)
            .header("bin", binary.clone()),
        Record::tombstone("gone").timestamp(i64::MAX),
        Record {
            key: None,
            value: Some(Default::default()),
            timestamp: 0,
            headers: vec![
                embedlog::Header::null("n"),
                embedlog::Header::new("", ""),
                embedlog::Header::new("dup", "1"),
                embedlog::Header::new("dup", "2"),
            ],
        },
    ];
    for r in &sent {
        producer.send("t", r.clone()).unwrap();
    }
    producer.flush().unwrap();
    let mut consumer =
        broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    consumer.assign([("t", 0)]).unwrap();
    let got = consumer.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(got.len(), 3);
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(g.key_bytes(), s.key);
        assert_eq!(g.value_bytes(), s.value);
        assert_eq!(g.timestamp, s.timestamp);
        assert_eq!(g.headers(), s.headers);
    }
}

#[test]
fn sync_producers_flush_durably_and_oversize_records_fail_at_send() {
    let dir = tempdir();
    let broker = common::broker_with_topic(
        dir.path(),
        "t",
        TopicConfig::default().max_message_bytes(1000),
    );
    let producer = broker.producer(ProducerConfig::default().durability(Durability::Sync));
    let ds: Vec<_> = (0..50)
        .map(|i| producer.send("t", Record::new(format!("{i}"))).unwrap())
        .collect();
    producer.flush().unwrap();
    for d in &ds {
        d.wait().unwrap();
    }
    let p = broker.partition("t", 0).unwrap();
    assert_eq!(p.log().flushed_offset(), 50);
    assert!(matches!(
        producer.send("t", Record::new(vec![0u8; 2000])),
        Err(Error::BatchTooLarge { .. })
    ));
}

#[test]
fn deliveries_resolve_by_linger_without_flush() {
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default());
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_millis(5)));
    let d = producer.send("t", Record::new("x")).unwrap();
    // The linger thread appends it; no flush needed.
    assert_eq!(d.wait().unwrap().offset, 0);
    producer.close().unwrap();
    assert!(matches!(
        producer.send("t", Record::new("y")),
        Err(Error::Closed)
    ));
}

#[test]
fn concurrent_first_sends_to_a_topic_all_resolve() {
    for _ in 0..20 {
        let dir = tempdir();
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .admin()
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let producer = broker.producer(ProducerConfig::default().linger(Duration::from_secs(60)));
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let (producer, barrier) = (producer.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    producer.send("t", Record::new(format!("{i}"))).unwrap()
                })
            })
            .collect();
        let ds: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        producer.flush().unwrap();
        for d in ds {
            assert!(
                d.wait_timeout(Duration::from_secs(10)).unwrap().is_some(),
                "a delivery never resolved"
            );
        }
    }
}

#[test]
fn buffered_records_of_a_deleted_topic_resolve_with_an_error() {
    let dir = tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default());
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_secs(60)));
    let d = producer.send("t", Record::new("old")).unwrap();
    broker.admin().delete_topic("t").unwrap();
    broker
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    let d2 = producer.send("t", Record::new("new")).unwrap();
    assert!(matches!(
        d.wait_timeout(Duration::from_secs(10)),
        Err(Error::DeliveryFailed { .. })
    ));
    // The flush stores the new record and reports the old one's batch.
    assert!(matches!(
        producer.flush(),
        Err(Error::BatchesFailed { batches: 1, .. })
    ));
    assert_eq!(d2.wait().unwrap().offset, 0, "the new topic starts empty");
    producer.flush().unwrap();
}

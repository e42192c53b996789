//! The main job, end to end: open a broker on a data directory, create a
//! topic, produce keyed events with a producer, read them back with a
//! consumer, and print what happened and how fast.
//!
//! ```text
//! cargo run --release --example quickstart [DATA_DIR]
//! ```
//!
//! `DATA_DIR` defaults to `./embedlog-data`. Run it again: the broker
//! reopens the directory (no scan after a clean close) and the new events
//! follow the old ones.

use embedlog::{Broker, ConsumerConfig, ProducerConfig, Record, TopicConfig, TopicPartition};
use std::time::{Duration, Instant};

const TOPIC: &str = "page-views";
const PARTITIONS: u32 = 4;
const EVENTS: u64 = 1_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "embedlog-data".into());

    let opened = Instant::now();
    let broker = Broker::open(&root)?;
    let admin = broker.admin();
    if !admin.list_topics()?.iter().any(|t| t == TOPIC) {
        admin.create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS))?;
        println!("created topic {TOPIC} with {PARTITIONS} partitions in {root}");
    }
    let before = admin.describe_topic(TOPIC)?;
    println!(
        "opened {root} in {:.1?}: {TOPIC} holds {} events, {} bytes",
        opened.elapsed(),
        before.record_count(),
        before.size_bytes()
    );

    // Produce: keyed events; the key picks the partition (Kafka's murmur2),
    // so each user's events stay in order.
    let producer = broker.producer(ProducerConfig::default().batch_size(256 << 10));
    let started = Instant::now();
    let mut bytes = 0u64;
    for i in 0..EVENTS {
        let user = i % 10_000;
        let value = format!(
            r#"{{"user":{user},"page":"/products/{}","seq":{i}}}"#,
            i % 97
        );
        bytes += value.len() as u64;
        // The delivery handle would report the offset; fire and forget here.
        producer.send(TOPIC, Record::new(value).key(format!("user-{user}")))?;
    }
    producer.flush()?; // everything sent is now stored (in the OS)
    let produce = started.elapsed();

    // Consume: every partition from where this run started.
    let mut consumer = broker.consumer(ConsumerConfig::default().max_poll_records(10_000));
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    consumer.assign(&partitions)?;
    for p in &before.partitions {
        consumer.seek((TOPIC, p.partition), p.end_offset)?;
    }
    let started = Instant::now();
    let mut count = 0u64;
    for record in consumer.iter_timeout(Duration::from_millis(200)) {
        let record = record?;
        count += 1;
        if count == EVENTS / 2 {
            println!(
                "halfway: partition {} offset {} key {:?}",
                record.partition,
                record.offset,
                String::from_utf8_lossy(record.key().unwrap_or_default())
            );
        }
        if count == EVENTS {
            break;
        }
    }
    let consume = started.elapsed();
    assert_eq!(count, EVENTS, "every event read back");

    let mb = bytes as f64 / 1e6;
    println!(
        "produced {EVENTS} events ({mb:.0} MB of values) in {produce:.2?}: {:.2} M events/s, {:.0} MB/s",
        EVENTS as f64 / produce.as_secs_f64() / 1e6,
        mb / produce.as_secs_f64()
    );
    println!(
        "consumed {count} events in {consume:.2?}: {:.2} M events/s, {:.0} MB/s",
        count as f64 / consume.as_secs_f64() / 1e6,
        mb / consume.as_secs_f64()
    );
    let after = admin.describe_topic(TOPIC)?;
    for p in &after.partitions {
        println!(
            "  partition {}: offsets {}..{}, {} segment(s), {} bytes",
            p.partition, p.start_offset, p.end_offset, p.segments, p.size_bytes
        );
    }
    broker.close()?;
    println!("closed cleanly; run again to append more");
    Ok(())
}

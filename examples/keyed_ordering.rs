//! Per-key ordering across partitions: several producer threads send events
//! for many keys; each key always lands on the same partition (Kafka's
//! murmur2 partitioner), so a consumer sees every key's events in the order
//! they were sent, however the partitions interleave.
//!
//! ```text
//! cargo run --release --example keyed_ordering [DATA_DIR]
//! ```

use embedlog::{
    Broker, ConsumerConfig, OffsetReset, ProducerConfig, Record, TopicConfig, partition_for_key,
};
use std::collections::HashMap;
use std::time::Duration;

const PARTITIONS: u32 = 6;
const THREADS: u32 = 4;
const PER_THREAD: u32 = 50_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "embedlog-data".into());
    let broker = Broker::open(&root)?;
    let topic = format!("accounts-{}", std::process::id());
    broker
        .admin()
        .create_topic(&topic, TopicConfig::default().partitions(PARTITIONS))?;

    // Each thread owns some accounts and sends a numbered stream of events
    // per account.
    let producer = broker.producer(ProducerConfig::default());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (producer, topic) = (producer.clone(), topic.clone());
            s.spawn(move || -> embedlog::Result<()> {
                for i in 0..PER_THREAD {
                    let account = format!("account-{t}-{}", i % 25);
                    let event = format!("{account} seq {}", i / 25);
                    producer.send(&topic, Record::new(event).key(account))?;
                }
                Ok(())
            });
        }
    });
    producer.flush()?;

    let mut consumer =
        broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    consumer.assign((0..PARTITIONS).map(|p| (topic.as_str(), p)))?;
    let mut last: HashMap<String, (u32, u32)> = HashMap::new();
    let mut total = 0;
    for record in consumer.iter_timeout(Duration::from_millis(200)) {
        let record = record?;
        let text = String::from_utf8_lossy(record.value().unwrap_or_default()).into_owned();
        let (account, seq) = text.split_once(" seq ").ok_or("malformed event")?;
        let seq: u32 = seq.parse()?;
        let key = record.key().unwrap_or_default();
        assert_eq!(
            record.partition,
            partition_for_key(key, PARTITIONS),
            "key on its partition"
        );
        if let Some((partition, prev)) = last.insert(account.to_string(), (record.partition, seq)) {
            assert_eq!(partition, record.partition, "{account} moved partitions");
            assert_eq!(seq, prev + 1, "{account} out of order");
        }
        total += 1;
    }
    assert_eq!(total, THREADS * PER_THREAD);
    println!(
        "{total} events for {} accounts: every account's events in send order",
        last.len()
    );
    let mut by_partition = vec![0; PARTITIONS as usize];
    for (partition, _) in last.values() {
        by_partition[*partition as usize] += 1;
    }
    for (p, n) in by_partition.iter().enumerate() {
        println!("  partition {p}: {n} accounts");
    }
    broker.admin().delete_topic(&topic)?;
    broker.close()?;
    Ok(())
}

//! A consumer following a producer live in another thread: the consumer
//! long-polls (it sleeps until an append wakes it) and measures the time
//! from send to receive.
//!
//! ```text
//! cargo run --release --example tail_follow [DATA_DIR]
//! ```

use embedlog::{Broker, ConsumerConfig, ProducerConfig, Record, TopicConfig};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const EVENTS: usize = 20_000;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "embedlog-data".into());
    let broker = Broker::open(&root)?;
    let topic = format!("ticks-{}", std::process::id());
    broker
        .admin()
        .create_topic(&topic, TopicConfig::default())?;

    let mut consumer = broker.consumer(ConsumerConfig::default());
    consumer.assign([(topic.as_str(), 0)])?;
    // Fix the starting point now (the end, by the default reset policy), so
    // that nothing sent from here on is missed.
    consumer.position((topic.as_str(), 0))?;
    let reader = std::thread::spawn(move || -> embedlog::Result<Vec<u64>> {
        let mut latencies = Vec::with_capacity(EVENTS);
        while latencies.len() < EVENTS {
            let records = consumer.poll(Duration::from_secs(10))?;
            if records.is_empty() {
                return Err(embedlog::Error::InvalidArgument("no event for 10 s".into()));
            }
            for r in records {
                let sent: u64 = std::str::from_utf8(r.value().unwrap_or_default())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                latencies.push(now_ns().saturating_sub(sent));
            }
        }
        Ok(latencies)
    });

    // linger 0: every send is appended (and wakes the consumer) at once.
    let producer = broker.producer(ProducerConfig::default().linger(Duration::ZERO));
    for i in 0..EVENTS {
        producer.send(&topic, Record::new(now_ns().to_string()))?;
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_micros(200)); // a live, bursty source
        }
    }
    let mut lat = reader.join().map_err(|_| "reader panicked")??;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "{EVENTS} events followed live: producer -> consumer latency p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    broker.admin().delete_topic(&topic)?;
    broker.close()?;
    Ok(())
}

//! What embedlog tells its host: `tracing` events (printed here by
//! tracing-subscriber's fmt layer) and `metrics` (kept here by
//! metrics-util's debugging recorder and printed at the end). The library
//! installs neither; an application plugs in its own (an OpenTelemetry or
//! Prometheus exporter, say).
//!
//! Run: `cargo run --example observability --features metrics`

use embedlog::{
    Broker, CleanupPolicy, ConsumerConfig, OffsetReset, ProducerConfig, Record, TopicConfig,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::stderr)
        .init();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install()?;

    let dir = tempfile::tempdir()?;
    let broker = Broker::builder(dir.path()).cleaner(false).open()?;
    let admin = broker.admin();
    admin.create_topic(
        "events",
        TopicConfig::default().partitions(2).segment_bytes(4096),
    )?;
    admin.create_topic(
        "profiles",
        TopicConfig::default()
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(4096),
    )?;

    let producer = broker.producer(ProducerConfig::default());
    for i in 0..2_000u32 {
        producer.send(
            "events",
            Record::new(format!("event {i}")).key(format!("user-{}", i % 10)),
        )?;
        producer.send(
            "profiles",
            Record::new(format!("profile v{i}")).key(format!("user-{}", i % 10)),
        )?;
    }
    producer.flush()?;

    // Two members of one group: each join is a rebalance.
    let config = ConsumerConfig::default()
        .group("analytics")
        .offset_reset(OffsetReset::Earliest);
    let mut a = broker.consumer(config.clone());
    a.subscribe(["events"])?;
    a.poll(Duration::from_millis(100))?;
    let mut b = broker.consumer(config);
    b.subscribe(["events"])?;
    for _ in 0..3 {
        a.poll(Duration::from_millis(100))?;
        b.poll(Duration::from_millis(100))?;
    }
    a.commit()?;
    b.commit()?;

    // A compaction pass and its report.
    broker.partition("profiles", 0)?.roll()?;
    admin.compact_now("profiles")?;
    drop((a, b));
    broker.close()?;
    // Reopening after a clean close: each log says how it opened.
    Broker::open(dir.path())?.close()?;

    println!("\nmetrics:");
    let mut rows: Vec<(String, String)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(g) => g.to_string(),
                DebugValue::Histogram(h) => {
                    let mut h: Vec<f64> = h.into_iter().map(|v| v.into_inner()).collect();
                    h.sort_by(f64::total_cmp);
                    let p = |q: f64| h[((h.len() - 1) as f64 * q) as usize] * 1e6;
                    format!(
                        "{} samples, p50 {:.1} µs, p99 {:.1} µs",
                        h.len(),
                        p(0.5),
                        p(0.99)
                    )
                }
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect();
    rows.sort();
    for (k, v) in rows {
        println!("  {k} = {v}");
    }
    Ok(())
}

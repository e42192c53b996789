//! Page views per minute, counted in hopping windows of one minute that
//! advance every 30 seconds, with 10 seconds of grace for late views, and
//! suppressed until each window closes: the output topic gets one final
//! count per page and window, never a partial one. A view that arrives
//! after its windows closed is dropped and counted.
//!
//! ```text
//! cargo run --release --features streams --example page_views_per_minute
//! ```
//!
//! The views carry event times (a simulated five minutes of traffic, a few
//! of them out of order and two hopelessly late); the example runs the
//! topology as a `Streams` application over a broker in a temporary
//! directory and prints the final counts it wrote.

use embedlog::streams::{
    BufferConfig, Consumed, Materialized, ProcessingGuarantee, Serdes, Streams, StreamsBuilder,
    StreamsConfig, Suppressed, TimeWindows, windowed_serde,
};
use embedlog::{
    Broker, ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig, Record, TopicConfig,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const MINUTE: i64 = 60_000;
const PAGES: [&str; 3] = ["/home", "/pricing", "/docs"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("embedlog-page-views-{}", std::process::id()));
    let broker = Broker::open(&dir)?;
    let admin = broker.admin();
    admin.create_topic("page-views", TopicConfig::default().partitions(2))?;
    admin.create_topic("views-per-minute", TopicConfig::default().partitions(2))?;

    // Five minutes of views (key: page, value: user), mostly in order.
    let producer = broker.producer(ProducerConfig::default());
    let mut sent = 0;
    let mut send = |page: &str, user: u32, at: i64| -> embedlog::Result<()> {
        sent += 1;
        producer.send(
            "page-views",
            Record::new(format!("user-{user}"))
                .key(page.to_owned())
                .timestamp(at),
        )?;
        Ok(())
    };
    for second in 0..300i64 {
        let page = PAGES[(second as usize * 7 + second as usize / 13) % PAGES.len()];
        let at = second * 1000;
        send(page, (second % 17) as u32, at)?;
        if second % 45 == 0 && second > 0 {
            // Five seconds late: within the grace period.
            send("/pricing", 99, at - 5_000)?;
        }
    }
    // Far too late: their windows closed long ago.
    send("/home", 1, 10_000)?;
    send("/docs", 2, 20_000)?;
    // One view two minutes on moves stream time past every window above.
    send("/home", 3, 7 * MINUTE)?;
    producer.flush()?;

    let builder = StreamsBuilder::new();
    let windows = TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10))
        .advance_by(Duration::from_secs(30));
    builder
        .stream(
            "page-views",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .group_by_key()
        .windowed_by(windows)
        .count_with(Materialized::as_("views-per-minute"))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to("views-per-minute");
    let topology = builder.build()?;
    println!("{}", topology.describe());
    let config =
        StreamsConfig::new("page-views").processing_guarantee(ProcessingGuarantee::ExactlyOnce);
    let streams = Streams::new(&broker, topology, config)?;
    streams.start()?;
    let started = Instant::now();
    while streams.metrics().processed < sent && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let metrics = streams.metrics();
    streams.close()?;

    // Read the final counts.
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted),
    );
    consumer.assign([("views-per-minute", 0), ("views-per-minute", 1)])?;
    let keys = windowed_serde(Serdes::string());
    let mut counts: BTreeMap<(i64, String), Vec<i64>> = BTreeMap::new();
    for r in consumer.poll(Duration::from_secs(1))? {
        let w = keys.deserialize(r.key())?;
        let n = i64::from_be_bytes(r.value().unwrap_or_default().try_into()?);
        counts.entry((w.window.start, w.key)).or_default().push(n);
    }
    println!("final views per page, per one-minute window (every 30 s):");
    for ((start, page), n) in &counts {
        if n.len() != 1 {
            return Err(format!("window {start} of {page} was emitted {} times", n.len()).into());
        }
        println!(
            "  [{:>3}s, {:>3}s) {page:<9} {:>3}",
            start / 1000,
            (start + MINUTE) / 1000,
            n[0]
        );
    }
    println!(
        "{} views processed; {} window counts dropped as late (the windows of late views that had closed)",
        metrics.processed, metrics.dropped_late
    );
    broker.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

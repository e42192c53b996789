//! The main job, end to end: open a partition log under a data directory,
//! append keyed events in batches, read them all back, look one up by time,
//! and print what happened with the throughput.
//!
//! ```text
//! cargo run --release --example quickstart [DATA_DIR]
//! ```
//!
//! `DATA_DIR` defaults to `./embedlog-data`. Run it twice: the second run
//! reopens the log (no scan after a clean close) and appends after the
//! first run's events.

use embedlog::{Log, LogConfig, ReadLimit, Record};
use std::time::Instant;

const EVENTS: u64 = 1_000_000;
const BATCH: u64 = 1_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "embedlog-data".into());
    let dir = std::path::Path::new(&root).join("quickstart-0");

    let opened = Instant::now();
    let log = Log::open(&dir, LogConfig::default())?;
    println!(
        "opened {} in {:.1?}: offsets {}..{}, {} segment(s), {} bytes",
        dir.display(),
        opened.elapsed(),
        log.start_offset(),
        log.end_offset(),
        log.segment_count(),
        log.size_bytes()
    );

    // Produce: 1M events of ~100 bytes, keyed by user, in batches of 1000.
    let first = log.end_offset();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH as usize);
    for i in 0..EVENTS {
        let user = i % 1000;
        batch.push(
            Record::new(format!(
                "{{\"user\":{user},\"event\":\"page_view\",\"seq\":{i},\"path\":\"/products/{}\"}}",
                i % 97
            ))
            .key(format!("user-{user}")),
        );
        if batch.len() as u64 == BATCH {
            log.append(&batch)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        log.append(&batch)?;
    }
    // Make everything durable (one fsync) before reporting success.
    log.flush()?;
    let produce = started.elapsed();

    // Consume: read everything this run wrote, zero-copy.
    let started = Instant::now();
    let (mut at, mut count, mut bytes) = (first, 0u64, 0u64);
    while at < log.end_offset() {
        for record in log.read(at, ReadLimit::bytes(1 << 20))?.records() {
            let record = record?;
            bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
            count += 1;
            at = record.offset + 1;
        }
    }
    let consume = started.elapsed();
    assert_eq!(count, EVENTS, "every event read back");

    let ts = log
        .read(first + EVENTS / 2, ReadLimit::bytes(1))?
        .records()
        .next()
        .transpose()?
        .map(|r| r.timestamp);
    let by_time = match ts {
        Some(ts) => log.offset_for_timestamp(ts)?,
        None => None,
    };
    println!(
        "produced {EVENTS} events in {produce:.2?} ({:.2} M events/s, {:.0} MB/s)",
        EVENTS as f64 / produce.as_secs_f64() / 1e6,
        bytes as f64 / produce.as_secs_f64() / 1e6
    );
    println!(
        "consumed {count} events in {consume:.2?} ({:.2} M events/s, {:.0} MB/s)",
        count as f64 / consume.as_secs_f64() / 1e6,
        bytes as f64 / consume.as_secs_f64() / 1e6
    );
    println!("first offset at or after the middle event's timestamp: {by_time:?}");
    println!(
        "log now holds offsets {}..{} in {} segment(s); closing cleanly",
        log.start_offset(),
        log.end_offset(),
        log.segment_count()
    );
    log.close()?;
    Ok(())
}

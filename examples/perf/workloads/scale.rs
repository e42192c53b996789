//! The scale run: `EMBEDLOG_PERF_SCALE_GB` GiB (default 10) through one
//! producer (256 KiB batches, a topic kept forever) in 1 GiB steps, the
//! rate and resident memory of each step, then the time to reopen the
//! broker after a clean close. One run, not in `all`.

use super::input::Payloads;
use super::{
    Column, Contender, EMBEDLOG, Figures, Params, Records, Res, SMALL, Show, Step, TOPIC, Workload,
    data_dir, new_broker,
};
use bytes::Bytes;
use embedlog::{Broker, ProducerConfig, Record, TopicConfig};
use std::time::Instant;

/// Distinct payloads, cycled (a GiB of them would not fit in memory).
const DISTINCT: u64 = 1 << 20;

pub fn workloads() -> Vec<Workload> {
    vec![
        Workload::new(
            "scale",
            "EMBEDLOG_PERF_SCALE_GB GiB through one producer (256 KiB batches): rate and \
             RSS per GiB, then the reopen time",
            0,
            SMALL.1,
            Show::Scale,
        )
        .records_from(Records::Fixed)
        .not_in_all()
        .contender(Contender::new(
            Column::Embedlog,
            vec![Step::writes("embedlog", EMBEDLOG, scale)],
        )),
    ]
}

/// GiB to write: `EMBEDLOG_PERF_SCALE_GB`, 10 if unset.
pub fn gigabytes() -> Result<u64, String> {
    match std::env::var("EMBEDLOG_PERF_SCALE_GB") {
        Err(_) => Ok(10),
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&gb| gb > 0)
            .ok_or(format!("EMBEDLOG_PERF_SCALE_GB={v}: a number of GiB ≥ 1")),
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0.0, |pages| (pages * 4096) as f64 / 1e6)
}

fn scale(p: &Params) -> Res<Figures> {
    let gb = gigabytes()?;
    let root = data_dir(p, EMBEDLOG)?;
    let broker = new_broker(&root, TopicConfig::default().retention(None))?;
    let producer = broker.producer(ProducerConfig::default().batch_size(256 << 10));
    let per_gb = (1u64 << 30) / (p.size as u64 + 20);
    let payloads = Payloads::new(per_gb.min(DISTINCT), p.size);
    let mut figures = Figures::new();
    let mut i = 0u64;
    for step in 1..=gb {
        let started = Instant::now();
        for _ in 0..per_gb {
            let payload = payloads.get(i % payloads.len());
            producer.send(
                TOPIC,
                Record::new(Bytes::copy_from_slice(payload)).timestamp(i as i64),
            )?;
            i += 1;
        }
        producer.flush()?;
        let rate = per_gb as f64 / started.elapsed().as_secs_f64();
        let rss = rss_mb();
        eprintln!(
            "perf: scale: GiB {step}: {:.2} M rec/s, RSS {rss:.0} MB",
            rate / 1e6
        );
        figures.insert(format!("gib{step}_rate"), rate);
        figures.insert(format!("gib{step}_rss_mb"), rss);
    }
    drop(producer);
    broker.close()?;
    drop(broker);
    let started = Instant::now();
    let broker = Broker::open(&root)?;
    let opened = started.elapsed();
    let d = broker.admin().describe_topic(TOPIC)?;
    figures.insert("gib".into(), gb as f64);
    figures.insert("reopen_ms".into(), opened.as_secs_f64() * 1e3);
    figures.insert("disk_bytes".into(), d.size_bytes() as f64);
    figures.insert("segments".into(), d.partitions[0].segments as f64);
    broker.close()?;
    Ok(figures)
}

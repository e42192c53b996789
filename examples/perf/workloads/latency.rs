//! Latency percentiles: of one `Log::append` (one record, no fsync), and
//! from `Producer::send` to a consumer blocked in `poll` receiving the
//! record (same process, two threads).

use super::input::Payloads;
use super::produce::record;
use super::{
    Column, Contender, EMBEDLOG, Figures, Params, Res, Show, Step, TOPIC, Workload, data_dir,
    ensure, new_broker,
};
use embedlog::{ConsumerConfig, Log, LogConfig, ProducerConfig, Record, TopicConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the producer waits after the consumer took a record before it
/// sends the next, so that the consumer is blocked in `poll` again.
const SETTLE: Duration = Duration::from_micros(100);

pub fn workloads() -> Vec<Workload> {
    vec![
        Workload::new(
            "latency-append",
            "append latency: one record per `Log::append`, no fsync, each call timed",
            200_000,
            100,
            Show::Latency,
        )
        .contender(Contender::new(
            Column::Embedlog,
            vec![Step::writes("embedlog", EMBEDLOG, append)],
        )),
        Workload::new(
            "latency-e2e",
            "producer (linger 0) → consumer blocked in `poll`, same process, two threads",
            20_000,
            100,
            Show::Latency,
        )
        .contender(Contender::new(
            Column::Embedlog,
            vec![Step::writes("embedlog", EMBEDLOG, end_to_end)],
        )),
    ]
}

/// p50, p99, p99.9 and max of `ns`, nearest rank.
fn percentiles(mut ns: Vec<u64>) -> Res<Figures> {
    ensure(!ns.is_empty(), || "no samples".into())?;
    ns.sort_unstable();
    let at = |q: f64| ns[((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1] as f64;
    Ok(Figures::from([
        ("samples".to_string(), ns.len() as f64),
        ("p50_ns".to_string(), at(0.5)),
        ("p99_ns".to_string(), at(0.99)),
        ("p999_ns".to_string(), at(0.999)),
        ("max_ns".to_string(), at(1.0)),
    ]))
}

/// Each `Log::append` of one record (built before its timer) timed alone.
fn append(p: &Params) -> Res<Figures> {
    let payloads = Payloads::new(p.records, p.size);
    let log = Log::open(data_dir(p, EMBEDLOG)?, LogConfig::default())?;
    let mut ns = Vec::with_capacity(p.records as usize);
    for payload in payloads.iter() {
        let r = [record(payload)];
        let t = Instant::now();
        log.append(&r)?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    log.close()?;
    percentiles(ns)
}

/// The record carries its send time (ns since a shared epoch) in its first
/// 8 bytes; the consumer subtracts it from the time it gets the record.
fn end_to_end(p: &Params) -> Res<Figures> {
    ensure(p.size >= 8, || "latency-e2e needs --size ≥ 8".into())?;
    let broker = new_broker(&data_dir(p, EMBEDLOG)?, TopicConfig::default())?;
    let mut c = broker.consumer(ConsumerConfig::default());
    c.assign([(TOPIC, 0)])?;
    c.position((TOPIC, 0))?;
    let n = p.records as usize;
    let epoch = Instant::now();
    let taken = Arc::new(AtomicU64::new(0));
    let reader = {
        let taken = taken.clone();
        std::thread::spawn(move || -> embedlog::Result<Vec<u64>> {
            let mut ns = Vec::with_capacity(n);
            while ns.len() < n {
                for r in c.poll(Duration::from_secs(10))? {
                    let now = epoch.elapsed().as_nanos() as u64;
                    let v = r.value().unwrap_or_default();
                    let sent = v
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(now, u64::from_le_bytes);
                    ns.push(now.saturating_sub(sent));
                    taken.fetch_add(1, Ordering::Release);
                }
            }
            Ok(ns)
        })
    };
    let producer = broker.producer(ProducerConfig::default().linger(Duration::ZERO));
    let mut value = vec![b'x'; p.size];
    for i in 0..n as u64 {
        while taken.load(Ordering::Acquire) < i {
            if reader.is_finished() {
                break; // failed: its error comes from join
            }
            std::thread::yield_now();
        }
        if reader.is_finished() {
            break;
        }
        std::thread::sleep(SETTLE);
        value[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
        producer.send(TOPIC, Record::new(value.clone()))?;
    }
    let ns = reader
        .join()
        .map_err(|_| "the consumer thread panicked")??;
    drop(producer);
    broker.close()?;
    percentiles(ns)
}

//! `embedlog perf produce|consume`: Kafka's `kafka-producer-perf-test.sh`
//! and `kafka-consumer-perf-test.sh`, in process.
//!
//! `produce` sends records as fast as it may (or on a schedule), measures
//! each record's latency from `send` to its delivery being stored, and
//! prints Kafka's summary line. `consume` reads a topic from the beginning
//! and prints Kafka's consumer-perf columns.

use crate::Outcome;
use crate::common::{self, Fail};
use bytes::Bytes;
use embedlog::{
    Broker, Consumer, ConsumerConfig, Delivery, Durability, Offset, OffsetReset, ProducerConfig,
    Record, Topic, TopicConfig,
};
use indicatif::ProgressBar;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Kafka's megabyte: 2^20 bytes.
const MB: f64 = 1024.0 * 1024.0;

/// Latencies kept for the percentiles (Kafka's tool keeps as many): every
/// k-th record's, with k = records / this.
const MAX_SAMPLES: u64 = 500_000;

/// Most threads that watch deliveries complete (one per partition up to
/// this many; partitions beyond share them).
const MAX_OBSERVERS: u32 = 16;

/// The throttle sleeps only when it is at least this far ahead of the
/// schedule (as Kafka's `ThroughputThrottler` does), so that high rates are
/// not spent in tiny sleeps; the schedule catches up after each one.
const MIN_SLEEP: Duration = Duration::from_millis(1);

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Producer throughput and latency (Kafka's kafka-producer-perf-test).
    Produce(ProduceArgs),
    /// Consumer throughput (Kafka's kafka-consumer-perf-test).
    Consume(ConsumeArgs),
}

pub fn run(dir: &Path, cmd: Cmd) -> Outcome {
    match cmd {
        Cmd::Produce(args) => produce(dir, args),
        Cmd::Consume(args) => consume(dir, args),
    }
}

/// Sends `--num-records` records of `--record-size` bytes and reports
/// throughput and latency.
///
/// Latency is the time from `send` to the record's delivery being stored
/// (in the OS; fsync'd with `--sync`), observed by threads that wait on the
/// deliveries in send order, one per partition (up to 16), so that the
/// sending thread never waits for them. The run ends when every record is
/// stored (`flush`); records/sec counts from the first send to then.
/// MB/sec counts value bytes, as Kafka's tool does (keys are extra).
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// The topic. Created with --partitions partitions if it does not
    /// exist; an existing topic is used as it is.
    topic: String,
    /// How many records to send.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    num_records: u64,
    /// Size of each record's value in bytes (one payload of random
    /// letters, made before the run). Must fit the topic's
    /// max.message.bytes.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..))]
    record_size: u32,
    /// Records per second at most, kept by a schedule (each record waits
    /// until it is due); -1: as fast as possible.
    #[arg(
        long,
        value_name = "RECORDS_PER_SEC",
        default_value = "-1",
        allow_negative_numbers = true,
        value_parser = parse_throughput
    )]
    throughput: Throughput,
    /// Partitions of the topic when this creates it. Default: 1. An
    /// existing topic keeps its count.
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(1..))]
    partitions: Option<u32>,
    /// The producer's batch.size: a partition's batch is appended once it
    /// holds this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16384,
          value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// The producer's linger.ms: how long a batch that is not full may
    /// wait. 0 appends every record at once.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    linger_ms: u64,
    /// fsync each batch before its records count as delivered (the
    /// producer's Durability::Sync).
    #[arg(long)]
    sync: bool,
    /// Give the records keys key-0 .. key-(K-1), in turn (murmur2 spreads
    /// them over the partitions). Default: no keys (sticky partitioning).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    key_count: Option<u64>,
    /// Milliseconds between progress lines on stderr.
    #[arg(long, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..))]
    reporting_interval_ms: u64,
    /// Print the summary as one JSON object (records, seconds,
    /// records_per_sec, mb_per_sec, latency_ms).
    #[arg(long)]
    json: bool,
}

/// `--throughput`: records per second, or none for unlimited.
#[derive(Debug, Clone, Copy)]
struct Throughput(Option<f64>);

fn parse_throughput(s: &str) -> Result<Throughput, String> {
    let rate: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of records per second"))?;
    if rate == -1.0 {
        Ok(Throughput(None))
    } else if rate.is_finite() && rate > 0.0 {
        Ok(Throughput(Some(rate)))
    } else {
        Err(format!(
            "{s} records/sec: give a rate above 0, or -1 for no limit"
        ))
    }
}

/// One sent record, for the thread that watches its delivery.
struct Sent {
    seq: u64,
    at: Instant,
    delivery: Delivery,
}

/// Counts since the last progress line.
#[derive(Debug, Default)]
struct Window {
    count: u64,
    total_ns: u128,
    max_ns: u64,
}

impl Window {
    fn add(&mut self, ns: u64) {
        self.count += 1;
        self.total_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    fn merge(&mut self, other: Window) {
        self.count += other.count;
        self.total_ns += other.total_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ns as f64 / self.count as f64 / 1e6
        }
    }
}

/// What one observer thread saw.
#[derive(Debug, Default)]
struct Tally {
    all: Window,
    samples: Vec<u64>,
    failed: u64,
    first_error: Option<embedlog::Error>,
}

/// Waits for each delivery in turn and records its latency.
fn observe(rx: Receiver<Sent>, stride: u64, window: Arc<Mutex<Window>>) -> Tally {
    let mut t = Tally::default();
    for s in rx {
        match s.delivery.wait() {
            Ok(_) => {
                let ns = u64::try_from(s.at.elapsed().as_nanos()).unwrap_or(u64::MAX);
                t.all.add(ns);
                if s.seq % stride == 0 {
                    t.samples.push(ns);
                }
                lock(&window).add(ns);
            }
            Err(e) => {
                t.failed += 1;
                t.first_error.get_or_insert(e);
            }
        }
    }
    t
}

/// Locks `m`, taking the data of a poisoned lock as it is (the counters in
/// it stay meaningful).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The result of a produce run.
#[derive(Debug)]
struct ProduceSummary {
    records: u64,
    bytes: u64,
    seconds: f64,
    avg_ms: f64,
    max_ms: f64,
    /// p50, p95, p99, p99.9 in milliseconds.
    percentiles: [f64; 4],
}

fn produce(dir: &Path, a: ProduceArgs) -> Outcome {
    let broker = common::open_or_create_owner(dir)?;
    let result = produce_on(&broker, &a);
    let closed = broker.close();
    let s = result?;
    closed?;
    let rps = s.records as f64 / s.seconds;
    let mbps = s.bytes as f64 / MB / s.seconds;
    let [p50, p95, p99, p999] = s.percentiles;
    if a.json {
        common::print_json(&serde_json::json!({
            "topic": a.topic,
            "records": s.records,
            "bytes": s.bytes,
            "seconds": s.seconds,
            "records_per_sec": rps,
            "mb_per_sec": mbps,
            "latency_ms": {
                "avg": s.avg_ms, "max": s.max_ms,
                "p50": p50, "p95": p95, "p99": p99, "p999": p999,
            },
        }));
    } else {
        println!(
            "{} records sent, {rps:.1} records/sec ({mbps:.2} MB/sec), {:.3} ms avg latency, \
             {:.3} ms max latency, {p50:.3} ms 50th, {p95:.3} ms 95th, {p99:.3} ms 99th, \
             {p999:.3} ms 99.9th.",
            s.records, s.avg_ms, s.max_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The topic to produce to: the existing one (said on stderr), or a new
/// one with `--partitions` partitions.
fn produce_topic(broker: &Broker, a: &ProduceArgs) -> Result<Topic, Fail> {
    match broker.topic(&a.topic) {
        Ok(t) => {
            let n = t.partition_count();
            let ignored = match a.partitions {
                Some(p) if p != n => format!(" (--partitions {p} ignored)"),
                _ => String::new(),
            };
            eprintln!(
                "using the existing topic {} with {n} partition{}{ignored}",
                a.topic,
                if n == 1 { "" } else { "s" }
            );
            Ok(t)
        }
        Err(embedlog::Error::UnknownTopic { .. }) => {
            let config = TopicConfig::default().partitions(a.partitions.unwrap_or(1));
            Ok(broker.admin().create_topic(&a.topic, config)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The topic's `max.message.bytes`.
fn max_message_bytes(topic: &Topic) -> Option<u64> {
    topic
        .config()
        .entries()
        .into_iter()
        .find(|(name, _)| *name == "max.message.bytes")
        .and_then(|(_, v)| v.parse().ok())
}

/// `size` bytes of random capital letters (as Kafka's tool makes them).
fn payload(size: usize) -> Bytes {
    let seed = embedlog::now_ms().unsigned_abs();
    let mut x = seed | 1;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            // xorshift64: random enough for a payload, and no dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect();
    Bytes::from(bytes)
}

fn produce_on(broker: &Broker, a: &ProduceArgs) -> Result<ProduceSummary, Fail> {
    let topic = produce_topic(broker, a)?;
    if let Some(max) = max_message_bytes(&topic)
        && u64::from(a.record_size) > max
    {
        return Err(Fail::new(format!(
            "--record-size {} is larger than topic {}'s max.message.bytes ({max})",
            a.record_size, a.topic
        ))
        .hint("give a smaller --record-size, or raise the topic's max.message.bytes"));
    }
    let n = a.num_records;
    let value = payload(a.record_size as usize);
    let keys: Vec<Bytes> = (0..a.key_count.unwrap_or(0).min(n))
        .map(|i| Bytes::from(format!("key-{i}")))
        .collect();
    let durability = if a.sync {
        Durability::Sync
    } else {
        Durability::Buffered
    };
    let config = ProducerConfig::default()
        .batch_size(usize::try_from(a.batch_size).unwrap_or(usize::MAX))
        .linger(Duration::from_millis(a.linger_ms))
        .durability(durability);
    let producer = broker.producer(config);

    // One observer per partition (up to MAX_OBSERVERS): a partition's
    // batches are stored in order, so waiting in send order sees each
    // record's completion when it happens.
    let observers = topic.partition_count().clamp(1, MAX_OBSERVERS);
    let stride = (n / n.min(MAX_SAMPLES)).max(1);
    let mut senders: Vec<Sender<Sent>> = Vec::new();
    let mut windows: Vec<Arc<Mutex<Window>>> = Vec::new();
    let mut threads: Vec<JoinHandle<Tally>> = Vec::new();
    for i in 0..observers {
        let (tx, rx) = channel();
        let window = Arc::new(Mutex::new(Window::default()));
        let w = window.clone();
        let t = thread::Builder::new()
            .name(format!("perf-observer-{i}"))
            .spawn(move || observe(rx, stride, w))
            .map_err(|e| Fail::new(format!("cannot start a thread: {e}")))?;
        senders.push(tx);
        windows.push(window);
        threads.push(t);
    }

    let bar = common::progress(Some(n), "produce");
    let interval = Duration::from_millis(a.reporting_interval_ms);
    let start = Instant::now();
    let mut window_start = start;
    for i in 0..n {
        if let Throughput(Some(rate)) = a.throughput {
            let due = Duration::try_from_secs_f64(i as f64 / rate)
                .ok()
                .and_then(|d| start.checked_add(d))
                .ok_or_else(|| Fail::new(format!("--throughput {rate} is too low")))?;
            let now = Instant::now();
            if due > now + MIN_SLEEP {
                thread::sleep(due - now);
            }
        }
        let mut record = Record::new(value.clone());
        if !keys.is_empty() {
            record.key = Some(keys[(i % keys.len() as u64) as usize].clone());
        }
        let at = Instant::now();
        let delivery = producer.send(&a.topic, record).map_err(send_failed)?;
        let observer = delivery.partition() % observers;
        senders[observer as usize]
            .send(Sent {
                seq: i,
                at,
                delivery,
            })
            .map_err(|_| Fail::new("a latency observer thread stopped"))?;
        if i % 1024 == 0 {
            bar.set_position(i);
        }
        if at.duration_since(window_start) >= interval {
            report_window(
                &bar,
                &windows,
                at.duration_since(window_start),
                a.record_size,
            );
            window_start = at;
        }
    }
    bar.set_position(n);
    // Every record is stored (or failed) when flush returns.
    let flushed = producer.flush();
    drop(senders);
    let mut total = Tally::default();
    for t in threads {
        let t = t
            .join()
            .map_err(|_| Fail::new("a latency observer thread panicked"))?;
        total.all.merge(t.all);
        total.samples.extend(t.samples);
        total.failed += t.failed;
        if total.first_error.is_none() {
            total.first_error = t.first_error;
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    if let Some(e) = total.first_error {
        return Err(Fail::new(format!(
            "{} of {n} records were not stored: {e}",
            total.failed
        )));
    }
    flushed?;
    producer.close()?;
    total.samples.sort_unstable();
    let percentiles = [0.5, 0.95, 0.99, 0.999].map(|p| percentile_ms(&total.samples, p));
    Ok(ProduceSummary {
        records: total.all.count,
        bytes: total.all.count * u64::from(a.record_size),
        seconds: elapsed.as_secs_f64().max(1e-9),
        avg_ms: total.all.avg_ms(),
        max_ms: total.all.max_ns as f64 / 1e6,
        percentiles,
    })
}

/// A failed `send`: the record was refused (nothing of it was stored).
fn send_failed(e: embedlog::Error) -> Fail {
    let hint = match &e {
        embedlog::Error::BatchTooLarge { .. } => {
            Some("give a smaller --record-size (or raise the topic's max.message.bytes)")
        }
        embedlog::Error::KeyRequired { .. } => {
            Some("a compacted topic needs keys: pass --key-count")
        }
        _ => None,
    };
    let fail = Fail::from(e);
    match hint {
        Some(h) if fail.hint.is_none() => fail.hint(h),
        _ => fail,
    }
}

/// The `p` quantile of sorted nanoseconds, in milliseconds (Kafka's
/// index: `p × count`).
fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1e6
}

/// Prints Kafka's progress line for the records stored since the last one.
fn report_window(
    bar: &ProgressBar,
    windows: &[Arc<Mutex<Window>>],
    elapsed: Duration,
    record_size: u32,
) {
    let mut w = Window::default();
    for x in windows {
        w.merge(std::mem::take(&mut *lock(x)));
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    let line = format!(
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.3} ms avg latency, {:.3} ms max \
         latency.",
        w.count,
        w.count as f64 / secs,
        (w.count * u64::from(record_size)) as f64 / MB / secs,
        w.avg_ms(),
        w.max_ns as f64 / 1e6
    );
    bar.suspend(|| eprintln!("{line}"));
}

/// Reads a topic from the beginning of every partition (or from a group's
/// committed offsets) and prints Kafka's consumer-perf columns
/// `start.time, end.time, data.consumed.in.MB, MB.sec,
/// data.consumed.in.nMsg, nMsg.sec`. Bytes are key + value sizes, as
/// Kafka counts them; times are UTC.
///
/// Left out: Kafka's `rebalance.time.ms, fetch.time.ms, fetch.MB.sec,
/// fetch.nMsg.sec`. Joining a group here is an in-process call with no
/// network round trips, and there is no fetch apart from the poll, so
/// fetch time would be the elapsed time and the fetch columns would repeat
/// MB.sec and nMsg.sec.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Stop after this many records. Default: every record up to the
    /// partitions' end offsets when the run starts.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    num_records: Option<u64>,
    /// Read as a member of this consumer group (subscribe): start from the
    /// group's committed offsets, and commit where it stopped. Default: no
    /// group; every partition is assigned directly and nothing is
    /// committed.
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Where there is no committed offset, start at the end of each
    /// partition instead of the beginning (then only records produced
    /// during the run are read; give --num-records).
    #[arg(long)]
    from_latest: bool,
    /// Stop when no record arrived for this many milliseconds (Kafka's
    /// --timeout).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    timeout_ms: u64,
    /// Print a line of stats every reporting interval (Kafka's
    /// `time, threadId, ...` columns; threadId is always 0), the last one
    /// when the run ends, instead of the summary line.
    #[arg(long, conflicts_with = "json")]
    show_detailed_stats: bool,
    /// Milliseconds between the lines of --show-detailed-stats.
    #[arg(long, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..))]
    reporting_interval_ms: u64,
    /// Read whole record batches (poll_batches, borrowed records) instead
    /// of owned records (poll).
    #[arg(long)]
    batches: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// When a consume run is done.
enum Until {
    /// After this many records.
    Count(u64),
    /// When every partition's position reached its end offset at the
    /// start.
    Ends(Vec<(u32, Offset)>),
}

/// Running totals of a consume run.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    records: u64,
    bytes: u64,
}

fn consume(dir: &Path, a: ConsumeArgs) -> Outcome {
    let broker = common::open_owner(dir)?;
    let result = consume_on(&broker, &a);
    let closed = broker.close();
    result?;
    closed?;
    Ok(ExitCode::SUCCESS)
}

fn consume_on(broker: &Broker, a: &ConsumeArgs) -> Result<(), Fail> {
    let topic = broker.topic(&a.topic)?;
    let parts = topic.partitions();
    let reset = if a.from_latest {
        OffsetReset::Latest
    } else {
        OffsetReset::Earliest
    };
    let mut config = ConsumerConfig::default().offset_reset(reset);
    if let Some(g) = &a.group {
        config = config.group(g.clone());
    }
    let mut consumer = broker.consumer(config);
    let until = match a.num_records {
        Some(n) => Until::Count(n),
        None => Until::Ends(parts.iter().map(|p| (p.id(), p.end_offset())).collect()),
    };
    let expected = match &until {
        Until::Count(n) => *n,
        Until::Ends(_) if a.from_latest => 0,
        Until::Ends(_) => parts
            .iter()
            .map(|p| p.end_offset() - p.start_offset())
            .sum(),
    };
    if a.group.is_some() {
        consumer.subscribe(&[a.topic.as_str()])?;
    } else {
        consumer.assign(parts.iter().map(|p| (a.topic.as_str(), p.id())))?;
    }

    let detail_header = "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, \
                         nMsg.sec";
    if a.show_detailed_stats {
        println!("{detail_header}");
    }
    let bar = common::progress(Some(expected), "consume");
    let timeout = Duration::from_millis(a.timeout_ms);
    let interval = Duration::from_millis(a.reporting_interval_ms);
    let start_ms = embedlog::now_ms();
    let start = Instant::now();
    let mut last_record = start;
    let mut last_report = (start, Totals::default());
    let mut t = Totals::default();
    let mut timed_out = false;
    loop {
        let done = match &until {
            Until::Count(n) => t.records >= *n,
            Until::Ends(ends) => caught_up(&mut consumer, &a.topic, ends)?,
        };
        if done {
            break;
        }
        let idle = last_record.elapsed();
        if idle > timeout {
            timed_out = true;
            break;
        }
        let wait = (timeout - idle).min(Duration::from_millis(100));
        let limit = match &until {
            Until::Count(n) => n - t.records,
            Until::Ends(_) => u64::MAX,
        };
        let got = poll_once(&mut consumer, wait, limit, a.batches)?;
        let now = Instant::now();
        if got.records > 0 {
            last_record = now;
            t.records += got.records;
            t.bytes += got.bytes;
            bar.set_position(t.records);
        }
        if a.show_detailed_stats && now.duration_since(last_report.0) >= interval {
            bar.suspend(|| detail_line(&t, last_report, now));
            last_report = (now, t);
        }
    }
    let end_ms = embedlog::now_ms();
    let end = Instant::now();
    bar.finish_and_clear();
    if timed_out {
        let target = match &until {
            Until::Count(n) => format!("{n} records"),
            Until::Ends(_) => "the end offsets the run started with".to_string(),
        };
        eprintln!(
            "WARNING: exiting before consuming {target}: no record for {} ms (--timeout-ms)",
            a.timeout_ms
        );
    }
    if a.group.is_some() {
        consumer.commit()?;
        consumer.close()?;
    }

    if a.show_detailed_stats {
        if last_report.1.records != t.records || last_report.0 == start {
            detail_line(&t, last_report, end);
        }
        return Ok(());
    }
    let seconds = end.duration_since(start).as_secs_f64().max(1e-9);
    let mb = t.bytes as f64 / MB;
    if a.json {
        common::print_json(&serde_json::json!({
            "topic": a.topic,
            "start_time": common::format_time(start_ms),
            "end_time": common::format_time(end_ms),
            "seconds": seconds,
            "records": t.records,
            "bytes": t.bytes,
            "mb": mb,
            "mb_per_sec": mb / seconds,
            "records_per_sec": t.records as f64 / seconds,
            "timed_out": timed_out,
        }));
    } else {
        println!(
            "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec"
        );
        println!(
            "{}, {}, {mb:.4}, {:.4}, {}, {:.4}",
            common::format_time(start_ms),
            common::format_time(end_ms),
            mb / seconds,
            t.records,
            t.records as f64 / seconds
        );
    }
    Ok(())
}

/// Whether every partition's position reached its end offset at the start
/// (false while a group has not assigned them yet).
fn caught_up(consumer: &mut Consumer, topic: &str, ends: &[(u32, Offset)]) -> Result<bool, Fail> {
    let assigned = consumer.assignment();
    for &(p, end) in ends {
        if !assigned
            .iter()
            .any(|tp| tp.partition == p && &*tp.topic == topic)
        {
            return Ok(false);
        }
        if consumer.position((topic, p))? < end {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One poll: records and key + value bytes, counting at most `limit`
/// records.
fn poll_once(
    consumer: &mut Consumer,
    wait: Duration,
    limit: u64,
    batches: bool,
) -> Result<Totals, Fail> {
    let mut got = Totals::default();
    let size = |k: Option<usize>, v: Option<usize>| (k.unwrap_or(0) + v.unwrap_or(0)) as u64;
    if batches {
        for (_, b) in consumer.poll_batches(wait)? {
            for r in b.records_ref() {
                if got.records >= limit {
                    return Ok(got);
                }
                let r = r?;
                got.records += 1;
                got.bytes += size(r.key.map(<[u8]>::len), r.value.map(<[u8]>::len));
            }
        }
    } else {
        for r in consumer.poll(wait)? {
            if got.records >= limit {
                break;
            }
            got.records += 1;
            got.bytes += size(r.key().map(<[u8]>::len), r.value().map(<[u8]>::len));
        }
    }
    Ok(got)
}

/// One line of `--show-detailed-stats`: totals so far, rates since `last`.
fn detail_line(t: &Totals, last: (Instant, Totals), now: Instant) {
    let secs = now.duration_since(last.0).as_secs_f64().max(1e-9);
    let interval_mb = (t.bytes - last.1.bytes) as f64 / MB;
    println!(
        "{}, 0, {:.4}, {:.4}, {}, {:.4}",
        common::format_time(embedlog::now_ms()),
        t.bytes as f64 / MB,
        interval_mb / secs,
        t.records,
        (t.records - last.1.records) as f64 / secs
    );
}

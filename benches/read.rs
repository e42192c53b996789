//! Hot paths of reading (issue 14): `Consumer::poll` of owned records
//! (`read/poll`), `Log::read` + `records_ref` over data written one record
//! per append (`read/log_read`), and one record by random offset
//! (`read/random`: `Partition::read` on producer data, and `Log::read` on
//! single-append data for each index interval tried, 1 to 8 KiB).
//!
//! `cargo bench --bench read`; set `EMBEDLOG_BENCH_DIR` to measure on a
//! particular file system (default: the system temporary directory). The
//! data stays in the page cache: these measure the library's own work, not
//! the disk (the `perf` example's fresh-process figures include first
//! touches of the mapping).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use embedlog::{
    Broker, ConsumerConfig, Log, LogConfig, OffsetReset, ProducerConfig, ReadLimit, Record,
    TopicConfig,
};
use std::hint::black_box;
use std::time::Duration;

const RECORDS: u64 = 200_000;
const LOOKUPS: usize = 1024;

fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("EMBEDLOG_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn payload(i: u64) -> Vec<u8> {
    vec![i as u8; 100]
}

/// Offsets below `n`, spread by a fixed LCG (the same every run).
fn offsets(n: u64) -> Vec<u64> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..LOOKUPS)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % n
        })
        .collect()
}

/// A broker whose topic `t` holds `RECORDS` records sent by a producer
/// (default configuration: batches of up to 16 KiB).
fn produced() -> (tempfile::TempDir, Broker) {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    let producer = broker.producer(ProducerConfig::default());
    for i in 0..RECORDS {
        producer.send("t", Record::new(payload(i))).unwrap();
    }
    producer.flush().unwrap();
    drop(producer);
    (dir, broker)
}

/// A log of `RECORDS` records appended one per call.
fn single_appends(config: LogConfig) -> (tempfile::TempDir, Log) {
    let dir = tempdir();
    let log = Log::open(dir.path(), config).unwrap();
    for i in 0..RECORDS {
        log.append(&[Record::new(payload(i))]).unwrap();
    }
    (dir, log)
}

fn poll(c: &mut Criterion) {
    let (_dir, broker) = produced();
    let mut g = c.benchmark_group("read/poll");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(RECORDS));
    g.bench_function("owned_records_100B", |b| {
        let mut consumer =
            broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
        consumer.assign([("t", 0)]).unwrap();
        b.iter(|| {
            consumer.seek_to_beginning([("t", 0)]).unwrap();
            let (mut n, mut bytes) = (0, 0);
            while n < RECORDS {
                for r in consumer.poll(Duration::from_secs(1)).unwrap() {
                    bytes += r.value().map_or(0, <[u8]>::len);
                    n += 1;
                }
            }
            black_box(bytes)
        })
    });
    g.finish();
}

fn log_read(c: &mut Criterion) {
    let (_dir, log) = single_appends(LogConfig::default());
    let mut g = c.benchmark_group("read/log_read");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(RECORDS));
    g.bench_function("single_appends_100B", |b| {
        b.iter(|| {
            let (mut at, mut bytes) = (0, 0);
            while at < RECORDS {
                for r in log
                    .read(at, ReadLimit::bytes(1 << 20))
                    .unwrap()
                    .records_ref()
                {
                    let r = r.unwrap();
                    bytes += r.value.map_or(0, <[u8]>::len);
                    at = r.offset + 1;
                }
            }
            black_box(bytes)
        })
    });
    g.finish();
}

fn random(c: &mut Criterion) {
    let mut g = c.benchmark_group("read/random");
    g.throughput(Throughput::Elements(LOOKUPS as u64));
    let limit = ReadLimit::bytes(1).records(1);
    {
        let (_dir, broker) = produced();
        let partition = broker.topic("t").unwrap().partition(0).unwrap();
        let at = offsets(RECORDS);
        g.bench_function("partition_read_producer_data", |b| {
            b.iter(|| {
                for &o in &at {
                    let batches = partition.read(o, limit).unwrap();
                    let r = batches.records_ref().next().unwrap().unwrap();
                    black_box(r.value);
                }
            })
        });
    }
    for kib in [1u64, 2, 4, 8] {
        let (_dir, log) = single_appends(LogConfig::default().index_interval_bytes(kib << 10));
        let at = offsets(RECORDS);
        g.bench_function(format!("log_read_single_appends_interval_{kib}KiB"), |b| {
            b.iter(|| {
                for &o in &at {
                    let batches = log.read(o, limit).unwrap();
                    let r = batches.records_ref().next().unwrap().unwrap();
                    black_box(r.value);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, poll, log_read, random);
criterion_main!(benches);

//! The producer's hot path: `Producer::send` of one record per call
//! (borrowed and owned), until `flush`; the batch encoder fed borrowed
//! records; and two threads sending to a partition each.
//!
//! `cargo bench --bench producer`; set `EMBEDLOG_BENCH_DIR` to measure on a
//! particular file system (default: the system temporary directory). The
//! honest ratios to a plain file writer come from the `perf` example
//! (fresh process per workload); these are for A/B of one change.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use embedlog::{BatchBuilder, BorrowedRecord, Broker, ProducerConfig, Record, TopicConfig};
use std::hint::black_box;
use std::time::Duration;

fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("EMBEDLOG_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// Records per measured iteration.
const N: usize = 10_000;

fn broker(partitions: u32) -> (tempfile::TempDir, Broker) {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .admin()
        .create_topic("t", TopicConfig::default().partitions(partitions))
        .unwrap();
    (dir, broker)
}

fn send(c: &mut Criterion) {
    let payload = vec![7u8; 100];
    let (_dir, broker) = broker(2);
    let producer = broker.producer(ProducerConfig::default());
    let mut g = c.benchmark_group("produce");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("send_borrowed_100B", |b| {
        b.iter(|| {
            for _ in 0..N {
                producer
                    .send_to("t", 0, BorrowedRecord::new(&payload))
                    .unwrap();
            }
            producer.flush().unwrap();
        })
    });
    g.bench_function("send_owned_100B", |b| {
        b.iter(|| {
            for _ in 0..N {
                let r = Record::new(Bytes::copy_from_slice(&payload));
                producer.send_to("t", 0, r).unwrap();
            }
            producer.flush().unwrap();
        })
    });
    g.bench_function("send_keyed_100B", |b| {
        let keys: Vec<String> = (0..64).map(|i| format!("user-{i}")).collect();
        b.iter(|| {
            for i in 0..N {
                let r = BorrowedRecord::new(&payload).key(keys[i % 64].as_bytes());
                producer.send("t", r).unwrap();
            }
            producer.flush().unwrap();
        })
    });
    g.bench_function("two_threads_two_partitions_100B", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for p in 0..2u32 {
                    let (producer, payload) = (&producer, &payload);
                    s.spawn(move || {
                        for _ in 0..N / 2 {
                            producer
                                .send_to("t", p, BorrowedRecord::new(payload))
                                .unwrap();
                        }
                    });
                }
            });
            producer.flush().unwrap();
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let payload = vec![7u8; 100];
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(100));
    g.bench_function("push_borrowed_100x100B", |b| {
        b.iter(|| {
            let mut builder = BatchBuilder::new();
            for _ in 0..100 {
                builder.push(&BorrowedRecord::new(&payload).timestamp(1));
            }
            black_box(builder.finish().unwrap())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    targets = send, encode
}
criterion_main!(benches);

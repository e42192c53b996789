//! Hot paths of the storage engine: batch encode/decode, append (one record
//! per batch and 100 per batch), sequential read and read by random offset.
//!
//! `cargo bench --bench log`; set `EMBEDLOG_BENCH_DIR` to measure on a
//! particular file system (default: the system temporary directory).

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use embedlog::{Batch, BatchBuilder, Log, LogConfig, ReadLimit, Record};
use std::hint::black_box;
use std::time::Duration;

fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("EMBEDLOG_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(vec![i as u8; 100])
                .key(format!("key-{}", i % 16))
                .timestamp(1_700_000_000_000 + i as i64)
        })
        .collect()
}

fn encode_decode(c: &mut Criterion) {
    let recs = records(100);
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(100));
    g.bench_function("encode_100x100B", |b| {
        b.iter(|| {
            let mut builder = BatchBuilder::new();
            for r in &recs {
                builder.push(r);
            }
            black_box(builder.finish().unwrap())
        })
    });
    let mut builder = BatchBuilder::new();
    for r in &recs {
        builder.push(r);
    }
    let bytes = Bytes::from(builder.finish().unwrap());
    g.bench_function("decode_100x100B", |b| {
        b.iter(|| {
            let batch = Batch::new(bytes.clone()).unwrap();
            let mut n = 0;
            for r in batch.records().unwrap() {
                n += r.unwrap().value.map_or(0, |v| v.len());
            }
            black_box(n)
        })
    });
    g.finish();
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    let one = records(1);
    let hundred = records(100);
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default().segment_bytes(256 << 20)).unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("1_record_per_batch", |b| {
        b.iter(|| black_box(log.append(&one).unwrap()))
    });
    // A 1 KiB record per call: four copies per 4 KiB page of the mapped
    // segment, so its page faults weigh more than at 100 B.
    let one_kib = [Record::new(vec![7u8; 1024]).key("key-1")];
    g.bench_function("1_record_of_1KiB_per_batch", |b| {
        b.iter(|| black_box(log.append(&one_kib).unwrap()))
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("100_records_per_batch", |b| {
        b.iter(|| black_box(log.append(&hundred).unwrap()))
    });
    g.finish();
    log.close().unwrap();
}

fn read(c: &mut Criterion) {
    let dir = tempdir();
    let log = Log::open(dir.path(), LogConfig::default().segment_bytes(64 << 20)).unwrap();
    let batch = records(100);
    for _ in 0..2_000 {
        log.append(&batch).unwrap();
    }
    let total = log.end_offset();
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(total));
    g.bench_function("sequential_200k_records", |b| {
        b.iter(|| {
            let mut at = 0;
            let mut bytes = 0;
            while at < total {
                let batches = log.read(at, ReadLimit::bytes(1 << 20)).unwrap();
                for r in batches.records() {
                    let r = r.unwrap();
                    bytes += r.value.map_or(0, |v| v.len());
                    at = r.offset + 1;
                }
            }
            black_box(bytes)
        })
    });
    g.throughput(Throughput::Elements(1));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    g.bench_function("random_offset_one_record", |b| {
        b.iter_batched(
            || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % total
            },
            |o| {
                let batches = log.read(o, ReadLimit::bytes(1).records(1)).unwrap();
                black_box(batches.records().next().unwrap().unwrap().offset)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20);
    targets = encode_decode, append, read
}
criterion_main!(benches);

//! embedlog's equivalent of Kafka's producer/consumer perf tools, with every
//! figure measured beside two baselines in the same run: a plain
//! `BufWriter<File>` of length-prefixed, CRC'd records (the floor) and the
//! `commitlog` crate (the nearest Rust peer).
//!
//! ```text
//! cargo run --release --example perf -- [produce|consume|latency|sync|open|txn|all]
//!     [--records N] [--size B] [--partitions P] [--threads T]
//!     [--durability buffered|sync] [--dir PATH]
//! ```
//!
//! Defaults: `all`, 2 000 000 records of 100 bytes, 1 partition, 8 threads
//! for the group-commit test, buffered, data under `./embedlog-perf` (removed
//! afterwards; use a real disk: fsync figures on tmpfs mean nothing).
//! Prints a markdown table. `EMBEDLOG_PERF_SCALE_GB=10` instead writes
//! that many GiB and prints the rate and memory of each GiB and the time to
//! reopen.

use embedlog::{
    Broker, Compression, ConsumerConfig, Durability, Log, LogConfig, OffsetReset, ProducerConfig,
    ReadLimit, Record, TopicConfig,
};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    what: String,
    records: u64,
    size: usize,
    partitions: u32,
    threads: usize,
    durability: Durability,
    dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        what: "all".into(),
        records: 2_000_000,
        size: 100,
        partitions: 1,
        threads: 8,
        durability: Durability::Buffered,
        dir: PathBuf::from("embedlog-perf"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--records" => a.records = val()?.parse().map_err(|e| format!("--records: {e}"))?,
            "--size" => a.size = val()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--partitions" => a.partitions = val()?.parse().map_err(|e| format!("--partitions: {e}"))?,
            "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--dir" => a.dir = PathBuf::from(val()?),
            "--durability" => {
                a.durability = match val()?.as_str() {
                    "buffered" => Durability::Buffered,
                    "sync" => Durability::Sync,
                    other => return Err(format!("--durability {other}: buffered or sync")),
                }
            }
            "produce" | "consume" | "latency" | "sync" | "open" | "txn" | "compression" | "all" => a.what = arg,
            "-h" | "--help" => return Err("usage: perf [produce|consume|latency|sync|open|txn|compression|all] [--records N] [--size B] [--partitions P] [--threads T] [--durability buffered|sync] [--dir PATH]".into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// One row of the result table.
struct Row {
    what: String,
    embedlog: String,
    bufwriter: String,
    commitlog: String,
    ratio: String,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn mrec(n: u64, d: Duration) -> String {
    format!("{:.2} M rec/s", rate(n, d) / 1e6)
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

fn progress(label: &str, done: u64, total: u64) {
    if total >= 100 && done.is_multiple_of((total / 20).max(1)) {
        eprint!("\r{label}: {:>3}%", done * 100 / total);
        if done + (total / 20).max(1) > total {
            eprintln!();
        }
    }
}

fn payload(size: usize, i: u64) -> Vec<u8> {
    let mut v = vec![b'x'; size];
    let s = i.to_le_bytes();
    let n = s.len().min(size);
    v[..n].copy_from_slice(&s[..n]);
    v
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).ok();
    p
}

/// A fresh broker in `dir/name` with the topic `perf` (`partitions`
/// partitions, large segments, kept forever).
fn perf_broker(dir: &Path, name: &str, partitions: u32) -> (PathBuf, Broker) {
    let root = fresh(dir, name);
    let broker = Broker::open(&root).unwrap();
    broker
        .admin()
        .create_topic(
            "perf",
            TopicConfig::default()
                .partitions(partitions)
                .segment_bytes(256 << 20)
                .retention(None),
        )
        .unwrap();
    (root, broker)
}

// ---------------------------------------------------------------- baselines

/// BufWriter baseline: `[len u32][crc32c u32][payload]` per record.
fn bufwriter_write(path: &Path, records: u64, size: usize) -> Duration {
    let started = Instant::now();
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    for i in 0..records {
        let p = payload(size, i);
        w.write_all(&(p.len() as u32).to_le_bytes()).unwrap();
        w.write_all(&crc32c::crc32c(&p).to_le_bytes()).unwrap();
        w.write_all(&p).unwrap();
    }
    w.flush().unwrap();
    started.elapsed()
}

fn bufwriter_read(path: &Path) -> (u64, Duration) {
    let started = Instant::now();
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).unwrap());
    let mut head = [0u8; 8];
    let mut buf = Vec::new();
    let mut n = 0;
    while r.read_exact(&mut head).is_ok() {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        buf.resize(len, 0);
        r.read_exact(&mut buf).unwrap();
        assert_eq!(crc32c::crc32c(&buf), crc);
        n += 1;
    }
    (n, started.elapsed())
}

fn commitlog_open(dir: &Path) -> commitlog::CommitLog {
    let mut opts = commitlog::LogOptions::new(dir);
    opts.segment_max_bytes(256 << 20);
    opts.message_max_bytes(1 << 20);
    commitlog::CommitLog::new(opts).unwrap()
}

fn commitlog_write(dir: &Path, records: u64, size: usize, batch: u64) -> Duration {
    let mut log = commitlog_open(dir);
    let started = Instant::now();
    if batch == 1 {
        for i in 0..records {
            log.append_msg(payload(size, i)).unwrap();
        }
    } else {
        let mut i = 0;
        while i < records {
            let mut buf = commitlog::message::MessageBuf::default();
            for k in i..(i + batch).min(records) {
                buf.push(payload(size, k)).unwrap();
            }
            log.append(&mut buf).unwrap();
            i += batch;
        }
    }
    log.flush().unwrap();
    started.elapsed()
}

fn commitlog_read(dir: &Path) -> (u64, Duration) {
    use commitlog::message::MessageSet;
    let log = commitlog_open(dir);
    let started = Instant::now();
    let mut next = 0;
    let mut n = 0;
    loop {
        let msgs = log
            .read(next, commitlog::ReadLimit::max_bytes(1 << 20))
            .unwrap();
        let mut any = false;
        for m in msgs.iter() {
            std::hint::black_box(m.payload());
            next = m.offset() + 1;
            n += 1;
            any = true;
        }
        if !any {
            break;
        }
    }
    (n, started.elapsed())
}

// ----------------------------------------------------------------- embedlog

fn produce(a: &Args, rows: &mut Vec<Row>) -> PathBuf {
    let (root, broker) = perf_broker(&a.dir, "broker", a.partitions);
    let producer = broker.producer(
        ProducerConfig::default()
            .batch_size(64 << 10)
            .durability(a.durability),
    );
    let started = Instant::now();
    for i in 0..a.records {
        producer
            .send("perf", Record::new(payload(a.size, i)).timestamp(i as i64))
            .unwrap();
        progress("produce (embedlog producer)", i + 1, a.records);
    }
    producer.flush().unwrap();
    let ours = started.elapsed();
    broker.close().unwrap();

    // The storage layer alone: batches of 100 records.
    let logdir = fresh(&a.dir, "log");
    let log = Log::open(&logdir, LogConfig::default().segment_bytes(256 << 20)).unwrap();
    let started = Instant::now();
    let mut i = 0;
    let mut batch = Vec::with_capacity(100);
    while i < a.records {
        batch.clear();
        batch.extend(
            (i..(i + 100).min(a.records))
                .map(|k| Record::new(payload(a.size, k)).timestamp(k as i64)),
        );
        log.append(&batch).unwrap();
        i += 100;
    }
    let ours_log = started.elapsed();
    log.close().unwrap();

    let bw = bufwriter_write(&a.dir.join("bufwriter.dat"), a.records, a.size);
    let cl100 = commitlog_write(&fresh(&a.dir, "commitlog100"), a.records, a.size, 100);
    let single_n = a.records.min(500_000);
    let cl1 = commitlog_write(&fresh(&a.dir, "commitlog1"), single_n, a.size, 1);
    let ours_r = rate(a.records, ours);
    rows.push(Row {
        what: format!(
            "produce {} × {} B, Producer (64 KiB batches), 1 thread",
            a.records, a.size
        ),
        embedlog: mrec(a.records, ours),
        bufwriter: mrec(a.records, bw),
        commitlog: format!(
            "{} (batches of 100); {} (single)",
            mrec(a.records, cl100),
            mrec(single_n, cl1)
        ),
        ratio: format!(
            "{} BufWriter, {} commitlog batched",
            ratio(ours_r, rate(a.records, bw)),
            ratio(ours_r, rate(a.records, cl100))
        ),
    });
    rows.push(Row {
        what: "append, Log::append batches of 100, 1 thread".into(),
        embedlog: mrec(a.records, ours_log),
        bufwriter: mrec(a.records, bw),
        commitlog: mrec(a.records, cl100),
        ratio: format!(
            "{} BufWriter, {} commitlog batched",
            ratio(rate(a.records, ours_log), rate(a.records, bw)),
            ratio(rate(a.records, ours_log), rate(a.records, cl100))
        ),
    });
    root
}

/// A text payload of about `size` bytes (a JSON line, as application
/// events are), record `i`.
fn text_payload(size: usize, i: u64) -> Vec<u8> {
    let mut s = format!(
        "{{\"id\":{i},\"user\":\"user-{:05}\",\"event\":\"{}\",\"path\":\"/api/v1/items/{}\",\"status\":{}",
        i % 10_007,
        ["view", "click", "purchase", "search"][(i % 4) as usize],
        i % 997,
        [200, 200, 200, 404, 500][(i % 5) as usize]
    );
    let words = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
    ];
    s.push_str(",\"note\":\"");
    let mut w = i as usize;
    while s.len() + 2 < size {
        s.push_str(words[w % words.len()]);
        s.push(' ');
        w = w.wrapping_mul(31).wrapping_add(7);
    }
    s.push_str("\"}");
    s.into_bytes()
}

/// Each codec on a text payload: produce rate, bytes on disk (the ratio to
/// uncompressed), and a consumer's read rate, each in a fresh broker.
fn compression(a: &Args, rows: &mut Vec<Row>) {
    let n = a.records;
    let size = a.size.max(200);
    let mut plain_bytes = 0u64;
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        if !codec.is_available() {
            rows.push(Row {
                what: format!("compression {codec}"),
                embedlog: "not compiled in (--features compression)".into(),
                bufwriter: "-".into(),
                commitlog: "-".into(),
                ratio: "-".into(),
            });
            continue;
        }
        let (_, broker) = perf_broker(&a.dir, &format!("compression-{codec}"), 1);
        let producer = broker.producer(
            ProducerConfig::default()
                .batch_size(64 << 10)
                .compression(codec),
        );
        let payloads: Vec<Vec<u8>> = (0..1000).map(|i| text_payload(size, i)).collect();
        let started = Instant::now();
        for i in 0..n {
            producer
                .send(
                    "perf",
                    Record::new(payloads[(i % 1000) as usize].clone()).timestamp(i as i64),
                )
                .unwrap();
        }
        producer.flush().unwrap();
        let wrote = started.elapsed();
        let disk = broker
            .topic("perf")
            .unwrap()
            .partition(0)
            .unwrap()
            .log()
            .size_bytes();
        if codec == Compression::None {
            plain_bytes = disk;
        }
        let mut consumer =
            broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
        consumer.assign([("perf", 0)]).unwrap();
        let started = Instant::now();
        let mut read = 0u64;
        let mut bytes = 0u64;
        while read < n {
            for r in consumer.poll(Duration::from_millis(100)).unwrap() {
                bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                read += 1;
            }
        }
        let took = started.elapsed();
        assert!(bytes > 0);
        rows.push(Row {
            what: format!("compression {codec}: produce, then consume, {n} × {size} B text"),
            embedlog: format!("{} write, {} read", mrec(n, wrote), mrec(n, took)),
            bufwriter: format!("{:.1} MB on disk", disk as f64 / 1e6),
            commitlog: "-".into(),
            ratio: format!(
                "{:.2}× of uncompressed size",
                disk as f64 / plain_bytes.max(1) as f64
            ),
        });
        broker.close().unwrap();
    }
}

/// Idempotent vs plain produce, and transactional produce by transaction
/// size (1, 100, 10 000 records), each in a fresh broker.
fn txn(a: &Args, rows: &mut Vec<Row>) {
    let run = |name: &str, config: ProducerConfig, per_txn: Option<u64>, n: u64| -> Duration {
        let (_, broker) = perf_broker(&a.dir, name, 1);
        let producer = broker.producer(config.batch_size(64 << 10).durability(a.durability));
        if per_txn.is_some() {
            producer.init_transactions().unwrap();
        }
        let started = Instant::now();
        let mut i = 0;
        while i < n {
            let k = per_txn.unwrap_or(n).min(n - i);
            if per_txn.is_some() {
                producer.begin_transaction().unwrap();
            }
            for j in i..i + k {
                producer
                    .send("perf", Record::new(payload(a.size, j)).timestamp(j as i64))
                    .unwrap();
            }
            if per_txn.is_some() {
                producer.commit_transaction().unwrap();
            }
            i += k;
            progress(name, i, n);
        }
        producer.flush().unwrap();
        let took = started.elapsed();
        broker.close().unwrap();
        took
    };
    let n = a.records;
    let plain = run(
        "plain",
        ProducerConfig::default().idempotence(false),
        None,
        n,
    );
    let idem = run("idempotent", ProducerConfig::default(), None, n);
    rows.push(Row {
        what: format!("produce {n} × {} B, idempotent (the default)", a.size),
        embedlog: mrec(n, idem),
        bufwriter: format!("{} (idempotence off)", mrec(n, plain)),
        commitlog: "-".into(),
        ratio: format!("{} idempotence off", ratio(rate(n, idem), rate(n, plain))),
    });
    for per in [1u64, 100, 10_000] {
        // Single-record transactions cost a decision each: fewer of them.
        let n = if per == 1 {
            a.records.min(20_000)
        } else {
            a.records
        };
        let t = run(
            &format!("txn{per}"),
            ProducerConfig::default().transactional_id(format!("perf-{per}")),
            Some(per),
            n,
        );
        rows.push(Row {
            what: format!(
                "transactional produce, {per} record(s) per transaction, {n} × {} B",
                a.size
            ),
            embedlog: format!("{} ({:.0} transactions/s)", mrec(n, t), rate(n / per, t)),
            bufwriter: format!("{} (plain producer)", mrec(a.records, plain)),
            commitlog: "-".into(),
            ratio: format!("{} plain", ratio(rate(n, t), rate(a.records, plain))),
        });
    }
}

fn consume(a: &Args, rows: &mut Vec<Row>) {
    // Consumer over the producer's data, then Log::read over the log's.
    let root = a.dir.join("broker");
    let broker = Broker::open(&root).unwrap();
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Earliest)
            .max_poll_records(10_000),
    );
    c.assign((0..a.partitions).map(|p| ("perf", p))).unwrap();
    let started = Instant::now();
    let mut n = 0u64;
    while n < a.records {
        let recs = c.poll(Duration::from_secs(5)).unwrap();
        assert!(!recs.is_empty(), "consumer starved at {n}");
        for r in &recs {
            std::hint::black_box(r.value.as_ref().map(|v| v.len()));
        }
        n += recs.len() as u64;
        progress("consume (embedlog consumer)", n.min(a.records), a.records);
    }
    let ours_consumer = started.elapsed();
    c.seek_to_beginning((0..a.partitions).map(|p| ("perf", p)))
        .unwrap();
    let started = Instant::now();
    let mut n = 0u64;
    while n < a.records {
        let got = c.poll_batches(Duration::from_secs(5)).unwrap();
        assert!(!got.is_empty(), "consumer starved at {n}");
        for (_, batches) in &got {
            for r in batches.records_ref() {
                std::hint::black_box(r.unwrap().value.map(|v| v.len()));
                n += 1;
            }
        }
    }
    let ours_batches = started.elapsed();
    drop(c);
    broker.close().unwrap();

    let log = Log::open(
        a.dir.join("log"),
        LogConfig::default().segment_bytes(256 << 20),
    )
    .unwrap();
    let started = Instant::now();
    let mut at = 0;
    let end = log.end_offset();
    while at < end {
        for r in log.read(at, ReadLimit::bytes(1 << 20)).unwrap().records() {
            let r = r.unwrap();
            std::hint::black_box(r.value.as_ref().map(|v| v.len()));
            at = r.offset + 1;
        }
    }
    let ours_log = started.elapsed();
    let started = Instant::now();
    let mut at = 0;
    while at < end {
        for r in log
            .read(at, ReadLimit::bytes(1 << 20))
            .unwrap()
            .records_ref()
        {
            let r = r.unwrap();
            std::hint::black_box(r.value.map(|v| v.len()));
            at = r.offset + 1;
        }
    }
    let ours_ref = started.elapsed();
    let (bn, bw) = bufwriter_read(&a.dir.join("bufwriter.dat"));
    let (cn, cl) = commitlog_read(&a.dir.join("commitlog100"));
    assert_eq!((bn, cn), (a.records, a.records));
    rows.push(Row {
        what: "consume sequentially, Consumer::poll_batches + records_ref".into(),
        embedlog: mrec(a.records, ours_batches),
        bufwriter: mrec(bn, bw),
        commitlog: mrec(cn, cl),
        ratio: format!(
            "{} commitlog",
            ratio(rate(a.records, ours_batches), rate(cn, cl))
        ),
    });
    rows.push(Row {
        what: "consume sequentially, Consumer::poll (owned zero-copy records)".into(),
        embedlog: mrec(a.records, ours_consumer),
        bufwriter: mrec(bn, bw),
        commitlog: mrec(cn, cl),
        ratio: format!(
            "{} commitlog",
            ratio(rate(a.records, ours_consumer), rate(cn, cl))
        ),
    });
    rows.push(Row {
        what: "consume sequentially, Log::read + records_ref (borrowed, CRC checked)".into(),
        embedlog: mrec(a.records, ours_ref),
        bufwriter: mrec(bn, bw),
        commitlog: mrec(cn, cl),
        ratio: format!(
            "{} commitlog",
            ratio(rate(a.records, ours_ref), rate(cn, cl))
        ),
    });
    rows.push(Row {
        what: "consume sequentially, Log::read + records (zero-copy Bytes, CRC checked)".into(),
        embedlog: mrec(a.records, ours_log),
        bufwriter: mrec(bn, bw),
        commitlog: mrec(cn, cl),
        ratio: format!(
            "{} commitlog",
            ratio(rate(a.records, ours_log), rate(cn, cl))
        ),
    });

    // Random single-record reads: embedlog on 1-record batches (the same
    // shape commitlog stores), pread over an in-memory position table.
    let reads = 200_000u64;
    let n1 = a.records.min(500_000);
    let single = fresh(&a.dir, "log1");
    let log1 = Log::open(&single, LogConfig::default().segment_bytes(256 << 20)).unwrap();
    for i in 0..n1 {
        log1.append(&[Record::new(payload(a.size, i)).timestamp(i as i64)])
            .unwrap();
    }
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let started = Instant::now();
    for _ in 0..reads {
        let o = next() % n1;
        let b = log1.read(o, ReadLimit::bytes(1).records(1)).unwrap();
        std::hint::black_box(b.records().next().unwrap().unwrap().offset);
    }
    let ours_rand = started.elapsed();
    // The same with a dense offset index (an entry per batch, as commitlog
    // keeps one per message) instead of Kafka's one per 4 KiB.
    log1.set_config(log1.config().index_interval_bytes(0))
        .unwrap();
    drop(log1);
    for f in std::fs::read_dir(&single).unwrap() {
        let p = f.unwrap().path();
        if p.extension()
            .is_some_and(|e| e == "index" || e == "timeindex")
        {
            std::fs::remove_file(p).unwrap(); // rebuilt densely on open
        }
    }
    let log1 = Log::open(
        &single,
        LogConfig::default()
            .segment_bytes(256 << 20)
            .index_interval_bytes(0),
    )
    .unwrap();
    let started = Instant::now();
    for _ in 0..reads {
        let o = next() % n1;
        let b = log1.read(o, ReadLimit::bytes(1).records(1)).unwrap();
        std::hint::black_box(b.records().next().unwrap().unwrap().offset);
    }
    let ours_dense = started.elapsed();
    let cl1 = commitlog_open(&a.dir.join("commitlog1"));
    let cl_n = cl1.next_offset();
    use commitlog::message::MessageSet;
    let started = Instant::now();
    for _ in 0..reads {
        let o = next() % cl_n;
        let m = cl1
            .read(o, commitlog::ReadLimit::max_bytes(a.size + 64))
            .unwrap();
        std::hint::black_box(m.iter().next().map(|msg| msg.payload().len()));
    }
    let cl_rand = started.elapsed();
    let positions = {
        let f = a.dir.join("bufwriter.dat");
        let mut pos = Vec::with_capacity(n1 as usize);
        let mut p = 0u64;
        for _ in 0..n1 {
            pos.push(p);
            p += 8 + a.size as u64;
        }
        (File::open(f).unwrap(), pos)
    };
    let started = Instant::now();
    let mut buf = vec![0u8; 8 + a.size];
    for _ in 0..reads {
        let o = (next() % n1) as usize;
        std::os::unix::fs::FileExt::read_exact_at(&positions.0, &mut buf, positions.1[o]).unwrap();
        std::hint::black_box(crc32c::crc32c(&buf[8..]));
    }
    let pread = started.elapsed();
    rows.push(Row {
        what: format!("read one record at a random offset, dense index ({reads} reads)"),
        embedlog: format!("{:.2} M reads/s", rate(reads, ours_dense) / 1e6),
        bufwriter: format!("{:.2} M reads/s (pread)", rate(reads, pread) / 1e6),
        commitlog: format!("{:.2} M reads/s", rate(reads, cl_rand) / 1e6),
        ratio: format!(
            "{} commitlog",
            ratio(rate(reads, ours_dense), rate(reads, cl_rand))
        ),
    });
    rows.push(Row {
        what: format!("read one record at a random offset, Kafka's 4 KiB index ({reads} reads)"),
        embedlog: format!("{:.2} M reads/s", rate(reads, ours_rand) / 1e6),
        bufwriter: format!("{:.2} M reads/s (pread)", rate(reads, pread) / 1e6),
        commitlog: format!("{:.2} M reads/s", rate(reads, cl_rand) / 1e6),
        ratio: format!(
            "{} commitlog",
            ratio(rate(reads, ours_rand), rate(reads, cl_rand))
        ),
    });
}

fn percentiles(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs",
        p(0.5),
        p(0.99),
        p(0.999),
        p(1.0)
    )
}

fn latency(a: &Args, rows: &mut Vec<Row>) {
    let dir = fresh(&a.dir, "latency");
    let log = Arc::new(Log::open(&dir, LogConfig::default().segment_bytes(256 << 20)).unwrap());
    let n = 200_000usize;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let r = [Record::new(payload(a.size, i as u64)).timestamp(i as i64)];
        let t = Instant::now();
        log.append(&r).unwrap();
        lat.push(t.elapsed().as_nanos() as u64);
    }
    rows.push(Row {
        what: format!("append latency, 1 record, no fsync ({n} appends)"),
        embedlog: percentiles(lat),
        bufwriter: "—".into(),
        commitlog: "—".into(),
        ratio: "target p99 ≤ 2 µs".into(),
    });

    // Producer (linger 0) → a consumer blocked in poll, same process.
    let root = fresh(&a.dir, "latency-broker");
    let broker = Broker::open(&root).unwrap();
    broker
        .admin()
        .create_topic("lat", TopicConfig::default())
        .unwrap();
    let mut c = broker.consumer(ConsumerConfig::default());
    c.assign([("lat", 0)]).unwrap();
    c.position(("lat", 0)).unwrap();
    let m = 20_000usize;
    let epoch = Instant::now();
    let reader = std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(m);
        while lat.len() < m {
            for r in c.poll(Duration::from_secs(10)).unwrap() {
                let sent = u64::from_le_bytes(r.value.as_deref().unwrap()[..8].try_into().unwrap());
                lat.push(epoch.elapsed().as_nanos() as u64 - sent);
            }
        }
        lat
    });
    let producer = broker.producer(ProducerConfig::default().linger(Duration::ZERO));
    for i in 0..m {
        let sent = epoch.elapsed().as_nanos() as u64;
        producer
            .send("lat", Record::new(sent.to_le_bytes().to_vec()))
            .unwrap();
        if i % 10 == 0 {
            // Leave the consumer time to block again: we measure wake-ups.
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let lat = reader.join().unwrap();
    broker.close().unwrap();
    rows.push(Row {
        what: format!("producer → blocked consumer, same process ({m} records)"),
        embedlog: percentiles(lat),
        bufwriter: "—".into(),
        commitlog: "—".into(),
        ratio: "target p99 ≤ 50 µs".into(),
    });
}

fn sync(a: &Args, rows: &mut Vec<Row>) {
    let n = 2_000u64;
    // One writer, each append fsync'd.
    let dir = fresh(&a.dir, "sync1");
    let log = Log::open(&dir, LogConfig::default().durability(Durability::Sync)).unwrap();
    let started = Instant::now();
    for i in 0..n {
        log.append(&[Record::new(payload(a.size, i))]).unwrap();
        progress("sync appends", i + 1, n);
    }
    let ours = started.elapsed();
    drop(log);
    // Raw write + fdatasync of the same size.
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(a.dir.join("raw-sync.dat"))
        .unwrap();
    let rec = payload(a.size + 70, 0);
    let started = Instant::now();
    for _ in 0..n {
        (&f).write_all(&rec).unwrap();
        f.sync_data().unwrap();
    }
    let raw = started.elapsed();
    rows.push(Row {
        what: format!("sync appends, 1 writer ({n})"),
        embedlog: format!("{:.0} /s", rate(n, ours)),
        bufwriter: format!("{:.0} /s (write + fdatasync)", rate(n, raw)),
        commitlog: "—".into(),
        ratio: format!("{} raw (target ≥ 0.9×)", ratio(rate(n, ours), rate(n, raw))),
    });

    // T threads, each waiting for its own sync append (group commit),
    // against T threads each fsyncing its own file.
    let t = a.threads;
    let per = 500u64;
    let dir = fresh(&a.dir, "syncT");
    let log = Arc::new(Log::open(&dir, LogConfig::default().durability(Durability::Sync)).unwrap());
    let started = Instant::now();
    std::thread::scope(|s| {
        for k in 0..t {
            let log = log.clone();
            let size = a.size;
            s.spawn(move || {
                for i in 0..per {
                    log.append(&[Record::new(payload(size, k as u64 * per + i))])
                        .unwrap();
                }
            });
        }
    });
    let ours_t = started.elapsed();
    let started = Instant::now();
    std::thread::scope(|s| {
        for k in 0..t {
            let path = a.dir.join(format!("raw-sync-{k}.dat"));
            let rec = rec.clone();
            s.spawn(move || {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap();
                for _ in 0..per {
                    (&f).write_all(&rec).unwrap();
                    f.sync_data().unwrap();
                }
            });
        }
    });
    let raw_t = started.elapsed();
    let total = t as u64 * per;
    rows.push(Row {
        what: format!("sync appends, {t} threads each waiting ({total})"),
        embedlog: format!("{:.0} /s", rate(total, ours_t)),
        bufwriter: format!("{:.0} /s ({t} threads fsyncing alone)", rate(total, raw_t)),
        commitlog: "—".into(),
        ratio: format!(
            "{} the 1-writer rate (target ≥ 5×); {} raw",
            ratio(rate(total, ours_t), rate(n, ours)),
            ratio(rate(total, ours_t), rate(total, raw_t))
        ),
    });
}

fn open_time(a: &Args, rows: &mut Vec<Row>) {
    let dir = a.dir.join("log");
    if !dir.exists() {
        return;
    }
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let log = Log::open(&dir, LogConfig::default().segment_bytes(256 << 20)).unwrap();
        times.push(started.elapsed());
        size = log.size_bytes();
        log.close().unwrap();
    }
    times.sort();
    let started = Instant::now();
    let cl = commitlog_open(&a.dir.join("commitlog100"));
    let cl_open = started.elapsed();
    drop(cl);
    rows.push(Row {
        what: format!(
            "open after clean close ({} MB), median of 5",
            size / 1_000_000
        ),
        embedlog: format!("{:.2} ms", times[2].as_secs_f64() * 1e3),
        bufwriter: "—".into(),
        commitlog: format!("{:.2} ms", cl_open.as_secs_f64() * 1e3),
        ratio: "target ≤ 50 ms at 10 GB".into(),
    });
}

/// Writes `gb` GiB through the producer in 1 GiB steps, printing the rate
/// of each step and the resident memory, then times a reopen.
fn scale(a: &Args, gb: u64) {
    let root = fresh(&a.dir, "scale");
    let broker = Broker::open(&root).unwrap();
    broker
        .admin()
        .create_topic("scale", TopicConfig::default().retention(None))
        .unwrap();
    let producer = broker.producer(ProducerConfig::default().batch_size(256 << 10));
    let per_gb = (1u64 << 30) / (a.size as u64 + 20);
    let rss = || {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .map_or(0, |pages| pages * 4096 / 1_000_000)
    };
    println!("| GiB written | M rec/s in this GiB | RSS (MB) |");
    println!("|---|---|---|");
    let mut i = 0u64;
    for step in 1..=gb {
        let started = Instant::now();
        for _ in 0..per_gb {
            producer
                .send("scale", Record::new(payload(a.size, i)).timestamp(i as i64))
                .unwrap();
            i += 1;
        }
        producer.flush().unwrap();
        println!(
            "| {step} | {:.2} | {} |",
            rate(per_gb, started.elapsed()) / 1e6,
            rss()
        );
    }
    drop(producer);
    broker.close().unwrap();
    drop(broker);
    let started = Instant::now();
    let broker = Broker::open(&root).unwrap();
    let opened = started.elapsed();
    let d = broker.admin().describe_topic("scale").unwrap();
    println!(
        "\nreopened {:.1} GB ({} segments) after a clean close in {:.2} ms",
        d.size_bytes() as f64 / 1e9,
        d.partitions[0].segments,
        opened.as_secs_f64() * 1e3
    );
    broker.close().unwrap();
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&a.dir).unwrap();
    if let Some(gb) = std::env::var("EMBEDLOG_PERF_SCALE_GB")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        scale(&a, gb);
        let _ = std::fs::remove_dir_all(&a.dir);
        return;
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    let all = a.what == "all";
    if all || a.what == "produce" || a.what == "consume" || a.what == "open" {
        produce(&a, &mut rows);
    }
    if all || a.what == "consume" {
        consume(&a, &mut rows);
    }
    if all || a.what == "open" {
        open_time(&a, &mut rows);
    }
    if all || a.what == "latency" {
        latency(&a, &mut rows);
    }
    if all || a.what == "sync" {
        sync(&a, &mut rows);
    }
    if all || a.what == "txn" {
        txn(&a, &mut rows);
    }
    if all || a.what == "compression" {
        compression(&a, &mut rows);
    }
    let _ = std::fs::remove_dir_all(&a.dir);
    println!(
        "\nembedlog perf: {} records of {} B, {} partition(s), {} cores, {:.0} s\n",
        a.records,
        a.size,
        a.partitions,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
    println!("| workload | embedlog | BufWriter / raw | commitlog 0.2 | ratio |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.what, r.embedlog, r.bufwriter, r.commitlog, r.ratio
        );
    }
}

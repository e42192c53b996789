//! Reads in a fresh process of data an earlier child wrote: sequential
//! scans (`Consumer::poll`, `Consumer::poll_batches` + `records_ref`,
//! `Log::read` + `records_ref`) and one record by random offset
//! (`Partition::read`).

use super::input::random_offsets;
use super::{
    Column, Contender, EMBEDLOG, Figures, LARGE, Params, Res, SMALL, Show, Step, TOPIC, Workload,
    append, ensure, floor, peer, produce, throughput,
};
use embedlog::{Broker, ConsumerConfig, Log, LogConfig, OffsetReset, ReadLimit};
use std::time::{Duration, Instant};

/// How the embedlog contender reads.
#[derive(Clone, Copy)]
enum Scan {
    Poll,
    PollBatches,
    LogRead,
}

pub fn workloads() -> Vec<Workload> {
    let mut all = Vec::new();
    for (scan, name, what) in [
        (
            Scan::Poll,
            "read-poll",
            "sequential read, fresh process, producer data, `Consumer::poll` (owned records)",
        ),
        (
            Scan::PollBatches,
            "read-batches",
            "sequential read, fresh process, producer data, `Consumer::poll_batches` + `records_ref`",
        ),
        (
            Scan::LogRead,
            "read-log",
            "sequential read, fresh process, single-append data, `Log::read` + `records_ref`",
        ),
    ] {
        for (suffix, (records, size)) in [("", SMALL), ("-1k", LARGE)] {
            let (ours, theirs) = match scan {
                Scan::LogRead => (append::prepare_single_step(), peer::prepare_step(1)),
                _ => (produce::prepare_step(), peer::prepare_step(100)),
            };
            all.push(
                Workload::new(&format!("{name}{suffix}"), what, records, size, Show::Rate)
                    .prepare(ours)
                    .prepare(floor::prepare_step())
                    .prepare(theirs)
                    .contender(Contender::new(
                        Column::Embedlog,
                        vec![Step::reads("embedlog", move |p| scan_embedlog(p, scan))],
                    ))
                    .contender(Contender::new(Column::Floor, vec![floor::read_step()]))
                    .contender(Contender::new(Column::Commitlog, vec![peer::read_step()])),
            );
        }
    }
    for (suffix, (records, size)) in [("", SMALL), ("-1k", LARGE)] {
        all.push(
            Workload::new(
                &format!("read-random{suffix}"),
                "one record by random offset, fresh process, producer data, `Partition::read`",
                records,
                size,
                Show::Rate,
            )
            .counts_reads()
            .prepare(produce::prepare_step())
            .prepare(floor::prepare_step())
            .prepare(peer::prepare_step(100))
            .contender(Contender::new(
                Column::Embedlog,
                vec![Step::reads("embedlog", random)],
            ))
            .contender(Contender::new(Column::Floor, vec![floor::random_step()]))
            .contender(Contender::new(Column::Commitlog, vec![peer::random_step()])),
        );
    }
    all
}

/// Reads every record once. The timer starts once the broker or log is
/// open (and the consumer assigned) and stops at the last record.
fn scan_embedlog(p: &Params, scan: Scan) -> Res<Figures> {
    let (n, bytes, elapsed) = match scan {
        Scan::Poll | Scan::PollBatches => consume(p, scan)?,
        Scan::LogRead => log_read(p)?,
    };
    ensure(n == p.records && bytes == n * p.size as u64, || {
        format!("embedlog read {n} records of {bytes} bytes")
    })?;
    Ok(throughput(n, elapsed))
}

/// A consumer (default config but `OffsetReset::Earliest`) polling until it
/// has every record: records, payload bytes, time.
fn consume(p: &Params, scan: Scan) -> Res<(u64, u64, Duration)> {
    let broker = Broker::open(p.dir.join(EMBEDLOG))?;
    let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    c.assign([(TOPIC, 0)])?;
    let timeout = Duration::from_secs(5);
    let started = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < p.records {
        let before = n;
        if let Scan::Poll = scan {
            for r in c.poll(timeout)? {
                bytes += std::hint::black_box(r.value().map_or(0, |v| v.len())) as u64;
                n += 1;
            }
        } else {
            for (_, batches) in c.poll_batches(timeout)? {
                for r in batches.records_ref() {
                    bytes += std::hint::black_box(r?.value.map_or(0, |v| v.len())) as u64;
                    n += 1;
                }
            }
        }
        ensure(n > before, || format!("the consumer starved at {n}"))?;
    }
    let elapsed = started.elapsed();
    drop(c);
    broker.close()?;
    Ok((n, bytes, elapsed))
}

/// `Log::read` of 1 MiB at a time to the end: records, payload bytes, time.
fn log_read(p: &Params) -> Res<(u64, u64, Duration)> {
    let log = Log::open(p.dir.join(EMBEDLOG), LogConfig::default())?;
    let end = log.end_offset();
    let started = Instant::now();
    let (mut at, mut n, mut bytes) = (0, 0u64, 0u64);
    while at < end {
        for r in log.read(at, ReadLimit::bytes(1 << 20))?.records_ref() {
            let r = r?;
            bytes += std::hint::black_box(r.value.map_or(0, |v| v.len())) as u64;
            at = r.offset + 1;
            n += 1;
        }
    }
    let elapsed = started.elapsed();
    log.close()?;
    Ok((n, bytes, elapsed))
}

/// `--reads` lookups of one record each (`ReadLimit::bytes(1).records(1)`:
/// the batch that holds it), the offsets drawn before the timer.
fn random(p: &Params) -> Res<Figures> {
    let offsets = random_offsets(p.records, p.reads);
    let broker = Broker::open(p.dir.join(EMBEDLOG))?;
    let partition = broker.topic(TOPIC)?.partition(0)?;
    let limit = ReadLimit::bytes(1).records(1);
    let started = Instant::now();
    for &o in &offsets {
        let batches = partition.read(o, limit)?;
        let r = batches.records_ref().next().transpose()?;
        ensure(r.is_some_and(|r| r.offset == o), || {
            format!("embedlog: no record at {o}")
        })?;
        std::hint::black_box(r.and_then(|r| r.value).map(<[u8]>::len));
    }
    let elapsed = started.elapsed();
    drop(partition);
    broker.close()?;
    Ok(throughput(p.reads, elapsed))
}

//! The peer: the `commitlog` 0.2 crate, the nearest Rust log (no batches
//! on disk: each message has its own header and CRC; an index entry per
//! message). Writes stop the timer when the last append returns, as
//! embedlog's do: its `flush` (an `msync` of the index) runs after.

use super::input::{Payloads, random_offsets};
use super::{Figures, Params, Res, Step, data_dir, ensure, throughput};
use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use std::path::Path;
use std::time::Instant;

/// The peer's data directory.
pub const DATA: &str = "commitlog";
/// commitlog's per-message header: offset, size, hash, metadata size.
const MESSAGE_HEADER: usize = 20;

fn open(dir: &Path) -> Res<CommitLog> {
    let mut opts = LogOptions::new(dir);
    opts.segment_max_bytes(256 << 20);
    opts.message_max_bytes(1 << 20);
    Ok(CommitLog::new(opts)?)
}

/// The step that appends the records, `batch` per call (`append_msg` for
/// 1, a reused `MessageBuf` otherwise).
pub fn write_step(batch: usize) -> Step {
    Step::writes("commitlog", DATA, move |p| write(p, batch))
}

/// The same, as a prepare step (its figures are not reported).
pub fn prepare_step(batch: usize) -> Step {
    Step::writes("prepare-commitlog", DATA, move |p| write(p, batch))
}

pub fn read_step() -> Step {
    Step::reads("commitlog", read)
}

pub fn random_step() -> Step {
    Step::reads("commitlog", random)
}

pub fn open_step() -> Step {
    Step::reads("commitlog", open_time)
}

fn write(p: &Params, batch: usize) -> Res<Figures> {
    let payloads = Payloads::new(p.records, p.size);
    let mut log = open(&data_dir(p, DATA)?)?;
    let mut buf = MessageBuf::default();
    let started = Instant::now();
    if batch == 1 {
        for payload in payloads.iter() {
            log.append_msg(payload)?;
        }
    } else {
        for records in payloads.batches(batch) {
            buf.clear();
            for payload in records {
                buf.push(payload).map_err(|e| format!("{e:?}"))?;
            }
            log.append(&mut buf)?;
        }
    }
    let elapsed = started.elapsed();
    log.flush()?;
    Ok(throughput(p.records, elapsed))
}

fn read(p: &Params) -> Res<Figures> {
    let log = open(&p.dir.join(DATA))?;
    let started = Instant::now();
    let (mut next, mut n, mut bytes) = (0u64, 0u64, 0u64);
    loop {
        let msgs = log.read(next, ReadLimit::max_bytes(1 << 20))?;
        if msgs.is_empty() {
            break;
        }
        for m in msgs.iter() {
            bytes += std::hint::black_box(m.payload()).len() as u64;
            next = m.offset() + 1;
            n += 1;
        }
    }
    let elapsed = started.elapsed();
    ensure(n == p.records && bytes == n * p.size as u64, || {
        format!("commitlog read {n} records of {bytes} bytes")
    })?;
    Ok(throughput(n, elapsed))
}

fn random(p: &Params) -> Res<Figures> {
    let offsets = random_offsets(p.records, p.reads);
    let log = open(&p.dir.join(DATA))?;
    // Less than two messages: one. (Exactly one message's size fails with
    // an I/O error on the last message of a segment.)
    let limit = ReadLimit::max_bytes(2 * (MESSAGE_HEADER + p.size) - 1);
    let started = Instant::now();
    for &o in &offsets {
        let msgs = log.read(o, limit)?;
        let m = msgs.iter().next();
        ensure(m.as_ref().is_some_and(|m| m.offset() == o), || {
            format!("commitlog: no message at {o}")
        })?;
        std::hint::black_box(m.map(|m| m.payload().len()));
    }
    Ok(throughput(p.reads, started.elapsed()))
}

/// Opening the log a previous child wrote and closed.
fn open_time(p: &Params) -> Res<Figures> {
    let dir = p.dir.join(DATA);
    let started = Instant::now();
    let log = open(&dir)?;
    let elapsed = started.elapsed();
    let records = log.next_offset();
    drop(log);
    Ok(Figures::from([
        ("ms".to_string(), elapsed.as_secs_f64() * 1e3),
        ("records".to_string(), records as f64),
    ]))
}

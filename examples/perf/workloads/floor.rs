//! The floor: a plain `BufWriter<File>` (std's default 8 KiB buffer, as
//! the issue and DESIGN.md define it) of
//! `[len u32][crc32c u32][payload]` records, big-endian, and a `BufReader`
//! that parses the same and checks every CRC. No index, no batching beyond
//! the buffer: what any log must at least pay to store records it can
//! check.

use super::input::{Payloads, random_offsets};
use super::{Figures, Params, Res, Step, data_dir, ensure, throughput};
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

/// The floor's data directory.
pub const DATA: &str = "floor";
const HEADER: usize = 8;

fn file(p: &Params) -> PathBuf {
    p.dir.join(DATA).join("records.dat")
}

/// The step that writes the floor's records (buffered, no fsync).
pub fn write_step() -> Step {
    Step::writes("floor", DATA, |p| write(p, None))
}

/// The same, as a prepare step (its figures are not reported).
pub fn prepare_step() -> Step {
    Step::writes("prepare-floor", DATA, |p| write(p, None))
}

/// The step that reads them back sequentially.
pub fn read_step() -> Step {
    Step::reads("floor", read)
}

/// The step that reads `--reads` of them by random offset.
pub fn random_step() -> Step {
    Step::reads("floor", random)
}

/// The durable floor: `write` + `fdatasync` every `every` records.
pub fn synced_step(every: u64) -> Step {
    Step::writes("floor", DATA, move |p| write(p, Some(every)))
}

fn header(payload: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    h[4..].copy_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    h
}

/// Writes the records; the timer stops when `flush` (and, with
/// `sync_every`, the last `fdatasync`) returns.
fn write(p: &Params, sync_every: Option<u64>) -> Res<Figures> {
    let payloads = Payloads::new(p.records, p.size);
    data_dir(p, DATA)?;
    let mut w = BufWriter::new(File::create(file(p))?);
    let started = Instant::now();
    for (i, payload) in (1u64..).zip(payloads.iter()) {
        w.write_all(&header(payload))?;
        w.write_all(payload)?;
        if let Some(every) = sync_every
            && i.is_multiple_of(every)
        {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
    }
    w.flush()?;
    if let Some(every) = sync_every
        && !p.records.is_multiple_of(every)
    {
        w.get_ref().sync_data()?;
    }
    Ok(throughput(p.records, started.elapsed()))
}

fn read(p: &Params) -> Res<Figures> {
    let f = File::open(file(p))?;
    let started = Instant::now();
    let mut r = BufReader::new(f);
    let mut head = [0u8; HEADER];
    let mut buf = Vec::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    loop {
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let (len, crc) = parse(&head);
        ensure(len <= 16 << 20, || {
            format!("floor record {n}: length {len}")
        })?;
        buf.resize(len, 0);
        r.read_exact(&mut buf)?;
        ensure(crc32c::crc32c(&buf) == crc, || {
            format!("floor record {n}: CRC mismatch")
        })?;
        n += 1;
        bytes += len as u64;
    }
    let elapsed = started.elapsed();
    ensure(n == p.records && bytes == n * p.size as u64, || {
        format!("floor read {n} records of {bytes} bytes")
    })?;
    Ok(throughput(n, elapsed))
}

fn parse(head: &[u8; HEADER]) -> (usize, u32) {
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    (len, crc)
}

/// `pread` of one record at a position computed from its index (records
/// have one size: the floor's index costs nothing), CRC checked.
fn random(p: &Params) -> Res<Figures> {
    let offsets = random_offsets(p.records, p.reads);
    let f = File::open(file(p))?;
    let stride = (HEADER + p.size) as u64;
    let mut buf = vec![0u8; HEADER + p.size];
    let started = Instant::now();
    for &o in &offsets {
        f.read_exact_at(&mut buf, o * stride)?;
        let (head, payload) = buf.split_at(HEADER);
        let (len, crc) = parse(head.try_into()?);
        ensure(len == p.size && crc32c::crc32c(payload) == crc, || {
            format!("floor record {o}: bad length or CRC")
        })?;
        std::hint::black_box(payload);
    }
    Ok(throughput(p.reads, started.elapsed()))
}

//! Exactly-once consume-transform-produce, and a kill -9 harness to prove
//! it.
//!
//! The worker (`--worker DIR`) reads `in` as a member of the group `eos`
//! (read-committed) and, for each poll, writes one transformed record per
//! input record to `out` and commits its consumer offsets in the same
//! transaction (`Producer::send_offsets_to_transaction`): the outputs
//! and the progress through the input are stored together or not at all.
//! Its transactional id is fixed, so a restarted worker fences the one
//! that died and aborts the transaction it left open.
//!
//! Without arguments the example is the harness: it writes 20 000 input
//! records to a temporary data directory, starts itself as the worker and
//! SIGKILLs it at a random moment, again and again, then lets a last
//! worker run until it has consumed the whole input. Finally it reads
//! `out` read-committed and checks that every input record has exactly
//! one output record: none missing, none duplicated (the aborted
//! transactions' records are in the log, but skipped).
//!
//! ```text
//! cargo run --release --example exactly_once
//! ```
//!
//! `EMBEDLOG_EOS_RECORDS` sets the number of input records (default
//! 20 000), `EMBEDLOG_EOS_KILLS` the number of kills (default 20);
//! `EMBEDLOG_EOS_SEED` replays a run's kill delays (the seed is printed).
//! The exit status is non-zero if a check fails; the data directory is
//! kept then, for a look with `embedlog dump-log`.

use embedlog::{
    Broker, ConsumerConfig, Durability, IsolationLevel, OffsetAndMetadata, OffsetReset,
    ProducerConfig, Record, TopicConfig, TopicPartition,
};
use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Input records (`EMBEDLOG_EOS_RECORDS`).
const RECORDS: u64 = 20_000;
const IN_PARTITIONS: u32 = 3;
const OUT_PARTITIONS: u32 = 3;
const SEGMENT_BYTES: u64 = 16 << 10;
const GROUP: &str = "eos";
const TRANSACTIONAL_ID: &str = "eos-worker";
/// Records per poll, so per transaction: few, so that the input takes
/// thousands of transactions and the kills land in every step of them.
/// (Still enough that most transactions write to several partitions.)
const MAX_POLL: usize = 5;
/// The transform's (simulated) cost per transaction: with it the worker
/// takes seconds over the input, whatever the machine, and a kill often
/// finds a transaction open, part of its records appended.
const PROCESSING: Duration = Duration::from_millis(1);
/// How long the last worker may take to finish the input.
const FINAL_TIMEOUT: Duration = Duration::from_secs(120);

type Res<T> = Result<T, Box<dyn Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => harness(),
        [flag, dir] if flag == "--worker" => worker(Path::new(dir)),
        _ => Err("usage: exactly_once [--worker DATA_DIR]".into()),
    }
}

/// The output of input record `value`.
fn transform(value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    v.extend_from_slice(b"-done");
    v
}

// ---------------------------------------------------------------- worker

/// Consumes `in`, produces to `out`, commits both in one transaction per
/// poll; returns once the group's committed offsets reach the ends of
/// `in`. Prints `ready` once it is set up, then `committed` after each
/// transaction.
fn worker(dir: &Path) -> Res<()> {
    let broker = Broker::open(dir)?;
    let producer = broker.producer(
        ProducerConfig::default()
            .transactional_id(TRANSACTIONAL_ID)
            // A kill -9 loses nothing the OS has: buffered appends are as
            // good as fsync'd ones for this test, and keep it fast on any
            // disk.
            .durability(Durability::Buffered)
            // Batches reach the log during the processing below, not only
            // at the commit.
            .linger(Duration::from_millis(1)),
    );
    // Fences the previous worker (killed) and aborts what it left open.
    producer.init_transactions()?;
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .group(GROUP)
            .isolation_level(IsolationLevel::ReadCommitted)
            .offset_reset(OffsetReset::Earliest)
            .max_poll_records(MAX_POLL),
    );
    consumer.subscribe(&["in"])?;
    let partitions = broker.topic("in")?.partition_count();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    loop {
        let records = consumer.poll(Duration::from_millis(100))?;
        if records.is_empty() {
            let mut done = true;
            for p in 0..partitions {
                let end = broker.partition("in", p)?.end_offset();
                let committed = consumer.committed(("in", p))?.map_or(0, |c| c.offset);
                done &= committed >= end;
            }
            if done {
                break;
            }
            continue;
        }
        producer.begin_transaction()?;
        let mut seen = Vec::new();
        for r in &records {
            let value = transform(r.value().unwrap_or_default());
            let mut transformed = Record::new(value);
            if let Some(k) = r.key_bytes() {
                transformed = transformed.key(k);
            }
            producer.send("out", transformed)?;
            if !seen.contains(&r.partition) {
                seen.push(r.partition);
            }
        }
        std::thread::sleep(PROCESSING);
        let mut offsets = Vec::with_capacity(seen.len());
        for p in seen {
            // The next offset to read: past everything processed.
            let next = consumer.position(("in", p))?;
            offsets.push((TopicPartition::new("in", p), OffsetAndMetadata::new(next)));
        }
        producer.send_offsets_to_transaction(offsets, &consumer.group_metadata()?)?;
        producer.commit_transaction()?;
        writeln!(out, "committed")?;
        out.flush()?;
    }
    consumer.close()?;
    producer.close()?;
    broker.close()?;
    Ok(())
}

// --------------------------------------------------------------- harness

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A running worker: its process and the thread counting its
/// `committed` lines.
struct Running {
    child: Child,
    lines: std::thread::JoinHandle<u64>,
}

/// Starts a worker and waits for its `ready` line.
fn spawn_worker(dir: &Path) -> Res<Running> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--worker")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(l)) if l == "ready" => {}
        other => {
            let _ = child.kill();
            let status = child.wait()?;
            return Err(format!("worker did not get ready ({other:?}, {status})").into());
        }
    }
    let lines = std::thread::spawn(move || {
        lines
            .map_while(|l| l.ok())
            .filter(|l| l == "committed")
            .count() as u64
    });
    Ok(Running { child, lines })
}

fn harness() -> Res<()> {
    let dir = tempfile::Builder::new().prefix("embedlog-eos-").tempdir()?;
    if let Err(e) = run(dir.path()) {
        let kept = dir.keep();
        eprintln!("exactly_once: FAILED: {e}");
        eprintln!("(data kept in {})", kept.display());
        std::process::exit(1);
    }
    Ok(())
}

/// The harness in `dir`.
fn run(dir: &Path) -> Res<()> {
    let started = Instant::now();
    let n = env_u64("EMBEDLOG_EOS_RECORDS").unwrap_or(RECORDS);
    let kills = env_u64("EMBEDLOG_EOS_KILLS").unwrap_or(20);
    let seed = env_u64("EMBEDLOG_EOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut rng = Rng(seed | 1);
    println!(
        "exactly_once: {n} records, {kills} kills, seed {seed} (EMBEDLOG_EOS_SEED={seed} replays the delays)"
    );

    let broker = Broker::open(dir)?;
    let admin = broker.admin();
    // Small segments: the logs roll every few dozen transactions, so kills
    // also land in rolls and producer-state snapshots, and aborted
    // transactions end up in many segments' `.txnindex` files.
    let topic = |partitions| {
        TopicConfig::default()
            .partitions(partitions)
            .segment_bytes(SEGMENT_BYTES)
    };
    admin.create_topic("in", topic(IN_PARTITIONS))?;
    admin.create_topic("out", topic(OUT_PARTITIONS))?;
    let producer = broker.producer(ProducerConfig::default());
    for i in 0..n {
        producer.send("in", Record::new(i.to_string()).key(format!("k{i}")))?;
    }
    producer.close()?;
    broker.close()?;
    drop(broker);

    let mut killed_txns = 0;
    let mut early_exits = 0;
    let mut delays = Vec::new();
    for round in 0..kills {
        let mut w = spawn_worker(dir)?;
        let delay = Duration::from_millis(20 + rng.next() % 281);
        delays.push(delay.as_millis() as u64);
        std::thread::sleep(delay);
        if w.child.try_wait()?.is_none() {
            w.child.kill()?; // SIGKILL
        }
        let status = w.child.wait()?;
        let committed = w.lines.join().map_err(|_| "line reader panicked")?;
        killed_txns += committed;
        match status.code() {
            // Killed: no exit code.
            None => {}
            // Finished the input before its kill.
            Some(0) => early_exits += 1,
            Some(_) => return Err(format!("round {round}: the worker failed ({status})").into()),
        }
    }
    let mean = delays.iter().sum::<u64>() / delays.len().max(1) as u64;
    println!(
        "{kills} workers killed after {}..{} ms (mean {mean} ms); they committed {killed_txns} transactions, {early_exits} finished before their kill",
        delays.iter().min().unwrap_or(&0),
        delays.iter().max().unwrap_or(&0),
    );

    // The last worker runs to the end of the input.
    let mut w = spawn_worker(dir)?;
    let deadline = Instant::now() + FINAL_TIMEOUT;
    let status = loop {
        if let Some(s) = w.child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            w.child.kill()?;
            w.child.wait()?;
            return Err(format!(
                "the last worker did not finish within {FINAL_TIMEOUT:?} (a hang)"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let final_txns = w.lines.join().map_err(|_| "line reader panicked")?;
    if !status.success() {
        return Err(format!("the last worker failed ({status})").into());
    }
    println!("last worker finished the input with {final_txns} transactions");

    let problems = check(dir, n)?;
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("VIOLATION: {p}");
        }
        return Err(format!("{} exactly-once violation(s)", problems.len()).into());
    }
    println!(
        "ok: {kills} kills, {n} records in, {n} out exactly once (duplicates=0, missing=0) in {:.1?}",
        started.elapsed()
    );
    Ok(())
}

/// Reads `out` to its end with `isolation`; each record's partition,
/// offset, key and value.
fn read_out(broker: &Broker, isolation: IsolationLevel) -> Res<Vec<embedlog::ConsumerRecord>> {
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .isolation_level(isolation)
            .offset_reset(OffsetReset::Earliest)
            .max_poll_records(10_000),
    );
    let tps: Vec<_> = (0..OUT_PARTITIONS)
        .map(|p| TopicPartition::new("out", p))
        .collect();
    consumer.assign(&tps)?;
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = consumer.poll(Duration::from_millis(50))?;
        if !records.is_empty() {
            all.extend(records);
            continue;
        }
        let mut at_end = true;
        for p in 0..OUT_PARTITIONS {
            at_end &= consumer.position(("out", p))? >= broker.partition("out", p)?.end_offset();
        }
        if at_end {
            return Ok(all);
        }
        if Instant::now() >= deadline {
            let mut at = Vec::new();
            for p in 0..OUT_PARTITIONS {
                at.push((
                    consumer.position(("out", p))?,
                    broker.partition("out", p)?.end_offset(),
                ));
            }
            return Err(format!(
                "{isolation:?} read of out stuck below the end (position, end per partition: {at:?}): a transaction left undecided"
            )
            .into());
        }
    }
}

/// Checks the outcome; returns what is wrong.
fn check(dir: &Path, n: u64) -> Res<Vec<String>> {
    let broker = Broker::open(dir)?;
    let mut problems = Vec::new();

    // The input was consumed: the group's offsets are at its ends.
    let group = broker.consumer(ConsumerConfig::default().group(GROUP));
    for p in 0..IN_PARTITIONS {
        let end = broker.partition("in", p)?.end_offset();
        let committed = group.committed(("in", p))?.map(|c| c.offset);
        if committed != Some(end) {
            problems.push(format!(
                "in/{p}: committed offset {committed:?}, input ends at {end}"
            ));
        }
    }
    drop(group);

    let committed = read_out(&broker, IsolationLevel::ReadCommitted)?;
    let uncommitted = read_out(&broker, IsolationLevel::ReadUncommitted)?;
    let mut seen: BTreeMap<u64, Vec<(u32, u64)>> = BTreeMap::new();
    for r in &committed {
        let value = r.value().unwrap_or_default();
        let key = r.key().unwrap_or_default();
        let parsed = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.strip_suffix("-done"))
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|i| *i < n && key == format!("k{i}").as_bytes());
        match parsed {
            Some(i) => seen.entry(i).or_default().push((r.partition, r.offset)),
            None => problems.push(format!(
                "out/{} offset {}: unexpected record key {:?} value {:?}",
                r.partition,
                r.offset,
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(value)
            )),
        }
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, at)| at.len() > 1).collect();
    let missing: Vec<u64> = (0..n).filter(|i| !seen.contains_key(i)).collect();
    if !duplicates.is_empty() {
        let first: Vec<_> = duplicates.iter().take(5).collect();
        problems.push(format!(
            "{} input records have more than one output (first: {first:?}, as (partition, offset))",
            duplicates.len()
        ));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} input records have no output (first: {:?})",
            missing.len(),
            &missing[..missing.len().min(10)]
        ));
    }
    println!(
        "out: {} committed records ({} distinct inputs, duplicates={}, missing={}); {} records of aborted transactions skipped",
        committed.len(),
        seen.len(),
        duplicates.len(),
        missing.len(),
        uncommitted.len().saturating_sub(committed.len())
    );
    broker.close()?;
    Ok(problems)
}

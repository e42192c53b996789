//! Helpers shared by the integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use embedlog::{
    Batches, Log, LogConfig, LogReader, Offset, PartitionLog, ReadLimit, Record, StoredRecord,
};
use std::path::{Path, PathBuf};

/// A record whose value names its index, with a header on every third one.
pub fn record(i: u64) -> Record {
    let mut r = Record::new(format!("value-{i}-{}", "x".repeat((i % 23) as usize)))
        .key(format!("key-{}", i % 7))
        .timestamp(1_700_000_000_000 + (i as i64) * 10);
    if i.is_multiple_of(3) {
        r = r.header("i", i.to_string());
    }
    r
}

/// What the read helpers need: a bare [`Log`] or a partition's read-only
/// [`PartitionLog`].
pub trait ReadLog {
    fn start_offset(&self) -> Offset;
    fn end_offset(&self) -> Offset;
    fn read(&self, from: Offset, limit: ReadLimit) -> embedlog::Result<Batches>;
    fn reader(&self, from: Offset, limit: ReadLimit) -> LogReader<'_>;
}

impl ReadLog for Log {
    fn start_offset(&self) -> Offset {
        Log::start_offset(self)
    }
    fn end_offset(&self) -> Offset {
        Log::end_offset(self)
    }
    fn read(&self, from: Offset, limit: ReadLimit) -> embedlog::Result<Batches> {
        Log::read(self, from, limit)
    }
    fn reader(&self, from: Offset, limit: ReadLimit) -> LogReader<'_> {
        Log::reader(self, from, limit)
    }
}

impl ReadLog for PartitionLog<'_> {
    fn start_offset(&self) -> Offset {
        PartitionLog::start_offset(self)
    }
    fn end_offset(&self) -> Offset {
        PartitionLog::end_offset(self)
    }
    fn read(&self, from: Offset, limit: ReadLimit) -> embedlog::Result<Batches> {
        PartitionLog::read(self, from, limit)
    }
    fn reader(&self, from: Offset, limit: ReadLimit) -> LogReader<'_> {
        PartitionLog::reader(self, from, limit)
    }
}

impl<L: ReadLog + ?Sized> ReadLog for std::sync::Arc<L> {
    fn start_offset(&self) -> Offset {
        (**self).start_offset()
    }
    fn end_offset(&self) -> Offset {
        (**self).end_offset()
    }
    fn read(&self, from: Offset, limit: ReadLimit) -> embedlog::Result<Batches> {
        (**self).read(from, limit)
    }
    fn reader(&self, from: Offset, limit: ReadLimit) -> LogReader<'_> {
        (**self).reader(from, limit)
    }
}

/// Every record from `from` to the end, reading in small pieces.
pub fn read_from(log: &impl ReadLog, from: Offset) -> embedlog::Result<Vec<StoredRecord>> {
    let mut out = Vec::new();
    let mut at = from;
    // The reader steps over the gaps compaction leaves (also at the end of
    // a batch); offsets still only go forward.
    for r in log.reader(from, ReadLimit::bytes(1000)).records() {
        let r = r?;
        assert!(r.offset >= at, "offsets go forward");
        at = r.offset + 1;
        out.push(r);
    }
    Ok(out)
}

/// Every record from the log start.
pub fn read_all(log: &impl ReadLog) -> embedlog::Result<Vec<StoredRecord>> {
    read_from(log, log.start_offset())
}

/// `(start, end, first offset, last offset)` of each whole batch in `bytes`.
pub fn batch_bounds(bytes: &[u8]) -> Vec<(usize, usize, u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    for b in Batches::from_bytes(Bytes::copy_from_slice(bytes)).iter() {
        let Ok(b) = b else { break };
        let len = b.as_bytes().len();
        out.push((pos, pos + len, b.base_offset(), b.last_offset()));
        pos += len;
    }
    out
}

/// A temporary directory, in memory (`/dev/shm`) where there is one: these
/// tests check logic, not the disk, and fsync on tmpfs is free.
/// `EMBEDLOG_TEST_DISK=1` puts them on the real temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if std::env::var_os("EMBEDLOG_TEST_DISK").is_none()
        && shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// Copies the files of `src` into a new temporary directory.
pub fn copy_dir(src: &Path) -> tempfile::TempDir {
    let dst = tempdir();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && e.file_name() != ".lock" {
            std::fs::copy(e.path(), dst.path().join(e.file_name())).unwrap();
        }
    }
    dst
}

/// Paths of the segment logs in `dir`, oldest first.
pub fn segment_logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// A small-segment configuration so tests see several segments.
pub fn small_segments() -> LogConfig {
    LogConfig::default()
        .segment_bytes(2048)
        .index_interval_bytes(256)
}

/// Asserts two record lists are equal, offset by offset.
pub fn assert_records_eq(got: &[StoredRecord], want: &[(Offset, Record)]) {
    assert_eq!(got.len(), want.len(), "record count");
    for (g, (o, w)) in got.iter().zip(want) {
        assert_eq!(g.offset, *o);
        assert_eq!(&g.clone().into_record(), w, "record at offset {o}");
    }
}

/// A broker in `dir` with one topic created.
pub fn broker_with_topic(
    dir: &Path,
    topic: &str,
    config: embedlog::TopicConfig,
) -> embedlog::Broker {
    let broker = embedlog::Broker::open(dir).unwrap();
    broker.admin().create_topic(topic, config).unwrap();
    broker
}

/// Waits until `done` holds, checking every millisecond, for at most a
/// minute (then fails, saying `what` did not happen). For effects of
/// background threads: the test waits for the effect, never for a time,
/// and the bound is only reached when the code is wrong.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 60 s"
        );
        // Sleep rather than spin: on a busy machine the thread being
        // waited for needs the core.
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The bytes a kafka-python fixture's JSON spells in hex (`null`: `None`).
pub fn unhex(v: &serde_json::Value) -> Option<Bytes> {
    let s = v.as_str()?;
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>();
    Some(Bytes::from(bytes))
}

/// The records a kafka-python fixture's JSON expects
/// (`tests/fixtures/kafka_python/README.md` gives the schema).
pub fn kafka_python_records(json: &serde_json::Value) -> Vec<Record> {
    json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Record {
            key: unhex(&r["key"]),
            value: unhex(&r["value"]),
            timestamp: r["timestamp"].as_i64().unwrap(),
            headers: r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    let name = h[0].as_str().unwrap().to_string();
                    match unhex(&h[1]) {
                        Some(v) => embedlog::Header::new(name, v),
                        None => embedlog::Header::null(name),
                    }
                })
                .collect(),
        })
        .collect()
}

/// A xorshift generator: the kill tests' random moments, replayable from
/// their printed seed.
pub struct Rng(pub u64);

impl Rng {
    /// A generator from the seed in the environment variable `var`, or
    /// from the clock (printed by the caller, to replay the run).
    pub fn from_env(var: &str) -> (Rng, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        (Rng(seed | 1), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Every record of `topic` (all partitions, partition by partition in
/// offset order) at `isolation`, read from the earliest offsets until a
/// poll finds nothing more.
pub fn consume_all(
    broker: &embedlog::Broker,
    topic: &str,
    isolation: embedlog::IsolationLevel,
) -> Vec<embedlog::ConsumerRecord> {
    let Ok(t) = broker.topic(topic) else {
        return Vec::new();
    };
    let mut c = broker.consumer(
        embedlog::ConsumerConfig::default()
            .offset_reset(embedlog::OffsetReset::Earliest)
            .isolation_level(isolation)
            .max_poll_records(100_000),
    );
    c.assign((0..t.partition_count()).map(|p| (topic, p)))
        .unwrap();
    let mut out = Vec::new();
    loop {
        let batch = c.poll(std::time::Duration::ZERO).unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

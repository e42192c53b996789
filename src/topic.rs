//! Topics, partitions, their configuration, and key partitioning.

use crate::error::{Error, Result};
use crate::record::{Batches, Offset, Record, TimestampType};
use crate::storage::{AppendInfo, Durability, Log, LogConfig, Notify, ReadLimit, VerifyReport};
use parking_lot::RwLock;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name as Kafka does: 1–249 characters from
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
///
/// # Errors
/// [`Error::InvalidTopicName`] saying what is wrong.
///
/// ```
/// assert!(embedlog::validate_topic_name("orders.v2_eu-west").is_ok());
/// assert!(embedlog::validate_topic_name("bad/name").is_err());
/// assert!(embedlog::validate_topic_name("..").is_err());
/// ```
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(Error::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty".into());
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not allowed".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad(format!(
            "it is {} characters long; the maximum is {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!("{c:?} is not one of [a-zA-Z0-9._-]"));
    }
    Ok(())
}

/// Kafka's murmur2 hash (seed `0x9747b28c`), as its default partitioner
/// computes it. Returns Java's signed result.
///
/// ```
/// assert_eq!(embedlog::murmur2(b"foobar"), -790332482);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives `key` among
/// `partitions`: `(murmur2(key) & 0x7fffffff) % partitions`.
///
/// ```
/// assert_eq!(embedlog::partition_for_key(b"foobar", 50), 16);
/// ```
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) as u32) & 0x7fff_ffff) % partitions.max(1)
}

/// Chooses a record's partition.
///
/// Return `Some(partition)` (below `partitions`) to place the record, or
/// `None` to let the producer use sticky partitioning (fill one partition's
/// batch, then move on), as Kafka does for records without a key.
pub trait Partitioner: Send + Sync + fmt::Debug {
    /// The partition for a record with `key` in `topic`.
    fn partition(&self, topic: &str, key: Option<&[u8]>, partitions: u32) -> Option<u32>;
}

/// Kafka's default: keyed records by murmur2 of the key, keyless records
/// sticky.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultPartitioner;

impl Partitioner for DefaultPartitioner {
    fn partition(&self, _topic: &str, key: Option<&[u8]>, partitions: u32) -> Option<u32> {
        key.map(|k| partition_for_key(k, partitions))
    }
}

/// A topic's settings, persisted with the topic. Every setter documents its
/// default; names in parentheses are Kafka's.
///
/// ```
/// use embedlog::TopicConfig;
/// let config = TopicConfig::default().partitions(8).segment_bytes(64 << 20);
/// assert_eq!(config.get_partitions(), 8);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub(crate) partitions: u32,
    pub(crate) segment_bytes: u64,
    pub(crate) segment_ms: Option<u64>,
    pub(crate) index_interval_bytes: u64,
    pub(crate) max_message_bytes: u64,
    pub(crate) timestamp_type: TimestampType,
    pub(crate) flush_messages: Option<u64>,
    pub(crate) flush_ms: Option<u64>,
    pub(crate) retention_ms: Option<u64>,
    pub(crate) retention_bytes: Option<u64>,
    pub(crate) cleanup_policy: CleanupPolicy,
    pub(crate) delete_retention_ms: u64,
    pub(crate) min_compaction_lag_ms: u64,
    pub(crate) min_cleanable_dirty_ratio: f64,
}

/// What happens to old records (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Delete whole segments by age and size (`delete`, the default).
    #[default]
    Delete,
    /// Keep only the latest record of each key, forever (`compact`).
    /// Records need a key.
    Compact,
    /// Both: compact, and delete by age and size (`compact,delete`).
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether the retention settings delete segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether the cleaner compacts.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    fn as_kafka(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * 24 * 3600 * 1000),
            index_interval_bytes: 4096,
            max_message_bytes: 1 << 20,
            timestamp_type: TimestampType::CreateTime,
            flush_messages: None,
            flush_ms: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

impl TopicConfig {
    /// Number of partitions (`num.partitions`). Default: 1. Must be ≥ 1.
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = n;
        self
    }

    /// Segment size (`segment.bytes`). Default: 1 GiB. Valid: 68 bytes to
    /// 2 GiB − 1.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Roll a segment older than this (`segment.ms`); `None` never rolls by
    /// age. Default: 7 days.
    pub fn segment_age(mut self, age: Option<Duration>) -> Self {
        self.segment_ms = age.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Bytes between offset index entries (`index.interval.bytes`).
    /// Default: 4096.
    pub fn index_interval_bytes(mut self, bytes: u64) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Largest record batch accepted (`max.message.bytes`). Default: 1 MiB.
    pub fn max_message_bytes(mut self, bytes: u64) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Which timestamp records keep (`message.timestamp.type`). Default:
    /// [`TimestampType::CreateTime`].
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self
    }

    /// fsync after this many unflushed records (`flush.messages`). Default:
    /// `None`.
    pub fn flush_messages(mut self, n: Option<u64>) -> Self {
        self.flush_messages = n;
        self
    }

    /// fsync partitions with unflushed records this often, from the broker's
    /// background thread (`flush.ms`). Default: `None`.
    pub fn flush_interval(mut self, every: Option<Duration>) -> Self {
        self.flush_ms = every.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
        self
    }

    /// Delete segments whose newest record is older than this
    /// (`retention.ms`); `None` keeps records regardless of age. Default: 7
    /// days, as Kafka. Applied by the broker's background thread and by
    /// [`Admin::run_retention`](crate::Admin::run_retention).
    pub fn retention(mut self, age: Option<Duration>) -> Self {
        self.retention_ms = age.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Delete the oldest segments while a partition holds more than this
    /// many bytes (`retention.bytes`, per partition; the active segment is
    /// never deleted, so a partition may exceed it by up to one segment).
    /// `None`: no size limit. Default: `None`.
    pub fn retention_bytes(mut self, bytes: Option<u64>) -> Self {
        self.retention_bytes = bytes;
        self
    }

    /// Delete segments, compact, or both (`cleanup.policy`). Default:
    /// [`CleanupPolicy::Delete`]. Compacted topics reject records without
    /// a key, as Kafka does.
    ///
    /// ```
    /// use embedlog::{CleanupPolicy, TopicConfig};
    /// let table = TopicConfig::default().cleanup_policy(CleanupPolicy::Compact);
    /// assert!(table.get_cleanup_policy().compacts());
    /// ```
    pub fn cleanup_policy(mut self, policy: CleanupPolicy) -> Self {
        self.cleanup_policy = policy;
        self
    }

    /// How long compaction keeps a tombstone after its timestamp, so that
    /// consumers reading behind see the delete (`delete.retention.ms`).
    /// Default: 1 day.
    pub fn delete_retention(mut self, d: Duration) -> Self {
        self.delete_retention_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Records younger than this are not compacted
    /// (`min.compaction.lag.ms`). Default: 0.
    pub fn min_compaction_lag(mut self, d: Duration) -> Self {
        self.min_compaction_lag_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The background cleaner compacts a partition once this share of its
    /// complete segments' bytes is dirty (`min.cleanable.dirty.ratio`).
    /// Default: 0.5. Valid: 0 to 1.
    pub fn min_cleanable_dirty_ratio(mut self, ratio: f64) -> Self {
        self.min_cleanable_dirty_ratio = ratio;
        self
    }

    /// The cleanup policy.
    pub fn get_cleanup_policy(&self) -> CleanupPolicy {
        self.cleanup_policy
    }

    /// The dirty ratio that triggers background compaction.
    pub fn get_min_cleanable_dirty_ratio(&self) -> f64 {
        self.min_cleanable_dirty_ratio
    }

    /// The compaction settings of each partition, with the broker's key
    /// map budget.
    pub(crate) fn compaction(&self, key_map_bytes: usize) -> crate::Compaction {
        crate::Compaction::default()
            .delete_retention(Duration::from_millis(self.delete_retention_ms))
            .min_compaction_lag(Duration::from_millis(self.min_compaction_lag_ms))
            .key_map_bytes(key_map_bytes)
    }

    /// The retention policy of each partition.
    pub fn get_retention(&self) -> crate::Retention {
        crate::Retention {
            max_age_ms: self.retention_ms,
            max_bytes: self.retention_bytes,
        }
    }

    /// The partition count.
    pub fn get_partitions(&self) -> u32 {
        self.partitions
    }

    /// The segment size.
    pub fn get_segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// The timestamp type.
    pub fn get_timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }

    /// The background flush interval.
    pub fn get_flush_interval(&self) -> Option<Duration> {
        self.flush_ms.map(Duration::from_millis)
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.partitions == 0 {
            return Err(Error::InvalidConfig("partitions must be at least 1".into()));
        }
        if self.partitions > 1 << 20 {
            return Err(Error::InvalidConfig(format!(
                "{} partitions is more than 2^20",
                self.partitions
            )));
        }
        if self.max_message_bytes > i32::MAX as u64 {
            return Err(Error::InvalidConfig(
                "max.message.bytes must be below 2 GiB".into(),
            ));
        }
        if self.segment_ms == Some(0) {
            return Err(Error::InvalidConfig("segment.ms must be positive".into()));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(Error::InvalidConfig(format!(
                "min.cleanable.dirty.ratio {} is not between 0 and 1",
                self.min_cleanable_dirty_ratio
            )));
        }
        if self.flush_messages == Some(0) {
            return Err(Error::InvalidConfig(
                "flush.messages must be at least 1".into(),
            ));
        }
        // The log checks the rest (sizes) with the same rules it opens with.
        self.log_config(Arc::new(crate::SystemClock)).check()
    }

    /// The storage settings of each partition's log.
    pub(crate) fn log_config(&self, clock: Arc<dyn crate::Clock>) -> LogConfig {
        LogConfig::default()
            .segment_bytes(self.segment_bytes)
            .segment_age(self.segment_ms.map(Duration::from_millis))
            .index_interval_bytes(self.index_interval_bytes)
            .max_batch_bytes(self.max_message_bytes as usize)
            .timestamp_type(self.timestamp_type)
            .flush_messages(self.flush_messages)
            .clock(clock)
    }

    /// The persisted form: Kafka's setting names, one `key=value` a line,
    /// ending with a CRC-32C of the lines before it.
    pub(crate) fn encode(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
        let mut s = String::from("# embedlog topic configuration\nformat=1\n");
        s += &format!("partitions={}\n", self.partitions);
        s += &format!("segment.bytes={}\n", self.segment_bytes);
        s += &format!("segment.ms={}\n", opt(self.segment_ms));
        s += &format!("index.interval.bytes={}\n", self.index_interval_bytes);
        s += &format!("max.message.bytes={}\n", self.max_message_bytes);
        let ts = match self.timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        s += &format!("message.timestamp.type={ts}\n");
        s += &format!("flush.messages={}\n", opt(self.flush_messages));
        s += &format!("flush.ms={}\n", opt(self.flush_ms));
        s += &format!("retention.ms={}\n", opt(self.retention_ms));
        s += &format!("retention.bytes={}\n", opt(self.retention_bytes));
        s += &format!("cleanup.policy={}\n", self.cleanup_policy.as_kafka());
        s += &format!("delete.retention.ms={}\n", self.delete_retention_ms);
        s += &format!("min.compaction.lag.ms={}\n", self.min_compaction_lag_ms);
        s += &format!(
            "min.cleanable.dirty.ratio={}\n",
            self.min_cleanable_dirty_ratio
        );
        let crc = crc32c::crc32c(s.as_bytes());
        s += &format!("crc32c={crc:08x}\n");
        s
    }

    /// Parses [`encode`](Self::encode)'s output; the error says what is
    /// wrong. Unknown keys (from newer versions) are ignored.
    pub(crate) fn decode(text: &str) -> std::result::Result<TopicConfig, String> {
        let Some(crc_at) = text.rfind("crc32c=") else {
            return Err("no crc32c line".into());
        };
        let (body, crc_line) = text.split_at(crc_at);
        let want = u32::from_str_radix(crc_line.trim_start_matches("crc32c=").trim(), 16)
            .map_err(|_| "unreadable crc32c line".to_string())?;
        if crc32c::crc32c(body.as_bytes()) != want {
            return Err("CRC-32C mismatch".into());
        }
        let mut c = TopicConfig::default();
        let num = |k: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}={v} is not a number"))
        };
        let opt = |k: &str, v: &str| {
            if v == "none" {
                Ok(None)
            } else {
                num(k, v).map(Some)
            }
        };
        let mut format_seen = false;
        for line in body.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {line:?} is not key=value"));
            };
            match k {
                "format" => {
                    if v != "1" {
                        return Err(format!("unsupported format {v}"));
                    }
                    format_seen = true;
                }
                "partitions" => {
                    c.partitions = u32::try_from(num(k, v)?)
                        .map_err(|_| format!("partitions={v} is too large"))?
                }
                "segment.bytes" => c.segment_bytes = num(k, v)?,
                "segment.ms" => c.segment_ms = opt(k, v)?,
                "index.interval.bytes" => c.index_interval_bytes = num(k, v)?,
                "max.message.bytes" => c.max_message_bytes = num(k, v)?,
                "message.timestamp.type" => {
                    c.timestamp_type = match v {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => return Err(format!("unknown message.timestamp.type {v}")),
                    }
                }
                "flush.messages" => c.flush_messages = opt(k, v)?,
                "flush.ms" => c.flush_ms = opt(k, v)?,
                "retention.ms" => c.retention_ms = opt(k, v)?,
                "retention.bytes" => c.retention_bytes = opt(k, v)?,
                "cleanup.policy" => {
                    c.cleanup_policy = match v {
                        "delete" => CleanupPolicy::Delete,
                        "compact" => CleanupPolicy::Compact,
                        "compact,delete" | "delete,compact" => CleanupPolicy::CompactDelete,
                        _ => return Err(format!("unknown cleanup.policy {v}")),
                    }
                }
                "delete.retention.ms" => c.delete_retention_ms = num(k, v)?,
                "min.compaction.lag.ms" => c.min_compaction_lag_ms = num(k, v)?,
                "min.cleanable.dirty.ratio" => {
                    c.min_cleanable_dirty_ratio =
                        v.parse().map_err(|_| format!("{k}={v} is not a number"))?
                }
                _ => {}
            }
        }
        if !format_seen {
            return Err("no format line".into());
        }
        Ok(c)
    }
}

/// A topic and partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: Arc<str>,
    /// The partition number.
    pub partition: u32,
}

impl TopicPartition {
    /// A topic-partition pair.
    pub fn new(topic: &str, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl<S: AsRef<str>> From<(S, u32)> for TopicPartition {
    fn from((t, p): (S, u32)) -> Self {
        TopicPartition::new(t.as_ref(), p)
    }
}

impl<S: AsRef<str>> From<&(S, u32)> for TopicPartition {
    fn from((t, p): &(S, u32)) -> Self {
        TopicPartition::new(t.as_ref(), *p)
    }
}

impl From<&TopicPartition> for TopicPartition {
    fn from(tp: &TopicPartition) -> Self {
        tp.clone()
    }
}

/// One partition of a topic: an ordered log with its own offsets. Cheap to
/// clone; stays readable after the topic is deleted (writes then fail).
#[derive(Clone, Debug)]
pub struct Partition {
    pub(crate) topic: Arc<str>,
    pub(crate) id: u32,
    pub(crate) log: Arc<Log>,
}

impl Partition {
    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Appends `records` as one batch (see [`Log::append`]).
    ///
    /// # Errors
    /// As [`Log::append`].
    pub fn append(&self, records: &[Record]) -> Result<AppendInfo> {
        self.check_writable()?;
        self.log.append(records)
    }

    /// Internal topics are written by the broker only.
    fn check_writable(&self) -> Result<()> {
        if crate::broker::is_internal(&self.topic) {
            return Err(Error::InvalidArgument(format!(
                "{} is an internal topic: consumers write it through commits",
                self.topic
            )));
        }
        Ok(())
    }

    /// Appends `records` as one batch with the given durability.
    ///
    /// # Errors
    /// As [`Log::append`].
    pub fn append_with(&self, records: &[Record], durability: Durability) -> Result<AppendInfo> {
        self.check_writable()?;
        self.log.append_with(records, durability)
    }

    /// Reads whole batches from `from` (see [`Log::read`]).
    ///
    /// # Errors
    /// As [`Log::read`].
    pub fn read(&self, from: Offset, limit: ReadLimit) -> Result<Batches> {
        self.log.read(from, limit)
    }

    /// The oldest readable offset.
    pub fn start_offset(&self) -> Offset {
        self.log.start_offset()
    }

    /// The offset the next record gets.
    pub fn end_offset(&self) -> Offset {
        self.log.end_offset()
    }

    /// The first offset with a timestamp `>= timestamp`.
    ///
    /// # Errors
    /// As [`Log::offset_for_timestamp`].
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        self.log.offset_for_timestamp(timestamp)
    }

    /// fsyncs everything appended to the partition so far (see
    /// [`Log::flush`]). Allowed on internal topics too: it changes no
    /// record.
    ///
    /// # Errors
    /// As [`Log::flush`].
    pub fn flush(&self) -> Result<()> {
        self.log.flush()
    }

    /// Closes the active segment and starts a new one (see [`Log::roll`]):
    /// the closed one becomes eligible for retention and compaction.
    /// Allowed on internal topics too: it changes no record.
    ///
    /// # Errors
    /// As [`Log::roll`].
    pub fn roll(&self) -> Result<()> {
        self.log.roll()
    }

    /// A read-only view of the partition's log: offsets, sizes, reads,
    /// verification, compaction progress. Writes go through the
    /// partition's own methods ([`append`](Self::append),
    /// [`append_with`](Self::append_with)), which refuse internal topics
    /// such as [`OFFSETS_TOPIC`](crate::OFFSETS_TOPIC), and through
    /// [`Admin`](crate::Admin) (retention, record deletion, compaction).
    pub fn log(&self) -> PartitionLog<'_> {
        PartitionLog { log: &self.log }
    }
}

/// A read-only view of a [`Partition`]'s log, from [`Partition::log`].
///
/// It cannot append, truncate or delete: a partition's records change only
/// through [`Partition`]'s checked methods and the [`Admin`](crate::Admin)
/// API, so no one writes a record that the broker cannot read back into an
/// internal topic. (A bare [`Log`] opened on a directory no broker holds is
/// the tool for everything else.)
///
/// ```
/// use embedlog::{Broker, Record, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// let p = broker.admin().create_topic("t", TopicConfig::default())?.partition(0)?;
/// p.append(&[Record::new("a"), Record::new("b")])?;
/// let log = p.log();
/// assert_eq!((log.start_offset(), log.end_offset()), (0, 2));
/// assert_eq!(log.verify()?.records, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Appending through it does not compile:
///
/// ```compile_fail
/// # use embedlog::{Broker, Record, OFFSETS_TOPIC};
/// # let dir = tempfile::tempdir().unwrap();
/// # let broker = Broker::open(dir.path()).unwrap();
/// let offsets = broker.topic(OFFSETS_TOPIC).unwrap().partition(0).unwrap();
/// offsets.log().append(&[Record::new("not a commit")]).unwrap();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PartitionLog<'a> {
    log: &'a Log,
}

impl PartitionLog<'_> {
    /// The log's directory.
    pub fn dir(&self) -> &std::path::Path {
        self.log.dir()
    }

    /// The log's settings (see [`Log::config`]).
    pub fn config(&self) -> LogConfig {
        self.log.config()
    }

    /// Reads whole batches starting with the one that holds `from` (see
    /// [`Log::read`]).
    ///
    /// # Errors
    /// As [`Log::read`].
    pub fn read(&self, from: Offset, limit: ReadLimit) -> Result<Batches> {
        self.log.read(from, limit)
    }

    /// The first offset with a timestamp at or after `timestamp` (see
    /// [`Log::offset_for_timestamp`]).
    ///
    /// # Errors
    /// As [`Log::offset_for_timestamp`].
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        self.log.offset_for_timestamp(timestamp)
    }

    /// The oldest readable offset.
    pub fn start_offset(&self) -> Offset {
        self.log.start_offset()
    }

    /// The offset the next record gets.
    pub fn end_offset(&self) -> Offset {
        self.log.end_offset()
    }

    /// Every offset below this one is fsync'd.
    pub fn flushed_offset(&self) -> Offset {
        self.log.flushed_offset()
    }

    /// Bytes of record batches on disk.
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.log.segment_count()
    }

    /// Whether an earlier failure made the log refuse writes
    /// ([`Error::Poisoned`]) until it is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.log.is_poisoned()
    }

    /// Whether the log was closed (its broker closed, or its topic was
    /// deleted).
    pub fn is_closed(&self) -> bool {
        self.log.is_closed()
    }

    /// Blocks until a record at `offset` exists, the timeout expires or the
    /// log closes; returns whether the record exists (see
    /// [`Log::wait_for`]).
    pub fn wait_for(&self, offset: Offset, timeout: Duration) -> bool {
        self.log.wait_for(offset, timeout)
    }

    /// Notifies `notify` on every append (see [`Log::watch`]).
    pub fn watch(&self, notify: Arc<Notify>) {
        self.log.watch(notify)
    }

    /// Stops notifying `notify`.
    pub fn unwatch(&self, notify: &Arc<Notify>) {
        self.log.unwatch(notify)
    }

    /// The share of the complete segments' bytes that compaction has not
    /// cleaned yet, from 0 to 1.
    pub fn dirty_ratio(&self) -> f64 {
        self.log.dirty_ratio()
    }

    /// Every offset below this one has been compacted (0 if compaction
    /// never ran).
    pub fn cleaned_to(&self) -> Offset {
        self.log.cleaned_to()
    }

    /// Reads every batch of every segment and checks it (see
    /// [`Log::verify`]).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the first bad batch.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.log.verify()
    }
}

#[derive(Debug)]
pub(crate) struct TopicState {
    pub(crate) name: Arc<str>,
    pub(crate) partitions: RwLock<Vec<Partition>>,
    pub(crate) config: RwLock<TopicConfig>,
    pub(crate) deleted: AtomicBool,
}

/// A topic: a name, its partitions and its configuration. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Topic {
    pub(crate) state: Arc<TopicState>,
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The number of partitions now.
    pub fn partition_count(&self) -> u32 {
        self.state.partitions.read().len() as u32
    }

    /// Partition `id`.
    ///
    /// # Errors
    /// [`Error::UnknownPartition`] past the partition count;
    /// [`Error::UnknownTopic`] if the topic was deleted.
    pub fn partition(&self, id: u32) -> Result<Partition> {
        if self.state.deleted.load(Ordering::SeqCst) {
            return Err(Error::UnknownTopic {
                name: self.name().to_string(),
            });
        }
        let parts = self.state.partitions.read();
        parts
            .get(id as usize)
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: self.name().to_string(),
                partition: id,
                count: parts.len() as u32,
            })
    }

    /// All partitions, in order.
    pub fn partitions(&self) -> Vec<Partition> {
        self.state.partitions.read().clone()
    }

    /// The topic's configuration.
    pub fn config(&self) -> TopicConfig {
        self.state.config.read().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_published_vectors() {
        // org.apache.kafka.common.utils.UtilsTest#testMurmur2
        for (input, want) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(murmur2(input), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn topic_names_follow_kafka() {
        for ok in ["a", "A-b_c.d", "0", &"x".repeat(249), "..."] {
            validate_topic_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250), "a\0"] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(Error::InvalidTopicName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn config_roundtrips_and_rejects_damage() {
        let c = TopicConfig::default()
            .partitions(12)
            .segment_bytes(1 << 20)
            .segment_age(None)
            .timestamp_type(TimestampType::LogAppendTime)
            .flush_messages(Some(10))
            .flush_interval(Some(Duration::from_millis(250)))
            .retention(Some(Duration::from_secs(60)))
            .retention_bytes(Some(1 << 30));
        let text = c.encode();
        assert_eq!(TopicConfig::decode(&text), Ok(c.clone()));
        assert!(text.contains("segment.bytes=1048576"));
        let damaged = text.replace("partitions=12", "partitions=13");
        assert!(TopicConfig::decode(&damaged).unwrap_err().contains("CRC"));
        assert!(TopicConfig::decode(&text[..text.len() / 2]).is_err());
        assert!(TopicConfig::decode("").is_err());
    }

    #[test]
    fn invalid_configs_name_the_setting() {
        assert!(TopicConfig::default().partitions(0).validate().is_err());
        let e = TopicConfig::default()
            .segment_bytes(1)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("segment_bytes"), "{e}");
        TopicConfig::default().validate().unwrap();
    }
}

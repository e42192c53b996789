//! A topic's configuration and its `topic.conf` codec.

use crate::error::{Error, Result};
use crate::record::{Compression, TimestampType};
use crate::storage::LogConfig;
use std::sync::Arc;
use std::time::Duration;

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
    pub(crate) compression: Option<Compression>,
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
            compression: None,
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

    /// How the topic's batches are stored (Kafka's `compression.type`):
    /// `None` keeps what each producer sent (`producer`, the default);
    /// `Some(codec)` stores every batch with `codec` (producers then
    /// compress with it directly; `Some(Compression::None)` is Kafka's
    /// `uncompressed`). The codec's cargo feature must be on.
    ///
    /// ```
    /// use embedlog::{Compression, TopicConfig};
    /// let c = TopicConfig::default().set("compression.type", "lz4")?;
    /// assert_eq!(c.compression_type(), Some(Compression::Lz4));
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    pub fn compression(mut self, codec: Option<Compression>) -> Self {
        self.compression = codec;
        self
    }

    /// The configured `compression.type` (`None`: `producer`).
    pub fn compression_type(&self) -> Option<Compression> {
        self.compression
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

    /// Checks the configuration a topic is created or altered with: every
    /// value, and that this build has the `compression.type` codec (a
    /// stored configuration naming a codec the build lacks still opens:
    /// the topic's appends then fail with [`Error::Unsupported`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the setting.
    pub(crate) fn validate_new(&self) -> Result<()> {
        self.validate()?;
        if let Some(c) = self.compression {
            c.check_available()
                .map_err(|e| Error::InvalidConfig(format!("compression.type={c}: {e}")))?;
        }
        Ok(())
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
            .compression(self.compression)
            .clock(clock)
    }

    /// Every setting by its Kafka name, with its value as `topic.conf`
    /// and [`set`](Self::set) spell it (`none` for an unset limit), in a
    /// fixed order. `partitions` comes first.
    ///
    /// ```
    /// use embedlog::TopicConfig;
    /// let c = TopicConfig::default().set("retention.ms", "60000")?;
    /// let entries = c.entries();
    /// assert!(entries.contains(&("retention.ms", "60000".to_string())));
    /// assert_eq!(entries[0], ("partitions", "1".to_string()));
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let opt = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
        let ts = match self.timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        vec![
            ("partitions", self.partitions.to_string()),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", opt(self.segment_ms)),
            (
                "index.interval.bytes",
                self.index_interval_bytes.to_string(),
            ),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("message.timestamp.type", ts.to_string()),
            ("flush.messages", opt(self.flush_messages)),
            ("flush.ms", opt(self.flush_ms)),
            ("retention.ms", opt(self.retention_ms)),
            ("retention.bytes", opt(self.retention_bytes)),
            ("cleanup.policy", self.cleanup_policy.as_kafka().to_string()),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            (
                "min.compaction.lag.ms",
                self.min_compaction_lag_ms.to_string(),
            ),
            (
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio.to_string(),
            ),
            (
                "compression.type",
                self.compression
                    .map_or("producer", |c| match c {
                        Compression::None => "uncompressed",
                        c => c.name(),
                    })
                    .to_string(),
            ),
        ]
    }

    /// Sets one setting by its Kafka name (`retention.ms`, `cleanup.policy`,
    /// …, the names [`entries`](Self::entries) lists), as Kafka's
    /// `--config name=value` does. An unset limit is `none` or, as in
    /// Kafka, `-1`.
    ///
    /// ```
    /// use embedlog::{CleanupPolicy, TopicConfig};
    /// let c = TopicConfig::default()
    ///     .set("cleanup.policy", "compact")?
    ///     .set("retention.bytes", "-1")?;
    /// assert_eq!(c.get_cleanup_policy(), CleanupPolicy::Compact);
    /// assert!(TopicConfig::default().set("retention.ms", "soon").is_err());
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an unknown name or a value that does not
    /// parse; the combined settings are checked by [`validate`](Self::validate)
    /// when the topic is created or altered.
    pub fn set(mut self, name: &str, value: &str) -> Result<TopicConfig> {
        let value = value.trim();
        let optional = [
            "segment.ms",
            "flush.messages",
            "flush.ms",
            "retention.ms",
            "retention.bytes",
        ];
        let value = if value == "-1" && optional.contains(&name) {
            "none"
        } else {
            value
        };
        match self.apply(name, value) {
            Ok(true) => Ok(self),
            Ok(false) => Err(Error::InvalidConfig(format!(
                "unknown setting {name:?}; known: {}",
                self.entries()
                    .iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            Err(reason) => Err(Error::InvalidConfig(reason)),
        }
    }

    /// Applies one `key=value`; `Ok(false)` for a key it does not know.
    fn apply(&mut self, k: &str, v: &str) -> std::result::Result<bool, String> {
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}={v} is not a number"))
        };
        let opt = |v: &str| {
            if v == "none" {
                Ok(None)
            } else {
                num(v).map(Some)
            }
        };
        match k {
            "partitions" => {
                self.partitions =
                    u32::try_from(num(v)?).map_err(|_| format!("partitions={v} is too large"))?
            }
            "segment.bytes" => self.segment_bytes = num(v)?,
            "segment.ms" => self.segment_ms = opt(v)?,
            "index.interval.bytes" => self.index_interval_bytes = num(v)?,
            "max.message.bytes" => self.max_message_bytes = num(v)?,
            "message.timestamp.type" => {
                self.timestamp_type = match v {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => {
                        return Err(format!(
                            "unknown message.timestamp.type {v} (CreateTime or LogAppendTime)"
                        ));
                    }
                }
            }
            "flush.messages" => self.flush_messages = opt(v)?,
            "flush.ms" => self.flush_ms = opt(v)?,
            "retention.ms" => self.retention_ms = opt(v)?,
            "retention.bytes" => self.retention_bytes = opt(v)?,
            "cleanup.policy" => {
                self.cleanup_policy = match v {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    "compact,delete" | "delete,compact" => CleanupPolicy::CompactDelete,
                    _ => {
                        return Err(format!(
                            "unknown cleanup.policy {v} (delete, compact or compact,delete)"
                        ));
                    }
                }
            }
            "delete.retention.ms" => self.delete_retention_ms = num(v)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = num(v)?,
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio =
                    v.parse().map_err(|_| format!("{k}={v} is not a number"))?
            }
            "compression.type" => {
                self.compression = match v {
                    "producer" => None,
                    v => Some(Compression::from_name(v).ok_or_else(|| {
                        format!(
                            "unknown compression.type {v} \
                             (producer, uncompressed, gzip, snappy, lz4 or zstd)"
                        )
                    })?),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The persisted form: Kafka's setting names, one `key=value` a line,
    /// ending with a CRC-32C of the lines before it.
    pub(crate) fn encode(&self) -> String {
        let mut s = String::from("# embedlog topic configuration\nformat=1\n");
        for (k, v) in self.entries() {
            s += &format!("{k}={v}\n");
        }
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
        let mut format_seen = false;
        for line in body.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {line:?} is not key=value"));
            };
            if k == "format" {
                if v != "1" {
                    return Err(format!("unsupported format {v}"));
                }
                format_seen = true;
            } else {
                // Unknown keys are from newer versions: ignored.
                c.apply(k, v)?;
            }
        }
        if !format_seen {
            return Err("no format line".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

//! A log's settings ([`LogConfig`], [`Durability`]), the limits of a read
//! ([`ReadLimit`]), the retention policy ([`Retention`]), and what appends,
//! retention and verification report.

#[cfg(doc)]
use super::Log;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::record::{BATCH_HEADER_SIZE, Compression, Offset, TimestampType};
use crate::storage::segment::Limits;
use std::sync::Arc;
use std::time::Duration;

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The batch is in the operating system when the call returns: it
    /// survives a crash of the process (kill -9), not a power loss.
    #[default]
    Buffered,
    /// The batch and everything before it are fsync'd (`fdatasync`) when the
    /// call returns: it survives power loss. Concurrent sync appenders share
    /// one fsync (group commit).
    Sync,
}

/// Settings of a [`Log`]. Every setter documents its default.
///
/// ```
/// use embedlog::{Durability, LogConfig};
/// use std::time::Duration;
/// let config = LogConfig::default()
///     .segment_bytes(64 << 20)
///     .durability(Durability::Sync)
///     .flush_interval(Some(Duration::from_millis(100)));
/// assert_eq!(config.get_segment_bytes(), 64 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub(super) segment_bytes: u64,
    pub(super) segment_ms: Option<i64>,
    pub(super) index_interval_bytes: u64,
    pub(super) max_batch_bytes: usize,
    pub(super) durability: Durability,
    pub(super) flush_messages: Option<u64>,
    pub(super) flush_interval: Option<Duration>,
    pub(super) timestamp_type: TimestampType,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) producer_id_expiration: Duration,
    pub(super) compression: Option<Compression>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * 24 * 60 * 60 * 1000),
            index_interval_bytes: 4096,
            max_batch_bytes: 1 << 20,
            durability: Durability::Buffered,
            flush_messages: None,
            flush_interval: None,
            timestamp_type: TimestampType::CreateTime,
            clock: Arc::new(SystemClock),
            producer_id_expiration: Duration::from_secs(24 * 60 * 60),
            compression: None,
        }
    }
}

/// Smallest segment and batch size accepted: one header and one record.
const MIN_SIZE: u64 = BATCH_HEADER_SIZE as u64 + 7;

impl LogConfig {
    /// Roll to a new segment when the next batch would take the active one
    /// past this many bytes (Kafka's `segment.bytes`). Default: 1 GiB.
    /// Valid: 68 bytes to 2 GiB − 1 (checked by [`Log::open`]).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Roll to a new segment when the active one is older than this
    /// (Kafka's `segment.ms`), measured from its first batch. `None` never
    /// rolls by age. Default: 7 days.
    pub fn segment_age(mut self, age: Option<Duration>) -> Self {
        self.segment_ms = age.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self
    }

    /// Bytes of log between two offset index entries (Kafka's
    /// `index.interval.bytes`). Smaller makes lookups faster and indexes
    /// bigger. Default: 4096.
    pub fn index_interval_bytes(mut self, bytes: u64) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Largest accepted batch, header included (Kafka's
    /// `max.message.bytes`). Default: 1 MiB. Valid: 68 bytes to 2 GiB − 1.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Durability of [`Log::append`]. Default: [`Durability::Buffered`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// fsync after this many records were appended without one (Kafka's
    /// `flush.messages`); the appender that crosses the bound pays for it.
    /// `None`: no bound. Default: `None`.
    pub fn flush_messages(mut self, records: Option<u64>) -> Self {
        self.flush_messages = records;
        self
    }

    /// fsync in a background thread at this interval whenever something was
    /// appended since the last fsync (Kafka's `flush.ms`). `None`: no
    /// background flush. Default: `None`.
    pub fn flush_interval(mut self, interval: Option<Duration>) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Which timestamps records keep (Kafka's `message.timestamp.type`):
    /// the producer's ([`TimestampType::CreateTime`]) or the time the log
    /// appended the batch ([`TimestampType::LogAppendTime`], from the clock).
    /// Default: create time.
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self
    }

    /// The clock used for time-based rolls and log-append time. Default:
    /// [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long the log remembers an idempotent producer that wrote
    /// nothing (Kafka's `producer.id.expiration.ms`): a retry after that is
    /// stored again. Producers with an open transaction are kept. Default:
    /// one day.
    pub fn producer_id_expiration(mut self, age: Duration) -> Self {
        self.producer_id_expiration = age;
        self
    }

    /// How appended batches are stored (Kafka's topic-level
    /// `compression.type`): `None` keeps each batch as it came (`producer`);
    /// `Some(codec)` stores every data batch with `codec`, recompressing
    /// one that came with another (`Some(Compression::None)` stores them
    /// uncompressed). Replicated batches and transaction markers are
    /// stored as they are. A codec whose cargo feature is off makes appends
    /// fail with [`Error::Unsupported`]. Default: `None`.
    pub fn compression(mut self, codec: Option<Compression>) -> Self {
        self.compression = codec;
        self
    }

    pub(super) fn producer_id_expiration_ms(&self) -> i64 {
        i64::try_from(self.producer_id_expiration.as_millis()).unwrap_or(i64::MAX)
    }

    /// The configured segment size.
    pub fn get_segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// The configured durability.
    pub fn get_durability(&self) -> Durability {
        self.durability
    }

    /// The configured background flush interval.
    pub fn get_flush_interval(&self) -> Option<Duration> {
        self.flush_interval
    }

    pub(crate) fn check(&self) -> Result<()> {
        let max = i32::MAX as u64;
        if !(MIN_SIZE..=max).contains(&self.segment_bytes) {
            return Err(Error::InvalidConfig(format!(
                "segment_bytes must be between {MIN_SIZE} and {max}, got {}",
                self.segment_bytes
            )));
        }
        if !(MIN_SIZE..=max).contains(&(self.max_batch_bytes as u64)) {
            return Err(Error::InvalidConfig(format!(
                "max_batch_bytes must be between {MIN_SIZE} and {max}, got {}",
                self.max_batch_bytes
            )));
        }
        if self.segment_ms.is_some_and(|ms| ms <= 0) {
            return Err(Error::InvalidConfig("segment_age must be positive".into()));
        }
        if self.flush_messages == Some(0) {
            return Err(Error::InvalidConfig(
                "flush_messages must be at least 1".into(),
            ));
        }
        if let Some(c @ Compression::Unknown(_)) = self.compression {
            return Err(Error::InvalidConfig(format!(
                "compression: {c} (none, gzip, snappy, lz4 or zstd)"
            )));
        }
        if self.flush_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::InvalidConfig(
                "flush_interval must be positive".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn limits(&self) -> Limits {
        let map_len = self.segment_bytes.max(self.max_batch_bytes as u64);
        // An entry needs more than `interval` bytes since the previous one,
        // and every batch is at least MIN_SIZE bytes.
        let step = (self.index_interval_bytes + 1).max(MIN_SIZE);
        Limits {
            segment_bytes: self.segment_bytes,
            map_len,
            index_capacity: (map_len / step) as usize + 2,
            index_interval: self.index_interval_bytes,
        }
    }
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Offset of the last record.
    pub last_offset: Offset,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
}

/// Limits of one [`Log::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimit {
    pub(crate) max_bytes: usize,
    pub(crate) max_records: usize,
}

impl Default for ReadLimit {
    /// 1 MiB, any number of records.
    fn default() -> Self {
        ReadLimit::bytes(1 << 20)
    }
}

impl ReadLimit {
    /// At most `max_bytes` of batches (but always at least one whole batch,
    /// so a reader makes progress past a large one).
    pub fn bytes(max_bytes: usize) -> Self {
        ReadLimit {
            max_bytes,
            max_records: usize::MAX,
        }
    }

    /// Also stop after about `max_records` records: whole batches are
    /// returned, and the record iterator stops after exactly this many.
    pub fn records(mut self, max_records: usize) -> Self {
        self.max_records = max_records.max(1);
        self
    }
}

/// How long a log keeps records (Kafka's delete retention). `None` keeps
/// them regardless of that measure.
///
/// ```
/// use embedlog::Retention;
/// use std::time::Duration;
/// let policy = Retention::default().max_age(Duration::from_secs(3600)).max_bytes(1 << 30);
/// assert!(!policy.is_unlimited());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Drop segments whose newest record is older than this (ms).
    pub max_age_ms: Option<u64>,
    /// Drop the oldest segments while the log is larger than this.
    pub max_bytes: Option<u64>,
}

impl Retention {
    /// Keep records at most this long. Default: forever.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age_ms = Some(u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Keep at most about this many bytes (plus the active segment).
    /// Default: unbounded.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Whether this policy ever deletes anything.
    pub fn is_unlimited(&self) -> bool {
        self.max_age_ms.is_none() && self.max_bytes.is_none()
    }
}

/// What [`Log::enforce_retention`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes of record batches deleted.
    pub bytes_deleted: u64,
}

/// What [`Log::verify`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: usize,
    /// Records decoded (every CRC checked).
    pub records: u64,
    /// Bytes checked.
    pub bytes: u64,
}

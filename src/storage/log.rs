//! A partition's log: an ordered list of segments, one writer, many readers.

use super::checkpoint::{Checkpoint, CleanShutdown};
use super::segment::{self, IndexState, Limits, Mode, Segment};
use super::vfs::{RealFs, Vfs, VfsFile};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::record::{
    BATCH_HEADER_SIZE, BatchHeader, BatchParams, Batches, Offset, Record, TimestampType,
    encode_batch,
};
use parking_lot::{Condvar, Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[path = "compact.rs"]
pub(crate) mod compact;

use compact::{CLEANED_SUFFIX, Compaction, CompactionReport, SWAP_SUFFIX};

const LOCK_FILE: &str = ".lock";
/// Rolled segments that may wait for an fsync (holding descriptors).
const MAX_UNFLUSHED_ROLLED: usize = 4;
/// Longest a group-commit leader waits for sync appenders to join it.
const COMMIT_DELAY: Duration = Duration::from_micros(50);

/// Marks one sync append in flight; see `Inner::sync_appender`.
struct SyncAppender<'a>(&'a AtomicUsize);

impl Drop for SyncAppender<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
const TRUNCATING_SUFFIX: &str = ".truncating";

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
    segment_bytes: u64,
    segment_ms: Option<i64>,
    index_interval_bytes: u64,
    max_batch_bytes: usize,
    durability: Durability,
    flush_messages: Option<u64>,
    flush_interval: Option<Duration>,
    timestamp_type: TimestampType,
    clock: Arc<dyn Clock>,
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
        if self.flush_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::InvalidConfig(
                "flush_interval must be positive".into(),
            ));
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
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
    max_bytes: usize,
    max_records: usize,
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

/// Wakes readers waiting for the log to grow.
#[derive(Debug, Default)]
struct Signal {
    mutex: Mutex<()>,
    cv: Condvar,
    waiters: AtomicUsize,
}

impl Signal {
    fn notify(&self) {
        // Pairs with the SeqCst increment in `wait_until`: either the waiter
        // sees the new end, or we see the waiter and take the mutex it holds
        // until it sleeps.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.mutex.lock();
            self.cv.notify_all();
        }
    }

    fn wait_until(&self, cond: impl Fn() -> bool, deadline: Instant) -> bool {
        if cond() {
            return true;
        }
        let mut g = self.mutex.lock();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if cond() {
                break true;
            }
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                break cond();
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// A wake-up signal a reader can share across many logs: each
/// [`Log::watch`]ed log notifies it after every append, and a waiter sleeps
/// until the notification count moves past what it saw.
///
/// ```
/// use embedlog::{Log, LogConfig, Notify, Record};
/// use std::{sync::Arc, time::Duration};
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// let notify = Arc::new(Notify::new());
/// log.watch(notify.clone());
/// let seen = notify.generation();
/// log.append(&[Record::new("x")])?;
/// assert!(notify.wait_past(seen, Duration::from_secs(5)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Notify {
    generation: Mutex<u64>,
    cv: Condvar,
    waiters: AtomicUsize,
}

impl Notify {
    /// A new signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of notifications so far; pass it to
    /// [`wait_past`](Self::wait_past) after checking for data.
    pub fn generation(&self) -> u64 {
        *self.generation.lock()
    }

    /// Wakes every waiter.
    pub fn notify(&self) {
        let mut g = self.generation.lock();
        *g += 1;
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.cv.notify_all();
        }
    }

    /// Sleeps until a notification after `seen` arrives or `timeout`
    /// passes; returns whether one arrived.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = crate::clock::deadline_after(timeout);
        let mut g = self.generation.lock();
        self.waiters.fetch_add(1, Ordering::Relaxed);
        while *g == seen {
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        *g != seen
    }
}

/// Marks an encoded batch as log-append time stamped `now`: sets the
/// timestamp-type attribute and the max timestamp, then the CRC (both are
/// covered by it).
fn set_log_append_time(batch: &mut [u8], now: i64) {
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x08;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now.to_be_bytes());
    let crc = crate::record::batch_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[derive(Debug)]
struct SyncState {
    /// Every offset below this is fsync'd.
    synced: Offset,
    in_progress: bool,
    /// Threads waiting for the fsync in progress.
    waiting: usize,
}

impl SyncState {
    /// Records an fsync that covered every offset below `upto`, unless a
    /// truncation (`epoch` moved) replaced files after it began.
    fn advance(&mut self, upto: Offset, epoch: u64, now_epoch: u64) {
        if epoch == now_epoch {
            self.synced = self.synced.max(upto);
        }
    }
}

#[derive(Debug)]
struct Writer {
    /// The current configuration (changeable with `Log::set_config`).
    config: LogConfig,
    limits: Limits,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    state: IndexState,
    /// Rolled segments not fsync'd yet.
    unflushed: Vec<Arc<Segment>>,
    unflushed_records: u64,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    vfs: Arc<dyn Vfs>,
    /// The directory lock, released when the log closes.
    lock: Mutex<Option<Box<dyn VfsFile>>>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    writer: Mutex<Writer>,
    next_offset: AtomicU64,
    log_start: AtomicU64,
    poisoned: AtomicBool,
    poison_reason: Mutex<String>,
    /// Bumped (under the writer lock) by every truncation, which replaces
    /// files an fsync in progress may not cover.
    truncations: AtomicU64,
    sync: Mutex<SyncState>,
    /// Wakes a group-commit leader when another appender starts waiting.
    leader_cv: Condvar,
    /// Sync appends between their start and their fsync (group commit
    /// waits a moment for them to join an fsync).
    sync_appenders: AtomicUsize,
    /// The configured durability is `Sync`.
    default_sync: AtomicBool,
    sync_cv: Condvar,
    /// Serializes checkpoint writes.
    checkpoint: Mutex<()>,
    /// Held by whatever replaces or removes complete segments (compaction,
    /// truncation, deletion, close), so that each sees the others' result.
    /// Taken before the writer lock and the group-commit slot.
    rewrite: Mutex<()>,
    /// Compaction's first dirty offset.
    cleaned_to: AtomicU64,
    /// The log is closing or being abandoned: a compaction pass stops at
    /// its next check.
    stopping: AtomicBool,
    /// The checkpoint on disk records a clean shutdown (must be cleared
    /// before the first change).
    checkpoint_clean: AtomicBool,
    /// A checkpoint write failed; retry at the next flush.
    checkpoint_stale: AtomicBool,
    signal: Signal,
    /// The log was abandoned (its topic deleted, or a simulated crash):
    /// nothing may be written to its directory any more.
    abandoned: AtomicBool,
    /// Notified after every append (consumers waiting on many logs).
    watchers: RwLock<Vec<Arc<Notify>>>,
    closed: AtomicBool,
    stop: Mutex<bool>,
    stop_cv: Condvar,
}

/// One partition's durable, ordered, offset-addressed log of record batches.
///
/// A directory of segments (`<base offset>.log` with `.index` and
/// `.timeindex`, in Kafka's formats) and a checkpoint file. One writer at a
/// time appends (a mutex around the tail); any number of readers read
/// concurrently without taking it, and get zero-copy [`Batches`] that stay
/// valid after the segment rolls or is deleted.
///
/// ```
/// use embedlog::{Log, LogConfig, ReadLimit, Record};
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// let info = log.append(&[Record::new("hello").key("k"), Record::new("world")])?;
/// assert_eq!((info.base_offset, info.last_offset), (0, 1));
/// let batches = log.read(0, ReadLimit::default())?;
/// let values: Vec<_> = batches
///     .records()
///     .map(|r| r.map(|r| r.value.unwrap()))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(values, ["hello", "world"]);
/// log.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Log {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

impl Log {
    /// Opens (or creates) the log in `dir`.
    ///
    /// After a clean [`close`](Self::close) nothing is scanned. After a crash
    /// the segments past the last fsync'd point are scanned, their indexes
    /// rebuilt, and a torn or corrupt tail is cut at the last whole, valid
    /// batch. Indexes that are missing or fail their checks are rebuilt.
    ///
    /// # Errors
    /// [`Error::Locked`] if another handle holds the directory;
    /// [`Error::Corrupt`] if data that was fsync'd fails its checks;
    /// [`Error::InvalidConfig`]; I/O errors.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        Self::open_with(Arc::new(RealFs), dir.as_ref(), config)
    }

    pub(crate) fn open_with(vfs: Arc<dyn Vfs>, dir: &Path, config: LogConfig) -> Result<Log> {
        config.check()?;
        let inner = Arc::new(Inner::open(vfs, dir, config)?);
        let flusher = inner.writer.lock().config.flush_interval.map(|every| {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("embedlog-flush".into())
                .spawn(move || inner.flush_loop(every))
        });
        let flusher = match flusher {
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => return Err(Error::io("spawn flush thread for", dir, e)),
            None => None,
        };
        Ok(Log { inner, flusher })
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The current configuration.
    pub fn config(&self) -> LogConfig {
        self.inner.writer.lock().config.clone()
    }

    /// Changes the configuration of the open log. Segment size and age,
    /// index interval, batch limit, durability, flush-by-count and the
    /// timestamp type apply from the next append (existing segments keep
    /// their size); `flush_interval` applies from the next open.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`].
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.check()?;
        let mut w = self.inner.writer.lock();
        w.limits = config.limits();
        self.inner
            .default_sync
            .store(config.durability == Durability::Sync, Ordering::Relaxed);
        w.config = config;
        Ok(())
    }

    /// Registers `notify` to be woken after every append (and on close).
    pub fn watch(&self, notify: Arc<Notify>) {
        self.inner.watchers.write().push(notify);
    }

    /// Removes a registration made with [`watch`](Self::watch).
    pub fn unwatch(&self, notify: &Arc<Notify>) {
        self.inner
            .watchers
            .write()
            .retain(|n| !Arc::ptr_eq(n, notify));
    }

    /// Closes the log through a shared handle (the broker's close).
    pub(crate) fn shutdown_shared(&self) -> Result<()> {
        self.inner.shutdown()
    }

    /// Stops the log without writing anything more: its directory is about
    /// to be deleted. Readers keep the bytes they hold; further calls fail
    /// with [`Error::Closed`].
    pub(crate) fn abandon(&self) {
        // A compaction pass stops at its next check, before touching the
        // directory again.
        self.inner.stopping.store(true, Ordering::SeqCst);
        let _rewrite = self.inner.rewrite.lock();
        let _w = self.inner.writer.lock();
        self.inner.abandoned.store(true, Ordering::SeqCst);
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.lock.lock().take();
        self.inner.wake_all();
    }

    /// Appends `records` as one batch with the configured durability.
    /// Offsets are assigned consecutively from the log end offset.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty slice,
    /// [`Error::BatchTooLarge`], [`Error::DiskFull`] and other I/O errors
    /// (nothing is appended then), [`Error::Poisoned`] after a failed fsync,
    /// [`Error::Closed`].
    pub fn append(&self, records: &[Record]) -> Result<AppendInfo> {
        self.inner.append_records(records, None)
    }

    /// Appends `records` as one batch with the given durability.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn append_with(&self, records: &[Record], durability: Durability) -> Result<AppendInfo> {
        self.inner.append_records(records, Some(durability))
    }

    /// Appends a batch already encoded (by [`BatchBuilder`](crate::BatchBuilder)
    /// or a Kafka client). Its base offset is set to the log end offset, in
    /// `batch` too; its CRC is checked first.
    ///
    /// # Errors
    /// [`Error::InvalidBatch`] if `batch` is not exactly one valid,
    /// uncompressed batch; otherwise as [`append`](Self::append).
    pub fn append_batch(&self, batch: &mut [u8], durability: Durability) -> Result<AppendInfo> {
        self.inner.append_encoded(batch, durability, true)
    }

    /// [`append_batch`](Self::append_batch) for batches this crate's
    /// `BatchBuilder` just made: the records are not decoded again.
    pub(crate) fn append_built(
        &self,
        batch: &mut [u8],
        durability: Durability,
    ) -> Result<AppendInfo> {
        self.inner.append_encoded(batch, durability, false)
    }

    /// Appends `records` as one batch stamped with leader epoch `epoch`.
    pub(crate) fn append_in_epoch(
        &self,
        records: &[Record],
        durability: Durability,
        epoch: i32,
    ) -> Result<AppendInfo> {
        self.inner
            .append_records_in_epoch(records, Some(durability), epoch)
    }

    /// Appends a replicated batch byte for byte at the log end.
    pub(crate) fn append_exact(
        &self,
        batch: &mut [u8],
        durability: Durability,
    ) -> Result<AppendInfo> {
        self.inner.append_exact(batch, durability)
    }

    /// As [`read`](Self::read), returning nothing at or past `bound`.
    pub(crate) fn read_below(
        &self,
        from: Offset,
        bound: Offset,
        limit: ReadLimit,
    ) -> Result<Batches> {
        self.inner.read_below(from, bound, limit)
    }

    /// Reads whole batches starting with the one that holds `from`.
    ///
    /// Returns an empty [`Batches`] when `from` is the log end offset. The
    /// first batch may start before `from` (batches are never split);
    /// [`Batches::records`] skips those records. The bytes borrow the
    /// segment's memory map: no copy is made.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] if `from` is below the log start or past
    /// the end; [`Error::Corrupt`] if a batch header on the way is invalid.
    pub fn read(&self, from: Offset, limit: ReadLimit) -> Result<Batches> {
        self.inner.read(from, limit)
    }

    /// The first offset whose record's timestamp is `>= timestamp`, or
    /// `None` if every record is older (Kafka's ListOffsets by time).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a batch on the way fails its checks.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        self.inner.offset_for_timestamp(timestamp)
    }

    /// The oldest readable offset.
    pub fn start_offset(&self) -> Offset {
        self.inner.log_start.load(Ordering::Acquire)
    }

    /// Whether an earlier failure (a failed fsync, or a failed clean-up
    /// after a failed write) made the log refuse writes until it is
    /// reopened ([`Error::Poisoned`]).
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::SeqCst)
    }

    /// Whether the log was closed (or its topic deleted).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The offset the next record will get (one past the last record).
    pub fn end_offset(&self) -> Offset {
        self.inner.next_offset.load(Ordering::SeqCst)
    }

    /// Every offset below this one has been fsync'd.
    pub fn flushed_offset(&self) -> Offset {
        self.inner.sync.lock().synced
    }

    /// Bytes of record batches across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner.snapshot().iter().map(|s| s.size()).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.inner.snapshot().len()
    }

    /// Blocks until the log end offset passes `offset` (a record at
    /// `offset` exists), the timeout expires, or the log closes. Returns
    /// whether the record exists. Sleeps; does not spin.
    pub fn wait_for(&self, offset: Offset, timeout: Duration) -> bool {
        let inner = &self.inner;
        let deadline = crate::clock::deadline_after(timeout);
        inner.signal.wait_until(
            || {
                inner.next_offset.load(Ordering::SeqCst) > offset
                    || inner.closed.load(Ordering::SeqCst)
            },
            deadline,
        ) && inner.next_offset.load(Ordering::SeqCst) > offset
    }

    /// fsyncs everything appended so far (shares the fsync with concurrent
    /// sync appenders).
    ///
    /// # Errors
    /// I/O errors; the log is poisoned by a failed fsync.
    pub fn flush(&self) -> Result<()> {
        let end = self.end_offset();
        self.inner.sync_to(end)
    }

    /// fsyncs at least every offset below `offset` (group commit: returns
    /// at once if that is done, joins an fsync in progress otherwise).
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn flush_to(&self, offset: Offset) -> Result<()> {
        self.inner.sync_to(offset.min(self.end_offset()))
    }

    /// Closes the active segment and starts a new one at the log end offset
    /// (nothing happens if the active segment is empty).
    ///
    /// # Errors
    /// I/O errors creating the new segment.
    pub fn roll(&self) -> Result<()> {
        let mut w = self.inner.lock_writer()?;
        self.inner.mark_dirty()?;
        self.inner.roll_locked(&mut w)
    }

    /// Removes every record at or after `offset`, so the next append gets
    /// `offset`. Batches are never split: if `offset` falls inside a batch,
    /// that whole batch goes, and the new end offset (returned) is its base
    /// offset. Readers holding data of removed records keep valid bytes.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the log start offset; I/O errors.
    pub fn truncate_to(&self, offset: Offset) -> Result<Offset> {
        self.inner.truncate_to(offset)
    }

    /// Makes `offset` the log start offset (durably) and deletes the
    /// segments wholly before it (Kafka's DeleteRecords). Never deletes
    /// records at or after `offset`; the active segment goes only if
    /// `offset` is the end offset (a new empty one replaces it).
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] past the end offset; I/O errors.
    pub fn delete_records_before(&self, offset: Offset) -> Result<()> {
        self.inner.delete_records_before(offset)
    }

    /// Deletes the oldest segments that `policy` says to drop (Kafka's
    /// `retention.ms` / `retention.bytes`): a segment goes when its newest
    /// record is older than `max_age` (by this log's clock), or while the
    /// log without it still holds at least `max_bytes`. Only whole segments
    /// before the active one go; the start offset moves durably first, so a
    /// crash in the middle is finished by the next open. Readers keep the
    /// bytes they hold.
    ///
    /// # Errors
    /// I/O errors; [`Error::Closed`], [`Error::Poisoned`].
    pub fn enforce_retention(&self, policy: Retention) -> Result<RetentionReport> {
        self.inner.enforce_retention(policy)
    }

    /// Runs one compaction pass: keeps only the latest record of each key
    /// in the complete segments (Kafka's `cleanup.policy=compact`), removes
    /// tombstones older than the delete retention, and swaps the cleaned
    /// segments in atomically (see the crate docs for the crash-safe
    /// protocol). Offsets do not change; reads return the kept records with
    /// gaps between them. Appends and reads go on during the pass; the
    /// active segment is never compacted.
    ///
    /// ```
    /// use embedlog::{Compaction, Log, LogConfig, ReadLimit, Record};
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), LogConfig::default())?;
    /// log.append(&[Record::new("v1").key("a"), Record::new("v1").key("b")])?;
    /// log.append(&[Record::new("v2").key("a")])?;
    /// log.roll()?; // only complete segments are compacted
    /// let report = log.compact(Compaction::default())?;
    /// assert_eq!(report.records_removed, 1);
    /// let kept: Vec<_> = log
    ///     .read(0, ReadLimit::default())?
    ///     .records()
    ///     .map(|r| r.map(|r| r.offset))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(kept, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a key map below
    /// [`MIN_KEY_MAP_BYTES`](crate::MIN_KEY_MAP_BYTES);
    /// [`Error::Corrupt`] for a damaged segment; I/O errors (a failure
    /// while swapping poisons the log: reopening finishes the swap);
    /// [`Error::Closed`], [`Error::Poisoned`].
    pub fn compact(&self, options: Compaction) -> Result<CompactionReport> {
        self.inner.compact(&options)
    }

    /// As [`compact`](Self::compact), but only if the dirty ratio, checked
    /// atomically with the pass, is above 0 and at least `min_ratio`;
    /// `Ok(None)` when it is not (the background cleaner's entry point).
    pub(crate) fn compact_if_dirty(
        &self,
        options: Compaction,
        min_ratio: f64,
    ) -> Result<Option<CompactionReport>> {
        self.inner.compact_if_dirty(&options, Some(min_ratio))
    }

    /// The share of the complete segments' bytes that compaction has not
    /// cleaned yet, from 0 to 1 (Kafka's dirty ratio, compared with
    /// `min.cleanable.dirty.ratio`).
    pub fn dirty_ratio(&self) -> f64 {
        self.inner.dirty_ratio()
    }

    /// Every offset below this one has been compacted (0 if compaction
    /// never ran).
    pub fn cleaned_to(&self) -> Offset {
        self.inner.cleaned_to.load(Ordering::SeqCst)
    }

    /// Reads every batch of every segment and checks its header, order,
    /// CRC-32C and records.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the first bad batch.
    pub fn verify(&self) -> Result<VerifyReport> {
        let segs = self.inner.snapshot();
        let mut report = VerifyReport {
            segments: segs.len(),
            records: 0,
            bytes: 0,
        };
        for s in segs.iter() {
            report.records += s.verify()?;
            report.bytes += s.size();
        }
        Ok(report)
    }

    /// Flushes everything, records a clean shutdown (so the next open scans
    /// nothing) and releases the directory.
    ///
    /// # Errors
    /// I/O errors flushing; then the next open recovers as after a crash.
    pub fn close(mut self) -> Result<()> {
        // The flusher goes first: its fsync must not overlap the
        // clean-shutdown record.
        self.stop_flusher();
        self.inner.shutdown()
    }

    /// Drops the log as a crash would: no flush, no clean-shutdown record.
    /// Data already appended stays in the operating system, as after a
    /// `kill -9`. For crash tests.
    #[doc(hidden)]
    pub fn simulate_crash(mut self) {
        self.inner.abandoned.store(true, Ordering::SeqCst);
        self.inner.closed.store(true, Ordering::SeqCst);
        self.stop_flusher();
        self.inner.lock.lock().take();
    }

    fn stop_flusher(&mut self) {
        if let Some(h) = self.flusher.take() {
            *self.inner.stop.lock() = true;
            self.inner.stop_cv.notify_all();
            let _ = h.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Best effort: a failure here leaves an unclean shutdown, which the
        // next open recovers from.
        self.stop_flusher();
        let _ = self.inner.shutdown();
    }
}

/// Finishes the swaps of cleaned segments that a crash interrupted (each
/// `.swap` file replaces the segments its offsets cover) and removes
/// half-written `.cleaned` files.
fn finish_interrupted_compaction(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let names = vfs.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut changed = false;
    for n in &names {
        let p = dir.join(n);
        if n.ends_with(CLEANED_SUFFIX) {
            segment::remove_file_if_exists(vfs, &p)?;
            changed = true;
            continue;
        }
        let Some(base) = n
            .strip_suffix(SWAP_SUFFIX)
            .and_then(segment::parse_log_file_name)
        else {
            continue;
        };
        // The swap file was fsync'd whole before it got this name: any
        // damage is corruption. It is up to a segment long: scanned through
        // a memory map (as segments are read), never read into memory.
        let end = {
            let file = vfs.open(&p).map_err(|e| Error::io("open", &p, e))?;
            let len = file.len().map_err(|e| Error::io("stat", &p, e))?;
            let bytes = file.map(len).map_err(|e| Error::io("map", &p, e))?;
            segment::scan(&bytes, 0, base, base, true, |_, _| Ok(()))?
        };
        if let Some(e) = end.invalid {
            return Err(e.in_file(&p, 0));
        }
        let covered: Vec<Offset> = names
            .iter()
            .filter_map(|m| segment::parse_log_file_name(m))
            .filter(|&b| b >= base && b < end.next_offset.max(base + 1))
            .collect();
        compact::finish_swap(
            vfs,
            base,
            covered.into_iter(),
            &p,
            &Segment::log_path(dir, base),
        )?;
        changed = true;
    }
    if changed {
        vfs.sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}

/// Deletes the files of the segments with these bases, newest first, and
/// makes that durable.
fn remove_segments(vfs: &dyn Vfs, dir: &Path, bases: &[Offset]) -> Result<()> {
    for &b in bases.iter().rev() {
        segment::remove_files(vfs, &Segment::log_path(dir, b))?;
    }
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
}

impl Inner {
    fn open(vfs: Arc<dyn Vfs>, dir: &Path, config: LogConfig) -> Result<Inner> {
        vfs.create_dir_all(dir)
            .map_err(|e| Error::io("create directory", dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = vfs
            .create(&lock_path)
            .map_err(|e| Error::io("create", &lock_path, e))?;
        if !lock
            .try_lock()
            .map_err(|e| Error::io("lock", &lock_path, e))?
        {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
            });
        }
        let limits = config.limits();
        let now = config.clock.now_ms();
        finish_interrupted_compaction(&*vfs, dir)?;
        let names = vfs.list(dir).map_err(|e| Error::io("list", dir, e))?;
        let mut bases: Vec<Offset> = names
            .iter()
            .filter_map(|n| segment::parse_log_file_name(n))
            .collect();
        bases.sort_unstable();
        // Leftovers of interrupted atomic writes and truncations, and
        // indexes without their log, are removed.
        for n in &names {
            let orphan_index = [".index", ".timeindex"].iter().any(|ext| {
                n.strip_suffix(ext)
                    .and_then(|stem| segment::parse_log_file_name(&format!("{stem}.log")))
                    .is_some_and(|b| bases.binary_search(&b).is_err())
            });
            if n.ends_with(".tmp") || n.ends_with(TRUNCATING_SUFFIX) || orphan_index {
                let p = dir.join(n);
                vfs.remove_file(&p)
                    .map_err(|e| Error::io("remove", &p, e))?;
            }
        }
        let cp = Checkpoint::load(&*vfs, dir)?;
        let had_checkpoint = cp.is_some();
        let cp = cp.unwrap_or_default();

        let mut segments: Vec<Arc<Segment>> = Vec::new();
        let mut state = None;
        let mut recovered = false;
        if bases.is_empty() {
            let s = Segment::create(&*vfs, dir, cp.log_start, &limits, now)?;
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
            segments.push(Arc::new(s));
        } else {
            let last = *bases.last().unwrap_or(&0);
            let last_len = vfs
                .open(&Segment::log_path(dir, last))
                .and_then(|f| f.len())
                .map_err(|e| Error::io("stat", &Segment::log_path(dir, last), e))?;
            let clean = cp
                .clean
                .filter(|c| c.active_base == last && c.active_len == last_len);
            let mut attempt_clean = clean.is_some();
            loop {
                match Self::load_segments(&*vfs, dir, &mut bases, &cp, &limits, attempt_clean, now)?
                {
                    (segs, st, next)
                        if !attempt_clean || clean.is_some_and(|c| c.next_offset == next) =>
                    {
                        segments = segs;
                        state = Some(st);
                        recovered = !attempt_clean;
                        break;
                    }
                    // The clean-shutdown record does not match the files:
                    // recover as after a crash.
                    _ => attempt_clean = false,
                }
            }
        }
        let last = segments.last().cloned().ok_or(Error::Closed)?;
        let mut next_offset = last.next_offset();
        let first_base = segments.first().map_or(0, |s| s.base);
        let mut log_start = if had_checkpoint {
            cp.log_start.max(first_base)
        } else {
            first_base
        };
        if log_start > next_offset {
            // Everything readable was lost with an unsynced tail, or deleted:
            // start afresh at the log start offset.
            for s in &segments {
                s.delete_files(&*vfs)?;
            }
            let s = Segment::create(&*vfs, dir, log_start, &limits, now)?;
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
            segments = vec![Arc::new(s)];
            state = None;
            next_offset = log_start;
            recovered = true;
        }
        // Finish a deletion of segments below the log start that a crash
        // interrupted.
        let keep_from = segments
            .windows(2)
            .take_while(|w| w[1].base <= log_start)
            .count();
        if keep_from > 0 {
            for s in segments.drain(..keep_from) {
                s.delete_files(&*vfs)?;
            }
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
        log_start = log_start.max(segments.first().map_or(0, |s| s.base).min(next_offset));
        if recovered {
            for s in &segments {
                s.sync_all()?;
            }
            vfs.sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
        // Complete segments need no descriptors: their bytes are mapped.
        if let Some((_, complete)) = segments.split_last() {
            for s in complete {
                s.release_handles();
            }
        }
        let default_sync = config.durability == Durability::Sync;
        let inner = Inner {
            dir: dir.to_path_buf(),
            clock: config.clock.clone(),
            vfs,
            lock: Mutex::new(Some(lock)),
            segments: RwLock::new(Arc::new(segments)),
            writer: Mutex::new(Writer {
                config,
                limits,
                buf: Vec::new(),
                state: state.unwrap_or_else(IndexState::fresh),
                unflushed: Vec::new(),
                unflushed_records: 0,
            }),
            next_offset: AtomicU64::new(next_offset),
            log_start: AtomicU64::new(log_start),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(String::new()),
            truncations: AtomicU64::new(0),
            sync: Mutex::new(SyncState {
                synced: next_offset,
                in_progress: false,
                waiting: 0,
            }),
            leader_cv: Condvar::new(),
            sync_appenders: AtomicUsize::new(0),
            default_sync: AtomicBool::new(default_sync),
            sync_cv: Condvar::new(),
            checkpoint: Mutex::new(()),
            rewrite: Mutex::new(()),
            cleaned_to: AtomicU64::new(cp.cleaned_to.min(next_offset)),
            stopping: AtomicBool::new(false),
            checkpoint_clean: AtomicBool::new(!recovered && cp.clean.is_some()),
            checkpoint_stale: AtomicBool::new(false),
            signal: Signal::default(),
            abandoned: AtomicBool::new(false),
            watchers: RwLock::new(Vec::new()),
            closed: AtomicBool::new(false),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
        };
        if !inner.checkpoint_clean.load(Ordering::Relaxed) {
            inner.store_checkpoint(None)?;
        }
        Ok(inner)
    }

    /// Loads every segment: trusting all of them (`clean`), or recovering
    /// from the one holding the recovery point on. Cuts the log after a
    /// torn segment. Returns the segments, the writer's state for the last
    /// one, and the end offset.
    #[allow(clippy::type_complexity)]
    fn load_segments(
        vfs: &dyn Vfs,
        dir: &Path,
        bases: &mut Vec<Offset>,
        cp: &Checkpoint,
        limits: &Limits,
        clean: bool,
        now: i64,
    ) -> Result<(Vec<Arc<Segment>>, IndexState, Offset)> {
        let rp = cp.recovery_point;
        let recover_from = if clean {
            bases.len()
        } else {
            bases.partition_point(|&b| b <= rp).saturating_sub(1)
        };
        let mut segs: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
        let mut state = IndexState::fresh();
        let mut i = 0;
        while i < bases.len() {
            let base = bases[i];
            let active = i + 1 == bases.len();
            let mode = if i >= recover_from {
                Mode::Recover { recovery_point: rp }
            } else {
                Mode::Trust(cp.segments.iter().find(|s| s.base == base))
            };
            if let Some(prev) = segs.last() {
                let end = prev.next_offset();
                if end > base {
                    return Err(Error::corrupt(
                        prev.path(),
                        prev.size(),
                        format!(
                            "segment ends at offset {end} but the next segment starts at {base}"
                        ),
                    ));
                }
                if end < base {
                    if i < recover_from || end < rp {
                        return Err(Error::corrupt(
                            prev.path(),
                            prev.size(),
                            format!(
                                "segment ends at offset {end} but the next one starts at {base}, and offsets \
                                 below the recovery point {rp} were fsync'd"
                            ),
                        ));
                    }
                    // The previous segment lost its unsynced tail while a
                    // newer one kept data (power loss): everything from the
                    // hole on is newer than the tear and goes; the previous
                    // segment is reloaded as the active one.
                    remove_segments(vfs, dir, &bases[i..])?;
                    bases.truncate(i);
                    segs.pop();
                    i -= 1;
                    continue;
                }
            }
            let loaded = Segment::load(vfs, dir, base, limits, active, mode, now)?;
            if loaded.truncated && !active {
                // Everything after a torn segment is newer than the tear and
                // was never fsync'd: it goes, and this segment becomes active.
                drop(loaded);
                remove_segments(vfs, dir, &bases[i + 1..])?;
                bases.truncate(i + 1);
                continue;
            }
            state = loaded.state;
            if !active {
                // A complete segment needs no descriptors once durable:
                // give them back now, or opening a log of thousands of
                // segments would run out of them.
                if i >= recover_from {
                    loaded.segment.sync_all()?;
                }
                loaded.segment.release_handles();
            }
            segs.push(Arc::new(loaded.segment));
            i += 1;
        }
        let next = segs.last().map_or(0, |s| s.next_offset());
        Ok((segs, state, next))
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    fn active(&self) -> Arc<Segment> {
        // The list is never empty: open creates a segment and nothing
        // removes the last one without adding a replacement first.
        let segs = self.segments.read();
        segs[segs.len() - 1].clone()
    }

    fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
                reason: self.poison_reason.lock().clone(),
            });
        }
        Ok(())
    }

    fn poison(&self, e: &Error) {
        let mut r = self.poison_reason.lock();
        if !self.poisoned.swap(true, Ordering::SeqCst) {
            *r = e.to_string();
        }
    }

    fn lock_writer(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
        self.check_writable()?;
        let w = self.writer.lock();
        self.check_writable()?;
        Ok(w)
    }

    /// Clears the clean-shutdown record before the first change.
    fn mark_dirty(&self) -> Result<()> {
        if self.checkpoint_clean.load(Ordering::Acquire) {
            self.store_checkpoint(None)?;
        }
        Ok(())
    }

    fn store_checkpoint(&self, clean: Option<CleanShutdown>) -> Result<()> {
        let _g = self.checkpoint.lock();
        if self.abandoned.load(Ordering::SeqCst) {
            // The directory may belong to someone else now (a re-created
            // topic): write nothing there.
            return Err(Error::Closed);
        }
        let recovery_point = self.sync.lock().synced;
        let segs = self.snapshot();
        let n = segs.len();
        let segments = segs
            .iter()
            .enumerate()
            .filter(|(i, s)| (i + 1 < n || clean.is_some()) && s.next_offset() <= recovery_point)
            .map(|(_, s)| s.summary())
            .collect();
        let cp = Checkpoint {
            log_start: self.log_start.load(Ordering::Acquire),
            recovery_point,
            clean,
            cleaned_to: self.cleaned_to.load(Ordering::SeqCst),
            segments,
        };
        cp.store(&*self.vfs, &self.dir)?;
        self.checkpoint_clean
            .store(clean.is_some(), Ordering::Release);
        Ok(())
    }

    fn append_records(
        &self,
        records: &[Record],
        durability: Option<Durability>,
    ) -> Result<AppendInfo> {
        self.append_records_in_epoch(
            records,
            durability,
            BatchParams::default().partition_leader_epoch,
        )
    }

    /// Appends `records` as one batch stamped with a partition leader
    /// epoch.
    pub(crate) fn append_records_in_epoch(
        &self,
        records: &[Record],
        durability: Option<Durability>,
        epoch: i32,
    ) -> Result<AppendInfo> {
        let _sync = self.sync_appender(durability);
        let mut w = self.lock_writer()?;
        let base = self.next_offset.load(Ordering::Relaxed);
        let mut buf = std::mem::take(&mut w.buf);
        let params = BatchParams {
            base_offset: base as i64,
            partition_leader_epoch: epoch,
            ..BatchParams::default()
        };
        let r = encode_batch(&mut buf, &params, records)
            .and_then(|_| self.append_locked(&mut w, &mut buf, false));
        w.buf = buf;
        self.finish_append(w, r, durability)
    }

    fn append_encoded(
        &self,
        batch: &mut [u8],
        durability: Durability,
        check_records: bool,
    ) -> Result<AppendInfo> {
        let h = BatchHeader::parse(batch).map_err(|e| e.in_memory(0))?;
        if h.size() != batch.len() {
            return Err(Error::InvalidBatch {
                position: 8,
                reason: format!(
                    "length field says {} bytes, buffer has {}",
                    h.size(),
                    batch.len()
                ),
            });
        }
        if !crate::record::crc_matches(batch) {
            return Err(Error::InvalidBatch {
                position: 17,
                reason: "CRC-32C mismatch".into(),
            });
        }
        if h.compression() != crate::record::Compression::None {
            return Err(Error::Unsupported("compressed record batches".into()));
        }
        if check_records {
            crate::record::validate_records(batch, &h).map_err(|e| e.in_memory(0))?;
        }
        let _sync = self.sync_appender(Some(durability));
        let mut w = self.lock_writer()?;
        // The base offset is outside the CRC, so assigning it needs no
        // re-checksum (Kafka's design).
        let base = self.next_offset.load(Ordering::Relaxed);
        batch[0..8].copy_from_slice(&(base as i64).to_be_bytes());
        let r = self.append_locked(&mut w, batch, false);
        self.finish_append(w, r, Some(durability))
    }

    /// Appends a replicated batch byte for byte: it must be one whole,
    /// valid batch starting exactly at the log end offset. Nothing in it
    /// changes (not even a log-append time).
    pub(crate) fn append_exact(
        &self,
        batch: &mut [u8],
        durability: Durability,
    ) -> Result<AppendInfo> {
        let h = BatchHeader::parse(batch).map_err(|e| e.in_memory(0))?;
        if h.size() != batch.len() || !crate::record::crc_matches(batch) {
            return Err(Error::InvalidBatch {
                position: 0,
                reason: "a replicated batch must be whole and pass its CRC".into(),
            });
        }
        if h.compression() != crate::record::Compression::None {
            return Err(Error::Unsupported("compressed record batches".into()));
        }
        crate::record::validate_records(batch, &h).map_err(|e| e.in_memory(0))?;
        let _sync = self.sync_appender(Some(durability));
        let mut w = self.lock_writer()?;
        let end = self.next_offset.load(Ordering::Relaxed);
        if h.first_offset() != end {
            return Err(Error::InvalidArgument(format!(
                "replicated batch starts at offset {} but the log ends at {end}",
                h.first_offset()
            )));
        }
        let r = self.append_locked(&mut w, batch, true);
        self.finish_append(w, r, Some(durability))
    }

    /// Writes one encoded batch (its base offset already the log end).
    /// `replicated`: a copy of a leader's batch, kept byte for byte and
    /// accepted whatever this log's batch size limit.
    fn append_locked(
        &self,
        w: &mut Writer,
        batch: &mut [u8],
        replicated: bool,
    ) -> Result<AppendInfo> {
        let stamp_time = !replicated;
        if !replicated && batch.len() > w.config.max_batch_bytes {
            return Err(Error::BatchTooLarge {
                size: batch.len(),
                max: w.config.max_batch_bytes,
            });
        }
        let now = self.clock.now_ms();
        if stamp_time && w.config.timestamp_type == TimestampType::LogAppendTime {
            set_log_append_time(batch, now);
        }
        let h = BatchHeader::parse(batch).map_err(|e| e.in_memory(0))?;
        self.mark_dirty()?;
        let mut active = self.active();
        let aged = w
            .config
            .segment_ms
            .is_some_and(|ms| active.size() > 0 && now.saturating_sub(active.roll_basis()) >= ms);
        if aged || !active.fits(batch.len() as u64, h.last_offset(), &w.limits) {
            if active.size() == 0 {
                // Empty but too small (the limits grew since it was made):
                // make it again at the current size. Nobody can hold bytes
                // of an empty segment.
                self.recreate_empty_active(w, now)?;
            } else {
                self.roll_locked(w)?;
            }
            active = self.active();
        }
        let limits = w.limits;
        if let Err(e) = active.append(batch, &h, &mut w.state, &limits, now) {
            // Bytes past the published end may have been written; cut them,
            // durably, so that neither a clean close nor a power loss brings
            // back a batch whose append failed. If that fails too, the
            // file's state is unknown.
            if let Err(e2) = active.trim_log().and_then(|()| active.sync_log()) {
                self.poison(&e2);
            }
            return Err(e);
        }
        self.next_offset
            .store(h.last_offset() + 1, Ordering::SeqCst);
        w.unflushed_records += h.record_count as u64;
        Ok(AppendInfo {
            base_offset: h.first_offset(),
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
        })
    }

    fn finish_append(
        &self,
        w: parking_lot::MutexGuard<'_, Writer>,
        r: Result<AppendInfo>,
        durability: Option<Durability>,
    ) -> Result<AppendInfo> {
        let flush_due = w
            .config
            .flush_messages
            .is_some_and(|n| w.unflushed_records >= n);
        let durability = durability.unwrap_or(w.config.durability);
        drop(w);
        let info = r?;
        self.wake_all();
        if durability == Durability::Sync || flush_due {
            self.sync_to(info.last_offset + 1)?;
        }
        Ok(info)
    }

    /// Counts a sync append in flight (for group commit) until dropped.
    fn sync_appender(&self, durability: Option<Durability>) -> Option<SyncAppender<'_>> {
        let sync = durability.map_or_else(
            || self.default_sync.load(Ordering::Relaxed),
            |d| d == Durability::Sync,
        );
        sync.then(|| {
            self.sync_appenders.fetch_add(1, Ordering::SeqCst);
            SyncAppender(&self.sync_appenders)
        })
    }

    /// Wakes readers waiting for data (and on close).
    fn wake_all(&self) {
        self.signal.notify();
        for n in self.watchers.read().iter() {
            n.notify();
        }
    }

    fn recreate_empty_active(&self, w: &mut Writer, now: i64) -> Result<()> {
        let old = self.active();
        let new = Arc::new(Segment::create(
            &*self.vfs, &self.dir, old.base, &w.limits, now,
        )?);
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        let mut segs = self.segments.write();
        let mut list: Vec<_> = segs.iter().cloned().collect();
        if let Some(last) = list.last_mut() {
            *last = new;
        }
        *segs = Arc::new(list);
        w.state = IndexState::fresh();
        Ok(())
    }

    fn roll_locked(&self, w: &mut Writer) -> Result<()> {
        let old = self.active();
        if old.size() == 0 {
            return Ok(());
        }
        let base = self.next_offset.load(Ordering::Relaxed);
        let now = self.clock.now_ms();
        let created =
            Segment::create(&*self.vfs, &self.dir, base, &w.limits, now).and_then(|new| {
                self.vfs
                    .sync_dir(&self.dir)
                    .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
                old.finish_indexes(&mut w.state)?;
                Ok(new)
            });
        let new = match created {
            Ok(new) => Arc::new(new),
            Err(e) => {
                // The old segment stays active: the new one's files must not
                // outlive this failure, or the next open would find a
                // segment starting inside the old one.
                if let Err(e2) = remove_segments(&*self.vfs, &self.dir, &[base]) {
                    self.poison(&e2);
                }
                return Err(e);
            }
        };
        {
            let mut segs = self.segments.write();
            let mut list: Vec<_> = segs.iter().cloned().collect();
            list.push(new);
            *segs = Arc::new(list);
        }
        w.state = IndexState::fresh();
        w.unflushed.push(old);
        // Rolled segments keep their descriptors until fsync'd (an fsync on
        // a fresh descriptor may miss an earlier writeback error). Bound how
        // many wait, so a buffered log without a flush policy does not
        // accumulate descriptors: the oldest is fsync'd here.
        while w.unflushed.len() > MAX_UNFLUSHED_ROLLED {
            let oldest = w.unflushed.remove(0);
            if let Err(e) = oldest.sync_all() {
                self.poison(&e);
                return Err(e);
            }
            oldest.release_handles();
        }
        Ok(())
    }

    /// Group commit: returns once every offset below `target` is fsync'd.
    /// The first caller to find no fsync running does one for everybody;
    /// the others wait for it.
    fn sync_to(&self, target: Offset) -> Result<()> {
        let mut st = self.sync.lock();
        loop {
            if self.abandoned.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            // A truncation may have removed offsets below `target`: what is
            // gone needs no fsync (and waiting for it would never end).
            let target = target.min(self.next_offset.load(Ordering::SeqCst));
            if self.poisoned.load(Ordering::SeqCst) {
                drop(st);
                self.check_writable()?;
                return Err(Error::Closed);
            }
            if st.synced >= target {
                return Ok(());
            }
            if st.in_progress {
                st.waiting += 1;
                self.leader_cv.notify_one();
                self.sync_cv.wait(&mut st);
                st.waiting -= 1;
                continue;
            }
            st.in_progress = true;
            // Group commit: other sync appenders that are writing right now
            // are about to wait for an fsync; give them a moment to join
            // this one rather than start the next (as PostgreSQL's
            // commit_delay does). Never longer than COMMIT_DELAY; no wait
            // at all for a lone appender.
            let deadline = Instant::now() + COMMIT_DELAY;
            while self.sync_appenders.load(Ordering::SeqCst) > st.waiting + 1 {
                if self.leader_cv.wait_until(&mut st, deadline).timed_out() {
                    break;
                }
            }
            drop(st);
            let r = self.flush_once();
            st = self.sync.lock();
            st.in_progress = false;
            match r {
                Ok((upto, epoch)) => {
                    st.advance(upto, epoch, self.truncations.load(Ordering::SeqCst))
                }
                Err(e) => {
                    self.poison(&e);
                    self.sync_cv.notify_all();
                    return Err(e);
                }
            }
            self.sync_cv.notify_all();
            if self.checkpoint_stale.swap(false, Ordering::SeqCst) {
                drop(st);
                self.try_checkpoint();
                st = self.sync.lock();
            }
        }
    }

    /// fsyncs the rolled segments and the active one; returns the offset
    /// everything below which is now durable.
    fn flush_once(&self) -> Result<(Offset, u64)> {
        let (end, epoch, active, rolled) = {
            let mut w = self.writer.lock();
            w.unflushed_records = 0;
            (
                self.next_offset.load(Ordering::SeqCst),
                self.truncations.load(Ordering::SeqCst),
                self.active(),
                std::mem::take(&mut w.unflushed),
            )
        };
        for s in &rolled {
            s.sync_all()?;
            s.release_handles();
        }
        active.sync_log()?;
        if !rolled.is_empty() {
            // The recovery point moved past whole segments: record it so a
            // crash does not rescan them. Done after `synced` is updated.
            self.checkpoint_stale.store(true, Ordering::SeqCst);
        }
        Ok((end, epoch))
    }

    fn try_checkpoint(&self) {
        if self.store_checkpoint(None).is_err() {
            // The old checkpoint stays valid (an older recovery point only
            // means more to scan after a crash); retry at the next flush.
            self.checkpoint_stale.store(true, Ordering::SeqCst);
        }
    }

    fn flush_loop(&self, every: Duration) {
        let mut stop = self.stop.lock();
        loop {
            if *stop {
                return;
            }
            let _ = self.stop_cv.wait_for(&mut stop, every);
            if *stop || self.closed.load(Ordering::SeqCst) {
                return;
            }
            let end = self.next_offset.load(Ordering::SeqCst);
            if self.sync.lock().synced < end {
                parking_lot::MutexGuard::unlocked(&mut stop, || {
                    // A failure poisons the log (appenders see it); say so
                    // now, since nobody may append for a while.
                    if let Err(e) = self.sync_to(end) {
                        tracing::error!(
                            path = %self.dir.display(),
                            error = %e,
                            "background fsync (flush.ms) failed; the log refuses writes until reopened"
                        );
                    }
                });
            }
        }
    }

    fn read(&self, from: Offset, limit: ReadLimit) -> Result<Batches> {
        self.read_below(from, Offset::MAX, limit)
    }

    /// As `read`, but nothing at or past `bound` (a high watermark; a
    /// batch boundary).
    pub(crate) fn read_below(
        &self,
        from: Offset,
        bound: Offset,
        limit: ReadLimit,
    ) -> Result<Batches> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        // Order matters: the end before the segment list (a roll after it
        // only hides new data), the start after it (deletion moves the start
        // before it removes segments, so a missing segment is caught here).
        let log_end = self.next_offset.load(Ordering::SeqCst);
        let segs = self.snapshot();
        let start = self.log_start.load(Ordering::SeqCst);
        if from < start || from > log_end {
            return Err(Error::OffsetOutOfRange {
                requested: from,
                start,
                end: log_end,
            });
        }
        // At or past the bound there is nothing to return, not even the
        // rest of a batch that straddles `from`.
        if from >= bound {
            return Ok(Batches::empty());
        }
        let end = log_end.min(bound);
        let first = segs.partition_point(|s| s.base <= from).saturating_sub(1);
        for s in &segs[first..] {
            if s.base >= end {
                break;
            }
            if let Some(b) = s.read(from, end, limit.max_bytes, limit.max_records)? {
                return Ok(b);
            }
        }
        Ok(Batches::empty())
    }

    fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let end = self.next_offset.load(Ordering::SeqCst);
        let segs = self.snapshot();
        let start = self.log_start.load(Ordering::SeqCst);
        for s in segs.iter() {
            if s.next_offset() <= start {
                continue;
            }
            if let Some(o) = s.offset_for_timestamp(timestamp, start, end)? {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }

    fn truncate_to(&self, offset: Offset) -> Result<Offset> {
        let _rewrite = self.rewrite.lock();
        let mut w = self.lock_writer()?;
        let end = self.next_offset.load(Ordering::SeqCst);
        let start = self.log_start.load(Ordering::SeqCst);
        if offset >= end {
            return Ok(end);
        }
        if offset < start {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        self.mark_dirty()?;
        let r = self.truncate_locked(&mut w, offset);
        if let Err(e) = &r {
            // Files may be half rewritten: only a reopen can tell.
            self.poison(e);
        }
        drop(w);
        self.wake_all();
        r
    }

    fn truncate_locked(&self, w: &mut Writer, offset: Offset) -> Result<Offset> {
        // Any fsync now in progress may miss the files replaced below.
        self.truncations.fetch_add(1, Ordering::SeqCst);
        let vfs = &*self.vfs;
        let segs = self.snapshot();
        // Segments wholly at or after `offset` go, newest first, so a crash
        // leaves a prefix of the log.
        let keep = segs.partition_point(|s| s.base < offset).max(1);
        for s in segs[keep..].iter().rev() {
            s.delete_files(vfs)?;
        }
        if keep < segs.len() {
            vfs.sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        }
        let seg = &segs[keep - 1];
        let (pos, new_end) = seg.truncation_point(offset)?;
        // Rewrite the segment's prefix into a new file and rename it over
        // the old one: readers mapping the old file keep their bytes.
        let path = seg.path().to_path_buf();
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(TRUNCATING_SUFFIX);
        let tmp = path.with_file_name(tmp_name);
        let f = vfs.create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_at(seg.bytes(pos), 0)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
        drop(f);
        segment::remove_indexes(vfs, &path)?;
        vfs.rename(&tmp, &path)
            .map_err(|e| Error::io("rename", &path, e))?;
        vfs.sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        let now = self.clock.now_ms();
        let loaded = Segment::load(
            vfs,
            &self.dir,
            seg.base,
            &w.limits,
            true,
            Mode::Recover { recovery_point: 0 },
            now,
        )?;
        loaded.segment.sync_all()?;
        let new_seg = Arc::new(loaded.segment);
        {
            let mut list = self.segments.write();
            let mut v: Vec<_> = segs[..keep - 1].to_vec();
            v.push(new_seg);
            *list = Arc::new(v);
        }
        w.state = loaded.state;
        w.unflushed.retain(|s| s.base < seg.base);
        // Truncating into the batch that straddles the start offset leaves
        // nothing readable: the start follows the end down.
        self.log_start.fetch_min(new_end, Ordering::SeqCst);
        self.next_offset.store(new_end, Ordering::SeqCst);
        self.cleaned_to.fetch_min(new_end, Ordering::SeqCst);
        {
            let mut st = self.sync.lock();
            st.synced = st.synced.min(new_end);
        }
        self.store_checkpoint(None)?;
        Ok(new_end)
    }

    fn delete_records_before(&self, offset: Offset) -> Result<()> {
        let _rewrite = self.rewrite.lock();
        let w = self.lock_writer()?;
        self.delete_before_locked(w, offset)
    }

    /// Deletes the oldest complete segments that `policy` rules out: a
    /// prefix of segments, never the active one.
    fn enforce_retention(&self, policy: Retention) -> Result<RetentionReport> {
        let _rewrite = self.rewrite.lock();
        let w = self.lock_writer()?;
        let now = self.clock.now_ms();
        let segs = self.snapshot();
        let mut total: u64 = segs.iter().map(|s| s.size()).sum();
        let mut keep_from = 0;
        let mut freed = 0;
        for (i, s) in segs.iter().enumerate().take(segs.len().saturating_sub(1)) {
            // Kafka's rules: a segment goes when its newest record is older
            // than the retention time, or when the log without it is still
            // at least the byte budget.
            let max_ts = s.max_timestamp();
            let expired = policy.max_age_ms.is_some_and(|age| {
                max_ts != super::segment::NO_TIMESTAMP
                    && now.saturating_sub(max_ts) > i64::try_from(age).unwrap_or(i64::MAX)
            });
            let oversize = policy.max_bytes.is_some_and(|max| total - s.size() >= max);
            if !(expired || oversize) {
                break;
            }
            total -= s.size();
            freed += s.size();
            keep_from = i + 1;
        }
        if keep_from == 0 {
            return Ok(RetentionReport::default());
        }
        let offset = segs[keep_from]
            .base
            .max(self.log_start.load(Ordering::SeqCst));
        self.delete_before_locked(w, offset)?;
        Ok(RetentionReport {
            segments_deleted: keep_from,
            bytes_deleted: freed,
        })
    }

    fn delete_before_locked(
        &self,
        mut w: parking_lot::MutexGuard<'_, Writer>,
        offset: Offset,
    ) -> Result<()> {
        let end = self.next_offset.load(Ordering::SeqCst);
        let start = self.log_start.load(Ordering::SeqCst);
        if offset > end {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        if offset <= start {
            return Ok(());
        }
        self.mark_dirty()?;
        if offset == end {
            self.roll_locked(&mut w)?;
        }
        // The new start is durable before any file goes, so a crash in
        // between is finished by the next open.
        self.log_start.store(offset, Ordering::SeqCst);
        self.store_checkpoint(None)?;
        let segs = self.snapshot();
        let doomed = segs.windows(2).take_while(|p| p[1].base <= offset).count();
        if doomed == 0 {
            return Ok(());
        }
        {
            let mut list = self.segments.write();
            *list = Arc::new(segs[doomed..].to_vec());
        }
        w.unflushed.retain(|s| s.base >= segs[doomed].base);
        drop(w);
        for s in &segs[..doomed] {
            s.delete_files(&*self.vfs)?;
        }
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))
    }

    fn shutdown(&self) -> Result<()> {
        // A compaction pass in progress stops at its next check.
        self.stopping.store(true, Ordering::SeqCst);
        let _rewrite = self.rewrite.lock();
        // Take the group-commit slot first, so that no fsync is in flight
        // while the clean-shutdown record is written (the flusher takes the
        // writer lock inside the slot, so the slot comes before the lock).
        {
            let mut st = self.sync.lock();
            while st.in_progress {
                self.sync_cv.wait(&mut st);
            }
            st.in_progress = true;
        }
        let r = self.shutdown_in_slot();
        let mut st = self.sync.lock();
        st.in_progress = false;
        self.sync_cv.notify_all();
        drop(st);
        // Whatever happened, this handle is done with the directory.
        self.lock.lock().take();
        r
    }

    fn shutdown_in_slot(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.wake_all();
        let poisoned = || {
            self.poisoned
                .load(Ordering::SeqCst)
                .then(|| Error::Poisoned {
                    path: self.dir.clone(),
                    reason: self.poison_reason.lock().clone(),
                })
        };
        if let Some(e) = poisoned() {
            return Err(e);
        }
        let active = self.active();
        let synced = (|| {
            active.trim_log()?;
            active.finish_indexes(&mut w.state)?;
            for s in std::mem::take(&mut w.unflushed) {
                s.sync_all()?;
            }
            active.sync_all()
        })();
        if let Err(e) = synced {
            self.poison(&e);
            return Err(e);
        }
        let end = self.next_offset.load(Ordering::SeqCst);
        self.sync.lock().synced = end;
        self.store_checkpoint(Some(CleanShutdown {
            active_base: active.base,
            active_len: active.size(),
            next_offset: end,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::faulty::{FaultyFs, Op};
    use std::io;

    fn rec(i: u64) -> Record {
        Record::new(format!("value-{i}"))
            .key(format!("k{i}"))
            .timestamp(1000 + i as i64)
    }

    fn values(log: &Log, from: Offset) -> Vec<(Offset, String)> {
        let mut out = Vec::new();
        let mut at = from;
        while at < log.end_offset() {
            let b = log.read(at, ReadLimit::bytes(1 << 16)).unwrap();
            for r in b.records() {
                let r = r.unwrap();
                at = r.offset + 1;
                out.push((
                    r.offset,
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                ));
            }
        }
        out
    }

    #[test]
    fn failed_fsync_poisons_until_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::default();
        let log = Log::open_with(Arc::new(fs.clone()), dir.path(), LogConfig::default()).unwrap();
        log.append(&[rec(0)]).unwrap();
        fs.faults.fail(Op::Sync, 0, io::ErrorKind::Other, false);
        let e = log.append_with(&[rec(1)], Durability::Sync).unwrap_err();
        assert!(matches!(e, Error::Io { op: "fsync", .. }), "{e:?}");
        fs.faults.clear();
        // Even though the fault is gone, the log refuses writes and syncs.
        assert!(matches!(log.append(&[rec(2)]), Err(Error::Poisoned { .. })));
        assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));
        // Reads still work.
        assert_eq!(values(&log, 0).len(), 2);
        assert!(log.close().is_err());
        let log = Log::open_with(Arc::new(fs), dir.path(), LogConfig::default()).unwrap();
        assert_eq!(
            log.end_offset(),
            2,
            "the unsynced record is still in the OS"
        );
        log.append(&[rec(2)]).unwrap();
        log.close().unwrap();
    }

    #[test]
    fn failed_write_appends_nothing_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::default();
        let log = Log::open_with(Arc::new(fs.clone()), dir.path(), LogConfig::default()).unwrap();
        log.append(&[rec(0)]).unwrap();
        fs.faults
            .fail(Op::Write, 0, io::ErrorKind::StorageFull, false);
        let e = log.append(&[rec(1)]).unwrap_err();
        assert!(matches!(e, Error::DiskFull { .. }), "{e:?}");
        assert_eq!(log.end_offset(), 1);
        // The next append takes the offset the failed one would have had.
        assert_eq!(log.append(&[rec(2)]).unwrap().base_offset, 1);
        assert_eq!(
            values(&log, 0),
            vec![(0, "value-0".into()), (1, "value-2".into())]
        );
        log.close().unwrap();
        let log = Log::open_with(Arc::new(fs), dir.path(), LogConfig::default()).unwrap();
        assert_eq!(values(&log, 0).len(), 2);
    }

    #[test]
    fn failed_index_write_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::default();
        let config = LogConfig::default().index_interval_bytes(0);
        let log = Log::open_with(Arc::new(fs.clone()), dir.path(), config.clone()).unwrap();
        log.append(&[rec(0)]).unwrap();
        // Second write of the next append is its offset index entry.
        fs.faults.fail(Op::Write, 1, io::ErrorKind::Other, false);
        assert!(log.append(&[rec(1)]).is_err());
        assert!(fs.faults.tripped());
        fs.faults.clear();
        for i in 1..20 {
            log.append(&[rec(i)]).unwrap();
        }
        for from in 0..20 {
            assert_eq!(values(&log, from).len(), 20 - from as usize);
        }
        log.close().unwrap();
        let log = Log::open_with(Arc::new(fs), dir.path(), config).unwrap();
        assert_eq!(values(&log, 0).len(), 20);
    }

    #[test]
    fn an_fsync_that_straddles_a_truncation_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        for i in 0..10 {
            log.append(&[rec(i)]).unwrap();
        }
        // An fsync starts (records its end and epoch)...
        let (upto, epoch) = log.inner.flush_once().unwrap();
        assert_eq!(upto, 10);
        // ...a truncation replaces files meanwhile, and new records arrive.
        assert_eq!(log.truncate_to(5).unwrap(), 5);
        for i in 0..5 {
            log.append(&[rec(100 + i)]).unwrap();
        }
        let mut st = log.inner.sync.lock();
        st.advance(upto, epoch, log.inner.truncations.load(Ordering::SeqCst));
        assert!(
            st.synced <= 5,
            "the old fsync must not vouch for the new files: {}",
            st.synced
        );
        drop(st);
        log.flush().unwrap();
        assert_eq!(log.flushed_offset(), 10);
    }

    #[test]
    fn log_append_time_and_set_config() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(crate::ManualClock::new(42));
        let log = Log::open(dir.path(), LogConfig::default().clock(clock.clone())).unwrap();
        log.append(&[rec(0)]).unwrap();
        log.set_config(
            log.config()
                .timestamp_type(TimestampType::LogAppendTime)
                .segment_bytes(4096),
        )
        .unwrap();
        clock.set(77);
        let info = log.append(&[rec(1), rec(2)]).unwrap();
        assert_eq!(info.max_timestamp, 77);
        let got: Vec<_> = log
            .read(0, ReadLimit::default())
            .unwrap()
            .records()
            .map(|r| r.unwrap().timestamp)
            .collect();
        assert_eq!(got, [1000, 77, 77]);
        assert!(log.verify().is_ok(), "the CRC was recomputed");
        assert!(matches!(
            log.set_config(LogConfig::default().segment_bytes(1)),
            Err(Error::InvalidConfig(_))
        ));
        assert_eq!(log.config().get_segment_bytes(), 4096);
    }

    #[test]
    fn a_batch_larger_than_the_empty_active_segment_after_limits_grew() {
        let dir = tempfile::tempdir().unwrap();
        let small = LogConfig::default()
            .segment_bytes(4096)
            .max_batch_bytes(4096);
        let log = Log::open(dir.path(), small.clone()).unwrap();
        log.append(&[rec(0)]).unwrap();
        log.roll().unwrap(); // the new, empty active segment is mapped at 4 KiB
        log.set_config(small.max_batch_bytes(64 << 10)).unwrap();
        let big = Record::new(vec![7u8; 20_000]).timestamp(1);
        let info = log.append(std::slice::from_ref(&big)).unwrap();
        assert_eq!(info.base_offset, 1);
        let got: Vec<_> = log
            .read(1, ReadLimit::default())
            .unwrap()
            .records()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got[0].value, big.value);
        log.close().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(log.end_offset(), 2);
        log.verify().unwrap();
    }

    #[test]
    fn an_abandoned_log_writes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default().segment_bytes(200)).unwrap();
        for i in 0..10 {
            log.append(&[rec(i)]).unwrap();
        }
        log.abandon();
        let cp = dir.path().join("embedlog.checkpoint");
        let before = std::fs::read(&cp).unwrap();
        assert!(matches!(log.flush(), Err(Error::Closed)));
        assert!(matches!(log.append(&[rec(11)]), Err(Error::Closed)));
        drop(log);
        assert_eq!(
            std::fs::read(&cp).unwrap(),
            before,
            "the checkpoint was rewritten"
        );
    }

    #[test]
    fn sync_to_an_offset_a_truncation_removed_returns() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        for i in 0..10 {
            log.append(&[rec(i)]).unwrap();
        }
        log.truncate_to(5).unwrap();
        log.flush_to(10).unwrap(); // would loop forever waiting for 10
        log.inner.sync_to(10).unwrap();
    }

    #[test]
    fn group_commit_shares_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(
            Log::open(
                dir.path(),
                LogConfig::default().durability(Durability::Sync),
            )
            .unwrap(),
        );
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        log.append(&[rec(t * 1000 + i)]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(log.end_offset(), 400);
        assert_eq!(log.flushed_offset(), 400);
    }

    #[test]
    fn flush_policy_by_messages() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default().flush_messages(Some(3))).unwrap();
        log.append(&[rec(0)]).unwrap();
        log.append(&[rec(1)]).unwrap();
        assert_eq!(log.flushed_offset(), 0);
        log.append(&[rec(2)]).unwrap();
        assert_eq!(log.flushed_offset(), 3);
    }

    #[test]
    fn flush_policy_by_interval_runs_in_background() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(
            dir.path(),
            LogConfig::default().flush_interval(Some(Duration::from_millis(5))),
        )
        .unwrap();
        log.append(&[rec(0)]).unwrap();
        // Waits on the flusher's effect, not on a timing: it must get there.
        let deadline = Instant::now() + Duration::from_secs(30);
        while log.flushed_offset() < 1 {
            assert!(Instant::now() < deadline, "background flush never ran");
            std::thread::sleep(Duration::from_millis(1));
        }
        log.close().unwrap();
    }

    #[test]
    fn age_roll_uses_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(crate::ManualClock::new(0));
        let config = LogConfig::default()
            .segment_age(Some(Duration::from_secs(60)))
            .clock(clock.clone());
        let log = Log::open(dir.path(), config).unwrap();
        log.append(&[rec(0)]).unwrap();
        clock.advance(59_999);
        log.append(&[rec(1)]).unwrap();
        assert_eq!(log.segment_count(), 1);
        clock.advance(1);
        log.append(&[rec(2)]).unwrap();
        assert_eq!(log.segment_count(), 2);
        assert_eq!(values(&log, 0).len(), 3);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        for c in [
            LogConfig::default().segment_bytes(10),
            LogConfig::default().segment_bytes(1 << 31),
            LogConfig::default().max_batch_bytes(0),
            LogConfig::default().flush_messages(Some(0)),
            LogConfig::default().flush_interval(Some(Duration::ZERO)),
        ] {
            assert!(matches!(
                Log::open(dir.path(), c),
                Err(Error::InvalidConfig(_))
            ));
        }
    }
}

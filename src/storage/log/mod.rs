//! A partition's log: an ordered list of segments, one writer, many readers.
//!
//! # Files of this module
//!
//! - `mod.rs`: the public [`Log`] type (thin methods over `Inner`), the
//!   shared state (`Inner`, `Writer`) and its small helpers (segment list
//!   snapshot, poisoning, the writer lock, checkpoints).
//! - `config.rs`: [`LogConfig`], [`Durability`], [`ReadLimit`],
//!   [`Retention`] and the reports.
//! - `notify.rs`: waking readers: the log's own signal and [`Notify`].
//! - `recover.rs`: opening a log: finishing interrupted compactions,
//!   loading and recovering segments.
//! - `append.rs`: the append path and segment rolls.
//! - `group_commit.rs`: fsyncs: the group-commit slot, `flush.messages`
//!   and the background flusher.
//! - `read.rs`: reads and lookups by timestamp.
//! - `truncate.rs`: truncation, deletion before an offset, retention.
//! - `shutdown.rs`: the clean close.
//! - `../compact.rs`: compaction (a child of this module: it works on
//!   `Inner`).

use super::checkpoint::{Checkpoint, CleanShutdown};
use super::dirlock::DirLock;
use super::segment::{self, IndexState, Limits, Segment};
use super::vfs::{RealFs, Vfs};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::record::{Batches, Offset, ToRecord};
use crate::worker::Worker;
use parking_lot::{Condvar, Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

#[path = "../compact.rs"]
pub(crate) mod compact;

mod append;
mod config;
mod group_commit;
mod notify;
mod read;
mod recover;
mod shutdown;
#[cfg(test)]
mod tests;
mod truncate;
mod txn;

use crate::storage::producer_state::AbortedTransaction;
use compact::{Compaction, CompactionReport};
pub use config::{
    AppendInfo, Durability, LogConfig, ReadLimit, Retention, RetentionReport, VerifyReport,
};
use group_commit::SyncState;
pub use notify::Notify;
use notify::Signal;
#[cfg(feature = "async")]
pub use notify::{WaitFor, WaitPast};
pub(crate) use txn::Marker;
use txn::TxnState;

const TRUNCATING_SUFFIX: &str = ".truncating";

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
    /// Producer ids, sequences and open transactions.
    txn: TxnState,
}

/// [`LogConfig::compression`] as one byte: the codec's attribute bits, or
/// `KEEP_COMPRESSION` for `None` (keep what the producer sent).
fn compression_code(c: Option<crate::record::Compression>) -> u8 {
    c.map_or(KEEP_COMPRESSION, |c| c.code() as u8)
}

/// See [`compression_code`].
const KEEP_COMPRESSION: u8 = 0xFF;

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    vfs: Arc<dyn Vfs>,
    /// The directory lock, released when the log closes.
    lock: Mutex<Option<DirLock>>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    writer: Mutex<Writer>,
    next_offset: AtomicU64,
    /// The last stable offset: the first offset of the oldest open
    /// transaction, or the end (published after `next_offset`).
    lso: AtomicU64,
    /// Aborted transactions, by marker offset (what the `.txnindex` files
    /// hold); replaced whole on change.
    aborted: RwLock<Arc<Vec<AbortedTransaction>>>,
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
    /// The configured `max_batch_bytes` (for reads, which take no lock).
    max_batch_bytes: AtomicUsize,
    /// The configured compression ([`compression_code`]), read by appends
    /// before they take the writer lock.
    compression: AtomicU8,
    /// The `topic` label of this log's metrics (a broker's partition);
    /// `""` for a log opened alone.
    metrics_topic: std::sync::OnceLock<Arc<str>>,
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
    /// How many `watchers` there are (set under its write lock): an append
    /// with none to wake reads this instead of taking the lock.
    watching: AtomicUsize,
    closed: AtomicBool,
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
    /// Fsyncs every `flush_interval`, if the config has one.
    flusher: Option<Worker>,
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
            Worker::spawn("embedlog-flush", every, move |_| inner.flush_tick())
        });
        let flusher = match flusher {
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => return Err(Error::io("spawn flush thread for", dir, e)),
            None => None,
        };
        Ok(Log { inner, flusher })
    }

    /// The last stable offset: the first offset of the oldest transaction
    /// still open in this log, or the end offset when none is. A
    /// read-committed consumer reads nothing at or past it.
    pub fn last_stable_offset(&self) -> Offset {
        self.inner
            .lso
            .load(Ordering::SeqCst)
            .min(self.inner.next_offset.load(Ordering::SeqCst))
    }

    /// The aborted transactions that may hold batches in `[from, to)`,
    /// oldest marker first (what the `.txnindex` files say): a
    /// read-committed reader skips those producers' transactional batches
    /// from each one's `first_offset` to its marker.
    pub fn aborted_transactions(&self, from: Offset, to: Offset) -> Vec<AbortedTransaction> {
        self.inner.aborted_transactions(from, to)
    }

    /// Open transactions: (producer id, epoch, first offset), oldest first.
    pub(crate) fn open_transactions(&self) -> Vec<(i64, i16, Offset)> {
        self.inner.writer.lock().txn.producers.open_transactions()
    }

    /// Appends a COMMIT or ABORT marker of a producer's transaction.
    ///
    /// # Errors
    /// [`Error::ProducerFenced`] if the producer's epoch here is newer;
    /// the append's errors.
    pub(crate) fn append_marker(
        &self,
        marker: Marker,
        durability: Durability,
    ) -> Result<AppendInfo> {
        self.inner.append_marker(marker, durability)
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
        self.inner
            .max_batch_bytes
            .store(config.max_batch_bytes, Ordering::Relaxed);
        self.inner
            .compression
            .store(compression_code(config.compression), Ordering::Relaxed);
        w.config = config;
        Ok(())
    }

    /// Names the topic this log's metrics are labelled with (once).
    pub(crate) fn set_metrics_topic(&self, topic: Arc<str>) {
        let _ = self.inner.metrics_topic.set(topic);
    }

    /// Registers `notify` to be woken after every append (and on close).
    pub fn watch(&self, notify: Arc<Notify>) {
        let mut watchers = self.inner.watchers.write();
        watchers.push(notify);
        self.inner.watching.store(watchers.len(), Ordering::SeqCst);
    }

    /// Removes a registration made with [`watch`](Self::watch).
    pub fn unwatch(&self, notify: &Arc<Notify>) {
        let mut watchers = self.inner.watchers.write();
        watchers.retain(|n| !Arc::ptr_eq(n, notify));
        self.inner.watching.store(watchers.len(), Ordering::SeqCst);
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
    pub fn append<R: ToRecord>(&self, records: &[R]) -> Result<AppendInfo> {
        self.inner.append_records(records, None)
    }

    /// Appends `records` as one batch with the given durability.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn append_with<R: ToRecord>(
        &self,
        records: &[R],
        durability: Durability,
    ) -> Result<AppendInfo> {
        self.inner.append_records(records, Some(durability))
    }

    /// Appends a batch already encoded (by [`BatchBuilder`](crate::BatchBuilder)
    /// or a Kafka client), compressed or not. Its base offset is set to the
    /// log end offset, in `batch` too; its CRC and records are checked
    /// first (a compressed batch's records may not inflate past
    /// `max_batch_bytes`, or 64 MiB if that is more). With
    /// [`LogConfig::compression`] set to another codec, the stored batch is
    /// recompressed (and `batch` keeps its own bytes but for the base
    /// offset).
    ///
    /// # Errors
    /// [`Error::InvalidBatch`] if `batch` is not exactly one valid batch,
    /// [`Error::Unsupported`] for a codec whose cargo feature is off;
    /// otherwise as [`append`](Self::append).
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
    pub(crate) fn append_in_epoch<R: ToRecord>(
        &self,
        records: &[R],
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

    /// [`wait_for`](Self::wait_for) as a future, for any executor:
    /// resolves to `true` once a record at `offset` exists, `false` if the
    /// log closes first. It is woken by the append (or the close) that the
    /// blocking call would wake on; no thread waits for it and nothing
    /// polls. Bound it with your executor's timeout; dropping it removes
    /// its waker.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use embedlog::{Log, LogConfig, Record};
    /// use std::sync::Arc;
    /// let dir = tempfile::tempdir().unwrap();
    /// let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    /// let writer = log.clone();
    /// let t = std::thread::spawn(move || writer.append(&[Record::new("a"), Record::new("b")]).map(|_| ()));
    /// assert!(pollster::block_on(log.wait_for_async(1)));
    /// t.join().unwrap().unwrap();
    /// # }
    /// ```
    #[cfg(feature = "async")]
    pub fn wait_for_async(&self, offset: Offset) -> notify::WaitFor {
        notify::WaitFor::new(self.inner.clone(), offset)
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

    /// [`flush_to`](Self::flush_to) for a future (`Producer::flush_async`):
    /// `Pending`, with `waker` registered under `key`, where `flush_to`
    /// would wait for another caller's fsync; an fsync nobody runs is run
    /// in this call. `Ready` clears `key`.
    #[cfg(feature = "async")]
    pub(crate) fn poll_flush_to(
        &self,
        offset: Offset,
        key: &mut crate::wakers::WakerKey,
        waker: &std::task::Waker,
    ) -> std::task::Poll<Result<()>> {
        self.inner
            .poll_sync_to(offset.min(self.end_offset()), key, waker)
    }

    /// Removes a waker `poll_flush_to` registered (a dropped future).
    #[cfg(feature = "async")]
    pub(crate) fn forget_flush(&self, key: &mut crate::wakers::WakerKey) {
        self.inner.forget_sync(key)
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
            report.records += s.verify(self.inner.decompression_limit())?;
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
        if let Some(w) = self.flusher.take() {
            w.stop();
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

impl Inner {
    fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    /// Replaces the segment list with the one `f` builds from the current
    /// list, under the list's write lock. Copy-on-write: readers holding a
    /// snapshot keep the old list. If `f` fails, the list stays as it is.
    fn replace_segments(
        &self,
        f: impl FnOnce(&[Arc<Segment>]) -> Result<Vec<Arc<Segment>>>,
    ) -> Result<()> {
        let mut list = self.segments.write();
        let new = f(&list)?;
        *list = Arc::new(new);
        Ok(())
    }

    fn active(&self) -> Arc<Segment> {
        // The list is never empty: open creates a segment and nothing
        // removes the last one without adding a replacement first.
        let segs = self.segments.read();
        segs[segs.len() - 1].clone()
    }

    #[inline]
    fn check_writable(&self) -> Result<()> {
        // Two loads on the append path; the error is built out of line.
        if self.closed.load(Ordering::SeqCst) || self.poisoned.load(Ordering::SeqCst) {
            return Err(self.not_writable());
        }
        Ok(())
    }

    /// Why the log refuses writes (closed or poisoned).
    #[cold]
    #[inline(never)]
    fn not_writable(&self) -> Error {
        if self.closed.load(Ordering::SeqCst) {
            return Error::Closed;
        }
        Error::Poisoned {
            path: self.dir.clone(),
            reason: self.poison_reason.lock().clone(),
        }
    }

    fn poison(&self, e: &Error) {
        let mut r = self.poison_reason.lock();
        if !self.poisoned.swap(true, Ordering::SeqCst) {
            *r = e.to_string();
            tracing::error!(
                dir = %self.dir.display(),
                error = %e,
                "log poisoned: a write or fsync failed, so what the file holds is unknown; \
                 it refuses appends until it is closed and reopened (recovery)"
            );
        }
    }

    #[inline]
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
}

//! Topics and partitions: the handles users read and write through.

use super::TopicConfig;
use crate::error::{Error, Result};
use crate::record::{Batches, Offset, ToRecord};
use crate::storage::{
    AppendInfo, Durability, Log, LogConfig, LogReader, Notify, ReadLimit, VerifyReport,
};
use parking_lot::RwLock;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

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
    pub fn append<R: ToRecord>(&self, records: &[R]) -> Result<AppendInfo> {
        self.check_writable()?;
        self.log.append(records)
    }

    /// Internal topics are written by the broker only.
    fn check_writable(&self) -> Result<()> {
        super::refuse_internal(&self.topic, super::Use::Write)
    }

    /// Appends `records` as one batch with the given durability.
    ///
    /// # Errors
    /// As [`Log::append`].
    pub fn append_with<R: ToRecord>(
        &self,
        records: &[R],
        durability: Durability,
    ) -> Result<AppendInfo> {
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

    /// A reader from `from` to the end, stepping over offset gaps (see
    /// [`Log::reader`]).
    pub fn reader(&self, from: Offset, limit: ReadLimit) -> LogReader<'_> {
        self.log.reader(from, limit)
    }

    /// The oldest readable offset.
    pub fn start_offset(&self) -> Offset {
        self.log.start_offset()
    }

    /// The offset the next record gets.
    pub fn end_offset(&self) -> Offset {
        self.log.end_offset()
    }

    /// The last stable offset: where a read-committed consumer stops (the
    /// first offset of the oldest open transaction, or the end).
    pub fn last_stable_offset(&self) -> Offset {
        self.log.last_stable_offset()
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

impl<'a> PartitionLog<'a> {
    /// A reader from `from` to the end, stepping over offset gaps (see
    /// [`Log::reader`]).
    pub fn reader(&self, from: Offset, limit: ReadLimit) -> LogReader<'a> {
        self.log.reader(from, limit)
    }

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

    /// The last stable offset: where a read-committed consumer stops (the
    /// first offset of the oldest open transaction, or the end).
    pub fn last_stable_offset(&self) -> Offset {
        self.log.last_stable_offset()
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

    /// [`wait_for`](Self::wait_for) as a future: `true` once a record at
    /// `offset` exists, `false` if the log closes first (see
    /// [`Log::wait_for_async`]).
    #[cfg(feature = "async")]
    pub fn wait_for_async(&self, offset: Offset) -> crate::storage::WaitFor {
        self.log.wait_for_async(offset)
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
    /// `partitions.len()`, readable without the lock (a producer reads it
    /// at every keyed or sticky send).
    pub(crate) partition_count: AtomicU32,
    /// Bumped after every change of `config`: a producer caches what it
    /// needs of the configuration until this moves.
    pub(crate) config_version: AtomicU64,
}

impl TopicState {
    pub(crate) fn new(name: Arc<str>, partitions: Vec<Partition>, config: TopicConfig) -> Self {
        TopicState {
            name,
            partition_count: AtomicU32::new(partitions.len() as u32),
            partitions: RwLock::new(partitions),
            config: RwLock::new(config),
            deleted: AtomicBool::new(false),
            config_version: AtomicU64::new(0),
        }
    }

    /// Adds partitions (their count becomes visible with them).
    pub(crate) fn add_partitions(&self, added: Vec<Partition>) {
        let mut parts = self.partitions.write();
        parts.extend(added);
        self.partition_count
            .store(parts.len() as u32, Ordering::Release);
    }

    /// Replaces the configuration and bumps its version.
    pub(crate) fn set_config(&self, config: TopicConfig) {
        *self.config.write() = config;
        self.config_version.fetch_add(1, Ordering::AcqRel);
    }
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
        self.state.partition_count.load(Ordering::Acquire)
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

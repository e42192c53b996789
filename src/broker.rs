//! The broker: one data directory, its lock, the topic registry and the
//! background housekeeping thread.

use crate::admin::Admin;
use crate::catalog::{Partition, Topic, TopicConfig, TopicState, validate_topic_name};
use crate::clock::{Clock, SystemClock};
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{Error, Result};
use crate::producer::{Producer, ProducerConfig};
use crate::record::Record;
use crate::storage::vfs::{RealFs, write_atomic};
use crate::storage::{Log, LogConfig};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

const LOCK_FILE: &str = ".lock";

const TOPICS_DIR: &str = "topics";
const TOPIC_CONFIG: &str = "topic.conf";
// Temporary directory names start with `~`, which topic names cannot
// contain: no topic can be mistaken for an interrupted create or delete.
const CREATING_PREFIX: &str = "~creating-";
const DELETING_PREFIX: &str = "~deleting-";

/// Opens a [`Broker`] with settings other than the defaults.
///
/// ```
/// use embedlog::Broker;
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::builder(dir.path())
///     .housekeeping_interval(Duration::from_millis(50))
///     .open()?;
/// broker.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BrokerBuilder {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    housekeeping_interval: Duration,
    retention_check_interval: Duration,
    cleaner: bool,
    cleaner_backoff: Duration,
    cleaner_key_map_bytes: usize,
}

impl BrokerBuilder {
    /// The clock for timestamps, time-based rolls and retention, and every
    /// timer of the broker: when the background thread flushes topics with
    /// a `flush_interval` and applies retention, consumers' auto-commit
    /// interval and groups' `max_poll_interval`. (The background thread
    /// still wakes every [`housekeeping_interval`](Self::housekeeping_interval)
    /// of real time to look.) Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How often the background thread checks for work (topic
    /// `flush_interval`s). Default: 100 ms.
    pub fn housekeeping_interval(mut self, every: Duration) -> Self {
        self.housekeeping_interval = every.max(Duration::from_millis(1));
        self
    }

    /// How often the background thread applies topics' retention (Kafka's
    /// `log.retention.check.interval.ms`), by the broker's
    /// [`clock`](Self::clock). Default: 30 s.
    pub fn retention_check_interval(mut self, every: Duration) -> Self {
        self.retention_check_interval = every;
        self
    }

    /// Run the background cleaner that compacts topics with
    /// [`CleanupPolicy::Compact`](crate::CleanupPolicy) (Kafka's
    /// `log.cleaner.enable`). Default: `true`. Without it, compaction
    /// happens only through [`Admin::compact_now`](crate::Admin::compact_now).
    ///
    /// A partition is compacted once its dirty ratio reaches its topic's
    /// `min.cleanable.dirty.ratio`. A failed pass is reported as a
    /// `tracing` error event (fields `topic`, `partition`, `error`,
    /// `failures`, `skip_rounds`), and the partition then sits out 1, 2,
    /// 4, … up to 64 rounds before the next attempt; a successful pass
    /// resets that.
    pub fn cleaner(mut self, enabled: bool) -> Self {
        self.cleaner = enabled;
        self
    }

    /// How long the cleaner sleeps when no partition is dirty enough
    /// (`log.cleaner.backoff.ms`). Default: 15 s.
    pub fn cleaner_backoff(mut self, every: Duration) -> Self {
        self.cleaner_backoff = every.max(Duration::from_millis(1));
        self
    }

    /// Memory for the cleaner's key map, in bytes
    /// (`log.cleaner.dedupe.buffer.size`; see
    /// [`Compaction::key_map_bytes`](crate::Compaction::key_map_bytes)).
    /// Default: 32 MiB. It bounds the cleaner's memory: one pass at a time
    /// uses it.
    pub fn cleaner_key_map_bytes(mut self, bytes: usize) -> Self {
        self.cleaner_key_map_bytes = bytes;
        self
    }

    /// Opens (or creates) the data directory.
    ///
    /// # Errors
    /// [`Error::Locked`] if another broker (in this or another process)
    /// holds it; [`Error::Metadata`] for a damaged topic configuration;
    /// whatever opening a partition's log reports.
    pub fn open(self) -> Result<Broker> {
        Broker::open_with(self)
    }
}

#[derive(Debug)]
pub(crate) struct BrokerInner {
    pub(crate) root: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    /// The directory lock, released by `close`.
    lock: Mutex<Option<File>>,
    topics: RwLock<BTreeMap<String, Topic>>,
    /// Serializes topic creation, deletion and changes.
    admin: Mutex<()>,
    closed: AtomicBool,
    stop: Arc<Stop>,
    housekeeper: Mutex<Option<(JoinHandle<()>, ThreadId)>>,
    cleaner: Mutex<Option<(JoinHandle<()>, ThreadId)>>,
    /// The key-map budget of compaction passes.
    pub(crate) key_map_bytes: usize,
    /// Consumer groups and their committed offsets.
    pub(crate) groups: crate::group::Coordinator,
    /// Bumped whenever a topic is created or deleted or gains partitions,
    /// so that groups recompute their metadata only then.
    metadata_version: std::sync::atomic::AtomicU64,
}

/// Tells the housekeeping thread to stop; shared so that the thread can wait
/// on it without keeping the broker alive.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

/// An embedded "Kafka broker": owns one data directory and its topics.
///
/// `Broker` is `Send + Sync` and cheap to clone (all clones share one
/// broker). [`close`](Self::close) flushes and closes every partition;
/// dropping the last clone (and every producer and consumer) does the same,
/// ignoring errors.
///
/// ```
/// use embedlog::{Broker, ConsumerConfig, ProducerConfig, Record, TopicConfig};
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// broker.admin().create_topic("events", TopicConfig::default().partitions(4))?;
///
/// let producer = broker.producer(ProducerConfig::default());
/// let delivery = producer.send("events", Record::new("hello").key("user-1"))?;
/// producer.flush()?;
/// let meta = delivery.wait()?;
///
/// let mut consumer = broker.consumer(ConsumerConfig::default());
/// consumer.assign(&[("events", meta.partition)])?;
/// consumer.seek_to_beginning(&[("events", meta.partition)])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
/// broker.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Broker {
    pub(crate) inner: Arc<BrokerInner>,
}

impl Broker {
    /// Opens (or creates) the broker in `root` with default settings.
    ///
    /// # Errors
    /// As [`BrokerBuilder::open`].
    pub fn open(root: impl AsRef<Path>) -> Result<Broker> {
        Self::builder(root).open()
    }

    /// A builder for a broker in `root`.
    pub fn builder(root: impl AsRef<Path>) -> BrokerBuilder {
        BrokerBuilder {
            root: root.as_ref().to_path_buf(),
            clock: Arc::new(SystemClock),
            housekeeping_interval: Duration::from_millis(100),
            retention_check_interval: Duration::from_secs(30),
            cleaner: true,
            cleaner_backoff: Duration::from_secs(15),
            cleaner_key_map_bytes: 32 << 20,
        }
    }

    fn open_with(b: BrokerBuilder) -> Result<Broker> {
        crate::Compaction::default()
            .key_map_bytes(b.cleaner_key_map_bytes)
            .check()?;
        let root = b.root;
        let topics_dir = root.join(TOPICS_DIR);
        fs::create_dir_all(&topics_dir)
            .map_err(|e| Error::io("create directory", &topics_dir, e))?;
        let lock_path = root.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("create", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: root }),
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path, e)),
        }
        let mut topics = BTreeMap::new();
        let entries = fs::read_dir(&topics_dir).map_err(|e| Error::io("list", &topics_dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &topics_dir, e))?;
            let path = entry.path();
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: not ours
            };
            if !path.is_dir() {
                continue;
            }
            if name.starts_with(CREATING_PREFIX) || name.starts_with(DELETING_PREFIX) {
                // An interrupted create or delete: neither is visible yet.
                fs::remove_dir_all(&path).map_err(|e| Error::io("remove", &path, e))?;
                continue;
            }
            if validate_topic_name(&name).is_err() {
                continue; // a foreign directory; leave it alone
            }
            names.push(name);
        }
        for name in names {
            let topic = load_topic(&topics_dir.join(&name), &name, &b.clock)?;
            topics.insert(name, topic);
        }
        let inner = Arc::new(BrokerInner {
            root,
            clock: b.clock.clone(),
            lock: Mutex::new(Some(lock)),
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            closed: AtomicBool::new(false),
            stop: Arc::new(Stop::default()),
            housekeeper: Mutex::new(None),
            cleaner: Mutex::new(None),
            key_map_bytes: b.cleaner_key_map_bytes,
            groups: crate::group::Coordinator::new(b.clock.clone()),
            metadata_version: std::sync::atomic::AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        let stop = inner.stop.clone();
        let (every, retention_every) = (b.housekeeping_interval, b.retention_check_interval);
        // Schedules start now, by the clock, not when the thread first runs.
        let (clock, started) = (inner.clock.clone(), inner.clock.now_ms());
        let handle = std::thread::Builder::new()
            .name("embedlog-housekeeping".into())
            .spawn(move || housekeeping(weak, stop, (clock, started), every, retention_every))
            .map_err(|e| Error::io("spawn housekeeping thread for", &inner.root, e))?;
        let id = handle.thread().id();
        *inner.housekeeper.lock() = Some((handle, id));
        if b.cleaner {
            let (weak, stop) = (Arc::downgrade(&inner), inner.stop.clone());
            let backoff = b.cleaner_backoff;
            let handle = std::thread::Builder::new()
                .name("embedlog-cleaner".into())
                .spawn(move || cleaner(weak, stop, backoff))
                .map_err(|e| Error::io("spawn cleaner thread for", &inner.root, e))?;
            let id = handle.thread().id();
            *inner.cleaner.lock() = Some((handle, id));
        }
        let broker = Broker { inner };
        broker.load_offsets()?;
        Ok(broker)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// The Admin API.
    pub fn admin(&self) -> Admin {
        Admin {
            broker: self.clone(),
        }
    }

    /// The topic named `name`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::Closed`].
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.check_open()?;
        self.inner
            .topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                name: name.to_string(),
            })
    }

    /// Partition `partition` of topic `topic`.
    ///
    /// # Errors
    /// As [`topic`](Self::topic) and [`Topic::partition`].
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Partition> {
        self.topic(topic)?.partition(partition)
    }

    /// A new producer.
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.clone(), config)
    }

    /// A new consumer.
    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.clone(), config)
    }

    /// Flushes and closes every partition, stops the background thread and
    /// releases the directory lock. Later calls on this broker (and its
    /// clones, producers and consumers) fail with [`Error::Closed`]; readers
    /// keep the bytes they hold.
    ///
    /// # Errors
    /// The first error closing a partition (the rest are still closed);
    /// the next open recovers them as after a crash.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(crate) fn topics_dir(&self) -> PathBuf {
        self.inner.root.join(TOPICS_DIR)
    }

    pub(crate) fn all_topics(&self) -> Vec<Topic> {
        self.inner.topics.read().values().cloned().collect()
    }

    fn bump_metadata(&self) {
        self.inner.metadata_version.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes whenever [`group_metadata`](Self::group_metadata) may have.
    pub(crate) fn metadata_version(&self) -> u64 {
        self.inner.metadata_version.load(Ordering::SeqCst)
    }

    /// Partition counts of the topics groups can subscribe to (internal
    /// topics excluded).
    pub(crate) fn group_metadata(&self) -> BTreeMap<String, u32> {
        self.inner
            .topics
            .read()
            .iter()
            .filter(|(name, _)| !is_internal(name))
            .map(|(name, t)| (name.clone(), t.partition_count()))
            .collect()
    }

    /// The internal offsets topic's configuration: one compacted partition.
    fn offsets_topic_config() -> TopicConfig {
        TopicConfig::default()
            .partitions(1)
            .segment_bytes(16 << 20)
            .cleanup_policy(crate::CleanupPolicy::Compact)
            .retention(None)
    }

    /// Creates `__consumer_offsets` if needed and reads every commit in it.
    fn load_offsets(&self) -> Result<()> {
        use crate::group::{OFFSETS_TOPIC, offsets};
        let topic = match self.topic(OFFSETS_TOPIC) {
            Ok(t) => t,
            Err(Error::UnknownTopic { .. }) => {
                self.create_topic(OFFSETS_TOPIC, Self::offsets_topic_config())?
            }
            Err(e) => return Err(e),
        };
        let p = topic.partition(0)?;
        let log = p.log();
        // Only commits are written here (Partition refuses other appends),
        // but a record the broker cannot decode (written by a bare Log, or
        // by a newer version) must not make the directory unopenable: as
        // Kafka does, it is skipped with a warning. One whose key is a
        // commit's but whose value is unreadable deletes that commit, as
        // compaction (which keeps the latest record per key) would.
        let skip = |offset: u64, reason: &str| {
            tracing::warn!(
                topic = OFFSETS_TOPIC,
                partition = 0,
                offset,
                path = %log.dir().display(),
                reason,
                "embedlog: skipping a record of the offsets topic that is not a committed offset"
            );
        };
        let mut commits: BTreeMap<String, Vec<_>> = BTreeMap::new();
        let mut at = log.start_offset();
        while at < log.end_offset() {
            let batches = log.read(at, crate::ReadLimit::bytes(1 << 20))?;
            if batches.is_empty() {
                break;
            }
            for b in batches.iter() {
                let b = b?;
                let records = match b.records() {
                    Ok(r) => r,
                    Err(e) => {
                        skip(b.base_offset(), &e.to_string());
                        at = at.max(b.last_offset() + 1);
                        continue;
                    }
                };
                for r in records {
                    let r = match r {
                        Ok(r) => r,
                        Err(e) => {
                            skip(b.base_offset(), &e.to_string());
                            break;
                        }
                    };
                    if r.offset < at {
                        continue;
                    }
                    let key = r.key.as_deref().unwrap_or_default();
                    let (group, tp) = match offsets::decode_key(key) {
                        Ok(k) => k,
                        Err(e) => {
                            skip(r.offset, &e);
                            continue;
                        }
                    };
                    let value = match r.value.as_deref().map(offsets::decode_value) {
                        None => None,
                        Some(Ok(v)) => Some(v),
                        Some(Err(e)) => {
                            skip(
                                r.offset,
                                &format!("{e}; the commit of {group} for {tp} is dropped"),
                            );
                            None
                        }
                    };
                    commits.entry(group).or_default().push((tp, value));
                }
                at = at.max(b.last_offset() + 1);
            }
        }
        for (group, c) in commits {
            self.inner.groups.load(&group, &c);
        }
        Ok(())
    }

    /// Stores commits of `group` (`None` deletes one) as `committer`: the
    /// coordinator checks that it may, appends them durably to
    /// `__consumer_offsets` and makes them visible, atomically (see
    /// [`Coordinator::commit`](crate::group::Coordinator::commit)).
    pub(crate) fn store_commits(
        &self,
        group: &str,
        committer: crate::group::Committer<'_>,
        commits: crate::group::Commits,
    ) -> Result<()> {
        use crate::group::{Commits, OFFSETS_TOPIC, offsets};
        if group.is_empty() || group.len() > crate::MAX_GROUP_ID_LEN {
            return Err(Error::InvalidArgument(format!(
                "group ids are 1 to {} bytes",
                crate::MAX_GROUP_ID_LEN
            )));
        }
        let now = self.inner.clock.now_ms();
        let commits = match commits {
            Commits::These(c) => Commits::These(
                c.into_iter()
                    .map(|(tp, c)| {
                        let c = c.map(|mut c| {
                            if c.commit_timestamp == 0 {
                                c.commit_timestamp = now;
                            }
                            c
                        });
                        (tp, c)
                    })
                    .collect(),
            ),
            all => all,
        };
        let p = self.partition(OFFSETS_TOPIC, 0)?;
        self.inner
            .groups
            .commit(group, committer, commits, |chunk| {
                let records: Vec<Record> = chunk
                    .iter()
                    .map(|(tp, c)| {
                        let key = offsets::encode_key(group, tp);
                        match c {
                            Some(c) => Record::new(offsets::encode_value(c)).key(key),
                            None => Record::tombstone(key),
                        }
                        .timestamp(now)
                    })
                    .collect();
                p.log.append_with(&records, crate::Durability::Sync)?;
                Ok(())
            })
    }

    pub(crate) fn topic_names(&self) -> Vec<String> {
        self.inner.topics.read().keys().cloned().collect()
    }

    /// Creates a topic (admin).
    pub(crate) fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        validate_topic_name(name)?;
        config.validate()?;
        let _g = self.inner.admin.lock();
        self.check_open()?;
        if self.inner.topics.read().contains_key(name) {
            return Err(Error::TopicExists {
                name: name.to_string(),
            });
        }
        let topics_dir = self.topics_dir();
        // A short temporary name: a 249-character topic name plus a prefix
        // would pass the file system's 255-byte limit.
        let tmp = topics_dir.join(format!("{CREATING_PREFIX}{}", unique_suffix()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| Error::io("remove", &tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
        for p in 0..config.partitions {
            let d = tmp.join(p.to_string());
            fs::create_dir(&d).map_err(|e| Error::io("create directory", &d, e))?;
        }
        write_atomic(&RealFs, &tmp.join(TOPIC_CONFIG), config.encode().as_bytes())?;
        let dir = topics_dir.join(name);
        fs::rename(&tmp, &dir).map_err(|e| Error::io("rename", &dir, e))?;
        sync_dir(&topics_dir)?;
        let topic = load_topic(&dir, name, &self.inner.clock)?;
        self.inner
            .topics
            .write()
            .insert(name.to_string(), topic.clone());
        self.bump_metadata();
        Ok(topic)
    }

    /// Deletes a topic (admin).
    pub(crate) fn delete_topic(&self, name: &str) -> Result<()> {
        if is_internal(name) {
            return Err(Error::InvalidArgument(format!(
                "{name} is an internal topic; delete consumer groups instead"
            )));
        }
        let _g = self.inner.admin.lock();
        self.check_open()?;
        let Some(topic) = self.inner.topics.write().remove(name) else {
            return Err(Error::UnknownTopic {
                name: name.to_string(),
            });
        };
        self.bump_metadata();
        topic.state.deleted.store(true, Ordering::SeqCst);
        for p in topic.partitions() {
            p.log.abandon();
        }
        let topics_dir = self.topics_dir();
        let dir = topics_dir.join(name);
        let doomed = topics_dir.join(format!("{DELETING_PREFIX}{}", unique_suffix()));
        // Renamed first so that a crash mid-way never leaves half a topic
        // that the next open would load.
        fs::rename(&dir, &doomed).map_err(|e| Error::io("rename", &dir, e))?;
        sync_dir(&topics_dir)?;
        fs::remove_dir_all(&doomed).map_err(|e| Error::io("remove", &doomed, e))?;
        Ok(())
    }

    /// Grows a topic to `total` partitions (admin).
    pub(crate) fn add_partitions(&self, name: &str, total: u32) -> Result<()> {
        let _g = self.inner.admin.lock();
        let topic = self.topic(name)?;
        let current = topic.partition_count();
        if total <= current {
            return Err(Error::InvalidArgument(format!(
                "topic {name:?} has {current} partitions; the new count must be larger, not {total}"
            )));
        }
        let mut config = topic.config().partitions(total);
        config.validate()?;
        let dir = self.topics_dir().join(name);
        let log_config = config.log_config(self.inner.clock.clone());
        let mut added = Vec::new();
        for p in current..total {
            let log = Log::open(dir.join(p.to_string()), log_config.clone())?;
            added.push(Partition {
                topic: topic.state.name.clone(),
                id: p,
                log: Arc::new(log),
            });
        }
        sync_dir(&dir)?;
        // The count is committed by the configuration file: a crash before
        // this leaves extra directories that the next open removes.
        write_atomic(&RealFs, &dir.join(TOPIC_CONFIG), config.encode().as_bytes())?;
        config.partitions = total;
        topic.state.partitions.write().extend(added);
        self.bump_metadata();
        *topic.state.config.write() = config;
        Ok(())
    }

    /// Replaces a topic's configuration (admin).
    pub(crate) fn alter_config(&self, name: &str, config: TopicConfig) -> Result<()> {
        config.validate()?;
        let _g = self.inner.admin.lock();
        let topic = self.topic(name)?;
        if config.partitions != topic.partition_count() {
            return Err(Error::InvalidArgument(format!(
                "alter_config cannot change the partition count ({} to {}); use add_partitions",
                topic.partition_count(),
                config.partitions
            )));
        }
        let dir = self.topics_dir().join(name);
        write_atomic(&RealFs, &dir.join(TOPIC_CONFIG), config.encode().as_bytes())?;
        let log_config = config.log_config(self.inner.clock.clone());
        for p in topic.partitions() {
            p.log.set_config(log_config.clone())?;
        }
        *topic.state.config.write() = config;
        Ok(())
    }
}

impl BrokerInner {
    fn close(&self) -> Result<()> {
        // No topic is being created, deleted or changed while closing.
        let _admin = self.admin.lock();
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        *self.stop.stopped.lock() = true;
        self.stop.cv.notify_all();
        if let Some((h, id)) = self.housekeeper.lock().take()
            && id != std::thread::current().id()
        {
            let _ = h.join();
        }
        let topics = std::mem::take(&mut *self.topics.write());
        let mut first_err = None;
        // Closing a log stops a compaction pass on it at its next check.
        for t in topics.values() {
            for p in t.partitions() {
                if let Err(e) = p.log.shutdown_shared() {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some((h, id)) = self.cleaner.lock().take()
            && id != std::thread::current().id()
        {
            let _ = h.join();
        }
        // Another broker may open the directory from now on.
        self.lock.lock().take();
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for BrokerInner {
    fn drop(&mut self) {
        // Best effort: what fails here is recovered by the next open.
        let _ = self.close();
    }
}

/// Applies each topic's retention to its partitions; returns what went.
/// Fails with the first partition's error (the others are still
/// processed).
pub(crate) fn enforce_retention(
    topics: &[Topic],
) -> Result<Vec<(crate::TopicPartition, crate::RetentionReport)>> {
    let mut first_err = None;
    let out = retention_pass(topics, |_, e| {
        first_err.get_or_insert(e);
    });
    first_err.map_or(Ok(out), Err)
}

/// Applies each topic's retention to its partitions, handing each
/// partition's error to `on_error`; returns what went.
fn retention_pass(
    topics: &[Topic],
    mut on_error: impl FnMut(&crate::TopicPartition, Error),
) -> Vec<(crate::TopicPartition, crate::RetentionReport)> {
    let mut out = Vec::new();
    for t in topics {
        let config = t.config();
        let policy = config.get_retention();
        if policy.is_unlimited() || !config.get_cleanup_policy().deletes() {
            continue;
        }
        for p in t.partitions() {
            let tp = crate::TopicPartition::new(t.name(), p.id());
            match p.log.enforce_retention(policy) {
                Ok(r) if r.segments_deleted > 0 => out.push((tp, r)),
                Ok(_) => {}
                // A partition closed by a concurrent delete: skip it.
                Err(Error::Closed) => {}
                Err(e) => on_error(&tp, e),
            }
        }
    }
    out
}

/// Whether `name` is a topic the broker keeps for itself.
pub(crate) fn is_internal(name: &str) -> bool {
    name == crate::group::OFFSETS_TOPIC
}

/// The background cleaner: a round of [`Cleaner`](crate::cleaner::Cleaner)
/// every `backoff`, until the broker stops. Holds the broker only while
/// choosing work.
fn cleaner(broker: Weak<BrokerInner>, stop: Arc<Stop>, backoff: Duration) {
    let mut cleaner = crate::cleaner::Cleaner::default();
    loop {
        {
            let mut stopped = stop.stopped.lock();
            if *stopped {
                return;
            }
            let _ = stop.cv.wait_for(&mut stopped, backoff);
            if *stopped {
                return;
            }
        }
        let Some(inner) = broker.upgrade() else {
            return;
        };
        let key_map_bytes = inner.key_map_bytes;
        let topics: Vec<Topic> = inner.topics.read().values().cloned().collect();
        drop(inner);
        // Failures are reported (through `tracing`) and backed off by the
        // round; a failed fsync also poisons the partition for its writers.
        cleaner.round(&topics, key_map_bytes, || !*stop.stopped.lock());
    }
}

/// A name part no other temporary directory of this process has.
fn unique_suffix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{nanos}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn sync_dir(dir: &Path) -> Result<()> {
    use crate::storage::vfs::Vfs;
    RealFs
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Opens the topic stored in `dir`.
fn load_topic(dir: &Path, name: &str, clock: &Arc<dyn Clock>) -> Result<Topic> {
    let conf_path = dir.join(TOPIC_CONFIG);
    let text = match fs::read(&conf_path) {
        Ok(b) => String::from_utf8(b).map_err(|_| Error::Metadata {
            path: conf_path.clone(),
            reason: "not UTF-8".into(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Metadata {
                path: conf_path,
                reason: "missing: the topic directory has no configuration".into(),
            });
        }
        Err(e) => return Err(Error::io("read", &conf_path, e)),
    };
    let config = TopicConfig::decode(&text).map_err(|reason| Error::Metadata {
        path: conf_path.clone(),
        reason,
    })?;
    config.validate().map_err(|e| Error::Metadata {
        path: conf_path.clone(),
        reason: e.to_string(),
    })?;
    let log_config: LogConfig = config.log_config(clock.clone());
    let name: Arc<str> = name.into();
    let mut partitions = Vec::with_capacity(config.partitions as usize);
    for p in 0..config.partitions {
        let log = Log::open(dir.join(p.to_string()), log_config.clone())?;
        partitions.push(Partition {
            topic: name.clone(),
            id: p,
            log: Arc::new(log),
        });
    }
    // Partition directories past the count are from an interrupted
    // add_partitions: they were never visible.
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name();
            if let Some(p) = n.to_str().and_then(|s| s.parse::<u32>().ok())
                && p >= config.partitions
                && e.path().is_dir()
            {
                fs::remove_dir_all(e.path()).map_err(|err| Error::io("remove", &e.path(), err))?;
            }
        }
    }
    Ok(Topic {
        state: Arc::new(TopicState {
            name,
            partitions: RwLock::new(partitions),
            config: RwLock::new(config),
            deleted: AtomicBool::new(false),
        }),
    })
}

/// Flushes topics with a `flush_interval` and applies retention on
/// schedule, until the broker stops. The thread wakes every `every` of real
/// time; whether a flush or a retention pass is due is decided by the
/// broker's [`Clock`], so a [`ManualClock`](crate::ManualClock) drives both.
/// Holds the broker only while working, so dropping the last handle closes
/// it.
fn housekeeping(
    broker: Weak<BrokerInner>,
    stop: Arc<Stop>,
    (clock, started): (Arc<dyn Clock>, i64),
    every: Duration,
    retention_every: Duration,
) {
    let due = |since: i64, now: i64, interval: Duration| {
        now.saturating_sub(since) >= i64::try_from(interval.as_millis()).unwrap_or(i64::MAX)
    };
    // A topic's first flush is due one interval after the broker opened
    // (not after the thread first saw the topic), so the schedule does not
    // depend on how soon the thread looks.
    let mut last_flush: HashMap<String, i64> = HashMap::new();
    let mut last_retention = started;
    loop {
        {
            let mut stopped = stop.stopped.lock();
            if *stopped {
                return;
            }
            let _ = stop.cv.wait_for(&mut stopped, every);
            if *stopped {
                return;
            }
        }
        let Some(inner) = broker.upgrade() else {
            return;
        };
        let topics: Vec<Topic> = inner.topics.read().values().cloned().collect();
        drop(inner);
        let now = clock.now_ms();
        if due(last_retention, now, retention_every) {
            last_retention = now;
            // A failure poisons the partition or reaches its next writer;
            // the next round tries again.
            retention_pass(&topics, |tp, e| {
                tracing::warn!(
                    topic = &*tp.topic,
                    partition = tp.partition,
                    error = %e,
                    "embedlog: background retention failed; retrying at the next check"
                );
            });
        }
        last_flush.retain(|name, _| topics.iter().any(|t| t.name() == name));
        for t in topics {
            let Some(interval) = t.config().get_flush_interval() else {
                continue;
            };
            let last = last_flush.entry(t.name().to_string()).or_insert(started);
            if due(*last, now, interval) {
                *last = now;
                for p in t.partitions() {
                    if p.log.is_poisoned() {
                        continue; // reported when it happened; writers see it
                    }
                    // A failure poisons the partition; its writers see it.
                    match p.log.flush() {
                        Ok(()) | Err(Error::Closed) => {}
                        Err(e) => tracing::error!(
                            topic = t.name(),
                            partition = p.id(),
                            error = %e,
                            "embedlog: background flush failed; the partition refuses writes until reopened"
                        ),
                    }
                }
            }
        }
    }
}

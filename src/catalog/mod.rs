//! The catalog: the topics of one data directory (their registry, their
//! directories and `topic.conf` files), their partitions and
//! configurations, the rules for their names and for internal topics, and
//! the directory lock that makes one process their owner.
//!
//! Topic creation, deletion and changes are serialized by one lock and are
//! crash-safe: a topic is built under a temporary name (`~creating-…`) and
//! renamed into place; a deletion renames first (`~deleting-…`); the next
//! open removes what either left behind.

mod config;
pub(crate) mod inspect;
mod internal;
mod names;
mod topic;

pub use config::{CleanupPolicy, TopicConfig};
pub use internal::{OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC};
pub(crate) use internal::{Use, is_internal, refuse_internal};
pub use names::{MAX_TOPIC_NAME_LEN, validate_topic_name};
pub(crate) use topic::TopicState;
pub use topic::{Partition, PartitionLog, Topic, TopicPartition};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::storage::Log;
use crate::storage::dirlock::DirLock;
use crate::storage::vfs::{RealFs, Vfs, write_atomic};
use parking_lot::{Mutex, MutexGuard, RwLock};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const LOCK_FILE: &str = ".lock";
const TOPICS_DIR: &str = "topics";
const TOPIC_CONFIG: &str = "topic.conf";
// Temporary directory names start with `~`, which topic names cannot
// contain: no topic can be mistaken for an interrupted create or delete.
const CREATING_PREFIX: &str = "~creating-";
const DELETING_PREFIX: &str = "~deleting-";

/// The topics of one data directory, owned by this process while it holds
/// the directory lock.
#[derive(Debug)]
pub(crate) struct Catalog {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    /// The directory lock, released by [`release_lock`](Self::release_lock).
    lock: Mutex<Option<DirLock>>,
    topics: RwLock<BTreeMap<String, Topic>>,
    /// Serializes topic creation, deletion and changes (and closing).
    admin: Mutex<()>,
    closed: AtomicBool,
    /// Bumped whenever a topic is created or deleted or gains partitions,
    /// so that groups recompute their metadata only then.
    metadata_version: AtomicU64,
}

impl Catalog {
    /// Locks `root` (creating it if needed), finishes or removes what an
    /// interrupted create or delete left, and opens every topic in it.
    ///
    /// # Errors
    /// [`Error::Locked`] if another owner (in this or another process)
    /// holds the directory; [`Error::Metadata`] for a damaged topic
    /// configuration; whatever opening a partition's log reports.
    pub(crate) fn open(root: PathBuf, clock: Arc<dyn Clock>) -> Result<Catalog> {
        let topics_dir = root.join(TOPICS_DIR);
        fs::create_dir_all(&topics_dir)
            .map_err(|e| Error::io("create directory", &topics_dir, e))?;
        let lock_path = root.join(LOCK_FILE);
        let Some(lock) =
            DirLock::acquire(&lock_path).map_err(|e| Error::io("lock", &lock_path, e))?
        else {
            return Err(Error::Locked { path: root });
        };
        // An interrupted create or delete: neither is visible yet.
        let entries = fs::read_dir(&topics_dir).map_err(|e| Error::io("list", &topics_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &topics_dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            if (name.starts_with(CREATING_PREFIX) || name.starts_with(DELETING_PREFIX))
                && path.is_dir()
            {
                fs::remove_dir_all(&path).map_err(|e| Error::io("remove", &path, e))?;
            }
        }
        // Directories without a valid topic name are foreign: left alone.
        let mut topics = BTreeMap::new();
        let names: Vec<String> = list_topic_dirs(&root)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for name in names {
            let topic = load_topic(&topics_dir.join(&name), &name, &clock)?;
            topics.insert(name, topic);
        }
        Ok(Catalog {
            root,
            clock,
            lock: Mutex::new(Some(lock)),
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            closed: AtomicBool::new(false),
            metadata_version: AtomicU64::new(0),
        })
    }

    /// The data directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The clock of every topic's logs and of the broker's timers.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// [`Error::Closed`] once [`begin_close`](Self::begin_close) ran.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// The topic named `name`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::Closed`].
    pub(crate) fn topic(&self, name: &str) -> Result<Topic> {
        self.check_open()?;
        self.topics
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
    pub(crate) fn partition(&self, topic: &str, partition: u32) -> Result<Partition> {
        self.topic(topic)?.partition(partition)
    }

    /// Every topic, internal ones included, by name.
    pub(crate) fn all_topics(&self) -> Vec<Topic> {
        self.topics.read().values().cloned().collect()
    }

    /// Every topic's name, internal ones included, sorted.
    pub(crate) fn topic_names(&self) -> Vec<String> {
        self.topics.read().keys().cloned().collect()
    }

    /// Changes whenever [`group_metadata`](Self::group_metadata) may have.
    pub(crate) fn metadata_version(&self) -> u64 {
        self.metadata_version.load(Ordering::SeqCst)
    }

    fn bump_metadata(&self) {
        self.metadata_version.fetch_add(1, Ordering::SeqCst);
    }

    /// Partition counts of the topics groups can subscribe to (internal
    /// topics excluded).
    pub(crate) fn group_metadata(&self) -> BTreeMap<String, u32> {
        self.topics
            .read()
            .iter()
            .filter(|(name, _)| !is_internal(name))
            .map(|(name, t)| (name.clone(), t.partition_count()))
            .collect()
    }

    fn topics_dir(&self) -> PathBuf {
        self.root.join(TOPICS_DIR)
    }

    /// Creates a topic with `config.partitions` empty partitions, durably.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`], [`Error::InvalidConfig`],
    /// [`Error::TopicExists`], [`Error::Closed`], I/O errors.
    pub(crate) fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        validate_topic_name(name)?;
        config.validate_new()?;
        let _g = self.admin.lock();
        self.check_open()?;
        if self.topics.read().contains_key(name) {
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
        let topic = load_topic(&dir, name, &self.clock)?;
        self.topics.write().insert(name.to_string(), topic.clone());
        self.bump_metadata();
        Ok(topic)
    }

    /// Deletes a topic: its partitions refuse writes at once, its files go.
    ///
    /// # Errors
    /// [`Error::InternalTopic`] for an internal topic;
    /// [`Error::UnknownTopic`]; [`Error::Closed`]; I/O errors.
    pub(crate) fn delete_topic(&self, name: &str) -> Result<()> {
        refuse_internal(name, Use::DeleteTopic)?;
        let _g = self.admin.lock();
        self.check_open()?;
        let Some(topic) = self.topics.write().remove(name) else {
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

    /// Grows a topic to `total` partitions.
    ///
    /// # Errors
    /// [`Error::InvalidPartitionCount`] unless `total` is larger than the count;
    /// [`Error::UnknownTopic`]; [`Error::Closed`]; I/O errors.
    pub(crate) fn add_partitions(&self, name: &str, total: u32) -> Result<()> {
        let _g = self.admin.lock();
        let topic = self.topic(name)?;
        let current = topic.partition_count();
        if total <= current {
            return Err(Error::InvalidPartitionCount {
                topic: name.to_string(),
                current,
                requested: total,
                reason: format!("the new count must be larger, not {total}"),
            });
        }
        let mut config = topic.config().partitions(total);
        config.validate()?;
        let dir = self.topics_dir().join(name);
        let log_config = config.log_config(self.clock.clone());
        let mut added = Vec::new();
        for p in current..total {
            let log = Log::open(dir.join(p.to_string()), log_config.clone())?;
            log.set_metrics_topic(topic.state.name.clone());
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
        topic.state.add_partitions(added);
        self.bump_metadata();
        topic.state.set_config(config);
        Ok(())
    }

    /// Replaces a topic's configuration (not its partition count).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`]; [`Error::InvalidPartitionCount`] for a changed
    /// partition count; [`Error::UnknownTopic`]; [`Error::Closed`]; I/O
    /// errors.
    pub(crate) fn alter_config(&self, name: &str, config: TopicConfig) -> Result<()> {
        config.validate_new()?;
        let _g = self.admin.lock();
        let topic = self.topic(name)?;
        if config.partitions != topic.partition_count() {
            return Err(Error::InvalidPartitionCount {
                topic: name.to_string(),
                current: topic.partition_count(),
                requested: config.partitions,
                reason: "alter_config cannot change the partition count; use add_partitions".into(),
            });
        }
        let dir = self.topics_dir().join(name);
        write_atomic(&RealFs, &dir.join(TOPIC_CONFIG), config.encode().as_bytes())?;
        let log_config = config.log_config(self.clock.clone());
        for p in topic.partitions() {
            p.log.set_config(log_config.clone())?;
        }
        topic.state.set_config(config);
        Ok(())
    }

    /// Marks the catalog closed (every later call fails with
    /// [`Error::Closed`]) and returns the admin lock, held until the
    /// closing is done, so that no topic is created, deleted or changed
    /// meanwhile. `None` if it was closed already.
    pub(crate) fn begin_close(&self) -> Option<MutexGuard<'_, ()>> {
        let admin = self.admin.lock();
        (!self.closed.swap(true, Ordering::SeqCst)).then_some(admin)
    }

    /// Flushes and closes every partition (a compaction pass on one stops
    /// at its next check) and forgets the topics.
    ///
    /// # Errors
    /// The first error closing a partition (the rest are still closed);
    /// the next open recovers them as after a crash.
    pub(crate) fn close_topics(&self) -> Result<()> {
        let topics = std::mem::take(&mut *self.topics.write());
        let mut first_err = None;
        for t in topics.values() {
            for p in t.partitions() {
                if let Err(e) = p.log.shutdown_shared() {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The internal topic `name` (one compacted partition, no retention),
    /// created if it does not exist yet.
    ///
    /// # Errors
    /// Creating or loading it.
    pub(crate) fn internal_topic(&self, name: &str) -> Result<Topic> {
        match self.topic(name) {
            Ok(t) => Ok(t),
            Err(Error::UnknownTopic { .. }) => self.create_topic(
                name,
                TopicConfig::default()
                    .partitions(1)
                    .segment_bytes(16 << 20)
                    .cleanup_policy(CleanupPolicy::Compact)
                    .retention(None),
            ),
            Err(e) => Err(e),
        }
    }

    /// Abandons every partition without a clean close, as a killed process
    /// would leave them (what was written stays, nothing more is).
    pub(crate) fn abandon_topics(&self) {
        let topics = std::mem::take(&mut *self.topics.write());
        for t in topics.values() {
            for p in t.partitions() {
                p.log.abandon();
            }
        }
    }

    /// Releases the directory lock: another owner may open it from now on.
    pub(crate) fn release_lock(&self) {
        self.lock.lock().take();
    }
}

/// A name part no other temporary directory of this process has.
fn unique_suffix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
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
    RealFs
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Reads and checks the `topic.conf` of the topic stored in `dir`.
///
/// # Errors
/// [`Error::Metadata`] naming the file for a missing or damaged one; I/O
/// errors.
pub(crate) fn read_topic_config(dir: &Path) -> Result<TopicConfig> {
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
    Ok(config)
}

/// The directory holding the topics of the data directory `root`.
pub(crate) fn topics_dir(root: &Path) -> PathBuf {
    root.join(TOPICS_DIR)
}

/// The topics stored under `root` as a reader that does not own it sees
/// them: every directory with a valid topic name (interrupted creates and
/// deletes, named with `~`, are not topics). Changes nothing.
///
/// # Errors
/// An I/O error if `root/topics` cannot be listed.
pub(crate) fn list_topic_dirs(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = topics_dir(root);
    let entries = fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if validate_topic_name(&name).is_ok() && entry.path().is_dir() {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Opens the topic stored in `dir`.
fn load_topic(dir: &Path, name: &str, clock: &Arc<dyn Clock>) -> Result<Topic> {
    let config = read_topic_config(dir)?;
    let log_config = config.log_config(clock.clone());
    let name: Arc<str> = name.into();
    let mut partitions = Vec::with_capacity(config.partitions as usize);
    for p in 0..config.partitions {
        let log = Log::open(dir.join(p.to_string()), log_config.clone())?;
        log.set_metrics_topic(name.clone());
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
        state: Arc::new(TopicState::new(name, partitions, config)),
    })
}

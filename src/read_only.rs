//! Reading a data directory that another process owns: topics, partitions,
//! their records and the groups' committed offsets, without the directory
//! lock.

use crate::admin::{GroupOffset, OffsetSpec, PartitionDescription, TopicDescription};
use crate::catalog::{
    OFFSETS_TOPIC, TopicConfig, TopicPartition, is_internal, list_topic_dirs, read_topic_config,
    topics_dir,
};
use crate::error::{Error, Result};
use crate::group::OffsetAndMetadata;
use crate::group::offsets::{CommitLog, collect_commits};
use crate::record::{Batches, Offset};
use crate::storage::{ReadLimit, ReadOnlyLog};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A read-only view of a data directory, which an application (a
/// [`Broker`](crate::Broker) in another process, or in this one) may own
/// and be writing: [`Broker::open_read_only`](crate::Broker::open_read_only).
///
/// It takes no lock, writes nothing and runs no recovery. Each call looks
/// at the directory as it is now: topics created or deleted since, records
/// appended since (whole batches that pass their CRC only; see
/// [`ReadOnlyLog`]). Sealed segments are read through memory maps of the
/// owner's files, without a copy.
///
/// What lives only in the owner's memory is not visible: group members and
/// their assignments, and records the owner's producers still hold in their
/// batches.
///
/// ```
/// use embedlog::{Broker, ProducerConfig, ReadLimit, Record, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let owner = Broker::open(dir.path())?;
/// owner.admin().create_topic("events", TopicConfig::default())?;
/// let producer = owner.producer(ProducerConfig::default());
/// producer.send("events", Record::new("hello"))?;
/// producer.flush()?;
///
/// // Another process (here the same one) reads while the owner runs.
/// let reader = Broker::open_read_only(dir.path())?;
/// assert_eq!(reader.list_topics()?, ["events"]);
/// let p = reader.partition("events", 0)?;
/// let batches = p.read(0, ReadLimit::default())?;
/// assert_eq!(batches.records().next().unwrap()?.value.as_deref(), Some(&b"hello"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReadOnlyBroker {
    root: PathBuf,
    /// Partition views by topic and partition, with the inode of the topic
    /// directory they belong to (a topic deleted and created again is a
    /// new directory).
    partitions: Mutex<HashMap<(String, u32), ReadOnlyPartition>>,
}

/// One partition of a [`ReadOnlyBroker`]: its records as the owner
/// appends them.
#[derive(Debug, Clone)]
pub struct ReadOnlyPartition {
    topic: Arc<str>,
    id: u32,
    topic_dir: Arc<Path>,
    topic_id: DirId,
    log: Arc<ReadOnlyLog>,
}

/// What tells one topic directory from another of the same name created
/// after it: its inode, and its creation time where the file system keeps
/// one (inode numbers are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirId {
    ino: u64,
    created: Option<std::time::SystemTime>,
}

impl DirId {
    fn of(m: &std::fs::Metadata) -> DirId {
        DirId {
            ino: m.ino(),
            created: m.created().ok(),
        }
    }
}

impl ReadOnlyBroker {
    pub(crate) fn open(root: &Path) -> Result<ReadOnlyBroker> {
        let topics = topics_dir(root);
        if !topics.is_dir() {
            return Err(Error::Metadata {
                path: root.to_path_buf(),
                reason: "not an embedlog data directory (it has no topics/ directory)".into(),
            });
        }
        Ok(ReadOnlyBroker {
            root: root.to_path_buf(),
            partitions: Mutex::new(HashMap::new()),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The names of the topics now in the directory, sorted, internal ones
    /// (`__consumer_offsets`) left out.
    ///
    /// # Errors
    /// I/O errors listing the directory.
    pub fn list_topics(&self) -> Result<Vec<String>> {
        Ok(self
            .list_all_topics()?
            .into_iter()
            .filter(|n| !is_internal(n))
            .collect())
    }

    /// Every topic now in the directory, internal ones included.
    ///
    /// # Errors
    /// I/O errors listing the directory.
    pub fn list_all_topics(&self) -> Result<Vec<String>> {
        Ok(list_topic_dirs(&self.root)?
            .into_iter()
            .filter(|(_, dir)| dir.join("topic.conf").is_file())
            .map(|(name, _)| name)
            .collect())
    }

    fn topic_dir(&self, name: &str) -> Result<(PathBuf, DirId)> {
        let dir = topics_dir(&self.root).join(name);
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() && crate::catalog::validate_topic_name(name).is_ok() => {
                Ok((dir, DirId::of(&m)))
            }
            Ok(_) => Err(Error::UnknownTopic { name: name.into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::UnknownTopic { name: name.into() })
            }
            Err(e) => Err(Error::io("stat", &dir, e)),
        }
    }

    /// A topic's configuration, as its owner last stored it.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::Metadata`] for a damaged
    /// `topic.conf`.
    pub fn topic_config(&self, name: &str) -> Result<TopicConfig> {
        let (dir, _) = self.topic_dir(name)?;
        match read_topic_config(&dir) {
            // Deleted between the two looks.
            Err(Error::Metadata { .. }) if !dir.exists() => {
                Err(Error::UnknownTopic { name: name.into() })
            }
            other => other,
        }
    }

    /// Partition `id` of `topic`. The handle stays usable as the owner
    /// appends; its reads fail with [`Error::UnknownTopic`] once the topic
    /// is deleted.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`], I/O errors.
    pub fn partition(&self, topic: &str, id: u32) -> Result<ReadOnlyPartition> {
        // The directory's identity before and after its configuration is
        // read: a topic deleted and created again in between is retried.
        let (dir, ident, config) = loop {
            let (_, before) = self.topic_dir(topic)?;
            let config = self.topic_config(topic)?;
            let (dir, after) = self.topic_dir(topic)?;
            if before == after {
                break (dir, after, config);
            }
        };
        if id >= config.get_partitions() {
            return Err(Error::UnknownPartition {
                topic: topic.into(),
                partition: id,
                count: config.get_partitions(),
            });
        }
        let mut cache = self.partitions.lock();
        // Views of a deleted incarnation of this topic hold its unlinked
        // files: let them go.
        cache.retain(|(t, _), p| {
            let stale = t == topic && p.topic_id != ident;
            if stale {
                p.log.release();
            }
            !stale
        });
        let key = (topic.to_string(), id);
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let log = ReadOnlyLog::open(dir.join(id.to_string())).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::UnknownTopic { name: topic.into() }
            }
            e => e,
        })?;
        let p = ReadOnlyPartition {
            topic: topic.into(),
            id,
            topic_dir: dir.into(),
            topic_id: ident,
            log: Arc::new(log),
        };
        cache.insert(key, p.clone());
        Ok(p)
    }

    /// Partitions, offsets, sizes and configuration of a topic, as
    /// [`Admin::describe_topic`](crate::Admin::describe_topic) reports them
    /// (the flushed offset is the owner's last recorded recovery point).
    ///
    /// # Errors
    /// As [`partition`](Self::partition).
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let config = self.topic_config(name)?;
        let mut partitions = Vec::new();
        for id in 0..config.get_partitions() {
            let p = self.partition(name, id)?;
            p.refresh()?;
            partitions.push(PartitionDescription {
                partition: id,
                start_offset: p.start_offset(),
                end_offset: p.end_offset(),
                flushed_offset: p.log.flushed_offset(),
                size_bytes: p.log.size_bytes(),
                segments: p.log.segment_count(),
            });
        }
        Ok(TopicDescription {
            name: name.to_string(),
            partitions,
            config,
        })
    }

    /// The earliest or latest offset, or the first at or after a time, as
    /// [`Admin::list_offsets`](crate::Admin::list_offsets).
    ///
    /// # Errors
    /// As [`partition`](Self::partition); [`Error::Corrupt`];
    /// [`Error::Unsupported`] for [`OffsetSpec::LastStable`].
    pub fn list_offsets(&self, topic: &str, id: u32, spec: OffsetSpec) -> Result<Option<Offset>> {
        let p = self.partition(topic, id)?;
        p.refresh()?;
        Ok(match spec {
            OffsetSpec::Earliest => Some(p.start_offset()),
            OffsetSpec::Latest => Some(p.end_offset()),
            OffsetSpec::Timestamp(ts) => p.offset_for_timestamp(ts)?,
            OffsetSpec::LastStable => {
                return Err(Error::Unsupported(
                    "the last stable offset of a directory another process owns (its open \
                     transactions live in the owner's memory); ask the owner"
                        .into(),
                ));
            }
        })
    }

    /// Every group's committed offsets, read from `__consumer_offsets` as
    /// its owner stored them. Commits the owner cannot decode are skipped,
    /// as the owner skips them.
    ///
    /// # Errors
    /// I/O errors; [`Error::Corrupt`].
    pub fn committed_offsets(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<TopicPartition, OffsetAndMetadata>>> {
        let p = match self.partition(OFFSETS_TOPIC, 0) {
            Ok(p) => p,
            Err(Error::UnknownTopic { .. }) => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        };
        let mut log: CommitLog = BTreeMap::new();
        p.refresh()?;
        let mut from = p.start_offset();
        let start = from;
        loop {
            let batches = p.read(from, ReadLimit::bytes(1 << 20))?;
            let Some(next) = next_offset(&batches)? else {
                break;
            };
            collect_commits(&batches, start, &mut log, |_, _| {})?;
            from = next;
        }
        Ok(log
            .into_iter()
            .map(|(group, commits)| {
                let mut latest = BTreeMap::new();
                for (tp, c) in commits {
                    match c {
                        Some(c) => latest.insert(tp, c),
                        None => latest.remove(&tp),
                    };
                }
                (group, latest)
            })
            .filter(|(_, latest)| !latest.is_empty())
            .collect())
    }

    /// A group's committed offsets with each partition's end offset and the
    /// lag, as [`Admin::describe_group`](crate::Admin::describe_group)
    /// reports them (members live in the owner's memory, so they are not
    /// here).
    ///
    /// # Errors
    /// [`Error::UnknownGroup`] if the group has no committed offsets; as
    /// [`committed_offsets`](Self::committed_offsets).
    pub fn group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>> {
        let mut all = self.committed_offsets()?;
        let Some(commits) = all.remove(group) else {
            return Err(Error::UnknownGroup {
                group: group.into(),
            });
        };
        let mut out = Vec::new();
        for (tp, c) in commits {
            // As the owner reports it: no end (and no lag) for a partition
            // that is gone or cannot be read now.
            let end = self
                .partition(&tp.topic, tp.partition)
                .and_then(|p| p.refresh().map(|()| p.end_offset()))
                .ok();
            out.push(GroupOffset {
                lag: end.map(|e| e.saturating_sub(c.offset)),
                end_offset: end,
                last_stable_offset: None,
                committed: Some(c),
                partition: tp,
            });
        }
        Ok(out)
    }
}

/// The offset after the last batch of `batches`; `None` if there is none.
fn next_offset(batches: &Batches) -> Result<Option<Offset>> {
    let mut next = None;
    for b in batches.iter() {
        next = Some(b?.last_offset() + 1);
    }
    Ok(next)
}

impl ReadOnlyPartition {
    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition number.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn check_topic(&self) -> Result<()> {
        let gone = match std::fs::metadata(&self.topic_dir) {
            Ok(m) => DirId::of(&m) != self.topic_id,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(Error::io("stat", &self.topic_dir, e)),
        };
        if gone {
            // The owner deleted the topic: its files are unlinked, and this
            // view must not keep their space.
            self.log.release();
            return Err(Error::UnknownTopic {
                name: self.topic.to_string(),
            });
        }
        Ok(())
    }

    fn gone(&self, e: Error) -> Error {
        match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::UnknownTopic {
                    name: self.topic.to_string(),
                }
            }
            e => e,
        }
    }

    /// Whole batches from `from` (see [`ReadOnlyLog::read`]); what the owner
    /// appended since the last call included.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] once the topic is deleted (even if one of
    /// that name was created again); [`Error::OffsetOutOfRange`];
    /// [`Error::Corrupt`]; I/O errors.
    pub fn read(&self, from: Offset, limit: ReadLimit) -> Result<Batches> {
        self.check_topic()?;
        self.log.read(from, limit).map_err(|e| self.gone(e))
    }

    /// Looks for new data, a moved start and changed segments. Reads do it
    /// themselves.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn refresh(&self) -> Result<()> {
        self.check_topic()?;
        self.log.refresh().map_err(|e| self.gone(e))
    }

    /// The oldest readable offset, as of the last read or refresh.
    pub fn start_offset(&self) -> Offset {
        self.log.start_offset()
    }

    /// The offset after the last whole batch, as of the last read or
    /// refresh.
    pub fn end_offset(&self) -> Offset {
        self.log.end_offset()
    }

    /// The first offset whose record's timestamp is at or after
    /// `timestamp` (ms); `None` if every record is older.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<Offset>> {
        self.check_topic()?;
        self.log
            .offset_for_timestamp(timestamp)
            .map_err(|e| self.gone(e))
    }

    /// The partition's log view.
    pub fn log(&self) -> &ReadOnlyLog {
        &self.log
    }
}

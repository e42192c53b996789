//! The groups of one catalog: the [`Coordinator`] and the durable store of
//! its commits, the internal topic `__consumer_offsets` (one compacted
//! partition; a commit is a record keyed by group and partition, see
//! [`offsets`](super::offsets); a deleted commit is a tombstone).

use super::{Commits, Committer, Coordinator, OFFSETS_TOPIC, offsets, validate_group_id};
use crate::catalog::{Catalog, CleanupPolicy, TopicConfig};
use crate::error::{Error, Result};
use crate::record::Record;
use crate::storage::{Durability, ReadLimit};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Consumer groups and their committed offsets, durable in the catalog's
/// `__consumer_offsets`.
#[derive(Debug)]
pub(crate) struct Groups {
    coordinator: Coordinator,
    catalog: Arc<Catalog>,
}

impl Groups {
    /// Creates `__consumer_offsets` if needed and reads every commit in it.
    ///
    /// # Errors
    /// Creating the topic or reading its log (a record that is not a
    /// commit is skipped with a warning, never an error).
    pub(crate) fn open(catalog: Arc<Catalog>) -> Result<Groups> {
        let groups = Groups {
            coordinator: Coordinator::new(catalog.clock().clone()),
            catalog,
        };
        groups.load()?;
        Ok(groups)
    }

    /// The membership and commit state.
    pub(crate) fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// The offsets topic's configuration: one compacted partition.
    fn offsets_topic_config() -> TopicConfig {
        TopicConfig::default()
            .partitions(1)
            .segment_bytes(16 << 20)
            .cleanup_policy(CleanupPolicy::Compact)
            .retention(None)
    }

    fn load(&self) -> Result<()> {
        let topic = match self.catalog.topic(OFFSETS_TOPIC) {
            Ok(t) => t,
            Err(Error::UnknownTopic { .. }) => self
                .catalog
                .create_topic(OFFSETS_TOPIC, Self::offsets_topic_config())?,
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
        let mut commits = BTreeMap::new();
        let from = log.start_offset();
        for batches in log.reader(from, ReadLimit::bytes(1 << 20)) {
            offsets::collect_commits(&batches?, from, &mut commits, skip)?;
        }
        for (group, c) in commits {
            self.coordinator.load(&group, &c);
        }
        Ok(())
    }

    /// Stores commits of `group` (`None` deletes one) as `committer`: the
    /// coordinator checks that it may, appends them durably to
    /// `__consumer_offsets` and makes them visible, atomically (see
    /// [`Coordinator::commit`]).
    ///
    /// # Errors
    /// [`Error::InvalidGroupId`] for a bad group id; what the
    /// coordinator refuses ([`Error::Fenced`], …); the append's error.
    pub(crate) fn store_commits(
        &self,
        group: &str,
        committer: Committer<'_>,
        commits: Commits,
    ) -> Result<()> {
        self.store_commits_with(group, committer, commits, Durability::Sync)
    }

    /// As [`store_commits`](Self::store_commits), appended with
    /// `durability` (a transaction's offsets follow its producer's).
    pub(crate) fn store_commits_with(
        &self,
        group: &str,
        committer: Committer<'_>,
        commits: Commits,
        durability: Durability,
    ) -> Result<()> {
        validate_group_id(group)?;
        let now = self.catalog.clock().now_ms();
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
        let p = self.catalog.partition(OFFSETS_TOPIC, 0)?;
        self.coordinator.commit(group, committer, commits, |chunk| {
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
            p.log.append_with(&records, durability)?;
            Ok(())
        })
    }
}

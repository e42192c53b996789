//! The Admin API: create, delete, list, describe and alter topics; list
//! offsets; delete records.

use crate::catalog::{Topic, TopicConfig, TopicPartition};
use crate::catalog::{Use, refuse_internal};
use crate::client::Context;
#[allow(unused_imports)] // for intra-doc links
use crate::error::Error;
use crate::error::Result;
use crate::group::{GroupState, MemberDescription};
use crate::record::Offset;

/// Which offset [`Admin::list_offsets`] looks up (Kafka's `OffsetSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset (the oldest readable record).
    Earliest,
    /// The log end offset (where the next record goes).
    Latest,
    /// The first offset whose record's timestamp is at or after this time
    /// (milliseconds since the epoch).
    Timestamp(i64),
    /// The last stable offset: where a read-committed consumer stops (the
    /// first offset of the oldest open transaction, or the end).
    LastStable,
}

/// One group, as [`Admin::list_groups`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// How many members it has.
    pub members: usize,
}

/// A group's committed offset and lag for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The group's committed offset, if any.
    pub committed: Option<crate::OffsetAndMetadata>,
    /// The partition's end offset (`None` if the topic is gone).
    pub end_offset: Option<Offset>,
    /// The partition's last stable offset: as far as a read-committed
    /// member can read now (`None` if the topic is gone, or unknown to a
    /// [`ReadOnlyBroker`](crate::ReadOnlyBroker)).
    pub last_stable_offset: Option<Offset>,
    /// Records between the committed offset and the end offset, as Kafka's
    /// `kafka-consumer-groups` counts it (`None` without a commit); a
    /// read-committed group can catch up only to `last_stable_offset`.
    pub lag: Option<u64>,
}

/// What [`Admin::describe_group`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// The assignor its members use (`None` without members).
    pub assignor: Option<String>,
    /// Bumped by every rebalance.
    pub generation: u64,
    /// The members and what they own.
    pub members: Vec<MemberDescription>,
    /// Committed offsets and lag, for every partition the group committed
    /// or owns.
    pub offsets: Vec<GroupOffset>,
}

/// What [`Admin::describe_topic`] reports about one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// The partition number.
    pub partition: u32,
    /// The oldest readable offset.
    pub start_offset: Offset,
    /// The offset the next record gets.
    pub end_offset: Offset,
    /// Every offset below this one is fsync'd.
    pub flushed_offset: Offset,
    /// Bytes of record batches on disk.
    pub size_bytes: u64,
    /// Number of segment files.
    pub segments: usize,
}

/// What [`Admin::describe_topic`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// Each partition, in order.
    pub partitions: Vec<PartitionDescription>,
    /// The topic's configuration.
    pub config: TopicConfig,
}

impl TopicDescription {
    /// Records held across all partitions (end − start, summed).
    pub fn record_count(&self) -> u64 {
        self.partitions
            .iter()
            .map(|p| p.end_offset - p.start_offset)
            .sum()
    }

    /// Bytes on disk across all partitions.
    pub fn size_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.size_bytes).sum()
    }
}

/// The Admin API of a [`Broker`](crate::Broker) (Kafka's `Admin` client, in process).
///
/// ```
/// use embedlog::{Broker, OffsetSpec, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// let admin = broker.admin();
/// admin.create_topic("orders", TopicConfig::default().partitions(3))?;
/// assert_eq!(admin.list_topics()?, ["orders"]);
/// admin.add_partitions("orders", 6)?;
/// assert_eq!(admin.describe_topic("orders")?.partitions.len(), 6);
/// assert_eq!(admin.list_offsets("orders", 0, OffsetSpec::Latest)?, Some(0));
/// admin.delete_topic("orders")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    ctx: Context,
}

impl Admin {
    pub(crate) fn new(ctx: Context) -> Admin {
        Admin { ctx }
    }

    /// What this admin works on.
    pub(crate) fn context(&self) -> &Context {
        &self.ctx
    }

    /// Creates a topic with `config.partitions` empty partitions. The topic
    /// and its configuration are durable when this returns.
    ///
    /// # Errors
    /// [`Error::InvalidTopicName`], [`Error::InvalidConfig`],
    /// [`Error::TopicExists`], I/O errors.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        self.ctx.catalog.create_topic(name, config)
    }

    /// Deletes a topic and its files. Handles that readers hold stay
    /// readable (their bytes are mapped); writes through them fail.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], I/O errors.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.ctx.catalog.delete_topic(name)
    }

    /// The names of all topics, sorted. Internal topics (names starting with
    /// `__`) are left out.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn list_topics(&self) -> Result<Vec<String>> {
        self.ctx.catalog.check_open()?;
        Ok(self
            .ctx
            .catalog
            .topic_names()
            .into_iter()
            .filter(|n| !n.starts_with("__"))
            .collect())
    }

    /// Partitions, offsets, sizes and configuration of a topic.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let topic = self.ctx.catalog.topic(name)?;
        let partitions = topic
            .partitions()
            .iter()
            .map(|p| PartitionDescription {
                partition: p.id(),
                start_offset: p.start_offset(),
                end_offset: p.end_offset(),
                flushed_offset: p.log().flushed_offset(),
                size_bytes: p.log().size_bytes(),
                segments: p.log().segment_count(),
            })
            .collect();
        Ok(TopicDescription {
            name: name.to_string(),
            partitions,
            config: topic.config(),
        })
    }

    /// Grows a topic to `total` partitions. Keys map to partitions by the
    /// count, so keyed records may go to a different partition afterwards
    /// (as in Kafka).
    ///
    /// # Errors
    /// [`Error::InvalidPartitionCount`] unless `total` is larger than the current
    /// count; [`Error::UnknownTopic`]; I/O errors.
    pub fn add_partitions(&self, name: &str, total: u32) -> Result<()> {
        self.ctx.catalog.add_partitions(name, total)
    }

    /// Replaces a topic's configuration (durably) and applies it to the open
    /// partitions. The partition count cannot change here.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`], [`Error::InvalidPartitionCount`] for a different
    /// partition count, [`Error::UnknownTopic`].
    pub fn alter_config(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.ctx.catalog.alter_config(name, config)
    }

    /// Looks up an offset of a partition (Kafka's `ListOffsets`). `None`
    /// only for a timestamp later than every record's.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`],
    /// [`Error::Corrupt`].
    pub fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<Option<Offset>> {
        let p = self.ctx.catalog.partition(topic, partition)?;
        Ok(match spec {
            OffsetSpec::Earliest => Some(p.start_offset()),
            OffsetSpec::Latest => Some(p.end_offset()),
            OffsetSpec::Timestamp(ts) => p.offset_for_timestamp(ts)?,
            OffsetSpec::LastStable => Some(p.log.last_stable_offset()),
        })
    }

    /// Every transactional id the broker knows, with its producer id,
    /// epoch, state and open transaction (Kafka's `kafka-transactions list`
    /// and `describe`).
    pub fn list_transactions(&self) -> Vec<crate::TransactionDescription> {
        self.ctx.txns.describe_all()
    }

    /// One transactional id's state.
    ///
    /// # Errors
    /// [`Error::UnknownTransactionalId`] for an id the broker does not know.
    pub fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<crate::TransactionDescription> {
        self.list_transactions()
            .into_iter()
            .find(|t| t.transactional_id == transactional_id)
            .ok_or_else(|| Error::UnknownTransactionalId {
                transactional_id: transactional_id.to_string(),
            })
    }

    /// Aborts a hanging transaction (Kafka's `kafka-transactions abort`):
    /// ABORT markers in its partitions, and its producer fenced (its
    /// sends and commit fail with [`Error::ProducerFenced`]). Returns
    /// whether there was an open transaction to abort (a decided commit
    /// is finished, not aborted).
    ///
    /// # Errors
    /// [`Error::UnknownTransactionalId`] for an unknown id; I/O errors.
    pub fn abort_transaction(&self, transactional_id: &str) -> Result<bool> {
        self.ctx.txns.force_abort(transactional_id)
    }

    /// Aborts every transaction open longer than its
    /// `transaction_timeout` now, by the broker's clock (the broker also
    /// checks every [`BrokerBuilder::transaction_check_interval`](crate::BrokerBuilder::transaction_check_interval)),
    /// and finishes decided ones whose markers failed. Returns how many it
    /// aborted.
    ///
    /// # Errors
    /// The first failure (the others are still tried).
    pub fn abort_timed_out_transactions(&self) -> Result<usize> {
        self.ctx.txns.abort_timed_out()
    }

    /// Deletes the records of a partition before `offset` (Kafka's
    /// `DeleteRecords`): the start offset moves there durably and whole
    /// segments before it are removed.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] past the end; unknown topic or partition;
    /// [`Error::InternalTopic`] for an internal topic (delete consumer
    /// groups instead), as Kafka refuses it.
    pub fn delete_records(&self, topic: &str, partition: u32, before: Offset) -> Result<()> {
        refuse_internal(topic, Use::DeleteRecords)?;
        self.ctx
            .catalog
            .partition(topic, partition)?
            .log
            .delete_records_before(before)
    }

    /// Applies every topic's retention now (the broker's background thread
    /// also does, every `retention_check_interval`): deletes the segments that are older
    /// than `retention.ms` or past `retention.bytes`. Returns what went.
    ///
    /// # Errors
    /// The first partition's I/O error (the others are still processed);
    /// [`Error::Closed`].
    pub fn run_retention(&self) -> Result<Vec<(crate::TopicPartition, crate::RetentionReport)>> {
        self.ctx.catalog.check_open()?;
        crate::maintenance::enforce_retention(&self.ctx.catalog.all_topics())
    }

    /// Compacts every partition of a compacted topic now, whatever its
    /// dirty ratio (the background cleaner waits for
    /// `min.cleanable.dirty.ratio`): passes run until each partition's
    /// complete segments are clean. Returns what each pass did.
    ///
    /// ```
    /// use embedlog::{Broker, CleanupPolicy, Record, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let broker = Broker::open(dir.path())?;
    /// let admin = broker.admin();
    /// let config = TopicConfig::default().cleanup_policy(CleanupPolicy::Compact);
    /// let table = admin.create_topic("table", config)?;
    /// let p = table.partition(0)?;
    /// p.append(&[Record::new("old").key("k")])?;
    /// p.append(&[Record::new("new").key("k")])?;
    /// p.roll()?; // the active segment is never compacted
    /// let reports = admin.compact_now("table")?;
    /// assert_eq!(reports[0].1.records_removed, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::TopicNotCompacted`] if the topic's
    /// `cleanup.policy` does not compact; a partition's error (the passes
    /// before it stand); [`Error::Closed`].
    pub fn compact_now(
        &self,
        topic: &str,
    ) -> Result<Vec<(crate::TopicPartition, crate::CompactionReport)>> {
        self.ctx.catalog.check_open()?;
        let t = self.ctx.catalog.topic(topic)?;
        if !t.config().get_cleanup_policy().compacts() {
            return Err(Error::TopicNotCompacted {
                topic: topic.to_string(),
            });
        }
        crate::maintenance::cleaner::compact_partitions(&t, &t.partitions(), self.ctx.key_map_bytes)
    }

    /// Every consumer group with members or committed offsets, sorted by
    /// id.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.ctx.catalog.check_open()?;
        Ok(self
            .ctx
            .groups
            .coordinator()
            .list()
            .into_iter()
            .map(|(group_id, state, members)| GroupListing {
                group_id,
                state,
                members,
            })
            .collect())
    }

    /// A group's members, their partitions, and for every partition it owns
    /// or committed: the committed offset, the partition's end offset and
    /// the lag between them.
    ///
    /// # Errors
    /// [`Error::UnknownGroup`]; [`Error::Closed`].
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.ctx.catalog.check_open()?;
        let coordinator = &self.ctx.groups.coordinator();
        let (state, assignor, generation, members) =
            coordinator
                .describe(group)
                .ok_or_else(|| Error::UnknownGroup {
                    group: group.to_string(),
                })?;
        let committed = coordinator.committed_all(group);
        let mut tps: std::collections::BTreeSet<TopicPartition> =
            committed.keys().cloned().collect();
        tps.extend(members.iter().flat_map(|m| m.assignment.iter().cloned()));
        let offsets = tps
            .into_iter()
            .map(|tp| {
                let p = self.ctx.catalog.partition(&tp.topic, tp.partition).ok();
                let end_offset = p.as_ref().map(|p| p.end_offset());
                let last_stable_offset = p.as_ref().map(|p| p.last_stable_offset());
                let committed = committed.get(&tp).cloned();
                let lag = match (&committed, end_offset) {
                    (Some(c), Some(end)) => Some(end.saturating_sub(c.offset)),
                    _ => None,
                };
                GroupOffset {
                    partition: tp,
                    committed,
                    end_offset,
                    last_stable_offset,
                    lag,
                }
            })
            .collect();
        Ok(GroupDescription {
            group_id: group.to_string(),
            state,
            assignor,
            generation,
            members,
            offsets,
        })
    }

    /// Moves an inactive group's committed offsets for `partitions` (all
    /// its committed partitions if empty) to the earliest or latest offset
    /// or to a timestamp, as `kafka-consumer-groups --reset-offsets` does.
    /// Returns the new offsets.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] while the group has members;
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`]; I/O errors.
    pub fn reset_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
        to: OffsetSpec,
    ) -> Result<Vec<(TopicPartition, Offset)>> {
        self.ctx.catalog.check_open()?;
        let coordinator = &self.ctx.groups.coordinator();
        // Fail early; storing checks again, atomically with the store.
        coordinator.check_empty(group)?;
        let tps: Vec<TopicPartition> = if partitions.is_empty() {
            coordinator.committed_all(group).into_keys().collect()
        } else {
            partitions.to_vec()
        };
        let mut out = Vec::new();
        for tp in tps {
            // A timestamp after every record resets to the end, as Kafka's
            // tool does.
            let offset = match self.list_offsets(&tp.topic, tp.partition, to)? {
                Some(o) => o,
                None => self
                    .ctx
                    .catalog
                    .partition(&tp.topic, tp.partition)?
                    .end_offset(),
            };
            out.push((tp, offset));
        }
        self.store_group_offsets(group, out.iter().cloned())?;
        Ok(out)
    }

    /// Sets an inactive group's committed offsets to explicit values.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] while the group has members;
    /// [`Error::InvalidArgument`] for an offset past a partition's end;
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`]; I/O errors.
    pub fn alter_group_offsets<I>(&self, group: &str, offsets: I) -> Result<()>
    where
        I: IntoIterator<Item = (TopicPartition, Offset)>,
    {
        self.ctx.catalog.check_open()?;
        self.ctx.groups.coordinator().check_empty(group)?;
        self.store_group_offsets(group, offsets)
    }

    /// Stores explicit offsets if the group is empty (checked atomically
    /// with the store).
    fn store_group_offsets<I>(&self, group: &str, offsets: I) -> Result<()>
    where
        I: IntoIterator<Item = (TopicPartition, Offset)>,
    {
        let mut commits = Vec::new();
        for (tp, offset) in offsets {
            let p = self.ctx.catalog.partition(&tp.topic, tp.partition)?;
            if offset > p.end_offset() {
                return Err(Error::InvalidArgument(format!(
                    "offset {offset} is past the end {} of {tp}",
                    p.end_offset()
                )));
            }
            commits.push((tp, Some(crate::OffsetAndMetadata::new(offset))));
        }
        self.ctx.groups.store_commits(
            group,
            crate::group::Committer::Admin,
            crate::group::Commits::These(commits),
        )
    }

    /// Deletes an inactive group's committed offsets (tombstones in
    /// `__consumer_offsets`, removed by its compaction).
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] while it has members;
    /// [`Error::UnknownGroup`]; I/O errors.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        self.ctx.catalog.check_open()?;
        self.ctx.groups.store_commits(
            group,
            crate::group::Committer::Admin,
            crate::group::Commits::DeleteAll,
        )
    }

    /// Every topic, internal ones (`__consumer_offsets`) included.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn list_all_topics(&self) -> Result<Vec<String>> {
        self.ctx.catalog.check_open()?;
        Ok(self.ctx.catalog.topic_names())
    }
}

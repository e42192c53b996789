//! The consumer: reads assigned partitions from positions it keeps,
//! long-polling for new records.

use crate::broker::Broker;
use crate::catalog::{Partition, TopicPartition};
use crate::error::{Error, Result};
use crate::group::{
    Assignor, Commits, Committer, CooperativeStickyAssignor, OffsetAndMetadata, RebalanceListener,
    Topics,
};
use crate::record::Batches;
use crate::record::{Header, Offset};
use crate::storage::{Notify, ReadLimit};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a consumer starts when it has no valid position for a partition
/// (Kafka's `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The oldest record still held.
    Earliest,
    /// The end: only records appended from now on.
    #[default]
    Latest,
    /// Fail with [`Error::NoOffset`] or [`Error::OffsetOutOfRange`].
    Error,
}

/// Settings of a [`Consumer`]. Every setter documents its default.
///
/// ```
/// use embedlog::{ConsumerConfig, OffsetReset};
/// let _config = ConsumerConfig::default()
///     .max_poll_records(1000)
///     .offset_reset(OffsetReset::Earliest);
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    max_poll_records: usize,
    max_partition_fetch_bytes: usize,
    offset_reset: OffsetReset,
    group_id: Option<String>,
    assignor: Arc<dyn Assignor>,
    auto_commit: Option<Duration>,
    max_poll_interval: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_poll_records: 500,
            max_partition_fetch_bytes: 1 << 20,
            offset_reset: OffsetReset::Latest,
            group_id: None,
            assignor: Arc::new(CooperativeStickyAssignor),
            auto_commit: None,
            max_poll_interval: Duration::from_secs(300),
        }
    }
}

/// Longest group id accepted.
pub const MAX_GROUP_ID_LEN: usize = 1024;

impl ConsumerConfig {
    /// Most records one [`Consumer::poll`] returns (`max.poll.records`).
    /// Default: 500. At least 1.
    pub fn max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n.max(1);
        self
    }

    /// Bytes read from one partition per poll
    /// (`max.partition.fetch.bytes`); a larger batch is still returned
    /// whole. Default: 1 MiB.
    pub fn max_partition_fetch_bytes(mut self, bytes: usize) -> Self {
        self.max_partition_fetch_bytes = bytes.max(1);
        self
    }

    /// What to do without a valid position (`auto.offset.reset`). Default:
    /// [`OffsetReset::Latest`]. A group member uses it for partitions the
    /// group has no committed offset for.
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.offset_reset = reset;
        self
    }

    /// The consumer group (`group.id`), needed by
    /// [`Consumer::subscribe`] and the commit methods. Default: none.
    pub fn group(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }

    /// How the group's partitions are spread over its members
    /// (`partition.assignment.strategy`): [`CooperativeStickyAssignor`] (the
    /// default: members keep what they own where they can, and only moved
    /// partitions are revoked), [`RangeAssignor`](crate::RangeAssignor) or
    /// [`RoundRobinAssignor`](crate::RoundRobinAssignor) (eager: every
    /// member revokes everything at each rebalance). All members of a group
    /// must use the same one.
    pub fn assignor(mut self, assignor: Arc<dyn Assignor>) -> Self {
        self.assignor = assignor;
        self
    }

    /// Commit the positions of the previous polls every `interval`, at the
    /// start of a poll, before partitions are revoked, and on close
    /// (`enable.auto.commit` / `auto.commit.interval.ms`). Default: `None`
    /// (commit explicitly, after processing, for at-least-once delivery).
    /// Auto-commit is at-least-once too as long as every record a poll
    /// returned is processed before the next poll. The interval is measured
    /// by the broker's [`Clock`](crate::Clock)
    /// ([`BrokerBuilder::clock`](crate::BrokerBuilder::clock)).
    pub fn auto_commit(mut self, interval: Option<Duration>) -> Self {
        self.auto_commit = interval;
        self
    }

    /// A member that has not polled for this long, while another member
    /// waits for one of its partitions, is removed from the group
    /// (`max.poll.interval.ms`). Default: 5 minutes. Measured by the
    /// broker's [`Clock`](crate::Clock)
    /// ([`BrokerBuilder::clock`](crate::BrokerBuilder::clock)).
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }
}

/// A consumer's membership of its group.
struct Membership {
    group: String,
    /// The member id while subscribed.
    member: Option<String>,
    /// The generation the member last synced at (its commits carry it).
    generation: u64,
    topics: Option<Topics>,
    listener: Option<Box<dyn RebalanceListener>>,
    /// When the auto-commit last ran, by the broker's clock (ms since the
    /// epoch).
    last_auto_commit_ms: i64,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("group", &self.group)
            .field("member", &self.member)
            .field("topics", &self.topics)
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

/// A record as a consumer receives it. Key, value and header values share
/// the partition's memory map: no payload was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: Offset,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// The headers.
    pub headers: Vec<Header>,
}

#[derive(Debug)]
struct Assigned {
    tp: TopicPartition,
    partition: Partition,
    /// `None` until the reset policy gives one.
    position: Option<Offset>,
}

/// Reads records from assigned partitions.
///
/// A consumer is `Send` and used from one thread. Consumers are
/// independent: each keeps its own positions, reading removes nothing, and
/// a slow consumer never slows a producer.
///
/// ```
/// use embedlog::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig};
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// let topic = broker.admin().create_topic("logs", TopicConfig::default())?;
/// topic.partition(0)?.append(&[Record::new("line 1"), Record::new("line 2")])?;
///
/// let mut consumer = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
/// consumer.assign(&[("logs", 0)])?;
/// for record in consumer.iter_timeout(Duration::from_millis(50)) {
///     let record = record?;
///     println!("{}: {:?}", record.offset, record.value);
/// }
/// assert_eq!(consumer.position(("logs", 0))?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Consumer {
    broker: Broker,
    config: ConsumerConfig,
    assigned: Vec<Assigned>,
    notify: Arc<Notify>,
    next: usize,
    /// An error a poll met after it had records to return: reported by the
    /// next poll.
    pending_error: Option<Error>,
    membership: Option<Membership>,
}

impl Consumer {
    pub(crate) fn new(broker: Broker, config: ConsumerConfig) -> Consumer {
        let now = broker.inner.clock.now_ms();
        let membership = config.group_id.clone().map(|group| Membership {
            group,
            member: None,
            generation: 0,
            topics: None,
            listener: None,
            last_auto_commit_ms: now,
        });
        Consumer {
            broker,
            config,
            assigned: Vec::new(),
            notify: Arc::new(Notify::new()),
            next: 0,
            pending_error: None,
            membership,
        }
    }

    /// Reads exactly these partitions from now on (replacing the previous
    /// assignment; positions of partitions that stay are kept).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`]; nothing changes
    /// then.
    pub fn assign<I>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Into<TopicPartition>,
    {
        if self.member_id().is_some() {
            return Err(Error::InvalidArgument(
                "this consumer is subscribed: its group assigns its partitions (unsubscribe first)"
                    .into(),
            ));
        }
        self.set_assignment(partitions)
    }

    fn set_assignment<I>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Into<TopicPartition>,
    {
        let mut next = Vec::new();
        for tp in partitions {
            let tp: TopicPartition = tp.into();
            if next.iter().any(|a: &Assigned| a.tp == tp) {
                continue;
            }
            let partition = self.broker.partition(&tp.topic, tp.partition)?;
            let position = self
                .assigned
                .iter()
                .find(|a| a.tp == tp)
                .and_then(|a| a.position);
            next.push(Assigned {
                tp,
                partition,
                position,
            });
        }
        for a in &self.assigned {
            a.partition.log().unwatch(&self.notify);
        }
        for a in &next {
            a.partition.log().watch(self.notify.clone());
        }
        self.assigned = next;
        self.next = 0;
        Ok(())
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.iter().map(|a| a.tp.clone()).collect()
    }

    /// Drops every assignment.
    pub fn unassign(&mut self) {
        for a in &self.assigned {
            a.partition.log().unwatch(&self.notify);
        }
        self.assigned.clear();
    }

    fn find(&mut self, tp: impl Into<TopicPartition>) -> Result<&mut Assigned> {
        let tp = tp.into();
        self.assigned
            .iter_mut()
            .find(|a| a.tp == tp)
            .ok_or_else(|| Error::InvalidArgument(format!("{tp} is not assigned to this consumer")))
    }

    /// Reads from `offset` next in partition `tp`. An offset outside the
    /// partition's range is handled by the reset policy at the next poll.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `tp` is not assigned.
    pub fn seek(&mut self, tp: impl Into<TopicPartition>, offset: Offset) -> Result<()> {
        self.find(tp)?.position = Some(offset);
        Ok(())
    }

    /// Moves to the oldest record of each partition.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if one is not assigned.
    pub fn seek_to_beginning<I>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Into<TopicPartition>,
    {
        for tp in partitions {
            let a = self.find(tp)?;
            a.position = Some(a.partition.start_offset());
        }
        Ok(())
    }

    /// Moves past the newest record of each partition.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if one is not assigned.
    pub fn seek_to_end<I>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Into<TopicPartition>,
    {
        for tp in partitions {
            let a = self.find(tp)?;
            a.position = Some(a.partition.end_offset());
        }
        Ok(())
    }

    /// Moves to the first record with a timestamp at or after `timestamp`
    /// (to the end if there is none). Returns the new position.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `tp` is not assigned; read errors.
    pub fn seek_to_timestamp(
        &mut self,
        tp: impl Into<TopicPartition>,
        timestamp: i64,
    ) -> Result<Offset> {
        let a = self.find(tp)?;
        let offset = match a.partition.offset_for_timestamp(timestamp)? {
            Some(o) => o,
            None => a.partition.end_offset(),
        };
        a.position = Some(offset);
        Ok(offset)
    }

    /// The offset the next poll reads from in `tp` (applying the reset
    /// policy if there is no position yet).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `tp` is not assigned; [`Error::NoOffset`]
    /// under [`OffsetReset::Error`].
    pub fn position(&mut self, tp: impl Into<TopicPartition>) -> Result<Offset> {
        let reset = self.config.offset_reset;
        let a = self.find(tp)?;
        resolve(a, reset)
    }

    /// Returns the records available now, up to `max_poll_records`, or
    /// waits up to `timeout` for some to arrive (an empty result means none
    /// did). Waiting sleeps until an append wakes it: no spinning.
    ///
    /// # Errors
    /// Read errors; the reset policy's errors; [`Error::UnknownTopic`] for a
    /// deleted topic; [`Error::Closed`].
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.long_poll(timeout, Self::fetch_records)
    }

    /// Like [`poll`](Self::poll), but returns each partition's data as
    /// whole record batches (one shared buffer per partition, no per-record
    /// work): iterate them with [`Batches::records_ref`] (borrowed, fastest)
    /// or [`Batches::records`]. Records before the position are skipped by
    /// both iterators. `max_poll_records` does not apply (batches are not
    /// split); `max_partition_fetch_bytes` does. The positions move past
    /// everything returned.
    ///
    /// # Errors
    /// As [`poll`](Self::poll).
    pub fn poll_batches(&mut self, timeout: Duration) -> Result<Vec<(TopicPartition, Batches)>> {
        self.long_poll(timeout, Self::fetch_batches)
    }

    /// Fetches until something arrives or `timeout` passes, sleeping on the
    /// watched logs' notifications in between. What a fetch read before an
    /// error is returned; the error comes with the next poll (positions
    /// already moved past what was returned).
    fn long_poll<T>(
        &mut self,
        timeout: Duration,
        fetch: fn(&mut Self, &mut Vec<T>) -> Result<()>,
    ) -> Result<Vec<T>> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        let deadline = crate::clock::deadline_after(timeout);
        loop {
            let seen = self.notify.generation();
            let mut out = Vec::new();
            let r = fetch(self, &mut out);
            if let Some(n) = self.assigned.len().checked_sub(1) {
                // Start the next fetch at the next partition, for fairness.
                self.next = (self.next + 1) % (n + 1);
            }
            match r {
                Err(e) if out.is_empty() => return Err(e),
                Err(e) => {
                    self.pending_error = Some(e);
                    return Ok(out);
                }
                Ok(()) if !out.is_empty() => return Ok(out),
                Ok(()) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            self.notify.wait_past(seen, deadline - now);
        }
    }

    /// The assigned partitions, starting at the one whose turn it is.
    fn rotation(&self) -> impl Iterator<Item = usize> + use<> {
        let (n, next) = (self.assigned.len(), self.next);
        (0..n).map(move |i| (next + i) % n)
    }

    fn fetch_records(&mut self, out: &mut Vec<ConsumerRecord>) -> Result<()> {
        self.broker.check_open()?;
        self.sync_group()?;
        let max = self.config.max_poll_records;
        let (reset, fetch_bytes) = (
            self.config.offset_reset,
            self.config.max_partition_fetch_bytes,
        );
        for i in self.rotation() {
            if out.len() >= max {
                break;
            }
            let a = &mut self.assigned[i];
            // A read returns batches of one segment: keep reading this
            // partition while the record and byte budgets allow.
            let mut bytes_left = fetch_bytes;
            while out.len() < max && bytes_left > 0 {
                let limit = ReadLimit::bytes(bytes_left).records(max - out.len());
                let Some(batches) = read_next(a, reset, &self.broker, &self.notify, limit)? else {
                    break;
                };
                bytes_left = bytes_left.saturating_sub(batches.len_bytes());
                'batches: for b in batches.iter() {
                    let b = b?;
                    let from = a.position.unwrap_or(0);
                    if b.header().is_control() {
                        // A transaction marker: not a record to deliver
                        // (its CRC is checked all the same).
                        b.verify()?;
                        a.position = Some(from.max(b.last_offset() + 1));
                        continue;
                    }
                    for r in b.records()? {
                        let r = r?;
                        if r.offset < from {
                            continue;
                        }
                        if out.len() >= max {
                            break 'batches;
                        }
                        a.position = Some(r.offset + 1);
                        out.push(ConsumerRecord {
                            topic: a.tp.topic.clone(),
                            partition: a.tp.partition,
                            offset: r.offset,
                            timestamp: r.timestamp,
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                        });
                    }
                    // Compaction leaves gaps, also at the end of a batch
                    // (and empty batches): the position moves past the
                    // whole batch once all its records are taken.
                    a.position = Some(from.max(b.last_offset() + 1));
                }
            }
        }
        Ok(())
    }

    fn fetch_batches(&mut self, out: &mut Vec<(TopicPartition, Batches)>) -> Result<()> {
        self.broker.check_open()?;
        self.sync_group()?;
        let (reset, fetch_bytes) = (
            self.config.offset_reset,
            self.config.max_partition_fetch_bytes,
        );
        for i in self.rotation() {
            let a = &mut self.assigned[i];
            let Some(batches) = read_next(
                a,
                reset,
                &self.broker,
                &self.notify,
                ReadLimit::bytes(fetch_bytes),
            )?
            else {
                continue;
            };
            let mut last = None;
            for b in batches.iter() {
                last = Some(b?.last_offset());
            }
            if let Some(last) = last {
                a.position = Some(last + 1);
                out.push((a.tp.clone(), batches));
            }
        }
        Ok(())
    }

    /// An iterator that polls forever (until an error): the
    /// `for record in &mut consumer` loop.
    pub fn iter(&mut self) -> ConsumerIter<'_> {
        ConsumerIter {
            consumer: self,
            buffered: VecDeque::new(),
            idle: None,
        }
    }

    /// An iterator that ends once no record arrived for `idle`.
    pub fn iter_timeout(&mut self, idle: Duration) -> ConsumerIter<'_> {
        ConsumerIter {
            consumer: self,
            buffered: VecDeque::new(),
            idle: Some(idle),
        }
    }
}

/// Reads `a` from its position (applying the reset policy to a missing or
/// out-of-range one). `None` when it is caught up.
fn read_next(
    a: &mut Assigned,
    reset: OffsetReset,
    broker: &Broker,
    notify: &Arc<Notify>,
    limit: ReadLimit,
) -> Result<Option<Batches>> {
    if a.partition.log().is_closed() {
        broker.check_open()?;
        // The topic was deleted; if one of that name exists again, read the
        // new one from the reset policy's position (its offsets have
        // nothing to do with the old ones).
        match broker.partition(&a.tp.topic, a.tp.partition) {
            Ok(p) if !p.log().is_closed() => {
                a.partition.log().unwatch(notify);
                p.log().watch(notify.clone());
                a.partition = p;
                a.position = None;
            }
            _ => {
                return Err(Error::UnknownTopic {
                    name: a.tp.topic.to_string(),
                });
            }
        }
    }
    let pos = resolve(a, reset)?;
    if pos == a.partition.end_offset() {
        return Ok(None);
    }
    let batches = match a.partition.read(pos, limit) {
        Ok(b) => b,
        Err(Error::OffsetOutOfRange {
            requested,
            start,
            end,
        }) => {
            let pos = match reset {
                OffsetReset::Earliest => start,
                OffsetReset::Latest => end,
                OffsetReset::Error => {
                    return Err(Error::OffsetOutOfRange {
                        requested,
                        start,
                        end,
                    });
                }
            };
            a.position = Some(pos);
            a.partition.read(pos, limit)?
        }
        Err(e) => return Err(e),
    };
    Ok((!batches.is_empty()).then_some(batches))
}

fn resolve(a: &mut Assigned, reset: OffsetReset) -> Result<Offset> {
    if let Some(p) = a.position {
        return Ok(p);
    }
    let p = match reset {
        OffsetReset::Earliest => a.partition.start_offset(),
        OffsetReset::Latest => a.partition.end_offset(),
        OffsetReset::Error => {
            return Err(Error::NoOffset {
                topic: a.tp.topic.to_string(),
                partition: a.tp.partition,
            });
        }
    };
    a.position = Some(p);
    Ok(p)
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // As `close`, ignoring errors.
        let _ = self.leave_group();
        self.unassign();
    }
}

impl<'a> IntoIterator for &'a mut Consumer {
    type Item = Result<ConsumerRecord>;
    type IntoIter = ConsumerIter<'a>;
    fn into_iter(self) -> ConsumerIter<'a> {
        self.iter()
    }
}

/// Iterator over a consumer's records; see [`Consumer::iter`].
#[derive(Debug)]
pub struct ConsumerIter<'a> {
    consumer: &'a mut Consumer,
    buffered: VecDeque<ConsumerRecord>,
    idle: Option<Duration>,
}

impl Iterator for ConsumerIter<'_> {
    type Item = Result<ConsumerRecord>;

    fn next(&mut self) -> Option<Result<ConsumerRecord>> {
        loop {
            if let Some(r) = self.buffered.pop_front() {
                return Some(Ok(r));
            }
            match self
                .consumer
                .poll(self.idle.unwrap_or(Duration::from_secs(3600)))
            {
                Ok(v) if v.is_empty() => {
                    if self.idle.is_some() {
                        return None;
                    }
                }
                Ok(v) => self.buffered.extend(v),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Consumer groups: subscription, rebalancing and committed offsets.
impl Consumer {
    fn group_id(&self, what: &str) -> Result<String> {
        self.membership
            .as_ref()
            .map(|m| m.group.clone())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{what} needs a group: set ConsumerConfig::group"))
            })
    }

    /// The member id the group gave this consumer, while subscribed.
    pub fn member_id(&self) -> Option<&str> {
        self.membership.as_ref().and_then(|m| m.member.as_deref())
    }

    /// The group generation this member last synced at (Kafka's
    /// `generationId`), while subscribed. Its commits carry it with the
    /// member id; the group refuses them ([`Error::Fenced`]) once it has
    /// removed the member.
    pub fn generation(&self) -> Option<u64> {
        self.membership
            .as_ref()
            .filter(|m| m.member.is_some())
            .map(|m| m.generation)
    }

    /// Joins the consumer's group for these topics: the group spreads their
    /// partitions over its members (each partition is read by one member at
    /// a time), and rebalances when members join or leave or the topics
    /// gain partitions. Partitions are taken over at the next
    /// [`poll`](Self::poll), from the group's committed offsets (or per the
    /// reset policy). Calling it again changes the subscription.
    ///
    /// ```
    /// use embedlog::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig};
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir()?;
    /// let broker = Broker::open(dir.path())?;
    /// let topic = broker.admin().create_topic("jobs", TopicConfig::default().partitions(2))?;
    /// topic.partition(1)?.append(&[Record::new("job 1")])?;
    ///
    /// let config = ConsumerConfig::default().group("workers").offset_reset(OffsetReset::Earliest);
    /// let mut worker = broker.consumer(config);
    /// worker.subscribe(&["jobs"])?;
    /// let records = worker.poll(Duration::from_millis(100))?;
    /// assert_eq!(records.len(), 1);
    /// worker.commit()?; // processed: the group resumes after it
    /// assert_eq!(worker.committed(("jobs", 1))?.map(|c| c.offset), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a group, after
    /// [`assign`](Self::assign), or with another assignor than the group's
    /// members use; [`Error::Closed`].
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        let names = topics.iter().map(|t| t.to_string()).collect();
        self.join(Topics::Names(names))
    }

    /// As [`subscribe`](Self::subscribe), to every topic whose name matches
    /// the glob `pattern` (`*` matches any run of characters, `?` one), now
    /// and as topics are created or deleted. Internal topics never match.
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        self.join(Topics::Pattern(pattern.to_string()))
    }

    /// Sets the callbacks run when this member's partitions change (see
    /// [`RebalanceListener`]).
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        if let Some(m) = self.membership.as_mut() {
            m.listener = Some(Box::new(listener));
        }
    }

    fn join(&mut self, topics: Topics) -> Result<()> {
        self.broker.check_open()?;
        let group = self.group_id("subscribe")?;
        if group.is_empty() || group.len() > MAX_GROUP_ID_LEN {
            return Err(Error::InvalidArgument(format!(
                "group ids are 1 to {MAX_GROUP_ID_LEN} bytes"
            )));
        }
        if self.member_id().is_none() && !self.assigned.is_empty() {
            return Err(Error::InvalidArgument(
                "this consumer has a manual assignment: unassign before subscribing".into(),
            ));
        }
        let coordinator = &self.broker.inner.groups;
        match self.member_id().map(str::to_string) {
            Some(member) => coordinator.resubscribe(&group, &member, topics.clone()),
            None => {
                let member = coordinator.join(
                    &group,
                    topics.clone(),
                    self.config.assignor.clone(),
                    self.notify.clone(),
                    self.config.max_poll_interval,
                    (self.broker.metadata_version(), self.broker.group_metadata()),
                )?;
                if let Some(m) = self.membership.as_mut() {
                    m.member = Some(member);
                    m.generation = 0;
                }
            }
        }
        if let Some(m) = self.membership.as_mut() {
            m.topics = Some(topics);
        }
        Ok(())
    }

    /// Leaves the group: revokes every partition (running the listener and
    /// the auto-commit), and the other members take them over.
    ///
    /// # Errors
    /// The auto-commit's error (the consumer leaves all the same).
    pub fn unsubscribe(&mut self) -> Result<()> {
        self.leave_group()
    }

    fn leave_group(&mut self) -> Result<()> {
        let Some((group, member)) = self
            .membership
            .as_ref()
            .and_then(|m| Some((m.group.clone(), m.member.clone()?)))
        else {
            return Ok(());
        };
        let owned = self.assignment();
        let r = self.revoke(&group, &member, &owned);
        self.broker.inner.groups.leave(&group, &member);
        if let Some(m) = self.membership.as_mut() {
            m.member = None;
            m.topics = None;
        }
        self.unassign();
        r
    }

    /// Leaves the group (as [`unsubscribe`](Self::unsubscribe)) and drops
    /// every assignment. Dropping a consumer does the same, ignoring errors.
    ///
    /// # Errors
    /// As [`unsubscribe`](Self::unsubscribe).
    pub fn close(mut self) -> Result<()> {
        let r = self.leave_group();
        self.unassign();
        r
    }

    /// Runs the listener and the auto-commit for `partitions`, then gives
    /// them up.
    fn revoke(&mut self, group: &str, member: &str, partitions: &[TopicPartition]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut r = Ok(());
        if self.config.auto_commit.is_some() {
            r = self.commit_partitions(partitions);
        }
        self.with_listener(|l, c| l.on_revoked(c, partitions));
        // Stop reading them before anyone else may start.
        self.drop_assigned(partitions);
        self.broker.inner.groups.release(group, member, partitions);
        r
    }

    /// Stops reading `partitions` (no lookups: cannot fail).
    fn drop_assigned(&mut self, partitions: &[TopicPartition]) {
        let notify = self.notify.clone();
        self.assigned.retain(|a| {
            let gone = partitions.contains(&a.tp);
            if gone {
                a.partition.log().unwatch(&notify);
            }
            !gone
        });
        self.next = 0;
    }

    fn with_listener(&mut self, f: impl FnOnce(&mut dyn RebalanceListener, &mut Consumer)) {
        let listener = self.membership.as_mut().and_then(|m| m.listener.take());
        if let Some(mut l) = listener {
            f(l.as_mut(), self);
            if let Some(m) = self.membership.as_mut() {
                m.listener.get_or_insert(l);
            }
        }
    }

    /// Moves this member towards the group's assignment (see the module
    /// docs of `group`) and runs the auto-commit when due.
    fn sync_group(&mut self) -> Result<()> {
        let now = self.broker.inner.clock.now_ms();
        let Some((group, member, due)) = self.membership.as_ref().and_then(|m| {
            let due = self.config.auto_commit.is_some_and(|every| {
                let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
                now.saturating_sub(m.last_auto_commit_ms) >= every_ms
            });
            Some((m.group.clone(), m.member.clone()?, due))
        }) else {
            return Ok(());
        };
        if due {
            if let Some(m) = self.membership.as_mut() {
                m.last_auto_commit_ms = now;
            }
            self.commit()?;
        }
        // At most a few steps: revoke, then acquire; a lost membership
        // rejoins once.
        for _ in 0..4 {
            let plan = self.broker.inner.groups.sync(
                &group,
                &member,
                self.broker.metadata_version(),
                || self.broker.group_metadata(),
            );
            if let Some(m) = self.membership.as_mut() {
                m.generation = plan.generation;
            }
            if plan.lost {
                let lost = self.assignment();
                self.drop_assigned(&lost);
                if !lost.is_empty() {
                    self.with_listener(|l, c| l.on_lost(c, &lost));
                }
                if let Some(m) = self.membership.as_mut() {
                    m.member = None;
                }
                let topics = self
                    .membership
                    .as_ref()
                    .and_then(|m| m.topics.clone())
                    .unwrap_or(Topics::Names(Vec::new()));
                return self.join(topics);
            }
            if !plan.revoke.is_empty() {
                self.revoke(&group, &member, &plan.revoke)?;
                continue;
            }
            if !plan.assigned.is_empty() {
                let mut all = self.assignment();
                all.extend(plan.assigned.iter().cloned());
                if let Err(e) = self.set_assignment(all) {
                    // Could not attach them (a topic deleted meanwhile):
                    // give them back rather than own them unread.
                    self.broker
                        .inner
                        .groups
                        .release(&group, &member, &plan.assigned);
                    return Err(e);
                }
                // Resume from the group's commits.
                for tp in &plan.assigned {
                    if let Some(c) = self.broker.inner.groups.committed(&group, tp)
                        && let Ok(a) = self.find(tp.clone())
                    {
                        a.position = Some(c.offset);
                    }
                }
                let assigned = plan.assigned;
                self.with_listener(|l, c| l.on_assigned(c, &assigned));
            }
            return Ok(());
        }
        Ok(())
    }

    /// Commits the positions of every assigned partition (the offsets after
    /// the records polls returned): the group resumes there. Commit after
    /// processing for at-least-once delivery; commit right after `poll`,
    /// before processing, for at-most-once.
    ///
    /// The commit is checked, stored durably (fsync'd) and visible to the
    /// group atomically: a partition's next owner resumes from it, or it
    /// fails and changes nothing.
    ///
    /// # Errors
    /// [`Error::CommitFailed`] if a rebalance took a partition away (its
    /// records will be delivered again to its new owner), or if the
    /// consumer is not a member and the group has members;
    /// [`Error::Fenced`] if the group removed this member (it did not poll
    /// within `max_poll_interval`): poll to rejoin;
    /// [`Error::InvalidArgument`] without a group; I/O errors.
    pub fn commit(&mut self) -> Result<()> {
        let all = self.assignment();
        self.commit_partitions(&all)
    }

    /// Commits the positions of `partitions` (which must be assigned).
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub fn commit_partitions(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let mut offsets = Vec::new();
        for tp in partitions {
            let a = self.find(tp.clone())?;
            if let Some(p) = a.position {
                offsets.push((tp.clone(), OffsetAndMetadata::new(p)));
            }
        }
        self.commit_offsets(offsets)
    }

    /// Commits explicit offsets (each the next offset to read), with
    /// metadata.
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub fn commit_offsets<I>(&mut self, offsets: I) -> Result<()>
    where
        I: IntoIterator<Item = (TopicPartition, OffsetAndMetadata)>,
    {
        let group = self.group_id("commit")?;
        let offsets: Vec<_> = offsets.into_iter().collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let committer = match (self.member_id(), self.generation()) {
            (Some(id), Some(generation)) => Committer::Member { id, generation },
            _ => Committer::Outside,
        };
        let commits = offsets.into_iter().map(|(tp, o)| (tp, Some(o))).collect();
        self.broker
            .store_commits(&group, committer, Commits::These(commits))
    }

    /// The group's committed offset for `tp`, if any.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a group.
    pub fn committed(&self, tp: impl Into<TopicPartition>) -> Result<Option<OffsetAndMetadata>> {
        let group = self.group_id("committed")?;
        Ok(self.broker.inner.groups.committed(&group, &tp.into()))
    }
}

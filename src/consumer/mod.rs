//! The consumer: reads assigned partitions from positions it keeps,
//! long-polling for new records.

mod config;
mod group;
mod record;
#[cfg(feature = "async")]
mod stream;
mod wakeup;

pub use config::{ConsumerConfig, IsolationLevel, OffsetReset};
use group::Membership;
pub use group::RebalanceListener;
pub use record::ConsumerRecord;
#[cfg(feature = "async")]
pub use stream::ConsumerStream;
pub use wakeup::ConsumerWakeup;

use crate::catalog::{Catalog, Partition, TopicPartition};
use crate::client::Context;
use crate::error::{Error, Result};
use crate::record::Offset;
use crate::record::{Batches, Compression};
use crate::storage::{Notify, ReadLimit};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Assigned {
    tp: TopicPartition,
    partition: Partition,
    /// `None` until the reset policy gives one.
    position: Option<Offset>,
    /// The records left of a batch a poll stopped inside (its record limit
    /// was reached), so that the next poll goes on without decompressing
    /// and decoding the batch again from its start.
    partial: Option<Partial>,
}

/// See [`Assigned::partial`].
#[derive(Debug)]
struct Partial {
    /// The batch's base offset and CRC: the same batch (not one that
    /// replaced it after a truncation).
    base: Offset,
    crc: u32,
    /// The position the iterator continues from.
    position: Offset,
    records: crate::record::BatchRecords,
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
///     println!("{}: {:?}", record.offset, record.value());
/// }
/// assert_eq!(consumer.position(("logs", 0))?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Consumer {
    ctx: Context,
    config: ConsumerConfig,
    assigned: Vec<Assigned>,
    notify: Arc<Notify>,
    /// Set by a [`ConsumerWakeup`]: the next wait for records ends at once.
    woken: Arc<std::sync::atomic::AtomicBool>,
    next: usize,
    /// An error a poll met after it had records to return: reported by the
    /// next poll.
    pending_error: Option<Error>,
    membership: Option<Membership>,
}

impl Consumer {
    pub(crate) fn new(ctx: Context, config: ConsumerConfig) -> Consumer {
        let now = ctx.catalog.clock().now_ms();
        let membership = config.group_id.clone().map(|group| Membership {
            group,
            member: None,
            generation: 0,
            topics: None,
            listener: None,
            last_auto_commit_ms: now,
        });
        Consumer {
            ctx,
            config,
            assigned: Vec::new(),
            notify: Arc::new(Notify::new()),
            woken: Arc::default(),
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
            return Err(Error::SubscriptionConflict {
                reason:
                    "this consumer is subscribed: its group assigns its partitions (unsubscribe first)"
                        .into(),
            });
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
            let partition = self.ctx.catalog.partition(&tp.topic, tp.partition)?;
            let position = self
                .assigned
                .iter()
                .find(|a| a.tp == tp)
                .and_then(|a| a.position);
            next.push(Assigned {
                tp,
                partition,
                position,
                partial: None,
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
            .ok_or_else(|| Error::PartitionNotAssigned {
                topic: tp.topic.to_string(),
                partition: tp.partition,
            })
    }

    /// Reads from `offset` next in partition `tp`. An offset outside the
    /// partition's range is handled by the reset policy at the next poll.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`] if `tp` is not assigned.
    pub fn seek(&mut self, tp: impl Into<TopicPartition>, offset: Offset) -> Result<()> {
        self.find(tp)?.position = Some(offset);
        Ok(())
    }

    /// Moves to the oldest record of each partition.
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`] if one is not assigned (then no
    /// position moves).
    pub fn seek_to_beginning<I>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Into<TopicPartition>,
    {
        self.seek_each(partitions, |a| Ok(a.partition.start_offset()))
            .map(drop)
    }

    /// Moves each of `partitions` to the offset `to` gives it, all or
    /// none: every partition is checked, and every offset found, before
    /// any position moves. Returns the new positions.
    fn seek_each<I>(
        &mut self,
        partitions: I,
        mut to: impl FnMut(&Assigned) -> Result<Offset>,
    ) -> Result<Vec<(TopicPartition, Offset)>>
    where
        I: IntoIterator,
        I::Item: Into<TopicPartition>,
    {
        let mut moves = Vec::new();
        for tp in partitions {
            let a = self.find(tp)?;
            moves.push((a.tp.clone(), to(a)?));
        }
        for (tp, offset) in &moves {
            self.find(tp.clone())?.position = Some(*offset);
        }
        Ok(moves)
    }

    /// Moves past the newest record of each partition (for a
    /// read-committed consumer, to the last stable offset: the records of
    /// open transactions are read once they commit).
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`] if one is not assigned.
    pub fn seek_to_end<I>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Into<TopicPartition>,
    {
        let isolation = self.config.isolation_level;
        self.seek_each(partitions, |a| Ok(latest(a, isolation)))
            .map(drop)
    }

    /// Moves each partition to its first record with a timestamp at or
    /// after `timestamp` (to its end if there is none), as Kafka's
    /// `offsetsForTimes` then `seek`. Returns the new positions.
    ///
    /// ```
    /// # use embedlog::{Broker, ConsumerConfig, Record, TopicConfig};
    /// # let dir = tempfile::tempdir()?;
    /// # let broker = Broker::open(dir.path())?;
    /// # broker.admin().create_topic("t", TopicConfig::default())?;
    /// # broker.partition("t", 0)?.append(&[Record::new("a").timestamp(10), Record::new("b").timestamp(20)])?;
    /// let mut consumer = broker.consumer(ConsumerConfig::default());
    /// consumer.assign([("t", 0)])?;
    /// let moved = consumer.seek_to_timestamp([("t", 0)], 15)?;
    /// assert_eq!(moved[0].1, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`] if one is not assigned; read errors
    /// (then no position moves).
    pub fn seek_to_timestamp<I>(
        &mut self,
        partitions: I,
        timestamp: i64,
    ) -> Result<Vec<(TopicPartition, Offset)>>
    where
        I: IntoIterator,
        I::Item: Into<TopicPartition>,
    {
        self.seek_each(partitions, |a| {
            Ok(match a.partition.offset_for_timestamp(timestamp)? {
                Some(o) => o,
                None => a.partition.end_offset(),
            })
        })
    }

    /// The offset the next poll reads from in `tp` (applying the reset
    /// policy if there is no position yet).
    ///
    /// # Errors
    /// [`Error::PartitionNotAssigned`] if `tp` is not assigned; [`Error::NoOffset`]
    /// under [`OffsetReset::Error`].
    pub fn position(&mut self, tp: impl Into<TopicPartition>) -> Result<Offset> {
        let (reset, isolation) = (self.config.offset_reset, self.config.isolation_level);
        let a = self.find(tp)?;
        resolve(a, reset, isolation)
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
            let out = self.fetch_once(fetch)?;
            if !out.is_empty() {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline || wakeup::take(&self.woken) {
                return Ok(out);
            }
            self.notify.wait_past(seen, deadline - now);
        }
    }

    /// A handle that ends this consumer's wait for records from another
    /// thread (Kafka's `wakeup()`): see [`ConsumerWakeup`].
    pub fn wakeup_handle(&self) -> ConsumerWakeup {
        ConsumerWakeup {
            woken: self.woken.clone(),
            notify: self.notify.clone(),
        }
    }

    /// One fetch of a poll (of `poll`, `poll_batches` or a stream), moving
    /// the rotation on. An error after some records is kept for the next
    /// poll and the records are returned.
    fn fetch_once<T>(&mut self, fetch: fn(&mut Self, &mut Vec<T>) -> Result<()>) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let r = fetch(self, &mut out);
        if let Some(n) = self.assigned.len().checked_sub(1) {
            // Start the next fetch at the next partition, for fairness.
            self.next = (self.next + 1) % (n + 1);
        }
        match r {
            Err(e) if out.is_empty() => Err(e),
            Err(e) => {
                self.pending_error = Some(e);
                Ok(out)
            }
            Ok(()) => Ok(out),
        }
    }

    /// The assigned partitions, starting at the one whose turn it is.
    fn rotation(&self) -> impl Iterator<Item = usize> + use<> {
        let (n, next) = (self.assigned.len(), self.next);
        (0..n).map(move |i| (next + i) % n)
    }

    fn fetch_records(&mut self, out: &mut Vec<ConsumerRecord>) -> Result<()> {
        self.ctx.catalog.check_open()?;
        self.sync_group()?;
        let max = self.config.max_poll_records;
        // Room for a full poll up front (bounded by the configuration),
        // rather than growing by doubling and copying the records.
        out.reserve(max.min(4096));
        let (reset, fetch_bytes, isolation) = (
            self.config.offset_reset,
            self.config.max_partition_fetch_bytes,
            self.config.isolation_level,
        );
        for i in self.rotation() {
            if out.len() >= max {
                break;
            }
            let a = &mut self.assigned[i];
            let before = out.len();
            // A read returns batches of one segment: keep reading this
            // partition while the record and byte budgets allow.
            let mut bytes_left = fetch_bytes;
            while out.len() < max && bytes_left > 0 {
                let limit = ReadLimit::bytes(bytes_left).records(max - out.len());
                let Some(batches) =
                    read_next(a, reset, &self.ctx.catalog, &self.notify, limit, isolation)?
                else {
                    break;
                };
                bytes_left = bytes_left.saturating_sub(batches.len_bytes());
                let mut aborted = Aborted::new(&a.partition, &batches, isolation);
                // What the records of this read's uncompressed batches
                // share (one allocation per read, not per batch: a batch
                // may hold a single record), and the next batch's place in
                // it.
                let mut run: Option<Arc<record::Shared>> = None;
                let mut next_at = 0;
                'batches: for b in batches.iter() {
                    let b = b?;
                    let at = next_at;
                    next_at += b.as_bytes().len();
                    let from = a.position.unwrap_or(0);
                    if aborted.skips(&b)? || b.header().is_control() {
                        // A transaction marker: not a record to deliver
                        // (its CRC is checked all the same).
                        b.verify_once()?;
                        a.position = Some(from.max(b.last_offset() + 1));
                        continue;
                    }
                    let mut records = match a.partial.take() {
                        Some(p)
                            if p.base == b.base_offset()
                                && p.crc == b.header().crc
                                && Some(p.position) == a.position =>
                        {
                            p.records
                        }
                        _ => b.records()?,
                    };
                    // What this batch's records share (one reference
                    // count per record): the read's bytes, or a compressed
                    // batch's decompressed records.
                    let own;
                    let (shared, shift) = if b.header().compression() == Compression::None {
                        let run = run.get_or_insert_with(|| {
                            record::Shared::new(a.tp.topic.clone(), batches.as_bytes().clone())
                        });
                        (&*run, at)
                    } else {
                        own = record::Shared::new(a.tp.topic.clone(), records.buffer().clone());
                        (&own, 0)
                    };
                    loop {
                        if out.len() >= max {
                            // Stopped inside the batch: its records
                            // iterator is kept for the next poll (a
                            // compressed batch is not decompressed again,
                            // and no batch's records are decoded again to
                            // step over the ones taken).
                            if let Some(position) = a.position {
                                a.partial = Some(Partial {
                                    base: b.base_offset(),
                                    crc: b.header().crc,
                                    position,
                                    records,
                                });
                            }
                            break 'batches;
                        }
                        let Some(r) = records.next_span() else { break };
                        let r = r?;
                        if r.offset < from {
                            continue;
                        }
                        a.position = Some(r.offset + 1);
                        out.push(ConsumerRecord::new(
                            shared,
                            a.tp.partition,
                            r.shifted(shift),
                        ));
                    }
                    // Compaction leaves gaps, also at the end of a batch
                    // (and empty batches): the position moves past the
                    // whole batch once all its records are taken.
                    a.position = Some(from.max(b.last_offset() + 1));
                }
            }
            let taken = &out[before..];
            crate::telemetry::records_out(&a.tp.topic, taken.len() as u64, || {
                taken
                    .iter()
                    .map(|r| r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len))
                    .sum::<usize>() as u64
            });
            report_lag(a, self.config.group_id.as_deref(), isolation);
        }
        Ok(())
    }

    fn fetch_batches(&mut self, out: &mut Vec<(TopicPartition, Batches)>) -> Result<()> {
        self.ctx.catalog.check_open()?;
        self.sync_group()?;
        let (reset, fetch_bytes, isolation) = (
            self.config.offset_reset,
            self.config.max_partition_fetch_bytes,
            self.config.isolation_level,
        );
        for i in self.rotation() {
            let a = &mut self.assigned[i];
            let Some(batches) = read_next(
                a,
                reset,
                &self.ctx.catalog,
                &self.notify,
                ReadLimit::bytes(fetch_bytes),
                isolation,
            )?
            else {
                continue;
            };
            let mut aborted = Aborted::new(&a.partition, &batches, isolation);
            if !aborted.any() {
                let mut last = None;
                for b in batches.iter() {
                    last = Some(b?.last_offset());
                }
                if let Some(last) = last {
                    a.position = Some(last + 1);
                    out.push((a.tp.clone(), batches));
                }
                report_lag(a, self.config.group_id.as_deref(), isolation);
                continue;
            }
            // Aborted batches are cut out: the runs between them are
            // returned as they are (zero-copy slices).
            let (mut pos, mut run_start, mut last) = (0usize, None, None);
            for b in batches.iter() {
                let b = b?;
                let size = b.header().size();
                if aborted.skips(&b)? {
                    if let Some(s) = run_start.take() {
                        out.push((a.tp.clone(), batches.slice(s..pos)));
                    }
                } else if run_start.is_none() {
                    run_start = Some(pos);
                }
                pos += size;
                last = Some(b.last_offset());
            }
            if let Some(s) = run_start {
                out.push((a.tp.clone(), batches.slice(s..pos)));
            }
            if let Some(last) = last {
                a.position = Some(last + 1);
            }
            report_lag(a, self.config.group_id.as_deref(), isolation);
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
    catalog: &Catalog,
    notify: &Arc<Notify>,
    limit: ReadLimit,
    isolation: IsolationLevel,
) -> Result<Option<Batches>> {
    if a.partition.log().is_closed() {
        catalog.check_open()?;
        // The topic was deleted; if one of that name exists again, read the
        // new one from the reset policy's position (its offsets have
        // nothing to do with the old ones).
        match catalog.partition(&a.tp.topic, a.tp.partition) {
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
    let pos = resolve(a, reset, isolation)?;
    let bound = match isolation {
        IsolationLevel::ReadUncommitted => Offset::MAX,
        IsolationLevel::ReadCommitted => a.partition.log.last_stable_offset(),
    };
    // Past the end is out of range (the reset policy applies below);
    // at the end, or at the stable offset, there is nothing to read yet.
    let end = a.partition.end_offset();
    if pos == end || (pos < end && pos >= bound) {
        return Ok(None);
    }
    let read = |pos| a.partition.log.read_below(pos, bound, limit);
    let batches = match read(pos) {
        Ok(b) => b,
        Err(Error::OffsetOutOfRange {
            requested,
            start,
            end,
        }) => {
            let pos = match reset {
                OffsetReset::Earliest => start,
                OffsetReset::Latest => latest(a, isolation).min(end),
                OffsetReset::Error => {
                    return Err(Error::OffsetOutOfRange {
                        requested,
                        start,
                        end,
                    });
                }
            };
            a.position = Some(pos);
            a.partition.log.read_below(pos, bound, limit)?
        }
        Err(e) => return Err(e),
    };
    Ok((!batches.is_empty()).then_some(batches))
}

/// The consumer's lag on `a` after a poll: records between its position
/// and the end it reads to (the last stable offset when read-committed).
fn report_lag(a: &Assigned, group: Option<&str>, isolation: IsolationLevel) {
    if let Some(p) = a.position {
        let lag = latest(a, isolation).saturating_sub(p);
        crate::telemetry::consumer_lag(group, &a.tp.topic, a.tp.partition, lag);
    }
}

/// Where "the latest" is for a consumer at `isolation`: the end, or the
/// last stable offset (Kafka's ListOffsets LATEST for read_committed).
fn latest(a: &Assigned, isolation: IsolationLevel) -> Offset {
    match isolation {
        IsolationLevel::ReadUncommitted => a.partition.end_offset(),
        IsolationLevel::ReadCommitted => a.partition.log.last_stable_offset(),
    }
}

fn resolve(a: &mut Assigned, reset: OffsetReset, isolation: IsolationLevel) -> Result<Offset> {
    if let Some(p) = a.position {
        return Ok(p);
    }
    let p = match reset {
        OffsetReset::Earliest => a.partition.start_offset(),
        OffsetReset::Latest => latest(a, isolation),
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

/// The aborted transactions of one read, for a read-committed consumer.
struct Aborted(crate::storage::AbortedFilter);

impl Aborted {
    fn new(p: &Partition, batches: &Batches, isolation: IsolationLevel) -> Aborted {
        if isolation == IsolationLevel::ReadCommitted {
            let first = batches
                .iter()
                .next()
                .and_then(|b| b.ok())
                .map(|b| b.base_offset());
            if let Some(first) = first {
                let list = p.log.aborted_transactions(first, Offset::MAX);
                return Aborted(crate::storage::AbortedFilter::new(list));
            }
        }
        Aborted(crate::storage::AbortedFilter::default())
    }

    /// Whether the read crosses any aborted transaction.
    fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether `b` belongs to an aborted transaction.
    fn skips(&mut self, b: &crate::record::Batch) -> Result<bool> {
        self.0.skips(b.header(), || {
            Ok(b.control_record()?
                .is_some_and(|m| m.kind == crate::record::ControlType::Abort))
        })
    }
}

//! A stream thread: a consumer in the application's group, a producer
//! (transactional under exactly-once), and the tasks of the partitions the
//! group assigns it.

use super::setup::restore_task_store;
use super::{ProcessingGuarantee, Shared, ThreadStatus};
use crate::streams::driver::open_store;
use crate::streams::processor::PunctuationType;
use crate::streams::store::{SharedStore, StoreSpec, checkpoint};
use crate::streams::task::{Task, TaskId, TaskMetrics, TaskSetup};
use crate::{
    Batches, Consumer, ConsumerConfig, Error, Header, IsolationLevel, OffsetAndMetadata,
    OffsetReset, Producer, ProducerConfig, RangeAssignor, RebalanceListener, RecordRef, Result,
    TopicPartition,
};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

thread_local! {
    /// The thread's work, where the rebalance callbacks (which run inside
    /// `Consumer::poll` on this thread) can reach it.
    static WORK: RefCell<Option<Work>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's work, if it has any.
fn with_work<T>(f: impl FnOnce(&mut Work) -> T) -> Option<T> {
    WORK.with(|w| match w.try_borrow_mut() {
        Ok(mut w) => w.as_mut().map(f),
        Err(_) => {
            // A consumer call made while the work is in use ran a
            // rebalance callback: the next poll's callbacks will see it.
            tracing::warn!("a rebalance callback ran while the stream thread was busy");
            None
        }
    })
}

/// Begins the producer's transaction under exactly-once, if none is open.
fn begin(producer: &Producer, eos: bool, in_txn: &mut bool) -> Result<()> {
    if eos && !*in_txn {
        producer.begin_transaction()?;
        *in_txn = true;
    }
    Ok(())
}

/// Sends what `task` produced, straight from its outbox (in the
/// transaction under exactly-once). A send's failure surfaces here only
/// for a record refused at once; the others surface at the flush or
/// transaction commit that must precede the offsets' commit.
fn send_output(producer: &Producer, eos: bool, in_txn: &mut bool, task: &mut Task) -> Result<()> {
    if !task.has_output() {
        return Ok(());
    }
    begin(producer, eos, in_txn)?;
    task.drain_outbox(|r| {
        let _delivery = match r.partition {
            Some(p) => producer.send_to(r.topic, p, r)?,
            None => producer.send(r.topic, r)?,
        };
        Ok(())
    })
}

/// The most a stream thread reads of a partition per poll (a first batch
/// larger than this is read whole).
const STREAM_FETCH_BYTES: usize = 256 << 10;

/// A task's partitions in a poll, each with the pieces of its batches.
type TaskParts<'a> = Vec<(&'a TopicPartition, Vec<&'a Batches>)>;

struct Listener;

impl RebalanceListener for Listener {
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        with_work(|w| {
            w.shared.set_thread(w.index, ThreadStatus::Rebalancing);
            match w.revoke(consumer, partitions, true) {
                // The group moved on before this member committed: the
                // work since the last commit is the new owners' to redo.
                Err(e) if migrated(&e) => {
                    tracing::warn!(thread = w.index, error = %e, "tasks migrated before their commit");
                    if let Err(e) = w.abort() {
                        w.failed.get_or_insert(e);
                    }
                }
                Err(e) => {
                    w.failed.get_or_insert(e);
                }
                Ok(()) => {}
            }
        });
    }

    fn on_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        with_work(|w| match w.assign(consumer, partitions) {
            // Its tasks are created and restored: the thread runs, even
            // while the poll that assigned them waits for records.
            Ok(()) if w.failed.is_none() => w.shared.set_thread(w.index, ThreadStatus::Running),
            Ok(()) => {}
            Err(e) => {
                w.failed.get_or_insert(e);
            }
        });
    }

    fn on_lost(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        with_work(|w| {
            if let Err(e) = w.revoke(consumer, partitions, false) {
                w.failed.get_or_insert(e);
            }
        });
    }
}

/// What a stream thread holds besides its consumer.
pub(crate) struct Work {
    shared: Arc<Shared>,
    index: usize,
    tasks: BTreeMap<TaskId, Task>,
    /// Each task's input partitions.
    inputs: BTreeMap<TaskId, Vec<TopicPartition>>,
    /// Input partition → its task.
    by_input: HashMap<(String, u32), TaskId>,
    producer: Producer,
    in_txn: bool,
    last_commit: Instant,
    /// When repartition topics were last purged.
    last_purge: Instant,
    failed: Option<Error>,
    /// Counts of tasks this thread closed.
    closed_metrics: TaskMetrics,
}

impl Work {
    fn eos(&self) -> bool {
        self.shared.config.guarantee == ProcessingGuarantee::ExactlyOnce
    }

    fn begin(&mut self) -> Result<()> {
        begin(&self.producer, self.eos(), &mut self.in_txn)
    }

    /// Processes a poll's batches, at most `max_poll_records` records:
    /// the consumer is moved back to the first record left of each
    /// partition. Batches come partition by partition (a partition's may
    /// come in several pieces, around aborted transactions), each record
    /// borrowed from its batch: no copy and no reference count per record.
    fn process(
        &mut self,
        consumer: &mut Consumer,
        polled: Vec<(TopicPartition, Batches)>,
    ) -> Result<()> {
        // Each task's partitions, in the order they came, each with its
        // pieces.
        let mut tasks: Vec<(TaskId, TaskParts<'_>)> = Vec::new();
        for (tp, batches) in &polled {
            let Some(&id) = self.by_input.get(&(tp.topic.to_string(), tp.partition)) else {
                continue;
            };
            let at = match tasks.iter().position(|(t, _)| *t == id) {
                Some(at) => at,
                None => {
                    tasks.push((id, Vec::new()));
                    tasks.len() - 1
                }
            };
            let parts = &mut tasks[at].1;
            match parts.iter_mut().find(|(p, _)| *p == tp) {
                Some((_, pieces)) => pieces.push(batches),
                None => parts.push((tp, vec![batches])),
            }
        }
        let mut budget = self.shared.config.max_poll_records;
        let mut rewind: Vec<(TopicPartition, u64)> = Vec::new();
        for (id, parts) in tasks {
            let mut heads: Vec<_> = parts
                .into_iter()
                .map(|(tp, pieces)| {
                    let records = pieces.into_iter().flat_map(Batches::records_ref);
                    (tp, records.peekable())
                })
                .collect();
            // A task reading several partitions takes the record with the
            // smallest timestamp at the head of a partition next (Kafka's
            // choice by timestamp across a task's partitions), so a join
            // sees its inputs in time order; each partition keeps its own
            // order. An undecodable record comes first, to fail the task.
            loop {
                let next = if let [(_, records)] = heads.as_mut_slice() {
                    records.peek().map(|_| 0)
                } else {
                    heads
                        .iter_mut()
                        .enumerate()
                        .filter_map(|(k, (_, records))| {
                            records
                                .peek()
                                .map(|r| (r.as_ref().map_or(i64::MIN, |r| r.timestamp), k))
                        })
                        .min()
                        .map(|(_, k)| k)
                };
                let Some(k) = next else { break };
                if budget == 0 {
                    break;
                }
                let (tp, records) = &mut heads[k];
                if let Some(r) = records.next() {
                    budget -= 1;
                    self.process_one(id, tp, r?)?;
                }
            }
            // What the budget left: read again from its first record.
            for (tp, mut records) in heads {
                if let Some(r) = records.next() {
                    rewind.push((tp.clone(), r?.offset));
                }
            }
        }
        for (tp, at) in rewind {
            consumer.seek(tp, at)?;
        }
        Ok(())
    }

    fn process_one(&mut self, id: TaskId, tp: &TopicPartition, r: RecordRef<'_>) -> Result<()> {
        let Some(task) = self.tasks.get_mut(&id) else {
            return Ok(());
        };
        let headers = if r.header_count == 0 {
            Vec::new()
        } else {
            r.headers()
                .map(|h| {
                    h.map(|(key, value)| {
                        Header::from_validated(
                            Bytes::copy_from_slice(key.as_bytes()),
                            value.map(Bytes::copy_from_slice),
                        )
                    })
                })
                .collect::<Result<_>>()?
        };
        task.process(
            &tp.topic,
            tp.partition,
            r.offset,
            r.key,
            r.value,
            r.timestamp,
            headers,
        )?;
        if task.has_output() {
            let eos = self.shared.config.guarantee == ProcessingGuarantee::ExactlyOnce;
            send_output(&self.producer, eos, &mut self.in_txn, task)?;
        }
        Ok(())
    }

    fn punctuate(&mut self) -> Result<()> {
        let now = crate::now_ms();
        let eos = self.eos();
        for t in self.tasks.values_mut() {
            t.punctuate(PunctuationType::WallClockTime, now)?;
            send_output(&self.producer, eos, &mut self.in_txn, t)?;
        }
        Ok(())
    }

    /// Commits every task: held-back updates and changelog writes are
    /// sent, then the input positions are committed (in the transaction
    /// under exactly-once).
    fn commit(&mut self, consumer: &mut Consumer) -> Result<()> {
        let eos = self.eos();
        for t in self.tasks.values_mut() {
            t.prepare_commit()?;
            send_output(&self.producer, eos, &mut self.in_txn, t)?;
        }
        let mut offsets = Vec::new();
        for (id, inputs) in &self.inputs {
            let stream_time = self.tasks.get(id).map_or(i64::MIN, |t| t.ctx.stream_time);
            for tp in inputs {
                let position = consumer.position(tp.clone())?;
                offsets.push((
                    tp.clone(),
                    OffsetAndMetadata::new(position).with_metadata(stream_time.to_string()),
                ));
            }
        }
        #[cfg(test)]
        if !offsets.is_empty() && self.refused_by_test()? {
            return Err(Error::CommitFailed {
                group: self.shared.config.application_id.clone(),
                reason: "refused by a test (a rebalance moved on)".into(),
            });
        }
        if self.eos() {
            if !offsets.is_empty() {
                self.begin()?;
                self.producer
                    .send_offsets_to_transaction(offsets.clone(), &consumer.group_metadata()?)?;
            }
            if self.in_txn {
                self.producer.commit_transaction()?;
                self.in_txn = false;
            }
        } else {
            self.producer.flush()?;
            if !offsets.is_empty() {
                consumer.commit_offsets(offsets.clone())?;
            }
        }
        self.last_commit = Instant::now();
        if self.last_purge.elapsed() >= self.shared.config.repartition_purge_interval {
            self.purge(&offsets);
            self.last_purge = self.last_commit;
        }
        // Persistent stores now hold what the committed changelogs hold:
        // a restart may resume their restore from here. (Under
        // exactly-once only a clean close checkpoints.)
        if !self.eos() {
            self.checkpoint_all()?;
        }
        Ok(())
    }

    /// Flushes every task's persistent stores and records where their
    /// changelogs end.
    fn checkpoint_all(&self) -> Result<()> {
        let admin = self.shared.broker.admin();
        for (id, task) in &self.tasks {
            let stores = task.persistent_stores();
            if stores.is_empty() {
                continue;
            }
            let mut offsets = checkpoint::Offsets::new();
            for (store, topic) in stores {
                store.lock().flush_cache()?;
                store.lock().data.flush()?;
                let end = admin
                    .list_offsets(&topic, id.partition, crate::OffsetSpec::Latest)?
                    .unwrap_or(0);
                offsets.insert(
                    (topic.to_string(), id.partition),
                    i64::try_from(end).unwrap_or(i64::MAX),
                );
            }
            let dir = self.shared.state_dir.join(id.to_string());
            checkpoint::write_checkpoint(&dir.join(checkpoint::FILE_NAME), &offsets)?;
        }
        Ok(())
    }

    /// The fault seam of tests: whether the group refuses this commit.
    /// What was sent before the refusal is where a real one leaves it:
    /// in the open transaction under exactly-once, flushed otherwise.
    #[cfg(test)]
    fn refused_by_test(&mut self) -> Result<bool> {
        use std::sync::atomic::Ordering;
        let refused = self
            .shared
            .refused_commits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if refused && !self.eos() {
            self.producer.flush()?;
        }
        Ok(refused)
    }

    /// Deletes what every task has consumed from repartition topics.
    fn purge(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) {
        let admin = self.shared.broker.admin();
        for (tp, o) in offsets {
            if self.shared.repartition.contains_key(&*tp.topic)
                && let Err(e) = admin.delete_records(&tp.topic, tp.partition, o.offset)
            {
                tracing::debug!(topic = %tp.topic, partition = tp.partition, error = %e, "could not purge a repartition topic");
            }
        }
    }

    fn task_of(&self, tp: &TopicPartition) -> Option<TaskId> {
        let sub = self.shared.subtopology_of(&tp.topic)?;
        Some(TaskId {
            subtopology: sub,
            partition: tp.partition,
        })
    }

    /// Creates the tasks of newly assigned partitions, their stores
    /// restored from their changelogs.
    fn assign(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) -> Result<()> {
        let mut new: BTreeMap<TaskId, Vec<TopicPartition>> = BTreeMap::new();
        for tp in partitions {
            if let Some(id) = self.task_of(tp) {
                new.entry(id).or_default().push(tp.clone());
            }
        }
        for (id, inputs) in new {
            if self.tasks.contains_key(&id) {
                for tp in inputs {
                    self.by_input
                        .insert((tp.topic.to_string(), tp.partition), id);
                    self.inputs.entry(id).or_default().push(tp);
                }
                continue;
            }
            let mut stream_time = i64::MIN;
            for tp in &inputs {
                if let Some(c) = consumer.committed(tp.clone())?
                    && let Ok(t) = c.metadata.parse::<i64>()
                {
                    stream_time = stream_time.max(t);
                }
            }
            let task = self.shared.create_task(id, stream_time)?;
            for tp in &inputs {
                self.by_input
                    .insert((tp.topic.to_string(), tp.partition), id);
            }
            self.inputs.insert(id, inputs);
            self.tasks.insert(id, task);
        }
        Ok(())
    }

    /// Closes the tasks of `partitions`: committing first (`clean`), or
    /// dropping their uncommitted work.
    fn revoke(
        &mut self,
        consumer: &mut Consumer,
        partitions: &[TopicPartition],
        clean: bool,
    ) -> Result<()> {
        let result = if clean {
            self.commit(consumer)
        } else {
            self.abort()
        };
        let mut gone = Vec::new();
        for tp in partitions {
            if let Some(id) = self.by_input.remove(&(tp.topic.to_string(), tp.partition)) {
                gone.push(id);
            }
        }
        for id in gone {
            self.inputs.remove(&id);
            if let Some(mut t) = self.tasks.remove(&id) {
                t.close();
                self.closed_metrics.add(&t.ctx.metrics);
                self.shared.unregister(id);
            }
        }
        result
    }

    /// After a commit the group refused (a rebalance moved on): drops
    /// every task's uncommitted work (the open transaction is aborted,
    /// the stores are rebuilt from their changelogs) and restarts the
    /// tasks of the partitions still assigned from their last commit.
    fn revive(&mut self, consumer: &mut Consumer) -> Result<()> {
        self.abort()?;
        let all: Vec<TopicPartition> = self.inputs.values().flatten().cloned().collect();
        self.revoke(consumer, &all, false)?;
        let owned = consumer.assignment();
        for tp in &owned {
            match consumer.committed(tp.clone())? {
                Some(c) => consumer.seek(tp.clone(), c.offset)?,
                None => consumer.seek_to_beginning([tp.clone()])?,
            }
        }
        self.last_commit = Instant::now();
        self.assign(consumer, &owned)
    }

    /// Drops the uncommitted work: the open transaction is aborted.
    fn abort(&mut self) -> Result<()> {
        if self.in_txn {
            self.in_txn = false;
            self.producer.abort_transaction()?;
        }
        Ok(())
    }

    fn metrics(&self) -> TaskMetrics {
        let mut m = self.closed_metrics;
        for t in self.tasks.values() {
            m.add(&t.ctx.metrics);
        }
        m
    }

    /// Closes every task: cleanly (a last commit) or not.
    fn close(&mut self, consumer: &mut Consumer, clean: bool) -> Result<()> {
        let all: Vec<TopicPartition> = self.inputs.values().flatten().cloned().collect();
        if clean {
            self.commit(consumer)?;
            self.checkpoint_all()?;
        }
        let r = self.revoke(consumer, &all, clean);
        if !clean {
            let _ = self.abort();
        }
        r
    }
}

impl Shared {
    /// A task with its stores restored.
    pub(crate) fn create_task(self: &Arc<Self>, id: TaskId, stream_time: i64) -> Result<Task> {
        let sub = self
            .topology
            .subtopologies
            .get(id.subtopology)
            .ok_or_else(|| Error::Topology(format!("no sub-topology {}", id.subtopology)))?;
        let mut stores: HashMap<String, (SharedStore, StoreSpec)> = self.globals.clone();
        let task_dir = self.state_dir.join(id.to_string());
        let checkpoint_path = task_dir.join(checkpoint::FILE_NAME);
        let persistent = sub
            .stores
            .iter()
            .any(|s| self.topology.stores.get(s).is_some_and(|s| s.persistent));
        let mut checkpoint = checkpoint::Offsets::new();
        if persistent {
            checkpoint = checkpoint::read_checkpoint(&checkpoint_path).unwrap_or_else(|e| {
                // The stores are restored in full instead.
                tracing::warn!(task = %id, error = %e, "ignoring a damaged checkpoint");
                checkpoint::Offsets::new()
            });
            // Under exactly-once the stores will soon hold uncommitted
            // writes: until a clean close writes a new checkpoint, a
            // restart must rebuild them from the changelog.
            if self.config.guarantee == ProcessingGuarantee::ExactlyOnce {
                checkpoint::delete_checkpoint(&checkpoint_path)?;
            }
        }
        for name in &sub.stores {
            let Some(spec) = self.topology.stores.get(name) else {
                continue;
            };
            let store = open_store(spec, &task_dir.join(name))?;
            if let Some(changelog) = self.topology.changelog_of(name) {
                let topic = self
                    .topology
                    .resolve(&self.config.application_id, &changelog);
                let from = checkpoint
                    .get(&(topic.clone(), id.partition))
                    .and_then(|o| u64::try_from(*o).ok())
                    .filter(|_| spec.persistent);
                restore_task_store(self, &store, &topic, id.partition, from)?;
            }
            self.register(name, id, store.clone());
            stores.insert(name.clone(), (store, spec.clone()));
        }
        let counts = self.layout.partitions.clone();
        Task::new(
            &self.topology,
            id,
            TaskSetup {
                application_id: self.config.application_id.as_str().into(),
                stores,
                cache_max_bytes: self.config.cache_max_bytes,
                deserialization: self.config.deserialization,
                wall_clock_ms: crate::now_ms(),
                stream_time,
                partition_counts: Rc::new(move |t: &str| {
                    counts
                        .get(t)
                        .copied()
                        .ok_or_else(|| Error::UnknownTopic { name: t.to_owned() })
                }),
            },
        )
    }
}

/// Whether `e` says the group moved on before a commit (Kafka's
/// `TaskMigratedException`): the tasks are restarted, the thread goes on.
fn migrated(e: &Error) -> bool {
    matches!(
        e.root_cause(),
        Error::CommitFailed { .. } | Error::Fenced { .. }
    )
}

/// The body of stream thread `index`: returns when told to stop (`Ok`) or
/// when processing fails (the error, after closing the tasks without
/// committing).
pub(crate) fn run(shared: Arc<Shared>, index: usize) -> Result<()> {
    let config = &shared.config;
    let eos = config.guarantee == ProcessingGuarantee::ExactlyOnce;
    let mut consumer = shared.broker.consumer(
        ConsumerConfig::default()
            .group(config.application_id.clone())
            .assignor(Arc::new(RangeAssignor))
            .offset_reset(OffsetReset::Earliest)
            .auto_commit(None)
            .max_poll_records(config.max_poll_records)
            // A poll takes at most max_poll_records and reads the rest
            // again next time: fetch a bounded amount per partition.
            .max_partition_fetch_bytes(STREAM_FETCH_BYTES)
            .isolation_level(if eos {
                IsolationLevel::ReadCommitted
            } else {
                IsolationLevel::ReadUncommitted
            }),
    );
    shared.stop_wakes(index, &consumer);
    let mut producer_config = ProducerConfig::default().idempotence(true);
    if eos {
        producer_config = producer_config.transactional_id(format!(
            "{}-{}-{index}",
            config.application_id, shared.instance
        ));
    }
    let producer = shared.broker.producer(producer_config);
    if eos {
        producer.init_transactions()?;
    }
    WORK.with(|w| {
        *w.borrow_mut() = Some(Work {
            shared: shared.clone(),
            index,
            tasks: BTreeMap::new(),
            inputs: BTreeMap::new(),
            by_input: HashMap::new(),
            producer,
            in_txn: false,
            last_commit: Instant::now(),
            last_purge: Instant::now(),
            failed: None,
            closed_metrics: TaskMetrics::default(),
        })
    });
    consumer.set_rebalance_listener(Listener);
    let result = run_loop(&shared, index, &mut consumer);
    let clean = result.is_ok();
    let closed = with_work(|w| {
        let r = w.close(&mut consumer, clean);
        shared.publish_metrics(index, w.metrics());
        r
    });
    let _ = consumer.close();
    let work = WORK.with(|w| w.borrow_mut().take());
    if let Some(w) = work {
        let _ = w.producer.close();
    }
    result.and(closed.unwrap_or(Ok(())))
}

fn run_loop(shared: &Arc<Shared>, index: usize, consumer: &mut Consumer) -> Result<()> {
    let topics: Vec<String> = shared.source_topics.clone();
    consumer.subscribe(topics)?;
    let commit_every = shared.config.commit_every();
    while !shared.stopping() {
        let records = consumer.poll_batches(shared.config.poll_timeout)?;
        let step = with_work(|w| -> Result<()> {
            if let Some(e) = w.failed.take() {
                return Err(e);
            }
            w.shared.set_thread(index, ThreadStatus::Running);
            w.process(consumer, records)?;
            w.punctuate()?;
            if w.last_commit.elapsed() >= commit_every {
                match w.commit(consumer) {
                    Err(e) if migrated(&e) => {
                        tracing::warn!(thread = index, error = %e, "tasks migrated before their commit: restarting them from the last commit");
                        w.revive(consumer)?;
                    }
                    r => r?,
                }
            }
            w.shared.publish_metrics(index, w.metrics());
            Ok(())
        });
        step.unwrap_or(Ok(()))?;
    }
    Ok(())
}

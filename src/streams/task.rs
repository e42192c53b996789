//! A task: one sub-topology's nodes for one partition, with its stores,
//! stream time, punctuations and the records it has yet to send.

use super::outbox::Outbox;
pub(crate) use super::outbox::{OutRecord, Outgoing};
use super::processor::{Lifecycle, PunctuationType, RecordMetadata};
use super::serde::SerdeRef;
use super::store::{SharedStore, StoreKind, StoreSpec};
use super::topology::{Instantiator, NodeId, RawSource, Topology};
use crate::{Error, Header, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

/// A task: sub-topology `subtopology` on partition `partition` of its
/// source topics (Kafka's `0_1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology (as [`Topology::describe`](super::Topology::describe) numbers them).
    pub subtopology: usize,
    /// The partition.
    pub partition: u32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// What to do with an input record whose key or value its serde cannot
/// decode (Kafka's `default.deserialization.exception.handler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeserializationErrors {
    /// Stop the task with the error (Kafka's `LogAndFailExceptionHandler`).
    #[default]
    Fail,
    /// Log a warning, count the record as skipped and go on
    /// (`LogAndContinueExceptionHandler`).
    LogAndContinue,
}

/// Counts a task keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Input records processed.
    pub processed: u64,
    /// Records dropped because they arrived after their window's grace
    /// period, counted as Kafka's `dropped-records` sensor counts them:
    /// once per window a record was too late for. A record of tumbling
    /// windows, or of sessions, counts at most once; a record of hopping
    /// windows counts once for each of its windows that had closed (and
    /// still updates those that had not); a record of sliding windows
    /// counts once if all its windows had closed, else once per closed
    /// window it falls in.
    pub dropped_late: u64,
    /// Records skipped: undecodable (with
    /// [`DeserializationErrors::LogAndContinue`]), without a key or value
    /// an operation needs, or (windowed aggregations) with a negative
    /// timestamp.
    pub skipped: u64,
}

impl TaskMetrics {
    pub(crate) fn add(&mut self, o: &TaskMetrics) {
        self.processed += o.processed;
        self.dropped_late += o.dropped_late;
        self.skipped += o.skipped;
    }
}

pub(crate) struct Schedule {
    node: NodeId,
    interval: i64,
    kind: PunctuationType,
    next: Option<i64>,
}

/// A task's state, which its processors reach through their context.
pub(crate) struct TaskCtx {
    pub(crate) id: TaskId,
    pub(crate) application_id: Arc<str>,
    pub(crate) stream_time: i64,
    pub(crate) wall_clock_ms: i64,
    /// The origin of the record being processed, valid while `in_record`
    /// (a punctuation has none); kept between records so that its topic
    /// costs no reference count per record.
    meta: Option<RecordMetadata>,
    in_record: bool,
    pub(crate) stores: HashMap<String, (SharedStore, StoreSpec)>,
    pub(crate) outbox: Outbox,
    pub(crate) schedules: Vec<Schedule>,
    pub(crate) metrics: TaskMetrics,
    pub(crate) cache_max_bytes: usize,
    deserialization: DeserializationErrors,
    /// Unresolved internal topic name → resolved.
    topics: Arc<BTreeMap<String, Arc<str>>>,
    partition_counts: PartitionCounts,
}

/// The partition count of a topic, by its resolved name.
pub(crate) type PartitionCounts = Rc<dyn Fn(&str) -> Result<u32>>;

impl TaskCtx {
    pub(crate) fn schedule(&mut self, node: NodeId, interval: i64, kind: PunctuationType) {
        self.schedules.push(Schedule {
            node,
            interval,
            kind,
            next: None,
        });
    }

    pub(crate) fn store<K: 'static, V: 'static>(
        &self,
        name: &str,
        node: &str,
        kind_ok: impl Fn(&StoreKind) -> bool,
    ) -> Result<(SharedStore, SerdeRef<K>, SerdeRef<V>)> {
        let (state, spec) = self.stores.get(name).ok_or_else(|| {
            Error::Topology(format!(
                "node {node} asked for store {name:?}, which is not connected to it (connect it when adding the processor)"
            ))
        })?;
        if !kind_ok(&spec.kind) {
            return Err(Error::Topology(format!(
                "node {node} asked for store {name:?} as another kind than it is ({:?})",
                spec.kind
            )));
        }
        let (k, v) = spec.serdes::<K, V>().ok_or_else(|| {
            Error::Topology(format!(
                "node {node} asked for store {name:?} with key or value types other than its serdes'"
            ))
        })?;
        Ok((state.clone(), k, v))
    }

    /// The name topic `name` (as the topology names it) has.
    pub(crate) fn resolve_topic(&self, name: &str) -> Arc<str> {
        self.topics
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.into())
    }

    /// The origin of the record being processed (`None` in a punctuation).
    pub(crate) fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.meta.as_ref().filter(|_| self.in_record)
    }

    pub(crate) fn partition_count(&self, topic: &str) -> Result<u32> {
        let topic = self.resolve_topic(topic);
        (self.partition_counts)(&topic)
    }

    pub(crate) fn deserialization_failed(&mut self, node: &str, e: Error) -> Result<()> {
        let at = self
            .record_metadata()
            .map(|m| format!("{} partition {} offset {}", m.topic, m.partition, m.offset))
            .unwrap_or_default();
        match self.deserialization {
            DeserializationErrors::Fail => Err(Error::Codec(format!(
                "task {}: source {node} could not decode the record at {at}: {e} (set StreamsConfig::deserialization_errors to LogAndContinue to skip such records)",
                self.id
            ))),
            DeserializationErrors::LogAndContinue => {
                tracing::warn!(task = %self.id, node, at, error = %e, "skipping a record its serdes cannot decode");
                self.metrics.skipped += 1;
                Ok(())
            }
        }
    }
}

/// Everything a task needs besides the topology.
pub(crate) struct TaskSetup {
    pub(crate) application_id: Arc<str>,
    /// The task's store instances (restored), plus the global stores.
    pub(crate) stores: HashMap<String, (SharedStore, StoreSpec)>,
    pub(crate) cache_max_bytes: usize,
    pub(crate) deserialization: DeserializationErrors,
    pub(crate) wall_clock_ms: i64,
    pub(crate) stream_time: i64,
    pub(crate) partition_counts: PartitionCounts,
}

/// A task's source node.
type SourceRef = Rc<RefCell<dyn RawSource>>;

/// One sub-topology's nodes for one partition.
pub(crate) struct Task {
    pub(crate) ctx: TaskCtx,
    /// Source nodes by resolved topic name (a task reads few topics: a
    /// scan beats hashing the name of every record).
    sources: Vec<(String, SourceRef)>,
    /// The source of the last record's topic, by the consumer's shared
    /// topic name (records of one partition share it): no name compare
    /// per record.
    last_source: Option<(Arc<str>, SourceRef)>,
    lifecycles: Vec<(NodeId, Box<dyn Lifecycle>)>,
    /// The task's own stores and their resolved changelog topics.
    logged: Vec<(SharedStore, Option<Arc<str>>)>,
    closed: bool,
    /// Records processed since the stores' cache use was last checked.
    since_drain: u32,
}

/// How many records a task processes between checks of its stores' cache
/// use (with a record cache): a cache can exceed its share by what that
/// many records write.
const DRAIN_CHECK_EVERY: u32 = 32;

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.ctx.id)
            .finish_non_exhaustive()
    }
}

impl Task {
    pub(crate) fn new(topology: &Topology, id: TaskId, setup: TaskSetup) -> Result<Task> {
        let sub = topology.subtopologies.get(id.subtopology).ok_or_else(|| {
            Error::Topology(format!("task {id}: no sub-topology {}", id.subtopology))
        })?;
        let app = setup.application_id.clone();
        let topics: BTreeMap<String, Arc<str>> = topology
            .internal
            .keys()
            .map(|t| (t.clone(), topology.resolve(&app, t).into()))
            .collect();
        let mut inst = Instantiator::new(&topology.nodes);
        inst.build_all(&sub.nodes)?;
        let sources = inst
            .sources
            .drain()
            .map(|(t, s)| (topology.resolve(&app, &t), s))
            .collect();
        let lifecycles = std::mem::take(&mut inst.lifecycles);
        if setup.cache_max_bytes > 0 {
            for name in &sub.stores {
                if let Some((state, _)) = setup.stores.get(name) {
                    state.lock().enable_cache();
                }
            }
        }
        let logged = sub
            .stores
            .iter()
            .filter_map(|s| {
                let (state, _) = setup.stores.get(s)?;
                let changelog = topology
                    .changelog_of(s)
                    .map(|t| Arc::from(topology.resolve(&app, &t)));
                Some((state.clone(), changelog))
            })
            .collect();
        let ctx = TaskCtx {
            id,
            application_id: app,
            stream_time: setup.stream_time,
            wall_clock_ms: setup.wall_clock_ms,
            meta: None,
            in_record: false,
            stores: setup.stores,
            outbox: Outbox::default(),
            schedules: Vec::new(),
            metrics: TaskMetrics::default(),
            cache_max_bytes: setup.cache_max_bytes,
            deserialization: setup.deserialization,
            topics: Arc::new(topics),
            partition_counts: setup.partition_counts,
        };
        let mut task = Task {
            ctx,
            sources,
            last_source: None,
            lifecycles,
            logged,
            closed: false,
            since_drain: 0,
        };
        for (_, l) in &mut task.lifecycles {
            l.init(&mut task.ctx)?;
        }
        Ok(task)
    }

    /// Processes one input record of `topic` (a resolved name).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn process(
        &mut self,
        topic: &Arc<str>,
        partition: u32,
        offset: u64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Vec<Header>,
    ) -> Result<()> {
        let source = match &self.last_source {
            Some((t, s)) if Arc::ptr_eq(t, topic) => s.clone(),
            _ => {
                let found = self
                    .sources
                    .iter()
                    .find(|(t, _)| t.as_str() == &**topic)
                    .map(|(_, s)| s.clone())
                    .ok_or_else(|| {
                        Error::Topology(format!(
                            "task {} has no source for topic {topic:?}",
                            self.ctx.id
                        ))
                    })?;
                self.last_source = Some((topic.clone(), found.clone()));
                found
            }
        };
        match &mut self.ctx.meta {
            Some(m) if Arc::ptr_eq(&m.topic, topic) => {
                m.partition = partition;
                m.offset = offset;
            }
            meta => {
                *meta = Some(RecordMetadata {
                    topic: topic.clone(),
                    partition,
                    offset,
                });
            }
        }
        // The source advances stream time, by the record's event time.
        self.ctx.metrics.processed += 1;
        self.ctx.in_record = true;
        let r = source
            .borrow_mut()
            .process_raw(&mut self.ctx, key, value, timestamp, headers);
        self.ctx.in_record = false;
        r?;
        if !self.ctx.schedules.is_empty() {
            self.punctuate(PunctuationType::StreamTime, self.ctx.stream_time)?;
        }
        // Without a record cache every write goes out after its record;
        // with one, the stores' share of it is checked every few records
        // (a lock per store, which a record need not pay).
        self.since_drain += 1;
        if self.ctx.cache_max_bytes == 0 || self.since_drain >= DRAIN_CHECK_EVERY {
            self.since_drain = 0;
            self.drain_changelogs(false)?;
        }
        Ok(())
    }

    /// Runs the punctuations of `kind` that are due at `now`.
    pub(crate) fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<()> {
        if kind == PunctuationType::WallClockTime {
            self.ctx.wall_clock_ms = now;
        }
        if now == i64::MIN {
            return Ok(());
        }
        let mut due = Vec::new();
        for s in self.ctx.schedules.iter_mut().filter(|s| s.kind == kind) {
            let aligned = now - now.rem_euclid(s.interval);
            match s.next {
                None => s.next = Some(aligned.saturating_add(s.interval)),
                Some(next) if now >= next => {
                    due.push(s.node);
                    s.next = Some(aligned.saturating_add(s.interval));
                }
                Some(_) => {}
            }
        }
        for node in due {
            if let Some((_, l)) = self.lifecycles.iter_mut().find(|(id, _)| *id == node) {
                l.punctuate(&mut self.ctx, kind, now)?;
            }
        }
        Ok(())
    }

    /// Moves the stores' changelog writes to the outbox: all of them
    /// (`all`, at commit), or those of stores over their share of the
    /// cache.
    fn drain_changelogs(&mut self, all: bool) -> Result<()> {
        let budget = if self.logged.is_empty() {
            0
        } else {
            self.ctx.cache_max_bytes / self.logged.len()
        };
        let (partition, ts) = (self.ctx.id.partition, self.ctx.stream_time.max(0));
        for (state, topic) in &self.logged {
            let mut s = state.lock();
            let held = s.dirty_bytes + s.cache_bytes;
            if held == 0 || (!all && held <= budget) {
                continue;
            }
            let dirty = s.take_dirty()?;
            drop(s);
            let Some(topic) = topic else { continue };
            for (k, v) in dirty {
                self.ctx
                    .outbox
                    .push_bytes(topic, Some(partition), Some(&k), v.as_deref(), ts);
            }
        }
        Ok(())
    }

    /// Prepares a commit: processors forward what they held back, every
    /// changelog write goes to the outbox, windowed stores expire old
    /// entries.
    pub(crate) fn prepare_commit(&mut self) -> Result<()> {
        for (_, l) in &mut self.lifecycles {
            l.commit(&mut self.ctx)?;
        }
        self.drain_changelogs(true)?;
        for (state, _) in &self.logged {
            state.lock().expire()?;
        }
        Ok(())
    }

    /// The task's stores that outlive the process, with their changelog
    /// topics (what a checkpoint covers).
    pub(crate) fn persistent_stores(&self) -> Vec<(SharedStore, Arc<str>)> {
        self.logged
            .iter()
            .filter_map(|(s, t)| {
                let t = t.as_ref()?;
                s.lock().data.persistent().then(|| (s.clone(), t.clone()))
            })
            .collect()
    }

    /// Hands each record to send to `send`, in the order they were
    /// produced, and empties the outbox.
    ///
    /// # Errors
    /// The first error of `send` (the records after it are dropped).
    pub(crate) fn drain_outbox(
        &mut self,
        send: impl FnMut(OutRecord<'_>) -> Result<()>,
    ) -> Result<()> {
        self.ctx.outbox.drain(send)
    }

    /// The records to send, owned, in the order they were produced.
    pub(crate) fn take_outbox(&mut self) -> Vec<Outgoing> {
        self.ctx.outbox.take()
    }

    /// Whether the task holds records to send.
    pub(crate) fn has_output(&self) -> bool {
        !self.ctx.outbox.is_empty()
    }

    /// Closes every processor (errors are logged: a close goes on).
    pub(crate) fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        for (_, l) in &mut self.lifecycles {
            if let Err(e) = l.close(&mut self.ctx) {
                tracing::warn!(task = %self.ctx.id, error = %e, "a processor failed to close");
            }
        }
    }
}

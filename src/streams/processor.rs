//! The Processor API: [`Processor`], the [`ProcessorContext`] it forwards
//! through, punctuation; and the nodes that run processors inside a task.

use super::record::StreamRecord;
use super::store::{KeyValueStore, SessionStore, StoreKind, WindowStore};
use super::task::TaskCtx;
use crate::{Error, Result};
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// What drives a punctuation: the task's stream time (the newest record
/// timestamp it has seen) or the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// Fires when stream time passes the next multiple of the interval;
    /// stands still while no records arrive.
    StreamTime,
    /// Fires when the wall clock passes the next multiple of the interval
    /// (the test driver's clock moves only when told).
    WallClockTime,
}

/// Where the record being processed came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Its topic.
    pub topic: std::sync::Arc<str>,
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
}

/// A node of a topology that runs user code (Kafka's
/// `org.apache.kafka.streams.processor.api.Processor`): it receives each
/// record of its parents and forwards what it wants to its children
/// through the context, with access to the stores connected to it.
///
/// One instance runs per task (per input partition), always on one
/// thread, so it needs neither `Send` nor locks.
///
/// ```
/// use embedlog::streams::{Processor, ProcessorContext, StreamRecord};
///
/// /// Forwards only records whose value is longer than the key.
/// struct Longer;
/// impl Processor<String, String> for Longer {
///     fn process(
///         &mut self,
///         ctx: &mut ProcessorContext<'_, String, String>,
///         record: StreamRecord<String, String>,
///     ) -> embedlog::Result<()> {
///         if record.value.len() > record.key.len() {
///             ctx.forward(record)?;
///         }
///         Ok(())
///     }
/// }
/// let builder = embedlog::streams::StreamsBuilder::new();
/// let words = builder.stream(
///     "words",
///     embedlog::streams::Consumed::with(
///         embedlog::streams::Serdes::string(),
///         embedlog::streams::Serdes::string(),
///     ),
/// );
/// words.process(|| Longer, &[]).to("longer");
/// # Ok::<(), embedlog::Error>(())
/// ```
pub trait Processor<KIn, VIn, KOut = KIn, VOut = VIn>: 'static {
    /// Called once when the task starts, before any record: fetch stores,
    /// schedule punctuations.
    ///
    /// # Errors
    /// An error stops the task (and its stream thread, as the error
    /// handler decides).
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Processes one record.
    ///
    /// # Errors
    /// As [`init`](Self::init).
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: StreamRecord<KIn, VIn>,
    ) -> Result<()>;

    /// A punctuation this processor scheduled is due; `timestamp` is the
    /// stream time or wall-clock time that made it due.
    ///
    /// # Errors
    /// As [`init`](Self::init).
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        kind: PunctuationType,
        timestamp: i64,
    ) -> Result<()> {
        let _ = (ctx, kind, timestamp);
        Ok(())
    }

    /// Called before each commit of the task: forward what was held back
    /// (what a record cache does in Kafka).
    ///
    /// # Errors
    /// As [`init`](Self::init).
    fn commit(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called once when the task closes.
    ///
    /// # Errors
    /// Reported, and the task closes anyway.
    fn close(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }
}

/// A node receiving records of one type (a processor's input side).
pub(crate) trait Node<K, V> {
    fn process(&mut self, task: &mut TaskCtx, record: StreamRecord<K, V>) -> Result<()>;
}

/// The calls every node gets besides records.
pub(crate) trait Lifecycle {
    fn init(&mut self, task: &mut TaskCtx) -> Result<()>;
    fn punctuate(
        &mut self,
        task: &mut TaskCtx,
        kind: PunctuationType,
        timestamp: i64,
    ) -> Result<()>;
    fn commit(&mut self, task: &mut TaskCtx) -> Result<()>;
    fn close(&mut self, task: &mut TaskCtx) -> Result<()>;
}

/// A child of a node: its name (for [`ProcessorContext::forward_to`]) and
/// its input side.
pub(crate) struct Child<K, V> {
    pub(crate) name: Rc<str>,
    pub(crate) node: Rc<RefCell<dyn Node<K, V>>>,
}

impl<K, V> Clone for Child<K, V> {
    fn clone(&self) -> Self {
        Child {
            name: self.name.clone(),
            node: self.node.clone(),
        }
    }
}

/// What a [`Processor`] sees of its task: forwarding to its children,
/// its stores, time, punctuation, and the current record's origin.
pub struct ProcessorContext<'a, K, V> {
    pub(crate) task: &'a mut TaskCtx,
    pub(crate) children: &'a [Child<K, V>],
    pub(crate) node: usize,
    pub(crate) node_name: &'a str,
}

impl<K, V> fmt::Debug for ProcessorContext<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorContext")
            .field("node", &self.node_name)
            .field("task", &self.task.id)
            .finish_non_exhaustive()
    }
}

impl<K: Clone + 'static, V: Clone + 'static> ProcessorContext<'_, K, V> {
    /// Sends `record` to every child of this node.
    ///
    /// # Errors
    /// What a child's processing returns.
    pub fn forward(&mut self, record: StreamRecord<K, V>) -> Result<()> {
        let Some((last, rest)) = self.children.split_last() else {
            return Ok(());
        };
        for child in rest {
            child.node.borrow_mut().process(self.task, record.clone())?;
        }
        last.node.borrow_mut().process(self.task, record)
    }

    /// Sends `record` to the child named `child` only.
    ///
    /// # Errors
    /// [`Error::Topology`] if this node has no such child; what the child's
    /// processing returns.
    pub fn forward_to(&mut self, child: &str, record: StreamRecord<K, V>) -> Result<()> {
        let found = self.children.iter().find(|c| &*c.name == child);
        match found {
            Some(c) => c.node.borrow_mut().process(self.task, record),
            None => Err(Error::Topology(format!(
                "node {} has no child named {child:?} (children: {})",
                self.node_name,
                self.children
                    .iter()
                    .map(|c| &*c.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

impl<K, V> ProcessorContext<'_, K, V> {
    /// The task's stream time: the newest record timestamp it has
    /// processed (`i64::MIN` before the first).
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }

    /// The wall-clock time, milliseconds since the epoch (the test
    /// driver's own clock under it).
    pub fn wall_clock_time(&self) -> i64 {
        self.task.wall_clock_ms
    }

    /// Where the record being processed came from (`None` in a
    /// punctuation).
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.task.record_metadata()
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.task.application_id
    }

    /// The task: its sub-topology and partition.
    pub fn task_id(&self) -> super::TaskId {
        self.task.id
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        self.node_name
    }

    /// Asks for [`Processor::punctuate`] every `interval`, by stream time
    /// or wall-clock time.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero interval.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> Result<()> {
        let ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        if ms == 0 {
            return Err(Error::InvalidArgument(format!(
                "node {}: a punctuation interval must be at least 1 ms",
                self.node_name
            )));
        }
        self.task.schedule(self.node, ms, kind);
        Ok(())
    }

    /// The key-value store `name`, connected to this node.
    ///
    /// # Errors
    /// [`Error::Topology`] if there is no such store, it is of another
    /// kind, or its serdes are of other types.
    pub fn key_value_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<SK, SV>> {
        let (state, keys, values) = self
            .task
            .store::<SK, SV>(name, self.node_name, |k| matches!(k, StoreKind::KeyValue))?;
        Ok(KeyValueStore {
            state,
            keys,
            values,
        })
    }

    /// The window store `name`.
    ///
    /// # Errors
    /// As [`key_value_store`](Self::key_value_store).
    pub fn window_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStore<SK, SV>> {
        let (state, keys, values) = self.task.store::<SK, SV>(name, self.node_name, |k| {
            matches!(k, StoreKind::Window { .. })
        })?;
        Ok(WindowStore {
            state,
            keys,
            values,
        })
    }

    /// The session store `name`.
    ///
    /// # Errors
    /// As [`key_value_store`](Self::key_value_store).
    pub fn session_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<SessionStore<SK, SV>> {
        let (state, keys, values) = self.task.store::<SK, SV>(name, self.node_name, |k| {
            matches!(k, StoreKind::Session { .. })
        })?;
        Ok(SessionStore {
            state,
            keys,
            values,
        })
    }

    /// Counts a record dropped because it arrived after its window's grace
    /// period.
    pub(crate) fn record_late(&mut self) {
        self.task.metrics.dropped_late += 1;
    }

    /// Counts a record dropped for a null key or value it needed.
    pub(crate) fn record_skipped(&mut self) {
        self.task.metrics.skipped += 1;
    }

    /// Whether processors may hold back updates until commit (a record
    /// cache is configured).
    pub(crate) fn caching(&self) -> bool {
        self.task.cache_max_bytes > 0
    }

    /// The per-processor budget of held-back bytes.
    pub(crate) fn cache_budget(&self) -> usize {
        self.task.cache_max_bytes
    }
}

/// A processor in a task: the processor, its children, its name.
pub(crate) struct ProcessorNode<P, KOut, VOut> {
    pub(crate) processor: P,
    pub(crate) children: Vec<Child<KOut, VOut>>,
    pub(crate) id: usize,
    pub(crate) name: Rc<str>,
}

impl<P, KOut, VOut> ProcessorNode<P, KOut, VOut> {
    fn ctx<'a>(
        task: &'a mut TaskCtx,
        children: &'a [Child<KOut, VOut>],
        id: usize,
        name: &'a str,
    ) -> ProcessorContext<'a, KOut, VOut> {
        ProcessorContext {
            task,
            children,
            node: id,
            node_name: name,
        }
    }
}

impl<P, KIn, VIn, KOut, VOut> Node<KIn, VIn> for ProcessorNode<P, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
{
    fn process(&mut self, task: &mut TaskCtx, record: StreamRecord<KIn, VIn>) -> Result<()> {
        let mut ctx = Self::ctx(task, &self.children, self.id, &self.name);
        self.processor.process(&mut ctx, record)
    }
}

/// A processor that can also take records as bytes (see
/// [`BytesNode`](super::topology::BytesNode)): `Ok(false)` when it cannot
/// now, and the record comes decoded instead.
pub(crate) trait BytesProcessor<KOut, VOut> {
    /// Whether it takes records as bytes, in a task with a record cache
    /// or not (`caching`).
    fn takes_bytes(&self, caching: bool) -> bool;

    fn process_bytes(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        key: &[u8],
        timestamp: i64,
    ) -> Result<bool>;
}

impl<P, KOut, VOut> super::topology::BytesNode for ProcessorNode<P, KOut, VOut>
where
    P: BytesProcessor<KOut, VOut>,
{
    fn takes_bytes(&self, task: &TaskCtx) -> bool {
        self.processor.takes_bytes(task.cache_max_bytes > 0)
    }

    fn process_bytes(&mut self, task: &mut TaskCtx, key: &[u8], timestamp: i64) -> Result<bool> {
        let mut ctx = Self::ctx(task, &self.children, self.id, &self.name);
        self.processor.process_bytes(&mut ctx, key, timestamp)
    }
}

/// The lifecycle of a node, whatever its input types (a processor node
/// implements `Node` for its input types only, through `P`).
pub(crate) struct LifecycleOf<P, KIn, VIn, KOut, VOut> {
    pub(crate) node: Rc<RefCell<ProcessorNode<P, KOut, VOut>>>,
    pub(crate) _types: std::marker::PhantomData<fn(KIn, VIn)>,
}

impl<P, KIn, VIn, KOut, VOut> Lifecycle for LifecycleOf<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
{
    fn init(&mut self, task: &mut TaskCtx) -> Result<()> {
        let mut n = self.node.borrow_mut();
        let n = &mut *n;
        let mut ctx = ProcessorNode::<P, KOut, VOut>::ctx(task, &n.children, n.id, &n.name);
        n.processor.init(&mut ctx)
    }

    fn punctuate(&mut self, task: &mut TaskCtx, kind: PunctuationType, ts: i64) -> Result<()> {
        let mut n = self.node.borrow_mut();
        let n = &mut *n;
        let mut ctx = ProcessorNode::<P, KOut, VOut>::ctx(task, &n.children, n.id, &n.name);
        n.processor.punctuate(&mut ctx, kind, ts)
    }

    fn commit(&mut self, task: &mut TaskCtx) -> Result<()> {
        let mut n = self.node.borrow_mut();
        let n = &mut *n;
        let mut ctx = ProcessorNode::<P, KOut, VOut>::ctx(task, &n.children, n.id, &n.name);
        n.processor.commit(&mut ctx)
    }

    fn close(&mut self, task: &mut TaskCtx) -> Result<()> {
        let mut n = self.node.borrow_mut();
        let n = &mut *n;
        let mut ctx = ProcessorNode::<P, KOut, VOut>::ctx(task, &n.children, n.id, &n.name);
        n.processor.close(&mut ctx)
    }
}

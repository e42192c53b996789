//! [`Streams`]: runs a [`Topology`] over a [`Broker`]'s topics with stream
//! threads in the application's consumer group.

mod config;
mod query;
mod setup;
mod thread;

pub use config::{ProcessingGuarantee, StreamsConfig};
pub use query::{ReadOnlyKeyValueStore, ReadOnlyWindowStore};

use super::store::{SharedStore, StoreSpec};
use super::task::{TaskId, TaskMetrics};
use super::topology::Topology;
use crate::{
    Broker, Consumer, ConsumerConfig, ConsumerWakeup, Error, IsolationLevel, OffsetReset, Result,
};
use parking_lot::{Condvar, Mutex};
use setup::Layout;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
#[cfg(test)]
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// The state of a [`Streams`] application (Kafka's `KafkaStreams.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamsState {
    /// Built, not started.
    Created,
    /// Threads are joining the group or restoring state.
    Rebalancing,
    /// Every thread is processing.
    Running,
    /// `close` was called; threads are finishing.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// A thread failed and the error handler asked to shut down; threads
    /// are finishing.
    PendingError,
    /// Shut down after an error.
    Error,
}

/// What to do after a stream thread fails (Kafka's
/// `StreamsUncaughtExceptionHandler` responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamThreadErrorResponse {
    /// Start a new thread in its place (its tasks restart from the last
    /// commit).
    ReplaceThread,
    /// Stop this instance's threads.
    ShutdownClient,
    /// Stop every instance of the application in this process.
    ShutdownApplication,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadStatus {
    Starting,
    Rebalancing,
    Running,
    Dead,
}

type StateListener = Arc<dyn Fn(StreamsState, StreamsState) + Send + Sync>;
type ErrorHandler = Arc<dyn Fn(&Error) -> StreamThreadErrorResponse + Send + Sync>;

/// What an application's threads share.
pub(crate) struct Shared {
    pub(crate) broker: Broker,
    pub(crate) topology: Topology,
    pub(crate) config: StreamsConfig,
    pub(crate) state_dir: PathBuf,
    /// This instance's id, in transactional ids.
    pub(crate) instance: String,
    pub(crate) layout: Layout,
    pub(crate) source_topics: Vec<String>,
    pub(crate) repartition: BTreeMap<String, ()>,
    /// Resolved source topic → sub-topology.
    subtopology_by_topic: HashMap<String, usize>,
    pub(crate) globals: HashMap<String, (SharedStore, StoreSpec)>,
    /// Store name → task → instance (interactive queries).
    registry: Mutex<BTreeMap<String, BTreeMap<TaskId, SharedStore>>>,
    stop: AtomicBool,
    /// The stream threads' (by index) and the global thread's
    /// (`usize::MAX`) consumers, woken to stop.
    wakeups: Mutex<BTreeMap<usize, ConsumerWakeup>>,
    /// A fault seam for tests: how many of the next commits the group
    /// refuses, as it does when a rebalance moved on before them.
    #[cfg(test)]
    pub(crate) refused_commits: AtomicUsize,
    status: Mutex<Status>,
    changed: Condvar,
    metrics: Mutex<Vec<TaskMetrics>>,
}

struct Status {
    state: StreamsState,
    threads: Vec<ThreadStatus>,
    listener: Option<StateListener>,
    handler: Option<ErrorHandler>,
    errors: Vec<Arc<Error>>,
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Tells every thread to stop, ending their polls at once rather than
    /// at the poll timeout.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        for w in self.wakeups.lock().values() {
            w.wakeup();
        }
    }

    /// Lets [`request_stop`](Self::request_stop) end the polls of thread
    /// `index`'s `consumer` (before the thread checks
    /// [`stopping`](Self::stopping) first).
    pub(crate) fn stop_wakes(&self, index: usize, consumer: &Consumer) {
        self.wakeups.lock().insert(index, consumer.wakeup_handle());
    }

    pub(crate) fn subtopology_of(&self, topic: &str) -> Option<usize> {
        self.subtopology_by_topic.get(topic).copied()
    }

    fn register(&self, store: &str, task: TaskId, instance: SharedStore) {
        self.registry
            .lock()
            .entry(store.to_owned())
            .or_default()
            .insert(task, instance);
    }

    fn unregister(&self, task: TaskId) {
        for m in self.registry.lock().values_mut() {
            m.remove(&task);
        }
    }

    fn publish_metrics(&self, index: usize, m: TaskMetrics) {
        let mut all = self.metrics.lock();
        if let Some(slot) = all.get_mut(index) {
            *slot = m;
        }
    }

    fn set_state(
        &self,
        status: &mut Status,
        to: StreamsState,
    ) -> Option<(StateListener, StreamsState)> {
        let from = status.state;
        if from == to {
            return None;
        }
        status.state = to;
        self.changed.notify_all();
        status.listener.clone().map(|l| (l, from))
    }

    /// Records a thread's status and moves the application's state.
    pub(crate) fn set_thread(&self, index: usize, s: ThreadStatus) {
        let mut status = self.status.lock();
        if status.threads.get(index) == Some(&s) {
            return;
        }
        if let Some(slot) = status.threads.get_mut(index) {
            *slot = s;
        }
        if matches!(
            status.state,
            StreamsState::Rebalancing | StreamsState::Running
        ) {
            let all_running = status.threads.iter().all(|t| *t == ThreadStatus::Running);
            let to = if all_running {
                StreamsState::Running
            } else {
                StreamsState::Rebalancing
            };
            let notify = self.set_state(&mut status, to);
            drop(status);
            if let Some((l, from)) = notify {
                l(to, from);
            }
        }
    }

    fn transition(&self, to: StreamsState) {
        let mut status = self.status.lock();
        let notify = self.set_state(&mut status, to);
        drop(status);
        if let Some((l, from)) = notify {
            l(to, from);
        }
    }
}

/// The instances of each application running in this process (for
/// `ShutdownApplication`).
static INSTANCES: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(0);

/// A running Streams application (Kafka's `KafkaStreams`): stream threads
/// that consume the topology's input topics in the consumer group named by
/// the application id, one task per input partition, each task's state in
/// stores restored from their changelog topics on start.
///
/// Several instances (in this process, with the same application id)
/// split the partitions between them. Dropping it closes it.
///
/// ```
/// use embedlog::streams::{Consumed, Serdes, Streams, StreamsConfig, StreamsBuilder};
/// use embedlog::{Broker, TopicConfig};
///
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// broker.admin().create_topic("in", TopicConfig::default())?;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("in", Consumed::with(Serdes::string(), Serdes::string()))
///     .map_values(|v: String| v.to_uppercase())
///     .to("out");
/// broker.admin().create_topic("out", TopicConfig::default())?;
/// let streams = Streams::new(&broker, builder.build()?, StreamsConfig::new("upper"))?;
/// streams.start()?;
/// streams.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Streams {
    shared: Arc<Shared>,
    threads: Mutex<Vec<Option<JoinHandle<()>>>>,
    global: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Streams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streams")
            .field("application_id", &self.shared.config.application_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Streams {
    /// Prepares `topology` to run on `broker`: checks the source topics,
    /// creates the internal topics (repartition topics, store changelogs)
    /// and reads the global tables. Nothing is processed before
    /// [`start`](Self::start).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`]; [`Error::Topology`] for a missing source
    /// topic, inputs whose partition counts do not match, or an internal
    /// topic with the wrong partition count; what reading the global
    /// tables returns.
    pub fn new(broker: &Broker, topology: Topology, config: StreamsConfig) -> Result<Streams> {
        config.validate()?;
        let app = config.application_id.clone();
        let layout = setup::prepare(broker, &topology, &app)?;
        let state_dir = config
            .state_dir
            .clone()
            .unwrap_or_else(|| broker.path().join("streams"))
            .join(&app);
        let globals = setup::open_globals(&topology, &state_dir)?;
        let source_topics: Vec<String> = topology
            .source_topics()
            .iter()
            .map(|t| topology.resolve(&app, t))
            .collect();
        let subtopology_by_topic = topology
            .subtopologies
            .iter()
            .flat_map(|s| s.sources.iter().map(move |t| (t.clone(), s.id)))
            .map(|(t, id)| (topology.resolve(&app, &t), id))
            .collect();
        let repartition = setup::repartition_topics(&topology, &app);
        let threads = config.threads;
        let shared = Arc::new(Shared {
            broker: broker.clone(),
            topology,
            instance: format!(
                "{}.{}",
                std::process::id(),
                NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed)
            ),
            config,
            state_dir,
            layout,
            source_topics,
            repartition,
            subtopology_by_topic,
            globals,
            registry: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
            wakeups: Mutex::new(BTreeMap::new()),
            #[cfg(test)]
            refused_commits: AtomicUsize::new(0),
            status: Mutex::new(Status {
                state: StreamsState::Created,
                threads: vec![ThreadStatus::Starting; threads],
                listener: None,
                handler: None,
                errors: Vec::new(),
            }),
            changed: Condvar::new(),
            metrics: Mutex::new(vec![TaskMetrics::default(); threads]),
        });
        Ok(Streams {
            shared,
            threads: Mutex::new(Vec::new()),
            global: Mutex::new(None),
        })
    }

    /// Calls `f(new, old)` on every state change (from the thread that
    /// caused it).
    pub fn set_state_listener(
        &self,
        f: impl Fn(StreamsState, StreamsState) + Send + Sync + 'static,
    ) {
        self.shared.status.lock().listener = Some(Arc::new(f));
    }

    /// Decides what happens when a stream thread fails (default:
    /// [`StreamThreadErrorResponse::ShutdownClient`], as Kafka's).
    pub fn set_uncaught_error_handler(
        &self,
        f: impl Fn(&Error) -> StreamThreadErrorResponse + Send + Sync + 'static,
    ) {
        self.shared.status.lock().handler = Some(Arc::new(f));
    }

    /// Starts the global table thread and the stream threads.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if it was started before; what reading the
    /// global tables returns.
    pub fn start(&self) -> Result<()> {
        if self.state() != StreamsState::Created {
            return Err(Error::InvalidArgument(format!(
                "Streams {:?} was already started (state {:?}): build a new one to run again",
                self.shared.config.application_id,
                self.state()
            )));
        }
        let positions = self.bootstrap_globals()?;
        INSTANCES.lock().push(Arc::downgrade(&self.shared));
        self.shared.transition(StreamsState::Rebalancing);
        let mut threads = self.threads.lock();
        for index in 0..self.shared.config.threads {
            threads.push(Some(spawn(self.shared.clone(), index)?));
        }
        if !self.shared.topology.globals.is_empty() {
            *self.global.lock() = Some(spawn_global(self.shared.clone(), positions)?);
        }
        Ok(())
    }

    /// The current state.
    pub fn state(&self) -> StreamsState {
        self.shared.status.lock().state
    }

    /// Waits until the state is `state` (or a terminal state it cannot
    /// leave), at most `timeout`; returns whether it is `state`.
    pub fn wait_for_state(&self, state: StreamsState, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut status = self.shared.status.lock();
        while status.state != state
            && !matches!(status.state, StreamsState::NotRunning | StreamsState::Error)
        {
            if self
                .shared
                .changed
                .wait_until(&mut status, deadline)
                .timed_out()
            {
                break;
            }
        }
        status.state == state
    }

    /// The errors stream threads failed with, oldest first.
    pub fn errors(&self) -> Vec<Arc<Error>> {
        self.shared.status.lock().errors.clone()
    }

    /// The counts of every task of this instance (records processed,
    /// dropped as late, skipped), as of each thread's last loop.
    pub fn metrics(&self) -> TaskMetrics {
        let mut m = TaskMetrics::default();
        for t in self.shared.metrics.lock().iter() {
            m.add(t);
        }
        m
    }

    /// The tasks this instance runs now.
    pub fn tasks(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self
            .shared
            .registry
            .lock()
            .values()
            .flat_map(|m| m.keys().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Reads the key-value store `name` of this instance's tasks (and
    /// global stores) while the application runs (Kafka's interactive
    /// queries).
    ///
    /// # Errors
    /// [`Error::Topology`] if the topology has no such store or it has
    /// other key or value types.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<ReadOnlyKeyValueStore<K, V>> {
        query::key_value(&self.shared, name)
    }

    /// Reads the window store `name` while the application runs.
    ///
    /// # Errors
    /// As [`key_value_store`](Self::key_value_store).
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<ReadOnlyWindowStore<K, V>> {
        query::window(&self.shared, name)
    }

    /// Stops the threads after a last commit, and waits for them.
    ///
    /// # Errors
    /// The first error a thread failed with, if any did.
    pub fn close(&self) -> Result<()> {
        let was = self.state();
        if was == StreamsState::Created {
            self.shared.transition(StreamsState::NotRunning);
            return Ok(());
        }
        if !matches!(was, StreamsState::NotRunning | StreamsState::Error) {
            self.shared
                .transition(if was == StreamsState::PendingError {
                    StreamsState::PendingError
                } else {
                    StreamsState::PendingShutdown
                });
        }
        self.shared.request_stop();
        loop {
            let next = self.threads.lock().iter_mut().find_map(Option::take);
            let Some(h) = next else { break };
            let _ = h.join();
        }
        if let Some(h) = self.global.lock().take() {
            let _ = h.join();
        }
        INSTANCES
            .lock()
            .retain(|w| w.upgrade().is_some_and(|s| !Arc::ptr_eq(&s, &self.shared)));
        let errors = self.errors();
        let end = if self.state() == StreamsState::PendingError || was == StreamsState::Error {
            StreamsState::Error
        } else {
            StreamsState::NotRunning
        };
        self.shared.transition(end);
        match errors.first() {
            Some(e) if end == StreamsState::Error => Err(Error::InvalidArgument(format!(
                "Streams {:?} stopped after a thread failed: {e}",
                self.shared.config.application_id
            ))),
            _ => Ok(()),
        }
    }

    /// Reads every global table's topic to its end; returns where each
    /// partition's reading stopped.
    fn bootstrap_globals(&self) -> Result<Vec<(String, u32, u64)>> {
        let mut positions = Vec::new();
        for g in &self.shared.topology.globals {
            let Some((store, _)) = self.shared.globals.get(&g.store) else {
                continue;
            };
            let partitions = self.shared.broker.topic(&g.topic)?.partition_count();
            for p in 0..partitions {
                let next =
                    setup::read_to_end(&self.shared.broker, &g.topic, p, 0, true, |k, v| {
                        if let Some(k) = k {
                            store.lock().restore(k, v)?;
                        }
                        Ok(())
                    })?;
                positions.push((g.topic.clone(), p, next));
            }
        }
        Ok(positions)
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing Streams on drop");
        }
    }
}

fn spawn(shared: Arc<Shared>, index: usize) -> Result<JoinHandle<()>> {
    let name = format!("embedlog-streams-{}-{index}", shared.config.application_id);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || thread_main(shared, index))
        .map_err(|e| Error::Io {
            op: "spawn a stream thread",
            path: PathBuf::new(),
            source: e,
        })
}

/// Runs stream thread `index`, replacing it when it fails and the handler
/// says so.
fn thread_main(shared: Arc<Shared>, index: usize) {
    loop {
        shared.set_thread(index, ThreadStatus::Starting);
        let result = thread::run(shared.clone(), index);
        let Err(e) = result else {
            shared.set_thread(index, ThreadStatus::Dead);
            return;
        };
        tracing::error!(application = %shared.config.application_id, thread = index, error = %e, "stream thread failed");
        let handler = shared.status.lock().handler.clone();
        let response = handler.map_or(StreamThreadErrorResponse::ShutdownClient, |h| h(&e));
        shared.status.lock().errors.push(Arc::new(e));
        match response {
            StreamThreadErrorResponse::ReplaceThread if !shared.stopping() => continue,
            StreamThreadErrorResponse::ReplaceThread => {}
            StreamThreadErrorResponse::ShutdownClient => shutdown_on_error(&shared),
            StreamThreadErrorResponse::ShutdownApplication => {
                let app = shared.config.application_id.clone();
                let all: Vec<Arc<Shared>> =
                    INSTANCES.lock().iter().filter_map(Weak::upgrade).collect();
                for s in all.iter().filter(|s| s.config.application_id == app) {
                    shutdown_on_error(s);
                }
                shutdown_on_error(&shared);
            }
        }
        shared.set_thread(index, ThreadStatus::Dead);
        return;
    }
}

fn shutdown_on_error(shared: &Shared) {
    shared.request_stop();
    shared.transition(StreamsState::PendingError);
}

/// Keeps the global stores up to date with their topics.
fn spawn_global(shared: Arc<Shared>, positions: Vec<(String, u32, u64)>) -> Result<JoinHandle<()>> {
    let name = format!("embedlog-streams-{}-global", shared.config.application_id);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if let Err(e) = global_loop(&shared, &positions) {
                tracing::error!(application = %shared.config.application_id, error = %e, "global table thread failed");
                shared.status.lock().errors.push(Arc::new(e));
                shutdown_on_error(&shared);
            }
        })
        .map_err(|e| Error::Io {
            op: "spawn the global table thread",
            path: PathBuf::new(),
            source: e,
        })
}

fn global_loop(shared: &Shared, positions: &[(String, u32, u64)]) -> Result<()> {
    let mut consumer = shared.broker.consumer(
        ConsumerConfig::default()
            .isolation_level(IsolationLevel::ReadCommitted)
            .offset_reset(OffsetReset::Earliest),
    );
    let mut by_topic = HashMap::new();
    for g in &shared.topology.globals {
        if let Some((store, _)) = shared.globals.get(&g.store) {
            by_topic.insert(g.topic.clone(), store.clone());
        }
    }
    shared.stop_wakes(usize::MAX, &consumer);
    consumer.assign(positions.iter().map(|(t, p, _)| (t.as_str(), *p)))?;
    // Go on from where the bootstrap read stopped.
    for (t, p, next) in positions {
        consumer.seek((t.as_str(), *p), *next)?;
    }
    while !shared.stopping() {
        for r in consumer.poll(shared.config.poll_timeout)? {
            if let (Some(store), Some(k)) = (by_topic.get(r.topic()), r.key_bytes()) {
                store.lock().restore(k, r.value_bytes())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

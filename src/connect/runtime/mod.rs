//! The runtime: runs connectors' tasks on threads of this process (Kafka
//! Connect's standalone mode), stores source offsets in a compacted topic,
//! feeds sinks from consumer groups, and restarts failed tasks.

mod errors;
mod offsets;
mod sink;
mod source;
mod task;

pub use task::{TaskState, TaskStatus};

use super::builtin::Builtin;
use super::config::ConnectorConfig;
use super::convert::{Converter, converter_named};
use super::error::{Error, Result};
use super::spi::{SinkConnector, SourceConnector};
use super::transform::TransformChain;
use crate::worker::Worker;
use crate::{Broker, Durability};
use errors::ErrorPolicy;
use parking_lot::Mutex;
use sink::{SinkTopics, SinkWork};
use source::SourceWork;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use task::{Backoff, SharedStatus};

/// Whether a source's records and its offsets are stored together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceGuarantee {
    /// Records are flushed, then their offsets stored: after a crash the
    /// records since the last stored offsets are produced again. Kafka's
    /// default.
    #[default]
    AtLeastOnce,
    /// Each poll's records and their offsets are one transaction (Kafka's
    /// `exactly.once.source.support=enabled`, `transaction.boundary=poll`):
    /// after a crash a restarted task resumes exactly after the last
    /// committed poll, and read-committed consumers never see a record
    /// twice. Each task's transactional id is `connect-<name>-<task>`.
    ExactlyOnce,
}

/// Settings of a [`Connect`] runtime (Kafka's worker configuration). Every
/// setter documents its default; a connector's configuration may override
/// the converters and `offset.flush.interval.ms`.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    offsets_topic: String,
    offset_flush_interval: Duration,
    source_guarantee: SourceGuarantee,
    durability: Durability,
    restart_backoff: Backoff,
    retry_backoff: Backoff,
    key_converter: String,
    value_converter: String,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        ConnectConfig {
            offsets_topic: "connect-offsets".into(),
            offset_flush_interval: Duration::from_secs(1),
            source_guarantee: SourceGuarantee::AtLeastOnce,
            durability: Durability::Buffered,
            restart_backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(60),
            },
            retry_backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(10),
            },
            key_converter: "bytes".into(),
            value_converter: "bytes".into(),
        }
    }
}

impl ConnectConfig {
    /// The compacted topic source offsets are stored in
    /// (`offset.storage.topic`). Default: `connect-offsets` (made with
    /// one partition if missing).
    pub fn offsets_topic(mut self, topic: impl Into<String>) -> Self {
        self.offsets_topic = topic.into();
        self
    }

    /// How often an at-least-once source stores its offsets and a sink
    /// flushes and commits (`offset.flush.interval.ms`). Shorter means
    /// fewer records delivered again after a crash, for more flushes.
    /// Default: 1 s (Kafka's 60 s pays for a network round trip; a commit
    /// here is a local append).
    pub fn offset_flush_interval(mut self, every: Duration) -> Self {
        self.offset_flush_interval = every;
        self
    }

    /// At-least-once or exactly-once sources. Default:
    /// [`SourceGuarantee::AtLeastOnce`].
    pub fn source_guarantee(mut self, guarantee: SourceGuarantee) -> Self {
        self.source_guarantee = guarantee;
        self
    }

    /// When the records and offsets a task writes count as stored.
    /// Default: [`Durability::Buffered`] (they survive the process being
    /// killed; [`Durability::Sync`] makes them survive power loss).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The wait before a failed task's replacement starts, doubling at
    /// each failure up to `max` and back to `initial` once an instance has
    /// committed. Default: 500 ms, up to 60 s.
    pub fn restart_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.restart_backoff = Backoff {
            initial,
            max: max.max(initial),
        };
        self
    }

    /// The wait before a call that failed with a retriable error (a
    /// task's `poll` or `put`) is made again, doubling up to `max`.
    /// Default: 100 ms, up to 10 s.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_backoff = Backoff {
            initial,
            max: max.max(initial),
        };
        self
    }

    /// The converters of connectors that do not name theirs
    /// (`key.converter`, `value.converter`): `bytes`, `string` or `json`.
    /// Default: `bytes` for both, which stores what a source gives as it
    /// is (bytes and text) and hands sinks the stored bytes.
    pub fn converters(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.key_converter = key.into();
        self.value_converter = value.into();
        self
    }

    /// A runtime configuration from a Kafka worker properties file's keys:
    /// `offset.storage.topic`, `offset.flush.interval.ms`,
    /// `exactly.once.source.support` (`enabled` / `disabled`),
    /// `key.converter`, `value.converter`; other keys (`bootstrap.servers`,
    /// `plugin.path`, ...) mean nothing in-process and are ignored.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad value.
    pub fn from_worker_properties(props: &ConnectorConfig) -> Result<Self> {
        let d = ConnectConfig::default();
        let guarantee = match props.choice_or(
            "exactly.once.source.support",
            &["enabled", "disabled", "preparing"],
            "disabled",
        )? {
            "enabled" => SourceGuarantee::ExactlyOnce,
            _ => SourceGuarantee::AtLeastOnce,
        };
        let key = props.get("key.converter").unwrap_or(&d.key_converter);
        let value = props.get("value.converter").unwrap_or(&d.value_converter);
        converter_named("worker", "key.converter", key)?;
        converter_named("worker", "value.converter", value)?;
        Ok(ConnectConfig {
            offsets_topic: props
                .get("offset.storage.topic")
                .unwrap_or(&d.offsets_topic)
                .to_string(),
            offset_flush_interval: props
                .duration_ms_or("offset.flush.interval.ms", d.offset_flush_interval)?,
            source_guarantee: guarantee,
            key_converter: key.to_string(),
            value_converter: value.to_string(),
            ..d
        })
    }
}

/// The runtime's settings, as its task threads read them.
#[derive(Debug)]
struct Settings {
    offsets_topic: String,
    exactly_once_source: bool,
    durability: Durability,
    retry_backoff: Backoff,
}

/// What a connector's configuration makes of the runtime's per-record
/// work: converters, transforms, error policy, flush interval.
#[derive(Debug)]
struct Pipes {
    key: Box<dyn Converter>,
    value: Box<dyn Converter>,
    transforms: TransformChain,
    flush_interval: Duration,
    /// Partitions of a topic a source writes that does not exist yet
    /// (`topic.creation.default.partitions`, default 1).
    new_topic_partitions: u32,
    /// A sink's topics.
    topics: SinkTopics,
    /// A sink's `consumer.max.poll.records` (default 500).
    max_poll_records: usize,
}

/// One task's surroundings.
struct TaskEnv {
    broker: Broker,
    settings: Arc<Settings>,
    connector: String,
    task: usize,
    task_config: ConnectorConfig,
    pipes: Pipes,
    errors: ErrorPolicy,
    status: SharedStatus,
}

type SourceFactory = Arc<dyn Fn() -> Box<dyn SourceConnector> + Send + Sync>;
type SinkFactory = Arc<dyn Fn() -> Box<dyn SinkConnector> + Send + Sync>;

/// Whether a connector brings records in or sends them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectorKind {
    /// A [`SourceConnector`].
    Source,
    /// A [`SinkConnector`].
    Sink,
}

/// A running connector's state, from [`Connect::status`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectorStatus {
    /// Its name.
    pub name: String,
    /// Its `connector.class`.
    pub class: String,
    /// Source or sink.
    pub kind: ConnectorKind,
    /// Its tasks, by number.
    pub tasks: Vec<TaskStatus>,
}

struct Running {
    kind: ConnectorKind,
    config: ConnectorConfig,
    tasks: Vec<(Worker, SharedStatus)>,
}

impl Running {
    fn stop(self) {
        // Ask them all first, so they finish together.
        for (w, _) in &self.tasks {
            w.request_stop();
        }
        for (w, _) in &self.tasks {
            w.stop();
        }
    }
}

/// Runs connectors in this process: Kafka Connect's standalone worker (or
/// Debezium's embedded engine) over a [`Broker`].
///
/// Each task runs on its own thread. A source task's records go through
/// the connector's transforms and converters to its topics (made with
/// `topic.creation.default.partitions` partitions if missing), and its
/// source offsets are stored in a compacted topic (`connect-offsets`) and
/// handed back when it restarts. A sink task is a member of the consumer
/// group `connect-<name>` over the connector's `topics` or `topics.regex`
/// (read committed; a new group starts at the earliest offsets), and the
/// group's offsets are committed after the task's `flush`. A task that
/// fails is replaced after a backoff; [`status`](Self::status) says how it
/// goes.
///
/// The built-in connector classes are registered: `FileStreamSource` and
/// `FileStreamSink` (and, with their features, the SQLite and Kafka ones).
/// Connector configuration keys the runtime reads:
///
/// | key | default | meaning |
/// |---|---|---|
/// | `name`, `connector.class` | required | |
/// | `tasks.max` | 1 | most tasks |
/// | `key.converter`, `value.converter` | the runtime's ([`ConnectConfig::converters`]), under the class's defaults | `bytes`, `string`, `json` |
/// | `transforms`, `predicates` | none | single-message transforms ([`TransformChain`]) |
/// | `errors.tolerance` | `none` | `all`: skip records a converter or transform fails on |
/// | `errors.log.enable` | false | log each skipped record |
/// | `errors.deadletterqueue.topic.name` | none | sinks: where skipped records' original bytes go |
/// | `errors.deadletterqueue.context.headers.enable` | false | add `__connect.errors.*` headers saying why |
/// | `offset.flush.interval.ms` | the runtime's | how often offsets are stored |
/// | `topics` / `topics.regex` | one required (sinks) | what a sink reads |
/// | `topic.creation.default.partitions` | 1 | partitions of a topic a source makes |
/// | `consumer.max.poll.records` | 500 | most records per `put` |
///
/// ```
/// use embedlog::Broker;
/// use embedlog::connect::{Connect, ConnectorConfig, TaskState};
/// # let dir = tempfile::tempdir()?;
/// # let input = dir.path().join("in.txt");
/// # std::fs::write(&input, "one\ntwo\n")?;
/// let broker = Broker::open(dir.path().join("data"))?;
/// let connect = Connect::new(&broker)?;
/// connect.start(
///     ConnectorConfig::new("lines", "FileStreamSource")
///         .set("file", input.display())
///         .set("topic", "lines"),
/// )?;
/// // ... the lines arrive in the topic `lines`
/// # let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
/// # while broker.topic("lines").map_or(0, |t| t.partition(0).map_or(0, |p| p.end_offset())) < 2 {
/// #     assert!(std::time::Instant::now() < deadline);
/// #     std::thread::sleep(std::time::Duration::from_millis(10));
/// # }
/// assert_eq!(connect.status("lines")?.tasks[0].state, TaskState::Running);
/// connect.close();
/// broker.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Connect {
    broker: Broker,
    config: ConnectConfig,
    settings: Arc<Settings>,
    sources: Mutex<BTreeMap<String, SourceFactory>>,
    sinks: Mutex<BTreeMap<String, SinkFactory>>,
    running: Mutex<BTreeMap<String, Running>>,
    /// Held by `start`, `stop` and `restart` from start to end, so a
    /// connector being stopped (its threads finishing) cannot be started
    /// again meanwhile; `status` and `connectors` do not wait for it.
    lifecycle: Mutex<()>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("config", &self.config)
            .field("connectors", &self.connectors())
            .finish_non_exhaustive()
    }
}

impl Connect {
    /// A runtime over `broker` with the default [`ConnectConfig`].
    ///
    /// # Errors
    /// The broker's, when it cannot make the offsets topic.
    pub fn new(broker: &Broker) -> Result<Connect> {
        Connect::with_config(broker, ConnectConfig::default())
    }

    /// A runtime over `broker` with `config`.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad converter name or offsets topic name;
    /// the broker's, when it cannot make the offsets topic.
    pub fn with_config(broker: &Broker, config: ConnectConfig) -> Result<Connect> {
        converter_named("worker", "key.converter", &config.key_converter)?;
        converter_named("worker", "value.converter", &config.value_converter)?;
        crate::validate_topic_name(&config.offsets_topic)
            .map_err(|e| Error::config("worker", "offset.storage.topic", e.to_string()))?;
        offsets::ensure_topic(broker, &config.offsets_topic)?;
        let settings = Arc::new(Settings {
            offsets_topic: config.offsets_topic.clone(),
            exactly_once_source: config.source_guarantee == SourceGuarantee::ExactlyOnce,
            durability: config.durability,
            retry_backoff: config.retry_backoff,
        });
        let connect = Connect {
            broker: broker.clone(),
            config,
            settings,
            sources: Mutex::new(BTreeMap::new()),
            sinks: Mutex::new(BTreeMap::new()),
            running: Mutex::new(BTreeMap::new()),
            lifecycle: Mutex::new(()),
        };
        for b in super::builtin::all() {
            match b {
                Builtin::Source(class, make) => connect.register_source(class, make),
                Builtin::Sink(class, make) => connect.register_sink(class, make),
            }
        }
        Ok(connect)
    }

    /// Makes `class` name a source connector made by `factory` (a name
    /// registered before is replaced).
    pub fn register_source<F>(&self, class: &str, factory: F)
    where
        F: Fn() -> Box<dyn SourceConnector> + Send + Sync + 'static,
    {
        self.sources
            .lock()
            .insert(class.to_string(), Arc::new(factory));
    }

    /// Makes `class` name a sink connector made by `factory` (a name
    /// registered before is replaced).
    pub fn register_sink<F>(&self, class: &str, factory: F)
    where
        F: Fn() -> Box<dyn SinkConnector> + Send + Sync + 'static,
    {
        self.sinks
            .lock()
            .insert(class.to_string(), Arc::new(factory));
    }

    /// Starts the connector `config` describes and its tasks.
    ///
    /// # Errors
    /// [`Error::AlreadyRunning`] if one of its name runs;
    /// [`Error::UnknownClass`]; [`Error::Config`] for a bad key (the
    /// runtime's or, from its `validate`, the connector's); the
    /// connector's `task_configs` error; [`Error::Io`] if a thread cannot
    /// start. Nothing is left running on an error.
    pub fn start(&self, config: ConnectorConfig) -> Result<()> {
        let _lifecycle = self.lifecycle.lock();
        self.start_now(config)
    }

    fn start_now(&self, config: ConnectorConfig) -> Result<()> {
        let name = config.required("name")?.to_string();
        check_name(&name)?;
        let class = config.required("connector.class")?.to_string();
        if self.running.lock().contains_key(&name) {
            return Err(Error::AlreadyRunning(name));
        }
        let source = self.sources.lock().get(&class).cloned();
        let sink = self.sinks.lock().get(&class).cloned();
        let (kind, config, task_configs, make) = match (source, sink) {
            (Some(factory), _) => {
                let connector = factory();
                let config = self.with_defaults(config, &connector.defaults());
                Pipes::new(&config, ConnectorKind::Source)?;
                connector.validate(&config)?;
                let task_configs = connector.task_configs(&config, tasks_max(&config)?)?;
                let connector = Arc::new(Mutex::new(connector));
                let make: MakeWork =
                    Arc::new(move |env, stop| SourceWork::start(env, &connector, stop));
                (ConnectorKind::Source, config, task_configs, make)
            }
            (None, Some(factory)) => {
                let connector = factory();
                let config = self.with_defaults(config, &connector.defaults());
                Pipes::new(&config, ConnectorKind::Sink)?;
                connector.validate(&config)?;
                let task_configs = connector.task_configs(&config, tasks_max(&config)?)?;
                let connector = Arc::new(Mutex::new(connector));
                let make: MakeWork = Arc::new(move |env, _stop| SinkWork::start(env, &connector));
                (ConnectorKind::Sink, config, task_configs, make)
            }
            (None, None) => {
                let mut known: Vec<String> = self.sources.lock().keys().cloned().collect();
                known.extend(self.sinks.lock().keys().cloned());
                known.sort();
                return Err(Error::UnknownClass {
                    connector: name,
                    class,
                    known: known.join(", "),
                });
            }
        };
        let mut started = Running {
            kind,
            config: config.clone(),
            tasks: Vec::new(),
        };
        for (task, task_config) in task_configs
            .into_iter()
            .take(tasks_max(&config)?)
            .enumerate()
        {
            let status = task::new_status(task);
            let (pipes, errors) = Pipes::new(&config, kind)?;
            let env = Arc::new(TaskEnv {
                broker: self.broker.clone(),
                settings: self.settings.clone(),
                connector: name.clone(),
                task,
                task_config,
                pipes,
                errors,
                status: status.clone(),
            });
            let make = make.clone();
            let thread = format!("connect-{name}-{task}");
            let start = Box::new(move |stop: &crate::worker::Stop| make(&env, stop));
            match task::spawn(&thread, status.clone(), self.config.restart_backoff, start) {
                Ok(worker) => started.tasks.push((worker, status)),
                Err(e) => {
                    started.stop();
                    return Err(Error::io("start a thread for task", thread, e));
                }
            }
        }
        self.running.lock().insert(name, started);
        Ok(())
    }

    /// Stops the connector `name`: each task finishes its round, stores
    /// what it handled (a source's offsets, a sink's flush and commit) and
    /// stops.
    ///
    /// # Errors
    /// [`Error::UnknownConnector`] if none of that name runs.
    pub fn stop(&self, name: &str) -> Result<()> {
        let _lifecycle = self.lifecycle.lock();
        self.stop_now(name)
    }

    fn stop_now(&self, name: &str) -> Result<()> {
        let running = self.running.lock().remove(name);
        match running {
            Some(r) => {
                r.stop();
                Ok(())
            }
            None => Err(Error::UnknownConnector(name.to_string())),
        }
    }

    /// Stops the connector `name` and starts it again with the same
    /// configuration (new connector and task instances, resuming from the
    /// stored offsets).
    ///
    /// # Errors
    /// As [`stop`](Self::stop) and [`start`](Self::start).
    pub fn restart(&self, name: &str) -> Result<()> {
        let _lifecycle = self.lifecycle.lock();
        let config = self
            .running
            .lock()
            .get(name)
            .map(|r| r.config.clone())
            .ok_or_else(|| Error::UnknownConnector(name.to_string()))?;
        self.stop_now(name)?;
        self.start_now(config)
    }

    /// The state of connector `name` and its tasks.
    ///
    /// # Errors
    /// [`Error::UnknownConnector`] if none of that name runs.
    pub fn status(&self, name: &str) -> Result<ConnectorStatus> {
        let running = self.running.lock();
        let r = running
            .get(name)
            .ok_or_else(|| Error::UnknownConnector(name.to_string()))?;
        Ok(ConnectorStatus {
            name: name.to_string(),
            class: r.config.get("connector.class").unwrap_or("").to_string(),
            kind: r.kind,
            tasks: r.tasks.iter().map(|(_, s)| s.lock().clone()).collect(),
        })
    }

    /// The names of the running connectors.
    pub fn connectors(&self) -> Vec<String> {
        self.running.lock().keys().cloned().collect()
    }

    /// The connector classes every runtime of this build knows, without
    /// one: the file connectors, and the SQLite and Kafka ones with their
    /// features.
    pub fn builtin_classes() -> Vec<(ConnectorKind, &'static str)> {
        super::builtin::all()
            .iter()
            .map(Builtin::kind_and_name)
            .collect()
    }

    /// The registered connector classes: sources, then sinks.
    pub fn classes(&self) -> (Vec<String>, Vec<String>) {
        (
            self.sources.lock().keys().cloned().collect(),
            self.sinks.lock().keys().cloned().collect(),
        )
    }

    /// Stops every connector (as [`stop`](Self::stop)). Dropping the
    /// runtime does the same.
    pub fn close(self) {
        self.stop_all();
    }

    /// `config` over the class's `defaults`, over the runtime's
    /// converters and flush interval.
    fn with_defaults(&self, config: ConnectorConfig, defaults: &[(&str, &str)]) -> ConnectorConfig {
        let interval = self.config.offset_flush_interval.as_millis();
        let mut merged = ConnectorConfig::default()
            .set("key.converter", &self.config.key_converter)
            .set("value.converter", &self.config.value_converter)
            .set("offset.flush.interval.ms", interval);
        for (k, v) in defaults {
            merged.insert(*k, v);
        }
        for (k, v) in config.iter() {
            merged.insert(k, v);
        }
        merged
    }

    fn stop_all(&self) {
        let _lifecycle = self.lifecycle.lock();
        let all = std::mem::take(&mut *self.running.lock());
        for (w, _) in all.values().flat_map(|r| r.tasks.iter()) {
            w.request_stop();
        }
        for r in all.into_values() {
            r.stop();
        }
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Starts an instance of a task (see [`task::Start`]).
type MakeWork = Arc<
    dyn Fn(&Arc<TaskEnv>, &crate::worker::Stop) -> Result<Option<Box<dyn task::Work>>>
        + Send
        + Sync,
>;

impl Pipes {
    /// What `config` asks of the runtime, checked.
    fn new(config: &ConnectorConfig, kind: ConnectorKind) -> Result<(Pipes, ErrorPolicy)> {
        let name = config.name();
        let key = converter_named(name, "key.converter", config.required("key.converter")?)?;
        let value = converter_named(name, "value.converter", config.required("value.converter")?)?;
        let transforms = TransformChain::from_config(config)?;
        let errors = ErrorPolicy::from_config(config, kind == ConnectorKind::Sink)?;
        let flush_interval =
            config.duration_ms_or("offset.flush.interval.ms", Duration::from_secs(1))?;
        let new_topic_partitions: u32 = config.parse_or("topic.creation.default.partitions", 1)?;
        if new_topic_partitions == 0 {
            return Err(Error::config(
                name,
                "topic.creation.default.partitions",
                "must be at least 1",
            ));
        }
        let max_poll_records: usize = config.parse_or("consumer.max.poll.records", 500)?;
        if max_poll_records == 0 {
            return Err(Error::config(
                name,
                "consumer.max.poll.records",
                "must be at least 1",
            ));
        }
        let list = config.list("topics");
        if let Some(dlq) = &errors.dead_letter_topic
            && list.contains(dlq)
        {
            return Err(Error::config(
                name,
                "errors.deadletterqueue.topic.name",
                format!(
                    "{dlq:?} is one of the sink's topics: its dead letters would be read again"
                ),
            ));
        }
        let regex = config
            .get("topics.regex")
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let topics = match (kind, regex) {
            (ConnectorKind::Source, _) => SinkTopics::List(Vec::new()),
            (ConnectorKind::Sink, None) if list.is_empty() => {
                return Err(Error::config(
                    name,
                    "topics",
                    "a sink needs topics (a comma-separated list) or topics.regex",
                ));
            }
            (ConnectorKind::Sink, None) => {
                for t in &list {
                    crate::validate_topic_name(t)
                        .map_err(|e| Error::config(name, "topics", e.to_string()))?;
                }
                SinkTopics::List(list)
            }
            (ConnectorKind::Sink, Some(_)) if !list.is_empty() => {
                return Err(Error::config(
                    name,
                    "topics.regex",
                    "set topics or topics.regex, not both",
                ));
            }
            (ConnectorKind::Sink, Some(re)) => SinkTopics::Regex(
                regex::Regex::new(&format!("^(?:{re})$"))
                    .map_err(|e| Error::config(name, "topics.regex", format!("bad regex: {e}")))?,
            ),
        };
        Ok((
            Pipes {
                key,
                value,
                transforms,
                flush_interval,
                new_topic_partitions,
                topics,
                max_poll_records,
            },
            errors,
        ))
    }
}

fn tasks_max(config: &ConnectorConfig) -> Result<usize> {
    let n: usize = config.parse_or("tasks.max", 1)?;
    if n == 0 {
        return Err(Error::config(
            config.name(),
            "tasks.max",
            "must be at least 1",
        ));
    }
    Ok(n)
}

/// A connector name names its consumer group (`connect-<name>`) and its
/// tasks' transactional ids: printable, at most 200 characters.
fn check_name(name: &str) -> Result<()> {
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::config(
            name,
            "name",
            "must be at most 200 printable characters",
        ));
    }
    Ok(())
}

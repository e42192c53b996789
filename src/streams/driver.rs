//! [`TopologyTestDriver`]: runs a topology on piped-in records, without
//! threads or a broker, deterministically.

use super::processor::PunctuationType;
use super::serde::SerdeRef;
use super::store::{KeyValueStore, SessionStore, SharedStore, StoreKind, StoreSpec, WindowStore};
use super::task::{DeserializationErrors, Outgoing, Task, TaskId, TaskMetrics, TaskSetup};
use super::topology::Topology;
use crate::{Error, Header, Result};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// A record read from an output topic of a [`TopologyTestDriver`].
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Its timestamp.
    pub timestamp: i64,
    /// Its headers.
    pub headers: Vec<Header>,
}

struct Inner {
    topology: Topology,
    application_id: Arc<str>,
    tasks: Vec<Task>,
    /// Resolved source topic → index in `tasks`.
    by_topic: HashMap<String, usize>,
    /// Global topic → its store.
    globals: HashMap<String, SharedStore>,
    /// Every store instance, by name.
    stores: HashMap<String, (SharedStore, StoreSpec)>,
    outputs: HashMap<String, VecDeque<Outgoing>>,
    offsets: HashMap<String, u64>,
    wall_clock_ms: i64,
    dir: PathBuf,
}

/// Runs a [`Topology`] on records you pipe in, one at a time, on the
/// calling thread (Kafka's `TopologyTestDriver`): each record is processed
/// to the end (through repartition topics too) and committed before the
/// call returns, so what the output topics hold is deterministic. Wall
/// clock time moves only when told
/// ([`advance_wall_clock_time`](Self::advance_wall_clock_time)). Every
/// topic has one partition; internal topics are named with the
/// application id `topology-test-driver` unless
/// [`with_application_id`](Self::with_application_id) says otherwise.
///
/// See the [module example](super).
#[derive(Clone)]
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
}

impl fmt::Debug for TopologyTestDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopologyTestDriver")
            .field("application_id", &self.inner.borrow().application_id)
            .finish_non_exhaustive()
    }
}

/// Makes a task's instance of a store (`dir`: where a persistent one may
/// keep its files).
pub(crate) fn open_store(spec: &StoreSpec, dir: &std::path::Path) -> Result<SharedStore> {
    let data = (spec.supplier)(dir)?;
    Ok(Arc::new(parking_lot::Mutex::new(
        super::store::StoreState::new(&spec.name, spec.kind, data, spec.logged),
    )))
}

impl TopologyTestDriver {
    /// A driver for `topology`, its wall clock at 0, no record cache.
    ///
    /// # Errors
    /// What a processor's `init` returns; a store that cannot be opened.
    pub fn new(topology: Topology) -> Result<Self> {
        TopologyTestDriver::with_config(
            topology,
            "topology-test-driver",
            0,
            DeserializationErrors::Fail,
        )
    }

    /// A driver whose application id is `application_id`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_application_id(topology: Topology, application_id: &str) -> Result<Self> {
        TopologyTestDriver::with_config(topology, application_id, 0, DeserializationErrors::Fail)
    }

    /// A driver with a record cache of `cache_max_bytes` (updates are still
    /// committed after each record, so a cache only merges the updates one
    /// record causes) and the given handling of undecodable records.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_config(
        topology: Topology,
        application_id: &str,
        cache_max_bytes: usize,
        deserialization: DeserializationErrors,
    ) -> Result<Self> {
        static DIRS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "embedlog-test-driver-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let app: Arc<str> = application_id.into();
        let mut stores: HashMap<String, (SharedStore, StoreSpec)> = HashMap::new();
        let mut globals = HashMap::new();
        for g in &topology.globals {
            if let Some(spec) = topology.stores.get(&g.store) {
                let s = open_store(spec, &dir.join("global").join(&g.store))?;
                globals.insert(g.topic.clone(), s.clone());
                stores.insert(g.store.clone(), (s, spec.clone()));
            }
        }
        let global_map: HashMap<String, (SharedStore, StoreSpec)> = stores.clone();
        let mut tasks = Vec::new();
        let mut by_topic = HashMap::new();
        for sub in &topology.subtopologies {
            let id = TaskId {
                subtopology: sub.id,
                partition: 0,
            };
            let mut task_stores = global_map.clone();
            for name in &sub.stores {
                if let Some(spec) = topology.stores.get(name) {
                    let s = open_store(spec, &dir.join(id.to_string()).join(name))?;
                    task_stores.insert(name.clone(), (s.clone(), spec.clone()));
                    stores.insert(name.clone(), (s, spec.clone()));
                }
            }
            let task = Task::new(
                &topology,
                id,
                TaskSetup {
                    application_id: app.clone(),
                    stores: task_stores,
                    cache_max_bytes,
                    deserialization,
                    wall_clock_ms: 0,
                    stream_time: i64::MIN,
                    partition_counts: Rc::new(|_| Ok(1)),
                },
            )?;
            for t in &sub.sources {
                by_topic.insert(topology.resolve(&app, t), tasks.len());
            }
            tasks.push(task);
        }
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(Inner {
                topology,
                application_id: app,
                tasks,
                by_topic,
                globals,
                stores,
                outputs: HashMap::new(),
                offsets: HashMap::new(),
                wall_clock_ms: 0,
                dir,
            })),
        })
    }

    /// A typed handle to pipe records into `topic`.
    pub fn input_topic<K, V>(
        &self,
        topic: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            driver: self.clone(),
            topic: topic.to_owned(),
            keys,
            values,
        }
    }

    /// A typed handle to read what the topology wrote to `topic`.
    pub fn output_topic<K, V>(
        &self,
        topic: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            driver: self.clone(),
            topic: topic.to_owned(),
            keys,
            values,
        }
    }

    /// Processes one record of `topic` given as bytes, to the end.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] if the topology does not read `topic`; what
    /// processing returns.
    pub fn pipe_raw(
        &self,
        topic: &str,
        key: Option<Bytes>,
        value: Option<Bytes>,
        timestamp: i64,
        headers: Vec<Header>,
    ) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        if !inner.by_topic.contains_key(topic) && !inner.globals.contains_key(topic) {
            return Err(Error::UnknownTopic {
                name: topic.to_owned(),
            });
        }
        inner.run(VecDeque::from([Outgoing {
            topic: topic.into(),
            key,
            value,
            timestamp,
            headers,
        }]))
    }

    /// Moves the wall clock forward by `by`, running the wall-clock
    /// punctuations that come due.
    ///
    /// # Errors
    /// What a punctuation returns.
    pub fn advance_wall_clock_time(&self, by: Duration) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.wall_clock_ms = inner
            .wall_clock_ms
            .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
        let now = inner.wall_clock_ms;
        let mut queue = VecDeque::new();
        for t in &mut inner.tasks {
            t.punctuate(PunctuationType::WallClockTime, now)?;
            t.prepare_commit()?;
            queue.extend(t.take_outbox());
        }
        inner.route(queue)
    }

    /// The key-value store `name`.
    ///
    /// # Errors
    /// [`Error::Topology`] if there is no such store or it has other types.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>> {
        let (state, keys, values) =
            self.store::<K, V>(name, |k| matches!(k, StoreKind::KeyValue))?;
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
    pub fn window_store<K: 'static, V: 'static>(&self, name: &str) -> Result<WindowStore<K, V>> {
        let (state, keys, values) =
            self.store::<K, V>(name, |k| matches!(k, StoreKind::Window { .. }))?;
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
    pub fn session_store<K: 'static, V: 'static>(&self, name: &str) -> Result<SessionStore<K, V>> {
        let (state, keys, values) =
            self.store::<K, V>(name, |k| matches!(k, StoreKind::Session { .. }))?;
        Ok(SessionStore {
            state,
            keys,
            values,
        })
    }

    #[allow(clippy::type_complexity)]
    fn store<K: 'static, V: 'static>(
        &self,
        name: &str,
        kind_ok: impl Fn(&StoreKind) -> bool,
    ) -> Result<(SharedStore, SerdeRef<K>, SerdeRef<V>)> {
        let inner = self.inner.borrow();
        let (state, spec) = inner.stores.get(name).ok_or_else(|| {
            let mut names: Vec<&str> = inner.stores.keys().map(String::as_str).collect();
            names.sort_unstable();
            Error::Topology(format!(
                "no store named {name:?} (stores: {})",
                names.join(", ")
            ))
        })?;
        if !kind_ok(&spec.kind) {
            return Err(Error::Topology(format!(
                "store {name:?} is a {:?} store",
                spec.kind
            )));
        }
        let (k, v) = spec.serdes::<K, V>().ok_or_else(|| {
            Error::Topology(format!(
                "store {name:?} has key or value types other than asked"
            ))
        })?;
        Ok((state.clone(), k, v))
    }

    /// The counts of every task: records processed, dropped as late,
    /// skipped.
    pub fn metrics(&self) -> TaskMetrics {
        let mut m = TaskMetrics::default();
        for t in &self.inner.borrow().tasks {
            m.add(&t.ctx.metrics);
        }
        m
    }

    /// The names of the topics written to so far (resolved: internal
    /// topics carry the application id).
    pub fn produced_topic_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.borrow().outputs.keys().cloned().collect();
        names.sort();
        names
    }

    /// The topic name `name` resolves to (internal topics get the
    /// application id in front).
    pub fn resolve(&self, name: &str) -> String {
        let inner = self.inner.borrow();
        inner.topology.resolve(&inner.application_id, name)
    }

    /// Closes every processor.
    pub fn close(&self) {
        let mut inner = self.inner.borrow_mut();
        for t in &mut inner.tasks {
            t.close();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in &mut self.tasks {
            t.close();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Inner {
    /// Processes `queue` and everything it leads to.
    fn run(&mut self, mut queue: VecDeque<Outgoing>) -> Result<()> {
        while let Some(r) = queue.pop_front() {
            if let (Some(store), Some(k)) = (self.globals.get(&*r.topic), r.key.clone()) {
                store.lock().restore(k, r.value.clone())?;
            }
            let Some(&i) = self.by_topic.get(&*r.topic) else {
                continue;
            };
            let offset = self.offsets.get(&*r.topic).copied().unwrap_or(0);
            self.offsets.insert(r.topic.to_string(), offset + 1);
            let task = &mut self.tasks[i];
            task.process(
                &r.topic,
                0,
                offset,
                r.key.as_deref(),
                r.value.as_deref(),
                r.timestamp,
                r.headers,
            )?;
            task.prepare_commit()?;
            let out = task.take_outbox();
            self.capture(&out);
            for o in out {
                if self.by_topic.contains_key(&*o.topic) || self.globals.contains_key(&*o.topic) {
                    queue.push_back(o);
                }
            }
        }
        Ok(())
    }

    fn capture(&mut self, out: &[Outgoing]) {
        for o in out {
            self.outputs
                .entry(o.topic.to_string())
                .or_default()
                .push_back(o.clone());
        }
    }

    /// Captures `out` and processes what goes to source topics.
    fn route(&mut self, out: VecDeque<Outgoing>) -> Result<()> {
        let out: Vec<Outgoing> = out.into();
        self.capture(&out);
        let queue = out
            .into_iter()
            .filter(|o| {
                self.by_topic.contains_key(&*o.topic) || self.globals.contains_key(&*o.topic)
            })
            .collect();
        self.run(queue)
    }
}

/// Pipes typed records into a topic of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    driver: TopologyTestDriver,
    topic: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
}

impl<K, V> fmt::Debug for TestInputTopic<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestInputTopic")
            .field("topic", &self.topic)
            .finish()
    }
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Processes a record with this key, value and timestamp.
    ///
    /// # Errors
    /// [`Error::Codec`] from the serdes; as
    /// [`TopologyTestDriver::pipe_raw`].
    pub fn pipe_input(&self, key: K, value: V, timestamp: i64) -> Result<()> {
        let k = self.keys.serialize(&key)?;
        let v = self.values.serialize(&value)?;
        self.driver
            .pipe_raw(&self.topic, k, v, timestamp, Vec::new())
    }

    /// Processes a record with a null value (a tombstone, for tables).
    ///
    /// # Errors
    /// As [`pipe_input`](Self::pipe_input).
    pub fn pipe_tombstone(&self, key: K, timestamp: i64) -> Result<()> {
        let k = self.keys.serialize(&key)?;
        self.driver
            .pipe_raw(&self.topic, k, None, timestamp, Vec::new())
    }

    /// Processes each `(key, value, timestamp)` in order.
    ///
    /// # Errors
    /// As [`pipe_input`](Self::pipe_input); records before the failing one
    /// were processed.
    pub fn pipe_all(&self, records: impl IntoIterator<Item = (K, V, i64)>) -> Result<()> {
        for (k, v, t) in records {
            self.pipe_input(k, v, t)?;
        }
        Ok(())
    }
}

/// Reads typed records from a topic a [`TopologyTestDriver`]'s topology
/// wrote to, oldest first; each record is read once.
pub struct TestOutputTopic<K, V> {
    driver: TopologyTestDriver,
    topic: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
}

impl<K, V> fmt::Debug for TestOutputTopic<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestOutputTopic")
            .field("topic", &self.topic)
            .finish()
    }
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    fn resolved(&self) -> String {
        self.driver.resolve(&self.topic)
    }

    /// The next record, if there is one.
    ///
    /// # Errors
    /// [`Error::Codec`] if the serdes cannot decode it.
    pub fn read_record(&self) -> Result<Option<TestRecord<K, V>>> {
        let topic = self.resolved();
        let next = self
            .driver
            .inner
            .borrow_mut()
            .outputs
            .get_mut(&topic)
            .and_then(VecDeque::pop_front);
        let Some(o) = next else { return Ok(None) };
        Ok(Some(TestRecord {
            key: self.keys.deserialize(o.key.as_deref())?,
            value: self.values.deserialize(o.value.as_deref())?,
            timestamp: o.timestamp,
            headers: o.headers,
        }))
    }

    /// The next record's key and value.
    ///
    /// # Errors
    /// As [`read_record`](Self::read_record).
    pub fn read_key_value(&self) -> Result<Option<(K, V)>> {
        Ok(self.read_record()?.map(|r| (r.key, r.value)))
    }

    /// Every record not read yet.
    ///
    /// # Errors
    /// As [`read_record`](Self::read_record).
    pub fn read_records_to_list(&self) -> Result<Vec<TestRecord<K, V>>> {
        let mut out = Vec::new();
        while let Some(r) = self.read_record()? {
            out.push(r);
        }
        Ok(out)
    }

    /// Every key and value not read yet.
    ///
    /// # Errors
    /// As [`read_record`](Self::read_record).
    pub fn read_key_values_to_list(&self) -> Result<Vec<(K, V)>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect())
    }

    /// The last value of each key among the records not read yet.
    ///
    /// # Errors
    /// As [`read_record`](Self::read_record).
    pub fn read_key_values_to_map(&self) -> Result<BTreeMap<K, V>>
    where
        K: Ord,
    {
        Ok(self.read_key_values_to_list()?.into_iter().collect())
    }

    /// How many records are not read yet.
    pub fn queue_size(&self) -> usize {
        let topic = self.resolved();
        self.driver
            .inner
            .borrow()
            .outputs
            .get(&topic)
            .map_or(0, VecDeque::len)
    }

    /// Whether every record was read.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }
}

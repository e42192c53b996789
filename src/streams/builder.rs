//! [`StreamsBuilder`]: the DSL's entry point, and the options its
//! operations take ([`Consumed`], [`Produced`], [`Grouped`],
//! [`Materialized`], [`Repartitioned`]).

use super::dsl::{GlobalKTable, KStream, KTable};
use super::processor::{BytesProcessor, Processor};
use super::serde::{SerdeRef, default_serde};
use super::store::{StoreSpec, Stores};
use super::topology::{
    Build, GlobalSpec, InternalKind, NodeId, NodeKind, NodeSpec, Topology, bytes_processor_build,
    processor_build, source_build_extracting,
};
use crate::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

/// The graph under construction, shared by the builder and its streams.
#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) stores: BTreeMap<String, StoreSpec>,
    pub(crate) internal: BTreeMap<String, InternalKind>,
    pub(crate) globals: Vec<GlobalSpec>,
    pub(crate) copartition: Vec<(BTreeSet<String>, String)>,
    counter: usize,
    /// The first mistake made while building (reported by `build`).
    pub(crate) error: Option<Error>,
}

pub(crate) type GraphRef = Rc<RefCell<Graph>>;

impl Graph {
    /// A generated name, as Kafka's `KSTREAM-FILTER-0000000003`.
    pub(crate) fn name(&mut self, kind: &str) -> String {
        let n = self.counter;
        self.counter += 1;
        format!("{kind}-{n:010}")
    }

    pub(crate) fn add(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: &[NodeId],
        stores: Vec<String>,
        build: Build,
    ) -> NodeId {
        let id = self.nodes.len();
        for &p in parents {
            self.nodes[p].children.push(id);
        }
        self.nodes.push(NodeSpec {
            name,
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            stores,
            build,
        });
        id
    }

    pub(crate) fn add_store(&mut self, spec: StoreSpec) -> Result<()> {
        if self.stores.contains_key(&spec.name) {
            return Err(Error::Topology(format!(
                "two stores are named {:?}: store names must be unique in a topology",
                spec.name
            )));
        }
        self.stores.insert(spec.name.clone(), spec);
        Ok(())
    }

    /// Adds a store; a duplicate name is reported by `build`.
    pub(crate) fn add_store_or_defer(&mut self, spec: StoreSpec) {
        if let Err(e) = self.add_store(spec) {
            self.error.get_or_insert(e);
        }
    }

    /// The source topics that feed `node`, walking up to the sources
    /// (stopping at repartition topics, which are sources themselves).
    pub(crate) fn upstream_topics(&self, node: NodeId) -> BTreeSet<String> {
        super::topology::upstream_topics(&self.nodes, node)
    }
}

/// How a source topic is read: key and value serdes.
pub struct Consumed<K, V> {
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) extractor: Option<TimestampExtractor<K, V>>,
}

/// Gives a record's event time from its key, value and the timestamp it
/// was stored with (Kafka's `TimestampExtractor`).
pub type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> i64 + Send + Sync>;

impl<K, V> fmt::Debug for Consumed<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Consumed")
    }
}

impl<K, V> Consumed<K, V> {
    /// Reads keys with `keys` and values with `values`.
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Consumed {
            keys,
            values,
            extractor: None,
        }
    }

    /// Takes each record's event time from `f(key, value, stored
    /// timestamp)` instead of its stored timestamp: what windows, joins,
    /// stream time and outputs see.
    ///
    /// ```
    /// use embedlog::streams::{Consumed, Serdes};
    /// // Values carry their own time: "1700000000000,click".
    /// let consumed = Consumed::with(Serdes::string(), Serdes::string())
    ///     .with_timestamp_extractor(|_, v: &String, stored| {
    ///         v.split(',').next().and_then(|t| t.parse().ok()).unwrap_or(stored)
    ///     });
    /// # let _ = consumed;
    /// ```
    pub fn with_timestamp_extractor(
        mut self,
        f: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.extractor = Some(Arc::new(f));
        self
    }
}

/// How records are written to a topic: serdes, and optionally the
/// partition of each record (by default the producer's partitioner: the
/// murmur2 hash of the key bytes, as Kafka's).
pub struct Produced<K, V> {
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) partitioner: Option<super::topology::Partitioner<K, V>>,
}

impl<K, V> fmt::Debug for Produced<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Produced")
    }
}

impl<K, V> Default for Produced<K, V> {
    fn default() -> Self {
        Produced {
            keys: None,
            values: None,
            partitioner: None,
        }
    }
}

impl<K, V> Produced<K, V> {
    /// Writes keys with `keys` and values with `values`.
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Produced {
            keys: Some(keys),
            values: Some(values),
            partitioner: None,
        }
    }

    /// Chooses each record's partition with `f(key, value, partitions)`.
    pub fn partitioner(mut self, f: impl Fn(&K, &V, u32) -> u32 + Send + Sync + 'static) -> Self {
        self.partitioner = Some(Arc::new(f));
        self
    }
}

/// The serdes of a grouping (used for its repartition topic, if the key
/// changed).
pub struct Grouped<K, V> {
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> fmt::Debug for Grouped<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grouped")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K, V> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped {
            keys: None,
            values: None,
            name: None,
        }
    }
}

impl<K, V> Grouped<K, V> {
    /// Groups with these serdes.
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Grouped {
            keys: Some(keys),
            values: Some(values),
            name: None,
        }
    }

    /// Names the repartition topic (`<application id>-<name>-repartition`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How a repartition topic is made: its name, partition count and serdes.
pub struct Repartitioned<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<u32>,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
}

impl<K, V> fmt::Debug for Repartitioned<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repartitioned")
            .field("name", &self.name)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl<K, V> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Repartitioned {
            name: None,
            partitions: None,
            keys: None,
            values: None,
        }
    }
}

impl<K, V> Repartitioned<K, V> {
    /// Names the topic (`<application id>-<name>-repartition`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Gives the topic this many partitions (by default, as many as the
    /// stream's source topics).
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = Some(n);
        self
    }

    /// Writes and reads the topic with these serdes.
    pub fn with(mut self, keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        self.keys = Some(keys);
        self.values = Some(values);
        self
    }
}

/// How the store of a table or aggregation is made: its name (to query
/// it), serdes, changelog and storage.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) logged: bool,
    pub(crate) storage: Option<StorageChoice>,
    pub(crate) retention: Option<std::time::Duration>,
}

/// A store's storage, as [`Materialized::with_storage`] sets it.
pub(crate) type StorageChoice = (bool, super::store::Supplier);

impl<K, V> fmt::Debug for Materialized<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Materialized")
            .field("name", &self.name)
            .field("logged", &self.logged)
            .finish_non_exhaustive()
    }
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            keys: None,
            values: None,
            logged: true,
            storage: None,
            retention: None,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// A store named `name` (queryable under that name; its changelog is
    /// `<application id>-<name>-changelog`).
    pub fn as_(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            ..Materialized::default()
        }
    }

    /// Stores keys and values with these serdes.
    pub fn with(mut self, keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        self.keys = Some(keys);
        self.values = Some(values);
        self
    }

    /// Keeps no changelog (the state is lost with the process).
    pub fn with_logging_disabled(mut self) -> Self {
        self.logged = false;
        self
    }

    /// Keeps the data in `supplier`'s storage (see
    /// [`StoreSpec::with_storage`]).
    pub fn with_storage(
        mut self,
        persistent: bool,
        supplier: impl Fn(&std::path::Path) -> Result<Box<dyn super::BytesStore>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.storage = Some((persistent, Arc::new(supplier)));
        self
    }

    /// Keeps the data on disk, in a
    /// [`PersistentStore`](super::PersistentStore) per task (default
    /// configuration): for state larger than memory, restored after a
    /// restart from its checkpoint rather than from the changelog's
    /// beginning.
    ///
    /// ```
    /// use embedlog::streams::{Consumed, Materialized, Serdes, StreamsBuilder};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key()
    ///     .count_with(Materialized::as_("clicks-per-user").persistent());
    /// builder.build()?;
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    #[cfg(feature = "streams-persistent")]
    pub fn persistent(self) -> Self {
        self.with_storage(true, super::store::persistent::supplier)
    }

    /// Keeps a windowed store's entries for `retention` (measured from the
    /// newest time it has seen), to query closed windows for longer; only
    /// windowed aggregations use it.
    ///
    /// Default: as long as the windows need (time windows: size plus
    /// grace; sliding windows: twice the time difference plus grace;
    /// sessions: gap plus grace, after the session's end).
    ///
    /// # Errors
    /// None here; a retention shorter than the default makes
    /// [`StreamsBuilder::build`] fail with [`Error::Topology`] (the store
    /// would forget windows still open).
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Applies the name-independent choices to `spec`.
    pub(crate) fn apply(&self, mut spec: StoreSpec) -> StoreSpec {
        spec.logged = self.logged;
        if let Some((persistent, supplier)) = &self.storage {
            spec.persistent = *persistent;
            spec.supplier = supplier.clone();
        }
        spec
    }
}

/// Builds a [`Topology`] with the DSL (Kafka's `StreamsBuilder`).
///
/// ```
/// use embedlog::streams::{Consumed, Serdes, StreamsBuilder};
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("text", Consumed::with(Serdes::string(), Serdes::string()))
///     .flat_map_values(|line: String| {
///         line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>()
///     })
///     .group_by(|_, word: &String| word.clone())
///     .count()
///     .to_stream()
///     .to("word-counts");
/// let topology = builder.build()?;
/// assert!(topology.describe().contains("word-counts"));
/// # Ok::<(), embedlog::Error>(())
/// ```
pub struct StreamsBuilder {
    pub(crate) graph: GraphRef,
}

impl fmt::Debug for StreamsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamsBuilder")
            .field("nodes", &self.graph.borrow().nodes.len())
            .finish()
    }
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        StreamsBuilder::new()
    }
}

impl StreamsBuilder {
    /// An empty topology.
    pub fn new() -> Self {
        StreamsBuilder {
            graph: Rc::new(RefCell::new(Graph::default())),
        }
    }

    /// The records of `topic` as a stream.
    pub fn stream<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        self.stream_from(&[topic], consumed)
    }

    /// The records of several topics as one stream.
    pub fn stream_from<K, V>(&self, topics: &[&str], consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let mut g = self.graph.borrow_mut();
        let name = g.name("KSTREAM-SOURCE");
        let build = source_build_extracting(
            topics.clone(),
            consumed.keys.clone(),
            consumed.values.clone(),
            consumed.extractor.clone(),
        );
        let id = g.add(name, NodeKind::Source { topics }, &[], Vec::new(), build);
        drop(g);
        KStream::new(
            self.graph.clone(),
            id,
            Some(consumed.keys),
            Some(consumed.values),
            false,
        )
    }

    /// The latest value of each key of `topic`, as a table (a null value
    /// deletes the key), materialized in a key-value store.
    pub fn table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> Result<KTable<K, V>>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        super::dsl::table_source(self, topic, consumed, materialized)
    }

    /// The whole of `topic` (every partition) in every instance: a table
    /// joined by a key computed from each stream record, with no
    /// co-partitioning needed. It is read to its end before processing
    /// starts, and kept up to date after.
    pub fn global_table<K, V>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        store_name: Option<&str>,
    ) -> Result<GlobalKTable<K, V>>
    where
        K: 'static,
        V: 'static,
    {
        let mut g = self.graph.borrow_mut();
        let store = match store_name {
            Some(s) => s.to_owned(),
            None => g.name(&format!("{topic}-STATE-STORE")),
        };
        g.add_store(
            Stores::key_value(
                store.clone(),
                consumed.keys.clone(),
                consumed.values.clone(),
            )
            .with_logging_disabled(),
        )?;
        g.globals.push(GlobalSpec {
            topic: topic.to_owned(),
            store: store.clone(),
        });
        Ok(GlobalKTable::new(store, consumed.keys, consumed.values))
    }

    /// Declares a store for processors (connect it by naming it in
    /// [`KStream::process`]).
    ///
    /// # Errors
    /// [`Error::Topology`] if a store of that name exists.
    pub fn add_state_store(&self, spec: StoreSpec) -> Result<()> {
        self.graph.borrow_mut().add_store(spec)
    }

    /// Adds a processor reading records of `parent`'s type and connected to
    /// `stores`: the lower-level way to build a node (see
    /// [`KStream::process`]).
    pub(crate) fn add_processor<KIn, VIn, KOut, VOut, P>(
        graph: &GraphRef,
        kind: &str,
        parents: &[NodeId],
        stores: Vec<String>,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> NodeId
    where
        KIn: 'static,
        VIn: 'static,
        KOut: 'static,
        VOut: 'static,
        P: Processor<KIn, VIn, KOut, VOut>,
    {
        Self::add_processor_node(
            graph,
            kind,
            parents,
            stores,
            processor_build::<KIn, VIn, KOut, VOut, P>(supplier),
        )
    }

    /// As [`add_processor`](Self::add_processor), for a processor that can
    /// also take records as bytes keyed by the serde `keys`.
    pub(crate) fn add_bytes_processor<KIn, VIn, KOut, VOut, P>(
        graph: &GraphRef,
        kind: &str,
        parents: &[NodeId],
        stores: Vec<String>,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        keys: SerdeRef<KIn>,
    ) -> NodeId
    where
        KIn: 'static,
        VIn: 'static,
        KOut: 'static,
        VOut: 'static,
        P: Processor<KIn, VIn, KOut, VOut> + BytesProcessor<KOut, VOut>,
    {
        Self::add_processor_node(
            graph,
            kind,
            parents,
            stores,
            bytes_processor_build::<KIn, VIn, KOut, VOut, P>(supplier, keys),
        )
    }

    /// Adds a processor node named after `kind`, built by `build`.
    fn add_processor_node(
        graph: &GraphRef,
        kind: &str,
        parents: &[NodeId],
        stores: Vec<String>,
        build: Build,
    ) -> NodeId {
        let mut g = graph.borrow_mut();
        let name = g.name(kind);
        g.add(name, NodeKind::Processor, parents, stores, build)
    }

    /// The topology built so far.
    ///
    /// # Errors
    /// [`Error::Topology`] if it is not valid: a store used but not
    /// declared, nodes no source feeds, a topic read twice.
    pub fn build(&self) -> Result<Topology> {
        let mut g = self.graph.borrow_mut();
        if let Some(e) = g.error.take() {
            return Err(e);
        }
        Topology {
            nodes: g.nodes.clone(),
            stores: g.stores.clone(),
            internal: g.internal.clone(),
            globals: g.globals.clone(),
            subtopologies: Vec::new(),
            copartition: g.copartition.clone(),
        }
        .finish()
    }
}

/// The serde to use: the one given, else the default (JSON).
pub(crate) fn or_default<T: Serialize + DeserializeOwned + 'static>(
    s: Option<SerdeRef<T>>,
) -> SerdeRef<T> {
    s.unwrap_or_else(default_serde)
}

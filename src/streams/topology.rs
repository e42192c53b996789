//! The graph a [`StreamsBuilder`](super::StreamsBuilder) builds: nodes,
//! stores, internal topics, sub-topologies; and its instantiation into a
//! task's processor nodes.

use super::processor::{
    BytesProcessor, Child, Lifecycle, LifecycleOf, Node, Processor, ProcessorNode,
};
use super::record::StreamRecord;
use super::serde::SerdeRef;
use super::store::StoreSpec;
use super::task::TaskCtx;
use crate::{Error, Header, Result};
use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

pub(crate) type NodeId = usize;

/// Builds one node of a task: given the instantiator, the node's id and
/// its children's ids (already built).
pub(crate) type Build =
    Arc<dyn Fn(&mut Instantiator<'_>, NodeId, &[NodeId]) -> Result<()> + Send + Sync>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Source { topics: Vec<String> },
    Processor,
    Sink { topic: String },
}

#[derive(Clone)]
pub(crate) struct NodeSpec {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) parents: Vec<NodeId>,
    pub(crate) children: Vec<NodeId>,
    pub(crate) stores: Vec<String>,
    pub(crate) build: Build,
}

/// What an internal topic is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InternalKind {
    /// Records re-keyed on their way to a stateful operation; `partitions`
    /// if the topology fixed it.
    Repartition { partitions: Option<u32> },
    /// A store's changelog.
    Changelog { store: String },
}

/// A global table: its topic, the store it fills, and how to decode into
/// it (key bytes and value bytes are stored as they are).
#[derive(Clone, Debug)]
pub(crate) struct GlobalSpec {
    pub(crate) topic: String,
    pub(crate) store: String,
}

/// A sub-topology: nodes connected by edges or shared stores; one task
/// per partition of its source topics.
#[derive(Clone, Debug)]
pub(crate) struct Subtopology {
    pub(crate) id: usize,
    pub(crate) nodes: Vec<NodeId>,
    pub(crate) sources: Vec<String>,
    pub(crate) stores: Vec<String>,
}

/// A processing graph, ready to run in [`Streams`](super::Streams) or a
/// [`TopologyTestDriver`](super::TopologyTestDriver).
/// [`describe`](Self::describe) prints it.
#[derive(Clone)]
pub struct Topology {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) stores: BTreeMap<String, StoreSpec>,
    /// Internal topic names (without the application id) and their kind.
    pub(crate) internal: BTreeMap<String, InternalKind>,
    pub(crate) globals: Vec<GlobalSpec>,
    pub(crate) subtopologies: Vec<Subtopology>,
    /// Groups of source topics that must have equal partition counts
    /// (both sides of a join), with what joins them.
    pub(crate) copartition: Vec<(BTreeSet<String>, String)>,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Topology {
    /// The topic name of `name` for `application_id`: internal topics are
    /// prefixed with it.
    pub(crate) fn resolve(&self, application_id: &str, name: &str) -> String {
        if self.internal.contains_key(name) {
            format!("{application_id}-{name}")
        } else {
            name.to_owned()
        }
    }

    /// The changelog topic (unresolved name) of a store, if it has one.
    pub(crate) fn changelog_of(&self, store: &str) -> Option<String> {
        self.stores
            .get(store)
            .filter(|s| s.logged && !self.globals.iter().any(|g| g.store == store))
            .map(|_| format!("{store}-changelog"))
    }

    /// Every source topic of the stream tasks (user and internal names).
    pub(crate) fn source_topics(&self) -> BTreeSet<String> {
        self.subtopologies
            .iter()
            .flat_map(|s| s.sources.iter().cloned())
            .collect()
    }

    /// Prints the graph: each sub-topology's nodes with their topics,
    /// stores and children, then the global stores (as Kafka's
    /// `Topology#describe`).
    pub fn describe(&self) -> String {
        use fmt::Write;
        let mut out = String::from("Topologies:\n");
        for sub in &self.subtopologies {
            let _ = writeln!(out, "   Sub-topology: {}", sub.id);
            for &id in &sub.nodes {
                let n = &self.nodes[id];
                let what = match &n.kind {
                    NodeKind::Source { topics } => {
                        format!("Source: {} (topics: [{}])", n.name, topics.join(", "))
                    }
                    NodeKind::Processor => {
                        format!("Processor: {} (stores: [{}])", n.name, n.stores.join(", "))
                    }
                    NodeKind::Sink { topic } => format!("Sink: {} (topic: {topic})", n.name),
                };
                let _ = writeln!(out, "    {what}");
                let kids: Vec<&str> = n
                    .children
                    .iter()
                    .map(|&c| self.nodes[c].name.as_str())
                    .collect();
                let parents: Vec<&str> = n
                    .parents
                    .iter()
                    .map(|&c| self.nodes[c].name.as_str())
                    .collect();
                if !kids.is_empty() {
                    let _ = writeln!(out, "      --> {}", kids.join(", "));
                }
                if !parents.is_empty() {
                    let _ = writeln!(out, "      <-- {}", parents.join(", "));
                }
            }
        }
        for g in &self.globals {
            let _ = writeln!(out, "   Global store: {} (topic: {})", g.store, g.topic);
        }
        out
    }

    /// Splits the nodes into sub-topologies (connected by edges or shared
    /// stores) and checks the graph.
    pub(crate) fn finish(mut self) -> Result<Topology> {
        let n = self.nodes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let union = |p: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(p, a), find(p, b));
            if ra != rb {
                p[ra.max(rb)] = ra.min(rb);
            }
        };
        let mut by_store: HashMap<&str, usize> = HashMap::new();
        let global_stores: BTreeSet<&str> = self.globals.iter().map(|g| g.store.as_str()).collect();
        for (id, node) in self.nodes.iter().enumerate() {
            for &c in &node.children {
                union(&mut parent, id, c);
            }
            for s in &node.stores {
                if !self.stores.contains_key(s) {
                    return Err(Error::Topology(format!(
                        "node {} uses store {s:?}, which the topology does not declare (add it with add_state_store)",
                        node.name
                    )));
                }
                if global_stores.contains(s.as_str()) {
                    continue;
                }
                if let Some(&other) = by_store.get(s.as_str()) {
                    union(&mut parent, id, other);
                } else {
                    by_store.insert(s, id);
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<NodeId>> = BTreeMap::new();
        for id in 0..n {
            let root = find(&mut parent, id);
            groups.entry(root).or_default().push(id);
        }
        let mut subs = Vec::new();
        for (_, nodes) in groups {
            let mut sources = Vec::new();
            let mut stores = BTreeSet::new();
            for &id in &nodes {
                if let NodeKind::Source { topics } = &self.nodes[id].kind {
                    sources.extend(topics.iter().cloned());
                }
                for s in &self.nodes[id].stores {
                    if !global_stores.contains(s.as_str()) {
                        stores.insert(s.clone());
                    }
                }
            }
            if sources.is_empty() {
                let names: Vec<&str> = nodes.iter().map(|&i| self.nodes[i].name.as_str()).collect();
                return Err(Error::Topology(format!(
                    "nodes [{}] are not reachable from any source topic",
                    names.join(", ")
                )));
            }
            subs.push(Subtopology {
                id: subs.len(),
                nodes,
                sources,
                stores: stores.into_iter().collect(),
            });
        }
        let mut seen = BTreeMap::new();
        for s in &subs {
            for t in &s.sources {
                if let Some(other) = seen.insert(t.clone(), s.id) {
                    return Err(Error::Topology(format!(
                        "topic {t:?} is read by two unconnected parts of the topology ({other} and {}): read it once and branch the stream",
                        s.id
                    )));
                }
            }
        }
        for store in self.stores.keys() {
            if let Some(topic) = self.changelog_of(store) {
                self.internal.insert(
                    topic,
                    InternalKind::Changelog {
                        store: store.clone(),
                    },
                );
            }
        }
        self.subtopologies = subs;
        Ok(self)
    }
}

/// The source topics feeding `start` (itself included), walking up its
/// parents; repartition topics count as sources (they are).
pub(crate) fn upstream_topics(nodes: &[NodeSpec], start: NodeId) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![start];
    let mut seen = BTreeSet::new();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if let NodeKind::Source { topics } = &nodes[n].kind {
            out.extend(topics.iter().cloned());
        }
        stack.extend(nodes[n].parents.iter().copied());
    }
    out
}

/// A node whose input is raw record bytes: a source.
pub(crate) trait RawSource {
    fn process_raw(
        &mut self,
        task: &mut TaskCtx,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Vec<Header>,
    ) -> Result<()>;
}

/// A node that can take a record as its source read it: the key's bytes,
/// already checked by the source's serdes ([`Serde::validate`]) but not
/// decoded (a `count` needs no more). Only a source whose one child it is,
/// and whose key serde is the node's own and canonical
/// ([`Serde::is_canonical`]: the bytes stand for the key), uses it.
///
/// [`Serde::validate`]: crate::streams::Serde::validate
/// [`Serde::is_canonical`]: crate::streams::Serde::is_canonical
pub(crate) trait BytesNode {
    /// Whether it takes records as bytes in `task` (asked once, after the
    /// task's nodes are initialized).
    fn takes_bytes(&self, task: &TaskCtx) -> bool;

    /// Processes a record of key `key` (its value was checked, and is not
    /// needed); `false` if the node cannot (then the source decodes the
    /// record and forwards it as usual).
    fn process_bytes(&mut self, task: &mut TaskCtx, key: &[u8], timestamp: i64) -> Result<bool>;
}

/// A node that may take records as bytes, shared.
pub(crate) type BytesNodeRef = Rc<RefCell<dyn BytesNode>>;

/// Builds a task's nodes, children first.
pub(crate) struct Instantiator<'a> {
    pub(crate) nodes: &'a [NodeSpec],
    built: HashMap<NodeId, Box<dyn Any>>,
    /// Nodes that take records as bytes, with the address of their key
    /// serde (a source uses one only if its own key serde is that one).
    bytes_nodes: HashMap<NodeId, (BytesNodeRef, usize)>,
    pub(crate) lifecycles: Vec<(NodeId, Box<dyn Lifecycle>)>,
    pub(crate) sources: HashMap<String, Rc<RefCell<dyn RawSource>>>,
}

impl<'a> Instantiator<'a> {
    pub(crate) fn new(nodes: &'a [NodeSpec]) -> Self {
        Instantiator {
            nodes,
            built: HashMap::new(),
            bytes_nodes: HashMap::new(),
            lifecycles: Vec::new(),
            sources: HashMap::new(),
        }
    }

    /// Builds `ids` (any order given; built children first).
    pub(crate) fn build_all(&mut self, ids: &[NodeId]) -> Result<()> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        for id in sorted {
            let spec = &self.nodes[id];
            let (build, children) = (spec.build.clone(), spec.children.clone());
            build(self, id, &children)?;
        }
        self.lifecycles.sort_by_key(|(id, _)| *id);
        Ok(())
    }

    pub(crate) fn child<K: 'static, V: 'static>(&self, id: NodeId) -> Result<Child<K, V>> {
        let node = self
            .built
            .get(&id)
            .and_then(|b| b.downcast_ref::<Rc<RefCell<dyn Node<K, V>>>>())
            .cloned()
            .ok_or_else(|| {
                Error::Topology(format!(
                    "node {} does not take the record types its parent forwards",
                    self.nodes[id].name
                ))
            })?;
        Ok(Child {
            name: self.nodes[id].name.as_str().into(),
            node,
        })
    }

    pub(crate) fn children<K: 'static, V: 'static>(
        &self,
        ids: &[NodeId],
    ) -> Result<Vec<Child<K, V>>> {
        ids.iter().map(|&c| self.child(c)).collect()
    }

    pub(crate) fn register<K: 'static, V: 'static>(
        &mut self,
        id: NodeId,
        node: Rc<RefCell<dyn Node<K, V>>>,
    ) {
        self.built.insert(id, Box::new(node));
    }

    /// Registers node `id` as one that also takes records as bytes, keyed
    /// by the serde `keys`.
    pub(crate) fn register_bytes<K: 'static>(
        &mut self,
        id: NodeId,
        node: BytesNodeRef,
        keys: &SerdeRef<K>,
    ) {
        self.bytes_nodes.insert(id, (node, serde_address(keys)));
    }

    /// The node taking records as bytes a source with the key serde
    /// `keys` and the children `children` may hand its records to.
    fn bytes_child<K: 'static>(
        &self,
        children: &[NodeId],
        keys: &SerdeRef<K>,
    ) -> Option<BytesNodeRef> {
        let [only] = children else { return None };
        let (node, address) = self.bytes_nodes.get(only)?;
        // The same serde, and one whose bytes stand for the key.
        (*address == serde_address(keys) && keys.is_canonical()).then(|| node.clone())
    }
}

/// The address of a serde: two handles of the same serde share it.
fn serde_address<K: 'static>(serde: &SerdeRef<K>) -> usize {
    Arc::as_ptr(serde).cast::<()>() as usize
}

/// As [`processor_build`], for a processor that can also take records as
/// bytes keyed by the serde `keys` (see [`BytesNode`]).
pub(crate) fn bytes_processor_build<KIn, VIn, KOut, VOut, P>(
    supplier: impl Fn() -> P + Send + Sync + 'static,
    keys: SerdeRef<KIn>,
) -> Build
where
    KIn: 'static,
    VIn: 'static,
    KOut: 'static,
    VOut: 'static,
    P: Processor<KIn, VIn, KOut, VOut> + BytesProcessor<KOut, VOut>,
{
    Arc::new(
        move |inst: &mut Instantiator<'_>, id: NodeId, children: &[NodeId]| {
            let node = instantiate::<KIn, VIn, KOut, VOut, P>(inst, id, children, supplier())?;
            inst.register_bytes(id, node as Rc<RefCell<dyn BytesNode>>, &keys);
            Ok(())
        },
    )
}

/// The build of a processor node running what `supplier` makes.
pub(crate) fn processor_build<KIn, VIn, KOut, VOut, P>(
    supplier: impl Fn() -> P + Send + Sync + 'static,
) -> Build
where
    KIn: 'static,
    VIn: 'static,
    KOut: 'static,
    VOut: 'static,
    P: Processor<KIn, VIn, KOut, VOut>,
{
    Arc::new(
        move |inst: &mut Instantiator<'_>, id: NodeId, children: &[NodeId]| {
            instantiate::<KIn, VIn, KOut, VOut, P>(inst, id, children, supplier()).map(drop)
        },
    )
}

/// Node `id` of a task running `processor`, registered with its lifecycle.
fn instantiate<KIn, VIn, KOut, VOut, P>(
    inst: &mut Instantiator<'_>,
    id: NodeId,
    children: &[NodeId],
    processor: P,
) -> Result<Rc<RefCell<ProcessorNode<P, KOut, VOut>>>>
where
    KIn: 'static,
    VIn: 'static,
    KOut: 'static,
    VOut: 'static,
    P: Processor<KIn, VIn, KOut, VOut>,
{
    let node = Rc::new(RefCell::new(ProcessorNode {
        processor,
        children: inst.children::<KOut, VOut>(children)?,
        id,
        name: inst.nodes[id].name.as_str().into(),
    }));
    inst.register::<KIn, VIn>(id, node.clone() as Rc<RefCell<dyn Node<KIn, VIn>>>);
    inst.lifecycles.push((
        id,
        Box::new(LifecycleOf::<P, KIn, VIn, KOut, VOut> {
            node: node.clone(),
            _types: std::marker::PhantomData,
        }),
    ));
    Ok(node)
}

/// A source node: decodes a topic's records and forwards them.
struct Source<K, V> {
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    children: Vec<Child<K, V>>,
    name: Rc<str>,
    /// A table's source: a record without a key is skipped (a table row
    /// needs one), as Kafka does.
    skip_null_keys: bool,
    extractor: Option<crate::streams::builder::TimestampExtractor<K, V>>,
    /// Its one child, when that may take records as bytes, and whether it
    /// does in this task (known at the first record).
    bytes_child: Option<(BytesNodeRef, Option<bool>)>,
}

impl<K: Clone + 'static, V: Clone + 'static> RawSource for Source<K, V> {
    fn process_raw(
        &mut self,
        task: &mut TaskCtx,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: Vec<Header>,
    ) -> Result<()> {
        if key.is_none() && self.skip_null_keys {
            tracing::warn!(node = %self.name, "skipping a table record without a key");
            task.metrics.skipped += 1;
            return Ok(());
        }
        if let Some((child, takes @ None)) = &mut self.bytes_child {
            *takes = Some(child.borrow().takes_bytes(task));
        }
        if let (Some((child, Some(true))), Some(k)) = (&self.bytes_child, key) {
            // Checked as decoding would, with the same errors; not decoded.
            let checked = self
                .keys
                .validate(key)
                .and_then(|()| self.values.validate(value));
            if let Err(e) = checked {
                return task.deserialization_failed(&self.name, e);
            }
            task.stream_time = task.stream_time.max(timestamp);
            if child.borrow_mut().process_bytes(task, k, timestamp)? {
                return Ok(());
            }
        }
        let decoded = self
            .keys
            .deserialize(key)
            .and_then(|k| Ok((k, self.values.deserialize(value)?)));
        let (key, value) = match decoded {
            Ok(kv) => kv,
            Err(e) => return task.deserialization_failed(&self.name, e),
        };
        let timestamp = match &self.extractor {
            Some(f) => f(&key, &value, timestamp),
            None => timestamp,
        };
        task.stream_time = task.stream_time.max(timestamp);
        let record = StreamRecord {
            key,
            value,
            timestamp,
            headers,
        };
        let mut ctx = super::ProcessorContext {
            task,
            children: &self.children,
            node: usize::MAX,
            node_name: &self.name,
        };
        ctx.forward(record)
    }
}

/// The build of a source node.
pub(crate) fn source_build<K: Clone + 'static, V: Clone + 'static>(
    topics: Vec<String>,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
) -> Build {
    source_build_with(topics, keys, values, false, None)
}

/// The build of a source node whose records' event time `extractor` gives.
pub(crate) fn source_build_extracting<K: Clone + 'static, V: Clone + 'static>(
    topics: Vec<String>,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    extractor: Option<crate::streams::builder::TimestampExtractor<K, V>>,
) -> Build {
    source_build_with(topics, keys, values, false, extractor)
}

/// The build of a table's source node (records without a key skipped).
pub(crate) fn table_source_build<K: Clone + 'static, V: Clone + 'static>(
    topics: Vec<String>,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
) -> Build {
    source_build_with(topics, keys, values, true, None)
}

fn source_build_with<K: Clone + 'static, V: Clone + 'static>(
    topics: Vec<String>,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    skip_null_keys: bool,
    extractor: Option<crate::streams::builder::TimestampExtractor<K, V>>,
) -> Build {
    Arc::new(
        move |inst: &mut Instantiator<'_>, id: NodeId, children: &[NodeId]| {
            // A source with an extractor or for a table needs the record
            // decoded.
            let bytes_child = (extractor.is_none() && !skip_null_keys)
                .then(|| inst.bytes_child(children, &keys))
                .flatten()
                .map(|c| (c, None));
            let source = Rc::new(RefCell::new(Source {
                keys: keys.clone(),
                values: values.clone(),
                children: inst.children::<K, V>(children)?,
                name: inst.nodes[id].name.as_str().into(),
                skip_null_keys,
                extractor: extractor.clone(),
                bytes_child,
            }));
            for t in &topics {
                inst.sources
                    .insert(t.clone(), source.clone() as Rc<RefCell<dyn RawSource>>);
            }
            Ok(())
        },
    )
}

/// A sink: encodes records for a topic.
struct Sink<K, V> {
    topic: String,
    /// `topic` as the task names it (internal topics get the
    /// application id), once known.
    resolved: Option<Arc<str>>,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    partitioner: Option<Partitioner<K, V>>,
}

/// Chooses the partition of an output record from its key, value and the
/// topic's partition count.
pub type Partitioner<K, V> = Arc<dyn Fn(&K, &V, u32) -> u32 + Send + Sync>;

impl<K: 'static, V: 'static> Node<K, V> for Sink<K, V> {
    fn process(&mut self, task: &mut TaskCtx, record: StreamRecord<K, V>) -> Result<()> {
        let partition = match &self.partitioner {
            Some(p) => {
                let count = task.partition_count(&self.topic)?;
                Some(p(&record.key, &record.value, count))
            }
            None => None,
        };
        let topic = match &self.resolved {
            Some(t) => t.clone(),
            None => self
                .resolved
                .insert(task.resolve_topic(&self.topic))
                .clone(),
        };
        task.outbox.push_encoded(
            &topic,
            partition,
            &*self.keys,
            &record.key,
            &*self.values,
            &record.value,
            record.timestamp,
            record.headers,
        )
    }
}

/// The build of a sink node.
pub(crate) fn sink_build<K: 'static, V: 'static>(
    topic: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    partitioner: Option<Partitioner<K, V>>,
) -> Build {
    Arc::new(
        move |inst: &mut Instantiator<'_>, id: NodeId, _children: &[NodeId]| {
            let sink = Rc::new(RefCell::new(Sink {
                topic: topic.clone(),
                resolved: None,
                keys: keys.clone(),
                values: values.clone(),
                partitioner: partitioner.clone(),
            }));
            inst.register::<K, V>(id, sink as Rc<RefCell<dyn Node<K, V>>>);
            Ok(())
        },
    )
}

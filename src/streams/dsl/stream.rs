//! [`KStream`]: a record stream and its stateless operations.

use super::{KGroupedStream, PassThrough};
use crate::Result;
use crate::streams::builder::{
    GraphRef, Grouped, Produced, Repartitioned, StreamsBuilder, or_default,
};
use crate::streams::processor::{Processor, ProcessorContext};
use crate::streams::record::StreamRecord;
use crate::streams::serde::{SerdeRef, carry};
use crate::streams::topology::{InternalKind, NodeId, NodeKind, sink_build, source_build};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// An unbounded stream of records (Kafka's `KStream`): each record is an
/// independent event. Operations return new streams; nothing runs until
/// the topology is built and started.
///
/// Serdes travel with the stream from its source through the operations
/// that keep the key or value type; where one is missing and needed (a
/// topic or a store), JSON is used.
pub struct KStream<K, V> {
    pub(crate) graph: GraphRef,
    pub(crate) node: NodeId,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    /// The key changed since the records were last partitioned by it.
    pub(crate) repartition: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: self.graph.clone(),
            node: self.node,
            keys: self.keys.clone(),
            values: self.values.clone(),
            repartition: self.repartition,
        }
    }
}

impl<K, V> fmt::Debug for KStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.graph.borrow();
        f.debug_struct("KStream")
            .field("node", &g.nodes[self.node].name)
            .field("repartition", &self.repartition)
            .finish()
    }
}

/// A processor made of a closure over each record and the context.
pub(crate) struct FnProcessor<F, KIn, VIn, KOut, VOut> {
    pub(crate) f: F,
    pub(crate) _types: Types<KIn, VIn, KOut, VOut>,
}

/// The record types a processor takes and gives.
pub(crate) type Types<KIn, VIn, KOut, VOut> = PhantomData<fn(KIn, VIn) -> (KOut, VOut)>;

/// A branch's predicate (`None`: the default branch).
type Branch<K, V> = (String, Option<Arc<dyn Fn(&K, &V) -> bool + Send + Sync>>);

impl<F, KIn, VIn, KOut, VOut> Processor<KIn, VIn, KOut, VOut>
    for FnProcessor<F, KIn, VIn, KOut, VOut>
where
    F: FnMut(&mut ProcessorContext<'_, KOut, VOut>, StreamRecord<KIn, VIn>) -> Result<()> + 'static,
    KIn: 'static,
    VIn: 'static,
    KOut: 'static,
    VOut: 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: StreamRecord<KIn, VIn>,
    ) -> Result<()> {
        (self.f)(ctx, record)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    pub(crate) fn new(
        graph: GraphRef,
        node: NodeId,
        keys: Option<SerdeRef<K>>,
        values: Option<SerdeRef<V>>,
        repartition: bool,
    ) -> Self {
        KStream {
            graph,
            node,
            keys,
            values,
            repartition,
        }
    }

    /// Adds a node running `f` on each record.
    fn then<K2: Clone + 'static, V2: Clone + 'static, F>(
        &self,
        kind: &str,
        keys: Option<SerdeRef<K2>>,
        values: Option<SerdeRef<V2>>,
        repartition: bool,
        f: F,
    ) -> KStream<K2, V2>
    where
        F: Fn(&mut ProcessorContext<'_, K2, V2>, StreamRecord<K, V>) -> Result<()>
            + Send
            + Sync
            + 'static,
    {
        let f = Arc::new(f);
        let node = StreamsBuilder::add_processor::<K, V, K2, V2, _>(
            &self.graph,
            kind,
            &[self.node],
            Vec::new(),
            move || {
                let f = f.clone();
                FnProcessor {
                    f: move |ctx: &mut ProcessorContext<'_, K2, V2>, r: StreamRecord<K, V>| {
                        f(ctx, r)
                    },
                    _types: PhantomData,
                }
            },
        );
        KStream::new(self.graph.clone(), node, keys, values, repartition)
    }

    /// The records for which `predicate` holds.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.then(
            "KSTREAM-FILTER",
            self.keys.clone(),
            self.values.clone(),
            self.repartition,
            move |ctx, r| {
                if predicate(&r.key, &r.value) {
                    ctx.forward(r)?;
                }
                Ok(())
            },
        )
    }

    /// The records for which `predicate` does not hold.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Each record with a new key and value (marks the stream for
    /// repartitioning before a stateful operation).
    pub fn map<K2: Clone + 'static, V2: Clone + 'static>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.then(
            "KSTREAM-MAP",
            carry(&self.keys),
            carry(&self.values),
            true,
            move |ctx, r| {
                let (k, v) = f(r.key, r.value);
                ctx.forward(StreamRecord {
                    key: k,
                    value: v,
                    timestamp: r.timestamp,
                    headers: r.headers,
                })
            },
        )
    }

    /// Each record with a new value; the key, and the partitioning, stay.
    pub fn map_values<V2: Clone + 'static>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.then(
            "KSTREAM-MAPVALUES",
            self.keys.clone(),
            None,
            self.repartition,
            move |ctx, r| {
                let StreamRecord {
                    key,
                    value,
                    timestamp,
                    headers,
                } = r;
                ctx.forward(StreamRecord {
                    key,
                    value: f(value),
                    timestamp,
                    headers,
                })
            },
        )
    }

    /// As [`map_values`](Self::map_values), given the key too.
    pub fn map_values_with_key<V2: Clone + 'static>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.then(
            "KSTREAM-MAPVALUES",
            self.keys.clone(),
            None,
            self.repartition,
            move |ctx, r| {
                let StreamRecord {
                    key,
                    value,
                    timestamp,
                    headers,
                } = r;
                let value = f(&key, value);
                ctx.forward(StreamRecord {
                    key,
                    value,
                    timestamp,
                    headers,
                })
            },
        )
    }

    /// Zero or more records for each record (marks the stream for
    /// repartitioning).
    pub fn flat_map<K2, V2, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.then(
            "KSTREAM-FLATMAP",
            carry(&self.keys),
            carry(&self.values),
            true,
            move |ctx, r| {
                for (k, v) in f(r.key, r.value) {
                    ctx.forward(StreamRecord {
                        key: k,
                        value: v,
                        timestamp: r.timestamp,
                        headers: r.headers.clone(),
                    })?;
                }
                Ok(())
            },
        )
    }

    /// Zero or more values for each record, under its key. The values are
    /// taken from `f`'s iterator one ahead of the one forwarded (the last
    /// one takes the record's own key and headers, without a copy).
    pub fn flat_map_values<V2, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        V2: Clone + 'static,
        I: IntoIterator<Item = V2>,
    {
        self.then(
            "KSTREAM-FLATMAPVALUES",
            self.keys.clone(),
            None,
            self.repartition,
            move |ctx, r| {
                // The last value takes the record's own key and headers.
                let mut values = f(r.value).into_iter().peekable();
                while let Some(v) = values.next() {
                    if values.peek().is_none() {
                        return ctx.forward(StreamRecord {
                            key: r.key,
                            value: v,
                            timestamp: r.timestamp,
                            headers: r.headers,
                        });
                    }
                    ctx.forward(StreamRecord {
                        key: r.key.clone(),
                        value: v,
                        timestamp: r.timestamp,
                        headers: r.headers.clone(),
                    })?;
                }
                Ok(())
            },
        )
    }

    /// Each record under a new key (marks the stream for repartitioning).
    pub fn select_key<K2: Clone + 'static>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.then(
            "KSTREAM-KEY-SELECT",
            None,
            self.values.clone(),
            true,
            move |ctx, r| {
                let key = f(&r.key, &r.value);
                ctx.forward(r.with_key(key))
            },
        )
    }

    /// Calls `f` on each record and passes it on.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.then(
            "KSTREAM-PEEK",
            self.keys.clone(),
            self.values.clone(),
            self.repartition,
            move |ctx, r| {
                f(&r.key, &r.value);
                ctx.forward(r)
            },
        )
    }

    /// Calls `f` on each record (a terminal operation).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let _ = self.then::<K, V, _>("KSTREAM-FOREACH", None, None, false, move |_, r| {
            f(&r.key, &r.value);
            Ok(())
        });
    }

    /// Splits the stream into named branches: each record goes to the
    /// first branch whose predicate holds (Kafka's `split()`). Branch names
    /// are `prefix` + the name given.
    pub fn split(&self, prefix: &str) -> BranchedKStream<K, V> {
        BranchedKStream {
            parent: self.clone(),
            prefix: prefix.to_owned(),
            branches: Vec::new(),
        }
    }

    /// This stream and `other` as one (no order between them beyond each
    /// one's own).
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let node = StreamsBuilder::add_processor::<K, V, K, V, _>(
            &self.graph,
            "KSTREAM-MERGE",
            &[self.node, other.node],
            Vec::new(),
            || PassThrough,
        );
        KStream::new(
            self.graph.clone(),
            node,
            self.keys.clone().or_else(|| other.keys.clone()),
            self.values.clone().or_else(|| other.values.clone()),
            self.repartition || other.repartition,
        )
    }

    /// Sets the serdes the stream's keys and values are written and stored
    /// with from here on.
    pub fn with_serdes(&self, keys: SerdeRef<K>, values: SerdeRef<V>) -> KStream<K, V> {
        let mut s = self.clone();
        s.keys = Some(keys);
        s.values = Some(values);
        s
    }

    /// Runs a [`Processor`] on each record, connected to `stores` (declared
    /// with [`StreamsBuilder::add_state_store`]); its output is a stream.
    pub fn process<K2, V2, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        P: Processor<K, V, K2, V2>,
    {
        let stores = stores.iter().map(|s| (*s).to_owned()).collect();
        let node = StreamsBuilder::add_processor::<K, V, K2, V2, P>(
            &self.graph,
            "KSTREAM-PROCESSOR",
            &[self.node],
            stores,
            supplier,
        );
        KStream::new(self.graph.clone(), node, None, None, true)
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    /// Writes every record to `topic`.
    pub fn to(&self, topic: &str) {
        self.to_with(topic, Produced::default());
    }

    /// Writes every record to `topic`, as `produced` says.
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        let keys = produced.keys.or_else(|| self.keys.clone());
        let values = produced.values.or_else(|| self.values.clone());
        let mut g = self.graph.borrow_mut();
        let name = g.name("KSTREAM-SINK");
        let build = sink_build(
            topic.to_owned(),
            or_default(keys),
            or_default(values),
            produced.partitioner,
        );
        g.add(
            name,
            NodeKind::Sink {
                topic: topic.to_owned(),
            },
            &[self.node],
            Vec::new(),
            build,
        );
    }

    /// Writes the records through a topic of the application's own,
    /// partitioned by their current key, and reads them back: the stream
    /// after it is partitioned by key (new tasks, one per partition).
    pub fn repartition(&self) -> KStream<K, V> {
        self.repartition_with(Repartitioned::default())
    }

    /// As [`repartition`](Self::repartition), as `how` says.
    pub fn repartition_with(&self, how: Repartitioned<K, V>) -> KStream<K, V> {
        let keys = or_default(how.keys.or_else(|| self.keys.clone()));
        let values = or_default(how.values.or_else(|| self.values.clone()));
        let mut g = self.graph.borrow_mut();
        let base = match how.name {
            Some(n) => n,
            None => g.name("KSTREAM-REPARTITION"),
        };
        let topic = format!("{base}-repartition");
        g.internal.insert(
            topic.clone(),
            InternalKind::Repartition {
                partitions: how.partitions,
            },
        );
        let sink_name = format!("{base}-repartition-sink");
        let build = sink_build(topic.clone(), keys.clone(), values.clone(), None);
        g.add(
            sink_name,
            NodeKind::Sink {
                topic: topic.clone(),
            },
            &[self.node],
            Vec::new(),
            build,
        );
        let source_name = format!("{base}-repartition-source");
        let build = source_build(vec![topic.clone()], keys.clone(), values.clone());
        let id = g.add(
            source_name,
            NodeKind::Source {
                topics: vec![topic],
            },
            &[],
            Vec::new(),
            build,
        );
        drop(g);
        KStream::new(self.graph.clone(), id, Some(keys), Some(values), false)
    }

    /// This stream, repartitioned if its key changed (before a stateful
    /// operation).
    pub(crate) fn partitioned(&self, name: Option<String>) -> KStream<K, V> {
        if self.repartition {
            self.repartition_with(Repartitioned {
                name,
                ..Repartitioned::default()
            })
        } else {
            self.clone()
        }
    }

    /// Groups the records by their key, for an aggregation (repartitioning
    /// first if the key changed).
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        self.group_by_key_with(Grouped::default())
    }

    /// As [`group_by_key`](Self::group_by_key), with these serdes.
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        let mut s = self.clone();
        if grouped.keys.is_some() {
            s.keys = grouped.keys;
        }
        if grouped.values.is_some() {
            s.values = grouped.values;
        }
        KGroupedStream::new(s.partitioned(grouped.name))
    }

    /// Groups the records by a new key (always repartitioned).
    pub fn group_by<K2>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KGroupedStream<K2, V>
    where
        K2: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.select_key(f).group_by_key()
    }

    /// As [`group_by`](Self::group_by), with these serdes.
    pub fn group_by_with<K2>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V>
    where
        K2: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.select_key(f).group_by_key_with(grouped)
    }
}

/// A stream being split into branches: see [`KStream::split`].
pub struct BranchedKStream<K, V> {
    parent: KStream<K, V>,
    prefix: String,
    #[allow(clippy::type_complexity)]
    branches: Vec<(String, Option<Arc<dyn Fn(&K, &V) -> bool + Send + Sync>>)>,
}

impl<K, V> fmt::Debug for BranchedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BranchedKStream")
            .field("prefix", &self.prefix)
            .field(
                "branches",
                &self.branches.iter().map(|b| &b.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<K: Clone + 'static, V: Clone + 'static> BranchedKStream<K, V> {
    /// A branch `name` for the records `predicate` accepts (and no earlier
    /// branch took).
    pub fn branch(
        mut self,
        name: &str,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.branches
            .push((format!("{}{name}", self.prefix), Some(Arc::new(predicate))));
        self
    }

    /// A last branch `name` for every record no branch took, and the
    /// branches by name.
    pub fn default_branch(mut self, name: &str) -> BTreeMap<String, KStream<K, V>> {
        self.branches.push((format!("{}{name}", self.prefix), None));
        self.no_default_branch()
    }

    /// The branches by name; records no branch takes are dropped.
    pub fn no_default_branch(self) -> BTreeMap<String, KStream<K, V>> {
        let preds: Vec<Branch<K, V>> = self.branches.clone();
        let split = self.parent.then::<K, V, _>(
            "KSTREAM-BRANCH",
            self.parent.keys.clone(),
            self.parent.values.clone(),
            self.parent.repartition,
            move |ctx, r| {
                for (name, p) in &preds {
                    if p.as_ref().is_none_or(|p| p(&r.key, &r.value)) {
                        return ctx.forward_to(name, r);
                    }
                }
                Ok(())
            },
        );
        let mut out = BTreeMap::new();
        for (name, _) in self.branches {
            let mut g = split.graph.borrow_mut();
            let build = crate::streams::topology::processor_build::<K, V, K, V, _>(|| PassThrough);
            let id = g.add(
                name.clone(),
                NodeKind::Processor,
                &[split.node],
                Vec::new(),
                build,
            );
            drop(g);
            out.insert(
                name,
                KStream::new(
                    split.graph.clone(),
                    id,
                    split.keys.clone(),
                    split.values.clone(),
                    split.repartition,
                ),
            );
        }
        out
    }
}

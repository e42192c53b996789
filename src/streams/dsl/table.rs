//! [`KTable`]: the latest value per key, and its operations;
//! [`GlobalKTable`].

use super::{Emitter, KStream};
use crate::Result;
use crate::streams::builder::{GraphRef, Materialized, StreamsBuilder, or_default};
use crate::streams::processor::{Processor, ProcessorContext};
use crate::streams::record::{Change, StreamRecord};
use crate::streams::serde::{SerdeRef, Serdes, key_bytes};
use crate::streams::store::{KeyValueStore, Stores};
use crate::streams::topology::{NodeId, NodeKind, table_source_build};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;

/// A changelog stream read as a table (Kafka's `KTable`): each record is
/// the latest value of its key; a null value deletes it. Downstream
/// operations see each update with the value it replaced.
pub struct KTable<K, V> {
    pub(crate) graph: GraphRef,
    pub(crate) node: NodeId,
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    /// The store holding the table, if it is materialized.
    pub(crate) store: Option<String>,
    /// A table of windowed aggregates: how long after a window's end
    /// (its `Windowed` key's) the window closes, in milliseconds. Set by
    /// the windowed aggregations, kept by the operations that keep the
    /// windows; what `suppress(until_window_closes)` needs.
    pub(crate) close_after: Option<i64>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            graph: self.graph.clone(),
            node: self.node,
            keys: self.keys.clone(),
            values: self.values.clone(),
            store: self.store.clone(),
            close_after: self.close_after,
        }
    }
}

impl<K, V> fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KTable")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Materializes a table from its source records.
struct TableSource<K, V> {
    store_name: String,
    store: Option<KeyValueStore<K, V>>,
    emit: Emitter<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Option<V>, K, Change<V>>
    for TableSource<K, V>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: StreamRecord<K, Option<V>>,
    ) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let kb = key_bytes(&*store.keys, &record.key)?;
        let old = store.get_bytes(&kb)?;
        match &record.value {
            Some(v) => store.put_bytes(kb.clone(), v)?,
            None => {
                if old.is_none() {
                    return Ok(());
                }
                store.state.lock().delete(&kb)?;
            }
        }
        self.emit.changed(
            ctx,
            record.key,
            kb,
            old,
            record.value,
            record.timestamp,
            &|k| store.get(k),
        )
    }

    fn commit(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        self.emit.flush(ctx, &|k| store.get(k))
    }
}

/// A table read from `topic`.
pub(crate) fn table_source<K, V>(
    builder: &StreamsBuilder,
    topic: &str,
    consumed: crate::streams::Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> Result<KTable<K, V>>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    let graph = builder.graph.clone();
    let mut g = graph.borrow_mut();
    let store = match &materialized.name {
        Some(n) => n.clone(),
        None => g.name(&format!("{topic}-STATE-STORE")),
    };
    let keys = materialized
        .keys
        .clone()
        .unwrap_or_else(|| consumed.keys.clone());
    let values = materialized
        .values
        .clone()
        .unwrap_or_else(|| consumed.values.clone());
    g.add_store(materialized.apply(Stores::key_value(
        store.clone(),
        keys.clone(),
        values.clone(),
    )))?;
    let name = g.name("KTABLE-SOURCE");
    let build = table_source_build(
        vec![topic.to_owned()],
        consumed.keys.clone(),
        Serdes::optional(consumed.values.clone()),
    );
    let source = g.add(
        name,
        NodeKind::Source {
            topics: vec![topic.to_owned()],
        },
        &[],
        Vec::new(),
        build,
    );
    drop(g);
    let store_name = store.clone();
    let node = StreamsBuilder::add_processor::<K, Option<V>, K, Change<V>, _>(
        &graph,
        "KTABLE-SOURCE",
        &[source],
        vec![store.clone()],
        move || TableSource {
            store_name: store_name.clone(),
            store: None,
            emit: Emitter::new(),
        },
    );
    Ok(KTable::new(
        graph,
        node,
        Some(keys),
        Some(values),
        Some(store),
    ))
}

impl<K: Clone + 'static, V: Clone + 'static> KTable<K, V> {
    pub(crate) fn new(
        graph: GraphRef,
        node: NodeId,
        keys: Option<SerdeRef<K>>,
        values: Option<SerdeRef<V>>,
        store: Option<String>,
    ) -> Self {
        KTable {
            graph,
            node,
            keys,
            values,
            store,
            close_after: None,
        }
    }

    /// This table, whose windows close `close_after` ms after they end
    /// (`None`: not a windowed table).
    pub(crate) fn closing_after(mut self, close_after: Option<i64>) -> Self {
        self.close_after = close_after;
        self
    }

    /// The name of the store holding the table (to query it), if it is
    /// materialized.
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    fn then<V2: Clone + 'static>(
        &self,
        kind: &str,
        values: Option<SerdeRef<V2>>,
        f: impl Fn(Change<V>) -> Change<V2> + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let f = Arc::new(f);
        let node = StreamsBuilder::add_processor::<K, Change<V>, K, Change<V2>, _>(
            &self.graph,
            kind,
            &[self.node],
            Vec::new(),
            move || {
                let f = f.clone();
                super::FnProcessor {
                    f: move |ctx: &mut ProcessorContext<'_, K, Change<V2>>,
                             r: StreamRecord<K, Change<V>>| {
                        let StreamRecord {
                            key,
                            value,
                            timestamp,
                            headers,
                        } = r;
                        let change = f(value);
                        if change.new.is_none() && change.old.is_none() {
                            return Ok(());
                        }
                        ctx.forward(StreamRecord {
                            key,
                            value: change,
                            timestamp,
                            headers,
                        })
                    },
                    _types: std::marker::PhantomData,
                }
            },
        );
        KTable::new(self.graph.clone(), node, self.keys.clone(), values, None)
            .closing_after(self.close_after)
    }

    /// The rows for which `predicate` holds (a row that stops matching is
    /// deleted downstream).
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        // The key is not in a `Change`; filter through a node that has it.
        let predicate = Arc::new(predicate);
        let node = StreamsBuilder::add_processor::<K, Change<V>, K, Change<V>, _>(
            &self.graph,
            "KTABLE-FILTER",
            &[self.node],
            Vec::new(),
            move || {
                let p = predicate.clone();
                super::FnProcessor {
                    f: move |ctx: &mut ProcessorContext<'_, K, Change<V>>,
                             r: StreamRecord<K, Change<V>>| {
                        let keep = |v: Option<V>| v.filter(|v| p(&r.key, v));
                        let change = Change {
                            new: keep(r.value.new.clone()),
                            old: keep(r.value.old.clone()),
                        };
                        if change.new.is_none() && change.old.is_none() {
                            return Ok(());
                        }
                        ctx.forward(r.with_value(change))
                    },
                    _types: std::marker::PhantomData,
                }
            },
        );
        KTable::new(
            self.graph.clone(),
            node,
            self.keys.clone(),
            self.values.clone(),
            None,
        )
        .closing_after(self.close_after)
    }

    /// The rows for which `predicate` does not hold.
    pub fn filter_not(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.filter(move |k, v| !predicate(k, v))
    }

    /// Each row's value mapped by `f`.
    pub fn map_values<V2: Clone + 'static>(
        &self,
        f: impl Fn(&V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        self.then(
            "KTABLE-MAPVALUES",
            crate::streams::serde::carry(&self.values),
            move |c| Change {
                new: c.new.as_ref().map(&f),
                old: c.old.as_ref().map(&f),
            },
        )
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    /// The table's updates as a stream: each update's new value (`None` for
    /// a deletion, written as a tombstone).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let node = StreamsBuilder::add_processor::<K, Change<V>, K, Option<V>, _>(
            &self.graph,
            "KTABLE-TOSTREAM",
            &[self.node],
            Vec::new(),
            || super::FnProcessor {
                f: |ctx: &mut ProcessorContext<'_, K, Option<V>>, r: StreamRecord<K, Change<V>>| {
                    let StreamRecord {
                        key,
                        value,
                        timestamp,
                        headers,
                    } = r;
                    ctx.forward(StreamRecord {
                        key,
                        value: value.new,
                        timestamp,
                        headers,
                    })
                },
                _types: std::marker::PhantomData,
            },
        );
        KStream::new(
            self.graph.clone(),
            node,
            self.keys.clone(),
            Some(Serdes::optional(or_default(self.values.clone()))),
            false,
        )
    }

    /// This table in a store of its own (named by `materialized`, or
    /// generated), if it is not in one already: what joins and queries
    /// need.
    pub fn materialize(&self, materialized: Materialized<K, V>) -> KTable<K, V> {
        if self.store.is_some() && materialized.name.is_none() {
            return self.clone();
        }
        let keys = or_default(materialized.keys.clone().or_else(|| self.keys.clone()));
        let values = or_default(materialized.values.clone().or_else(|| self.values.clone()));
        let mut g = self.graph.borrow_mut();
        let store = match &materialized.name {
            Some(n) => n.clone(),
            None => g.name("KTABLE-MATERIALIZED-STATE-STORE"),
        };
        g.add_store_or_defer(materialized.apply(Stores::key_value(
            store.clone(),
            keys.clone(),
            values.clone(),
        )));
        drop(g);
        let name = store.clone();
        let node = StreamsBuilder::add_processor::<K, Change<V>, K, Change<V>, _>(
            &self.graph,
            "KTABLE-MATERIALIZE",
            &[self.node],
            vec![store.clone()],
            move || Materialize::<K, V> {
                store_name: name.clone(),
                store: None,
            },
        );
        KTable::new(
            self.graph.clone(),
            node,
            Some(keys),
            Some(values),
            Some(store),
        )
        .closing_after(self.close_after)
    }
}

/// Writes a table's updates into its store and passes them on.
struct Materialize<K, V> {
    store_name: String,
    store: Option<KeyValueStore<K, V>>,
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Change<V>> for Materialize<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: StreamRecord<K, Change<V>>,
    ) -> Result<()> {
        if let Some(store) = &self.store {
            match &record.value.new {
                Some(v) => store.put(&record.key, v)?,
                None => {
                    store.delete(&record.key)?;
                }
            }
        }
        ctx.forward(record)
    }
}

/// A table of a whole topic, in every instance (Kafka's `GlobalKTable`):
/// join a stream to it by a key computed from each record.
pub struct GlobalKTable<K, V> {
    pub(crate) store: String,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            store: self.store.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

impl<K, V> fmt::Debug for GlobalKTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalKTable")
            .field("store", &self.store)
            .finish()
    }
}

impl<K, V> GlobalKTable<K, V> {
    pub(crate) fn new(store: String, keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        GlobalKTable {
            store,
            keys,
            values,
        }
    }

    /// The name of its store (to query it).
    pub fn queryable_store_name(&self) -> &str {
        &self.store
    }
}

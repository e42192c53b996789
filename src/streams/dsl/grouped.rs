//! [`KGroupedStream`]: records grouped by key, and their aggregations
//! into tables.

use super::{KStream, KTable};
use crate::Error;
use crate::Result;
use crate::hash::FxHashMap;
use crate::streams::builder::{Materialized, StreamsBuilder, or_default};
use crate::streams::processor::{BytesProcessor, Processor, ProcessorContext};
use crate::streams::record::{Change, StreamRecord};
use crate::streams::serde::{SerdeRef, Serdes, key_bytes};
use crate::streams::store::{KeyValueStore, Stores};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;

/// Records grouped by key (Kafka's `KGroupedStream`): aggregate them into
/// a table, optionally by window.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
}

impl<K, V> fmt::Debug for KGroupedStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KGroupedStream").finish_non_exhaustive()
    }
}

/// Holds back a table's updates until commit when a record cache is
/// configured (Kafka's caching: one update per key per commit), else
/// forwards each at once.
pub(crate) struct Emitter<K, A> {
    pending: FxHashMap<Bytes, (K, Option<A>, i64)>,
    bytes: usize,
}

impl<K: Clone + 'static, A: Clone + 'static> Emitter<K, A> {
    pub(crate) fn new() -> Self {
        Emitter {
            pending: FxHashMap::default(),
            bytes: 0,
        }
    }

    /// Reports that `key` (`key_bytes`) changed from `old` to `new` at
    /// `timestamp`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn changed(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        key: K,
        key_bytes: Bytes,
        old: Option<A>,
        new: Option<A>,
        timestamp: i64,
        current: &dyn Fn(&K) -> Result<Option<A>>,
    ) -> Result<()> {
        if !ctx.caching() {
            return ctx.forward(StreamRecord::new(key, Change { new, old }, timestamp));
        }
        match self.pending.get_mut(&key_bytes) {
            Some(p) => p.2 = p.2.max(timestamp),
            None => {
                self.bytes += key_bytes.len() + 64;
                self.pending.insert(key_bytes, (key, old, timestamp));
            }
        }
        if self.bytes > ctx.cache_budget() {
            self.flush(ctx, current)?;
        }
        Ok(())
    }

    /// Forwards every held-back update: the key's value now, and the one
    /// before its first held-back change.
    pub(crate) fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        current: &dyn Fn(&K) -> Result<Option<A>>,
    ) -> Result<()> {
        self.bytes = 0;
        let mut pending: Vec<_> = self.pending.drain().collect();
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, (key, old, ts)) in pending {
            let new = current(&key)?;
            if new.is_none() && old.is_none() {
                continue;
            }
            ctx.forward(StreamRecord::new(key, Change { new, old }, ts))?;
        }
        Ok(())
    }
}

/// How an aggregate takes in a record: `combine(key, value, aggregate so
/// far)` (`None` for a new key).
pub(crate) type Combine<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

/// How an aggregate that needs neither key nor value (a count) takes in
/// a record: `grow(aggregate so far)`.
pub(crate) type Grow<A> = Arc<dyn Fn(Option<A>) -> A + Send + Sync>;

/// The aggregation of a grouped stream into a key-value store.
pub(crate) struct Aggregate<K, V, A> {
    store_name: String,
    store: Option<KeyValueStore<K, A>>,
    combine: Combine<K, V, A>,
    /// For a count: the same as `combine`, without key or value, so that
    /// records can come as bytes (see `process_bytes`).
    grow: Option<Grow<A>>,
    emit: Emitter<K, A>,
    /// The serialized key of the record at hand.
    scratch: BytesMut,
}

impl<K: Clone + 'static, V: 'static, A: Clone + 'static> Aggregate<K, V, A> {
    /// With a record cache: updates the aggregate in the store's cache
    /// (one lock, one lookup), to be forwarded once per key at commit.
    /// Returns the record if the store has no cache.
    fn process_cached(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        record: StreamRecord<K, V>,
    ) -> Result<Option<StreamRecord<K, V>>> {
        let Some(store) = self.store.as_ref() else {
            return Ok(None);
        };
        self.scratch.clear();
        if !store.keys.serialize_into(&record.key, &mut self.scratch)? {
            return Err(Error::Codec(
                "a key serialized to null: stores and repartitioning need a key".into(),
            ));
        }
        let mut state = store.state.lock();
        if !state.caching() {
            return Ok(Some(record));
        }
        let (values, combine) = (&store.values, &self.combine);
        let StreamRecord {
            key,
            value,
            timestamp,
            ..
        } = record;
        state.update_tracked(&self.scratch, timestamp, |old, out| {
            let old = old.map(|b| values.deserialize(Some(b))).transpose()?;
            values.serialize_into(&combine(&key, value, old), out)
        })?;
        let over = state.cache_bytes > ctx.cache_budget();
        drop(state);
        if over {
            self.forward_tracked(ctx)?;
        }
        Ok(None)
    }

    /// Forwards each key changed since the last call: its value now and
    /// before the first change.
    fn forward_tracked(&mut self, ctx: &mut ProcessorContext<'_, K, Change<A>>) -> Result<()> {
        let Some(store) = self.store.as_ref() else {
            return Ok(());
        };
        let rows = store.state.lock().take_tracked()?;
        for (k, new, old, ts) in rows {
            if new.is_none() && old.is_none() {
                continue;
            }
            let decode =
                |v: Option<Bytes>| v.map(|b| store.values.deserialize(Some(&b))).transpose();
            let change = Change {
                new: decode(new)?,
                old: decode(old)?,
            };
            ctx.forward(StreamRecord::new(
                store.keys.deserialize(Some(&k))?,
                change,
                ts,
            ))?;
        }
        Ok(())
    }
}

impl<K, V, A> Processor<K, V, K, Change<A>> for Aggregate<K, V, A>
where
    K: Clone + 'static,
    V: 'static,
    A: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<A>>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        record: StreamRecord<K, V>,
    ) -> Result<()> {
        let record = if ctx.caching() {
            match self.process_cached(ctx, record)? {
                Some(r) => r,
                None => return Ok(()),
            }
        } else {
            record
        };
        let Aggregate {
            store,
            combine,
            emit,
            ..
        } = self;
        let Some(store) = store.as_ref() else {
            return Ok(());
        };
        let kb = key_bytes(&*store.keys, &record.key)?;
        let old = store.get_bytes(&kb)?;
        let new = combine(&record.key, record.value, old.clone());
        store.put_bytes(kb.clone(), &new)?;
        emit.changed(
            ctx,
            record.key,
            kb,
            old,
            Some(new),
            record.timestamp,
            &|k| store.get(k),
        )
    }

    fn commit(&mut self, ctx: &mut ProcessorContext<'_, K, Change<A>>) -> Result<()> {
        self.forward_tracked(ctx)?;
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        self.emit.flush(ctx, &|k| store.get(k))
    }
}

impl<K, V, A> BytesProcessor<K, Change<A>> for Aggregate<K, V, A>
where
    K: Clone + 'static,
    V: 'static,
    A: Clone + 'static,
{
    fn takes_bytes(&self, caching: bool) -> bool {
        caching
            && self.grow.is_some()
            && self
                .store
                .as_ref()
                .is_some_and(|s| s.state.lock().caching())
    }

    /// A count with a record cache takes a record as its key's bytes (the
    /// source checked them and the value): no key or value decoded, the
    /// key not encoded again. Kafka decodes both; the result is the same.
    fn process_bytes(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        key: &[u8],
        timestamp: i64,
    ) -> Result<bool> {
        let (Some(grow), Some(store)) = (self.grow.as_ref(), self.store.as_ref()) else {
            return Ok(false);
        };
        if !ctx.caching() {
            return Ok(false);
        }
        let mut state = store.state.lock();
        if !state.caching() {
            return Ok(false);
        }
        let values = &store.values;
        state.update_tracked(key, timestamp, |old, out| {
            let old = old.map(|b| values.deserialize(Some(b))).transpose()?;
            values.serialize_into(&grow(old), out)
        })?;
        let over = state.cache_bytes > ctx.cache_budget();
        drop(state);
        if over {
            self.forward_tracked(ctx)?;
        }
        Ok(true)
    }
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    pub(crate) fn new(stream: KStream<K, V>) -> Self {
        KGroupedStream { stream }
    }

    /// The number of records of each key (records with a null key or value
    /// are skipped, as in Kafka).
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    /// As [`count`](Self::count), in the store `materialized` describes
    /// (counts are 8-byte big-endian unless it says otherwise).
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let mut m = materialized;
        if m.values.is_none() {
            m.values = Some(Serdes::i64());
        }
        self.build_aggregate(
            "KSTREAM-AGGREGATE",
            Arc::new(|_: &K, _, n: Option<i64>| n.unwrap_or(0) + 1),
            Some(Arc::new(|n: Option<i64>| n.unwrap_or(0) + 1)),
            m,
        )
    }

    /// Combines each key's values with `f(aggregate, value)`, starting from
    /// its first value.
    pub fn reduce(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        self.reduce_with(f, Materialized::default())
    }

    /// As [`reduce`](Self::reduce), in the store `materialized` describes.
    pub fn reduce_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let mut m = materialized;
        if m.values.is_none() {
            m.values = self.stream.values.clone();
        }
        self.build_aggregate(
            "KSTREAM-REDUCE",
            Arc::new(move |_, v, agg: Option<V>| match agg {
                Some(a) => f(a, v),
                None => v,
            }),
            None,
            m,
        )
    }

    /// Folds each key's values into an aggregate: `init()` for a new key,
    /// then `add(key, value, aggregate)` for each record.
    pub fn aggregate<A>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> KTable<K, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.aggregate_with(init, add, Materialized::default())
    }

    /// As [`aggregate`](Self::aggregate), in the store `materialized`
    /// describes.
    pub fn aggregate_with<A>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        materialized: Materialized<K, A>,
    ) -> KTable<K, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.build_aggregate(
            "KSTREAM-AGGREGATE",
            Arc::new(move |k: &K, v, a: Option<A>| add(k, v, a.unwrap_or_else(&init))),
            None,
            materialized,
        )
    }

    /// The aggregation node.
    fn build_aggregate<A>(
        &self,
        kind: &str,
        combine: Combine<K, V, A>,
        grow: Option<Grow<A>>,
        materialized: Materialized<K, A>,
    ) -> KTable<K, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        let graph = self.stream.graph.clone();
        let keys = or_default(
            materialized
                .keys
                .clone()
                .or_else(|| self.stream.keys.clone()),
        );
        let values: SerdeRef<A> = or_default(materialized.values.clone());
        let store_name = match &materialized.name {
            Some(n) => n.clone(),
            None => graph.borrow_mut().name(&format!("{kind}-STATE-STORE")),
        };
        let spec = materialized.apply(Stores::key_value(
            store_name.clone(),
            keys.clone(),
            values.clone(),
        ));
        graph.borrow_mut().add_store_or_defer(spec);
        let name = store_name.clone();
        let node = StreamsBuilder::add_bytes_processor::<K, V, K, Change<A>, _>(
            &graph,
            kind,
            &[self.stream.node],
            vec![store_name.clone()],
            move || Aggregate {
                store_name: name.clone(),
                store: None,
                combine: combine.clone(),
                grow: grow.clone(),
                emit: Emitter::new(),
                scratch: BytesMut::new(),
            },
            keys.clone(),
        );
        KTable::new(graph, node, Some(keys), Some(values), Some(store_name))
    }
}

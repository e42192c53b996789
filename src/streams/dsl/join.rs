//! Joins with tables: a stream with a table ([`KStream::join`],
//! [`KStream::left_join`]), a stream with a global table
//! ([`KStream::join_global`], [`KStream::left_join_global`]), and two
//! tables ([`KTable::join`], [`KTable::left_join`],
//! [`KTable::outer_join`]).

use super::{GlobalKTable, KStream, KTable, PassThrough};
use crate::Result;
use crate::streams::builder::{GraphRef, Materialized, StreamsBuilder, or_default};
use crate::streams::processor::{Processor, ProcessorContext};
use crate::streams::record::{Change, StreamRecord};
use crate::streams::store::KeyValueStore;
use crate::streams::topology::NodeId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

type Both<A, B, R> = Arc<dyn Fn(&A, &B) -> R + Send + Sync>;
type LeftOnly<A, B, R> = Arc<dyn Fn(&A, Option<&B>) -> R + Send + Sync>;
type RightOnly<A, B, R> = Arc<dyn Fn(Option<&A>, &B) -> R + Send + Sync>;
type Either<A, B, R> = Arc<dyn Fn(Option<&A>, Option<&B>) -> R + Send + Sync>;
/// The table key of a stream record.
type KeyOf<K, V, KT> = Arc<dyn Fn(&K, &V) -> KT + Send + Sync>;

/// A user's joiner and which of its sides may be missing: what makes an
/// inner, left, right or outer join.
pub(crate) enum ValueJoiner<A, B, R> {
    /// Both sides needed.
    Inner(Both<A, B, R>),
    /// The left side needed, the right optional.
    Left(LeftOnly<A, B, R>),
    /// The right side needed, the left optional (a left join seen from its
    /// right side).
    Right(RightOnly<A, B, R>),
    /// Either side may be missing (never both).
    Outer(Either<A, B, R>),
}

impl<A, B, R> Clone for ValueJoiner<A, B, R> {
    fn clone(&self) -> Self {
        match self {
            ValueJoiner::Inner(f) => ValueJoiner::Inner(f.clone()),
            ValueJoiner::Left(f) => ValueJoiner::Left(f.clone()),
            ValueJoiner::Right(f) => ValueJoiner::Right(f.clone()),
            ValueJoiner::Outer(f) => ValueJoiner::Outer(f.clone()),
        }
    }
}

impl<A: 'static, B: 'static, R: 'static> ValueJoiner<A, B, R> {
    /// The joined value of `a` and `b`, or `None` if this kind of join
    /// has no row for them (a side it needs is missing).
    pub(crate) fn join(&self, a: Option<&A>, b: Option<&B>) -> Option<R> {
        match (self, a, b) {
            (ValueJoiner::Inner(f), Some(a), Some(b)) => Some(f(a, b)),
            (ValueJoiner::Left(f), Some(a), b) => Some(f(a, b)),
            (ValueJoiner::Right(f), a, Some(b)) => Some(f(a, b)),
            (ValueJoiner::Outer(f), a, b) if a.is_some() || b.is_some() => Some(f(a, b)),
            _ => None,
        }
    }

    /// Whether a left value joins without a right one.
    pub(crate) fn left_alone(&self) -> bool {
        matches!(self, ValueJoiner::Left(_) | ValueJoiner::Outer(_))
    }

    /// Whether a right value joins without a left one.
    pub(crate) fn right_alone(&self) -> bool {
        matches!(self, ValueJoiner::Right(_) | ValueJoiner::Outer(_))
    }

    /// The same join seen from the right side: `(b, a)`.
    pub(crate) fn reversed(&self) -> ValueJoiner<B, A, R> {
        match self.clone() {
            ValueJoiner::Inner(f) => ValueJoiner::Inner(Arc::new(move |b, a| f(a, b))),
            ValueJoiner::Left(f) => ValueJoiner::Right(Arc::new(move |b, a| f(a, b))),
            ValueJoiner::Right(f) => ValueJoiner::Left(Arc::new(move |b, a| f(a, b))),
            ValueJoiner::Outer(f) => ValueJoiner::Outer(Arc::new(move |b, a| f(a, b))),
        }
    }
}

/// Adds a processor node named `name` (or a generated name of `kind`).
pub(crate) fn add_node<KIn, VIn, KOut, VOut, P>(
    graph: &GraphRef,
    name: Option<String>,
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
    let Some(name) = name else {
        return StreamsBuilder::add_processor::<KIn, VIn, KOut, VOut, P>(
            graph, kind, parents, stores, supplier,
        );
    };
    let build = crate::streams::topology::processor_build::<KIn, VIn, KOut, VOut, P>(supplier);
    graph.borrow_mut().add(
        name,
        crate::streams::topology::NodeKind::Processor,
        parents,
        stores,
        build,
    )
}

/// Records that the source topics feeding `nodes` must be co-partitioned,
/// for the join `join` (the node's name).
pub(crate) fn require_copartitioned(graph: &GraphRef, join: NodeId, nodes: &[NodeId]) {
    let mut g = graph.borrow_mut();
    let mut topics = std::collections::BTreeSet::new();
    for &n in nodes {
        topics.extend(g.upstream_topics(n));
    }
    let name = g.nodes[join].name.clone();
    g.copartition.push((topics, name));
}

/// The store of a materialized table. `materialize` always names one; an
/// empty name would fail `build` as an undeclared store, never a join.
fn store_of<K, V>(table: &KTable<K, V>) -> String {
    table.store.clone().unwrap_or_default()
}

/// Joins each stream record with the value a store holds for a key computed
/// from it: a stream–table join (the key is the record's) or a stream–
/// global-table join (the key is the key mapper's).
struct StreamTableJoin<K, V, KT, VT, VR> {
    store_name: String,
    store: Option<KeyValueStore<KT, VT>>,
    key_of: KeyOf<K, V, KT>,
    joiner: ValueJoiner<V, VT, VR>,
}

impl<K, V, KT, VT, VR> Processor<K, V, K, VR> for StreamTableJoin<K, V, KT, VT, VR>
where
    K: Clone + 'static,
    V: 'static,
    KT: 'static,
    VT: 'static,
    VR: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: StreamRecord<K, V>,
    ) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let key = (self.key_of)(&record.key, &record.value);
        // A null key joins nothing (Kafka drops such records, and counts them).
        let Some(kb) = store.keys.serialize(&key)? else {
            ctx.record_skipped();
            return Ok(());
        };
        let found = store.get_bytes(&kb)?;
        let Some(joined) = self.joiner.join(Some(&record.value), found.as_ref()) else {
            return Ok(());
        };
        ctx.forward(StreamRecord {
            key: record.key,
            value: joined,
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

/// One side of a table–table join: an update of this table, joined with
/// the other table's current row for the key, as the change of the joined
/// row (new and old).
struct TableTableJoin<K, VT, VX, VR> {
    other_name: String,
    other: Option<KeyValueStore<K, VX>>,
    joiner: ValueJoiner<VT, VX, VR>,
}

impl<K, VT, VX, VR> Processor<K, Change<VT>, K, Change<VR>> for TableTableJoin<K, VT, VX, VR>
where
    K: Clone + 'static,
    VT: 'static,
    VX: 'static,
    VR: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<()> {
        self.other = Some(ctx.key_value_store(&self.other_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: StreamRecord<K, Change<VT>>,
    ) -> Result<()> {
        let Some(other) = &self.other else {
            return Ok(());
        };
        let Some(kb) = other.keys.serialize(&record.key)? else {
            ctx.record_skipped();
            return Ok(());
        };
        let found = other.get_bytes(&kb)?;
        let new = self.joiner.join(record.value.new.as_ref(), found.as_ref());
        let old = self.joiner.join(record.value.old.as_ref(), found.as_ref());
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(StreamRecord {
            key: record.key,
            value: Change { new, old },
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    /// Joins each record with the table's current value for its key
    /// (Kafka's stream–table `join`): a record whose key the table does not
    /// hold yields nothing. Only stream records make output (at their
    /// time); a table update joins nothing by itself. Records with a null
    /// key are dropped (and counted as skipped).
    ///
    /// The stream is repartitioned first if its key changed; its topics
    /// and the table's must have the same number of partitions. The table
    /// is materialized if it is not yet.
    ///
    /// ```
    /// use embedlog::streams::{Consumed, Materialized, Serdes, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table(
    ///     "names",
    ///     Consumed::with(Serdes::string(), Serdes::string()),
    ///     Materialized::default(),
    /// )?;
    /// builder
    ///     .stream("orders", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .join(&names, |amount: &i64, name: &String| format!("{name}: {amount}"))
    ///     .to("named-orders");
    /// let driver = TopologyTestDriver::new(builder.build()?)?;
    /// let names_in = driver.input_topic("names", Serdes::string(), Serdes::string());
    /// let orders = driver.input_topic("orders", Serdes::string(), Serdes::i64());
    /// orders.pipe_input("u1".to_string(), 5, 1)?; // no name yet: nothing
    /// names_in.pipe_input("u1".to_string(), "Ada".to_string(), 2)?;
    /// orders.pipe_input("u1".to_string(), 7, 3)?;
    /// let out = driver.output_topic("named-orders", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_key_values_to_list()?, vec![("u1".to_string(), "Ada: 7".to_string())]);
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    pub fn join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        self.join_table("KSTREAM-JOIN", table, ValueJoiner::Inner(Arc::new(joiner)))
    }

    /// As [`join`](Self::join), but every record yields a value: the
    /// joiner gets `None` where the table holds nothing for the key (Kafka's
    /// stream–table `leftJoin`).
    pub fn left_join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VT: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        self.join_table(
            "KSTREAM-LEFTJOIN",
            table,
            ValueJoiner::Left(Arc::new(joiner)),
        )
    }

    fn join_table<VT, VR>(
        &self,
        kind: &str,
        table: &KTable<K, VT>,
        joiner: ValueJoiner<V, VT, VR>,
    ) -> KStream<K, VR>
    where
        VT: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        let stream = self.partitioned(None);
        let table = table.materialize(Materialized::default());
        let store = store_of(&table);
        let store_name = store.clone();
        let node = StreamsBuilder::add_processor::<K, V, K, VR, _>(
            &self.graph,
            kind,
            &[stream.node],
            vec![store],
            move || StreamTableJoin {
                store_name: store_name.clone(),
                store: None,
                key_of: Arc::new(|k: &K, _: &V| k.clone()),
                joiner: joiner.clone(),
            },
        );
        require_copartitioned(&self.graph, node, &[stream.node, table.node]);
        KStream::new(self.graph.clone(), node, stream.keys, None, false)
    }
}

impl<K: Clone + 'static, V: Clone + 'static> KStream<K, V> {
    /// Joins each record with the global table's value for the key
    /// `key_mapper` computes from it (Kafka's `join` with a
    /// `GlobalKTable`): a record whose key the table does not hold yields
    /// nothing; one whose mapped key is null is dropped (and counted as
    /// skipped). No repartitioning and no co-partitioning: every task sees
    /// the whole table.
    ///
    /// ```
    /// use embedlog::streams::{Consumed, Serdes, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let countries = builder.global_table(
    ///     "countries",
    ///     Consumed::with(Serdes::string(), Serdes::string()),
    ///     None,
    /// )?;
    /// builder
    ///     .stream("visits", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .join_global(&countries, |_user, code: &String| code.clone(), |code, name| {
    ///         format!("{code}={name}")
    ///     })
    ///     .to("visits-by-country");
    /// let driver = TopologyTestDriver::new(builder.build()?)?;
    /// driver
    ///     .input_topic("countries", Serdes::string(), Serdes::string())
    ///     .pipe_input("fr".to_string(), "France".to_string(), 0)?;
    /// driver
    ///     .input_topic("visits", Serdes::string(), Serdes::string())
    ///     .pipe_input("ada".to_string(), "fr".to_string(), 1)?;
    /// let out = driver.output_topic("visits-by-country", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_key_value()?, Some(("ada".to_string(), "fr=France".to_string())));
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    pub fn join_global<GK, GV, VR>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        GK: 'static,
        GV: 'static,
        VR: Clone + 'static,
    {
        self.join_global_table(
            "KSTREAM-JOIN",
            table,
            Arc::new(key_mapper),
            ValueJoiner::Inner(Arc::new(joiner)),
        )
    }

    /// As [`join_global`](Self::join_global), but every record with a
    /// non-null mapped key yields a value: the joiner gets `None` where the
    /// table holds nothing for it (Kafka's `leftJoin` with a
    /// `GlobalKTable`).
    pub fn left_join_global<GK, GV, VR>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        GK: 'static,
        GV: 'static,
        VR: Clone + 'static,
    {
        self.join_global_table(
            "KSTREAM-LEFTJOIN",
            table,
            Arc::new(key_mapper),
            ValueJoiner::Left(Arc::new(joiner)),
        )
    }

    fn join_global_table<GK, GV, VR>(
        &self,
        kind: &str,
        table: &GlobalKTable<GK, GV>,
        key_of: KeyOf<K, V, GK>,
        joiner: ValueJoiner<V, GV, VR>,
    ) -> KStream<K, VR>
    where
        GK: 'static,
        GV: 'static,
        VR: Clone + 'static,
    {
        let store_name = table.store.clone();
        let node = StreamsBuilder::add_processor::<K, V, K, VR, _>(
            &self.graph,
            kind,
            &[self.node],
            // A global store joins no sub-topologies (`Topology::finish`
            // skips it); every task has it.
            vec![table.store.clone()],
            move || StreamTableJoin {
                store_name: store_name.clone(),
                store: None,
                key_of: key_of.clone(),
                joiner: joiner.clone(),
            },
        );
        // The key did not change: the stream is partitioned as before.
        KStream::new(
            self.graph.clone(),
            node,
            self.keys.clone(),
            None,
            self.repartition,
        )
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    /// The rows whose key both tables hold, joined (Kafka's table–table
    /// `join`). An update of either table changes the joined row of its
    /// key; each change goes downstream with the row it replaces (a row
    /// that stops existing is a deletion). Both tables are materialized if
    /// they are not yet, and their topics must have the same number of
    /// partitions.
    ///
    /// An update's joined row carries that update's timestamp (Kafka takes
    /// the later of the two rows' times; the tables here do not store
    /// them).
    ///
    /// ```
    /// use embedlog::streams::{Consumed, Materialized, Serdes, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let s = Consumed::with(Serdes::string(), Serdes::string());
    /// let names = builder.table("names", s, Materialized::default())?;
    /// let s = Consumed::with(Serdes::string(), Serdes::string());
    /// let cities = builder.table("cities", s, Materialized::default())?;
    /// names
    ///     .join(&cities, |name: &String, city: &String| format!("{name} in {city}"))
    ///     .to_stream()
    ///     .to("where");
    /// let driver = TopologyTestDriver::new(builder.build()?)?;
    /// let names_in = driver.input_topic("names", Serdes::string(), Serdes::string());
    /// let cities_in = driver.input_topic("cities", Serdes::string(), Serdes::string());
    /// names_in.pipe_input("u1".to_string(), "Ada".to_string(), 1)?;
    /// cities_in.pipe_input("u1".to_string(), "Paris".to_string(), 2)?;
    /// cities_in.pipe_tombstone("u1".to_string(), 3)?;
    /// let out = driver.output_topic("where", Serdes::string(), Serdes::optional(Serdes::string()));
    /// assert_eq!(
    ///     out.read_key_values_to_list()?,
    ///     vec![
    ///         ("u1".to_string(), Some("Ada in Paris".to_string())),
    ///         ("u1".to_string(), None), // the row is gone
    ///     ]
    /// );
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    pub fn join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.join_tables("KTABLE-JOIN", other, ValueJoiner::Inner(Arc::new(joiner)))
    }

    /// A row for every key of this table, joined with the other table's
    /// row (`None` where it has none): Kafka's table–table `leftJoin`.
    /// Updates and deletions as in [`join`](Self::join).
    pub fn left_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.join_tables(
            "KTABLE-LEFTJOIN",
            other,
            ValueJoiner::Left(Arc::new(joiner)),
        )
    }

    /// A row for every key of either table, joined with the other's row
    /// (`None` on the side that has none): Kafka's table–table
    /// `outerJoin`. Updates and deletions as in [`join`](Self::join).
    pub fn outer_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.join_tables(
            "KTABLE-OUTERJOIN",
            other,
            ValueJoiner::Outer(Arc::new(joiner)),
        )
    }

    fn join_tables<VO, VR>(
        &self,
        kind: &str,
        other: &KTable<K, VO>,
        joiner: ValueJoiner<V, VO, VR>,
    ) -> KTable<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + Serialize + DeserializeOwned + 'static,
    {
        let this = self.materialize(Materialized::default());
        let other = other.materialize(Materialized::default());
        let (this_store, other_store) = (store_of(&this), store_of(&other));
        let stores = vec![this_store.clone(), other_store.clone()];
        let (name, j) = (other_store, joiner.clone());
        let left = StreamsBuilder::add_processor::<K, Change<V>, K, Change<VR>, _>(
            &self.graph,
            kind,
            &[this.node],
            stores.clone(),
            move || TableTableJoin {
                other_name: name.clone(),
                other: None,
                joiner: j.clone(),
            },
        );
        let (name, j) = (this_store, joiner.reversed());
        let right = StreamsBuilder::add_processor::<K, Change<VO>, K, Change<VR>, _>(
            &self.graph,
            &format!("{kind}-OTHER"),
            &[other.node],
            stores,
            move || TableTableJoin {
                other_name: name.clone(),
                other: None,
                joiner: j.clone(),
            },
        );
        let merge = StreamsBuilder::add_processor::<K, Change<VR>, K, Change<VR>, _>(
            &self.graph,
            "KTABLE-MERGE",
            &[left, right],
            Vec::new(),
            || PassThrough,
        );
        require_copartitioned(&self.graph, left, &[this.node, other.node]);
        // The joined values get the default serde, so that `to_stream`
        // writes a deleted row as a tombstone.
        KTable::new(
            self.graph.clone(),
            merge,
            this.keys,
            Some(or_default(None)),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joiners_say_which_side_may_be_missing() {
        let inner: ValueJoiner<i32, i32, i32> = ValueJoiner::Inner(Arc::new(|a, b| a * 10 + b));
        assert_eq!(inner.join(Some(&1), Some(&2)), Some(12));
        assert_eq!(inner.join(Some(&1), None), None);
        assert_eq!(inner.reversed().join(Some(&2), Some(&1)), Some(12));

        let left: ValueJoiner<i32, i32, i32> =
            ValueJoiner::Left(Arc::new(|a, b| a * 10 + b.copied().unwrap_or(9)));
        assert_eq!(left.join(Some(&1), None), Some(19));
        assert_eq!(left.join(None, Some(&2)), None);
        assert!(left.left_alone() && !left.right_alone());
        let right = left.reversed();
        assert!(!right.left_alone() && right.right_alone());
        assert_eq!(right.join(None, Some(&1)), Some(19));
        assert_eq!(right.join(Some(&2), None), None);
        assert_eq!(right.reversed().join(Some(&1), Some(&2)), Some(12));

        let outer: ValueJoiner<i32, i32, i32> = ValueJoiner::Outer(Arc::new(|a, b| {
            a.copied().unwrap_or(8) * 10 + b.copied().unwrap_or(9)
        }));
        assert_eq!(outer.join(None, None), None);
        assert_eq!(outer.join(None, Some(&2)), Some(82));
        assert_eq!(outer.reversed().join(None, Some(&1)), Some(19));
    }
}

//! [`TimeWindowedKStream`]: a grouped stream cut into time or sliding
//! windows, and the aggregation of time windows (tumbling and hopping).
//! Sliding windows are aggregated in `sliding.rs`, sessions in
//! `session.rs`.

use super::grouped::Combine;
use super::session::SessionWindowedKStream;
use super::{Emitter, KGroupedStream, KStream, KTable};
use crate::streams::builder::{GraphRef, Materialized, StreamsBuilder, or_default};
use crate::streams::processor::{Processor, ProcessorContext};
use crate::streams::record::{Change, StreamRecord, Windowed, windowed_serde};
use crate::streams::serde::{Serde, SerdeRef, Serdes};
use crate::streams::store::{StoreSpec, Stores, WindowStore, window_key};
use crate::streams::windows::{SessionWindows, SlidingWindows, TimeWindows};
use crate::{Error, Result};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The windows of a [`TimeWindowedKStream`].
#[derive(Debug, Clone, Copy)]
enum Windows {
    Time(TimeWindows),
    Sliding(SlidingWindows),
}

/// A grouped stream cut into time windows (Kafka's `TimeWindowedKStream`):
/// aggregate each key's records per window into a table keyed by
/// [`Windowed`] keys. Made by [`KGroupedStream::windowed_by`] (tumbling or
/// hopping windows) or [`KGroupedStream::windowed_by_sliding`].
///
/// Each window's aggregate is updated by every record that falls in it
/// until the window closes (its end plus the grace period, by the task's
/// stream time); a record for a closed window is dropped and counted in
/// [`TaskMetrics::dropped_late`](crate::streams::TaskMetrics::dropped_late).
/// The result is a table whose updates are the windows' new aggregates;
/// add [`KTable::suppress`] for one final result per window. Records
/// without a key, or with a negative timestamp (which Kafka never hands a
/// processor), are skipped and counted in
/// [`TaskMetrics::skipped`](crate::streams::TaskMetrics::skipped).
///
/// An update of a time window carries the time of the record that made
/// it (Kafka 3 stores the newest record time with each window and uses
/// that); an update of a sliding window carries the newest record time in
/// the window, as Kafka's.
///
/// ```
/// use embedlog::streams::{
///     Consumed, Serdes, StreamsBuilder, TimeWindows, TopologyTestDriver, windowed_serde,
/// };
/// use std::time::Duration;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
///     .count()
///     .to_stream()
///     .to("clicks-per-10ms");
/// let driver = TopologyTestDriver::new(builder.build()?)?;
/// let input = driver.input_topic("clicks", Serdes::string(), Serdes::string());
/// input.pipe_input("u1".into(), "a".into(), 1)?;
/// input.pipe_input("u1".into(), "b".into(), 7)?;
/// input.pipe_input("u1".into(), "c".into(), 12)?;
/// let out = driver.output_topic(
///     "clicks-per-10ms",
///     windowed_serde(Serdes::string()),
///     Serdes::optional(Serdes::i64()),
/// );
/// let counts: Vec<_> = out
///     .read_key_values_to_list()?
///     .into_iter()
///     .map(|(w, n)| (w.window.start, n))
///     .collect();
/// assert_eq!(counts, [(0, Some(1)), (0, Some(2)), (10, Some(1))]);
/// # Ok::<(), embedlog::Error>(())
/// ```
pub struct TimeWindowedKStream<K, V> {
    stream: KStream<K, V>,
    windows: Windows,
}

impl<K, V> fmt::Debug for TimeWindowedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeWindowedKStream")
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    /// Cuts each key's records into tumbling or hopping time windows, to
    /// aggregate per window.
    ///
    /// # Errors
    /// None here; windows that are not valid (see [`TimeWindows`]) make
    /// [`StreamsBuilder::build`] fail with [`Error::Topology`].
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        if let Err(e) = windows.check() {
            self.stream.graph.borrow_mut().error.get_or_insert(e);
        }
        TimeWindowedKStream {
            stream: self.stream.clone(),
            windows: Windows::Time(windows),
        }
    }

    /// Cuts each key's records into sliding windows (see
    /// [`SlidingWindows`]), to aggregate per window.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            stream: self.stream.clone(),
            windows: Windows::Sliding(windows),
        }
    }

    /// Groups each key's records into sessions (see [`SessionWindows`]),
    /// to aggregate per session.
    ///
    /// # Errors
    /// None here; a gap under 1 ms makes [`StreamsBuilder::build`] fail
    /// with [`Error::Topology`].
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        if let Err(e) = windows.check() {
            self.stream.graph.borrow_mut().error.get_or_insert(e);
        }
        SessionWindowedKStream::new(self.stream.clone(), windows)
    }
}

/// What a windowed aggregation's store is made of: its name and serdes,
/// and how long it keeps entries.
pub(crate) struct StorePlan<K, A> {
    pub(crate) name: String,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<A>,
    pub(crate) retention: Duration,
}

/// Plans the store of a windowed aggregation: serdes from `materialized`
/// or the stream, a generated name unless it names one, and a retention of
/// `least` unless it asks for more (asking for less is a topology error,
/// reported by `build`: the store would forget windows still open).
pub(crate) fn plan_store<K, V, A>(
    stream: &KStream<K, V>,
    kind: &str,
    materialized: &Materialized<K, A>,
    least: i64,
    what: &str,
) -> StorePlan<K, A>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + 'static,
    A: Serialize + DeserializeOwned + 'static,
{
    let keys = or_default(materialized.keys.clone().or_else(|| stream.keys.clone()));
    let values: SerdeRef<A> = or_default(materialized.values.clone());
    let mut g = stream.graph.borrow_mut();
    let name = match &materialized.name {
        Some(n) => n.clone(),
        None => g.name(&format!("{kind}-STATE-STORE")),
    };
    let least = Duration::from_millis(least.max(0).unsigned_abs());
    let retention = match materialized.retention {
        Some(r) if r < least => {
            g.error.get_or_insert(Error::Topology(format!(
                "store {name:?}: a retention of {} ms is too short for {what} ({} ms): it would forget windows that are still open (use Materialized::with_retention of at least that)",
                r.as_millis(),
                least.as_millis()
            )));
            least
        }
        Some(r) => r,
        None => least,
    };
    StorePlan {
        name,
        keys,
        values,
        retention,
    }
}

/// Adds `spec` (made by `materialized`'s choices) to the graph.
pub(crate) fn add_store<K, A>(
    graph: &GraphRef,
    materialized: &Materialized<K, A>,
    spec: StoreSpec,
) {
    graph
        .borrow_mut()
        .add_store_or_defer(materialized.apply(spec));
}

/// Whether a windowed aggregation takes `record` at all: it needs a key
/// and a time that is not negative (Kafka never hands a processor a
/// negative timestamp). Counts the skipped ones.
pub(crate) fn admit<K: 'static, V, KO, VO>(
    ctx: &mut ProcessorContext<'_, KO, VO>,
    keys: &dyn Serde<K>,
    record: &StreamRecord<K, V>,
) -> Result<Option<Bytes>> {
    let kb = keys.serialize(&record.key)?;
    if kb.is_none() || record.timestamp < 0 {
        tracing::debug!(
            node = ctx.node_name(),
            timestamp = record.timestamp,
            "skipping a record without a key or with a negative timestamp"
        );
        ctx.record_skipped();
        return Ok(None);
    }
    Ok(kb)
}

/// Aggregates records into tumbling or hopping windows.
pub(crate) struct WindowAggregate<K, V, A> {
    store_name: String,
    store: Option<WindowStore<K, A>>,
    windows: TimeWindows,
    combine: Combine<K, V, A>,
    emit: Emitter<Windowed<K>, A>,
}

/// A window store's value of a windowed key (what an `Emitter` flushes).
pub(crate) fn current<K: 'static, A: 'static>(
    store: &WindowStore<K, A>,
) -> impl Fn(&Windowed<K>) -> Result<Option<A>> + '_ {
    move |w: &Windowed<K>| store.fetch_window(&w.key, w.window.start)
}

impl<K, V, A> Processor<K, V, Windowed<K>, Change<A>> for WindowAggregate<K, V, A>
where
    K: Clone + 'static,
    V: Clone + 'static,
    A: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>) -> Result<()> {
        self.store = Some(ctx.window_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        record: StreamRecord<K, V>,
    ) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let Some(kb) = admit(ctx, &*store.keys, &record)? else {
            return Ok(());
        };
        let now = ctx.stream_time();
        for window in self.windows.windows_for(record.timestamp) {
            if window.end.saturating_add(self.windows.grace_ms) <= now {
                tracing::debug!(
                    node = ctx.node_name(),
                    timestamp = record.timestamp,
                    window.start,
                    window.end,
                    stream_time = now,
                    "dropping a record for a closed window"
                );
                ctx.record_late();
                continue;
            }
            let old = store.fetch_window(&record.key, window.start)?;
            let new = (self.combine)(&record.key, record.value.clone(), old.clone());
            store.put(&record.key, &new, window.start)?;
            let key = Windowed {
                key: record.key.clone(),
                window,
            };
            self.emit.changed(
                ctx,
                key,
                window_key(&kb, window.start, 0),
                old,
                Some(new),
                record.timestamp,
                &current(&store),
            )?;
        }
        Ok(())
    }

    fn commit(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        self.emit.flush(ctx, &current(&store))
    }
}

impl<K, V> TimeWindowedKStream<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    /// The number of records of each key in each window.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// As [`count`](Self::count), in the store `materialized` describes
    /// (counts are 8-byte big-endian unless it says otherwise).
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let mut m = materialized;
        if m.values.is_none() {
            m.values = Some(Serdes::i64());
        }
        self.aggregate_with(|| 0, |_, _, n| n + 1, m)
    }

    /// Combines each key's values in each window with `f(aggregate,
    /// value)`, starting from the window's first value.
    pub fn reduce(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V> {
        self.reduce_with(f, Materialized::default())
    }

    /// As [`reduce`](Self::reduce), in the store `materialized` describes.
    pub fn reduce_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let mut m = materialized;
        if m.values.is_none() {
            m.values = self.stream.values.clone();
        }
        self.build(
            "KSTREAM-REDUCE",
            Arc::new(move |_, v, agg: Option<V>| match agg {
                Some(a) => f(a, v),
                None => v,
            }),
            m,
        )
    }

    /// Folds each key's values in each window into an aggregate: `init()`
    /// for a new window, then `add(key, value, aggregate)` for each record.
    pub fn aggregate<A>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.aggregate_with(init, add, Materialized::default())
    }

    /// As [`aggregate`](Self::aggregate), in the store `materialized`
    /// describes: a window store, keeping windows for their size plus the
    /// grace period (sliding windows: twice the time difference plus the
    /// grace period) unless [`Materialized::with_retention`] says longer.
    pub fn aggregate_with<A>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.build(
            "KSTREAM-AGGREGATE",
            Arc::new(move |k: &K, v, a: Option<A>| add(k, v, a.unwrap_or_else(&init))),
            materialized,
        )
    }

    fn build<A>(
        &self,
        kind: &str,
        combine: Combine<K, V, A>,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        match self.windows {
            Windows::Time(w) => self.build_time(kind, w, combine, materialized),
            Windows::Sliding(w) => {
                super::sliding::build(&self.stream, kind, w, combine, materialized)
            }
        }
    }

    fn build_time<A>(
        &self,
        kind: &str,
        windows: TimeWindows,
        combine: Combine<K, V, A>,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        let graph = self.stream.graph.clone();
        let least = windows.size_ms.saturating_add(windows.grace_ms);
        let plan = plan_store(
            &self.stream,
            kind,
            &materialized,
            least,
            "the window size plus the grace period",
        );
        add_store(
            &graph,
            &materialized,
            Stores::window(
                plan.name.clone(),
                plan.retention,
                windows.size(),
                false,
                plan.keys.clone(),
                plan.values.clone(),
            ),
        );
        let name = plan.name.clone();
        let node = StreamsBuilder::add_processor::<K, V, Windowed<K>, Change<A>, _>(
            &graph,
            kind,
            &[self.stream.node],
            vec![plan.name.clone()],
            move || WindowAggregate {
                store_name: name.clone(),
                store: None,
                windows,
                combine: combine.clone(),
                emit: Emitter::new(),
            },
        );
        KTable::new(
            graph,
            node,
            Some(windowed_serde(plan.keys)),
            Some(plan.values),
            Some(plan.name),
        )
        .closing_after(Some(windows.grace_ms))
    }
}

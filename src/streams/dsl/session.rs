//! [`SessionWindowedKStream`]: a grouped stream cut into sessions, and the
//! aggregation of sessions (Kafka's `KStreamSessionWindowAggregate`).

use super::windowed::{add_store, admit, plan_store};
use super::{Emitter, KStream, KTable};
use crate::Result;
use crate::streams::builder::{Materialized, StreamsBuilder};
use crate::streams::processor::{Processor, ProcessorContext};
use crate::streams::record::{Change, StreamRecord, Window, Windowed, windowed_serde};
use crate::streams::serde::Serdes;
use crate::streams::store::{SessionStore, Stores, session_key};
use crate::streams::windows::SessionWindows;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;

/// How a session aggregate takes in a record: `combine(key, value,
/// aggregate so far)` (`None` for a new session).
type Combine<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

/// How two sessions' aggregates become one: `merge(key, aggregate so far,
/// next session's)` (`None` before the first).
type Merge<K, A> = Arc<dyn Fn(&K, Option<A>, A) -> A + Send + Sync>;

/// A grouped stream cut into sessions (Kafka's `SessionWindowedKStream`),
/// made by [`KGroupedStream::windowed_by_session`](super::KGroupedStream::windowed_by_session):
/// aggregate each key's records per session into a table keyed by
/// [`Windowed`] keys whose window runs from the session's first record's
/// time to its last's.
///
/// A record joins every session of its key that ends at most the gap
/// before it or starts at most the gap after it, merging them: the merged
/// sessions are deleted (forwarded as deletions) and the merged session is
/// forwarded with the merged aggregate, as Kafka does. A session closes
/// when stream time passes its end plus the gap plus the grace period
/// (Kafka's rule: it is closed once `end < stream time - gap - grace`);
/// from then on it is final: later records neither update nor merge it
/// (they start a new session, or are dropped as late when that one would
/// already be closed). Records without a key, or with a negative
/// timestamp, are skipped and counted in
/// [`TaskMetrics::skipped`](crate::streams::TaskMetrics::skipped). Each
/// update carries the time of the record that made it.
///
/// ```
/// use embedlog::streams::{
///     Consumed, Serdes, SessionWindows, StreamsBuilder, TopologyTestDriver, windowed_serde,
/// };
/// use std::time::Duration;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
///     .group_by_key()
///     .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
///         Duration::from_millis(5),
///         Duration::from_millis(10),
///     ))
///     .count()
///     .to_stream()
///     .to("sessions");
/// let driver = TopologyTestDriver::new(builder.build()?)?;
/// let input = driver.input_topic("clicks", Serdes::string(), Serdes::string());
/// input.pipe_input("u1".into(), "a".into(), 0)?;
/// input.pipe_input("u1".into(), "b".into(), 10)?;
/// input.pipe_input("u1".into(), "c".into(), 5)?; // joins both sessions into one
/// let out = driver.output_topic(
///     "sessions",
///     windowed_serde(Serdes::string()),
///     Serdes::optional(Serdes::i64()),
/// );
/// let updates: Vec<_> = out
///     .read_key_values_to_list()?
///     .into_iter()
///     .map(|(w, n)| ((w.window.start, w.window.end), n))
///     .collect();
/// assert_eq!(
///     updates,
///     [
///         ((0, 0), Some(1)),
///         ((10, 10), Some(1)),
///         ((0, 0), None),
///         ((10, 10), None),
///         ((0, 10), Some(3)),
///     ]
/// );
/// # Ok::<(), embedlog::Error>(())
/// ```
pub struct SessionWindowedKStream<K, V> {
    stream: KStream<K, V>,
    windows: SessionWindows,
}

impl<K, V> fmt::Debug for SessionWindowedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWindowedKStream")
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

/// Aggregates records into sessions.
pub(crate) struct SessionAggregate<K, V, A> {
    store_name: String,
    store: Option<SessionStore<K, A>>,
    gap: i64,
    grace: i64,
    combine: Combine<K, V, A>,
    merge: Merge<K, A>,
    emit: Emitter<Windowed<K>, A>,
}

fn current<K: Clone + 'static, A: 'static>(
    store: &SessionStore<K, A>,
) -> impl Fn(&Windowed<K>) -> Result<Option<A>> + '_ {
    move |w: &Windowed<K>| {
        Ok(store
            .find_sessions(&w.key, w.window.end, w.window.start)?
            .into_iter()
            .find(|(s, _)| s.window == w.window)
            .map(|(_, a)| a))
    }
}

impl<K, V, A> Processor<K, V, Windowed<K>, Change<A>> for SessionAggregate<K, V, A>
where
    K: Clone + 'static,
    V: 'static,
    A: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>) -> Result<()> {
        self.store = Some(ctx.session_store(&self.store_name)?);
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
        let (t, gap) = (record.timestamp, self.gap);
        let now = ctx.stream_time();
        let closed = |end: i64| end.saturating_add(gap).saturating_add(self.grace) < now;
        // The sessions within the gap, those still open only: a closed
        // session is final (and may have left the store already).
        let mut found =
            store.find_sessions(&record.key, t.saturating_sub(gap), t.saturating_add(gap))?;
        found.retain(|(s, _)| !closed(s.window.end));
        let merged = found
            .iter()
            .fold(Window { start: t, end: t }, |w, (s, _)| Window {
                start: w.start.min(s.window.start),
                end: w.end.max(s.window.end),
            });
        if closed(merged.end) {
            tracing::debug!(
                node = ctx.node_name(),
                timestamp = t,
                stream_time = now,
                "dropping a record for a closed session"
            );
            ctx.record_late();
            return Ok(());
        }
        let mut agg = None;
        let mut old = None;
        for (s, a) in &found {
            agg = Some((self.merge)(&record.key, agg, a.clone()));
            if s.window == merged {
                old = Some(a.clone());
            }
        }
        let new = (self.combine)(&record.key, record.value, agg);
        let get = current(&store);
        for (s, a) in found {
            if s.window == merged {
                continue;
            }
            store.remove(&s)?;
            let bytes = session_key(&kb, s.window);
            self.emit
                .changed(ctx, s, bytes, Some(a), None, record.timestamp, &get)?;
        }
        let session = Windowed {
            key: record.key,
            window: merged,
        };
        store.put(&session, &new)?;
        let bytes = session_key(&kb, merged);
        self.emit
            .changed(ctx, session, bytes, old, Some(new), record.timestamp, &get)
    }

    fn commit(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        self.emit.flush(ctx, &current(&store))
    }
}

impl<K, V> SessionWindowedKStream<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    pub(crate) fn new(stream: KStream<K, V>, windows: SessionWindows) -> Self {
        SessionWindowedKStream { stream, windows }
    }

    /// The number of records in each session.
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
        self.aggregate_with(|| 0, |_, _, n| n + 1, |_, a, b| a + b, m)
    }

    /// Combines each session's values with `f(aggregate, value)`, starting
    /// from its first value; merged sessions combine as `f(earlier,
    /// later)` in the order of their ends.
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
        let f = Arc::new(f);
        let g = f.clone();
        self.build(
            "KSTREAM-REDUCE",
            Arc::new(move |_, v, agg: Option<V>| match agg {
                Some(a) => f(a, v),
                None => v,
            }),
            Arc::new(move |_, agg: Option<V>, next| match agg {
                Some(a) => g(a, next),
                None => next,
            }),
            m,
        )
    }

    /// Folds each session's values into an aggregate: `init()` for a new
    /// session, `add(key, value, aggregate)` for each record, and
    /// `merger(key, aggregate, other)` when a record joins sessions (the
    /// merged aggregate starts from `init()` and takes in each session's,
    /// in the order of their ends, before the record's value).
    pub fn aggregate<A>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merger: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.aggregate_with(init, add, merger, Materialized::default())
    }

    /// As [`aggregate`](Self::aggregate), in the store `materialized`
    /// describes: a session store keeping sessions for the gap plus the
    /// grace period after they end, unless
    /// [`Materialized::with_retention`] says longer.
    pub fn aggregate_with<A>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merger: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        let init = Arc::new(init);
        let init2 = init.clone();
        self.build(
            "KSTREAM-AGGREGATE",
            Arc::new(move |k: &K, v, a: Option<A>| add(k, v, a.unwrap_or_else(|| init()))),
            Arc::new(move |k: &K, a: Option<A>, b| merger(k, a.unwrap_or_else(|| init2()), b)),
            materialized,
        )
    }

    fn build<A>(
        &self,
        kind: &str,
        combine: Combine<K, V, A>,
        merge: Merge<K, A>,
        materialized: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A>
    where
        A: Clone + Serialize + DeserializeOwned + 'static,
    {
        let graph = self.stream.graph.clone();
        let (gap, grace) = (self.windows.gap_ms, self.windows.grace_ms);
        let plan = plan_store(
            &self.stream,
            kind,
            &materialized,
            gap.saturating_add(grace),
            "the inactivity gap plus the grace period",
        );
        add_store(
            &graph,
            &materialized,
            Stores::session(
                plan.name.clone(),
                plan.retention,
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
            move || SessionAggregate {
                store_name: name.clone(),
                store: None,
                gap,
                grace,
                combine: combine.clone(),
                merge: merge.clone(),
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
        .closing_after(Some(gap.saturating_add(grace).saturating_add(1)))
    }
}

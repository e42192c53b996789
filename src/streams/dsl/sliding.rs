//! The aggregation of sliding windows (Kafka's
//! `KStreamSlidingWindowAggregate`), by recomputation.
//!
//! Kafka updates sliding windows incrementally, copying aggregates between
//! neighbouring windows. Here each record's raw value is kept in a second
//! window store (`<store>-records`, changelogged like the first), and every
//! window a record touches is recomputed from the raw records it holds,
//! folded in arrival order. The windows are Kafka's: for each record `r`,
//! its left window `[r - d, r]` (`[0, d]` for records earlier than `d`),
//! and its right window `[r + 1, r + 1 + d]` when a later record falls in
//! it. Results, timestamps (the newest record's in the window) and drop
//! counts are Kafka's, for any aggregator; the cost is a fold over the
//! window's records per window touched, instead of one aggregator call.

use super::grouped::Combine;
use super::windowed::{add_store, admit, current, plan_store};
use super::{Emitter, KStream, KTable};
use crate::streams::builder::{Materialized, StreamsBuilder, or_default};
use crate::streams::processor::{Processor, ProcessorContext};
use crate::streams::record::{Change, StreamRecord, Window, Windowed, windowed_serde};
use crate::streams::serde::{Serde, SerdeRef};
use crate::streams::store::{Stores, WindowStore, window_key};
use crate::streams::windows::SlidingWindows;
use crate::{Error, Result};
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Raw records kept for recomputation: at one timestamp, each value with
/// its arrival number.
type Arrivals<V> = Vec<(u64, V)>;

/// The layout of the raw-records store's values: a record count (4 bytes),
/// then per record its arrival number (8 bytes), its value's length (4
/// bytes, -1 for null) and bytes; big-endian.
struct ArrivalsSerde<V>(SerdeRef<V>);

impl<V: 'static> Serde<Arrivals<V>> for ArrivalsSerde<V> {
    fn serialize(&self, value: &Arrivals<V>) -> Result<Option<Bytes>> {
        let mut b = BytesMut::new();
        b.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
        for (seq, v) in value {
            b.put_u64(*seq);
            match self.0.serialize(v)? {
                Some(bytes) => {
                    b.put_i32(
                        i32::try_from(bytes.len()).map_err(|_| {
                            Error::Codec(format!("a value of {} bytes", bytes.len()))
                        })?,
                    );
                    b.put_slice(&bytes);
                }
                None => b.put_i32(-1),
            }
        }
        Ok(Some(b.freeze()))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Arrivals<V>> {
        let mut rest = bytes.ok_or_else(|| Error::Codec("a null list of records".into()))?;
        let bad = |what: &str| Error::Codec(format!("a sliding window's records: {what}"));
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(bad("cut short"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad("count"))?);
        let mut out = Vec::new();
        for _ in 0..count {
            let seq = u64::from_be_bytes(take(8)?.try_into().map_err(|_| bad("arrival"))?);
            let len = i32::from_be_bytes(take(4)?.try_into().map_err(|_| bad("length"))?);
            let value = match usize::try_from(len) {
                Ok(n) => self.0.deserialize(Some(take(n)?))?,
                Err(_) => self.0.deserialize(None)?,
            };
            out.push((seq, value));
        }
        if !rest.is_empty() {
            return Err(bad("bytes left over"));
        }
        Ok(out)
    }
}

/// The starts of the windows a key's records at `times` (sorted, distinct)
/// make, as Kafka makes them: each record's left window, and its right
/// window if a later record falls in it.
pub(crate) fn window_starts(times: &[i64], diff: i64) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for (i, &r) in times.iter().enumerate() {
        out.insert(if r < diff { 0 } else { r - diff });
        if let Some(&next) = times.get(i + 1)
            && next <= r.saturating_add(1).saturating_add(diff)
        {
            out.insert(r + 1);
        }
    }
    out
}

/// Aggregates records into sliding windows.
pub(crate) struct SlidingAggregate<K, V, A> {
    store_name: String,
    records_name: String,
    store: Option<WindowStore<K, A>>,
    records: Option<WindowStore<K, Arrivals<V>>>,
    diff: i64,
    grace: i64,
    combine: Combine<K, V, A>,
    emit: Emitter<Windowed<K>, A>,
}

impl<K, V, A> Processor<K, V, Windowed<K>, Change<A>> for SlidingAggregate<K, V, A>
where
    K: Clone + 'static,
    V: Clone + 'static,
    A: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>) -> Result<()> {
        self.store = Some(ctx.window_store(&self.store_name)?);
        self.records = Some(ctx.window_store(&self.records_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        record: StreamRecord<K, V>,
    ) -> Result<()> {
        let (Some(store), Some(records)) = (self.store.clone(), self.records.clone()) else {
            return Ok(());
        };
        let Some(kb) = admit(ctx, &*store.keys, &record)? else {
            return Ok(());
        };
        let (t, diff, grace) = (record.timestamp, self.diff, self.grace);
        let now = ctx.stream_time();
        // Even the record's right window, the last one it decides, is closed.
        if t.saturating_add(1)
            .saturating_add(diff)
            .saturating_add(grace)
            <= now
        {
            tracing::debug!(
                node = ctx.node_name(),
                timestamp = t,
                stream_time = now,
                "dropping a record whose sliding windows are all closed"
            );
            ctx.record_late();
            return Ok(());
        }
        // Every window that holds `t` or starts right after it lies within
        // `[t - d, t + 1 + d]`; so do the records deciding which exist.
        let lo = t.saturating_sub(diff).saturating_sub(1).max(0);
        let hi = t.saturating_add(diff).saturating_add(1);
        let mut near = records.fetch(&record.key, lo, hi)?;
        let seq = near
            .iter()
            .flat_map(|(_, rs)| rs.iter().map(|(s, _)| *s))
            .max()
            .map_or(0, |s| s + 1);
        let at = match near.iter().position(|(ts, _)| *ts >= t) {
            Some(i) if near[i].0 == t => i,
            Some(i) => {
                near.insert(i, (t, Vec::new()));
                i
            }
            None => {
                near.push((t, Vec::new()));
                near.len() - 1
            }
        };
        near[at].1.push((seq, record.value));
        records.put(&record.key, &near[at].1, t)?;

        let times: Vec<i64> = near.iter().map(|(ts, _)| *ts).collect();
        for start in window_starts(&times, diff) {
            let end = start.saturating_add(diff);
            let right_of_t = start == t.saturating_add(1);
            if !(right_of_t || (start <= t && t <= end)) {
                continue;
            }
            if end.saturating_add(grace) < now {
                tracing::debug!(
                    node = ctx.node_name(),
                    timestamp = t,
                    start,
                    end,
                    stream_time = now,
                    "dropping a record for a closed sliding window"
                );
                ctx.record_late();
                continue;
            }
            let old = store.fetch_window(&record.key, start)?;
            if right_of_t && old.is_some() {
                // It holds only later records: `t` does not change it.
                continue;
            }
            let mut content: Vec<(u64, i64, &V)> = near
                .iter()
                .filter(|(ts, _)| start <= *ts && *ts <= end)
                .flat_map(|(ts, rs)| rs.iter().map(move |(s, v)| (*s, *ts, v)))
                .collect();
            content.sort_by_key(|(s, _, _)| *s);
            let mut agg = None;
            let mut newest = i64::MIN;
            for (_, ts, v) in content {
                agg = Some((self.combine)(&record.key, v.clone(), agg));
                newest = newest.max(ts);
            }
            let Some(new) = agg else { continue };
            store.put(&record.key, &new, start)?;
            let key = Windowed {
                key: record.key.clone(),
                window: Window { start, end },
            };
            self.emit.changed(
                ctx,
                key,
                window_key(&kb, start, 0),
                old,
                Some(new),
                newest,
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

/// The sliding-window aggregation node and its two stores.
pub(crate) fn build<K, V, A>(
    stream: &KStream<K, V>,
    kind: &str,
    windows: SlidingWindows,
    combine: Combine<K, V, A>,
    materialized: Materialized<K, A>,
) -> KTable<Windowed<K>, A>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
    A: Clone + Serialize + DeserializeOwned + 'static,
{
    let graph = stream.graph.clone();
    let (diff, grace) = (windows.diff_ms, windows.grace_ms);
    let least = diff.saturating_mul(2).saturating_add(grace);
    let plan = plan_store(
        stream,
        kind,
        &materialized,
        least,
        "twice the time difference plus the grace period",
    );
    add_store(
        &graph,
        &materialized,
        Stores::window(
            plan.name.clone(),
            plan.retention,
            windows.time_difference(),
            false,
            plan.keys.clone(),
            plan.values.clone(),
        ),
    );
    let records_name = format!("{}-records", plan.name);
    let raw: SerdeRef<Arrivals<V>> = Arc::new(ArrivalsSerde(or_default(stream.values.clone())));
    add_store(
        &graph,
        &materialized,
        Stores::window(
            records_name.clone(),
            plan.retention,
            Duration::ZERO,
            false,
            plan.keys.clone(),
            raw,
        ),
    );
    let (name, records) = (plan.name.clone(), records_name.clone());
    let node = StreamsBuilder::add_processor::<K, V, Windowed<K>, Change<A>, _>(
        &graph,
        kind,
        &[stream.node],
        vec![plan.name.clone(), records_name],
        move || SlidingAggregate {
            store_name: name.clone(),
            records_name: records.clone(),
            store: None,
            records: None,
            diff,
            grace,
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
    .closing_after(Some(grace.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::Serdes;

    #[test]
    fn windows_are_left_windows_and_right_windows_with_a_later_record() {
        let starts = |times: &[i64]| window_starts(times, 10).into_iter().collect::<Vec<_>>();
        // One record: its left window only.
        assert_eq!(starts(&[20]), [10]);
        // Two records within reach: the second's left window and the first's right one.
        assert_eq!(starts(&[20, 25]), [10, 15, 21]);
        // Out of reach of each other: left windows only.
        assert_eq!(starts(&[20, 32]), [10, 22]);
        // Exactly d + 1 apart: the first's right window is the second's left one.
        assert_eq!(starts(&[20, 31]), [10, 21]);
        // Early records share [0, d].
        assert_eq!(starts(&[0, 3, 10]), [0, 1, 4]);
    }

    #[test]
    fn arrivals_round_trip_and_refuse_bad_bytes() {
        let s = ArrivalsSerde(Serdes::optional(Serdes::string()));
        let v: Arrivals<Option<String>> = vec![(3, Some("a".into())), (9, None)];
        let b = s.serialize(&v).unwrap().unwrap();
        assert_eq!(s.deserialize(Some(&b)).unwrap(), v);
        for cut in 0..b.len() {
            assert!(s.deserialize(Some(&b[..cut])).is_err(), "cut at {cut}");
        }
        let mut longer = b.to_vec();
        longer.push(0);
        assert!(s.deserialize(Some(&longer)).is_err());
        assert!(s.deserialize(None).is_err());
    }
}

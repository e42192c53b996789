//! Windowed joins of two streams: [`KStream::join_stream`],
//! [`KStream::left_join_stream`], [`KStream::outer_join_stream`].
//!
//! Each side keeps its records in a window store with duplicates for as
//! long as they can join (`before + after + grace`); a record looks up the
//! other side's store and joins every record of its key within its
//! window. Left and outer joins also keep the records that found no match
//! yet in a shared store, keyed by side, time and key; a match removes
//! them, and once their window closes (by stream time) they are emitted
//! joined with `None` (Kafka's behaviour since 3.1, which no longer emits
//! such a record at once and then again with its match).
//!
//! The shared store's layout: key = side (1 byte: 0 left, 1 right), time
//! (8 bytes big-endian, sign bit flipped so it sorts as signed), key bytes;
//! value = the unmatched records' value bytes, each as a 4-byte big-endian
//! length and the bytes (records of one side, key and time share an entry,
//! as they match or close together).

use super::join::{ValueJoiner, add_node, require_copartitioned};
use super::{KStream, PassThrough};
use crate::streams::builder::or_default;
use crate::streams::join_windows::{JoinWindows, StreamJoined};
use crate::streams::processor::{Processor, ProcessorContext, PunctuationType};
use crate::streams::record::StreamRecord;
use crate::streams::serde::{SerdeRef, Serdes};
use crate::streams::store::{KeyValueStore, StoreSpec, Stores, WindowStore, flip, unflip};
use crate::{Error, Result};
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

const LEFT: u8 = 0;
const RIGHT: u8 = 1;

/// What one side's node of a stream–stream join knows.
struct SideSpec<VT, VX, VR> {
    this_store: String,
    other_store: String,
    /// The store of unmatched records (left and outer joins).
    unmatched_store: Option<String>,
    /// This side's tag in the unmatched store.
    tag: u8,
    /// A record at `t` joins the other side's records from
    /// `t - look_before` to `t + look_after`; its window closes at
    /// `t + look_after + grace`.
    look_before: i64,
    look_after: i64,
    grace: i64,
    joiner: ValueJoiner<VT, VX, VR>,
    /// Whether this node emits the unmatched records whose window closed
    /// (one node of the two does).
    emits: bool,
}

/// One side of a stream–stream join: joins its records with the other
/// side's store, then keeps them in its own.
struct Side<K, VT, VX, VR> {
    spec: Arc<SideSpec<VT, VX, VR>>,
    this: Option<WindowStore<K, VT>>,
    other: Option<WindowStore<K, VX>>,
    unmatched: Option<KeyValueStore<Bytes, Bytes>>,
}

/// The unmatched store's key of `key` (bytes) at `time` on side `tag`.
fn unmatched_key(tag: u8, time: i64, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + key.len());
    b.put_u8(tag);
    b.put_slice(&flip(time));
    b.put_slice(key);
    b.freeze()
}

/// Splits an unmatched store's key into side, time and key bytes.
fn split_unmatched_key(stored: &[u8]) -> Result<(u8, i64, &[u8])> {
    let bad = || {
        Error::Codec(format!(
            "an unmatched-records key of {} bytes (at least 9 expected)",
            stored.len()
        ))
    };
    let tag = *stored.first().ok_or_else(bad)?;
    let time: [u8; 8] = stored
        .get(1..9)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    Ok((tag, unflip(time), stored.get(9..).ok_or_else(bad)?))
}

/// `list` with `value` appended.
fn push_value(list: Option<&[u8]>, value: &[u8]) -> Result<Bytes> {
    let len = u32::try_from(value.len()).map_err(|_| {
        Error::Codec(format!(
            "a join value of {} bytes: at most 4 GiB can wait for a match",
            value.len()
        ))
    })?;
    let list = list.unwrap_or_default();
    let mut b = BytesMut::with_capacity(list.len() + 4 + value.len());
    b.put_slice(list);
    b.put_u32(len);
    b.put_slice(value);
    Ok(b.freeze())
}

/// The values of a list `push_value` built.
fn split_values(mut list: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !list.is_empty() {
        let bad = || {
            Error::Codec(format!(
                "an unmatched-records list cut short ({} bytes left)",
                list.len()
            ))
        };
        let len: [u8; 4] = list
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?;
        let end = 4 + u32::from_be_bytes(len) as usize;
        out.push(list.get(4..end).ok_or_else(bad)?);
        list = &list[end..];
    }
    Ok(out)
}

impl<K, VT, VX, VR> Side<K, VT, VX, VR>
where
    K: Clone + 'static,
    VT: 'static,
    VX: 'static,
    VR: Clone + 'static,
{
    /// Emits, joined with `None`, the unmatched records whose window has
    /// closed by stream time, oldest first, and forgets them.
    fn emit_closed(&self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        let (Some(unmatched), Some(this), Some(other)) = (&self.unmatched, &self.this, &self.other)
        else {
            return Ok(());
        };
        let now = ctx.stream_time();
        if now == i64::MIN {
            return Ok(());
        }
        let spec = &self.spec;
        let mut due = Vec::new();
        // This side's windows close `look_after` after their record, the
        // other side's `look_before` after.
        for (tag, close) in [
            (spec.tag, spec.look_after),
            (1 - spec.tag, spec.look_before),
        ] {
            // Closed: now > t + close + grace, i.e. t < now - close - grace.
            let cutoff = now.saturating_sub(close).saturating_sub(spec.grace);
            let from = [tag];
            let to = unmatched_key(tag, cutoff, &[]);
            let rows = unmatched
                .state
                .lock()
                .range(Bound::Included(&from[..]), Bound::Excluded(&to[..]))?;
            due.extend(rows);
        }
        let mut entries = Vec::with_capacity(due.len());
        for (stored, list) in due {
            let (tag, time, _) = split_unmatched_key(&stored)?;
            entries.push((time, tag, stored, list));
        }
        entries.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        for (time, tag, stored, list) in entries {
            unmatched.state.lock().delete(&stored)?;
            let (_, _, key) = split_unmatched_key(&stored)?;
            let key = this.keys.deserialize(Some(key))?;
            for value in split_values(&list)? {
                let joined = if tag == spec.tag {
                    let v = this.values.deserialize(Some(value))?;
                    spec.joiner.join(Some(&v), None)
                } else {
                    let v = other.values.deserialize(Some(value))?;
                    spec.joiner.join(None, Some(&v))
                };
                if let Some(joined) = joined {
                    ctx.forward(StreamRecord::new(key.clone(), joined, time))?;
                }
            }
        }
        Ok(())
    }
}

impl<K, VT, VX, VR> Processor<K, VT, K, VR> for Side<K, VT, VX, VR>
where
    K: Clone + 'static,
    VT: 'static,
    VX: 'static,
    VR: Clone + 'static,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        self.this = Some(ctx.window_store(&self.spec.this_store)?);
        self.other = Some(ctx.window_store(&self.spec.other_store)?);
        if let Some(name) = &self.spec.unmatched_store {
            self.unmatched = Some(ctx.key_value_store(name)?);
        }
        if self.spec.emits {
            // Due whenever stream time moves.
            ctx.schedule(Duration::from_millis(1), PunctuationType::StreamTime)?;
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: StreamRecord<K, VT>,
    ) -> Result<()> {
        let (Some(this), Some(other)) = (&self.this, &self.other) else {
            return Ok(());
        };
        let spec = &self.spec;
        // A null key or value joins nothing (Kafka drops such records).
        let (Some(key), Some(value)) = (
            this.keys.serialize(&record.key)?,
            this.values.serialize(&record.value)?,
        ) else {
            ctx.record_skipped();
            return Ok(());
        };
        let t = record.timestamp;
        let window_end = t.saturating_add(spec.look_after);
        if ctx.stream_time() > window_end.saturating_add(spec.grace) {
            ctx.record_late();
            return Ok(());
        }
        let matches = other.fetch(&record.key, t.saturating_sub(spec.look_before), window_end)?;
        if let Some(unmatched) = &self.unmatched {
            // The other side's records this one matches are unmatched no
            // more (all of a key and time at once).
            let mut last = None;
            for &(time, _) in &matches {
                if last != Some(time) {
                    unmatched.delete(&unmatched_key(1 - spec.tag, time, &key))?;
                    last = Some(time);
                }
            }
            if matches.is_empty() && spec.joiner.left_alone() {
                let k = unmatched_key(spec.tag, t, &key);
                let list = unmatched.state.lock().get(&k)?;
                let list = push_value(list.as_deref(), &value)?;
                unmatched.state.lock().put(k, list)?;
            }
        }
        for (time, other_value) in &matches {
            if let Some(joined) = spec.joiner.join(Some(&record.value), Some(other_value)) {
                ctx.forward(StreamRecord {
                    key: record.key.clone(),
                    value: joined,
                    timestamp: t.max(*time),
                    headers: record.headers.clone(),
                })?;
            }
        }
        this.put(&record.key, &record.value, t)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        _kind: PunctuationType,
        _timestamp: i64,
    ) -> Result<()> {
        self.emit_closed(ctx)
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    /// Joins each record with every record of `other` with the same key
    /// within `windows` (Kafka's stream–stream `join`). A pair is emitted
    /// once, when its second record arrives, at the later of the two
    /// times. Records with a null key or value are dropped (counted as
    /// skipped); records arriving after their window closed (by the task's
    /// stream time, see [`JoinWindows`]) are dropped as late.
    ///
    /// Both streams are repartitioned first if their key changed; their
    /// topics must have the same number of partitions.
    ///
    /// ```
    /// use embedlog::streams::{Consumed, JoinWindows, Serdes, StreamsBuilder, TopologyTestDriver};
    /// use std::time::Duration;
    ///
    /// let builder = StreamsBuilder::new();
    /// let s = || Consumed::with(Serdes::string(), Serdes::string());
    /// let views = builder.stream("views", s());
    /// let clicks = builder.stream("clicks", s());
    /// views
    ///     .join_stream(
    ///         &clicks,
    ///         |view: &String, click: &String| format!("{view}/{click}"),
    ///         JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10)),
    ///     )
    ///     .to("views-clicked");
    /// let driver = TopologyTestDriver::new(builder.build()?)?;
    /// let views_in = driver.input_topic("views", Serdes::string(), Serdes::string());
    /// let clicks_in = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// views_in.pipe_input("ad".to_string(), "v1".to_string(), 100)?;
    /// clicks_in.pipe_input("ad".to_string(), "c1".to_string(), 105)?; // within 10 ms
    /// clicks_in.pipe_input("ad".to_string(), "c2".to_string(), 120)?; // too far
    /// let out = driver.output_topic("views-clicked", Serdes::string(), Serdes::string());
    /// let r = out.read_record()?.unwrap();
    /// assert_eq!((r.value.as_str(), r.timestamp), ("v1/c1", 105));
    /// assert!(out.is_empty());
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    pub fn join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        self.join_stream_with(other, joiner, windows, StreamJoined::default())
    }

    /// As [`join_stream`](Self::join_stream), with the serdes, names and
    /// logging `joined` gives.
    pub fn join_stream_with<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        self.window_join(other, ValueJoiner::Inner(Arc::new(joiner)), windows, joined)
    }

    /// As [`join_stream`](Self::join_stream), and each record of this
    /// stream that finds no match is emitted too, joined with `None`, once
    /// its window has closed (Kafka's stream–stream `leftJoin`, as of 3.1).
    /// If a match arrives after that (possible when `before` exceeds
    /// `after`, as in Kafka), the pair is emitted as well.
    pub fn left_join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        self.left_join_stream_with(other, joiner, windows, StreamJoined::default())
    }

    /// As [`left_join_stream`](Self::left_join_stream), with the serdes,
    /// names and logging `joined` gives.
    pub fn left_join_stream_with<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        self.window_join(other, ValueJoiner::Left(Arc::new(joiner)), windows, joined)
    }

    /// As [`left_join_stream`](Self::left_join_stream), for the records of
    /// both streams: an unmatched record of `other` is emitted with `None`
    /// for this stream's value (Kafka's stream–stream `outerJoin`).
    pub fn outer_join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        self.outer_join_stream_with(other, joiner, windows, StreamJoined::default())
    }

    /// As [`outer_join_stream`](Self::outer_join_stream), with the serdes,
    /// names and logging `joined` gives.
    pub fn outer_join_stream_with<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        self.window_join(other, ValueJoiner::Outer(Arc::new(joiner)), windows, joined)
    }

    /// The join's stores and nodes: a node per side (joining with the
    /// other side's store, then storing its record), merged into one
    /// stream.
    fn window_join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        joiner: ValueJoiner<V, VO, VR>,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR>
    where
        VO: Clone + Serialize + DeserializeOwned + 'static,
        VR: Clone + 'static,
    {
        let graph = self.graph.clone();
        let name = joined.name.clone();
        // The join's serdes also write the repartition topics.
        let (mut this, mut that) = (self.clone(), other.clone());
        if joined.keys.is_some() {
            this.keys = joined.keys.clone();
            that.keys = joined.keys.clone();
        }
        if joined.values.is_some() {
            this.values = joined.values.clone();
        }
        if joined.other_values.is_some() {
            that.values = joined.other_values.clone();
        }
        let left = this.partitioned(name.as_ref().map(|n| format!("{n}-left")));
        let right = that.partitioned(name.as_ref().map(|n| format!("{n}-right")));
        let keys: SerdeRef<K> = or_default(left.keys.clone().or_else(|| right.keys.clone()));
        let values: SerdeRef<V> = or_default(left.values.clone());
        let other_values: SerdeRef<VO> = or_default(right.values.clone());
        let unmatched = joiner.left_alone() || joiner.right_alone();
        let (this_kind, other_kind) = if unmatched {
            ("KSTREAM-OUTERTHIS", "KSTREAM-OUTEROTHER")
        } else {
            ("KSTREAM-JOINTHIS", "KSTREAM-JOINOTHER")
        };
        let (this_store, other_store, shared_store) = match &joined.store_name {
            Some(s) => (
                format!("{s}-this-join-store"),
                format!("{s}-other-join-store"),
                format!("{s}-outer-shared-join-store"),
            ),
            None => {
                let mut g = graph.borrow_mut();
                (
                    format!("{}-store", g.name(this_kind)),
                    format!("{}-store", g.name(other_kind)),
                    format!("{}-store", g.name("KSTREAM-OUTERSHARED")),
                )
            }
        };
        let logging = |spec: StoreSpec| {
            if joined.logged {
                spec
            } else {
                spec.with_logging_disabled()
            }
        };
        let mut stores = vec![this_store.clone(), other_store.clone()];
        {
            let mut g = graph.borrow_mut();
            // Each side keeps every record (duplicates too) as long as a
            // record of the other side can still join it.
            let (retention, size) = (windows.retention(), windows.size());
            g.add_store_or_defer(logging(Stores::window(
                this_store.clone(),
                retention,
                size,
                true,
                keys.clone(),
                values,
            )));
            g.add_store_or_defer(logging(Stores::window(
                other_store.clone(),
                retention,
                size,
                true,
                keys.clone(),
                other_values,
            )));
            if unmatched {
                g.add_store_or_defer(logging(Stores::key_value(
                    shared_store.clone(),
                    Serdes::bytes(),
                    Serdes::bytes(),
                )));
                stores.push(shared_store.clone());
            }
        }
        let shared = unmatched.then_some(shared_store);
        let (before, after, grace) = (windows.before_ms(), windows.after_ms(), windows.grace_ms());
        let left_spec = Arc::new(SideSpec {
            this_store: this_store.clone(),
            other_store: other_store.clone(),
            unmatched_store: shared.clone(),
            tag: LEFT,
            look_before: before,
            look_after: after,
            grace,
            joiner: joiner.clone(),
            emits: unmatched,
        });
        let right_spec = Arc::new(SideSpec {
            this_store: other_store,
            other_store: this_store,
            unmatched_store: shared,
            tag: RIGHT,
            look_before: after,
            look_after: before,
            grace,
            joiner: joiner.reversed(),
            emits: false,
        });
        let named = |suffix: &str| name.as_ref().map(|n| format!("{n}-{suffix}"));
        let left_node = add_node::<K, V, K, VR, _>(
            &graph,
            named("this-join"),
            this_kind,
            &[left.node],
            stores.clone(),
            move || Side {
                spec: left_spec.clone(),
                this: None,
                other: None,
                unmatched: None,
            },
        );
        let right_node = add_node::<K, VO, K, VR, _>(
            &graph,
            named("other-join"),
            other_kind,
            &[right.node],
            stores,
            move || Side {
                spec: right_spec.clone(),
                this: None,
                other: None,
                unmatched: None,
            },
        );
        let merge = add_node::<K, VR, K, VR, _>(
            &graph,
            named("merge"),
            "KSTREAM-MERGE",
            &[left_node, right_node],
            Vec::new(),
            || PassThrough,
        );
        require_copartitioned(&graph, left_node, &[left.node, right.node]);
        KStream::new(graph, merge, Some(keys), None, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmatched_keys_sort_by_side_then_time() {
        let a = unmatched_key(LEFT, -5, b"zz");
        let b = unmatched_key(LEFT, 3, b"a");
        let c = unmatched_key(RIGHT, -100, b"a");
        assert!(a < b && b < c);
        // The exclusive bound at a cutoff keeps exactly the earlier times.
        let bound = unmatched_key(LEFT, 3, &[]);
        assert!(a < bound && b > bound);
        assert_eq!(split_unmatched_key(&b).unwrap(), (LEFT, 3, &b"a"[..]));
        assert!(split_unmatched_key(b"short").is_err());
    }

    #[test]
    fn value_lists_round_trip_and_refuse_damage() {
        let one = push_value(None, b"x").unwrap();
        let two = push_value(Some(&one), b"").unwrap();
        let three = push_value(Some(&two), b"yz").unwrap();
        assert_eq!(
            split_values(&three).unwrap(),
            vec![&b"x"[..], &b""[..], &b"yz"[..]]
        );
        assert!(split_values(&three[..three.len() - 1]).is_err());
        assert!(split_values(&[0, 0]).is_err());
        assert!(split_values(&[]).unwrap().is_empty());
    }
}

//! [`KTable::suppress`]: holding a table's updates back, to emit a
//! windowed aggregation's final results only ([`Suppressed`],
//! [`BufferConfig`]; Kafka's `suppress`).
//!
//! The held-back updates live in a key-value store with a changelog, so a
//! restarted task resumes with them (its index is rebuilt from the store
//! in `init`). Its keys are the time each entry is due (8 bytes, ordered as
//! signed numbers) then the table key's bytes, so what is due is one range
//! scan from the start. Its values:
//!
//! | field | bytes | meaning |
//! |---|---|---|
//! | timestamp | 8, big-endian | the latest update's record time (the emitted record's) |
//! | new length | 4, big-endian, -1 for null | then the latest value's bytes |
//! | prior length | 4, big-endian, -1 for null | then the value before the first held-back update |

use super::KTable;
use crate::streams::builder::or_default;
use crate::streams::processor::{Processor, ProcessorContext};
use crate::streams::record::{Change, StreamRecord, Windowed};
use crate::streams::serde::{SerdeRef, Serdes};
use crate::streams::store::{KeyValueStore, Stores, flip, unflip};
use crate::streams::topology::{NodeKind, processor_build};
use crate::{Error, Result};
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

/// How much a [`Suppressed`] buffer may hold (Kafka's `BufferConfig`, with
/// `shutDownWhenFull`): when an update would take it over a limit, the
/// task stops with an error rather than emit early, since final results
/// cannot be emitted before their window closes.
///
/// Default ([`unbounded`](Self::unbounded)): no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferConfig {
    max_records: Option<u64>,
    max_bytes: Option<u64>,
}

impl BufferConfig {
    /// No limit: the buffer holds what the open windows need (bounded in
    /// practice by the keys and windows open at once).
    pub fn unbounded() -> Self {
        BufferConfig::default()
    }

    /// At most `n` keys held back.
    pub fn max_records(n: u64) -> Self {
        BufferConfig::default().with_max_records(n)
    }

    /// At most `n` bytes held back (each key's bytes plus its entry: the
    /// serialized latest and prior values and 16 bytes).
    pub fn max_bytes(n: u64) -> Self {
        BufferConfig::default().with_max_bytes(n)
    }

    /// This config, holding at most `n` keys.
    pub fn with_max_records(mut self, n: u64) -> Self {
        self.max_records = Some(n);
        self
    }

    /// This config, holding at most `n` bytes.
    pub fn with_max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }
}

/// When a held-back key's update is due.
enum Until<K> {
    /// When the key's window closes: `end(key)` plus the table's close
    /// delay.
    WindowCloses {
        end: Arc<dyn Fn(&K) -> i64 + Send + Sync>,
    },
    /// `limit` ms after the key was first held back.
    TimeLimit { limit: i64 },
}

/// What [`KTable::suppress`] holds back and until when (Kafka's
/// `Suppressed`).
///
/// A window *closes* when the task's stream time (the newest record time
/// it has seen) reaches its close time. From then on a record for it is
/// dropped as late
/// ([`TaskMetrics::dropped_late`](crate::streams::TaskMetrics::dropped_late)),
/// its store may expire it, and
/// [`until_window_closes`](Self::until_window_closes) emits its final
/// result; one rule per kind of window decides all three:
///
/// | windows | a window `[start, end]` | closes at stream time |
/// |---|---|---|
/// | [time](crate::streams::TimeWindows) (tumbling, hopping) | `[start, start + size)`: end excluded | `end + grace` |
/// | [sliding](crate::streams::SlidingWindows) | `[start, start + difference]`: end included | `end + grace + 1` |
/// | [session](crate::streams::SessionWindows) | first to last record: end included | `end + gap + grace + 1` |
///
/// These are Kafka's rules for dropping late records. Kafka's `suppress`
/// emits sliding windows and sessions 1 ms earlier (at `end + grace`,
/// `end + gap + grace`), when a record at exactly that time could still
/// change them; here they wait that 1 ms, so a final result is final.
pub struct Suppressed<K> {
    until: Until<K>,
    buffer: BufferConfig,
    name: Option<String>,
}

impl<K> fmt::Debug for Suppressed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let until = match &self.until {
            Until::WindowCloses { .. } => "window closes".to_owned(),
            Until::TimeLimit { limit } => format!("time limit {limit} ms"),
        };
        f.debug_struct("Suppressed")
            .field("until", &until)
            .field("buffer", &self.buffer)
            .field("name", &self.name)
            .finish()
    }
}

impl<K: 'static> Suppressed<Windowed<K>> {
    /// Final results only: each window's aggregate is emitted once, when
    /// the window closes (by the task's stream time: its end plus the
    /// grace period, plus the gap for sessions; see [`Suppressed`]), with
    /// its final value. A window deleted before it closes (a merged session) is
    /// never emitted. Only for the tables windowed aggregations make
    /// (and their `filter`s, `map_values`): on any other table,
    /// [`StreamsBuilder::build`](crate::streams::StreamsBuilder::build)
    /// fails with [`Error::Topology`].
    pub fn until_window_closes(buffer: BufferConfig) -> Self {
        Suppressed {
            until: Until::WindowCloses {
                end: Arc::new(|w: &Windowed<K>| w.window.end),
            },
            buffer,
            name: None,
        }
    }
}

impl<K> Suppressed<K> {
    /// Rate limiting: a key's latest value is emitted once stream time
    /// reaches the time of its first held-back update plus `limit`; its
    /// later updates wait with it (deletions included).
    pub fn until_time_limit(limit: Duration, buffer: BufferConfig) -> Self {
        Suppressed {
            until: Until::TimeLimit {
                limit: crate::streams::windows::millis(limit),
            },
            buffer,
            name: None,
        }
    }

    /// Names the suppression node `name` and its buffer store
    /// `<name>-store` (changelog `<application id>-<name>-store-changelog`),
    /// to keep them stable when the topology changes.
    ///
    /// Default: generated names (`KTABLE-SUPPRESS-…`,
    /// `KTABLE-SUPPRESS-STATE-STORE-…`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// When an update is due, for the processor.
enum Rule<K> {
    Closes {
        end: Arc<dyn Fn(&K) -> i64 + Send + Sync>,
        after: i64,
    },
    Limit {
        limit: i64,
    },
}

impl<K> Clone for Rule<K> {
    fn clone(&self) -> Self {
        match self {
            Rule::Closes { end, after } => Rule::Closes {
                end: end.clone(),
                after: *after,
            },
            Rule::Limit { limit } => Rule::Limit { limit: *limit },
        }
    }
}

/// One held-back key: the latest update's time, its new value and the
/// value before the first held-back update (serialized).
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    timestamp: i64,
    new: Option<Bytes>,
    prior: Option<Bytes>,
}

impl Entry {
    fn encode(&self) -> Result<Bytes> {
        let mut b = BytesMut::with_capacity(16);
        b.put_i64(self.timestamp);
        for part in [&self.new, &self.prior] {
            match part {
                Some(v) => {
                    let len = i32::try_from(v.len())
                        .map_err(|_| Error::Codec(format!("a value of {} bytes", v.len())))?;
                    b.put_i32(len);
                    b.put_slice(v);
                }
                None => b.put_i32(-1),
            }
        }
        Ok(b.freeze())
    }

    fn decode(bytes: &Bytes) -> Result<Entry> {
        let bad = || {
            Error::Codec(format!(
                "a suppression buffer entry of {} bytes",
                bytes.len()
            ))
        };
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<Bytes> {
            let end = at
                .checked_add(n)
                .filter(|e| *e <= bytes.len())
                .ok_or_else(bad)?;
            let out = bytes.slice(at..end);
            at = end;
            Ok(out)
        };
        let timestamp = i64::from_be_bytes(take(8)?[..].try_into().map_err(|_| bad())?);
        let mut part = || -> Result<Option<Bytes>> {
            let len = i32::from_be_bytes(take(4)?[..].try_into().map_err(|_| bad())?);
            match usize::try_from(len) {
                Ok(n) => take(n).map(Some),
                Err(_) => Ok(None),
            }
        };
        let new = part()?;
        let prior = part()?;
        if at != bytes.len() {
            return Err(bad());
        }
        Ok(Entry {
            timestamp,
            new,
            prior,
        })
    }
}

/// A buffer store key: when the entry is due, then the table key.
fn buffer_key(due: i64, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + key.len());
    b.put_slice(&flip(due));
    b.put_slice(key);
    b.freeze()
}

/// Holds a table's updates back in a buffer store and forwards them when
/// due.
struct Suppress<K, V> {
    store_name: String,
    store: Option<KeyValueStore<Bytes, Bytes>>,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    rule: Rule<K>,
    buffer: BufferConfig,
    /// Table key bytes → (due time, bytes held).
    index: HashMap<Bytes, (i64, usize)>,
    bytes: usize,
}

impl<K: 'static, V: 'static> Suppress<K, V> {
    fn value_bytes(&self, v: Option<&V>) -> Result<Option<Bytes>> {
        match v {
            Some(v) => self.values.serialize(v),
            None => Ok(None),
        }
    }

    /// Forwards, oldest due first, every entry due by stream time.
    fn emit_due(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()>
    where
        K: Clone,
        V: Clone,
    {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let now = ctx.stream_time();
        if now == i64::MIN {
            return Ok(());
        }
        // Final results drop deletions (a merged session never closes);
        // a time limit passes them on.
        let drop_tombstones = matches!(self.rule, Rule::Closes { .. });
        let upper = now.checked_add(1).map(flip);
        let rows = {
            let mut state = store.state.lock();
            match &upper {
                Some(u) => state.range(Bound::Unbounded, Bound::Excluded(&u[..]))?,
                None => state.range(Bound::Unbounded, Bound::Unbounded)?,
            }
        };
        for (stored, value) in rows {
            store.state.lock().delete(&stored)?;
            let kb = stored.slice(8.min(stored.len())..);
            if let Some((_, size)) = self.index.remove(&kb) {
                self.bytes = self.bytes.saturating_sub(size);
            }
            let entry = Entry::decode(&value)?;
            if entry.new.is_none() && drop_tombstones {
                continue;
            }
            let key = self.keys.deserialize(Some(&kb))?;
            let decode =
                |b: Option<Bytes>| b.map(|b| self.values.deserialize(Some(&b))).transpose();
            let change = Change {
                new: decode(entry.new)?,
                old: decode(entry.prior)?,
            };
            ctx.forward(StreamRecord::new(key, change, entry.timestamp))?;
        }
        Ok(())
    }

    /// Fails the task if the buffer is over a limit.
    fn check_capacity(&self, ctx: &ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        let records = self.index.len() as u64;
        let bytes = self.bytes as u64;
        let over = match (self.buffer.max_records, self.buffer.max_bytes) {
            (Some(max), _) if records > max => Some(format!(
                "{records} keys, over its limit of {max} (BufferConfig::max_records)"
            )),
            (_, Some(max)) if bytes > max => Some(format!(
                "{bytes} bytes, over its limit of {max} (BufferConfig::max_bytes)"
            )),
            _ => None,
        };
        match over {
            Some(what) => Err(Error::InvalidConfig(format!(
                "task {}: the suppression buffer of {} (store {:?}) holds {what}; it cannot emit early, so the task stops (Kafka's shutDownWhenFull): raise the limit or use BufferConfig::unbounded()",
                ctx.task_id(),
                ctx.node_name(),
                self.store_name
            ))),
            None => Ok(()),
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Change<V>> for Suppress<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        let store: KeyValueStore<Bytes, Bytes> = ctx.key_value_store(&self.store_name)?;
        // A restarted task finds its buffer restored: index it.
        self.index.clear();
        self.bytes = 0;
        let rows = store
            .state
            .lock()
            .range(Bound::Unbounded, Bound::Unbounded)?;
        for (stored, value) in rows {
            let due: [u8; 8] =
                stored
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        Error::Codec(format!(
                            "store {:?}: a buffer key of {} bytes",
                            self.store_name,
                            stored.len()
                        ))
                    })?;
            let size = stored.len() + value.len();
            self.index.insert(stored.slice(8..), (unflip(due), size));
            self.bytes += size;
        }
        self.store = Some(store);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: StreamRecord<K, Change<V>>,
    ) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let Some(kb) = self.keys.serialize(&record.key)? else {
            ctx.record_skipped();
            return Ok(());
        };
        let held = self.index.get(&kb).copied();
        let due = match (&self.rule, held) {
            (Rule::Closes { end, after }, _) => end(&record.key).saturating_add(*after),
            (Rule::Limit { .. }, Some((due, _))) => due,
            (Rule::Limit { limit }, None) => record.timestamp.saturating_add(*limit),
        };
        let prior = match held {
            Some((was_due, _)) => {
                let old_key = buffer_key(was_due, &kb);
                let found = store.state.lock().get(&old_key)?;
                if was_due != due {
                    store.state.lock().delete(&old_key)?;
                }
                match found {
                    Some(v) => Entry::decode(&v)?.prior,
                    None => self.value_bytes(record.value.old.as_ref())?,
                }
            }
            None => self.value_bytes(record.value.old.as_ref())?,
        };
        let entry = Entry {
            timestamp: record.timestamp,
            new: self.value_bytes(record.value.new.as_ref())?,
            prior,
        }
        .encode()?;
        let stored = buffer_key(due, &kb);
        let size = stored.len() + entry.len();
        store.state.lock().put(stored, entry)?;
        if let Some((_, was)) = self.index.insert(kb, (due, size)) {
            self.bytes = self.bytes.saturating_sub(was);
        }
        self.bytes += size;
        self.emit_due(ctx)?;
        self.check_capacity(ctx)
    }

    fn commit(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        // Stream time may have moved on without an update reaching here (a
        // record dropped as late, or filtered out upstream).
        self.emit_due(ctx)
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned + 'static,
{
    /// This table's updates held back as `suppressed` says (Kafka's
    /// `suppress`): with [`Suppressed::until_window_closes`], one final
    /// result per window of a windowed aggregation; with
    /// [`Suppressed::until_time_limit`], at most one update per key per
    /// time limit. What is held back is kept in a store with a changelog
    /// (a restart loses nothing) and emitted, oldest due first, as soon as
    /// the task's stream time makes it due: when an update arrives or at
    /// the next commit.
    ///
    /// ```
    /// use embedlog::streams::{
    ///     BufferConfig, Consumed, Serdes, StreamsBuilder, Suppressed, TimeWindows,
    ///     TopologyTestDriver, windowed_serde,
    /// };
    /// use std::time::Duration;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_and_grace(
    ///         Duration::from_millis(10),
    ///         Duration::from_millis(5),
    ///     ))
    ///     .count()
    ///     .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
    ///     .to_stream()
    ///     .to("final-counts");
    /// let driver = TopologyTestDriver::new(builder.build()?)?;
    /// let input = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    /// let out = driver.output_topic(
    ///     "final-counts",
    ///     windowed_serde(Serdes::string()),
    ///     Serdes::optional(Serdes::i64()),
    /// );
    /// input.pipe_input("u1".into(), "a".into(), 1)?;
    /// input.pipe_input("u1".into(), "b".into(), 12)?;
    /// input.pipe_input("u1".into(), "c".into(), 3)?; // not late: [0, 10) is open until 15
    /// assert!(out.is_empty()); // [0, 10) closes at 15
    /// input.pipe_input("u1".into(), "d".into(), 15)?;
    /// let (w, n) = out.read_key_value()?.unwrap();
    /// assert_eq!((w.window.start, w.window.end, n), (0, 10, Some(2)));
    /// assert!(out.is_empty());
    /// # Ok::<(), embedlog::Error>(())
    /// ```
    ///
    /// # Errors
    /// None here; `until_window_closes` on a table whose windows are
    /// unknown makes [`StreamsBuilder::build`](crate::streams::StreamsBuilder::build)
    /// fail with [`Error::Topology`]. While running, a buffer over its
    /// [`BufferConfig`] limit stops the task with [`Error::InvalidConfig`].
    pub fn suppress(&self, suppressed: Suppressed<K>) -> KTable<K, V> {
        let rule = match suppressed.until {
            Until::WindowCloses { end } => match self.close_after {
                Some(after) => Rule::Closes { end, after },
                None => {
                    self.graph.borrow_mut().error.get_or_insert(Error::Topology(
                        "suppress(Suppressed::until_window_closes(..)) needs the table of a windowed aggregation (windowed_by(..).count() and the like, possibly filtered or mapped): this table's windows are unknown, so they never close; use Suppressed::until_time_limit for other tables".into(),
                    ));
                    return self.clone();
                }
            },
            Until::TimeLimit { limit } => Rule::Limit { limit },
        };
        let keys = or_default(self.keys.clone());
        let values = or_default(self.values.clone());
        let buffer = suppressed.buffer;
        let mut g = self.graph.borrow_mut();
        let (name, store) = match suppressed.name {
            Some(n) => (n.clone(), format!("{n}-store")),
            None => {
                let name = g.name("KTABLE-SUPPRESS");
                (name, g.name("KTABLE-SUPPRESS-STATE-STORE"))
            }
        };
        g.add_store_or_defer(Stores::key_value(
            store.clone(),
            Serdes::bytes(),
            Serdes::bytes(),
        ));
        let (store_name, k, v) = (store.clone(), keys.clone(), values.clone());
        let build = processor_build::<K, Change<V>, K, Change<V>, _>(move || Suppress {
            store_name: store_name.clone(),
            store: None,
            keys: k.clone(),
            values: v.clone(),
            rule: rule.clone(),
            buffer,
            index: HashMap::new(),
            bytes: 0,
        });
        let node = g.add(name, NodeKind::Processor, &[self.node], vec![store], build);
        drop(g);
        KTable::new(self.graph.clone(), node, Some(keys), Some(values), None)
            .closing_after(self.close_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::driver::open_store;
    use crate::streams::task::{Task, TaskId, TaskSetup};
    use crate::streams::{
        Consumed, DeserializationErrors, StreamsBuilder, TimeWindows, Topology, TopologyTestDriver,
        windowed_serde,
    };
    use std::rc::Rc;

    /// Two suppressions: final results of windowed counts (to `final`)
    /// and running sums at most every 10 ms per key (to `limited`).
    fn topology() -> Topology {
        let builder = StreamsBuilder::new();
        let g = builder
            .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
            .group_by_key();
        g.windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
            10,
        )))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to("final");
        g.reduce(|a, b| a + b)
            .suppress(Suppressed::until_time_limit(
                Duration::from_millis(10),
                BufferConfig::max_records(1),
            ))
            .to_stream()
            .to("limited");
        builder.build().unwrap()
    }

    #[test]
    fn a_restarted_task_resumes_with_what_was_held_back() {
        // First run: a window and a key held back, nothing emitted.
        let driver = TopologyTestDriver::new(topology()).unwrap();
        let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
        input.pipe_input("a".into(), 1, 1).unwrap();
        input.pipe_input("a".into(), 2, 2).unwrap();
        assert_eq!(driver.produced_topic_names().len(), 4, "only changelogs");

        // Restart: stores restored from their changelogs, then a task.
        let topology = topology();
        let mut stores = HashMap::new();
        for (name, spec) in &topology.stores {
            let store = open_store(spec, &std::env::temp_dir()).unwrap();
            let changelog = driver.output_topic(
                &format!("{name}-changelog"),
                Serdes::bytes(),
                Serdes::optional(Serdes::bytes()),
            );
            for (k, v) in changelog.read_key_values_to_list().unwrap() {
                store.lock().restore(k, v).unwrap();
            }
            stores.insert(name.clone(), (store, spec.clone()));
        }
        let mut task = Task::new(
            &topology,
            TaskId {
                subtopology: 0,
                partition: 0,
            },
            TaskSetup {
                application_id: "topology-test-driver".into(),
                stores,
                cache_max_bytes: 0,
                deserialization: DeserializationErrors::Fail,
                wall_clock_ms: 0,
                stream_time: 2,
                partition_counts: Rc::new(|_| Ok(1)),
            },
        )
        .unwrap();
        let input: std::sync::Arc<str> = "in".into();
        let mut run = |key: &str, value: i64, at: i64| {
            task.process(
                &input,
                0,
                at as u64,
                Some(key.as_bytes()),
                Some(&value.to_be_bytes()),
                at,
                Vec::new(),
            )?;
            task.prepare_commit()?;
            Ok::<_, Error>(task.take_outbox())
        };
        // a is still held, due at 11 (its first update plus 10): this update
        // joins it rather than being held until 15 beside it (the buffer,
        // limited to one key, would be over its limit).
        let out = run("a", 4, 5).unwrap();
        assert!(out.iter().all(|o| o.topic.ends_with("-changelog")));
        // At 12, [0, 10) has closed and a is due: each emitted once, with
        // its latest value.
        let out = run("a", 8, 12).unwrap();
        let windows = windowed_serde(Serdes::string());
        let emitted: Vec<(String, String, i64)> = out
            .iter()
            .filter(|o| !o.topic.ends_with("-changelog"))
            .map(|o| {
                let key = match &*o.topic {
                    "final" => {
                        let w = windows.deserialize(o.key.as_deref()).unwrap();
                        format!("{}@{}", w.key, w.window.start)
                    }
                    _ => Serdes::string().deserialize(o.key.as_deref()).unwrap(),
                };
                let value = Serdes::i64().deserialize(o.value.as_deref()).unwrap();
                (o.topic.to_string(), key, value)
            })
            .collect();
        assert_eq!(
            emitted,
            [
                ("final".to_owned(), "a@0".to_owned(), 3),
                ("limited".to_owned(), "a".to_owned(), 15),
            ]
        );
    }

    #[test]
    fn entries_round_trip_and_refuse_bad_bytes() {
        let e = Entry {
            timestamp: -3,
            new: Some(Bytes::from_static(b"new")),
            prior: None,
        };
        let b = e.encode().unwrap();
        assert_eq!(Entry::decode(&b).unwrap(), e);
        for cut in 0..b.len() {
            assert!(Entry::decode(&b.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut longer = b.to_vec();
        longer.push(1);
        assert!(Entry::decode(&Bytes::from(longer)).is_err());
    }

    #[test]
    fn buffer_keys_sort_by_due_time_then_key() {
        assert!(buffer_key(-1, b"z") < buffer_key(0, b"a"));
        assert!(buffer_key(5, b"a") < buffer_key(5, b"b"));
        assert!(buffer_key(5, b"zz") < buffer_key(6, b""));
    }
}

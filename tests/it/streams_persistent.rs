//! A persistent store reads as a sorted map of its writes (buffered writes
//! merged over the file), keeps exactly what was flushed across a reopen,
//! and gives a topology the same results as the in-memory store.

use bytes::Bytes;
use embedlog::Error;
use embedlog::streams::{
    BytesStore, Consumed, Materialized, PersistentStore, PersistentStoreConfig, Processor,
    ProcessorContext, Serdes, Stores, StreamRecord, StreamsBuilder, TopologyTestDriver, Window,
    Windowed,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Get(u8),
    Range(u8, u8, bool, bool),
    Len,
    Flush,
    Reopen,
    Clear,
}

/// Keys that are prefixes of others: `[1] < [1, 0] < [2]`.
fn key(k: u8) -> Vec<u8> {
    if k < 8 { vec![k] } else { vec![k - 8, 0] }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (0..16u8, proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(k, v)| Op::Put(k, v)),
        3 => (0..16u8).prop_map(Op::Delete),
        2 => (0..16u8).prop_map(Op::Get),
        3 => (0..16u8, 0..16u8, any::<bool>(), any::<bool>())
            .prop_map(|(a, b, ai, bi)| Op::Range(a, b, ai, bi)),
        1 => Just(Op::Len),
        2 => Just(Op::Flush),
        2 => Just(Op::Reopen),
        1 => Just(Op::Clear),
    ];
    proptest::collection::vec(op, 1..60)
}

fn bound(k: &[u8], included: bool) -> Bound<&[u8]> {
    if included {
        Bound::Included(k)
    } else {
        Bound::Excluded(k)
    }
}

/// Runs `ops` on a store and on a model: `current` (every write) and
/// `flushed` (as of the last flush). With `buffer_bytes(0)` every write goes
/// to the file at once (non-durable) and a clean close keeps it, so a
/// reopened store holds `current`; with the default buffer none of these
/// small writes reach the file before a flush, so it holds `flushed`.
fn check(ops: Vec<Op>, write_through: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let config = if write_through {
        PersistentStoreConfig::default().buffer_bytes(0)
    } else {
        PersistentStoreConfig::default()
    };
    let mut store = Some(PersistentStore::open_with(dir.path(), config).unwrap());
    let mut current: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut flushed = current.clone();
    for op in ops {
        let s = store.as_mut().unwrap();
        match op {
            Op::Put(k, v) => {
                s.put(Bytes::from(key(k)), Bytes::from(v.clone())).unwrap();
                current.insert(key(k), v);
            }
            Op::Delete(k) => {
                s.delete(&key(k)).unwrap();
                current.remove(&key(k));
            }
            Op::Get(k) => {
                let got = s.get(&key(k)).unwrap().map(|b| b.to_vec());
                prop_assert_eq!(got, current.get(&key(k)).cloned());
            }
            Op::Range(a, b, ai, bi) => {
                let (a, b) = (key(a), key(b));
                let got: Vec<(Vec<u8>, Vec<u8>)> = s
                    .range(bound(&a, ai), bound(&b, bi))
                    .unwrap()
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect();
                // The model, plainly: every entry within both bounds.
                let want: Vec<(Vec<u8>, Vec<u8>)> = current
                    .iter()
                    .filter(|(k, _)| {
                        (if ai { **k >= a } else { **k > a })
                            && (if bi { **k <= b } else { **k < b })
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::Len => {
                prop_assert_eq!(s.len(), current.len());
                prop_assert_eq!(s.is_empty(), current.is_empty());
            }
            Op::Flush => {
                s.flush().unwrap();
                flushed = current.clone();
            }
            Op::Reopen => {
                store.take().unwrap().close().unwrap();
                store = Some(PersistentStore::open_with(dir.path(), config).unwrap());
                if !write_through {
                    current = flushed.clone();
                }
                flushed = current.clone();
            }
            Op::Clear => {
                s.clear().unwrap();
                current.clear();
                flushed.clear();
            }
        }
    }
    let s = store.as_ref().unwrap();
    let all: BTreeMap<Vec<u8>, Vec<u8>> = s
        .range(Bound::Unbounded, Bound::Unbounded)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    prop_assert_eq!(all, current);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn buffered_store_matches_a_map_and_keeps_what_was_flushed(ops in ops()) {
        check(ops, false)?;
    }

    #[test]
    fn write_through_store_matches_a_map_and_keeps_every_write(ops in ops()) {
        check(ops, true)?;
    }
}

/// What the word count topic received, and what its store holds.
type Counts = (Vec<(String, Option<i64>)>, Vec<(String, i64)>);

/// Word counts, materialized as `materialized` says.
fn word_counts(materialized: Materialized<String, i64>) -> Counts {
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", Consumed::with(Serdes::string(), Serdes::string()))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word: &String| word.clone())
        .count_with(materialized)
        .to_stream()
        .to("counts-out");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let input = driver.input_topic("lines", Serdes::string(), Serdes::string());
    for (i, line) in [
        "to be or not to be",
        "that is the question",
        "whether tis nobler in the mind to suffer",
        "be be be",
    ]
    .into_iter()
    .enumerate()
    {
        input
            .pipe_input("k".to_owned(), line.to_owned(), i as i64)
            .unwrap();
    }
    let out = driver
        .output_topic(
            "counts-out",
            Serdes::string(),
            Serdes::optional(Serdes::i64()),
        )
        .read_key_values_to_list()
        .unwrap();
    let store = driver
        .key_value_store::<String, i64>("counts")
        .unwrap()
        .all()
        .unwrap();
    (out, store)
}

#[test]
fn a_persistent_count_gives_what_the_in_memory_one_gives() {
    let in_memory = word_counts(Materialized::as_("counts"));
    assert_eq!(
        in_memory.1.iter().find(|(w, _)| w == "be"),
        Some(&("be".to_owned(), 5))
    );
    let persistent = word_counts(Materialized::as_("counts").persistent());
    assert_eq!(persistent, in_memory);
    // Every write through to the file, none buffered.
    let write_through = word_counts(Materialized::as_("counts").with_storage(true, |dir| {
        let config = PersistentStoreConfig::default().buffer_bytes(0);
        Ok(Box::new(PersistentStore::open_with(dir, config)?))
    }));
    assert_eq!(write_through, in_memory);
}

/// Writes each record into a key-value, a window and a session store.
struct Keep;

impl Processor<String, i64> for Keep {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: StreamRecord<String, i64>,
    ) -> embedlog::Result<()> {
        let t = record.timestamp;
        ctx.key_value_store::<String, i64>("kv")?
            .put(&record.key, &record.value)?;
        ctx.window_store::<String, i64>("windows")?
            .put(&record.key, &record.value, t - t % 10)?;
        ctx.session_store::<String, i64>("sessions")?.put(
            &Windowed {
                key: record.key.clone(),
                window: Window {
                    start: t,
                    end: t + 5,
                },
            },
            &record.value,
        )?;
        Ok(())
    }
}

#[test]
fn the_persistent_store_constructors_serve_the_processor_api() {
    let builder = StreamsBuilder::new();
    builder
        .add_state_store(Stores::persistent_key_value(
            "kv",
            Serdes::string(),
            Serdes::i64(),
        ))
        .unwrap();
    builder
        .add_state_store(Stores::persistent_window(
            "windows",
            Duration::from_millis(1000),
            Duration::from_millis(10),
            false,
            Serdes::string(),
            Serdes::i64(),
        ))
        .unwrap();
    builder
        .add_state_store(Stores::persistent_session(
            "sessions",
            Duration::from_millis(1000),
            Serdes::string(),
            Serdes::i64(),
        ))
        .unwrap();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .process(|| Keep, &["kv", "windows", "sessions"]);
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
    input
        .pipe_all([
            ("a".to_owned(), 1, 3),
            ("b".to_owned(), 2, 14),
            ("a".to_owned(), 3, 17),
            ("a".to_owned(), 4, 25),
        ])
        .unwrap();
    let kv = driver.key_value_store::<String, i64>("kv").unwrap();
    assert_eq!(
        kv.all().unwrap(),
        vec![("a".to_owned(), 4), ("b".to_owned(), 2)]
    );
    let windows = driver.window_store::<String, i64>("windows").unwrap();
    assert_eq!(
        windows.fetch(&"a".to_owned(), 0, 100).unwrap(),
        vec![(0, 1), (10, 3), (20, 4)]
    );
    let sessions = driver.session_store::<String, i64>("sessions").unwrap();
    let found: Vec<(i64, i64, i64)> = sessions
        .fetch(&"a".to_owned())
        .unwrap()
        .into_iter()
        .map(|(w, v)| (w.window.start, w.window.end, v))
        .collect();
    assert_eq!(found, vec![(3, 8, 1), (17, 22, 3), (25, 30, 4)]);
}

#[test]
fn a_store_directory_in_use_is_locked_not_shared() {
    let dir = tempfile::tempdir().unwrap();
    let _first = PersistentStore::open(dir.path()).unwrap();
    let e = PersistentStore::open(dir.path()).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
}

//! The Streams DSL's stateless operations, aggregations, tables, branches
//! and the Processor API compute what Kafka Streams computes, checked with
//! the test driver (and counts against a plain model, with proptest).

use embedlog::streams::{
    Consumed, DeserializationErrors, Grouped, Materialized, Processor, ProcessorContext, Produced,
    PunctuationType, Serdes, Stores, StreamRecord, StreamsBuilder, TopologyTestDriver,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn strings(builder: &StreamsBuilder, topic: &str) -> embedlog::streams::KStream<String, String> {
    builder.stream(topic, Consumed::with(Serdes::string(), Serdes::string()))
}

#[test]
fn stateless_operations_chain_in_order() {
    let builder = StreamsBuilder::new();
    strings(&builder, "in")
        .filter(|_, v| !v.is_empty())
        .filter_not(|_, v| v.starts_with('#'))
        .map_values(|v| v.to_uppercase())
        .flat_map_values(|v| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|k, v| (format!("{k}:{v}"), v.len() as i64))
        .to("out");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let input = driver.input_topic("in", Serdes::string(), Serdes::string());
    input.pipe_input("a".into(), "x yy".into(), 5).unwrap();
    input.pipe_input("b".into(), "".into(), 6).unwrap();
    input.pipe_input("c".into(), "# comment".into(), 7).unwrap();
    input.pipe_input("d".into(), "zzz".into(), 8).unwrap();
    let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    let records = out.read_records_to_list().unwrap();
    let got: Vec<(String, i64, i64)> = records
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a:X".into(), 1, 5),
            ("a:YY".into(), 2, 5),
            ("d:ZZZ".into(), 3, 8)
        ]
    );
    assert!(out.is_empty());
    assert_eq!(driver.metrics().processed, 4);
}

#[test]
fn word_count_repartitions_and_counts() {
    let builder = StreamsBuilder::new();
    let counts = strings(&builder, "text")
        .flat_map_values(|line| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("word-counts"));
    counts.to_stream().to("counts");
    let topology = builder.build().unwrap();
    let description = topology.describe();
    assert!(description.contains("Sub-topology: 1"), "{description}");
    assert!(description.contains("-repartition"), "{description}");
    let driver = TopologyTestDriver::with_application_id(topology, "wc").unwrap();
    let input = driver.input_topic("text", Serdes::string(), Serdes::string());
    input
        .pipe_input("1".into(), "the cat the".into(), 1)
        .unwrap();
    input.pipe_input("2".into(), "The dog".into(), 2).unwrap();
    let out = driver.output_topic("counts", Serdes::string(), Serdes::optional(Serdes::i64()));
    let got = out.read_key_values_to_list().unwrap();
    assert_eq!(
        got,
        vec![
            ("the".into(), Some(1)),
            ("cat".into(), Some(1)),
            ("the".into(), Some(2)),
            ("the".into(), Some(3)),
            ("dog".into(), Some(1)),
        ]
    );
    let store = driver
        .key_value_store::<String, i64>("word-counts")
        .unwrap();
    assert_eq!(store.get(&"the".to_string()).unwrap(), Some(3));
    assert_eq!(store.approximate_num_entries(), 3);
    // The store's changelog and the repartition topic carry the
    // application id.
    let topics = driver.produced_topic_names();
    assert!(
        topics.contains(&"wc-word-counts-changelog".to_string()),
        "{topics:?}"
    );
    assert!(
        topics
            .iter()
            .any(|t| t.starts_with("wc-") && t.ends_with("-repartition")),
        "{topics:?}"
    );
    let changelog = driver.output_topic("word-counts-changelog", Serdes::string(), Serdes::i64());
    assert_eq!(changelog.read_key_values_to_map().unwrap()["the"], 3);
}

#[test]
fn reduce_and_aggregate_by_key() {
    let builder = StreamsBuilder::new();
    let nums = builder.stream("n", Consumed::with(Serdes::string(), Serdes::i64()));
    nums.group_by_key()
        .reduce(|a, b| a.max(b))
        .to_stream()
        .to("max");
    nums.group_by_key_with(Grouped::with(Serdes::string(), Serdes::i64()))
        .aggregate(Vec::<i64>::new, |_, v, mut all| {
            all.push(v);
            all
        })
        .to_stream()
        .to("all");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let input = driver.input_topic("n", Serdes::string(), Serdes::i64());
    input
        .pipe_all([
            ("a".to_string(), 3, 0),
            ("a".into(), 1, 1),
            ("b".into(), 2, 2),
            ("a".into(), 7, 3),
        ])
        .unwrap();
    let max = driver.output_topic("max", Serdes::string(), Serdes::optional(Serdes::i64()));
    assert_eq!(
        max.read_key_values_to_list().unwrap(),
        vec![
            ("a".into(), Some(3)),
            ("a".into(), Some(3)),
            ("b".into(), Some(2)),
            ("a".into(), Some(7))
        ]
    );
    let all = driver.output_topic(
        "all",
        Serdes::string(),
        Serdes::optional(Serdes::json::<Vec<i64>>()),
    );
    let last = all.read_key_values_to_map().unwrap();
    assert_eq!(last["a"], Some(vec![3, 1, 7]));
    assert_eq!(last["b"], Some(vec![2]));
}

#[test]
fn tables_keep_the_latest_value_and_delete_on_tombstones() {
    let builder = StreamsBuilder::new();
    let table = builder
        .table(
            "users",
            Consumed::with(Serdes::string(), Serdes::string()),
            Materialized::as_("users-store"),
        )
        .unwrap();
    table
        .filter(|_, v| v != "banned")
        .map_values(|v| v.len() as i64)
        .to_stream()
        .to("lengths");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let input = driver.input_topic("users", Serdes::string(), Serdes::string());
    input.pipe_input("u1".into(), "alice".into(), 0).unwrap();
    input.pipe_input("u2".into(), "bob".into(), 1).unwrap();
    input.pipe_input("u1".into(), "banned".into(), 2).unwrap();
    input.pipe_tombstone("u2".into(), 3).unwrap();
    input.pipe_tombstone("u3".into(), 4).unwrap(); // deleting a missing key: nothing
    let out = driver.output_topic("lengths", Serdes::string(), Serdes::optional(Serdes::i64()));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            ("u1".into(), Some(5)),
            ("u2".into(), Some(3)),
            ("u1".into(), None),
            ("u2".into(), None)
        ]
    );
    let store = driver
        .key_value_store::<String, String>("users-store")
        .unwrap();
    assert_eq!(
        store.get(&"u1".to_string()).unwrap().as_deref(),
        Some("banned")
    );
    assert_eq!(store.get(&"u2".to_string()).unwrap(), None);
    assert_eq!(store.all().unwrap().len(), 1);
}

#[test]
fn split_sends_each_record_to_its_first_matching_branch_and_merge_joins_them() {
    let builder = StreamsBuilder::new();
    let branches = builder
        .stream("n", Consumed::with(Serdes::string(), Serdes::i64()))
        .split("n-")
        .branch("neg", |_, v| *v < 0)
        .branch("small", |_, v| *v < 10)
        .default_branch("big");
    assert_eq!(
        branches.keys().cloned().collect::<Vec<_>>(),
        vec!["n-big", "n-neg", "n-small"]
    );
    branches["n-neg"].to("neg");
    branches["n-big"].to("big");
    branches["n-neg"]
        .merge(&branches["n-small"])
        .map_values(|v| v * 100)
        .to("merged");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let input = driver.input_topic("n", Serdes::string(), Serdes::i64());
    input
        .pipe_all([
            ("a".to_string(), -1, 0),
            ("b".into(), 5, 0),
            ("c".into(), 50, 0),
        ])
        .unwrap();
    let read = |t: &str| {
        driver
            .output_topic(t, Serdes::string(), Serdes::i64())
            .read_key_values_to_list()
            .unwrap()
    };
    assert_eq!(read("neg"), vec![("a".to_string(), -1)]);
    assert_eq!(read("big"), vec![("c".to_string(), 50)]);
    assert_eq!(
        read("merged"),
        vec![("a".to_string(), -100), ("b".to_string(), 500)]
    );
}

/// Sums values per key in a store and emits the sums on punctuation.
struct SumEvery {
    store: Option<embedlog::streams::KeyValueStore<String, i64>>,
    fired: Vec<(PunctuationType, i64)>,
}

impl Processor<String, i64, String, i64> for SumEvery {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> embedlog::Result<()> {
        self.store = Some(ctx.key_value_store("sums")?);
        ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime)?;
        ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime)?;
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, i64>,
        r: StreamRecord<String, i64>,
    ) -> embedlog::Result<()> {
        let store = self.store.as_ref().unwrap();
        let sum = store.get(&r.key)?.unwrap_or(0) + r.value;
        store.put(&r.key, &sum)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        kind: PunctuationType,
        ts: i64,
    ) -> embedlog::Result<()> {
        self.fired.push((kind, ts));
        for (k, v) in self.store.as_ref().unwrap().all()? {
            ctx.forward(StreamRecord::new(format!("{k}@{ts}"), v, ts))?;
        }
        Ok(())
    }
}

#[test]
fn processors_use_stores_and_punctuate_by_stream_and_wall_clock_time() {
    let builder = StreamsBuilder::new();
    builder
        .add_state_store(Stores::key_value("sums", Serdes::string(), Serdes::i64()))
        .unwrap();
    builder
        .stream("n", Consumed::with(Serdes::string(), Serdes::i64()))
        .process(
            || SumEvery {
                store: None,
                fired: Vec::new(),
            },
            &["sums"],
        )
        .to("sums-out");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let input = driver.input_topic("n", Serdes::string(), Serdes::i64());
    let out = driver.output_topic("sums-out", Serdes::string(), Serdes::i64());
    input.pipe_input("a".into(), 1, 3).unwrap(); // schedules for 10
    input.pipe_input("a".into(), 2, 9).unwrap();
    assert!(out.is_empty());
    input.pipe_input("b".into(), 5, 12).unwrap(); // stream time 12: fires once
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("a@12".into(), 3), ("b@12".into(), 5)]
    );
    input.pipe_input("a".into(), 1, 15).unwrap(); // not yet 20
    assert!(out.is_empty());
    driver
        .advance_wall_clock_time(Duration::from_millis(999))
        .unwrap();
    assert!(out.is_empty());
    driver
        .advance_wall_clock_time(Duration::from_millis(1))
        .unwrap(); // wall clock 1000
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("a@1000".into(), 4), ("b@1000".into(), 5)]
    );
}

#[test]
fn a_processor_asking_for_a_store_it_is_not_connected_to_fails_clearly() {
    let builder = StreamsBuilder::new();
    builder
        .add_state_store(Stores::key_value("sums", Serdes::string(), Serdes::i64()))
        .unwrap();
    builder
        .stream("n", Consumed::with(Serdes::string(), Serdes::i64()))
        .process(
            || SumEvery {
                store: None,
                fired: Vec::new(),
            },
            &[],
        )
        .to("x");
    // The store is declared but connected to no node: the build reports
    // nothing, the processor's init does.
    let err = TopologyTestDriver::new(builder.build().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"sums\"") && err.contains("not connected"),
        "{err}"
    );

    let builder = StreamsBuilder::new();
    builder
        .stream("n", Consumed::with(Serdes::string(), Serdes::i64()))
        .process(
            || SumEvery {
                store: None,
                fired: Vec::new(),
            },
            &["missing"],
        )
        .to("x");
    let err = builder.build().unwrap_err().to_string();
    assert!(
        err.contains("\"missing\"") && err.contains("add_state_store"),
        "{err}"
    );
}

#[test]
fn undecodable_records_fail_the_task_or_are_skipped_as_configured() {
    let build = || {
        let builder = StreamsBuilder::new();
        builder
            .stream("n", Consumed::with(Serdes::string(), Serdes::i64()))
            .to("out");
        builder.build().unwrap()
    };
    let driver = TopologyTestDriver::new(build()).unwrap();
    let err = driver
        .pipe_raw(
            "n",
            Some("k".into()),
            Some(vec![1, 2, 3].into()),
            0,
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("offset 0") && err.contains("LogAndContinue"),
        "{err}"
    );

    let driver =
        TopologyTestDriver::with_config(build(), "app", 0, DeserializationErrors::LogAndContinue)
            .unwrap();
    driver
        .pipe_raw(
            "n",
            Some("k".into()),
            Some(vec![1, 2, 3].into()),
            0,
            Vec::new(),
        )
        .unwrap();
    driver
        .pipe_raw(
            "n",
            Some("k".into()),
            Some(7i64.to_be_bytes().to_vec().into()),
            0,
            Vec::new(),
        )
        .unwrap();
    assert_eq!(driver.metrics().skipped, 1);
    let out = driver.output_topic("out", Serdes::string(), Serdes::i64());
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("k".to_string(), 7)]
    );
    assert!(matches!(
        driver.pipe_raw("nope", None, None, 0, Vec::new()),
        Err(embedlog::Error::UnknownTopic { .. })
    ));
}

#[test]
fn a_topic_read_twice_is_a_topology_error() {
    let builder = StreamsBuilder::new();
    strings(&builder, "in").to("a");
    strings(&builder, "in").to("b");
    let err = builder.build().unwrap_err().to_string();
    assert!(err.contains("\"in\"") && err.contains("branch"), "{err}");
}

#[test]
fn a_record_cache_merges_the_updates_one_record_causes() {
    // One line with a repeated word: without a cache each count goes out,
    // with one only the last per key of the commit.
    let build = || {
        let builder = StreamsBuilder::new();
        strings(&builder, "text")
            .flat_map_values(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .group_by(|_, w| w.clone())
            .count()
            .to_stream()
            .to("counts");
        builder.build().unwrap()
    };
    let run = |cache: usize| {
        let driver =
            TopologyTestDriver::with_config(build(), "c", cache, DeserializationErrors::Fail)
                .unwrap();
        // The count runs after a repartition topic: one record there per
        // word, each committed on its own.
        driver
            .input_topic("text", Serdes::string(), Serdes::string())
            .pipe_input("k".into(), "a a b".into(), 0)
            .unwrap();
        driver
            .output_topic("counts", Serdes::string(), Serdes::optional(Serdes::i64()))
            .read_key_values_to_list()
            .unwrap()
    };
    assert_eq!(
        run(0),
        vec![
            ("a".into(), Some(1)),
            ("a".into(), Some(2)),
            ("b".into(), Some(1))
        ]
    );
    assert_eq!(run(1 << 20), run(0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Counting and summing by a derived key equals a plain fold, for
    /// every prefix of the input.
    #[test]
    /// With a record cache (then a count takes its records' key bytes
    /// without decoding them) or without.
    fn count_and_sum_equal_a_plain_fold(input in proptest::collection::vec((0u8..6, -50i64..50), 0..60), cached in any::<bool>()) {
        let builder = StreamsBuilder::new();
        let nums = builder.stream("n", Consumed::with(Serdes::string(), Serdes::i64()));
        let by_bucket = nums.group_by(|_, v| (v.rem_euclid(3)).to_string());
        by_bucket.count().to_stream().to("count");
        nums.group_by_key().aggregate(|| 0i64, |_, v, s| s + v).to_stream().to("sum");
        let cache = if cached { 1 << 20 } else { 0 };
        let driver = TopologyTestDriver::with_config(builder.build().unwrap(), "app", cache, DeserializationErrors::Fail).unwrap();
        let topic = driver.input_topic("n", Serdes::string(), Serdes::i64());
        let counts = driver.output_topic("count", Serdes::string(), Serdes::optional(Serdes::i64()));
        let sums = driver.output_topic("sum", Serdes::string(), Serdes::optional(Serdes::i64()));
        let mut model_count: BTreeMap<String, i64> = BTreeMap::new();
        let mut model_sum: BTreeMap<String, i64> = BTreeMap::new();
        for (i, (k, v)) in input.iter().enumerate() {
            let key = k.to_string();
            topic.pipe_input(key.clone(), *v, i as i64).unwrap();
            let bucket = v.rem_euclid(3).to_string();
            *model_count.entry(bucket.clone()).or_default() += 1;
            *model_sum.entry(key.clone()).or_default() += v;
            // Each record updates exactly its key, with the model's value.
            prop_assert_eq!(counts.read_key_values_to_list().unwrap(), vec![(bucket.clone(), Some(model_count[&bucket]))]);
            prop_assert_eq!(sums.read_key_values_to_list().unwrap(), vec![(key.clone(), Some(model_sum[&key]))]);
        }
    }
}

#[test]
fn a_timestamp_extractor_sets_event_time() {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "in",
            Consumed::with(Serdes::string(), Serdes::i64())
                .with_timestamp_extractor(|_, v, _| *v * 1000),
        )
        .to("out");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    driver
        .input_topic("in", Serdes::string(), Serdes::i64())
        .pipe_input("k".into(), 7, 1)
        .unwrap();
    let out = driver
        .output_topic("out", Serdes::string(), Serdes::i64())
        .read_records_to_list()
        .unwrap();
    assert_eq!((out[0].value, out[0].timestamp), (7, 7000));
}

/// Forwards where each record came from; a punctuation forwards whether
/// it saw any origin (it must not: it runs outside a record).
struct Origins;

impl Processor<String, i64, String, String> for Origins {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> embedlog::Result<()> {
        ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: StreamRecord<String, i64>,
    ) -> embedlog::Result<()> {
        let m = ctx.record_metadata().expect("a record has an origin");
        let origin = format!("{}/{}@{}", m.topic, m.partition, m.offset);
        ctx.forward(StreamRecord::new(r.key, origin, r.timestamp))
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        _kind: PunctuationType,
        ts: i64,
    ) -> embedlog::Result<()> {
        let seen = format!("{:?}", ctx.record_metadata());
        ctx.forward(StreamRecord::new("punctuation".into(), seen, ts))
    }
}

#[test]
fn record_metadata_names_each_records_origin_and_is_absent_in_a_punctuation() {
    let builder = StreamsBuilder::new();
    let a = builder.stream("a", Consumed::with(Serdes::string(), Serdes::i64()));
    let b = builder.stream("b", Consumed::with(Serdes::string(), Serdes::i64()));
    a.merge(&b).process(|| Origins, &[]).to_with(
        "origins",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let (ia, ib) = (
        driver.input_topic("a", Serdes::string(), Serdes::i64()),
        driver.input_topic("b", Serdes::string(), Serdes::i64()),
    );
    let out = driver.output_topic("origins", Serdes::string(), Serdes::string());
    ia.pipe_input("x".into(), 1, 1).unwrap();
    ia.pipe_input("y".into(), 1, 2).unwrap();
    ib.pipe_input("z".into(), 1, 3).unwrap();
    ia.pipe_input("w".into(), 1, 12).unwrap(); // stream time 12: punctuates
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            ("x".into(), "a/0@0".into()),
            ("y".into(), "a/0@1".into()),
            ("z".into(), "b/0@0".into()),
            ("w".into(), "a/0@2".into()),
            ("punctuation".into(), "None".into()),
        ]
    );
}

/// A key serde that counts how it is used.
#[derive(Default)]
struct Counted {
    decoded: std::sync::atomic::AtomicUsize,
    checked: std::sync::atomic::AtomicUsize,
}

impl embedlog::streams::Serde<String> for Counted {
    fn serialize(&self, value: &String) -> embedlog::Result<Option<bytes::Bytes>> {
        Serdes::string().serialize(value)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> embedlog::Result<String> {
        self.decoded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Serdes::string().deserialize(bytes)
    }
    fn validate(&self, bytes: Option<&[u8]>) -> embedlog::Result<()> {
        self.checked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Serdes::string().validate(bytes)
    }
    fn is_canonical(&self) -> bool {
        true
    }
}

/// With a record cache, a count straight after its source takes each
/// record's key as bytes, checked but not decoded, with the results and
/// the handling of undecodable records of the decoding path.
#[test]
fn a_cached_count_checks_its_keys_without_decoding_them() {
    let build = |keys: std::sync::Arc<Counted>| {
        let builder = StreamsBuilder::new();
        builder
            .stream("words", Consumed::with(keys, Serdes::string()))
            .group_by_key()
            .count()
            .to_stream()
            .to_with(
                "counts",
                Produced::with(Serdes::string(), Serdes::optional(Serdes::i64())),
            );
        builder.build().unwrap()
    };
    for cache in [0, 1 << 20] {
        let keys = std::sync::Arc::new(Counted::default());
        let driver = TopologyTestDriver::with_config(
            build(keys.clone()),
            "app",
            cache,
            DeserializationErrors::LogAndContinue,
        )
        .unwrap();
        let raw = |k: &[u8], v: Option<&[u8]>| {
            driver
                .pipe_raw(
                    "words",
                    Some(bytes::Bytes::copy_from_slice(k)),
                    v.map(bytes::Bytes::copy_from_slice),
                    0,
                    Vec::new(),
                )
                .unwrap();
        };
        raw(b"a", Some(b"x"));
        raw(&[0xff], Some(b"x")); // not UTF-8: skipped
        raw(b"a", Some(&[0xfe])); // a value its serde refuses: skipped
        raw(b"b", Some(b"y"));
        raw(b"a", Some(b"z"));
        assert_eq!(driver.metrics().skipped, 2, "cache {cache}");
        let out = driver.output_topic("counts", Serdes::string(), Serdes::optional(Serdes::i64()));
        assert_eq!(
            out.read_key_values_to_list().unwrap(),
            vec![
                ("a".to_string(), Some(1)),
                ("b".to_string(), Some(1)),
                ("a".to_string(), Some(2)),
            ],
            "cache {cache}"
        );
        let checked = keys.checked.load(std::sync::atomic::Ordering::Relaxed);
        let decoded = keys.decoded.load(std::sync::atomic::Ordering::Relaxed);
        if cache == 0 {
            assert_eq!(checked, 0, "without a cache the source decodes");
        } else {
            // Every record is checked; the only decodings are of the
            // three updates forwarded at commit.
            assert_eq!((checked, decoded), (5, 3));
        }
    }
}

/// A test driver with a record cache of 1 MiB over what `builder` built.
fn cached_driver(builder: &StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::with_config(
        builder.build().unwrap(),
        "app",
        1 << 20,
        DeserializationErrors::Fail,
    )
    .unwrap()
}

/// A count keeps its typed path, decoding every key, where the source's
/// key bytes cannot stand for the key: a key serde with several encodings
/// of one value (JSON), or a store with a key serde of its own.
#[test]
fn a_count_decodes_keys_whose_bytes_cannot_stand_for_them() {
    // JSON: two spellings of one key are one key.
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "j",
            Consumed::with(Serdes::json::<String>(), Serdes::string()),
        )
        .group_by_key()
        .count()
        .to_stream()
        .to_with(
            "j-counts",
            Produced::with(Serdes::json(), Serdes::optional(Serdes::i64())),
        );
    let driver = cached_driver(&builder);
    for key in [&b"\"a\""[..], &b" \"a\" "[..]] {
        driver
            .pipe_raw(
                "j",
                Some(bytes::Bytes::copy_from_slice(key)),
                Some("x".into()),
                0,
                Vec::new(),
            )
            .unwrap();
    }
    let out = driver.output_topic(
        "j-counts",
        Serdes::json::<String>(),
        Serdes::optional(Serdes::i64()),
    );
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("a".to_string(), Some(1)), ("a".to_string(), Some(2))]
    );

    // A store keyed by another serde than the source's.
    let keys = std::sync::Arc::new(Counted::default());
    let builder = StreamsBuilder::new();
    builder
        .stream("w", Consumed::with(keys.clone(), Serdes::string()))
        .group_by_key()
        .count_with(Materialized::as_("own-keys").with(Serdes::string(), Serdes::i64()))
        .to_stream()
        .to_with(
            "w-counts",
            Produced::with(Serdes::string(), Serdes::optional(Serdes::i64())),
        );
    let driver = cached_driver(&builder);
    let input = driver.input_topic("w", Serdes::string(), Serdes::string());
    input.pipe_input("a".into(), "x".into(), 0).unwrap();
    input.pipe_input("a".into(), "y".into(), 1).unwrap();
    let out = driver.output_topic(
        "w-counts",
        Serdes::string(),
        Serdes::optional(Serdes::i64()),
    );
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("a".to_string(), Some(1)), ("a".to_string(), Some(2))]
    );
    assert_eq!(keys.checked.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(keys.decoded.load(std::sync::atomic::Ordering::Relaxed), 2);
}

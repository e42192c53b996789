//! Joins give what a plain model of Kafka's join semantics gives, for random inputs through the TopologyTestDriver: stream–table and stream–global-table (inner, left; null keys skipped), table–table (inner, left, outer: every change and the final table), stream–stream in windows (inner, left, outer: each pair once, unmatched records only once their window closed, late records dropped).

use bytes::Bytes;
use embedlog::streams::{
    Consumed, JoinWindows, Materialized, Produced, Serdes, StreamJoined, StreamsBuilder,
    TestRecord, TopologyTestDriver,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

type Key = Option<String>;
type Out = (Key, String, i64);

fn keys() -> embedlog::streams::SerdeRef<Key> {
    Serdes::optional(Serdes::string())
}

fn key(k: u8) -> Key {
    Some(format!("k{k}"))
}

/// Every record `topic` got since the last read, as (key, value, time),
/// sorted (the order of one step's outputs is not the point).
fn drain(driver: &TopologyTestDriver, topic: &str) -> Vec<Out> {
    let mut out: Vec<Out> = driver
        .output_topic(topic, keys(), Serdes::string())
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r: TestRecord<Key, String>| (r.key, r.value, r.timestamp))
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<Out>) -> Vec<Out> {
    v.sort();
    v
}

// ---------------------------------------------------------------- stream–table

#[derive(Debug, Clone)]
enum TableStep {
    /// A table update (`None`: a tombstone).
    Table(u8, Option<i64>),
    /// A stream record (`None`: a null key).
    Stream(Option<u8>, i64),
}

fn table_step() -> impl Strategy<Value = TableStep> {
    prop_oneof![
        (0u8..4, proptest::option::of(0i64..100)).prop_map(|(k, v)| TableStep::Table(k, v)),
        (proptest::option::weighted(0.9, 0u8..4), 0i64..100)
            .prop_map(|(k, v)| TableStep::Stream(k, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Stream records join the table as it is when they arrive; table
    /// updates make no output; null keys are skipped; a re-keyed stream is
    /// repartitioned and joins the same.
    #[test]
    fn stream_table_joins_match_the_model(steps in proptest::collection::vec(table_step(), 1..60)) {
        let b = StreamsBuilder::new();
        let table = b
            .table("table", Consumed::with(keys(), Serdes::i64()), Materialized::default())
            .unwrap();
        let stream = b.stream("stream", Consumed::with(keys(), Serdes::i64()));
        stream.join(&table, |v: &i64, t: &i64| format!("{v}+{t}")).to("inner");
        stream
            .left_join(&table, |v: &i64, t: Option<&i64>| format!("{v}+{t:?}"))
            .to("left");
        stream
            .select_key(|k: &Key, _: &i64| k.clone())
            .with_serdes(keys(), Serdes::i64())
            .join(&table, |v: &i64, t: &i64| format!("{v}+{t}"))
            .to("inner-rekeyed");
        let driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let table_in = driver.input_topic("table", keys(), Serdes::i64());
        let stream_in = driver.input_topic("stream", keys(), Serdes::i64());

        let mut model: BTreeMap<Key, i64> = BTreeMap::new();
        let mut nulls = 0;
        for (ts, step) in steps.into_iter().enumerate() {
            let ts = ts as i64;
            let (mut inner, mut left) = (Vec::new(), Vec::new());
            match step {
                TableStep::Table(k, Some(v)) => {
                    table_in.pipe_input(key(k), v, ts).unwrap();
                    model.insert(key(k), v);
                }
                TableStep::Table(k, None) => {
                    table_in.pipe_tombstone(key(k), ts).unwrap();
                    model.remove(&key(k));
                }
                TableStep::Stream(None, v) => {
                    stream_in.pipe_input(None, v, ts).unwrap();
                    nulls += 1;
                }
                TableStep::Stream(Some(k), v) => {
                    stream_in.pipe_input(key(k), v, ts).unwrap();
                    let found = model.get(&key(k));
                    if let Some(t) = found {
                        inner.push((key(k), format!("{v}+{t}"), ts));
                    }
                    left.push((key(k), format!("{v}+{found:?}"), ts));
                }
            }
            prop_assert_eq!(drain(&driver, "inner"), inner.clone());
            prop_assert_eq!(drain(&driver, "inner-rekeyed"), inner);
            prop_assert_eq!(drain(&driver, "left"), left);
        }
        // Each of the three joins skips each null-key record.
        prop_assert_eq!(driver.metrics().skipped, 3 * nulls);
    }
}

// ----------------------------------------------------------- stream–global table

/// The global key of a stream value (`None`, a null key, for some).
fn mapped(v: i64) -> Key {
    (v % 4 != 3).then(|| format!("g{}", v % 4))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Stream records join the global table by their mapped key, as the
    /// table is when they arrive; a null mapped key is skipped.
    #[test]
    fn stream_global_table_joins_match_the_model(
        steps in proptest::collection::vec(
            prop_oneof![
                (0u8..3, proptest::option::of("[a-c]{1,2}")).prop_map(|(k, v)| (true, k as i64, v)),
                (0i64..40).prop_map(|v| (false, v, None)),
            ],
            1..60,
        )
    ) {
        let b = StreamsBuilder::new();
        let global = b
            .global_table("global", Consumed::with(keys(), Serdes::string()), Some("global-store"))
            .unwrap();
        let stream = b.stream("stream", Consumed::with(keys(), Serdes::i64()));
        stream
            .join_global(&global, |_: &Key, v: &i64| mapped(*v), |v: &i64, g: &String| format!("{v}+{g}"))
            .to("inner");
        stream
            .left_join_global(
                &global,
                |_: &Key, v: &i64| mapped(*v),
                |v: &i64, g: Option<&String>| format!("{v}+{g:?}"),
            )
            .to("left");
        let topology = b.build().unwrap();
        // The global store joins no sub-topologies.
        prop_assert_eq!(topology.describe().matches("Sub-topology:").count(), 1);
        let driver = TopologyTestDriver::new(topology).unwrap();
        let global_in = driver.input_topic("global", keys(), Serdes::string());
        let stream_in = driver.input_topic("stream", keys(), Serdes::i64());

        let mut model: BTreeMap<Key, String> = BTreeMap::new();
        let mut nulls = 0;
        for (ts, (is_global, n, value)) in steps.into_iter().enumerate() {
            let ts = ts as i64;
            let (mut inner, mut left) = (Vec::new(), Vec::new());
            if is_global {
                let k = Some(format!("g{n}"));
                match value {
                    Some(v) => {
                        global_in.pipe_input(k.clone(), v.clone(), ts).unwrap();
                        model.insert(k, v);
                    }
                    None => {
                        global_in.pipe_tombstone(k.clone(), ts).unwrap();
                        model.remove(&k);
                    }
                }
            } else {
                stream_in.pipe_input(Some("s".into()), n, ts).unwrap();
                match mapped(n) {
                    None => nulls += 1,
                    Some(g) => {
                        let found = model.get(&Some(g));
                        if let Some(f) = found {
                            inner.push((Some("s".into()), format!("{n}+{f}"), ts));
                        }
                        left.push((Some("s".into()), format!("{n}+{found:?}"), ts));
                    }
                }
            }
            prop_assert_eq!(drain(&driver, "inner"), inner);
            prop_assert_eq!(drain(&driver, "left"), left);
        }
        prop_assert_eq!(driver.metrics().skipped, 2 * nulls);
    }
}

// ---------------------------------------------------------------- table–table

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

const KINDS: [(Kind, &str); 3] = [
    (Kind::Inner, "inner"),
    (Kind::Left, "left"),
    (Kind::Outer, "outer"),
];

/// The joined row of a key, given each table's value.
fn row(kind: Kind, l: Option<i64>, r: Option<i64>) -> Option<String> {
    match (kind, l, r) {
        (Kind::Inner, Some(l), Some(r)) => Some(format!("{l}+{r}")),
        (Kind::Left, Some(l), r) => Some(format!("{l}+{r:?}")),
        (Kind::Outer, l, r) if l.is_some() || r.is_some() => Some(format!("{l:?}+{r:?}")),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every update of either table changes its key's joined row: each
    /// change goes out (the new row, a tombstone for a row gone), and the
    /// materialized result ends as the join of the final tables.
    #[test]
    fn table_table_joins_match_the_model(
        steps in proptest::collection::vec(
            (any::<bool>(), 0u8..4, proptest::option::weighted(0.7, 0i64..100)),
            1..60,
        )
    ) {
        let b = StreamsBuilder::new();
        let s = || Consumed::with(Serdes::string(), Serdes::i64());
        let l = b.table("lt", s(), Materialized::default()).unwrap();
        let r = b.table("rt", s(), Materialized::default()).unwrap();
        let produced = || Produced::with(Serdes::string(), Serdes::optional(Serdes::string()));
        l.join(&r, |a: &i64, b: &i64| format!("{a}+{b}"))
            .materialize(Materialized::as_("inner-store"))
            .to_stream()
            .to_with("inner", produced());
        l.left_join(&r, |a: &i64, b: Option<&i64>| format!("{a}+{b:?}"))
            .materialize(Materialized::as_("left-store"))
            .to_stream()
            .to_with("left", produced());
        l.outer_join(&r, |a: Option<&i64>, b: Option<&i64>| format!("{a:?}+{b:?}"))
            .materialize(Materialized::as_("outer-store"))
            .to_stream()
            .to_with("outer", produced());
        let driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let inputs = [
            driver.input_topic("lt", Serdes::string(), Serdes::i64()),
            driver.input_topic("rt", Serdes::string(), Serdes::i64()),
        ];

        let mut tables: [BTreeMap<String, i64>; 2] = Default::default();
        for (ts, (right, k, v)) in steps.into_iter().enumerate() {
            let (ts, side, k) = (ts as i64, usize::from(right), format!("k{k}"));
            let before = (tables[0].get(&k).copied(), tables[1].get(&k).copied());
            // A tombstone for a key the table lacks changes nothing.
            let changed = v.is_some() || tables[side].contains_key(&k);
            match v {
                Some(v) => {
                    inputs[side].pipe_input(k.clone(), v, ts).unwrap();
                    tables[side].insert(k.clone(), v);
                }
                None => {
                    inputs[side].pipe_tombstone(k.clone(), ts).unwrap();
                    tables[side].remove(&k);
                }
            }
            let after = (tables[0].get(&k).copied(), tables[1].get(&k).copied());
            for (kind, topic) in KINDS {
                let (old, new) = (row(kind, before.0, before.1), row(kind, after.0, after.1));
                let expected: Vec<(String, Option<String>, i64)> = if changed && (old.is_some() || new.is_some()) {
                    vec![(k.clone(), new, ts)]
                } else {
                    Vec::new()
                };
                let got: Vec<_> = driver
                    .output_topic(topic, Serdes::string(), Serdes::optional(Serdes::string()))
                    .read_records_to_list()
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.key, r.value, r.timestamp))
                    .collect();
                prop_assert_eq!(got, expected, "{} join", topic);
            }
        }
        for (kind, topic) in KINDS {
            let store = driver.key_value_store::<String, String>(&format!("{topic}-store")).unwrap();
            let expected: Vec<(String, String)> = (0..4)
                .map(|k| format!("k{k}"))
                .filter_map(|k| {
                    let v = row(kind, tables[0].get(&k).copied(), tables[1].get(&k).copied())?;
                    Some((k, v))
                })
                .collect();
            prop_assert_eq!(store.all().unwrap(), expected, "{} join", topic);
        }
    }
}

// ------------------------------------------------------------- stream–stream

/// One stream–stream join, written plainly: each side's records so far,
/// the records waiting for a match, the stream time.
struct WindowModel {
    kind: Kind,
    before: i64,
    after: i64,
    grace: i64,
    now: i64,
    /// (key, id, time) per side (0 left, 1 right).
    seen: [Vec<(String, i64, i64)>; 2],
    /// (side, key, id, time) of records without a match yet.
    waiting: Vec<(usize, String, i64, i64)>,
    late: u64,
}

impl WindowModel {
    fn new(kind: Kind, before: i64, after: i64, grace: i64) -> Self {
        WindowModel {
            kind,
            before,
            after,
            grace,
            now: i64::MIN,
            seen: Default::default(),
            waiting: Vec::new(),
            late: 0,
        }
    }

    /// How long after its time a record of `side` may still be matched.
    fn reach(&self, side: usize) -> i64 {
        if side == 0 { self.after } else { self.before }
    }

    fn pair(&self, left: i64, right: i64) -> String {
        match self.kind {
            Kind::Inner => format!("{left}+{right}"),
            Kind::Left => format!("{left}+{:?}", Some(right)),
            Kind::Outer => format!("{:?}+{:?}", Some(left), Some(right)),
        }
    }

    fn alone(&self, side: usize, id: i64) -> String {
        match (self.kind, side) {
            (Kind::Left, 0) => format!("{id}+None"),
            (Kind::Outer, 0) => format!("{:?}+None", Some(id)),
            _ => format!("None+{:?}", Some(id)),
        }
    }

    fn waits(&self, side: usize) -> bool {
        match self.kind {
            Kind::Inner => false,
            Kind::Left => side == 0,
            Kind::Outer => true,
        }
    }

    /// What the join emits when a record of `side` arrives.
    fn step(&mut self, side: usize, key: Option<String>, id: i64, t: i64) -> Vec<Out> {
        self.now = self.now.max(t);
        let mut out = Vec::new();
        if let Some(key) = key {
            let other = 1 - side;
            if self.now > t + self.reach(side) + self.grace {
                self.late += 1;
            } else {
                // The other side's records from t - reach(other) to
                // t + reach(side).
                let matches: Vec<(i64, i64)> = self.seen[other]
                    .iter()
                    .filter(|(k, _, to)| {
                        k == &key && *to >= t - self.reach(other) && *to <= t + self.reach(side)
                    })
                    .map(|(_, oid, to)| (*oid, *to))
                    .collect();
                for &(oid, to) in &matches {
                    let value = if side == 0 {
                        self.pair(id, oid)
                    } else {
                        self.pair(oid, id)
                    };
                    out.push((Some(key.clone()), value, t.max(to)));
                }
                self.waiting.retain(|(s, k, _, tw)| {
                    !(*s == other && k == &key && matches.iter().any(|(_, to)| to == tw))
                });
                if matches.is_empty() && self.waits(side) {
                    self.waiting.push((side, key.clone(), id, t));
                }
                self.seen[side].push((key, id, t));
            }
        }
        // Records whose window closed go out alone.
        let mut still = Vec::new();
        for (s, k, wid, tw) in std::mem::take(&mut self.waiting) {
            if self.now > tw + self.reach(s) + self.grace {
                out.push((Some(k), self.alone(s, wid), tw));
            } else {
                still.push((s, k, wid, tw));
            }
        }
        self.waiting = still;
        sorted(out)
    }
}

#[derive(Debug, Clone)]
struct WindowCase {
    before: u64,
    after: u64,
    grace: u64,
    /// (right side?, key (None: null), how far the clock moves on, how late
    /// the record is behind it)
    records: Vec<(bool, Option<u8>, i64, i64)>,
}

fn window_case() -> impl Strategy<Value = WindowCase> {
    (
        0u64..6,
        0u64..6,
        0u64..6,
        proptest::collection::vec(
            (
                any::<bool>(),
                proptest::option::weighted(0.95, 0u8..2),
                0i64..4,
                prop_oneof![3 => Just(0i64), 2 => 0i64..12],
            ),
            1..50,
        ),
    )
        .prop_map(|(before, after, grace, records)| WindowCase {
            before,
            after,
            grace,
            records,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Each pair within the window is emitted once, at the later time; a
    /// left (outer) join emits an unmatched record with `None` only once
    /// its window closed, and not if a match came first; records arriving
    /// after their window closed are dropped and counted.
    #[test]
    fn stream_stream_joins_match_the_model(case in window_case()) {
        let ms = Duration::from_millis;
        let windows = JoinWindows::of_time_difference_and_grace(ms(case.before), ms(case.grace))
            .after(ms(case.after));
        let b = StreamsBuilder::new();
        let l = b.stream("l", Consumed::with(keys(), Serdes::i64()));
        let r = b.stream("r", Consumed::with(keys(), Serdes::i64()));
        l.join_stream(&r, |a: &i64, b: &i64| format!("{a}+{b}"), windows).to("inner");
        l.left_join_stream(&r, |a: &i64, b: Option<&i64>| format!("{a}+{b:?}"), windows)
            .to("left");
        l.outer_join_stream_with(
            &r,
            |a: Option<&i64>, b: Option<&i64>| format!("{a:?}+{b:?}"),
            windows,
            StreamJoined::with(keys(), Serdes::i64(), Serdes::i64()).with_store_name("outer"),
        )
        .to("outer");
        let driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
        let inputs = [
            driver.input_topic("l", keys(), Serdes::i64()),
            driver.input_topic("r", keys(), Serdes::i64()),
        ];
        let (before, after, grace) = (case.before as i64, case.after as i64, case.grace as i64);
        let mut models: Vec<(WindowModel, &str)> = KINDS
            .iter()
            .map(|&(kind, topic)| (WindowModel::new(kind, before, after, grace), topic))
            .collect();
        let (mut clock, mut nulls) = (20i64, 0u64);
        for (id, (right, k, advance, lag)) in case.records.into_iter().enumerate() {
            clock += advance;
            let (id, t, side) = (id as i64, clock - lag, usize::from(right));
            let k = k.map(|k| format!("k{k}"));
            if k.is_none() {
                nulls += 1;
            }
            inputs[side].pipe_input(k.clone(), id, t).unwrap();
            for (model, topic) in &mut models {
                let expected = model.step(side, k.clone(), id, t);
                prop_assert_eq!(drain(&driver, topic), expected, "{} join, record {} at {}", topic, id, t);
            }
        }
        let m = driver.metrics();
        prop_assert_eq!(m.dropped_late, models.iter().map(|(m, _)| m.late).sum::<u64>());
        prop_assert_eq!(m.skipped, 3 * nulls);
    }
}

// ---------------------------------------------------------------- examples

#[test]
fn a_left_join_emits_an_unmatched_record_once_its_window_closed() {
    let b = StreamsBuilder::new();
    let s = || Consumed::with(Serdes::string(), Serdes::string());
    let windows = JoinWindows::of_time_difference_and_grace(
        Duration::from_millis(10),
        Duration::from_millis(5),
    );
    b.stream("views", s())
        .left_join_stream(
            &b.stream("clicks", s()),
            |v: &String, c: Option<&String>| format!("{v}/{}", c.map_or("-", String::as_str)),
            windows,
        )
        .to("out");
    let driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let views = driver.input_topic("views", Serdes::string(), Serdes::string());
    let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
    let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    let read = || -> Vec<(String, String, i64)> {
        out.read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect()
    };
    views.pipe_input("a".into(), "v1".into(), 100).unwrap();
    views.pipe_input("b".into(), "v2".into(), 100).unwrap();
    // v1's window ends at 110, its grace at 115: it may still match.
    clicks.pipe_input("x".into(), "c0".into(), 115).unwrap();
    assert_eq!(read(), vec![]);
    // A late-ish click within the grace period matches v1.
    clicks.pipe_input("a".into(), "c1".into(), 108).unwrap();
    assert_eq!(read(), vec![("a".into(), "v1/c1".into(), 108)]);
    // Past 115: v2 goes out alone, at its own time; v1 does not.
    clicks.pipe_input("x".into(), "c2".into(), 116).unwrap();
    assert_eq!(read(), vec![("b".into(), "v2/-".into(), 100)]);
    // A view whose window closed long ago is dropped as late.
    views.pipe_input("a".into(), "v3".into(), 90).unwrap();
    assert_eq!(read(), vec![]);
    assert_eq!(driver.metrics().dropped_late, 1);
}

#[test]
fn stream_join_stores_are_named_logged_and_shared_by_one_task() {
    let b = StreamsBuilder::new();
    let s = || Consumed::with(Serdes::string(), Serdes::i64());
    let joined = StreamJoined::with(Serdes::string(), Serdes::i64(), Serdes::i64())
        .with_store_name("j")
        .with_name("pairs");
    b.stream("l", s())
        .outer_join_stream_with(
            &b.stream("r", s()),
            |a: Option<&i64>, b: Option<&i64>| a.copied().unwrap_or(0) + b.copied().unwrap_or(0),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(5)),
            joined,
        )
        .to("sums");
    let topology = b.build().unwrap();
    let described = topology.describe();
    assert_eq!(described.matches("Sub-topology:").count(), 1, "{described}");
    for name in ["pairs-this-join", "pairs-other-join", "pairs-merge"] {
        assert!(described.contains(name), "{name} not in {described}");
    }
    let driver = TopologyTestDriver::new(topology).unwrap();
    driver
        .input_topic("l", Serdes::string(), Serdes::i64())
        .pipe_input("k".into(), 1, 10)
        .unwrap();
    let this = driver
        .window_store::<String, i64>("j-this-join-store")
        .unwrap();
    assert_eq!(this.fetch(&"k".into(), 10, 10).unwrap(), vec![(10, 1)]);
    driver
        .window_store::<String, i64>("j-other-join-store")
        .unwrap();
    let waiting = driver
        .key_value_store::<Bytes, Bytes>("j-outer-shared-join-store")
        .unwrap();
    assert_eq!(waiting.approximate_num_entries(), 1);
    let topics = driver.produced_topic_names();
    for store in ["j-this-join-store", "j-outer-shared-join-store"] {
        let changelog = format!("topology-test-driver-{store}-changelog");
        assert!(topics.contains(&changelog), "{changelog} not in {topics:?}");
    }
    // A match removes the waiting record.
    driver
        .input_topic("r", Serdes::string(), Serdes::i64())
        .pipe_input("k".into(), 2, 12)
        .unwrap();
    assert_eq!(waiting.approximate_num_entries(), 0);
    let sums = driver.output_topic("sums", Serdes::string(), Serdes::i64());
    assert_eq!(
        sums.read_key_values_to_list().unwrap(),
        vec![("k".into(), 3)]
    );
}

#[test]
fn rekeyed_streams_are_repartitioned_before_a_join() {
    let b = StreamsBuilder::new();
    let s = || Consumed::with(Serdes::string(), Serdes::string());
    let table = b.table("names", s(), Materialized::default()).unwrap();
    b.stream("orders", s())
        .select_key(|_: &String, v: &String| v.clone())
        .join(&table, |v: &String, name: &String| format!("{v}:{name}"))
        .to("out");
    let driver = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    driver
        .input_topic("names", Serdes::string(), Serdes::string())
        .pipe_input("u1".into(), "Ada".into(), 1)
        .unwrap();
    driver
        .input_topic("orders", Serdes::string(), Serdes::string())
        .pipe_input("o1".into(), "u1".into(), 2)
        .unwrap();
    assert!(
        driver
            .produced_topic_names()
            .iter()
            .any(|t| t.ends_with("-repartition")),
        "{:?}",
        driver.produced_topic_names()
    );
    let out = driver.output_topic("out", Serdes::string(), Serdes::string());
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![("u1".into(), "u1:Ada".into())]
    );
}

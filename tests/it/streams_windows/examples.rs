//! Examples of the windowed DSL's edges: `describe()` output, changelogs,
//! store expiry, `suppress` by time limit, full buffers, topology
//! mistakes reported by `build`, records without a key.

use super::{counts, ms, windowed};
use embedlog::streams::{
    BufferConfig, Consumed, KGroupedStream, Materialized, Serdes, SessionWindows, SlidingWindows,
    StreamsBuilder, Suppressed, TimeWindows, TopologyTestDriver, windowed_serde,
};

#[test]
fn describe_shows_the_windowed_nodes_and_stores() {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    let topology = builder.build().unwrap();
    assert_eq!(
        topology.describe(),
        "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [in])
      --> KSTREAM-AGGREGATE-0000000002
    Processor: KSTREAM-AGGREGATE-0000000002 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000001])
      --> KTABLE-SUPPRESS-0000000003
      <-- KSTREAM-SOURCE-0000000000
    Processor: KTABLE-SUPPRESS-0000000003 (stores: [KTABLE-SUPPRESS-STATE-STORE-0000000004])
      --> KTABLE-TOSTREAM-0000000005
      <-- KSTREAM-AGGREGATE-0000000002
    Processor: KTABLE-TOSTREAM-0000000005 (stores: [])
      --> KSTREAM-SINK-0000000006
      <-- KTABLE-SUPPRESS-0000000003
    Sink: KSTREAM-SINK-0000000006 (topic: out)
      <-- KTABLE-TOSTREAM-0000000005
"
    );

    let builder = StreamsBuilder::new();
    let g = builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key();
    g.windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(ms(10)))
        .reduce_with(|a, b| a + b, Materialized::as_("sliding"));
    g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(10)))
        .count_with(Materialized::as_("sessions"))
        .suppress(
            Suppressed::until_window_closes(BufferConfig::max_records(10)).with_name("final"),
        );
    let d = builder.build().unwrap().describe();
    assert!(
        d.contains("Processor: KSTREAM-REDUCE-0000000001 (stores: [sliding, sliding-records])"),
        "{d}"
    );
    assert!(
        d.contains("Processor: KSTREAM-AGGREGATE-0000000002 (stores: [sessions])"),
        "{d}"
    );
    assert!(
        d.contains("Processor: final (stores: [final-store])"),
        "{d}"
    );
}

#[test]
fn every_windowed_store_has_a_changelog() {
    let builder = StreamsBuilder::new();
    let g = builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key();
    g.windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .count_with(Materialized::as_("tumbling"))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("held"));
    g.windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(ms(10)))
        .count_with(Materialized::as_("sliding"));
    g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(10)))
        .count_with(Materialized::as_("sessions"));
    let driver = TopologyTestDriver::with_application_id(builder.build().unwrap(), "app").unwrap();
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    topic.pipe_input("k".into(), 1, 5).unwrap();
    assert_eq!(
        driver.produced_topic_names(),
        [
            "app-held-store-changelog",
            "app-sessions-changelog",
            "app-sliding-changelog",
            "app-sliding-records-changelog",
            "app-tumbling-changelog",
        ]
    );
    // The stores answer queries, with Kafka's windows.
    let tumbling = driver.window_store::<String, i64>("tumbling").unwrap();
    assert_eq!(tumbling.fetch(&"k".into(), 0, 100).unwrap(), [(0, 1)]);
    let sessions = driver.session_store::<String, i64>("sessions").unwrap();
    assert_eq!(
        sessions.fetch(&"k".into()).unwrap(),
        [(windowed("k", 5, 5), 1)]
    );
}

#[test]
fn windowed_stores_expire_what_has_closed_and_keep_what_is_open() {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count_with(Materialized::as_("w"));
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let store = driver.window_store::<String, i64>("w").unwrap();
    topic.pipe_input("k".into(), 1, 1).unwrap();
    topic.pipe_input("k".into(), 1, 14).unwrap();
    // [0, 10) is open until stream time 15: kept, and still updated.
    assert_eq!(store.fetch(&"k".into(), 0, 100).unwrap(), [(0, 1), (10, 1)]);
    topic.pipe_input("k".into(), 1, 9).unwrap();
    assert_eq!(store.fetch(&"k".into(), 0, 100).unwrap(), [(0, 2), (10, 1)]);
    // At 24 it has closed, and the store (retention 15 from its newest
    // window, 20) lets it go.
    topic.pipe_input("k".into(), 1, 24).unwrap();
    assert_eq!(
        store.fetch(&"k".into(), 0, 100).unwrap(),
        [(10, 1), (20, 1)]
    );
    // A record for it now is late: dropped, not a new window.
    topic.pipe_input("k".into(), 1, 2).unwrap();
    assert_eq!(driver.metrics().dropped_late, 1);
    assert_eq!(
        store.fetch(&"k".into(), 0, 100).unwrap(),
        [(10, 1), (20, 1)]
    );
}

#[test]
fn suppress_until_time_limit_emits_each_keys_latest_value_once_per_limit() {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key()
        .reduce(|a, b| a + b)
        .suppress(Suppressed::until_time_limit(
            ms(10),
            BufferConfig::unbounded(),
        ))
        .to_stream()
        .to("out");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let out = driver.output_topic("out", Serdes::string(), Serdes::optional(Serdes::i64()));
    topic.pipe_input("a".into(), 1, 0).unwrap();
    topic.pipe_input("b".into(), 10, 3).unwrap();
    topic.pipe_input("a".into(), 2, 5).unwrap();
    assert!(out.is_empty());
    // a was first held at 0: due at 10, with its latest value.
    topic.pipe_input("c".into(), 100, 10).unwrap();
    let r = out.read_records_to_list().unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].key.as_str(), r[0].value, r[0].timestamp),
        ("a", Some(3), 5)
    );
    // b (due 13) and c (due 20) are released by stream time alone.
    topic.pipe_input("a".into(), 4, 13).unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        [("b".to_owned(), Some(10))]
    );
    topic.pipe_input("z".into(), 0, 40).unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        [("c".to_owned(), Some(100)), ("a".to_owned(), Some(7))]
    );
}

#[test]
fn a_full_suppression_buffer_stops_the_task() {
    let build = |buffer: BufferConfig| {
        let builder = StreamsBuilder::new();
        builder
            .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
            .count()
            .suppress(Suppressed::until_window_closes(buffer))
            .to_stream()
            .to("out");
        TopologyTestDriver::new(builder.build().unwrap()).unwrap()
    };
    let driver = build(BufferConfig::max_records(2));
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    topic.pipe_input("a".into(), 1, 0).unwrap();
    topic.pipe_input("b".into(), 1, 1).unwrap();
    let err = topic.pipe_input("c".into(), 1, 2).unwrap_err().to_string();
    assert!(err.contains("3 keys, over its limit of 2"), "{err}");
    assert!(err.contains("BufferConfig::max_records"), "{err}");
    // Emitting makes room: a window that closed no longer counts.
    let driver = build(BufferConfig::max_records(2));
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    topic.pipe_input("a".into(), 1, 0).unwrap();
    topic.pipe_input("b".into(), 1, 1).unwrap();
    topic.pipe_input("c".into(), 1, 12).unwrap();

    // Each entry: 8 + 17 key bytes, 24 value bytes.
    let driver = build(BufferConfig::max_bytes(60));
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    topic.pipe_input("a".into(), 1, 0).unwrap();
    let err = topic.pipe_input("b".into(), 1, 1).unwrap_err().to_string();
    assert!(err.contains("BufferConfig::max_bytes"), "{err}");
}

#[test]
fn topology_mistakes_are_reported_by_build() {
    let build_err = |f: &dyn Fn(&KGroupedStream<String, i64>)| {
        let builder = StreamsBuilder::new();
        let g = builder
            .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
            .group_by_key();
        f(&g);
        builder.build().unwrap_err().to_string()
    };
    let e = build_err(&|g| {
        g.windowed_by(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(0)))
            .count();
    });
    assert!(e.contains("advance (0 ms) must be at least 1 ms"), "{e}");
    let e = build_err(&|g| {
        g.windowed_by(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(20)))
            .count();
    });
    assert!(e.contains("at most the window size (10 ms)"), "{e}");
    let e = build_err(&|g| {
        g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(0)))
            .count();
    });
    assert!(e.contains("inactivity gap must be at least 1 ms"), "{e}");
    let e = build_err(&|g| {
        g.windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
            .count_with(Materialized::as_("w").with_retention(ms(14)));
    });
    assert!(e.contains("retention of 14 ms is too short"), "{e}");
    let e = build_err(&|g| {
        g.windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(ms(10), ms(5)))
            .count_with(Materialized::as_("w").with_retention(ms(24)));
    });
    assert!(
        e.contains("twice the time difference plus the grace period (25 ms)"),
        "{e}"
    );
    // suppress(until_window_closes) needs a windowed aggregation upstream.
    let e = build_err(&|g| {
        g.windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
            .count()
            .to_stream()
            .group_by_key()
            .reduce(|a, _| a)
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()));
    });
    assert!(
        e.contains("needs the table of a windowed aggregation"),
        "{e}"
    );
    // A longer retention is fine; filters keep the windows.
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count_with(Materialized::as_("w").with_retention(ms(1000)))
        .filter(|_, n| *n > 1)
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()));
    assert!(builder.build().is_ok());
}

#[test]
fn records_without_a_key_are_skipped() {
    let builder = StreamsBuilder::new();
    let g = builder
        .stream(
            "in",
            Consumed::with(Serdes::optional(Serdes::string()), Serdes::i64()),
        )
        .group_by_key();
    g.windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .count()
        .to_stream()
        .to("t");
    g.windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(10)))
        .count()
        .to_stream()
        .to("s");
    g.windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(ms(10)))
        .count()
        .to_stream()
        .to("w");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let topic = driver.input_topic("in", Serdes::optional(Serdes::string()), Serdes::i64());
    topic.pipe_input(None, 1, 5).unwrap();
    topic.pipe_input(Some("k".into()), 1, 5).unwrap();
    assert_eq!(driver.metrics().skipped, 3);
    for t in ["t", "s", "w"] {
        let out = driver.output_topic(
            t,
            windowed_serde(Serdes::optional(Serdes::string())),
            Serdes::optional(Serdes::i64()),
        );
        assert_eq!(out.queue_size(), 1, "{t}");
    }
}

#[test]
fn suppress_emits_when_stream_time_passes_even_without_an_update() {
    // The record that moves stream time past [0, 10)'s close is filtered
    // out before suppress: the window is still emitted, at the commit.
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .count()
        .filter(|_, n| *n >= 2)
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let out = counts(&driver, "out");
    topic.pipe_input("a".into(), 1, 0).unwrap();
    topic.pipe_input("a".into(), 1, 1).unwrap();
    topic.pipe_input("b".into(), 1, 9).unwrap();
    assert!(out.is_empty());
    topic.pipe_input("b".into(), 1, 15).unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        [(windowed("a", 0, 10), Some(2))]
    );
}

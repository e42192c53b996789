//! Sliding windows give Kafka's results: the expected updates (window,
//! value, timestamp) are those of Kafka's own
//! `KStreamSlidingWindowAggregateTest`, or worked by hand with its rules.

use super::{counts, ms, windowed};
use embedlog::streams::{
    BufferConfig, Consumed, Serdes, SlidingWindows, StreamsBuilder, Suppressed, TopologyTestDriver,
    Windowed, windowed_serde,
};

/// Kafka's `MockAggregator.TOSTRING_ADDER` from `MockInitializer.STRING_INIT`.
fn sliding_strings(
    diff: i64,
    grace: i64,
    input: &[(&str, &str, i64)],
) -> (Vec<(Windowed<String>, String, i64)>, u64) {
    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key()
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            ms(diff),
            ms(grace),
        ))
        .aggregate(|| "0".to_owned(), |_, v, a: String| format!("{a}+{v}"))
        .to_stream()
        .to("out");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let topic = driver.input_topic("in", Serdes::string(), Serdes::string());
    for (k, v, t) in input {
        topic
            .pipe_input((*k).to_owned(), (*v).to_owned(), *t)
            .unwrap();
    }
    let out = driver.output_topic(
        "out",
        windowed_serde(Serdes::string()),
        Serdes::optional(Serdes::string()),
    );
    let mut got: Vec<_> = out
        .read_records_to_list()
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value.unwrap_or_default(), r.timestamp))
        .collect();
    // As Kafka's tests compare: by key and window start, each window's
    // updates in the order they came.
    got.sort_by(|a, b| (&a.0.key, a.0.window.start).cmp(&(&b.0.key, b.0.window.start)));
    (got, driver.metrics().dropped_late)
}

fn kafka(rows: &[(&str, i64, i64, &str, i64)]) -> Vec<(Windowed<String>, String, i64)> {
    rows.iter()
        .map(|(k, s, e, v, t)| (windowed(k, *s, *e), (*v).to_owned(), *t))
        .collect()
}

#[test]
fn sliding_windows_give_kafkas_small_input_results() {
    // KStreamSlidingWindowAggregateTest.testAggregateSmallInput.
    let input = [
        ("A", "1", 10),
        ("A", "2", 10),
        ("A", "3", 14),
        ("A", "4", 15),
        ("A", "5", 20),
        ("A", "6", 22),
        ("A", "7", 30),
    ];
    let (got, dropped) = sliding_strings(10, 5, &input);
    let want = kafka(&[
        ("A", 0, 10, "0+1", 10),
        ("A", 0, 10, "0+1+2", 10),
        ("A", 4, 14, "0+1+2+3", 14),
        ("A", 5, 15, "0+1+2+3+4", 15),
        ("A", 10, 20, "0+1+2+3+4+5", 20),
        ("A", 11, 21, "0+3", 14),
        ("A", 11, 21, "0+3+4", 15),
        ("A", 11, 21, "0+3+4+5", 20),
        ("A", 12, 22, "0+3+4+5+6", 22),
        ("A", 15, 25, "0+4", 15),
        ("A", 15, 25, "0+4+5", 20),
        ("A", 15, 25, "0+4+5+6", 22),
        ("A", 16, 26, "0+5", 20),
        ("A", 16, 26, "0+5+6", 22),
        ("A", 20, 30, "0+5+6+7", 30),
        ("A", 21, 31, "0+6", 22),
        ("A", 21, 31, "0+6+7", 30),
        ("A", 23, 33, "0+7", 30),
    ]);
    assert_eq!(got, want);
    assert_eq!(dropped, 0);
}

#[test]
fn sliding_windows_give_kafkas_results_for_out_of_order_input() {
    // KStreamSlidingWindowAggregateTest.testAggregateLargeInput (grace 50):
    // aggregates fold in arrival order, whatever the record times.
    let input = [
        ("A", "1", 10),
        ("A", "2", 20),
        ("A", "3", 22),
        ("A", "4", 15),
        ("B", "1", 12),
        ("B", "2", 13),
        ("B", "3", 18),
        ("B", "4", 19),
        ("B", "5", 25),
        ("B", "6", 14),
        ("C", "1", 11),
        ("C", "2", 15),
        ("C", "3", 16),
        ("C", "4", 21),
        ("C", "5", 23),
        ("D", "4", 11),
        ("D", "2", 12),
        ("D", "3", 29),
        ("D", "5", 16),
    ];
    let (got, dropped) = sliding_strings(10, 50, &input);
    let want = kafka(&[
        ("A", 0, 10, "0+1", 10),
        ("A", 5, 15, "0+1+4", 15),
        ("A", 10, 20, "0+1+2", 20),
        ("A", 10, 20, "0+1+2+4", 20),
        ("A", 11, 21, "0+2", 20),
        ("A", 11, 21, "0+2+4", 20),
        ("A", 12, 22, "0+2+3", 22),
        ("A", 12, 22, "0+2+3+4", 22),
        ("A", 16, 26, "0+2+3", 22),
        ("A", 21, 31, "0+3", 22),
        ("B", 2, 12, "0+1", 12),
        ("B", 3, 13, "0+1+2", 13),
        ("B", 4, 14, "0+1+2+6", 14),
        ("B", 8, 18, "0+1+2+3", 18),
        ("B", 8, 18, "0+1+2+3+6", 18),
        ("B", 9, 19, "0+1+2+3+4", 19),
        ("B", 9, 19, "0+1+2+3+4+6", 19),
        ("B", 13, 23, "0+2", 13),
        ("B", 13, 23, "0+2+3", 18),
        ("B", 13, 23, "0+2+3+4", 19),
        ("B", 13, 23, "0+2+3+4+6", 19),
        ("B", 14, 24, "0+3", 18),
        ("B", 14, 24, "0+3+4", 19),
        ("B", 14, 24, "0+3+4+6", 19),
        ("B", 15, 25, "0+3+4+5", 25),
        ("B", 19, 29, "0+4", 19),
        ("B", 19, 29, "0+4+5", 25),
        ("B", 20, 30, "0+5", 25),
        ("C", 1, 11, "0+1", 11),
        ("C", 5, 15, "0+1+2", 15),
        ("C", 6, 16, "0+1+2+3", 16),
        ("C", 11, 21, "0+1+2+3+4", 21),
        ("C", 12, 22, "0+2", 15),
        ("C", 12, 22, "0+2+3", 16),
        ("C", 12, 22, "0+2+3+4", 21),
        ("C", 13, 23, "0+2+3+4+5", 23),
        ("C", 16, 26, "0+3", 16),
        ("C", 16, 26, "0+3+4", 21),
        ("C", 16, 26, "0+3+4+5", 23),
        ("C", 17, 27, "0+4", 21),
        ("C", 17, 27, "0+4+5", 23),
        ("C", 22, 32, "0+5", 23),
        ("D", 1, 11, "0+4", 11),
        ("D", 2, 12, "0+4+2", 12),
        ("D", 6, 16, "0+4+2+5", 16),
        ("D", 12, 22, "0+2", 12),
        ("D", 12, 22, "0+2+5", 16),
        ("D", 13, 23, "0+5", 16),
        ("D", 19, 29, "0+3", 29),
    ]);
    assert_eq!(got, want);
    assert_eq!(dropped, 0);
}

#[test]
fn sliding_windows_put_early_records_in_the_first_window() {
    // KStreamSlidingWindowAggregateTest.testEarlyNoGracePeriodSmallInput:
    // records before the time difference share [0, 50].
    let input = [
        ("A", "1", 0),
        ("A", "2", 5),
        ("A", "3", 6),
        ("A", "4", 3),
        ("A", "5", 13),
        ("A", "6", 10),
        ("A", "6", 70),
    ];
    let (got, dropped) = sliding_strings(50, 0, &input);
    let want = kafka(&[
        ("A", 0, 50, "0+1", 0),
        ("A", 0, 50, "0+1+2", 5),
        ("A", 0, 50, "0+1+2+3", 6),
        ("A", 0, 50, "0+1+2+3+4", 6),
        ("A", 0, 50, "0+1+2+3+4+5", 13),
        ("A", 0, 50, "0+1+2+3+4+5+6", 13),
        ("A", 1, 51, "0+2", 5),
        ("A", 1, 51, "0+2+3", 6),
        ("A", 1, 51, "0+2+3+4", 6),
        ("A", 1, 51, "0+2+3+4+5", 13),
        ("A", 1, 51, "0+2+3+4+5+6", 13),
        ("A", 4, 54, "0+2+3", 6),
        ("A", 4, 54, "0+2+3+5", 13),
        ("A", 4, 54, "0+2+3+5+6", 13),
        ("A", 6, 56, "0+3", 6),
        ("A", 6, 56, "0+3+5", 13),
        ("A", 6, 56, "0+3+5+6", 13),
        ("A", 7, 57, "0+5", 13),
        ("A", 7, 57, "0+5+6", 13),
        ("A", 11, 61, "0+5", 13),
        ("A", 20, 70, "0+6", 70),
    ]);
    assert_eq!(got, want);
    assert_eq!(dropped, 0);
}

#[test]
fn sliding_windows_drop_late_records_per_closed_window() {
    // Worked by hand with Kafka's rules (difference 10, no grace): at
    // stream time 40, a record at 25 is late for all its windows (dropped
    // once); one at 30 is late for its left window [20, 30] and for 20's
    // right window [21, 31] (two drops) but updates [30, 40] and makes its
    // own right window [31, 41].
    let input = [
        ("A", "1", 20),
        ("A", "2", 40),
        ("A", "3", 25),
        ("A", "4", 30),
    ];
    let (got, dropped) = sliding_strings(10, 0, &input);
    let want = kafka(&[
        ("A", 10, 20, "0+1", 20),
        ("A", 30, 40, "0+2", 40),
        ("A", 30, 40, "0+2+4", 40),
        ("A", 31, 41, "0+2", 40),
    ]);
    assert_eq!(got, want);
    assert_eq!(dropped, 3);
}

#[test]
fn sliding_windows_count_reduce_and_suppress() {
    let builder = StreamsBuilder::new();
    let g = builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key();
    let w = SlidingWindows::of_time_difference_with_no_grace(ms(10));
    g.windowed_by_sliding(w).count().to_stream().to("counts");
    g.windowed_by_sliding(w)
        .reduce(|a, b| a + b)
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to("sums");
    let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let sums = counts(&driver, "sums");
    topic.pipe_input("k".into(), 1, 10).unwrap();
    topic.pipe_input("k".into(), 2, 15).unwrap();
    // [0, 10] holds 10 only; sliding windows include their end, so it
    // closes when stream time passes 10 (grace 0): at 11.
    assert_eq!(
        sums.read_key_values_to_list().unwrap(),
        [(windowed("k", 0, 10), Some(1))]
    );
    topic.pipe_input("k".into(), 4, 26).unwrap();
    assert_eq!(
        sums.read_key_values_to_list().unwrap(),
        [
            (windowed("k", 5, 15), Some(3)),
            (windowed("k", 11, 21), Some(2)),
        ]
    );
    let all = counts(&driver, "counts").read_key_values_to_map().unwrap();
    assert_eq!(all[&windowed("k", 0, 10)], Some(1));
    assert_eq!(all[&windowed("k", 5, 15)], Some(2));
    assert_eq!(all[&windowed("k", 11, 21)], Some(1));
    assert_eq!(all[&windowed("k", 16, 26)], Some(1));
}

//! Windowed aggregations (tumbling, hopping, session and sliding windows)
//! and `suppress` give Kafka's results: every update, every drop of a late
//! record, and each window's final result exactly once when it closes,
//! checked against a plainly written model for random out-of-order input
//! and against Kafka's own results for sliding windows.

use embedlog::streams::{
    BufferConfig, Consumed, DeserializationErrors, KGroupedStream, Materialized, Serdes,
    SessionWindows, StreamsBuilder, Suppressed, TestOutputTopic, TimeWindows, TopologyTestDriver,
    Window, Windowed, windowed_serde,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

mod examples;
mod sliding;

const KEYS: [&str; 3] = ["a", "b", "c"];

fn ms(n: i64) -> Duration {
    Duration::from_millis(n.unsigned_abs())
}

fn windowed(key: &str, start: i64, end: i64) -> Windowed<String> {
    Windowed {
        key: key.to_owned(),
        window: Window { start, end },
    }
}

/// `(key index, value, timestamp)`: timestamps drift up by 4 per record
/// with up to 40 ms of disorder, so some records come after their windows
/// closed.
fn input() -> impl Strategy<Value = Vec<(usize, i64, i64)>> {
    prop::collection::vec((0..KEYS.len(), 1..10i64, -40..12i64), 1..50).prop_map(|rs| {
        rs.into_iter()
            .enumerate()
            .map(|(i, (k, v, jitter))| (k, v, (4 * i as i64 + jitter).max(0)))
            .collect()
    })
}

fn cases() -> u32 {
    std::env::var("EMBEDLOG_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// A topology reading `in` and grouping it by key, its grouped stream
/// handed to `f`.
fn grouped(f: impl FnOnce(&KGroupedStream<String, i64>)) -> TopologyTestDriver {
    grouped_cached(false, f)
}

/// As `grouped`, with a record cache if `cache` (updates are then held
/// back until the commit after each record).
fn grouped_cached(cache: bool, f: impl FnOnce(&KGroupedStream<String, i64>)) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    let g = builder
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key();
    f(&g);
    let cache_bytes = if cache { 1 << 20 } else { 0 };
    TopologyTestDriver::with_config(
        builder.build().unwrap(),
        "topology-test-driver",
        cache_bytes,
        DeserializationErrors::Fail,
    )
    .unwrap()
}

fn counts(
    driver: &TopologyTestDriver,
    topic: &str,
) -> TestOutputTopic<Windowed<String>, Option<i64>> {
    driver.output_topic(
        topic,
        windowed_serde(Serdes::string()),
        Serdes::optional(Serdes::i64()),
    )
}

fn lists(
    driver: &TopologyTestDriver,
    topic: &str,
) -> TestOutputTopic<Windowed<String>, Option<Vec<i64>>> {
    driver.output_topic(
        topic,
        windowed_serde(Serdes::string()),
        Serdes::optional(Serdes::json::<Vec<i64>>()),
    )
}

/// Kafka's time windows, written out: window starts are multiples of the
/// advance, windows hold `[start, start + size)`, and a window takes a
/// record while `end + grace > stream time`.
struct TimeModel {
    size: i64,
    advance: i64,
    grace: i64,
    stream_time: i64,
    /// (key, start) → the values in arrival order.
    windows: BTreeMap<(usize, i64), Vec<i64>>,
    dropped: u64,
    emitted: BTreeSet<(usize, i64)>,
}

impl TimeModel {
    fn new(size: i64, advance: i64, grace: i64) -> Self {
        TimeModel {
            size,
            advance,
            grace,
            stream_time: i64::MIN,
            windows: BTreeMap::new(),
            dropped: 0,
            emitted: BTreeSet::new(),
        }
    }

    /// The updates one record makes: `(window, values so far)`.
    fn record(&mut self, k: usize, v: i64, t: i64) -> Vec<(Windowed<String>, Vec<i64>)> {
        self.stream_time = self.stream_time.max(t);
        let mut out = Vec::new();
        let mut start = 0;
        while start <= t {
            let end = start + self.size;
            if t < end {
                if end + self.grace <= self.stream_time {
                    self.dropped += 1;
                } else {
                    let values = self.windows.entry((k, start)).or_default();
                    values.push(v);
                    out.push((windowed(KEYS[k], start, end), values.clone()));
                }
            }
            start += self.advance;
        }
        out
    }

    /// The windows that have closed and were not emitted yet, in the order
    /// of their close time, key and start; marks them emitted.
    fn newly_closed(&mut self) -> Vec<(Windowed<String>, Vec<i64>)> {
        let mut due: Vec<(i64, usize, i64)> = self
            .windows
            .keys()
            .filter(|w| !self.emitted.contains(w))
            .map(|&(k, start)| (start + self.size + self.grace, k, start))
            .filter(|(close, _, _)| *close <= self.stream_time)
            .collect();
        due.sort();
        due.into_iter()
            .map(|(_, k, start)| {
                self.emitted.insert((k, start));
                (
                    windowed(KEYS[k], start, start + self.size),
                    self.windows[&(k, start)].clone(),
                )
            })
            .collect()
    }
}

fn time_windows(size: i64, advance: i64, grace: i64) -> TimeWindows {
    TimeWindows::of_size_and_grace(ms(size), ms(grace)).advance_by(ms(advance))
}

fn check_time_windows(
    size: i64,
    advance: i64,
    grace: i64,
    input: &[(usize, i64, i64)],
) -> Result<(), TestCaseError> {
    let w = time_windows(size, advance, grace);
    let driver = grouped(|g| {
        g.windowed_by(w).count().to_stream().to("counts");
        // A long retention: what closed stays in the store, and the rules
        // alone must keep it from changing.
        g.windowed_by(w)
            .aggregate_with(
                Vec::new,
                |_, v, mut a: Vec<i64>| {
                    a.push(v);
                    a
                },
                Materialized::default().with_retention(ms(100_000)),
            )
            .to_stream()
            .to("lists");
    });
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let mut model = TimeModel::new(size, advance, grace);
    let mut want_counts = Vec::new();
    let mut want_lists = Vec::new();
    for &(k, v, t) in input {
        topic.pipe_input(KEYS[k].to_owned(), v, t).unwrap();
        for (w, values) in model.record(k, v, t) {
            want_counts.push((w.clone(), Some(values.len() as i64)));
            want_lists.push((w, Some(values)));
        }
    }
    prop_assert_eq!(
        counts(&driver, "counts").read_key_values_to_list().unwrap(),
        want_counts
    );
    prop_assert_eq!(
        lists(&driver, "lists").read_key_values_to_list().unwrap(),
        want_lists
    );
    // Both aggregations drop each late (record, window).
    prop_assert_eq!(driver.metrics().dropped_late, 2 * model.dropped);
    Ok(())
}

fn check_time_windows_suppressed(
    size: i64,
    advance: i64,
    grace: i64,
    cache: bool,
    input: &[(usize, i64, i64)],
) -> Result<(), TestCaseError> {
    let w = time_windows(size, advance, grace);
    let driver = grouped_cached(cache, |g| {
        g.windowed_by(w)
            .count()
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
            .to_stream()
            .to("final");
    });
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let out = counts(&driver, "final");
    let mut model = TimeModel::new(size, advance, grace);
    for (i, &(k, v, t)) in input.iter().enumerate() {
        topic.pipe_input(KEYS[k].to_owned(), v, t).unwrap();
        model.record(k, v, t);
        let want: Vec<_> = model
            .newly_closed()
            .into_iter()
            .map(|(w, values)| (w, Some(values.len() as i64)))
            .collect();
        prop_assert_eq!(
            out.read_key_values_to_list().unwrap(),
            want,
            "after record {}",
            i
        );
    }
    prop_assert_eq!(driver.metrics().dropped_late, model.dropped);
    Ok(())
}

/// Kafka's sessions, written out (with this crate's rule that a closed
/// session is final): a record joins the open sessions of its key that
/// end at most `gap` before it or start at most `gap` after it.
struct SessionModel {
    gap: i64,
    grace: i64,
    stream_time: i64,
    /// key → (start, end) → values, in merge order.
    sessions: BTreeMap<usize, BTreeMap<(i64, i64), Vec<i64>>>,
    dropped: u64,
    emitted: BTreeSet<(usize, i64, i64)>,
}

impl SessionModel {
    fn new(gap: i64, grace: i64) -> Self {
        SessionModel {
            gap,
            grace,
            stream_time: i64::MIN,
            sessions: BTreeMap::new(),
            dropped: 0,
            emitted: BTreeSet::new(),
        }
    }

    fn closed(&self, end: i64) -> bool {
        end + self.gap + self.grace < self.stream_time
    }

    /// The updates one record makes: `(session, Some(values))`, or `None`
    /// for a session merged away.
    fn record(&mut self, k: usize, v: i64, t: i64) -> Vec<(Windowed<String>, Option<Vec<i64>>)> {
        self.stream_time = self.stream_time.max(t);
        let mut found: Vec<((i64, i64), Vec<i64>)> = self
            .sessions
            .get(&k)
            .into_iter()
            .flatten()
            .filter(|((start, end), _)| {
                *end >= t - self.gap && *start <= t + self.gap && !self.closed(*end)
            })
            .map(|(w, vs)| (*w, vs.clone()))
            .collect();
        // The store finds them by end, then start.
        found.sort_by_key(|((start, end), _)| (*end, *start));
        let start = found
            .iter()
            .map(|((s, _), _)| *s)
            .chain([t])
            .min()
            .unwrap_or(t);
        let end = found
            .iter()
            .map(|((_, e), _)| *e)
            .chain([t])
            .max()
            .unwrap_or(t);
        if self.closed(end) {
            self.dropped += 1;
            return Vec::new();
        }
        let mut merged: Vec<i64> = Vec::new();
        let mut out = Vec::new();
        let sessions = self.sessions.entry(k).or_default();
        for (w, vs) in &found {
            merged.extend(vs);
            if *w != (start, end) {
                sessions.remove(w);
                out.push((windowed(KEYS[k], w.0, w.1), None));
            }
        }
        merged.push(v);
        sessions.insert((start, end), merged.clone());
        out.push((windowed(KEYS[k], start, end), Some(merged)));
        out
    }

    fn newly_closed(&mut self) -> Vec<(Windowed<String>, Vec<i64>)> {
        let mut due = Vec::new();
        for (&k, sessions) in &self.sessions {
            for (&(start, end), values) in sessions {
                let close = end + self.gap + self.grace + 1;
                if close <= self.stream_time && !self.emitted.contains(&(k, start, end)) {
                    due.push((close, k, start, end, values.clone()));
                }
            }
        }
        due.sort();
        due.into_iter()
            .map(|(_, k, start, end, values)| {
                self.emitted.insert((k, start, end));
                (windowed(KEYS[k], start, end), values)
            })
            .collect()
    }
}

fn check_sessions(gap: i64, grace: i64, input: &[(usize, i64, i64)]) -> Result<(), TestCaseError> {
    let w = SessionWindows::of_inactivity_gap_and_grace(ms(gap), ms(grace));
    let driver = grouped(|g| {
        g.windowed_by_session(w).count().to_stream().to("counts");
        // A long retention: closed sessions stay in the store, and must
        // neither merge nor change.
        g.windowed_by_session(w)
            .aggregate_with(
                Vec::new,
                |_, v, mut a: Vec<i64>| {
                    a.push(v);
                    a
                },
                |_, mut a, b| {
                    a.extend(b);
                    a
                },
                Materialized::default().with_retention(ms(100_000)),
            )
            .to_stream()
            .to("lists");
    });
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let mut model = SessionModel::new(gap, grace);
    let mut want_counts = Vec::new();
    let mut want_lists = Vec::new();
    for &(k, v, t) in input {
        topic.pipe_input(KEYS[k].to_owned(), v, t).unwrap();
        for (w, values) in model.record(k, v, t) {
            want_counts.push((w.clone(), values.as_ref().map(|vs| vs.len() as i64)));
            want_lists.push((w, values));
        }
    }
    prop_assert_eq!(
        counts(&driver, "counts").read_key_values_to_list().unwrap(),
        want_counts
    );
    prop_assert_eq!(
        lists(&driver, "lists").read_key_values_to_list().unwrap(),
        want_lists
    );
    prop_assert_eq!(driver.metrics().dropped_late, 2 * model.dropped);
    Ok(())
}

fn check_sessions_suppressed(
    gap: i64,
    grace: i64,
    cache: bool,
    input: &[(usize, i64, i64)],
) -> Result<(), TestCaseError> {
    let w = SessionWindows::of_inactivity_gap_and_grace(ms(gap), ms(grace));
    let driver = grouped_cached(cache, |g| {
        g.windowed_by_session(w)
            .aggregate(
                Vec::new,
                |_, v, mut a: Vec<i64>| {
                    a.push(v);
                    a
                },
                |_, mut a, b| {
                    a.extend(b);
                    a
                },
            )
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
            .to_stream()
            .to("final");
    });
    let topic = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let out = lists(&driver, "final");
    let mut model = SessionModel::new(gap, grace);
    for (i, &(k, v, t)) in input.iter().enumerate() {
        topic.pipe_input(KEYS[k].to_owned(), v, t).unwrap();
        model.record(k, v, t);
        let want: Vec<_> = model
            .newly_closed()
            .into_iter()
            .map(|(w, values)| (w, Some(values)))
            .collect();
        prop_assert_eq!(
            out.read_key_values_to_list().unwrap(),
            want,
            "after record {}",
            i
        );
    }
    prop_assert_eq!(driver.metrics().dropped_late, model.dropped);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn tumbling_windows_match_the_model(
        size in 1..30i64,
        grace in 0..20i64,
        input in input(),
    ) {
        check_time_windows(size, size, grace, &input)?;
    }

    #[test]
    fn hopping_windows_match_the_model(
        (size, advance) in (2..30i64).prop_flat_map(|s| (Just(s), 1..=s)),
        grace in 0..20i64,
        input in input(),
    ) {
        check_time_windows(size, advance, grace, &input)?;
    }

    #[test]
    fn suppressed_time_windows_emit_each_final_result_once_at_close(
        (size, advance) in (2..30i64).prop_flat_map(|s| (Just(s), prop_oneof![Just(s), 1..=s])),
        grace in 0..20i64,
        cache in any::<bool>(),
        input in input(),
    ) {
        check_time_windows_suppressed(size, advance, grace, cache, &input)?;
    }

    #[test]
    fn session_windows_match_the_model(
        gap in 1..15i64,
        grace in 0..20i64,
        input in input(),
    ) {
        check_sessions(gap, grace, &input)?;
    }

    #[test]
    fn suppressed_sessions_emit_each_final_session_once_at_close(
        gap in 1..15i64,
        grace in 0..20i64,
        cache in any::<bool>(),
        input in input(),
    ) {
        check_sessions_suppressed(gap, grace, cache, &input)?;
    }
}

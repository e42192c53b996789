//! The stream thread's recovery from a commit the group refuses
//! (`CommitFailed`: a rebalance moved on first), through the fault seam
//! `Shared::refused_commits`.

use super::*;
use crate::streams::{Consumed, Serdes, StreamsBuilder};
use crate::{ProducerConfig, Record, TopicConfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const KEYS: u64 = 5;
const RECORDS: u64 = 300;

/// A broker whose `events` hold `RECORDS` records over `KEYS` keys.
fn events() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let admin = broker.admin();
    admin
        .create_topic("events", TopicConfig::default())
        .unwrap();
    admin
        .create_topic("counts", TopicConfig::default())
        .unwrap();
    let p = broker.producer(ProducerConfig::default());
    for i in 0..RECORDS {
        p.send("events", Record::new("x").key(format!("k{}", i % KEYS)))
            .unwrap();
    }
    p.flush().unwrap();
    (dir, broker)
}

/// Every count of `counts` readable at `isolation`, per key, in order.
fn counts(broker: &Broker, isolation: IsolationLevel) -> BTreeMap<String, Vec<i64>> {
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Earliest)
            .isolation_level(isolation),
    );
    c.assign([("counts", 0)]).unwrap();
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    loop {
        let batch = c.poll(Duration::ZERO).unwrap();
        if batch.is_empty() {
            return out;
        }
        for r in batch {
            let k = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
            let v = i64::from_be_bytes(r.value().unwrap().try_into().unwrap());
            out.entry(k).or_default().push(v);
        }
    }
}

fn run(guarantee: ProcessingGuarantee, refusals: usize) -> (Broker, tempfile::TempDir, Streams) {
    let (dir, broker) = events();
    let builder = StreamsBuilder::new();
    builder
        .stream("events", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key()
        .count()
        .to_stream()
        .to("counts");
    let streams = Streams::new(
        &broker,
        builder.build().unwrap(),
        StreamsConfig::new("refused")
            .processing_guarantee(guarantee)
            .commit_interval(Duration::from_millis(5))
            .poll_timeout(Duration::from_millis(5)),
    )
    .unwrap();
    streams
        .shared
        .refused_commits
        .store(refusals, Ordering::Release);
    streams.start().unwrap();
    (broker, dir, streams)
}

/// Waits (at most a minute) until `done`.
fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn refused_commits_restart_the_tasks_and_exactly_once_outputs_stay_exact() {
    let (broker, _dir, streams) = run(ProcessingGuarantee::ExactlyOnce, 3);
    let per_key = RECORDS / KEYS;
    let want: BTreeMap<String, Vec<i64>> = (0..KEYS)
        .map(|k| (format!("k{k}"), vec![per_key as i64]))
        .collect();
    // With the record cache, each commit forwards the latest count per
    // key; read committed, the last one of each key is the total.
    wait("the committed counts are complete", || {
        let last: BTreeMap<String, Vec<i64>> = counts(&broker, IsolationLevel::ReadCommitted)
            .into_iter()
            .map(|(k, v)| (k, v.last().copied().into_iter().collect()))
            .collect();
        last == want
    });
    assert_eq!(
        streams.shared.refused_commits.load(Ordering::Acquire),
        0,
        "all refusals used"
    );
    assert!(streams.errors().is_empty(), "{:?}", streams.errors());
    assert_eq!(streams.state(), StreamsState::Running);
    // Nothing of the refused work is visible: the committed counts of a
    // key only grow, and never past the total.
    for (k, seen) in counts(&broker, IsolationLevel::ReadCommitted) {
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{k}: {seen:?}");
        assert!(seen.iter().all(|&n| n <= per_key as i64), "{k}: {seen:?}");
    }
    streams.close().unwrap();
}

#[test]
fn refused_commits_restart_the_tasks_at_least_once() {
    let (broker, _dir, streams) = run(ProcessingGuarantee::AtLeastOnce, 3);
    let per_key = RECORDS / KEYS;
    // At least once: redone work may count twice, never less. (The
    // counts are out before the first refusal: wait for all three.)
    wait("every refusal used and every key counted in full", || {
        let c = counts(&broker, IsolationLevel::ReadUncommitted);
        streams.shared.refused_commits.load(Ordering::Acquire) == 0
            && c.len() == KEYS as usize
            && c.values()
                .all(|v| v.last().is_some_and(|&n| n >= per_key as i64))
    });
    assert!(streams.errors().is_empty(), "{:?}", streams.errors());
    assert_eq!(streams.state(), StreamsState::Running);
    streams.close().unwrap();
}

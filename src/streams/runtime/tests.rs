//! The stream thread's recovery from a commit the group refuses
//! (`CommitFailed`: a rebalance moved on first), through the fault seam
//! `Shared::refused_commits`.

use super::*;
use crate::streams::{Consumed, Serdes, StreamsBuilder};
use crate::{ProducerConfig, Record, TopicConfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const KEYS: u64 = 5;
const RECORDS: i64 = 300;

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
    for i in 0..RECORDS as u64 {
        p.send("events", Record::new("x").key(format!("k{}", i % KEYS)))
            .unwrap();
    }
    p.flush().unwrap();
    (dir, broker)
}

/// Reads `counts` at `isolation` (every count per key, in order) until
/// `done` holds of what was read, waiting on the consumer's long poll
/// for new records (at most a minute).
fn read_counts_until(
    broker: &Broker,
    isolation: IsolationLevel,
    mut done: impl FnMut(&BTreeMap<String, Vec<i64>>) -> bool,
) -> BTreeMap<String, Vec<i64>> {
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Earliest)
            .isolation_level(isolation),
    );
    c.assign([("counts", 0)]).unwrap();
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&seen) {
        assert!(Instant::now() < deadline, "not within 60 s: {seen:?}");
        for r in c.poll(Duration::from_millis(100)).unwrap() {
            let k = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
            let v = i64::from_be_bytes(r.value().unwrap().try_into().unwrap());
            seen.entry(k).or_default().push(v);
        }
    }
    seen
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

#[test]
fn refused_commits_restart_the_tasks_and_exactly_once_outputs_stay_exact() {
    let (broker, _dir, streams) = run(ProcessingGuarantee::ExactlyOnce, 3);
    let per_key = RECORDS / KEYS as i64;
    // With the record cache, each commit forwards the latest count per
    // key; read committed, the last one of each key is the total.
    let seen = read_counts_until(&broker, IsolationLevel::ReadCommitted, |seen| {
        seen.len() == KEYS as usize && seen.values().all(|v| v.last() == Some(&per_key))
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
    for (k, counts) in seen {
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{k}: {counts:?}");
        assert!(counts.iter().all(|&n| n <= per_key), "{k}: {counts:?}");
    }
    streams.close().unwrap();
}

#[test]
fn refused_commits_restart_the_tasks_at_least_once() {
    let (broker, _dir, streams) = run(ProcessingGuarantee::AtLeastOnce, 3);
    let per_key = RECORDS / KEYS as i64;
    // At least once: redone work may count twice, never less. (The
    // counts are out before the first refusal: wait for all three.)
    read_counts_until(&broker, IsolationLevel::ReadUncommitted, |seen| {
        streams.shared.refused_commits.load(Ordering::Acquire) == 0
            && seen.len() == KEYS as usize
            && seen
                .values()
                .all(|v| v.last().is_some_and(|&n| n >= per_key))
    });
    assert!(streams.errors().is_empty(), "{:?}", streams.errors());
    assert_eq!(streams.state(), StreamsState::Running);
    streams.close().unwrap();
}

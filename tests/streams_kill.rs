//! Exactly-once Streams under kill -9: a child process runs a counting
//! application (a repartitioning `group_by` and a `count`, plus a 1:1
//! transformation) with `ProcessingGuarantee::ExactlyOnce`; the parent
//! SIGKILLs it at random moments 20 times, then lets a last child finish
//! the input. Read committed, the outputs equal the model exactly: one
//! transformed record per input record, and for each key the counts
//! 1, 2, ..., n in order (a repeated or lost update would break the
//! sequence), so the state restored from the changelog after every kill
//! was exactly the committed one.
//!
//! `EMBEDLOG_STREAMS_KILLS` sets the number of kills (default 20);
//! `EMBEDLOG_STREAMS_SEED` replays a run (the seed is printed).
//!
//! Kept in its own test binary: the parent re-runs this binary
//! (`current_exe`, `--exact child_app`) as the child it kills.

mod common;
use embedlog::streams::{
    Consumed, Materialized, ProcessingGuarantee, Serdes, Streams, StreamsBuilder, StreamsConfig,
};
use embedlog::{Broker, IsolationLevel, ProducerConfig, Record, TopicConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const RECORDS: u64 = 50_000;
const APP: &str = "kill";
const CATEGORIES: u64 = 13;

fn topology() -> embedlog::streams::Topology {
    let builder = StreamsBuilder::new();
    let events = builder.stream("events", Consumed::with(Serdes::string(), Serdes::i64()));
    events.map_values(|v| v * 10).to("tens");
    events
        .group_by(|_, v| format!("c{}", v % CATEGORIES as i64))
        .count_with(Materialized::as_("per-category"))
        .to_stream()
        .to("counts");
    builder.build().unwrap()
}

/// The child: runs the application until the group has committed the
/// whole input, then closes and prints `DONE`.
#[test]
fn child_app() {
    let Some(dir) = std::env::var_os("EMBEDLOG_STREAMS_CHILD_DIR") else {
        return; // only meaningful as the child
    };
    let broker = Broker::open(&dir).unwrap();
    let config = StreamsConfig::new(APP)
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .commit_interval(Duration::from_millis(30))
        .cache_max_bytes(0)
        .max_poll_records(37)
        .poll_timeout(Duration::from_millis(10));
    let streams = Streams::new(&broker, topology(), config).unwrap();
    streams.start().unwrap();
    println!("STARTED");
    // Report progress while processing; when idle, check whether the
    // committed outputs account for the whole input.
    let mut last = 0;
    common::wait_until("the outputs cover the input", || {
        let processed = streams.metrics().processed;
        if processed != last {
            last = processed;
            println!("PROGRESS {processed}");
            return false;
        }
        let tens = common::consume_all(&broker, "tens", IsolationLevel::ReadCommitted).len() as u64;
        let mut counts: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for r in common::consume_all(&broker, "counts", IsolationLevel::ReadCommitted) {
            counts.insert(
                r.key().unwrap().to_vec(),
                i64::from_be_bytes(r.value().unwrap().try_into().unwrap()),
            );
        }
        tens >= RECORDS && counts.values().sum::<i64>() as u64 >= RECORDS
    });
    streams.close().unwrap();
    broker.close().unwrap();
    println!("DONE");
}

#[test]
fn exactly_once_outputs_survive_twenty_kills() {
    let kills: u64 = std::env::var("EMBEDLOG_STREAMS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (mut rng, seed) = common::Rng::from_env("EMBEDLOG_STREAMS_SEED");
    println!("EMBEDLOG_STREAMS_SEED={seed}");
    let dir = common::tempdir();
    {
        let broker = Broker::open(dir.path()).unwrap();
        let admin = broker.admin();
        admin
            .create_topic(
                "events",
                TopicConfig::default().partitions(3).segment_bytes(16 << 10),
            )
            .unwrap();
        admin
            .create_topic("tens", TopicConfig::default().partitions(3))
            .unwrap();
        admin
            .create_topic("counts", TopicConfig::default().partitions(2))
            .unwrap();
        let p = broker.producer(ProducerConfig::default());
        for i in 0..RECORDS {
            p.send(
                "events",
                Record::new((i as i64).to_be_bytes().to_vec()).key(format!("k{}", i % 17)),
            )
            .unwrap();
        }
        p.flush().unwrap();
        broker.close().unwrap();
    }
    let spawn = || {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_app", "--nocapture", "--test-threads", "1"])
            .env("EMBEDLOG_STREAMS_CHILD_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    let mut mid_work = 0;
    for round in 0..kills {
        let mut child = spawn();
        // Kill the application once it has processed a random number of
        // records in this run (its progress lines say how many): a point
        // in the work, not in time. The targets add up to less than the
        // work, so the kills land while it is processing.
        let target = rng.next() % 8_000 + 1;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("STARTED"));
        assert!(started, "round {round}: the child did not start");
        for line in lines.by_ref().map_while(Result::ok) {
            if line.contains("DONE") {
                break;
            }
            let n: u64 = line
                .strip_prefix("PROGRESS ")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if n >= target {
                mid_work += 1;
                break;
            }
        }
        // Killed before its stdout closes: a print cannot fail first.
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lines);
    }
    println!("{mid_work} of {kills} kills while processing");
    let mut child = spawn();
    // Read to the end: a closed pipe would fail the child's last prints.
    let out: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let done = out.iter().any(|l| l.contains("DONE"));
    assert!(
        child.wait().unwrap().success() && done,
        "the last run did not finish"
    );

    let broker = Broker::open(dir.path()).unwrap();
    let written = common::consume_all(&broker, "tens", IsolationLevel::ReadUncommitted).len();
    println!(
        "{written} records in `tens`, of which {RECORDS} committed: the rest is the aborted work of killed runs"
    );
    // One transformed record per input record.
    let mut tens: Vec<i64> = common::consume_all(&broker, "tens", IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|r| i64::from_be_bytes(r.value().unwrap().try_into().unwrap()))
        .collect();
    tens.sort_unstable();
    let want: Vec<i64> = (0..RECORDS as i64).map(|i| i * 10).collect();
    assert_eq!(
        tens.len(),
        want.len(),
        "transformed records: {} for {} inputs",
        tens.len(),
        want.len()
    );
    assert_eq!(tens, want);
    // Each category's counts went out as 1, 2, ..., n.
    let mut counts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in common::consume_all(&broker, "counts", IsolationLevel::ReadCommitted) {
        let k = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
        counts
            .entry(k)
            .or_default()
            .push(i64::from_be_bytes(r.value().unwrap().try_into().unwrap()));
    }
    assert_eq!(counts.len() as u64, CATEGORIES);
    for (k, seq) in &counts {
        let c: u64 = k[1..].parse().unwrap();
        let n = (0..RECORDS).filter(|i| i % CATEGORIES == c).count() as i64;
        assert_eq!(seq, &(1..=n).collect::<Vec<_>>(), "category {k}");
    }
}

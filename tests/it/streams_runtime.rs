//! A Streams application over a broker: stream threads in the
//! application's group process every input record, commit, restore their
//! state from changelogs on restart, answer interactive queries, report
//! their state, and stop on errors as the handler says.

use crate::common::{consume_all, tempdir, wait_until};
use embedlog::streams::{
    Consumed, Materialized, ProcessingGuarantee, Serdes, StreamThreadErrorResponse, Streams,
    StreamsBuilder, StreamsConfig, StreamsState,
};
use embedlog::{Broker, IsolationLevel, ProducerConfig, Record, TopicConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn word_count() -> embedlog::streams::Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream("text", Consumed::with(Serdes::string(), Serdes::string()))
        .flat_map_values(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .to("counts");
    builder.build().unwrap()
}

fn send_lines(broker: &Broker, lines: &[&str]) {
    let p = broker.producer(ProducerConfig::default());
    for (i, l) in lines.iter().enumerate() {
        p.send("text", Record::new(l.to_string()).key(format!("line-{i}")))
            .unwrap();
    }
    p.flush().unwrap();
}

/// The last count of each word in `counts`, read at `isolation`.
fn last_counts(broker: &Broker, isolation: IsolationLevel) -> BTreeMap<String, i64> {
    consume_all(broker, "counts", isolation)
        .into_iter()
        .map(|r| {
            let k = String::from_utf8(r.key().unwrap().to_vec()).unwrap();
            let v = i64::from_be_bytes(r.value().unwrap().try_into().unwrap());
            (k, v)
        })
        .collect()
}

fn setup(partitions: u32) -> (tempfile::TempDir, Broker) {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .admin()
        .create_topic("text", TopicConfig::default().partitions(partitions))
        .unwrap();
    broker
        .admin()
        .create_topic("counts", TopicConfig::default().partitions(partitions))
        .unwrap();
    (dir, broker)
}

fn config(app: &str, guarantee: ProcessingGuarantee) -> StreamsConfig {
    StreamsConfig::new(app)
        .processing_guarantee(guarantee)
        .commit_interval(Duration::from_millis(20))
        .poll_timeout(Duration::from_millis(10))
}

fn run_word_count(guarantee: ProcessingGuarantee, isolation: IsolationLevel) {
    let (_dir, broker) = setup(3);
    send_lines(&broker, &["a b a", "c a", "b"]);
    let streams = Streams::new(
        &broker,
        word_count(),
        config("wc", guarantee).num_stream_threads(2),
    )
    .unwrap();
    let states = Arc::new(Mutex::new(Vec::new()));
    let s = states.clone();
    streams.set_state_listener(move |new, _old| s.lock().unwrap().push(new));
    streams.start().unwrap();
    let want: BTreeMap<String, i64> = [("a".into(), 3), ("b".into(), 2), ("c".into(), 1)].into();
    wait_until("the counts are written", || {
        last_counts(&broker, isolation) == want
    });
    assert!(streams.wait_for_state(StreamsState::Running, Duration::from_secs(60)));
    // Interactive queries see the same counts.
    let store = streams.key_value_store::<String, i64>("counts").unwrap();
    wait_until("the store holds the counts", || {
        store.all().unwrap().into_iter().collect::<BTreeMap<_, _>>() == want
    });
    assert_eq!(store.get(&"a".to_string()).unwrap(), Some(3));
    assert_eq!(
        store
            .range(&"a".to_string(), &"b".to_string())
            .unwrap()
            .len(),
        2
    );
    assert!(streams.metrics().processed >= 3);
    streams.close().unwrap();
    assert_eq!(streams.state(), StreamsState::NotRunning);
    let seen = states.lock().unwrap().clone();
    assert_eq!(seen.first(), Some(&StreamsState::Rebalancing), "{seen:?}");
    assert!(seen.contains(&StreamsState::Running), "{seen:?}");
    assert_eq!(
        &seen[seen.len() - 2..],
        &[StreamsState::PendingShutdown, StreamsState::NotRunning]
    );
    // Internal topics exist, named from the application id.
    let topics = broker.admin().list_topics().unwrap();
    assert!(
        topics.contains(&"wc-counts-changelog".to_string()),
        "{topics:?}"
    );
    assert!(
        topics
            .iter()
            .any(|t| t.starts_with("wc-") && t.ends_with("-repartition")),
        "{topics:?}"
    );
}

#[test]
fn word_count_at_least_once() {
    run_word_count(
        ProcessingGuarantee::AtLeastOnce,
        IsolationLevel::ReadUncommitted,
    );
}

#[test]
fn word_count_exactly_once() {
    run_word_count(
        ProcessingGuarantee::ExactlyOnce,
        IsolationLevel::ReadCommitted,
    );
}

#[test]
fn a_restarted_application_resumes_from_its_commits_with_its_state_restored() {
    for guarantee in [
        ProcessingGuarantee::AtLeastOnce,
        ProcessingGuarantee::ExactlyOnce,
    ] {
        let (_dir, broker) = setup(2);
        send_lines(&broker, &["x y", "x"]);
        // No record cache: every update goes out, so the sequence of
        // counts shows any update lost or repeated.
        let cfg = || config("restart", guarantee).cache_max_bytes(0);
        let streams = Streams::new(&broker, word_count(), cfg()).unwrap();
        streams.start().unwrap();
        let first: BTreeMap<String, i64> = [("x".into(), 2), ("y".into(), 1)].into();
        wait_until("the first counts", || {
            last_counts(&broker, IsolationLevel::ReadCommitted) == first
        });
        streams.close().unwrap();
        send_lines(&broker, &["x z"]);
        // A new instance: the counts continue from the changelog (an
        // in-memory store restarts empty), the input from the commits.
        let streams = Streams::new(&broker, word_count(), cfg()).unwrap();
        streams.start().unwrap();
        let then: BTreeMap<String, i64> =
            [("x".into(), 3), ("y".into(), 1), ("z".into(), 1)].into();
        wait_until("the counts after the restart", || {
            last_counts(&broker, IsolationLevel::ReadCommitted) == then
        });
        streams.close().unwrap();
        // Every update went out once: x counted 1, 2 then 3.
        let xs: Vec<i64> = consume_all(&broker, "counts", IsolationLevel::ReadCommitted)
            .into_iter()
            .filter(|r| r.key() == Some(&b"x"[..]))
            .map(|r| i64::from_be_bytes(r.value().unwrap().try_into().unwrap()))
            .collect();
        assert_eq!(xs, vec![1, 2, 3], "{guarantee:?}");
    }
}

#[test]
fn two_instances_split_the_partitions() {
    let (_dir, broker) = setup(4);
    let lines: Vec<String> = (0..200).map(|i| format!("w{} w{}", i % 7, i % 3)).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    send_lines(&broker, &refs);
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for l in &lines {
        for w in l.split_whitespace() {
            *want.entry(w.to_owned()).or_default() += 1;
        }
    }
    let a = Streams::new(
        &broker,
        word_count(),
        config("split", ProcessingGuarantee::ExactlyOnce),
    )
    .unwrap();
    let b = Streams::new(
        &broker,
        word_count(),
        config("split", ProcessingGuarantee::ExactlyOnce),
    )
    .unwrap();
    a.start().unwrap();
    b.start().unwrap();
    wait_until("all counts", || {
        last_counts(&broker, IsolationLevel::ReadCommitted) == want
    });
    wait_until("both instances hold tasks", || {
        !a.tasks().is_empty() && !b.tasks().is_empty()
    });
    let (ta, tb) = (a.tasks(), b.tasks());
    assert!(ta.iter().all(|t| !tb.contains(t)), "{ta:?} {tb:?}");
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn a_failing_thread_stops_the_client_or_is_replaced_as_the_handler_says() {
    let (_dir, broker) = setup(1);
    let builder = StreamsBuilder::new();
    builder
        .stream("text", Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(|v| v.len() as i64)
        .to("counts");
    let topology = builder.build().unwrap();
    // An undecodable key fails the task (default handling).
    let p = broker.producer(ProducerConfig::default());
    p.send("text", Record::new("ok").key(vec![0xff])).unwrap();
    p.flush().unwrap();
    let streams = Streams::new(
        &broker,
        topology.clone(),
        config("fail", ProcessingGuarantee::AtLeastOnce),
    )
    .unwrap();
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    streams.set_uncaught_error_handler(move |e| {
        assert!(e.to_string().contains("UTF-8"), "{e}");
        let mut n = c.lock().unwrap();
        *n += 1;
        // Replaced once; the replacement fails on the same record.
        if *n == 1 {
            StreamThreadErrorResponse::ReplaceThread
        } else {
            StreamThreadErrorResponse::ShutdownClient
        }
    });
    streams.start().unwrap();
    assert!(
        streams.wait_for_state(StreamsState::PendingError, Duration::from_secs(60))
            || streams.state() == StreamsState::Error
    );
    let err = streams.close().unwrap_err().to_string();
    assert!(err.contains("UTF-8"), "{err}");
    assert_eq!(streams.state(), StreamsState::Error);
    assert_eq!(*calls.lock().unwrap(), 2);
    assert_eq!(streams.errors().len(), 2);
}

#[test]
fn missing_source_topics_and_bad_configs_are_refused_before_start() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let err = Streams::new(&broker, word_count(), StreamsConfig::new("m"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"text\"") && err.contains("create it"),
        "{err}"
    );
    broker
        .admin()
        .create_topic("text", TopicConfig::default())
        .unwrap();
    let err = Streams::new(&broker, word_count(), StreamsConfig::new("bad id!"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("application id"), "{err}");
    let err = Streams::new(
        &broker,
        word_count(),
        StreamsConfig::new("m").num_stream_threads(0),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("num_stream_threads"), "{err}");
    let streams = Streams::new(&broker, word_count(), StreamsConfig::new("m")).unwrap();
    streams.start().unwrap();
    assert!(streams.start().is_err());
    streams.close().unwrap();
}

/// A persistent store resumes its restore from its checkpoint: with the
/// changelog's records deleted, the counts survive the restart only if
/// the store kept them (restoring from the beginning would find nothing).
#[cfg(feature = "streams-persistent")]
#[test]
fn persistent_stores_restore_from_their_checkpoint() {
    for guarantee in [
        ProcessingGuarantee::AtLeastOnce,
        ProcessingGuarantee::ExactlyOnce,
    ] {
        let (dir, broker) = setup(1);
        let topology = || {
            let builder = StreamsBuilder::new();
            builder
                .stream("text", Consumed::with(Serdes::string(), Serdes::string()))
                .group_by_key()
                .count_with(Materialized::as_("counts").persistent())
                .to_stream()
                .to("counts");
            builder.build().unwrap()
        };
        let cfg = || {
            config("persist", guarantee)
                .cache_max_bytes(0)
                .state_dir(dir.path().join("state"))
        };
        let p = broker.producer(ProducerConfig::default());
        for _ in 0..2 {
            p.send("text", Record::new("v").key("x")).unwrap();
        }
        p.flush().unwrap();
        let streams = Streams::new(&broker, topology(), cfg()).unwrap();
        streams.start().unwrap();
        let two: BTreeMap<String, i64> = [("x".into(), 2)].into();
        wait_until("x counted twice", || {
            last_counts(&broker, IsolationLevel::ReadCommitted) == two
        });
        streams.close().unwrap();
        let changelog = "persist-counts-changelog";
        let end = broker
            .admin()
            .list_offsets(changelog, 0, embedlog::OffsetSpec::Latest)
            .unwrap()
            .unwrap();
        broker.admin().delete_records(changelog, 0, end).unwrap();
        p.send("text", Record::new("v").key("x")).unwrap();
        p.flush().unwrap();
        let streams = Streams::new(&broker, topology(), cfg()).unwrap();
        streams.start().unwrap();
        let three: BTreeMap<String, i64> = [("x".into(), 3)].into();
        wait_until("x counted a third time", || {
            last_counts(&broker, IsolationLevel::ReadCommitted) == three
        });
        streams.close().unwrap();
    }
}

/// A task reading two partitions (a stream and the table it joins) takes
/// the records of a poll in timestamp order across them: each click joins
/// the user record that was current at its time, whatever order the
/// partitions come in.
#[test]
fn a_task_takes_its_partitions_records_in_timestamp_order() {
    // Also when a poll takes one record and reads the rest again.
    for max_poll_records in [1000, 1] {
        takes_records_in_timestamp_order(max_poll_records);
    }
}

fn takes_records_in_timestamp_order(max_poll_records: usize) {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    for t in ["users", "clicks", "named-clicks"] {
        broker
            .admin()
            .create_topic(t, TopicConfig::default())
            .unwrap();
    }
    let p = broker.producer(ProducerConfig::default());
    let send = |topic: &str, v: &str, ts: i64| {
        p.send(topic, Record::new(v.to_owned()).key("a").timestamp(ts))
            .unwrap();
    };
    send("users", "old", 1);
    send("users", "new", 10);
    send("clicks", "c1", 5);
    send("clicks", "c2", 20);
    p.flush().unwrap();
    let builder = StreamsBuilder::new();
    let users = builder
        .table(
            "users",
            Consumed::with(Serdes::string(), Serdes::string()),
            Materialized::default(),
        )
        .unwrap();
    builder
        .stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
        .join(&users, |c: &String, u: &String| format!("{c}:{u}"))
        .to("named-clicks");
    let streams = Streams::new(
        &broker,
        builder.build().unwrap(),
        config("order", ProcessingGuarantee::AtLeastOnce).max_poll_records(max_poll_records),
    )
    .unwrap();
    streams.start().unwrap();
    wait_until("both clicks joined", || {
        consume_all(&broker, "named-clicks", IsolationLevel::ReadUncommitted).len() == 2
    });
    streams.close().unwrap();
    let got: Vec<String> = consume_all(&broker, "named-clicks", IsolationLevel::ReadUncommitted)
        .iter()
        .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(
        got,
        ["c1:old", "c2:new"],
        "max_poll_records {max_poll_records}"
    );
}

/// `close` ends the stream threads' polls instead of waiting out the poll
/// timeout (two minutes here).
#[test]
fn close_does_not_wait_out_the_poll_timeout() {
    let (_dir, broker) = setup(1);
    let streams = Streams::new(
        &broker,
        word_count(),
        StreamsConfig::new("idle").poll_timeout(Duration::from_secs(120)),
    )
    .unwrap();
    streams.start().unwrap();
    wait_until("the thread runs", || {
        streams.state() == StreamsState::Running
    });
    let started = std::time::Instant::now();
    streams.close().unwrap();
    // Without the wakeup the close would take the whole two minutes.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(streams.state(), StreamsState::NotRunning);
}

/// What every task committed of a repartition topic is deleted at a
/// commit once the purge interval has passed (Kafka's
/// `repartition.purge.interval.ms`), and not before.
#[test]
fn committed_repartition_records_are_purged_at_the_purge_interval() {
    for (app, every, purged) in [
        ("purge-now", Duration::ZERO, true),
        ("purge-later", Duration::from_secs(3600), false),
    ] {
        let (_dir, broker) = setup(1);
        send_lines(&broker, &["a b a", "c a", "b"]);
        let streams = Streams::new(
            &broker,
            word_count(),
            config(app, ProcessingGuarantee::AtLeastOnce).repartition_purge_interval(every),
        )
        .unwrap();
        streams.start().unwrap();
        let want: BTreeMap<String, i64> =
            [("a".into(), 3), ("b".into(), 2), ("c".into(), 1)].into();
        wait_until("the counts are written", || {
            last_counts(&broker, IsolationLevel::ReadUncommitted) == want
        });
        // The close commits what is left.
        streams.close().unwrap();
        let admin = broker.admin();
        let topic = admin
            .list_topics()
            .unwrap()
            .into_iter()
            .find(|t| t.starts_with(app) && t.ends_with("-repartition"))
            .unwrap();
        let earliest = admin
            .list_offsets(&topic, 0, embedlog::OffsetSpec::Earliest)
            .unwrap();
        let latest = admin
            .list_offsets(&topic, 0, embedlog::OffsetSpec::Latest)
            .unwrap();
        assert_eq!(latest, Some(6), "six words went through {topic}");
        assert_eq!(earliest, Some(if purged { 6 } else { 0 }), "{app}");
    }
}

/// A thread taking one record per poll (the rest of each fetched batch is
/// read again by the next poll) loses and repeats nothing.
#[test]
fn one_record_per_poll_loses_and_repeats_nothing() {
    for guarantee in [
        ProcessingGuarantee::AtLeastOnce,
        ProcessingGuarantee::ExactlyOnce,
    ] {
        let (_dir, broker) = setup(2);
        let lines: Vec<String> = (0..30)
            .map(|i| format!("w{} w{} x", i % 4, i % 7))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        send_lines(&broker, &refs);
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for l in &lines {
            for w in l.split_whitespace() {
                *want.entry(w.to_string()).or_default() += 1;
            }
        }
        let streams = Streams::new(
            &broker,
            word_count(),
            config("one-by-one", guarantee).max_poll_records(1),
        )
        .unwrap();
        streams.start().unwrap();
        wait_until("the counts are written", || {
            last_counts(&broker, IsolationLevel::ReadCommitted) == want
        });
        streams.close().unwrap();
        // 30 lines, then each of their 90 words from the repartition topic.
        assert_eq!(streams.metrics().processed, 120, "{guarantee:?}");
        assert_eq!(last_counts(&broker, IsolationLevel::ReadCommitted), want);
    }
}

/// Under exactly-once, a thread taking one record per poll over input
/// with an aborted transaction between committed ones counts the
/// committed records only, each once.
#[test]
fn one_record_per_poll_skips_aborted_input_exactly_once() {
    let (_dir, broker) = setup(1);
    let writer = broker.producer(ProducerConfig::default().transactional_id("writer"));
    writer.init_transactions().unwrap();
    for (round, commit) in [(0, true), (1, false), (2, true)] {
        writer.begin_transaction().unwrap();
        for i in 0..10 {
            let line = if commit { "kept" } else { "aborted" };
            writer
                .send("text", Record::new(line).key(format!("{round}-{i}")))
                .unwrap();
        }
        if commit {
            writer.commit_transaction().unwrap();
        } else {
            writer.abort_transaction().unwrap();
        }
    }
    let streams = Streams::new(
        &broker,
        word_count(),
        config("aborted-input", ProcessingGuarantee::ExactlyOnce).max_poll_records(1),
    )
    .unwrap();
    streams.start().unwrap();
    let want: BTreeMap<String, i64> = [("kept".into(), 20)].into();
    wait_until("the committed lines are counted", || {
        last_counts(&broker, IsolationLevel::ReadCommitted) == want
    });
    streams.close().unwrap();
    assert_eq!(last_counts(&broker, IsolationLevel::ReadCommitted), want);
    // 20 lines, then their 20 words from the repartition topic.
    assert_eq!(streams.metrics().processed, 40);
}

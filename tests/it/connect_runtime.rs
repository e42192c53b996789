//! The Connect runtime keeps its promises: a source resumes from its stored
//! offsets after a failure or a restart (exactly once with transactions), a
//! sink gets every record at least once and resumes after its last commit,
//! failed tasks are restarted, and records a converter or transform cannot
//! handle are skipped or dead-lettered as configured.

use crate::common::{consume_all, tempdir, wait_until};
use bytes::Bytes;
use embedlog::connect::{
    Connect, ConnectConfig, ConnectorConfig, Error, Map, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, SourceConnector, SourceGuarantee, SourceRecord, SourceTask, SourceTaskContext,
    TaskState, Value,
};
use embedlog::{
    Broker, ConsumerConfig, IsolationLevel, Offset, OffsetReset, Record, TopicConfig,
    TopicPartition,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

// ------------------------------------------------------------ a test source

/// What a [`Numbers`] source does, shared with the test.
#[derive(Default)]
struct Script {
    /// Emits 0..limit.
    limit: u64,
    /// Numbers per poll.
    batch: u64,
    /// Starts that fail before succeeding.
    failing_starts: AtomicU64,
    /// A poll that reaches this number fails once (before emitting it).
    fail_poll_at: Mutex<Option<u64>>,
    /// This number is emitted once as a map, which the bytes converter
    /// cannot write.
    poison_at: Mutex<Option<u64>>,
    /// A poll that reaches this number panics once.
    panic_at: Mutex<Option<u64>>,
    /// The number each started instance resumed from.
    starts: Mutex<Vec<u64>>,
    /// Calls of `commit`.
    commits: AtomicU64,
}

fn partition() -> Map {
    [("source".to_string(), Value::from("numbers"))].into()
}

struct Numbers(Arc<Script>);

impl SourceConnector for Numbers {
    fn validate(&self, config: &ConnectorConfig) -> embedlog::connect::Result<()> {
        config.required("topic").map(|_| ())
    }
    fn task(&self) -> Box<dyn SourceTask> {
        Box::new(NumbersTask {
            script: self.0.clone(),
            next: 0,
            topic: String::new(),
        })
    }
}

struct NumbersTask {
    script: Arc<Script>,
    next: u64,
    topic: String,
}

impl SourceTask for NumbersTask {
    fn start(&mut self, context: &SourceTaskContext) -> embedlog::connect::Result<()> {
        if self
            .script
            .failing_starts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::External {
                system: "numbers",
                reason: "not reachable yet".into(),
                source: None,
            });
        }
        self.topic = context.config.required("topic")?.to_string();
        self.next = context
            .offsets
            .offset(&partition())
            .and_then(|o| o.get("next"))
            .and_then(Value::as_i64)
            .map_or(0, |n| n as u64);
        self.script.starts.lock().push(self.next);
        Ok(())
    }

    fn poll(&mut self) -> embedlog::connect::Result<Vec<SourceRecord>> {
        let end = (self.next + self.script.batch).min(self.script.limit);
        if self.next == end {
            // Nothing more: wait a little, as a real source's poll does.
            std::thread::sleep(Duration::from_millis(1));
            return Ok(Vec::new());
        }
        {
            let mut fail = self.script.fail_poll_at.lock();
            if fail.is_some_and(|at| (self.next..end).contains(&at)) {
                *fail = None;
                return Err(Error::External {
                    system: "numbers",
                    reason: "lost the connection".into(),
                    source: None,
                });
            }
        }
        {
            let mut panic = self.script.panic_at.lock();
            if panic.is_some_and(|at| (self.next..end).contains(&at)) {
                *panic = None;
                drop(panic);
                panic!("a bug in the connector");
            }
        }
        let mut out = Vec::new();
        for n in self.next..end {
            let poison = {
                let mut p = self.script.poison_at.lock();
                let hit = *p == Some(n);
                if hit {
                    *p = None;
                }
                hit
            };
            let value = if poison {
                Value::map([("n", Value::Int(n as i64))])
            } else {
                Value::from(n.to_string())
            };
            out.push(
                SourceRecord::new(&self.topic, value)
                    .key(Value::from((n % 7).to_string()))
                    .source_partition(partition())
                    .source_offset([("next", Value::Int(n as i64 + 1))]),
            );
        }
        self.next = end;
        Ok(out)
    }

    fn commit(&mut self) -> embedlog::connect::Result<()> {
        self.script.commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn connect_with(broker: &Broker, config: ConnectConfig, script: &Arc<Script>) -> Connect {
    let connect = Connect::with_config(
        broker,
        config
            .offset_flush_interval(Duration::from_millis(10))
            .restart_backoff(Duration::from_millis(1), Duration::from_millis(20)),
    )
    .unwrap();
    let s = script.clone();
    connect.register_source("Numbers", move || Box::new(Numbers(s.clone())));
    connect
}

fn numbers_config() -> ConnectorConfig {
    ConnectorConfig::new("numbers", "Numbers").set("topic", "numbers")
}

/// Every value in `topic`, in offset order per partition.
fn values(broker: &Broker, topic: &str, isolation: IsolationLevel) -> Vec<u64> {
    consume_all(broker, topic, isolation)
        .into_iter()
        .map(|r| {
            let v = r.value().unwrap();
            std::str::from_utf8(v).unwrap().parse().unwrap()
        })
        .collect()
}

fn end_offset(broker: &Broker, topic: &str) -> u64 {
    broker
        .topic(topic)
        .map_or(0, |t| t.partition(0).map_or(0, |p| p.end_offset()))
}

/// The `next` the numbers source stored last, as a new instance would
/// read it.
fn stored_next(broker: &Broker) -> Option<u64> {
    let stored = consume_all(broker, "connect-offsets", IsolationLevel::ReadCommitted);
    let last = stored.last()?;
    assert_eq!(
        last.key(),
        Some(&br#"["numbers",{"source":"numbers"}]"#[..])
    );
    let v: serde_json::Value = serde_json::from_slice(last.value()?).unwrap();
    v["next"].as_u64()
}

#[test]
fn an_at_least_once_source_resumes_from_its_stored_offset_after_a_failure_and_a_restart() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let script = Arc::new(Script {
        limit: 1000,
        batch: 10,
        fail_poll_at: Mutex::new(Some(500)),
        ..Script::default()
    });
    let connect = connect_with(&broker, ConnectConfig::default(), &script);
    connect.start(numbers_config()).unwrap();
    wait_until("the source stores its last offset", || {
        stored_next(&broker) == Some(1000)
    });
    let status = connect.status("numbers").unwrap();
    assert_eq!(status.tasks[0].restarts, 1, "{status:?}");
    assert!(
        status.tasks[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("lost the connection")),
        "{status:?}"
    );
    assert_eq!(status.tasks[0].state, TaskState::Running);
    let starts = script.starts.lock().clone();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0], 0);
    assert!(
        starts[1] <= 500,
        "resumed past what it had sent: {starts:?}"
    );
    assert!(script.commits.load(Ordering::SeqCst) > 0);
    // Every number at least once; the ones sent after the last stored
    // offset before the failure may be there twice.
    let got = values(&broker, "numbers", IsolationLevel::ReadUncommitted);
    let distinct: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(distinct, (0..1000).collect());
    assert!(
        got.len() as u64 <= 1000 + (500 - starts[1]),
        "only records after the stored offset come twice"
    );

    // A clean stop stores everything; a new runtime resumes at the end.
    connect.close();
    let connect = connect_with(&broker, ConnectConfig::default(), &script);
    connect.start(numbers_config()).unwrap();
    wait_until("the restarted source starts", || {
        script.starts.lock().len() == 3
    });
    assert_eq!(script.starts.lock()[2], 1000);
    connect.close();
    assert_eq!(
        values(&broker, "numbers", IsolationLevel::ReadUncommitted).len(),
        got.len()
    );
    broker.close().unwrap();
}

#[test]
fn an_exactly_once_source_writes_each_record_once_across_failures_mid_transaction() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .admin()
        .create_topic("numbers", TopicConfig::default().partitions(3))
        .unwrap();
    let script = Arc::new(Script {
        limit: 2000,
        batch: 50,
        // Records 700..=725 are sent and then the transaction fails.
        poison_at: Mutex::new(Some(726)),
        fail_poll_at: Mutex::new(Some(1500)),
        ..Script::default()
    });
    let config = ConnectConfig::default().source_guarantee(SourceGuarantee::ExactlyOnce);
    let connect = connect_with(&broker, config, &script);
    connect.start(numbers_config()).unwrap();
    wait_until("the source stores its last offset", || {
        stored_next(&broker) == Some(2000)
    });
    let status = connect.status("numbers").unwrap();
    assert_eq!(status.tasks[0].restarts, 2, "{status:?}");
    let starts = script.starts.lock().clone();
    assert_eq!(starts, vec![0, 700, 1500], "each poll is one transaction");
    connect.close();

    let mut committed = values(&broker, "numbers", IsolationLevel::ReadCommitted);
    committed.sort_unstable();
    assert_eq!(committed, (0..2000).collect::<Vec<_>>(), "exactly once");
    broker.close().unwrap();
}

#[test]
fn a_task_that_fails_to_start_is_restarted_with_its_error_in_the_status() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let script = Arc::new(Script {
        limit: 5,
        batch: 5,
        failing_starts: AtomicU64::new(3),
        ..Script::default()
    });
    let connect = connect_with(&broker, ConnectConfig::default(), &script);
    connect.start(numbers_config()).unwrap();
    wait_until("the fourth instance sends", || {
        end_offset(&broker, "numbers") == 5
    });
    let status = connect.status("numbers").unwrap();
    assert_eq!(status.tasks[0].restarts, 3);
    assert_eq!(
        status.tasks[0].error.as_deref(),
        Some("numbers: not reachable yet")
    );
    connect.stop("numbers").unwrap();
    assert!(matches!(
        connect.status("numbers"),
        Err(Error::UnknownConnector(_))
    ));
    broker.close().unwrap();
}

#[test]
fn a_source_record_the_converter_cannot_write_fails_the_task_or_is_skipped() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let script = Arc::new(Script {
        limit: 100,
        batch: 10,
        poison_at: Mutex::new(Some(42)),
        ..Script::default()
    });
    let connect = connect_with(&broker, ConnectConfig::default(), &script);
    connect
        .start(numbers_config().set("errors.tolerance", "all"))
        .unwrap();
    wait_until("all but the skipped record arrive", || {
        stored_next(&broker) == Some(100)
    });
    let status = connect.status("numbers").unwrap();
    assert_eq!(status.tasks[0].skipped, 1);
    assert_eq!(status.tasks[0].restarts, 0);
    let got = values(&broker, "numbers", IsolationLevel::ReadUncommitted);
    assert_eq!(got, (0..100).filter(|&n| n != 42).collect::<Vec<_>>());
    connect.close();
    broker.close().unwrap();
}

#[test]
fn transforms_and_converters_shape_what_a_source_writes() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let script = Arc::new(Script {
        limit: 3,
        batch: 3,
        ..Script::default()
    });
    let connect = connect_with(&broker, ConnectConfig::default(), &script);
    connect
        .start(
            numbers_config()
                .set("value.converter", "json")
                .set("key.converter", "string")
                .set("transforms", "route")
                .set("transforms.route.type", "RegexRouter")
                .set("transforms.route.regex", "num(.*)")
                .set("transforms.route.replacement", "n$1")
                .set("topic.creation.default.partitions", "2"),
        )
        .unwrap();
    wait_until("the routed records arrive", || {
        broker.topic("nbers").is_ok_and(|t| {
            (0..t.partition_count())
                .map(|p| t.partition(p).unwrap().end_offset())
                .sum::<u64>()
                == 3
        })
    });
    assert_eq!(broker.topic("nbers").unwrap().partition_count(), 2);
    assert!(broker.topic("numbers").is_err(), "routed away");
    let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    c.assign([("nbers", 0), ("nbers", 1)]).unwrap();
    let mut got: Vec<(Bytes, Bytes)> = c
        .poll(Duration::ZERO)
        .unwrap()
        .into_iter()
        .map(|r| (r.key_bytes().unwrap(), r.value_bytes().unwrap()))
        .collect();
    got.sort();
    let b = |s: &str| Bytes::from(s.to_string());
    assert_eq!(
        got,
        vec![
            (b("0"), b("\"0\"")),
            (b("1"), b("\"1\"")),
            (b("2"), b("\"2\""))
        ]
    );
    connect.close();
    broker.close().unwrap();
}

// -------------------------------------------------------------- a test sink

/// A record a [`Collect`] sink was given: topic, partition, offset, value.
type Put = (String, u32, Offset, Option<Value>);

/// What a [`Collect`] sink saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// Every record put: (topic, partition, offset, value).
    put: Mutex<Vec<Put>>,
    /// The offsets of each successful flush.
    flushed: Mutex<Vec<BTreeMap<TopicPartition, Offset>>>,
    /// Puts that fail with a retriable error before one succeeds.
    retriable_puts: AtomicU64,
    /// A put of a record with this offset fails the task once.
    fail_put_at: Mutex<Option<Offset>>,
    /// Starts.
    starts: AtomicU64,
    stopped: AtomicBool,
}

struct Collect(Arc<Seen>);

impl SinkConnector for Collect {
    fn validate(&self, _config: &ConnectorConfig) -> embedlog::connect::Result<()> {
        Ok(())
    }
    fn task(&self) -> Box<dyn SinkTask> {
        Box::new(CollectTask(self.0.clone()))
    }
}

struct CollectTask(Arc<Seen>);

impl SinkTask for CollectTask {
    fn start(&mut self, _context: &SinkTaskContext) -> embedlog::connect::Result<()> {
        self.0.starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn put(&mut self, records: &[SinkRecord]) -> embedlog::connect::Result<()> {
        if self
            .0
            .retriable_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::Retriable("busy".into()));
        }
        {
            let mut fail = self.0.fail_put_at.lock();
            if let Some(at) = *fail
                && records.iter().any(|r| r.offset == at)
            {
                *fail = None;
                return Err(Error::External {
                    system: "collect",
                    reason: "disk gone".into(),
                    source: None,
                });
            }
        }
        self.0.put.lock().extend(
            records
                .iter()
                .map(|r| (r.topic.clone(), r.partition, r.offset, r.value.clone())),
        );
        Ok(())
    }
    fn flush(
        &mut self,
        offsets: &BTreeMap<TopicPartition, Offset>,
    ) -> embedlog::connect::Result<()> {
        self.0.flushed.lock().push(offsets.clone());
        Ok(())
    }
    fn stop(&mut self) {
        self.0.stopped.store(true, Ordering::SeqCst);
    }
}

fn sink_runtime(broker: &Broker, seen: &Arc<Seen>) -> Connect {
    let connect = Connect::with_config(
        broker,
        ConnectConfig::default()
            .offset_flush_interval(Duration::from_millis(10))
            .restart_backoff(Duration::from_millis(1), Duration::from_millis(20))
            .retry_backoff(Duration::from_millis(1), Duration::from_millis(2)),
    )
    .unwrap();
    let s = seen.clone();
    connect.register_sink("Collect", move || Box::new(Collect(s.clone())));
    connect
}

fn produce(broker: &Broker, topic: &str, values: impl IntoIterator<Item = String>) {
    let producer = broker.producer(embedlog::ProducerConfig::default());
    for (i, v) in values.into_iter().enumerate() {
        producer
            .send(topic, Record::new(v).key(format!("k{}", i % 5)))
            .unwrap();
    }
    producer.flush().unwrap();
}

fn committed(broker: &Broker, topic: &str, partitions: u32) -> Vec<Option<Offset>> {
    let c = broker.consumer(ConsumerConfig::default().group("connect-collect"));
    (0..partitions)
        .map(|p| c.committed((topic, p)).unwrap().map(|o| o.offset))
        .collect()
}

#[test]
fn a_sink_gets_every_record_at_least_once_and_resumes_after_its_last_commit() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .admin()
        .create_topic("events", TopicConfig::default().partitions(2))
        .unwrap();
    produce(&broker, "events", (0..600).map(|i| i.to_string()));
    let seen = Arc::new(Seen {
        retriable_puts: AtomicU64::new(2),
        ..Seen::default()
    });
    // A put holding the record at offset 150 (of either partition) fails
    // the task; its successor starts from the group's last commit.
    *seen.fail_put_at.lock() = Some(150);
    let connect = sink_runtime(&broker, &seen);
    let config = ConnectorConfig::new("collect", "Collect")
        .set("topics", "events")
        .set("consumer.max.poll.records", "50");
    connect.start(config.clone()).unwrap();
    let ends = |b: &Broker| -> Vec<Option<Offset>> {
        (0..2)
            .map(|p| Some(b.partition("events", p).unwrap().end_offset()))
            .collect()
    };
    wait_until("the sink commits everything", || {
        committed(&broker, "events", 2) == ends(&broker)
    });
    let status = connect.status("collect").unwrap();
    assert_eq!(status.tasks[0].restarts, 1, "{status:?}");
    assert!(status.tasks[0].commits > 0);
    assert_eq!(seen.starts.load(Ordering::SeqCst), 2);
    // Every record was put at least once, in offset order per partition
    // within each instance.
    let put = seen.put.lock().clone();
    let distinct: BTreeSet<(u32, Offset)> = put.iter().map(|r| (r.1, r.2)).collect();
    let want: BTreeSet<(u32, Offset)> = (0..2)
        .flat_map(|p| (0..broker.partition("events", p).unwrap().end_offset()).map(move |o| (p, o)))
        .collect();
    assert_eq!(distinct, want);
    // Each flush's offsets are past records that were put.
    for f in seen.flushed.lock().iter() {
        for (tp, o) in f {
            assert!(distinct.contains(&(tp.partition, o - 1)));
        }
    }

    // A clean stop commits; after it, only new records are put.
    connect.stop("collect").unwrap();
    assert!(seen.stopped.load(Ordering::SeqCst));
    let before = seen.put.lock().len();
    produce(&broker, "events", (600..700).map(|i| i.to_string()));
    connect.start(config).unwrap();
    wait_until("the new records are committed", || {
        committed(&broker, "events", 2) == ends(&broker)
    });
    let after: Vec<_> = seen.put.lock()[before..].to_vec();
    let mut values: Vec<u64> = after
        .iter()
        .map(|r| match &r.3 {
            Some(Value::Bytes(b)) => std::str::from_utf8(b).unwrap().parse().unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (600..700).collect::<Vec<_>>());
    connect.close();
    broker.close().unwrap();
}

#[test]
fn records_a_converter_cannot_read_go_to_the_dead_letter_topic_with_the_reason() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .admin()
        .create_topic("json", TopicConfig::default())
        .unwrap();
    produce(
        &broker,
        "json",
        ["{\"a\":1}", "{broken", "[2]", "3", "nope"].map(String::from),
    );
    let seen = Arc::new(Seen::default());
    let connect = sink_runtime(&broker, &seen);
    connect
        .start(
            ConnectorConfig::new("collect", "Collect")
                .set("topics", "json")
                .set("value.converter", "json")
                .set("errors.tolerance", "all")
                .set("errors.deadletterqueue.topic.name", "json-dlq")
                .set("errors.deadletterqueue.context.headers.enable", "true"),
        )
        .unwrap();
    wait_until("the sink commits everything", || {
        committed(&broker, "json", 1) == vec![Some(5)]
    });
    let put: Vec<(Offset, Option<Value>)> =
        seen.put.lock().iter().map(|r| (r.2, r.3.clone())).collect();
    assert_eq!(
        put,
        vec![
            (0, Some(Value::map([("a", Value::Int(1))]))),
            (2, Some(Value::Array(vec![Value::Int(2)]))),
            (3, Some(Value::Int(3))),
        ]
    );
    assert_eq!(connect.status("collect").unwrap().tasks[0].skipped, 2);
    let mut c = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    c.assign([("json-dlq", 0)]).unwrap();
    let dead = c.poll(Duration::ZERO).unwrap();
    assert_eq!(dead.len(), 2);
    for (r, (offset, value)) in dead.iter().zip([(1, "{broken"), (4, "nope")]) {
        assert_eq!(r.value(), Some(value.as_bytes()));
        let header = |k: &str| {
            r.headers()
                .iter()
                .find(|h| h.key() == k)
                .and_then(|h| h.value())
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
        };
        assert_eq!(header("__connect.errors.topic").as_deref(), Some("json"));
        assert_eq!(header("__connect.errors.offset"), Some(offset.to_string()));
        assert_eq!(
            header("__connect.errors.stage").as_deref(),
            Some("VALUE_CONVERTER")
        );
        assert!(
            header("__connect.errors.exception.message")
                .is_some_and(|m| m.contains("json converter")),
        );
    }
    connect.close();
    broker.close().unwrap();
}

#[test]
fn a_sink_over_a_regex_reads_topics_created_after_it_started() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let seen = Arc::new(Seen::default());
    let connect = sink_runtime(&broker, &seen);
    connect
        .start(ConnectorConfig::new("collect", "Collect").set("topics.regex", "logs-.*"))
        .unwrap();
    broker
        .admin()
        .create_topic("logs-a", TopicConfig::default())
        .unwrap();
    broker
        .admin()
        .create_topic("other", TopicConfig::default())
        .unwrap();
    produce(&broker, "logs-a", ["a".to_string()]);
    produce(&broker, "other", ["x".to_string()]);
    wait_until("logs-a is read", || {
        committed(&broker, "logs-a", 1) == vec![Some(1)]
    });
    broker
        .admin()
        .create_topic("logs-b", TopicConfig::default())
        .unwrap();
    produce(&broker, "logs-b", ["b".to_string()]);
    wait_until("logs-b is read", || {
        committed(&broker, "logs-b", 1) == vec![Some(1)]
    });
    let topics: BTreeSet<String> = seen.put.lock().iter().map(|r| r.0.clone()).collect();
    assert_eq!(topics, ["logs-a", "logs-b"].map(String::from).into());
    connect.close();
    broker.close().unwrap();
}

#[test]
fn bad_configurations_are_refused_with_the_key_and_nothing_runs() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let seen = Arc::new(Seen::default());
    let connect = sink_runtime(&broker, &seen);
    let err = |c: ConnectorConfig| connect.start(c).unwrap_err().to_string();
    let e = err(ConnectorConfig::new("x", "Nope"));
    assert!(
        e.contains("unknown connector.class \"Nope\"") && e.contains("Collect"),
        "{e}"
    );
    let e = err(ConnectorConfig::new("x", "Collect"));
    assert!(
        e.contains("\"topics\"") && e.contains("topics.regex"),
        "{e}"
    );
    let e = err(ConnectorConfig::new("x", "Collect")
        .set("topics", "a")
        .set("topics.regex", "a.*"));
    assert!(e.contains("not both"), "{e}");
    let e = err(ConnectorConfig::new("x", "Collect")
        .set("topics", "a")
        .set("value.converter", "avro"));
    assert!(e.contains("value.converter") && e.contains("avro"), "{e}");
    let e = err(ConnectorConfig::new("x", "Collect")
        .set("topics", "a")
        .set("tasks.max", "0"));
    assert!(e.contains("tasks.max"), "{e}");
    let e = err(ConnectorConfig::new("x", "Collect")
        .set("topics", "a")
        .set("errors.deadletterqueue.topic.name", "dlq"));
    assert!(e.contains("errors.tolerance=all"), "{e}");
    let e = err(ConnectorConfig::new("x", "Collect")
        .set("topics", "a,dlq")
        .set("errors.tolerance", "all")
        .set("errors.deadletterqueue.topic.name", "dlq"));
    assert!(e.contains("would be read again"), "{e}");
    let e = err(ConnectorConfig::default().set("connector.class", "Collect"));
    assert!(e.contains("\"name\""), "{e}");
    assert!(connect.connectors().is_empty());
    connect
        .start(ConnectorConfig::new("x", "Collect").set("topics", "a"))
        .unwrap();
    assert!(matches!(
        connect.start(ConnectorConfig::new("x", "Collect").set("topics", "a")),
        Err(Error::AlreadyRunning(_))
    ));
    assert!(matches!(connect.stop("y"), Err(Error::UnknownConnector(_))));
    assert_eq!(connect.connectors(), vec!["x".to_string()]);
    connect.close();
    broker.close().unwrap();
}

#[test]
fn a_task_that_panics_is_restarted_like_one_that_fails() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    let script = Arc::new(Script {
        limit: 100,
        batch: 10,
        panic_at: Mutex::new(Some(50)),
        ..Script::default()
    });
    let connect = connect_with(&broker, ConnectConfig::default(), &script);
    connect.start(numbers_config()).unwrap();
    wait_until("the source stores its last offset", || {
        stored_next(&broker) == Some(100)
    });
    let status = connect.status("numbers").unwrap();
    assert_eq!(status.tasks[0].restarts, 1, "{status:?}");
    let error = status.tasks[0].error.clone().unwrap();
    assert!(
        error.contains("panicked during step: a bug in the connector"),
        "{error}"
    );
    let got: BTreeSet<u64> = values(&broker, "numbers", IsolationLevel::ReadUncommitted)
        .into_iter()
        .collect();
    assert_eq!(got, (0..100).collect());
    connect.close();
    broker.close().unwrap();
}

#[test]
fn two_sink_tasks_share_the_partitions_and_every_record_is_committed() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .admin()
        .create_topic("events", TopicConfig::default().partitions(4))
        .unwrap();
    let seen = Arc::new(Seen::default());
    let connect = sink_runtime(&broker, &seen);
    connect
        .start(
            ConnectorConfig::new("collect", "Collect")
                .set("topics", "events")
                .set("tasks.max", 2)
                .set("consumer.max.poll.records", 20),
        )
        .unwrap();
    assert_eq!(connect.status("collect").unwrap().tasks.len(), 2);
    // Records arrive in every partition while the two members join and
    // split them.
    let producer = broker.producer(embedlog::ProducerConfig::default());
    for i in 0..2000u32 {
        producer
            .send_to("events", i % 4, Record::new(i.to_string()))
            .unwrap();
    }
    producer.flush().unwrap();
    let ends = |b: &Broker| -> Vec<Offset> {
        (0..4)
            .map(|p| b.partition("events", p).unwrap().end_offset())
            .collect()
    };
    let at = |b: &Broker| -> Vec<Offset> {
        let group = committed(b, "events", 4);
        group.into_iter().map(|c| c.unwrap_or(0)).collect()
    };
    wait_until("every partition is committed", || {
        at(&broker) == ends(&broker)
    });
    let put: BTreeSet<(u32, Offset)> = seen.put.lock().iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(put.len(), 2000, "every record put at least once");
    connect.close();
    broker.close().unwrap();
}

#[test]
fn an_offsets_topic_that_is_not_compacted_is_refused() {
    let dir = tempdir();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .admin()
        .create_topic("my-offsets", TopicConfig::default())
        .unwrap();
    let e = Connect::with_config(
        &broker,
        ConnectConfig::default().offsets_topic("my-offsets"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("offset.storage.topic") && e.contains("compact"),
        "{e}"
    );
    broker.close().unwrap();
}

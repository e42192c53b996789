//! The Kafka bridge loses, duplicates and alters nothing: local topic →
//! `KafkaSink` → a Kafka-protocol broker → `KafkaSource` → local topic
//! gives back every record once, in its partition and in order, with its
//! key, value, timestamp and headers, also when the runtime is stopped
//! halfway and started again.
//!
//! The broker is a separate process on loopback: librdkafka's mock cluster,
//! which Debian's `kcat` starts with `-X test.mock.num.brokers=1` (its
//! `-b` is then ignored and it prints the address the mock listens on).
//! `.ci/run` installs kcat; where it is not installed the tests say so on
//! stderr and pass without checking anything.
//!
//! Kept in its own test binary because it starts a child process, which
//! the shared `tests/it` binary must not (see `tests/it/main.rs`).

mod common;

use common::{tempdir, wait_until};
use embedlog::connect::{Connect, ConnectConfig, ConnectorConfig, SourceGuarantee};
use embedlog::{
    Broker, ConsumerConfig, ConsumerRecord, Header, IsolationLevel, OffsetReset, ProducerConfig,
    Record, TopicConfig,
};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The remote (and local) topic mirrored, and its partition count: the
/// count the mock cluster gives a topic it creates by itself.
const TOPIC: &str = "orders";
const PARTITIONS: u32 = 4;
/// Where `KafkaSource` writes the records back.
const MIRROR: &str = "mirror.orders";
/// How long the helpers wait for kcat or the brokers: only reached when
/// something is broken.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------- the kcat broker

/// librdkafka's mock Kafka cluster (one broker on 127.0.0.1), run by a
/// `kcat` child process: `kcat -b 127.0.0.1:1 -X test.mock.num.brokers=1
/// -P -t <topic>`. kcat's producer waits for lines on its stdin, which is
/// held open, so the cluster lives until this is dropped (the child is then
/// killed and reaped). The producer's metadata request makes the mock
/// auto-create `<topic>` with 4 partitions; the mock has no CreateTopics.
struct KcatMock {
    child: Child,
    /// kcat's stdin: closing it would end kcat's producer, and the mock.
    stdin: Option<ChildStdin>,
    /// Reads kcat's stderr to its end (so kcat never blocks on a full
    /// pipe), keeping it for failure messages.
    stderr: Option<JoinHandle<()>>,
    log: Arc<Mutex<String>>,
    bootstrap: String,
}

impl KcatMock {
    /// Starts the cluster, with `topic` created. `None` (after saying so on
    /// stderr) when kcat is not installed.
    fn start(topic: &str) -> Option<KcatMock> {
        let spawned = Command::new("kcat")
            .args(["-b", "127.0.0.1:1", "-X", "test.mock.num.brokers=1"])
            .args(["-P", "-t", topic])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Past the test harness's capture, so it shows in CI logs.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping: kcat not found (apt-get install -y kcat)"
                );
                return None;
            }
            Err(e) => panic!("start kcat: {e}"),
        };
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let log = Arc::new(Mutex::new(String::new()));
        // From here on a panic kills the child (Drop).
        let mut mock = KcatMock {
            child,
            stdin,
            stderr: None,
            log: log.clone(),
            bootstrap: String::new(),
        };
        let (found, address) = mpsc::channel();
        let stderr = stderr.expect("kcat's stderr is piped");
        mock.stderr = Some(
            thread::Builder::new()
                .name("kcat-stderr".into())
                .spawn(move || {
                    // `%5|<ts>|MOCK|rdkafka#producer-1| [thrd:app]: Mock
                    // cluster enabled: original bootstrap.servers and
                    // security.protocol ignored and replaced with
                    // 127.0.0.1:<port>`
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        if let Some((_, rest)) = line.split_once("replaced with ") {
                            let _ = found.send(rest.trim().to_string());
                        }
                        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                        log.push_str(&line);
                        log.push('\n');
                    }
                })
                .expect("spawn a thread"),
        );
        match address.recv_timeout(DEADLINE) {
            Ok(a) if a.parse::<std::net::SocketAddr>().is_ok() => mock.bootstrap = a,
            Ok(a) => panic!("kcat's mock cluster address {a:?} is not host:port"),
            Err(_) => panic!(
                "kcat printed no mock cluster address within {DEADLINE:?}; its stderr:\n{}",
                mock.log()
            ),
        }
        let partitions = mock.wait_for_topic(topic);
        assert_eq!(
            partitions, PARTITIONS as usize,
            "the mock cluster auto-created {topic} with {partitions} partitions"
        );
        Some(mock)
    }

    fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn client(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("an rdkafka client")
    }

    /// Waits until the cluster has `topic` (kcat's producer asks for it
    /// soon after it starts) and returns its partition count.
    fn wait_for_topic(&self, topic: &str) -> usize {
        let client = self.client();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(metadata) = client.fetch_metadata(Some(topic), Duration::from_secs(5))
                && let Some(t) = metadata.topics().iter().find(|t| t.name() == topic)
                && t.error().is_none()
                && !t.partitions().is_empty()
            {
                return t.partitions().len();
            }
            assert!(
                Instant::now() < deadline,
                "the mock cluster has no topic {topic} after {DEADLINE:?}; kcat's stderr:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The end offset (high watermark) of each partition of `topic`,
    /// whose log must still start at 0: the mock keeps at most 5 MiB of
    /// batches per partition and drops the oldest beyond that.
    fn end_offsets(&self, topic: &str) -> Vec<u64> {
        let client = self.client();
        (0..PARTITIONS)
            .map(|p| {
                let (low, high) = client
                    .fetch_watermarks(topic, p as i32, DEADLINE)
                    .expect("the partition's watermarks");
                assert_eq!(low, 0, "the mock dropped the start of {topic}/{p}");
                u64::try_from(high).expect("a watermark is not negative")
            })
            .collect()
    }
}

impl Drop for KcatMock {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.stderr.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------- the records

/// A pseudo-random number for `i` (splitmix64), so that partitions and
/// timestamps follow no pattern the bridge could get right by accident.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Record `i` and its partition. Every record is told apart by its key, its
/// value or a header (for the duplicate check), and together they have: keys,
/// null keys, an empty key, tombstones, empty and binary values, timestamps
/// out of order, no headers, repeated header names in a given order, null
/// and empty header values, non-ASCII names.
fn original(i: u64) -> (u32, Record) {
    let partition = (mix(i) % u64::from(PARTITIONS)) as u32;
    let timestamp = 1_500_000_000_000 + (mix(i ^ 0xabcd) % 200_000_000_000) as i64;
    let mut r = Record::new(format!("value-{i}-{}", "x".repeat((i % 37) as usize)))
        .key(format!("key-{i}"))
        .timestamp(timestamp);
    match i % 8 {
        0 => {}
        1 => {
            r.key = None;
            r = r.header("trace", format!("t-{i}"));
        }
        2 => r.value = None,
        3 => {
            r = r
                .header("h", "1")
                .header("h", "2")
                .header("other", "")
                .header("h", "3");
        }
        4 => r.headers.push(Header::null("nothing")),
        5 => {
            r.key = Some(Default::default());
            r.value = Some(Default::default());
            r = r.header("i", i.to_string());
        }
        6 => {
            r.value = Some(
                (0..=255u8)
                    .cycle()
                    .skip(i as usize % 256)
                    .take(600)
                    .collect(),
            )
        }
        _ => {
            for h in 0..10 {
                r = r.header(format!("ключ-{}", h % 3), vec![h as u8, 0, 255]);
            }
            r.headers.push(Header::null("ключ-0"));
        }
    }
    (partition, r)
}

/// Writes records `from..to` to the local topic.
fn produce(broker: &Broker, from: u64, to: u64) {
    let producer = broker.producer(ProducerConfig::default());
    for i in from..to {
        let (partition, record) = original(i);
        producer.send_to(TOPIC, partition, record).unwrap();
    }
    producer.flush().unwrap();
}

// ------------------------------------------------------------ the runtime

fn runtime(broker: &Broker) -> Connect {
    Connect::with_config(
        broker,
        ConnectConfig::default()
            .source_guarantee(SourceGuarantee::ExactlyOnce)
            .offset_flush_interval(Duration::from_millis(100))
            .restart_backoff(Duration::from_millis(50), Duration::from_secs(1)),
    )
    .unwrap()
}

/// Starts the sink (local `orders` to remote `orders`) and the source
/// (remote `orders` to local `mirror.orders`), two tasks each.
fn start_bridge(connect: &Connect, kafka: &KcatMock) {
    connect
        .start(
            ConnectorConfig::new("to-kafka", "KafkaSink")
                .set("bootstrap.servers", kafka.bootstrap_servers())
                .set("topics", TOPIC)
                .set("tasks.max", 2),
        )
        .unwrap();
    connect
        .start(
            ConnectorConfig::new("from-kafka", "KafkaSource")
                .set("bootstrap.servers", kafka.bootstrap_servers())
                .set("source.topics", TOPIC)
                .set("topic.rename.format", "mirror.${topic}")
                .set("tasks.max", 2),
        )
        .unwrap();
}

/// A read-committed reader of `mirror.orders` that keeps what it read.
struct Mirror {
    consumer: embedlog::Consumer,
    count: usize,
}

impl Mirror {
    /// Waits until the source has made `mirror.orders`.
    fn open(broker: &Broker) -> Mirror {
        wait_until("KafkaSource creates mirror.orders", || {
            broker
                .topic(MIRROR)
                .is_ok_and(|t| t.partition_count() == PARTITIONS)
        });
        let mut consumer = broker.consumer(
            ConsumerConfig::default()
                .offset_reset(OffsetReset::Earliest)
                .isolation_level(IsolationLevel::ReadCommitted),
        );
        consumer
            .assign((0..PARTITIONS).map(|p| (MIRROR, p)))
            .unwrap();
        Mirror { consumer, count: 0 }
    }

    /// Reads what was committed since the last call; fails at once if the
    /// mirror holds more than `expected`.
    fn catch_up(&mut self, expected: usize) -> usize {
        self.count += self.consumer.poll(Duration::from_millis(20)).unwrap().len();
        assert!(
            self.count <= expected,
            "mirror.orders holds {} records, {expected} were sent",
            self.count
        );
        self.count
    }

    /// Waits until the mirror holds `expected` records.
    fn wait_for(&mut self, connect: &Connect, expected: usize) {
        wait_until(&format!("{expected} records in mirror.orders"), || {
            assert_no_task_failed(connect);
            self.catch_up(expected) == expected
        });
    }
}

/// Against a broker on loopback nothing should fail: a task that did says
/// why here, rather than as a record count that is never reached.
fn assert_no_task_failed(connect: &Connect) {
    for name in ["to-kafka", "from-kafka"] {
        for task in connect.status(name).unwrap().tasks {
            assert!(
                task.error.is_none(),
                "{name} task {} failed: {:?}",
                task.task,
                task.error
            );
        }
    }
}

/// Every committed record of `topic`, by partition in offset order.
fn read_topic(broker: &Broker, topic: &str) -> Vec<Vec<ConsumerRecord>> {
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted),
    );
    consumer
        .assign((0..PARTITIONS).map(|p| (topic, p)))
        .unwrap();
    let mut out = vec![Vec::new(); PARTITIONS as usize];
    loop {
        let batch = consumer.poll(Duration::ZERO).unwrap();
        if batch.is_empty() {
            return out;
        }
        for r in batch {
            out[r.partition as usize].push(r);
        }
    }
}

/// Checks that `mirror.orders` is `orders` record for record, per
/// partition in offset order, with no duplicates; and that the remote
/// topic holds each record once (its end offsets are the local ones, so
/// remote offset `n` is local offset `n`).
fn assert_mirror_is_original(broker: &Broker, kafka: &KcatMock, total: u64) {
    let original = read_topic(broker, TOPIC);
    let mirror = read_topic(broker, MIRROR);
    let counts: Vec<u64> = original.iter().map(|p| p.len() as u64).collect();
    assert_eq!(counts.iter().sum::<u64>(), total, "records in orders");
    assert_eq!(
        kafka.end_offsets(TOPIC),
        counts,
        "the remote topic's end offsets are the local topic's"
    );
    for (p, (want, got)) in original.iter().zip(&mirror).enumerate() {
        assert_eq!(got.len(), want.len(), "records in partition {p}");
        for (w, g) in want.iter().zip(got) {
            let at = format!("partition {p}, original offset {}", w.offset);
            // The mirror's offsets differ: its transactions' commit
            // markers take offsets too.
            assert_eq!(g.key(), w.key(), "key at {at}");
            assert_eq!(g.value(), w.value(), "value at {at}");
            assert_eq!(g.timestamp, w.timestamp, "timestamp at {at}");
            assert_eq!(g.headers(), w.headers(), "headers at {at}");
        }
    }
    let mut seen = HashSet::new();
    for r in mirror.iter().flatten() {
        assert!(
            seen.insert((r.partition, r.key_bytes(), r.value_bytes(), r.headers())),
            "partition {} offset {} of mirror.orders is a duplicate",
            r.partition,
            r.offset
        );
    }
    assert_eq!(seen.len() as u64, total);
}

fn open_broker(dir: &Path) -> Broker {
    let broker = Broker::open(dir).unwrap();
    if broker.topic(TOPIC).is_err() {
        broker
            .admin()
            .create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS))
            .unwrap();
    }
    broker
}

// ------------------------------------------------------------------ tests

#[test]
fn a_round_trip_through_kafka_preserves_every_record() {
    let Some(kafka) = KcatMock::start(TOPIC) else {
        return;
    };
    let dir = tempdir();
    let broker = open_broker(dir.path());
    let total = 4000;
    produce(&broker, 0, total);

    let connect = runtime(&broker);
    start_bridge(&connect, &kafka);
    let mut mirror = Mirror::open(&broker);
    mirror.wait_for(&connect, total as usize);
    // Stopping commits what the tasks handled: a duplicate written late
    // would show now.
    connect.close();
    assert_mirror_is_original(&broker, &kafka, total);
    broker.close().unwrap();
}

#[test]
fn a_restart_halfway_neither_loses_nor_duplicates() {
    let Some(kafka) = KcatMock::start(TOPIC) else {
        return;
    };
    let dir = tempdir();
    let (first, more) = (3000, 1500);
    let broker = open_broker(dir.path());
    produce(&broker, 0, first);

    let connect = runtime(&broker);
    start_bridge(&connect, &kafka);
    let mut mirror = Mirror::open(&broker);
    wait_until("some records mirrored back", || {
        assert_no_task_failed(&connect);
        mirror.catch_up(first as usize) > 0
    });
    connect.close();
    drop(mirror);
    let at_stop = read_topic(&broker, MIRROR)
        .iter()
        .map(Vec::len)
        .sum::<usize>();
    eprintln!("stopped with {at_stop} of {first} records mirrored back");
    // The offsets (the sink's group, the source's stored offsets) come
    // back from disk.
    broker.close().unwrap();

    let broker = open_broker(dir.path());
    produce(&broker, first, first + more);
    let connect = runtime(&broker);
    start_bridge(&connect, &kafka);
    let mut mirror = Mirror::open(&broker);
    mirror.wait_for(&connect, (first + more) as usize);
    connect.close();
    assert_mirror_is_original(&broker, &kafka, first + more);
    broker.close().unwrap();
}

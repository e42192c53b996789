//! Outgrowing one machine: mirror a local topic to a Kafka cluster and
//! back with the Kafka bridge.
//!
//! ```text
//! cargo run --release --features kafka --example mirror_to_kafka [BOOTSTRAP] [RECORDS]
//! ```
//!
//! With `BOOTSTRAP` (`host:port,...`) it mirrors to that cluster (the topic
//! `events` there must be new or empty); without it, it starts librdkafka's
//! mock cluster in this process (a Kafka broker as far as a client can tell,
//! on 127.0.0.1) and says so. It writes `RECORDS` (default 200 000) records
//! to the local topic `events` (4 partitions), then:
//! 1. a `KafkaSink` sends `events` to the cluster's topic `events`;
//! 2. a `KafkaSource` reads that topic back into the local `mirror.events`;
//!
//! and prints each direction's rate (records per second, from its start
//! until every record arrived), then checks that `mirror.events` is
//! `events`: per partition, in order, the same keys, values, headers and
//! timestamps.
//!
//! # The path out
//!
//! An application that starts on embedlog keeps Kafka's model: topics,
//! partitions, keyed records, headers, consumer groups. When its data must
//! reach other machines, the bridge moves it to a Kafka cluster (or brings a
//! cluster's topics in) without changing a record:
//!
//! - `KafkaSink` is a sink connector: the Connect runtime reads the local
//!   `topics` as the consumer group `connect-<name>` and the sink produces
//!   each record to the remote topic named by `topic.rename.format`
//!   (default: the same name), to the **same partition number**, with an
//!   idempotent librdkafka producer and `acks=all`. The group's offsets are
//!   committed only after the cluster acknowledged every record before
//!   them, so a crash sends the uncommitted tail again (at-least-once), and
//!   a clean stop sends nothing twice. A missing remote topic is created
//!   with the local partition count.
//! - `KafkaSource` is a source connector: it reads the remote partitions
//!   (`source.topics` or `source.topics.regex`) with manual assignment and
//!   writes each record to the local topic `topic.rename.format` names,
//!   same partition. Where it is up to is stored in embedlog's offsets
//!   topic; with `SourceGuarantee::ExactlyOnce` the records and those
//!   offsets commit in one local transaction, so the local copy has every
//!   remote record once.
//! - Records go **byte for byte**: both connectors default their converters
//!   to `bytes`, so keys and values are never decoded; timestamps are kept,
//!   and headers keep their order, repeated names and null values. A
//!   tombstone stays a tombstone, so compacted topics mirror too.
//!
//! The same connectors run from properties files with the command-line tool
//! (`cargo install --path . --features cli,kafka`, then `embedlog --dir DATA
//! connect standalone worker.properties to-kafka.properties`):
//!
//! ```text
//! name=to-kafka
//! connector.class=KafkaSink
//! topics=events
//! bootstrap.servers=kafka-1:9092,kafka-2:9092
//! topic.rename.format=edge-1.${topic}
//! kafka.compression.type=lz4
//! ```
//!
//! Any librdkafka property goes through with the `kafka.` prefix (TLS and
//! SASL need the `kafka-tls` feature).

use embedlog::connect::{Connect, ConnectConfig, ConnectorConfig, SourceGuarantee};
use embedlog::{
    Broker, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetReset, ProducerConfig, Record,
    TopicConfig,
};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use std::error::Error;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

const TOPIC: &str = "events";
const MIRROR: &str = "mirror.events";
const PARTITIONS: u32 = 4;
/// Bound on each blocking request to the cluster.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Event `i`: a key, a value of about 100 bytes, two headers and its own
/// timestamp; partition by key.
fn event(i: u64) -> (u32, Record) {
    let user = i % 1000;
    let record = Record::new(format!(
        r#"{{"event":{i},"user":{user},"kind":"{}","amount":{}}}"#,
        ["view", "click", "purchase"][(i % 3) as usize],
        i * 7 % 10_000
    ))
    .key(format!("user-{user}"))
    .timestamp(1_700_000_000_000 + i as i64)
    .header("source", "mirror_to_kafka")
    .header("seq", i.to_be_bytes().to_vec());
    ((user % u64::from(PARTITIONS)) as u32, record)
}

fn main() -> Res<()> {
    let mut bootstrap = None;
    let mut records = 200_000u64;
    for arg in std::env::args().skip(1) {
        match arg.parse() {
            Ok(n) => records = n,
            Err(_) => bootstrap = Some(arg),
        }
    }
    // Without a cluster, librdkafka's mock: it cannot create topics through
    // the protocol (CreateTopics), so the topic is made through its API.
    let _mock;
    let bootstrap = match bootstrap {
        Some(b) => b,
        None => {
            let mock = MockCluster::new(1)?;
            mock.create_topic(TOPIC, PARTITIONS as i32, 1)?;
            let b = mock.bootstrap_servers();
            println!("no BOOTSTRAP given: started librdkafka's mock Kafka cluster at {b}");
            _mock = mock;
            b
        }
    };
    let remote: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()?;
    if remote_count(&remote)? > 0 {
        return Err(
            format!("topic {TOPIC} on {bootstrap} holds records already: delete it").into(),
        );
    }

    let dir = tempfile::tempdir()?;
    let broker = Broker::open(dir.path())?;
    let admin = broker.admin();
    admin.create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS))?;
    let producer = broker.producer(ProducerConfig::default());
    for i in 0..records {
        let (partition, record) = event(i);
        producer.send_to(TOPIC, partition, record)?;
    }
    producer.flush()?;
    println!("wrote {records} records to local topic {TOPIC} ({PARTITIONS} partitions)");

    let connect = Connect::with_config(
        &broker,
        ConnectConfig::default()
            .source_guarantee(SourceGuarantee::ExactlyOnce)
            .offset_flush_interval(Duration::from_millis(200)),
    )?;

    // 1. Local to Kafka.
    let started = Instant::now();
    connect.start(
        ConnectorConfig::new("to-kafka", "KafkaSink")
            .set("topics", TOPIC)
            .set("bootstrap.servers", &bootstrap)
            // Any librdkafka producer setting, through `kafka.`: batches
            // compressed on the wire (the mock cluster keeps 5 MiB of them
            // per partition).
            .set("kafka.compression.type", "lz4"),
    )?;
    wait_for(&connect, "to-kafka", || {
        Ok(remote_count(&remote)? >= records)
    })?;
    rate("KafkaSink   (local -> Kafka)", records, started);
    // The mock keeps at most 5 MiB of batches per partition and drops the
    // oldest beyond that (a real cluster's retention could do the same).
    for p in 0..PARTITIONS as i32 {
        let (low, _) = remote.fetch_watermarks(TOPIC, p, TIMEOUT)?;
        if low > 0 {
            return Err(format!(
                "{TOPIC}/{p} on the cluster no longer holds its first {low} records (librdkafka's \
                 mock cluster keeps 5 MiB per partition): mirror fewer RECORDS, or use a real cluster"
            )
            .into());
        }
    }

    // 2. Kafka back to local.
    let started = Instant::now();
    connect.start(
        ConnectorConfig::new("from-kafka", "KafkaSource")
            .set("bootstrap.servers", &bootstrap)
            .set("source.topics", TOPIC)
            .set("topic.rename.format", "mirror.${topic}"),
    )?;
    wait_for(&connect, "from-kafka", || Ok(broker.topic(MIRROR).is_ok()))?;
    let mut mirror = reader(&broker, MIRROR)?;
    let mut arrived = 0;
    wait_for(&connect, "from-kafka", || {
        arrived += mirror.poll(Duration::ZERO)?.len() as u64;
        Ok(arrived >= records)
    })?;
    rate("KafkaSource (Kafka -> local)", records, started);
    connect.close();

    // The copy is the original.
    let original = read_all(&broker, TOPIC)?;
    let copy = read_all(&broker, MIRROR)?;
    let remote_total = remote_count(&remote)?;
    if remote_total != records {
        return Err(
            format!("{TOPIC} on the cluster holds {remote_total} records, not {records}").into(),
        );
    }
    for (p, (want, got)) in original.iter().zip(&copy).enumerate() {
        if want.len() != got.len() {
            return Err(format!(
                "partition {p}: {} records mirrored, {} expected",
                got.len(),
                want.len()
            )
            .into());
        }
        for (w, g) in want.iter().zip(got) {
            if (&w.key(), &w.value(), &w.headers(), w.timestamp)
                != (&g.key(), &g.value(), &g.headers(), g.timestamp)
            {
                return Err(format!(
                    "partition {p}: offset {} came back as {g:?}, not {w:?}",
                    w.offset
                )
                .into());
            }
        }
    }
    println!(
        "checked: {MIRROR} is {TOPIC}, record for record in each of its {PARTITIONS} partitions \
         (keys, values, headers, timestamps)"
    );
    broker.close()?;
    Ok(())
}

fn rate(what: &str, records: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what}: {records} records in {secs:.2} s: {:.0} records/s",
        records as f64 / secs
    );
}

/// Records in the remote topic (the sum of its partitions' end offsets; 0
/// while it does not exist).
fn remote_count(remote: &BaseConsumer) -> Res<u64> {
    let metadata = remote.fetch_metadata(Some(TOPIC), TIMEOUT)?;
    let Some(topic) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == TOPIC && t.error().is_none())
    else {
        return Ok(0);
    };
    let mut total = 0;
    for p in topic.partitions() {
        let (_, high) = remote.fetch_watermarks(TOPIC, p.id(), TIMEOUT)?;
        total += u64::try_from(high)?;
    }
    Ok(total)
}

/// A read-committed reader of every partition of `topic`, from the start.
fn reader(broker: &Broker, topic: &str) -> Res<embedlog::Consumer> {
    let partitions = broker.topic(topic)?.partition_count();
    let mut c = broker.consumer(
        ConsumerConfig::default()
            .max_poll_records(10_000)
            .offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted),
    );
    c.assign((0..partitions).map(|p| (topic, p)))?;
    Ok(c)
}

/// Every record of `topic`, by partition in offset order.
fn read_all(broker: &Broker, topic: &str) -> Res<Vec<Vec<ConsumerRecord>>> {
    let mut c = reader(broker, topic)?;
    let mut out = vec![Vec::new(); PARTITIONS as usize];
    loop {
        let batch = c.poll(Duration::ZERO)?;
        if batch.is_empty() {
            return Ok(out);
        }
        for r in batch {
            out[r.partition as usize].push(r);
        }
    }
}

/// Polls `done` until it holds; fails when a task of `connector` fails
/// (a wrong address, a remote topic with fewer partitions than the local
/// one, ...), or after ten minutes.
fn wait_for(connect: &Connect, connector: &str, mut done: impl FnMut() -> Res<bool>) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done()? {
        for task in connect.status(connector)?.tasks {
            if let Some(error) = task.error {
                return Err(format!("{connector} task {} failed: {error}", task.task).into());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{connector} did not finish within ten minutes").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

//! Test support: a Kafka-protocol broker on loopback, for the Kafka
//! bridge's tests.
//!
//! [`MockKafka`] runs librdkafka's mock cluster (the one `kcat -X
//! test.mock.num.brokers=1` starts) inside the test process: real Kafka
//! brokers as far as a client can tell, listening on 127.0.0.1, speaking
//! the wire protocol (produce, fetch, metadata, idempotent producers), with
//! no external program and nothing to install. It cannot do CreateTopics;
//! [`MockKafka::create_topic`] makes a topic through the mock's own API.
//!
//! This file uses only `rdkafka` and `std`, so integration tests can share
//! it: `#[path = "../src/connect/kafka/testing.rs"] mod mock_kafka;` in a
//! test built with `--features kafka`. It panics on failure, as test code
//! does.

#![allow(dead_code)] // Each includer uses a different part.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a helper waits for something that should happen soon.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A record as the tests write and read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Milliseconds since the epoch (`None`: the producer's clock, and
    /// ignored when comparing what was read).
    pub timestamp: Option<i64>,
    /// Headers in order: name, value (`None` is a null value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl MockRecord {
    /// A record with a key and value, no timestamp and no headers.
    pub fn new(topic: &str, partition: i32, key: &[u8], value: &[u8]) -> MockRecord {
        MockRecord {
            topic: topic.to_string(),
            partition,
            key: Some(key.to_vec()),
            value: Some(value.to_vec()),
            timestamp: None,
            headers: Vec::new(),
        }
    }
}

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        done: mpsc::Sender<Result<(), String>>,
    },
    FailProduce {
        errors: Vec<RDKafkaRespErr>,
        done: mpsc::Sender<Result<(), String>>,
    },
}

/// librdkafka's mock Kafka cluster (one broker on 127.0.0.1), alive until
/// dropped. The cluster's handle is not `Send`, so a thread owns it and
/// serves [`create_topic`](Self::create_topic); `MockKafka` itself is
/// `Send + Sync` and can be shared with tasks under test.
pub struct MockKafka {
    bootstrap: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl MockKafka {
    /// Starts a cluster with one broker.
    pub fn start() -> MockKafka {
        let (started, bootstrap) = mpsc::channel();
        let (commands, requests) = mpsc::channel::<Command>();
        let thread = thread::Builder::new()
            .name("mock-kafka".to_string())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = started.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = started.send(Ok(cluster.bootstrap_servers()));
                // Until MockKafka drops the sender.
                for request in requests {
                    match request {
                        Command::CreateTopic {
                            name,
                            partitions,
                            done,
                        } => {
                            let result = cluster
                                .create_topic(&name, partitions, 1)
                                .map_err(|e| e.to_string());
                            let _ = done.send(result);
                        }
                        Command::FailProduce { errors, done } => {
                            cluster.request_errors(RDKafkaApiKey::Produce, &errors);
                            let _ = done.send(Ok(()));
                        }
                    }
                }
            })
            .expect("spawn the mock cluster's thread");
        let bootstrap = bootstrap
            .recv_timeout(DEADLINE)
            .expect("the mock cluster's thread answers")
            .expect("librdkafka starts a mock cluster");
        MockKafka {
            bootstrap,
            commands: Some(commands),
            thread: Some(thread),
        }
    }

    /// The brokers' addresses, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates `name` with `partitions` partitions (the mock broker does
    /// not implement CreateTopics, and a topic it creates by itself, on a
    /// produce or a metadata request that allows it, has 4).
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.command(|done| Command::CreateTopic {
            name: name.to_string(),
            partitions,
            done,
        })
        .unwrap_or_else(|e| panic!("create mock topic {name}: {e}"));
    }

    /// Makes the next produce requests fail, one per error, in order.
    pub fn fail_produce(&self, errors: &[RDKafkaRespErr]) {
        self.command(|done| Command::FailProduce {
            errors: errors.to_vec(),
            done,
        })
        .expect("push produce errors");
    }

    fn command(
        &self,
        make: impl FnOnce(mpsc::Sender<Result<(), String>>) -> Command,
    ) -> Result<(), String> {
        let (done, result) = mpsc::channel();
        self.commands
            .as_ref()
            .expect("running")
            .send(make(done))
            .expect("the mock cluster's thread runs");
        result
            .recv_timeout(DEADLINE)
            .expect("the mock cluster's thread answers")
    }

    /// A client configuration for this cluster.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// The partition count of `topic`, `None` if the cluster does not have
    /// it (asking does not create it).
    pub fn partitions(&self, topic: &str) -> Option<usize> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), DEADLINE)
            .expect("metadata");
        let t = metadata.topics().iter().find(|t| t.name() == topic)?;
        match t.error() {
            None => Some(t.partitions().len()),
            Some(_) => None,
        }
    }

    /// Writes `records` (to their partitions) and waits until the cluster
    /// has them all.
    pub fn produce(&self, records: &[MockRecord]) {
        let producer: BaseProducer = self
            .client_config()
            .set("enable.idempotence", "true")
            .create()
            .expect("producer");
        for r in records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (key, value) in &r.headers {
                headers = headers.insert(Header {
                    key,
                    value: value.as_deref(),
                });
            }
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic)
                .partition(r.partition)
                .headers(headers);
            if let Some(key) = &r.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &r.value {
                record = record.payload(value.as_slice());
            }
            if let Some(ts) = r.timestamp {
                record = record.timestamp(ts);
            }
            producer.send(record).map_err(|(e, _)| e).expect("enqueue");
        }
        producer.flush(DEADLINE).expect("flush");
        assert_eq!(producer.in_flight_count(), 0);
    }

    /// The end offset of each partition of `topic`.
    pub fn end_offsets(&self, topic: &str) -> Vec<i64> {
        let consumer: BaseConsumer = self.client_config().create().expect("consumer");
        let partitions = self.partitions(topic).expect("topic exists");
        (0..partitions)
            .map(|p| {
                let p = i32::try_from(p).expect("partition");
                consumer
                    .fetch_watermarks(topic, p, DEADLINE)
                    .expect("watermarks")
                    .1
            })
            .collect()
    }

    /// Every record of `topic`, by partition then offset, once the
    /// partitions hold `count` in all (panics if they do not within
    /// [`DEADLINE`], or hold more).
    pub fn read(&self, topic: &str, count: usize) -> Vec<MockRecord> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let held: i64 = self.end_offsets(topic).iter().sum();
            let held = usize::try_from(held).expect("count");
            assert!(
                held <= count,
                "{topic} holds {held} records, {count} expected"
            );
            if held == count {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{topic} holds {held} records, {count} expected"
            );
            thread::sleep(Duration::from_millis(20));
        }
        let consumer: BaseConsumer = self
            .client_config()
            .set("enable.partition.eof", "false")
            .set("group.id", "mock-kafka-reader")
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        let partitions = self.partitions(topic).expect("topic exists");
        for p in 0..partitions {
            let p = i32::try_from(p).expect("partition");
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .expect("assign");
        }
        consumer.assign(&assignment).expect("assign");
        let mut records = Vec::with_capacity(count);
        while records.len() < count {
            assert!(
                Instant::now() < deadline,
                "read {} of {count} records of {topic}",
                records.len()
            );
            let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = message.expect("consume");
            records.push(MockRecord {
                topic: m.topic().to_string(),
                partition: m.partition(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                timestamp: m.timestamp().to_millis(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        records.sort_by_key(|r| r.partition);
        records
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which destroys the cluster.
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

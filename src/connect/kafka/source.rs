//! `KafkaSource`: mirrors Kafka topics into local ones.

use super::{SYSTEM, Settings, kafka_error, remote_topics};
use crate::connect::config::ConnectorConfig;
use crate::connect::error::{Error, Result};
use crate::connect::spi::{
    OffsetStorageReader, SourceConnector, SourceRecord, SourceTask, SourceTaskContext,
};
use crate::connect::value::{Map, Value};
use crate::{Admin, Header, TopicConfig};
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Key: the remote topics to mirror, comma-separated.
const TOPICS: &str = "source.topics";
/// Key: a regex the remote topics to mirror match (whole name).
const TOPICS_REGEX: &str = "source.topics.regex";
/// Key: the name of the remote cluster in source partitions.
const ALIAS: &str = "source.cluster.alias";
const DEFAULT_ALIAS: &str = "kafka";
/// Key: where a partition without a stored offset starts.
const RESET: &str = "auto.offset.reset";
/// Key: the most records one poll returns.
const BATCH_SIZE: &str = "batch.size";
const DEFAULT_BATCH_SIZE: usize = 500;
/// Key (set by `task_configs`): the remote partitions of one task,
/// `topic:partition,...`.
const TASK_PARTITIONS: &str = "task.partitions";

/// How long a poll waits for the first record.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// Source partition fields.
const CLUSTER_FIELD: &str = "cluster";
const TOPIC_FIELD: &str = "topic";
const PARTITION_FIELD: &str = "partition";
/// Source offset field: the next remote offset to read.
const OFFSET_FIELD: &str = "offset";

/// Mirrors Kafka topics into local ones: connector class `KafkaSource`.
///
/// Each remote topic (`source.topics`, or those matching
/// `source.topics.regex`) is copied to the local topic its
/// `topic.rename.format` names, created (or grown) with the remote
/// partition count; each record keeps its **partition number**, key and
/// value bytes (a null value stays a tombstone), timestamp and headers.
/// Tasks read with librdkafka and manual assignment, not a Kafka consumer
/// group: where each remote partition is up to lives in embedlog's
/// offset store, as the source offset `{"offset": <next to read>}` of the
/// source partition `{"cluster": <alias>, "topic": <remote topic>,
/// "partition": <n>}`. With the runtime's exactly-once mode the records
/// and these offsets commit in one local transaction, so the local copy
/// has every remote record once; otherwise it is at-least-once.
///
/// The remote partitions are split round-robin between up to `tasks.max`
/// tasks when the connector starts (each task's share is its
/// `task.partitions`, `topic:partition,...`; a task without one reads
/// every selected partition); topics or partitions added later are
/// mirrored after a restart of the connector.
///
/// Keys:
///
/// | key | default | meaning |
/// | --- | --- | --- |
/// | `bootstrap.servers` | required | the cluster's brokers, `host:port,...` |
/// | `source.topics` | | the remote topics, comma-separated (this or the next is required) |
/// | `source.topics.regex` | | a regex the whole remote topic name matches (internal `__` topics never do) |
/// | `topic.rename.format` | `${topic}` | the local topic's name; `${topic}` is replaced by the remote one's, as in `central.${topic}` |
/// | `source.cluster.alias` | `kafka` | the cluster's name in source partitions: give each mirrored cluster its own |
/// | `auto.offset.reset` | `earliest` | where a partition without a stored offset starts: `earliest` or `latest`; also where one whose stored offset the cluster no longer has restarts |
/// | `batch.size` | `500` | the most records one poll returns |
/// | `timeout.ms` | `30000` | bound on each metadata request |
/// | `kafka.<property>` | | any librdkafka property, without the prefix (`kafka.fetch.max.bytes=...`, `kafka.isolation.level=read_uncommitted`); checked by `validate` |
///
/// (The runtime's own `topics` and `topics.regex` are for sinks; this
/// source's are prefixed `source.`.) librdkafka defaults it sets:
/// `enable.auto.commit=false`, `enable.auto.offset.store=false`,
/// `enable.partition.eof=false`, `allow.auto.create.topics=false`,
/// `fetch.queue.backoff.ms=10` (librdkafka's 1 s stalls a fast mirror),
/// `client.id` and `group.id` `embedlog-connect-<name>` (librdkafka
/// assigns partitions only to a consumer with a group id; this one never
/// joins the group nor commits offsets to it); librdkafka reads only committed
/// records of transactions by default (`isolation.level=read_committed`).
/// `key.converter` and `value.converter` default to `bytes`.
///
/// ```
/// use embedlog::connect::{ConnectorConfig, KafkaSourceConnector, SourceConnector};
/// let config = ConnectorConfig::new("from-kafka", KafkaSourceConnector::CLASS)
///     .set("bootstrap.servers", "kafka-1:9092")
///     .set("source.topics.regex", "orders\\..*")
///     .set("topic.rename.format", "central.${topic}")
///     .set("source.cluster.alias", "central");
/// KafkaSourceConnector.validate(&config)?;
/// # Ok::<(), embedlog::connect::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct KafkaSourceConnector;

impl KafkaSourceConnector {
    /// The class name to register it under (`connector.class`).
    pub const CLASS: &'static str = "KafkaSource";
}

impl SourceConnector for KafkaSourceConnector {
    fn validate(&self, config: &ConnectorConfig) -> Result<()> {
        SourceSettings::from_config(config).map(|_| ())
    }

    fn defaults(&self) -> Vec<(&'static str, &'static str)> {
        vec![("key.converter", "bytes"), ("value.converter", "bytes")]
    }

    /// Splits the remote partitions round-robin between up to `max_tasks`
    /// tasks (asking the cluster which there are).
    fn task_configs(
        &self,
        config: &ConnectorConfig,
        max_tasks: usize,
    ) -> Result<Vec<ConnectorConfig>> {
        let settings = SourceSettings::from_config(config)?;
        let consumer = settings.consumer()?;
        let partitions = settings.selected_partitions(&consumer)?;
        let tasks = max_tasks.clamp(1, partitions.len().max(1));
        let mut lists = vec![Vec::new(); tasks];
        for (i, (topic, partition)) in partitions.iter().enumerate() {
            lists[i % tasks].push(format!("{topic}:{partition}"));
        }
        Ok(lists
            .into_iter()
            .map(|list| config.clone().set(TASK_PARTITIONS, list.join(",")))
            .collect())
    }

    fn task(&self) -> Box<dyn SourceTask> {
        Box::new(KafkaSourceTask::default())
    }
}

/// Which remote topics are mirrored.
#[derive(Clone, Debug)]
enum Selection {
    List(Vec<String>),
    Regex(regex::Regex),
}

/// Where a partition without a stored offset starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    Earliest,
    Latest,
}

/// The source's configuration.
#[derive(Clone, Debug)]
struct SourceSettings {
    common: Settings,
    selection: Selection,
    alias: String,
    reset: Reset,
    batch: usize,
    /// `task.partitions`: this task's share, or `None` for every selected
    /// partition.
    assigned: Option<Vec<(String, i32)>>,
}

impl SourceSettings {
    fn from_config(config: &ConnectorConfig) -> Result<SourceSettings> {
        let name = config.name();
        let reset = match config.choice_or(RESET, &["earliest", "latest"], "earliest")? {
            "latest" => Reset::Latest,
            _ => Reset::Earliest,
        };
        let librdkafka_reset = match reset {
            Reset::Earliest => "earliest",
            Reset::Latest => "latest",
        };
        // librdkafka assigns partitions only to a consumer with a group id,
        // though this one never joins the group nor commits to it.
        let group = format!("embedlog-connect-{name}");
        let common = Settings::from_config(
            config,
            &[
                ("group.id", group.as_str()),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "false"),
                ("allow.auto.create.topics", "false"),
                // librdkafka pauses fetching for this long (its default is
                // 1 s) once `queued.min.messages` wait in its queue, which
                // a fast cluster fills sooner than a task appends them: a
                // second-long stall each time (145 k records/s instead of
                // 340 k in examples/mirror_to_kafka).
                ("fetch.queue.backoff.ms", "10"),
                ("auto.offset.reset", librdkafka_reset),
            ],
        )?;
        let list = config.list(TOPICS);
        let pattern = config
            .get(TOPICS_REGEX)
            .map(str::trim)
            .filter(|p| !p.is_empty());
        let selection = match (list.is_empty(), pattern) {
            (false, Some(_)) => {
                return Err(Error::config(
                    name,
                    TOPICS_REGEX,
                    format!("set {TOPICS} or {TOPICS_REGEX}, not both"),
                ));
            }
            (true, None) => {
                return Err(Error::config(
                    name,
                    TOPICS,
                    format!("is required (or {TOPICS_REGEX})"),
                ));
            }
            (false, None) => {
                for topic in &list {
                    crate::validate_topic_name(topic)
                        .map_err(|e| Error::config(name, TOPICS, e.to_string()))?;
                }
                Selection::List(list)
            }
            (true, Some(pattern)) => Selection::Regex(
                regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| Error::config(name, TOPICS_REGEX, e.to_string()))?,
            ),
        };
        let alias = config
            .get(ALIAS)
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .unwrap_or(DEFAULT_ALIAS)
            .to_string();
        let batch = config.parse_or(BATCH_SIZE, DEFAULT_BATCH_SIZE)?;
        if batch == 0 {
            return Err(Error::config(name, BATCH_SIZE, "must be at least 1"));
        }
        let assigned = match config.get(TASK_PARTITIONS) {
            None => None,
            Some(list) => Some(parse_assignment(list).ok_or_else(|| {
                Error::config(
                    name,
                    TASK_PARTITIONS,
                    format!("{list:?}: topic:partition pairs, comma-separated, expected"),
                )
            })?),
        };
        Ok(SourceSettings {
            common,
            selection,
            alias,
            reset,
            batch,
            assigned,
        })
    }

    fn consumer(&self) -> Result<BaseConsumer> {
        self.common
            .client
            .create()
            .map_err(|e| kafka_error("create the consumer", e))
    }

    fn selects(&self, topic: &str) -> bool {
        match &self.selection {
            Selection::List(list) => list.iter().any(|t| t == topic),
            Selection::Regex(re) => !topic.starts_with("__") && re.is_match(topic),
        }
    }

    /// Every partition of the selected remote topics, by topic and number.
    fn selected_partitions(&self, consumer: &BaseConsumer) -> Result<Vec<(String, i32)>> {
        let topics = self.selected_topics(consumer)?;
        Ok(topics
            .iter()
            .flat_map(|(topic, &count)| {
                (0..count).map(move |p| (topic.clone(), i32::try_from(p).unwrap_or(i32::MAX)))
            })
            .collect())
    }

    /// The selected remote topics and their partition counts.
    ///
    /// An error when a listed topic is missing or the regex matches none.
    fn selected_topics(&self, consumer: &BaseConsumer) -> Result<BTreeMap<String, u32>> {
        let topics: BTreeMap<String, u32> =
            remote_topics(consumer.client(), None, self.common.timeout)?
                .into_iter()
                .filter(|(t, _)| self.selects(t))
                .collect();
        let missing = match &self.selection {
            Selection::List(list) => list
                .iter()
                .filter(|t| !topics.contains_key(*t))
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            Selection::Regex(_) if topics.is_empty() => "any topic matching it".to_string(),
            Selection::Regex(_) => String::new(),
        };
        if !missing.is_empty() {
            let key = match self.selection {
                Selection::List(_) => TOPICS,
                Selection::Regex(_) => TOPICS_REGEX,
            };
            return Err(Error::External {
                system: SYSTEM,
                reason: format!("{key}: the cluster has no {missing}"),
                source: None,
            });
        }
        Ok(topics)
    }
}

/// `topic:partition,...` as pairs; `None` if malformed. Kafka topic names
/// hold neither `:` nor `,`.
fn parse_assignment(list: &str) -> Option<Vec<(String, i32)>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (topic, partition) = item.rsplit_once(':')?;
            let partition: i32 = partition.parse().ok()?;
            (!topic.is_empty() && partition >= 0).then(|| (topic.to_string(), partition))
        })
        .collect()
}

/// Creates local topic `name` with `partitions` partitions, or grows it to
/// that many; tasks racing to do the same are fine.
fn ensure_local_topic(admin: &Admin, name: &str, partitions: u32) -> Result<()> {
    for _ in 0..3 {
        let raced = match admin.describe_topic(name) {
            Ok(d) if d.partitions.len() >= partitions as usize => return Ok(()),
            Ok(_) => match admin.add_partitions(name, partitions) {
                Ok(()) => return Ok(()),
                Err(crate::Error::InvalidPartitionCount { .. }) => true,
                Err(e) => return Err(e.into()),
            },
            Err(crate::Error::UnknownTopic { .. }) => {
                match admin.create_topic(name, TopicConfig::default().partitions(partitions)) {
                    Ok(_) => return Ok(()),
                    Err(crate::Error::TopicExists { .. }) => true,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        debug_assert!(raced);
    }
    Err(Error::External {
        system: SYSTEM,
        reason: format!(
            "local topic {name:?} kept changing while being made to have {partitions} partitions"
        ),
        source: None,
    })
}

/// One remote partition a task reads.
#[derive(Clone, Debug)]
struct Assigned {
    /// The local topic its records go to.
    local: String,
    /// Its source partition.
    source_partition: Map,
}

/// What a started task holds.
struct Running {
    consumer: BaseConsumer,
    batch: usize,
    /// By remote topic and partition.
    assigned: HashMap<(String, i32), Assigned>,
}

/// A `KafkaSource` task: a librdkafka consumer with manual assignment.
#[derive(Default)]
struct KafkaSourceTask {
    running: Option<Running>,
}

impl SourceTask for KafkaSourceTask {
    fn start(&mut self, context: &SourceTaskContext) -> Result<()> {
        let settings = SourceSettings::from_config(&context.config)?;
        let consumer = settings.consumer()?;
        let counts = settings.selected_topics(&consumer)?;
        let partitions = match &settings.assigned {
            Some(list) => list.clone(),
            None => settings.selected_partitions(&consumer)?,
        };
        let mut assigned = HashMap::new();
        let mut assignment = TopicPartitionList::with_capacity(partitions.len());
        let mut made = std::collections::HashSet::new();
        for (topic, partition) in partitions {
            let Some(&count) = counts.get(&topic) else {
                return Err(Error::External {
                    system: SYSTEM,
                    reason: format!(
                        "remote topic {topic:?}, assigned to this task, is gone; restart the \
                         connector to split the partitions there are now"
                    ),
                    source: None,
                });
            };
            let local = settings.common.rename(&topic);
            if let Some(admin) = &context.admin
                && !made.contains(&local)
            {
                ensure_local_topic(admin, &local, count)?;
                made.insert(local.clone());
            }
            let source_partition: Map = [
                (
                    CLUSTER_FIELD.to_string(),
                    Value::from(settings.alias.as_str()),
                ),
                (TOPIC_FIELD.to_string(), Value::from(topic.as_str())),
                (
                    PARTITION_FIELD.to_string(),
                    Value::Int(i64::from(partition)),
                ),
            ]
            .into();
            let start = start_offset(&settings, &context.offsets, &source_partition)?;
            assignment
                .add_partition_offset(&topic, partition, start)
                .map_err(|e| kafka_error("assign a partition", e))?;
            assigned.insert(
                (topic, partition),
                Assigned {
                    local,
                    source_partition,
                },
            );
        }
        consumer
            .assign(&assignment)
            .map_err(|e| kafka_error("assign the partitions", e))?;
        self.running = Some(Running {
            consumer,
            batch: settings.batch,
            assigned,
        });
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let run = self.running.as_mut().ok_or_else(|| Error::External {
            system: SYSTEM,
            reason: "the source task was not started".to_string(),
            source: None,
        })?;
        let mut records = Vec::new();
        let mut wait = POLL_WAIT;
        while records.len() < run.batch {
            match run.consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => records.push(run.record(&message)?),
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    return Err(Error::external(
                        SYSTEM,
                        "the consumer failed",
                        KafkaError::MessageConsumptionFatal(code),
                    ));
                }
                // librdkafka recovers from the others by itself: report
                // it, and let the runtime back off unless there are
                // records to hand over.
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka source: consumer error");
                    if records.is_empty() {
                        return Err(Error::Retriable(format!("{SYSTEM}: consume: {e}")));
                    }
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        Ok(records)
    }

    fn stop(&mut self) {
        self.running = None;
    }
}

/// Where a partition starts: after its stored offset, or the reset point.
fn start_offset(
    settings: &SourceSettings,
    offsets: &OffsetStorageReader,
    partition: &Map,
) -> Result<KafkaOffset> {
    let Some(stored) = offsets.offset(partition) else {
        return Ok(match settings.reset {
            Reset::Earliest => KafkaOffset::Beginning,
            Reset::Latest => KafkaOffset::End,
        });
    };
    match stored.get(OFFSET_FIELD).and_then(Value::as_i64) {
        Some(next) if next >= 0 => Ok(KafkaOffset::Offset(next)),
        _ => Err(Error::External {
            system: SYSTEM,
            reason: format!(
                "the stored offset {} of source partition {} is not {{\"{OFFSET_FIELD}\": <offset>}}",
                Value::Map(stored.clone()).to_json_string(),
                Value::Map(partition.clone()).to_json_string(),
            ),
            source: None,
        }),
    }
}

impl Running {
    /// `message` as the record to write locally.
    fn record(&self, message: &BorrowedMessage<'_>) -> Result<SourceRecord> {
        let topic = message.topic();
        let partition = message.partition();
        let offset = message.offset();
        let Some(assigned) = self.assigned.get(&(topic.to_string(), partition)) else {
            return Err(Error::External {
                system: SYSTEM,
                reason: format!("a record from {topic}/{partition}, which this task does not read"),
                source: None,
            });
        };
        let mut record = SourceRecord::new(
            assigned.local.clone(),
            message
                .payload()
                .map(|v| Value::Bytes(Bytes::copy_from_slice(v))),
        );
        record.source_partition = assigned.source_partition.clone();
        record.source_offset = [(OFFSET_FIELD.to_string(), Value::Int(offset + 1))].into();
        record.record.partition = Some(u32::try_from(partition).unwrap_or(0));
        record.record.key = message
            .key()
            .map(|k| Value::Bytes(Bytes::copy_from_slice(k)));
        record.record.timestamp = message.timestamp().to_millis();
        record.record.headers = headers(message).ok_or_else(|| Error::External {
            system: SYSTEM,
            reason: format!("{topic}/{partition} offset {offset}: a header name is not UTF-8"),
            source: None,
        })?;
        Ok(record)
    }
}

/// The headers of `message`, in order; `None` if a name is not UTF-8.
fn headers(message: &BorrowedMessage<'_>) -> Option<Vec<Header>> {
    let Some(headers) = message.headers() else {
        return Some(Vec::new());
    };
    // rdkafka unwraps the UTF-8 check of a header's name: a panic there
    // (a record written by a client that does not check) is caught and
    // becomes an error rather than ending the task's thread.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        headers
            .iter()
            .map(|h| match h.value {
                Some(v) => Header::new(h.key, Bytes::copy_from_slice(v)),
                None => Header::null(h.key),
            })
            .collect()
    }))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{DEADLINE, MockKafka, MockRecord};
    use super::*;
    use crate::Broker;
    use std::time::Instant;

    fn config(mock: &MockKafka) -> ConnectorConfig {
        ConnectorConfig::new("mirror", KafkaSourceConnector::CLASS)
            .set("bootstrap.servers", mock.bootstrap_servers())
    }

    fn local_broker() -> (tempfile::TempDir, Broker) {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        (dir, broker)
    }

    fn start(
        config: ConnectorConfig,
        offsets: OffsetStorageReader,
        broker: &Broker,
    ) -> KafkaSourceTask {
        let mut task = KafkaSourceTask::default();
        task.start(&SourceTaskContext {
            config,
            task: 0,
            offsets,
            admin: Some(broker.admin()),
        })
        .unwrap();
        task
    }

    /// Polls until `count` records came (panics on more, or after
    /// [`DEADLINE`]).
    fn poll_until(task: &mut KafkaSourceTask, count: usize) -> Vec<SourceRecord> {
        let deadline = Instant::now() + DEADLINE;
        let mut records = Vec::new();
        while records.len() < count {
            assert!(
                Instant::now() < deadline,
                "{} of {count} records",
                records.len()
            );
            let batch = task.poll().unwrap();
            records.extend(batch);
        }
        assert_eq!(records.len(), count);
        records
    }

    /// What a remote record must become locally.
    fn expected(r: &MockRecord, offset: i64, local: &str) -> SourceRecord {
        let bytes = |v: &Option<Vec<u8>>| v.as_ref().map(|b| Value::Bytes(Bytes::from(b.clone())));
        let mut want = SourceRecord::new(local, bytes(&r.value))
            .source_partition([
                ("cluster", Value::from("kafka")),
                ("topic", Value::from(r.topic.as_str())),
                ("partition", Value::Int(i64::from(r.partition))),
            ])
            .source_offset([("offset", Value::Int(offset + 1))])
            .partition(u32::try_from(r.partition).unwrap());
        want.record.key = bytes(&r.key);
        want.record.timestamp = r.timestamp;
        want.record.headers = r
            .headers
            .iter()
            .map(|(k, v)| match v {
                Some(v) => Header::new(k.as_str(), v.clone()),
                None => Header::null(k.as_str()),
            })
            .collect();
        want
    }

    fn remote_records(topic: &str, partition: i32, from: usize, to: usize) -> Vec<MockRecord> {
        (from..to)
            .map(|i| {
                let mut r = MockRecord::new(
                    topic,
                    partition,
                    format!("k{i}").as_bytes(),
                    format!("v{i}").as_bytes(),
                );
                r.timestamp = Some(1_600_000_000_000 + i64::try_from(i).unwrap());
                r
            })
            .collect()
    }

    /// Sorts by remote partition, keeping each partition's order.
    fn by_partition(mut records: Vec<SourceRecord>) -> Vec<SourceRecord> {
        records.sort_by_key(|r| {
            (
                r.source_partition.get("topic").map(Value::to_text),
                r.record.partition,
            )
        });
        records
    }

    #[test]
    fn remote_records_arrive_unchanged_in_their_partition() {
        let mock = MockKafka::start();
        mock.create_topic("orders", 3);
        mock.create_topic("audit", 1);
        let mut remote = Vec::new();
        for p in [0, 2, 1] {
            remote.extend(remote_records("orders", p, 0, 3));
        }
        remote[0].headers = vec![
            ("trace".to_string(), Some(b"a".to_vec())),
            ("nothing".to_string(), None),
            ("trace".to_string(), Some(b"b".to_vec())),
            ("empty".to_string(), Some(Vec::new())),
        ];
        remote[1].value = None; // a tombstone
        remote[2].key = None;
        let mut audit = remote_records("audit", 0, 0, 2);
        audit[1].headers = vec![("who".to_string(), Some(b"me".to_vec()))];
        remote.extend(audit);
        mock.produce(&remote);

        let (_dir, broker) = local_broker();
        let c = config(&mock)
            .set("source.topics", "orders, audit")
            .set("topic.rename.format", "dc1.${topic}");
        let mut task = start(c, OffsetStorageReader::default(), &broker);
        let admin = broker.admin();
        assert_eq!(
            admin.describe_topic("dc1.orders").unwrap().partitions.len(),
            3
        );
        assert_eq!(
            admin.describe_topic("dc1.audit").unwrap().partitions.len(),
            1
        );

        let got = by_partition(poll_until(&mut task, remote.len()));
        let mut offsets = HashMap::<(String, i32), i64>::new();
        let want: Vec<_> = remote
            .iter()
            .map(|r| {
                let next = offsets.entry((r.topic.clone(), r.partition)).or_default();
                *next += 1;
                expected(r, *next - 1, &format!("dc1.{}", r.topic))
            })
            .collect();
        assert_eq!(got, by_partition(want));
        assert!(task.poll().unwrap().is_empty(), "nothing more");
        task.stop();
    }

    #[test]
    fn a_restarted_task_resumes_from_the_offsets_it_emitted() {
        let mock = MockKafka::start();
        mock.create_topic("orders", 2);
        let mut remote = remote_records("orders", 0, 0, 5);
        remote.extend(remote_records("orders", 1, 0, 4));
        mock.produce(&remote);
        let (_dir, broker) = local_broker();
        let c = config(&mock)
            .set("source.topics", "orders")
            .set("batch.size", "3");

        let mut task = start(c.clone(), OffsetStorageReader::default(), &broker);
        // Some of them: as many as came by the time 3 had.
        let mut first = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        while first.len() < 3 {
            assert!(Instant::now() < deadline, "{} records", first.len());
            let batch = task.poll().unwrap();
            assert!(batch.len() <= 3, "batch.size is 3");
            first.extend(batch);
        }
        assert!(first.len() < remote.len());
        task.stop();
        let stored: Vec<(Map, Map)> = first
            .iter()
            .map(|r| (r.source_partition.clone(), r.source_offset.clone()))
            .collect();

        let more = [
            remote_records("orders", 0, 5, 7),
            remote_records("orders", 1, 4, 5),
        ]
        .concat();
        mock.produce(&more);
        let mut task = start(c, OffsetStorageReader::from_offsets(stored), &broker);
        let rest = poll_until(&mut task, remote.len() + more.len() - first.len());
        assert!(task.poll().unwrap().is_empty(), "nothing more");

        let all = by_partition([first, rest].concat());
        let values: Vec<(u32, Option<Value>)> = all
            .iter()
            .map(|r| (r.record.partition.unwrap(), r.record.value.clone()))
            .collect();
        let want: Vec<(u32, Option<Value>)> = (0..7)
            .map(|i| (0, Some(Value::Bytes(format!("v{i}").into()))))
            .chain((0..5).map(|i| (1, Some(Value::Bytes(format!("v{i}").into())))))
            .collect();
        assert_eq!(values, want, "every record once, in order");
    }

    #[test]
    fn local_topics_grow_to_the_remote_partition_count() {
        let mock = MockKafka::start();
        mock.create_topic("small", 3);
        mock.create_topic("big", 2);
        let (_dir, broker) = local_broker();
        let admin = broker.admin();
        admin
            .create_topic("small", TopicConfig::default().partitions(1))
            .unwrap();
        admin
            .create_topic("big", TopicConfig::default().partitions(5))
            .unwrap();
        let c = config(&mock).set("source.topics.regex", "small|big");
        let mut task = start(c, OffsetStorageReader::default(), &broker);
        assert_eq!(admin.describe_topic("small").unwrap().partitions.len(), 3);
        assert_eq!(admin.describe_topic("big").unwrap().partitions.len(), 5);
        assert!(task.poll().unwrap().is_empty());
    }

    #[test]
    fn task_configs_split_every_partition_once() {
        let mock = MockKafka::start();
        mock.create_topic("orders", 3);
        mock.create_topic("audit", 1);
        mock.create_topic("other", 2);
        let c = config(&mock).set("source.topics.regex", "orders|audit");
        let connector = KafkaSourceConnector;
        let parse = |configs: &[ConnectorConfig]| -> Vec<Vec<(String, i32)>> {
            configs
                .iter()
                .map(|c| parse_assignment(c.get(TASK_PARTITIONS).unwrap()).unwrap())
                .collect()
        };
        let three = parse(&connector.task_configs(&c, 3).unwrap());
        assert_eq!(three.len(), 3);
        let mut all: Vec<_> = three.concat();
        all.sort();
        let want: Vec<_> = [("audit", 0), ("orders", 0), ("orders", 1), ("orders", 2)]
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        assert_eq!(all, want);
        assert_eq!(parse(&connector.task_configs(&c, 10).unwrap()).len(), 4);
        assert_eq!(
            parse(&connector.task_configs(&c, 1).unwrap())
                .concat()
                .len(),
            4
        );

        // A task reads only its share.
        mock.produce(
            &[
                remote_records("orders", 0, 0, 1),
                remote_records("orders", 1, 0, 1),
            ]
            .concat(),
        );
        let (_dir, broker) = local_broker();
        let mine = c.clone().set(TASK_PARTITIONS, "orders:1");
        let mut task = start(mine, OffsetStorageReader::default(), &broker);
        let got = poll_until(&mut task, 1);
        assert_eq!(got[0].record.partition, Some(1));
        assert!(task.poll().unwrap().is_empty());
        // Every local topic still gets the full count.
        assert_eq!(
            broker
                .admin()
                .describe_topic("orders")
                .unwrap()
                .partitions
                .len(),
            3
        );

        let e = connector
            .task_configs(&config(&mock).set("source.topics", "orders,missing"), 2)
            .unwrap_err();
        assert!(e.to_string().contains("no missing"), "{e}");
        let e = connector
            .task_configs(&config(&mock).set("source.topics.regex", "nope.*"), 2)
            .unwrap_err();
        assert!(e.to_string().contains("matching"), "{e}");
    }

    #[test]
    fn latest_starts_after_what_is_there() {
        let mock = MockKafka::start();
        mock.create_topic("orders", 1);
        mock.produce(&remote_records("orders", 0, 0, 3));
        let (_dir, broker) = local_broker();
        let c = config(&mock)
            .set("source.topics", "orders")
            .set("auto.offset.reset", "latest");
        let mut task = start(c, OffsetStorageReader::default(), &broker);
        // The end offset is looked up when fetching starts, some time
        // after start returns: write a record per round until one comes.
        // Whenever the consumer got positioned, nothing before offset 3
        // may arrive.
        let deadline = Instant::now() + DEADLINE;
        let mut next = 3;
        let got = loop {
            assert!(Instant::now() < deadline, "no record arrived");
            mock.produce(&remote_records("orders", 0, next, next + 1));
            next += 1;
            let got = task.poll().unwrap();
            if !got.is_empty() {
                break got;
            }
        };
        for r in got {
            let after = r.source_offset["offset"].as_i64().unwrap();
            assert!(
                after > 3,
                "read remote offset {} from before the start",
                after - 1
            );
        }
    }

    #[test]
    fn bad_configuration_and_offsets_are_refused() {
        let base = ConnectorConfig::new("mirror", KafkaSourceConnector::CLASS)
            .set("bootstrap.servers", "127.0.0.1:9");
        let cases = [
            (base.clone(), "source.topics"),
            (
                base.clone()
                    .set("source.topics", "a")
                    .set("source.topics.regex", "b"),
                "source.topics.regex",
            ),
            (
                base.clone().set("source.topics.regex", "(unclosed"),
                "source.topics.regex",
            ),
            (base.clone().set("source.topics", "a/b"), "source.topics"),
            (
                base.clone()
                    .set("source.topics", "a")
                    .set("auto.offset.reset", "none"),
                "auto.offset.reset",
            ),
            (
                base.clone()
                    .set("source.topics", "a")
                    .set("batch.size", "0"),
                "batch.size",
            ),
            (
                base.clone()
                    .set("source.topics", "a")
                    .set("task.partitions", "a:x"),
                "task.partitions",
            ),
            (
                base.clone()
                    .set("source.topics", "a")
                    .set("kafka.fetch.wait.max.ms", "soon"),
                "kafka.fetch.wait.max.ms",
            ),
        ];
        for (c, key) in cases {
            let e = KafkaSourceConnector.validate(&c).unwrap_err();
            assert!(
                matches!(&e, Error::Config { key: k, .. } if k == key),
                "{key}: {e}"
            );
        }

        let mock = MockKafka::start();
        mock.create_topic("orders", 1);
        let (_dir, broker) = local_broker();
        let partition: Map = [
            ("cluster".to_string(), Value::from("kafka")),
            ("topic".to_string(), Value::from("orders")),
            ("partition".to_string(), Value::Int(0)),
        ]
        .into();
        let offsets = OffsetStorageReader::from_offsets([(
            partition,
            [("position".to_string(), Value::Int(3))].into(),
        )]);
        let mut task = KafkaSourceTask::default();
        let e = task
            .start(&SourceTaskContext {
                config: config(&mock).set("source.topics", "orders"),
                task: 0,
                offsets,
                admin: Some(broker.admin()),
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"position\":3") && e.contains("\"topic\":\"orders\""),
            "{e}"
        );
    }

    #[test]
    fn assignment_lists_parse() {
        assert_eq!(
            parse_assignment("a:0, b.c:12,"),
            Some(vec![("a".to_string(), 0), ("b.c".to_string(), 12)])
        );
        assert_eq!(parse_assignment(""), Some(vec![]));
        for bad in ["a", "a:-1", ":1", "a:1:x"] {
            assert_eq!(parse_assignment(bad), None, "{bad}");
        }
    }
}

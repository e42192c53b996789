//! `KafkaSink`: mirrors local topics to a Kafka cluster.

use super::{SYSTEM, Settings, error_code, kafka_error, remote_topics};
use crate::Admin;
use crate::connect::config::ConnectorConfig;
use crate::connect::error::{Error, Result};
use crate::connect::spi::{SinkConnector, SinkRecord, SinkTask, SinkTaskContext};
use crate::connect::value::Value;
use crate::{Offset, TopicPartition};
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Key: whether a missing remote topic is created.
const CREATE_ENABLE: &str = "topic.creation.enable";
/// Key: the replication factor of the topics the sink creates.
const CREATE_REPLICATION: &str = "topic.creation.replication.factor";

/// librdkafka properties the sink sets before the user's `kafka.*`:
/// no duplicates or reordering from the producer's own retries, every
/// in-sync replica acknowledges, and a topic is never made by the
/// cluster's auto-creation (whose partition count is the cluster's
/// default, not the local topic's).
const PRODUCER_DEFAULTS: [(&str, &str); 3] = [
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("allow.auto.create.topics", "false"),
];

/// Mirrors local topics to a Kafka cluster: connector class `KafkaSink`.
///
/// The runtime feeds it the connector's `topics` (or `topics.regex`); each
/// record goes to the renamed remote topic (`topic.rename.format`), **to
/// the same partition number**, with its key and value bytes, timestamp
/// and headers unchanged. A remote topic that does not exist is created
/// with the local topic's partition count; one with fewer partitions than
/// the local topic is an error (records keep their partition). Delivery is
/// at-least-once: offsets are committed only after every record sent
/// before the flush is acknowledged (`acks=all`, idempotent producer), and
/// records after the last commit are sent again after a failure.
///
/// Keys (besides the runtime's `topics` or `topics.regex`):
///
/// | key | default | meaning |
/// | --- | --- | --- |
/// | `bootstrap.servers` | required | the cluster's brokers, `host:port,...` |
/// | `topic.rename.format` | `${topic}` | the remote topic's name; `${topic}` is replaced by the local one's, as in `edge.${topic}` |
/// | `topic.creation.enable` | `true` | create a missing remote topic (CreateTopics); when `false`, a missing one is an error |
/// | `topic.creation.replication.factor` | `-1` | replication factor of created topics; `-1` is the cluster's default |
/// | `timeout.ms` | `30000` | bound on each blocking request: metadata, topic creation, a flush, the wait for room in the producer's queue |
/// | `kafka.<property>` | | any librdkafka property, without the prefix (`kafka.compression.type=lz4`, `kafka.linger.ms=20`); checked by `validate` |
///
/// librdkafka defaults it sets (a `kafka.*` key overrides them):
/// `enable.idempotence=true`, `acks=all`, `allow.auto.create.topics=false`,
/// `client.id=embedlog-connect-<name>`. `key.converter` and
/// `value.converter` default to `bytes`; a record whose key or value is
/// neither bytes nor a string (after transforms) is an error.
///
/// ```
/// use embedlog::connect::{ConnectorConfig, KafkaSinkConnector, SinkConnector};
/// let config = ConnectorConfig::new("to-kafka", KafkaSinkConnector::CLASS)
///     .set("topics", "orders,payments")
///     .set("bootstrap.servers", "kafka-1:9092,kafka-2:9092")
///     .set("topic.rename.format", "edge.${topic}")
///     .set("kafka.compression.type", "lz4");
/// KafkaSinkConnector.validate(&config)?;
/// # Ok::<(), embedlog::connect::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct KafkaSinkConnector;

impl KafkaSinkConnector {
    /// The class name to register it under (`connector.class`).
    pub const CLASS: &'static str = "KafkaSink";
}

impl SinkConnector for KafkaSinkConnector {
    fn validate(&self, config: &ConnectorConfig) -> Result<()> {
        SinkSettings::from_config(config).map(|_| ())
    }

    fn defaults(&self) -> Vec<(&'static str, &'static str)> {
        vec![("key.converter", "bytes"), ("value.converter", "bytes")]
    }

    fn task(&self) -> Box<dyn SinkTask> {
        Box::new(KafkaSinkTask::default())
    }
}

/// The sink's configuration.
#[derive(Clone, Debug)]
struct SinkSettings {
    common: Settings,
    /// `topic.creation.enable`.
    create: bool,
    /// `topic.creation.replication.factor`.
    replication: i32,
}

impl SinkSettings {
    fn from_config(config: &ConnectorConfig) -> Result<SinkSettings> {
        let common = Settings::from_config(config, &PRODUCER_DEFAULTS)?;
        let create = config.parse_or(CREATE_ENABLE, true)?;
        let replication = config.parse_or(CREATE_REPLICATION, -1i32)?;
        if replication == 0 || replication < -1 {
            return Err(Error::config(
                &common.name,
                CREATE_REPLICATION,
                format!("{replication}: -1 (the cluster's default) or at least 1 expected"),
            ));
        }
        Ok(SinkSettings {
            common,
            create,
            replication,
        })
    }
}

/// The first delivery that failed since the task started.
#[derive(Clone, Debug)]
struct DeliveryFailure {
    topic: String,
    partition: i32,
    error: KafkaError,
}

/// The producer's context: keeps the first failed delivery, which fails
/// every later flush (its record is lost to this producer, so no offset
/// after it may be committed; the task's successor sends it again).
#[derive(Debug, Default)]
struct Deliveries {
    failure: Mutex<Option<DeliveryFailure>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            let mut failure = self.failure.lock();
            if failure.is_none() {
                // The first only: those after it usually fail alike.
                tracing::error!(
                    topic = message.topic(),
                    partition = message.partition(),
                    error = %error,
                    "kafka sink: a record was not delivered; the task fails at its next flush"
                );
                *failure = Some(DeliveryFailure {
                    topic: message.topic().to_string(),
                    partition: message.partition(),
                    error: error.clone(),
                });
            }
        }
    }
}

impl Deliveries {
    /// The first failure, as the error `flush` returns (retriable when
    /// the broker's error is).
    fn check(&self) -> Result<()> {
        match &*self.failure.lock() {
            None => Ok(()),
            Some(f) => Err(kafka_error(
                &format!(
                    "a record for {}/{} was not delivered; no offset after it is committed",
                    f.topic, f.partition
                ),
                f.error.clone(),
            )),
        }
    }
}

/// A remote topic the sink has checked.
#[derive(Clone, Debug)]
struct RemoteTopic {
    name: String,
    partitions: u32,
}

/// What a started task holds.
struct Running {
    settings: SinkSettings,
    producer: BaseProducer<Deliveries>,
    /// Metadata and topic creation, on its own connection (not an
    /// idempotent producer, so it asks for no producer id).
    admin: AdminClient<DefaultClientContext>,
    /// The local broker's admin, for the local partition counts.
    local: Option<Admin>,
    /// By local topic: its remote topic, checked.
    topics: HashMap<String, RemoteTopic>,
    /// By local partition: the offset after the last record sent, so that
    /// records put again (after a retriable error) are not sent twice.
    next: HashMap<TopicPartition, Offset>,
}

/// Creates a remote topic (name, partitions) in place of CreateTopics, in
/// tests: the mock broker has no CreateTopics.
type CreateTopic = dyn Fn(&str, u32) -> Result<()> + Send;

/// A `KafkaSink` task: one idempotent librdkafka producer.
#[derive(Default)]
pub(super) struct KafkaSinkTask {
    running: Option<Running>,
    #[cfg(test)]
    create_hook: Option<Box<CreateTopic>>,
}

impl SinkTask for KafkaSinkTask {
    fn start(&mut self, context: &SinkTaskContext) -> Result<()> {
        let settings = SinkSettings::from_config(&context.config)?;
        let producer: BaseProducer<Deliveries> = settings
            .common
            .client
            .create_with_context(Deliveries::default())
            .map_err(|e| kafka_error("create the producer", e))?;
        let mut admin_config = settings.common.client.clone();
        admin_config
            .remove("enable.idempotence")
            .remove("transactional.id")
            .set("allow.auto.create.topics", "false");
        let admin = admin_config
            .create()
            .map_err(|e| kafka_error("create the admin client", e))?;
        self.running = Some(Running {
            settings,
            producer,
            admin,
            local: context.admin.clone(),
            topics: HashMap::new(),
            next: HashMap::new(),
        });
        Ok(())
    }

    fn put(&mut self, records: &[SinkRecord]) -> Result<()> {
        self.put_records(records)
    }

    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, Offset>) -> Result<()> {
        let run = self.running.as_mut().ok_or_else(not_started)?;
        let timeout = run.settings.common.timeout;
        if let Err(e) = run.producer.flush(timeout) {
            let in_flight = run.producer.in_flight_count();
            return Err(kafka_error(
                &format!("wait {timeout:?} for {in_flight} records to be acknowledged"),
                e,
            ));
        }
        run.producer.context().check()
    }

    fn stop(&mut self) {
        // Dropping the producer abandons what is still in flight: nothing
        // after the last flush was committed, so it is sent again.
        self.running = None;
    }
}

impl KafkaSinkTask {
    /// Sends `records` (in order), skipping those sent before.
    fn put_records(&mut self, records: &[SinkRecord]) -> Result<()> {
        #[cfg(test)]
        let hook = self.create_hook.as_deref();
        #[cfg(not(test))]
        let hook = None;
        let run = self.running.as_mut().ok_or_else(not_started)?;
        if let Some(f) = &*run.producer.context().failure.lock() {
            return Err(Error::external(
                SYSTEM,
                &format!(
                    "a record for {}/{} was not delivered, so this task sends no more; \
                     its successor sends again from the last committed offsets",
                    f.topic, f.partition
                ),
                f.error.clone(),
            ));
        }
        for record in records {
            let tp = TopicPartition::new(record.topic.as_str(), record.partition);
            if run.next.get(&tp).is_some_and(|&next| record.offset < next) {
                continue;
            }
            let remote = run.remote_topic(&record.topic, record.partition, hook)?;
            run.send(&remote, record)?;
            run.next.insert(tp, record.offset + 1);
        }
        // Serve delivery reports.
        run.producer.poll(Duration::ZERO);
        Ok(())
    }
}

impl Running {
    /// The remote topic for local `topic`, checked (and created) the
    /// first time, and checked again when `partition` is beyond what it
    /// had.
    fn remote_topic(
        &mut self,
        topic: &str,
        partition: u32,
        hook: Option<&CreateTopic>,
    ) -> Result<String> {
        if let Some(remote) = self.topics.get(topic)
            && partition < remote.partitions
        {
            return Ok(remote.name.clone());
        }
        let name = self.settings.common.rename(topic);
        let local = self.local_partitions(topic)?;
        let needed = local.unwrap_or(0).max(partition + 1);
        let partitions = match self.remote_partitions(&name)? {
            Some(n) => n,
            None => {
                let Some(count) = local else {
                    return Err(self.cannot_create(
                        &name,
                        needed,
                        &format!(
                            "the partition count of local topic {topic:?} is not known \
                             (no local topic of that name: renamed by a transform?)"
                        ),
                    ));
                };
                if !self.settings.create {
                    return Err(self.cannot_create(
                        &name,
                        needed,
                        "topic.creation.enable is false",
                    ));
                }
                match hook {
                    Some(create) => create(&name, count)?,
                    None => self.create(&name, count)?,
                }
                tracing::info!(
                    topic = name,
                    partitions = count,
                    "kafka sink: created the remote topic"
                );
                self.wait_for_topic(&name)?
            }
        };
        if partitions < needed {
            return Err(Error::External {
                system: SYSTEM,
                reason: format!(
                    "remote topic {name:?} has {partitions} partitions but local topic \
                     {topic:?} needs {needed}: records keep their partition number, so add \
                     partitions to {name:?} on the cluster"
                ),
                source: None,
            });
        }
        self.topics.insert(
            topic.to_string(),
            RemoteTopic {
                name: name.clone(),
                partitions,
            },
        );
        Ok(name)
    }

    /// The local partition count of `topic`; `None` without a local admin
    /// or a local topic of that name.
    fn local_partitions(&self, topic: &str) -> Result<Option<u32>> {
        let Some(admin) = &self.local else {
            return Ok(None);
        };
        match admin.describe_topic(topic) {
            Ok(d) => Ok(Some(u32::try_from(d.partitions.len()).unwrap_or(u32::MAX))),
            Err(crate::Error::UnknownTopic { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The remote partition count of `name`, `None` if it does not exist.
    fn remote_partitions(&self, name: &str) -> Result<Option<u32>> {
        let topics = remote_topics(self.admin.inner(), Some(name), self.settings.common.timeout)?;
        Ok(topics.into_iter().find(|(t, _)| t == name).map(|(_, n)| n))
    }

    /// Waits until the cluster's metadata shows a topic just created.
    fn wait_for_topic(&self, name: &str) -> Result<u32> {
        let deadline = Instant::now() + self.settings.common.timeout;
        loop {
            if let Some(n) = self.remote_partitions(name)? {
                return Ok(n);
            }
            if Instant::now() >= deadline {
                return Err(Error::Retriable(format!(
                    "{SYSTEM}: remote topic {name:?} was created but its metadata did not \
                     show it within {:?}",
                    self.settings.common.timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates remote topic `name` with `partitions` partitions.
    fn create(&self, name: &str, partitions: u32) -> Result<()> {
        let timeout = self.settings.common.timeout;
        let count = i32::try_from(partitions).unwrap_or(i32::MAX);
        let topic = NewTopic::new(
            name,
            count,
            TopicReplication::Fixed(self.settings.replication),
        );
        let options = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        let what = |why: &str| {
            format!(
                "create remote topic {name:?} with {partitions} partitions ({why}; create it \
                 yourself, or let the bridge's principal create topics)"
            )
        };
        let results = pollster::block_on(self.admin.create_topics([&topic], &options))
            .map_err(|e| kafka_error(&what("the request failed"), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(error_code(&what("the cluster refused"), code)),
            }
        }
        Ok(())
    }

    fn cannot_create(&self, name: &str, needed: u32, why: &str) -> Error {
        Error::External {
            system: SYSTEM,
            reason: format!(
                "remote topic {name:?} does not exist and the sink does not create it: {why}; \
                 create it with at least {needed} partitions"
            ),
            source: None,
        }
    }

    /// Hands `record` to the producer for remote topic `topic`, waiting
    /// (up to `timeout.ms`, serving delivery reports) while its queue is
    /// full.
    fn send(&self, topic: &str, record: &SinkRecord) -> Result<()> {
        let name = &self.settings.common.name;
        let key = payload(name, "key.converter", record.key.as_ref(), record)?;
        let value = payload(name, "value.converter", record.value.as_ref(), record)?;
        let partition = i32::try_from(record.partition).map_err(|_| Error::External {
            system: SYSTEM,
            reason: format!("partition {} is beyond Kafka's range", record.partition),
            source: None,
        })?;
        let mut out: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(partition);
        if !record.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for h in &record.headers {
                headers = headers.insert(Header {
                    key: h.key(),
                    value: h.value().map(|v| &v[..]),
                });
            }
            out = out.headers(headers);
        }
        if let Some(key) = key {
            out = out.key(key);
        }
        if let Some(value) = value {
            out = out.payload(value);
        }
        if record.timestamp >= 0 {
            out = out.timestamp(record.timestamp);
        }
        let timeout = self.settings.common.timeout;
        let deadline = Instant::now() + timeout;
        loop {
            match self.producer.send(out) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Retriable(format!(
                            "{SYSTEM}: the producer's queue stayed full for {timeout:?} \
                             (the cluster is slow or unreachable)"
                        )));
                    }
                    out = back;
                    self.producer.poll(Duration::from_millis(100));
                    self.producer.context().check()?;
                }
                Err((e, _)) => {
                    return Err(kafka_error(
                        &format!(
                            "send {}/{} offset {} to {topic:?}",
                            record.topic, record.partition, record.offset
                        ),
                        e,
                    ));
                }
            }
        }
    }
}

fn not_started() -> Error {
    Error::External {
        system: SYSTEM,
        reason: "the sink task was not started".to_string(),
        source: None,
    }
}

/// A key or value as the bytes to send: bytes as they are, a string as
/// UTF-8, null as none.
fn payload<'a>(
    connector: &str,
    converter_key: &str,
    value: Option<&'a Value>,
    record: &SinkRecord,
) -> Result<Option<&'a [u8]>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(&b[..])),
        Some(Value::String(s)) => Ok(Some(s.as_bytes())),
        Some(other) => Err(Error::config(
            connector,
            converter_key,
            format!(
                "the Kafka sink sends bytes, but {}/{} offset {} has a {} there: use the \
                 bytes converter (the default), or string, and no transform that makes maps",
                record.topic,
                record.partition,
                record.offset,
                other.kind()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MockKafka, MockRecord};
    use super::*;
    use crate::{Broker, Header as LogHeader, TopicConfig};
    use bytes::Bytes;
    use rdkafka::types::RDKafkaRespErr;
    use std::sync::Arc;

    fn config(mock: &MockKafka) -> ConnectorConfig {
        ConnectorConfig::new("mirror", KafkaSinkConnector::CLASS)
            .set("topics", "orders")
            .set("bootstrap.servers", mock.bootstrap_servers())
            .set("timeout.ms", "30000")
    }

    fn record(topic: &str, partition: u32, offset: Offset) -> SinkRecord {
        SinkRecord {
            topic: topic.to_string(),
            partition,
            offset,
            timestamp: 1_700_000_000_000 + i64::try_from(offset).unwrap(),
            key: Some(Value::Bytes(Bytes::from(format!("k{offset}")))),
            value: Some(Value::Bytes(Bytes::from(format!("v{offset}")))),
            headers: Vec::new(),
        }
    }

    /// A started task whose remote topics the mock creates, with a local
    /// broker holding `local` topics (name, partitions).
    fn started(
        mock: &Arc<MockKafka>,
        config: ConnectorConfig,
        local: &[(&str, u32)],
    ) -> (KafkaSinkTask, tempfile::TempDir, Broker) {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        for (name, partitions) in local {
            broker
                .admin()
                .create_topic(name, TopicConfig::default().partitions(*partitions))
                .unwrap();
        }
        let creator = Arc::clone(mock);
        let mut task = KafkaSinkTask {
            running: None,
            create_hook: Some(Box::new(move |name, partitions| {
                creator.create_topic(name, i32::try_from(partitions).unwrap());
                Ok(())
            })),
        };
        task.start(&SinkTaskContext {
            config,
            task: 0,
            admin: Some(broker.admin()),
        })
        .unwrap();
        (task, dir, broker)
    }

    fn expected(r: &SinkRecord, topic: &str) -> MockRecord {
        let bytes = |v: &Option<Value>| match v {
            Some(Value::Bytes(b)) => Some(b.to_vec()),
            Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
            _ => None,
        };
        MockRecord {
            topic: topic.to_string(),
            partition: i32::try_from(r.partition).unwrap(),
            key: bytes(&r.key),
            value: bytes(&r.value),
            timestamp: Some(r.timestamp),
            headers: r
                .headers
                .iter()
                .map(|h| (h.key().to_string(), h.value().map(|v| v.to_vec())))
                .collect(),
        }
    }

    #[test]
    fn records_arrive_unchanged_in_their_partition_of_a_created_topic() {
        let mock = Arc::new(MockKafka::start());
        let c = config(&mock).set("topic.rename.format", "edge.${topic}");
        let (mut task, _dir, _broker) = started(&mock, c, &[("orders", 3)]);
        let mut records = Vec::new();
        for offset in 0..4 {
            for partition in [2, 0] {
                records.push(record("orders", partition, offset));
            }
        }
        // Repeated names, in order, a null value and an empty one.
        records[0].headers = vec![
            LogHeader::new("trace", "a"),
            LogHeader::null("nothing"),
            LogHeader::new("trace", "b"),
            LogHeader::new("empty", ""),
        ];
        records[1].key = None;
        records[2].value = None; // a tombstone
        records[3].value = Some(Value::from("text"));
        records[3].key = Some(Value::Null);
        task.put(&records).unwrap();
        task.flush(&BTreeMap::new()).unwrap();

        assert_eq!(mock.partitions("edge.orders"), Some(3));
        assert_eq!(
            mock.partitions("orders"),
            None,
            "only the renamed topic exists"
        );
        let mut want: Vec<MockRecord> =
            records.iter().map(|r| expected(r, "edge.orders")).collect();
        want.sort_by_key(|r| r.partition);
        assert_eq!(mock.read("edge.orders", records.len()), want);
        task.stop();
    }

    #[test]
    fn records_put_again_after_a_retriable_error_are_not_sent_twice() {
        let mock = Arc::new(MockKafka::start());
        let (mut task, _dir, _broker) = started(&mock, config(&mock), &[("orders", 1)]);
        let records: Vec<_> = (0..5).map(|o| record("orders", 0, o)).collect();
        task.put(&records[..3]).unwrap();
        task.put(&records).unwrap();
        task.flush(&BTreeMap::new()).unwrap();
        let want: Vec<_> = records.iter().map(|r| expected(r, "orders")).collect();
        assert_eq!(mock.read("orders", 5), want);
    }

    #[test]
    fn an_existing_remote_topic_is_used_if_it_has_enough_partitions() {
        let mock = Arc::new(MockKafka::start());
        mock.create_topic("orders", 4);
        mock.create_topic("payments", 1);
        let c = config(&mock).set("topic.creation.enable", "false");
        let (mut task, _dir, _broker) =
            started(&mock, c, &[("orders", 2), ("payments", 2), ("refunds", 1)]);
        task.put(&[record("orders", 1, 0)]).unwrap();
        task.flush(&BTreeMap::new()).unwrap();
        assert_eq!(
            mock.read("orders", 1),
            vec![expected(&record("orders", 1, 0), "orders")]
        );

        let e = task
            .put(&[record("payments", 0, 0)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"payments\" has 1 partitions") && e.contains("needs 2"),
            "{e}"
        );
        let e = task
            .put(&[record("refunds", 0, 0)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"refunds\" does not exist") && e.contains("topic.creation.enable"),
            "{e}"
        );
    }

    #[test]
    fn the_mock_refuses_create_topics_and_the_error_says_what_to_do() {
        // The real CreateTopics path, against a broker without it.
        let mock = MockKafka::start();
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        broker
            .admin()
            .create_topic("orders", TopicConfig::default().partitions(2))
            .unwrap();
        let mut task = KafkaSinkTask::default();
        task.start(&SinkTaskContext {
            config: config(&mock).set("timeout.ms", "1000"),
            task: 0,
            admin: Some(broker.admin()),
        })
        .unwrap();
        let e = task.put(&[record("orders", 0, 0)]).unwrap_err().to_string();
        assert!(
            e.contains("create remote topic \"orders\" with 2 partitions")
                && e.contains("create it yourself"),
            "{e}"
        );
        assert_eq!(mock.partitions("orders"), None, "no auto-creation");
    }

    #[test]
    fn values_that_are_not_bytes_name_the_converter() {
        let mock = Arc::new(MockKafka::start());
        let (mut task, _dir, _broker) = started(&mock, config(&mock), &[("orders", 1)]);
        let mut r = record("orders", 0, 0);
        r.value = Some(Value::map([("id", Value::Int(1))]));
        let e = task.put(&[r]).unwrap_err();
        assert!(
            matches!(&e, Error::Config { key, reason, .. }
                if key == "value.converter" && reason.contains("a map") && reason.contains("bytes converter")),
            "{e}"
        );
    }

    #[test]
    fn a_failed_delivery_fails_flush_and_later_puts() {
        let mock = Arc::new(MockKafka::start());
        let (mut task, _dir, _broker) = started(&mock, config(&mock), &[("orders", 1)]);
        task.put(&[record("orders", 0, 0)]).unwrap();
        task.flush(&BTreeMap::new()).unwrap();
        mock.fail_produce(&[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED]);
        task.put(&[record("orders", 0, 1)]).unwrap();
        let e = task.flush(&BTreeMap::new()).unwrap_err().to_string();
        assert!(
            e.contains("orders/0 was not delivered") && e.contains("uthoriz"),
            "{e}"
        );
        let e = task.put(&[record("orders", 0, 2)]).unwrap_err();
        assert!(
            !e.is_retriable() && e.to_string().contains("successor"),
            "{e}"
        );
        assert!(task.flush(&BTreeMap::new()).is_err(), "the failure sticks");
        assert_eq!(mock.end_offsets("orders"), [1]);
    }

    #[test]
    fn bad_configuration_is_refused() {
        let base = ConnectorConfig::new("mirror", KafkaSinkConnector::CLASS)
            .set("bootstrap.servers", "127.0.0.1:9");
        for (key, value) in [
            ("topic.creation.enable", "maybe"),
            ("topic.creation.replication.factor", "0"),
            ("topic.creation.replication.factor", "-2"),
        ] {
            let e = KafkaSinkConnector
                .validate(&base.clone().set(key, value))
                .unwrap_err();
            assert!(
                matches!(&e, Error::Config { key: k, .. } if k == key),
                "{key}={value}: {e}"
            );
        }
        KafkaSinkConnector.validate(&base).unwrap();
        assert_eq!(
            KafkaSinkConnector.defaults(),
            [("key.converter", "bytes"), ("value.converter", "bytes")]
        );
    }
}

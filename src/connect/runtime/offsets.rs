//! Source offsets in a compacted topic, in Kafka Connect's layout: the key
//! is the JSON array `["<connector>", {source partition}]`, the value the
//! JSON of the offset map (a tombstone forgets the partition). One
//! partition, so the latest record of a key is its last in the log.

use super::super::error::{Error, Result};
use super::super::spi::OffsetStorageReader;
use super::super::value::{Map, Value};
use crate::worker::Stop;
use crate::{
    Broker, CleanupPolicy, ConsumerConfig, Error as LogError, IsolationLevel, OffsetReset, Record,
    TopicConfig,
};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// The key under which `connector`'s offset of `partition` is stored.
pub(super) fn offset_key(connector: &str, partition: &Map) -> Bytes {
    let key = serde_json::Value::Array(vec![
        serde_json::Value::String(connector.to_string()),
        Value::Map(partition.clone()).to_json(),
    ]);
    Bytes::from(key.to_string().into_bytes())
}

/// The record storing `offset` for `partition` of `connector`.
pub(super) fn offset_record(connector: &str, partition: &Map, offset: &Map) -> Record {
    Record {
        key: Some(offset_key(connector, partition)),
        value: Some(Bytes::from(
            Value::Map(offset.clone()).to_json_string().into_bytes(),
        )),
        timestamp: crate::now_ms(),
        headers: Vec::new(),
    }
}

/// The connector and source partition a stored key names; `None` for a key
/// that is not Connect's layout (another tool's record: skipped).
fn parse_key(key: &[u8]) -> Option<(String, Map)> {
    let json: serde_json::Value = serde_json::from_slice(key).ok()?;
    let serde_json::Value::Array(items) = json else {
        return None;
    };
    match items.as_slice() {
        [
            serde_json::Value::String(name),
            partition @ serde_json::Value::Object(_),
        ] => match Value::from_json(partition) {
            Value::Map(m) => Some((name.clone(), m)),
            _ => None,
        },
        _ => None,
    }
}

/// Makes the offsets topic if it is missing: compacted, one partition.
///
/// # Errors
/// The broker's, when it cannot create it.
pub(super) fn ensure_topic(broker: &Broker, topic: &str) -> Result<()> {
    let config = TopicConfig::default()
        .partitions(1)
        .cleanup_policy(CleanupPolicy::Compact);
    match broker.admin().create_topic(topic, config) {
        Ok(_) => Ok(()),
        Err(LogError::TopicExists { .. }) => {
            // Retention would delete offsets: they must be compacted.
            let policy = broker.topic(topic)?.config().get_cleanup_policy();
            if policy == CleanupPolicy::Compact {
                Ok(())
            } else {
                Err(Error::config(
                    "worker",
                    "offset.storage.topic",
                    format!(
                        "{topic} exists with cleanup.policy={policy:?}; source offsets need a \
                         compacted topic (cleanup.policy=compact) that retention never deletes"
                    ),
                ))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Every offset stored for `connector`, read committed up to the end the
/// topic had when the read began (waiting, while `stop` allows, for open
/// transactions below it to end). `None` if a stop came first.
///
/// # Errors
/// The broker's; a stored value that is not a JSON object is
/// [`Error::Conversion`].
pub(super) fn read(
    broker: &Broker,
    topic: &str,
    connector: &str,
    stop: &Stop,
) -> Result<Option<OffsetStorageReader>> {
    let end = broker.partition(topic, 0)?.end_offset();
    let mut consumer = broker.consumer(
        ConsumerConfig::default()
            .isolation_level(IsolationLevel::ReadCommitted)
            .offset_reset(OffsetReset::Earliest)
            .max_poll_records(10_000),
    );
    consumer.assign([(topic, 0)])?;
    let mut offsets: BTreeMap<String, (Map, Map)> = BTreeMap::new();
    let began = std::time::Instant::now();
    let mut warned = false;
    while consumer.position((topic, 0))? < end {
        if stop.requested() {
            return Ok(None);
        }
        if !warned && began.elapsed() > Duration::from_secs(10) {
            warned = true;
            tracing::warn!(
                topic,
                connector,
                "embedlog connect: still reading stored offsets after 10 s: an open transaction \
                 on the offsets topic holds read-committed reads back until it ends or times out"
            );
        }
        for r in consumer.poll(Duration::from_millis(100))? {
            let Some((name, partition)) = r.key().and_then(parse_key) else {
                continue;
            };
            if name != connector {
                continue;
            }
            let id = Value::Map(partition.clone()).to_json_string();
            match r.value() {
                None => {
                    offsets.remove(&id);
                }
                Some(v) => {
                    let json: serde_json::Value =
                        serde_json::from_slice(v).map_err(|e| Error::Conversion {
                            converter: "json",
                            reason: format!(
                                "{topic}@{}: the stored offset of {id} is not JSON: {e}",
                                r.offset
                            ),
                        })?;
                    let Value::Map(offset) = Value::from_json(&json) else {
                        return Err(Error::Conversion {
                            converter: "json",
                            reason: format!(
                                "{topic}@{}: the stored offset of {id} is not a JSON object",
                                r.offset
                            ),
                        });
                    };
                    offsets.insert(id, (partition, offset));
                }
            }
        }
    }
    Ok(Some(OffsetStorageReader::from_offsets(
        offsets.into_values(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kafka_connects_layout_and_parse_back() {
        let partition: Map = [("filename".to_string(), Value::from("/tmp/a.txt"))].into();
        let key = offset_key("lines", &partition);
        assert_eq!(&key[..], br#"["lines",{"filename":"/tmp/a.txt"}]"#);
        assert_eq!(parse_key(&key), Some(("lines".to_string(), partition)));
        assert_eq!(parse_key(b"not json"), None);
        assert_eq!(parse_key(br#"["lines"]"#), None);
        assert_eq!(parse_key(br#"{"a":1}"#), None);
    }

    #[test]
    fn the_latest_offset_per_partition_of_this_connector_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(dir.path()).unwrap();
        ensure_topic(&broker, "offsets").unwrap();
        ensure_topic(&broker, "offsets").unwrap(); // idempotent
        let producer = broker.producer(crate::ProducerConfig::default());
        let a: Map = [("file".to_string(), Value::from("a"))].into();
        let b: Map = [("file".to_string(), Value::from("b"))].into();
        let at = |n: i64| -> Map { [("position".to_string(), Value::Int(n))].into() };
        producer
            .send("offsets", offset_record("c1", &a, &at(1)))
            .unwrap();
        producer
            .send("offsets", offset_record("c1", &b, &at(5)))
            .unwrap();
        producer
            .send("offsets", offset_record("c2", &a, &at(9)))
            .unwrap();
        producer
            .send("offsets", offset_record("c1", &a, &at(3)))
            .unwrap();
        producer
            .send("offsets", Record::new("junk").key("junk"))
            .unwrap();
        producer
            .send("offsets", Record::tombstone(offset_key("c1", &b)))
            .unwrap();
        producer.flush().unwrap();
        let stop = Stop::default();
        let read = read(&broker, "offsets", "c1", &stop).unwrap().unwrap();
        assert_eq!(read.offset(&a), Some(&at(3)));
        assert_eq!(read.offset(&b), None, "a tombstone forgets");
        let read = read_other(&broker, &stop);
        assert_eq!(read.offset(&a), Some(&at(9)));
        broker.close().unwrap();
    }

    fn read_other(broker: &Broker, stop: &Stop) -> OffsetStorageReader {
        read(broker, "offsets", "c2", stop).unwrap().unwrap()
    }
}

//! What a connector implements: [`SourceConnector`] / [`SourceTask`] to
//! bring records in, [`SinkConnector`] / [`SinkTask`] to send them out, and
//! the records and contexts they exchange with the runtime.

use super::config::ConnectorConfig;
use super::error::Result;
use super::value::{Map, Value};
use crate::{Admin, Header, Offset, TopicPartition};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A record on its way through transforms: what a source produces and,
/// with its partition set, what a sink receives.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectRecord {
    /// The topic.
    pub topic: String,
    /// The partition; `None` lets the producer's partitioner choose.
    pub partition: Option<u32>,
    /// The key.
    pub key: Option<Value>,
    /// The value; `None` is a tombstone.
    pub value: Option<Value>,
    /// Milliseconds since the epoch; `None` for "now".
    pub timestamp: Option<i64>,
    /// Headers, in order; names may repeat.
    pub headers: Vec<Header>,
}

/// A record a [`SourceTask`] produced, with where it came from: its source
/// partition (a file, a table) and its position there. The runtime stores
/// the latest offset of each source partition and hands it back through
/// [`OffsetStorageReader`] after a restart.
///
/// ```
/// use embedlog::connect::{SourceRecord, Value};
/// let record = SourceRecord::new("lines", Value::from("hello"))
///     .source_partition([("filename", Value::from("/tmp/in.txt"))])
///     .source_offset([("position", Value::Int(6))]);
/// assert_eq!(record.record.topic, "lines");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    /// The source partition (for example `{"filename": ...}`).
    pub source_partition: Map,
    /// The position after this record in its source partition.
    pub source_offset: Map,
    /// The record.
    pub record: ConnectRecord,
}

impl SourceRecord {
    /// A record for `topic` with `value`, no key, timestamped when sent.
    pub fn new(topic: impl Into<String>, value: impl Into<Option<Value>>) -> Self {
        SourceRecord {
            source_partition: Map::new(),
            source_offset: Map::new(),
            record: ConnectRecord {
                topic: topic.into(),
                partition: None,
                key: None,
                value: value.into(),
                timestamp: None,
                headers: Vec::new(),
            },
        }
    }

    /// Sets the source partition.
    pub fn source_partition<K: Into<String>>(
        mut self,
        fields: impl IntoIterator<Item = (K, Value)>,
    ) -> Self {
        self.source_partition = fields.into_iter().map(|(k, v)| (k.into(), v)).collect();
        self
    }

    /// Sets the source offset.
    pub fn source_offset<K: Into<String>>(
        mut self,
        fields: impl IntoIterator<Item = (K, Value)>,
    ) -> Self {
        self.source_offset = fields.into_iter().map(|(k, v)| (k.into(), v)).collect();
        self
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Value>) -> Self {
        self.record.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.record.partition = Some(partition);
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.record.timestamp = Some(timestamp);
        self
    }

    /// Adds a header.
    pub fn header(mut self, header: Header) -> Self {
        self.record.headers.push(header);
        self
    }
}

/// A record a [`SinkTask`] receives: converted and transformed, with the
/// partition and offset it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkRecord {
    /// The topic (as transforms left it).
    pub topic: String,
    /// The partition it was read from.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: Offset,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The key.
    pub key: Option<Value>,
    /// The value; `None` is a tombstone.
    pub value: Option<Value>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// Reads the offsets the runtime stored for this connector's source
/// partitions, as of the task's start.
#[derive(Clone, Debug, Default)]
pub struct OffsetStorageReader {
    /// By the partition's JSON text: the partition and its offset.
    offsets: Arc<BTreeMap<String, (Map, Map)>>,
}

impl OffsetStorageReader {
    /// A reader holding `offsets` (source partition, offset) pairs; the
    /// last pair for a partition wins. What a runtime hands a task, and
    /// what a connector's tests give one.
    ///
    /// ```
    /// use embedlog::connect::{Map, OffsetStorageReader, Value};
    /// let file: Map = [("filename".to_string(), Value::from("in.txt"))].into();
    /// let at: Map = [("position".to_string(), Value::Int(42))].into();
    /// let reader = OffsetStorageReader::from_offsets([(file.clone(), at.clone())]);
    /// assert_eq!(reader.offset(&file), Some(&at));
    /// ```
    pub fn from_offsets(offsets: impl IntoIterator<Item = (Map, Map)>) -> Self {
        let offsets = offsets
            .into_iter()
            .map(|(p, o)| (Value::Map(p.clone()).to_json_string(), (p, o)))
            .collect();
        OffsetStorageReader {
            offsets: Arc::new(offsets),
        }
    }

    /// The stored offset of `partition`, `None` if none was ever stored.
    pub fn offset(&self, partition: &Map) -> Option<&Map> {
        let key = Value::Map(partition.clone()).to_json_string();
        self.offsets.get(&key).map(|(_, offset)| offset)
    }

    /// Every stored source partition and its offset.
    pub fn offsets(&self) -> impl Iterator<Item = (&Map, &Map)> {
        self.offsets.values().map(|(p, o)| (p, o))
    }
}

/// What a source task is given when it starts.
#[derive(Clone, Debug)]
pub struct SourceTaskContext {
    /// The task's configuration (from [`SourceConnector::task_configs`]).
    pub config: ConnectorConfig,
    /// The task's number, from 0.
    pub task: usize,
    /// The stored source offsets.
    pub offsets: OffsetStorageReader,
    /// The broker's admin client, to create or inspect the topics the
    /// task writes (the Kafka bridge makes local topics with the remote
    /// partition counts). `None` when a task runs outside a runtime, as in
    /// a connector's own tests.
    pub admin: Option<Admin>,
}

/// What a sink task is given when it starts.
#[derive(Clone, Debug)]
pub struct SinkTaskContext {
    /// The task's configuration (from [`SinkConnector::task_configs`]).
    pub config: ConnectorConfig,
    /// The task's number, from 0.
    pub task: usize,
    /// The broker's admin client (see [`SourceTaskContext::admin`]).
    pub admin: Option<Admin>,
}

/// Splits a source connector's configuration into task configurations and
/// makes its tasks. One instance per running connector.
pub trait SourceConnector: Send {
    /// Checks the configuration; a runtime calls it before any task
    /// starts, so that a bad configuration fails the start with its error.
    ///
    /// # Errors
    /// [`Error::Config`](super::Error::Config) naming the bad key.
    fn validate(&self, config: &ConnectorConfig) -> Result<()>;

    /// Configuration defaults for this connector's class, applied under
    /// the user's configuration (a key the user sets wins). A connector
    /// that moves bytes unchanged, as the Kafka bridge does, defaults
    /// `key.converter` and `value.converter` to `bytes` here.
    fn defaults(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// At most `max_tasks` configurations, one per task to run.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    fn task_configs(
        &self,
        config: &ConnectorConfig,
        max_tasks: usize,
    ) -> Result<Vec<ConnectorConfig>> {
        let _ = max_tasks;
        Ok(vec![config.clone()])
    }

    /// A new, unstarted task (the runtime calls it again to restart a
    /// failed task).
    fn task(&self) -> Box<dyn SourceTask>;
}

/// Reads records from an external system.
pub trait SourceTask: Send {
    /// Opens what the task reads, resuming from `context.offsets`.
    ///
    /// # Errors
    /// Any: the task is failed and restarted after a backoff.
    fn start(&mut self, context: &SourceTaskContext) -> Result<()>;

    /// The next records, or none when nothing is there now. May block
    /// briefly (up to about a tenth of a second) waiting for data; the
    /// runtime calls it again in a loop until the task stops.
    ///
    /// # Errors
    /// [`Error::Retriable`](super::Error::Retriable) to be polled again
    /// after a backoff; anything else fails the task.
    fn poll(&mut self) -> Result<Vec<SourceRecord>>;

    /// Called after the offsets of every record polled so far are stored
    /// (for a source that acknowledges upstream).
    ///
    /// # Errors
    /// Any fails the task.
    fn commit(&mut self) -> Result<()> {
        Ok(())
    }

    /// Releases what the task holds. Called once, after the last `poll`.
    fn stop(&mut self) {}
}

/// Splits a sink connector's configuration into task configurations and
/// makes its tasks. The runtime feeds the tasks from a consumer group named
/// `connect-<connector name>` subscribed to the connector's `topics` (a
/// comma-separated list) or `topics.regex`.
pub trait SinkConnector: Send {
    /// Checks the configuration (see [`SourceConnector::validate`]).
    ///
    /// # Errors
    /// [`Error::Config`](super::Error::Config) naming the bad key.
    fn validate(&self, config: &ConnectorConfig) -> Result<()>;

    /// Configuration defaults for this connector's class, applied under
    /// the user's configuration (a key the user sets wins). A connector
    /// that moves bytes unchanged, as the Kafka bridge does, defaults
    /// `key.converter` and `value.converter` to `bytes` here.
    fn defaults(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// At most `max_tasks` configurations; by default `max_tasks` copies,
    /// since the group splits the partitions between them.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    fn task_configs(
        &self,
        config: &ConnectorConfig,
        max_tasks: usize,
    ) -> Result<Vec<ConnectorConfig>> {
        Ok(vec![config.clone(); max_tasks.max(1)])
    }

    /// A new, unstarted task.
    fn task(&self) -> Box<dyn SinkTask>;
}

/// Writes records to an external system.
pub trait SinkTask: Send {
    /// Opens what the task writes to.
    ///
    /// # Errors
    /// Any: the task is failed and restarted after a backoff.
    fn start(&mut self, context: &SinkTaskContext) -> Result<()>;

    /// Takes records, in offset order per partition. They need not be
    /// durable before [`flush`](Self::flush). A task that keeps them
    /// clones what it keeps (cheap: values share their bytes); the
    /// runtime keeps them to put again after a retriable error.
    ///
    /// # Errors
    /// [`Error::Retriable`](super::Error::Retriable): the same records are
    /// put again after a backoff. Anything else fails the task, and the
    /// records after the last commit are delivered again to its successor.
    fn put(&mut self, records: &[SinkRecord]) -> Result<()>;

    /// Makes everything put so far durable. `offsets` holds, per partition,
    /// the offset after the last record put; the runtime commits them
    /// when this returns `Ok`.
    ///
    /// # Errors
    /// Any: nothing is committed and the task is failed.
    fn flush(&mut self, offsets: &BTreeMap<TopicPartition, Offset>) -> Result<()>;

    /// Releases what the task holds (after a last `flush` on a clean stop).
    fn stop(&mut self) {}
}

//! Connect: import and export with durable offsets (feature `connect`).
//!
//! Kafka Connect's model, in-process. A [`Connect`] runtime runs
//! connectors on threads of the application (Kafka's standalone worker,
//! or Debezium's embedded engine):
//!
//! - a [`SourceConnector`] splits its configuration into tasks whose
//!   [`SourceTask::poll`] returns [`SourceRecord`]s, each carrying a
//!   source partition and a source offset; the runtime stores the latest
//!   offset of each source partition in a compacted topic
//!   (`connect-offsets`) and hands it back through [`OffsetStorageReader`]
//!   when the task restarts, after the records are stored
//!   ([`SourceGuarantee::AtLeastOnce`]) or in the same transaction as
//!   them ([`SourceGuarantee::ExactlyOnce`]);
//! - a [`SinkConnector`]'s [`SinkTask`]s are the members of a consumer
//!   group (`connect-<name>`): they receive [`SinkRecord`]s and make them
//!   durable in [`SinkTask::flush`], after which the group's offsets are
//!   committed (at-least-once).
//!
//! Between the log's bytes and a connector's [`Value`]s sit the
//! [`Converter`]s (`bytes`, `string`, `json`) and the single-message
//! transforms of a [`TransformChain`]; a record a converter or transform
//! cannot handle fails its task, or with `errors.tolerance=all` is skipped
//! (a sink's goes to its dead-letter topic). Configuration is a
//! [`ConnectorConfig`], built in Rust or read from Java properties files,
//! the format `embedlog connect standalone` takes.
//!
//! Built-in connectors: [`FileStreamSourceConnector`] and
//! [`FileStreamSinkConnector`]; with the `sqlite` feature the SQLite sink
//! and source (Kafka's JDBC connectors' semantics); with the `kafka`
//! feature the Kafka bridge, which mirrors topics to and from a Kafka
//! cluster.
//!
//! ```
//! use embedlog::Broker;
//! use embedlog::connect::{Connect, ConnectorConfig};
//! # let dir = tempfile::tempdir()?;
//! # let log = dir.path().join("app.log");
//! # std::fs::write(&log, "started\n")?;
//! let broker = Broker::open(dir.path().join("data"))?;
//! let connect = Connect::new(&broker)?;
//! // Lines of a file into a topic, resuming where it stopped after a restart.
//! connect.start(
//!     ConnectorConfig::new("app-log", "FileStreamSource")
//!         .set("file", log.display())
//!         .set("topic", "app-log"),
//! )?;
//! // The topic into another file, as the group connect-app-log-copy.
//! connect.start(
//!     ConnectorConfig::new("app-log-copy", "FileStreamSink")
//!         .set("topics", "app-log")
//!         .set("file", dir.path().join("copy.log").display()),
//! )?;
//! # let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
//! # while std::fs::read_to_string(dir.path().join("copy.log")).unwrap_or_default() != "started\n" {
//! #     assert!(std::time::Instant::now() < deadline);
//! #     std::thread::sleep(std::time::Duration::from_millis(10));
//! # }
//! connect.close(); // sources store their offsets, sinks flush and commit
//! broker.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builtin;
mod config;
mod convert;
mod error;
mod file;
#[cfg(feature = "kafka")]
mod kafka;
mod runtime;
mod spi;
#[cfg(feature = "sqlite")]
mod sqlite;
mod transform;
mod value;

pub use config::ConnectorConfig;
pub use convert::{ByteArrayConverter, Converter, JsonConverter, StringConverter, converter_named};
pub use error::{Error, Result};
pub use file::{FileStreamSinkConnector, FileStreamSourceConnector};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaSinkConnector, KafkaSourceConnector};
pub use runtime::{
    Connect, ConnectConfig, ConnectorKind, ConnectorStatus, SourceGuarantee, TaskState, TaskStatus,
};
pub use spi::{
    ConnectRecord, OffsetStorageReader, SinkConnector, SinkRecord, SinkTask, SinkTaskContext,
    SourceConnector, SourceRecord, SourceTask, SourceTaskContext,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteSinkConnector, SqliteSourceConnector};
pub use transform::{Transform, TransformChain};
pub use value::{Map, Value};

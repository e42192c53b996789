//! Connect: the pieces connectors are built from (feature `connect`).
//!
//! Kafka Connect's model, in-process: a [`SourceConnector`] splits its
//! configuration into tasks whose [`SourceTask::poll`] returns
//! [`SourceRecord`]s, each carrying a source partition and a source
//! offset; a [`SinkConnector`]'s [`SinkTask`]s receive [`SinkRecord`]s and
//! make them durable in [`SinkTask::flush`]. Between the log's bytes and a
//! connector's [`Value`]s sit the [`Converter`]s (`bytes`, `string`,
//! `json`) and the single-message transforms of a [`TransformChain`];
//! configuration is a [`ConnectorConfig`], built in Rust or read from a
//! Java properties file.
//!
//! This release has the data model, configuration, converters, transforms
//! and the connector traits. The runtime that runs tasks on threads and
//! stores source offsets, and the file, SQLite and Kafka connectors, are
//! not in it yet: see the CHANGELOG.

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

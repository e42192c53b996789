//! # embedlog
//!
//! Kafka's model of durable, partitioned event streams inside your own
//! process: no broker to run, no network hop, one directory on disk.
//!
//! This release provides the storage engine: a partition's [`Log`], a
//! segmented, offset-addressed log of record batches in **Kafka's record
//! batch v2 format, byte for byte**, with Kafka-layout offset and time
//! indexes, group-committed fsyncs and crash recovery.
//!
//! ```
//! use embedlog::{Durability, Log, LogConfig, ReadLimit, Record};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogConfig::default())?;
//!
//! // Append a batch: offsets are assigned from the log end.
//! log.append(&[
//!     Record::new("signed up").key("user-1").timestamp(1_700_000_000_000),
//!     Record::new("logged in").key("user-1").timestamp(1_700_000_000_500),
//! ])?;
//! // A sync append returns once it (and everything before) is fsync'd.
//! log.append_with(&[Record::new("paid").key("user-1")], Durability::Sync)?;
//!
//! // Read from any offset: zero-copy batches, decoded record by record.
//! for record in log.read(1, ReadLimit::default())?.records() {
//!     let record = record?;
//!     println!("{} {:?}", record.offset, record.value);
//! }
//! // Find the first record at or after a time.
//! assert_eq!(log.offset_for_timestamp(1_700_000_000_100)?, Some(1));
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Kafka concepts
//!
//! | Kafka | embedlog |
//! |---|---|
//! | partition log (segments, `.index`, `.timeindex`) | [`Log`] |
//! | record batch v2 | [`Batch`], [`BatchBuilder`], [`Batches`] |
//! | record (key, value, timestamp, headers) | [`Record`], [`StoredRecord`], [`Header`] |
//! | `segment.bytes`, `segment.ms`, `index.interval.bytes`, `flush.messages`, `flush.ms` | [`LogConfig`] |
//!
//! ## Durability contract
//!
//! - When [`Log::append`] returns, the batch is in the operating system: it
//!   survives a crash of the process (`kill -9`), not a power loss.
//! - With [`Durability::Sync`], success means the batch and everything
//!   before it were fsync'd (`fdatasync`; the directory is fsync'd when a
//!   segment file is created or deleted): it survives power loss. Concurrent
//!   sync appenders share one fsync (group commit).
//! - [`LogConfig::flush_messages`] and [`LogConfig::flush_interval`] bound
//!   what a power loss can take from buffered appends.
//! - Readers never see part of a batch. After a crash, reopening cuts a torn
//!   or corrupt tail at the last whole, valid batch; corruption in data that
//!   was fsync'd is reported as [`Error::Corrupt`], never dropped silently.
//! - After a failed fsync the log refuses writes ([`Error::Poisoned`]) until
//!   it is reopened: a failed fsync cannot be retried safely.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod admin;
mod broker;
mod clock;
mod consumer;
mod error;
mod producer;
mod record;
mod storage;
mod topic;

pub use admin::{Admin, OffsetSpec, PartitionDescription, TopicDescription};
pub use broker::{Broker, BrokerBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use consumer::{Consumer, ConsumerConfig, ConsumerIter, ConsumerRecord, OffsetReset};
pub use error::{Error, Result};
pub use producer::{Delivery, Producer, ProducerConfig, RecordMetadata};
pub use record::{
    BATCH_HEADER_SIZE, Batch, BatchBuilder, BatchHeader, BatchIter, BatchRecords, Batches,
    Compression, Header, Offset, Record, RecordIter, StoredRecord, TimestampType, now_ms,
};
pub use storage::{AppendInfo, Durability, Log, LogConfig, Notify, ReadLimit, VerifyReport};
pub use topic::{
    DefaultPartitioner, MAX_TOPIC_NAME_LEN, Partition, Partitioner, Topic, TopicConfig,
    TopicPartition, murmur2, partition_for_key, validate_topic_name,
};

#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzz;

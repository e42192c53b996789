//! # embedlog
//!
//! Kafka's model of durable, partitioned event streams inside your own
//! process: no broker to run, no network hop, one directory on disk.
//!
//! A [`Broker`] owns a data directory of topics; each topic is split into
//! partitions; each partition is a segmented log of record batches in
//! **Kafka's record batch v2 format, byte for byte**, with Kafka-layout offset
//! and time indexes, group-committed fsyncs and crash recovery. A
//! [`Producer`] partitions (Kafka's murmur2 for keys) and batches records; a
//! [`Consumer`] reads from any offset or time and long-polls for new ones.
//!
//! ```
//! use embedlog::{Broker, ConsumerConfig, OffsetReset, ProducerConfig, Record, TopicConfig};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let broker = Broker::open(dir.path())?;
//! broker.admin().create_topic("orders", TopicConfig::default().partitions(3))?;
//!
//! let producer = broker.producer(ProducerConfig::default());
//! for i in 0..10 {
//!     // Same key, same partition: a customer's orders stay in order.
//!     producer.send("orders", Record::new(format!("order {i}")).key("customer-7"))?;
//! }
//! producer.flush()?; // stored (in the OS) when this returns
//!
//! let mut consumer = broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
//! consumer.assign([("orders", 0), ("orders", 1), ("orders", 2)])?;
//! let records = consumer.poll(Duration::from_secs(1))?;
//! assert_eq!(records.len(), 10);
//! assert_eq!(records[3].value(), Some(&b"order 3"[..]));
//! broker.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Kafka concepts
//!
//! | Kafka | embedlog |
//! |---|---|
//! | broker (one data directory) | [`Broker`] |
//! | Admin client | [`Admin`] |
//! | topic, partition | [`Topic`], [`Partition`], [`PartitionLog`], [`TopicConfig`] |
//! | producer, partitioner, `batch.size`, `linger.ms` | [`Producer`], [`Partitioner`], [`ProducerConfig`] |
//! | consumer, `auto.offset.reset`, `max.poll.records` | [`Consumer`], [`OffsetReset`], [`ConsumerConfig`] |
//! | partition log (segments, `.index`, `.timeindex`) | [`Log`] |
//! | record batch v2 | [`Batch`], [`BatchBuilder`], [`Batches`] |
//! | record (key, value, timestamp, headers) | [`Record`], [`ConsumerRecord`], [`Header`] |
//! | retention, `cleanup.policy=compact`, log cleaner | [`TopicConfig::retention`], [`CleanupPolicy`], [`Admin::compact_now`], [`Log::compact`] |
//! | consumer group, `subscribe`, `commitSync`, assignors | [`ConsumerConfig::group`], [`Consumer::subscribe`], [`Consumer::commit`], [`CooperativeStickyAssignor`], [`RebalanceListener`] |
//! | `__consumer_offsets`, `kafka-consumer-groups` | [`OFFSETS_TOPIC`], [`Admin::describe_group`], [`Admin::reset_group_offsets`] |
//! | replicas, leader epochs, ISR, high watermark, `acks=all` | [`ReplicaLog`], [`Replicator`], [`Acks`] (see [`replication`]) |
//! | Kafka Connect: source and sink connectors, `connect-offsets`, standalone worker | `embedlog::connect` (feature `connect`; SQLite and Kafka-bridge connectors with `sqlite`, `kafka`) |
//!
//! ## Async
//!
//! With the `async` feature the clients work under any executor, and the
//! library starts no runtime: a [`Delivery`] is a `Future`,
//! `Consumer::stream` is a `futures_core::Stream` of the records `poll`
//! returns, and `Producer::flush_async`, `Log::wait_for_async` and
//! `Notify::wait_past_async` are futures. Each is woken by the
//! notification the blocking call sleeps on (no timer, no thread per
//! future). Commits and a sync producer's own fsyncs stay blocking.
//!
//! ## Durability contract
//!
//! - When an append is acknowledged ([`Partition::append`] returns, a
//!   producer's [`Delivery`] resolves, or [`Producer::flush`] returns), the
//!   batch is in the operating system: it survives a crash of the process
//!   (`kill -9`), not a power loss. Records still in a producer's batch are
//!   not acknowledged yet.
//! - With [`Durability::Sync`] (per producer, per log, or per call), success
//!   means the batch and everything before it were fsync'd (`fdatasync`; the
//!   directory is fsync'd when a segment file is created or deleted): it
//!   survives power loss. Concurrent sync appenders share one fsync (group
//!   commit).
//! - A topic's `flush_messages` / `flush_interval` bound what a power loss
//!   can take from buffered appends.
//! - Readers never see part of a batch. After a crash, reopening cuts a torn
//!   or corrupt tail at the last whole, valid batch; corruption in data that
//!   was fsync'd is reported as [`Error::Corrupt`], never dropped silently.
//! - After a failed fsync a partition refuses writes ([`Error::Poisoned`])
//!   until it is reopened: a failed fsync cannot be retried safely.
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod admin;
mod broker;
mod catalog;
mod client;
mod clock;
#[cfg(any(feature = "json", feature = "postcard"))]
mod codec;
#[cfg(feature = "connect")]
pub mod connect;
mod consumer;
mod error;
mod group;
mod hash;
mod maintenance;
mod producer;
mod read_only;
mod record;
pub mod replication;
mod storage;
#[cfg(feature = "streams")]
pub mod streams;
mod telemetry;
mod txn;

pub mod inspect {
    //! Read-only inspection of a data directory's files, for tools:
    //! [`dump_segment`] and [`dump_index`] decode one segment or index file
    //! (what `kafka-dump-log.sh` prints); [`verify_dir`] checks every file of
    //! a data directory. Nothing here writes, locks or maps a file, so it
    //! works while another process owns the directory.
    //!
    //! ```
    //! use embedlog::inspect::{Detail, dump_index, dump_segment};
    //! use embedlog::{Log, LogConfig, Record};
    //!
    //! let dir = tempfile::tempdir()?;
    //! let log = Log::open(dir.path(), LogConfig::default())?;
    //! log.append(&[Record::new("hello")])?;
    //! log.close()?;
    //! let segment = dir.path().join("00000000000000000000.log");
    //! let dump = dump_segment(&segment, Detail::Batches)?;
    //! assert_eq!((dump.batches.len(), dump.next_offset), (1, 1));
    //! assert!(dump.invalid.is_none() && dump.batches[0].crc_valid);
    //! let index = dump_index(&segment.with_extension("index"))?;
    //! assert!(index.problems.is_empty());
    //! # Ok::<(), Box<dyn std::error::Error>>(())
    //! ```
    pub use crate::catalog::inspect::*;
    pub use crate::storage::inspect::*;
}
#[cfg(test)]
mod test_support;
mod wakers;
mod worker;

pub use admin::{
    Admin, GroupDescription, GroupListing, GroupOffset, OffsetSpec, PartitionDescription,
    TopicDescription,
};
pub use broker::{Broker, BrokerBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(feature = "json")]
pub use codec::Json;
#[cfg(feature = "postcard")]
pub use codec::Postcard;
#[cfg(any(feature = "json", feature = "postcard"))]
pub use codec::{Codec, TypedConsumer, TypedProducer, TypedRecord};
#[cfg(feature = "async")]
pub use consumer::ConsumerStream;
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerIter, ConsumerRecord, ConsumerWakeup, IsolationLevel,
    OffsetReset, RebalanceListener,
};
pub use error::{Error, Result};
pub use group::{
    Assignor, ConsumerGroupMetadata, CooperativeStickyAssignor, GroupState, MAX_GROUP_ID_LEN,
    MemberDescription, OFFSETS_TOPIC, OffsetAndMetadata, RangeAssignor, RebalanceProtocol,
    RoundRobinAssignor, Subscription,
};
#[cfg(feature = "async")]
pub use producer::Flush;
pub use producer::{Delivery, Producer, ProducerConfig, RecordMetadata};
pub use read_only::{ReadOnlyBroker, ReadOnlyPartition};
pub use txn::{TransactionDescription, TransactionState};

pub use catalog::{
    CleanupPolicy, MAX_TOPIC_NAME_LEN, Partition, PartitionLog, Topic, TopicConfig, TopicPartition,
    validate_topic_name,
};
pub use producer::{DefaultPartitioner, Partitioner, murmur2, partition_for_key};
pub use record::{
    BATCH_HEADER_SIZE, Batch, BatchBuilder, BatchHeader, BatchIter, BatchRecords, Batches,
    BorrowedRecord, Compression, ControlRecord, ControlType, DEFAULT_DECOMPRESSION_LIMIT, Header,
    Offset, Record, RecordIter, RecordRef, RecordRefIter, StoredRecord, TimestampType, ToRecord,
    now_ms,
};
pub use replication::{
    Acks, FetchOutcome, FetchRequest, FetchResponse, LocalTransport, NO_EPOCH, ReplicaId,
    ReplicaLog, ReplicationConfig, Replicator, Role,
};
pub use storage::{
    AbortedTransaction, AppendInfo, Compaction, CompactionReport, Durability, Log, LogConfig,
    LogReader, LogRecords, MIN_KEY_MAP_BYTES, Notify, ReadLimit, ReadOnlyLog, Retention,
    RetentionReport, VerifyReport,
};
#[cfg(feature = "async")]
pub use storage::{WaitFor, WaitPast};

#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzz;

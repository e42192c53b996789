//! The integration tests, one module per former `tests/*.rs` file, linked
//! as one binary: linking was most of what the 2-core CI spent on the tests.
//!
//! Each module's first line states the invariant it checks. Tests in here
//! share one process and run on parallel threads, so none of them may rely
//! on being alone in it: no environment changes, no process-global
//! `tracing` subscriber, no counting of process-wide resources, no child
//! processes. Tests that need those keep their own binary next to this
//! directory (`tests/crash_kill.rs`, `tests/descriptors_bounded.rs`,
//! `tests/broker_lock_process.rs`, `tests/kafka_bridge.rs`; each says why
//! at its top).
//!
//! proptest's regression files: with this `main.rs`, proptest's default
//! `FileFailurePersistence::SourceParallel("proptest-regressions")` finds
//! the source root at `tests/it/` and keeps the seeds of `tests/it/x.rs` in
//! `tests/proptest-regressions/x.txt`.

#[path = "../common/mod.rs"]
mod common;

#[cfg(feature = "async")]
mod async_streams;
mod bad_input;
mod broker_lock;
mod broker_topics;
mod compacted_topics;
mod compaction;
mod compression;
#[cfg(feature = "connect")]
mod connect_runtime;
#[cfg(feature = "sqlite")]
mod connect_sqlite;
mod consumer_groups;
mod consumer_poll;
mod control_batches;
mod fuzz_regressions;
mod kafka_compat;
mod log_concurrency;
mod log_model;
mod observability;
mod producer_delivery;
mod producer_partitioning;
mod producer_records;
mod read_only;
mod recovery_bit_flip;
mod recovery_index_damage;
mod recovery_torn_tail;
mod replication;
mod retention;
#[cfg(feature = "streams")]
mod streams_dsl;
#[cfg(feature = "streams")]
mod streams_joins;
#[cfg(feature = "streams-persistent")]
mod streams_persistent;
#[cfg(feature = "streams")]
mod streams_runtime;
#[cfg(feature = "streams")]
mod streams_windows;
mod transactions;
mod typed_values;

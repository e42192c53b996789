//! The crate's one error type.

use std::io;
use std::path::{Path, PathBuf};

/// A `Result` whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in embedlog.
///
/// Each variant carries the facts needed to act on it: the file and byte
/// position of corrupt data, the valid range of an out-of-range offset, the
/// operation and path of an I/O error. The `Display` text says what happened
/// and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A codec failed to compress a batch (its library reported an error).
    #[error("{codec} compression failed: {reason}")]
    Compression {
        /// The codec.
        codec: crate::record::Compression,
        /// What its library said.
        reason: String,
    },

    /// An I/O operation failed.
    #[error("I/O error while trying to {op} {path}: {source}")]
    Io {
        /// What was being done ("write", "fsync", "open", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The disk (or quota) is full. Nothing was acknowledged that is not
    /// stored; free space and retry.
    #[error("no space left on device while trying to {op} {path}; free space and retry")]
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Data on disk failed a check (CRC, length, offset order, ...) at a
    /// position that recovery must not silently discard.
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the first bad byte or of the record batch that
        /// failed its check.
        position: u64,
        /// What check failed.
        reason: String,
    },

    /// Bytes handed to a decoder (not read from a log file) are not a valid
    /// record batch.
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidBatch {
        /// Byte position within the input where decoding failed.
        position: u64,
        /// What check failed.
        reason: String,
    },

    /// The requested offset is outside the log's range `[start, end]`.
    #[error("offset {requested} is out of range: the log holds offsets {start}..{end}")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// The log start offset (the oldest offset still readable).
        start: u64,
        /// The log end offset (the offset the next record will get).
        end: u64,
    },

    /// A previous write or fsync failed in a way that leaves the durable state
    /// unknown. The log refuses further writes; close it and open it again
    /// (recovery will establish what is durable).
    #[error("log {path} is poisoned by an earlier failure ({reason}); close and reopen it")]
    Poisoned {
        /// The log directory.
        path: PathBuf,
        /// The failure that poisoned it.
        reason: String,
    },

    /// Another handle, in this process or another, holds the directory.
    #[error("{path} is locked by another embedlog instance (in this or another process)")]
    Locked {
        /// The locked directory.
        path: PathBuf,
    },

    /// A record batch is larger than the configured maximum.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    BatchTooLarge {
        /// The encoded batch size.
        size: usize,
        /// The configured maximum (`LogConfig::max_batch_bytes`).
        max: usize,
    },

    /// A configuration value is out of its valid range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// An argument is not valid for this call (and no more specific
    /// variant below says why).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The topic is internal (`__consumer_offsets`,
    /// `__transaction_state`): clients may not write it, delete it or
    /// delete its records directly.
    #[error("{topic} is an internal topic: {reason}")]
    InternalTopic {
        /// The topic.
        topic: String,
        /// What to do instead.
        reason: String,
    },

    /// A record without a key was sent to a compacted topic, where
    /// compaction keeps the latest record per key: give it a key.
    #[error("topic {topic} is compacted (cleanup.policy=compact): records need a key")]
    KeyRequired {
        /// The topic.
        topic: String,
    },

    /// The consumer was asked about a partition it is not assigned
    /// (`seek`, `position`, commits of a manual assignment).
    #[error("{topic}-{partition} is not assigned to this consumer")]
    PartitionNotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// The call needs a consumer group (`subscribe`, commits,
    /// `committed`, `group_metadata`): set `ConsumerConfig::group`.
    #[error("{operation} needs a group: set ConsumerConfig::group")]
    GroupRequired {
        /// The call.
        operation: &'static str,
    },

    /// A consumer group id that cannot be used (empty, or longer than
    /// embedlog's limit of 1024 bytes).
    #[error("invalid group id {group:?}: {reason}")]
    InvalidGroupId {
        /// The id.
        group: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `subscribe` and `assign` are exclusive: a consumer either follows
    /// its group's assignment or its own.
    #[error("{reason}")]
    SubscriptionConflict {
        /// Which call conflicted with which state.
        reason: String,
    },

    /// A partition count that cannot be applied: partitions can only be
    /// added (`Admin::add_partitions`), never removed or changed by
    /// `alter_config`.
    #[error("topic {topic} has {current} partitions: {reason}")]
    InvalidPartitionCount {
        /// The topic.
        topic: String,
        /// Its partition count now.
        current: u32,
        /// The count asked for.
        requested: u32,
        /// What to do instead.
        reason: String,
    },

    /// No transactional id of that name is known to the coordinator (it
    /// never ran `init_transactions`, or expired).
    #[error("unknown transactional id {transactional_id:?}")]
    UnknownTransactionalId {
        /// The id.
        transactional_id: String,
    },

    /// Compaction was asked of a topic whose `cleanup.policy` does not
    /// include `compact`.
    #[error("topic {topic} has cleanup.policy=delete: nothing to compact")]
    TopicNotCompacted {
        /// The topic.
        topic: String,
    },

    /// A producer's batch or marker carries an epoch older than the one
    /// its producer id has now: a newer producer with the same
    /// transactional id called `init_transactions`, or the broker aborted
    /// a transaction that outlived its timeout. This producer can do
    /// nothing more; close it (its open transaction is aborted).
    #[error(
        "producer {producer_id} is fenced: it has epoch {epoch}, the current epoch is {current_epoch} \
         (a newer producer with its transactional id started, or its transaction timed out); close it"
    )]
    ProducerFenced {
        /// The producer id.
        producer_id: i64,
        /// The epoch it sent.
        epoch: i16,
        /// The epoch that fenced it.
        current_epoch: i16,
    },

    /// An idempotent producer's batch does not follow the producer's last
    /// batch in this log (a batch in between was lost): nothing was
    /// appended.
    #[error(
        "producer {producer_id} sent sequence {got} to {log}, expected {expected}: a batch in \
         between is missing"
    )]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// The sequence the log expected.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
        /// The log.
        log: PathBuf,
    },

    /// A transactional call came at the wrong time (`send` outside a
    /// transaction, `commit_transaction` without `begin_transaction`,
    /// `begin_transaction` before `init_transactions`, …), or the
    /// transaction can only be aborted now.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),

    /// The record was in a transaction that was aborted before its batch
    /// was appended: it is not stored.
    #[error("transaction {transactional_id:?} was aborted: the record is not stored")]
    TransactionAborted {
        /// The producer's transactional id.
        transactional_id: String,
    },

    /// The data uses a feature this version does not support (for example a
    /// compressed record batch).
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// The handle (or the broker behind it) was closed.
    #[error("closed")]
    Closed,

    /// A topic name breaks Kafka's rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No topic has this name (it was never created, or was deleted).
    #[error("unknown topic {name:?}")]
    UnknownTopic {
        /// The name asked for.
        name: String,
    },

    /// A topic with this name exists already.
    #[error("topic {name:?} already exists")]
    TopicExists {
        /// The name.
        name: String,
    },

    /// The topic has no such partition.
    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        count: u32,
    },

    /// A consumer has no position for a partition and its reset policy is
    /// `OffsetReset::Error`: seek first.
    #[error("no offset for {topic}-{partition} and the reset policy is Error; seek first")]
    NoOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },

    /// A replication call reached a replica that does not play the role
    /// it needs (an append on a follower, a fetch from a replica that does
    /// not lead the epoch): tell it the current leader.
    #[error("not the leader (epoch {epoch}, {role})")]
    NotLeader {
        /// The leader epoch the replica knows.
        epoch: i32,
        /// What it is instead.
        role: String,
    },

    /// An `Acks::All` append found fewer in-sync replicas than
    /// `min_insync_replicas`.
    #[error("{isr} in-sync replicas, {required} required")]
    NotEnoughReplicas {
        /// In-sync replicas, the leader included.
        isr: usize,
        /// `min_insync_replicas`.
        required: usize,
    },

    /// An `Acks::All` append was stored on the leader but the high
    /// watermark did not pass it in time; it may still be committed.
    #[error("offset {offset} not replicated in time (high watermark {high_watermark})")]
    ReplicationTimeout {
        /// The batch's last offset.
        offset: u64,
        /// The high watermark when the wait ended.
        high_watermark: u64,
    },

    /// A replication message was lost or malformed on the host's
    /// transport; fetch again.
    #[error("replication transport: {reason}")]
    Transport {
        /// What happened.
        reason: String,
    },

    /// A commit was refused: the consumer no longer owns a partition it
    /// tried to commit (a rebalance moved it; its records will be delivered
    /// again to the new owner), or the group has active members and the
    /// committer is not one of them. (A member the group removed gets
    /// [`Error::Fenced`].)
    #[error("commit for group {group} refused: {reason}")]
    CommitFailed {
        /// The group.
        group: String,
        /// Why.
        reason: String,
    },

    /// A group member's commit was refused because the member is fenced
    /// (Kafka's `UNKNOWN_MEMBER_ID` / `ILLEGAL_GENERATION`): the group
    /// removed it (it did not poll within `max_poll_interval` while another
    /// member waited for its partitions), or the commit carries a
    /// generation other than the one the member synced at. Its partitions
    /// may belong to other members already, who resume from the last
    /// accepted commit; its next poll reports them lost and rejoins.
    #[error(
        "commit for group {group} refused: member {member} (generation {generation}) is fenced: \
         {reason}; its partitions belong to other members now, poll to rejoin"
    )]
    Fenced {
        /// The group.
        group: String,
        /// The member id the commit carried.
        member: String,
        /// The generation the commit carried.
        generation: u64,
        /// Why.
        reason: String,
    },

    /// An operation that needs an inactive group (offset reset, delete)
    /// found members in it; close them first.
    #[error("group {group} has active members; close them first")]
    GroupNotEmpty {
        /// The group.
        group: String,
    },

    /// No such consumer group: it has no members and no committed offsets.
    #[error("unknown consumer group {group}")]
    UnknownGroup {
        /// The group.
        group: String,
    },

    /// A producer's batch could not be appended; every record in it fails
    /// with this error (through its [`Delivery`](crate::Delivery)). The
    /// cause is [`Error::cause`] (and `source()`), to match on:
    ///
    /// ```
    /// # use embedlog::Error;
    /// fn out_of_space(e: &Error) -> bool {
    ///     matches!(e.cause(), Some(Error::DiskFull { .. }))
    /// }
    /// assert!(!out_of_space(&Error::Closed));
    /// ```
    #[error("delivery to {topic}-{partition} failed")]
    DeliveryFailed {
        /// The record's topic.
        topic: std::sync::Arc<str>,
        /// Its partition.
        partition: u32,
        /// Why its batch failed.
        #[source]
        cause: std::sync::Arc<Error>,
    },

    /// [`Producer::flush`](crate::Producer::flush) or `close` found that
    /// batches failed since the previous flush (appended by `send`, the
    /// linger thread, or the flush itself): their records are not stored,
    /// and their deliveries carry the errors. Resend what must be stored.
    #[error(
        "{batches} producer batch(es) failed since the previous flush; their records are \
         not stored (their deliveries carry the errors)"
    )]
    BatchesFailed {
        /// How many batches failed.
        batches: u64,
        /// The first failure.
        #[source]
        first: std::sync::Arc<Error>,
    },

    /// A Streams topology is not valid, or does not fit the topics it
    /// runs on (say, a join of topics with different partition counts).
    #[error("invalid topology: {0}")]
    Topology(String),

    /// A value could not be encoded or decoded by a codec.
    #[error("codec: {0}")]
    Codec(String),

    /// The stored metadata of the data directory is damaged or from an
    /// unknown version.
    #[error("bad metadata in {path}: {reason}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The error this one wraps: the cause of [`DeliveryFailed`](Error::DeliveryFailed),
    /// the first failure of [`BatchesFailed`](Error::BatchesFailed); `None`
    /// for the others. (`std::error::Error::source` reaches the same
    /// error, as an `Arc<Error>`; this gives it as an `Error` to match on.)
    pub fn cause(&self) -> Option<&Error> {
        match self {
            Error::DeliveryFailed { cause, .. } => Some(cause),
            Error::BatchesFailed { first, .. } => Some(first),
            _ => None,
        }
    }

    /// The innermost [`cause`](Self::cause) (this error if it wraps none).
    pub fn root_cause(&self) -> &Error {
        let mut e = self;
        while let Some(c) = e.cause() {
            e = c;
        }
        e
    }

    /// Whether the same call may succeed if retried, as Kafka's
    /// `RetriableException`: space freed after [`DiskFull`](Error::DiskFull)
    /// (a failed write is rolled back; not a failed fsync, which poisons
    /// the log until it is reopened), an interrupted or timed-out I/O,
    /// replication that may catch up ([`NotLeader`](Error::NotLeader),
    /// [`NotEnoughReplicas`](Error::NotEnoughReplicas),
    /// [`ReplicationTimeout`](Error::ReplicationTimeout),
    /// [`Transport`](Error::Transport)). For [`DeliveryFailed`](Error::DeliveryFailed)
    /// and [`BatchesFailed`](Error::BatchesFailed), whether their cause is
    /// (the retry is sending the records again; without idempotence a
    /// retry after a timeout may store them twice).
    ///
    /// Everything else needs a change first: corrupt data, a poisoned log
    /// (reopen it), a fenced producer, bad arguments or configuration, a
    /// closed broker. Unknown topics are not retriable here, unlike in
    /// Kafka: topics are created synchronously, so waiting does not help.
    ///
    /// ```
    /// use embedlog::Error;
    /// assert!(!Error::Closed.is_retriable());
    /// ```
    pub fn is_retriable(&self) -> bool {
        match self {
            // A failed fsync poisons the log: the retry gets `Poisoned`
            // until the log is reopened.
            Error::DiskFull { op, .. } | Error::Io { op, .. } if op.starts_with("fsync") => false,
            Error::DiskFull { .. }
            | Error::NotLeader { .. }
            | Error::NotEnoughReplicas { .. }
            | Error::ReplicationTimeout { .. }
            | Error::Transport { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            Error::DeliveryFailed { .. } | Error::BatchesFailed { .. } => {
                self.cause().is_some_and(Error::is_retriable)
            }
            _ => false,
        }
    }

    /// Wraps an I/O error with the operation and path, turning "no space
    /// left" into [`Error::DiskFull`].
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        if is_no_space(&source) {
            Error::DiskFull {
                op,
                path: path.to_path_buf(),
                source,
            }
        } else {
            Error::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        }
    }

    pub(crate) fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.to_path_buf(),
            position,
            reason: reason.into(),
        }
    }
}

fn is_no_space(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        // ENOSPC (28) and EDQUOT (122 on Linux) both mean "out of space".
        if matches!(e.raw_os_error(), Some(28) | Some(122)) {
            return true;
        }
    }
    e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_maps_to_disk_full() {
        let e = Error::io(
            "write",
            Path::new("/x/0.log"),
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert!(matches!(e, Error::DiskFull { op: "write", .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("/x/0.log") && msg.contains("free space"),
            "{msg}"
        );
    }

    #[test]
    fn other_io_errors_keep_path_and_op() {
        let e = Error::io("fsync", Path::new("/d"), io::Error::other("boom"));
        assert!(matches!(e, Error::Io { op: "fsync", .. }));
        assert_eq!(e.to_string(), "I/O error while trying to fsync /d: boom");
    }

    #[test]
    fn retriable_errors_and_causes() {
        let full = Error::io("write", Path::new("/x"), io::Error::from_raw_os_error(28));
        assert!(full.is_retriable());
        let interrupted = Error::io("read", Path::new("/x"), io::ErrorKind::Interrupted.into());
        assert!(interrupted.is_retriable());
        assert!(!Error::io("read", Path::new("/x"), io::Error::other("eio")).is_retriable());
        let fsync_full = Error::io("fsync", Path::new("/x"), io::Error::from_raw_os_error(28));
        assert!(matches!(fsync_full, Error::DiskFull { .. }));
        assert!(!fsync_full.is_retriable(), "a failed fsync poisons the log");
        assert!(!Error::Closed.is_retriable());
        assert!(!Error::corrupt(Path::new("/x"), 0, "bad").is_retriable());
        let failed = Error::DeliveryFailed {
            topic: "t".into(),
            partition: 3,
            cause: std::sync::Arc::new(full),
        };
        assert!(failed.is_retriable(), "as its cause");
        assert!(matches!(failed.cause(), Some(Error::DiskFull { .. })));
        let batches = Error::BatchesFailed {
            batches: 2,
            first: std::sync::Arc::new(failed),
        };
        assert!(batches.is_retriable());
        assert!(matches!(batches.root_cause(), Error::DiskFull { .. }));
        assert!(Error::Closed.cause().is_none());
        assert!(matches!(Error::Closed.root_cause(), Error::Closed));
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static + std::error::Error>() {}
        check::<Error>();
    }
}

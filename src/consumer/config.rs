//! A consumer's settings.

use crate::group::{Assignor, CooperativeStickyAssignor};
use std::sync::Arc;
use std::time::Duration;

/// Where a consumer starts when it has no valid position for a partition
/// (Kafka's `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The oldest record still held.
    Earliest,
    /// The end: only records appended from now on.
    #[default]
    Latest,
    /// Fail with [`Error::NoOffset`](crate::Error::NoOffset) or [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange).
    Error,
}

/// Settings of a [`Consumer`](crate::Consumer). Every setter documents its default.
///
/// ```
/// use embedlog::{ConsumerConfig, OffsetReset};
/// let _config = ConsumerConfig::default()
///     .max_poll_records(1000)
///     .offset_reset(OffsetReset::Earliest);
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub(super) max_poll_records: usize,
    pub(super) max_partition_fetch_bytes: usize,
    pub(super) offset_reset: OffsetReset,
    pub(super) group_id: Option<String>,
    pub(super) assignor: Arc<dyn Assignor>,
    pub(super) auto_commit: Option<Duration>,
    pub(super) max_poll_interval: Duration,
    pub(super) isolation_level: IsolationLevel,
}

/// Which records of transactions a consumer reads (Kafka's
/// `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record, as soon as it is appended: also those of open
    /// transactions and of aborted ones.
    #[default]
    ReadUncommitted,
    /// Only records of committed transactions (and records sent outside
    /// transactions): reads stop at the last stable offset (the first
    /// offset of the oldest open transaction) and skip aborted
    /// transactions.
    ReadCommitted,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_poll_records: 500,
            max_partition_fetch_bytes: 1 << 20,
            offset_reset: OffsetReset::Latest,
            group_id: None,
            assignor: Arc::new(CooperativeStickyAssignor),
            auto_commit: None,
            max_poll_interval: Duration::from_secs(300),
            isolation_level: IsolationLevel::ReadUncommitted,
        }
    }
}

impl ConsumerConfig {
    /// Most records one [`Consumer::poll`](crate::Consumer::poll) returns (`max.poll.records`).
    /// Default: 500. At least 1.
    pub fn max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n.max(1);
        self
    }

    /// Bytes read from one partition per poll
    /// (`max.partition.fetch.bytes`); a larger batch is still returned
    /// whole. Default: 1 MiB.
    pub fn max_partition_fetch_bytes(mut self, bytes: usize) -> Self {
        self.max_partition_fetch_bytes = bytes.max(1);
        self
    }

    /// What to do without a valid position (`auto.offset.reset`). Default:
    /// [`OffsetReset::Latest`]. A group member uses it for partitions the
    /// group has no committed offset for.
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.offset_reset = reset;
        self
    }

    /// The consumer group (`group.id`), needed by
    /// [`Consumer::subscribe`](crate::Consumer::subscribe) and the commit methods. Default: none.
    pub fn group(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }

    /// How the group's partitions are spread over its members
    /// (`partition.assignment.strategy`): [`CooperativeStickyAssignor`] (the
    /// default: members keep what they own where they can, and only moved
    /// partitions are revoked), [`RangeAssignor`](crate::RangeAssignor) or
    /// [`RoundRobinAssignor`](crate::RoundRobinAssignor) (eager: every
    /// member revokes everything at each rebalance). All members of a group
    /// must use the same one.
    pub fn assignor(mut self, assignor: Arc<dyn Assignor>) -> Self {
        self.assignor = assignor;
        self
    }

    /// Commit the positions of the previous polls every `interval`, at the
    /// start of a poll, before partitions are revoked, and on close
    /// (`enable.auto.commit` / `auto.commit.interval.ms`). Default: `None`
    /// (commit explicitly, after processing, for at-least-once delivery).
    /// Auto-commit is at-least-once too as long as every record a poll
    /// returned is processed before the next poll. The interval is measured
    /// by the broker's [`Clock`](crate::Clock)
    /// ([`BrokerBuilder::clock`](crate::BrokerBuilder::clock)).
    pub fn auto_commit(mut self, interval: Option<Duration>) -> Self {
        self.auto_commit = interval;
        self
    }

    /// A member that has not polled for this long, while another member
    /// waits for one of its partitions, is removed from the group
    /// (`max.poll.interval.ms`). Default: 5 minutes. Measured by the
    /// broker's [`Clock`](crate::Clock)
    /// ([`BrokerBuilder::clock`](crate::BrokerBuilder::clock)).
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = interval;
        self
    }

    /// Which transactional records to read. Default:
    /// [`IsolationLevel::ReadUncommitted`], as in Kafka.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }
}

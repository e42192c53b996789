//! Replication: leader and follower replicas of a partition log, a high
//! watermark, and fail-over by leader epochs (Kafka's design, with the host
//! application owning the network).
//!
//! # Model
//!
//! A partition has replicas on several machines, each a [`ReplicaLog`]
//! (a [`Log`] plus a leader-epoch cache and a high-watermark checkpoint).
//! The host's controller (whatever decides leadership: a configuration, a
//! consensus service, an operator) makes one replica the leader of a new
//! **leader epoch** with [`ReplicaLog::become_leader`] and the others its
//! followers with [`ReplicaLog::become_follower`].
//!
//! Followers pull, as Kafka's do: [`ReplicaLog::fetch_once`] sends a
//! [`FetchRequest`] (the follower's log end, the epoch of its last record,
//! how far it has fsync'd) through the host's [`Replicator`] to the leader,
//! whose host answers with [`ReplicaLog::handle_fetch`]. The answer carries
//! the next batches (byte for byte, with their offsets and the leader epoch
//! that wrote them) and the high watermark, or tells the follower where its
//! log diverges from the leader's, so that it truncates (KIP-101 / KIP-279).
//! Each request tells the leader how far that follower has durably written.
//!
//! # Guarantees
//!
//! - The **high watermark** is the end of the prefix that every in-sync
//!   replica, the leader included, has fsync'd (a leader with no follower
//!   in sync counts its log end: there is no other copy). Readers of a
//!   replica ([`ReplicaLog::read`]) see only records below it, so a record
//!   a reader saw survives any clean fail-over.
//! - The **ISR** (in-sync replicas) holds the leader and the followers that
//!   caught up with the leader's log end within `replica_lag_time`; a
//!   follower that falls behind leaves it (and no longer holds the high
//!   watermark back) and rejoins once caught up.
//! - [`Acks::All`] appends return once the record is below the high
//!   watermark, and fail with [`Error::NotEnoughReplicas`] when the ISR is
//!   smaller than `min_insync_replicas`.
//! - **Fail-over**: promote a member of the ISR. Every record acknowledged
//!   with `Acks::All` is on it. A replica that comes back with records the
//!   new leader does not have (written in an older epoch, never
//!   acknowledged to all) truncates them at its first fetch, found through
//!   the leader-epoch history, so replicas never diverge.
//!
//! With 1 replica there is nothing to fail over to: the log's own
//! durability applies. With 2 replicas and `min_insync_replicas = 2`, an
//! acknowledged record survives the loss of either machine; with 3 replicas
//! and `min_insync_replicas = 2` it survives the loss of any one while
//! writes continue (Kafka's usual setting).
//!
//! # Implementing the transport
//!
//! Implement [`Replicator::fetch`] to carry a request to the leader's
//! machine and bring its answer back: serialize with
//! [`FetchRequest::encode`], call [`ReplicaLog::handle_fetch`] there, and
//! return [`FetchResponse::decode`] of its encoded answer. Transport
//! failures are [`Error::Transport`]; the follower simply fetches again.
//! Run `fetch_once` in a loop on each follower (it long-polls: the leader
//! holds a request open until data arrives or `fetch_max_wait` passes). The
//! crate's [`LocalTransport`] connects replicas in one process (with
//! injectable message loss and outages, for tests), and
//! `examples/replication_tcp.rs` runs replicas in separate processes over
//! loopback TCP.
//!
//! ```
//! use embedlog::{Acks, LocalTransport, LogConfig, Record, ReplicaLog, ReplicationConfig};
//! use std::sync::Arc;
//! let dir = tempfile::tempdir()?;
//! let config = ReplicationConfig::default().min_insync_replicas(2);
//! let open = |id: u32| ReplicaLog::open(dir.path().join(id.to_string()), LogConfig::default(), id, config.clone());
//! let (leader, follower) = (Arc::new(open(0)?), Arc::new(open(1)?));
//! let transport = LocalTransport::new();
//! transport.register(leader.clone());
//! leader.become_leader(1, &[0, 1])?;
//! follower.become_follower(1, 0)?;
//! leader.append(&[Record::new("replicated")], Acks::Leader)?;
//! assert_eq!(leader.high_watermark(), 0); // not on the follower yet
//! follower.fetch_once(&transport)?; // copies the record
//! follower.fetch_once(&transport)?; // reports it durable
//! assert_eq!(leader.high_watermark(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoint;
mod epochs;
mod local;
mod wire;

// `ReplicaLog`'s impl blocks, in the order its docs list them (so not
// sorted): opening and accessors, the leader's side, the follower's.
mod replica;

mod leader;

mod follower;

pub(crate) use checkpoint::decode_state;
pub(crate) use epochs::EpochCache;
pub use local::LocalTransport;

use crate::clock::{Clock, SystemClock};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::record::Offset;
use crate::storage::Log;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A replica's id, unique among the replicas of a partition.
pub type ReplicaId = u32;

/// No leader epoch (an empty log, or a batch written without one).
pub const NO_EPOCH: i32 = -1;

/// When a leader's append returns (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Once the leader's log has it (`acks=1`).
    Leader,
    /// Once every in-sync replica has fsync'd it: the record is below the
    /// high watermark (`acks=all`).
    All,
}

/// Settings of a [`ReplicaLog`]. Every setter documents its default.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    min_insync_replicas: usize,
    replica_lag_time: Duration,
    ack_timeout: Duration,
    fetch_max_bytes: usize,
    fetch_max_wait: Duration,
    clock: Arc<dyn Clock>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            min_insync_replicas: 1,
            replica_lag_time: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(30),
            fetch_max_bytes: 1 << 20,
            fetch_max_wait: Duration::from_millis(500),
            clock: Arc::new(SystemClock),
        }
    }
}

impl ReplicationConfig {
    /// [`Acks::All`] appends fail with [`Error::NotEnoughReplicas`] when
    /// fewer replicas (the leader included) are in sync
    /// (`min.insync.replicas`). Default: 1.
    pub fn min_insync_replicas(mut self, n: usize) -> Self {
        self.min_insync_replicas = n.max(1);
        self
    }

    /// A follower that has not caught up with the leader's log end for this
    /// long leaves the ISR (`replica.lag.time.max.ms`). Default: 30 s.
    pub fn replica_lag_time(mut self, d: Duration) -> Self {
        self.replica_lag_time = d;
        self
    }

    /// How long an [`Acks::All`] append waits for the high watermark
    /// (`request.timeout.ms`). Default: 30 s.
    pub fn ack_timeout(mut self, d: Duration) -> Self {
        self.ack_timeout = d;
        self
    }

    /// Most bytes a fetch returns (whole batches; at least one).
    /// Default: 1 MiB.
    pub fn fetch_max_bytes(mut self, bytes: usize) -> Self {
        self.fetch_max_bytes = bytes.max(1);
        self
    }

    /// How long a leader holds a fetch open when there is nothing new
    /// (`replica.fetch.wait.max.ms`). Default: 500 ms.
    pub fn fetch_max_wait(mut self, d: Duration) -> Self {
        self.fetch_max_wait = d;
        self
    }

    /// The clock for ISR lag (tests use a [`ManualClock`](crate::ManualClock)).
    /// Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// A follower's request for the batches after its log end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The follower.
    pub replica: ReplicaId,
    /// The leader epoch the follower follows.
    pub leader_epoch: i32,
    /// The follower's log end offset: the next offset it needs.
    pub fetch_offset: Offset,
    /// The leader epoch of the follower's last record ([`NO_EPOCH`] if its
    /// log is empty).
    pub last_fetched_epoch: i32,
    /// Everything below this offset is fsync'd on the follower.
    pub durable_offset: Offset,
}

/// The leader's answer to a [`FetchRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchResponse {
    /// The batches from the fetch offset (possibly none), byte for byte.
    Records {
        /// The leader's epoch.
        leader_epoch: i32,
        /// The leader's high watermark.
        high_watermark: Offset,
        /// Whole batches starting exactly at the fetch offset.
        batches: Bytes,
    },
    /// The follower's log diverges from the leader's: the leader's log
    /// holds `epoch` (the largest epoch not above the follower's last one)
    /// up to `end_offset`. The follower truncates to the smaller of this
    /// and its own end of `epoch`, and fetches again.
    Diverging {
        /// The epoch both may share.
        epoch: i32,
        /// Where the leader's `epoch` ends.
        end_offset: Offset,
    },
    /// This replica does not lead `leader_epoch` of the request: it leads
    /// or follows another epoch (`current`). The follower's host must tell
    /// it the current leader.
    NotLeader {
        /// The epoch this replica knows.
        current: i32,
    },
    /// The leader could not read its log (e.g. the offset is below its log
    /// start); the follower gets [`Error::Transport`] with the reason.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// The host's transport: carries a follower's fetch to the leader's
/// replica and its answer back. See the module docs.
pub trait Replicator: Send + Sync {
    /// Sends `request` to replica `leader`, which answers it with
    /// [`ReplicaLog::handle_fetch`].
    ///
    /// # Errors
    /// [`Error::Transport`] when the request or its answer was lost.
    fn fetch(&self, leader: ReplicaId, request: &FetchRequest) -> Result<FetchResponse>;
}

/// A replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Neither leader nor follower yet (just opened).
    Offline,
    /// Leader of `epoch`.
    Leader {
        /// The leader epoch.
        epoch: i32,
    },
    /// Follows `leader` in `epoch`.
    Follower {
        /// The leader epoch.
        epoch: i32,
        /// The leader.
        leader: ReplicaId,
    },
}

/// What one [`ReplicaLog::fetch_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Appended this many batches (maybe 0); the high watermark is now
    /// `high_watermark`.
    Appended {
        /// Batches appended.
        batches: usize,
        /// The follower's high watermark after the fetch.
        high_watermark: Offset,
    },
    /// Truncated a divergent tail: the log now ends at `end`.
    Truncated {
        /// The new log end offset.
        end: Offset,
    },
    /// The answer no longer applied (the role or the log changed while the
    /// request was out): nothing done.
    Stale,
}

#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    fetch_offset: Offset,
    durable: Offset,
    last_caught_up_ms: i64,
}

#[derive(Debug)]
struct State {
    role: Role,
    /// The highest epoch this replica has seen (it refuses older leaders).
    epoch: i32,
    epochs: EpochCache,
    high_watermark: Offset,
    /// Leader only: every replica but the leader.
    followers: BTreeMap<ReplicaId, FollowerProgress>,
    isr: BTreeSet<ReplicaId>,
}

/// One replica of a partition: a [`Log`] with its leader-epoch history,
/// high watermark and role. See the [module docs](self).
#[derive(Debug)]
pub struct ReplicaLog {
    id: ReplicaId,
    dir: PathBuf,
    log: Log,
    config: ReplicationConfig,
    state: Mutex<State>,
    /// Signalled when the high watermark or the ISR changes.
    changed: Condvar,
    /// Serializes changes of role and the application of fetch answers.
    apply: Mutex<()>,
    /// Appends hold it shared from their role check to their write; role
    /// changes hold it exclusively, so no append of an old epoch lands
    /// after a new one began.
    roles: parking_lot::RwLock<()>,
}

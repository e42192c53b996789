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

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::record::{Batches, Offset, Record};
use crate::storage::vfs::{RealFs, write_atomic};
use crate::storage::{AppendInfo, Durability, Log, LogConfig, ReadLimit};
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A replica's id, unique among the replicas of a partition.
pub type ReplicaId = u32;

/// No leader epoch (an empty log, or a batch written without one).
pub const NO_EPOCH: i32 = -1;

const EPOCH_FILE: &str = "leader-epoch-checkpoint";
const STATE_FILE: &str = "replication.checkpoint";

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

/// The leader-epoch history: `(epoch, first offset)` pairs, epochs and
/// offsets increasing (Kafka's `leader-epoch-checkpoint`, same text
/// format: a version line `0`, a count line, then `epoch offset` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    pub(crate) entries: Vec<(i32, Offset)>,
}

impl EpochCache {
    pub(crate) fn latest(&self) -> i32 {
        self.entries.last().map_or(NO_EPOCH, |e| e.0)
    }

    /// Records that `epoch` starts at `start`. Entries the new one
    /// contradicts (a later or equal epoch, or a later start) go.
    fn assign(&mut self, epoch: i32, start: Offset) -> bool {
        if self.entries.last().is_some_and(|&(e, _)| e == epoch) {
            return false;
        }
        self.entries.retain(|&(e, s)| e < epoch && s <= start);
        // Two epochs starting at one offset: the earlier one is empty.
        self.entries.retain(|&(_, s)| s < start);
        self.entries.push((epoch, start));
        true
    }

    /// The largest epoch not above `epoch`, and the offset where it ends
    /// in a log ending at `leo` ([`NO_EPOCH`] and the first epoch's start,
    /// or 0, if there is none).
    pub(crate) fn end_offset_for(&self, epoch: i32, leo: Offset) -> (i32, Offset) {
        match self.entries.iter().rposition(|&(e, _)| e <= epoch) {
            None => (NO_EPOCH, self.entries.first().map_or(0, |e| e.1).min(leo)),
            Some(i) => match self.entries.get(i + 1) {
                Some(&(_, next)) => (self.entries[i].0, next),
                None => (self.entries[i].0, leo),
            },
        }
    }

    /// Forgets epochs starting at or after `end` (the log was cut there).
    fn truncate_from_end(&mut self, end: Offset) -> bool {
        let n = self.entries.len();
        self.entries.retain(|&(_, s)| s < end);
        n != self.entries.len()
    }

    pub(crate) fn encode(&self) -> String {
        let mut s = format!("0\n{}\n", self.entries.len());
        for (e, o) in &self.entries {
            s += &format!("{e} {o}\n");
        }
        s
    }

    /// Parses [`encode`](Self::encode)'s text; the error says what is wrong.
    pub(crate) fn decode(text: &str) -> std::result::Result<EpochCache, String> {
        let mut lines = text.lines();
        if lines.next() != Some("0") {
            return Err("the first line is not version 0".into());
        }
        let n: usize = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or("the second line is not an entry count")?;
        let mut entries: Vec<(i32, Offset)> = Vec::new();
        for i in 0..n {
            let line = lines.next().ok_or(format!("entry {i} of {n} is missing"))?;
            let mut f = line.split(' ');
            let (Some(e), Some(o), None) = (f.next(), f.next(), f.next()) else {
                return Err(format!("entry {i} ({line:?}) is not `epoch offset`"));
            };
            let e: i32 = e
                .parse()
                .map_err(|_| format!("entry {i}: bad epoch {e:?}"))?;
            let o: Offset = o
                .parse()
                .map_err(|_| format!("entry {i}: bad offset {o:?}"))?;
            if e < 0 || entries.last().is_some_and(|&(pe, po)| e <= pe || o < po) {
                return Err(format!("entry {i} ({line:?}) is out of order"));
            }
            entries.push((e, o));
        }
        if lines.next().is_some() {
            return Err(format!("more than {n} entries"));
        }
        Ok(EpochCache { entries })
    }
}

/// The replication state file: the high watermark and the current epoch.
fn encode_state(hw: Offset, epoch: i32) -> String {
    let body = format!("0\n{hw} {epoch}\n");
    format!("{body}{:08x}\n", crc32c::crc32c(body.as_bytes()))
}

pub(crate) fn decode_state(text: &str) -> std::result::Result<(Offset, i32), String> {
    let mut lines = text.lines();
    let (Some(v), Some(l), Some(c), None) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return Err("expected 3 lines".into());
    };
    let body = format!("{v}\n{l}\n");
    if u32::from_str_radix(c, 16).ok() != Some(crc32c::crc32c(body.as_bytes())) {
        return Err("CRC-32C mismatch".into());
    }
    if v != "0" {
        return Err(format!("unsupported version {v}"));
    }
    let mut f = l.split(' ');
    match (
        f.next().and_then(|x| x.parse().ok()),
        f.next().and_then(|x| x.parse().ok()),
    ) {
        (Some(hw), Some(e)) => Ok((hw, e)),
        _ => Err(format!("bad line {l:?}")),
    }
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

fn load_file<T>(
    path: &Path,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => {
            let text = String::from_utf8(b).map_err(|_| Error::Metadata {
                path: path.to_path_buf(),
                reason: "not UTF-8".into(),
            })?;
            parse(&text).map(Some).map_err(|reason| Error::Metadata {
                path: path.to_path_buf(),
                reason,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

impl ReplicaLog {
    /// Opens (or creates) replica `id` in `dir`: the log, its leader-epoch
    /// history and its high watermark. It starts [`Role::Offline`].
    ///
    /// # Errors
    /// As [`Log::open`]; [`Error::Metadata`] for a damaged
    /// `leader-epoch-checkpoint` or `replication.checkpoint`.
    pub fn open(
        dir: impl AsRef<Path>,
        log_config: LogConfig,
        id: ReplicaId,
        config: ReplicationConfig,
    ) -> Result<ReplicaLog> {
        let dir = dir.as_ref().to_path_buf();
        let log = Log::open(&dir, log_config)?;
        let mut epochs = load_file(&dir.join(EPOCH_FILE), EpochCache::decode)?.unwrap_or_default();
        // Epochs starting past the log's end lost their records (an
        // unsynced tail); one starting at the end is a leader's that has not
        // appended yet.
        let leo = log.end_offset();
        epochs.entries.retain(|&(_, s)| s <= leo);
        let (hw, epoch) =
            load_file(&dir.join(STATE_FILE), decode_state)?.unwrap_or((0, epochs.latest()));
        Ok(ReplicaLog {
            id,
            dir,
            log,
            config,
            state: Mutex::new(State {
                role: Role::Offline,
                epoch: epoch.max(epochs.latest()),
                epochs,
                high_watermark: hw.min(leo),
                followers: BTreeMap::new(),
                isr: BTreeSet::new(),
            }),
            changed: Condvar::new(),
            apply: Mutex::new(()),
            roles: parking_lot::RwLock::new(()),
        })
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The underlying log. Read it through [`read`](Self::read) to respect
    /// the high watermark, and append, truncate, delete or compact only
    /// through this type: changing it directly makes replicas diverge
    /// (compaction and retention of replicated logs are not supported yet).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.state.lock().role
    }

    /// The highest leader epoch this replica has seen.
    pub fn leader_epoch(&self) -> i32 {
        self.state.lock().epoch
    }

    /// Everything below this offset is on every in-sync replica.
    pub fn high_watermark(&self) -> Offset {
        self.state.lock().high_watermark
    }

    /// The log end offset.
    pub fn log_end_offset(&self) -> Offset {
        self.log.end_offset()
    }

    /// Leader only: the in-sync replicas, the leader included (empty on a
    /// follower).
    pub fn isr(&self) -> Vec<ReplicaId> {
        self.state.lock().isr.iter().copied().collect()
    }

    /// The `(epoch, start offset)` history of leader epochs in this log.
    pub fn epoch_history(&self) -> Vec<(i32, Offset)> {
        self.state.lock().epochs.entries.clone()
    }

    fn persist_epochs(&self, epochs: &EpochCache) -> Result<()> {
        write_atomic(
            &RealFs,
            &self.dir.join(EPOCH_FILE),
            epochs.encode().as_bytes(),
        )
    }

    fn persist_state(&self, hw: Offset, epoch: i32) -> Result<()> {
        write_atomic(
            &RealFs,
            &self.dir.join(STATE_FILE),
            encode_state(hw, epoch).as_bytes(),
        )
    }

    /// Makes this replica the leader of `epoch` for `replicas` (its own id
    /// may be among them). The epoch must be above every epoch it has
    /// seen. Every follower starts in the ISR and leaves it if it does not
    /// catch up within `replica_lag_time`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a stale epoch; I/O errors writing the
    /// epoch history.
    pub fn become_leader(&self, epoch: i32, replicas: &[ReplicaId]) -> Result<()> {
        let _apply = self.apply.lock();
        let _roles = self.roles.write();
        let mut st = self.state.lock();
        if epoch <= st.epoch && st.role != (Role::Leader { epoch }) {
            return Err(Error::InvalidArgument(format!(
                "leader epoch {epoch} is not above the epoch {} this replica has seen",
                st.epoch
            )));
        }
        let leo = self.log.end_offset();
        let mut epochs = st.epochs.clone();
        epochs.assign(epoch, leo);
        self.persist_epochs(&epochs)?;
        if let Err(e) = self.persist_state(st.high_watermark, epoch) {
            // Keep the files saying what memory says.
            let _ = self.persist_epochs(&st.epochs);
            return Err(e);
        }
        let now = self.config.clock.now_ms();
        st.epochs = epochs;
        st.epoch = epoch;
        st.role = Role::Leader { epoch };
        st.followers = replicas
            .iter()
            .filter(|&&r| r != self.id)
            .map(|&r| {
                (
                    r,
                    FollowerProgress {
                        fetch_offset: 0,
                        durable: 0,
                        last_caught_up_ms: now,
                    },
                )
            })
            .collect();
        st.isr = st.followers.keys().copied().collect();
        st.isr.insert(self.id);
        self.advance_hw(&mut st);
        self.changed.notify_all();
        Ok(())
    }

    /// Makes this replica a follower of `leader` in `epoch` (not below any
    /// epoch it has seen). A divergent tail is truncated at the first
    /// fetch.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a stale epoch; I/O errors.
    pub fn become_follower(&self, epoch: i32, leader: ReplicaId) -> Result<()> {
        let _apply = self.apply.lock();
        let _roles = self.roles.write();
        let mut st = self.state.lock();
        if epoch < st.epoch || (epoch == st.epoch && st.role == (Role::Leader { epoch })) {
            return Err(Error::InvalidArgument(format!(
                "leader epoch {epoch} is below the epoch {} this replica has seen (or it leads it)",
                st.epoch
            )));
        }
        self.persist_state(st.high_watermark, epoch)?;
        st.epoch = epoch;
        st.role = Role::Follower { epoch, leader };
        st.followers.clear();
        st.isr.clear();
        self.changed.notify_all();
        Ok(())
    }

    /// Leader: appends `records` as one batch of the current epoch. With
    /// [`Acks::All`], returns once the batch is below the high watermark.
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower; [`Error::NotEnoughReplicas`]
    /// when the ISR is smaller than `min_insync_replicas` (checked before
    /// appending, and again when the high watermark passes the batch: then
    /// the batch is stored but not acknowledged);
    /// [`Error::ReplicationTimeout`] when the high watermark did not pass
    /// the batch within `ack_timeout` (it may still); as [`Log::append`].
    pub fn append(&self, records: &[Record], acks: Acks) -> Result<AppendInfo> {
        let roles = self.roles.read();
        let epoch = {
            let st = self.state.lock();
            let Role::Leader { epoch } = st.role else {
                return Err(Error::NotLeader {
                    epoch: st.epoch,
                    role: format!("{:?}", st.role),
                });
            };
            if acks == Acks::All && st.isr.len() < self.config.min_insync_replicas {
                return Err(Error::NotEnoughReplicas {
                    isr: st.isr.len(),
                    required: self.config.min_insync_replicas,
                });
            }
            epoch
        };
        let info = self
            .log
            .append_in_epoch(records, Durability::Buffered, epoch)?;
        drop(roles);
        {
            let mut st = self.state.lock();
            self.advance_hw(&mut st);
        }
        if acks == Acks::Leader {
            return Ok(info);
        }
        self.wait_committed(info)
    }

    fn wait_committed(&self, info: AppendInfo) -> Result<AppendInfo> {
        // The leader's own copy counts once fsync'd (shared with concurrent
        // appends by group commit).
        self.log.flush_to(info.last_offset + 1)?;
        let deadline = crate::clock::deadline_after(self.config.ack_timeout);
        let mut st = self.state.lock();
        loop {
            if !matches!(st.role, Role::Leader { .. }) {
                return Err(Error::NotLeader {
                    epoch: st.epoch,
                    role: format!("{:?}", st.role),
                });
            }
            self.shrink_isr(&mut st);
            self.advance_hw(&mut st);
            if st.high_watermark > info.last_offset {
                if st.isr.len() < self.config.min_insync_replicas {
                    return Err(Error::NotEnoughReplicas {
                        isr: st.isr.len(),
                        required: self.config.min_insync_replicas,
                    });
                }
                return Ok(info);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(Error::ReplicationTimeout {
                    offset: info.last_offset,
                    high_watermark: st.high_watermark,
                });
            }
            // Wake up now and then to drop followers that stopped fetching.
            let step = (self.config.replica_lag_time / 4)
                .clamp(Duration::from_millis(1), Duration::from_millis(100));
            let until = deadline.min(now + step);
            self.changed.wait_until(&mut st, until);
        }
    }

    /// Leader: drops from the ISR every follower that has not caught up
    /// within `replica_lag_time`, and advances the high watermark. Fetches
    /// and `Acks::All` appends do this too; call it when neither happens
    /// for a while.
    pub fn tick(&self) {
        let mut st = self.state.lock();
        self.shrink_isr(&mut st);
        self.advance_hw(&mut st);
    }

    fn shrink_isr(&self, st: &mut State) {
        if !matches!(st.role, Role::Leader { .. }) {
            return;
        }
        let now = self.config.clock.now_ms();
        let lag = i64::try_from(self.config.replica_lag_time.as_millis()).unwrap_or(i64::MAX);
        let leo = self.log.end_offset();
        // A follower at the log end is in sync however long ago it
        // fetched.
        let out: Vec<ReplicaId> = st
            .followers
            .iter()
            .filter(|(id, f)| {
                st.isr.contains(id)
                    && f.fetch_offset < leo
                    && now.saturating_sub(f.last_caught_up_ms) > lag
            })
            .map(|(id, _)| *id)
            .collect();
        if !out.is_empty() {
            for id in out {
                st.isr.remove(&id);
            }
            self.changed.notify_all();
        }
    }

    /// Leader: the high watermark follows the least durable in-sync
    /// replica, the leader's own fsync'd end included (alone, with no
    /// follower in sync, its log end: there is no other copy to protect);
    /// it never moves back.
    fn advance_hw(&self, st: &mut State) {
        if !matches!(st.role, Role::Leader { .. }) {
            return;
        }
        let followers_in_sync = st.followers.keys().any(|id| st.isr.contains(id));
        let mut hw = if followers_in_sync {
            self.log.flushed_offset()
        } else {
            self.log.end_offset()
        };
        for (id, f) in &st.followers {
            if st.isr.contains(id) {
                hw = hw.min(f.durable.min(f.fetch_offset));
            }
        }
        if hw > st.high_watermark {
            st.high_watermark = hw;
            self.changed.notify_all();
        }
    }

    /// Leader side of replication: answers a follower's fetch (the host
    /// calls this when a request arrives). Holds the request open up to
    /// `fetch_max_wait` when the follower is caught up.
    pub fn handle_fetch(&self, req: &FetchRequest) -> FetchResponse {
        let leo = self.log.end_offset();
        let epoch = {
            let st = self.state.lock();
            let Role::Leader { epoch } = st.role else {
                return FetchResponse::NotLeader { current: st.epoch };
            };
            if req.leader_epoch != epoch {
                return FetchResponse::NotLeader { current: epoch };
            }
            if req.last_fetched_epoch != NO_EPOCH || req.fetch_offset > 0 {
                // Diverged: the leader's copy of the follower's last epoch
                // ends before the follower's log does, or the leader never
                // had that epoch (records written before the leader's first
                // epoch, e.g. before replication was set up, are shared).
                let (e, end) = st.epochs.end_offset_for(req.last_fetched_epoch, leo);
                if end < req.fetch_offset || (e != req.last_fetched_epoch && e != NO_EPOCH) {
                    return FetchResponse::Diverging {
                        epoch: e,
                        end_offset: end,
                    };
                }
            }
            if req.fetch_offset > leo {
                return FetchResponse::Diverging {
                    epoch: st.epochs.latest(),
                    end_offset: leo,
                };
            }
            epoch
        };
        let read = || {
            self.log.read(
                req.fetch_offset,
                ReadLimit::bytes(self.config.fetch_max_bytes),
            )
        };
        // Behind the end: read now, and check that the follower's end is a
        // batch boundary of the leader's log (else their logs differ before
        // it) before its progress counts.
        let mut batches = None;
        if req.fetch_offset < leo {
            match read() {
                Ok(b) => {
                    if let Some(Ok(first)) = b.iter().next()
                        && first.base_offset() != req.fetch_offset
                    {
                        return FetchResponse::Diverging {
                            epoch: NO_EPOCH,
                            end_offset: first.base_offset(),
                        };
                    }
                    batches = Some(b);
                }
                Err(e) => {
                    return FetchResponse::Failed {
                        reason: e.to_string(),
                    };
                }
            }
        }
        {
            let mut st = self.state.lock();
            if st.role != (Role::Leader { epoch }) {
                return FetchResponse::NotLeader { current: st.epoch };
            }
            let now = self.config.clock.now_ms();
            let in_epoch = st.epochs.entries.last().map_or(0, |e| e.1);
            let hw = st.high_watermark;
            if let Some(f) = st.followers.get_mut(&req.replica) {
                f.fetch_offset = req.fetch_offset;
                f.durable = req.durable_offset.min(req.fetch_offset);
                if req.fetch_offset >= leo {
                    f.last_caught_up_ms = now;
                }
                // Kafka's rule to rejoin: caught up to the high watermark
                // and to the current epoch's start (here: to the log end).
                if !st.isr.contains(&req.replica)
                    && req.fetch_offset >= hw
                    && req.fetch_offset >= in_epoch
                    && req.fetch_offset >= leo
                {
                    st.isr.insert(req.replica);
                    self.changed.notify_all();
                }
            }
            self.shrink_isr(&mut st);
            self.advance_hw(&mut st);
        }
        self.flush_for_hw();
        let batches = match batches {
            Some(b) => b,
            None => {
                // Caught up: hold the request open for new data.
                if !self.config.fetch_max_wait.is_zero() {
                    self.log
                        .wait_for(req.fetch_offset, self.config.fetch_max_wait);
                }
                match read() {
                    Ok(b) => b,
                    Err(e) => {
                        return FetchResponse::Failed {
                            reason: e.to_string(),
                        };
                    }
                }
            }
        };
        FetchResponse::Records {
            leader_epoch: epoch,
            high_watermark: self.high_watermark(),
            batches: batches.as_bytes().clone(),
        }
    }

    /// Leader: fsyncs its own log as far as the in-sync followers have
    /// theirs, so that the high watermark (which counts the leader's
    /// durable end once it has followers in sync) can follow them.
    fn flush_for_hw(&self) {
        let target = {
            let st = self.state.lock();
            if !matches!(st.role, Role::Leader { .. }) {
                return;
            }
            st.followers
                .iter()
                .filter(|(id, _)| st.isr.contains(id))
                .map(|(_, f)| f.durable)
                .min()
        };
        let Some(target) = target else { return };
        if self.log.flushed_offset() < target && self.log.flush_to(target).is_ok() {
            let mut st = self.state.lock();
            self.advance_hw(&mut st);
        }
    }

    /// Follower: the request [`fetch_once`](Self::fetch_once) sends;
    /// `None` unless following.
    pub fn fetch_request(&self) -> Option<(ReplicaId, FetchRequest)> {
        let st = self.state.lock();
        let Role::Follower { epoch, leader } = st.role else {
            return None;
        };
        Some((
            leader,
            FetchRequest {
                replica: self.id,
                leader_epoch: epoch,
                fetch_offset: self.log.end_offset(),
                last_fetched_epoch: st.epochs.latest(),
                durable_offset: self.log.flushed_offset(),
            },
        ))
    }

    /// Follower: applies the leader's answer to `request` (appending,
    /// fsyncing and moving the high watermark, or truncating a divergent
    /// tail). An answer to a request that no longer matches the log or the
    /// role is ignored ([`FetchOutcome::Stale`]).
    ///
    /// # Errors
    /// [`Error::NotLeader`] when the replica asked does not lead the epoch;
    /// [`Error::InvalidBatch`] for a malformed answer; I/O errors.
    pub fn apply_fetch_response(
        &self,
        request: &FetchRequest,
        response: FetchResponse,
    ) -> Result<FetchOutcome> {
        let _apply = self.apply.lock();
        {
            let st = self.state.lock();
            let current =
                matches!(st.role, Role::Follower { epoch, .. } if epoch == request.leader_epoch);
            if !current
                || self.log.end_offset() != request.fetch_offset
                || st.epochs.latest() != request.last_fetched_epoch
            {
                return Ok(FetchOutcome::Stale);
            }
        }
        match response {
            FetchResponse::NotLeader { current } => Err(Error::NotLeader {
                epoch: current,
                role: "asked replica does not lead the follower's epoch".into(),
            }),
            FetchResponse::Failed { reason } => Err(Error::Transport {
                reason: format!("the leader failed the fetch: {reason}"),
            }),
            FetchResponse::Diverging { epoch, end_offset } => {
                let leo = self.log.end_offset();
                let mine = {
                    let st = self.state.lock();
                    if epoch == NO_EPOCH {
                        end_offset
                    } else {
                        st.epochs.end_offset_for(epoch, leo).1
                    }
                };
                let target = end_offset.min(mine).min(leo);
                let end = if target < leo {
                    self.log.truncate_to(target)?
                } else {
                    leo
                };
                let mut st = self.state.lock();
                let mut epochs = st.epochs.clone();
                if epochs.truncate_from_end(end) {
                    self.persist_epochs(&epochs)?;
                }
                st.epochs = epochs;
                st.high_watermark = st.high_watermark.min(end);
                Ok(FetchOutcome::Truncated { end })
            }
            FetchResponse::Records {
                leader_epoch,
                high_watermark,
                batches,
            } => {
                if leader_epoch != request.leader_epoch {
                    return Ok(FetchOutcome::Stale);
                }
                let mut n = 0;
                for b in Batches::from_bytes(batches).iter() {
                    let b = b?;
                    let epoch = b.header().partition_leader_epoch;
                    {
                        let mut st = self.state.lock();
                        if epoch > st.epochs.latest() {
                            let mut epochs = st.epochs.clone();
                            epochs.assign(epoch, b.base_offset());
                            self.persist_epochs(&epochs)?;
                            st.epochs = epochs;
                        }
                    }
                    let mut bytes = b.as_bytes().to_vec();
                    self.log.append_exact(&mut bytes, Durability::Buffered)?;
                    n += 1;
                }
                if n > 0 {
                    // The next fetch reports these as durable.
                    self.log.flush()?;
                }
                let mut st = self.state.lock();
                let hw = high_watermark.min(self.log.end_offset());
                if hw > st.high_watermark {
                    st.high_watermark = hw;
                    self.changed.notify_all();
                }
                Ok(FetchOutcome::Appended {
                    batches: n,
                    high_watermark: st.high_watermark,
                })
            }
        }
    }

    /// Follower: one fetch from the leader through `transport`, applied.
    ///
    /// # Errors
    /// [`Error::NotLeader`] when not following, or when the replica asked
    /// no longer leads; [`Error::Transport`]; as
    /// [`apply_fetch_response`](Self::apply_fetch_response).
    pub fn fetch_once(&self, transport: &dyn Replicator) -> Result<FetchOutcome> {
        // Records this replica wrote itself (as an earlier leader) and the
        // leader kept count towards the high watermark once durable here.
        if self.log.flushed_offset() < self.log.end_offset() {
            self.log.flush()?;
        }
        let Some((leader, req)) = self.fetch_request() else {
            let st = self.state.lock();
            return Err(Error::NotLeader {
                epoch: st.epoch,
                role: format!("{:?} (not a follower)", st.role),
            });
        };
        let resp = transport.fetch(leader, &req)?;
        self.apply_fetch_response(&req, resp)
    }

    /// Reads whole batches from `from`, below the high watermark only.
    ///
    /// # Errors
    /// As [`Log::read`].
    pub fn read(&self, from: Offset, limit: ReadLimit) -> Result<Batches> {
        let hw = self.high_watermark();
        self.log.read_below(from, hw, limit)
    }

    /// Writes the high watermark and closes the log.
    ///
    /// # Errors
    /// I/O errors.
    pub fn close(self) -> Result<()> {
        let (hw, epoch) = {
            let st = self.state.lock();
            (st.high_watermark, st.epoch)
        };
        self.persist_state(hw, epoch)?;
        self.log.close()
    }

    /// Writes the high watermark checkpoint now (close does it too; a
    /// stale one only makes readers wait after a restart until it moves
    /// again).
    ///
    /// # Errors
    /// I/O errors.
    pub fn checkpoint(&self) -> Result<()> {
        let (hw, epoch) = {
            let st = self.state.lock();
            (st.high_watermark, st.epoch)
        };
        self.persist_state(hw, epoch)
    }
}

/// Encoding of fetch messages for transports (big-endian, versioned).
impl FetchRequest {
    /// The request as bytes: version `u8` = 0, replica `u32`, leader epoch
    /// `i32`, fetch offset `u64`, last fetched epoch `i32`, durable offset
    /// `u64`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(29);
        b.push(0);
        b.extend_from_slice(&self.replica.to_be_bytes());
        b.extend_from_slice(&self.leader_epoch.to_be_bytes());
        b.extend_from_slice(&self.fetch_offset.to_be_bytes());
        b.extend_from_slice(&self.last_fetched_epoch.to_be_bytes());
        b.extend_from_slice(&self.durable_offset.to_be_bytes());
        b
    }

    /// Parses [`encode`](Self::encode)'s bytes.
    ///
    /// # Errors
    /// [`Error::Transport`] saying what is wrong.
    pub fn decode(b: &[u8]) -> Result<FetchRequest> {
        let bad = |what: &str| Error::Transport {
            reason: format!("bad fetch request: {what}"),
        };
        if b.len() != 29 {
            return Err(bad(&format!("{} bytes, expected 29", b.len())));
        }
        if b[0] != 0 {
            return Err(bad(&format!("version {}", b[0])));
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        Ok(FetchRequest {
            replica: u32_at(1),
            leader_epoch: u32_at(5) as i32,
            fetch_offset: u64_at(9),
            last_fetched_epoch: u32_at(17) as i32,
            durable_offset: u64_at(21),
        })
    }
}

impl FetchResponse {
    /// The answer as bytes: a kind byte (0 records, 1 diverging, 2 not
    /// leader, 3 failed) then, for records, epoch `i32`, high watermark
    /// `u64` and the batches; for diverging, epoch `i32` and end offset
    /// `u64`; for not leader, the epoch `i32`; for failed, the reason in
    /// UTF-8.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            FetchResponse::Records {
                leader_epoch,
                high_watermark,
                batches,
            } => {
                b.push(0);
                b.extend_from_slice(&leader_epoch.to_be_bytes());
                b.extend_from_slice(&high_watermark.to_be_bytes());
                b.extend_from_slice(batches);
            }
            FetchResponse::Diverging { epoch, end_offset } => {
                b.push(1);
                b.extend_from_slice(&epoch.to_be_bytes());
                b.extend_from_slice(&end_offset.to_be_bytes());
            }
            FetchResponse::NotLeader { current } => {
                b.push(2);
                b.extend_from_slice(&current.to_be_bytes());
            }
            FetchResponse::Failed { reason } => {
                b.push(3);
                b.extend_from_slice(reason.as_bytes());
            }
        }
        b
    }

    /// Parses [`encode`](Self::encode)'s bytes (the batches are checked
    /// when applied).
    ///
    /// # Errors
    /// [`Error::Transport`] saying what is wrong.
    pub fn decode(b: &[u8]) -> Result<FetchResponse> {
        let bad = |what: String| Error::Transport {
            reason: format!("bad fetch response: {what}"),
        };
        let i32_at = |i: usize| -> Result<i32> {
            b.get(i..i + 4)
                .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| bad(format!("cut at byte {i}")))
        };
        let u64_at = |i: usize| -> Result<u64> {
            b.get(i..i + 8)
                .map(|s| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(s);
                    u64::from_be_bytes(a)
                })
                .ok_or_else(|| bad(format!("cut at byte {i}")))
        };
        match b.first() {
            Some(0) => Ok(FetchResponse::Records {
                leader_epoch: i32_at(1)?,
                high_watermark: u64_at(5)?,
                batches: Bytes::copy_from_slice(&b[13..]),
            }),
            Some(1) if b.len() == 13 => Ok(FetchResponse::Diverging {
                epoch: i32_at(1)?,
                end_offset: u64_at(5)?,
            }),
            Some(2) if b.len() == 5 => Ok(FetchResponse::NotLeader {
                current: i32_at(1)?,
            }),
            Some(3) => Ok(FetchResponse::Failed {
                reason: String::from_utf8(b[1..].to_vec())
                    .map_err(|_| bad("failure reason is not UTF-8".into()))?,
            }),
            Some(k) => Err(bad(format!("kind {k} with {} bytes", b.len()))),
            None => Err(bad("empty".into())),
        }
    }
}

/// The reference transport: replicas in one process, found by id, with
/// injectable message loss and outages (for tests and single-machine
/// setups).
#[derive(Debug, Default)]
pub struct LocalTransport {
    replicas: parking_lot::RwLock<BTreeMap<ReplicaId, Arc<ReplicaLog>>>,
    faults: Mutex<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    down: BTreeSet<ReplicaId>,
    /// Lose one message in `loss` (0: none), drawn from `rng`.
    loss: u32,
    rng: u64,
}

impl LocalTransport {
    /// An empty transport.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `replica` reachable under its id (replacing an older one).
    pub fn register(&self, replica: Arc<ReplicaLog>) {
        self.replicas.write().insert(replica.id(), replica);
    }

    /// Makes replica `id` unreachable.
    pub fn unregister(&self, id: ReplicaId) {
        self.replicas.write().remove(&id);
    }

    /// Cuts replica `id` off (`true`) or reconnects it: requests to it and
    /// from it are lost.
    pub fn set_down(&self, id: ReplicaId, down: bool) {
        let mut f = self.faults.lock();
        if down {
            f.down.insert(id);
        } else {
            f.down.remove(&id);
        }
    }

    /// Loses one message in `one_in` at random (requests before the leader
    /// sees them, or answers after it did); 0 loses none.
    pub fn set_loss(&self, one_in: u32, seed: u64) {
        let mut f = self.faults.lock();
        f.loss = one_in;
        f.rng = seed | 1;
    }

    fn lose(&self) -> bool {
        let mut f = self.faults.lock();
        if f.loss == 0 {
            return false;
        }
        f.rng ^= f.rng << 13;
        f.rng ^= f.rng >> 7;
        f.rng ^= f.rng << 17;
        f.rng.is_multiple_of(u64::from(f.loss))
    }
}

impl Replicator for LocalTransport {
    fn fetch(&self, leader: ReplicaId, request: &FetchRequest) -> Result<FetchResponse> {
        let lost = |what: &str| Error::Transport {
            reason: format!("{what} between {} and {leader} lost", request.replica),
        };
        {
            let f = self.faults.lock();
            if f.down.contains(&leader) || f.down.contains(&request.replica) {
                return Err(lost("replica down: request"));
            }
        }
        if self.lose() {
            return Err(lost("request"));
        }
        let target = self.replicas.read().get(&leader).cloned();
        let Some(target) = target else {
            return Err(lost("unknown replica: request"));
        };
        let resp = target.handle_fetch(request);
        if self.lose() {
            return Err(lost("answer"));
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_cache_rules() {
        let mut c = EpochCache::default();
        assert_eq!(c.end_offset_for(3, 10), (NO_EPOCH, 0));
        c.assign(1, 0);
        c.assign(3, 5);
        c.assign(4, 9);
        assert_eq!(c.end_offset_for(1, 12), (1, 5));
        assert_eq!(c.end_offset_for(2, 12), (1, 5));
        assert_eq!(c.end_offset_for(3, 12), (3, 9));
        assert_eq!(c.end_offset_for(7, 12), (4, 12));
        assert_eq!(c.end_offset_for(0, 12), (NO_EPOCH, 0));
        // A new epoch at an earlier offset replaces what it contradicts.
        c.assign(5, 7);
        assert_eq!(c.entries, vec![(1, 0), (3, 5), (5, 7)]);
        assert!(c.truncate_from_end(6));
        assert_eq!(c.entries, vec![(1, 0), (3, 5)]);
        let text = c.encode();
        assert_eq!(text, "0\n2\n1 0\n3 5\n");
        assert_eq!(EpochCache::decode(&text), Ok(c));
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n1 0\n",
            "0\n1\n1 x\n",
            "0\n2\n3 5\n1 0\n",
            "0\n1\n1 0\n2 3\n",
            "0\n1\n-1 0\n",
        ] {
            assert!(EpochCache::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn state_file_and_messages_roundtrip() {
        let s = encode_state(77, 4);
        assert_eq!(decode_state(&s), Ok((77, 4)));
        assert!(decode_state(&s.replace("77", "78")).is_err());
        let req = FetchRequest {
            replica: 2,
            leader_epoch: 5,
            fetch_offset: 1 << 40,
            last_fetched_epoch: NO_EPOCH,
            durable_offset: 9,
        };
        assert_eq!(FetchRequest::decode(&req.encode()).unwrap(), req);
        assert!(FetchRequest::decode(&req.encode()[..28]).is_err());
        for resp in [
            FetchResponse::Records {
                leader_epoch: 3,
                high_watermark: 10,
                batches: Bytes::from_static(b"xyz"),
            },
            FetchResponse::Diverging {
                epoch: 2,
                end_offset: 4,
            },
            FetchResponse::NotLeader { current: 9 },
            FetchResponse::Failed {
                reason: "offset 3 is below the log start 10".into(),
            },
        ] {
            let b = resp.encode();
            assert_eq!(FetchResponse::decode(&b).unwrap(), resp);
            // A failure's reason has no length: any cut of it is a reason.
            let cuts = if matches!(resp, FetchResponse::Failed { .. }) {
                1
            } else {
                b.len().min(12)
            };
            for n in 0..cuts {
                assert!(
                    FetchResponse::decode(&b[..n]).is_err(),
                    "{resp:?} cut at {n}"
                );
            }
        }
    }
}

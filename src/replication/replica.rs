//! Opening a replica, its accessors, reads below the high watermark and
//! closing.

use super::checkpoint::{EPOCH_FILE, STATE_FILE, decode_state, load_file};
use super::{EpochCache, ReplicaId, ReplicaLog, ReplicationConfig, Role, State};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::record::{Batches, Offset};
use crate::storage::{Log, LogConfig, ReadLimit};
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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

//! The leader side: becoming leader, appends and their acknowledgement,
//! the ISR, the high watermark and answering fetches.

use super::{
    Acks, FetchRequest, FetchResponse, FollowerProgress, NO_EPOCH, ReplicaId, ReplicaLog, Role,
    State,
};
use crate::error::{Error, Result};
use crate::record::ToRecord;
#[cfg(doc)]
use crate::storage::Log;
use crate::storage::{AppendInfo, Durability, ReadLimit};
use std::time::Duration;

impl ReplicaLog {
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
    pub fn append<R: ToRecord>(&self, records: &[R], acks: Acks) -> Result<AppendInfo> {
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
}

//! The follower side: becoming follower, building fetch requests and
//! applying the leader's answers.

use super::{
    FetchOutcome, FetchRequest, FetchResponse, NO_EPOCH, ReplicaId, ReplicaLog, Replicator, Role,
};
use crate::error::{Error, Result};
use crate::record::Batches;
use crate::storage::Durability;

impl ReplicaLog {
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
}

//! [`LocalTransport`]: replicas in one process.

use super::{FetchRequest, FetchResponse, ReplicaId, ReplicaLog, Replicator};
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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

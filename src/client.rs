//! What the clients ([`Producer`](crate::Producer),
//! [`Consumer`](crate::Consumer), [`Admin`](crate::Admin)) hold of the
//! broker that made them: the catalog, the groups, and a handle that keeps
//! the broker open while they live.

use crate::catalog::Catalog;
use crate::group::Groups;
use crate::txn::Transactions;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// The layers below the clients, shared by every client of one broker.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Context {
    /// The topics.
    pub(crate) catalog: Arc<Catalog>,
    /// Consumer groups and their committed offsets.
    pub(crate) groups: Arc<Groups>,
    /// Producer ids and transactions.
    pub(crate) txns: Arc<Transactions>,
    /// The key-map budget of compaction passes run on demand.
    pub(crate) key_map_bytes: usize,
    /// Whatever made the clients (the broker), kept alive by them: its
    /// background threads run and its directory stays locked as long as a
    /// client exists. The clients never look inside.
    pub(crate) owner: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("root", &self.catalog.root())
            .finish_non_exhaustive()
    }
}

//! The connector classes every [`Connect`](super::Connect) knows.

use super::runtime::Connect;

/// Registers the built-in classes with `connect`.
pub(super) fn register(connect: &Connect) {
    let _ = connect;
}

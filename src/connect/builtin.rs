//! The connector classes every [`Connect`](super::Connect) knows.

use super::runtime::Connect;

/// Registers the built-in classes with `connect`.
pub(super) fn register(connect: &Connect) {
    #[cfg(feature = "sqlite")]
    {
        use super::{SqliteSinkConnector, SqliteSourceConnector};
        connect.register_sink(SqliteSinkConnector::CLASS, || Box::new(SqliteSinkConnector));
        connect.register_source(SqliteSourceConnector::CLASS, || {
            Box::new(SqliteSourceConnector)
        });
    }
    let _ = connect;
}

//! The connector classes every [`Connect`](super::Connect) knows.

use super::runtime::Connect;

/// Registers the built-in classes with `connect`.
pub(super) fn register(connect: &Connect) {
    use super::{FileStreamSinkConnector, FileStreamSourceConnector};
    for class in [
        FileStreamSourceConnector::CLASS,
        FileStreamSourceConnector::ALIAS,
    ] {
        connect.register_source(class, || Box::new(FileStreamSourceConnector));
    }
    for class in [
        FileStreamSinkConnector::CLASS,
        FileStreamSinkConnector::ALIAS,
    ] {
        connect.register_sink(class, || Box::new(FileStreamSinkConnector));
    }
    #[cfg(feature = "kafka")]
    {
        use super::{KafkaSinkConnector, KafkaSourceConnector};
        connect.register_sink(KafkaSinkConnector::CLASS, || Box::new(KafkaSinkConnector));
        connect.register_source(KafkaSourceConnector::CLASS, || {
            Box::new(KafkaSourceConnector)
        });
    }
    #[cfg(feature = "sqlite")]
    {
        use super::{SqliteSinkConnector, SqliteSourceConnector};
        connect.register_sink(SqliteSinkConnector::CLASS, || Box::new(SqliteSinkConnector));
        connect.register_source(SqliteSourceConnector::CLASS, || {
            Box::new(SqliteSourceConnector)
        });
    }
}

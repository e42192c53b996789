//! The connector classes every [`Connect`](super::Connect) knows.

use super::runtime::ConnectorKind;
use super::spi::{SinkConnector, SourceConnector};
use super::{FileStreamSinkConnector, FileStreamSourceConnector};

/// A built-in class: its name and how to make it.
pub(super) enum Builtin {
    Source(&'static str, fn() -> Box<dyn SourceConnector>),
    Sink(&'static str, fn() -> Box<dyn SinkConnector>),
}

impl Builtin {
    pub(super) fn kind_and_name(&self) -> (ConnectorKind, &'static str) {
        match self {
            Builtin::Source(name, _) => (ConnectorKind::Source, name),
            Builtin::Sink(name, _) => (ConnectorKind::Sink, name),
        }
    }
}

/// The classes this build has: the file connectors always, the SQLite
/// and Kafka ones with their features. Kafka's class names and the short
/// aliases both name the file connectors.
pub(super) fn all() -> Vec<Builtin> {
    #[cfg_attr(not(any(feature = "sqlite", feature = "kafka")), allow(unused_mut))]
    let mut all = vec![
        Builtin::Source(FileStreamSourceConnector::CLASS, || {
            Box::new(FileStreamSourceConnector)
        }),
        Builtin::Source(FileStreamSourceConnector::ALIAS, || {
            Box::new(FileStreamSourceConnector)
        }),
        Builtin::Sink(FileStreamSinkConnector::CLASS, || {
            Box::new(FileStreamSinkConnector)
        }),
        Builtin::Sink(FileStreamSinkConnector::ALIAS, || {
            Box::new(FileStreamSinkConnector)
        }),
    ];
    #[cfg(feature = "sqlite")]
    {
        use super::{SqliteSinkConnector, SqliteSourceConnector};
        all.push(Builtin::Source(SqliteSourceConnector::CLASS, || {
            Box::new(SqliteSourceConnector)
        }));
        all.push(Builtin::Sink(SqliteSinkConnector::CLASS, || {
            Box::new(SqliteSinkConnector)
        }));
    }
    #[cfg(feature = "kafka")]
    {
        use super::{KafkaSinkConnector, KafkaSourceConnector};
        all.push(Builtin::Source(KafkaSourceConnector::CLASS, || {
            Box::new(KafkaSourceConnector)
        }));
        all.push(Builtin::Sink(KafkaSinkConnector::CLASS, || {
            Box::new(KafkaSinkConnector)
        }));
    }
    all
}

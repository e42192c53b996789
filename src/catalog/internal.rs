//! Internal topics: the ones the broker keeps for itself, and what users
//! may not do to them.

use crate::error::{Error, Result};

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The internal topic holding the state of transactions (one compacted
/// partition): decisions, producer ids and epochs, pending offsets.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Whether `name` is a topic the broker keeps for itself.
pub(crate) fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC
}

/// What a user tried to do to a topic, for [`refuse_internal`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Use {
    /// Append records (a partition append or a producer send).
    Write,
    /// Delete the topic.
    DeleteTopic,
    /// Delete records before an offset.
    DeleteRecords,
}

/// [`Error::InternalTopic`] if `topic` is internal, saying how its
/// records are changed instead; `Ok` for any other topic.
pub(crate) fn refuse_internal(topic: &str, what: Use) -> Result<()> {
    if !is_internal(topic) {
        return Ok(());
    }
    let instead = match (topic == TRANSACTION_STATE_TOPIC, what) {
        (true, Use::Write) => "transactional producers write it through their commits and aborts",
        (true, Use::DeleteTopic) => "it holds the transactions' decisions and producer ids",
        (true, Use::DeleteRecords) => "compaction keeps only each transaction's latest state",
        (false, Use::Write) => "consumers write it through commits",
        (false, Use::DeleteTopic) => "delete consumer groups instead",
        (false, Use::DeleteRecords) => "its records are deleted with the consumer groups",
    };
    Err(Error::InternalTopic {
        topic: topic.to_string(),
        reason: instead.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_internal_topics_are_refused_and_the_error_says_what_to_do() {
        refuse_internal("orders", Use::Write).unwrap();
        refuse_internal("__consumer_offsets_not", Use::DeleteTopic).unwrap();
        for (what, says) in [
            (Use::Write, "through commits"),
            (Use::DeleteTopic, "delete consumer groups"),
            (Use::DeleteRecords, "deleted with the consumer groups"),
        ] {
            let e = refuse_internal(OFFSETS_TOPIC, what).unwrap_err();
            assert!(matches!(e, Error::InternalTopic { .. }), "{e:?}");
            assert!(e.to_string().contains(says), "{what:?}: {e}");
        }
    }
}

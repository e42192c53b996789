//! The catalog: the topics of one data directory, their partitions and
//! configurations, and the rules for their names.

mod config;
mod names;
mod topic;

pub use config::{CleanupPolicy, TopicConfig};
pub use names::{MAX_TOPIC_NAME_LEN, validate_topic_name};
pub(crate) use topic::TopicState;
pub use topic::{Partition, PartitionLog, Topic, TopicPartition};

//! [`StreamsConfig`]: what a [`Streams`](super::Streams) application runs
//! with.

use crate::streams::DeserializationErrors;
use crate::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// What a commit covers (Kafka's `processing.guarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingGuarantee {
    /// Outputs and store updates are sent, then input offsets committed:
    /// after a crash, records since the last commit are processed again
    /// (outputs may repeat; nothing is lost).
    #[default]
    AtLeastOnce,
    /// Each commit is one transaction holding the outputs, the changelog
    /// writes and the input offsets (Kafka's `exactly_once_v2`): after a
    /// crash, the work since the last commit is rolled back and redone,
    /// and read-committed readers see every result once.
    ExactlyOnce,
}

/// The settings of a [`Streams`](super::Streams) application (Kafka's
/// `StreamsConfig`).
///
/// ```
/// use embedlog::streams::{ProcessingGuarantee, StreamsConfig};
/// use std::time::Duration;
///
/// let config = StreamsConfig::new("word-count")
///     .num_stream_threads(2)
///     .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
///     .commit_interval(Duration::from_millis(200));
/// assert_eq!(config.application_id(), "word-count");
/// ```
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    pub(crate) application_id: String,
    pub(crate) threads: usize,
    pub(crate) guarantee: ProcessingGuarantee,
    pub(crate) commit_interval: Option<Duration>,
    pub(crate) cache_max_bytes: usize,
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) poll_timeout: Duration,
    pub(crate) max_poll_records: usize,
    pub(crate) deserialization: DeserializationErrors,
    pub(crate) repartition_purge_interval: Duration,
}

impl StreamsConfig {
    /// An application named `application_id`: its consumer group, the
    /// prefix of its internal topics and transactional ids, the directory
    /// of its state. One thread, at-least-once, 10 MiB of record cache.
    pub fn new(application_id: impl Into<String>) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            threads: 1,
            guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval: None,
            cache_max_bytes: 10 << 20,
            state_dir: None,
            poll_timeout: Duration::from_millis(100),
            max_poll_records: 1000,
            deserialization: DeserializationErrors::Fail,
            repartition_purge_interval: Duration::from_secs(30),
        }
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// How many threads process tasks (Kafka's `num.stream.threads`).
    pub fn num_stream_threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// At-least-once (the default) or exactly-once.
    pub fn processing_guarantee(mut self, g: ProcessingGuarantee) -> Self {
        self.guarantee = g;
        self
    }

    /// How often a thread commits (default 30 s at-least-once, 100 ms
    /// exactly-once, as Kafka).
    pub fn commit_interval(mut self, every: Duration) -> Self {
        self.commit_interval = Some(every);
        self
    }

    /// The record cache of each thread, shared by its tasks' stores (Kafka's
    /// `statestore.cache.max.bytes`, default 10 MiB): updates of a key are
    /// merged until the next commit or until the cache is full. 0 sends
    /// every update downstream at once.
    pub fn cache_max_bytes(mut self, bytes: usize) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// Where persistent stores and checkpoints live (default:
    /// `<broker directory>/streams/<application id>`).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The longest a thread waits for input before it runs wall-clock
    /// punctuations and checks for a commit (default 100 ms).
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// The most records a thread takes per poll (default 1000).
    pub fn max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n;
        self
    }

    /// How often the records of repartition topics that every task has
    /// committed are deleted, at a commit (Kafka's
    /// `repartition.purge.interval.ms`, default 30 s; zero: at every
    /// commit).
    pub fn repartition_purge_interval(mut self, every: Duration) -> Self {
        self.repartition_purge_interval = every;
        self
    }

    /// What to do with input its serdes cannot decode (default: fail).
    pub fn deserialization_errors(mut self, policy: DeserializationErrors) -> Self {
        self.deserialization = policy;
        self
    }

    pub(crate) fn commit_every(&self) -> Duration {
        self.commit_interval.unwrap_or(match self.guarantee {
            ProcessingGuarantee::AtLeastOnce => Duration::from_secs(30),
            ProcessingGuarantee::ExactlyOnce => Duration::from_millis(100),
        })
    }

    pub(crate) fn validate(&self) -> Result<()> {
        // Internal topics are `<application id>-<name>`: the id must be
        // usable in a topic name (letters, digits, '.', '_', '-').
        crate::validate_topic_name(&self.application_id).map_err(|e| {
            Error::InvalidConfig(format!(
                "application id {:?} cannot prefix topic names: {e}",
                self.application_id
            ))
        })?;
        if self.threads == 0 {
            return Err(Error::InvalidConfig(
                "num_stream_threads must be at least 1".into(),
            ));
        }
        if self.max_poll_records == 0 {
            return Err(Error::InvalidConfig(
                "max_poll_records must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

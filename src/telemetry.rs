//! Numbers through the [`metrics`](https://docs.rs/metrics) facade (the
//! `metrics` feature): what the library measures, under which names. No
//! recorder or exporter is installed; without the feature, or without a
//! recorder, these cost nothing (the facade's no-op) or next to nothing.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `embedlog_records_in_total` | counter | `topic` (`""` for a `Log` opened alone) | records appended: producers, `Partition::append`, markers, internal topics |
//! | `embedlog_bytes_in_total` | counter | `topic` | bytes of the batches appended, as stored (compressed if they are) |
//! | `embedlog_records_out_total` | counter | `topic` | records a consumer's `poll` returned (`poll_batches` decodes none) |
//! | `embedlog_bytes_out_total` | counter | `topic` | key and value bytes of those records |
//! | `embedlog_append_seconds` | histogram | | one batch's append under the log's writer lock (roll included, fsync not) |
//! | `embedlog_fsync_seconds` | histogram | | one fsync of a log (group commit, flushes, rolled segments) |
//! | `embedlog_consumer_lag` | gauge | `group` (`""` without one), `topic`, `partition` | records after a consumer's position, at its last poll |
//! | `embedlog_cleaner_runs_total` | counter | | compaction passes (the cleaner's and `compact_now`'s) |
//! | `embedlog_cleaner_records_removed_total` | counter | | records and tombstones those passes removed |
//! | `embedlog_retention_segments_deleted_total` | counter | | segments retention deleted |

#[cfg(feature = "metrics")]
mod on {
    use std::time::Instant;

    use std::sync::Arc;

    /// (The `topic` label shares the topic's name: no allocation per call.)
    pub(crate) fn records_in(topic: &Arc<str>, records: u64, bytes: u64) {
        let topic = topic.clone();
        ::metrics::counter!("embedlog_records_in_total", "topic" => topic.clone())
            .increment(records);
        ::metrics::counter!("embedlog_bytes_in_total", "topic" => topic).increment(bytes);
    }

    /// `bytes` is computed only here, with the feature (it walks the
    /// records).
    pub(crate) fn records_out(topic: &Arc<str>, records: u64, bytes: impl FnOnce() -> u64) {
        let bytes = bytes();
        let topic = topic.clone();
        ::metrics::counter!("embedlog_records_out_total", "topic" => topic.clone())
            .increment(records);
        ::metrics::counter!("embedlog_bytes_out_total", "topic" => topic).increment(bytes);
    }

    pub(crate) fn consumer_lag(group: Option<&str>, topic: &str, partition: u32, lag: u64) {
        ::metrics::gauge!(
            "embedlog_consumer_lag",
            "group" => group.unwrap_or("").to_string(),
            "topic" => topic.to_string(),
            "partition" => partition.to_string()
        )
        .set(lag as f64);
    }

    pub(crate) fn cleaner_run(records_removed: u64) {
        ::metrics::counter!("embedlog_cleaner_runs_total").increment(1);
        ::metrics::counter!("embedlog_cleaner_records_removed_total").increment(records_removed);
    }

    pub(crate) fn retention_deleted(segments: usize) {
        ::metrics::counter!("embedlog_retention_segments_deleted_total").increment(segments as u64);
    }

    /// A clock for a latency histogram.
    pub(crate) struct Timer(Instant);

    impl Timer {
        pub(crate) fn start() -> Timer {
            Timer(Instant::now())
        }

        pub(crate) fn append(self) {
            ::metrics::histogram!("embedlog_append_seconds").record(self.0.elapsed().as_secs_f64());
        }

        pub(crate) fn fsync(self) {
            ::metrics::histogram!("embedlog_fsync_seconds").record(self.0.elapsed().as_secs_f64());
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod on {
    use std::sync::Arc;

    pub(crate) fn records_in(_: &Arc<str>, _: u64, _: u64) {}
    pub(crate) fn records_out(_: &Arc<str>, _: u64, _: impl FnOnce() -> u64) {}
    pub(crate) fn consumer_lag(_: Option<&str>, _: &str, _: u32, _: u64) {}
    pub(crate) fn cleaner_run(_: u64) {}
    pub(crate) fn retention_deleted(_: usize) {}

    pub(crate) struct Timer;

    impl Timer {
        pub(crate) fn start() -> Timer {
            Timer
        }
        pub(crate) fn append(self) {}
        pub(crate) fn fsync(self) {}
    }
}

pub(crate) use on::*;

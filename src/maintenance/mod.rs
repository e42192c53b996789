//! Maintenance: the work a broker does on its topics in the background —
//! timed flushes (`flush.ms`), retention (`retention.ms`,
//! `retention.bytes`) and compaction (the [`cleaner`]) — and the threads
//! that do it.
//!
//! Knows the catalog, not the broker: the threads hold it weakly and end
//! when it goes or when [`Maintenance::stop`] says so.

pub(crate) mod cleaner;

use crate::catalog::{Catalog, Topic, TopicPartition};
use crate::error::{Error, Result};
use crate::storage::RetentionReport;
use crate::worker::Worker;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// When the background threads run (the broker builder's settings).
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// How often the housekeeping thread wakes, in real time.
    pub(crate) housekeeping_interval: Duration,
    /// How often retention is applied, by the catalog's clock.
    pub(crate) retention_check_interval: Duration,
    /// The cleaner's sleep between rounds; `None` runs no cleaner.
    pub(crate) cleaner_backoff: Option<Duration>,
    /// The key-map budget of a compaction pass.
    pub(crate) key_map_bytes: usize,
}

/// The housekeeping thread (flushes and retention) and the cleaner thread
/// of one catalog.
#[derive(Debug)]
pub(crate) struct Maintenance {
    housekeeper: Worker,
    cleaner: Option<Worker>,
}

impl Maintenance {
    /// Starts the threads. Schedules start now, by the catalog's clock,
    /// not when a thread first runs.
    ///
    /// # Errors
    /// [`Error::Io`] if a thread cannot be started.
    pub(crate) fn start(catalog: &Arc<Catalog>, schedule: &Schedule) -> Result<Maintenance> {
        let mut tick = housekeeping(catalog, schedule.retention_check_interval);
        let housekeeper = Worker::spawn(
            "embedlog-housekeeping",
            schedule.housekeeping_interval,
            move |_| tick(),
        )
        .map_err(|e| Error::io("spawn housekeeping thread for", catalog.root(), e))?;
        let cleaner = match schedule.cleaner_backoff {
            None => None,
            Some(backoff) => {
                let weak = Arc::downgrade(catalog);
                let key_map_bytes = schedule.key_map_bytes;
                let mut cleaner = cleaner::Cleaner::default();
                let w = Worker::spawn("embedlog-cleaner", backoff, move |stop| {
                    let Some(catalog) = weak.upgrade() else {
                        return false;
                    };
                    let topics = catalog.all_topics();
                    drop(catalog);
                    // Failures are reported (through `tracing`) and backed
                    // off by the round; a failed fsync also poisons the
                    // partition for its writers.
                    cleaner.round(&topics, key_map_bytes, || !stop.requested());
                    true
                })
                .map_err(|e| Error::io("spawn cleaner thread for", catalog.root(), e))?;
                Some(w)
            }
        };
        Ok(Maintenance {
            housekeeper,
            cleaner,
        })
    }

    /// Asks both threads to stop, then waits for the housekeeping thread
    /// (so that no timed flush overlaps the closing of the logs). The
    /// cleaner is waited for by [`stop_cleaner`](Self::stop_cleaner): a
    /// pass in progress stops at its next check once its log closes.
    pub(crate) fn stop_housekeeping(&self) {
        if let Some(c) = &self.cleaner {
            c.request_stop();
        }
        self.housekeeper.stop();
    }

    /// Waits for the cleaner thread to end (after asking it to).
    pub(crate) fn stop_cleaner(&self) {
        if let Some(c) = &self.cleaner {
            c.stop();
        }
    }
}

/// Applies each topic's retention to its partitions; returns what went.
///
/// # Errors
/// The first partition's error (the others are still processed).
pub(crate) fn enforce_retention(
    topics: &[Topic],
) -> Result<Vec<(TopicPartition, RetentionReport)>> {
    let mut first_err = None;
    let out = retention_pass(topics, |_, e| {
        first_err.get_or_insert(e);
    });
    first_err.map_or(Ok(out), Err)
}

/// Applies each topic's retention to its partitions, handing each
/// partition's error to `on_error`; returns what went.
fn retention_pass(
    topics: &[Topic],
    mut on_error: impl FnMut(&TopicPartition, Error),
) -> Vec<(TopicPartition, RetentionReport)> {
    let mut out = Vec::new();
    for t in topics {
        let config = t.config();
        let policy = config.get_retention();
        if policy.is_unlimited() || !config.get_cleanup_policy().deletes() {
            continue;
        }
        for p in t.partitions() {
            let tp = TopicPartition::new(t.name(), p.id());
            match p.log.enforce_retention(policy) {
                Ok(r) if r.segments_deleted > 0 => out.push((tp, r)),
                Ok(_) => {}
                // A partition closed by a concurrent delete: skip it.
                Err(Error::Closed) => {}
                Err(e) => on_error(&tp, e),
            }
        }
    }
    out
}

/// The housekeeping thread's tick: flushes topics with a `flush_interval`
/// and applies retention every `retention_every`. Whether either is due is
/// decided by the catalog's [`Clock`](crate::Clock), so a
/// [`ManualClock`](crate::ManualClock) drives both; real time only decides
/// how often the thread looks. `false` once the catalog is gone.
fn housekeeping(catalog: &Arc<Catalog>, retention_every: Duration) -> impl FnMut() -> bool + use<> {
    let due = |since: i64, now: i64, interval: Duration| {
        now.saturating_sub(since) >= i64::try_from(interval.as_millis()).unwrap_or(i64::MAX)
    };
    let clock = catalog.clock().clone();
    let catalog = Arc::downgrade(catalog);
    // A topic's first flush is due one interval after the broker opened
    // (not after the thread first saw the topic), so the schedule does not
    // depend on how soon the thread looks.
    let started = clock.now_ms();
    let mut last_flush: HashMap<String, i64> = HashMap::new();
    let mut last_retention = started;
    move || {
        let Some(catalog) = catalog.upgrade() else {
            return false;
        };
        let topics = catalog.all_topics();
        drop(catalog);
        let now = clock.now_ms();
        if due(last_retention, now, retention_every) {
            last_retention = now;
            // A failure poisons the partition or reaches its next writer;
            // the next round tries again.
            retention_pass(&topics, |tp, e| {
                tracing::warn!(
                    topic = &*tp.topic,
                    partition = tp.partition,
                    error = %e,
                    "embedlog: background retention failed; retrying at the next check"
                );
            });
        }
        last_flush.retain(|name, _| topics.iter().any(|t| t.name() == name));
        for t in topics {
            let Some(interval) = t.config().get_flush_interval() else {
                continue;
            };
            let last = last_flush.entry(t.name().to_string()).or_insert(started);
            if due(*last, now, interval) {
                *last = now;
                for p in t.partitions() {
                    if p.log.is_poisoned() {
                        continue; // reported when it happened; writers see it
                    }
                    // A failure poisons the partition; its writers see it.
                    match p.log.flush() {
                        Ok(()) | Err(Error::Closed) => {}
                        Err(e) => tracing::error!(
                            topic = t.name(),
                            partition = p.id(),
                            error = %e,
                            "embedlog: background flush failed; the partition refuses writes until reopened"
                        ),
                    }
                }
            }
        }
        true
    }
}

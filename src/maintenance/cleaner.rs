//! The cleaner (Kafka's log cleaner): compaction passes on the partitions
//! of compacted topics. A round of the background cleaner chooses the
//! partitions whose dirty ratio reached their topic's
//! `min.cleanable.dirty.ratio`, dirtiest first, and compacts them; a pass
//! only runs if the ratio, checked again atomically with the pass, still
//! reaches it. A partition whose passes fail sits out a number of rounds
//! that doubles with each failure in a row (up to [`MAX_SKIP_ROUNDS`]), and
//! every failure is reported through `tracing`.
//!
//! Knows topics and partitions, not the catalog: the maintenance thread
//! hands each round the topics and sleeps between rounds.

use crate::catalog::{Partition, Topic, TopicPartition};
use crate::error::{Error, Result};
use crate::storage::{Compaction, CompactionReport, Log};
use std::collections::HashMap;

/// The most rounds a failing partition sits out between two attempts.
pub(crate) const MAX_SKIP_ROUNDS: u32 = 64;

/// Runs passes on `log` until its dirty data fit the key map (a pass that
/// fills the map leaves the rest to the next one), appending what each did
/// to `out`. With `min_ratio`, each pass runs only if the dirty ratio,
/// checked under the lock the pass holds, is at least `min_ratio`.
fn passes(
    log: &Log,
    options: Compaction,
    min_ratio: Option<f64>,
    out: &mut Vec<CompactionReport>,
) -> Result<()> {
    loop {
        let report = match min_ratio {
            None => log.compact(options)?,
            Some(min) => match log.compact_if_dirty(options, min)? {
                Some(r) => r,
                None => return Ok(()),
            },
        };
        let more = report.key_map_full;
        out.push(report);
        if !more {
            return Ok(());
        }
    }
}

/// Compacts `partitions` of `topic` now, whatever their dirty ratio, until
/// each has no dirty data its key map could not cover; returns what each
/// pass did.
pub(crate) fn compact_partitions(
    topic: &Topic,
    partitions: &[Partition],
    key_map_bytes: usize,
) -> Result<Vec<(TopicPartition, CompactionReport)>> {
    let options = topic.config().compaction(key_map_bytes);
    let mut out = Vec::new();
    for p in partitions {
        let mut reports = Vec::new();
        passes(&p.log, options, None, &mut reports)?;
        let tp = TopicPartition::new(topic.name(), p.id());
        out.extend(reports.into_iter().map(|r| (tp.clone(), r)));
    }
    Ok(out)
}

/// Consecutive failed passes of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failing {
    failures: u32,
    /// Rounds still to sit out.
    skip: u32,
}

/// Which partitions sit out rounds after failed passes: after `n` failures
/// in a row, `min(2^(n-1), MAX_SKIP_ROUNDS)` rounds; a success starts the
/// count over.
#[derive(Debug, Default)]
pub(crate) struct FailureBackoff {
    failing: HashMap<TopicPartition, Failing>,
}

impl FailureBackoff {
    /// Whether `tp` sits out this round; counts the round if it does.
    pub(crate) fn sits_out(&mut self, tp: &TopicPartition) -> bool {
        match self.failing.get_mut(tp) {
            Some(f) if f.skip > 0 => {
                f.skip -= 1;
                true
            }
            _ => false,
        }
    }

    /// Records a failed pass; returns the failures in a row and the rounds
    /// `tp` now sits out.
    pub(crate) fn failed(&mut self, tp: &TopicPartition) -> (u32, u32) {
        let f = self.failing.entry(tp.clone()).or_insert(Failing {
            failures: 0,
            skip: 0,
        });
        f.failures = f.failures.saturating_add(1);
        f.skip = 1u32
            .checked_shl(f.failures - 1)
            .unwrap_or(u32::MAX)
            .min(MAX_SKIP_ROUNDS);
        (f.failures, f.skip)
    }

    /// Records a successful pass: the next failure counts from one.
    pub(crate) fn succeeded(&mut self, tp: &TopicPartition) {
        self.failing.remove(tp);
    }

    /// Forgets the partitions `live` says no longer exist.
    fn retain(&mut self, live: impl Fn(&TopicPartition) -> bool) {
        self.failing.retain(|tp, _| live(tp));
    }
}

/// A partition a round chose, with the dirty ratio it was chosen by.
#[derive(Debug)]
pub(crate) struct Candidate {
    ratio: f64,
    topic: Topic,
    partition: Partition,
}

/// What one round did.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Every pass that ran.
    pub(crate) passes: Vec<(TopicPartition, CompactionReport)>,
    /// Partitions whose passes failed (reported through `tracing`).
    pub(crate) failed: Vec<(TopicPartition, Error)>,
    /// Partitions that sat this round out after failures.
    pub(crate) sat_out: Vec<TopicPartition>,
}

/// The background cleaner's state between rounds.
#[derive(Debug, Default)]
pub(crate) struct Cleaner {
    backoff: FailureBackoff,
}

impl Cleaner {
    /// One round: chooses, then cleans while `keep_going` says so (it is
    /// asked before each partition).
    pub(crate) fn round(
        &mut self,
        topics: &[Topic],
        key_map_bytes: usize,
        keep_going: impl Fn() -> bool,
    ) -> Round {
        let mut round = Round::default();
        let chosen = self.choose(topics, &mut round);
        self.clean(chosen, key_map_bytes, keep_going, &mut round);
        round
    }

    /// The partitions of compacted topics whose dirty ratio (as it is now)
    /// reached their topic's minimum, dirtiest first, but those sitting
    /// out after failures.
    pub(crate) fn choose(&mut self, topics: &[Topic], round: &mut Round) -> Vec<Candidate> {
        let mut chosen = Vec::new();
        for t in topics {
            let config = t.config();
            if !config.get_cleanup_policy().compacts() {
                continue;
            }
            for p in t.partitions() {
                let tp = TopicPartition::new(t.name(), p.id());
                if self.backoff.sits_out(&tp) {
                    round.sat_out.push(tp);
                    continue;
                }
                let ratio = p.log().dirty_ratio();
                if ratio > 0.0 && ratio >= config.get_min_cleanable_dirty_ratio() {
                    chosen.push(Candidate {
                        ratio,
                        topic: t.clone(),
                        partition: p,
                    });
                }
            }
        }
        self.backoff.retain(|tp| {
            topics.iter().any(|t| {
                t.name() == &*tp.topic && t.partitions().iter().any(|p| p.id() == tp.partition)
            })
        });
        chosen.sort_by(|a, b| b.ratio.total_cmp(&a.ratio));
        chosen
    }

    /// Compacts `chosen`, each only as far as its topic's minimum dirty
    /// ratio (as configured now) still holds when its pass runs.
    pub(crate) fn clean(
        &mut self,
        chosen: Vec<Candidate>,
        key_map_bytes: usize,
        keep_going: impl Fn() -> bool,
        round: &mut Round,
    ) {
        for c in chosen {
            if !keep_going() {
                return;
            }
            let config = c.topic.config();
            let tp = TopicPartition::new(c.topic.name(), c.partition.id());
            let mut reports = Vec::new();
            let result = passes(
                &c.partition.log,
                config.compaction(key_map_bytes),
                Some(config.get_min_cleanable_dirty_ratio()),
                &mut reports,
            );
            let ran = !reports.is_empty();
            round
                .passes
                .extend(reports.into_iter().map(|r| (tp.clone(), r)));
            match result {
                Ok(()) if ran => self.backoff.succeeded(&tp),
                // The ratio fell below the minimum before a pass could run.
                Ok(()) => {}
                // Closed by a concurrent delete or by the broker's close.
                Err(Error::Closed) => {}
                Err(e) => {
                    let (failures, skip_rounds) = self.backoff.failed(&tp);
                    tracing::error!(
                        topic = %tp.topic,
                        partition = tp.partition,
                        error = %e,
                        failures,
                        skip_rounds,
                        "compaction failed; the cleaner skips the partition for a while"
                    );
                    round.failed.push((tp, e));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;

//! fsyncs: group commit (one fsync for every sync appender waiting, in
//! the slot `SyncState` guards), flushing by record count, and the
//! background flusher (`flush.ms`).

use super::{Durability, Inner};
use crate::error::{Error, Result};
use crate::record::Offset;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest a group-commit leader waits for sync appenders to join it.
const COMMIT_DELAY: Duration = Duration::from_micros(50);

/// Marks one sync append in flight; see `Inner::sync_appender`.
pub(super) struct SyncAppender<'a>(&'a AtomicUsize);

impl Drop for SyncAppender<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
pub(super) struct SyncState {
    /// Every offset below this is fsync'd.
    pub(super) synced: Offset,
    pub(super) in_progress: bool,
    /// Threads waiting for the fsync in progress.
    pub(super) waiting: usize,
}

impl SyncState {
    /// Records an fsync that covered every offset below `upto`, unless a
    /// truncation (`epoch` moved) replaced files after it began.
    pub(super) fn advance(&mut self, upto: Offset, epoch: u64, now_epoch: u64) {
        if epoch == now_epoch {
            self.synced = self.synced.max(upto);
        }
    }
}

impl Inner {
    /// Counts a sync append in flight (for group commit) until dropped.
    pub(super) fn sync_appender(&self, durability: Option<Durability>) -> Option<SyncAppender<'_>> {
        let sync = durability.map_or_else(
            || self.default_sync.load(Ordering::Relaxed),
            |d| d == Durability::Sync,
        );
        sync.then(|| {
            self.sync_appenders.fetch_add(1, Ordering::SeqCst);
            SyncAppender(&self.sync_appenders)
        })
    }

    /// Group commit: returns once every offset below `target` is fsync'd.
    /// The first caller to find no fsync running does one for everybody;
    /// the others wait for it.
    pub(super) fn sync_to(&self, target: Offset) -> Result<()> {
        let mut st = self.sync.lock();
        loop {
            if self.abandoned.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            // A truncation may have removed offsets below `target`: what is
            // gone needs no fsync (and waiting for it would never end).
            let target = target.min(self.next_offset.load(Ordering::SeqCst));
            if self.poisoned.load(Ordering::SeqCst) {
                drop(st);
                self.check_writable()?;
                return Err(Error::Closed);
            }
            if st.synced >= target {
                return Ok(());
            }
            if st.in_progress {
                st.waiting += 1;
                self.leader_cv.notify_one();
                self.sync_cv.wait(&mut st);
                st.waiting -= 1;
                continue;
            }
            st.in_progress = true;
            // Group commit: other sync appenders that are writing right now
            // are about to wait for an fsync; give them a moment to join
            // this one rather than start the next (as PostgreSQL's
            // commit_delay does). Never longer than COMMIT_DELAY; no wait
            // at all for a lone appender.
            let deadline = Instant::now() + COMMIT_DELAY;
            while self.sync_appenders.load(Ordering::SeqCst) > st.waiting + 1 {
                if self.leader_cv.wait_until(&mut st, deadline).timed_out() {
                    break;
                }
            }
            drop(st);
            let r = self.flush_once();
            st = self.sync.lock();
            st.in_progress = false;
            match r {
                Ok((upto, epoch)) => {
                    st.advance(upto, epoch, self.truncations.load(Ordering::SeqCst))
                }
                Err(e) => {
                    self.poison(&e);
                    self.sync_cv.notify_all();
                    return Err(e);
                }
            }
            self.sync_cv.notify_all();
            if self.checkpoint_stale.swap(false, Ordering::SeqCst) {
                drop(st);
                self.try_checkpoint();
                st = self.sync.lock();
            }
        }
    }

    /// fsyncs the rolled segments and the active one; returns the offset
    /// everything below which is now durable.
    pub(super) fn flush_once(&self) -> Result<(Offset, u64)> {
        let (end, epoch, active, rolled) = {
            let mut w = self.writer.lock();
            w.unflushed_records = 0;
            (
                self.next_offset.load(Ordering::SeqCst),
                self.truncations.load(Ordering::SeqCst),
                self.active(),
                std::mem::take(&mut w.unflushed),
            )
        };
        let timer = crate::telemetry::Timer::start();
        for s in &rolled {
            s.sync_all()?;
            s.release_handles();
        }
        active.sync_log()?;
        timer.fsync();
        if !rolled.is_empty() {
            // The recovery point moved past whole segments: record it so a
            // crash does not rescan them. Done after `synced` is updated.
            self.checkpoint_stale.store(true, Ordering::SeqCst);
        }
        Ok((end, epoch))
    }

    fn try_checkpoint(&self) {
        if self.store_checkpoint(None).is_err() {
            // The old checkpoint stays valid (an older recovery point only
            // means more to scan after a crash); retry at the next flush.
            self.checkpoint_stale.store(true, Ordering::SeqCst);
        }
    }

    /// The background flusher's tick (`flush.ms`): fsyncs what was
    /// appended since the last one; `false` once the log is closed.
    pub(super) fn flush_tick(&self) -> bool {
        if self.closed.load(Ordering::SeqCst) {
            return false;
        }
        let end = self.next_offset.load(Ordering::SeqCst);
        if self.sync.lock().synced < end {
            // A failure poisons the log (appenders see it); say so now,
            // since nobody may append for a while.
            if let Err(e) = self.sync_to(end) {
                tracing::error!(
                    path = %self.dir.display(),
                    error = %e,
                    "background fsync (flush.ms) failed; the log refuses writes until reopened"
                );
            }
        }
        true
    }
}

//! fsyncs: group commit (one fsync for every sync appender waiting, in
//! the slot `SyncState` guards), flushing by record count, and the
//! background flusher (`flush.ms`).

use super::{Durability, Inner};
use crate::error::{Error, Result};
use crate::record::Offset;
#[cfg(feature = "async")]
use crate::wakers::WakerKey;
use crate::wakers::Wakers;
use parking_lot::MutexGuard;
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
    /// Futures waiting for it (`poll_sync_to`).
    pub(super) wakers: Wakers,
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
            if let Some(r) = self.sync_reached(&mut st, target) {
                return r;
            }
            if st.in_progress {
                st.waiting += 1;
                self.leader_cv.notify_one();
                self.sync_cv.wait(&mut st);
                st.waiting -= 1;
                continue;
            }
            self.lead_sync(&mut st)?;
        }
    }

    /// `sync_to` for a future: the same steps, except that where the
    /// blocking call would sleep until another caller's fsync ends, this
    /// registers `waker` (under `key`) and returns `Pending`; that fsync's
    /// end wakes it (`sync_changed`). Finding no fsync running, it leads one
    /// itself, in this call: a future never holds the slot across a
    /// `Pending`, so a close waiting for the slot never waits for a poll.
    #[cfg(feature = "async")]
    pub(super) fn poll_sync_to(
        &self,
        target: Offset,
        key: &mut WakerKey,
        waker: &std::task::Waker,
    ) -> std::task::Poll<Result<()>> {
        let mut st = self.sync.lock();
        loop {
            if let Some(r) = self.sync_reached(&mut st, target) {
                st.wakers.remove(key);
                return std::task::Poll::Ready(r);
            }
            if st.in_progress {
                st.wakers.register(key, waker);
                return std::task::Poll::Pending;
            }
            if let Err(e) = self.lead_sync(&mut st) {
                st.wakers.remove(key);
                return std::task::Poll::Ready(Err(e));
            }
        }
    }

    /// Removes `key`'s waker from the group-commit slot (a future that is
    /// dropped).
    #[cfg(feature = "async")]
    pub(super) fn forget_sync(&self, key: &mut WakerKey) {
        if key.is_registered() {
            self.sync.lock().wakers.remove(key);
        }
    }

    /// Whether a wait for `target` is over: `Some(Ok)` once every offset
    /// below it is fsync'd, `Some(Err)` if the log can no longer get there.
    fn sync_reached(
        &self,
        st: &mut MutexGuard<'_, SyncState>,
        target: Offset,
    ) -> Option<Result<()>> {
        if self.abandoned.load(Ordering::SeqCst) {
            return Some(Err(Error::Closed));
        }
        // A truncation may have removed offsets below `target`: what is
        // gone needs no fsync (and waiting for it would never end).
        let target = target.min(self.next_offset.load(Ordering::SeqCst));
        if self.poisoned.load(Ordering::SeqCst) {
            let e = MutexGuard::unlocked(st, || self.check_writable().err());
            return Some(Err(e.unwrap_or(Error::Closed)));
        }
        (st.synced >= target).then_some(Ok(()))
    }

    /// Takes the slot (none is in progress) and does one fsync for every
    /// waiter; a failure poisons the log.
    fn lead_sync(&self, st: &mut MutexGuard<'_, SyncState>) -> Result<()> {
        st.in_progress = true;
        // Group commit: other sync appenders that are writing right now
        // are about to wait for an fsync; give them a moment to join
        // this one rather than start the next (as PostgreSQL's
        // commit_delay does). Never longer than COMMIT_DELAY; no wait
        // at all for a lone appender.
        let deadline = Instant::now() + COMMIT_DELAY;
        while self.sync_appenders.load(Ordering::SeqCst) > st.waiting + 1 {
            if self.leader_cv.wait_until(st, deadline).timed_out() {
                break;
            }
        }
        let r = MutexGuard::unlocked(st, || self.flush_once());
        st.in_progress = false;
        match r {
            Ok((upto, epoch)) => st.advance(upto, epoch, self.truncations.load(Ordering::SeqCst)),
            Err(e) => {
                self.poison(&e);
                self.sync_changed(st);
                return Err(e);
            }
        }
        self.sync_changed(st);
        if self.checkpoint_stale.swap(false, Ordering::SeqCst) {
            MutexGuard::unlocked(st, || self.try_checkpoint());
        }
        Ok(())
    }

    /// The slot changed (an fsync ended, or a close left it): wakes the
    /// threads and the futures waiting for it.
    pub(super) fn sync_changed(&self, st: &mut MutexGuard<'_, SyncState>) {
        self.sync_cv.notify_all();
        let woken = st.wakers.take();
        if woken.len() > 0 {
            MutexGuard::unlocked(st, || woken.wake());
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

#[cfg(all(test, feature = "async"))]
mod tests {
    use super::super::{Log, LogConfig};
    use crate::record::Record;
    use crate::wakers::WakerKey;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::task::{Poll, Waker};

    use crate::test_support::CountingWaker as Count;

    /// A future follows an fsync in progress (registered, woken by its
    /// end, never sleeping) and leads one that nobody runs.
    #[test]
    fn a_future_waits_for_an_fsync_in_progress_and_leads_one_nobody_runs() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&[Record::new("a")]).unwrap();
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut key = WakerKey::default();

        // Another caller's fsync is in progress: the future waits for it.
        log.inner.sync.lock().in_progress = true;
        assert!(log.inner.poll_sync_to(1, &mut key, &waker).is_pending());
        assert!(key.is_registered());
        // That fsync ends, as `lead_sync` ends one: the future is woken...
        {
            let mut st = log.inner.sync.lock();
            st.in_progress = false;
            st.synced = 1;
            log.inner.sync_changed(&mut st);
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // ...and finds its offsets fsync'd.
        let r = log.inner.poll_sync_to(1, &mut key, &waker);
        assert!(matches!(r, Poll::Ready(Ok(()))));
        assert!(!key.is_registered());

        // No fsync running: it runs one itself, in the poll.
        log.append(&[Record::new("b")]).unwrap();
        let r = log.inner.poll_sync_to(2, &mut key, &waker);
        assert!(matches!(r, Poll::Ready(Ok(()))));
        assert!(log.flushed_offset() >= 2);

        // A dropped waiter leaves no waker in the slot.
        log.append(&[Record::new("c")]).unwrap();
        log.inner.sync.lock().in_progress = true;
        assert!(log.inner.poll_sync_to(3, &mut key, &waker).is_pending());
        log.inner.forget_sync(&mut key);
        let mut st = log.inner.sync.lock();
        assert_eq!(st.wakers.len(), 0);
        st.in_progress = false;
        drop(st);
        assert_eq!(Arc::strong_count(&count), 2); // ours and `waker`
        log.close().unwrap();
    }
}

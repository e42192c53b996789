//! The clean close: everything fsync'd and a clean-shutdown record
//! written, inside the group-commit slot.

use super::Inner;
use crate::error::{Error, Result};
use crate::storage::checkpoint::CleanShutdown;
use std::sync::atomic::Ordering;

impl Inner {
    pub(super) fn shutdown(&self) -> Result<()> {
        // A compaction pass in progress stops at its next check.
        self.stopping.store(true, Ordering::SeqCst);
        let _rewrite = self.rewrite.lock();
        // Take the group-commit slot first, so that no fsync is in flight
        // while the clean-shutdown record is written (the flusher takes the
        // writer lock inside the slot, so the slot comes before the lock).
        {
            let mut st = self.sync.lock();
            while st.in_progress {
                self.sync_cv.wait(&mut st);
            }
            st.in_progress = true;
        }
        let r = self.shutdown_in_slot();
        let mut st = self.sync.lock();
        st.in_progress = false;
        self.sync_changed(&mut st);
        drop(st);
        // Whatever happened, this handle is done with the directory.
        self.lock.lock().take();
        r
    }

    fn shutdown_in_slot(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.wake_all();
        let poisoned = || {
            self.poisoned
                .load(Ordering::SeqCst)
                .then(|| Error::Poisoned {
                    path: self.dir.clone(),
                    reason: self.poison_reason.lock().clone(),
                })
        };
        if let Some(e) = poisoned() {
            return Err(e);
        }
        let active = self.active();
        let synced = (|| {
            active.trim_log()?;
            active.finish_indexes(&mut w.state)?;
            for s in std::mem::take(&mut w.unflushed) {
                s.sync_all()?;
            }
            active.sync_all()
        })();
        if let Err(e) = synced {
            self.poison(&e);
            return Err(e);
        }
        let end = self.next_offset.load(Ordering::SeqCst);
        if let Err(e) = self.write_producer_snapshot(&mut w, end) {
            self.poison(&e);
            return Err(e);
        }
        self.sync.lock().synced = end;
        self.store_checkpoint(Some(CleanShutdown {
            active_base: active.base,
            active_len: active.size(),
            next_offset: end,
        }))
    }
}

//! Background threads that wake on a period until they are told to stop:
//! the broker's housekeeping and cleaner, a producer's linger, a log's
//! timed flush. One mechanism for all of them, so that each stops the same
//! way: promptly (a stop wakes the sleeper), never from inside itself
//! (joining one's own thread would deadlock), and without keeping its
//! owner alive (a tick that needs the owner upgrades a `Weak`).

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

/// What a worker's tick can ask: whether a stop was requested meanwhile
/// (a long tick, like a compaction round, checks it between steps).
#[derive(Debug, Default)]
pub(crate) struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    /// Whether the worker was told to stop.
    pub(crate) fn requested(&self) -> bool {
        *self.stopped.lock()
    }

    pub(crate) fn request(&self) {
        *self.stopped.lock() = true;
        self.cv.notify_all();
    }

    /// Sleeps for `period` or until a stop is requested; `false` if it was.
    pub(crate) fn sleep(&self, period: Duration) -> bool {
        let mut stopped = self.stopped.lock();
        if !*stopped {
            let _ = self.cv.wait_for(&mut stopped, period);
        }
        !*stopped
    }
}

/// A named background thread calling its tick every period until
/// [`stop`](Self::stop) (or drop), or until the tick returns `false`.
#[derive(Debug)]
pub(crate) struct Worker {
    stop: Arc<Stop>,
    thread: Mutex<Option<(JoinHandle<()>, ThreadId)>>,
}

impl Worker {
    /// Spawns thread `name`: it sleeps `period` (woken early by a stop),
    /// then runs `tick`, and so on; it ends when a stop is requested or
    /// `tick` returns `false` (its owner is gone).
    ///
    /// # Errors
    /// The operating system's, when it cannot start a thread.
    pub(crate) fn spawn(
        name: &str,
        period: Duration,
        mut tick: impl FnMut(&Stop) -> bool + Send + 'static,
    ) -> std::io::Result<Worker> {
        Worker::spawn_body(name, move |s| while s.sleep(period) && tick(s) {})
    }

    /// Spawns thread `name` running `body` once: a body that loops on its
    /// own terms (a connector task's poll loop) and checks the [`Stop`]
    /// it is given, sleeping through it so that a stop wakes it.
    ///
    /// # Errors
    /// The operating system's, when it cannot start a thread.
    pub(crate) fn spawn_body(
        name: &str,
        body: impl FnOnce(&Stop) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let stop = Arc::new(Stop::default());
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&s))?;
        let id = handle.thread().id();
        Ok(Worker {
            stop,
            thread: Mutex::new(Some((handle, id))),
        })
    }

    /// Asks the thread to stop, without waiting for it: it ends after the
    /// tick it may be running.
    pub(crate) fn request_stop(&self) {
        self.stop.request();
    }

    /// Asks the thread to stop and waits for it to end, unless this is
    /// the thread itself (a tick that drops the worker's owner), which
    /// then ends on its own after the tick.
    pub(crate) fn stop(&self) {
        self.stop.request();
        if let Some((h, id)) = self.thread.lock().take()
            && id != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn a_worker_ticks_until_stopped_and_stop_waits_for_it() {
        let ticks = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let t = ticks.clone();
        let w = Worker::spawn("test-worker", Duration::from_millis(1), move |_| {
            if t.fetch_add(1, Ordering::SeqCst) == 2 {
                let _ = tx.send(());
            }
            true
        })
        .unwrap();
        rx.recv().unwrap(); // three ticks happened
        w.stop();
        let after = ticks.load(Ordering::SeqCst);
        assert!(after >= 3);
        // Stopped and joined: no tick runs any more.
        w.stop();
        assert_eq!(ticks.load(Ordering::SeqCst), after);
    }

    #[test]
    fn a_stop_wakes_a_long_sleep_and_a_false_tick_ends_the_thread() {
        // A period of an hour: only the stop can end the sleep, so this
        // test ending at all shows that it does.
        let w = Worker::spawn("test-sleeper", Duration::from_secs(3600), |_| true).unwrap();
        w.stop();
        let (tx, rx) = mpsc::channel();
        let w = Worker::spawn("test-once", Duration::from_millis(1), move |stop| {
            let _ = tx.send(stop.requested());
            false
        })
        .unwrap();
        assert!(!rx.recv().unwrap(), "no stop was requested");
        // The thread ended after its one tick: the channel closes.
        assert!(rx.recv().is_err());
        drop(w);
    }
}

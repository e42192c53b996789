//! Waking readers when the log grows: the log's own [`Signal`] (for
//! `Log::wait_for`) and the shareable [`Notify`] of watchers, and
//! `Inner::wake_all`, which fires both.

use super::Inner;
#[cfg(doc)]
use super::Log;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Wakes readers waiting for the log to grow.
#[derive(Debug, Default)]
pub(super) struct Signal {
    mutex: Mutex<()>,
    cv: Condvar,
    waiters: AtomicUsize,
}

impl Signal {
    pub(super) fn notify(&self) {
        // Pairs with the SeqCst increment in `wait_until`: either the waiter
        // sees the new end, or we see the waiter and take the mutex it holds
        // until it sleeps.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.mutex.lock();
            self.cv.notify_all();
        }
    }

    pub(super) fn wait_until(&self, cond: impl Fn() -> bool, deadline: Instant) -> bool {
        if cond() {
            return true;
        }
        let mut g = self.mutex.lock();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if cond() {
                break true;
            }
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                break cond();
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// A wake-up signal a reader can share across many logs: each
/// [`Log::watch`]ed log notifies it after every append, and a waiter sleeps
/// until the notification count moves past what it saw.
///
/// ```
/// use embedlog::{Log, LogConfig, Notify, Record};
/// use std::{sync::Arc, time::Duration};
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path(), LogConfig::default())?;
/// let notify = Arc::new(Notify::new());
/// log.watch(notify.clone());
/// let seen = notify.generation();
/// log.append(&[Record::new("x")])?;
/// assert!(notify.wait_past(seen, Duration::from_secs(5)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Notify {
    generation: Mutex<u64>,
    cv: Condvar,
    waiters: AtomicUsize,
}

impl Notify {
    /// A new signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of notifications so far; pass it to
    /// [`wait_past`](Self::wait_past) after checking for data.
    pub fn generation(&self) -> u64 {
        *self.generation.lock()
    }

    /// Wakes every waiter.
    pub fn notify(&self) {
        let mut g = self.generation.lock();
        *g += 1;
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.cv.notify_all();
        }
    }

    /// Sleeps until a notification after `seen` arrives or `timeout`
    /// passes; returns whether one arrived.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = crate::clock::deadline_after(timeout);
        let mut g = self.generation.lock();
        self.waiters.fetch_add(1, Ordering::Relaxed);
        while *g == seen {
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        *g != seen
    }
}

impl Inner {
    /// Wakes readers waiting for data (and on close).
    pub(super) fn wake_all(&self) {
        self.signal.notify();
        for n in self.watchers.read().iter() {
            n.notify();
        }
    }
}

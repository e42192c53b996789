//! Waking readers when the log grows: the log's own [`Signal`] (for
//! `Log::wait_for` and, with the `async` feature, `Log::wait_for_async`)
//! and the shareable [`Notify`] of watchers, and `Inner::wake_all`, which
//! fires both. Each wakes the threads sleeping on its condition variable
//! and the futures whose wakers it holds (`crate::wakers`), in one step.

use super::Inner;
#[cfg(doc)]
use super::Log;
#[cfg(feature = "async")]
use crate::wakers::WakerKey;
use crate::wakers::Wakers;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(feature = "async")]
use std::task::Waker;
use std::time::{Duration, Instant};

/// Wakes readers waiting for the log to grow.
#[derive(Debug, Default)]
pub(super) struct Signal {
    /// The wakers of `wait_for_async` futures.
    mutex: Mutex<Wakers>,
    cv: Condvar,
    /// Threads sleeping in `wait_until` plus registered wakers.
    waiters: AtomicUsize,
}

impl Signal {
    pub(super) fn notify(&self) {
        // Pairs with the SeqCst increments in `wait_until` and
        // `poll_until`: either the waiter sees the new end, or we see the
        // waiter and take the mutex it holds until it sleeps (or until its
        // waker is registered).
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let mut g = self.mutex.lock();
            self.cv.notify_all();
            let woken = g.take();
            self.waiters.fetch_sub(woken.len(), Ordering::SeqCst);
            drop(g);
            woken.wake();
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

    /// The async `wait_until`: `true` if `cond` holds, else registers
    /// `waker` (under `key`) to be woken by the next notification.
    #[cfg(feature = "async")]
    pub(super) fn poll_until(
        &self,
        cond: impl Fn() -> bool,
        key: &mut WakerKey,
        waker: &Waker,
    ) -> bool {
        if cond() {
            self.forget(key);
            return true;
        }
        let mut g = self.mutex.lock();
        let before = g.len();
        g.register(key, waker);
        self.waiters.fetch_add(g.len() - before, Ordering::SeqCst);
        if cond() {
            drop(g);
            self.forget(key);
            return true;
        }
        false
    }

    /// Removes `key`'s waker (a future that is done or dropped).
    #[cfg(feature = "async")]
    pub(super) fn forget(&self, key: &mut WakerKey) {
        if key.is_registered() && self.mutex.lock().remove(key) {
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A wake-up signal a reader can share across many logs: each
/// [`Log::watch`]ed log notifies it after every append, and a waiter sleeps
/// until the notification count moves past what it saw. With the `async`
/// feature, `wait_past_async` is the same wait as
/// a future, woken by the same notification.
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
    state: Mutex<NotifyState>,
    cv: Condvar,
    waiters: AtomicUsize,
}

#[derive(Debug, Default)]
struct NotifyState {
    generation: u64,
    /// The wakers of futures waiting past a generation.
    wakers: Wakers,
}

impl Notify {
    /// A new signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of notifications so far; pass it to
    /// [`wait_past`](Self::wait_past) after checking for data.
    pub fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Wakes every waiter: threads in [`wait_past`](Self::wait_past) and
    /// futures waiting past an older generation.
    pub fn notify(&self) {
        let mut g = self.state.lock();
        g.generation += 1;
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.cv.notify_all();
        }
        let woken = g.wakers.take();
        drop(g);
        woken.wake();
    }

    /// Sleeps until a notification after `seen` arrives or `timeout`
    /// passes; returns whether one arrived.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = crate::clock::deadline_after(timeout);
        let mut g = self.state.lock();
        self.waiters.fetch_add(1, Ordering::Relaxed);
        while g.generation == seen {
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        g.generation != seen
    }

    /// A future that resolves once a notification after `seen` arrives:
    /// [`wait_past`](Self::wait_past) without a thread to block (bound it
    /// with your executor's timeout). It is woken by the notification
    /// itself, never by polling; dropping it removes its waker.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use embedlog::{Log, LogConfig, Notify, Record};
    /// use std::sync::Arc;
    /// let dir = tempfile::tempdir().unwrap();
    /// let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    /// let notify = Arc::new(Notify::new());
    /// log.watch(notify.clone());
    /// let seen = notify.generation();
    /// let writer = std::thread::spawn(move || log.append(&[Record::new("x")]).map(|_| ()));
    /// pollster::block_on(notify.wait_past_async(seen)); // any executor
    /// assert!(notify.generation() > seen);
    /// writer.join().unwrap().unwrap();
    /// # }
    /// ```
    #[cfg(feature = "async")]
    pub fn wait_past_async(&self, seen: u64) -> WaitPast<'_> {
        WaitPast {
            notify: self,
            seen,
            key: WakerKey::default(),
        }
    }

    /// `true` if a notification after `seen` arrived; else registers
    /// `waker` under `key` for the next one.
    #[cfg(feature = "async")]
    pub(crate) fn poll_past(&self, seen: u64, key: &mut WakerKey, waker: &Waker) -> bool {
        let mut g = self.state.lock();
        if g.generation != seen {
            g.wakers.remove(key);
            return true;
        }
        g.wakers.register(key, waker);
        false
    }

    /// Removes `key`'s waker (a future that is dropped).
    #[cfg(feature = "async")]
    pub(crate) fn forget(&self, key: &mut WakerKey) {
        if key.is_registered() {
            self.state.lock().wakers.remove(key);
        }
    }
}

/// The future of [`Notify::wait_past_async`].
#[cfg(feature = "async")]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WaitPast<'a> {
    notify: &'a Notify,
    seen: u64,
    key: WakerKey,
}

#[cfg(feature = "async")]
impl std::future::Future for WaitPast<'_> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.get_mut();
        if this.notify.poll_past(this.seen, &mut this.key, cx.waker()) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

#[cfg(feature = "async")]
impl Drop for WaitPast<'_> {
    fn drop(&mut self) {
        self.notify.forget(&mut self.key);
    }
}

/// The future of [`Log::wait_for_async`]: resolves to `true` once a
/// record at its offset exists, `false` if the log closes first.
#[cfg(feature = "async")]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WaitFor {
    inner: std::sync::Arc<Inner>,
    offset: crate::record::Offset,
    key: WakerKey,
}

#[cfg(feature = "async")]
impl WaitFor {
    pub(super) fn new(inner: std::sync::Arc<Inner>, offset: crate::record::Offset) -> WaitFor {
        WaitFor {
            inner,
            offset,
            key: WakerKey::default(),
        }
    }
}

#[cfg(feature = "async")]
impl std::future::Future for WaitFor {
    type Output = bool;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<bool> {
        let this = self.get_mut();
        let inner = &*this.inner;
        let offset = this.offset;
        // The condition `Log::wait_for` sleeps on.
        let cond = || {
            inner.next_offset.load(Ordering::SeqCst) > offset || inner.closed.load(Ordering::SeqCst)
        };
        if inner.signal.poll_until(cond, &mut this.key, cx.waker()) {
            std::task::Poll::Ready(inner.next_offset.load(Ordering::SeqCst) > offset)
        } else {
            std::task::Poll::Pending
        }
    }
}

#[cfg(feature = "async")]
impl Drop for WaitFor {
    fn drop(&mut self) {
        self.inner.signal.forget(&mut self.key);
    }
}

impl Inner {
    /// Wakes readers waiting for data (and on close).
    pub(super) fn wake_all(&self) {
        self.signal.notify();
        // A watcher registered before this append began is counted (the
        // count is stored before `watch` returns); one registering during
        // it may miss it, as it may behind the lock.
        if self.watching.load(Ordering::SeqCst) == 0 {
            return;
        }
        for n in self.watchers.read().iter() {
            n.notify();
        }
    }
}

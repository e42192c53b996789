//! Time sources: the system clock, and a manual clock for tests.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Logs read it to decide time-based segment rolls (and, later, retention).
/// Tests inject a [`ManualClock`] so that time-based behaviour is
/// deterministic and nothing sleeps.
pub trait Clock: Send + Sync + Debug {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// The current time, possibly a few milliseconds behind
    /// [`now_ms`](Self::now_ms) (the kernel's tick), for checks whose
    /// period is far longer, such as a segment's age against `segment.ms`,
    /// which every append checks. Default: [`now_ms`](Self::now_ms).
    fn coarse_now_ms(&self) -> i64 {
        self.now_ms()
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::record::now_ms()
    }

    /// `CLOCK_REALTIME_COARSE` on Linux: a read of the time the kernel
    /// stored at its last tick, without the clock source read (`rdtsc`,
    /// or a paravirtual clock in a VM) that makes `now_ms` a sizeable part
    /// of a small append.
    #[cfg(target_os = "linux")]
    #[allow(clippy::useless_conversion)] // `tv_nsec` is an i32 on 32-bit targets
    fn coarse_now_ms(&self) -> i64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        t.tv_sec
            .saturating_mul(1000)
            .saturating_add(i64::from(t.tv_nsec) / 1_000_000)
    }
}

/// A clock that only moves when told to.
///
/// ```
/// use embedlog::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        ManualClock(AtomicI64::new(now_ms))
    }

    /// Sets the time.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// `now + timeout`, saturating: a timeout too large to represent (such as
/// `Duration::MAX`) waits about 136 years instead of panicking.
pub(crate) fn deadline_after(timeout: std::time::Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(1 << 32)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_reads_the_same_time_as_the_precise_one() {
        let precise = SystemClock.now_ms();
        let coarse = SystemClock.coarse_now_ms();
        // At most a tick apart; a minute allows for any scheduling delay
        // between the two reads without deciding anything on timing.
        assert!((coarse - precise).abs() < 60_000, "{coarse} vs {precise}");
        // `now_ms` (read directly on Linux) is the time `SystemTime` reads.
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let direct = crate::record::now_ms();
        assert!((direct - system).abs() < 60_000, "{direct} vs {system}");
        let manual = ManualClock::new(42);
        assert_eq!(manual.coarse_now_ms(), 42, "the default is now_ms");
    }
}

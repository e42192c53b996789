//! Window definitions for windowed aggregations ([`TimeWindows`],
//! [`SlidingWindows`], [`SessionWindows`]), each with an explicit grace
//! period (Kafka 3's names: there is no hidden default grace).
//!
//! When each kind of window closes (one rule for late records, store
//! expiry and `suppress`) is tabulated on [`Suppressed`](super::Suppressed).

use crate::{Error, Result};
use std::time::Duration;

use super::record::Window;

/// Milliseconds of `d`, saturating at `i64::MAX`.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Fixed-size windows by record time (Kafka's `TimeWindows`): tumbling
/// (back to back, each record in one window) or, with
/// [`advance_by`](Self::advance_by), hopping (overlapping, a record in
/// `size / advance` windows). Windows are aligned to the epoch: a window
/// starts at a multiple of the advance, and never before 0 (as Kafka's).
///
/// ```
/// use embedlog::streams::TimeWindows;
/// use std::time::Duration;
///
/// // Five-minute tumbling windows that accept records up to one minute late.
/// let tumbling = TimeWindows::of_size_and_grace(Duration::from_secs(300), Duration::from_secs(60));
/// assert_eq!(tumbling.windows_for(301_000).len(), 1);
/// // Ten-millisecond windows every five milliseconds: a record is in two.
/// let hopping = TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
///     .advance_by(Duration::from_millis(5));
/// let starts: Vec<i64> = hopping.windows_for(12).iter().map(|w| w.start).collect();
/// assert_eq!(starts, [5, 10]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub(crate) size_ms: i64,
    pub(crate) advance_ms: i64,
    pub(crate) grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` that accept records up to `grace` after
    /// they end.
    ///
    /// # Errors
    /// None here; a size under 1 ms makes the topology's
    /// [`build`](super::StreamsBuilder::build) fail with
    /// [`Error::Topology`].
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size_ms = millis(size);
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: millis(grace),
        }
    }

    /// Tumbling windows of `size` with no grace period: a record is late
    /// once stream time has reached its window's end.
    ///
    /// # Errors
    /// As [`of_size_and_grace`](Self::of_size_and_grace).
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        TimeWindows::of_size_and_grace(size, Duration::ZERO)
    }

    /// Hopping windows: a new window starts every `advance` (tumbling when
    /// `advance` equals the size).
    ///
    /// # Errors
    /// None here; an advance under 1 ms or over the size makes the
    /// topology's [`build`](super::StreamsBuilder::build) fail with
    /// [`Error::Topology`].
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance_ms = millis(advance);
        self
    }

    /// The windows' size.
    pub fn size(&self) -> Duration {
        Duration::from_millis(self.size_ms.max(0).unsigned_abs())
    }

    /// How far apart window starts are.
    pub fn advance(&self) -> Duration {
        Duration::from_millis(self.advance_ms.max(0).unsigned_abs())
    }

    /// How long after its end a window still accepts records.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.max(0).unsigned_abs())
    }

    /// The windows a record at `timestamp` (not negative) belongs to, by
    /// start (Kafka's `windowsFor`).
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        let (size, advance) = (self.size_ms, self.advance_ms);
        if timestamp < 0 || size <= 0 || advance <= 0 {
            return Vec::new();
        }
        let first = timestamp
            .saturating_sub(size)
            .saturating_add(advance)
            .max(0);
        let mut start = first - first % advance;
        let mut out = Vec::new();
        while start <= timestamp {
            out.push(Window {
                start,
                end: start.saturating_add(size),
            });
            start = start.saturating_add(advance);
        }
        out
    }

    /// The reason these windows are not usable, if they are not.
    pub(crate) fn check(&self) -> Result<()> {
        if self.size_ms <= 0 {
            return Err(Error::Topology(
                "TimeWindows: the window size must be at least 1 ms".into(),
            ));
        }
        if self.advance_ms <= 0 || self.advance_ms > self.size_ms {
            return Err(Error::Topology(format!(
                "TimeWindows: the advance ({} ms) must be at least 1 ms and at most the window size ({} ms)",
                self.advance_ms, self.size_ms
            )));
        }
        Ok(())
    }
}

/// Windows of a fixed time difference that slide with the records (Kafka's
/// `SlidingWindows`): two records are in a common window when their times
/// differ by at most the difference. Windows are `[start, start +
/// difference]`, both ends included; one ends at each record (its *left*
/// window) and one starts just after each record that has a later record
/// within reach (its *right* window), so every distinct set of records
/// that fits in the difference gets exactly one window. Records earlier
/// than the difference share the window `[0, difference]` (Kafka's).
///
/// ```
/// use embedlog::streams::SlidingWindows;
/// use std::time::Duration;
///
/// let w = SlidingWindows::of_time_difference_and_grace(
///     Duration::from_secs(10),
///     Duration::from_secs(5),
/// );
/// assert_eq!(w.time_difference(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    pub(crate) diff_ms: i64,
    pub(crate) grace_ms: i64,
}

impl SlidingWindows {
    /// Windows of `difference` that accept records up to `grace` after
    /// they end.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            diff_ms: millis(difference),
            grace_ms: millis(grace),
        }
    }

    /// Windows of `difference` with no grace period.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        SlidingWindows::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// The largest time difference between two records of a window.
    pub fn time_difference(&self) -> Duration {
        Duration::from_millis(self.diff_ms.max(0).unsigned_abs())
    }

    /// How long after its end a window still accepts records.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.max(0).unsigned_abs())
    }
}

/// Sessions: a key's records separated by less than an inactivity gap
/// (Kafka's `SessionWindows`). A session's window runs from its first
/// record's time to its last's, both included; a record within the gap of
/// one or more sessions merges them into one.
///
/// ```
/// use embedlog::streams::SessionWindows;
/// use std::time::Duration;
///
/// let w = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(30));
/// assert_eq!(w.inactivity_gap(), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub(crate) gap_ms: i64,
    pub(crate) grace_ms: i64,
}

impl SessionWindows {
    /// Sessions closed by `gap` of inactivity, accepting records up to
    /// `grace` after that.
    ///
    /// # Errors
    /// None here; a gap under 1 ms makes the topology's
    /// [`build`](super::StreamsBuilder::build) fail with
    /// [`Error::Topology`].
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap_ms: millis(gap),
            grace_ms: millis(grace),
        }
    }

    /// Sessions closed by `gap` of inactivity, with no grace period.
    ///
    /// # Errors
    /// As [`of_inactivity_gap_and_grace`](Self::of_inactivity_gap_and_grace).
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        SessionWindows::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// The inactivity gap.
    pub fn inactivity_gap(&self) -> Duration {
        Duration::from_millis(self.gap_ms.max(0).unsigned_abs())
    }

    /// How long after its gap a session still accepts records.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.max(0).unsigned_abs())
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.gap_ms <= 0 {
            return Err(Error::Topology(
                "SessionWindows: the inactivity gap must be at least 1 ms".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn tumbling_windows_hold_each_record_once() {
        let w = TimeWindows::of_size_with_no_grace(ms(10));
        assert_eq!(w.windows_for(0), [Window { start: 0, end: 10 }]);
        assert_eq!(w.windows_for(9), [Window { start: 0, end: 10 }]);
        assert_eq!(w.windows_for(10), [Window { start: 10, end: 20 }]);
        assert!(w.windows_for(-1).is_empty());
        assert!(w.check().is_ok());
    }

    #[test]
    fn hopping_windows_start_at_multiples_of_the_advance_and_not_before_zero() {
        let w = TimeWindows::of_size_and_grace(ms(10), ms(3)).advance_by(ms(3));
        let starts = |t| w.windows_for(t).iter().map(|w| w.start).collect::<Vec<_>>();
        assert_eq!(starts(2), [0]);
        assert_eq!(starts(9), [0, 3, 6, 9]);
        assert_eq!(starts(10), [3, 6, 9]);
        assert_eq!(starts(12), [3, 6, 9, 12]);
        assert_eq!(w.grace(), ms(3));
        assert_eq!(w.advance(), ms(3));
    }

    #[test]
    fn bad_definitions_are_reported() {
        let zero = TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(0));
        assert!(
            zero.check()
                .unwrap_err()
                .to_string()
                .contains("advance (0 ms)")
        );
        let big = TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(11));
        assert!(
            big.check()
                .unwrap_err()
                .to_string()
                .contains("at most the window size")
        );
        assert!(
            TimeWindows::of_size_with_no_grace(Duration::from_micros(10))
                .check()
                .is_err()
        );
        assert!(
            SessionWindows::of_inactivity_gap_with_no_grace(ms(0))
                .check()
                .is_err()
        );
        assert!(
            SessionWindows::of_inactivity_gap_with_no_grace(ms(1))
                .check()
                .is_ok()
        );
    }
}

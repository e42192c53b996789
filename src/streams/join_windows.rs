//! The options of stream–stream joins: [`JoinWindows`] (how far apart in
//! time two records may be and still join) and [`StreamJoined`] (serdes,
//! names and logging of the join's stores).

use super::serde::SerdeRef;
use std::fmt;
use std::time::Duration;

/// How close in time two records of the same key must be to join, in a
/// stream–stream join (Kafka's `JoinWindows`), and how long after that a
/// record may still arrive out of order.
///
/// A record of the left (calling) stream at time `t` joins every record of
/// the right stream with the same key at a time from `t - before` to
/// `t + after`, both included; a right record at `t` joins left records
/// from `t - after` to `t + before`. A record's window closes when the
/// task's stream time passes its own window end (`t + after` for a left
/// record, `t + before` for a right one) plus the grace period: a record
/// arriving after that is dropped as late, and a left or outer join
/// emits an unmatched record only then.
///
/// ```
/// use embedlog::streams::JoinWindows;
/// use std::time::Duration;
///
/// // Within 5 s of each other, records up to 1 s late are still joined.
/// let w = JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::from_secs(1));
/// assert_eq!(w.size(), Duration::from_secs(10));
/// // Only right records up to 2 s after the left one.
/// let w = w.before(Duration::ZERO).after(Duration::from_secs(2));
/// assert_eq!((w.time_before(), w.time_after()), (Duration::ZERO, Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    before: Duration,
    after: Duration,
    grace: Duration,
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl JoinWindows {
    /// Records join if their times differ by at most `time_difference`
    /// either way; out-of-order records are accepted up to `grace` after
    /// their window ends.
    pub fn of_time_difference_and_grace(time_difference: Duration, grace: Duration) -> Self {
        JoinWindows {
            before: time_difference,
            after: time_difference,
            grace,
        }
    }

    /// Records join if their times differ by at most `time_difference`
    /// either way; a record arriving after its window ended is dropped
    /// (no grace period).
    pub fn of_time_difference_with_no_grace(time_difference: Duration) -> Self {
        JoinWindows::of_time_difference_and_grace(time_difference, Duration::ZERO)
    }

    /// Right records may be at most `time_difference` earlier than the
    /// left record they join (the window's start); the end stays.
    pub fn before(mut self, time_difference: Duration) -> Self {
        self.before = time_difference;
        self
    }

    /// Right records may be at most `time_difference` later than the left
    /// record they join (the window's end); the start stays.
    pub fn after(mut self, time_difference: Duration) -> Self {
        self.after = time_difference;
        self
    }

    /// How much earlier than a left record a right record may be.
    pub fn time_before(&self) -> Duration {
        self.before
    }

    /// How much later than a left record a right record may be.
    pub fn time_after(&self) -> Duration {
        self.after
    }

    /// How long after its window's end a record is still accepted.
    pub fn grace_period(&self) -> Duration {
        self.grace
    }

    /// The window's length: `before + after`.
    pub fn size(&self) -> Duration {
        self.before.saturating_add(self.after)
    }

    /// How long each side's store keeps a record: `before + after + grace`.
    pub(crate) fn retention(&self) -> Duration {
        self.size().saturating_add(self.grace)
    }

    pub(crate) fn before_ms(&self) -> i64 {
        millis(self.before)
    }

    pub(crate) fn after_ms(&self) -> i64 {
        millis(self.after)
    }

    pub(crate) fn grace_ms(&self) -> i64 {
        millis(self.grace)
    }
}

/// The serdes, names and logging of a stream–stream join (Kafka's
/// `StreamJoined`). By default the serdes are the streams' own (JSON where
/// a stream has none), the stores get generated names and keep
/// changelogs.
///
/// ```
/// use embedlog::streams::{Serdes, StreamJoined};
///
/// let joined = StreamJoined::with(Serdes::string(), Serdes::i64(), Serdes::string())
///     .with_store_name("clicks-with-views")
///     .with_name("clicks-views");
/// # let _ = joined;
/// ```
pub struct StreamJoined<K, V, VO> {
    pub(crate) keys: Option<SerdeRef<K>>,
    pub(crate) values: Option<SerdeRef<V>>,
    pub(crate) other_values: Option<SerdeRef<VO>>,
    pub(crate) name: Option<String>,
    pub(crate) store_name: Option<String>,
    pub(crate) logged: bool,
}

impl<K, V, VO> fmt::Debug for StreamJoined<K, V, VO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamJoined")
            .field("name", &self.name)
            .field("store_name", &self.store_name)
            .field("logged", &self.logged)
            .finish_non_exhaustive()
    }
}

impl<K, V, VO> Default for StreamJoined<K, V, VO> {
    fn default() -> Self {
        StreamJoined {
            keys: None,
            values: None,
            other_values: None,
            name: None,
            store_name: None,
            logged: true,
        }
    }
}

impl<K, V, VO> StreamJoined<K, V, VO> {
    /// Stores keys with `keys`, the left stream's values with `values` and
    /// the right stream's with `other_values` (also used for the
    /// repartition topics, if a side needs one).
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>, other_values: SerdeRef<VO>) -> Self {
        StreamJoined {
            keys: Some(keys),
            values: Some(values),
            other_values: Some(other_values),
            ..StreamJoined::default()
        }
    }

    /// Names the join's stores after `store_name`:
    /// `<store_name>-this-join-store` (left records),
    /// `<store_name>-other-join-store` (right records) and, for left and
    /// outer joins, `<store_name>-outer-shared-join-store` (records without
    /// a match yet). Default: generated names.
    pub fn as_(store_name: impl Into<String>) -> Self {
        StreamJoined::default().with_store_name(store_name)
    }

    /// As [`as_`](Self::as_), on these options.
    pub fn with_store_name(mut self, store_name: impl Into<String>) -> Self {
        self.store_name = Some(store_name.into());
        self
    }

    /// Names the join's processors (`<name>-this-join`,
    /// `<name>-other-join`, `<name>-merge`) and its repartition topics
    /// (`<name>-left-repartition`, `<name>-right-repartition`). Default:
    /// generated names.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Keeps no changelogs for the join's stores: faster, but a restarted
    /// task starts with empty windows.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logged = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_retention() {
        let w = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10))
            .after(Duration::from_millis(3));
        assert_eq!((w.before_ms(), w.after_ms(), w.grace_ms()), (10, 3, 0));
        assert_eq!(w.size(), Duration::from_millis(13));
        let w = JoinWindows::of_time_difference_and_grace(
            Duration::from_millis(5),
            Duration::from_millis(7),
        );
        assert_eq!(w.retention(), Duration::from_millis(17));
        assert_eq!(w.grace_period(), Duration::from_millis(7));
        let huge = JoinWindows::of_time_difference_and_grace(Duration::MAX, Duration::MAX);
        assert_eq!(huge.before_ms(), i64::MAX);
        assert_eq!(huge.retention(), Duration::MAX);
    }
}

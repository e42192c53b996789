//! Linger by deadline: each batch that starts filling (with a non-zero
//! `linger`) leaves its deadline in a heap; the linger thread sleeps until
//! the earliest one and appends only the batches that are due, instead of
//! locking every partition on a fixed period.

use super::{Acc, Inner};
use crate::worker::{Stop, Worker};
use parking_lot::Mutex;
use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The longest the thread sleeps without looking: deadlines are judged by
/// the broker's clock, which may be a `ManualClock` that a test moves
/// while the thread sleeps in real time.
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// The shortest sleep (a deadline due within the millisecond).
const MIN_SLEEP: Duration = Duration::from_micros(200);

/// One batch's deadline: batch number `batch` of the partition whose
/// accumulator is `acc` is due at `deadline` (broker clock, ms).
#[derive(Debug)]
struct Due {
    deadline: i64,
    /// Push order, to break ties (FIFO among equal deadlines).
    seq: u64,
    acc: Weak<Mutex<Acc>>,
    batch: u64,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Reversed: `BinaryHeap` is a max-heap, the earliest deadline must
    /// come out first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// The deadlines of the batches being filled. An entry whose batch was
/// appended meanwhile (full, or flushed) stays until its deadline and is
/// then dropped: the heap holds at most the batches started within one
/// `linger`.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    heap: BinaryHeap<Due>,
    seq: u64,
}

impl Schedule {
    /// Notes that batch `batch` of `acc` is due at `deadline`.
    pub(super) fn push(&mut self, deadline: i64, acc: Weak<Mutex<Acc>>, batch: u64) {
        self.seq += 1;
        self.heap.push(Due {
            deadline,
            seq: self.seq,
            acc,
            batch,
        });
    }

    /// Removes and returns the entries due at `now`.
    fn pop_due(&mut self, now: i64) -> Vec<(Weak<Mutex<Acc>>, u64)> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|d| d.deadline <= now) {
            if let Some(d) = self.heap.pop() {
                due.push((d.acc, d.batch));
            }
        }
        due
    }

    fn next_deadline(&self) -> Option<i64> {
        self.heap.peek().map(|d| d.deadline)
    }
}

/// How long to sleep before the deadline `next` (none: nothing fills),
/// at `now`, both in broker-clock milliseconds.
fn sleep_for(next: Option<i64>, now: i64) -> Duration {
    match next {
        Some(d) => {
            let ms = u64::try_from(d.saturating_sub(now)).unwrap_or(0);
            Duration::from_millis(ms).clamp(MIN_SLEEP, MAX_SLEEP)
        }
        None => MAX_SLEEP,
    }
}

impl Inner {
    /// Starts the linger thread (a non-zero `linger`). Holds the producer
    /// weakly: it ends when the producer is dropped or closed.
    pub(super) fn spawn_linger(self: &Arc<Self>) -> std::io::Result<Worker> {
        let weak = Arc::downgrade(self);
        Worker::spawn_body("embedlog-linger", move |stop: &Stop| {
            loop {
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let wait = inner.append_lingered();
                drop(inner);
                if !stop.sleep(wait) {
                    return;
                }
            }
        })
    }

    /// Appends the batches whose linger passed; returns how long the
    /// thread may sleep until the next deadline. Batch failures reach
    /// their deliveries, `tracing` and the next flush.
    fn append_lingered(&self) -> Duration {
        let now = self.ctx.catalog.clock().now_ms();
        let due = self.linger_schedule.lock().pop_due(now);
        let mut pending = Vec::new();
        for (acc, batch) in due {
            let Some(acc) = acc.upgrade() else {
                continue;
            };
            let mut a = acc.lock();
            if a.batch == batch && a.count > 0 {
                self.drain(&mut a, &mut pending, false);
            }
        }
        self.complete(pending);
        sleep_for(self.linger_schedule.lock().next_deadline(), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_deadline_first_then_push_order() {
        let mut s = Schedule::default();
        for (deadline, batch) in [(30, 1), (10, 2), (20, 3), (10, 4)] {
            s.push(deadline, Weak::new(), batch);
        }
        assert_eq!(s.next_deadline(), Some(10));
        let batches =
            |v: Vec<(Weak<Mutex<Acc>>, u64)>| v.into_iter().map(|(_, b)| b).collect::<Vec<_>>();
        assert_eq!(batches(s.pop_due(9)), Vec::<u64>::new());
        assert_eq!(batches(s.pop_due(20)), vec![2, 4, 3]);
        assert_eq!(s.next_deadline(), Some(30));
        assert_eq!(batches(s.pop_due(i64::MAX)), vec![1]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn sleeps_until_the_deadline_within_bounds() {
        assert_eq!(sleep_for(Some(105), 100), Duration::from_millis(5));
        assert_eq!(sleep_for(Some(100), 100), MIN_SLEEP);
        assert_eq!(sleep_for(Some(50), 100), MIN_SLEEP);
        assert_eq!(sleep_for(Some(100_000), 100), MAX_SLEEP);
        assert_eq!(sleep_for(None, 100), MAX_SLEEP);
    }
}

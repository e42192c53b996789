//! A consumer as an async stream (`async` feature): the records `poll`
//! returns, one at a time, woken by the notification `poll` sleeps on.

use super::{Assigned, Consumer, ConsumerRecord};
use crate::error::Result;
use crate::record::Offset;
use crate::wakers::WakerKey;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

impl Consumer {
    /// The consumer's records as a [`futures_core::Stream`] (`async`
    /// feature), for any executor: the records [`poll`](Self::poll)
    /// returns, in the same order, one at a time. It reads from the same
    /// positions, with the same reset policy, `max_poll_records`, fetch
    /// sizes, partition rotation and isolation level; errors are items, as
    /// from [`iter`](Self::iter), and the stream goes on after them (it
    /// never ends).
    ///
    /// With nothing to read, the stream registers its task's waker with
    /// the consumer's [`Notify`](crate::Notify), which every append to an
    /// assigned partition notifies (and a close, and the consumer's group):
    /// the notification a blocked `poll` sleeps on wakes it. No thread
    /// waits for it, and nothing polls: an idle stream costs no CPU.
    ///
    /// Positions are exact: after the stream yields a record, the
    /// record's partition is positioned just past it (past the whole batch
    /// once its last record is yielded, as `poll` does). So dropping the
    /// stream loses nothing, and a commit through
    /// [`ConsumerStream::consumer`] commits what was yielded.
    ///
    /// **Groups.** A subscribed consumer's stream does its membership work
    /// at each fetch, as `poll` does: rebalances (revoking, with the
    /// [`RebalanceListener`](crate::RebalanceListener), then acquiring),
    /// the auto-commit when due, and the poll time `max_poll_interval`
    /// measures. A fetch happens whenever the stream has yielded the
    /// records of the previous one and is polled again, and each time it
    /// is woken. An idle stream needs no timer for rebalances: the group
    /// notifies a member's `Notify` when a rebalance gives it a new target
    /// and when a partition it waits for is released, which wakes the
    /// stream, whose next fetch revokes or acquires. While idle it does
    /// not run the auto-commit (as a blocked `poll` does not): positions
    /// reached by the last fetch are committed at the next wake-up, on a
    /// rebalance's revocation, or when the consumer leaves. And like a
    /// consumer that does not call `poll`, a stream that is not polled for
    /// `max_poll_interval` (its task busy elsewhere) may be removed from
    /// the group once another member waits for one of its partitions.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use embedlog::{Broker, ConsumerConfig, OffsetReset, Record, TopicConfig};
    /// let dir = tempfile::tempdir().unwrap();
    /// let broker = Broker::open(dir.path()).unwrap();
    /// let topic = broker.admin().create_topic("logs", TopicConfig::default()).unwrap();
    /// let mut consumer =
    ///     broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    /// consumer.assign(&[("logs", 0)]).unwrap();
    ///
    /// let partition = topic.partition(0).unwrap();
    /// let writer = std::thread::spawn(move || {
    ///     partition.append(&[Record::new("line 1"), Record::new("line 2")]).map(|_| ())
    /// });
    /// // Any executor: pollster here, tokio or smol alike.
    /// pollster::block_on(async {
    ///     let mut stream = consumer.stream();
    ///     for want in ["line 1", "line 2"] {
    ///         // Waits (woken by the append) until the record is there.
    ///         let record = stream.next().await.unwrap().unwrap();
    ///         assert_eq!(record.value(), Some(want.as_bytes()));
    ///     }
    /// });
    /// writer.join().unwrap().unwrap();
    /// assert_eq!(consumer.position(("logs", 0)).unwrap(), 2);
    /// # }
    /// ```
    pub fn stream(&mut self) -> ConsumerStream<'_> {
        ConsumerStream {
            consumer: self,
            buffered: VecDeque::new(),
            key: WakerKey::default(),
        }
    }
}

/// A [`Consumer`]'s records as a [`futures_core::Stream`]; see
/// [`Consumer::stream`]. `Send`; it borrows the consumer mutably, so a
/// task that owns the consumer owns its stream.
#[derive(Debug)]
pub struct ConsumerStream<'a> {
    consumer: &'a mut Consumer,
    /// Records of the last fetch not yielded yet.
    buffered: VecDeque<Buffered>,
    /// Its waker's place in the consumer's `Notify`.
    key: WakerKey,
}

/// A fetched record the stream has not yielded yet.
#[derive(Debug)]
struct Buffered {
    /// Its partition's place in the assignment (which does not change
    /// while records are buffered: only a fetch or `consumer()` changes
    /// it, and neither happens then).
    index: usize,
    record: ConsumerRecord,
    /// The partition's position once it is yielded.
    after: Offset,
}

impl ConsumerStream<'_> {
    /// The next record: [`StreamExt::next`] without an extension crate
    /// (with one in scope, this method is the one called; both do the
    /// same). Never `None`: the stream does not end.
    ///
    /// [`StreamExt::next`]: https://docs.rs/futures/latest/futures/stream/trait.StreamExt.html#method.next
    pub async fn next(&mut self) -> Option<Result<ConsumerRecord>> {
        Some(std::future::poll_fn(|cx| self.poll_record(cx)).await)
    }

    /// The consumer, for commits, seeks, assignment changes and the like
    /// between records. Records the stream fetched but has not yielded
    /// are dropped (the positions are just past the last record yielded,
    /// so the next fetch reads them again): calling this after each record
    /// makes the stream fetch again for each.
    pub fn consumer(&mut self) -> &mut Consumer {
        self.buffered.clear();
        self.consumer
    }

    fn poll_record(&mut self, cx: &mut Context<'_>) -> Poll<Result<ConsumerRecord>> {
        loop {
            let c = &mut *self.consumer;
            if let Some(b) = self.buffered.pop_front() {
                if let Some(a) = c.assigned.get_mut(b.index) {
                    a.position = Some(b.after);
                }
                return Poll::Ready(Ok(b.record));
            }
            if let Some(e) = c.pending_error.take() {
                return Poll::Ready(Err(e));
            }
            // As `long_poll`: the generation before the fetch, so that an
            // append during the fetch is not missed.
            let seen = c.notify.generation();
            match c.fetch_once(Consumer::fetch_records) {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(out) if !out.is_empty() => self.hold(out),
                Ok(_) => {
                    if !c.notify.poll_past(seen, &mut self.key, cx.waker()) {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// Buffers a fetch's records, moving each partition's position back to
    /// its first record there; yielding them moves it forward again, to
    /// where the fetch left it once the last one is yielded.
    fn hold(&mut self, out: Vec<ConsumerRecord>) {
        let assigned = &mut self.consumer.assigned;
        let of = |r: &ConsumerRecord, a: &Assigned| {
            a.tp.partition == r.partition && *a.tp.topic == *r.topic()
        };
        // The partition of the current run (a fetch returns each
        // partition's records together) and where the fetch left it.
        let mut run: Option<(usize, Option<Offset>)> = None;
        let mut records = out.into_iter().peekable();
        while let Some(record) = records.next() {
            let (index, fetched_to) = match run {
                Some((i, to)) if assigned.get(i).is_some_and(|a| of(&record, a)) => (i, to),
                _ => {
                    let Some(i) = assigned.iter().position(|a| of(&record, a)) else {
                        continue; // not from this assignment: cannot happen
                    };
                    let to = assigned[i].position;
                    assigned[i].position = Some(record.offset);
                    run = Some((i, to));
                    (i, to)
                }
            };
            let last_of_run = records
                .peek()
                .is_none_or(|n| n.partition != record.partition || n.topic() != record.topic());
            let after = match fetched_to {
                Some(to) if last_of_run => to,
                _ => record.offset + 1,
            };
            self.buffered.push_back(Buffered {
                index,
                record,
                after,
            });
        }
    }
}

impl futures_core::Stream for ConsumerStream<'_> {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_record(cx).map(Some)
    }
}

impl Drop for ConsumerStream<'_> {
    fn drop(&mut self) {
        self.consumer.notify.forget(&mut self.key);
    }
}

//! [`Flush`], the future of [`Producer::flush_async`] (`async` feature).

use super::*;

/// The future of [`Producer::flush_async`]. `Send`, `'static` (it holds a
/// clone of the producer), and woken only by the fsyncs it waits for.
#[cfg(feature = "async")]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled: nothing is flushed until it is"]
pub struct Flush {
    pub(super) producer: Producer,
    pub(super) state: FlushState,
    /// Its waker's place in the group-commit slot of the partition it is
    /// waiting for.
    pub(super) key: WakerKey,
}

#[cfg(feature = "async")]
#[derive(Debug)]
pub(super) enum FlushState {
    Start,
    /// Waiting for the sender thread to append the batches handed to it
    /// before the flush (`target` of them in all).
    Sending {
        target: u64,
    },
    Syncing {
        /// The drained batches' fsyncs, in order (their deliveries wait).
        pending: std::collections::VecDeque<PendingSync>,
        /// Then every partition a sync producer appended to, up to its
        /// end when the flush began (as `flush` fsyncs: a flush does not
        /// chase appends that come after it).
        to_sync: std::collections::VecDeque<(Partition, Offset)>,
        /// The first error of those fsyncs.
        result: Result<()>,
    },
    Done,
}

#[cfg(feature = "async")]
impl std::future::Future for Flush {
    type Output = Result<()>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let inner = &*this.producer.inner;
        loop {
            match &mut this.state {
                FlushState::Start => {
                    let (pending, to_sync) = inner.drain_due();
                    if let Some(q) = inner.queue() {
                        // A buffered producer: nothing to fsync, the
                        // appends are the sender thread's.
                        debug_assert!(pending.is_empty() && to_sync.is_empty());
                        inner.complete(pending);
                        this.state = FlushState::Sending { target: q.pushed() };
                        continue;
                    }
                    let to_sync = to_sync
                        .into_iter()
                        .map(|p| {
                            let end = p.log.end_offset();
                            (p, end)
                        })
                        .collect();
                    this.state = FlushState::Syncing {
                        pending: pending.into(),
                        to_sync,
                        result: Ok(()),
                    };
                }
                FlushState::Sending { target } => {
                    if let Some(q) = inner.queue()
                        && q.poll_done(*target, &mut this.key, cx.waker()).is_pending()
                    {
                        return Poll::Pending;
                    }
                    // (A closed producer appended what it had: done.)
                    this.state = FlushState::Done;
                    return Poll::Ready(inner.report(Ok(())));
                }
                FlushState::Syncing {
                    pending,
                    to_sync,
                    result,
                } => {
                    while let Some(s) = pending.front() {
                        let r =
                            match s
                                .partition
                                .log
                                .poll_flush_to(s.upto, &mut this.key, cx.waker())
                            {
                                Poll::Pending => return Poll::Pending,
                                Poll::Ready(r) => r,
                            };
                        if let Some(s) = pending.pop_front() {
                            inner.synced(s, r);
                        }
                    }
                    while let Some((p, end)) = to_sync.front() {
                        match p.log.poll_flush_to(*end, &mut this.key, cx.waker()) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Err(e)) if result.is_ok() => *result = Err(e),
                            Poll::Ready(_) => {}
                        }
                        to_sync.pop_front();
                    }
                    let synced = std::mem::replace(result, Ok(()));
                    this.state = FlushState::Done;
                    return Poll::Ready(inner.report(synced));
                }
                FlushState::Done => {
                    return Poll::Ready(Err(Error::InvalidArgument(
                        "a Flush future was polled after it resolved".into(),
                    )));
                }
            }
        }
    }
}

#[cfg(feature = "async")]
impl Drop for Flush {
    fn drop(&mut self) {
        if let FlushState::Sending { .. } = self.state {
            if let Some(q) = &self.producer.inner.sender {
                q.forget(&mut self.key);
            }
            return;
        }
        let FlushState::Syncing {
            pending, to_sync, ..
        } = std::mem::replace(&mut self.state, FlushState::Done)
        else {
            return;
        };
        // The key belongs to the slot of the partition at the front.
        if let Some(log) = pending
            .front()
            .map(|s| &s.partition.log)
            .or_else(|| to_sync.front().map(|(p, _)| &p.log))
        {
            log.forget_flush(&mut self.key);
        }
        // Every delivery resolves: the batches this flush appended get
        // their fsync now (the partitions' fsyncs were only for its report).
        self.producer.inner.complete(pending.into());
    }
}

//! A sent record's fate: [`Delivery`] (a handle, and with the `async`
//! feature a future), the [`Slot`] a batch's deliveries share, and
//! [`RecordMetadata`].

use super::*;

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// The record's offset in the partition.
    pub offset: Offset,
    /// The record's timestamp as stored (the append time for log-append-time
    /// topics).
    pub timestamp: i64,
}

/// A batch's outcome: its base offset, (for log-append-time topics) the
/// append time, and the time given to its records sent without a
/// timestamp; or the error every record in it fails with.
pub(super) type Outcome = std::result::Result<Stored, Arc<Error>>;

/// Where a batch was stored: base offset, append time (log-append-time
/// topics), the time given to its records without their own.
pub(super) type Stored = (Offset, Option<i64>, Option<i64>);

/// The outcome of one batch, shared by its records.
#[derive(Debug)]
pub(super) struct Slot {
    /// The batch's topic (for its records' metadata).
    topic: Arc<str>,
    state: Mutex<SlotState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
pub(super) struct SlotState {
    result: Option<Outcome>,
    /// The wakers of `Delivery` futures waiting for the result.
    wakers: Wakers,
}

impl Slot {
    pub(super) fn new(topic: Arc<str>) -> Self {
        Slot {
            topic,
            state: Mutex::default(),
            cv: Condvar::new(),
        }
    }

    pub(super) fn is_resolved(&self) -> bool {
        self.state.lock().result.is_some()
    }

    /// Stores the outcome and wakes every waiter: threads in
    /// `Delivery::wait` and `Delivery` futures.
    /// Sets the outcome, unless one is set already (a flush may resolve a
    /// batch another thread drained, both once its fsync is done).
    pub(super) fn resolve(&self, r: Outcome) {
        let mut st = self.state.lock();
        if st.result.is_some() {
            return;
        }
        st.result = Some(r);
        let woken = st.wakers.take();
        drop(st);
        self.cv.notify_all();
        woken.wake();
    }
}

/// A handle to a sent record that resolves to its [`RecordMetadata`] once
/// its batch is appended (and fsync'd, with [`Durability::Sync`]).
///
/// Records waiting in a batch are not acknowledged: they are appended when
/// the batch fills, when `linger` passes, or on [`Producer::flush`].
///
/// With the `async` feature a `Delivery` is also a
/// [`Future`](std::future::Future) with the same result as
/// [`wait`](Self::wait), for any executor. Whoever resolves the batch (the
/// `send` that filled it, the linger thread, a flush, `close`) wakes it;
/// nothing polls and no thread waits for it. Dropping a pending one
/// removes its waker; the record's fate does not change (a delivery
/// observes, it does not own the record).
///
/// ```
/// # #[cfg(feature = "async")] {
/// use embedlog::{Broker, ProducerConfig, Record, TopicConfig};
/// let dir = tempfile::tempdir().unwrap();
/// let broker = Broker::open(dir.path()).unwrap();
/// broker.admin().create_topic("t", TopicConfig::default()).unwrap();
/// let producer = broker.producer(ProducerConfig::default()); // lingers 5 ms
/// let delivery = producer.send("t", Record::new("hello")).unwrap();
/// // The linger thread appends the batch and wakes the future.
/// let meta = pollster::block_on(delivery).unwrap();
/// assert_eq!((meta.partition, meta.offset), (0, 0));
/// # }
/// ```
#[derive(Debug)]
pub struct Delivery {
    pub(super) slot: Arc<Slot>,
    pub(super) index: u32,
    pub(super) partition: u32,
    pub(super) timestamp: i64,
    /// Its waker's place in the slot, while a poll left one there.
    pub(super) key: WakerKey,
}

impl Clone for Delivery {
    fn clone(&self) -> Self {
        Delivery {
            slot: self.slot.clone(),
            index: self.index,
            partition: self.partition,
            timestamp: self.timestamp,
            // A new future: not registered.
            key: WakerKey::default(),
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.key.is_registered() {
            self.slot.state.lock().wakers.remove(&mut self.key);
        }
    }
}

impl Delivery {
    /// The partition the record went to (known at once).
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Whether the outcome is known.
    pub fn is_done(&self) -> bool {
        self.slot.state.lock().result.is_some()
    }

    /// Blocks until the record's batch is stored; returns where the record is.
    ///
    /// Every delivery resolves: its batch is appended when it fills, when
    /// `linger` passes, on [`Producer::flush`] or `close`, or when the
    /// producer is dropped; a batch for a topic that was deleted (and
    /// perhaps created again) fails.
    ///
    /// # Errors
    /// [`Error::DeliveryFailed`] with the append's (or fsync's) error.
    pub fn wait(&self) -> Result<RecordMetadata> {
        let mut st = self.slot.state.lock();
        while st.result.is_none() {
            self.slot.cv.wait(&mut st);
        }
        self.outcome(st.result.as_ref())
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` (`Ok(None)`).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<RecordMetadata>> {
        let deadline = crate::clock::deadline_after(timeout);
        let mut st = self.slot.state.lock();
        while st.result.is_none() {
            if self.slot.cv.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        if st.result.is_none() {
            return Ok(None);
        }
        self.outcome(st.result.as_ref()).map(Some)
    }

    fn outcome(&self, r: Option<&Outcome>) -> Result<RecordMetadata> {
        match r {
            Some(Ok((base, append_time, batch_time))) => Ok(RecordMetadata {
                topic: self.slot.topic.clone(),
                partition: self.partition,
                offset: base + u64::from(self.index),
                timestamp: match (append_time, batch_time) {
                    (Some(t), _) => *t,
                    (None, Some(t)) if self.timestamp == crate::Record::NO_TIMESTAMP => *t,
                    _ => self.timestamp,
                },
            }),
            Some(Err(e)) => Err(Error::DeliveryFailed {
                topic: self.slot.topic.clone(),
                partition: self.partition,
                cause: e.clone(),
            }),
            None => Err(Error::Closed),
        }
    }
}

/// Resolves as [`Delivery::wait`] returns. Polling it again after it
/// resolved gives the same result again.
///
/// # Errors
/// As [`Delivery::wait`].
#[cfg(feature = "async")]
impl std::future::Future for Delivery {
    type Output = Result<RecordMetadata>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut st = this.slot.state.lock();
        if st.result.is_some() {
            // `resolve` took the wakers out: nothing of ours is left there.
            st.wakers.remove(&mut this.key);
            let r = this.outcome(st.result.as_ref());
            return Poll::Ready(r);
        }
        st.wakers.register(&mut this.key, cx.waker());
        Poll::Pending
    }
}

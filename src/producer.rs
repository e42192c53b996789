//! The producer: partitions records, batches them per partition, appends
//! the batches, and reports where each record landed.

use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::record::{
    BATCH_HEADER_SIZE, BatchBuilder, Offset, Record, TimestampType, record_size_bound,
};
use crate::storage::Durability;
use crate::topic::{DefaultPartitioner, Partition, Partitioner, Topic};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of a [`Producer`]. Every setter documents its default.
///
/// ```
/// use embedlog::{Durability, ProducerConfig};
/// use std::time::Duration;
/// let _config = ProducerConfig::default()
///     .batch_size(64 << 10)
///     .linger(Duration::from_millis(2))
///     .durability(Durability::Sync);
/// ```
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    batch_size: usize,
    linger: Duration,
    durability: Durability,
    partitioner: Arc<dyn Partitioner>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_size: 16 << 10,
            linger: Duration::from_millis(5),
            durability: Durability::Buffered,
            partitioner: Arc::new(DefaultPartitioner),
        }
    }
}

impl ProducerConfig {
    /// Append a partition's batch once it holds this many bytes (Kafka's
    /// `batch.size`). Larger batches cost fewer appends per record. Default:
    /// 16 KiB. The topic's `max_message_bytes` caps it.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes.max(BATCH_HEADER_SIZE + 1);
        self
    }

    /// How long a record may wait in a batch that is not full (Kafka's
    /// `linger.ms`). Zero appends every record at once (each `send` is then
    /// acknowledged when it returns). Default: 5 ms.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Durability of the appends (Kafka's `acks` in spirit):
    /// [`Durability::Sync`] resolves deliveries only after fsync. Default:
    /// [`Durability::Buffered`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How records are assigned to partitions. Default:
    /// [`DefaultPartitioner`] (Kafka's murmur2 for keys, sticky otherwise).
    pub fn partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.partitioner = partitioner;
        self
    }
}

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

/// A batch's outcome: its base offset and (for log-append-time topics) the
/// append time, or the error every record in it fails with.
type Outcome = std::result::Result<(Offset, Option<i64>), Arc<Error>>;

/// The outcome of one batch, shared by its records.
#[derive(Debug, Default)]
struct Slot {
    result: Mutex<Option<Outcome>>,
    cv: Condvar,
}

impl Slot {
    fn resolve(&self, r: Outcome) {
        *self.result.lock() = Some(r);
        self.cv.notify_all();
    }
}

/// A handle to a sent record that resolves to its [`RecordMetadata`] once
/// its batch is appended (and fsync'd, with [`Durability::Sync`]).
///
/// Records waiting in a batch are not acknowledged: they are appended when
/// the batch fills, when `linger` passes, or on [`Producer::flush`].
#[derive(Debug, Clone)]
pub struct Delivery {
    slot: Arc<Slot>,
    index: u32,
    topic: Arc<str>,
    partition: u32,
    timestamp: i64,
}

impl Delivery {
    /// The partition the record went to (known at once).
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Whether the outcome is known.
    pub fn is_done(&self) -> bool {
        self.slot.result.lock().is_some()
    }

    /// Blocks until the record's batch is stored; returns where the record is.
    ///
    /// # Errors
    /// [`Error::DeliveryFailed`] with the append's error.
    pub fn wait(&self) -> Result<RecordMetadata> {
        let mut r = self.slot.result.lock();
        while r.is_none() {
            self.slot.cv.wait(&mut r);
        }
        self.outcome(r.as_ref())
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` (`Ok(None)`).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<RecordMetadata>> {
        let deadline = crate::clock::deadline_after(timeout);
        let mut r = self.slot.result.lock();
        while r.is_none() {
            if self.slot.cv.wait_until(&mut r, deadline).timed_out() {
                break;
            }
        }
        if r.is_none() {
            return Ok(None);
        }
        self.outcome(r.as_ref()).map(Some)
    }

    fn outcome(&self, r: Option<&Outcome>) -> Result<RecordMetadata> {
        match r {
            Some(Ok((base, append_time))) => Ok(RecordMetadata {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: base + u64::from(self.index),
                timestamp: append_time.unwrap_or(self.timestamp),
            }),
            Some(Err(e)) => Err(Error::DeliveryFailed(e.clone())),
            None => Err(Error::Closed),
        }
    }
}

/// A partition's batch being filled.
#[derive(Debug)]
struct Acc {
    partition: Partition,
    builder: BatchBuilder,
    slot: Arc<Slot>,
    count: u32,
    started: Option<Instant>,
    /// This producer appended to the partition (a sync producer's flush
    /// fsyncs it).
    touched: bool,
}

impl Acc {
    fn new(partition: Partition) -> Self {
        Acc {
            partition,
            builder: BatchBuilder::new(),
            slot: Arc::new(Slot::default()),
            count: 0,
            started: None,
            touched: false,
        }
    }
}

/// A sync still to do for a drained batch, outside the partition's lock.
struct PendingSync {
    partition: Partition,
    upto: Offset,
    slot: Arc<Slot>,
    result: (Offset, Option<i64>),
}

impl PendingSync {
    fn complete(self) -> Result<()> {
        match self.partition.log.flush_to(self.upto) {
            Ok(()) => {
                self.slot.resolve(Ok(self.result));
                Ok(())
            }
            Err(e) => {
                let e = Arc::new(e);
                self.slot.resolve(Err(e.clone()));
                Err(Error::DeliveryFailed(e))
            }
        }
    }
}

/// Runs the fsyncs of drained sync batches, resolving their deliveries.
fn complete(pending: Vec<PendingSync>) -> Result<()> {
    let mut result = Ok(());
    for s in pending {
        let r = s.complete();
        if result.is_ok() {
            result = r;
        }
    }
    result
}

#[derive(Debug)]
struct TopicBuf {
    topic: Topic,
    timestamp_type: TimestampType,
    /// The topic's `max_message_bytes` when first seen (the log enforces
    /// the current value; this only rejects hopeless records early).
    max_message: usize,
    max_batch: usize,
    parts: RwLock<Vec<Arc<Mutex<Acc>>>>,
    sticky: AtomicU32,
}

impl TopicBuf {
    fn acc(&self, p: u32) -> Result<Arc<Mutex<Acc>>> {
        if let Some(a) = self.parts.read().get(p as usize) {
            return Ok(a.clone());
        }
        // The topic grew since we first saw it.
        let mut parts = self.parts.write();
        while parts.len() <= p as usize {
            let partition = self.topic.partition(parts.len() as u32)?;
            parts.push(Arc::new(Mutex::new(Acc::new(partition))));
        }
        Ok(parts[p as usize].clone())
    }
}

#[derive(Debug)]
struct Inner {
    broker: Broker,
    config: ProducerConfig,
    topics: RwLock<HashMap<Arc<str>, Arc<TopicBuf>>>,
    closed: AtomicBool,
    stop: Arc<(Mutex<bool>, Condvar)>,
    linger_thread: Mutex<Option<JoinHandle<()>>>,
    /// A linger thread runs (else every send appends at once).
    lingering: AtomicBool,
}

/// Sends records to topics: chooses each record's partition, batches
/// records per partition, and appends the batches.
///
/// `Producer` is `Send + Sync` and cheap to clone; clones share batches.
/// Records sent from one thread to one partition are stored in send order.
///
/// ```
/// use embedlog::{Broker, ProducerConfig, Record, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// broker.admin().create_topic("clicks", TopicConfig::default().partitions(3))?;
/// let producer = broker.producer(ProducerConfig::default());
/// let d1 = producer.send("clicks", Record::new("a").key("user-1"))?;
/// let d2 = producer.send("clicks", Record::new("b").key("user-1"))?;
/// producer.flush()?;
/// let (m1, m2) = (d1.wait()?, d2.wait()?);
/// assert_eq!(m1.partition, m2.partition); // same key, same partition
/// assert_eq!(m2.offset, m1.offset + 1);   // in send order
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl Producer {
    pub(crate) fn new(broker: Broker, config: ProducerConfig) -> Producer {
        let inner = Arc::new(Inner {
            broker,
            config,
            topics: RwLock::new(HashMap::new()),
            closed: AtomicBool::new(false),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            linger_thread: Mutex::new(None),
            lingering: AtomicBool::new(false),
        });
        if !inner.config.linger.is_zero() {
            let weak = Arc::downgrade(&inner);
            let stop = inner.stop.clone();
            let every = inner.config.linger;
            // Without the thread, batches would only go out when full or
            // flushed; spawning fails only when the OS is out of threads,
            // and then `send` appends at once instead.
            if let Ok(h) = std::thread::Builder::new()
                .name("embedlog-linger".into())
                .spawn(move || linger_loop(weak, stop, every))
            {
                *inner.linger_thread.lock() = Some(h);
                inner.lingering.store(true, Ordering::Relaxed);
            }
        }
        Producer { inner }
    }

    /// Sends `record` to `topic`, to the partition the partitioner chooses.
    ///
    /// Returns at once with a [`Delivery`]; the record is stored when its
    /// batch is appended (batch full, `linger` passed, or [`flush`](Self::flush)).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`], [`Error::BatchTooLarge`] for a record larger
    /// than the topic's `max_message_bytes`, [`Error::Closed`]; an error of
    /// an append this call made for a full batch.
    pub fn send(&self, topic: &str, record: Record) -> Result<Delivery> {
        let tb = self.inner.topic_buf(topic)?;
        let n = tb.topic.partition_count();
        let key = record.key.as_deref();
        let p = match self.inner.config.partitioner.partition(topic, key, n) {
            Some(p) if p < n => p,
            Some(p) => {
                return Err(Error::UnknownPartition {
                    topic: topic.to_string(),
                    partition: p,
                    count: n,
                });
            }
            None => tb.sticky.load(Ordering::Relaxed) % n,
        };
        let sticky = key.is_none();
        self.inner.send_to(&tb, p, record, sticky)
    }

    /// Sends `record` to partition `partition` of `topic`.
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`Error::UnknownPartition`].
    pub fn send_to(&self, topic: &str, partition: u32, record: Record) -> Result<Delivery> {
        let tb = self.inner.topic_buf(topic)?;
        self.inner.send_to(&tb, partition, record, false)
    }

    /// Appends every batch being filled and waits for them: when this
    /// returns, everything sent before is stored (and fsync'd, with
    /// [`Durability::Sync`]).
    ///
    /// # Errors
    /// The first append or fsync error (its deliveries fail with it too).
    pub fn flush(&self) -> Result<()> {
        self.inner.flush(false)
    }

    /// Flushes and stops the linger thread. Sends afterwards fail with
    /// [`Error::Closed`].
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl Inner {
    fn topic_buf(&self, name: &str) -> Result<Arc<TopicBuf>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        if let Some(t) = self.topics.read().get(name)
            && !t.topic.state.deleted.load(Ordering::Relaxed)
        {
            return Ok(t.clone());
        }
        let topic = self.broker.topic(name)?;
        let config = topic.config();
        let parts = topic
            .partitions()
            .into_iter()
            .map(|p| Arc::new(Mutex::new(Acc::new(p))))
            .collect();
        let tb = Arc::new(TopicBuf {
            timestamp_type: config.get_timestamp_type(),
            max_message: config.max_message_bytes as usize,
            max_batch: (config.max_message_bytes as usize).min(self.config.batch_size),
            topic,
            parts: RwLock::new(parts),
            sticky: AtomicU32::new(crate::record::now_ms() as u32),
        });
        let replaced = {
            let mut topics = self.topics.write();
            // Another sender may have got here first: use its buffers, or
            // its records would sit in buffers nobody drains.
            if let Some(t) = topics.get(name)
                && !t.topic.state.deleted.load(Ordering::Relaxed)
            {
                return Ok(t.clone());
            }
            topics.insert(name.into(), tb.clone())
        };
        // Buffers of a deleted topic: drain them, so that their deliveries
        // resolve (with the error the closed partitions give).
        if let Some(old) = replaced {
            let _ = self.flush_topics(&[old], false);
        }
        Ok(tb)
    }

    fn send_to(&self, tb: &TopicBuf, p: u32, record: Record, sticky: bool) -> Result<Delivery> {
        if crate::broker::is_internal(tb.topic.name()) {
            return Err(Error::InvalidArgument(format!(
                "{} is an internal topic: consumers write it through commits",
                tb.topic.name()
            )));
        }
        if record.key.is_none() && tb.topic.config().get_cleanup_policy().compacts() {
            // Kafka's rule: compaction keeps the latest record per key, so
            // a keyless record has no place in a compacted topic.
            return Err(Error::InvalidArgument(format!(
                "topic {} is compacted (cleanup.policy=compact): records need a key",
                tb.topic.name()
            )));
        }
        let acc = tb.acc(p)?;
        let size = record_size_bound(&record);
        let max_message = tb.max_message;
        if size + BATCH_HEADER_SIZE > max_message {
            return Err(Error::BatchTooLarge {
                size: size + BATCH_HEADER_SIZE,
                max: max_message,
            });
        }
        let mut pending = Vec::new();
        let mut a = acc.lock();
        // Checked again under the lock: `close` drains every batch after
        // setting `closed`, so a record pushed now would never go out.
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        if a.count > 0 && a.builder.size() + size > tb.max_batch {
            // The full batch goes first. If it fails, this record was not
            // accepted (the failed batch's deliveries carry the error).
            let r = self.drain(&mut a, tb, &mut pending);
            if sticky {
                tb.sticky.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(e) = r {
                drop(a);
                // Sync failures reach their own deliveries.
                let _ = complete(pending);
                return Err(e);
            }
        }
        if a.count == 0 {
            a.started = Some(Instant::now());
        }
        a.builder.push(&record);
        let delivery = Delivery {
            slot: a.slot.clone(),
            index: a.count,
            topic: tb.topic.state.name.clone(),
            partition: p,
            timestamp: record.timestamp,
        };
        a.count += 1;
        let now = !self.lingering.load(Ordering::Relaxed);
        if now || a.builder.size() >= tb.max_batch {
            // The record is accepted: from here on its fate (append or fsync
            // failure included) is reported through its delivery only.
            let _ = self.drain(&mut a, tb, &mut pending);
            if sticky && !now {
                tb.sticky.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(a);
        // A failed fsync reaches the deliveries of its batch (this one's
        // included): the record was accepted either way.
        let _ = complete(pending);
        Ok(delivery)
    }

    /// Appends the partition's batch (under its lock, so batches of one
    /// partition keep their order). A sync append's fsync is left in
    /// `pending`, to be done after the lock is released so that concurrent
    /// senders share it.
    fn drain(&self, a: &mut Acc, tb: &TopicBuf, pending: &mut Vec<PendingSync>) -> Result<()> {
        if a.count == 0 {
            return Ok(());
        }
        let builder = std::mem::take(&mut a.builder);
        let slot = std::mem::take(&mut a.slot);
        a.count = 0;
        a.started = None;
        a.touched = true;
        let appended = builder.finish().and_then(|mut bytes| {
            a.partition
                .log
                .append_built(&mut bytes, Durability::Buffered)
        });
        match appended {
            Ok(info) => {
                let append_time = (tb.timestamp_type == TimestampType::LogAppendTime)
                    .then_some(info.max_timestamp);
                let result = (info.base_offset, append_time);
                if self.config.durability == Durability::Sync {
                    pending.push(PendingSync {
                        partition: a.partition.clone(),
                        upto: info.last_offset + 1,
                        slot,
                        result,
                    });
                } else {
                    slot.resolve(Ok(result));
                }
                Ok(())
            }
            Err(e) => {
                let e = Arc::new(e);
                slot.resolve(Err(e.clone()));
                Err(Error::DeliveryFailed(e))
            }
        }
    }

    /// Appends batches: all of them, or (`expired_only`) those older than
    /// `linger`.
    fn flush(&self, expired_only: bool) -> Result<()> {
        let topics: Vec<Arc<TopicBuf>> = self.topics.read().values().cloned().collect();
        self.flush_topics(&topics, expired_only)
    }

    /// Appends batches of these topics: all of them, or (`expired_only`)
    /// those older than `linger`. A full flush of a sync producer also
    /// fsyncs every partition it has appended to, which covers batches
    /// other threads appended (their fsync may still be running).
    fn flush_topics(&self, topics: &[Arc<TopicBuf>], expired_only: bool) -> Result<()> {
        let mut result = Ok(());
        let mut pending = Vec::new();
        let mut to_sync = Vec::new();
        for tb in topics {
            let parts: Vec<_> = tb.parts.read().clone();
            for acc in parts {
                let mut a = acc.lock();
                let due =
                    !expired_only || a.started.is_some_and(|s| s.elapsed() >= self.config.linger);
                if due {
                    let r = self.drain(&mut a, tb, &mut pending);
                    if result.is_ok() {
                        result = r;
                    }
                }
                // Not reset here: a concurrent flush must fsync too (cheap
                // when already done).
                if !expired_only && a.touched && self.config.durability == Durability::Sync {
                    to_sync.push(a.partition.clone());
                }
            }
        }
        let r = complete(pending);
        if result.is_ok() {
            result = r;
        }
        for p in to_sync {
            if let Err(e) = p.log.flush()
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        result
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        {
            let (m, cv) = &*self.stop;
            *m.lock() = true;
            cv.notify_all();
        }
        if let Some(h) = self.linger_thread.lock().take()
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
        self.flush(false)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: what is not flushed now was never acknowledged.
        let _ = self.close();
    }
}

/// Appends batches whose linger has passed, until the producer goes.
fn linger_loop(producer: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, every: Duration) {
    let tick = (every / 2).max(Duration::from_micros(200));
    loop {
        {
            let (m, cv) = &*stop;
            let mut stopped = m.lock();
            if *stopped {
                return;
            }
            let _ = cv.wait_for(&mut stopped, tick);
            if *stopped {
                return;
            }
        }
        let Some(inner) = producer.upgrade() else {
            return;
        };
        // Errors reach the senders through their deliveries.
        let _ = inner.flush(true);
    }
}

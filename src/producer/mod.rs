//! The producer: partitions records, batches them per partition, appends
//! the batches, and reports where each record landed.

mod delivery;
#[cfg(feature = "async")]
mod flush;
mod linger;
mod partitioner;
mod sender;
mod transaction;

pub use delivery::{Delivery, RecordMetadata};
use delivery::{Slot, Stored};
#[cfg(feature = "async")]
pub use flush::Flush;
#[cfg(feature = "async")]
use flush::FlushState;
pub use partitioner::{DefaultPartitioner, Partitioner, murmur2, partition_for_key};
use sender::{Job, Sender};

use crate::catalog::{Partition, Topic};
use crate::catalog::{Use, refuse_internal};
use crate::client::Context;
use crate::error::{Error, Result};
use crate::record::{
    BATCH_HEADER_SIZE, BatchBuilder, BatchHeader, Compression, Offset, RecordParts, TimestampType,
    ToRecord, fixed_body_size, size_bound_of,
};
use crate::storage::Durability;
use crate::wakers::{WakerKey, Wakers};
use crate::worker::Worker;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
#[cfg(feature = "async")]
use std::task::Poll;
use std::time::Duration;

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
    idempotence: bool,
    transactional_id: Option<String>,
    transaction_timeout: Duration,
    compression: Compression,
    buffer_memory: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_size: 16 << 10,
            linger: Duration::from_millis(5),
            durability: Durability::Buffered,
            partitioner: Arc::new(DefaultPartitioner),
            idempotence: true,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
            compression: Compression::None,
            buffer_memory: 32 << 20,
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
    ///
    /// As Kafka's, it is measured in whole milliseconds by the broker's
    /// clock ([`BrokerBuilder::clock`](crate::BrokerBuilder::clock)): under
    /// a [`ManualClock`](crate::ManualClock) a batch waits until the clock
    /// moves past its linger (or a flush). The linger thread sleeps until
    /// the earliest batch's deadline (looking at least every 100 ms of
    /// real time, for a clock that moves on its own) and appends only the
    /// batches that are due.
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

    /// Idempotence (Kafka's `enable.idempotence`): the producer gets a
    /// producer id from the broker and numbers its batches per partition,
    /// so that a log stores a retried batch once (acknowledging it with the
    /// first append's offsets) and refuses one that skips a batch. Default:
    /// on, as in Kafka since 3.0. A transactional producer is always
    /// idempotent.
    pub fn idempotence(mut self, on: bool) -> Self {
        self.idempotence = on;
        self
    }

    /// Makes the producer transactional (Kafka's `transactional.id`): after
    /// [`Producer::init_transactions`], records are sent between
    /// [`begin_transaction`](Producer::begin_transaction) and
    /// [`commit_transaction`](Producer::commit_transaction) (or
    /// [`abort_transaction`](Producer::abort_transaction)), visible to
    /// read-committed consumers all together or not at all. The id names
    /// the producer across restarts: a new producer with the same id
    /// fences the old one and aborts what it left open. Default: none.
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// How long a transaction may stay open before the broker aborts it and
    /// fences its producer (Kafka's `transaction.timeout.ms`). Default:
    /// 60 s.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// How the producer compresses its batches (Kafka's producer
    /// `compression.type`), in the bytes Kafka's clients write. A topic
    /// whose own `compression.type` names a codec gets batches in that
    /// codec instead (compressed once, here). The codec's cargo feature
    /// must be on, or batches fail with [`Error::Unsupported`]. Default:
    /// [`Compression::None`].
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// How many bytes of full batches may wait for the sender thread
    /// (Kafka's `buffer.memory`): a buffered producer with a non-zero
    /// `linger` hands each full batch to its `embedlog-sender` thread, which
    /// appends it while the sending thread fills the next; a send that
    /// finds more than this waiting blocks until the thread catches up.
    /// Default: 32 MiB.
    pub fn buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes.max(1);
        self
    }

    /// How records are assigned to partitions. Default:
    /// [`DefaultPartitioner`] (Kafka's murmur2 for keys, sticky otherwise).
    pub fn partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.partitioner = partitioner;
        self
    }
}

/// A partition's batch being filled.
#[derive(Debug)]
struct Acc {
    partition: Partition,
    /// The topic's name, for the deliveries' metadata (one copy per batch).
    topic: Arc<str>,
    /// Reused from batch to batch: its buffer keeps its capacity, so
    /// filling a batch allocates nothing.
    builder: BatchBuilder,
    slot: Arc<Slot>,
    count: u32,
    /// When the batch's first record came, by the broker's clock (ms).
    started: Option<i64>,
    /// The number of the batch being filled (the linger schedule's entries
    /// name the batch they are for).
    batch: u64,
    /// This producer appended to the partition (a sync producer's flush
    /// fsyncs it).
    touched: bool,
    /// Drained for the last time (its topic was deleted and the producer
    /// moved on to a new buffer): a sender that finds it so starts again
    /// with the topic's current buffer.
    retired: bool,
    /// The partition's next sequence number and its batches waiting for
    /// the sender thread.
    send: Arc<sender::PartitionSend>,
    /// Sync batches drained but maybe not yet fsync'd and resolved (pruned
    /// at each drain): a flush waits for them too.
    in_flight: Vec<PendingSync>,
    /// The codec of the batch being filled (the topic's, else the
    /// producer's), as of its last record.
    codec: Compression,
}

impl Acc {
    fn new(partition: Partition, topic: Arc<str>) -> Self {
        Acc {
            partition,
            builder: BatchBuilder::new(),
            slot: Arc::new(Slot::new(topic.clone())),
            topic,
            count: 0,
            started: None,
            batch: 0,
            touched: false,
            retired: false,
            send: Arc::default(),
            in_flight: Vec::new(),
            codec: Compression::None,
        }
    }
}

/// A sync still to do for a drained batch, outside the partition's lock.
#[derive(Debug, Clone)]
struct PendingSync {
    partition: Partition,
    upto: Offset,
    slot: Arc<Slot>,
    result: Stored,
    /// Whoever drained the batch owns its sync: it reports a failure. A
    /// flush that finds the batch still in flight (another thread drained
    /// it and is syncing) holds a copy, so that it returns only once the
    /// batch's deliveries are resolved, as Kafka's `flush` promises; a
    /// copy resolves them on success only, and leaves failures to the
    /// owner.
    owner: bool,
}

/// Batch failures not yet reported by a flush.
#[derive(Debug, Default)]
struct Failures {
    batches: u64,
    first: Option<Arc<Error>>,
}

/// The batches being filled for one topic. What a send needs of the
/// topic's settings is cached in each [`Route`] until the topic's
/// `config_version` moves, so `alter_config` applies from the next send.
#[derive(Debug)]
struct TopicBuf {
    topic: Topic,
    parts: RwLock<Vec<Arc<Mutex<Acc>>>>,
    sticky: AtomicU32,
    /// Set (under the `parts` write lock) when the buffer is retired: no
    /// partition is added to it after that.
    retired: AtomicBool,
}

impl TopicBuf {
    /// Partition `p`'s batch; `None` if this buffer was retired (start
    /// again with the topic's current one).
    fn acc(&self, p: u32) -> Result<Option<Arc<Mutex<Acc>>>> {
        if let Some(a) = self.parts.read().get(p as usize) {
            return Ok(Some(a.clone()));
        }
        // The topic grew since we first saw it.
        let mut parts = self.parts.write();
        if self.retired.load(Ordering::SeqCst) {
            return Ok(None);
        }
        while parts.len() <= p as usize {
            let partition = self.topic.partition(parts.len() as u32)?;
            let name = self.topic.state.name.clone();
            parts.push(Arc::new(Mutex::new(Acc::new(partition, name))));
        }
        Ok(Some(parts[p as usize].clone()))
    }
}

/// Slots of the per-thread route cache (a thread uses slot
/// `its number % ROUTE_SLOTS`).
const ROUTE_SLOTS: usize = 16;

/// This thread's slot in every producer's route cache.
fn route_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % ROUTE_SLOTS;
    }
    SLOT.with(|s| *s)
}

/// What a send to one topic needs, resolved once: the topic's buffer, a
/// copy of its partitions' batch handles, and its settings as of
/// `config_version`. Each thread keeps the last topic it sent to in its
/// own slot, so threads sending at once share no lock and no counter but
/// the batch they add to (a send takes no lock on the topic map, the
/// partition list or the configuration, and clones no `Arc` but its
/// batch's).
#[derive(Debug)]
struct Route {
    tb: Arc<TopicBuf>,
    parts: Vec<Arc<Mutex<Acc>>>,
    config_version: u64,
    compacted: bool,
    max_message: usize,
    codec: Compression,
}

impl Route {
    /// Still the current route to `topic`: same name, buffer not retired,
    /// topic not deleted, configuration unchanged.
    fn fresh(&self, topic: &str) -> bool {
        let state = &self.tb.topic.state;
        state.name.len() == topic.len()
            && (state.name.as_ptr() == topic.as_ptr() || *state.name == *topic)
            && !self.tb.retired.load(Ordering::Acquire)
            && !state.deleted.load(Ordering::Acquire)
            && state.config_version.load(Ordering::Acquire) == self.config_version
    }
}

/// A cache line of its own for each slot, so two threads' slots do not
/// share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct RouteSlot(Mutex<Option<Route>>);

#[derive(Debug)]
struct Inner {
    ctx: Context,
    config: ProducerConfig,
    topics: RwLock<HashMap<Arc<str>, Arc<TopicBuf>>>,
    /// The per-thread route cache (see [`Route`]).
    routes: Box<[RouteSlot]>,
    closed: AtomicBool,
    /// Appends batches whose linger passed (with a non-zero `linger`).
    linger_thread: OnceLock<Worker>,
    /// A linger thread runs (else every send appends at once).
    lingering: AtomicBool,
    /// The deadlines of the batches being filled, for the linger thread.
    linger_schedule: Mutex<linger::Schedule>,
    /// The sender thread's queue (a buffered producer with a non-zero
    /// `linger`).
    sender: Option<Arc<Sender>>,
    /// Failed batches since the last flush, reported by the next one.
    failures: Mutex<Failures>,
    /// Producer id and epoch (idempotence), and the transaction.
    txn: transaction::TxnClient,
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
    pub(crate) fn new(ctx: Context, config: ProducerConfig) -> Producer {
        let sender = (!config.linger.is_zero() && config.durability == Durability::Buffered)
            .then(|| Arc::new(Sender::new(config.buffer_memory)));
        let inner = Arc::new(Inner {
            ctx,
            config,
            topics: RwLock::new(HashMap::new()),
            routes: (0..ROUTE_SLOTS).map(|_| RouteSlot::default()).collect(),
            closed: AtomicBool::new(false),
            linger_thread: OnceLock::new(),
            lingering: AtomicBool::new(false),
            linger_schedule: Mutex::default(),
            sender,
            failures: Mutex::new(Failures::default()),
            txn: transaction::TxnClient::default(),
        });
        inner.spawn_sender();
        if !inner.config.linger.is_zero() {
            // Without the thread, batches would only go out when full or
            // flushed; spawning fails only when the OS is out of threads,
            // and then `send` appends at once instead.
            if let Ok(w) = inner.spawn_linger() {
                let _ = inner.linger_thread.set(w);
                inner.lingering.store(true, Ordering::Relaxed);
            }
        }
        Producer { inner }
    }

    /// Sends `record` to `topic`, to the partition the partitioner chooses.
    ///
    /// `record` is a [`Record`](crate::Record), a
    /// [`BorrowedRecord`](crate::BorrowedRecord) (its bytes are encoded
    /// straight into the batch: nothing is allocated or copied before),
    /// or a [`RecordRef`](crate::RecordRef) read from a log. A record
    /// without a timestamp gets its batch's.
    ///
    /// Returns at once with a [`Delivery`]; the record is stored when its
    /// batch is appended (batch full, `linger` passed, or [`flush`](Self::flush)).
    /// With a zero `linger` the batch is appended before `send` returns.
    ///
    /// # Errors
    /// Only about this record, which then was not sent:
    /// [`Error::UnknownTopic`], [`Error::UnknownPartition`] (from a custom
    /// partitioner), [`Error::BatchTooLarge`] for a record larger than the
    /// topic's `max_message_bytes`, [`Error::InternalTopic`], [`Error::KeyRequired`] for a keyless
    /// record to a compacted topic,
    /// [`Error::Closed`]. Once `send` returns `Ok` the record's fate is its
    /// delivery's: a failed append or fsync (of this record's batch, or of
    /// an earlier one this call sent because it was full) never fails
    /// `send`; it resolves the failed batch's deliveries with
    /// [`Error::DeliveryFailed`] and the next [`flush`](Self::flush)
    /// returns [`Error::BatchesFailed`].
    pub fn send(&self, topic: &str, record: impl ToRecord) -> Result<Delivery> {
        self.inner.send(topic, None, &record.parts())
    }

    /// Sends `record` to partition `partition` of `topic`.
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`Error::UnknownPartition`].
    pub fn send_to(&self, topic: &str, partition: u32, record: impl ToRecord) -> Result<Delivery> {
        self.inner.send(topic, Some(partition), &record.parts())
    }

    /// Appends every batch being filled and waits for them: when this
    /// returns `Ok`, every record sent before it is stored (and fsync'd,
    /// with [`Durability::Sync`]) and its delivery resolved (also when
    /// another thread's flush or `send` appended its batch and is still
    /// fsyncing it), and no batch failed since the previous flush.
    ///
    /// # Errors
    /// [`Error::BatchesFailed`] if any batch failed since the previous
    /// `flush` returned, whoever appended it (a full batch in `send`, the
    /// linger thread, or this flush): the failed records' deliveries say
    /// which they are. Each failure is reported by one flush. Otherwise
    /// the first fsync error of a [`Durability::Sync`] producer.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    /// [`flush`](Self::flush) as a future, for any executor, with the same
    /// result and the same guarantee when it resolves `Ok`.
    ///
    /// Its first poll appends every batch being filled, as `flush` does
    /// (writes into the operating system's page cache: no waiting on
    /// anything). With [`Durability::Buffered`] that is all, and it
    /// resolves in that poll. With [`Durability::Sync`] it then needs the
    /// partitions fsync'd: where `flush` would sleep until another
    /// thread's (or future's) fsync ends, the future waits instead, woken
    /// by the end of that fsync (group commit); an fsync that nobody is
    /// running yet it runs itself, inside `poll`, blocking the executor's
    /// thread for the length of one `fdatasync` (a one-record sync flush
    /// took 0.19 ms at the median, 0.26 ms at p99, on the 2-core
    /// development machine's ext4 virtual disk; nothing on tmpfs). Keep a
    /// sync producer off a latency-critical executor thread, or call it
    /// where blocking is allowed (tokio's `spawn_blocking`), if that
    /// matters.
    ///
    /// Dropping it before it resolves is safe: batches it already appended
    /// are fsync'd in the drop (so their deliveries resolve, as every
    /// delivery must), and batch failures it did not report are reported
    /// by the next flush.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use embedlog::{Broker, ProducerConfig, Record, TopicConfig};
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir().unwrap();
    /// let broker = Broker::open(dir.path()).unwrap();
    /// broker.admin().create_topic("t", TopicConfig::default()).unwrap();
    /// let producer = broker.producer(ProducerConfig::default().linger(Duration::from_secs(60)));
    /// let delivery = producer.send("t", Record::new("a")).unwrap();
    /// pollster::block_on(async {
    ///     producer.flush_async().await.unwrap(); // stored when this resolves Ok
    ///     assert_eq!(delivery.await.unwrap().offset, 0);
    /// });
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    #[cfg(feature = "async")]
    pub fn flush_async(&self) -> Flush {
        Flush {
            producer: self.clone(),
            state: FlushState::Start,
            key: WakerKey::default(),
        }
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
        let topic = self.ctx.catalog.topic(name)?;
        let parts = topic
            .partitions()
            .into_iter()
            .map(|p| Arc::new(Mutex::new(Acc::new(p, topic.state.name.clone()))))
            .collect();
        let tb = Arc::new(TopicBuf {
            topic,
            parts: RwLock::new(parts),
            sticky: AtomicU32::new(crate::record::now_ms() as u32),
            retired: AtomicBool::new(false),
        });
        let mut topics = self.topics.write();
        // Another sender may have got here first: use its buffers, or
        // its records would sit in buffers nobody drains.
        if let Some(t) = topics.get(name)
            && !t.topic.state.deleted.load(Ordering::Relaxed)
        {
            return Ok(t.clone());
        }
        if let Some(old) = topics.insert(name.into(), tb.clone()) {
            // Buffers of a deleted topic: drain them for the last time (the
            // appends fail at once: the partitions are closed), so that
            // their deliveries resolve, and retire them so that no sender
            // still holding them adds to them. Done before the map is
            // released, so that a flush either sees the old buffers or
            // finds them drained.
            self.retire(&old);
        }
        Ok(tb)
    }

    /// Drains `tb` for the last time and marks it and each of its batches
    /// retired (see [`Acc::retired`]).
    fn retire(&self, tb: &TopicBuf) {
        let parts = {
            let parts = tb.parts.write();
            tb.retired.store(true, Ordering::SeqCst);
            parts.clone()
        };
        let mut pending = Vec::new();
        for acc in parts {
            let mut a = acc.lock();
            self.drain(&mut a, &mut pending, false);
            a.retired = true;
        }
        self.complete(pending);
    }

    /// The route to `topic` as of now (see [`Route`]).
    fn route(&self, topic: &str) -> Result<Route> {
        let tb = self.topic_buf(topic)?;
        refuse_internal(tb.topic.name(), Use::Write)?;
        let state = &tb.topic.state;
        // The version first: a change after this read makes the route
        // stale at once.
        let config_version = state.config_version.load(Ordering::Acquire);
        let (compacted, max_message, codec) = {
            let config = state.config.read();
            (
                config.get_cleanup_policy().compacts(),
                usize::try_from(config.max_message_bytes).unwrap_or(usize::MAX),
                config.compression.unwrap_or(self.config.compression),
            )
        };
        let parts = tb.parts.read().clone();
        Ok(Route {
            tb,
            parts,
            config_version,
            compacted,
            max_message,
            codec,
        })
    }

    /// Chooses the partition (`partition`, or the partitioner's) and adds
    /// `record` to its batch; starts again with the topic's current buffer
    /// if the one it found was retired meanwhile.
    fn send(
        &self,
        topic: &str,
        partition: Option<u32>,
        record: &RecordParts<'_>,
    ) -> Result<Delivery> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let fixed = fixed_body_size(record);
        let mut slot = self.routes[route_slot()].0.lock();
        loop {
            if !slot.as_ref().is_some_and(|r| r.fresh(topic)) {
                *slot = None;
                *slot = Some(self.route(topic)?);
            }
            let Some(route) = slot.as_mut() else {
                continue;
            };
            let (p, sticky) = match partition {
                Some(p) => (p, false),
                None => {
                    let n = route.tb.topic.partition_count();
                    match self.config.partitioner.partition(topic, record.key, n) {
                        Some(p) if p < n => (p, false),
                        Some(p) => {
                            return Err(Error::UnknownPartition {
                                topic: topic.to_string(),
                                partition: p,
                                count: n,
                            });
                        }
                        None => (
                            route.tb.sticky.load(Ordering::Relaxed) % n,
                            record.key.is_none(),
                        ),
                    }
                }
            };
            if let Some(delivery) = self.send_to(route, p, record, fixed, sticky)? {
                return Ok(delivery);
            }
            // The buffer was retired meanwhile: again with the current one.
            *slot = None;
        }
    }

    /// Adds `record` (whose [`fixed_body_size`] is `fixed`) to partition
    /// `p`'s batch; `None` if the route's buffer was retired meanwhile.
    fn send_to(
        &self,
        route: &mut Route,
        p: u32,
        record: &RecordParts<'_>,
        fixed: usize,
        sticky: bool,
    ) -> Result<Option<Delivery>> {
        let tb = &route.tb;
        if record.key.is_none() && route.compacted {
            // Kafka's rule: compaction keeps the latest record per key, so
            // a keyless record has no place in a compacted topic.
            return Err(Error::KeyRequired {
                topic: tb.topic.name().to_string(),
            });
        }
        let generation = self.txn_check_send(tb.topic.name(), p)?;
        if route.parts.len() <= p as usize {
            // The topic grew since the route was made.
            if tb.acc(p)?.is_none() {
                return Ok(None);
            }
            route.parts = tb.parts.read().clone();
        }
        let Some(acc) = route.parts.get(p as usize) else {
            return Ok(None);
        };
        let size = size_bound_of(fixed);
        let max_message = route.max_message;
        if size + BATCH_HEADER_SIZE > max_message {
            return Err(Error::BatchTooLarge {
                size: size + BATCH_HEADER_SIZE,
                max: max_message,
            });
        }
        let max_batch = max_message.min(self.config.batch_size);
        let mut pending = Vec::new();
        let mut a = acc.lock();
        if a.retired {
            return Ok(None);
        }
        // A commit or abort that started since the check above would flush
        // without this record.
        self.txn_still_open(generation)?;
        // Checked again under the lock: `close` drains every batch after
        // setting `closed`, so a record pushed now would never go out.
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        if a.count > 0 && a.builder.size() + size > max_batch {
            // The full batch goes first. Its fate is its own: a failure
            // reaches its deliveries and the next flush, and this record
            // goes into the next batch all the same.
            self.drain(&mut a, &mut pending, true);
            if sticky {
                tb.sticky.fetch_add(1, Ordering::Relaxed);
            }
        }
        if a.count == 0 {
            let now = self.ctx.catalog.clock().now_ms();
            a.started = Some(now);
            a.batch += 1;
            a.builder.reserve(max_batch + BATCH_HEADER_SIZE);
            if self.lingering.load(Ordering::Relaxed) {
                let deadline = now.saturating_add(self.linger_ms());
                self.linger_schedule
                    .lock()
                    .push(deadline, Arc::downgrade(acc), a.batch);
            }
        }
        a.builder.push_parts(record, fixed);
        a.codec = route.codec;
        let delivery = Delivery {
            slot: a.slot.clone(),
            index: a.count,
            partition: p,
            timestamp: record.timestamp,
            key: WakerKey::default(),
        };
        a.count += 1;
        let now = !self.lingering.load(Ordering::Relaxed);
        if now || a.builder.size() >= max_batch {
            // The record is accepted: from here on its fate (append or fsync
            // failure included) is reported through its delivery and the
            // next flush.
            self.drain(&mut a, &mut pending, true);
            if sticky && !now {
                tb.sticky.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(a);
        self.complete(pending);
        if let Some(q) = self.queue() {
            q.wait_room();
        }
        Ok(Some(delivery))
    }

    /// Appends the partition's batch (under its lock, so batches of one
    /// partition keep their order). A sync append's fsync is left in
    /// `pending`, to be done after the lock is released so that concurrent
    /// senders share it. A failure resolves the batch's deliveries and is
    /// kept for the next flush.
    fn drain(&self, a: &mut Acc, pending: &mut Vec<PendingSync>, hand_over: bool) {
        if a.count == 0 {
            return;
        }
        let slot = std::mem::replace(&mut a.slot, Arc::new(Slot::new(a.topic.clone())));
        let count = a.count;
        a.count = 0;
        a.started = None;
        a.touched = true;
        if let Some(q) = self.queue() {
            // A batch a send filled goes to the sender thread, which
            // appends it while this thread fills the next; unless the
            // sender is busy with other partitions' batches: then this
            // thread appends it (several sending threads write at once).
            // A flush, the linger thread or a retiring buffer appends
            // itself (it waits anyway: a hand-over would only add a
            // thread switch). Either way only while none of this
            // partition's batches waits for the sender thread, or the
            // partition's order would break.
            if a.send.queued() > 0 || (hand_over && !q.busy()) {
                let builder = std::mem::take(&mut a.builder);
                a.send.queue_one();
                a.builder = q.push(Job {
                    partition: a.partition.clone(),
                    builder,
                    slot,
                    count,
                    codec: a.codec,
                    send: a.send.clone(),
                });
                return;
            }
        }
        let seq = a.send.seq.load(Ordering::Acquire);
        let appended = self.append_builder(&a.partition, &mut a.builder, a.codec, seq);
        a.builder.reset();
        a.builder
            .trim_capacity(self.config.batch_size + BATCH_HEADER_SIZE);
        match appended {
            Ok((result, last_offset)) => {
                let next = crate::storage::next_sequence(seq, count as i32);
                a.send.seq.store(next, Ordering::Release);
                if self.config.durability == Durability::Sync {
                    let sync = PendingSync {
                        partition: a.partition.clone(),
                        upto: last_offset + 1,
                        slot,
                        result,
                        owner: true,
                    };
                    a.in_flight.retain(|p| !p.slot.is_resolved());
                    a.in_flight.push(PendingSync {
                        owner: false,
                        ..sync.clone()
                    });
                    pending.push(sync);
                } else {
                    slot.resolve(Ok(result));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                slot.resolve(Err(e.clone()));
                self.batch_failed(&a.partition, e);
            }
        }
    }

    /// Stamps (producer id, epoch, sequence `seq`), seals and appends the
    /// batch in `builder` to `partition`: the deliveries' outcome (base
    /// offset, append time, batch time) and the last offset.
    fn append_builder(
        &self,
        partition: &Partition,
        builder: &mut BatchBuilder,
        codec: Compression,
        seq: i32,
    ) -> Result<(Stored, Offset)> {
        builder.set_compression(codec);
        self.stamp(builder, seq)?;
        let batch_time = builder.batch_time();
        let compressed = builder.seal()?;
        let mut owned;
        let bytes: &mut [u8] = match compressed {
            Some(c) => {
                owned = c;
                &mut owned
            }
            None => builder.bytes_mut(),
        };
        let info = partition.log.append_built(bytes, Durability::Buffered)?;
        // The log stamps the batch with the append time when its topic
        // says so *now*: read that from the bytes it stored.
        let stamped = BatchHeader::parse(bytes)
            .is_ok_and(|h| h.timestamp_type() == TimestampType::LogAppendTime);
        let append_time = stamped.then_some(info.max_timestamp);
        Ok((
            (info.base_offset, append_time, batch_time),
            info.last_offset,
        ))
    }

    /// Notes a batch that failed: reported now through `tracing`, and by
    /// the next flush.
    fn batch_failed(&self, partition: &Partition, e: Arc<Error>) {
        self.txn_batch_failed(&e);
        tracing::warn!(
            topic = partition.topic(),
            partition = partition.id(),
            error = %e,
            "a producer batch failed: its records are not stored"
        );
        let mut f = self.failures.lock();
        f.batches += 1;
        f.first.get_or_insert(e);
    }

    /// Runs the fsyncs of drained sync batches, resolving their deliveries.
    #[inline]
    fn complete(&self, pending: Vec<PendingSync>) {
        if pending.is_empty() {
            return;
        }
        for s in pending {
            let r = s.partition.log.flush_to(s.upto);
            self.synced(s, r);
        }
    }

    /// Resolves a drained sync batch's deliveries with its fsync's result.
    fn synced(&self, s: PendingSync, r: Result<()>) {
        match r {
            Ok(()) => s.slot.resolve(Ok(s.result)),
            // A copy's failure is the owner's to report.
            Err(_) if !s.owner => {}
            Err(e) => {
                let e = Arc::new(e);
                s.slot.resolve(Err(e.clone()));
                self.batch_failed(&s.partition, e);
            }
        }
    }

    /// Appends every batch, then reports the failures since the last
    /// flush (see [`Producer::flush`]).
    fn flush(&self) -> Result<()> {
        let synced = self.flush_batches();
        self.report(synced)
    }

    /// A flush's result: [`Error::BatchesFailed`] for the batches that
    /// failed since the last report, else `synced` (its fsyncs' result).
    fn report(&self, synced: Result<()>) -> Result<()> {
        let failures = std::mem::take(&mut *self.failures.lock());
        if let Some(first) = failures.first {
            return Err(Error::BatchesFailed {
                batches: failures.batches,
                first,
            });
        }
        synced
    }

    /// Waits until the sender thread has appended every batch handed to
    /// it so far.
    fn wait_sent(&self) {
        if let Some(q) = self.queue() {
            q.wait_done(q.pushed());
        }
    }

    /// `linger` in the broker clock's milliseconds.
    fn linger_ms(&self) -> i64 {
        i64::try_from(self.config.linger.as_millis()).unwrap_or(i64::MAX)
    }

    /// Appends every batch. A flush of a sync producer also fsyncs every
    /// partition it has appended to, which covers batches other threads
    /// appended (their fsync may still be running); the first error of
    /// those fsyncs is returned. Batch failures are kept for
    /// [`flush`](Self::flush).
    fn flush_batches(&self) -> Result<()> {
        let (pending, to_sync) = self.drain_due();
        self.complete(pending);
        self.wait_sent();
        let mut result = Ok(());
        for p in to_sync {
            if let Err(e) = p.log.flush()
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        result
    }

    /// The appends of `flush_batches`: drains every batch, and returns
    /// their fsyncs still to do and (for a sync producer) the partitions
    /// to fsync.
    fn drain_due(&self) -> (Vec<PendingSync>, Vec<Partition>) {
        let topics: Vec<Arc<TopicBuf>> = self.topics.read().values().cloned().collect();
        let mut pending = Vec::new();
        let mut to_sync = Vec::new();
        for tb in &topics {
            let parts: Vec<_> = tb.parts.read().clone();
            for acc in parts {
                let mut a = acc.lock();
                self.drain(&mut a, &mut pending, false);
                // Batches other threads drained and are still syncing:
                // this flush waits for their deliveries too.
                pending.extend(
                    a.in_flight
                        .iter()
                        .filter(|p| !p.owner && !p.slot.is_resolved())
                        .cloned(),
                );
                // Not reset here: a concurrent flush must fsync too (cheap
                // when already done).
                if a.touched && self.config.durability == Durability::Sync {
                    to_sync.push(a.partition.clone());
                }
            }
        }
        (pending, to_sync)
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(w) = self.linger_thread.get() {
            w.stop();
        }
        // The batches handed to the sender thread are appended (by it, or
        // here if this is that thread); from here on everything is appended
        // inline.
        self.close_sender();
        // Kafka's close: an open transaction is aborted (its unsent
        // records fail with `TransactionAborted`).
        let aborted = self.abort_open_transaction();
        self.flush().and(aborted)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: what is not flushed now was never acknowledged.
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    /// A broker in a temporary directory with topic `t` (one partition).
    fn broker_with_t() -> (tempfile::TempDir, crate::Broker) {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::Broker::open(dir.path()).unwrap();
        broker
            .admin()
            .create_topic("t", crate::TopicConfig::default())
            .unwrap();
        (dir, broker)
    }

    /// The interleaving that used to lose a record: a sender holds a
    /// topic's buffer, the topic is deleted and created again, another
    /// sender replaces the buffer (draining it), and only then does the
    /// first sender add its record. It must go to the new buffer, not to
    /// the old one that nobody drains any more.
    #[test]
    fn a_record_is_never_added_to_a_retired_buffer() {
        let (_dir, broker) = broker_with_t();
        let admin = broker.admin();
        let producer = broker.producer(ProducerConfig::default().linger(Duration::from_secs(3600)));
        let inner = &producer.inner;
        let mut held = inner.route("t").unwrap();
        admin.delete_topic("t").unwrap();
        admin
            .create_topic("t", crate::TopicConfig::default())
            .unwrap();
        let current = inner.topic_buf("t").unwrap();
        assert!(!Arc::ptr_eq(&held.tb, &current));
        assert!(!held.fresh("t"));
        fn parts_of<R: ToRecord>(r: &R) -> RecordParts<'_> {
            r.parts()
        }
        let late = Record::new("late");
        let parts = parts_of(&late);
        let fixed = fixed_body_size(&parts);
        let sent = inner.send_to(&mut held, 0, &parts, fixed, false).unwrap();
        assert!(sent.is_none(), "the retired buffer takes nothing");
        // `send` then starts again with the current buffer: stored.
        let d = producer.send_to("t", 0, late).unwrap();
        producer.flush().unwrap();
        assert_eq!(d.wait().unwrap().offset, 0);
        assert_eq!(broker.partition("t", 0).unwrap().end_offset(), 1);
    }

    /// A failed batch is reported through `tracing` where it fails (here
    /// in `send`, which appends the full batch before it: a sync producer
    /// appends on the sending thread), naming the partition, as well as to
    /// its deliveries and the next flush.
    #[test]
    fn a_failed_batch_is_reported_where_it_fails() {
        let (_dir, broker) = broker_with_t();
        let admin = broker.admin();
        let linger = Duration::from_secs(3600);
        let producer = broker.producer(
            ProducerConfig::default()
                .linger(linger)
                .batch_size(1000)
                .durability(Durability::Sync),
        );
        let big = producer.send("t", Record::new(vec![0u8; 550])).unwrap();
        let lower = broker.topic("t").unwrap().config().max_message_bytes(300);
        admin.alter_config("t", lower).unwrap();
        let (sent, events) =
            crate::test_support::capture_events(|| producer.send("t", Record::new("small")));
        sent.unwrap();
        assert!(big.is_done());
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert!(e.starts_with("WARN "), "{e}");
        assert!(e.contains("topic=t partition=0 "), "{e}");
        assert!(e.contains("error=") && e.contains("max"), "{e}");
        assert!(matches!(
            producer.flush(),
            Err(Error::BatchesFailed { batches: 1, .. })
        ));
    }
}

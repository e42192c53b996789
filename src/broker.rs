//! The broker: the facade that opens a data directory's catalog, groups
//! and maintenance threads, hands out clients, and closes it all.

use crate::admin::Admin;
use crate::catalog::{Catalog, Partition, Topic};
use crate::client::Context;
use crate::clock::{Clock, SystemClock};
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::Result;
use crate::group::Groups;
use crate::maintenance::{Maintenance, Schedule};
use crate::producer::{Producer, ProducerConfig};
use crate::read_only::ReadOnlyBroker;
use crate::txn::Transactions;
use crate::worker::Worker;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Opens a [`Broker`] with settings other than the defaults.
///
/// ```
/// use embedlog::Broker;
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::builder(dir.path())
///     .housekeeping_interval(Duration::from_millis(50))
///     .open()?;
/// broker.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BrokerBuilder {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    housekeeping_interval: Duration,
    retention_check_interval: Duration,
    cleaner: bool,
    cleaner_backoff: Duration,
    cleaner_key_map_bytes: usize,
    transaction_check_interval: Duration,
    transactional_id_expiration: Duration,
}

impl BrokerBuilder {
    /// How long a transactional id with no open transaction is remembered
    /// after its last use (Kafka's `transactional.id.expiration.ms`). A
    /// producer that comes back later starts afresh with
    /// `init_transactions`. Default: 7 days.
    pub fn transactional_id_expiration(mut self, age: Duration) -> Self {
        self.transactional_id_expiration = age;
        self
    }

    /// How often (real time) the broker looks for transactions open longer
    /// than their producer's `transaction_timeout` (by the broker's clock)
    /// and aborts them, fencing their producer (Kafka's
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    /// Default: 1 s.
    pub fn transaction_check_interval(mut self, every: Duration) -> Self {
        self.transaction_check_interval = every.max(Duration::from_millis(1));
        self
    }

    /// The clock for timestamps, time-based rolls and retention, and every
    /// timer of the broker: when the background thread flushes topics with
    /// a `flush_interval` and applies retention, producers' `linger`,
    /// consumers' auto-commit interval and groups' `max_poll_interval`.
    /// (The background thread
    /// still wakes every [`housekeeping_interval`](Self::housekeeping_interval)
    /// of real time to look.) Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How often the background thread checks for work (topic
    /// `flush_interval`s). Default: 100 ms.
    pub fn housekeeping_interval(mut self, every: Duration) -> Self {
        self.housekeeping_interval = every.max(Duration::from_millis(1));
        self
    }

    /// How often the background thread applies topics' retention (Kafka's
    /// `log.retention.check.interval.ms`), by the broker's
    /// [`clock`](Self::clock). Default: 30 s.
    pub fn retention_check_interval(mut self, every: Duration) -> Self {
        self.retention_check_interval = every;
        self
    }

    /// Run the background cleaner that compacts topics with
    /// [`CleanupPolicy::Compact`](crate::CleanupPolicy) (Kafka's
    /// `log.cleaner.enable`). Default: `true`. Without it, compaction
    /// happens only through [`Admin::compact_now`](crate::Admin::compact_now).
    ///
    /// A partition is compacted once its dirty ratio reaches its topic's
    /// `min.cleanable.dirty.ratio`. A failed pass is reported as a
    /// `tracing` error event (fields `topic`, `partition`, `error`,
    /// `failures`, `skip_rounds`), and the partition then sits out 1, 2,
    /// 4, … up to 64 rounds before the next attempt; a successful pass
    /// resets that.
    pub fn cleaner(mut self, enabled: bool) -> Self {
        self.cleaner = enabled;
        self
    }

    /// How long the cleaner sleeps when no partition is dirty enough
    /// (`log.cleaner.backoff.ms`). Default: 15 s.
    pub fn cleaner_backoff(mut self, every: Duration) -> Self {
        self.cleaner_backoff = every.max(Duration::from_millis(1));
        self
    }

    /// Memory for the cleaner's key map, in bytes
    /// (`log.cleaner.dedupe.buffer.size`; see
    /// [`Compaction::key_map_bytes`](crate::Compaction::key_map_bytes)).
    /// Default: 32 MiB. It bounds the cleaner's memory: one pass at a time
    /// uses it.
    pub fn cleaner_key_map_bytes(mut self, bytes: usize) -> Self {
        self.cleaner_key_map_bytes = bytes;
        self
    }

    /// Opens (or creates) the data directory.
    ///
    /// # Errors
    /// [`Error::Locked`](crate::Error::Locked) if another broker (in this or another process)
    /// holds it; [`Error::Metadata`](crate::Error::Metadata) for a damaged topic configuration;
    /// whatever opening a partition's log reports.
    pub fn open(self) -> Result<Broker> {
        Broker::open_with(self)
    }
}

#[derive(Debug)]
pub(crate) struct BrokerInner {
    catalog: Arc<Catalog>,
    groups: Arc<Groups>,
    txns: Arc<Transactions>,
    /// Aborts transactions past their timeout.
    txn_timeouts: Worker,
    maintenance: Maintenance,
    key_map_bytes: usize,
}

/// An embedded "Kafka broker": owns one data directory and its topics.
///
/// `Broker` is `Send + Sync` and cheap to clone (all clones share one
/// broker). [`close`](Self::close) flushes and closes every partition;
/// dropping the last clone (and every producer and consumer) does the same,
/// ignoring errors.
///
/// ```
/// use embedlog::{Broker, ConsumerConfig, ProducerConfig, Record, TopicConfig};
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// broker.admin().create_topic("events", TopicConfig::default().partitions(4))?;
///
/// let producer = broker.producer(ProducerConfig::default());
/// let delivery = producer.send("events", Record::new("hello").key("user-1"))?;
/// producer.flush()?;
/// let meta = delivery.wait()?;
///
/// let mut consumer = broker.consumer(ConsumerConfig::default());
/// consumer.assign(&[("events", meta.partition)])?;
/// consumer.seek_to_beginning(&[("events", meta.partition)])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// assert_eq!(records[0].value(), Some(&b"hello"[..]));
/// broker.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Broker {
    pub(crate) inner: Arc<BrokerInner>,
}

impl Broker {
    /// Opens (or creates) the broker in `root` with default settings.
    ///
    /// # Errors
    /// As [`BrokerBuilder::open`].
    pub fn open(root: impl AsRef<Path>) -> Result<Broker> {
        Self::builder(root).open()
    }

    /// Opens `root` read-only, for a process that does not own it (a tool,
    /// a dashboard, a second reader): no lock, no recovery, no writes; it
    /// sees topics and records as the owner creates and appends them. See
    /// [`ReadOnlyBroker`].
    ///
    /// # Errors
    /// [`Error::Metadata`](crate::Error::Metadata) if `root` is not a data directory.
    pub fn open_read_only(root: impl AsRef<Path>) -> Result<ReadOnlyBroker> {
        ReadOnlyBroker::open(root.as_ref())
    }

    /// A builder for a broker in `root`.
    pub fn builder(root: impl AsRef<Path>) -> BrokerBuilder {
        BrokerBuilder {
            root: root.as_ref().to_path_buf(),
            clock: Arc::new(SystemClock),
            housekeeping_interval: Duration::from_millis(100),
            retention_check_interval: Duration::from_secs(30),
            cleaner: true,
            cleaner_backoff: Duration::from_secs(15),
            cleaner_key_map_bytes: 32 << 20,
            transaction_check_interval: Duration::from_secs(1),
            transactional_id_expiration: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }

    fn open_with(b: BrokerBuilder) -> Result<Broker> {
        crate::Compaction::default()
            .key_map_bytes(b.cleaner_key_map_bytes)
            .check()?;
        let catalog = Arc::new(Catalog::open(b.root, b.clock)?);
        let maintenance = Maintenance::start(
            &catalog,
            &Schedule {
                housekeeping_interval: b.housekeeping_interval,
                retention_check_interval: b.retention_check_interval,
                cleaner_backoff: b.cleaner.then_some(b.cleaner_backoff),
                key_map_bytes: b.cleaner_key_map_bytes,
            },
        )?;
        // A failure from here on closes what was opened.
        let groups = match Groups::open(catalog.clone()) {
            Ok(g) => Arc::new(g),
            Err(e) => {
                // Best effort: the next open recovers what this leaves.
                let _ = close(&catalog, &maintenance, None);
                return Err(e);
            }
        };
        let txns = match Transactions::open(
            catalog.clone(),
            groups.clone(),
            b.transactional_id_expiration,
        ) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                let _ = close(&catalog, &maintenance, None);
                return Err(e);
            }
        };
        let weak = Arc::downgrade(&txns);
        let txn_timeouts = Worker::spawn(
            "embedlog-txn-timeouts",
            b.transaction_check_interval,
            move |_| {
                let Some(txns) = weak.upgrade() else {
                    return false;
                };
                if let Err(e) = txns.abort_timed_out() {
                    tracing::error!(error = %e, "embedlog: aborting timed-out transactions failed; retrying at the next check");
                }
                true
            },
        );
        let txn_timeouts = match txn_timeouts {
            Ok(w) => w,
            Err(e) => {
                let _ = close(&catalog, &maintenance, None);
                return Err(crate::Error::io(
                    "spawn the transaction timeout thread for",
                    catalog.root(),
                    e,
                ));
            }
        };
        Ok(Broker {
            inner: Arc::new(BrokerInner {
                catalog,
                groups,
                txns,
                txn_timeouts,
                maintenance,
                key_map_bytes: b.cleaner_key_map_bytes,
            }),
        })
    }

    /// What the clients of this broker share; they keep it open.
    fn context(&self) -> Context {
        Context {
            catalog: self.inner.catalog.clone(),
            groups: self.inner.groups.clone(),
            txns: self.inner.txns.clone(),
            key_map_bytes: self.inner.key_map_bytes,
            owner: Arc::new(self.clone()),
        }
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.inner.catalog.root()
    }

    /// The Admin API.
    pub fn admin(&self) -> Admin {
        Admin::new(self.context())
    }

    /// The topic named `name`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`](crate::Error::UnknownTopic); [`Error::Closed`](crate::Error::Closed).
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.inner.catalog.topic(name)
    }

    /// Partition `partition` of topic `topic`.
    ///
    /// # Errors
    /// As [`topic`](Self::topic) and [`Topic::partition`].
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Partition> {
        self.inner.catalog.partition(topic, partition)
    }

    /// A new producer.
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.context(), config)
    }

    /// A new consumer.
    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.context(), config)
    }

    /// Flushes and closes every partition, stops the background thread and
    /// releases the directory lock. Later calls on this broker (and its
    /// clones, producers and consumers) fail with [`Error::Closed`](crate::Error::Closed); readers
    /// keep the bytes they hold.
    ///
    /// # Errors
    /// The first error closing a partition (the rest are still closed);
    /// the next open recovers them as after a crash.
    pub fn close(&self) -> Result<()> {
        close(
            &self.inner.catalog,
            &self.inner.maintenance,
            Some(&self.inner.txn_timeouts),
        )
    }
}

impl Broker {
    /// Stops the broker as a killed process would (for crash tests): no
    /// flush, no clean-shutdown record, no snapshot; what was written stays
    /// in the files (the page cache survives a process crash). Clients of
    /// this broker fail with [`Error::Closed`](crate::Error::Closed) from
    /// now on; the next open recovers.
    #[doc(hidden)]
    pub fn simulate_crash(self) {
        let inner = &self.inner;
        let Some(_admin) = inner.catalog.begin_close() else {
            return;
        };
        inner.txn_timeouts.stop();
        inner.maintenance.stop_housekeeping();
        inner.catalog.abandon_topics();
        inner.maintenance.stop_cleaner();
        inner.catalog.release_lock();
    }
}

impl Admin {
    /// The broker this admin belongs to.
    pub fn broker(&self) -> &Broker {
        // An Admin is only made by `Broker::admin`, whose context's owner
        // is the broker itself.
        #[allow(clippy::expect_used)]
        self.context()
            .owner
            .downcast_ref::<Broker>()
            .expect("an Admin's owner is the Broker that made it")
    }
}

impl From<&Broker> for Admin {
    fn from(b: &Broker) -> Self {
        b.admin()
    }
}

/// Closes the catalog with its maintenance threads, in the order that
/// keeps them apart: once closed (no topic changes meanwhile), the
/// housekeeping thread ends before the logs close, and the cleaner, whose
/// pass stops at its next check once its log closes, after them. The lock
/// goes last: another broker may open the directory from then on.
fn close(
    catalog: &Catalog,
    maintenance: &Maintenance,
    txn_timeouts: Option<&Worker>,
) -> Result<()> {
    let Some(_admin) = catalog.begin_close() else {
        return Ok(());
    };
    if let Some(w) = txn_timeouts {
        w.stop();
    }
    maintenance.stop_housekeeping();
    let r = catalog.close_topics();
    maintenance.stop_cleaner();
    catalog.release_lock();
    r
}

impl Drop for BrokerInner {
    fn drop(&mut self) {
        // Best effort: what fails here is recovered by the next open.
        let _ = close(&self.catalog, &self.maintenance, Some(&self.txn_timeouts));
    }
}

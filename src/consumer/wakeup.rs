//! [`ConsumerWakeup`]: ends a consumer's long poll from another thread.

use crate::Notify;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Ends a [`Consumer`](super::Consumer)'s wait for records from another
/// thread (Kafka's `consumer.wakeup()`): the poll waiting now, or else the
/// next one, returns at once with what it has fetched, possibly nothing.
/// A wakeup is used up by the poll it ends; waking a consumer that is not
/// waiting makes its next poll skip the wait once.
///
/// Get one with [`Consumer::wakeup_handle`](super::Consumer::wakeup_handle)
/// before moving the consumer to the thread that polls. An async
/// [`ConsumerStream`](crate::ConsumerStream) (feature `async`) needs none:
/// drop its `next()` future instead.
///
/// ```
/// use embedlog::{Broker, ConsumerConfig, TopicConfig};
/// use std::time::{Duration, Instant};
/// let dir = tempfile::tempdir()?;
/// let broker = Broker::open(dir.path())?;
/// broker.admin().create_topic("quiet", TopicConfig::default())?;
/// let mut consumer = broker.consumer(ConsumerConfig::default());
/// consumer.assign(&[("quiet", 0)])?;
/// let wakeup = consumer.wakeup_handle();
/// let poller = std::thread::spawn(move || {
///     let started = Instant::now();
///     let records = consumer.poll(Duration::from_secs(3600))?;
///     Ok::<_, embedlog::Error>((records.len(), started.elapsed()))
/// });
/// wakeup.wakeup();
/// let (n, waited) = poller.join().unwrap()?;
/// assert_eq!(n, 0);
/// assert!(waited < Duration::from_secs(3600));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerWakeup {
    pub(super) woken: Arc<AtomicBool>,
    pub(super) notify: Arc<Notify>,
}

impl ConsumerWakeup {
    /// Ends the consumer's current wait for records, or its next one.
    pub fn wakeup(&self) {
        self.woken.store(true, Ordering::Release);
        self.notify.notify();
    }
}

/// The consumer's side: whether a wakeup came, using it up.
pub(super) fn take(woken: &AtomicBool) -> bool {
    woken.load(Ordering::Relaxed) && woken.swap(false, Ordering::AcqRel)
}

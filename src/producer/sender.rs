//! The sender thread (Kafka's producer `Sender`): a lingering, buffered
//! producer hands each full (or lingered, or flushed) batch to this thread,
//! which stamps, seals and appends it, so that encoding the next batch on
//! the sending thread overlaps the write of the last one.
//!
//! Batches are appended in the order they were handed over, so a
//! partition's batches keep their order. A flush waits until every batch
//! handed over before it is appended. Sending threads block while more than
//! [`ProducerConfig::buffer_memory`] bytes wait (back-pressure), after
//! releasing every lock.

use super::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize};

/// One batch to append.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) partition: Partition,
    pub(super) builder: BatchBuilder,
    pub(super) slot: Arc<Slot>,
    pub(super) count: u32,
    pub(super) codec: Compression,
    pub(super) send: Arc<PartitionSend>,
}

/// What the sending threads and the sender thread share about one
/// partition.
#[derive(Debug, Default)]
pub(super) struct PartitionSend {
    /// The sequence number of the partition's next batch (idempotence),
    /// advanced by whoever appends its batches when one is stored. Only
    /// one appends at a time: the sender thread while any of the
    /// partition's batches waits for it, else a sending thread under the
    /// partition's lock.
    pub(super) seq: AtomicI32,
    /// The partition's batches handed to the sender thread and not yet
    /// appended.
    queued: AtomicU32,
}

impl PartitionSend {
    pub(super) fn queued(&self) -> u32 {
        self.queued.load(Ordering::Acquire)
    }

    pub(super) fn queue_one(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Batches handed over, and appended (or failed), since the start.
    pushed: u64,
    done: u64,
    /// Bytes of the batches waiting.
    bytes: usize,
    /// The thread is appending a batch it took.
    appending: bool,
    closed: bool,
    /// Builders of appended batches, for the next batches to fill.
    free: Vec<BatchBuilder>,
    /// `flush_async` futures waiting for `done` to reach their target.
    wakers: Wakers,
}

/// The hand-over between sending threads and the sender thread.
#[derive(Debug)]
pub(super) struct Sender {
    queue: Mutex<Queue>,
    /// The sender thread waits here for jobs.
    work: Condvar,
    /// Flushes and blocked senders wait here for progress.
    progress: Condvar,
    limit: usize,
    /// `Queue::bytes`, readable without the lock: a send looks at it to
    /// know whether it must wait (almost never), without touching the
    /// queue's lock, which the sender thread takes at every batch.
    waiting: AtomicUsize,
    /// The thread runs: without it, batches are appended inline.
    running: AtomicBool,
    thread: OnceLock<Worker>,
}

/// Builders kept for reuse (each holds a batch-sized buffer).
const FREE_BUILDERS: usize = 8;

impl Sender {
    pub(super) fn new(limit: usize) -> Self {
        Sender {
            queue: Mutex::default(),
            work: Condvar::new(),
            progress: Condvar::new(),
            limit,
            waiting: AtomicUsize::new(0),
            running: AtomicBool::new(false),
            thread: OnceLock::new(),
        }
    }

    pub(super) fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Hands `job` over; returns a builder for the partition's next batch
    /// (a reused one when there is one).
    pub(super) fn push(&self, job: Job) -> BatchBuilder {
        let mut q = self.queue.lock();
        q.bytes += job.builder.size();
        self.waiting.store(q.bytes, Ordering::Release);
        q.pushed += 1;
        q.jobs.push_back(job);
        let spare = q.free.pop().unwrap_or_default();
        drop(q);
        self.work.notify_one();
        spare
    }

    /// How many batches were handed over so far: a flush waits for that
    /// many to be done.
    pub(super) fn pushed(&self) -> u64 {
        self.queue.lock().pushed
    }

    /// Waits until `target` batches are done.
    pub(super) fn wait_done(&self, target: u64) {
        let mut q = self.queue.lock();
        while q.done < target {
            self.progress.wait(&mut q);
        }
    }

    /// [`wait_done`](Self::wait_done) for a future.
    #[cfg(feature = "async")]
    pub(super) fn poll_done(
        &self,
        target: u64,
        key: &mut WakerKey,
        waker: &std::task::Waker,
    ) -> Poll<()> {
        let mut q = self.queue.lock();
        if q.done >= target {
            q.wakers.remove(key);
            return Poll::Ready(());
        }
        q.wakers.register(key, waker);
        Poll::Pending
    }

    /// Removes a dropped future's waker.
    #[cfg(feature = "async")]
    pub(super) fn forget(&self, key: &mut WakerKey) {
        self.queue.lock().wakers.remove(key);
    }

    /// Whether the thread has work: a batch waiting or being appended.
    pub(super) fn busy(&self) -> bool {
        let q = self.queue.lock();
        q.appending || !q.jobs.is_empty()
    }

    /// Blocks while more than the limit waits (back-pressure on senders).
    pub(super) fn wait_room(&self) {
        if self.waiting.load(Ordering::Acquire) <= self.limit {
            return;
        }
        let mut q = self.queue.lock();
        while q.bytes > self.limit && !q.closed {
            self.progress.wait(&mut q);
        }
    }

    /// Waits for a job; `false` once closed.
    fn wait_job(&self) -> bool {
        let mut q = self.queue.lock();
        loop {
            if q.closed {
                return false;
            }
            if !q.jobs.is_empty() {
                return true;
            }
            self.work.wait(&mut q);
        }
    }

    fn pop(&self) -> Option<Job> {
        let mut q = self.queue.lock();
        let job = q.jobs.pop_front();
        q.appending = job.is_some();
        job
    }

    /// A job is done: its bytes leave the queue, its builder is kept for
    /// reuse, waiters look again.
    fn finished(&self, bytes: usize, builder: BatchBuilder) {
        let mut q = self.queue.lock();
        q.done += 1;
        q.bytes -= bytes;
        self.waiting.store(q.bytes, Ordering::Release);
        q.appending = false;
        if q.free.len() < FREE_BUILDERS {
            q.free.push(builder);
        }
        let woken = q.wakers.take();
        drop(q);
        self.progress.notify_all();
        woken.wake();
    }

    /// Stops the thread (waiting for the batch it is appending, unless
    /// called on it) and returns the batches it did not take: the caller
    /// appends them, then calls [`finished`](Self::finished) for each.
    fn close(&self) -> Vec<Job> {
        self.running.store(false, Ordering::Release);
        self.queue.lock().closed = true;
        self.work.notify_all();
        if let Some(w) = self.thread.get() {
            w.stop();
        }
        self.queue.lock().jobs.drain(..).collect()
    }
}

impl Inner {
    /// The sender, when its thread runs (a buffered producer with a
    /// non-zero `linger`).
    pub(super) fn queue(&self) -> Option<&Sender> {
        self.sender.as_deref().filter(|s| s.running())
    }

    /// Stops the sender thread and appends here what it left.
    pub(super) fn close_sender(&self) {
        let Some(sender) = &self.sender else {
            return;
        };
        for job in sender.close() {
            let bytes = job.builder.size();
            let builder = self.append_job(job);
            sender.finished(bytes, builder);
        }
    }

    /// Starts the sender thread. It holds the producer weakly and ends
    /// when the producer closes.
    pub(super) fn spawn_sender(self: &Arc<Self>) {
        let Some(sender) = self.sender.clone() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let s = sender.clone();
        // The thread holds the producer only while it appends: waiting, it
        // holds the queue alone, so dropping the last `Producer` closes it
        // (and `close` appends what is left).
        let spawned = Worker::spawn_body("embedlog-sender", move |_| {
            while s.wait_job() {
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let Some(job) = s.pop() else {
                    continue;
                };
                let bytes = job.builder.size();
                let builder = inner.append_job(job);
                s.finished(bytes, builder);
            }
        });
        if let Ok(w) = spawned {
            let _ = sender.thread.set(w);
            sender.running.store(true, Ordering::Release);
        }
    }

    /// Appends one handed-over batch and resolves its deliveries; gives
    /// the builder back for reuse.
    fn append_job(&self, mut job: Job) -> BatchBuilder {
        let seq = job.send.seq.load(Ordering::Acquire);
        let appended = self.append_builder(&job.partition, &mut job.builder, job.codec, seq);
        match appended {
            Ok((result, _)) => {
                let next = crate::storage::next_sequence(seq, job.count as i32);
                job.send.seq.store(next, Ordering::Release);
                job.slot.resolve(Ok(result));
            }
            Err(e) => {
                let e = Arc::new(e);
                job.slot.resolve(Err(e.clone()));
                self.batch_failed(&job.partition, e);
            }
        }
        // After the sequence: a sending thread that sees none queued may
        // append the partition's next batch itself.
        job.send.queued.fetch_sub(1, Ordering::AcqRel);
        job.builder.reset();
        job.builder
            .trim_capacity(self.config.batch_size + BATCH_HEADER_SIZE);
        job.builder
    }
}

//! With the `async` feature, the futures and the stream give what the
//! blocking calls give, under any executor, woken by the notifications the
//! blocking calls sleep on: a `Delivery` resolves as `wait` returns (tokio
//! current-thread and multi-thread, pollster), `Consumer::stream` yields
//! what `poll` returns in the same order with the same positions,
//! `flush_async` and `wait_for_async` resolve, a group member's idle stream
//! is woken to rebalance, and a dropped pending future leaves no waker
//! behind. (The 1,000-stream idle test is `tests/async_many.rs`.)

use crate::common::{self, tempdir};
use embedlog::{
    Broker, ConsumerConfig, ConsumerStream, Delivery, Durability, Error, Flush, IsolationLevel,
    Notify, OffsetReset, ProducerConfig, Record, TopicConfig, WaitFor, WaitPast,
};
use futures_core::Stream;
use proptest::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// A waker that counts its wakes; its `Arc`'s count tells who holds it.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `f` once with `w`'s waker.
fn poll_once<F: Future + Unpin>(f: &mut F, w: &Arc<CountingWaker>) -> Poll<F::Output> {
    let waker = Waker::from(w.clone());
    Pin::new(f).poll(&mut Context::from_waker(&waker))
}

/// Polls a stream once with `w`'s waker.
fn poll_next_once<S: Stream + Unpin>(s: &mut S, w: &Arc<CountingWaker>) -> Poll<Option<S::Item>> {
    let waker = Waker::from(w.clone());
    Pin::new(s).poll_next(&mut Context::from_waker(&waker))
}

fn broker_with_t(partitions: u32) -> (tempfile::TempDir, Broker) {
    let dir = tempdir();
    let broker = common::broker_with_topic(
        dir.path(),
        "t",
        TopicConfig::default().partitions(partitions),
    );
    (dir, broker)
}

fn earliest() -> ConsumerConfig {
    ConsumerConfig::default().offset_reset(OffsetReset::Earliest)
}

#[test]
fn the_futures_are_send_and_the_stream_is_too() {
    fn send<T: Send>() {}
    send::<Delivery>();
    send::<Flush>();
    send::<WaitFor>();
    send::<WaitPast<'static>>();
    send::<ConsumerStream<'static>>();
}

/// Sends `n` records (keys spread over the partitions), awaits each
/// delivery, and checks it against `Delivery::wait` and the log.
async fn send_and_await(broker: &Broker, producer: &embedlog::Producer, n: usize) {
    let mut deliveries = Vec::new();
    for i in 0..n {
        let d = producer
            .send("t", Record::new(format!("v{i}")).key(format!("k{}", i % 5)))
            .unwrap();
        deliveries.push(d);
    }
    for d in deliveries {
        let blocking = d.clone();
        let meta = d.await.unwrap();
        assert_eq!(meta, blocking.wait().unwrap());
        let p = broker.partition("t", meta.partition).unwrap();
        assert!(meta.offset < p.end_offset());
    }
}

#[test]
fn deliveries_resolve_under_tokio_current_thread() {
    let (_dir, broker) = broker_with_t(3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Lingering: the linger thread appends the batches and wakes the
    // futures, from another thread than the runtime's.
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_millis(2)));
    rt.block_on(send_and_await(&broker, &producer, 200));
    // Without a linger every send appends at once: resolved when polled.
    let producer = broker.producer(ProducerConfig::default().linger(Duration::ZERO));
    rt.block_on(send_and_await(&broker, &producer, 50));
}

#[test]
fn deliveries_resolve_under_tokio_multi_thread() {
    let (_dir, broker) = broker_with_t(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_millis(2)));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (broker, producer) = (broker.clone(), producer.clone());
            rt.spawn(async move { send_and_await(&broker, &producer, 20).await })
        })
        .collect();
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let total: u64 = (0..3)
        .map(|p| broker.partition("t", p).unwrap().end_offset())
        .sum();
    assert_eq!(total, 400);
}

#[test]
fn deliveries_resolve_under_pollster() {
    let (_dir, broker) = broker_with_t(3);
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_millis(2)));
    pollster::block_on(send_and_await(&broker, &producer, 200));
    // A sync producer: resolved after the fsync.
    let producer = broker.producer(ProducerConfig::default().durability(Durability::Sync));
    pollster::block_on(send_and_await(&broker, &producer, 20));
}

#[test]
fn a_failed_batch_fails_its_futures_and_the_async_flush() {
    let (_dir, broker) = broker_with_t(1);
    let linger = Duration::from_secs(3600);
    let producer = broker.producer(ProducerConfig::default().linger(linger));
    let big = producer.send("t", Record::new(vec![0u8; 550])).unwrap();
    let lower = broker.topic("t").unwrap().config().max_message_bytes(300);
    broker.admin().alter_config("t", lower).unwrap();
    pollster::block_on(async {
        assert!(matches!(
            producer.flush_async().await,
            Err(Error::BatchesFailed { batches: 1, .. })
        ));
        assert!(matches!(big.await, Err(Error::DeliveryFailed { .. })));
        // Reported once; the next flush is clean.
        producer.flush_async().await.unwrap();
    });
}

#[test]
fn flush_async_stores_every_batch_buffered_and_sync() {
    let (_dir, broker) = broker_with_t(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for durability in [Durability::Buffered, Durability::Sync] {
        let producer = broker.producer(
            ProducerConfig::default()
                .linger(Duration::from_secs(3600))
                .durability(durability),
        );
        // Tasks flush concurrently: with Sync they share fsyncs, waiting
        // for each other's (group commit) instead of blocking.
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let producer = producer.clone();
                rt.spawn(async move {
                    let d = producer
                        .send("t", Record::new(format!("{i}")).key(format!("{i}")))
                        .unwrap();
                    producer.flush_async().await.unwrap();
                    // Stored when the flush resolved: the delivery is done.
                    assert!(d.is_done());
                    d.await.unwrap()
                })
            })
            .collect();
        rt.block_on(async {
            for t in tasks {
                let meta = t.await.unwrap();
                let p = broker.partition("t", meta.partition).unwrap();
                if durability == Durability::Sync {
                    assert!(p.log().flushed_offset() > meta.offset);
                }
            }
        });
    }
}

#[test]
fn a_dropped_pending_future_leaves_no_waker_behind() {
    let (_dir, broker) = broker_with_t(1);
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_secs(3600)));
    let w = Arc::new(CountingWaker::default());

    // A delivery: pending until the flush; its waker is held by the slot
    // while it is pending, once however often it is polled.
    let mut dropped = producer.send("t", Record::new("a")).unwrap();
    let mut kept = producer.send("t", Record::new("b")).unwrap();
    assert!(poll_once(&mut dropped, &w).is_pending());
    assert!(poll_once(&mut dropped, &w).is_pending());
    assert_eq!(Arc::strong_count(&w), 2);
    assert!(poll_once(&mut kept, &w).is_pending());
    assert_eq!(Arc::strong_count(&w), 3);
    drop(dropped);
    assert_eq!(Arc::strong_count(&w), 2);
    producer.flush().unwrap();
    // The resolve woke the one still registered, and let go of it.
    assert_eq!((w.wakes(), Arc::strong_count(&w)), (1, 1));
    assert!(matches!(poll_once(&mut kept, &w), Poll::Ready(Ok(m)) if m.offset == 1));
    // A clone of a registered delivery is a new, unregistered future.
    let mut d = producer.send("t", Record::new("c")).unwrap();
    assert!(poll_once(&mut d, &w).is_pending());
    let clone = d.clone();
    drop(d);
    assert_eq!(Arc::strong_count(&w), 1);
    drop(clone);

    // A stream waiting for records, and the log's and a Notify's futures.
    let mut c = broker.consumer(earliest());
    c.assign([("t", 0)]).unwrap();
    c.seek_to_end([("t", 0)]).unwrap();
    let mut stream = c.stream();
    assert!(poll_next_once(&mut stream, &w).is_pending());
    assert_eq!(Arc::strong_count(&w), 2);
    drop(stream);
    assert_eq!(Arc::strong_count(&w), 1);

    let p = broker.partition("t", 0).unwrap();
    let mut wait = p.log().wait_for_async(100);
    assert!(poll_once(&mut wait, &w).is_pending());
    assert_eq!(Arc::strong_count(&w), 2);
    drop(wait);
    assert_eq!(Arc::strong_count(&w), 1);

    let notify = Notify::new();
    let mut past = notify.wait_past_async(notify.generation());
    assert!(poll_once(&mut past, &w).is_pending());
    assert_eq!(Arc::strong_count(&w), 2);
    drop(past);
    assert_eq!(Arc::strong_count(&w), 1);
    let wakes = w.wakes();
    notify.notify();
    p.append(&[Record::new("nobody waits")]).unwrap();
    assert_eq!(w.wakes(), wakes, "a dropped future was woken");
}

#[test]
fn wait_for_async_resolves_on_append_and_on_close() {
    let (_dir, broker) = broker_with_t(1);
    let p = broker.partition("t", 0).unwrap();
    let writer = {
        let p = p.clone();
        std::thread::spawn(move || p.append(&[Record::new("a"), Record::new("b")]).map(|_| ()))
    };
    assert!(pollster::block_on(p.log().wait_for_async(1)));
    writer.join().unwrap().unwrap();
    // Already there: resolves at the first poll.
    assert!(pollster::block_on(p.log().wait_for_async(0)));

    // A log that closes first resolves `false`.
    let w = Arc::new(CountingWaker::default());
    let mut wait = p.log().wait_for_async(10);
    assert!(poll_once(&mut wait, &w).is_pending());
    broker.close().unwrap();
    assert_eq!(w.wakes(), 1);
    assert_eq!(poll_once(&mut wait, &w), Poll::Ready(false));
}

#[test]
fn wait_past_async_resolves_on_a_later_notification() {
    let notify = Arc::new(Notify::new());
    let seen = notify.generation();
    let n = notify.clone();
    let t = std::thread::spawn(move || n.notify());
    pollster::block_on(notify.wait_past_async(seen));
    assert!(notify.generation() > seen);
    t.join().unwrap();
}

#[test]
fn a_stream_wakes_on_appends_from_another_thread() {
    let (_dir, broker) = broker_with_t(2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut c = broker.consumer(earliest());
    c.assign([("t", 0), ("t", 1)]).unwrap();
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_millis(1)));
    let writer = std::thread::spawn(move || {
        for i in 0..300 {
            producer
                .send_to("t", i % 2, Record::new(format!("{i}")))
                .unwrap();
        }
        producer.flush().unwrap();
    });
    let got = rt.block_on(async {
        let mut stream = c.stream();
        let mut got = Vec::new();
        while got.len() < 300 {
            let r = stream.next().await.unwrap().unwrap();
            got.push((r.partition, r.offset, r.value_bytes().unwrap()));
        }
        got
    });
    writer.join().unwrap();
    for p in 0..2 {
        let offsets: Vec<u64> = got.iter().filter(|r| r.0 == p).map(|r| r.1).collect();
        assert_eq!(offsets, (0..150).collect::<Vec<_>>());
    }
    assert_eq!(c.position(("t", 0)).unwrap(), 150);
    assert_eq!(c.position(("t", 1)).unwrap(), 150);
}

#[test]
fn an_idle_group_stream_is_woken_to_hand_a_partition_over() {
    let (_dir, broker) = broker_with_t(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let config = earliest().group("g");
    let mut first = broker.consumer(config.clone());
    first.subscribe(&["t"]).unwrap();
    // Its first fetch acquires both partitions (nothing to read yet).
    assert!(first.poll(Duration::ZERO).unwrap().is_empty());
    assert_eq!(first.assignment().len(), 2);
    // Then its stream waits, idle, in a task.
    let (tx, rx) = std::sync::mpsc::channel();
    let task = rt.spawn(async move {
        let mut stream = first.stream();
        let r = stream.next().await.unwrap().unwrap();
        let _ = tx.send(r.partition);
        drop(stream);
        first
    });
    let mut second = broker.consumer(config);
    second.subscribe(&["t"]).unwrap();
    // The join rebalances: the idle stream is woken and revokes one
    // partition, which the second member then acquires.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while second.assignment().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never rebalanced");
        second.poll(Duration::from_millis(50)).unwrap();
    }
    let mine = second.assignment();
    assert_eq!(mine.len(), 1);
    // A record in the partition the first member kept ends its wait.
    let kept = 1 - mine[0].partition;
    broker
        .partition("t", kept)
        .unwrap()
        .append(&[Record::new("for the first")])
        .unwrap();
    assert_eq!(rx.recv().unwrap(), kept);
    let first = rt.block_on(task).unwrap();
    assert_eq!(first.assignment().len(), 1);
    assert_eq!(first.assignment()[0].partition, kept);
}

#[derive(Debug, Clone)]
enum Op {
    /// A plain batch of `n` records to a partition.
    Append { partition: u32, n: usize },
    /// A transaction of `n` records to a partition, committed or aborted.
    Txn {
        partition: u32,
        n: usize,
        commit: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u32..3, 1usize..8).prop_map(|(partition, n)| Op::Append { partition, n }),
        1 => (0u32..3, 1usize..5, any::<bool>())
            .prop_map(|(partition, n, commit)| Op::Txn { partition, n, commit }),
    ]
}

type Seen = Vec<(u32, u64, Option<bytes::Bytes>)>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The stream yields exactly what `poll` returns (records, order,
    /// positions), for any mix of batches and transactions, at both
    /// isolation levels and any `max_poll_records`.
    #[test]
    fn the_stream_yields_what_poll_returns(
        ops in prop::collection::vec(op(), 1..12),
        max_poll in 1usize..7,
        committed in any::<bool>(),
    ) {
        let (_dir, broker) = broker_with_t(3);
        let txn = broker.producer(
            ProducerConfig::default().transactional_id("tx").linger(Duration::from_secs(3600)),
        );
        txn.init_transactions().unwrap();
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Append { partition, n } => {
                    let records: Vec<_> = (0..n).map(|k| Record::new(format!("a{i}-{k}"))).collect();
                    broker.partition("t", partition).unwrap().append(&records).unwrap();
                }
                Op::Txn { partition, n, commit } => {
                    txn.begin_transaction().unwrap();
                    for k in 0..n {
                        txn.send_to("t", partition, Record::new(format!("t{i}-{k}"))).unwrap();
                    }
                    if commit {
                        txn.commit_transaction().unwrap();
                    } else {
                        txn.abort_transaction().unwrap();
                    }
                }
            }
        }
        let level = if committed { IsolationLevel::ReadCommitted } else { IsolationLevel::ReadUncommitted };
        let config = earliest().max_poll_records(max_poll).isolation_level(level);
        let all = [("t", 0), ("t", 1), ("t", 2)];

        let mut polling = broker.consumer(config.clone());
        polling.assign(all).unwrap();
        let mut polled: Seen = Vec::new();
        loop {
            let batch = polling.poll(Duration::ZERO).unwrap();
            if batch.is_empty() {
                break;
            }
            polled.extend(batch.into_iter().map(|r| (r.partition, r.offset, r.value_bytes())));
        }

        let mut streaming = broker.consumer(config);
        streaming.assign(all).unwrap();
        let mut streamed: Seen = Vec::new();
        {
            let mut stream = streaming.stream();
            pollster::block_on(async {
                while streamed.len() < polled.len() {
                    let r = stream.next().await.unwrap().unwrap();
                    streamed.push((r.partition, r.offset, r.value_bytes()));
                }
            });
            // Nothing more: the stream waits.
            let w = Arc::new(CountingWaker::default());
            prop_assert!(poll_next_once(&mut stream, &w).is_pending());
        }
        prop_assert_eq!(&streamed, &polled);
        for tp in all {
            prop_assert_eq!(streaming.position(tp).unwrap(), polling.position(tp).unwrap());
        }
    }
}

/// Positions are exact while records are buffered: a stream dropped after
/// some records leaves the consumer just past the last one it yielded.
#[test]
fn a_dropped_stream_loses_no_record() {
    let (_dir, broker) = broker_with_t(1);
    let p = broker.partition("t", 0).unwrap();
    let records: Vec<_> = (0..10).map(|i| Record::new(format!("{i}"))).collect();
    p.append(&records).unwrap();
    let mut c = broker.consumer(earliest());
    c.assign([("t", 0)]).unwrap();
    pollster::block_on(async {
        let mut stream = c.stream();
        for want in 0..3u64 {
            assert_eq!(stream.next().await.unwrap().unwrap().offset, want);
        }
        // Through `consumer()` too: the position is the yielded one.
        assert_eq!(stream.consumer().position(("t", 0)).unwrap(), 3);
        assert_eq!(stream.next().await.unwrap().unwrap().offset, 3);
    });
    assert_eq!(c.position(("t", 0)).unwrap(), 4);
    let rest = c.poll(Duration::ZERO).unwrap();
    assert_eq!(rest.first().map(|r| r.offset), Some(4));
    assert_eq!(rest.len(), 6);
}

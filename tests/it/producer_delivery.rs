//! Every record a producer accepts has a fate its user can learn: each
//! `Delivery` resolves, `flush` reports every batch failure since the
//! previous flush (whoever appended the batch), `send` fails only for the
//! record it was given, and topic settings changed by `alter_config` apply
//! to the next send.

use crate::common;

use embedlog::{
    Broker, ConsumerConfig, Error, ManualClock, OffsetReset, ProducerConfig, Record, TimestampType,
    TopicConfig,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Long enough that no linger deadline passes during a test: batches go
/// out only when full or flushed.
const NEVER: Duration = Duration::from_secs(3600);

/// A deadline for waits on background effects; never reached when the
/// code is right.
const GENEROUS: Duration = Duration::from_secs(60);

/// A broker on a manual clock that starts at 1,000,000 ms.
fn clocked_broker(dir: &std::path::Path) -> (Broker, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let broker = Broker::builder(dir).clock(clock.clone()).open().unwrap();
    (broker, clock)
}

fn value(len: usize) -> Record {
    Record::new(vec![b'v'; len])
}

#[test]
fn flush_reports_a_batch_the_linger_thread_failed() {
    let dir = common::tempdir();
    // Linger is measured by the broker's clock: the batch cannot go out
    // before the clock moves, however the threads are scheduled.
    let (broker, clock) = clocked_broker(dir.path());
    broker
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_millis(1)));
    let lost = producer.send("t", Record::new("lost")).unwrap();
    // The topic goes before the linger thread appends the batch: that
    // append fails, on the linger thread, once the linger has passed.
    broker.admin().delete_topic("t").unwrap();
    clock.advance(1);
    let e = lost.wait().unwrap_err();
    assert!(matches!(e, Error::DeliveryFailed { .. }), "{e}");
    match producer.flush() {
        Err(Error::BatchesFailed { batches: 1, .. }) => {}
        other => panic!("flush must report the failed batch, got {other:?}"),
    }
    // Reported once: nothing failed since.
    producer.flush().unwrap();
}

/// Each batch goes out when its own linger has passed by the broker's
/// clock, not before, and not later than the linger thread's next look:
/// a batch started later waits for its own deadline.
#[test]
fn each_batch_goes_out_at_its_own_deadline() {
    let dir = common::tempdir();
    let (broker, clock) = clocked_broker(dir.path());
    broker
        .admin()
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = broker.producer(ProducerConfig::default().linger(Duration::from_millis(10)));
    let first = producer.send_to("t", 0, Record::new("first")).unwrap();
    clock.advance(6);
    let second = producer.send_to("t", 1, Record::new("second")).unwrap();
    // Neither deadline has passed: neither batch can have gone out.
    assert!(!first.is_done() && !second.is_done());
    clock.advance(4); // the first batch's deadline
    assert_eq!(first.wait_timeout(GENEROUS).unwrap().unwrap().offset, 0);
    assert!(
        !second.is_done(),
        "the second batch lingers 10 ms of its own"
    );
    clock.advance(6); // the second's
    assert_eq!(second.wait_timeout(GENEROUS).unwrap().unwrap().offset, 0);
    producer.flush().unwrap();
}

#[test]
fn send_fails_only_for_its_own_record() {
    let dir = common::tempdir();
    let broker = common::broker_with_topic(dir.path(), "t", TopicConfig::default());
    let producer = broker.producer(ProducerConfig::default().linger(NEVER).batch_size(1000));
    let big = producer.send("t", value(550)).unwrap();
    // The topic's limit drops below the buffered batch: appending it fails.
    let config = broker.topic("t").unwrap().config().max_message_bytes(300);
    broker.admin().alter_config("t", config).unwrap();
    // This record fits the new limit; it closes the full batch before it,
    // whose failure is not this record's.
    let small = producer.send("t", value(100)).unwrap();
    let e = big.wait_timeout(GENEROUS).unwrap_err();
    assert!(matches!(
        &e,
        Error::DeliveryFailed { cause, topic, partition: 0 }
            if matches!(**cause, Error::BatchTooLarge { .. }) && &**topic == "t"
    ));
    // The cause is matchable, reachable through `source()`, and decides
    // whether a resend may work.
    assert!(matches!(e.cause(), Some(Error::BatchTooLarge { .. })));
    assert!(matches!(e.root_cause(), Error::BatchTooLarge { .. }));
    let source = std::error::Error::source(&e).expect("a source");
    assert_eq!(source.to_string(), e.cause().unwrap().to_string());
    assert!(!e.is_retriable());
    assert!(
        !e.to_string().contains("exceeds"),
        "the cause is not repeated: {e}"
    );
    match producer.flush() {
        Err(Error::BatchesFailed { batches: 1, first }) => {
            assert!(matches!(*first, Error::BatchTooLarge { .. }), "{first}")
        }
        other => panic!("flush must report the failed batch, got {other:?}"),
    }

    let stored = small.wait_timeout(GENEROUS).unwrap().expect("resolved");
    assert_eq!(stored.offset, 0, "the small record was stored");
    // A record over the current limit is refused by `send` itself.
    assert!(matches!(
        producer.send("t", value(400)),
        Err(Error::BatchTooLarge { .. })
    ));
    producer.flush().unwrap();
}

#[test]
fn alter_config_applies_to_the_next_send() {
    let dir = common::tempdir();
    let (broker, clock) = clocked_broker(dir.path());
    let admin = broker.admin();
    admin
        .create_topic("t", TopicConfig::default().max_message_bytes(1000))
        .unwrap();
    let producer = broker.producer(ProducerConfig::default());
    let first = producer.send("t", Record::new("a").timestamp(5)).unwrap();
    producer.flush().unwrap();
    assert_eq!(first.wait().unwrap().timestamp, 5, "create time");

    let config = broker
        .topic("t")
        .unwrap()
        .config()
        .timestamp_type(TimestampType::LogAppendTime)
        .max_message_bytes(100_000);
    admin.alter_config("t", config).unwrap();
    clock.set(2_000_000);
    let second = producer.send("t", Record::new("b").timestamp(5)).unwrap();
    // Larger than the old limit, within the new one.
    let large = producer.send("t", value(50_000)).unwrap();
    producer.flush().unwrap();
    let meta = second.wait().unwrap();
    assert_eq!(meta.timestamp, 2_000_000, "the log's append time");
    assert_eq!(large.wait().unwrap().offset, 2);

    let mut consumer =
        broker.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    consumer.assign([("t", 0)]).unwrap();
    let records = consumer.poll(GENEROUS).unwrap();
    assert_eq!(records[1].timestamp, meta.timestamp, "as stored");
    broker.close().unwrap();
}

/// Senders, flushes and a topic deleted and created again, all at once:
/// every delivery resolves (stored, or failed because its topic went).
#[test]
fn every_delivery_resolves_whatever_the_interleaving() {
    for round in 0..20 {
        let dir = common::tempdir();
        let broker =
            common::broker_with_topic(dir.path(), "t", TopicConfig::default().partitions(2));
        let linger = if round % 2 == 0 {
            NEVER
        } else {
            Duration::from_millis(1)
        };
        let producer = broker.producer(ProducerConfig::default().linger(linger).batch_size(512));
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..3)
            .map(|s| {
                let (producer, stop) = (producer.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut deliveries = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) || i < 200 {
                        let r = Record::new(format!("{s}-{i}")).key(format!("k{i}"));
                        match producer.send("t", r) {
                            Ok(d) => deliveries.push(d),
                            Err(Error::UnknownTopic { .. }) => {}
                            Err(e) => panic!("unexpected send error: {e}"),
                        }
                        i += 1;
                    }
                    deliveries
                })
            })
            .collect();
        let flusher = {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = producer.flush();
                }
            })
        };
        let admin = broker.admin();
        for _ in 0..10 {
            admin.delete_topic("t").unwrap();
            admin
                .create_topic("t", TopicConfig::default().partitions(2))
                .unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        flusher.join().unwrap();
        let deliveries: Vec<_> = senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let _ = producer.close();
        for d in &deliveries {
            match d.wait_timeout(GENEROUS) {
                Ok(Some(meta)) => assert_eq!(&*meta.topic, "t"),
                Ok(None) => panic!("round {round}: a delivery never resolved"),
                Err(Error::DeliveryFailed { .. }) => {}
                Err(e) => panic!("round {round}: unexpected delivery error {e}"),
            }
        }
        broker.close().unwrap();
    }
}

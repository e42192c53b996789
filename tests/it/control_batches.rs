//! Control batches (transaction markers, attributes bit 5) are never
//! delivered as records: consumers, `Batches::records` and
//! `Batches::records_ref` skip them and move past them, while the batch
//! view still shows them. Fixtures are kafka-python's bytes
//! (`tests/fixtures/kafka_python/txn_*.bin`).

use embedlog::{
    Broker, ConsumerConfig, Durability, Log, LogConfig, OffsetReset, ReadLimit, Record, TopicConfig,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fixture(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka_python");
    std::fs::read(dir.join(format!("{name}.bin"))).unwrap()
}

/// Offsets 0–1: a transaction's records; 2: its COMMIT marker; 3: a plain
/// record; 4: an ABORT marker. Returns the log's end offset.
fn write_transaction(dir: &Path) -> u64 {
    let log = Log::open(dir, LogConfig::default()).unwrap();
    for name in ["txn_data", "txn_commit"] {
        log.append_batch(&mut fixture(name), Durability::Buffered)
            .unwrap();
    }
    log.append(&[Record::new("plain").key("p")]).unwrap();
    log.append_batch(&mut fixture("txn_abort"), Durability::Buffered)
        .unwrap();
    let end = log.end_offset();
    log.close().unwrap();
    end
}

#[test]
fn record_iterators_skip_markers_and_batches_show_them() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(write_transaction(dir.path()), 5);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let batches = log.read(0, ReadLimit::bytes(1 << 20)).unwrap();
    let owned: Vec<u64> = batches.records().map(|r| r.unwrap().offset).collect();
    let borrowed: Vec<u64> = batches.records_ref().map(|r| r.unwrap().offset).collect();
    assert_eq!(owned, [0, 1, 3]);
    assert_eq!(borrowed, [0, 1, 3]);
    let control: Vec<(u64, bool)> = batches
        .iter()
        .map(|b| {
            let b = b.unwrap();
            (b.base_offset(), b.header().is_control())
        })
        .collect();
    assert_eq!(
        control,
        [(0, false), (2, true), (3, false), (4, true)],
        "the batch view keeps the markers"
    );
    // Verification decodes every record, markers included.
    assert_eq!(log.verify().unwrap().records, 5);
    // A read that starts on a marker yields nothing before the next data.
    let from_marker = log.read(2, ReadLimit::bytes(1 << 20)).unwrap();
    let offsets: Vec<u64> = from_marker.records().map(|r| r.unwrap().offset).collect();
    assert_eq!(offsets, [3]);
}

fn broker_with_transaction() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    broker
        .admin()
        .create_topic("txn", TopicConfig::default())
        .unwrap();
    broker.close().unwrap();
    write_transaction(&dir.path().join("topics/txn/0"));
    let broker = Broker::open(dir.path()).unwrap();
    (dir, broker)
}

#[test]
fn consumers_never_deliver_markers() {
    let (_dir, broker) = broker_with_transaction();
    let config = ConsumerConfig::default().offset_reset(OffsetReset::Earliest);
    let mut consumer = broker.consumer(config.clone());
    consumer.assign([("txn", 0)]).unwrap();
    let records = consumer.poll(Duration::from_secs(5)).unwrap();
    let got: Vec<(u64, Option<&[u8]>)> = records.iter().map(|r| (r.offset, r.value())).collect();
    assert_eq!(
        got,
        [
            (0, Some(&b"in-txn-1"[..])),
            (1, Some(&b"in-txn-2"[..])),
            (3, Some(&b"plain"[..]))
        ]
    );
    // The position moved past the trailing ABORT marker: nothing is left.
    assert_eq!(consumer.position(("txn", 0)).unwrap(), 5);
    assert!(consumer.poll(Duration::ZERO).unwrap().is_empty());

    // One record per poll: the markers never come out on their own.
    let mut one = broker.consumer(config.clone().max_poll_records(1));
    one.assign([("txn", 0)]).unwrap();
    let mut offsets = Vec::new();
    for _ in 0..5 {
        offsets.extend(one.poll(Duration::ZERO).unwrap().iter().map(|r| r.offset));
    }
    assert_eq!(offsets, [0, 1, 3]);

    // The batch API: the same records through records_ref.
    let mut batched = broker.consumer(config);
    batched.assign([("txn", 0)]).unwrap();
    let mut offsets = Vec::new();
    for (_, batches) in batched.poll_batches(Duration::from_secs(5)).unwrap() {
        offsets.extend(batches.records_ref().map(|r| r.unwrap().offset));
    }
    assert_eq!(offsets, [0, 1, 3]);
    assert_eq!(batched.position(("txn", 0)).unwrap(), 5);
    broker.close().unwrap();
}

//! Exactly-once: a read-committed consumer sees exactly the committed
//! transactions, each all-or-nothing across its partitions, in order;
//! offsets sent in a transaction are committed iff it commits; a fenced
//! producer makes nothing visible; an idempotent log stores a retried batch
//! once, refuses a gap and an old epoch, across restarts and crashes.

use embedlog::{
    BatchBuilder, Broker, ConsumerConfig, Durability, Error, IsolationLevel, Log, LogConfig,
    ManualClock, OffsetAndMetadata, OffsetReset, OffsetSpec, ProducerConfig, ReadLimit, Record,
    TopicConfig, TopicPartition, TransactionState,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn open(dir: &Path) -> Broker {
    let b = Broker::open(dir).unwrap();
    match b
        .admin()
        .create_topic("t", TopicConfig::default().partitions(3))
    {
        Ok(_) | Err(Error::TopicExists { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    b
}

fn txn_producer(b: &Broker, id: &str) -> embedlog::Producer {
    // A long linger: batches go out on the commit's flush, as in a
    // producer that batches a whole transaction.
    b.producer(
        ProducerConfig::default()
            .transactional_id(id)
            .linger(Duration::from_secs(3600)),
    )
}

/// Every value a consumer at `level` reads from topic `t`, per partition.
fn read(b: &Broker, level: IsolationLevel) -> BTreeMap<u32, Vec<String>> {
    let mut c = b.consumer(
        ConsumerConfig::default()
            .isolation_level(level)
            .offset_reset(OffsetReset::Earliest),
    );
    c.assign(&[("t", 0), ("t", 1), ("t", 2)]).unwrap();
    let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for r in c.iter_timeout(Duration::from_millis(20)) {
        let r = r.unwrap();
        out.entry(r.partition)
            .or_default()
            .push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
    }
    out
}

/// The same through `poll_batches` + `records_ref` (the zero-copy path).
fn read_batches(b: &Broker, level: IsolationLevel) -> BTreeMap<u32, Vec<String>> {
    let mut c = b.consumer(
        ConsumerConfig::default()
            .isolation_level(level)
            .offset_reset(OffsetReset::Earliest),
    );
    c.assign(&[("t", 0), ("t", 1), ("t", 2)]).unwrap();
    let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    loop {
        let got = c.poll_batches(Duration::from_millis(20)).unwrap();
        if got.is_empty() {
            return out;
        }
        for (tp, batches) in got {
            for r in batches.records_ref() {
                let r = r.unwrap();
                out.entry(tp.partition)
                    .or_default()
                    .push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
    }
}

fn values(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn read_committed_sees_committed_transactions_whole_and_never_aborted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let p = txn_producer(&b, "tx");
    p.init_transactions().unwrap();
    let plain = b.producer(ProducerConfig::default().linger(Duration::ZERO));

    p.begin_transaction().unwrap();
    p.send_to("t", 0, Record::new("c1")).unwrap();
    p.send_to("t", 1, Record::new("c2")).unwrap();
    p.commit_transaction().unwrap();

    p.begin_transaction().unwrap();
    p.send_to("t", 0, Record::new("a1")).unwrap();
    p.send_to("t", 1, Record::new("a2")).unwrap();
    p.flush().unwrap(); // appended, then aborted
    p.send_to("t", 2, Record::new("a3")).unwrap(); // never appended
    plain.send_to("t", 0, Record::new("plain")).unwrap();
    p.abort_transaction().unwrap();

    // An open transaction holds the last stable offset.
    p.begin_transaction().unwrap();
    p.send_to("t", 0, Record::new("open")).unwrap();
    p.flush().unwrap();
    plain.send_to("t", 0, Record::new("after-open")).unwrap();
    let t0 = b.partition("t", 0).unwrap();
    let lso = b
        .admin()
        .list_offsets("t", 0, OffsetSpec::LastStable)
        .unwrap()
        .unwrap();
    assert!(lso < t0.end_offset());

    let committed = read(&b, IsolationLevel::ReadCommitted);
    assert_eq!(committed[&0], values(&["c1", "plain"]));
    assert_eq!(committed[&1], values(&["c2"]));
    assert!(!committed.contains_key(&2));
    assert_eq!(read_batches(&b, IsolationLevel::ReadCommitted), committed);
    let all = read(&b, IsolationLevel::ReadUncommitted);
    assert_eq!(
        all[&0],
        values(&["c1", "a1", "plain", "open", "after-open"])
    );

    p.commit_transaction().unwrap();
    let committed = read(&b, IsolationLevel::ReadCommitted);
    assert_eq!(
        committed[&0],
        values(&["c1", "plain", "open", "after-open"])
    );
    assert_eq!(read_batches(&b, IsolationLevel::ReadCommitted), committed);
    assert_eq!(
        b.admin()
            .list_offsets("t", 0, OffsetSpec::LastStable)
            .unwrap(),
        Some(t0.end_offset())
    );
    // The aborted transaction survives a restart (its `.txnindex`).
    drop((p, plain, t0));
    b.close().unwrap();
    let b = open(dir.path());
    assert_eq!(read(&b, IsolationLevel::ReadCommitted), committed);
}

#[test]
fn records_of_an_aborted_transaction_fail_their_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let p = txn_producer(&b, "tx");
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    let d = p.send_to("t", 0, Record::new("x")).unwrap();
    p.abort_transaction().unwrap();
    assert!(matches!(
        d.wait(),
        Err(Error::DeliveryFailed { cause: e, .. }) if matches!(*e, Error::TransactionAborted { .. })
    ));
    // Sends outside a transaction are refused.
    assert!(matches!(
        p.send_to("t", 0, Record::new("y")),
        Err(Error::InvalidTxnState(_))
    ));
}

#[test]
fn a_zombie_is_fenced_and_nothing_of_it_becomes_visible() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let old = txn_producer(&b, "same-id");
    old.init_transactions().unwrap();
    old.begin_transaction().unwrap();
    old.send_to("t", 0, Record::new("zombie-1")).unwrap();
    old.flush().unwrap();

    let new = txn_producer(&b, "same-id");
    new.init_transactions().unwrap();
    // The old one's open transaction was aborted with the new epoch.
    let d = b.admin().describe_transaction("same-id").unwrap();
    assert_eq!(d.state, TransactionState::Empty);
    assert_eq!(d.producer_epoch, 1);

    // Its sends: to a partition it had (the log has the new epoch) and
    // to a new one (the coordinator refuses to add it).
    let late = old.send_to("t", 0, Record::new("zombie-2")).unwrap();
    let flushed = old.flush();
    assert!(flushed.is_err());
    assert!(matches!(
        late.wait(),
        Err(Error::DeliveryFailed { cause: e, .. }) if matches!(*e, Error::ProducerFenced { .. })
    ));
    assert!(matches!(
        old.send_to("t", 1, Record::new("zombie-3")),
        Err(Error::ProducerFenced { .. })
    ));
    assert!(matches!(
        old.commit_transaction(),
        Err(Error::ProducerFenced { .. })
    ));

    new.begin_transaction().unwrap();
    new.send_to("t", 0, Record::new("new")).unwrap();
    new.commit_transaction().unwrap();
    let seen = read(&b, IsolationLevel::ReadCommitted);
    assert_eq!(seen[&0], values(&["new"]));
    assert!(!seen.contains_key(&1));
}

#[test]
fn offsets_sent_in_a_transaction_are_committed_iff_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let p = txn_producer(&b, "tx");
    p.init_transactions().unwrap();
    let c = b.consumer(ConsumerConfig::default().group("g"));
    let meta = c.group_metadata().unwrap();
    let tp = TopicPartition::new("t", 2);

    p.begin_transaction().unwrap();
    p.send_to("t", 0, Record::new("out")).unwrap();
    p.send_offsets_to_transaction([(tp.clone(), OffsetAndMetadata::new(7))], &meta)
        .unwrap();
    p.abort_transaction().unwrap();
    assert_eq!(c.committed(tp.clone()).unwrap(), None);

    p.begin_transaction().unwrap();
    p.send_offsets_to_transaction([(tp.clone(), OffsetAndMetadata::new(9))], &meta)
        .unwrap();
    p.commit_transaction().unwrap();
    assert_eq!(c.committed(tp.clone()).unwrap().unwrap().offset, 9);
    drop((p, c));
    b.close().unwrap();
    let b = open(dir.path());
    let c = b.consumer(ConsumerConfig::default().group("g"));
    assert_eq!(c.committed(tp).unwrap().unwrap().offset, 9);
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = Broker::builder(dir.path())
        .clock(clock.clone())
        .transaction_check_interval(Duration::from_secs(3600))
        .open()
        .unwrap();
    b.admin()
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let p = b.producer(
        ProducerConfig::default()
            .transactional_id("slow")
            .linger(Duration::ZERO)
            .transaction_timeout(Duration::from_secs(10)),
    );
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send_to("t", 0, Record::new("late")).unwrap();
    assert_eq!(b.admin().abort_timed_out_transactions().unwrap(), 0);
    clock.advance(11_000);
    assert_eq!(b.admin().abort_timed_out_transactions().unwrap(), 1);
    assert!(matches!(
        p.commit_transaction(),
        Err(Error::ProducerFenced { .. })
    ));
    let log = b.partition("t", 0).unwrap();
    assert_eq!(log.log().last_stable_offset(), log.end_offset());
    assert!(read(&b, IsolationLevel::ReadCommitted).is_empty());
}

#[test]
fn a_crash_before_the_commit_aborts_and_after_it_completes() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let p = txn_producer(&b, "tx");
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send_to("t", 0, Record::new("committed")).unwrap();
    p.commit_transaction().unwrap();
    p.begin_transaction().unwrap();
    p.send_to("t", 1, Record::new("open")).unwrap();
    p.flush().unwrap();
    drop(p);
    b.simulate_crash();

    let b = open(dir.path());
    // The open transaction was aborted on open: the stable offset moved.
    let t1 = b.partition("t", 1).unwrap();
    assert_eq!(t1.log().last_stable_offset(), t1.end_offset());
    let seen = read(&b, IsolationLevel::ReadCommitted);
    assert_eq!(seen[&0], values(&["committed"]));
    assert!(!seen.contains_key(&1));
    // The id goes on, with a new epoch.
    let p = txn_producer(&b, "tx");
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send_to("t", 1, Record::new("again")).unwrap();
    p.commit_transaction().unwrap();
    assert_eq!(
        read(&b, IsolationLevel::ReadCommitted)[&1],
        values(&["again"])
    );
}

fn idempotent_batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(pid, epoch, seq);
    for v in values {
        b.push(&Record::new(v.to_string()).timestamp(1));
    }
    b.finish().unwrap()
}

#[test]
fn a_retried_batch_is_stored_once_and_gaps_and_old_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let first = log
        .append_batch(
            &mut idempotent_batch(5, 0, 0, &["a", "b"]),
            Durability::Buffered,
        )
        .unwrap();
    let again = log
        .append_batch(
            &mut idempotent_batch(5, 0, 0, &["a", "b"]),
            Durability::Buffered,
        )
        .unwrap();
    assert_eq!((again.base_offset, again.last_offset), (0, 1));
    assert_eq!(first.base_offset, again.base_offset);
    assert_eq!(log.end_offset(), 2);
    let gap = log
        .append_batch(&mut idempotent_batch(5, 0, 5, &["c"]), Durability::Buffered)
        .unwrap_err();
    assert!(
        matches!(
            gap,
            Error::OutOfOrderSequence {
                expected: 2,
                got: 5,
                ..
            }
        ),
        "{gap}"
    );
    log.append_batch(&mut idempotent_batch(5, 1, 0, &["c"]), Durability::Buffered)
        .unwrap();
    let old = log
        .append_batch(&mut idempotent_batch(5, 0, 2, &["d"]), Durability::Buffered)
        .unwrap_err();
    assert!(matches!(
        old,
        Error::ProducerFenced {
            epoch: 0,
            current_epoch: 1,
            ..
        }
    ));
    assert_eq!(log.end_offset(), 3);

    // Across a clean restart (the snapshot) and a crash (the replay).
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let again = log
        .append_batch(&mut idempotent_batch(5, 1, 0, &["c"]), Durability::Buffered)
        .unwrap();
    assert_eq!(again.base_offset, 2);
    log.append_batch(&mut idempotent_batch(5, 1, 1, &["d"]), Durability::Buffered)
        .unwrap();
    // Durable, but no snapshot covers it: the crash's recovery replays it.
    log.flush().unwrap();
    log.simulate_crash();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let again = log
        .append_batch(&mut idempotent_batch(5, 1, 1, &["d"]), Durability::Buffered)
        .unwrap();
    assert_eq!(again.base_offset, 3);
    assert_eq!(log.end_offset(), 4);
    // (Records stamped 1970 make each open roll a segment by age.)
    let mut offsets = Vec::new();
    for batches in log.reader(0, ReadLimit::default()) {
        offsets.extend(batches.unwrap().records().map(|r| r.unwrap().offset));
    }
    assert_eq!(offsets, [0, 1, 2, 3]);
}

#[test]
fn producer_state_survives_rolls_and_a_crash_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = || LogConfig::default().segment_bytes(300);
    let log = Log::open(dir.path(), config()).unwrap();
    for seq in 0..20 {
        log.append_batch(
            &mut idempotent_batch(9, 0, seq, &["0123456789"]),
            Durability::Buffered,
        )
        .unwrap();
    }
    assert!(log.segment_count() > 3);
    log.simulate_crash();
    let log = Log::open(dir.path(), config()).unwrap();
    let again = log
        .append_batch(
            &mut idempotent_batch(9, 0, 19, &["0123456789"]),
            Durability::Buffered,
        )
        .unwrap();
    assert_eq!(again.base_offset, 19);
    assert!(matches!(
        log.append_batch(
            &mut idempotent_batch(9, 0, 21, &["x"]),
            Durability::Buffered
        ),
        Err(Error::OutOfOrderSequence { expected: 20, .. })
    ));
    // Only the newest snapshots are kept.
    let snapshots = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snapshot")
        })
        .count();
    assert!((1..=6).contains(&snapshots), "{snapshots} snapshots");
}

#[test]
fn an_idempotent_producer_numbers_its_batches() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let p = b.producer(ProducerConfig::default().linger(Duration::ZERO));
    for i in 0..3 {
        p.send_to("t", 0, Record::new(format!("{i}"))).unwrap();
    }
    let (pid, epoch) = p.producer_id().unwrap();
    let batches = b
        .partition("t", 0)
        .unwrap()
        .read(0, ReadLimit::default())
        .unwrap();
    let seqs: Vec<(i64, i16, i32)> = batches
        .iter()
        .map(|b| {
            let h = *b.unwrap().header();
            (h.producer_id, h.producer_epoch, h.base_sequence)
        })
        .collect();
    assert_eq!(seqs, [(pid, epoch, 0), (pid, epoch, 1), (pid, epoch, 2)]);
    // Producers get distinct ids, also after a restart.
    let q = b.producer(ProducerConfig::default().linger(Duration::ZERO));
    q.send_to("t", 0, Record::new("q")).unwrap();
    assert_ne!(q.producer_id().unwrap().0, pid);
    drop((p, q));
    b.close().unwrap();
    let b = open(dir.path());
    let r = b.producer(ProducerConfig::default().linger(Duration::ZERO));
    r.send_to("t", 0, Record::new("r")).unwrap();
    assert!(r.producer_id().unwrap().0 > pid + 1);
}

/// The model's open transaction: records per partition, offset sent.
type OpenTxn = (BTreeMap<u32, Vec<String>>, Option<u64>);

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Begin,
    Send(u32),
    SendOffsets(u64),
    Commit,
    Abort,
    /// The producer is dropped (its open transaction aborted by close) and
    /// a new one with the same id takes over.
    RestartProducer,
    /// The broker stops as a killed process does, and opens again.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Begin),
        6 => (0u32..3).prop_map(Op::Send),
        1 => (0u64..1000).prop_map(Op::SendOffsets),
        2 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::RestartProducer),
        1 => Just(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("EMBEDLOG_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        .. ProptestConfig::default()
    })]
    /// Random transactions, producer restarts and crashes against a model:
    /// committed records per partition, in order; the group's offset.
    #[test]
    fn transactions_match_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut broker = Some(open(dir.path()));
        let mut producer = None;
        let mut n = 0u64;
        // The model: what is committed, and the open transaction's part.
        let mut committed: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        let mut open_txn: Option<OpenTxn> = None;
        let mut committed_offset: Option<u64> = None;
        let tp = TopicPartition::new("t", 2);
        for op in ops {
            let b = broker.as_ref().unwrap();
            let p = producer.get_or_insert_with(|| {
                let p = txn_producer(b, "model");
                p.init_transactions().unwrap();
                p
            });
            match op {
                Op::Begin => {
                    let r = p.begin_transaction();
                    prop_assert_eq!(r.is_ok(), open_txn.is_none(), "{:?}", r);
                    if r.is_ok() {
                        open_txn = Some((BTreeMap::new(), None));
                    }
                }
                Op::Send(part) => {
                    n += 1;
                    let v = format!("v{n}");
                    let r = p.send_to("t", part, Record::new(v.clone()));
                    prop_assert_eq!(r.is_ok(), open_txn.is_some(), "{:?}", r);
                    if let Some((t, _)) = &mut open_txn {
                        t.entry(part).or_default().push(v);
                    }
                }
                Op::SendOffsets(o) => {
                    let meta = embedlog::ConsumerGroupMetadata {
                        group_id: "g".into(),
                        member_id: None,
                        generation: None,
                    };
                    let r = p.send_offsets_to_transaction([(tp.clone(), OffsetAndMetadata::new(o))], &meta);
                    prop_assert_eq!(r.is_ok(), open_txn.is_some(), "{:?}", r);
                    if let Some((_, off)) = &mut open_txn {
                        *off = Some(o);
                    }
                }
                Op::Commit => {
                    let r = p.commit_transaction();
                    prop_assert_eq!(r.is_ok(), open_txn.is_some(), "{:?}", r);
                    if let Some((t, off)) = open_txn.take() {
                        for (part, vs) in t {
                            committed.entry(part).or_default().extend(vs);
                        }
                        if off.is_some() {
                            committed_offset = off;
                        }
                    }
                }
                Op::Abort => {
                    let r = p.abort_transaction();
                    prop_assert_eq!(r.is_ok(), open_txn.is_some(), "{:?}", r);
                    open_txn = None;
                }
                Op::RestartProducer => {
                    producer = None;
                    open_txn = None;
                }
                Op::Crash => {
                    // Half the time the open transaction's records are
                    // appended before the crash: they must be aborted.
                    if n.is_multiple_of(2) {
                        let _ = p.flush();
                    }
                    producer = None;
                    open_txn = None;
                    broker.take().unwrap().simulate_crash();
                    broker = Some(open(dir.path()));
                }
            }
            let b = broker.as_ref().unwrap();
            let seen = read(b, IsolationLevel::ReadCommitted);
            let expected: BTreeMap<u32, Vec<String>> =
                committed.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k, v.clone())).collect();
            prop_assert_eq!(&seen, &expected);
            let c = b.consumer(ConsumerConfig::default().group("g"));
            prop_assert_eq!(c.committed(tp.clone()).unwrap().map(|o| o.offset), committed_offset);
        }
        // And after a clean restart.
        drop(producer);
        let b = broker.take().unwrap();
        b.close().unwrap();
        let b = open(dir.path());
        let expected: BTreeMap<u32, Vec<String>> =
            committed.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        prop_assert_eq!(read(&b, IsolationLevel::ReadCommitted), expected.clone());
        prop_assert_eq!(read_batches(&b, IsolationLevel::ReadCommitted), expected);
    }
}

/// Compaction never lets an aborted record supersede a committed one, and
/// never cleans past an open transaction.
#[test]
fn compaction_drops_aborted_records_and_keeps_the_committed_value() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::open(dir.path()).unwrap();
    b.admin()
        .create_topic(
            "c",
            TopicConfig::default().cleanup_policy(embedlog::CleanupPolicy::Compact),
        )
        .unwrap();
    let p = txn_producer(&b, "tx");
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send_to("c", 0, Record::new("committed").key("k"))
        .unwrap();
    p.commit_transaction().unwrap();
    p.begin_transaction().unwrap();
    p.send_to("c", 0, Record::new("aborted").key("k")).unwrap();
    p.flush().unwrap();
    p.abort_transaction().unwrap();
    let part = b.partition("c", 0).unwrap();
    part.roll().unwrap();
    b.admin().compact_now("c").unwrap();
    let read = |b: &Broker| {
        let mut c = b.consumer(
            ConsumerConfig::default()
                .isolation_level(IsolationLevel::ReadCommitted)
                .offset_reset(OffsetReset::Earliest),
        );
        c.assign(&[("c", 0)]).unwrap();
        c.iter_timeout(Duration::from_millis(20))
            .map(|r| String::from_utf8(r.unwrap().value().unwrap().to_vec()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(read(&b), ["committed"]);
    // The aborted record is gone from the log itself.
    let mut c = b.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest));
    c.assign(&[("c", 0)]).unwrap();
    let all: Vec<_> = c
        .iter_timeout(Duration::from_millis(20))
        .map(|r| r.unwrap().value_bytes().unwrap())
        .collect();
    assert_eq!(all, ["committed"]);
    drop((p, c, part));
    b.close().unwrap();
    let b = Broker::open(dir.path()).unwrap();
    assert_eq!(read(&b), ["committed"]);
}

fn fixture(name: &str) -> Vec<u8> {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka_python");
    std::fs::read(dir.join(format!("{name}.bin"))).unwrap()
}

/// A follower's truncation and the restarts around it keep the aborted
/// transactions below the truncation point (their `.txnindex` entries).
#[test]
fn truncation_and_restarts_keep_aborted_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    // kafka-python's batches: a transaction of producer 4243 (offsets 0,
    // 1), then its ABORT marker at 2.
    log.append_batch(&mut fixture("txn_data"), Durability::Buffered)
        .unwrap();
    log.append(&[Record::new("plain")]).unwrap();
    log.append_batch(&mut fixture("txn_abort"), Durability::Buffered)
        .unwrap();
    let aborted = log.aborted_transactions(0, u64::MAX);
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].first_offset, aborted[0].last_offset), (0, 3));
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for i in 0..10 {
        log.append(&[Record::new(format!("{i}"))]).unwrap();
    }
    log.truncate_to(8).unwrap();
    assert_eq!(log.aborted_transactions(0, u64::MAX), aborted);
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.aborted_transactions(0, u64::MAX), aborted);
    // Truncating below the marker forgets it, on disk too.
    log.truncate_to(3).unwrap();
    assert!(log.aborted_transactions(0, u64::MAX).is_empty());
    assert_eq!(log.last_stable_offset(), 0, "the transaction is open again");
    log.close().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert!(log.aborted_transactions(0, u64::MAX).is_empty());
    assert_eq!(log.last_stable_offset(), 0);
}

/// A read-committed consumer that resets to "latest" while a transaction
/// is open starts at the last stable offset, so it reads that transaction
/// once it commits.
#[test]
fn read_committed_latest_is_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let p = txn_producer(&b, "tx");
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send_to("t", 0, Record::new("pending")).unwrap();
    p.flush().unwrap();
    let mut c = b.consumer(
        ConsumerConfig::default()
            .isolation_level(IsolationLevel::ReadCommitted)
            .offset_reset(OffsetReset::Latest),
    );
    c.assign(&[("t", 0)]).unwrap();
    assert_eq!(c.position(("t", 0)).unwrap(), 0);
    p.commit_transaction().unwrap();
    let got = c.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value(), Some(&b"pending"[..]));
}

/// Offsets a member added are checked again at commit: a member that left
/// the group meanwhile cannot commit them.
#[test]
fn a_commit_with_offsets_of_a_member_that_left_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let p = txn_producer(&b, "tx");
    p.init_transactions().unwrap();
    let mut c = b.consumer(ConsumerConfig::default().group("g"));
    c.subscribe(&["t"]).unwrap();
    c.poll(Duration::ZERO).unwrap();
    let meta = c.group_metadata().unwrap();
    assert!(meta.member_id.is_some());
    p.begin_transaction().unwrap();
    p.send_offsets_to_transaction(
        [(TopicPartition::new("t", 0), OffsetAndMetadata::new(1))],
        &meta,
    )
    .unwrap();
    c.close().unwrap();
    assert!(matches!(p.commit_transaction(), Err(Error::Fenced { .. })));
    p.abort_transaction().unwrap();
    let c = b.consumer(ConsumerConfig::default().group("g"));
    assert_eq!(c.committed(("t", 0)).unwrap(), None);
}

/// An idle transactional id is forgotten after
/// `transactional_id_expiration` (durably: not back after a restart); a
/// new producer with it starts afresh.
#[test]
fn idle_transactional_ids_expire() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let open_at = |clock: Arc<ManualClock>| {
        Broker::builder(dir.path())
            .clock(clock)
            .transaction_check_interval(Duration::from_secs(3600))
            .transactional_id_expiration(Duration::from_secs(60))
            .open()
            .unwrap()
    };
    let b = open_at(clock.clone());
    b.admin().create_topic("t", TopicConfig::default()).unwrap();
    let p = txn_producer(&b, "idle");
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send_to("t", 0, Record::new("x")).unwrap();
    p.commit_transaction().unwrap();
    clock.advance(30_000);
    b.admin().abort_timed_out_transactions().unwrap();
    assert!(b.admin().describe_transaction("idle").is_ok());
    clock.advance(31_000);
    b.admin().abort_timed_out_transactions().unwrap();
    assert!(b.admin().describe_transaction("idle").is_err());
    p.begin_transaction().unwrap();
    assert!(matches!(
        p.send_to("t", 0, Record::new("late")),
        Err(Error::InvalidTxnState(m)) if m.contains("unknown to the broker")
    ));
    drop(p);
    b.close().unwrap();
    let b = open_at(clock);
    assert!(b.admin().list_transactions().is_empty());
    let q = txn_producer(&b, "idle");
    q.init_transactions().unwrap();
    assert_eq!(
        b.admin()
            .describe_transaction("idle")
            .unwrap()
            .producer_epoch,
        0
    );
}

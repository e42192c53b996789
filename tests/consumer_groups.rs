//! Consumer groups: balanced, disjoint and complete assignments; sticky
//! rebalances that move the minimum; no record delivered twice in a steady
//! state; commits that survive a broker restart; exact lag; the group
//! admin; group timers (auto-commit, `max_poll_interval`) that follow the
//! broker's clock; and a property test of at-least-once delivery under
//! random membership changes and restarts.

mod common;
use embedlog::{
    Admin, Assignor, Broker, Consumer, ConsumerConfig, CooperativeStickyAssignor, Error,
    GroupState, ManualClock, OFFSETS_TOPIC, OffsetAndMetadata, OffsetReset, OffsetSpec,
    ProducerConfig, RangeAssignor, RebalanceListener, Record, RoundRobinAssignor, TopicConfig,
    TopicPartition,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn config(group: &str) -> ConsumerConfig {
    ConsumerConfig::default()
        .group(group)
        .offset_reset(OffsetReset::Earliest)
}

fn broker(dir: &std::path::Path) -> Broker {
    Broker::builder(dir).cleaner(false).open().unwrap()
}

/// A broker whose timers follow `clock`.
fn clocked_broker(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Broker {
    Broker::builder(dir)
        .clock(clock.clone())
        .cleaner(false)
        .open()
        .unwrap()
}

/// Polls `c` (without waiting) until `done` holds, at most 20 times.
fn poll_until(c: &mut Consumer, what: &str, done: impl Fn(&Consumer) -> bool) {
    for _ in 0..20 {
        if done(c) {
            return;
        }
        c.poll(Duration::ZERO).unwrap();
    }
    assert!(done(c), "{what}");
}

/// Polls every member (without waiting) until the group is stable;
/// returns what they received.
fn settle(admin: &Admin, group: &str, members: &mut [Consumer]) -> Vec<(usize, u32, u64)> {
    let mut got = Vec::new();
    for _ in 0..20 {
        for i in 0..members.len() {
            for r in members[i].poll(Duration::ZERO).unwrap() {
                got.push((i, r.partition, r.offset));
            }
            assert_disjoint(members);
        }
        let d = admin.describe_group(group).unwrap();
        if d.state == GroupState::Stable {
            return got;
        }
    }
    panic!("group {group} did not settle");
}

fn assignments(members: &[Consumer]) -> Vec<BTreeSet<TopicPartition>> {
    members
        .iter()
        .map(|c| c.assignment().into_iter().collect())
        .collect()
}

/// No partition is assigned to two members at any moment.
fn assert_disjoint(members: &[Consumer]) {
    let mut owners = BTreeMap::new();
    for (i, c) in members.iter().enumerate() {
        for tp in c.assignment() {
            if let Some(j) = owners.insert(tp.clone(), i) {
                panic!("{tp} is assigned to members {j} and {i} at once");
            }
        }
    }
}

fn check_balanced(sets: &[BTreeSet<TopicPartition>], topic: &str, partitions: u32) {
    let all: Vec<_> = sets.iter().flatten().cloned().collect();
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), unique.len(), "disjoint: {sets:?}");
    let want: BTreeSet<_> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    assert_eq!(unique, want, "complete");
    let sizes: Vec<usize> = sets.iter().map(|s| s.len()).collect();
    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(max - min <= 1, "balanced: {sizes:?}");
}

#[test]
fn assignments_are_balanced_disjoint_and_complete() {
    let assignors: [Arc<dyn Assignor>; 3] = [
        Arc::new(CooperativeStickyAssignor),
        Arc::new(RangeAssignor),
        Arc::new(RoundRobinAssignor),
    ];
    for assignor in assignors {
        for (n, p) in [(1, 1), (1, 5), (2, 4), (3, 8), (4, 4), (5, 2), (6, 1)] {
            let dir = common::tempdir();
            let broker = broker(dir.path());
            broker
                .admin()
                .create_topic("t", TopicConfig::default().partitions(p))
                .unwrap();
            let mut members: Vec<Consumer> = (0..n)
                .map(|_| {
                    let mut c = broker.consumer(config("g").assignor(assignor.clone()));
                    c.subscribe(&["t"]).unwrap();
                    c
                })
                .collect();
            settle(&broker.admin(), "g", &mut members);
            let sets = assignments(&members);
            check_balanced(&sets, "t", p);
            let d = broker.admin().describe_group("g").unwrap();
            assert_eq!(d.members.len(), n);
            assert_eq!(d.assignor.as_deref(), Some(assignor.name()));
        }
    }
}

#[test]
fn the_sticky_assignor_moves_the_minimum() {
    let dir = common::tempdir();
    let broker = broker(dir.path());
    let admin = broker.admin();
    admin
        .create_topic("t", TopicConfig::default().partitions(12))
        .unwrap();
    let mut members: Vec<Consumer> = Vec::new();
    let mut before = Vec::new();
    for n in 1..=5usize {
        let mut c = broker.consumer(config("g"));
        c.subscribe(&["t"]).unwrap();
        members.push(c);
        settle(&admin, "g", &mut members);
        let after = assignments(&members);
        check_balanced(&after, "t", 12);
        // Old members only lost partitions (nothing moved between them),
        // and the newcomer got exactly floor(12 / n) of them.
        for (i, old) in before.iter().enumerate() {
            assert!(after[i].is_subset(old), "member {i} gained on a join");
        }
        if n > 1 {
            assert_eq!(after[n - 1].len(), 12 / n, "{after:?}");
        }
        before = after;
    }
    // A member leaves: only its partitions move.
    let gone = members.remove(2);
    let lost = before.remove(2);
    gone.close().unwrap();
    settle(&admin, "g", &mut members);
    let after = assignments(&members);
    check_balanced(&after, "t", 12);
    for (i, old) in before.iter().enumerate() {
        assert!(old.is_subset(&after[i]), "member {i} lost on a leave");
        for tp in after[i].difference(old) {
            assert!(lost.contains(tp), "{tp} moved between remaining members");
        }
    }
    // Dropping a consumer leaves too.
    drop(members.pop());
    settle(&admin, "g", &mut members);
    check_balanced(&assignments(&members), "t", 12);
    assert_eq!(admin.describe_group("g").unwrap().members.len(), 3);
}

#[test]
fn new_partitions_and_pattern_topics_are_rebalanced_in() {
    let dir = common::tempdir();
    let broker = broker(dir.path());
    let admin = broker.admin();
    admin
        .create_topic("orders-eu", TopicConfig::default().partitions(2))
        .unwrap();
    let mut members: Vec<Consumer> = (0..2)
        .map(|_| {
            let mut c = broker.consumer(config("g"));
            c.subscribe_pattern("orders-*").unwrap();
            c
        })
        .collect();
    settle(&admin, "g", &mut members);
    admin.add_partitions("orders-eu", 4).unwrap();
    admin
        .create_topic("orders-us", TopicConfig::default().partitions(2))
        .unwrap();
    admin.create_topic("other", TopicConfig::default()).unwrap();
    settle(&admin, "g", &mut members);
    let sets = assignments(&members);
    let all: BTreeSet<_> = sets.iter().flatten().cloned().collect();
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(all.iter().all(|tp| tp.topic.starts_with("orders-")));
    assert_eq!(sets[0].len(), 3);
}

/// Records the listener calls, and commits on revoke.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl RebalanceListener for Recorder {
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        consumer.commit_partitions(partitions).unwrap();
        self.0
            .lock()
            .unwrap()
            .push(format!("revoked {}", partitions.len()));
    }
    fn on_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("assigned {}", partitions.len()));
    }
}

/// In a steady state no record reaches two members; when a partition moves,
/// its new owner resumes exactly where the old one committed (here in the
/// listener), so nothing is delivered twice then either.
#[test]
fn no_record_is_delivered_twice_between_commits() {
    let dir = common::tempdir();
    let broker = broker(dir.path());
    let admin = broker.admin();
    admin
        .create_topic("t", TopicConfig::default().partitions(6))
        .unwrap();
    let producer = broker.producer(ProducerConfig::default());
    let rec = Recorder::default();
    let mut members: Vec<Consumer> = (0..3)
        .map(|_| {
            let mut c = broker.consumer(config("g"));
            c.set_rebalance_listener(rec.clone());
            c.subscribe(&["t"]).unwrap();
            c
        })
        .collect();
    settle(&admin, "g", &mut members);
    let mut seen: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    let mut sent = 0u64;
    for round in 0..30 {
        for _ in 0..20 {
            producer
                .send("t", Record::new(format!("{sent}")).key(format!("k{sent}")))
                .unwrap();
            sent += 1;
        }
        producer.flush().unwrap();
        if round == 15 {
            // A fourth member joins mid-stream.
            let mut c = broker.consumer(config("g"));
            c.set_rebalance_listener(rec.clone());
            c.subscribe(&["t"]).unwrap();
            members.push(c);
        }
        for i in 0..members.len() {
            for r in members[i].poll(Duration::ZERO).unwrap() {
                *seen.entry((r.partition, r.offset)).or_default() += 1;
            }
            assert_disjoint(&members);
            members[i].commit().unwrap();
        }
    }
    for r in settle(&admin, "g", &mut members) {
        *seen.entry((r.1, r.2)).or_default() += 1;
    }
    for c in members.iter_mut() {
        loop {
            let got = c.poll(Duration::ZERO).unwrap();
            if got.is_empty() {
                break;
            }
            for r in got {
                *seen.entry((r.partition, r.offset)).or_default() += 1;
            }
        }
    }
    assert_eq!(seen.len() as u64, sent, "every record delivered");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    let calls = rec.0.lock().unwrap().clone();
    assert!(calls.iter().any(|c| c.starts_with("revoked")), "{calls:?}");
    assert!(calls.iter().any(|c| c.starts_with("assigned")), "{calls:?}");
}

#[test]
fn a_group_resumes_at_its_commits_after_a_restart_and_lag_is_exact() {
    let dir = common::tempdir();
    {
        let broker = broker(dir.path());
        let t = broker
            .admin()
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        for p in 0..2 {
            for i in 0..10 {
                t.partition(p)
                    .unwrap()
                    .append(&[Record::new(format!("{i}"))])
                    .unwrap();
            }
        }
        let mut c = broker.consumer(config("g").max_poll_records(7));
        c.subscribe(&["t"]).unwrap();
        let got = c.poll(Duration::from_millis(100)).unwrap();
        assert_eq!(got.len(), 7);
        c.commit().unwrap();
        // Explicit commits with metadata.
        c.commit_offsets([(
            TopicPartition::new("t", 1),
            OffsetAndMetadata::new(4).with_metadata("checkpoint-9"),
        )])
        .unwrap();
        let d = broker.admin().describe_group("g").unwrap();
        let lag: BTreeMap<u32, (Option<u64>, Option<u64>)> = d
            .offsets
            .iter()
            .map(|o| {
                (
                    o.partition.partition,
                    (o.committed.as_ref().map(|c| c.offset), o.lag),
                )
            })
            .collect();
        let p0 = got.iter().filter(|r| r.partition == 0).count() as u64;
        let p1 = got.iter().filter(|r| r.partition == 1).count() as u64;
        assert_eq!(p0 + p1, 7);
        let want_p0 = (p0 > 0).then_some(p0);
        assert_eq!(lag[&1], (Some(4), Some(6)));
        if let Some(c0) = want_p0 {
            assert_eq!(lag[&0], (Some(c0), Some(10 - c0)));
        }
        c.close().unwrap();
        broker.close().unwrap();
    }
    let broker = broker(dir.path());
    let d = broker.admin().describe_group("g").unwrap();
    assert_eq!(d.state, GroupState::Empty);
    let committed: BTreeMap<u32, OffsetAndMetadata> = d
        .offsets
        .into_iter()
        .filter_map(|o| Some((o.partition.partition, o.committed?)))
        .collect();
    assert_eq!(committed[&1].offset, 4);
    assert_eq!(committed[&1].metadata, "checkpoint-9");
    let mut c = broker.consumer(config("g"));
    c.subscribe(&["t"]).unwrap();
    let mut got = Vec::new();
    loop {
        let r = c.poll(Duration::from_millis(50)).unwrap();
        if r.is_empty() {
            break;
        }
        got.extend(r.into_iter().map(|r| (r.partition, r.offset)));
    }
    // Exactly from the commits on.
    let from0 = committed.get(&0).map_or(0, |c| c.offset);
    let mut want: Vec<(u32, u64)> = (from0..10).map(|o| (0, o)).collect();
    want.extend((4..10).map(|o| (1, o)));
    got.sort();
    want.sort();
    assert_eq!(got, want);
    c.commit().unwrap();
    let d = broker.admin().describe_group("g").unwrap();
    assert!(
        d.offsets.iter().all(|o| o.lag == Some(0)),
        "{:?}",
        d.offsets
    );
}

#[test]
fn group_admin_lists_resets_and_deletes_inactive_groups() {
    let dir = common::tempdir();
    let clock = Arc::new(embedlog::ManualClock::new(1000));
    let broker = Broker::builder(dir.path())
        .clock(clock)
        .cleaner(false)
        .open()
        .unwrap();
    let admin = broker.admin();
    let t = admin.create_topic("t", TopicConfig::default()).unwrap();
    for i in 0..10i64 {
        t.partition(0)
            .unwrap()
            .append(&[Record::new("x").timestamp(i * 100)])
            .unwrap();
    }
    let mut c = broker.consumer(config("g"));
    c.subscribe(&["t"]).unwrap();
    c.poll(Duration::from_millis(50)).unwrap();
    c.commit().unwrap();
    let listing = admin.list_groups().unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!((listing[0].group_id.as_str(), listing[0].members), ("g", 1));
    let tp = TopicPartition::new("t", 0);
    let e = admin
        .reset_group_offsets("g", &[], OffsetSpec::Earliest)
        .unwrap_err();
    assert!(matches!(e, Error::GroupNotEmpty { .. }), "{e}");
    assert!(matches!(
        admin.delete_group("g"),
        Err(Error::GroupNotEmpty { .. })
    ));
    // Outsiders cannot commit while the group is active.
    let mut outsider = broker.consumer(config("g"));
    outsider.assign(&[("t", 0)]).unwrap();
    outsider.seek(("t", 0), 1).unwrap();
    assert!(matches!(outsider.commit(), Err(Error::CommitFailed { .. })));
    c.close().unwrap();
    let reset = admin
        .reset_group_offsets("g", &[], OffsetSpec::Timestamp(450))
        .unwrap();
    assert_eq!(reset, vec![(tp.clone(), 5)]);
    assert_eq!(outsider.committed(tp.clone()).unwrap().unwrap().offset, 5);
    admin
        .reset_group_offsets("g", std::slice::from_ref(&tp), OffsetSpec::Earliest)
        .unwrap();
    assert_eq!(outsider.committed(tp.clone()).unwrap().unwrap().offset, 0);
    admin.alter_group_offsets("g", [(tp.clone(), 7)]).unwrap();
    assert!(matches!(
        admin.alter_group_offsets("g", [(tp.clone(), 11)]),
        Err(Error::InvalidArgument(_))
    ));
    let d = admin.describe_group("g").unwrap();
    assert_eq!(d.offsets[0].lag, Some(3));
    admin.delete_group("g").unwrap();
    assert!(matches!(
        admin.describe_group("g"),
        Err(Error::UnknownGroup { .. })
    ));
    assert!(admin.list_groups().unwrap().is_empty());
    // Deletion is durable.
    drop(outsider);
    broker.close().unwrap();
    let broker = Broker::builder(dir.path()).cleaner(false).open().unwrap();
    assert!(broker.admin().list_groups().unwrap().is_empty());
}

#[test]
fn the_offsets_topic_is_internal_and_compacted() {
    let dir = common::tempdir();
    let broker = broker(dir.path());
    let admin = broker.admin();
    admin.create_topic("t", TopicConfig::default()).unwrap();
    assert_eq!(admin.list_topics().unwrap(), ["t"]);
    assert!(
        admin
            .list_all_topics()
            .unwrap()
            .contains(&OFFSETS_TOPIC.to_string())
    );
    assert!(matches!(
        admin.delete_topic(OFFSETS_TOPIC),
        Err(Error::InvalidArgument(_))
    ));
    let producer = broker.producer(ProducerConfig::default());
    assert!(
        producer
            .send(OFFSETS_TOPIC, Record::new("x").key("y"))
            .is_err()
    );
    let internal = broker.partition(OFFSETS_TOPIC, 0).unwrap();
    assert!(matches!(
        internal.append(&[Record::new("x")]),
        Err(Error::InvalidArgument(_))
    ));
    // Commits many times over: compaction keeps one record per key.
    let t = broker.topic("t").unwrap();
    let mut c = broker.consumer(config("g"));
    c.subscribe(&["t"]).unwrap();
    for i in 0..500 {
        t.partition(0)
            .unwrap()
            .append(&[Record::new(format!("{i}"))])
            .unwrap();
        c.poll(Duration::ZERO).unwrap();
        c.commit().unwrap();
    }
    let offsets = broker.partition(OFFSETS_TOPIC, 0).unwrap();
    offsets.log().roll().unwrap();
    let before = offsets.log().size_bytes();
    admin.compact_now(OFFSETS_TOPIC).unwrap();
    let kept = common::read_all(offsets.log()).unwrap();
    assert_eq!(kept.len(), 1, "one commit left");
    assert!(offsets.log().size_bytes() < before / 10);
    drop(c);
    broker.close().unwrap();
    let broker = self::broker(dir.path());
    let c = broker.consumer(config("g"));
    assert_eq!(c.committed(("t", 0)).unwrap().unwrap().offset, 500);
}

#[test]
fn misuse_is_refused() {
    let dir = common::tempdir();
    let broker = broker(dir.path());
    broker
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    let mut plain = broker.consumer(ConsumerConfig::default());
    assert!(matches!(
        plain.subscribe(&["t"]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(plain.commit(), Err(Error::InvalidArgument(_))));
    let mut c = broker.consumer(config("g"));
    c.subscribe(&["t"]).unwrap();
    assert!(matches!(
        c.assign(&[("t", 0)]),
        Err(Error::InvalidArgument(_))
    ));
    let mut other = broker.consumer(config("g").assignor(Arc::new(RangeAssignor)));
    assert!(matches!(
        other.subscribe(&["t"]),
        Err(Error::InvalidArgument(_))
    ));
    // A revoked partition's commit is refused.
    c.poll(Duration::ZERO).unwrap();
    let mut d = broker.consumer(config("g"));
    d.subscribe(&["t"]).unwrap();
    let mut members = vec![c, d];
    settle(&broker.admin(), "g", &mut members);
    let (with, without) = if members[0].assignment().is_empty() {
        (1, 0)
    } else {
        (0, 1)
    };
    assert!(matches!(
        members[without].commit_offsets([(TopicPartition::new("t", 0), OffsetAndMetadata::new(0))]),
        Err(Error::CommitFailed { .. })
    ));
    members[with].commit().unwrap();
}

#[test]
fn auto_commit_is_timed_by_the_brokers_clock() {
    let dir = common::tempdir();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let broker = clocked_broker(dir.path(), &clock);
    let t = broker
        .admin()
        .create_topic("t", TopicConfig::default())
        .unwrap();
    t.partition(0)
        .unwrap()
        .append(&[Record::new("a"), Record::new("b")])
        .unwrap();
    let mut c = broker.consumer(config("g").auto_commit(Some(Duration::from_secs(60))));
    c.subscribe(&["t"]).unwrap();
    let tp = TopicPartition::new("t", 0);
    let mut got = 0;
    for _ in 0..20 {
        got += c.poll(Duration::ZERO).unwrap().len();
    }
    assert_eq!(got, 2);
    clock.advance(59_999);
    c.poll(Duration::ZERO).unwrap();
    assert_eq!(c.committed(tp.clone()).unwrap(), None, "not due yet");
    clock.advance(1);
    c.poll(Duration::ZERO).unwrap();
    assert_eq!(c.committed(tp).unwrap().map(|o| o.offset), Some(2));
}

#[test]
fn max_poll_interval_is_timed_by_the_brokers_clock() {
    let dir = common::tempdir();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let broker = clocked_broker(dir.path(), &clock);
    broker
        .admin()
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let mut a = broker.consumer(config("g").max_poll_interval(Duration::from_secs(60)));
    a.subscribe(&["t"]).unwrap();
    poll_until(&mut a, "A never owned both partitions", |c| {
        c.assignment().len() == 2
    });
    let mut b = broker.consumer(config("g"));
    b.subscribe(&["t"]).unwrap();
    // B waits for one of A's partitions; A stops polling. Within A's
    // interval nothing moves.
    clock.advance(60_000);
    for _ in 0..5 {
        b.poll(Duration::ZERO).unwrap();
    }
    assert!(b.assignment().is_empty(), "{:?}", b.assignment());
    assert_eq!(broker.admin().describe_group("g").unwrap().members.len(), 2);
    // Past it, B's wait removes A and B takes everything over.
    clock.advance(1);
    poll_until(&mut b, "B never took A's partitions over", |c| {
        c.assignment().len() == 2
    });
    let members = broker.admin().describe_group("g").unwrap().members;
    assert_eq!(members.len(), 1);
    assert_eq!(Some(members[0].member_id.as_str()), b.member_id());
}

/// The property: under any sequence of produce / poll / commit / join /
/// leave / broker restart, every record reaches the group at least once,
/// delivery restarts exactly at the committed offset, and committed
/// offsets never move backwards.
#[derive(Debug, Clone)]
enum Op {
    Produce(u8),
    Poll(u8),
    Commit(u8),
    Join,
    Leave(u8),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..20).prop_map(Op::Produce),
        6 => any::<u8>().prop_map(Op::Poll),
        3 => any::<u8>().prop_map(Op::Commit),
        1 => Just(Op::Join),
        1 => any::<u8>().prop_map(Op::Leave),
        1 => Just(Op::Restart),
    ]
}

fn run(ops: Vec<Op>, sticky: bool) {
    let dir = common::tempdir();
    let assignor: Arc<dyn Assignor> = if sticky {
        Arc::new(CooperativeStickyAssignor)
    } else {
        Arc::new(RangeAssignor)
    };
    let cfg = config("g").max_poll_records(7).assignor(assignor);
    let mut broker = self::broker(dir.path());
    broker
        .admin()
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let mut members: Vec<Consumer> = Vec::new();
    let mut produced: BTreeSet<(u32, u64)> = BTreeSet::new();
    let mut delivered: BTreeSet<(u32, u64)> = BTreeSet::new();
    let mut committed: BTreeMap<u32, u64> = BTreeMap::new();
    let mut n = 0u64;
    for op in ops {
        match op {
            Op::Produce(k) => {
                let t = broker.topic("t").unwrap();
                for _ in 0..k {
                    let p = (n % 3) as u32;
                    let info = t
                        .partition(p)
                        .unwrap()
                        .append(&[Record::new(n.to_string())])
                        .unwrap();
                    produced.insert((p, info.base_offset));
                    n += 1;
                }
            }
            Op::Poll(i) if !members.is_empty() => {
                let i = usize::from(i) % members.len();
                for r in members[i].poll(Duration::ZERO).unwrap() {
                    // Each delivery starts at or after the group's commit.
                    let c = committed.get(&r.partition).copied().unwrap_or(0);
                    assert!(
                        r.offset >= c || delivered.contains(&(r.partition, r.offset)),
                        "offset {} of {} below the commit {c}",
                        r.offset,
                        r.partition
                    );
                    delivered.insert((r.partition, r.offset));
                }
            }
            Op::Commit(i) if !members.is_empty() => {
                let i = usize::from(i) % members.len();
                match members[i].commit() {
                    Ok(()) | Err(Error::CommitFailed { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Join => {
                let mut c = broker.consumer(cfg.clone());
                c.subscribe(&["t"]).unwrap();
                members.push(c);
            }
            Op::Leave(i) if !members.is_empty() => {
                let i = usize::from(i) % members.len();
                members.remove(i).close().unwrap();
            }
            Op::Restart => {
                members.clear();
                broker.close().unwrap();
                broker = self::broker(dir.path());
            }
            _ => {}
        }
        assert_disjoint(&members);
        // Committed offsets only move forward.
        let probe = broker.consumer(config("g"));
        for p in 0..3 {
            let now = probe.committed(("t", p)).unwrap().map_or(0, |c| c.offset);
            let before = committed.insert(p, now).unwrap_or(0);
            assert!(
                now >= before,
                "partition {p}: commit went back {before} -> {now}"
            );
        }
    }
    // Drain with one member: everything produced reached the group.
    members.clear();
    let mut last = broker.consumer(cfg);
    last.subscribe(&["t"]).unwrap();
    loop {
        let got = last.poll(Duration::from_millis(20)).unwrap();
        if got.is_empty() {
            break;
        }
        for r in got {
            let c = committed.get(&r.partition).copied().unwrap_or(0);
            assert!(r.offset >= c, "redelivered below the commit");
            delivered.insert((r.partition, r.offset));
        }
    }
    let missing: Vec<_> = produced.difference(&delivered).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("EMBEDLOG_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        .. ProptestConfig::default()
    })]

    #[test]
    fn every_record_reaches_the_group_at_least_once(ops in prop::collection::vec(op(), 1..40), sticky in any::<bool>()) {
        run(ops, sticky);
    }
}

//! Consumer groups: balanced, disjoint and complete assignments; sticky
//! rebalances that move the minimum; no record delivered twice in a steady
//! state; commits that survive a broker restart; exact lag; the group
//! admin; group timers (auto-commit, `max_poll_interval`) that follow the
//! broker's clock; commits fenced by member and generation, never landing
//! after a new owner started, and replayed on reopen exactly as they were
//! applied however they interleave; and a property test of at-least-once delivery under
//! random membership changes and restarts.

use crate::common;
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
        Err(Error::InternalTopic { .. })
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
        Err(Error::InternalTopic { .. })
    ));
    assert!(matches!(
        internal.append_with(&[Record::new("x")], embedlog::Durability::Sync),
        Err(Error::InternalTopic { .. })
    ));
    // Partition::log is read-only (appending through it does not compile:
    // see PartitionLog's doctest); deleting records is refused too.
    assert!(matches!(
        admin.delete_records(OFFSETS_TOPIC, 0, 0),
        Err(Error::InternalTopic { .. })
    ));
    assert_eq!(internal.log().end_offset(), 0);
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
    offsets.roll().unwrap();
    let before = offsets.log().size_bytes();
    admin.compact_now(OFFSETS_TOPIC).unwrap();
    let kept = common::read_all(&offsets.log()).unwrap();
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
        Err(Error::GroupRequired {
            operation: "subscribe"
        })
    ));
    assert!(matches!(plain.commit(), Err(Error::GroupRequired { .. })));
    let mut c = broker.consumer(config("g"));
    c.subscribe(&["t"]).unwrap();
    assert!(matches!(
        c.assign(&[("t", 0)]),
        Err(Error::SubscriptionConflict { .. })
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

#[test]
fn a_member_removed_from_the_group_is_fenced() {
    let dir = common::tempdir();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut broker = clocked_broker(dir.path(), &clock);
    two_partitions_of_three_records(&broker);
    let (tp0, tp1) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
    let mut a = broker.consumer(config("g").max_poll_interval(Duration::from_secs(60)));
    a.subscribe(&["t"]).unwrap();
    poll_until(&mut a, "A never owned both partitions", |c| {
        c.assignment().len() == 2
    });
    a.commit_offsets([(tp0.clone(), OffsetAndMetadata::new(2))])
        .unwrap();
    let (a_id, a_generation) = (a.member_id().unwrap().to_string(), a.generation().unwrap());
    // B joins; A stops polling; past A's interval B takes everything over
    // and starts from A's last accepted commit.
    let mut b = broker.consumer(config("g"));
    b.subscribe(&["t"]).unwrap();
    b.poll(Duration::ZERO).unwrap();
    clock.advance(60_001);
    poll_until(&mut b, "B never took A's partitions over", |c| {
        c.assignment().len() == 2
    });
    assert!(b.generation().unwrap() > a_generation);
    // A still believes it owns both; its commits are fenced and store
    // nothing.
    assert_eq!(a.assignment().len(), 2);
    for attempt in [a.commit(), a.commit_partitions(std::slice::from_ref(&tp1))] {
        match attempt {
            Err(Error::Fenced {
                group,
                member,
                generation,
                ..
            }) => assert_eq!(
                (group, member, generation),
                ("g".into(), a_id.clone(), a_generation)
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(b.committed(tp0.clone()).unwrap().unwrap().offset, 2);
    assert_eq!(b.committed(tp1.clone()).unwrap(), None);
    // B's commits stand; A's next poll reports the loss and rejoins.
    b.commit_offsets([(tp1.clone(), OffsetAndMetadata::new(3))])
        .unwrap();
    a.poll(Duration::ZERO).unwrap();
    assert!(a.assignment().is_empty());
    assert_ne!(a.member_id(), Some(a_id.as_str()));
    // What the group had in memory is what the offsets topic replays.
    drop((a, b));
    broker.close().unwrap();
    broker = clocked_broker(dir.path(), &clock);
    let probe = broker.consumer(config("g"));
    assert_eq!(probe.committed(tp0).unwrap().unwrap().offset, 2);
    assert_eq!(probe.committed(tp1).unwrap().unwrap().offset, 3);
}

#[test]
fn records_of_the_offsets_topic_that_are_not_commits_are_skipped_on_open() {
    // However a record that is not a commit got into __consumer_offsets (a
    // bare Log on the directory, a newer version), the broker opens, skips
    // it and keeps every other commit, as Kafka does.
    let dir = common::tempdir();
    let (tp0, tp1) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
    {
        let broker = broker(dir.path());
        broker
            .admin()
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let mut c = broker.consumer(config("g"));
        c.assign([tp0.clone(), tp1.clone()]).unwrap();
        c.commit_offsets([
            (tp0.clone(), OffsetAndMetadata::new(0)),
            (tp1.clone(), OffsetAndMetadata::new(0)),
        ])
        .unwrap();
        let mut other = broker.consumer(config("other"));
        other.assign([tp0.clone()]).unwrap();
        other
            .commit_offsets([(tp0.clone(), OffsetAndMetadata::new(0))])
            .unwrap();
        drop((c, other));
        broker.close().unwrap();
    }
    let offsets_dir = dir.path().join("topics").join(OFFSETS_TOPIC).join("0");
    {
        // The keys the broker wrote, read back from the log.
        let log = embedlog::Log::open(&offsets_dir, embedlog::LogConfig::default()).unwrap();
        let keys: Vec<_> = common::read_all(&log)
            .unwrap()
            .into_iter()
            .map(|r| r.key.unwrap())
            .collect();
        assert_eq!(keys.len(), 3);
        let other_tp0 = keys
            .iter()
            .find(|k| k.windows(5).any(|w| w == b"other"))
            .unwrap()
            .clone();
        // Garbage: no key, a key that is not a commit's, and a commit's key
        // with a value that is not one.
        log.append(&[Record::new("not a commit")]).unwrap();
        log.append(&[Record::new("x").key("not a key")]).unwrap();
        log.append(&[Record::new(vec![0xff; 3]).key(other_tp0.to_vec())])
            .unwrap();
        log.close().unwrap();
    }
    let broker = broker(dir.path());
    let probe = broker.consumer(config("g"));
    assert_eq!(probe.committed(tp0.clone()).unwrap().unwrap().offset, 0);
    assert_eq!(probe.committed(tp1.clone()).unwrap().unwrap().offset, 0);
    // The unreadable latest record of other's key drops that commit, as
    // compaction, which keeps the latest record of each key, would.
    let other = broker.consumer(config("other"));
    assert_eq!(other.committed(tp0.clone()).unwrap(), None);
    // Commits go on, and the directory keeps opening.
    let mut c = broker.consumer(config("g"));
    c.assign([tp1.clone()]).unwrap();
    c.commit_offsets([(
        tp1.clone(),
        OffsetAndMetadata::new(0).with_metadata("after"),
    )])
    .unwrap();
    drop((probe, other, c));
    broker.close().unwrap();
    let broker = self::broker(dir.path());
    let probe = broker.consumer(config("g"));
    assert_eq!(probe.committed(tp1).unwrap().unwrap().metadata, "after");
    assert_eq!(probe.committed(tp0).unwrap().unwrap().offset, 0);
}

/// A clock that, read for the first time after [`arm`](Self::arm), first
/// runs a hook: it lets a test act at the instant the broker reads the
/// time.
#[derive(Default)]
struct HookClock {
    now: Arc<std::sync::atomic::AtomicI64>,
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for HookClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookClock").field("now", &self.now).finish()
    }
}

impl HookClock {
    fn arm(&self, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }
}

impl embedlog::Clock for HookClock {
    fn now_ms(&self) -> i64 {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn a_commit_racing_the_takeover_of_its_partitions_is_fenced() {
    // Member A commits while, at that very moment, the group removes it
    // and B takes A's partitions over (the clock's hook runs B's polls
    // inside A's commit, where the broker reads the time). Either A's
    // commit was accepted before B started, and B starts from it, or it is
    // refused: B never starts from offsets a commit then overwrites.
    let dir = common::tempdir();
    let clock = Arc::new(HookClock::default());
    clock
        .now
        .store(1_000_000, std::sync::atomic::Ordering::SeqCst);
    let broker = Broker::builder(dir.path())
        .clock(clock.clone())
        .cleaner(false)
        .open()
        .unwrap();
    two_partitions_of_three_records(&broker);
    let mut a = broker.consumer(config("g").max_poll_interval(Duration::from_secs(60)));
    a.subscribe(&["t"]).unwrap();
    let mut got = 0;
    for _ in 0..20 {
        got += a.poll(Duration::ZERO).unwrap().len();
    }
    assert_eq!((got, a.assignment().len()), (6, 2));
    a.commit_offsets([(TopicPartition::new("t", 0), OffsetAndMetadata::new(1))])
        .unwrap();
    /// Records where B starts each partition it is given.
    struct Starts(Arc<Mutex<BTreeMap<TopicPartition, u64>>>);
    impl RebalanceListener for Starts {
        fn on_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
            for tp in partitions {
                let at = consumer.position(tp.clone()).unwrap();
                self.0.lock().unwrap().insert(tp.clone(), at);
            }
        }
    }
    let started = Arc::new(Mutex::new(BTreeMap::new()));
    let b = Arc::new(Mutex::new(broker.consumer(config("g"))));
    b.lock()
        .unwrap()
        .set_rebalance_listener(Starts(started.clone()));
    b.lock().unwrap().subscribe(&["t"]).unwrap();
    b.lock().unwrap().poll(Duration::ZERO).unwrap(); // waits for A
    assert!(started.lock().unwrap().is_empty());
    let (hook_b, now) = (b.clone(), clock.now.clone());
    clock.arm(move || {
        now.fetch_add(60_001, std::sync::atomic::Ordering::SeqCst);
        poll_until(
            &mut hook_b.lock().unwrap(),
            "B never took A's partitions over",
            |c| c.assignment().len() == 2,
        );
    });
    let r = a.commit();
    let started = started.lock().unwrap().clone();
    assert_eq!(started.len(), 2, "the hook ran inside the commit");
    assert!(matches!(r, Err(Error::Fenced { .. })), "{r:?}");
    let b = b.lock().unwrap();
    for (tp, at) in started {
        let committed = b.committed(tp.clone()).unwrap().map_or(0, |c| c.offset);
        assert_eq!(
            committed, at,
            "{tp}: B started at {at}, the group committed {committed}"
        );
    }
}

/// A tiny deterministic random source for the threads of a test.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every group's committed offsets, as the broker holds them now.
fn all_commits(admin: &Admin) -> BTreeMap<String, BTreeMap<TopicPartition, u64>> {
    admin
        .list_groups()
        .unwrap()
        .into_iter()
        .map(|g| {
            let offsets = admin
                .describe_group(&g.group_id)
                .unwrap()
                .offsets
                .into_iter()
                .filter_map(|o| Some((o.partition, o.committed?.offset)))
                .collect();
            (g.group_id, offsets)
        })
        .collect()
}

/// A commit the coordinator may refuse under concurrent membership and
/// admin changes; anything else is a bug.
fn refused(e: &Error) -> bool {
    matches!(
        e,
        Error::CommitFailed { .. }
            | Error::Fenced { .. }
            | Error::GroupNotEmpty { .. }
            | Error::UnknownGroup { .. }
    )
}

#[test]
fn concurrent_commits_and_admin_changes_replay_as_they_were_applied() {
    // Members of one group (joining, leaving, stalling past their
    // max_poll_interval), manually assigned committers and the admin of
    // another group all commit to the same few partitions at once. However
    // they interleave, the committed offsets in memory are exactly what a
    // reopen replays from __consumer_offsets.
    for seed in 1..=3u64 {
        let dir = common::tempdir();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let broker = clocked_broker(dir.path(), &clock);
        let t = broker
            .admin()
            .create_topic("t", TopicConfig::default().partitions(3))
            .unwrap();
        for p in 0..3 {
            let records: Vec<Record> = (0..50).map(|i| Record::new(format!("{i}"))).collect();
            t.partition(p).unwrap().append(&records).unwrap();
        }
        let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
        let rounds = 300;
        std::thread::scope(|s| {
            // Subscribed members of "live".
            for m in 0..2u64 {
                let (broker, tps) = (&broker, &tps);
                s.spawn(move || {
                    let mut rng = XorShift(seed * 1000 + m + 1);
                    let cfg = config("live")
                        .max_poll_records(3)
                        .max_poll_interval(Duration::from_millis(500));
                    let mut c = broker.consumer(cfg.clone());
                    c.subscribe(&["t"]).unwrap();
                    for _ in 0..rounds {
                        match rng.below(8) {
                            0 => {
                                c.close().unwrap();
                                c = broker.consumer(cfg.clone());
                                c.subscribe(&["t"]).unwrap();
                            }
                            1 => {
                                let tp = tps[rng.below(3) as usize].clone();
                                let o = OffsetAndMetadata::new(rng.below(51));
                                if let Err(e) = c.commit_offsets([(tp, o)]) {
                                    assert!(refused(&e), "{e}");
                                }
                            }
                            2..=4 => {
                                c.poll(Duration::ZERO).unwrap();
                            }
                            _ => {
                                if let Err(e) = c.commit() {
                                    assert!(refused(&e), "{e}");
                                }
                            }
                        }
                    }
                });
            }
            // Manually assigned committers of "quiet" (no members: Kafka's
            // simple consumers), racing each other on the same keys.
            for m in 0..3u64 {
                let (broker, tps) = (&broker, &tps);
                s.spawn(move || {
                    let mut rng = XorShift(seed * 2000 + m + 1);
                    let mut c = broker.consumer(config("quiet"));
                    c.assign(tps.iter().cloned()).unwrap();
                    for _ in 0..rounds {
                        let tp = tps[rng.below(3) as usize].clone();
                        let o = OffsetAndMetadata::new(rng.below(51));
                        // The group never has members: always accepted.
                        c.commit_offsets([(tp, o)]).unwrap();
                    }
                });
            }
            // The admin, on both groups; and the clock, stalling members.
            let (broker, tps, clock) = (&broker, &tps, &clock);
            s.spawn(move || {
                let mut rng = XorShift(seed * 3000 + 1);
                let admin = broker.admin();
                for _ in 0..rounds {
                    let group = ["live", "quiet"][rng.below(2) as usize];
                    let tp = tps[rng.below(3) as usize].clone();
                    let r = match rng.below(4) {
                        0 => admin
                            .reset_group_offsets(group, &[], OffsetSpec::Earliest)
                            .map(drop),
                        1 => admin.delete_group(group),
                        _ => admin.alter_group_offsets(group, [(tp, rng.below(51))]),
                    };
                    if let Err(e) = r {
                        assert!(refused(&e), "{e}");
                    }
                    clock.advance(rng.below(300) as i64);
                }
            });
        });
        let admin = broker.admin();
        let before = all_commits(&admin);
        broker.close().unwrap();
        let broker = clocked_broker(dir.path(), &clock);
        assert_eq!(all_commits(&broker.admin()), before, "seed {seed}");
    }
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

/// Creates topic `t` with two partitions of three records each.
fn two_partitions_of_three_records(broker: &Broker) {
    let t = broker
        .admin()
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    for p in 0..2 {
        t.partition(p)
            .unwrap()
            .append(&[Record::new("0"), Record::new("1"), Record::new("2")])
            .unwrap();
    }
}

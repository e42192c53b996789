//! Partition assignment strategies for consumer groups (Kafka's
//! `ConsumerPartitionAssignor`): range, round-robin and cooperative-sticky.
//!
//! All assignors are pure functions of their input: members are processed in
//! `member_id` order, topics and partitions in their natural order, so the same
//! input always yields the same assignment.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::catalog::TopicPartition;

/// What one group member asks for in a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The member's id; members are ordered by it for determinism. If several
    /// subscriptions share an id, only the first one is used.
    pub member_id: String,
    /// Topics this member subscribed to (may differ between members). Topics
    /// that do not exist are ignored.
    pub topics: Vec<String>,
    /// What the member owns now (used by sticky assignors).
    pub owned: Vec<TopicPartition>,
}

/// Whether an assignor's protocol is eager (revoke everything before
/// reassigning) or cooperative (revoke only what moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Every member revokes all its partitions before the new assignment.
    Eager,
    /// Members revoke only the partitions that move to another member.
    Cooperative,
}

/// Computes a group's assignment (Kafka's `ConsumerPartitionAssignor`).
pub trait Assignor: std::fmt::Debug + Send + Sync {
    /// The protocol name: `"range"`, `"roundrobin"` or `"cooperative-sticky"`.
    fn name(&self) -> &'static str;

    /// The rebalance protocol this assignor supports.
    fn protocol(&self) -> RebalanceProtocol;

    /// Assigns partitions to members.
    ///
    /// `partitions` holds the partition count per topic (topics not in the
    /// map do not exist and are skipped). Returns an entry for every member
    /// (possibly an empty `Vec`), each `Vec` sorted. Every partition of a
    /// topic that at least one member subscribes to is assigned to exactly
    /// one member that subscribes to it.
    fn assign(
        &self,
        partitions: &BTreeMap<String, u32>,
        members: &[Subscription],
    ) -> BTreeMap<String, Vec<TopicPartition>>;
}

/// Kafka's range assignor: per topic, the subscribed members (sorted by id)
/// each get a contiguous range of partitions; the first `P mod N` members get
/// one extra partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

/// Kafka's round-robin assignor: all partitions, sorted by topic then
/// partition, are dealt in turn to the members sorted by id, skipping members
/// not subscribed to the partition's topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

/// Kafka's sticky assignor with the cooperative protocol: balanced, and keeps
/// as many currently owned partitions with their owner as possible.
///
/// The returned assignment is complete; each member then revokes only the
/// partitions it loses, and they are handed over once revoked.
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

/// The partitions in `old` that are not in `new` (what a member must revoke
/// when its assignment changes from `old` to `new`), sorted and deduplicated.
pub fn revoked(old: &[TopicPartition], new: &[TopicPartition]) -> Vec<TopicPartition> {
    let new: BTreeSet<&TopicPartition> = new.iter().collect();
    let gone: BTreeSet<&TopicPartition> = old.iter().filter(|tp| !new.contains(tp)).collect();
    gone.into_iter().cloned().collect()
}

/// A member after normalisation.
struct Member<'a> {
    /// The member's id.
    id: &'a str,
    /// The subscribed topics that exist (keys of the partition map).
    topics: BTreeSet<&'a str>,
    /// The original subscription.
    sub: &'a Subscription,
}

impl Member<'_> {
    fn subscribes(&self, topic: &str) -> bool {
        self.topics.contains(topic)
    }
}

/// Members sorted by id (first occurrence wins on duplicate ids), with their
/// subscriptions restricted to existing topics.
fn normalize<'a>(
    partitions: &'a BTreeMap<String, u32>,
    members: &'a [Subscription],
) -> Vec<Member<'a>> {
    let mut by_id: BTreeMap<&'a str, &'a Subscription> = BTreeMap::new();
    for sub in members {
        by_id.entry(sub.member_id.as_str()).or_insert(sub);
    }
    by_id
        .into_iter()
        .map(|(id, sub)| Member {
            id,
            topics: sub
                .topics
                .iter()
                .filter_map(|t| {
                    partitions
                        .get_key_value(t.as_str())
                        .map(|(k, _)| k.as_str())
                })
                .collect(),
            sub,
        })
        .collect()
}

/// The topics (with their partition count and an interned name) that at least
/// one member subscribes to, in topic order.
fn subscribed_topics<'a>(
    partitions: &'a BTreeMap<String, u32>,
    members: &[Member<'_>],
) -> Vec<(&'a str, u32, Arc<str>)> {
    partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.subscribes(t)))
        .map(|(t, &n)| (t.as_str(), n, Arc::from(t.as_str())))
        .collect()
}

/// Builds the output map from per-member partition sets (parallel to
/// `members`).
fn finish(
    members: &[Member<'_>],
    sets: Vec<BTreeSet<TopicPartition>>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    members
        .iter()
        .zip(sets)
        .map(|(m, set)| (m.id.to_owned(), set.into_iter().collect()))
        .collect()
}

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(
        &self,
        partitions: &BTreeMap<String, u32>,
        members: &[Subscription],
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let members = normalize(partitions, members);
        let mut sets: Vec<BTreeSet<TopicPartition>> =
            members.iter().map(|_| BTreeSet::new()).collect();
        for (topic, count, name) in subscribed_topics(partitions, &members) {
            // Indices (into `members`, hence sorted by id) of the subscribers.
            let subs: Vec<usize> = (0..members.len())
                .filter(|&i| members.get(i).is_some_and(|m| m.subscribes(topic)))
                .collect();
            let n = subs.len() as u64;
            let Some(per) = u64::from(count).checked_div(n) else {
                continue;
            };
            let extra = u64::from(count) % n;
            // The first `extra` members own `per + 1` partitions each, i.e.
            // partitions `0..boundary`; the rest own `per` each.
            let boundary = extra * (per + 1);
            for p in 0..count {
                let p64 = u64::from(p);
                let slot = if p64 < boundary {
                    Some(p64 / (per + 1))
                } else {
                    (p64 - boundary).checked_div(per).map(|k| extra + k)
                };
                let member = slot
                    .and_then(|s| usize::try_from(s).ok())
                    .and_then(|s| subs.get(s))
                    .and_then(|&i| sets.get_mut(i));
                if let Some(set) = member {
                    set.insert(TopicPartition {
                        topic: name.clone(),
                        partition: p,
                    });
                }
            }
        }
        finish(&members, sets)
    }
}

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(
        &self,
        partitions: &BTreeMap<String, u32>,
        members: &[Subscription],
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let members = normalize(partitions, members);
        let n = members.len();
        let mut sets: Vec<BTreeSet<TopicPartition>> =
            members.iter().map(|_| BTreeSet::new()).collect();
        // Index of the member the circular iterator points at.
        let mut cursor = 0usize;
        for (topic, count, name) in subscribed_topics(partitions, &members) {
            for p in 0..count {
                let next = (0..n)
                    .map(|k| (cursor + k) % n)
                    .find(|&i| members.get(i).is_some_and(|m| m.subscribes(topic)));
                // `subscribed_topics` only yields topics with a subscriber.
                let Some(i) = next else { break };
                if let Some(set) = sets.get_mut(i) {
                    set.insert(TopicPartition {
                        topic: name.clone(),
                        partition: p,
                    });
                }
                cursor = (i + 1) % n;
            }
        }
        finish(&members, sets)
    }
}

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn assign(
        &self,
        partitions: &BTreeMap<String, u32>,
        members: &[Subscription],
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let members = normalize(partitions, members);
        let topics = subscribed_topics(partitions, &members);
        let all: Vec<TopicPartition> = topics
            .iter()
            .flat_map(|(_, count, name)| {
                (0..*count).map(move |p| TopicPartition {
                    topic: name.clone(),
                    partition: p,
                })
            })
            .collect();
        let owned = valid_owned(partitions, &members);
        let identical = members.windows(2).all(|w| match w {
            [a, b] => a.topics == b.topics,
            _ => true,
        });
        let sets = if identical {
            constrained(&all, owned)
        } else {
            general(&members, &all, owned)
        };
        finish(&members, sets)
    }
}

/// Per member (parallel to `members`): the owned partitions it may keep, i.e.
/// that exist, belong to a topic it subscribes to, and are claimed by no other
/// member. A partition claimed by two members is treated as unowned.
fn valid_owned(
    partitions: &BTreeMap<String, u32>,
    members: &[Member<'_>],
) -> Vec<BTreeSet<TopicPartition>> {
    let claims: Vec<BTreeSet<&TopicPartition>> = members
        .iter()
        .map(|m| {
            m.sub
                .owned
                .iter()
                .filter(|tp| {
                    m.subscribes(&tp.topic)
                        && partitions
                            .get(&*tp.topic)
                            .is_some_and(|&n| tp.partition < n)
                })
                .collect()
        })
        .collect();
    let mut claimants: BTreeMap<&TopicPartition, usize> = BTreeMap::new();
    for tp in claims.iter().flatten() {
        *claimants.entry(tp).or_insert(0) += 1;
    }
    claims
        .into_iter()
        .map(|set| {
            set.into_iter()
                .filter(|tp| claimants.get(tp) == Some(&1))
                .cloned()
                .collect()
        })
        .collect()
}

/// Sticky assignment when every member subscribes to the same topics
/// (Kafka's `constrainedAssign`): every member ends with `min_q` or
/// `max_q = min_q + 1` partitions, and keeps as many owned ones as that
/// allows. Members are handled in id order.
fn constrained(
    all: &[TopicPartition],
    owned: Vec<BTreeSet<TopicPartition>>,
) -> Vec<BTreeSet<TopicPartition>> {
    let n = owned.len();
    let Some(min_q) = all.len().checked_div(n) else {
        return owned.into_iter().map(|_| BTreeSet::new()).collect();
    };
    let rem = all.len() % n;
    let max_q = min_q + usize::from(rem > 0);
    // How many more members may end with `max_q` partitions.
    let mut slots = rem;
    let mut sets: Vec<BTreeSet<TopicPartition>> = Vec::with_capacity(n);
    for own in owned {
        let keep = if rem > 0 && own.len() >= max_q && slots > 0 {
            slots -= 1;
            max_q
        } else {
            own.len().min(min_q)
        };
        let kept: BTreeSet<TopicPartition> = own.into_iter().take(keep).collect();
        sets.push(kept);
    }
    let taken: BTreeSet<TopicPartition> = sets.iter().flatten().cloned().collect();
    let mut pool = all.iter().filter(|tp| !taken.contains(tp));
    // Fill every member up to the minimum quota ...
    for set in &mut sets {
        while set.len() < min_q {
            let Some(tp) = pool.next() else { break };
            set.insert(tp.clone());
        }
    }
    // ... then hand out the remaining partitions (exactly `slots` of them),
    // one each, to members still at the minimum quota.
    for set in &mut sets {
        if slots == 0 {
            break;
        }
        if set.len() == min_q {
            let Some(tp) = pool.next() else { break };
            set.insert(tp.clone());
            slots -= 1;
        }
    }
    // Defensive: the counting above leaves nothing behind, but never drop a
    // partition if it did.
    let leftovers: Vec<&TopicPartition> = pool.collect();
    for tp in leftovers {
        if let Some(set) = sets.iter_mut().min_by_key(|s| s.len()) {
            set.insert(tp.clone());
        }
    }
    sets
}

/// Best-effort sticky assignment when subscriptions differ: members keep all
/// their valid owned partitions; unassigned partitions go (most constrained
/// first) to the eligible member with the fewest partitions (ties by id); then
/// partitions are moved from a member to an eligible member with at least two
/// fewer until no such move exists, preferring partitions the source did not
/// own before.
fn general(
    members: &[Member<'_>],
    all: &[TopicPartition],
    owned: Vec<BTreeSet<TopicPartition>>,
) -> Vec<BTreeSet<TopicPartition>> {
    let eligible = |tp: &TopicPartition| -> Vec<usize> {
        members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.subscribes(&tp.topic))
            .map(|(i, _)| i)
            .collect()
    };
    let mut sets = owned.clone();
    let taken: BTreeSet<&TopicPartition> = owned.iter().flatten().collect();
    let mut unassigned: Vec<(Vec<usize>, &TopicPartition)> = all
        .iter()
        .filter(|tp| !taken.contains(tp))
        .map(|tp| (eligible(tp), tp))
        .collect();
    // Stable sort: partitions with fewer eligible members first, otherwise in
    // topic/partition order.
    unassigned.sort_by_key(|(e, _)| e.len());
    for (elig, tp) in &unassigned {
        // `min_by_key` returns the first minimum, i.e. the lowest member id.
        let target = elig
            .iter()
            .copied()
            .min_by_key(|&i| sets.get(i).map_or(usize::MAX, BTreeSet::len));
        if let Some(set) = target.and_then(|i| sets.get_mut(i)) {
            set.insert((*tp).clone());
        }
    }
    // Rebalance. Each move goes from a member with `a` partitions to one with
    // `b <= a - 2`, which strictly lowers the sum of squared counts, so the
    // loop terminates.
    loop {
        let mut order: Vec<usize> = (0..sets.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(sets.get(i).map_or(0, BTreeSet::len)));
        let mut chosen: Option<(usize, usize, TopicPartition)> = None;
        'search: for &src in &order {
            let (Some(src_set), Some(src_owned)) = (sets.get(src), owned.get(src)) else {
                continue;
            };
            let src_len = src_set.len();
            if src_len < 2 {
                break;
            }
            let candidates = src_set
                .iter()
                .filter(|tp| !src_owned.contains(*tp))
                .chain(src_set.iter().filter(|tp| src_owned.contains(*tp)));
            for tp in candidates {
                let target = members
                    .iter()
                    .enumerate()
                    .filter(|&(i, m)| i != src && m.subscribes(&tp.topic))
                    .map(|(i, _)| (sets.get(i).map_or(usize::MAX, BTreeSet::len), i))
                    .min();
                if let Some((len, dst)) = target
                    && len.saturating_add(2) <= src_len
                {
                    chosen = Some((src, dst, tp.clone()));
                    break 'search;
                }
            }
        }
        let Some((src, dst, tp)) = chosen else { break };
        if let Some(set) = sets.get_mut(src) {
            set.remove(&tp);
        }
        if let Some(set) = sets.get_mut(dst) {
            set.insert(tp);
        }
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tp(topic: &str, p: u32) -> TopicPartition {
        TopicPartition::new(topic, p)
    }

    fn sub(id: &str, topics: &[&str], owned: &[TopicPartition]) -> Subscription {
        Subscription {
            member_id: id.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            owned: owned.to_vec(),
        }
    }

    fn topic_map(t: usize, p: u32) -> BTreeMap<String, u32> {
        (0..t).map(|i| (format!("t{i}"), p)).collect()
    }

    fn topic_names(parts: &BTreeMap<String, u32>) -> Vec<&str> {
        parts.keys().map(String::as_str).collect()
    }

    /// Members `c0..c{n-1}` all subscribed to every topic of `parts`.
    fn same_subs(n: usize, parts: &BTreeMap<String, u32>) -> Vec<Subscription> {
        let names = topic_names(parts);
        (0..n).map(|i| sub(&format!("c{i}"), &names, &[])).collect()
    }

    /// Feeds an assignment back as `owned`.
    fn with_owned(
        subs: &[Subscription],
        asg: &BTreeMap<String, Vec<TopicPartition>>,
    ) -> Vec<Subscription> {
        subs.iter()
            .map(|s| Subscription {
                owned: asg.get(&s.member_id).cloned().unwrap_or_default(),
                ..s.clone()
            })
            .collect()
    }

    fn owner_map(asg: &BTreeMap<String, Vec<TopicPartition>>) -> BTreeMap<TopicPartition, String> {
        asg.iter()
            .flat_map(|(m, v)| v.iter().map(move |tp| (tp.clone(), m.clone())))
            .collect()
    }

    /// Checks the invariants every assignor must satisfy.
    fn check_valid(
        parts: &BTreeMap<String, u32>,
        subs: &[Subscription],
        asg: &BTreeMap<String, Vec<TopicPartition>>,
    ) -> Result<(), String> {
        let ids: BTreeSet<&str> = subs.iter().map(|s| s.member_id.as_str()).collect();
        let got: BTreeSet<&str> = asg.keys().map(String::as_str).collect();
        if ids != got {
            return Err(format!("members {ids:?} != entries {got:?}"));
        }
        let mut seen = BTreeSet::new();
        for (m, v) in asg {
            if !v.windows(2).all(|w| w[0] < w[1]) {
                return Err(format!("{m}: not sorted/unique: {v:?}"));
            }
            let s = subs.iter().find(|s| &s.member_id == m).unwrap();
            for tp in v {
                if !s.topics.iter().any(|t| **t == *tp.topic) {
                    return Err(format!("{m} got {tp:?} without subscribing"));
                }
                if !seen.insert(tp.clone()) {
                    return Err(format!("{tp:?} assigned twice"));
                }
            }
        }
        let expected: BTreeSet<TopicPartition> = parts
            .iter()
            .filter(|(t, _)| subs.iter().any(|s| s.topics.contains(t)))
            .flat_map(|(t, &n)| (0..n).map(move |p| tp(t, p)))
            .collect();
        if seen != expected {
            return Err(format!("incomplete: got {seen:?}, expected {expected:?}"));
        }
        Ok(())
    }

    fn spread(asg: &BTreeMap<String, Vec<TopicPartition>>) -> usize {
        let max = asg.values().map(Vec::len).max().unwrap_or(0);
        let min = asg.values().map(Vec::len).min().unwrap_or(0);
        max - min
    }

    fn assignors() -> Vec<Box<dyn Assignor>> {
        vec![
            Box::new(RangeAssignor),
            Box::new(RoundRobinAssignor),
            Box::new(CooperativeStickyAssignor),
        ]
    }

    const SHAPES: &[(usize, u32, usize)] = &[
        (1, 5, 1),
        (1, 0, 2),
        (3, 0, 1),
        (3, 3, 1),
        (5, 2, 1),
        (5, 2, 3),
        (4, 10, 1),
        (3, 7, 3),
        (7, 20, 2),
        (2, 1, 4),
    ];

    #[test]
    fn names_and_protocols() {
        assert_eq!(RangeAssignor.name(), "range");
        assert_eq!(RoundRobinAssignor.name(), "roundrobin");
        assert_eq!(CooperativeStickyAssignor.name(), "cooperative-sticky");
        assert_eq!(RangeAssignor.protocol(), RebalanceProtocol::Eager);
        assert_eq!(RoundRobinAssignor.protocol(), RebalanceProtocol::Eager);
        assert_eq!(
            CooperativeStickyAssignor.protocol(),
            RebalanceProtocol::Cooperative
        );
    }

    #[test]
    fn all_assignors_disjoint_complete_balanced() {
        for a in assignors() {
            for &(n, p, t) in SHAPES {
                let parts = topic_map(t, p);
                let subs = same_subs(n, &parts);
                let asg = a.assign(&parts, &subs);
                check_valid(&parts, &subs, &asg)
                    .unwrap_or_else(|e| panic!("{} {n}/{p}/{t}: {e}", a.name()));
                if a.name() == "range" {
                    // Range balances per topic, not overall.
                    for topic in parts.keys() {
                        let counts: Vec<usize> = asg
                            .values()
                            .map(|v| v.iter().filter(|x| &*x.topic == topic).count())
                            .collect();
                        let max = counts.iter().max().copied().unwrap_or(0);
                        let min = counts.iter().min().copied().unwrap_or(0);
                        assert!(max - min <= 1, "range {n}/{p}/{t}: {counts:?}");
                    }
                } else {
                    assert!(spread(&asg) <= 1, "{} {n}/{p}/{t}: {asg:?}", a.name());
                }
                assert_eq!(
                    asg,
                    a.assign(&parts, &subs),
                    "{} not deterministic",
                    a.name()
                );
            }
        }
    }

    #[test]
    fn input_order_does_not_matter() {
        let parts = topic_map(3, 5);
        let subs = same_subs(4, &parts);
        let mut rev = subs.clone();
        rev.reverse();
        for a in assignors() {
            assert_eq!(
                a.assign(&parts, &subs),
                a.assign(&parts, &rev),
                "{}",
                a.name()
            );
        }
    }

    #[test]
    fn no_members_and_unknown_topics() {
        let parts = topic_map(2, 3);
        for a in assignors() {
            assert!(a.assign(&parts, &[]).is_empty());
            let subs = vec![
                sub("a", &["nope"], &[tp("nope", 0)]),
                sub("b", &["t1"], &[]),
            ];
            let asg = a.assign(&parts, &subs);
            check_valid(&parts, &subs, &asg).unwrap();
            assert_eq!(asg["a"], vec![]);
            assert_eq!(asg["b"], vec![tp("t1", 0), tp("t1", 1), tp("t1", 2)]);
        }
    }

    #[test]
    fn range_kafka_layout() {
        let parts = topic_map(2, 3);
        let subs = vec![sub("C1", &["t0", "t1"], &[]), sub("C0", &["t0", "t1"], &[])];
        let asg = RangeAssignor.assign(&parts, &subs);
        assert_eq!(
            asg["C0"],
            vec![tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]
        );
        assert_eq!(asg["C1"], vec![tp("t0", 2), tp("t1", 2)]);

        // 3 members, 7 partitions: 3, 2, 2 in contiguous ranges.
        let parts = topic_map(1, 7);
        let asg = RangeAssignor.assign(&parts, &same_subs(3, &parts));
        assert_eq!(asg["c0"], vec![tp("t0", 0), tp("t0", 1), tp("t0", 2)]);
        assert_eq!(asg["c1"], vec![tp("t0", 3), tp("t0", 4)]);
        assert_eq!(asg["c2"], vec![tp("t0", 5), tp("t0", 6)]);

        // Per-topic subscriber sets.
        let subs = vec![sub("a", &["t0"], &[]), sub("b", &["t0", "t1"], &[])];
        let parts: BTreeMap<String, u32> = [("t0".to_owned(), 3), ("t1".to_owned(), 2)].into();
        let asg = RangeAssignor.assign(&parts, &subs);
        assert_eq!(asg["a"], vec![tp("t0", 0), tp("t0", 1)]);
        assert_eq!(asg["b"], vec![tp("t0", 2), tp("t1", 0), tp("t1", 1)]);
    }

    #[test]
    fn roundrobin_kafka_layouts() {
        let parts = topic_map(2, 3);
        let asg = RoundRobinAssignor.assign(&parts, &same_subs(2, &parts));
        assert_eq!(asg["c0"], vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
        assert_eq!(asg["c1"], vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]);

        // Kafka's documented example with differing subscriptions.
        let parts: BTreeMap<String, u32> = [
            ("t0".to_owned(), 1),
            ("t1".to_owned(), 2),
            ("t2".to_owned(), 3),
        ]
        .into();
        let subs = vec![
            sub("C0", &["t0"], &[]),
            sub("C1", &["t0", "t1"], &[]),
            sub("C2", &["t0", "t1", "t2"], &[]),
        ];
        let asg = RoundRobinAssignor.assign(&parts, &subs);
        assert_eq!(asg["C0"], vec![tp("t0", 0)]);
        assert_eq!(asg["C1"], vec![tp("t1", 0)]);
        assert_eq!(
            asg["C2"],
            vec![tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]
        );
    }

    #[test]
    fn sticky_add_member_moves_minimum() {
        for &(n, p, t) in SHAPES {
            let parts = topic_map(t, p);
            let subs = same_subs(n, &parts);
            let before = CooperativeStickyAssignor.assign(&parts, &subs);
            let mut next = with_owned(&subs, &before);
            next.push(sub("new", &topic_names(&parts), &[]));
            let after = CooperativeStickyAssignor.assign(&parts, &next);
            check_valid(&parts, &next, &after).unwrap();
            assert!(spread(&after) <= 1);
            let total = p as usize * t;
            let got = after["new"].len();
            assert!(
                got == total / (n + 1) || got == total.div_ceil(n + 1),
                "{n}/{p}/{t}: new got {got}"
            );
            // Only the partitions the new member takes change owner, and every
            // old member only loses partitions.
            let old = owner_map(&before);
            let new = owner_map(&after);
            let moved: Vec<_> = new
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(*v))
                .collect();
            assert_eq!(moved.len(), got, "{n}/{p}/{t}");
            assert!(moved.iter().all(|(_, v)| v.as_str() == "new"));
            // Minimal: the new member gets floor unless the old members
            // cannot absorb the remainder.
            let r = total % (n + 1);
            let can_keep_extra = before
                .values()
                .filter(|v| v.len() > total / (n + 1))
                .count();
            if r > 0 && can_keep_extra >= r {
                assert_eq!(got, total / (n + 1), "{n}/{p}/{t}");
            }
        }
    }

    #[test]
    fn sticky_add_member_concrete() {
        let parts = topic_map(1, 6);
        let subs = same_subs(2, &parts);
        let before = CooperativeStickyAssignor.assign(&parts, &subs);
        assert_eq!(before["c0"].len(), 3);
        let mut next = with_owned(&subs, &before);
        next.push(sub("c2", &["t0"], &[]));
        let after = CooperativeStickyAssignor.assign(&parts, &next);
        assert_eq!(after["c2"].len(), 2);
        for m in ["c0", "c1"] {
            assert_eq!(after[m].len(), 2);
            assert!(after[m].iter().all(|x| before[m].contains(x)));
            assert_eq!(revoked(&before[m], &after[m]).len(), 1);
        }
    }

    #[test]
    fn sticky_remove_member_moves_only_its_partitions() {
        for &(n, p, t) in SHAPES.iter().filter(|s| s.0 >= 2) {
            let parts = topic_map(t, p);
            let subs = same_subs(n, &parts);
            let before = CooperativeStickyAssignor.assign(&parts, &subs);
            for gone in 0..n {
                let gone_id = format!("c{gone}");
                let next: Vec<_> = with_owned(&subs, &before)
                    .into_iter()
                    .filter(|s| s.member_id != gone_id)
                    .collect();
                let after = CooperativeStickyAssignor.assign(&parts, &next);
                check_valid(&parts, &next, &after).unwrap();
                assert!(spread(&after) <= 1);
                for (m, v) in &after {
                    assert!(
                        before[m].iter().all(|x| v.contains(x)),
                        "{m} lost partitions"
                    );
                }
                let old = owner_map(&before);
                let moved = owner_map(&after)
                    .into_iter()
                    .filter(|(k, v)| old.get(k) != Some(v))
                    .count();
                assert_eq!(moved, before[&gone_id].len());
            }
        }
    }

    #[test]
    fn sticky_added_partitions_keep_existing() {
        for &(n, p, t) in SHAPES {
            let parts = topic_map(t, p);
            let subs = same_subs(n, &parts);
            let before = CooperativeStickyAssignor.assign(&parts, &subs);
            for extra in [1, 3, 11] {
                let mut grown = parts.clone();
                if let Some(c) = grown.get_mut("t0") {
                    *c += extra;
                }
                let after = CooperativeStickyAssignor.assign(&grown, &with_owned(&subs, &before));
                check_valid(&grown, &subs, &after).unwrap();
                assert!(spread(&after) <= 1);
                for (m, v) in &before {
                    assert!(
                        v.iter().all(|x| after[m].contains(x)),
                        "{n}/{p}/{t}+{extra}: {m}"
                    );
                }
            }
        }
    }

    #[test]
    fn sticky_bogus_and_duplicate_owned() {
        let parts = topic_map(1, 4);
        let subs = vec![
            // t0p0 claimed twice: unowned; t0p9 and "x" do not exist.
            sub(
                "a",
                &["t0"],
                &[
                    tp("t0", 0),
                    tp("t0", 1),
                    tp("t0", 1),
                    tp("t0", 9),
                    tp("x", 0),
                ],
            ),
            sub("b", &["t0"], &[tp("t0", 0), tp("t0", 2)]),
            sub("c", &["t0"], &[]),
        ];
        let asg = CooperativeStickyAssignor.assign(&parts, &subs);
        check_valid(&parts, &subs, &asg).unwrap();
        assert!(asg["a"].contains(&tp("t0", 1)));
        assert!(asg["b"].contains(&tp("t0", 2)));
        assert!(spread(&asg) <= 1);
        // Over-quota owner is trimmed to its quota.
        let subs = vec![
            sub(
                "a",
                &["t0"],
                &[tp("t0", 0), tp("t0", 1), tp("t0", 2), tp("t0", 3)],
            ),
            sub("b", &["t0"], &[]),
        ];
        let asg = CooperativeStickyAssignor.assign(&parts, &subs);
        assert_eq!(asg["a"], vec![tp("t0", 0), tp("t0", 1)]);
        assert_eq!(asg["b"], vec![tp("t0", 2), tp("t0", 3)]);
    }

    #[test]
    fn sticky_differing_subscriptions_kafka_example() {
        let parts: BTreeMap<String, u32> = [
            ("t0".to_owned(), 1),
            ("t1".to_owned(), 2),
            ("t2".to_owned(), 3),
        ]
        .into();
        let subs = vec![
            sub("C0", &["t0"], &[]),
            sub("C1", &["t0", "t1"], &[]),
            sub("C2", &["t0", "t1", "t2"], &[]),
        ];
        let asg = CooperativeStickyAssignor.assign(&parts, &subs);
        assert_eq!(asg["C0"], vec![tp("t0", 0)]);
        assert_eq!(asg["C1"], vec![tp("t1", 0), tp("t1", 1)]);
        assert_eq!(asg["C2"], vec![tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
        // C0 leaves: only t0p0 moves, to the eligible member with fewest.
        let next: Vec<_> = with_owned(&subs, &asg).into_iter().skip(1).collect();
        let after = CooperativeStickyAssignor.assign(&parts, &next);
        assert_eq!(after["C1"], vec![tp("t0", 0), tp("t1", 0), tp("t1", 1)]);
        assert_eq!(after["C2"], asg["C2"]);
    }

    #[test]
    fn sticky_differing_subscriptions_rebalances_owned() {
        // "a" owns everything of t0 but "b" also subscribes to it.
        let parts = topic_map(2, 4);
        let all_t0: Vec<_> = (0..4).map(|p| tp("t0", p)).collect();
        let subs = vec![sub("a", &["t0"], &all_t0), sub("b", &["t0", "t1"], &[])];
        let asg = CooperativeStickyAssignor.assign(&parts, &subs);
        check_valid(&parts, &subs, &asg).unwrap();
        // b gets all of t1 (4); a keeps all of t0 (4): already balanced.
        assert_eq!(asg["a"], all_t0);
        let subs = vec![
            sub("a", &["t0"], &all_t0),
            sub("b", &["t0"], &[]),
            sub("c", &["t1"], &[]),
        ];
        let asg = CooperativeStickyAssignor.assign(&parts, &subs);
        check_valid(&parts, &subs, &asg).unwrap();
        assert_eq!(asg["a"].len(), 2);
        assert_eq!(asg["b"].len(), 2);
        assert_eq!(asg["c"].len(), 4);
    }

    #[test]
    fn revoked_is_set_difference() {
        let old = vec![tp("t0", 2), tp("t0", 0), tp("t1", 1), tp("t0", 2)];
        let new = vec![tp("t0", 0), tp("t9", 0)];
        assert_eq!(revoked(&old, &new), vec![tp("t0", 2), tp("t1", 1)]);
        assert!(revoked(&[], &new).is_empty());
        assert!(revoked(&new, &new).is_empty());
    }

    /// (partition counts per topic, per member: (subscribed topic mask, owned
    /// (topic index incl. one bogus topic, partition))).
    type Case = (Vec<u32>, Vec<(u8, Vec<(usize, u32)>)>, bool);

    fn case() -> impl Strategy<Value = Case> {
        (prop::collection::vec(0u32..20, 1..4), any::<bool>()).prop_flat_map(
            |(counts, identical)| {
                let t = counts.len();
                let member = (0u8..16, prop::collection::vec((0..=t, 0u32..25), 0..15));
                (
                    Just(counts),
                    prop::collection::vec(member, 1..8),
                    Just(identical),
                )
            },
        )
    }

    fn build(c: &Case) -> (BTreeMap<String, u32>, Vec<Subscription>) {
        let (counts, ms, identical) = c;
        let parts: BTreeMap<String, u32> = counts
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("t{i}"), n))
            .collect();
        let shared = ms.first().map_or(0, |m| m.0);
        let subs = ms
            .iter()
            .enumerate()
            .map(|(i, (mask, owned))| {
                let mask = if *identical { shared } else { *mask };
                // Bit 3 subscribes to a topic that does not exist.
                let topics: Vec<String> = (0..4)
                    .filter(|b| mask & (1 << b) != 0)
                    .map(|b| format!("t{b}"))
                    .collect();
                Subscription {
                    member_id: format!("m{i}"),
                    topics,
                    owned: owned
                        .iter()
                        .map(|&(t, p)| tp(&format!("t{t}"), p))
                        .collect(),
                }
            })
            .collect();
        (parts, subs)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn prop_assignors(c in case()) {
            let (parts, subs) = build(&c);
            for a in assignors() {
                let asg = a.assign(&parts, &subs);
                if let Err(e) = check_valid(&parts, &subs, &asg) {
                    return Err(TestCaseError::fail(format!("{}: {e}", a.name())));
                }
            }
            let asg = CooperativeStickyAssignor.assign(&parts, &subs);
            let existing: BTreeSet<&str> = parts.keys().map(String::as_str).collect();
            let eff = |s: &Subscription| -> BTreeSet<String> {
                s.topics.iter().filter(|t| existing.contains(t.as_str())).cloned().collect()
            };
            let identical = subs.windows(2).all(|w| eff(&w[0]) == eff(&w[1]));
            if identical {
                prop_assert!(spread(&asg) <= 1, "unbalanced: {asg:?}");
                // Valid owned: exists, subscribed, unique across members.
                let per: Vec<BTreeSet<TopicPartition>> = subs
                    .iter()
                    .map(|s| {
                        s.owned
                            .iter()
                            .filter(|x| s.topics.iter().any(|t| **t == *x.topic))
                            .filter(|x| parts.get(&*x.topic).is_some_and(|&n| x.partition < n))
                            .cloned()
                            .collect()
                    })
                    .collect();
                let mut claims: BTreeMap<&TopicPartition, usize> = BTreeMap::new();
                for x in per.iter().flatten() {
                    *claims.entry(x).or_default() += 1;
                }
                let n = subs.len();
                let total: usize = asg.values().map(Vec::len).sum();
                let (min_q, rem) = (total / n, total % n);
                let mut valid_counts = Vec::new();
                let mut kept_total = 0;
                for (s, owned) in subs.iter().zip(&per) {
                    let valid: BTreeSet<_> = owned.iter().filter(|x| claims[x] == 1).collect();
                    let new = &asg[&s.member_id];
                    let kept = new.iter().filter(|x| valid.contains(x)).count();
                    prop_assert_eq!(kept, valid.len().min(new.len()), "member {}", &s.member_id);
                    valid_counts.push(valid.len());
                    kept_total += kept;
                }
                // Globally minimal movement given the balance constraint.
                let at_least_max = valid_counts.iter().filter(|&&v| v > min_q).count();
                let optimum: usize =
                    valid_counts.iter().map(|&v| v.min(min_q)).sum::<usize>() + at_least_max.min(rem);
                prop_assert_eq!(kept_total, optimum);
            }
        }

        #[test]
        fn prop_sticky_membership_changes(n in 1usize..8, counts in prop::collection::vec(0u32..20, 1..4), victim in 0usize..8) {
            let parts: BTreeMap<String, u32> = counts.iter().enumerate().map(|(i, &c)| (format!("t{i}"), c)).collect();
            let subs = same_subs(n, &parts);
            let before = CooperativeStickyAssignor.assign(&parts, &subs);
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            // Add a member: only its partitions move, and it gets floor/ceil.
            let mut grown = with_owned(&subs, &before);
            grown.push(sub("z", &topic_names(&parts), &[]));
            let after = CooperativeStickyAssignor.assign(&parts, &grown);
            prop_assert!(spread(&after) <= 1);
            let got = after["z"].len();
            prop_assert!(got == total / (n + 1) || got == total.div_ceil(n + 1));
            for (m, v) in &before {
                prop_assert!(after[m].iter().all(|x| v.contains(x)), "{} gained", m);
            }
            // Remove a member: everyone else keeps everything.
            if n >= 2 {
                let gone = format!("c{}", victim % n);
                let shrunk: Vec<_> = with_owned(&subs, &before).into_iter().filter(|s| s.member_id != gone).collect();
                let after = CooperativeStickyAssignor.assign(&parts, &shrunk);
                prop_assert!(spread(&after) <= 1);
                for (m, v) in &after {
                    prop_assert!(before[m].iter().all(|x| v.contains(x)), "{} lost", m);
                }
            }
        }
    }
}

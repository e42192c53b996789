//! Partition assignment strategies for consumer groups (Kafka's
//! `ConsumerPartitionAssignor`): range, round-robin and cooperative-sticky.
//!
//! All assignors are pure functions of their input: members are processed in
//! `member_id` order, topics and partitions in their natural order, so the same
//! input always yields the same assignment.

mod range;
mod round_robin;
mod sticky;

pub use range::RangeAssignor;
pub use round_robin::RoundRobinAssignor;
pub use sticky::CooperativeStickyAssignor;

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(super) fn tp(topic: &str, p: u32) -> TopicPartition {
        TopicPartition::new(topic, p)
    }

    pub(super) fn sub(id: &str, topics: &[&str], owned: &[TopicPartition]) -> Subscription {
        Subscription {
            member_id: id.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            owned: owned.to_vec(),
        }
    }

    pub(super) fn topic_map(t: usize, p: u32) -> BTreeMap<String, u32> {
        (0..t).map(|i| (format!("t{i}"), p)).collect()
    }

    pub(super) fn topic_names(parts: &BTreeMap<String, u32>) -> Vec<&str> {
        parts.keys().map(String::as_str).collect()
    }

    /// Members `c0..c{n-1}` all subscribed to every topic of `parts`.
    pub(super) fn same_subs(n: usize, parts: &BTreeMap<String, u32>) -> Vec<Subscription> {
        let names = topic_names(parts);
        (0..n).map(|i| sub(&format!("c{i}"), &names, &[])).collect()
    }

    /// Feeds an assignment back as `owned`.
    pub(super) fn with_owned(
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

    pub(super) fn owner_map(
        asg: &BTreeMap<String, Vec<TopicPartition>>,
    ) -> BTreeMap<TopicPartition, String> {
        asg.iter()
            .flat_map(|(m, v)| v.iter().map(move |tp| (tp.clone(), m.clone())))
            .collect()
    }

    /// Checks the invariants every assignor must satisfy.
    pub(super) fn check_valid(
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

    pub(super) fn spread(asg: &BTreeMap<String, Vec<TopicPartition>>) -> usize {
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

    pub(super) const SHAPES: &[(usize, u32, usize)] = &[
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
    }
}

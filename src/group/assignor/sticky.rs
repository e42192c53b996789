//! [`CooperativeStickyAssignor`].

use super::{
    Assignor, Member, RebalanceProtocol, Subscription, finish, normalize, subscribed_topics,
};
use crate::catalog::TopicPartition;
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's sticky assignor with the cooperative protocol: balanced, and keeps
/// as many currently owned partitions with their owner as possible.
///
/// The returned assignment is complete; each member then revokes only the
/// partitions it loses, and they are handed over once revoked.
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

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
    use super::super::revoked;
    use super::super::tests::{
        SHAPES, check_valid, owner_map, same_subs, spread, sub, topic_map, topic_names, tp,
        with_owned,
    };
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
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

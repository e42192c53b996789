//! [`RangeAssignor`].

use super::{Assignor, RebalanceProtocol, Subscription, finish, normalize, subscribed_topics};
use crate::catalog::TopicPartition;
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's range assignor: per topic, the subscribed members (sorted by id)
/// each get a contiguous range of partitions; the first `P mod N` members get
/// one extra partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

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

#[cfg(test)]
mod tests {
    use super::super::tests::{same_subs, sub, topic_map, tp};
    use super::*;

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
}
